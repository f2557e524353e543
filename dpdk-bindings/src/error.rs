//! One error type for every fallible DPDK call: which call, and DPDK's errno.

use std::ffi::CStr;

use crate::ffi;

/// A DPDK call failed. `code` is a positive errno (DPDK returns `-errno`
/// or sets `rte_errno`); the message is DPDK's own text for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} failed: {} (errno {code})", strerror(*.code))]
pub struct DpdkError {
    /// The DPDK function that failed, e.g. `rte_eth_dev_configure`.
    pub op: &'static str,
    /// Positive errno value.
    pub code: i32,
}

/// Result of a DPDK call.
pub type Result<T> = std::result::Result<T, DpdkError>;

impl DpdkError {
    /// From a negative return value (`-errno`).
    pub fn from_ret(op: &'static str, ret: i32) -> Self {
        Self {
            op,
            code: ret.saturating_abs(),
        }
    }

    /// From the calling thread's `rte_errno`, for calls that return NULL.
    pub fn from_rte_errno(op: &'static str) -> Self {
        // SAFETY: reads this thread's rte_errno through the shim; no pointers.
        let code = unsafe { ffi::shim_errno() };
        Self { op, code }
    }
}

/// Maps a DPDK return code (`< 0` is `-errno`) to a `Result`.
pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32> {
    if ret < 0 {
        Err(DpdkError::from_ret(op, ret))
    } else {
        Ok(ret)
    }
}

fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string, valid until the next call on this thread; we
    // copy it out at once.
    unsafe {
        let text = ffi::rte_strerror(code);
        if text.is_null() {
            return format!("errno {code}");
        }
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}
