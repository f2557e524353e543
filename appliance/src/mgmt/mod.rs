//! The management lcore's event loop: it sleeps until its next timer
//! deadline, a punted packet or a control request, whichever comes first, and
//! hands each to the part that owns it.
//!
//! - Punted packets (ARP, ICMP, IGMP, BFD, probes, unresolved next hops) go
//!   to the slow path ([`SlowPath::handle_punts`]). A worker that punted
//!   rings the [`Doorbell`] after its flush, which wakes the loop only if it
//!   sleeps, so an idle appliance does not wake to look at empty rings, and
//!   a punt is answered without waiting for a poll.
//! - Control requests arrive on a channel; the control thread wakes the loop
//!   as it sends ([`crate::api::ChangeSender`]), so a change is applied at
//!   once.
//! - Timers are kept on the TSC ([`crate::time`]): the slow path's own (ARP,
//!   IGMP, neighbour aging, relay next hops) and the loop's (rate sampling,
//!   systemd's watchdog, the idle stop of golden tests). The loop sleeps until
//!   the earliest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::api::{Change, Request, Response, ShowWhat};
use crate::config::tunnel::{BfdConfig, Span};
use crate::config::{Config, HwProfile, LogLevel, MgmtPriority, RouteConfig};
use crate::dataplane::doorbell::Doorbell;
use crate::reload::{PeerChange, Planned, Reloader, Step};
use crate::report::StatsSource;
use crate::service::ServiceManager;
use crate::slowpath::SlowPath;
use crate::stats::SAMPLE_EVERY;
use crate::tables::{NextHop, NextHop6, RouteKind, Tables};
use crate::time::{Clock, Time, Timers};

/// Rounds in a row with work after which the loop pauses anyway, for
/// [`FLOOD_PAUSE`].
const BUSY_ROUNDS_MAX: u32 = 64;

/// The pause under a flood of punts: at real-time priority the loop would
/// otherwise keep its CPU from every ordinary thread.
const FLOOD_PAUSE: Duration = Duration::from_micros(200);

/// Longest sleep, which bounds how late the loop sees SIGINT or SIGTERM
/// (their handler sets a flag and wakes no thread).
const PARK_MAX: Duration = Duration::from_millis(50);

/// How often the idle stop checks for traffic.
const IDLE_CHECK: Duration = Duration::from_millis(10);

/// The loop's own timers (the slow path keeps its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum MgmtTimer {
    /// Sample the per-second rates of ports and relay rules.
    RateSample,
    /// Stop if no packet arrived for the idle time (golden tests).
    IdleCheck,
    /// Check that every worker loops, and ping systemd's watchdog if so.
    Watchdog,
}

/// Why the loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGINT or SIGTERM.
    Signal,
    /// No packet for the configured idle time.
    Idle,
}

/// The management lcore's state.
#[derive(Debug)]
pub struct Mgmt {
    clock: Clock,
    slow: SlowPath,
    changes: mpsc::Receiver<Change>,
    doorbell: Doorbell,
    source: Arc<StatsSource>,
    timers: Timers<MgmtTimer>,
    last_rate_sample: Time,
    exit_when_idle: Option<Duration>,
    /// Packets the workers had received at the last idle check, and when that
    /// number last changed.
    idle_seen: (u64, Time),
    ops: Operations,
}

/// How the loop runs as a service: what it tells the service manager, and the files it
/// reloads on request or SIGHUP.
#[derive(Debug)]
pub struct Operations {
    /// READY, STOPPING and the watchdog.
    pub service: ServiceManager,
    /// The files and what of them is in force.
    pub reloader: Reloader,
    /// Set by SIGHUP: reload the files.
    pub hangup: Arc<AtomicBool>,
}

impl Mgmt {
    /// A loop over `slow`, answering `changes` and woken by the workers'
    /// `doorbell` (on this thread); `exit_when_idle` stops it after that long
    /// without a received packet; `ops.service` is told when it is ready and
    /// stops, and its watchdog pinged while the workers loop.
    pub fn new(
        clock: Clock,
        slow: SlowPath,
        changes: mpsc::Receiver<Change>,
        doorbell: Doorbell,
        source: Arc<StatsSource>,
        exit_when_idle: Option<Duration>,
        ops: Operations,
    ) -> Self {
        let now = clock.now();
        let mut timers = Timers::new();
        timers.arm(MgmtTimer::RateSample, now + SAMPLE_EVERY);
        if exit_when_idle.is_some() {
            timers.arm(MgmtTimer::IdleCheck, now + IDLE_CHECK);
        }
        if let Some(every) = ops.service.watchdog_every() {
            timers.arm(MgmtTimer::Watchdog, now + every);
        }
        Self {
            clock,
            slow,
            changes,
            doorbell,
            source,
            timers,
            last_rate_sample: now,
            exit_when_idle,
            idle_seen: (u64::MAX, now),
            ops,
        }
    }

