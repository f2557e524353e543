//! The management lcore's source of truth for the tables: interfaces,
//! static routes, neighbours and multicast rules. Every change builds and
//! publishes a new snapshot.

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::HashMap;
use ipnet::IpNet;

use super::{
    Interface, McastRule, McastTable, Neighbor, NextHop, NextHop6, OwnAddresses, Published, Route,
    Route6, Route6Table, RouteKind, RouteTable, Tables, TUNNEL_PORT,
};
use crate::config::mcast::{
    IfaceView, McastInputSpec, McastRuleError, McastRuleSpec, TUNNEL_INTERFACE,
};
use crate::config::IdleConfig;
use crate::time::Time;
use crate::tunnel::{PeerSlots, TunnelTable};
use crate::wire::MacAddr;

/// Why a table change was refused (the control reply's text is its
/// `Display`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A route prefix with host bits.
    #[error("prefix {prefix} has host bits set; did you mean {}?", .prefix.trunc())]
    HostBits {
        /// The prefix as given.
        prefix: IpNet,
    },
    /// A gateway that cannot be one: off every connected subnet, our own
    /// address, or a subnet's network or broadcast address.
    #[error("via: not a usable next hop: {0}")]
    ImpossibleNextHop(String),
    /// Deleting a route that is not there.
    #[error("no static route for {0}")]
    NoSuchRoute(IpNet),
    /// A relay rule that does not make sense (field and reason).
    #[error("{0}")]
    BadRule(#[from] McastRuleError),
    /// Adding a rule for an input that has one, without `replace`.
    #[error("a rule for input {0} exists; use --replace to replace it")]
    RuleExists(McastInputSpec),
    /// Deleting a rule that is not there.
    #[error("no multicast rule for input {0}")]
    NoSuchRule(McastInputSpec),
}

/// A neighbour as the slow path tracks it.
#[derive(Debug, Clone)]
pub struct NeighborEntry {
    /// Its MAC.
    pub mac: MacAddr,
    /// Port index.
    pub port: usize,
    /// From the config: never aged.
    pub is_static: bool,
    /// Last time it answered.
    pub confirmed: Time,
}

/// Interfaces, static routes and neighbours, plus the publication point.
#[derive(Debug)]
pub struct RoutingState {
    interfaces: Vec<Interface>,
    /// Static routes of both families (prefix and next hop of one family).
    static_routes: Vec<(IpNet, IpAddr)>,
    /// The route tables of both families, rebuilt only when a route
    /// changes (a neighbour learned shares them with the snapshot before).
    routes: (Arc<RouteTable>, Arc<Route6Table>),
    /// Neighbours by address.
    pub neighbors: HashMap<Ipv4Addr, NeighborEntry>,
    /// IPv6 neighbours by address.
    pub neighbors6: HashMap<Ipv6Addr, NeighborEntry>,
    mcast_rules: Vec<Arc<McastRule>>,
    /// The tunnel's peers, by slot.
    tunnels: PeerSlots,
    idle: IdleConfig,
    workers: usize,
    version: u64,
    published: Published,
    /// A snapshot built but not yet published (see [`Self::learn_held`]).
    held: Option<Arc<Tables>>,
}

impl RoutingState {
    /// Builds the first snapshot. Static routes must already be validated.
    pub fn new(
        interfaces: Vec<Interface>,
        static_routes: Vec<(IpNet, IpAddr)>,
        neighbors: HashMap<Ipv4Addr, NeighborEntry>,
    ) -> Self {
        let idle = IdleConfig::default();
        let neighbors6 = HashMap::new();
        let routes = route_tables(&interfaces, &static_routes, &[]);
        let tables = build(
            1,
            &interfaces,
            (&routes.0, &routes.1),
            (&neighbors, &neighbors6),
            &[],
            &Arc::from([]),
            &idle,
        );
        Self {
            interfaces,
            static_routes,
            routes,
            neighbors,
            neighbors6,
            mcast_rules: Vec::new(),
            tunnels: Arc::new([]),
            idle,
            workers: 1,
            version: 1,
            published: Published::new(tables),
            held: None,
        }
    }

    /// Sets how many workers rule counters need slots for (before any
    /// rule is added).
    pub fn set_workers(&mut self, workers: usize) {
        self.workers = workers.max(1);
    }

    /// Routes each peer's prefixes to it (at boot, and with the tables a
    /// reload made).
    pub fn set_tunnels(&mut self, tunnels: PeerSlots) {
        self.tunnels = tunnels;
        self.routes_changed();
        self.republish();
    }

