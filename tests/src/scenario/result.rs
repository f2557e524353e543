//! `result.json`: everything a run measured, raw, with the machine and the scenario as
//! parsed. The README and the plots are rendered from this alone (`scenario render DIR`),
//! so nothing in them is a number that is not here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::machine::Machine;
pub use super::probe_stream::ProbeStream;
use super::spec::Scenario;
use super::systems::System;
use crate::traffic::Latency;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: String,
    /// The scenario file, as given on the command line.
    pub file: String,
    /// The runner's command line.
    pub command: String,
    pub spec: Scenario,
    pub machine: Machine,
    pub wall_s: f64,
    pub rows: Vec<Row>,
}

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// It ran into an error (in `error`); whatever was measured before is kept.
    Failed,
    /// It cannot be measured here yet (the reason is in `error`).
    NotAvailable,
}

/// One system's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub system: System,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub notes: Vec<String>,
    pub wall_s: f64,
    /// Load average before and after the row.
    pub loadavg: [String; 2],
    pub data: RowData,
}

/// The measurements, by kind of workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RowData {
    None,
    Tcp { variants: Vec<TcpVariant> },
    UdpSweep { steps: Vec<UdpStep> },
    // Boxed: a multicast run is ten times the size of the other variants.
    Mcast { run: Box<McastRun> },
    ZeroLoss { cases: Vec<ZeroLossCase> },
}

/// A link event as it was applied, in seconds since the traffic started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedEvent {
    /// When the scenario asked for it.
    pub at_s: f64,
    /// When the emulator confirmed it (the runner's clock).
    pub applied_s: f64,
    pub link: String,
    /// `up`, `down`, `blackhole` or `set`.
    pub action: String,
    /// The control command sent.
    pub command: String,
}

/// One reporting interval of iperf3 (all streams summed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub start: f64,
    pub end: f64,
    pub mbps: f64,
}

/// The emulator's byte counters of one link at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkCounters {
    pub link: String,
    pub a_to_b_bytes: u64,
    pub b_to_a_bytes: u64,
    pub a_to_b_dropped: u64,
    pub b_to_a_dropped: u64,
}

/// All links' counters at `t` seconds since the traffic started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSample {
    pub t: f64,
    pub links: Vec<LinkCounters>,
}

/// The receiving appliance's reorder buffers (every lane summed) at `t` seconds since the
/// traffic started: packets held at that instant, and the lanes' counters so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReorderSample {
    pub t: f64,
    pub occupancy: u64,
    pub in_order: u64,
    pub held: u64,
    pub released_early: u64,
    pub timed_out: u64,
    /// Holes skipped because the buffer was full (`None` in results from before it was
    /// sampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<u64>,
    pub late: u64,
    pub unordered: u64,
}

/// Both appliances at `t` seconds since the traffic started (`tcp.health_interval`):
/// `[site A, site B]` in each pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthSample {
    pub t: f64,
    /// Paths the workers send on now.
    pub usable: [u32; 2],
    /// Packets dropped so far as `tunnel_no_path`.
    pub no_path_drops: [u64; 2],
    /// Resident memory (kB).
    pub rss_kb: [u64; 2],
    /// Per path (by name): BFD flaps so far.
    pub bfd_flaps: Vec<(String, [u64; 2])>,
}

/// One fault of a variant with several (the soak), from the probe stream and the health
/// samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRow {
    pub link: String,
    pub start_s: f64,
    pub end_s: f64,
    /// The probe stream around the failure (see [`ProbeHandoff`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ProbeHandoff>,
    /// The fewest paths site A could send on, from the fault to 1 s after it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_usable: Option<u32>,
    /// `tunnel_no_path` drops at both sites over the same span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_path_drops: Option<u64>,
}

