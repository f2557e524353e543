//! Temporary directories of a run (emulator configs and control sockets, generated appliance
//! profiles), removed when their guard drops *and* when the process is stopped by
//! SIGINT/SIGTERM/SIGHUP.
//!
//! A plain `tempfile::TempDir` is removed by its destructor only; the signal thread of
//! [`crate::netns`] ends the process with `exit`, which runs no destructors. So every
//! [`RunDir`] is recorded in a process-wide registry that the signal thread empties (see
//! [`remove_registered`]) after it has removed the namespaces.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

/// Paths of the live [`RunDir`]s of this process.
static REGISTRY: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// A temporary directory named `tb<pid hex>x-<prefix>XXXXXX` under the system temp dir (so
/// a test can tell whose it is), removed with its contents on drop or on a termination signal.
#[derive(Debug)]
pub struct RunDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl RunDir {
    /// Creates the directory and registers it for removal on signals.
    pub fn new(prefix: &str) -> Result<RunDir> {
        // Make sure the signal thread exists even if no namespace was created yet.
        crate::netns::init_process();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-{prefix}", crate::netns::process_prefix()))
            .tempdir()
            .with_context(|| format!("creating a temporary directory {prefix}*"))?;
        let path = dir.path().to_path_buf();
        lock().insert(path.clone());
        Ok(RunDir {
            dir: Some(dir),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        lock().remove(&self.path);
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

/// Removes every registered directory (the signal thread calls this before exiting).
pub fn remove_registered() {
    let paths: Vec<PathBuf> = std::mem::take(&mut *lock()).into_iter().collect();
    for p in paths {
        let _ = std::fs::remove_dir_all(&p);
    }
}

/// True while `path` is registered (for tests).
pub fn is_registered(path: &Path) -> bool {
    lock().contains(path)
}

/// The set holds plain paths, consistent even after a panic elsewhere.
fn lock() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop_and_by_the_signal_path() {
        let a = RunDir::new("tb-rundir-test").unwrap();
        let pa = a.path().to_path_buf();
        std::fs::write(pa.join("f"), b"x").unwrap();
        assert!(is_registered(&pa));
        drop(a);
        assert!(!pa.exists() && !is_registered(&pa));

        // What the signal thread does: the directory goes even though its guard is leaked.
        let b = RunDir::new("tb-rundir-test").unwrap();
        let pb = b.path().to_path_buf();
        std::mem::forget(b);
        remove_registered();
        assert!(!pb.exists() && !is_registered(&pb));
    }
}
