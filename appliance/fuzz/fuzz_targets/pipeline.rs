//! Any frame on any port through the whole per-packet pipeline, with
//! routes and a resolved neighbour: a verdict, never a panic.
#![no_main]

use appliance::dataplane::pipeline::{process, Verdict};
use appliance::tables::{Interface, Neighbor, NextHop, Route, RouteKind, RouteTable, Tables};
use appliance::wire::MacAddr;
use libfuzzer_sys::fuzz_target;

fn tables() -> Tables {
    let interfaces = vec![
        Interface { name: "lan".into(), port_id: 0, mac: MacAddr([2, 0, 0, 0, 0, 1]), address: "10.0.1.1/24".parse().ok() },
        Interface { name: "wan".into(), port_id: 1, mac: MacAddr([2, 0, 0, 0, 0, 2]), address: "10.0.2.1/24".parse().ok() },
    ];
    let mut routes = Vec::new();
    for (p, hop) in [("10.0.1.0/24", NextHop::Connected { port: 0 }), ("0.0.0.0/0", NextHop::Gateway { via: [10, 0, 2, 2].into(), port: 1 })] {
        if let Ok(prefix) = p.parse() {
            routes.push(Route { prefix, next_hop: hop, kind: RouteKind::Static });
        }
    }
    let mut neighbors = hashbrown::HashMap::new();
    neighbors.insert([10, 0, 2, 2].into(), Neighbor { mac: MacAddr([2, 0, 0, 0, 0, 0x22]), port: 1 });
    Tables { version: 1, interfaces, routes: RouteTable::new(routes), neighbors }
}

fuzz_target!(|data: &[u8]| {
    let Some((&port, frame)) = data.split_first() else { return };
    let mut frame = frame.to_vec();
    let before = frame.clone();
    let v = process(&tables(), usize::from(port % 3), &mut frame);
    if !matches!(v, Verdict::Forward(_)) {
        assert_eq!(before, frame, "only forwarding rewrites a frame");
    }
});
