//! The sessions with the peer, on the management lcore: when to start a
//! handshake (at start, every [`REKEY_AFTER`], after a packet count, on a
//! restart of either side), which keys the workers use, and the defences of
//! the handshake (mac1, cookies under load, rate limits per source and in
//! total). Time is handed in, so tests drive it by hand.
//!
//! A rekey loses nothing: the initiator sends under the new keys as soon as
//! the response arrives; the responder keeps sending under the old ones
//! until a packet under the new ones arrives (proof the initiator has
//! them), and both accept the old keys while packets sealed under them may
//! still be in flight. Nothing survives a restart: keys live in memory only,
//! and each start makes new ones.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;
use zeroize::Zeroizing;

use super::aead::PacketKey;
use super::handshake::{self, Cookie, Handshaker, Initiating, Refused};
use super::{KeySet, RxKey, TunnelCrypto, TxKey, RX_KEYS};
use crate::config::tunnel::KEY_IDS_PER_PEER;
use crate::stats::{Counter, PerWorker};
use crate::time::{Time, TokenBucket};
use crate::wire::tunnel::Kind;

/// A session's keys are replaced after this long (WireGuard's
/// REKEY_AFTER_TIME) by the side that initiated it.
pub const REKEY_AFTER: Duration = Duration::from_secs(120);
/// The side that answered replaces them this late, if the initiator has
/// not (so the two rarely start handshakes at once).
pub const RESPONDER_REKEY_AFTER: Duration = Duration::from_secs(135);
/// Nothing is sealed or opened under a session older than this
/// (REJECT_AFTER_TIME).
pub const REJECT_AFTER: Duration = Duration::from_secs(180);
/// An initiation not answered within this (plus up to a third of a second
/// of jitter) is sent again, on the next path.
pub const RETRY: Duration = Duration::from_secs(1);
/// Handshake messages the workers hand the management lcore per second,
/// all of them together.
pub const HANDSHAKE_PUNTS_PER_SEC: u32 = 1000;
/// Initiations answered per second at most (each costs four X25519
/// operations), and the burst.
const ANSWERS_PER_SEC: (u32, u32) = (50, 10);
/// Per source address (WireGuard's limiter).
const ANSWERS_PER_SOURCE: (u32, u32) = (20, 5);
/// More initiations than this in a second (with a good mac1) is load: then
/// only one that carries our cookie for its address is answered.
const LOAD_THRESHOLD: u32 = 10;
/// Cookie replies per second at most.
const COOKIES_PER_SEC: u32 = 200;
/// The secret behind our cookies changes this often.
const COOKIE_SECRET_LIFE: Duration = Duration::from_secs(120);
/// Sources the per-source limiter remembers (then it starts over).
const SOURCES: usize = 4096;
/// Refused handshake messages are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A handshake message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The path's index.
    pub path: usize,
    /// Its tunnel header.
    pub header: [u8; 20],
    /// What follows the header.
    pub body: Vec<u8>,
}

/// What the caller provides to build a message's header: the tunnel header
/// of a `kind` message on path index `path`, or `None` if the path cannot
/// send now (its next hop is unresolved).
pub type HeaderFor<'a> = dyn FnMut(usize, Kind) -> Option<[u8; 20]> + 'a;

/// One session: its keys and when it formed.
#[derive(Debug)]
struct Sess {
    serial: u64,
    rx: Arc<RxKey>,
    tx: Arc<TxKey>,
    formed: Time,
    /// We initiated it.
    initiator: bool,
}

#[derive(Debug)]
struct Pending {
    init: Initiating,
    key_id: u16,
    /// A cookie reply made us send it again once already.
    cookie_retry: bool,
}

