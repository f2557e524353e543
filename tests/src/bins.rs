//! Locating the workspace's own binaries for system tests.

use std::path::{Path, PathBuf};

/// Path of a binary built from this workspace (`appliance`, `appliancectl`,
/// `wan-emulator`, ...): `$<NAME>_BIN` if set, else `target/{release,debug}`.
///
/// # Panics
/// If it has not been built: the message says how to build it.
pub fn workspace_bin(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Ok(p) = std::env::var(&var) {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    for profile in ["release", "debug"] {
        let p = root.join("target").join(profile).join(name);
        if p.exists() {
            return p;
        }
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
