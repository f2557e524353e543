//! Per-lane reorder buffer at the receiving end of a multipath WAN tunnel.
//!
//! The sender stripes a lane's packets over up to [`MAX_PATHS`] FIFO paths of
//! different delay and numbers them with a wrapping `u32` lane sequence number.
//! [`Lane`] hands them back in sequence order, so that one TCP flow can use
//! all paths without seeing reordering it would take for loss.
//!
//! How a hole (the missing head) ends, in this order:
//! - it arrives: it and the consecutive held packets go out in order;
//! - it is *proven* lost: every live path has delivered a packet with a
//!   higher *mark* (sequence numbers the sender had assigned when sending it:
//!   `seq + 1` for an ordered packet, `seq` for an unordered one). A path is
//!   FIFO, so nothing sent before that packet can still be on it;
//! - its deadline passes: with T the send time of the lowest held packet (the
//!   hole was sent no later), each live path p that does not prove it could
//!   deliver it until `T + recent_p + max(jitter_floor, 4 × mdev_p)` on the
//!   receiver's clock; the deadline is the latest of these, and never later
//!   than `max_hold` after the longest-waiting held packet was held;
//! - a packet arrives beyond the ring: the oldest holes are skipped to fit.
//!
//! Deadlines are judged only in [`Lane::poll`], never while a packet is pushed:
//! a caller that reads several receive queues (one per path) calls `poll` once
//! it has read them all, so a missing packet that already arrived on another
//! queue is never given up because the caller was late to read it.
//!
//! Per-path delays are `receiver clock − sent_us`: each contains the same
//! unknown clock offset, which cancels in every comparison between paths.
//!
//! Pure and allocation-free after [`Lane::new`]: no I/O, no threads, no clock of
//! its own (the caller passes its monotonic time in nanoseconds).
#![deny(clippy::unwrap_used, clippy::expect_used)]

/// Highest number of paths a lane can be striped over (path ids are `0..16`).
pub const MAX_PATHS: usize = 16;

/// How far ahead of the head a sequence number may be before it is taken for
/// garbage: closer than this, the ring is made to fit by skipping holes, so
/// in-window traffic is never refused; farther, the packet is `OutOfWindow`.
pub const JUMP_LIMIT: u32 = 1 << 20;

/// Largest accepted ring, so that a forced advance stays far below `JUMP_LIMIT`.
const MAX_CAPACITY: usize = 1 << 16;
const MIN_DEDUP_WINDOW: u32 = 512;
const MAX_DEDUP_WINDOW: u32 = 1 << 22;
/// Caps on durations so that all deadline arithmetic stays well inside `i64`.
const MAX_DURATION_NS: u64 = 3_600_000_000_000;
/// The base (minimum) delay is the minimum over two buckets of this length, so
/// it forgets a route change after 5–10 s.
const BASE_BUCKET_NS: u64 = 5_000_000_000;

/// Tuning of one lane. [`Lane::new`] normalises out-of-range values (see there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Packets the ring can hold (rounded up to a power of two, 2..=65536).
    pub capacity: usize,
    /// Hard cap on how long any packet waits for a hole before it.
    pub max_hold_ns: u64,
    /// Smallest safety margin added to a path's recent delay.
    pub jitter_floor_ns: u64,
    /// Sequence numbers behind the head remembered for duplicate detection
    /// (rounded up to a power of two, at least 512 and at least `capacity`).
    pub dedup_window: u32,
}

impl Config {
    /// The ring a lane of this config gets: `capacity` rounded up to a
    /// power of two in 2..=65536.
    pub fn ring_size(&self) -> usize {
        self.capacity.clamp(2, MAX_CAPACITY).next_power_of_two()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            capacity: 1024,
            max_hold_ns: 100_000_000,
            jitter_floor_ns: 2_000_000,
            dedup_window: 4096,
        }
    }
}

/// What the tunnel header and the receive path tell about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Lane sequence number; for an unordered packet the next sequence number
    /// the sender had not yet assigned.
    pub seq: u32,
    /// Delivered at once, never buffered; its `seq` only serves as a mark.
    pub unordered: bool,
    /// Path it was sent on (`< MAX_PATHS`, else the packet is `OutOfWindow`).
    pub path: u8,
    /// Sender's send time, µs of its own (unsynchronised, wrapping) clock.
    pub sent_us: u32,
    /// Receiver's monotonic clock at arrival.
    pub now_ns: u64,
}

/// How a packet handed to the output was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In lane-sequence order.
    InOrder,
    /// Arrived after its hole was skipped: forwarded anyway, out of order.
    Late,
    /// An unordered packet, passed straight through.
    Unordered,
}

/// Outcome of [`Lane::push`] for the pushed packet itself. Dropped packets are
/// handed back so the caller frees and counts them.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<T> {
    /// Handed to the output during this call (in order, late or unordered).
    Delivered,
    /// Buffered behind a hole.
    Held,
    /// A copy of it was already delivered or is held.
    Duplicate(T),
    /// Too far behind the head to tell from a duplicate.
    Stale(T),
    /// Garbage: too far ahead, exactly half the sequence space away, or an
    /// invalid path id.
    OutOfWindow(T),
}

/// Event counts of one lane (plain integers: the caller copies them out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Delivered in order on arrival, without waiting.
    pub in_order: u64,
    /// Delivered in order after waiting in the ring.
    pub held: u64,
    /// Sequence numbers skipped because their loss was proven.
    pub released_early: u64,
    /// Sequence numbers skipped at their deadline.
    pub timed_out: u64,
    /// Delivered as [`Delivery::Late`].
    pub late: u64,
    /// Dropped as [`Verdict::Duplicate`].
    pub duplicate: u64,
    /// Dropped as [`Verdict::Stale`].
    pub stale: u64,
    /// Sequence numbers skipped to make room for a packet beyond the ring.
    pub overflow: u64,
    /// Dropped as [`Verdict::OutOfWindow`].
    pub out_of_window: u64,
    /// Unordered packets passed through.
    pub unordered: u64,
    /// Calls to [`Lane::resync`].
    pub resyncs: u64,
    /// Late packets dropped (as [`Verdict::Stale`]) because they spent longer
    /// in the network than any hole waits: their path's base delay plus
    /// `max_hold`. Such a packet was stuck somewhere (a sender's ring while
    /// its port had no carrier, say) and is no use to anyone now.
    pub expired: u64,
}

/// Delay statistics of one path. Delays are one-way and include the unknown
/// offset between the two appliances' clocks, so they are given relative to a
/// per-lane reference (the first sample since `new`/`resync`): only
/// differences between paths are meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathDelay {
    /// Minimum delay over the last 5–10 s (the path without queueing), µs.
    pub base_us: i64,
    /// Recent delay (follows increases at once, decreases slowly), µs.
    pub recent_us: i64,
    /// Mean deviation of the delay (jitter), µs.
    pub jitter_us: i64,
    /// Margin this lane adds to `recent_us` for deadlines:
    /// `max(jitter_floor, 4 × jitter)`, µs.
    pub margin_us: i64,
    /// Samples taken since `new`/`resync`.
    pub samples: u64,
}

