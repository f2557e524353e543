//! A worker's receiving side of the tunnel: find the peer a packet is from
//! (its Key ID names it; in clear, its path's configured address), check
//! it, hand it to the worker that owns its lane (over an SPSC ring), open
//! it there (an encrypted tunnel: the key its Key ID names, the replay
//! window, the tag; nothing about a packet is believed before), check that
//! its inner source is one of the peer's, pass it through the lane's
//! reorder buffer, and send what the lane releases on its way,
//! decapsulated, as if it had arrived from that peer. Probes and probe
//! replies go to the management lcore once opened; handshake messages go
//! there at a bounded rate (it finds their peer).

use std::sync::Arc;

use dpdk_bindings::ring::{Consumer, Producer};
use dpdk_bindings::{Burst, Mbuf};

use crate::buf::PacketBuf;
use crate::dataplane::dispatch::act;
use crate::dataplane::pipeline::{bad_source, process, Ingress};
use crate::dataplane::sinks::Sinks;
use crate::dataplane::stage::Stage;
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::Tables;
use crate::time::{Time, TokenBucket};
use crate::tunnel::encap;
use crate::tunnel::reorder::{self, Arrival, Lane};
use crate::tunnel::{PeerIndex, PeerSlots, TunnelTable, MAX_LANES};
use crate::wire::tunnel::{Kind as PacketKind, TunnelRepr, CONTROL_LANE};
use crate::wire::EthernetFrame;

use super::keys::Opener;
use super::slot_list::SlotList;
use super::spares::Spares;

/// A lane of the peer this worker reorders, made when it first carries a
/// packet.
#[derive(Debug)]
struct OwnedLane {
    lane: Box<Lane<Mbuf>>,
    /// The peer's epoch it holds sequence state for.
    epoch: Option<u16>,
}

/// One worker's receiving side of the tunnel: a receiver per peer, and
/// what they share (the rings between workers, the handshake budget).
#[derive(Debug)]
pub struct TunnelRx {
    id: usize,
    workers: usize,
    /// By peer slot.
    peers: Vec<Option<TunnelReceiver>>,
    /// The slots `peers` was made for.
    slots: PeerSlots,
    /// Bit p: port index p carries a path of some peer.
    path_ports: u64,
    /// The tunnel's UDP port (every peer's).
    port: u16,
    /// The peers whose lanes hold packets: what every poll visits.
    holding: SlotList,
    /// The peers whose lanes' counters changed: published together every
    /// [`COUNTERS_EVERY_NS`], so that a peer with nothing held is not
    /// visited at every poll.
    dirty: SlotList,
    /// When the `dirty` peers' counters are next published (ns).
    publish_due_ns: u64,
    /// How a packet with no Key ID (in clear, or a handshake) finds its
    /// peer.
    index: PeerIndex,
    /// Rings to the other workers (`None` for ourselves).
    handoff_to: Vec<Option<Producer>>,
    /// Rings from the other workers.
    handoff_from: Vec<Consumer>,
    /// Handshake messages handed to the management lcore.
    handshakes: TokenBucket,
    /// Where a peer's lanes and replay windows come from.
    spares: Arc<Spares>,
}

/// One worker's receiving state for one peer.
#[derive(Debug)]
pub struct TunnelReceiver {
    id: usize,
    table: Arc<TunnelTable>,
    /// Where its lanes and replay windows come from.
    spares: Arc<Spares>,
    /// Bit id: the path with that wire id is up by health (for the reorder
    /// buffer's loss proofs, which keep their per-path state by id, so that
    /// a reload that adds, removes or moves paths leaves it in place).
    live: u16,
    /// The peer's lanes, `Some` for the ones this worker owns and that
    /// carried a packet.
    lanes: Box<[Option<OwnedLane>]>,
    /// Bit l: lane l holds packets.
    active: u64,
    /// Bit l: lane l's counters changed since they were last published.
    dirty: u64,
    /// Opens sealed packets (`None`: the tunnel is in clear).
    opener: Option<Opener>,
    /// The burst (its clock reading) the keys were last read for: a peer
    /// nothing arrives from costs nothing per burst.
    fresh_at: Option<Time>,
    /// When `live` and the table are next read again (ns): path health
    /// changes at the probes' pace, so a hub whose bursts each touch many
    /// peers reads each peer's paths at most every [`PATH_STATE_EVERY_NS`].
    paths_due_ns: u64,
}

