//! `linux-wireguard`: WireGuard in user space, as Debian ships it (`wireguard-go` and
//! `wireguard-tools`; this kernel has no WireGuard module). Each router runs one
//! `wireguard-go` in the foreground on a TUN device (MTU 1420, its default), configured with
//! `wg set`: fresh keys per run, the peer's endpoint on the first WAN link, and the other
//! site's subnet as its allowed IPs and route. WireGuard sends to one endpoint, so the other
//! links stay idle. The routers clamp the TCP MSS to the route's MTU, as a WireGuard gateway
//! does. The two `wireguard-go` processes are the row's "system CPU".

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::linux_ecmp_vxlan::clamp_mss;
use super::SitesSetup;
use crate::netns::NsProcess;
use crate::scenario::tools::require;
use crate::topology::Sites;

/// WireGuard's usual UDP port.
const PORT: &str = "51820";

/// Where wireguard-go puts a device's control socket (its UAPI), named after the device.
const UAPI_DIR: &str = "/var/run/wireguard";

pub fn setup(s: &Sites) -> Result<SitesSetup> {
    require("wireguard-go", "wireguard-go")?;
    require("wg", "wireguard-tools")?;
    let l0 = &s.links[0];
    let keys = tempfile::tempdir().context("key directory")?;
    let mut public = Vec::new();
    for site in ["a", "b"] {
        let private = wg(&["genkey"], None)?;
        let file = keys.path().join(format!("{site}.key"));
        write_private(&file, &private)?;
        public.push(wg(&["pubkey"], Some(&private))?);
    }
    let mut processes = Vec::new();
    for (ns, site, peer_public, endpoint, there) in [
        (&s.app_a, "a", &public[1], l0.b_addr, "10.2.0.0/24"),
        (&s.app_b, "b", &public[0], l0.a_addr, "10.1.0.0/24"),
    ] {
        // The UAPI sockets of both namespaces share one folder, named after the device: the
        // two devices get different names.
        let dev = s.run.ifname(&format!("wg{site}"));
        let mut cmd = ns.command("wireguard-go");
        cmd.args(["-f", &dev])
            // wireguard-go refuses to run on Linux (it prefers the kernel module) without it.
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1");
        let mut p = NsProcess::spawn(cmd)?;
        wait_for_socket(&dev, &mut p)?;
        let key = keys.path().join(format!("{site}.key"));
        ns.exec(&[
            "wg",
            "set",
            &dev,
            "private-key",
            &key.to_string_lossy(),
            "listen-port",
            PORT,
            "peer",
            peer_public,
            "endpoint",
            &format!("{endpoint}:{PORT}"),
            "allowed-ips",
            there,
        ])
        .context("wg set")?;
        ns.ip(&["link", "set", "dev", &dev, "up"])?;
        ns.ip(&["route", "replace", there, "dev", &dev])?;
        clamp_mss(ns)?;
        processes.push(p);
    }
    Ok(SitesSetup {
        notes: vec![format!(
            "wireguard-go {} over the first WAN link (TUN MTU 1420, MSS clamped)",
            version()
        )],
        processes,
        ..SitesSetup::default()
    })
}

/// Runs `wg` in the root namespace (key generation needs no device), `input` on its stdin.
fn wg(args: &[&str], input: Option<&str>) -> Result<String> {
    let mut child = Command::new("wg")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running wg (wireguard-tools)")?;
    if let Some(text) = input {
        child
            .stdin
            .take()
            .context("wg stdin")?
            .write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("wg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn write_private(file: &Path, key: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| f.write_all(key.as_bytes()))
        .with_context(|| format!("writing {}", file.display()))
}

fn wait_for_socket(dev: &str, p: &mut NsProcess) -> Result<()> {
    let sock = Path::new(UAPI_DIR).join(format!("{dev}.sock"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() {
        if !p.is_running() {
            bail!("wireguard-go exited before creating {}", sock.display());
        }
        if Instant::now() > deadline {
            bail!("wireguard-go did not create {} within 5 s", sock.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn version() -> String {
    Command::new("wireguard-go")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "(version unknown)".into())
}
