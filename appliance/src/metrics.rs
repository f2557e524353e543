//! Prometheus text endpoint (`GET /metrics`), on its own thread. What it
//! serves is the table [`FAMILIES`]: each family is a name, a type, a help
//! line and a function from one scrape's reports to labelled values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::bfd::SessionStatus;
use crate::report::tunnel::{ClassReport, PathReport, ShaperReport, TierReport, TunnelReport};
use crate::report::{
    McastReport, OutputReport, PortReport, PortStatsReport, RuleReport, StatsReport, StatsSource,
    WorkerReport,
};
use crate::stats::{CounterSnapshot, DropReason};

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

/// Everything one scrape reads, read once.
struct Scrape {
    ports: Vec<PortReport>,
    port_names: Vec<String>,
    workers: Vec<WorkerReport>,
    mgmt: CounterSnapshot,
    stats: StatsReport,
    mcast: McastReport,
    paths: Vec<PathReport>,
    classes: Vec<ClassReport>,
    /// Each peer's tunnel report (empty: no tunnel).
    tunnels: Vec<TunnelReport>,
}

/// Label sets and values of one family.
type Rows = Vec<(String, u64)>;

/// One metric family: its name (after `appliance_`), type, help and rows.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    rows: fn(&Scrape) -> Rows,
}

const fn counter(name: &'static str, help: &'static str, rows: fn(&Scrape) -> Rows) -> Family {
    Family {
        name,
        kind: "counter",
        help,
        rows,
    }
}

const fn gauge(name: &'static str, help: &'static str, rows: fn(&Scrape) -> Rows) -> Family {
    Family {
        name,
        kind: "gauge",
        help,
        rows,
    }
}

