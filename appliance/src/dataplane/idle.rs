//! Idle back-off and receive coalescing for poll loops.
//!
//! On a shared or virtual machine a spinning lcore starves the kernel and
//! other processes (two busy pollers on one vCPU lose 77% of packets, see
//! docs). After `spin_polls` empty polls the loop pauses, then sleeps with
//! exponential back-off up to `max_sleep_us`; the first packet snaps it back.
//!
//! Between packets that trickle in, it coalesces like a NIC's interrupt
//! moderation (ethtool's `rx-frames`): a poll that drained the rings, and
//! found less than a backlog, sleeps about as long as `coalesce_frames`
//! packets take to arrive at the rate it measures, never longer than
//! `max_sleep_us`. Each wake-up, ring read and send then carries several
//! packets instead of one or two, however many workers share the traffic
//! (docs/datapath.md, "Idle").
//!
//! With coalescing on, the back-off after a packet also starts from half the
//! measured gap between packets rather than from 1 µs: at a few thousand
//! packets a second the doubling from 1 µs woke the loop eight or nine times
//! per packet for nothing.

use std::time::Duration;

use dpdk_bindings::{time, BURST_SIZE};

use crate::config::{IdleConfig, PollMode};
use crate::time::Time;

/// Longest gap between packets the rate estimate takes in: longer gaps
/// mean idle, and one of them must not stall the estimate for long.
const MAX_GAP_NS: u64 = 10_000_000;

/// What the loop does before its next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Poll again at once.
    None,
    /// A CPU pause instruction (spinning).
    Spin,
    /// Sleep this long: the rings were empty.
    Sleep(Duration),
    /// Sleep this long: packets gather into a batch.
    Coalesce(Duration),
}

/// Back-off state of one loop.
#[derive(Debug)]
pub struct Idle {
    mode: PollMode,
    spin_polls: u32,
    max_sleep_us: u32,
    coalesce_frames: u32,
    empty: u32,
    sleep_us: u32,
    /// When the last poll that found packets started.
    last_busy: Time,
    /// Smoothed time between packets, ns (0: not measured yet).
    gap_ns: u64,
    /// Smoothed time the loop spends per packet, ns.
    cost_ns: u64,
}

impl Idle {
    /// New state from the profile.
    pub fn new(mode: PollMode, cfg: &IdleConfig) -> Self {
        Self {
            mode,
            spin_polls: cfg.spin_polls,
            max_sleep_us: cfg.max_sleep_us.max(1),
            coalesce_frames: cfg.coalesce_frames,
            empty: 0,
            sleep_us: 1,
            last_busy: Time::ZERO,
            gap_ns: 0,
            cost_ns: 0,
        }
    }

    /// Follows the idle settings of the current tables (a reload may change
    /// them; the mode stays): three compares per loop, a copy when changed.
    #[inline]
    pub fn follow(&mut self, cfg: &IdleConfig) {
        let max_sleep_us = cfg.max_sleep_us.max(1);
        if (self.spin_polls, self.max_sleep_us, self.coalesce_frames)
            != (cfg.spin_polls, max_sleep_us, cfg.coalesce_frames)
        {
            self.spin_polls = cfg.spin_polls;
            self.max_sleep_us = max_sleep_us;
            self.coalesce_frames = cfg.coalesce_frames;
            self.sleep_us = self.sleep_us.min(max_sleep_us);
        }
    }

    /// Whether this loop ever sleeps (adaptive mode).
    pub fn sleeps(&self) -> bool {
        self.mode == PollMode::Adaptive
    }

    /// Call once per loop iteration with the packets it handled, when it
    /// started and finished (the clock is only read for loops that sleep),
    /// and how long until the earliest deadline a stage registered
    /// (`Some(ZERO)` if one is due): a sleep never runs past it. Returns
    /// what it did.
    #[inline]
    pub fn after_poll(
        &mut self,
        packets: usize,
        (started, finished): (Time, Time),
        until_deadline: Option<Duration>,
    ) -> Pause {
        let pause = self.next(packets, (started, finished), until_deadline);
        match pause {
            Pause::None => {}
            Pause::Spin => time::pause(),
            Pause::Sleep(d) | Pause::Coalesce(d) => std::thread::sleep(d),
        }
        pause
    }

    /// The decision alone (no waiting): see [`Idle::after_poll`].
    fn next(
        &mut self,
        packets: usize,
        (started, finished): (Time, Time),
        until: Option<Duration>,
    ) -> Pause {
        if self.mode == PollMode::Busy {
            return Pause::None;
        }
        if packets > 0 {
            self.empty = 0;
            let wait = self.coalesce(packets, started, finished);
            self.sleep_us = self.first_sleep_us();
            return match wait {
                Some(wait) => bounded(wait, until).map_or(Pause::None, Pause::Coalesce),
                None => Pause::None,
            };
        }
        self.empty = self.empty.saturating_add(1);
        if self.empty < self.spin_polls {
            return Pause::Spin;
        }
        let sleep = Duration::from_micros(u64::from(self.sleep_us));
        let Some(sleep) = bounded(sleep, until) else {
            return Pause::Spin;
        };
        self.sleep_us = (self.sleep_us * 2).min(self.max_sleep_us);
        Pause::Sleep(sleep)
    }

