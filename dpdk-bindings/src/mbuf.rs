//! Owned packet buffers.
//!
//! An [`Mbuf`] owns one reference to a `rte_mbuf` chain and frees it on drop,
//! so a forgotten packet can never leak from the pool. Data access covers the
//! first segment, which is where every header the appliance reads lives.
//!
//! Fan-out (one packet, many outputs) uses [`SharedMbuf`]: a read-only
//! payload several packets reference, each behind its own private header
//! mbuf ([`Mbuf::chain_shared`]), as DPDK's ipv4_multicast example does. No
//! API here writes to a segment that is shared.

use std::ptr::NonNull;

use crate::ffi;

/// Packets per burst everywhere in the appliance (l3fwd uses 32 too).
pub const BURST_SIZE: usize = 32;

/// A burst of owned mbufs.
pub type Burst = arrayvec::ArrayVec<Mbuf, BURST_SIZE>;

/// One owned mbuf (chain). `repr(transparent)` so a slice of them is a
/// `rte_mbuf **` array for the burst calls.
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<ffi::rte_mbuf>,
}

// SAFETY: an Mbuf is uniquely owned; DPDK allows an mbuf to be freed or
// transmitted from any lcore, and its pool is thread safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf; `None` for NULL.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nobody else will free or use.
    pub unsafe fn from_raw(raw: *mut ffi::rte_mbuf) -> Option<Self> {
        NonNull::new(raw).map(|raw| Self { raw })
    }

    fn into_non_null(self) -> NonNull<ffi::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    /// Gives up ownership without freeing.
    pub fn into_raw(self) -> *mut ffi::rte_mbuf {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }

    fn m(&self) -> &ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf for the life of self.
        unsafe { self.raw.as_ref() }
    }

    /// Bytes of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's
        // buffer by DPDK's invariants, and we own the mbuf.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// Mutable bytes of the first segment.
    ///
    /// The caller must not be sharing the data with another mbuf (refcnt 1
    /// and not attached); fan-out code builds private header mbufs instead.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and &mut self gives exclusive access.
        unsafe {
            let m = self.raw.as_mut();
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The bytes of every segment, in order.
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> {
        let mut next = Some(self.raw);
        std::iter::from_fn(move || {
            let seg = next?;
            // SAFETY: every segment of a chain we own is a valid mbuf for
            // the life of &self; its data range lies in its buffer.
            unsafe {
                let m = seg.as_ref();
                next = NonNull::new(m.next);
                Some(std::slice::from_raw_parts(
                    m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                    usize::from(m.data_len),
                ))
            }
        })
    }

    /// Length of the first segment.
    #[inline]
    pub fn data_len(&self) -> usize {
        usize::from(self.m().data_len)
    }

    /// Length of the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.m().pkt_len as usize
    }

    /// Whether the packet is one segment.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.m().nb_segs == 1
    }

    /// The port the packet arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// Sets the port the packet counts as having arrived on (a stage that
    /// re-injects a packet, such as tunnel decapsulation, marks it so).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: we own the mbuf; only its metadata is written.
        unsafe { self.raw.as_mut().port = port }
    }

    /// Prepends `len` bytes and returns them; `None` if headroom is short.
    /// Done here on the fields, as `rte_pktmbuf_prepend` does, so that the
    /// per-packet encapsulation makes no call across the FFI.
    #[inline]
    pub fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: we own the mbuf; only its length fields are written, and
        // only when the headroom holds `len` bytes.
        let m = unsafe { self.raw.as_mut() };
        let data_len = m.data_len.checked_add(len)?;
        if len > m.data_off {
            return None;
        }
        m.data_off -= len;
        m.data_len = data_len;
        m.pkt_len += u32::from(len);
        Some(&mut self.data_mut()[..usize::from(len)])
    }

    /// Appends `len` bytes at the tail and returns them; `None` if no room
    /// or the packet has several segments (the last one may be shared).
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        if !self.is_contiguous() {
            return None;
        }
        // SAFETY: as in `prepend`; the only segment is ours alone.
        unsafe {
            let p = ffi::shim_pktmbuf_append(self.raw.as_ptr(), len);
            (!p.is_null()).then(|| std::slice::from_raw_parts_mut(p.cast::<u8>(), usize::from(len)))
        }
    }

    /// Removes `len` bytes from the front; false if the segment is shorter.
    #[inline]
    pub fn adj(&mut self, len: u16) -> bool {
        // SAFETY: we own the mbuf; only the first segment's length fields
        // are written (as `rte_pktmbuf_adj` does), within its data.
        let m = unsafe { self.raw.as_mut() };
        if len > m.data_len {
            return false;
        }
        m.data_len -= len;
        m.data_off += len;
        m.pkt_len -= u32::from(len);
        true
    }

    /// Removes `len` bytes from the tail; false if the segment is shorter
    /// or the packet has several segments (the last one may be shared).
    #[inline]
    pub fn trim(&mut self, len: u16) -> bool {
        if !self.is_contiguous() {
            return false;
        }
        // SAFETY: we own the mbuf, and its only segment is the last one:
        // only its length fields are written, within its data.
        let m = unsafe { self.raw.as_mut() };
        if len > m.data_len {
            return false;
        }
        m.data_len -= len;
        m.pkt_len -= u32::from(len);
        true
    }

    /// Sets the length of a single-segment packet to `len`, growing into the
    /// tailroom or trimming; false if it does not fit.
    pub fn set_len(&mut self, len: usize) -> bool {
        let cur = self.data_len();
        if !self.is_contiguous() {
            return false;
        }
        match len.cmp(&cur) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => u16::try_from(cur - len).is_ok_and(|d| self.trim(d)),
            std::cmp::Ordering::Greater => {
                u16::try_from(len - cur).is_ok_and(|d| self.append(d).is_some())
            }
        }
    }

    /// Free bytes before the data.
    pub fn headroom(&self) -> usize {
        // SAFETY: valid owned mbuf.
        usize::from(unsafe { ffi::shim_pktmbuf_headroom(self.raw.as_ptr()) })
    }

    /// Free bytes after the data in the last segment.
    pub fn tailroom(&self) -> usize {
        // SAFETY: valid owned mbuf.
        usize::from(unsafe { ffi::shim_pktmbuf_tailroom(self.raw.as_ptr()) })
    }

    /// Reference count of the mbuf.
    pub fn refcnt(&self) -> u16 {
        // SAFETY: valid owned mbuf.
        unsafe { ffi::shim_mbuf_refcnt_read(self.raw.as_ptr()) }
    }

    /// Asks the NIC to fill the IPv4 header checksum (if `ip`) and the UDP
    /// checksum from a pseudo-header sum the caller wrote (if `udp`) on
    /// transmit. Only valid on ports that enabled those TX offloads.
    pub fn request_tx_checksum(&mut self, l2_len: u16, l3_len: u16, ip: bool, udp: bool) {
        let mut flags = ffi::RTE_MBUF_F_TX_IPV4;
        if ip {
            flags |= ffi::RTE_MBUF_F_TX_IP_CKSUM;
        }
        if udp {
            flags |= ffi::RTE_MBUF_F_TX_UDP_CKSUM;
        }
        // SAFETY: valid owned mbuf; only offload metadata is written.
        unsafe { ffi::shim_mbuf_set_tx_offload(self.raw.as_ptr(), flags, l2_len, l3_len) }
    }

    /// Turns a one-segment packet into a payload other packets can share.
    /// Gives the packet back if it has several segments or is already
    /// referenced elsewhere.
    pub fn into_shared(self) -> Result<SharedMbuf, Mbuf> {
        if !self.is_contiguous() || self.refcnt() != 1 {
            return Err(self);
        }
        Ok(SharedMbuf {
            raw: self.into_non_null(),
        })
    }

    /// Makes this one-segment packet (a private header) the head of a
    /// two-segment packet whose tail is `payload`. Gives the payload back
    /// if this packet already has several segments.
    pub fn chain_shared(&mut self, payload: SharedMbuf) -> Result<(), SharedMbuf> {
        if !self.is_contiguous() {
            return Err(payload);
        }
        let tail = payload.raw.as_ptr();
        std::mem::forget(payload);
        // SAFETY: the head is ours and has one segment, so its `next` is
        // free; the payload's reference moves into the chain, and the chain
        // is freed segment by segment (refcount-aware) by `Drop`.
        unsafe { ffi::shim_pktmbuf_chain_shared(self.raw.as_ptr(), tail) };
        Ok(())
    }
}

