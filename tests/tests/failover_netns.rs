//! Path failure and recovery in the sites topology (two appliances over two emulated WAN
//! links, 30 Mbit/s 10 ms and 8 Mbit/s 30 ms one way, `wlb`): a sequenced UDP stream and a
//! TCP transfer through path a failing as link-down, as a silent blackhole and
//! administratively; BFD up on every path; a link flapping every second held down; an
//! unreachable peer probed once a second per path, and back at full rate when it answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use testbed::netns::skip_unless_root;
use testbed::probe::{send_seq, SeqReceiver};
use testbed::scenario::systems::appliance_tunnel::{Site, TunnelSpec};
use testbed::tunnel_bed::{bed_with, Bed, RATES};

/// How path a fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The emulator downs its veth ends: the appliances lose carrier.
    LinkDown,
    /// The emulator drops everything on the link, carrier up.
    Blackhole,
    /// `appliancectl path down a` on site A (BFD tells site B).
    Admin,
}

impl Fault {
    fn apply(self, b: &Bed) -> Result<()> {
        match self {
            Fault::LinkDown => b.emulator("link a state down").map(drop),
            Fault::Blackhole => b.emulator("link a state blackhole both").map(drop),
            Fault::Admin => b.set_path_admin(Site::A, "a", false),
        }
    }

    fn heal(self, b: &Bed) -> Result<()> {
        match self {
            Fault::LinkDown | Fault::Blackhole => b.emulator("link a state up").map(drop),
            Fault::Admin => b.set_path_admin(Site::A, "a", true),
        }
    }
}

/// BFD at 100 ms × 3 on every path, hold-down capped at 4 s.
fn spec() -> TunnelSpec {
    let mut spec = TunnelSpec::new("wlb", &RATES);
    spec.extra = "max_hold_down = \"4s\"\nbfd = { desired_min_tx = \"100ms\", required_min_rx = \"100ms\", detect_mult = 3 }\n".into();
    spec
}

/// What a sequenced stream lost.
#[derive(Debug)]
struct StreamLoss {
    lost: u64,
    /// The longest run of consecutive missing sequence numbers (1 ms apart: milliseconds).
    longest_gap: u64,
    in_order: bool,
    duplicates: usize,
}

fn stream_loss(got: &[u64], count: u64) -> StreamLoss {
    let mut unique = got.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut longest_gap = 0;
    let mut expect = 0;
    for s in &unique {
        longest_gap = longest_gap.max(s - expect);
        expect = s + 1;
    }
    longest_gap = longest_gap.max(count.saturating_sub(expect));
    StreamLoss {
        lost: count - unique.len() as u64,
        longest_gap,
        in_order: got.windows(2).all(|w| w[0] < w[1]),
        duplicates: got.len() - unique.len(),
    }
}

/// 1000 datagrams/s from host A to host B for `secs`; path a fails at `fail_at` and heals
/// at `heal_at`; returns what the stream lost and site A's and B's view of path a while it
/// was failed.
fn stream_through(
    b: &Bed,
    fault: Fault,
    secs: u64,
    fail_at: Duration,
    heal_at: Duration,
) -> Result<(StreamLoss, Value, Value)> {
    let count = secs * 1000;
    let rx = b.sites.host_b.ns.spawn_in(|| {
        SeqReceiver::bind(7000)?.collect(Duration::from_secs(2), Duration::from_secs(30))
    })?;
    std::thread::sleep(Duration::from_millis(200));
    let dst = SocketAddr::from((b.sites.host_b.addr, 7000));
    let tx = b
        .sites
        .host_a
        .ns
        .spawn_in(move || send_seq(dst, count, Duration::from_millis(1), 200))?;
    let start = Instant::now();
    std::thread::sleep(fail_at);
    fault.apply(b)?;
    std::thread::sleep((heal_at - fail_at) / 2);
    let during = (b.path(Site::A, "a"), b.path(Site::B, "a"));
    std::thread::sleep(heal_at.saturating_sub(start.elapsed()));
    fault.heal(b)?;
    tx.join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let got = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    Ok((stream_loss(&got, count), during.0, during.1))
}

