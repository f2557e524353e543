//! The scenario file: which topology, which WAN link profiles, which systems to compare
//! (the rows), what traffic runs, and which faults happen when. Parsing is strict: an unknown
//! key, a wrong type or an inconsistent value is an error naming the file, the key and what
//! was expected, e.g.
//!
//! ```text
//! scenarios/failover.toml: key `variants[1].events[0].link`: one of the [[links]] names ["a", "b"], not "c"
//! ```
//!
//! The format (every shipped file in `scenarios/` is commented):
//!
//! ```toml
//! name = "failover"                 # output folder docs/benchmarks/<name>/ ([a-z0-9-])
//! description = "..."               # first paragraph of the README
//! topology = "sites"                # sites (two sites, WAN links via the emulator) | relay
//! wan = "emulated"                  # sites: links through the emulator (default) | "direct"
//! systems = ["linux-single", "linux-ecmp-vxlan", "linux-mptcp", "appliance-wlb"]
//! notes = ["..."]                   # optional lines copied to the README
//!
//! [[links]]                         # sites only, in order: link 0, link 1, ...
//! name = "a"
//! both = { rate = "300mbit", delay = "10ms", queue = "100ms" }   # or a_to_b / b_to_a
//!
//! [tcp]                             # exactly one of [tcp] [udp_sweep] [mcast] [zero_loss]
//! parallel = 4
//! duration = "60s"
//! interval = "0.5s"
//! settle = "5s"
//!
//! [[variants]]                      # optional; or top-level `events = [...]`
//! name = "link-down"
//! events = [ { at = "20s", link = "a", action = "down" },
//!            { at = "40s", link = "a", action = "up" } ]
//! ```
//!
//! Events are the WAN emulator's (`up`, `down`, `blackhole` with an optional `direction`,
//! `set` with `params`), timed from the start of the traffic.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::systems::System;
use crate::wanem::{Action, DirParams, Dur, Event, Rate};

/// A problem in a scenario file: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: PathBuf,
    /// The key's path, like `tcp.parallel` or `variants[0].events[1].at`; `-` for the file.
    pub key: String,
    pub expected: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: key `{}`: {}",
            self.file.display(),
            self.key,
            self.expected
        )
    }
}

impl std::error::Error for SpecError {}

/// Which topology a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopologyKind {
    /// host A — site A — N WAN links through the emulator — site B — host B.
    Sites,
    /// generator — switch — relay — switch — sink (two multicast segments).
    Relay,
}

/// What the `sites` topology's WAN links are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WanKind {
    /// Through the WAN emulator, with the links' rate, delay, queue and faults.
    #[default]
    Emulated,
    /// A plain veth pair from site A to site B per link: no emulator, no rate limit, no delay,
    /// no faults. What a system forwards when the machine is the only limit.
    Direct,
}

/// One WAN link of the `sites` topology and its emulated behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub both: Option<DirParams>,
    /// Site A to site B (the direction of the TCP and UDP data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_to_b: Option<DirParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_to_a: Option<DirParams>,
}

impl LinkSpec {
    /// Parameters of direction `d` (0 = a-to-b).
    pub fn dir(&self, d: usize) -> DirParams {
        crate::wanem::config::dir_params(self.both, self.a_to_b, self.b_to_a, d)
    }
}

fn default_parallel() -> u32 {
    4
}
fn default_interval() -> Dur {
    Dur(Duration::from_millis(500))
}
fn one() -> u32 {
    1
}

/// iperf3 TCP from host A to host B for a fixed time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// Parallel streams (`iperf3 -P`).
    #[serde(default = "default_parallel")]
    pub parallel: u32,
    pub duration: Dur,
    /// Reporting interval (`iperf3 -i`).
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Left out of the mean throughput (slow start).
    #[serde(default)]
    pub settle: Dur,
    /// TCP congestion control of the test's sockets on both ends (`iperf3 -C`, which MPTCP
    /// passes on to its subflows); absent: the kernel's default, which on this machine is
    /// bbr. Per socket because a child namespace may only default to a congestion control
    /// listed in `net.ipv4.tcp_allowed_congestion_control` (here reno and bbr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub congestion: Option<String>,
    /// A sequence-stamped UDP probe stream from host A to host B at this interval beside
    /// the transfer, for the handoff metrics (the longest gap, T-latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_interval: Option<Dur>,
    /// Appliance rows: sample both appliances this often (usable paths, `tunnel_no_path`
    /// drops, BFD flaps per path, resident memory), for a per-fault table and memory over
    /// time (the soak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_interval: Option<Dur>,
}

