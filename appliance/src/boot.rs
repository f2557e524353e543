//! From files to a running appliance and back: validate both files, start the
//! EAL, self-check, create the pools, set up ports and queues, build the
//! tables, launch the workers, and hand the management lcore to
//! [`crate::mgmt`]; when it returns, stop the workers, drain, report and
//! release everything in the right order.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{mpsc, Arc, RwLock};
use std::time::Duration;

use dpdk_bindings::port::{RxQueue, TxQueue};
use dpdk_bindings::{eal, lcore, packet_port, port, ring, DpdkError, Eal, Mempool};
use hashbrown::HashMap;

use crate::api::ChangeSender;
use crate::config::tunnel::TunnelConfig;
use crate::config::{
    instance_name, Config, ConfigError, Driver, HwProfile, PortProfile, HEADER_DATA_ROOM,
};
use crate::control;
use crate::dataplane::doorbell::Doorbell;
use crate::dataplane::idle::Idle;
use crate::dataplane::mgmt_frames::MgmtFrames;
use crate::dataplane::tunnel::{Spares, TunnelRx, TunnelSenders};
use crate::dataplane::tx::{MgmtTx, TxPorts};
use crate::dataplane::worker::Worker;
use crate::metrics::{self, MetricsError};
use crate::mgmt::{Mgmt, Operations};
use crate::reload::Reloader;
use crate::report::kernel::KernelPortCounters;
use crate::report::{
    DpdkHandles, McastReport, PortMeta, PortRates, StatsReport, StatsSource, WorkerMeta,
};
use crate::service::ServiceManager;
use crate::slowpath::SlowPath;
use crate::stats::{SlowCounters, WorkerCounters};
use crate::tables::{Interface, RoutingState};
use crate::time::Clock;
use crate::tunnel::crypto::aead::Cipher;
use crate::tunnel::crypto::handshake::Handshaker;
use crate::tunnel::crypto::keys::KeyPrint;
use crate::tunnel::{PeerSlots, TunnelTable};
use crate::wire::MacAddr;

/// Command-line options of the appliance.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hardware profile file.
    pub profile: PathBuf,
    /// Appliance config file.
    pub config: PathBuf,
    /// Stop after this long with no packet received (golden tests).
    pub exit_when_idle: Option<Duration>,
    /// Write the final counters as JSON here.
    pub final_stats: Option<PathBuf>,
}

const HUGEPAGE_HINT: &str = "with eal.hugepages = \"on\" the host needs free hugepages (echo N > /proc/sys/vm/nr_hugepages) or use \"off\" (--no-huge); another appliance running with the same config holds its file prefix; drivers load from the plugin dir (eal.plugin_dir, e.g. /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0)";
const PLUGIN_HINT: &str = "If no port at all was probed, the driver plugins did not load: set eal.plugin_dir = \"/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0\"";

