//! `appliancectl`: talk to a running appliance over its control socket.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use appliance::api::{AdminState, Request, Response, ShowWhat};
use appliance::config::mcast::{McastInputSpec, McastOutputSpec, McastRuleSpec};
use appliance::config::tunnel::{PeerConfig, Span};
use clap::{Parser, Subcommand};
use ipnet::IpNet;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(version, about = "Control a running appliance")]
struct Args {
    /// Control socket of the appliance.
    #[arg(
        long,
        short,
        default_value = "/run/appliance/appliance.sock",
        env = "APPLIANCE_SOCKET"
    )]
    socket: PathBuf,
    /// Print the raw JSON reply.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show state and counters.
    Show {
        /// What to show.
        what: ShowWhat,
    },
    /// Static routes.
    Route {
        #[command(subcommand)]
        op: RouteOp,
    },
    /// Multicast relay rules.
    Mcast {
        #[command(subcommand)]
        op: McastOp,
    },
    /// IGMP memberships the appliance holds on its input ports.
    Igmp,
    /// A tunnel peer: `peer show NAME` (its session, paths, lanes, classes).
    Peer {
        #[command(subcommand)]
        op: PeerOp,
    },
    /// Take a tunnel path out of every schedule (`path down a`), or bring it
    /// back (`path up a`).
    Path {
        /// down or up.
        state: AdminState,
        /// The path's name.
        name: String,
    },
    /// Read the profile, config and key files again and apply what changed (see the
    /// README); anything that cannot change while running is refused, naming the keys.
    Reload {
        /// Only say what would change, or why it would be refused; apply nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The log level: `log level debug`, or `log level` to read it.
    Log {
        /// The word `level`.
        #[arg(value_parser = ["level"])]
        level_kw: String,
        /// error, warn, info, debug, trace or off.
        level: Option<String>,
    },
    /// A path's BFD session.
    Bfd {
        #[command(subcommand)]
        op: BfdOp,
    },
}

#[derive(Debug, Subcommand)]
enum PeerOp {
    /// Everything about one peer.
    Show {
        /// The peer's name.
        name: String,
    },
    /// Add the peers of FILE (`[[peers]]` entries, written as `[[tunnel.peers]]`), all in
    /// one step: the others carry on untouched. Until the next reload, which makes the
    /// config file's peers those in force again (`show config` prints the running config).
    Add {
        /// A TOML file of `[[peers]]`; key file paths in it are relative to it.
        file: PathBuf,
    },
    /// Change the peers of FILE (each must exist; matched by name), all in one step.
    Set {
        /// A TOML file of `[[peers]]`, as for `peer add`.
        file: PathBuf,
    },
    /// Remove these peers, all in one step.
    Del {
        /// Their names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// What `peer add` and `peer set` read.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PeersFile {
    peers: Vec<PeerConfig>,
}

/// The peers of `file`, their key file paths made absolute (the appliance
/// reads them).
fn peers_of(file: &Path) -> Result<Vec<PeerConfig>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut peers = toml::from_str::<PeersFile>(&text)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .peers;
    let dir = std::fs::canonicalize(file)
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    for p in &mut peers {
        if let Some(k) = p.preshared_key.as_mut().filter(|k| k.is_relative()) {
            *k = dir.join(&*k);
        }
    }
    Ok(peers)
}

#[derive(Debug, Subcommand)]
enum BfdOp {
    /// Change the timers while the session runs (a Poll Sequence when Up):
    /// `bfd set a --tx 300ms --rx 300ms --mult 3`; what is left out keeps its value.
    Set {
        /// The path's name.
        path: String,
        /// Desired Min TX Interval.
        #[arg(long = "tx")]
        desired_min_tx: Option<Span>,
        /// Required Min RX Interval.
        #[arg(long = "rx")]
        required_min_rx: Option<Span>,
        /// Detect Mult.
        #[arg(long = "mult")]
        detect_mult: Option<u8>,
    },
}

