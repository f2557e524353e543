//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages a router exchanges with the hosts
//! and next hops on its links (RFC 4861): echo, the four errors, Router Solicitation and
//! Advertisement, Neighbor Solicitation and Advertisement, with the options those carry
//! (link-layer address, MTU, Prefix Information).
//!
//! The view covers the *whole* ICMPv6 message (the upper-layer bytes an IPv6 walk found;
//! [`super::ipv6::walk`]): the checksum spans every byte plus the IPv6 pseudo header
//! ([`pseudo_header_sum`]). After [`Icmpv6Packet::new_checked`] no accessor panics.
//! [`Icmpv6Repr::parse`] verifies the checksum and refuses what RFC 4861 §6.1 says to drop
//! that the message itself shows (a code other than 0, a malformed option); a Neighbor
//! Discovery message must also arrive with hop limit 255 (RFC 4861 §6.1.1, §6.1.2, §7.1.1,
//! §7.1.2: it cannot have been forwarded), which the caller checks with
//! [`Icmpv6Repr::needs_hop_limit_255`], as it checks the source address rules there (a
//! Router Advertisement from a link-local address, no source link-layer address option in
//! a solicitation from `::`).

use std::net::Ipv6Addr;

use super::bytes::{read_u16, write_u16};
use super::checksum;
use super::ethernet::MacAddr;
use super::{Error, Result};

/// Message types this module understands.
pub mod msg_type {
    /// Destination Unreachable (RFC 4443 §3.1).
    pub const DST_UNREACHABLE: u8 = 1;
    /// Packet Too Big (RFC 4443 §3.2).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded (RFC 4443 §3.3).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem (RFC 4443 §3.4).
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo Request (RFC 4443 §4.1).
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply (RFC 4443 §4.2).
    pub const ECHO_REPLY: u8 = 129;
    /// Router Solicitation (RFC 4861 §4.1).
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router Advertisement (RFC 4861 §4.2).
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor Solicitation (RFC 4861 §4.3).
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor Advertisement (RFC 4861 §4.4).
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Neighbor Discovery option types (RFC 4861 §4.6) and the sizes this module reads them at.
mod option {
    /// Source Link-Layer Address (RFC 4861 §4.6.1).
    pub const SOURCE_LLADDR: u8 = 1;
    /// Target Link-Layer Address (RFC 4861 §4.6.1).
    pub const TARGET_LLADDR: u8 = 2;
    /// Prefix Information (RFC 4861 §4.6.2).
    pub const PREFIX_INFO: u8 = 3;
    /// MTU (RFC 4861 §4.6.4).
    pub const MTU: u8 = 5;

    /// A link-layer address option over Ethernet: type, length, 6-byte MAC (RFC 2464 §6).
    pub const LLADDR_LEN: usize = 8;
    /// The MTU option: type, length, 2 reserved bytes, the MTU (RFC 4861 §4.6.4).
    pub const MTU_LEN: usize = 8;
    /// The Prefix Information option: type, length, prefix length, L|A flags, valid and
    /// preferred lifetimes, 4 reserved bytes, the 16-byte prefix (RFC 4861 §4.6.2).
    pub const PREFIX_INFO_LEN: usize = 32;

    /// An option's length byte: its size in units of 8 bytes (RFC 4861 §4.6).
    pub const fn units(len: usize) -> u8 {
        (len / 8) as u8
    }
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

/// Router Advertisement flags, the byte after Cur Hop Limit (RFC 4861 §4.2). The other
/// bits (Home Agent, RFC 6275 §7.1; router preference, RFC 4191 §2.2) are not carried:
/// parse drops them and emit writes them zero.
pub mod ra_flags {
    /// M, "managed address configuration": addresses are available through DHCPv6.
    pub const MANAGED: u8 = 0x80;
    /// O, "other configuration": other configuration (DNS, ...) is available through DHCPv6.
    pub const OTHER: u8 = 0x40;
    /// The bits [`super::Icmpv6Repr::RouterAdvert`] carries.
    pub(super) const KNOWN: u8 = MANAGED | OTHER;
}

/// Prefix Information flags (RFC 4861 §4.6.2). The reserved bits (and later RFCs' uses of
/// them) are not carried: parse drops them and emit writes them zero.
pub mod prefix_flags {
    /// L, on-link: addresses under the prefix are on this link (RFC 4861 §6.3.4).
    pub const ON_LINK: u8 = 0x80;
    /// A, autonomous: hosts may make addresses under it (RFC 4862 §5.5.3).
    pub const AUTONOMOUS: u8 = 0x40;
    /// The bits [`super::PrefixInfo`] carries.
    pub(super) const KNOWN: u8 = ON_LINK | AUTONOMOUS;
}

/// A Prefix Information lifetime meaning "forever" (RFC 4861 §4.6.2).
pub const INFINITE_LIFETIME: u32 = u32::MAX;

/// The largest ICMPv6 error message: its packet must fit the IPv6 minimum MTU (RFC 4443
/// §2.4(c)): 1280 less the IPv6 header.
pub const MAX_ERROR_LEN: usize = 1280 - 40;

/// A Neighbor Solicitation or Advertisement up to its options: the 8 bytes every message
/// has and the 16-byte target address (RFC 4861 §4.3, §4.4).
const NEIGHBOR_LEN: usize = 24;

/// A Router Advertisement up to its options: the 8 bytes every message has (hop limit,
/// flags, router lifetime in the 4-byte field), reachable time and retransmit timer (RFC
/// 4861 §4.2).
const ROUTER_ADVERT_LEN: usize = 16;

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

