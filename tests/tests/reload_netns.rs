//! A reload on a running, encrypted tunnel (two sites, wlb over both emulated links) while a
//! sequence-stamped stream and a TCP transfer cross it: changes of each kind that can be made
//! live, one at a time (a static route; the paths' BFD timers through a Poll Sequence; a
//! relay rule; a path's rate and priority; a class and a prefix; the probe interval and the
//! shaper's share; the workers' idle back-off; new keys at both sites, one after the other;
//! a path drained with `path down`, removed at both sites and added back), then a change that
//! cannot be made live (a path's peer address) refused with its key, then a file with an
//! error. The stream, which none of them touches, loses nothing and arrives in order; the TCP
//! transfer carries on throughout; the new settings show, and the path added back comes up.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use testbed::bins::workspace_bin;
use testbed::netns::skip_unless_root;
use testbed::scenario::probe_stream;
use testbed::scenario::systems::appliance_tunnel::{self, Site};
use testbed::tunnel_bed::bed;

/// Between reloads: a few probe intervals and BFD packets.
const PAUSE: Duration = Duration::from_millis(700);

/// Runs the appliance binary (`genkey`, `pubkey`): its output.
fn appliance(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(workspace_bin("appliance"))
        .args(args)
        .output()
        .context("running the appliance")?;
    if !out.status.success() {
        bail!(
            "appliance {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The `changes` of a reload's reply, or why it failed.
fn changes(r: &Value) -> Result<Vec<String>> {
    ensure!(r["ok"] == true, "reload failed: {r}");
    Ok(r["data"]["changes"]
        .as_array()
        .context("no changes")?
        .iter()
        .filter_map(|c| c.as_str().map(String::from))
        .collect())
}

#[test]
fn reloads_leave_untouched_traffic_whole_and_in_order() -> Result<()> {
    if skip_unless_root(&["ip", "ethtool", "iperf3"]) {
        return Ok(());
    }
    let bed = bed("wlb", 0.0)?;
    let dir = bed.pair().dir().to_path_buf();
    let socket = |site| bed.pair().socket(site).to_path_buf();
    let file = |site| {
        dir.join(if site == Site::A {
            "site-a.toml"
        } else {
            "site-b.toml"
        })
    };
    let original = std::fs::read_to_string(file(Site::A))?;
    let reload_site = |site: Site, text: &str| -> Result<Value> {
        std::fs::write(file(site), text)?;
        appliance_tunnel::request(&socket(site), r#"{"cmd":"reload"}"#)
    };
    let reload = |text: &str| reload_site(Site::A, text);
    let sessions_at = |site| -> u64 {
        bed.show(site, "tunnel")["encryption"]["handshakes"]["sessions"]
            .as_u64()
            .unwrap_or(0)
    };

    let t0 = Instant::now();
    let stream = probe_stream::start(
        &bed.sites,
        Duration::from_millis(5),
        Duration::from_secs(22),
        t0,
    )?;
    std::thread::scope(|scope| -> Result<()> {
        let tcp = scope.spawn(|| bed.tcp(20));
        std::thread::sleep(PAUSE);

        // A static route (to a host on site A's LAN).
        let routed =
            format!("{original}\n[[routes]]\nprefix = \"10.50.0.0/16\"\nvia = \"10.1.0.2\"\n");
        ensure!(changes(&reload(&routed)?)? == ["route 10.50.0.0/16 via 10.1.0.2 added"]);
        std::thread::sleep(PAUSE);
        // Both paths' BFD timers (a Poll Sequence on each Up session).
        let timed = routed.replace(
            "[tunnel]\n",
            "[tunnel]\nbfd = { desired_min_tx = \"200ms\", required_min_rx = \"200ms\", detect_mult = 3 }\n",
        );
        ensure!(changes(&reload(&timed)?)?.len() == 2);
        std::thread::sleep(PAUSE);
        // A relay rule.
        let relayed = format!(
            "{timed}\n[[mcast_rules]]\ninput = {{ interface = \"lan\", group = \"239.1.1.1\", port = 5000 }}\n\
             outputs = [{{ interface = \"lan\", destination = \"239.2.2.2\", port = 6000 }}]\n"
        );
        ensure!(changes(&reload(&relayed)?)? == ["relay rule lan:239.1.1.1:5000 added"]);
        std::thread::sleep(PAUSE);
        // A path's rate (lower: the link's own stays the ceiling) and priority.
        let rated = relayed.replacen(
            "rate = \"30000000\"\npriority = 0",
            "rate = \"20000000\"\npriority = 3",
            1,
        );
        ensure!(rated != relayed, "test bug: no rate to change in {relayed}");
        ensure!(
            changes(&reload(&rated)?)?
                == ["path a: rate 20000000bit (was 30000000bit), priority 3 (was 0)"]
        );
        std::thread::sleep(PAUSE);
        // A class (real-time traffic on both paths at once) and a prefix.
        let classed = rated
            .replace(
                "prefixes = [\"10.2.0.0/16\"]",
                "prefixes = [\"10.2.0.0/16\", \"10.60.0.0/16\"]",
            )
            .replacen(
                "[[tunnel.paths]]",
                "[[tunnel.classes]]\nname = \"voice\"\nscheduler = \"redundant\"\n\
                 match = { dscp = [46] }\n\n[[tunnel.paths]]",
                1,
            );
        ensure!(
            changes(&reload(&classed)?)?
                == [
                    "tunnel.prefixes: 10.2.0.0/16, 10.60.0.0/16",
                    "tunnel.classes: voice"
                ]
        );
        std::thread::sleep(PAUSE);
        // The probe interval and the shaper's share.
        let probed = classed.replace("probe_interval = \"10ms\"", "probe_interval = \"20ms\"")
            + "\n[tunnel.shaping]\nrate_percent = 90\n";
        ensure!(changes(&reload(&probed)?)?.len() == 2);
        std::thread::sleep(PAUSE);
        // The workers' idle back-off, in the profile.
        let profile = dir.join("profile-a.toml");
        let text = std::fs::read_to_string(&profile)?;
        let idle = text.replace("max_sleep_us = 200", "max_sleep_us = 100");
        ensure!(idle != text, "test bug: no max_sleep_us in {text}");
        std::fs::write(&profile, idle)?;
        let probed = probed + "\n[log]\nlevel = \"warn\"\n";
        ensure!(
            changes(&reload(&probed)?)?
                == [
                    "log.level: warn",
                    "profile.idle: spin_polls 16, max_sleep_us 100, coalesce_frames 8"
                ]
        );
        let level = appliance_tunnel::request(&socket(Site::A), r#"{"cmd":"log_level"}"#)?;
        ensure!(level["data"]["level"] == "warn", "{level}");
        std::thread::sleep(PAUSE);
        // New keys at both sites, A first: its handshake under them fails until B has them
        // too, and the session made under the old keys carries the traffic meanwhile.
        let before = sessions_at(Site::A);
        let (a2, b2) = (dir.join("a2.key"), dir.join("b2.key"));
        for k in [&a2, &b2] {
            appliance(&["genkey", &k.to_string_lossy()])?;
        }
        let (pub_a, pub_b) = (
            appliance(&["pubkey", &dir.join("a.key").to_string_lossy()])?,
            appliance(&["pubkey", &dir.join("b.key").to_string_lossy()])?,
        );
        let (pub_a2, pub_b2) = (
            appliance(&["pubkey", &a2.to_string_lossy()])?,
            appliance(&["pubkey", &b2.to_string_lossy()])?,
        );
        let rekeyed_a = probed
            .replace("private_key = \"a.key\"", "private_key = \"a2.key\"")
            .replace(&pub_b, &pub_b2);
        let r = changes(&reload(&rekeyed_a)?)?;
        ensure!(
            r.len() == 1 && r[0].contains(&pub_a2) && r[0].ends_with("rekeying"),
            "{r:?}"
        );
        std::thread::sleep(PAUSE);
        let site_b = std::fs::read_to_string(file(Site::B))?;
        let rekeyed_b = site_b
            .replace("private_key = \"b.key\"", "private_key = \"b2.key\"")
            .replace(&pub_a, &pub_a2);
        ensure!(
            rekeyed_b != site_b,
            "test bug: no keys to change in {site_b}"
        );
        let r = changes(&reload_site(Site::B, &rekeyed_b)?)?;
        ensure!(r.len() == 1 && r[0].contains(&pub_b2), "{r:?}");
        std::thread::sleep(PAUSE * 2);
        let after = sessions_at(Site::A);
        ensure!(
            after > before,
            "no session under the new keys ({before} → {after})"
        );

        // Path b: drained at both sites (as a link is before it is taken out), removed at
        // both, then added back at both.
        for site in [Site::A, Site::B] {
            bed.set_path_admin(site, "b", false)?;
        }
        std::thread::sleep(PAUSE);
        let without_b = |text: &str| -> Result<String> {
            let start = text
                .find("[[tunnel.paths]]\nname = \"b\"")
                .context("no path b")?;
            let end = text[start..]
                .find("\n\n")
                .map_or(text.len(), |e| start + e + 2);
            Ok(format!("{}{}", &text[..start], &text[end..]))
        };
        let (less_a, less_b) = (without_b(&rekeyed_a)?, without_b(&rekeyed_b)?);
        ensure!(changes(&reload(&less_a)?)? == ["path b removed"]);
        ensure!(changes(&reload_site(Site::B, &less_b)?)? == ["path b removed"]);
        std::thread::sleep(PAUSE);
        ensure!(bed.paths(Site::A).len() == 1);
        let r = changes(&reload(&rekeyed_a)?)?;
        ensure!(
            r.len() == 1 && r[0].starts_with("path b added: id 1"),
            "{r:?}"
        );
        ensure!(
            bed.path(Site::A, "b")["state"] == "no_replies",
            "a path added carries nothing until the peer has it: {}",
            bed.path(Site::A, "b")
        );
        ensure!(changes(&reload_site(Site::B, &rekeyed_b)?)?.len() == 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while bed.path(Site::A, "b")["state"] != "up" || bed.path(Site::B, "b")["state"] != "up" {
            ensure!(
                Instant::now() < deadline,
                "path b did not come back: {} / {}",
                bed.path(Site::A, "b"),
                bed.path(Site::B, "b")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(PAUSE);

        // A path's peer address cannot change live: refused, naming it, and nothing of the
        // file applied (not even the route that could have been).
        let running = |site| bed.show(site, "config")["config"].clone();
        let before = running(Site::A);
        let moved = rekeyed_a.replacen("remote = \"172.16.0.2\"", "remote = \"172.16.0.9\"", 1)
            + "\n[[routes]]\nprefix = \"10.51.0.0/16\"\nvia = \"10.1.0.2\"\n";
        ensure!(
            moved.contains("172.16.0.9"),
            "test bug: no remote to change"
        );
        let r = reload(&moved)?;
        ensure!(
            r["ok"] == false
                && r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("tunnel.paths[0].remote")),
            "{r}"
        );
        // A file with an error: refused, naming the key.
        let r = reload(&format!("{rekeyed_a}\n[slowpath]\nbogus = 1\n"))?;
        ensure!(
            r["ok"] == false && r["error"].as_str().is_some_and(|e| e.contains("bogus")),
            "{r}"
        );
        ensure!(
            running(Site::A) == before,
            "a refused reload changed the running config"
        );
        ensure!(before.as_str().is_some_and(|c| c.contains("10.50.0.0/16")));
        let mbps = tcp
            .join()
            .map_err(|_| anyhow::anyhow!("iperf3 panicked"))??;
        eprintln!("TCP through the reloads: {mbps:.1} Mbit/s");
        ensure!(
            mbps > 5.0,
            "TCP got only {mbps:.1} Mbit/s through the reloads"
        );
        Ok(())
    })?;

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
    // The sessions stayed Up through the Poll Sequences, at the new interval; path a shows
    // its new rate and priority; the tunnel its new prefix.
    for p in bed.paths(Site::A) {
        ensure!(
            p["bfd"]["local_state"] == "Up"
                && p["bfd"]["flaps"] == 0
                && p["bfd"]["desired_min_tx_us"] == 200_000,
            "{}",
            p["bfd"]
        );
    }
    let a = bed.path(Site::A, "a");
    ensure!(
        a["rate_configured_bps"] == 20_000_000 && a["priority"] == 3,
        "{a}"
    );
    let t = bed.show(Site::A, "tunnel");
    ensure!(
        t["prefixes"] == serde_json::json!(["10.2.0.0/16", "10.60.0.0/16"]),
        "{}",
        t["prefixes"]
    );
    bed.finish()?;
    Ok(())
}
