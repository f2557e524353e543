//! The paths' shapers in the sites topology (two appliances over two emulated WAN links,
//! 30 Mbit/s 10 ms and 8 Mbit/s 30 ms one way, 50 ms tail-drop queues; `wlb` for bulk):
//! four bulk TCP streams fill the tunnel while sequenced UDP probes run in a real-time
//! class. The probes keep their path's delay; link A blackholed ten times in a row under that
//! load never takes BFD on link B down and never leaves the tunnel without a path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use testbed::netns::skip_unless_root;
use testbed::probe::{send_seq_from, SeqReceiver};
use testbed::scenario::systems::appliance_tunnel::{Site, TunnelSpec};
use testbed::tunnel_bed::{bed_with, Bed, RATES};

/// Link A's one-way delay (the emulator's).
const PATH_A_DELAY: Duration = Duration::from_millis(10);
/// Probes: one every 5 ms (200/s), 200 bytes.
const PROBE_EVERY: Duration = Duration::from_millis(5);

/// `wlb` for everything, BFD at 100 ms × 3, and two real-time classes: UDP to port 7000
/// (`wlb`) and to port 7001 (`redundant`).
fn spec() -> TunnelSpec {
    let mut spec = TunnelSpec::new("wlb", &RATES);
    spec.extra = "max_hold_down = \"4s\"\n\
        bfd = { desired_min_tx = \"100ms\", required_min_rx = \"100ms\", detect_mult = 3 }\n\
        [[tunnel.classes]]\nname = \"probe\"\nscheduler = \"wlb\"\ntier = \"realtime\"\n\
        match = { protocol = \"udp\", dst_ports = \"7000\" }\n\
        [[tunnel.classes]]\nname = \"voice\"\nscheduler = \"redundant\"\ntier = \"realtime\"\n\
        match = { protocol = \"udp\", dst_ports = \"7001\" }\n"
        .into();
    spec
}

/// What one probe stream showed.
#[derive(Debug)]
struct Probe {
    sent: u64,
    /// Distinct sequence numbers received.
    received: u64,
    /// The longest run of missing sequence numbers, in probe intervals.
    longest_gap: u64,
    /// One-way delays (send schedule to arrival), sorted.
    delays: Vec<Duration>,
    in_order: bool,
}

impl Probe {
    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.delays.len() as f64 * p).ceil() as usize).clamp(1, self.delays.len().max(1));
        self.delays.get(i - 1).copied().unwrap_or(Duration::MAX)
    }
}

/// Sends `count` probes from host A to host B port `port` and collects them with their
/// arrival times (sender and receiver share this process's clock).
fn probe(b: &Bed, port: u16, count: u64) -> Result<std::thread::JoinHandle<Result<Probe>>> {
    let rx = b.sites.host_b.ns.spawn_in(move || {
        SeqReceiver::bind(port)?.collect_timed(Duration::from_secs(2), Duration::from_secs(120))
    })?;
    std::thread::sleep(Duration::from_millis(100));
    let dst = SocketAddr::from((b.sites.host_b.addr, port));
    let start = Instant::now() + Duration::from_millis(50);
    let tx = b
        .sites
        .host_a
        .ns
        .spawn_in(move || send_seq_from(dst, count, PROBE_EVERY, 200, start))?;
    Ok(std::thread::spawn(move || {
        tx.join()
            .map_err(|_| anyhow::anyhow!("probe sender panicked"))??;
        let got = rx
            .join()
            .map_err(|_| anyhow::anyhow!("probe receiver panicked"))??;
        let mut seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        let in_order = seqs.windows(2).all(|w| w[0] < w[1]);
        let mut delays: Vec<Duration> = got
            .iter()
            .map(|(s, at)| at.saturating_duration_since(start + PROBE_EVERY * (*s as u32)))
            .collect();
        delays.sort_unstable();
        seqs.sort_unstable();
        seqs.dedup();
        let (mut longest_gap, mut expect) = (0, 0);
        for s in &seqs {
            longest_gap = longest_gap.max(s - expect);
            expect = s + 1;
        }
        longest_gap = longest_gap.max(count.saturating_sub(expect));
        Ok(Probe {
            sent: count,
            received: seqs.len() as u64,
            longest_gap,
            delays,
            in_order,
        })
    }))
}

fn shaper_drops(path: &Value) -> u64 {
    path["shaper"]["tiers"].as_array().map_or(0, |tiers| {
        tiers
            .iter()
            .map(|t| {
                t["aqm_drops"].as_u64().unwrap_or(0) + t["overlimit_drops"].as_u64().unwrap_or(0)
            })
            .sum()
    })
}

fn no_path_drops(b: &Bed, site: Site) -> u64 {
    b.show(site, "tunnel")["drops"]["tunnel_no_path"]
        .as_u64()
        .unwrap_or(0)
}