/// The management lcore's key state for the peer.
#[derive(Debug)]
pub struct Sessions {
    hs: Handshaker,
    crypto: Arc<TunnelCrypto>,
    workers: usize,
    sessions: Vec<Sess>,
    /// The session we send under.
    current: Option<u64>,
    pending: Option<Pending>,
    /// When to (re)start a handshake if one is wanted.
    next_try: Time,
    next_serial: u64,
    /// Sessions numbered below this were made under keys a reload replaced:
    /// they carry traffic until a new one forms, but one is wanted now.
    first_serial_of_keys: u64,
    next_key_id: u16,
    /// The Key IDs this peer's sessions take theirs from
    /// ([`super::key_ids`]).
    key_ids: std::ops::RangeInclusive<u16>,
    /// The newest initiation timestamp accepted from the peer, and ours.
    peer_timestamp: u64,
    our_timestamp: u64,
    /// The peer's cookie for us, while it is fresh.
    peer_cookie: Option<(Cookie, Time)>,
    secret: Zeroizing<[u8; 32]>,
    old_secret: Zeroizing<[u8; 32]>,
    secret_since: Time,
    answers: TokenBucket,
    cookies: TokenBucket,
    per_source: HashMap<Ipv4Addr, TokenBucket>,
    /// Initiations with a good mac1 in this second and the one before.
    load: (Time, u32, u32),
    path_rr: usize,
    rng: fastrand::Rng,
    refused_since_log: u64,
    last_log: Option<Time>,
}

fn random_secret() -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    super::keys::getrandom(&mut s[..]);
    s
}

impl Sessions {
    /// No session yet: the first handshake starts at the first poll.
    /// The sessions of the peer with index `peer`.
    pub fn new(
        hs: Handshaker,
        crypto: Arc<TunnelCrypto>,
        (workers, peer): (usize, u16),
        now: Time,
    ) -> Self {
        let key_ids = super::key_ids(peer);
        let mut seed = [0u8; 9];
        super::keys::getrandom(&mut seed);
        Self {
            hs,
            crypto,
            workers: workers.max(1),
            sessions: Vec::with_capacity(RX_KEYS + 1),
            current: None,
            pending: None,
            next_try: now,
            next_serial: 1,
            first_serial_of_keys: 1,
            next_key_id: key_ids.start() + u16::from(seed[8]) % KEY_IDS_PER_PEER,
            key_ids,
            peer_timestamp: 0,
            our_timestamp: 0,
            peer_cookie: None,
            secret: random_secret(),
            old_secret: random_secret(),
            secret_since: now,
            answers: TokenBucket::with_burst(ANSWERS_PER_SEC.0, ANSWERS_PER_SEC.1),
            cookies: TokenBucket::new(COOKIES_PER_SEC),
            per_source: HashMap::new(),
            load: (now, 0, 0),
            path_rr: 0,
            rng: fastrand::Rng::with_seed(u64::from_le_bytes(
                seed[..8].try_into().unwrap_or([0; 8]),
            )),
            refused_since_log: 0,
            last_log: None,
        }
    }

    /// Handshakes under `hs`'s keys from now on (a reload changed them): one
    /// starts at the next poll; the sessions made under the old keys carry
    /// traffic until a new one forms or they expire, so a change made at
    /// both sites one after the other loses nothing.
    pub fn rekey(&mut self, hs: Handshaker, now: Time) {
        if hs.peer() != self.hs.peer() {
            // Another peer key, maybe another machine: its clock owes nothing to the old one's.
            self.peer_timestamp = 0;
        }
        self.hs = hs;
        self.pending = None;
        self.peer_cookie = None;
        self.first_serial_of_keys = self.next_serial;
        self.next_try = now;
    }

    /// Our side of the handshake.
    pub fn handshaker(&self) -> &Handshaker {
        &self.hs
    }

