//! The management lcore's part of the tunnel: it probes every path (round
//! trip, forward delay, loss), answers the peer's probes, decides from the
//! answers and the carrier whether a path is up, publishes each path's state,
//! delay and effective rate to the workers (the atomics of
//! [`crate::tunnel::PathLive`]), sends its own packets (ICMP about
//! packets that came through the tunnel) back through it, and, for an
//! encrypted tunnel, runs the handshakes that make the keys
//! ([`Sessions`]) and seals its own packets under them. Until a session
//! exists it sends no probe: a probe must be authenticated to count.
//!
//! Everything here runs on the management lcore; the workers never wait for
//! it.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::bfd::SessionStatus;
use crate::dataplane::pipeline::bad_source;
use crate::tables::Tables;
use crate::time::{Time, TokenBucket};
use crate::tunnel::crypto::aead::{PathSeqs, TAG_LEN};
use crate::tunnel::crypto::handshake::Handshaker;
use crate::tunnel::crypto::keys::PublicKey;
use crate::tunnel::crypto::session::{Outgoing, Sessions};
use crate::tunnel::crypto::TxKey;
use crate::tunnel::encap::{self, Outer, Rx, OUTER_LEN};
use crate::tunnel::health::{self, Health, Transition};
use crate::tunnel::meter::Meters;
use crate::tunnel::pace::ProbePace;
use crate::tunnel::{carry_over, TunnelTable};
use crate::wire::bfd::State as BfdState;
use crate::wire::tunnel::{
    flags, Kind, ProbeReplyRepr, ProbeRepr, TunnelPacket, TunnelRepr, CONTROL_LANE,
};

/// One frame to send on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Port index.
    pub port: usize,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// The control lane: the management lcore's own packets' headers.
#[derive(Debug)]
struct ControlLane {
    table: Arc<TunnelTable>,
    /// Where to answer a handshake message that arrived on a learned path
    /// whose endpoint is not known yet (or moved): its source, while it is
    /// being answered.
    reply_to: Option<(Ipv4Addr, u16)>,
    /// The control lane's path sequences (every packet on a path takes
    /// the next: it is the nonce of a sealed one).
    path_seq: PathSeqs,
}

impl ControlLane {
    /// The outer headers of a `kind` packet on `path` under key `key`
    /// (`None`: the path's next hop is unresolved).
    fn outer(
        &mut self,
        tables: &Tables,
        path: usize,
        kind: Kind,
        key: u16,
        now: Time,
    ) -> Option<Outer> {
        let p = self.table.paths.get(path)?;
        let lane_port = crate::tunnel::control_lane_port();
        let (dst_ip, dst_port, src_port) = match self.reply_to.filter(|_| p.learned) {
            Some((ip, port)) => (ip, port, self.table.port),
            None => self.table.endpoint(path, lane_port)?,
        };
        let next_hop = if p.next_hop.is_unspecified() {
            dst_ip
        } else {
            p.next_hop
        };
        let (src_mac, dst_mac) = tables.macs_to(next_hop, p.port)?;
        let path_seq = self.path_seq.next(p.id);
        Some(Outer {
            src_mac,
            dst_mac,
            src_ip: p.local,
            dst_ip,
            src_port,
            dst_port,
            tos: 0xc0, // CS6, network control
            header: TunnelRepr {
                kind,
                flags: flags::UNORDERED,
                path: p.id,
                key,
                lane: CONTROL_LANE,
                epoch: self.table.epoch,
                lane_seq: 0,
                path_seq,
                sent_us: now.as_micros_u32(),
            },
        })
    }

