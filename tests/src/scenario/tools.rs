//! Where the runner finds the programs it starts: this workspace's binaries next to its own
//! executable (or in `--bin-dir`), system tools on the PATH.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The directory holding `wan-emulator`, `mcast-gen`, `mcast-sink` and `appliance`.
#[derive(Debug, Clone)]
pub struct Tools {
    pub dir: PathBuf,
}

impl Tools {
    /// The directory of the running executable (`target/<profile>/`), where cargo puts the
    /// workspace's binaries.
    pub fn beside_current_exe() -> Result<Tools> {
        let exe = std::env::current_exe()?;
        let dir = exe
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Tools { dir })
    }

    /// A workspace binary; an error says how to build it.
    pub fn bin(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        if !p.is_file() {
            let package = if name.starts_with("appliance") {
                "appliance"
            } else {
                "testbed"
            };
            bail!(
                "{} not found: build it with `cargo build --release -p {package} --bins` \
                 (or pass --bin-dir)",
                p.display()
            );
        }
        Ok(p)
    }
}

/// Whether `tool` is on the PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Fails with the Debian package to install when a system tool is missing.
pub fn require(tool: &str, package: &str) -> Result<()> {
    if !on_path(tool) {
        bail!("`{tool}` is not installed (apt-get install {package}, or `make deps`)");
    }
    Ok(())
}
