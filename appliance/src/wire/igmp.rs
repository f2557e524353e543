//! IGMP as the multicast relay sends and receives it: queries of all three
//! versions (RFC 1112 / 2236 / 3376), v2 reports and leaves, and v3 reports.
//!
//! The view covers the *whole* buffer, because the checksum spans the whole
//! IGMP message: build it over `Ipv4Packet::payload`. After
//! [`IgmpPacket::new_checked`] (≥ 8 bytes) succeeds no accessor panics;
//! accessors for the longer v3 formats ([`IgmpPacket::v3_query`],
//! [`IgmpPacket::group_records`]) validate their own extent and return
//! `Result`.
//!
//! IGMPv1 reports (type 0x12) are recognised by the view's
//! [`msg_type::V1_REPORT`] but not by [`IgmpRepr`], which reports them as
//! [`Error::Unsupported`].
//!
//! Every IGMP message must be sent with IP TTL 1 and the Router Alert option;
//! see `ipv4::ROUTER_ALERT_OPTION` and `Ipv4Repr::emit_with_options`.

use core::fmt;
use std::net::Ipv4Addr;

use super::bytes::{read_ipv4, read_u16, write_ipv4, write_u16};
use super::checksum;
use super::{Error, Result};

/// IGMP message types.
pub mod msg_type {
    pub const MEMBERSHIP_QUERY: u8 = 0x11;
    pub const V1_REPORT: u8 = 0x12;
    pub const V2_REPORT: u8 = 0x16;
    pub const LEAVE_GROUP: u8 = 0x17;
    pub const V3_REPORT: u8 = 0x22;
}

/// IGMPv3 group record types (RFC 3376 §4.2.12).
pub const MODE_IS_INCLUDE: u8 = 1;
pub const MODE_IS_EXCLUDE: u8 = 2;
pub const CHANGE_TO_INCLUDE: u8 = 3;
pub const CHANGE_TO_EXCLUDE: u8 = 4;
pub const ALLOW_NEW_SOURCES: u8 = 5;
pub const BLOCK_OLD_SOURCES: u8 = 6;

/// Robustness Variable written into emitted v3 queries (RFC 3376 §8.1).
pub const DEFAULT_QRV: u8 = 2;
/// Querier's Query Interval Code written into emitted v3 queries: 125 s
/// (RFC 3376 §8.2), which is below 128 and so encodes as itself.
pub const DEFAULT_QQIC: u8 = 125;

/// All-routers address v2 leaves go to.
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// Address v3 reports go to.
pub const ALL_IGMPV3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

/// Which IGMP version a query is, as told apart by RFC 3376 §7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgmpVersion {
    V1,
    V2,
    V3,
}

/// Decodes an IGMPv3 Max Resp Code or QQIC (RFC 3376 §4.1.1, §4.1.7): values
/// from 128 up are a 3-bit exponent and 4-bit mantissa floating point.
/// The unit is that of the field (tenths of a second for Max Resp Code,
/// seconds for QQIC).
pub fn decode_v3_code(code: u8) -> u32 {
    if code < 128 {
        u32::from(code)
    } else {
        let exp = u32::from((code >> 4) & 0x07);
        let mant = u32::from(code & 0x0f);
        (mant | 0x10) << (exp + 3)
    }
}

/// Maximum response time of a query in tenths of a second. A v1 query has
/// no such field and means 10 s (RFC 2236 §4).
pub fn max_resp_time_ds(code: u8, version: IgmpVersion) -> u32 {
    match version {
        IgmpVersion::V1 => 100,
        IgmpVersion::V2 => u32::from(code),
        IgmpVersion::V3 => decode_v3_code(code),
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const MAX_RESP_CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const GROUP_ADDR: usize = 4;
    // v3 query
    pub const S_QRV: usize = 8;
    pub const QQIC: usize = 9;
    pub const NUM_SOURCES: usize = 10;
    pub const QUERY_SOURCES: usize = 12;
    // v3 report
    pub const NUM_RECORDS: usize = 6;
    pub const RECORDS: usize = 8;
    // within a group record
    pub const REC_TYPE: usize = 0;
    pub const REC_AUX_LEN: usize = 1;
    pub const REC_NUM_SOURCES: usize = 2;
    pub const REC_GROUP: usize = 4;
    pub const REC_SOURCES: usize = 8;
}

/// A list of IPv4 addresses stored back to back on the wire; iterates
/// without copying the list.
#[derive(Clone, PartialEq, Eq)]
pub struct Ipv4AddrIter<'a> {
    bytes: &'a [u8],
}

impl<'a> Ipv4AddrIter<'a> {
    /// `bytes.len()` should be a multiple of 4; a ragged tail is ignored.
    pub fn new(bytes: &'a [u8]) -> Self {
        Ipv4AddrIter { bytes }
    }

