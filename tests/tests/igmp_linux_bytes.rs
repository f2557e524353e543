//! Linux is the reference IGMP host: the appliance's IGMP host
//! (`appliance::slowpath::igmp`) must send what Linux sends for the same
//! changes and queries.
//!
//! A veth joins two namespaces: in `host`, Linux joins and leaves groups on
//! real sockets (IP_ADD_MEMBERSHIP, IP_ADD_SOURCE_MEMBERSHIP, ...); in `q`,
//! tshark captures IGMP and the test sends queries with AF_PACKET. The
//! appliance's host goes through the same steps on a simulated clock with
//! Linux's MAC and address, its frames go to a second pcap, and tshark
//! decodes both: every field it shows must agree, step by step, and the
//! frames must be equal byte for byte.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use appliance::slowpath::igmp::{IgmpConfig, IgmpHost, Membership};
use appliance::wire::ipv4::ROUTER_ALERT_OPTION;
use appliance::wire::{
    checksum, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, MacAddr,
};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use socket2::{Domain, Socket, Type};
use testbed::netns::{skip_unless_root, veth, Netns, RunId};
use testbed::wanem::port::Port;

const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
const QUERIER_IP: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);
const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
const ASM: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const SSM: Ipv4Addr = Ipv4Addr::new(232, 1, 1, 1);
const SOURCE: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 9);
const OTHER_SOURCE: Ipv4Addr = Ipv4Addr::new(10, 5, 5, 5);
/// Time given to a step: v3 state changes are repeated within 1 s (Linux's
/// default Unsolicited Report Interval), v2 ones within 1 s (set below), and
/// the queries ask for an answer within 1 s.
const STEP: Duration = Duration::from_millis(1400);
/// Time given to a step that makes nothing happen.
const QUIET_STEP: Duration = Duration::from_millis(300);
/// Max Resp Code of the queries: 1 s.
const MAX_RESP_DS: u8 = 10;
/// Kernel timer and timestamp slack in the timing checks.
const SLACK: Duration = Duration::from_millis(60);

/// What tshark shows of each IGMP packet, in this order.
const FIELDS: &[&str] = &[
    "eth.dst",
    "eth.src",
    "ip.hdr_len",
    "ip.dsfield",
    "ip.len",
    "ip.id",
    "ip.flags.df",
    "ip.ttl",
    "ip.proto",
    "ip.checksum.status",
    "ip.opt.type",
    "ip.opt.ra",
    "ip.src",
    "ip.dst",
    "igmp.version",
    "igmp.type",
    "igmp.checksum.status",
    "igmp.num_grp_recs",
    "igmp.record_type",
    "igmp.num_src",
    "igmp.maddr",
    "igmp.saddr",
];