/// What happened around the fault of a variant (the first down/blackhole and its up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSummary {
    pub link: String,
    pub action: String,
    pub start_s: f64,
    pub end_s: f64,
    /// Mean goodput from `settle` to the fault.
    pub before_mbps: f64,
    pub during_mbps: f64,
    pub min_during_mbps: f64,
    /// Mean goodput after the link came back.
    pub after_mbps: f64,
    /// Intervals during the fault below 5 % of `before_mbps` (0.5 s each by default).
    pub stalled_intervals: u32,
    /// From the fault until the first interval at ≥ 50 % of the surviving links' TCP
    /// goodput ceiling (mqvpn's TTF); `None` if not before the link came back.
    pub ttf_s: Option<f64>,
    /// From the link's return until the first interval at ≥ 90 % of `before_mbps`
    /// (mqvpn's TTR); `None` if never.
    pub ttr_s: Option<f64>,
    /// Time from the fault to the end of the run spent in intervals below 50 % of the
    /// surviving links' ceiling (the handoff's downtime, failure and recovery together).
    #[serde(default)]
    pub downtime_s: f64,
    /// The probe stream around the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ProbeHandoff>,
    /// The probe stream around the recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<ProbeHandoff>,
}

/// What the probe stream saw around one event (probes due from 0.5 s before it to 5 s
/// after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeHandoff {
    /// Probes that never arrived.
    pub lost: u64,
    /// The longest time without an arrival (ms).
    pub longest_gap_ms: f64,
    /// T-latency: from the event to the end of the longest silence, when the stream flowed
    /// again (ms); 0 if that silence ended before the event, or nothing was lost and no
    /// silence passed 50 ms (five probe intervals if longer); `None` if it had not ended
    /// 5 s after.
    pub t_latency_ms: Option<f64>,
}

/// Figures derived from a TCP variant's raw data (see `analysis`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpSummary {
    /// Mean of the intervals after `settle`.
    pub mean_mbps: f64,
    /// TCP goodput ceiling of all links: Σ rate × 1448/1514.
    pub ceiling_mbps: f64,
    /// Mean a-to-b rate of each link over the same window, from the emulator's counters
    /// (Ethernet frames, tunnel headers included).
    pub link_mbps: Vec<(String, f64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultSummary>,
    /// Every fault, when the variant has health samples (the soak).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultRow>,
    /// The probe stream's one-way delay under the load, after `settle` (no fault in
    /// the variant): latency under load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_delay: Option<ProbeDelay>,
}

/// One-way delay of the probe stream: arrival on host B minus when it was due to leave
/// host A (one clock: both hosts are namespaces of this machine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeDelay {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Probes due after `settle` that never arrived.
    pub lost: u64,
    pub sent: u64,
}

/// One variant (event set) of a TCP row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpVariant {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub events: Vec<AppliedEvent>,
    pub intervals: Vec<Interval>,
    /// iperf3's end summary.
    pub sent_mbps: f64,
    pub received_mbps: f64,
    pub retransmits: u64,
    pub links: Vec<LinkSample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<TcpSummary>,
    /// The hosts' TCP congestion control during the run.
    #[serde(default)]
    pub congestion: String,
    /// The WAN emulator's CPU time over the traffic, % of one core.
    #[serde(default)]
    pub emulator_cpu_pct: f64,
    /// How busy the whole machine was over the traffic, % of all cores.
    #[serde(default)]
    pub machine_busy_pct: f64,
    /// The system's own processes (the two appliances, or wireguard-go) over the traffic, %
    /// of one core; `None` for Linux routers (their work is the kernel's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_cpu_pct: Option<f64>,
    /// Busy CPU seconds of the whole machine (all cores, iperf3 and the emulator included)
    /// per Gbit iperf3 received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_cpu_s_per_gbit: Option<f64>,
    /// The system's own processes' CPU seconds per Gbit received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_cpu_s_per_gbit: Option<f64>,
    /// System-specific proof of what ran (MPTCP counters, ...).
    #[serde(default)]
    pub evidence: Value,
    /// The emulator's final `show`.
    #[serde(default)]
    pub emulator: Value,
    /// The sequence-stamped probe stream beside the transfer (`tcp.probe_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<ProbeStream>,
    /// The far (receiving) appliance's reorder buffers over time, for appliance rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reorder: Vec<ReorderSample>,
    /// Both appliances' path health and memory over time (`tcp.health_interval`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthSample>,
}

