//! The virtio-net header a Linux `AF_PACKET` socket with `PACKET_VNET_HDR`
//! puts before every frame it hands over, and the offload work it describes,
//! done in software for a device that has no offloads.
//!
//! Why this exists: the kernel gives a packet socket frames exactly as its
//! own stack built them for a device that offloads, so a frame may arrive
//! with its TCP/UDP checksum still partial (only the pseudo-header sum in
//! the field, `VIRTIO_NET_HDR_F_NEEDS_CSUM`), or as a GSO super-frame of up
//! to 64 KB that was meant to be cut into wire-size segments by the NIC. A
//! router must not forward either as is: the first is dropped by every
//! receiver that checks checksums, the second is larger than any link's MTU.
//! [`complete_checksum`] and [`Segments`] do what Linux's own
//! `skb_checksum_help` and software GSO (`tcp_gso_segment`,
//! `__udp_gso_segment`) would have done, over IPv4 and IPv6 alike.
//!
//! Everything here runs on the packet path: nothing allocates, and no input
//! bytes can make it panic (every access to the frame is checked).

/// Length of `struct virtio_net_hdr` (without `num_buffers`), the header
/// before each frame of a socket with `PACKET_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial; the field at
/// `csum_start + csum_offset` holds the pseudo-header sum only.
pub const F_NEEDS_CSUM: u8 = 1;

/// `VIRTIO_NET_HDR_GSO_NONE`: not a GSO frame.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`: a TCP/IPv4 super-frame (TSO).
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP`: UDP fragmentation offload (UFO); refused here.
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`: a TCP/IPv6 super-frame (TSO); segmented
/// here unless it has IPv6 extension headers (a socket's TSO has none).
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: a UDP super-frame to be cut into datagrams
/// (`UDP_SEGMENT`); segmented here over IPv4, and over IPv6 without
/// extension headers.
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: OR'd into `gso_type` when the TCP sender set
/// CWR; segmentation handles CWR the same way with or without it.
pub const GSO_ECN: u8 = 0x80;

/// Length of an Ethernet II header (no VLAN tag: tagged frames are refused).
const ETH_HLEN: usize = 14;
/// Ethertype of IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IP protocol number (IPv6 next header) of TCP.
const IPPROTO_TCP: u8 = 6;
/// IP protocol number (IPv6 next header) of UDP.
const IPPROTO_UDP: u8 = 17;
/// IPv6 next header of a hop-by-hop options header.
const IPV6_HOPOPTS: u8 = 0;
/// IPv6 next header of a routing header.
const IPV6_ROUTING: u8 = 43;
/// IPv6 next header of a fragment header.
const IPV6_FRAGMENT: u8 = 44;
/// IPv6 next header of an ESP header.
const IPV6_ESP: u8 = 50;
/// IPv6 next header of an authentication header.
const IPV6_AH: u8 = 51;
/// IPv6 next header of a destination options header.
const IPV6_DSTOPTS: u8 = 60;
/// IPv6 next header of a Mobility header.
const IPV6_MOBILITY: u8 = 135;
/// IPv6 next header of a Host Identity Protocol header.
const IPV6_HIP: u8 = 139;
/// IPv6 next header of a Shim6 header.
const IPV6_SHIM6: u8 = 140;
/// IPv6 next headers reserved for experiments (RFC 3692), which may be
/// extension headers.
const IPV6_EXPERIMENTAL: [u8; 2] = [253, 254];
/// Shortest IPv4 header (IHL 5).
const IPV4_MIN_HLEN: usize = 20;
/// IPv6 header length (extension headers apart).
const IPV6_HLEN: usize = 40;
/// Shortest TCP header (data offset 5).
const TCP_MIN_HLEN: usize = 20;
/// UDP header length.
const UDP_HLEN: usize = 8;
/// Largest value of a 16-bit length field: the IPv4 total length (IPv4
/// header included), the IPv6 payload length (IPv6 header excluded), the
/// UDP length.
const LEN_FIELD_MAX: usize = 0xffff;
/// The smallest TCP payload a segment may be cut to: below this `max_ip_len`
/// is a mistake of the caller, not a link MTU (IPv4's minimum MTU of 68
/// leaves 8 bytes after 60-byte headers; IPv6's 1280 leaves far more).
const MIN_SEG_PAYLOAD: usize = 8;
/// TCP flag bits in byte 13 of the TCP header.
const TCP_FIN: u8 = 0x01;
/// See [`TCP_FIN`].
const TCP_PSH: u8 = 0x08;
/// See [`TCP_FIN`].
const TCP_CWR: u8 = 0x80;

/// `struct virtio_net_hdr`, as a packet socket with `PACKET_VNET_HDR` reads
/// and writes it: fields in the host's byte order for legacy virtio, i.e.
/// little-endian on the x86 hosts the appliance runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*` bits ([`F_NEEDS_CSUM`]).
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*` ([`GSO_NONE`], [`GSO_TCPV4`], ...), possibly
    /// with [`GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers before the payload: a hint only, not used here
    /// (the headers themselves are parsed).
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP, the datagram payload size
    /// for `UDP_SEGMENT`).
    pub gso_size: u16,
    /// Offset from the start of the frame where the checksummed range begins.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads a header from its 10 bytes (little-endian fields).
    pub fn parse(bytes: &[u8; VNET_HDR_LEN]) -> Self {
        Self {
            flags: bytes[0],
            gso_type: bytes[1],
            hdr_len: u16::from_le_bytes([bytes[2], bytes[3]]),
            gso_size: u16::from_le_bytes([bytes[4], bytes[5]]),
            csum_start: u16::from_le_bytes([bytes[6], bytes[7]]),
            csum_offset: u16::from_le_bytes([bytes[8], bytes[9]]),
        }
    }

    /// Writes the header as its 10 bytes (little-endian fields).
    pub fn emit(&self, out: &mut [u8; VNET_HDR_LEN]) {
        let [h0, h1] = self.hdr_len.to_le_bytes();
        let [g0, g1] = self.gso_size.to_le_bytes();
        let [s0, s1] = self.csum_start.to_le_bytes();
        let [o0, o1] = self.csum_offset.to_le_bytes();
        *out = [self.flags, self.gso_type, h0, h1, g0, g1, s0, s1, o0, o1];
    }

    /// Whether the frame's L4 checksum is partial ([`F_NEEDS_CSUM`]).
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    /// Whether the frame is a GSO super-frame (any `gso_type` but
    /// [`GSO_NONE`], the ECN bit aside).
    pub fn is_gso(&self) -> bool {
        (self.gso_type & !GSO_ECN) != GSO_NONE
    }
}

/// Why an offload could not be done in software. The frame should then be
/// dropped (and counted): forwarding it as is would be worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Checksum start/offset outside the frame.
    #[error("checksum start/offset outside the frame")]
    BadChecksumOffsets,
    /// A GSO type or protocol this device does not segment (UFO, anything
    /// not Ethernet II + IPv4 or IPv6, VLAN tags included, IPv6 with
    /// extension headers, unknown types).
    #[error("GSO type or protocol not segmented in software")]
    UnsupportedGso,
    /// Headers that do not parse or disagree with the offload requested
    /// (too short, IHL < 5, IPv4 total length or IPv6 payload length
    /// disagreeing with the frame, a TCPv4 type on IPv6 or the reverse, TCP
    /// data offset < 5, `gso_size` 0, ...).
    #[error("malformed headers for the offload requested")]
    Malformed,
}

/// Completes a partial checksum in place.
///
/// Does nothing (and succeeds) unless `hdr` has [`F_NEEDS_CSUM`]. The field
/// at `csum_start + csum_offset` must hold the pseudo-header sum, as the
/// kernel leaves it for `CHECKSUM_PARTIAL`: the bytes from `csum_start` to
/// the end of the frame, that field included, are summed, and the
/// complement is stored there. This is protocol- and family-agnostic (the
/// pseudo-header, IPv4's or IPv6's, is already in the field), like
/// `skb_checksum_help`, except that a zero result is stored as `0xffff` for
/// UDP only (over IPv4 or IPv6, the latter through any hop-by-hop, routing
/// or destination options headers), where zero means "no checksum" (RFC
/// 768), and is not allowed over IPv6 (RFC 8200 §8.1). Elsewhere `0` and
/// `0xffff` are the same ones' complement sum and `0` is left as computed.
///
/// A GSO frame needs no call: [`Segments`] computes its segments'
/// checksums in full.
pub fn complete_checksum(frame: &mut [u8], hdr: &VnetHdr) -> Result<(), OffloadError> {
    if !hdr.needs_csum() {
        return Ok(());
    }
    let start = usize::from(hdr.csum_start);
    // Both are u16, so the sums cannot overflow a usize.
    let at = start + usize::from(hdr.csum_offset);
    if at + 2 > frame.len() {
        return Err(OffloadError::BadChecksumOffsets);
    }
    let covered = frame.get(start..).ok_or(OffloadError::BadChecksumOffsets)?;
    let mut csum = !fold(sum_be_words(covered));
    if csum == 0 && hdr.csum_offset == 6 && (is_ipv4_udp(frame) || is_ipv6_udp_at(frame, start)) {
        csum = 0xffff;
    }
    put_be16(frame, at, csum);
    Ok(())
}

