//! A worker's receiving side of the tunnel: check a packet from the peer,
//! hand it to the worker that owns its lane (over an SPSC ring), open it
//! there (an encrypted tunnel: the key its Key ID names, the replay window,
//! the tag; nothing about a packet is believed before), pass it through the
//! lane's reorder buffer, and send what the lane releases on its way,
//! decapsulated, as if it had arrived from the tunnel. Probes and probe
//! replies go to the management lcore once opened; handshake messages go
//! there at a bounded rate.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dpdk_bindings::ring::{Consumer, Producer};
use dpdk_bindings::{Burst, Mbuf};

use crate::buf::PacketBuf;
use crate::dataplane::dispatch::act;
use crate::dataplane::pipeline::{bad_source, process, Ingress, TUNNEL_PORT_ID};
use crate::dataplane::sinks::Sinks;
use crate::dataplane::stage::Stage;
use crate::stats::DropReason;
use crate::tables::Tables;
use crate::time::{Time, TokenBucket};
use crate::tunnel::encap;
use crate::tunnel::reorder::{self, Arrival, Lane};
use crate::tunnel::{TunnelTable, MAX_LANES, MAX_PATHS};
use crate::wire::tunnel::{Kind as PacketKind, TunnelRepr, CONTROL_LANE};

use super::keys::Opener;

/// A lane of the peer this worker reorders.
#[derive(Debug)]
struct OwnedLane {
    lane: Lane<Mbuf>,
    /// The peer's epoch it holds sequence state for.
    epoch: Option<u16>,
}

/// One worker's receiving state.
#[derive(Debug)]
pub struct TunnelReceiver {
    id: usize,
    workers: usize,
    table: Arc<TunnelTable>,
    /// Bit id: the path with that wire id is up by health (for the reorder
    /// buffer's loss proofs, which keep their per-path state by id, so that
    /// a reload that adds, removes or moves paths leaves it in place).
    live: u16,
    /// The peer's lanes, `Some` for the ones this worker owns.
    lanes: Vec<Option<OwnedLane>>,
    /// Bit l: lane l holds packets.
    active: u64,
    /// Bit l: lane l's counters changed since they were last published.
    dirty: u64,
    /// Rings to the other workers (`None` for ourselves).
    handoff_to: Vec<Option<Producer>>,
    /// Rings from the other workers.
    handoff_from: Vec<Consumer>,
    /// Opens sealed packets (`None`: the tunnel is in clear).
    opener: Option<Opener>,
    /// Handshake messages handed to the management lcore.
    handshakes: TokenBucket,
}

impl TunnelReceiver {
    /// Worker `id` of `workers`: its lanes and rings.
    pub fn new(
        id: usize,
        workers: usize,
        table: Arc<TunnelTable>,
        handoff_to: Vec<Option<Producer>>,
        handoff_from: Vec<Consumer>,
    ) -> Self {
        let lanes = (0..MAX_LANES)
            .map(|l| {
                (l % workers.max(1) == id).then(|| OwnedLane {
                    lane: Lane::new(table.reorder),
                    epoch: None,
                })
            })
            .collect();
        let opener = table
            .crypto
            .as_ref()
            .map(|c| Opener::new(id, workers, Arc::clone(c)));
        let rate = table
            .crypto
            .as_ref()
            .map_or(1, |c| c.handshake_punts_per_sec);
        Self {
            opener,
            handshakes: TokenBucket::with_burst(rate, rate.min(64)),
            id,
            workers: workers.max(1),
            live: 0,
            lanes,
            active: 0,
            dirty: 0,
            handoff_to,
            handoff_from,
            table,
        }
    }

