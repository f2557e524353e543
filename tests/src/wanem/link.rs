//! State shared between a link's two forwarding threads and the control side.
//!
//! The link state is one atomic, read for every frame, so a state change takes effect for
//! the very next frame. Parameters change rarely: they sit behind a mutex and a generation
//! counter that the forwarding thread polls (one atomic load per loop) before re-reading them.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, Result};

use super::config::{DirParams, DirPatch, Direction, LinkConfig, LinkState};
use super::stats::{DirStats, DropReason};

/// One direction's parameters and counters.
#[derive(Debug, Default)]
pub struct SharedDir {
    params: Mutex<DirParams>,
    generation: AtomicU64,
    pub stats: DirStats,
}

impl SharedDir {
    pub fn params(&self) -> DirParams {
        *lock(&self.params)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// One link: its interfaces, state and both directions (0 = a-to-b, 1 = b-to-a).
#[derive(Debug)]
pub struct SharedLink {
    pub name: String,
    pub a_iface: String,
    pub b_iface: String,
    state: AtomicU8,
    /// When the state last changed, in ns since `base`.
    changed_ns: AtomicU64,
    base: Instant,
    pub dirs: [SharedDir; 2],
}

impl SharedLink {
    /// `base` is any instant before forwarding starts (a time origin for `changed_ns`).
    pub fn new(cfg: &LinkConfig, base: Instant) -> Result<SharedLink> {
        let link = SharedLink {
            name: cfg.name.clone(),
            a_iface: cfg.a_iface.clone(),
            b_iface: cfg.b_iface.clone(),
            state: AtomicU8::new(cfg.initial_state()?.code()),
            changed_ns: AtomicU64::new(0),
            base,
            dirs: Default::default(),
        };
        for (d, dir) in link.dirs.iter().enumerate() {
            *lock(&dir.params) = cfg.dir_params(d);
        }
        Ok(link)
    }

    pub fn state(&self) -> LinkState {
        LinkState::from_code(self.state.load(Ordering::Acquire))
    }

    /// Changes the state, effective for frames arriving or due to leave from `at` on.
    pub fn set_state(&self, s: LinkState, at: Instant) {
        let ns = at.saturating_duration_since(self.base).as_nanos() as u64;
        self.changed_ns.store(ns, Ordering::Release);
        self.state.store(s.code(), Ordering::Release);
    }

    /// Why a frame of direction `d` that arrived, or was due to leave, at `t` must be
    /// dropped, if it must. Judging by the frame's own time rather than by when the thread
    /// gets to it means a late wake-up does not move the change: a frame due before a
    /// blackhole still leaves, one that arrived before it is still admitted.
    pub fn blocked_at(&self, d: usize, t: Instant) -> Option<DropReason> {
        let reason = self.blocked(d)?;
        let changed =
            self.base + std::time::Duration::from_nanos(self.changed_ns.load(Ordering::Acquire));
        (t >= changed).then_some(reason)
    }

    /// Why direction `d` must drop frames right now, if it must.
    pub fn blocked(&self, d: usize) -> Option<DropReason> {
        match self.state() {
            LinkState::Up => None,
            LinkState::Down => Some(DropReason::Down),
            LinkState::Blackhole(dir) => dir.includes(d).then_some(DropReason::Blackhole),
        }
    }

    /// Applies a parameter change to the selected directions, all or nothing.
    pub fn patch(&self, which: Direction, patch: &DirPatch) -> Result<()> {
        let mut updated = Vec::new();
        for (d, dir) in self.dirs.iter().enumerate() {
            if which.includes(d) {
                let mut p = dir.params();
                p.apply(patch);
                p.validate()
                    .map_err(|e| anyhow!("link {}: {e}", self.name))?;
                updated.push((dir, p));
            }
        }
        for (dir, p) in updated {
            *lock(&dir.params) = p;
            dir.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }
}

/// The data behind these mutexes is plain values, always consistent, so a poisoned lock
/// (a panic elsewhere) can still be used.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
