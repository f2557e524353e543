//! Any frame on any port through the whole per-packet pipeline, with
//! routes, a resolved neighbour and a multicast rule: a verdict, never a
//! panic; a relayed frame's rewritten headers never panic either.
#![no_main]

use std::sync::Arc;

use appliance::config::mcast::McastRuleSpec;
use appliance::dataplane::mcast_headers::{write_headers, TxOffload, HEADERS_LEN};
use appliance::dataplane::pipeline::{process, Ingress, Verdict};
use appliance::tables::{
    Interface, L2Dest, McastRule, McastTable, Neighbor, NextHop, NextHop6, OwnAddresses, Route, Route6, Route6Table,
    RouteKind, RouteTable, Tables,
};
use appliance::wire::MacAddr;
use libfuzzer_sys::fuzz_target;

fn tables() -> Tables {
    let iface = |name: &str, id: u16, addr: &str, addr6: &str| Interface {
        name: name.into(),
        port_id: id,
        mac: MacAddr([2, 0, 0, 0, 0, 1 + id as u8]),
        address: addr.parse().ok(),
        address6: addr6.parse().ok(),
        mtu: 1500,
        tx_ipv4_cksum: id == 1,
        tx_udp_cksum: id == 1,
        kernel_iface: None,
    };
    let interfaces =
        vec![iface("lan", 0, "10.0.1.1/24", "fd00:1::1/64"), iface("wan", 1, "10.0.2.1/24", "fd00:2::1/64")];
    let mut routes = Vec::new();
    for (p, hop) in [("10.0.1.0/24", NextHop::Connected { port: 0 }), ("0.0.0.0/0", NextHop::Gateway { via: [10, 0, 2, 2].into(), port: 1 })] {
        if let Ok(prefix) = p.parse() {
            routes.push(Route { prefix, next_hop: hop, kind: RouteKind::Static });
        }
    }
    let mut routes6 = Vec::new();
    for (p, hop) in [
        ("fd00:1::/64", NextHop6::Connected { port: 0 }),
        ("::/0", NextHop6::Gateway { via: "fd00:2::2".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST), port: 1 }),
    ] {
        if let Ok(prefix) = p.parse() {
            routes6.push(Route6 { prefix, next_hop: hop, kind: RouteKind::Static });
        }
    }
    let gw = Neighbor { mac: MacAddr([2, 0, 0, 0, 0, 0x22]), port: 1 };
    let mut neighbors = hashbrown::HashMap::new();
    neighbors.insert([10, 0, 2, 2].into(), gw);
    let mut neighbors6 = hashbrown::HashMap::new();
    if let Ok(ip) = "fd00:2::2".parse::<std::net::Ipv6Addr>() {
        neighbors6.insert(u128::from(ip), gw);
    }
    let spec: Option<McastRuleSpec> = serde_json::from_str(
        r#"{"input":{"interface":"lan","group":"239.1.1.1","port":5000},
            "outputs":[{"interface":"wan","destination":"239.10.1.1","port":6000},
                       {"interface":"lan","destination":"239.10.1.2","port":6001,"ttl":1,"dscp":46,"source":"keep"}]}"#,
    )
    .ok();
    let rules = spec
        .map(|s| vec![Arc::new(McastRule::new(s, 0, &[1, 0], &[Some([10, 0, 1, 1].into()), Some([10, 0, 2, 1].into())], 1))])
        .unwrap_or_default();
    Tables {
        version: 1,
        own: OwnAddresses::of(&interfaces),
        interfaces,
        routes: Arc::new(RouteTable::new(routes)),
        neighbors,
        routes6: Arc::new(Route6Table::new(routes6)),
        neighbors6,
        mcast: McastTable::new(rules),
        tunnels: Arc::new([]),
        idle: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&port, frame)) = data.split_first() else { return };
    let mut frame = frame.to_vec();
    let before = frame.clone();
    let t = tables();
    let v = process(&t, Ingress::Port(usize::from(port % 3)), &mut frame);
    if !matches!(v, Verdict::Forward(_)) {
        assert_eq!(before, frame, "only forwarding rewrites a frame");
    }
    if let Verdict::Relay(rule) = v {
        let orig: [u8; HEADERS_LEN] = frame[..HEADERS_LEN].try_into().expect("a relayed frame has full headers");
        for out in &t.mcast.rules[rule as usize].outputs {
            let mac = match out.l2 { L2Dest::Group(m) => m, L2Dest::Unicast => MacAddr([2, 0, 0, 0, 0, 0x22]) };
            let mut copy = frame.clone();
            let _ = write_headers(&orig, out, MacAddr([2, 0, 0, 0, 0, 2]), mac, TxOffload { ipv4: port & 1 == 1, udp: port & 2 == 2 }, &mut copy);
        }
    }
});