    /// A whole `kind` frame on `path` carrying `payload` (with `tos`, if
    /// given, in place of CS6), sealed under `key` if given; `None` if the
    /// path's next hop is unresolved.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &mut self,
        tables: &Tables,
        path: usize,
        kind: Kind,
        key: Option<&TxKey>,
        tos: Option<u8>,
        payload: &[u8],
        now: Time,
    ) -> Option<Frame> {
        let mut outer = self.outer(tables, path, kind, key.map_or(0, |k| k.id), now)?;
        if let Some(tos) = tos {
            outer.tos = tos;
        }
        Some(self.frame(path, &outer, payload, key))
    }

    /// A whole frame: `outer`, then `payload`, sealed under `key` if given.
    fn frame(&self, path: usize, outer: &Outer, payload: &[u8], key: Option<&TxKey>) -> Frame {
        let tag = if key.is_some() { TAG_LEN } else { 0 };
        let mut bytes = vec![0u8; OUTER_LEN + payload.len() + tag];
        encap::write_outer(&mut bytes, outer, payload.len() + tag);
        bytes[OUTER_LEN..OUTER_LEN + payload.len()].copy_from_slice(payload);
        if let Some(k) = key {
            encap::seal(&mut bytes, &k.key);
        }
        Frame {
            port: self.table.paths[path].port,
            bytes,
        }
    }
}

/// The management lcore's tunnel state.
#[derive(Debug)]
pub struct MgmtTunnel {
    table: Arc<TunnelTable>,
    meters: Meters,
    health: Vec<Health>,
    /// Per path: whether its port had carrier at the last look.
    carrier: Vec<bool>,
    control: ControlLane,
    /// The sessions with the peer (`None`: the tunnel is in clear).
    sessions: Option<Sessions>,
    /// Per path: probe replies we may send. A path that comes back after an
    /// outage delivers the probes the peer queued meanwhile all at once;
    /// answering each would put a burst of replies on the path just as
    /// traffic returns to it, for timing samples that are stale anyway.
    replies: Vec<TokenBucket>,
    /// Per path: its shaper's full-queue drops at the last look, and when
    /// they last grew (congestion on our side).
    shaper_drops: Vec<(u64, Option<Time>)>,
    /// How often the paths are probed: slower while the peer is unreachable.
    pace: ProbePace,
    /// Whether the peer counted as unreachable at the last look (for the log).
    unreachable: bool,
    /// Per path: a learned path's peer endpoint at the last look (for the log).
    endpoints: Vec<Option<(Ipv4Addr, u16)>>,
}

/// A BFD Down this soon after our shaper's queue for the path was full
/// counts as congestion on our side.
const CONGESTED_WITHIN: Duration = Duration::from_secs(1);

impl MgmtTunnel {
    /// State for `table`, at `now`: every path starts up (so traffic flows
    /// while the first probes go out) and is taken down if they go
    /// unanswered.
    pub fn new(table: Arc<TunnelTable>, now: Time) -> Self {
        let n = table.paths.len();
        let health = (0..n)
            .map(|p| Health::new(health_settings(&table, p), now))
            .collect();
        Self {
            meters: Meters::new(n),
            health,
            carrier: vec![true; n],
            control: ControlLane {
                table: Arc::clone(&table),
                reply_to: None,
                path_seq: PathSeqs::default(),
            },
            sessions: None,
            replies: vec![TokenBucket::with_burst(replies_per_sec(table.probe_interval), 4); n],
            shaper_drops: vec![(0, None); n],
            pace: ProbePace::new(table.probe_interval, now),
            unreachable: false,
            endpoints: vec![None; n],
            table,
        }
    }

    /// Notes what has arrived from the peer (on any path, data included). Returns true
    /// when it was unreachable and is heard again: every path should be probed now.
    pub fn note_heard(&mut self, now: Time) -> bool {
        let total: u64 = self
            .table
            .path_counters
            .iter()
            .map(|c| c.total(|w| &w.rx_packets))
            .sum();
        let woke = self.pace.heard(total, now);
        let unreachable = self.pace.unreachable(now);
        if unreachable != self.unreachable {
            self.unreachable = unreachable;
            if unreachable {
                log::warn!(
                    "tunnel: nothing heard from the peer on any path for {:?}: probing each \
                     path every {:?} until it is",
                    crate::tunnel::pace::UNREACHABLE_AFTER,
                    self.table
                        .probe_interval
                        .max(crate::tunnel::pace::UNREACHABLE_EVERY)
                );
            } else {
                log::info!("tunnel: the peer is heard again: probing at the full rate");
            }
        }
        woke
    }

