//! ICMPv4 (RFC 792): echo, destination unreachable and time exceeded — the
//! messages an IPv4 forwarder answers or originates.
//!
//! The view covers the *whole* buffer: its checksum spans every byte, so
//! build it over the IPv4 payload (`Ipv4Packet::payload`, which already drops
//! link padding), not over a longer slice. After
//! [`Icmpv4Packet::new_checked`] succeeds no accessor panics.

use super::bytes::{read_u16, write_u16};
use super::checksum;
use super::{Error, Result};

/// ICMP message types this module understands.
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// ICMP codes. Destination-unreachable and time-exceeded codes share a
/// numbering space, so the time-exceeded ones say so in their names.
pub mod code {
    /// Destination unreachable: no route to the network.
    pub const NET_UNREACHABLE: u8 = 0;
    /// Destination unreachable: no route to the host (or ARP failed).
    pub const HOST_UNREACHABLE: u8 = 1;
    /// Destination unreachable: protocol not handled.
    pub const PROTOCOL_UNREACHABLE: u8 = 2;
    /// Destination unreachable: nothing listens on the UDP port.
    pub const PORT_UNREACHABLE: u8 = 3;
    /// Destination unreachable: DF set but the packet exceeds the next-hop
    /// MTU. RFC 1191 requires the MTU in bytes 6..8; see
    /// [`super::Icmpv4Packet::set_next_hop_mtu`].
    pub const FRAG_NEEDED: u8 = 4;
    /// Time exceeded: TTL reached zero while forwarding.
    pub const TTL_EXPIRED_IN_TRANSIT: u8 = 0;
    /// Time exceeded: fragment reassembly timed out.
    pub const FRAG_REASSEMBLY_TIME_EXCEEDED: u8 = 1;
}

mod field {
    use core::ops::RangeFrom;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const UNUSED: core::ops::Range<usize> = 4..8;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const DATA: RangeFrom<usize> = 8..;
}

