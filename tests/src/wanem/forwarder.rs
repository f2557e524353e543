//! The forwarding thread of one link direction: receive, decide, hold, release on time.
//!
//! Frames wait in a binary heap ordered by release time. The thread sleeps in `ppoll` on the
//! receiving socket until a frame arrives or the next release is near, then busy-waits the
//! rest (still receiving, so arrival timestamps stay exact). How early it stops sleeping
//! adapts to two running averages: how late `ppoll` wakes up (20-100 µs on this kind of
//! VM, more from an idle CPU), of which it spins three times; and the gap between releases, of
//! which it spins at most a tenth. So sparse traffic (pings, probes) leaves within a few
//! microseconds, while at high packet rates it mostly sleeps up to the due time and is
//! late by about one wake-up latency, instead of burning a whole core spinning between
//! frames 40 µs apart. With nothing held it sleeps up to `IDLE_WAIT`. Lateness is
//! measured for every frame and published in the counters.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use super::link::SharedLink;
use super::model::{DirModel, Verdict};
use super::port::Port;
use super::stats::DropReason;

/// A sleep shorter than this is not worth a system call: busy-wait instead.
const MIN_SLEEP: Duration = Duration::from_micros(15);
/// Longest busy-wait before a release.
const SPIN_MAX: Duration = Duration::from_millis(1);
/// Longest sleep with nothing to release, bounding shutdown and parameter-change latency.
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// Frames received per wake-up before releases are checked again.
const BATCH: usize = 16;
/// Frame buffers kept for reuse.
const POOL_MAX: usize = 4096;

