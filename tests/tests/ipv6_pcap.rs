//! IPv6 on `net_pcap` vdevs, byte for byte: the real appliance binary, what
//! it sends compared with frames built here independently with etherparse,
//! and its final counters.
//!
//! Time matters in IPv6 as it does not in the IPv4 golden test: an address is
//! tentative for a second after start (Duplicate Address Detection), and a
//! Neighbor Solicitation is only answered after it was sent. A plain pcap
//! file is read whole in the first polls, so the ports fed here over time
//! read from FIFOs instead (`Input::Live`): net_pcap's `rx_burst` reads
//! records until it has a burst of 32, blocking on the FIFO, so every round
//! the test writes is one burst per live port, padded with filler frames (an
//! unsupported Ethertype, counted under `ethertype_unsupported` and nothing
//! else) in the order the worker polls the ports. Between rounds the test
//! waits for what the appliance has sent so far (its pcap dumper flushes
//! every burst) or asks its control socket; while it waits it keeps the
//! appliance from its idle stop with filler rounds. The worker loads its
//! table snapshot at the top of its loop, before it blocks on the FIFO, so
//! each round of frames is preceded by a round of fillers: the frames then
//! meet tables loaded after the round was decided (a neighbour learned
//! during the wait included), as they would on a port polled continuously.
//! Every filler is counted and taken out of the totals checked.
//!
//! The appliance's MLD reports (its listener has its own test,
//! mld_linux.rs) are left out of the sequences compared here.
//!
//! net_pcap cannot change a port's MTU (it has no `mtu_set`: a profile `mtu`
//! fails the boot with ENOTSUP) and reports 1500, so Packet Too Big is
//! checked with packets above 1500 bytes, which a pcap port takes.

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv6Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::icmpv6::{DestUnreachableCode, TimeExceededCode};
use etherparse::{Icmpv6Type, PacketBuilder};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use serde_json::Value;
use testbed::bins::{workspace_bin, workspace_root};
use testbed::golden::{pcap_mac, write_pcap, GoldenRun};

// ---------------------------------------------------------------------------
// Addresses.

const LAN_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const WAN_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x01];
const DMZ_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x02];
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const WAN_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x20];
const WAN_HOST2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x30];
const DMZ_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x40];
const LAN_IP: [u8; 4] = [10, 10, 1, 1];
const WAN_IP: [u8; 4] = [10, 10, 2, 1];
const DMZ_IP: [u8; 4] = [10, 10, 3, 1];
/// The lan port's global address (unique local: documentation addresses
/// are martians to the appliance).
const LAN6: &str = "fd00:1::1";
/// Its link-local address: modified EUI-64 of 02:70:63:61:70:00.
const LAN_LL: &str = "fe80::70:63ff:fe61:7000";
const WAN6: &str = "fd00:2::1";
const WAN_LL: &str = "fe80::70:63ff:fe61:7001";
const HOST6: &str = "fd00:1::10";
const HOST_LL: &str = "fe80::10";
const WAN_HOST6: &str = "fd00:2::20";
const WAN_HOST2: &str = "fd00:2::30";
const ALL_NODES: &str = "ff02::1";
const ALL_ROUTERS: &str = "ff02::2";

/// lan and wan with both families, dmz with IPv4 only (IPv6 off there).
const CONFIG: &str = r#"
[[interfaces]]
port = "lan"
address = "10.10.1.1/24"
address6 = "fd00:1::1/64"
[[interfaces]]
port = "wan"
address = "10.10.2.1/24"
address6 = "fd00:2::1/64"
[[interfaces]]
port = "dmz"
address = "10.10.3.1/24"
[[routes]]
prefix = "fd00:9::/48"
via = "fd00:2::2"
[control]
socket = "{socket}"
metrics = ""
"#;

/// net_pcap's MTU: it cannot be changed (see the module doc).
const PCAP_MTU: usize = 1500;

fn ip6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().expect("IPv6 address").octets()
}

/// The solicited-node group of `a` (RFC 4291 2.7.1): ff02::1:ffXX:XXXX.
fn solicited_node(a: &str) -> [u8; 16] {
    let o = ip6(a);
    let mut g = ip6("ff02::1:ff00:0");
    g[13..].copy_from_slice(&o[13..]);
    g
}

/// The Ethernet group of an IPv6 group (RFC 2464 7): 33:33 and its low 32 bits.
fn group_mac(g: [u8; 16]) -> [u8; 6] {
    [0x33, 0x33, g[12], g[13], g[14], g[15]]
}

// ---------------------------------------------------------------------------
// Frames, built with etherparse.

/// An Ethernet/IPv6/ICMPv6 frame with a raw ICMPv6 type: etherparse writes
/// the header and its checksum over the pseudo header.
fn icmp6_raw(
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    (src, dst): ([u8; 16], [u8; 16]),
    hop_limit: u8,
    (kind, code, bytes5to8): (u8, u8, [u8; 4]),
    body: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(src, dst, hop_limit)
        .icmpv6_raw(kind, code, bytes5to8)
        .write(&mut v, body)
        .expect("ICMPv6 frame");
    v
}

/// A link-layer address option (1: source, 2: target).
fn lladdr_option(kind: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut o = vec![kind, 1];
    o.extend_from_slice(&mac);
    o
}

/// A Neighbor Solicitation for `target`.
fn ns(
    macs: ([u8; 6], [u8; 6]),
    (src, dst): ([u8; 16], [u8; 16]),
    hop_limit: u8,
    target: &str,
    source_lladdr: Option<[u8; 6]>,
) -> Vec<u8> {
    let mut body = ip6(target).to_vec();
    if let Some(mac) = source_lladdr {
        body.extend(lladdr_option(1, mac));
    }
    icmp6_raw(macs, (src, dst), hop_limit, (135, 0, [0; 4]), &body)
}

/// Neighbor Advertisement flags.
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// A Neighbor Advertisement of `target` at `target_lladdr`.
fn na(
    macs: ([u8; 6], [u8; 6]),
    (src, dst): ([u8; 16], [u8; 16]),
    flags: u8,
    target: &str,
    target_lladdr: [u8; 6],
) -> Vec<u8> {
    let mut body = ip6(target).to_vec();
    body.extend(lladdr_option(2, target_lladdr));
    icmp6_raw(macs, (src, dst), 255, (136, 0, [flags, 0, 0, 0]), &body)
}

/// A solicitation from `host` (address, MAC) for `target`, to the target's
/// solicited-node group, with the host's source link-layer address.
fn host_ns(host: (&str, [u8; 6]), target: &str, hop_limit: u8) -> Vec<u8> {
    let g = solicited_node(target);
    ns(
        (host.1, group_mac(g)),
        (ip6(host.0), g),
        hop_limit,
        target,
        Some(host.1),
    )
}

