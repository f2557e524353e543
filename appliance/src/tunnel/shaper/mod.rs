//! The tunnel's own queue in front of each path: a worker holds what it
//! sends on a path here and lets it out at the path's shaped rate, so the
//! queue that builds when a path is full is ours and not the WAN link's.
//! Here we choose what waits and what is dropped: network control first,
//! real-time next, then default and bulk, each flow with its own CoDel.
//!
//! - [`PathQueue`]: one worker's queue for one path: four [`Tier`]s of flow
//!   queues ([`flows`]) in one fixed [`flows::Slab`], the scheduler between
//!   the tiers, and the drop of the fattest flow's head when the slab is
//!   full (fq_codel's overlimit rule).
//! - [`codel`]: RFC 8289, per flow queue.
//! - [`shared`]: what the workers share per path: the rate clock that holds
//!   their aggregate to the path's rate, whether one of them holds urgent
//!   packets, and what each has queued (the schedulers' backlog).
//!
//! Between the tiers: network control and real-time are served first while
//! each stays under its priority share of the path's rate (a token bucket
//! with 10 ms of burst: 10 % and 40 %). What is left, and a priority tier
//! beyond its share, is shared by a deficit round robin in bytes with the
//! weights [`DRR_WEIGHT`], so bulk is never starved and a real-time class
//! that floods gets no more than its share ahead of the rest.
//!
//! Pure: no DPDK, no time source; the caller passes `now` in ns.

pub mod codel;
pub mod flows;
pub mod shared;

use flows::{Flows, Slab};

/// Number of tiers.
pub const TIERS: usize = 4;

pub use crate::config::tunnel::Tier;

fn index(t: Tier) -> usize {
    t as usize
}

/// Share of the path's rate (‰) a tier is served first within.
const PRIORITY_PERMILLE: [u64; TIERS] = [100, 400, 0, 0];
/// How much a priority tier may send at once within its share (ns of it).
const PRIORITY_BURST_NS: u64 = 10_000_000;
/// Weights of the round robin between the tiers, in quanta per round.
pub const DRR_WEIGHT: [i64; TIERS] = [1, 2, 12, 1];
/// Flow queues per tier.
const FLOWS: [usize; TIERS] = [4, 16, 64, 16];

/// Why the shaper dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// CoDel: it waited above target for an interval.
    Aqm,
    /// The queue was full: the fattest flow's oldest packet made room.
    Overlimit,
}

/// Settings of every path queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// CoDel's target and interval.
    pub codel: codel::Params,
    /// Bytes each flow is served per round.
    pub quantum: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            codel: codel::Params::default(),
            quantum: 1514,
        }
    }
}

#[derive(Debug)]
struct TierQueue {
    flows: Flows,
    /// Round-robin credit (bytes).
    deficit: i64,
    /// Priority credit within its priority share, in nano-bytes (bytes ×
    /// 1e9: a refill of rate × elapsed ns loses no fraction).
    tokens: i64,
}

/// One worker's queue for one path.
#[derive(Debug)]
pub struct PathQueue<T> {
    slab: Slab<T>,
    tiers: [TierQueue; TIERS],
    /// The tier the round robin serves next.
    cursor: usize,
    /// When the priority buckets were last filled.
    filled_at: u64,
    settings: Settings,
}

impl<T> PathQueue<T> {
    /// A queue holding at most `limit` packets.
    pub fn new(limit: u32, settings: Settings) -> Self {
        Self {
            slab: Slab::new(limit),
            tiers: FLOWS.map(|n| TierQueue {
                flows: Flows::new(n, settings.quantum),
                deficit: 0,
                tokens: 0,
            }),
            cursor: 0,
            filled_at: 0,
            settings,
        }
    }