fn bfd_flaps(b: &Bed, site: Site, path: &str) -> u64 {
    b.path(site, path)["bfd"]["flaps"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[test]
fn a_realtime_probe_keeps_its_path_delay_while_bulk_tcp_fills_the_tunnel() -> Result<()> {
    if skip_unless_root(&["ip", "iperf3", "ethtool"]) {
        return Ok(());
    }
    let b = bed_with(spec(), 0.0)?;
    b.wait_bfd_up(Duration::from_secs(10))?;
    let (mbps, probe) = std::thread::scope(|s| -> Result<(f64, Probe)> {
        let tcp = s.spawn(|| b.tcp_streams(10, 4));
        // The queues fill first.
        std::thread::sleep(Duration::from_secs(3));
        let probe = probe(&b, 7000, 1000)?
            .join()
            .map_err(|_| anyhow::anyhow!("probe thread"))??;
        let mbps = tcp.join().map_err(|_| anyhow::anyhow!("iperf3 thread"))??;
        Ok((mbps, probe))
    })?;
    let paths = b.paths(Site::A);
    let p50 = probe.percentile(0.5);
    let p99 = probe.percentile(0.99);
    eprintln!(
        "bulk {mbps:.1} Mbit/s; probe {}/{} received, one-way p50 {p50:?} p99 {p99:?} max {:?}",
        probe.received,
        probe.sent,
        probe.delays.last()
    );
    for p in &paths {
        eprintln!(
            "  path {}: tx {} shaper {}",
            p["name"], p["tx_packets"], p["shaper"]
        );
    }
    // The bulk really filled the tunnel: its shapers had to drop.
    assert!(mbps > 20.0, "bulk TCP ran at {mbps:.1} Mbit/s");
    assert!(
        paths.iter().map(shaper_drops).sum::<u64>() > 0,
        "the shapers never dropped: the tunnel was not full"
    );
    assert_eq!(
        probe.received, probe.sent,
        "the probe lost datagrams with no fault"
    );
    assert!(probe.in_order, "the probe arrived out of order");
    assert!(
        p99 <= PATH_A_DELAY + Duration::from_millis(5),
        "probe one-way p99 {p99:?} (p50 {p50:?}): more than path a's {PATH_A_DELAY:?} + 5 ms"
    );
    b.finish()?;
    Ok(())
}

#[test]
fn link_a_failing_ten_times_under_bulk_load_never_leaves_the_tunnel_without_a_path() -> Result<()> {
    if skip_unless_root(&["ip", "iperf3", "ethtool"]) {
        return Ok(());
    }
    const FAULTS: u32 = 10;
    const DOWN: Duration = Duration::from_secs(3);
    const UP: Duration = Duration::from_secs(2);
    let b = bed_with(spec(), 0.0)?;
    b.wait_bfd_up(Duration::from_secs(10))?;
    let flaps_before = (bfd_flaps(&b, Site::A, "b"), bfd_flaps(&b, Site::B, "b"));
    let span = (DOWN + UP) * FAULTS + Duration::from_secs(2);
    let count = (span.as_millis() / PROBE_EVERY.as_millis()) as u64;
    let (mbps, plain, voice) = std::thread::scope(|s| -> Result<(f64, Probe, Probe)> {
        let tcp = s.spawn(|| b.tcp_streams(span.as_secs() + 2, 4));
        std::thread::sleep(Duration::from_secs(1));
        let plain = probe(&b, 7000, count)?;
        let voice = probe(&b, 7001, count)?;
        std::thread::sleep(Duration::from_secs(1));
        for _ in 0..FAULTS {
            b.emulator("link a state blackhole both")?;
            std::thread::sleep(DOWN);
            b.emulator("link a state up")?;
            std::thread::sleep(UP);
        }
        let plain = plain
            .join()
            .map_err(|_| anyhow::anyhow!("probe thread"))??;
        let voice = voice
            .join()
            .map_err(|_| anyhow::anyhow!("probe thread"))??;
        let mbps = tcp.join().map_err(|_| anyhow::anyhow!("iperf3 thread"))??;
        Ok((mbps, plain, voice))
    })?;
    let flaps_after = (bfd_flaps(&b, Site::A, "b"), bfd_flaps(&b, Site::B, "b"));
    let no_path = (no_path_drops(&b, Site::A), no_path_drops(&b, Site::B));
    eprintln!(
        "bulk {mbps:.1} Mbit/s; wlb probe {}/{} longest gap {} ms; redundant probe {}/{} longest gap {} ms; \
         path b BFD flaps A {flaps_before:?} -> {flaps_after:?}; tunnel_no_path {no_path:?}",
        plain.received,
        plain.sent,
        plain.longest_gap * PROBE_EVERY.as_millis() as u64,
        voice.received,
        voice.sent,
        voice.longest_gap * PROBE_EVERY.as_millis() as u64,
    );
    for site in [Site::A, Site::B] {
        for p in b.paths(site) {
            eprintln!(
                "  site {site:?} path {}: flaps {} bfd_overrides {} shaper {}",
                p["name"], p["flaps"], p["bfd_overrides"], p["shaper"]
            );
        }
    }
    // The appliances' logs first (their path state changes), then the verdict.
    b.finish()?;
    assert_eq!(
        flaps_after, flaps_before,
        "BFD on link B went Down (site A, site B)"
    );
    assert_eq!(
        no_path,
        (0, 0),
        "packets dropped as tunnel_no_path (site A, site B)"
    );
    assert!(
        PROBE_EVERY * (plain.longest_gap as u32) < Duration::from_millis(100),
        "the wlb probe's longest gap was {} probes",
        plain.longest_gap
    );
    assert_eq!(
        voice.received, voice.sent,
        "the redundant real-time probe lost datagrams"
    );
    assert!(
        plain.in_order && voice.in_order,
        "a probe arrived out of order"
    );
    Ok(())
}
