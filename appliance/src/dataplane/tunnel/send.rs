//! A worker's sending side of the tunnel: classify the packet, let its
//! class's scheduler pick the path (or two), hold it in the path's shaper
//! queue (when the path is shaped), and when it leaves number it on the
//! worker's own lane, encapsulate it and buffer it for the path's port.
//! Only this worker touches its lane's sequence counters and its queues.
//!
//! A packet takes its lane number when it leaves the queue, not when it
//! enters: the receiver puts a lane back in the order its packets left, so
//! a real-time packet that passed a bulk backlog is not held at the far end
//! for the packets it passed, and a packet CoDel dropped leaves no hole.
//! The two copies of `redundant` share one number, taken when they enter.
//! Network-control and real-time packets go on a lane of their own (the
//! worker's id + [`URGENT_LANE`]), so the far end never holds them for a
//! bulk packet that left earlier on a slower path.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dpdk_bindings::{Mbuf, Mempool, SharedMbuf};

use crate::buf::PacketBuf;
use crate::config::tunnel::{SchedulerName, Tier};
use crate::dataplane::tx::{TxPorts, TxTag};
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::Tables;
use crate::time::Time;
use crate::tunnel::class::FlowKey;
use crate::tunnel::encap::{self, Outer, OUTER_LEN};
use crate::tunnel::scheduler::{self, Choice, Kind, PathView, SchedConfig, Scheduler};
use crate::tunnel::shaper::shared::{wire_ns, DEFER_NS};
use crate::tunnel::shaper::{Cause, PathQueue};
use crate::tunnel::{PathCounters, TunnelTable, LANE_PORT_BASE, MAX_PATHS};
use crate::wire::tunnel::{flags, Kind as PacketKind, TunnelRepr};
use crate::wire::{EthernetFrame, MacAddr};

/// How long a worker that holds back for another's urgent packets waits
/// before it looks again.
const DEFER_POLL_NS: u64 = 50_000;
/// A worker's lane for network-control and real-time packets is its id plus
/// this (half the lanes the far end reorders).
pub const URGENT_LANE: u16 = (crate::tunnel::MAX_LANES / 2) as u16;

/// One worker's sending state.
#[derive(Debug)]
pub struct TunnelSender {
    table: Arc<TunnelTable>,
    /// One scheduler per class, default last.
    schedulers: Vec<Scheduler>,
    /// Per path index, refreshed every burst: for default and bulk packets
    /// (`[0]`) and for network-control and real-time ones (`[1]`, whose
    /// backlog is only what waits ahead of them).
    views: [[PathView; MAX_PATHS]; 2],
    /// Per path index: its shaper queue (`None`: not shaped, packets leave
    /// at once).
    queues: Vec<Option<PathQueue<Held>>>,
    /// Per path index: the rate it is shaped to, refreshed every burst.
    shaped_bps: [u64; MAX_PATHS],
    /// Per path index: its CoDel's slack in the default and bulk tiers
    /// (ns): how much later than it the slowest usable path delivers, plus
    /// twice the target; refreshed every burst.
    slack_ns: [u64; MAX_PATHS],
    /// Per path index: since when this worker holds back for another's
    /// urgent packets (0: it does not).
    deferring_since: [u64; MAX_PATHS],
    /// Per path index: whether this worker last said it holds urgent
    /// packets.
    urgent: [bool; MAX_PATHS],
    /// When the queues next need a drain.
    wake_at: Option<Time>,
    /// Numbering and encapsulation.
    out: Departures,
}

/// A packet in a path's queue, not yet numbered nor encapsulated.
#[derive(Debug)]
pub struct Held {
    body: Body,
    tos: u8,
    unordered: bool,
    /// Network control or real-time: it goes on the urgent lane.
    urgent: bool,
    /// The lane number of a `redundant` copy (taken for both copies).
    lane_seq: Option<u32>,
}

/// What a held packet carries.
#[derive(Debug)]
enum Body {
    /// The inner packet behind its Ethernet header (which the outer
    /// headers will take the place of).
    Whole(Mbuf),
    /// One copy of a `redundant` packet: the inner packet alone, shared
    /// with the other copy, and its length.
    Copy(SharedMbuf, usize),
}

