//! Whether a path may carry traffic: the management lcore's decision for one
//! path, from four inputs, as a pure state machine (no I/O, no clock of its
//! own).
//!
//! - **The data plane**: every probe and probe reply the peer sends carries
//!   how many tunnel packets it has received from us on the path. While
//!   that count moves, what we send arrives. When it stops moving for three
//!   probe intervals plus four round-trip deviations plus 5 ms, the path is
//!   out (`no_replies`): with the default 10 ms probes, a silent blackhole
//!   is left within about 40 ms, well ahead of BFD.
//! - **Carrier**: the WAN port's link state (`no_carrier`).
//! - **BFD**, the authority on the session: a session that was Up and goes
//!   Down takes the path out (`bfd_down`); if the peer said AdminDown, the
//!   peer took the path down on purpose and it leaves gracefully
//!   (`peer_admin_down`, until the session is Up again). One exception:
//!   BFD alone does not take out the **last usable path while the data
//!   plane shows it delivering** (the peer's count moved within two probe
//!   intervals). A full queue on the one link left drops BFD packets like
//!   any others; taking that link out would leave no path at all, where the
//!   data plane proves packets still arrive. The path stays Up, the
//!   override is counted (`bfd_overrides`), and BFD wins again as soon as
//!   another path is usable or the data plane goes silent.
//! - Nor does a **silence alone take out the last usable path** before
//!   [`LAST_PATH_SILENCE`]: with no other path, leaving gains nothing, and a
//!   stall of the peer or of a busy machine (tens of milliseconds) would cost
//!   a flap, the hold-down after it and every packet meanwhile (dropped as
//!   `tunnel_no_path`). BFD Down on a silent path, carrier loss and the
//!   peer's AdminDown still take it out at once. Counted
//!   (`silence_overrides`).
//! - **Dampening** (RFC 5882 §3.2): a path that fails again soon after it
//!   came back is kept out after it recovers (`hold_down`) for 1 s, then 2 s,
//!   4 s … up to `max_hold_down`; each 10 s it stays up forgives one flap.
//!
//! A path comes back when the peer's count has moved in three reports in a
//! row (after its hold-down). A path BFD took down also comes back without
//! waiting for BFD once the data plane has delivered without a gap for one
//! BFD detection time: a BFD session that is down transmits only once a
//! second (RFC 5880 §6.8.3), which would hold a healed path out for up to a
//! second more than it needs. A path that comes back starts at a quarter of
//! its rate and ramps to all of it (see [`Health::rate_share`]), so that
//! `wlb` does not pour a burst into a queue it knows nothing about yet.

use std::time::Duration;

use super::PathState;

/// The longest the last usable path stays Up while the peer's count does not
/// move (BFD, carrier or AdminDown aside).
pub const LAST_PATH_SILENCE: Duration = Duration::from_secs(1);
use crate::time::Time;
use crate::wire::bfd::State as BfdState;

/// Reports in a row with progress that bring a path back.
pub const UP_AFTER_PROGRESS: u32 = 3;
/// Up this long forgives one flap of the dampening streak.
pub const FORGIVE_AFTER: Duration = Duration::from_secs(10);
/// The first hold-down (after the second flap in a row).
pub const FIRST_HOLD_DOWN: Duration = Duration::from_secs(1);
/// Share of its rate a recovered path starts with.
pub const RAMP_START: f64 = 0.25;
/// Shortest ramp from [`RAMP_START`] to the whole rate.
pub const MIN_RAMP: Duration = Duration::from_millis(250);

/// The path's settings (a reload or a BFD timer change replaces them).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How often the path is probed (the peer reports as often).
    pub probe_interval: Duration,
    /// Longest hold-down.
    pub max_hold_down: Duration,
    /// The path's BFD detection time as configured (Detect Mult × the
    /// slower of its intervals, as last changed); zero without BFD.
    pub bfd_detect: Duration,
}

impl Settings {
    /// How long the ramp of a recovered path lasts.
    pub fn ramp(&self) -> Duration {
        (self.probe_interval * 10).max(MIN_RAMP)
    }

