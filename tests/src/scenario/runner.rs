//! Runs a scenario: for each system (row), a fresh topology, the system set up on it, the
//! traffic (once per variant, step or trial), everything measured, everything torn down.
//!
//! Cleanup: every namespace belongs to a topology guard and every process to a namespace, so
//! dropping the guards on success or error removes them; a SIGINT/SIGTERM is handled by the
//! netns signal thread (namespaces, their processes and the run's temporary directories);
//! the binary's panic hook does the same before the process aborts. A row that fails is
//! recorded with its error and the next row runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::emulator;
use super::iperf;
use super::machine::{loadavg, process_cpu_seconds, CpuTimes, Machine};
use super::mcast::{self, Trial};
use super::mcast_plan::{self, StreamPlan};
use super::result::{
    McastRun, Row, RowData, ScenarioResult, Status, TcpVariant, UdpStep, ZeroLossCase,
    ZeroLossTrial,
};
use super::schedule::schedule;
use super::spec::{
    McastSpec, Scenario, TcpSpec, UdpSweepSpec, Variant, WanKind, Workload, ZeroLossSpec,
};
use super::systems::appliance_tunnel::{self, ApplianceSites, Site, TunnelSpec};
use super::systems::{
    appliance, linux_ecmp_vxlan, linux_ipsec, linux_mptcp, linux_single, linux_smcroute,
    linux_socat, linux_wireguard, RelayGuard, SitesSetup, System,
};
use super::tools::{require, Tools};
use super::{analysis, probe_stream, zero_loss};
use crate::topology::{relay, relay_linux, sites, sites_direct, sites_linux, Relay, Sites};
use crate::wanem::{EmulatorProcess, Snapshot};

/// Pause between zero-loss trials.
const TRIAL_SETTLE: Duration = Duration::from_secs(2);

/// A zero-loss trial counts only if the generator offered at least this share of its target.
const GENERATOR_REACH: f64 = 0.97;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub tools: Tools,
    /// Run only these systems (default: the scenario's).
    pub only: Option<Vec<System>>,
    /// The scenario file, for the result.
    pub file: PathBuf,
    /// The command line, for the result.
    pub command: String,
}

/// Runs every row of `spec`.
pub fn run(spec: &Scenario, opts: &RunOptions) -> Result<ScenarioResult> {
    if !crate::netns::is_root() {
        bail!("scenarios need root (network namespaces, AF_PACKET)");
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("ethtool", "ethtool"),
        ("setpriv", "util-linux"),
        ("chrt", "util-linux"),
    ] {
        require(tool, package)?;
    }
    if spec.topology == super::spec::TopologyKind::Sites {
        require("iperf3", "iperf3")?;
        require("ping", "iputils-ping")?;
    }
    let mut machine = Machine::probe();
    let started = Instant::now();
    let systems: Vec<System> = spec
        .systems
        .iter()
        .copied()
        .filter(|s| opts.only.as_ref().is_none_or(|o| o.contains(s)))
        .collect();
    let mut rows = Vec::new();
    for system in systems {
        progress(spec, system, "starting");
        let row = run_row(spec, system, opts);
        match &row.error {
            Some(e) => progress(spec, system, &format!("{:?}: {e}", row.status)),
            None => progress(spec, system, &format!("done in {:.0} s", row.wall_s)),
        }
        rows.push(row);
    }
    machine.finish();
    Ok(ScenarioResult {
        scenario: spec.name.clone(),
        file: opts.file.display().to_string(),
        command: opts.command.clone(),
        spec: spec.clone(),
        machine,
        wall_s: started.elapsed().as_secs_f64(),
        rows,
    })
}

fn progress(spec: &Scenario, system: System, what: &str) {
    eprintln!("[{}] {system}: {what}", spec.name);
}

fn run_row(spec: &Scenario, system: System, opts: &RunOptions) -> Row {
    let started = Instant::now();
    let load_start = loadavg();
    let mut row = Row {
        system,
        status: Status::Ok,
        error: None,
        notes: vec![],
        wall_s: 0.0,
        loadavg: [load_start, String::new()],
        data: RowData::None,
    };
    if let Some(reason) = system.not_available(spec.topology) {
        row.status = Status::NotAvailable;
        progress(spec, system, &format!("not available: {reason}"));
        row.error = Some(reason);
    } else {
        let (data, error) = match spec.workload() {
            Workload::Tcp(t) => tcp_row(spec, t, system, opts, &mut row.notes),
            Workload::UdpSweep(u) => udp_row(spec, u, system, opts, &mut row.notes),
            Workload::Mcast(m) => mcast_row(m, system, opts, &mut row.notes),
            Workload::ZeroLoss(z) => zero_loss_row(spec, z, system, opts, &mut row.notes),
        };
        row.data = data;
        if let Some(e) = error {
            row.status = Status::Failed;
            row.error = Some(e);
        }
    }
    row.wall_s = started.elapsed().as_secs_f64();
    row.loadavg[1] = loadavg();
    row
}

