//! IPv4 routes with longest-prefix match.
//!
//! The routes in a list, and a DIR-16-8-8 trie ([`super::lpm`]) from each
//! address to the most specific one: at most three memory reads per lookup,
//! whatever the table's size, and no allocation. Built on the slow path,
//! read by the workers.

use std::net::Ipv4Addr;

use hashbrown::HashMap;
use ipnet::Ipv4Net;
use serde::Serialize;

use super::lpm::Lpm;

/// Where a route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NextHop {
    /// The destination is on this port's subnet.
    Connected {
        /// Port index.
        port: usize,
    },
    /// Through a gateway on this port's subnet.
    Gateway {
        /// The gateway.
        via: Ipv4Addr,
        /// Port index.
        port: usize,
    },
    /// Into the multipath tunnel to this peer site (index in
    /// `tables.tunnels`): no single port (the packet's class and scheduler
    /// choose the path).
    Tunnel(u16),
}

impl NextHop {
    /// The port index packets leave on, if the route names one.
    pub fn port(&self) -> Option<usize> {
        match *self {
            NextHop::Connected { port } | NextHop::Gateway { port, .. } => Some(port),
            NextHop::Tunnel(_) => None,
        }
    }
}

/// How the route was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// From an interface address.
    Connected,
    /// From the config or `appliancectl route add`.
    Static,
    /// A prefix of the peer site (`tunnel.prefixes`).
    Tunnel,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Destination prefix.
    pub prefix: Ipv4Net,
    /// Next hop.
    pub next_hop: NextHop,
    /// Origin.
    pub kind: RouteKind,
}

/// Longest-prefix-match table.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Address -> index into `routes`.
    lpm: Lpm,
}

impl RouteTable {
    /// Builds a table; a later route with the same prefix replaces an earlier one.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        let list = last_wins(routes, |r| r.prefix);
        let triples: Vec<(u32, u8, u32)> = list
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    u32::from(r.prefix.network()),
                    r.prefix.prefix_len(),
                    i as u32,
                )
            })
            .collect();
        Self {
            lpm: Lpm::new(&triples),
            routes: list,
        }
    }

    /// The most specific route for `dst`.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&Route> {
        let i = self.lpm.lookup(u32::from(dst))?;
        self.routes.get(i as usize)
    }

    /// Routes in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// No routes at all.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Bytes the lookup structure holds (the route list aside).
    pub fn lookup_memory(&self) -> usize {
        self.lpm.memory()
    }

    /// All routes, most specific first.
    pub fn routes(&self) -> Vec<Route> {
        most_specific_first(&self.routes, |r| (r.prefix.prefix_len(), r.prefix))
    }
}

/// `routes` with one per key (a later route replaces an earlier one with the
/// same prefix, in the earlier one's place): both families' tables.
pub(super) fn last_wins<R, K: std::hash::Hash + Eq>(
    routes: impl IntoIterator<Item = R>,
    key: impl Fn(&R) -> K,
) -> Vec<R> {
    let mut list: Vec<R> = Vec::new();
    let mut index: HashMap<K, usize> = HashMap::new();
    for r in routes {
        match index.get(&key(&r)) {
            Some(&i) => list[i] = r,
            None => {
                index.insert(key(&r), list.len());
                list.push(r);
            }
        }
    }
    list
}

/// A copy of `routes` sorted most specific first, then by prefix (`key`:
/// prefix length and prefix).
pub(super) fn most_specific_first<R: Clone, P: Ord>(
    routes: &[R],
    key: impl Fn(&R) -> (u8, P),
) -> Vec<R> {
    let mut v = routes.to_vec();
    v.sort_by(|a, b| {
        let ((la, pa), (lb, pb)) = (key(a), key(b));
        lb.cmp(&la).then(pa.cmp(&pb))
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(p: &str, port: usize) -> Route {
        Route {
            prefix: p.parse().unwrap(),
            next_hop: NextHop::Connected { port },
            kind: RouteKind::Static,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = RouteTable::new([
            r("0.0.0.0/0", 0),
            r("10.0.0.0/8", 1),
            r("10.1.0.0/16", 2),
            r("10.1.2.3/32", 3),
        ]);
        let port = |ip: &str| {
            t.lookup(ip.parse().unwrap())
                .and_then(|r| r.next_hop.port())
        };
        assert_eq!(port("10.1.2.3"), Some(3));
        assert_eq!(port("10.1.2.4"), Some(2));
        assert_eq!(port("10.2.0.1"), Some(1));
        assert_eq!(port("192.0.2.1"), Some(0));
        assert_eq!(
            RouteTable::new([r("10.0.0.0/8", 1)]).lookup("11.0.0.1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn same_prefix_replaces() {
        let t = RouteTable::new([r("10.0.0.0/8", 1), r("10.0.0.0/8", 5)]);
        assert_eq!(
            t.lookup("10.9.9.9".parse().unwrap())
                .unwrap()
                .next_hop
                .port(),
            Some(5)
        );
        assert_eq!(t.routes().len(), 1);
    }

    #[test]
    fn a_million_routes_build_and_look_up() {
        let routes = (0..1_000_000u32).map(|i| Route {
            prefix: Ipv4Net::new(Ipv4Addr::from(0x0b00_0000 + (i << 8)), 24).unwrap(),
            next_hop: NextHop::Connected {
                port: (i % 3) as usize,
            },
            kind: RouteKind::Static,
        });
        let t = RouteTable::new(routes);
        assert_eq!(t.len(), 1_000_000);
        let hit = t
            .lookup(Ipv4Addr::from(0x0b00_0000 + (777 << 8) + 9))
            .unwrap();
        assert_eq!(hit.next_hop.port(), Some(0));
        assert!(t.lookup_memory() < 80 << 20, "{}", t.lookup_memory());
    }

    proptest! {
        /// The table agrees with a linear scan for the longest match.
        #[test]
        fn matches_linear_scan(prefixes in proptest::collection::vec((any::<u32>(), 0u8..=32), 1..40), probes in proptest::collection::vec(any::<u32>(), 1..50)) {
            let routes: Vec<Route> = prefixes.iter().enumerate().map(|(i, &(a, l))| {
                let net = Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc();
                Route { prefix: net, next_hop: NextHop::Connected { port: i }, kind: RouteKind::Static }
            }).collect();
            let t = RouteTable::new(routes.clone());
            for p in probes {
                let ip = Ipv4Addr::from(p);
                // Reference: last-inserted route among the longest matches.
                let best = routes.iter().filter(|r| r.prefix.contains(&ip)).map(|r| r.prefix.prefix_len()).max();
                let want = best.and_then(|l| routes.iter().rev().find(|r| r.prefix.prefix_len() == l && r.prefix.contains(&ip)));
                prop_assert_eq!(t.lookup(ip).map(|r| r.prefix), want.map(|r| r.prefix));
                prop_assert_eq!(t.lookup(ip).map(|r| r.next_hop), want.map(|r| r.next_hop));
            }
        }
    }
}
