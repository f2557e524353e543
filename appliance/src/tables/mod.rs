//! Everything a worker reads, in one immutable snapshot ([`Tables`]).
//!
//! The management lcore owns the truth, builds a new `Tables` on every
//! change and publishes it with one atomic pointer swap ([`Published`]).
//! Workers load the current snapshot once per burst; an old snapshot is
//! freed when the last worker lets go of it (arc-swap's deferred reclaim),
//! so a change never stops or drops traffic.

mod lpm;
mod lpm6;
mod mcast;
mod own;
mod route;
mod route6;
mod state;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;

pub use crate::interface::Interface;
pub use lpm6::Lpm6;
pub use mcast::{
    L2Dest, McastKey, McastOutput, McastRule, McastTable, OutputCounters, RuleCounters,
    RuleWorkerCounters,
};
pub use own::OwnAddresses;
pub use route::{NextHop, Route, RouteKind, RouteTable};
pub use route6::{NextHop6, Route6, Route6Table};
pub use state::{NeighborEntry, RoutingState, TableError};

use crate::tunnel::{PeerSlots, TunnelTable};
use crate::wire::MacAddr;

/// The port index that names the tunnel in relay rules (`interface =
/// "tunnel"`, as input or output): beyond every real port index.
pub const TUNNEL_PORT: usize = crate::config::MAX_PORTS;

/// A resolved neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// Its MAC.
    pub mac: MacAddr,
    /// The port index it is reached on.
    pub port: usize,
}

/// One immutable snapshot of every table the workers read.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Bumped on every publish; shown by `appliancectl`.
    pub version: u64,
    /// Interfaces by port index (profile order).
    pub interfaces: Vec<Interface>,
    /// Their addresses, packed for the per-packet checks (built from
    /// `interfaces` with [`OwnAddresses::of`]).
    pub own: OwnAddresses,
    /// Routes (connected, static, the tunnel's); shared by the snapshots
    /// until a route changes.
    pub routes: Arc<RouteTable>,
    /// Resolved next hops.
    pub neighbors: HashMap<Ipv4Addr, Neighbor>,
    /// IPv6 routes (connected and static), shared like `routes`.
    pub routes6: Arc<Route6Table>,
    /// Resolved IPv6 next hops (by Neighbor Discovery, or static), keyed by
    /// the address as a `u128`: one word to hash per lookup, where an
    /// `Ipv6Addr` hashes as a slice.
    pub neighbors6: HashMap<u128, Neighbor>,
    /// Multicast relay rules.
    pub mcast: McastTable,
    /// The multipath tunnel's peers, by slot (empty: no tunnel). Each is
    /// shared by every snapshot: only its atomics and counters change.
    pub tunnels: PeerSlots,
    /// How the workers back off when idle (the profile's `idle`, which a
    /// reload may change).
    pub idle: crate::config::IdleConfig,
}

impl Tables {
    /// Whether `ip` is one of our own addresses; returns the port index.
    #[inline]
    pub fn local_port(&self, ip: Ipv4Addr) -> Option<usize> {
        self.own.port_of(ip)
    }

    /// `next_hop` as resolved on port `port` (a neighbour learned on another
    /// port does not count).
    #[inline]
    pub fn neighbor_on(&self, next_hop: Ipv4Addr, port: usize) -> Option<&Neighbor> {
        self.neighbors.get(&next_hop).filter(|n| n.port == port)
    }

    /// Our MAC on port `port` and the MAC of `next_hop` there: the Ethernet
    /// addresses of a frame we send to it, once it is resolved on that port.
    #[inline]
    pub fn macs_to(&self, next_hop: Ipv4Addr, port: usize) -> Option<(MacAddr, MacAddr)> {
        let ours = self.interfaces.get(port)?.mac;
        let theirs = self.neighbor_on(next_hop, port)?.mac;
        Some((ours, theirs))
    }

    /// The next hop for `dst` when its route leaves on port index `port`
    /// (`None` when there is no route or it leaves elsewhere): how a relay
    /// output's unicast destination is reached, by the workers that address
    /// copies and by the slow path that keeps the next hop resolved.
    #[inline]
    pub fn next_hop_on_port(&self, dst: Ipv4Addr, port: usize) -> Option<Ipv4Addr> {
        match self.routes.lookup(dst)?.next_hop {
            NextHop::Connected { port: p } if p == port => Some(dst),
            NextHop::Gateway { via, port: p } if p == port => Some(via),
            _ => None,
        }
    }

    /// The port index of our IPv6 address `ip` for a packet that arrived
    /// on `in_port`: a global address of any port, or the link-local
    /// address of the arrival port (a link-local address means nothing on
    /// another link).
    #[inline]
    pub fn local_port6(&self, ip: Ipv6Addr, in_port: Option<usize>) -> Option<usize> {
        self.own.port_of6(ip, in_port)
    }

    /// `next_hop` as resolved by Neighbor Discovery on port `port`.
    #[inline]
    pub fn neighbor6_on(&self, next_hop: Ipv6Addr, port: usize) -> Option<&Neighbor> {
        self.neighbors6
            .get(&u128::from(next_hop))
            .filter(|n| n.port == port)
    }

    /// Whether UDP to `ip`, port `port` is for one of our tunnel endpoints
    /// (any peer's).
    #[inline]
    pub fn is_tunnel_endpoint(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.peers().any(|t| t.is_endpoint(ip, port))
    }

    /// The peer in slot `slot`, if there is one.
    #[inline]
    pub fn peer(&self, slot: u16) -> Option<&Arc<TunnelTable>> {
        self.tunnels.get(usize::from(slot)).and_then(Option::as_ref)
    }

    /// Every peer of the tunnel, in slot order.
    pub fn peers(&self) -> impl Iterator<Item = &Arc<TunnelTable>> {
        self.tunnels.iter().flatten()
    }

    /// Whether `ip` is the broadcast address of one of our subnets.
    #[inline]
    pub fn is_subnet_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.own.is_subnet_broadcast(ip)
    }
}

/// The publication point shared by the management lcore and the workers.
#[derive(Debug, Clone)]
pub struct Published {
    inner: Arc<ArcSwap<Tables>>,
}

impl Published {
    /// Starts with `tables`.
    pub fn new(tables: Tables) -> Self {
        Self {
            inner: Arc::new(ArcSwap::from_pointee(tables)),
        }
    }

    /// The current snapshot: lock-free and allocation-free, for the workers.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Tables>> {
        self.inner.load()
    }

    /// A long-lived handle to the current snapshot (slow path).
    pub fn current(&self) -> Arc<Tables> {
        self.inner.load_full()
    }

    /// Publishes a new snapshot (management lcore only).
    pub fn publish(&self, tables: Tables) {
        self.publish_arc(Arc::new(tables));
    }

    /// Publishes a snapshot already shared (management lcore only).
    pub fn publish_arc(&self, tables: Arc<Tables>) {
        self.inner.store(tables);
    }
}
