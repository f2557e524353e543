//! The real appliance binary on `net_pcap` vdevs: frames in from pcap files,
//! what it sends compared byte by byte, final counters and the mempool
//! checked. No root or network needed.

use etherparse::{EtherType, Ethernet2Header, PacketBuilder, SlicedPacket};
use testbed::golden::{read_pcap, GoldenRun};

/// net_pcap gives port N the MAC 02:70:63:61:70:N ("pcap").
const LAN_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const WAN_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x01];
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x22];
const HOST: [u8; 4] = [10, 10, 1, 10];
const LAN_IP: [u8; 4] = [10, 10, 1, 1];

fn udp(dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, LAN_MAC)
        .ipv4(HOST, dst, ttl)
        .udp(4000, 5000)
        .write(&mut v, payload)
        .expect("build");
    v
}

fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    Ethernet2Header {
        source: HOST_MAC,
        destination: [0xff; 6],
        ether_type: EtherType::ARP,
    }
    .write(&mut v)
    .expect("eth");
    v.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    v.extend_from_slice(&HOST_MAC);
    v.extend_from_slice(&HOST);
    v.extend_from_slice(&[0; 6]);
    v.extend_from_slice(&target);
    v
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn refresh_ip_checksum(f: &mut [u8]) {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = ip_checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// The malformed set, each with the drop reason it must be counted under.
fn malformed() -> Vec<(Vec<u8>, &'static str)> {
    let good = udp([10, 20, 5, 5], 64, &[0xaa; 40]);
    let mut v = vec![
        (good[..10].to_vec(), "eth_truncated"),
        (good[..30].to_vec(), "ip_truncated"),
    ];
    let mut f = good.clone();
    f[14] = 0x44;
    v.push((f, "ip_bad_header"));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&1400u16.to_be_bytes());
    refresh_ip_checksum(&mut f);
    v.push((f, "ip_bad_total_length"));
    let mut f = good.clone();
    f[24] ^= 0x55;
    v.push((f, "ip_bad_checksum"));
    let mut f = good[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&good[34..]);
    f[14] = 0x46;
    let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&tl.to_be_bytes());
    refresh_ip_checksum(&mut f);
    v.push((f, "ip_options"));
    let mut f = good.clone();
    f[20] = 0x20;
    refresh_ip_checksum(&mut f);
    v.push((f, "ip_fragment"));
    let mut f = good.clone();
    f[38..40].copy_from_slice(&200u16.to_be_bytes()); // UDP length past the datagram
    v.push((f, "udp_truncated"));
    let mut f = good.clone();
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    v.push((f, "ip6_disabled")); // IPv6 on a port with no IPv6 address
    let mut f = good.clone();
    f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    v.push((f, "ethertype_unsupported")); // a VLAN tag
    v
}

type Run = GoldenRun;

fn run_appliance(name: &str, lan_in: &[Vec<u8>]) -> Run {
    run_appliance_with(name, lan_in, "")
}

/// Runs with `extra` appended to the config (e.g. relay rules).
fn run_appliance_with(name: &str, lan_in: &[Vec<u8>], extra: &str) -> Run {
    let config = format!(
        r#"
[[interfaces]]
port = "lan"
address = "10.10.1.1/24"
[[interfaces]]
port = "wan"
address = "10.10.2.1/24"
[[routes]]
prefix = "10.20.0.0/16"
via = "10.10.2.2"
[[neighbors]]
address = "10.10.2.2"
mac = "02:00:00:00:00:22"
[control]
socket = "{{socket}}"
metrics = ""
{extra}
"#
    );
    GoldenRun::run(
        name,
        &[("lan", lan_in.to_vec()), ("wan", Vec::new())],
        &config,
    )
}

fn is_arp(f: &[u8]) -> bool {
    f.len() >= 14 && f[12..14] == [0x08, 0x06]
}

