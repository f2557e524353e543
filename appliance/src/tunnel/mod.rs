//! The multipath WAN tunnel, the parts that are not tied to a worker or to
//! DPDK: what the workers read about it ([`TunnelTable`], part of the table
//! snapshot), the fast-changing path state beside it ([`PathLive`], atomics
//! the management lcore writes), the counters, and the pure machinery:
//! traffic classes ([`class`]), encapsulation ([`encap`]), path schedulers
//! ([`scheduler`]), the paths' queues ([`shaper`]), the reorder buffer
//! ([`reorder`]), path measurement ([`meter`]) and the probes' pace
//! ([`pace`]).
//!
//! How a packet crosses: a LAN packet whose destination is in one of the
//! peer's prefixes routes to the tunnel; the worker classifies it, its
//! class's scheduler picks the path (or two), and it leaves encapsulated
//! with the worker's lane and sequence numbers. At the far end the packet
//! goes to the worker that owns its lane, through the lane's reorder buffer
//! (unless its scheduler is per flow), is decapsulated and routed on.
//! `docs/tunnel.md` is the operator's page; `docs/wire-format.md` the bytes.

pub mod class;
pub mod crypto;
pub mod encap;
pub mod health;
pub mod meter;
pub mod pace;
pub mod reorder;
pub mod scheduler;
pub mod shaper;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::tunnel::{BfdConfig, SchedulerName, TunnelConfig};
use crate::interface::Interface;
use crate::stats::{CacheAligned, Counter, DropCounters, PerWorker, Rate};
use class::{Class, Classes};
use shaper::shared::PathCells;

pub use crate::config::tunnel::{MAX_PATHS, OVERHEAD};

/// The tunnel's peers by slot: a peer keeps its slot (its index: what its
/// routes name and its Key IDs are made from) for its life; a removed
/// peer's slot stays empty until a peer added later takes it. Shared by the
/// table snapshots, and replaced whole when a peer comes or goes.
pub type PeerSlots = Arc<[Option<Arc<TunnelTable>>]>;

/// Which peer a packet with no Key ID (in clear, a handshake) is from: the
/// peer of each configured path's remote address and path id (`--check`
/// makes it unique), and the peers with a learned path (any source may be
/// theirs). Built when the peers change, so a packet costs one lookup, not
/// a look at every peer.
#[derive(Debug, Default)]
pub struct PeerIndex {
    by_remote: hashbrown::HashMap<(Ipv4Addr, u8), usize>,
    learning: Vec<usize>,
}

impl PeerIndex {
    /// The index of the peers of `slots`.
    pub fn of(slots: &PeerSlots) -> Self {
        let mut index = Self::default();
        for t in slots.iter().flatten() {
            let slot = usize::from(t.index);
            for p in &t.paths {
                if p.learned {
                    index.learning.push(slot);
                } else {
                    index.by_remote.insert((p.remote, p.id), slot);
                }
            }
        }
        index.learning.dedup();
        index
    }

    /// The slot of the peer with a configured path of id `path` from `src`.
    #[inline]
    pub fn by_remote(&self, src: Ipv4Addr, path: u8) -> Option<usize> {
        self.by_remote.get(&(src, path)).copied()
    }

    /// The slots of the peers with a learned path.
    pub fn learning(&self) -> &[usize] {
        &self.learning
    }
}

/// Lanes a receiver keeps reorder state for (a sender uses one lane per
/// worker, so this bounds the peer's workers).
pub const MAX_LANES: usize = 64;
/// Outer UDP source port of lane 0; lane `l` sends from `LANE_PORT_BASE + l`
/// so that a NIC hashing on ports keeps a lane on one receive queue.
pub const LANE_PORT_BASE: u16 = 49152;

/// One path to the peer, as configured and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Name.
    pub name: String,
    /// The id both appliances use for it on the wire.
    pub id: u8,
    /// Port index of its WAN interface.
    pub port: usize,
    /// Our address on it.
    pub local: Ipv4Addr,
    /// The peer's address on it (unspecified when `learned`).
    pub remote: Ipv4Addr,
    /// The peer's address and port are learned from its authenticated
    /// packets ([`PathLive::endpoint`]) rather than configured.
    pub learned: bool,
    /// Where its packets go at layer 2 (unspecified: to the learned address).
    pub next_hop: Ipv4Addr,
    /// Configured rate (bit/s): the ceiling of its effective rate.
    pub rate_bps: u64,
    /// Path MTU.
    pub mtu: u16,
    /// Lower is preferred by `backup`.
    pub priority: u8,
    /// Only used when no non-backup path is usable.
    pub backup: bool,
    /// Its BFD session's settings.
    pub bfd: BfdConfig,
}

impl Path {
    /// Path `i` of `cfg`, resolved against the interfaces (its port index
    /// and our address on it).
    fn resolve(cfg: &TunnelConfig, i: usize, interfaces: &[Interface]) -> Path {
        let p = &cfg.paths[i];
        let port = interfaces
            .iter()
            .position(|x| x.name == p.interface)
            .unwrap_or(0);
        let local = interfaces
            .get(port)
            .and_then(|x| x.address)
            .map_or(Ipv4Addr::UNSPECIFIED, |a| a.addr());
        let remote = p.remote.unwrap_or(Ipv4Addr::UNSPECIFIED);
        Path {
            name: p.name.clone(),
            id: p.id,
            port,
            local: p.local.unwrap_or(local),
            remote,
            learned: p.remote.is_none(),
            next_hop: p.next_hop.unwrap_or(remote),
            rate_bps: p.rate.0,
            mtu: p.mtu,
            priority: p.priority,
            backup: p.backup,
            bfd: p.bfd.unwrap_or(cfg.bfd),
        }
    }
}

/// Whether a UDP destination port is the tunnel's: `tunnel_port`, or one of
/// the lanes' source ports (a NAT in front of us translates the peer's
/// packets back to the port ours left from): the data lanes' and the
/// control lane's.
#[inline]
pub fn is_tunnel_port(port: u16, tunnel_port: u16) -> bool {
    port == tunnel_port
        || (LANE_PORT_BASE..LANE_PORT_BASE + MAX_LANES as u16).contains(&port)
        || port == control_lane_port()
}