/// The first line-ish of an error chain, for results.
fn describe(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

// ---------------------------------------------------------------- sites (TCP, UDP)

/// Builds the sites topology and the emulator (none when `wan = "direct"`), sets `system` up,
/// checks that host A reaches host B, runs `f`, then stops the system's processes and the
/// emulator (its final counters are returned) and removes everything. An
/// `appliance-<scheduler>` row runs its two appliances for the whole of `f` (passed to it, for
/// their CPU time) and stops them after.
fn with_sites<T>(
    spec: &Scenario,
    system: System,
    (tunnel_extra, workers, encryption): (&str, u32, Option<&str>),
    opts: &RunOptions,
    f: impl FnOnce(&Sites, &SitesSetup, Option<&EmulatorProcess>, Option<&ApplianceSites>) -> Result<T>,
) -> Result<(T, Option<Snapshot>)> {
    let linux = system.linux_routers();
    let n = spec.links.len();
    let sites = match (spec.wan, linux) {
        (WanKind::Direct, _) => sites_direct(n, linux)?,
        (WanKind::Emulated, true) => sites_linux(n)?,
        (WanKind::Emulated, false) => sites(n)?,
    };
    let emu = match spec.wan {
        WanKind::Direct => None,
        WanKind::Emulated => Some(EmulatorProcess::start(
            &sites.emu,
            &opts.tools.bin("wan-emulator")?,
            &emulator::config(&spec.links, &sites),
            &[],
        )?),
    };
    let mut pair = None;
    let setup = match (system, system.tunnel_scheduler()) {
        (System::LinuxSingle, _) => linux_single::setup(&sites)?,
        (System::LinuxEcmpVxlan, _) => linux_ecmp_vxlan::setup(&sites)?,
        (System::LinuxMptcp, _) => linux_mptcp::setup(&sites)?,
        (System::LinuxIpsec, _) => linux_ipsec::setup(&sites)?,
        (System::LinuxWireguard, _) => linux_wireguard::setup(&sites)?,
        (_, Some(scheduler)) => {
            // Each path's configured rate is its link's a→b rate (10 Gbit/s if unlimited).
            let rates: Vec<u64> = spec
                .links
                .iter()
                .map(|l| l.dir(0).rate.map_or(10_000_000_000, |r| r.0))
                .collect();
            let mut tunnel = TunnelSpec::new(scheduler, &rates);
            tunnel.extra = tunnel_extra.to_string();
            tunnel.workers = workers;
            if let Some(e) = encryption {
                tunnel.encryption = e.to_string();
            }
            let (p, setup) =
                appliance_tunnel::start(&sites, &tunnel, &opts.tools.bin("appliance")?)?;
            pair = Some(p);
            setup
        }
        (other, None) => bail!("{other} does not run on the sites topology"),
    };
    sites
        .host_a
        .ns
        .exec(&[
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "3",
            &sites.host_b.addr.to_string(),
        ])
        .context("host A cannot reach host B through the system")?;
    let out = f(&sites, &setup, emu.as_ref(), pair.as_ref())?;
    if let Some(p) = pair {
        p.stop()?;
    }
    for p in setup.processes {
        p.stop()?;
    }
    let snap = emu.map(EmulatorProcess::stop).transpose()?;
    Ok((out, snap))
}

fn tcp_row(
    spec: &Scenario,
    tcp: &TcpSpec,
    system: System,
    opts: &RunOptions,
    notes: &mut Vec<String>,
) -> (RowData, Option<String>) {
    let mut variants = Vec::new();
    let mut error = None;
    for v in spec.variants().into_iter().filter(|v| v.runs(system)) {
        progress(
            spec,
            system,
            &format!("variant {} ({})", v.name, super::spec::human(tcp.duration)),
        );
        match tcp_variant(spec, tcp, &v, system, opts, notes) {
            Ok(tv) => {
                if let Some(s) = &tv.summary {
                    progress(
                        spec,
                        system,
                        &format!("variant {}: mean {:.1} Mbit/s", v.name, s.mean_mbps),
                    );
                }
                variants.push(tv)
            }
            Err(e) => {
                let msg = describe(&e);
                error.get_or_insert_with(|| format!("variant {}: {msg}", v.name));
                variants.push(TcpVariant {
                    name: v.name.clone(),
                    error: Some(msg),
                    ..TcpVariant::default()
                });
            }
        }
    }
    (RowData::Tcp { variants }, error)
}

fn tcp_variant(
    spec: &Scenario,
    tcp: &TcpSpec,
    variant: &Variant,
    system: System,
    opts: &RunOptions,
    notes: &mut Vec<String>,
) -> Result<TcpVariant> {
    let (mut v, snap) = with_sites(
        spec,
        system,
        (
            &variant.tunnel,
            variant.workers.unwrap_or(1),
            variant.encryption.as_deref(),
        ),
        opts,
        |sites, setup, emu, pair| {
            for n in &setup.notes {
                if !notes.contains(n) {
                    notes.push(n.clone());
                }
            }
            let server = iperf::start_server(
                &sites.host_b.ns,
                &setup.wrapper,
                sites.host_b.addr,
                tcp.interval.0,
            )?;
            let args = iperf::tcp_args(
                sites.host_b.addr,
                variant.parallel.unwrap_or(tcp.parallel),
                tcp.duration.0,
                tcp.interval.0,
                tcp.congestion.as_deref(),
            );
            let emu_pid = emu.and_then(EmulatorProcess::pid);
            let emu_cpu = emu_pid.map_or(0.0, process_cpu_seconds);
            // The system's own processes: the appliances, or wireguard-go.
            let system_cpu = || {
                pair.map(ApplianceSites::cpu_seconds)
                    .or_else(|| setup.cpu_seconds())
            };
            let system_before = system_cpu();
            let machine_before = CpuTimes::now();
            let t0 = Instant::now();
            // Direct links have no emulator, and so no events (the spec allows none).
            let events = emu
                .map(|e| {
                    emulator::apply_events(
                        e.control_path.clone(),
                        schedule(&variant.all_events()),
                        t0,
                    )
                })
                .transpose()?;
            let probes = match tcp.probe_interval {
                Some(every) => Some(probe_stream::start(sites, every.0, tcp.duration.0, t0)?),
                None => None,
            };
            let sampler = emu
                .map(|e| emulator::sample_links(e.control_path.clone(), t0, tcp.interval.0))
                .transpose()?;
            // The far appliance receives the transfer: its reorder buffers over time.
            let reorder = pair
                .map(|p| {
                    appliance_tunnel::sample_reorder(
                        p.socket(Site::B).to_path_buf(),
                        t0,
                        tcp.interval.0,
                    )
                })
                .transpose()?;
            let health = match (pair, tcp.health_interval) {
                (Some(p), Some(every)) => Some(appliance_tunnel::sample_health(
                    p.control.clone(),
                    p.pids(),
                    t0,
                    every.0,
                )?),
                _ => None,
            };
            let json = iperf::run_client(
                &sites.host_a.ns,
                &setup.wrapper,
                &args,
                tcp.duration.0 + Duration::from_secs(30),
            );
            let wall = t0.elapsed().as_secs_f64();
            let emulator_cpu_pct =
                (emu_pid.map_or(0.0, process_cpu_seconds) - emu_cpu) / wall * 100.0;
            let system_cpu_s = system_cpu().zip(system_before).map(|(now, b)| now - b);
            let machine_now = CpuTimes::now();
            let machine_busy_pct = machine_now.busy_pct_since(&machine_before);
            let machine_cpu_s = machine_now.busy_seconds_since(&machine_before);
            let applied = events.map(|e| e.finish()).transpose()?.unwrap_or_default();
            let probes = probes.map(probe_stream::ProbeRun::finish).transpose()?;
            let links = sampler.map(|s| s.finish()).transpose()?.unwrap_or_default();
            let reorder = reorder.map(|r| r.finish()).transpose()?.unwrap_or_default();
            let health = health.map(|h| h.finish()).transpose()?.unwrap_or_default();
            let client = json?;
            let outcome = iperf::parse_tcp(&client, &iperf::server_report(server)?)?;
            // CPU per Gbit delivered: iperf3's receiver rate over its own duration.
            let gbit = outcome.received_mbps * tcp.duration.0.as_secs_f64() / 1000.0;
            let per_gbit = |cpu_s: f64| (gbit > 0.0).then(|| cpu_s / gbit);
            let congestion = iperf::sender_congestion(&client);
            let evidence = if matches!(system, System::LinuxMptcp | System::ApplianceSourceSubnet) {
                linux_mptcp::counters(&sites.host_a.ns)?
            } else {
                serde_json::Value::Null
            };
            Ok(TcpVariant {
                name: variant.name.clone(),
                error: None,
                events: applied,
                intervals: outcome.intervals,
                sent_mbps: outcome.sent_mbps,
                received_mbps: outcome.received_mbps,
                retransmits: outcome.retransmits,
                links,
                summary: None,
                congestion,
                emulator_cpu_pct,
                machine_busy_pct,
                system_cpu_pct: system_cpu_s.map(|c| c / wall * 100.0),
                machine_cpu_s_per_gbit: per_gbit(machine_cpu_s),
                system_cpu_s_per_gbit: system_cpu_s.and_then(per_gbit),
                evidence,
                emulator: serde_json::Value::Null,
                probes,
                reorder,
                health,
            })
        },
    )?;
    v.emulator = snap
        .map(|s| serde_json::to_value(&s))
        .transpose()?
        .unwrap_or_default();
    v.summary = Some(analysis::tcp_summary(&spec.links, tcp, &v));
    Ok(v)
}

fn udp_row(
    spec: &Scenario,
    udp: &UdpSweepSpec,
    system: System,
    opts: &RunOptions,
    notes: &mut Vec<String>,
) -> (RowData, Option<String>) {
    let mut steps = Vec::new();
    let result = with_sites(
        spec,
        system,
        ("", 1, None),
        opts,
        |sites, setup, emu, _pair| {
            let mut ctl = emu
                .context("a UDP sweep needs the emulator's counters (wan = \"emulated\")")?
                .control()?;
            notes.extend(setup.notes.iter().cloned());
            for &size in &udp.sizes {
                for rate in &udp.rates {
                    let offered = rate.0 as f64 / 1e6;
                    let before = ctl.show()?;
                    let mut step = udp_step(sites, udp, size, rate.0).unwrap_or_else(|e| UdpStep {
                        size,
                        offered_mbps: offered,
                        sent_mbps: 0.0,
                        received_mbps: 0.0,
                        packets: 0,
                        lost: 0,
                        loss_pct: 0.0,
                        jitter_ms: 0.0,
                        link_mbps: vec![],
                        error: Some(describe(&e)),
                    });
                    let after = ctl.show()?;
                    step.link_mbps = link_rates_between(&before, &after);
                    progress(
                    spec,
                    system,
                    &format!(
                        "{size} B at {offered:.1} Mbit/s: received {:.2} Mbit/s, loss {:.3} %, jitter {:.3} ms{}",
                        step.received_mbps,
                        step.loss_pct,
                        step.jitter_ms,
                        step.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                );
                    steps.push(step);
                    // Let the emulator's queues drain between steps.
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            Ok(())
        },
    );
    let mut error = result.err().map(|e| describe(&e));
    if error.is_none() {
        if let Some(s) = steps.iter().find(|s| s.error.is_some()) {
            error = Some(format!(
                "{} B at {:.1} Mbit/s: {}",
                s.size,
                s.offered_mbps,
                s.error.as_deref().unwrap_or_default()
            ));
        }
    }
    (RowData::UdpSweep { steps }, error)
}

/// Each link's a→b rate between two emulator snapshots (its own clock).
fn link_rates_between(before: &Snapshot, after: &Snapshot) -> Vec<(String, f64)> {
    let dt = after.uptime_us.saturating_sub(before.uptime_us) as f64 / 1e6;
    after
        .links
        .iter()
        .map(|l| {
            let b0 = before.link(&l.name).map_or(0, |x| x.a_to_b.stats.bytes);
            let bytes = l.a_to_b.stats.bytes.saturating_sub(b0);
            let mbps = if dt > 0.0 {
                bytes as f64 * 8.0 / dt / 1e6
            } else {
                0.0
            };
            (l.name.clone(), mbps)
        })
        .collect()
}

/// One UDP step. UDP never goes through MPTCP, so iperf3 runs without the row's wrapper.
fn udp_step(sites: &Sites, udp: &UdpSweepSpec, size: u32, bps: u64) -> Result<UdpStep> {
    let server = iperf::start_server(&sites.host_b.ns, &[], sites.host_b.addr, udp.step.0)?;
    let args = iperf::udp_args(sites.host_b.addr, size, bps, udp.parallel, udp.step.0);
    let json = iperf::run_client(
        &sites.host_a.ns,
        &[],
        &args,
        udp.step.0 + Duration::from_secs(20),
    );
    let _ = iperf::server_report(server);
    let u = iperf::parse_udp(&json?)?;
    Ok(UdpStep {
        size,
        offered_mbps: bps as f64 / 1e6,
        sent_mbps: u.sent_mbps,
        received_mbps: u.received_mbps,
        packets: u.packets,
        lost: u.lost,
        loss_pct: u.loss_pct,
        jitter_ms: u.jitter_ms,
        link_mbps: vec![],
        error: None,
    })
}

// ---------------------------------------------------------------- relay (multicast)

/// The relay topology with `system` running on it for `plan`.
struct RelayRun {
    // The guard stops the relay before the topology goes (fields drop in order).
    guard: RelayGuard,
    delivered: Vec<StreamPlan>,
    relay: Relay,
}

impl RelayRun {
    /// One multicast trial of `plan` through this relay.
    fn trial(&self, tools: &Tools, plan: &[StreamPlan], trial: Trial) -> Result<McastRun> {
        mcast::run(
            &self.relay,
            tools,
            &self.guard,
            plan,
            &self.delivered,
            trial,
        )
    }
}

fn start_relay(system: System, plan: &[StreamPlan], tools: &Tools) -> Result<RelayRun> {
    let r = if system.linux_routers() {
        relay_linux(1, 1)?
    } else {
        relay(1, 1)?
    };
    let guard = match system {
        System::LinuxSocat => linux_socat::setup(&r, plan)?,
        System::LinuxSmcroute => linux_smcroute::setup(&r, plan)?,
        System::Appliance => appliance::setup(&r, plan, tools, appliance::Workers::Two)?,
        System::Appliance1w => appliance::setup(&r, plan, tools, appliance::Workers::One)?,
        other => bail!("{other} does not run on the relay topology"),
    };
    let delivered = if system == System::LinuxSmcroute {
        linux_smcroute::delivered(plan)
    } else {
        plan.to_vec()
    };
    Ok(RelayRun {
        guard,
        delivered,
        relay: r,
    })
}

/// One short, unrecorded trial: joins, ARP and route caches are settled before measuring.
fn warm_up(run: &RelayRun, plan: &[StreamPlan], tools: &Tools, size: u32) -> Result<()> {
    run.trial(
        tools,
        plan,
        Trial {
            pps: 50.0,
            size,
            duration: Duration::from_millis(500),
        },
    )
    .context("warm-up trial")
    .map(drop)
}

/// Stops the relay and returns what it reported; an exit during the run is an error.
fn finish_relay(mut run: RelayRun, notes: &mut Vec<String>) -> Result<serde_json::Value> {
    let alive = run.guard.all_running();
    notes.append(&mut run.guard.notes);
    let report = std::mem::take(&mut run.guard).stop()?;
    if !alive {
        bail!("the relay exited during the run: {}", report["stderr"]);
    }
    Ok(report)
}

fn smcroute_unavailable(system: System, fanout: u32) -> Option<String> {
    (system == System::LinuxSmcroute)
        .then(|| linux_smcroute::unavailable(fanout))
        .flatten()
}

fn mcast_row(
    m: &McastSpec,
    system: System,
    opts: &RunOptions,
    notes: &mut Vec<String>,
) -> (RowData, Option<String>) {
    if let Some(reason) = smcroute_unavailable(system, m.fanout) {
        return (RowData::None, Some(reason));
    }
    let result = (|| -> Result<McastRun> {
        let plan = mcast_plan::plan(m.streams, m.fanout);
        let run = start_relay(system, &plan, &opts.tools)?;
        warm_up(&run, &plan, &opts.tools, m.size)?;
        let trial = Trial {
            pps: m.pps,
            size: m.size,
            duration: m.duration.0,
        };
        let mut measured = run.trial(&opts.tools, &plan, trial)?;
        measured.relay_report = finish_relay(run, notes)?;
        Ok(measured)
    })();
    match result {
        Ok(run) => (RowData::Mcast { run: Box::new(run) }, None),
        Err(e) => (RowData::None, Some(describe(&e))),
    }
}

fn zero_loss_row(
    spec: &Scenario,
    z: &ZeroLossSpec,
    system: System,
    opts: &RunOptions,
    notes: &mut Vec<String>,
) -> (RowData, Option<String>) {
    let mut cases = Vec::new();
    let mut error = None;
    for c in &z.cases {
        let mut case = ZeroLossCase {
            streams: c.streams,
            fanout: c.fanout,
            status: Status::Ok,
            error: None,
            trials: vec![],
            max_zero_loss_pps: None,
            first_lossy_pps: None,
            max_zero_loss_measured_pps: None,
            generator_limit_pps: None,
            relay_report: serde_json::Value::Null,
        };
        if let Some(reason) = smcroute_unavailable(system, c.fanout) {
            case.status = Status::NotAvailable;
            case.error = Some(reason);
            cases.push(case);
            continue;
        }
        progress(
            spec,
            system,
            &format!("{} streams, 1:{} fan-out", c.streams, c.fanout),
        );
        let result = (|| -> Result<()> {
            let plan = mcast_plan::plan(c.streams, c.fanout);
            let run = start_relay(system, &plan, &opts.tools)?;
            warm_up(&run, &plan, &opts.tools, z.size)?;
            let outcome = zero_loss::search(z, |total_pps| {
                let trial = Trial {
                    pps: total_pps / f64::from(c.streams),
                    size: z.size,
                    duration: z.step.0,
                };
                let measured = run.trial(&opts.tools, &plan, trial)?;
                let t = &measured.totals;
                // Exactly once and in order: nothing lost, duplicated or reordered.
                let delivered = t.expected > 0
                    && t.lost == 0
                    && t.unique == t.expected
                    && t.duplicates == 0
                    && t.reordered == 0;
                let late = z
                    .max_p99_latency
                    .is_some_and(|d| t.latency_p99_worst_us > d.0.as_secs_f64() * 1e6);
                let clean = delivered && !late;
                let limited = t.input_pps < GENERATOR_REACH * total_pps;
                // A generator that fell behind still tells us something when the relay lost
                // datagrams at the rate it did reach.
                let verdict = match (clean, limited) {
                    (true, false) => zero_loss::Verdict::Clean,
                    (true, true) => zero_loss::Verdict::OutOfReach,
                    (false, _) => zero_loss::Verdict::Lossy,
                };
                progress(
                    spec,
                    system,
                    &format!(
                        "  {total_pps:.0} pps in (reached {:.0}): {} of {} delivered, p99 {:.1} ms{}",
                        t.input_pps,
                        t.unique,
                        t.expected,
                        t.latency_p99_worst_us / 1000.0,
                        match verdict {
                            zero_loss::Verdict::Clean => " (zero loss)",
                            zero_loss::Verdict::Lossy if late => " (late: the relay queued)",
                            zero_loss::Verdict::Lossy => "",
                            zero_loss::Verdict::OutOfReach => " (generator could not keep up)",
                        }
                    ),
                );
                // Let a relay that fell behind drain its queues, or the next trial starts
                // behind the backlog of this one (the sinks ignore the stale datagrams, but
                // the relay's queues would still be full).
                std::thread::sleep(TRIAL_SETTLE);
                case.trials.push(ZeroLossTrial {
                    target_pps: total_pps,
                    zero_loss: clean,
                    generator_limited: limited,
                    late,
                    run: measured,
                });
                Ok(verdict)
            })?;
            case.max_zero_loss_pps = outcome.max_clean;
            case.first_lossy_pps = outcome.first_lossy;
            case.generator_limit_pps = outcome.out_of_reach;
            // A trial the generator could not offer at its full target still delivered
            // everything at the rate it did reach: that rate counts as zero-loss too.
            case.max_zero_loss_measured_pps = case
                .trials
                .iter()
                .filter(|t| t.zero_loss)
                .map(|t| t.run.totals.input_pps)
                .reduce(f64::max);
            case.relay_report = finish_relay(run, notes)?;
            Ok(())
        })();
        if let Err(e) = result {
            let msg = describe(&e);
            error.get_or_insert_with(|| format!("{} streams 1:{}: {msg}", c.streams, c.fanout));
            case.status = Status::Failed;
            case.error = Some(msg);
        }
        cases.push(case);
    }
    notes.dedup();
    (RowData::ZeroLoss { cases }, error)
}
