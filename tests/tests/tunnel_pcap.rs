//! The tunnel on `net_pcap` vdevs, byte for byte: packets into the tunnel
//! leave each path encapsulated exactly as `docs/wire-format.md` says (frames
//! built here independently with etherparse); packets from the peer come out
//! on the LAN decapsulated and in lane order; every kind of bad tunnel input
//! is dropped under its own reason and nothing else is sent; no mbuf leaks.

use etherparse::{IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, PacketBuilder};
use testbed::golden::{pcap_mac, GoldenRun};

const LAN_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const WAN0_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x01];
const WAN1_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x02];
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const PEER0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa0];
const PEER1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
const HOST: [u8; 4] = [10, 10, 1, 10];
const LAN_IP: [u8; 4] = [10, 10, 1, 1];
const WAN0_IP: [u8; 4] = [10, 10, 2, 1];
const WAN1_IP: [u8; 4] = [10, 10, 3, 1];
const PEER0: [u8; 4] = [10, 10, 2, 2];
const PEER1: [u8; 4] = [10, 10, 3, 2];
const REMOTE_HOST: [u8; 4] = [10, 30, 1, 1];
const TUNNEL_PORT: u16 = 4800;

/// Two paths; DSCP 46 goes redundant (both paths), the rest to path a alone
/// (backup scheduler), so the outputs are deterministic. Probes every 10 s:
/// one at start, and the paths stay up for the whole run.
const CONFIG: &str = r#"
[[interfaces]]
port = "lan"
address = "10.10.1.1/24"
[[interfaces]]
port = "wan0"
address = "10.10.2.1/24"
[[interfaces]]
port = "wan1"
address = "10.10.3.1/24"
[[neighbors]]
address = "10.10.2.2"
mac = "02:00:00:00:00:a0"
[[neighbors]]
address = "10.10.3.2"
mac = "02:00:00:00:00:a1"
[[neighbors]]
address = "10.10.1.10"
mac = "02:00:00:00:00:10"
[control]
socket = "{socket}"
metrics = ""
[tunnel]
prefixes = ["10.30.0.0/16"]
default_scheduler = "backup"
probe_interval = "10s"
# The wire in clear, byte for byte (tunnel_crypto_pcap.rs checks it sealed).
encryption = "none"
[[tunnel.paths]]
name = "a"
id = 0
interface = "wan0"
remote = "10.10.2.2"
rate = "300mbit"
[[tunnel.paths]]
name = "b"
id = 1
interface = "wan1"
remote = "10.10.3.2"
rate = "80mbit"
priority = 1
[[tunnel.classes]]
name = "voice"
scheduler = "redundant"
match = { dscp = [46] }
"#;

fn run(name: &str, lan: Vec<Vec<u8>>, wan0: Vec<Vec<u8>>, wan1: Vec<Vec<u8>>) -> GoldenRun {
    assert_eq!(pcap_mac(2), WAN1_MAC);
    GoldenRun::run(
        name,
        &[("lan", lan), ("wan0", wan0), ("wan1", wan1)],
        CONFIG,
    )
}

/// An IPv4 packet (no Ethernet) from `src` to `dst`: UDP with `payload`.
fn inner_udp(src: [u8; 4], dst: [u8; 4], ttl: u8, dscp: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, ttl, IpNumber::UDP, src, dst).expect("ip header");
    ip.dscp = Ipv4Dscp::try_new(dscp).expect("dscp");
    ip.dont_fragment = df;
    let mut v = Vec::new();
    PacketBuilder::ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .udp(40000, 5001)
        .write(&mut v, payload)
        .expect("build");
    v
}

fn with_eth(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + ip.len());
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    v.extend_from_slice(&[0x08, 0x00]);
    v.extend_from_slice(ip);
    v
}

/// `ip` with its TTL one lower and the header checksum recomputed.
fn hop(ip: &[u8]) -> Vec<u8> {
    let mut v = ip.to_vec();
    v[8] -= 1;
    let (mut h, _) = Ipv4Header::from_slice(&v).expect("ip");
    h.header_checksum = h.calc_header_checksum();
    v[10..12].copy_from_slice(&h.header_checksum.to_be_bytes());
    v
}

