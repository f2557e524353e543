//! What the workers share about each path's queue, lock-free.
//!
//! The rate clock: one atomic per path holding the time at which the path
//! will have sent everything reserved on it so far at its shaped rate (a
//! virtual finish time, as in GCRA). A worker reserves its next packet's
//! time on it and sends the packet when that time comes; the management
//! lcore charges its BFD and probe frames and sends them at once. So the
//! aggregate of every worker and the management lcore is held to the rate
//! however the flows fall on the workers, with no share to rebalance: a
//! worker that sends nothing takes nothing. An idle path banks at most
//! [`BURST_NS`] of credit, which bounds the excess over any window to that
//! much (0.5 % of 100 ms) plus one packet per sender.
//!
//! Beside it, per path: which workers hold network-control or real-time
//! packets (a worker with only default or bulk packets lets them go first,
//! [`DEFER_NS`] at most), and per worker the bytes it holds (the
//! schedulers' backlog).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::stats::CacheAligned;

/// Credit an idle path banks (ns of its rate).
pub const BURST_NS: u64 = 500_000;
/// Longest a worker holds back its default or bulk packets for another
/// worker's urgent ones.
pub const DEFER_NS: u64 = 1_000_000;

/// The nanoseconds `len` bytes take at `rate_bps` (rounded up).
#[inline]
pub fn wire_ns(len: u64, rate_bps: u64) -> u64 {
    let bits_ns = u128::from(len) * 8 * 1_000_000_000;
    u64::try_from(bits_ns.div_ceil(u128::from(rate_bps.max(1)))).unwrap_or(u64::MAX)
}

/// One path's shared cells.
#[derive(Debug)]
pub struct PathCells {
    clock: CacheAligned<AtomicU64>,
    urgent: CacheAligned<AtomicU64>,
    /// Per worker: bytes it holds for the path, all and urgent.
    queued: Box<[CacheAligned<[AtomicU64; 2]>]>,
}

impl PathCells {
    /// Cells for `workers` workers (at most 64 hold urgent packets apart).
    pub fn new(workers: usize) -> Self {
        Self {
            clock: CacheAligned(AtomicU64::new(0)),
            urgent: CacheAligned(AtomicU64::new(0)),
            queued: (0..workers.max(1))
                .map(|_| CacheAligned([AtomicU64::new(0), AtomicU64::new(0)]))
                .collect(),
        }
    }

    /// Reserves the time `len` bytes take at `rate_bps`, after everything
    /// reserved before, and returns when they may leave (ns: `now` or
    /// earlier when the path has credit).
    #[inline]
    pub fn reserve(&self, now: u64, len: u64, rate_bps: u64) -> u64 {
        let cost = wire_ns(len, rate_bps);
        let from = now.saturating_sub(BURST_NS);
        // Relaxed: the clock orders nothing but itself.
        let prev = self
            .clock
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.max(from).saturating_add(cost))
            })
            .unwrap_or_else(|t| t);
        prev.max(from)
    }

    /// Charges `len` bytes sent at `now` at `rate_bps` (the management
    /// lcore's frames, which leave at once).
    #[inline]
    pub fn charge(&self, now: u64, len: u64, rate_bps: u64) {
        self.reserve(now, len, rate_bps);
    }

    /// How long the path has been charged for beyond `now` (ns).
    #[inline]
    pub fn ahead(&self, now: u64) -> u64 {
        self.clock.0.load(Ordering::Relaxed).saturating_sub(now)
    }

    /// Records whether worker `w` holds urgent packets (stores only on a
    /// change, which the caller tracks).
    #[inline]
    pub fn set_urgent(&self, w: usize, urgent: bool) {
        let bit = 1u64 << (w % 64);
        if urgent {
            self.urgent.0.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.urgent.0.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Whether a worker other than `w` holds urgent packets.
    #[inline]
    pub fn others_urgent(&self, w: usize) -> bool {
        self.urgent.0.load(Ordering::Relaxed) & !(1u64 << (w % 64)) != 0
    }

    /// Publishes the bytes worker `w` holds: all, and in the urgent tiers.
    #[inline]
    pub fn set_queued(&self, w: usize, all: u64, urgent: u64) {
        if let Some(c) = self.queued.get(w) {
            c.0[0].store(all, Ordering::Relaxed);
            c.0[1].store(urgent, Ordering::Relaxed);
        }
    }

    /// Bytes every worker holds together: all (`urgent` false), or in the
    /// urgent tiers.
    #[inline]
    pub fn queued(&self, urgent: bool) -> u64 {
        let k = usize::from(urgent);
        self.queued
            .iter()
            .map(|c| c.0[k].load(Ordering::Relaxed))
            .sum()
    }

    /// The path's backlog at `now` at `rate_bps` (ns): what is charged
    /// beyond now plus what the workers hold; with `urgent`, only what a
    /// network-control or real-time packet waits behind.
    #[inline]
    pub fn backlog_ns(&self, now: u64, rate_bps: u64, urgent: bool) -> u64 {
        self.ahead(now)
            .saturating_add(wire_ns(self.queued(urgent), rate_bps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_charges_at_the_rate_and_banks_little() {
        let c = PathCells::new(2);
        let rate = 8_000_000;
        assert_eq!(wire_ns(1000, rate), 1_000_000);
        // An idle path starts BURST_NS back: the first packet may leave at
        // once, the next after the first's time less the credit.
        assert_eq!(c.reserve(10_000_000, 1000, rate), 10_000_000 - BURST_NS);
        assert_eq!(c.ahead(10_000_000), 1_000_000 - BURST_NS);
        assert_eq!(c.reserve(10_000_000, 1000, rate), 10_500_000);
        c.charge(10_000_000, 0, rate);
        assert_eq!(c.ahead(10_000_000), 1_500_000);
        assert_eq!(c.backlog_ns(10_000_000, rate, false), 1_500_000);
        c.set_queued(1, 2000, 500);
        assert_eq!(c.backlog_ns(10_000_000, rate, false), 3_500_000);
        assert_eq!(c.backlog_ns(10_000_000, rate, true), 2_000_000);
        c.set_urgent(1, true);
        assert!(c.others_urgent(0) && !c.others_urgent(1));
        c.set_urgent(1, false);
        assert!(!c.others_urgent(0));
    }
}