/// Why the appliance could not run. `Config` means nothing was touched;
/// every other variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A config or profile error.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The DPDK library is not the one the binary was built against.
    #[error("{0}")]
    Version(String),
    /// SIGINT/SIGTERM handlers could not be installed.
    #[error("signal handler: {0}")]
    Signals(std::io::Error),
    /// `rte_eal_init` failed.
    #[error("EAL init failed: {0}\n  hint: {HUGEPAGE_HINT}")]
    Eal(DpdkError),
    /// An af_xdp port on a software interface (a veth, a tap): its Linux
    /// neighbour hands it partial checksums that AF_XDP gives no way to
    /// tell from wrong ones.
    #[error(
        "port `{port}`: af_xdp on {iface}, a software interface (veth, tap): its Linux neighbour's \
         checksum offload leaves TCP and UDP checksums partial, and AF_XDP does not say which \
         frames carry one, so they would be forwarded broken. Use driver = \"af_packet\" there \
         (the appliance completes them), or af_xdp on a NIC (virtio-net, ena, ...)"
    )]
    AfXdpOnSoftwareInterface {
        /// Port name.
        port: String,
        /// Kernel interface.
        iface: String,
    },
    /// A port of the profile was not probed.
    #[error("port `{port}` ({device}) was not probed: {hint}")]
    PortNotProbed {
        /// Port name.
        port: String,
        /// DPDK device name.
        device: String,
        /// What to check for this driver.
        hint: String,
    },
    /// The packet mempool could not be created.
    #[error("cannot create the mempool of {mbufs} mbufs: {source}\n  hint: raise eal.memory_mb (now {memory_mb} MiB) or lower mempool.mbufs; with hugepages, reserve more (echo N > /proc/sys/vm/nr_hugepages)")]
    Mempool {
        /// Mbufs asked for.
        mbufs: u32,
        /// EAL memory.
        memory_mb: u32,
        /// DPDK's error.
        source: DpdkError,
    },
    /// The fan-out header pool could not be created.
    #[error("cannot create the header pool of {mbufs} mbufs: {source}\n  hint: raise eal.memory_mb or lower mempool.header_mbufs")]
    HeaderPool {
        /// Mbufs asked for.
        mbufs: u32,
        /// DPDK's error.
        source: DpdkError,
    },
    /// The profile gives no worker lcore.
    #[error("no worker lcores: eal.lcores needs at least two")]
    NoWorkers,
    /// A port has fewer queues than the workers need.
    #[error("port `{port}` ({driver}) offers {rx} RX / {tx} TX queues; {workers} workers need at least 1 RX and {need_tx} TX queues (one per worker plus the management lcore's)")]
    TooFewQueues {
        /// Port name.
        port: String,
        /// Driver name.
        driver: String,
        /// RX queues it offers.
        rx: u16,
        /// TX queues it offers.
        tx: u16,
        /// Workers.
        workers: usize,
        /// TX queues needed.
        need_tx: u16,
    },
    /// Querying, configuring or starting a port failed.
    #[error("port `{port}`: {source}")]
    Port {
        /// Port name.
        port: String,
        /// DPDK's error.
        source: DpdkError,
    },
    /// A worker's punt ring could not be created.
    #[error("punt ring: {0}")]
    PuntRing(DpdkError),
    /// A ring for the management lcore's frames to a worker could not be
    /// created.
    #[error("management TX ring: {0}")]
    MgmtTxRing(DpdkError),
    /// A ring between two workers' tunnel stages could not be created.
    #[error("tunnel hand-off ring: {0}")]
    HandoffRing(DpdkError),
    /// The control socket could not be opened.
    #[error("control socket {path}: {source}")]
    ControlSocket {
        /// Socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A worker could not be launched.
    #[error("launching worker on lcore {lcore}: {source}")]
    Launch {
        /// The lcore.
        lcore: u32,
        /// DPDK's error.
        source: DpdkError,
    },
}

/// What the run ended with.
#[derive(Debug)]
pub struct Outcome {
    /// Final counters.
    pub stats: StatsReport,
    /// Mbufs in use at exit after draining, against the baseline.
    pub mempool_in_use_at_exit: u32,
    /// Fan-out header mbufs in use at exit (0 unless one leaked).
    pub headers_in_use_at_exit: u32,
    /// Relay rules and their final counters.
    pub mcast: McastReport,
}

/// Loads and validates both files; touches nothing.
///
/// # Errors
/// The first problem, naming file and key.
pub fn load(opts: &Options) -> Result<(HwProfile, Config), ConfigError> {
    let profile = HwProfile::load(&opts.profile)?;
    let config = Config::load(&opts.config, &profile)?;
    Ok((profile, config))
}

/// Each peer's handshake keys, read from their files, in peer order (empty:
/// no tunnel, or one in clear, which is said loudly). Keys are not to end
/// up in a core dump either: the process is made non-dumpable.
fn tunnel_handshakers(
    opts: &Options,
    config: &Config,
) -> Result<Vec<(KeyPrint, Handshaker)>, BootError> {
    let Some(t) = &config.tunnel else {
        return Ok(Vec::new());
    };
    let keys = t
        .peer_keys()
        .map_err(|e| ConfigError::new(&opts.config, format!("tunnel.{}", e.key), e.what))?;
    let keys: Vec<_> = keys.into_iter().flatten().collect();
    let Some(first) = keys.first() else {
        log::warn!(
            "the tunnel is in clear (encryption = \"none\"): anyone on a path can read, \
             inject and replay the sites' traffic"
        );
        return Ok(Vec::new());
    };
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        log::warn!("could not keep the keys out of core dumps (prctl: {e})");
    }
    log::info!(
        "tunnel encrypted: {} preferred (CPU AES instructions: {}); our public key {}",
        crate::tunnel::crypto::choice(t.encryption).1,
        if Cipher::hardware_aes() { "yes" } else { "no" },
        first.private.public()
    );
    Ok(keys
        .into_iter()
        .map(|k| {
            (
                k.print(),
                crate::tunnel::crypto::handshaker(t.encryption, k),
            )
        })
        .collect())
}

