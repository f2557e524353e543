//! Ethernet II frames (no 802.1Q parsing: a VLAN tag shows up as
//! [`EtherType::VLAN`] and the caller decides what to do with it).
//!
//! After [`EthernetFrame::new_checked`] succeeds no accessor panics.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

use super::{Error, Result};

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Builds an address from a slice that must be exactly 6 bytes long.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Result<MacAddr> {
        let arr: [u8; 6] = bytes.try_into().map_err(|_| Error::Malformed)?;
        Ok(MacAddr(arr))
    }

    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True for any group address (I/G bit set). Broadcast is, per IEEE 802,
    /// a group address too, so this is also true for [`MacAddr::BROADCAST`].
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The Ethernet group address an IPv4 multicast group maps to (RFC 1112
    /// §6.4): 01:00:5e followed by the low 23 bits of the group. The mapping
    /// is 32:1, so receivers must still filter on the IP destination.
    #[inline]
    pub fn from_ipv4_multicast(group: Ipv4Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Accepts exactly six two-digit hex groups separated by `:` or `-`
    /// (not mixed), case-insensitive. Config files are the only source, so
    /// strictness beats guessing what a short group was meant to be.
    fn from_str(s: &str) -> Result<MacAddr> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut groups = s.split(sep);
        for slot in out.iter_mut() {
            let g = groups.next().ok_or(Error::Malformed)?;
            if g.len() != 2 || !g.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::Malformed);
            }
            *slot = u8::from_str_radix(g, 16).map_err(|_| Error::Malformed)?;
        }
        if groups.next().is_some() {
            return Err(Error::Malformed);
        }
        Ok(MacAddr(out))
    }
}

