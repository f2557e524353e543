//! The standard topologies build, carry traffic where they can without the appliance, and
//! leave nothing behind when dropped.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use testbed::netns::list_netns;
use testbed::topology::{relay, sites, sites_linux};
use testbed::wanem::{Config, DirParams, Dur, EmulatorProcess, LinkConfig};
use testbed::{skip_unless_root, Netns};

fn leftover(base: &str) -> Result<Vec<String>> {
    Ok(list_netns()?
        .into_iter()
        .filter(|n| n.starts_with(base))
        .collect())
}

fn ping(from: &Netns, to: impl ToString) -> Result<String> {
    from.exec(&["ping", "-c", "3", "-i", "0.05", "-W", "2", &to.to_string()])
}

#[test]
fn relay_builds_two_segments_and_cleans_up() -> Result<()> {
    if skip_unless_root(&["ping", "ethtool"]) {
        return Ok(());
    }
    let r = relay(2, 1)?;
    let base = r.run.base().to_owned();
    ensure!(leftover(&base)?.len() == 5, "expected 5 namespaces");
    // Hosts on one segment reach each other through the switch.
    ping(&r.gens[0].ns, r.gens[1].addr)?;
    // The appliance ends exist, are up, and have no address for the kernel to answer with.
    for dev in [&r.app_gen_iface, &r.app_sink_iface] {
        let out = r.appliance.ip(&["-o", "addr", "show", "dev", dev])?;
        ensure!(
            !out.contains("inet"),
            "appliance interface {dev} has an address: {out}"
        );
        r.appliance.mac(dev)?;
    }
    drop(r);
    ensure!(leftover(&base)?.is_empty(), "namespaces left after drop");
    Ok(())
}

#[test]
fn sites_linux_routes_through_the_emulator() -> Result<()> {
    if skip_unless_root(&["ping", "ethtool"]) {
        return Ok(());
    }
    let s = sites_linux(2)?;
    let base = s.run.base().to_owned();
    let cfg = Config {
        control: None,
        links: s
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| LinkConfig {
                name: format!("w{i}"),
                a_iface: l.emu_a_iface.clone(),
                b_iface: l.emu_b_iface.clone(),
                state: "up".into(),
                both: Some(DirParams {
                    delay: Dur(Duration::from_millis(5)),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        events: vec![],
    };
    let emu = EmulatorProcess::start(
        &s.emu,
        Path::new(env!("CARGO_BIN_EXE_wan-emulator")),
        &cfg,
        &[],
    )?;
    let out = ping(&s.host_a.ns, s.host_b.addr)?;
    let snap = emu.stop()?;
    ensure!(out.contains("3 received"), "{out}");
    ensure!(
        snap.links[0].a_to_b.stats.forwarded >= 3,
        "pings did not cross link 0"
    );
    drop(s);
    ensure!(leftover(&base)?.is_empty(), "namespaces left after drop");
    Ok(())
}

#[test]
fn sites_leaves_appliances_unconfigured() -> Result<()> {
    if skip_unless_root(&["ethtool"]) {
        return Ok(());
    }
    let s = sites(1)?;
    let base = s.run.base().to_owned();
    ensure!(!s.linux_routers);
    let addrs = s.app_a.ip(&["-o", "-4", "addr", "show"])?;
    ensure!(
        addrs.lines().all(|l| l.contains(" lo ")),
        "appliance A has addresses: {addrs}"
    );
    s.app_a.mac(&s.links[0].app_a_iface)?;
    s.app_b.mac(&s.app_b_lan)?;
    drop(s);
    ensure!(leftover(&base)?.is_empty(), "namespaces left after drop");
    Ok(())
}