/// The source port of the control lane's packets (probes, replies,
/// handshakes, the management lcore's ICMP).
#[inline]
pub const fn control_lane_port() -> u16 {
    LANE_PORT_BASE.wrapping_add(crate::wire::tunnel::CONTROL_LANE % 0x4000)
}

/// Moves per-path state held by path index to a reloaded table's indices:
/// `carried[i]` is new path i's old index ([`TunnelTable::carried_from`]);
/// a path that stays takes its old state, a new one `fresh(i)`, and the
/// state of removed paths is returned (in old order) for the caller to wind
/// down.
pub fn carry_over<T>(
    old: Vec<T>,
    carried: &[Option<usize>],
    mut fresh: impl FnMut(usize) -> T,
) -> (Vec<T>, Vec<T>) {
    let mut old: Vec<Option<T>> = old.into_iter().map(Some).collect();
    let kept = carried
        .iter()
        .enumerate()
        .map(|(i, o)| {
            o.and_then(|o| old.get_mut(o).and_then(Option::take))
                .unwrap_or_else(|| fresh(i))
        })
        .collect();
    (kept, old.into_iter().flatten().collect())
}

/// The queue sizes of a reloaded table's paths: a path that stays keeps its
/// own (its queues exist); a path added gets what `cfg` would size it at,
/// within what is left of the pool's quarter the shapers may hold (the
/// budget `--check` holds a config to), and at least 16.
fn added_queue_sizes(
    cfg: &TunnelConfig,
    carried: &[Option<usize>],
    old: &[u32],
    mbufs: u32,
    workers: usize,
) -> Box<[u32]> {
    let kept: u32 = carried
        .iter()
        .filter_map(|o| o.and_then(|o| old.get(o)))
        .sum();
    let budget = mbufs / 4 / u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    let mut left = budget.saturating_sub(kept);
    carried
        .iter()
        .enumerate()
        .map(|(i, o)| match o.and_then(|o| old.get(o)) {
            Some(n) => *n,
            None => {
                let n = cfg.shaper_packets(i, mbufs, workers).min(left).max(16);
                left = left.saturating_sub(n);
                n
            }
        })
        .collect()
}

/// The shared cells of a reloaded table's paths: a path that stays shares
/// its old ones (`carried` as in [`carry_over`]), a new one gets `fresh(i)`.
fn shared<T>(
    carried: &[Option<usize>],
    old: &[Arc<T>],
    fresh: impl Fn(usize) -> Arc<T>,
) -> Box<[Arc<T>]> {
    carried
        .iter()
        .enumerate()
        .map(|(i, o)| {
            o.and_then(|o| old.get(o))
                .map_or_else(|| fresh(i), Arc::clone)
        })
        .collect()
}

/// Bit id: the wire ids of `paths` whose index `up` says is up.
fn ids_up(paths: &[Path], up: impl Fn(usize) -> bool) -> u16 {
    paths
        .iter()
        .enumerate()
        .filter(|(i, p)| up(*i) && usize::from(p.id) < MAX_PATHS)
        .fold(0, |ids, (_, p)| ids | 1 << p.id)
}

/// What changes fast about a path: written by the management lcore, read by
/// every worker once per burst (plain loads, no lock).
#[derive(Debug)]
#[repr(align(64))]
pub struct PathLive {
    /// Not taken down by `appliancectl path down`.
    pub admin_up: AtomicBool,
    /// Healthy (probes answered, carrier up).
    pub up: AtomicBool,
    /// Effective rate in bit/s (the configured rate, lowered while the path's
    /// queueing delay grows).
    pub rate_bps: AtomicU64,
    /// A learned path's peer endpoint, as the last packet that authenticated
    /// on it came from: address << 16 | port (0: none yet). Workers write it
    /// as they open packets, the management lcore when a handshake
    /// initiation checks out.
    pub endpoint: AtomicU64,
    /// Forward one-way delay in µs, relative to the fastest path, queueing
    /// included.
    pub delay_us: AtomicU32,
    /// What the management lcore measured and decided, for reports.
    pub report: PathReportCells,
}

/// The management lcore's view of a path, published for readers (`show
/// paths`, `/metrics`): one writer, plain stores.
#[derive(Debug, Default)]
pub struct PathReportCells {
    /// [`PathState`] code.
    pub state: std::sync::atomic::AtomicU8,
    /// When it entered the state (ns on the appliance's clock).
    pub since_ns: AtomicU64,
    /// Times it went down.
    pub flaps: AtomicU64,
    /// State changes.
    pub state_changes: AtomicU64,
    /// Times BFD said Down while it was the last usable path, delivering,
    /// and it stayed Up (`tunnel::health`).
    pub bfd_overrides: AtomicU64,
    /// Times it was the last usable path and its peer's count stopped
    /// moving, and it stayed Up (`tunnel::health`).
    pub silence_overrides: AtomicU64,
    /// Times its BFD went Down while our own shaper's queue for it was full
    /// (congestion on our side, not a dead link).
    pub bfd_down_congested: AtomicU64,
    /// Times a learned path's peer endpoint moved (a NAT renumbered or
    /// remapped), as the management lcore saw it.
    pub endpoint_moves: AtomicU64,
    /// Smoothed round trip (µs).
    pub srtt_us: AtomicU32,
    /// Round-trip variation (µs).
    pub rttvar_us: AtomicU32,
    /// Lowest recent round trip (µs).
    pub min_rtt_us: AtomicU32,
    /// Its queue: forward delay above its own base (µs).
    pub queueing_us: AtomicU32,
    /// Forward-delay jitter (µs).
    pub jitter_us: AtomicU32,
    /// Probe loss over the last second, parts per million.
    pub loss_ppm: AtomicU32,
    /// Probes sent.
    pub probes_sent: AtomicU64,
    /// Probe replies received.
    pub replies: AtomicU64,
    /// When the hold-down ends (ns on the appliance's clock; 0: none).
    pub hold_until_ns: AtomicU64,
    /// Its BFD session as last seen (`None`: BFD off on this path).
    pub bfd: arc_swap::ArcSwapOption<crate::bfd::SessionStatus>,
}

/// Why a path is down, or that it is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathState {
    /// Carrying traffic.
    Up,
    /// What we send on it stopped arriving (the peer's received count
    /// stopped moving).
    NoReplies,
    /// The WAN port has no carrier.
    NoCarrier,
    /// Not yet answered since start (used meanwhile).
    Starting,
    /// Its BFD session went down (detection time expired, or the peer said
    /// it no longer hears us).
    BfdDown,
    /// The peer took the path down administratively (its BFD said
    /// AdminDown): it leaves the schedule as gracefully as a local `path
    /// down`.
    PeerAdminDown,
    /// Delivering again, but kept out until its hold-down ends because it
    /// flapped (RFC 5882 §3.2 dampening).
    HoldDown,
}

