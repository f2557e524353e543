//! One multicast trial through the relay: `mcast-sink` on the sink host joins every output
//! group, `mcast-gen` on the generator host sends every input stream for the trial's
//! duration, and the sink's per-(output, stream) report is matched against what the
//! generator sent. Loss is counted against the generator's own count, so datagrams lost at
//! the end of a stream count too.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;
use serde_json::Value;

use super::machine::CpuTimes;
use super::mcast_plan::{self, StreamPlan};
use super::result::{McastRun, McastStream, McastTotals};
use super::systems::RelayGuard;
use super::tools::Tools;
use crate::netns::Netns;
use crate::topology::Relay;
use crate::traffic::StreamReport;

/// How long the sink keeps listening after the generator's end: a datagram that arrives
/// later counts as lost (the report says so).
pub const DRAIN: Duration = Duration::from_millis(500);

/// What one trial sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    /// Datagrams per second of each stream.
    pub pps: f64,
    pub size: u32,
    pub duration: Duration,
}

/// Runs one trial. `sent_plan` is what the generator sends; `delivered` the groups the
/// sinks join for each stream (the translated outputs, or the inputs for a system that
/// does not translate).
pub fn run(
    r: &Relay,
    tools: &Tools,
    relay: &RelayGuard,
    sent_plan: &[StreamPlan],
    delivered: &[StreamPlan],
    trial: Trial,
) -> Result<McastRun> {
    let gen_host = r.gens.first().context("relay has no generator host")?;
    let sink_host = r.sinks.first().context("relay has no sink host")?;
    let sink_errors_before = udp_rcvbuf_errors(&sink_host.ns)?;
    let relay_errors_before = udp_rcvbuf_errors(&r.appliance)?;
    let drops_before = interface_drops(r)?;
    let sink_udp_before = udp_in_errors(&sink_host.ns)?;
    let sink_snmp_before = snmp_errors(&sink_host.ns)?;
    let sink_bin = tools.bin("mcast-sink")?;
    let gen_bin = tools.bin("mcast-gen")?;
    let sink_addr = sink_host.addr.to_string();
    let sink = sink_host.ns.spawn(&[
        sink_bin.to_str().context("path")?,
        "--group",
        &mcast_plan::outputs(delivered),
        "--iface-addr",
        &sink_addr,
        "--by-group",
        "--fresh-only",
    ])?;
    wait_joined(&sink_host.ns, &sink_host.iface, delivered)?;
    let cpu_before = relay.cpu_seconds();
    let machine_before = CpuTimes::now();
    let started = Instant::now();
    let gen_addr = gen_host.addr.to_string();
    let gen = gen_host.ns.spawn(&[
        gen_bin.to_str().context("path")?,
        "--dest",
        &mcast_plan::inputs(sent_plan),
        "--pps",
        &trial.pps.to_string(),
        "--size",
        &trial.size.to_string(),
        "--duration",
        &format!("{}ms", trial.duration.as_millis()),
        "--source",
        &gen_addr,
        "--strict-end",
    ])?;
    let gen_out = gen.wait_timeout(trial.duration + Duration::from_secs(20))?;
    let wall = started.elapsed();
    let relay_cpu_pct = (relay.cpu_seconds() - cpu_before) / wall.as_secs_f64() * 100.0;
    let machine_busy_pct = CpuTimes::now().busy_pct_since(&machine_before);
    ensure!(
        gen_out.status.success(),
        "mcast-gen failed: {}",
        gen_out.stderr.trim()
    );
    // A relay that keeps up empties its queues within milliseconds; one that still holds
    // datagrams after DRAIN was falling behind, and they count as lost.
    std::thread::sleep(DRAIN);
    sink.signal(Signal::SIGINT)?;
    let sink_out = sink.wait_timeout(Duration::from_secs(10))?;
    let gen_json: Value =
        serde_json::from_str(gen_out.stdout.trim()).context("mcast-gen printed no JSON")?;
    let sink_json: Value = serde_json::from_str(sink_out.stdout.trim())
        .with_context(|| format!("mcast-sink printed no JSON: {}", sink_out.stderr.trim()))?;
    let sent = gen_json["streams"]
        .as_array()
        .context("mcast-gen JSON has no streams")?
        .iter()
        .map(|s| s["sent"].as_u64().unwrap_or(0))
        .collect::<Vec<u64>>();
    let reports: Vec<StreamReport> =
        serde_json::from_value(sink_json["streams"].clone()).context("mcast-sink JSON")?;
    let gen_elapsed = gen_json["elapsed_s"].as_f64().unwrap_or(0.0);
    let stale = sink_json["stale"].as_u64().unwrap_or(0);
    let per_stream = match_outputs(delivered, &sent, &reports);
    let fanout = delivered.first().map_or(1, |s| s.outputs.len()) as u32;
    Ok(McastRun {
        streams: sent_plan.len() as u32,
        fanout,
        pps: trial.pps,
        size: trial.size,
        duration_s: trial.duration.as_secs_f64(),
        totals: totals(&per_stream, &sent, fanout, gen_elapsed),
        per_stream,
        relay_cpu_pct,
        machine_busy_pct,
        stale,
        sink_rcvbuf_errors: udp_rcvbuf_errors(&sink_host.ns)?.saturating_sub(sink_errors_before),
        relay_rcvbuf_errors: udp_rcvbuf_errors(&r.appliance)?.saturating_sub(relay_errors_before),
        sink_udp_in_errors: {
            let (e, c) = udp_in_errors(&sink_host.ns)?;
            (
                e.saturating_sub(sink_udp_before.0),
                c.saturating_sub(sink_udp_before.1),
            )
        },
        sink_errors: counter_deltas(&sink_snmp_before, &snmp_errors(&sink_host.ns)?),
        interface_drops: interface_drops(r)?
            .into_iter()
            .zip(drops_before)
            .map(|((ns, after), (_, before))| (ns, after.saturating_sub(before)))
            .collect(),
        relay_report: Value::Null,
    })
}

