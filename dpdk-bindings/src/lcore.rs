//! Launching closures on worker lcores, and facts about the calling lcore.

use std::os::raw::{c_int, c_void};

use crate::error::{check, Result};
use crate::ffi;

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for exactly this call;
    // it is reclaimed once, here.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    job()
}

/// Runs `job` on `lcore` (a worker lcore that is idle).
///
/// The build uses `panic = "abort"`, so a panic in `job` cannot unwind
/// across the C frames of the EAL thread.
///
/// # Errors
/// The lcore is busy or not a worker.
pub fn launch(lcore: u32, job: impl FnOnce() -> i32 + Send + 'static) -> Result<()> {
    let boxed: Box<Job> = Box::new(Box::new(job));
    let arg = Box::into_raw(boxed).cast::<c_void>();
    // SAFETY: `trampoline` has the expected C signature and takes ownership
    // of `arg` when it runs.
    let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if ret < 0 {
        // SAFETY: the EAL refused the launch, so the trampoline never runs
        // and we still own the job.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
    }
    check("rte_eal_remote_launch", ret).map(|_| ())
}

/// Waits for the job on `lcore` to finish and returns its return value.
pub fn wait(lcore: u32) -> i32 {
    // SAFETY: plain blocking call on a valid lcore id.
    unsafe { ffi::rte_eal_wait_lcore(lcore) }
}

/// The id of the calling lcore (`u32::MAX` on a non-EAL thread).
pub fn current() -> u32 {
    // SAFETY: reads thread-local state through the shim.
    unsafe { ffi::shim_lcore_id() }
}