/// The tunnel header as docs/wire-format.md draws it.
#[allow(clippy::too_many_arguments)]
fn tunnel_header(
    kind: u8,
    flags: u8,
    path: u8,
    key: u16,
    lane: u16,
    epoch: u16,
    lane_seq: u32,
    path_seq: u32,
    sent_us: u32,
) -> Vec<u8> {
    let mut h = vec![0x30 | kind, flags << 4 | path];
    h.extend_from_slice(&key.to_be_bytes());
    h.extend_from_slice(&lane.to_be_bytes());
    h.extend_from_slice(&epoch.to_be_bytes());
    h.extend_from_slice(&lane_seq.to_be_bytes());
    h.extend_from_slice(&path_seq.to_be_bytes());
    h.extend_from_slice(&sent_us.to_be_bytes());
    h
}

/// A full outer frame: Ethernet, IPv4 (DF, TTL 64, `tos`), UDP with a zero
/// checksum, then `tunnel_payload` (header and what follows).
#[allow(clippy::too_many_arguments)]
fn outer_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    tos: u8,
    tunnel_payload: &[u8],
) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber::UDP, src, dst).expect("ip");
    ip.dont_fragment = true;
    ip.dscp = Ipv4Dscp::try_new(tos >> 2).expect("dscp");
    ip.ecn = Ipv4Ecn::try_new(tos & 3).expect("ecn");
    let mut v = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .udp(sport, TUNNEL_PORT)
        .write(&mut v, tunnel_payload)
        .expect("build");
    v[40..42].copy_from_slice(&[0, 0]);
    v
}

fn is_arp(f: &[u8]) -> bool {
    f.len() >= 14 && f[12..14] == [0x08, 0x06]
}

/// The tunnel header of an outer frame.
fn header_of(f: &[u8]) -> &[u8] {
    &f[42..62]
}

fn epoch_of(f: &[u8]) -> u16 {
    u16::from_be_bytes([f[48], f[49]])
}

fn sent_us_of(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[58], f[59], f[60], f[61]])
}

