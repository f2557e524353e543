//! What `show tunnel`, `show paths`, `show classes` and `/metrics` read of the
//! tunnel: configuration from the table, state and measurements from the
//! atomics the management lcore publishes, counters summed over the workers.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::drops_by_reason;
use crate::bfd::SessionStatus;
use crate::config::tunnel::Tier;
use crate::stats::{DropReason, RateReport};
use crate::tables::Tables;
use crate::time::Time;
use crate::tunnel::crypto::aead::Cipher;
use crate::tunnel::{LaneCounters, PathState, TunnelTable};

/// One path.
#[derive(Debug, Serialize)]
pub struct PathReport {
    /// The peer it leads to.
    pub peer: String,
    /// Name.
    pub name: String,
    /// Wire id.
    pub id: u8,
    /// WAN interface.
    pub interface: String,
    /// Our address.
    pub local: String,
    /// The peer's address (a learned path: `learned <address:port>`, or
    /// `learned (not yet)`).
    pub remote: String,
    /// Next hop (empty while a learned path has none).
    pub next_hop: String,
    /// Whether the next hop is resolved.
    pub resolved: bool,
    /// Up, or why not.
    pub state: PathState,
    /// Seconds in this state.
    pub for_secs: f64,
    /// Taken down by `appliancectl path down`.
    pub admin_down: bool,
    /// Whether the workers send on it now.
    pub usable: bool,
    /// Times it went down.
    pub flaps: u64,
    /// State changes.
    pub state_changes: u64,
    /// Times BFD said Down while it was the last usable path and the data
    /// plane showed it delivering, so it stayed Up.
    pub bfd_overrides: u64,
    /// While held down after flapping: seconds left.
    pub hold_down_secs: Option<f64>,
    /// Its BFD session (`None`: BFD is off on this path).
    pub bfd: Option<SessionStatus>,
    /// Configured rate (bit/s).
    pub rate_configured_bps: u64,
    /// Effective rate the schedulers use (bit/s).
    pub rate_bps: u64,
    /// Path MTU.
    pub mtu: u16,
    /// `backup` priority.
    pub priority: u8,
    /// A standby path.
    pub backup: bool,
    /// Smoothed round trip (µs).
    pub srtt_us: u32,
    /// Round-trip variation (µs).
    pub rttvar_us: u32,
    /// Lowest recent round trip (µs).
    pub min_rtt_us: u32,
    /// Forward one-way delay relative to the fastest path (µs).
    pub delay_us: u32,
    /// Its queue (µs).
    pub queueing_us: u32,
    /// Forward-delay jitter (µs).
    pub jitter_us: u32,
    /// Probe loss over the last second (0–1).
    pub loss: f64,
    /// Probes sent.
    pub probes_sent: u64,
    /// Replies received.
    pub probe_replies: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent (outer frames).
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Sent per second over the last second.
    pub tx_rate: RateReport,
    /// Received per second over the last second.
    pub rx_rate: RateReport,
    /// Packets lost on it, by reason.
    pub drops: BTreeMap<&'static str, u64>,
    /// Times it was the last usable path, its peer's count stopped moving,
    /// and it stayed Up.
    pub silence_overrides: u64,
    /// Times its BFD went Down while our own shaper's queue for it was full.
    pub bfd_down_congested: u64,
    /// Times a learned path's peer endpoint moved (0 on a configured path).
    pub endpoint_moves: u64,
    /// Its shaper (`None`: shaping off).
    pub shaper: Option<ShaperReport>,
}

/// A path's shaper, summed over the workers.
#[derive(Debug, Serialize)]
pub struct ShaperReport {
    /// The rate it lets out (bit/s): the effective rate less the margin.
    pub rate_bps: u64,
    /// What every worker holds for it and what it was charged for beyond
    /// now, at that rate (µs).
    pub backlog_us: u64,
    /// Per tier, highest first.
    pub tiers: Vec<TierReport>,
}

