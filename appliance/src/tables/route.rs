//! IPv4 routes with longest-prefix match.
//!
//! One hash map per prefix length plus a bitmask of the lengths in use, so
//! a lookup probes only lengths that exist, longest first, and never
//! allocates. Built on the slow path, read by the workers.

use std::net::Ipv4Addr;

use hashbrown::HashMap;
use ipnet::Ipv4Net;
use serde::Serialize;

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
    /// Into the multipath tunnel to the peer site: no single port (the
    /// packet's class and scheduler choose the path).
    Tunnel,
}

impl NextHop {
    /// The port index packets leave on, if the route names one.
    pub fn port(&self) -> Option<usize> {
        match *self {
            NextHop::Connected { port } | NextHop::Gateway { port, .. } => Some(port),
            NextHop::Tunnel => None,
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
    /// by_len[l]: network (as u32) -> index into `routes`.
    by_len: Vec<HashMap<u32, usize>>,
    /// Bit l set when some route has prefix length l.
    lens: u64,
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl RouteTable {
    /// Builds a table; a later route with the same prefix replaces an earlier one.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        let mut t = Self {
            routes: Vec::new(),
            by_len: vec![HashMap::new(); 33],
            lens: 0,
        };
        for r in routes {
            let len = r.prefix.prefix_len();
            let key = u32::from(r.prefix.network());
            match t.by_len[usize::from(len)].get(&key) {
                Some(&i) => t.routes[i] = r,
                None => {
                    t.by_len[usize::from(len)].insert(key, t.routes.len());
                    t.routes.push(r);
                }
            }
            t.lens |= 1 << len;
        }
        t
    }

    /// The most specific route for `dst`.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&Route> {
        let d = u32::from(dst);
        let mut lens = self.lens;
        while lens != 0 {
            let len = 63 - lens.leading_zeros() as u8;
            lens &= !(1u64 << len);
            if let Some(&i) = self.by_len[usize::from(len)].get(&(d & mask(len))) {
                return self.routes.get(i);
            }
        }
        None
    }

    /// All routes, most specific first.
    pub fn routes(&self) -> Vec<Route> {
        let mut v = self.routes.clone();
        v.sort_by(|a, b| {
            b.prefix
                .prefix_len()
                .cmp(&a.prefix.prefix_len())
                .then(a.prefix.cmp(&b.prefix))
        });
        v
    }
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
