//! The handshake's messages: Noise IKpsk2 over X25519, ChaChaPoly and
//! BLAKE2s (as WireGuard, with our own prologue), through `snow`; the
//! cheap checks in front of it (mac1, cookies); and the session keys out of
//! it. Pure functions of bytes: the timers and rate limits are
//! [`super::session`]'s, the sockets the management lcore's.
//!
//! Each message follows a tunnel header (type 3, 4 or 5, key id 0, the
//! control lane); `docs/wire-format.md` draws them:
//!
//! ```text
//! initiation: sender index (4) | Noise message 1 (107) | mac1 (16) | cookie (16)
//! response:   sender index (4) | receiver index (4) | Noise message 2 (51) | mac1 (16) | cookie (16)
//! cookie:     receiver index (4) | cookie (16) | the initiation's mac1 (16)
//! ```
//!
//! The Noise payloads (encrypted and authenticated by the handshake) carry
//! what the other side must trust: the initiation a timestamp (a replayed
//! initiation is older than the last one), the key id the initiator
//! receives under and the ciphers it accepts; the response the key id the
//! responder receives under and the cipher it chose.

use blake2::digest::consts::U16;
use blake2::digest::{Digest, Mac};
use blake2::{Blake2s256, Blake2sMac};
use zeroize::Zeroizing;

use super::aead::Cipher;
use super::keys::{PresharedKey, PrivateKey, PublicKey, KEY_LEN};

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// Bound into every handshake, so ours never pass for another protocol's.
pub const PROLOGUE: &[u8] = b"appliance multipath tunnel, wire format 3";
/// Bytes of a tunnel header (mac1 covers it too).
const HEADER: usize = 20;
const MAC: usize = 16;
const INIT_PAYLOAD: usize = 8 + 2 + 1;
const RESP_PAYLOAD: usize = 2 + 1;
/// Noise message 1: ephemeral, encrypted static, encrypted payload.
const NOISE1: usize = 32 + (32 + 16) + (INIT_PAYLOAD + 16);
/// Noise message 2: ephemeral, encrypted payload.
const NOISE2: usize = 32 + (RESP_PAYLOAD + 16);
/// Bytes of an initiation after the tunnel header.
pub const INITIATION_LEN: usize = 4 + NOISE1 + MAC + MAC;
/// Bytes of a response after the tunnel header.
pub const RESPONSE_LEN: usize = 4 + 4 + NOISE2 + MAC + MAC;
/// Bytes of a cookie reply after the tunnel header.
pub const COOKIE_LEN: usize = 4 + MAC + MAC;

/// A cookie: proof that the initiator receives at the address it sends from.
pub type Cookie = [u8; MAC];

/// Why a handshake message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not the length of its type.
    #[error("wrong length")]
    Length,
    /// mac1 is not keyed with our public key.
    #[error("mac1 does not verify")]
    Mac1,
    /// The Noise message does not decrypt or authenticate (wrong keys,
    /// wrong pre-shared key, damaged).
    #[error("the Noise message does not authenticate")]
    Noise,
    /// From a static key that is not our peer's.
    #[error("from an unknown static key")]
    UnknownPeer,
    /// The two sides share no cipher.
    #[error("no cipher in common")]
    NoCipher,
}

/// Our side's keys and choices, fixed for a run.
pub struct Handshaker {
    private: PrivateKey,
    peer: PublicKey,
    psk: Zeroizing<[u8; KEY_LEN]>,
    /// Ciphers we accept (bits of [`Cipher::bit`]).
    offer: u8,
    /// Our preference when choosing as the responder.
    prefer: Cipher,
    /// mac1 keys: of messages to us, and to the peer.
    mac1_in: [u8; 32],
    mac1_out: [u8; 32],
}

impl std::fmt::Debug for Handshaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshaker")
            .field("peer", &self.peer)
            .field("offer", &self.offer)
            .finish_non_exhaustive()
    }
}

/// The keys of a new session, and what the other side said.
pub struct Session {
    /// Key of what we send.
    pub send: Zeroizing<[u8; KEY_LEN]>,
    /// Key of what we receive.
    pub recv: Zeroizing<[u8; KEY_LEN]>,
    /// The cipher both use.
    pub cipher: Cipher,
    /// The key id the peer receives under (our packets carry it).
    pub peer_key_id: u16,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cipher", &self.cipher)
            .field("peer_key_id", &self.peer_key_id)
            .finish_non_exhaustive()
    }
}

