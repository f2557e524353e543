//! Site B behind a NAT (nftables masquerade in its own namespace, as a branch on DSL or LTE):
//! site A's paths name no remote and learn where B's authenticated packets come from. While
//! a sequenced stream (A to B) and TCP (A to B) cross the tunnel, the NAT's public address on
//! link a changes, as when an ISP renumbers a line: site A follows within a probe interval or
//! two, the TCP transfer carries on, and the stream loses only what was sent towards the old
//! address before B's next packet showed the new one.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use testbed::netns::skip_unless_root;
use testbed::scenario::probe_stream;
use testbed::scenario::systems::appliance_tunnel::{Site, TunnelSpec};
use testbed::tunnel_bed::{bed_with, RATES};

/// The probe stream's interval.
const EVERY: Duration = Duration::from_millis(5);

#[test]
fn a_site_behind_nat_is_followed_when_its_address_changes() -> Result<()> {
    if skip_unless_root(&["ip", "ethtool", "iperf3", "nft"]) {
        return Ok(());
    }
    let mut spec = TunnelSpec::new("wlb", &RATES);
    spec.nat = true;
    let bed = bed_with(spec, 0.0)?;
    // Site A learned both of B's public endpoints (the NAT's outside addresses).
    for (name, i) in [("a", 0), ("b", 1)] {
        let p = bed.path(Site::A, name);
        let want = format!("learned 172.16.{i}.2:");
        ensure!(
            p["remote"].as_str().is_some_and(|r| r.starts_with(&want)) && p["state"] == "up",
            "path {name} at site A: {p}"
        );
    }

    let t0 = Instant::now();
    let stream = probe_stream::start(&bed.sites, EVERY, Duration::from_secs(10), t0)?;
    let (from, to) = (Ipv4Addr::new(172, 16, 0, 2), Ipv4Addr::new(172, 16, 0, 3));
    let mbps = std::thread::scope(|scope| -> Result<f64> {
        let tcp = scope.spawn(|| bed.tcp(8));
        std::thread::sleep(Duration::from_secs(3));
        bed.sites.renumber_nat(0, from, to)?;
        let moved = Instant::now();
        let want = format!("learned {to}:");
        loop {
            let p = bed.path(Site::A, "a");
            if p["remote"].as_str().is_some_and(|r| r.starts_with(&want)) && p["usable"] == true {
                eprintln!(
                    "site A follows the NAT to {to} within {:?}",
                    moved.elapsed()
                );
                break;
            }
            ensure!(
                moved.elapsed() < Duration::from_secs(3),
                "site A did not follow the NAT to {to}: {p}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        tcp.join().map_err(|_| anyhow::anyhow!("iperf3 panicked"))?
    })?;
    eprintln!("TCP across the renumbering: {mbps:.1} Mbit/s");
    ensure!(
        mbps > 5.0,
        "TCP got only {mbps:.1} Mbit/s across the renumbering"
    );

    let s = stream.finish()?;
    let seqs: Vec<u64> = s.arrivals.iter().map(|(seq, _)| *seq).collect();
    let reordered = seqs.windows(2).filter(|w| w[1] < w[0]).count();
    let lost = s.sent.saturating_sub(s.received);
    eprintln!(
        "stream: {} sent, {} received, {lost} lost, {reordered} out of order",
        s.sent, s.received
    );
    // What left towards the old address before B's next packet (a probe every 10 ms on each
    // path) showed the new one, and the new next hop's ARP: 100 ms of the stream at most.
    let in_flight = (Duration::from_millis(100).as_nanos() / EVERY.as_nanos()) as u64;
    ensure!(
        lost <= in_flight,
        "{lost} probes lost across the renumbering (at most {in_flight} were in flight)"
    );
    ensure!(reordered == 0, "{reordered} probes arrived out of order");
    let p = bed.path(Site::A, "a");
    ensure!(p["state"] == "up", "path a after the move: {p}");
    ensure!(
        p["endpoint_moves"].as_u64() >= Some(1),
        "the move is counted: {p}"
    );
    bed.finish()?;
    Ok(())
}
