//! The running emulator: opens the ports, starts two forwarding threads per link, applies
//! changes (from the control socket or the event schedule) and reports counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::carrier;
use super::config::{Action, Config, DirParams, DirPatch, Direction, Event, LinkState};
use super::forwarder::Forwarder;
use super::link::SharedLink;
use super::port::Port;
use super::stats::DirSnapshot;

/// A change to one link.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    State(LinkState),
    Set(Direction, DirPatch),
}

impl Change {
    fn describe(&self) -> String {
        match self {
            Change::State(s) => format!("state {s}"),
            Change::Set(d, p) => format!(
                "set {} {}",
                serde_json::to_string(d)
                    .unwrap_or_default()
                    .trim_matches('"'),
                serde_json::to_string(p).unwrap_or_default()
            ),
        }
    }
}

/// One applied change, with the emulator's own timestamps (µs since forwarding started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The scheduled time, for events from the config file; `None` for control commands.
    pub at_us: Option<u64>,
    /// When the change took effect.
    pub applied_us: u64,
    pub link: String,
    pub change: String,
}

/// One direction in `show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirView {
    pub params: DirParams,
    #[serde(flatten)]
    pub stats: DirSnapshot,
}

/// One link in `show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    pub name: String,
    pub a_iface: String,
    pub b_iface: String,
    pub state: String,
    pub a_to_b: DirView,
    pub b_to_a: DirView,
}

/// The reply to `show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub uptime_us: u64,
    pub links: Vec<LinkView>,
    pub events: Vec<EventRecord>,
}

