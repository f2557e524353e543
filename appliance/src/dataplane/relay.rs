//! Republishing one matched multicast packet on each output of its rule.
//!
//! One output: the packet's own headers are rewritten in place. Several:
//! the headers are cut off, the rest becomes a shared payload, and each
//! output gets a small private header mbuf chained in front of it (DPDK's
//! ipv4_multicast scheme), so the payload is never copied. An output into
//! the tunnel is handed to the tunnel's sender; in a fan-out it gets a whole
//! copy of the packet (one segment), so every scheduler, `redundant`
//! included, can send it.

use dpdk_bindings::{Mbuf, Mempool, SharedMbuf};

use crate::dataplane::mcast_headers::{write_headers, TxOffload, HEADERS_LEN};
use crate::dataplane::sinks::Sinks;
use crate::dataplane::tx::TxTag;
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::{
    L2Dest, McastOutput, McastRule, OutputCounters, RuleWorkerCounters, Tables, TUNNEL_PORT,
};
use crate::wire::MacAddr;

/// A packet the pipeline matched to rule `rule`: counted against the rule
/// once, then relayed, or dropped for `not_relayed` (counted against the
/// rule as well), so per rule `received = relayed + dropped`.
pub fn matched(
    tables: &Tables,
    rule: u32,
    m: Mbuf,
    not_relayed: Option<DropReason>,
    sinks: &mut Sinks<'_>,
) {
    let ctx = &sinks.relay;
    let c = ctx.counters;
    let Some(r) = tables.mcast.rules.get(rule as usize) else {
        c.drop_one(DropReason::McastNoRule);
        return;
    };
    let rc = r.counters.worker(ctx.worker);
    rc.matched(m.pkt_len());
    match not_relayed {
        Some(reason) => drop_matched(rc, reason, c),
        None => relay(tables, rule, r, rc, m, sinks),
    }
}

/// Republishes `m` on every output of rule `r` (number `rule`).
fn relay(
    tables: &Tables,
    rule: u32,
    r: &McastRule,
    rc: &RuleWorkerCounters,
    mut m: Mbuf,
    sinks: &mut Sinks<'_>,
) {
    let c = sinks.relay.counters;
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
                emit(tables, rule, 0, out, oc, m, sinks);
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
        let copy = if out.port == TUNNEL_PORT {
            whole_copy(&orig, &payload, out, src_mac, dst_mac, sinks.relay.pool)
        } else {
            header_copy(
                &orig,
                &payload,
                out,
                src_mac,
                dst_mac,
                offload,
                sinks.relay.headers,
            )
        };
        match copy {
            Ok(h) => emit(tables, rule, k, out, oc, h, sinks),
            Err(reason) => drop_output(oc, reason, c),
        }
    }
}

/// A fan-out copy: a private header mbuf chained in front of the shared
/// payload.
fn header_copy(
    orig: &[u8; HEADERS_LEN],
    payload: &SharedMbuf,
    out: &McastOutput,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    offload: TxOffload,
    headers: &Mempool,
) -> Result<Mbuf, DropReason> {
    let mut h = headers.alloc().ok_or(DropReason::NoMbuf)?;
    let buf = h.append(HEADERS_LEN as u16).ok_or(DropReason::NoMbuf)?;
    let used = write_headers(orig, out, src_mac, dst_mac, offload, buf)?;
    request_offload(&mut h, used);
    // A fresh header mbuf has one segment, so this cannot fail; if it did,
    // the copy has no usable header mbuf.
    h.chain_shared(payload.share())
        .map_err(|_| DropReason::NoMbuf)?;
    Ok(h)
}

/// A whole one-segment copy (for the tunnel, which may send it twice).
fn whole_copy(
    orig: &[u8; HEADERS_LEN],
    payload: &SharedMbuf,
    out: &McastOutput,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    pool: &Mempool,
) -> Result<Mbuf, DropReason> {
    let body = payload.data();
    let mut m = pool.alloc().ok_or(DropReason::NoMbuf)?;
    let len = u16::try_from(HEADERS_LEN + body.len()).map_err(|_| DropReason::NoMbuf)?;
    let buf = m.append(len).ok_or(DropReason::NoMbuf)?;
    let none = TxOffload {
        ipv4: false,
        udp: false,
    };
    write_headers(orig, out, src_mac, dst_mac, none, &mut buf[..HEADERS_LEN])?;
    buf[HEADERS_LEN..].copy_from_slice(body);
    Ok(m)
}

/// Sends one copy out of output `k` of rule `rule`: into its port's TX
/// buffer (counted when the queue takes it), or into the tunnel (counted
/// when the tunnel takes it).
#[inline]
fn emit(
    tables: &Tables,
    rule: u32,
    k: usize,
    out: &McastOutput,
    oc: &OutputCounters,
    m: Mbuf,
    sinks: &mut Sinks<'_>,
) {
    if out.port != TUNNEL_PORT {
        let tag = TxTag::output(rule, k, m.pkt_len());
        sinks.tx.push(out.port, m, tag, tables);
        return;
    }
    let len = m.pkt_len() as u64;
    let c = sinks.relay.counters;
    // A rule relays into the tunnel only when it has one peer (the config
    // and `mcast add` refuse it with several).
    let now = sinks.relay.now;
    let sent = sinks
        .tunnel
        .only_peer()
        .and_then(|peer| sinks.tunnel.send(tables, peer, m, now, sinks.tx, c));
    match sent {
        Some(true) => {
            oc.tx_packets.inc();
            oc.tx_bytes.add(len);
        }
        // The tunnel counted the drop in the worker's reasons.
        Some(false) => oc.drops.inc(DropReason::TunnelNoPath),
        None => drop_output(oc, DropReason::TunnelNoPath, c),
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
    if out.port == TUNNEL_PORT {
        // The tunnel puts its own Ethernet header in front; the inner one
        // is never seen.
        let none = TxOffload {
            ipv4: false,
            udp: false,
        };
        return Some((MacAddr::ZERO, MacAddr::ZERO, none));
    }
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
