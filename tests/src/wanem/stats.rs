//! Per-direction counters, updated lock-free by the forwarding thread and read by `show`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Why a frame was dropped. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Independent random loss.
    Loss,
    /// Gilbert-Elliott bad state.
    BurstLoss,
    /// The rate limiter's queue was full.
    Queue,
    /// The link was down (at arrival or when due to leave).
    Down,
    /// The direction was blackholed (at arrival or when due to leave).
    Blackhole,
    /// The kernel refused the frame on the way out.
    TxError,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::Loss,
        DropReason::BurstLoss,
        DropReason::Queue,
        DropReason::Down,
        DropReason::Blackhole,
        DropReason::TxError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Loss => "loss",
            DropReason::BurstLoss => "burst_loss",
            DropReason::Queue => "queue",
            DropReason::Down => "down",
            DropReason::Blackhole => "blackhole",
            DropReason::TxError => "tx_error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one direction. "Late" is how long after its due time a frame actually left.
#[derive(Debug, Default)]
pub struct DirStats {
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub forwarded: AtomicU64,
    pub bytes: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// Microseconds since start at which the last frame was forwarded (0: none yet).
    pub last_forward_us: AtomicU64,
    pub late_max_ns: AtomicU64,
    pub late_sum_ns: AtomicU64,
    /// Frames that left more than 100 µs after their due time.
    pub late_over_100us: AtomicU64,
    /// Bytes in the rate limiter's queue after the last arrival.
    pub queued_bytes: AtomicU64,
}

impl DirStats {
    pub fn drop(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Relaxed);
    }

    pub fn forwarded(&self, len: usize, at_us: u64, late_ns: u64) {
        self.forwarded.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len as u64, Relaxed);
        self.last_forward_us.store(at_us, Relaxed);
        self.late_max_ns.fetch_max(late_ns, Relaxed);
        self.late_sum_ns.fetch_add(late_ns, Relaxed);
        if late_ns > 100_000 {
            self.late_over_100us.fetch_add(1, Relaxed);
        }
    }

    pub fn snapshot(&self) -> DirSnapshot {
        let forwarded = self.forwarded.load(Relaxed);
        DirSnapshot {
            rx_frames: self.rx_frames.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            forwarded,
            bytes: self.bytes.load(Relaxed),
            dropped: DropReason::ALL
                .iter()
                .map(|r| (r.name().to_owned(), self.dropped[r.index()].load(Relaxed)))
                .collect(),
            last_forward_us: self.last_forward_us.load(Relaxed),
            late_max_us: self.late_max_ns.load(Relaxed) as f64 / 1e3,
            late_mean_us: if forwarded == 0 {
                0.0
            } else {
                self.late_sum_ns.load(Relaxed) as f64 / forwarded as f64 / 1e3
            },
            late_over_100us: self.late_over_100us.load(Relaxed),
            queued_bytes: self.queued_bytes.load(Relaxed),
        }
    }
}

/// What `show` reports for one direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirSnapshot {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub forwarded: u64,
    /// Bytes forwarded (Ethernet frames as seen by AF_PACKET).
    pub bytes: u64,
    /// Drops by reason: loss, burst_loss, queue, down, blackhole, tx_error.
    pub dropped: BTreeMap<String, u64>,
    pub last_forward_us: u64,
    pub late_max_us: f64,
    pub late_mean_us: f64,
    pub late_over_100us: u64,
    /// Bytes in the rate limiter's queue after the last arrival.
    pub queued_bytes: u64,
}

impl DirSnapshot {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.name()).copied().unwrap_or(0)
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}