impl Snapshot {
    pub fn link(&self, name: &str) -> Option<&LinkView> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// The emulator: shared state plus its threads.
#[derive(Debug)]
pub struct Emulator {
    /// Time zero for events and every timestamp reported.
    pub start: Instant,
    pub links: Vec<Arc<SharedLink>>,
    pub shutdown: Arc<AtomicBool>,
    log: Mutex<Vec<EventRecord>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Emulator {
    /// Opens every interface and starts forwarding. `seed` makes the random draws
    /// reproducible (each direction gets its own stream).
    pub fn start(cfg: &Config, seed: u64) -> Result<Arc<Emulator>> {
        cfg.validate()?;
        let base = Instant::now();
        let mut opened = Vec::new();
        for l in &cfg.links {
            let a = Arc::new(Port::open(&l.a_iface).with_context(|| format!("link {}", l.name))?);
            let b = Arc::new(Port::open(&l.b_iface).with_context(|| format!("link {}", l.name))?);
            let link = SharedLink::new(l, base)?;
            if link.state() == LinkState::Down {
                carrier::set_link(&l.a_iface, &l.b_iface, false)
                    .with_context(|| format!("link {}: initial state down", l.name))?;
            }
            opened.push((Arc::new(link), a, b));
        }
        let start = Instant::now();
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, (link, a, b)) in opened.iter().enumerate() {
            for dir in 0..2 {
                let (rx, tx) = if dir == 0 { (a, b) } else { (b, a) };
                let fw = Forwarder {
                    dir,
                    link: link.clone(),
                    rx: rx.clone(),
                    tx: tx.clone(),
                    start,
                    shutdown: shutdown.clone(),
                    seed: seed ^ ((i as u64) << 8 | dir as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                };
                let name = format!("{}-{}", link.name, ["ab", "ba"][dir]);
                threads.push(
                    std::thread::Builder::new()
                        .name(name)
                        .spawn(move || fw.run())?,
                );
            }
        }
        Ok(Arc::new(Emulator {
            start,
            links: opened.into_iter().map(|(l, _, _)| l).collect(),
            shutdown,
            log: Mutex::new(Vec::new()),
            threads: Mutex::new(threads),
        }))
    }

    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub fn link(&self, name: &str) -> Result<&SharedLink> {
        match self.links.iter().find(|l| l.name == name) {
            Some(l) => Ok(l),
            None => bail!("no link named {name:?}"),
        }
    }

    /// Applies a change now and records it in the event log.
    pub fn apply(&self, link: &str, change: &Change, scheduled: Option<Duration>) -> Result<()> {
        let l = self.link(link)?;
        let applied_us;
        let mut describe = change.describe();
        match change {
            Change::State(s) => {
                let was_down = l.state() == LinkState::Down;
                let to_down = *s == LinkState::Down;
                if to_down && !was_down {
                    // Stop forwarding first (the very next frame is dropped), then drop the
                    // carrier, which takes a few milliseconds.
                    l.set_state(*s, Instant::now());
                    applied_us = self.now_us();
                    carrier::set_link(&l.a_iface, &l.b_iface, false)?;
                    describe.push_str(" (carrier off)");
                } else if was_down && !to_down {
                    // Carrier first: frames are sent only once the interfaces are up again.
                    carrier::set_link(&l.a_iface, &l.b_iface, true)?;
                    l.set_state(*s, Instant::now());
                    applied_us = self.now_us();
                    describe.push_str(" (carrier on)");
                } else {
                    l.set_state(*s, Instant::now());
                    applied_us = self.now_us();
                }
            }
            Change::Set(dir, patch) => {
                l.patch(*dir, patch)?;
                applied_us = self.now_us();
            }
        }
        let rec = EventRecord {
            at_us: scheduled.map(|d| d.as_micros() as u64),
            applied_us,
            link: link.to_owned(),
            change: describe,
        };
        log::info!("{rec:?}");
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(rec);
        Ok(())
    }

    /// Counters, parameters and the event log.
    pub fn snapshot(&self) -> Snapshot {
        let dir = |l: &SharedLink, d: usize| DirView {
            params: l.dirs[d].params(),
            stats: l.dirs[d].stats.snapshot(),
        };
        Snapshot {
            uptime_us: self.now_us(),
            links: self
                .links
                .iter()
                .map(|l| LinkView {
                    name: l.name.clone(),
                    a_iface: l.a_iface.clone(),
                    b_iface: l.b_iface.clone(),
                    state: l.state().to_string(),
                    a_to_b: dir(l, 0),
                    b_to_a: dir(l, 1),
                })
                .collect(),
            events: self.log.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Applies the scheduled events at their times, until they are done or shutdown.
    ///
    /// Sleeps until 2 ms before each event, then busy-waits, so an event takes effect
    /// within microseconds of its time even when a sleep wakes up late.
    pub fn run_events(&self, events: &[Event]) -> Result<()> {
        if let Err(e) = nix::sys::prctl::set_timerslack(1) {
            log::warn!("set_timerslack: {e}");
        }
        let mut sorted: Vec<&Event> = events.iter().collect();
        sorted.sort_by_key(|e| e.at);
        for ev in sorted {
            let due = self.start + ev.at.0;
            loop {
                if self.shutdown.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                let left = due - now;
                if left > Duration::from_millis(2) {
                    std::thread::sleep(
                        (left - Duration::from_millis(2)).min(Duration::from_millis(50)),
                    );
                } else {
                    std::hint::spin_loop();
                }
            }
            let change = match ev.action {
                Action::Up => Change::State(LinkState::Up),
                Action::Down => Change::State(LinkState::Down),
                Action::Blackhole => Change::State(LinkState::Blackhole(ev.direction)),
                Action::Set => Change::Set(ev.direction, ev.params.clone().unwrap_or_default()),
            };
            if let Err(e) = self.apply(&ev.link, &change, Some(ev.at.0)) {
                log::error!("event at {}: {e:#}", ev.at);
            }
        }
        Ok(())
    }

    /// Stops the forwarding threads and waits for them, then gives links left down their
    /// carrier back (the interfaces outlive the emulator when it is restarted).
    pub fn stop(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        for l in &self.links {
            if l.state() == LinkState::Down {
                if let Err(e) = carrier::set_link(&l.a_iface, &l.b_iface, true) {
                    log::warn!("link {}: restoring the carrier: {e:#}", l.name);
                }
            }
        }
    }
}