/// An initiation we sent and wait to have answered.
pub struct Initiating {
    state: snow::HandshakeState,
    /// Our sender index (the response's receiver index).
    pub index: u32,
    /// Its mac1 (a cookie reply echoes it).
    pub mac1: [u8; MAC],
}

impl std::fmt::Debug for Initiating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiating")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A valid initiation, answered.
#[derive(Debug)]
pub struct Answered {
    /// The session (the peer sends under our `recv` from now on).
    pub session: Session,
    /// The initiator's timestamp (ns since the Unix epoch).
    pub timestamp: u64,
    /// The response's body.
    pub body: Vec<u8>,
}

fn mac1_key(public: &PublicKey) -> [u8; 32] {
    let mut h = Blake2s256::new();
    h.update(b"mac1----");
    h.update(public.0);
    h.finalize().into()
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC] {
    let mut m = <Blake2sMac<U16> as Mac>::new_from_slice(key).expect("BLAKE2s takes 32-byte keys");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut m = <Blake2sMac<U16> as Mac>::new_from_slice(key).expect("BLAKE2s takes 32-byte keys");
    for p in parts {
        m.update(p);
    }
    // Constant time.
    m.verify_slice(tag).is_ok()
}

/// The cookie for `addr` (source address and port) under `secret`.
pub fn cookie(secret: &[u8; 32], addr: &[u8]) -> Cookie {
    mac(secret, &[addr])
}

/// Whether `presented` is the cookie for `addr` under `secret`.
pub fn cookie_ok(secret: &[u8; 32], addr: &[u8], presented: &[u8]) -> bool {
    verify(secret, &[addr], presented)
}