/// One tier of a path's shaper.
#[derive(Debug, Serialize)]
pub struct TierReport {
    /// `network-control`, `realtime`, `default` or `bulk`.
    pub tier: &'static str,
    /// Packets that left the queue.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// CoDel's drops.
    pub aqm_drops: u64,
    /// Drops of a full queue.
    pub overlimit_drops: u64,
    /// Packets waiting now.
    pub queued: u64,
}

/// One traffic class.
#[derive(Debug, Serialize)]
pub struct ClassReport {
    /// The peer whose class it is.
    pub peer: String,
    /// Name (`default` last).
    pub name: String,
    /// Scheduler.
    pub scheduler: &'static str,
    /// What it matches, as configured (Rust debug text; empty for default).
    pub matches: String,
    /// Packets that entered the tunnel in it.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Second copies sent (`redundant`).
    pub copies: u64,
    /// Packets with no usable path.
    pub no_path: u64,
    /// Per second over the last second.
    pub rate: RateReport,
}

/// One lane's reorder buffer (only lanes that saw traffic).
#[derive(Debug, Serialize)]
pub struct LaneReport {
    /// Lane number (the peer's worker).
    pub lane: usize,
    /// Its counters.
    pub counters: BTreeMap<&'static str, u64>,
}

/// The tunnel's encryption: the session in use and the handshakes.
#[derive(Debug, Serialize)]
pub struct EncryptionReport {
    /// Whether the tunnel is encrypted (`false`: configured in clear).
    pub encrypted: bool,
    /// The current session's cipher (none before the first handshake).
    pub cipher: Option<&'static str>,
    /// The cipher this appliance prefers.
    pub preferred: Option<&'static str>,
    /// Whether the CPU has AES instructions (detected at start).
    pub hardware_aes: bool,
    /// The Key ID our packets carry now (0: none).
    pub key_id: u16,
    /// Age of the key in use (s).
    pub key_age_secs: Option<f64>,
    /// Time since the last session formed (s).
    pub last_handshake_secs: Option<f64>,
    /// Handshake counters: initiations sent and answered, sessions formed,
    /// messages refused, initiations rate-limited, cookie replies sent.
    pub handshakes: BTreeMap<&'static str, u64>,
}

/// One peer, in a line of `show peers`.
#[derive(Debug, Serialize)]
pub struct PeerReport {
    /// Name.
    pub name: String,
    /// Whether a session is up to send under (always, in clear).
    pub session: bool,
    /// Time since the last session formed (s; none in clear or before the
    /// first).
    pub handshake_age_secs: Option<f64>,
    /// Paths usable now.
    pub paths_usable: usize,
    /// Paths configured.
    pub paths: usize,
    /// Its prefixes.
    pub prefixes: Vec<String>,
    /// Packets sent to it (all paths).
    pub tx_packets: u64,
    /// Packets received from it (all paths).
    pub rx_packets: u64,
    /// Sent per second over the last second (all paths).
    pub tx_rate: RateReport,
    /// Received per second over the last second (all paths).
    pub rx_rate: RateReport,
    /// Its packets whose inner source was not one of its prefixes.
    pub inner_source_drops: u64,
}

/// One peer in full (`appliancectl peer show NAME`).
#[derive(Debug, Serialize)]
pub struct PeerDetail {
    /// Its line of `show peers`.
    pub peer: PeerReport,
    /// Its tunnel: encryption, lanes and reorder counters.
    pub tunnel: TunnelReport,
    /// Its paths.
    pub paths: Vec<PathReport>,
    /// Its traffic classes.
    pub classes: Vec<ClassReport>,
}

/// The tunnel as a whole.
#[derive(Debug, Serialize)]
pub struct TunnelReport {
    /// The peer this is about (the first; `show peers` lists every one).
    pub peer: String,
    /// Peers configured.
    pub peers: usize,
    /// The encryption and its handshakes.
    pub encryption: EncryptionReport,
    /// Outer UDP port.
    pub port: u16,
    /// Our epoch.
    pub epoch: u16,
    /// Largest inner packet.
    pub inner_mtu: u16,
    /// The peer's prefixes.
    pub prefixes: Vec<String>,
    /// Paths usable now / configured.
    pub paths_usable: usize,
    /// Paths configured.
    pub paths: usize,
    /// Sum over the paths.
    pub tx_packets: u64,
    /// Sum over the paths.
    pub rx_packets: u64,
    /// Reorder counters summed over the lanes.
    pub reorder: BTreeMap<&'static str, u64>,
    /// Lanes that saw traffic.
    pub lanes: Vec<LaneReport>,
    /// Tunnel drops by reason (every worker).
    pub drops: BTreeMap<&'static str, u64>,
    /// BFD packets discarded, by RFC 5880 §6.8.6 reason.
    pub bfd_discards: BTreeMap<&'static str, u64>,
}

