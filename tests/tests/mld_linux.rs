//! Linux is the reference MLD listener: a Linux router and the appliance, each given the
//! same MAC and IPv6 address on a link, must join the same link-scope groups (all routers,
//! the solicited-node groups of their addresses, the Subnet-Router anycast one included)
//! when their IPv6 comes up, each report well formed as tshark reads it (hop
//! limit 1, Router Alert, to ff02::16, checksum good); and the appliance answers a general
//! query within its maximum response delay and leaves its groups when it stops.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use nix::sys::signal::Signal;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use testbed::bins::workspace_root;
use testbed::control::start_appliance;
use testbed::netns::{skip_unless_root, veth, Netns, RunId};
use testbed::wanem::port::Port;

const MAC: &str = "02:5a:00:00:00:01";
const ADDRESS: &str = "fd00:10:1::1/64";

/// Collects every frame arriving on `dev` in `ns` for `secs` (while `during` runs).
fn capture(ns: &Netns, dev: &str, secs: f64, during: impl FnOnce()) -> Result<Vec<Vec<u8>>> {
    let dev = dev.to_string();
    let handle = ns.spawn_in(move || {
        let port = Port::open(&dev)?;
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65536];
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            match port.recv(&mut buf)? {
                Some((n, _)) => frames.push(buf[..n].to_vec()),
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        Ok(frames)
    })?;
    std::thread::sleep(Duration::from_millis(200));
    during();
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("capture thread"))?
}

/// One MLDv2 report as tshark decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    hop_limit: String,
    dst: String,
    router_alert: String,
    checksum: String,
    /// (record type, group) per record.
    records: Vec<(String, String)>,
}

fn mld_reports(frames: &[Vec<u8>], dir: &Path, name: &str) -> Result<Vec<Report>> {
    let path = dir.join(format!("{name}.pcap"));
    let mut w = PcapWriter::new(File::create(&path)?)?;
    for f in frames {
        w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, f))?;
    }
    drop(w);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-Y",
            "icmpv6.type == 143",
            "-T",
            "fields",
            "-E",
            "separator=/t",
        ])
        .args(["-E", "occurrence=a", "-E", "aggregator=,"])
        .args([
            "-e",
            "ipv6.hlim",
            "-e",
            "ipv6.dst",
            "-e",
            "ipv6.opt.router_alert",
        ])
        .args(["-e", "icmpv6.checksum.status"])
        .args([
            "-e",
            "icmpv6.mldr.mar.record_type",
            "-e",
            "icmpv6.mldr.mar.multicast_address",
        ])
        .output()
        .context("tshark")?;
    ensure!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let col = |i: usize| c.get(i).copied().unwrap_or_default().to_string();
            let kinds = col(4);
            let groups = col(5);
            Report {
                hop_limit: col(0),
                dst: col(1),
                router_alert: col(2),
                checksum: col(3),
                records: kinds
                    .split(',')
                    .zip(groups.split(','))
                    .map(|(k, g)| (k.to_string(), g.to_string()))
                    .collect(),
            }
        })
        .collect())
}

/// The link-scope groups `reports` join (CHANGE_TO_EXCLUDE records; Linux also leaves
/// the group of the link-local address it had before its MAC was set).
fn link_scope_joins(reports: &[Report]) -> BTreeSet<String> {
    reports
        .iter()
        .flat_map(|r| r.records.iter().cloned())
        .filter(|(k, g)| k == "4" && g.starts_with("ff02:"))
        .map(|(_, g)| g)
        .collect()
}