impl PathState {
    /// As stored in [`PathReportCells::state`].
    pub fn code(self) -> u8 {
        match self {
            PathState::Starting => 0,
            PathState::Up => 1,
            PathState::NoReplies => 2,
            PathState::NoCarrier => 3,
            PathState::BfdDown => 4,
            PathState::PeerAdminDown => 5,
            PathState::HoldDown => 6,
        }
    }

    /// From [`Self::code`].
    pub fn from_code(code: u8) -> PathState {
        match code {
            1 => PathState::Up,
            2 => PathState::NoReplies,
            3 => PathState::NoCarrier,
            4 => PathState::BfdDown,
            5 => PathState::PeerAdminDown,
            6 => PathState::HoldDown,
            _ => PathState::Starting,
        }
    }

    /// Whether traffic may use the path in this state.
    pub fn carries(self) -> bool {
        matches!(self, PathState::Up | PathState::Starting)
    }
}

impl PathLive {
    fn new(rate_bps: u64) -> Self {
        Self {
            admin_up: AtomicBool::new(true),
            up: AtomicBool::new(true),
            rate_bps: AtomicU64::new(rate_bps),
            endpoint: AtomicU64::new(0),
            delay_us: AtomicU32::new(0),
            report: PathReportCells::default(),
        }
    }

    /// The learned endpoint, if one was learned.
    #[inline]
    pub fn learned_endpoint(&self) -> Option<(Ipv4Addr, u16)> {
        let e = self.endpoint.load(Ordering::Relaxed);
        (e != 0).then(|| (Ipv4Addr::from((e >> 16) as u32), e as u16))
    }

    /// Notes the endpoint a packet that authenticated came from (a store
    /// only when it moved).
    #[inline]
    pub fn learn(&self, ip: Ipv4Addr, port: u16) {
        let e = u64::from(u32::from(ip)) << 16 | u64::from(port);
        if self.endpoint.load(Ordering::Relaxed) != e {
            self.endpoint.store(e, Ordering::Relaxed);
        }
    }

    /// Whether the workers may send on it (its next hop aside).
    #[inline]
    pub fn usable(&self) -> bool {
        self.admin_up.load(Ordering::Relaxed) && self.up.load(Ordering::Relaxed)
    }
}

/// Counters of one path, written by one worker.
#[derive(Debug, Default)]
pub struct PathCounters {
    /// Packets the TX queue took.
    pub tx_packets: Counter,
    /// Their bytes (outer frames).
    pub tx_bytes: Counter,
    /// Tunnel packets received on it (data, before reordering).
    pub rx_packets: Counter,
    /// Their bytes (outer frames).
    pub rx_bytes: Counter,
    /// Packets lost on it, by reason.
    pub drops: DropCounters,
    /// Its shaper, per tier (highest first).
    pub tiers: [TierCounters; shaper::TIERS],
}

crate::counter_set! {
    /// One tier of a path's shaper on one worker.
    pub struct TierCounters {
        packets: "packets that left the queue",
        bytes: "their bytes (outer frames)",
        aqm_drops: "packets CoDel dropped (waited above target for an interval)",
        overlimit_drops: "packets dropped because the queue was full (the fattest flow's oldest)",
        queued: "packets waiting now (gauge)",
    }
}

/// Counters of one traffic class, written by one worker.
#[derive(Debug, Default)]
pub struct ClassCounters {
    /// Packets that entered the tunnel in this class.
    pub packets: Counter,
    /// Their bytes (inner packets).
    pub bytes: Counter,
    /// Extra copies sent (the second copy of `redundant`).
    pub copies: Counter,
    /// Packets with no usable path.
    pub no_path: Counter,
}

crate::counter_set! {
    /// The reorder buffer of one lane (single writer: the worker that owns
    /// it). Mirrors [`reorder::Counters`].
    pub struct LaneCounters {
        in_order: "packets delivered in lane order",
        held: "packets delivered after waiting for an earlier one",
        released_early: "holes skipped because the missing packet was proven lost",
        timed_out: "holes skipped at their deadline",
        late: "packets that arrived after their hole was skipped (delivered out of order)",
        duplicate: "second copies dropped",
        stale: "packets too old to deliver, dropped (behind the duplicate window, or expired)",
        overflow: "holes skipped because the buffer was full",
        out_of_window: "sequence numbers far outside the window, dropped",
        unordered: "packets of per-flow schedulers, delivered at once",
        resyncs: "times the sender restarted (new epoch)",
        expired: "late packets dropped because they were held in the network longer than base delay plus max_hold",
        occupancy: "packets held now (gauge)",
    }
}

impl LaneCounters {
    /// Copies a lane's counters (the owner calls this after using the lane).
    pub fn store(&self, c: &reorder::Counters, occupancy: usize) {
        self.in_order.set(c.in_order);
        self.held.set(c.held);
        self.released_early.set(c.released_early);
        self.timed_out.set(c.timed_out);
        self.late.set(c.late);
        self.duplicate.set(c.duplicate);
        self.stale.set(c.stale);
        self.overflow.set(c.overflow);
        self.out_of_window.set(c.out_of_window);
        self.unordered.set(c.unordered);
        self.resyncs.set(c.resyncs);
        self.expired.set(c.expired);
        self.occupancy.set(occupancy as u64);
    }
}

/// The paths' shapers: settings and the cells the workers share.
#[derive(Debug)]
pub struct Shaping {
    /// The share of each path's effective rate shaped to (percent).
    pub rate_percent: u64,
    /// CoDel and the flow quantum.
    pub settings: shaper::Settings,
    /// Per path index: packets each worker's queue holds at most.
    pub packets: Box<[u32]>,
    /// Per path index: the rate clock and what the workers hold.
    pub cells: Box<[Arc<PathCells>]>,
}

