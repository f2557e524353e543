//! Reading the running appliance: ports, workers, counters, mempool, relay
//! rules, the tunnel ([`tunnel`]). Used by the control socket and the metrics
//! endpoint; every read is of atomics or thread-safe DPDK queries, so it never
//! disturbs the workers.

pub mod kernel;
pub mod tunnel;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use dpdk_bindings::{packet_port, port, Mempool};
use serde::Serialize;

use crate::config::mcast::McastRuleSpec;
use crate::stats::SlowCounters;
use crate::stats::{CounterSnapshot, DropReason, WorkerCounters};
use crate::stats::{Rate, RateReport};
use crate::tables::{McastRule, OutputCounters, Published, RuleWorkerCounters};
use crate::time::Clock;

/// Static facts about a port.
#[derive(Debug, Clone, Serialize)]
pub struct PortMeta {
    /// Port index.
    pub index: usize,
    /// Name from the profile.
    pub name: String,
    /// DPDK port id.
    pub port_id: u16,
    /// Driver.
    pub driver: String,
    /// RX queues configured.
    pub rx_queues: u16,
    /// TX queues configured.
    pub tx_queues: u16,
}

/// A port's rates, from its driver counters (management lcore).
#[derive(Debug, Default)]
pub struct PortRates {
    /// Received.
    pub rx: Rate,
    /// Sent.
    pub tx: Rate,
}

/// Static facts about a worker.
#[derive(Debug, Clone)]
pub struct WorkerMeta {
    /// Worker number.
    pub id: usize,
    /// Its lcore.
    pub lcore: u32,
    /// The RX queues it polls, as `port:queue`.
    pub rx_queues: Vec<String>,
    /// Its counters.
    pub counters: Arc<WorkerCounters>,
}

/// Everything a report is read from.
#[derive(Debug)]
pub struct StatsSource {
    /// Ports.
    pub ports: Vec<PortMeta>,
    /// Per port index.
    pub port_rates: Vec<PortRates>,
    /// Per port index: the kernel's counters (af_packet ports).
    pub kernel: Vec<Option<kernel::KernelPortCounters>>,
    /// Workers.
    pub workers: Vec<WorkerMeta>,
    /// The management lcore's data-plane counters (what it sends and drops).
    pub mgmt: Arc<WorkerCounters>,
    /// Slow-path event counters.
    pub slow: Arc<SlowCounters>,
    /// The DPDK objects reports read, while the EAL is up ([`StatsSource::close_dpdk`]).
    pub dpdk: RwLock<Option<DpdkHandles>>,
    /// Mbufs in use once the ports were started and before traffic.
    pub baseline_in_use: AtomicU32,
    /// The tables.
    pub tables: Published,
    /// The appliance's clock (states' ages).
    pub clock: Clock,
}

/// What of DPDK the reports read: the mempools, and (through their ids) the ports. Shutdown
/// takes it away before the EAL is cleaned up, so a control connection left open at exit
/// neither keeps the pools alive nor reads a port or pool the EAL has freed.
#[derive(Debug)]
pub struct DpdkHandles {
    /// The packet pool.
    pub pool: Arc<Mempool>,
    /// The fan-out header pool.
    pub headers: Arc<Mempool>,
}

/// One port.
#[derive(Debug, Serialize)]
pub struct PortReport {
    /// Static facts.
    #[serde(flatten)]
    pub meta: PortMeta,
    /// MAC address.
    pub mac: String,
    /// Configured address.
    pub address: Option<String>,
    /// IPv6 global address in use (`None`: IPv6 off on the port, as
    /// configured or because duplicate address detection found it taken).
    pub address6: Option<String>,
    /// IPv6 link-local address, while IPv6 is on.
    pub link_local: Option<String>,
    /// Carrier.
    pub link_up: bool,
    /// Mbit/s.
    pub speed_mbps: u32,
    /// Driver counters.
    pub stats: PortStatsReport,
    /// af_packet ports: the partial checksums completed and GSO
    /// super-frames segmented on receive, and the frames refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload: Option<OffloadReport>,
    /// Received per second over the last sampling interval.
    pub rx_rate: RateReport,
    /// Sent per second over the last sampling interval.
    pub tx_rate: RateReport,
}