/// Every family `/metrics` serves, in order: a new one is one entry here.
const FAMILIES: &[Family] = &[
    counter(
        "port_rx_packets_total",
        "Packets received by the port (driver counter).",
        |s| per_port(s, |p| p.stats.ipackets),
    ),
    counter(
        "port_tx_packets_total",
        "Packets sent by the port (driver counter).",
        |s| per_port(s, |p| p.stats.opackets),
    ),
    counter("port_rx_bytes_total", "Bytes received by the port.", |s| {
        per_port(s, |p| p.stats.ibytes)
    }),
    counter("port_tx_bytes_total", "Bytes sent by the port.", |s| {
        per_port(s, |p| p.stats.obytes)
    }),
    counter(
        "port_rx_missed_total",
        "Packets the device dropped for lack of RX descriptors (af_packet: the kernel, on a full socket ring).",
        |s| per_port(s, |p| p.stats.imissed),
    ),
    counter(
        "port_rx_rollovers_total",
        "af_packet: packets the kernel's fanout moved to another worker's socket because their own was full.",
        |s| per_port(s, |p| p.stats.rollovers),
    ),
    counter("port_rx_errors_total", "Erroneous packets received.", |s| {
        per_port(s, |p| p.stats.ierrors)
    }),
    counter("port_tx_errors_total", "Failed transmissions.", |s| {
        per_port(s, |p| p.stats.oerrors)
    }),
    counter(
        "port_rx_offload_total",
        "af_packet: frames a Linux neighbour left with offloads pending, by what was done (csum_completed, gso_frames, gso_segments) or why they were dropped (drop_*).",
        offloads,
    ),
    counter(
        "port_rx_nombuf_total",
        "RX mbuf allocation failures.",
        |s| per_port(s, |p| p.stats.rx_nombuf),
    ),
    gauge("port_link_up", "1 if the link is up.", |s| {
        per_port(s, |p| u64::from(p.link_up))
    }),
    counter(
        "queue_rx_packets_total",
        "Packets received per RX queue (driver counter).",
        |s| per_queue(s, |q| &q.q_ipackets),
    ),
    counter(
        "queue_tx_packets_total",
        "Packets sent per TX queue (driver counter).",
        |s| per_queue(s, |q| &q.q_opackets),
    ),
    counter(
        "worker_rx_packets_total",
        "Packets a worker received, per port.",
        |s| per_worker_port(s, |c| &c.rx_packets),
    ),
    counter(
        "worker_tx_packets_total",
        "Packets a worker sent, per port.",
        |s| per_worker_port(s, |c| &c.tx_packets),
    ),
    counter(
        "worker_rx_bytes_total",
        "Bytes a worker received, per port.",
        |s| per_worker_port(s, |c| &c.rx_bytes),
    ),
    counter(
        "worker_tx_bytes_total",
        "Bytes a worker sent, per port.",
        |s| per_worker_port(s, |c| &c.tx_bytes),
    ),
    counter(
        "worker_punted_total",
        "Packets a worker handed to the slow path.",
        |s| per_worker(s, |c| c.punted),
    ),
    counter("worker_polls_total", "Poll loop iterations.", |s| {
        per_worker(s, |c| c.polls)
    }),
    counter(
        "worker_busy_polls_total",
        "Poll loop iterations that found packets.",
        |s| per_worker(s, |c| c.busy_polls),
    ),
    counter(
        "worker_idle_sleeps_total",
        "Sleeps of a worker whose queues were empty.",
        |s| per_worker(s, |c| c.idle_sleeps),
    ),
    counter(
        "worker_coalesce_sleeps_total",
        "Sleeps of a worker letting packets gather into a batch (idle.coalesce_frames).",
        |s| per_worker(s, |c| c.coalesce_sleeps),
    ),
    counter(
        "drops_total",
        "Packets dropped, by lcore and reason.",
        drops,
    ),
    counter(
        "mgmt_tx_packets_total",
        "Packets the management lcore sent, per port.",
        |s| per_port_index(s, &s.mgmt.tx_packets),
    ),
    counter("slowpath_events_total", "Slow-path events.", |s| {
        labelled("event", &s.stats.slowpath)
    }),
    gauge("mempool_in_use", "Mbufs taken from the pool.", |s| {
        single(s.stats.mempool.in_use)
    }),
    gauge("mempool_capacity", "Mbufs in the pool.", |s| {
        single(s.stats.mempool.capacity)
    }),
    gauge(
        "mempool_baseline_in_use",
        "Mbufs in use with no traffic (after port start).",
        |s| single(s.stats.mempool.baseline_in_use),
    ),
    gauge(
        "header_pool_in_use",
        "Fan-out header mbufs taken from their pool (0 when no copy is in flight).",
        |s| single(s.stats.header_pool.in_use),
    ),
    gauge("tables_version", "Version of the published tables.", |s| {
        single(s.stats.tables_version)
    }),
    counter(
        "mcast_rule_rx_packets_total",
        "Packets matched by a relay rule.",
        |s| per_rule(s, |r| r.rx_packets),
    ),
    counter(
        "mcast_rule_rx_bytes_total",
        "Bytes matched by a relay rule.",
        |s| per_rule(s, |r| r.rx_bytes),
    ),
    counter(
        "mcast_rule_drops_total",
        "Matched packets not relayed, by reason.",
        rule_drops,
    ),
    counter(
        "mcast_output_tx_packets_total",
        "Relayed copies sent, per rule output.",
        |s| per_output(s, |o| o.tx_packets),
    ),
    counter(
        "mcast_output_tx_bytes_total",
        "Relayed bytes sent, per rule output.",
        |s| per_output(s, |o| o.tx_bytes),
    ),
    counter(
        "mcast_output_drops_total",
        "Relayed copies lost, per rule output and reason.",
        output_drops,
    ),
    gauge("tunnel_path_up", "1 if the path is healthy (probes answered, carrier up).", |s| per_path(s, |p| u64::from(p.state.carries()))),
    gauge("tunnel_path_usable", "1 if the workers send on the path (healthy, not administratively down, next hop resolved).", |s| per_path(s, |p| u64::from(p.usable))),
    counter("tunnel_path_flaps_total", "Times the path went down.", |s| per_path(s, |p| p.flaps)),
    counter("tunnel_path_state_changes_total", "Times the path changed state (see show paths).", |s| per_path(s, |p| p.state_changes)),
    counter("tunnel_path_bfd_overrides_total", "Times BFD said Down while the path was the last usable one and the data plane showed it delivering, so it stayed up.", |s| per_path(s, |p| p.bfd_overrides)),
    gauge("tunnel_path_held_down", "1 while the path is kept out after flapping (RFC 5882 dampening).", |s| per_path(s, |p| u64::from(p.hold_down_secs.is_some()))),
    gauge("tunnel_path_bfd_up", "1 if the path's BFD session is Up (no row without BFD).", bfd_up),
    counter("tunnel_path_bfd_flaps_total", "Times the path's BFD session left Up.", |s| per_bfd(s, |b| b.flaps)),
    counter("tunnel_path_bfd_tx_packets_total", "BFD control packets sent on the path.", |s| per_bfd(s, |b| b.tx_packets)),
    counter("tunnel_path_bfd_rx_packets_total", "BFD control packets accepted on the path.", |s| per_bfd(s, |b| b.rx_packets)),
    counter("tunnel_bfd_discards_total", "BFD packets discarded, by RFC 5880 6.8.6 reason.", bfd_discards),
    counter("tunnel_path_tx_packets_total", "Tunnel packets sent on the path.", |s| per_path(s, |p| p.tx_packets)),
    counter("tunnel_path_tx_bytes_total", "Tunnel bytes sent on the path (outer frames).", |s| per_path(s, |p| p.tx_bytes)),
    counter("tunnel_path_rx_packets_total", "Tunnel packets received on the path.", |s| per_path(s, |p| p.rx_packets)),
    counter("tunnel_path_rx_bytes_total", "Tunnel bytes received on the path (outer frames).", |s| per_path(s, |p| p.rx_bytes)),
    counter("tunnel_path_drops_total", "Tunnel packets lost on the path, by reason.", path_drops),
    gauge("tunnel_path_rtt_microseconds", "Smoothed round trip of the path's probes.", |s| per_path(s, |p| u64::from(p.srtt_us))),
    gauge("tunnel_path_delay_microseconds", "Forward one-way delay relative to the fastest path.", |s| per_path(s, |p| u64::from(p.delay_us))),
    gauge("tunnel_path_queueing_microseconds", "Forward delay above the path's own base (its queue).", |s| per_path(s, |p| u64::from(p.queueing_us))),
    gauge("tunnel_path_jitter_microseconds", "Jitter of the forward delay.", |s| per_path(s, |p| u64::from(p.jitter_us))),
    gauge("tunnel_path_loss_ppm", "Probe loss over the last second, parts per million.", |s| per_path(s, |p| (p.loss * 1e6) as u64)),
    gauge("tunnel_path_rate_bits", "Effective rate the schedulers use (bit/s).", |s| per_path(s, |p| p.rate_bps)),
    gauge("tunnel_path_shaped_rate_bits", "Rate the path's shaper lets out (bit/s; no row when shaping is off).", |s| per_shaper(s, |sh| sh.rate_bps)),
    gauge("tunnel_path_shaper_backlog_microseconds", "What the path's shaper holds, in time at its rate.", |s| per_shaper(s, |sh| sh.backlog_us)),
    counter("tunnel_path_shaper_packets_total", "Packets that left the path's shaper, per tier.", |s| per_tier(s, |t| t.packets)),
    counter("tunnel_path_shaper_bytes_total", "Bytes that left the path's shaper, per tier (outer frames).", |s| per_tier(s, |t| t.bytes)),
    counter("tunnel_path_shaper_drops_total", "Packets the path's shaper dropped, per tier and reason (aqm: CoDel; overlimit: queue full).", shaper_drops),
    gauge("tunnel_path_shaper_queued_packets", "Packets waiting in the path's shaper, per tier.", |s| per_tier(s, |t| t.queued)),
    counter("tunnel_path_silence_overrides_total", "Times the peer's count stopped moving on the last usable path and it stayed up (for up to 1 s).", |s| per_path(s, |p| p.silence_overrides)),
    counter("tunnel_path_bfd_down_congested_total", "Times the path's BFD went Down while its own shaper's queue was full (congestion on our side).", |s| per_path(s, |p| p.bfd_down_congested)),
    counter("tunnel_path_endpoint_moves_total", "Times a learned path's peer endpoint moved (a NAT renumbered or remapped it).", |s| per_path(s, |p| p.endpoint_moves)),
    counter("tunnel_class_packets_total", "Packets that entered the tunnel, per traffic class.", |s| per_class(s, |c| c.packets)),
    counter("tunnel_class_bytes_total", "Bytes that entered the tunnel, per traffic class.", |s| per_class(s, |c| c.bytes)),
    counter("tunnel_class_copies_total", "Second copies sent by the redundant scheduler, per class.", |s| per_class(s, |c| c.copies)),
    counter("tunnel_class_no_path_total", "Packets with no usable path, per class.", |s| per_class(s, |c| c.no_path)),
    counter("tunnel_lane_events_total", "Reorder-buffer events per lane (see show tunnel).", lane_events),
    gauge("tunnel_lane_occupancy", "Packets a lane's reorder buffer holds now.", |s| per_lane(s, "occupancy")),
    gauge("tunnel_encrypted", "1 if the tunnel is encrypted, with the current session's cipher (none: no session yet).", encrypted),
    gauge("tunnel_key_id", "Key ID the tunnel's packets carry now (0: no session).", |s| tunnel_single(s, |t| u64::from(t.encryption.key_id))),
    gauge("tunnel_key_age_seconds", "Age of the session key in use (no row without one).", |s| tunnel_option(s, |t| t.encryption.key_age_secs.map(|a| a as u64))),
    gauge("tunnel_last_handshake_seconds", "Seconds since the last session with the peer formed (no row before the first).", |s| tunnel_option(s, |t| t.encryption.last_handshake_secs.map(|a| a as u64))),
    counter("tunnel_handshakes_total", "Handshake events: initiations_sent, initiations_answered, sessions, failed (refused messages), rate_limited, cookies_sent.", |s| s.tunnels.iter().flat_map(|t| labelled("event", &t.encryption.handshakes).into_iter().map(|(l, v)| (format!("{},{l}", peer_label(t)), v))).collect()),
];

