//! The encrypted tunnel against the wrong keys and an attacker on a WAN path, in the sites
//! topology (two appliances over two emulated links, keys made by `appliance genkey`):
//!
//! - a wrong peer key or a wrong pre-shared key forms no tunnel and passes nothing;
//! - a restart of either side forms it again;
//! - packets captured on link A and sent again, or sent again with one byte changed (header,
//!   payload or tag), reach nobody and are counted exactly;
//! - forged probe replies keep no dead path up;
//! - a flood of handshake initiations leaves BFD Up with no flap and the tunnel carrying.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use appliance::tunnel::crypto::aead::Cipher;
use appliance::tunnel::crypto::handshake::Handshaker;
use appliance::tunnel::crypto::keys::PrivateKey;
use serde_json::Value;
use testbed::netns::skip_unless_root;
use testbed::probe::{send_seq_from, SeqReceiver};
use testbed::scenario::systems::appliance_tunnel::{Site, TunnelSpec};
use testbed::tap;
use testbed::tunnel_bed::{bed_unformed, bed_with, Bed, RATES};

const TUNNEL_PORT: u16 = 4800;

fn spec() -> TunnelSpec {
    let mut spec = TunnelSpec::new("wlb", &RATES);
    spec.extra =
        "bfd = { desired_min_tx = \"100ms\", required_min_rx = \"100ms\", detect_mult = 3 }\n"
            .into();
    spec
}

fn tunnel_drop(b: &Bed, site: Site, reason: &str) -> u64 {
    b.show(site, "tunnel")["drops"][reason]
        .as_u64()
        .unwrap_or(0)
}

fn handshakes(b: &Bed, site: Site) -> Value {
    b.show(site, "tunnel")["encryption"]["handshakes"].clone()
}

fn usable(b: &Bed, site: Site) -> usize {
    b.paths(site).iter().filter(|p| p["usable"] == true).count()
}

/// Whether host A reaches host B through the tunnel (two pings, 1 s each).
fn pings(b: &Bed) -> bool {
    b.sites
        .host_a
        .ns
        .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.2.0.2"])
        .is_ok_and(|out| out.contains(" 0% packet loss"))
}

/// A tunnel packet on link A toward appliance B: IPv4 to 172.16.0.2, UDP to the tunnel port.
fn to_b(f: &[u8]) -> bool {
    f.len() >= 62
        && f[12..14] == [8, 0]
        && f[23] == 17
        && f[30..34] == [172, 16, 0, 2]
        && f[36..38] == TUNNEL_PORT.to_be_bytes()
}

/// ... carrying data (version 3, type 0) sealed under a key.
fn sealed_data_to_b(f: &[u8]) -> bool {
    to_b(f) && f[42] == 0x30 && f[44..46] != [0, 0]
}

/// ... a sealed probe reply (type 2).
fn sealed_reply_to_b(f: &[u8]) -> bool {
    to_b(f) && f[42] == 0x32 && f[44..46] != [0, 0]
}

#[test]
fn wrong_keys_form_no_tunnel_and_a_restart_of_either_side_forms_it_again() -> Result<()> {
    if skip_unless_root(&["ip", "ping"]) {
        return Ok(());
    }
    for (what, wrong_peer_key, psk) in [
        ("a wrong peer key", true, None),
        ("a wrong pre-shared key", false, Some(false)),
    ] {
        let mut s = spec();
        s.wrong_peer_key = wrong_peer_key;
        s.psk = psk;
        let b = bed_unformed(s)?;
        std::thread::sleep(Duration::from_secs(3));
        assert!(!pings(&b), "{what}: nothing passes");
        for site in [Site::A, Site::B] {
            assert_eq!(usable(&b, site), 0, "{what}: no path usable at {site:?}");
            let t = b.show(site, "tunnel");
            assert!(
                t["encryption"]["cipher"].is_null(),
                "{what}: no session at {site:?}: {}",
                t["encryption"]
            );
        }
        // Each side refused the other's handshake messages, and counted them.
        let refused: u64 = [Site::A, Site::B]
            .iter()
            .map(|s| handshakes(&b, *s)["failed"].as_u64().unwrap_or(0))
            .sum();
        assert!(refused > 0, "{what}: refusals counted");
        eprintln!(
            "{what}: refused {refused} handshake messages; A {} B {}",
            handshakes(&b, Site::A),
            handshakes(&b, Site::B)
        );
        b.finish()?;
    }

    // The same psk on both sides: the tunnel forms; then each side restarts.
    let mut s = spec();
    s.psk = Some(true);
    let mut b = bed_with(s, 0.0)?;
    assert!(pings(&b), "with the same psk the tunnel passes traffic");
    for site in [Site::B, Site::A] {
        let t0 = Instant::now();
        b.restart(site)?;
        let up = t0.elapsed();
        let n = b.pair().wait_usable(2, Duration::from_secs(15))?;
        let formed = t0.elapsed();
        assert_eq!(n, 2, "{site:?} restarted: both paths usable again");
        assert!(pings(&b), "{site:?} restarted: traffic passes");
        eprintln!(
            "{site:?} restarted: control socket after {up:?}, both paths usable after {formed:?}"
        );
        let e = &b.show(site, "tunnel")["encryption"];
        assert!(e["cipher"].is_string(), "a new session: {e}");
    }
    b.finish()?;
    Ok(())
}

