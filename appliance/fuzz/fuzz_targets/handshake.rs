//! Any bytes as a handshake message (initiation, response, cookie reply) to an appliance's
//! sessions, one that waits for a response and one that does not: refused or answered,
//! never a panic.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::Arc;

use appliance::time::Time;
use appliance::tunnel::crypto::aead::Cipher;
use appliance::tunnel::crypto::handshake::Handshaker;
use appliance::tunnel::crypto::keys::PrivateKey;
use appliance::tunnel::crypto::session::Sessions;
use appliance::tunnel::crypto::TunnelCrypto;
use appliance::wire::tunnel::Kind;
use libfuzzer_sys::fuzz_target;

const OURS: &str = "Dkziac/46XbBALFnhsVRb1qjEnplQ8R0rnYe8H4/z8w=";
const PEER: &str = "E/1Esc0WvrvEUAW07E5cY8Z34AlU8HnaZIHs8JVs1mE=";

fn sessions() -> Sessions {
    let ours = PrivateKey::parse(OURS).expect("key");
    let peer = PrivateKey::parse(PEER).expect("key").public();
    let both = Cipher::Aes256Gcm.bit() | Cipher::ChaCha20Poly1305.bit();
    let hs = Handshaker::new(ours, peer, None, both, Cipher::Aes256Gcm);
    let crypto = Arc::new(TunnelCrypto::new(Cipher::Aes256Gcm, 2));
    Sessions::new(hs, crypto, (2, 0), Time::from_secs(1))
}

fn header(_: usize, kind: Kind) -> Option<[u8; 20]> {
    let mut h = [0u8; 20];
    h[0] = 0x30 | kind.bits();
    Some(h)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 21 {
        return;
    }
    let (h, body) = data[1..].split_at(20);
    let now = Time::from_secs(2);
    let src = (Ipv4Addr::new(172, 16, 0, 2), 4800);
    let usable = [true, false];
    // One that has sent an initiation (a response or cookie may match it) and one that
    // has not.
    let mut waiting = sessions();
    let _ = waiting.poll(Time::from_secs(1), &usable, &mut header);
    for s in [&mut waiting, &mut sessions()] {
        match data[0] % 3 {
            0 => drop(s.on_initiation(h, body, src, 0, now, &mut header)),
            1 => s.on_response(h, body, now),
            _ => drop(s.on_cookie(body, now, &usable, &mut header)),
        }
        let _ = s.poll(now, &usable, &mut header);
    }
});
