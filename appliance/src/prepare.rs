//! `appliance prepare`: what a bare-metal box needs before the appliance starts, done with
//! DPDK's own tools and driven by the hardware profile, so that `systemctl enable --now
//! appliance` is all it takes (the unit runs it as `ExecStartPre`):
//!
//! - the profile's hugepages (`eal.hugepages = "on"`): `eal.memory_mb` of `eal.hugepage_size`
//!   pages reserved and mounted at `eal.huge_dir` (`dpdk-hugepages.py`);
//! - each `pci` port with `bind` set: its kernel driver loaded and the device bound to it
//!   (`modprobe`, `dpdk-devbind.py`).
//!
//! VM profiles (af_packet, `hugepages = "auto"`) need nothing and get nothing.

use std::process::Command;

use crate::config::{Driver, HugePages, HwProfile};

/// The commands, in order, each as its argument vector.
pub fn commands(profile: &HwProfile) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let eal = &profile.eal;
    if eal.hugepages == HugePages::On {
        let mut c = vec![
            "dpdk-hugepages.py".to_string(),
            "--pagesize".into(),
            eal.hugepage_size.clone().unwrap_or_else(|| "2M".into()),
            "--reserve".into(),
            format!("{}M", eal.memory_mb),
            "--mount".into(),
        ];
        if let Some(dir) = &eal.huge_dir {
            c.extend(["--directory".into(), dir.display().to_string()]);
        }
        out.push(c);
    }
    let mut loaded: Vec<&str> = Vec::new();
    for p in &profile.ports {
        let (Driver::Pci, Some(pci), Some(driver)) = (p.driver, &p.pci, &p.bind) else {
            continue;
        };
        if !loaded.contains(&driver.as_str()) {
            out.push(vec!["modprobe".into(), driver.clone()]);
            loaded.push(driver);
        }
        out.push(vec![
            "dpdk-devbind.py".into(),
            "--bind".into(),
            driver.clone(),
            pci.clone(),
        ]);
    }
    out
}

/// Runs (or with `dry_run` only prints) the commands, stopping at the first that fails.
pub fn run(profile: &HwProfile, dry_run: bool) -> Result<(), String> {
    let commands = commands(profile);
    if commands.is_empty() {
        println!(
            "profile {}: nothing to prepare (no hugepages to reserve, no device to bind)",
            profile.name
        );
    }
    for c in &commands {
        println!("{}", c.join(" "));
        if dry_run {
            continue;
        }
        let status = Command::new(&c[0])
            .args(&c[1..])
            .status()
            .map_err(|e| format!("{}: {e}", c[0]))?;
        if !status.success() {
            return Err(format!("`{}` failed ({status})", c.join(" ")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn profile(file: &str) -> HwProfile {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hw-profiles");
        HwProfile::load(&root.join(file)).expect(file)
    }

    #[test]
    fn a_vm_profile_needs_nothing() {
        assert!(commands(&profile("vm-af-packet.toml")).is_empty());
    }

    #[test]
    fn bare_metal_gets_its_hugepages_and_its_devices_bound() {
        let c = commands(&profile("baremetal-e810.toml"));
        let lines: Vec<String> = c.iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "dpdk-hugepages.py --pagesize 1G --reserve 4096M --mount --directory /dev/hugepages1G",
                "modprobe vfio-pci",
                "dpdk-devbind.py --bind vfio-pci 0000:3b:00.0",
                "dpdk-devbind.py --bind vfio-pci 0000:3b:00.1",
            ]
        );
        // Mellanox stays on its kernel driver: hugepages only.
        let c = commands(&profile("baremetal-cx6.toml"));
        assert!(c.len() == 1 && c[0][0] == "dpdk-hugepages.py", "{c:?}");
    }
}
