//! The AEAD of tunnel packets: which cipher, the nonce, and sealing and
//! opening in place (ring's assembly implementations; no copy, no
//! allocation).
//!
//! The nonce is never sent: it is the sender's lane, the path id and the
//! packet's path sequence number, all three in the header (which is the
//! associated data, so changing any of them fails the tag). Each sender
//! numbers its (lane, path) pairs on its own and every key is used in one
//! direction by one appliance, so no nonce repeats under a key as long as
//! no (lane, path) sends 2^32 packets under it: the packet limits below keep
//! every key far from that (docs/wire-format.md, "The nonce").

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};

use super::keys::KEY_LEN;

/// Bytes of the tag appended to every encrypted payload.
pub const TAG_LEN: usize = 16;
/// Bytes of a nonce.
pub const NONCE_LEN: usize = 12;

/// An AEAD the tunnel can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-256-GCM (where the CPU has AES instructions).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (everywhere else).
    ChaCha20Poly1305,
}

impl Cipher {
    /// The name in the config, `show tunnel` and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// Its bit in the handshake's offer.
    pub fn bit(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 1,
            Cipher::ChaCha20Poly1305 => 2,
        }
    }

    /// The cipher with bit `bit` (the handshake's and the report's code).
    pub fn from_bit(bit: u8) -> Option<Cipher> {
        [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305]
            .into_iter()
            .find(|c| c.bit() == bit)
    }

    /// Packets one key may seal before the tunnel makes a new one.
    pub fn rekey_after_packets(self) -> u64 {
        self.reject_after_packets() / 2
    }

    /// Packets one key may seal at most; past it, nothing is sent under it.
    ///
    /// AES-GCM: QUIC's confidentiality limit (RFC 9001 §6.6, 2^23 packets).
    /// ChaCha20-Poly1305 has no practical limit of its own (RFC 9001: more
    /// than 2^62); ours is that no (lane, path) sequence may wrap under one
    /// key (2^32), with room.
    pub fn reject_after_packets(self) -> u64 {
        match self {
            Cipher::Aes256Gcm => 1 << 23,
            Cipher::ChaCha20Poly1305 => 1 << 31,
        }
    }

    /// Whether this CPU has the instructions AES-GCM needs to be fast and
    /// constant-time (AES-NI and carry-less multiply).
    pub fn hardware_aes() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("pclmulqdq")
        }
        #[cfg(target_arch = "aarch64")]
        {
            std::arch::is_aarch64_feature_detected!("aes")
                && std::arch::is_aarch64_feature_detected!("pmull")
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            false
        }
    }

    fn algorithm(self) -> &'static ring::aead::Algorithm {
        match self {
            Cipher::Aes256Gcm => &AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The nonce of a packet sent on `lane` over the path with wire id `path`
/// with path sequence number `seq`.
#[inline]
pub fn nonce(lane: u16, path: u8, seq: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[0..2].copy_from_slice(&lane.to_be_bytes());
    n[2] = path;
    n[4..8].copy_from_slice(&seq.to_be_bytes());
    n
}

/// The path sequence numbers of one sender lane, one counter per path id:
/// every packet the lane sends over a path takes that path's next, so
/// (lane, path id, number) is a nonce no other packet of the sender shares.
/// Kept by wire id, not by the path's place in the table, so that paths a
/// reload adds, removes or moves never make two packets share a number.
#[derive(Debug, Clone, Default)]
pub struct PathSeqs([u32; crate::tunnel::MAX_PATHS]);

impl PathSeqs {
    /// The next number on the path with wire id `id` (1 for the first
    /// packet).
    #[inline]
    pub fn next(&mut self, id: u8) -> u32 {
        let Some(seq) = self.0.get_mut(usize::from(id)) else {
            return 0;
        };
        *seq = seq.wrapping_add(1);
        *seq
    }
}

/// The packet failed authentication (a forged, damaged or misdirected
/// packet, or one under a key it was not sealed with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailed;

/// One direction's key of a session.
pub struct PacketKey {
    key: LessSafeKey,
    cipher: Cipher,
}

impl fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketKey({}, ..)", self.cipher)
    }
}