/// Waits until the kernel lists every delivered group as joined on the sink's interface.
fn wait_joined(ns: &Netns, dev: &str, delivered: &[StreamPlan]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let maddr = ns.ip(&["maddr", "show", "dev", dev])?;
        let joined: std::collections::HashSet<&str> = maddr.split_whitespace().collect();
        let missing = delivered
            .iter()
            .flat_map(|s| s.outputs.iter())
            .filter(|o| !joined.contains(o.ip().to_string().as_str()))
            .count();
        if missing == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("mcast-sink joined all but {missing} groups within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One row per (stream, output): what the generator sent against what that output delivered.
pub fn match_outputs(
    delivered: &[StreamPlan],
    sent: &[u64],
    reports: &[StreamReport],
) -> Vec<McastStream> {
    let by_key: HashMap<(u32, &str), &StreamReport> = reports
        .iter()
        .filter_map(|r| Some(((r.stream, r.group.as_deref()?), r)))
        .collect();
    let mut rows = Vec::new();
    for (i, s) in delivered.iter().enumerate() {
        let sent_i = sent.get(i).copied().unwrap_or(0);
        for o in &s.outputs {
            let out = o.to_string();
            let r = by_key.get(&(i as u32, out.as_str())).copied();
            let unique = r.map_or(0, |r| r.unique);
            rows.push(McastStream {
                stream: i as u32,
                output: out.clone(),
                sent: sent_i,
                unique,
                lost: sent_i.saturating_sub(unique),
                duplicates: r.map_or(0, |r| r.duplicates),
                reordered: r.map_or(0, |r| r.reordered),
                latency_us: r.map(|r| r.latency_us).unwrap_or_default(),
            });
        }
    }
    rows
}

/// Totals over every output.
pub fn totals(rows: &[McastStream], sent: &[u64], fanout: u32, gen_elapsed_s: f64) -> McastTotals {
    let sent_total: u64 = sent.iter().sum();
    let expected = sent_total * u64::from(fanout);
    let unique: u64 = rows.iter().map(|r| r.unique).sum();
    let lost: u64 = rows.iter().map(|r| r.lost).sum();
    let mut p50: Vec<f64> = rows
        .iter()
        .filter(|r| r.unique > 0)
        .map(|r| r.latency_us.p50)
        .collect();
    p50.sort_by(f64::total_cmp);
    McastTotals {
        input_pps: if gen_elapsed_s > 0.0 {
            sent_total as f64 / gen_elapsed_s
        } else {
            0.0
        },
        sent: sent_total,
        expected,
        unique,
        lost,
        loss_pct: if expected == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / expected as f64
        },
        duplicates: rows.iter().map(|r| r.duplicates).sum(),
        reordered: rows.iter().map(|r| r.reordered).sum(),
        latency_p50_us: p50.get(p50.len() / 2).copied().unwrap_or(0.0),
        latency_p99_worst_us: rows.iter().map(|r| r.latency_us.p99).fold(0.0, f64::max),
        latency_max_us: rows.iter().map(|r| r.latency_us.max).fold(0.0, f64::max),
    }
}

/// Dropped packets (rx + tx) summed over every interface of the relay, switch and sink
/// namespaces, as the kernel counts them (`ip -s link`).
fn interface_drops(r: &Relay) -> Result<Vec<(String, u64)>> {
    let mut out = vec![("relay".to_string(), link_drops(&r.appliance)?)];
    out.push(("switch".into(), link_drops(&r.switch)?));
    for (i, s) in r.sinks.iter().enumerate() {
        out.push((format!("sink{i}"), link_drops(&s.ns)?));
    }
    Ok(out)
}

fn link_drops(ns: &Netns) -> Result<u64> {
    let text = ns.ip(&["-s", "-j", "link"])?;
    parse_link_drops(&text).with_context(|| format!("`ip -s -j link` in {}", ns.name()))
}

fn parse_link_drops(json: &str) -> Result<u64> {
    let links: Vec<Value> = serde_json::from_str(json)?;
    Ok(links
        .iter()
        .map(|l| {
            let s = &l["stats64"];
            s["rx"]["dropped"].as_u64().unwrap_or(0) + s["tx"]["dropped"].as_u64().unwrap_or(0)
        })
        .sum())
}

/// The kernel's UDP `RcvbufErrors` counter in a namespace.
pub fn udp_rcvbuf_errors(ns: &Netns) -> Result<u64> {
    let snmp = ns.exec(&["cat", "/proc/net/snmp"])?;
    snmp_counter(&snmp, "Udp", "RcvbufErrors").context("no Udp RcvbufErrors in /proc/net/snmp")
}

/// The kernel's UDP `InErrors` (every datagram UDP dropped: buffer, checksum, memory) and
/// `InCsumErrors` counters in a namespace.
pub fn udp_in_errors(ns: &Netns) -> Result<(u64, u64)> {
    let snmp = ns.exec(&["cat", "/proc/net/snmp"])?;
    Ok((
        snmp_counter(&snmp, "Udp", "InErrors").context("no Udp InErrors")?,
        snmp_counter(&snmp, "Udp", "InCsumErrors").context("no Udp InCsumErrors")?,
    ))
}

/// The error and discard counters of `/proc/net/snmp` (IP, UDP) in a namespace, by
/// `Section.Name`.
pub fn snmp_errors(ns: &Netns) -> Result<BTreeMap<String, u64>> {
    Ok(parse_snmp_errors(&ns.exec(&["cat", "/proc/net/snmp"])?))
}

fn parse_snmp_errors(snmp: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for section in ["Ip", "Udp"] {
        let prefix = format!("{section}:");
        let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            continue;
        };
        for (n, v) in names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
        {
            let wanted = n.contains("Err") || n.contains("Discard") || n == "NoPorts";
            if let (true, Ok(v)) = (wanted, v.parse::<u64>()) {
                out.insert(format!("{section}.{n}"), v);
            }
        }
    }
    out
}

