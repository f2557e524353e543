//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages a router exchanges with the hosts
//! and next hops on its links (RFC 4861): echo, the four errors, Neighbor Solicitation and
//! Advertisement with their link-layer address options.
//!
//! The view covers the *whole* ICMPv6 message (the upper-layer bytes an IPv6 walk found;
//! [`super::ipv6::walk`]): the checksum spans every byte plus the IPv6 pseudo header
//! ([`pseudo_header_sum`]). After [`Icmpv6Packet::new_checked`] no accessor panics.
//! [`Icmpv6Repr::parse`] verifies the checksum; a Neighbor Discovery message must also
//! arrive with hop limit 255 (RFC 4861 §7.1.1: it cannot have been forwarded), which the
//! caller checks with [`Icmpv6Repr::needs_hop_limit_255`].

use std::net::Ipv6Addr;

use super::bytes::{read_u16, write_u16};
use super::checksum;
use super::ethernet::MacAddr;
use super::{Error, Result};

/// Message types this module understands.
pub mod msg_type {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Neighbor Discovery option types (RFC 4861 §4.6).
mod option {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
}

/// Neighbor Advertisement flags (RFC 4861 §4.4).
pub mod na_flags {
    /// The sender is a router.
    pub const ROUTER: u8 = 0x80;
    /// An answer to a solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// Replace a cached link-layer address.
    pub const OVERRIDE: u8 = 0x20;
}

/// The largest ICMPv6 error message: its packet must fit the IPv6 minimum MTU (RFC 4443
/// §2.4(c)): 1280 less the IPv6 header.
pub const MAX_ERROR_LEN: usize = 1280 - 40;

/// Partial sum of the IPv6 pseudo header (RFC 8200 §8.1) for an upper-layer message of
/// `length` bytes with Next Header `next_header`.
pub fn pseudo_header_sum(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let mut raw = checksum::sum(&src.octets()) + checksum::sum(&dst.octets());
    raw += (length >> 16) + (length & 0xffff) + u32::from(next_header);
    u32::from(checksum::fold(raw))
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Type, code, checksum and the 4-byte field every message has.
    pub const HEADER_LEN: usize = 8;

    #[inline]
    pub const fn new_unchecked(buffer: T) -> Icmpv6Packet<T> {
        Icmpv6Packet { buffer }
    }

    /// Wraps `buffer`, guaranteeing all accessors are panic-free.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Icmpv6Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The fixed 8 bytes must be there (and a Neighbor Discovery message's 16-byte target).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let nd = matches!(b[0], msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT);
        if nd && b.len() < 24 {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    /// Bytes 4..8: echo identifier and sequence, the MTU of Packet Too Big, the pointer of
    /// Parameter Problem, the flags of a Neighbor Advertisement.
    #[inline]
    pub fn field(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[4], b[5], b[6], b[7]]
    }

    /// What follows the first 8 bytes.
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }

    /// Whether the checksum over the message and the pseudo header is right.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        let sum =
            pseudo_header_sum(src, dst, super::ipv6::next_header::ICMPV6, len) + checksum::sum(b);
        checksum::fold(sum) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Computes and stores the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        write_u16(self.buffer.as_mut(), 2, 0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let sum =
            pseudo_header_sum(src, dst, super::ipv6::next_header::ICMPV6, len) + checksum::sum(b);
        write_u16(self.buffer.as_mut(), 2, !checksum::fold(sum));
    }
}