    /// The fixed 8 bytes must be there, and the rest of a message's fixed part: a Neighbor
    /// Discovery message's 16-byte target, a Router Advertisement's two timers (RFC 4861
    /// §6.1.1, §6.1.2, §7.1.1, §7.1.2: the "ICMP length" checks).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        let Some(&kind) = b.first() else {
            return Err(Error::Truncated);
        };
        let min = match kind {
            msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT => NEIGHBOR_LEN,
            msg_type::ROUTER_ADVERT => ROUTER_ADVERT_LEN,
            _ => Self::HEADER_LEN,
        };
        if b.len() < min {
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
    /// Parameter Problem, the flags of a Neighbor Advertisement, the hop limit, flags and
    /// router lifetime of a Router Advertisement.
    #[inline]
    pub fn field(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[4], b[5], b[6], b[7]]
    }

    /// The whole message.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
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

/// A Prefix Information option (RFC 4861 §4.6.2): a prefix of the link, for on-link
/// determination (L, §6.3.4) and stateless address autoconfiguration (A, RFC 4862 §5.5.3).
///
/// Parse does not judge the lifetimes (a preferred lifetime over the valid one, or a
/// link-local prefix, are for the host acting on it to ignore: RFC 4862 §5.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// How many leading bits of `prefix` are valid, 0 to 128 (parse refuses more).
    pub prefix_len: u8,
    /// [`prefix_flags`]: on-link (L) and autonomous (A).
    pub flags: u8,
    /// Seconds the prefix stays valid for on-link determination ([`INFINITE_LIFETIME`]:
    /// forever).
    pub valid_lifetime: u32,
    /// Seconds addresses made from it stay preferred ([`INFINITE_LIFETIME`]: forever).
    pub preferred_lifetime: u32,
    /// The prefix. The bits past `prefix_len` are reserved (RFC 4861 §4.6.2): emit writes
    /// them zero and parse clears them.
    pub prefix: Ipv6Addr,
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
    /// A host asks the routers on the link to advertise now (RFC 4861 §4.1), with its
    /// link-layer address unless it is sending from `::` (§6.1.1: then it must carry none,
    /// which is the caller's check).
    RouterSolicit { source_lladdr: Option<MacAddr> },
    /// A router advertises itself and the link's parameters (RFC 4861 §4.2). The options
    /// are written in a fixed order: source link-layer address, MTU, prefix.
    RouterAdvert {
        /// Hop limit hosts should put on their packets; 0 leaves it to them.
        cur_hop_limit: u8,
        /// [`ra_flags`]: managed (M) and other configuration (O).
        flags: u8,
        /// Seconds hosts may use the sender as a default router; 0: not a default router.
        router_lifetime: u16,
        /// Milliseconds a neighbor stays reachable after a confirmation; 0: unspecified.
        reachable_time: u32,
        /// Milliseconds between retransmitted Neighbor Solicitations; 0: unspecified.
        retrans_time: u32,
        /// The router's link-layer address (§4.6.1).
        source_lladdr: Option<MacAddr>,
        /// The link's MTU (§4.6.4).
        mtu: Option<u32>,
        /// A prefix of the link (§4.6.2); parse keeps the first of several.
        prefix: Option<PrefixInfo>,
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
    /// Discovery, its code and options (RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2): every
    /// option a whole number of 8-byte units, none of length 0, and those the message
    /// carries of their size (a link-layer address 8 bytes, MTU 8, Prefix Information 32
    /// with a prefix length of at most 128). Options it does not carry are skipped; of
    /// several of one kind, the first counts.
    ///
    /// # Errors
    /// Truncated, a bad checksum, a Neighbor Discovery code other than 0, malformed
    /// options, or a type this module does not know.
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
        let kind = packet.msg_type();
        let f = packet.field();
        let word = u32::from_be_bytes(f);
        let body = &buf[Icmpv6Packet::<&[u8]>::HEADER_LEN..];
        let (ident, seq_no) = (read_u16(&f, 0), read_u16(&f, 2));
        let nd = matches!(
            kind,
            msg_type::ROUTER_SOLICIT
                | msg_type::ROUTER_ADVERT
                | msg_type::NEIGHBOR_SOLICIT
                | msg_type::NEIGHBOR_ADVERT
        );
        if nd && packet.msg_code() != 0 {
            return Err(Error::Malformed);
        }
        Ok(match kind {
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
            msg_type::ROUTER_SOLICIT => Icmpv6Repr::RouterSolicit {
                source_lladdr: NdOptions::read(kind, body)?.source_lladdr,
            },
            msg_type::ROUTER_ADVERT => {
                let (timers, options) = body
                    .split_at_checked(ROUTER_ADVERT_LEN - Icmpv6Packet::<&[u8]>::HEADER_LEN)
                    .ok_or(Error::Truncated)?;
                let o = NdOptions::read(kind, options)?;
                Icmpv6Repr::RouterAdvert {
                    cur_hop_limit: f[0],
                    flags: f[1] & ra_flags::KNOWN,
                    router_lifetime: read_u16(&f, 2),
                    reachable_time: read_u32(timers, 0),
                    retrans_time: read_u32(timers, 4),
                    source_lladdr: o.source_lladdr,
                    mtu: o.mtu,
                    prefix: o.prefix,
                }
            }
            msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT => {
                let (t, options) = body
                    .split_at_checked(NEIGHBOR_LEN - Icmpv6Packet::<&[u8]>::HEADER_LEN)
                    .ok_or(Error::Truncated)?;
                let mut octets = [0u8; 16];
                octets.copy_from_slice(t);
                let target = Ipv6Addr::from(octets);
                let o = NdOptions::read(kind, options)?;
                if kind == msg_type::NEIGHBOR_SOLICIT {
                    Icmpv6Repr::NeighborSolicit {
                        target,
                        source_lladdr: o.source_lladdr,
                    }
                } else {
                    Icmpv6Repr::NeighborAdvert {
                        flags: f[0] & 0xe0,
                        target,
                        target_lladdr: o.target_lladdr,
                    }
                }
            }
            _ => return Err(Error::Unsupported),
        })
    }

