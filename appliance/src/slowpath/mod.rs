//! The management lcore's slow path: ARP (answer, learn, resolve with hold
//! queues, gratuitous ARP), ICMP echo replies, rate-limited ICMP errors,
//! IGMP membership for the relay's input groups, and table changes from the
//! control socket.
//!
//! Punted packets arrive on one SPSC ring per worker. The slow path runs
//! the same pipeline the workers ran to learn why a packet was punted, so
//! no metadata travels with it. It sends on its own TX queue of every port.

pub mod bfd;
pub mod frames;
pub mod frames6;
pub mod igmp;
pub mod mld;
mod nd;
pub mod ra;
pub mod tunnel;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use dpdk_bindings::ring::Consumer;
use dpdk_bindings::{Burst, Mbuf, Mempool};
use hashbrown::HashMap;
use serde_json::json;

use crate::api::{AdminState, Request, Response};
use crate::config::tunnel::TunnelConfig;
use crate::config::SlowPathConfig;
use crate::dataplane::pipeline::{process, Ingress, PuntReason, Verdict};
use crate::dataplane::tunnel::Spares;
use crate::dataplane::tx::MgmtTx;
use crate::stats::{DropReason, SlowCounters, WorkerCounters};
use crate::tables::{L2Dest, RoutingState, TableError};
use crate::time::{Time, Timers, TokenBucket};
use crate::tunnel::crypto::handshake::Handshaker;
use crate::tunnel::crypto::keys::KeyPrint;
use crate::tunnel::{PeerIndex, PeerSlots, TunnelTable};
use crate::wire::tunnel::{Kind, TunnelPacket};
use crate::wire::{
    icmpv4, ArpOp, ArpPacket, ArpRepr, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr,
};
use bfd::BfdPaths;
use frames::{IcmpError, MAX_BUILT};
use igmp::{IgmpConfig, IgmpHost, IgmpRxError, Membership};
use tunnel::MgmtTunnel;

/// A change's reply: the new table version, or what was wrong.
fn version_response(result: Result<u64, TableError>) -> Response {
    match result {
        Ok(version) => Response::ok(json!({ "version": version })),
        Err(e) => Response::err(e.to_string()),
    }
}

/// Next hops being resolved at once, at most (each holds up to
/// `slowpath.arp_hold_packets` packets and is asked for every second).
const MAX_UNRESOLVED: usize = 1024;
/// Time between ARP retries for one next hop.
const ARP_RETRY: Duration = Duration::from_secs(1);
/// How often the next hop of a learned path that moved is asked for until it answers.
const LEARNED_ARP_EVERY: Duration = Duration::from_millis(200);
/// How often learned neighbours are checked for staleness, and relay outputs'
/// next hops for resolution.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How soon the tunnel's spare receive state is restocked after some was
/// taken: what a burst of newly busy lanes may find empty at most.
const RESTOCK_BUSY: Duration = Duration::from_millis(1);
/// How often the shelves are looked at while nothing is taken.
const RESTOCK_IDLE: Duration = Duration::from_millis(10);

/// The slow path's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum SlowTimer {
    /// IGMP reports and responses are due.
    Igmp,
    /// Next ARP request or Neighbor Solicitation (or giving up) for a next
    /// hop packets wait for.
    Resolve(IpAddr),
    /// Next probe (or forgetting) of a stale learned neighbour.
    NeighborProbe(IpAddr),
    /// Look for learned neighbours that have gone quiet.
    NeighborSweep,
    /// Ask for the unresolved next hops of relay outputs and tunnel paths.
    RelayResolve,
    /// Probe this tunnel path (peer index, path index).
    Probe(u16, u8),
    /// A BFD session of this peer (its slot) has a packet to send or a
    /// detection time to judge: one timer per peer, so that a hub's peers
    /// are not all polled whenever one of them is due.
    Bfd(u16),
    /// The tunnel's handshakes (every peer's): one may be due, or a session
    /// expire.
    Handshake,
    /// A router advertisement is due on some port.
    RouterAdvert,
    /// The addresses under Duplicate Address Detection are ours now.
    DadDone,
    /// An MLD report is due on some port.
    Mld,
    /// The tunnel's spare lanes and replay windows are to be restocked.
    Restock,
}

struct Pending {
    port: usize,
    held: VecDeque<(Mbuf, Ingress)>,
    tries: u32,
}

/// The management lcore's state.
pub struct SlowPath {
    /// Tables' source of truth.
    pub state: RoutingState,
    punts: Vec<Consumer>,
    tx: Vec<MgmtTx>,
    pool: std::sync::Arc<Mempool>,
    counters: std::sync::Arc<WorkerCounters>,
    slow: std::sync::Arc<SlowCounters>,
    cfg: SlowPathConfig,
    /// Next hops being resolved (ARP, Neighbor Discovery) and what waits.
    pending: HashMap<IpAddr, Pending>,
    /// Probes sent to each stale neighbour.
    probes: HashMap<IpAddr, u32>,
    icmp_bucket: TokenBucket,
    igmp: IgmpHost,
    rng: fastrand::Rng,
    timers: Timers<SlowTimer>,
    /// Each peer's probes, health, handshakes and BFD sessions, by slot.
    peers: Vec<Option<PeerState>>,
    /// When we last asked for the next hop of a learned path that moved.
    learned_arp: HashMap<Ipv4Addr, Time>,
    /// Router advertisements on the ports that send them.
    ra: ra::Advertiser,
    /// Each port's `[interfaces.ra]`, for when its addresses are checked.
    ra_configs: Vec<Option<crate::config::RaConfig>>,
    /// Our IPv6 addresses (port, address) under Duplicate Address Detection.
    tentative: Vec<(usize, std::net::Ipv6Addr)>,
    /// MLD membership of the groups our IPv6 needs.
    mld: mld::Listener,
    /// The shelves of the tunnel's receive state it keeps stocked.
    stock: Option<Stock>,
    /// Which peer a control packet with no Key ID is from.
    remotes: Remotes,
}

/// The [`PeerIndex`] of the peers of `slots`.
#[derive(Debug, Default)]
struct Remotes {
    slots: Option<PeerSlots>,
    index: PeerIndex,
}

impl Remotes {
    /// Indexes the peers of `slots` unless they are the ones indexed.
    fn follow(&mut self, slots: &PeerSlots) {
        if !self.slots.as_ref().is_some_and(|s| Arc::ptr_eq(s, slots)) {
            self.index = PeerIndex::of(slots);
            self.slots = Some(Arc::clone(slots));
        }
    }
}

/// The shelves of the tunnel's receive state, and what they hold for the
/// peers of `slots`.
struct Stock {
    spares: Arc<Spares>,
    slots: PeerSlots,
    /// Lanes of these ring sizes (bit s: 2^s).
    rings: u32,
    /// Replay windows (some peer is encrypted).
    windows: bool,
}

/// One peer's state on the management lcore.
struct PeerState {
    /// Its probes, path health and handshakes.
    tunnel: MgmtTunnel,
    /// Its paths' BFD sessions.
    bfd: BfdPaths,
    /// The keys its sessions are made under (`None`: in clear).
    keys: Option<KeyPrint>,
}

impl PeerState {
    fn new(table: &Arc<TunnelTable>, now: Time) -> Self {
        Self {
            tunnel: MgmtTunnel::new(Arc::clone(table), now),
            bfd: BfdPaths::new(Arc::clone(table), now),
            keys: None,
        }
    }
}

