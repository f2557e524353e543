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

    /// Call once per loop iteration with the packets it handled. Returns
    /// true if it slept.
    #[inline]
    pub fn after_poll(&mut self, packets: usize) -> bool {
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
        std::thread::sleep(Duration::from_micros(u64::from(self.sleep_us)));
        self.sleep_us = (self.sleep_us * 2).min(self.max_sleep_us);
        true
    }
}