/// Duplicate Address Detection's probe for `addr` from `mac` (RFC 4862
/// 5.4.2): from ::, no source link-layer option, to the solicited-node group.
fn dad_probe(mac: [u8; 6], addr: &str) -> Vec<u8> {
    let g = solicited_node(addr);
    ns((mac, group_mac(g)), ([0; 16], g), 255, addr, None)
}

/// The unsolicited advertisement of `addr` to all nodes after DAD: router and
/// override, not solicited, with the target link-layer option.
fn announcement(mac: [u8; 6], addr: &str) -> Vec<u8> {
    let all = ip6(ALL_NODES);
    na(
        (mac, group_mac(all)),
        (ip6(addr), all),
        NA_ROUTER | NA_OVERRIDE,
        addr,
        mac,
    )
}

/// The gratuitous ARP the appliance sends for its IPv4 address at start.
fn garp(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut v = vec![0xff; 6];
    v.extend_from_slice(&mac);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    v.extend_from_slice(&mac);
    v.extend_from_slice(&ip);
    v.extend_from_slice(&[0; 6]);
    v.extend_from_slice(&ip);
    v
}

/// What a port with `global` sends at start, in order: its gratuitous ARP,
/// the DAD probes of its link-local and global addresses, and (after a
/// second) their announcements.
fn start_frames(mac: [u8; 6], ip: [u8; 4], link_local: &str, global: &str) -> Vec<Vec<u8>> {
    vec![
        garp(mac, ip),
        dad_probe(mac, link_local),
        dad_probe(mac, global),
        announcement(mac, link_local),
        announcement(mac, global),
    ]
}

fn udp6(
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    (src, dst): (&str, &str),
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(ip6(src), ip6(dst), hop_limit)
        .udp(4000, 5000)
        .write(&mut v, payload)
        .expect("UDP frame");
    v
}

/// UDP from the lan host to the appliance's lan MAC.
fn from_host(src: &str, dst: &str, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    udp6((HOST_MAC, LAN_MAC), (src, dst), hop_limit, payload)
}

fn echo_request(src: &str, dst: &str, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, LAN_MAC)
        .ipv6(ip6(src), ip6(dst), 64)
        .icmpv6_echo_request(id, seq)
        .write(&mut v, payload)
        .expect("echo request");
    v
}

/// The appliance's echo reply: from the address asked, hop limit 64.
fn echo_reply(from: &str, to: &str, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(LAN_MAC, HOST_MAC)
        .ipv6(ip6(from), ip6(to), 64)
        .icmpv6_echo_reply(id, seq)
        .write(&mut v, payload)
        .expect("echo reply");
    v
}

/// The ICMPv6 error `kind` the appliance sends the lan host about
/// `offending`: from its lan global address, hop limit 64, quoting as much
/// of the packet as fits in 1280 bytes (RFC 4443 2.4(c)).
fn error_to_host(kind: Icmpv6Type, offending: &[u8]) -> Vec<u8> {
    let quote = &offending[14..];
    let quote = &quote[..quote.len().min(1280 - 40 - 8)];
    let mut v = Vec::new();
    PacketBuilder::ethernet2(LAN_MAC, HOST_MAC)
        .ipv6(ip6(LAN6), ip6(HOST6), 64)
        .icmpv6(kind)
        .write(&mut v, quote)
        .expect("ICMPv6 error");
    v
}

/// An ICMPv6 message of any type from the lan host (its checksum right).
fn icmp6_from_host(dst: &str, hop_limit: u8, kind: Icmpv6Type, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, LAN_MAC)
        .ipv6(ip6(HOST6), ip6(dst), hop_limit)
        .icmpv6(kind)
        .write(&mut v, body)
        .expect("ICMPv6 message");
    v
}

/// `frame` as the appliance forwards it out of wan to `next_mac`: new MACs,
/// hop limit one less, nothing else changed (IPv6 has no header checksum).
fn forwarded(frame: &[u8], next_mac: [u8; 6]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&next_mac);
    f[6..12].copy_from_slice(&WAN_MAC);
    f[14 + 7] -= 1;
    f
}