/// How stale a receiver's view of its peer's path health and table may
/// be: far below a probe interval or a BFD detection time.
const PATH_STATE_EVERY_NS: u64 = 100_000;

/// How stale the lane counters the reports read may be (they are read
/// once a second; at stop they are exact): publishing them touches each
/// peer's lanes, which at a hub are out of cache.
const COUNTERS_EVERY_NS: u64 = 1_000_000;

impl TunnelRx {
    /// Worker `id` of `workers`: its receiver for each peer of `tables`,
    /// its rings, and the shelves its peers' lanes and windows come from.
    pub fn new(
        id: usize,
        workers: usize,
        slots: &PeerSlots,
        (handoff_to, handoff_from): (Vec<Option<Producer>>, Vec<Consumer>),
        spares: Arc<Spares>,
    ) -> Self {
        let rate = slots
            .iter()
            .flatten()
            .find_map(|t| t.crypto.as_ref())
            .map_or(1, |c| c.handshake_punts_per_sec);
        let mut rx = Self {
            id,
            workers: workers.max(1),
            peers: Vec::new(),
            slots: Arc::new([]),
            path_ports: 0,
            port: 0,
            holding: SlotList::default(),
            dirty: SlotList::default(),
            publish_due_ns: 0,
            index: PeerIndex::default(),
            handoff_to,
            handoff_from,
            handshakes: TokenBucket::with_burst(rate, rate.min(64)),
            spares,
        };
        rx.repeer(slots, None);
        rx
    }

    /// Once per burst: takes peers added or removed (each peer reads its
    /// paths' state when something of its arrives); what a removed peer's
    /// lanes held is counted in `counters`.
    #[inline]
    pub fn begin_burst(&mut self, tables: &Tables, counters: &WorkerCounters) {
        if !Arc::ptr_eq(&tables.tunnels, &self.slots) {
            self.repeer(&tables.tunnels, Some(counters));
        }
    }

    /// Publishes every peer's lane counters now (the worker is stopping:
    /// the final counts are exact).
    pub fn publish_all(&mut self) {
        for p in self.peers.iter_mut().flatten() {
            p.publish_counters();
        }
    }

