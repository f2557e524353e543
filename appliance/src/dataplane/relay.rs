//! Republishing one matched multicast packet on each output of its rule.
//!
//! One output: the packet's own headers are rewritten in place. Several:
//! the headers are cut off, the rest becomes a shared payload, and each
//! output gets a small private header mbuf chained in front of it (DPDK's
//! ipv4_multicast scheme), so the payload is never copied.

use dpdk_bindings::{Mbuf, Mempool};

use crate::dataplane::mcast_headers::{write_headers, TxOffload, HEADERS_LEN};
use crate::dataplane::tx::{TxPorts, TxTag};
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::{L2Dest, McastOutput, McastRule, OutputCounters, RuleWorkerCounters, Tables};
use crate::wire::MacAddr;

/// What a worker needs besides the tables to relay.
#[derive(Debug)]
pub struct RelayCtx<'a> {
    /// Worker id (its counter slot in each rule).
    pub worker: usize,
    /// Pool of small mbufs for per-output headers.
    pub headers: &'a Mempool,
    /// Its worker counters.
    pub counters: &'a WorkerCounters,
}

/// A packet the pipeline matched to rule `rule`: counted against the rule
/// once, then relayed, or dropped for `not_relayed` (counted against the
/// rule as well), so per rule `received = relayed + dropped`.
pub fn matched(
    tables: &Tables,
    rule: u32,
    m: Mbuf,
    not_relayed: Option<DropReason>,
    ctx: &RelayCtx<'_>,
    tx: &mut TxPorts,
) {
    let c = ctx.counters;
    let Some(r) = tables.mcast.rules.get(rule as usize) else {
        c.drop_one(DropReason::McastNoRule);
        return;
    };
    let rc = r.counters.worker(ctx.worker);
    rc.matched(m.pkt_len());
    match not_relayed {
        Some(reason) => drop_matched(rc, reason, c),
        None => relay(tables, rule, r, rc, m, ctx, tx),
    }
}

/// Republishes `m` on every output of rule `r` (number `rule`).
fn relay(
    tables: &Tables,
    rule: u32,
    r: &McastRule,
    rc: &RuleWorkerCounters,
    mut m: Mbuf,
    ctx: &RelayCtx<'_>,
    tx: &mut TxPorts,
) {
    let c = ctx.counters;
    let Some(orig) = m
        .data()
        .get(..HEADERS_LEN)
        .and_then(|h| <[u8; HEADERS_LEN]>::try_from(h).ok())
    else {
        drop_matched(rc, DropReason::UdpTruncated, c);
        return;
    };
    if let ([out], [oc]) = (r.outputs.as_slice(), &*rc.outputs) {
        let Some((src_mac, dst_mac, offload)) = l2_for(tables, out, oc, c) else {
            return;
        };
        match write_headers(&orig, out, src_mac, dst_mac, offload, m.data_mut()) {
            Ok(used) => {
                request_offload(&mut m, used);
                let tag = TxTag::output(rule, 0, m.pkt_len());
                tx.push(out.port, m, tag, tables);
            }
            Err(reason) => drop_output(oc, reason, c),
        }
        return;
    }
    let payload = if m.adj(HEADERS_LEN as u16) {
        m.into_shared()
    } else {
        Err(m)
    };
    let Ok(payload) = payload else {
        drop_matched(rc, DropReason::MultiSegment, c);
        return;
    };
    for (k, (out, oc)) in r.outputs.iter().zip(rc.outputs.iter()).enumerate() {
        let Some((src_mac, dst_mac, offload)) = l2_for(tables, out, oc, c) else {
            continue;
        };
        let Some(mut h) = ctx.headers.alloc() else {
            drop_output(oc, DropReason::NoMbuf, c);
            continue;
        };
        let Some(buf) = h.append(HEADERS_LEN as u16) else {
            drop_output(oc, DropReason::NoMbuf, c);
            continue;
        };
        match write_headers(&orig, out, src_mac, dst_mac, offload, buf) {
            Ok(used) => {
                request_offload(&mut h, used);
                // A fresh header mbuf has one segment, so this cannot fail;
                // if it did, the copy has no usable header mbuf.
                if h.chain_shared(payload.share()).is_err() {
                    drop_output(oc, DropReason::NoMbuf, c);
                    continue;
                }
                let tag = TxTag::output(rule, k, h.pkt_len());
                tx.push(out.port, h, tag, tables);
            }
            Err(reason) => drop_output(oc, reason, c),
        }
    }
}

/// Our MAC, the destination MAC and the offloads of `out`'s port; `None`
/// (counted) when a unicast destination is not resolved.
#[inline]
fn l2_for(
    tables: &Tables,
    out: &McastOutput,
    oc: &OutputCounters,
    c: &WorkerCounters,
) -> Option<(MacAddr, MacAddr, TxOffload)> {
    let iface = tables.interfaces.get(out.port)?;
    let offload = TxOffload {
        ipv4: iface.tx_ipv4_cksum,
        udp: iface.tx_udp_cksum,
    };
    let dst_mac = match out.l2 {
        L2Dest::Group(mac) => mac,
        L2Dest::Unicast => {
            let next_hop = tables.next_hop_on_port(out.destination, out.port);
            match next_hop.and_then(|nh| tables.neighbors.get(&nh)) {
                Some(n) if n.port == out.port => n.mac,
                _ => {
                    drop_output(oc, DropReason::McastUnresolved, c);
                    return None;
                }
            }
        }
    };
    Some((iface.mac, dst_mac, offload))
}

#[inline]
fn request_offload(m: &mut Mbuf, used: TxOffload) {
    if used.ipv4 || used.udp {
        m.request_tx_checksum(14, 20, used.ipv4, used.udp);
    }
}

/// Counts a matched packet that is not relayed against its rule and the
/// worker's drop reasons.
#[inline]
fn drop_matched(rc: &RuleWorkerCounters, reason: DropReason, c: &WorkerCounters) {
    rc.drops.inc(reason);
    c.drop_one(reason);
}

/// Counts a lost copy against its output and the worker's drop reasons.
#[inline]
fn drop_output(oc: &OutputCounters, reason: DropReason, c: &WorkerCounters) {
    oc.drops.inc(reason);
    c.drop_one(reason);
}