/// One lane's numbering.
#[derive(Debug)]
struct Lane {
    id: u16,
    seq: u32,
    path_seq: [u32; MAX_PATHS],
}

/// The lanes' numbering and what encapsulation needs.
#[derive(Debug)]
struct Departures {
    id: usize,
    table: Arc<TunnelTable>,
    /// Our lanes: default and bulk (`[0]`, the worker's id), network control
    /// and real-time (`[1]`).
    lanes: [Lane; 2],
    /// Per path index, refreshed every burst: our MAC and the next hop's.
    macs: [Option<(MacAddr, MacAddr)>; MAX_PATHS],
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

impl TunnelSender {
    /// Worker `id`'s sender for `table`.
    pub fn new(id: usize, table: Arc<TunnelTable>, headers: Arc<Mempool>) -> Self {
        let seed = u64::from(table.epoch) ^ 0x5eed;
        let schedulers = table
            .classes
            .all()
            .iter()
            .map(|c| scheduler(c.scheduler, &c.bindings, seed))
            .collect();
        let queues = (0..table.paths.len().min(MAX_PATHS))
            .map(|p| {
                let sh = table.shaping.as_ref()?;
                Some(PathQueue::new(*sh.packets.get(p)?, sh.settings))
            })
            .collect();
        Self {
            table: Arc::clone(&table),
            schedulers,
            views: [[PathView::default(); MAX_PATHS]; 2],
            queues,
            shaped_bps: [1; MAX_PATHS],
            slack_ns: [0; MAX_PATHS],
            deferring_since: [0; MAX_PATHS],
            urgent: [false; MAX_PATHS],
            wake_at: None,
            out: Departures {
                id,
                lanes: [0, URGENT_LANE].map(|base| Lane {
                    id: u16::try_from(id).unwrap_or(0).wrapping_add(base),
                    seq: 0,
                    path_seq: [0; MAX_PATHS],
                }),
                macs: [None; MAX_PATHS],
                headers,
                table,
            },
        }
    }

    /// Reads the paths' state once per burst: usable (up, not taken down,
    /// next hop resolved), rate, delay and the shaped paths' backlog.
    #[inline]
    pub fn begin_burst(&mut self, tables: &Tables, now: Time) {
        let table = &self.table;
        for (i, p) in table.paths.iter().enumerate().take(MAX_PATHS) {
            let state = &table.live[i];
            let macs = tables.macs_to(p.next_hop, p.port);
            self.out.macs[i] = macs;
            let shaped = table.shaping.as_ref().and_then(|sh| Some((sh, sh.cells.get(i)?)));
            if let Some((sh, _)) = shaped {
                self.shaped_bps[i] = table.shaped_rate(i, sh);
            }
            let rate = self.shaped_bps[i];
            for (k, views) in self.views.iter_mut().enumerate() {
                views[i] = PathView {
                    usable: state.usable() && macs.is_some(),
                    backup: p.backup,
                    priority: p.priority,
                    rate_bps: state.rate_bps.load(Ordering::Relaxed),
                    delay_us: state.delay_us.load(Ordering::Relaxed),
                    weight: p.rate_bps,
                    backlog_ns: shaped.map(|(_, c)| c.backlog_ns(now.as_nanos(), rate, k == 1)),
                };
            }
        }
        let n = table.paths.len().min(MAX_PATHS);
        let slowest = self.views[0][..n]
            .iter()
            .filter(|v| v.usable && !v.backup)
            .map(|v| v.delay_us)
            .max()
            .unwrap_or(0);
        // A faster path may stand the difference plus twice CoDel's target:
        // its queue then stays above the difference under load (CoDel's
        // standing queue swings by about a target), so `wlb` keeps the
        // slower paths busy.
        let target = table.shaping.as_ref().map_or(0, |sh| sh.settings.codel.target_ns);
        for (slack, v) in self.slack_ns.iter_mut().zip(&self.views[0][..n]) {
            let spread = u64::from(slowest.saturating_sub(v.delay_us)) * 1_000;
            *slack = if spread > 0 { spread + 2 * target } else { 0 };
        }
    }

