//! A worker's part of the tunnel: sending (classify, schedule, number,
//! encapsulate) and receiving (check, hand the packet to the worker that owns
//! its lane, reorder, decapsulate, route on).
//!
//! Each worker sends on its own lane, numbered by counters only it touches;
//! each lane of the peer is reordered by exactly one worker here (`lane %
//! workers`), which the others reach through an SPSC ring. Nothing is shared
//! between workers but the tables and the path atomics: no lock, no shared
//! sequence counter.

use std::sync::Arc;

use dpdk_bindings::ring::{Consumer, Producer};
use dpdk_bindings::{Burst, Mbuf, Mempool};

use crate::buf::PacketBuf;
use crate::config::tunnel::SchedulerName;
use crate::dataplane::dispatch::{act, Sinks};
use crate::dataplane::pipeline::{process, Ingress, TUNNEL_PORT_ID};
use crate::dataplane::stage::Stage;
use crate::dataplane::tx::TxTag;
use crate::stats::DropReason;
use crate::tables::Tables;
use crate::time::Time;
use crate::tunnel::class::FlowKey;
use crate::tunnel::encap::{self, Outer, OUTER_LEN};
use crate::tunnel::reorder::{self, Arrival, Lane};
use crate::tunnel::scheduler::{self, Choice, Kind, PathView, SchedConfig, Scheduler};
use crate::tunnel::{TunnelTable, LANE_PORT_BASE, MAX_LANES, MAX_PATHS};
use crate::wire::tunnel::{flags, Kind as PacketKind, TunnelRepr, CONTROL_LANE};
use crate::wire::{EthernetFrame, Ipv4Packet, MacAddr};

/// A lane of the peer this worker reorders.
#[derive(Debug)]
struct OwnedLane {
    lane: Lane<Mbuf>,
    /// The peer's epoch it holds sequence state for.
    epoch: Option<u16>,
}

/// One worker's tunnel state.
#[derive(Debug)]
pub struct TunnelWorker {
    id: usize,
    workers: usize,
    table: Arc<TunnelTable>,
    /// Our lane (the worker's id) and its counters.
    lane: u16,
    lane_seq: u32,
    path_seq: [u32; MAX_PATHS],
    /// One scheduler per class, default last.
    schedulers: Vec<Scheduler>,
    /// Per path index, refreshed every burst.
    views: [PathView; MAX_PATHS],
    macs: [Option<MacAddr>; MAX_PATHS],
    /// Paths up by health (for the reorder buffer's loss proofs).
    live: u16,
    /// The peer's lanes, `Some` for the ones this worker owns.
    lanes: Vec<Option<OwnedLane>>,
    /// Bit l: lane l holds packets.
    active: u64,
    /// Rings to the other workers (`None` for ourselves).
    handoff_to: Vec<Option<Producer>>,
    /// Rings from the other workers.
    handoff_from: Vec<Consumer>,
    /// Small mbufs for the second copy's headers (`redundant`).
    headers: Arc<Mempool>,
}

/// The scheduler of a class.
fn scheduler(name: SchedulerName, bindings: &[(ipnet::Ipv4Net, u8)], seed: u64) -> Scheduler {
    let kind = match name {
        SchedulerName::FlowHash => Kind::FlowHash,
        SchedulerName::SourceSubnet => Kind::SourceSubnet(
            bindings
                .iter()
                .map(|(net, path)| (u32::from(net.network()), net.prefix_len(), *path))
                .collect(),
        ),
        SchedulerName::Wlb => Kind::Wlb,
        SchedulerName::MinRtt => Kind::MinRtt,
        SchedulerName::Backup => Kind::Backup,
        SchedulerName::Redundant => Kind::Redundant,
    };
    Scheduler::new(
        kind,
        &SchedConfig {
            // Every worker hashes a flow to the same path.
            hash_seed: seed,
            ..SchedConfig::default()
        },
    )
}

