//! Packet mbuf pools.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{DpdkError, Result};
use crate::ffi;
use crate::mbuf::Mbuf;

/// A `rte_pktmbuf` pool. Free it (drop) only after every port that uses
/// it is closed: the PMDs keep mbufs of it in their rings.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
    /// Bytes an mbuf holds after its headroom.
    data_room: usize,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the handle
// is only a pointer to shared, internally synchronised state.
unsafe impl Send for Mempool {}
// SAFETY: as above; every method takes &self and is thread safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `count` mbufs with `data_room` bytes each
    /// (headroom included) and a per-lcore cache of `cache` mbufs.
    ///
    /// # Errors
    /// No memory (common with `--no-huge` and a small `-m`), bad sizes,
    /// or no mempool driver (the `mempool_ring` plugin was not loaded).
    pub fn new(name: &str, count: u32, cache: u32, data_room: u16, socket: i32) -> Result<Self> {
        let cname = CString::new(name).map_err(|_| DpdkError {
            op: "rte_pktmbuf_pool_create (name)",
            code: 22,
        })?;
        // SAFETY: name is a valid C string; DPDK copies it.
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Self {
                raw,
                data_room: usize::from(data_room)
                    .saturating_sub(ffi::RTE_PKTMBUF_HEADROOM as usize),
            })
            .ok_or_else(|| DpdkError::from_rte_errno("rte_pktmbuf_pool_create"))
    }

    /// Mbufs currently taken from the pool (in rings, queues, or in flight).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid for the life of self.
        unsafe { ffi::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Mbufs free in the pool (caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for the life of self.
        unsafe { ffi::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Total size of the pool.
    pub fn capacity(&self) -> u32 {
        // SAFETY: reads a field of a valid pool.
        unsafe { (*self.raw.as_ptr()).size }
    }

    /// Takes one mbuf, reset, with default headroom; `None` when empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a non-null result is a fresh mbuf we own.
        unsafe { Mbuf::from_raw(ffi::shim_pktmbuf_alloc(self.raw.as_ptr())) }
    }

    /// Bytes of packet an mbuf of the pool holds in one segment (its data
    /// room less the headroom).
    pub fn data_room(&self) -> usize {
        self.data_room
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the owner drops the pool after closing the ports that use it.
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) }
    }
}
