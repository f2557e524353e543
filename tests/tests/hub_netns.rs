//! A hub and three spokes, one appliance each on `net_af_packet`, every spoke's tunnel to the
//! hub over two shared WAN segments (`[[tunnel.peers]]`, [`testbed::hub_bed`]), with plain
//! Linux hosts behind them: every host reaches every other, spoke to spoke through the hub;
//! TCP runs between two spokes; a spoke's host sending from outside its site's prefixes is
//! dropped at the hub and counted against that spoke; every peer keeps both paths; nothing
//! is leaked.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde_json::Value;
use testbed::hub_bed::{bed, site_name, HubBed};
use testbed::netns::skip_unless_root;

const SPOKES: usize = 3;
const LINKS: usize = 2;
/// Echo requests per ordered pair of hosts.
const PINGS: usize = 3;
/// The drop reason of a decapsulated packet whose inner source is outside the prefixes of
/// the peer that sent it.
const INNER_SOURCE: &str = "tunnel_inner_source";
/// The source spoke 3's host forges: in no site's prefixes.
const FORGED_SOURCE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// Echo requests sent from it.
const FORGED_PINGS: u64 = 5;

/// The TTL of an echo reply that crossed `appliances` appliances: Linux answers with 64 and
/// each appliance routes it once (the two-site tests see ttl=62 through two). Spoke to
/// spoke is three: the source spoke's, the hub's, the destination spoke's.
fn reply_ttl(appliances: u8) -> u8 {
    64 - appliances
}