#[test]
fn packets_leave_each_path_encapsulated_byte_for_byte() {
    let plain = inner_udp(HOST, REMOTE_HOST, 64, 0, false, b"to the far site");
    let voice = inner_udp(HOST, REMOTE_HOST, 64, 46, false, b"voice, twice");
    let big_df = inner_udp(HOST, REMOTE_HOST, 64, 0, true, &[7u8; 1472]);
    let big = inner_udp(HOST, REMOTE_HOST, 64, 0, false, &[7u8; 1472]);
    assert_eq!(big_df.len(), 1500);
    let lan = [&plain, &voice, &big_df, &big]
        .iter()
        .map(|ip| with_eth(LAN_MAC, HOST_MAC, ip))
        .collect();
    let run = run("tunnel-encap", lan, vec![], vec![]);

    let a = run.sent("wan0", 0);
    let b = run.sent("wan1", 0);
    assert_eq!(a.len(), 2, "path a: the plain packet and one voice copy");
    assert_eq!(b.len(), 1, "path b: the other voice copy");
    let epoch = epoch_of(&a[0]);
    assert_ne!(epoch, 0, "an epoch is never 0");
    assert!(a.iter().chain(&b).all(|f| epoch_of(f) == epoch));
    // Worker 0: the plain packet leaves on lane 0 with sequence 0; the voice
    // packet (EF: the real-time tier) on lane 32, worker 0's urgent lane,
    // also with sequence 0 there, on both paths. Each lane numbers each
    // path's packets on its own, and the source port is 49152 + lane.
    let expect = |f: &[u8],
                  (dst_mac, src_mac, src, dst): ([u8; 6], [u8; 6], [u8; 4], [u8; 4]),
                  (path, lane, lane_seq, path_seq): (u8, u16, u32, u32),
                  tos,
                  inner: &[u8]| {
        let mut payload = tunnel_header(
            0,
            0,
            path,
            0,
            lane,
            epoch,
            lane_seq,
            path_seq,
            sent_us_of(f),
        );
        payload.extend_from_slice(&hop(inner));
        outer_frame(dst_mac, src_mac, src, dst, 49152 + lane, tos, &payload)
    };
    let path_a = (PEER0_MAC, WAN0_MAC, WAN0_IP, PEER0);
    let path_b = (PEER1_MAC, WAN1_MAC, WAN1_IP, PEER1);
    assert_eq!(a[0], expect(&a[0], path_a, (0, 0, 0, 1), 0, &plain));
    assert_eq!(a[1], expect(&a[1], path_a, (0, 32, 0, 1), 46 << 2, &voice));
    assert_eq!(b[0], expect(&b[0], path_b, (1, 32, 0, 1), 46 << 2, &voice));
    assert_eq!(
        header_of(&a[1])[8..12],
        header_of(&b[0])[8..12],
        "the copies share the lane sequence"
    );

    // The DF packet over the inner MTU (1500 - 48 = 1452) gets fragmentation
    // needed with that MTU; the other is dropped. Nothing else on the LAN.
    let errors: Vec<_> = run
        .sent("lan", 1)
        .into_iter()
        .filter(|f| !is_arp(f))
        .collect();
    assert_eq!(errors.len(), 1, "one ICMP error");
    let e = &errors[0];
    assert_eq!((e[34], e[35]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([e[40], e[41]]), 1452, "next-hop MTU");
    assert_eq!(&e[0..6], &HOST_MAC);
    assert_eq!(&e[26..30], &LAN_IP);
    assert_eq!(&e[42..62], &big_df[..20], "quotes the packet");
    assert!(run.sent("lan", 0).is_empty());
    assert_eq!(run.drops("tunnel_mtu_df"), 1);
    assert_eq!(run.drops("tunnel_mtu_no_df"), 1);
    assert_eq!(
        run.stats["drops_total"].as_u64(),
        Some(2),
        "{}",
        run.stats["drops"]
    );
    // The management queues carry only the gratuitous ARP, the probe and BFD control
    // packets: RFC 5881 single hop, UDP from 49152 + path to 3784, TTL 255, CS6, to the
    // peer's address on the path.
    let mut bfd = 0;
    for (port, peer) in [("wan0", PEER0), ("wan1", PEER1)] {
        for f in run.sent(port, 1) {
            if is_bfd(&f) {
                bfd += 1;
                assert_eq!(f[22], 255, "{port}: BFD TTL 255");
                assert_eq!(f[15] >> 2, 48, "{port}: CS6");
                assert_eq!(&f[30..34], &peer, "{port}: to the peer");
                assert_eq!(f.len(), 14 + 20 + 8 + 24, "{port}: no authentication");
                continue;
            }
            assert!(
                is_arp(&f) || header_of(&f)[0] == 0x31,
                "{port}: unexpected {f:?}"
            );
        }
    }
    assert!(bfd >= 2, "a BFD session on each path: {bfd} packets");
    run.assert_no_mbuf_leaked();
}

/// UDP to port 3784 (BFD single hop).
fn is_bfd(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 17 && f[36..38] == 3784u16.to_be_bytes()
}

/// A data packet from the peer on path 0 (wan0) or 1 (wan1), lane 0.
fn from_peer(path: u8, lane_seq: u32, inner: &[u8]) -> Vec<u8> {
    let (dst_mac, src_mac, src, dst) = match path {
        0 => (WAN0_MAC, PEER0_MAC, PEER0, WAN0_IP),
        _ => (WAN1_MAC, PEER1_MAC, PEER1, WAN1_IP),
    };
    let mut payload = tunnel_header(
        0,
        0,
        path,
        0,
        0,
        0x7777,
        lane_seq,
        lane_seq + 1,
        1_000 + lane_seq,
    );
    payload.extend_from_slice(inner);
    outer_frame(dst_mac, src_mac, src, dst, 49152, 0, &payload)
}

#[test]
fn peer_packets_come_out_decapsulated_in_order_and_bad_ones_are_counted() {
    let inner: Vec<Vec<u8>> = (0..7u8)
        .map(|i| inner_udp(REMOTE_HOST, HOST, 60, 0, false, &[i; 30]))
        .collect();
    let good = from_peer(0, 0, &inner[0]);
    let mut wan0 = vec![
        from_peer(0, 0, &inner[0]),
        from_peer(0, 1, &inner[1]),
        from_peer(0, 2, &inner[2]),
        // 3 and 4 are lost: 5 waits, until path b's packet 6 proves them lost.
        from_peer(0, 5, &inner[5]),
        // A second copy of 1: a duplicate.
        from_peer(0, 1, &inner[1]),
        // Far beyond the window.
        from_peer(0, 3 + (1 << 21), &inner[3]),
    ];
    let bad = |at: usize, v: u8, reason: &'static str, wan0: &mut Vec<Vec<u8>>| {
        let mut f = good.clone();
        f[at] = v;
        wan0.push(f);
        reason
    };
    let mut reasons = vec![
        bad(42, 0x20, "tunnel_bad_version", &mut wan0),
        bad(42, 0x39, "tunnel_bad_type", &mut wan0),
        bad(43, 5, "tunnel_unknown_path", &mut wan0),
        // Sealed (a key id) to a tunnel in clear.
        bad(45, 1, "tunnel_unknown_key", &mut wan0),
        // A handshake to a tunnel in clear.
        bad(42, 0x33, "tunnel_cleartext", &mut wan0),
        bad(46, 1, "tunnel_bad_lane", &mut wan0), // lane 256
        bad(62 + 10, 0xff, "tunnel_bad_inner", &mut wan0), // inner checksum
    ];
    // A tunnel header cut short (the UDP length says 8 + 10 bytes).
    let mut short = good[..52].to_vec();
    short[16..18].copy_from_slice(&38u16.to_be_bytes());
    short[38..40].copy_from_slice(&18u16.to_be_bytes());
    let (mut h, _) = Ipv4Header::from_slice(&short[14..]).expect("ip");
    h.header_checksum = h.calc_header_checksum();
    short[24..26].copy_from_slice(&h.header_checksum.to_be_bytes());
    wan0.push(short);
    reasons.push("tunnel_truncated");
    // From an address that is not the peer's on this path.
    let mut stranger = good.clone();
    stranger[29] = 9;
    let (mut h, _) = Ipv4Header::from_slice(&stranger[14..]).expect("ip");
    h.header_checksum = h.calc_header_checksum();
    stranger[24..26].copy_from_slice(&h.header_checksum.to_be_bytes());
    wan0.push(stranger);
    reasons.push("tunnel_unknown_path");
    // A probe (with the peer's count of packets it received from us): answered
    // by the management lcore on the same path.
    let mut probe_payload = tunnel_header(1, 1, 0, 0, 0xffff, 0x7777, 0, 42, 123_456);
    probe_payload.extend_from_slice(&77u32.to_be_bytes()); // the probe's number
    probe_payload.extend_from_slice(&0u32.to_be_bytes());
    let probe = outer_frame(
        WAN0_MAC,
        PEER0_MAC,
        PEER0,
        WAN0_IP,
        49152,
        0xc0,
        &probe_payload,
    );
    wan0.push(probe);
    let wan1 = vec![from_peer(1, 6, &inner[6])];
    let run = run("tunnel-decap", vec![], wan0, wan1);

    let lan = run.sent("lan", 0);
    let want: Vec<Vec<u8>> = [0, 1, 2, 5, 6]
        .iter()
        .map(|i| with_eth(HOST_MAC, LAN_MAC, &hop(&inner[*i])))
        .collect();
    assert_eq!(
        lan, want,
        "decapsulated, routed on, in lane order, nothing else"
    );
    let drops = &run.stats["drops"];
    let mut want_drops = std::collections::BTreeMap::new();
    for r in reasons
        .iter()
        .chain(&["tunnel_duplicate", "tunnel_out_of_window"])
    {
        *want_drops.entry(*r).or_insert(0u64) += 1;
    }
    for (r, n) in &want_drops {
        assert_eq!(drops[r].as_u64(), Some(*n), "{r}: {drops}");
    }
    assert_eq!(
        run.stats["drops_total"].as_u64(),
        Some(want_drops.values().sum()),
        "nothing else dropped: {drops}"
    );
    // The probe reply: same path, control lane, echoing the probe's time.
    let replies: Vec<_> = run
        .sent("wan0", 1)
        .into_iter()
        .filter(|f| !is_arp(f) && header_of(f)[0] == 0x32)
        .collect();
    assert_eq!(replies.len(), 1, "one probe reply");
    let r = &replies[0];
    assert_eq!(&r[0..6], &PEER0_MAC);
    assert_eq!(&r[26..30], &WAN0_IP);
    assert_eq!(&r[30..34], &PEER0);
    assert_eq!(
        &header_of(r)[1..6],
        &[0x10, 0, 0, 0xff, 0xff],
        "unordered, path 0, key 0, control lane"
    );
    assert_eq!(&r[62..66], &77u32.to_be_bytes(), "the probe's number");
    assert_eq!(&r[66..70], &123_456u32.to_be_bytes(), "echoed send time");
    assert_eq!(
        r.len(),
        62 + 20,
        "number, echo, forward delay, hold time, received count"
    );
    run.assert_no_mbuf_leaked();
}