    /// The remaining addresses as raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl Iterator for Ipv4AddrIter<'_> {
    type Item = Ipv4Addr;

    fn next(&mut self) -> Option<Ipv4Addr> {
        let (head, rest) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = rest;
        Some(Ipv4Addr::from(*head))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.bytes.len() / 4;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Ipv4AddrIter<'_> {}

impl fmt::Debug for Ipv4AddrIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// The v3-only fields of a membership query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Query<'a> {
    /// S flag: routers must not lower their timers on this query.
    pub suppress_router_processing: bool,
    pub qrv: u8,
    pub qqic: u8,
    /// Non-empty for a group-and-source-specific query.
    pub sources: Ipv4AddrIter<'a>,
}

/// One group record of a received IGMPv3 report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3GroupRecord<'a> {
    pub record_type: u8,
    pub group_addr: Ipv4Addr,
    pub sources: Ipv4AddrIter<'a>,
    /// Auxiliary data; RFC 3376 defines none and says to ignore it.
    pub aux_data: &'a [u8],
}

/// The group records of a received IGMPv3 report. Construction validates
/// every record's extent, so iteration is infallible and allocation-free.
#[derive(Clone, PartialEq, Eq)]
pub struct V3ReportRecords<'a> {
    data: &'a [u8],
    remaining: u16,
}

impl<'a> V3ReportRecords<'a> {
    /// Validates `count` records at the start of `data` (the bytes after the
    /// 8-byte report header). Bytes after the last record are ignored.
    pub fn new(data: &'a [u8], count: u16) -> Result<Self> {
        let mut at = 0usize;
        for _ in 0..count {
            let header = data
                .get(at..at + field::REC_SOURCES)
                .ok_or(Error::Truncated)?;
            let num_sources = usize::from(read_u16(header, field::REC_NUM_SOURCES));
            let aux_len = usize::from(header[field::REC_AUX_LEN]) * 4;
            at += field::REC_SOURCES + num_sources * 4 + aux_len;
            if at > data.len() {
                return Err(Error::Truncated);
            }
        }
        Ok(V3ReportRecords {
            data: &data[..at],
            remaining: count,
        })
    }

    /// The validated record bytes that remain to be iterated.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Number of records that remain to be iterated.
    pub fn remaining(&self) -> u16 {
        self.remaining
    }
}

impl<'a> Iterator for V3ReportRecords<'a> {
    type Item = V3GroupRecord<'a>;

    fn next(&mut self) -> Option<V3GroupRecord<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // Extents were validated in `new`; `get` keeps this panic-free even
        // so, and stops the iteration if that invariant were ever broken.
        let header = self.data.get(..field::REC_SOURCES)?;
        let num_sources = usize::from(read_u16(header, field::REC_NUM_SOURCES));
        let aux_len = usize::from(header[field::REC_AUX_LEN]) * 4;
        let sources_end = field::REC_SOURCES + num_sources * 4;
        let sources = self.data.get(field::REC_SOURCES..sources_end)?;
        let aux_data = self.data.get(sources_end..sources_end + aux_len)?;
        let record = V3GroupRecord {
            record_type: header[field::REC_TYPE],
            group_addr: read_ipv4(header, field::REC_GROUP),
            sources: Ipv4AddrIter::new(sources),
            aux_data,
        };
        self.data = self.data.get(sources_end + aux_len..)?;
        self.remaining -= 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.remaining);
        (n, Some(n))
    }
}

impl ExactSizeIterator for V3ReportRecords<'_> {}