/// The EAL arguments the appliance would start with (for `--check`).
pub fn eal_args(opts: &Options, profile: &HwProfile) -> Vec<String> {
    profile.eal_args(hugepages_free_mb(), &instance_name(&opts.config))
}

fn hugepages_free_mb() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field("HugePages_Free:") * field("Hugepagesize:") / 1024
}

/// The ports once configured: what the workers and the management lcore poll
/// and send on, and what the tables and reports describe.
struct Ports {
    ids: Vec<u16>,
    /// Per worker: its RX queues with their port index.
    rx_by_worker: Vec<Vec<(RxQueue, usize)>>,
    /// Per worker: one TX queue per port.
    tx_by_worker: Vec<Vec<TxQueue>>,
    /// Per port: how the management lcore sends on it.
    mgmt_tx: Vec<MgmtTx>,
    /// Per worker: the management lcore's rings it drains, with their port.
    mgmt_rings_by_worker: Vec<Vec<(ring::Consumer, usize)>>,
    interfaces: Vec<Interface>,
    metas: Vec<PortMeta>,
}

/// Runs the appliance until stopped.
///
/// # Errors
/// Config errors (before DPDK is touched) or DPDK start-up failures.
pub fn run(opts: &Options) -> Result<Outcome, BootError> {
    let (profile, config) = load(opts)?;
    if let Some(level) = config.log.level {
        crate::logging::set_level(level.filter());
    }
    let handshakers = tunnel_handshakers(opts, &config)?;
    eal::check_version().map_err(BootError::Version)?;
    refuse_af_xdp_on_software_interfaces(&profile)?;
    let stop = stop_on_signals()?;
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
        .map_err(BootError::Signals)?;
    let reloader = Reloader::new(
        (opts.profile.clone(), opts.config.clone()),
        (profile.clone(), config.clone()),
        config
            .tunnel
            .as_ref()
            .map(TunnelConfig::peers)
            .unwrap_or_default()
            .into_iter()
            .zip(&handshakers)
            .map(|((name, _), (print, _))| (name, *print))
            .collect(),
    );
    let eal = start_eal(opts, &profile)?;
    let plane = build_data_plane(opts, &profile, &config, &eal)?;
    let source = stats_source(&profile, &plane);
    // The management loop runs on this thread: control requests wake it.
    let (change_tx, change_rx) = mpsc::channel();
    let changes = ChangeSender::new(change_tx, std::thread::current());
    let server = control::server::start(&config.control.socket, Arc::clone(&source), changes)
        .map_err(|source| BootError::ControlSocket {
            path: config.control.socket.clone(),
            source,
        })?;
    let metrics = match config.control.metrics.as_str() {
        "" => None,
        addr => Some(metrics::start(addr, Arc::clone(&source))?),
    };
    let DataPlane {
        ids,
        pool,
        headers,
        state,
        workers,
        mgmt_tx,
        doorbell,
        clock,
        port_metas: _,
        spares,
    } = plane;
    let mut slow = SlowPath::new(
        state,
        workers.punts,
        mgmt_tx,
        Arc::clone(&pool),
        Arc::clone(&source.mgmt),
        Arc::clone(&source.slow),
        config.slowpath.clone(),
        clock.now(),
    );
    for (peer, keys) in handshakers.into_iter().enumerate() {
        slow.encrypt_tunnel(peer, keys, clock.now());
    }
    slow.keep_stocked(spares, clock.now());
    // By port index (the profile's order), as the interfaces are.
    let ra: Vec<_> = profile
        .ports
        .iter()
        .map(|p| {
            config
                .interfaces
                .iter()
                .find(|i| i.port == p.name)
                .and_then(|i| i.ra)
        })
        .collect();
    slow.advertise_routes(&ra);
    let mut mgmt = Mgmt::new(
        clock,
        slow,
        change_rx,
        doorbell,
        Arc::clone(&source),
        opts.exit_when_idle,
        Operations {
            service: ServiceManager::from_env(),
            reloader,
            hangup,
        },
    );
    let launched = launch(workers.ready)?;
    log::info!(
        "{} workers running on lcores {launched:?}; control socket {}",
        launched.len(),
        config.control.socket.display()
    );
    mgmt.start();
    mgmt.run(&stop, profile.mgmt_priority);
    mgmt.stopping();
    mgmt.leave_groups();
    log::info!("stopping workers");
    // Release: the frames the management lcore queued for workers to send
    // (the leaves above) are visible to them once they see the stop.
    workers
        .stop
        .store(true, std::sync::atomic::Ordering::Release);
    for lc in &launched {
        lcore::wait(*lc);
    }
    // Anything workers punted after the last poll is answered, then freed.
    mgmt.finish();
    source.sample_kernel();
    let outcome = Outcome {
        stats: source.stats(),
        mempool_in_use_at_exit: pool.in_use(),
        headers_in_use_at_exit: headers.in_use(),
        mcast: source.mcast(None),
    };
    for id in &ids {
        port::stop(*id);
        port::close(*id);
    }
    drop(server);
    drop(metrics);
    release_pools_then_cleanup(eal, source, pool, headers);
    Ok(outcome)
}

