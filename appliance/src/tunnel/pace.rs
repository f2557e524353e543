//! How often the management lcore probes the peer's paths. While the peer is heard (anything
//! arrives from it on any path: data in flight is liveness), every path is probed every
//! probe interval, each gap shortened by up to a tenth at random so that paths (and, at a
//! hub, peers) do not probe in lockstep; a shorter gap never stretches the silence the far
//! end allows for. Once nothing at all has arrived from the peer for [`UNREACHABLE_AFTER`],
//! each path is probed once a second (jittered the same way), as RFC 5880 §6.8.3 slows a BFD
//! session that is not up: a peer that is down costs one probe per second per path. The
//! first packet heard from it again brings every path back to the full rate at once.

use std::time::Duration;

use crate::time::Time;

/// Silence on every path after which the peer counts as unreachable.
pub const UNREACHABLE_AFTER: Duration = Duration::from_secs(3);
/// The probe interval of an unreachable peer's paths (at least).
pub const UNREACHABLE_EVERY: Duration = Duration::from_secs(1);
/// The largest share of a gap the jitter takes off.
const JITTER: f64 = 0.1;

/// The pace of one peer's probes.
#[derive(Debug)]
pub struct ProbePace {
    interval: Duration,
    /// What had arrived from the peer (all paths) at the last look, and when it last grew.
    rx_total: u64,
    heard_at: Time,
    rng: fastrand::Rng,
}

impl ProbePace {
    /// Probing every `interval`, the peer counted as heard at `now`.
    pub fn new(interval: Duration, now: Time) -> Self {
        Self {
            interval,
            rx_total: 0,
            heard_at: now,
            rng: fastrand::Rng::new(),
        }
    }

    /// A new probe interval (a reload).
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// Whether the peer counts as unreachable at `now`.
    pub fn unreachable(&self, now: Time) -> bool {
        now.saturating_duration_since(self.heard_at) >= UNREACHABLE_AFTER
    }

    /// Notes the packets received from the peer so far (all paths, all workers). Returns
    /// true when the peer was unreachable and is heard again: probe every path now.
    pub fn heard(&mut self, rx_total: u64, now: Time) -> bool {
        if rx_total <= self.rx_total {
            // Unchanged, or lower: a reload removed a path and its count with it.
            self.rx_total = rx_total;
            return false;
        }
        let woke = self.unreachable(now);
        self.rx_total = rx_total;
        self.heard_at = now;
        woke
    }

    /// The gap to a path's next probe.
    pub fn next_gap(&mut self, now: Time) -> Duration {
        let base = if self.unreachable(now) {
            self.interval.max(UNREACHABLE_EVERY)
        } else {
            self.interval
        };
        base.mul_f64(1.0 - JITTER * self.rng.f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn full_rate_while_heard_one_a_second_when_silent_and_back_at_once() {
        let t0 = Time::from_secs(10);
        let mut p = ProbePace::new(10 * MS, t0);
        for _ in 0..1000 {
            let g = p.next_gap(t0);
            assert!((9 * MS..=10 * MS).contains(&g), "{g:?}");
        }
        assert!(!p.heard(0, t0 + 2 * UNREACHABLE_AFTER), "nothing new");
        let silent = t0 + UNREACHABLE_AFTER;
        assert!(p.unreachable(silent));
        let g = p.next_gap(silent);
        assert!((900 * MS..=1000 * MS).contains(&g), "{g:?}");
        assert!(p.heard(7, silent + MS), "heard again: probe every path now");
        assert!(!p.unreachable(silent + MS));
        assert!(p.next_gap(silent + MS) <= 10 * MS);
        assert!(
            !p.heard(9, silent + 2 * MS),
            "heard while reachable: nothing to do"
        );
        let later = silent + 2 * UNREACHABLE_AFTER;
        assert!(
            !p.heard(4, later),
            "a path removed: its count went, nothing heard"
        );
        assert!(p.unreachable(later));
    }

    #[test]
    fn a_long_interval_is_not_shortened_by_the_slow_pace() {
        let t0 = Time::from_secs(10);
        let mut p = ProbePace::new(Duration::from_secs(2), t0);
        let g = p.next_gap(t0 + UNREACHABLE_AFTER);
        assert!(g >= Duration::from_millis(1800), "{g:?}");
    }
}