#[test]
fn replayed_and_altered_packets_reach_nobody_and_are_counted_exactly() -> Result<()> {
    if skip_unless_root(&["ip"]) {
        return Ok(());
    }
    let (b, emu_b) = bed_with_bfd_up()?;
    // A sequenced stream from host A to host B (200/s for 4 s), and a capture of 40 of its
    // sealed packets on link A as they go to appliance B.
    let port = 7000;
    let count = 800;
    let rx = b.sites.host_b.ns.spawn_in(move || {
        SeqReceiver::bind(port)?.collect(Duration::from_secs(3), Duration::from_secs(60))
    })?;
    std::thread::sleep(Duration::from_millis(100));
    let cap = tap::capture(
        &b.sites.emu,
        &emu_b,
        40,
        Duration::from_secs(3),
        sealed_data_to_b,
    )?;
    let dst = SocketAddr::from((b.sites.host_b.addr, port));
    let start = Instant::now();
    let tx = b
        .sites
        .host_a
        .ns
        .spawn_in(move || send_seq_from(dst, count, Duration::from_millis(5), 200, start))?;
    let captured = cap.join().map_err(|_| anyhow::anyhow!("tap panicked"))??;
    assert_eq!(captured.len(), 40, "40 sealed data packets seen on link A");
    let before = |r| tunnel_drop(&b, Site::B, r);
    let (replays0, forged0) = (before("tunnel_replay"), before("tunnel_auth_failed"));
    // Sent again as they were (replays), and again with a payload byte changed: refused as
    // replays too, by their path sequence, before any decryption.
    let mut frames = captured.clone();
    frames.extend(captured.iter().map(|f| flipped(f, 70)));
    // Forgeries with fresh sequence numbers (ahead of the window), each with one more byte
    // changed: in the header (a lane sequence byte: the header is the associated data), in
    // the payload, in the tag. They fail authentication and must not move the window: the
    // stream's own packets keep being accepted after them.
    for at in [50usize, 70, usize::MAX] {
        frames.extend(captured.iter().map(|f| {
            let mut f = f.clone();
            let seq = u32::from_be_bytes([f[54], f[55], f[56], f[57]]).wrapping_add(100_000);
            f[54..58].copy_from_slice(&seq.to_be_bytes());
            let i = if at == usize::MAX { f.len() - 1 } else { at };
            flipped(&f, i)
        }));
    }
    let sent = tap::inject(&b.sites.emu, &emu_b, frames, Duration::from_micros(500), 1)?
        .join()
        .map_err(|_| anyhow::anyhow!("tap panicked"))??;
    assert_eq!(sent, 200);
    tx.join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let got = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    std::thread::sleep(Duration::from_millis(300));
    let after = |r| tunnel_drop(&b, Site::B, r);
    assert_eq!(
        after("tunnel_replay") - replays0,
        80,
        "each replay counted once"
    );
    assert_eq!(
        after("tunnel_auth_failed") - forged0,
        120,
        "each altered packet failed authentication"
    );
    // Host B got every datagram of the stream exactly once, in order: nothing injected
    // reached it.
    let want: Vec<u64> = (0..count).collect();
    assert_eq!(got, want, "every datagram once, in order");
    let path_a = b.path(Site::B, "a");
    assert_eq!(
        path_a["drops"]["tunnel_auth_failed"].as_u64(),
        Some(120),
        "counted on the path: {}",
        path_a["drops"]
    );
    b.finish()?;
    Ok(())
}

