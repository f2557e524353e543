//! Single-producer single-consumer rings of mbufs between lcores.
//!
//! The two ends are separate values so the type system enforces SPSC use:
//! only the holder of the [`Producer`] enqueues, only the holder of the
//! [`Consumer`] dequeues.

use std::ffi::CString;
use std::os::raw::c_void;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::{DpdkError, Result};
use crate::ffi;
use crate::mbuf::{Burst, Mbuf, BURST_SIZE};

#[derive(Debug)]
struct Shared {
    raw: NonNull<ffi::rte_ring>,
}

// SAFETY: rte_ring is designed to be shared between lcores; SPSC use is
// enforced by the Producer/Consumer split below.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // Both ends are gone: free what is still queued, then the ring.
        let mut buf = [std::ptr::null_mut::<c_void>(); BURST_SIZE];
        loop {
            // SAFETY: no end is alive, so this is the only user of the ring.
            let n = unsafe {
                ffi::shim_ring_dequeue_burst(self.raw.as_ptr(), buf.as_mut_ptr(), BURST_SIZE as u32)
            };
            if n == 0 {
                break;
            }
            for p in &buf[..n as usize] {
                // SAFETY: only owned mbufs are ever enqueued.
                drop(unsafe { Mbuf::from_raw(p.cast()) });
            }
        }
        // SAFETY: the ring is empty and unused.
        unsafe { ffi::rte_ring_free(self.raw.as_ptr()) }
    }
}

/// The enqueue end.
#[derive(Debug)]
pub struct Producer {
    ring: Arc<Shared>,
}

/// The dequeue end.
#[derive(Debug)]
pub struct Consumer {
    ring: Arc<Shared>,
}

/// Creates an SPSC ring holding up to `size - 1` mbufs (`size` a power of 2).
///
/// # Errors
/// Name taken, size not a power of two, or no memory.
pub fn spsc(name: &str, size: u32, socket: i32) -> Result<(Producer, Consumer)> {
    let cname = CString::new(name).map_err(|_| DpdkError {
        op: "rte_ring_create (name)",
        code: 22,
    })?;
    let flags = ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ;
    // SAFETY: valid C string; DPDK copies it.
    let raw = unsafe { ffi::rte_ring_create(cname.as_ptr(), size, socket, flags) };
    let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_rte_errno("rte_ring_create"))?;
    let ring = Arc::new(Shared { raw });
    Ok((
        Producer {
            ring: Arc::clone(&ring),
        },
        Consumer { ring },
    ))
}

impl Producer {
    /// Enqueues one mbuf; gives it back when the ring is full.
    ///
    /// # Errors
    /// The ring is full; the caller decides (count and drop).
    pub fn enqueue(&mut self, m: Mbuf) -> std::result::Result<(), Mbuf> {
        let p = m.into_raw().cast::<c_void>();
        // SAFETY: we are the only producer; p is an owned mbuf whose
        // ownership moves into the ring on success.
        let n = unsafe { ffi::shim_ring_enqueue_burst(self.ring.raw.as_ptr(), &p, 1) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: not enqueued, so we still own it.
            Err(unsafe { Mbuf::from_raw(p.cast()) }.expect("pointer came from an Mbuf"))
        }
    }
}

impl Consumer {
    /// Dequeues up to `BURST_SIZE - out.len()` mbufs into `out`.
    pub fn dequeue_burst(&mut self, out: &mut Burst) -> usize {
        let room = out.remaining_capacity();
        let mut buf = [std::ptr::null_mut::<c_void>(); BURST_SIZE];
        // SAFETY: we are the only consumer; buf has room for `room` pointers.
        let n = unsafe {
            ffi::shim_ring_dequeue_burst(self.ring.raw.as_ptr(), buf.as_mut_ptr(), room as u32)
        } as usize;
        for p in &buf[..n] {
            // SAFETY: only owned mbufs are enqueued; ownership moves to us.
            if let Some(m) = unsafe { Mbuf::from_raw(p.cast()) } {
                out.push(m);
            }
        }
        n
    }

    /// Mbufs waiting.
    pub fn len(&self) -> usize {
        // SAFETY: valid ring.
        unsafe { ffi::shim_ring_count(self.ring.raw.as_ptr()) as usize }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
