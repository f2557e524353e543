//! A worker's sending side of the tunnel: classify the packet, let its
//! class's scheduler pick the path (or two), and hand it to the path's
//! queue ([`PathQueues`], when the path is shaped) or send it at once
//! ([`Departures`] numbers and encapsulates it as it leaves). A packet whose
//! path goes away while it waits is scheduled again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dpdk_bindings::{Mbuf, Mempool};

use crate::config::tunnel::{SchedulerName, Tier};
use crate::dataplane::tx::TxPorts;
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::Tables;
use crate::time::Time;
use crate::tunnel::class::FlowKey;
use crate::tunnel::encap;
use crate::tunnel::scheduler::{self, Choice, Kind, PathView, SchedConfig, Scheduler};
use crate::tunnel::shaper::shared::wire_ns;
use crate::tunnel::{PeerSlots, TunnelTable, MAX_PATHS};
use crate::wire::EthernetFrame;

use super::departures::{Body, Departures, Held, Number, Outlet};
use super::queues::{PathQueues, Paths};
use super::slot_list::SlotList;

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
    /// Per path index: the rate it is shaped to, refreshed every burst.
    shaped_bps: [u64; MAX_PATHS],
    /// Per path index: its CoDel's slack in the default and bulk tiers
    /// (ns): how much later than it the slowest usable path delivers, plus
    /// twice the target; refreshed every burst.
    slack_ns: [u64; MAX_PATHS],
    queues: PathQueues,
    out: Departures,
    /// The burst (its clock reading) the views were last refreshed for: a
    /// peer nothing is sent to costs nothing per burst.
    fresh_at: Option<Time>,
}

/// A worker's senders, one per peer (by slot), and the slots of those that
/// sent or hold packets since their last drain: all a loop drains and asks
/// for deadlines, so a hub's idle peers cost it nothing.
#[derive(Debug)]
pub struct TunnelSenders {
    id: usize,
    headers: Arc<Mempool>,
    pool: Arc<Mempool>,
    by_slot: Vec<Option<TunnelSender>>,
    busy: SlotList,
    /// The slots `by_slot` was made for.
    slots: PeerSlots,
}

impl TunnelSenders {
    /// Worker `id`'s, for the peers of `slots`: `headers` and `pool` as
    /// [`TunnelSender::new`] takes them.
    pub fn new(id: usize, slots: &PeerSlots, headers: Arc<Mempool>, pool: Arc<Mempool>) -> Self {
        let mut senders = Self {
            id,
            headers,
            pool,
            by_slot: Vec::new(),
            busy: SlotList::default(),
            slots: Arc::new([]),
        };
        senders.repeer(slots, None);
        senders
    }

    /// Follows the peers a reload added or removed, if `slots` are new: a
    /// new peer gets its sender, a removed one's queues are dropped
    /// (counted in `counters`), a peer that stays keeps its own. Cheap when
    /// nothing changed; else off the fast path, once per such reload (it
    /// allocates the new peers' queues).
    #[inline]
    pub fn follow(&mut self, slots: &PeerSlots, counters: &WorkerCounters) {
        if !Arc::ptr_eq(slots, &self.slots) {
            self.repeer(slots, Some(counters));
        }
    }