#[derive(Debug, Subcommand)]
enum McastOp {
    /// Add a rule: `mcast add lan:239.1.1.1:5000 --out wan:239.10.1.1:6000 [--out ...]`.
    Add {
        /// Input: `interface:group:port`, `@source` for SSM.
        input: McastInputSpec,
        /// Output: `interface:destination:port[,source=keep|interface|A.B.C.D][,ttl=N|decrement][,dscp=N|keep]`.
        #[arg(long = "out", required = true)]
        outputs: Vec<McastOutputSpec>,
        /// Replace the rule for this input if there is one.
        #[arg(long)]
        replace: bool,
    },
    /// Remove the rule for an input: `mcast del lan:239.1.1.1:5000`.
    Del {
        /// Input: `interface:group:port[@source]`.
        input: McastInputSpec,
    },
    /// List the rules.
    List,
    /// Counters per rule and per output (one rule if an input is given).
    Show {
        /// Input: `interface:group:port[@source]`.
        input: Option<McastInputSpec>,
    },
}

#[derive(Debug, Subcommand)]
enum RouteOp {
    /// Add or replace: `route add 10.9.0.0/16 via 10.0.2.2` (or IPv6:
    /// `route add 2001:db8:9::/48 via 2001:db8:2::2`).
    Add {
        prefix: IpNet,
        /// The word `via`.
        #[arg(value_parser = ["via"])]
        via_kw: String,
        via: IpAddr,
    },
    /// Remove: `route del 10.9.0.0/16`.
    Del { prefix: IpNet },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let request = match args.cmd {
        Cmd::Show { what } => Request::Show { what },
        Cmd::Route {
            op: RouteOp::Add { prefix, via, .. },
        } => Request::RouteAdd { prefix, via },
        Cmd::Route {
            op: RouteOp::Del { prefix },
        } => Request::RouteDel { prefix },
        Cmd::Mcast { op } => match op {
            McastOp::Add {
                input,
                outputs,
                replace,
            } => Request::McastAdd {
                rule: McastRuleSpec { input, outputs },
                replace,
            },
            McastOp::Del { input } => Request::McastDel { input },
            McastOp::List => Request::McastList {},
            McastOp::Show { input } => Request::McastShow { input },
        },
        Cmd::Igmp => Request::IgmpShow {},
        Cmd::Peer { op } => match op {
            PeerOp::Show { name } => Request::PeerShow { name },
            PeerOp::Del { names } => Request::PeerDel { names },
            PeerOp::Add { ref file } | PeerOp::Set { ref file } => {
                let replace = matches!(op, PeerOp::Set { .. });
                match peers_of(file) {
                    Ok(peers) => Request::PeerAdd { peers, replace },
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        },
        Cmd::Path { state, name } => Request::PathAdmin { path: name, state },
        Cmd::Log { level, .. } => Request::LogLevel { level },
        Cmd::Reload { dry_run } => Request::Reload { dry_run },
        Cmd::Bfd {
            op:
                BfdOp::Set {
                    path,
                    desired_min_tx,
                    required_min_rx,
                    detect_mult,
                },
        } => Request::BfdSet {
            path,
            desired_min_tx,
            required_min_rx,
            detect_mult,
        },
    };
    let response = match call(&args.socket, &request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}: {e}", args.socket.display());
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&response).unwrap_or_default()
        );
    } else if let Some(err) = &response.error {
        eprintln!("error: {err}");
    } else if let Some(data) = &response.data {
        print!("{}", render(&request, data));
    }
    if response.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn call(socket: &PathBuf, request: &Request) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    serde_json::from_str(&reply).map_err(std::io::Error::other)
}