    /// A packet routed into the tunnel (TTL already decremented) or a relayed
    /// copy sent into it: classify, schedule, queue or send. Its Ethernet
    /// header and inner IPv4 header must be in the first segment (a relayed
    /// fan-out copy is a header mbuf in front of a shared payload). Returns
    /// whether it was taken on at least one path.
    #[inline]
    pub fn send(
        &mut self,
        tables: &Tables,
        m: Mbuf,
        now: Time,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) -> bool {
        let frame = m.data();
        let Some(key) = frame
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(FlowKey::from_header)
        else {
            counters.drop_one(DropReason::TunnelBadInner);
            return false;
        };
        let tos = encap::inner_tos(frame);
        let table = &self.table;
        let class_index = table.classes.classify(&key);
        let pkt = scheduler::Packet {
            len: u32::try_from(m.pkt_len() + encap::ADDED).unwrap_or(u32::MAX),
            src: u32::from(key.src),
            dst: u32::from(key.dst),
            proto: key.proto,
            sport: key.sport,
            dport: key.dport,
        };
        let n = table.paths.len().min(MAX_PATHS);
        let (Some(sched), Some(class)) = (
            self.schedulers.get_mut(class_index),
            table.classes.all().get(class_index),
        ) else {
            counters.drop_one(DropReason::TunnelNoPath);
            return false;
        };
        let tier = class.tier.unwrap_or_else(|| Tier::of_dscp(tos >> 2));
        let urgent = tier_is_urgent(tier);
        let choice = sched.pick(&self.views[usize::from(urgent)][..n], &pkt, now.as_nanos());
        let unordered = sched.bypasses_reorder();
        let cc = table.class_counters[class_index].worker(self.out.id);
        cc.packets.inc();
        cc.bytes.add(u64::from(key.len));
        let flow = scheduler::flow_hash(&pkt);
        let mut held = Held {
            body: Body::Whole(m),
            tos,
            unordered,
            urgent,
            lane_seq: None,
        };
        match choice {
            Choice::None => {
                cc.no_path.inc();
                counters.drop_one(DropReason::TunnelNoPath);
                false
            }
            Choice::One(p) => {
                self.dispatch(usize::from(p), held, tier, flow, now, tables, tx, counters);
                true
            }
            Choice::Two(a, b) => {
                cc.copies.inc();
                let Body::Whole(m) = held.body else {
                    return false;
                };
                let inner_len = m
                    .pkt_len()
                    .saturating_sub(EthernetFrame::<&[u8]>::HEADER_LEN);
                let mut m = m;
                let payload = if m.adj(EthernetFrame::<&[u8]>::HEADER_LEN as u16) {
                    m.into_shared()
                } else {
                    Err(m)
                };
                let Ok(payload) = payload else {
                    counters.drop_one(DropReason::MultiSegment);
                    return false;
                };
                // Both copies carry one number, the lane's next.
                held.lane_seq = Some(self.out.take_lane_seq(urgent, unordered));
                for p in [a, b] {
                    let copy = Held {
                        body: Body::Copy(payload.share(), inner_len),
                        ..held
                    };
                    self.dispatch(usize::from(p), copy, tier, flow, now, tables, tx, counters);
                }
                true
            }
        }
    }

    /// Queues `held` for path `p`, or sends it at once when the path is
    /// not shaped.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn dispatch(
        &mut self,
        p: usize,
        held: Held,
        tier: Tier,
        flow: u32,
        now: Time,
        tables: &Tables,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) {
        let Some(Some(q)) = self.queues.get_mut(p) else {
            self.out.depart(p, held, now, tables, tx, counters);
            return;
        };
        let len = u32::try_from(held.wire_len()).unwrap_or(u32::MAX);
        let pc = self.table.path_counters[p].worker(self.out.id);
        q.enqueue(tier, flow, held, len, now.as_nanos(), |v, _, t, cause| {
            count_drop(pc, counters, t, cause);
            drop(v);
        });
        // The packet is in the backlog the schedulers see at once, so the
        // rest of this burst is scheduled around it.
        let added = wire_ns(u64::from(len), self.shaped_bps[p]);
        for views in &mut self.views[..=usize::from(tier_is_urgent(tier))] {
            if let Some(b) = &mut views[p].backlog_ns {
                *b = b.saturating_add(added);
            }
        }
        publish(q, &self.table, p, self.out.id, &mut self.urgent[p]);
    }