/// A packet waiting in the ring.
struct Slot<T> {
    pkt: T,
    seq: u32,
    held_ns: u64,
    /// Its one-way delay relative to the lane reference, so the deadline can
    /// place its send time on the receiver's clock.
    delay_ns: i64,
}

/// Per-path state: the FIFO mark and the delay estimators.
#[derive(Clone, Copy, Debug, Default)]
struct PathState {
    /// Highest mark seen on this path (serial order), if any.
    mark: Option<u32>,
    samples: u64,
    recent_ns: i64,
    avg_ns: i64,
    mdev_ns: i64,
    base_cur_ns: i64,
    base_prev_ns: i64,
    bucket_start_ns: u64,
}

impl PathState {
    fn sample(&mut self, d: i64, now_ns: u64) {
        if self.samples == 0 {
            self.recent_ns = d;
            self.avg_ns = d;
            self.mdev_ns = 0;
            self.base_cur_ns = d;
            self.base_prev_ns = i64::MAX;
            self.bucket_start_ns = now_ns;
        } else {
            // Fast up: a growing queue delays the packets still in flight at
            // least as much as the last one. Slow down (gain 1/8): one short
            // dip must not make the deadline of the next hole too early.
            self.recent_ns = if d >= self.recent_ns {
                d
            } else {
                self.recent_ns - (self.recent_ns - d) / 8
            };
            // Mean and mean deviation as in TCP's RTO estimator (RFC 6298).
            let err = d - self.avg_ns;
            self.avg_ns += err / 8;
            self.mdev_ns += (err.abs() - self.mdev_ns) / 4;
            let age = now_ns.saturating_sub(self.bucket_start_ns);
            if age >= 2 * BASE_BUCKET_NS {
                self.base_prev_ns = i64::MAX;
                self.base_cur_ns = d;
                self.bucket_start_ns = now_ns;
            } else if age >= BASE_BUCKET_NS {
                self.base_prev_ns = self.base_cur_ns;
                self.base_cur_ns = d;
                self.bucket_start_ns = now_ns;
            } else {
                self.base_cur_ns = self.base_cur_ns.min(d);
            }
        }
        self.samples = self.samples.saturating_add(1);
    }

    fn margin_ns(&self, floor_ns: i64) -> i64 {
        floor_ns.max(4 * self.mdev_ns)
    }
}

/// The state of the head hole.
enum Hole {
    /// Every live path has delivered something sent after it.
    Proven,
    /// Skip it at this receiver time.
    Until(u64),
}

/// `a - b` in serial-number arithmetic (RFC 1982): positive when `a` is after `b`.
fn serial_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Reorder buffer of one lane; `T` is the packet (an mbuf in production).
pub struct Lane<T> {
    mask: u32,
    max_hold_ns: u64,
    jitter_floor_ns: i64,
    slots: Box<[Option<Slot<T>>]>,
    /// Min-tree over the slots' `held_ns` (leaf `i` at `slots.len() + i`): the
    /// root is when the longest-waiting packet was held, for the hard cap.
    held_tree: Box<[u64]>,
    /// One bit per sequence number behind the head: delivered (1) or skipped (0).
    delivered: Box<[u64]>,
    dedup_mask: u32,
    /// Whether `head` is defined (an ordered packet arrived since new/resync).
    synced: bool,
    /// Next sequence number to deliver in order.
    head: u32,
    /// Lowest held sequence number (valid while `held > 0`).
    next_held: u32,
    held: usize,
    /// Raw delay of the first sample: all delays are kept relative to it.
    delay_ref: Option<u32>,
    paths: [PathState; MAX_PATHS],
    counters: Counters,
}