/// A frame held until `due`.
#[derive(Debug)]
struct Held {
    due: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// Everything one direction's thread owns.
#[derive(Debug)]
pub struct Forwarder {
    pub dir: usize,
    pub link: Arc<SharedLink>,
    pub rx: Arc<Port>,
    pub tx: Arc<Port>,
    pub start: Instant,
    pub shutdown: Arc<AtomicBool>,
    pub seed: u64,
}

impl Forwarder {
    /// Runs until `shutdown` is set.
    pub fn run(self) {
        // Default timer slack (50 µs) would make every sleep that much late.
        if let Err(e) = nix::sys::prctl::set_timerslack(1) {
            log::warn!("set_timerslack: {e}");
        }
        let shared = &self.link.dirs[self.dir];
        let mut generation = shared.generation();
        let mut model = DirModel::new(shared.params(), self.seed);
        let mut st = State {
            heap: BinaryHeap::new(),
            pool: Vec::new(),
            seq: 0,
        };
        let mut buf = vec![0u8; 65536];
        let mut spin_budget = SpinBudget::default();
        while !self.shutdown.load(Ordering::Relaxed) {
            if shared.generation() != generation {
                generation = shared.generation();
                model.set_params(shared.params());
            }
            self.release_due(&mut st, &mut spin_budget);
            let spin = spin_budget.margin().max(MIN_SLEEP);
            let now = Instant::now();
            let wait = match st.heap.peek() {
                None => IDLE_WAIT,
                Some(Reverse(h)) => h.due.saturating_duration_since(now).saturating_sub(spin),
            };
            if !wait.is_zero() {
                let mut fds = [PollFd::new(self.rx.as_fd(), PollFlags::POLLIN)];
                if let Ok(0) = ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None) {
                    // Timed out: how much later than asked did we wake?
                    spin_budget.woke_late(now.elapsed().saturating_sub(wait));
                }
            }
            for _ in 0..BATCH {
                if !self.receive(&mut st, &mut model, &mut buf) {
                    break;
                }
            }
            // Busy-wait for a release due within SPIN, still taking in arrivals so their
            // timestamps stay exact.
            loop {
                let now = Instant::now();
                match st.heap.peek() {
                    Some(Reverse(h)) if h.due > now && h.due - now <= spin => {}
                    _ => break,
                }
                if !self.receive(&mut st, &mut model, &mut buf) {
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// Takes one frame from the socket if there is one; false when there was none.
    fn receive(&self, st: &mut State, model: &mut DirModel, buf: &mut [u8]) -> bool {
        let (n, now) = match self.rx.recv(buf) {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            // A link taken down (carrier off) reports ENETDOWN once on its sockets.
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENETDOWN as i32) => return false,
            Err(e) => {
                log::warn!("{}: receive failed: {e}", self.rx.name);
                return false;
            }
        };
        let stats = &self.link.dirs[self.dir].stats;
        stats.rx_frames.fetch_add(1, Ordering::Relaxed);
        stats.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(reason) = self.link.blocked_at(self.dir, now) {
            stats.drop(reason);
            return true;
        }
        match model.on_frame(now, n) {
            Verdict::Drop(reason) => stats.drop(reason),
            Verdict::Forward { release } => {
                let mut frame = st.pool.pop().unwrap_or_default();
                frame.clear();
                frame.extend_from_slice(&buf[..n]);
                st.seq += 1;
                st.heap.push(Reverse(Held {
                    due: release,
                    seq: st.seq,
                    frame,
                }));
            }
        }
        if model.params().rate.is_some() {
            stats
                .queued_bytes
                .store(model.queued_bytes(now), Ordering::Relaxed);
        }
        true
    }

    /// Sends every held frame whose time has come (or drops it if the link went down or
    /// was blackholed while it was in flight).
    fn release_due(&self, st: &mut State, spin_budget: &mut SpinBudget) {
        let stats = &self.link.dirs[self.dir].stats;
        loop {
            let now = Instant::now();
            match st.heap.peek() {
                Some(Reverse(h)) if h.due <= now => {}
                _ => return,
            }
            let Some(Reverse(held)) = st.heap.pop() else {
                return;
            };
            if let Some(reason) = self.link.blocked_at(self.dir, held.due) {
                stats.drop(reason);
            } else {
                // Lateness is taken when the send starts: on veth, send() itself goes on to
                // deliver the frame into the receiving namespace (tens of µs of the peer's
                // stack, e.g. answering a ping), which is not release delay.
                let sent = Instant::now();
                match self.tx.send(&held.frame) {
                    Ok(()) => {
                        spin_budget.released(sent);
                        let late = sent.saturating_duration_since(held.due).as_nanos() as u64;
                        let at_us = (sent - self.start).as_micros().max(1) as u64;
                        stats.forwarded(held.frame.len(), at_us, late);
                    }
                    Err(e) => {
                        log::debug!("{}: send failed: {e}", self.tx.name);
                        stats.drop(DropReason::TxError);
                    }
                }
            }
            if st.pool.len() < POOL_MAX {
                st.pool.push(held.frame);
            }
        }
    }
}

/// Running estimates that size the busy-wait before each release. Both rise fast and
/// decay slowly: one late wake-up, or one long pause in the traffic, is likely to repeat.
#[derive(Debug)]
struct SpinBudget {
    /// How much later than asked `ppoll` wakes up.
    wake_late_ns: f64,
    /// Time between consecutive releases.
    gap_ns: f64,
    last_release: Option<Instant>,
}

impl Default for SpinBudget {
    fn default() -> Self {
        // Start cautious: assume an idle CPU and sparse traffic.
        SpinBudget {
            wake_late_ns: 100_000.0,
            gap_ns: 1e9,
            last_release: None,
        }
    }
}

fn ewma(avg: &mut f64, x: f64) {
    let alpha = if x > *avg { 0.5 } else { 0.05 };
    *avg += alpha * (x - *avg);
}

impl SpinBudget {
    fn woke_late(&mut self, late: Duration) {
        ewma(&mut self.wake_late_ns, late.as_nanos() as f64);
    }

    fn released(&mut self, at: Instant) {
        if let Some(prev) = self.last_release.replace(at) {
            ewma(&mut self.gap_ns, (at - prev).as_nanos() as f64);
        }
    }

    /// How long before a due time to stop sleeping: three times the usual wake-up lateness
    /// (wake-ups from an idle CPU have a long tail), but no more than a tenth of the gap
    /// between releases (a ~10 % CPU budget for spinning).
    fn margin(&self) -> Duration {
        let ns = (3.0 * self.wake_late_ns).min(0.1 * self.gap_ns);
        Duration::from_nanos(ns as u64).min(SPIN_MAX)
    }
}

#[derive(Debug)]
struct State {
    heap: BinaryHeap<Reverse<Held>>,
    pool: Vec<Vec<u8>>,
    seq: u64,
}
