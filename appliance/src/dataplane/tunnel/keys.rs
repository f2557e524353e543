//! A worker's use of the tunnel's keys: sealing what it sends under the
//! current send key ([`Sealer`]) and opening what it receives under the key
//! its Key ID names, with the anti-replay windows of the lanes it owns
//! ([`Opener`]). Both re-read the key set once per burst (the management
//! lcore swaps it whole) and keep a local reference, so a packet costs no
//! atomic on a shared cache line.

use std::sync::Arc;

use crate::stats::DropReason;
use crate::time::Time;
use crate::tunnel::crypto::replay::{Refused, Window};
use crate::tunnel::crypto::{KeySet, TunnelCrypto, RX_KEYS};
use crate::tunnel::encap::{self, Rx};
use crate::tunnel::MAX_LANES;
use crate::wire::tunnel::CONTROL_LANE;

/// Re-reads the published key set if it changed; whether it did.
fn refresh(crypto: &TunnelCrypto, set: &mut Arc<KeySet>) -> bool {
    let now = crypto.keys.load();
    if Arc::ptr_eq(&now, set) {
        return false;
    }
    *set = Arc::clone(&now);
    true
}

/// Seals what one worker sends.
#[derive(Debug)]
pub struct Sealer {
    worker: usize,
    crypto: Arc<TunnelCrypto>,
    set: Arc<KeySet>,
    /// The send key's session, and the packets this worker sealed under it.
    sent: (u64, u64),
}

impl Sealer {
    /// Worker `worker`'s.
    pub fn new(worker: usize, crypto: Arc<TunnelCrypto>) -> Self {
        Self {
            worker,
            set: crypto.keys.load_full(),
            crypto,
            sent: (0, 0),
        }
    }

    /// Once per burst: picks up a new key set.
    #[inline]
    pub fn begin_burst(&mut self) {
        refresh(&self.crypto, &mut self.set);
    }

    /// Admits one more packet under the send key: its Key ID.
    ///
    /// # Errors
    /// `TunnelNoKey` when there is no session yet, its key expired, or this
    /// worker sealed as many packets under it as it may.
    #[inline]
    pub fn admit(&mut self, now: Time) -> Result<u8, DropReason> {
        let tx = self.set.send.as_ref().ok_or(DropReason::TunnelNoKey)?;
        if tx.serial != self.sent.0 {
            self.sent = (tx.serial, 0);
        }
        if now.as_nanos() >= tx.reject_at_ns || self.sent.1 >= tx.per_worker_limit {
            return Err(DropReason::TunnelNoKey);
        }
        self.sent.1 += 1;
        tx.sent.worker(self.worker).set(self.sent.1);
        Ok(tx.id)
    }

    /// Seals a frame [`Self::admit`] let through: see [`encap::seal`].
    #[inline]
    pub fn seal(&self, frame: &mut [u8]) {
        if let Some(tx) = &self.set.send {
            encap::seal(frame, &tx.key);
        }
    }
}

/// The windows of one receive key: per lane this worker owns (and the
/// control lane) and per path.
#[derive(Debug)]
struct KeyWindows {
    serial: u64,
    windows: Box<[Window]>,
}

/// Opens what one worker receives, for the lanes it owns.
#[derive(Debug)]
pub struct Opener {
    workers: usize,
    paths: usize,
    crypto: Arc<TunnelCrypto>,
    set: Arc<KeySet>,
    /// Per receive-key slot.
    keys: [KeyWindows; RX_KEYS],
}

impl Opener {
    /// Worker `worker`'s of `workers`, for `paths` paths.
    pub fn new(worker: usize, workers: usize, paths: usize, crypto: Arc<TunnelCrypto>) -> Self {
        let workers = workers.max(1);
        // The data lanes it owns, and the control lane (which one worker owns).
        let _ = worker;
        let lanes = MAX_LANES.div_ceil(workers) + 1;
        Self {
            workers,
            paths,
            set: crypto.keys.load_full(),
            crypto,
            keys: std::array::from_fn(|_| KeyWindows {
                serial: 0,
                windows: vec![Window::default(); lanes * paths].into_boxed_slice(),
            }),
        }
    }

    /// Once per burst: picks up a new key set; a slot whose key changed
    /// starts with empty windows.
    #[inline]
    pub fn begin_burst(&mut self) {
        if !refresh(&self.crypto, &mut self.set) {
            return;
        }
        for (slot, key) in self.keys.iter_mut().zip(&self.set.recv) {
            let serial = key.as_ref().map_or(0, |k| k.serial);
            if slot.serial != serial {
                slot.serial = serial;
                slot.windows.iter_mut().for_each(Window::reset);
            }
        }
    }

    /// The window index of (`lane`, path index `path`).
    fn index(&self, lane: u16, path: usize) -> Option<usize> {
        let per_lane = if lane == CONTROL_LANE {
            MAX_LANES.div_ceil(self.workers)
        } else {
            usize::from(lane) / self.workers
        };
        (path < self.paths).then_some(per_lane * self.paths + path)
    }

    /// Checks, decrypts in place and accepts a packet of a lane this worker
    /// owns, received on path index `path`. Nothing changes unless its tag
    /// verifies.
    ///
    /// # Errors
    /// The drop reason: no such key, a replay, or authentication failed.
    #[inline]
    pub fn open(&mut self, frame: &mut [u8], rx: &Rx, path: usize) -> Result<(), DropReason> {
        let h = &rx.header;
        let (slot, key) = self.set.rx(h.key).ok_or(DropReason::TunnelUnknownKey)?;
        let i = self.index(h.lane, path).ok_or(DropReason::TunnelBadLane)?;
        let window = self.keys[slot]
            .windows
            .get_mut(i)
            .ok_or(DropReason::TunnelBadLane)?;
        match window.fresh(h.path_seq) {
            Ok(()) => {}
            Err(Refused::Again | Refused::TooOld) => return Err(DropReason::TunnelReplay),
        }
        encap::open(frame, rx, &key.key).map_err(|_| DropReason::TunnelAuthFailed)?;
        window.mark(h.path_seq);
        if !key.used.load(std::sync::atomic::Ordering::Relaxed) {
            key.used.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}
