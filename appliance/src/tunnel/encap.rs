//! Encapsulation and decapsulation as pure functions over a [`PacketBuf`]:
//! the workers run them on mbufs, the tests on `Vec`-backed buffers.
//!
//! An encapsulated frame is Ethernet, outer IPv4 (DF set, the inner packet's
//! DSCP and ECN copied: RFC 6040's normal mode), outer UDP (checksum 0, as
//! VXLAN: the inner packet carries its own), the tunnel header, then the
//! inner IPv4 packet. An encrypted tunnel seals what follows the tunnel
//! header with the header as associated data and appends the tag
//! ([`seal`], [`open`]). `docs/wire-format.md` draws it.

use std::net::Ipv4Addr;

use crate::buf::{BufError, PacketBuf};
use crate::stats::DropReason;
use crate::tunnel::crypto::aead::{self, AuthFailed, PacketKey, TAG_LEN};
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::tunnel::{HeaderError, TunnelPacket, TunnelRepr};
use crate::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, UdpPacket};

const ETH: usize = 14;
const IP: usize = 20;
const UDP: usize = 8;
const TUN: usize = 20;
/// Bytes in front of the inner IPv4 packet: Ethernet, outer IPv4, UDP and
/// the tunnel header.
pub const OUTER_LEN: usize = ETH + IP + UDP + TUN;
/// Bytes encapsulation adds to an Ethernet frame (its Ethernet header is
/// reused): the tunnel's overhead on the path MTU.
pub const ADDED: usize = IP + UDP + TUN;
/// Where the tunnel header starts in a frame we built (no IPv4 options).
const TUN_AT: usize = ETH + IP + UDP;
/// Outer TTL.
const OUTER_TTL: u8 = 64;
/// ECN codepoint "congestion experienced".
const CE: u8 = 0b11;

/// The outer headers of one encapsulated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// Our MAC on the path's port.
    pub src_mac: MacAddr,
    /// The path's next hop.
    pub dst_mac: MacAddr,
    /// Our address on the path.
    pub src_ip: Ipv4Addr,
    /// The peer's address on the path.
    pub dst_ip: Ipv4Addr,
    /// Outer UDP source port (it carries the lane, for receive-side RSS).
    pub src_port: u16,
    /// The tunnel's UDP port.
    pub dst_port: u16,
    /// The inner packet's DSCP and ECN byte, copied.
    pub tos: u8,
    /// The tunnel header.
    pub header: TunnelRepr,
}

/// Writes the outer Ethernet, IPv4, UDP and tunnel headers into the first
/// [`OUTER_LEN`] bytes of `buf`, for `payload_len` bytes after them (the
/// tag included, when the packet is sealed).
///
/// # Panics
/// If `buf` is shorter than [`OUTER_LEN`] (callers size it).
pub fn write_outer(buf: &mut [u8], o: &Outer, payload_len: usize) {
    let udp_len = u16::try_from(UDP + TUN + payload_len).unwrap_or(u16::MAX);
    let ip_len = udp_len.saturating_add(IP as u16);
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..ETH]);
    eth.set_dst_addr(o.dst_mac);
    eth.set_src_addr(o.src_mac);
    eth.set_ethertype(EtherType::IPV4);
    // The header is built in a local array and copied out whole: summed in
    // place, the checksum read back words just written byte by byte and
    // stalled on store forwarding (40 % of this function in a profile).
    let mut header = [0u8; IP];
    let mut ip = Ipv4Packet::new_unchecked(&mut header);
    ip.set_version_and_header_len(IP);
    ip.set_dscp(o.tos >> 2);
    ip.set_ecn(o.tos & 0b11);
    ip.set_total_len(ip_len);
    // DF with identification 0: an atomic datagram (RFC 6864).
    ip.set_ident(0);
    ip.set_dont_frag(true);
    ip.set_more_frags(false);
    ip.set_frag_offset(0);
    ip.set_ttl(OUTER_TTL);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src_addr(o.src_ip);
    ip.set_dst_addr(o.dst_ip);
    ip.fill_checksum();
    buf[ETH..ETH + IP].copy_from_slice(&header);
    let udp = &mut buf[ETH + IP..ETH + IP + UDP];
    udp[0..2].copy_from_slice(&o.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&o.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    o.header.emit(&mut TunnelPacket::new_unchecked(
        &mut buf[ETH + IP + UDP..OUTER_LEN],
    ));
}