#[test]
fn arp_icmp_routing_and_malformed_frames() {
    let mut input = vec![arp_request(LAN_IP)];
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, LAN_MAC)
        .ipv4(HOST, LAN_IP, 64)
        .icmpv4_echo_request(0x1234, 1)
        .write(&mut echo, b"ping payload")
        .expect("echo");
    input.push(echo);
    let routed = udp([10, 20, 5, 5], 64, b"routed payload");
    input.push(routed.clone());
    let bad = malformed();
    input.extend(bad.iter().map(|(f, _)| f.clone()));
    let run = run_appliance("main", &input);

    // Management queue of lan (q1): gratuitous ARP, ARP reply, echo reply.
    let lan_mgmt = read_pcap(&run.dir.join("lan.out.q1.pcap"));
    let garps: Vec<_> = lan_mgmt
        .iter()
        .filter(|f| is_arp(f) && f[0..6] == [0xff; 6])
        .collect();
    assert_eq!(garps.len(), 1, "one gratuitous ARP on lan");
    assert_eq!(&garps[0][28..32], &LAN_IP, "GARP sender is our address");
    assert_eq!(&garps[0][38..42], &LAN_IP, "GARP target is our address");
    let replies: Vec<_> = lan_mgmt
        .iter()
        .filter(|f| is_arp(f) && f[0..6] == HOST_MAC)
        .collect();
    assert_eq!(replies.len(), 1, "one ARP reply");
    let r = replies[0];
    assert_eq!(&r[20..22], &[0, 2], "opcode reply");
    assert_eq!(&r[22..28], &LAN_MAC);
    assert_eq!(&r[28..32], &LAN_IP);
    assert_eq!(&r[32..38], &HOST_MAC);
    assert_eq!(&r[38..42], &HOST);
    let echo_replies: Vec<_> = lan_mgmt.iter().filter(|f| !is_arp(f)).collect();
    assert_eq!(echo_replies.len(), 1, "one echo reply and nothing else");
    let p = SlicedPacket::from_ethernet(echo_replies[0]).expect("parse echo reply");
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source(), LAN_IP);
    assert_eq!(ip.header().destination(), HOST);
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let Some(etherparse::TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("not ICMP")
    };
    assert!(
        matches!(icmp.icmp_type(), etherparse::Icmpv4Type::EchoReply(e) if e.id == 0x1234 && e.seq == 1)
    );
    assert_eq!(icmp.payload(), b"ping payload");
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    assert!(
        read_pcap(&run.dir.join("lan.out.q0.pcap")).is_empty(),
        "the worker sends nothing back on lan"
    );

    // The routed packet leaves wan from the worker's queue, TTL - 1.
    let wan_worker = read_pcap(&run.dir.join("wan.out.q0.pcap"));
    assert_eq!(
        wan_worker.len(),
        1,
        "exactly the routed packet: {wan_worker:?}"
    );
    let f = &wan_worker[0];
    assert_eq!(&f[0..6], &GW_MAC, "to the next hop's MAC");
    assert_eq!(&f[6..12], &WAN_MAC, "from our wan MAC");
    let mut expected = routed.clone();
    expected[0..6].copy_from_slice(&GW_MAC);
    expected[6..12].copy_from_slice(&WAN_MAC);
    expected[22] -= 1;
    refresh_ip_checksum(&mut expected);
    assert_eq!(f, &expected, "only MACs, TTL and IP checksum change");
    let wan_mgmt = read_pcap(&run.dir.join("wan.out.q1.pcap"));
    assert_eq!(wan_mgmt.len(), 1, "only the gratuitous ARP on wan");
    assert!(is_arp(&wan_mgmt[0]));

    // Counters: every malformed frame under its reason, nothing else dropped.
    let drops = &run.stats["drops"];
    for (_, reason) in &bad {
        assert_eq!(
            drops[reason].as_u64(),
            Some(1),
            "drop reason {reason}: {drops}"
        );
    }
    assert_eq!(
        run.stats["drops_total"].as_u64(),
        Some(bad.len() as u64),
        "{drops}"
    );
    assert_eq!(
        run.stats["rx_packets"][0].as_u64(),
        Some(input.len() as u64)
    );
    assert_eq!(run.stats["slowpath"]["echo_replies_sent"].as_u64(), Some(1));
    assert_eq!(run.stats["slowpath"]["arp_replies_sent"].as_u64(), Some(1));
    run.assert_no_mbuf_leaked();
}