/// Every path.
pub fn paths(tables: &Tables, t: &TunnelTable, now: Time) -> Vec<PathReport> {
    t.paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let live = &t.live[i];
            let cells = &live.report;
            let c = &t.path_counters[i];
            let (tx_rate, rx_rate) = (&t.path_rates[i].0, &t.path_rates[i].1);
            let next_hop = t.next_hop(i);
            let resolved = next_hop.is_some_and(|nh| tables.neighbor_on(nh, p.port).is_some());
            let since = Time::from_nanos(cells.since_ns.load(Ordering::Relaxed));
            PathReport {
                peer: t.name.clone(),
                name: p.name.clone(),
                id: p.id,
                interface: tables
                    .interfaces
                    .get(p.port)
                    .map(|i| i.name.clone())
                    .unwrap_or_default(),
                local: p.local.to_string(),
                remote: match (p.learned, live.learned_endpoint()) {
                    (false, _) => p.remote.to_string(),
                    (true, Some((ip, port))) => format!("learned {ip}:{port}"),
                    (true, None) => "learned (not yet)".into(),
                },
                next_hop: next_hop.map(|nh| nh.to_string()).unwrap_or_default(),
                resolved,
                state: PathState::from_code(cells.state.load(Ordering::Relaxed)),
                for_secs: now.duration_since(since).as_secs_f64(),
                admin_down: !live.admin_up.load(Ordering::Relaxed),
                usable: live.usable() && resolved,
                flaps: cells.flaps.load(Ordering::Relaxed),
                state_changes: cells.state_changes.load(Ordering::Relaxed),
                bfd_overrides: cells.bfd_overrides.load(Ordering::Relaxed),
                hold_down_secs: match cells.hold_until_ns.load(Ordering::Relaxed) {
                    0 => None,
                    ns => Some(
                        Time::from_nanos(ns)
                            .saturating_duration_since(now)
                            .as_secs_f64(),
                    ),
                },
                bfd: cells.bfd.load_full().map(|s| (*s).clone()),
                rate_configured_bps: p.rate_bps,
                rate_bps: live.rate_bps.load(Ordering::Relaxed),
                mtu: p.mtu,
                priority: p.priority,
                backup: p.backup,
                srtt_us: cells.srtt_us.load(Ordering::Relaxed),
                rttvar_us: cells.rttvar_us.load(Ordering::Relaxed),
                min_rtt_us: cells.min_rtt_us.load(Ordering::Relaxed),
                delay_us: live.delay_us.load(Ordering::Relaxed),
                queueing_us: cells.queueing_us.load(Ordering::Relaxed),
                jitter_us: cells.jitter_us.load(Ordering::Relaxed),
                loss: f64::from(cells.loss_ppm.load(Ordering::Relaxed)) / 1e6,
                probes_sent: cells.probes_sent.load(Ordering::Relaxed),
                probe_replies: cells.replies.load(Ordering::Relaxed),
                tx_packets: c.total(|w| &w.tx_packets),
                tx_bytes: c.total(|w| &w.tx_bytes),
                rx_packets: c.total(|w| &w.rx_packets),
                rx_bytes: c.total(|w| &w.rx_bytes),
                tx_rate: tx_rate.report(),
                rx_rate: rx_rate.report(),
                drops: drops_by_reason(
                    &[
                        DropReason::TxFull,
                        DropReason::ShaperAqm,
                        DropReason::ShaperOverlimit,
                        DropReason::ShaperPathDown,
                        DropReason::ShaperStopped,
                        DropReason::TunnelNoPath,
                        DropReason::TunnelAuthFailed,
                        DropReason::NoMbuf,
                    ],
                    |r| c.total(|w| w.drops.of(r)),
                ),
                silence_overrides: cells.silence_overrides.load(Ordering::Relaxed),
                bfd_down_congested: cells.bfd_down_congested.load(Ordering::Relaxed),
                endpoint_moves: cells.endpoint_moves.load(Ordering::Relaxed),
                shaper: t.shaping.as_ref().map(|sh| {
                    let rate = t.shaped_rate(i, sh);
                    ShaperReport {
                        rate_bps: rate,
                        backlog_us: sh
                            .cells
                            .get(i)
                            .map_or(0, |cl| cl.backlog_ns(now.as_nanos(), rate, false) / 1_000),
                        tiers: Tier::ALL
                            .iter()
                            .map(|&tier| {
                                let k = tier as usize;
                                TierReport {
                                    tier: tier.name(),
                                    packets: c.total(|w| &w.tiers[k].packets),
                                    bytes: c.total(|w| &w.tiers[k].bytes),
                                    aqm_drops: c.total(|w| &w.tiers[k].aqm_drops),
                                    overlimit_drops: c.total(|w| &w.tiers[k].overlimit_drops),
                                    queued: c.total(|w| &w.tiers[k].queued),
                                }
                            })
                            .collect(),
                    }
                }),
            }
        })
        .collect()
}