/// What an af_packet port did with the offloads a Linux neighbour left
/// pending (`dpdk_bindings::packet_port::OffloadStats`).
#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct OffloadReport {
    /// Frames whose partial checksum was completed.
    pub csum_completed: u64,
    /// GSO super-frames cut into segments.
    pub gso_frames: u64,
    /// Segments made of them.
    pub gso_segments: u64,
    /// Dropped: a GSO type not segmented here (UFO, VLAN-tagged, IPv6 with
    /// extension headers, not IP).
    pub drop_gso_unsupported: u64,
    /// Dropped: offload offsets or headers that do not fit the frame.
    pub drop_bad_offload: u64,
    /// Dropped: larger than a packet buffer, or its whole copy was lost.
    pub drop_too_long: u64,
}

impl From<packet_port::OffloadStats> for OffloadReport {
    fn from(s: packet_port::OffloadStats) -> Self {
        Self {
            csum_completed: s.csum_completed,
            gso_frames: s.gso_frames,
            gso_segments: s.gso_segments,
            drop_gso_unsupported: s.drop_gso_unsupported,
            drop_bad_offload: s.drop_bad_offload,
            drop_too_long: s.drop_too_long,
        }
    }
}

/// Driver counters of a port.
#[derive(Debug, Serialize, Default)]
pub struct PortStatsReport {
    /// Received packets.
    pub ipackets: u64,
    /// Sent packets.
    pub opackets: u64,
    /// Received bytes.
    pub ibytes: u64,
    /// Sent bytes.
    pub obytes: u64,
    /// Missed by the device; on af_packet, dropped by the kernel on a full
    /// socket ring.
    pub imissed: u64,
    /// af_packet: frames the kernel's fanout moved to another worker's
    /// socket because the one the flow hashes to was full (0 elsewhere).
    pub rollovers: u64,
    /// RX errors.
    pub ierrors: u64,
    /// TX errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Received per queue.
    pub q_ipackets: Vec<u64>,
    /// Sent per queue.
    pub q_opackets: Vec<u64>,
}

/// One worker.
#[derive(Debug, Serialize)]
pub struct WorkerReport {
    /// Worker number.
    pub id: usize,
    /// Its lcore.
    pub lcore: u32,
    /// Its RX queues.
    pub rx_queues: Vec<String>,
    /// Its share of the packets the workers received (0 to 1).
    pub rx_share: f64,
    /// Its counters.
    pub counters: CounterSnapshot,
}

/// The mempool (all zero once the EAL is going away).
#[derive(Debug, Default, Serialize)]
pub struct MempoolReport {
    /// Mbufs in use now.
    pub in_use: u32,
    /// Free mbufs.
    pub available: u32,
    /// Pool size.
    pub capacity: u32,
    /// In use with no traffic (after the ports started).
    pub baseline_in_use: u32,
}

/// The whole appliance at one instant.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    /// Table version.
    pub tables_version: u64,
    /// Per port index: packets received by the workers.
    pub rx_packets: Vec<u64>,
    /// Per port index: packets sent (workers and management lcore).
    pub tx_packets: Vec<u64>,
    /// Per port index: bytes received.
    pub rx_bytes: Vec<u64>,
    /// Per port index: bytes sent.
    pub tx_bytes: Vec<u64>,
    /// Per port index: frames missed (by the device, or by the kernel on a
    /// full af_packet ring).
    pub rx_missed: Vec<u64>,
    /// Per port index: frames the af_packet fanout rolled over to another
    /// worker's socket.
    pub rx_rollovers: Vec<u64>,
    /// Packets handed to the slow path.
    pub punted: u64,
    /// Drops by reason (workers and management lcore), every reason listed.
    pub drops: BTreeMap<&'static str, u64>,
    /// Sum of `drops`.
    pub drops_total: u64,
    /// Slow-path events.
    pub slowpath: BTreeMap<&'static str, u64>,
    /// Mempool.
    pub mempool: MempoolReport,
    /// Fan-out header pool (nothing in use when no copy is in flight).
    pub header_pool: MempoolReport,
}

/// Counters of one relay output, summed over the workers.
#[derive(Debug, Serialize)]
pub struct OutputReport {
    /// Interface name.
    pub interface: String,
    /// New destination.
    pub destination: String,
    /// New UDP port.
    pub port: u32,
    /// Copies the TX queue took.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Copies sent per second over the last sampling interval.
    pub tx_rate: RateReport,
    /// Copies lost, by reason.
    pub drops: BTreeMap<&'static str, u64>,
}