/// Polls `read` until it reaches `at_least` or `limit` passes (counters reach the control
/// socket a little after the packets); returns the last value read.
fn counter_reaches(limit: Duration, at_least: u64, read: impl Fn() -> Result<u64>) -> Result<u64> {
    let deadline = Instant::now() + limit;
    loop {
        let n = read()?;
        if n >= at_least || Instant::now() > deadline {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every host pings every other: all answered, each reply with the TTL of its route.
fn every_host_reaches_every_other(bed: &HubBed) -> Result<()> {
    let hosts = &bed.sites.hosts;
    for (from, src) in hosts.iter().enumerate() {
        for (to, dst) in hosts.iter().enumerate() {
            if from == to {
                continue;
            }
            let appliances = if from != 0 && to != 0 { 3 } else { 2 };
            let ttl = format!("ttl={} ", reply_ttl(appliances));
            let out = src.ns.ping_output(&[
                "-c",
                &PINGS.to_string(),
                "-i",
                "0.2",
                "-W",
                "2",
                &dst.addr.to_string(),
            ])?;
            let replies: Vec<&str> = out.lines().filter(|l| l.contains(" ttl=")).collect();
            ensure!(
                out.contains(" 0% packet loss")
                    && replies.len() == PINGS
                    && replies.iter().all(|l| l.contains(&ttl)),
                "{} to {}: {PINGS} replies, each {}through {appliances} appliances: {out}",
                site_name(from),
                site_name(to),
                ttl
            );
        }
    }
    let n = hosts.len();
    eprintln!(
        "{} ordered pairs of hosts ping one another: spoke to spoke ttl={}, through the hub",
        n * (n - 1),
        reply_ttl(3)
    );
    Ok(())
}

#[test]
fn a_hub_joins_its_spokes_and_holds_each_to_its_own_prefixes() -> Result<()> {
    if skip_unless_root(&["ip", "ping", "iperf3", "ss"]) {
        return Ok(());
    }
    let bed = bed(SPOKES, LINKS)?;
    bed.wait_sessions(Duration::from_secs(20))?;

    every_host_reaches_every_other(&bed)?;

    let mbps = bed.tcp(1, 2, 5)?;
    eprintln!("TCP spoke 1 to spoke 2 through the hub: {mbps:.1} Mbit/s");
    ensure!(
        mbps > 1.0,
        "TCP from spoke 1 to spoke 2 ran at {mbps:.1} Mbit/s"
    );
    // Nothing so far came from outside its sender's prefixes.
    for k in 0..=SPOKES {
        let n = bed.dropped(k, INNER_SOURCE)?;
        ensure!(
            n == 0,
            "{}: {n} {INNER_SOURCE} drops of legitimate traffic",
            site_name(k)
        );
    }

    // Spoke 3's host sends to the hub's host from a source outside spoke 3's prefixes. Its
    // ARP keeps naming its own address (arp_announce 2): the appliance is not asked about
    // the forged one.
    let spoke3 = &bed.sites.hosts[3];
    spoke3.ns.sysctl("net.ipv4.conf.all.arp_announce", "2")?;
    spoke3.ns.addr_add(&spoke3.iface, FORGED_SOURCE, 32)?;
    let hub_host = bed.sites.hosts[0].addr.to_string();
    let out = spoke3.ns.ping_output(&[
        "-c",
        &FORGED_PINGS.to_string(),
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        &FORGED_SOURCE.to_string(),
        &hub_host,
    ])?;
    ensure!(
        out.contains(" 0 received"),
        "no reply to a forged source: {out}"
    );
    let limit = Duration::from_secs(2);
    let spoke3_drops = counter_reaches(limit, FORGED_PINGS, || {
        Ok(bed.peer(0, "spoke3")?["inner_source_drops"]
            .as_u64()
            .unwrap_or(0))
    })?;
    let hub_drops = counter_reaches(limit, FORGED_PINGS, || bed.dropped(0, INNER_SOURCE))?;
    eprintln!(
        "forged source {FORGED_SOURCE} from spoke 3: {spoke3_drops} inner-source drops against \
         spoke3 at the hub, {INNER_SOURCE} {hub_drops}"
    );
    ensure!(
        spoke3_drops >= FORGED_PINGS,
        "the hub's peer spoke3: {}",
        bed.peer(0, "spoke3")?
    );
    ensure!(
        hub_drops >= FORGED_PINGS,
        "the hub's {INNER_SOURCE} drops: {hub_drops}"
    );
    for k in 1..SPOKES {
        let other = bed.peer(0, &site_name(k))?;
        ensure!(
            other["inner_source_drops"].as_u64() == Some(0),
            "only spoke3 is charged: {other}"
        );
    }

    // Every peer keeps both paths.
    bed.wait_peers(Duration::from_secs(5), "every path usable", |p| {
        p["paths"].as_u64() == Some(LINKS as u64) && p["paths_usable"] == p["paths"]
    })?;
    let peers = bed.peers(0)?;
    for p in &peers {
        eprintln!(
            "  hub peer {}: session {}, paths {}/{}, tx {} rx {} packets, inner-source drops {}, \
             last seen {} ms ago",
            p["name"],
            p["session"],
            p["paths_usable"],
            p["paths"],
            p["tx_packets"],
            p["rx_packets"],
            p["inner_source_drops"],
            p["last_seen_ms"]
        );
    }
    ensure!(
        peers.len() == SPOKES
            && peers
                .iter()
                .all(|p| p["paths_usable"].as_u64() == Some(LINKS as u64)),
        "the hub lists {SPOKES} peers with {LINKS} usable paths each: {}",
        Value::Array(peers)
    );
    // One path per link to each spoke, each naming its peer.
    let paths = bed.show(0, "paths")?;
    for k in 1..=SPOKES {
        let name = site_name(k);
        let to_it = paths.as_array().map_or(0, |a| {
            a.iter().filter(|p| p["peer"] == name.as_str()).count()
        });
        ensure!(
            to_it == LINKS,
            "the hub's show paths has {to_it} paths to {name}: {paths}"
        );
    }

    let finals = bed.stop()?;
    for (k, f) in finals.iter().enumerate() {
        let drops = &f["drops"][INNER_SOURCE];
        eprintln!("  {} at exit: {INNER_SOURCE} {drops}", site_name(k));
        if k > 0 {
            ensure!(
                drops.as_u64() == Some(0),
                "{}: {INNER_SOURCE} {drops}",
                site_name(k)
            );
        }
    }
    Ok(())
}