/// Everything about the tunnel the workers read, part of every table
/// snapshot (an `Arc`). Built from the config at start; a reload builds a new
/// one ([`Self::reconfigured`]) that shares everything that runs (the path
/// atomics, counters, rates, shaper clocks and keys) with the one before, so
/// the workers and reports carry on from the same cells.
#[derive(Debug)]
pub struct TunnelTable {
    /// The peer's name (`tunnel.peers[].name`).
    pub name: String,
    /// The peer's index among the tunnel's peers: its routes name it, and
    /// the Key IDs its sessions receive under are its block
    /// ([`crypto::key_ids`]).
    pub index: u16,
    /// Outer UDP destination port.
    pub port: u16,
    /// Our epoch: changes on every start, so the peer resets its lanes.
    pub epoch: u16,
    /// The peer's prefixes, IPv4 and IPv6.
    pub prefixes: Vec<IpNet>,
    /// The same, as the inner source check reads them.
    sources: Sources,
    /// Paths, by index.
    pub paths: Vec<Path>,
    /// Wire path id → index.
    by_id: [Option<u8>; MAX_PATHS],
    /// Bit p: port index p carries a path (packets from the peer arrive
    /// only there).
    path_ports: u64,
    /// Traffic classes, default last.
    pub classes: Classes,
    /// Largest inner packet (the smallest path MTU less the overhead).
    pub inner_mtu: u16,
    /// Reorder buffer settings of each lane.
    pub reorder: reorder::Config,
    /// How often the management lcore probes each path.
    pub probe_interval: Duration,
    /// Longest hold-down of a flapping path.
    pub max_hold_down: Duration,
    /// BFD packets discarded, by reason (all paths' sessions).
    pub bfd_discards: Arc<crate::bfd::Discards>,
    /// Per path index: live state (a path keeps it across reloads).
    pub live: Box<[Arc<PathLive>]>,
    /// Bit id: the path with that wire id is up by health, as `live` says
    /// ([`Self::set_up`] keeps the two together): what a receiver reads of
    /// its peer's paths in one load.
    live_ids: AtomicU16,
    /// Per path index: counters.
    pub path_counters: Box<[Arc<PerWorker<PathCounters>>]>,
    /// Per class index: counters (a class keeps them across reloads by its
    /// name).
    pub class_counters: Box<[Arc<PerWorker<ClassCounters>>]>,
    /// Per lane: the reorder counters of its owner.
    pub lane_counters: Arc<[CacheAligned<LaneCounters>]>,
    /// Per path index: sent and received per second (management lcore).
    pub path_rates: Box<[Arc<(Rate, Rate)>]>,
    /// The paths' shapers (`None`: shaping off).
    pub shaping: Option<Shaping>,
    /// Per class index: entering the tunnel per second (management lcore).
    pub class_rates: Box<[Arc<Rate>]>,
    /// The keys and handshake figures (`None`: the tunnel is in clear).
    pub crypto: Option<Arc<crypto::TunnelCrypto>>,
    /// Workers, and packets in the pool this peer's share: what a path
    /// added by a reload is sized from.
    workers: usize,
    mbufs: u32,
    /// Packets in the whole pool (what a peer added by a reload gets its
    /// share of).
    pool: u32,
}

/// A peer's prefixes as masked numbers: what a decapsulated packet's inner
/// source is checked against (as WireGuard's allowed IPs), a few compares
/// per packet for the handful of prefixes a site has.
#[derive(Debug, Clone, Default)]
struct Sources {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

impl Sources {
    fn of(prefixes: &[IpNet]) -> Self {
        let v4 = prefixes.iter().filter_map(|p| match p {
            IpNet::V4(n) => Some((u32::from(n.network()), u32::from(n.netmask()))),
            IpNet::V6(_) => None,
        });
        let v6 = prefixes.iter().filter_map(|p| match p {
            IpNet::V6(n) => Some((u128::from(n.network()), u128::from(n.netmask()))),
            IpNet::V4(_) => None,
        });
        Self {
            v4: v4.collect(),
            v6: v6.collect(),
        }
    }
}

/// Why a changed config cannot be applied to a running tunnel's table (the
/// reload refuses these changes before it gets here; this is the table's
/// own guard).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the tunnel cannot take this change while running: {0}")]
pub struct NotLive(pub String);

impl TunnelTable {
    /// Resolves a validated config against the interfaces (port indices and
    /// addresses); `workers` sizes the counters and, with the pool's `mbufs`,
    /// the reorder buffers; `epoch` identifies this run.
    pub fn new(
        (name, index): (&str, u16),
        cfg: &TunnelConfig,
        interfaces: &[Interface],
        workers: usize,
        (mbufs, pool): (u32, u32),
        epoch: u16,
    ) -> Self {
        let reorder_packets = cfg.reorder_packets(mbufs, workers);
        let paths: Vec<Path> = (0..cfg.paths.len())
            .map(|i| Path::resolve(cfg, i, interfaces))
            .collect();
        let classes = classes(cfg, &paths);
        let n_classes = classes.all().len();
        Self {
            name: name.to_owned(),
            index,
            port: cfg.port,
            epoch,
            prefixes: cfg.prefixes.clone(),
            sources: Sources::of(&cfg.prefixes),
            live: paths
                .iter()
                .map(|p| Arc::new(PathLive::new(p.rate_bps)))
                .collect(),
            live_ids: AtomicU16::new(ids_up(&paths, |_| true)),
            path_counters: paths
                .iter()
                .map(|_| Arc::new(PerWorker::zeroed(workers)))
                .collect(),
            class_counters: (0..n_classes)
                .map(|_| Arc::new(PerWorker::zeroed(workers)))
                .collect(),
            lane_counters: (0..MAX_LANES).map(|_| CacheAligned::default()).collect(),
            path_rates: paths.iter().map(|_| Arc::default()).collect(),
            class_rates: (0..n_classes).map(|_| Arc::default()).collect(),
            path_ports: path_ports(&paths),
            by_id: by_id(&paths),
            paths,
            classes,
            inner_mtu: cfg.inner_mtu(),
            reorder: reorder::Config {
                capacity: reorder_packets,
                max_hold_ns: nanos(cfg.reorder.max_hold.0),
                ..reorder::Config::default()
            },
            probe_interval: cfg.probe_interval.0,
            max_hold_down: cfg.max_hold_down.0,
            shaping: cfg.shaping.enabled.then(|| Shaping {
                rate_percent: u64::from(cfg.shaping.rate_percent),
                settings: shaper_settings(cfg),
                packets: (0..cfg.paths.len())
                    .map(|p| cfg.shaper_packets(p, mbufs, workers))
                    .collect(),
                cells: cfg
                    .paths
                    .iter()
                    .map(|_| Arc::new(PathCells::new(workers)))
                    .collect(),
            }),
            bfd_discards: Arc::default(),
            crypto: cfg.encrypted().then(|| {
                Arc::new(crypto::TunnelCrypto::new(
                    crypto::choice(cfg.encryption).1,
                    workers,
                ))
            }),
            workers,
            mbufs,
            pool,
        }
    }