    /// Makes `statics` (address, MAC) the static neighbours of both families: those no
    /// longer in it are forgotten (learned again by ARP or Neighbor Discovery if still
    /// needed), the others set, each on the port whose subnet holds it (one on no connected
    /// subnet is left out, as at boot). Returns the new version.
    pub fn set_static_neighbors(&mut self, statics: &[(IpAddr, MacAddr)], now: Time) -> u64 {
        let listed = |ip: IpAddr| statics.iter().any(|(s, _)| *s == ip);
        self.neighbors
            .retain(|ip, e| !e.is_static || listed(IpAddr::V4(*ip)));
        self.neighbors6
            .retain(|ip, e| !e.is_static || listed(IpAddr::V6(*ip)));
        for (ip, mac) in statics {
            let port = self.interfaces.iter().position(|i| match ip {
                IpAddr::V4(a) => i.address.is_some_and(|n| n.contains(a)),
                IpAddr::V6(a) => i.address6.is_some_and(|n| n.contains(a)),
            });
            let Some(port) = port else { continue };
            let entry = NeighborEntry {
                mac: *mac,
                port,
                is_static: true,
                confirmed: now,
            };
            match ip {
                IpAddr::V4(a) => self.neighbors.insert(*a, entry),
                IpAddr::V6(a) => self.neighbors6.insert(*a, entry),
            };
        }
        self.republish()
    }

    /// The workers' idle back-off (at boot, and when a reload changes it).
    pub fn set_idle(&mut self, idle: IdleConfig) {
        self.idle = idle;
        self.republish();
    }

    /// The tunnel's peers by slot (empty: no tunnel).
    pub fn tunnels(&self) -> &PeerSlots {
        &self.tunnels
    }

    /// Every peer of the tunnel, in slot order.
    pub fn peers(&self) -> impl Iterator<Item = &Arc<TunnelTable>> {
        self.tunnels.iter().flatten()
    }

    /// Multicast rules in the order they were added.
    pub fn mcast_rules(&self) -> &[Arc<McastRule>] {
        &self.mcast_rules
    }

    /// Adds a multicast rule; with `replace`, an existing rule for the same
    /// input is replaced (its counters start afresh). Returns the new
    /// version.
    ///
    /// # Errors
    /// The rule is invalid (the message names the field), or its input
    /// exists and `replace` is false.
    pub fn mcast_add(&mut self, spec: McastRuleSpec, replace: bool) -> Result<u64, TableError> {
        // Rules name interfaces, and "tunnel" when a tunnel is configured:
        // its address is the one of the first interface no path uses (the
        // LAN side), which copies into the tunnel carry by default.
        let mut views: Vec<IfaceView<'_>> = self
            .interfaces
            .iter()
            .map(|i| IfaceView {
                name: &i.name,
                address: i.address.map(|a| a.addr()),
            })
            .collect();
        let tunnel_address = (!self.tunnels.is_empty()).then(|| {
            self.interfaces
                .iter()
                .enumerate()
                .find(|(port, _)| !self.peers().any(|t| t.has_path_on(*port)))
                .and_then(|(_, i)| i.address.map(|a| a.addr()))
        });
        if let Some(address) = tunnel_address {
            views.push(IfaceView {
                name: TUNNEL_INTERFACE,
                address,
            });
        }
        let (in_port, out_ports) = spec.validate(&views)?;
        let real = self.interfaces.len();
        if self.peers().count() > 1 {
            if let Some(k) = out_ports.iter().position(|p| *p == real) {
                // Which peer would a group go to? Not chosen yet: refused
                // rather than sent to one at random.
                return Err(TableError::BadRule(McastRuleError {
                    key: format!("outputs[{k}].interface"),
                    what: "a port: relaying into a tunnel with several peers is not supported"
                        .into(),
                }));
            }
        }
        let index = |i: usize| if i == real { TUNNEL_PORT } else { i };
        let (in_port, out_ports): (usize, Vec<usize>) =
            (index(in_port), out_ports.into_iter().map(index).collect());
        let existing = self
            .mcast_rules
            .iter()
            .position(|r| r.spec.input == spec.input);
        if existing.is_some() && !replace {
            return Err(TableError::RuleExists(spec.input));
        }
        let mut addresses: Vec<Option<Ipv4Addr>> = self
            .interfaces
            .iter()
            .map(|i| i.address.map(|a| a.addr()))
            .collect();
        addresses.resize(TUNNEL_PORT + 1, None);
        addresses[TUNNEL_PORT] = tunnel_address.flatten();
        let rule = Arc::new(McastRule::new(
            spec,
            in_port,
            &out_ports,
            &addresses,
            self.workers,
        ));
        match existing {
            Some(i) => self.mcast_rules[i] = rule,
            None => self.mcast_rules.push(rule),
        }
        Ok(self.republish())
    }