/// Whether `frame` is Ethernet II + IPv4 carrying UDP.
fn is_ipv4_udp(frame: &[u8]) -> bool {
    be16(frame, 12) == Some(ETHERTYPE_IPV4) && frame.get(ETH_HLEN + 9) == Some(&IPPROTO_UDP)
}

/// Whether `frame` is Ethernet II + IPv6 with a UDP header at offset `l4`:
/// its next-header chain, through any hop-by-hop, routing and destination
/// options headers (the ones whose length is in their second byte), ends
/// in UDP exactly there.
fn is_ipv6_udp_at(frame: &[u8], l4: usize) -> bool {
    if be16(frame, 12) != Some(ETHERTYPE_IPV6) {
        return false;
    }
    let Some(&first) = frame.get(ETH_HLEN + 6) else {
        return false;
    };
    let mut next = first;
    let mut at = ETH_HLEN + IPV6_HLEN;
    // Each step moves `at` on by at least 8 bytes, and `l4` is a u16.
    while at < l4 {
        if !matches!(next, IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS) {
            return false;
        }
        let (Some(&nh), Some(&len)) = (frame.get(at), frame.get(at + 1)) else {
            return false;
        };
        next = nh;
        at += (usize::from(len) + 1) * 8;
    }
    at == l4 && next == IPPROTO_UDP
}

/// Whether IPv6 next header `nh` names an extension header (RFC 8200 §4,
/// and the IANA list of them), not an upper-layer protocol.
fn is_ipv6_extension(nh: u8) -> bool {
    matches!(
        nh,
        IPV6_HOPOPTS
            | IPV6_ROUTING
            | IPV6_FRAGMENT
            | IPV6_ESP
            | IPV6_AH
            | IPV6_DSTOPTS
            | IPV6_MOBILITY
            | IPV6_HIP
            | IPV6_SHIM6
    ) || IPV6_EXPERIMENTAL.contains(&nh)
}

/// The network layer of a [`Segments`]'s frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    /// IPv4, options allowed.
    V4,
    /// IPv6, without extension headers.
    V6,
}

/// The L4 protocol a [`Segments`] cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    /// TCP (`GSO_TCPV4`, `GSO_TCPV6`).
    Tcp,
    /// UDP datagrams (`GSO_UDP_L4`).
    Udp,
}

/// A GSO frame's plan: how it is cut into segments. Borrows the frame;
/// segments are written on demand with [`Segments::write`], so nothing is
/// allocated.
pub struct Segments<'a> {
    /// The whole super-frame, Ethernet header included.
    frame: &'a [u8],
    /// IPv4 or IPv6.
    net: Net,
    /// What is cut.
    l4: L4,
    /// IP header length: IPv4's with its options, or IPv6's 40.
    ip_hdr_len: usize,
    /// Offset of the payload in the frame (Ethernet + IP + L4 headers).
    payload_off: usize,
    /// Payload bytes of the super-frame.
    payload_len: usize,
    /// Payload bytes of every segment but the last.
    seg_payload: usize,
    /// Number of segments (at least 1).
    count: usize,
}

// By hand rather than derived: a derived impl would print up to 64 KB of
// frame bytes into whatever log the plan ends up in.
impl std::fmt::Debug for Segments<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments")
            .field("frame_len", &self.frame.len())
            .field("net", &self.net)
            .field("l4", &self.l4)
            .field("ip_hdr_len", &self.ip_hdr_len)
            .field("payload_off", &self.payload_off)
            .field("payload_len", &self.payload_len)
            .field("seg_payload", &self.seg_payload)
            .field("count", &self.count)
            .finish()
    }
}

impl<'a> Segments<'a> {
    /// Plans the cut of `frame`, as `hdr` says, into segments of at most
    /// `hdr.gso_size` payload bytes each and, for TCP only, at most
    /// `max_ip_len` bytes of IP packet each (IPv4 total length; for IPv6
    /// the 40-byte header plus its payload).
    ///
    /// `frame` is the whole super-frame: Ethernet II + IPv4 (options
    /// allowed) or IPv6 (no extension headers) + TCP (options allowed) or
    /// UDP + payload. Its IPv4 total length or IPv6 payload length may be 0
    /// or the super-frame's (the kernel leaves either); the payload length
    /// is derived from the frame's length.
    ///
    /// TCP may be cut finer than the sender's MSS (the payload per segment is
    /// `min(gso_size, max_ip_len - ip_hdr_len - tcp_hdr_len)`), which TCP
    /// copes with. `UDP_SEGMENT` datagram boundaries are the application's
    /// and are never changed, so for UDP `max_ip_len` is ignored.
    ///
    /// A frame whose payload fits in one segment is planned as one segment
    /// (lengths and checksums still rewritten). `hdr.hdr_len` and the
    /// partial checksum in the frame are not used.
    ///
    /// Errors: [`OffloadError::UnsupportedGso`] for a `gso_type` other than
    /// [`GSO_TCPV4`] or [`GSO_TCPV6`] (either with or without [`GSO_ECN`])
    /// or [`GSO_UDP_L4`], for frames not Ethernet II + IPv4 or IPv6, and for
    /// IPv6 with extension headers; [`OffloadError::Malformed`] for headers
    /// that do not parse or disagree with `hdr` (a TCPv4 type on IPv6 or the
    /// reverse, another L4 protocol), a fragment, `gso_size` 0, or (TCP) a
    /// `max_ip_len` leaving fewer than 8 payload bytes.
    pub fn plan(frame: &'a [u8], hdr: &VnetHdr, max_ip_len: usize) -> Result<Self, OffloadError> {
        use OffloadError::{Malformed, UnsupportedGso};

        // The ECN bit only tells a NIC that CWR is set; it means nothing
        // for UDP, where it is refused like any other unknown value. UDP_L4
        // names no IP version: the frame's is taken.
        let (l4, tcp_net) = match hdr.gso_type & !GSO_ECN {
            GSO_TCPV4 => (L4::Tcp, Some(Net::V4)),
            GSO_TCPV6 => (L4::Tcp, Some(Net::V6)),
            _ if hdr.gso_type == GSO_UDP_L4 => (L4::Udp, None),
            _ => return Err(UnsupportedGso),
        };
        let net = match be16(frame, 12).ok_or(Malformed)? {
            ETHERTYPE_IPV4 => Net::V4,
            ETHERTYPE_IPV6 => Net::V6,
            _ => return Err(UnsupportedGso),
        };
        if tcp_net.is_some_and(|n| n != net) {
            return Err(Malformed);
        }
        let ip = frame.get(ETH_HLEN..).ok_or(Malformed)?;
        let (ip_hdr_len, protocol) = match net {
            Net::V4 => parse_ipv4(ip)?,
            Net::V6 => parse_ipv6(ip)?,
        };
        let l4_hdr_len = match l4 {
            L4::Tcp => {
                if protocol != IPPROTO_TCP {
                    return Err(Malformed);
                }
                let data_off = *ip.get(ip_hdr_len + 12).ok_or(Malformed)?;
                let len = usize::from(data_off >> 4) * 4;
                if len < TCP_MIN_HLEN {
                    return Err(Malformed);
                }
                len
            }
            L4::Udp => {
                if protocol != IPPROTO_UDP {
                    return Err(Malformed);
                }
                UDP_HLEN
            }
        };
        let headers = ip_hdr_len + l4_hdr_len;
        let payload_len = ip.len().checked_sub(headers).ok_or(Malformed)?;
        if hdr.gso_size == 0 {
            return Err(Malformed);
        }
        let gso_size = usize::from(hdr.gso_size);
        let seg_payload = match l4 {
            L4::Tcp => {
                let room = max_ip_len
                    .checked_sub(headers)
                    .filter(|&room| room >= MIN_SEG_PAYLOAD)
                    .ok_or(Malformed)?;
                gso_size.min(room)
            }
            L4::Udp => gso_size,
        };
        // The largest segment must fit its IP length field: the IPv4 total
        // length counts the IPv4 header, the IPv6 payload length does not
        // (a UDP length is no longer than either).
        let counted = match net {
            Net::V4 => headers,
            Net::V6 => l4_hdr_len,
        };
        if counted + seg_payload.min(payload_len) > LEN_FIELD_MAX {
            return Err(Malformed);
        }
        Ok(Self {
            frame,
            net,
            l4,
            ip_hdr_len,
            payload_off: ETH_HLEN + headers,
            payload_len,
            seg_payload,
            count: payload_len.div_ceil(seg_payload).max(1),
        })
    }

