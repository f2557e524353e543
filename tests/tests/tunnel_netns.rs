//! The tunnel between two appliances, one per site, on `net_af_packet`, over two WAN links
//! emulated by the test bed (30 Mbit/s 10 ms and 8 Mbit/s 30 ms one way), with plain Linux
//! hosts on both sides: ping and iperf3 TCP through it with each scheduler, each scheduler's
//! use of the paths, `redundant` against random loss, `source-subnet` with MPTCP end hosts,
//! and nothing leaked.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use testbed::bins::workspace_bin;
use testbed::netns::skip_unless_root;
use testbed::probe::{send_seq, SeqReceiver};
use testbed::scenario::systems::appliance_tunnel::{self, Site, TunnelSpec};
use testbed::tunnel_bed::{bed, bed_with, RATES};

/// Data packets site A sent on each path.
fn tx_packets(paths: &[Value]) -> Vec<u64> {
    paths
        .iter()
        .map(|p| p["tx_packets"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn every_scheduler_carries_ping_and_tcp_between_the_sites() -> Result<()> {
    if skip_unless_root(&["ip", "ping", "iperf3", "ethtool"]) {
        return Ok(());
    }
    // TUNNEL_SCHEDULERS=flow-hash,wlb narrows the run (debugging).
    let only = std::env::var("TUNNEL_SCHEDULERS").unwrap_or_default();
    for scheduler in ["wlb", "minrtt", "flow-hash", "backup", "redundant"] {
        if !only.is_empty() && !only.split(',').any(|s| s == scheduler) {
            continue;
        }
        let b = bed(scheduler, 0.0)?;
        let ping = b
            .sites
            .host_a
            .ns
            .exec(&["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.2.0.2"])
            .with_context(|| format!("{scheduler}: host A pings host B through the tunnel"))?;
        assert!(
            ping.contains(" 0% packet loss") && ping.contains("ttl=62"),
            "{scheduler}: two routed hops: {ping}"
        );
        // The far appliance answers for its own LAN address through the tunnel.
        b.sites
            .host_a
            .ns
            .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.2.0.1"])
            .with_context(|| format!("{scheduler}: host A pings appliance B's LAN address"))?;
        let before = tx_packets(&b.paths(Site::A));
        let mbps = b.tcp(3)?;
        let after = tx_packets(&b.paths(Site::A));
        let sent: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let total: u64 = sent.iter().sum();
        let share = |i: usize| sent[i] as f64 / total.max(1) as f64;
        eprintln!("{scheduler}: {mbps:.1} Mbit/s, packets per path {sent:?}");
        for p in b.paths(Site::A) {
            eprintln!(
                "  path {}: state {}, flaps {}, rtt {} us, delay {} us, queue {} us, loss {}",
                p["name"],
                p["state"],
                p["flaps"],
                p["srtt_us"],
                p["delay_us"],
                p["queueing_us"],
                p["loss"]
            );
            eprintln!("    shaper {}", p["shaper"]);
        }
        assert!(
            mbps > 5.0,
            "{scheduler}: TCP through the tunnel ran at {mbps:.1} Mbit/s"
        );
        match scheduler {
            // Per packet in proportion to the rates (30:8): both paths carry the flow.
            "wlb" => assert!(share(1) > 0.05 && share(0) > 0.5, "{scheduler}: {sent:?}"),
            // The fast path while it has room, the excess on the other.
            "minrtt" => assert!(share(0) > 0.5, "{scheduler}: {sent:?}"),
            // One flow stays on one path (probes and the ping aside).
            "flow-hash" => assert!(share(0).max(share(1)) > 0.95, "{scheduler}: {sent:?}"),
            // Active/standby: path a (priority 0).
            "backup" => assert!(share(0) > 0.95, "{scheduler}: {sent:?}"),
            // Every packet on both paths, the far side drops the second copy. The 8 Mbit/s
            // path cannot carry every copy of a 27 Mbit/s flow: its shaper drops the excess
            // (counted), so what it sent and dropped together match what path a sent.
            "redundant" => {
                let shaper_drops: Vec<u64> = b
                    .paths(Site::A)
                    .iter()
                    .map(|p| {
                        p["shaper"]["tiers"].as_array().map_or(0, |tiers| {
                            tiers
                                .iter()
                                .map(|t| {
                                    t["aqm_drops"].as_u64().unwrap_or(0)
                                        + t["overlimit_drops"].as_u64().unwrap_or(0)
                                        + t["queued"].as_u64().unwrap_or(0)
                                })
                                .sum()
                        })
                    })
                    .collect();
                let offered: Vec<u64> =
                    sent.iter().zip(&shaper_drops).map(|(s, d)| s + d).collect();
                let share = offered[0] as f64 / (offered[0] + offered[1]).max(1) as f64;
                assert!(
                    (share - 0.5).abs() < 0.02,
                    "{scheduler}: sent {sent:?}, dropped or held by the shapers {shaper_drops:?}"
                );
                // Every copy that arrives second is dropped: as many as the slower path
                // delivered (the 8 Mbit/s link cannot carry every copy of a 27 Mbit/s flow).
                let drops = b.show(Site::B, "tunnel")["drops"]["tunnel_duplicate"]
                    .as_u64()
                    .unwrap_or(0);
                let delivered: Vec<u64> = b
                    .paths(Site::B)
                    .iter()
                    .map(|p| p["rx_packets"].as_u64().unwrap_or(0))
                    .collect();
                let second = delivered.iter().copied().min().unwrap_or(0);
                // (The paths' receive counts include the probes, ~100/s each.)
                assert!(drops as f64 > 0.6 * second as f64, "{scheduler}: site B dropped {drops} duplicates; the paths delivered {delivered:?}");
            }
            _ => unreachable!(),
        }
        b.finish()?;
    }
    Ok(())
}

#[test]
fn redundant_keeps_a_sequenced_stream_whole_through_random_loss() -> Result<()> {
    if skip_unless_root(&["ip", "ping", "ethtool"]) {
        return Ok(());
    }
    // 5 % random loss on each link and direction, drawn independently.
    let b = bed("redundant", 0.05)?;
    let count = 3000u64;
    let rx = b.sites.host_b.ns.spawn_in(|| {
        SeqReceiver::bind(7000)?.collect(Duration::from_secs(2), Duration::from_secs(20))
    })?;
    std::thread::sleep(Duration::from_millis(200));
    let dst = SocketAddr::from((b.sites.host_b.addr, 7000));
    b.sites
        .host_a
        .ns
        .run_in(move || send_seq(dst, count, Duration::from_millis(1), 200))?;
    let got = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let mut unique = got.clone();
    unique.sort_unstable();
    unique.dedup();
    let lost = count - unique.len() as u64;
    let emu = b.emu.as_ref().context("emulator")?.control()?.show()?;
    let dropped: Vec<u64> = emu
        .links
        .iter()
        .map(|l| l.a_to_b.stats.dropped(testbed::wanem::DropReason::Loss))
        .collect();
    eprintln!("redundant through 5 % loss per link: {lost} of {count} lost; the links dropped {dropped:?}");
    eprintln!("  site B reorder: {}", b.show(Site::B, "tunnel")["reorder"]);
    let out_of_order = got.windows(2).filter(|w| w[0] > w[1]).count();
    eprintln!("  out of order: {out_of_order}");
    assert_eq!(unique.len(), got.len(), "no datagram delivered twice");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "delivered in order");
    assert!(
        dropped.iter().all(|d| *d > count / 40),
        "each link lost its share: {dropped:?}"
    );
    // A datagram is lost only when both copies are (0.05² = 0.25 %, 7.5 expected): far below
    // what either link alone loses (5 %, 150).
    assert!(lost <= 25, "{lost} lost of {count}");
    b.finish()?;
    Ok(())
}

#[test]
fn source_subnet_gives_mptcp_hosts_one_subflow_per_link() -> Result<()> {
    if skip_unless_root(&["ip", "iperf3", "mptcpize", "ethtool"]) {
        return Ok(());
    }
    let b = bed("source-subnet", 0.0)?;
    let before = tx_packets(&b.paths(Site::A));
    let mbps = b.tcp(4)?;
    let after = tx_packets(&b.paths(Site::A));
    let sent: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let mptcp = testbed::scenario::systems::linux_mptcp::counters(&b.sites.host_a.ns)?;
    eprintln!(
        "source-subnet with MPTCP hosts: {mbps:.1} Mbit/s, packets per path {sent:?}, {mptcp}"
    );
    assert!(
        mptcp["MPJoinSynTx"].as_u64().unwrap_or(0) >= 1,
        "a second subflow joined: {mptcp}"
    );
    // Subflow i's source subnet is bound to path i: both links carry data.
    assert!(
        sent.iter().all(|s| *s > 500),
        "every path carries its subflow: {sent:?}"
    );
    assert!(mbps > 20.0, "the subflows add up: {mbps:.1} Mbit/s");
    b.finish()?;
    Ok(())
}

#[test]
fn a_multicast_stream_crosses_the_tunnel_redundantly_and_survives_a_path_failure() -> Result<()> {
    if skip_unless_root(&["ip", "ethtool"]) {
        return Ok(());
    }
    // Streams go on both paths (redundant); the rest of the traffic is wlb.
    let mut spec = TunnelSpec::new("wlb", &RATES);
    spec.extra = "[[tunnel.classes]]\nname = \"streams\"\nscheduler = \"redundant\"\nmatch = { dst = \"239.0.0.0/8\" }\n".into();
    let b = bed_with(spec, 0.0)?;
    // Site A republishes 239.1.1.1:5000 into the tunnel as 239.2.2.2:6000; site B
    // republishes that on its LAN as 239.3.3.3:7000.
    let add = |site: Site, rule: &str| -> Result<()> {
        let reply = appliance_tunnel::request(
            b.pair().socket(site),
            &format!(r#"{{"cmd":"mcast_add","rule":{rule}}}"#),
        )?;
        anyhow::ensure!(reply["ok"] == true, "mcast_add: {reply}");
        Ok(())
    };
    add(
        Site::A,
        r#"{"input":{"interface":"lan","group":"239.1.1.1","port":5000},"outputs":[{"interface":"tunnel","destination":"239.2.2.2","port":6000,"ttl":16}]}"#,
    )?;
    add(
        Site::B,
        r#"{"input":{"interface":"tunnel","group":"239.2.2.2","port":6000},"outputs":[{"interface":"lan","destination":"239.3.3.3","port":7000,"ttl":16}]}"#,
    )?;
    // Back into the tunnel from the tunnel: refused.
    let looped = appliance_tunnel::request(
        b.pair().socket(Site::B),
        r#"{"cmd":"mcast_add","rule":{"input":{"interface":"tunnel","group":"239.4.4.4","port":6000},"outputs":[{"interface":"tunnel","destination":"239.5.5.5","port":6000}]}}"#,
    )?;
    assert_eq!(looped["ok"], false, "{looped}");
    let host_b = &b.sites.host_b;
    let sink = host_b.ns.spawn(&[
        workspace_bin("mcast-sink").to_str().context("path")?,
        "--group",
        "239.3.3.3:7000",
        "--iface-addr",
        &host_b.addr.to_string(),
        "--duration",
        "20s",
    ])?;
    std::thread::sleep(Duration::from_millis(500));
    // Path a goes dark (both ways, carrier up) in the middle of the stream.
    let ctl = b.emu.as_ref().context("emulator")?.control_path.clone();
    let blackhole = std::thread::spawn(move || -> Result<()> {
        std::thread::sleep(Duration::from_millis(1500));
        testbed::wanem::Control::connect(&ctl)?.cmd("link a state blackhole both")?;
        Ok(())
    });
    let host_a = &b.sites.host_a;
    let out = host_a
        .ns
        .spawn(&[
            workspace_bin("mcast-gen").to_str().context("path")?,
            "--dest",
            "239.1.1.1:5000",
            "--pps",
            "1000",
            "--size",
            "200",
            "--duration",
            "3s",
            "--ttl",
            "8",
            "--source",
            &host_a.addr.to_string(),
        ])?
        .wait_timeout(Duration::from_secs(15))?;
    anyhow::ensure!(out.status.success(), "mcast-gen: {}", out.stderr);
    blackhole
        .join()
        .map_err(|_| anyhow::anyhow!("blackhole thread"))??;
    let sent: Value = serde_json::from_str(out.stdout.trim())?;
    std::thread::sleep(Duration::from_millis(500));
    let report: Value = serde_json::from_str(sink.stop()?.stdout.trim())?;
    let stream = &report["streams"][0];
    eprintln!("sent {}, received {stream}", sent["streams"][0]["sent"]);
    assert_eq!(
        stream["unique"], sent["streams"][0]["sent"],
        "every datagram arrived: {stream}"
    );
    assert_eq!(stream["duplicates"], 0, "{stream}");
    assert_eq!(stream["reordered"], 0, "{stream}");
    let paths = b.paths(Site::A);
    // The data plane's liveness notices first; BFD's detection time (300 ms)
    // runs out a little later and then names the state, so either reason is right.
    let state = paths[0]["state"].as_str().unwrap_or_default();
    assert!(
        matches!(state, "no_replies" | "bfd_down") && paths[0]["usable"] == false,
        "path a was found dead: {}",
        paths[0]
    );
    b.finish()?;
    Ok(())
}