    /// Removes the multicast rule for `input`; returns the new version.
    ///
    /// # Errors
    /// No rule has that input.
    pub fn mcast_del(&mut self, input: &McastInputSpec) -> Result<u64, TableError> {
        let before = self.mcast_rules.len();
        self.mcast_rules.retain(|r| r.spec.input != *input);
        if self.mcast_rules.len() == before {
            return Err(TableError::NoSuchRule(input.clone()));
        }
        Ok(self.republish())
    }

    /// The handle workers load from.
    pub fn published(&self) -> &Published {
        &self.published
    }

    /// Interfaces by port index.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Current table version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The port index whose subnet holds `ip`.
    pub fn connected_port(&self, ip: Ipv4Addr) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.address.is_some_and(|a| a.contains(&ip)))
    }

    /// Adds or replaces a static route; returns the new version.
    ///
    /// # Errors
    /// The prefix has host bits or the gateway is not on a connected subnet.
    pub fn add_route(&mut self, prefix: IpNet, via: IpAddr) -> Result<u64, TableError> {
        if prefix != prefix.trunc() {
            return Err(TableError::HostBits { prefix });
        }
        let why = match (prefix, via) {
            (IpNet::V4(_), IpAddr::V4(via)) => {
                let ours = self.interfaces.iter().filter_map(|i| i.address);
                crate::config::next_hop_problem(ours, via)
            }
            (IpNet::V6(_), IpAddr::V6(via)) => {
                let ours = self.interfaces.iter().filter_map(|i| i.address6);
                crate::config::next_hop6_problem(ours, via)
            }
            _ => Some(format!("{via} is not of {prefix}'s family")),
        };
        if let Some(why) = why {
            return Err(TableError::ImpossibleNextHop(why));
        }
        self.static_routes.retain(|(p, _)| *p != prefix);
        self.static_routes.push((prefix, via));
        self.routes_changed();
        Ok(self.republish())
    }

    /// Removes a static route; returns the new version.
    ///
    /// # Errors
    /// No static route has that prefix.
    pub fn del_route(&mut self, prefix: IpNet) -> Result<u64, TableError> {
        let before = self.static_routes.len();
        self.static_routes.retain(|(p, _)| *p != prefix);
        if self.static_routes.len() == before {
            return Err(TableError::NoSuchRoute(prefix));
        }
        self.routes_changed();
        Ok(self.republish())
    }

    /// Learns or refreshes a neighbour (by ARP or Neighbor Discovery);
    /// republishes only if it changed.
    pub fn learn(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, port: usize, now: Time) {
        if self.update_neighbor(ip.into(), mac, port, now) {
            self.republish();
        }
    }

    /// Like [`Self::learn`], but a changed snapshot is held back until
    /// [`Self::publish_held`], while [`Self::tables`] already answers from
    /// it. The slow path sends what waited for this neighbour in between, so
    /// that no worker forwards a newer packet of the same flow first.
    pub fn learn_held(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, port: usize, now: Time) {
        if self.update_neighbor(ip.into(), mac, port, now) {
            self.version += 1;
            self.held = Some(Arc::new(self.build_current()));
        }
    }

    /// Publishes the snapshot [`Self::learn_held`] held back, if any.
    pub fn publish_held(&mut self) {
        if let Some(t) = self.held.take() {
            self.published.publish_arc(t);
        }
    }

    /// The tables the slow path works with: the held snapshot if there is
    /// one, else the published one.
    pub fn tables(&self) -> Arc<Tables> {
        self.held
            .clone()
            .unwrap_or_else(|| self.published.current())
    }

    /// Records `ip` at `mac` on `port`; whether the tables change.
    fn update_neighbor(&mut self, ip: IpAddr, mac: MacAddr, port: usize, now: Time) -> bool {
        match ip {
            IpAddr::V4(ip) => record(&mut self.neighbors, ip, mac, port, now),
            IpAddr::V6(ip) => record(&mut self.neighbors6, ip, mac, port, now),
        }
    }

    /// Turns IPv6 off on `port` (its address was found in use by another
    /// node): its address, connected route and routes through it go.
    pub fn disable_ipv6(&mut self, port: usize) -> u64 {
        if let Some(i) = self.interfaces.get_mut(port) {
            i.address6 = None;
        }
        self.neighbors6.retain(|_, e| e.port != port || e.is_static);
        self.routes_changed();
        self.republish()
    }

    /// The neighbour entry of `ip`, of either family.
    pub fn neighbor(&self, ip: IpAddr) -> Option<&NeighborEntry> {
        match ip {
            IpAddr::V4(ip) => self.neighbors.get(&ip),
            IpAddr::V6(ip) => self.neighbors6.get(&ip),
        }
    }

    /// Forgets a learned neighbour.
    pub fn forget(&mut self, ip: impl Into<IpAddr>) {
        let forgot = match ip.into() {
            IpAddr::V4(ip) => remove_learned(&mut self.neighbors, &ip),
            IpAddr::V6(ip) => remove_learned(&mut self.neighbors6, &ip),
        };
        if forgot {
            self.republish();
        }
    }

    /// Rebuilds the route tables from the routes of every origin.
    fn routes_changed(&mut self) {
        self.routes = route_tables(&self.interfaces, &self.static_routes, &self.tunnels);
    }

    fn republish(&mut self) -> u64 {
        self.version += 1;
        // Built from everything, a held snapshot included: it is superseded.
        self.held = None;
        self.published.publish(self.build_current());
        self.version
    }

    /// A snapshot of the state as it is, at the current version.
    fn build_current(&self) -> Tables {
        build(
            self.version,
            &self.interfaces,
            (&self.routes.0, &self.routes.1),
            (&self.neighbors, &self.neighbors6),
            &self.mcast_rules,
            &self.tunnels,
            &self.idle,
        )
    }
}