/// One relay rule with its counters, summed over the workers.
#[derive(Debug, Serialize)]
pub struct RuleReport {
    /// The rule as configured.
    pub rule: McastRuleSpec,
    /// Packets matched.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Packets matched per second over the last sampling interval.
    pub rx_rate: RateReport,
    /// Matched packets not relayed, by reason.
    pub drops: BTreeMap<&'static str, u64>,
    /// Per output.
    pub outputs: Vec<OutputReport>,
}

impl RuleReport {
    /// Reads `rule`'s counters.
    pub fn new(rule: &McastRule) -> Self {
        let c = &rule.counters;
        Self {
            rule: rule.spec.clone(),
            rx_packets: c.total(|w| &w.rx_packets),
            rx_bytes: c.total(|w| &w.rx_bytes),
            rx_rate: c.rx_rate.report(),
            drops: drops_by_reason(RuleWorkerCounters::DROP_REASONS, |reason| {
                c.total(|w| w.drops.of(reason))
            }),
            outputs: rule
                .spec
                .outputs
                .iter()
                .enumerate()
                .map(|(k, o)| OutputReport {
                    interface: o.interface.clone(),
                    destination: o.destination.to_string(),
                    port: o.port,
                    tx_packets: c.output_total(k, |o| &o.tx_packets),
                    tx_bytes: c.output_total(k, |o| &o.tx_bytes),
                    tx_rate: c
                        .output_rates
                        .get(k)
                        .map(|r| r.report())
                        .unwrap_or_default(),
                    drops: drops_by_reason(OutputCounters::DROP_REASONS, |reason| {
                        c.output_total(k, |o| o.drops.of(reason))
                    }),
                })
                .collect(),
        }
    }
}

/// Drops by reason as reports show them: the `listed` reasons always (even at
/// zero, so scripts can rely on them), any other only when it happened.
pub(crate) fn drops_by_reason(
    listed: &[DropReason],
    count: impl Fn(DropReason) -> u64,
) -> BTreeMap<&'static str, u64> {
    DropReason::ALL
        .iter()
        .filter_map(|&r| {
            let n = count(r);
            (n > 0 || listed.contains(&r)).then(|| (r.name(), n))
        })
        .collect()
}

/// The relay table with counters.
#[derive(Debug, Serialize)]
pub struct McastReport {
    /// Table version.
    pub version: u64,
    /// Rules in the order they were added.
    pub rules: Vec<RuleReport>,
}

