//! The encrypted wire against an independent AEAD: one appliance (net_af_packet on veths)
//! between a Linux host and a tunnel peer played by this test. The peer answers the
//! appliance's handshake (Noise IKpsk2, the appliance's own handshake code: the keys are
//! not what is under test here) and then does everything else itself with RustCrypto's
//! AES-256-GCM and ChaCha20-Poly1305, which share no code with the appliance's (ring):
//!
//! - it opens the appliance's sealed probes and answers them with sealed replies, so the
//!   appliance finds its path up;
//! - the data packet the appliance seals for the host's datagram is opened by RustCrypto
//!   (the tag verifies), holds exactly the host's packet routed one hop, and sealing that
//!   plaintext again with RustCrypto under the same header gives the appliance's bytes,
//!   byte for byte;
//! - a packet RustCrypto seals is opened by the appliance and delivered to the host.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use anyhow::{bail, Context, Result};
use appliance::tunnel::crypto::aead::Cipher;
use appliance::tunnel::crypto::handshake::Handshaker;
use appliance::tunnel::crypto::keys::PrivateKey;
use chacha20poly1305::ChaCha20Poly1305;
use testbed::bins::{workspace_bin, workspace_root};
use testbed::control::{request as ctl, start_appliance, wait_for};
use testbed::netns::{skip_unless_root, veth, Netns, RunId};
use testbed::rundir::RunDir;

const TUNNEL_PORT: u16 = 4800;
/// Above 255: the header's Key ID is 16 bits wide.
const OUR_KEY_ID: u16 = 0x0107;
const EPOCH: u16 = 0x4242;

/// RustCrypto's AEAD of the session's cipher.
enum Aead {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Aead {
    fn new(cipher: Cipher, key: &[u8; 32]) -> Aead {
        match cipher {
            Cipher::Aes256Gcm => Aead::Aes(Box::new(Aes256Gcm::new(key.into()))),
            Cipher::ChaCha20Poly1305 => Aead::ChaCha(Box::new(ChaCha20Poly1305::new(key.into()))),
        }
    }

    /// Seals `payload` under the nonce of `header` (lane, path id, path sequence as
    /// docs/wire-format.md builds it), with the header as associated data: ciphertext, tag.
    fn seal(&self, header: &[u8], payload: &[u8]) -> Vec<u8> {
        let nonce = nonce_of(header);
        let mut buf = payload.to_vec();
        let tag = match self {
            Aead::Aes(a) => a.encrypt_in_place_detached((&nonce).into(), header, &mut buf),
            Aead::ChaCha(c) => c.encrypt_in_place_detached((&nonce).into(), header, &mut buf),
        }
        .expect("seal");
        buf.extend_from_slice(&tag);
        buf
    }

