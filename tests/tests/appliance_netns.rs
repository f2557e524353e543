//! The appliance on the VM profile (`net_af_packet` on veths) between two
//! Linux hosts in network namespaces: ping, routing with ARP resolution,
//! iperf3 TCP, the control socket and /metrics, a clean SIGINT exit.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use testbed::bins::{workspace_bin, workspace_root};
use testbed::control::{request as ctl, start_appliance, wait_for};
use testbed::netns::{skip_unless_root, veth, Netns, NsProcess, RunId};
use testbed::wanem::port::Port;

/// Port `name`'s offload counters from `show ports`.
fn offloads(socket: &std::path::Path, name: &str) -> Value {
    let ports = ctl(socket, r#"{"cmd":"show","what":"ports"}"#);
    ports["data"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .map(|p| p["offload"].clone())
        .unwrap_or_default()
}

/// Host A sends with `UDP_SEGMENT` (one 8,500-byte write is 9 datagrams, cut by the kernel
/// or, here, by the appliance): host B receives every datagram whole, in order, with the
/// sizes the sender asked for.
fn udp_segment_datagrams_cross(host_a: &Netns, host_b: &Netns, socket: &std::path::Path) {
    const WRITES: usize = 20;
    const GSO_SIZE: usize = 1000;
    const WRITE_LEN: usize = 8 * GSO_SIZE + 500;
    let before = offloads(socket, "lan")["gso_frames"].as_u64().unwrap_or(0);
    let receiver = host_b
        .spawn_in(|| {
            let rx = std::net::UdpSocket::bind("10.10.2.2:5400")?;
            rx.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while got.len() < WRITES * 9 {
                match rx.recv(&mut buf) {
                    Ok(n) => got.push(buf[..n].to_vec()),
                    Err(_) => break,
                }
            }
            Ok(got)
        })
        .expect("receiver");
    std::thread::sleep(Duration::from_millis(200));
    host_a
        .run_in(|| {
            use nix::sys::socket::{setsockopt, sockopt::UdpGsoSegment};
            let tx = std::net::UdpSocket::bind("10.10.1.10:0")?;
            tx.connect("10.10.2.2:5400")?;
            setsockopt(&tx, UdpGsoSegment, &(GSO_SIZE as i32))?;
            for w in 0..WRITES {
                let payload: Vec<u8> = (0..WRITE_LEN)
                    .map(|i| (i / GSO_SIZE + w * 16) as u8)
                    .collect();
                tx.send(&payload)?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })
        .expect("UDP_SEGMENT sender");
    let got = receiver.join().expect("receiver thread").expect("receive");
    assert_eq!(got.len(), WRITES * 9, "every datagram arrived");
    for (k, d) in got.iter().enumerate() {
        let (w, i) = (k / 9, k % 9);
        let len = if i == 8 { 500 } else { GSO_SIZE };
        assert_eq!(d.len(), len, "datagram {k}: the size the sender cut");
        assert!(
            d.iter().all(|b| *b == (i + w * 16) as u8),
            "datagram {k}: its own bytes, in order"
        );
    }
    let after = offloads(socket, "lan")["gso_frames"].as_u64().unwrap_or(0);
    assert!(
        after >= before + WRITES as u64,
        "the writes reached the appliance as UDP GSO super-frames: {before} -> {after}"
    );
}

/// A UDP checksum that is complete but wrong (not one the kernel left partial) is routed
/// unchanged, as a router does: host B's kernel counts every one as a checksum error.
fn wrong_checksums_are_forwarded_unchanged(host_a: &Netns, host_b: &Netns, app: &Netns) {
    const FRAMES: u64 = 25;
    let udp_csum_errors = || {
        let out = host_b
            .exec(&["nstat", "-az", "UdpInCsumErrors"])
            .expect("nstat");
        out.lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some("UdpInCsumErrors")).then(|| f.next()?.parse::<u64>().ok())?
            })
            .unwrap_or(0)
    };
    let before = udp_csum_errors();
    let mac = |ns: &Netns, dev: &str| -> [u8; 6] {
        let text = ns.mac(dev).expect("MAC");
        let mut mac = [0u8; 6];
        for (b, h) in mac.iter_mut().zip(text.split(':')) {
            *b = u8::from_str_radix(h, 16).expect("hex MAC");
        }
        mac
    };
    let (src, dst) = (mac(host_a, "eth0"), mac(app, "apl-lan"));
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 10, 1, 10], [10, 10, 2, 2], 64)
        .udp(4000, 5401)
        .write(&mut frame, b"a datagram whose checksum is wrong")
        .expect("build");
    // The UDP checksum field: Ethernet 14 + IPv4 20 + 6.
    frame[40] ^= 0x5a;
    host_a
        .run_in(move || {
            let port = Port::open("eth0")?;
            for _ in 0..FRAMES {
                port.send(&frame)?;
            }
            Ok(())
        })
        .expect("send frames with a wrong checksum");
    wait_for(
        "host B counts every wrong checksum",
        Duration::from_secs(3),
        || udp_csum_errors() >= before + FRAMES,
    );
    assert_eq!(udp_csum_errors(), before + FRAMES, "each one exactly once");
}

