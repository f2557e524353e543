//! BFD on the tunnel's paths, against an independent peer and against hostile input:
//! - interop: the appliance's session to FRR's bfdd (running alone in a namespace) comes
//!   up, both sides agree on discriminators and timers, it goes down within the detection
//!   time when bfdd's packets are blackholed, and comes back; a timer change while Up
//!   (`appliancectl bfd set`, then a config reload) goes through a Poll Sequence bfdd
//!   answers, with no flap, and the packets then come at the new interval;
//! - a flood of packets that fail the RFC 5880 §6.8.6 checks, spoofed from the peer's
//!   address at 100k packets/s, is discarded and counted by reason while the real session
//!   between the two appliances stays Up.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use testbed::bins::workspace_bin;
use testbed::netns::{is_root, skip_unless_root, veth, Netns, NsProcess, RunId};
use testbed::probe::sleep_until;
use testbed::rundir::RunDir;
use testbed::scenario::systems::appliance_tunnel::{self, Site, TunnelSpec};
use testbed::tunnel_bed::{bed_with, RATES};
use testbed::wanem::port::Port;

const BFDD: &str = "/usr/lib/frr/bfdd";
const VTYSH: &str = "/usr/bin/vtysh";

const APP_WAN: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 1);
const PEER_WAN: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 2);

/// FRR's bfdd alone (no zebra) in a namespace, with its vty socket in `dir`.
struct Bfdd {
    ns_name: String,
    dir: PathBuf,
    process: Option<NsProcess>,
}

impl Bfdd {
    fn start(ns: &Netns, dir: &Path) -> Result<Bfdd> {
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("bfdd.conf");
        std::fs::write(
            &conf,
            format!(
                "bfd\n peer {APP_WAN} local-address {PEER_WAN}\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n !\n!\n"
            ),
        )?;
        let chown = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(dir)
            .status()?;
        ensure!(chown.success(), "chown frr {}", dir.display());
        let d = dir.display().to_string();
        let mut cmd = ns.command(BFDD);
        cmd.args(["-f", &format!("{d}/bfdd.conf")])
            .args(["-i", &format!("{d}/bfdd.pid")])
            .args(["--vty_socket", &d])
            .args(["--bfdctl", &format!("{d}/bfdd.sock")])
            .args(["-z", &format!("{d}/zserv.api")])
            .args(["-P", "0", "-u", "frr", "-g", "frr"]);
        let process = NsProcess::spawn(cmd)?;
        Ok(Bfdd {
            ns_name: ns.name().to_string(),
            dir: dir.to_path_buf(),
            process: Some(process),
        })
    }

    /// `show bfd peers json`: the one peer.
    fn peer(&self) -> Result<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns_name, VTYSH, "--vty_socket"])
            .arg(&self.dir)
            .args(["-c", "show bfd peers json"])
            .output()?;
        ensure!(
            out.status.success(),
            "vtysh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("vtysh said {}", String::from_utf8_lossy(&out.stdout)))?;
        Ok(v.as_array()
            .and_then(|a| a.first().cloned())
            .unwrap_or(Value::Null))
    }
}

impl Drop for Bfdd {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.stop();
        }
    }
}

