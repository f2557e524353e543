//! Idle back-off for poll loops.
//!
//! On a shared or virtual machine a spinning lcore starves the kernel and
//! other processes (two busy pollers on one vCPU lose 77% of packets, see
//! docs). After `spin_polls` empty polls the loop pauses, then sleeps with
//! exponential back-off up to `max_sleep`; the first packet snaps it back.

use std::time::Duration;

use dpdk_bindings::time;

use crate::config::{IdleConfig, PollMode};

/// Back-off state of one loop.
#[derive(Debug)]
pub struct Idle {
    mode: PollMode,
    spin_polls: u32,
    max_sleep_us: u32,
    empty: u32,
    sleep_us: u32,
}

impl Idle {
    /// New state from the profile.
    pub fn new(mode: PollMode, cfg: &IdleConfig) -> Self {
        Self {
            mode,
            spin_polls: cfg.spin_polls,
            max_sleep_us: cfg.max_sleep_us.max(1),
            empty: 0,
            sleep_us: 1,
        }
    }

    /// Call once per loop iteration with the packets it handled and how long
    /// until the earliest deadline a stage registered (`Some(ZERO)` if one is
    /// due): a sleep never runs past it. Returns true if it slept.
    #[inline]
    pub fn after_poll(&mut self, packets: usize, until_deadline: Option<Duration>) -> bool {
        if packets > 0 || self.mode == PollMode::Busy {
            self.empty = 0;
            self.sleep_us = 1;
            return false;
        }
        self.empty = self.empty.saturating_add(1);
        if self.empty < self.spin_polls {
            time::pause();
            return false;
        }
        let mut sleep = Duration::from_micros(u64::from(self.sleep_us));
        if let Some(until) = until_deadline {
            if until.is_zero() {
                time::pause();
                return false;
            }
            sleep = sleep.min(until);
        }
        std::thread::sleep(sleep);
        self.sleep_us = (self.sleep_us * 2).min(self.max_sleep_us);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive(max_sleep_us: u32) -> Idle {
        Idle::new(
            PollMode::Adaptive,
            &IdleConfig {
                spin_polls: 3,
                max_sleep_us,
            },
        )
    }

    #[test]
    fn backs_off_after_the_spins_and_snaps_back_on_traffic() {
        let mut idle = adaptive(50);
        assert!(!idle.after_poll(0, None), "spinning first");
        assert!(!idle.after_poll(0, None));
        assert!(idle.after_poll(0, None), "then sleeping");
        assert!(!idle.after_poll(3, None), "traffic: no sleep");
        assert!(!idle.after_poll(0, None), "and spinning again");
    }

    #[test]
    fn a_due_deadline_stops_the_sleep_and_a_near_one_shortens_it() {
        let mut idle = adaptive(10_000);
        for _ in 0..20 {
            idle.after_poll(0, None); // back off to long sleeps
        }
        assert!(!idle.after_poll(0, Some(Duration::ZERO)), "due: no sleep");
        let start = std::time::Instant::now();
        assert!(idle.after_poll(0, Some(Duration::from_micros(300))));
        assert!(
            start.elapsed() < Duration::from_millis(5),
            "slept {:?}, past a 300 µs deadline (the back-off was 10 ms)",
            start.elapsed()
        );
    }
}