/// Records `ip` at `mac` on `port` in `map` (a static entry stays as it
/// is); whether the entry changed.
fn record<K: Hash + Eq>(
    map: &mut HashMap<K, NeighborEntry>,
    ip: K,
    mac: MacAddr,
    port: usize,
    now: Time,
) -> bool {
    match map.get_mut(&ip) {
        Some(e) if e.is_static => false,
        Some(e) => {
            e.confirmed = now;
            let changed = e.mac != mac || e.port != port;
            e.mac = mac;
            e.port = port;
            changed
        }
        None => {
            map.insert(
                ip,
                NeighborEntry {
                    mac,
                    port,
                    is_static: false,
                    confirmed: now,
                },
            );
            true
        }
    }
}

/// Removes `ip` from `map` unless it is static; whether it was there.
fn remove_learned<K: Hash + Eq>(map: &mut HashMap<K, NeighborEntry>, ip: &K) -> bool {
    if map.get(ip).is_some_and(|e| !e.is_static) {
        map.remove(ip);
        true
    } else {
        false
    }
}

/// The workers' view of learned and static neighbours.
fn resolved<K: Hash + Eq + Copy>(map: &HashMap<K, NeighborEntry>) -> HashMap<K, Neighbor> {
    map.iter()
        .map(|(ip, e)| {
            (
                *ip,
                Neighbor {
                    mac: e.mac,
                    port: e.port,
                },
            )
        })
        .collect()
}

/// Each peer's prefixes, with the peer's slot.
fn peer_prefixes(tunnels: &[Option<Arc<TunnelTable>>]) -> impl Iterator<Item = (u16, &IpNet)> {
    tunnels
        .iter()
        .flatten()
        .flat_map(|t| t.prefixes.iter().map(move |p| (t.index, p)))
}

/// The IPv6 routes: connected subnets, static routes and the peers'
/// prefixes.
fn routes6(
    interfaces: &[Interface],
    static_routes: &[(IpNet, IpAddr)],
    tunnels: &[Option<Arc<TunnelTable>>],
) -> Route6Table {
    let connected = interfaces.iter().enumerate().filter_map(|(port, i)| {
        i.address6.map(|a| Route6 {
            prefix: a.trunc(),
            next_hop: NextHop6::Connected { port },
            kind: RouteKind::Connected,
        })
    });
    let statics = static_routes.iter().filter_map(|r| match *r {
        (IpNet::V6(prefix), IpAddr::V6(via)) => interfaces
            .iter()
            .position(|i| i.address6.is_some_and(|a| a.contains(&via)))
            .map(|port| Route6 {
                prefix,
                next_hop: NextHop6::Gateway { via, port },
                kind: RouteKind::Static,
            }),
        _ => None,
    });
    let tunneled = peer_prefixes(tunnels).filter_map(|(peer, prefix)| match prefix {
        IpNet::V6(prefix) => Some(Route6 {
            prefix: *prefix,
            next_hop: NextHop6::Tunnel(peer),
            kind: RouteKind::Tunnel,
        }),
        IpNet::V4(_) => None,
    });
    // Connected routes last, as for IPv4.
    Route6Table::new(statics.chain(tunneled).chain(connected))
}

