//! One BFD session in asynchronous mode (RFC 5880 §6.8), as a pure state machine.
//!
//! The caller owns the sockets and the clock: it demultiplexes received packets
//! to `on_packet`, calls `poll` at or after `next_deadline`, and transmits what
//! `poll` returns. Every decision is derived from the `now` values passed in,
//! never from how often the caller calls in, so a caller that wakes up late
//! gets the same outcome as one that polls continuously. Within one loop
//! iteration, feed received packets before calling `poll`: packets that queued
//! up while the caller was busy then still count as proof of life.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use crate::wire::bfd::{BfdRepr, Diag, RxError, State};

/// Floor for the advertised Desired Min TX while not Up (RFC 5880 §6.8.3).
pub const SLOW_TX_US: u32 = 1_000_000;
/// State changes kept for `take_events`; older ones are dropped so that a
/// caller that never reads them cannot make memory grow.
pub const MAX_EVENTS: usize = 64;

/// Per-session configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// bfd.DesiredMinTxInterval while Up, in µs (0 is treated as 1: the RFC reserves 0).
    pub desired_min_tx_us: u32,
    /// bfd.RequiredMinRxInterval, in µs; 0 asks the peer not to send at all.
    pub required_min_rx_us: u32,
    /// bfd.DetectMult (0 is treated as 1: peers discard 0).
    pub detect_mult: u8,
    /// RFC 5883 multihop (TTL >= `min_ttl`) instead of RFC 5881 single hop (TTL == 255).
    pub multihop: bool,
    /// Lowest accepted TTL for multihop sessions.
    pub min_ttl: u8,
    /// Passive role: send nothing until the remote discriminator is known.
    pub passive: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
            detect_mult: 3,
            multihop: false,
            min_ttl: 254,
            passive: false,
        }
    }
}

/// A pair of local intervals, as advertised or as in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// Desired Min TX Interval, in µs.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, in µs.
    pub required_min_rx_us: u32,
}

/// What the remote system last told us about its timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteTimers {
    /// Its Desired Min TX Interval, in µs.
    pub desired_min_tx_us: u32,
    /// bfd.RemoteMinRxInterval, in µs (1 until heard from, as the RFC requires).
    pub required_min_rx_us: u32,
    /// Its Required Min Echo RX Interval, in µs.
    pub required_min_echo_rx_us: u32,
    /// Its Detect Mult (0 until heard from).
    pub detect_mult: u8,
    /// bfd.RemoteDemandMode.
    pub demand: bool,
}

/// One state transition, for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// The `now` of the call that made the change.
    pub at: u64,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// bfd.LocalDiag after the change.
    pub diag: Diag,
}

/// Session counters (discards are counted by the caller from `RxError`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Control packets handed out by `poll`.
    pub tx_packets: u64,
    /// Control packets accepted by `on_packet`.
    pub rx_packets: u64,
    /// All state transitions.
    pub state_changes: u64,
    /// Transitions out of Up.
    pub flaps: u64,
    /// `now` of the latest state change, if any.
    pub last_state_change: Option<u64>,
}

/// Discarded BFD packets, by RFC 5880 §6.8.6 reason (one counter per
/// [`RxError`]). Written by the management lcore, read by reports.
#[derive(Debug, Default)]
pub struct Discards([crate::stats::Counter; RxError::ALL.len()]);

impl Discards {
    /// Counts one discard.
    pub fn inc(&self, e: RxError) {
        if let Some(i) = RxError::ALL.iter().position(|r| *r == e) {
            self.0[i].inc();
        }
    }

    /// Reason name → count, every reason listed.
    pub fn snapshot(&self) -> std::collections::BTreeMap<&'static str, u64> {
        RxError::ALL
            .iter()
            .zip(&self.0)
            .map(|(r, c)| (r.name(), c.get()))
            .collect()
    }
}

/// What `show paths` shows of a session (FRR's `show bfd peers` fields).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionStatus {
    /// Our state.
    pub local_state: String,
    /// The peer's state as it last said.
    pub remote_state: String,
    /// Our diagnostic.
    pub local_diag: String,
    /// The peer's diagnostic.
    pub remote_diag: String,
    /// Our discriminator.
    pub local_discriminator: u32,
    /// The peer's discriminator (0 until learned).
    pub remote_discriminator: u32,
    /// Our Desired Min TX and Required Min RX as configured (µs).
    pub desired_min_tx_us: u32,
    /// Our Required Min RX (µs).
    pub required_min_rx_us: u32,
    /// Our Detect Mult.
    pub detect_mult: u8,
    /// The peer's Desired Min TX (µs).
    pub remote_desired_min_tx_us: u32,
    /// The peer's Required Min RX (µs).
    pub remote_required_min_rx_us: u32,
    /// The peer's Detect Mult.
    pub remote_detect_mult: u8,
    /// Negotiated transmit interval, before jitter (µs).
    pub tx_interval_us: u64,
    /// Detection time (µs; 0 until the peer is heard).
    pub detection_time_us: u64,
    /// RFC 5883 multihop rather than RFC 5881 single hop.
    pub multihop: bool,
    /// Control packets sent.
    pub tx_packets: u64,
    /// Control packets accepted.
    pub rx_packets: u64,
    /// Times the session left Up.
    pub flaps: u64,
    /// Our Poll Sequence (a timer change while Up) waits for the peer's Final.
    pub poll_in_progress: bool,
}

