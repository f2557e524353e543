//! Locating the workspace's own binaries for system tests.

use std::path::{Path, PathBuf};

/// Path of a binary built from this workspace (`appliance`, `appliancectl`,
/// `wan-emulator`, ...): `$<NAME>_BIN` if set, else the newer of
/// `target/release` and `target/debug` (a stale release build left by a
/// benchmark must not shadow the debug build a test was just compiled with).
///
/// # Panics
/// If it has not been built: the message says how to build it.
pub fn workspace_bin(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Ok(p) = std::env::var(&var) {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    let newest = ["release", "debug"]
        .iter()
        .map(|profile| root.join("target").join(profile).join(name))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max();
    if let Some((_, p)) = newest {
        return p;
    }
    panic!(
        "{name} is not built: run `cargo build --workspace --bins` (make test does) or set {var}"
    );
}

/// The workspace root (parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
