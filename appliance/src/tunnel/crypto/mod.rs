//! The tunnel's encryption: static keys ([`keys`]), the handshake that
//! makes session keys ([`handshake`], on the management lcore, driven by
//! [`session`]), the AEAD every data packet, probe and probe reply is
//! sealed with ([`aead`]), and the anti-replay windows ([`replay`]).
//!
//! What the workers read is [`TunnelCrypto`]: the key set the management
//! lcore publishes (swapped whole, lock-free) and counters. Each worker
//! seals under the current send key with nonces of its own lanes, and opens
//! a packet under the receive key its Key ID names; windows are per worker
//! (each lane has one owner), so no two threads share a writable cell.

pub mod aead;
pub mod handshake;
pub mod keys;
pub mod replay;
pub mod session;

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::tunnel::Encryption;
use crate::stats::{Counter, PerWorker};
use aead::{Cipher, PacketKey};

/// The key we send under now.
#[derive(Debug)]
pub struct TxKey {
    /// The Key ID our packets carry (the peer receives under it).
    pub id: u16,
    /// The key.
    pub key: PacketKey,
    /// Which session it belongs to (serial numbers never repeat in a run).
    pub serial: u64,
    /// Past this (ns on the appliance's clock) nothing is sealed under it.
    pub reject_at_ns: u64,
    /// Packets each worker may seal under it at most.
    pub per_worker_limit: u64,
    /// Packets each worker sealed under it (single writer each).
    pub sent: PerWorker<Counter>,
}

/// A key we accept packets under.
#[derive(Debug)]
pub struct RxKey {
    /// Its Key ID (ours: we chose it in the handshake).
    pub id: u16,
    /// The key.
    pub key: PacketKey,
    /// Which session it belongs to.
    pub serial: u64,
    /// A packet under it verified: the peer uses the session (workers set
    /// it; the management lcore then sends under the session too).
    pub used: AtomicBool,
}

/// Receive keys held at once: the current session's, the previous one's
/// (packets in flight at a rekey) and the next one's (answered, not yet used).
pub const RX_KEYS: usize = 3;

/// The keys the workers use, replaced whole by the management lcore.
#[derive(Debug, Default)]
pub struct KeySet {
    /// What we seal under (`None`: no session yet, or it expired).
    pub send: Option<Arc<TxKey>>,
    /// What we open under, found by Key ID.
    pub recv: [Option<Arc<RxKey>>; RX_KEYS],
}

impl KeySet {
    /// The receive key with id `id`.
    #[inline]
    pub fn rx(&self, id: u16) -> Option<&Arc<RxKey>> {
        self.recv.iter().flatten().find(|k| k.id == id)
    }
}

/// Handshake counters and the session's figures, for `show tunnel` and
/// `/metrics` (the management lcore writes them).
#[derive(Debug, Default)]
pub struct CryptoReport {
    /// Initiations we sent.
    pub initiations_sent: AtomicU64,
    /// Initiations we answered.
    pub initiations_answered: AtomicU64,
    /// Sessions formed (by either side's initiation).
    pub sessions: AtomicU64,
    /// Handshake messages refused (bad mac1, not authenticated, unknown
    /// peer, replayed, no common cipher).
    pub failed: AtomicU64,
    /// Initiations not answered because of the rate limits.
    pub rate_limited: AtomicU64,
    /// Cookie replies sent (we were under load).
    pub cookies_sent: AtomicU64,
    /// When the last session formed (ns on the appliance's clock; 0: never).
    pub last_handshake_ns: AtomicU64,
    /// The current send key's Key ID (0: none).
    pub key_id: AtomicU16,
    /// When the current send key came into use (ns).
    pub key_since_ns: AtomicU64,
    /// [`Cipher`] of the current session: 0 none, else its bit.
    pub cipher: AtomicU8,
}

/// The Key IDs the sessions with peer `peer` (its index) receive under:
/// each peer has a block of its own, so a worker finds the peer of a sealed
/// packet from its Key ID alone ([`peer_of_key`]).
pub fn key_ids(peer: u16) -> std::ops::RangeInclusive<u16> {
    use crate::config::tunnel::{KEY_IDS_PER_PEER as N, MAX_PEERS};
    let last_peer = u16::try_from(MAX_PEERS - 1).unwrap_or(0);
    let first = N * peer.min(last_peer) + 1;
    first..=first + (N - 1)
}

/// The peer index whose block holds Key ID `key` (0, in clear: none).
#[inline]
pub fn peer_of_key(key: u16) -> Option<usize> {
    let k = usize::from(key.checked_sub(1)?);
    Some(k / usize::from(crate::config::tunnel::KEY_IDS_PER_PEER))
}

/// The ciphers we accept (bits of [`Cipher::bit`]) and the one we prefer,
/// for the configured `encryption` on this CPU.
pub fn choice(encryption: Encryption) -> (u8, Cipher) {
    let (aes, chacha) = (Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305);
    match encryption {
        Encryption::Aes256Gcm => (aes.bit(), aes),
        Encryption::ChaCha20Poly1305 | Encryption::None => (chacha.bit(), chacha),
        Encryption::Auto if Cipher::hardware_aes() => (aes.bit() | chacha.bit(), aes),
        Encryption::Auto => (chacha.bit(), chacha),
    }
}

/// Our side of the handshake for `keys`, offering and preferring the
/// ciphers `encryption` allows on this CPU.
pub fn handshaker(
    encryption: Encryption,
    keys: crate::config::tunnel::TunnelKeys,
) -> handshake::Handshaker {
    let (offer, prefer) = choice(encryption);
    handshake::Handshaker::new(keys.private, keys.peer, keys.psk.as_ref(), offer, prefer)
}

/// The tunnel's encryption as the workers and reports see it.
#[derive(Debug)]
pub struct TunnelCrypto {
    /// The keys in use.
    pub keys: ArcSwap<KeySet>,
    /// The cipher we prefer (`show tunnel` before the first session).
    pub preferred: Cipher,
    /// Handshake messages each worker hands the management lcore per
    /// second at most (a flood costs it no more).
    pub handshake_punts_per_sec: u32,
    /// Reported figures.
    pub report: CryptoReport,
}

impl TunnelCrypto {
    /// No keys yet.
    pub fn new(preferred: Cipher, workers: usize) -> Self {
        Self {
            keys: ArcSwap::from_pointee(KeySet::default()),
            preferred,
            handshake_punts_per_sec: (session::HANDSHAKE_PUNTS_PER_SEC
                / u32::try_from(workers.max(1)).unwrap_or(1))
            .max(8),
            report: CryptoReport::default(),
        }
    }

    /// The cipher of the current session, if there is one.
    pub fn cipher(&self) -> Option<Cipher> {
        Cipher::from_bit(self.report.cipher.load(Ordering::Relaxed))
    }
}