/// Every class, default last.
pub fn classes(t: &TunnelTable) -> Vec<ClassReport> {
    t.classes
        .all()
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let c = &t.class_counters[i];
            ClassReport {
                peer: t.name.clone(),
                name: class.name.clone(),
                scheduler: class.scheduler.name(),
                matches: if class.name == "default" {
                    String::new()
                } else {
                    class.matcher.describe()
                },
                packets: c.total(|w| &w.packets),
                bytes: c.total(|w| &w.bytes),
                copies: c.total(|w| &w.copies),
                no_path: c.total(|w| &w.no_path),
                rate: t.class_rates[i].report(),
            }
        })
        .collect()
}

/// The encryption's figures at `now`.
pub fn encryption(t: &TunnelTable, now: Time) -> EncryptionReport {
    use std::sync::atomic::Ordering::Relaxed;
    let age = |ns: u64| {
        (ns != 0).then(|| {
            now.saturating_duration_since(Time::from_nanos(ns))
                .as_secs_f64()
        })
    };
    let Some(c) = &t.crypto else {
        return EncryptionReport {
            encrypted: false,
            cipher: None,
            preferred: None,
            hardware_aes: Cipher::hardware_aes(),
            key_id: 0,
            key_age_secs: None,
            last_handshake_secs: None,
            handshakes: BTreeMap::new(),
        };
    };
    let r = &c.report;
    let key_id = r.key_id.load(Relaxed);
    EncryptionReport {
        encrypted: true,
        cipher: c.cipher().map(Cipher::name),
        preferred: Some(c.preferred.name()),
        hardware_aes: Cipher::hardware_aes(),
        key_id,
        key_age_secs: (key_id != 0)
            .then(|| age(r.key_since_ns.load(Relaxed)))
            .flatten(),
        last_handshake_secs: age(r.last_handshake_ns.load(Relaxed)),
        handshakes: [
            ("initiations_sent", &r.initiations_sent),
            ("initiations_answered", &r.initiations_answered),
            ("sessions", &r.sessions),
            ("failed", &r.failed),
            ("rate_limited", &r.rate_limited),
            ("cookies_sent", &r.cookies_sent),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.load(Relaxed)))
        .collect(),
    }
}

/// Paths of `t` usable now (up and their next hop resolved).
fn usable_paths(tables: &Tables, t: &TunnelTable) -> usize {
    (0..t.paths.len())
        .filter(|i| {
            let p = &t.paths[*i];
            t.live[*i].usable()
                && t.next_hop(*i)
                    .is_some_and(|nh| tables.neighbor_on(nh, p.port).is_some())
        })
        .count()
}