/// A peer's label, on every series about one peer.
fn peer_label(t: &TunnelReport) -> String {
    format!("peer=\"{}\"", t.peer)
}

fn encrypted(s: &Scrape) -> Rows {
    s.tunnels
        .iter()
        .map(|t| {
            let e = &t.encryption;
            (
                format!(
                    "{},cipher=\"{}\"",
                    peer_label(t),
                    e.cipher.unwrap_or("none")
                ),
                u64::from(e.encrypted),
            )
        })
        .collect()
}

fn tunnel_single(s: &Scrape, f: fn(&TunnelReport) -> u64) -> Rows {
    s.tunnels.iter().map(|t| (peer_label(t), f(t))).collect()
}

fn tunnel_option(s: &Scrape, f: fn(&TunnelReport) -> Option<u64>) -> Rows {
    s.tunnels
        .iter()
        .filter_map(|t| Some((peer_label(t), f(t)?)))
        .collect()
}

/// The metrics text.
pub fn render(source: &StatsSource) -> String {
    render_scrape(&Scrape {
        ports: source.ports(),
        port_names: source.ports.iter().map(|p| p.name.clone()).collect(),
        workers: source.workers(),
        mgmt: source.mgmt.snapshot(),
        stats: source.stats(),
        mcast: source.mcast(None),
        paths: source.paths(),
        classes: source.classes(),
        tunnels: source.tunnels(),
    })
}