/// Path `a` of the appliance as `show paths` gives it.
fn path_a(socket: &Path) -> Result<Value> {
    let r = appliance_tunnel::request(socket, r#"{"cmd":"show","what":"paths"}"#)?;
    Ok(r["data"][0].clone())
}

fn wait_until(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if f()? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The appliance and bfdd agree on the session: each one's discriminator is the other's
/// remote one, and each reports the other's timers.
fn agree(ours: &Value, theirs: &Value) {
    let b = &ours["bfd"];
    assert_eq!(
        b["local_discriminator"], theirs["remote-id"],
        "{b} / {theirs}"
    );
    assert_eq!(b["remote_discriminator"], theirs["id"], "{b} / {theirs}");
    assert_eq!(theirs["status"], "up", "{theirs}");
    assert_eq!(b["local_state"], "Up", "{b}");
    assert_eq!(b["remote_state"], "Up", "{b}");
    // bfdd shows intervals in ms, the appliance in µs.
    let ms = |v: &Value| v.as_u64().unwrap_or(0) * 1000;
    assert_eq!(
        b["remote_desired_min_tx_us"].as_u64(),
        Some(ms(&theirs["transmit-interval"]))
    );
    assert_eq!(
        b["remote_required_min_rx_us"].as_u64(),
        Some(ms(&theirs["receive-interval"]))
    );
    assert_eq!(b["remote_detect_mult"], theirs["detect-multiplier"]);
    assert_eq!(
        b["desired_min_tx_us"].as_u64(),
        Some(ms(&theirs["remote-transmit-interval"]))
    );
    assert_eq!(
        b["required_min_rx_us"].as_u64(),
        Some(ms(&theirs["remote-receive-interval"]))
    );
    assert_eq!(b["detect_mult"], theirs["remote-detect-multiplier"]);
}

#[test]
fn a_session_with_frr_bfdd_comes_up_fails_within_the_detection_time_and_recovers() -> Result<()> {
    if skip_unless_root(&["ip", "ethtool", "nft"]) {
        return Ok(());
    }
    // `make test` installs FRR: without it this test would prove nothing, so it fails.
    ensure!(
        Path::new(BFDD).exists() && Path::new(VTYSH).exists(),
        "FRR is not installed ({BFDD}); `make deps` installs it"
    );
    let run = RunId::new();
    let app = Netns::create(&run.ns_name("app"))?;
    let peer = Netns::create(&run.ns_name("frr"))?;
    let host = Netns::create(&run.ns_name("host"))?;
    veth(&host, "eth0", &app, "lan", 1500)?;
    veth(&peer, "eth0", &app, "wan", 1500)?;
    for ns in [&app, &peer, &host] {
        ns.link_up("lo", 65536)?;
        ns.disable_ipv6()?;
    }
    // bfdd's host keeps its checksum offload: the appliance completes the partial
    // checksums af_packet hands it.
    peer.addr_add("eth0", PEER_WAN, 24)?;
    host.addr_add("eth0", Ipv4Addr::new(10, 1, 0, 2), 16)?;

    let dir = RunDir::new("bfd-frr")?;
    let socket = dir.path().join("ctl.sock");
    // The path's far end is FRR, not an appliance: nothing answers a tunnel handshake,
    // and BFD (what is under test) is plain RFC 5880 either way.
    std::fs::write(
        dir.path().join("profile.toml"),
        appliance_tunnel::profile("lan", &["wan".to_string()], [0, 1], 1)?,
    )?;
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[[interfaces]]\nport = \"lan\"\naddress = \"10.1.0.1/16\"\n\n\
             [[interfaces]]\nport = \"wan0\"\naddress = \"{APP_WAN}/24\"\n\n\
             [control]\nsocket = {:?}\nmetrics = \"\"\n\n\
             [tunnel]\nprefixes = [\"10.2.0.0/16\"]\n\
             encryption = \"none\"\n\
             bfd = {{ desired_min_tx = \"100ms\", required_min_rx = \"100ms\", detect_mult = 3 }}\n\n\
             [[tunnel.paths]]\nname = \"a\"\nid = 0\ninterface = \"wan0\"\nremote = \"{PEER_WAN}\"\nrate = \"100mbit\"\n",
            socket.display().to_string()
        ),
    )?;
    let check = Command::new(workspace_bin("appliance"))
        .arg("--check")
        .arg("--profile")
        .arg(dir.path().join("profile.toml"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .output()?;
    ensure!(
        check.status.success(),
        "config rejected: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let bfdd = Bfdd::start(&peer, &dir.path().join("frr"))?;
    let mut cmd = app.command(workspace_bin("appliance"));
    cmd.arg("--profile")
        .arg(dir.path().join("profile.toml"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("--final-stats")
        .arg(dir.path().join("final.json"));
    let mut appliance = NsProcess::spawn(cmd)?;
    wait_until("the control socket", Duration::from_secs(30), || {
        ensure!(appliance.is_running(), "the appliance exited");
        Ok(std::os::unix::net::UnixStream::connect(&socket).is_ok())
    })?;

    // Up on both sides, and they agree.
    let took = wait_until(
        "the session Up on both sides",
        Duration::from_secs(10),
        || Ok(path_a(&socket)?["bfd"]["local_state"] == "Up" && bfdd.peer()?["status"] == "up"),
    )?;
    eprintln!("session Up after {took:?}");
    std::thread::sleep(Duration::from_millis(300));
    let (ours, theirs) = (path_a(&socket)?, bfdd.peer()?);
    eprintln!("appliance: {}\nbfdd: {theirs}", ours["bfd"]);
    agree(&ours, &theirs);

    // bfdd's packets dropped on their way out: the appliance declares the session down
    // within its detection time (3 × 100 ms) after the last one, and tells bfdd.
    peer.exec(&["nft", "add", "table", "inet", "bfdtest"])?;
    peer.exec(&[
        "nft",
        "add",
        "chain",
        "inet",
        "bfdtest",
        "out",
        "{ type filter hook output priority 0 ; }",
    ])?;
    let cut = Instant::now();
    peer.exec(&[
        "nft", "add", "rule", "inet", "bfdtest", "out", "udp", "dport", "3784", "drop",
    ])?;
    let down = wait_until(
        "the appliance's session Down",
        Duration::from_secs(3),
        || Ok(path_a(&socket)?["bfd"]["local_state"] != "Up"),
    )?;
    let ours = path_a(&socket)?;
    eprintln!("down {:?} after the cut: {}", cut.elapsed(), ours["bfd"]);
    assert_eq!(ours["bfd"]["local_diag"], "control detection time expired");
    // Detection time plus one packet interval (the last packet may have left just before
    // the cut) plus the time it takes to read the state here.
    assert!(down <= Duration::from_millis(500), "down after {down:?}");
    wait_until("bfdd's session down", Duration::from_secs(2), || {
        Ok(bfdd.peer()?["status"] == "down")
    })?;
    eprintln!("bfdd: {}", bfdd.peer()?);
    assert!(
        ours["bfd"]["flaps"].as_u64() >= Some(1),
        "a flap counted: {}",
        ours["bfd"]
    );

    // Restored: both back Up (bfdd sends once a second while down), agreeing again.
    peer.exec(&["nft", "delete", "table", "inet", "bfdtest"])?;
    let back = wait_until("the session back Up", Duration::from_secs(5), || {
        Ok(path_a(&socket)?["bfd"]["local_state"] == "Up" && bfdd.peer()?["status"] == "up")
    })?;
    eprintln!("back Up {back:?} after the restore");
    std::thread::sleep(Duration::from_millis(300));
    agree(&path_a(&socket)?, &bfdd.peer()?);

    // The timers changed while Up, as an operator would (`appliancectl bfd set`): desired
    // min TX 100 ms -> 300 ms, detect mult 3 -> 5. RFC 5880 §6.8.3: a Poll Sequence, which
    // bfdd answers with a Final; neither side leaves Up; bfdd shows the new values; our
    // packets then come at the new interval.
    let flaps = path_a(&socket)?["bfd"]["flaps"].clone();
    let out = Command::new(workspace_bin("appliancectl"))
        .arg("--socket")
        .arg(&socket)
        .args(["bfd", "set", "a", "--tx", "300ms", "--mult", "5"])
        .output()?;
    ensure!(
        out.status.success(),
        "bfd set: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    let polled = wait_until(
        "bfdd showing the new timers and the Poll finished",
        Duration::from_secs(5),
        || {
            let theirs = bfdd.peer()?;
            Ok(theirs["remote-transmit-interval"] == 300
                && theirs["remote-detect-multiplier"] == 5
                && path_a(&socket)?["bfd"]["poll_in_progress"] == false)
        },
    )?;
    eprintln!("new timers agreed {polled:?} after the change");
    let ours = path_a(&socket)?;
    agree(&ours, &bfdd.peer()?);
    assert_eq!(ours["bfd"]["flaps"], flaps, "no flap: {}", ours["bfd"]);
    assert_eq!(ours["bfd"]["tx_interval_us"], 300_000, "{}", ours["bfd"]);
    let tx = |v: &Value| v["bfd"]["tx_packets"].as_u64().unwrap_or(0);
    let (start, t0) = (tx(&ours), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let ours = path_a(&socket)?;
    let per_sec = (tx(&ours) - start) as f64 / t0.elapsed().as_secs_f64();
    // 300 ms less up to 25 % jitter (RFC 5880 §6.8.7): 3.3 to 4.4 packets a second.
    assert!(
        (3.0..=4.6).contains(&per_sec),
        "{per_sec:.2} packets/s at a 300 ms interval"
    );
    // The running config shows the timers as they are now.
    let shown = appliance_tunnel::request(&socket, r#"{"cmd":"show","what":"config"}"#)?;
    let text = shown["data"]["config"].as_str().unwrap_or_default();
    ensure!(
        text.contains("desired_min_tx = \"300ms\"") && text.contains("detect_mult = 5"),
        "running config: {text}"
    );
    // A bad value is refused and changes nothing.
    let refused = appliance_tunnel::request(
        &socket,
        r#"{"cmd":"bfd_set","path":"a","desired_min_tx":"90s"}"#,
    )?;
    ensure!(
        refused["ok"] == false
            && refused["error"]
                .as_str()
                .is_some_and(|e| e.contains("desired_min_tx")),
        "{refused}"
    );
    assert_eq!(path_a(&socket)?["bfd"]["desired_min_tx_us"], 300_000);
    ensure!(bfdd.peer()?["status"] == "up", "bfdd stayed up");

    // The same by a reload of the config file: desired min TX 200 ms.
    let config = dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        text.replace("desired_min_tx = \"100ms\"", "desired_min_tx = \"200ms\""),
    )?;
    let r = appliance_tunnel::request(&socket, r#"{"cmd":"reload"}"#)?;
    ensure!(
        r["data"]["changes"][0]
            .as_str()
            .is_some_and(|c| c.starts_with("path a BFD timers: desired min TX 200ms")),
        "{r}"
    );
    wait_until("bfdd showing 200 ms", Duration::from_secs(5), || {
        Ok(bfdd.peer()?["remote-transmit-interval"] == 200
            && path_a(&socket)?["bfd"]["poll_in_progress"] == false)
    })?;
    let ours = path_a(&socket)?;
    agree(&ours, &bfdd.peer()?);
    assert_eq!(ours["bfd"]["flaps"], flaps, "no flap: {}", ours["bfd"]);
    ensure!(bfdd.peer()?["status"] == "up", "bfdd stayed up");

    let discards = appliance_tunnel::request(&socket, r#"{"cmd":"show","what":"tunnel"}"#)?["data"]
        ["bfd_discards"]
        .clone();
    let total: u64 = discards
        .as_object()
        .map(|o| o.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    assert_eq!(total, 0, "bfdd's packets all accepted: {discards}");

    drop(bfdd);
    appliance.signal(nix::sys::signal::Signal::SIGINT)?;
    let out = appliance.wait_timeout(Duration::from_secs(10))?;
    ensure!(out.status.success(), "appliance exit: {}", out.stderr);
    let finals: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("final.json"))?)?;
    assert_eq!(
        finals["mempool_in_use_at_exit"], finals["mempool"]["baseline_in_use"],
        "no mbuf leaked"
    );
    Ok(())
}

/// A BFD control packet (24 bytes) with these fields.
struct Bfd {
    version: u8,
    state: u8,
    flags: u8,
    mult: u8,
    length: u8,
    my: u32,
    your: u32,
}

impl Bfd {
    fn valid(my: u32, your: u32) -> Bfd {
        Bfd {
            version: 1,
            state: 3,
            flags: 0,
            mult: 3,
            length: 24,
            my,
            your,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 24];
        b[0] = self.version << 5;
        b[1] = (self.state << 6) | self.flags;
        b[2] = self.mult;
        b[3] = self.length;
        b[4..8].copy_from_slice(&self.my.to_be_bytes());
        b[8..12].copy_from_slice(&self.your.to_be_bytes());
        b[12..16].copy_from_slice(&100_000u32.to_be_bytes());
        b[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        b
    }
}

fn mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()?;
    v.try_into().map_err(|_| anyhow::anyhow!("bad MAC {s}"))
}

/// An Ethernet/IPv4/UDP frame carrying `payload` from `src` to `dst` (port 3784).
fn frame(eth: ([u8; 6], [u8; 6]), ip: (Ipv4Addr, Ipv4Addr), ttl: u8, payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(eth.0, eth.1)
        .ipv4(ip.0.octets(), ip.1.octets(), ttl)
        .udp(49152, 3784);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("vec write");
    out
}

#[test]
fn a_flood_of_bad_bfd_packets_is_counted_and_leaves_the_session_up() -> Result<()> {
    if skip_unless_root(&["ip", "ethtool"]) || !is_root() {
        return Ok(());
    }
    let mut spec = TunnelSpec::new("wlb", &RATES);
    spec.extra =
        "bfd = { desired_min_tx = \"100ms\", required_min_rx = \"100ms\", detect_mult = 3 }\n"
            .into();
    let b = bed_with(spec, 0.0)?;
    b.wait_bfd_up(Duration::from_secs(10))?;
    let link = &b.sites.links[0];
    let app_a_mac = mac(&b.sites.app_a.mac(&link.app_a_iface)?)?;
    let app_b_mac = mac(&b.sites.app_b.mac(&link.app_b_iface)?)?;
    let before = b.path(Site::A, "a");
    let ours = before["bfd"]["local_discriminator"]
        .as_u64()
        .context("discr")? as u32;
    let peers = before["bfd"]["remote_discriminator"]
        .as_u64()
        .context("discr")? as u32;
    let (src, dst) = (link.b_addr, link.a_addr);
    let eth = (app_b_mac, app_a_mac);
    // Each spoofed from the peer's address and port, each failing one check.
    let mut kinds: Vec<(&str, Vec<u8>)> = Vec::new();
    let good = Bfd::valid(peers, ours);
    kinds.push((
        "bad_version",
        frame(
            eth,
            (src, dst),
            255,
            &Bfd {
                version: 2,
                ..Bfd::valid(peers, ours)
            }
            .bytes(),
        ),
    ));
    kinds.push(("bad_ttl", frame(eth, (src, dst), 254, &good.bytes())));
    kinds.push((
        "zero_detect_mult",
        frame(
            eth,
            (src, dst),
            255,
            &Bfd {
                mult: 0,
                ..Bfd::valid(peers, ours)
            }
            .bytes(),
        ),
    ));
    kinds.push((
        "multipoint",
        frame(
            eth,
            (src, dst),
            255,
            &Bfd {
                flags: 0x01,
                ..Bfd::valid(peers, ours)
            }
            .bytes(),
        ),
    ));
    kinds.push((
        "zero_my_discriminator",
        frame(eth, (src, dst), 255, &Bfd::valid(0, ours).bytes()),
    ));
    kinds.push((
        "unknown_discriminator",
        frame(
            eth,
            (src, dst),
            255,
            &Bfd::valid(peers, ours ^ 0x5a5a_5a5a).bytes(),
        ),
    ));
    // A bit with a simple-password section (type 1, length 4, key 1, "x"): 28 bytes.
    let mut auth = Bfd {
        flags: 0x04,
        length: 28,
        ..Bfd::valid(peers, ours)
    }
    .bytes();
    auth.extend_from_slice(&[1, 4, 1, b'x']);
    kinds.push(("auth_unsupported", frame(eth, (src, dst), 255, &auth)));
    kinds.push((
        "your_discriminator_zero_not_down",
        frame(eth, (src, dst), 255, &Bfd::valid(peers, 0).bytes()),
    ));
    kinds.push((
        "bad_length",
        frame(
            eth,
            (src, dst),
            255,
            &Bfd {
                length: 40,
                ..Bfd::valid(peers, ours)
            }
            .bytes(),
        ),
    ));
    kinds.push((
        "truncated",
        frame(eth, (src, dst), 255, &good.bytes()[..20]),
    ));
    let frames: Vec<Vec<u8>> = kinds.iter().map(|(_, f)| f.clone()).collect();

    // 100k packets/s for 3 s, into appliance A's port on link a (from the emulator's side).
    let rate = 100_000u64;
    let total = rate * 3;
    let iface = link.emu_a_iface.clone();
    let sent = b.sites.emu.run_in(move || -> Result<u64> {
        let port = Port::open(&iface)?;
        let start = Instant::now();
        let mut sent = 0u64;
        // Batches of 100, one per millisecond.
        for batch in 0..total / 100 {
            sleep_until(start + Duration::from_micros(batch * 1000));
            for i in 0..100 {
                let f = &frames[((batch * 100 + i) % frames.len() as u64) as usize];
                if port.send(f).is_ok() {
                    sent += 1;
                }
            }
        }
        Ok(sent)
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let after = b.path(Site::A, "a");
    let tunnel = b.show(Site::A, "tunnel");
    let discards = &tunnel["bfd_discards"];
    eprintln!("sent {sent} bad packets; discards {discards}");
    eprintln!("BFD after: {}", after["bfd"]);
    let counted: u64 = discards
        .as_object()
        .map(|o| o.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    for (name, _) in &kinds {
        assert!(
            discards[name].as_u64() > Some(0),
            "{name} counted: {discards}"
        );
    }
    // af_packet has no drop counter of its own; most of the flood must reach the checks.
    assert!(counted * 2 >= sent, "{counted} of {sent} counted");
    assert!(counted <= sent, "{counted} counted for {sent} sent");
    assert_eq!(after["bfd"]["local_state"], "Up", "{}", after["bfd"]);
    assert_eq!(
        after["bfd"]["flaps"], before["bfd"]["flaps"],
        "the session never left Up"
    );
    assert_eq!(
        after["state_changes"], before["state_changes"],
        "the path never changed state"
    );
    b.finish()?;
    Ok(())
}