impl StatsSource {
    /// The DPDK handles while the EAL is up (`None` once shutdown took them); the EAL stays
    /// up while the guard lives.
    fn dpdk(&self) -> RwLockReadGuard<'_, Option<DpdkHandles>> {
        // A reader that panicked cannot have left the handles half-changed: only
        // `close_dpdk` writes, and it only takes them.
        self.dpdk.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the DPDK handles away, once every report that is reading them has finished;
    /// later reports leave out what they would read from DPDK. Shutdown calls it before
    /// freeing the pools and cleaning the EAL up.
    pub fn close_dpdk(&self) -> Option<DpdkHandles> {
        self.dpdk
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Ports with live link state and counters (none once the EAL is going away).
    pub fn ports(&self) -> Vec<PortReport> {
        let dpdk = self.dpdk();
        if dpdk.is_none() {
            return Vec::new();
        }
        let tables = self.tables.current();
        self.ports
            .iter()
            .map(|m| {
                let link = port::link(m.port_id).unwrap_or_default();
                let s = port::stats(m.port_id).unwrap_or_default();
                let nq = usize::from(m.rx_queues.max(m.tx_queues)).min(16);
                let iface = tables.interfaces.get(m.index);
                PortReport {
                    meta: m.clone(),
                    mac: iface.map(|i| i.mac.to_string()).unwrap_or_default(),
                    address: iface.and_then(|i| i.address).map(|a| a.to_string()),
                    address6: iface.and_then(|i| i.address6).map(|a| a.to_string()),
                    link_local: iface
                        .filter(|i| i.address6.is_some())
                        .map(|i| i.link_local().to_string()),
                    link_up: link.up,
                    speed_mbps: link.speed_mbps,
                    stats: PortStatsReport {
                        ipackets: s.ipackets,
                        opackets: s.opackets,
                        ibytes: s.ibytes,
                        obytes: s.obytes,
                        imissed: s.imissed + self.kernel_ring_drops(m.index),
                        rollovers: self.rollovers(m.index),
                        ierrors: s.ierrors,
                        oerrors: s.oerrors,
                        rx_nombuf: s.rx_nombuf,
                        q_ipackets: s.q_ipackets[..nq].to_vec(),
                        q_opackets: s.q_opackets[..nq].to_vec(),
                    },
                    offload: packet_port::offload_stats(m.port_id).map(OffloadReport::from),
                    rx_rate: self
                        .port_rates
                        .get(m.index)
                        .map(|r| r.rx.report())
                        .unwrap_or_default(),
                    tx_rate: self
                        .port_rates
                        .get(m.index)
                        .map(|r| r.tx.report())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Workers with their counters. Each worker's counters are read once and
    /// the shares come from those same readings, so they sum to 1 even while
    /// packets flow.
    pub fn workers(&self) -> Vec<WorkerReport> {
        let snapshots: Vec<CounterSnapshot> =
            self.workers.iter().map(|w| w.counters.snapshot()).collect();
        let received = |c: &CounterSnapshot| -> u64 { c.rx_packets.iter().sum() };
        let total: u64 = snapshots.iter().map(received).sum();
        self.workers
            .iter()
            .zip(snapshots)
            .map(|(w, counters)| WorkerReport {
                id: w.id,
                lcore: w.lcore,
                rx_queues: w.rx_queues.clone(),
                rx_share: if total == 0 {
                    0.0
                } else {
                    received(&counters) as f64 / total as f64
                },
                counters,
            })
            .collect()
    }

    /// Packets the workers received, all ports together.
    pub fn worker_rx_packets(&self) -> u64 {
        self.workers
            .iter()
            .flat_map(|w| w.counters.rx_packets.iter())
            .map(|c| c.get())
            .sum()
    }

    /// The totals.
    pub fn stats(&self) -> StatsReport {
        let n = self.ports.len();
        let mut total = CounterSnapshot::default();
        for w in &self.workers {
            total.accumulate(&w.counters.snapshot());
        }
        total.accumulate(&self.mgmt.snapshot());
        let drops: BTreeMap<&'static str, u64> = DropReason::ALL
            .iter()
            .map(|r| (r.name(), total.drop_count(*r)))
            .collect();
        let cut = |v: &Vec<u64>| v.iter().copied().take(n).collect::<Vec<_>>();
        let dpdk = self.dpdk();
        let pool_report = |pool: &Mempool, baseline: u32| MempoolReport {
            in_use: pool.in_use(),
            available: pool.available(),
            capacity: pool.capacity(),
            baseline_in_use: baseline,
        };
        let baseline = self.baseline_in_use.load(Ordering::Relaxed);
        StatsReport {
            tables_version: self.tables.current().version,
            rx_packets: cut(&total.rx_packets),
            tx_packets: cut(&total.tx_packets),
            rx_bytes: cut(&total.rx_bytes),
            tx_bytes: cut(&total.tx_bytes),
            rx_missed: self
                .ports
                .iter()
                .map(|m| {
                    let device = dpdk
                        .as_ref()
                        .and_then(|_| port::stats(m.port_id).ok())
                        .map_or(0, |s| s.imissed);
                    device + self.kernel_ring_drops(m.index)
                })
                .collect(),
            rx_rollovers: self.ports.iter().map(|m| self.rollovers(m.index)).collect(),
            punted: total.punted,
            drops_total: drops.values().sum(),
            drops,
            slowpath: self.slow.snapshot(),
            mempool: dpdk
                .as_ref()
                .map(|d| pool_report(&d.pool, baseline))
                .unwrap_or_default(),
            header_pool: dpdk
                .as_ref()
                .map(|d| pool_report(&d.headers, 0))
                .unwrap_or_default(),
        }
    }

    /// Samples the ports' and relay rules' rates, `elapsed` after the previous sample
    /// (management lcore only).
    pub fn sample_rates(&self, elapsed: Duration) {
        self.sample_kernel();
        for (m, rates) in self.ports.iter().zip(&self.port_rates) {
            if let Ok(s) = port::stats(m.port_id) {
                rates.rx.sample(s.ipackets, s.ibytes, elapsed);
                rates.tx.sample(s.opackets, s.obytes, elapsed);
            }
        }
        let tables = self.tables.current();
        for rule in &tables.mcast.rules {
            rule.counters.sample_rates(elapsed);
        }
        for t in tables.peers() {
            t.sample_rates(elapsed);
        }
    }

    /// The kernel's counters of port index `port`, if it is an af_packet port.
    fn kernel(&self, port: usize) -> Option<&kernel::KernelPortCounters> {
        self.kernel.get(port).and_then(Option::as_ref)
    }

    /// Frames the kernel dropped on port index `port`'s full af_packet rings
    /// (0 on other ports).
    fn kernel_ring_drops(&self, port: usize) -> u64 {
        self.kernel(port).map_or(0, |k| k.ring_drops())
    }

    /// Frames the af_packet fanout rolled over to another worker's socket
    /// on port index `port` (0 on other ports).
    fn rollovers(&self, port: usize) -> u64 {
        self.kernel(port).map_or(0, |k| k.rollovers())
    }

    /// Reads the kernel's counters of the af_packet ports (management lcore,
    /// once a second and at exit).
    pub fn sample_kernel(&self) {
        for k in self.kernel.iter().flatten() {
            k.sample();
        }
    }

    /// The tunnel, if one is configured.
    pub fn tunnel(&self) -> Option<tunnel::TunnelReport> {
        let tables = self.tables.current();
        let t = tables.peers().next()?;
        let drops = tunnel::worker_drops(&self.drops());
        Some(tunnel::tunnel(&tables, t, drops, self.clock.now()))
    }

    /// Every worker's and the management lcore's drops, by reason.
    fn drops(&self) -> Vec<u64> {
        let mut drops = CounterSnapshot::default();
        for w in &self.workers {
            drops.accumulate(&w.counters.snapshot());
        }
        drops.accumulate(&self.mgmt.snapshot());
        drops.drops
    }

    /// Each peer's tunnel report (empty without a tunnel; `/metrics`).
    pub fn tunnels(&self) -> Vec<tunnel::TunnelReport> {
        let tables = self.tables.current();
        let now = self.clock.now();
        tables
            .peers()
            .map(|t| tunnel::tunnel(&tables, t, tunnel::peer_drops(t), now))
            .collect()
    }

    /// One line per peer of the tunnel (empty without a tunnel).
    pub fn peers(&self) -> Vec<tunnel::PeerReport> {
        let tables = self.tables.current();
        let now = self.clock.now();
        tables
            .peers()
            .map(|t| tunnel::peer(&tables, t, now))
            .collect()
    }

    /// Peer `name` in full (`None`: no such peer).
    pub fn peer(&self, name: &str) -> Option<tunnel::PeerDetail> {
        let tables = self.tables.current();
        let now = self.clock.now();
        let t = tables.peers().find(|t| t.name == name)?;
        Some(tunnel::PeerDetail {
            peer: tunnel::peer(&tables, t, now),
            // Its own drops: what its paths counted (the workers' totals are every peer's).
            tunnel: tunnel::tunnel(&tables, t, tunnel::peer_drops(t), now),
            paths: tunnel::paths(&tables, t, now),
            classes: tunnel::classes(t),
        })
    }

    /// Every peer's paths (empty without a tunnel).
    pub fn paths(&self) -> Vec<tunnel::PathReport> {
        let tables = self.tables.current();
        let now = self.clock.now();
        tables
            .peers()
            .flat_map(|t| tunnel::paths(&tables, t, now))
            .collect()
    }

    /// Every peer's traffic classes (empty without a tunnel).
    pub fn classes(&self) -> Vec<tunnel::ClassReport> {
        let tables = self.tables.current();
        tables.peers().flat_map(|t| tunnel::classes(t)).collect()
    }

    /// Relay rules and their counters; only the rules matching `filter` if given.
    pub fn mcast(&self, filter: Option<&crate::config::mcast::McastInputSpec>) -> McastReport {
        let t = self.tables.current();
        McastReport {
            version: t.version,
            rules: t
                .mcast
                .rules
                .iter()
                .filter(|r| filter.is_none_or(|f| r.spec.input == *f))
                .map(|r| RuleReport::new(r))
                .collect(),
        }
    }
}