    /// The first sleep of a back-off, µs: half the measured gap between
    /// packets when coalescing measures it (the next packet is not expected
    /// sooner), else 1; at most `max_sleep_us`.
    fn first_sleep_us(&self) -> u32 {
        if self.coalesce_frames == 0 {
            return 1;
        }
        let half_gap_us = u32::try_from(self.gap_ns / 2_000).unwrap_or(u32::MAX);
        half_gap_us.clamp(1, self.max_sleep_us)
    }

    /// After a poll that found `packets`: how long to let the next ones
    /// gather, if that is worth it. Updates the rate estimate.
    fn coalesce(&mut self, packets: usize, started: Time, finished: Time) -> Option<Duration> {
        if self.coalesce_frames == 0 {
            return None;
        }
        let n = packets as u64;
        let since = started.as_nanos().saturating_sub(self.last_busy.as_nanos());
        self.last_busy = started;
        let gap = (since / n).min(MAX_GAP_NS);
        let cost = (finished.as_nanos().saturating_sub(started.as_nanos()) / n).min(MAX_GAP_NS);
        (self.gap_ns, self.cost_ns) = if self.gap_ns == 0 {
            (gap, cost)
        } else {
            ((3 * self.gap_ns + gap) / 4, (3 * self.cost_ns + cost) / 4)
        };
        let frames = self.coalesce_frames as usize;
        if packets >= BURST_SIZE || packets >= 2 * frames {
            // A whole burst, or twice the batch it waited for: the rings
            // may hold more, or the worker is falling behind. Keep up.
            return None;
        }
        if self.cost_ns * 4 > self.gap_ns * 3 {
            // Busy three quarters of the time or more (preemptions and the
            // kernel's work in `sendto` included): near its capacity a
            // worker must not give its vCPU away. (At half, one worker at
            // 100k pps on the test VM no longer coalesced: 6.1 µs of CPU per
            // packet against 4.4 µs at three quarters.)
            return None;
        }
        let max_ns = u64::from(self.max_sleep_us) * 1_000;
        if self.gap_ns.saturating_mul(2) > max_ns {
            return None; // not two packets within the budget: waiting buys nothing
        }
        let wait = (self.gap_ns * frames as u64).min(max_ns);
        Some(Duration::from_nanos(wait))
    }
}

