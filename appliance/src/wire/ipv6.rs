//! IPv6 headers (RFC 8200), the walk over their extension headers to the upper layer, and
//! the address checks a router makes (RFC 4291 scopes, RFC 6890 special-purpose blocks).
//!
//! [`Ipv6Packet::new_checked`] validates the version and the payload length against the
//! buffer, after which no accessor panics. [`walk`] follows the Next Header chain and
//! applies the policy below; it reports where the upper-layer header starts (for UDP,
//! ICMPv6, TCP) and what it passed on the way, and leaves what to do about it (drop and
//! count, answer with ICMPv6 Parameter Problem, forward) to the caller.
//!
//! The extension-header policy (RFC 8200 §4, RFC 9098's survey of what breaks, RFC 7045,
//! RFC 7112, RFC 5095):
//!
//! | header | policy |
//! |---|---|
//! | Hop-by-Hop Options (0) | only right after the IPv6 header ([`ExtError::HopByHopNotFirst`] elsewhere); walked over (MLD's Router Alert lives here) |
//! | Routing (43) | walked over; type 0 with segments left refused ([`ExtError::RoutingType0`], RFC 5095: never executed, and treated as unknown) |
//! | Fragment (44) | the first fragment is walked on (RFC 7112: the whole chain must be in it, [`ExtError::ChainNotInFirstFragment`] otherwise); a later fragment ends the walk with no upper layer |
//! | Destination Options (60), Mobility (135), HIP (139), Shim6 (140), experimental (253, 254) | walked over |
//! | AH (51) | walked over (its length counts 4-byte words) |
//! | ESP (50), No Next Header (59) | end the walk: what follows cannot be read |
//! | anything else | the upper layer (RFC 7045: an unknown number is an upper-layer protocol, not an error here) |
//!
//! A chain longer than [`MAX_EXTENSION_HEADERS`] headers or reaching past the first
//! [`MAX_CHAIN_BYTES`] bytes is refused ([`ExtError::TooLong`]): a packet crafted to make a
//! router walk far costs it no more than that.

use std::net::Ipv6Addr;

use super::bytes::{read_u16, write_u16};
use super::ipv4::IpProtocol;
use super::{Error, Result};

/// Extension headers walked at most.
pub const MAX_EXTENSION_HEADERS: usize = 8;
/// Bytes of header chain (from the start of the IPv6 header) walked at most.
pub const MAX_CHAIN_BYTES: usize = 512;

/// Next Header values that name extension headers (RFC 8200 §4, IANA's list).
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DESTINATION_OPTIONS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
    pub const EXPERIMENT_1: u8 = 253;
    pub const EXPERIMENT_2: u8 = 254;
}

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const HEADER_LEN: usize = 40;

    /// Wraps `buffer` without validation; see the module contract in [`super`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer`, guaranteeing all accessors are panic-free.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validates what the accessors index by. The buffer may be longer than the header
    /// and payload (Ethernet pads short frames); the excess is ignored. A payload length
    /// of 0 with a Hop-by-Hop header would be a jumbogram (RFC 2675), which no Ethernet
    /// link carries: it is read as an empty payload.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if Self::HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// The Traffic Class: DSCP (upper six bits) and ECN (lower two).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (u32::from(b[1] & 0x0f) << 16) | (u32::from(b[2]) << 8) | u32::from(b[3])
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Everything after the fixed header, up to the payload length (extension headers
    /// included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = Self::HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[Self::HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the Traffic Class (DSCP and ECN), keeping the version and flow label.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buffer.as_mut();
        b[0] = (b[0] & 0xf0) | (tc >> 4);
        b[1] = (b[1] & 0x0f) | (tc << 4);
    }

    /// Everything after the fixed header, up to the payload length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = Self::HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[Self::HEADER_LEN..end]
    }
}

fn read_ipv6(data: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&data[at..at + 16]);
    Ipv6Addr::from(o)
}