/// iperf3 UDP at rising offered rates, for each payload size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpSweepSpec {
    /// UDP payload bytes (`iperf3 -l`).
    pub sizes: Vec<u32>,
    /// Total offered rates, split evenly over the parallel streams.
    pub rates: Vec<Rate>,
    /// Time per step.
    pub step: Dur,
    #[serde(default = "one")]
    pub parallel: u32,
}

/// `mcast-gen` streams through the relay for a fixed time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McastSpec {
    pub streams: u32,
    /// Datagrams per second of each stream.
    pub pps: f64,
    /// UDP payload bytes.
    pub size: u32,
    pub duration: Dur,
    /// Outputs per input stream.
    #[serde(default = "one")]
    pub fanout: u32,
}

/// One configuration of the zero-loss search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroLossCase {
    pub streams: u32,
    #[serde(default = "one")]
    pub fanout: u32,
}

fn default_factor() -> f64 {
    2.0
}
fn default_refine() -> u32 {
    3
}

/// The highest input rate at which the sinks see every packet: rising steps (× `factor`
/// from `start_pps` up to `max_pps`), then `refine` bisections between the last clean step
/// and the first lossy one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroLossSpec {
    pub cases: Vec<ZeroLossCase>,
    pub size: u32,
    /// Time per trial.
    pub step: Dur,
    /// First trial, total input datagrams per second over all streams.
    pub start_pps: f64,
    pub max_pps: f64,
    #[serde(default = "default_factor")]
    pub factor: f64,
    #[serde(default = "default_refine")]
    pub refine: u32,
    /// A trial that delivered everything still fails when the worst output's 99th
    /// percentile latency is above this: the relay was building a queue, and a longer trial
    /// would have overflowed it. None: loss alone decides.
    #[serde(default)]
    pub max_p99_latency: Option<Dur>,
}

/// A named set of events; each variant is run for every system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub events: Vec<Event>,
    /// TCP streams (`iperf3 -P`) in this variant instead of `tcp.parallel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// More `[tunnel]` lines for the appliance systems in this variant (BFD timers, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tunnel: String,
    /// Workers per appliance in this variant (appliance tunnel rows; default 1, at most 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// The appliance tunnel's `encryption` in this variant (default: "auto", encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// Only these systems run the variant (default: all of the scenario's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub systems: Vec<System>,
    /// A link failing and returning periodically, expanded into events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap: Option<Flap>,
}

/// An intermittent link: `action` at `from`, `up` one `period` later, and so on until
/// `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flap {
    pub link: String,
    /// `down` or `blackhole`.
    pub action: Action,
    /// How long each off and each on phase lasts.
    pub period: Dur,
    pub from: Dur,
    pub until: Dur,
}

impl Variant {
    /// The events, with the flap expanded, in time order.
    pub fn all_events(&self) -> Vec<Event> {
        let mut events = self.events.clone();
        if let Some(f) = &self.flap {
            let mut at = f.from.0;
            let mut off = true;
            while at < f.until.0 && !f.period.0.is_zero() {
                events.push(Event {
                    at: Dur(at),
                    link: f.link.clone(),
                    action: if off { f.action } else { Action::Up },
                    direction: Default::default(),
                    params: None,
                });
                off = !off;
                at += f.period.0;
            }
            if !off {
                events.push(Event {
                    at: Dur(f.until.0),
                    link: f.link.clone(),
                    action: Action::Up,
                    direction: Default::default(),
                    params: None,
                });
            }
        }
        events.sort_by_key(|e| e.at.0);
        events
    }

    /// Whether `system` runs this variant.
    pub fn runs(&self, system: System) -> bool {
        self.systems.is_empty() || self.systems.contains(&system)
    }
}

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub topology: TopologyKind,
    #[serde(default)]
    pub wan: WanKind,
    pub systems: Vec<System>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_sweep: Option<UdpSweepSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast: Option<McastSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_loss: Option<ZeroLossSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
}

