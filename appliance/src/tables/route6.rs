//! IPv6 routes with longest-prefix match: the routes in a list and a
//! multibit trie over /0–/128 ([`super::lpm6`]) from each address to the
//! most specific one. Built on the slow path beside the IPv4 table, read by
//! the workers.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::Serialize;

use super::lpm6::Lpm6;
use super::route::{last_wins, most_specific_first};
use super::RouteKind;

/// Where an IPv6 route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NextHop6 {
    /// The destination is on this port's subnet.
    Connected {
        /// Port index.
        port: usize,
    },
    /// Through a gateway on this port's subnet.
    Gateway {
        /// The gateway.
        via: Ipv6Addr,
        /// Port index.
        port: usize,
    },
    /// Into the multipath tunnel to this peer site (index in
    /// `tables.tunnels`).
    Tunnel(u16),
}

impl NextHop6 {
    /// The port index packets leave on, if the route names one.
    pub fn port(&self) -> Option<usize> {
        match *self {
            NextHop6::Connected { port } | NextHop6::Gateway { port, .. } => Some(port),
            NextHop6::Tunnel(_) => None,
        }
    }
}

/// One IPv6 route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route6 {
    /// Destination prefix.
    pub prefix: Ipv6Net,
    /// Next hop.
    pub next_hop: NextHop6,
    /// Origin.
    pub kind: RouteKind,
}

/// Longest-prefix-match table over IPv6.
#[derive(Debug, Clone, Default)]
pub struct Route6Table {
    routes: Vec<Route6>,
    /// Address -> index into `routes`.
    lpm: Lpm6,
}

impl Route6Table {
    /// Builds a table; a later route with the same prefix replaces an earlier one.
    pub fn new(routes: impl IntoIterator<Item = Route6>) -> Self {
        let list = last_wins(routes, |r| r.prefix);
        let triples: Vec<(u128, u8, u32)> = list
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    u128::from(r.prefix.network()),
                    r.prefix.prefix_len(),
                    u32::try_from(i).unwrap_or(u32::MAX),
                )
            })
            .collect();
        Self {
            lpm: Lpm6::new(&triples),
            routes: list,
        }
    }

    /// The most specific route for `dst`.
    #[inline]
    pub fn lookup(&self, dst: Ipv6Addr) -> Option<&Route6> {
        let i = self.lpm.lookup(u128::from(dst))?;
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
    pub fn routes(&self) -> Vec<Route6> {
        most_specific_first(&self.routes, |r| (r.prefix.prefix_len(), r.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, port: usize) -> Route6 {
        Route6 {
            prefix: prefix.parse().unwrap(),
            next_hop: NextHop6::Connected { port },
            kind: RouteKind::Static,
        }
    }

    #[test]
    fn most_specific_wins_and_a_later_duplicate_replaces() {
        let t = Route6Table::new([
            route("::/0", 0),
            route("2001:db8::/32", 1),
            route("2001:db8:1::/48", 2),
            route("2001:db8:1::/48", 3),
        ]);
        let port = |a: &str| {
            t.lookup(a.parse().unwrap()).and_then(|r| match r.next_hop {
                NextHop6::Connected { port } => Some(port),
                NextHop6::Gateway { .. } | NextHop6::Tunnel(_) => None,
            })
        };
        assert_eq!(port("2001:db8:1::5"), Some(3));
        assert_eq!(port("2001:db8:2::5"), Some(1));
        assert_eq!(port("2001:4860::1"), Some(0));
        assert_eq!(t.len(), 3);
        assert_eq!(t.routes()[0].prefix.prefix_len(), 48);
    }
}
