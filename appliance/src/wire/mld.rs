//! Multicast Listener Discovery (RFC 9777, MLDv2; RFC 2710's v1 queries
//! understood): the queries a router on the link sends, and the version 2
//! reports a listener answers with. MLD messages are ICMPv6 (types 130,
//! 131, 132, 143), sent with hop limit 1, from a link-local address, behind
//! a Hop-by-Hop header holding the Router Alert option.
//!
//! [`QueryRepr::parse`] reads a query (checksum over the IPv6 pseudo header
//! included); [`ReportRepr`] writes a report. Only what a listener with no
//! source filters needs: records carry no sources; a query's sources are
//! counted and skipped.

use std::net::Ipv6Addr;

use super::bytes::{read_u16, write_u16};
use super::icmpv6::Icmpv6Packet;
use super::{Error, Result};

/// ICMPv6 types of MLD.
pub mod msg_type {
    /// Multicast Listener Query (v1 and v2, RFC 9777 §5.1).
    pub const QUERY: u8 = 130;
    /// Version 1 Multicast Listener Report (RFC 2710 §3).
    pub const REPORT_V1: u8 = 131;
    /// Version 1 Multicast Listener Done (RFC 2710 §3).
    pub const DONE_V1: u8 = 132;
    /// Version 2 Multicast Listener Report (RFC 9777 §5.2).
    pub const REPORT_V2: u8 = 143;
}

/// Multicast Address Record types (RFC 9777 §5.2.12).
pub mod record_type {
    /// Current state: listening to the group from all sources but none.
    pub const MODE_IS_EXCLUDE: u8 = 2;
    /// A change: now listening to the group from no source (left).
    pub const CHANGE_TO_INCLUDE: u8 = 3;
    /// A change: now listening to the group from every source (joined).
    pub const CHANGE_TO_EXCLUDE: u8 = 4;
}

/// ff02::16: where version 2 reports go (all MLDv2-capable routers).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// The Hop-by-Hop header every MLD message rides behind: Next Header
/// ICMPv6, length 0 (8 bytes), Router Alert (type 5, value 0: MLD), and a
/// PadN of two bytes (RFC 2711, RFC 9777 §5).
pub const HOP_BY_HOP_ROUTER_ALERT: [u8; 8] = [58, 0, 5, 2, 0, 0, 1, 0];

/// A query: general (`group` ::) or for one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryRepr {
    /// The group asked about; :: for a general query.
    pub group: Ipv6Addr,
    /// How long the answer may wait, in milliseconds (the Maximum
    /// Response Code decoded, RFC 9777 §5.1.3).
    pub max_response_ms: u32,
    /// An MLDv1 query (24 bytes): the querier speaks version 1 only.
    pub v1: bool,
    /// Sources listed (a group-and-source-specific query).
    pub sources: u16,
}

impl QueryRepr {
    /// Reads a query from `src` to `dst` whose ICMPv6 message is `packet`.
    ///
    /// # Errors
    /// Truncated, a bad checksum, not a query, a nonzero code, or a length
    /// that is neither v1's 24 bytes nor v2's 28 plus its sources.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Icmpv6Packet<T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<QueryRepr> {
        packet.check_len()?;
        let b = packet.as_bytes();
        if packet.msg_type() != msg_type::QUERY || packet.msg_code() != 0 {
            return Err(Error::Unsupported);
        }
        if b.len() < 24 {
            return Err(Error::Truncated);
        }
        if !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let code = read_u16(b, 4);
        let mut g = [0u8; 16];
        g.copy_from_slice(&b[8..24]);
        let (v1, sources) = if b.len() == 24 {
            (true, 0)
        } else {
            let n = read_u16(b.get(24..28).ok_or(Error::Truncated)?, 2);
            if b.len() < 28 + 16 * usize::from(n) {
                return Err(Error::Truncated);
            }
            (false, n)
        };
        Ok(QueryRepr {
            group: Ipv6Addr::from(g),
            max_response_ms: if v1 {
                u32::from(code)
            } else {
                max_response_ms(code)
            },
            v1,
            sources,
        })
    }
}

/// The Maximum Response Code's delay in milliseconds (RFC 9777 §5.1.3:
/// below 32768 it is the delay; above, a float with a 3-bit exponent and a
/// 12-bit mantissa).
pub fn max_response_ms(code: u16) -> u32 {
    if code < 0x8000 {
        u32::from(code)
    } else {
        let mant = u32::from(code & 0x0fff);
        let exp = u32::from((code >> 12) & 0x7);
        (mant | 0x1000) << (exp + 3)
    }
}

/// One Multicast Address Record, without sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// [`record_type`].
    pub kind: u8,
    pub group: Ipv6Addr,
}

/// A version 2 report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRepr<'a> {
    pub records: &'a [Record],
}

