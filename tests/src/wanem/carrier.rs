//! Carrier: a `down` link sets the emulator's own end of each of its two veths
//! administratively down, so the interfaces across those veths (hosts, routers, the
//! appliance) see NO-CARRIER, as with a pulled cable; `up` sets them up again and the
//! carrier returns. A `blackhole` leaves the carrier alone: it is the silent failure.
//!
//! The AF_PACKET sockets stay open across this: the kernel unhooks a packet socket bound to
//! an interface that goes down (reporting ENETDOWN once on it) and hooks it again when the
//! interface comes back up, with its filter and promiscuous membership intact.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// `ip link set dev <iface> up|down` in the emulator's namespace.
pub fn set_admin(iface: &str, up: bool) -> Result<()> {
    let state = if up { "up" } else { "down" };
    let out = Command::new("ip")
        .args(["link", "set", "dev", iface, state])
        .output()
        .with_context(|| format!("running `ip link set dev {iface} {state}`"))?;
    if !out.status.success() {
        bail!(
            "`ip link set dev {iface} {state}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Sets both interfaces of a link; tries the second even if the first fails.
pub fn set_link(a_iface: &str, b_iface: &str, up: bool) -> Result<()> {
    let a = set_admin(a_iface, up);
    let b = set_admin(b_iface, up);
    a.and(b)
}