impl fmt::Debug for V3ReportRecords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// A view of an IGMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IgmpPacket<T> {
    /// Length of every message except v3 queries and reports.
    pub const HEADER_LEN: usize = 8;
    /// Minimum length of a v3 query (RFC 3376 §7.1).
    pub const V3_QUERY_MIN_LEN: usize = 12;

    /// Wraps `buffer` without validation; see the module contract.
    pub const fn new_unchecked(buffer: T) -> IgmpPacket<T> {
        IgmpPacket { buffer }
    }

    /// Wraps `buffer`, guaranteeing all accessors are panic-free.
    pub fn new_checked(buffer: T) -> Result<IgmpPacket<T>> {
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

    /// Raw Max Resp Code (queries) — reserved in reports.
    pub fn max_resp_code(&self) -> u8 {
        self.buffer.as_ref()[field::MAX_RESP_CODE]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Group address of queries, v1/v2 reports and leaves. In a v3 report
    /// these bytes are reserved + record count and carry no address.
    pub fn group_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::GROUP_ADDR)
    }

    /// Record count of a v3 report.
    pub fn num_group_records(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NUM_RECORDS)
    }

    /// The version of a query, per RFC 3376 §7.1: 8 bytes with code 0 is v1,
    /// 8 bytes otherwise v2, 12 or more bytes v3; other lengths are not a
    /// valid query.
    pub fn query_version(&self) -> Result<IgmpVersion> {
        match self.buffer.as_ref().len() {
            Self::HEADER_LEN if self.max_resp_code() == 0 => Ok(IgmpVersion::V1),
            Self::HEADER_LEN => Ok(IgmpVersion::V2),
            n if n >= Self::V3_QUERY_MIN_LEN => Ok(IgmpVersion::V3),
            _ => Err(Error::Malformed),
        }
    }

    /// The v3 fields of a query, with the source list bounds-checked.
    pub fn v3_query(&self) -> Result<V3Query<'_>> {
        let data = self.buffer.as_ref();
        if data.len() < Self::V3_QUERY_MIN_LEN {
            return Err(Error::Truncated);
        }
        let n = usize::from(read_u16(data, field::NUM_SOURCES));
        let end = field::QUERY_SOURCES + n * 4;
        let sources = data
            .get(field::QUERY_SOURCES..end)
            .ok_or(Error::Truncated)?;
        Ok(V3Query {
            suppress_router_processing: data[field::S_QRV] & 0x08 != 0,
            qrv: data[field::S_QRV] & 0x07,
            qqic: data[field::QQIC],
            sources: Ipv4AddrIter::new(sources),
        })
    }

    /// The group records of a v3 report, with every record bounds-checked.
    pub fn group_records(&self) -> Result<V3ReportRecords<'_>> {
        let data = self.buffer.as_ref();
        V3ReportRecords::new(&data[field::RECORDS..], self.num_group_records())
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IgmpPacket<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_max_resp_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::MAX_RESP_CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_group_addr(&mut self, addr: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::GROUP_ADDR, addr);
    }

    /// Overrides the S flag, QRV and QQIC of a v3 query (e.g. after
    /// [`IgmpRepr::emit`] wrote the defaults); call [`Self::fill_checksum`]
    /// afterwards. `Truncated` if the buffer is not v3-query sized.
    pub fn set_v3_query_params(&mut self, suppress: bool, qrv: u8, qqic: u8) -> Result<()> {
        let data = self.buffer.as_mut();
        if data.len() < Self::V3_QUERY_MIN_LEN {
            return Err(Error::Truncated);
        }
        // QRV values above 7 cannot be encoded and are sent as 0 ("unset").
        let qrv = if qrv > 7 { 0 } else { qrv };
        data[field::S_QRV] = (if suppress { 0x08 } else { 0 }) | qrv;
        data[field::QQIC] = qqic;
        Ok(())
    }

    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for IgmpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an IGMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgmpRepr<'a> {
    /// `max_resp_time_ds` is the raw Max Resp Code (see
    /// [`max_resp_time_ds`] to decode it). `group_addr` is 0.0.0.0 for a
    /// general query. Source lists of v3 queries are available from
    /// [`IgmpPacket::v3_query`].
    MembershipQuery {
        max_resp_time_ds: u8,
        group_addr: Ipv4Addr,
        version: IgmpVersion,
    },
    ReportV2 {
        group_addr: Ipv4Addr,
    },
    LeaveGroup {
        group_addr: Ipv4Addr,
    },
    /// A received v3 report. To build one, use [`emit_v3_report`].
    ReportV3 {
        records: V3ReportRecords<'a>,
    },
}