/// One BFD session (RFC 5880 asynchronous mode, no echo, no demand, no auth).
#[derive(Debug, Clone)]
pub struct Session {
    cfg: SessionConfig,
    rng: fastrand::Rng,
    state: State,
    local_diag: Diag,
    local_discr: u32,
    remote_discr: u32,
    remote_state: State,
    remote_diag: Diag,
    remote: RemoteTimers,
    /// What our packets carry (bfd.DesiredMinTxInterval, bfd.RequiredMinRxInterval).
    advertised: Intervals,
    /// What our TX interval and detection time use; lags `advertised` in the
    /// riskier direction until the peer acknowledges a Poll (RFC 5880 §6.8.3).
    in_force: Intervals,
    polling: bool,
    /// Set by a received Poll: a Final is owed, at once.
    final_due: Option<u64>,
    next_tx: u64,
    /// Time of the last accepted packet; `None` disarms the detection timer.
    last_rx: Option<u64>,
    counters: SessionCounters,
    events: Vec<StateChange>,
}

fn sanitize(mut cfg: SessionConfig) -> SessionConfig {
    cfg.desired_min_tx_us = cfg.desired_min_tx_us.max(1);
    cfg.detect_mult = cfg.detect_mult.max(1);
    cfg
}

impl Session {
    /// Creates a session in Down. `local_discr` must be unique among local
    /// sessions; 0 is invalid on the wire and is replaced by 1.
    pub fn new(cfg: SessionConfig, local_discr: u32, now: u64, rng: fastrand::Rng) -> Session {
        let slow = Intervals {
            desired_min_tx_us: SLOW_TX_US,
            required_min_rx_us: cfg.required_min_rx_us,
        };
        let mut s = Session {
            cfg: sanitize(cfg),
            rng,
            state: State::Down,
            local_diag: Diag::NoDiagnostic,
            local_discr: local_discr.max(1),
            remote_discr: 0,
            remote_state: State::Down,
            remote_diag: Diag::NoDiagnostic,
            remote: RemoteTimers {
                desired_min_tx_us: 0,
                required_min_rx_us: 1,
                required_min_echo_rx_us: 0,
                detect_mult: 0,
                demand: false,
            },
            advertised: slow,
            in_force: slow,
            polling: false,
            final_due: None,
            next_tx: now,
            last_rx: None,
            counters: SessionCounters::default(),
            events: Vec::new(),
        };
        s.retarget();
        s
    }