#[test]
fn forged_probe_replies_keep_no_dead_path_up() -> Result<()> {
    if skip_unless_root(&["ip"]) {
        return Ok(());
    }
    let (b, emu_b) = bed_with_bfd_up()?;
    let captured = tapped(&b, &emu_b, 50, sealed_reply_to_b)?;
    assert!(captured.len() >= 20, "probe replies to B seen on link A");
    // The replies sent again, and again with their tag changed: 200 a second for 3 s, while
    // link A loses everything.
    let mut frames = captured.clone();
    frames.extend(captured.iter().map(|f| {
        let mut f = f.clone();
        let last = f.len() - 1;
        f[last] ^= 0x80;
        f
    }));
    let forged0 = tunnel_drop(&b, Site::B, "tunnel_auth_failed");
    let replays0 = tunnel_drop(&b, Site::B, "tunnel_replay");
    b.emulator("link a state blackhole both")?;
    let rounds = (600 / frames.len()).max(1);
    let inj = tap::inject(
        &b.sites.emu,
        &emu_b,
        frames,
        Duration::from_millis(5),
        rounds,
    )?;
    let t0 = Instant::now();
    let mut out_after = None;
    while t0.elapsed() < Duration::from_secs(3) {
        if b.path(Site::B, "a")["usable"] == false && out_after.is_none() {
            out_after = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = inj.join().map_err(|_| anyhow::anyhow!("tap panicked"))??;
    let out_after = out_after.context("path a at B stayed usable under forged replies")?;
    eprintln!("path a out at B after {out_after:?} while {sent} forged replies arrived");
    assert!(
        out_after < Duration::from_secs(1),
        "within BFD's detection time and the silence limit"
    );
    assert_eq!(
        b.path(Site::B, "a")["usable"],
        false,
        "still out at the end of the forgery"
    );
    let forged = tunnel_drop(&b, Site::B, "tunnel_auth_failed") - forged0;
    let replays = tunnel_drop(&b, Site::B, "tunnel_replay") - replays0;
    assert_eq!(
        forged + replays,
        sent,
        "every forged reply refused and counted"
    );
    b.emulator("link a state up")?;
    b.finish()?;
    Ok(())
}

#[test]
fn a_flood_of_handshake_initiations_leaves_bfd_up_and_the_tunnel_carrying() -> Result<()> {
    if skip_unless_root(&["ip"]) {
        return Ok(());
    }
    let (b, emu_b) = bed_with_bfd_up()?;
    // A template frame from A to B on link A: its addresses and MACs.
    let template = tapped(&b, &emu_b, 1, to_b)?
        .pop()
        .context("a frame to B on link A")?;
    // Initiations from a key B does not know, with a good mac1 (B's public key is public):
    // each would cost B's management lcore a Diffie-Hellman if it did not refuse them.
    let b_public = PrivateKey::read(&b.pair().dir().join("b.key"))?.public();
    let stranger = Handshaker::new(
        PrivateKey::generate(),
        b_public,
        None,
        Cipher::Aes256Gcm.bit() | Cipher::ChaCha20Poly1305.bit(),
        Cipher::Aes256Gcm,
    );
    let frames: Vec<Vec<u8>> = (0..300u64)
        .map(|i| {
            let mut header = [0u8; 20];
            header[0] = 0x33; // version 3, handshake initiation
            header[1] = 0x10; // unordered, path 0
            header[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
            let (_, body) = stranger
                .initiate(&header, 1, 1_000_000 + i, None)
                .expect("initiation");
            let mut f = template[..42].to_vec();
            f.extend_from_slice(&header);
            f.extend_from_slice(&body);
            let udp_len = (8 + 20 + body.len()) as u16;
            f[38..40].copy_from_slice(&udp_len.to_be_bytes());
            f[40..42].copy_from_slice(&[0, 0]);
            f[16..18].copy_from_slice(&(20 + udp_len).to_be_bytes());
            let (mut ip, _) = etherparse::Ipv4Header::from_slice(&f[14..34]).expect("ip");
            ip.header_checksum = ip.calc_header_checksum();
            f[24..26].copy_from_slice(&ip.header_checksum.to_be_bytes());
            f
        })
        .collect();
    let flaps = |site| -> Vec<u64> {
        b.paths(site)
            .iter()
            .map(|p| p["bfd"]["flaps"].as_u64().unwrap_or(0) + p["flaps"].as_u64().unwrap_or(0))
            .collect()
    };
    let (flaps_a, flaps_b) = (flaps(Site::A), flaps(Site::B));
    let srtt_before = b.path(Site::B, "a")["srtt_us"].as_u64().unwrap_or(0);
    // 10 s of initiations, as fast as the tap sends (thousands a second), with a sequenced
    // stream through the tunnel and a control request to B every 50 ms.
    let port = 7000;
    let count = 1500u64;
    let rx = b.sites.host_b.ns.spawn_in(move || {
        SeqReceiver::bind(port)?.collect(Duration::from_secs(3), Duration::from_secs(60))
    })?;
    std::thread::sleep(Duration::from_millis(100));
    let flood = tap::inject(
        &b.sites.emu,
        &emu_b,
        frames,
        Duration::from_micros(200),
        170,
    )?;
    let dst = SocketAddr::from((b.sites.host_b.addr, port));
    let start = Instant::now();
    let tx = b
        .sites
        .host_a
        .ns
        .spawn_in(move || send_seq_from(dst, count, Duration::from_millis(5), 200, start))?;
    let mut slowest = Duration::ZERO;
    let mut srtt_during = 0;
    while start.elapsed() < Duration::from_secs(9) {
        let t = Instant::now();
        let p = b.path(Site::B, "a");
        slowest = slowest.max(t.elapsed());
        srtt_during = srtt_during.max(p["srtt_us"].as_u64().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = flood
        .join()
        .map_err(|_| anyhow::anyhow!("tap panicked"))??;
    let elapsed = start.elapsed();
    tx.join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let got = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let h = handshakes(&b, Site::B);
    let limited = tunnel_drop(&b, Site::B, "tunnel_handshake_limited");
    eprintln!(
        "flood: {sent} initiations in {elapsed:?}; B: {h}, {limited} dropped by the workers' limit; \
         slowest control request {slowest:?}; path a srtt {srtt_before} us before, at most {srtt_during} us during"
    );
    assert_eq!(flaps(Site::A), flaps_a, "no BFD or path flap at A");
    assert_eq!(flaps(Site::B), flaps_b, "no BFD or path flap at B");
    assert_eq!(
        got,
        (0..count).collect::<Vec<_>>(),
        "the stream crossed whole, in order"
    );
    assert!(
        limited > 0,
        "the workers hand the management lcore a bounded rate"
    );
    assert!(
        h["cookies_sent"].as_u64().unwrap_or(0) > 0,
        "under load, initiations need a cookie: {h}"
    );
    // At most the answer budget (50/s, burst 10) reached a Diffie-Hellman.
    let dh = h["failed"].as_u64().unwrap_or(0);
    assert!(
        dh <= 10 + 50 * (elapsed.as_secs() + 2),
        "{dh} refused after a DH"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "control answered: {slowest:?}"
    );
    b.finish()?;
    Ok(())
}

/// The pair with BFD up on both paths, and the emulator's interface toward B on link A
/// (where the attacker sits).
fn bed_with_bfd_up() -> Result<(Bed, String)> {
    let b = bed_with(spec(), 0.0)?;
    b.wait_bfd_up(Duration::from_secs(10))?;
    let emu_b = b.sites.links[0].emu_b_iface.clone();
    Ok((b, emu_b))
}

/// Up to `n` frames that pass `iface` in the emulator's namespace and `wanted`, within 3 s.
fn tapped(b: &Bed, iface: &str, n: usize, wanted: fn(&[u8]) -> bool) -> Result<Vec<Vec<u8>>> {
    tap::capture(&b.sites.emu, iface, n, Duration::from_secs(3), wanted)?
        .join()
        .map_err(|_| anyhow::anyhow!("tap panicked"))?
}

fn flipped(f: &[u8], at: usize) -> Vec<u8> {
    let mut f = f.to_vec();
    f[at] ^= 0x01;
    f
}