#[test]
fn ttl_expiry_and_no_route_send_icmp_errors() {
    let expiring = udp([10, 20, 5, 5], 1, b"dies here");
    let unroutable = udp([192, 0, 2, 1], 64, b"nowhere");
    let to_us_udp = udp(LAN_IP, 64, b"closed port");
    let run = run_appliance("icmp", &[expiring.clone(), unroutable.clone(), to_us_udp]);
    let lan_mgmt: Vec<_> = read_pcap(&run.dir.join("lan.out.q1.pcap"))
        .into_iter()
        .filter(|f| !is_arp(f))
        .collect();
    assert_eq!(lan_mgmt.len(), 3, "three ICMP errors");
    let kinds: Vec<(u8, u8)> = lan_mgmt.iter().map(|f| (f[34], f[35])).collect();
    assert_eq!(
        kinds,
        vec![(11, 0), (3, 0), (3, 3)],
        "time exceeded, net unreachable, port unreachable"
    );
    for f in &lan_mgmt {
        assert_eq!(&f[0..6], &HOST_MAC);
        assert_eq!(
            &f[26..30],
            &LAN_IP,
            "from the interface the packet came in on"
        );
        assert_eq!(&f[30..34], &HOST);
        assert_eq!(ip_checksum(&f[14..34]), 0, "valid IP checksum");
    }
    assert_eq!(
        &lan_mgmt[0][42..70],
        &expiring[14..42],
        "quotes the IP header and 8 bytes"
    );
    let drops = &run.stats["drops"];
    assert_eq!(drops["ttl_expired"].as_u64(), Some(1));
    assert_eq!(drops["no_route"].as_u64(), Some(1));
    assert_eq!(drops["local_unsupported"].as_u64(), Some(1));
    run.assert_no_mbuf_leaked();
}

/// UDP from `src` to `dst`, addressed to the appliance's LAN MAC.
fn udp_from(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, LAN_MAC)
        .ipv4(src, dst, 64)
        .udp(4000, 5000)
        .write(&mut v, b"martian")
        .expect("build");
    v
}

/// RFC 1812 §5.3.7: martian sources (this network, loopback, class E with the limited
/// broadcast, our subnets' broadcasts) are dropped before routing and relaying, to any
/// destination, routed, ours, unroutable or a relayed group; martian destinations are not
/// routed. Each is counted under its reason, and nothing is sent: no forwarded copy, no
/// relayed copy, no ICMP error.
#[test]
fn martian_sources_and_destinations_are_dropped_silently() {
    let sources: [[u8; 4]; 7] = [
        [0, 0, 0, 0],
        [0, 10, 1, 10],
        [127, 0, 0, 1],
        [240, 0, 0, 1],
        [255, 255, 255, 254],
        [10, 10, 1, 255], // the broadcast of the subnet it arrived on
        [10, 10, 2, 255], // the other subnet's
    ];
    let mut input = Vec::new();
    for src in sources {
        for dst in [[10, 20, 5, 5], LAN_IP, [192, 0, 2, 1]] {
            input.push(udp_from(src, dst));
        }
        let mut m = to_group([239, 1, 1, 1], 5000, 8, b"stream");
        m[26..30].copy_from_slice(&src);
        refresh_ip_checksum(&mut m);
        input.push(m);
    }
    let martian_sources = input.len() as u64;
    for dst in [
        [0, 0, 0, 1],
        [127, 0, 0, 1],
        [240, 1, 2, 3],
        [255, 255, 255, 254],
    ] {
        input.push(udp_from(HOST, dst));
    }
    let run = run_appliance_with(
        "martians",
        &input,
        "[[mcast_rules]]\ninput = { interface = \"lan\", group = \"239.1.1.1\", port = 5000 }\noutputs = [{ interface = \"wan\", destination = \"239.10.1.1\", port = 6000 }]\n",
    );
    for (port, q) in [("lan", 0), ("lan", 1), ("wan", 0), ("wan", 1)] {
        let sent: Vec<_> = run
            .sent(port, q)
            .into_iter()
            // ARP and the relay's IGMP joins aside.
            .filter(|f| !(is_arp(f) || (f.len() > 23 && f[23] == 2)))
            .collect();
        assert!(sent.is_empty(), "{port} q{q} sent {} frames", sent.len());
    }
    assert_eq!(run.drops("ip_martian_source"), martian_sources);
    assert_eq!(run.drops("ip_martian_destination"), 4);
    assert_eq!(run.drops("no_route"), 0, "no ICMP about a martian");
    assert_eq!(run.stats["slowpath"]["icmp_errors_sent"].as_u64(), Some(0));
    run.assert_no_mbuf_leaked();
}

