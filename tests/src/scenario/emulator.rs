//! The WAN emulator during a scenario: its config from the scenario's `[[links]]`, a thread
//! that applies the variant's events on time through the control socket, and a thread that
//! samples every link's counters once per reporting interval.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::result::{AppliedEvent, LinkCounters, LinkSample};
use super::schedule::Step;
use super::spec::LinkSpec;
use crate::topology::Sites;
use crate::wanem::{Config, Control, DropReason, LinkConfig, Snapshot};

/// The emulator config: scenario link i bridges the sites' WAN link i.
pub fn config(links: &[LinkSpec], sites: &Sites) -> Config {
    Config {
        control: None,
        links: links
            .iter()
            .zip(&sites.links)
            .map(|(spec, wan)| LinkConfig {
                name: spec.name.clone(),
                a_iface: wan.emu_a_iface.clone(),
                b_iface: wan.emu_b_iface.clone(),
                state: "up".into(),
                both: None,
                a_to_b: Some(spec.dir(0)),
                b_to_a: Some(spec.dir(1)),
                ..Default::default()
            })
            .collect(),
        events: vec![],
    }
}

/// A background thread that stops when told to and returns what it gathered.
#[derive(Debug)]
pub struct Worker<T> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<T>>,
}

impl<T: Send + 'static> Worker<T> {
    /// Runs `f` on a thread named `name`; `f` returns once the flag it is given is set.
    pub fn spawn(
        name: &str,
        f: impl FnOnce(&AtomicBool) -> Result<T> + Send + 'static,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || f(&flag))?;
        Ok(Worker { stop, handle })
    }
}

impl<T> Worker<T> {
    pub fn finish(self) -> Result<T> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| anyhow!("emulator thread panicked"))?
    }
}

/// Sleeps until `due` or until `stop`; false if stopped.
pub fn wait_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(20)));
    }
}

/// Applies `steps` at `t0 + step.at`, recording when the emulator confirmed each.
pub fn apply_events(
    control: PathBuf,
    steps: Vec<Step>,
    t0: Instant,
) -> Result<Worker<Vec<AppliedEvent>>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut ctl = Control::connect(&control)?;
    let handle = std::thread::Builder::new()
        .name("scenario-events".into())
        .spawn(move || {
            let mut applied = Vec::new();
            for s in steps {
                if !wait_until(t0 + s.at, &flag) {
                    break;
                }
                ctl.cmd(&s.command)?;
                applied.push(AppliedEvent {
                    at_s: s.at.as_secs_f64(),
                    applied_s: t0.elapsed().as_secs_f64(),
                    link: s.link,
                    action: s.action.into(),
                    command: s.command,
                });
            }
            Ok(applied)
        })?;
    Ok(Worker { stop, handle })
}

/// Samples every link's counters at `t0`, `t0 + interval`, ... until finished.
pub fn sample_links(
    control: PathBuf,
    t0: Instant,
    interval: Duration,
) -> Result<Worker<Vec<LinkSample>>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut ctl = Control::connect(&control)?;
    let handle = std::thread::Builder::new()
        .name("scenario-links".into())
        .spawn(move || {
            let mut samples = Vec::new();
            let mut due = t0;
            // Times come from the emulator's own clock (`uptime_us`, read with the counters),
            // anchored to the runner's clock at the first sample, so a reply that reaches
            // this thread late does not skew a rate.
            let mut anchor: Option<(u64, f64)> = None;
            while wait_until(due, &flag) {
                let snap = ctl.show()?;
                let (up0, t_first) =
                    *anchor.get_or_insert((snap.uptime_us, t0.elapsed().as_secs_f64()));
                samples.push(LinkSample {
                    t: t_first + snap.uptime_us.saturating_sub(up0) as f64 / 1e6,
                    links: counters(&snap),
                });
                due += interval;
            }
            Ok(samples)
        })?;
    Ok(Worker { stop, handle })
}

/// The byte and drop counters of every link in a snapshot.
pub fn counters(snap: &Snapshot) -> Vec<LinkCounters> {
    snap.links
        .iter()
        .map(|l| LinkCounters {
            link: l.name.clone(),
            a_to_b_bytes: l.a_to_b.stats.bytes,
            b_to_a_bytes: l.b_to_a.stats.bytes,
            a_to_b_dropped: l.a_to_b.stats.dropped_total(),
            b_to_a_dropped: l.b_to_a.stats.dropped_total(),
        })
        .collect()
}

/// Drops of one reason, for notes.
pub fn dropped(snap: &Snapshot, link: &str, reason: DropReason) -> u64 {
    snap.link(link).map_or(0, |l| {
        l.a_to_b.stats.dropped(reason) + l.b_to_a.stats.dropped(reason)
    })
}