    /// Whether the message must arrive with hop limit 255: Neighbor Discovery (RFC 4861
    /// §6.1.1, §6.1.2, §7.1.1, §7.1.2).
    pub fn needs_hop_limit_255(&self) -> bool {
        matches!(
            self,
            Icmpv6Repr::RouterSolicit { .. }
                | Icmpv6Repr::RouterAdvert { .. }
                | Icmpv6Repr::NeighborSolicit { .. }
                | Icmpv6Repr::NeighborAdvert { .. }
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
            Icmpv6Repr::RouterSolicit { source_lladdr } => {
                h + options_len(*source_lladdr, None, None)
            }
            Icmpv6Repr::RouterAdvert {
                source_lladdr,
                mtu,
                prefix,
                ..
            } => ROUTER_ADVERT_LEN + options_len(*source_lladdr, *mtu, *prefix),
            Icmpv6Repr::NeighborSolicit {
                source_lladdr: mac, ..
            }
            | Icmpv6Repr::NeighborAdvert {
                target_lladdr: mac, ..
            } => NEIGHBOR_LEN + options_len(*mac, None, None),
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
            Icmpv6Repr::RouterSolicit { .. } => (msg_type::ROUTER_SOLICIT, 0, [0; 4]),
            Icmpv6Repr::RouterAdvert {
                cur_hop_limit,
                flags,
                router_lifetime,
                ..
            } => {
                let l = router_lifetime.to_be_bytes();
                let field = [cur_hop_limit, flags & ra_flags::KNOWN, l[0], l[1]];
                (msg_type::ROUTER_ADVERT, 0, field)
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
            Icmpv6Repr::RouterSolicit { source_lladdr } => {
                let lladdr = source_lladdr.map(|mac| (option::SOURCE_LLADDR, mac));
                emit_options(rest, lladdr, None, None);
            }
            Icmpv6Repr::RouterAdvert {
                reachable_time,
                retrans_time,
                source_lladdr,
                mtu,
                prefix,
                ..
            } => {
                rest[0..4].copy_from_slice(&reachable_time.to_be_bytes());
                rest[4..8].copy_from_slice(&retrans_time.to_be_bytes());
                let lladdr = source_lladdr.map(|mac| (option::SOURCE_LLADDR, mac));
                emit_options(&mut rest[8..], lladdr, mtu, prefix);
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
                let opt = if kind == msg_type::NEIGHBOR_SOLICIT {
                    option::SOURCE_LLADDR
                } else {
                    option::TARGET_LLADDR
                };
                emit_options(&mut rest[16..], mac.map(|mac| (opt, mac)), None, None);
            }
        }
        Icmpv6Packet::new_unchecked(b).fill_checksum(src, dst);
    }
}

fn echo_field(ident: u16, seq_no: u16) -> [u8; 4] {
    let (i, s) = (ident.to_be_bytes(), seq_no.to_be_bytes());
    [i[0], i[1], s[0], s[1]]
}

/// The big-endian `u32` at `at`; the caller has checked `data` holds it.
fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// `addr` with the bits past the first `len` cleared (all kept from 128 on).
fn masked(addr: Ipv6Addr, len: u8) -> Ipv6Addr {
    let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    Ipv6Addr::from(u128::from(addr) & !host)
}

/// Walks the options of a Neighbor Discovery message (RFC 4861 §4.6): each a type byte, a
/// length byte counting 8-byte units (type and length included), and its data. Yields
/// `(type, whole option)`. An option of length 0 ([`Error::Malformed`]) or running past
/// the end, or a lone byte after the last ([`Error::Truncated`]), ends the walk with an
/// error: RFC 4861 §4.6, §6.1.1, §6.1.2, §7.1.1 and §7.1.2 drop such a message.
#[derive(Debug, Clone)]
struct NdOptionWalk<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NdOptionWalk<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = std::mem::take(&mut self.rest);
        let (&kind, &units) = match rest {
            [] => return None,
            [kind, units, ..] => (kind, units),
            [_] => return Some(Err(Error::Truncated)),
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            return Some(Err(Error::Malformed));
        }
        let Some((opt, tail)) = rest.split_at_checked(len) else {
            return Some(Err(Error::Truncated));
        };
        self.rest = tail;
        Some(Ok((kind, opt)))
    }
}