impl<T> std::fmt::Debug for Lane<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("capacity", &self.capacity())
            .field("occupancy", &self.occupancy())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<T> Lane<T> {
    /// Changes how long a hole may be waited for (a reload); the ring's size
    /// stays.
    pub fn set_max_hold(&mut self, max_hold_ns: u64) {
        self.max_hold_ns = max_hold_ns.min(MAX_DURATION_NS);
    }

    /// Builds a lane, allocating its ring once. Normalises `cfg`: `capacity`
    /// to a power of two in 2..=65536, `dedup_window` to a power of two in
    /// `max(512, capacity)..=2^22`, durations to at most one hour.
    pub fn new(cfg: Config) -> Self {
        let cap = cfg.ring_size();
        let cap_u32 = u32::try_from(cap).unwrap_or(1 << 16);
        let window = cfg
            .dedup_window
            .max(MIN_DEDUP_WINDOW)
            .max(cap_u32)
            .min(MAX_DEDUP_WINDOW)
            .next_power_of_two();
        let floor = cfg.jitter_floor_ns.min(MAX_DURATION_NS);
        Self {
            mask: cap_u32 - 1,
            max_hold_ns: cfg.max_hold_ns.min(MAX_DURATION_NS),
            jitter_floor_ns: i64::try_from(floor).unwrap_or(0),
            slots: (0..cap).map(|_| None).collect(),
            held_tree: vec![u64::MAX; 2 * cap].into_boxed_slice(),
            delivered: vec![0; (window / 64) as usize].into_boxed_slice(),
            dedup_mask: window - 1,
            synced: false,
            head: 0,
            next_held: 0,
            held: 0,
            delay_ref: None,
            paths: [PathState::default(); MAX_PATHS],
            counters: Counters::default(),
        }
    }

    /// One packet arrived. Delivers through `out`, in order, whatever became
    /// deliverable (this packet included), and reports what happened to
    /// `pkt`; a dropped packet is handed back. `live` is the bitmask of the
    /// paths that carry this lane and are healthy: a hole is proven lost once
    /// all of them have gone past it. The first ordered packet after
    /// `new`/`resync` defines the head (packets below it are then `Late`).
    pub fn push(
        &mut self,
        pkt: T,
        a: Arrival,
        live: u16,
        out: &mut impl FnMut(T, Delivery),
    ) -> Verdict<T> {
        let path = usize::from(a.path);
        if path >= MAX_PATHS {
            self.counters.out_of_window += 1;
            return Verdict::OutOfWindow(pkt);
        }
        if a.unordered {
            // Its seq is only a mark; the packet itself goes through whatever
            // the mark says, but an implausible mark must not prove holes.
            if self.plausible(a.seq) {
                self.observe(path, a.seq, &a);
            }
            self.counters.unordered += 1;
            out(pkt, Delivery::Unordered);
            self.release(None, live, out);
            return Verdict::Delivered;
        }
        if !self.synced {
            self.synced = true;
            self.head = a.seq;
        }
        let ahead = serial_diff(a.seq, self.head);
        if ahead == i32::MIN || ahead > JUMP_LIMIT as i32 {
            self.counters.out_of_window += 1;
            return Verdict::OutOfWindow(pkt);
        }
        if !self.plausible(a.seq) {
            // Beyond the dedup window it cannot be told from a duplicate, and
            // its mark is too old to compare safely with the paths' marks.
            self.counters.stale += 1;
            return Verdict::Stale(pkt);
        }
        if ahead < 0 && !self.was_delivered(a.seq) && self.expired(path, &a) {
            // Neither a delay sample (it would hold every later hole for
            // it) nor a mark: it proves nothing about the path now.
            self.counters.expired += 1;
            return Verdict::Stale(pkt);
        }
        let delay_ns = self.observe(path, a.seq.wrapping_add(1), &a);
        let verdict = if ahead < 0 {
            self.behind(pkt, a.seq, out)
        } else {
            if ahead.unsigned_abs() > self.mask {
                // Beyond the ring: make it fit rather than refuse live traffic.
                self.advance_to(a.seq.wrapping_sub(self.mask), out);
            }
            self.insert(pkt, a.seq, a.now_ns, delay_ns, out)
        };
        self.release(None, live, out);
        // Its own mark may have released the hole it was waiting for.
        match verdict {
            Verdict::Held if serial_diff(a.seq, self.head) < 0 => Verdict::Delivered,
            v => v,
        }
    }

    /// Time passed, or the live mask changed: releases holes whose deadline
    /// passed and holes now proven lost. Call it at [`Self::next_deadline`].
    ///
    /// A path declared dead is handled by calling this with the new mask:
    /// holes that waited only for that path count as proven and go at once.
    pub fn poll(&mut self, now_ns: u64, live: u16, out: &mut impl FnMut(T, Delivery)) {
        self.release(Some(now_ns), live, out);
    }

    /// When [`Self::poll`] next has something to do, `None` if nothing is held.
    /// A time in the past (with a `live` other than the last one used) means
    /// "poll now". O(paths).
    pub fn next_deadline(&self, live: u16) -> Option<u64> {
        if self.held == 0 {
            return None;
        }
        if self.head_slot().is_some() {
            return Some(self.oldest_held_ns());
        }
        match self.hole(live) {
            Hole::Proven => Some(self.oldest_held_ns()),
            Hole::Until(t) => Some(t),
        }
    }

    /// The sender restarted (new epoch): delivers everything held in order,
    /// then forgets sequence state, marks and delay statistics (the sender's
    /// clock may have restarted too). The next ordered packet defines the head.
    pub fn resync(&mut self, out: &mut impl FnMut(T, Delivery)) {
        while self.held > 0 {
            if self.head_slot().is_some() {
                self.pop_head(out);
            } else {
                self.head = self.head.wrapping_add(1);
            }
        }
        self.synced = false;
        self.delay_ref = None;
        self.paths = [PathState::default(); MAX_PATHS];
        self.delivered.fill(0);
        self.counters.resyncs += 1;
    }

    /// Event counts since `new`.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Bytes a lane of default tuning with a ring of `ring` slots takes: its
    /// own, its ring's, its deadline tree's and its duplicate bits'.
    pub fn footprint(ring: usize) -> usize {
        let window = (ring as u64).max(u64::from(Config::default().dedup_window));
        std::mem::size_of::<Self>()
            + ring * std::mem::size_of::<Option<Slot<T>>>()
            + 2 * ring * std::mem::size_of::<u64>()
            + (window / 8) as usize
    }

    /// Packets the ring can hold (the normalised `Config::capacity`).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Packets held now.
    pub fn occupancy(&self) -> usize {
        self.held
    }

    /// Delay statistics of `path`, `None` before its first sample.
    pub fn path_delay(&self, path: u8) -> Option<PathDelay> {
        let st = self.paths.get(usize::from(path))?;
        (st.samples > 0).then(|| PathDelay {
            base_us: st.base_cur_ns.min(st.base_prev_ns) / 1000,
            recent_us: st.recent_ns / 1000,
            jitter_us: st.mdev_ns / 1000,
            margin_us: st.margin_ns(self.jitter_floor_ns) / 1000,
            samples: st.samples,
        })
    }

    /// Whether `seq` is inside the window: at most `JUMP_LIMIT` ahead of the
    /// head and at most the dedup window behind it. Only such packets may move
    /// marks and give delay samples: a serial maximum taken over garbage far
    /// away could make a mark prove holes it has nothing to do with.
    fn plausible(&self, seq: u32) -> bool {
        let d = i64::from(serial_diff(seq, self.head));
        !self.synced || (-i64::from(self.dedup_mask + 1)..=i64::from(JUMP_LIMIT)).contains(&d)
    }

    /// Whether a late packet spent longer in the network than its path's
    /// base delay plus `max_hold`.
    fn expired(&self, path: usize, a: &Arrival) -> bool {
        let (Some(reference), Some(st)) = (self.delay_ref, self.paths.get(path)) else {
            return false;
        };
        if st.samples == 0 {
            return false;
        }
        let raw = ((a.now_ns / 1000) as u32).wrapping_sub(a.sent_us);
        let delay_ns = i64::from(serial_diff(raw, reference)) * 1000;
        let base_ns = st.base_cur_ns.min(st.base_prev_ns);
        delay_ns > base_ns.saturating_add(self.max_hold_ns as i64)
    }

    /// Records the mark and a delay sample; returns the packet's relative delay.
    fn observe(&mut self, path: usize, mark: u32, a: &Arrival) -> i64 {
        let now_us = (a.now_ns / 1000) as u32;
        let raw = now_us.wrapping_sub(a.sent_us);
        let reference = *self.delay_ref.get_or_insert(raw);
        let delay_ns = i64::from(serial_diff(raw, reference)) * 1000;
        let st = &mut self.paths[path];
        st.sample(delay_ns, a.now_ns);
        if st.mark.is_none_or(|m| serial_diff(mark, m) > 0) {
            st.mark = Some(mark);
        }
        delay_ns
    }

    /// Whether `path` has delivered a packet sent after `seq` was assigned.
    /// A mark more than `2 × JUMP_LIMIT` ahead is one gone stale over a
    /// near-full wrap of an idle path, not a proof.
    fn proves(&self, path: usize, seq: u32) -> bool {
        self.paths[path]
            .mark
            .is_some_and(|m| (1..=2 * JUMP_LIMIT).contains(&m.wrapping_sub(seq)))
    }

    /// A packet behind the head, within the dedup window: a duplicate, or the
    /// late copy of a skipped one.
    fn behind(&mut self, pkt: T, seq: u32, out: &mut impl FnMut(T, Delivery)) -> Verdict<T> {
        if self.was_delivered(seq) {
            self.counters.duplicate += 1;
            Verdict::Duplicate(pkt)
        } else {
            self.set_delivered(seq, true);
            self.counters.late += 1;
            out(pkt, Delivery::Late);
            Verdict::Delivered
        }
    }

    /// An ordered packet with `head <= seq < head + capacity`.
    fn insert(
        &mut self,
        pkt: T,
        seq: u32,
        now_ns: u64,
        delay_ns: i64,
        out: &mut impl FnMut(T, Delivery),
    ) -> Verdict<T> {
        if seq == self.head {
            self.set_delivered(seq, true);
            self.head = self.head.wrapping_add(1);
            self.counters.in_order += 1;
            out(pkt, Delivery::InOrder);
            return Verdict::Delivered;
        }
        let i = (seq & self.mask) as usize;
        if self.slots[i].is_some() {
            self.counters.duplicate += 1;
            return Verdict::Duplicate(pkt);
        }
        self.slots[i] = Some(Slot {
            pkt,
            seq,
            held_ns: now_ns,
            delay_ns,
        });
        self.set_held_ns(i, now_ns);
        if self.held == 0 || serial_diff(seq, self.next_held) < 0 {
            self.next_held = seq;
        }
        self.held += 1;
        Verdict::Held
    }

    /// Delivers or skips (as overflow) everything before `target`, so that a
    /// packet up to `target + capacity - 1` fits. Cost O(capacity + window).
    fn advance_to(&mut self, target: u32, out: &mut impl FnMut(T, Delivery)) {
        let n = target.wrapping_sub(self.head);
        let in_ring = n.min(self.mask + 1);
        for _ in 0..in_ring {
            if self.head_slot().is_some() {
                self.pop_head(out);
            } else {
                self.skip_head();
                self.counters.overflow += 1;
            }
        }
        // Past the ring only holes remain: no need to visit them one by one.
        let rest = n - in_ring;
        self.counters.overflow += u64::from(rest);
        if rest > self.dedup_mask {
            self.delivered.fill(0);
        } else {
            for k in 0..rest {
                self.set_delivered(self.head.wrapping_add(k), false);
            }
        }
        self.head = target;
    }

    /// Delivers what can go: the head if present, else skips the head hole if
    /// proven lost or past its deadline; repeats until the head must wait.
    /// Delivers the head while it is present and skips holes proven lost;
    /// with `now_ns`, also holes whose deadline passed. A push passes `None`:
    /// a caller that reads several queues may not have read the missing
    /// packet yet (it sits in another queue), and a caller that woke late
    /// would otherwise give it up for lost; deadlines are judged in `poll`,
    /// after the caller read everything that arrived.
    fn release(&mut self, now_ns: Option<u64>, live: u16, out: &mut impl FnMut(T, Delivery)) {
        while self.held > 0 {
            if self.head_slot().is_some() {
                self.pop_head(out);
                continue;
            }
            match (self.hole(live), now_ns) {
                (Hole::Proven, _) => self.counters.released_early += 1,
                (Hole::Until(t), Some(now)) if now >= t => self.counters.timed_out += 1,
                (Hole::Until(_), _) => break,
            }
            self.skip_head();
        }
    }

    /// The head hole (the head slot is empty and `held > 0`): proven lost, or
    /// its deadline. With T the send time of the lowest held packet (the hole
    /// was sent no later), each live path p that does not prove the hole could
    /// still deliver it until `T + recent_p + max(floor, 4 mdev_p)`; the
    /// deadline is the latest of these, capped at `max_hold` after the
    /// longest-waiting packet was held. A live path with no sample yet gives
    /// no bound, hence the cap.
    fn hole(&self, live: u16) -> Hole {
        let cap = self.oldest_held_ns().saturating_add(self.max_hold_ns);
        let Some(t) = &self.slots[(self.next_held & self.mask) as usize] else {
            return Hole::Until(cap);
        };
        let mut waiting = false;
        let mut latest = 0u64;
        let mut rest = live;
        while rest != 0 {
            let p = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if self.proves(p, self.head) {
                continue;
            }
            waiting = true;
            let st = &self.paths[p];
            if st.samples == 0 {
                return Hole::Until(cap);
            }
            // t.held_ns - t.delay_ns is T on the receiver's clock (the clock
            // offset is in both delays and cancels).
            let wait = st.recent_ns - t.delay_ns + st.margin_ns(self.jitter_floor_ns);
            latest = latest.max(t.held_ns.saturating_add_signed(wait));
        }
        if waiting {
            Hole::Until(latest.min(cap))
        } else {
            Hole::Proven
        }
    }

    fn head_slot(&self) -> Option<&Slot<T>> {
        self.slots[(self.head & self.mask) as usize].as_ref()
    }

    /// Delivers the held packet at the head and finds the next held one.
    fn pop_head(&mut self, out: &mut impl FnMut(T, Delivery)) {
        let i = (self.head & self.mask) as usize;
        let Some(slot) = self.slots[i].take() else {
            return;
        };
        debug_assert_eq!(slot.seq, self.head);
        self.set_held_ns(i, u64::MAX);
        self.held -= 1;
        self.set_delivered(self.head, true);
        self.head = self.head.wrapping_add(1);
        self.counters.held += 1;
        out(slot.pkt, Delivery::InOrder);
        // The scan crosses only holes the head has yet to pass, and it restarts
        // only once the head reaches `next_held`: amortised O(1) per sequence.
        if self.held > 0 {
            let mut s = self.head;
            for _ in 0..=self.mask {
                if self.slots[(s & self.mask) as usize].is_some() {
                    break;
                }
                s = s.wrapping_add(1);
            }
            self.next_held = s;
        }
    }

    fn skip_head(&mut self) {
        self.set_delivered(self.head, false);
        self.head = self.head.wrapping_add(1);
    }

    fn oldest_held_ns(&self) -> u64 {
        self.held_tree[1]
    }

    fn set_held_ns(&mut self, slot: usize, ns: u64) {
        let mut i = slot + self.slots.len();
        self.held_tree[i] = ns;
        while i > 1 {
            i /= 2;
            self.held_tree[i] = self.held_tree[2 * i].min(self.held_tree[2 * i + 1]);
        }
    }

    fn was_delivered(&self, seq: u32) -> bool {
        let i = seq & self.dedup_mask;
        self.delivered[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set_delivered(&mut self, seq: u32, yes: bool) {
        let i = seq & self.dedup_mask;
        let word = &mut self.delivered[(i / 64) as usize];
        if yes {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    const MS: u64 = 1_000_000;
    /// The receiver's clock is far from the sender's, which wraps soon: only
    /// differences between paths may matter.
    const RECV_OFF_NS: u64 = 7_000_000_000_123;
    const SEND_OFF_US: u32 = u32::MAX - 50_000;

    /// One packet on the wire; `id` is its index in the event list.
    #[derive(Clone, Copy, Debug)]
    struct Ev {
        id: u32,
        seq: u32,
        unordered: bool,
        path: u8,
        sent_us: u32,
        at: u64,
    }

    /// Builds event lists in sender time (ns since start); receiver time is
    /// sender time + path delay + `RECV_OFF_NS`.
    #[derive(Default)]
    struct Wire(Vec<Ev>);

    impl Wire {
        fn send(&mut self, seq: u32, path: u8, sent_ns: u64, delay_ns: u64) -> &mut Self {
            self.send_kind(seq, false, path, sent_ns, delay_ns)
        }
        fn send_kind(
            &mut self,
            seq: u32,
            unordered: bool,
            path: u8,
            sent_ns: u64,
            delay_ns: u64,
        ) -> &mut Self {
            let id = self.0.len() as u32;
            let sent_us = ((sent_ns / 1000) as u32).wrapping_add(SEND_OFF_US);
            let at = sent_ns + delay_ns + RECV_OFF_NS;
            self.0.push(Ev {
                id,
                seq,
                unordered,
                path,
                sent_us,
                at,
            });
            self
        }
        /// Sequences `first..first+n`, one per ms from `t0`, alternating over
        /// path 0 (10 ms) and path 1 (30 ms).
        fn two_paths(&mut self, first: u32, n: u32, t0: u64) -> &mut Self {
            for i in 0..n {
                let p = (i % 2) as u8;
                self.send(
                    first.wrapping_add(i),
                    p,
                    t0 + u64::from(i) * MS,
                    [10, 30][p as usize] * MS,
                );
            }
            self
        }
    }

    fn arrival(e: &Ev, now_ns: u64) -> Arrival {
        Arrival {
            seq: e.seq,
            unordered: e.unordered,
            path: e.path,
            sent_us: e.sent_us,
            now_ns,
        }
    }

    struct Run {
        lane: Lane<u32>,
        /// (event id, how, receiver time)
        out: Vec<(u32, Delivery, u64)>,
        /// (receiver time, next_deadline) after each push or poll
        deadlines: Vec<(u64, Option<u64>)>,
    }

    impl Run {
        fn seqs(&self, evs: &[Ev], how: Delivery) -> Vec<u32> {
            self.out
                .iter()
                .filter(|o| o.1 == how)
                .map(|o| evs[o.0 as usize].seq)
                .collect()
        }
    }

    /// Feeds `evs` in arrival order (stable: FIFO per path), polling at
    /// `next_deadline` plus a random lateness up to `max_late_ns`, and checks
    /// at every step the invariants that hold for any input: conservation,
    /// bounded occupancy, in-order deliveries strictly increasing, no
    /// sequence number delivered twice, nothing held past max_hold + lateness.
    fn drive(
        cfg: Config,
        evs: &[Ev],
        live: u16,
        max_late_ns: u64,
        seed: u64,
    ) -> Result<Run, TestCaseError> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut order: Vec<usize> = (0..evs.len()).collect();
        order.sort_by_key(|&i| evs[i].at);
        let mut run = Run {
            lane: Lane::new(cfg),
            out: Vec::new(),
            deadlines: Vec::new(),
        };
        let (mut next, mut next_poll, mut dropped) = (0, None::<u64>, 0);
        let mut held_at = HashMap::new();
        let mut last_in_order = None::<u32>;
        let mut seen = HashSet::new();
        for _ in 0..(4 * evs.len() + 1000) {
            let arr = order.get(next).map(|&i| evs[i].at);
            let (now, is_poll) = match (arr, next_poll) {
                (Some(a), Some(p)) if p < a => (p, true),
                (Some(a), _) => (a, false),
                (None, Some(p)) => (p, true),
                (None, None) => break,
            };
            let mut got = Vec::new();
            let mut sink = |id, how| got.push((id, how));
            if is_poll {
                run.lane.poll(now, live, &mut sink);
            } else {
                let e = &evs[order[next]];
                next += 1;
                match run.lane.push(e.id, arrival(e, now), live, &mut sink) {
                    Verdict::Held => {
                        held_at.insert(e.id, now);
                    }
                    Verdict::Delivered => {}
                    Verdict::Duplicate(x) | Verdict::Stale(x) | Verdict::OutOfWindow(x) => {
                        prop_assert_eq!(x, e.id);
                        dropped += 1;
                    }
                }
            }
            for (id, how) in got {
                let e = &evs[id as usize];
                if let Some(t) = held_at.remove(&id) {
                    prop_assert!(
                        now - t <= cfg.max_hold_ns + max_late_ns,
                        "held {} ns",
                        now - t
                    );
                }
                prop_assert_eq!(e.unordered, how == Delivery::Unordered);
                if how == Delivery::InOrder {
                    if let Some(l) = last_in_order {
                        prop_assert!(serial_diff(e.seq, l) > 0, "{} after {}", e.seq, l);
                    }
                    last_in_order = Some(e.seq);
                }
                if !e.unordered {
                    prop_assert!(seen.insert(e.seq), "seq {} delivered twice", e.seq);
                }
                run.out.push((id, how, now));
            }
            prop_assert!(run.lane.occupancy() <= run.lane.capacity());
            prop_assert_eq!(next, run.out.len() + dropped + run.lane.occupancy());
            let d = run.lane.next_deadline(live);
            run.deadlines.push((now, d));
            next_poll = d.map(|t| t.max(now) + rng.u64(0..=max_late_ns));
        }
        prop_assert_eq!(next, evs.len(), "did not terminate");
        prop_assert_eq!(run.lane.occupancy(), 0);
        Ok(run)
    }

    fn run(evs: &[Ev], live: u16) -> Run {
        drive(Config::default(), evs, live, 0, 1).unwrap()
    }

    /// Pushes at time 0 with paths 0 and 1 live.
    fn push_now(
        lane: &mut Lane<u32>,
        out: &mut Vec<(u32, Delivery)>,
        seq: u32,
        unordered: bool,
        path: u8,
    ) -> Verdict<u32> {
        let a = Arrival {
            seq,
            unordered,
            path,
            sent_us: 0,
            now_ns: 0,
        };
        lane.push(seq, a, 0b11, &mut |s, d| out.push((s, d)))
    }

    fn time(sender_ns: u64) -> u64 {
        sender_ns + RECV_OFF_NS
    }

    #[test]
    fn in_order_stream_is_delivered_at_once() {
        let mut w = Wire::default();
        for i in 0..100 {
            w.send(i, 0, u64::from(i) * MS, 5 * MS);
        }
        let r = run(&w.0, 1);
        assert_eq!(
            r.seqs(&w.0, Delivery::InOrder),
            (0..100).collect::<Vec<_>>()
        );
        assert_eq!(r.lane.counters().in_order, 100);
        assert!(r.deadlines.iter().all(|d| d.1.is_none()));
    }

    #[test]
    fn hole_filled_later() {
        let mut lane = Lane::new(Config::default());
        let mut out = Vec::new();
        let mut sink = |s: u32, d| out.push((s, d));
        // 1 comes on path 1, the others on path 0 (path 1 alone could prove
        // nothing lost: it is FIFO and 2 was not sent on it).
        let a = |seq| Arrival {
            seq,
            unordered: false,
            path: u8::from(seq == 1),
            sent_us: seq,
            now_ns: 1000,
        };
        for seq in [0, 2, 3] {
            let _ = lane.push(seq, a(seq), 0b11, &mut sink);
        }
        assert_eq!(lane.occupancy(), 2);
        assert_eq!(lane.push(1, a(1), 0b11, &mut sink), Verdict::Delivered);
        assert_eq!(out, [0, 1, 2, 3].map(|s| (s, Delivery::InOrder)));
        assert_eq!((lane.counters().in_order, lane.counters().held), (2, 2));
    }

    /// Seq 20 lost on the fast path: 22 (fast) is held until 21 comes on the
    /// slow path, which proves 20 lost on every live path: released at once.
    #[test]
    fn hole_proven_lost_is_released_at_once() {
        let mut w = Wire::default();
        w.two_paths(0, 20, 0)
            .send(21, 1, 101 * MS, 30 * MS)
            .send(22, 0, 102 * MS, 10 * MS);
        let r = run(&w.0, 0b11);
        let c = r.lane.counters();
        assert_eq!((c.released_early, c.timed_out), (1, 0));
        // Held at 112 ms with a deadline of 102 + 30 + 2 ms, released at 131 ms.
        assert!(r
            .deadlines
            .contains(&(time(112 * MS), Some(time(134 * MS)))));
        let (_, how, at) = r.out[r.out.len() - 1];
        assert_eq!((how, at), (Delivery::InOrder, time(131 * MS)));
        assert_eq!(r.seqs(&w.0, Delivery::InOrder)[19..], [19, 21, 22]);
    }

    /// Seq 20 lost on the slow path: 21 waits until T + 30 ms + the 2 ms floor
    /// (T = its send time), exactly, and no longer.
    #[test]
    fn hole_only_the_slow_path_can_fill_waits_for_its_delay() {
        let mut w = Wire::default();
        w.two_paths(0, 20, 0).send(21, 0, 101 * MS, 10 * MS);
        let r = run(&w.0, 0b11);
        assert_eq!(r.deadlines.last(), Some(&(time(133 * MS), None)));
        assert_eq!(r.out.last().map(|o| o.2), Some(time(133 * MS)));
        assert_eq!(r.lane.counters().timed_out, 1);
        // The same by hand: one nanosecond early is too early.
        let mut lane = Lane::new(Config::default());
        let mut out = Vec::new();
        for e in w.0.iter() {
            let _ = lane.push(e.id, arrival(e, e.at), 0b11, &mut |id, _| out.push(id));
        }
        assert_eq!(lane.next_deadline(0b11), Some(time(133 * MS)));
        lane.poll(time(133 * MS) - 1, 0b11, &mut |id, _| out.push(id));
        assert_eq!(lane.occupancy(), 1);
        lane.poll(time(133 * MS), 0b11, &mut |id, _| out.push(id));
        assert_eq!(lane.occupancy(), 0);
        // The caller's report: 20 ms between the paths, jitter 0, margin = floor.
        let (p0, p1) = (lane.path_delay(0).unwrap(), lane.path_delay(1).unwrap());
        assert_eq!(
            (p1.base_us - p0.base_us, p1.recent_us - p0.recent_us),
            (20_000, 20_000)
        );
        assert_eq!((p1.jitter_us, p1.margin_us, p1.samples), (0, 2_000, 10));
        assert_eq!(lane.path_delay(2), None);
    }

    /// A live path that never delivered gives no bound: the wait is capped at
    /// max_hold after the longest-waiting packet was held, even when a lower
    /// sequence number arrived later.
    #[test]
    fn max_hold_caps_the_wait_of_the_oldest_packet() {
        let mut lane = Lane::new(Config::default());
        let mut out = Vec::new();
        for (seq, now_ns) in [(0, 0), (5, 0), (3, 50 * MS)] {
            let a = Arrival {
                seq,
                unordered: false,
                path: 0,
                sent_us: 0,
                now_ns,
            };
            let _ = lane.push(seq, a, 0b11, &mut |s, _| out.push(s));
        }
        assert_eq!(lane.next_deadline(0b11), Some(100 * MS));
        lane.poll(100 * MS - 1, 0b11, &mut |s, _| out.push(s));
        assert_eq!(lane.occupancy(), 2);
        lane.poll(100 * MS, 0b11, &mut |s, _| out.push(s));
        assert_eq!(out, [0, 3, 5]);
        assert_eq!(lane.counters().timed_out, 3);
    }

    /// Redundant scheduler: every packet on both paths, the fast copy of two
    /// of them lost. Each seq is delivered once, in order; every second copy
    /// is a duplicate (held or already delivered).
    #[test]
    fn redundant_copies_are_duplicates() {
        let mut w = Wire::default();
        for i in 0..50u32 {
            let t = u64::from(i) * MS / 4;
            if i != 10 && i != 30 {
                w.send(i, 0, t, 10 * MS);
            }
            w.send(i, 1, t, 30 * MS);
        }
        let r = run(&w.0, 0b11);
        assert_eq!(r.seqs(&w.0, Delivery::InOrder), (0..50).collect::<Vec<_>>());
        let c = r.lane.counters();
        assert_eq!(
            (c.duplicate, c.late, c.timed_out, c.released_early),
            (48, 0, 0, 0)
        );
    }

    /// A hole times out; the packet shows up later: delivered once as Late,
    /// and its second copy is a duplicate.
    #[test]
    fn late_packet_after_timeout_is_delivered_once() {
        let mut w = Wire::default();
        w.two_paths(0, 20, 0).send(21, 0, 101 * MS, 10 * MS);
        w.send(20, 1, 100 * MS, 40 * MS)
            .send(20, 0, 100 * MS, 45 * MS);
        let r = run(&w.0, 0b11);
        assert_eq!(r.seqs(&w.0, Delivery::Late), [20]);
        let c = r.lane.counters();
        assert_eq!((c.timed_out, c.late, c.duplicate), (1, 1, 1));
    }

    /// A packet stuck for 2 s (a sender's ring while its port had no
    /// carrier) arrives after its hole was skipped: dropped as expired, not
    /// delivered out of order, and its delay does not become the path's.
    #[test]
    fn packet_stuck_for_seconds_is_expired_not_delivered() {
        let mut w = Wire::default();
        w.two_paths(0, 20, 0).send(21, 0, 101 * MS, 10 * MS);
        w.send(20, 1, 100 * MS, 2000 * MS)
            .send(22, 1, 2200 * MS, 30 * MS);
        let r = run(&w.0, 0b11);
        assert!(r.seqs(&w.0, Delivery::Late).is_empty());
        let c = r.lane.counters();
        assert_eq!((c.timed_out, c.late, c.expired), (1, 0, 1));
        let p1 = r.lane.path_delay(1).unwrap();
        assert!(p1.recent_us < 100_000, "{p1:?}");
    }

    #[test]
    fn wraps_around_u32_max() {
        let start = u32::MAX - 12;
        let mut w = Wire::default();
        for i in 0..40u32 {
            if i != 15 {
                let p = (i % 2) as u8;
                w.send(
                    start.wrapping_add(i),
                    p,
                    u64::from(i) * MS,
                    [10, 30][p as usize] * MS,
                );
            }
        }
        // After the wrap: an old copy from before it, then the lost one.
        w.send(start.wrapping_add(5), 1, 40 * MS, 30 * MS);
        w.send(start.wrapping_add(15), 1, 41 * MS, 30 * MS);
        let r = run(&w.0, 0b11);
        let want: Vec<u32> = (0..40)
            .filter(|&i| i != 15)
            .map(|i| start.wrapping_add(i))
            .collect();
        assert_eq!(r.seqs(&w.0, Delivery::InOrder), want);
        assert_eq!(r.seqs(&w.0, Delivery::Late), [start.wrapping_add(15)]);
        let c = r.lane.counters();
        assert_eq!((c.released_early, c.timed_out, c.duplicate), (1, 0, 1));
    }

    #[test]
    fn overflow_keeps_memory_bounded() {
        let cfg = Config {
            capacity: 8,
            ..Config::default()
        };
        let mut lane = Lane::new(cfg);
        let mut out = Vec::new();
        // Path 1 is live but silent, so hole 1 can only end by overflow.
        let mut push = |lane: &mut Lane<u32>, seq| {
            let v = push_now(lane, &mut out, seq, false, 0);
            assert!(lane.occupancy() <= 8);
            v
        };
        for seq in (0..=30).filter(|&s| s != 1) {
            let _ = push(&mut lane, seq);
        }
        assert_eq!(lane.counters().overflow, 1);
        assert_eq!(lane.occupancy(), 0);
        // A jump far beyond the ring skips at once, with every hole counted.
        assert_eq!(push(&mut lane, 100_000), Verdict::Held);
        assert_eq!(lane.counters().overflow, 1 + (100_000 - 7 - 31));
        // Skipped seqs within the dedup window are late once, then duplicates.
        assert_eq!(push(&mut lane, 99_900), Verdict::Delivered);
        assert_eq!(push(&mut lane, 99_900), Verdict::Duplicate(99_900));
        assert_eq!(push(&mut lane, 1_000), Verdict::Stale(1_000));
        let want: Vec<_> = (0..=30)
            .filter(|&s| s != 1)
            .map(|s| (s, Delivery::InOrder))
            .collect();
        assert_eq!(out[..30], want[..]);
        assert_eq!(out[30..], [(99_900, Delivery::Late)]);
    }

    #[test]
    fn out_of_window_garbage_is_dropped_and_proves_nothing() {
        let mut lane = Lane::new(Config::default());
        let mut out = Vec::new();
        let mut push = |lane: &mut Lane<u32>, seq, unordered, path| {
            push_now(lane, &mut out, seq, unordered, path)
        };
        let _ = push(&mut lane, 0, false, 0);
        assert_eq!(push(&mut lane, 2, false, 0), Verdict::Held);
        // The head is 1: beyond the jump limit, or half the space away.
        for seq in [JUMP_LIMIT + 2, 1 + (1 << 31)] {
            assert_eq!(push(&mut lane, seq, false, 1), Verdict::OutOfWindow(seq));
        }
        assert_eq!(push(&mut lane, 5, false, 16), Verdict::OutOfWindow(5));
        assert_eq!(lane.counters().out_of_window, 3);
        // Far behind (but less than half the space) is stale, not garbage.
        assert_eq!(
            push(&mut lane, 2 + (1 << 31), false, 1),
            Verdict::Stale(2 + (1 << 31))
        );
        // An unordered packet with an absurd mark goes through, proving nothing.
        assert_eq!(push(&mut lane, 1 << 30, true, 1), Verdict::Delivered);
        assert_eq!(lane.occupancy(), 1);
        // A sane mark on path 1 proves hole 1 (path 0 did with seq 2).
        assert_eq!(push(&mut lane, 3, true, 1), Verdict::Delivered);
        assert_eq!(lane.occupancy(), 0);
        assert_eq!(lane.counters().released_early, 1);
        // The head is 3: exactly at the jump limit is in the window (a big skip).
        assert_eq!(push(&mut lane, JUMP_LIMIT + 3, false, 0), Verdict::Held);
        assert_eq!(lane.counters().out_of_window, 3);
    }

    #[test]
    fn resync_flushes_in_order_and_forgets() {
        let mut lane = Lane::new(Config::default());
        let mut out = Vec::new();
        let a = |seq| Arrival {
            seq,
            unordered: false,
            path: 0,
            sent_us: 0,
            now_ns: 0,
        };
        for seq in [0, 2, 3, 5] {
            let _ = lane.push(seq, a(seq), 0b11, &mut |s, _| out.push(s));
        }
        lane.resync(&mut |s, _| out.push(s));
        assert_eq!(out, [0, 2, 3, 5]);
        assert_eq!((lane.occupancy(), lane.counters().resyncs), (0, 1));
        assert_eq!(lane.path_delay(0), None);
        // A new epoch starts wherever the sender restarted.
        assert_eq!(
            lane.push(7_000, a(7_000), 1, &mut |s, _| out.push(s)),
            Verdict::Delivered
        );
        assert_eq!(
            lane.push(7_001, a(7_001), 1, &mut |s, _| out.push(s)),
            Verdict::Delivered
        );
        assert_eq!(
            lane.push(5, a(5), 1, &mut |s, _| out.push(s)),
            Verdict::Stale(5)
        );
    }

    /// Seq 20 lost on the slow path; 21 (fast) held; an unordered packet sent
    /// next on the slow path carries mark 22 and proves 20 lost.
    #[test]
    fn unordered_packets_bypass_but_advance_marks() {
        let mut w = Wire::default();
        w.two_paths(0, 20, 0).send(21, 0, 101 * MS, 10 * MS);
        w.send_kind(22, true, 1, 101 * MS + MS / 2, 30 * MS);
        let r = run(&w.0, 0b11);
        let n = r.out.len();
        assert_eq!(r.out[n - 2].1, Delivery::Unordered);
        assert_eq!(
            r.out[n - 1],
            (20, Delivery::InOrder, time(131 * MS + MS / 2))
        );
        let c = r.lane.counters();
        assert_eq!((c.unordered, c.released_early, c.timed_out), (1, 1, 0));
    }

    #[test]
    fn dead_path_releases_the_holes_waiting_for_it() {
        let mut w = Wire::default();
        w.two_paths(0, 20, 0).send(21, 0, 101 * MS, 10 * MS);
        let mut lane = Lane::new(Config::default());
        let mut out = Vec::new();
        for e in w.0.iter() {
            let _ = lane.push(e.id, arrival(e, e.at), 0b11, &mut |id, _| out.push(id));
        }
        assert_eq!(lane.occupancy(), 1);
        let now = time(115 * MS);
        assert!(lane.next_deadline(0b01).is_some_and(|t| t <= now));
        lane.poll(now, 0b01, &mut |id, _| out.push(id));
        assert_eq!(lane.occupancy(), 0);
        assert_eq!(lane.counters().released_early, 1);
    }

    /// The slow path's queue grows by 0.4 ms per packet (30 → 90 ms): holes
    /// waiting for it must follow, never be skipped early.
    #[test]
    fn deadlines_follow_a_growing_queue() {
        let mut w = Wire::default();
        for i in 0..300u32 {
            let p = (i % 2) as u8;
            let delay = if p == 0 {
                10 * MS
            } else {
                30 * MS + u64::from(i) * MS / 5
            };
            w.send(i, p, u64::from(i) * MS, delay);
        }
        let r = run(&w.0, 0b11);
        let c = r.lane.counters();
        assert_eq!((c.timed_out, c.late, c.held), (0, 0, 149));
        let (p0, p1) = (r.lane.path_delay(0).unwrap(), r.lane.path_delay(1).unwrap());
        // Last slow sample 30 + 299 × 0.2 = 89.8 ms, i.e. 79.8 ms over the fast path.
        assert!(p1.recent_us - p0.recent_us > 79_000, "{p0:?} {p1:?}");
        assert!(p1.base_us - p0.base_us < 21_000, "{p0:?} {p1:?}");
    }

    /// A path of the simulator: base delay, jitter (FIFO kept), loss in %.
    #[derive(Clone, Copy, Debug)]
    struct SimPath {
        base_us: u64,
        jitter_us: u64,
        loss_pct: u32,
    }

    #[derive(Clone, Debug)]
    struct Sim {
        paths: Vec<SimPath>,
        dup_pct: u32,
        unordered_pct: u32,
        n: usize,
        start_seq: u32,
        seed: u64,
    }

    /// Sender: gaps of 50–400 µs, a random path per packet, some unordered
    /// packets, some copies on a second path. The first packet goes alone and
    /// is never lost, so that the head it defines is the lane's real start
    /// (packets below the first head are delivered Late by design).
    fn wire(sim: &Sim) -> Vec<Ev> {
        let mut rng = fastrand::Rng::with_seed(sim.seed);
        let mut w = Wire::default();
        let np = sim.paths.len();
        let (mut t, mut next_seq) = (0u64, sim.start_seq);
        let mut last_at = vec![0u64; np];
        for i in 0..sim.n {
            t += match i {
                0 => 0,
                1 => 100 * MS,
                _ => rng.u64(50_000..=400_000),
            };
            let unordered = i > 0 && rng.u32(0..100) < sim.unordered_pct;
            let seq = next_seq;
            if !unordered {
                next_seq = next_seq.wrapping_add(1);
            }
            let first = rng.usize(0..np);
            let mut on = vec![first];
            if np > 1 && rng.u32(0..100) < sim.dup_pct {
                on.push((first + 1 + rng.usize(0..np - 1)) % np);
            }
            for p in on {
                let sp = sim.paths[p];
                if i > 0 && rng.u32(0..100) < sp.loss_pct {
                    continue;
                }
                let at = (t + (sp.base_us + rng.u64(0..=sp.jitter_us)) * 1000).max(last_at[p]);
                last_at[p] = at;
                w.send_kind(seq, unordered, p as u8, t, at - t);
            }
        }
        w.0
    }

    fn sim_path(max_jitter_us: u64, max_loss: u32) -> impl Strategy<Value = SimPath> {
        (0..=40_000u64, 0..=max_jitter_us, 0..=max_loss).prop_map(
            |(base_us, jitter_us, loss_pct)| SimPath {
                base_us,
                jitter_us,
                loss_pct,
            },
        )
    }

    fn start_seq() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), (0..2000u32).prop_map(|d| u32::MAX - d)]
    }

    fn all(n: usize) -> u16 {
        ((1u32 << n) - 1) as u16
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// (1)–(5): order, no double delivery, conservation, bounded
        /// occupancy and bounded hold, under loss, jitter, duplication,
        /// unordered packets, small rings and late polls.
        #[test]
        fn invariants_under_loss_jitter_and_duplication(
            paths in prop::collection::vec(sim_path(10_000, 20), 1..=4),
            dup_pct in 0..=30u32, unordered_pct in 0..=30u32, n in 200..1500usize,
            start_seq in start_seq(), seed: u64,
            capacity in prop::sample::select(vec![16usize, 64, 1024]),
            max_late_us in 0..=5_000u64,
        ) {
            let np = paths.len();
            let sim = Sim { paths, dup_pct, unordered_pct, n, start_seq, seed };
            let cfg = Config { capacity, ..Config::default() };
            drive(cfg, &wire(&sim), all(np), max_late_us * 1000, seed)?;
        }

        /// (6): no loss, no duplication, jitter within the floor: the deadline
        /// is never too early, so nothing times out and nothing is late.
        #[test]
        fn clean_paths_never_time_out(
            paths in prop::collection::vec(sim_path(1_800, 0), 1..=4),
            unordered_pct in 0..=30u32, n in 200..2000usize, start_seq in start_seq(), seed: u64,
        ) {
            let np = paths.len();
            let sim = Sim { paths, dup_pct: 0, unordered_pct, n, start_seq, seed };
            let r = drive(Config::default(), &wire(&sim), all(np), 0, seed)?;
            let c = r.lane.counters();
            prop_assert_eq!((c.timed_out, c.late, c.overflow, c.released_early), (0, 0, 0, 0));
        }

        /// (7): loss on one path only, all paths carrying traffic: holes are
        /// mostly proven lost, not waited out.
        #[test]
        fn one_lossy_path_holes_are_mostly_proven(
            mut paths in prop::collection::vec(sim_path(1_000, 0), 2..=4),
            loss_pct in 5..=20u32, unordered_pct in 0..=30u32, n in 4000..6000usize, seed: u64,
        ) {
            paths[0].loss_pct = loss_pct;
            let np = paths.len();
            let sim = Sim { paths, dup_pct: 0, unordered_pct, n, start_seq: 0, seed };
            let r = drive(Config::default(), &wire(&sim), all(np), 0, seed)?;
            let c = r.lane.counters();
            prop_assert_eq!(c.late, 0);
            // Timeouts remain where a path carried nothing for longer than its
            // margin after the hole (sparse striping over 4 paths): about 3 %
            // of holes over many runs, a third in the worst runs seen.
            prop_assert!(c.released_early >= 2 * c.timed_out, "{:?}", c);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push {
            seq: u32,
            near: bool,
            unordered: bool,
            path: u8,
            sent_us: u32,
            dt: u64,
            live: u16,
        },
        Poll {
            dt: u64,
            live: u16,
        },
        WildClock(u64),
        Resync,
    }

    fn op() -> impl Strategy<Value = Op> {
        let push = (
            any::<u32>(),
            any::<bool>(),
            prop::bool::weighted(0.2),
            0..20u8,
            any::<u32>(),
            0..20_000_000u64,
            any::<u16>(),
        )
            .prop_map(|(seq, near, unordered, path, sent_us, dt, live)| Op::Push {
                seq,
                near,
                unordered,
                path,
                sent_us,
                dt,
                live,
            });
        prop_oneof![
            12 => push,
            3 => (0..200_000_000u64, any::<u16>()).prop_map(|(dt, live)| Op::Poll { dt, live }),
            1 => any::<u64>().prop_map(Op::WildClock),
            1 => Just(Op::Resync),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary input, clock jumps included, never panics and never
        /// loses or invents a packet.
        #[test]
        fn arbitrary_input_never_panics(ops in prop::collection::vec(op(), 1..400), base: u32, capacity in 1..40usize) {
            let mut lane = Lane::new(Config { capacity, dedup_window: 0, ..Config::default() });
            let (mut now, mut pushed, mut dropped, mut delivered) = (0u64, 0usize, 0usize, 0usize);
            for (i, o) in ops.into_iter().enumerate() {
                let mut sink = |_: usize, _| delivered += 1;
                match o {
                    Op::Push { seq, near, unordered, path, sent_us, dt, live } => {
                        now = now.saturating_add(dt);
                        let seq = if near { base.wrapping_add(i as u32).wrapping_add(seq % 64).wrapping_sub(32) } else { seq };
                        let a = Arrival { seq, unordered, path, sent_us, now_ns: now };
                        pushed += 1;
                        if !matches!(lane.push(i, a, live, &mut sink), Verdict::Delivered | Verdict::Held) {
                            dropped += 1;
                        }
                        let _ = lane.next_deadline(live);
                    }
                    Op::Poll { dt, live } => {
                        now = now.saturating_add(dt);
                        lane.poll(now, live, &mut sink);
                        let _ = lane.next_deadline(!live);
                    }
                    Op::WildClock(t) => now = t,
                    Op::Resync => lane.resync(&mut sink),
                }
                prop_assert!(lane.occupancy() <= lane.capacity());
                prop_assert_eq!(pushed, delivered + dropped + lane.occupancy());
            }
            for p in 0..=16u8 {
                let _ = lane.path_delay(p);
            }
        }
    }
}