/// SIGINT and SIGTERM set the returned flag (the management loop stops).
fn stop_on_signals() -> Result<Arc<AtomicBool>, BootError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(BootError::Signals)?;
    }
    Ok(stop)
}

/// Starts the EAL with the profile's arguments.
fn start_eal(opts: &Options, profile: &HwProfile) -> Result<Eal, BootError> {
    let instance = instance_name(&opts.config);
    let args = profile.eal_args(hugepages_free_mb(), &instance);
    log::info!("profile {}: EAL {}", profile.name, args.join(" "));
    let eal = Eal::init(&args).map_err(BootError::Eal)?;
    log::info!(
        "DPDK {} up, hugepages: {}",
        eal::runtime_version(),
        eal.has_hugepages()
    );
    Ok(eal)
}

/// The data plane, built, its ports started, its workers not yet launched.
struct DataPlane {
    ids: Vec<u16>,
    pool: Arc<Mempool>,
    headers: Arc<Mempool>,
    /// The routing state the management lcore owns and publishes.
    state: RoutingState,
    workers: Workers,
    /// Per port: how the management lcore sends on it.
    mgmt_tx: Vec<MgmtTx>,
    /// What wakes the management lcore (it runs on this thread).
    doorbell: Doorbell,
    clock: Clock,
    /// What the reports read of each port.
    port_metas: Vec<PortMeta>,
    /// The shelves of the tunnel's receive state (the management lcore
    /// stocks them).
    spares: Arc<Spares>,
}

/// Pools, ports and queues, the tables (with the tunnel's), and one worker
/// per worker lcore with everything it owns; then the ports are started.
fn build_data_plane(
    opts: &Options,
    profile: &HwProfile,
    config: &Config,
    eal: &Eal,
) -> Result<DataPlane, BootError> {
    let socket = i32::try_from(eal.lcore_socket(eal.main_lcore())).unwrap_or(-1);
    let ids = probed_ports(profile)?;
    let (pool, headers) = create_pools(profile, socket)?;
    let worker_lcores = eal.worker_lcores();
    if worker_lcores.is_empty() {
        return Err(BootError::NoWorkers);
    }
    let ports = setup_ports(profile, config, ids, worker_lcores.len(), &pool, socket)?;
    let clock = Clock::tsc();
    let mut state = build_tables(opts, config, &ports, worker_lcores.len(), clock)?;
    state.set_tunnels(tunnel_tables(
        config,
        &ports.interfaces,
        worker_lcores.len(),
        profile,
    ));
    state.set_idle(profile.idle.clone());
    // The workers start from the slots the first snapshot has.
    let tunnels = Arc::clone(state.tunnels());
    let spares = Arc::new(Spares::new(worker_lcores.len()));
    let tunnel_receivers = tunnel_receivers(&tunnels, worker_lcores.len(), socket, &spares)?;
    let published = state.published().clone();
    for (id, p) in ports.ids.iter().zip(&profile.ports) {
        port::start(*id).map_err(|source| BootError::Port {
            port: p.name.clone(),
            source,
        })?;
    }
    let doorbell = Doorbell::new(std::thread::current());
    let workers = assemble_workers(
        profile,
        &worker_lcores,
        WorkerIo {
            rx: ports.rx_by_worker,
            tx: ports.tx_by_worker,
            mgmt_rings: ports.mgmt_rings_by_worker,
        },
        &Shared {
            tables: &published,
            pool: &pool,
            headers: &headers,
            tunnels: &tunnels,
            doorbell: &doorbell,
            clock,
        },
        tunnel_receivers,
        socket,
    )?;
    Ok(DataPlane {
        ids: ports.ids,
        pool,
        headers,
        state,
        workers,
        mgmt_tx: ports.mgmt_tx,
        doorbell,
        clock,
        port_metas: ports.metas,
        spares,
    })
}