/// An ICMPv6 message's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
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
    /// Destination unreachable (code: 0 no route, 1 prohibited, 3 address unreachable,
    /// 4 port unreachable, ...), quoting as much of the offending packet as fits.
    DstUnreachable { code: u8, invoking: &'a [u8] },
    /// Packet too big, with the next hop's MTU (RFC 8201's signal: never filter it).
    PacketTooBig { mtu: u32, invoking: &'a [u8] },
    /// Time exceeded (code 0: hop limit reached zero in transit).
    TimeExceeded { code: u8, invoking: &'a [u8] },
    /// Parameter problem (code 0 erroneous field, 1 unknown next header, 2 unknown
    /// option), `pointer` at the offending byte of the invoking packet.
    ParamProblem {
        code: u8,
        pointer: u32,
        invoking: &'a [u8],
    },
    /// Who has `target`? (the sender's link-layer address, unless it is `::` doing DAD).
    NeighborSolicit {
        target: Ipv6Addr,
        source_lladdr: Option<MacAddr>,
    },
    /// `target` is at `target_lladdr`.
    NeighborAdvert {
        flags: u8,
        target: Ipv6Addr,
        target_lladdr: Option<MacAddr>,
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Reads a message from `src` to `dst`, checking its checksum and, for Neighbor
    /// Discovery, its options (each a whole number of 8-byte units, none of length 0:
    /// RFC 4861 §4.6 says to drop such a message).
    ///
    /// # Errors
    /// Truncated, a bad checksum, malformed options, or a type this module does not know.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv6Packet<&'a T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<Icmpv6Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let buf: &'a [u8] = packet.buffer.as_ref();
        let f = packet.field();
        let word = u32::from_be_bytes(f);
        let body = &buf[Icmpv6Packet::<&[u8]>::HEADER_LEN..];
        let (ident, seq_no) = (read_u16(&f, 0), read_u16(&f, 2));
        Ok(match packet.msg_type() {
            msg_type::ECHO_REQUEST => Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data: body,
            },
            msg_type::ECHO_REPLY => Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data: body,
            },
            msg_type::DST_UNREACHABLE => Icmpv6Repr::DstUnreachable {
                code: packet.msg_code(),
                invoking: body,
            },
            msg_type::PACKET_TOO_BIG => Icmpv6Repr::PacketTooBig {
                mtu: word,
                invoking: body,
            },
            msg_type::TIME_EXCEEDED => Icmpv6Repr::TimeExceeded {
                code: packet.msg_code(),
                invoking: body,
            },
            msg_type::PARAM_PROBLEM => Icmpv6Repr::ParamProblem {
                code: packet.msg_code(),
                pointer: word,
                invoking: body,
            },
            msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT => {
                if packet.msg_code() != 0 {
                    return Err(Error::Malformed);
                }
                let mut t = [0u8; 16];
                t.copy_from_slice(&body[..16]);
                let target = Ipv6Addr::from(t);
                let lladdr = |want: u8| lladdr_option(&body[16..], want);
                if packet.msg_type() == msg_type::NEIGHBOR_SOLICIT {
                    Icmpv6Repr::NeighborSolicit {
                        target,
                        source_lladdr: lladdr(option::SOURCE_LLADDR)?,
                    }
                } else {
                    Icmpv6Repr::NeighborAdvert {
                        flags: f[0] & 0xe0,
                        target,
                        target_lladdr: lladdr(option::TARGET_LLADDR)?,
                    }
                }
            }
            _ => return Err(Error::Unsupported),
        })
    }

    /// Whether the message must arrive with hop limit 255 (Neighbor Discovery).
    pub fn needs_hop_limit_255(&self) -> bool {
        matches!(
            self,
            Icmpv6Repr::NeighborSolicit { .. } | Icmpv6Repr::NeighborAdvert { .. }
        )
    }

    /// Bytes [`Self::emit`] writes (an error's quote cut so the whole packet fits 1280).
    pub fn buffer_len(&self) -> usize {
        let h = Icmpv6Packet::<&[u8]>::HEADER_LEN;
        match self {
            Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. } => {
                h + data.len()
            }
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::PacketTooBig { invoking, .. }
            | Icmpv6Repr::TimeExceeded { invoking, .. }
            | Icmpv6Repr::ParamProblem { invoking, .. } => (h + invoking.len()).min(MAX_ERROR_LEN),
            Icmpv6Repr::NeighborSolicit { source_lladdr, .. } => {
                h + 16 + source_lladdr.map_or(0, |_| 8)
            }
            Icmpv6Repr::NeighborAdvert { target_lladdr, .. } => {
                h + 16 + target_lladdr.map_or(0, |_| 8)
            }
        }
    }

    /// Writes the message from `src` to `dst` into `buffer`, checksum included.
    ///
    /// # Panics
    /// If `buffer` is shorter than [`Self::buffer_len`].
    pub fn emit(&self, buffer: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
        let len = self.buffer_len();
        let b = &mut buffer[..len];
        b.fill(0);
        let (kind, code, field): (u8, u8, [u8; 4]) = match *self {
            Icmpv6Repr::EchoRequest { ident, seq_no, .. } => {
                (msg_type::ECHO_REQUEST, 0, echo_field(ident, seq_no))
            }
            Icmpv6Repr::EchoReply { ident, seq_no, .. } => {
                (msg_type::ECHO_REPLY, 0, echo_field(ident, seq_no))
            }
            Icmpv6Repr::DstUnreachable { code, .. } => (msg_type::DST_UNREACHABLE, code, [0; 4]),
            Icmpv6Repr::PacketTooBig { mtu, .. } => {
                (msg_type::PACKET_TOO_BIG, 0, mtu.to_be_bytes())
            }
            Icmpv6Repr::TimeExceeded { code, .. } => (msg_type::TIME_EXCEEDED, code, [0; 4]),
            Icmpv6Repr::ParamProblem { code, pointer, .. } => {
                (msg_type::PARAM_PROBLEM, code, pointer.to_be_bytes())
            }
            Icmpv6Repr::NeighborSolicit { .. } => (msg_type::NEIGHBOR_SOLICIT, 0, [0; 4]),
            Icmpv6Repr::NeighborAdvert { flags, .. } => {
                (msg_type::NEIGHBOR_ADVERT, 0, [flags & 0xe0, 0, 0, 0])
            }
        };
        b[0] = kind;
        b[1] = code;
        b[4..8].copy_from_slice(&field);
        let rest = &mut b[8..];
        match *self {
            Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. } => {
                rest.copy_from_slice(data);
            }
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::PacketTooBig { invoking, .. }
            | Icmpv6Repr::TimeExceeded { invoking, .. }
            | Icmpv6Repr::ParamProblem { invoking, .. } => {
                let n = rest.len();
                rest.copy_from_slice(&invoking[..n]);
            }
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr: mac,
            }
            | Icmpv6Repr::NeighborAdvert {
                target,
                target_lladdr: mac,
                ..
            } => {
                rest[..16].copy_from_slice(&target.octets());
                if let Some(mac) = mac {
                    rest[16] = if kind == msg_type::NEIGHBOR_SOLICIT {
                        option::SOURCE_LLADDR
                    } else {
                        option::TARGET_LLADDR
                    };
                    rest[17] = 1;
                    rest[18..24].copy_from_slice(&mac.0);
                }
            }
        }
        Icmpv6Packet::new_unchecked(b).fill_checksum(src, dst);
    }
}