/// Seals a frame we built: `frame` is the outer headers ([`OUTER_LEN`]
/// bytes, the tunnel header naming the key already), the payload, and
/// [`TAG_LEN`] bytes the tag goes into. The nonce comes from the header
/// (lane, path id, path sequence), which is the associated data.
///
/// # Panics
/// If `frame` is shorter than the outer headers and a tag (callers size it).
#[inline]
pub fn seal(frame: &mut [u8], key: &PacketKey) {
    let (head, rest) = frame.split_at_mut(OUTER_LEN);
    let header = &head[TUN_AT..];
    let h = TunnelPacket::new_unchecked(header);
    let nonce = aead::nonce(h.lane(), h.path(), h.path_seq());
    let (payload, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    tag.copy_from_slice(&key.seal(nonce, header, payload));
}

/// Opens a received sealed packet in place (the payload and its tag, as
/// [`parse_rx`] found them); afterwards the payload is in clear. Nothing
/// outside the payload changes.
///
/// # Errors
/// The tag does not verify (or the frame is shorter than its lengths say).
#[inline]
pub fn open(frame: &mut [u8], rx: &Rx, key: &PacketKey) -> Result<(), AuthFailed> {
    let h = &rx.header;
    let nonce = aead::nonce(h.lane, h.path, h.path_seq);
    let end = rx.offset + rx.len + TAG_LEN;
    let (head, rest) = frame
        .get_mut(..end)
        .ok_or(AuthFailed)?
        .split_at_mut(rx.offset);
    let aad = head.get(rx.offset - TUN..).ok_or(AuthFailed)?;
    key.open(nonce, aad, rest).map(|_| ())
}

/// The inner packet's DSCP and ECN byte (IPv4's TOS, IPv6's Traffic
/// Class), from an Ethernet frame carrying it (0 if it is too short to have
/// one).
pub fn inner_tos(frame: &[u8]) -> u8 {
    match (frame.get(ETH), frame.get(ETH + 1)) {
        (Some(b0), Some(b1)) if b0 >> 4 == 6 => (b0 << 4) | (b1 >> 4),
        (_, Some(b1)) => *b1,
        _ => 0,
    }
}

/// Encapsulates in place: `buf` holds an Ethernet frame carrying the inner
/// IPv4 packet; afterwards it holds the outer frame.
///
/// # Errors
/// Not enough headroom (an mbuf has 128 bytes; 48 are needed), or a frame
/// shorter than an Ethernet header.
pub fn encapsulate(buf: &mut impl PacketBuf, o: &Outer) -> Result<(), BufError> {
    let inner_len = buf.len().checked_sub(ETH).ok_or(BufError::TooShort)?;
    buf.prepend(ADDED)?;
    write_outer(&mut buf.data_mut()[..OUTER_LEN], o, inner_len);
    Ok(())
}

/// A received tunnel packet, read from its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rx {
    /// The tunnel header.
    pub header: TunnelRepr,
    /// The outer source (the peer's address on the path).
    pub src: Ipv4Addr,
    /// The outer UDP source port (where a learned path sends back to).
    pub src_port: u16,
    /// The outer destination (ours).
    pub dst: Ipv4Addr,
    /// The outer ECN bits.
    pub ecn: u8,
    /// Where the tunnel payload starts in the frame.
    pub offset: usize,
    /// Its length, as the UDP length gives it (less the tag of a sealed
    /// packet, which follows it).
    pub len: usize,
}

impl Rx {
    /// The payload (after the tunnel header) within `frame`.
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.offset..self.offset + self.len)
            .unwrap_or(&[])
    }
}

/// Reads the tunnel header of a frame the pipeline found to be for our
/// tunnel port (so Ethernet, a 20-byte IPv4 header with a good checksum, and
/// a UDP header that fits were already checked).
///
/// # Errors
/// The drop reason: truncated, unknown version or type.
#[inline]
pub fn parse_rx(frame: &[u8]) -> Result<Rx, DropReason> {
    let ip = frame
        .get(ETH..)
        .and_then(|l3| Ipv4Packet::new_checked(l3).ok())
        .ok_or(DropReason::TunnelTruncated)?;
    let udp = UdpPacket::new_checked(ip.payload()).map_err(|_| DropReason::TunnelTruncated)?;
    rx_of(&ip, &udp)
}