    #[cold]
    fn repeer(&mut self, slots: &PeerSlots, counters: Option<&WorkerCounters>) {
        let mut old = std::mem::take(&mut self.by_slot);
        self.by_slot = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let kept = old.get_mut(i).and_then(Option::take);
                match (slot, kept) {
                    (Some(t), Some(s)) if s.table().same_peer(t) => Some(s),
                    (Some(t), _) => Some(TunnelSender::new(
                        self.id,
                        Arc::clone(t),
                        Arc::clone(&self.headers),
                        Arc::clone(&self.pool),
                    )),
                    (None, _) => None,
                }
            })
            .collect();
        // What waited for a removed peer (or one whose slot another took) goes, counted.
        for mut s in old.into_iter().flatten() {
            if let Some(c) = counters {
                s.discard_queued(c, DropReason::ShaperPeerRemoved);
            }
        }
        self.busy.resize(self.by_slot.len());
        self.slots = Arc::clone(slots);
    }

    /// Sends `m` to peer `peer` ([`TunnelSender::send`]); `None` when there
    /// is no such peer (`m` is freed, the caller counts it).
    #[inline]
    pub fn send(
        &mut self,
        tables: &Tables,
        peer: usize,
        m: Mbuf,
        now: Time,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) -> Option<bool> {
        let t = self.by_slot.get_mut(peer).and_then(Option::as_mut)?;
        let taken = t.send(tables, m, now, tx, counters);
        self.busy.list(peer);
        Some(taken)
    }

    /// The slot of the only peer, for a relay rule's output into the
    /// tunnel (refused with several peers).
    pub fn only_peer(&self) -> Option<usize> {
        self.by_slot.iter().position(Option::is_some)
    }

    /// Drains the queues of the senders that sent or hold packets
    /// ([`TunnelSender::drain`]); how many packets left.
    #[inline]
    pub fn drain(
        &mut self,
        tables: &Tables,
        now: Time,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) -> usize {
        let mut moved = 0;
        let by_slot = &mut self.by_slot;
        self.busy.retain(|slot| {
            let Some(t) = by_slot.get_mut(slot).and_then(Option::as_mut) else {
                return false;
            };
            moved += t.drain(tables, now, tx, counters);
            t.holds_packets()
        });
        moved
    }

    /// When some sender's queues next need [`Self::drain`].
    pub fn next_deadline(&self) -> Option<Time> {
        self.busy
            .iter()
            .filter_map(|s| self.by_slot.get(s)?.as_ref()?.next_deadline())
            .min()
    }

    /// Drops, counted as `why`, what waits in every sender's queues (the
    /// worker is stopping).
    #[cold]
    pub fn discard_queued(&mut self, counters: &WorkerCounters, why: DropReason) {
        for t in self.by_slot.iter_mut().flatten() {
            t.discard_queued(counters, why);
        }
    }
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

/// One scheduler per class of `table`, default last.
fn schedulers(table: &TunnelTable) -> Vec<Scheduler> {
    let seed = u64::from(table.epoch) ^ 0x5eed;
    table
        .classes
        .all()
        .iter()
        .map(|c| scheduler(c.scheduler, &c.bindings, seed))
        .collect()
}

/// Whether two tables schedule alike (the same paths in the same places,
/// the same schedulers with the same bindings in the same order): then the
/// schedulers' state, which is kept by path index, carries over.
fn same_schedulers(a: &TunnelTable, b: &TunnelTable) -> bool {
    let key = |t: &TunnelTable| -> (Vec<_>, Vec<_>) {
        (
            t.classes
                .all()
                .iter()
                .map(|c| (c.scheduler, c.bindings.clone()))
                .collect(),
            t.paths.iter().map(|p| p.name.clone()).collect(),
        )
    };
    key(a) == key(b)
}

impl TunnelSender {
    /// Worker `id`'s sender for `table`: `headers` for the `redundant`
    /// copies' headers, `pool` for their sealed copies.
    pub fn new(
        id: usize,
        table: Arc<TunnelTable>,
        headers: Arc<Mempool>,
        pool: Arc<Mempool>,
    ) -> Self {
        let schedulers = schedulers(&table);
        // Every copy a queue can hold may be half of a waiting pair.
        let pairs = PathQueues::capacity(&table) + 64;
        Self {
            queues: PathQueues::new(&table),
            out: Departures::new(id, Arc::clone(&table), headers, pool, pairs),
            table,
            schedulers,
            views: [[PathView::default(); MAX_PATHS]; 2],
            shaped_bps: [1; MAX_PATHS],
            slack_ns: [0; MAX_PATHS],
            fresh_at: None,
        }
    }

    /// The peer's table this sender works from.
    pub fn table(&self) -> &Arc<TunnelTable> {
        &self.table
    }

    /// Reads the paths' state once in each burst that sends or drains.
    #[inline]
    fn fresh(&mut self, tables: &Tables, now: Time) {
        if self.fresh_at != Some(now) {
            self.fresh_at = Some(now);
            self.refresh(tables, now);
        }
    }

    /// Whether anything waits in the queues (for [`Self::drain`]).
    #[inline]
    pub fn holds_packets(&self) -> bool {
        !self.queues.is_empty()
    }