/// The ICMPv6 checksum of `body` from `src` to `dst` (RFC 8200 8.1), for the
/// frames etherparse cannot build (an MLD report behind a hop-by-hop header).
fn icmp6_checksum(src: [u8; 16], dst: [u8; 16], body: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&(body.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(body);
    if pseudo.len() % 2 == 1 {
        pseudo.push(0);
    }
    let mut sum: u32 = pseudo
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `frame` (Ethernet/IPv6) with the extension header `ext` (its next-header
/// byte first) put in front of the payload as header number `kind`.
fn with_extension(frame: &[u8], kind: u8, ext: &[u8]) -> Vec<u8> {
    let mut ext = ext.to_vec();
    ext[0] = frame[20];
    let mut f = frame[..54].to_vec();
    f[20] = kind;
    f.extend_from_slice(&ext);
    f.extend_from_slice(&frame[54..]);
    let len = u16::from_be_bytes([f[18], f[19]]) + ext.len() as u16;
    f[18..20].copy_from_slice(&len.to_be_bytes());
    f
}

/// A filler: the appliance drops it as `ethertype_unsupported` and sends
/// nothing (Ethertype 0x88B5, for local experiments).
fn filler(port_mac: [u8; 6]) -> Vec<u8> {
    let mut f = port_mac.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xee, 0x88, 0xb5]);
    f.resize(60, 0);
    f
}

// ---------------------------------------------------------------------------
// Runs fed over time.

/// net_pcap's burst: a live port's round is exactly this many frames.
const BURST: usize = 32;
/// A wait sends a filler round this often, so the appliance never finds
/// its input idle long enough to stop (`--exit-when-idle-ms 1500`).
const KEEPALIVE: Duration = Duration::from_millis(600);
/// Longest wait for one condition.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Where a port's frames come from.
enum Input {
    /// A pcap file, read whole in the first polls.
    File(Vec<Vec<u8>>),
    /// A FIFO fed by the run's steps.
    Live,
}

/// What a run has sent so far, read while it runs.
struct Outputs {
    dir: PathBuf,
}

impl Outputs {
    /// Every whole frame TX queue `queue` of `port` wrote so far.
    fn sent(&self, port: &str, queue: usize) -> Vec<Vec<u8>> {
        frames_in(&self.dir.join(format!("{port}.out.q{queue}.pcap")))
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    }

    /// Whether TX queue `queue` of `port` sent `frame` (`n` times at least).
    fn has(&self, port: &str, queue: usize, frame: &[u8], n: usize) -> bool {
        self.sent(port, queue)
            .iter()
            .filter(|f| *f == frame)
            .count()
            >= n
    }
}

type Condition = Box<dyn Fn(&Outputs) -> bool + Send>;

/// One step of a run.
enum Step {
    /// Frames to live ports (one burst each, padded with fillers; a live
    /// port not named gets fillers only).
    Send(Vec<(&'static str, Vec<Vec<u8>>)>),
    /// Wait until the condition holds (named for the failure message).
    Until(&'static str, Condition),
    /// Ask the control socket; the reply is kept under the name.
    Ask(&'static str, &'static str),
}

fn until(what: &'static str, f: impl Fn(&Outputs) -> bool + Send + 'static) -> Step {
    Step::Until(what, Box::new(f))
}

/// Waits until every port with an IPv6 address has announced its addresses
/// (Duplicate Address Detection is over: they are ours).
fn dad_done() -> Step {
    until("the addresses announced after DAD", |o| {
        o.has("lan", 1, &announcement(LAN_MAC, LAN6), 1)
            && o.has("wan", 1, &announcement(WAN_MAC, WAN6), 1)
    })
}

/// Whether `f` is an MLD message (RFC 3810: ICMPv6 130-132 or 143 behind a
/// hop-by-hop header). The appliance's MLD listener has its own test
/// (mld_linux.rs); its reports are left out of the sequences compared here.
fn is_mld(f: &[u8]) -> bool {
    f.len() > 62
        && f[12..14] == [0x86, 0xdd]
        && f[20] == 0
        && f[54] == 58
        && matches!(f[62], 130..=132 | 143)
}

/// A finished run fed over time.
struct LiveRun {
    run: GoldenRun,
    /// Fillers sent per port name.
    fillers: HashMap<String, u64>,
    /// Control socket replies by name.
    replies: HashMap<&'static str, Value>,
}

impl LiveRun {
    fn fillers(&self) -> u64 {
        self.fillers.values().sum()
    }

    /// What TX queue `queue` of `port` sent, with the times, MLD aside.
    fn sent_timed(&self, port: &str, queue: usize) -> Vec<(Duration, Vec<u8>)> {
        frames_in(&self.run.dir.join(format!("{port}.out.q{queue}.pcap")))
            .into_iter()
            .filter(|(_, f)| !is_mld(f))
            .collect()
    }

    /// What TX queue `queue` of `port` sent, MLD aside.
    fn sent(&self, port: &str, queue: usize) -> Vec<Vec<u8>> {
        self.sent_timed(port, queue)
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    }

    fn slow(&self, event: &str) -> u64 {
        self.run.stats["slowpath"][event]
            .as_u64()
            .unwrap_or_else(|| panic!("no slowpath counter {event}"))
    }

    /// Every drop reason counted, fillers aside, as exactly `expected` (a
    /// reason not named must be 0), and the total agrees.
    fn assert_drops(&self, expected: &[(&str, u64)]) {
        let drops = self.run.stats["drops"].as_object().expect("drops");
        let mut want: HashMap<&str, u64> = expected.iter().copied().collect();
        *want.entry("ethertype_unsupported").or_default() += self.fillers();
        for (reason, n) in drops {
            assert_eq!(
                n.as_u64(),
                Some(want.get(reason.as_str()).copied().unwrap_or(0)),
                "drops of {reason}: {drops:?}"
            );
        }
        for reason in want.keys() {
            assert!(drops.contains_key(*reason), "no drop reason {reason}");
        }
        assert_eq!(
            self.run.stats["drops_total"].as_u64(),
            Some(want.values().sum::<u64>()),
            "{drops:?}"
        );
    }

    /// Port `index` (named `port`) received `frames` test frames besides
    /// its fillers.
    fn assert_rx(&self, index: usize, port: &str, frames: usize) {
        let fillers = self.fillers.get(port).copied().unwrap_or(0);
        assert_eq!(
            self.run.stats["rx_packets"][index].as_u64(),
            Some(frames as u64 + fillers),
            "{port} received {frames} frames and {fillers} fillers"
        );
    }
}

/// Every whole frame in a pcap file, with its time (a file still being
/// written may end inside a record: that one is left out).
fn frames_in(path: &Path) -> Vec<(Duration, Vec<u8>)> {
    let Ok(b) = std::fs::read(path) else {
        return Vec::new();
    };
    if b.len() < 24 {
        return Vec::new();
    }
    let (nanos, little) = match [b[0], b[1], b[2], b[3]] {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, true),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, false),
        m => panic!("{}: not a pcap file ({m:02x?})", path.display()),
    };
    let word = |at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if little {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let (secs, frac, caplen) = (word(at), word(at + 4), word(at + 8) as usize);
        let Some(data) = b.get(at + 16..at + 16 + caplen) else {
            break;
        };
        let nanos = if nanos { frac } else { frac * 1000 };
        out.push((Duration::new(u64::from(secs), nanos), data.to_vec()));
        at += 16 + caplen;
    }
    out
}

/// Opens a FIFO for writing once the appliance has opened it for reading
/// (`None` if it never does: it failed, or `exited`).
fn open_fifo(path: &Path, exited: &AtomicBool) -> Option<File> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Non-blocking, so a failed start cannot hang the test here.
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path);
        match opened {
            Ok(f) => {
                let blocking = nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty());
                nix::fcntl::fcntl(&f, blocking).expect("FIFO back to blocking writes");
                return Some(f);
            }
            Err(_) if Instant::now() < deadline && !exited.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
}

/// The test's side of a run: the FIFOs of the live ports, in port order.
struct Feeder {
    live: Vec<(String, [u8; 6], PcapWriter<File>)>,
    fillers: HashMap<String, u64>,
    start: Instant,
    last_write: Instant,
}

