//! Counters: what the data plane and the management lcore count, owned here so
//! that every layer (tables, workers, slow path, reports) can use them without
//! importing each other.
//!
//! - [`Counter`]: one value with a single writer (a plain add, no locked
//!   instruction).
//! - [`counter_set!`](crate::counter_set): a struct of named counters with
//!   their help text, so reports and `/metrics` list them without spelling
//!   each field out.
//! - [`PerWorker`]: one cache-line-aligned copy of a counter set per worker,
//!   owned by an object (a relay rule, a tunnel path, a lane): each worker
//!   writes its own slot, readers sum. A new kind of object gets counters by
//!   holding a `PerWorker` of its own set.
//! - [`WorkerCounters`]: per-lcore port, drop and loop counters.
//! - [`Rate`]: packets and bits per second over the last second, derived by
//!   the management lcore.

mod drop_reason;
mod events;
mod rate;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};

pub use drop_reason::DropReason;
pub use events::SlowCounters;
pub use rate::{Rate, RateReport, SAMPLE_EVERY};
pub use worker::{CounterSnapshot, WorkerCounters};

/// A counter with a single writer: a relaxed load + store, which compiles
/// to a plain add (no locked instruction on the hot path).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (single writer only).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    /// Adds one (single writer only).
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Sets the value (single writer only): for counters the writer keeps
    /// elsewhere and mirrors here, and for gauges.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Reads the value (any thread).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A struct of named [`Counter`]s. Each field carries its help text; the set
/// knows its field names, so a report reads it as `(name, value)` pairs and a
/// new counter is one line here.
///
/// ```ignore
/// counter_set! {
///     /// Counters of one relay output.
///     pub struct OutputCounters {
///         tx_packets: "copies the TX queue took",
///         tx_full: "TX queue full",
///     }
/// }
/// ```
#[macro_export]
macro_rules! counter_set {
    ($(#[$meta:meta])* pub struct $name:ident { $($field:ident : $help:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name { $(#[doc = $help] pub $field: $crate::stats::Counter,)* }

        impl $name {
            /// Field names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field),)*];
            /// Help text per field, in declaration order.
            pub const HELP: &'static [&'static str] = &[$($help,)*];

            /// The values, in declaration order.
            pub fn values(&self) -> Vec<u64> {
                vec![$(self.$field.get(),)*]
            }

            /// Name → value.
            pub fn snapshot(&self) -> std::collections::BTreeMap<&'static str, u64> {
                Self::NAMES.iter().copied().zip(self.values()).collect()
            }
        }
    };
}

/// A fixed array of counters (`Default` for any length).
#[derive(Debug)]
pub struct CounterArray<const N: usize>(pub [Counter; N]);

impl<const N: usize> Default for CounterArray<N> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Counter::default()))
    }
}

impl<const N: usize> std::ops::Deref for CounterArray<N> {
    type Target = [Counter; N];
    fn deref(&self) -> &[Counter; N] {
        &self.0
    }
}

/// Drops by reason for one object (a relay rule, an output, a tunnel path):
/// one [`Counter`] per [`DropReason`], so any drop after the object was
/// chosen can be counted against it.
#[derive(Debug, Default)]
pub struct DropCounters(CounterArray<{ DropReason::COUNT }>);

impl DropCounters {
    /// Counts one drop (single writer only).
    #[inline]
    pub fn inc(&self, reason: DropReason) {
        self.0[reason as usize].inc();
    }

    /// The counter of one reason.
    #[inline]
    pub fn of(&self, reason: DropReason) -> &Counter {
        &self.0[reason as usize]
    }

    /// Sum over every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
}

/// A value alone on its cache line, so two workers never write one line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CacheAligned<T>(pub T);

/// One copy of `T` per worker: each worker writes only its own slot (so every
/// [`Counter`] in it keeps a single writer), readers sum over the slots.
#[derive(Debug)]
pub struct PerWorker<T> {
    slots: Box<[CacheAligned<T>]>,
}

impl<T> PerWorker<T> {
    /// `workers` slots (at least one), each made by `make`.
    pub fn new(workers: usize, mut make: impl FnMut() -> T) -> Self {
        Self {
            slots: (0..workers.max(1)).map(|_| CacheAligned(make())).collect(),
        }
    }

    /// The slot of worker `id` (the last one if `id` is out of range, which
    /// only a misconfigured caller could cause).
    #[inline]
    pub fn worker(&self, id: usize) -> &T {
        let last = self.slots.len() - 1;
        &self.slots[id.min(last)].0
    }

    /// Every slot, in worker order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|s| &s.0)
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Never true (there is always one slot); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The counter `f` picks, summed over the workers.
    pub fn total(&self, f: impl Fn(&T) -> &Counter) -> u64 {
        self.iter().map(|w| f(w).get()).sum()
    }
}

impl<T: Default> PerWorker<T> {
    /// `workers` zeroed slots.
    pub fn zeroed(workers: usize) -> Self {
        Self::new(workers, T::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    counter_set! {
        /// Test set.
        pub struct TwoCounters {
            first: "the first",
            second: "the second",
        }
    }

    #[test]
    fn a_set_knows_its_names_and_values() {
        let c = TwoCounters::default();
        c.second.add(3);
        assert_eq!(TwoCounters::NAMES, &["first", "second"]);
        assert_eq!(TwoCounters::HELP[1], "the second");
        assert_eq!(c.values(), vec![0, 3]);
        assert_eq!(c.snapshot()["second"], 3);
    }

    #[test]
    fn per_worker_slots_sum_and_clamp() {
        let p: PerWorker<TwoCounters> = PerWorker::zeroed(2);
        p.worker(0).first.inc();
        p.worker(1).first.add(2);
        p.worker(9).second.inc(); // out of range: the last slot
        assert_eq!(p.total(|c| &c.first), 3);
        assert_eq!(p.worker(1).second.get(), 1);
        assert_eq!(p.len(), 2);
        assert_eq!(std::mem::align_of::<CacheAligned<TwoCounters>>(), 64);
    }
}