    /// Handles a packet already parsed and demultiplexed to this session,
    /// following RFC 5880 §6.8.6 from the A-bit rule on. `ttl` is the IP TTL
    /// (IPv6 hop limit) it arrived with. A discarded packet changes nothing.
    pub fn on_packet(&mut self, repr: &BfdRepr, ttl: u8, now: u64) -> Result<(), RxError> {
        let ttl_ok = if self.cfg.multihop {
            ttl >= self.cfg.min_ttl
        } else {
            ttl == 255
        };
        if !ttl_ok {
            return Err(RxError::BadTtl);
        }
        repr.check()?;
        if repr.your_discr != 0 && repr.your_discr != self.local_discr {
            return Err(RxError::UnknownDiscriminator);
        }

        self.counters.rx_packets += 1;
        self.remote_discr = repr.my_discr;
        self.remote_state = repr.state;
        self.remote_diag = repr.diag;
        self.remote = RemoteTimers {
            desired_min_tx_us: repr.desired_min_tx_us,
            required_min_rx_us: repr.required_min_rx_us,
            required_min_echo_rx_us: repr.required_min_echo_rx_us,
            detect_mult: repr.detect_mult,
            demand: repr.demand,
        };
        if self.polling && repr.final_ {
            self.polling = false;
            self.in_force = self.advertised;
            // A change made while this Poll was running gets its own Poll now.
            self.retarget();
        }
        // Restarted even in AdminDown (where §6.8.6 discards before this step)
        // so that the remote discriminator still ages out on silence.
        self.last_rx = Some(now);

        if self.state == State::AdminDown {
            return Ok(());
        }
        match (self.state, repr.state) {
            (State::Down, State::AdminDown) => {}
            (_, State::AdminDown) | (State::Up, State::Down) => {
                self.change_state(State::Down, Diag::NeighborSignaledSessionDown, now)
            }
            (State::Down, State::Down) => self.change_state(State::Init, Diag::NoDiagnostic, now),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.change_state(State::Up, Diag::NoDiagnostic, now)
            }
            _ => {}
        }
        if repr.poll {
            self.final_due = Some(now);
        }
        Ok(())
    }

    /// Runs the detection timer, then returns the packet to send now, if one
    /// is due: a Final owed to a received Poll, a packet announcing a state
    /// change, or the next jittered periodic packet (which carries P while a
    /// Poll Sequence is running).
    pub fn poll(&mut self, now: u64) -> Option<BfdRepr> {
        if let Some(deadline) = self.detection_deadline() {
            if now >= deadline {
                self.last_rx = None;
                self.remote_discr = 0;
                self.remote.demand = false;
                if matches!(self.state, State::Init | State::Up) {
                    self.change_state(State::Down, Diag::ControlDetectionTimeExpired, now);
                }
            }
        }
        let fin = self.final_due.is_some();
        let periodic_due = self.may_transmit_periodic() && now >= self.next_tx;
        if !(fin || periodic_due) {
            return None;
        }
        self.final_due = None;
        let repr = BfdRepr {
            diag: self.local_diag,
            state: self.state,
            // §6.5: never P and F together; P resumes on the next periodic packet.
            poll: self.polling && !fin,
            final_: fin,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.cfg.detect_mult,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx_us: self.advertised.desired_min_tx_us,
            required_min_rx_us: self.advertised.required_min_rx_us,
            required_min_echo_rx_us: 0,
        };
        // Scheduled from `now`, not from the missed deadline, so a late caller
        // never gets a burst of catch-up packets.
        self.next_tx = now.saturating_add(self.jittered_interval_ns());
        self.counters.tx_packets += 1;
        Some(repr)
    }

    /// The earliest `now` at which `poll` has work (a packet to send or the
    /// detection timer to expire); `u64::MAX` if nothing is pending.
    pub fn next_deadline(&self) -> u64 {
        let mut at = self.final_due.unwrap_or(u64::MAX);
        if self.may_transmit_periodic() {
            at = at.min(self.next_tx);
        }
        if let Some(d) = self.detection_deadline() {
            at = at.min(d);
        }
        at
    }

    /// Takes the session to AdminDown (diag AdministrativelyDown) or back to Down.
    pub fn set_admin_down(&mut self, down: bool, now: u64) {
        match (down, self.state) {
            (true, State::AdminDown) | (false, State::Down | State::Init | State::Up) => {}
            (true, _) => {
                self.final_due = None;
                self.change_state(State::AdminDown, Diag::AdministrativelyDown, now);
            }
            (false, State::AdminDown) => self.change_state(State::Down, Diag::NoDiagnostic, now),
        }
    }

    /// Changes the timers. While Up this starts a Poll Sequence carried on the
    /// next periodic packets (§6.5 forbids extra packets for it), which is why
    /// `now` is unused; a change made during a Poll waits for that Poll to finish.
    pub fn set_timers(
        &mut self,
        desired_min_tx_us: u32,
        required_min_rx_us: u32,
        detect_mult: u8,
        _now: u64,
    ) {
        self.cfg = sanitize(SessionConfig {
            desired_min_tx_us,
            required_min_rx_us,
            detect_mult,
            ..self.cfg
        });
        self.retarget();
    }

    /// Current bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.RemoteSessionState as last received.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// bfd.LocalDiag: why the local state last changed.
    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }

    /// The diag the remote system last sent.
    pub fn remote_diag(&self) -> Diag {
        self.remote_diag
    }

    /// bfd.LocalDiscr (never 0).
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    /// bfd.RemoteDiscr; 0 until learned or after a Detection Time of silence.
    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }

    /// The current configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Intervals our packets carry.
    pub fn advertised(&self) -> Intervals {
        self.advertised
    }

    /// Intervals our TX interval and detection time actually use.
    pub fn in_force(&self) -> Intervals {
        self.in_force
    }

    /// The remote timers as last received.
    pub fn remote_timers(&self) -> RemoteTimers {
        self.remote
    }

    /// Negotiated TX interval before jitter, in µs (§6.8.7).
    pub fn tx_interval_us(&self) -> u64 {
        u64::from(
            self.in_force
                .desired_min_tx_us
                .max(self.remote.required_min_rx_us),
        )
    }

    /// Detection time in µs (§6.8.4); 0 until the remote has been heard.
    pub fn detection_time_us(&self) -> u64 {
        let rx = self
            .in_force
            .required_min_rx_us
            .max(self.remote.desired_min_tx_us);
        u64::from(self.remote.detect_mult) * u64::from(rx)
    }

    /// When the detection timer expires, if it is armed.
    pub fn detection_deadline(&self) -> Option<u64> {
        let dt = self.detection_time_us().saturating_mul(1_000);
        self.last_rx.map(|t| t.saturating_add(dt))
    }

    /// Whether our own Poll Sequence is waiting for a Final.
    pub fn poll_in_progress(&self) -> bool {
        self.polling
    }

    /// Session counters.
    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// The session as `show paths` reports it.
    pub fn status(&self) -> SessionStatus {
        SessionStatus {
            local_state: self.state.to_string(),
            remote_state: self.remote_state.to_string(),
            local_diag: self.local_diag.to_string(),
            remote_diag: self.remote_diag.to_string(),
            local_discriminator: self.local_discr,
            remote_discriminator: self.remote_discr,
            desired_min_tx_us: self.cfg.desired_min_tx_us,
            required_min_rx_us: self.cfg.required_min_rx_us,
            detect_mult: self.cfg.detect_mult,
            remote_desired_min_tx_us: self.remote.desired_min_tx_us,
            remote_required_min_rx_us: self.remote.required_min_rx_us,
            remote_detect_mult: self.remote.detect_mult,
            tx_interval_us: self.tx_interval_us(),
            detection_time_us: self.detection_time_us(),
            multihop: self.cfg.multihop,
            tx_packets: self.counters.tx_packets,
            rx_packets: self.counters.rx_packets,
            flaps: self.counters.flaps,
            poll_in_progress: self.polling,
        }
    }

    /// Takes the state changes recorded since the last call (at most `MAX_EVENTS`).
    pub fn take_events(&mut self) -> Vec<StateChange> {
        std::mem::take(&mut self.events)
    }

    fn change_state(&mut self, to: State, diag: Diag, now: u64) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        self.counters.state_changes += 1;
        if from == State::Up {
            self.counters.flaps += 1;
        }
        self.counters.last_state_change = Some(now);
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(StateChange {
            at: now,
            from,
            to,
            diag,
        });
        // §6.8.7 SHOULD: tell the peer now rather than after a (slow) interval.
        self.next_tx = now;
        self.retarget();
    }

    /// Moves the local intervals toward what config and state ask for. Outside
    /// Up they apply at once (and a Poll is abandoned: nothing relies on them
    /// for detection of an established session); in Up they go through a Poll.
    fn retarget(&mut self) {
        let wanted = Intervals {
            desired_min_tx_us: if self.state == State::Up {
                self.cfg.desired_min_tx_us
            } else {
                self.cfg.desired_min_tx_us.max(SLOW_TX_US)
            },
            required_min_rx_us: self.cfg.required_min_rx_us,
        };
        if self.state != State::Up {
            self.polling = false;
            self.advertised = wanted;
            self.in_force = wanted;
        } else if !self.polling && wanted != self.advertised {
            // Faster TX and a longer detection time are safe at once; the
            // other directions wait for the Final.
            self.in_force = Intervals {
                desired_min_tx_us: self
                    .in_force
                    .desired_min_tx_us
                    .min(wanted.desired_min_tx_us),
                required_min_rx_us: self
                    .in_force
                    .required_min_rx_us
                    .max(wanted.required_min_rx_us),
            };
            self.advertised = wanted;
            self.polling = true;
        }
    }

    fn may_transmit_periodic(&self) -> bool {
        let passive_silent = self.cfg.passive && self.remote_discr == 0;
        let remote_demand = self.remote.demand
            && self.state == State::Up
            && self.remote_state == State::Up
            && !self.polling;
        !passive_silent && self.remote.required_min_rx_us != 0 && !remote_demand
    }

    fn jittered_interval_ns(&mut self) -> u64 {
        // §6.8.7: reduce by 0-25 %, or 10-25 % with Detect Mult 1. Drawing per
        // mille and multiplying µs by it yields nanoseconds directly.
        let per_mille = if self.cfg.detect_mult == 1 {
            self.rng.u64(750..=900)
        } else {
            self.rng.u64(750..=1000)
        };
        self.tx_interval_us().saturating_mul(per_mille)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::wire::bfd::BfdPacket;

    const MS: u64 = 1_000_000;
    const LOCAL: u32 = 1;
    const REMOTE: u32 = 2;

    fn sess(cfg: SessionConfig) -> Session {
        Session::new(cfg, LOCAL, 0, fastrand::Rng::with_seed(7))
    }

    fn pkt(state: State) -> BfdRepr {
        let down = matches!(state, State::Down | State::AdminDown);
        BfdRepr {
            diag: Diag::NoDiagnostic,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discr: REMOTE,
            your_discr: if down { 0 } else { LOCAL },
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
            required_min_echo_rx_us: 0,
        }
    }

    fn fin(state: State) -> BfdRepr {
        BfdRepr {
            final_: true,
            ..pkt(state)
        }
    }

    fn session_in(state: State) -> Session {
        let mut s = sess(SessionConfig::default());
        match state {
            State::AdminDown => s.set_admin_down(true, 0),
            State::Down => {}
            State::Init => s.on_packet(&pkt(State::Down), 255, 0).unwrap(),
            State::Up => {
                s.on_packet(&pkt(State::Down), 255, 0).unwrap();
                s.on_packet(&pkt(State::Up), 255, 0).unwrap();
            }
        }
        assert_eq!(s.state(), state);
        s
    }

    /// Up, with the Poll that coming Up started already answered.
    fn stable_up(at: u64) -> Session {
        let mut s = session_in(State::Up);
        s.on_packet(&fin(State::Up), 255, at).unwrap();
        assert!(!s.poll_in_progress());
        s
    }

    #[test]
    fn state_machine_follows_rfc_table() {
        use State::*;
        let nssd = Diag::NeighborSignaledSessionDown;
        let none = Diag::NoDiagnostic;
        #[rustfmt::skip]
        let table = [
            (Down, AdminDown, Down, none), (Down, Down, Init, none),
            (Down, Init, Up, none),        (Down, Up, Down, none),
            (Init, AdminDown, Down, nssd), (Init, Down, Init, none),
            (Init, Init, Up, none),        (Init, Up, Up, none),
            (Up, AdminDown, Down, nssd),   (Up, Down, Down, nssd),
            (Up, Init, Up, none),          (Up, Up, Up, none),
        ];
        for (from, rx, to, diag) in table {
            let mut s = session_in(from);
            s.on_packet(&pkt(rx), 255, MS).unwrap();
            assert_eq!((s.state(), s.local_diag()), (to, diag), "{from} + rx {rx}");
        }
        for rx in [AdminDown, Down, Init, Up] {
            let mut s = session_in(AdminDown);
            s.on_packet(&pkt(rx), 255, MS).unwrap();
            assert_eq!(s.state(), AdminDown, "AdminDown ignores rx {rx}");
        }
    }

    #[test]
    fn detection_expiry_goes_down_with_diag_1_and_forgets_remote() {
        let mut s = stable_up(0);
        assert_eq!(s.detection_deadline(), Some(300 * MS));
        assert!(s.next_deadline() <= 100 * MS);
        s.poll(300 * MS - 1);
        assert_eq!(s.state(), State::Up);
        let p = s.poll(300 * MS).expect("state change is announced at once");
        assert_eq!(
            (p.state, p.diag),
            (State::Down, Diag::ControlDetectionTimeExpired)
        );
        assert_eq!(p.your_discr, 0);
        assert_eq!(s.remote_discr(), 0);
        assert_eq!(s.detection_deadline(), None);
    }

    #[test]
    fn slow_tx_while_not_up_then_configured_value_with_poll() {
        let mut s = sess(SessionConfig::default());
        let p = s.poll(0).expect("first packet at once");
        assert_eq!(
            (p.state, p.desired_min_tx_us, p.poll),
            (State::Down, 1_000_000, false)
        );
        let next = s.next_deadline();
        assert!((750 * MS..=1000 * MS).contains(&next), "{next}");

        s.on_packet(&pkt(State::Down), 255, 10 * MS).unwrap();
        assert_eq!(s.next_deadline(), 10 * MS, "state change is sent at once");
        let p = s.poll(10 * MS).unwrap();
        assert_eq!((p.state, p.desired_min_tx_us), (State::Init, 1_000_000));
        assert_eq!(s.tx_interval_us(), 1_000_000);

        s.on_packet(&pkt(State::Up), 255, 20 * MS).unwrap();
        let p = s.poll(20 * MS).unwrap();
        assert_eq!(
            (p.state, p.desired_min_tx_us, p.poll),
            (State::Up, 100_000, true)
        );
        assert_eq!(s.tx_interval_us(), 100_000, "faster TX applies at once");
        assert!(s.next_deadline() <= 120 * MS);
        // Going down again: back to the slow rate, no Poll.
        s.on_packet(&pkt(State::Down), 255, 30 * MS).unwrap();
        let p = s.poll(30 * MS).unwrap();
        assert_eq!(
            (p.state, p.desired_min_tx_us, p.poll),
            (State::Down, 1_000_000, false)
        );
        assert!(!s.poll_in_progress());
    }

    fn tx_intervals(cfg: SessionConfig, n: usize) -> Vec<u64> {
        let mut s = sess(cfg);
        s.on_packet(&pkt(State::Down), 255, 0).unwrap();
        let slow_remote = BfdRepr {
            detect_mult: 255, // keeps the detection timer out of the way
            ..fin(State::Up)
        };
        s.on_packet(&slow_remote, 255, 0).unwrap();
        assert_eq!(s.state(), State::Up);
        let mut t = s.next_deadline();
        s.poll(t).unwrap();
        (0..n)
            .map(|_| {
                let next = s.next_deadline();
                assert!(s.poll(next - 1).is_none());
                assert!(s.poll(next).is_some());
                let d = next - t;
                t = next;
                d
            })
            .collect()
    }

    #[test]
    fn jitter_stays_within_rfc_bounds() {
        let v = tx_intervals(SessionConfig::default(), 200);
        assert!(v.iter().all(|d| (75 * MS..=100 * MS).contains(d)));
        assert!(*v.iter().min().unwrap() < 78 * MS && *v.iter().max().unwrap() > 97 * MS);
        let cfg = SessionConfig {
            detect_mult: 1,
            ..SessionConfig::default()
        };
        let v = tx_intervals(cfg, 200);
        assert!(v.iter().all(|d| (75 * MS..=90 * MS).contains(d)));
        assert!(*v.iter().max().unwrap() > 87 * MS);
    }

    #[test]
    fn remote_min_rx_zero_stops_periodic_tx_but_not_final() {
        let mut s = stable_up(0);
        let quiet = BfdRepr {
            required_min_rx_us: 0,
            ..pkt(State::Up)
        };
        s.on_packet(&quiet, 255, MS).unwrap();
        for t in (MS..250 * MS).step_by(MS as usize) {
            assert!(s.poll(t).is_none());
        }
        assert_eq!(s.next_deadline(), s.detection_deadline().unwrap());
        let polled = BfdRepr {
            poll: true,
            ..quiet
        };
        s.on_packet(&polled, 255, 250 * MS).unwrap();
        assert!(s.poll(250 * MS).unwrap().final_);
    }

    #[test]
    fn remote_demand_stops_periodic_tx() {
        let mut s = stable_up(0);
        let demand = BfdRepr {
            demand: true,
            ..pkt(State::Up)
        };
        s.on_packet(&demand, 255, MS).unwrap();
        assert!((MS..200 * MS)
            .step_by(MS as usize)
            .all(|t| s.poll(t).is_none()));
    }

    #[test]
    fn passive_stays_silent_until_remote_known() {
        let cfg = SessionConfig {
            passive: true,
            ..SessionConfig::default()
        };
        let mut s = sess(cfg);
        for t in (0..5_000 * MS).step_by(10 * MS as usize) {
            assert!(s.poll(t).is_none());
        }
        assert_eq!(s.next_deadline(), u64::MAX);
        s.on_packet(&pkt(State::Down), 255, 5_000 * MS).unwrap();
        let p = s.poll(5_000 * MS).unwrap();
        assert_eq!((p.state, p.your_discr), (State::Init, REMOTE));
    }

    #[test]
    fn detection_time_is_remote_mult_times_slower_of_rx_and_remote_tx() {
        let mut s = stable_up(0);
        let slow = BfdRepr {
            detect_mult: 5,
            desired_min_tx_us: 300_000,
            ..pkt(State::Up)
        };
        s.on_packet(&slow, 255, MS).unwrap();
        assert_eq!(s.detection_time_us(), 1_500_000);
        assert_eq!(s.detection_deadline(), Some(MS + 1_500 * MS));
        let fast = BfdRepr {
            desired_min_tx_us: 50_000,
            ..slow
        };
        s.on_packet(&fast, 255, 2 * MS).unwrap();
        assert_eq!(s.detection_time_us(), 500_000);
    }

    #[test]
    fn received_poll_is_answered_with_final_at_once() {
        let mut s = stable_up(0);
        s.poll(0).unwrap();
        assert!(s.next_deadline() >= 75 * MS);
        let polled = BfdRepr {
            poll: true,
            ..pkt(State::Up)
        };
        s.on_packet(&polled, 255, 10 * MS).unwrap();
        assert_eq!(s.next_deadline(), 10 * MS);
        let p = s.poll(10 * MS).unwrap();
        assert!(p.final_ && !p.poll);
        assert!(s.poll(10 * MS).is_none(), "one Final per Poll");
    }

    #[test]
    fn poll_repeats_until_final_and_slower_tx_waits_for_it() {
        let mut s = stable_up(0);
        s.poll(0).unwrap();
        let before = s.next_deadline();
        s.set_timers(300_000, 100_000, 3, MS);
        assert!(s.poll_in_progress());
        assert_eq!(
            s.next_deadline(),
            before,
            "§6.5: no extra packet for a Poll"
        );
        let mut t = before;
        for _ in 0..5 {
            s.on_packet(&pkt(State::Up), 255, t).unwrap(); // keeps detection quiet
            let p = s.poll(t).unwrap();
            assert!(p.poll && p.desired_min_tx_us == 300_000);
            assert_eq!(s.tx_interval_us(), 100_000, "old interval until Final");
            assert!(s.next_deadline() - t <= 100 * MS);
            t = s.next_deadline();
        }
        s.on_packet(&fin(State::Up), 255, t).unwrap();
        assert!(!s.poll_in_progress());
        assert_eq!(s.tx_interval_us(), 300_000);
        let p = s.poll(t).unwrap();
        assert!(!p.poll);
        assert!(s.next_deadline() - t >= 225 * MS);
    }

    #[test]
    fn smaller_required_rx_waits_for_final_larger_applies_at_once() {
        let mut s = stable_up(0);
        let fast = BfdRepr {
            desired_min_tx_us: 50_000,
            ..pkt(State::Up)
        };
        s.on_packet(&fast, 255, MS).unwrap();
        assert_eq!(s.detection_time_us(), 300_000);
        s.set_timers(100_000, 50_000, 3, 2 * MS);
        assert_eq!(s.advertised().required_min_rx_us, 50_000);
        assert_eq!(s.detection_time_us(), 300_000, "old RX until Final");
        s.on_packet(
            &BfdRepr {
                final_: true,
                ..fast
            },
            255,
            3 * MS,
        )
        .unwrap();
        assert_eq!(s.detection_time_us(), 150_000);

        s.set_timers(100_000, 200_000, 3, 4 * MS);
        assert!(s.poll_in_progress());
        assert_eq!(
            s.detection_time_us(),
            600_000,
            "longer detection is safe at once"
        );
    }

    #[test]
    fn change_during_poll_gets_its_own_poll() {
        let mut s = stable_up(0);
        s.set_timers(200_000, 100_000, 3, MS);
        s.set_timers(300_000, 100_000, 3, 2 * MS);
        assert_eq!(s.advertised().desired_min_tx_us, 200_000);
        s.on_packet(&fin(State::Up), 255, 3 * MS).unwrap();
        assert_eq!(s.in_force().desired_min_tx_us, 200_000);
        assert!(s.poll_in_progress());
        assert_eq!(s.advertised().desired_min_tx_us, 300_000);
        s.on_packet(&fin(State::Up), 255, 4 * MS).unwrap();
        assert_eq!(s.in_force().desired_min_tx_us, 300_000);
        assert!(!s.poll_in_progress());
    }

    #[test]
    fn ttl_rules_single_hop_and_multihop() {
        let mut s = session_in(State::Down);
        assert_eq!(s.on_packet(&pkt(State::Down), 254, 0), Err(RxError::BadTtl));
        assert_eq!(s.on_packet(&pkt(State::Down), 1, 0), Err(RxError::BadTtl));
        let cfg = SessionConfig {
            multihop: true,
            min_ttl: 250,
            ..SessionConfig::default()
        };
        let mut m = sess(cfg);
        assert_eq!(m.on_packet(&pkt(State::Down), 249, 0), Err(RxError::BadTtl));
        assert_eq!(m.on_packet(&pkt(State::Down), 250, 0), Ok(()));
        assert_eq!(s.counters().rx_packets + m.counters().rx_packets, 1);
    }

    #[test]
    fn invalid_or_foreign_reprs_are_rejected() {
        let mut s = session_in(State::Init);
        let cases = [
            (
                BfdRepr {
                    your_discr: 99,
                    ..pkt(State::Up)
                },
                RxError::UnknownDiscriminator,
            ),
            (
                BfdRepr {
                    my_discr: 0,
                    ..pkt(State::Up)
                },
                RxError::ZeroMyDiscriminator,
            ),
            (
                BfdRepr {
                    detect_mult: 0,
                    ..pkt(State::Up)
                },
                RxError::ZeroDetectMult,
            ),
            (
                BfdRepr {
                    your_discr: 0,
                    ..pkt(State::Up)
                },
                RxError::YourDiscriminatorZeroNotDown,
            ),
        ];
        for (r, e) in cases {
            assert_eq!(s.on_packet(&r, 255, MS), Err(e));
        }
        assert_eq!(s.state(), State::Init);
    }

    #[test]
    fn admin_down_is_announced_and_left_cleanly() {
        let mut s = stable_up(0);
        s.poll(0).unwrap();
        s.set_admin_down(true, 5 * MS);
        let p = s.poll(5 * MS).unwrap();
        assert_eq!(
            (p.state, p.diag),
            (State::AdminDown, Diag::AdministrativelyDown)
        );
        assert_eq!(p.desired_min_tx_us, SLOW_TX_US);
        s.on_packet(&pkt(State::Up), 255, 6 * MS).unwrap();
        assert_eq!(s.state(), State::AdminDown);
        s.set_admin_down(false, 7 * MS);
        let p = s.poll(7 * MS).unwrap();
        assert_eq!((p.state, p.diag), (State::Down, Diag::NoDiagnostic));
    }

    #[test]
    fn zero_local_discriminator_is_never_used() {
        let s = Session::new(SessionConfig::default(), 0, 0, fastrand::Rng::with_seed(1));
        assert_eq!(s.local_discr(), 1);
    }

    #[test]
    fn counters_and_events() {
        let mut s = session_in(State::Up);
        s.poll(300 * MS); // nothing since t=0: detection expires
        let ev = s.take_events();
        let seq: Vec<_> = ev.iter().map(|e| (e.from, e.to, e.diag)).collect();
        assert_eq!(
            seq,
            [
                (State::Down, State::Init, Diag::NoDiagnostic),
                (State::Init, State::Up, Diag::NoDiagnostic),
                (State::Up, State::Down, Diag::ControlDetectionTimeExpired),
            ]
        );
        assert_eq!(ev[2].at, 300 * MS);
        assert!(s.take_events().is_empty());
        let c = s.counters();
        assert_eq!((c.rx_packets, c.tx_packets), (2, 1));
        assert_eq!(
            (c.state_changes, c.flaps, c.last_state_change),
            (3, 1, Some(300 * MS))
        );
    }

    #[test]
    fn flood_of_discarded_packets_does_not_disturb() {
        let mut s = stable_up(0);
        s.take_events();
        let mut junk = [0u8; 24];
        pkt(State::Up).emit(&mut BfdPacket::new_unchecked(&mut junk[..]));
        junk[0] = 0x40; // version 2
        assert_eq!(
            BfdRepr::parse(&BfdPacket::new_unchecked(&junk[..])),
            Err(RxError::BadVersion)
        );
        let bad = [
            (
                BfdRepr {
                    poll: true,
                    ..pkt(State::Down)
                },
                254,
            ), // Down + P with bad TTL
            (
                BfdRepr {
                    your_discr: 77,
                    ..pkt(State::AdminDown)
                },
                255,
            ),
            (
                BfdRepr {
                    my_discr: 0,
                    ..pkt(State::Down)
                },
                255,
            ),
        ];
        let mut last_valid = 0;
        for t in (MS..3_000 * MS).step_by(MS as usize) {
            for (r, ttl) in &bad {
                assert!(s.on_packet(r, *ttl, t).is_err());
            }
            // Valid packets for the first 2 s only.
            if t % (100 * MS) == 0 && t <= 2_000 * MS {
                s.on_packet(&pkt(State::Up), 255, t).unwrap();
                last_valid = t;
            }
            if let Some(p) = s.poll(t) {
                assert!(!p.final_, "a discarded Poll must not be answered");
            }
            if t < last_valid + 300 * MS {
                assert_eq!(s.state(), State::Up, "t={t}");
                assert_eq!(s.detection_deadline(), Some(last_valid + 300 * MS));
            }
        }
        let ev = s.take_events();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].at, ev[0].diag),
            (2_300 * MS, Diag::ControlDetectionTimeExpired)
        );
        assert_eq!(s.counters().rx_packets, 3 + 20);
    }

    #[test]
    fn late_polls_do_not_flap() {
        let mut s = stable_up(0);
        let mut next_rx = 100 * MS;
        let mut next_poll = s.next_deadline() + 30 * MS;
        while next_rx.min(next_poll) < 10_000 * MS {
            if next_rx <= next_poll {
                s.on_packet(&pkt(State::Up), 255, next_rx).unwrap();
                next_rx += 100 * MS;
            } else {
                s.poll(next_poll);
                next_poll = s.next_deadline() + 30 * MS;
            }
        }
        assert_eq!(s.state(), State::Up);
        assert_eq!(s.counters().flaps, 0);
        assert!(s.counters().tx_packets > 70);
    }

    #[test]
    fn expiry_depends_on_time_not_on_poll_count() {
        let mut busy = stable_up(0);
        let mut lazy = busy.clone();
        for t in (0..300 * MS).step_by((MS / 10) as usize) {
            busy.poll(t);
        }
        lazy.poll(299 * MS);
        assert_eq!((busy.state(), lazy.state()), (State::Up, State::Up));
        busy.poll(300 * MS);
        lazy.poll(300 * MS);
        assert_eq!((busy.state(), lazy.state()), (State::Down, State::Down));
        let lazy_ev = lazy.take_events();
        assert_eq!(busy.take_events().last(), lazy_ev.last());
    }

    /// Two sessions joined by a lossy, delayed link, stepped 1 ms at a time,
    /// every packet going through emit and parse.
    struct Pair {
        a: Session,
        b: Session,
        now: u64,
        delay: u64,
        a_to_b: Vec<(u64, [u8; 24])>,
        b_to_a: Vec<(u64, [u8; 24])>,
        drop_a_to_b: bool,
    }

    impl Pair {
        fn new(discr_a: u32, discr_b: u32) -> Pair {
            let cfg = SessionConfig::default();
            Pair {
                a: Session::new(cfg, discr_a, 0, fastrand::Rng::with_seed(1)),
                b: Session::new(cfg, discr_b, 0, fastrand::Rng::with_seed(2)),
                now: 0,
                delay: 2 * MS,
                a_to_b: Vec::new(),
                b_to_a: Vec::new(),
                drop_a_to_b: false,
            }
        }

        fn deliver(q: &mut Vec<(u64, [u8; 24])>, s: &mut Session, now: u64) {
            while q.first().is_some_and(|(at, _)| *at <= now) {
                let (_, bytes) = q.remove(0);
                let r = BfdRepr::parse(&BfdPacket::new_checked(&bytes[..]).unwrap()).unwrap();
                s.on_packet(&r, 255, now).unwrap();
            }
        }

        fn send(s: &mut Session, q: &mut Vec<(u64, [u8; 24])>, now: u64, delay: u64, drop: bool) {
            let due = now >= s.next_deadline();
            let out = s.poll(now);
            assert!(due || out.is_none(), "poll did work before next_deadline");
            if let (Some(r), false) = (out, drop) {
                let mut bytes = [0u8; 24];
                r.emit(&mut BfdPacket::new_unchecked(&mut bytes[..]));
                q.push((now + delay, bytes));
            }
        }

        fn step(&mut self) {
            self.now += MS;
            Self::deliver(&mut self.a_to_b, &mut self.b, self.now);
            Self::deliver(&mut self.b_to_a, &mut self.a, self.now);
            let drop = self.drop_a_to_b;
            Self::send(&mut self.a, &mut self.a_to_b, self.now, self.delay, drop);
            Self::send(&mut self.b, &mut self.b_to_a, self.now, self.delay, false);
        }

        /// Steps until `cond` holds; returns the elapsed time, or panics after `limit_ms`.
        fn run_until(&mut self, limit_ms: u64, cond: impl Fn(&Pair) -> bool) -> u64 {
            let start = self.now;
            for _ in 0..limit_ms {
                if cond(self) {
                    return self.now - start;
                }
                self.step();
            }
            panic!("condition not met within {limit_ms} ms");
        }

        fn run_for(&mut self, ms: u64) {
            (0..ms).for_each(|_| self.step());
        }

        fn both(&self, st: State) -> bool {
            self.a.state() == st && self.b.state() == st
        }

        fn settled_up(&self) -> bool {
            self.both(State::Up) && !self.a.poll_in_progress() && !self.b.poll_in_progress()
        }
    }

    #[test]
    fn pair_with_identical_discriminators_comes_up() {
        let mut p = Pair::new(42, 42);
        let t = p.run_until(100, Pair::settled_up);
        assert!(t <= 20 * MS, "state changes are sent at once: {t}");
        assert_eq!((p.a.remote_discr(), p.b.remote_discr()), (42, 42));
        assert_eq!(
            (p.a.tx_interval_us(), p.b.tx_interval_us()),
            (100_000, 100_000)
        );
        p.run_for(5_000);
        assert!(p.settled_up());
        assert_eq!(p.a.counters().flaps + p.b.counters().flaps, 0);
        assert!(p.a.counters().rx_packets > 45);
    }

    #[test]
    fn pair_one_way_loss_then_recovery() {
        let mut p = Pair::new(10, 20);
        p.run_until(100, Pair::settled_up);
        p.run_for(1_000);
        p.drop_a_to_b = true;
        let t = p.run_until(1_000, |p| p.b.state() == State::Down);
        // Last packet from A arrived at most one TX interval (+ delay) before the
        // cut; detection is 3 x 100 ms after it.
        assert!(t > 200 * MS && t <= 300 * MS + p.delay + MS, "{t}");
        assert_eq!(p.b.local_diag(), Diag::ControlDetectionTimeExpired);
        p.run_until(10, |p| p.a.state() != State::Up);
        assert_eq!(p.a.local_diag(), Diag::NeighborSignaledSessionDown);
        p.run_for(3_000);
        assert_ne!(p.b.state(), State::Up);

        p.drop_a_to_b = false;
        let t = p.run_until(3_000, Pair::settled_up);
        // A's next slow (<= 1 s) Init packet, the handshake, then one fast
        // interval for A's own Poll.
        assert!(t <= 1_150 * MS, "{t}");
        assert_eq!(
            (p.a.tx_interval_us(), p.b.tx_interval_us()),
            (100_000, 100_000)
        );
    }

    #[test]
    fn pair_timer_change_uses_poll_final() {
        let mut p = Pair::new(10, 20);
        p.run_until(100, Pair::settled_up);
        let changes = p.a.counters().state_changes + p.b.counters().state_changes;
        p.a.set_timers(300_000, 300_000, 3, p.now);
        assert!(p.a.poll_in_progress());
        p.run_until(500, |p| !p.a.poll_in_progress());
        p.run_for(2_000);
        assert!(p.settled_up());
        assert_eq!(
            p.a.counters().state_changes + p.b.counters().state_changes,
            changes
        );
        assert_eq!(
            (p.a.tx_interval_us(), p.b.tx_interval_us()),
            (300_000, 300_000)
        );
        assert_eq!(
            (p.a.detection_time_us(), p.b.detection_time_us()),
            (900_000, 900_000)
        );
    }

    #[test]
    fn pair_admin_down_is_signalled() {
        let mut p = Pair::new(10, 20);
        p.run_until(100, Pair::settled_up);
        p.a.set_admin_down(true, p.now);
        let t = p.run_until(20, |p| p.b.state() == State::Down);
        assert!(t <= p.delay + MS);
        assert_eq!(p.b.local_diag(), Diag::NeighborSignaledSessionDown);
        assert_eq!(p.b.remote_diag(), Diag::AdministrativelyDown);
        assert_eq!(p.b.remote_state(), State::AdminDown);
        p.run_for(5_000);
        assert_eq!((p.a.state(), p.b.state()), (State::AdminDown, State::Down));
        assert_eq!(p.b.counters().flaps, 1);
        p.a.set_admin_down(false, p.now);
        p.run_until(2_500, Pair::settled_up);
    }
}
