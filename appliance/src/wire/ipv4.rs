//! IPv4 headers (RFC 791).
//!
//! [`Ipv4Packet::new_checked`] validates version, IHL and total length against
//! the buffer, after which no accessor panics. The view is deliberately
//! permissive about options and fragments: it exposes them
//! ([`Ipv4Packet::has_options`], [`Ipv4Packet::is_fragment`]) and leaves the
//! policy (drop, punt to the slow path, ...) to the caller.

use std::net::Ipv4Addr;

use super::bytes::{read_ipv4, read_u16, write_ipv4, write_u16};
use super::checksum;
use super::{Error, Result};

/// The IPv4 protocol field. A newtype so unknown protocols pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const ICMP: IpProtocol = IpProtocol(1);
    pub const IGMP: IpProtocol = IpProtocol(2);
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        IpProtocol(v)
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        v.0
    }
}

/// The Router Alert option (RFC 2113), which RFC 2236 and RFC 3376 require
/// on every IGMP message; pass it to [`Ipv4Repr::emit_with_options`].
pub const ROUTER_ALERT_OPTION: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

/// RFC 1812 §5.3.7: addresses no packet may come from or be routed to:
/// "this network" 0/8, loopback 127/8 and the reserved 240/4 (which holds
/// the limited broadcast).
#[inline]
pub fn is_martian(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    first == 0 || first == 127 || first >= 240
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const MIN_HEADER_LEN: usize = 20;

    /// Wraps `buffer` without validation; see the module contract.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer`, guaranteeing all accessors are panic-free.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validates everything the accessors index by. The buffer may be longer
    /// than `total_len` (Ethernet pads short frames); the excess is ignored.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let header_len = self.header_len();
        if header_len < Self::MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if header_len > total_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
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
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    // Always inlined, as `payload`: the per-packet checks call them several
    // times, and out of line they cost a call each (seen in profiles).
    #[inline(always)]
    fn flags_and_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_and_offset() & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_and_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the wire field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_and_offset() & OFFSET_MASK) * 8
    }

    /// True for any piece of a fragmented datagram, first one included.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    #[inline]
    pub fn has_options(&self) -> bool {
        self.header_len() > Self::MIN_HEADER_LEN
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Alias of [`Self::ttl`] for code shared with IPv6 naming.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.ttl()
    }

    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// True if the header (options included) sums to 0xFFFF.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let data = self.buffer.as_ref();
        let header = &data[..self.header_len()];
        // Almost every header has no options: a sum over a length known at
        // compile time is unrolled into five additions.
        let sum = match <&[u8; 20]>::try_from(header) {
            Ok(fixed) => checksum::sum(fixed),
            Err(_) => checksum::sum(header),
        };
        checksum::fold(sum) == 0xffff
    }

    /// Raw option bytes between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::MIN_HEADER_LEN..self.header_len()]
    }

    /// The bytes `header_len..total_len`: link-layer padding is excluded.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and a header length in bytes, which must be a multiple
    /// of 4 between 20 and 60.
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len % 4 == 0 && (20..=60).contains(&header_len));
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (dscp << 2) | (*b & 0x03);
    }

    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0x03) | (ecn & 0x03);
    }

    /// Changing the total length can invalidate the `new_checked` guarantee;
    /// see the module contract.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    fn set_flags_and_offset(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, value);
    }

    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let raw = self.flags_and_offset() & !FLAG_DF;
        self.set_flags_and_offset(raw | if value { FLAG_DF } else { 0 });
    }

    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let raw = self.flags_and_offset() & !FLAG_MF;
        self.set_flags_and_offset(raw | if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset in bytes; it must be a multiple of 8.
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        debug_assert!(bytes % 8 == 0);
        let raw = self.flags_and_offset() & !OFFSET_MASK;
        self.set_flags_and_offset(raw | (bytes / 8));
    }

    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    #[inline]
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.0;
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SRC_ADDR, addr);
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::DST_ADDR, addr);
    }

    /// Recomputes the header checksum over `header_len` bytes.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let sum = checksum::checksum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(sum);
    }

    /// Decrements the TTL and patches the checksum incrementally (RFC 1624),
    /// so forwarding costs O(1) instead of re-summing the header (options
    /// included). Does nothing when the TTL is already 0: the caller must
    /// check `ttl() <= 1` first and answer with ICMP time exceeded instead
    /// of forwarding.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let data = self.buffer.as_ref();
        let ttl = data[field::TTL];
        if ttl == 0 {
            return;
        }
        let proto = data[field::PROTOCOL];
        let old_word = u16::from_be_bytes([ttl, proto]);
        let new_word = u16::from_be_bytes([ttl - 1, proto]);
        let updated = checksum::incremental_update(self.checksum(), old_word, new_word);
        self.set_ttl(ttl - 1);
        self.set_checksum(updated);
    }

    /// Option bytes, writable in place.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[Self::MIN_HEADER_LEN..header_len]
    }

    /// The bytes `header_len..total_len`, writable in place.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an IPv4 header. Options are not represented: `parse`