    /// Follows the peers a reload added or removed: a new peer gets its
    /// receiver (its lanes and windows come when they first carry a
    /// packet), a removed one's lanes go (what they held is freed and
    /// counted as `tunnel_peer_removed`), a peer that stays keeps its own
    /// and reads its new table at once. Off the fast path: once per such
    /// reload (it allocates the new peers' receivers).
    #[cold]
    fn repeer(&mut self, slots: &PeerSlots, counters: Option<&WorkerCounters>) {
        let mut old = std::mem::take(&mut self.peers);
        let mut gone = Vec::new();
        self.peers = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let kept = old.get_mut(i).and_then(Option::take);
                let Some(t) = slot else {
                    gone.extend(kept);
                    return None;
                };
                match kept {
                    Some(mut r) if r.table.same_peer(t) => {
                        // Its paths as the new table has them, before the next packet.
                        r.paths_due_ns = 0;
                        Some(r)
                    }
                    other => {
                        gone.extend(other);
                        Some(TunnelReceiver::new(
                            (self.id, self.workers),
                            Arc::clone(t),
                            Arc::clone(&self.spares),
                        ))
                    }
                }
            })
            .collect();
        gone.extend(old.into_iter().flatten());
        self.holding.resize(self.peers.len());
        self.dirty.resize(self.peers.len());
        for r in gone {
            if let Some(c) = counters {
                c.drop_many(DropReason::TunnelPeerRemoved, r.held() as u64);
            }
        }
        self.path_ports = slots
            .iter()
            .flatten()
            .fold(0, |ports, t| ports | t.path_ports());
        self.port = slots.iter().flatten().next().map_or(0, |t| t.port);
        self.index = PeerIndex::of(slots);
        self.slots = Arc::clone(slots);
    }

    /// The receiver of peer slot `peer`.
    #[inline]
    fn receiver(&mut self, peer: usize) -> Option<&mut TunnelReceiver> {
        self.peers.get_mut(peer).and_then(Option::as_mut)
    }

    /// The peer a packet is from: the one whose block holds its Key ID
    /// (sealed), else the one with a path of its id from its source (in
    /// clear, and handshakes; `--check` makes it unique), else one with a
    /// learned path of its id on the arrival port `in_port` (a handshake
    /// from behind a NAT: the management lcore finds which). A packet handed
    /// over by another worker (`in_port` unknown) with no Key ID is data in
    /// clear, which never comes over a learned path.
    #[inline]
    fn peer_of(&self, rx: &encap::Rx, in_port: Option<usize>) -> Option<usize> {
        if rx.header.key != 0 {
            let peer = crate::tunnel::crypto::peer_of_key(rx.header.key)?;
            return self.peers.get(peer)?.is_some().then_some(peer);
        }
        let id = rx.header.path;
        if let Some(slot) = self.index.by_remote(rx.src, id) {
            return Some(slot);
        }
        let port = in_port?;
        self.index.learning().iter().copied().find(|s| {
            self.peers
                .get(*s)
                .and_then(Option::as_ref)
                .is_some_and(|p| p.table.rx_path(port, rx.src, rx.dst, id).is_some())
        })
    }

    /// The peer slot and path index of a packet that arrived on `in_port`,
    /// the path index from the peer's table as of this burst (the one
    /// `accept` counts by).
    #[inline]
    fn locate(
        &mut self,
        tables: &Tables,
        rx: &encap::Rx,
        in_port: usize,
        now: Time,
    ) -> Option<(usize, usize)> {
        let peer = self.peer_of(rx, Some(in_port))?;
        let r = self.peers.get_mut(peer)?.as_mut()?;
        r.fresh(tables, now);
        Some((
            peer,
            r.table.rx_path(in_port, rx.src, rx.dst, rx.header.path)?,
        ))
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
        if in_port >= 64 || self.path_ports & (1 << in_port) == 0 {
            return Err(m);
        }
        let Some(iface) = tables.interfaces.get(in_port) else {
            return Err(m);
        };
        let Some(rx) = encap::recognize(m.data(), iface.mac, self.port) else {
            return Err(m);
        };
        let Some((peer, path)) = self.locate(tables, &rx, in_port, now) else {
            return Err(m);
        };
        self.take(tables, m, &rx, (peer, path), now, sinks);
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
        let Some(at) = self.locate(tables, &rx, in_port, now) else {
            let reason = if rx.header.key != 0 && self.peer_of(&rx, Some(in_port)).is_none() {
                DropReason::TunnelUnknownKey
            } else {
                DropReason::TunnelUnknownPath
            };
            sinks.drop_one(reason);
            return;
        };
        self.take(tables, m, &rx, at, now, sinks);
    }

    /// A packet from a peer's address over one of its paths (`at`: peer
    /// and path index): a handshake message for the management lcore (at a
    /// bounded rate), or a packet for the worker that owns its lane.
    #[inline]
    fn take(
        &mut self,
        tables: &Tables,
        m: Mbuf,
        rx: &encap::Rx,
        (peer, path): (usize, usize),
        now: Time,
        sinks: &mut Sinks<'_>,
    ) {
        let Some(clear) = self.receiver(peer).map(|r| r.opener.is_none()) else {
            sinks.drop_one(DropReason::TunnelUnknownPath);
            return;
        };
        if rx.header.kind.is_handshake() {
            let refused = if clear {
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
        if let Some(r) = self.peers.get_mut(peer).and_then(Option::as_mut) {
            r.accept(tables, m, rx, path, now, sinks);
            r.list_in((&mut self.holding, &mut self.dirty), peer);
        }
    }
}

impl TunnelReceiver {
    /// Worker `id` of `workers`'s receiver for the peer of `table`. It
    /// holds no lane and no replay window yet: it takes them from `spares`
    /// as they first carry a packet.
    pub fn new(
        (id, workers): (usize, usize),
        table: Arc<TunnelTable>,
        spares: Arc<Spares>,
    ) -> Self {
        let lanes = (0..MAX_LANES).map(|_| None).collect();
        let opener = table
            .crypto
            .as_ref()
            .map(|c| Opener::new(id, workers, Arc::clone(c)));
        Self {
            opener,
            id,
            live: 0,
            lanes,
            spares,
            active: 0,
            dirty: 0,
            table,
            fresh_at: None,
            paths_due_ns: 0,
        }
    }

    /// Reads which paths are up (and the keys) once in each burst that
    /// something of this peer's arrives or is due.
    #[inline]
    fn fresh(&mut self, tables: &Tables, now: Time) {
        if self.fresh_at == Some(now) {
            return;
        }
        self.fresh_at = Some(now);
        if let Some(o) = &mut self.opener {
            o.begin_burst();
        }
        if now.as_nanos() >= self.paths_due_ns {
            self.paths_due_ns = now.as_nanos() + PATH_STATE_EVERY_NS;
            self.read_paths(tables);
        }
    }

    /// Reads which paths are up (and takes a reloaded table).
    fn read_paths(&mut self, tables: &Tables) {
        if let Some(t) = tables.peer(self.table.index) {
            if !Arc::ptr_eq(t, &self.table) {
                self.retable(t);
            }
        }
        self.live = self.table.live_ids();
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
        self.fresh(tables, now);
        let (Some(counters), Some(learned)) = (
            self.table.path_counters.get(path),
            self.table.paths.get(path).map(|p| p.learned),
        ) else {
            // A reload took the path out between its lookup and now.
            sinks.drop_one(DropReason::TunnelUnknownPath);
            return;
        };
        let pc = counters.worker(self.id);
        let opened = match (&mut self.opener, rx.header.key) {
            (None, 0) => Ok(false),
            (None, _) => Err(DropReason::TunnelUnknownKey),
            (Some(_), 0) => Err(DropReason::TunnelCleartext),
            (Some(_), _) if !m.is_contiguous() => Err(DropReason::MultiSegment),
            (Some(o), _) => o.open(m.data_mut(), rx, &self.spares),
        };
        let newest = match opened {
            Ok(newest) => newest,
            Err(reason) => {
                pc.drops.inc(reason);
                sinks.drop_one(reason);
                return;
            }
        };
        if newest && learned && bad_source(tables, rx.src).is_none() {
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
        if !self.sent_from_its_prefixes(m.data()) {
            // Authenticated, but not from a network of this peer's: one
            // site may not speak for another (WireGuard's allowed IPs).
            pc.drops.inc(DropReason::TunnelInnerSource);
            sinks.drop_one(DropReason::TunnelInnerSource);
            return;
        }
        let peer = self.table.index;
        if rx.header.lane == CONTROL_LANE {
            deliver(tables, peer, m, sinks);
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
        let Some(entry) = self.lanes.get_mut(lane) else {
            sinks.drop_one(DropReason::TunnelBadLane);
            return;
        };
        if entry.is_none() {
            // The lane's first packet here (this worker owns it: `take` sent it here).
            let Some(ring) = self.spares.lane(&self.table.reorder) else {
                sinks.drop_one(DropReason::TunnelNoState);
                return;
            };
            *entry = Some(OwnedLane {
                lane: ring,
                epoch: None,
            });
        }
        let Some(owned) = entry.as_mut() else {
            return;
        };
        let peer = self.table.index;
        let mut out = |pkt: Mbuf, _: reorder::Delivery| deliver(tables, peer, pkt, sinks);
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

    /// Whether a decapsulated frame's inner source is in the peer's
    /// prefixes (the inner header was checked by decapsulation).
    #[inline]
    fn sent_from_its_prefixes(&self, frame: &[u8]) -> bool {
        let ip = frame
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .unwrap_or(&[]);
        match ip.first().map(|b| b >> 4) {
            Some(4) => ip
                .get(12..16)
                .and_then(|a| <[u8; 4]>::try_from(a).ok())
                .is_some_and(|a| self.table.allows_source(u32::from_be_bytes(a))),
            Some(6) => ip
                .get(8..24)
                .and_then(|a| <[u8; 16]>::try_from(a).ok())
                .is_some_and(|a| self.table.allows_source6(u128::from_be_bytes(a))),
            _ => false,
        }
    }

    /// Releases what waited in this peer's lanes past its deadline.
    fn poll_lanes(&mut self, tables: &Tables, now: Time, sinks: &mut Sinks<'_>) -> usize {
        if self.active == 0 {
            return 0;
        }
        self.fresh(tables, now);
        let mut moved = 0;
        let mut active = self.active;
        let peer = self.table.index;
        while active != 0 {
            let l = active.trailing_zeros() as usize;
            active &= active - 1;
            if let Some(Some(owned)) = self.lanes.get_mut(l) {
                let before = owned.lane.occupancy();
                owned
                    .lane
                    .poll(now.as_nanos(), self.live, &mut |pkt: Mbuf, _| {
                        deliver(tables, peer, pkt, sinks)
                    });
                moved += before - owned.lane.occupancy();
            }
            self.lane_done(l);
        }
        moved
    }

    /// Packets held in this peer's lanes.
    fn held(&self) -> usize {
        self.lanes
            .iter()
            .flatten()
            .map(|l| l.lane.occupancy())
            .sum()
    }

    /// When the next held packet of this peer's lanes is due.
    fn next_deadline(&self) -> Option<u64> {
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
        next
    }

    /// Puts it (slot `slot`) in `holding` if its lanes hold packets and in
    /// `dirty` if their counters changed, unless it is there already.
    #[inline]
    fn list_in(&self, (holding, dirty): (&mut SlotList, &mut SlotList), slot: usize) {
        if self.active != 0 {
            holding.list(slot);
        }
        if self.dirty != 0 {
            dirty.list(slot);
        }
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
/// arrived from peer `peer`.
#[inline]
fn deliver(tables: &Tables, peer: u16, mut m: Mbuf, sinks: &mut Sinks<'_>) {
    m.set_port(Ingress::tunnel_port_id(peer));
    let verdict = process(tables, Ingress::Tunnel(peer), PacketBuf::data_mut(&mut m));
    act(tables, verdict, m, sinks);
}

impl Stage for TunnelRx {
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
                // The receiving worker checked the peer and path; find their indices
                // again (gone if this worker already holds a table a reload took the
                // path out of).
                let peer = self.peer_of(&rx, None);
                let found = peer.and_then(|peer| {
                    let r = self.peers.get_mut(peer).and_then(Option::as_mut)?;
                    r.fresh(tables, now);
                    Some((peer, r.table.path_index(rx.header.path)?, r))
                });
                let Some((peer, path, r)) = found else {
                    sinks.drop_one(DropReason::TunnelUnknownPath);
                    continue;
                };
                r.accept(tables, m, &rx, path, now, sinks);
                r.list_in((&mut self.holding, &mut self.dirty), peer);
            }
        }
        // Only the peers with something held: a hub's idle peers cost nothing.
        let (peers, dirty) = (&mut self.peers, &mut self.dirty);
        self.holding.retain(|slot| {
            let Some(p) = peers.get_mut(slot).and_then(Option::as_mut) else {
                return false;
            };
            moved += p.poll_lanes(tables, now, sinks);
            if p.dirty != 0 {
                dirty.list(slot);
            }
            p.active != 0
        });
        if !self.dirty.is_empty() && now.as_nanos() >= self.publish_due_ns {
            self.publish_due_ns = now.as_nanos() + COUNTERS_EVERY_NS;
            for slot in self.dirty.drain() {
                if let Some(p) = self.peers.get_mut(slot).and_then(Option::as_mut) {
                    p.publish_counters();
                }
            }
        }
        moved
    }

    fn next_deadline(&self) -> Option<Time> {
        let mut next: Option<u64> = (!self.dirty.is_empty()).then_some(self.publish_due_ns);
        for slot in self.holding.iter() {
            let due = self
                .peers
                .get(slot)
                .and_then(Option::as_ref)
                .and_then(TunnelReceiver::next_deadline);
            if let Some(d) = due {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        next.map(Time::from_nanos)
    }
}