fn render_scrape(scrape: &Scrape) -> String {
    let mut out = String::new();
    for f in FAMILIES {
        let _ = writeln!(
            out,
            "# HELP appliance_{} {}\n# TYPE appliance_{} {}",
            f.name, f.help, f.name, f.kind
        );
        for (labels, v) in (f.rows)(scrape) {
            if labels.is_empty() {
                let _ = writeln!(out, "appliance_{} {v}", f.name);
            } else {
                let _ = writeln!(out, "appliance_{}{{{labels}}} {v}", f.name);
            }
        }
    }
    out
}

fn single(v: impl Into<u64>) -> Rows {
    vec![(String::new(), v.into())]
}

fn labelled(label: &str, values: &BTreeMap<&'static str, u64>) -> Rows {
    values
        .iter()
        .map(|(k, v)| (format!("{label}=\"{k}\""), *v))
        .collect()
}

fn per_port(s: &Scrape, f: fn(&PortReport) -> u64) -> Rows {
    s.ports
        .iter()
        .map(|p| (format!("port=\"{}\"", p.meta.name), f(p)))
        .collect()
}

fn offloads(s: &Scrape) -> Rows {
    s.ports
        .iter()
        .filter_map(|p| Some((&p.meta.name, p.offload?)))
        .flat_map(|(port, o)| {
            [
                ("csum_completed", o.csum_completed),
                ("gso_frames", o.gso_frames),
                ("gso_segments", o.gso_segments),
                ("drop_gso_unsupported", o.drop_gso_unsupported),
                ("drop_bad_offload", o.drop_bad_offload),
                ("drop_too_long", o.drop_too_long),
            ]
            .map(|(what, v)| (format!("port=\"{port}\",what=\"{what}\""), v))
        })
        .collect()
}