    /// Every packet queued, to change in place (a reload renumbering what
    /// they carry; their order and lengths stay).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slab.values_mut()
    }

    /// Takes new CoDel settings (a reload; the flow quantum is not
    /// configurable and stays).
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// Packets held now.
    pub fn packets(&self) -> u32 {
        self.slab.used()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> u64 {
        self.tiers.iter().map(|t| t.flows.bytes()).sum()
    }

    /// Bytes queued in the network-control and real-time tiers (what a
    /// packet of those tiers waits behind).
    pub fn urgent_bytes(&self) -> u64 {
        self.first_tiers().map(|t| t.flows.bytes()).sum()
    }

    /// The tiers that go first ([`Tier::goes_first`]).
    fn first_tiers(&self) -> impl Iterator<Item = &TierQueue> {
        self.tiers
            .iter()
            .zip(Tier::ALL)
            .filter(|(_, tier)| tier.goes_first())
            .map(|(t, _)| t)
    }

    /// Packets queued in `tier`.
    pub fn tier_packets(&self, tier: Tier) -> u32 {
        self.tiers[index(tier)].flows.packets()
    }

    /// Whether network control or real-time packets wait.
    pub fn urgent(&self) -> bool {
        self.first_tiers().any(|t| t.flows.packets() > 0)
    }

    /// Queues `value` (`len` bytes at `now`) in `tier`, in the flow queue
    /// `hash` falls in. When the queue is full, the oldest packet of the
    /// flow that holds the most bytes goes to `drop` first.
    pub fn enqueue(
        &mut self,
        tier: Tier,
        hash: u32,
        value: T,
        len: u32,
        now: u64,
        mut drop: impl FnMut(T, u32, Tier, Cause),
    ) {
        let mut value = value;
        // Twice at most: a full slab frees one slot for the second try.
        for _ in 0..2 {
            let t = &mut self.tiers[index(tier)];
            match t.flows.enqueue(&mut self.slab, hash, value, len, now) {
                Ok(()) => return,
                Err(v) => value = v,
            }
            let fattest = self
                .tiers
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.flows.fattest().map(|(f, bytes)| (i, f, bytes)))
                .max_by_key(|&(_, _, bytes)| bytes);
            let Some((ti, f, _)) = fattest else { break };
            if let Some((v, l)) = self.tiers[ti].flows.drop_head(&mut self.slab, f) {
                drop(v, l, Tier::ALL[ti], Cause::Overlimit);
            }
        }
        drop(value, len, tier, Cause::Overlimit);
    }

    /// The next packet to send at `now` on a path shaped to `rate_bps`, and
    /// its tier; packets CoDel drops on the way go to `drop`. `slack_ns`
    /// is added to CoDel's target in the default and bulk tiers: the
    /// queueing a fast path may hold without delaying delivery, because the
    /// far end's reorder buffer waits that long for the slower paths in
    /// use anyway.
    pub fn dequeue(
        &mut self,
        now: u64,
        rate_bps: u64,
        slack_ns: u64,
        mut drop: impl FnMut(T, u32, Tier, Cause),
    ) -> Option<(T, u32, Tier)> {
        self.fill(now, rate_bps);
        // Each turn either sends, empties a tier through CoDel, or moves
        // the round robin on: a bounded number of turns.
        for _ in 0..4 * TIERS + 4 {
            let (t, priority) = self.pick()?;
            let mut codel = self.settings.codel;
            if t >= index(Tier::Default) {
                codel.target_ns = codel.target_ns.saturating_add(slack_ns);
            }
            let tq = &mut self.tiers[t];
            let tier = Tier::ALL[t];
            match tq.flows.dequeue(&mut self.slab, now, &codel, |v, l| {
                drop(v, l, tier, Cause::Aqm)
            }) {
                Some((v, len)) => {
                    if priority {
                        tq.tokens -= i64::from(len) * 1_000_000_000;
                    } else {
                        tq.deficit -= i64::from(len);
                    }
                    return Some((v, len, tier));
                }
                None => tq.deficit = 0,
            }
        }
        None
    }

    /// The tier to serve next: a priority tier within its share, else the
    /// round robin's. `(tier index, by priority)`.
    fn pick(&mut self) -> Option<(usize, bool)> {
        for (i, t) in self.tiers.iter().enumerate() {
            if PRIORITY_PERMILLE[i] > 0 && t.tokens > 0 && t.flows.packets() > 0 {
                return Some((i, true));
            }
        }
        if self.tiers.iter().all(|t| t.flows.packets() == 0) {
            return None;
        }
        let quantum = i64::from(self.settings.quantum);
        loop {
            let t = &mut self.tiers[self.cursor];
            if t.flows.packets() == 0 {
                // An idle tier keeps no credit (DRR).
                t.deficit = 0;
            } else if t.deficit > 0 {
                return Some((self.cursor, false));
            } else {
                // Its turn is over: credit for the next one, and on.
                t.deficit += DRR_WEIGHT[self.cursor] * quantum;
            }
            self.cursor = (self.cursor + 1) % TIERS;
        }
    }

    /// Takes the next packet, highest tier first, regardless of the rate
    /// and CoDel (its path went away: the caller schedules it again).
    pub fn take(&mut self) -> Option<(T, u32, Tier)> {
        let keep = codel::Params {
            target_ns: u64::MAX,
            ..self.settings.codel
        };
        for (i, t) in self.tiers.iter_mut().enumerate() {
            if let Some((v, len)) = t.flows.dequeue(&mut self.slab, 0, &keep, |_, _| {}) {
                return Some((v, len, Tier::ALL[i]));
            }
        }
        None
    }

    /// Fills the priority buckets for the time since the last dequeue.
    fn fill(&mut self, now: u64, rate_bps: u64) {
        let elapsed = now.saturating_sub(self.filled_at).min(PRIORITY_BURST_NS);
        self.filled_at = now;
        for (t, permille) in self.tiers.iter_mut().zip(PRIORITY_PERMILLE) {
            if permille == 0 {
                continue;
            }
            // The share in bytes per second: rate · ‰ / 8000; × ns is nano-bytes.
            let per_s = rate_bps.saturating_mul(permille) / 8_000;
            let burst = i64::try_from(per_s.saturating_mul(PRIORITY_BURST_NS))
                .unwrap_or(i64::MAX)
                .max(2 * i64::from(self.settings.quantum) * 1_000_000_000);
            let add = i64::try_from(per_s.saturating_mul(elapsed)).unwrap_or(i64::MAX);
            t.tokens = t.tokens.saturating_add(add).min(burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shared::PathCells;
    use super::*;

    /// CoDel out of the way: these tests look at the tiers alone.
    fn no_aqm() -> Settings {
        Settings {
            codel: codel::Params {
                target_ns: 3_600_000_000_000,
                ..codel::Params::default()
            },
            ..Settings::default()
        }
    }

    fn no_drop<T>(_: T, _: u32, _: Tier, _: Cause) {
        panic!("nothing should be dropped here");
    }

    /// Drains `q` as a path of `rate` would, from `now`, for `ns`: the tiers
    /// of what left, in order.
    fn drain(q: &mut PathQueue<u32>, rate: u64, mut now: u64, ns: u64) -> Vec<(Tier, u32)> {
        let end = now + ns;
        let mut out = Vec::new();
        while now < end {
            let Some((_, len, tier)) = q.dequeue(now, rate, 0, no_drop) else {
                break;
            };
            out.push((tier, len));
            now += shared::wire_ns(u64::from(len), rate);
        }
        out
    }

    fn bytes_of(out: &[(Tier, u32)], tier: Tier) -> u64 {
        out.iter()
            .filter(|o| o.0 == tier)
            .map(|o| u64::from(o.1))
            .sum()
    }

    #[test]
    fn priority_tiers_go_first_within_their_share() {
        let mut q = PathQueue::new(8192, no_aqm());
        for i in 0..2000 {
            q.enqueue(Tier::Bulk, i, i, 1500, 0, no_drop);
            q.enqueue(Tier::Default, i, i, 1500, 0, no_drop);
        }
        for i in 0..20 {
            q.enqueue(Tier::Realtime, i, i, 200, 0, no_drop);
            q.enqueue(Tier::NetworkControl, 0, i, 66, 0, no_drop);
        }
        let out = drain(&mut q, 10_000_000, 1_000_000_000, 1_000_000_000);
        // Every control packet, then every real-time one, before the rest.
        assert!(out[..20].iter().all(|o| o.0 == Tier::NetworkControl));
        assert!(out[20..40].iter().all(|o| o.0 == Tier::Realtime));
        // Default and bulk share what is left 12:1 in bytes.
        let (d, b) = (bytes_of(&out, Tier::Default), bytes_of(&out, Tier::Bulk));
        let share = b as f64 / (d + b) as f64;
        assert!((share - 1.0 / 13.0).abs() < 0.01, "bulk's share {share}");
    }

    #[test]
    fn a_flooding_realtime_tier_gets_its_share_first_and_no_more() {
        let rate = 10_000_000;
        let mut q = PathQueue::new(8192, no_aqm());
        for i in 0..4000 {
            q.enqueue(Tier::Realtime, i, i, 1000, 0, no_drop);
            q.enqueue(Tier::Default, i, i, 1000, 0, no_drop);
        }
        // 2 s of a 10 Mbit/s path.
        let out = drain(&mut q, rate, 0, 2_000_000_000);
        let (r, d) = (
            bytes_of(&out, Tier::Realtime),
            bytes_of(&out, Tier::Default),
        );
        // Real-time: its 40 % by priority plus 2/14 of the remaining 60 %.
        let want = 0.4 + 0.6 * 2.0 / 14.0;
        let share = r as f64 / (r + d) as f64;
        assert!(
            (share - want).abs() < 0.02,
            "real-time share {share}, want {want}"
        );
    }

    #[test]
    fn a_full_queue_drops_from_the_fattest_flow() {
        let mut q = PathQueue::new(16, Settings::default());
        let mut dropped = Vec::new();
        for i in 0..15 {
            q.enqueue(Tier::Bulk, 7, i, 1500, 0, |v, _, t, c| {
                dropped.push((v, t, c))
            });
        }
        q.enqueue(Tier::Realtime, 1, 100, 200, 0, |v, _, t, c| {
            dropped.push((v, t, c))
        });
        assert!(dropped.is_empty());
        q.enqueue(Tier::Realtime, 1, 101, 200, 0, |v, _, t, c| {
            dropped.push((v, t, c))
        });
        assert_eq!(dropped, vec![(0, Tier::Bulk, Cause::Overlimit)]);
        assert_eq!(q.tier_packets(Tier::Realtime), 2);
        assert!(q.urgent());
    }

    /// `workers` workers with uneven loads, each polling its queue at
    /// random moments 20–300 µs apart, send on one shared path clock: over
    /// every 100 ms window the path carries its rate within 1 %.
    fn aggregate_rate_holds(workers: usize, seed: u64) {
        let rate: u64 = 30_000_000;
        let cells = PathCells::new(workers);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut queues: Vec<PathQueue<u32>> = (0..workers)
            .map(|_| PathQueue::new(4096, Settings::default()))
            .collect();
        let mut next_poll: Vec<u64> = vec![0; workers];
        let mut reserved: Vec<Option<(u64, u32)>> = vec![None; workers];
        let (mut offered, mut by_worker) = (vec![0u64; workers], vec![0u64; workers]);
        // Offered: 1.5× the rate, 90 % of it to worker 0.
        let offered_gap = shared::wire_ns(1200, rate * 3 / 2);
        let mut next_arrival = 0u64;
        let window = 100_000_000u64;
        let mut sent = vec![0u64; 30];
        let end = 30 * window;
        let mut now = 0;
        while now < end {
            now = next_arrival.min(*next_poll.iter().min().unwrap());
            if now == next_arrival {
                let w = if workers == 1 || rng.u32(0..10) < 9 {
                    0
                } else {
                    1
                };
                let len = rng.u32(200..=1500);
                let tier = if rng.u32(0..50) == 0 {
                    Tier::Realtime
                } else {
                    Tier::Default
                };
                queues[w].enqueue(tier, rng.u32(..), 0, len, now, |_, _, _, _| {});
                offered[w] += u64::from(len);
                next_arrival += offered_gap * u64::from(len) / 1200;
                continue;
            }
            // As a worker does: one packet reserved at a time, sent when its
            // time comes (counted then), the next reserved only then.
            let w = next_poll.iter().position(|&t| t == now).unwrap();
            loop {
                if reserved[w].is_none() {
                    let Some((_, len, _)) = queues[w].dequeue(now, rate, 0, |_, _, _, _| {}) else {
                        break;
                    };
                    reserved[w] = Some((cells.reserve(now, u64::from(len), rate), len));
                }
                match reserved[w] {
                    Some((at, len)) if at <= now => {
                        if let Some(s) = sent.get_mut((now / window) as usize) {
                            *s += u64::from(len);
                        }
                        by_worker[w] += u64::from(len);
                        reserved[w] = None;
                    }
                    _ => break,
                }
            }
            // Polls 20–300 µs apart, or sleeps until its reservation (late by
            // up to 100 µs), whichever is first.
            let poll = now + rng.u64(20_000..300_000);
            next_poll[w] = match reserved[w] {
                Some((at, _)) if workers > 1 && w == 1 => at.max(now + 1) + rng.u64(0..100_000),
                _ => poll,
            };
        }
        // The worker with a tenth of the load and late wake-ups still gets
        // what it asks (it asks for less than half the rate).
        if workers > 1 {
            let got = by_worker[1] as f64 / offered[1] as f64;
            assert!(got > 0.9, "worker 1 sent {got:.3} of what it was offered");
        }
        let want = rate / 8 / 10;
        // The first window starts the queues.
        for (i, s) in sent.iter().enumerate().skip(1) {
            let err = (*s as f64 - want as f64) / want as f64;
            assert!(
                err.abs() < 0.01,
                "{workers} worker(s), window {i}: {s} bytes, want {want} ({err:+.4})"
            );
        }
    }

    #[test]
    fn the_aggregate_rate_holds_within_one_percent_over_100ms() {
        for seed in 0..4 {
            aggregate_rate_holds(1, seed);
            aggregate_rate_holds(2, seed);
        }
    }
}