/// The EtherType field. A newtype rather than an enum so that unknown values
/// pass through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const IPV6: EtherType = EtherType(0x86dd);
    pub const VLAN: EtherType = EtherType(0x8100);
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        EtherType(v)
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        v.0
    }
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = 14;

    /// Wraps `buffer` without validation; see the module contract.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer`, guaranteeing all accessors are panic-free.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        MacAddr(a)
    }

    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        MacAddr(a)
    }

    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(super::bytes::read_u16(
            self.buffer.as_ref(),
            field::ETHERTYPE,
        ))
    }

    /// Everything after the header, including any trailing padding to the
    /// 60-byte minimum; upper layers trim it using their own length fields.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        super::bytes::write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src_addr: MacAddr,
    pub dst_addr: MacAddr,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    pub const HEADER_LEN: usize = 14;

    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    #[inline]
    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Writes the header; the payload is left untouched.
    ///
    /// # Panics
    /// If the frame buffer is shorter than [`Self::HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    static FRAME_BYTES: [u8; 18] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // dst
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd, // payload
    ];

    #[test]
    fn deconstruct() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(
            frame.src_addr(),
            MacAddr([0x11, 0x12, 0x13, 0x14, 0x15, 0x16])
        );
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(frame.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 18];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        frame.set_dst_addr(MacAddr([1, 2, 3, 4, 5, 6]));
        frame.set_src_addr(MacAddr([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]));
        frame.set_ethertype(EtherType::IPV4);
        frame
            .payload_mut()
            .copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(buf, FRAME_BYTES);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME_BYTES[..13]).unwrap_err(),
            Error::Truncated
        );
        let empty = EthernetFrame::new_checked(&FRAME_BYTES[..14]).unwrap();
        assert!(empty.payload().is_empty());
        let unchecked = EthernetFrame::new_unchecked(&FRAME_BYTES[..5]);
        assert_eq!(EthernetRepr::parse(&unchecked), Err(Error::Truncated));
    }

    #[test]
    fn repr_parse_emit() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(
            repr,
            EthernetRepr {
                src_addr: MacAddr([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]),
                dst_addr: MacAddr([1, 2, 3, 4, 5, 6]),
                ethertype: EtherType::IPV4,
            }
        );
        let mut buf = FRAME_BYTES;
        buf[..14].fill(0);
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        assert_eq!(buf, FRAME_BYTES);
        assert_eq!(repr.buffer_len(), 14);
    }

    #[test]
    fn mac_classification() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::BROADCAST.is_unicast());
        let mc = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert!(mc.is_multicast() && !mc.is_broadcast() && !mc.is_unicast());
        let uc = MacAddr([0x02, 0, 0, 0, 0, 1]);
        assert!(uc.is_unicast() && !uc.is_multicast());
        assert!(MacAddr::ZERO.is_unicast());
        assert_eq!(MacAddr::default(), MacAddr::ZERO);
    }

    #[test]
    fn mac_from_ipv4_multicast() {
        // The top bit of the second octet is dropped (RFC 1112 32:1 mapping).
        assert_eq!(
            MacAddr::from_ipv4_multicast(Ipv4Addr::new(239, 129, 2, 3)),
            MacAddr([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03])
        );
        assert_eq!(
            MacAddr::from_ipv4_multicast(Ipv4Addr::new(224, 0, 0, 22)),
            MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x16])
        );
        assert_eq!(
            MacAddr::from_ipv4_multicast(Ipv4Addr::new(224, 255, 255, 255)).to_string(),
            "01:00:5e:7f:ff:ff"
        );
    }

    #[test]
    fn mac_display_and_parse() {
        let mac = MacAddr([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f]);
        assert_eq!(mac.to_string(), "aa:bb:0c:dd:ee:0f");
        assert_eq!(format!("{mac:?}"), "aa:bb:0c:dd:ee:0f");
        assert_eq!("aa:bb:0c:dd:ee:0f".parse::<MacAddr>(), Ok(mac));
        assert_eq!("AA-BB-0C-DD-EE-0F".parse::<MacAddr>(), Ok(mac));
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:f",
            "aa:bb:cc:dd:ee:fff",
            "aa:bb:cc:dd:ee:gg",
            "aa:bb:cc:dd:ee:+f",
            "aa-bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:ff:",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(Error::Malformed), "{bad}");
        }
        assert_eq!(MacAddr::from_bytes(&[1, 2, 3]), Err(Error::Malformed));
        assert_eq!(
            MacAddr::from_bytes(&[1, 2, 3, 4, 5, 6]),
            Ok(MacAddr([1, 2, 3, 4, 5, 6]))
        );
    }

    #[test]
    fn etherparse_builds_we_parse() {
        let hdr = etherparse::Ethernet2Header {
            source: [0x02, 0, 0, 0, 0, 0x01],
            destination: [0xff; 6],
            ether_type: etherparse::EtherType::ARP,
        };
        let mut bytes = hdr.to_bytes().to_vec();
        bytes.extend_from_slice(&[9, 8, 7]);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(repr.src_addr, MacAddr([0x02, 0, 0, 0, 0, 1]));
        assert_eq!(repr.dst_addr, MacAddr::BROADCAST);
        assert_eq!(repr.ethertype, EtherType::ARP);
        assert_eq!(frame.payload(), &[9, 8, 7]);
    }

    #[test]
    fn we_build_etherparse_parses() {
        let repr = EthernetRepr {
            src_addr: MacAddr([0x02, 1, 2, 3, 4, 5]),
            dst_addr: MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x16]),
            ethertype: EtherType::IPV6,
        };
        let mut buf = [0u8; 14];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        let (hdr, rest) = etherparse::Ethernet2Header::from_slice(&buf).unwrap();
        assert!(rest.is_empty());
        assert_eq!(hdr.source, repr.src_addr.0);
        assert_eq!(hdr.destination, repr.dst_addr.0);
        assert_eq!(hdr.ether_type, etherparse::EtherType::IPV6);
    }

    fn arb_mac() -> impl Strategy<Value = MacAddr> {
        any::<[u8; 6]>().prop_map(MacAddr)
    }

    proptest! {
        #[test]
        fn checked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(frame) = EthernetFrame::new_checked(&data[..]) {
                let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
                prop_assert_eq!(frame.payload().len(), data.len() - 14);
                let repr = EthernetRepr::parse(&frame).unwrap();
                let mut copy = data.clone();
                let mut out = EthernetFrame::new_checked(&mut copy[..]).unwrap();
                repr.emit(&mut out);
                let _ = out.payload_mut();
                prop_assert_eq!(&copy, &data);
            } else {
                prop_assert!(data.len() < 14);
            }
        }

        #[test]
        fn emit_parse_roundtrip(src in arb_mac(), dst in arb_mac(), et in any::<u16>()) {
            let repr = EthernetRepr { src_addr: src, dst_addr: dst, ethertype: EtherType(et) };
            let mut buf = [0u8; 14];
            repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
            prop_assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()), Ok(repr));
        }

        #[test]
        fn mac_string_roundtrip(mac in arb_mac()) {
            prop_assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
        }

        #[test]
        fn mac_from_str_never_panics(s in "\\PC{0,24}") {
            let _ = s.parse::<MacAddr>();
        }
    }
}