impl<'a> IgmpRepr<'a> {
    /// Parses and verifies the checksum. Group addresses that are neither
    /// multicast (nor, for queries, 0.0.0.0) are `Malformed`, so junk never
    /// reaches the membership tables. IGMPv1 reports and unknown types are
    /// `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &IgmpPacket<&'a T>) -> Result<IgmpRepr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let data: &'a [u8] = packet.buffer.as_ref();
        let group_addr = packet.group_addr();
        match packet.msg_type() {
            msg_type::MEMBERSHIP_QUERY => {
                if !(group_addr.is_unspecified() || group_addr.is_multicast()) {
                    return Err(Error::Malformed);
                }
                let version = packet.query_version()?;
                if version == IgmpVersion::V3 {
                    packet.v3_query()?;
                }
                Ok(IgmpRepr::MembershipQuery {
                    max_resp_time_ds: packet.max_resp_code(),
                    group_addr,
                    version,
                })
            }
            msg_type::V2_REPORT | msg_type::LEAVE_GROUP if !group_addr.is_multicast() => {
                Err(Error::Malformed)
            }
            msg_type::V2_REPORT => Ok(IgmpRepr::ReportV2 { group_addr }),
            msg_type::LEAVE_GROUP => Ok(IgmpRepr::LeaveGroup { group_addr }),
            msg_type::V3_REPORT => Ok(IgmpRepr::ReportV3 {
                records: V3ReportRecords::new(&data[field::RECORDS..], packet.num_group_records())?,
            }),
            _ => Err(Error::Unsupported),
        }
    }

    /// Exact size of the message `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            IgmpRepr::MembershipQuery {
                version: IgmpVersion::V3,
                ..
            } => IgmpPacket::<&[u8]>::V3_QUERY_MIN_LEN,
            IgmpRepr::MembershipQuery { .. }
            | IgmpRepr::ReportV2 { .. }
            | IgmpRepr::LeaveGroup { .. } => IgmpPacket::<&[u8]>::HEADER_LEN,
            IgmpRepr::ReportV3 { records } => field::RECORDS + records.as_bytes().len(),
        }
    }

    /// Writes the message and its checksum.
    ///
    /// A v1 query is written with a zero Max Resp Code whatever
    /// `max_resp_time_ds` says, since that zero is what marks it as v1. A v3
    /// query is written without sources, with S clear, [`DEFAULT_QRV`] and
    /// [`DEFAULT_QQIC`]; see [`IgmpPacket::set_v3_query_params`].
    ///
    /// # Panics
    /// If the buffer length differs from [`Self::buffer_len`] (the checksum
    /// covers the whole buffer).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut IgmpPacket<T>) {
        assert_eq!(
            packet.buffer.as_ref().len(),
            self.buffer_len(),
            "IGMP buffer must be exactly buffer_len() bytes"
        );
        match self {
            IgmpRepr::MembershipQuery {
                max_resp_time_ds,
                group_addr,
                version,
            } => {
                packet.set_msg_type(msg_type::MEMBERSHIP_QUERY);
                packet.set_max_resp_code(if *version == IgmpVersion::V1 {
                    0
                } else {
                    *max_resp_time_ds
                });
                packet.set_group_addr(*group_addr);
                if *version == IgmpVersion::V3 {
                    let data = packet.buffer.as_mut();
                    data[field::S_QRV] = DEFAULT_QRV;
                    data[field::QQIC] = DEFAULT_QQIC;
                    write_u16(data, field::NUM_SOURCES, 0);
                }
            }
            IgmpRepr::ReportV2 { group_addr } => {
                packet.set_msg_type(msg_type::V2_REPORT);
                packet.set_max_resp_code(0);
                packet.set_group_addr(*group_addr);
            }
            IgmpRepr::LeaveGroup { group_addr } => {
                packet.set_msg_type(msg_type::LEAVE_GROUP);
                packet.set_max_resp_code(0);
                packet.set_group_addr(*group_addr);
            }
            IgmpRepr::ReportV3 { records } => {
                let data = packet.buffer.as_mut();
                write_v3_report_header(data, records.remaining());
                data[field::RECORDS..].copy_from_slice(records.as_bytes());
            }
        }
        packet.fill_checksum();
    }
}

/// One group record of an IGMPv3 report to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportV3Record<'a> {
    /// One of [`MODE_IS_INCLUDE`] ..= [`BLOCK_OLD_SOURCES`].
    pub record_type: u8,
    pub group: Ipv4Addr,
    pub sources: &'a [Ipv4Addr],
}