/// A UDP frame to a group, as a sender on the lan would send it.
fn to_group(group: [u8; 4], port: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let o = group;
    PacketBuilder::ethernet2(HOST_MAC, [1, 0, 0x5e, o[1] & 0x7f, o[2], o[3]])
        .ipv4(HOST, group, ttl)
        .udp(4000, port)
        .write(&mut v, payload)
        .expect("build");
    v
}

/// What a relayed copy must be, built independently with etherparse.
fn relayed(
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(WAN_MAC, dst_mac)
        .ipv4(src, dst, ttl)
        .udp(4000, port)
        .write(&mut v, payload)
        .expect("build");
    v
}

const RELAY_RULES: &str = r#"
[[mcast_rules]]
input = { interface = "lan", group = "239.1.1.1", port = 5000 }
outputs = [{ interface = "wan", destination = "239.10.1.1", port = 6000 }]
[[mcast_rules]]
input = { interface = "lan", group = "239.1.1.2", port = 5000 }
outputs = [
  { interface = "wan", destination = "239.10.1.2", port = 6000 },
  { interface = "wan", destination = "239.10.2.2", port = 6001, source = "keep", ttl = 16, dscp = 46 },
  { interface = "wan", destination = "10.10.2.2", port = 7000 },
]
[[mcast_rules]]
input = { interface = "lan", group = "239.1.1.3", port = 5000 }
outputs = [
  { interface = "wan", destination = "239.10.1.3", port = 6000 },
  { interface = "wan", destination = "10.10.2.77", port = 6000 },
]
"#;