/// A table with right-aligned numbers.
/// `show ports`: one row per port.
fn ports_table(d: &Value) -> String {
    table(
        &[
            "port",
            "driver",
            "mac",
            "address",
            "address6",
            "link",
            "rxq",
            "txq",
            "rx-pkts",
            "tx-pkts",
            "rx-pps",
            "rx-rate",
            "tx-pps",
            "tx-rate",
            "rx-missed",
            "rollovers",
            "rx-nombuf",
            "tx-errors",
        ],
        arr(d)
            .iter()
            .map(|p| {
                vec![
                    s(&p["name"]),
                    s(&p["driver"]),
                    s(&p["mac"]),
                    s(&p["address"]),
                    s(&p["address6"]),
                    if p["link_up"].as_bool() == Some(true) {
                        "up".into()
                    } else {
                        "down".into()
                    },
                    s(&p["rx_queues"]),
                    s(&p["tx_queues"]),
                    s(&p["stats"]["ipackets"]),
                    s(&p["stats"]["opackets"]),
                    s(&p["rx_rate"]["pps"]),
                    bits_per_second(&p["rx_rate"]["bps"]),
                    s(&p["tx_rate"]["pps"]),
                    bits_per_second(&p["tx_rate"]["bps"]),
                    s(&p["stats"]["imissed"]),
                    s(&p["stats"]["rollovers"]),
                    s(&p["stats"]["rx_nombuf"]),
                    s(&p["stats"]["oerrors"]),
                ]
            })
            .collect(),
    )
}