    /// Lets out of every path's queue what its rate clock allows at `now`.
    /// Returns how many packets left.
    #[inline]
    pub fn drain(
        &mut self,
        tables: &Tables,
        now: Time,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) -> usize {
        self.wake_at = None;
        let table = &self.table;
        let Some(shaping) = table.shaping.as_ref() else {
            return 0;
        };
        let t = now.as_nanos();
        let mut sent = 0;
        for (p, q) in self.queues.iter_mut().enumerate() {
            let (Some(q), Some(cells)) = (q, shaping.cells.get(p)) else {
                continue;
            };
            if q.packets() == 0 {
                continue;
            }
            // Another worker's urgent packets go first, for a while.
            if !q.urgent() && cells.others_urgent(self.out.id) {
                let since = &mut self.deferring_since[p];
                if *since == 0 {
                    *since = t;
                }
                if t.saturating_sub(*since) < DEFER_NS {
                    wake(&mut self.wake_at, t + DEFER_POLL_NS);
                    continue;
                }
            } else {
                self.deferring_since[p] = 0;
            }
            let (rate, slack) = (self.shaped_bps[p], self.slack_ns[p]);
            let pc = table.path_counters[p].worker(self.out.id);
            while cells.wait_until(t).is_none() {
                let Some((held, len, tier)) = q.dequeue(t, rate, slack, |v, _, tier, cause| {
                    count_drop(pc, counters, tier, cause);
                    drop(v);
                }) else {
                    break;
                };
                cells.charge(t, u64::from(len), rate);
                let tc = &pc.tiers[tier as usize];
                tc.packets.inc();
                tc.bytes.add(u64::from(len));
                self.out.depart(p, held, now, tables, tx, counters);
                sent += 1;
            }
            if q.packets() > 0 {
                if let Some(at) = cells.wait_until(t) {
                    wake(&mut self.wake_at, at);
                }
            }
            publish(q, table, p, self.out.id, &mut self.urgent[p]);
        }
        sent
    }

    /// When the queues next need [`Self::drain`].
    pub fn next_deadline(&self) -> Option<Time> {
        self.wake_at
    }

}

/// Brings `wake_at` forward to `at` (ns).
fn wake(wake_at: &mut Option<Time>, at: u64) {
    let at = Time::from_nanos(at);
    *wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
}

/// Publishes what worker `id` holds for path `p`: its bytes (the
/// schedulers' backlog), whether urgent packets wait (`urgent`: what it
/// last said), and the tiers' gauges.
fn publish(q: &PathQueue<Held>, table: &TunnelTable, p: usize, id: usize, urgent: &mut bool) {
    let (Some(sh), Some(pc)) = (table.shaping.as_ref(), table.path_counters.get(p)) else {
        return;
    };
    let Some(cells) = sh.cells.get(p) else { return };
    cells.set_queued(id, q.bytes(), q.urgent_bytes());
    if q.urgent() != *urgent {
        *urgent = q.urgent();
        cells.set_urgent(id, *urgent);
    }
    let pc = pc.worker(id);
    for tier in Tier::ALL {
        pc.tiers[tier as usize].queued.set(u64::from(q.tier_packets(tier)));
    }
}

/// Whether a tier's packets go first (and on the urgent lane).
fn tier_is_urgent(tier: Tier) -> bool {
    matches!(tier, Tier::NetworkControl | Tier::Realtime)
}

/// Counts a packet the shaper of a path dropped.
fn count_drop(pc: &PathCounters, counters: &WorkerCounters, tier: Tier, cause: Cause) {
    let tc = &pc.tiers[tier as usize];
    let reason = match cause {
        Cause::Aqm => {
            tc.aqm_drops.inc();
            DropReason::ShaperAqm
        }
        Cause::Overlimit => {
            tc.overlimit_drops.inc();
            DropReason::ShaperOverlimit
        }
    };
    pc.drops.inc(reason);
    counters.drop_one(reason);
}

