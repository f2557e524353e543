//! ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses only.
//!
//! The appliance never speaks ARP over anything else, so the view is fixed
//! layout: [`ArpPacket::new_checked`] rejects other hardware/protocol types or
//! address lengths with [`Error::Unsupported`], and after it succeeds no
//! accessor panics. Trailing bytes (Ethernet padding) are ignored.

use std::net::Ipv4Addr;

use super::bytes::{read_ipv4, read_u16, write_ipv4, write_u16};
use super::{Error, EtherType, MacAddr, Result};

/// ARP `htype` for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// The ARP opcode. Unknown values are kept so a caller can log them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOp {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            other => ArpOp::Unknown(other),
        }
    }
}

impl From<ArpOp> for u16 {
    fn from(op: ArpOp) -> Self {
        match op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::Range;

    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    /// Wraps `buffer` without validation; see the module contract.
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking its length and that it is
    /// Ethernet/IPv4 ARP.
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        packet.check_format()?;
        Ok(packet)
    }

    /// Only the length: enough for every accessor to be panic-free.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The address types and lengths: the fixed layout this view assumes is
    /// only meaningful for Ethernet/IPv4. Requires `check_len` to have passed.
    pub fn check_format(&self) -> Result<()> {
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != EtherType::IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            Err(Error::Unsupported)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    pub fn protocol_type(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> ArpOp {
        ArpOp::from(read_u16(self.buffer.as_ref(), field::OPER))
    }

    pub fn source_hardware_addr(&self) -> MacAddr {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        MacAddr(a)
    }

    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    pub fn target_hardware_addr(&self) -> MacAddr {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        MacAddr(a)
    }

    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE, value.0);
    }

    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    pub fn set_operation(&mut self, op: ArpOp) {
        write_u16(self.buffer.as_mut(), field::OPER, op.into());
    }