    /// Reads the paths' state: usable (up, not taken down, next hop
    /// resolved), rate, delay and the shaped paths' backlog (and takes a
    /// reloaded table).
    fn refresh(&mut self, tables: &Tables, now: Time) {
        if let Some(t) = tables.peer(self.table.index) {
            if !Arc::ptr_eq(t, &self.table) {
                self.retable(t);
            }
        }
        self.out.begin_burst();
        let table = &self.table;
        for (i, p) in table.paths.iter().enumerate().take(MAX_PATHS) {
            let state = &table.live[i];
            // A learned path with no endpoint yet has nowhere to send.
            let macs = table
                .endpoint(i, 0)
                .and(table.next_hop(i))
                .and_then(|nh| tables.macs_to(nh, p.port));
            self.out.set_macs(i, macs);
            let shaped = table
                .shaping
                .as_ref()
                .and_then(|sh| Some((sh, sh.cells.get(i)?)));
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
        let target = table
            .shaping
            .as_ref()
            .map_or(0, |sh| sh.settings.codel.target_ns);
        for (slack, v) in self.slack_ns.iter_mut().zip(&self.views[0][..n]) {
            let spread = u64::from(slowest.saturating_sub(v.delay_us)) * 1_000;
            *slack = if spread > 0 { spread + 2 * target } else { 0 };
        }
    }

    /// Takes a reloaded table ([`TunnelTable::reconfigured`]): the
    /// schedulers start afresh if the classes or paths differ, a path that
    /// stays keeps its queue and what waits in it, and what waited for a
    /// removed path is scheduled again at the next drain. Off the fast
    /// path: once per reload.
    #[cold]
    fn retable(&mut self, table: &Arc<TunnelTable>) {
        if !same_schedulers(&self.table, table) {
            self.schedulers = schedulers(table);
        }
        let carried = table.carried_from(&self.table);
        self.queues.retable(table, &carried);
        // What waits keeps its class by name (the default's when its class is gone), so a
        // packet scheduled again uses its class's new scheduler.
        let (old, new) = (self.table.classes.all(), table.classes.all());
        if old.iter().map(|c| &c.name).ne(new.iter().map(|c| &c.name)) {
            let default = new.len().saturating_sub(1);
            let to: Vec<usize> = old
                .iter()
                .map(|c| new.iter().position(|n| n.name == c.name).unwrap_or(default))
                .collect();
            self.queues.for_each_held(|h| {
                h.class = to.get(h.class).copied().unwrap_or(default);
            });
        }
        self.out.retable(Arc::clone(table));
        self.table = Arc::clone(table);
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
        self.fresh(tables, now);
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
        let class = table.classes.classify(&key);
        let (src, dst) = key.hash_words();
        let pkt = scheduler::Packet {
            len: u32::try_from(m.pkt_len() + encap::ADDED).unwrap_or(u32::MAX),
            src,
            dst,
            ipv6: key.src.is_ipv6(),
            proto: key.proto,
            sport: key.sport,
            dport: key.dport,
        };
        let n = table.paths.len().min(MAX_PATHS);
        let (Some(sched), Some(c)) = (
            self.schedulers.get_mut(class),
            table.classes.all().get(class),
        ) else {
            counters.drop_one(DropReason::TunnelNoPath);
            return false;
        };
        let tier = c.tier.unwrap_or_else(|| Tier::of_dscp(tos >> 2));
        let urgent = tier.goes_first();
        let choice = sched.pick(&self.views[usize::from(urgent)][..n], &pkt, now.as_nanos());
        let unordered = sched.bypasses_reorder();
        let cc = table.class_counters[class].worker(self.out.worker());
        cc.packets.inc();
        cc.bytes.add(u64::from(key.len));
        let mut o = Outlet {
            tables,
            tx,
            counters,
        };
        let held = Held {
            body: Body::Whole(m),
            tos,
            unordered,
            tier,
            class,
            pkt,
            number: Number::AtDeparture,
        };
        match choice {
            Choice::None => {
                cc.no_path.inc();
                counters.drop_one(DropReason::TunnelNoPath);
                false
            }
            Choice::One(p) => {
                self.dispatch(usize::from(p), held, now, &mut o);
                true
            }
            Choice::Two(a, b) => {
                cc.copies.inc();
                let Body::Whole(mut m) = held.body else {
                    return false;
                };
                let inner_len = m
                    .pkt_len()
                    .saturating_sub(EthernetFrame::<&[u8]>::HEADER_LEN);
                let payload = if m.adj(EthernetFrame::<&[u8]>::HEADER_LEN as u16) {
                    m.into_shared()
                } else {
                    Err(m)
                };
                let Ok(payload) = payload else {
                    counters.drop_one(DropReason::MultiSegment);
                    return false;
                };
                // Both copies carry one number, which the first to leave takes.
                let number = self.out.pair_number(urgent);
                for p in [a, b] {
                    let copy = Held {
                        body: Body::Copy(payload.share(), inner_len),
                        number,
                        ..held
                    };
                    self.dispatch(usize::from(p), copy, now, &mut o);
                }
                true
            }
        }
    }

    /// Queues `held` for path `p`, or sends it at once when the path is
    /// not shaped.
    #[inline]
    fn dispatch(&mut self, p: usize, held: Held, now: Time, o: &mut Outlet<'_>) {
        if !self.queues.shaped(p) {
            self.out.depart(p, held, now, o);
            return;
        }
        let len = u32::try_from(held.wire_len(self.table.tag_len())).unwrap_or(u32::MAX);
        let urgent = held.urgent();
        let paths = Paths {
            table: &self.table,
            rate_bps: &self.shaped_bps,
            slack_ns: &self.slack_ns,
        };
        self.queues.offer(p, held, now, &paths, &mut self.out, o);
        // The packet is in the backlog the schedulers see at once (queued,
        // or sent and charged to the clock), so the rest of this burst is
        // scheduled around it.
        let added = wire_ns(u64::from(len), self.shaped_bps[p]);
        for views in &mut self.views[..=usize::from(urgent)] {
            if let Some(b) = &mut views[p].backlog_ns {
                *b = b.saturating_add(added);
            }
        }
    }

    /// Lets out of every path's queue what its rate clock allows at `now`,
    /// after moving what waits for a path that can no longer be used onto
    /// the others. Returns how many packets left.
    #[inline]
    pub fn drain(
        &mut self,
        tables: &Tables,
        now: Time,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) -> usize {
        if self.queues.is_empty() {
            return 0;
        }
        self.fresh(tables, now);
        let mut o = Outlet {
            tables,
            tx,
            counters,
        };
        let n = self.table.paths.len().min(MAX_PATHS);
        while let Some(held) = self.queues.take_orphan() {
            self.reschedule(None, held, now, &mut o);
        }
        for p in 0..n {
            if !self.views[0][p].usable && self.queues.holds(p) {
                self.reroute(p, now, &mut o);
            }
        }
        let paths = Paths {
            table: &self.table,
            rate_bps: &self.shaped_bps,
            slack_ns: &self.slack_ns,
        };
        self.queues.drain(now, &paths, &mut self.out, &mut o)
    }

    /// Schedules again what waits for path `p`, which can no longer be
    /// used: onto another path, or dropped (`shaper_path_down`) when it is
    /// a `redundant` copy (the other copy goes on) or no path is usable.
    #[cold]
    fn reroute(&mut self, p: usize, now: Time, o: &mut Outlet<'_>) {
        while let Some(held) = self.queues.take(p) {
            self.reschedule(Some(p), held, now, o);
        }
    }

    /// Schedules `held`, which waited for path `from` (`None`: a path a
    /// reload removed), onto another path, or drops it (`shaper_path_down`).
    /// A class a reload removed meanwhile falls back to the default's
    /// scheduler.
    #[cold]
    fn reschedule(&mut self, from: Option<usize>, held: Held, now: Time, o: &mut Outlet<'_>) {
        let n = self.table.paths.len().min(MAX_PATHS);
        let class = held.class.min(self.schedulers.len().saturating_sub(1));
        let to = match (held.number, self.schedulers.get_mut(class)) {
            (Number::AtDeparture, Some(sched)) => {
                let views = &self.views[usize::from(held.urgent())][..n];
                match sched.pick(views, &held.pkt, now.as_nanos()) {
                    Choice::One(q) | Choice::Two(q, _) => Some(usize::from(q)),
                    Choice::None => None,
                }
            }
            _ => None,
        };
        match to {
            Some(q) if Some(q) != from => self.dispatch(q, held, now, o),
            _ => {
                self.out.discard(held);
                // A removed path's counters went with it: the worker's count alone.
                self.out.count_drop(
                    from.unwrap_or(usize::MAX),
                    o.counters,
                    DropReason::ShaperPathDown,
                );
            }
        }
    }

    /// Drops what still waits in the path queues, counted as `why` (the
    /// worker is stopping, or the peer was removed).
    #[cold]
    pub fn discard_queued(&mut self, counters: &WorkerCounters, why: DropReason) {
        while let Some(held) = self.queues.take_orphan() {
            self.out.discard(held);
            self.out.count_drop(usize::MAX, counters, why);
        }
        for p in 0..self.table.paths.len().min(MAX_PATHS) {
            while let Some(held) = self.queues.take(p) {
                self.out.discard(held);
                self.out.count_drop(p, counters, why);
            }
        }
    }

    /// When the queues next need [`Self::drain`].
    pub fn next_deadline(&self) -> Option<Time> {
        self.queues.next_deadline()
    }
}