#[test]
fn hosts_ping_route_and_iperf_through_the_appliance() {
    if skip_unless_root(&["ip", "ping", "iperf3", "ethtool"]) {
        return;
    }
    let run = RunId::new();
    let host_a = Netns::create(&run.ns_name("a")).expect("netns a");
    let host_b = Netns::create(&run.ns_name("b")).expect("netns b");
    let app = Netns::create(&run.ns_name("app")).expect("netns app");
    veth(&host_a, "eth0", &app, "apl-lan", 1500).expect("veth lan");
    veth(&host_b, "eth0", &app, "apl-wan", 1500).expect("veth wan");
    for ns in [&host_a, &host_b, &app] {
        ns.link_up("lo", 65536).expect("lo up");
        ns.disable_ipv6().expect("no ipv6 noise");
    }
    host_a
        .addr_add("eth0", Ipv4Addr::new(10, 10, 1, 10), 24)
        .expect("addr a");
    host_a
        .route_add("default", Some(Ipv4Addr::new(10, 10, 1, 1)), None)
        .expect("route a");
    host_b
        .addr_add("eth0", Ipv4Addr::new(10, 10, 2, 2), 24)
        .expect("addr b");
    host_b
        .route_add("default", Some(Ipv4Addr::new(10, 10, 2, 1)), None)
        .expect("route b");

    let dir = tempdir(&run);
    let socket = dir.join("ctl.sock");
    let profile = std::fs::read_to_string(workspace_root().join("hw-profiles/vm-af-packet.toml"))
        .expect("profile");
    std::fs::write(dir.join("profile.toml"), profile).expect("write profile");
    let config = std::fs::read_to_string(workspace_root().join("configs/demo.toml"))
        .expect("config")
        .replace("/run/appliance/demo.sock", &socket.display().to_string());
    std::fs::write(dir.join("config.toml"), config).expect("write config");
    let stats_file = dir.join("final.json");
    let appliance = start_appliance(&app, &dir, &socket);

    // The appliance answers ARP and ping for its own address.
    host_a
        .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.10.1.1"])
        .expect("host A pings the appliance");
    // Host A reaches host B routed through it (the appliance resolves B by ARP).
    let out = host_a
        .exec(&["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.10.2.2"])
        .expect("host A pings host B");
    assert!(
        out.contains("ttl=63"),
        "one routed hop decrements the TTL: {out}"
    );

    // iperf3 TCP through it.
    let server = NsProcess::spawn({
        let mut c = host_b.command("iperf3");
        c.args(["-s", "-1", "-B", "10.10.2.2", "-p", "5299"]);
        c
    })
    .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));
    let client = NsProcess::spawn({
        let mut c = host_a.command("iperf3");
        c.args(["-c", "10.10.2.2", "-p", "5299", "-t", "3", "-J"]);
        c
    })
    .expect("iperf3 client");
    // Rates, live: lan's receive rate shows the stream while it runs.
    let port_rate = |name: &str, dir: &str, unit: &str| {
        let ports = ctl(&socket, r#"{"cmd":"show","what":"ports"}"#);
        ports["data"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .and_then(|p| p[dir][unit].as_u64())
            .unwrap_or(0)
    };
    wait_for(
        "lan's receive rate above 10 Mbit/s while iperf3 runs",
        Duration::from_secs(4),
        || port_rate("lan", "rx_rate", "bps") > 10_000_000,
    );
    let out = client
        .wait_timeout(Duration::from_secs(20))
        .expect("iperf3 client finishes");
    assert!(out.status.success(), "iperf3 client: {}", out.stderr);
    let json = out.stdout;
    let _ = server.wait_timeout(Duration::from_secs(10));
    let v: Value = serde_json::from_str(&json).expect("iperf3 JSON");
    let received = v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!("iperf3 through the appliance: {:.1} Mbit/s", bps / 1e6);
    assert!(
        received > 1_000_000,
        "TCP moved data through the appliance: {received} bytes"
    );
    // The hosts kept Linux's default offloads: host A's TCP left as TSO super-frames with
    // partial checksums, which the appliance cut and completed; host B took every segment.
    let lan = offloads(&socket, "lan");
    assert!(
        lan["gso_frames"].as_u64() > Some(0)
            && lan["gso_segments"].as_u64() > lan["gso_frames"].as_u64(),
        "host A's TSO super-frames were segmented: {lan}"
    );
    let wan = offloads(&socket, "wan");
    assert!(
        wan["csum_completed"].as_u64() > Some(0),
        "host B's ACKs came with partial checksums, completed: {wan}"
    );
    for (name, o) in [("lan", &lan), ("wan", &wan)] {
        for reason in ["drop_gso_unsupported", "drop_bad_offload", "drop_too_long"] {
            assert_eq!(o[reason], 0, "{name}: nothing refused: {o}");
        }
    }
    let csum_errors = host_b
        .exec(&["nstat", "-az", "TcpInCsumErrors"])
        .expect("nstat");
    assert!(
        csum_errors
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["TcpInCsumErrors", "0"])),
        "host B saw no bad TCP checksum: {csum_errors}"
    );

    udp_segment_datagrams_cross(&host_a, &host_b, &socket);
    wrong_checksums_are_forwarded_unchanged(&host_a, &host_b, &app);

    // Control socket: tables, a bad request, a route change.
    let neighbors = ctl(&socket, r#"{"cmd":"show","what":"neighbors"}"#);
    let list = neighbors["data"]["neighbors"]
        .as_array()
        .expect("neighbors")
        .clone();
    assert!(
        list.iter().any(|n| n["address"] == "10.10.2.2"),
        "B was resolved: {neighbors}"
    );
    let bad = ctl(&socket, "this is not json");
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"].as_str().unwrap_or("").contains("bad request"),
        "{bad}"
    );
    let added = ctl(
        &socket,
        r#"{"cmd":"route_add","prefix":"10.30.0.0/16","via":"10.10.2.2"}"#,
    );
    assert_eq!(added["ok"], true, "{added}");
    let refused = ctl(
        &socket,
        r#"{"cmd":"route_add","prefix":"10.31.0.0/16","via":"192.0.2.1"}"#,
    );
    assert_eq!(
        refused["ok"], false,
        "next hop off-subnet is refused: {refused}"
    );
    hostile_requests_get_error_replies(&socket);
    // The log level, read and changed live; a bad one refused.
    let level = ctl(&socket, r#"{"cmd":"log_level"}"#);
    assert_eq!(level["data"]["level"], "info", "{level}");
    let level = ctl(&socket, r#"{"cmd":"log_level","level":"debug"}"#);
    assert_eq!(level["data"]["level"], "debug", "{level}");
    let bad = ctl(&socket, r#"{"cmd":"log_level","level":"loud"}"#);
    assert!(
        bad["ok"] == false
            && bad["error"]
                .as_str()
                .is_some_and(|e| e.contains("one of error")),
        "{bad}"
    );
    ctl(&socket, r#"{"cmd":"log_level","level":"info"}"#);
    reload_applies_what_changed_and_refuses_the_rest(&host_a, &dir, &socket);
    host_a
        .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.10.2.2"])
        .expect("still forwarding after bad requests");

    // appliancectl prints a human table.
    let out = std::process::Command::new(workspace_bin("appliancectl"))
        .arg("--socket")
        .arg(&socket)
        .args(["show", "stats"])
        .output()
        .expect("appliancectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("drop reason") && text.contains("mempool"),
        "{text}"
    );

    // Prometheus endpoint (loopback of the appliance's namespace).
    let metrics = app
        .run_in(|| {
            let mut s = TcpStream::connect("127.0.0.1:9469")?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })
        .expect("scrape /metrics");
    assert!(
        metrics.contains("appliance_worker_rx_packets_total{worker=\"0\",port=\"lan\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("appliance_drops_total{worker=\"0\",reason=\"ip_bad_checksum\"} 0"));
    assert!(metrics.contains("appliance_mempool_in_use"));

    // Rates fall to nothing once traffic stops (the hosts' kernels may still send the odd
    // IPv6 or ARP packet, which the rate rightly shows).
    wait_for(
        "every port's rate near zero",
        Duration::from_secs(5),
        || {
            ["lan", "wan"]
                .iter()
                .all(|p| port_rate(p, "rx_rate", "pps") < 20 && port_rate(p, "tx_rate", "pps") < 20)
        },
    );

    // An operator's session and a scraper still connected when the appliance stops: they
    // must not keep the EAL from being cleaned up (its runtime directory would stay).
    let held_control = std::os::unix::net::UnixStream::connect(&socket).expect("control");
    let held_metrics = app
        .run_in(|| Ok(TcpStream::connect("127.0.0.1:9469")?))
        .expect("metrics connection");
    let runtime_dir = std::path::Path::new("/var/run/dpdk")
        .join(appliance::config::instance_name(&dir.join("config.toml")));
    assert!(
        runtime_dir.exists(),
        "EAL runtime dir {}",
        runtime_dir.display()
    );
    appliance.signal(Signal::SIGINT).expect("SIGINT");
    let out = appliance
        .wait_timeout(Duration::from_secs(20))
        .expect("appliance exits on SIGINT");
    assert!(out.status.success(), "clean exit: {}", out.stderr);
    // The control socket and /metrics were used and are still open: the mempools are freed
    // before rte_eal_cleanup all the same.
    assert!(
        out.stderr.contains("mempools freed, EAL cleaned up"),
        "teardown order: {}",
        out.stderr
    );
    // Every line is one event of key=value fields; the level change was logged.
    assert!(
        out.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(
                |l| l.starts_with("ts=") && l.contains(" level=") && l.contains(" msg=\"")
                    || !l.starts_with("ts=") && !l.contains("level=")
            ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(r#"msg="log level INFO -> DEBUG (control request)""#),
        "{}",
        out.stderr
    );
    assert!(
        !runtime_dir.exists(),
        "EAL runtime dir left behind: {}",
        runtime_dir.display()
    );
    drop((held_control, held_metrics));
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_file).expect("final stats"))
            .expect("json");
    assert_eq!(
        stats["mempool_in_use_at_exit"], stats["mempool"]["baseline_in_use"],
        "no mbuf leaked: {stats}"
    );
    assert!(
        stats["tx_packets"][1].as_u64().unwrap_or(0) > 1000,
        "{stats}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The prefixes of the running routing table.
fn route_prefixes(socket: &std::path::Path) -> Vec<String> {
    let r = ctl(socket, r#"{"cmd":"show","what":"routes"}"#);
    r["data"]["routes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["prefix"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `appliancectl reload` and SIGHUP while host A pings host B every 10 ms: a route added to
/// the file appears, one taken out goes; a static neighbour and the slow path's settings
/// change and change back; a change that cannot be made live (an interface's
/// address) and a file with an error are refused naming the key, and change nothing; no ping
/// is lost meanwhile. `show config` then prints the running config, which `--check` accepts.
fn reload_applies_what_changed_and_refuses_the_rest(
    host_a: &Netns,
    dir: &std::path::Path,
    socket: &std::path::Path,
) {
    let file = dir.join("config.toml");
    let original = std::fs::read_to_string(&file).expect("config");
    let pings = NsProcess::spawn({
        let mut c = host_a.command("ping");
        c.args(["-i", "0.01", "-c", "300", "-W", "1", "10.10.2.2"]);
        c
    })
    .expect("ping");
    let with_route =
        format!("{original}\n[[routes]]\nprefix = \"10.30.0.0/16\"\nvia = \"10.10.2.2\"\n");
    // A dry run says what would change and changes nothing.
    let dry = format!("{original}\n[[routes]]\nprefix = \"10.32.0.0/16\"\nvia = \"10.10.2.2\"\n");
    std::fs::write(&file, &dry).expect("config");
    let r = ctl(socket, r#"{"cmd":"reload","dry_run":true}"#);
    assert_eq!(
        r["data"]["changes"],
        serde_json::json!(["route 10.32.0.0/16 via 10.10.2.2 added"]),
        "{r}"
    );
    assert!(!route_prefixes(socket).contains(&"10.32.0.0/16".to_string()));
    std::fs::write(&file, &with_route).expect("config");
    let r = ctl(socket, r#"{"cmd":"reload"}"#);
    assert_eq!(
        r["data"]["changes"],
        serde_json::json!(["route 10.30.0.0/16 via 10.10.2.2 added"]),
        "{r}"
    );
    assert!(route_prefixes(socket).contains(&"10.30.0.0/16".to_string()));
    let again = ctl(socket, r#"{"cmd":"reload"}"#);
    assert_eq!(again["data"]["changes"], serde_json::json!([]), "{again}");

    // A static neighbour and the slow path's settings, then neither.
    let neighbors = |socket| -> Vec<String> {
        ctl(socket, r#"{"cmd":"show","what":"neighbors"}"#)["data"]["neighbors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| format!("{} {}", n["address"], n["mac"]))
                    .collect()
            })
            .unwrap_or_default()
    };
    let static_one = "\"10.10.2.77\" \"02:00:00:00:00:77\"".to_string();
    let slower = with_route.replace("icmp_errors_per_sec = 100", "icmp_errors_per_sec = 50");
    assert!(
        slower != with_route,
        "test bug: no icmp_errors_per_sec in {with_route}"
    );
    std::fs::write(
        &file,
        format!("{slower}\n[[neighbors]]\naddress = \"10.10.2.77\"\nmac = \"02:00:00:00:00:77\"\n"),
    )
    .expect("config");
    let r = ctl(socket, r#"{"cmd":"reload"}"#);
    let changes = r["data"]["changes"].as_array().cloned().unwrap_or_default();
    assert!(
        changes.len() == 2
            && changes[0] == "neighbors: 10.10.2.77 at 02:00:00:00:00:77"
            && changes[1]
                .as_str()
                .is_some_and(|c| c.starts_with("slowpath: icmp_errors_per_sec 50")),
        "{r}"
    );
    assert!(
        neighbors(socket).contains(&static_one),
        "{:?}",
        neighbors(socket)
    );
    std::fs::write(&file, &with_route).expect("config");
    let r = ctl(socket, r#"{"cmd":"reload"}"#);
    assert_eq!(
        r["data"]["changes"].as_array().map(Vec::len),
        Some(2),
        "{r}"
    );
    assert!(!neighbors(socket).contains(&static_one));

    // Refused as a whole: the interface's address, with the route taken out beside it.
    std::fs::write(&file, original.replace("10.10.1.1/24", "10.10.1.254/24")).expect("config");
    let r = ctl(socket, r#"{"cmd":"reload"}"#);
    assert!(
        r["ok"] == false
            && r["error"]
                .as_str()
                .is_some_and(|e| e.contains("interfaces")),
        "{r}"
    );
    assert!(
        route_prefixes(socket).contains(&"10.30.0.0/16".to_string()),
        "nothing applied"
    );
    // A file with an error: its key named, nothing applied.
    std::fs::write(&file, format!("{with_route}\n[slowpath]\nbogus = 1\n")).expect("config");
    let r = ctl(socket, r#"{"cmd":"reload"}"#);
    assert!(r["ok"] == false, "{r}");
    assert!(route_prefixes(socket).contains(&"10.30.0.0/16".to_string()));

    // A route the file removes that a request removed already: the reload still applies.
    let gone_first =
        format!("{with_route}\n[[routes]]\nprefix = \"10.31.0.0/16\"\nvia = \"10.10.2.2\"\n");
    std::fs::write(&file, &gone_first).expect("config");
    let r = ctl(socket, r#"{"cmd":"reload"}"#);
    assert_eq!(r["ok"], true, "{r}");
    let del = ctl(socket, r#"{"cmd":"route_del","prefix":"10.31.0.0/16"}"#);
    assert_eq!(del["ok"], true, "{del}");
    std::fs::write(&file, &with_route).expect("config");
    let r = ctl(socket, r#"{"cmd":"reload"}"#);
    assert_eq!(r["ok"], true, "{r}");

    // SIGHUP: the route goes with the file's.
    std::fs::write(&file, &original).expect("config");
    let pid = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains(&*file.to_string_lossy()) && c.starts_with('/'))
        })
        .expect("the appliance's pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP).expect("SIGHUP");
    wait_for(
        "the route gone after SIGHUP",
        Duration::from_secs(5),
        || !route_prefixes(socket).contains(&"10.30.0.0/16".to_string()),
    );
    // The running config: the file's, with a route added by request since; `--check`
    // accepts it as a file.
    let added = ctl(
        socket,
        r#"{"cmd":"route_add","prefix":"10.40.0.0/16","via":"10.10.2.2"}"#,
    );
    assert_eq!(added["ok"], true, "{added}");
    let shown = ctl(socket, r#"{"cmd":"show","what":"config"}"#);
    let text = shown["data"]["config"].as_str().expect("config text");
    assert!(
        text.contains("prefix = \"10.40.0.0/16\"") && text.contains("prefix = \"10.20.0.0/16\""),
        "{text}"
    );
    let running = dir.join("running.toml");
    std::fs::write(&running, text).expect("running config");
    let check = std::process::Command::new(workspace_bin("appliance"))
        .arg("--check")
        .arg("--profile")
        .arg(dir.join("profile.toml"))
        .arg("--config")
        .arg(&running)
        .output()
        .expect("appliance --check");
    assert!(
        check.status.success(),
        "--check refuses the running config: {}\n{text}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = pings
        .wait_timeout(Duration::from_secs(20))
        .expect("ping finishes");
    assert!(
        out.stdout.contains("300 packets transmitted, 300 received"),
        "pings lost across the reloads: {}",
        out.stdout
    );
}

/// On one connection: lines that are not UTF-8, unknown fields on every kind of request,
/// next hops that cannot be, an over-long line. Each gets an error reply that says what
/// was wrong, and the connection still answers a valid request afterwards.
fn hostile_requests_get_error_replies(socket: &std::path::Path) {
    use std::io::{BufRead, BufReader};
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut ask = |line: &[u8]| -> Value {
        writer.write_all(line).expect("write");
        writer.write_all(b"\n").expect("write");
        let mut reply = String::new();
        reader
            .read_line(&mut reply)
            .expect("a reply for every line");
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
    };
    let refused = |r: &Value, what: &str, says: &str| {
        assert_eq!(r["ok"], false, "{what}: {r}");
        let e = r["error"].as_str().unwrap_or("");
        assert!(e.contains(says), "{what}: {e:?} should say {says:?}");
    };
    refused(&ask(b"\xff\xfe\x00binary"), "binary", "UTF-8");
    refused(
        &ask(b"{\"cmd\":\"show\",\"what\":\"stats\xff\"}"),
        "one bad byte",
        "UTF-8",
    );
    for (kind, line) in [
        ("show", r#"{"cmd":"show","what":"stats","x":1}"#),
        (
            "route_add",
            r#"{"cmd":"route_add","prefix":"10.40.0.0/16","via":"10.10.2.2","x":1}"#,
        ),
        (
            "route_del",
            r#"{"cmd":"route_del","prefix":"10.30.0.0/16","x":1}"#,
        ),
        (
            "mcast_add",
            r#"{"cmd":"mcast_add","rule":{"input":{"interface":"lan","group":"239.1.1.1","port":5000},"outputs":[{"interface":"wan","destination":"239.2.2.2","port":6000}]},"x":1}"#,
        ),
        (
            "mcast_del",
            r#"{"cmd":"mcast_del","input":{"interface":"lan","group":"239.1.1.1","port":5000},"x":1}"#,
        ),
        ("mcast_list", r#"{"cmd":"mcast_list","x":1}"#),
        ("mcast_show", r#"{"cmd":"mcast_show","x":1}"#),
        ("igmp_show", r#"{"cmd":"igmp_show","x":1}"#),
        (
            "path_admin",
            r#"{"cmd":"path_admin","path":"a","state":"down","x":1}"#,
        ),
    ] {
        refused(&ask(line.as_bytes()), kind, "unknown field");
    }
    for (via, says) in [
        ("10.10.2.1", "our own address"),
        ("10.10.2.0", "network address"),
        ("10.10.2.255", "broadcast address"),
        ("192.0.2.1", "no connected subnet"),
    ] {
        let line = format!(r#"{{"cmd":"route_add","prefix":"10.41.0.0/16","via":"{via}"}}"#);
        let r = ask(line.as_bytes());
        refused(&r, via, says);
        refused(&r, via, "via");
    }
    // Longer than the 8 MiB a request line may have (room for 10,000 peers in a `peer add`).
    refused(&ask(&vec![b'x'; 9 << 20]), "over-long line", "longer than");
    let ok = ask(br#"{"cmd":"show","what":"routes"}"#);
    assert_eq!(ok["ok"], true, "the connection still answers: {ok}");
}

fn tempdir(run: &RunId) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("appliance-{}", run.base()));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// af_xdp on a veth is refused before any port is touched, naming the fix: a Linux
/// neighbour's partial checksums would arrive there with nothing to mark them.
#[test]
fn af_xdp_on_a_veth_is_refused_naming_af_packet() {
    if skip_unless_root(&["ip"]) {
        return;
    }
    let run = RunId::new();
    let host = Netns::create(&run.ns_name("xh")).expect("netns host");
    let app = Netns::create(&run.ns_name("xa")).expect("netns app");
    veth(&host, "eth0", &app, "apl-lan", 1500).expect("veth lan");
    veth(&host, "eth1", &app, "apl-wan", 1500).expect("veth wan");
    let out = app
        .command(workspace_bin("appliance"))
        .args([
            "--profile",
            "hw-profiles/vm-af-xdp.toml",
            "--config",
            "configs/demo.toml",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("run the appliance");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {err}");
    assert!(
        err.contains("af_xdp on apl-lan, a software interface")
            && err.contains("driver = \"af_packet\""),
        "{err}"
    );
}
