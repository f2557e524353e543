//! EAL initialisation (once per process), the version guard, and lcore facts.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{DpdkError, Result};
use crate::ffi;

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is initialised. Dropping it runs `rte_eal_cleanup` and
/// removes the EAL's runtime directory (`/var/run/dpdk/<file prefix>`), so a
/// process that stops cleanly leaves nothing behind; keep it alive until
/// every port and mempool is gone.
#[derive(Debug)]
pub struct Eal {
    runtime_dir: Option<std::path::PathBuf>,
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (argv[0] included). Fails if the EAL
    /// was already initialised in this process.
    ///
    /// # Errors
    /// The EAL's own failure (bad arguments, no memory, no hugepages, ...).
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError {
                op: "rte_eal_init (called twice)",
                code: libc_ealready(),
            });
        }
        // rte_eal_init permutes argv and may keep pointers into it for the
        // life of the process, so the strings are leaked on purpose.
        let owned: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_ref().replace('\0', "")).unwrap_or_default())
            .collect();
        let leaked: &'static mut [CString] = Box::leak(owned.into_boxed_slice());
        let argv: Vec<*mut c_char> = leaked.iter().map(|s| s.as_ptr().cast_mut()).collect();
        let argv: &'static mut [*mut c_char] = Box::leak(argv.into_boxed_slice());
        let argc = c_int::try_from(argv.len()).unwrap_or(c_int::MAX);
        // SAFETY: argv points to `argc` valid NUL-terminated strings that
        // live for the rest of the process (leaked above); the guard above
        // makes this the only call.
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        // SAFETY: after a successful init the EAL returns a pointer to its
        // own NUL-terminated path, valid until cleanup; it is copied at once.
        let dir = unsafe { ffi::rte_eal_get_runtime_dir() };
        let runtime_dir = (!dir.is_null()).then(|| {
            // SAFETY: checked non-NULL above; a C string owned by the EAL.
            let path = unsafe { CStr::from_ptr(dir) };
            std::path::PathBuf::from(path.to_string_lossy().into_owned())
        });
        Ok(Eal { runtime_dir })
    }

    /// The directory the EAL keeps its runtime files in (removed on drop).
    pub fn runtime_dir(&self) -> Option<&std::path::Path> {
        self.runtime_dir.as_deref()
    }

    /// The lcore that runs `main` (the management lcore).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: plain query, EAL is initialised.
        unsafe { ffi::rte_get_main_lcore() }
    }

    /// Every enabled lcore except the main one, in id order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut id: u32 = u32::MAX; // -1: start before the first lcore
        loop {
            // SAFETY: plain query; skip_main=1, wrap=0 ends at RTE_MAX_LCORE.
            id = unsafe { ffi::rte_get_next_lcore(id, 1, 0) };
            if id >= ffi::RTE_MAX_LCORE {
                return out;
            }
            out.push(id);
        }
    }

    /// NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: plain query.
        unsafe { ffi::rte_lcore_to_socket_id(lcore) }
    }

    /// Whether the EAL runs with hugepages.
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: plain query.
        unsafe { ffi::rte_eal_has_hugepages() != 0 }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the Eal value is unique and dropped last by the owner,
        // after ports and pools are released.
        unsafe {
            ffi::rte_eal_cleanup();
        }
        // The EAL leaves its runtime directory (config, fbarrays, mp socket)
        // behind; nothing uses it after cleanup. Only a directory under a
        // `dpdk` parent is removed, whatever the EAL reported.
        if let Some(dir) = self
            .runtime_dir
            .take()
            .filter(|d| d.parent().is_some_and(|p| p.ends_with("dpdk")))
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn libc_ealready() -> i32 {
    114 // EALREADY on Linux
}

/// The version string of the DPDK library loaded at run time.
pub fn runtime_version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe {
        CStr::from_ptr(ffi::rte_version())
            .to_string_lossy()
            .into_owned()
    }
}

/// The version of the headers the bindings were generated from.
pub fn header_version() -> String {
    format!(
        "DPDK {}.{:02}.{}",
        ffi::RTE_VER_YEAR,
        ffi::RTE_VER_MONTH,
        ffi::RTE_VER_MINOR
    )
}

/// The startup guard: the library we run against must be the one whose
/// headers we compiled against, or struct layouts (rte_mbuf, the ethdev
/// fast-path table) may differ and the first rx_burst corrupts memory.
///
/// # Errors
/// A message naming both versions.
pub fn check_version() -> std::result::Result<(), String> {
    let runtime = runtime_version();
    let headers = header_version();
    // The runtime string may carry a suffix such as "-rc1"; compare the
    // numeric prefix only.
    if runtime.starts_with(&headers) {
        Ok(())
    } else {
        Err(format!(
            "DPDK version mismatch: compiled against headers of {headers}, running with library {runtime}; rebuild against the installed DPDK"
        ))
    }
}