/// Size of the v3 report [`emit_v3_report`] would write for `records`.
pub fn v3_report_len(records: &[ReportV3Record<'_>]) -> usize {
    field::RECORDS
        + records
            .iter()
            .map(|r| field::REC_SOURCES + 4 * r.sources.len())
            .sum::<usize>()
}

fn write_v3_report_header(data: &mut [u8], count: u16) {
    data[field::TYPE] = msg_type::V3_REPORT;
    data[field::MAX_RESP_CODE] = 0;
    write_u16(data, field::CHECKSUM, 0);
    write_u16(data, field::GROUP_ADDR, 0);
    write_u16(data, field::NUM_RECORDS, count);
}

/// Writes an IGMPv3 report with `records` at the start of `buf` and returns
/// its length; the checksum covers exactly those bytes, so the IP total
/// length must match. `Truncated` if `buf` is too short, `Malformed` if
/// there are more than 65 535 records or sources in one record.
pub fn emit_v3_report(buf: &mut [u8], records: &[ReportV3Record<'_>]) -> Result<usize> {
    let count = u16::try_from(records.len()).map_err(|_| Error::Malformed)?;
    if records
        .iter()
        .any(|r| u16::try_from(r.sources.len()).is_err())
    {
        return Err(Error::Malformed);
    }
    let len = v3_report_len(records);
    let out = buf.get_mut(..len).ok_or(Error::Truncated)?;
    write_v3_report_header(out, count);
    let mut at = field::RECORDS;
    for r in records {
        out[at + field::REC_TYPE] = r.record_type;
        out[at + field::REC_AUX_LEN] = 0;
        // Checked above to fit.
        let n = u16::try_from(r.sources.len()).unwrap_or(u16::MAX);
        write_u16(out, at + field::REC_NUM_SOURCES, n);
        write_ipv4(out, at + field::REC_GROUP, r.group);
        at += field::REC_SOURCES;
        for src in r.sources {
            write_ipv4(out, at, *src);
            at += 4;
        }
    }
    let sum = checksum::checksum(out);
    write_u16(out, field::CHECKSUM, sum);
    Ok(len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::wire::ipv4::ROUTER_ALERT_OPTION;
    use crate::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};
    use proptest::prelude::*;

    const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
    const G2: Ipv4Addr = Ipv4Addr::new(232, 9, 8, 7);
    const S1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const S2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes[2] = 0;
        bytes[3] = 0;
        let c = checksum::checksum(&bytes);
        bytes[2..4].copy_from_slice(&c.to_be_bytes());
        bytes
    }

    #[test]
    fn v2_report_fixture() {
        // Report for 239.1.2.3; checksum computed by hand:
        // !(0x1600 + 0xef01 + 0x0203) = !0x0705 (after carry) = 0xf8fa.
        let bytes = [0x16, 0x00, 0xf8, 0xfa, 239, 1, 2, 3];
        let p = IgmpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::V2_REPORT);
        assert_eq!(p.max_resp_code(), 0);
        assert_eq!(p.checksum(), 0xf8fa);
        assert_eq!(p.group_addr(), G1);
        assert!(p.verify_checksum());
        let repr = IgmpRepr::parse(&p).unwrap();
        assert_eq!(repr, IgmpRepr::ReportV2 { group_addr: G1 });
        let mut out = [0xffu8; 8];
        repr.emit(&mut IgmpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
    }

    #[test]
    fn leave_and_queries_roundtrip() {
        for (repr, len) in [
            (IgmpRepr::LeaveGroup { group_addr: G2 }, 8),
            (
                IgmpRepr::MembershipQuery {
                    max_resp_time_ds: 0,
                    group_addr: Ipv4Addr::UNSPECIFIED,
                    version: IgmpVersion::V1,
                },
                8,
            ),
            (
                IgmpRepr::MembershipQuery {
                    max_resp_time_ds: 100,
                    group_addr: G1,
                    version: IgmpVersion::V2,
                },
                8,
            ),
            (
                IgmpRepr::MembershipQuery {
                    max_resp_time_ds: 0x8f,
                    group_addr: Ipv4Addr::UNSPECIFIED,
                    version: IgmpVersion::V3,
                },
                12,
            ),
        ] {
            assert_eq!(repr.buffer_len(), len);
            let mut buf = vec![0xaau8; len];
            repr.emit(&mut IgmpPacket::new_unchecked(&mut buf[..]));
            let p = IgmpPacket::new_checked(&buf[..]).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(IgmpRepr::parse(&p).unwrap(), repr);
        }
    }

    #[test]
    fn v1_query_emit_forces_zero_code() {
        let repr = IgmpRepr::MembershipQuery {
            max_resp_time_ds: 50,
            group_addr: Ipv4Addr::UNSPECIFIED,
            version: IgmpVersion::V1,
        };
        let mut buf = [0u8; 8];
        repr.emit(&mut IgmpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf[1], 0);
    }

    #[test]
    fn v3_query_fixture_with_sources() {
        // Group-and-source-specific query for G1 from S1, S2: S=1, QRV=2,
        // QQIC=125, Max Resp Code 100 (10 s).
        let bytes = with_checksum(vec![
            0x11, 100, 0, 0, 239, 1, 2, 3, 0x0a, 125, 0, 2, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let p = IgmpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.query_version(), Ok(IgmpVersion::V3));
        let q = p.v3_query().unwrap();
        assert!(q.suppress_router_processing);
        assert_eq!((q.qrv, q.qqic), (2, 125));
        assert_eq!(q.sources.clone().collect::<Vec<_>>(), vec![S1, S2]);
        assert_eq!(q.sources.len(), 2);
        assert_eq!(
            IgmpRepr::parse(&p).unwrap(),
            IgmpRepr::MembershipQuery {
                max_resp_time_ds: 100,
                group_addr: G1,
                version: IgmpVersion::V3
            }
        );
        // A source count past the end is truncated, even though the first
        // 12 bytes are a fine query.
        let mut short = bytes.clone();
        short[11] = 3;
        let short = with_checksum(short);
        let p = IgmpPacket::new_checked(&short[..]).unwrap();
        assert_eq!(p.v3_query().unwrap_err(), Error::Truncated);
        assert_eq!(IgmpRepr::parse(&p), Err(Error::Truncated));
    }

    #[test]
    fn set_v3_query_params() {
        let repr = IgmpRepr::MembershipQuery {
            max_resp_time_ds: 10,
            group_addr: Ipv4Addr::UNSPECIFIED,
            version: IgmpVersion::V3,
        };
        let mut buf = [0u8; 12];
        let mut p = IgmpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        let q = p.v3_query().unwrap();
        assert_eq!(
            (q.suppress_router_processing, q.qrv, q.qqic),
            (false, 2, 125)
        );
        p.set_v3_query_params(true, 3, 60).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        let q = p.v3_query().unwrap();
        assert_eq!((q.suppress_router_processing, q.qrv, q.qqic), (true, 3, 60));
        let mut small = [0u8; 8];
        assert_eq!(
            IgmpPacket::new_checked(&mut small[..])
                .unwrap()
                .set_v3_query_params(false, 2, 125),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn query_version_by_length() {
        for (len, code, expected) in [
            (8, 0, Ok(IgmpVersion::V1)),
            (8, 10, Ok(IgmpVersion::V2)),
            (9, 10, Err(Error::Malformed)),
            (11, 0, Err(Error::Malformed)),
            (12, 0, Ok(IgmpVersion::V3)),
            (40, 0, Ok(IgmpVersion::V3)),
        ] {
            let mut bytes = vec![0u8; len];
            bytes[0] = msg_type::MEMBERSHIP_QUERY;
            bytes[1] = code;
            let bytes = with_checksum(bytes);
            let p = IgmpPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(p.query_version(), expected, "len {len}");
            assert_eq!(
                IgmpRepr::parse(&p).map(|r| match r {
                    IgmpRepr::MembershipQuery { version, .. } => version,
                    other => panic!("{other:?}"),
                }),
                expected
            );
        }
    }

    #[test]
    fn v3_report_fixture() {
        let bytes = with_checksum(vec![
            0x22,
            0,
            0,
            0,
            0,
            0,
            0,
            2, // header, 2 records
            MODE_IS_INCLUDE,
            0,
            0,
            2,
            239,
            1,
            2,
            3,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2, // record 1
            CHANGE_TO_EXCLUDE,
            1,
            0,
            0,
            232,
            9,
            8,
            7,
            0xde,
            0xad,
            0xbe,
            0xef, // record 2 + aux
        ]);
        let p = IgmpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.num_group_records(), 2);
        let repr = IgmpRepr::parse(&p).unwrap();
        let IgmpRepr::ReportV3 { records } = &repr else {
            panic!("{repr:?}");
        };
        let recs: Vec<_> = records.clone().collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].record_type, MODE_IS_INCLUDE);
        assert_eq!(recs[0].group_addr, G1);
        assert_eq!(recs[0].sources.clone().collect::<Vec<_>>(), vec![S1, S2]);
        assert!(recs[0].aux_data.is_empty());
        assert_eq!(recs[1].record_type, CHANGE_TO_EXCLUDE);
        assert_eq!(recs[1].group_addr, G2);
        assert_eq!(recs[1].sources.len(), 0);
        assert_eq!(recs[1].aux_data, &[0xde, 0xad, 0xbe, 0xef]);

        // Re-emitting the parsed repr reproduces the bytes.
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut IgmpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
        assert!(format!("{repr:?}").contains("239.1.2.3"));
    }

    #[test]
    fn v3_report_errors() {
        // Claims 2 records but has one.
        let bytes = with_checksum(vec![
            0x22,
            0,
            0,
            0,
            0,
            0,
            0,
            2,
            MODE_IS_EXCLUDE,
            0,
            0,
            0,
            239,
            1,
            2,
            3,
        ]);
        let p = IgmpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(IgmpRepr::parse(&p), Err(Error::Truncated));
        assert_eq!(p.group_records().unwrap_err(), Error::Truncated);
        // Source count overruns.
        let bytes = with_checksum(vec![
            0x22,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            MODE_IS_EXCLUDE,
            0,
            0,
            1,
            239,
            1,
            2,
            3,
            10,
            0,
            0,
        ]);
        let p = IgmpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(IgmpRepr::parse(&p), Err(Error::Truncated));
    }

    #[test]
    fn emit_v3_report_matches_fixture_and_errors() {
        let sources = [S1, S2];
        let records = [
            ReportV3Record {
                record_type: MODE_IS_INCLUDE,
                group: G1,
                sources: &sources,
            },
            ReportV3Record {
                record_type: CHANGE_TO_EXCLUDE,
                group: G2,
                sources: &[],
            },
        ];
        let expected = with_checksum(vec![
            0x22,
            0,
            0,
            0,
            0,
            0,
            0,
            2,
            MODE_IS_INCLUDE,
            0,
            0,
            2,
            239,
            1,
            2,
            3,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
            CHANGE_TO_EXCLUDE,
            0,
            0,
            0,
            232,
            9,
            8,
            7,
        ]);
        assert_eq!(v3_report_len(&records), expected.len());
        let mut buf = vec![0xaau8; 64];
        let n = emit_v3_report(&mut buf, &records).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
        assert_eq!(buf[n], 0xaa);
        assert_eq!(
            emit_v3_report(&mut buf[..n - 1], &records),
            Err(Error::Truncated)
        );
        let mut empty = [0u8; 8];
        assert_eq!(emit_v3_report(&mut empty, &[]), Ok(8));
        let p = IgmpPacket::new_checked(&empty[..]).unwrap();
        assert_eq!(IgmpRepr::parse(&p).unwrap().buffer_len(), 8);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            IgmpPacket::new_checked(&[0x16u8, 0, 0, 0, 239, 1, 2][..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            IgmpRepr::parse(&IgmpPacket::new_unchecked(&[0x16u8][..])),
            Err(Error::Truncated)
        );
        let mut bad = with_checksum(vec![0x16, 0, 0, 0, 239, 1, 2, 3]);
        bad[7] = 4;
        let p = IgmpPacket::new_checked(&bad[..]).unwrap();
        assert_eq!(IgmpRepr::parse(&p), Err(Error::BadChecksum));
        for (ty, group) in [
            (msg_type::V2_REPORT, [10, 0, 0, 1]),
            (msg_type::LEAVE_GROUP, [0, 0, 0, 0]),
            (msg_type::MEMBERSHIP_QUERY, [10, 0, 0, 1]),
        ] {
            let b = with_checksum(vec![ty, 0, 0, 0, group[0], group[1], group[2], group[3]]);
            let p = IgmpPacket::new_checked(&b[..]).unwrap();
            assert_eq!(IgmpRepr::parse(&p), Err(Error::Malformed), "type {ty:#x}");
        }
        for ty in [msg_type::V1_REPORT, 0x13, 0x30] {
            let b = with_checksum(vec![ty, 0, 0, 0, 239, 1, 2, 3]);
            let p = IgmpPacket::new_checked(&b[..]).unwrap();
            assert_eq!(IgmpRepr::parse(&p), Err(Error::Unsupported));
        }
    }

    #[test]
    fn resp_code_decoding() {
        assert_eq!(decode_v3_code(0), 0);
        assert_eq!(decode_v3_code(127), 127);
        // exp 0, mant 0 -> 0x10 << 3
        assert_eq!(decode_v3_code(0x80), 128);
        // exp 7, mant 15 -> 0x1f << 10, the largest encodable value
        assert_eq!(decode_v3_code(0xff), 31744);
        assert_eq!(max_resp_time_ds(0, IgmpVersion::V1), 100);
        assert_eq!(max_resp_time_ds(25, IgmpVersion::V2), 25);
        assert_eq!(max_resp_time_ds(0x81, IgmpVersion::V3), 136);
    }

    /// A full report datagram as sent on the wire: IPv4 with Router Alert,
    /// TTL 1, to 224.0.0.22; etherparse must accept the IP layer.
    #[test]
    fn full_datagram_with_router_alert() {
        let sources = [S1];
        let records = [ReportV3Record {
            record_type: ALLOW_NEW_SOURCES,
            group: G1,
            sources: &sources,
        }];
        let igmp_len = v3_report_len(&records);
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 9),
            dst_addr: ALL_IGMPV3_ROUTERS,
            protocol: IpProtocol::IGMP,
            payload_len: igmp_len,
            ttl: 1,
            dscp: 0x30,
            ident: 0,
            dont_frag: false,
        };
        let mut buf = vec![0u8; 24 + igmp_len];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.emit_with_options(&mut p, &ROUTER_ALERT_OPTION);
        emit_v3_report(p.payload_mut(), &records).unwrap();

        let (h, rest) = etherparse::Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(h.protocol, etherparse::IpNumber::IGMP);
        assert_eq!(h.time_to_live, 1);
        assert_eq!(h.options.as_slice(), &ROUTER_ALERT_OPTION);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(rest.len(), igmp_len);

        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), ip);
        let igmp = IgmpPacket::new_checked(p.payload()).unwrap();
        let IgmpRepr::ReportV3 {
            records: mut parsed,
        } = IgmpRepr::parse(&igmp).unwrap()
        else {
            panic!("not a v3 report");
        };
        let rec = parsed.next().unwrap();
        assert_eq!(rec.record_type, ALLOW_NEW_SOURCES);
        assert_eq!(rec.group_addr, G1);
        assert_eq!(rec.sources.collect::<Vec<_>>(), vec![S1]);
        assert!(parsed.next().is_none());
    }

    fn arb_multicast() -> impl Strategy<Value = Ipv4Addr> {
        (224u8..240, any::<[u8; 3]>()).prop_map(|(a, r)| Ipv4Addr::new(a, r[0], r[1], r[2]))
    }

    fn exercise<T: AsRef<[u8]>>(p: &IgmpPacket<T>) {
        let _ = (
            p.msg_type(),
            p.max_resp_code(),
            p.checksum(),
            p.group_addr(),
            p.num_group_records(),
            p.query_version(),
            p.verify_checksum(),
        );
        if let Ok(q) = p.v3_query() {
            let _ = q.sources.count();
        }
        if let Ok(records) = p.group_records() {
            for r in records {
                let _ = (r.sources.count(), r.aux_data.len());
            }
        }
    }

    proptest! {
        #[test]
        fn v3_report_roundtrip(
            spec in proptest::collection::vec(
                (1u8..=6, arb_multicast(), proptest::collection::vec(any::<[u8; 4]>(), 0..5)),
                0..6,
            )
        ) {
            let sources: Vec<Vec<Ipv4Addr>> = spec
                .iter()
                .map(|(_, _, s)| s.iter().map(|o| Ipv4Addr::from(*o)).collect())
                .collect();
            let records: Vec<ReportV3Record<'_>> = spec
                .iter()
                .zip(&sources)
                .map(|((t, g, _), s)| ReportV3Record { record_type: *t, group: *g, sources: s })
                .collect();
            let mut buf = vec![0u8; v3_report_len(&records)];
            let n = emit_v3_report(&mut buf, &records).unwrap();
            prop_assert_eq!(n, buf.len());
            let p = IgmpPacket::new_checked(&buf[..]).unwrap();
            let repr = IgmpRepr::parse(&p).unwrap();
            let IgmpRepr::ReportV3 { records: parsed } = &repr else {
                return Err(TestCaseError::fail("not a v3 report"));
            };
            prop_assert_eq!(parsed.len(), records.len());
            for (got, want) in parsed.clone().zip(&records) {
                prop_assert_eq!(got.record_type, want.record_type);
                prop_assert_eq!(got.group_addr, want.group);
                prop_assert_eq!(got.sources.collect::<Vec<_>>(), want.sources.to_vec());
            }
            let mut again = vec![0u8; repr.buffer_len()];
            repr.emit(&mut IgmpPacket::new_unchecked(&mut again[..]));
            prop_assert_eq!(again, buf);
        }

        #[test]
        fn simple_roundtrip(kind in 0u8..5, group in arb_multicast(), code in 1u8..=255) {
            let repr = match kind {
                0 => IgmpRepr::ReportV2 { group_addr: group },
                1 => IgmpRepr::LeaveGroup { group_addr: group },
                2 => IgmpRepr::MembershipQuery {
                    max_resp_time_ds: 0, group_addr: group, version: IgmpVersion::V1,
                },
                3 => IgmpRepr::MembershipQuery {
                    max_resp_time_ds: code, group_addr: group, version: IgmpVersion::V2,
                },
                _ => IgmpRepr::MembershipQuery {
                    max_resp_time_ds: code, group_addr: group, version: IgmpVersion::V3,
                },
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut IgmpPacket::new_unchecked(&mut buf[..]));
            let p = IgmpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(IgmpRepr::parse(&p), Ok(repr));
        }

        #[test]
        fn checked_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = IgmpRepr::parse(&IgmpPacket::new_unchecked(&data[..]));
            if let Ok(p) = IgmpPacket::new_checked(&data[..]) {
                exercise(&p);
                let _ = IgmpRepr::parse(&p);
                let mut copy = data.clone();
                let mut m = IgmpPacket::new_checked(&mut copy[..]).unwrap();
                let _ = m.set_v3_query_params(true, 9, 1);
                m.fill_checksum();
                prop_assert!(m.verify_checksum());
            }
        }

        #[test]
        fn checked_never_panics_v3_shaped(
            ty in prop_oneof![Just(msg_type::V3_REPORT), Just(msg_type::MEMBERSHIP_QUERY)],
            count in 0u16..6,
            body in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(1u8), Just(2u8), any::<u8>()], 0..120),
        ) {
            // Small counts and bytes make record/source counts that land
            // near the buffer end, where off-by-one bugs would live.
            let mut data = vec![ty, 0, 0, 0, 0, 0];
            data.extend_from_slice(&count.to_be_bytes());
            data.extend_from_slice(&body);
            let data = with_checksum(data);
            let p = IgmpPacket::new_checked(&data[..]).unwrap();
            exercise(&p);
            if let Ok(repr) = IgmpRepr::parse(&p) {
                let n = repr.buffer_len();
                prop_assert!(n <= data.len());
                if let IgmpRepr::ReportV3 { records } = &repr {
                    prop_assert_eq!(records.clone().count(), usize::from(count));
                    let mut out = vec![0u8; n];
                    repr.emit(&mut IgmpPacket::new_unchecked(&mut out[..]));
                    // The checksum differs when `data` has bytes past
                    // the last record, since the original covered them.
                    prop_assert_eq!(&out[..2], &data[..2]);
                    prop_assert_eq!(&out[4..], &data[4..n]);
                    prop_assert!(IgmpPacket::new_checked(&out[..]).unwrap().verify_checksum());
                }
            }
        }
    }
}