    /// Reads which paths are up, once per burst (and takes a reloaded
    /// table).
    #[inline]
    pub fn begin_burst(&mut self, tables: &Tables) {
        if let Some(t) = &tables.tunnel {
            if !Arc::ptr_eq(t, &self.table) {
                self.retable(t);
            }
        }
        if let Some(o) = &mut self.opener {
            o.begin_burst();
        }
        let mut live = 0u16;
        for (p, state) in self.table.paths.iter().zip(self.table.live.iter()) {
            if state.up.load(Ordering::Relaxed) && usize::from(p.id) < MAX_PATHS {
                live |= 1 << p.id;
            }
        }
        self.live = live;
    }

    /// Takes a reloaded table ([`TunnelTable::reconfigured`]): the lanes
    /// keep what they hold (their per-path state is by path id) and take the
    /// new `max_hold`; the keys and replay windows carry on.
    #[cold]
    fn retable(&mut self, table: &Arc<TunnelTable>) {
        for l in self.lanes.iter_mut().flatten() {
            l.lane.set_max_hold(table.reorder.max_hold_ns);
        }
        self.table = Arc::clone(table);
    }

    /// The fast pass, tried before the general pipeline: takes a clean
    /// packet from one of our paths (see [`encap::recognize`]) and gives
    /// anything else back for the pipeline to judge. What the pipeline
    /// would check on top cannot fail for such a packet: its source is a
    /// path's peer, which the config refuses to be a martian, a broadcast or
    /// one of ours, and its destination is our address on that path.
    #[inline]
    pub fn try_receive(
        &mut self,
        tables: &Tables,
        m: Mbuf,
        in_port: usize,
        now: Time,
        sinks: &mut Sinks<'_>,
    ) -> Result<(), Mbuf> {
        if !self.table.has_path_on(in_port) {
            return Err(m);
        }
        let Some(iface) = tables.interfaces.get(in_port) else {
            return Err(m);
        };
        let Some(rx) = encap::recognize(m.data(), iface.mac, self.table.port) else {
            return Err(m);
        };
        let Some(path) = self.table.rx_path(in_port, rx.src, rx.dst, rx.header.path) else {
            return Err(m);
        };
        self.take(tables, m, &rx, path, now, sinks);
        Ok(())
    }

