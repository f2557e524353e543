//! iperf3 runs between the sites' hosts: a one-off server on host B, a client on host A with
//! JSON output, and the figures read back from that JSON.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::result::Interval;
use crate::netns::{Netns, NsProcess};

/// The port every scenario's iperf3 server listens on (each row has its own namespaces).
pub const PORT: u16 = 5201;

/// Starts `iperf3 -s -1 -J` (one test, then exit with a JSON report whose intervals are
/// `interval` long) under `wrapper`, and waits until it listens.
pub fn start_server(
    ns: &Netns,
    wrapper: &[String],
    bind: Ipv4Addr,
    interval: Duration,
) -> Result<NsProcess> {
    let port = PORT.to_string();
    let bind = bind.to_string();
    let interval = format!("{}", interval.as_secs_f64());
    let mut args: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    args.extend([
        "iperf3", "-s", "-1", "-J", "-i", &interval, "-p", &port, "-B", &bind,
    ]);
    let mut server = ns.spawn(&args)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let needle = format!(":{port} ");
    loop {
        // An MPTCP listener also shows as a TCP one.
        let listening = ns.exec(&["ss", "-Hlnt"])?;
        if listening.contains(&needle) {
            return Ok(server);
        }
        if !server.is_running() {
            let out = server.wait_timeout(Duration::from_secs(1))?;
            bail!("iperf3 server exited: {}", out.stderr.trim());
        }
        ensure!(
            Instant::now() < deadline,
            "iperf3 server not listening after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a server started by [`start_server`] to finish its one test and returns its
/// JSON report (the receiver's view).
pub fn server_report(server: NsProcess) -> Result<Value> {
    let out = server.wait_timeout(Duration::from_secs(10))?;
    let json: Value = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("iperf3 server printed no JSON: {}", out.stderr.trim()))?;
    if let Some(e) = json.get("error").and_then(Value::as_str) {
        bail!("iperf3 server: {e}");
    }
    Ok(json)
}

/// Runs a client to completion (at most `limit`) and returns its JSON.
pub fn run_client(
    ns: &Netns,
    wrapper: &[String],
    args: &[String],
    limit: Duration,
) -> Result<Value> {
    let mut all: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    all.push("iperf3");
    all.extend(args.iter().map(String::as_str));
    let out = ns.spawn(&all)?.wait_timeout(limit)?;
    let json: Value = serde_json::from_str(out.stdout.trim()).with_context(|| {
        format!(
            "iperf3 printed no JSON ({}): {}",
            out.status,
            out.stderr.trim()
        )
    })?;
    if let Some(e) = json.get("error").and_then(Value::as_str) {
        bail!("iperf3: {e}");
    }
    Ok(json)
}

/// The client arguments of a TCP test from host A to `server`; `congestion` is passed
/// with `-C` (iperf3 sets it on both ends' sockets).
pub fn tcp_args(
    server: Ipv4Addr,
    parallel: u32,
    duration: Duration,
    interval: Duration,
    congestion: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-c".into(),
        server.to_string(),
        "-p".into(),
        PORT.to_string(),
        "-P".into(),
        parallel.to_string(),
        "-t".into(),
        format!("{}", duration.as_secs_f64()),
        "-i".into(),
        format!("{}", interval.as_secs_f64()),
        "-J".into(),
    ];
    if let Some(cc) = congestion {
        args.extend(["-C".into(), cc.into()]);
    }
    args
}

/// The congestion control the sender's sockets used (iperf3 reports it).
pub fn sender_congestion(client: &Value) -> String {
    client["end"]["sender_tcp_congestion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// First client port of the UDP steps: the same ports every step, so a per-flow hash puts
/// the flows on the same links at every rate of a sweep.
pub const UDP_CLIENT_PORT: u16 = 50000;

/// The client arguments of one UDP step: `total_bps` split over `parallel` streams, from
/// client ports [`UDP_CLIENT_PORT`], +1, ...
pub fn udp_args(
    server: Ipv4Addr,
    size: u32,
    total_bps: u64,
    parallel: u32,
    duration: Duration,
) -> Vec<String> {
    let per_stream = (total_bps / u64::from(parallel.max(1))).max(1);
    vec![
        "-c".into(),
        server.to_string(),
        "-p".into(),
        PORT.to_string(),
        "-u".into(),
        "-b".into(),
        per_stream.to_string(),
        "-l".into(),
        size.to_string(),
        "-P".into(),
        parallel.to_string(),
        "--cport".into(),
        UDP_CLIENT_PORT.to_string(),
        "-t".into(),
        format!("{}", duration.as_secs_f64()),
        "-J".into(),
    ]
}

/// What a TCP test reported.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpOutcome {
    pub intervals: Vec<Interval>,
    pub sent_mbps: f64,
    pub received_mbps: f64,
    pub retransmits: u64,
}

fn num(v: &Value, path: &[&str]) -> Result<f64> {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .with_context(|| format!("iperf3 JSON has no {}", path.join(".")))?;
    }
    cur.as_f64()
        .with_context(|| format!("iperf3 JSON: {} is not a number", path.join(".")))
}

/// Reads a TCP test: the time series from the receiver (`server`: bytes that arrived, not
/// bytes written into the sender's socket buffer, which run ahead at the start), the totals
/// from both ends.
pub fn parse_tcp(client: &Value, server: &Value) -> Result<TcpOutcome> {
    let intervals = server["intervals"]
        .as_array()
        .context("iperf3 server JSON has no intervals")?
        .iter()
        .map(|i| {
            Ok(Interval {
                start: num(i, &["sum", "start"])?,
                end: num(i, &["sum", "end"])?,
                mbps: num(i, &["sum", "bits_per_second"])? / 1e6,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TcpOutcome {
        intervals,
        sent_mbps: num(client, &["end", "sum_sent", "bits_per_second"])? / 1e6,
        received_mbps: num(server, &["end", "sum_received", "bits_per_second"])? / 1e6,
        retransmits: num(client, &["end", "sum_sent", "retransmits"]).unwrap_or(0.0) as u64,
    })
}

/// What a UDP step reported (the receiver's view comes back to the client at the end).
#[derive(Debug, Clone, PartialEq)]
pub struct UdpOutcome {
    pub sent_mbps: f64,
    pub received_mbps: f64,
    pub packets: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub jitter_ms: f64,
}

pub fn parse_udp(json: &Value) -> Result<UdpOutcome> {
    let r = &["end", "sum_received"];
    let field = |f: &str| num(json, &[r[0], r[1], f]);
    Ok(UdpOutcome {
        sent_mbps: num(json, &["end", "sum_sent", "bits_per_second"])? / 1e6,
        received_mbps: field("bits_per_second")? / 1e6,
        packets: field("packets")? as u64,
        lost: field("lost_packets")? as u64,
        loss_pct: field("lost_percent")?,
        jitter_ms: field("jitter_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tcp_json() {
        let server: Value = serde_json::from_str(
            r#"{"intervals":[{"sum":{"start":0,"end":0.5,"bits_per_second":2.0e7}},
                              {"sum":{"start":0.5,"end":1.0,"bits_per_second":3.0e7}}],
                "end":{"sum_received":{"bits_per_second":2.5e7}}}"#,
        )
        .unwrap();
        let client: Value = serde_json::from_str(
            r#"{"end":{"sum_sent":{"bits_per_second":2.6e7,"retransmits":7}}}"#,
        )
        .unwrap();
        let t = parse_tcp(&client, &server).unwrap();
        assert_eq!(t.intervals.len(), 2);
        assert_eq!(t.intervals[1].mbps, 30.0);
        assert_eq!(
            (t.sent_mbps, t.received_mbps, t.retransmits),
            (26.0, 25.0, 7)
        );
        let err = parse_tcp(&serde_json::json!({}), &server).unwrap_err();
        assert!(
            format!("{err}").contains("end.sum_sent.bits_per_second"),
            "{err}"
        );
    }

    #[test]
    fn reads_udp_json() {
        let j: Value = serde_json::from_str(
            r#"{"end":{"sum_sent":{"bits_per_second":1.0e7},
                       "sum_received":{"bits_per_second":9.0e6,"packets":1000,"lost_packets":100,
                                       "lost_percent":10.0,"jitter_ms":0.25}}}"#,
        )
        .unwrap();
        let u = parse_udp(&j).unwrap();
        assert_eq!(
            (u.packets, u.lost, u.loss_pct, u.jitter_ms),
            (1000, 100, 10.0, 0.25)
        );
        assert_eq!(u.received_mbps, 9.0);
    }

    #[test]
    fn splits_the_udp_rate_over_streams() {
        let a = udp_args(
            Ipv4Addr::new(10, 2, 0, 2),
            160,
            8_000_000,
            4,
            Duration::from_secs(5),
        );
        let b = a.iter().position(|x| x == "-b").unwrap();
        assert_eq!(a[b + 1], "2000000");
    }
}