impl TunnelWorker {
    /// Worker `id` of `workers`: its lanes, schedulers and rings.
    pub fn new(
        id: usize,
        workers: usize,
        table: Arc<TunnelTable>,
        handoff_to: Vec<Option<Producer>>,
        handoff_from: Vec<Consumer>,
        headers: Arc<Mempool>,
    ) -> Self {
        let seed = u64::from(table.epoch) ^ 0x5eed;
        let schedulers = table
            .classes
            .all()
            .iter()
            .map(|c| scheduler(c.scheduler, &c.bindings, seed))
            .collect();
        let lanes = (0..MAX_LANES)
            .map(|l| {
                (l % workers.max(1) == id).then(|| OwnedLane {
                    lane: Lane::new(table.reorder),
                    epoch: None,
                })
            })
            .collect();
        Self {
            id,
            workers: workers.max(1),
            lane: u16::try_from(id).unwrap_or(0),
            lane_seq: 0,
            path_seq: [0; MAX_PATHS],
            schedulers,
            views: [PathView::default(); MAX_PATHS],
            macs: [None; MAX_PATHS],
            live: 0,
            lanes,
            active: 0,
            handoff_to,
            handoff_from,
            headers,
            table,
        }
    }

    /// Reads the paths' state once per burst: usable (up, not taken down,
    /// next hop resolved), rate and delay.
    #[inline]
    pub fn begin_burst(&mut self, tables: &Tables) {
        let mut live = 0u16;
        for (i, p) in self.table.paths.iter().enumerate().take(MAX_PATHS) {
            let state = &self.table.live[i];
            let mac = tables
                .neighbors
                .get(&p.next_hop)
                .filter(|n| n.port == p.port)
                .map(|n| n.mac);
            if state.up.load(std::sync::atomic::Ordering::Relaxed) {
                live |= 1 << i;
            }
            self.macs[i] = mac;
            self.views[i] = PathView {
                usable: state.usable() && mac.is_some(),
                backup: p.backup,
                priority: p.priority,
                rate_bps: state.rate_bps.load(std::sync::atomic::Ordering::Relaxed),
                delay_us: state.delay_us.load(std::sync::atomic::Ordering::Relaxed),
                weight: p.rate_bps,
            };
        }
        self.live = live;
    }

    /// The outer headers for path `p`.
    #[inline]
    fn outer(
        &mut self,
        tables: &Tables,
        p: usize,
        tos: u8,
        lane_seq: u32,
        unordered: bool,
        now: Time,
    ) -> Option<Outer> {
        let path = self.table.paths.get(p)?;
        let src_mac = tables.interfaces.get(path.port)?.mac;
        let dst_mac = self.macs[p]?;
        let seq = &mut self.path_seq[p];
        *seq = seq.wrapping_add(1);
        Some(Outer {
            src_mac,
            dst_mac,
            src_ip: path.local,
            dst_ip: path.remote,
            src_port: LANE_PORT_BASE.wrapping_add(self.lane),
            dst_port: self.table.port,
            tos,
            header: TunnelRepr {
                kind: PacketKind::Data,
                flags: if unordered { flags::UNORDERED } else { 0 },
                path: path.id,
                key: 0,
                lane: self.lane,
                epoch: self.table.epoch,
                lane_seq,
                path_seq: *seq,
                sent_us: now.as_micros_u32(),
            },
        })
    }

    /// A packet the pipeline routed into the tunnel (TTL already
    /// decremented): classify, schedule, encapsulate, buffer for TX.
    #[inline]
    pub fn send(&mut self, tables: &Tables, mut m: Mbuf, now: Time, sinks: &mut Sinks<'_>) {
        let frame = m.data();
        let Some(inner) = frame
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(|l3| Ipv4Packet::new_checked(l3).ok())
        else {
            sinks.drop_one(DropReason::TunnelBadInner);
            return;
        };
        let key = FlowKey::from_ipv4(&inner);
        let tos = encap::inner_tos(frame);
        let class = self.table.classes.classify(&key);
        let pkt = scheduler::Packet {
            len: u32::try_from(m.pkt_len() + encap::ADDED).unwrap_or(u32::MAX),
            src: u32::from(key.src),
            dst: u32::from(key.dst),
            proto: key.proto,
            sport: key.sport,
            dport: key.dport,
        };
        let n = self.table.paths.len().min(MAX_PATHS);
        let Some(sched) = self.schedulers.get_mut(class) else {
            sinks.drop_one(DropReason::TunnelNoPath);
            return;
        };
        let choice = sched.pick(&self.views[..n], &pkt, now.as_nanos());
        let unordered = sched.bypasses_reorder();
        let cc = self.table.class_counters[class].worker(self.id);
        cc.packets.inc();
        cc.bytes.add(u64::from(key.len));
        // An ordered packet takes the lane's next number; an unordered one
        // carries it without taking it (it marks what was sent before it).
        let lane_seq = self.lane_seq;
        if !unordered && choice != Choice::None {
            self.lane_seq = self.lane_seq.wrapping_add(1);
        }
        match choice {
            Choice::None => {
                cc.no_path.inc();
                sinks.drop_one(DropReason::TunnelNoPath);
            }
            Choice::One(p) => {
                let p = usize::from(p);
                let Some(outer) = self.outer(tables, p, tos, lane_seq, unordered, now) else {
                    sinks.drop_one(DropReason::TunnelNoPath);
                    return;
                };
                if encap::encapsulate(&mut m, &outer).is_err() {
                    sinks.drop_one(DropReason::NoMbuf);
                    return;
                }
                let port = self.table.paths[p].port;
                let tag = TxTag::path(p, m.pkt_len());
                sinks.tx.push(port, m, tag, tables);
            }
            Choice::Two(a, b) => {
                cc.copies.inc();
                self.send_copies(
                    tables,
                    m,
                    [usize::from(a), usize::from(b)],
                    tos,
                    lane_seq,
                    unordered,
                    now,
                    sinks,
                );
            }
        }
    }