/// The route tables of both families: connected subnets, static routes and
/// the peers' prefixes.
fn route_tables(
    interfaces: &[Interface],
    static_routes: &[(IpNet, IpAddr)],
    tunnels: &[Option<Arc<TunnelTable>>],
) -> (Arc<RouteTable>, Arc<Route6Table>) {
    let connected = interfaces.iter().enumerate().filter_map(|(port, i)| {
        i.address.map(|a| Route {
            prefix: a.trunc(),
            next_hop: NextHop::Connected { port },
            kind: RouteKind::Connected,
        })
    });
    let port_of = |ip: &Ipv4Addr| {
        interfaces
            .iter()
            .position(|i| i.address.is_some_and(|a| a.contains(ip)))
    };
    let statics = static_routes.iter().filter_map(|r| match *r {
        (IpNet::V4(prefix), IpAddr::V4(via)) => port_of(&via).map(|port| Route {
            prefix,
            next_hop: NextHop::Gateway { via, port },
            kind: RouteKind::Static,
        }),
        _ => None,
    });
    let tunneled = peer_prefixes(tunnels).filter_map(|(peer, prefix)| match prefix {
        IpNet::V4(prefix) => Some(Route {
            prefix: *prefix,
            next_hop: NextHop::Tunnel(peer),
            kind: RouteKind::Tunnel,
        }),
        IpNet::V6(_) => None,
    });
    // Connected routes go last so that they win over a static route for
    // the same prefix.
    let routes: Vec<Route> = statics.chain(tunneled).chain(connected).collect();
    (
        Arc::new(RouteTable::new(routes)),
        Arc::new(routes6(interfaces, static_routes, tunnels)),
    )
}

fn build(
    version: u64,
    interfaces: &[Interface],
    (routes, routes6): (&Arc<RouteTable>, &Arc<Route6Table>),
    (neighbors, neighbors6): (
        &HashMap<Ipv4Addr, NeighborEntry>,
        &HashMap<Ipv6Addr, NeighborEntry>,
    ),
    mcast_rules: &[Arc<McastRule>],
    tunnels: &PeerSlots,
    idle: &IdleConfig,
) -> Tables {
    Tables {
        version,
        interfaces: interfaces.to_vec(),
        own: OwnAddresses::of(interfaces),
        routes: Arc::clone(routes),
        neighbors: resolved(neighbors),
        routes6: Arc::clone(routes6),
        neighbors6: resolved(neighbors6)
            .into_iter()
            .map(|(ip, n)| (u128::from(ip), n))
            .collect(),
        mcast: McastTable::new(mcast_rules.to_vec()),
        tunnels: Arc::clone(tunnels),
        idle: idle.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MacAddr;

    fn state() -> RoutingState {
        let lan = Interface {
            name: "lan".into(),
            port_id: 0,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            address: Some("10.0.1.1/24".parse().unwrap()),
            mtu: 1500,
            tx_ipv4_cksum: false,
            tx_udp_cksum: false,
            address6: None,
            kernel_iface: None,
        };
        RoutingState::new(vec![lan], Vec::new(), HashMap::new())
    }

    /// A neighbour learned "held" is visible to the slow path at once and
    /// to the workers only once published; a full republish in between
    /// supersedes the held snapshot rather than being undone by it.
    #[test]
    fn a_held_neighbour_reaches_the_workers_only_when_published() {
        let host: Ipv4Addr = "10.0.1.10".parse().unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 0x10]);
        let mut s = state();
        s.learn_held(host, mac, 0, Time::from_nanos(1));
        assert!(s.tables().neighbor_on(host, 0).is_some());
        assert!(s.published().current().neighbor_on(host, 0).is_none());
        s.publish_held();
        assert!(s.published().current().neighbor_on(host, 0).is_some());
        assert_eq!(s.published().current().version, s.version());

        let other: Ipv4Addr = "10.0.1.11".parse().unwrap();
        s.learn_held(other, mac, 0, Time::from_nanos(2));
        s.learn(host, MacAddr([2, 0, 0, 0, 0, 0x20]), 0, Time::from_nanos(3));
        s.publish_held();
        let t = s.published().current();
        assert_eq!(t.version, s.version());
        assert!(t.neighbor_on(other, 0).is_some());
        assert_eq!(
            t.neighbor_on(host, 0).map(|n| n.mac),
            Some(MacAddr([2, 0, 0, 0, 0, 0x20]))
        );
    }
}