/// How much of an offending datagram to quote in an error: its IP header
/// plus the first 8 payload bytes (RFC 792), clamped to what `ip_packet`
/// holds. Use it to build the `invoking` slice of an error [`Icmpv4Repr`].
pub fn invoking_datagram(ip_packet: &[u8]) -> &[u8] {
    let header_len = ip_packet.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
    let want = header_len + 8;
    &ip_packet[..want.min(ip_packet.len())]
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    pub const HEADER_LEN: usize = 8;

    /// Wraps `buffer` without validation; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps `buffer`, guaranteeing all accessors are panic-free.
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Meaningful for echo messages only.
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Meaningful for echo messages only.
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Meaningful for destination unreachable / fragmentation needed only.
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Bytes after the 8-byte header: echo data, or the quoted datagram of
    /// an error message.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Alias of [`Self::data`].
    pub fn payload(&self) -> &[u8] {
        self.data()
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the RFC 1191 next-hop MTU of a fragmentation-needed message;
    /// call [`Self::fill_checksum`] afterwards.
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, value);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Alias of [`Self::data_mut`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }

    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an ICMPv4 message, borrowing its variable part.
///
/// `invoking` is the offending datagram's IP header plus at least the first
/// 8 bytes of its payload (see [`invoking_datagram`]). When parsing, it is
/// whatever the sender quoted; note that its IP `total_len` normally exceeds
/// the quote, so read it with `Ipv4Packet::new_unchecked` after checking
/// `header_len` against the slice length.
#[derive(Debug, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// For [`code::FRAG_NEEDED`], `emit` leaves the next-hop MTU at 0; set
    /// it with [`Icmpv4Packet::set_next_hop_mtu`] and refill the checksum.
    DstUnreachable {
        code: u8,
        invoking: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        invoking: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses and verifies the checksum. Echo messages with a non-zero code
    /// are malformed; other message types are [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv4Packet<&'a T>) -> Result<Icmpv4Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let data = &packet.buffer.as_ref()[field::DATA];
        match (packet.msg_type(), packet.msg_code()) {
            (msg_type::ECHO_REQUEST, 0) => Ok(Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (msg_type::ECHO_REPLY, 0) => Ok(Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (msg_type::ECHO_REQUEST | msg_type::ECHO_REPLY, _) => Err(Error::Malformed),
            (msg_type::DST_UNREACHABLE, code) => Ok(Icmpv4Repr::DstUnreachable {
                code,
                invoking: data,
            }),
            (msg_type::TIME_EXCEEDED, code) => Ok(Icmpv4Repr::TimeExceeded {
                code,
                invoking: data,
            }),
            _ => Err(Error::Unsupported),
        }
    }

    /// Exact size of the message `emit` writes.
    pub fn buffer_len(&self) -> usize {
        Icmpv4Packet::<&[u8]>::HEADER_LEN + self.body().len()
    }

    fn body(&self) -> &'a [u8] {
        match *self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => data,
            Icmpv4Repr::DstUnreachable { invoking, .. }
            | Icmpv4Repr::TimeExceeded { invoking, .. } => invoking,
        }
    }

    /// Writes the message and its checksum.
    ///
    /// The checksum covers the whole buffer, so it must be exactly
    /// [`Self::buffer_len`] bytes long.
    ///
    /// # Panics
    /// If the buffer length differs from [`Self::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let (ty, code) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, .. } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                (msg_type::ECHO_REQUEST, 0)
            }
            Icmpv4Repr::EchoReply { ident, seq_no, .. } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                (msg_type::ECHO_REPLY, 0)
            }
            Icmpv4Repr::DstUnreachable { code, .. } => {
                packet.buffer.as_mut()[field::UNUSED].fill(0);
                (msg_type::DST_UNREACHABLE, code)
            }
            Icmpv4Repr::TimeExceeded { code, .. } => {
                packet.buffer.as_mut()[field::UNUSED].fill(0);
                (msg_type::TIME_EXCEEDED, code)
            }
        };
        packet.set_msg_type(ty);
        packet.set_msg_code(code);
        packet.data_mut().copy_from_slice(self.body());
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    static ECHO_REQUEST_BYTES: [u8; 12] = [
        0x08, 0x00, 0x21, 0x66, // type, code, checksum
        0x4d, 0x2f, 0x00, 0x01, // ident, seq
        0x68, 0x69, 0x21, 0x00, // data
    ];
    static ECHO_DATA: [u8; 4] = *b"hi!\0";

    #[test]
    fn deconstruct_echo() {
        let p = Icmpv4Packet::new_checked(&ECHO_REQUEST_BYTES[..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x2166);
        assert_eq!(p.echo_ident(), 0x4d2f);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), &ECHO_DATA);
        assert_eq!(p.payload(), &ECHO_DATA);
        assert!(p.verify_checksum());
        assert_eq!(
            Icmpv4Repr::parse(&p).unwrap(),
            Icmpv4Repr::EchoRequest {
                ident: 0x4d2f,
                seq_no: 1,
                data: &ECHO_DATA
            }
        );
    }

    #[test]
    fn construct_echo() {
        let repr = Icmpv4Repr::EchoRequest {
            ident: 0x4d2f,
            seq_no: 1,
            data: &ECHO_DATA,
        };
        let mut buf = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, ECHO_REQUEST_BYTES);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Icmpv4Packet::new_checked(&ECHO_REQUEST_BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&ECHO_REQUEST_BYTES[..2])),
            Err(Error::Truncated)
        );
        let mut bad = ECHO_REQUEST_BYTES;
        bad[8] ^= 0x01;
        let p = Icmpv4Packet::new_checked(&bad[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error::BadChecksum));

        let mut unknown = ECHO_REQUEST_BYTES;
        unknown[0] = 13; // timestamp
        Icmpv4Packet::new_unchecked(&mut unknown[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&unknown[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error::Unsupported));

        let mut coded = ECHO_REQUEST_BYTES;
        coded[1] = 1;
        Icmpv4Packet::new_unchecked(&mut coded[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&coded[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error::Malformed));
    }

    /// A full offending datagram: IPv4 + UDP header + 4 bytes of data.
    fn offending_datagram() -> Vec<u8> {
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 9, 9, 9),
            protocol: IpProtocol::UDP,
            payload_len: 12,
            ttl: 1,
            dscp: 0,
            ident: 77,
            dont_frag: true,
        };
        let mut buf = vec![0u8; 32];
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        buf[20..32].copy_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, 1, 2, 3, 4]);
        buf
    }

    #[test]
    fn time_exceeded_roundtrip_and_layout() {
        let dgram = offending_datagram();
        let invoking = invoking_datagram(&dgram);
        assert_eq!(invoking, &dgram[..28]);
        let repr = Icmpv4Repr::TimeExceeded {
            code: code::TTL_EXPIRED_IN_TRANSIT,
            invoking,
        };
        let mut buf = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..2], &[11, 0]);
        assert_eq!(&buf[4..8], &[0, 0, 0, 0]);
        assert_eq!(&buf[8..], invoking);
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), repr);

        let ep = etherparse::Icmpv4Slice::from_slice(&buf).unwrap();
        match ep.icmp_type() {
            etherparse::Icmpv4Type::TimeExceeded(c) => {
                assert_eq!(
                    c,
                    etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(ep.payload(), invoking);
        let hdr = ep.header();
        assert_eq!(hdr.checksum, hdr.icmp_type.calc_checksum(ep.payload()));
    }

    #[test]
    fn frag_needed_with_mtu() {
        let dgram = offending_datagram();
        let repr = Icmpv4Repr::DstUnreachable {
            code: code::FRAG_NEEDED,
            invoking: invoking_datagram(&dgram),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.set_next_hop_mtu(1400);
        p.fill_checksum();
        let ep = etherparse::Icmpv4Slice::from_slice(&buf).unwrap();
        match ep.icmp_type() {
            etherparse::Icmpv4Type::DestinationUnreachable(h) => assert_eq!(
                h,
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400
                }
            ),
            other => panic!("unexpected {other:?}"),
        }
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn invoking_datagram_clamps() {
        assert!(invoking_datagram(&[]).is_empty());
        assert_eq!(invoking_datagram(&[0x45, 0, 0]), &[0x45, 0, 0]);
        let with_opts = [0x46u8; 40];
        assert_eq!(invoking_datagram(&with_opts).len(), 32);
    }

    #[test]
    fn etherparse_builds_we_parse() {
        let data = [5u8, 6, 7];
        let builder = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(0x4242, 7);
        let mut out = Vec::new();
        builder.write(&mut out, &data).unwrap();
        let ip = Ipv4Packet::new_checked(&out[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&ip).unwrap().protocol, IpProtocol::ICMP);
        let p = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p).unwrap(),
            Icmpv4Repr::EchoRequest {
                ident: 0x4242,
                seq_no: 7,
                data: &data
            }
        );
    }

    #[test]
    fn we_build_etherparse_parses() {
        let data = [1u8, 2, 3, 4, 5];
        let repr = Icmpv4Repr::EchoReply {
            ident: 9,
            seq_no: 0xfffe,
            data: &data,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        let ep = etherparse::Icmpv4Slice::from_slice(&buf).unwrap();
        assert_eq!(
            ep.icmp_type(),
            etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: 9, seq: 0xfffe })
        );
        assert_eq!(ep.payload(), &data);
        let expected = etherparse::Icmpv4Header::with_checksum(ep.icmp_type(), &data);
        assert_eq!(ep.checksum(), expected.checksum);
    }

    fn make_repr(kind: u8, a: u16, b: u16, c: u8, data: &[u8]) -> Icmpv4Repr<'_> {
        match kind {
            0 => Icmpv4Repr::EchoRequest {
                ident: a,
                seq_no: b,
                data,
            },
            1 => Icmpv4Repr::EchoReply {
                ident: a,
                seq_no: b,
                data,
            },
            2 => Icmpv4Repr::DstUnreachable {
                code: c,
                invoking: data,
            },
            _ => Icmpv4Repr::TimeExceeded {
                code: c,
                invoking: data,
            },
        }
    }

    proptest! {
        #[test]
        fn roundtrip(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            kind in 0u8..4,
            a in any::<u16>(),
            b in any::<u16>(),
            c in any::<u8>(),
        ) {
            let repr = make_repr(kind, a, b, c, &data);
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Icmpv4Repr::parse(&p), Ok(repr));
        }

        #[test]
        fn checked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&data[..]));
            let _ = invoking_datagram(&data);
            if let Ok(p) = Icmpv4Packet::new_checked(&data[..]) {
                let _ = (
                    p.msg_type(),
                    p.msg_code(),
                    p.checksum(),
                    p.echo_ident(),
                    p.echo_seq_no(),
                    p.next_hop_mtu(),
                    p.data(),
                    p.payload(),
                    p.verify_checksum(),
                );
                if let Ok(repr) = Icmpv4Repr::parse(&p) {
                    prop_assert_eq!(repr.buffer_len(), data.len());
                }
                let mut copy = data.clone();
                let mut m = Icmpv4Packet::new_checked(&mut copy[..]).unwrap();
                m.fill_checksum();
                prop_assert!(m.verify_checksum());
                let _ = m.payload_mut();
            }
        }
    }
}
