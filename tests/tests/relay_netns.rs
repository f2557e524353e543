//! The multicast relay on the VM profile with two workers, between a
//! generator segment and a sink segment (bridges in network namespaces):
//! 50 translated streams with nothing lost, duplicated or reordered, a 1:8
//! fan-out reaching all 8 outputs, 50 rules added live while traffic
//! flows, malformed frames counted by reason, the mempool back to baseline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::PacketBuilder;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use testbed::bins::{workspace_bin, workspace_root};
use testbed::control::{request as ctl, start_appliance, wait_for};
use testbed::netns::{skip_unless_root, NsProcess};
use testbed::wanem::port::Port;

const STREAMS: u32 = 50;
const PPS: u32 = 3000;
const SECONDS: u32 = 30;
const FAN_OUT: u32 = 8;
/// Rounds of the malformed set injected while the streams flow.
const STORM: u64 = 3000;

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(",")
}

/// Config: lan/wan addresses, the 50 translation rules and the 1:8 rule.
fn config(socket: &Path) -> String {
    let mut c = format!(
        r#"
[[interfaces]]
port = "lan"
address = "192.168.1.1/24"
[[interfaces]]
port = "wan"
address = "192.168.2.1/24"
[control]
socket = "{}"
metrics = ""
"#,
        socket.display()
    );
    for x in 1..=STREAMS {
        c += &format!(
            "[[mcast_rules]]\ninput = {{ interface = \"lan\", group = \"239.1.1.{x}\", port = {} }}\noutputs = [{{ interface = \"wan\", destination = \"239.10.1.{x}\", port = {} }}]\n",
            5000 + x,
            6000 + x
        );
    }
    c += "[[mcast_rules]]\ninput = { interface = \"lan\", group = \"239.2.1.1\", port = 5100 }\noutputs = [\n";
    for k in 1..=FAN_OUT {
        c += &format!(
            "  {{ interface = \"wan\", destination = \"239.20.1.{k}\", port = {} }},\n",
            7000 + k
        );
    }
    c + "]\n"
}

/// The appliance of a relay test, on the two-worker VM profile.
struct Relay {
    appliance: NsProcess,
    dir: PathBuf,
    socket: PathBuf,
    stats_file: PathBuf,
}