/// The tunnel header after `udp`, carried in `ip`. Always inlined: called
/// out of line, its result is written field by field and copied back in
/// wide loads that stall on store forwarding, once per received packet.
#[inline(always)]
fn rx_of(ip: &Ipv4Packet<&[u8]>, udp: &UdpPacket<&[u8]>) -> Result<Rx, DropReason> {
    let tunnel = udp.payload();
    let header = TunnelRepr::parse(&TunnelPacket::new_unchecked(tunnel)).map_err(|e| match e {
        HeaderError::Truncated => DropReason::TunnelTruncated,
        HeaderError::Version(_) => DropReason::TunnelBadVersion,
        HeaderError::Kind(_) => DropReason::TunnelBadType,
    })?;
    let tag = if header.key != 0 { TAG_LEN } else { 0 };
    let len = (tunnel.len() - TUN)
        .checked_sub(tag)
        .ok_or(DropReason::TunnelTruncated)?;
    Ok(Rx {
        header,
        src: ip.src_addr(),
        src_port: udp.src_port(),
        dst: ip.dst_addr(),
        ecn: ip.ecn(),
        offset: ETH + ip.header_len() + UDP + TUN,
        len,
    })
}

/// The receive fast pass: `Some` when `frame` is, from layer 2 to the
/// tunnel header, a well-formed packet to our MAC `our_mac` and tunnel UDP
/// port `port` (or a lane's port, [`super::is_tunnel_port`]): a unicast frame of type IPv4, a 20-byte IPv4 header with a
/// good checksum, not a fragment, UDP, and a tunnel header [`parse_rx`]
/// accepts. The general pipeline would find such a frame to be for the
/// tunnel whenever its addresses are a path's (which the receiver checks),
/// so it can skip the pipeline; anything else takes the pipeline, which
/// counts exactly why it is refused.
#[inline]
pub fn recognize(frame: &[u8], our_mac: MacAddr, port: u16) -> Option<Rx> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.dst_addr() != our_mac || eth.ethertype() != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(frame.get(ETH..)?).ok()?;
    if ip.has_options() || ip.is_fragment() || ip.protocol() != IpProtocol::UDP {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    // The checksum last: other traffic on the port is told apart cheaply.
    if !super::is_tunnel_port(udp.dst_port(), port) || !ip.verify_checksum() {
        return None;
    }
    rx_of(&ip, &udp).ok()
}

/// Decapsulates a data packet in place: afterwards `buf` holds an Ethernet
/// frame (the received frame's addresses, type IPv4 or IPv6 by the inner
/// packet's version) carrying the inner packet, cut to the inner packet's
/// length. The receiver does it before a packet is queued for order, so
/// garbage never takes a sequence number. A congestion mark on the outer
/// header is copied to an ECN-capable inner packet (RFC 6040).
///
/// # Errors
/// `TunnelBadInner` when the payload is neither a valid IPv4 packet
/// (header, checksum, a total length beyond the payload) nor an IPv6 one
/// (version, a payload length beyond the payload).
pub fn decapsulate(buf: &mut impl PacketBuf, rx: &Rx) -> Result<(), DropReason> {
    let frame = buf.data();
    let payload = rx.payload(frame);
    let inner = Inner::read(payload).ok_or(DropReason::TunnelBadInner)?;
    let inner_len = inner.len;
    let mark = rx.ecn == CE && inner.ecn != 0 && inner.ecn != CE;
    let trailing = frame.len() - (rx.offset + inner_len);
    let start = rx.offset - ETH;
    let mut eth = [0u8; ETH];
    eth.copy_from_slice(&frame[..ETH]);
    buf.trim_back(trailing)
        .map_err(|_| DropReason::TunnelBadInner)?;
    let data = buf.data_mut();
    data[start..rx.offset].copy_from_slice(&eth);
    EthernetFrame::new_unchecked(&mut data[start..rx.offset]).set_ethertype(inner.ethertype);
    if mark {
        if inner.ethertype == EtherType::IPV6 {
            let mut ip = Ipv6Packet::new_unchecked(&mut data[rx.offset..]);
            ip.set_traffic_class(ip.traffic_class() | CE);
        } else {
            // Rare (only marked packets): a full header checksum is simplest.
            let mut ip = Ipv4Packet::new_unchecked(&mut data[rx.offset..]);
            ip.set_ecn(CE);
            ip.fill_checksum();
        }
    }
    buf.trim_front(start)
        .map_err(|_| DropReason::TunnelBadInner)
}