/// `after - before` for every counter that changed.
fn counter_deltas(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// One counter of a `/proc/net/snmp` section (a line of names, then a line of values).
fn snmp_counter(snmp: &str, section: &str, name: &str) -> Option<u64> {
    let prefix = format!("{section}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::mcast_plan::plan;
    use crate::traffic::Latency;

    fn report(stream: u32, group: &str, unique: u64, p99: f64) -> StreamReport {
        StreamReport {
            stream,
            group: Some(group.into()),
            received: unique,
            unique,
            lost: 0,
            duplicates: 1,
            reordered: 0,
            highest_seq: Some(unique),
            latency_us: Latency {
                p50: 10.0,
                p99,
                max: p99 * 2.0,
            },
        }
    }

    #[test]
    fn matches_outputs_and_counts_missing_ones_as_lost() {
        let p = plan(2, 2);
        let reports = [
            report(0, "239.10.1.1:6000", 100, 50.0),
            report(0, "239.11.1.1:6000", 90, 70.0),
            report(1, "239.10.1.2:6001", 100, 20.0),
            // A stray report for a group nobody asked for is ignored.
            report(1, "239.99.1.2:6001", 100, 20.0),
        ];
        let rows = match_outputs(&p, &[100, 100], &reports);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].lost, 10);
        assert_eq!(rows[3].output, "239.11.1.2:6001");
        assert_eq!((rows[3].unique, rows[3].lost), (0, 100));
        let t = totals(&rows, &[100, 100], 2, 2.0);
        assert_eq!((t.sent, t.expected, t.unique, t.lost), (200, 400, 290, 110));
        assert!((t.loss_pct - 27.5).abs() < 1e-9);
        assert_eq!(t.duplicates, 3);
        assert_eq!(t.latency_p99_worst_us, 70.0);
        assert_eq!(t.input_pps, 100.0);
    }

    #[test]
    fn sums_interface_drops() {
        let j = r#"[{"ifname":"lo","stats64":{"rx":{"dropped":1},"tx":{"dropped":2}}},
                    {"ifname":"x","stats64":{"rx":{"dropped":10},"tx":{"dropped":0}}}]"#;
        assert_eq!(parse_link_drops(j).unwrap(), 13);
        assert!(parse_link_drops("not json").is_err());
    }

    #[test]
    fn keeps_error_counters_and_their_changes() {
        let a = parse_snmp_errors(
            "Ip: Forwarding InHdrErrors InDiscards\nIp: 1 5 0\nUdp: InDatagrams NoPorts InErrors\nUdp: 9 1 2\n",
        );
        assert_eq!(a.len(), 4);
        assert_eq!(a["Ip.InHdrErrors"], 5);
        let b = parse_snmp_errors(
            "Ip: Forwarding InHdrErrors InDiscards\nIp: 1 7 0\nUdp: InDatagrams NoPorts InErrors\nUdp: 99 1 2\n",
        );
        let d = counter_deltas(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d["Ip.InHdrErrors"], 2);
    }

    #[test]
    fn reads_rcvbuf_errors() {
        let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 10 0 3 5 3 0\nUdpLite: InDatagrams\nUdpLite: 0\n";
        assert_eq!(snmp_counter(snmp, "Udp", "RcvbufErrors"), Some(3));
        assert_eq!(snmp_counter(snmp, "Udp", "InErrors"), Some(3));
        assert_eq!(snmp_counter(snmp, "UdpLite", "InDatagrams"), Some(0));
        assert_eq!(snmp_counter("Ip: 1\n", "Udp", "InErrors"), None);
    }
}