    /// Opens what follows `header` (ciphertext, then the tag).
    fn open(&self, header: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let nonce = nonce_of(header);
        let (ct, tag) = sealed.split_at(sealed.len().checked_sub(16).context("no tag")?);
        let mut buf = ct.to_vec();
        match self {
            Aead::Aes(a) => {
                a.decrypt_in_place_detached((&nonce).into(), header, &mut buf, tag.into())
            }
            Aead::ChaCha(c) => {
                c.decrypt_in_place_detached((&nonce).into(), header, &mut buf, tag.into())
            }
        }
        .map_err(|_| anyhow::anyhow!("the tag does not verify"))?;
        Ok(buf)
    }
}

/// The nonce: lane (2), path id (1), 0, path sequence (4), 0 (4).
fn nonce_of(h: &[u8]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[0..2].copy_from_slice(&h[4..6]);
    n[2] = h[1] & 0x0f;
    n[4..8].copy_from_slice(&h[12..16]);
    n
}

/// A version 3 tunnel header on path 0.
fn header(
    kind: u8,
    flags: u8,
    key: u16,
    lane: u16,
    lane_seq: u32,
    path_seq: u32,
    sent_us: u32,
) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x30 | kind;
    h[1] = flags << 4; // path id 0
    h[2..4].copy_from_slice(&key.to_be_bytes());
    h[4..6].copy_from_slice(&lane.to_be_bytes());
    h[6..8].copy_from_slice(&EPOCH.to_be_bytes());
    h[8..12].copy_from_slice(&lane_seq.to_be_bytes());
    h[12..16].copy_from_slice(&path_seq.to_be_bytes());
    h[16..20].copy_from_slice(&sent_us.to_be_bytes());
    h
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What the peer saw of the appliance's sealed data packet.
struct Golden {
    header: Vec<u8>,
    sealed: Vec<u8>,
    plain: Vec<u8>,
    resealed: Vec<u8>,
}

/// The peer: answers the handshake and the probes; returns the first sealed data packet
/// (opened and sealed again); then seals `back` (an inner IPv4 packet) to the appliance.
fn peer(hs: Handshaker, cipher: Cipher, ready: mpsc::Sender<()>, back: Vec<u8>) -> Result<Golden> {
    let sock = UdpSocket::bind(("172.16.0.2", TUNNEL_PORT))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let t0 = Instant::now();
    let now_us = || t0.elapsed().as_micros() as u32;
    let mut session = None;
    let mut path_seq = 0u32;
    let mut received = 0u32;
    let mut buf = [0u8; 2048];
    let mut ready = Some(ready);
    let mut replies = 0;
    while t0.elapsed() < Duration::from_secs(20) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        // Every tunnel packet goes to the tunnel port, whatever port it came from.
        let from = SocketAddr::from((from.ip(), TUNNEL_PORT));
        let (h, body) = buf[..n].split_at(20);
        let kind = h[0] & 0x0f;
        match (kind, &session) {
            (3, _) => {
                anyhow::ensure!(hs.mac1_ok(h, body), "the appliance's mac1");
                path_seq += 1;
                let out = header(4, 1, 0, 0xffff, 0, path_seq, now_us());
                let answered = hs
                    .respond(body, &out, OUR_KEY_ID)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                anyhow::ensure!(answered.session.cipher == cipher, "the configured cipher");
                let s = answered.session;
                session = Some((
                    Aead::new(cipher, &s.send),
                    Aead::new(cipher, &s.recv),
                    s.peer_key_id,
                ));
                sock.send_to(&[&out[..], &answered.body].concat(), from)?;
            }
            (1, Some((send, recv, key))) if u16::from_be_bytes([h[2], h[3]]) == OUR_KEY_ID => {
                // A probe: open it, answer it sealed.
                let probe = recv.open(h, body)?;
                received += 1;
                path_seq += 1;
                let out = header(2, 1, *key, 0xffff, 0, path_seq, now_us());
                let mut reply = Vec::new();
                reply.extend_from_slice(&probe[0..4]); // its number
                reply.extend_from_slice(&h[16..20]); // its send time
                reply.extend_from_slice(&now_us().wrapping_sub(be32(h, 16)).to_be_bytes());
                reply.extend_from_slice(&0u32.to_be_bytes());
                reply.extend_from_slice(&received.to_be_bytes());
                sock.send_to(&[&out[..], &send.seal(&out, &reply)].concat(), from)?;
                replies += 1;
                if replies == 10 {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
            }
            (0, Some((send, recv, key))) if u16::from_be_bytes([h[2], h[3]]) == OUR_KEY_ID => {
                let plain = recv.open(h, body)?;
                let resealed = recv.seal(h, &plain);
                // And one the other way, sealed by RustCrypto.
                path_seq += 1;
                let out = header(0, 1, *key, 0, 0, path_seq, now_us());
                sock.send_to(&[&out[..], &send.seal(&out, &back)].concat(), from)?;
                return Ok(Golden {
                    header: h.to_vec(),
                    sealed: body.to_vec(),
                    plain,
                    resealed,
                });
            }
            _ => {}
        }
    }
    bail!("no sealed data packet from the appliance within 20 s (probes answered: {replies})")
}

#[test]
fn sealed_packets_match_an_independent_aead_byte_for_byte_both_ways() -> Result<()> {
    if skip_unless_root(&["ip"]) {
        return Ok(());
    }
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        one_cipher(cipher).with_context(|| cipher.name())?;
    }
    Ok(())
}

