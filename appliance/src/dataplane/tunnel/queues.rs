//! A worker's queues in front of the shaped paths (`tunnel::shaper`): what
//! it scheduled onto a path waits here and leaves at the path's rate clock.
//!
//! The clock is shared by every worker. A worker takes a packet out of its
//! queue, reserves the packet's time on the clock (after whatever the
//! others reserved), and sends it when that time comes; it reserves its
//! next packet only then. So the workers are served in the order they ask,
//! one packet each, and a worker that sleeps until its reservation does
//! not lose its turn to one that polls all the time.

use crate::config::tunnel::Tier;
use crate::stats::{DropReason, WorkerCounters};
use crate::time::Time;
use crate::tunnel::shaper::shared::{PathCells, DEFER_NS};
use crate::tunnel::shaper::{Cause, PathQueue, TIERS};
use crate::tunnel::{scheduler, PathCounters, TunnelTable, MAX_PATHS};

use super::departures::{Departures, Held, Outlet};

/// How long a worker that holds back for another's urgent packets waits
/// before it looks again.
const DEFER_POLL_NS: u64 = 50_000;

/// A packet taken out of a queue with its time reserved on the clock.
#[derive(Debug)]
struct Reserved {
    held: Held,
    len: u32,
    tier: Tier,
    at: u64,
}

/// One shaped path's queue on this worker.
#[derive(Debug)]
struct Shaped {
    q: PathQueue<Held>,
    next: Option<Reserved>,
    /// Since when this worker holds back for another's urgent packets (0:
    /// it does not).
    deferring_since: u64,
    published: Published,
}

/// What a worker last published of its queue for a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Published {
    bytes: u64,
    urgent_bytes: u64,
    tiers: [u32; TIERS],
}

/// One worker's queues, by path index (`None`: the path is not shaped).
#[derive(Debug)]
pub struct PathQueues {
    paths: Vec<Option<Shaped>>,
    /// The queues of paths a reload removed, until the next drain schedules
    /// what they hold again.
    orphans: Vec<Shaped>,
    /// When the queues next need [`Self::drain`].
    wake_at: Option<Time>,
}

/// What a drain needs to know of the paths this burst.
pub(super) struct Paths<'a> {
    pub table: &'a TunnelTable,
    /// Per path index: the rate it is shaped to now.
    pub rate_bps: &'a [u64; MAX_PATHS],
    /// Per path index: CoDel's slack in the default and bulk tiers.
    pub slack_ns: &'a [u64; MAX_PATHS],
}

impl PathQueues {
    /// A worker's queues for `table`'s shaped paths.
    pub fn new(table: &TunnelTable) -> Self {
        let paths = (0..table.paths.len().min(MAX_PATHS))
            .map(|p| Self::queue(table, p))
            .collect();
        Self {
            paths,
            orphans: Vec::new(),
            wake_at: None,
        }
    }

    /// An empty queue for `table`'s path `p` (`None`: not shaped).
    fn queue(table: &TunnelTable, p: usize) -> Option<Shaped> {
        let sh = table.shaping.as_ref()?;
        Some(Shaped {
            q: PathQueue::new(*sh.packets.get(p)?, sh.settings),
            next: None,
            deferring_since: 0,
            published: Published::default(),
        })
    }

    /// Takes a reloaded table: a path that stays keeps its queue and what
    /// waits in it (`carried`, from [`TunnelTable::carried_from`]), a path
    /// added gets an empty one (allocated here, once per reload), and the
    /// queues of removed paths wait for [`Self::take_orphan`]. Every queue
    /// takes the new CoDel settings.
    pub fn retable(&mut self, table: &TunnelTable, carried: &[Option<usize>]) {
        let old = std::mem::take(&mut self.paths);
        let (kept, removed) = crate::tunnel::carry_over(old, carried, |p| Self::queue(table, p));
        self.paths = kept;
        self.orphans.extend(removed.into_iter().flatten());
        if let Some(sh) = &table.shaping {
            self.set_settings(sh.settings);
        }
    }