/// `show ports`, for af_packet ports: what was done with the offloads a
/// Linux neighbour left pending, and what was refused.
fn offloads_table(d: &Value) -> String {
    let rows: Vec<Vec<String>> = arr(d)
        .iter()
        .filter(|p| p["offload"].is_object())
        .map(|p| {
            let o = &p["offload"];
            vec![
                s(&p["name"]),
                s(&o["csum_completed"]),
                s(&o["gso_frames"]),
                s(&o["gso_segments"]),
                s(&o["drop_gso_unsupported"]),
                s(&o["drop_bad_offload"]),
                s(&o["drop_too_long"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    "\n".to_string()
        + &table(
            &[
                "port",
                "csum-completed",
                "gso-frames",
                "gso-segments",
                "drop-gso-unsupported",
                "drop-bad-offload",
                "drop-too-long",
            ],
            rows,
        )
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if c.parse::<f64>().is_ok() {
                    format!("{c:>width$}", width = w[i])
                } else {
                    format!("{c:<width$}", width = w[i])
                }
            })
            .collect();
        out.push_str(s.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.iter().map(|h| h.to_string()).collect(), &mut out);
    for r in rows {
        line(r, &mut out);
    }
    out
}

/// The elements of a JSON array (none if it is not one).
fn arr(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// What a reload or a peer change changed (or would, `dry_run`).
fn changes(d: &Value, dry_run: bool) -> String {
    let changes = arr(&d["changes"]);
    let (none, some) = if dry_run {
        ("nothing would change", "would change")
    } else {
        ("ok, nothing changed", "ok, changes")
    };
    if changes.is_empty() {
        format!("{none}\n")
    } else {
        let mut out = format!("{some} ({}):\n", changes.len());
        for c in changes {
            out.push_str(&format!("  {}\n", c.as_str().unwrap_or_default()));
        }
        out
    }
}

fn render(request: &Request, d: &Value) -> String {
    match request {
        Request::Show {
            what: ShowWhat::Ports,
        } => ports_table(d) + &offloads_table(d),
        Request::Show {
            what: ShowWhat::Workers,
        } => table(
            &[
                "worker",
                "lcore",
                "rx-queues",
                "rx-pkts",
                "rx-share",
                "tx-pkts",
                "punted",
                "drops",
                "busy-polls",
                "polls",
                "idle-sleeps",
                "coalesce-sleeps",
            ],
            arr(d)
                .iter()
                .map(|w| {
                    let c = &w["counters"];
                    let sum = |k: &str| {
                        arr(&c[k])
                            .iter()
                            .filter_map(Value::as_u64)
                            .sum::<u64>()
                            .to_string()
                    };
                    vec![
                        s(&w["id"]),
                        s(&w["lcore"]),
                        arr(&w["rx_queues"])
                            .iter()
                            .map(s)
                            .collect::<Vec<_>>()
                            .join(","),
                        sum("rx_packets"),
                        format!("{:.1}%", w["rx_share"].as_f64().unwrap_or(0.0) * 100.0),
                        sum("tx_packets"),
                        s(&c["punted"]),
                        sum("drops"),
                        s(&c["busy_polls"]),
                        s(&c["polls"]),
                        s(&c["idle_sleeps"]),
                        s(&c["coalesce_sleeps"]),
                    ]
                })
                .collect(),
        ),
        Request::Show {
            what: ShowWhat::Stats,
        } => {
            let mut out = format!("tables version {}\n\n", s(&d["tables_version"]));
            let ports = arr(&d["rx_packets"]).len();
            out += &table(
                &["port", "rx-pkts", "tx-pkts", "rx-bytes", "tx-bytes"],
                (0..ports)
                    .map(|i| {
                        vec![
                            i.to_string(),
                            s(&d["rx_packets"][i]),
                            s(&d["tx_packets"][i]),
                            s(&d["rx_bytes"][i]),
                            s(&d["tx_bytes"][i]),
                        ]
                    })
                    .collect(),
            );
            out += &format!("\npunted to slow path: {}\n\n", s(&d["punted"]));
            let obj = |v: &Value| v.as_object().cloned().unwrap_or_default();
            out += &table(
                &["drop reason", "packets"],
                obj(&d["drops"])
                    .iter()
                    .map(|(k, v)| vec![k.clone(), s(v)])
                    .collect(),
            );
            out += &format!("{:<24}{:>9}\n\n", "total", s(&d["drops_total"]));
            out += &table(
                &["slow path", "events"],
                obj(&d["slowpath"])
                    .iter()
                    .map(|(k, v)| vec![k.clone(), s(v)])
                    .collect(),
            );
            let m = &d["mempool"];
            out += &format!(
                "\nmempool: {} in use of {} (baseline {})\n",
                s(&m["in_use"]),
                s(&m["capacity"]),
                s(&m["baseline_in_use"])
            );
            let h = &d["header_pool"];
            out += &format!(
                "fan-out header pool: {} in use of {}\n",
                s(&h["in_use"]),
                s(&h["capacity"])
            );
            out
        }
        Request::Show {
            what: ShowWhat::Neighbors,
        } => table(
            &["address", "mac", "interface"],
            arr(&d["neighbors"])
                .iter()
                .map(|n| vec![s(&n["address"]), s(&n["mac"]), s(&n["interface"])])
                .collect(),
        ),
        Request::Show {
            what: ShowWhat::Routes,
        } => table(
            &["prefix", "via", "interface", "kind"],
            arr(&d["routes"])
                .iter()
                .map(|r| {
                    vec![
                        s(&r["prefix"]),
                        s(&r["via"]),
                        s(&r["interface"]),
                        s(&r["kind"]),
                    ]
                })
                .collect(),
        ),
        Request::Show {
            what: ShowWhat::Peers,
        } => table(
            &[
                "peer",
                "session",
                "handshake",
                "paths",
                "tx",
                "rx",
                "tx rate",
                "rx rate",
                "inner src drops",
            ],
            arr(d)
                .iter()
                .map(|p| {
                    vec![
                        s(&p["name"]),
                        s(&p["session"]),
                        p["handshake_age_secs"]
                            .as_f64()
                            .map_or("-".into(), |a| format!("{a:.0}s ago")),
                        format!("{}/{}", s(&p["paths_usable"]), s(&p["paths"])),
                        s(&p["tx_packets"]),
                        s(&p["rx_packets"]),
                        bits_per_second(&p["tx_rate"]["bps"]),
                        bits_per_second(&p["rx_rate"]["bps"]),
                        s(&p["inner_source_drops"]),
                    ]
                })
                .collect(),
        ),
        Request::Show {
            what: ShowWhat::Paths,
        } => show_paths(d),
        Request::Show {
            what: ShowWhat::Classes,
        } => table(
            &[
                "class",
                "scheduler",
                "match",
                "packets",
                "bytes",
                "pps",
                "rate",
                "copies",
                "no-path",
            ],
            arr(d)
                .iter()
                .map(|c| {
                    vec![
                        s(&c["name"]),
                        s(&c["scheduler"]),
                        s(&c["matches"]),
                        s(&c["packets"]),
                        s(&c["bytes"]),
                        s(&c["rate"]["pps"]),
                        bits_per_second(&c["rate"]["bps"]),
                        s(&c["copies"]),
                        s(&c["no_path"]),
                    ]
                })
                .collect(),
        ),
        Request::Show {
            what: ShowWhat::Tunnel,
        } => show_tunnel(d),
        Request::PeerShow { .. } => {
            let classes: Vec<String> = arr(&d["classes"])
                .iter()
                .map(|c| format!("{} ({})", s(&c["name"]), s(&c["scheduler"])))
                .collect();
            format!(
                "peer {}: session {}, paths {}/{}, prefixes {}\nclasses: {}\n",
                s(&d["peer"]["name"]),
                s(&d["peer"]["session"]),
                s(&d["peer"]["paths_usable"]),
                s(&d["peer"]["paths"]),
                arr(&d["peer"]["prefixes"])
                    .iter()
                    .map(s)
                    .collect::<Vec<_>>()
                    .join(", "),
                classes.join(", ")
            ) + &show_tunnel(&d["tunnel"])
                + &show_paths(&d["paths"])
        }
        Request::Show {
            what: ShowWhat::Config,
        } => d["config"].as_str().unwrap_or_default().to_string(),
        Request::LogLevel { .. } => format!("log level {}\n", s(&d["level"])),
        Request::PeerAdd { .. } | Request::PeerDel { .. } | Request::Reload { dry_run: false } => {
            changes(d, false)
        }
        Request::Reload { dry_run: true } => changes(d, true),
        Request::BfdSet { path, .. } => {
            let b = &d["bfd"];
            format!(
                "ok, path {path}: desired min TX {} µs, required min RX {} µs, detect mult {}{}\n",
                s(&b["desired_min_tx_us"]),
                s(&b["required_min_rx_us"]),
                s(&b["detect_mult"]),
                if b["poll_in_progress"].as_bool() == Some(true) {
                    " (Poll Sequence under way)"
                } else {
                    ""
                }
            )
        }
        Request::PathAdmin { path, .. } => format!(
            "ok, path {path} administratively {}\n",
            if d["admin_up"].as_bool() == Some(true) {
                "up"
            } else {
                "down"
            }
        ),
        Request::RouteAdd { .. }
        | Request::RouteDel { .. }
        | Request::McastAdd { .. }
        | Request::McastDel { .. } => {
            format!("ok, tables version {}\n", s(&d["version"]))
        }
        Request::McastList {} => {
            let mut rows = Vec::new();
            for r in arr(&d["rules"]) {
                let input = rule_input(&r["input"]);
                for (k, o) in arr(&r["outputs"]).iter().enumerate() {
                    rows.push(vec![
                        if k == 0 { input.clone() } else { String::new() },
                        format!(
                            "{}:{}:{}",
                            s(&o["interface"]),
                            s(&o["destination"]),
                            s(&o["port"])
                        ),
                        s(&o["source"]),
                        s(&o["ttl"]),
                        s(&o["dscp"]),
                    ]);
                }
            }
            format!("tables version {}\n", s(&d["version"]))
                + &table(&["input", "output", "source", "ttl", "dscp"], rows)
        }
        Request::McastShow { .. } => {
            let mut rows = Vec::new();
            let drops = |v: &Value| {
                v.as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                            .map(|(k, n)| format!("{k}={n}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            for r in arr(&d["rules"]) {
                rows.push(vec![
                    rule_input(&r["rule"]["input"]),
                    "(in)".into(),
                    s(&r["rx_packets"]),
                    s(&r["rx_bytes"]),
                    s(&r["rx_rate"]["pps"]),
                    bits_per_second(&r["rx_rate"]["bps"]),
                    drops(&r["drops"]),
                ]);
                for o in arr(&r["outputs"]) {
                    rows.push(vec![
                        String::new(),
                        format!(
                            "{}:{}:{}",
                            s(&o["interface"]),
                            s(&o["destination"]),
                            s(&o["port"])
                        ),
                        s(&o["tx_packets"]),
                        s(&o["tx_bytes"]),
                        s(&o["tx_rate"]["pps"]),
                        bits_per_second(&o["tx_rate"]["bps"]),
                        drops(&o["drops"]),
                    ]);
                }
            }
            format!("tables version {}\n", s(&d["version"]))
                + &table(
                    &["rule", "output", "packets", "bytes", "pps", "rate", "drops"],
                    rows,
                )
        }
        Request::IgmpShow {} => {
            let mut rows = Vec::new();
            for p in arr(&d["ports"]) {
                let querier = match (p["querier"].as_str(), p["querier_version"].as_u64()) {
                    (Some(q), Some(v)) => format!("{q} (v{v})"),
                    _ => "-".into(),
                };
                let groups = arr(&p["groups"]);
                if groups.is_empty() {
                    rows.push(vec![
                        s(&p["interface"]),
                        s(&p["mode"]),
                        querier.clone(),
                        "-".into(),
                        String::new(),
                    ]);
                }
                for (k, g) in groups.iter().enumerate() {
                    let sources = arr(&g["sources"])
                        .iter()
                        .map(s)
                        .collect::<Vec<_>>()
                        .join(",");
                    let first = k == 0;
                    rows.push(vec![
                        if first {
                            s(&p["interface"])
                        } else {
                            String::new()
                        },
                        if first { s(&p["mode"]) } else { String::new() },
                        if first {
                            querier.clone()
                        } else {
                            String::new()
                        },
                        s(&g["group"]),
                        format!("{}{{{sources}}}", s(&g["filter"])),
                    ]);
                }
            }
            table(&["interface", "mode", "querier", "group", "filter"], rows)
        }
    }
}

/// A path as `show paths` names it: `peer/path` when the tunnel lists its
/// peers, the path's name for the one peer of a two-site tunnel.
fn path_label(p: &Value) -> String {
    match p["peer"].as_str() {
        Some(peer) if peer != appliance::config::tunnel::ONE_PEER_NAME => {
            format!("{peer}/{}", s(&p["name"]))
        }
        _ => s(&p["name"]),
    }
}

/// `show paths`: one row per path with its state, delays and rates, then
/// one per BFD session with its states and negotiated timers.
fn show_paths(d: &Value) -> String {
    let arr = d.as_array().cloned().unwrap_or_default();
    let ms = |v: &Value| match v.as_u64() {
        Some(us) => format!("{:.1}", us as f64 / 1000.0),
        None => "-".into(),
    };
    table(
        &[
            "path",
            "iface",
            "remote",
            "state",
            "for",
            "rtt-ms",
            "delay-ms",
            "queue-ms",
            "jitter-ms",
            "loss",
            "flaps",
            "bfd",
            "rate",
            "tx-pps",
            "tx-rate",
            "rx-pps",
            "rx-rate",
        ],
        arr.iter()
            .map(|p| {
                let mut state = s(&p["state"]);
                if p["admin_down"].as_bool() == Some(true) {
                    state = format!("admin-down ({state})");
                } else if p["resolved"].as_bool() == Some(false) {
                    state = format!("{state}, unresolved");
                }
                if let Some(left) = p["hold_down_secs"].as_f64() {
                    state = format!("{state} ({left:.1}s left)");
                }
                let bfd = if p["bfd"].is_object() {
                    s(&p["bfd"]["local_state"]).to_lowercase()
                } else {
                    "off".into()
                };
                vec![
                    format!("{} ({})", path_label(p), s(&p["id"])),
                    s(&p["interface"]),
                    s(&p["remote"]),
                    state,
                    format!("{:.1}s", p["for_secs"].as_f64().unwrap_or(0.0)),
                    ms(&p["srtt_us"]),
                    ms(&p["delay_us"]),
                    ms(&p["queueing_us"]),
                    ms(&p["jitter_us"]),
                    format!("{:.1}%", p["loss"].as_f64().unwrap_or(0.0) * 100.0),
                    s(&p["flaps"]),
                    bfd,
                    bits_per_second(&p["rate_bps"]),
                    s(&p["tx_rate"]["pps"]),
                    bits_per_second(&p["tx_rate"]["bps"]),
                    s(&p["rx_rate"]["pps"]),
                    bits_per_second(&p["rx_rate"]["bps"]),
                ]
            })
            .collect(),
    ) + &show_shapers(&arr)
        + &show_bfd(&arr)
}

/// The shaper part of `show paths`: per path and tier what left, what
/// waits and what was dropped.
fn show_shapers(paths: &[Value]) -> String {
    let rows: Vec<Vec<String>> = paths
        .iter()
        .filter(|p| p["shaper"].is_object())
        .flat_map(|p| {
            let sh = &p["shaper"];
            let name = path_label(p);
            let rate = bits_per_second(&sh["rate_bps"]);
            let backlog = format!(
                "{:.1}",
                sh["backlog_us"].as_u64().unwrap_or(0) as f64 / 1000.0
            );
            sh["tiers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    vec![
                        name.clone(),
                        rate.clone(),
                        backlog.clone(),
                        s(&t["tier"]),
                        s(&t["packets"]),
                        s(&t["queued"]),
                        s(&t["aqm_drops"]),
                        s(&t["overlimit_drops"]),
                    ]
                })
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    "\n".to_string()
        + &table(
            &[
                "shaper",
                "rate",
                "backlog-ms",
                "tier",
                "sent",
                "queued",
                "aqm-drops",
                "full-drops",
            ],
            rows,
        )
}

/// The BFD part of `show paths`, in the terms of FRR's `show bfd peers`.
fn show_bfd(paths: &[Value]) -> String {
    let ms = |v: &Value| format!("{}ms", v.as_u64().unwrap_or(0) / 1000);
    let rows: Vec<Vec<String>> = paths
        .iter()
        .filter(|p| p["bfd"].is_object())
        .map(|p| {
            let b = &p["bfd"];
            vec![
                path_label(p),
                format!("{}/{}", s(&b["local_state"]), s(&b["remote_state"])),
                format!("{}/{}", s(&b["local_diag"]), s(&b["remote_diag"])),
                format!(
                    "{}/{}",
                    s(&b["local_discriminator"]),
                    s(&b["remote_discriminator"])
                ),
                if b["multihop"].as_bool() == Some(true) {
                    "multihop".into()
                } else {
                    "single-hop".into()
                },
                format!(
                    "{}/{}x{}",
                    ms(&b["desired_min_tx_us"]),
                    ms(&b["required_min_rx_us"]),
                    s(&b["detect_mult"])
                ),
                format!(
                    "{}/{}x{}",
                    ms(&b["remote_desired_min_tx_us"]),
                    ms(&b["remote_required_min_rx_us"]),
                    s(&b["remote_detect_mult"])
                ),
                ms(&b["tx_interval_us"]),
                ms(&b["detection_time_us"]),
                s(&b["flaps"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    "\n".to_string()
        + &table(
            &[
                "bfd",
                "state local/remote",
                "diag local/remote",
                "discr local/remote",
                "mode",
                "tx/rx x mult",
                "peer tx/rx x mult",
                "tx-every",
                "detect",
                "flaps",
            ],
            rows,
        )
}

/// `show tunnel`: the endpoints, totals, reorder counters and tunnel drops.
fn show_tunnel(d: &Value) -> String {
    let obj = |v: &Value| v.as_object().cloned().unwrap_or_default();
    let e = &d["encryption"];
    let secs = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.0} s"));
    let crypto = if e["encrypted"].as_bool() == Some(true) {
        format!(
            "encrypted: {} (preferred {}, CPU AES instructions {}), key id {}, key age {}, last handshake {} ago\n",
            e["cipher"].as_str().unwrap_or("no session yet"),
            s(&e["preferred"]),
            if e["hardware_aes"].as_bool() == Some(true) { "yes" } else { "no" },
            s(&e["key_id"]),
            secs(&e["key_age_secs"]),
            secs(&e["last_handshake_secs"]),
        ) + &format!(
            "handshakes: {}\n",
            obj(&e["handshakes"])
                .iter()
                .map(|(k, v)| format!("{k} {}", s(v)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        "IN CLEAR: encryption = \"none\" (anyone on a path can read, inject and replay)\n"
            .to_string()
    };
    let mut out = crypto + &format!(
        "udp port {}, epoch {}, inner MTU {}, prefixes {}\npaths usable {} of {}; packets sent {}, received {}\n\n",
        s(&d["port"]),
        s(&d["epoch"]),
        s(&d["inner_mtu"]),
        d["prefixes"]
            .as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        s(&d["paths_usable"]),
        s(&d["paths"]),
        s(&d["tx_packets"]),
        s(&d["rx_packets"]),
    );
    out += &table(
        &["reorder (all lanes)", "packets"],
        obj(&d["reorder"])
            .iter()
            .map(|(k, v)| vec![k.clone(), s(v)])
            .collect(),
    );
    out += "\n";
    out += &table(
        &["tunnel drop reason", "packets"],
        obj(&d["drops"])
            .iter()
            .map(|(k, v)| vec![k.clone(), s(v)])
            .collect(),
    );
    out += "\n";
    out += &table(
        &["bfd discard reason", "packets"],
        obj(&d["bfd_discards"])
            .iter()
            .map(|(k, v)| vec![k.clone(), s(v)])
            .collect(),
    );
    out
}

/// A bit rate with a unit, as interface rates are read: `0`, `840.0 kbit/s`, `24.6 Mbit/s`.
fn bits_per_second(v: &Value) -> String {
    let Some(b) = v.as_u64() else {
        return "-".into();
    };
    let b = b as f64;
    match b {
        b if b >= 1e9 => format!("{:.2} Gbit/s", b / 1e9),
        b if b >= 1e6 => format!("{:.1} Mbit/s", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kbit/s", b / 1e3),
        b => format!("{b:.0} bit/s"),
    }
}

fn rule_input(i: &Value) -> String {
    let mut t = format!(
        "{}:{}:{}",
        s(&i["interface"]),
        s(&i["group"]),
        s(&i["port"])
    );
    if let Some(src) = i["source"].as_str() {
        t += &format!("@{src}");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mcast_show_has_totals_and_rates_per_rule_and_output() {
        let reply = json!({
            "version": 7,
            "rules": [{
                "rule": {"input": {"interface": "lan", "group": "239.1.1.1", "port": 5000}},
                "rx_packets": 9000, "rx_bytes": 9_216_000,
                "rx_rate": {"pps": 3000, "bps": 24_576_000},
                "drops": {"ip_fragment": 0, "ip_options": 2},
                "outputs": [{
                    "interface": "wan", "destination": "239.10.1.1", "port": 6000,
                    "tx_packets": 8998, "tx_bytes": 9_213_952,
                    "tx_rate": {"pps": 0, "bps": 0},
                    "drops": {"tx_full": 0}
                }]
            }]
        });
        let text = render(&Request::McastShow { input: None }, &reply);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "tables version 7");
        let header: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            header,
            ["rule", "output", "packets", "bytes", "pps", "rate", "drops"]
        );
        assert!(lines[2].contains("9000") && lines[2].contains("3000"));
        assert!(lines[2].contains("24.6 Mbit/s") && lines[2].ends_with("ip_options=2"));
        assert!(lines[3].contains("wan:239.10.1.1:6000") && lines[3].contains("0 bit/s"));
    }

    #[test]
    fn bit_rates_read_with_a_unit() {
        let b = |n: u64| bits_per_second(&json!(n));
        assert_eq!(b(0), "0 bit/s");
        assert_eq!(b(840_000), "840.0 kbit/s");
        assert_eq!(b(24_576_000), "24.6 Mbit/s");
        assert_eq!(b(1_250_000_000), "1.25 Gbit/s");
        assert_eq!(bits_per_second(&Value::Null), "-");
    }
}