    pub fn set_source_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SPA, addr);
    }

    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::TPA, addr);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOp,
    pub source_hardware_addr: MacAddr,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: MacAddr,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Unknown opcodes parse successfully as [`ArpOp::Unknown`]: whether to
    /// ignore them is policy, not wire format.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        packet.check_format()?;
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        ArpPacket::<&[u8]>::LEN
    }

    /// # Panics
    /// If the buffer is shorter than [`ArpPacket::LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::wire::{EthernetFrame, EthernetRepr};
    use proptest::prelude::*;

    // A who-has 10.0.0.2 tell 10.0.0.1, followed by 2 bytes of padding.
    static REQUEST_BYTES: [u8; 30] = [
        0x00, 0x01, // htype
        0x08, 0x00, // ptype
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // sha
        10, 0, 0, 1, // spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha
        10, 0, 0, 2, // tpa
        0xee, 0xee, // padding
    ];

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOp::Request,
            source_hardware_addr: MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::IPV4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), ArpOp::Request);
        assert_eq!(ArpRepr::parse(&p).unwrap(), request_repr());
    }

    #[test]
    fn construct() {
        let mut buf = [0xeeu8; 30];
        let repr = request_repr();
        assert_eq!(repr.buffer_len(), 28);
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..28]));
        assert_eq!(buf, REQUEST_BYTES);
    }

    #[test]
    fn setters() {
        let mut buf = REQUEST_BYTES;
        let mut p = ArpPacket::new_checked(&mut buf[..]).unwrap();
        p.set_operation(ArpOp::Reply);
        p.set_target_hardware_addr(MacAddr([0x02, 9, 9, 9, 9, 9]));
        p.set_target_protocol_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.set_source_hardware_addr(MacAddr([0x02, 8, 8, 8, 8, 8]));
        p.set_source_protocol_addr(Ipv4Addr::new(5, 6, 7, 8));
        assert_eq!(p.operation(), ArpOp::Reply);
        assert_eq!(p.target_hardware_addr(), MacAddr([0x02, 9, 9, 9, 9, 9]));
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(p.source_hardware_addr(), MacAddr([0x02, 8, 8, 8, 8, 8]));
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(5, 6, 7, 8));
        assert_eq!(&buf[6..8], &[0, 2]);
    }

    #[test]
    fn truncated_and_unsupported() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST_BYTES[..27]).unwrap_err(),
            Error::Truncated
        );
        for (at, value) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut buf = REQUEST_BYTES;
            buf[at] = value;
            assert_eq!(
                ArpPacket::new_checked(&buf[..]).unwrap_err(),
                Error::Unsupported
            );
            assert_eq!(
                ArpRepr::parse(&ArpPacket::new_unchecked(&buf[..])),
                Err(Error::Unsupported)
            );
        }
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&REQUEST_BYTES[..3])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn opcodes() {
        for (v, op) in [
            (1u16, ArpOp::Request),
            (2, ArpOp::Reply),
            (3, ArpOp::Unknown(3)),
        ] {
            assert_eq!(ArpOp::from(v), op);
            assert_eq!(u16::from(op), v);
        }
        let mut buf = REQUEST_BYTES;
        buf[7] = 9;
        let repr = ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(repr.operation, ArpOp::Unknown(9));
    }

    /// etherparse 0.16 has no ARP packet type (it arrived in 0.17), so the
    /// cross-check uses its Ethernet header plus its published ARP hardware
    /// and protocol identifiers for the fixed fields.
    #[test]
    fn etherparse_framing_cross_check() {
        let eth = etherparse::Ethernet2Header {
            source: [0x02, 0x11, 0x22, 0x33, 0x44, 0x55],
            destination: [0xff; 6],
            ether_type: etherparse::EtherType::ARP,
        };
        let mut frame = eth.to_bytes().to_vec();
        frame.extend_from_slice(&[0u8; 28]);
        frame.resize(60, 0);
        let mut buf = frame.clone();
        {
            let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
            request_repr().emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        }
        let (parsed_eth, arp) = etherparse::Ethernet2Header::from_slice(&buf).unwrap();
        assert_eq!(parsed_eth.ether_type, etherparse::EtherType::ARP);
        assert_eq!(
            u16::from_be_bytes([arp[0], arp[1]]),
            etherparse::ArpHardwareId::ETHER.0
        );
        assert_eq!(
            u16::from_be_bytes([arp[2], arp[3]]),
            etherparse::EtherType::IPV4.0
        );
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f).unwrap().ethertype, EtherType::ARP);
        let p = ArpPacket::new_checked(f.payload()).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), request_repr());
        assert_eq!(&f.payload()[..28], &REQUEST_BYTES[..28]);
    }

    fn arb_repr() -> impl Strategy<Value = ArpRepr> {
        (
            any::<u16>(),
            any::<[u8; 6]>(),
            any::<[u8; 4]>(),
            any::<[u8; 6]>(),
            any::<[u8; 4]>(),
        )
            .prop_map(|(op, sha, spa, tha, tpa)| ArpRepr {
                operation: ArpOp::from(op),
                source_hardware_addr: MacAddr(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: MacAddr(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(repr in arb_repr()) {
            let mut buf = [0u8; 28];
            repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
            let p = ArpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(ArpRepr::parse(&p), Ok(repr));
        }

        #[test]
        fn checked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ArpRepr::parse(&ArpPacket::new_unchecked(&data[..]));
            if let Ok(p) = ArpPacket::new_checked(&data[..]) {
                let _ = (
                    p.operation(),
                    p.source_hardware_addr(),
                    p.source_protocol_addr(),
                    p.target_hardware_addr(),
                    p.target_protocol_addr(),
                );
                prop_assert!(ArpRepr::parse(&p).is_ok());
            }
        }

        #[test]
        fn checked_never_panics_valid_prefix(tail in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut data = REQUEST_BYTES[..8].to_vec();
            data.extend_from_slice(&tail);
            match ArpPacket::new_checked(&data[..]) {
                Ok(p) => prop_assert!(ArpRepr::parse(&p).is_ok()),
                Err(e) => prop_assert_eq!(e, Error::Truncated),
            }
        }
    }
}