/// accepts them (see [`Ipv4Packet::options`]) and `emit` writes a 20-byte
/// header unless [`Ipv4Repr::emit_with_options`] is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    pub payload_len: usize,
    pub ttl: u8,
    pub dscp: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    pub const HEADER_LEN: usize = 20;

    /// Parses and verifies the header checksum. Options and fragments are
    /// accepted: whether to handle them is the caller's decision.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Length of the header `emit` writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Writes a 20-byte header (ECN 0, not a fragment) with its checksum;
    /// the payload is left untouched.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes, or (debug builds) if
    /// `payload_len` does not fit in the 16-bit total length.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        self.emit_with_options(packet, &[]);
    }

    /// Like [`Self::emit`] but with `options` (e.g. [`ROUTER_ALERT_OPTION`])
    /// after the fixed header; the header is then `20 + options.len()` bytes.
    ///
    /// # Panics
    /// If `options.len()` is not a multiple of 4 or exceeds 40, if the
    /// buffer is shorter than the header, or (debug builds) if the total
    /// length does not fit in 16 bits.
    #[inline]
    pub fn emit_with_options<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        options: &[u8],
    ) {
        assert!(
            options.len() % 4 == 0 && options.len() <= 40,
            "IPv4 options must be a multiple of 4 bytes, at most 40"
        );
        let header_len = Self::HEADER_LEN + options.len();
        let total = header_len + self.payload_len;
        debug_assert!(total <= usize::from(u16::MAX), "IPv4 total length overflow");
        packet.set_version_and_header_len(header_len);
        packet.buffer.as_mut()[field::DSCP_ECN] = self.dscp << 2;
        packet.set_total_len(u16::try_from(total).unwrap_or(u16::MAX));
        packet.set_ident(self.ident);
        packet.set_flags_and_offset(if self.dont_frag { FLAG_DF } else { 0 });
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.buffer.as_mut()[Self::HEADER_LEN..header_len].copy_from_slice(options);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, DF, TTL 64, 4-byte payload, then
    // 2 bytes of link padding that must not show up in `payload()`.
    static PACKET_BYTES: [u8; 26] = [
        0x45, 0x00, 0x00, 0x18, // ver/ihl, dscp/ecn, total len 24
        0x12, 0x34, 0x40, 0x00, // ident, DF
        0x40, 0x11, 0x00, 0x00, // ttl, proto, checksum (filled below)
        0xc0, 0xa8, 0x00, 0x01, // src
        0xc0, 0xa8, 0x00, 0xc7, // dst
        0xde, 0xad, 0xbe, 0xef, // payload
        0xee, 0xee, // padding
    ];

    fn packet_bytes() -> [u8; 26] {
        let mut b = PACKET_BYTES;
        let c = checksum::checksum(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            protocol: IpProtocol::UDP,
            payload_len: 4,
            ttl: 64,
            dscp: 0,
            ident: 0x1234,
            dont_frag: true,
        }
    }

    #[test]
    fn deconstruct() {
        let bytes = packet_bytes();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment() && !p.has_options());
        assert_eq!((p.ttl(), p.hop_limit()), (64, 64));
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.verify_checksum());
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn construct() {
        let mut buf = [0xeeu8; 26];
        let r = repr();
        assert_eq!(r.buffer_len(), 20);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(buf, packet_bytes());
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = packet_bytes();
        bytes[11] ^= 1;
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::BadChecksum));
    }

    #[test]
    fn check_len_errors() {
        let bytes = packet_bytes();
        let err = |b: &[u8]| Ipv4Packet::new_checked(b).unwrap_err();
        assert_eq!(err(&bytes[..19]), Error::Truncated);
        // total_len 24 > 23-byte buffer
        assert_eq!(err(&bytes[..23]), Error::Truncated);
        let mut v6 = bytes;
        v6[0] = 0x65;
        assert_eq!(err(&v6), Error::Malformed);
        let mut short_ihl = bytes;
        short_ihl[0] = 0x44;
        assert_eq!(err(&short_ihl), Error::Malformed);
        // IHL 15 = 60 bytes > 26-byte buffer
        let mut long_ihl = bytes;
        long_ihl[0] = 0x4f;
        assert_eq!(err(&long_ihl), Error::Truncated);
        // IHL 6 = 24 bytes fits the buffer but exceeds total_len 20
        let mut hdr_gt_total = bytes;
        hdr_gt_total[0] = 0x46;
        hdr_gt_total[3] = 20;
        assert_eq!(err(&hdr_gt_total), Error::Malformed);
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..4])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn options_and_fragments_are_exposed_not_rejected() {
        let r = Ipv4Repr {
            protocol: IpProtocol::IGMP,
            ttl: 1,
            dscp: 0x30,
            payload_len: 8,
            ..repr()
        };
        let mut buf = [0u8; 32];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        r.emit_with_options(&mut p, &ROUTER_ALERT_OPTION);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert!(p.has_options() && p.is_fragment() && p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(p.options(), &ROUTER_ALERT_OPTION);
        assert_eq!(p.payload().len(), 8);
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
        // etherparse agrees on the option bytes and flags.
        let (h, _) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(h.options.as_slice(), &ROUTER_ALERT_OPTION);
        assert_eq!(h.fragment_offset.byte_offset(), 1480);
        assert!(h.more_fragments);
        assert_eq!(h.dscp.value(), 0x30);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
    }

    #[test]
    fn setters() {
        let mut bytes = packet_bytes();
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_dscp(46);
        p.set_ecn(3);
        p.set_ident(7);
        p.set_ttl(9);
        p.set_protocol(IpProtocol::ICMP);
        p.set_src_addr(Ipv4Addr::new(1, 1, 1, 1));
        p.set_dst_addr(Ipv4Addr::new(2, 2, 2, 2));
        p.set_dont_frag(false);
        p.set_total_len(22);
        p.fill_checksum();
        assert_eq!((p.dscp(), p.ecn()), (46, 3));
        p.set_dscp(10);
        assert_eq!((p.dscp(), p.ecn()), (10, 3));
        assert_eq!(p.payload(), &[0xde, 0xad]);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        let (h, _) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
        assert_eq!(h.dscp.value(), 10);
        assert_eq!(h.ecn.value(), 3);
        assert_eq!(h.identification, 7);
        assert_eq!(h.time_to_live, 9);
        assert_eq!(h.protocol, etherparse::IpNumber::ICMP);
        assert_eq!(h.source, [1, 1, 1, 1]);
        assert_eq!(h.destination, [2, 2, 2, 2]);
        assert!(!h.dont_fragment);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
    }

    #[test]
    fn decrement_ttl_basic_and_zero() {
        let mut bytes = packet_bytes();
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        p.set_ttl(0);
        p.fill_checksum();
        let before = p.checksum();
        p.decrement_ttl();
        assert_eq!((p.ttl(), p.checksum()), (0, before));
    }

    /// Searches identifications for a header whose checksum is `target`
    /// either before or after the TTL decrement.
    fn header_with_checksum(target: u16, after_decrement: bool) -> [u8; 20] {
        let mut hdr = [0u8; 20];
        hdr.copy_from_slice(&packet_bytes()[..20]);
        hdr[2..4].copy_from_slice(&20u16.to_be_bytes());
        for ident in 0..=u16::MAX {
            hdr[4..6].copy_from_slice(&ident.to_be_bytes());
            if after_decrement {
                hdr[8] -= 1;
            }
            hdr[10] = 0;
            hdr[11] = 0;
            let c = checksum::checksum(&hdr);
            if after_decrement {
                hdr[8] += 1;
            }
            if c == target {
                Ipv4Packet::new_unchecked(&mut hdr[..]).fill_checksum();
                return hdr;
            }
        }
        panic!("no header with checksum {target:#06x}");
    }

    #[test]
    fn decrement_ttl_checksum_edge_cases() {
        for (target, after) in [
            (0x0000, true),
            (0x0000, false),
            (0xfffe, true),
            (0x0001, true),
        ] {
            let mut hdr = header_with_checksum(target, after);
            let mut p = Ipv4Packet::new_checked(&mut hdr[..]).unwrap();
            assert!(p.verify_checksum());
            p.decrement_ttl();
            let incremental = p.checksum();
            p.fill_checksum();
            assert_eq!(
                incremental,
                p.checksum(),
                "target {target:#06x} after {after}"
            );
            if after {
                assert_eq!(incremental, target);
            }
        }
        // One's complement has two zeros: a sender may transmit 0xffff where
        // a full computation gives 0x0000, and it must still verify and
        // decrement to the recomputed value.
        for ttl in [64u8, 1, 255] {
            let mut hdr = header_with_checksum(0x0000, false);
            hdr[8] = ttl;
            hdr[9] = 0xff;
            // Re-search with this TTL/protocol so the checksum is still 0.
            hdr[4..6].copy_from_slice(&[0, 0]);
            hdr[10..12].copy_from_slice(&[0, 0]);
            let partial = checksum::fold(checksum::sum(&hdr));
            let ident = 0xffff - partial;
            hdr[4..6].copy_from_slice(&ident.to_be_bytes());
            assert_eq!(checksum::checksum(&hdr), 0x0000);
            hdr[10..12].copy_from_slice(&[0xff, 0xff]);
            let mut p = Ipv4Packet::new_checked(&mut hdr[..]).unwrap();
            assert!(p.verify_checksum());
            p.decrement_ttl();
            let incremental = p.checksum();
            p.fill_checksum();
            assert_eq!(incremental, p.checksum(), "ttl {ttl}");
        }
    }

    #[test]
    fn etherparse_builds_we_parse() {
        let builder = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [224, 1, 2, 3], 7).udp(1, 2);
        let payload = [1u8, 2, 3, 4, 5];
        let mut out = Vec::new();
        builder.write(&mut out, &payload).unwrap();
        let p = Ipv4Packet::new_checked(&out[..]).unwrap();
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.src_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.dst_addr, Ipv4Addr::new(224, 1, 2, 3));
        assert_eq!(r.ttl, 7);
        assert_eq!(r.protocol, IpProtocol::UDP);
        assert_eq!(r.payload_len, 8 + payload.len());
        assert!(r.dont_frag);
    }

    #[test]
    fn we_build_etherparse_parses() {
        let r = Ipv4Repr {
            dscp: 46,
            dont_frag: false,
            protocol: IpProtocol(253),
            ..repr()
        };
        let mut buf = [0u8; 24];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let (h, rest) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(rest.len(), 4);
        assert_eq!(h.source, r.src_addr.octets());
        assert_eq!(h.destination, r.dst_addr.octets());
        assert_eq!(h.protocol.0, 253);
        assert_eq!(h.time_to_live, r.ttl);
        assert_eq!(h.dscp.value(), 46);
        assert_eq!(h.identification, r.ident);
        assert!(!h.dont_fragment);
        assert_eq!(h.total_len, 24);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
    }

    fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..100,
            any::<u8>(),
            0u8..64,
            any::<u16>(),
            any::<bool>(),
        )
            .prop_map(
                |(src, dst, proto, payload_len, ttl, dscp, ident, df)| Ipv4Repr {
                    src_addr: Ipv4Addr::from(src),
                    dst_addr: Ipv4Addr::from(dst),
                    protocol: IpProtocol(proto),
                    payload_len,
                    ttl,
                    dscp,
                    ident,
                    dont_frag: df,
                },
            )
    }

    fn exercise_getters<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
        let _ = (
            p.version(),
            p.header_len(),
            p.dscp(),
            p.ecn(),
            p.total_len(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
            p.has_options(),
            p.ttl(),
            p.hop_limit(),
            p.protocol(),
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
            p.verify_checksum(),
            p.options(),
            p.payload(),
        );
    }

    proptest! {
        #[test]
        fn roundtrip(r in arb_repr()) {
            let mut buf = vec![0u8; 20 + r.payload_len];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p), Ok(r));
            prop_assert_eq!(p.payload().len(), r.payload_len);
            let (h, _) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
            prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
        }

        #[test]
        fn checked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&data[..]));
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                exercise_getters(&p);
                let _ = Ipv4Repr::parse(&p);
                let mut copy = data.clone();
                let mut m = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
                m.decrement_ttl();
                m.fill_checksum();
                let _ = (m.payload_mut().len(), m.options_mut().len());
            }
        }

        #[test]
        fn checked_never_panics_plausible(
            ihl in 0u8..16,
            total_len in 0u16..120,
            rest in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            // Random bytes rarely start with version 4; force it so the
            // length checks themselves are what gets exercised.
            let mut data = vec![0x40 | ihl, 0];
            data.extend_from_slice(&total_len.to_be_bytes());
            data.extend_from_slice(&rest);
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                exercise_getters(&p);
                prop_assert!(p.header_len() <= p.payload().len() + p.header_len());
                prop_assert!(usize::from(p.total_len()) <= data.len());
            }
        }

        #[test]
        fn decrement_ttl_matches_full_recompute(
            mut hdr in proptest::array::uniform20(any::<u8>()),
            ttl in 1u8..=255,
        ) {
            hdr[0] = 0x45;
            hdr[2] = 0;
            hdr[3] = 20;
            hdr[8] = ttl;
            let mut p = Ipv4Packet::new_checked(&mut hdr[..]).unwrap();
            p.fill_checksum();
            p.decrement_ttl();
            prop_assert_eq!(p.ttl(), ttl - 1);
            prop_assert!(p.verify_checksum());
            let incremental = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
        }

        #[test]
        fn etherparse_agrees_on_random_headers(
            mut hdr in proptest::array::uniform20(any::<u8>()),
            payload in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            hdr[0] = 0x45;
            // etherparse does not model the reserved ("evil") flag bit.
            hdr[6] &= 0x7f;
            let total = (20 + payload.len()) as u16;
            hdr[2..4].copy_from_slice(&total.to_be_bytes());
            let mut buf = hdr.to_vec();
            buf.extend_from_slice(&payload);
            let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
            p.fill_checksum();
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            let (h, rest) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
            prop_assert_eq!(rest, p.payload());
            prop_assert_eq!(h.source, p.src_addr().octets());
            prop_assert_eq!(h.destination, p.dst_addr().octets());
            prop_assert_eq!(h.identification, p.ident());
            prop_assert_eq!(h.dont_fragment, p.dont_frag());
            prop_assert_eq!(h.more_fragments, p.more_frags());
            prop_assert_eq!(h.fragment_offset.byte_offset(), p.frag_offset());
            prop_assert_eq!(h.time_to_live, p.ttl());
            prop_assert_eq!(h.protocol.0, p.protocol().0);
            prop_assert_eq!(h.dscp.value(), p.dscp());
            prop_assert_eq!(h.ecn.value(), p.ecn());
            prop_assert_eq!(h.header_checksum, p.checksum());
            prop_assert_eq!(h.calc_header_checksum(), p.checksum());
        }
    }
}