/// One reference to a read-only, one-segment payload shared by several
/// packets. Dropping it releases that reference; the data goes back to the
/// pool with the last one.
#[derive(Debug)]
pub struct SharedMbuf {
    raw: NonNull<ffi::rte_mbuf>,
}

// SAFETY: the reference count is atomic and nobody writes the shared data,
// so references may move to and be freed from any lcore.
unsafe impl Send for SharedMbuf {}

impl SharedMbuf {
    /// Another reference to the same payload.
    pub fn share(&self) -> SharedMbuf {
        // SAFETY: valid mbuf we hold a reference to; the atomic increment
        // accounts for the new handle.
        unsafe { ffi::shim_mbuf_refcnt_update(self.raw.as_ptr(), 1) };
        SharedMbuf { raw: self.raw }
    }

    /// The payload bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: a valid one-segment mbuf that no one writes while shared.
        unsafe {
            let m = self.raw.as_ref();
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// Reference count (how many packets hold the payload).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: valid mbuf.
        unsafe { ffi::shim_mbuf_refcnt_read(self.raw.as_ptr()) }
    }
}

impl Drop for SharedMbuf {
    fn drop(&mut self) {
        // SAFETY: we hold one reference; free decrements it and returns the
        // buffer to its pool only at zero.
        unsafe { ffi::shim_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own one reference to a valid mbuf chain.
        unsafe { ffi::shim_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// Raw pointer view of a burst for the C burst calls.
pub(crate) fn as_raw_array(burst: &mut Burst) -> *mut *mut ffi::rte_mbuf {
    // Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the
    // layout of *mut rte_mbuf.
    burst.as_mut_ptr().cast::<*mut ffi::rte_mbuf>()
}
