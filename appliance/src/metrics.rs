//! Prometheus text endpoint (`GET /metrics`), on its own thread.

use std::fmt::Write as _;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::report::StatsSource;
use crate::stats::DropReason;

/// The running endpoint. Dropping it stops the server thread (each request is answered
/// on that thread, so none is in flight afterwards) and with it its [`StatsSource`].
pub struct Endpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").finish_non_exhaustive()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address cannot be bound.
    #[error("metrics endpoint {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Its thread could not be started.
    #[error("metrics endpoint thread: {0}")]
    Thread(std::io::Error),
}

/// Starts the endpoint on `addr` (e.g. `127.0.0.1:9469`).
///
/// # Errors
/// The address cannot be bound.
pub fn start(addr: &str, source: Arc<StatsSource>) -> Result<Endpoint, MetricsError> {
    let server = Arc::new(
        tiny_http::Server::http(addr).map_err(|e| MetricsError::Bind {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?,
    );
    let serving = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in serving.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    let header =
                        tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4")
                            .ok();
                    let mut r = tiny_http::Response::from_string(render(&source));
                    if let Some(h) = header {
                        r.add_header(h);
                    }
                    r
                } else {
                    tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                };
                let _ = request.respond(response);
            }
        })
        .map_err(MetricsError::Thread)?;
    Ok(Endpoint {
        server,
        thread: Some(thread),
    })
}