    /// The table for `cfg`, a changed config of this same tunnel (the
    /// reload checked it; `interfaces` resolve the paths it adds): the same
    /// port, shaping on or off, and encryption or not. Paths may be added
    /// and removed; a path that stays (by name) keeps its id, interface and
    /// addresses, and everything that runs: its state, counters, rates and
    /// shaper clock. What else may differ: the prefixes, the paths' rates,
    /// MTUs, priorities, `backup` and BFD settings, the classes and default
    /// scheduler, the probe interval, the hold-downs, the reorder buffer's
    /// `max_hold` and the shaper's rate share and CoDel. The keys, lanes'
    /// counters and the epoch carry over; a class keeps its counters by
    /// name. The reorder buffers and the queues of the paths that stay keep
    /// the sizes they were given at start: they are carved out of the pool.
    ///
    /// # Errors
    /// A change that only a restart can make, named.
    pub fn reconfigured(
        &self,
        cfg: &TunnelConfig,
        interfaces: &[Interface],
    ) -> Result<Self, NotLive> {
        let refuse = |what: &str| Err(NotLive(what.to_string()));
        if cfg.port != self.port {
            return refuse("tunnel.port");
        }
        if cfg.encrypted() != self.crypto.is_some() {
            return refuse("tunnel.encryption");
        }
        if cfg.shaping.enabled != self.shaping.is_some() {
            return refuse("tunnel.shaping.enabled");
        }
        if cfg.paths.len() > MAX_PATHS {
            return refuse("tunnel.paths (more than 16)");
        }
        let mut paths = Vec::with_capacity(cfg.paths.len());
        let mut carried = Vec::with_capacity(cfg.paths.len());
        for (i, p) in cfg.paths.iter().enumerate() {
            let resolved = Path::resolve(cfg, i, interfaces);
            let old = self.paths.iter().position(|o| o.name == p.name);
            if let Some(o) = old.map(|o| &self.paths[o]) {
                let same = (o.id, o.port, o.local, o.remote, o.next_hop)
                    == (
                        resolved.id,
                        resolved.port,
                        resolved.local,
                        resolved.remote,
                        resolved.next_hop,
                    );
                if !same {
                    return Err(NotLive(format!(
                        "tunnel.paths[{i}] (path {}: its id, interface or addresses)",
                        p.name
                    )));
                }
            }
            paths.push(resolved);
            carried.push(old);
        }
        let classes = classes(cfg, &paths);
        let workers = self.workers;
        let (class_counters, class_rates): (Vec<_>, Vec<_>) = classes
            .all()
            .iter()
            .map(
                |c| match self.classes.all().iter().position(|o| o.name == c.name) {
                    Some(o) => (
                        Arc::clone(&self.class_counters[o]),
                        Arc::clone(&self.class_rates[o]),
                    ),
                    None => (Arc::new(PerWorker::zeroed(workers)), Arc::default()),
                },
            )
            .unzip();
        Ok(Self {
            name: self.name.clone(),
            index: self.index,
            port: self.port,
            epoch: self.epoch,
            prefixes: cfg.prefixes.clone(),
            sources: Sources::of(&cfg.prefixes),
            by_id: by_id(&paths),
            path_ports: path_ports(&paths),
            live_ids: AtomicU16::new(ids_up(&paths, |i| {
                carried[i].is_some_and(|o| self.live[o].up.load(Ordering::Relaxed))
            })),
            live: shared(&carried, &self.live, |i| {
                // Not up until the peer is heard on it (`Health::added`): the workers see
                // the new table before the management lcore's first verdict on the path.
                let live = PathLive::new(paths[i].rate_bps);
                live.up.store(false, Ordering::Relaxed);
                Arc::new(live)
            }),
            path_counters: shared(&carried, &self.path_counters, |_| {
                Arc::new(PerWorker::zeroed(workers))
            }),
            path_rates: shared(&carried, &self.path_rates, |_| Arc::default()),
            shaping: self.shaping.as_ref().map(|sh| Shaping {
                rate_percent: u64::from(cfg.shaping.rate_percent),
                settings: shaper_settings(cfg),
                packets: added_queue_sizes(cfg, &carried, &sh.packets, self.mbufs, workers),
                cells: shared(&carried, &sh.cells, |_| Arc::new(PathCells::new(workers))),
            }),
            paths,
            classes,
            inner_mtu: cfg.inner_mtu(),
            reorder: reorder::Config {
                max_hold_ns: nanos(cfg.reorder.max_hold.0),
                ..self.reorder
            },
            probe_interval: cfg.probe_interval.0,
            max_hold_down: cfg.max_hold_down.0,
            bfd_discards: Arc::clone(&self.bfd_discards),
            class_counters: class_counters.into(),
            lane_counters: Arc::clone(&self.lane_counters),
            class_rates: class_rates.into(),
            crypto: self.crypto.clone(),
            workers,
            mbufs: self.mbufs,
            pool: self.pool,
        })
    }

    /// For each path of this table, its index in `old` (the table it was
    /// reconfigured from), or `None` for a path the reload added: what holds
    /// state per path index moves it by this.
    pub fn carried_from(&self, old: &TunnelTable) -> Vec<Option<usize>> {
        self.paths
            .iter()
            .map(|p| old.paths.iter().position(|o| o.name == p.name))
            .collect()
    }

    /// Whether an inner IPv4 source address (as a number) is one of the
    /// peer's.
    #[inline]
    pub fn allows_source(&self, src: u32) -> bool {
        self.sources.v4.iter().any(|(net, mask)| src & mask == *net)
    }

    /// Whether an inner IPv6 source address (as a number) is one of the
    /// peer's.
    #[inline]
    pub fn allows_source6(&self, src: u128) -> bool {
        self.sources.v6.iter().any(|(net, mask)| src & mask == *net)
    }

