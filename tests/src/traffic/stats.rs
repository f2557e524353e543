//! Per-stream receive statistics: loss, duplicates, reordering and latency.
//!
//! Sequence numbers start at 0 at the generator, so `lost` counts every number below the
//! highest one seen that never arrived. A datagram is `reordered` when a higher sequence
//! number arrived before it (each late arrival counts once); a `duplicate` is a sequence
//! number seen before.

use serde::{Deserialize, Serialize};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// What the sink reports for one stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    pub stream: u32,
    /// The group (or local address) and port the datagrams arrived on, when the sink
    /// reports outputs separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub received: u64,
    pub unique: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub highest_seq: Option<u64>,
    pub latency_us: Latency,
}

/// Accumulates one stream's arrivals.
#[derive(Debug, Default)]
pub struct StreamStats {
    stream: u32,
    group: Option<String>,
    seen: Vec<u64>,
    received: u64,
    unique: u64,
    duplicates: u64,
    reordered: u64,
    highest: Option<u64>,
    latencies_ns: Vec<u64>,
}

/// Sequence numbers above this are treated as garbage (the bitmap would be huge).
const MAX_SEQ: u64 = 1 << 32;

impl StreamStats {
    pub fn new(stream: u32) -> StreamStats {
        StreamStats {
            stream,
            ..Default::default()
        }
    }

    /// Statistics of `stream` as received on one destination `group` (`239.10.1.1:6000`).
    pub fn for_group(stream: u32, group: String) -> StreamStats {
        StreamStats {
            stream,
            group: Some(group),
            ..Default::default()
        }
    }

    /// Records one arrival with its one-way latency.
    pub fn record(&mut self, seq: u64, latency_ns: u64) {
        if seq >= MAX_SEQ {
            return;
        }
        self.received += 1;
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        self.latencies_ns.push(latency_ns);
    }

    pub fn report(&self) -> StreamReport {
        let mut lat = self.latencies_ns.clone();
        lat.sort_unstable();
        let pct = |p: f64| {
            if lat.is_empty() {
                0.0
            } else {
                let i = ((lat.len() - 1) as f64 * p).round() as usize;
                lat[i] as f64 / 1e3
            }
        };
        StreamReport {
            stream: self.stream,
            group: self.group.clone(),
            received: self.received,
            unique: self.unique,
            lost: self.highest.map_or(0, |h| h + 1 - self.unique),
            duplicates: self.duplicates,
            reordered: self.reordered,
            highest_seq: self.highest,
            latency_us: Latency {
                p50: pct(0.5),
                p99: pct(0.99),
                max: pct(1.0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_dup_reorder() {
        let mut s = StreamStats::new(1);
        for seq in [0, 1, 3, 2, 2, 5, 7, 6] {
            s.record(seq, 1000 * (seq + 1));
        }
        let r = s.report();
        assert_eq!(r.received, 8);
        assert_eq!(r.unique, 7);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.reordered, 2); // 2 after 3, 6 after 7
        assert_eq!(r.lost, 1); // 4
        assert_eq!(r.highest_seq, Some(7));
        assert_eq!(r.latency_us.max, 8.0);
        assert_eq!(r.latency_us.p50, 4.0);
    }

    #[test]
    fn clean_stream() {
        let mut s = StreamStats::new(0);
        (0..1000).for_each(|q| s.record(q, 50_000));
        let r = s.report();
        assert_eq!((r.lost, r.duplicates, r.reordered), (0, 0, 0));
        assert_eq!(r.latency_us.p99, 50.0);
    }
}
