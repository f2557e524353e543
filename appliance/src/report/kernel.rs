//! What the kernel counts on an af_packet port and the PMD does not report:
//! frames dropped because a socket's ring was full (the port's `rx-missed`)
//! and frames the receive fanout rolled over from a full socket to another
//! one (which can reorder a stream across workers). The management lcore
//! reads them once a second and at exit; reports read the totals.

use std::sync::atomic::{AtomicU64, Ordering};

use dpdk_bindings::af_packet::PacketSockets;

/// One af_packet port's kernel counters.
#[derive(Debug)]
pub struct KernelPortCounters {
    sockets: PacketSockets,
    /// Ring drops since start (the kernel resets its count on every read).
    ring_drops: AtomicU64,
    /// Frames rolled over to another worker's socket, since start.
    rollovers: AtomicU64,
}

impl KernelPortCounters {
    /// The counters of the PMD's sockets on kernel interface `iface`;
    /// `None` (logged) if none can be found.
    pub fn find(iface: &str) -> Option<Self> {
        match PacketSockets::of_interface(iface) {
            Ok(sockets) if !sockets.is_empty() => {
                log::info!(
                    "{iface}: {} af_packet sockets; ring drops and rollovers counted",
                    sockets.len()
                );
                Some(Self {
                    sockets,
                    ring_drops: AtomicU64::new(0),
                    rollovers: AtomicU64::new(0),
                })
            }
            Ok(_) => {
                log::warn!("{iface}: no af_packet socket found; its kernel drops are not counted");
                None
            }
            Err(e) => {
                log::warn!(
                    "{iface}: af_packet sockets not readable ({e}); kernel drops not counted"
                );
                None
            }
        }
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