fn echo_field(ident: u16, seq_no: u16) -> [u8; 4] {
    let (i, s) = (ident.to_be_bytes(), seq_no.to_be_bytes());
    [i[0], i[1], s[0], s[1]]
}

/// The link-layer address option of type `want` among Neighbor Discovery `options`.
///
/// # Errors
/// An option of length 0 or running past the end (RFC 4861 §4.6: drop the message), or a
/// link-layer address option not 8 bytes long (Ethernet's, RFC 2464 §6).
fn lladdr_option(mut options: &[u8], want: u8) -> Result<Option<MacAddr>> {
    let mut found = None;
    while !options.is_empty() {
        let (Some(&kind), Some(&units)) = (options.first(), options.get(1)) else {
            return Err(Error::Truncated);
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        let opt = options.get(..len).ok_or(Error::Truncated)?;
        if kind == want {
            if len != 8 {
                return Err(Error::Malformed);
            }
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&opt[2..8]);
            found = Some(MacAddr(mac));
        }
        options = &options[len..];
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use etherparse::{Icmpv6Header, Icmpv6Type};
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn emitted(r: &Icmpv6Repr<'_>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
        let mut v = vec![0u8; r.buffer_len()];
        r.emit(&mut v, src, dst);
        v
    }

    #[test]
    fn an_echo_reply_matches_what_etherparse_builds_and_parses_back() {
        let (src, dst) = (a("2001:db9::1"), a("2001:db9::2"));
        let r = Icmpv6Repr::EchoReply {
            ident: 7,
            seq_no: 9,
            data: b"ping",
        };
        let ours = emitted(&r, &src, &dst);
        let theirs = Icmpv6Header::with_checksum(
            Icmpv6Type::EchoReply(etherparse::IcmpEchoHeader { id: 7, seq: 9 }),
            src.octets(),
            dst.octets(),
            b"ping",
        )
        .unwrap();
        let mut want = theirs.to_bytes().to_vec();
        want.extend_from_slice(b"ping");
        assert_eq!(ours, want);
        let p = Icmpv6Packet::new_checked(&ours[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, &src, &dst), Ok(r));
        assert_eq!(
            Icmpv6Repr::parse(&p, &src, &a("2001:db9::3")),
            Err(Error::BadChecksum),
            "the pseudo header counts"
        );
    }

    #[test]
    fn errors_carry_their_field_and_fit_the_minimum_mtu() {
        let (src, dst) = (a("2001:db9::1"), a("2001:db9::2"));
        let big = vec![0x60u8; 2000];
        let r = Icmpv6Repr::PacketTooBig {
            mtu: 1400,
            invoking: &big,
        };
        let v = emitted(&r, &src, &dst);
        assert_eq!(v.len() + 40, 1280, "the error packet fits 1280 bytes");
        let theirs = Icmpv6Header::from_slice(&v).unwrap().0;
        assert_eq!(theirs.icmp_type, Icmpv6Type::PacketTooBig { mtu: 1400 });
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert!(matches!(
            Icmpv6Repr::parse(&p, &src, &dst),
            Ok(Icmpv6Repr::PacketTooBig { mtu: 1400, invoking }) if invoking.len() == 1232
        ));
        let r = Icmpv6Repr::ParamProblem {
            code: 1,
            pointer: 40,
            invoking: &big[..48],
        };
        let v = emitted(&r, &src, &dst);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, &src, &dst), Ok(r));
    }

    #[test]
    fn neighbor_solicit_and_advert_round_trip_with_their_options() {
        let (src, dst) = (a("fe80::1"), a("ff02::1:ff00:2"));
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let ns = Icmpv6Repr::NeighborSolicit {
            target: a("2001:db9::2"),
            source_lladdr: Some(mac),
        };
        let v = emitted(&ns, &src, &dst);
        assert_eq!(v.len(), 32);
        assert_eq!(&v[24..26], &[1, 1], "source link-layer address option");
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        let back = Icmpv6Repr::parse(&p, &src, &dst).unwrap();
        assert_eq!(back, ns);
        assert!(back.needs_hop_limit_255());
        // etherparse computes the same checksum over the same bytes.
        let (h, rest) = Icmpv6Header::from_slice(&v).unwrap();
        assert_eq!(
            h.icmp_type
                .calc_checksum(src.octets(), dst.octets(), rest)
                .unwrap(),
            p.checksum()
        );
        let dad = Icmpv6Repr::NeighborSolicit {
            target: a("2001:db9::2"),
            source_lladdr: None,
        };
        let v = emitted(&dad, &a("::"), &dst);
        assert_eq!(v.len(), 24, "DAD carries no source link-layer address");
        let na = Icmpv6Repr::NeighborAdvert {
            flags: na_flags::ROUTER | na_flags::SOLICITED | na_flags::OVERRIDE,
            target: a("2001:db9::2"),
            target_lladdr: Some(mac),
        };
        let v = emitted(&na, &a("2001:db9::2"), &a("fe80::1"));
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(
            Icmpv6Repr::parse(&p, &a("2001:db9::2"), &a("fe80::1")),
            Ok(na)
        );
    }

    #[test]
    fn bad_options_are_refused() {
        let (src, dst) = (a("fe80::1"), a("ff02::1:ff00:2"));
        let ns = Icmpv6Repr::NeighborSolicit {
            target: a("2001:db9::2"),
            source_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 1])),
        };
        for (at, value, want) in [(25, 0, Error::Malformed), (25, 2, Error::Truncated)] {
            let mut v = emitted(&ns, &src, &dst);
            v[at] = value;
            let mut p = Icmpv6Packet::new_unchecked(&mut v[..]);
            p.fill_checksum(&src, &dst);
            let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
            assert_eq!(
                Icmpv6Repr::parse(&p, &src, &dst),
                Err(want),
                "length {value}"
            );
        }
        let short = [135u8, 0, 0, 0, 0, 0, 0, 0, 1, 2];
        assert_eq!(
            Icmpv6Packet::new_checked(&short[..]).unwrap_err(),
            Error::Truncated
        );
    }

    proptest! {
        /// Whatever the bytes: a checked view and the parse never panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (src, dst) = (a("fe80::1"), a("ff02::1"));
            if let Ok(p) = Icmpv6Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.msg_code(), p.field(), p.body().len());
                let _ = Icmpv6Repr::parse(&p, &src, &dst);
            }
            // With a right checksum, parsing goes past the checksum check.
            let mut fixed = bytes.clone();
            if fixed.len() >= 8 {
                Icmpv6Packet::new_unchecked(&mut fixed[..]).fill_checksum(&src, &dst);
                if let Ok(p) = Icmpv6Packet::new_checked(&fixed[..]) {
                    let _ = Icmpv6Repr::parse(&p, &src, &dst);
                }
            }
        }
    }
}
