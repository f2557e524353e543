//! Cheap time for the hot path (TSC cycles), and a spin hint.

use crate::ffi;

/// Current timer cycles (TSC on x86): no syscall.
#[inline]
pub fn cycles() -> u64 {
    // SAFETY: reads the TSC; no memory is touched.
    unsafe { ffi::shim_get_timer_cycles() }
}

/// Timer cycles per second.
pub fn cycles_per_sec() -> u64 {
    // SAFETY: plain query.
    unsafe { ffi::shim_get_timer_hz() }
}

/// CPU pause hint for spin loops.
#[inline]
pub fn pause() {
    // SAFETY: executes the PAUSE instruction.
    unsafe { ffi::shim_pause() }
}