    /// A packet the pipeline found to be for one of our tunnel endpoints,
    /// received on port `in_port`.
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
        self.take(tables, m, &rx, path, now, sinks);
    }

    /// A packet from the peer's address over `path`: a handshake message
    /// for the management lcore (at a bounded rate), or a packet for the
    /// worker that owns its lane.
    #[inline]
    fn take(
        &mut self,
        tables: &Tables,
        m: Mbuf,
        rx: &encap::Rx,
        path: usize,
        now: Time,
        sinks: &mut Sinks<'_>,
    ) {
        if rx.header.kind.is_handshake() {
            let refused = if self.opener.is_none() {
                Some(DropReason::TunnelCleartext)
            } else if rx.header.key != 0 {
                Some(DropReason::TunnelUnknownKey)
            } else if !self.handshakes.take(now) {
                Some(DropReason::TunnelHandshakeLimited)
            } else {
                None
            };
            match refused {
                Some(reason) => sinks.drop_one(reason),
                None => sinks.punt(m),
            }
            return;
        }
        let lane = rx.header.lane;
        let owner = if lane == CONTROL_LANE {
            usize::from(CONTROL_LANE) % self.workers
        } else if usize::from(lane) < MAX_LANES {
            usize::from(lane) % self.workers
        } else {
            sinks.drop_one(DropReason::TunnelBadLane);
            return;
        };
        if owner != self.id {
            // The owner opens it (its replay windows) and decapsulates it
            // (it needs the tunnel header to reorder).
            if let Some(Some(ring)) = self.handoff_to.get_mut(owner) {
                if ring.enqueue(m).is_err() {
                    sinks.drop_one(DropReason::TunnelHandoffFull);
                }
            }
            return;
        }
        self.accept(tables, m, rx, path, now, sinks);
    }

    /// A packet of a lane this worker owns, on `path`: opened (an encrypted
    /// tunnel), counted as received on the path, then a probe or reply for
    /// the management lcore, or data decapsulated at once (its inner packet
    /// checked, so garbage never takes a sequence number) and delivered or
    /// passed through its lane's reorder buffer.
    fn accept(
        &mut self,
        tables: &Tables,
        mut m: Mbuf,
        rx: &encap::Rx,
        path: usize,
        now: Time,
        sinks: &mut Sinks<'_>,
    ) {
        let pc = self.table.path_counters[path].worker(self.id);
        let opened = match (&mut self.opener, rx.header.key) {
            (None, 0) => Ok(false),
            (None, _) => Err(DropReason::TunnelUnknownKey),
            (Some(_), 0) => Err(DropReason::TunnelCleartext),
            (Some(_), _) if !m.is_contiguous() => Err(DropReason::MultiSegment),
            (Some(o), _) => o.open(m.data_mut(), rx),
        };
        let newest = match opened {
            Ok(newest) => newest,
            Err(reason) => {
                pc.drops.inc(reason);
                sinks.drop_one(reason);
                return;
            }
        };
        if newest && self.table.paths[path].learned && bad_source(tables, rx.src).is_none() {
            // It authenticated (a learned path needs an encrypted tunnel), is the newest
            // of its (lane, path) and could come from a peer: the peer is where it came from.
            self.table.learn(path, rx);
        }
        pc.rx_packets.inc();
        pc.rx_bytes.add(m.pkt_len() as u64);
        if rx.header.kind != PacketKind::Data {
            // Probes and replies are the management lcore's (opened in
            // place; the tag stays, so the frame's lengths still hold).
            sinks.punt(m);
            return;
        }
        if let Err(reason) = encap::decapsulate(&mut m, rx) {
            pc.drops.inc(reason);
            sinks.drop_one(reason);
            return;
        }
        if rx.header.lane == CONTROL_LANE {
            deliver(tables, m, sinks);
        } else {
            self.reorder(tables, m, &rx.header, now, sinks);
        }
    }

    /// Passes a packet of a lane this worker owns through its reorder buffer.
    fn reorder(
        &mut self,
        tables: &Tables,
        m: Mbuf,
        h: &TunnelRepr,
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
            path: h.path,
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

    /// Notes whether lane `l` holds packets and that its counters changed.
    #[inline]
    fn lane_done(&mut self, l: usize) {
        let Some(Some(owned)) = self.lanes.get(l) else {
            return;
        };
        if owned.lane.occupancy() > 0 {
            self.active |= 1 << l;
        } else {
            self.active &= !(1 << l);
        }
        self.dirty |= 1 << l;
    }

    /// Publishes the counters of the lanes that changed, once per poll
    /// rather than once per packet.
    fn publish_counters(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        while dirty != 0 {
            let l = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            if let (Some(Some(owned)), Some(c)) =
                (self.lanes.get(l), self.table.lane_counters.get(l))
            {
                c.0.store(owned.lane.counters(), owned.lane.occupancy());
            }
        }
    }
}

/// Sends a decapsulated packet a lane released on its way, as if it had
/// arrived from the tunnel.
#[inline]
fn deliver(tables: &Tables, mut m: Mbuf, sinks: &mut Sinks<'_>) {
    m.set_port(TUNNEL_PORT_ID);
    let verdict = process(tables, Ingress::Tunnel, PacketBuf::data_mut(&mut m));
    act(tables, verdict, m, sinks);
}

impl Stage for TunnelReceiver {
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
                // The receiving worker checked the path; find its index again (gone if
                // this worker already holds a table a reload took the path out of).
                let Some(path) = self.table.path_index(rx.header.path) else {
                    sinks.drop_one(DropReason::TunnelUnknownPath);
                    continue;
                };
                self.accept(tables, m, &rx, path, now, sinks);
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
        self.publish_counters();
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