    /// Number of segments (at least 1).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length in bytes (Ethernet header included) of segment `i`; 0 if there
    /// is no segment `i`.
    pub fn segment_len(&self, i: usize) -> usize {
        self.chunk(i).map_or(0, |(_, len)| self.payload_off + len)
    }

    /// Writes segment `i` into `out[..segment_len(i)]` and returns that
    /// length; returns 0 (and writes nothing) if there is no segment
    /// `i` or `out` is too short.
    ///
    /// The segment has the super-frame's Ethernet, IP (IPv4 options
    /// included) and L4 headers, with: for IPv4 its own total length, id
    /// the original's + `i` (wrapping) and header checksum recomputed; for
    /// IPv6 its own payload length (IPv6 has no id or header checksum); for
    /// TCP the sequence number advanced by the payload before it, FIN and
    /// PSH only on the last segment, CWR only on the first; for UDP its own
    /// length; and the L4 checksum computed in full over the IPv4 or IPv6
    /// pseudo-header.
    pub fn write(&self, i: usize, out: &mut [u8]) -> usize {
        self.write_checked(i, out).unwrap_or(0)
    }

    /// The payload (offset, length) of segment `i`.
    fn chunk(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.count {
            return None;
        }
        let off = i.checked_mul(self.seg_payload)?;
        Some((
            off,
            self.seg_payload.min(self.payload_len.saturating_sub(off)),
        ))
    }

    /// [`Segments::write`], with `None` for every way it can fail.
    fn write_checked(&self, i: usize, out: &mut [u8]) -> Option<usize> {
        let (off, len) = self.chunk(i)?;
        let hdrs = self.payload_off;
        let total = hdrs + len;
        let src_hdrs = self.frame.get(..hdrs)?;
        let src_payload = self.frame.get(hdrs + off..hdrs + off + len)?;
        let seg = out.get_mut(..total)?;
        let (dst_hdrs, dst_payload) = seg.split_at_mut_checked(hdrs)?;
        dst_hdrs.copy_from_slice(src_hdrs);
        dst_payload.copy_from_slice(src_payload);

        let ip = seg.get_mut(ETH_HLEN..)?;
        // The pseudo-header's addresses.
        let pseudo = match self.net {
            Net::V4 => {
                // plan() checked that every segment's total length fits in
                // 16 bits.
                let ip_len = u16::try_from(ip.len()).ok()?;
                put_be16(ip, 2, ip_len);
                // Linux gives each segment its own id unless the sender
                // asked for a fixed one, which a virtio header cannot say.
                put_be16(ip, 4, be16(ip, 4)?.wrapping_add(i as u16));
                put_be16(ip, 10, 0);
                let ip_csum = !fold(sum_be_words(ip.get(..self.ip_hdr_len)?));
                put_be16(ip, 10, ip_csum);
                sum_be_words(ip.get(12..20)?)
            }
            Net::V6 => {
                // plan() checked that every segment's payload length fits
                // in 16 bits.
                let payload_len = u16::try_from(ip.len().checked_sub(IPV6_HLEN)?).ok()?;
                put_be16(ip, 4, payload_len);
                sum_be_words(ip.get(8..IPV6_HLEN)?)
            }
        };
        let (_, l4) = ip.split_at_mut_checked(self.ip_hdr_len)?;
        // IPv6's pseudo-header has a 32-bit upper-layer length, but it is
        // the 16-bit one here (no jumbograms), which sums the same.
        let l4_len = u16::try_from(l4.len()).ok()?;
        let (protocol, csum_at) = match self.l4 {
            L4::Tcp => {
                // The sequence space is mod 2^32, so the truncation of the
                // offset is the arithmetic TCP itself does.
                put_be32(l4, 4, be32(l4, 4)?.wrapping_add(off as u32));
                let flags = l4.get_mut(13)?;
                if i != 0 {
                    // CWR acknowledges the ECE once; later segments would
                    // make the receiver think cwnd was reduced again.
                    *flags &= !TCP_CWR;
                }
                if i + 1 != self.count {
                    // FIN and PSH belong to the end of the data.
                    *flags &= !(TCP_FIN | TCP_PSH);
                }
                (IPPROTO_TCP, 16)
            }
            L4::Udp => {
                put_be16(l4, 4, l4_len);
                (IPPROTO_UDP, 6)
            }
        };
        put_be16(l4, csum_at, 0);
        let sum = pseudo + u64::from(protocol) + u64::from(l4_len) + sum_be_words(l4);
        let mut csum = !fold(sum);
        if csum == 0 && self.l4 == L4::Udp {
            // Zero means "no checksum" for UDP (and is not allowed over
            // IPv6); 0xffff is the same sum.
            csum = 0xffff;
        }
        put_be16(l4, csum_at, csum);
        Some(total)
    }
}

/// Parses the IPv4 header at the start of `ip` (the frame from the end of
/// its Ethernet header on) for [`Segments::plan`]: its length, options
/// included, and protocol.
fn parse_ipv4(ip: &[u8]) -> Result<(usize, u8), OffloadError> {
    use OffloadError::Malformed;

    let &ver_ihl = ip.first().ok_or(Malformed)?;
    if ver_ihl >> 4 != 4 {
        return Err(Malformed);
    }
    let ip_hdr_len = usize::from(ver_ihl & 0x0f) * 4;
    if ip_hdr_len < IPV4_MIN_HLEN || ip.len() < ip_hdr_len {
        return Err(Malformed);
    }
    let total_len = be16(ip, 2).ok_or(Malformed)?;
    if total_len != 0 && usize::from(total_len) != ip.len() {
        return Err(Malformed);
    }
    // MF or a fragment offset: a super-frame is never a fragment, and
    // copying the fragment fields into every segment would be wrong.
    if be16(ip, 6).ok_or(Malformed)? & 0x3fff != 0 {
        return Err(Malformed);
    }
    let protocol = *ip.get(9).ok_or(Malformed)?;
    Ok((ip_hdr_len, protocol))
}

/// Parses the IPv6 header at the start of `ip` (the frame from the end of
/// its Ethernet header on) for [`Segments::plan`]: its length (40) and
/// next header, which must be the upper-layer protocol.
///
/// Extension headers are refused ([`OffloadError::UnsupportedGso`]): a
/// socket's TSO or `UDP_SEGMENT` frames have none, and copying them into
/// every segment would be wrong for some (a fragment header) and need the
/// final destination in the pseudo-header for others (a routing header).
fn parse_ipv6(ip: &[u8]) -> Result<(usize, u8), OffloadError> {
    use OffloadError::{Malformed, UnsupportedGso};

    let &ver = ip.first().ok_or(Malformed)?;
    if ver >> 4 != 6 || ip.len() < IPV6_HLEN {
        return Err(Malformed);
    }
    let payload_len = be16(ip, 4).ok_or(Malformed)?;
    if payload_len != 0 && usize::from(payload_len) + IPV6_HLEN != ip.len() {
        return Err(Malformed);
    }
    let next = *ip.get(6).ok_or(Malformed)?;
    if is_ipv6_extension(next) {
        return Err(UnsupportedGso);
    }
    Ok((IPV6_HLEN, next))
}

/// The internet checksum's sum of `data` as big-endian 16-bit words (an odd
/// trailing byte padded with a zero byte), not yet folded.
///
/// Bulk of the work of a 64 KB super-frame, so it adds 32-bit words into a
/// u64, 8 bytes at a time: a 32-bit word's contribution to the 16-bit ones'
/// complement sum is its high half plus its low half (2^16 = 1 mod 0xffff),
/// which [`fold`] does at the end. The u64 cannot overflow below 16 GB.
fn sum_be_words(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        if let &[a, b, c, d, e, f, g, h] = chunk {
            acc += u64::from(u32::from_be_bytes([a, b, c, d]));
            acc += u64::from(u32::from_be_bytes([e, f, g, h]));
        }
    }
    for pair in chunks.remainder().chunks(2) {
        acc += match *pair {
            [a, b] => u64::from(u16::from_be_bytes([a, b])),
            [a] => u64::from(a) << 8,
            _ => 0,
        };
    }
    acc
}