/// `sleep`, cut short at a stage's deadline; `None` if one is due.
fn bounded(sleep: Duration, until: Option<Duration>) -> Option<Duration> {
    match until {
        Some(u) if u.is_zero() => None,
        Some(u) => Some(sleep.min(u)),
        None => Some(sleep),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive(max_sleep_us: u32, coalesce_frames: u32) -> Idle {
        Idle::new(
            PollMode::Adaptive,
            &IdleConfig {
                spin_polls: 3,
                max_sleep_us,
                coalesce_frames,
            },
        )
    }

    fn at_us(us: u64) -> Time {
        Time::from_nanos(us * 1_000)
    }

    /// An iteration that started at `t` and took 1 µs.
    fn quick(t: Time) -> (Time, Time) {
        (t, Time::from_nanos(t.as_nanos() + 1_000))
    }

    /// Twenty polls, one every `every_us` from `every_us` on, each finding
    /// `packets` and taking `work_us`: what the loop did after each.
    fn trickle(idle: &mut Idle, packets: usize, every_us: u64, work_us: u64) -> Vec<Pause> {
        (1..=20)
            .map(|i| {
                let t = at_us(every_us * i);
                idle.next(packets, (t, at_us(every_us * i + work_us)), None)
            })
            .collect()
    }

    #[test]
    fn backs_off_after_the_spins_and_snaps_back_on_traffic() {
        let mut idle = adaptive(50, 0);
        let t = Time::ZERO;
        assert_eq!(idle.next(0, (t, t), None), Pause::Spin, "spinning first");
        assert_eq!(idle.next(0, (t, t), None), Pause::Spin);
        assert_eq!(
            idle.next(0, (t, t), None),
            Pause::Sleep(Duration::from_micros(1))
        );
        assert_eq!(
            idle.next(0, (t, t), None),
            Pause::Sleep(Duration::from_micros(2))
        );
        assert_eq!(idle.next(3, (t, t), None), Pause::None, "traffic: no sleep");
        assert_eq!(
            idle.next(0, (t, t), None),
            Pause::Spin,
            "and spinning again"
        );
    }

    #[test]
    fn a_due_deadline_stops_the_sleep_and_a_near_one_shortens_it() {
        let mut idle = adaptive(10_000, 0);
        for _ in 0..20 {
            idle.next(0, (Time::ZERO, Time::ZERO), None); // back off to long sleeps
        }
        assert_eq!(
            idle.next(0, (Time::ZERO, Time::ZERO), Some(Duration::ZERO)),
            Pause::Spin,
            "due"
        );
        let near = Duration::from_micros(300);
        assert_eq!(
            idle.next(0, (Time::ZERO, Time::ZERO), Some(near)),
            Pause::Sleep(near)
        );
        let start = std::time::Instant::now();
        assert_eq!(
            idle.after_poll(0, (Time::ZERO, Time::ZERO), Some(near)),
            Pause::Sleep(near)
        );
        assert!(
            start.elapsed() < Duration::from_millis(5),
            "slept {:?}, past a 300 µs deadline (the back-off was 10 ms)",
            start.elapsed()
        );
    }

    #[test]
    fn a_trickle_waits_for_a_batch_at_the_rate_it_measures() {
        // One packet every 10 µs, drained in twos: the gap settles at 10 µs
        // and the loop waits 8 × 10 µs for the next batch.
        let mut idle = adaptive(200, 8);
        let last = trickle(&mut idle, 2, 20, 1).pop();
        assert_eq!(last, Some(Pause::Coalesce(Duration::from_micros(80))));
        // Twice the rate halves the wait: each of two workers sharing a
        // stream waits twice as long as one worker alone, for the same batch.
        let mut fast = adaptive(200, 8);
        let last = trickle(&mut fast, 4, 20, 1).pop();
        assert_eq!(last, Some(Pause::Coalesce(Duration::from_micros(40))));
    }

    #[test]
    fn coalescing_keeps_to_the_budget_the_deadline_and_full_batches() {
        let mut idle = adaptive(50, 8);
        assert_eq!(
            trickle(&mut idle, 1, 20, 1).pop(),
            Some(Pause::Coalesce(Duration::from_micros(50))),
            "8 × 20 µs capped at 50"
        );
        let next = at_us(20 * 21);
        assert_eq!(
            idle.next(1, quick(next), Some(Duration::from_micros(7))),
            Pause::Coalesce(Duration::from_micros(7)),
            "cut at a stage's deadline"
        );
        assert_eq!(
            idle.next(BURST_SIZE, quick(at_us(20 * 22)), None),
            Pause::None,
            "a whole burst: keep up"
        );
        assert_eq!(
            idle.next(16, quick(at_us(20 * 23)), None),
            Pause::None,
            "a backlog: keep up"
        );
        assert!(
            matches!(
                idle.next(15, quick(at_us(20 * 24)), None),
                Pause::Coalesce(_)
            ),
            "about the batch it waited for: wait again"
        );
    }

    #[test]
    fn a_worker_busy_most_of_the_time_does_not_give_its_vcpu_away() {
        // One packet every 10 µs, drained in twos, 16 µs of work per poll.
        let mut idle = adaptive(200, 8);
        let pauses = trickle(&mut idle, 2, 20, 16);
        assert!(pauses.iter().all(|p| *p == Pause::None), "{pauses:?}");
    }

    #[test]
    fn with_coalescing_the_back_off_starts_from_half_the_gap() {
        // One packet every 300 µs (too slow to coalesce): after the spins the
        // first sleep is 150 µs, then the cap, not 1, 2, 4 ... µs.
        let mut idle = adaptive(200, 8);
        trickle(&mut idle, 1, 300, 1);
        let t = at_us(300 * 20);
        let sleeps: Vec<Pause> = (0..4).map(|_| idle.next(0, (t, t), None)).collect();
        assert_eq!(
            sleeps,
            [
                Pause::Spin,
                Pause::Spin,
                Pause::Sleep(Duration::from_micros(150)),
                Pause::Sleep(Duration::from_micros(200)),
            ]
        );
        // Without coalescing the gap is not measured: 1 µs, doubling.
        let mut off = adaptive(200, 0);
        trickle(&mut off, 1, 300, 1);
        let first = (0..3).map(|_| off.next(0, (t, t), None)).last();
        assert_eq!(first, Some(Pause::Sleep(Duration::from_micros(1))));
    }

    #[test]
    fn a_slow_trickle_or_no_setting_is_not_held_back() {
        // One packet every 150 µs: two would take 300 µs, over budget.
        let mut idle = adaptive(200, 8);
        let pauses = trickle(&mut idle, 1, 150, 1);
        assert!(pauses.iter().all(|p| *p == Pause::None), "{pauses:?}");
        let mut off = adaptive(200, 0);
        let pauses = trickle(&mut off, 2, 20, 1);
        assert!(pauses.iter().all(|p| *p == Pause::None), "{pauses:?}");
    }
}