    /// Bytes of tag after each packet's payload: 0 in clear.
    #[inline]
    pub fn tag_len(&self) -> usize {
        if self.crypto.is_some() {
            crypto::aead::TAG_LEN
        } else {
            0
        }
    }

    /// The rate path `p` is shaped to now (bit/s): its effective rate less
    /// the configured margin.
    #[inline]
    pub fn shaped_rate(&self, p: usize, shaping: &Shaping) -> u64 {
        let rate = self
            .live
            .get(p)
            .map_or(1, |l| l.rate_bps.load(Ordering::Relaxed));
        (rate.saturating_mul(shaping.rate_percent) / 100).max(1)
    }

    /// Charges a frame (`frame`, Ethernet first) that the management lcore
    /// sent on port index `port` at `now` to the clock of its path, so the
    /// workers leave it room (it went at once, ahead of them): the path on
    /// that port to the frame's IPv4 destination, else the port's first.
    pub fn charge_frame(&self, port: usize, frame: &[u8], now: u64) {
        let Some(sh) = &self.shaping else { return };
        let on_port = || self.paths.iter().position(|p| p.port == port);
        let path = self.path_of_frame(port, frame).or_else(on_port);
        if let Some((i, cells)) = path.and_then(|i| Some((i, sh.cells.get(i)?))) {
            cells.charge(now, frame.len() as u64, self.shaped_rate(i, sh));
        }
    }

