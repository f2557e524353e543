//! The appliance's static key pair and the peer's public key: X25519 keys,
//! written and read as WireGuard writes them (32 bytes in base64, one line).
//!
//! A private key lives in a file of its own, readable by its owner only
//! (`appliance genkey FILE`), never inline in the config, never printed:
//! [`PrivateKey`] has no `Display`, its `Debug` is redacted, and its bytes
//! are zeroed when it is dropped. The same holds for the pre-shared key.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use zeroize::Zeroizing;

/// Bytes of an X25519 key and of the pre-shared key.
pub const KEY_LEN: usize = 32;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("a readable key file ({0})")]
    Unreadable(String),
    /// Group or others may read the file.
    #[error(
        "a key file only its owner can read (mode 0600, as `appliance genkey` writes it), not mode {0:04o}"
    )]
    Exposed(u32),
    /// Not 32 bytes in base64.
    #[error("a 32-byte key in base64 (44 characters, as `appliance genkey` writes it)")]
    Malformed,
}

/// The appliance's private key.
pub struct PrivateKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// A pre-shared key, mixed into every handshake (WireGuard's psk).
pub struct PresharedKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(..)")
    }
}

/// A public key: the peer's, or ours to give it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode(s.trim()).map(|k| PublicKey(*k))
    }
}

fn decode(s: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let bytes = Zeroizing::new(B64.decode(s).map_err(|_| KeyError::Malformed)?);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(KeyError::Malformed);
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Reads a key file: one line of base64, readable by its owner only.
fn read_secret(file: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let meta = std::fs::metadata(file).map_err(|e| KeyError::Unreadable(e.to_string()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed(mode));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(file).map_err(|e| KeyError::Unreadable(e.to_string()))?,
    );
    decode(text.trim())
}

impl PrivateKey {
    /// A new random key.
    ///
    /// # Panics
    /// If the system has no randomness to give (getrandom failed).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        // X25519 clamps when it uses the key; any 32 random bytes are a key.
        getrandom(&mut key[..]);
        Self(key)
    }

    /// Reads a private key file.
    ///
    /// # Errors
    /// The file is unreadable, readable by others, or not a key.
    pub fn read(file: &Path) -> Result<Self, KeyError> {
        read_secret(file).map(Self)
    }

    /// Parses a key in base64 (`appliance pubkey` reads one from stdin).
    ///
    /// # Errors
    /// Not 32 bytes in base64.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        decode(s.trim()).map(Self)
    }

    /// Writes the key to a new file, mode 0600 (refusing to overwrite one).
    ///
    /// # Errors
    /// The file exists or cannot be written.
    pub fn write_new(&self, file: &Path) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)?;
        let line = Zeroizing::new(format!("{}\n", B64.encode(&self.0[..])));
        f.write_all(line.as_bytes())?;
        f.sync_all()
    }

    /// The raw bytes, for the handshake.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The public key that goes with it.
    pub fn public(&self) -> PublicKey {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("the default resolver has X25519");
        dh.set(&self.0[..]);
        let mut public = [0u8; KEY_LEN];
        public.copy_from_slice(dh.pubkey());
        PublicKey(public)
    }
}

impl PresharedKey {
    /// Reads a pre-shared key file (as a private key: mode 0600).
    ///
    /// # Errors
    /// The file is unreadable, readable by others, or not a key.
    pub fn read(file: &Path) -> Result<Self, KeyError> {
        read_secret(file).map(Self)
    }

    /// From raw bytes (tests).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes, for the handshake.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// What tells one set of tunnel keys from another without holding a secret:
/// the public keys, and a hash of the pre-shared key (a reload compares
/// prints to see whether the key files changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPrint {
    /// Our public key.
    pub ours: PublicKey,
    /// The peer's.
    pub peer: PublicKey,
    /// BLAKE2s of the pre-shared key, if one is configured.
    pub psk: Option<[u8; 32]>,
}

impl KeyPrint {
    /// The print of these keys.
    pub fn of(private: &PrivateKey, peer: PublicKey, psk: Option<&PresharedKey>) -> Self {
        use blake2::Digest;
        Self {
            ours: private.public(),
            peer,
            psk: psk.map(|k| {
                let mut h = blake2::Blake2s256::new();
                h.update(b"appliance psk print");
                h.update(k.bytes());
                h.finalize().into()
            }),
        }
    }
}

/// Fills `buf` from the system's randomness.
///
/// # Panics
/// If the system has none to give (no key can be made safely without it).
pub fn getrandom(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .expect("the system's random source failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The X25519 test vector of RFC 7748 §6.1 (Alice's key pair).
    #[test]
    fn the_public_key_is_x25519_of_the_private_one() {
        let private = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let k = PrivateKey::parse(&B64.encode(private)).unwrap();
        assert_eq!(k.public().0[..], public[..]);
    }

    #[test]
    fn a_written_key_reads_back_and_is_private() {
        let dir = std::env::temp_dir().join(format!("keys-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("site.key");
        let _ = std::fs::remove_file(&file);
        let k = PrivateKey::generate();
        k.write_new(&file).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(PrivateKey::read(&file).unwrap().bytes(), k.bytes());
        assert!(k.write_new(&file).is_err(), "never overwrites a key");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            PrivateKey::read(&file).unwrap_err(),
            KeyError::Exposed(0o644)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let k = PrivateKey::generate();
        let b64 = B64.encode(&k.bytes()[..]);
        assert!(!format!("{k:?}").contains(&b64[..8]));
        let psk = PresharedKey::from_bytes([7; 32]);
        assert_eq!(format!("{psk:?}"), "PresharedKey(..)");
    }

    #[test]
    fn malformed_keys_are_refused() {
        for s in ["", "abc", &B64.encode([1u8; 31]), &B64.encode([1u8; 33])] {
            assert_eq!(s.parse::<PublicKey>().unwrap_err(), KeyError::Malformed);
        }
        let k: PublicKey = B64.encode([9u8; 32]).parse().unwrap();
        assert_eq!(k.to_string().parse::<PublicKey>().unwrap(), k);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