impl ReportRepr<'_> {
    /// Bytes [`Self::emit`] writes: 8 of header and 20 per record.
    pub fn buffer_len(&self) -> usize {
        8 + 20 * self.records.len()
    }

    /// Writes the report from `src` to `dst` (its checksum covers them).
    ///
    /// # Panics
    /// If `buffer` is shorter than [`Self::buffer_len`], or there are more
    /// than 65535 records.
    pub fn emit(&self, buffer: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
        let b = &mut buffer[..self.buffer_len()];
        b.fill(0);
        b[0] = msg_type::REPORT_V2;
        let n = u16::try_from(self.records.len()).unwrap_or(u16::MAX);
        write_u16(b, 6, n);
        for (r, out) in self.records.iter().zip(b[8..].chunks_exact_mut(20)) {
            out[0] = r.kind;
            out[4..20].copy_from_slice(&r.group.octets());
        }
        Icmpv6Packet::new_unchecked(b).fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_report_is_laid_out_as_rfc_9777_says() {
        let records = [
            Record {
                kind: record_type::CHANGE_TO_EXCLUDE,
                group: a("ff02::1:ff00:1"),
            },
            Record {
                kind: record_type::CHANGE_TO_EXCLUDE,
                group: a("ff02::2"),
            },
        ];
        let r = ReportRepr { records: &records };
        let mut buf = vec![0u8; r.buffer_len()];
        let src = a("fe80::1");
        r.emit(&mut buf, &src, &ALL_MLDV2_ROUTERS);
        assert_eq!(buf.len(), 48);
        assert_eq!(&buf[..2], &[143, 0]);
        assert_eq!(&buf[4..8], &[0, 0, 0, 2]);
        assert_eq!(&buf[8..12], &[4, 0, 0, 0]);
        assert_eq!(&buf[12..28], &a("ff02::1:ff00:1").octets());
        assert_eq!(&buf[28..32], &[4, 0, 0, 0]);
        let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(&src, &ALL_MLDV2_ROUTERS));
        // etherparse agrees on the checksum.
        let t = etherparse::Icmpv6Type::Unknown {
            type_u8: 143,
            code_u8: 0,
            bytes5to8: [0, 0, 0, 2],
        };
        assert_eq!(
            t.calc_checksum(src.octets(), ALL_MLDV2_ROUTERS.octets(), &buf[8..])
                .unwrap()
                .to_be_bytes(),
            [buf[2], buf[3]]
        );
    }

    fn query(code: u16, group: &str, v2: Option<u16>) -> (Vec<u8>, Ipv6Addr, Ipv6Addr) {
        let mut b = vec![130, 0, 0, 0];
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&a(group).octets());
        if let Some(n) = v2 {
            b.extend_from_slice(&[2, 125]);
            b.extend_from_slice(&n.to_be_bytes());
            for _ in 0..n {
                b.extend_from_slice(&a("fd00::9").octets());
            }
        }
        let (src, dst) = (a("fe80::9"), a("ff02::1"));
        Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(&src, &dst);
        (b, src, dst)
    }

    #[test]
    fn queries_of_both_versions_are_read() {
        let (b, s, d) = query(10000, "::", Some(0));
        let q = QueryRepr::parse(&Icmpv6Packet::new_checked(&b[..]).unwrap(), &s, &d).unwrap();
        assert_eq!(
            q,
            QueryRepr {
                group: Ipv6Addr::UNSPECIFIED,
                max_response_ms: 10000,
                v1: false,
                sources: 0
            }
        );
        let (b, s, d) = query(0x8001, "ff02::1:ff00:1", Some(2));
        let q = QueryRepr::parse(&Icmpv6Packet::new_checked(&b[..]).unwrap(), &s, &d).unwrap();
        assert_eq!((q.max_response_ms, q.sources), ((0x1001 << 3), 2));
        let (b, s, d) = query(1000, "::", None);
        let q = QueryRepr::parse(&Icmpv6Packet::new_checked(&b[..]).unwrap(), &s, &d).unwrap();
        assert!(q.v1);
        // Sources counted past the end; a bad checksum; not a query.
        let (mut b, s, d) = query(1000, "::", Some(3));
        b.truncate(28 + 32);
        Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(&s, &d);
        assert_eq!(
            QueryRepr::parse(&Icmpv6Packet::new_checked(&b[..]).unwrap(), &s, &d),
            Err(Error::Truncated)
        );
        let (mut b, s, d) = query(1000, "::", Some(0));
        b[10] ^= 1;
        assert_eq!(
            QueryRepr::parse(&Icmpv6Packet::new_checked(&b[..]).unwrap(), &s, &d),
            Err(Error::BadChecksum)
        );
        b[0] = 143;
        assert_eq!(
            QueryRepr::parse(&Icmpv6Packet::new_checked(&b[..]).unwrap(), &s, &d),
            Err(Error::Unsupported)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Some(t) = bytes.first_mut() {
                *t = 130;
            }
            let (s, d) = (a("fe80::9"), a("ff02::1"));
            if bytes.len() >= 8 {
                Icmpv6Packet::new_unchecked(&mut bytes[..]).fill_checksum(&s, &d);
            }
            if let Ok(p) = Icmpv6Packet::new_checked(&bytes[..]) {
                let _ = QueryRepr::parse(&p, &s, &d);
            }
        }
    }
}