impl PacketKey {
    /// A key of `cipher` from 32 secret bytes.
    pub fn new(cipher: Cipher, bytes: &[u8; KEY_LEN]) -> Self {
        let key =
            UnboundKey::new(cipher.algorithm(), bytes).expect("both ciphers take 32-byte keys");
        Self {
            key: LessSafeKey::new(key),
            cipher,
        }
    }

    /// Its cipher.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Encrypts `payload` in place under `nonce`, authenticating `aad` with
    /// it, and returns the tag.
    #[inline]
    pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], payload: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                payload,
            )
            // Only a payload beyond the cipher's limit (GiB) fails.
            .map_or([0u8; TAG_LEN], |t| {
                let mut tag = [0u8; TAG_LEN];
                tag.copy_from_slice(t.as_ref());
                tag
            });
        tag
    }

    /// Decrypts `sealed` (ciphertext then tag) in place and returns the
    /// plaintext's length.
    ///
    /// # Errors
    /// The tag does not verify (the bytes are then undefined).
    #[inline]
    pub fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        sealed: &mut [u8],
    ) -> Result<usize, AuthFailed> {
        self.key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), sealed)
            .map(|plain| plain.len())
            .map_err(|_| AuthFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ring's AES-256-GCM against the test vector of the GCM specification
    /// (McGrew and Viega, test case 16: 256-bit key, 60-byte text, AAD).
    #[test]
    fn aes_256_gcm_matches_the_published_vector() {
        let key: [u8; 32] = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .try_into()
            .unwrap();
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let mut text = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let tag = PacketKey::new(Cipher::Aes256Gcm, &key).seal(iv, &aad, &mut text);
        assert_eq!(
            text,
            hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662")
        );
        assert_eq!(tag[..], hex("76fc6ece0f4e1768cddf8853bb2d551b")[..]);
    }

    /// ChaCha20-Poly1305 against RFC 8439 §2.8.2.
    #[test]
    fn chacha20_poly1305_matches_rfc_8439() {
        let key: [u8; 32] = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
            .try_into()
            .unwrap();
        let nonce: [u8; 12] = hex("070000004041424344454647").try_into().unwrap();
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let mut text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        let tag = PacketKey::new(Cipher::ChaCha20Poly1305, &key).seal(nonce, &aad, &mut text);
        assert_eq!(&text[..16], &hex("d31a8d34648e60db7b86afbc53ef7ec2")[..]);
        assert_eq!(tag[..], hex("1ae10b594f09e26a7e902ecbd0600691")[..]);
    }

    #[test]
    fn a_changed_byte_anywhere_fails_and_the_right_packet_opens() {
        for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            let k = PacketKey::new(cipher, &[3; 32]);
            let aad = [9u8; 20];
            let mut p = b"inner packet".to_vec();
            let tag = k.seal(nonce(1, 2, 3), &aad, &mut p);
            p.extend_from_slice(&tag);
            for i in 0..p.len() {
                let mut q = p.clone();
                q[i] ^= 0x40;
                assert_eq!(k.open(nonce(1, 2, 3), &aad, &mut q), Err(AuthFailed));
            }
            for i in 0..aad.len() {
                let mut a = aad;
                a[i] ^= 1;
                assert_eq!(k.open(nonce(1, 2, 3), &a, &mut p.clone()), Err(AuthFailed));
            }
            assert_eq!(
                k.open(nonce(1, 2, 4), &aad, &mut p.clone()),
                Err(AuthFailed)
            );
            let other = PacketKey::new(cipher, &[4; 32]);
            assert_eq!(
                other.open(nonce(1, 2, 3), &aad, &mut p.clone()),
                Err(AuthFailed)
            );
            let n = k.open(nonce(1, 2, 3), &aad, &mut p).unwrap();
            assert_eq!(&p[..n], b"inner packet");
        }
    }

    #[test]
    fn the_nonce_holds_lane_path_and_sequence() {
        assert_eq!(
            nonce(0x0102, 7, 0x0a0b0c0d),
            [1, 2, 7, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 0]
        );
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