#[test]
fn multicast_relay_rewrite_and_fan_out() {
    let big: Vec<u8> = (0..300u16).map(|i| (i % 251) as u8).collect();
    let one = to_group([239, 1, 1, 1], 5000, 8, b"one to one");
    let fan = to_group([239, 1, 1, 2], 5000, 8, &big);
    let dying = to_group([239, 1, 1, 3], 5000, 1, b"ttl 1");
    let unmatched = to_group([239, 1, 1, 9], 5000, 8, b"nobody");
    let mut fragment = to_group([239, 1, 1, 1], 5000, 8, b"first fragment");
    fragment[20] = 0x20;
    refresh_ip_checksum(&mut fragment);
    let mut no_sum = to_group([239, 1, 1, 1], 5000, 8, b"no checksum");
    no_sum[40..42].copy_from_slice(&[0, 0]);
    // An IGMPv3 general query (Max Resp 1 s) from a router on lan.
    let mut query = Vec::new();
    query.extend_from_slice(&[1, 0, 0x5e, 0, 0, 1]);
    query.extend_from_slice(&HOST_MAC);
    query.extend_from_slice(&[0x08, 0x00, 0x46, 0xc0, 0, 36, 0, 0, 0x40, 0, 1, 2, 0, 0]);
    query.extend_from_slice(&HOST);
    query.extend_from_slice(&[224, 0, 0, 1, 0x94, 4, 0, 0]);
    let mut igmp_query = [0x11, 10, 0, 0, 0, 0, 0, 0, 2, 125, 0, 0];
    let c = ip_checksum(&igmp_query);
    igmp_query[2..4].copy_from_slice(&c.to_be_bytes());
    query.extend_from_slice(&igmp_query);
    refresh_ip_checksum(&mut query);
    let input = vec![one, fan, dying, unmatched, fragment, no_sum, query];
    let run = run_appliance_with("relay", &input, RELAY_RULES);

    let wan: Vec<_> = read_pcap(&run.dir.join("wan.out.q0.pcap"));
    let wan_ip = [10, 10, 2, 1];
    let mut expected = vec![
        relayed(
            [1, 0, 0x5e, 10, 1, 1],
            wan_ip,
            [239, 10, 1, 1],
            7,
            6000,
            b"one to one",
        ),
        relayed(
            [1, 0, 0x5e, 10, 1, 2],
            wan_ip,
            [239, 10, 1, 2],
            7,
            6000,
            &big,
        ),
    ];
    let mut dscp = relayed(
        [1, 0, 0x5e, 10, 2, 2],
        HOST,
        [239, 10, 2, 2],
        16,
        6001,
        &big,
    );
    dscp[15] = 46 << 2;
    refresh_ip_checksum(&mut dscp);
    expected.push(dscp);
    expected.push(relayed(GW_MAC, wan_ip, [10, 10, 2, 2], 7, 7000, &big));
    let mut zero = relayed(
        [1, 0, 0x5e, 10, 1, 1],
        wan_ip,
        [239, 10, 1, 1],
        7,
        6000,
        b"no checksum",
    );
    zero[40..42].copy_from_slice(&[0, 0]);
    expected.push(zero);
    assert_eq!(wan.len(), expected.len(), "copies on wan: {wan:02x?}");
    for (i, (got, want)) in wan.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "copy {i} differs");
    }

    let rules = run.stats["mcast"]["rules"]
        .as_array()
        .expect("rules")
        .clone();
    let rx: Vec<u64> = rules
        .iter()
        .map(|r| r["rx_packets"].as_u64().unwrap_or(99))
        .collect();
    assert_eq!(
        rx,
        vec![3, 1, 1],
        "matched packets per rule (fragment included)"
    );
    assert_eq!(rules[0]["drops"]["ip_fragment"].as_u64(), Some(1));
    let tx = |r: usize, o: usize| rules[r]["outputs"][o]["tx_packets"].as_u64();
    assert_eq!(
        (tx(0, 0), tx(1, 0), tx(1, 1), tx(1, 2), tx(2, 0)),
        (Some(2), Some(1), Some(1), Some(1), Some(0))
    );
    assert_eq!(
        rules[2]["outputs"][0]["drops"]["mcast_ttl_expired"].as_u64(),
        Some(1)
    );
    assert_eq!(
        rules[1]["outputs"][0]["tx_bytes"].as_u64(),
        Some(expected[1].len() as u64)
    );
    let drops = &run.stats["drops"];
    assert_eq!(drops["mcast_no_rule"].as_u64(), Some(1), "{drops}");
    assert_eq!(drops["ip_fragment"].as_u64(), Some(1), "{drops}");
    assert_eq!(drops["mcast_ttl_expired"].as_u64(), Some(1), "{drops}");
    assert_eq!(drops["mcast_unresolved"].as_u64(), Some(1), "{drops}");
    assert_eq!(run.stats["drops_total"].as_u64(), Some(4), "{drops}");
    run.assert_no_mbuf_leaked();

    // IGMP on lan from the management queue: a v3 report joining the three
    // input groups (any source) at start, and one leaving them at exit.
    let igmp: Vec<_> = read_pcap(&run.dir.join("lan.out.q1.pcap"))
        .into_iter()
        .filter(|f| !is_arp(f))
        .collect();
    assert!(igmp.len() >= 2, "join and leave: {igmp:02x?}");
    for f in &igmp {
        assert_eq!(&f[0..6], &[1, 0, 0x5e, 0, 0, 22], "to 224.0.0.22's MAC");
        assert_eq!(&f[6..12], &LAN_MAC);
        assert_eq!(
            (f[14], f[15], f[22], f[23]),
            (0x46, 0xc0, 1, 2),
            "IHL 6, TOS 0xc0, TTL 1, IGMP"
        );
        assert_eq!(&f[20..22], &[0x40, 0], "DF");
        assert_eq!(&f[26..30], &LAN_IP);
        assert_eq!(&f[30..34], &[224, 0, 0, 22]);
        assert_eq!(&f[34..38], &[0x94, 4, 0, 0], "Router Alert");
        assert_eq!(ip_checksum(&f[14..38]), 0);
        assert_eq!(f[38], 0x22, "v3 report");
        assert_eq!(u16::from_be_bytes([f[44], f[45]]), 3, "three records");
    }
    let record_types = |f: &[u8]| (0..3).map(|i| f[46 + 8 * i]).collect::<Vec<_>>();
    let groups = |f: &[u8]| {
        (0..3)
            .map(|i| f[50 + 8 * i..54 + 8 * i].to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        record_types(&igmp[0]),
        vec![4, 4, 4],
        "CHANGE_TO_EXCLUDE {{}}"
    );
    assert_eq!(
        groups(&igmp[0]),
        vec![vec![239, 1, 1, 1], vec![239, 1, 1, 2], vec![239, 1, 1, 3]]
    );
    let last = igmp.last().expect("leave");
    assert_eq!(
        record_types(last),
        vec![3, 3, 3],
        "CHANGE_TO_INCLUDE {{}} at exit"
    );
    assert!(
        igmp.iter().any(|f| record_types(f) == vec![2, 2, 2]),
        "the general query is answered with MODE_IS_EXCLUDE {{}} for each group"
    );
    assert_eq!(run.stats["slowpath"]["igmp_received"].as_u64(), Some(1));
}