/// A per-port-index array (lcore counters) as rows per port name.
fn per_port_index(s: &Scrape, values: &[u64]) -> Rows {
    s.port_names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("port=\"{n}\""), values.get(i).copied().unwrap_or(0)))
        .collect()
}

fn per_queue(s: &Scrape, f: fn(&PortStatsReport) -> &Vec<u64>) -> Rows {
    s.ports
        .iter()
        .flat_map(|p| {
            f(&p.stats)
                .iter()
                .enumerate()
                .map(move |(q, v)| (format!("port=\"{}\",queue=\"{q}\"", p.meta.name), *v))
        })
        .collect()
}

fn per_worker(s: &Scrape, f: fn(&CounterSnapshot) -> u64) -> Rows {
    s.workers
        .iter()
        .map(|w| (format!("worker=\"{}\"", w.id), f(&w.counters)))
        .collect()
}

fn per_worker_port(s: &Scrape, f: fn(&CounterSnapshot) -> &Vec<u64>) -> Rows {
    s.workers
        .iter()
        .flat_map(|w| {
            per_port_index(s, f(&w.counters))
                .into_iter()
                .map(move |(port, v)| (format!("worker=\"{}\",{port}", w.id), v))
        })
        .collect()
}

/// Drops by lcore (each worker and `mgmt`) and reason.
fn drops(s: &Scrape) -> Rows {
    let lcores = s
        .workers
        .iter()
        .map(|w| (w.id.to_string(), &w.counters))
        .chain(std::iter::once(("mgmt".to_string(), &s.mgmt)));
    lcores
        .flat_map(|(id, c)| {
            DropReason::ALL.iter().map(move |r| {
                (
                    format!("worker=\"{id}\",reason=\"{}\"", r.name()),
                    c.drop_count(*r),
                )
            })
        })
        .collect()
}

/// A path's labels: its peer's name and its own (a path name is unique only
/// within its peer).
fn path_label(p: &PathReport) -> String {
    format!("peer=\"{}\",path=\"{}\"", p.peer, p.name)
}

fn per_path(s: &Scrape, f: fn(&PathReport) -> u64) -> Rows {
    s.paths.iter().map(|p| (path_label(p), f(p))).collect()
}

fn path_drops(s: &Scrape) -> Rows {
    s.paths
        .iter()
        .flat_map(|p| {
            p.drops
                .iter()
                .map(move |(k, v)| (format!("{},reason=\"{k}\"", path_label(p)), *v))
        })
        .collect()
}

fn per_shaper(s: &Scrape, f: fn(&ShaperReport) -> u64) -> Rows {
    s.paths
        .iter()
        .filter_map(|p| p.shaper.as_ref().map(|sh| (path_label(p), f(sh))))
        .collect()
}

fn per_tier(s: &Scrape, f: fn(&TierReport) -> u64) -> Rows {
    s.paths
        .iter()
        .filter_map(|p| p.shaper.as_ref().map(|sh| (p, sh)))
        .flat_map(|(p, sh)| {
            sh.tiers
                .iter()
                .map(move |t| (format!("{},tier=\"{}\"", path_label(p), t.tier), f(t)))
        })
        .collect()
}