    /// Every packet waiting (reserved ones included), to change in place.
    pub fn for_each_held(&mut self, mut f: impl FnMut(&mut Held)) {
        let all = self
            .paths
            .iter_mut()
            .flatten()
            .chain(self.orphans.iter_mut());
        for s in all {
            if let Some(r) = &mut s.next {
                f(&mut r.held);
            }
            s.q.values_mut().for_each(&mut f);
        }
    }

    /// The next packet that waited for a path a reload removed (the caller
    /// schedules it again).
    pub fn take_orphan(&mut self) -> Option<Held> {
        loop {
            let s = self.orphans.last_mut()?;
            if let Some(r) = s.next.take() {
                return Some(r.held);
            }
            if let Some((held, _, _)) = s.q.take() {
                return Some(held);
            }
            self.orphans.pop();
        }
    }

    /// Every queue takes new CoDel settings (a reload).
    pub fn set_settings(&mut self, settings: crate::tunnel::shaper::Settings) {
        for s in self.paths.iter_mut().flatten() {
            s.q.set_settings(settings);
        }
    }

    /// Packets every queue can hold together.
    pub fn capacity(table: &TunnelTable) -> usize {
        table
            .shaping
            .as_ref()
            .map_or(0, |sh| sh.packets.iter().map(|&n| n as usize).sum())
    }

    /// Whether path `p` is shaped (its packets wait here).
    #[inline]
    pub fn shaped(&self, p: usize) -> bool {
        matches!(self.paths.get(p), Some(Some(_)))
    }

    /// Whether no queue holds anything (nothing for a drain to do).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.orphans.is_empty()
            && self
                .paths
                .iter()
                .flatten()
                .all(|s| s.next.is_none() && s.q.packets() == 0)
    }

    /// Whether path `p`'s queue holds anything.
    #[inline]
    pub fn holds(&self, p: usize) -> bool {
        matches!(self.paths.get(p), Some(Some(s)) if s.next.is_some() || s.q.packets() > 0)
    }

    /// Hands `held` to shaped path `p`. With nothing waiting before it, it
    /// reserves its time on the clock at once and leaves now if the path
    /// has room (the queue's work is for a backlog, and there is none);
    /// otherwise it is queued, and what a full queue drops to make room is
    /// counted and discarded.
    #[inline]
    pub(super) fn offer(
        &mut self,
        p: usize,
        held: Held,
        now: Time,
        paths: &Paths<'_>,
        out: &mut Departures,
        o: &mut Outlet<'_>,
    ) {
        let worker = out.worker();
        let len = u32::try_from(held.wire_len(paths.table.tag_len())).unwrap_or(u32::MAX);
        let (Some(Some(s)), Some(cells), Some(pc)) = (
            self.paths.get_mut(p),
            paths.table.shaping.as_ref().and_then(|sh| sh.cells.get(p)),
            paths.table.path_counters.get(p).map(|c| c.worker(worker)),
        ) else {
            out.discard(held);
            return;
        };
        let t = now.as_nanos();
        let idle = s.q.packets() == 0 && s.next.is_none();
        if idle && (held.urgent() || !cells.others_urgent(worker)) {
            let tier = held.tier;
            let at = cells.reserve(t, u64::from(len), paths.rate_bps[p]);
            if at > t {
                s.next = Some(Reserved {
                    held,
                    len,
                    tier,
                    at,
                });
            } else if out.depart(p, held, now, o) {
                let tc = &pc.tiers[tier as usize];
                tc.packets.inc();
                tc.bytes.add(u64::from(len));
            }
            return;
        }
        // Its flow queue: hashed only for a packet that has to wait.
        let (tier, flow, counters) = (held.tier, scheduler::flow_hash(&held.pkt), o.counters);
        s.q.enqueue(tier, flow, held, len, t, |v, _, t, cause| {
            count_drop(pc, counters, t, cause);
            out.discard(v);
        });
    }

    /// Takes the next packet out of path `p`'s queue without regard to its
    /// rate (its path went away: the caller schedules it again).
    pub fn take(&mut self, p: usize) -> Option<Held> {
        let s = self.paths.get_mut(p)?.as_mut()?;
        if let Some(r) = s.next.take() {
            return Some(r.held);
        }
        s.q.take().map(|(held, _, _)| held)
    }

    /// Lets out of every queue what its path's rate clock allows at `now`;
    /// returns how many packets left.
    pub(super) fn drain(
        &mut self,
        now: Time,
        paths: &Paths<'_>,
        out: &mut Departures,
        o: &mut Outlet<'_>,
    ) -> usize {
        self.wake_at = None;
        let (table, counters) = (paths.table, o.counters);
        let Some(shaping) = table.shaping.as_ref() else {
            return 0;
        };
        let t = now.as_nanos();
        let worker = out.worker();
        let mut sent = 0;
        for (p, s) in self.paths.iter_mut().enumerate() {
            let (Some(s), Some(cells)) = (s.as_mut(), shaping.cells.get(p)) else {
                continue;
            };
            let Some(pc) = table.path_counters.get(p).map(|c| c.worker(worker)) else {
                continue;
            };
            let (rate, slack) = (paths.rate_bps[p], paths.slack_ns[p]);
            loop {
                if s.next.is_none() {
                    // Another worker's urgent packets go first, for a while.
                    if !s.q.urgent() && s.q.packets() > 0 && cells.others_urgent(worker) {
                        if s.deferring_since == 0 {
                            s.deferring_since = t;
                        }
                        if t.saturating_sub(s.deferring_since) < DEFER_NS {
                            wake(&mut self.wake_at, t + DEFER_POLL_NS);
                            break;
                        }
                    } else {
                        s.deferring_since = 0;
                    }
                    let Some((held, len, tier)) =
                        s.q.dequeue(t, rate, slack, |v, _, tier, cause| {
                            count_drop(pc, counters, tier, cause);
                            out.discard(v);
                        })
                    else {
                        break;
                    };
                    let at = cells.reserve(t, u64::from(len), rate);
                    s.next = Some(Reserved {
                        held,
                        len,
                        tier,
                        at,
                    });
                }
                match s.next.take() {
                    Some(r) if r.at <= t => {
                        if out.depart(p, r.held, now, o) {
                            let tc = &pc.tiers[r.tier as usize];
                            tc.packets.inc();
                            tc.bytes.add(u64::from(r.len));
                        }
                        sent += 1;
                    }
                    Some(r) => {
                        wake(&mut self.wake_at, r.at);
                        s.next = Some(r);
                        break;
                    }
                    None => break,
                }
            }
            publish(s, cells, pc, worker);
        }
        sent
    }

    /// When the queues next need [`Self::drain`].
    pub fn next_deadline(&self) -> Option<Time> {
        self.wake_at
    }
}

