//! What the kernel counts on an af_packet port: frames dropped because a
//! socket's ring was full (the port's `rx-missed`) and frames the receive
//! fanout rolled over from a full socket to another one (0: the
//! appliance's sockets join without rollover, which would reorder a stream
//! across workers). The management lcore
//! reads them once a second and at exit; reports read the totals.

use std::sync::atomic::{AtomicU64, Ordering};

use dpdk_bindings::packet_port::{self, KernelCounters};

/// One af_packet port's kernel counters.
#[derive(Debug)]
pub struct KernelPortCounters {
    sockets: KernelCounters,
    /// Ring drops since start (the kernel resets its count on every read).
    ring_drops: AtomicU64,
    /// Frames rolled over to another worker's socket, since start.
    rollovers: AtomicU64,
}

impl KernelPortCounters {
    /// The counters of the sockets of packet port `port` (on kernel
    /// interface `iface`); `None` (logged) if it has none.
    pub fn find(port: u16, iface: &str) -> Option<Self> {
        let Some(sockets) = packet_port::kernel_counters(port) else {
            log::warn!("{iface}: not an af_packet port; its kernel drops are not counted");
            return None;
        };
        log::info!(
            "{iface}: {} af_packet sockets; ring drops counted",
            sockets.sockets()
        );
        Some(Self {
            sockets,
            ring_drops: AtomicU64::new(0),
            rollovers: AtomicU64::new(0),
        })
    }

    /// Reads the kernel's counters (management lcore only: reading resets
    /// the kernel's drop count).
    pub fn sample(&self) {
        self.ring_drops
            .fetch_add(self.sockets.take_ring_drops(), Ordering::Relaxed);
        self.rollovers
            .store(self.sockets.rollovers(), Ordering::Relaxed);
    }

    /// Frames dropped on a full ring, as of the last sample.
    pub fn ring_drops(&self) -> u64 {
        self.ring_drops.load(Ordering::Relaxed)
    }

    /// Frames rolled over to another worker's socket, as of the last sample.
    pub fn rollovers(&self) -> u64 {
        self.rollovers.load(Ordering::Relaxed)
    }
}