    /// The gap to a path's next probe (jittered; slow while the peer is unreachable).
    pub fn next_probe_gap(&mut self, now: Time) -> Duration {
        self.pace.next_gap(now)
    }

    /// Encrypts the tunnel with `hs`'s keys: handshakes start at the next
    /// [`Self::handshake_poll`].
    pub fn encrypt(&mut self, hs: Handshaker, now: Time) {
        if let Some(crypto) = &self.table.crypto {
            let workers = self.table.path_counters.first().map_or(1, |c| c.len());
            let peer = (workers, self.table.index);
            self.sessions = Some(Sessions::new(hs, Arc::clone(crypto), peer, now));
        }
    }

    /// The key to seal our own packets under: `Ok(None)` in clear,
    /// `Err(())` when encrypted but no session exists yet.
    fn seal_key(&self, now: Time) -> Result<Option<Arc<TxKey>>, ()> {
        match &self.sessions {
            None => Ok(None),
            Some(s) => s.send_key(now).map(Some).ok_or(()),
        }
    }

    /// Runs the handshake timers: an initiation to send, if one is due.
    pub fn handshake_poll(&mut self, tables: &Tables, now: Time) -> Option<Frame> {
        let usable: Vec<bool> = self.table.live.iter().map(|l| l.usable()).collect();
        let sessions = self.sessions.as_mut()?;
        let control = &mut self.control;
        let mut built = None;
        let out = sessions.poll(now, &usable, &mut |p, kind| {
            let o = control.outer(tables, p, kind, 0, now)?;
            built = Some(o);
            Some(header_bytes(&o))
        });
        out.and_then(|o| Some(self.control.frame(o.path, &built?, &o.body, None)))
    }

    /// When [`Self::handshake_poll`] next has work.
    pub fn handshake_due(&self, now: Time) -> Option<Time> {
        self.sessions.as_ref().map(|s| s.next_due(now))
    }

    /// A handshake message arrived on `path` (checked by a worker only for
    /// its addresses: anyone may have sent it).
    fn on_handshake(
        &mut self,
        tables: &Tables,
        frame: &[u8],
        rx: &Rx,
        path: usize,
        now: Time,
    ) -> Option<Frame> {
        let usable: Vec<bool> = self.table.live.iter().map(|l| l.usable()).collect();
        let sessions = self.sessions.as_mut()?;
        let header = frame.get(rx.offset - TunnelPacket::<&[u8]>::HEADER_LEN..rx.offset)?;
        let body = rx.payload(frame);
        // An answer to an initiation goes back where it came from (a learned path may not
        // know its peer yet, or the peer moved).
        self.control.reply_to =
            (rx.header.kind == Kind::HandshakeInitiation).then_some((rx.src, rx.src_port));
        let control = &mut self.control;
        let mut built: Option<Outer> = None;
        let mut header_for = |p, kind| {
            let o = control.outer(tables, p, kind, 0, now)?;
            built = Some(o);
            Some(header_bytes(&o))
        };
        let out: Option<Outgoing> = match rx.header.kind {
            Kind::HandshakeInitiation => {
                let src = (rx.src, rx.src_port);
                sessions.on_initiation(header, body, src, path, now, &mut header_for)
            }
            Kind::HandshakeResponse => {
                sessions.on_response(header, body, now);
                None
            }
            Kind::CookieReply => sessions.on_cookie(body, now, &usable, &mut header_for),
            _ => None,
        };
        self.control.reply_to = None;
        let (out, built) = (out?, built?);
        // A response sent means the initiation checked out (its mac1, its Noise message and
        // a timestamp newer than any before; a cookie reply proves nothing): a learned
        // path's peer is where it came from.
        if built.header.kind == Kind::HandshakeResponse
            && self.table.paths[path].learned
            && bad_source(tables, rx.src).is_none()
        {
            self.table.learn(path, rx);
        }
        Some(self.control.frame(out.path, &built, &out.body, None))
    }

