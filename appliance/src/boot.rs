//! From files to a running appliance and back: validate, init the EAL,
//! self-check, set up ports and queues, launch workers, run the management
//! loop until SIGINT/SIGTERM (or idle, for golden tests), drain, report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use dpdk_bindings::{eal, lcore, port, ring, Eal, Mempool};
use hashbrown::HashMap;

use crate::config::{Config, ConfigError, Driver, HwProfile, HEADER_DATA_ROOM};
use crate::control;
use crate::dataplane::idle::Idle;
use crate::dataplane::tx::TxPorts;
use crate::dataplane::worker::Worker;
use crate::report::{PortMeta, PortRates, StatsReport, StatsSource, WorkerMeta};
use crate::slowpath::SlowPath;
use crate::stats::SlowCounters;
use crate::stats::WorkerCounters;
use crate::tables::{Interface, NeighborEntry, RoutingState};
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

/// Why the appliance could not run.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// A config or profile error (nothing was touched).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// DPDK could not start, with what to do about it.
    #[error("{0}")]
    Dpdk(String),
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
    pub mcast: crate::report::McastReport,
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

/// Runs the appliance until stopped.
///
/// # Errors
/// Config errors (before DPDK is touched) or DPDK start-up failures.
pub fn run(opts: &Options) -> Result<Outcome, BootError> {
    let (profile, config) = load(opts)?;
    eal::check_version().map_err(BootError::Dpdk)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| BootError::Dpdk(format!("signal handler: {e}")))?;
    }

    let args = profile.eal_args(hugepages_free_mb());
    log::info!("profile {}: EAL {}", profile.name, args.join(" "));
    let eal = Eal::init(&args).map_err(|e| {
        BootError::Dpdk(format!(
            "EAL init failed: {e}\n  hint: with eal.hugepages = \"on\" the host needs free hugepages (echo N > /proc/sys/vm/nr_hugepages) or use \"off\" (--no-huge); a leftover process may hold the file prefix; drivers load from the plugin dir (eal.plugin_dir, e.g. /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0)"
        ))
    })?;
    log::info!(
        "DPDK {} up, hugepages: {}",
        eal::runtime_version(),
        eal.has_hugepages()
    );

    // Self-check: every configured port was probed.
    let mut port_ids = Vec::new();
    for (i, p) in profile.ports.iter().enumerate() {
        let dev = profile.device_name(i);
        let id = port::by_name(&dev).map_err(|_| {
            let what = match p.driver {
                Driver::AfPacket => format!("does kernel interface {:?} exist in this network namespace, and are we root?", p.iface.as_deref().unwrap_or("")),
                Driver::AfXdp => format!("does kernel interface {:?} exist in this network namespace, are we root, and does it have workers + 1 combined channels (`ethtool -l`)? A veth has none that DPDK 22.11's af_xdp driver can use.", p.iface.as_deref().unwrap_or("")),
                Driver::Pci => "is the NIC bound to vfio-pci/igb_uio and allowed by -a?".into(),
                Driver::Pcap => "does the rx_pcap file exist?".into(),
                _ => "was the vdev driver loaded?".into(),
            };
            BootError::Dpdk(format!(
                "port `{}` ({dev}) was not probed: {what} If no port at all was probed, the driver plugins did not load: set eal.plugin_dir = \"/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0\"",
                p.name
            ))
        })?;
        port_ids.push(id);
    }
    let socket = i32::try_from(eal.lcore_socket(eal.main_lcore())).unwrap_or(-1);
    let pool = Arc::new(
        Mempool::new("appliance_pkts", profile.mempool.mbufs, profile.mempool.cache, profile.mempool.data_room, socket).map_err(|e| {
            BootError::Dpdk(format!(
                "cannot create the mempool of {} mbufs: {e}\n  hint: raise eal.memory_mb (now {} MiB) or lower mempool.mbufs; with hugepages, reserve more (echo N > /proc/sys/vm/nr_hugepages)",
                profile.mempool.mbufs, profile.eal.memory_mb
            ))
        })?,
    );

    // Fan-out headers: small buffers, a small per-lcore cache (most copies
    // leave within the same burst).
    let headers = Arc::new(
        Mempool::new("appliance_hdrs", profile.mempool.header_mbufs, 64.min(profile.mempool.header_mbufs / 2), HEADER_DATA_ROOM, socket).map_err(|e| {
            BootError::Dpdk(format!(
                "cannot create the header pool of {} mbufs: {e}\n  hint: raise eal.memory_mb or lower mempool.header_mbufs",
                profile.mempool.header_mbufs
            ))
        })?,
    );

    let worker_lcores = eal.worker_lcores();
    let workers = worker_lcores.len();
    if workers == 0 {
        return Err(BootError::Dpdk(
            "no worker lcores: eal.lcores needs at least two".into(),
        ));
    }
    let tx_queues = u16::try_from(workers + 1).unwrap_or(u16::MAX);

    // Ports: every RX queue the driver has is polled by exactly one worker.
    let mut rx_by_worker: Vec<Vec<(port::RxQueue, usize)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut tx_by_lcore: Vec<Vec<port::TxQueue>> = (0..=workers).map(|_| Vec::new()).collect();
    let mut metas = Vec::new();
    let mut interfaces = Vec::new();
    for (i, p) in profile.ports.iter().enumerate() {
        let id = port_ids[i];
        let info =
            port::info(id).map_err(|e| BootError::Dpdk(format!("port `{}`: {e}", p.name)))?;
        let want_rx = u16::try_from(workers).unwrap_or(u16::MAX);
        // af_packet opens all its sockets at probe time and the kernel
        // fans packets out to every one of them: all must be polled.
        let rx_queues = if p.driver == Driver::AfPacket {
            info.max_rx_queues
        } else {
            want_rx.min(info.max_rx_queues)
        };
        if info.max_tx_queues < tx_queues || rx_queues == 0 {
            return Err(BootError::Dpdk(format!(
                "port `{}` ({}) offers {} RX / {} TX queues; {} workers need at least 1 RX and {} TX queues (one per worker plus the management lcore's)",
                p.name, info.driver, info.max_rx_queues, info.max_tx_queues, workers, tx_queues
            )));
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
        };
        let configured = port::configure(id, &setup, &pool)
            .map_err(|e| BootError::Dpdk(format!("port `{}`: {e}", p.name)))?;
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
            rx_by_worker[q % workers].push((rxq, i));
        }
        for (lc, txq) in txqs.into_iter().enumerate() {
            tx_by_lcore[lc].push(txq);
        }
        let mac = MacAddr(
            port::mac_addr(id).map_err(|e| BootError::Dpdk(format!("port `{}`: {e}", p.name)))?,
        );
        let address = config
            .interfaces
            .iter()
            .find(|c| c.port == p.name)
            .map(|c| c.address);
        interfaces.push(Interface {
            name: p.name.clone(),
            port_id: id,
            mac,
            address,
            tx_ipv4_cksum: configured.tx_ipv4_cksum,
            tx_udp_cksum: configured.tx_udp_cksum,
        });
        metas.push(PortMeta {
            index: i,
            name: p.name.clone(),
            port_id: id,
            driver: info.driver,
            rx_queues,
            tx_queues,
        });
    }

    let now = Instant::now();
    let port_of = |ip: &std::net::Ipv4Addr| {
        interfaces
            .iter()
            .position(|i| i.address.is_some_and(|a| a.contains(ip)))
    };
    let neighbors: HashMap<_, _> = config
        .neighbors
        .iter()
        .filter_map(|n| {
            port_of(&n.address).map(|port| {
                (
                    n.address,
                    NeighborEntry {
                        mac: n.mac,
                        port,
                        is_static: true,
                        confirmed: now,
                    },
                )
            })
        })
        .collect();
    let mut state = RoutingState::new(
        interfaces,
        config.routes.iter().map(|r| (r.prefix, r.via)).collect(),
        neighbors,
    );
    state.set_workers(workers);
    for (i, rule) in config.mcast_rules.iter().enumerate() {
        state.mcast_add(rule.clone(), false).map_err(|e| {
            BootError::Config(ConfigError::new(
                &opts.config,
                format!("mcast_rules[{i}]"),
                e,
            ))
        })?;
    }
    let published = state.published().clone();

    for id in &port_ids {
        port::start(*id).map_err(|e| BootError::Dpdk(format!("starting port {id}: {e}")))?;
    }

    let mgmt_counters = Arc::new(WorkerCounters::default());
    let slow = Arc::new(SlowCounters::default());
    let mut punt_consumers = Vec::new();
    let mut worker_metas = Vec::new();
    let worker_stop = Arc::new(AtomicBool::new(false));
    let mut tx_iter = tx_by_lcore.into_iter();
    let mut launched = Vec::new();
    let mut pending_workers = Vec::new();
    for (k, (lc, rx)) in worker_lcores.iter().zip(rx_by_worker).enumerate() {
        let (producer, consumer) = ring::spsc(&format!("punt{k}"), 1024, socket)
            .map_err(|e| BootError::Dpdk(format!("punt ring: {e}")))?;
        punt_consumers.push(consumer);
        let counters = Arc::new(WorkerCounters::default());
        worker_metas.push(WorkerMeta {
            id: k,
            lcore: *lc,
            rx_queues: rx
                .iter()
                .map(|(q, p)| format!("{}:{}", profile.ports[*p].name, q.queue()))
                .collect(),
            counters: Arc::clone(&counters),
        });
        let tx = tx_iter.next().unwrap_or_default();
        pending_workers.push((
            *lc,
            Worker {
                id: k,
                rx,
                tx: TxPorts::new(tx, k, Arc::clone(&counters)),
                punt: producer,
                counters,
                tables: published.clone(),
                headers: Arc::clone(&headers),
                stop: Arc::clone(&worker_stop),
                idle: Idle::new(profile.poll_mode, &profile.idle),
            },
        ));
    }
    let mgmt_tx = tx_iter.next().unwrap_or_default();

    let source = Arc::new(StatsSource {
        port_rates: metas.iter().map(|_| PortRates::default()).collect(),
        ports: metas,
        workers: worker_metas,
        mgmt: Arc::clone(&mgmt_counters),
        slow: Arc::clone(&slow),
        pool: Arc::clone(&pool),
        headers: Arc::clone(&headers),
        baseline_in_use: AtomicU32::new(pool.in_use()),
        tables: published.clone(),
    });
    let (change_tx, change_rx) = mpsc::channel();
    let server = control::server::start(&config.control.socket, Arc::clone(&source), change_tx)
        .map_err(|e| {
            BootError::Dpdk(format!(
                "control socket {}: {e}",
                config.control.socket.display()
            ))
        })?;
    let metrics = if config.control.metrics.is_empty() {
        None
    } else {
        Some(
            crate::metrics::start(&config.control.metrics, Arc::clone(&source))
                .map_err(BootError::Dpdk)?,
        )
    };

    for (lc, w) in pending_workers {
        lcore::launch(lc, move || w.run())
            .map_err(|e| BootError::Dpdk(format!("launching worker on lcore {lc}: {e}")))?;
        launched.push(lc);
    }
    log::info!(
        "{} workers running on lcores {:?}; control socket {}",
        workers,
        launched,
        config.control.socket.display()
    );

    let mut slowpath = SlowPath::new(
        state,
        punt_consumers,
        mgmt_tx,
        Arc::clone(&pool),
        Arc::clone(&mgmt_counters),
        slow,
        config.slowpath.clone(),
        change_rx,
    );
    slowpath.announce();
    slowpath.join_configured_groups();
    let mut last_rx = u64::MAX;
    let mut last_change = Instant::now();
    let mut last_rate_sample = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let work = slowpath.poll(now);
        let since_sample = now.duration_since(last_rate_sample);
        if since_sample >= crate::stats::SAMPLE_EVERY {
            source.sample_rates(since_sample);
            last_rate_sample = now;
        }
        if let Some(idle) = opts.exit_when_idle {
            let rx: u64 = source
                .workers
                .iter()
                .map(|w| w.counters.rx_packets.iter().map(|c| c.get()).sum::<u64>())
                .sum();
            if rx != last_rx {
                last_rx = rx;
                last_change = now;
            } else if now.duration_since(last_change) >= idle {
                log::info!("no packet for {idle:?}: stopping");
                break;
            }
        }
        if work == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    slowpath.leave_all_groups();
    log::info!("stopping workers");
    worker_stop.store(true, Ordering::Relaxed);
    for lc in &launched {
        lcore::wait(*lc);
    }
    // Anything workers punted after the last poll is answered, then freed.
    slowpath.poll(Instant::now());
    slowpath.drain();
    let stats = source.stats();
    let in_use = pool.in_use();
    let headers_in_use = headers.in_use();
    let mcast = source.mcast(None);
    for id in &port_ids {
        port::stop(*id);
        port::close(*id);
    }
    drop(slowpath);
    drop(server);
    drop(metrics);
    release_pools_then_cleanup(eal, source, pool, headers);
    Ok(Outcome {
        stats,
        mempool_in_use_at_exit: in_use,
        headers_in_use_at_exit: headers_in_use,
        mcast,
    })
}

/// How long shutdown waits for open control connections to hang up before it gives up on
/// freeing the mempools.
const CONNECTION_GRACE: Duration = Duration::from_secs(1);

/// Frees the mempools, then runs `rte_eal_cleanup` (dropping `eal`): the pools live in EAL
/// memory, so the other order would free into unmapped memory. A control connection that is
/// still open (or the accept thread, when its socket file was removed under it) holds the
/// stats source, and through it the pools; after a short grace the EAL is left as it is (the
/// process is exiting) rather than cleaned up under a live pool.
fn release_pools_then_cleanup(
    eal: Eal,
    source: Arc<StatsSource>,
    pool: Arc<Mempool>,
    headers: Arc<Mempool>,
) {
    let deadline = Instant::now() + CONNECTION_GRACE;
    while Arc::strong_count(&source) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(source);
    let last = Arc::strong_count(&pool) == 1 && Arc::strong_count(&headers) == 1;
    drop(pool);
    drop(headers);
    if last {
        drop(eal);
        log::info!("mempools freed, EAL cleaned up");
    } else {
        log::warn!(
            "a control connection (or a control thread left blocked) still holds the mempools: \
             not freed, EAL not cleaned up"
        );
        std::mem::forget(eal);
    }
}