/// What peer `t`'s paths dropped, by tunnel reason.
pub fn peer_drops(t: &TunnelTable) -> BTreeMap<&'static str, u64> {
    tunnel_reasons(|r| {
        t.path_counters
            .iter()
            .map(|c| c.total(|w| w.drops.of(r)))
            .sum()
    })
}

/// The tunnel's drop reasons in the workers' drop counters `drops` (every
/// peer's, and what no peer was found for).
pub fn worker_drops(drops: &[u64]) -> BTreeMap<&'static str, u64> {
    tunnel_reasons(|r| drops.get(r as usize).copied().unwrap_or(0))
}

/// Every `tunnel_` drop reason with its count.
fn tunnel_reasons(count: impl Fn(DropReason) -> u64) -> BTreeMap<&'static str, u64> {
    DropReason::ALL
        .iter()
        .filter(|r| r.name().starts_with("tunnel_"))
        .map(|r| (r.name(), count(*r)))
        .collect()
}

/// Peer `t`'s line.
pub fn peer(tables: &Tables, t: &TunnelTable, now: Time) -> PeerReport {
    let sum = |f: fn(&crate::tunnel::PathCounters) -> &crate::stats::Counter| -> u64 {
        t.path_counters.iter().map(|c| c.total(f)).sum()
    };
    let rates = |pick: fn(&(crate::stats::Rate, crate::stats::Rate)) -> &crate::stats::Rate| {
        t.path_rates
            .iter()
            .map(|r| pick(r).report())
            .fold(RateReport::default(), |a, r| RateReport {
                pps: a.pps + r.pps,
                bps: a.bps + r.bps,
            })
    };
    let enc = encryption(t, now);
    PeerReport {
        name: t.name.clone(),
        session: !enc.encrypted || enc.key_id != 0,
        handshake_age_secs: enc.last_handshake_secs,
        paths_usable: usable_paths(tables, t),
        paths: t.paths.len(),
        prefixes: t.prefixes.iter().map(|p| p.to_string()).collect(),
        tx_packets: sum(|w| &w.tx_packets),
        rx_packets: sum(|w| &w.rx_packets),
        tx_rate: rates(|r| &r.0),
        rx_rate: rates(|r| &r.1),
        inner_source_drops: t
            .path_counters
            .iter()
            .map(|c| c.total(|w| w.drops.of(DropReason::TunnelInnerSource)))
            .sum(),
    }
}

/// The tunnel as peer `t` sees it, with `drops` ([`peer_drops`] or
/// [`worker_drops`]).
pub fn tunnel(
    tables: &Tables,
    t: &TunnelTable,
    drops: BTreeMap<&'static str, u64>,
    now: Time,
) -> TunnelReport {
    let lanes: Vec<LaneReport> = t
        .lane_counters
        .iter()
        .enumerate()
        .map(|(lane, c)| (lane, c.0.snapshot()))
        .filter(|(_, c)| c.values().any(|v| *v > 0))
        .map(|(lane, counters)| LaneReport { lane, counters })
        .collect();
    let mut reorder: BTreeMap<&'static str, u64> =
        LaneCounters::NAMES.iter().map(|n| (*n, 0)).collect();
    for l in &lanes {
        for (k, v) in &l.counters {
            *reorder.entry(k).or_default() += v;
        }
    }

    let usable = usable_paths(tables, t);
    TunnelReport {
        peer: t.name.clone(),
        peers: tables.peers().count(),
        encryption: encryption(t, now),
        port: t.port,
        epoch: t.epoch,
        inner_mtu: t.inner_mtu,
        prefixes: t.prefixes.iter().map(|p| p.to_string()).collect(),
        paths_usable: usable,
        paths: t.paths.len(),
        tx_packets: t
            .path_counters
            .iter()
            .map(|c| c.total(|w| &w.tx_packets))
            .sum(),
        rx_packets: t
            .path_counters
            .iter()
            .map(|c| c.total(|w| &w.rx_packets))
            .sum(),
        reorder,
        lanes,
        drops,
        bfd_discards: t.bfd_discards.snapshot(),
    }
}