/// Folds a sum from [`sum_be_words`] into 16 bits with end-around carries.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The big-endian u16 at `at`, if in `buf`.
fn be16(buf: &[u8], at: usize) -> Option<u16> {
    match buf.get(at..)? {
        &[a, b, ..] => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

/// The big-endian u32 at `at`, if in `buf`.
fn be32(buf: &[u8], at: usize) -> Option<u32> {
    match buf.get(at..)? {
        &[a, b, c, d, ..] => Some(u32::from_be_bytes([a, b, c, d])),
        _ => None,
    }
}

/// Stores `v` big-endian at `at`; nothing if it does not fit (callers have
/// checked the offsets already).
fn put_be16(buf: &mut [u8], at: usize, v: u16) {
    if let Some([a, b, ..]) = buf.get_mut(at..) {
        [*a, *b] = v.to_be_bytes();
    }
}

/// Stores `v` big-endian at `at`; nothing if it does not fit (callers have
/// checked the offsets already).
fn put_be32(buf: &mut [u8], at: usize, v: u32) {
    if let Some([a, b, c, d, ..]) = buf.get_mut(at..) {
        [*a, *b, *c, *d] = v.to_be_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6FlowLabel,
        Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, Ipv6RoutingExtensions, NetSlice,
        PacketBuilder, SlicedPacket, TcpHeader, TcpOptionElement, TransportSlice, VlanId,
    };
    use proptest::prelude::*;

    const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const SRC_IP: [u8; 4] = [10, 0, 0, 1];
    const DST_IP: [u8; 4] = [192, 168, 7, 9];
    /// IPv4 Router Alert, to have IHL > 5.
    const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];
    const SRC_IP6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0xfe, 0x01,
    ];
    const DST_IP6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xee, 0, 0x07, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
    ];

    /// The network layer a test frame is built on.
    #[derive(Debug, Clone, Copy)]
    enum Family<'a> {
        /// IPv4 with these options.
        V4(&'a [u8]),
        /// IPv6, no extension headers.
        V6,
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8).wrapping_add(seed))
            .collect()
    }

    fn ipv4(id: u16, options: &[u8]) -> IpHeaders {
        IpHeaders::Ipv4(
            Ipv4Header {
                identification: id,
                dont_fragment: true,
                time_to_live: 64,
                source: SRC_IP,
                destination: DST_IP,
                options: Ipv4Options::try_from(options).unwrap(),
                ..Default::default()
            },
            Default::default(),
        )
    }

    /// IPv6 with a traffic class (DSCP AF11, ECT(0)) and flow label, to see
    /// that both are copied, and these extension headers.
    fn ipv6_with(extensions: Ipv6Extensions) -> IpHeaders {
        IpHeaders::Ipv6(
            Ipv6Header {
                traffic_class: 0x2a,
                flow_label: Ipv6FlowLabel::try_new(0x1_2345).unwrap(),
                hop_limit: 64,
                source: SRC_IP6,
                destination: DST_IP6,
                ..Default::default()
            },
            extensions,
        )
    }

    fn ipv6() -> IpHeaders {
        ipv6_with(Ipv6Extensions::default())
    }

    /// An extension header (hop-by-hop, destination options or routing)
    /// of 8 bytes: PadN filling it.
    fn padn_ext() -> Ipv6RawExtHeader {
        Ipv6RawExtHeader::new_raw(IpNumber(59), &[1, 4, 0, 0, 0, 0]).unwrap()
    }

    fn tcp_frame_on(family: Family<'_>, id: u16, tcp: &TcpHeader, payload: &[u8]) -> Vec<u8> {
        match family {
            Family::V4(ip_options) => tcp_frame(id, ip_options, tcp, payload),
            Family::V6 => tcp6_frame(tcp, payload),
        }
    }

    fn tcp6_frame(tcp: &TcpHeader, payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .ip(ipv6())
            .tcp_header(tcp.clone());
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut frame, payload).unwrap();
        frame
    }

    fn udp6_frame_with(extensions: Ipv6Extensions, payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .ip(ipv6_with(extensions))
            .udp(5353, 4433);
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut frame, payload).unwrap();
        frame
    }

    fn udp6_frame(payload: &[u8]) -> Vec<u8> {
        udp6_frame_with(Ipv6Extensions::default(), payload)
    }

    fn tcp_frame(id: u16, ip_options: &[u8], tcp: &TcpHeader, payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .ip(ipv4(id, ip_options))
            .tcp_header(tcp.clone());
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut frame, payload).unwrap();
        frame
    }

    fn udp_frame(id: u16, ip_options: &[u8], payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .ip(ipv4(id, ip_options))
            .udp(5353, 4433);
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut frame, payload).unwrap();
        frame
    }

    fn tcp_header(seq: u32, options: &[TcpOptionElement]) -> TcpHeader {
        let mut tcp = TcpHeader::new(40000, 443, seq, 501);
        tcp.ack = true;
        tcp.acknowledgment_number = 0x1234_5678;
        tcp.ece = true;
        tcp.fin = true;
        tcp.psh = true;
        tcp.cwr = true;
        tcp.set_options(options).unwrap();
        tcp
    }

    fn ts_sack_permitted() -> Vec<TcpOptionElement> {
        vec![
            TcpOptionElement::Timestamp(0x0102_0304, 0x0506_0708),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
        ]
    }

    fn ts_sack_block() -> Vec<TcpOptionElement> {
        vec![
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(0xdead_beef, 0x0bad_cafe),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgement(
                (0x1000, 0x2000),
                [Some((0x3000, 0x4000)), None, None],
            ),
        ]
    }

    /// An independent (byte-pair) internet-checksum sum.
    fn naive_sum(data: &[u8]) -> u64 {
        data.chunks(2)
            .map(|c| (u64::from(c[0]) << 8) | u64::from(c.get(1).copied().unwrap_or(0)))
            .sum()
    }

    fn naive_fold(mut sum: u64) -> u16 {
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    fn is_ipv6(frame: &[u8]) -> bool {
        frame[12..14] == [0x86, 0xdd]
    }

    /// The offset of the L4 header in a well-formed test frame, its
    /// protocol, and where the pseudo-header's addresses are.
    fn l4_of(frame: &[u8]) -> (usize, u8, std::ops::Range<usize>) {
        if is_ipv6(frame) {
            let (mut at, mut next) = (54, frame[20]);
            while matches!(next, 0 | 43 | 60) {
                next = frame[at];
                at += (usize::from(frame[at + 1]) + 1) * 8;
            }
            (at, next, 22..54)
        } else {
            (14 + usize::from(frame[14] & 0x0f) * 4, frame[23], 26..34)
        }
    }

    /// Replaces the L4 checksum with the folded, non-complemented
    /// pseudo-header sum (IPv4's or IPv6's), as the kernel leaves it for
    /// CHECKSUM_PARTIAL.
    fn make_partial(frame: &mut [u8], csum_offset: usize) {
        let (l4, protocol, addrs) = l4_of(frame);
        let l4_len = (frame.len() - l4) as u64;
        let sum = naive_sum(&frame[addrs]) + u64::from(protocol) + l4_len;
        frame[l4 + csum_offset..l4 + csum_offset + 2]
            .copy_from_slice(&naive_fold(sum).to_be_bytes());
    }

    fn gso_hdr(frame: &[u8], gso_type: u8, gso_size: u16) -> VnetHdr {
        let (l4, protocol, _) = l4_of(frame);
        let (l4_len, csum_offset) = if protocol == IPPROTO_TCP {
            (usize::from(frame[l4 + 12] >> 4) * 4, 16)
        } else {
            (8, 6)
        };
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type,
            hdr_len: (l4 + l4_len) as u16,
            gso_size,
            csum_start: l4 as u16,
            csum_offset,
        }
    }

    fn write_all(seg: &Segments<'_>) -> Vec<Vec<u8>> {
        (0..seg.count())
            .map(|i| {
                // Room to spare, to see that write() reports its own length.
                let mut out = vec![0xa5; seg.segment_len(i) + 7];
                let n = seg.write(i, &mut out);
                assert_eq!(n, seg.segment_len(i), "segment {i}");
                out.truncate(n);
                out
            })
            .collect()
    }

    /// Parses `frame` with etherparse and checks its lengths and checksums.
    fn check_parsed(frame: &[u8]) {
        let parsed = SlicedPacket::from_ethernet(frame).unwrap();
        let ip = match &parsed.net {
            Some(NetSlice::Ipv4(ip)) => ip.header().to_header(),
            Some(NetSlice::Ipv6(ip)) => return check_parsed_ipv6(frame, &parsed, ip),
            None => panic!("not IP"),
        };
        assert_eq!(usize::from(ip.total_len), frame.len() - 14);
        assert_eq!(ip.calc_header_checksum(), ip.header_checksum);
        match parsed.transport.unwrap() {
            TransportSlice::Tcp(tcp) => {
                assert_eq!(
                    tcp.calc_checksum_ipv4(ip.source, ip.destination).unwrap(),
                    tcp.checksum()
                );
            }
            TransportSlice::Udp(udp) => {
                assert_eq!(usize::from(udp.length()), udp.slice().len());
                let want = udp
                    .to_header()
                    .calc_checksum_ipv4(&ip, udp.payload())
                    .unwrap();
                assert_eq!(want, udp.checksum());
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    /// [`check_parsed`] for IPv6 (no extension headers).
    fn check_parsed_ipv6(frame: &[u8], parsed: &SlicedPacket<'_>, ip: &etherparse::Ipv6Slice<'_>) {
        let ip = ip.header().to_header();
        assert_eq!(usize::from(ip.payload_length), frame.len() - 54);
        match parsed.transport.as_ref().unwrap() {
            TransportSlice::Tcp(tcp) => {
                assert_eq!(
                    tcp.calc_checksum_ipv6(ip.source, ip.destination).unwrap(),
                    tcp.checksum()
                );
            }
            TransportSlice::Udp(udp) => {
                assert_eq!(usize::from(udp.length()), udp.slice().len());
                let want = udp
                    .to_header()
                    .calc_checksum_ipv6(&ip, udp.payload())
                    .unwrap();
                assert_eq!(want, udp.checksum());
                assert_ne!(udp.checksum(), 0);
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    /// Cuts a TCP super-frame and compares every segment with one built
    /// independently by etherparse.
    fn tcp_golden(
        family: Family<'_>,
        tcp_options: &[TcpOptionElement],
        gso_type: u8,
        payload_len: usize,
        gso_size: u16,
        max_ip_len: usize,
        seg_payload: usize,
    ) {
        let id = 0xfffe; // wraps on the third segment
        let tcp = tcp_header(0xffff_f000, tcp_options); // so does the sequence
        let payload = pattern(payload_len, 3);
        let mut frame = tcp_frame_on(family, id, &tcp, &payload);
        make_partial(&mut frame, 16);
        let hdr = gso_hdr(&frame, gso_type, gso_size);
        assert!(hdr.is_gso());

        let seg = Segments::plan(&frame, &hdr, max_ip_len).unwrap();
        let count = payload_len.div_ceil(seg_payload);
        assert_eq!(seg.count(), count);
        let got = write_all(&seg);
        for (i, chunk) in payload.chunks(seg_payload).enumerate() {
            let mut want_tcp = tcp.clone();
            want_tcp.sequence_number = tcp.sequence_number.wrapping_add((i * seg_payload) as u32);
            want_tcp.fin = i + 1 == count;
            want_tcp.psh = i + 1 == count;
            want_tcp.cwr = i == 0;
            let want = tcp_frame_on(family, id.wrapping_add(i as u16), &want_tcp, chunk);
            assert_eq!(got[i], want, "segment {i}");
            assert!(got[i].len() - 14 <= max_ip_len);
            check_parsed(&got[i]);
        }
    }

    #[test]
    fn tcp_golden_mss_1448_mtu_1500() {
        // 20 + 32 (timestamps, SACK-permitted) + 1448 = 1500: the MSS binds.
        tcp_golden(
            Family::V4(&[]),
            &ts_sack_permitted(),
            GSO_TCPV4,
            5000,
            1448,
            1500,
            1448,
        );
    }

    #[test]
    fn tcp_golden_cut_finer_than_mss_for_mtu_1452() {
        tcp_golden(
            Family::V4(&[]),
            &ts_sack_permitted(),
            GSO_TCPV4,
            5000,
            1448,
            1452,
            1400,
        );
    }

    #[test]
    fn tcp_golden_sack_block_ipv4_options_and_ecn() {
        // 24 (Router Alert) + 52 (timestamps, two SACK blocks): 1424 per segment.
        let opts = ts_sack_block();
        tcp_golden(
            Family::V4(&ROUTER_ALERT),
            &opts,
            GSO_TCPV4 | GSO_ECN,
            5001,
            1448,
            1500,
            1424,
        );
    }

    #[test]
    fn tcp_single_segment_is_the_original_with_full_checksum() {
        let tcp = tcp_header(77, &ts_sack_permitted());
        let original = tcp_frame(9, &[], &tcp, &pattern(333, 1));
        let mut frame = original.clone();
        make_partial(&mut frame, 16);
        let seg = Segments::plan(&frame, &gso_hdr(&frame, GSO_TCPV4, 1448), 1500).unwrap();
        assert_eq!(seg.count(), 1);
        // FIN, PSH and CWR all stay: the one segment is first and last.
        assert_eq!(write_all(&seg), vec![original]);
    }

    #[test]
    fn tcp_without_payload_is_one_segment() {
        let tcp = tcp_header(77, &[]);
        let original = tcp_frame(9, &[], &tcp, &[]);
        let mut frame = original.clone();
        make_partial(&mut frame, 16);
        let seg = Segments::plan(&frame, &gso_hdr(&frame, GSO_TCPV4, 1448), 1500).unwrap();
        assert_eq!(write_all(&seg), vec![original]);
    }

    #[test]
    fn ipv4_total_length_zero_is_accepted() {
        let tcp = tcp_header(1, &ts_sack_permitted());
        let mut frame = tcp_frame(1, &[], &tcp, &pattern(4000, 2));
        make_partial(&mut frame, 16);
        let hdr = gso_hdr(&frame, GSO_TCPV4, 1448);
        let want = write_all(&Segments::plan(&frame, &hdr, 1500).unwrap());
        frame[16..18].copy_from_slice(&[0, 0]);
        let got = write_all(&Segments::plan(&frame, &hdr, 1500).unwrap());
        assert_eq!(got, want);
    }

    #[test]
    fn udp_l4_golden() {
        let id = 0x4242;
        let payload = pattern(3500, 9);
        let mut frame = udp_frame(id, &ROUTER_ALERT, &payload);
        make_partial(&mut frame, 6);
        let hdr = gso_hdr(&frame, GSO_UDP_L4, 1000);
        // max_ip_len is ignored for UDP: datagrams are the application's.
        let seg = Segments::plan(&frame, &hdr, 576).unwrap();
        assert_eq!(seg.count(), 4);
        let got = write_all(&seg);
        for (i, chunk) in payload.chunks(1000).enumerate() {
            let want = udp_frame(id + i as u16, &ROUTER_ALERT, chunk);
            assert_eq!(got[i], want, "datagram {i}");
            check_parsed(&got[i]);
        }
        assert_eq!(got[3].len(), 14 + 24 + 8 + 500);
    }

    #[test]
    fn udp_l4_single_datagram() {
        let original = udp_frame(5, &[], &pattern(999, 4));
        let mut frame = original.clone();
        make_partial(&mut frame, 6);
        let seg = Segments::plan(&frame, &gso_hdr(&frame, GSO_UDP_L4, 1000), 0).unwrap();
        assert_eq!(write_all(&seg), vec![original]);
    }

    #[test]
    fn tcp6_golden_mss_1428_mtu_1500() {
        // 40 + 32 (timestamps, SACK-permitted) + 1428 = 1500: the MSS binds,
        // as for a Linux host at MTU 1500 (MSS 1440 less 12 of timestamps).
        tcp_golden(
            Family::V6,
            &ts_sack_permitted(),
            GSO_TCPV6,
            5000,
            1428,
            1500,
            1428,
        );
    }

    #[test]
    fn tcp6_golden_cut_finer_than_mss_for_ip_len_1280() {
        // IPv6's minimum MTU: 1280 - 40 - 32 = 1208 per segment.
        tcp_golden(
            Family::V6,
            &ts_sack_permitted(),
            GSO_TCPV6,
            5000,
            1428,
            1280,
            1208,
        );
    }

    #[test]
    fn tcp6_golden_sack_block_and_ecn() {
        // 40 + 52 (timestamps, two SACK blocks): 1408 per segment at 1500;
        // CWR on the first segment only.
        tcp_golden(
            Family::V6,
            &ts_sack_block(),
            GSO_TCPV6 | GSO_ECN,
            5001,
            1428,
            1500,
            1408,
        );
    }

    #[test]
    fn tcp6_single_segment_is_the_original_with_full_checksum() {
        for payload_len in [0, 1, 333, 1428] {
            let tcp = tcp_header(77, &ts_sack_permitted());
            let original = tcp6_frame(&tcp, &pattern(payload_len, 1));
            let mut frame = original.clone();
            make_partial(&mut frame, 16);
            let seg = Segments::plan(&frame, &gso_hdr(&frame, GSO_TCPV6, 1428), 1500).unwrap();
            assert_eq!(seg.count(), 1, "{payload_len}");
            // FIN, PSH and CWR all stay: the one segment is first and last.
            assert_eq!(write_all(&seg), vec![original], "{payload_len}");
        }
    }

    #[test]
    fn ipv6_payload_length_zero_is_accepted() {
        let tcp = tcp_header(1, &ts_sack_permitted());
        let mut frame = tcp6_frame(&tcp, &pattern(4000, 2));
        make_partial(&mut frame, 16);
        let hdr = gso_hdr(&frame, GSO_TCPV6, 1428);
        let want = write_all(&Segments::plan(&frame, &hdr, 1500).unwrap());
        frame[18..20].copy_from_slice(&[0, 0]);
        let got = write_all(&Segments::plan(&frame, &hdr, 1500).unwrap());
        assert_eq!(got, want);
    }

    #[test]
    fn udp_l4_over_ipv6_golden() {
        let payload = pattern(3500, 9);
        let mut frame = udp6_frame(&payload);
        make_partial(&mut frame, 6);
        let hdr = gso_hdr(&frame, GSO_UDP_L4, 1000);
        // max_ip_len is ignored for UDP: datagrams are the application's.
        let seg = Segments::plan(&frame, &hdr, 1280).unwrap();
        assert_eq!(seg.count(), 4);
        let got = write_all(&seg);
        for (i, chunk) in payload.chunks(1000).enumerate() {
            assert_eq!(got[i], udp6_frame(chunk), "datagram {i}");
            check_parsed(&got[i]);
        }
        assert_eq!(got[3].len(), 14 + 40 + 8 + 500);
    }

    #[test]
    fn udp_l4_over_ipv6_zero_checksum_is_sent_as_ffff() {
        // The first datagram's checksum computes to 0.
        let first = zero_sum_frame(&udp6_frame, 6);
        let first_payload = &first[14 + 40 + 8..];
        assert_eq!(first_payload.len(), 100);
        let mut payload = first_payload.to_vec();
        payload.extend(pattern(90, 4));
        let mut frame = udp6_frame(&payload);
        make_partial(&mut frame, 6);
        let seg = Segments::plan(&frame, &gso_hdr(&frame, GSO_UDP_L4, 100), 0).unwrap();
        let got = write_all(&seg);
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0][60..62], &[0xff, 0xff]);
        assert_eq!(got[0], first);
        assert_eq!(got[1], udp6_frame(&payload[100..]));
    }

    /// `original` (a frame with its checksum right) with the field at its
    /// L4 header + `csum_offset` made partial as the kernel leaves it, then
    /// completed: byte for byte the original again.
    fn assert_completes_to(original: &[u8], csum_offset: u16) {
        let mut frame = original.to_vec();
        make_partial(&mut frame, usize::from(csum_offset));
        assert_ne!(frame, original);
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: l4_of(original).0 as u16,
            csum_offset,
            ..Default::default()
        };
        complete_checksum(&mut frame, &hdr).unwrap();
        assert_eq!(frame, original);
    }

    #[test]
    fn complete_checksum_tcp_golden() {
        // Odd payload length: the trailing byte is padded.
        let tcp = tcp_header(1000, &ts_sack_block());
        assert_completes_to(&tcp_frame(3, &[], &tcp, &pattern(1001, 5)), 16);
    }

    #[test]
    fn complete_checksum_udp_golden() {
        assert_completes_to(&udp_frame(3, &[], &pattern(777, 6)), 6);
    }

    /// A frame built by `build` from a 100-byte payload whose L4 checksum
    /// (at `csum_offset` in the L4 header) computes to 0: the two last
    /// payload bytes make the sum 0xffff, being the checksum of the frame
    /// with them zero.
    fn zero_sum_frame(build: &dyn Fn(&[u8]) -> Vec<u8>, csum_offset: usize) -> Vec<u8> {
        let mut payload = pattern(100, 7);
        payload[98..].copy_from_slice(&[0, 0]);
        let with_zeros = build(&payload);
        let at = l4_of(&with_zeros).0 + csum_offset;
        payload[98..].copy_from_slice(&with_zeros[at..at + 2]);
        build(&payload)
    }

    #[test]
    fn complete_checksum_udp_zero_is_stored_as_ffff() {
        let original = zero_sum_frame(&|p| udp_frame(3, &[], p), 6);
        assert_eq!(&original[40..42], &[0xff, 0xff]);
        assert_completes_to(&original, 6);
    }

    #[test]
    fn complete_checksum_tcp_over_ipv6_golden() {
        // Odd payload length: the trailing byte is padded.
        let tcp = tcp_header(1000, &ts_sack_block());
        assert_completes_to(&tcp6_frame(&tcp, &pattern(1001, 5)), 16);
        let tcp = tcp_header(1, &[]);
        assert_completes_to(&tcp6_frame(&tcp, &[]), 16);
    }

    #[test]
    fn complete_checksum_udp_over_ipv6_golden() {
        assert_completes_to(&udp6_frame(&pattern(777, 6)), 6);
        assert_completes_to(&udp6_frame(&[]), 6);
    }

    #[test]
    fn complete_checksum_udp_over_ipv6_zero_is_stored_as_ffff() {
        let original = zero_sum_frame(&udp6_frame, 6);
        assert_eq!(&original[60..62], &[0xff, 0xff]);
        assert_completes_to(&original, 6);
    }

    #[test]
    fn complete_checksum_udp_over_ipv6_extension_headers_zero_is_stored_as_ffff() {
        // Hop-by-hop, destination options, routing and final destination
        // options: 32 bytes between the IPv6 and the UDP header.
        let exts = Ipv6Extensions {
            hop_by_hop_options: Some(padn_ext()),
            destination_options: Some(padn_ext()),
            routing: Some(Ipv6RoutingExtensions {
                routing: padn_ext(),
                final_destination_options: Some(padn_ext()),
            }),
            ..Default::default()
        };
        let build = |p: &[u8]| udp6_frame_with(exts.clone(), p);
        let original = zero_sum_frame(&build, 6);
        assert_eq!(l4_of(&original).0, 14 + 40 + 32);
        assert_eq!(&original[92..94], &[0xff, 0xff]);
        assert_completes_to(&original, 6);
        assert_completes_to(&build(&pattern(555, 2)), 6);
    }

    #[test]
    fn complete_checksum_tcp_zero_stays_zero() {
        // 0 and 0xffff are the same sum; only UDP gives 0 a meaning. As
        // etherparse (and the segmentation) leave it.
        for original in [
            zero_sum_frame(&|p| tcp_frame(3, &[], &tcp_header(9, &[]), p), 16),
            zero_sum_frame(&|p| tcp6_frame(&tcp_header(9, &[]), p), 16),
        ] {
            let at = l4_of(&original).0 + 16;
            assert_eq!(&original[at..at + 2], &[0, 0]);
            assert_completes_to(&original, 16);
        }
    }

    #[test]
    fn complete_checksum_without_the_flag_does_nothing() {
        let mut frame = udp_frame(3, &[], &pattern(50, 1));
        make_partial(&mut frame, 6);
        let before = frame.clone();
        let hdr = VnetHdr {
            csum_start: 34,
            csum_offset: 6,
            ..Default::default()
        };
        complete_checksum(&mut frame, &hdr).unwrap();
        assert_eq!(frame, before);
    }

    #[test]
    fn checksum_offsets_beyond_the_frame_are_refused() {
        let mut frame = udp_frame(3, &[], &pattern(50, 1));
        let len = frame.len() as u16;
        let refused = [
            (len, 0),
            (len - 1, 0),
            (34, len - 35),
            (0, len - 1),
            (u16::MAX, u16::MAX),
        ];
        for (csum_start, csum_offset) in refused {
            let hdr = VnetHdr {
                flags: F_NEEDS_CSUM,
                csum_start,
                csum_offset,
                ..Default::default()
            };
            let before = frame.clone();
            assert_eq!(
                complete_checksum(&mut frame, &hdr),
                Err(OffloadError::BadChecksumOffsets),
                "{csum_start}+{csum_offset}"
            );
            assert_eq!(frame, before);
        }
        // The last two bytes are still inside.
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: len - 36,
            ..Default::default()
        };
        assert_eq!(complete_checksum(&mut frame, &hdr), Ok(()));
    }

    #[test]
    fn vnet_hdr_parse_and_emit() {
        let bytes = [1, 0x81, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00];
        let hdr = VnetHdr::parse(&bytes);
        assert_eq!(
            hdr,
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_TCPV4 | GSO_ECN,
                hdr_len: 0x42,
                gso_size: 1448,
                csum_start: 34,
                csum_offset: 16,
            }
        );
        assert!(hdr.needs_csum() && hdr.is_gso());
        let mut out = [0; VNET_HDR_LEN];
        hdr.emit(&mut out);
        assert_eq!(out, bytes);
        let plain = VnetHdr {
            gso_type: GSO_ECN,
            ..Default::default()
        };
        assert!(!plain.needs_csum() && !plain.is_gso());
    }

    fn plan_err(frame: &[u8], hdr: &VnetHdr, max_ip_len: usize) -> OffloadError {
        Segments::plan(frame, hdr, max_ip_len).unwrap_err()
    }

    fn some_tcp_frame() -> Vec<u8> {
        let tcp = tcp_header(1, &ts_sack_permitted());
        tcp_frame(1, &[], &tcp, &pattern(3000, 1))
    }

    fn some_tcp6_frame() -> Vec<u8> {
        let tcp = tcp_header(1, &ts_sack_permitted());
        tcp6_frame(&tcp, &pattern(3000, 1))
    }

    #[test]
    fn unsupported_gso_types_are_refused() {
        for frame in [some_tcp_frame(), some_tcp6_frame()] {
            for gso_type in [
                GSO_NONE,
                2,
                GSO_UDP,
                GSO_UDP | GSO_ECN,
                GSO_UDP_L4 | GSO_ECN,
                6,
                0x7f,
                0xff,
            ] {
                let hdr = gso_hdr(&frame, gso_type, 1448);
                assert_eq!(
                    plan_err(&frame, &hdr, 1500),
                    OffloadError::UnsupportedGso,
                    "{gso_type}"
                );
            }
        }
    }

    #[test]
    fn tcp_gso_type_of_the_other_ip_version_is_malformed() {
        let v4 = some_tcp_frame();
        let v6 = some_tcp6_frame();
        for (frame, gso_type) in [
            (&v4, GSO_TCPV6),
            (&v4, GSO_TCPV6 | GSO_ECN),
            (&v6, GSO_TCPV4),
            (&v6, GSO_TCPV4 | GSO_ECN),
        ] {
            let hdr = gso_hdr(frame, gso_type, 1428);
            assert_eq!(
                plan_err(frame, &hdr, 1500),
                OffloadError::Malformed,
                "{gso_type}"
            );
        }
    }

    #[test]
    fn ipv6_extension_headers_are_refused() {
        let frag = Ipv6FragmentHeader::new(IpNumber(59), IpFragOffset::ZERO, false, 7);
        let routing = Ipv6RoutingExtensions {
            routing: padn_ext(),
            final_destination_options: None,
        };
        let with = [
            Ipv6Extensions {
                hop_by_hop_options: Some(padn_ext()),
                ..Default::default()
            },
            Ipv6Extensions {
                destination_options: Some(padn_ext()),
                ..Default::default()
            },
            Ipv6Extensions {
                routing: Some(routing),
                ..Default::default()
            },
            Ipv6Extensions {
                fragment: Some(frag),
                ..Default::default()
            },
        ];
        for exts in with {
            let tcp = tcp_header(1, &ts_sack_permitted());
            let builder = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
                .ip(ipv6_with(exts.clone()))
                .tcp_header(tcp);
            let mut frame = Vec::new();
            builder.write(&mut frame, &pattern(3000, 1)).unwrap();
            let hdr = VnetHdr {
                gso_type: GSO_TCPV6,
                gso_size: 1428,
                ..Default::default()
            };
            assert_eq!(
                plan_err(&frame, &hdr, 1500),
                OffloadError::UnsupportedGso,
                "{exts:?}"
            );
            let frame = udp6_frame_with(exts.clone(), &pattern(3000, 1));
            let hdr = VnetHdr {
                gso_type: GSO_UDP_L4,
                gso_size: 1000,
                ..Default::default()
            };
            assert_eq!(
                plan_err(&frame, &hdr, 1500),
                OffloadError::UnsupportedGso,
                "{exts:?}"
            );
        }
        // The rest of the extension headers, by their next header alone.
        let mut frame = some_tcp6_frame();
        let hdr = gso_hdr(&frame, GSO_TCPV6, 1428);
        for next in [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254] {
            frame[20] = next;
            assert_eq!(
                plan_err(&frame, &hdr, 1500),
                OffloadError::UnsupportedGso,
                "{next}"
            );
        }
    }

    #[test]
    fn vlan_tagged_frames_are_refused() {
        let tagged = || {
            PacketBuilder::ethernet2(SRC_MAC, DST_MAC).single_vlan(VlanId::try_new(100).unwrap())
        };
        let mut v4 = Vec::new();
        tagged()
            .ipv4(SRC_IP, DST_IP, 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v4, &pattern(3000, 1))
            .unwrap();
        let mut v6 = Vec::new();
        tagged()
            .ipv6(SRC_IP6, DST_IP6, 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v6, &pattern(3000, 1))
            .unwrap();
        for (frame, gso_type) in [(v4, GSO_TCPV4), (v6, GSO_TCPV6)] {
            let hdr = VnetHdr {
                gso_type,
                gso_size: 1428,
                ..Default::default()
            };
            assert_eq!(plan_err(&frame, &hdr, 1500), OffloadError::UnsupportedGso);
        }
    }

    #[test]
    fn truncated_frames_are_malformed() {
        let frame = some_tcp_frame();
        let hdr = gso_hdr(&frame, GSO_TCPV4, 1448);
        // Cut in the headers, or in the payload (the IPv4 total length then
        // disagrees with the frame).
        for len in (0..80).chain([100, 1000, frame.len() - 1]) {
            assert_eq!(
                plan_err(&frame[..len], &hdr, 1500),
                OffloadError::Malformed,
                "{len}"
            );
        }
        let udp = udp_frame(1, &[], &pattern(3000, 1));
        let hdr = gso_hdr(&udp, GSO_UDP_L4, 1000);
        for len in 0..42 {
            assert_eq!(
                plan_err(&udp[..len], &hdr, 1500),
                OffloadError::Malformed,
                "{len}"
            );
        }
        // IPv6: cut in the headers (TCP's ends at 86), or in the payload
        // (the payload length then disagrees with the frame).
        let frame = some_tcp6_frame();
        let hdr = gso_hdr(&frame, GSO_TCPV6, 1428);
        for len in (0..100).chain([1000, frame.len() - 1]) {
            assert_eq!(
                plan_err(&frame[..len], &hdr, 1500),
                OffloadError::Malformed,
                "{len}"
            );
        }
        let udp = udp6_frame(&pattern(3000, 1));
        let hdr = gso_hdr(&udp, GSO_UDP_L4, 1000);
        for len in 0..62 {
            assert_eq!(
                plan_err(&udp[..len], &hdr, 1500),
                OffloadError::Malformed,
                "{len}"
            );
        }
    }

    #[test]
    fn bad_headers_are_malformed() {
        let frame = some_tcp_frame();
        let hdr = gso_hdr(&frame, GSO_TCPV4, 1448);
        let malformed = |edit: &dyn Fn(&mut Vec<u8>), hdr: &VnetHdr, max_ip_len: usize| {
            let mut f = frame.clone();
            edit(&mut f);
            assert_eq!(plan_err(&f, hdr, max_ip_len), OffloadError::Malformed);
        };
        malformed(&|f| f[14] = 0x44, &hdr, 1500); // IHL 4
        malformed(&|f| f[14] = 0x65, &hdr, 1500); // IPv6 version in an IPv4 ethertype
        malformed(&|f| f[34 + 12] = 0x40, &hdr, 1500); // TCP data offset 4
        malformed(&|f| f[20] |= 0x20, &hdr, 1500); // MF: a fragment
        malformed(&|f| f[21] = 1, &hdr, 1500); // fragment offset
        malformed(&|f| f[17] ^= 1, &hdr, 1500); // total length off by one
        malformed(&|_| {}, &VnetHdr { gso_size: 0, ..hdr }, 1500);
        malformed(
            &|_| {},
            &VnetHdr {
                gso_type: GSO_UDP_L4,
                ..hdr
            },
            1500,
        ); // protocol is TCP
        malformed(&|_| {}, &hdr, 20 + 32 + 7); // fewer than 8 payload bytes per segment
        assert!(Segments::plan(&frame, &hdr, 20 + 32 + 8).is_ok());
    }

    #[test]
    fn bad_ipv6_headers_are_malformed() {
        let frame = some_tcp6_frame();
        let hdr = gso_hdr(&frame, GSO_TCPV6, 1428);
        let malformed = |edit: &dyn Fn(&mut Vec<u8>), hdr: &VnetHdr, max_ip_len: usize| {
            let mut f = frame.clone();
            edit(&mut f);
            assert_eq!(plan_err(&f, hdr, max_ip_len), OffloadError::Malformed);
        };
        malformed(&|f| f[14] = 0x4a, &hdr, 1500); // IPv4 version in an IPv6 ethertype
        malformed(&|f| f[54 + 12] = 0x40, &hdr, 1500); // TCP data offset 4
        malformed(&|f| f[19] ^= 1, &hdr, 1500); // payload length off by one
        malformed(&|f| f[18] = 0xff, &hdr, 1500); // payload length beyond the frame
        malformed(&|f| f[20] = 58, &hdr, 1500); // ICMPv6
        malformed(&|f| f[20] = 59, &hdr, 1500); // no next header
        malformed(&|f| f[20] = IPPROTO_UDP, &hdr, 1500);
        malformed(&|_| {}, &VnetHdr { gso_size: 0, ..hdr }, 1500);
        malformed(
            &|_| {},
            &VnetHdr {
                gso_type: GSO_UDP_L4,
                ..hdr
            },
            1500,
        ); // next header is TCP
        malformed(&|_| {}, &hdr, 40 + 32 + 7); // fewer than 8 payload bytes per segment
        assert!(Segments::plan(&frame, &hdr, 40 + 32 + 8).is_ok());
        let udp = udp6_frame(&pattern(3000, 1));
        let udp_hdr = gso_hdr(&udp, GSO_UDP_L4, 1000);
        let mut tcp_next = udp.clone();
        tcp_next[20] = IPPROTO_TCP;
        assert_eq!(plan_err(&tcp_next, &udp_hdr, 1500), OffloadError::Malformed);
    }

    #[test]
    fn ipv6_segments_fit_the_payload_length_field() {
        // Payload length 0 and a frame longer than 64 KB: a segment whose
        // payload length would not fit 16 bits is refused, as in IPv4.
        let tcp = tcp_header(1, &[]);
        let mut frame = tcp6_frame(&tcp, &pattern(60_000, 1));
        frame.extend(pattern(10_000, 2));
        frame[18..20].copy_from_slice(&[0, 0]);
        let hdr = gso_hdr(&frame, GSO_TCPV6, u16::MAX);
        assert_eq!(plan_err(&frame, &hdr, usize::MAX), OffloadError::Malformed);
        // 20 + 65515 = 65535: fits.
        let hdr = gso_hdr(&frame, GSO_TCPV6, 65_515);
        let seg = Segments::plan(&frame, &hdr, usize::MAX).unwrap();
        assert_eq!(seg.count(), 2);
        let got = write_all(&seg);
        assert_eq!(&got[0][18..20], &[0xff, 0xff]);
        check_parsed(&got[0]);
        check_parsed(&got[1]);
    }

    #[test]
    fn write_refuses_short_buffers_and_missing_segments() {
        let frame = some_tcp_frame();
        let seg = Segments::plan(&frame, &gso_hdr(&frame, GSO_TCPV4, 1000), 1500).unwrap();
        assert_eq!(seg.count(), 3);
        let mut out = vec![0; 2000];
        assert_eq!(seg.write(0, &mut out[..seg.segment_len(0) - 1]), 0);
        assert_eq!(seg.write(0, &mut out), seg.segment_len(0));
        assert_eq!(seg.write(3, &mut out), 0);
        assert_eq!(seg.segment_len(3), 0);
        assert_eq!(seg.write(usize::MAX, &mut out), 0);
        assert_eq!(seg.segment_len(usize::MAX), 0);
        assert!(format!("{seg:?}").contains("count: 3"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn sum_matches_a_naive_sum(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(fold(sum_be_words(&data)), naive_fold(naive_sum(&data)));
        }

        #[test]
        fn arbitrary_input_never_panics(
            kind in 0u8..7,
            random in proptest::collection::vec(any::<u8>(), 0..160),
            payload_len in 0usize..600,
            mutations in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
            keep in proptest::option::of(any::<u16>()),
            flags in any::<u8>(),
            gso_type in prop_oneof![
                Just(GSO_TCPV4),
                Just(GSO_UDP_L4),
                Just(GSO_TCPV4 | GSO_ECN),
                Just(GSO_TCPV6),
                Just(GSO_TCPV6 | GSO_ECN),
                any::<u8>(),
            ],
            gso_size in prop_oneof![0u16..80, any::<u16>()],
            csum_start in prop_oneof![0u16..80, any::<u16>()],
            csum_offset in prop_oneof![0u16..40, any::<u16>()],
            max_ip_len in prop_oneof![0usize..200, any::<usize>()],
            out_len in 0usize..700,
        ) {
            let payload = pattern(payload_len, 0);
            let mut frame = match kind {
                0 => random,
                1 => tcp_frame(7, &[], &tcp_header(5, &ts_sack_block()), &payload),
                2 => udp_frame(7, &ROUTER_ALERT, &payload),
                3 => tcp6_frame(&tcp_header(5, &ts_sack_block()), &payload),
                4 => udp6_frame(&payload),
                5 => {
                    // UDP after extension headers, for the checksum's walk.
                    let exts = Ipv6Extensions {
                        hop_by_hop_options: Some(padn_ext()),
                        routing: Some(Ipv6RoutingExtensions {
                            routing: padn_ext(),
                            final_destination_options: Some(padn_ext()),
                        }),
                        ..Default::default()
                    };
                    udp6_frame_with(exts, &payload)
                }
                _ => {
                    // Random bytes behind an IPv6 Ethernet header and
                    // version nibble.
                    let mut f = random;
                    if let Some(eth) = f.get_mut(12..15) {
                        eth.copy_from_slice(&[0x86, 0xdd, 0x60]);
                    }
                    f
                }
            };
            for (at, v) in mutations {
                if !frame.is_empty() {
                    let i = usize::from(at) % frame.len();
                    frame[i] = v;
                }
            }
            if let Some(keep) = keep {
                frame.truncate(usize::from(keep) % (frame.len() + 1));
            }
            let hdr = VnetHdr { flags, gso_type, hdr_len: 0, gso_size, csum_start, csum_offset };

            let mut copy = frame.clone();
            let _ = complete_checksum(&mut copy, &hdr);
            prop_assert_eq!(copy.len(), frame.len());

            if let Ok(seg) = Segments::plan(&frame, &hdr, max_ip_len) {
                prop_assert!(seg.count() >= 1);
                let mut out = vec![0u8; out_len];
                for i in 0..seg.count().min(1024) {
                    let len = seg.segment_len(i);
                    prop_assert!(len <= frame.len());
                    let n = seg.write(i, &mut out);
                    let want = if len <= out_len { len } else { 0 };
                    prop_assert_eq!(n, want);
                }
                prop_assert_eq!(seg.write(seg.count(), &mut out), 0);
                prop_assert_eq!(seg.segment_len(seg.count()), 0);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn tcp_segments_reassemble(
            v6 in any::<bool>(),
            mss in 1u16..=1460,
            payload_len in 0usize..=65000,
            options in 0u8..3,
            max_ip_len in 128usize..=9000,
            seq in any::<u32>(),
            id in any::<u16>(),
            fin in any::<bool>(),
            psh in any::<bool>(),
            cwr in any::<bool>(),
            seed in any::<u8>(),
        ) {
            let options = match options {
                0 => vec![],
                1 => vec![TcpOptionElement::Timestamp(seq, !seq)],
                _ => ts_sack_block(),
            };
            let mut tcp = tcp_header(seq, &options);
            tcp.fin = fin;
            tcp.psh = psh;
            tcp.cwr = cwr;
            let payload = pattern(payload_len, seed);
            let (family, gso_type, ip_hlen) = if v6 {
                (Family::V6, GSO_TCPV6, 40)
            } else {
                (Family::V4(&[]), GSO_TCPV4, 20)
            };
            let mut frame = tcp_frame_on(family, id, &tcp, &payload);
            make_partial(&mut frame, 16);
            let hdr = gso_hdr(&frame, gso_type, mss);
            let seg = Segments::plan(&frame, &hdr, max_ip_len).unwrap();
            let per_seg = usize::from(mss).min(max_ip_len - ip_hlen - tcp.header_len());
            prop_assert_eq!(seg.count(), payload_len.div_ceil(per_seg).max(1));

            let mut joined = Vec::with_capacity(payload_len);
            let mut out = vec![0u8; 14 + max_ip_len];
            for i in 0..seg.count() {
                let n = seg.write(i, &mut out);
                prop_assert!(n > 0);
                prop_assert!(n - 14 <= max_ip_len);
                let bytes = &out[..n];
                check_parsed(bytes);
                let parsed = SlicedPacket::from_ethernet(bytes).unwrap();
                match &parsed.net {
                    Some(NetSlice::Ipv4(ip)) if !v6 => {
                        prop_assert_eq!(ip.header().identification(), id.wrapping_add(i as u16));
                        prop_assert!(ip.header().dont_fragment());
                    }
                    Some(NetSlice::Ipv6(ip)) if v6 => {
                        prop_assert_eq!(ip.header().traffic_class(), 0x2a);
                        prop_assert_eq!(ip.header().flow_label().value(), 0x1_2345);
                        prop_assert_eq!(ip.header().source(), SRC_IP6);
                        prop_assert_eq!(ip.header().destination(), DST_IP6);
                    }
                    other => panic!("wrong network layer {other:?}"),
                }
                let Some(TransportSlice::Tcp(t)) = parsed.transport else { panic!("not TCP") };
                prop_assert_eq!(t.sequence_number(), seq.wrapping_add(joined.len() as u32));
                prop_assert_eq!(t.options(), tcp.options.as_slice());
                let last = i + 1 == seg.count();
                prop_assert_eq!(t.fin(), fin && last);
                prop_assert_eq!(t.psh(), psh && last);
                prop_assert_eq!(t.cwr(), cwr && i == 0);
                prop_assert!(t.ack() && t.ece());
                if last {
                    prop_assert!(t.payload().len() <= per_seg);
                } else {
                    prop_assert_eq!(t.payload().len(), per_seg);
                }
                joined.extend_from_slice(t.payload());
            }
            prop_assert_eq!(joined, payload);
        }
    }
}