fn one_cipher(cipher: Cipher) -> Result<()> {
    let run = RunId::new();
    let host = Netns::create(&run.ns_name("h"))?;
    let app = Netns::create(&run.ns_name("app"))?;
    let peer_ns = Netns::create(&run.ns_name("peer"))?;
    veth(&host, "eth0", &app, "apl-lan", 1500)?;
    veth(&peer_ns, "eth0", &app, "apl-wan", 1500)?;
    for ns in [&host, &app, &peer_ns] {
        ns.link_up("lo", 65536)?;
        ns.disable_ipv6()?;
    }
    host.addr_add("eth0", Ipv4Addr::new(10, 1, 0, 2), 24)?;
    host.route_add("default", Some(Ipv4Addr::new(10, 1, 0, 1)), None)?;
    peer_ns.addr_add("eth0", Ipv4Addr::new(172, 16, 0, 2), 24)?;

    let run_dir = RunDir::new("golden")?;
    let dir = run_dir.path().to_path_buf();
    let socket = dir.join("ctl.sock");
    let key_file = dir.join("app.key");
    let gen = std::process::Command::new(workspace_bin("appliance"))
        .arg("genkey")
        .arg(&key_file)
        .status()?;
    anyhow::ensure!(gen.success(), "appliance genkey");
    let app_public = PrivateKey::read(&key_file)?.public();
    let ours = PrivateKey::generate();
    let our_public = ours.public();
    let profile = std::fs::read_to_string(workspace_root().join("hw-profiles/vm-af-packet.toml"))?;
    std::fs::write(dir.join("profile.toml"), profile)?;
    std::fs::write(
        dir.join("config.toml"),
        format!(
            r#"[[interfaces]]
port = "lan"
address = "10.1.0.1/24"
[[interfaces]]
port = "wan"
address = "172.16.0.1/24"
[control]
socket = "{}"
metrics = ""
[tunnel]
prefixes = ["10.2.0.0/16"]
probe_interval = "20ms"
encryption = "{}"
private_key = "app.key"
peer_public_key = "{our_public}"
bfd = {{ enabled = false }}
[[tunnel.paths]]
name = "a"
id = 0
interface = "wan"
remote = "172.16.0.2"
rate = "100mbit"
"#,
            socket.display(),
            cipher.name()
        ),
    )?;
    // The packet the peer seals back: 10.2.0.5:9000 -> host 10.1.0.2:40000.
    let mut back = Vec::new();
    etherparse::PacketBuilder::ipv4([10, 2, 0, 5], [10, 1, 0, 2], 64)
        .udp(9000, 40000)
        .write(&mut back, b"sealed by RustCrypto, opened by the appliance")?;
    let hs = Handshaker::new(ours, app_public, None, cipher.bit(), cipher);
    let (ready_tx, ready_rx) = mpsc::channel();
    let peer = peer_ns.spawn_in(move || peer(hs, cipher, ready_tx, back))?;
    let appliance = start_appliance(&app, &dir, &socket);
    if ready_rx.recv_timeout(Duration::from_secs(15)).is_err() {
        let t = ctl(&socket, r#"{"cmd":"show","what":"tunnel"}"#);
        let st = ctl(&socket, r#"{"cmd":"show","what":"stats"}"#);
        bail!(
            "the appliance's probes were not answered: {} {}",
            t["data"]["encryption"],
            st["data"]["drops"]
        );
    }
    wait_for("path a usable", Duration::from_secs(5), || {
        ctl(&socket, r#"{"cmd":"show","what":"paths"}"#)["data"][0]["usable"] == true
    });
    let got = host.spawn_in(|| -> Result<(Vec<u8>, SocketAddr)> {
        let s = UdpSocket::bind(("10.1.0.2", 40000))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.send_to(b"golden payload", ("10.2.0.5", 9000))?;
        let mut buf = [0u8; 1500];
        let (n, from) = s.recv_from(&mut buf)?;
        Ok((buf[..n].to_vec(), from))
    })?;
    let golden = peer
        .join()
        .map_err(|_| anyhow::anyhow!("peer panicked"))??;
    let (payload, from) = got.join().map_err(|_| anyhow::anyhow!("host panicked"))??;

    // The appliance's packet: the host's datagram routed one hop, sealed; RustCrypto
    // opened it, and sealing it again gives the same bytes.
    let (ip, rest) = etherparse::Ipv4Header::from_slice(&golden.plain)?;
    assert_eq!(ip.source, [10, 1, 0, 2]);
    assert_eq!(ip.destination, [10, 2, 0, 5]);
    assert_eq!(ip.time_to_live, 63, "routed one hop");
    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
    let (udp, data) = etherparse::UdpHeader::from_slice(rest)?;
    assert_eq!((udp.source_port, udp.destination_port), (40000, 9000));
    assert_eq!(data, b"golden payload");
    assert_eq!(golden.header[0], 0x30, "version 3 data");
    assert_eq!(
        u16::from_be_bytes([golden.header[2], golden.header[3]]),
        OUR_KEY_ID,
        "under the key id we gave"
    );
    assert_eq!(
        golden.sealed.len(),
        golden.plain.len() + 16,
        "a 16-byte tag"
    );
    assert_eq!(golden.resealed, golden.sealed, "byte for byte");
    // The other way: RustCrypto's packet, opened by the appliance, reached the host.
    assert_eq!(payload, b"sealed by RustCrypto, opened by the appliance");
    assert_eq!(from, SocketAddr::from(([10, 2, 0, 5], 9000)));
    let tunnel = ctl(&socket, r#"{"cmd":"show","what":"tunnel"}"#);
    assert_eq!(tunnel["data"]["encryption"]["cipher"], cipher.name());
    eprintln!(
        "{cipher}: {} bytes sealed by the appliance = RustCrypto's; one opened back",
        golden.sealed.len()
    );
    let _ = appliance.stop();
    Ok(())
}