/// What decapsulation needs to know of an inner packet.
struct Inner {
    ethertype: EtherType,
    /// Its length (IPv4's total length; IPv6's header and payload).
    len: usize,
    /// Its ECN bits.
    ecn: u8,
}

impl Inner {
    /// The inner packet at the start of `payload`, if it is a valid IPv4
    /// packet (checksum included) or IPv6 packet, by its version nibble.
    #[inline]
    fn read(payload: &[u8]) -> Option<Inner> {
        if payload.first()? >> 4 == 6 {
            let ip = Ipv6Packet::new_checked(payload).ok()?;
            return Some(Inner {
                ethertype: EtherType::IPV6,
                len: Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len()),
                ecn: ip.traffic_class() & 0b11,
            });
        }
        let ip = Ipv4Packet::new_checked(payload).ok()?;
        ip.verify_checksum().then(|| Inner {
            ethertype: EtherType::IPV4,
            len: usize::from(ip.total_len()),
            ecn: ip.ecn(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::wire::tunnel::{flags, Kind};

    const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
    const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn inner_frame(tos: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2(HOST_MAC, LAN_MAC)
            .ipv4([10, 1, 0, 2], [10, 2, 0, 2], 63)
            .udp(40000, 5201)
            .write(&mut v, payload)
            .unwrap();
        v[15] = tos;
        Ipv4Packet::new_unchecked(&mut v[14..]).fill_checksum();
        v
    }

    fn outer(tos: u8) -> Outer {
        Outer {
            src_mac: MacAddr([2, 0, 0, 0, 0, 0xa0]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 0xb0]),
            src_ip: Ipv4Addr::new(172, 16, 1, 1),
            dst_ip: Ipv4Addr::new(172, 16, 1, 2),
            src_port: 49152 + 3,
            dst_port: 4800,
            tos,
            header: TunnelRepr {
                kind: Kind::Data,
                flags: flags::UNORDERED,
                path: 1,
                key: 0,
                lane: 3,
                epoch: 0x1234,
                lane_seq: 77,
                path_seq: 9,
                sent_us: 123_456,
            },
        }
    }

    /// The encapsulated frame, byte for byte, against one built by etherparse.
    #[test]
    fn encapsulation_matches_an_independently_built_frame() {
        let inner = inner_frame(0xb8 | 0b10, b"through the tunnel");
        let mut buf = VecBuf::new(&inner);
        let o = outer(inner_tos(&inner));
        encapsulate(&mut buf, &o).unwrap();
        let mut tunnel_and_inner = vec![0u8; 20];
        o.header
            .emit(&mut TunnelPacket::new_unchecked(&mut tunnel_and_inner[..]));
        tunnel_and_inner.extend_from_slice(&inner[14..]);
        let mut want = Vec::new();
        let mut ip = etherparse::Ipv4Header::new(
            0,
            OUTER_TTL,
            etherparse::IpNumber::UDP,
            [172, 16, 1, 1],
            [172, 16, 1, 2],
        )
        .unwrap();
        ip.dont_fragment = true;
        ip.dscp = etherparse::Ipv4Dscp::try_new(0xb8 >> 2).unwrap();
        ip.ecn = etherparse::Ipv4Ecn::try_new(0b10).unwrap();
        etherparse::PacketBuilder::ethernet2(o.src_mac.0, o.dst_mac.0)
            .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
            .udp(49155, 4800)
            .write(&mut want, &tunnel_and_inner)
            .unwrap();
        // etherparse fills the UDP checksum; the tunnel leaves it 0.
        want[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(buf.data(), &want[..]);
        assert_eq!(buf.len(), inner.len() + ADDED);
    }

    /// An inner IPv6 packet crosses as IPv4 does: its traffic class on the
    /// outer header, its Ethertype restored at the far end, padding cut, and
    /// a congestion mark copied to its ECN bits.
    #[test]
    fn inner_ipv6_crosses_with_its_traffic_class() {
        let mut inner = Vec::new();
        etherparse::PacketBuilder::ethernet2(HOST_MAC, LAN_MAC)
            .ipv6(
                "fd00:1::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                "fd00:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                63,
            )
            .udp(40000, 5201)
            .write(&mut inner, &[5u8; 200])
            .unwrap();
        // Traffic class: DSCP 46, ECT(0).
        let tc: u8 = 0xb8 | 0b10;
        Ipv6Packet::new_unchecked(&mut inner[14..]).set_traffic_class(tc);
        assert_eq!(inner_tos(&inner), tc);
        let mut buf = VecBuf::new(&inner);
        encapsulate(&mut buf, &outer(inner_tos(&inner))).unwrap();
        let outer_ip = Ipv4Packet::new_checked(&buf.data()[14..]).unwrap();
        assert_eq!((outer_ip.dscp(), outer_ip.ecn()), (46, 0b10));
        let mut padded = buf.clone().into_vec();
        padded.extend_from_slice(&[0; 6]);
        let mut rxbuf = VecBuf::new(&padded);
        let mut rx = parse_rx(rxbuf.data()).unwrap();
        decapsulate(&mut rxbuf, &rx).unwrap();
        let mut want = inner.clone();
        want[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xb0]);
        want[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xa0]);
        assert_eq!(rxbuf.data(), &want[..], "the inner frame, padding cut");
        // Congestion on the way: CE copied in.
        let mut marked = buf.clone().into_vec();
        marked[15] |= CE;
        Ipv4Packet::new_unchecked(&mut marked[14..]).fill_checksum();
        let mut mbuf = VecBuf::new(&marked);
        rx = parse_rx(mbuf.data()).unwrap();
        decapsulate(&mut mbuf, &rx).unwrap();
        let ip = Ipv6Packet::new_checked(&mbuf.data()[14..]).unwrap();
        assert_eq!(ip.traffic_class(), 0xb8 | CE);
        // Neither IPv4 nor IPv6 inside: refused.
        let mut bad = buf.into_vec();
        bad[14 + 48] = 0x50;
        let mut bbuf = VecBuf::new(&bad);
        rx = parse_rx(bbuf.data()).unwrap();
        assert_eq!(decapsulate(&mut bbuf, &rx), Err(DropReason::TunnelBadInner));
    }

    #[test]
    fn decapsulation_gives_back_the_inner_frame() {
        let inner = inner_frame(0, &[7u8; 300]);
        let mut buf = VecBuf::new(&inner);
        encapsulate(&mut buf, &outer(0)).unwrap();
        // Ethernet padding after the packet is cut off.
        let mut padded = buf.clone().into_vec();
        padded.extend_from_slice(&[0; 6]);
        let mut rxbuf = VecBuf::new(&padded);
        let rx = parse_rx(rxbuf.data()).unwrap();
        assert_eq!(rx.header, outer(0).header);
        assert_eq!(
            (rx.src, rx.dst),
            (Ipv4Addr::new(172, 16, 1, 1), Ipv4Addr::new(172, 16, 1, 2))
        );
        decapsulate(&mut rxbuf, &rx).unwrap();
        let mut want = inner.clone();
        want[..12].copy_from_slice(&padded[..12]);
        assert_eq!(
            rxbuf.data(),
            &want[..],
            "outer MACs, inner packet unchanged"
        );
    }

    #[test]
    fn a_congestion_mark_reaches_an_ecn_capable_inner_packet() {
        for (inner_ecn, want) in [(0b10, CE), (0b01, CE), (0b00, 0b00), (CE, CE)] {
            let inner = inner_frame(inner_ecn, b"x");
            let mut buf = VecBuf::new(&inner);
            encapsulate(&mut buf, &outer(inner_ecn)).unwrap();
            let mut v = buf.into_vec();
            v[15] |= CE; // a router on the path marked the outer header
            Ipv4Packet::new_unchecked(&mut v[14..34]).fill_checksum();
            let mut b = VecBuf::new(&v);
            let rx = parse_rx(b.data()).unwrap();
            decapsulate(&mut b, &rx).unwrap();
            let ip = Ipv4Packet::new_checked(&b.data()[14..]).unwrap();
            assert_eq!(ip.ecn(), want, "inner ECN {inner_ecn:#b}");
            assert!(ip.verify_checksum());
        }
    }

    #[test]
    fn bad_tunnel_packets_have_their_reasons() {
        let inner = inner_frame(0, b"payload");
        let mut buf = VecBuf::new(&inner);
        encapsulate(&mut buf, &outer(0)).unwrap();
        let good = buf.into_vec();
        let with = |at: usize, v: u8| {
            let mut f = good.clone();
            f[at] = v;
            f
        };
        assert_eq!(parse_rx(&with(42, 0x10)), Err(DropReason::TunnelBadVersion));
        assert_eq!(parse_rx(&with(42, 0x37)), Err(DropReason::TunnelBadType));
        // A key id says a tag follows: 10 bytes after the header cannot hold one.
        let mut untagged = with(45, 1);
        untagged[38..40].copy_from_slice(&(8u16 + 20 + 10).to_be_bytes());
        assert_eq!(parse_rx(&untagged), Err(DropReason::TunnelTruncated));
        assert_eq!(
            parse_rx(&with(45, 1)).map(|rx| rx.len),
            Ok(good.len() - 62 - 16)
        );
        // UDP length shorter than a tunnel header.
        let mut short = good.clone();
        short[38..40].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(parse_rx(&short), Err(DropReason::TunnelTruncated));
        // A payload that is not IPv4 / has a bad checksum / claims more than it has.
        for (at, v) in [(62, 0x65), (72, 0xff), (64, 0x7f)] {
            let f = with(at, v);
            let mut b = VecBuf::new(&f);
            let rx = parse_rx(b.data()).unwrap();
            assert_eq!(
                decapsulate(&mut b, &rx),
                Err(DropReason::TunnelBadInner),
                "byte {at}"
            );
            assert_eq!(b.data(), &f[..], "a refused packet is left as it was");
        }
    }

    #[test]
    fn the_fast_pass_takes_only_clean_tunnel_frames() {
        let inner = inner_frame(0, b"payload");
        let mut buf = VecBuf::new(&inner);
        let o = outer(0);
        encapsulate(&mut buf, &o).unwrap();
        let good = buf.into_vec();
        let (mac, port) = (o.dst_mac, o.dst_port);
        assert_eq!(recognize(&good, mac, port), parse_rx(&good).ok());
        assert!(recognize(&good, mac, port).is_some());
        // A changed IPv4 header gets a good checksum again, so each case
        // is refused for its own reason.
        let with = |at: usize, v: u8| {
            let mut f = good.clone();
            f[at] = v;
            if (15..34).contains(&at) && at != 24 {
                Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
            }
            f
        };
        let refused = [
            ("another MAC", with(0, 0x03)),
            ("not IPv4", with(12, 0x86)),
            ("IP options", with(14, 0x46)),
            ("bad checksum", with(24, good[24] ^ 1)),
            ("a fragment", with(20, 0x20)),
            ("not UDP", with(23, 6)),
            ("another port", with(37, good[37] ^ 1)),
            ("a bad tunnel header", with(42, 0x20)),
            ("truncated", good[..40].to_vec()),
        ];
        for (what, f) in refused {
            assert_eq!(recognize(&f, mac, port), None, "{what}");
        }
    }

    proptest::proptest! {
        /// Whatever the bytes, parsing and decapsulating never panic.
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(rx) = parse_rx(&bytes) {
                let mut b = VecBuf::new(&bytes);
                let _ = decapsulate(&mut b, &rx);
            }
        }

        /// Encapsulate then decapsulate gives the inner packet back.
        #[test]
        fn round_trip(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1400), tos in 0u8..) {
            let inner = inner_frame(tos, &payload);
            let mut b = VecBuf::new(&inner);
            encapsulate(&mut b, &outer(tos)).unwrap();
            let rx = parse_rx(b.data()).unwrap();
            decapsulate(&mut b, &rx).unwrap();
            proptest::prop_assert_eq!(&b.data()[14..], &inner[14..]);
        }

        /// The fast pass never takes what the full parse refuses.
        #[test]
        fn the_fast_pass_is_never_wider_than_the_parse(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            if let Some(rx) = recognize(&bytes, MacAddr([2, 0, 0, 0, 0, 0xb0]), 4800) {
                proptest::prop_assert_eq!(Some(rx), parse_rx(&bytes).ok());
            }
        }
    }
}