/// The fixed header's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The first Next Header (an extension header or the upper layer).
    pub next_header: u8,
    /// Bytes after the fixed header.
    pub payload_len: u16,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads a checked view (lengths are re-checked: it never panics).
    ///
    /// # Errors
    /// A short buffer, or not version 6.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        Ipv6Packet::<&[u8]>::HEADER_LEN
    }

    /// Writes the fixed header into the first 40 bytes of `buffer`.
    ///
    /// # Panics
    /// If `buffer` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buffer: &mut [u8]) {
        let b = &mut buffer[..Ipv6Packet::<&[u8]>::HEADER_LEN];
        let flow = self.flow_label & 0x000f_ffff;
        b[0] = 0x60 | (self.traffic_class >> 4);
        b[1] = (self.traffic_class << 4) | (flow >> 16) as u8;
        b[2] = (flow >> 8) as u8;
        b[3] = flow as u8;
        write_u16(b, field::PAYLOAD_LEN, self.payload_len);
        b[field::NEXT_HEADER] = self.next_header;
        b[field::HOP_LIMIT] = self.hop_limit;
        b[field::SRC_ADDR..field::SRC_ADDR + 16].copy_from_slice(&self.src.octets());
        b[field::DST_ADDR..field::DST_ADDR + 16].copy_from_slice(&self.dst.octets());
    }
}

/// Why a header chain is refused (see the module's policy table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtError {
    /// An extension header runs past the payload.
    Truncated,
    /// A Hop-by-Hop header anywhere but first (RFC 8200 §4.1).
    HopByHopNotFirst,
    /// A type 0 Routing header with segments left (RFC 5095).
    RoutingType0,
    /// The first fragment does not hold the whole chain (RFC 7112).
    ChainNotInFirstFragment,
    /// More than [`MAX_EXTENSION_HEADERS`] headers, or past [`MAX_CHAIN_BYTES`].
    TooLong,
}

/// A fragment header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment in 8-byte units.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    pub identification: u32,
}

/// Where a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upper {
    /// The upper-layer protocol, its header at `offset` in the payload (after the fixed
    /// header).
    Protocol { protocol: IpProtocol, offset: usize },
    /// A later fragment: no upper-layer header in it.
    LaterFragment,
    /// ESP or No Next Header: nothing readable follows.
    Opaque(u8),
}

/// What a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub upper: Upper,
    /// A Hop-by-Hop header came first.
    pub hop_by_hop: bool,
    /// The fragment header, if the packet is a fragment.
    pub fragment: Option<Fragment>,
    /// A Routing header's type and segments left.
    pub routing: Option<(u8, u8)>,
    /// Extension headers walked.
    pub headers: usize,
}