    /// The hold-down after `streak` flaps in a row: none for the first, then
    /// 1 s doubling up to `max_hold_down`.
    pub fn hold_down(&self, streak: u32) -> Duration {
        if streak <= 1 {
            return Duration::ZERO;
        }
        let doublings = (streak - 2).min(20);
        (FIRST_HOLD_DOWN * (1u32 << doublings)).min(self.max_hold_down)
    }
}

/// A state change, for the log and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Before.
    pub from: PathState,
    /// After.
    pub to: PathState,
}

/// One path's health.
#[derive(Debug, Clone)]
pub struct Health {
    settings: Settings,
    state: PathState,
    since: Time,
    /// The peer's last count of packets received from us.
    peer_rx: Option<u32>,
    /// When that count last moved.
    progress: Time,
    /// Consecutive reports in which it moved.
    progress_in_row: u32,
    /// Start of the current run of progress without a silence.
    delivering_since: Option<Time>,
    /// When BFD took the path down (cleared when it is Up again, or when the
    /// data plane has delivered for a detection time since).
    bfd_down_at: Option<Time>,
    /// The current BFD Down is being overridden (counted once).
    bfd_overridden: bool,
    /// BFD Downs overridden so far (see the module doc).
    bfd_overrides: u64,
    /// The current silence is being overridden (counted once).
    silence_overridden: bool,
    /// Silences of the last usable path overridden so far.
    silence_overrides: u64,
    /// The peer's BFD said AdminDown.
    peer_admin_down: bool,
    /// Times the path left Up.
    flaps: u64,
    /// State changes.
    changes: u64,
    /// Flaps in a row (dampening).
    streak: u32,
    /// When it last became Up.
    up_since: Time,
    /// While in `HoldDown`: when it ends.
    hold_until: Option<Time>,
    /// When a recovered path came back (its rate ramps from there).
    ramp_from: Option<Time>,
    /// The round-trip deviation the silence threshold allows for.
    rttvar: Duration,
}

impl Health {
    /// A path at start: `Starting` carries traffic until the peer is heard
    /// or the silence threshold passes.
    pub fn new(settings: Settings, now: Time) -> Self {
        Self {
            settings,
            state: PathState::Starting,
            since: now,
            peer_rx: None,
            progress: now,
            progress_in_row: 0,
            delivering_since: None,
            bfd_down_at: None,
            bfd_overridden: false,
            bfd_overrides: 0,
            silence_overridden: false,
            silence_overrides: 0,
            peer_admin_down: false,
            flaps: 0,
            changes: 0,
            streak: 0,
            up_since: now,
            hold_until: None,
            ramp_from: None,
            rttvar: Duration::ZERO,
        }
    }

    /// A path a reload added: unlike at start, when both sites begin
    /// together, the peer may not know it yet, so it carries nothing until
    /// the peer is heard on it (then it comes up through the ramp).
    pub fn added(settings: Settings, now: Time) -> Self {
        Self {
            state: PathState::NoReplies,
            ..Self::new(settings, now)
        }
    }

    /// Takes new settings; the state and its history stay.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The state.
    pub fn state(&self) -> PathState {
        self.state
    }

    /// When it entered the state.
    pub fn since(&self) -> Time {
        self.since
    }

    /// Times it left Up.
    pub fn flaps(&self) -> u64 {
        self.flaps
    }

    /// State changes.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// When the hold-down ends, while in it.
    pub fn hold_until(&self) -> Option<Time> {
        self.hold_until
    }

    /// The round-trip deviation to allow for (from the path's meter).
    pub fn set_rttvar(&mut self, rttvar: Duration) {
        self.rttvar = rttvar;
    }

    /// How long the count may stand still before the path is out.
    pub fn silence_limit(&self) -> Duration {
        self.settings.probe_interval * 3 + self.rttvar * 4 + Duration::from_millis(5)
    }

    /// The peer reported `count` packets received from us.
    pub fn peer_received(&mut self, count: u32, now: Time) {
        if self.peer_rx != Some(count) {
            self.peer_rx = Some(count);
            self.progress = now;
            self.progress_in_row += 1;
            if self.delivering_since.is_none() {
                self.delivering_since = Some(now);
            }
        }
    }