    /// Announces our addresses, joins the configured groups and tells the
    /// service manager the appliance is ready (the workers run by now).
    pub fn start(&mut self) {
        let now = self.clock.now();
        self.slow.announce(now);
        self.slow.join_configured_groups(now);
        let ports: Vec<&str> = self.source.ports.iter().map(|p| p.name.as_str()).collect();
        self.ops.service.ready(&format!(
            "forwarding: {} workers, ports {}",
            self.source.workers.len(),
            ports.join(", ")
        ));
    }

    /// Tells the service manager the appliance is stopping.
    pub fn stopping(&self) {
        self.ops.service.stopping();
    }

    /// Runs until `stop` is set (or the idle stop fires), at `priority`.
    pub fn run(&mut self, stop: &AtomicBool, priority: MgmtPriority) -> Stopped {
        crate::time::set_timer_slack();
        if priority == MgmtPriority::Realtime {
            if let Err(e) = crate::time::set_realtime_priority() {
                log::warn!(
                    "management lcore stays an ordinary thread ({e}): its timers may fire late \
                     while the CPUs are busy"
                );
            }
        }
        let mut busy_rounds = 0u32;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Stopped::Signal;
            }
            let now = self.clock.now();
            self.slow.run_timers(now);
            if let Some(stopped) = self.run_timers(now) {
                return stopped;
            }
            let mut work = self.slow.handle_punts(now);
            while let Ok(change) = self.changes.try_recv() {
                work += 1;
                let response = match change.request {
                    Request::Reload { dry_run } => self.reload(dry_run, now),
                    Request::PeerAdd { peers, replace } => {
                        self.change_peers(&PeerChange::Add { peers, replace }, now)
                    }
                    Request::PeerDel { names } => {
                        self.change_peers(&PeerChange::Del { names }, now)
                    }
                    Request::Show {
                        what: ShowWhat::Config,
                    } => self.running_config(),
                    request => self.slow.apply(request, now),
                };
                let _ = change.reply.send(response);
            }
            if self.ops.hangup.swap(false, Ordering::Relaxed) {
                work += 1;
                log::info!("SIGHUP: reloading");
                self.reload(false, now);
            }
            busy_rounds = if work == 0 { 0 } else { busy_rounds + 1 };
            if work == 0 {
                self.sleep(now);
            } else if busy_rounds >= BUSY_ROUNDS_MAX {
                busy_rounds = 0;
                std::thread::park_timeout(FLOOD_PAUSE);
            }
        }
    }

    /// Sleeps until the earliest timer unless a punt is already waiting; a
    /// worker's punt (the doorbell) or a control request (its sender unparks
    /// this thread) wakes it early.
    fn sleep(&mut self, now: Time) {
        let mut until = now + PARK_MAX;
        for deadline in [self.slow.next_deadline(), self.timers.next_deadline()]
            .into_iter()
            .flatten()
        {
            until = until.min(deadline);
        }
        if until <= now {
            return;
        }
        if self
            .doorbell
            .park(until - now, || self.slow.punts_pending())
        {
            self.source.slow.mgmt_sleeps.inc();
        }
    }

    fn run_timers(&mut self, now: Time) -> Option<Stopped> {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                MgmtTimer::RateSample => {
                    self.source
                        .sample_rates(now.duration_since(self.last_rate_sample));
                    self.last_rate_sample = now;
                    self.timers.arm(MgmtTimer::RateSample, now + SAMPLE_EVERY);
                }
                MgmtTimer::IdleCheck => {
                    let idle = self.exit_when_idle?;
                    let rx = self.source.worker_rx_packets();
                    if rx != self.idle_seen.0 {
                        self.idle_seen = (rx, now);
                    } else if now.duration_since(self.idle_seen.1) >= idle {
                        log::info!("no packet for {idle:?}: stopping");
                        return Some(Stopped::Idle);
                    }
                    self.timers.arm(MgmtTimer::IdleCheck, now + IDLE_CHECK);
                }
                MgmtTimer::Watchdog => {
                    let polls: Vec<u64> = self
                        .source
                        .workers
                        .iter()
                        .map(|w| w.counters.polls.get())
                        .collect();
                    self.ops.service.watchdog(&polls);
                    if let Some(every) = self.ops.service.watchdog_every() {
                        self.timers.arm(MgmtTimer::Watchdog, now + every);
                    }
                }
            }
        }
        None
    }

    /// Reads both files again and applies what changed, one step at a time (requests through
    /// the same paths as the control socket's); a step that fails undoes the ones before it.
    /// A dry run only answers what would change, or why it would be refused.
    fn reload(&mut self, dry_run: bool, now: Time) -> Response {
        let (plan, files) = match self.ops.reloader.read() {
            Ok(p) => p,
            Err(e) if dry_run => return Response::err(format!("reload would be refused: {e}")),
            Err(e) => {
                log::error!("reload refused: {e}");
                return Response::err(format!("reload refused: {e}"));
            }
        };
        if dry_run {
            let changes = plan.changes();
            return Response::ok(serde_json::json!({ "changes": changes, "dry_run": true }));
        }
        self.apply_plan(plan, files, now, "reload")
    }

    /// Adds, changes or removes tunnel peers as a reload to the running
    /// config with those peers changed would: checked as `--check` checks a
    /// file, then the same plan and steps (the other peers carry on
    /// untouched). The running config holds them from then on (`show
    /// config`), until a reload makes the file's peers those in force
    /// again.
    fn change_peers(&mut self, change: &PeerChange, now: Time) -> Response {
        let (profile, old) = self.ops.reloader.files();
        let mut new = old.clone();
        if let Err(e) = change.edit(&mut new) {
            return Response::err(format!("{}: {e}; nothing changed", change.verb()));
        }
        // Through the file format and its checks: every mistake is named by its key.
        let checked = new.to_toml().map_err(|e| e.to_string()).and_then(|text| {
            Config::parse(std::path::Path::new(change.verb()), &text, profile)
                .map_err(|e| e.to_string())
        });
        let new = match checked {
            Ok(c) => c,
            Err(e) => return Response::err(format!("{e}; nothing changed")),
        };
        if let Err(e) = crate::reload::key_print(&new) {
            return Response::err(format!(
                "{}: tunnel.{}: {}; nothing changed",
                change.verb(),
                e.key,
                e.what
            ));
        }
        let plan = match crate::reload::plan((profile, old), (profile, &new)) {
            Ok(p) => p,
            Err(keys) => {
                return Response::err(format!(
                    "{}: these cannot change while running: {}; nothing changed",
                    change.verb(),
                    keys.join(", ")
                ))
            }
        };
        let files = (profile.clone(), new);
        self.apply_plan(plan, files, now, change.verb())
    }

    /// Applies `plan`, the way from the files in force to `files`, one step at a time; a
    /// step that fails undoes the ones before it. `what` names it in logs and replies.
    fn apply_plan(
        &mut self,
        plan: crate::reload::Plan,
        files: (HwProfile, Config),
        now: Time,
        what: &str,
    ) -> Response {
        let changes = plan.changes();
        let keys = plan.keys();
        // What the file removes but a request removed already is done: not a failure.
        let tables = self.source.tables.current();
        let statics = static_routes(&tables);
        let gone = |s: &Step| match s {
            Step::Request(Request::RouteDel { prefix }) => {
                !statics.iter().any(|x| x.prefix == *prefix)
            }
            Step::Request(Request::McastDel { input }) => {
                !tables.mcast.rules.iter().any(|x| x.spec.input == *input)
            }
            _ => false,
        };
        let steps: Vec<Planned> = plan
            .steps
            .into_iter()
            .filter(|s| {
                let skip = gone(&s.step);
                if skip {
                    log::info!("{what}: {} (already gone)", s.changes.join("; "));
                }
                !skip
            })
            .collect();
        drop(tables);
        for (i, planned) in steps.into_iter().enumerate() {
            let change = planned.changes.join("; ");
            if let Err(why) = self.apply_step(planned.step, now) {
                let undo = self.ops.reloader.undo(&files);
                for s in undo.steps {
                    // What was not applied yet cannot be undone: its error is expected.
                    let _ = self.apply_step(s.step, now);
                }
                log::error!("{what} failed at {change:?}: {why}; the {i} steps before it undone");
                return Response::err(format!(
                    "{what} failed at {change:?}: {why}; nothing of it stays applied"
                ));
            }
            for c in &planned.changes {
                log::info!("{what}: {c}");
            }
        }
        log::info!("{what}: {} changes applied", changes.len());
        self.ops.reloader.applied(files, keys);
        Response::ok(serde_json::json!({ "changes": changes }))
    }

    /// One step of a reload.
    fn apply_step(&mut self, step: Step, now: Time) -> Result<(), String> {
        match step {
            Step::Request(request) => {
                let r = self.slow.apply(request, now);
                if r.ok {
                    Ok(())
                } else {
                    Err(r.error.unwrap_or_default())
                }
            }
            Step::Idle(idle) => {
                self.slow.state.set_idle(idle);
                Ok(())
            }
            Step::Neighbors(neighbors) => {
                let statics: Vec<_> = neighbors.iter().map(|n| (n.address, n.mac)).collect();
                self.slow.state.set_static_neighbors(&statics, now);
                Ok(())
            }
            Step::SlowPath(cfg) => {
                self.slow.set_config(cfg);
                Ok(())
            }
            Step::Log(log) => {
                let level = log
                    .level
                    .map_or_else(crate::logging::default_level, |l| l.filter());
                crate::logging::set_level(level);
                Ok(())
            }
            Step::Tunnel { config, rekey } => self.slow.reconfigure_tunnel(&config, rekey, now),
        }
    }

    /// The running config as a file: the one last applied, with the static routes, relay
    /// rules and BFD timers as they are now (changed by requests since).
    fn running_config(&self) -> Response {
        let mut c = self.ops.reloader.config().clone();
        c.log.level = Some(LogLevel::of(crate::logging::level()));
        let tables = self.source.tables.current();
        c.routes = static_routes(&tables);
        c.mcast_rules = tables.mcast.rules.iter().map(|r| r.spec.clone()).collect();
        if let Some(t) = c.tunnel.as_mut() {
            for report in self.source.paths() {
                // The path in the file: under its peer when the tunnel lists them.
                let paths = if t.peers.is_empty() {
                    Some(&mut t.paths)
                } else {
                    t.peers
                        .iter_mut()
                        .find(|p| p.name == report.peer)
                        .map(|p| &mut p.paths)
                };
                let (Some(status), Some(p)) = (
                    report.bfd.as_ref(),
                    paths.and_then(|ps| ps.iter_mut().find(|p| p.name == report.name)),
                ) else {
                    continue;
                };
                let running = BfdConfig {
                    desired_min_tx: Span::from_micros(status.desired_min_tx_us),
                    required_min_rx: Span::from_micros(status.required_min_rx_us),
                    detect_mult: status.detect_mult,
                    ..p.bfd.unwrap_or(t.bfd)
                };
                if running != p.bfd.unwrap_or(t.bfd) {
                    p.bfd = Some(running);
                }
            }
        }
        match c.to_toml() {
            Ok(text) => Response::ok(serde_json::json!({ "config": text })),
            Err(e) => Response::err(format!("the running config cannot be written: {e}")),
        }
    }

    /// Leaves every multicast group and stops advertising the appliance as a
    /// router (before the workers stop, so the messages go out while the
    /// ports still run).
    pub fn leave_groups(&mut self) {
        let now = self.clock.now();
        self.slow.leave_all_groups(now);
        self.slow.retire_router();
        self.slow.leave_ipv6_groups();
    }

    /// After the workers stopped: answers what they punted last, then frees
    /// everything the slow path holds.
    pub fn finish(mut self) {
        let now = self.clock.now();
        self.slow.handle_punts(now);
        self.slow.drain();
    }
}

/// The static routes of `tables` (from the config or requests) with a next hop, as the
/// config writes them.
fn static_routes(tables: &Tables) -> Vec<RouteConfig> {
    let v4 = tables
        .routes
        .routes()
        .into_iter()
        .filter(|r| r.kind == RouteKind::Static)
        .filter_map(|r| match r.next_hop {
            NextHop::Gateway { via, .. } => Some(RouteConfig {
                prefix: r.prefix.into(),
                via: via.into(),
            }),
            _ => None,
        });
    let v6 = tables
        .routes6
        .routes()
        .into_iter()
        .filter(|r| r.kind == RouteKind::Static)
        .filter_map(|r| match r.next_hop {
            NextHop6::Gateway { via, .. } => Some(RouteConfig {
                prefix: r.prefix.into(),
                via: via.into(),
            }),
            NextHop6::Connected { .. } | NextHop6::Tunnel(_) => None,
        });
    v4.chain(v6).collect()
}