/// The metrics text.
pub fn render(source: &StatsSource) -> String {
    let mut out = String::new();
    let ports = source.ports();
    let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(
            out,
            "# HELP appliance_{name} {help}\n# TYPE appliance_{name} {kind}"
        );
        for (labels, v) in rows {
            if labels.is_empty() {
                let _ = writeln!(out, "appliance_{name} {v}");
            } else {
                let _ = writeln!(out, "appliance_{name}{{{labels}}} {v}");
            }
        }
    };
    let pl = |p: &crate::report::PortReport| format!("port=\"{}\"", p.meta.name);
    metric(
        "port_rx_packets_total",
        "counter",
        "Packets received by the port (driver counter).",
        ports.iter().map(|p| (pl(p), p.stats.ipackets)).collect(),
    );
    metric(
        "port_tx_packets_total",
        "counter",
        "Packets sent by the port (driver counter).",
        ports.iter().map(|p| (pl(p), p.stats.opackets)).collect(),
    );
    metric(
        "port_rx_bytes_total",
        "counter",
        "Bytes received by the port.",
        ports.iter().map(|p| (pl(p), p.stats.ibytes)).collect(),
    );
    metric(
        "port_tx_bytes_total",
        "counter",
        "Bytes sent by the port.",
        ports.iter().map(|p| (pl(p), p.stats.obytes)).collect(),
    );
    metric(
        "port_rx_missed_total",
        "counter",
        "Packets the device dropped for lack of RX descriptors.",
        ports.iter().map(|p| (pl(p), p.stats.imissed)).collect(),
    );
    metric(
        "port_rx_errors_total",
        "counter",
        "Erroneous packets received.",
        ports.iter().map(|p| (pl(p), p.stats.ierrors)).collect(),
    );
    metric(
        "port_tx_errors_total",
        "counter",
        "Failed transmissions.",
        ports.iter().map(|p| (pl(p), p.stats.oerrors)).collect(),
    );
    metric(
        "port_rx_nombuf_total",
        "counter",
        "RX mbuf allocation failures.",
        ports.iter().map(|p| (pl(p), p.stats.rx_nombuf)).collect(),
    );
    metric(
        "port_link_up",
        "gauge",
        "1 if the link is up.",
        ports
            .iter()
            .map(|p| (pl(p), u64::from(p.link_up)))
            .collect(),
    );
    let mut q_rows = Vec::new();
    for p in &ports {
        for (q, v) in p.stats.q_ipackets.iter().enumerate() {
            q_rows.push((format!("port=\"{}\",queue=\"{q}\"", p.meta.name), *v));
        }
    }
    metric(
        "queue_rx_packets_total",
        "counter",
        "Packets received per RX queue (driver counter).",
        q_rows,
    );
    let mut q_rows = Vec::new();
    for p in &ports {
        for (q, v) in p.stats.q_opackets.iter().enumerate() {
            q_rows.push((format!("port=\"{}\",queue=\"{q}\"", p.meta.name), *v));
        }
    }
    metric(
        "queue_tx_packets_total",
        "counter",
        "Packets sent per TX queue (driver counter).",
        q_rows,
    );

    let workers = source.workers();
    let names: Vec<&str> = source.ports.iter().map(|p| p.name.as_str()).collect();
    let per_worker_port = |f: &dyn Fn(&crate::stats::CounterSnapshot) -> &Vec<u64>| {
        let mut rows = Vec::new();
        for w in &workers {
            for (i, name) in names.iter().enumerate() {
                rows.push((
                    format!("worker=\"{}\",port=\"{name}\"", w.id),
                    f(&w.counters).get(i).copied().unwrap_or(0),
                ));
            }
        }
        rows
    };
    metric(
        "worker_rx_packets_total",
        "counter",
        "Packets a worker received, per port.",
        per_worker_port(&|c| &c.rx_packets),
    );
    metric(
        "worker_tx_packets_total",
        "counter",
        "Packets a worker sent, per port.",
        per_worker_port(&|c| &c.tx_packets),
    );
    metric(
        "worker_rx_bytes_total",
        "counter",
        "Bytes a worker received, per port.",
        per_worker_port(&|c| &c.rx_bytes),
    );
    metric(
        "worker_tx_bytes_total",
        "counter",
        "Bytes a worker sent, per port.",
        per_worker_port(&|c| &c.tx_bytes),
    );
    metric(
        "worker_punted_total",
        "counter",
        "Packets a worker handed to the slow path.",
        workers
            .iter()
            .map(|w| (format!("worker=\"{}\"", w.id), w.counters.punted))
            .collect(),
    );
    metric(
        "worker_polls_total",
        "counter",
        "Poll loop iterations.",
        workers
            .iter()
            .map(|w| (format!("worker=\"{}\"", w.id), w.counters.polls))
            .collect(),
    );
    metric(
        "worker_busy_polls_total",
        "counter",
        "Poll loop iterations that found packets.",
        workers
            .iter()
            .map(|w| (format!("worker=\"{}\"", w.id), w.counters.busy_polls))
            .collect(),
    );
    let mut drop_rows = Vec::new();
    for w in &workers {
        for r in DropReason::ALL {
            drop_rows.push((
                format!("worker=\"{}\",reason=\"{}\"", w.id, r.name()),
                w.counters.drop_count(*r),
            ));
        }
    }
    let mgmt = source.mgmt.snapshot();
    for r in DropReason::ALL {
        drop_rows.push((
            format!("worker=\"mgmt\",reason=\"{}\"", r.name()),
            mgmt.drop_count(*r),
        ));
    }
    metric(
        "drops_total",
        "counter",
        "Packets dropped, by lcore and reason.",
        drop_rows,
    );
    metric(
        "mgmt_tx_packets_total",
        "counter",
        "Packets the management lcore sent, per port.",
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    format!("port=\"{n}\""),
                    mgmt.tx_packets.get(i).copied().unwrap_or(0),
                )
            })
            .collect(),
    );
    metric(
        "slowpath_events_total",
        "counter",
        "Slow-path events.",
        source
            .slow
            .snapshot()
            .into_iter()
            .map(|(k, v)| (format!("event=\"{k}\""), v))
            .collect(),
    );
    let s = source.stats();
    metric(
        "mempool_in_use",
        "gauge",
        "Mbufs taken from the pool.",
        vec![(String::new(), u64::from(s.mempool.in_use))],
    );
    metric(
        "mempool_capacity",
        "gauge",
        "Mbufs in the pool.",
        vec![(String::new(), u64::from(s.mempool.capacity))],
    );
    metric(
        "mempool_baseline_in_use",
        "gauge",
        "Mbufs in use with no traffic (after port start).",
        vec![(String::new(), u64::from(s.mempool.baseline_in_use))],
    );
    metric(
        "header_pool_in_use",
        "gauge",
        "Fan-out header mbufs taken from their pool (0 when no copy is in flight).",
        vec![(String::new(), u64::from(s.header_pool.in_use))],
    );
    metric(
        "tables_version",
        "gauge",
        "Version of the published tables.",
        vec![(String::new(), s.tables_version)],
    );
    let mcast = source.mcast(None);
    let rule_label = |r: &crate::report::RuleReport| format!("rule=\"{}\"", r.rule.input);
    let out_label = |r: &crate::report::RuleReport, o: &crate::report::OutputReport| {
        format!(
            "rule=\"{}\",output=\"{}:{}:{}\"",
            r.rule.input, o.interface, o.destination, o.port
        )
    };
    metric(
        "mcast_rule_rx_packets_total",
        "counter",
        "Packets matched by a relay rule.",
        mcast
            .rules
            .iter()
            .map(|r| (rule_label(r), r.rx_packets))
            .collect(),
    );
    metric(
        "mcast_rule_rx_bytes_total",
        "counter",
        "Bytes matched by a relay rule.",
        mcast
            .rules
            .iter()
            .map(|r| (rule_label(r), r.rx_bytes))
            .collect(),
    );
    metric(
        "mcast_rule_drops_total",
        "counter",
        "Matched packets not relayed, by reason.",
        mcast
            .rules
            .iter()
            .flat_map(|r| {
                r.drops
                    .iter()
                    .map(move |(k, v)| (format!("{},reason=\"{k}\"", rule_label(r)), *v))
            })
            .collect(),
    );
    let per_output = |f: &dyn Fn(&crate::report::OutputReport) -> u64| {
        mcast
            .rules
            .iter()
            .flat_map(|r| r.outputs.iter().map(move |o| (out_label(r, o), f(o))))
            .collect::<Vec<_>>()
    };
    metric(
        "mcast_output_tx_packets_total",
        "counter",
        "Relayed copies sent, per rule output.",
        per_output(&|o| o.tx_packets),
    );
    metric(
        "mcast_output_tx_bytes_total",
        "counter",
        "Relayed bytes sent, per rule output.",
        per_output(&|o| o.tx_bytes),
    );
    metric(
        "mcast_output_drops_total",
        "counter",
        "Relayed copies lost, per rule output and reason.",
        mcast
            .rules
            .iter()
            .flat_map(|r| {
                r.outputs.iter().flat_map(move |o| {
                    o.drops
                        .iter()
                        .map(move |(k, v)| (format!("{},reason=\"{k}\"", out_label(r, o)), *v))
                })
            })
            .collect(),
    );
    out
}