    /// The path's BFD session changed state; `remote` is what the peer said
    /// at that moment.
    pub fn bfd_changed(&mut self, from: BfdState, to: BfdState, remote: BfdState, now: Time) {
        if to == BfdState::Up {
            self.bfd_down_at = None;
            self.peer_admin_down = false;
        } else if from == BfdState::Up && to == BfdState::Down {
            if remote == BfdState::AdminDown {
                self.peer_admin_down = true;
            } else {
                self.bfd_down_at = Some(now);
            }
        }
    }

    /// The share of its configured rate the path may use now: a quarter
    /// when it comes back, growing linearly to all of it over
    /// [`Settings::ramp`].
    pub fn rate_share(&self, now: Time) -> f64 {
        let Some(from) = self.ramp_from else {
            return 1.0;
        };
        let ramp = self.settings.ramp().as_secs_f64();
        let t = now.saturating_duration_since(from).as_secs_f64();
        (RAMP_START + (1.0 - RAMP_START) * t / ramp).min(1.0)
    }

    /// Times BFD said Down while this was the last usable path and the data
    /// plane showed it delivering, so it stayed Up.
    pub fn bfd_overrides(&self) -> u64 {
        self.bfd_overrides
    }

    /// Silences of the last usable path that did not take it out.
    pub fn silence_overrides(&self) -> u64 {
        self.silence_overrides
    }

    /// Decides the state at `now` with the port's carrier; `others_usable`
    /// says whether another path of the tunnel can carry traffic. Returns
    /// the change, if any.
    pub fn judge(&mut self, carrier: bool, now: Time, others_usable: bool) -> Option<Transition> {
        let silent = now.saturating_duration_since(self.progress) > self.silence_limit();
        if silent || !carrier {
            self.progress_in_row = 0;
            self.delivering_since = None;
        }
        if let (Some(down_at), Some(from)) = (self.bfd_down_at, self.delivering_since) {
            let detect = self.settings.bfd_detect;
            if from >= down_at && now.saturating_duration_since(from) >= detect {
                self.bfd_down_at = None;
            }
        }
        if self
            .ramp_from
            .is_some_and(|t| now.saturating_duration_since(t) >= self.settings.ramp())
        {
            self.ramp_from = None;
        }
        let back = self.progress_in_row >= UP_AFTER_PROGRESS;
        // A hold-down ends only into a path that is delivering right now: reports come
        // every probe interval, so one older than two means it may just have failed again.
        let fresh = now.saturating_duration_since(self.progress)
            <= self.settings.probe_interval * 2 + self.rttvar;
        // BFD alone does not take the last path out while it delivers.
        let keep_despite_bfd = self.state == PathState::Up && !others_usable && !silent && fresh;
        if self.bfd_down_at.is_some() && keep_despite_bfd && !self.bfd_overridden {
            self.bfd_overridden = true;
            self.bfd_overrides += 1;
        }
        if self.bfd_down_at.is_none() {
            self.bfd_overridden = false;
        }
        // Nor does a short silence, the last path.
        let keep_despite_silence = self.state == PathState::Up
            && !others_usable
            && silent
            && now.saturating_duration_since(self.progress) <= LAST_PATH_SILENCE;
        if keep_despite_silence && !self.silence_overridden {
            self.silence_overridden = true;
            self.silence_overrides += 1;
        }
        if !silent {
            self.silence_overridden = false;
        }
        let next = match self.state {
            _ if !carrier => PathState::NoCarrier,
            _ if self.bfd_down_at.is_some() && !keep_despite_bfd => PathState::BfdDown,
            _ if self.peer_admin_down => PathState::PeerAdminDown,
            PathState::Up | PathState::Starting | PathState::HoldDown
                if silent && !keep_despite_silence =>
            {
                PathState::NoReplies
            }
            PathState::Up => PathState::Up,
            PathState::Starting if back => PathState::Up,
            PathState::Starting => PathState::Starting,
            PathState::HoldDown if fresh && self.hold_until.is_some_and(|t| now >= t) => {
                PathState::Up
            }
            PathState::HoldDown => PathState::HoldDown,
            _ if back && self.settings.hold_down(self.streak).is_zero() => PathState::Up,
            _ if back => PathState::HoldDown,
            _ => PathState::NoReplies,
        };
        if next == self.state {
            return None;
        }
        let from = self.state;
        self.enter(next, now);
        Some(Transition { from, to: next })
    }