/// One table per peer of the configured tunnel (none without a tunnel),
/// each with an equal share of the pool for its queues and reorder buffers
/// (what `--check` held each peer to).
fn tunnel_tables(
    config: &Config,
    interfaces: &[Interface],
    workers: usize,
    profile: &HwProfile,
) -> PeerSlots {
    let Some(t) = &config.tunnel else {
        return Arc::new([]);
    };
    let peers = t.peers();
    let share = profile.mempool.mbufs / u32::try_from(peers.len()).unwrap_or(1).max(1);
    // A new epoch on every start tells the peers to reset their lanes.
    let epoch = fastrand::u16(1..);
    peers
        .iter()
        .enumerate()
        .map(|(i, (name, cfg))| {
            let index = u16::try_from(i).unwrap_or(u16::MAX);
            Some(Arc::new(TunnelTable::new(
                (name, index),
                cfg,
                interfaces,
                workers,
                (share, profile.mempool.mbufs),
                epoch,
            )))
        })
        .collect()
}

/// What the reports, the control socket and `/metrics` read.
fn stats_source(profile: &HwProfile, plane: &DataPlane) -> Arc<StatsSource> {
    let metas = plane.port_metas.clone();
    Arc::new(StatsSource {
        port_rates: metas.iter().map(|_| PortRates::default()).collect(),
        kernel: kernel_counters(profile, &metas),
        ports: metas,
        workers: plane.workers.metas.clone(),
        mgmt: Arc::new(WorkerCounters::default()),
        slow: Arc::new(SlowCounters::default()),
        dpdk: RwLock::new(Some(DpdkHandles {
            pool: Arc::clone(&plane.pool),
            headers: Arc::clone(&plane.headers),
        })),
        baseline_in_use: AtomicU32::new(plane.pool.in_use()),
        tables: plane.state.published().clone(),
        clock: plane.clock,
    })
}

/// Launches each worker on its lcore; returns the lcores.
fn launch(ready: Vec<(u32, Worker)>) -> Result<Vec<u32>, BootError> {
    let mut launched = Vec::new();
    for (lc, w) in ready {
        lcore::launch(lc, move || w.run())
            .map_err(|source| BootError::Launch { lcore: lc, source })?;
        launched.push(lc);
    }
    Ok(launched)
}

/// Per worker: the queues it polls and sends on, and the management lcore's
/// rings it sends from (see [`Ports`]).
struct WorkerIo {
    rx: Vec<Vec<(RxQueue, usize)>>,
    tx: Vec<Vec<TxQueue>>,
    mgmt_rings: Vec<Vec<(ring::Consumer, usize)>>,
}

/// What every worker shares.
struct Shared<'a> {
    tables: &'a crate::tables::Published,
    pool: &'a Arc<Mempool>,
    headers: &'a Arc<Mempool>,
    tunnels: &'a PeerSlots,
    doorbell: &'a Doorbell,
    clock: Clock,
}

/// The workers, ready to launch, and what the rest of the boot keeps of them.
struct Workers {
    /// Each worker with the lcore it runs on.
    ready: Vec<(u32, Worker)>,
    /// What the reports read of each.
    metas: Vec<WorkerMeta>,
    /// The management lcore's end of each worker's punt ring.
    punts: Vec<ring::Consumer>,
    /// Set (with Release) to stop them.
    stop: Arc<AtomicBool>,
}

/// One worker per worker lcore: its RX and TX queues, its punt ring to the
/// management lcore, the management lcore's frames it sends, its sides of
/// the tunnel, its counters and idle policy.
fn assemble_workers(
    profile: &HwProfile,
    lcores: &[u32],
    io: WorkerIo,
    shared: &Shared<'_>,
    mut tunnel_receivers: impl Iterator<Item = TunnelRx>,
    socket: i32,
) -> Result<Workers, BootError> {
    let mut tx = io.tx.into_iter();
    let mut mgmt_rings = io.mgmt_rings.into_iter();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Workers {
        ready: Vec::new(),
        metas: Vec::new(),
        punts: Vec::new(),
        stop: Arc::clone(&stop),
    };
    for (k, (lc, rx)) in lcores.iter().zip(io.rx).enumerate() {
        let (producer, consumer) =
            ring::spsc(&format!("punt{k}"), 1024, socket).map_err(BootError::PuntRing)?;
        workers.punts.push(consumer);
        let counters = Arc::new(WorkerCounters::default());
        workers.metas.push(WorkerMeta {
            id: k,
            lcore: *lc,
            rx_queues: rx
                .iter()
                .map(|(q, p)| format!("{}:{}", profile.ports[*p].name, q.queue()))
                .collect(),
            counters: Arc::clone(&counters),
        });
        let worker = Worker {
            id: k,
            rx,
            tx: TxPorts::new(tx.next().unwrap_or_default(), k, Arc::clone(&counters)),
            punt: producer,
            doorbell: shared.doorbell.clone(),
            counters,
            tables: shared.tables.clone(),
            headers: Arc::clone(shared.headers),
            pool: Arc::clone(shared.pool),
            stop: Arc::clone(&stop),
            idle: Idle::new(profile.poll_mode, &profile.idle),
            clock: shared.clock,
            stages: Vec::new(),
            mgmt_frames: MgmtFrames::new(mgmt_rings.next().unwrap_or_default()),
            tunnel_tx: TunnelSenders::new(
                k,
                shared.tunnels,
                Arc::clone(shared.headers),
                Arc::clone(shared.pool),
            ),
            tunnel_rx: tunnel_receivers.next(),
        };
        workers.ready.push((*lc, worker));
    }
    Ok(workers)
}