#[derive(Debug, Clone, Copy)]
enum Step {
    Join(Ipv4Addr),
    Leave(Ipv4Addr),
    JoinSource(Ipv4Addr, Ipv4Addr),
    LeaveSource(Ipv4Addr, Ipv4Addr),
    /// A v3 query for a group (0.0.0.0: general) and up to one source pair.
    QueryV3(Ipv4Addr, &'static [Ipv4Addr]),
    /// A v2 general query: both hosts fall back to IGMPv2.
    QueryV2,
}

/// The steps, how many packets each makes Linux send, and how long each
/// lasts. The ASM group is
/// joined before the SSM one so that Linux's record order in the answer to
/// the general query (most recently joined first) is also ours (address
/// order).
const SCRIPT: &[(Step, usize, Duration)] = &[
    (Step::Join(ASM), 2, STEP),
    (Step::JoinSource(SSM, SOURCE), 2, STEP),
    (Step::QueryV3(Ipv4Addr::UNSPECIFIED, &[]), 1, STEP),
    (Step::QueryV3(SSM, &[SOURCE, OTHER_SOURCE]), 1, STEP),
    (Step::LeaveSource(SSM, SOURCE), 2, STEP),
    (Step::Leave(ASM), 2, STEP),
    // No group left to report: this only switches both hosts to v2.
    (Step::QueryV2, 0, QUIET_STEP),
    (Step::Join(ASM), 2, STEP),
    // Leaves are not repeated.
    (Step::Leave(ASM), 1, STEP),
];

fn query_igmp(step: Step) -> Option<(Ipv4Addr, Vec<u8>)> {
    let (group, sources, v3) = match step {
        Step::QueryV3(g, s) => (g, s, true),
        Step::QueryV2 => (Ipv4Addr::UNSPECIFIED, &[][..], false),
        _ => return None,
    };
    let mut igmp = vec![0x11, MAX_RESP_DS, 0, 0];
    igmp.extend_from_slice(&group.octets());
    if v3 {
        // QRV 2, QQIC 125 s, then the sources.
        igmp.extend_from_slice(&[2, 125, 0, u8::try_from(sources.len()).ok()?]);
        for s in sources {
            igmp.extend_from_slice(&s.octets());
        }
    }
    let sum = checksum::checksum(&igmp);
    igmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let dst = if group.is_unspecified() {
        ALL_SYSTEMS
    } else {
        group
    };
    Some((dst, igmp))
}

/// A query as a router sends it: TTL 1, TOS 0xc0, Router Alert.
fn query_frame(src_mac: MacAddr, dst: Ipv4Addr, igmp: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 24 + igmp.len()];
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: MacAddr::from_ipv4_multicast(dst),
        ethertype: EtherType::IPV4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: QUERIER_IP,
        dst_addr: dst,
        protocol: IpProtocol::IGMP,
        payload_len: igmp.len(),
        ttl: 1,
        dscp: 0x30,
        ident: 0,
        dont_frag: true,
    }
    .emit_with_options(
        &mut Ipv4Packet::new_unchecked(&mut f[14..]),
        &ROUTER_ALERT_OPTION,
    );
    f[14 + 24..].copy_from_slice(igmp);
    f
}

/// The appliance's host through the script, on a simulated clock: its
/// frames and the step each belongs to.
fn appliance_frames(mac: MacAddr) -> Result<Vec<(usize, Vec<u8>)>> {
    let cfg = IgmpConfig {
        // As set on Linux's interface below.
        v2_unsolicited_report_interval: Duration::from_secs(1),
        ..IgmpConfig::default()
    };
    let mut host = IgmpHost::new(1, cfg);
    let mut rng = fastrand::Rng::with_seed(0x1f);
    let mut wanted: Vec<Membership> = Vec::new();
    let mut start = appliance::time::Time::from_secs(1_000);
    let mut out = Vec::new();
    for (i, (step, _, duration)) in SCRIPT.iter().enumerate() {
        match *step {
            Step::Join(g) => wanted.push(Membership {
                group: g,
                source: None,
            }),
            Step::JoinSource(g, s) => wanted.push(Membership {
                group: g,
                source: Some(s),
            }),
            Step::Leave(g) => wanted.retain(|m| {
                *m != Membership {
                    group: g,
                    source: None,
                }
            }),
            Step::LeaveSource(g, s) => wanted.retain(|m| {
                *m != Membership {
                    group: g,
                    source: Some(s),
                }
            }),
            Step::QueryV3(..) | Step::QueryV2 => {}
        }
        if let Some((dst, igmp)) = query_igmp(*step) {
            host.on_igmp(0, QUERIER_IP, dst, &igmp, start, &mut rng)
                .map_err(|e| anyhow::anyhow!("query of step {i}: {e}"))?;
        } else {
            host.set_memberships(0, &wanted, start);
        }
        let end = start + *duration;
        let mut now = start;
        loop {
            let next = host.poll(now, &mut rng, &[(mac, HOST_IP)], &mut |_, f| {
                out.push((i, f.to_vec()))
            });
            match next {
                Some(t) if t < end => now = t,
                _ => break,
            }
        }
        start = end;
    }
    Ok(out)
}

fn write_pcap(path: &Path, frames: &[(usize, Vec<u8>)]) -> Result<()> {
    let mut w = PcapWriter::new(File::create(path)?)?;
    for (i, (_, f)) in frames.iter().enumerate() {
        let ts = Duration::from_millis(u64::try_from(i)?);
        w.write_packet(&PcapPacket::new(ts, u32::try_from(f.len())?, f))?;
    }
    Ok(())
}

fn read_pcap(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut r = PcapReader::new(File::open(path)?)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p?.data.into_owned());
    }
    Ok(out)
}