/// Walks `packet`'s extension headers to its upper layer, under the module's policy.
///
/// # Errors
/// What the policy refuses, or a header running past the payload.
pub fn walk<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> core::result::Result<Chain, ExtError> {
    use next_header as nh;
    let payload = packet.payload();
    let mut chain = Chain {
        upper: Upper::Opaque(nh::NO_NEXT_HEADER),
        hop_by_hop: false,
        fragment: None,
        routing: None,
        headers: 0,
    };
    let mut next = packet.next_header();
    let mut at = 0usize;
    loop {
        let len = match next {
            nh::ESP | nh::NO_NEXT_HEADER => {
                chain.upper = Upper::Opaque(next);
                return Ok(chain);
            }
            nh::HOP_BY_HOP
            | nh::ROUTING
            | nh::DESTINATION_OPTIONS
            | nh::MOBILITY
            | nh::HIP
            | nh::SHIM6
            | nh::EXPERIMENT_1
            | nh::EXPERIMENT_2
            | nh::FRAGMENT
            | nh::AH => {
                if chain.headers == MAX_EXTENSION_HEADERS {
                    return Err(ExtError::TooLong);
                }
                let h = payload.get(at..at + 8).ok_or(ExtError::Truncated)?;
                match next {
                    nh::FRAGMENT => 8,
                    nh::AH => (usize::from(h[1]) + 2) * 4,
                    _ => (usize::from(h[1]) + 1) * 8,
                }
            }
            protocol => {
                chain.upper = Upper::Protocol {
                    protocol: IpProtocol(protocol),
                    offset: at,
                };
                return Ok(chain);
            }
        };
        if Ipv6Packet::<&[u8]>::HEADER_LEN + at + len > MAX_CHAIN_BYTES {
            return Err(ExtError::TooLong);
        }
        let h = payload.get(at..at + len).ok_or(ExtError::Truncated)?;
        match next {
            nh::HOP_BY_HOP if chain.headers > 0 => return Err(ExtError::HopByHopNotFirst),
            nh::HOP_BY_HOP => chain.hop_by_hop = true,
            nh::ROUTING => {
                let (kind, left) = (h[2], h[3]);
                if kind == 0 && left > 0 {
                    return Err(ExtError::RoutingType0);
                }
                chain.routing = Some((kind, left));
            }
            nh::FRAGMENT => {
                let word = read_u16(h, 2);
                let fragment = Fragment {
                    offset: word >> 3,
                    more: word & 1 == 1,
                    identification: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                };
                chain.fragment = Some(fragment);
                if fragment.offset > 0 {
                    chain.headers += 1;
                    chain.upper = Upper::LaterFragment;
                    return Ok(chain);
                }
            }
            _ => {}
        }
        chain.headers += 1;
        next = h[0];
        at += len;
        if chain.fragment.is_some_and(|f| f.more) && at >= payload.len() {
            // A first fragment that ends inside the chain.
            return Err(ExtError::ChainNotInFirstFragment);
        }
    }
}

