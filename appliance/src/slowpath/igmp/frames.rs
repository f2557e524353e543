//! IGMP messages as whole Ethernet frames, laid out as Linux sends them
//! (checked against captures in the unit tests and in
//! `tests/tests/igmp_linux_bytes.rs`): Ethernet to 01:00:5e + the low 23 bits
//! of the IP destination; IPv4 with TOS 0xc0, ID 0, DF, TTL 1 and the Router
//! Alert option (RFC 2236 §2, RFC 3376 §4); v3 reports to 224.0.0.22, v1/v2
//! reports to the group, leaves to 224.0.0.2.

use std::net::Ipv4Addr;

use super::state::{Message, Record};
use crate::wire::igmp::{
    emit_v3_report, msg_type, v3_report_len, ReportV3Record, ALL_IGMPV3_ROUTERS, ALL_ROUTERS,
};
use crate::wire::ipv4::ROUTER_ALERT_OPTION;
use crate::wire::{
    EtherType, EthernetFrame, EthernetRepr, IgmpPacket, IgmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    MacAddr,
};

const ETH: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
/// IPv4 header with the 4-byte Router Alert option.
const IP: usize = Ipv4Repr::HEADER_LEN + ROUTER_ALERT_OPTION.len();
/// Header of a v3 report, and of each group record in it.
const V3_HEADER: usize = 8;
const RECORD_HEADER: usize = 8;
/// DSCP CS6 (TOS 0xc0, "internetwork control"), as Linux marks IGMP.
const DSCP_CS6: u8 = 0x30;
/// Smallest MTU every IPv4 link has (RFC 791): a report still holds a record
/// with 7 sources.
pub(super) const MIN_MTU: usize = 68;

/// Where a frame comes from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

/// Writes the frames of `message` (several for a v3 report over `mtu`), each
/// into `buf` and then passed to `emit`.
pub(super) fn build(
    message: &Message,
    from: Origin,
    mtu: usize,
    buf: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8]),
) {
    match message {
        Message::V3Report(records) => {
            for_each_report(records, mtu.max(MIN_MTU) - IP, &mut |chunk| {
                let len = v3_report_len(chunk);
                let igmp = frame(buf, from, ALL_IGMPV3_ROUTERS, len);
                // Sized by v3_report_len and with < 65 536 records and sources
                // (the MTU bounds them), so this cannot fail.
                let _ = emit_v3_report(igmp, chunk);
                emit(buf);
            });
        }
        Message::V2Report(group) => {
            let igmp = frame(buf, from, *group, 8);
            IgmpRepr::ReportV2 { group_addr: *group }.emit(&mut IgmpPacket::new_unchecked(igmp));
            emit(buf);
        }
        Message::Leave(group) => {
            let igmp = frame(buf, from, ALL_ROUTERS, 8);
            IgmpRepr::LeaveGroup { group_addr: *group }.emit(&mut IgmpPacket::new_unchecked(igmp));
            emit(buf);
        }
        Message::V1Report(group) => {
            // IgmpRepr has no v1 report: write the three fields directly.
            let mut p = IgmpPacket::new_unchecked(frame(buf, from, *group, 8));
            p.set_msg_type(msg_type::V1_REPORT);
            p.set_max_resp_code(0);
            p.set_group_addr(*group);
            p.fill_checksum();
            emit(buf);
        }
    }
}

/// Resizes `buf` to a frame to `dst` with `igmp_len` bytes of IGMP, writes
/// the Ethernet and IPv4 headers, and returns the IGMP part.
fn frame(buf: &mut Vec<u8>, from: Origin, dst: Ipv4Addr, igmp_len: usize) -> &mut [u8] {
    buf.clear();
    buf.resize(ETH + IP + igmp_len, 0);
    EthernetRepr {
        src_addr: from.mac,
        dst_addr: MacAddr::from_ipv4_multicast(dst),
        ethertype: EtherType::IPV4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    Ipv4Repr {
        src_addr: from.ip,
        dst_addr: dst,
        protocol: IpProtocol::IGMP,
        payload_len: igmp_len,
        ttl: 1,
        dscp: DSCP_CS6,
        // Linux: DF and no connected socket give ID 0 (ip_select_ident).
        ident: 0,
        dont_frag: true,
    }
    .emit_with_options(
        &mut Ipv4Packet::new_unchecked(&mut buf[ETH..]),
        &ROUTER_ALERT_OPTION,
    );
    &mut buf[ETH + IP..]
}

/// Packs `records` into reports of at most `max_len` bytes of IGMP, in order,
/// and calls `f` with each. A record whose sources do not fit is split into
/// records of the same type, which RFC 3376 §4.2.16 allows for every type
/// but (TO_)EX with sources, which the relay never sends.
fn for_each_report(records: &[Record], max_len: usize, f: &mut dyn FnMut(&[ReportV3Record<'_>])) {
    let mut batch: Vec<ReportV3Record<'_>> = Vec::new();
    let mut used = V3_HEADER;
    for r in records {
        let mut rest = &r.sources[..];
        loop {
            let room = max_len.saturating_sub(used);
            let need = RECORD_HEADER + if rest.is_empty() { 0 } else { 4 };
            if room < need && !batch.is_empty() {
                f(&batch);
                batch.clear();
                used = V3_HEADER;
                continue;
            }
            // At least one source even if none fit, so an oversized first
            // record still makes progress (only below MIN_MTU).
            let n = (room.saturating_sub(RECORD_HEADER) / 4)
                .max(1)
                .min(rest.len());
            let (now, later) = rest.split_at(n);
            batch.push(ReportV3Record {
                record_type: r.record_type,
                group: r.group,
                sources: now,
            });
            used += RECORD_HEADER + 4 * n;
            rest = later;
            if rest.is_empty() {
                break;
            }
        }
    }
    if !batch.is_empty() {
        f(&batch);
    }
}