    /// Takes a reloaded table ([`TunnelTable::reconfigured`]) with its
    /// probe interval, hold-downs and BFD detection times: a path that stays
    /// keeps its health, meter and history; a path added carries nothing
    /// until the peer is heard on it ([`Health::added`]); a removed path's
    /// go.
    pub fn retable(&mut self, table: Arc<TunnelTable>, now: Time) {
        let carried = table.carried_from(&self.table);
        self.health = carry_over(std::mem::take(&mut self.health), &carried, |p| {
            Health::added(health_settings(&table, p), now)
        })
        .0;
        for (p, h) in self.health.iter_mut().enumerate() {
            // A path that stays keeps its BFD detection time as it runs (a `bfd set` or the
            // reload's own timer change set it already).
            let bfd_detect = match carried.get(p) {
                Some(Some(_)) => h.settings().bfd_detect,
                _ => health_settings(&table, p).bfd_detect,
            };
            h.set_settings(health::Settings {
                bfd_detect,
                ..health_settings(&table, p)
            });
        }
        self.meters.carry_over(&carried);
        self.carrier = carry_over(std::mem::take(&mut self.carrier), &carried, |_| true).0;
        let bucket = TokenBucket::with_burst(replies_per_sec(table.probe_interval), 4);
        self.replies = if table.probe_interval == self.table.probe_interval {
            carry_over(std::mem::take(&mut self.replies), &carried, |_| {
                bucket.clone()
            })
            .0
        } else {
            vec![bucket; carried.len()]
        };
        self.shaper_drops = carry_over(std::mem::take(&mut self.shaper_drops), &carried, |_| {
            (0, None)
        })
        .0;
        self.endpoints = carry_over(std::mem::take(&mut self.endpoints), &carried, |_| None).0;
        self.pace.set_interval(table.probe_interval);
        // A verdict given on the old table since the new one was made (the reload's own
        // BFD poll) moved the paths' flags but not the new table's word of them.
        table.resync_live_ids();
        self.control.table = Arc::clone(&table);
        self.table = table;
    }

    /// Path `path`'s BFD timers changed at run time: its detection time is
    /// `detect` now.
    pub fn set_bfd_detect(&mut self, path: usize, detect: Duration) {
        if let Some(h) = self.health.get_mut(path) {
            h.set_settings(health::Settings {
                bfd_detect: detect,
                ..h.settings()
            });
        }
    }

    /// Makes new sessions under `hs`'s keys (a reload changed them): a
    /// handshake starts at once, and the sessions made under the old keys
    /// carry traffic until it completes (or they expire).
    pub fn rekey(&mut self, hs: Handshaker, now: Time) {
        if let Some(s) = &mut self.sessions {
            s.rekey(hs, now);
        }
    }

    /// The tunnel table.
    pub fn table(&self) -> &Arc<TunnelTable> {
        &self.table
    }

