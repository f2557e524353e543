//! mcast-gen → mcast-sink: a clean veth carries every datagram exactly once and in order;
//! through the emulator with loss and reordering (and the generator's duplicate hook) the
//! sink detects each impairment, and its loss count matches the emulator's.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use testbed::netns::{veth, Netns, NsProcess, RunId};
use testbed::skip_unless_root;
use testbed::topology::wan_pair;
use testbed::traffic::StreamReport;
use testbed::wanem::{Config, DirParams, Dur, EmulatorProcess, LinkConfig};

const GROUPS: [&str; 3] = ["239.1.1.1:5000", "239.1.1.2:5000", "239.1.1.3:5001"];

fn bin(name: &str) -> &'static Path {
    match name {
        "gen" => Path::new(env!("CARGO_BIN_EXE_mcast-gen")),
        "sink" => Path::new(env!("CARGO_BIN_EXE_mcast-sink")),
        _ => Path::new(env!("CARGO_BIN_EXE_wan-emulator")),
    }
}

/// Starts the sink and waits until the kernel lists every group as joined on `dev`.
fn start_sink(ns: &Netns, dev: &str, iface_addr: Ipv4Addr) -> Result<NsProcess> {
    let sink = ns.spawn(&[
        bin("sink").to_str().context("path")?,
        "--group",
        &GROUPS.join(","),
        "--iface-addr",
        &iface_addr.to_string(),
        "--duration",
        "20s",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let maddr = ns.ip(&["maddr", "show", "dev", dev])?;
        if GROUPS
            .iter()
            .all(|g| maddr.contains(g.split(':').next().unwrap_or_default()))
        {
            return Ok(sink);
        }
        ensure!(Instant::now() < deadline, "sink did not join: {maddr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the generator to completion; returns datagrams sent per stream.
fn run_gen(ns: &Netns, source: Ipv4Addr, extra: &[&str]) -> Result<Vec<u64>> {
    let mut args = vec![
        bin("gen").to_str().context("path")?,
        "--dest",
        GROUPS[0],
        "--dest",
        GROUPS[1],
        "--dest",
        GROUPS[2],
        "--pps",
        "2000",
        "--size",
        "200",
        "--duration",
        "2s",
    ];
    let src = source.to_string();
    args.extend(["--source", &src]);
    args.extend_from_slice(extra);
    let out = ns.spawn(&args)?.wait_timeout(Duration::from_secs(10))?;
    ensure!(out.status.success(), "mcast-gen failed: {}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim())?;
    v["streams"]
        .as_array()
        .context("no streams")?
        .iter()
        .map(|s| s["sent"].as_u64().context("no sent"))
        .collect()
}

/// Stops the sink (SIGTERM makes it print its report) and parses the report.
fn sink_report(sink: NsProcess) -> Result<Vec<StreamReport>> {
    std::thread::sleep(Duration::from_millis(300));
    let out = sink.stop()?;
    let v: Value = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("sink output: {:?} {:?}", out.stdout, out.stderr))?;
    Ok(serde_json::from_value(v["streams"].clone())?)
}

#[test]
fn clean_veth_delivers_every_datagram_once_in_order() -> Result<()> {
    if skip_unless_root(&["ethtool"]) {
        return Ok(());
    }
    let run = RunId::new();
    let a = Netns::create(&run.ns_name("ga"))?;
    let b = Netns::create(&run.ns_name("sb"))?;
    let (a_dev, b_dev) = (run.ifname("ga"), run.ifname("sb"));
    veth(&a, &a_dev, &b, &b_dev, 1500)?;
    let (a_ip, b_ip) = (Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2));
    a.addr_add(&a_dev, a_ip, 24)?;
    b.addr_add(&b_dev, b_ip, 24)?;
    let sink = start_sink(&b, &b_dev, b_ip)?;
    let sent = run_gen(&a, a_ip, &[])?;
    let reports = sink_report(sink)?;
    eprintln!("sent {sent:?}; received {reports:?}");
    ensure!(
        reports.len() == 3,
        "expected 3 streams, got {}",
        reports.len()
    );
    for r in &reports {
        let s = sent[r.stream as usize];
        ensure!(s >= 3900, "stream {} sent only {s}", r.stream);
        ensure!(
            r.received == s,
            "stream {}: sent {s}, received {}",
            r.stream,
            r.received
        );
        ensure!(
            (r.lost, r.duplicates, r.reordered) == (0, 0, 0),
            "stream {}: lost {}, dup {}, reordered {}",
            r.stream,
            r.lost,
            r.duplicates,
            r.reordered
        );
        ensure!(
            r.latency_us.p99 < 10_000.0,
            "latency p99 {} us",
            r.latency_us.p99
        );
    }
    Ok(())
}

#[test]
fn sink_detects_loss_reordering_and_duplicates() -> Result<()> {
    if skip_unless_root(&["ethtool"]) {
        return Ok(());
    }
    let pair = wan_pair(1)?;
    let l = &pair.links[0];
    let impaired = DirParams {
        delay: Dur(Duration::from_millis(5)),
        jitter: Dur(Duration::from_millis(2)),
        reorder: true,
        loss: 0.02,
        ..Default::default()
    };
    let cfg = Config {
        control: None,
        links: vec![LinkConfig {
            name: "l0".into(),
            a_iface: l.emu_a_iface.clone(),
            b_iface: l.emu_b_iface.clone(),
            state: "up".into(),
            a_to_b: Some(impaired),
            ..Default::default()
        }],
        events: vec![],
    };
    let emu = EmulatorProcess::start(&pair.emu, bin("emu"), &cfg, &[])?;
    let sink = start_sink(&pair.host_b, &l.b_iface, l.b_addr)?;
    let sent = run_gen(&pair.host_a, l.a_addr, &["--dup-every", "100"])?;
    let reports = sink_report(sink)?;
    let snap = emu.stop()?;
    let emu_lost = snap.links[0]
        .a_to_b
        .stats
        .dropped(testbed::wanem::DropReason::Loss);
    let total_sent: u64 = sent.iter().sum();
    let received: u64 = reports.iter().map(|r| r.received).sum();
    let dup: u64 = reports.iter().map(|r| r.duplicates).sum();
    let reord: u64 = reports.iter().map(|r| r.reordered).sum();
    let lost: u64 = reports.iter().map(|r| r.lost).sum();
    eprintln!(
        "sent {total_sent}, received {received}: lost {lost} (emulator dropped {emu_lost}), \
         duplicates {dup}, reordered {reord}"
    );
    ensure!(reports.len() == 3, "expected 3 streams");
    ensure!(dup > 0, "injected duplicates not detected");
    ensure!(reord > 0, "reordering not detected");
    ensure!(lost > 0, "loss not detected");
    // Every datagram the emulator dropped is missing at the sink, and nothing else is
    // (the emulator may also have dropped an IGMP or ARP frame).
    ensure!(
        emu_lost >= total_sent - received && emu_lost <= total_sent - received + 3,
        "sink missed {}, emulator dropped {emu_lost}",
        total_sent - received
    );
    for r in &reports {
        ensure!(
            r.received == r.unique + r.duplicates,
            "inconsistent report {r:?}"
        );
    }
    Ok(())
}
