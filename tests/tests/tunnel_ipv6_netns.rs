//! IPv6 between two sites across the encrypted tunnel (IPv4 WAN paths, two emulated links):
//! each site's Linux host at its default settings, configured by its appliance's router
//! advertisements alone; ping6 through two routed hops, the far appliance's answers and
//! errors coming back through the tunnel, packet too big at the tunnel's inner MTU, and
//! iperf3 -6 TCP over both paths; nothing leaked.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use testbed::netns::{skip_unless_root, NsProcess};
use testbed::scenario::systems::appliance_tunnel::{Site, TunnelSpec};
use testbed::tunnel_bed::{bed_with, RATES};

/// Data packets a site sent on each path.
fn tx_packets(paths: &[Value]) -> Vec<u64> {
    paths
        .iter()
        .map(|p| p["tx_packets"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn ipv6_hosts_at_two_sites_talk_across_the_tunnel() -> Result<()> {
    if skip_unless_root(&["ip", "ping", "iperf3"]) {
        return Ok(());
    }
    let mut spec = TunnelSpec::new("wlb", &RATES);
    spec.ipv6 = true;
    let b = bed_with(spec, 0.0)?;
    let (host_a, host_b) = (&b.sites.host_a, &b.sites.host_b);
    let a = host_a.ns.slaac_address(&host_a.iface, "fd00:1:")?;
    let b_addr = host_b.ns.slaac_address(&host_b.iface, "fd00:2:")?;

    let out = host_a
        .ns
        .ping_output(&["-6", "-c", "5", "-i", "0.2", "-W", "2", &b_addr])?;
    assert!(
        out.contains(" 0% packet loss") && out.contains("ttl=62"),
        "host A pings host B through the tunnel, two routed hops: {out}"
    );
    // The far appliance answers for its LAN address through the tunnel.
    let out = host_a
        .ns
        .ping_output(&["-6", "-c", "2", "-i", "0.2", "-W", "2", "fd00:2::1"])?;
    assert!(
        out.contains(" 0% packet loss"),
        "appliance B answers: {out}"
    );
    // Its errors come back the same way: the hop limit runs out at appliance B.
    let out = host_a
        .ns
        .ping_output(&["-6", "-c", "1", "-t", "2", "-W", "3", &b_addr])?;
    assert!(
        out.contains("fd00:2::1") && out.contains("Time exceeded"),
        "time exceeded from appliance B through the tunnel: {out}"
    );
    // Above the tunnel's inner MTU (1500-byte paths, sealed: 1436): packet too big from
    // appliance A, with that MTU.
    let out = host_a.ns.ping_output(&[
        "-6", "-c", "1", "-s", "1440", "-M", "do", "-W", "2", &b_addr,
    ])?;
    assert!(
        out.contains("fd00:1::1") && out.contains("mtu=1436"),
        "packet too big at the tunnel: {out}"
    );

    // TCP over IPv6, host A's TSO on: both paths carry it (wlb).
    let before = tx_packets(&b.paths(Site::A));
    let server = NsProcess::spawn({
        let mut c = host_b.ns.command("iperf3");
        c.args(["-s", "-1", "-B", &b_addr, "-p", "5299"]);
        c
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let client = host_a
        .ns
        .exec(&["iperf3", "-6", "-c", &b_addr, "-p", "5299", "-t", "4", "-J"])
        .context("iperf3 -6 client")?;
    let _ = server.wait_timeout(Duration::from_secs(10));
    let v: Value = serde_json::from_str(&client)?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    let after = tx_packets(&b.paths(Site::A));
    let sent: Vec<u64> = after.iter().zip(&before).map(|(x, y)| x - y).collect();
    eprintln!(
        "iperf3 -6 across the tunnel: {:.1} Mbit/s from {a}, packets per path {sent:?}",
        bps / 1e6
    );
    assert!(
        bps > 10e6,
        "TCP over IPv6 crossed the tunnel: {:.1} Mbit/s",
        bps / 1e6
    );
    assert!(
        sent.iter().all(|n| *n > 100),
        "wlb used both paths: {sent:?}"
    );
    let [fa, fb] = b.finish()?;
    for (site, f) in [("A", &fa), ("B", &fb)] {
        let drops = &f["drops"];
        for reason in ["tunnel_bad_inner", "ip6_ext_header", "ip6_martian_source"] {
            assert_eq!(drops[reason], 0, "site {site}: {reason}: {drops}");
        }
    }
    Ok(())
}