fn shaper_drops(s: &Scrape) -> Rows {
    s.paths
        .iter()
        .filter_map(|p| p.shaper.as_ref().map(|sh| (p, sh)))
        .flat_map(|(p, sh)| {
            sh.tiers.iter().flat_map(move |t| {
                [("aqm", t.aqm_drops), ("overlimit", t.overlimit_drops)].map(|(why, v)| {
                    (
                        format!("{},tier=\"{}\",reason=\"{why}\"", path_label(p), t.tier),
                        v,
                    )
                })
            })
        })
        .collect()
}

fn per_bfd(s: &Scrape, f: fn(&SessionStatus) -> u64) -> Rows {
    s.paths
        .iter()
        .filter_map(|p| p.bfd.as_ref().map(|b| (path_label(p), f(b))))
        .collect()
}

fn bfd_up(s: &Scrape) -> Rows {
    per_bfd(s, |b| u64::from(b.local_state == "Up"))
}

fn bfd_discards(s: &Scrape) -> Rows {
    s.tunnels
        .iter()
        .flat_map(|t| {
            t.bfd_discards
                .iter()
                .map(move |(k, v)| (format!("{},reason=\"{k}\"", peer_label(t)), *v))
        })
        .collect()
}

fn per_class(s: &Scrape, f: fn(&ClassReport) -> u64) -> Rows {
    s.classes
        .iter()
        .map(|c| (format!("peer=\"{}\",class=\"{}\"", c.peer, c.name), f(c)))
        .collect()
}

fn per_lane(s: &Scrape, counter: &str) -> Rows {
    s.tunnels
        .iter()
        .flat_map(|t| t.lanes.iter().map(move |l| (t, l)))
        .map(|(t, l)| {
            (
                format!("{},lane=\"{}\"", peer_label(t), l.lane),
                l.counters.get(counter).copied().unwrap_or(0),
            )
        })
        .collect()
}

fn lane_events(s: &Scrape) -> Rows {
    s.tunnels
        .iter()
        .flat_map(|t| t.lanes.iter().map(move |l| (t, l)))
        .flat_map(|(t, l)| {
            l.counters
                .iter()
                .filter(|(k, _)| **k != "occupancy")
                .map(move |(k, v)| {
                    (
                        format!("{},lane=\"{}\",event=\"{k}\"", peer_label(t), l.lane),
                        *v,
                    )
                })
        })
        .collect()
}

fn rule_label(r: &RuleReport) -> String {
    format!("rule=\"{}\"", r.rule.input)
}

fn output_label(r: &RuleReport, o: &OutputReport) -> String {
    format!(
        "rule=\"{}\",output=\"{}:{}:{}\"",
        r.rule.input, o.interface, o.destination, o.port
    )
}

fn per_rule(s: &Scrape, f: fn(&RuleReport) -> u64) -> Rows {
    s.mcast
        .rules
        .iter()
        .map(|r| (rule_label(r), f(r)))
        .collect()
}

fn rule_drops(s: &Scrape) -> Rows {
    s.mcast
        .rules
        .iter()
        .flat_map(|r| {
            r.drops
                .iter()
                .map(move |(k, v)| (format!("{},reason=\"{k}\"", rule_label(r)), *v))
        })
        .collect()
}

fn per_output(s: &Scrape, f: fn(&OutputReport) -> u64) -> Rows {
    s.mcast
        .rules
        .iter()
        .flat_map(|r| r.outputs.iter().map(move |o| (output_label(r, o), f(o))))
        .collect()
}