    /// Sends the inner packet on two paths: each copy is a private header
    /// mbuf chained in front of the shared inner packet (as the relay's
    /// fan-out does), so the payload is not copied.
    #[allow(clippy::too_many_arguments)]
    fn send_copies(
        &mut self,
        tables: &Tables,
        mut m: Mbuf,
        paths: [usize; 2],
        tos: u8,
        lane_seq: u32,
        unordered: bool,
        now: Time,
        sinks: &mut Sinks<'_>,
    ) {
        let inner_len = m
            .pkt_len()
            .saturating_sub(EthernetFrame::<&[u8]>::HEADER_LEN);
        let payload = if m.adj(EthernetFrame::<&[u8]>::HEADER_LEN as u16) {
            m.into_shared()
        } else {
            Err(m)
        };
        let Ok(payload) = payload else {
            sinks.drop_one(DropReason::MultiSegment);
            return;
        };
        for p in paths {
            let Some(outer) = self.outer(tables, p, tos, lane_seq, unordered, now) else {
                sinks.drop_one(DropReason::TunnelNoPath);
                continue;
            };
            let Some(mut h) = self.headers.alloc() else {
                sinks.drop_one(DropReason::NoMbuf);
                continue;
            };
            let Some(buf) = h.append(OUTER_LEN as u16) else {
                sinks.drop_one(DropReason::NoMbuf);
                continue;
            };
            encap::write_outer(buf, &outer, inner_len);
            if h.chain_shared(payload.share()).is_err() {
                sinks.drop_one(DropReason::NoMbuf);
                continue;
            }
            let port = self.table.paths[p].port;
            let tag = TxTag::path(p, h.pkt_len());
            sinks.tx.push(port, h, tag, tables);
        }
    }

    /// A packet for one of our tunnel endpoints, received on port `in_port`.
    #[inline]
    pub fn receive(
        &mut self,
        tables: &Tables,
        m: Mbuf,
        in_port: usize,
        now: Time,
        sinks: &mut Sinks<'_>,
    ) {
        let rx = match encap::parse_rx(m.data()) {
            Ok(rx) => rx,
            Err(reason) => {
                sinks.drop_one(reason);
                return;
            }
        };
        let Some(path) = self.table.rx_path(in_port, rx.src, rx.dst, rx.header.path) else {
            sinks.drop_one(DropReason::TunnelUnknownPath);
            return;
        };
        let pc = self.table.path_counters[path].worker(self.id);
        pc.rx_packets.inc();
        pc.rx_bytes.add(m.pkt_len() as u64);
        if rx.header.kind != PacketKind::Data {
            // Probes are the management lcore's.
            sinks.punt(m);
            return;
        }
        if let Err(reason) = encap::check_inner(m.data(), &rx) {
            pc.drops.inc(reason);
            sinks.drop_one(reason);
            return;
        }
        let lane = rx.header.lane;
        if lane == CONTROL_LANE {
            deliver(tables, m, sinks);
            return;
        }
        if usize::from(lane) >= MAX_LANES {
            sinks.drop_one(DropReason::TunnelBadLane);
            return;
        }
        let owner = usize::from(lane) % self.workers;
        if owner != self.id {
            if let Some(Some(ring)) = self.handoff_to.get_mut(owner) {
                if ring.enqueue(m).is_err() {
                    sinks.drop_one(DropReason::TunnelHandoffFull);
                }
            }
            return;
        }
        self.to_lane(tables, m, &rx.header, path, now, sinks);
    }