impl Feeder {
    /// One burst per live port (`frames` by port name, at most a burst
    /// each), in the order the worker polls them.
    fn round(&mut self, frames: &[(&'static str, Vec<Vec<u8>>)]) -> Result<(), String> {
        for (name, mac, w) in &mut self.live {
            let mine: Vec<Vec<u8>> = frames
                .iter()
                .filter(|(p, _)| p == name)
                .flat_map(|(_, f)| f.iter().cloned())
                .collect();
            assert!(mine.len() <= BURST, "at most {BURST} frames a round");
            let pad = BURST - mine.len();
            *self.fillers.entry(name.clone()).or_default() += pad as u64;
            for f in mine.iter().chain(std::iter::repeat_n(&filler(*mac), pad)) {
                let p = PcapPacket::new(self.start.elapsed(), f.len() as u32, f);
                w.write_packet(&p)
                    .map_err(|e| format!("writing to {name}: {e} (the appliance stopped?)"))?;
            }
        }
        self.last_write = Instant::now();
        Ok(())
    }
}

/// Runs the appliance on one pcap port per `(name, input)` with `config`
/// (its `{socket}` replaced), feeding the live ports by `steps`; the run
/// stops 1.5 s after the last frame it received.
fn run_live(name: &str, ports: &[(&str, Input)], config: &str, steps: Vec<Step>) -> LiveRun {
    let dir = std::env::temp_dir().join(format!("appliance-ipv6-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("run dir");
    let shipped = std::fs::read_to_string(workspace_root().join("hw-profiles/pcap.toml"))
        .expect("pcap profile");
    let mut profile = shipped
        .split("[[ports]]")
        .next()
        .unwrap_or_default()
        .to_string();
    let mut live = Vec::new();
    for (i, (port, input)) in ports.iter().enumerate() {
        let path = dir.join(format!("{port}.in.pcap"));
        match input {
            Input::File(frames) => write_pcap(&path, frames),
            Input::Live => {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
                let index = u8::try_from(i).expect("port index");
                live.push((port.to_string(), pcap_mac(index), path.clone()));
            }
        }
        profile += &format!(
            "[[ports]]\nname = \"{port}\"\ndriver = \"pcap\"\nrx_pcap = \"{}\"\ntx_pcap = \"{}\"\n\n",
            path.display(),
            dir.join(format!("{port}.out")).display()
        );
    }
    std::fs::write(dir.join("profile.toml"), profile).expect("profile");
    let socket = dir.join("ctl.sock");
    let config = config.replace("{socket}", &socket.display().to_string());
    std::fs::write(dir.join("config.toml"), config).expect("config");

    let exited = Arc::new(AtomicBool::new(false));
    let feeder = {
        let exited = Arc::clone(&exited);
        let outputs = Outputs { dir: dir.clone() };
        std::thread::spawn(move || feed(live, steps, &outputs, &socket, &exited))
    };
    let start = Instant::now();
    let out = Command::new("timeout")
        .args(["-s", "KILL", "60"])
        .arg(workspace_bin("appliance"))
        .arg("--profile")
        .arg(dir.join("profile.toml"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(["--exit-when-idle-ms", "1500", "--final-stats"])
        .arg(dir.join("stats.json"))
        .output()
        .expect("run appliance");
    exited.store(true, Ordering::Relaxed);
    let fed = feeder.join().expect("feeder thread");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "appliance failed after {:?}:\n{log}",
        start.elapsed()
    );
    let (fillers, replies) = match fed {
        Ok(fed) => fed,
        Err(e) => panic!("{e}\nappliance log:\n{log}"),
    };
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).expect("stats"))
            .expect("stats JSON");
    eprintln!(
        "{name}: {:?}, {} fillers",
        start.elapsed(),
        fillers.values().sum::<u64>()
    );
    LiveRun {
        run: GoldenRun { dir, stats, log },
        fillers,
        replies,
    }
}

type Fed = (HashMap<String, u64>, HashMap<&'static str, Value>);

/// The feeder thread: opens the FIFOs, runs the steps, closes the FIFOs
/// (the appliance then reads end of file on them).
fn feed(
    live: Vec<(String, [u8; 6], PathBuf)>,
    steps: Vec<Step>,
    outputs: &Outputs,
    socket: &Path,
    exited: &AtomicBool,
) -> Result<Fed, String> {
    let start = Instant::now();
    let mut feeder = Feeder {
        live: Vec::new(),
        fillers: HashMap::new(),
        start,
        last_write: start,
    };
    // In port order: the EAL opens them in that order, each reading the
    // pcap header before it opens the next.
    for (name, mac, path) in live {
        let Some(f) = open_fifo(&path, exited) else {
            return Err(format!("the appliance never opened {}", path.display()));
        };
        let w = PcapWriter::new(f).map_err(|e| format!("pcap header to {name}: {e}"))?;
        feeder.live.push((name, mac, w));
    }
    let mut replies = HashMap::new();
    for step in steps {
        match step {
            Step::Send(frames) => {
                // The worker loads its table snapshot before it blocks on
                // the FIFO: this round is read with the one it loaded then.
                // A round of fillers first makes the frames meet tables
                // loaded after the step began (what a wait saw included).
                feeder.round(&[])?;
                feeder.round(&frames)?;
            }
            Step::Until(what, cond) => {
                let since = Instant::now();
                while !cond(outputs) {
                    if since.elapsed() > WAIT_LIMIT {
                        return Err(format!("timed out waiting for {what}"));
                    }
                    if feeder.last_write.elapsed() > KEEPALIVE {
                        feeder.round(&[])?;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Step::Ask(key, line) => {
                replies.insert(key, testbed::control::request(socket, line));
            }
        }
    }
    Ok((feeder.fillers, replies))
}

// ---------------------------------------------------------------------------
// Checks.

/// `got` is `want`, frame by frame, byte for byte.
fn assert_frames(what: &str, got: &[Vec<u8>], want: &[Vec<u8>]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{what}: frame {i} differs\n got: {g:02x?}\nwant: {w:02x?}\n(all sent: {got:02x?})"
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} frames sent, {} expected: {got:02x?}",
        got.len(),
        want.len()
    );
}

/// What lan sends at start (see `start_frames`).
fn lan_start() -> Vec<Vec<u8>> {
    start_frames(LAN_MAC, LAN_IP, LAN_LL, LAN6)
}

/// What wan sends at start.
fn wan_start() -> Vec<Vec<u8>> {
    start_frames(WAN_MAC, WAN_IP, WAN_LL, WAN6)
}

/// lan and wan fed as given, dmz (no IPv6 address) from a pcap file.
fn three_ports(lan: Input, wan: Input, dmz: Vec<Vec<u8>>) -> Vec<(&'static str, Input)> {
    vec![("lan", lan), ("wan", wan), ("dmz", Input::File(dmz))]
}

// ---------------------------------------------------------------------------
// Tests.

/// At start every IPv6 address is probed (RFC 4862 5.4.2): the link-local
/// one, then the global one of each port with an `address6`, from :: with no
/// source link-layer option, to its solicited-node group and that group's
/// 33:33:ff MAC, hop limit 255. A second later, nobody having answered, each
/// is announced to all nodes (router, override). The port without an IPv6
/// address sends no IPv6.
#[test]
fn dad_probes_at_start_then_unsolicited_advertisements() {
    let r = run_live(
        "dad",
        &three_ports(Input::Live, Input::Live, Vec::new()),
        CONFIG,
        vec![dad_done()],
    );
    assert_frames("lan management queue", &r.sent("lan", 1), &lan_start());
    assert_frames("wan management queue", &r.sent("wan", 1), &wan_start());
    assert_frames(
        "dmz management queue",
        &r.sent("dmz", 1),
        &[garp(DMZ_MAC, DMZ_IP)],
    );
    for port in ["lan", "wan", "dmz"] {
        assert_frames(&format!("{port} worker queue"), &r.sent(port, 0), &[]);
    }
    // DAD waits RetransTimer (1 s) after its probe before the address is ours.
    for port in ["lan", "wan"] {
        let timed = r.sent_timed(port, 1);
        let gap = timed[3].0.saturating_sub(timed[2].0);
        assert!(
            gap >= Duration::from_millis(990) && gap < Duration::from_millis(1500),
            "{port}: announced {gap:?} after the probe"
        );
    }
    assert_eq!(r.slow("nd_solicits_sent"), 4, "four DAD probes");
    assert_eq!(r.slow("nd_adverts_sent"), 4, "four announcements");
    assert_eq!(r.slow("nd_dad_failed"), 0);
    assert_eq!(r.slow("gratuitous_arp_sent"), 3);
    r.assert_drops(&[]);
    r.run.assert_no_mbuf_leaked();
}

/// Neighbor Discovery, echo and routing, after DAD:
/// - a host's solicitation for the lan global address is answered to the
///   host (router, solicited, override; the target link-layer option our
///   MAC; hop limit 255), and the host is learned;
/// - echo requests to the global and the link-local address are answered;
/// - a packet from the lan host to a wan host not resolved yet is held
///   while the appliance solicits the wan host (to its solicited-node group,
///   with our source link-layer option); the wan host's advertisement (fed
///   once the solicitation is on the wire) releases it, forwarded with the
///   wan host's MAC and one hop less; the next packet of the flow goes
///   straight through the worker.
///
/// Before DAD is over, the address is tentative: the same solicitation sent
/// then is not answered (RFC 4862 5.4.3), and counted `nd_not_for_us`.
#[test]
fn neighbor_discovery_echo_and_routing_after_dad() {
    let ns_for_us = host_ns((HOST6, HOST_MAC), LAN6, 255);
    let echo_global = echo_request(HOST6, LAN6, 0x1234, 1, b"ping the global address");
    let echo_ll = echo_request(HOST_LL, LAN_LL, 0x1234, 2, b"ping the link-local address");
    let routed = from_host(HOST6, WAN_HOST6, 64, b"held until the wan host answers");
    let routed2 = from_host(HOST6, WAN_HOST6, 64, b"straight through");
    let resolve = ns(
        (WAN_MAC, group_mac(solicited_node(WAN_HOST6))),
        (ip6(WAN6), solicited_node(WAN_HOST6)),
        255,
        WAN_HOST6,
        Some(WAN_MAC),
    );
    let wan_host_na = na(
        (WAN_HOST_MAC, WAN_MAC),
        (ip6(WAN_HOST6), ip6(WAN6)),
        NA_SOLICITED | NA_OVERRIDE,
        WAN_HOST6,
        WAN_HOST_MAC,
    );
    let our_na = na(
        (LAN_MAC, HOST_MAC),
        (ip6(LAN6), ip6(HOST6)),
        NA_ROUTER | NA_SOLICITED | NA_OVERRIDE,
        LAN6,
        LAN_MAC,
    );
    let released = forwarded(&routed, WAN_HOST_MAC);
    let steps = vec![
        Step::Send(vec![("lan", vec![ns_for_us.clone()])]),
        dad_done(),
        Step::Send(vec![(
            "lan",
            vec![ns_for_us, echo_global, echo_ll, routed.clone()],
        )]),
        {
            let resolve = resolve.clone();
            until("the solicitation for the wan host", move |o| {
                o.has("wan", 1, &resolve, 1)
            })
        },
        Step::Send(vec![("wan", vec![wan_host_na])]),
        {
            let released = released.clone();
            until("the held packet forwarded", move |o| {
                o.has("wan", 1, &released, 1)
            })
        },
        Step::Ask("neighbors", r#"{"cmd":"show","what":"neighbors"}"#),
        Step::Send(vec![("lan", vec![routed2.clone()])]),
    ];
    let r = run_live(
        "nd",
        &three_ports(Input::Live, Input::Live, Vec::new()),
        CONFIG,
        steps,
    );

    let mut lan = lan_start();
    lan.extend([
        our_na,
        echo_reply(LAN6, HOST6, 0x1234, 1, b"ping the global address"),
        echo_reply(LAN_LL, HOST_LL, 0x1234, 2, b"ping the link-local address"),
    ]);
    let sent = r.sent("lan", 1);
    assert_frames("lan management queue", &sent, &lan);
    // The same, field by field, as etherparse reads the answer.
    let p = etherparse::SlicedPacket::from_ethernet(&sent[5]).expect("answer parses");
    let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6")
    };
    let h = ip.header().to_header();
    assert_eq!((h.source, h.destination), (ip6(LAN6), ip6(HOST6)));
    assert_eq!(h.hop_limit, 255, "Neighbor Discovery's hop limit");
    let Some(etherparse::TransportSlice::Icmpv6(icmp)) = &p.transport else {
        panic!("not ICMPv6")
    };
    let Icmpv6Type::Unknown {
        type_u8: 136,
        code_u8: 0,
        bytes5to8,
    } = icmp.icmp_type()
    else {
        panic!("not an advertisement: {:?}", icmp.icmp_type())
    };
    assert_eq!(bytes5to8[0], 0xe0, "router, solicited, override");
    assert_eq!(&icmp.payload()[..16], &ip6(LAN6), "target");
    assert_eq!(
        &icmp.payload()[16..],
        &lladdr_option(2, LAN_MAC)[..],
        "target link-layer address"
    );
    assert_eq!(
        icmp.icmp_type()
            .calc_checksum(h.source, h.destination, icmp.payload()),
        Ok(icmp.checksum()),
        "checksum"
    );
    assert_frames("lan worker queue", &r.sent("lan", 0), &[]);
    // The held packet leaves from the management lcore once resolved; the
    // next one from the worker.
    let mut wan = wan_start();
    wan.extend([resolve, released]);
    assert_frames("wan management queue", &r.sent("wan", 1), &wan);
    assert_frames(
        "wan worker queue",
        &r.sent("wan", 0),
        &[forwarded(&routed2, WAN_HOST_MAC)],
    );

    let neighbors = r.replies["neighbors"]["data"]["neighbors"]
        .as_array()
        .expect("neighbors")
        .clone();
    for (addr, mac, port) in [
        (HOST6, "02:00:00:00:00:10", "lan"),
        (WAN_HOST6, "02:00:00:00:00:20", "wan"),
    ] {
        assert!(
            neighbors
                .iter()
                .any(|n| n["address"] == addr && n["mac"] == mac && n["interface"] == port),
            "{addr} learned on {port} at {mac}: {neighbors:?}"
        );
    }
    assert_eq!(neighbors.len(), 2, "{neighbors:?}");
    assert_eq!(r.slow("neighbors_learned"), 2);
    assert_eq!(
        r.slow("nd_received"),
        3,
        "two solicitations, one advertisement"
    );
    assert_eq!(
        r.slow("nd_adverts_sent"),
        5,
        "four announcements, one answer"
    );
    assert_eq!(
        r.slow("nd_solicits_sent"),
        5,
        "four DAD probes, one resolution"
    );
    assert_eq!(r.slow("held_packets_released"), 1);
    assert_eq!(r.slow("echo_replies_sent"), 2);
    assert_eq!(r.slow("icmp_errors_sent"), 0);
    r.assert_drops(&[("nd_not_for_us", 1)]);
    r.assert_rx(0, "lan", 6);
    r.assert_rx(1, "wan", 1);
    r.run.assert_no_mbuf_leaked();
}

/// ICMPv6 errors (RFC 4443), each from the appliance's global address on
/// the port the packet came in on, to its source, quoting as much of it as
/// fits in 1280 bytes: hop limit 1 → Time Exceeded code 0 (an echo request
/// too: it is informational); no route → Destination Unreachable code 0; to
/// us on a closed UDP port → code 4; above the outgoing port's MTU (1500 on
/// pcap) → Packet Too Big with the MTU, from the worker when the next hop is
/// known and from the management lcore when the held packet is released
/// (never forwarded). An ICMPv6 error that would itself get one gets none.
#[test]
fn icmpv6_errors_quote_the_packet_and_never_answer_an_error() {
    let hop1 = from_host(HOST6, WAN_HOST6, 1, b"hop limit 1");
    let no_route = from_host(HOST6, "fd00:99::1", 64, b"nowhere");
    // The largest that fits, and one byte more (IPv6 header included).
    let fits = from_host(HOST6, WAN_HOST6, 64, &[0x5a; PCAP_MTU - 48]);
    let too_big = from_host(HOST6, WAN_HOST6, 64, &[0xa5; PCAP_MTU - 48 + 1]);
    let quote = &hop1[14..];
    let error_hop1 = icmp6_from_host(
        WAN_HOST6,
        1,
        Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Address),
        quote,
    );
    let error_no_route = icmp6_from_host(
        "fd00:99::1",
        64,
        Icmpv6Type::PacketTooBig { mtu: 1280 },
        quote,
    );
    let mut echo_hop1 = echo_request(HOST6, WAN_HOST6, 9, 9, b"traceroute");
    echo_hop1[14 + 7] = 1;
    let closed_port = from_host(HOST6, LAN6, 64, b"closed port");
    let too_big_held = from_host(HOST6, WAN_HOST2, 64, &[0x3c; PCAP_MTU]);
    // The wan host makes itself known with a solicitation for our address.
    let wan_host_ns = host_ns((WAN_HOST6, WAN_HOST_MAC), WAN6, 255);
    let answer = na(
        (WAN_MAC, WAN_HOST_MAC),
        (ip6(WAN6), ip6(WAN_HOST6)),
        NA_ROUTER | NA_SOLICITED | NA_OVERRIDE,
        WAN6,
        WAN_MAC,
    );
    let resolve2 = ns(
        (WAN_MAC, group_mac(solicited_node(WAN_HOST2))),
        (ip6(WAN6), solicited_node(WAN_HOST2)),
        255,
        WAN_HOST2,
        Some(WAN_MAC),
    );
    let wan_host2_na = na(
        (WAN_HOST2_MAC, WAN_MAC),
        (ip6(WAN_HOST2), ip6(WAN6)),
        NA_SOLICITED | NA_OVERRIDE,
        WAN_HOST2,
        WAN_HOST2_MAC,
    );
    let ptb = Icmpv6Type::PacketTooBig {
        mtu: PCAP_MTU as u32,
    };
    let ptb_held = error_to_host(ptb, &too_big_held);
    let steps = vec![
        dad_done(),
        Step::Send(vec![("wan", vec![wan_host_ns])]),
        {
            let answer = answer.clone();
            until("the answer to the wan host", move |o| {
                o.has("wan", 1, &answer, 1)
            })
        },
        Step::Send(vec![(
            "lan",
            vec![
                hop1.clone(),
                no_route.clone(),
                too_big.clone(),
                fits.clone(),
                error_hop1,
                error_no_route,
                echo_hop1.clone(),
                closed_port.clone(),
                too_big_held,
            ],
        )]),
        {
            let resolve2 = resolve2.clone();
            until("the solicitation for the second wan host", move |o| {
                o.has("wan", 1, &resolve2, 1)
            })
        },
        Step::Send(vec![("wan", vec![wan_host2_na])]),
        {
            let ptb_held = ptb_held.clone();
            until("packet too big about the held packet", move |o| {
                o.has("lan", 1, &ptb_held, 1)
            })
        },
    ];
    let r = run_live(
        "errors",
        &three_ports(Input::Live, Input::Live, Vec::new()),
        CONFIG,
        steps,
    );

    let time_exceeded = Icmpv6Type::TimeExceeded(TimeExceededCode::HopLimitExceeded);
    let mut lan = lan_start();
    lan.extend([
        error_to_host(time_exceeded, &hop1),
        error_to_host(
            Icmpv6Type::DestinationUnreachable(DestUnreachableCode::NoRoute),
            &no_route,
        ),
        error_to_host(ptb, &too_big),
        error_to_host(time_exceeded, &echo_hop1),
        error_to_host(
            Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port),
            &closed_port,
        ),
        ptb_held,
    ]);
    let sent = r.sent("lan", 1);
    assert_frames("lan management queue", &sent, &lan);
    assert_eq!(sent[7].len(), 14 + 1280, "a quote is cut to fit 1280 bytes");
    assert_eq!(&sent[7][14 + 44..14 + 48], &[0, 0, 0x05, 0xdc], "MTU 1500");
    assert_frames("lan worker queue", &r.sent("lan", 0), &[]);
    let mut wan = wan_start();
    wan.extend([answer, resolve2]);
    assert_frames("wan management queue", &r.sent("wan", 1), &wan);
    assert_frames(
        "wan worker queue: the packet that fits, nothing else",
        &r.sent("wan", 0),
        &[forwarded(&fits, WAN_HOST_MAC)],
    );

    assert_eq!(r.slow("icmp_errors_sent"), 6);
    assert_eq!(r.slow("icmp_errors_rate_limited"), 0);
    assert_eq!(r.slow("neighbors_learned"), 2);
    assert_eq!(r.slow("held_packets_released"), 1);
    r.assert_drops(&[
        ("ttl_expired", 3),
        ("no_route", 2),
        ("mtu_exceeded", 2),
        ("local_unsupported", 1),
    ]);
    r.assert_rx(0, "lan", 9);
    r.assert_rx(1, "wan", 2);
    r.run.assert_no_mbuf_leaked();
}

/// A multicast listener report (MLDv2, RFC 3810) to ff02::16, behind the
/// hop-by-hop header with its router alert, as every IPv6 host sends them.
fn mld_report() -> Vec<u8> {
    let (src, dst) = (ip6(HOST_LL), ip6("ff02::16"));
    let mut icmp = vec![143, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0];
    icmp.extend_from_slice(&ip6("ff02::fb"));
    let c = icmp6_checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = group_mac(dst).to_vec();
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(8 + icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
    f.extend_from_slice(&icmp);
    f
}

/// A router solicitation from the lan host's link-local address.
fn router_solicit() -> Vec<u8> {
    let all = ip6(ALL_ROUTERS);
    icmp6_raw(
        (HOST_MAC, group_mac(all)),
        (ip6(HOST_LL), all),
        255,
        (133, 0, [0; 4]),
        &lladdr_option(1, HOST_MAC),
    )
}

/// Every IPv6 frame the appliance refuses, each with the reason it must be
/// counted under; nothing is sent about any of them.
fn refused_on_lan() -> Vec<(Vec<u8>, &'static str)> {
    let good = from_host(HOST6, WAN_HOST6, 64, &[0x11; 32]);
    let mut v = vec![(good[..14 + 20].to_vec(), "ip6_truncated")];
    let mut f = good.clone();
    f[14] = 0x45;
    v.push((f, "ip6_bad_header"));
    let mut f = good.clone();
    f[18..20].copy_from_slice(&2000u16.to_be_bytes());
    v.push((f, "ip6_truncated")); // payload length past the frame
                                  // Routing header type 0 with one segment left (RFC 5095).
    v.push((
        with_extension(&good, 43, &[0, 0, 0, 1, 0, 0, 0, 0]),
        "ip6_ext_header",
    ));
    // Hop-by-hop behind destination options (RFC 8200 4.1: only first).
    let hbh = with_extension(&good, 0, &[0, 0, 1, 4, 0, 0, 0, 0]);
    v.push((
        with_extension(&hbh, 60, &[0, 0, 1, 4, 0, 0, 0, 0]),
        "ip6_ext_header",
    ));
    v.push((
        from_host("::1", WAN_HOST6, 64, b"loopback"),
        "ip6_martian_source",
    ));
    v.push((
        from_host("2001:db8::1", WAN_HOST6, 64, b"doc"),
        "ip6_martian_source",
    ));
    v.push((from_host(WAN6, WAN_HOST6, 64, b"ours"), "ip_bad_source"));
    v.push((mld_report(), "ip6_multicast"));
    let site = ip6("ff0e::1");
    let mut f = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, group_mac(site))
        .ipv6(ip6(HOST6), site, 8)
        .udp(4000, 5000)
        .write(&mut f, b"global scope stream")
        .expect("multicast");
    v.push((f, "ip6_multicast"));
    // A router solicitation on a port that does not advertise.
    v.push((router_solicit(), "ip6_multicast"));
    v.push((
        from_host(HOST_LL, WAN_HOST6, 64, b"off link"),
        "ip6_link_local_source",
    ));
    v.push((
        from_host(HOST6, "fe80::99", 64, b"not ours"),
        "ip6_martian_destination",
    ));
    // wan's link-local address is not on lan's link.
    v.push((
        from_host(HOST6, WAN_LL, 64, b"not here"),
        "ip6_martian_destination",
    ));
    v.push((
        from_host(HOST6, "2001:db8::5", 64, b"doc"),
        "ip6_martian_destination",
    ));
    v.push((host_ns((HOST6, HOST_MAC), LAN6, 64), "nd_malformed"));
    // Solicitations for an address not ours: to our address, and to our
    // solicited-node group (fd00:1::5:0:0:1 shares fd00:1::1's low 24 bits).
    v.push((
        ns(
            (HOST_MAC, LAN_MAC),
            (ip6(HOST6), ip6(LAN6)),
            255,
            "fd00:1::99",
            Some(HOST_MAC),
        ),
        "nd_not_for_us",
    ));
    let g = solicited_node(LAN6);
    v.push((
        ns(
            (HOST_MAC, group_mac(g)),
            (ip6(HOST6), g),
            255,
            "fd00:1::5:0:0:1",
            Some(HOST_MAC),
        ),
        "nd_not_for_us",
    ));
    // An advertisement nobody asked for, of another host.
    let all = ip6(ALL_NODES);
    v.push((
        na(
            (HOST_MAC, group_mac(all)),
            (ip6(HOST6), all),
            NA_OVERRIDE,
            HOST6,
            HOST_MAC,
        ),
        "nd_not_for_us",
    ));
    v
}

/// Every refused IPv6 frame is counted under its own drop reason, and the
/// appliance sends nothing about it (no error, no answer, nothing
/// forwarded), nor learns anyone from it; IPv6 on the port with no IPv6
/// address is dropped as `ip6_disabled`.
#[test]
fn refused_ipv6_is_counted_and_nothing_is_sent() {
    let refused = refused_on_lan();
    let dmz_host = "fd00:3::10";
    let dmz = vec![
        udp6(
            (DMZ_HOST_MAC, DMZ_MAC),
            (dmz_host, WAN_HOST6),
            64,
            b"no IPv6 here",
        ),
        {
            let g = solicited_node("fd00:3::1");
            ns(
                (DMZ_HOST_MAC, group_mac(g)),
                (ip6(dmz_host), g),
                255,
                "fd00:3::1",
                Some(DMZ_HOST_MAC),
            )
        },
    ];
    let steps = vec![
        dad_done(),
        Step::Send(vec![(
            "lan",
            refused.iter().map(|(f, _)| f.clone()).collect(),
        )]),
    ];
    let r = run_live(
        "refused",
        &three_ports(Input::Live, Input::Live, dmz),
        CONFIG,
        steps,
    );

    assert_frames("lan management queue", &r.sent("lan", 1), &lan_start());
    assert_frames("wan management queue", &r.sent("wan", 1), &wan_start());
    assert_frames(
        "dmz management queue",
        &r.sent("dmz", 1),
        &[garp(DMZ_MAC, DMZ_IP)],
    );
    for port in ["lan", "wan", "dmz"] {
        assert_frames(&format!("{port} worker queue"), &r.sent(port, 0), &[]);
    }
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for (_, reason) in &refused {
        *expected.entry(reason).or_default() += 1;
    }
    expected.insert("ip6_disabled", 2);
    let expected: Vec<(&str, u64)> = expected.into_iter().collect();
    r.assert_drops(&expected);
    assert_eq!(r.slow("icmp_errors_sent"), 0);
    assert_eq!(r.slow("neighbors_learned"), 0);
    assert_eq!(
        r.slow("nd_received"),
        3,
        "the solicitations and advertisement not for us"
    );
    assert_eq!(r.slow("nd_adverts_sent"), 4, "the announcements only");
    assert_eq!(r.slow("nd_router_solicits_received"), 0);
    r.assert_rx(0, "lan", refused.len());
    r.assert_rx(2, "dmz", 2);
    r.run.assert_no_mbuf_leaked();
}

/// lan advertises (`[interfaces.ra]`, radvd's defaults but for the router
/// lifetime given).
const RA_CONFIG: &str = r#"
[[interfaces]]
port = "lan"
address = "10.10.1.1/24"
address6 = "fd00:1::1/64"
[interfaces.ra]
router_lifetime = 1800
[[interfaces]]
port = "wan"
address = "10.10.2.1/24"
address6 = "fd00:2::1/64"
[[interfaces]]
port = "dmz"
address = "10.10.3.1/24"
[control]
socket = "{socket}"
metrics = ""
"#;

/// lan's router advertisement (RFC 4861 4.2) to all nodes from its
/// link-local address, hop limit 255: current hop limit 64, no flags,
/// reachable time and retransmission timer unspecified; options: source
/// link-layer address, MTU, and the /64 prefix on-link and autonomous (L, A)
/// with the default lifetimes (valid 1 day, preferred 4 hours).
fn router_advert(router_lifetime: u16) -> Vec<u8> {
    let all = ip6(ALL_NODES);
    let mut body = vec![0u8; 8];
    body.extend(lladdr_option(1, LAN_MAC));
    body.extend([5, 1, 0, 0]);
    body.extend((PCAP_MTU as u32).to_be_bytes());
    body.extend([3, 4, 64, 0xc0]);
    body.extend(86_400u32.to_be_bytes());
    body.extend(14_400u32.to_be_bytes());
    body.extend([0; 4]);
    body.extend(ip6("fd00:1::"));
    let l = router_lifetime.to_be_bytes();
    icmp6_raw(
        (LAN_MAC, group_mac(all)),
        (ip6(LAN_LL), all),
        255,
        (134, 0, [64, 0, l[0], l[1]]),
        &body,
    )
}

/// With `[interfaces.ra]` on lan: an advertisement once lan's link-local
/// address is ours; a host's solicitation answered to all nodes, no sooner
/// than 3 s after the last one (MIN_DELAY_BETWEEN_RAS); at shutdown one
/// with router lifetime 0. wan does not advertise: a solicitation there is
/// dropped (`ip6_multicast`) and wan sends none.
#[test]
fn router_advertisements_answer_solicitations_and_retire_at_shutdown() {
    let ra = router_advert(1800);
    let wan_rs = {
        let all = ip6(ALL_ROUTERS);
        icmp6_raw(
            (WAN_HOST_MAC, group_mac(all)),
            (ip6("fe80::20"), all),
            255,
            (133, 0, [0; 4]),
            &lladdr_option(1, WAN_HOST_MAC),
        )
    };
    let steps = vec![
        {
            let ra = ra.clone();
            until("the first router advertisement", move |o| {
                o.has("lan", 1, &ra, 1)
            })
        },
        Step::Send(vec![("lan", vec![router_solicit()]), ("wan", vec![wan_rs])]),
        {
            let ra = ra.clone();
            until("the answer to the solicitation", move |o| {
                o.has("lan", 1, &ra, 2)
            })
        },
    ];
    let r = run_live(
        "ra",
        &three_ports(Input::Live, Input::Live, Vec::new()),
        RA_CONFIG,
        steps,
    );

    // Whether the first advertisement leaves before or after the
    // announcements is a_solicitation_during_dad_..._ours's business: here,
    // the advertisements and the rest apart.
    let is_ra = |f: &[u8]| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[54] == 134;
    let (ras, rest): (Vec<_>, Vec<_>) = r
        .sent_timed("lan", 1)
        .into_iter()
        .partition(|(_, f)| is_ra(f));
    let rest: Vec<Vec<u8>> = rest.into_iter().map(|(_, f)| f).collect();
    assert_frames(
        "lan management queue, advertisements aside",
        &rest,
        &lan_start(),
    );
    let frames: Vec<Vec<u8>> = ras.iter().map(|(_, f)| f.clone()).collect();
    assert_frames(
        "lan advertisements: the first, the answer, the last at shutdown",
        &frames,
        &[ra.clone(), ra, router_advert(0)],
    );
    assert_eq!(
        r.sent("lan", 1).last(),
        Some(&router_advert(0)),
        "router lifetime 0 is the last thing sent"
    );
    let gap = ras[1].0.saturating_sub(ras[0].0);
    assert!(
        gap >= Duration::from_millis(2990) && gap < Duration::from_millis(3600),
        "the answer came {gap:?} after the last advertisement"
    );
    assert_frames("wan management queue", &r.sent("wan", 1), &wan_start());
    assert_eq!(r.slow("nd_router_adverts_sent"), 3);
    assert_eq!(r.slow("nd_router_solicits_received"), 1);
    r.assert_drops(&[("ip6_multicast", 1)]);
    r.run.assert_no_mbuf_leaked();
}

/// A router solicitation that arrives while lan's link-local address is
/// still tentative is answered by the first advertisement, once the address
/// is ours (the appliance's own rule: advertisements start once DAD has
/// found the link-local address ours; RFC 4862 5.4: a tentative address is
/// not assigned yet, so not a source).
#[test]
fn a_solicitation_during_dad_is_answered_once_the_link_local_address_is_ours() {
    let ra = router_advert(1800);
    let steps = vec![
        Step::Send(vec![("lan", vec![router_solicit()])]),
        dad_done(),
        {
            let ra = ra.clone();
            until("a router advertisement", move |o| o.has("lan", 1, &ra, 1))
        },
    ];
    let r = run_live(
        "ra-dad",
        &three_ports(Input::Live, Input::Live, Vec::new()),
        RA_CONFIG,
        steps,
    );
    let mut lan = lan_start();
    lan.extend([ra, router_advert(0)]);
    assert_frames("lan management queue", &r.sent("lan", 1), &lan);
    assert_eq!(r.slow("nd_router_solicits_received"), 1);
    r.run.assert_no_mbuf_leaked();
}

/// While DAD runs, the addresses are tentative (RFC 4862 5.4): packets to
/// them are silently discarded and they are not used as sources. An echo
/// request to the tentative global or link-local address gets no reply
/// (then or later), a packet with hop limit 1 no Time Exceeded from a
/// tentative address, and a packet routed to an unresolved wan host no
/// Neighbor Solicitation from the tentative wan address (which would give
/// our MAC for an address that may turn out to be another node's).
#[test]
fn tentative_addresses_are_neither_answered_nor_used_as_sources() {
    let steps = vec![
        Step::Send(vec![(
            "lan",
            vec![
                echo_request(HOST6, LAN6, 7, 1, b"tentative global"),
                echo_request(HOST_LL, LAN_LL, 7, 2, b"tentative link-local"),
                from_host(HOST6, WAN_HOST6, 1, b"hop limit 1 during DAD"),
                from_host(HOST6, WAN_HOST6, 64, b"routed during DAD"),
            ],
        )]),
        dad_done(),
    ];
    let r = run_live(
        "tentative",
        &three_ports(Input::Live, Input::Live, Vec::new()),
        CONFIG,
        steps,
    );
    let lan = r.sent("lan", 1);
    let announced = lan
        .iter()
        .position(|f| *f == announcement(LAN_MAC, LAN6))
        .expect("lan announced");
    assert_frames(
        "lan until its addresses are announced",
        &lan[..=announced],
        &lan_start(),
    );
    // Later the held packet may be given up on (address unreachable); no
    // echo reply or time exceeded comes late.
    for f in &lan[announced + 1..] {
        assert!(
            !(f.len() > 54 && f[20] == 58 && matches!(f[54], 3 | 129)),
            "sent after DAD: {f:02x?}"
        );
    }
    let wan = r.sent("wan", 1);
    let announced = wan
        .iter()
        .position(|f| *f == announcement(WAN_MAC, WAN6))
        .expect("wan announced");
    assert_frames(
        "wan until its addresses are announced",
        &wan[..=announced],
        &wan_start(),
    );
    assert_eq!(r.slow("echo_replies_sent"), 0);
    r.run.assert_no_mbuf_leaked();
}