/// The traffic of a scenario (exactly one per file).
#[derive(Debug, Clone, Copy)]
pub enum Workload<'a> {
    Tcp(&'a TcpSpec),
    UdpSweep(&'a UdpSweepSpec),
    Mcast(&'a McastSpec),
    ZeroLoss(&'a ZeroLossSpec),
}

impl Workload<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Tcp(_) => "tcp",
            Workload::UdpSweep(_) => "udp_sweep",
            Workload::Mcast(_) => "mcast",
            Workload::ZeroLoss(_) => "zero_loss",
        }
    }
}

/// Longest multicast fan-out and stream count the group/port plan supports.
pub const MAX_STREAMS: u32 = 200;
pub const MAX_FANOUT: u32 = 16;

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(file: &Path) -> Result<Scenario, SpecError> {
        let text = std::fs::read_to_string(file).map_err(|e| SpecError {
            file: file.to_path_buf(),
            key: "-".into(),
            expected: format!("a readable TOML file ({e})"),
        })?;
        Scenario::parse(file, &text)
    }

    /// Parses and validates scenario text (`file` is for messages only).
    pub fn parse(file: &Path, text: &str) -> Result<Scenario, SpecError> {
        let de = toml::Deserializer::new(text);
        let s: Scenario = serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            let key = if path.is_empty() || path == "." {
                "-".to_string()
            } else {
                path
            };
            let inner = err.into_inner();
            let line = inner
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let reason = inner
                .message()
                .lines()
                .next()
                .unwrap_or("a valid value")
                .to_string();
            SpecError {
                file: file.to_path_buf(),
                key,
                expected: match line {
                    Some(l) => format!("{reason} (line {l})"),
                    None => reason,
                },
            }
        })?;
        s.validate().map_err(|(key, expected)| SpecError {
            file: file.to_path_buf(),
            key,
            expected,
        })?;
        Ok(s)
    }

    /// The traffic; valid scenarios have exactly one.
    pub fn workload(&self) -> Workload<'_> {
        match (&self.tcp, &self.udp_sweep, &self.mcast, &self.zero_loss) {
            (Some(t), _, _, _) => Workload::Tcp(t),
            (_, Some(u), _, _) => Workload::UdpSweep(u),
            (_, _, Some(m), _) => Workload::Mcast(m),
            (_, _, _, Some(z)) => Workload::ZeroLoss(z),
            // validate() rejects a file without one; an empty TCP run is the harmless reading.
            _ => Workload::Tcp(&EMPTY_TCP),
        }
    }

    /// The variants to run: the declared ones, or one called `default` with the top-level
    /// events.
    pub fn variants(&self) -> Vec<Variant> {
        if self.variants.is_empty() {
            vec![Variant {
                name: "default".into(),
                events: self.events.clone(),
                parallel: None,
                tunnel: String::new(),
                workers: None,
                encryption: None,
                systems: Vec::new(),
                flap: None,
            }]
        } else {
            self.variants.clone()
        }
    }

    /// Checks what serde cannot: `Err((key, expected))`.
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, expected: String| Err((key.to_string(), expected));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return bad(
                "name",
                format!(
                    "a folder name of a-z, 0-9 and '-', not {:?}",
                    self.name.as_str()
                ),
            );
        }
        let workloads: Vec<&str> = [
            self.tcp.as_ref().map(|_| "tcp"),
            self.udp_sweep.as_ref().map(|_| "udp_sweep"),
            self.mcast.as_ref().map(|_| "mcast"),
            self.zero_loss.as_ref().map(|_| "zero_loss"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if workloads.len() != 1 {
            return bad(
                "-",
                format!(
                    "exactly one of the tables [tcp], [udp_sweep], [mcast], [zero_loss], found {workloads:?}"
                ),
            );
        }
        let workload = self.workload();
        let needs = match workload {
            Workload::Tcp(_) | Workload::UdpSweep(_) => TopologyKind::Sites,
            Workload::Mcast(_) | Workload::ZeroLoss(_) => TopologyKind::Relay,
        };
        if self.topology != needs {
            return bad(
                "topology",
                format!(
                    "{:?} for a [{}] scenario, not {:?}",
                    topology_name(needs),
                    workload.name(),
                    topology_name(self.topology)
                ),
            );
        }
        if self.systems.is_empty() {
            return bad("systems", "at least one system to run".into());
        }
        let mut seen = HashSet::new();
        for (i, s) in self.systems.iter().enumerate() {
            if !seen.insert(*s) {
                return bad(
                    &format!("systems[{i}]"),
                    format!("each system once, {:?} is listed twice", s.name()),
                );
            }
            if let Some(t) = s.topology() {
                if t != self.topology {
                    return bad(
                        &format!("systems[{i}]"),
                        format!(
                            "a system for the {:?} topology; {:?} runs on {:?}",
                            topology_name(self.topology),
                            s.name(),
                            topology_name(t)
                        ),
                    );
                }
            }
        }
        self.validate_links()?;
        self.validate_direct()?;
        self.validate_workload()?;
        self.validate_events()
    }

    fn validate_links(&self) -> Result<(), (String, String)> {
        let bad = |key: String, expected: String| Err((key, expected));
        match self.topology {
            TopologyKind::Relay if !self.links.is_empty() => {
                return bad(
                    "links".into(),
                    "no [[links]] on the relay topology (it has no WAN links)".into(),
                )
            }
            TopologyKind::Sites if !(1..=4).contains(&self.links.len()) => {
                return bad(
                    "links".into(),
                    format!("1 to 4 [[links]], not {}", self.links.len()),
                )
            }
            _ => {}
        }
        let mut names = HashSet::new();
        for (i, l) in self.links.iter().enumerate() {
            if l.name.is_empty() || l.name.contains(char::is_whitespace) {
                return bad(
                    format!("links[{i}].name"),
                    format!("a name without spaces, not {:?}", l.name),
                );
            }
            if !names.insert(l.name.as_str()) {
                return bad(
                    format!("links[{i}].name"),
                    format!("a unique link name, {:?} is used twice", l.name),
                );
            }
            if l.both.is_some() && (l.a_to_b.is_some() || l.b_to_a.is_some()) {
                return bad(
                    format!("links[{i}]"),
                    "either `both` or `a_to_b`/`b_to_a`, not both kinds".into(),
                );
            }
            for (d, which) in [(0, "a_to_b"), (1, "b_to_a")] {
                if let Err(e) = l.dir(d).validate() {
                    return bad(format!("links[{i}].{which}"), format!("{e:#}"));
                }
            }
        }
        Ok(())
    }

    /// Direct links have nothing to emulate: no link parameters, no faults, TCP only.
    fn validate_direct(&self) -> Result<(), (String, String)> {
        if self.wan != WanKind::Direct {
            return Ok(());
        }
        let bad = |key: String, expected: &str| Err((key, expected.to_string()));
        if self.topology != TopologyKind::Sites || !matches!(self.workload(), Workload::Tcp(_)) {
            return bad(
                "wan".into(),
                "\"direct\" only for a [tcp] scenario on sites",
            );
        }
        for (i, l) in self.links.iter().enumerate() {
            if l.both.is_some() || l.a_to_b.is_some() || l.b_to_a.is_some() {
                return bad(
                    format!("links[{i}]"),
                    "no rate, delay or queue on a direct link (wan = \"direct\")",
                );
            }
        }
        if !self.events.is_empty() {
            return bad(
                "events".into(),
                "no events on direct links (wan = \"direct\")",
            );
        }
        for (i, v) in self.variants.iter().enumerate() {
            if !v.all_events().is_empty() {
                return bad(
                    format!("variants[{i}]"),
                    "no events or flaps on direct links (wan = \"direct\")",
                );
            }
        }
        Ok(())
    }

    fn validate_workload(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, expected: String| Err((key.to_string(), expected));
        let positive = |key: &str, d: Dur| {
            if d.0.is_zero() {
                bad(key, "a duration above zero, like \"30s\"".into())
            } else {
                Ok(())
            }
        };
        match self.workload() {
            Workload::Tcp(t) => {
                positive("tcp.duration", t.duration)?;
                if !(1..=128).contains(&t.parallel) {
                    return bad(
                        "tcp.parallel",
                        format!("1 to 128 streams, not {}", t.parallel),
                    );
                }
                if t.interval.0 < Duration::from_millis(100) || t.interval.0 > t.duration.0 {
                    return bad(
                        "tcp.interval",
                        format!("0.1 s up to the duration, not {}", human(t.interval)),
                    );
                }
                if let Some(cc) = &t.congestion {
                    let available = available_congestion_controls();
                    if !available.is_empty() && !available.contains(cc) {
                        return bad(
                            "tcp.congestion",
                            format!("one of this kernel's {available:?}, not {cc:?}"),
                        );
                    }
                }
                if t.settle.0 >= t.duration.0 {
                    return bad(
                        "tcp.settle",
                        format!(
                            "less than the duration {}, not {}",
                            human(t.duration),
                            human(t.settle)
                        ),
                    );
                }
            }
            Workload::UdpSweep(u) => {
                positive("udp_sweep.step", u.step)?;
                if u.sizes.is_empty() {
                    return bad("udp_sweep.sizes", "at least one payload size".into());
                }
                for (i, s) in u.sizes.iter().enumerate() {
                    if !(16..=1472).contains(s) {
                        return bad(
                            &format!("udp_sweep.sizes[{i}]"),
                            format!("a UDP payload of 16 to 1472 bytes, not {s}"),
                        );
                    }
                }
                if u.rates.is_empty() {
                    return bad("udp_sweep.rates", "at least one offered rate".into());
                }
                if !(1..=16).contains(&u.parallel) {
                    return bad(
                        "udp_sweep.parallel",
                        format!("1 to 16 streams, not {}", u.parallel),
                    );
                }
            }
            Workload::Mcast(m) => {
                positive("mcast.duration", m.duration)?;
                check_streams("mcast", m.streams, m.fanout)?;
                check_size("mcast.size", m.size)?;
                if !(m.pps > 0.0 && m.pps <= 1e6) {
                    return bad(
                        "mcast.pps",
                        format!(
                            "datagrams per second per stream, 0 < pps <= 1e6, not {}",
                            m.pps
                        ),
                    );
                }
            }
            Workload::ZeroLoss(z) => {
                positive("zero_loss.step", z.step)?;
                check_size("zero_loss.size", z.size)?;
                if z.cases.is_empty() {
                    return bad(
                        "zero_loss.cases",
                        "at least one {streams, fanout} case".into(),
                    );
                }
                for (i, c) in z.cases.iter().enumerate() {
                    check_streams(&format!("zero_loss.cases[{i}]"), c.streams, c.fanout)?;
                }
                if !(z.start_pps > 0.0 && z.start_pps <= z.max_pps) {
                    return bad(
                        "zero_loss.start_pps",
                        format!(
                            "above zero and at most max_pps ({}), not {}",
                            z.max_pps, z.start_pps
                        ),
                    );
                }
                if z.factor.is_nan() || z.factor <= 1.0 {
                    return bad("zero_loss.factor", format!("above 1, not {}", z.factor));
                }
                if z.refine > 8 {
                    return bad(
                        "zero_loss.refine",
                        format!("0 to 8 bisections, not {}", z.refine),
                    );
                }
            }
        }
        Ok(())
    }

    fn validate_events(&self) -> Result<(), (String, String)> {
        if !self.events.is_empty() && !self.variants.is_empty() {
            return Err((
                "events".into(),
                "top-level events or [[variants]] with their own events, not both".into(),
            ));
        }
        let link_names: Vec<&str> = self.links.iter().map(|l| l.name.as_str()).collect();
        let end = match self.workload() {
            Workload::Tcp(t) => Some(t.duration),
            _ => None,
        };
        let mut variant_names = HashSet::new();
        let sets: Vec<(String, &[Event])> = if self.variants.is_empty() {
            vec![("events".to_string(), &self.events[..])]
        } else {
            self.variants
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("variants[{i}].events"), &v.events[..]))
                .collect()
        };
        for (i, v) in self.variants.iter().enumerate() {
            if let Some(f) = &v.flap {
                let key = format!("variants[{i}].flap");
                if !link_names.contains(&f.link.as_str()) {
                    return Err((
                        format!("{key}.link"),
                        format!(
                            "one of the [[links]] names {link_names:?}, not {:?}",
                            f.link
                        ),
                    ));
                }
                if !matches!(f.action, Action::Down | Action::Blackhole) {
                    return Err((format!("{key}.action"), "down or blackhole".into()));
                }
                if f.period.0.is_zero() {
                    return Err((format!("{key}.period"), "more than 0".into()));
                }
                if f.from >= f.until || end.is_some_and(|e| f.until >= e) {
                    return Err((
                        format!("{key}.until"),
                        "after `from` and before the end of the transfer".into(),
                    ));
                }
            }
            if let Some(s) = v.systems.iter().find(|s| !self.systems.contains(s)) {
                return Err((
                    format!("variants[{i}].systems"),
                    format!("systems of the scenario, not {s}"),
                ));
            }
            if v.workers.is_some_and(|w| !(1..=2).contains(&w)) {
                return Err((
                    format!("variants[{i}].workers"),
                    "1 or 2 workers per appliance (the machine has two cores)".into(),
                ));
            }
            let ok = !v.name.is_empty()
                && v.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok || !variant_names.insert(v.name.as_str()) {
                return Err((
                    format!("variants[{i}].name"),
                    format!(
                        "a unique name of a-z, 0-9 and '-' (used in file names), not {:?}",
                        v.name
                    ),
                ));
            }
        }
        for (prefix, events) in sets {
            for (j, e) in events.iter().enumerate() {
                let key = format!("{prefix}[{j}]");
                if end.is_none() {
                    return Err((
                        key,
                        "no events: only [tcp] scenarios take link events".into(),
                    ));
                }
                if !link_names.contains(&e.link.as_str()) {
                    return Err((
                        format!("{key}.link"),
                        format!(
                            "one of the [[links]] names {link_names:?}, not {:?}",
                            e.link
                        ),
                    ));
                }
                if let Some(end) = end {
                    if e.at >= end {
                        return Err((
                            format!("{key}.at"),
                            format!(
                                "a time before the end of the traffic ({}), not {}",
                                human(end),
                                human(e.at)
                            ),
                        ));
                    }
                }
                if (e.action == Action::Set) != e.params.is_some() {
                    return Err((
                        format!("{key}.params"),
                        "`params` with action = \"set\", and only with it".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A duration for people: `60 s`, `0.5 s`.
pub fn human(d: Dur) -> String {
    let s = d.0.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

static EMPTY_TCP: TcpSpec = TcpSpec {
    parallel: 1,
    duration: Dur(Duration::ZERO),
    interval: Dur(Duration::from_millis(500)),
    settle: Dur(Duration::ZERO),
    congestion: None,
    probe_interval: None,
    health_interval: None,
};

/// The kernel's TCP congestion controls (empty when it cannot be read, e.g. not Linux).
pub fn available_congestion_controls() -> Vec<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn topology_name(t: TopologyKind) -> &'static str {
    match t {
        TopologyKind::Sites => "sites",
        TopologyKind::Relay => "relay",
    }
}

fn check_streams(key: &str, streams: u32, fanout: u32) -> Result<(), (String, String)> {
    if !(1..=MAX_STREAMS).contains(&streams) {
        return Err((
            format!("{key}.streams"),
            format!("1 to {MAX_STREAMS} streams, not {streams}"),
        ));
    }
    if !(1..=MAX_FANOUT).contains(&fanout) {
        return Err((
            format!("{key}.fanout"),
            format!("1 to {MAX_FANOUT} outputs per stream, not {fanout}"),
        ));
    }
    Ok(())
}

fn check_size(key: &str, size: u32) -> Result<(), (String, String)> {
    let min = crate::traffic::HEADER_LEN as u32;
    if !(min..=1472).contains(&size) {
        return Err((
            key.to_string(),
            format!("a UDP payload of {min} to 1472 bytes, not {size}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "failover"
description = "two links, one fails"
topology = "sites"
systems = ["linux-single", "linux-mptcp", "appliance-wlb"]

[[links]]
name = "a"
both = { rate = "30mbit", delay = "10ms", queue = "100ms" }
[[links]]
name = "b"
a_to_b = { rate = "8mbit", delay = "30ms" }
b_to_a = { delay = "30ms" }

[tcp]
parallel = 4
duration = "60s"
settle = "5s"
congestion = "reno"

[[variants]]
name = "link-down"
events = [ { at = "20s", link = "a", action = "down" },
           { at = "40s", link = "a", action = "up" } ]
[[variants]]
name = "blackhole"
events = [ { at = "20s", link = "a", action = "blackhole" },
           { at = "30s", link = "b", action = "set", params = { delay = "40ms" } },
           { at = "40s", link = "a", action = "up" } ]
"#;

    fn parse(text: &str) -> Result<Scenario, SpecError> {
        Scenario::parse(Path::new("scenarios/x.toml"), text)
    }

    /// The error for `GOOD` with `from` replaced by `to`.
    fn error(from: &str, to: &str) -> SpecError {
        assert!(GOOD.contains(from), "test bug: {from:?} not in GOOD");
        parse(&GOOD.replacen(from, to, 1)).expect_err("should be rejected")
    }

    #[test]
    fn a_good_file_parses() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.name, "failover");
        assert_eq!(s.systems[1], System::LinuxMptcp);
        let Workload::Tcp(t) = s.workload() else {
            panic!("not tcp")
        };
        assert_eq!(
            (t.parallel, t.duration.0.as_secs(), t.interval.0.as_millis()),
            (4, 60, 500)
        );
        assert_eq!(s.links[1].dir(0).rate, Some(Rate(8_000_000)));
        assert_eq!(s.links[1].dir(1).rate, None);
        assert_eq!(s.links[0].dir(1).delay.0, Duration::from_millis(10));
        let v = s.variants();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].events[1].action, Action::Set);
    }

    #[test]
    fn without_variants_the_top_level_events_are_one_variant() {
        let text = GOOD[..GOOD.find("[[variants]]").unwrap()].replace(
            "systems =",
            "events = [ { at = \"1s\", link = \"b\", action = \"blackhole\", direction = \"a-to-b\" } ]\nsystems =",
        );
        let s = parse(&text).unwrap();
        let v = s.variants();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "default");
        assert_eq!(v[0].events[0].direction, crate::wanem::Direction::AToB);
    }

    #[test]
    fn direct_links_take_no_emulation() {
        let direct = r#"
name = "fast"
topology = "sites"
wan = "direct"
systems = ["linux-single", "linux-wireguard"]
[[links]]
name = "a"
[tcp]
duration = "20s"
"#;
        let s = parse(direct).unwrap();
        assert_eq!(s.wan, WanKind::Direct);
        assert_eq!(parse(GOOD).unwrap().wan, WanKind::Emulated);

        let e = parse(&direct.replace("name = \"a\"", "name = \"a\"\nboth = { delay = \"5ms\" }"))
            .expect_err("a delay on a direct link");
        assert_eq!(e.key, "links[0]");
        let e = parse(&format!(
            "{direct}[[variants]]\nname = \"v\"\nevents = [ {{ at = \"1s\", link = \"a\", action = \"down\" }} ]\n"
        ))
        .expect_err("an event on a direct link");
        assert_eq!(e.key, "variants[0]");
        let e = error(
            "topology = \"sites\"",
            "topology = \"sites\"\nwan = \"direkt\"",
        );
        assert_eq!(e.key, "wan");
    }

    #[test]
    fn errors_name_the_file_the_key_and_what_was_expected() {
        let e = error("parallel = 4", "parallel = \"4\"");
        assert_eq!(e.file, Path::new("scenarios/x.toml"));
        assert_eq!(e.key, "tcp.parallel");
        assert!(e.expected.contains("expected u32"), "{e}");
        assert!(
            e.to_string()
                .starts_with("scenarios/x.toml: key `tcp.parallel`: "),
            "{e}"
        );

        let e = error("settle = \"5s\"", "setle = \"5s\"");
        assert_eq!(e.key, "tcp.setle");
        assert!(e.expected.contains("unknown field `setle`"), "{e}");

        let e = error("\"linux-mptcp\"", "\"linux-mtpcp\"");
        assert_eq!(e.key, "systems[1]");
        assert!(
            e.expected.contains("linux-mptcp"),
            "lists the valid names: {e}"
        );

        let e = error("rate = \"30mbit\"", "rate = \"30\"");
        assert_eq!(e.key, "links[0].both.rate");
        assert!(e.expected.contains("bad rate"), "{e}");

        let e = error(
            "at = \"40s\", link = \"a\", action = \"up\" } ]\n[[",
            "at = \"40s\", link = \"c\", action = \"up\" } ]\n[[",
        );
        assert_eq!(e.key, "variants[0].events[1].link");
        assert!(
            e.expected.contains(r#"["a", "b"]"#) && e.expected.contains("\"c\""),
            "{e}"
        );

        let e = error("action = \"down\"", "action = \"sideways\"");
        assert_eq!(e.key, "variants[0].events[0].action");
        assert!(e.expected.contains("unknown variant `sideways`"), "{e}");

        let e = error(
            "at = \"40s\", link = \"a\", action = \"up\" } ]\n[[",
            "at = \"90s\", link = \"a\", action = \"up\" } ]\n[[",
        );
        assert_eq!(e.key, "variants[0].events[1].at");
        assert!(
            e.expected
                .contains("before the end of the traffic (60 s), not 90 s"),
            "{e}"
        );

        let e = error("action = \"set\", params", "action = \"down\", params");
        assert_eq!(e.key, "variants[1].events[1].params");
    }

    #[test]
    fn inconsistent_files_are_rejected() {
        let e = error("topology = \"sites\"", "topology = \"relay\"");
        assert_eq!(e.key, "topology");
        assert!(e.expected.contains("\"sites\" for a [tcp] scenario"), "{e}");

        let e = error("\"linux-single\"", "\"linux-socat\"");
        assert_eq!(e.key, "systems[0]");
        assert!(e.expected.contains("runs on \"relay\""), "{e}");

        let e = error("\"appliance-wlb\"", "\"linux-mptcp\"");
        assert_eq!(e.key, "systems[2]");
        assert!(e.expected.contains("listed twice"), "{e}");

        let e = error("name = \"b\"", "name = \"a\"");
        assert_eq!(e.key, "links[1].name");

        let e = error(
            "[tcp]",
            "[mcast]\nstreams = 1\npps = 10.0\nsize = 100\nduration = \"1s\"\n[tcp]",
        );
        assert_eq!(e.key, "-");
        assert!(e.expected.contains("exactly one of"), "{e}");

        let e = error("name = \"failover\"", "name = \"Fail Over\"");
        assert_eq!(e.key, "name");

        let e = error("name = \"link-down\"", "name = \"blackhole\"");
        assert_eq!(e.key, "variants[1].name");

        let e = error("settle = \"5s\"", "settle = \"60s\"");
        assert_eq!(e.key, "tcp.settle");

        if !available_congestion_controls().is_empty() {
            let e = error("congestion = \"reno\"", "congestion = \"warp\"");
            assert_eq!(e.key, "tcp.congestion");
            assert!(e.expected.contains("\"reno\""), "{e}");
        }

        let e = parse("name = \"x\"\ntopology = \"relay\"\nsystems = [\"linux-socat\"]\n[mcast]\nstreams = 500\npps = 10.0\nsize = 100\nduration = \"1s\"\n").unwrap_err();
        assert_eq!(e.key, "mcast.streams");

        let e = parse("name = \"x\"\ntopology = \"relay\"\nsystems = [\"linux-socat\"]\n[zero_loss]\ncases = []\nsize = 100\nstep = \"1s\"\nstart_pps = 1.0\nmax_pps = 2.0\n").unwrap_err();
        assert_eq!(e.key, "zero_loss.cases");
    }

    #[test]
    fn not_toml_names_the_line() {
        let e = parse("name = \"x\"\ntopology = \n").unwrap_err();
        assert!(e.expected.contains("line 2"), "{e}");
        let missing = Scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err();
        assert_eq!(missing.key, "-");
        assert!(missing.expected.contains("readable TOML file"), "{missing}");
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = crate::bins::workspace_root().join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                assert_eq!(
                    s.name,
                    stem,
                    "{}: name and file name differ",
                    path.display()
                );
                n += 1;
            }
        }
        assert!(
            n >= 6,
            "expected the shipped scenarios in {}",
            dir.display()
        );
    }
}