/// The widest rule the relay takes: 64 outputs. Every copy of every packet is on the wire,
/// byte-identical to one built independently, and each output counted its own.
#[test]
fn a_64_way_fan_out_sends_every_copy() {
    const OUTPUTS: u8 = 64;
    let outputs: Vec<String> = (1..=OUTPUTS)
        .map(|k| {
            format!(
                r#"{{ interface = "wan", destination = "239.10.3.{k}", port = {} }}"#,
                6000 + u16::from(k)
            )
        })
        .collect();
    let rules = format!(
        "[[mcast_rules]]\ninput = {{ interface = \"lan\", group = \"239.1.1.4\", port = 5000 }}\noutputs = [\n{}\n]\n",
        outputs.join(",\n")
    );
    let payloads: [&[u8]; 2] = [b"first of two", b"second of two, a little longer"];
    let input: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| to_group([239, 1, 1, 4], 5000, 8, p))
        .collect();
    let run = run_appliance_with("fan64", &input, &rules);

    let wan = read_pcap(&run.dir.join("wan.out.q0.pcap"));
    let expected: Vec<Vec<u8>> = payloads
        .iter()
        .flat_map(|p| {
            (1..=OUTPUTS).map(move |k| {
                relayed(
                    [1, 0, 0x5e, 10, 3, k],
                    [10, 10, 2, 1],
                    [239, 10, 3, k],
                    7,
                    6000 + u16::from(k),
                    p,
                )
            })
        })
        .collect();
    assert_eq!(wan.len(), expected.len(), "every copy on wan");
    for (i, (got, want)) in wan.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "copy {i} differs");
    }
    let rule = &run.stats["mcast"]["rules"][0];
    assert_eq!(rule["rx_packets"].as_u64(), Some(2), "{rule}");
    let outs = rule["outputs"].as_array().expect("outputs");
    assert_eq!(outs.len(), usize::from(OUTPUTS));
    for o in outs {
        assert_eq!(o["tx_packets"].as_u64(), Some(2), "{o}");
    }
    assert_eq!(run.stats["drops_total"].as_u64(), Some(0));
    run.assert_no_mbuf_leaked();
}