/// The kernel's own counters of each af_packet port (`None` for the others).
fn kernel_counters(profile: &HwProfile, metas: &[PortMeta]) -> Vec<Option<KernelPortCounters>> {
    profile
        .ports
        .iter()
        .zip(metas)
        .map(|(p, m)| match (p.driver, &p.iface) {
            (Driver::AfPacket, Some(iface)) => KernelPortCounters::find(m.port_id, iface),
            _ => None,
        })
        .collect()
}

/// Each worker's receiving side of the tunnel, with the SPSC rings through
/// which a worker hands a packet to the worker that owns its lane (one ring
/// per ordered pair of workers). Empty when there is no tunnel.
fn tunnel_receivers(
    tunnels: &PeerSlots,
    workers: usize,
    socket: i32,
    spares: &Arc<Spares>,
) -> Result<std::vec::IntoIter<TunnelRx>, BootError> {
    if tunnels.is_empty() {
        return Ok(Vec::new().into_iter());
    }
    let mut to: Vec<Vec<Option<ring::Producer>>> = (0..workers)
        .map(|_| (0..workers).map(|_| None).collect())
        .collect();
    let mut from: Vec<Vec<ring::Consumer>> = (0..workers).map(|_| Vec::new()).collect();
    for (a, rings) in to.iter_mut().enumerate() {
        for b in (0..workers).filter(|b| *b != a) {
            let (p, c) = ring::spsc(&format!("lane{a}to{b}"), 4096, socket)
                .map_err(BootError::HandoffRing)?;
            rings[b] = Some(p);
            from[b].push(c);
        }
    }
    Ok(to
        .into_iter()
        .zip(from)
        .enumerate()
        .map(|(k, rings)| TunnelRx::new(k, workers, tunnels, rings, Arc::clone(spares)))
        .collect::<Vec<_>>()
        .into_iter())
}

/// Self-check before any port is touched: af_xdp only on interfaces with a
/// device behind them. On a veth or tap the neighbour's partial checksums
/// arrive with nothing to mark them (measured: docs/datapath.md, "af_xdp").
fn refuse_af_xdp_on_software_interfaces(profile: &HwProfile) -> Result<(), BootError> {
    for p in profile.ports.iter().filter(|p| p.driver == Driver::AfXdp) {
        let Some(iface) = &p.iface else { continue };
        let sys = std::path::Path::new("/sys/class/net").join(iface);
        // A NIC (virtio-net, ena, a PCI function) has a `device`; a veth or
        // tap has none. An interface that is not there is left to the probe.
        if sys.exists() && !sys.join("device").exists() {
            return Err(BootError::AfXdpOnSoftwareInterface {
                port: p.name.clone(),
                iface: iface.clone(),
            });
        }
    }
    Ok(())
}

/// What to check when port `p` was not probed.
fn probe_hint(p: &PortProfile) -> String {
    let iface = p.iface.as_deref().unwrap_or("");
    let dpdk_driver = |hint: String| format!("{hint} {PLUGIN_HINT}");
    match p.driver {
        // The appliance's own driver: no DPDK plugin involved.
        Driver::AfPacket => format!(
            "does kernel interface {iface:?} exist in this network namespace, and are we root?"
        ),
        Driver::AfXdp => dpdk_driver(format!(
            "does kernel interface {iface:?} exist in this network namespace, are we root, and does it have workers + 1 combined channels (`ethtool -l`)? A veth has none that DPDK 22.11's af_xdp driver can use."
        )),
        Driver::Pci => dpdk_driver("is the NIC bound to vfio-pci/igb_uio and allowed by -a?".into()),
        Driver::Pcap => dpdk_driver("does the rx_pcap file exist?".into()),
        _ => dpdk_driver("was the vdev driver loaded?".into()),
    }
}