    /// The next hops the paths need resolved, with their port.
    pub fn next_hops(&self) -> impl Iterator<Item = (Ipv4Addr, usize)> + '_ {
        (0..self.table.paths.len())
            .filter_map(|i| Some((self.table.next_hop(i)?, self.table.paths[i].port)))
    }

    /// The probe to send on `path` now, if its next hop is resolved. Also
    /// checks the path's carrier and silence, and republishes its figures.
    pub fn probe(
        &mut self,
        tables: &Tables,
        path: usize,
        carrier: bool,
        now: Time,
    ) -> Option<Frame> {
        if let Some(c) = self.carrier.get_mut(path) {
            *c = carrier;
        }
        self.note_shaper_drops(path, now);
        self.judge(path, now);
        self.publish(path, now);
        let key = self.seal_key(now).ok()?;
        let outer = self.control.outer(
            tables,
            path,
            Kind::Probe,
            key.as_ref().map_or(0, |k| k.id),
            now,
        )?;
        let mut payload = [0u8; ProbeRepr::LEN];
        ProbeRepr {
            number: self.meters.sent(path, now)?,
            rx_packets: self.rx_packets(path),
        }
        .emit(&mut payload);
        Some(self.control.frame(path, &outer, &payload, key.as_deref()))
    }

    /// A probe or probe reply arrived on port `in_port` (the pipeline said
    /// it is for our tunnel endpoint). A probe is answered on the path it
    /// came over; a reply feeds the meter. Returns the frame to send, if any.
    pub fn on_control(
        &mut self,
        tables: &Tables,
        frame: &[u8],
        in_port: usize,
        now: Time,
    ) -> Option<Frame> {
        let rx: Rx = encap::parse_rx(frame).ok()?;
        let path = self
            .table
            .rx_path(in_port, rx.src, rx.dst, rx.header.path)?;
        if rx.header.kind.is_handshake() {
            return self.on_handshake(tables, frame, &rx, path, now);
        }
        // The workers hand over only what they opened (or, in clear, what
        // came in clear); this holds it to that.
        if self.sessions.is_some() == (rx.header.key == 0) {
            return None;
        }
        match rx.header.kind {
            Kind::Probe => {
                let probe = ProbeRepr::parse(rx.payload(frame)).ok()?;
                self.peer_received(path, probe.rx_packets, now);
                if !self.replies.get_mut(path)?.take(now) {
                    return None;
                }
                let key = self.seal_key(now).ok()?;
                let mut payload = [0u8; ProbeReplyRepr::LEN];
                ProbeReplyRepr {
                    echo_number: probe.number,
                    echo_sent_us: rx.header.sent_us,
                    forward_us: now.as_micros_u32().wrapping_sub(rx.header.sent_us),
                    hold_us: 0,
                    rx_packets: self.rx_packets(path),
                }
                .emit(&mut payload);
                let kind = Kind::ProbeReply;
                self.control
                    .build(tables, path, kind, key.as_deref(), None, &payload, now)
            }
            Kind::ProbeReply => {
                let r = ProbeReplyRepr::parse(rx.payload(frame)).ok()?;
                self.meters
                    .reply(path, r.echo_number, r.forward_us, r.hold_us, now);
                self.peer_received(path, r.rx_packets, now);
                self.publish(path, now);
                None
            }
            _ => None,
        }
    }

    /// Tunnel packets received on `path` so far (all workers), as the wire
    /// carries it (wrapping).
    fn rx_packets(&self, path: usize) -> u32 {
        self.table
            .path_counters
            .get(path)
            .map_or(0, |c| c.total(|w| &w.rx_packets) as u32)
    }

    /// The peer reported `count` packets received from us on `path`.
    fn peer_received(&mut self, path: usize, count: u32, now: Time) {
        if let Some(h) = self.health.get_mut(path) {
            h.peer_received(count, now);
        }
        self.judge(path, now);
    }

    /// `path`'s BFD session changed state (`remote`: what the peer said).
    pub fn bfd_changed(
        &mut self,
        path: usize,
        from: BfdState,
        to: BfdState,
        remote: BfdState,
        now: Time,
    ) {
        self.note_shaper_drops(path, now);
        let Some(h) = self.health.get_mut(path) else {
            return;
        };
        log::info!(
            "tunnel path {}: BFD {from} -> {to} (peer {remote})",
            self.table.paths[path].name
        );
        let congested = self
            .shaper_drops
            .get(path)
            .and_then(|d| d.1)
            .is_some_and(|at| now.saturating_duration_since(at) < CONGESTED_WITHIN);
        if from == BfdState::Up && to == BfdState::Down && congested {
            self.table.live[path]
                .report
                .bfd_down_congested
                .fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "tunnel path {}: BFD went Down while our shaper's queue for it was full: \
                 congestion on our side, not (only) the link",
                self.table.paths[path].name
            );
        }
        h.bfd_changed(from, to, remote, now);
        self.judge(path, now);
    }

    /// Notes when `path`'s shaper last dropped for a full queue.
    fn note_shaper_drops(&mut self, path: usize, now: Time) {
        let drops = self.table.shaper_full_drops(path);
        if let Some(seen) = self.shaper_drops.get_mut(path) {
            if drops > seen.0 {
                *seen = (drops, Some(now));
            }
        }
    }

    /// Publishes `path`'s BFD session for reports.
    pub fn publish_bfd(&self, path: usize, status: SessionStatus) {
        if let Some(live) = self.table.live.get(path) {
            live.report.bfd.store(Some(Arc::new(status)));
        }
    }

    /// Decides whether `path` carries traffic (see [`crate::tunnel::health`])
    /// and publishes the decision to the workers and reports.
    fn judge(&mut self, path: usize, now: Time) {
        let rttvar = Duration::from_micros(self.meters.figures(path, now).rttvar_us);
        let carrier = self.carrier.get(path).copied().unwrap_or(true);
        let others_usable = self
            .table
            .live
            .iter()
            .enumerate()
            .any(|(i, l)| i != path && l.usable());
        let Some(h) = self.health.get_mut(path) else {
            return;
        };
        h.set_rttvar(rttvar);
        let overrides = (h.bfd_overrides(), h.silence_overrides());
        if let Some(Transition { from, to }) = h.judge(carrier, now, others_usable) {
            log::info!(
                "tunnel path {}: {from:?} -> {to:?}",
                self.table.paths[path].name
            );
        }
        if h.silence_overrides() > overrides.1 {
            log::warn!(
                "tunnel path {}: the peer's count stopped moving, but it is the last usable \
                 path: kept Up for up to {:?} (BFD, carrier and the peer's AdminDown still decide)",
                self.table.paths[path].name,
                crate::tunnel::health::LAST_PATH_SILENCE
            );
        }
        if h.bfd_overrides() > overrides.0 {
            log::warn!(
                "tunnel path {}: BFD says Down, but it is the last usable path and the data \
                 plane shows it delivering: kept Up",
                self.table.paths[path].name
            );
        }
        let h = &self.health[path];
        let live = &self.table.live[path];
        let cells = &live.report;
        cells.state.store(h.state().code(), Ordering::Relaxed);
        cells
            .since_ns
            .store(h.since().as_nanos(), Ordering::Relaxed);
        cells.flaps.store(h.flaps(), Ordering::Relaxed);
        cells.state_changes.store(h.changes(), Ordering::Relaxed);
        cells
            .bfd_overrides
            .store(h.bfd_overrides(), Ordering::Relaxed);
        cells
            .silence_overrides
            .store(h.silence_overrides(), Ordering::Relaxed);
        cells
            .hold_until_ns
            .store(h.hold_until().map_or(0, Time::as_nanos), Ordering::Relaxed);
        let configured = self.table.paths[path].rate_bps;
        let rate = (configured as f64 * h.rate_share(now)) as u64;
        live.rate_bps.store(rate.max(1), Ordering::Relaxed);
        self.table.set_up(path, h.state().carries());
    }

    /// Publishes `path`'s measurements: its forward delay (queueing
    /// included) to the workers' schedulers, the rest for reports. The
    /// delay is how `wlb` and `minrtt` steer around a queue: a path whose
    /// queue grows delivers later, so it gets less until its queue drains.
    fn publish(&mut self, path: usize, now: Time) {
        self.note_endpoint(path);
        let f = self.meters.figures(path, now);
        let live = &self.table.live[path];
        let us = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        live.delay_us.store(us(f.delay_us), Ordering::Relaxed);
        let cells = &live.report;
        cells.srtt_us.store(us(f.srtt_us), Ordering::Relaxed);
        cells.rttvar_us.store(us(f.rttvar_us), Ordering::Relaxed);
        cells.min_rtt_us.store(us(f.min_rtt_us), Ordering::Relaxed);
        cells
            .queueing_us
            .store(us(f.queueing_us), Ordering::Relaxed);
        cells.jitter_us.store(us(f.jitter_us), Ordering::Relaxed);
        cells
            .loss_ppm
            .store((f.loss * 1e6) as u32, Ordering::Relaxed);
        cells.probes_sent.store(f.probes_sent, Ordering::Relaxed);
        cells.replies.store(f.replies, Ordering::Relaxed);
    }

    /// Logs and counts a move of learned path `path`'s peer endpoint (the
    /// workers learn it; this looks at every publish, every probe interval).
    fn note_endpoint(&mut self, path: usize) {
        let (Some(p), Some(live)) = (self.table.paths.get(path), self.table.live.get(path)) else {
            return;
        };
        if !p.learned {
            return;
        }
        let now_at = live.learned_endpoint();
        let Some(seen) = self.endpoints.get_mut(path) else {
            return;
        };
        if *seen == now_at {
            return;
        }
        match (*seen, now_at) {
            (None, Some((ip, port))) => {
                log::info!("tunnel path {}: the peer is at {ip}:{port}", p.name);
            }
            (Some((a, b)), Some((ip, port))) => {
                live.report.endpoint_moves.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "tunnel path {}: the peer moved from {a}:{b} to {ip}:{port}",
                    p.name
                );
            }
            _ => {}
        }
        *seen = now_at;
    }

    /// Sets a path administratively down or up; returns its index, or
    /// `None` if there is no such path.
    pub fn set_admin(&self, i: usize, up: bool) {
        let (Some(p), Some(live)) = (self.table.paths.get(i), self.table.live.get(i)) else {
            return;
        };
        live.admin_up.store(up, Ordering::Relaxed);
        log::info!(
            "tunnel path {}: administratively {}",
            super::path_name(&self.table, &p.name),
            if up { "up" } else { "down" }
        );
    }

    /// The peer's public key (`None`: the tunnel is in clear).
    pub fn peer_key(&self) -> Option<PublicKey> {
        self.sessions.as_ref().map(|s| s.handshaker().peer())
    }

    /// The static key an initiation (its tunnel header and body) was sent
    /// from, if its mac1 is keyed with our key (one hash, checked first) and
    /// its Noise message opens under our key (`None` in clear).
    pub fn initiator_of(&self, header: &[u8], body: &[u8]) -> Option<PublicKey> {
        let hs = self.sessions.as_ref()?.handshaker();
        if !hs.mac1_ok(header, body) {
            return None;
        }
        hs.initiator_of(body)
    }

    /// Whether a handshake response or cookie reply (its body) answers our
    /// pending initiation.
    pub fn awaits(&self, kind: Kind, body: &[u8]) -> bool {
        self.sessions
            .as_ref()
            .is_some_and(|s| s.awaits(kind == Kind::HandshakeResponse, body))
    }

    /// Encapsulates one of our own packets (an Ethernet frame carrying IPv4)
    /// for the peer, on the usable path with the lowest delay.
    pub fn encapsulate(&mut self, tables: &Tables, frame: &[u8], now: Time) -> Option<Frame> {
        let path = (0..self.table.paths.len())
            .filter(|i| self.table.live[*i].usable())
            .min_by_key(|i| self.table.live[*i].delay_us.load(Ordering::Relaxed))?;
        let key = self.seal_key(now).ok()?;
        let mut outer = self.control.outer(
            tables,
            path,
            Kind::Data,
            key.as_ref().map_or(0, |k| k.id),
            now,
        )?;
        outer.tos = encap::inner_tos(frame);
        // The inner packet without its Ethernet header.
        let inner = frame.get(crate::wire::EthernetFrame::<&[u8]>::HEADER_LEN..)?;
        Some(self.control.frame(path, &outer, inner, key.as_deref()))
    }
}

/// Probe replies a path may send per second: twice the peer's probe rate
/// (the two appliances are configured alike), so a steady peer is always
/// answered.
/// Path `p`'s health settings in `table`.
fn health_settings(table: &TunnelTable, p: usize) -> health::Settings {
    let bfd = table.paths.get(p).map(|p| p.bfd);
    health::Settings {
        probe_interval: table.probe_interval,
        max_hold_down: table.max_hold_down,
        bfd_detect: bfd.filter(|b| b.enabled).map_or(Duration::ZERO, |b| {
            b.desired_min_tx.0.max(b.required_min_rx.0) * u32::from(b.detect_mult)
        }),
    }
}

fn replies_per_sec(probe_interval: Duration) -> u32 {
    let per_sec = 1.0 / probe_interval.as_secs_f64().max(1e-4);
    (2.0 * per_sec).ceil().min(f64::from(u32::MAX)) as u32
}

/// The 20 bytes of `outer`'s tunnel header.
fn header_bytes(outer: &Outer) -> [u8; 20] {
    let mut h = [0u8; 20];
    outer
        .header
        .emit(&mut TunnelPacket::new_unchecked(&mut h[..]));
    h
}