fn output_drops(s: &Scrape) -> Rows {
    s.mcast
        .rules
        .iter()
        .flat_map(|r| {
            r.outputs.iter().flat_map(move |o| {
                o.drops
                    .iter()
                    .map(move |(k, v)| (format!("{},reason=\"{k}\"", output_label(r, o)), *v))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{MempoolReport, PortMeta};
    use crate::stats::RateReport;

    fn scrape() -> Scrape {
        let pool = || MempoolReport {
            in_use: 7,
            available: 1,
            capacity: 8,
            baseline_in_use: 6,
        };
        let mut mgmt = CounterSnapshot {
            tx_packets: vec![3, 4],
            drops: vec![0; DropReason::COUNT],
            ..Default::default()
        };
        mgmt.drops[DropReason::NoRoute as usize] = 2;
        let w0 = CounterSnapshot {
            rx_packets: vec![10],
            drops: vec![0; DropReason::COUNT],
            ..Default::default()
        };
        Scrape {
            ports: vec![PortReport {
                meta: PortMeta {
                    index: 0,
                    name: "lan".into(),
                    port_id: 0,
                    driver: "net_null".into(),
                    rx_queues: 1,
                    tx_queues: 2,
                },
                mac: String::new(),
                address: None,
                address6: None,
                link_local: None,
                link_up: true,
                speed_mbps: 0,
                stats: PortStatsReport {
                    ipackets: 5,
                    q_ipackets: vec![5],
                    ..PortStatsReport::default()
                },
                offload: None,
                rx_rate: RateReport::default(),
                tx_rate: RateReport::default(),
            }],
            port_names: vec!["lan".into(), "wan".into()],
            workers: vec![WorkerReport {
                id: 0,
                lcore: 1,
                rx_queues: vec![],
                rx_share: 1.0,
                counters: w0,
            }],
            mgmt,
            stats: StatsReport {
                tables_version: 9,
                rx_packets: vec![],
                tx_packets: vec![],
                rx_bytes: vec![],
                tx_bytes: vec![],
                rx_missed: vec![],
                rx_rollovers: vec![],
                punted: 0,
                drops: BTreeMap::new(),
                drops_total: 0,
                slowpath: BTreeMap::from([("arp_received", 1)]),
                mempool: pool(),
                header_pool: pool(),
            },
            mcast: McastReport {
                version: 9,
                rules: vec![],
            },
            paths: vec![],
            classes: vec![],
            tunnels: Vec::new(),
        }
    }

    #[test]
    fn families_render_as_prometheus_text() {
        let text = render_scrape(&scrape());
        for line in [
            "# HELP appliance_port_rx_packets_total Packets received by the port (driver counter).",
            "# TYPE appliance_port_rx_packets_total counter",
            "appliance_port_rx_packets_total{port=\"lan\"} 5",
            "appliance_port_link_up{port=\"lan\"} 1",
            "appliance_queue_rx_packets_total{port=\"lan\",queue=\"0\"} 5",
            "appliance_worker_rx_packets_total{worker=\"0\",port=\"lan\"} 10",
            "appliance_worker_rx_packets_total{worker=\"0\",port=\"wan\"} 0",
            "appliance_drops_total{worker=\"mgmt\",reason=\"no_route\"} 2",
            "appliance_mgmt_tx_packets_total{port=\"wan\"} 4",
            "appliance_slowpath_events_total{event=\"arp_received\"} 1",
            "# TYPE appliance_mempool_in_use gauge",
            "appliance_mempool_in_use 7",
            "appliance_tables_version 9",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn family_names_are_unique_and_counters_end_in_total() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        for f in FAMILIES {
            assert_eq!(
                f.kind == "counter",
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
    }

    /// The shipped alerting rules and dashboard name only metrics `/metrics` serves: a
    /// renamed family would otherwise leave an alert that can never fire.
    #[test]
    fn monitoring_files_use_only_served_metrics() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring");
        for file in ["prometheus/appliance.rules.yml", "grafana/appliance.json"] {
            let text = std::fs::read_to_string(root.join(file)).expect(file);
            let mut used = 0;
            for (i, _) in text.match_indices("appliance_") {
                // A metric name starts the token (not `job="appliance"` or a file name).
                if i > 0 && text.as_bytes()[i - 1].is_ascii_alphanumeric() {
                    continue;
                }
                let name: String = text[i + "appliance_".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name.is_empty() {
                    continue; // the prefix named in prose
                }
                assert!(
                    FAMILIES.iter().any(|f| f.name == name),
                    "{file} uses appliance_{name}, which /metrics does not serve"
                );
                used += 1;
            }
            assert!(used >= 5, "{file}: only {used} metrics");
        }
    }
}