/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// ff02::2, all routers on the link (where hosts send Router Solicitations).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// The solicited-node group of `ip` (RFC 4291 §2.7.1): ff02::1:ff00:0/104
/// with its low 24 bits. Neighbor Solicitations for `ip` go there.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet group an IPv6 multicast address maps to (RFC 2464 §7):
/// 33:33 and its low 32 bits.
pub fn multicast_mac(ip: Ipv6Addr) -> super::MacAddr {
    let o = ip.octets();
    super::MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

// What an address is for, as far as routing it goes (RFC 4291 §2.4, RFC 6890). Free
// functions rather than methods: the standard library is growing methods of these names.

// On the address as a `u128` (one byte swap): these run on every packet.

/// fe80::/10: never routed off its link.
#[inline]
pub fn is_link_local_unicast(ip: &Ipv6Addr) -> bool {
    u128::from(*ip) >> 118 == 0xfe80 >> 6
}

/// 2001:db8::/32 (RFC 3849): in documents only, never on the wire.
#[inline]
pub fn is_documentation(ip: &Ipv6Addr) -> bool {
    u128::from(*ip) >> 96 == 0x2001_0db8
}

/// ::ffff:0:0/96: an IPv4 address written in IPv6, never on the wire (RFC 4291 §2.5.5.2).
#[inline]
pub fn is_ipv4_mapped(ip: &Ipv6Addr) -> bool {
    u128::from(*ip) >> 32 == 0xffff
}

/// A multicast address's scope (RFC 4291 §2.7: 1 interface, 2 link, 4 admin, 5 site,
/// 8 organisation, 14 global); `None` for unicast.
#[inline]
pub fn multicast_scope(ip: &Ipv6Addr) -> Option<u8> {
    let a = u128::from(*ip);
    (a >> 120 == 0xff).then_some(((a >> 112) & 0x0f) as u8)
}

/// Whether no packet may come from `ip`: unspecified, loopback, multicast, IPv4-mapped or
/// documentation (a router drops such a source; `::` is allowed only for DAD, which the
/// caller handles before asking).
#[inline]
pub fn is_martian_source(ip: &Ipv6Addr) -> bool {
    let a = u128::from(*ip);
    a <= 1 || a >> 120 == 0xff || a >> 32 == 0xffff || a >> 96 == 0x2001_0db8
}

/// Whether no packet may be routed to `ip`: unspecified, loopback, IPv4-mapped,
/// documentation, link-local, or multicast of link scope or less.
#[inline]
pub fn is_martian_destination(ip: &Ipv6Addr) -> bool {
    let a = u128::from(*ip);
    a <= 1
        || a >> 32 == 0xffff
        || a >> 96 == 0x2001_0db8
        || a >> 118 == 0xfe80 >> 6
        || a >> 120 == 0xff && (a >> 112) & 0x0f <= 2
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use etherparse::{IpHeaders, Ipv6Header, PacketBuilder};
    use proptest::prelude::*;

    const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn udp6() -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv6(SRC, DST, 61)
            .udp(4000, 5000)
            .write(&mut v, b"hello")
            .unwrap();
        v
    }

    /// `udp6()` with extension headers `exts` (each: next header number, bytes without
    /// its first byte) put in front of the UDP header.
    fn with_exts(exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut v = udp6();
        let mut chain = Vec::new();
        let mut first = v[6];
        for (kind, body) in exts.iter().rev() {
            let mut h = vec![first];
            h.extend_from_slice(body);
            chain.splice(0..0, h);
            first = *kind;
        }
        v[6] = first;
        let plen = read_u16(&v, 4) as usize + chain.len();
        write_u16(&mut v, 4, plen as u16);
        v.splice(40..40, chain);
        v
    }

    fn opts() -> Vec<u8> {
        // Hdr Ext Len 0 (8 bytes), PadN filling the rest.
        vec![0, 1, 4, 0, 0, 0, 0]
    }

    #[test]
    fn the_header_reads_as_etherparse_wrote_it_and_emits_back_the_same() {
        let v = udp6();
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        let (theirs, _) = Ipv6Header::from_slice(&v).unwrap();
        let r = Ipv6Repr::parse(&p).unwrap();
        assert_eq!(r.src.octets(), theirs.source);
        assert_eq!(r.dst.octets(), theirs.destination);
        assert_eq!(r.hop_limit, 61);
        assert_eq!(r.next_header, 17);
        assert_eq!(r.payload_len, theirs.payload_length);
        let mut again = vec![0u8; 40];
        r.emit(&mut again);
        assert_eq!(again, v[..40]);
        let mut q = Ipv6Packet::new_unchecked(again.clone());
        q.set_traffic_class(0xb8 | 1);
        q.set_hop_limit(60);
        assert_eq!(
            (q.traffic_class(), q.hop_limit(), q.flow_label()),
            (0xb9, 60, 0)
        );
    }

    #[test]
    fn short_or_not_six_or_overlong_is_refused() {
        let v = udp6();
        assert_eq!(
            Ipv6Packet::new_checked(&v[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&v[..v.len() - 1]).unwrap_err(),
            Error::Truncated
        );
        let mut four = v.clone();
        four[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&four[..]).unwrap_err(),
            Error::Malformed
        );
        let mut padded = v.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(
            Ipv6Packet::new_checked(&padded[..])
                .unwrap()
                .payload()
                .len(),
            13
        );
    }

    #[test]
    fn the_walk_reaches_udp_through_hop_by_hop_and_destination_options() {
        let plain = udp6();
        let c = walk(&Ipv6Packet::new_checked(&plain[..]).unwrap()).unwrap();
        assert_eq!(
            c.upper,
            Upper::Protocol {
                protocol: IpProtocol::UDP,
                offset: 0
            }
        );
        let v = with_exts(&[(0, opts()), (60, opts())]);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        let c = walk(&p).unwrap();
        assert_eq!(
            c.upper,
            Upper::Protocol {
                protocol: IpProtocol::UDP,
                offset: 16
            }
        );
        assert!(c.hop_by_hop && c.headers == 2);
        // etherparse agrees on where UDP starts.
        let (_, rest) = IpHeaders::from_slice(&v).unwrap();
        assert_eq!(rest.payload.len(), v.len() - 40 - 16);
    }

    #[test]
    fn the_policy_refuses_what_it_says() {
        let late_hbh = with_exts(&[(60, opts()), (0, opts())]);
        let p = Ipv6Packet::new_checked(&late_hbh[..]).unwrap();
        assert_eq!(walk(&p), Err(ExtError::HopByHopNotFirst));
        let rh0 = with_exts(&[(43, vec![0, 0, 1, 0, 0, 0, 0])]);
        assert_eq!(
            walk(&Ipv6Packet::new_checked(&rh0[..]).unwrap()),
            Err(ExtError::RoutingType0)
        );
        let rh0_done = with_exts(&[(43, vec![0, 0, 0, 0, 0, 0, 0])]);
        let c = walk(&Ipv6Packet::new_checked(&rh0_done[..]).unwrap()).unwrap();
        assert_eq!(
            c.routing,
            Some((0, 0)),
            "no segments left: ignored, as RFC 5095 says"
        );
        let many: Vec<(u8, Vec<u8>)> = (0..9).map(|_| (60, opts())).collect();
        let v = with_exts(&many);
        assert_eq!(
            walk(&Ipv6Packet::new_checked(&v[..]).unwrap()),
            Err(ExtError::TooLong)
        );
        let mut cut = with_exts(&[(60, opts())]);
        cut[41] = 200; // claims 1608 bytes
        assert_eq!(
            walk(&Ipv6Packet::new_checked(&cut[..]).unwrap()),
            Err(ExtError::TooLong)
        );
        cut[41] = 3; // 32 bytes, more than there is
        assert_eq!(
            walk(&Ipv6Packet::new_checked(&cut[..]).unwrap()),
            Err(ExtError::Truncated)
        );
    }

    #[test]
    fn fragments_first_walks_on_later_stops() {
        // Offset 0, more fragments, id 7.
        let first = with_exts(&[(44, vec![0, 0, 1, 0, 0, 0, 7])]);
        let c = walk(&Ipv6Packet::new_checked(&first[..]).unwrap()).unwrap();
        assert_eq!(
            c.upper,
            Upper::Protocol {
                protocol: IpProtocol::UDP,
                offset: 8
            }
        );
        assert_eq!(
            c.fragment,
            Some(Fragment {
                offset: 0,
                more: true,
                identification: 7
            })
        );
        let later = with_exts(&[(44, vec![0, 0, 0x10, 0, 0, 0, 7])]);
        let c = walk(&Ipv6Packet::new_checked(&later[..]).unwrap()).unwrap();
        assert_eq!(c.upper, Upper::LaterFragment);
        // A first fragment whose chain goes on past its end.
        let mut v = udp6();
        v.truncate(40);
        v[6] = 44;
        v.extend_from_slice(&[60, 0, 0, 1, 0, 0, 0, 9]);
        write_u16(&mut v, 4, 8);
        assert_eq!(
            walk(&Ipv6Packet::new_checked(&v[..]).unwrap()),
            Err(ExtError::ChainNotInFirstFragment)
        );
    }

    #[test]
    fn esp_and_no_next_header_end_the_walk_and_unknown_numbers_are_upper_layers() {
        let mut v = udp6();
        v[6] = 50;
        assert_eq!(
            walk(&Ipv6Packet::new_checked(&v[..]).unwrap())
                .unwrap()
                .upper,
            Upper::Opaque(50)
        );
        v[6] = 59;
        assert_eq!(
            walk(&Ipv6Packet::new_checked(&v[..]).unwrap())
                .unwrap()
                .upper,
            Upper::Opaque(59)
        );
        v[6] = 143;
        assert_eq!(
            walk(&Ipv6Packet::new_checked(&v[..]).unwrap())
                .unwrap()
                .upper,
            Upper::Protocol {
                protocol: IpProtocol(143),
                offset: 0
            }
        );
    }

    #[test]
    fn addresses_are_told_apart() {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert!(is_link_local_unicast(&a("fe80::1")) && !is_link_local_unicast(&a("fec0::1")));
        assert!(is_documentation(&a("2001:db8::1")) && !is_documentation(&a("2001:db9::1")));
        assert!(is_ipv4_mapped(&a("::ffff:10.0.0.1")));
        assert_eq!(multicast_scope(&a("ff05::1:3")), Some(5));
        assert_eq!(multicast_scope(&a("ff02::16")), Some(2));
        assert_eq!(multicast_scope(&a("2001:db9::1")), None);
        for src in ["::", "::1", "ff0e::1", "::ffff:1.2.3.4", "2001:db8::5"] {
            assert!(is_martian_source(&a(src)), "{src}");
        }
        assert!(!is_martian_source(&a("2001:db9::1")) && !is_martian_source(&a("fe80::1")));
        for dst in ["::", "::1", "fe80::1", "ff02::1", "ff01::1", "2001:db8::1"] {
            assert!(is_martian_destination(&a(dst)), "{dst}");
        }
        assert!(
            !is_martian_destination(&a("ff05::1")) && !is_martian_destination(&a("2001:db9::2"))
        );
    }

    proptest! {
        /// The checks on the address as a number say what the standard library's
        /// definitions say (prefixes drawn so that every class comes up).
        #[test]
        fn address_checks_agree_with_their_definitions(
            top in proptest::sample::select(vec![0u16, 0x2001, 0xfe80, 0xfebf, 0xfec0, 0xff02, 0xff05, 0xff0e, 0xfd00]),
            second in proptest::sample::select(vec![0u16, 0x0db8, 0x0db9, 0xffff]),
            mid in any::<u64>(),
            low in any::<u32>(),
            zero_middle in any::<bool>(),
        ) {
            let mid = if zero_middle { 0 } else { mid };
            let a = Ipv6Addr::from(
                (u128::from(top) << 112) | (u128::from(second) << 96) | (u128::from(mid) << 32) | u128::from(low),
            );
            let seg = a.segments();
            let mapped = seg[..6] == [0, 0, 0, 0, 0, 0xffff];
            let doc = seg[..2] == [0x2001, 0x0db8];
            let ll = seg[0] & 0xffc0 == 0xfe80;
            let scope = a.is_multicast().then(|| a.octets()[1] & 0x0f);
            prop_assert_eq!(is_ipv4_mapped(&a), mapped);
            prop_assert_eq!(is_documentation(&a), doc);
            prop_assert_eq!(is_link_local_unicast(&a), ll);
            prop_assert_eq!(multicast_scope(&a), scope);
            prop_assert_eq!(
                is_martian_source(&a),
                a.is_unspecified() || a.is_loopback() || a.is_multicast() || mapped || doc
            );
            prop_assert_eq!(
                is_martian_destination(&a),
                a.is_unspecified() || a.is_loopback() || mapped || doc || ll || scope.is_some_and(|s| s <= 2)
            );
            let v4 = Ipv6Addr::from(0xffff_0a00_0001u128);
            prop_assert!(is_ipv4_mapped(&v4) && !is_ipv4_mapped(&Ipv6Addr::LOCALHOST));
        }

        /// Whatever the bytes: a checked view's accessors and the walk never panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() {
                *b = 0x60 | (*b & 0x0f);
            }
            if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) {
                let _ = Ipv6Repr::parse(&p);
                let _ = (p.traffic_class(), p.flow_label(), p.payload().len());
                let _ = walk(&p);
            }
        }
    }
}