/// The options of a Neighbor Discovery message this module reads; the first of each kind.
#[derive(Debug, Default)]
struct NdOptions {
    source_lladdr: Option<MacAddr>,
    target_lladdr: Option<MacAddr>,
    mtu: Option<u32>,
    prefix: Option<PrefixInfo>,
}

impl NdOptions {
    /// Reads the `options` of a message of type `msg`: every option must be well formed
    /// ([`NdOptionWalk`]); those the message may carry (RFC 4861 §4.1 to §4.4) must also
    /// have their size (a link-layer address option 8 bytes, the Ethernet one of RFC 2464
    /// §6; MTU 8, §4.6.4; Prefix Information 32 with a prefix length of at most 128,
    /// §4.6.2). Other options are skipped (§4.1 to §4.4: receivers ignore options they do
    /// not recognize).
    ///
    /// # Errors
    /// [`Error::Malformed`] or [`Error::Truncated`] for an option as above.
    fn read(msg: u8, options: &[u8]) -> Result<NdOptions> {
        let mut o = NdOptions::default();
        for opt in (NdOptionWalk { rest: options }) {
            let (kind, opt) = opt?;
            match (msg, kind) {
                (
                    msg_type::ROUTER_SOLICIT | msg_type::ROUTER_ADVERT | msg_type::NEIGHBOR_SOLICIT,
                    option::SOURCE_LLADDR,
                ) => {
                    let mac = read_lladdr(opt)?;
                    o.source_lladdr.get_or_insert(mac);
                }
                (msg_type::NEIGHBOR_ADVERT, option::TARGET_LLADDR) => {
                    let mac = read_lladdr(opt)?;
                    o.target_lladdr.get_or_insert(mac);
                }
                (msg_type::ROUTER_ADVERT, option::MTU) => {
                    let mtu = read_mtu(opt)?;
                    o.mtu.get_or_insert(mtu);
                }
                (msg_type::ROUTER_ADVERT, option::PREFIX_INFO) => {
                    let prefix = read_prefix(opt)?;
                    o.prefix.get_or_insert(prefix);
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// A link-layer address option (RFC 4861 §4.6.1) over Ethernet (RFC 2464 §6).
fn read_lladdr(opt: &[u8]) -> Result<MacAddr> {
    let opt: &[u8; option::LLADDR_LEN] = opt.try_into().map_err(|_| Error::Malformed)?;
    let [_, _, mac @ ..] = *opt;
    Ok(MacAddr(mac))
}

/// An MTU option (RFC 4861 §4.6.4).
fn read_mtu(opt: &[u8]) -> Result<u32> {
    let opt: &[u8; option::MTU_LEN] = opt.try_into().map_err(|_| Error::Malformed)?;
    Ok(read_u32(opt, 4))
}

/// A Prefix Information option (RFC 4861 §4.6.2).
fn read_prefix(opt: &[u8]) -> Result<PrefixInfo> {
    let opt: &[u8; option::PREFIX_INFO_LEN] = opt.try_into().map_err(|_| Error::Malformed)?;
    let prefix_len = opt[2];
    if prefix_len > 128 {
        return Err(Error::Malformed);
    }
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&opt[16..32]);
    Ok(PrefixInfo {
        prefix_len,
        flags: opt[3] & prefix_flags::KNOWN,
        valid_lifetime: read_u32(opt, 4),
        preferred_lifetime: read_u32(opt, 8),
        prefix: masked(Ipv6Addr::from(octets), prefix_len),
    })
}

/// Bytes [`emit_options`] writes for these options.
fn options_len(lladdr: Option<MacAddr>, mtu: Option<u32>, prefix: Option<PrefixInfo>) -> usize {
    lladdr.map_or(0, |_| option::LLADDR_LEN)
        + mtu.map_or(0, |_| option::MTU_LEN)
        + prefix.map_or(0, |_| option::PREFIX_INFO_LEN)
}

/// Writes the options in a fixed order, a link-layer address `(type, MAC)` (RFC 4861
/// §4.6.1), the MTU (§4.6.4), the prefix (§4.6.2), into `out`, which is zeroed and
/// [`options_len`] long.
fn emit_options(
    out: &mut [u8],
    lladdr: Option<(u8, MacAddr)>,
    mtu: Option<u32>,
    prefix: Option<PrefixInfo>,
) {
    let mut out = out;
    if let Some((kind, mac)) = lladdr {
        let (o, rest) = out.split_at_mut(option::LLADDR_LEN);
        o[0] = kind;
        o[1] = option::units(option::LLADDR_LEN);
        o[2..8].copy_from_slice(&mac.0);
        out = rest;
    }
    if let Some(mtu) = mtu {
        let (o, rest) = out.split_at_mut(option::MTU_LEN);
        o[0] = option::MTU;
        o[1] = option::units(option::MTU_LEN);
        o[4..8].copy_from_slice(&mtu.to_be_bytes());
        out = rest;
    }
    if let Some(p) = prefix {
        let o = &mut out[..option::PREFIX_INFO_LEN];
        o[0] = option::PREFIX_INFO;
        o[1] = option::units(option::PREFIX_INFO_LEN);
        o[2] = p.prefix_len;
        o[3] = p.flags & prefix_flags::KNOWN;
        o[4..8].copy_from_slice(&p.valid_lifetime.to_be_bytes());
        o[8..12].copy_from_slice(&p.preferred_lifetime.to_be_bytes());
        o[16..32].copy_from_slice(&masked(p.prefix, p.prefix_len).octets());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use etherparse::{Icmpv6Header, Icmpv6Slice, Icmpv6Type};
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn emitted(r: &Icmpv6Repr<'_>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
        let mut v = vec![0u8; r.buffer_len()];
        r.emit(&mut v, src, dst);
        v
    }

    /// `v` with its checksum recomputed, parsed through an unchecked view (so that parse's
    /// own length checks answer too).
    fn reparsed<'a>(v: &'a mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Icmpv6Repr<'a>> {
        if v.len() >= 4 {
            Icmpv6Packet::new_unchecked(&mut *v).fill_checksum(src, dst);
        }
        Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(&*v), src, dst)
    }

    /// etherparse reads the message as the type it does not model (0.16 has no Router
    /// Solicitation or Advertisement), computes our checksum and finds it valid.
    fn etherparse_agrees(v: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
        let (h, rest) = Icmpv6Header::from_slice(v).unwrap();
        assert_eq!(
            h.icmp_type,
            Icmpv6Type::Unknown {
                type_u8: v[0],
                code_u8: v[1],
                bytes5to8: [v[4], v[5], v[6], v[7]],
            }
        );
        let ours = Icmpv6Packet::new_checked(v).unwrap().checksum();
        assert_eq!(h.checksum, ours);
        assert_eq!(
            h.icmp_type
                .calc_checksum(src.octets(), dst.octets(), rest)
                .unwrap(),
            ours
        );
        assert!(Icmpv6Slice::from_slice(v)
            .unwrap()
            .is_checksum_valid(src.octets(), dst.octets()));
    }

    /// The `(type, length byte)` of each option in `options`.
    fn option_kinds(options: &[u8]) -> Vec<(u8, u8)> {
        NdOptionWalk { rest: options }
            .map(|o| o.map(|(kind, opt)| (kind, opt[1])))
            .collect::<Result<_>>()
            .unwrap()
    }

    fn a_router_advert() -> Icmpv6Repr<'static> {
        Icmpv6Repr::RouterAdvert {
            cur_hop_limit: 64,
            flags: ra_flags::MANAGED | ra_flags::OTHER,
            router_lifetime: 1800,
            reachable_time: 30_000,
            retrans_time: 1_000,
            source_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            mtu: Some(1500),
            prefix: Some(PrefixInfo {
                prefix_len: 64,
                flags: prefix_flags::ON_LINK | prefix_flags::AUTONOMOUS,
                valid_lifetime: 2_592_000,
                preferred_lifetime: 604_800,
                prefix: a("2001:db8:1::"),
            }),
        }
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

    #[test]
    fn router_solicit_round_trips_and_etherparse_agrees_on_its_checksum() {
        let (src, dst) = (a("fe80::2"), a("ff02::2"));
        let rs = Icmpv6Repr::RouterSolicit {
            source_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 2])),
        };
        let v = emitted(&rs, &src, &dst);
        assert_eq!(v.len(), 16);
        assert_eq!(&v[..2], &[133, 0], "type and code (RFC 4861 §4.1)");
        assert_eq!(&v[4..8], &[0; 4], "reserved");
        assert_eq!(
            &v[8..],
            &[1, 1, 2, 0, 0, 0, 0, 2],
            "source link-layer address option (§4.6.1)"
        );
        etherparse_agrees(&v, &src, &dst);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        let back = Icmpv6Repr::parse(&p, &src, &dst).unwrap();
        assert_eq!(back, rs);
        assert!(back.needs_hop_limit_255());
        assert_eq!(
            Icmpv6Repr::parse(&p, &a("fe80::3"), &dst),
            Err(Error::BadChecksum)
        );
        // From `::`, a host sends none.
        let bare = Icmpv6Repr::RouterSolicit {
            source_lladdr: None,
        };
        let v = emitted(&bare, &a("::"), &dst);
        assert_eq!(v.len(), 8);
        etherparse_agrees(&v, &a("::"), &dst);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, &a("::"), &dst), Ok(bare));
    }

    #[test]
    fn router_advert_is_laid_out_as_rfc_4861_says_and_round_trips() {
        let (src, dst) = (a("fe80::1"), a("ff02::1"));
        let ra = a_router_advert();
        let mut v = emitted(&ra, &src, &dst);
        etherparse_agrees(&v, &src, &dst);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        let back = Icmpv6Repr::parse(&p, &src, &dst).unwrap();
        assert_eq!(back, ra);
        assert!(back.needs_hop_limit_255());
        v[2..4].fill(0);
        #[rustfmt::skip]
        let want: [u8; 64] = [
            // §4.2: type, code, checksum; hop limit, M|O, router lifetime 1800.
            134, 0, 0, 0, 64, 0xc0, 0x07, 0x08,
            // Reachable time 30000 ms, retrans timer 1000 ms.
            0, 0, 0x75, 0x30, 0, 0, 0x03, 0xe8,
            // §4.6.1: source link-layer address, 1 unit.
            1, 1, 2, 0, 0, 0, 0, 1,
            // §4.6.4: MTU, 1 unit, reserved, 1500.
            5, 1, 0, 0, 0, 0, 0x05, 0xdc,
            // §4.6.2: prefix information, 4 units, /64, L|A, valid 30 days, preferred 7.
            3, 4, 64, 0xc0, 0x00, 0x27, 0x8d, 0x00,
            0x00, 0x09, 0x3a, 0x80, 0, 0, 0, 0,
            0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(v, want);
    }

    #[test]
    fn router_advert_reserved_bits_are_neither_written_nor_read() {
        let (src, dst) = (a("fe80::1"), a("ff02::1"));
        let Icmpv6Repr::RouterAdvert {
            prefix: Some(p), ..
        } = a_router_advert()
        else {
            unreachable!()
        };
        let noisy = Icmpv6Repr::RouterAdvert {
            cur_hop_limit: 0,
            flags: 0xff,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_time: 0,
            source_lladdr: None,
            mtu: None,
            prefix: Some(PrefixInfo {
                flags: 0xff,
                prefix: a("2001:db8:1:0:ffff::1"),
                ..p
            }),
        };
        let mut v = emitted(&noisy, &src, &dst);
        assert_eq!(v[5], 0xc0, "M|O only");
        assert_eq!(v[16 + 3], 0xc0, "L|A only");
        assert_eq!(&v[16 + 24..], &[0; 8], "no bits past the prefix length");
        // Set on the wire, they are ignored (RFC 4861 §4.2, §4.6.2).
        v[5] = 0xff;
        v[16 + 3] = 0xff;
        v[16 + 12..16 + 16].fill(0xff);
        v[16 + 24..].fill(0xff);
        let want = Icmpv6Repr::RouterAdvert {
            flags: ra_flags::MANAGED | ra_flags::OTHER,
            cur_hop_limit: 0,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_time: 0,
            source_lladdr: None,
            mtu: None,
            prefix: Some(p),
        };
        assert_eq!(reparsed(&mut v, &src, &dst), Ok(want));
    }

    #[test]
    fn an_unknown_option_between_known_ones_is_skipped_and_the_first_prefix_counts() {
        let (src, dst) = (a("fe80::1"), a("ff02::1"));
        let ra = a_router_advert();
        let v = emitted(&ra, &src, &dst);
        // Header and link-layer address; a 16-byte option of an unknown type; a target
        // link-layer address option, which an advertisement does not carry, of the wrong
        // size; MTU and prefix; a second prefix.
        let mut m = v[..24].to_vec();
        m.extend_from_slice(&[200, 2]);
        m.extend_from_slice(&[0xaa; 14]);
        m.extend_from_slice(&[option::TARGET_LLADDR, 2]);
        m.extend_from_slice(&[0xbb; 14]);
        m.extend_from_slice(&v[24..]);
        let mut second = v[32..64].to_vec();
        second[2] = 48;
        second[16..32].copy_from_slice(&a("2001:db8:2::").octets());
        m.extend_from_slice(&second);
        assert_eq!(
            option_kinds(&m[16..]),
            [(1, 1), (200, 2), (2, 2), (5, 1), (3, 4), (3, 4)]
        );
        assert_eq!(reparsed(&mut m, &src, &dst), Ok(ra));
        // The unknown option first of all, too.
        let mut m = v[..16].to_vec();
        m.extend_from_slice(&[200, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&v[16..]);
        assert_eq!(reparsed(&mut m, &src, &dst), Ok(ra));
    }

    #[test]
    fn router_advert_options_are_each_optional_and_in_a_fixed_order() {
        let (src, dst) = (a("fe80::1"), a("ff02::1"));
        let Icmpv6Repr::RouterAdvert {
            source_lladdr: Some(mac),
            mtu: Some(mtu),
            prefix: Some(p),
            ..
        } = a_router_advert()
        else {
            unreachable!()
        };
        for bits in 0..8u8 {
            let ra = Icmpv6Repr::RouterAdvert {
                cur_hop_limit: 255,
                flags: 0,
                router_lifetime: 0,
                reachable_time: 0,
                retrans_time: 0,
                source_lladdr: (bits & 1 != 0).then_some(mac),
                mtu: (bits & 2 != 0).then_some(mtu),
                prefix: (bits & 4 != 0).then_some(p),
            };
            let mut want = Vec::new();
            for (bit, kind, units) in [(1, 1, 1), (2, 5, 1), (4, 3, 4)] {
                if bits & bit != 0 {
                    want.push((kind, units));
                }
            }
            let mut v = emitted(&ra, &src, &dst);
            let sizes: usize = want.iter().map(|&(_, u)| usize::from(u) * 8).sum();
            assert_eq!(v.len(), 16 + sizes, "{bits:03b}");
            assert_eq!(option_kinds(&v[16..]), want, "{bits:03b}");
            etherparse_agrees(&v, &src, &dst);
            assert_eq!(reparsed(&mut v, &src, &dst), Ok(ra), "{bits:03b}");
        }
    }

    #[test]
    fn malformed_router_messages_are_refused() {
        let (src, dst) = (a("fe80::1"), a("ff02::1"));
        let rs = emitted(
            &Icmpv6Repr::RouterSolicit {
                source_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 2])),
            },
            &src,
            &dst,
        );
        let ra = emitted(&a_router_advert(), &src, &dst);
        let refused = |v: &[u8], edit: &dyn Fn(&mut Vec<u8>)| -> Error {
            let mut v = v.to_vec();
            edit(&mut v);
            reparsed(&mut v, &src, &dst).unwrap_err()
        };
        use Error::{Malformed, Truncated};
        assert_eq!(refused(&rs, &|v| v[1] = 1), Malformed, "RS code 1");
        assert_eq!(refused(&ra, &|v| v[1] = 1), Malformed, "RA code 1");
        assert_eq!(refused(&rs, &|v| v[9] = 0), Malformed, "RS option length 0");
        assert_eq!(
            refused(&ra, &|v| v[25] = 0),
            Malformed,
            "RA option length 0"
        );
        assert_eq!(
            refused(&rs, &|v| v[9] = 2),
            Truncated,
            "RS option past the end"
        );
        assert_eq!(
            refused(&ra, &|v| v[33] = 5),
            Truncated,
            "RA option past the end"
        );
        assert_eq!(
            refused(&ra, &|v| v.truncate(40)),
            Truncated,
            "RA cut in its prefix"
        );
        assert_eq!(
            refused(&rs, &|v| v.push(0)),
            Truncated,
            "RS lone trailing byte"
        );
        assert_eq!(
            refused(&ra, &|v| v.truncate(12)),
            Truncated,
            "RA without timers"
        );
        let rs_long_lladdr = |v: &mut Vec<u8>| {
            v[9] = 2;
            v.extend_from_slice(&[0; 8]);
        };
        assert_eq!(
            refused(&rs, &rs_long_lladdr),
            Malformed,
            "RS 16-byte lladdr"
        );
        let ra_long_lladdr = |v: &mut Vec<u8>| {
            v[17] = 2;
            v.splice(24..24, [0; 8]);
        };
        assert_eq!(
            refused(&ra, &ra_long_lladdr),
            Malformed,
            "RA 16-byte lladdr"
        );
        let long_mtu = |v: &mut Vec<u8>| {
            v[25] = 2;
            v.splice(32..32, [0; 8]);
        };
        assert_eq!(refused(&ra, &long_mtu), Malformed, "RA 16-byte MTU option");
        let short_prefix = |v: &mut Vec<u8>| {
            v[33] = 3;
            v.truncate(56);
        };
        assert_eq!(refused(&ra, &short_prefix), Malformed, "RA 24-byte prefix");
        assert_eq!(
            refused(&ra, &|v| v[34] = 129),
            Malformed,
            "RA prefix length 129"
        );
        let short = &ra[..12];
        assert_eq!(
            Icmpv6Packet::new_checked(short).unwrap_err(),
            Error::Truncated,
            "the view needs the two timers"
        );
        let mut bad = ra.clone();
        bad[2] ^= 1;
        let p = Icmpv6Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&p, &src, &dst), Err(Error::BadChecksum));
    }

    proptest! {
        /// Whatever the bytes: a checked view and the parse never panic, also with the type
        /// forced to each Neighbor Discovery message and code 0.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (src, dst) = (a("fe80::1"), a("ff02::1"));
            if let Ok(p) = Icmpv6Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.msg_code(), p.field(), p.body().len());
                let _ = Icmpv6Repr::parse(&p, &src, &dst);
            }
            let kinds = [
                None,
                Some(msg_type::ROUTER_SOLICIT),
                Some(msg_type::ROUTER_ADVERT),
                Some(msg_type::NEIGHBOR_SOLICIT),
                Some(msg_type::NEIGHBOR_ADVERT),
            ];
            for kind in kinds {
                let mut fixed = bytes.clone();
                if let (Some(kind), [t, c, ..]) = (kind, &mut fixed[..]) {
                    (*t, *c) = (kind, 0);
                }
                // Unchecked: parse does its own length checks.
                let _ = Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(&fixed[..]), &src, &dst);
                // With a right checksum, parsing goes past the checksum check.
                if fixed.len() >= 8 {
                    Icmpv6Packet::new_unchecked(&mut fixed[..]).fill_checksum(&src, &dst);
                    if let Ok(p) = Icmpv6Packet::new_checked(&fixed[..]) {
                        let _ = (p.msg_type(), p.msg_code(), p.field(), p.body().len());
                        let _ = Icmpv6Repr::parse(&p, &src, &dst);
                    }
                }
            }
        }

        /// Neighbor Discovery messages whose options are well formed (mostly of the size
        /// parse wants) far more often than random bytes make them: parse never panics, and what it accepts emits back to
        /// itself.
        #[test]
        fn nd_messages_with_arbitrary_options_parse_to_a_fixed_point(
            kind in 133u8..=136,
            fixed in proptest::collection::vec(any::<u8>(), 22),
            options in proptest::collection::vec(
                (
                    prop_oneof![Just(1u8), Just(2), Just(3), Just(5), any::<u8>()],
                    prop_oneof![
                        3 => Just(None),
                        1 => (0u8..=4).prop_map(Some),
                        1 => any::<u8>().prop_map(Some),
                    ],
                    any::<u8>(),
                    prop_oneof![4 => Just(None), 1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Some)],
                ),
                0..6,
            ),
        ) {
            let (src, dst) = (a("fe80::1"), a("ff02::1"));
            let mut v = vec![kind, 0, 0, 0];
            let fixed_len = match kind {
                msg_type::ROUTER_SOLICIT => 4,
                msg_type::ROUTER_ADVERT => 12,
                _ => 20,
            };
            v.extend_from_slice(&fixed[..fixed_len]);
            for (opt, units, fill, junk) in options {
                // By default the size this module reads the option at.
                let units = units.unwrap_or(if opt == option::PREFIX_INFO { 4 } else { 1 });
                v.extend_from_slice(&[opt, units]);
                match junk {
                    Some(junk) => v.extend_from_slice(&junk),
                    None => v.resize(v.len() + (usize::from(units) * 8).saturating_sub(2), fill),
                }
            }
            Icmpv6Packet::new_unchecked(&mut v[..]).fill_checksum(&src, &dst);
            let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
            if let Ok(r) = Icmpv6Repr::parse(&p, &src, &dst) {
                prop_assert!(r.needs_hop_limit_255());
                let w = emitted(&r, &src, &dst);
                let q = Icmpv6Packet::new_checked(&w[..]).unwrap();
                prop_assert_eq!(Icmpv6Repr::parse(&q, &src, &dst), Ok(r));
            }
        }

        /// Any advertisement emits and parses back, its reserved bits cleared.
        #[test]
        fn router_adverts_round_trip(
            (cur_hop_limit, flags, router_lifetime, reachable_time, retrans_time)
                in any::<(u8, u8, u16, u32, u32)>(),
            source_lladdr in proptest::option::of(any::<[u8; 6]>()),
            mtu in proptest::option::of(any::<u32>()),
            prefix in proptest::option::of(
                (0u8..=128, any::<u8>(), any::<u32>(), any::<u32>(), any::<u128>()),
            ),
        ) {
            let (src, dst) = (a("fe80::1"), a("ff02::1"));
            let info = |(prefix_len, flags, valid_lifetime, preferred_lifetime, bits): (u8, u8, u32, u32, u128), canonical: bool| {
                PrefixInfo {
                    prefix_len,
                    flags: if canonical { flags & prefix_flags::KNOWN } else { flags },
                    valid_lifetime,
                    preferred_lifetime,
                    prefix: if canonical {
                        masked(Ipv6Addr::from(bits), prefix_len)
                    } else {
                        Ipv6Addr::from(bits)
                    },
                }
            };
            let ra = |canonical: bool| Icmpv6Repr::RouterAdvert {
                cur_hop_limit,
                flags: if canonical { flags & ra_flags::KNOWN } else { flags },
                router_lifetime,
                reachable_time,
                retrans_time,
                source_lladdr: source_lladdr.map(MacAddr),
                mtu,
                prefix: prefix.map(|p| info(p, canonical)),
            };
            let v = emitted(&ra(false), &src, &dst);
            let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
            prop_assert_eq!(Icmpv6Repr::parse(&p, &src, &dst), Ok(ra(true)));
        }
    }
}