    /// Passes a packet of a lane this worker owns through its reorder buffer.
    fn to_lane(
        &mut self,
        tables: &Tables,
        m: Mbuf,
        h: &TunnelRepr,
        path: usize,
        now: Time,
        sinks: &mut Sinks<'_>,
    ) {
        let lane = usize::from(h.lane);
        let Some(Some(owned)) = self.lanes.get_mut(lane) else {
            sinks.drop_one(DropReason::TunnelBadLane);
            return;
        };
        let mut out = |pkt: Mbuf, _: reorder::Delivery| deliver(tables, pkt, sinks);
        if owned.epoch != Some(h.epoch) {
            // The peer restarted: what was held for the old run goes out in
            // order, and numbering starts afresh.
            if owned.epoch.is_some() {
                owned.lane.resync(&mut out);
            }
            owned.epoch = Some(h.epoch);
        }
        let arrival = Arrival {
            seq: h.lane_seq,
            unordered: h.unordered(),
            path: u8::try_from(path).unwrap_or(u8::MAX),
            sent_us: h.sent_us,
            now_ns: now.as_nanos(),
        };
        match owned.lane.push(m, arrival, self.live, &mut out) {
            reorder::Verdict::Delivered | reorder::Verdict::Held => {}
            reorder::Verdict::Duplicate(_) => sinks.drop_one(DropReason::TunnelDuplicate),
            reorder::Verdict::Stale(_) => sinks.drop_one(DropReason::TunnelStale),
            reorder::Verdict::OutOfWindow(_) => sinks.drop_one(DropReason::TunnelOutOfWindow),
        }
        self.lane_done(lane);
    }

    /// Notes whether lane `l` holds packets and mirrors its counters.
    #[inline]
    fn lane_done(&mut self, l: usize) {
        let Some(Some(owned)) = self.lanes.get(l) else {
            return;
        };
        let held = owned.lane.occupancy();
        if held > 0 {
            self.active |= 1 << l;
        } else {
            self.active &= !(1 << l);
        }
        if let Some(c) = self.table.lane_counters.get(l) {
            c.0.store(owned.lane.counters(), held);
        }
    }
}

/// Decapsulates a packet a lane released and sends it on its way as if it
/// had arrived from the tunnel.
#[inline]
fn deliver(tables: &Tables, mut m: Mbuf, sinks: &mut Sinks<'_>) {
    let decapped = encap::parse_rx(m.data()).and_then(|rx| encap::decapsulate(&mut m, &rx));
    if let Err(reason) = decapped {
        sinks.drop_one(reason);
        return;
    }
    m.set_port(TUNNEL_PORT_ID);
    let verdict = process(tables, Ingress::Tunnel, PacketBuf::data_mut(&mut m));
    act(tables, verdict, m, sinks);
}

impl Stage for TunnelWorker {
    /// Takes the packets other workers handed over for our lanes, and
    /// releases what waited past its deadline.
    fn poll(&mut self, tables: &Tables, now: Time, sinks: &mut Sinks<'_>) -> usize {
        let mut moved = 0;
        for i in 0..self.handoff_from.len() {
            let mut burst = Burst::new();
            moved += self.handoff_from[i].dequeue_burst(&mut burst);
            for m in burst {
                let Ok(rx) = encap::parse_rx(m.data()) else {
                    sinks.drop_one(DropReason::TunnelTruncated);
                    continue;
                };
                // The receiving worker checked the path; find its index again.
                let path = self
                    .table
                    .paths
                    .iter()
                    .position(|p| p.id == rx.header.path)
                    .unwrap_or(0);
                self.to_lane(tables, m, &rx.header, path, now, sinks);
            }
        }
        let mut active = self.active;
        while active != 0 {
            let l = active.trailing_zeros() as usize;
            active &= active - 1;
            if let Some(Some(owned)) = self.lanes.get_mut(l) {
                let before = owned.lane.occupancy();
                owned
                    .lane
                    .poll(now.as_nanos(), self.live, &mut |pkt: Mbuf, _| {
                        deliver(tables, pkt, sinks)
                    });
                moved += before - owned.lane.occupancy();
            }
            self.lane_done(l);
        }
        moved
    }

    fn next_deadline(&self) -> Option<Time> {
        let mut active = self.active;
        let mut next: Option<u64> = None;
        while active != 0 {
            let l = active.trailing_zeros() as usize;
            active &= active - 1;
            if let Some(Some(owned)) = self.lanes.get(l) {
                if let Some(d) = owned.lane.next_deadline(self.live) {
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
        }
        next.map(Time::from_nanos)
    }
}