    /// The path an outer frame leaving on `port` is for: the one to its
    /// destination address there.
    pub fn path_of_frame(&self, port: usize, frame: &[u8]) -> Option<usize> {
        let dst = frame
            .get(crate::wire::EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(|l3| crate::wire::Ipv4Packet::new_checked(l3).ok())
            .map(|ip| ip.dst_addr())?;
        self.paths
            .iter()
            .position(|p| p.port == port && p.remote == dst)
    }

    /// Packets path `p`'s shaper dropped so far because its queue was full
    /// (the management lcore tells congestion on our side by it; CoDel's
    /// drops are its normal work under load and tell nothing).
    pub fn shaper_full_drops(&self, p: usize) -> u64 {
        self.path_counters.get(p).map_or(0, |c| {
            c.total(|w| w.drops.of(crate::stats::DropReason::ShaperOverlimit))
        })
    }

    /// The index of the path with wire id `id`.
    #[inline]
    pub fn path_index(&self, id: u8) -> Option<usize> {
        Some(usize::from((*self.by_id.get(usize::from(id))?)?))
    }

    /// Where path `p`'s packets go: the peer's address and UDP port (a
    /// learned path's, once learned), and the source port to send from
    /// (`lane_port` for a configured path; the tunnel port for a learned
    /// one, so that a NAT in front of the peer matches our packets to the
    /// mapping its own made).
    #[inline]
    pub fn endpoint(&self, p: usize, lane_port: u16) -> Option<(Ipv4Addr, u16, u16)> {
        let path = self.paths.get(p)?;
        if !path.learned {
            return Some((path.remote, self.port, lane_port));
        }
        let (ip, port) = self.live.get(p)?.learned_endpoint()?;
        Some((ip, port, self.port))
    }

    /// A packet that authenticated as the newest of its (lane, path) on
    /// learned path `p` came from `rx`'s source: the path's peer is there.
    /// Taken from the control lane (probes and replies every probe
    /// interval: the NAT mapping they keep alive), and from any lane when
    /// the address moved (a NAT renumbered), so a peer whose lanes leave
    /// through different NAT ports does not move the endpoint with every
    /// packet. The caller has refused a source that could not be a peer (the
    /// pipeline's `bad_source`: a martian, a broadcast, a group, ours).
    #[inline]
    pub fn learn(&self, p: usize, rx: &encap::Rx) {
        let Some(live) = self.live.get(p) else { return };
        let moved = live.learned_endpoint().is_none_or(|(ip, _)| ip != rx.src);
        if moved || rx.header.lane == crate::wire::tunnel::CONTROL_LANE {
            live.learn(rx.src, rx.src_port);
        }
    }

    /// Path `p`'s next hop now (a learned path without a configured one:
    /// the address learned, once learned).
    #[inline]
    pub fn next_hop(&self, p: usize) -> Option<Ipv4Addr> {
        let path = self.paths.get(p)?;
        if !path.next_hop.is_unspecified() {
            return Some(path.next_hop);
        }
        self.live.get(p)?.learned_endpoint().map(|(ip, _)| ip)
    }

    /// Whether port index `port` carries one of the paths.
    #[inline]
    pub fn has_path_on(&self, port: usize) -> bool {
        port < 64 && self.path_ports & (1 << port) != 0
    }

    /// The index of the path a received packet came over: its id must name a
    /// path whose port and our address are the packet's, and whose peer
    /// address is the packet's source (a learned path takes any source: only
    /// what authenticates teaches it an endpoint).
    #[inline]
    pub fn rx_path(&self, in_port: usize, src: Ipv4Addr, dst: Ipv4Addr, id: u8) -> Option<usize> {
        let i = self.path_index(id)?;
        let p = self.paths.get(i)?;
        (p.port == in_port && (p.learned || p.remote == src) && p.local == dst).then_some(i)
    }

    /// The workers and the packets in the whole pool: what a peer added by
    /// a reload is sized from.
    pub fn sizing(&self) -> (usize, u32) {
        (self.workers, self.pool)
    }

    /// Path `path` (index) is up by health, or not: for the schedulers and
    /// the receivers. The management lcore's, the one writer.
    pub fn set_up(&self, path: usize, up: bool) {
        let (Some(live), Some(p)) = (self.live.get(path), self.paths.get(path)) else {
            return;
        };
        live.up.store(up, Ordering::Relaxed);
        let bit = 1u16.checked_shl(u32::from(p.id)).unwrap_or(0);
        if up {
            self.live_ids.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.live_ids.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Makes the word of up paths agree with the paths' flags again (the
    /// management lcore takes this table, and verdicts were given on the
    /// one before since it was made).
    pub fn resync_live_ids(&self) {
        let ids = ids_up(&self.paths, |i| {
            self.live
                .get(i)
                .is_some_and(|l| l.up.load(Ordering::Relaxed))
        });
        self.live_ids.store(ids, Ordering::Relaxed);
    }

    /// Bit id: the path with that wire id is up by health.
    #[inline]
    pub fn live_ids(&self) -> u16 {
        self.live_ids.load(Ordering::Relaxed)
    }

    /// Whether `other` is this same peer (as a reload reconfigured it), not
    /// another one in its slot: a reconfigured table shares its lanes'
    /// counters with the one before.
    pub fn same_peer(&self, other: &TunnelTable) -> bool {
        Arc::ptr_eq(&self.lane_counters, &other.lane_counters)
    }

    /// Bit p: port index p carries one of the peer's paths.
    #[inline]
    pub fn path_ports(&self) -> u64 {
        self.path_ports
    }

    /// Whether `ip` and UDP port `port` are one of our tunnel endpoints: the
    /// tunnel port, or a lane's source port (where a NAT in front of us
    /// sends the peer's packets back to).
    #[inline]
    pub fn is_endpoint(&self, ip: Ipv4Addr, port: u16) -> bool {
        is_tunnel_port(port, self.port) && self.paths.iter().any(|p| p.local == ip)
    }

    /// Samples the paths' and classes' rates, `elapsed` after the previous
    /// sample (management lcore only).
    pub fn sample_rates(&self, elapsed: Duration) {
        for (i, rates) in self.path_rates.iter().enumerate() {
            let (tx, rx) = &**rates;
            let c = &self.path_counters[i];
            tx.sample(
                c.total(|w| &w.tx_packets),
                c.total(|w| &w.tx_bytes),
                elapsed,
            );
            rx.sample(
                c.total(|w| &w.rx_packets),
                c.total(|w| &w.rx_bytes),
                elapsed,
            );
        }
        for (i, rate) in self.class_rates.iter().enumerate() {
            let c = &self.class_counters[i];
            rate.sample(c.total(|w| &w.packets), c.total(|w| &w.bytes), elapsed);
        }
    }

    /// The scheduler of each class, in class order.
    pub fn schedulers(&self) -> Vec<SchedulerName> {
        self.classes.all().iter().map(|c| c.scheduler).collect()
    }
}

/// The classes of `cfg` over `paths` (a `source-subnet` binding names its
/// path by index).
fn classes(cfg: &TunnelConfig, paths: &[Path]) -> Classes {
    let path_index = |name: &str| {
        paths
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| u8::try_from(i).ok())
    };
    Classes::new(
        cfg.classes
            .iter()
            .map(|c| Class::new(c, path_index))
            .collect(),
        Class::default_class(cfg.default_scheduler),
    )
}

/// Wire path id → index.
fn by_id(paths: &[Path]) -> [Option<u8>; MAX_PATHS] {
    let mut by_id = [None; MAX_PATHS];
    for (i, p) in paths.iter().enumerate() {
        if let Some(slot) = by_id.get_mut(usize::from(p.id)) {
            *slot = u8::try_from(i).ok();
        }
    }
    by_id
}

/// Bit p set: port index p carries one of `paths`.
fn path_ports(paths: &[Path]) -> u64 {
    paths
        .iter()
        .filter(|p| p.port < 64)
        .fold(0, |ports, p| ports | 1 << p.port)
}

/// CoDel and the flow quantum of `cfg`'s shapers.
fn shaper_settings(cfg: &TunnelConfig) -> shaper::Settings {
    shaper::Settings {
        codel: shaper::codel::Params {
            target_ns: nanos(cfg.shaping.target.0),
            interval_ns: nanos(cfg.shaping.interval.0),
            // A flow with one full-size frame left is never dropped from:
            // the largest path MTU's frame.
            max_packet: cfg
                .paths
                .iter()
                .map(|p| u32::from(p.mtu) + 14)
                .max()
                .unwrap_or(1514),
        },
        ..shaper::Settings::default()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MacAddr;

    pub(crate) fn interfaces() -> Vec<Interface> {
        [
            "lan:10.1.0.1/24",
            "wan0:172.16.0.1/24",
            "wan1:172.16.1.1/24",
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (name, addr) = s.split_once(':').unwrap();
            Interface {
                name: name.into(),
                port_id: i as u16,
                mac: MacAddr([2, 0, 0, 0, 0, i as u8 + 1]),
                address: Some(addr.parse().unwrap()),
                mtu: 1500,
                tx_ipv4_cksum: false,
                tx_udp_cksum: false,
                address6: None,
                kernel_iface: None,
            }
        })
        .collect()
    }

    pub(crate) fn config() -> TunnelConfig {
        toml::from_str(
            r#"
prefixes = ["10.2.0.0/24"]
[[paths]]
name = "a"
id = 3
interface = "wan0"
remote = "172.16.0.2"
rate = "30mbit"
[[paths]]
name = "b"
id = 7
interface = "wan1"
remote = "172.16.1.2"
rate = "8mbit"
backup = true
[[classes]]
name = "mptcp"
scheduler = "source-subnet"
bindings = [{ subnet = "10.1.0.128/25", path = "b" }]
"#,
        )
        .unwrap()
    }

    #[test]
    fn resolves_paths_and_finds_them_by_wire_id() {
        let t = TunnelTable::new(("peer", 0), &config(), &interfaces(), 2, (16383, 16383), 9);
        assert_eq!(t.paths[1].port, 2);
        assert_eq!(t.paths[1].local, Ipv4Addr::new(172, 16, 1, 1));
        assert_eq!(t.paths[0].next_hop, Ipv4Addr::new(172, 16, 0, 2));
        let (peer, us) = (Ipv4Addr::new(172, 16, 1, 2), Ipv4Addr::new(172, 16, 1, 1));
        assert_eq!(t.rx_path(2, peer, us, 7), Some(1));
        assert_eq!(t.rx_path(1, peer, us, 7), None, "wrong port");
        assert_eq!(t.rx_path(2, peer, us, 3), None, "another path's id");
        assert_eq!(t.rx_path(2, us, us, 7), None, "not the peer");
        assert_eq!(t.rx_path(2, peer, us, 200), None, "no such id");
        assert!(t.is_endpoint(us, 4800));
        assert!(!t.is_endpoint(us, 4801));
        assert_eq!(
            t.classes.all()[0].bindings,
            vec![("10.1.0.128/25".parse().unwrap(), 1)]
        );
        assert_eq!(
            t.schedulers(),
            vec![SchedulerName::SourceSubnet, SchedulerName::Wlb]
        );
        assert_eq!(t.inner_mtu, 1436, "encrypted: the tag counts");
        assert!(t.live[1].usable());
        assert_eq!(t.path_counters[0].len(), 2);
    }

    #[test]
    fn a_reconfigured_table_shares_what_runs_and_takes_the_new_settings() {
        let t = TunnelTable::new(("peer", 0), &config(), &interfaces(), 2, (16383, 16383), 9);
        t.class_counters[0].worker(1).packets.inc();
        t.path_counters[1].worker(0).tx_packets.inc();
        t.live[0].admin_up.store(false, Ordering::Relaxed);
        let mut cfg = config();
        cfg.prefixes.push("10.3.0.0/24".parse().unwrap());
        cfg.paths[1].rate.0 = 16_000_000;
        cfg.paths[1].backup = false;
        cfg.paths[0].priority = 4;
        // A class before the old one: counters follow the name, not the index.
        cfg.classes.insert(
            0,
            toml::from_str("name = \"voice\"\nscheduler = \"redundant\"").unwrap(),
        );
        cfg.default_scheduler = SchedulerName::MinRtt;
        cfg.probe_interval.0 = Duration::from_millis(20);
        let r = t.reconfigured(&cfg, &interfaces()).expect("live");
        assert_eq!(r.prefixes.len(), 2);
        assert_eq!(
            (r.paths[1].rate_bps, r.paths[1].backup),
            (16_000_000, false)
        );
        assert_eq!(r.paths[0].priority, 4);
        assert_eq!(r.paths[1].port, t.paths[1].port);
        assert_eq!(r.probe_interval, Duration::from_millis(20));
        assert_eq!(
            r.schedulers(),
            vec![
                SchedulerName::Redundant,
                SchedulerName::SourceSubnet,
                SchedulerName::MinRtt
            ]
        );
        assert_eq!(r.class_counters[0].total(|w| &w.packets), 0, "a new class");
        assert_eq!(r.class_counters[1].total(|w| &w.packets), 1, "mptcp's own");
        assert!(Arc::ptr_eq(&r.live[0], &t.live[0]) && !r.live[0].usable());
        assert_eq!(r.path_counters[1].total(|w| &w.tx_packets), 1);
        assert_eq!(r.epoch, t.epoch, "the peer must not reset its lanes");
        assert_eq!(r.path_index(7), Some(1));
    }

    #[test]
    fn paths_added_and_removed_move_what_runs_by_name() {
        let t = TunnelTable::new(("peer", 0), &config(), &interfaces(), 2, (16383, 16383), 9);
        t.path_counters[1].worker(0).tx_packets.inc();
        // Path a removed and c added in its place: b stays at index 1, c is new at 0.
        let mut cfg = config();
        cfg.classes.clear();
        let mut c = cfg.paths[0].clone();
        c.name = "c".into();
        c.id = 9;
        c.remote = Some(Ipv4Addr::new(172, 16, 0, 3));
        cfg.paths[0] = c;
        let r = t.reconfigured(&cfg, &interfaces()).expect("live");
        assert_eq!(r.carried_from(&t), vec![None, Some(1)]);
        assert_eq!(r.path_index(9), Some(0));
        assert_eq!(r.path_index(3), None, "a is gone");
        assert_eq!(r.path_counters[1].total(|w| &w.tx_packets), 1, "b's own");
        assert_eq!(r.path_counters[0].total(|w| &w.tx_packets), 0, "c's fresh");
        assert!(Arc::ptr_eq(&r.live[1], &t.live[1]));
        assert_eq!(r.paths[0].port, 1, "c resolved on wan0");
        assert!(!r.live[0].usable(), "an added path waits for the peer");
        let sh = r.shaping.as_ref().unwrap();
        assert_eq!(sh.packets.len(), 2);
        assert!(Arc::ptr_eq(
            &sh.cells[1],
            &t.shaping.as_ref().unwrap().cells[1]
        ));
        let (kept, removed) = carry_over(vec!["a", "b"], &r.carried_from(&t), |_| "c");
        assert_eq!((kept, removed), (vec!["c", "b"], vec!["a"]));
    }

    #[test]
    fn a_learned_path_takes_any_source_and_sends_where_its_peer_was_last_seen() {
        let mut cfg = config();
        cfg.paths[1].remote = None;
        let t = TunnelTable::new(("peer", 0), &cfg, &interfaces(), 2, (16383, 16383), 9);
        let us = Ipv4Addr::new(172, 16, 1, 1);
        let (nat, other) = (
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(198, 51, 100, 8),
        );
        assert_eq!(t.rx_path(2, nat, us, 7), Some(1), "any source");
        assert_eq!(t.rx_path(1, nat, us, 3), None, "a configured path does not");
        assert_eq!(t.endpoint(1, 49153), None, "nothing learned yet");
        assert_eq!(t.next_hop(1), None);
        t.live[1].learn(nat, 40123);
        assert_eq!(
            t.endpoint(1, 49153),
            Some((nat, 40123, 4800)),
            "from the tunnel port"
        );
        assert_eq!(t.next_hop(1), Some(nat));
        t.live[1].learn(other, 1024);
        assert_eq!(
            t.endpoint(1, 49153),
            Some((other, 1024, 4800)),
            "the latest wins"
        );
        assert_eq!(
            t.endpoint(0, 49153),
            Some((Ipv4Addr::new(172, 16, 0, 2), 4800, 49153)),
            "a configured path sends from its lane's port"
        );
        assert!(t.is_endpoint(us, 49153) && t.is_endpoint(us, 4800) && !t.is_endpoint(us, 4801));
        assert!(
            t.is_endpoint(us, 65535) && !t.is_endpoint(us, 50000),
            "the lanes' ports only"
        );
    }

    #[test]
    fn a_reconfigured_table_refuses_what_needs_a_restart() {
        let t = TunnelTable::new(("peer", 0), &config(), &interfaces(), 2, (16383, 16383), 9);
        let mut moved = config();
        moved.paths[0].remote = Some(Ipv4Addr::new(172, 16, 0, 9));
        assert!(t.reconfigured(&moved, &interfaces()).is_err());
        let mut renumbered = config();
        renumbered.paths[1].id = 4;
        assert!(t.reconfigured(&renumbered, &interfaces()).is_err());
        let mut port = config();
        port.port += 1;
        assert!(t.reconfigured(&port, &interfaces()).is_err());
    }
}
