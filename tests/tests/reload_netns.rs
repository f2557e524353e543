//! A reload on a running tunnel (two sites, wlb over both emulated links) while a
//! sequence-stamped stream crosses it: changes of each kind that can be made live (a static
//! route, the paths' BFD timers through a Poll Sequence, a relay rule), one at a time, then a
//! change that cannot (a path's rate) refused with its key, then a file with an error. The
//! stream, which none of them touches, loses nothing and arrives in order.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use testbed::netns::skip_unless_root;
use testbed::scenario::probe_stream;
use testbed::scenario::systems::appliance_tunnel::{self, Site};
use testbed::tunnel_bed::bed;

/// Between reloads: a few probe intervals and BFD packets.
const PAUSE: Duration = Duration::from_millis(700);

#[test]
fn reloads_leave_untouched_traffic_whole_and_in_order() -> Result<()> {
    if skip_unless_root(&["ip", "ethtool"]) {
        return Ok(());
    }
    let bed = bed("wlb", 0.0)?;
    let socket = bed.pair().socket(Site::A).to_path_buf();
    let file = bed.pair().dir().join("site-a.toml");
    let original = std::fs::read_to_string(&file)?;
    let reload = |text: &str| -> Result<serde_json::Value> {
        std::fs::write(&file, text)?;
        appliance_tunnel::request(&socket, r#"{"cmd":"reload"}"#)
    };

    let t0 = Instant::now();
    let stream = probe_stream::start(
        &bed.sites,
        Duration::from_millis(5),
        Duration::from_secs(6),
        t0,
    )?;
    std::thread::sleep(PAUSE);

    // A static route (to a host on site A's LAN).
    let routed = format!("{original}\n[[routes]]\nprefix = \"10.50.0.0/16\"\nvia = \"10.1.0.2\"\n");
    let r = reload(&routed)?;
    ensure!(
        r["data"]["changes"] == serde_json::json!(["route 10.50.0.0/16 via 10.1.0.2 added"]),
        "{r}"
    );
    std::thread::sleep(PAUSE);
    // Both paths' BFD timers (a Poll Sequence on each Up session).
    let timed = routed.replace(
        "[tunnel]\n",
        "[tunnel]\nbfd = { desired_min_tx = \"200ms\", required_min_rx = \"200ms\", detect_mult = 3 }\n",
    );
    let r = reload(&timed)?;
    ensure!(
        r["data"]["changes"].as_array().map(Vec::len) == Some(2),
        "{r}"
    );
    std::thread::sleep(PAUSE);
    // A relay rule.
    let relayed = format!(
        "{timed}\n[[mcast_rules]]\ninput = {{ interface = \"lan\", group = \"239.1.1.1\", port = 5000 }}\n\
         outputs = [{{ interface = \"lan\", destination = \"239.2.2.2\", port = 6000 }}]\n"
    );
    let r = reload(&relayed)?;
    ensure!(
        r["data"]["changes"] == serde_json::json!(["relay rule lan:239.1.1.1:5000 added"]),
        "{r}"
    );
    std::thread::sleep(PAUSE);
    // A path's rate cannot change live: refused, naming the path, nothing applied.
    let rated = relayed.replace("rate = \"30000000\"", "rate = \"20000000\"");
    ensure!(rated != relayed, "test bug: no rate to change in {relayed}");
    let r = reload(&rated)?;
    ensure!(
        r["ok"] == false
            && r["error"]
                .as_str()
                .is_some_and(|e| e.contains("tunnel.paths[0]")),
        "{r}"
    );
    // A file with an error: refused, naming the key.
    let r = reload(&format!("{relayed}\n[slowpath]\nbogus = 1\n"))?;
    ensure!(
        r["ok"] == false && r["error"].as_str().is_some_and(|e| e.contains("bogus")),
        "{r}"
    );

    let s = stream.finish()?;
    let seqs: Vec<u64> = s.arrivals.iter().map(|(seq, _)| *seq).collect();
    let reordered = seqs.windows(2).filter(|w| w[1] < w[0]).count();
    eprintln!(
        "stream: {} sent, {} received, {reordered} out of order",
        s.sent, s.received
    );
    ensure!(
        s.received == s.sent,
        "{} of {} probes arrived",
        s.received,
        s.sent
    );
    ensure!(reordered == 0, "{reordered} probes arrived out of order");
    ensure!(
        seqs.len() as u64 == s.sent,
        "{} arrivals for {} probes (duplicates)",
        seqs.len(),
        s.sent
    );
    // The sessions stayed Up through the Poll Sequences, at the new interval.
    for p in bed.paths(Site::A) {
        ensure!(
            p["bfd"]["local_state"] == "Up"
                && p["bfd"]["flaps"] == 0
                && p["bfd"]["desired_min_tx_us"] == 200_000,
            "{}",
            p["bfd"]
        );
    }
    bed.finish()?;
    Ok(())
}
