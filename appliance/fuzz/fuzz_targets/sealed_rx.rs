//! Any bytes as a frame arriving for an encrypted tunnel: parsed, checked against a replay
//! window, opened, and decapsulated when it opens. Refused for a reason, never a panic; a
//! frame that does not open leaves the window as it was.
#![no_main]

use appliance::buf::VecBuf;
use appliance::tunnel::crypto::aead::{Cipher, PacketKey};
use appliance::tunnel::crypto::replay::Window;
use appliance::tunnel::encap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rx) = encap::parse_rx(data) else {
        return;
    };
    let seq = rx.header.path_seq;
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        let key = PacketKey::new(cipher, &[7; 32]);
        let mut window = Window::default();
        window.mark(seq.wrapping_sub(3));
        if window.fresh(seq).is_err() {
            continue;
        }
        let mut frame = data.to_vec();
        if encap::open(&mut frame, &rx, &key).is_ok() {
            window.mark(seq);
            let mut b = VecBuf::new(&frame);
            let _ = encap::decapsulate(&mut b, &rx);
        } else {
            assert!(window.fresh(seq).is_ok(), "a failed open moves nothing");
        }
    }
});
