//! UDP over IPv4 (RFC 768).
//!
//! [`UdpPacket::new_checked`] validates the length field against the buffer,
//! after which no accessor panics. The payload is bounded by the length
//! field, not the buffer, so trailing bytes are ignored.

use std::net::Ipv4Addr;

use super::bytes::{read_u16, write_u16};
use super::checksum;
use super::ipv4::IpProtocol;
use super::{Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    /// Wraps `buffer` without validation; see the module contract.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps `buffer`, guaranteeing all accessors are panic-free.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < Self::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > buf_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload, in bytes.
    // Named after the wire field; an `is_empty` would be meaningless since a
    // checked packet's length is at least 8.
    #[allow(clippy::len_without_is_empty)]
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The bytes `8..len`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..usize::from(self.len())]
    }

    /// A zero checksum means the sender did not compute one (allowed over
    /// IPv4), so it verifies.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        checksum::fold(self.checksum_sum(src, dst)) == 0xffff
    }

    fn checksum_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        checksum::pseudo_header_sum(src, dst, IpProtocol::UDP.0, len) + checksum::sum(data)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Changing the length can invalidate the `new_checked` guarantee; see
    /// the module contract in `wire`.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// The bytes `8..len`, writable in place.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[Self::HEADER_LEN..end]
    }

    /// Computes the checksum over the pseudo header and `len` bytes. A
    /// computed 0 is sent as 0xFFFF, because 0 on the wire means "none".
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = !checksum::fold(self.checksum_sum(src, dst));
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of a UDP header. The payload stays in the packet buffer; the
/// addresses are the IPv4 ones, needed for the pseudo-header checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    pub const HEADER_LEN: usize = 8;

    /// Parses and verifies the checksum (a zero checksum is accepted).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<UdpRepr> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Bytes `emit` needs for a payload of `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        Self::HEADER_LEN + payload_len
    }

    /// Writes the header, lets `fill` write the `payload_len`-byte payload in
    /// place, then computes the checksum over both.
    ///
    /// # Panics
    /// If the buffer is shorter than `8 + payload_len` or `8 + payload_len`
    /// exceeds 65 535.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let Ok(len) = u16::try_from(Self::HEADER_LEN + payload_len) else {
            panic!("UDP length exceeds 65535");
        };
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        fill(packet.payload_mut());
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::wire::{Ipv4Packet, Ipv4Repr};
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    // 40000 -> 53, 4-byte payload, checksum over the SRC/DST pseudo header,
    // followed by 2 bytes of trailing junk that must be ignored.
    static PACKET_BYTES: [u8; 14] = [
        0x9c, 0x40, 0x00, 0x35, // ports
        0x00, 0x0c, 0xdc, 0x06, // len 12, checksum
        0x01, 0x02, 0x03, 0x04, // payload
        0x99, 0x99, // junk
    ];
    static PAYLOAD: [u8; 4] = [0x01, 0x02, 0x03, 0x04];

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert_eq!(p.checksum(), 0xdc06);
        assert_eq!(p.payload(), &PAYLOAD);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(
            UdpRepr::parse(&p, SRC, DST).unwrap(),
            UdpRepr {
                src_port: 40000,
                dst_port: 53
            }
        );
    }

    #[test]
    fn construct() {
        let mut buf = [0x99u8; 14];
        let repr = UdpRepr {
            src_port: 40000,
            dst_port: 53,
        };
        assert_eq!(repr.buffer_len(4), 12);
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, SRC, DST, 4, |payload| {
            payload.copy_from_slice(&PAYLOAD)
        });
        assert_eq!(buf, PACKET_BYTES);
    }

    #[test]
    fn errors() {
        let err = |b: &[u8]| UdpPacket::new_checked(b).unwrap_err();
        assert_eq!(err(&PACKET_BYTES[..7]), Error::Truncated);
        assert_eq!(err(&PACKET_BYTES[..11]), Error::Truncated);
        let mut short_len = PACKET_BYTES;
        short_len[5] = 7;
        assert_eq!(err(&short_len), Error::Malformed);
        let mut bad = PACKET_BYTES;
        bad[9] ^= 0x10;
        let p = UdpPacket::new_checked(&bad[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, SRC, DST), Err(Error::BadChecksum));
        assert_eq!(
            UdpRepr::parse(&UdpPacket::new_unchecked(&bad[..3]), SRC, DST),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut bytes = PACKET_BYTES;
        bytes[6] = 0;
        bytes[7] = 0;
        let p = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert!(UdpRepr::parse(&p, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED).is_ok());
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the last payload word so that the sum is 0xffff, i.e. the
        // one's complement checksum is 0.
        let mut buf = [0u8; 10];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(10);
        p.set_checksum(0);
        let partial = checksum::fold(
            checksum::pseudo_header_sum(SRC, DST, 17, 10) + checksum::sum(p.as_ref()),
        );
        p.payload_mut().copy_from_slice(&(!partial).to_be_bytes());
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
        let (h, _) = etherparse::UdpHeader::from_slice(&buf).unwrap();
        assert_eq!(
            h.calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), &buf[8..])
                .unwrap(),
            0xffff
        );
    }

    #[test]
    fn etherparse_builds_we_parse() {
        let payload = b"hello multicast";
        let builder =
            etherparse::PacketBuilder::ipv4(SRC.octets(), [239, 1, 1, 1], 5).udp(5000, 6000);
        let mut out = Vec::new();
        builder.write(&mut out, payload).unwrap();
        let ip = Ipv4Packet::new_checked(&out[..]).unwrap();
        let ip_repr = Ipv4Repr::parse(&ip).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        let repr = UdpRepr::parse(&udp, ip_repr.src_addr, ip_repr.dst_addr).unwrap();
        assert_eq!((repr.src_port, repr.dst_port), (5000, 6000));
        assert_ne!(udp.checksum(), 0);
        assert_eq!(udp.payload(), payload);
    }

    #[test]
    fn we_build_etherparse_parses() {
        let payload = [7u8; 33];
        let udp = UdpRepr {
            src_port: 4000,
            dst_port: 4001,
        };
        let ip = Ipv4Repr {
            src_addr: SRC,
            dst_addr: Ipv4Addr::new(239, 2, 3, 4),
            protocol: IpProtocol::UDP,
            payload_len: udp.buffer_len(payload.len()),
            ttl: 16,
            dscp: 0,
            ident: 1,
            dont_frag: false,
        };
        let mut buf = vec![0u8; ip.buffer_len() + ip.payload_len];
        let mut ip_pkt = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.emit(&mut ip_pkt);
        udp.emit(
            &mut UdpPacket::new_unchecked(ip_pkt.payload_mut()),
            ip.src_addr,
            ip.dst_addr,
            payload.len(),
            |b| b.copy_from_slice(&payload),
        );
        let sliced = etherparse::SlicedPacket::from_ip(&buf).unwrap();
        match sliced.transport {
            Some(etherparse::TransportSlice::Udp(u)) => {
                assert_eq!(u.source_port(), 4000);
                assert_eq!(u.destination_port(), 4001);
                assert_eq!(u.payload(), &payload);
                let h = u.to_header();
                let expected = h
                    .calc_checksum_ipv4_raw(ip.src_addr.octets(), ip.dst_addr.octets(), &payload)
                    .unwrap();
                assert_eq!(h.checksum, expected);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn roundtrip(
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            trailing in 0usize..4,
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = UdpRepr { src_port, dst_port };
            let mut buf = vec![0x55u8; repr.buffer_len(payload.len()) + trailing];
            repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst, payload.len(), |b| {
                b.copy_from_slice(&payload)
            });
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_ne!(p.checksum(), 0);
            prop_assert_eq!(UdpRepr::parse(&p, src, dst), Ok(repr));
            prop_assert_eq!(p.payload(), &payload[..]);
            let (h, _) = etherparse::UdpHeader::from_slice(&buf).unwrap();
            prop_assert_eq!(
                h.calc_checksum_ipv4_raw(src.octets(), dst.octets(), &payload).unwrap(),
                p.checksum()
            );
        }

        #[test]
        fn checked_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let _ = UdpRepr::parse(&UdpPacket::new_unchecked(&data[..]), src, dst);
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload());
                let _ = p.verify_checksum(src, dst);
                let _ = UdpRepr::parse(&p, src, dst);
                let mut copy = data.clone();
                let mut m = UdpPacket::new_checked(&mut copy[..]).unwrap();
                m.fill_checksum(src, dst);
                prop_assert!(m.verify_checksum(src, dst));
                let _ = m.payload_mut();
            }
        }

        #[test]
        fn checked_never_panics_plausible_len(
            len in 0u16..80,
            rest in proptest::collection::vec(any::<u8>(), 0..72),
        ) {
            let mut data = vec![0, 1, 0, 2];
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(&rest);
            match UdpPacket::new_checked(&data[..]) {
                Ok(p) => prop_assert_eq!(p.payload().len(), usize::from(len) - 8),
                Err(Error::Malformed) => prop_assert!(len < 8),
                Err(e) => {
                    prop_assert_eq!(e, Error::Truncated);
                    prop_assert!(usize::from(len) > data.len() || data.len() < 8);
                }
            }
        }
    }
}
