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
use crate::tunnel::crypto::replay::{KeyWindows, Refused};
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

/// The serials of the receive keys `set` holds (0: an empty place).
fn serials(set: &KeySet) -> [u64; RX_KEYS] {
    std::array::from_fn(|i| set.recv[i].as_ref().map_or(0, |k| k.serial))
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

/// Opens what one worker receives, for the lanes it owns.
#[derive(Debug)]
pub struct Opener {
    workers: usize,
    crypto: Arc<TunnelCrypto>,
    set: Arc<KeySet>,
    /// Per (lane this worker owns, or the control lane; path id): made the
    /// first time a packet of theirs verifies, so a (lane, path) that never
    /// carries anything costs a pointer.
    windows: Box<[Option<Box<KeyWindows>>]>,
    /// The serials of the keys `set` holds (0: an empty place).
    held: [u64; RX_KEYS],
}

impl Opener {
    /// Worker `worker`'s of `workers`, with room for windows for every path
    /// id (a reload may add paths; a path's windows are kept by its wire id).
    pub fn new(worker: usize, workers: usize, crypto: Arc<TunnelCrypto>) -> Self {
        let workers = workers.max(1);
        // The data lanes it owns, and the control lane (which one worker owns).
        let _ = worker;
        let lanes = MAX_LANES.div_ceil(workers) + 1;
        let set = crypto.keys.load_full();
        Self {
            workers,
            held: serials(&set),
            set,
            crypto,
            windows: (0..lanes * MAX_PATHS).map(|_| None).collect(),
        }
    }

    /// Once per burst: picks up a new key set.
    #[inline]
    pub fn begin_burst(&mut self) {
        if refresh(&self.crypto, &mut self.set) {
            self.held = serials(&self.set);
        }
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
        let key = self.set.rx(h.key).ok_or(DropReason::TunnelUnknownKey)?;
        let i = self
            .index(h.lane, usize::from(h.path))
            .ok_or(DropReason::TunnelBadLane)?;
        let entry = self.windows.get_mut(i).ok_or(DropReason::TunnelBadLane)?;
        let fresh = entry
            .as_deref()
            .map_or(Ok(()), |w| w.fresh(key.serial, h.path_seq));
        match fresh {
            Ok(()) => {}
            Err(Refused::Again | Refused::TooOld) => return Err(DropReason::TunnelReplay),
        }
        encap::open(frame, rx, &key.key).map_err(|_| DropReason::TunnelAuthFailed)?;
        if entry.is_none() {
            *entry = Some(spares.windows().ok_or(DropReason::TunnelNoState)?);
        }
        let w = entry.as_deref_mut().ok_or(DropReason::TunnelNoState)?;
        let newest = w.mark(key.serial, h.path_seq, &self.held);
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

    /// A data packet on (lane 4, path 1), sealed under Key ID `id` with
    /// `key` (or with its tag broken), and what the receiver parses of it.
    fn sealed(id: u16, key: &PacketKey, path_seq: u32, forged: bool) -> (Vec<u8>, Rx) {
        use crate::wire::tunnel::{Kind, TunnelRepr};
        use crate::wire::MacAddr;
        let payload = [0x45u8; 20];
        let o = encap::Outer {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_ip: std::net::Ipv4Addr::new(172, 16, 0, 2),
            dst_ip: std::net::Ipv4Addr::new(172, 16, 0, 1),
            src_port: 49156,
            dst_port: 4800,
            tos: 0,
            header: TunnelRepr {
                kind: Kind::Data,
                flags: 0,
                path: 1,
                key: id,
                lane: 4,
                epoch: 1,
                lane_seq: 0,
                path_seq,
                sent_us: 0,
            },
        };
        let tag = crate::tunnel::crypto::aead::TAG_LEN;
        let mut frame = vec![0u8; encap::OUTER_LEN + payload.len() + tag];
        encap::write_outer(&mut frame, &o, payload.len() + tag);
        frame[encap::OUTER_LEN..encap::OUTER_LEN + payload.len()].copy_from_slice(&payload);
        encap::seal(&mut frame, key);
        if forged {
            *frame.last_mut().unwrap() ^= 1;
        }
        let rx = encap::parse_rx(&frame).unwrap();
        (frame, rx)
    }

    /// A (lane, path) takes its windows from the shelf only once a packet
    /// on it verified: an empty shelf drops it as `tunnel_no_state`, a
    /// forged packet takes nothing, and once it has them replays are caught.
    #[test]
    fn windows_come_from_the_shelf_when_a_packet_verifies() {
        let crypto = Arc::new(TunnelCrypto::new(Cipher::Aes256Gcm, 1));
        let key = PacketKey::new(Cipher::Aes256Gcm, &[3; 32]);
        crypto.keys.store(Arc::new(KeySet {
            send: None,
            recv: [
                Some(Arc::new(crate::tunnel::crypto::RxKey {
                    id: 300,
                    key: PacketKey::new(Cipher::Aes256Gcm, &[3; 32]),
                    serial: 1,
                    used: Default::default(),
                })),
                None,
                None,
            ],
        }));
        let spares = Spares::new(1);
        let mut o = Opener::new(0, 1, Arc::clone(&crypto));
        o.begin_burst();
        let (mut f, rx) = sealed(300, &key, 5, false);
        assert_eq!(o.open(&mut f, &rx, &spares), Err(DropReason::TunnelNoState));
        spares.restock(0, true);
        let stocked = spares.windows_ready();
        let (mut f, rx) = sealed(300, &key, 5, true);
        assert_eq!(
            o.open(&mut f, &rx, &spares),
            Err(DropReason::TunnelAuthFailed)
        );
        assert_eq!(
            spares.windows_ready(),
            stocked,
            "a forged packet takes no window"
        );
        let (mut f, rx) = sealed(300, &key, 5, false);
        assert_eq!(o.open(&mut f, &rx, &spares), Ok(true));
        assert_eq!(spares.windows_ready(), stocked - 1);
        let (mut f, rx) = sealed(300, &key, 5, false);
        assert_eq!(o.open(&mut f, &rx, &spares), Err(DropReason::TunnelReplay));
        let (mut f, rx) = sealed(300, &key, 6, false);
        assert_eq!(o.open(&mut f, &rx, &spares), Ok(true));
        assert_eq!(spares.windows_ready(), stocked - 1, "the same (lane, path)");
        let (mut f, rx) = sealed(301, &key, 7, false);
        assert_eq!(
            o.open(&mut f, &rx, &spares),
            Err(DropReason::TunnelUnknownKey)
        );
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