fn index(body: &[u8], at: usize) -> u32 {
    body.get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The receiver index of a response or cookie reply (the initiation it
/// answers), `None` if too short.
pub fn answered_index(kind_is_response: bool, body: &[u8]) -> Option<u32> {
    let at = if kind_is_response { 4 } else { 0 };
    (body.len() >= at + 4).then(|| index(body, at))
}

/// The cookie in a message's last 16 bytes.
pub fn presented_cookie(body: &[u8]) -> &[u8] {
    body.get(body.len().saturating_sub(MAC)..).unwrap_or(&[])
}

impl Handshaker {
    /// Our private key, the peer's public key and the pre-shared key (none:
    /// zeros, as WireGuard), accepting `offer` ciphers and preferring
    /// `prefer` among them.
    pub fn new(
        private: PrivateKey,
        peer: PublicKey,
        psk: Option<&PresharedKey>,
        offer: u8,
        prefer: Cipher,
    ) -> Self {
        let ours = private.public();
        Self {
            private,
            peer,
            psk: Zeroizing::new(psk.map_or([0; KEY_LEN], |k| *k.bytes())),
            offer,
            prefer,
            mac1_in: mac1_key(&ours),
            mac1_out: mac1_key(&peer),
        }
    }

    fn params() -> snow::params::NoiseParams {
        PATTERN.parse().expect("a valid Noise pattern")
    }

    /// The peer's public key.
    pub fn peer(&self) -> PublicKey {
        self.peer
    }

    /// Whether a message to us carries a good mac1 (one BLAKE2s: the check
    /// before any Diffie-Hellman). `header` is its tunnel header.
    pub fn mac1_ok(&self, header: &[u8], body: &[u8]) -> bool {
        if body.len() < 2 * MAC {
            return false;
        }
        let end = body.len() - 2 * MAC;
        verify(
            &self.mac1_in,
            &[header, &body[..end]],
            &body[end..end + MAC],
        )
    }

    /// Fills in mac1 and the cookie of a message to the peer.
    fn seal_macs(
        &self,
        header: &[u8; HEADER],
        body: &mut [u8],
        cookie: Option<Cookie>,
    ) -> [u8; MAC] {
        let end = body.len() - 2 * MAC;
        let m1 = mac(&self.mac1_out, &[header, &body[..end]]);
        body[end..end + MAC].copy_from_slice(&m1);
        body[end + MAC..].copy_from_slice(&cookie.unwrap_or([0; MAC]));
        m1
    }

    /// An initiation (its body) sent under tunnel header `header`, at wall
    /// time `now_ns`, announcing that we receive under `key_id`; with the
    /// peer's cookie if we hold one.
    ///
    /// # Errors
    /// Only if the Noise library fails (no randomness).
    pub fn initiate(
        &self,
        header: &[u8; HEADER],
        key_id: u16,
        now_ns: u64,
        cookie: Option<Cookie>,
    ) -> Result<(Initiating, Vec<u8>), snow::Error> {
        let mut state = snow::Builder::new(Self::params())
            .local_private_key(self.private.bytes())?
            .remote_public_key(&self.peer.0)?
            .psk(2, &self.psk)?
            .prologue(PROLOGUE)?
            .build_initiator()?;
        let mut idx = [0u8; 4];
        super::keys::getrandom(&mut idx);
        let mut payload = [0u8; INIT_PAYLOAD];
        payload[..8].copy_from_slice(&now_ns.to_be_bytes());
        payload[8..10].copy_from_slice(&key_id.to_be_bytes());
        payload[10] = self.offer;
        let mut body = vec![0u8; INITIATION_LEN];
        body[..4].copy_from_slice(&idx);
        let n = state.write_message(&payload, &mut body[4..4 + NOISE1])?;
        debug_assert_eq!(n, NOISE1);
        let mac1 = self.seal_macs(header, &mut body, cookie);
        Ok((
            Initiating {
                state,
                index: u32::from_be_bytes(idx),
                mac1,
            },
            body,
        ))
    }

    /// Answers an initiation (whose mac1, and cookie when asked for, were
    /// checked): the session, and the response's body under tunnel header
    /// `header`, announcing that we receive under `key_id`.
    ///
    /// # Errors
    /// Why the initiation is refused.
    pub fn respond(
        &self,
        body: &[u8],
        header: &[u8; HEADER],
        key_id: u16,
    ) -> Result<Answered, Refused> {
        if body.len() != INITIATION_LEN {
            return Err(Refused::Length);
        }
        let mut state = snow::Builder::new(Self::params())
            .local_private_key(self.private.bytes())
            .and_then(|b| b.psk(2, &self.psk))
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(snow::Builder::build_responder)
            .map_err(|_| Refused::Noise)?;
        let mut payload = Zeroizing::new([0u8; NOISE1]);
        let n = state
            .read_message(&body[4..4 + NOISE1], &mut payload[..])
            .map_err(|_| Refused::Noise)?;
        if state.get_remote_static() != Some(&self.peer.0[..]) {
            return Err(Refused::UnknownPeer);
        }
        if n != INIT_PAYLOAD {
            return Err(Refused::Noise);
        }
        let timestamp = u64::from_be_bytes(payload[..8].try_into().unwrap_or([0; 8]));
        let (peer_key_id, offer) = (u16::from_be_bytes([payload[8], payload[9]]), payload[10]);
        let cipher = self.choose(offer).ok_or(Refused::NoCipher)?;
        let mut out = vec![0u8; RESPONSE_LEN];
        let mut idx = [0u8; 4];
        super::keys::getrandom(&mut idx);
        out[..4].copy_from_slice(&idx);
        out[4..8].copy_from_slice(&body[..4]);
        let [hi, lo] = key_id.to_be_bytes();
        let reply = [hi, lo, cipher.bit()];
        state
            .write_message(&reply, &mut out[8..8 + NOISE2])
            .map_err(|_| Refused::Noise)?;
        self.seal_macs(header, &mut out, None);
        let (to_responder, to_initiator) = state.dangerously_get_raw_split();
        Ok(Answered {
            session: Session {
                send: Zeroizing::new(to_initiator),
                recv: Zeroizing::new(to_responder),
                cipher,
                peer_key_id,
            },
            timestamp,
            body: out,
        })
    }

    /// The static key an initiation (its body) was sent from, if its
    /// Noise message opens under our private key: how a hub tells which of
    /// several peers on learned paths initiated (one Diffie-Hellman more
    /// than answering it; the mac1 check goes first).
    pub fn initiator_of(&self, body: &[u8]) -> Option<PublicKey> {
        let noise = body
            .get(4..4 + NOISE1)
            .filter(|_| body.len() == INITIATION_LEN)?;
        let mut state = snow::Builder::new(Self::params())
            .local_private_key(self.private.bytes())
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(snow::Builder::build_responder)
            .ok()?;
        let mut payload = Zeroizing::new([0u8; NOISE1]);
        state.read_message(noise, &mut payload[..]).ok()?;
        let key: [u8; KEY_LEN] = state.get_remote_static()?.try_into().ok()?;
        Some(PublicKey(key))
    }

    /// The cipher for an initiator's `offer`: ours preferred, else the
    /// other one we both accept.
    fn choose(&self, offer: u8) -> Option<Cipher> {
        let both = offer & self.offer;
        [self.prefer, Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305]
            .into_iter()
            .find(|c| both & c.bit() != 0)
    }

    /// Completes our initiation with the peer's response (mac1 checked).
    ///
    /// # Errors
    /// Why the response is refused.
    pub fn complete(&self, mut init: Initiating, body: &[u8]) -> Result<Session, Refused> {
        if body.len() != RESPONSE_LEN {
            return Err(Refused::Length);
        }
        let mut payload = [0u8; NOISE2];
        let n = init
            .state
            .read_message(&body[8..8 + NOISE2], &mut payload)
            .map_err(|_| Refused::Noise)?;
        if n != RESP_PAYLOAD {
            return Err(Refused::Noise);
        }
        let (peer_key_id, chosen) = (u16::from_be_bytes([payload[0], payload[1]]), payload[2]);
        let cipher = Cipher::from_bit(chosen)
            .filter(|c| self.offer & c.bit() != 0)
            .ok_or(Refused::NoCipher)?;
        let (to_responder, to_initiator) = init.state.dangerously_get_raw_split();
        Ok(Session {
            send: Zeroizing::new(to_responder),
            recv: Zeroizing::new(to_initiator),
            cipher,
            peer_key_id,
        })
    }
}

/// A cookie reply's body: answering initiation `index` whose mac1 was
/// `mac1`, with `cookie`.
pub fn cookie_reply(index: u32, cookie: &Cookie, mac1: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8; COOKIE_LEN];
    body[..4].copy_from_slice(&index.to_be_bytes());
    body[4..4 + MAC].copy_from_slice(cookie);
    body[4 + MAC..].copy_from_slice(mac1.get(..MAC).unwrap_or(&[0; MAC]));
    body
}

/// The mac1 of an initiation (what a cookie reply echoes).
pub fn initiation_mac1(body: &[u8]) -> &[u8] {
    body.get(4 + NOISE1..4 + NOISE1 + MAC).unwrap_or(&[])
}

/// Reads a cookie reply to our initiation `init`: the cookie, if the reply
/// echoes the initiation's mac1 (so only who saw the initiation can send it).
pub fn read_cookie(init: &Initiating, body: &[u8]) -> Option<Cookie> {
    if body.len() != COOKIE_LEN || index(body, 0) != init.index {
        return None;
    }
    let echoed = &body[4 + MAC..];
    // Public values both; compared in constant time all the same.
    let same = echoed
        .iter()
        .zip(init.mac1.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (same == 0).then(|| body[4..4 + MAC].try_into().unwrap_or([0; MAC]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pair(
        psk_a: Option<[u8; 32]>,
        psk_b: Option<[u8; 32]>,
    ) -> (Handshaker, Handshaker) {
        let (a, b) = (PrivateKey::generate(), PrivateKey::generate());
        let (pa, pb) = (a.public(), b.public());
        let both = Cipher::Aes256Gcm.bit() | Cipher::ChaCha20Poly1305.bit();
        let psk = |k: Option<[u8; 32]>| k.map(PresharedKey::from_bytes);
        (
            Handshaker::new(a, pb, psk(psk_a).as_ref(), both, Cipher::Aes256Gcm),
            Handshaker::new(b, pa, psk(psk_b).as_ref(), both, Cipher::Aes256Gcm),
        )
    }

    const H: [u8; HEADER] = [0x23; HEADER];

    #[test]
    fn one_round_trip_gives_both_sides_the_same_keys() {
        let (a, b) = pair(Some([5; 32]), Some([5; 32]));
        let (init, msg1) = a.initiate(&H, 17, 1_000, None).unwrap();
        assert_eq!(msg1.len(), INITIATION_LEN);
        assert!(b.mac1_ok(&H, &msg1));
        assert!(
            !a.mac1_ok(&H, &msg1),
            "mac1 is keyed with the responder's key"
        );
        let answered = b.respond(&msg1, &H, 40).unwrap();
        assert_eq!(answered.timestamp, 1_000);
        assert_eq!(answered.session.peer_key_id, 17);
        assert!(a.mac1_ok(&H, &answered.body));
        let s = a.complete(init, &answered.body).unwrap();
        assert_eq!(s.peer_key_id, 40);
        assert_eq!(s.cipher, Cipher::Aes256Gcm);
        assert_eq!(*s.send, *answered.session.recv);
        assert_eq!(*s.recv, *answered.session.send);
        assert_ne!(*s.send, *s.recv);
    }

    /// A responder with several peers finds which one initiated, whatever
    /// their pre-shared keys (they come in only with the response).
    #[test]
    fn the_initiator_is_found_from_the_initiation() {
        let (a, b) = pair(Some([5; 32]), Some([6; 32]));
        let (_, body) = a.initiate(&H, 1, 1, None).unwrap();
        assert_eq!(b.initiator_of(&body), Some(b.peer()));
        let mut bad = body.clone();
        bad[40] ^= 1;
        assert_eq!(b.initiator_of(&bad), None);
        assert_eq!(b.initiator_of(&body[..10]), None);
    }

    #[test]
    fn a_wrong_psk_or_an_unknown_initiator_forms_no_session() {
        let (a, b) = pair(Some([5; 32]), Some([6; 32]));
        let (init, msg1) = a.initiate(&H, 1, 1, None).unwrap();
        // With psk2 the responder cannot tell yet: the initiator can.
        let answered = b.respond(&msg1, &H, 2).unwrap();
        assert_eq!(
            a.complete(init, &answered.body).unwrap_err(),
            Refused::Noise
        );
        // A third party that knows b's public key but is not b's peer.
        let (_, b2) = pair(None, None);
        let (c, _) = pair(None, None);
        let stranger = Handshaker::new(
            PrivateKey::generate(),
            b2.private.public(),
            None,
            3,
            Cipher::Aes256Gcm,
        );
        let (_, msg) = stranger.initiate(&H, 1, 1, None).unwrap();
        assert_eq!(b2.respond(&msg, &H, 2).unwrap_err(), Refused::UnknownPeer);
        drop(c);
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let (a, b) = pair(None, None);
        let (_, msg1) = a.initiate(&H, 1, 1, None).unwrap();
        for i in 0..msg1.len() - 16 {
            let mut m = msg1.clone();
            m[i] ^= 1;
            let refused = !b.mac1_ok(&H, &m) || b.respond(&m, &H, 2).is_err();
            // The sender index is outside Noise but under mac1.
            assert!(refused, "byte {i}");
        }
        assert!(!b.mac1_ok(&[0; HEADER], &msg1), "mac1 covers the header");
    }

    #[test]
    fn the_cipher_is_one_both_accept() {
        let (a0, b) = pair(None, None);
        let chacha_only = Handshaker::new(
            PrivateKey::parse(&base64_of(a0.private.bytes())).unwrap(),
            a0.peer,
            None,
            Cipher::ChaCha20Poly1305.bit(),
            Cipher::ChaCha20Poly1305,
        );
        let (init, msg1) = chacha_only.initiate(&H, 1, 1, None).unwrap();
        let answered = b.respond(&msg1, &H, 2).unwrap();
        assert_eq!(answered.session.cipher, Cipher::ChaCha20Poly1305);
        assert_eq!(
            chacha_only.complete(init, &answered.body).unwrap().cipher,
            Cipher::ChaCha20Poly1305
        );
        let none = Handshaker::new(
            PrivateKey::parse(&base64_of(a0.private.bytes())).unwrap(),
            a0.peer,
            None,
            0,
            Cipher::Aes256Gcm,
        );
        let (_, msg1) = none.initiate(&H, 1, 1, None).unwrap();
        assert_eq!(b.respond(&msg1, &H, 2).unwrap_err(), Refused::NoCipher);
    }

    #[test]
    fn a_cookie_reply_is_taken_only_for_our_initiation() {
        let (a, _) = pair(None, None);
        let (init, msg1) = a.initiate(&H, 1, 1, None).unwrap();
        let secret = [9u8; 32];
        let addr = [172, 16, 0, 1, 0x12, 0xc0];
        let c = cookie(&secret, &addr);
        assert!(cookie_ok(&secret, &addr, &c));
        assert!(!cookie_ok(&secret, &[172, 16, 0, 2, 0x12, 0xc0], &c));
        let reply = cookie_reply(init.index, &c, initiation_mac1(&msg1));
        assert_eq!(read_cookie(&init, &reply), Some(c));
        let blind = cookie_reply(init.index, &c, &[0; 16]);
        assert_eq!(read_cookie(&init, &blind), None, "must echo mac1");
        let (_, msg2) = a.initiate(&H, 1, 2, Some(c)).unwrap();
        assert_eq!(presented_cookie(&msg2), &c[..]);
    }

    fn base64_of(b: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    }
}
