//! A worker's use of the tunnel's keys: sealing what it sends under the
//! current send key ([`Sealer`]) and opening what it receives under the key
//! its Key ID names, with the anti-replay windows of the lanes it owns
//! ([`Opener`]), made when a (lane, path) first carries a packet. Both
//! re-read the key set once per burst (the management lcore swaps it whole)
//! and keep a local reference, so a packet costs no atomic on a shared cache
//! line.

use std::sync::Arc;

use crate::stats::DropReason;
use crate::time::Time;
use crate::tunnel::crypto::replay::{Refused, Window};
use crate::tunnel::crypto::{KeySet, TunnelCrypto, RX_KEYS};
use crate::tunnel::encap::{self, Rx};
use crate::tunnel::{MAX_LANES, MAX_PATHS};
use crate::wire::tunnel::CONTROL_LANE;

use super::spares::Spares;

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
    pub fn admit(&mut self, now: Time) -> Result<u16, DropReason> {
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

/// The replay windows of one (lane, path): one per receive-key slot, each
/// with the serial of the key it holds numbers for (a slot whose key
/// changed starts afresh when next used, so a rekey touches no window).
#[derive(Debug, Default)]
pub struct PathWindows {
    serials: [u64; RX_KEYS],
    windows: [Window; RX_KEYS],
}

/// Opens what one worker receives, for the lanes it owns.
#[derive(Debug)]
pub struct Opener {
    workers: usize,
    crypto: Arc<TunnelCrypto>,
    set: Arc<KeySet>,
    /// Per (lane this worker owns, or the control lane; path id): made the
    /// first time a packet of theirs verifies, so a (lane, path) that never
    /// carries anything costs a pointer.
    windows: Box<[Option<Box<PathWindows>>]>,
}

impl Opener {
    /// Worker `worker`'s of `workers`, with room for windows for every path
    /// id (a reload may add paths; a path's windows are kept by its wire id).
    pub fn new(worker: usize, workers: usize, crypto: Arc<TunnelCrypto>) -> Self {
        let workers = workers.max(1);
        // The data lanes it owns, and the control lane (which one worker owns).
        let _ = worker;
        let lanes = MAX_LANES.div_ceil(workers) + 1;
        Self {
            workers,
            set: crypto.keys.load_full(),
            crypto,
            windows: (0..lanes * MAX_PATHS).map(|_| None).collect(),
        }
    }

    /// Once per burst: picks up a new key set.
    #[inline]
    pub fn begin_burst(&mut self) {
        refresh(&self.crypto, &mut self.set);
    }

    /// The window index of (`lane`, path id `path`).
    fn index(&self, lane: u16, path: usize) -> Option<usize> {
        let per_lane = if lane == CONTROL_LANE {
            MAX_LANES.div_ceil(self.workers)
        } else {
            usize::from(lane) / self.workers
        };
        (path < MAX_PATHS).then_some(per_lane * MAX_PATHS + path)
    }

    /// Checks, decrypts in place and accepts a packet of a lane this worker
    /// owns, received on the path its header names. Nothing changes unless
    /// its tag verifies; only then does a (lane, path) new to this worker
    /// take its windows from `spares`. Returns whether it is the newest of
    /// its (lane, path) so far (what a learned path may learn its peer's
    /// endpoint from: an older one, late or replayed, never moves it).
    ///
    /// # Errors
    /// The drop reason: no such key, a replay, authentication failed, or no
    /// spare windows were ready.
    #[inline]
    pub fn open(&mut self, frame: &mut [u8], rx: &Rx, spares: &Spares) -> Result<bool, DropReason> {
        let h = &rx.header;
        let (slot, key) = self.set.rx(h.key).ok_or(DropReason::TunnelUnknownKey)?;
        let i = self
            .index(h.lane, usize::from(h.path))
            .ok_or(DropReason::TunnelBadLane)?;
        let entry = self.windows.get_mut(i).ok_or(DropReason::TunnelBadLane)?;
        let fresh = match entry.as_deref() {
            Some(w) if w.serials[slot] == key.serial => w.windows[slot].fresh(h.path_seq),
            // Nothing accepted under this key on this (lane, path) yet.
            _ => Ok(()),
        };
        match fresh {
            Ok(()) => {}
            Err(Refused::Again | Refused::TooOld) => return Err(DropReason::TunnelReplay),
        }
        encap::open(frame, rx, &key.key).map_err(|_| DropReason::TunnelAuthFailed)?;
        if entry.is_none() {
            *entry = Some(spares.windows().ok_or(DropReason::TunnelNoState)?);
        }
        let w = entry.as_deref_mut().ok_or(DropReason::TunnelNoState)?;
        if w.serials[slot] != key.serial {
            w.serials[slot] = key.serial;
            w.windows[slot].reset();
        }
        let newest = w.windows[slot].mark(h.path_seq);
        if !key.used.load(std::sync::atomic::Ordering::Relaxed) {
            key.used.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::tunnel::departures::URGENT_LANE;
    use crate::stats::{Counter, PerWorker};
    use crate::tunnel::crypto::aead::{nonce, Cipher, PacketKey, PathSeqs};
    use crate::tunnel::crypto::{KeySet, TxKey};
    use proptest::prelude::*;

    /// What happens next in a random schedule.
    #[derive(Debug, Clone)]
    enum Op {
        /// Worker `w` sends a packet (urgent or not) on path `p`, and a second copy on
        /// path `q` if it is a `redundant` pair.
        Send {
            w: usize,
            urgent: bool,
            p: usize,
            q: Option<usize>,
        },
        /// The management lcore sends on path `p` (probe, reply, handshake, ICMP).
        Mgmt { p: usize },
        /// A new session (a rekey).
        Rekey,
        /// Both sides restart: every counter starts again, under a new session.
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            20 => (0usize..32, any::<bool>(), 0usize..4, proptest::option::of(0usize..4))
                .prop_map(|(w, urgent, p, q)| Op::Send { w, urgent, p, q }),
            4 => (0usize..4).prop_map(|p| Op::Mgmt { p }),
            1 => Just(Op::Rekey),
            1 => Just(Op::Restart),
        ]
    }

    fn publish(crypto: &TunnelCrypto, serial: u64, workers: usize, limit: u64) {
        crypto.keys.store(Arc::new(KeySet {
            send: Some(Arc::new(TxKey {
                id: (serial % 255) as u16 + 1,
                key: PacketKey::new(Cipher::Aes256Gcm, &[serial as u8; 32]),
                serial,
                reject_at_ns: u64::MAX,
                per_worker_limit: limit,
                sent: PerWorker::new(workers, Counter::default),
            })),
            recv: Default::default(),
        }));
    }

    proptest! {
        /// Over random schedules of workers, lanes, paths, redundant copies, the
        /// management lcore's packets, rekeys and restarts, with the real sealer's
        /// admission, lane ids and per-(lane, path) counters: no (key, nonce) twice.
        #[test]
        fn no_key_and_nonce_pair_is_ever_used_twice(
            workers in 1usize..=32,
            limit in 1u64..200,
            ops in proptest::collection::vec(op(), 1..2000),
        ) {
            // Path ids on the wire differ from indices, as in a config.
            let ids = [3u8, 7, 0, 15];
            let crypto = Arc::new(TunnelCrypto::new(Cipher::Aes256Gcm, workers));
            let mut serial = 1;
            publish(&crypto, serial, workers, limit);
            let fresh = |crypto: &Arc<TunnelCrypto>| -> (Vec<Sealer>, Vec<[PathSeqs; 2]>, PathSeqs) {
                (
                    (0..workers).map(|w| Sealer::new(w, Arc::clone(crypto))).collect(),
                    (0..workers).map(|_| [PathSeqs::default(), PathSeqs::default()]).collect(),
                    PathSeqs::default(),
                )
            };
            let (mut sealers, mut lanes, mut control) = fresh(&crypto);
            let mut used = std::collections::HashSet::new();
            let now = Time::from_secs(1);
            for op in ops {
                match op {
                    Op::Send { w, urgent, p, q } => {
                        let w = w % workers;
                        let lane = u16::try_from(w).unwrap() + if urgent { URGENT_LANE } else { 0 };
                        let copies = [Some(p), q.filter(|q| *q != p)];
                        for path in copies.into_iter().flatten() {
                            sealers[w].begin_burst();
                            if sealers[w].admit(now).is_ok() {
                                let seq = lanes[w][usize::from(urgent)].next(ids[path]);
                                prop_assert!(used.insert((serial, nonce(lane, ids[path], seq))));
                            }
                        }
                    }
                    Op::Mgmt { p } => {
                        let seq = control.next(ids[p]);
                        prop_assert!(used.insert((serial, nonce(CONTROL_LANE, ids[p], seq))));
                    }
                    Op::Rekey => {
                        serial += 1;
                        publish(&crypto, serial, workers, limit);
                    }
                    Op::Restart => {
                        serial += 1;
                        publish(&crypto, serial, workers, limit);
                        (sealers, lanes, control) = fresh(&crypto);
                    }
                }
            }
        }
    }

    #[test]
    fn a_worker_seals_no_more_than_its_share_of_a_key() {
        let crypto = Arc::new(TunnelCrypto::new(Cipher::Aes256Gcm, 2));
        let mut s = Sealer::new(1, Arc::clone(&crypto));
        assert_eq!(
            s.admit(Time::from_secs(1)),
            Err(DropReason::TunnelNoKey),
            "no session yet"
        );
        publish(&crypto, 9, 2, 3);
        s.begin_burst();
        let ok = (0..5)
            .filter(|_| s.admit(Time::from_secs(1)).is_ok())
            .count();
        assert_eq!(ok, 3);
        let tx = Arc::clone(crypto.keys.load().send.as_ref().unwrap());
        assert_eq!(
            tx.sent.worker(1).get(),
            3,
            "published for the rekey by count"
        );
        publish(&crypto, 10, 2, 3);
        s.begin_burst();
        assert!(
            s.admit(Time::from_secs(1)).is_ok(),
            "a new key, a new share"
        );
    }
}
