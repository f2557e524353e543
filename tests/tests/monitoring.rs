//! The monitoring a NOC loads (`monitoring/`): `promtool` accepts the alerting rules and their
//! tests pass, and a real Prometheus server scraping a running appliance pair answers a query
//! for the tunnel paths' rates while TCP crosses the tunnel.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use testbed::bins::workspace_root;
use testbed::netns::{skip_unless_root, Netns, NsProcess};
use testbed::scenario::systems::appliance_tunnel::TunnelSpec;
use testbed::tunnel_bed::{bed_with, RATES};

#[test]
fn promtool_accepts_the_rules_and_their_tests_pass() -> Result<()> {
    if skip_unless_root(&["promtool"]) {
        return Ok(());
    }
    let dir = workspace_root().join("monitoring/prometheus");
    for args in [
        vec!["check", "rules", "appliance.rules.yml"],
        vec!["test", "rules", "appliance.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .current_dir(&dir)
            .args(&args)
            .output()
            .context("promtool")?;
        ensure!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// GET `path_and_query` from Prometheus on 127.0.0.1:9090 inside `ns`: the JSON body.
fn prometheus_get(ns: &Netns, path_and_query: &str) -> Result<Value> {
    let request = format!("GET {path_and_query} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let body = ns.run_in(move || {
        let mut s = TcpStream::connect("127.0.0.1:9090")?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(request.as_bytes())?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })?;
    let json = body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("no HTTP body")?;
    Ok(serde_json::from_str(json)?)
}

/// The query string of an instant query (percent-encoded: PromQL has brackets and quotes).
fn query(promql: &str) -> String {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/api/v1/query?query={encoded}")
}

#[test]
fn prometheus_scrapes_the_paths_rates_from_a_running_appliance() -> Result<()> {
    if skip_unless_root(&["prometheus", "iperf3"]) {
        return Ok(());
    }
    let mut spec = TunnelSpec::new("wlb", &RATES);
    spec.metrics = "127.0.0.1:9469".into();
    let bed = bed_with(spec, 0.0)?;
    let ns = &bed.sites.app_a;
    let dir = tempfile::tempdir()?;
    let rules = workspace_root().join("monitoring/prometheus/appliance.rules.yml");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: appliance\n    static_configs:\n      - targets: [\"127.0.0.1:9469\"]\n",
            rules.display()
        ),
    )?;
    let mut cmd = ns.command("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        dir.path().join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.path().join("data").display()
    ))
    .arg("--web.listen-address=127.0.0.1:9090");
    let mut server = NsProcess::spawn(cmd)?;

    // TCP through the tunnel while Prometheus scrapes: both paths carry it (wlb).
    let mbps = bed.tcp(8)?;
    ensure!(mbps > 5.0, "TCP through the tunnel: {mbps} Mbit/s");
    let ready = prometheus_get(ns, "/api/v1/rules")?;
    let groups = ready["data"]["groups"].as_array().context("rule groups")?;
    ensure!(
        groups.iter().any(|g| g["name"] == "appliance"),
        "the appliance rules are loaded: {ready}"
    );

    // The paths' send rates over a window that holds the end of the transfer, as Prometheus
    // computes them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rates = loop {
        ensure!(server.is_running(), "prometheus exited");
        let v = prometheus_get(
            ns,
            &query("rate(appliance_tunnel_path_tx_bytes_total{job=\"appliance\"}[15s]) * 8"),
        )?;
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        if result.len() == 2 {
            break result;
        }
        if Instant::now() > deadline {
            bail!("no per-path rate from Prometheus: {v}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut paths: Vec<(String, f64)> = rates
        .iter()
        .map(|r| {
            let path = r["metric"]["path"].as_str().unwrap_or("?").to_string();
            let bps = r["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(-1.0);
            (path, bps)
        })
        .collect();
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    eprintln!("Prometheus: path send rates {paths:?}");
    ensure!(
        paths.iter().map(|p| p.0.as_str()).collect::<Vec<_>>() == ["a", "b"],
        "{paths:?}"
    );
    // Over a window that may reach past the end of the transfer, each path carried traffic,
    // and no more than its link's rate with the tunnel's headers.
    for ((_, bps), rate) in paths.iter().zip(RATES) {
        ensure!(*bps > 0.0 && *bps < rate as f64 * 1.2, "{paths:?}");
    }
    let up = prometheus_get(ns, &query("appliance_tunnel_path_up"))?;
    ensure!(
        up["data"]["result"]
            .as_array()
            .is_some_and(|r| r.len() == 2 && r.iter().all(|x| x["value"][1] == "1")),
        "{up}"
    );
    server.stop()?;
    bed.finish()?;
    Ok(())
}