/// One step of a UDP sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpStep {
    /// UDP payload bytes.
    pub size: u32,
    /// The total rate asked of iperf3.
    pub offered_mbps: f64,
    /// What iperf3 sent and what the server received.
    pub sent_mbps: f64,
    pub received_mbps: f64,
    pub packets: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub jitter_ms: f64,
    /// Each link's a→b rate over the step (the emulator's counters): where the flows went.
    #[serde(default)]
    pub link_mbps: Vec<(String, f64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One output of one stream at the sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McastStream {
    pub stream: u32,
    /// The group:port the sink received it on.
    pub output: String,
    pub sent: u64,
    pub unique: u64,
    /// `sent - unique`: everything the generator sent and this output never delivered.
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub latency_us: Latency,
}

/// Totals over every stream and output of a multicast run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct McastTotals {
    /// Datagrams per second the generator sent (all streams).
    pub input_pps: f64,
    pub sent: u64,
    /// `sent × fanout`: what the sinks should have received.
    pub expected: u64,
    pub unique: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Median over outputs of each output's median latency.
    pub latency_p50_us: f64,
    /// Worst output's 99th percentile.
    pub latency_p99_worst_us: f64,
    pub latency_max_us: f64,
}

/// One generator → relay → sink run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McastRun {
    pub streams: u32,
    pub fanout: u32,
    /// Asked-for rate per stream.
    pub pps: f64,
    pub size: u32,
    pub duration_s: f64,
    pub per_stream: Vec<McastStream>,
    pub totals: McastTotals,
    /// CPU used by the relay's processes during the run, % of one core.
    pub relay_cpu_pct: f64,
    /// How busy the whole machine was during the run, % of all cores.
    #[serde(default)]
    pub machine_busy_pct: f64,
    /// Datagrams of an earlier trial that reached the sink during this one (ignored).
    #[serde(default)]
    pub stale: u64,
    /// UDP receive-buffer overflows in the sink and relay namespaces during the run (the
    /// kernel's `RcvbufErrors`): where the loss happened when it was a socket buffer.
    pub sink_rcvbuf_errors: u64,
    pub relay_rcvbuf_errors: u64,
    /// UDP `InErrors` and, among them, `InCsumErrors` in the sink's namespace during the run
    /// (a datagram with a bad UDP checksum is dropped by the sink's kernel).
    #[serde(default)]
    pub sink_udp_in_errors: (u64, u64),
    /// Every IP and UDP error or discard counter of the sink's namespace that moved during
    /// the run (`/proc/net/snmp`), e.g. `Ip.InHdrErrors`.
    #[serde(default)]
    pub sink_errors: std::collections::BTreeMap<String, u64>,
    /// Packets the kernel dropped on the interfaces of each namespace during the run
    /// (`ip -s link` rx + tx dropped): relay, switch (bridges), sink.
    #[serde(default)]
    pub interface_drops: Vec<(String, u64)>,
    /// What the relay reported when it stopped (the appliance's final counters, stderr),
    /// for the run (`mcast`); per case in `zero_loss`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub relay_report: Value,
}

/// One trial of the zero-loss search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroLossTrial {
    /// Asked-for input rate, all streams.
    pub target_pps: f64,
    pub zero_loss: bool,
    /// The generator reached less than 97 % of the target.
    #[serde(default)]
    pub generator_limited: bool,
    /// Everything arrived, but the worst output's p99 latency was above the scenario's
    /// bound (the relay was queueing): the trial does not count as zero-loss.
    #[serde(default)]
    pub late: bool,
    pub run: McastRun,
}

/// One case of the zero-loss search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroLossCase {
    pub streams: u32,
    pub fanout: u32,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub trials: Vec<ZeroLossTrial>,
    /// Highest target input rate with zero loss, and the first one with loss.
    pub max_zero_loss_pps: Option<f64>,
    pub first_lossy_pps: Option<f64>,
    /// The highest input rate the generator reached in a trial that lost nothing, including
    /// trials that fell short of their target (measured).
    #[serde(default)]
    pub max_zero_loss_measured_pps: Option<f64>,
    /// The lowest target the generator could not offer (it fell behind): the search could
    /// not go higher on this machine.
    #[serde(default)]
    pub generator_limit_pps: Option<f64>,
    /// What the relay reported when it stopped (the appliance's final counters, stderr).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub relay_report: Value,
}
