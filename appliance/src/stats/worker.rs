//! The counters of one lcore: one writer (the worker), many readers
//! (management lcore, metrics thread). Cache-line aligned so workers never
//! share a line.

use serde::Serialize;

use super::{Counter, CounterArray, DropReason};
use crate::config::MAX_PORTS;

/// Counters of one worker (or of the management lcore, which uses the same
/// layout for what it drops and sends).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    /// Packets received per port index.
    pub rx_packets: [Counter; MAX_PORTS],
    /// Bytes received per port index.
    pub rx_bytes: [Counter; MAX_PORTS],
    /// Packets sent per port index.
    pub tx_packets: [Counter; MAX_PORTS],
    /// Bytes sent per port index.
    pub tx_bytes: [Counter; MAX_PORTS],
    /// Packets handed to the slow path.
    pub punted: Counter,
    /// Drops by reason.
    pub drops: CounterArray<{ DropReason::COUNT }>,
    /// Poll-loop iterations.
    pub polls: Counter,
    /// Iterations that found packets.
    pub busy_polls: Counter,
    /// Idle sleeps taken (its rings empty).
    pub idle_sleeps: Counter,
    /// Sleeps that let packets gather into a batch (`idle.coalesce_frames`).
    pub coalesce_sleeps: Counter,
}

impl WorkerCounters {
    /// Counts one drop.
    #[inline]
    pub fn drop_one(&self, reason: DropReason) {
        self.drops[reason as usize].inc();
    }

    /// Counts `n` drops of one reason.
    #[cold]
    pub fn drop_many(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].add(n);
    }

    /// A plain copy for reports.
    pub fn snapshot(&self) -> CounterSnapshot {
        let v = |a: &[Counter]| a.iter().map(Counter::get).collect::<Vec<_>>();
        CounterSnapshot {
            rx_packets: v(&self.rx_packets),
            rx_bytes: v(&self.rx_bytes),
            tx_packets: v(&self.tx_packets),
            tx_bytes: v(&self.tx_bytes),
            punted: self.punted.get(),
            drops: v(&self.drops[..]),
            polls: self.polls.get(),
            busy_polls: self.busy_polls.get(),
            idle_sleeps: self.idle_sleeps.get(),
            coalesce_sleeps: self.coalesce_sleeps.get(),
        }
    }
}

/// A copy of [`WorkerCounters`] at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CounterSnapshot {
    /// Per port index.
    pub rx_packets: Vec<u64>,
    /// Per port index.
    pub rx_bytes: Vec<u64>,
    /// Per port index.
    pub tx_packets: Vec<u64>,
    /// Per port index.
    pub tx_bytes: Vec<u64>,
    /// Handed to the slow path.
    pub punted: u64,
    /// By `DropReason` order.
    pub drops: Vec<u64>,
    /// Loop iterations.
    pub polls: u64,
    /// Iterations with packets.
    pub busy_polls: u64,
    /// Idle sleeps.
    pub idle_sleeps: u64,
    /// Sleeps waiting for a batch.
    pub coalesce_sleeps: u64,
}

impl CounterSnapshot {
    /// Adds `other` into `self`, element by element.
    pub fn accumulate(&mut self, other: &CounterSnapshot) {
        fn add(a: &mut Vec<u64>, b: &[u64]) {
            if a.len() < b.len() {
                a.resize(b.len(), 0);
            }
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        add(&mut self.rx_packets, &other.rx_packets);
        add(&mut self.rx_bytes, &other.rx_bytes);
        add(&mut self.tx_packets, &other.tx_packets);
        add(&mut self.tx_bytes, &other.tx_bytes);
        add(&mut self.drops, &other.drops);
        self.punted += other.punted;
        self.polls += other.polls;
        self.busy_polls += other.busy_polls;
        self.idle_sleeps += other.idle_sleeps;
        self.coalesce_sleeps += other.coalesce_sleeps;
    }

    /// Drops of one reason.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops.get(r as usize).copied().unwrap_or(0)
    }
}