fn failover(fault: Fault) -> Result<()> {
    let b = bed_with(spec(), 0.0)?;
    b.wait_bfd_up(Duration::from_secs(10))?;

    // A sequenced stream: the fault at 2 s, healed at 4 s.
    let (loss, a_during, b_during) =
        stream_through(&b, fault, 6, Duration::from_secs(2), Duration::from_secs(4))?;
    eprintln!("{fault:?}: stream {loss:?}");
    eprintln!("  site A path a during the fault: {}", a_during["state"]);
    eprintln!("  site B path a during the fault: {}", b_during["state"]);
    eprintln!("  site B reorder: {}", b.show(Site::B, "tunnel")["reorder"]);
    assert!(loss.in_order, "{fault:?}: delivered in order");
    assert_eq!(loss.duplicates, 0, "{fault:?}: nothing twice");
    match fault {
        Fault::Admin => {
            assert_eq!(a_during["admin_down"], true, "{a_during}");
            assert_eq!(a_during["usable"], false, "{a_during}");
            // Site B heard BFD's AdminDown and left the path too.
            assert_eq!(b_during["state"], "peer_admin_down", "{b_during}");
            assert_eq!(
                loss.lost, 0,
                "the administrative handoff loses nothing: {loss:?}"
            );
        }
        Fault::LinkDown => {
            assert_eq!(a_during["state"], "no_carrier", "{a_during}");
            assert!(loss.longest_gap <= 150, "outage under 150 ms: {loss:?}");
        }
        Fault::Blackhole => {
            let s = a_during["state"].as_str().unwrap_or("");
            assert!(s == "no_replies" || s == "bfd_down", "{a_during}");
            assert!(loss.longest_gap <= 150, "outage under 150 ms: {loss:?}");
        }
    }

    // A TCP transfer through the same fault: it goes on over path b and takes path a back.
    std::thread::sleep(Duration::from_secs(1));
    let before = b.path(Site::A, "a")["tx_packets"].as_u64().unwrap_or(0);
    let ctl = std::thread::scope(|s| -> Result<f64> {
        let tcp = s.spawn(|| b.tcp(6));
        std::thread::sleep(Duration::from_secs(2));
        fault.apply(&b)?;
        std::thread::sleep(Duration::from_secs(2));
        let failed = b.path(Site::A, "a")["tx_packets"].as_u64().unwrap_or(0);
        fault.heal(&b)?;
        let mbps = tcp.join().map_err(|_| anyhow::anyhow!("iperf3 thread"))??;
        let after = b.path(Site::A, "a")["tx_packets"].as_u64().unwrap_or(0);
        eprintln!(
            "{fault:?}: TCP {mbps:.1} Mbit/s; path a sent {} before the fault, {} after healing",
            failed - before,
            after - failed
        );
        anyhow::ensure!(after > failed + 100, "path a carries again after healing");
        Ok(mbps)
    })?;
    // 2 s on both links (38 Mbit/s), 2 s on b alone (8), 2 s on both: well above b alone.
    assert!(
        ctl > 12.0,
        "{fault:?}: the transfer went on: {ctl:.1} Mbit/s"
    );

    std::thread::sleep(Duration::from_millis(500));
    for site in [Site::A, Site::B] {
        let p = b.path(site, "a");
        assert_eq!(p["usable"], true, "{site:?}: path a back: {p}");
    }
    b.wait_bfd_up(Duration::from_secs(5))?;
    b.finish()?;
    Ok(())
}

#[test]
fn a_link_down_is_left_at_once_and_taken_back() -> Result<()> {
    if skip_unless_root(&["ip", "iperf3", "ethtool"]) {
        return Ok(());
    }
    failover(Fault::LinkDown)
}

#[test]
fn a_silent_blackhole_is_found_by_the_data_plane_and_left() -> Result<()> {
    if skip_unless_root(&["ip", "iperf3", "ethtool"]) {
        return Ok(());
    }
    failover(Fault::Blackhole)
}

#[test]
fn an_administrative_handoff_loses_nothing() -> Result<()> {
    if skip_unless_root(&["ip", "iperf3", "ethtool"]) {
        return Ok(());
    }
    failover(Fault::Admin)
}

