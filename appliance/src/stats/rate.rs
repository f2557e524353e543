//! Packet and bit rates over the last sampling interval, as `show interface rate` gives
//! them: the management lcore samples the totals once a second ([`SAMPLE_EVERY`]) and
//! stores the rates; readers see the last whole interval, so a stream that stops shows 0
//! within two intervals. Counters stay the exact totals; a rate is only ever derived.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// How often the management lcore samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The rate of one packet/byte counter pair. One writer (the management lcore), any
/// number of readers.
#[derive(Debug, Default)]
pub struct Rate {
    /// Whether `last_*` hold a sample: the first sample of a counter created between two
    /// samples has no interval to measure, so it only records.
    primed: AtomicBool,
    last_packets: AtomicU64,
    last_bytes: AtomicU64,
    pps: AtomicU64,
    bps: AtomicU64,
}

/// A [`Rate`] as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RateReport {
    /// Packets per second.
    pub pps: u64,
    /// Bits per second (of the bytes the counter counts).
    pub bps: u64,
}

impl Rate {
    /// Records the totals `packets` and `bytes` seen `elapsed` after the previous sample.
    /// Counters only grow; a smaller total (never expected) reads as no traffic.
    pub fn sample(&self, packets: u64, bytes: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if self.primed.load(Ordering::Relaxed) && secs > 0.0 {
            let dp = packets.saturating_sub(self.last_packets.load(Ordering::Relaxed));
            let db = bytes.saturating_sub(self.last_bytes.load(Ordering::Relaxed));
            self.pps
                .store((dp as f64 / secs).round() as u64, Ordering::Relaxed);
            self.bps
                .store((db as f64 * 8.0 / secs).round() as u64, Ordering::Relaxed);
        }
        self.last_packets.store(packets, Ordering::Relaxed);
        self.last_bytes.store(bytes, Ordering::Relaxed);
        self.primed.store(true, Ordering::Relaxed);
    }

    /// The rates over the last whole interval (0 before the second sample).
    pub fn report(&self) -> RateReport {
        RateReport {
            pps: self.pps.load(Ordering::Relaxed),
            bps: self.bps.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_only_records() {
        let r = Rate::default();
        r.sample(1_000, 1_000_000, Duration::from_secs(1));
        assert_eq!(r.report(), RateReport::default());
    }

    #[test]
    fn rate_is_the_delta_over_the_interval() {
        let r = Rate::default();
        r.sample(1_000, 100_000, SAMPLE_EVERY);
        r.sample(4_000, 400_000, Duration::from_millis(1_500));
        assert_eq!(
            r.report(),
            RateReport {
                pps: 2_000,
                bps: 1_600_000
            }
        );
    }

    #[test]
    fn a_stopped_stream_reads_zero() {
        let r = Rate::default();
        r.sample(0, 0, SAMPLE_EVERY);
        r.sample(3_000, 3_072_000, SAMPLE_EVERY);
        assert_eq!(r.report().pps, 3_000);
        r.sample(3_000, 3_072_000, SAMPLE_EVERY);
        assert_eq!(r.report(), RateReport::default());
    }

    #[test]
    fn a_total_that_went_backwards_reads_as_no_traffic() {
        let r = Rate::default();
        r.sample(10, 10, SAMPLE_EVERY);
        r.sample(5, 5, SAMPLE_EVERY);
        assert_eq!(r.report(), RateReport::default());
    }
}