impl std::fmt::Debug for SlowPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowPath")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl SlowPath {
    /// Sets up the slow path. `tx` is how it sends on each port.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        state: RoutingState,
        punts: Vec<Consumer>,
        tx: Vec<MgmtTx>,
        pool: std::sync::Arc<Mempool>,
        counters: std::sync::Arc<WorkerCounters>,
        slow: std::sync::Arc<SlowCounters>,
        cfg: SlowPathConfig,
        now: Time,
    ) -> Self {
        let icmp_bucket = TokenBucket::new(cfg.icmp_errors_per_sec);
        let mut timers = Timers::new();
        timers.arm(SlowTimer::NeighborSweep, now + SWEEP_EVERY);
        timers.arm(SlowTimer::RelayResolve, now);
        let peers: Vec<Option<PeerState>> = state
            .tunnels()
            .iter()
            .map(|slot| slot.as_ref().map(|t| PeerState::new(t, now)))
            .collect();
        for t in state.peers() {
            timers.arm(SlowTimer::Bfd(t.index), now);
            for path in 0..t.paths.len() {
                timers.arm(probe_timer(t.index, path), now);
            }
        }
        Self {
            state,
            punts,
            tx,
            pool,
            counters,
            slow,
            cfg,
            pending: HashMap::new(),
            probes: HashMap::new(),
            icmp_bucket,
            igmp: IgmpHost::new(0, IgmpConfig::default()),
            rng: fastrand::Rng::new(),
            timers,
            peers,
            learned_arp: HashMap::new(),
            ra: ra::Advertiser::default(),
            ra_configs: Vec::new(),
            tentative: Vec::new(),
            mld: mld::Listener::default(),
            stock: None,
            remotes: Remotes::default(),
        }
    }

    /// Keeps `spares` stocked for the workers, from now on (if there is a
    /// tunnel).
    pub fn keep_stocked(&mut self, spares: Arc<Spares>, now: Time) {
        if !self.state.tunnels().is_empty() {
            self.stock = Some(Stock {
                spares,
                slots: Arc::new([]),
                rings: 0,
                windows: false,
            });
            self.restock(now);
        }
    }

    /// Fills the shelves of lanes and replay windows the workers take from
    /// when a peer's lane or path first carries a packet: again within
    /// [`RESTOCK_BUSY`] while they are being taken, else [`RESTOCK_IDLE`].
    fn restock(&mut self, now: Time) {
        let Some(stock) = &mut self.stock else {
            return;
        };
        if !Arc::ptr_eq(&stock.slots, self.state.tunnels()) {
            // The peers changed (a reload): what they need is worked out once.
            stock.slots = Arc::clone(self.state.tunnels());
            stock.rings = Spares::rings_of(self.state.peers().map(|t| &t.reorder));
            stock.windows = self.state.peers().any(|t| t.crypto.is_some());
        }
        let made = stock.spares.restock(stock.rings, stock.windows);
        let next = if made > 0 { RESTOCK_BUSY } else { RESTOCK_IDLE };
        self.timers.arm(SlowTimer::Restock, now + next);
    }

    /// The management lcore's state of the peer in slot `peer`.
    fn tunnel(&self, peer: usize) -> Option<&MgmtTunnel> {
        self.peers.get(peer)?.as_ref().map(|p| &p.tunnel)
    }

    fn tunnel_mut(&mut self, peer: usize) -> Option<&mut MgmtTunnel> {
        self.peers.get_mut(peer)?.as_mut().map(|p| &mut p.tunnel)
    }

    /// The BFD sessions of the peer in slot `peer`.
    fn bfd_mut(&mut self, peer: usize) -> Option<&mut BfdPaths> {
        self.peers.get_mut(peer)?.as_mut().map(|p| &mut p.bfd)
    }

    /// Encrypts the tunnel to peer `peer` (its slot) with `hs`'s keys (of
    /// print `print`): the first handshake starts now.
    pub fn encrypt_tunnel(&mut self, peer: usize, (print, hs): (KeyPrint, Handshaker), now: Time) {
        if let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) {
            p.keys = Some(print);
            p.tunnel.encrypt(hs, now);
            self.timers.arm(SlowTimer::Handshake, now);
        }
    }

    /// Starts every peer's handshake that is due, and re-arms for the next.
    fn handshake_poll(&mut self, now: Time) {
        let tables = self.state.tables();
        let mut frames = Vec::new();
        let mut next: Option<Time> = None;
        for (slot, p) in self.peers.iter_mut().enumerate() {
            let Some(t) = p.as_mut().map(|p| &mut p.tunnel) else {
                continue;
            };
            frames.extend(t.handshake_poll(&tables, now).map(|f| (slot, f)));
            if let Some(at) = t.handshake_due(now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        if let Some(at) = next {
            self.timers.arm(SlowTimer::Handshake, at);
        }
        for (slot, f) in frames {
            self.send_on_path_port(slot, f.port, &f.bytes, now);
        }
    }

    /// Joins the groups of the configured relay rules (at start-up).
    pub fn join_configured_groups(&mut self, now: Time) {
        self.igmp = IgmpHost::new(self.state.interfaces().len(), IgmpConfig::default());
        self.mcast_changed(now);
    }

    /// Announces every address: IPv4 with a gratuitous ARP (a request for
    /// itself) now; IPv6 once Duplicate Address Detection finds it unused.
    pub fn announce(&mut self, now: Time) {
        let targets: Vec<(usize, MacAddr, Ipv4Addr)> = self
            .state
            .interfaces()
            .iter()
            .enumerate()
            .filter_map(|(p, i)| i.address.map(|a| (p, i.mac, a.addr())))
            .collect();
        for (port, mac, ip) in targets {
            let mut buf = [0u8; MAX_BUILT];
            let n = frames::arp_request(&mut buf, mac, ip, ip);
            if self.send_bytes(port, &buf[..n]) {
                self.slow.gratuitous_arp_sent.inc();
            }
        }
        self.start_dad(now);
    }

    /// Answers every packet the workers punted since the last call; returns
    /// how many.
    pub fn handle_punts(&mut self, now: Time) -> usize {
        let mut work = 0;
        for i in 0..self.punts.len() {
            let mut burst = Burst::new();
            work += self.punts[i].dequeue_burst(&mut burst);
            for m in burst {
                let ingress = self.ingress_of(m.port());
                self.handle(m, ingress, now);
            }
        }
        work
    }

    /// Whether a worker punted something not handled yet.
    pub fn punts_pending(&self) -> bool {
        self.punts.iter().any(|p| !p.is_empty())
    }

    /// When the slow path next has a timer due.
    pub fn next_deadline(&mut self) -> Option<Time> {
        self.timers.next_deadline()
    }

    /// Runs every timer due at `now`.
    pub fn run_timers(&mut self, now: Time) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                SlowTimer::Igmp => self.igmp_poll(now),
                SlowTimer::Resolve(ip) => self.resolve(ip, now),
                SlowTimer::NeighborProbe(ip) => self.probe(ip, now),
                SlowTimer::NeighborSweep => {
                    self.sweep_neighbors(now);
                    self.timers.arm(SlowTimer::NeighborSweep, now + SWEEP_EVERY);
                }
                SlowTimer::RelayResolve => {
                    self.resolve_wanted_next_hops();
                    self.timers.arm(SlowTimer::RelayResolve, now + ARP_RETRY);
                }
                SlowTimer::Probe(peer, path) => {
                    self.probe_path(usize::from(peer), usize::from(path), now);
                }
                SlowTimer::Bfd(peer) => self.bfd_poll_peer(usize::from(peer), now),
                SlowTimer::Handshake => self.handshake_poll(now),
                SlowTimer::RouterAdvert => self.advertise_due(now),
                SlowTimer::DadDone => self.dad_done(now),
                SlowTimer::Mld => self.mld_due(now),
                SlowTimer::Restock => self.restock(now),
            }
        }
    }

    /// Frees everything held (at shutdown).
    pub fn drain(&mut self) {
        for p in &mut self.punts {
            loop {
                let mut b = Burst::new();
                if p.dequeue_burst(&mut b) == 0 {
                    break;
                }
            }
        }
        self.pending.clear();
    }

    /// Where a punted packet entered: its port, or the tunnel (decapsulated
    /// packets are marked with [`Ingress::tunnel_port_id`]).
    fn ingress_of(&self, port_id: u16) -> Ingress {
        if let Some(peer) = Ingress::tunnel_peer_of(port_id) {
            return Ingress::Tunnel(peer);
        }
        Ingress::Port(
            self.state
                .interfaces()
                .iter()
                .position(|i| i.port_id == port_id)
                .unwrap_or(usize::MAX),
        )
    }

    fn handle(&mut self, mut m: Mbuf, ingress: Ingress, now: Time) {
        let tables = self.state.tables();
        let port = match ingress {
            Ingress::Port(p) => Some(p),
            Ingress::Tunnel(_) => None,
        };
        match (process(&tables, ingress, m.data_mut()), port) {
            (Verdict::Forward(out), _) => {
                self.send(out, m);
            }
            (Verdict::Drop(reason) | Verdict::RelayDrop(_, reason), _) => {
                self.counters.drop_one(reason);
            }
            // Only IGMP is punted from multicast; a relay verdict here means
            // the rules changed since the worker looked: not ours to relay.
            (Verdict::Relay(_), _) => self.counters.drop_one(DropReason::McastNoRule),
            (Verdict::TunnelRx, Some(p)) => self.tunnel_control(&m, p, now),
            // Only probes are punted from the tunnel; data routed into it
            // here means the tables changed since the worker looked.
            (Verdict::TunnelRx | Verdict::TunnelTx(_), _) => {
                self.counters.drop_one(DropReason::TunnelNoPath);
            }
            (Verdict::Punt(PuntReason::Igmp), Some(p)) => self.igmp(&m, p, now),
            (Verdict::Punt(PuntReason::Arp), Some(p)) => self.arp(m, p, now),
            (Verdict::Punt(PuntReason::Igmp | PuntReason::Arp), None) => {
                self.counters.drop_one(DropReason::TunnelLoop);
            }
            (Verdict::Punt(PuntReason::ToUs), _) => self.local_delivery(m, ingress, now),
            (Verdict::Punt(PuntReason::TooBig { mtu }), _) => {
                self.counters.drop_one(DropReason::MtuExceeded);
                self.icmp_error(&m, ingress, IcmpError::FragNeeded(mtu), now);
            }
            (Verdict::Punt(PuntReason::TunnelTooBig { mtu }), _) => {
                self.counters.drop_one(DropReason::TunnelMtuDf);
                self.icmp_error(&m, ingress, IcmpError::FragNeeded(mtu), now);
            }
            (Verdict::Punt(PuntReason::TtlExpired), _) => {
                self.counters.drop_one(DropReason::TtlExpired);
                self.icmp_error(&m, ingress, IcmpError::TtlExpired, now);
            }
            (Verdict::Punt(PuntReason::NoRoute), _) => {
                self.counters.drop_one(DropReason::NoRoute);
                self.icmp_error(
                    &m,
                    ingress,
                    IcmpError::Unreachable(icmpv4::code::NET_UNREACHABLE),
                    now,
                );
            }
            (Verdict::Punt(PuntReason::NeighborMiss { next_hop, port }), _) => {
                self.hold(m, ingress, next_hop.into(), port, now)
            }
            (Verdict::Punt(PuntReason::NeighborMiss6 { next_hop, port }), _) => {
                self.hold(m, ingress, next_hop.into(), port, now)
            }
        }
    }

    fn arp(&mut self, m: Mbuf, in_port: usize, now: Time) {
        self.slow.arp_received.inc();
        let data = m.data();
        let Some(repr) = data
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(|a| ArpPacket::new_checked(a).ok())
            .and_then(|p| ArpRepr::parse(&p).ok())
        else {
            self.counters.drop_one(DropReason::ArpMalformed);
            return;
        };
        let Some(iface) = self.state.interfaces().get(in_port).cloned() else {
            return;
        };
        let Some(our) = iface.address else {
            self.counters.drop_one(DropReason::ArpNotForUs);
            return;
        };
        let sender = repr.source_protocol_addr;
        let for_us = repr.target_protocol_addr == our.addr();
        // Learn from anyone on our subnet who talks to us, or who we are
        // already tracking (RFC 826 merge); ignore the rest.
        if our.contains(&sender)
            && sender != our.addr()
            && repr.source_hardware_addr.is_unicast()
            && (for_us
                || self.state.neighbors.contains_key(&sender)
                || self.pending.contains_key(&IpAddr::V4(sender)))
        {
            self.resolved(sender.into(), repr.source_hardware_addr, in_port, now);
        }
        if repr.operation == ArpOp::Request && for_us {
            let mut buf = [0u8; MAX_BUILT];
            let n = frames::arp_reply(&mut buf, iface.mac, &repr);
            if self.send_bytes(in_port, &buf[..n]) {
                self.slow.arp_replies_sent.inc();
            }
        } else if !for_us {
            self.counters.drop_one(DropReason::ArpNotForUs);
        }
    }

    /// An IGMP message on an input port: queries are answered (later, by
    /// `igmp_poll`); other hosts' reports need nothing.
    fn igmp(&mut self, m: &Mbuf, in_port: usize, now: Time) {
        self.slow.igmp_received.inc();
        let Some(ip) = m
            .data()
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(|l3| Ipv4Packet::new_checked(l3).ok())
        else {
            self.counters.drop_one(DropReason::IgmpMalformed);
            return;
        };
        let result = self.igmp.on_igmp(
            in_port,
            ip.src_addr(),
            ip.dst_addr(),
            ip.payload(),
            now,
            &mut self.rng,
        );
        match result {
            Ok(()) => self.timers.arm(SlowTimer::Igmp, now),
            Err(IgmpRxError::Malformed | IgmpRxError::BadChecksum | IgmpRxError::Unsupported) => {
                self.counters.drop_one(DropReason::IgmpMalformed);
            }
        }
    }

    /// Leaves every group at once (on shutdown), so upstream routers stop
    /// forwarding now instead of after their membership timeout. Only the
    /// first transmission goes out; its repeats would outlive us.
    pub fn leave_all_groups(&mut self, now: Time) {
        for port in 0..self.state.interfaces().len() {
            self.igmp.set_memberships(port, &[], now);
        }
        self.igmp_poll(now);
    }

    /// Sends the IGMP reports that are due and arms the next.
    fn igmp_poll(&mut self, now: Time) {
        let addrs: Vec<(MacAddr, Ipv4Addr)> = self
            .state
            .interfaces()
            .iter()
            .map(|i| (i.mac, i.address.map_or(Ipv4Addr::UNSPECIFIED, |a| a.addr())))
            .collect();
        let mut frames: Vec<(usize, Vec<u8>)> = Vec::new();
        let next = self.igmp.poll(now, &mut self.rng, &addrs, &mut |port, f| {
            frames.push((port, f.to_vec()));
        });
        match next {
            Some(at) => self.timers.arm(SlowTimer::Igmp, at),
            None => self.timers.cancel(SlowTimer::Igmp),
        }
        for (port, f) in &frames {
            if self.send_bytes(*port, f) {
                self.slow.igmp_reports_sent.inc();
            }
        }
    }

    /// Rules changed: the memberships each input port needs, and its
    /// multicast MAC filter.
    fn mcast_changed(&mut self, now: Time) {
        let ports = self.state.interfaces().len();
        let mut wanted: Vec<Vec<Membership>> = vec![Vec::new(); ports];
        for r in self.state.mcast_rules() {
            if let Some(w) = wanted.get_mut(r.key.port) {
                w.push(Membership {
                    group: r.key.group,
                    source: r.key.source,
                });
            }
        }
        for (port, w) in wanted.iter().enumerate() {
            self.igmp.set_memberships(port, w, now);
            let mut macs: Vec<[u8; 6]> = w
                .iter()
                .map(|m| MacAddr::from_ipv4_multicast(m.group).0)
                .collect();
            // IPv6 Neighbor Discovery reaches us through all nodes and the
            // solicited-node groups of our addresses.
            let groups = self.mld.groups(port).iter().copied();
            let all_nodes =
                (!self.mld.groups(port).is_empty()).then_some(crate::wire::ipv6::ALL_NODES);
            macs.extend(
                groups
                    .chain(all_nodes)
                    .map(|g| crate::wire::ipv6::multicast_mac(g).0),
            );
            macs.sort_unstable();
            macs.dedup();
            // Ports that keep no filter list (af_packet, pcap) receive every
            // group anyway: the appliance runs them in allmulticast mode.
            let port_id = self.state.interfaces()[port].port_id;
            if dpdk_bindings::port::set_multicast_filter(port_id, &macs).is_err() {
                self.slow.mcast_filter_unsupported.inc();
            }
        }
        self.timers.arm(SlowTimer::Igmp, now);
    }

    fn igmp_status(&self) -> Response {
        let names: Vec<String> = self
            .state
            .interfaces()
            .iter()
            .map(|i| i.name.clone())
            .collect();
        let ports: Vec<serde_json::Value> = self
            .igmp
            .status()
            .into_iter()
            .map(|p| {
                let mut v = serde_json::to_value(&p).unwrap_or_default();
                v["interface"] = names.get(p.port).cloned().unwrap_or_default().into();
                v
            })
            .collect();
        Response::ok(json!({ "ports": ports }))
    }

    /// `ip` answered (ARP or Neighbor Discovery) from `mac` on `in_port`:
    /// learned, its probing ended, and what waited for it sent.
    fn resolved(&mut self, ip: IpAddr, mac: MacAddr, in_port: usize, now: Time) {
        let known = self.state.neighbor(ip).is_some();
        // Held back until what waited for this neighbour is on its way
        // (queued to a worker or sent): the workers then forward the
        // flows' newer packets after it, not before.
        self.state.learn_held(ip, mac, in_port, now);
        if !known {
            self.slow.neighbors_learned.inc();
        }
        if self.probes.remove(&ip).is_some() {
            self.timers.cancel(SlowTimer::NeighborProbe(ip));
        }
        if let Some(p) = self.pending.remove(&ip) {
            self.timers.cancel(SlowTimer::Resolve(ip));
            for (held, ingress) in p.held {
                self.slow.held_packets_released.inc();
                self.handle(held, ingress, now);
            }
        }
        self.state.publish_held();
    }

    fn local_delivery(&mut self, mut m: Mbuf, ingress: Ingress, now: Time) {
        if frames6::is_ipv6(m.data()) {
            self.local_delivery6(&m, ingress, now);
            return;
        }
        let mac = match ingress {
            Ingress::Port(p) => match self.state.interfaces().get(p) {
                Some(i) => i.mac,
                None => return,
            },
            // The reply is encapsulated: its inner MACs are never seen.
            Ingress::Tunnel(_) => MacAddr::ZERO,
        };
        // The pipeline already validated the IPv4 header.
        let protocol = m
            .data()
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(|l3| Ipv4Packet::new_checked(l3).ok())
            .map(|ip| ip.protocol());
        if let (Some(IpProtocol::UDP), Ingress::Port(p)) = (protocol, ingress) {
            if self.peers.iter().any(Option::is_some) && BfdPaths::is_bfd(m.data()) {
                self.bfd_packet(&m, p, now);
                return;
            }
        }
        if protocol == Some(IpProtocol::ICMP) {
            if frames::echo_reply_in_place(m.data_mut(), mac) {
                self.slow.echo_replies_sent.inc();
                match ingress {
                    Ingress::Port(p) => {
                        self.send(p, m);
                    }
                    Ingress::Tunnel(peer) => {
                        self.send_through_tunnel(peer, m.data(), now);
                    }
                }
            } else {
                self.counters.drop_one(DropReason::IcmpMalformed);
            }
            return;
        }
        self.counters.drop_one(DropReason::LocalUnsupported);
        let code = if matches!(protocol, Some(IpProtocol::TCP | IpProtocol::UDP)) {
            icmpv4::code::PORT_UNREACHABLE
        } else {
            icmpv4::code::PROTOCOL_UNREACHABLE
        };
        self.icmp_error(&m, ingress, IcmpError::Unreachable(code), now);
    }

    fn icmp_error(&mut self, offending: &Mbuf, ingress: Ingress, kind: IcmpError, now: Time) {
        if frames6::is_ipv6(offending.data()) {
            self.icmp6_error(offending, ingress, kind, now);
            return;
        }
        let source = match ingress {
            Ingress::Port(p) => self.own_address(p),
            Ingress::Tunnel(_) => self.tunnel_side_address().map(|ip| (MacAddr::ZERO, ip)),
        };
        let Some((mac, ip)) = source else {
            return;
        };
        let mut buf = [0u8; MAX_BUILT];
        let Some(n) = frames::icmp_error(&mut buf, mac, ip, offending.data(), kind) else {
            return;
        };
        if !self.icmp_bucket.take(now) {
            self.slow.icmp_errors_rate_limited.inc();
            return;
        }
        let sent = match ingress {
            Ingress::Port(p) => self.send_bytes(p, &buf[..n]),
            Ingress::Tunnel(peer) => self.send_through_tunnel(peer, &buf[..n], now),
        };
        if sent {
            self.slow.icmp_errors_sent.inc();
        }
    }

    /// The address ICMP about tunnel traffic comes from: the first interface
    /// that carries no tunnel path (the LAN side), else any.
    fn tunnel_side_address(&self) -> Option<Ipv4Addr> {
        self.lan_side_first()
            .find_map(|i| i.address.map(|a| a.addr()))
    }

    /// The interfaces that carry no tunnel path (the LAN side), then every
    /// interface: where the appliance's own packets into the tunnel come
    /// from.
    fn lan_side_first(&self) -> impl Iterator<Item = &crate::interface::Interface> + '_ {
        let path_ports: Vec<usize> = self
            .state
            .peers()
            .flat_map(|t| t.paths.iter().map(|p| p.port))
            .collect();
        let ifaces = self.state.interfaces();
        ifaces
            .iter()
            .enumerate()
            .filter(move |(i, _)| !path_ports.contains(i))
            .map(|(_, i)| i)
            .chain(ifaces.iter())
    }

    /// Sends one of our own packets (an Ethernet frame) to peer `peer`.
    fn send_through_tunnel(&mut self, peer: u16, frame: &[u8], now: Time) -> bool {
        let tables = self.state.tables();
        let Some(out) = self
            .tunnel_mut(usize::from(peer))
            .and_then(|t| t.encapsulate(&tables, frame, now))
        else {
            self.counters.drop_one(DropReason::TunnelNoPath);
            return false;
        };
        self.send_on_path_port(usize::from(peer), out.port, &out.bytes, now)
    }

    /// A probe, probe reply or handshake message for one of our tunnel
    /// endpoints, given to the peer it is from.
    fn tunnel_control(&mut self, m: &Mbuf, in_port: usize, now: Time) {
        let tables = self.state.tables();
        let Some(peer) = self.control_peer(m.data(), in_port) else {
            self.counters.drop_one(DropReason::TunnelUnknownPath);
            return;
        };
        let Some(t) = self.tunnel_mut(peer) else {
            return;
        };
        let reply = t.on_control(&tables, m.data(), in_port, now);
        let woke = t.note_heard(now);
        if let Some(f) = reply {
            self.send_on_path_port(peer, f.port, &f.bytes, now);
        }
        if woke {
            self.probe_every_path_now(peer, now);
        }
    }

    /// The peer a control packet is from: the one its Key ID names (sealed);
    /// in clear, and for handshakes, the one with a path from its source;
    /// among several (peers behind NAT on learned paths), the one whose key
    /// an initiation was made with, or whose handshake a response or cookie
    /// answers.
    fn control_peer(&mut self, frame: &[u8], in_port: usize) -> Option<usize> {
        let rx = crate::tunnel::encap::parse_rx(frame).ok()?;
        if rx.header.key != 0 {
            return crate::tunnel::crypto::peer_of_key(rx.header.key)
                .filter(|p| self.tunnel(*p).is_some());
        }
        let on_path = |t: &MgmtTunnel| {
            t.table()
                .rx_path(in_port, rx.src, rx.dst, rx.header.path)
                .is_some()
        };
        self.remotes.follow(self.state.tunnels());
        if let Some(slot) = self.remotes.index.by_remote(rx.src, rx.header.path) {
            if self.tunnel(slot).is_some_and(on_path) {
                return Some(slot);
            }
        }
        let mut from = self
            .remotes
            .index
            .learning()
            .iter()
            .filter_map(|i| Some((*i, self.tunnel(*i)?)))
            .filter(|(_, t)| on_path(t));
        let first = from.next()?;
        let Some(second) = from.next() else {
            return Some(first.0);
        };
        let mut candidates = [first, second].into_iter().chain(from);
        let body = rx.payload(frame);
        match rx.header.kind {
            Kind::HandshakeInitiation => {
                let start = rx.offset.checked_sub(TunnelPacket::<&[u8]>::HEADER_LEN)?;
                let header = frame.get(start..rx.offset)?;
                let key = first.1.initiator_of(header, body)?;
                candidates
                    .find(|(_, t)| t.peer_key() == Some(key))
                    .map(|(i, _)| i)
            }
            Kind::HandshakeResponse | Kind::CookieReply => candidates
                .find(|(_, t)| t.awaits(rx.header.kind, body))
                .map(|(i, _)| i),
            _ => Some(first.0),
        }
    }

    /// Peer `peer` was unreachable and is heard again: every path's next
    /// probe goes now.
    fn probe_every_path_now(&mut self, peer: usize, now: Time) {
        let Some(t) = self.tunnel(peer) else {
            return;
        };
        let index = t.table().index;
        for path in 0..t.table().paths.len() {
            self.timers.arm(probe_timer(index, path), now);
        }
    }

    /// Probes path `path` of peer `peer`, checks its carrier, and re-arms.
    fn probe_path(&mut self, peer: usize, path: usize, now: Time) {
        let tables = self.state.tables();
        let Some(t) = self
            .peers
            .get_mut(peer)
            .and_then(Option::as_mut)
            .map(|p| &mut p.tunnel)
        else {
            return;
        };
        let Some(port) = t.table().paths.get(path).map(|p| p.port) else {
            return;
        };
        let carrier = tables.interfaces.get(port).is_none_or(|i| i.has_carrier());
        let woke = t.note_heard(now);
        let frame = t.probe(&tables, path, carrier, now);
        let interval = t.next_probe_gap(now);
        // A learned path's peer may have moved (a NAT renumbered): its new next hop is
        // resolved at once rather than at the next sweep.
        let moved = t
            .table()
            .paths
            .get(path)
            .filter(|p| p.learned)
            .and_then(|_| t.table().next_hop(path))
            .filter(|nh| {
                tables.neighbor_on(*nh, port).is_none()
                    && !self.pending.contains_key(&IpAddr::V4(*nh))
            });
        if let Some(f) = frame {
            self.send_on_path_port(peer, f.port, &f.bytes, now);
        }
        if let Some(nh) = moved {
            let due = self
                .learned_arp
                .get(&nh)
                .is_none_or(|at| now.duration_since(*at) >= LEARNED_ARP_EVERY);
            if due {
                self.learned_arp
                    .retain(|_, at| now.duration_since(*at) < ARP_RETRY);
                self.learned_arp.insert(nh, now);
                self.arp_request(port, nh);
            }
        }
        let key = probe_timer(u16::try_from(peer).unwrap_or(u16::MAX), path);
        self.timers.arm(key, now + interval);
        if woke {
            self.probe_every_path_now(peer, now);
        }
    }

    /// Runs every peer's BFD sessions' timers and sends what is due.
    fn bfd_poll(&mut self, now: Time) {
        for peer in 0..self.peers.len() {
            self.bfd_poll_peer(peer, now);
        }
    }

    /// [`Self::bfd_poll`] for peer `peer` (its slot) alone.
    fn bfd_poll_peer(&mut self, peer: usize, now: Time) {
        let tables = self.state.tables();
        let Some(b) = self.bfd_mut(peer) else {
            return;
        };
        let frames = b.poll(&tables, now);
        self.bfd_sent(peer, frames, now);
        self.rearm_bfd(peer);
    }

    /// The peer and path index `name` names: `peer/path`, or a path name
    /// only one peer has.
    ///
    /// # Errors
    /// No tunnel, no such path, or a name several peers' paths have.
    fn find_path(&self, name: &str) -> Result<(usize, usize), String> {
        if self.state.peers().next().is_none() {
            return Err("no tunnel is configured".into());
        }
        // `peer/path` when the part before the slash names a peer; else the whole is a
        // path's name.
        let (peer, path) = match name.split_once('/') {
            Some((peer, path)) if self.state.peers().any(|t| t.name == peer) => (Some(peer), path),
            _ => (None, name),
        };
        let found: Vec<(usize, usize)> = self
            .state
            .peers()
            .filter(|t| peer.is_none_or(|p| t.name == p))
            .filter_map(|t| {
                let i = usize::from(t.index);
                Some((i, t.paths.iter().position(|p| p.name == path)?))
            })
            .collect();
        match found[..] {
            [one] => Ok(one),
            [] => {
                let names: Vec<String> = self
                    .state
                    .peers()
                    .flat_map(|t| t.paths.iter().map(|p| path_name(t, &p.name)))
                    .collect();
                Err(format!("path: one of {names:?}, not {name:?}"))
            }
            _ => Err(format!(
                "path: several peers have a path {name:?}; name it as PEER/{name}"
            )),
        }
    }

    /// Changes path `name`'s BFD timers (`appliancectl bfd set`).
    fn bfd_set(&mut self, name: &str, change: bfd::TimerChange, now: Time) -> Response {
        let (peer, index) = match self.find_path(name) {
            Ok(at) => at,
            Err(e) => return Response::err(e),
        };
        let Some(b) = self.bfd_mut(peer) else {
            return Response::err(format!("path {name} runs no BFD session"));
        };
        match b.change_timers(index, change, now) {
            Ok(status) => {
                if let Some(t) = self.tunnel_mut(peer) {
                    // As configured timers give it: Detect Mult × the slower interval.
                    let slower = status.desired_min_tx_us.max(status.required_min_rx_us);
                    let detect = u64::from(slower) * u64::from(status.detect_mult);
                    t.set_bfd_detect(index, Duration::from_micros(detect));
                }
                // Republishes the sessions (the new timers show at once) and re-arms.
                self.bfd_poll_peer(peer, now);
                Response::ok(json!({ "path": name, "bfd": status }))
            }
            Err(e) => Response::err(format!("path {name}: {e}")),
        }
    }

    /// A BFD packet for us arrived on port `in_port`: the peer whose
    /// sessions claim it takes it (the first counts it discarded if none
    /// does).
    fn bfd_packet(&mut self, m: &Mbuf, in_port: usize, now: Time) {
        let tables = self.state.tables();
        let claims =
            |p: &Option<PeerState>| p.as_ref().is_some_and(|p| p.bfd.claims(m.data(), in_port));
        let Some(peer) = self
            .peers
            .iter()
            .position(claims)
            .or_else(|| self.peers.iter().position(Option::is_some))
        else {
            return;
        };
        let Some(b) = self.bfd_mut(peer) else {
            return;
        };
        let frames = b.on_packet(&tables, m.data(), in_port, now);
        self.bfd_sent(peer, frames, now);
        self.rearm_bfd(peer);
    }

    /// Sends peer `peer`'s BFD frames, hands its state changes to that
    /// peer's health and republishes its sessions.
    fn bfd_sent(&mut self, peer: usize, frames: Vec<bfd::PortFrame>, now: Time) {
        for (port, f) in &frames {
            self.send_on_path_port(peer, *port, f, now);
        }
        let Some(PeerState {
            tunnel: t, bfd: b, ..
        }) = self.peers.get_mut(peer).and_then(Option::as_mut)
        else {
            return;
        };
        let events = b.take_events();
        for e in &events {
            t.bfd_changed(e.path, e.change.from, e.change.to, e.remote_state, now);
        }
        if !frames.is_empty() || !events.is_empty() {
            for (path, status) in b.statuses() {
                t.publish_bfd(path, status);
            }
        }
    }

    /// Arms peer `peer`'s BFD timer for its first session with work due.
    fn rearm_bfd(&mut self, peer: usize) {
        let next = self
            .peers
            .get(peer)
            .and_then(Option::as_ref)
            .and_then(|p| p.bfd.next_deadline());
        let timer = SlowTimer::Bfd(u16::try_from(peer).unwrap_or(u16::MAX));
        match next {
            Some(at) => self.timers.arm(timer, at),
            None => self.timers.cancel(timer),
        }
    }

    fn hold(&mut self, m: Mbuf, ingress: Ingress, next_hop: IpAddr, port: usize, now: Time) {
        let limit = self.cfg.arp_hold_packets;
        let new = !self.pending.contains_key(&next_hop);
        if new && self.pending.len() >= MAX_UNRESOLVED {
            // A scan of a large subnet (an IPv6 /64 is 2^64 next hops, RFC
            // 6583) must not take the pool's buffers or flood solicitations.
            self.counters.drop_one(DropReason::NeighborHoldOverflow);
            return;
        }
        let p = self.pending.entry(next_hop).or_insert_with(|| Pending {
            port,
            held: VecDeque::new(),
            tries: 0,
        });
        if p.held.len() >= limit {
            // Keep the newest, like Linux's unres_qlen.
            p.held.pop_front();
            self.counters.drop_one(DropReason::NeighborHoldOverflow);
        }
        if limit > 0 {
            p.held.push_back((m, ingress));
        } else {
            self.counters.drop_one(DropReason::NeighborHoldOverflow);
        }
        if new {
            self.resolve(next_hop, now);
        }
    }

    /// Sends (or gives up on) the ARP request or Neighbor Solicitation for
    /// a pending next hop.
    fn resolve(&mut self, next_hop: IpAddr, now: Time) {
        let Some(p) = self.pending.get_mut(&next_hop) else {
            return;
        };
        if p.tries >= self.cfg.arp_retries {
            self.give_up(next_hop, now);
            return;
        }
        p.tries += 1;
        let port = p.port;
        self.timers
            .arm(SlowTimer::Resolve(next_hop), now + ARP_RETRY);
        self.solicit(port, next_hop, None);
    }

    /// Stops resolving `next_hop`: what waited for it is dropped
    /// (`neighbor_unresolved`) and its senders told the host is unreachable.
    fn give_up(&mut self, next_hop: IpAddr, now: Time) {
        self.timers.cancel(SlowTimer::Resolve(next_hop));
        let held = self
            .pending
            .remove(&next_hop)
            .map(|p| p.held)
            .unwrap_or_default();
        for (m, ingress) in held {
            self.counters.drop_one(DropReason::NeighborUnresolved);
            self.icmp_error(
                &m,
                ingress,
                IcmpError::Unreachable(icmpv4::code::HOST_UNREACHABLE),
                now,
            );
        }
    }

    /// Asks who has `ip` on `port`: ARP, or a Neighbor Solicitation (to its
    /// solicited-node group, or with `unicast` straight to the MAC we hold
    /// for it, to confirm it is still there).
    fn solicit(&mut self, port: usize, ip: IpAddr, unicast: Option<MacAddr>) {
        match ip {
            IpAddr::V4(ip) => self.arp_request(port, ip),
            IpAddr::V6(ip) => self.neighbor_solicit(port, ip, unicast),
        }
    }

    /// Keeps the next hops of unicast relay outputs and of tunnel paths
    /// resolved: the workers only look neighbours up, so the slow path asks
    /// for the missing ones (on its `RelayResolve` timer, once per
    /// `ARP_RETRY`, for as long as they are needed).
    fn resolve_wanted_next_hops(&mut self) {
        let tables = self.state.tables();
        let mut wanted: Vec<(Ipv4Addr, usize)> = Vec::new();
        for rule in &tables.mcast.rules {
            for out in rule.outputs.iter().filter(|o| o.l2 == L2Dest::Unicast) {
                let next_hop = tables.next_hop_on_port(out.destination, out.port);
                if let Some(nh) = next_hop.filter(|nh| !tables.neighbors.contains_key(nh)) {
                    wanted.push((nh, out.port));
                }
            }
        }
        for t in self.peers.iter().flatten().map(|p| &p.tunnel) {
            wanted.extend(
                t.next_hops()
                    .filter(|(nh, port)| tables.neighbors.get(nh).is_none_or(|n| n.port != *port)),
            );
        }
        for (ip, port) in wanted {
            if !self.pending.contains_key(&IpAddr::V4(ip)) {
                self.arp_request(port, ip);
            }
        }
    }

    /// Our MAC and address on a port, if it has an address.
    fn own_address(&self, port: usize) -> Option<(MacAddr, Ipv4Addr)> {
        self.state
            .interfaces()
            .get(port)
            .and_then(|i| i.address.map(|a| (i.mac, a.addr())))
    }

    fn arp_request(&mut self, port: usize, target: Ipv4Addr) {
        let Some((mac, ip)) = self.own_address(port) else {
            return;
        };
        let mut buf = [0u8; MAX_BUILT];
        let n = frames::arp_request(&mut buf, mac, ip, target);
        if self.send_bytes(port, &buf[..n]) {
            self.slow.arp_requests_sent.inc();
        }
    }

    /// Re-confirms learned neighbours that have been quiet too long and
    /// forgets those that stay silent (Linux's STALE → PROBE → FAILED).
    fn sweep_neighbors(&mut self, now: Time) {
        let reachable = Duration::from_secs(u64::from(self.cfg.arp_reachable_secs));
        let quiet = |e: &crate::tables::NeighborEntry| {
            !e.is_static && now.duration_since(e.confirmed) > reachable
        };
        let v4 = self.state.neighbors.iter().filter(|(_, e)| quiet(e));
        let v6 = self.state.neighbors6.iter().filter(|(_, e)| quiet(e));
        let stale: Vec<IpAddr> = v4
            .map(|(ip, _)| IpAddr::V4(*ip))
            .chain(v6.map(|(ip, _)| IpAddr::V6(*ip)))
            .filter(|ip| !self.probes.contains_key(ip))
            .collect();
        for ip in stale {
            self.probes.insert(ip, 0);
            self.probe(ip, now);
        }
    }

    /// Sends the next ARP probe to a stale neighbour, or forgets it after
    /// `arp_retries` unanswered probes. An answer (in `arp`) ends probing.
    fn probe(&mut self, ip: IpAddr, now: Time) {
        let Some(tries) = self.probes.get_mut(&ip) else {
            return;
        };
        if *tries >= self.cfg.arp_retries {
            self.probes.remove(&ip);
            self.state.forget(ip);
            return;
        }
        *tries += 1;
        let Some((port, mac)) = self.state.neighbor(ip).map(|e| (e.port, e.mac)) else {
            self.probes.remove(&ip);
            return;
        };
        self.timers
            .arm(SlowTimer::NeighborProbe(ip), now + ARP_RETRY);
        // ARP asks the whole link, as before; IPv6 asks the neighbour itself (RFC 4861
        // §7.3.3's PROBE state).
        let unicast = ip.is_ipv6().then_some(mac);
        self.solicit(port, ip, unicast);
    }

    /// Takes a reload's new `[slowpath]` settings: the ICMP error budget starts afresh at the
    /// new rate; the ARP settings apply from the next resolution on.
    pub fn set_config(&mut self, cfg: SlowPathConfig) {
        self.icmp_bucket = TokenBucket::new(cfg.icmp_errors_per_sec);
        self.cfg = cfg;
    }

    /// Applies a reload's new `[tunnel]` settings, peer by peer (by name):
    /// a peer that stays gets one new table
    /// ([`crate::tunnel::TunnelTable::reconfigured`]) taken by the workers,
    /// the probes and BFD, the routes to its prefixes with it (a path
    /// removed sends BFD AdminDown first, a path added is probed and its
    /// next hop resolved at once; new keys in its files start a handshake
    /// under them); a peer added gets a free slot, its table, sessions and
    /// probes; a peer removed says AdminDown on its BFD sessions and goes.
    /// The other peers' tables, lanes and queues are not touched. With
    /// `rekey` (the one-peer form), the keys now in the files must still be
    /// the ones the reload planned with. Nothing changes if it fails.
    ///
    /// # Errors
    /// No tunnel runs, a change needs a restart, no slot is free, or the
    /// key files changed or cannot be read.
    pub fn reconfigure_tunnel(
        &mut self,
        cfg: &TunnelConfig,
        rekey: Option<KeyPrint>,
        now: Time,
    ) -> Result<(), String> {
        let old = Arc::clone(self.state.tunnels());
        let Some(first) = old.iter().flatten().next().cloned() else {
            return Err("no tunnel is configured".into());
        };
        let interfaces = self.state.tables().interfaces.clone();
        let views = cfg.peers();
        // Everything is made first: a failure changes nothing.
        let mut slots: Vec<Option<Arc<TunnelTable>>> = vec![None; old.len()];
        let mut keys: Vec<(usize, Option<(KeyPrint, Handshaker)>)> = Vec::new();
        for (i, (name, v)) in views.iter().enumerate() {
            let read = v
                .keys()
                .map_err(|e| {
                    let e = e.in_peer(cfg.peers.get(i), i);
                    format!("tunnel.{}: {}", e.key, e.what)
                })?
                .map(|k| {
                    (
                        k.print(),
                        crate::tunnel::crypto::handshaker(v.encryption, k),
                    )
                });
            let slot = match old.iter().flatten().find(|t| t.name == *name) {
                Some(t) => {
                    let table = t.reconfigured(v, &interfaces).map_err(|e| e.to_string())?;
                    let slot = usize::from(t.index);
                    let cell = slots.get_mut(slot).ok_or("a peer's slot is out of range")?;
                    *cell = Some(Arc::new(table));
                    slot
                }
                None => {
                    // A slot no peer held before this reload either: packets the removed
                    // peer still has in flight never reach a new one.
                    let free = (0..)
                        .find(|s| {
                            slots.get(*s).is_none_or(Option::is_none)
                                && old.get(*s).is_none_or(Option::is_none)
                        })
                        .filter(|s| *s < crate::config::tunnel::MAX_PEERS)
                        .ok_or_else(|| {
                            format!(
                                "tunnel.peers[{i}]: no free slot for peer {name} (at most {} peers, and a removed peer's slot is free only after the reload that removed it)",
                                crate::config::tunnel::MAX_PEERS
                            )
                        })?;
                    if slots.len() <= free {
                        slots.resize(free + 1, None);
                    }
                    let (workers, pool) = first.sizing();
                    let index = u16::try_from(free).unwrap_or(u16::MAX);
                    // An equal share of the pool, as `--check` held the file to; and an epoch
                    // of its own: a site that knew us before (removed, or renamed) resets its
                    // lanes for our new numbering.
                    let share = pool / u32::try_from(views.len()).unwrap_or(1).max(1);
                    slots[free] = Some(Arc::new(TunnelTable::new(
                        (name, index),
                        v,
                        &interfaces,
                        workers,
                        (share, pool),
                        fastrand::u16(1..),
                    )));
                    free
                }
            };
            keys.push((slot, read));
        }
        let relayed_in = self.state.tables().mcast.rules.iter().any(|r| {
            r.outputs
                .iter()
                .any(|o| o.port == crate::tables::TUNNEL_PORT)
        });
        if relayed_in && slots.iter().flatten().count() > 1 {
            return Err(
                "tunnel.peers: a relay rule sends into the tunnel, which is supported with one peer only (remove the rule first)"
                    .into(),
            );
        }
        if let Some(wanted) = rekey {
            let read = keys.first().and_then(|(_, k)| k.as_ref()).map(|(p, _)| *p);
            if read != Some(wanted) {
                return Err("the key files changed again during the reload".into());
            }
        }
        // Peers removed: their BFD sessions say AdminDown first, so each moves off at once.
        let removed: Vec<usize> = (0..old.len())
            .filter(|s| old[*s].is_some() && slots.get(*s).is_none_or(Option::is_none))
            .collect();
        for &s in &removed {
            if let Some(b) = self.bfd_mut(s) {
                for path in 0..b.paths() {
                    b.set_admin_down(path, true, now);
                }
            }
        }
        if !removed.is_empty() {
            self.bfd_poll(now);
        }
        for &s in &removed {
            if let Some(Some(p)) = self.peers.get_mut(s).map(Option::take) {
                log::info!("tunnel: peer {} removed", p.tunnel.table().name);
            }
        }
        for (slot, read) in keys {
            let Some(table) = slots.get(slot).cloned().flatten() else {
                continue;
            };
            self.retable_peer(slot, &table, read, now)?;
        }
        self.state.set_tunnels(slots.into());
        self.slow.route_changes.inc();
        // A path added needs its next hop.
        self.resolve_wanted_next_hops();
        self.bfd_poll(now);
        Ok(())
    }

    /// Gives peer slot `slot` its new `table`: a peer that stays takes it
    /// (paths removed say AdminDown first) and makes new sessions if its
    /// keys `read` from the files differ from those in use; a peer added
    /// gets its state and handshakes. Every path is probed from now (a path
    /// added at once; the timers of removed ones find no path and end).
    fn retable_peer(
        &mut self,
        slot: usize,
        table: &Arc<TunnelTable>,
        read: Option<(KeyPrint, Handshaker)>,
        now: Time,
    ) -> Result<(), String> {
        if self.peers.len() <= slot {
            self.peers.resize_with(slot + 1, || None);
        }
        match self.peers.get_mut(slot).and_then(Option::as_mut) {
            Some(p) => {
                let old = Arc::clone(p.tunnel.table());
                let carried = table.carried_from(&old);
                let gone: Vec<usize> = (0..old.paths.len())
                    .filter(|i| !carried.contains(&Some(*i)))
                    .collect();
                for &i in &gone {
                    p.bfd.set_admin_down(i, true, now);
                }
                if !gone.is_empty() {
                    self.bfd_poll(now);
                }
                let Some(p) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
                    return Err("a peer went away during the reload".into());
                };
                p.tunnel.retable(Arc::clone(table), now);
                p.bfd.retable(Arc::clone(table), now);
                if let Some((print, hs)) = read.filter(|(print, _)| Some(*print) != p.keys) {
                    p.keys = Some(print);
                    p.tunnel.rekey(hs, now);
                    self.timers.arm(SlowTimer::Handshake, now);
                }
            }
            None => {
                let mut p = PeerState::new(table, now);
                if let Some((print, hs)) = read {
                    p.keys = Some(print);
                    p.tunnel.encrypt(hs, now);
                    self.timers.arm(SlowTimer::Handshake, now);
                }
                log::info!("tunnel: peer {} added (slot {slot})", table.name);
                self.peers[slot] = Some(p);
            }
        }
        for path in 0..table.paths.len() {
            self.timers.arm(probe_timer(table.index, path), now);
        }
        Ok(())
    }

    /// Applies a change from the control socket and answers it.
    pub fn apply(&mut self, request: Request, now: Time) -> Response {
        let result = match request {
            Request::RouteAdd { prefix, via } => self.state.add_route(prefix, via),
            Request::RouteDel { prefix } => self.state.del_route(prefix),
            Request::McastAdd { rule, replace } => {
                let r = self.state.mcast_add(rule, replace);
                if r.is_ok() {
                    self.slow.mcast_rule_changes.inc();
                    self.mcast_changed(now);
                }
                return version_response(r);
            }
            Request::McastDel { input } => {
                let r = self.state.mcast_del(&input);
                if r.is_ok() {
                    self.slow.mcast_rule_changes.inc();
                    self.mcast_changed(now);
                }
                return version_response(r);
            }
            Request::IgmpShow {} => return self.igmp_status(),
            Request::PathAdmin { path, state } => {
                let up = state == AdminState::Up;
                let (peer, index) = match self.find_path(&path) {
                    Ok(at) => at,
                    Err(e) => return Response::err(e),
                };
                if let Some(t) = self.tunnel(peer) {
                    t.set_admin(index, up);
                }
                if let Some(b) = self.bfd_mut(peer) {
                    // The peer hears it (AdminDown) and moves off the path too.
                    b.set_admin_down(index, !up, now);
                    self.bfd_poll(now);
                }
                return Response::ok(json!({ "path": path, "admin_up": up }));
            }
            Request::BfdSet {
                path,
                desired_min_tx,
                required_min_rx,
                detect_mult,
            } => {
                let change = bfd::TimerChange {
                    desired_min_tx,
                    required_min_rx,
                    detect_mult,
                };
                return self.bfd_set(&path, change, now);
            }
            Request::Show { .. }
            | Request::McastList {}
            | Request::McastShow { .. }
            | Request::PeerShow { .. }
            | Request::LogLevel { .. }
            | Request::Reload { .. }
            | Request::PeerAdd { .. }
            | Request::PeerDel { .. } => {
                return Response::err("answered by the control thread or the management loop");
            }
        };
        if result.is_ok() {
            self.slow.route_changes.inc();
        }
        version_response(result)
    }

    /// Sends a frame of ours to peer slot `peer` (BFD, a probe, a reply, a
    /// packet through the tunnel) on one of its paths' port at once, ahead
    /// of the workers' queues, charged to that path's rate clock so the
    /// workers leave it room.
    fn send_on_path_port(&mut self, peer: usize, port: usize, bytes: &[u8], now: Time) -> bool {
        let sent = self.send_bytes(port, bytes);
        let table = self.state.tunnels().get(peer).cloned().flatten();
        if let (true, Some(t)) = (sent, table) {
            t.charge_frame(port, bytes, now.as_nanos());
        }
        sent
    }

    fn send_bytes(&mut self, port: usize, bytes: &[u8]) -> bool {
        let Some(mut m) = self.pool.alloc() else {
            self.counters.drop_one(DropReason::NoMbuf);
            return false;
        };
        let Some(dst) = u16::try_from(bytes.len()).ok().and_then(|n| m.append(n)) else {
            self.counters.drop_one(DropReason::NoMbuf);
            return false;
        };
        dst.copy_from_slice(bytes);
        self.send(port, m)
    }

    fn send(&mut self, port: usize, m: Mbuf) -> bool {
        let Some(tx) = self.tx.get_mut(port) else {
            self.counters.drop_one(DropReason::TxFull);
            return false;
        };
        tx.send(m, port, &self.counters)
    }
}

/// The timer of path `path` of peer `peer`'s probes.
fn probe_timer(peer: u16, path: usize) -> SlowTimer {
    SlowTimer::Probe(peer, u8::try_from(path).unwrap_or(u8::MAX))
}

/// How `appliancectl` and the logs name a path: `peer/path` when the
/// tunnel lists its peers, the path's name for the one peer of a two-site
/// tunnel.
pub fn path_name(table: &crate::tunnel::TunnelTable, path: &str) -> String {
    if table.name == crate::config::tunnel::ONE_PEER_NAME {
        path.to_owned()
    } else {
        format!("{}/{path}", table.name)
    }
}