    /// Whether a response (`response`) or cookie reply (its body) names our
    /// pending initiation.
    pub fn awaits(&self, response: bool, body: &[u8]) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| handshake::answered_index(response, body) == Some(p.init.index))
    }

    /// The key we send under now (the management lcore's own packets).
    pub fn send_key(&self, now: Time) -> Option<Arc<TxKey>> {
        let s = self.current_session()?;
        (now.as_nanos() < s.tx.reject_at_ns).then(|| Arc::clone(&s.tx))
    }

    fn current_session(&self) -> Option<&Sess> {
        let serial = self.current?;
        self.sessions.iter().find(|s| s.serial == serial)
    }

    /// When [`Self::poll`] next has something to do (always after `now`).
    pub fn next_due(&self, now: Time) -> Time {
        // Often enough to see a responder's session come into use and the
        // packet count grow; sooner if a handshake is due.
        let soon = now + Duration::from_millis(50);
        let due = if self.wants_handshake(now) {
            soon.min(self.next_try)
        } else {
            soon
        };
        due.max(now + Duration::from_millis(1))
    }

    /// Timers: retires what expired, starts using an answered session once
    /// the peer does, and starts a handshake when one is due. `usable`
    /// says which paths carry traffic now. Returns an initiation to send.
    pub fn poll(
        &mut self,
        now: Time,
        usable: &[bool],
        header_for: &mut HeaderFor<'_>,
    ) -> Option<Outgoing> {
        if now.saturating_duration_since(self.secret_since) >= COOKIE_SECRET_LIFE {
            self.old_secret = std::mem::replace(&mut self.secret, random_secret());
            self.secret_since = now;
        }
        let before = (self.current, self.sessions.len());
        self.sessions
            .retain(|s| now.saturating_duration_since(s.formed) < REJECT_AFTER);
        if self.current_session().is_none() {
            self.current = None;
        }
        // A session we answered is used once a packet under it verified.
        let promote = self
            .sessions
            .iter()
            .filter(|s| !s.initiator && s.rx.used.load(Ordering::Relaxed))
            .map(|s| s.serial)
            .filter(|serial| self.current.is_none_or(|c| *serial > c))
            .max();
        if let Some(serial) = promote {
            self.current = Some(serial);
        }
        if (self.current, self.sessions.len()) != before {
            self.publish(now);
        }
        if !self.wants_handshake(now) || now < self.next_try {
            return None;
        }
        self.initiate(now, usable, header_for)
    }

    /// Whether the current session needs replacing (or there is none).
    fn wants_handshake(&self, now: Time) -> bool {
        let Some(s) = self.current_session() else {
            return true;
        };
        if s.serial < self.first_serial_of_keys {
            return true;
        }
        let age = now.saturating_duration_since(s.formed);
        let limit = if s.initiator {
            REKEY_AFTER
        } else {
            RESPONDER_REKEY_AFTER
        };
        let sent: u64 = s.tx.sent.iter().map(Counter::get).sum();
        age >= limit || sent >= s.tx.key.cipher().rekey_after_packets()
    }

    /// Sends an initiation on the next path that can (a usable one first).
    fn initiate(
        &mut self,
        now: Time,
        usable: &[bool],
        header_for: &mut HeaderFor<'_>,
    ) -> Option<Outgoing> {
        // No path can send yet (next hops unresolved): look again soon.
        self.next_try = now + Duration::from_millis(20);
        let n = usable.len();
        let order: Vec<usize> = (0..n).map(|i| (self.path_rr + i) % n.max(1)).collect();
        let path = order
            .iter()
            .copied()
            .find(|p| usable[*p])
            .into_iter()
            .chain(order.iter().copied())
            .find_map(|p| Some((p, header_for(p, Kind::HandshakeInitiation)?)));
        let (path, header) = path?;
        self.path_rr = path + 1;
        let jitter = Duration::from_millis(self.rng.u64(0..334));
        self.next_try = now + RETRY + jitter;
        let key_id = self.free_key_id();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.our_timestamp = wall.max(self.our_timestamp + 1);
        let cookie = self
            .peer_cookie
            .filter(|(_, at)| now.saturating_duration_since(*at) < COOKIE_SECRET_LIFE)
            .map(|(c, _)| c);
        let (init, body) = self
            .hs
            .initiate(&header, key_id, self.our_timestamp, cookie)
            .ok()?;
        self.pending = Some(Pending {
            init,
            key_id,
            cookie_retry: false,
        });
        self.crypto
            .report
            .initiations_sent
            .fetch_add(1, Ordering::Relaxed);
        Some(Outgoing { path, header, body })
    }

    /// A Key ID no session of ours (nor the pending handshake) uses.
    /// The peer's block has room for every session held, the pending
    /// handshake and one more ([`KEY_IDS_PER_PEER`]).
    fn free_key_id(&mut self) -> u16 {
        let (first, last) = (*self.key_ids.start(), *self.key_ids.end());
        let mut id = self.next_key_id;
        for _ in first..=last {
            let taken = self.sessions.iter().any(|s| s.rx.id == id)
                || self.pending.as_ref().is_some_and(|p| p.key_id == id);
            let next = if id >= last { first } else { id + 1 };
            if !taken {
                self.next_key_id = next;
                return id;
            }
            id = next;
        }
        id
    }

    /// An initiation from `src` (outer address and port) arrived on path
    /// `path` with tunnel header `header`. Returns the response, or the
    /// cookie reply when we are under load and it brought no good cookie.
    pub fn on_initiation(
        &mut self,
        header: &[u8],
        body: &[u8],
        src: (Ipv4Addr, u16),
        path: usize,
        now: Time,
        header_for: &mut HeaderFor<'_>,
    ) -> Option<Outgoing> {
        if body.len() != handshake::INITIATION_LEN || !self.hs.mac1_ok(header, body) {
            return self.refused(Refused::Mac1, now);
        }
        let under_load = self.count_load(now);
        let mut addr = [0u8; 6];
        addr[..4].copy_from_slice(&src.0.octets());
        addr[4..].copy_from_slice(&src.1.to_be_bytes());
        if under_load {
            let presented = handshake::presented_cookie(body);
            let good = handshake::cookie_ok(&self.secret, &addr, presented)
                || handshake::cookie_ok(&self.old_secret, &addr, presented);
            if !good {
                if !self.cookies.take(now) {
                    self.note_rate_limited();
                    return None;
                }
                let index = handshake::answered_index(false, body)?;
                let cookie = handshake::cookie(&self.secret, &addr);
                let reply =
                    handshake::cookie_reply(index, &cookie, handshake::initiation_mac1(body));
                let header = header_for(path, Kind::CookieReply)?;
                self.crypto
                    .report
                    .cookies_sent
                    .fetch_add(1, Ordering::Relaxed);
                return Some(Outgoing {
                    path,
                    header,
                    body: reply,
                });
            }
        }
        if self.per_source.len() >= SOURCES && !self.per_source.contains_key(&src.0) {
            self.per_source.clear();
        }
        let source = self
            .per_source
            .entry(src.0)
            .or_insert_with(|| TokenBucket::with_burst(ANSWERS_PER_SOURCE.0, ANSWERS_PER_SOURCE.1));
        if !source.take(now) || !self.answers.take(now) {
            self.note_rate_limited();
            return None;
        }
        let out_header = header_for(path, Kind::HandshakeResponse)?;
        let key_id = self.free_key_id();
        let answered = match self.hs.respond(body, &out_header, key_id) {
            Ok(a) => a,
            Err(why) => return self.refused(why, now),
        };
        if answered.timestamp <= self.peer_timestamp {
            // A replayed (or reordered) initiation.
            return self.refused(Refused::Noise, now);
        }
        self.peer_timestamp = answered.timestamp;
        self.install(answered.session, key_id, false, now);
        self.crypto
            .report
            .initiations_answered
            .fetch_add(1, Ordering::Relaxed);
        Some(Outgoing {
            path,
            header: out_header,
            body: answered.body,
        })
    }

    /// A response arrived (`header`: its tunnel header).
    pub fn on_response(&mut self, header: &[u8], body: &[u8], now: Time) {
        let matches = self
            .pending
            .as_ref()
            .is_some_and(|p| handshake::answered_index(true, body) == Some(p.init.index));
        if !matches {
            return;
        }
        if !self.hs.mac1_ok(header, body) {
            self.refused(Refused::Mac1, now);
            return;
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        match self.hs.complete(p.init, body) {
            Ok(session) => self.install(session, p.key_id, true, now),
            Err(why) => {
                self.refused(why, now);
            }
        }
    }

    /// A cookie reply arrived: the peer is under load and wants proof of
    /// our address. Sends the initiation again at once, with the cookie
    /// (once per handshake).
    pub fn on_cookie(
        &mut self,
        body: &[u8],
        now: Time,
        usable: &[bool],
        header_for: &mut HeaderFor<'_>,
    ) -> Option<Outgoing> {
        let p = self.pending.as_ref()?;
        let cookie = handshake::read_cookie(&p.init, body)?;
        self.peer_cookie = Some((cookie, now));
        if p.cookie_retry {
            return None;
        }
        self.path_rr = self.path_rr.saturating_sub(1);
        let out = self.initiate(now, usable, header_for);
        if let Some(p) = self.pending.as_mut() {
            p.cookie_retry = true;
        }
        out
    }

    /// Counts an initiation with a good mac1; whether we are under load.
    fn count_load(&mut self, now: Time) -> bool {
        let (start, this, last) = &mut self.load;
        let since = now.saturating_duration_since(*start);
        if since >= Duration::from_secs(2) {
            (*start, *this, *last) = (now, 0, 0);
        } else if since >= Duration::from_secs(1) {
            *last = *this;
            *this = 0;
            *start = now;
        }
        *this += 1;
        self.load.1.max(self.load.2) > LOAD_THRESHOLD
    }

    fn note_rate_limited(&self) {
        self.crypto
            .report
            .rate_limited
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused message, and logs (at most every few seconds).
    fn refused(&mut self, why: Refused, now: Time) -> Option<Outgoing> {
        self.crypto.report.failed.fetch_add(1, Ordering::Relaxed);
        self.refused_since_log += 1;
        if self
            .last_log
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_EVERY)
        {
            log::warn!(
                "tunnel handshake: refused a message ({why}); {} refused since the last report",
                self.refused_since_log
            );
            self.refused_since_log = 0;
            self.last_log = Some(now);
        }
        None
    }

    /// Adds a new session: sent under at once if we initiated it, else once
    /// the peer uses it.
    fn install(&mut self, s: handshake::Session, key_id: u16, initiator: bool, now: Time) {
        let serial = self.next_serial;
        self.next_serial += 1;
        let reject_at = now + REJECT_AFTER;
        let cipher = s.cipher;
        let per_worker_limit =
            cipher.reject_after_packets() / u64::try_from(self.workers).unwrap_or(1);
        let sess = Sess {
            serial,
            rx: Arc::new(RxKey {
                id: key_id,
                key: PacketKey::new(cipher, &s.recv),
                serial,
                used: AtomicBool::new(false),
            }),
            tx: Arc::new(TxKey {
                id: s.peer_key_id,
                key: PacketKey::new(cipher, &s.send),
                serial,
                reject_at_ns: reject_at.as_nanos(),
                per_worker_limit,
                sent: PerWorker::new(self.workers, Counter::default),
            }),
            formed: now,
            initiator,
        };
        // Room for it: the oldest session we do not send under goes.
        if self.sessions.len() >= RX_KEYS {
            if let Some(i) = self
                .sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| Some(s.serial) != self.current)
                .min_by_key(|(_, s)| s.serial)
                .map(|(i, _)| i)
            {
                self.sessions.remove(i);
            }
        }
        self.sessions.push(sess);
        if initiator {
            self.current = Some(serial);
        }
        let r = &self.crypto.report;
        r.sessions.fetch_add(1, Ordering::Relaxed);
        r.last_handshake_ns.store(now.as_nanos(), Ordering::Relaxed);
        log::info!(
            "tunnel handshake: new session with the peer ({}, {cipher}), receive key id {key_id}",
            if initiator {
                "we initiated"
            } else {
                "the peer initiated"
            }
        );
        self.publish(now);
    }

    /// Publishes the keys to the workers and the figures to reports.
    fn publish(&self, now: Time) {
        let current = self.current_session();
        let mut recv: [Option<Arc<RxKey>>; RX_KEYS] = Default::default();
        for (slot, s) in recv.iter_mut().zip(&self.sessions) {
            *slot = Some(Arc::clone(&s.rx));
        }
        self.crypto.keys.store(Arc::new(KeySet {
            send: current
                .filter(|s| now.as_nanos() < s.tx.reject_at_ns)
                .map(|s| Arc::clone(&s.tx)),
            recv,
        }));
        let r = &self.crypto.report;
        r.key_id
            .store(current.map_or(0, |s| s.tx.id), Ordering::Relaxed);
        r.key_since_ns.store(
            current.map_or(0, |s| s.formed.as_nanos()),
            Ordering::Relaxed,
        );
        r.cipher.store(
            current.map_or(0, |s| s.tx.key.cipher().bit()),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::crypto::aead::Cipher;
    use crate::tunnel::crypto::handshake::tests::pair;

    struct Side {
        s: Sessions,
        crypto: Arc<TunnelCrypto>,
    }

    fn sides(now: Time) -> (Side, Side) {
        let (a, b) = pair(None, None);
        let side = |hs| {
            let crypto = Arc::new(TunnelCrypto::new(Cipher::Aes256Gcm, 2));
            Side {
                s: Sessions::new(hs, Arc::clone(&crypto), (2, 0), now),
                crypto,
            }
        };
        (side(a), side(b))
    }

    fn header(_: usize, kind: Kind) -> Option<[u8; 20]> {
        let mut h = [0u8; 20];
        h[0] = 0x20 | kind.bits();
        Some(h)
    }

    const SRC: (Ipv4Addr, u16) = (Ipv4Addr::new(172, 16, 0, 1), 49152);
    const USABLE: [bool; 2] = [true, true];

    /// One full handshake, a initiating; returns when both send under it.
    fn handshake(a: &mut Side, b: &mut Side, now: Time) {
        let init = a.s.poll(now, &USABLE, &mut header).expect("an initiation");
        let resp =
            b.s.on_initiation(&init.header, &init.body, SRC, init.path, now, &mut header)
                .expect("a response");
        a.s.on_response(&resp.header, &resp.body, now);
        // The responder keeps its old key until the initiator's packet under
        // the new one arrives.
        let newest = b.s.sessions.iter().max_by_key(|s| s.serial).unwrap();
        newest.rx.used.store(true, Ordering::Relaxed);
        b.s.poll(now, &USABLE, &mut header);
    }

    fn same_keys(a: &Side, b: &Side) -> bool {
        let (ka, kb) = (a.crypto.keys.load(), b.crypto.keys.load());
        let (Some(ta), Some(tb)) = (&ka.send, &kb.send) else {
            return false;
        };
        // Each side's send key opens under the other's receive key.
        let seal = |t: &TxKey, rx: &KeySet| {
            let mut p = b"x".to_vec();
            let tag = t.key.seal(super::super::aead::nonce(1, 0, 1), b"h", &mut p);
            p.extend_from_slice(&tag);
            rx.rx(t.id).is_some_and(|k| {
                k.key
                    .open(super::super::aead::nonce(1, 0, 1), b"h", &mut p)
                    .is_ok()
            })
        };
        seal(ta, &kb) && seal(tb, &ka)
    }

    /// Peer 7's sessions receive under its block of Key IDs only, and the
    /// ids held at once are distinct, even with three sessions held, our
    /// initiation pending and the peer's to answer: a worker finds the
    /// peer from the id alone.
    #[test]
    fn key_ids_stay_in_the_peers_block() {
        const LAST: u16 = crate::config::tunnel::MAX_PEERS as u16 - 1;
        let t0 = Time::from_secs(10);
        let (a, b) = pair(None, None);
        let side = |hs| {
            let crypto = Arc::new(TunnelCrypto::new(Cipher::Aes256Gcm, 2));
            Side {
                s: Sessions::new(hs, Arc::clone(&crypto), (2, LAST), t0),
                crypto,
            }
        };
        let (mut a, mut b) = (side(a), side(b));
        let block = super::super::key_ids(LAST);
        assert_eq!(block, 49_996..=50_000, "the last peer's, 16 bits wide");
        assert_eq!(block.clone().count(), usize::from(KEY_IDS_PER_PEER));
        let mut now = t0;
        let mut crowded = false;
        for round in 0..12 {
            if round % 2 == 0 {
                handshake(&mut a, &mut b, now);
            } else {
                handshake(&mut b, &mut a, now);
            }
            // Our initiation pending while the peer's arrives: a fifth id
            // (both want new keys now, as after a reload changed them).
            now += Duration::from_secs(1);
            for side in [&mut a, &mut b] {
                side.s.first_serial_of_keys = side.s.next_serial;
                side.s.next_try = now;
            }
            a.s.poll(now, &USABLE, &mut header).expect("a rekey");
            let init = b.s.poll(now, &USABLE, &mut header).expect("a rekey");
            crowded |= a.s.sessions.len() == RX_KEYS;
            a.s.on_initiation(&init.header, &init.body, SRC, init.path, now, &mut header)
                .expect("a response");
            for side in [&a, &b] {
                let ids: Vec<u16> = side.s.sessions.iter().map(|s| s.rx.id).collect();
                let pending = side.s.pending.as_ref().map(|p| p.key_id);
                for id in ids.iter().copied().chain(pending) {
                    assert!(block.contains(&id), "{id} outside {block:?}");
                    assert_eq!(super::super::peer_of_key(id), Some(usize::from(LAST)));
                }
                let mut distinct = ids.clone();
                distinct.extend(pending);
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), ids.len() + usize::from(pending.is_some()));
            }
            now += Duration::from_secs(1);
            for side in [&mut a, &mut b] {
                side.s.pending = None;
                side.s.next_try = now;
            }
        }
        assert!(
            crowded,
            "never answered with every session held and one pending"
        );
    }

    #[test]
    fn a_handshake_gives_both_sides_working_keys() {
        let t0 = Time::from_secs(10);
        let (mut a, mut b) = sides(t0);
        assert!(a.crypto.keys.load().send.is_none());
        handshake(&mut a, &mut b, t0);
        assert!(same_keys(&a, &b));
        assert_eq!(a.crypto.report.sessions.load(Ordering::Relaxed), 1);
        assert_eq!(
            b.crypto.report.initiations_answered.load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn the_responder_sends_under_new_keys_only_once_the_initiator_does() {
        let t0 = Time::from_secs(10);
        let (mut a, mut b) = sides(t0);
        handshake(&mut a, &mut b, t0);
        let old = b.crypto.keys.load().send.as_ref().unwrap().serial;
        let t1 = t0 + REKEY_AFTER;
        let init = a.s.poll(t1, &USABLE, &mut header).expect("a rekey");
        let resp =
            b.s.on_initiation(&init.header, &init.body, SRC, 0, t1, &mut header)
                .unwrap();
        b.s.poll(t1, &USABLE, &mut header);
        assert_eq!(
            b.crypto.keys.load().send.as_ref().unwrap().serial,
            old,
            "not yet"
        );
        a.s.on_response(&resp.header, &resp.body, t1);
        // a sends under the new keys; b still accepts the old ones too.
        assert_eq!(b.crypto.keys.load().recv.iter().flatten().count(), 2);
        let ka = a.crypto.keys.load();
        let kb = b.crypto.keys.load();
        assert!(kb.rx(ka.send.as_ref().unwrap().id).is_some());
        assert!(
            ka.rx(kb.send.as_ref().unwrap().id).is_some(),
            "a still opens b's old key"
        );
    }

    #[test]
    fn new_keys_rekey_at_once_and_the_old_session_carries_until_both_sides_have_them() {
        let t0 = Time::from_secs(10);
        let (mut a, mut b) = sides(t0);
        handshake(&mut a, &mut b, t0);
        let old = a.crypto.keys.load().send.as_ref().unwrap().serial;
        // Both sites get new keys, a first.
        let (a2, b2) = pair(None, None);
        let t1 = t0 + Duration::from_secs(1);
        a.s.rekey(a2, t1);
        let init = a.s.poll(t1, &USABLE, &mut header).expect("at once");
        let refused =
            b.s.on_initiation(&init.header, &init.body, SRC, 0, t1, &mut header);
        assert!(refused.is_none(), "b does not know a's new key yet");
        assert_eq!(
            a.crypto.keys.load().send.as_ref().map(|k| k.serial),
            Some(old),
            "the old session still carries"
        );
        assert!(same_keys(&a, &b));
        // Then b: its first poll starts a handshake under the new keys.
        let t2 = t1 + Duration::from_millis(200);
        b.s.rekey(b2, t2);
        handshake(&mut b, &mut a, t2);
        assert!(same_keys(&a, &b));
        let new = a.crypto.keys.load().send.as_ref().unwrap().serial;
        assert!(new > old, "a session under the new keys");
        assert!(
            a.s.poll(t2, &USABLE, &mut header).is_none(),
            "and no further handshake is wanted"
        );
    }

    #[test]
    fn rekeys_by_time_and_by_packet_count_and_keys_expire() {
        let t0 = Time::from_secs(10);
        let (mut a, mut b) = sides(t0);
        handshake(&mut a, &mut b, t0);
        let t = t0 + Duration::from_secs(5);
        assert!(a.s.poll(t, &USABLE, &mut header).is_none(), "nothing due");
        let tx = Arc::clone(a.crypto.keys.load().send.as_ref().unwrap());
        tx.sent.worker(0).set(tx.key.cipher().rekey_after_packets());
        assert!(a.s.poll(t, &USABLE, &mut header).is_some(), "by count");
        // Unanswered, it is sent again after RETRY and jitter, on the other path.
        let again =
            a.s.poll(t + RETRY + Duration::from_millis(334), &USABLE, &mut header);
        assert_eq!(again.map(|o| o.path), Some(0));
        // With no answer at all, the send key is gone at REJECT_AFTER.
        a.s.poll(t0 + REJECT_AFTER, &USABLE, &mut header);
        assert!(a.crypto.keys.load().send.is_none());
        assert!(a.crypto.keys.load().recv.iter().all(Option::is_none));
    }

    #[test]
    fn a_replayed_initiation_is_refused() {
        let t0 = Time::from_secs(10);
        let (mut a, mut b) = sides(t0);
        let init = a.s.poll(t0, &USABLE, &mut header).unwrap();
        assert!(b
            .s
            .on_initiation(&init.header, &init.body, SRC, 0, t0, &mut header)
            .is_some());
        let t1 = t0 + Duration::from_secs(1);
        assert!(b
            .s
            .on_initiation(&init.header, &init.body, SRC, 0, t1, &mut header)
            .is_none());
        assert_eq!(b.crypto.report.failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_flood_is_rate_limited_and_under_load_needs_a_cookie() {
        let t0 = Time::from_secs(10);
        let (mut a, mut b) = sides(t0);
        // Many initiations from a's key (each a new one: new timestamps).
        let mut answered = 0;
        let mut cookies = 0;
        for i in 0..100 {
            a.s.next_try = t0;
            a.s.pending = None;
            let init = a.s.poll(t0, &USABLE, &mut header).unwrap();
            let now = t0 + Duration::from_millis(i);
            match b
                .s
                .on_initiation(&init.header, &init.body, SRC, 0, now, &mut header)
            {
                Some(o) if o.body.len() == handshake::RESPONSE_LEN => answered += 1,
                Some(o) => {
                    assert_eq!(o.body.len(), handshake::COOKIE_LEN);
                    cookies += 1;
                    // The initiator answers the cookie reply with the cookie.
                    let retry = a.s.on_cookie(&o.body, now, &USABLE, &mut header).unwrap();
                    if let Some(r) =
                        b.s.on_initiation(&retry.header, &retry.body, SRC, 0, now, &mut header)
                    {
                        assert_eq!(r.body.len(), handshake::RESPONSE_LEN);
                        answered += 1;
                    }
                }
                None => {}
            }
        }
        assert!(cookies > 0, "under load, cookies are asked for");
        assert!(
            answered <= 5 + 1,
            "the per-source burst caps the answers in 0.1 s: {answered}"
        );
        assert!(b.crypto.report.rate_limited.load(Ordering::Relaxed) > 0);
    }
}