    fn enter(&mut self, next: PathState, now: Time) {
        let from = self.state;
        if from == PathState::Up {
            self.flaps += 1;
            // A path the peer takes down on purpose is not unstable.
            if next != PathState::PeerAdminDown {
                let stable = now.saturating_duration_since(self.up_since);
                let forgiven = (stable.as_secs() / FORGIVE_AFTER.as_secs()) as u32;
                self.streak = self.streak.saturating_sub(forgiven) + 1;
            }
            self.ramp_from = None;
        }
        if from == PathState::HoldDown {
            self.hold_until = None;
            if next != PathState::Up {
                // Failed again while held: a longer hold next time.
                self.streak = self.streak.saturating_add(1);
            }
        }
        match next {
            PathState::HoldDown => {
                self.hold_until = Some(now + self.settings.hold_down(self.streak));
            }
            PathState::Up => {
                self.up_since = now;
                if from != PathState::Starting {
                    self.ramp_from = Some(now);
                }
            }
            _ => {}
        }
        self.state = next;
        self.since = now;
        self.changes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings() -> Settings {
        Settings {
            probe_interval: 10 * MS,
            max_hold_down: Duration::from_secs(8),
            bfd_detect: 300 * MS,
        }
    }

    /// Drives a health through time at the probe interval: `delivering`
    /// says whether the peer's count moves in each report.
    struct Drive {
        h: Health,
        now: Time,
        count: u32,
        log: Vec<(Time, Transition)>,
        /// Whether another path is usable (most tests: yes).
        others_usable: bool,
    }

    impl Drive {
        fn new() -> Self {
            let now = Time::from_nanos(1_000_000_000);
            Self {
                h: Health::new(settings(), now),
                now,
                count: 0,
                log: Vec::new(),
                others_usable: true,
            }
        }

        fn run(&mut self, d: Duration, delivering: bool, carrier: bool) {
            let end = self.now + d;
            while self.now < end {
                self.now += 10 * MS;
                if delivering && carrier {
                    self.count += 1;
                    self.h.peer_received(self.count, self.now);
                }
                if let Some(t) = self.h.judge(carrier, self.now, self.others_usable) {
                    self.log.push((self.now, t));
                }
            }
        }

        fn state(&self) -> PathState {
            self.h.state()
        }
    }

    #[test]
    fn starting_path_comes_up_after_three_reports() {
        let mut d = Drive::new();
        d.run(20 * MS, true, true);
        assert_eq!(d.state(), PathState::Starting);
        d.run(10 * MS, true, true);
        assert_eq!(d.state(), PathState::Up);
        assert_eq!(d.h.flaps(), 0);
        assert_eq!(d.h.rate_share(d.now), 1.0, "no ramp at start");
    }

    #[test]
    fn silent_blackhole_is_left_within_the_silence_limit() {
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        let t0 = d.now;
        d.run(100 * MS, false, true);
        let (at, t) = d.log.last().copied().unwrap();
        assert_eq!(t.to, PathState::NoReplies);
        let took = at.duration_since(t0);
        assert!(took > 30 * MS && took <= 45 * MS, "{took:?}");
        assert_eq!(d.h.flaps(), 1);
    }

    #[test]
    fn first_failure_comes_back_at_once_and_ramps() {
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        d.run(100 * MS, false, true);
        let healed = d.now;
        d.run(30 * MS, true, true);
        assert_eq!(d.state(), PathState::Up);
        assert_eq!(d.h.since().duration_since(healed), 30 * MS);
        let share = d.h.rate_share(d.now);
        assert!((share - RAMP_START).abs() < 1e-9, "{share}");
        d.run(125 * MS, true, true);
        let half = d.h.rate_share(d.now);
        assert!(half > 0.6 && half < 0.7, "{half}");
        d.run(200 * MS, true, true);
        assert_eq!(d.h.rate_share(d.now), 1.0);
    }

    #[test]
    fn carrier_loss_takes_the_path_out_at_once() {
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        d.run(10 * MS, true, false);
        assert_eq!(d.state(), PathState::NoCarrier);
        d.run(10 * MS, true, true);
        assert_eq!(d.state(), PathState::NoReplies);
        d.run(30 * MS, true, true);
        assert_eq!(d.state(), PathState::Up);
    }

    #[test]
    fn flapping_path_is_held_down_longer_each_time() {
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        // Flap 1: back at once. Flap 2 (soon after): 1 s hold.
        d.run(100 * MS, false, true);
        d.run(100 * MS, true, true);
        assert_eq!(d.state(), PathState::Up);
        d.run(100 * MS, false, true);
        d.run(100 * MS, true, true);
        assert_eq!(d.state(), PathState::HoldDown);
        let until = d.h.hold_until().unwrap();
        assert_eq!(until.duration_since(d.h.since()), Duration::from_secs(1));
        d.run(Duration::from_secs(1), true, true);
        assert_eq!(d.state(), PathState::Up);
        // Flap 3: 2 s.
        d.run(100 * MS, false, true);
        d.run(100 * MS, true, true);
        let until = d.h.hold_until().unwrap();
        assert_eq!(until.duration_since(d.h.since()), Duration::from_secs(2));
    }

    #[test]
    fn one_second_on_off_link_never_oscillates_faster_than_the_hold_down() {
        let mut d = Drive::new();
        d.run(Duration::from_secs(1), true, true);
        for _ in 0..15 {
            d.run(Duration::from_secs(1), false, true);
            d.run(Duration::from_secs(1), true, true);
        }
        let ups: Vec<Time> = d
            .log
            .iter()
            .filter(|(_, t)| t.to == PathState::Up)
            .map(|(at, _)| *at)
            .collect();
        // Up at start, after the first failure (no hold), then never again:
        // every hold-down (1 s, 2 s, …) outlasts the 1 s the link stays on.
        assert_eq!(ups.len(), 2, "{:?}", d.log);
        assert_eq!(d.h.flaps(), 2);
    }

    #[test]
    fn stability_forgives_flaps() {
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        d.run(100 * MS, false, true);
        d.run(100 * MS, true, true);
        d.run(100 * MS, false, true);
        d.run(100 * MS, true, true);
        assert_eq!(d.state(), PathState::HoldDown);
        d.run(Duration::from_secs(25), true, true);
        // Up for 24 s: two flaps forgiven, so this one is the first again.
        d.run(100 * MS, false, true);
        d.run(100 * MS, true, true);
        assert_eq!(d.state(), PathState::Up);
    }

    #[test]
    fn hold_down_is_capped() {
        let s = settings();
        assert_eq!(s.hold_down(1), Duration::ZERO);
        assert_eq!(s.hold_down(2), Duration::from_secs(1));
        assert_eq!(s.hold_down(5), Duration::from_secs(8));
        assert_eq!(s.hold_down(u32::MAX), Duration::from_secs(8));
    }

    /// The soak of issue 23: link A failed, bulk load fills link B's queue,
    /// and B's BFD packets are lost in it while the data plane still
    /// delivers. The last path stays Up (counted once); it leaves as soon as
    /// the data plane goes silent, or BFD wins once another path is usable.
    #[test]
    fn bfd_alone_does_not_take_out_the_last_delivering_path() {
        let mut d = Drive::new();
        d.others_usable = false;
        d.run(100 * MS, true, true);
        d.h.bfd_changed(BfdState::Up, BfdState::Down, BfdState::Up, d.now);
        d.run(500 * MS, true, true);
        assert_eq!(d.state(), PathState::Up, "{:?}", d.log);
        assert_eq!(d.h.bfd_overrides(), 1);
        // Another path came back: BFD is the authority again.
        d.others_usable = true;
        d.run(10 * MS, true, true);
        assert_eq!(d.state(), PathState::BfdDown);
        // A silent last path with BFD Down leaves as ever.
        let mut d = Drive::new();
        d.others_usable = false;
        d.run(100 * MS, true, true);
        d.h.bfd_changed(BfdState::Up, BfdState::Down, BfdState::Down, d.now);
        d.run(100 * MS, false, true);
        assert_ne!(d.state(), PathState::Up, "{:?}", d.log);
        assert_eq!(d.h.bfd_overrides(), 1, "counted while it still delivered");
    }

    #[test]
    fn a_short_silence_does_not_take_out_the_last_usable_path() {
        let mut d = Drive::new();
        d.others_usable = false;
        d.run(100 * MS, true, true);
        // A 200 ms stall: the path stays, counted once.
        d.run(200 * MS, false, true);
        assert_eq!(d.state(), PathState::Up, "{:?}", d.log);
        d.run(100 * MS, true, true);
        assert_eq!(d.h.silence_overrides(), 1);
        // Silent past the limit: it leaves.
        d.run(LAST_PATH_SILENCE + 50 * MS, false, true);
        assert_eq!(d.state(), PathState::NoReplies, "{:?}", d.log);
        // With another path usable, silence takes it out as ever.
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        d.run(100 * MS, false, true);
        assert_eq!(d.state(), PathState::NoReplies);
        assert_eq!(d.h.silence_overrides(), 0);
        // BFD Down on a silent last path takes it out at once.
        let mut d = Drive::new();
        d.others_usable = false;
        d.run(100 * MS, true, true);
        d.run(50 * MS, false, true);
        d.h.bfd_changed(BfdState::Up, BfdState::Down, BfdState::Up, d.now);
        d.run(10 * MS, false, true);
        assert_eq!(d.state(), PathState::BfdDown, "{:?}", d.log);
    }

    #[test]
    fn bfd_down_takes_the_path_out_until_bfd_is_up() {
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        // The data plane is fine, but BFD says the peer stopped hearing us.
        d.h.bfd_changed(BfdState::Up, BfdState::Down, BfdState::Down, d.now);
        d.run(10 * MS, false, true);
        assert_eq!(d.state(), PathState::BfdDown);
        d.h.bfd_changed(BfdState::Down, BfdState::Up, BfdState::Up, d.now);
        d.run(10 * MS, true, true);
        assert_eq!(d.state(), PathState::Up);
    }

    #[test]
    fn data_plane_brings_a_bfd_down_path_back_after_one_detection_time() {
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        d.run(100 * MS, false, true);
        assert_eq!(d.state(), PathState::NoReplies);
        d.h.bfd_changed(BfdState::Up, BfdState::Down, BfdState::Up, d.now);
        d.run(10 * MS, false, true);
        assert_eq!(d.state(), PathState::BfdDown);
        let healed = d.now;
        // BFD stays down (its slow start); delivery without a gap for one
        // detection time (300 ms) is proof enough.
        d.run(400 * MS, true, true);
        let up_at = d
            .log
            .iter()
            .find(|(_, t)| t.to == PathState::Up && t.from == PathState::BfdDown)
            .map(|(at, _)| *at)
            .unwrap();
        let took = up_at.duration_since(healed);
        assert!(took >= 300 * MS && took <= 320 * MS, "{took:?}");
    }

    #[test]
    fn peer_admin_down_is_graceful_and_not_dampened() {
        let mut d = Drive::new();
        d.run(100 * MS, true, true);
        for _ in 0..3 {
            d.h.bfd_changed(BfdState::Up, BfdState::Down, BfdState::AdminDown, d.now);
            d.run(10 * MS, true, true);
            assert_eq!(d.state(), PathState::PeerAdminDown);
            d.h.bfd_changed(BfdState::Init, BfdState::Up, BfdState::Up, d.now);
            d.run(10 * MS, true, true);
            assert_eq!(d.state(), PathState::Up, "no hold-down after admin");
        }
    }

    #[test]
    fn starting_path_that_is_never_answered_goes_down_without_a_flap() {
        let mut d = Drive::new();
        d.run(100 * MS, false, true);
        assert_eq!(d.state(), PathState::NoReplies);
        assert_eq!(d.h.flaps(), 0);
    }
}