/// Self-check: every configured port was probed; their port ids. The
/// af_packet ports are opened here by the appliance's own driver
/// (`dpdk_bindings::packet_port`), one socket per worker.
fn probed_ports(profile: &HwProfile) -> Result<Vec<u16>, BootError> {
    let workers = u16::try_from(profile.workers()).unwrap_or(u16::MAX);
    profile
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let device = profile.device_name(i);
            if p.driver == Driver::AfPacket {
                let config = packet_port::PortConfig {
                    iface: p.iface.clone().unwrap_or_default(),
                    queues: workers,
                    rx_frames: p.framecnt(),
                    tx_frames: u32::from(p.tx_desc),
                };
                return packet_port::open(&config).map_err(|e| BootError::PortNotProbed {
                    port: p.name.clone(),
                    device,
                    hint: format!("{e}: {}", probe_hint(p)),
                });
            }
            port::by_name(&device).map_err(|_| BootError::PortNotProbed {
                port: p.name.clone(),
                device,
                hint: probe_hint(p),
            })
        })
        .collect()
}

/// The packet pool and the small pool of fan-out header mbufs.
fn create_pools(
    profile: &HwProfile,
    socket: i32,
) -> Result<(Arc<Mempool>, Arc<Mempool>), BootError> {
    let m = &profile.mempool;
    let pool = Mempool::new("appliance_pkts", m.mbufs, m.cache, m.data_room, socket).map_err(
        |source| BootError::Mempool {
            mbufs: m.mbufs,
            memory_mb: profile.eal.memory_mb,
            source,
        },
    )?;
    // Most copies leave within the burst they were made in: a small cache.
    let cache = 64.min(m.header_mbufs / 2);
    let headers = Mempool::new(
        "appliance_hdrs",
        m.header_mbufs,
        cache,
        HEADER_DATA_ROOM,
        socket,
    )
    .map_err(|source| BootError::HeaderPool {
        mbufs: m.header_mbufs,
        source,
    })?;
    Ok((Arc::new(pool), Arc::new(headers)))
}