/// Brings `wake_at` forward to `at` (ns).
fn wake(wake_at: &mut Option<Time>, at: u64) {
    let at = Time::from_nanos(at);
    *wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
}

/// Publishes what this worker holds for a path when it changed: its bytes
/// (the schedulers' backlog), whether urgent packets wait, and the tiers'
/// gauges. Once per drain, not per packet.
fn publish(s: &mut Shaped, cells: &PathCells, pc: &PathCounters, worker: usize) {
    let reserved = s.next.as_ref().map_or(0, |r| u64::from(r.len));
    let now = Published {
        bytes: s.q.bytes() + reserved,
        urgent_bytes: s.q.urgent_bytes(),
        tiers: Tier::ALL.map(|t| s.q.tier_packets(t)),
    };
    if now == s.published {
        return;
    }
    cells.set_queued(worker, now.bytes, now.urgent_bytes);
    if (now.urgent_bytes > 0) != (s.published.urgent_bytes > 0) {
        cells.set_urgent(worker, now.urgent_bytes > 0);
    }
    for (c, n) in pc.tiers.iter().zip(now.tiers) {
        c.queued.set(u64::from(n));
    }
    s.published = now;
}

/// Counts a packet a path's shaper dropped, for its tier, the path and the
/// worker.
fn count_drop(pc: &PathCounters, counters: &WorkerCounters, tier: Tier, cause: Cause) {
    let tc = &pc.tiers[tier as usize];
    let reason = match cause {
        Cause::Aqm => {
            tc.aqm_drops.inc();
            DropReason::ShaperAqm
        }
        Cause::Overlimit => {
            tc.overlimit_drops.inc();
            DropReason::ShaperOverlimit
        }
    };
    pc.drops.inc(reason);
    counters.drop_one(reason);
}