#[test]
fn a_link_flapping_every_second_is_held_down() -> Result<()> {
    if skip_unless_root(&["ip", "ethtool"]) {
        return Ok(());
    }
    let b = bed_with(spec(), 0.0)?;
    b.wait_bfd_up(Duration::from_secs(10))?;
    let flaps_before = b.path(Site::A, "a")["flaps"].as_u64().unwrap_or(0);
    // Path a: 1 s dark, 1 s up, five times; site A's view sampled every 20 ms.
    let mut states: Vec<(f64, String)> = Vec::new();
    let start = Instant::now();
    for cycle in 0..10u32 {
        let cmd = if cycle % 2 == 0 {
            "link a state blackhole both"
        } else {
            "link a state up"
        };
        b.emulator(cmd)?;
        let end = start + Duration::from_secs(u64::from(cycle) + 1);
        while Instant::now() < end {
            let s = b.path(Site::A, "a")["state"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            if states.last().is_none_or(|(_, last)| *last != s) {
                states.push((start.elapsed().as_secs_f64(), s));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!("path a at site A: {states:?}");
    let ups = states.iter().filter(|(_, s)| s == "up").count();
    let flaps = b.path(Site::A, "a")["flaps"].as_u64().unwrap_or(0) - flaps_before;
    // Five failures; after the second one the hold-down (1 s, 2 s, 4 s) outlasts each
    // second the link is up, so the path stays out instead of following the link.
    assert!(
        states.iter().any(|(_, s)| s == "hold_down"),
        "held down: {states:?}"
    );
    assert!(ups <= 2, "back in at most once after a failure: {states:?}");
    assert!(flaps <= 2, "{flaps} flaps for five failures: {states:?}");
    // Healed for good: back after at most the longest hold-down (4 s).
    let healed = Instant::now();
    loop {
        let p = b.path(Site::A, "a");
        if p["state"] == "up" {
            eprintln!("back {:.2} s after healing", healed.elapsed().as_secs_f64());
            break;
        }
        anyhow::ensure!(
            healed.elapsed() < Duration::from_secs(6),
            "not back within the 4 s cap: {p}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let bfd = b.path(Site::A, "a")["bfd"].clone();
    eprintln!("BFD of path a: {bfd}");
    b.finish()?;
    Ok(())
}

/// Both links blackholed (carrier up, nothing arrives): after 3 s of silence each path is
/// probed once a second (RFC 5880 §6.8.3's budget for a session that is not up), and once
/// the links heal, the first probe heard brings the probes back to full rate and the paths
/// back up.
#[test]
fn an_unreachable_peer_costs_one_probe_a_second_per_path() -> Result<()> {
    if skip_unless_root(&["ip", "ethtool"]) {
        return Ok(());
    }
    let b = bed_with(spec(), 0.0)?;
    for link in ["a", "b"] {
        b.emulator(&format!("link {link} state blackhole both"))?;
    }
    std::thread::sleep(Duration::from_secs(5));
    let sent = |b: &Bed| -> Vec<u64> {
        b.paths(Site::A)
            .iter()
            .map(|p| p["probes_sent"].as_u64().unwrap_or(0))
            .collect()
    };
    let before = sent(&b);
    let window = Duration::from_secs(4);
    std::thread::sleep(window);
    let after = sent(&b);
    for (i, (x, y)) in before.iter().zip(&after).enumerate() {
        let per_sec = (y - x) as f64 / window.as_secs_f64();
        eprintln!("path {i}: {per_sec:.2} probes/s while the peer is unreachable");
        // One a second, each gap up to a tenth shorter: at most 5 in the 4 s window.
        anyhow::ensure!(y - x <= 5, "path {i}: {} probes in {window:?}", y - x);
        anyhow::ensure!(y > x, "path {i}: no probe at all while unreachable");
    }
    for link in ["a", "b"] {
        b.emulator(&format!("link {link} state up"))?;
    }
    let healed = Instant::now();
    let usable = b.pair().wait_usable(2, Duration::from_secs(5))?;
    eprintln!(
        "both paths back {:.2} s after healing",
        healed.elapsed().as_secs_f64()
    );
    anyhow::ensure!(usable == 2, "{usable} paths back within 5 s");
    let full = sent(&b);
    std::thread::sleep(Duration::from_secs(1));
    let later = sent(&b);
    anyhow::ensure!(
        later[0] - full[0] >= 50,
        "path a back at full rate (10 ms): {} probes in 1 s",
        later[0] - full[0]
    );
    b.finish()?;
    Ok(())
}