impl Relay {
    /// Starts it in `topo` with [`config`], its af_packet rings `framecnt`
    /// frames deep when given, and waits for its control socket.
    fn start(topo: &testbed::Relay, framecnt: Option<u32>) -> Self {
        let dir: PathBuf = std::env::temp_dir().join(format!("relay-{}", topo.run.base()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let socket = dir.join("ctl.sock");
        let mut profile = std::fs::read_to_string(
            workspace_root().join("hw-profiles/vm-af-packet-2workers.toml"),
        )
        .expect("profile")
        .replace("\"apl-lan\"", &format!("{:?}", topo.app_gen_iface))
        .replace("\"apl-wan\"", &format!("{:?}", topo.app_sink_iface));
        if let Some(n) = framecnt {
            profile = profile.replace("framecnt = 16384", &format!("framecnt = {n}"));
        }
        std::fs::write(dir.join("profile.toml"), profile).expect("profile");
        std::fs::write(dir.join("config.toml"), config(&socket)).expect("config");
        let stats_file = dir.join("final.json");
        let appliance = start_appliance(&topo.appliance, &dir, &socket);
        // Two workers, each polling one af_packet socket per port: the
        // kernel's fanout gives each the same share of the flows.
        let workers = ctl(&socket, r#"{"cmd":"show","what":"workers"}"#);
        let queues: Vec<usize> = workers["data"]
            .as_array()
            .expect("workers")
            .iter()
            .map(|w| w["rx_queues"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(queues, [2, 2], "one queue per port each: {workers}");
        Self {
            appliance,
            dir,
            socket,
            stats_file,
        }
    }

    /// Stops it and returns its final counters, with every mbuf back.
    fn stop(self) -> Value {
        self.appliance.signal(Signal::SIGINT).expect("SIGINT");
        let out = self
            .appliance
            .wait_timeout(Duration::from_secs(20))
            .expect("appliance exits on SIGINT");
        assert!(out.status.success(), "clean exit: {}", out.stderr);
        let stats: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.stats_file).expect("final stats"))
                .expect("json");
        assert_eq!(
            stats["mempool_in_use_at_exit"], stats["mempool"]["baseline_in_use"],
            "no mbuf leaked"
        );
        assert_eq!(
            stats["headers_in_use_at_exit"].as_u64(),
            Some(0),
            "no header mbuf leaked"
        );
        let _ = std::fs::remove_dir_all(&self.dir);
        stats
    }
}

/// Frames the relay must drop, each with the reason it must be counted
/// under (sent from the generator host's interface).
fn malformed(src_mac: [u8; 6], src: [u8; 4]) -> Vec<(Vec<u8>, &'static str)> {
    let to_group = |group: [u8; 4], port: u16, payload: &[u8]| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(src_mac, [1, 0, 0x5e, group[1] & 0x7f, group[2], group[3]])
            .ipv4(src, group, 8)
            .udp(4000, port)
            .write(&mut v, payload)
            .expect("build");
        v
    };
    let fix = |f: &mut Vec<u8>| {
        let ihl = usize::from(f[14] & 0x0f) * 4;
        f[24..26].copy_from_slice(&[0, 0]);
        let mut sum: u32 = f[14..14 + ihl]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    };
    let good = to_group([239, 1, 1, 1], 5001, &[0x5a; 64]);
    let mut out = Vec::new();
    let mut f = good.clone();
    f[24] ^= 0xff;
    out.push((f, "ip_bad_checksum"));
    let mut f = good.clone();
    f[38..40].copy_from_slice(&300u16.to_be_bytes());
    out.push((f, "udp_truncated"));
    // No fragment here: the af_packet PMD joins its sockets to the kernel's
    // fanout with PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles (or
    // holds) fragments before the appliance sees them. The golden net_pcap
    // test covers fragments on a matched stream.
    let mut f = good[..34].to_vec();
    f.extend_from_slice(&[0x94, 4, 0, 0]);
    f.extend_from_slice(&good[34..]);
    f[14] = 0x46;
    let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&tl.to_be_bytes());
    fix(&mut f);
    out.push((f, "ip_options"));
    // IGMP: a query with a bad checksum, and a truncated one.
    let mut igmp = good[..34].to_vec();
    igmp.extend_from_slice(&[0x94, 4, 0, 0, 0x11, 100, 0x12, 0x34, 0, 0, 0, 0]);
    igmp[14] = 0x46;
    igmp[16..18].copy_from_slice(&32u16.to_be_bytes());
    igmp[23] = 2;
    igmp[30..34].copy_from_slice(&[224, 0, 0, 1]);
    igmp[0..6].copy_from_slice(&[1, 0, 0x5e, 0, 0, 1]);
    fix(&mut igmp);
    out.push((igmp.clone(), "igmp_malformed"));
    let mut short = igmp[..42].to_vec();
    short[16..18].copy_from_slice(&28u16.to_be_bytes());
    fix(&mut short);
    out.push((short, "igmp_malformed"));
    out
}

/// What load this tolerates: none that is CPU-bound. The generator (150k pps through the
/// kernel), the relay's two workers and the sinks share the 2 vCPUs, and in a quiet run the
/// workers alone use about a third of the machine (about 25 and 17 s of CPU over 65 s,
/// mostly the kernel's veth work on their sends; the management lcore, at real-time
/// priority on worker 2's CPU, 0.3 s). With two CPU-bound processes beside it (`yes >
/// /dev/null` twice) it failed in one of two runs: the workers fell behind by seconds,
/// their 16,384-frame rings filled (p99 latency 826 ms, the ring's depth at the rate they
/// were left) and the kernel dropped 1,554 datagrams of one stream (counted as
/// `rx-missed`); the other run passed, in 104 s instead of 71. That, not a stalled worker, is
/// what a failure under load looks like; the assertion prints the kernel's drops and the
/// load average. (Before the appliance drove its own af_packet sockets, the kernel rolled
/// such frames over to the other worker's socket, and the same overload showed as thousands
/// of datagrams reordered.)
#[test]
fn relay_50_streams_fan_out_live_rules_and_malformed() {
    if skip_unless_root(&["ip"]) {
        return;
    }
    let topo = testbed::relay(1, 1).expect("relay topology");
    let gen = &topo.gens[0];
    let sink = &topo.sinks[0];
    let relay = Relay::start(&topo, None);
    let socket = relay.socket.clone();

    // Sinks: one process for the 50 translated streams, one per fan-out output.
    // The sinks outlast a generator that falls behind its schedule on a
    // busy machine (it then catches up in bursts; nothing may be lost).
    let duration = format!("{}s", SECONDS + 60);
    let spawn_sink = |groups: String| {
        NsProcess::spawn({
            let mut c = sink.ns.command(workspace_bin("mcast-sink"));
            c.args(["--group", &groups, "--duration", &duration]);
            c.arg("--iface-addr").arg(sink.addr.to_string());
            c
        })
        .expect("sink")
    };
    let main_sink = spawn_sink(list(
        (1..=STREAMS).map(|x| format!("239.10.1.{x}:{}", 6000 + x)),
    ));
    let fan_sinks: Vec<NsProcess> = (1..=FAN_OUT)
        .map(|k| spawn_sink(format!("239.20.1.{k}:{}", 7000 + k)))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));

    let gen_cmd = |dests: String, pps: u32| {
        let mut c = gen.ns.command(workspace_bin("mcast-gen"));
        c.args([
            "--dest",
            &dests,
            "--pps",
            &pps.to_string(),
            "--size",
            "1024",
        ]);
        c.args(["--duration", &format!("{SECONDS}s"), "--ttl", "8"]);
        c.arg("--source").arg(gen.addr.to_string());
        NsProcess::spawn(c).expect("generator")
    };
    let main_gen = gen_cmd(
        list((1..=STREAMS).map(|x| format!("239.1.1.{x}:{}", 5000 + x))),
        PPS,
    );
    // The fan-out input comes as UDP GSO super-frames (four datagrams per write with
    // UDP_SEGMENT, as a host's application may send): the appliance cuts them.
    let fan_gen = {
        let mut c = gen.ns.command(workspace_bin("mcast-gen"));
        c.args([
            "--dest",
            "239.2.1.1:5100",
            "--pps",
            "1000",
            "--size",
            "1024",
            "--gso",
            "4",
        ]);
        c.args(["--duration", &format!("{SECONDS}s"), "--ttl", "8"]);
        c.arg("--source").arg(gen.addr.to_string());
        NsProcess::spawn(c).expect("fan-out generator")
    };

    // While the streams flow: 50 more rules, one by one, each acknowledged
    // with a new table version; then the malformed frames.
    std::thread::sleep(Duration::from_secs(3));
    let mut last_version = 0;
    for x in 1..=50u32 {
        let out = std::process::Command::new(workspace_bin("appliancectl"))
            .arg("--socket")
            .arg(&socket)
            .args([
                "--json",
                "mcast",
                "add",
                &format!("lan:239.3.1.{x}:{}", 5200 + x),
            ])
            .args(["--out", &format!("wan:239.30.1.{x}:{}", 6200 + x)])
            .output()
            .expect("appliancectl");
        let v: Value = serde_json::from_slice(&out.stdout).expect("json reply");
        let version = v["data"]["version"].as_u64().unwrap_or(0);
        assert!(out.status.success() && version > last_version, "{v}");
        last_version = version;
    }
    // Rates, live: the 1000 pps fan-out stream (running for another 20 s or more) shows on
    // its rule and on each of its outputs. The generator catches up in bursts on a busy
    // machine, so any one second may be above or below 1000.
    let live = ctl(
        &socket,
        r#"{"cmd":"mcast_show","input":{"interface":"lan","group":"239.2.1.1","port":5100}}"#,
    );
    let fan_rule = &live["data"]["rules"][0];
    let pps = |v: &Value| v["pps"].as_u64().unwrap_or(0);
    assert!(
        (1..=10_000).contains(&pps(&fan_rule["rx_rate"])),
        "fan-out input rate while it flows: {fan_rule}"
    );
    let fan_outputs = fan_rule["outputs"].as_array().expect("outputs").clone();
    eprintln!(
        "fan-out rule while it flows: {} pps in, {:?} pps out",
        pps(&fan_rule["rx_rate"]),
        fan_outputs
            .iter()
            .map(|o| pps(&o["tx_rate"]))
            .collect::<Vec<_>>()
    );
    assert_eq!(fan_outputs.len(), FAN_OUT as usize);
    for o in &fan_outputs {
        assert!(
            pps(&o["tx_rate"]) > 0 && o["tx_rate"]["bps"].as_u64() > Some(pps(&o["tx_rate"])),
            "fan-out output rate while it flows: {o}"
        );
    }
    let dup = ctl(
        &socket,
        r#"{"cmd":"mcast_add","rule":{"input":{"interface":"lan","group":"239.3.1.1","port":5201},"outputs":[{"interface":"wan","destination":"239.30.9.9","port":1}]}}"#,
    );
    assert_eq!(dup["ok"], false, "an existing input needs --replace: {dup}");
    let looped = ctl(
        &socket,
        r#"{"cmd":"mcast_add","rule":{"input":{"interface":"lan","group":"239.4.1.1","port":5300},"outputs":[{"interface":"lan","destination":"239.4.1.1","port":5300}]}}"#,
    );
    assert!(
        looped["error"].as_str().unwrap_or("").contains("loop"),
        "{looped}"
    );
    let mac_text = gen.ns.mac(&gen.iface).expect("generator MAC");
    let mut mac = [0u8; 6];
    for (b, h) in mac.iter_mut().zip(mac_text.split(':')) {
        *b = u8::from_str_radix(h, 16).expect("hex MAC");
    }
    // A storm of them while the streams flow: STORM rounds of the whole set, about 5,000
    // frames/s.
    let bad = malformed(mac, gen.addr.octets());
    let iface = gen.iface.clone();
    let frames: Vec<Vec<u8>> = bad.iter().map(|(f, _)| f.clone()).collect();
    gen.ns
        .run_in(move || {
            let port = Port::open(&iface)?;
            for round in 0..STORM {
                for f in &frames {
                    port.send(f)?;
                }
                if round % 100 == 99 {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Ok(())
        })
        .expect("inject malformed frames");

    let gen_out = main_gen
        .wait_timeout(Duration::from_secs(u64::from(SECONDS) + 90))
        .expect("generator finishes");
    let fan_out = fan_gen
        .wait_timeout(Duration::from_secs(20))
        .expect("fan-out generator finishes");
    let sent: Value = serde_json::from_str(&gen_out.stdout).expect("generator JSON");
    let fan_sent: Value = serde_json::from_str(&fan_out.stdout).expect("generator JSON");
    let fan_sent = fan_sent["streams"][0]["sent"].as_u64().expect("sent");
    let sent_per_stream: Vec<u64> = sent["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["sent"].as_u64().unwrap_or(0))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    main_sink.signal(Signal::SIGINT).expect("stop sink");
    let sink_out = main_sink
        .wait_timeout(Duration::from_secs(30))
        .expect("sink finishes");
    let got: Value = serde_json::from_str(&sink_out.stdout)
        .unwrap_or_else(|e| panic!("sink JSON: {e}: {}", sink_out.stdout));
    let received = |v: &Value| {
        v["streams"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["received"].as_u64()).sum::<u64>())
            .unwrap_or(0)
    };
    // The generator sends every scheduled datagram even when it falls behind (a shared
    // 2-vCPU machine cannot offer 150k pps through the kernel next to the relay and the
    // sink): the rate it reached is printed, not assumed.
    let total_sent = sent_per_stream.iter().sum::<u64>();
    let gen_elapsed = sent["elapsed_s"].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "relay: {total_sent} sent in {gen_elapsed:.1} s ({:.0} pps offered), {} received over \
         {STREAMS} streams; fan-out {fan_sent} sent per output",
        total_sent as f64 / gen_elapsed,
        received(&got)
    );

    let streams = got["streams"].as_array().expect("streams").clone();
    assert_eq!(streams.len(), STREAMS as usize, "every stream arrived");
    // For a failure: whether the workers fell behind (the kernel dropped on full rings),
    // and how loaded the machine was.
    let ports = ctl(&socket, r#"{"cmd":"show","what":"ports"}"#);
    let missed: Vec<&Value> = ports["data"]
        .as_array()
        .map(|a| a.iter().map(|p| &p["stats"]["imissed"]).collect())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let diagnosis = format!(
        "kernel ring drops (rx-missed) per port {missed:?}, load average {}",
        load.trim()
    );
    for s in &streams {
        let id = s["stream"].as_u64().unwrap_or(u64::MAX) as usize;
        let expected = sent_per_stream.get(id).copied();
        assert!(
            expected >= Some(u64::from(PPS * SECONDS)),
            "generator sent all of stream {id}: {expected:?}"
        );
        let (r, lost, dup, reord) = (
            s["received"].as_u64(),
            s["lost"].as_u64(),
            s["duplicates"].as_u64(),
            s["reordered"].as_u64(),
        );
        assert_eq!(
            (r, lost, dup, reord),
            (expected, Some(0), Some(0), Some(0)),
            "stream {}: {s}; {diagnosis}",
            s["stream"]
        );
    }
    for (k, p) in fan_sinks.into_iter().enumerate() {
        p.signal(Signal::SIGINT).expect("stop fan sink");
        let out = p.wait_timeout(Duration::from_secs(30)).expect("fan sink");
        let v: Value = serde_json::from_str(&out.stdout).expect("fan sink JSON");
        assert_eq!(received(&v), fan_sent, "fan-out output {}: {v}", k + 1);
        let s = &v["streams"][0];
        assert_eq!(
            (
                s["lost"].as_u64(),
                s["duplicates"].as_u64(),
                s["reordered"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "fan-out output {}: every datagram of the super-frames once, in order: {s}",
            k + 1
        );
    }
    let ports = ctl(&socket, r#"{"cmd":"show","what":"ports"}"#);
    let lan = &ports["data"][0]["offload"];
    assert!(
        lan["gso_frames"].as_u64() >= Some(fan_sent / 4)
            && lan["gso_segments"].as_u64() >= Some(fan_sent),
        "the fan-out input reached the appliance as super-frames and was cut: {lan}"
    );

    // Rates: zero once the traffic has stopped (within two sampling intervals).
    wait_for("every rate at zero", Duration::from_secs(5), || {
        let show = ctl(&socket, r#"{"cmd":"mcast_show"}"#);
        show["data"]["rules"].as_array().is_some_and(|rules| {
            rules.iter().all(|r| {
                r["rx_rate"] == json!({"pps": 0, "bps": 0})
                    && r["outputs"].as_array().is_some_and(|os| {
                        os.iter()
                            .all(|o| o["tx_rate"] == json!({"pps": 0, "bps": 0}))
                    })
            })
        })
    });

    // Counters: per rule and per output, exact; drops by reason.
    let show = ctl(&socket, r#"{"cmd":"mcast_show"}"#);
    let rules = show["data"]["rules"].as_array().expect("rules").clone();
    assert_eq!(rules.len(), STREAMS as usize + 1 + 50);
    for (r, sent) in rules.iter().zip(&sent_per_stream) {
        assert_eq!(
            r["rx_packets"].as_u64().map(|n| n >= *sent),
            Some(true),
            "{r}"
        );
        assert_eq!(r["outputs"][0]["tx_packets"].as_u64(), Some(*sent), "{r}");
    }
    let fan = &rules[STREAMS as usize];
    for o in fan["outputs"].as_array().expect("outputs") {
        assert_eq!(o["tx_packets"].as_u64(), Some(fan_sent), "{o}");
    }
    let stats = ctl(&socket, r#"{"cmd":"show","what":"stats"}"#);
    let drops = &stats["data"]["drops"];
    for reason in ["ip_bad_checksum", "udp_truncated", "ip_options"] {
        assert_eq!(drops[reason].as_u64(), Some(STORM), "{reason}: {drops}");
    }
    assert_eq!(drops["igmp_malformed"].as_u64(), Some(2 * STORM), "{drops}");
    // The storm's UDP frames matched rule 0 (239.1.1.1:5001): its drops count them.
    assert_eq!(rules[0]["drops"]["ip_options"].as_u64(), Some(STORM));
    assert_eq!(rules[0]["drops"]["udp_truncated"].as_u64(), Some(STORM));
    // Per rule and output, every matched packet is accounted for exactly once: sent by
    // the output, dropped by it, or dropped for the whole rule.
    for r in &rules {
        let sum = |v: &Value| -> u64 {
            v.as_object()
                .map(|o| o.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0)
        };
        let received = r["rx_packets"].as_u64().unwrap_or(0);
        for o in r["outputs"].as_array().expect("outputs") {
            let accounted =
                sum(&r["drops"]) + o["tx_packets"].as_u64().unwrap_or(0) + sum(&o["drops"]);
            assert_eq!(received, accounted, "received = sent + dropped: {r}");
        }
    }

    // Each worker's share of the packets is its share of the streams (each
    // stream on one of them). The 50 equal streams hash to the two sockets
    // as 50 fair coin tosses: a share of 1/2 with a standard deviation of
    // 0.07, so four deviations allow 0.22 to 0.78. (With the management
    // lcore's socket in the fanout, as before, one worker had 2/3 of it.)
    let workers = ctl(&socket, r#"{"cmd":"show","what":"workers"}"#);
    let shares: Vec<f64> = workers["data"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["rx_share"].as_f64().unwrap_or(-1.0))
        .collect();
    eprintln!("share of the packets per worker: {shares:?}");
    let sd = (0.25 / f64::from(STREAMS)).sqrt();
    assert!(
        shares.iter().all(|s| (s - 0.5).abs() <= 4.0 * sd),
        "each worker within the hash's spread of 1/2: {shares:?}"
    );
    assert!(
        (shares.iter().sum::<f64>() - 1.0).abs() < 1e-9,
        "{shares:?}"
    );

    let stats = relay.stop();
    // A clean run: the kernel dropped nothing and rolled nothing over.
    assert_eq!(stats["rx_missed"], json!([0, 0]), "{stats}");
    assert_eq!(stats["rx_rollovers"], json!([0, 0]), "{stats}");
}

/// A deliberate overload, counted exactly: four streams at 10,000 pps in all
/// while the appliance is stopped (SIGSTOP) for 300 ms with af_packet rings
/// of 512 frames (the smallest the profile takes). The rings fill, the
/// kernel first rolls frames over to the other worker's socket and then
/// drops them; every datagram the sink misses is one the kernel counted as
/// dropped (`rx_missed`), the appliance counted, or the sink's own socket
/// overflowed on (the burst after the stop), nothing is duplicated, and a
/// stream the sink saw reordered was rolled over.
#[test]
fn an_overload_is_counted_exactly() {
    if skip_unless_root(&["ip"]) {
        return;
    }
    const N: u32 = 4;
    let topo = testbed::relay(1, 1).expect("relay topology");
    let gen = &topo.gens[0];
    let sink = &topo.sinks[0];
    // Nothing but the streams may reach the rings while they are full.
    gen.ns.disable_ipv6().expect("no IPv6 on the generator");
    let relay = Relay::start(&topo, Some(512));
    let sink_overflows_before = udp_rcvbuf_errors(&sink.ns);
    let sink_p = NsProcess::spawn({
        let mut c = sink.ns.command(workspace_bin("mcast-sink"));
        c.args(["--duration", "60s", "--group"]);
        c.arg(list((1..=N).map(|x| format!("239.10.1.{x}:{}", 6000 + x))));
        c.arg("--iface-addr").arg(sink.addr.to_string());
        c
    })
    .expect("sink");
    std::thread::sleep(Duration::from_millis(1500));
    let gen_p = NsProcess::spawn({
        let mut c = gen.ns.command(workspace_bin("mcast-gen"));
        c.args([
            "--pps",
            "2500",
            "--size",
            "64",
            "--duration",
            "6s",
            "--dest",
        ]);
        c.arg(list((1..=N).map(|x| format!("239.1.1.{x}:{}", 5000 + x))));
        c.arg("--source").arg(gen.addr.to_string());
        c
    })
    .expect("generator");
    std::thread::sleep(Duration::from_millis(2500));
    relay.appliance.signal(Signal::SIGSTOP).expect("SIGSTOP");
    std::thread::sleep(Duration::from_millis(300));
    relay.appliance.signal(Signal::SIGCONT).expect("SIGCONT");
    let sent: Value = serde_json::from_str(
        &gen_p
            .wait_timeout(Duration::from_secs(60))
            .expect("generator finishes")
            .stdout,
    )
    .expect("generator JSON");
    std::thread::sleep(Duration::from_secs(2));
    sink_p.signal(Signal::SIGINT).expect("stop sink");
    let got: Value = serde_json::from_str(
        &sink_p
            .wait_timeout(Duration::from_secs(30))
            .expect("sink finishes")
            .stdout,
    )
    .expect("sink JSON");
    let total = |v: &Value, key: &str| -> u64 {
        v["streams"]
            .as_array()
            .map_or(0, |a| a.iter().filter_map(|s| s[key].as_u64()).sum())
    };
    let (sent, received) = (total(&sent, "sent"), total(&got, "received"));
    let (duplicates, reordered) = (total(&got, "duplicates"), total(&got, "reordered"));
    let sink_overflows = udp_rcvbuf_errors(&sink.ns) - sink_overflows_before;
    let stats = relay.stop();
    let missed = stats["rx_missed"][0].as_u64().expect("rx_missed");
    let rollovers = stats["rx_rollovers"][0].as_u64().expect("rx_rollovers");
    let counted = ["tx_full", "no_mbuf"]
        .iter()
        .filter_map(|r| stats["drops"][r].as_u64())
        .sum::<u64>();
    eprintln!(
        "overload: {sent} sent, {received} received, {duplicates} duplicated, {reordered} \
         reordered; the kernel dropped {missed} and rolled {rollovers} over, the appliance \
         dropped {counted}, the sink's socket overflowed on {sink_overflows}"
    );
    assert!(
        sent > received + 1000,
        "300 ms at 10k pps overflows 2 x 512 frames"
    );
    assert_eq!(duplicates, 0);
    assert_eq!(
        sent - received,
        missed + counted + sink_overflows,
        "every datagram lost is counted: {stats}"
    );
    assert!(
        reordered == 0 || rollovers > 0,
        "reordering only by rollover: {reordered} reordered, {rollovers} rolled over"
    );
}

/// UDP datagrams the kernel of `ns` dropped on a full socket buffer.
fn udp_rcvbuf_errors(ns: &testbed::netns::Netns) -> u64 {
    let out = ns
        .command("cat")
        .arg("/proc/net/snmp")
        .output()
        .expect("/proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap_or(""), udp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .expect("Udp RcvbufErrors in /proc/net/snmp")
}