/// Configures every port with one RX queue per worker (every queue af_packet
/// opened, all of which the kernel fans out to) and one TX queue per worker,
/// plus the management lcore's own where it can have one: not on af_packet,
/// whose every queue is a fanout socket that would take a share of the
/// received flows; there a worker sends the management lcore's frames.
fn setup_ports(
    profile: &HwProfile,
    config: &Config,
    ids: Vec<u16>,
    workers: usize,
    pool: &Mempool,
    socket: i32,
) -> Result<Ports, BootError> {
    let mut ports = Ports {
        ids,
        rx_by_worker: (0..workers).map(|_| Vec::new()).collect(),
        tx_by_worker: (0..workers).map(|_| Vec::new()).collect(),
        mgmt_tx: Vec::new(),
        mgmt_rings_by_worker: (0..workers).map(|_| Vec::new()).collect(),
        interfaces: Vec::new(),
        metas: Vec::new(),
    };
    for (i, p) in profile.ports.iter().enumerate() {
        let id = ports.ids[i];
        let port_err = |source| BootError::Port {
            port: p.name.clone(),
            source,
        };
        let info = port::info(id).map_err(port_err)?;
        let want_rx = u16::try_from(workers).unwrap_or(u16::MAX);
        // memif's two ends pair their rings one for one (our TX queues are
        // the peer's RX queues): a management queue of ours would be a ring
        // the peer never reads. Its frames go through a worker, as af_packet's.
        let mgmt_queue = !matches!(p.driver, Driver::AfPacket | Driver::Memif);
        let tx_queues = u16::try_from(workers + usize::from(mgmt_queue)).unwrap_or(u16::MAX);
        // af_packet opens all its sockets at probe time and the kernel
        // fans packets out to every one of them: all must be polled.
        let rx_queues = if p.driver == Driver::AfPacket {
            info.max_rx_queues
        } else {
            want_rx.min(info.max_rx_queues)
        };
        if info.max_tx_queues < tx_queues || rx_queues == 0 {
            return Err(BootError::TooFewQueues {
                port: p.name.clone(),
                driver: info.driver,
                rx: info.max_rx_queues,
                tx: info.max_tx_queues,
                workers,
                need_tx: tx_queues,
            });
        }
        let setup = port::Setup {
            rx_queues,
            tx_queues,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            mtu: p.mtu,
            rss: p.rss,
            promiscuous: p.promiscuous,
            allmulticast: true,
            checksum_offload: p.checksum_offload,
            // A host's TCP super-frame is cut small enough for the tunnel,
            // rather than into segments the tunnel answers with ICMP.
            segment_ip_len: config
                .tunnel
                .as_ref()
                .and_then(|t| t.peers().iter().map(|(_, v)| v.inner_mtu()).min()),
        };
        let configured = port::configure(id, &setup, pool).map_err(port_err)?;
        log::info!(
            "port {} ({}): {} rx / {} tx queues, rss {:#x}",
            p.name,
            info.driver,
            rx_queues,
            tx_queues,
            configured.rss_hf
        );
        let (rxqs, txqs) = port::queues(id, &setup);
        for (q, rxq) in rxqs.into_iter().enumerate() {
            ports.rx_by_worker[q % workers].push((rxq, i));
        }
        let mut txqs = txqs.into_iter();
        for queues in &mut ports.tx_by_worker {
            queues.extend(txqs.next());
        }
        let mgmt_tx = match txqs.next() {
            Some(q) => MgmtTx::Queue(q),
            None => {
                let (producer, consumer) = ring::spsc(&format!("mgmt-tx{i}"), 1024, socket)
                    .map_err(BootError::MgmtTxRing)?;
                ports.mgmt_rings_by_worker[i % workers].push((consumer, i));
                MgmtTx::ViaWorker(producer)
            }
        };
        ports.mgmt_tx.push(mgmt_tx);
        let mac = MacAddr(port::mac_addr(id).map_err(port_err)?);
        let configured_iface = config.interfaces.iter().find(|c| c.port == p.name);
        ports.interfaces.push(Interface {
            name: p.name.clone(),
            port_id: id,
            mac,
            address: configured_iface.map(|c| c.address),
            address6: configured_iface.and_then(|c| c.address6),
            mtu: configured.mtu,
            tx_ipv4_cksum: configured.tx_ipv4_cksum,
            tx_udp_cksum: configured.tx_udp_cksum,
            // The af_packet driver reports the kernel's carrier itself;
            // DPDK's af_xdp driver says a link is always up.
            kernel_iface: match p.driver {
                Driver::AfXdp => p.iface.clone(),
                _ => None,
            },
        });
        ports.metas.push(PortMeta {
            index: i,
            name: p.name.clone(),
            port_id: id,
            driver: info.driver,
            rx_queues,
            tx_queues,
        });
    }
    Ok(ports)
}

/// The first tables: interfaces, static routes and neighbours, relay rules.
fn build_tables(
    opts: &Options,
    config: &Config,
    ports: &Ports,
    workers: usize,
    clock: Clock,
) -> Result<RoutingState, BootError> {
    let mut state = RoutingState::new(
        ports.interfaces.clone(),
        config.routes.iter().map(|r| (r.prefix, r.via)).collect(),
        HashMap::new(),
    );
    let statics: Vec<_> = config
        .neighbors
        .iter()
        .map(|n| (n.address, n.mac))
        .collect();
    state.set_static_neighbors(&statics, clock.now());
    state.set_workers(workers);
    for (i, rule) in config.mcast_rules.iter().enumerate() {
        state.mcast_add(rule.clone(), false).map_err(|e| {
            ConfigError::new(&opts.config, format!("mcast_rules[{i}]"), e.to_string())
        })?;
    }
    Ok(state)
}

/// Takes the DPDK handles from the reports, frees the mempools, then runs `rte_eal_cleanup`
/// (dropping `eal`, which also removes the EAL's runtime directory): the pools live in EAL
/// memory, so the other order would free into unmapped memory. Control connections still
/// open (or a control thread left blocked) keep the stats source, but no longer anything of
/// DPDK: their later reports leave ports and pools out.
fn release_pools_then_cleanup(
    eal: Eal,
    source: Arc<StatsSource>,
    pool: Arc<Mempool>,
    headers: Arc<Mempool>,
) {
    drop(source.close_dpdk());
    drop(source);
    let last = Arc::strong_count(&pool) == 1 && Arc::strong_count(&headers) == 1;
    drop(pool);
    drop(headers);
    if last {
        drop(eal);
        log::info!("mempools freed, EAL cleaned up");
    } else {
        // Nothing but the data plane, stopped by now, should hold them: a bug, but not one to
        // free memory under.
        log::error!("something still holds the mempools at exit: not freed, EAL not cleaned up");
        std::mem::forget(eal);
    }
}