/// An MLDv2 general query from `src_mac`/fe80::99, max response 1 s.
fn general_query(src_mac: [u8; 6]) -> Vec<u8> {
    let src: std::net::Ipv6Addr = "fe80::99".parse().unwrap();
    let dst: std::net::Ipv6Addr = "ff02::1".parse().unwrap();
    let mut icmp = vec![130, 0, 0, 0, 0x03, 0xe8, 0, 0];
    icmp.extend_from_slice(&[0; 16]);
    icmp.extend_from_slice(&[2, 125, 0, 0]);
    appliance::wire::icmpv6::Icmpv6Packet::new_unchecked(&mut icmp[..]).fill_checksum(&src, &dst);
    let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd]);
    let payload = 8 + icmp.len() as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&appliance::wire::mld::HOP_BY_HOP_ROUTER_ALERT);
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn appliance_mld_reports_match_linux() -> Result<()> {
    if skip_unless_root(&["ip", "tshark"]) {
        return Ok(());
    }
    let run = RunId::new();
    let dir = std::env::temp_dir().join(format!("appliance-{}", run.base()));
    std::fs::create_dir_all(&dir)?;

    // Linux as a router: forwarding on, the address on a link whose MAC is MAC.
    let linux = Netns::create(&run.ns_name("lnx"))?;
    let cap_l = Netns::create(&run.ns_name("capl"))?;
    veth(&linux, "eth0", &cap_l, "eth0", 1500)?;
    linux.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    linux.ip(&["link", "set", "dev", "eth0", "down"])?;
    linux.ip(&["link", "set", "dev", "eth0", "address", MAC])?;
    linux.ip(&["-6", "addr", "add", ADDRESS, "dev", "eth0"])?;
    let from_linux = capture(&cap_l, "eth0", 4.0, || {
        let _ = linux.ip(&["link", "set", "dev", "eth0", "up"]);
    })?;

    // The appliance, its lan port on a veth with the same MAC.
    let app = Netns::create(&run.ns_name("app"))?;
    let cap_a = Netns::create(&run.ns_name("capa"))?;
    app.disable_ipv6()?;
    veth(&cap_a, "eth0", &app, "apl-lan", 1500)?;
    veth(&cap_a, "eth1", &app, "apl-wan", 1500)?;
    app.ip(&["link", "set", "dev", "apl-lan", "address", MAC])?;
    let socket = dir.join("ctl.sock");
    let profile = std::fs::read_to_string(workspace_root().join("hw-profiles/vm-af-packet.toml"))?;
    std::fs::write(dir.join("profile.toml"), profile)?;
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[[interfaces]]\nport = \"lan\"\naddress = \"10.10.1.1/24\"\naddress6 = \"{ADDRESS}\"\n\
             [[interfaces]]\nport = \"wan\"\naddress = \"10.10.2.1/24\"\n\
             [control]\nsocket = {:?}\nmetrics = \"\"\n",
            socket.display().to_string()
        ),
    )?;
    let mut appliance = None;
    let from_appliance = capture(&cap_a, "eth0", 6.0, || {
        appliance = Some(start_appliance(&app, &dir, &socket));
    })?;
    let appliance = appliance.context("started")?;
    // A general query: answered within its 1 s.
    let querier_mac = [2, 0x5a, 0, 0, 0, 0x99];
    let answers = capture(&cap_a, "eth0", 2.0, || {
        let q = cap_a
            .run_in(move || {
                let p = Port::open("eth0")?;
                p.send(&general_query(querier_mac))?;
                Ok(())
            })
            .map(drop);
        assert!(q.is_ok(), "query sent: {q:?}");
    })?;
    let leaves = capture(&cap_a, "eth0", 3.0, || {
        let _ = appliance.signal(Signal::SIGINT);
    })?;
    let out = appliance.wait_timeout(Duration::from_secs(20))?;
    ensure!(out.status.success(), "clean exit: {}", out.stderr);

    let linux_reports = mld_reports(&from_linux, &dir, "linux")?;
    let ours = mld_reports(&from_appliance, &dir, "appliance")?;
    eprintln!("Linux: {linux_reports:#?}\nappliance: {ours:#?}");
    ensure!(!ours.is_empty(), "the appliance reported its groups");
    for r in linux_reports.iter().chain(&ours) {
        ensure!(
            r.hop_limit == "1"
                && r.dst == "ff02::16"
                && !r.router_alert.is_empty()
                && r.checksum == "1",
            "well formed (hop limit 1, to ff02::16, Router Alert, checksum good): {r:?}"
        );
    }
    let (linux_groups, our_groups) = (link_scope_joins(&linux_reports), link_scope_joins(&ours));
    ensure!(
        linux_groups == our_groups,
        "the same link-scope joins: Linux {linux_groups:?}, appliance {our_groups:?}"
    );
    let answered = mld_reports(&answers, &dir, "answers")?;
    ensure!(
        answered
            .iter()
            .any(|r| r.records.iter().all(|(k, _)| k == "2")),
        "a current-state report (MODE_IS_EXCLUDE) answered the query: {answered:?}"
    );
    let left = mld_reports(&leaves, &dir, "leaves")?;
    ensure!(
        left.iter().any(|r| r.records.iter().all(|(k, _)| k == "3")),
        "groups left at shutdown (CHANGE_TO_INCLUDE): {left:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