/// One decoded packet: when it was captured (s since the epoch) and FIELDS.
#[derive(Debug)]
struct Decoded {
    at: f64,
    fields: Vec<String>,
}

fn decode(pcap: &Path) -> Result<Vec<Decoded>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(pcap)
        .args(["-o", "ip.check_checksum:TRUE", "-T", "fields"])
        .args([
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ])
        .args(["-e", "frame.time_epoch"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().context("running tshark -r")?;
    ensure!(
        out.status.success(),
        "tshark -r {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)?
        .lines()
        .map(|l| {
            let mut cols = l.split('\t');
            let at = cols.next().unwrap_or_default().parse()?;
            Ok(Decoded {
                at,
                fields: cols.map(str::to_owned).collect(),
            })
        })
        .collect()
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

enum Cmd {
    Join(Ipv4Addr),
    Leave(Ipv4Addr),
    JoinSource(Ipv4Addr, Ipv4Addr),
    LeaveSource(Ipv4Addr, Ipv4Addr),
}

/// Applies `cmd` to a socket in the host namespace.
fn apply(sock: &Socket, cmd: Cmd) -> std::io::Result<()> {
    match cmd {
        Cmd::Join(g) => sock.join_multicast_v4(&g, &HOST_IP),
        Cmd::Leave(g) => sock.leave_multicast_v4(&g, &HOST_IP),
        Cmd::JoinSource(g, s) => sock.join_ssm_v4(&s, &g, &HOST_IP),
        Cmd::LeaveSource(g, s) => sock.leave_ssm_v4(&s, &g, &HOST_IP),
    }
}

#[test]
fn appliance_igmp_frames_match_linux() -> Result<()> {
    if skip_unless_root(&["tshark", "ethtool"]) {
        return Ok(());
    }
    let started = Instant::now();
    let run = RunId::new();
    let host = Netns::create(&run.ns_name("igh"))?;
    let q = Netns::create(&run.ns_name("igq"))?;
    let (host_dev, q_dev) = (run.ifname("ih"), run.ifname("iq"));
    veth(&host, &host_dev, &q, &q_dev, 1500)?;
    // tshark takes a while to start: set the rest up meanwhile.
    let dir = tempfile::tempdir()?;
    let linux_pcap = dir.path().join("linux.pcap");
    let ours_pcap = dir.path().join("appliance.pcap");
    let linux_pcap_s = linux_pcap.to_str().context("temp path")?.to_owned();
    let tshark = q.spawn(&[
        "tshark",
        "-i",
        &q_dev,
        "-f",
        "igmp",
        "-F",
        "pcap",
        "-w",
        &linux_pcap_s,
        "-q",
    ])?;
    host.addr_add(&host_dev, HOST_IP, 24)?;
    q.addr_add(&q_dev, QUERIER_IP, 24)?;
    // v2 repeats within 1 s instead of 10 s, to keep the test short.
    host.sysctl(
        &format!("net.ipv4.conf.{host_dev}.igmpv2_unsolicited_report_interval"),
        "1000",
    )?;
    let host_mac: MacAddr = host
        .mac(&host_dev)?
        .parse()
        .map_err(|e| anyhow::anyhow!("MAC of {host_dev}: {e}"))?;
    let q_mac: MacAddr = q
        .mac(&q_dev)?
        .parse()
        .map_err(|e| anyhow::anyhow!("MAC of {q_dev}: {e}"))?;

    let deadline = Instant::now() + Duration::from_secs(15);
    while std::fs::metadata(&linux_pcap).map_or(0, |m| m.len()) == 0 {
        ensure!(Instant::now() < deadline, "tshark did not start capturing");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));

    // Linux's sockets live on one thread inside the host namespace.
    let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
    let (ack_tx, ack_rx) = mpsc::channel::<std::io::Result<()>>();
    let sockets = host.spawn_in(move || {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
        for cmd in cmd_rx {
            let _ = ack_tx.send(apply(&sock, cmd));
        }
        Ok(())
    })?;
    let querier_dev = q_dev.clone();
    let querier = q.spawn_in(move || Port::open(&querier_dev))?;
    let querier = querier
        .join()
        .map_err(|_| anyhow::anyhow!("querier thread panicked"))??;

    let mut starts = Vec::new();
    for (step, _, duration) in SCRIPT {
        starts.push(SystemTime::now());
        let cmd = match *step {
            Step::Join(g) => Some(Cmd::Join(g)),
            Step::Leave(g) => Some(Cmd::Leave(g)),
            Step::JoinSource(g, s) => Some(Cmd::JoinSource(g, s)),
            Step::LeaveSource(g, s) => Some(Cmd::LeaveSource(g, s)),
            Step::QueryV3(..) | Step::QueryV2 => None,
        };
        if let Some(cmd) = cmd {
            cmd_tx.send(cmd)?;
            ack_rx
                .recv_timeout(Duration::from_secs(5))?
                .with_context(|| format!("{step:?} on Linux"))?;
        } else if let Some((dst, igmp)) = query_igmp(*step) {
            querier.send(&query_frame(q_mac, dst, &igmp))?;
        }
        std::thread::sleep(*duration);
    }
    let finished = SystemTime::now();
    tshark.signal(nix::sys::signal::Signal::SIGINT)?;
    tshark.wait_timeout(Duration::from_secs(10))?;
    drop(cmd_tx);
    sockets
        .join()
        .map_err(|_| anyhow::anyhow!("socket thread panicked"))??;
    drop(querier);

    // Linux's packets (our queries left out), by step.
    let ip_src = FIELDS
        .iter()
        .position(|f| *f == "ip.src")
        .context("ip.src")?;
    let linux_frames: Vec<Vec<u8>> = read_pcap(&linux_pcap)?;
    let linux: Vec<(usize, Decoded, Vec<u8>)> = decode(&linux_pcap)?
        .into_iter()
        .zip(linux_frames)
        .filter(|(d, _)| d.fields.get(ip_src) != Some(&QUERIER_IP.to_string()))
        .map(|(d, raw)| {
            let step = starts
                .iter()
                .rposition(|s| epoch(*s) <= d.at + SLACK.as_secs_f64())
                .context("a packet before the first step")?;
            ensure!(d.at <= epoch(finished), "a packet after the last step");
            Ok((step, d, raw))
        })
        .collect::<Result<_>>()?;
    eprintln!("Linux sent, per step (s after the step began | {FIELDS:?}):");
    for (step, d, _) in &linux {
        let after = d.at - epoch(starts[*step]);
        eprintln!(
            "  {step} {:?}: +{after:.3} | {}",
            SCRIPT[*step].0,
            d.fields.join(" | ")
        );
    }

    let ours = appliance_frames(host_mac)?;
    write_pcap(&ours_pcap, &ours)?;
    let ours_decoded = decode(&ours_pcap)?;
    ensure!(ours_decoded.len() == ours.len(), "tshark lost frames");

    for (i, (step, expected, _)) in SCRIPT.iter().enumerate() {
        let l: Vec<&(usize, Decoded, Vec<u8>)> = linux.iter().filter(|x| x.0 == i).collect();
        let o: Vec<(&Decoded, &Vec<u8>)> = ours_decoded
            .iter()
            .zip(&ours)
            .filter(|(_, (s, _))| *s == i)
            .map(|(d, (_, raw))| (d, raw))
            .collect();
        ensure!(
            l.len() == *expected,
            "step {i} {step:?}: Linux sent {} packets, expected {expected}",
            l.len()
        );
        let lf: Vec<&Vec<String>> = l.iter().map(|x| &x.1.fields).collect();
        let of: Vec<&Vec<String>> = o.iter().map(|x| &x.0.fields).collect();
        if lf != of {
            bail!("step {i} {step:?}: tshark shows\n  Linux:     {lf:?}\n  appliance: {of:?}");
        }
        for (k, ((_, _, lraw), (_, oraw))) in l.iter().zip(&o).enumerate() {
            ensure!(
                lraw == *oraw,
                "step {i} {step:?} packet {k}: bytes differ\n  Linux:     {lraw:02x?}\n  appliance: {oraw:02x?}"
            );
        }
        // Linux's timing: repeats and answers within 1 s of the step.
        let start = epoch(starts[i]);
        for (_, d, _) in &l {
            ensure!(
                d.at - start <= (Duration::from_secs(1) + SLACK).as_secs_f64(),
                "step {i} {step:?}: Linux sent at +{:.3} s",
                d.at - start
            );
        }
    }
    eprintln!("took {:?}", started.elapsed());
    Ok(())
}