impl Held {
    /// Its length on the wire once encapsulated.
    fn wire_len(&self) -> usize {
        match &self.body {
            Body::Whole(m) => m.pkt_len() + encap::ADDED,
            Body::Copy(_, inner_len) => OUTER_LEN + inner_len,
        }
    }
}

impl Departures {
    /// The lane number of a packet leaving now on the urgent lane or the
    /// other: an ordered packet takes the lane's next; an unordered one
    /// carries it without taking it (it marks what was sent before it).
    #[inline]
    fn take_lane_seq(&mut self, urgent: bool, unordered: bool) -> u32 {
        let lane = &mut self.lanes[usize::from(urgent)];
        let seq = lane.seq;
        if !unordered {
            lane.seq = lane.seq.wrapping_add(1);
        }
        seq
    }

    /// Numbers, encapsulates and buffers `held` for path `p`'s port.
    #[inline]
    fn depart(
        &mut self,
        p: usize,
        held: Held,
        now: Time,
        tables: &Tables,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) {
        // A path without a resolved next hop takes no number.
        if self.macs.get(p).copied().flatten().is_none() {
            counters.drop_one(DropReason::TunnelNoPath);
            return;
        }
        let lane_seq = match held.lane_seq {
            Some(seq) => seq,
            None => self.take_lane_seq(held.urgent, held.unordered),
        };
        let Some(outer) = self.outer(p, &held, lane_seq, now) else {
            counters.drop_one(DropReason::TunnelNoPath);
            return;
        };
        let port = self.table.paths[p].port;
        match held.body {
            Body::Whole(mut m) => {
                // The inner packet may span segments: its length is the packet's.
                let inner_len = m
                    .pkt_len()
                    .saturating_sub(EthernetFrame::<&[u8]>::HEADER_LEN);
                if PacketBuf::prepend(&mut m, encap::ADDED).is_err() {
                    counters.drop_one(DropReason::NoMbuf);
                    return;
                }
                encap::write_outer(
                    &mut PacketBuf::data_mut(&mut m)[..OUTER_LEN],
                    &outer,
                    inner_len,
                );
                let tag = TxTag::path(p, m.pkt_len());
                tx.push(port, m, tag, tables);
            }
            Body::Copy(payload, inner_len) => {
                // Each copy is a private header mbuf chained in front of the
                // shared inner packet (as the relay's fan-out does): the
                // payload is not copied.
                let Some(mut h) = self.headers.alloc() else {
                    counters.drop_one(DropReason::NoMbuf);
                    return;
                };
                let Some(buf) = h.append(OUTER_LEN as u16) else {
                    counters.drop_one(DropReason::NoMbuf);
                    return;
                };
                encap::write_outer(buf, &outer, inner_len);
                if h.chain_shared(payload).is_err() {
                    counters.drop_one(DropReason::NoMbuf);
                    return;
                }
                let tag = TxTag::path(p, h.pkt_len());
                tx.push(port, h, tag, tables);
            }
        }
    }

    /// The outer headers for path `p`.
    #[inline]
    fn outer(&mut self, p: usize, held: &Held, lane_seq: u32, now: Time) -> Option<Outer> {
        let path = self.table.paths.get(p)?;
        let (src_mac, dst_mac) = self.macs[p]?;
        let lane = &mut self.lanes[usize::from(held.urgent)];
        let seq = &mut lane.path_seq[p];
        *seq = seq.wrapping_add(1);
        let (tos, unordered) = (held.tos, held.unordered);
        Some(Outer {
            src_mac,
            dst_mac,
            src_ip: path.local,
            dst_ip: path.remote,
            src_port: LANE_PORT_BASE.wrapping_add(lane.id),
            dst_port: self.table.port,
            tos,
            header: TunnelRepr {
                kind: PacketKind::Data,
                flags: if unordered { flags::UNORDERED } else { 0 },
                path: path.id,
                key: 0,
                lane: lane.id,
                epoch: self.table.epoch,
                lane_seq,
                path_seq: *seq,
                sent_us: now.as_micros_u32(),
            },
        })
    }
}
