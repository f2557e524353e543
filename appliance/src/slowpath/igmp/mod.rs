//! The appliance as an IGMP host on each input port, so that the routers
//! there forward it the groups its relay rules read (RFC 3376 IGMPv3 §5,
//! with the IGMPv1/v2 compatibility of RFC 3376 §7 and RFC 2236).
//!
//! The caller says what each port wants ([`IgmpHost::set_memberships`]),
//! hands over the IGMP messages it receives ([`IgmpHost::on_igmp`]) and asks
//! for the frames that are due ([`IgmpHost::poll`]). This module is pure: no
//! I/O and no clock, time comes in as arguments and randomness from the
//! caller's generator, so tests are deterministic.
//!
//! `state.rs` holds the per-port protocol state, `frames.rs` turns its
//! messages into frames that match what Linux sends, byte for byte where
//! Linux is deterministic (see `tests.rs` and
//! `tests/tests/igmp_linux_bytes.rs`). Two things differ and are not
//! semantic: several records in one report are in group address order and
//! sources in address order (Linux: most recently joined first, and sources
//! in the order they were added).

mod frames;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::time::Time;
use crate::wire::igmp::{max_resp_time_ds, msg_type};
use crate::wire::{Error, IgmpPacket, IgmpRepr, IgmpVersion, MacAddr};
pub use state::CompatMode;
use state::{Filter, Message, Port};

/// All-systems: every host is in it and never reports it (RFC 3376 §5).
const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);

/// One reason to receive a group on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Membership {
    pub group: Ipv4Addr,
    /// `None`: any source (ASM). `Some`: this source only (SSM).
    pub source: Option<Ipv4Addr>,
}

/// Protocol constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgmpConfig {
    /// Robustness Variable: how many times each state change is sent
    /// (RFC 3376 §8.1, default 2; at least 1).
    pub robustness: u8,
    /// Upper bound of the random gap between repeats of a v3 state change
    /// (RFC 3376 §8.11: 1 s).
    pub unsolicited_report_interval: Duration,
    /// The same for v1/v2 reports (RFC 2236 §8.10: 10 s).
    pub v2_unsolicited_report_interval: Duration,
    /// Largest IP datagram on the ports; longer v3 reports are split.
    pub mtu: usize,
}

impl Default for IgmpConfig {
    fn default() -> Self {
        IgmpConfig {
            robustness: 2,
            unsolicited_report_interval: Duration::from_secs(1),
            v2_unsolicited_report_interval: Duration::from_secs(10),
            mtu: 1500,
        }
    }
}

/// Why a received IGMP message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IgmpRxError {
    /// Too short, a length or count that overruns, a field the protocol
    /// forbids (e.g. a general query with sources).
    #[error("malformed IGMP message")]
    Malformed,
    #[error("bad IGMP checksum")]
    BadChecksum,
    /// A well-formed message of a type a host does not handle.
    #[error("unsupported IGMP message type")]
    Unsupported,
}

impl From<Error> for IgmpRxError {
    fn from(e: Error) -> Self {
        match e {
            Error::Truncated | Error::Malformed => IgmpRxError::Malformed,
            Error::BadChecksum => IgmpRxError::BadChecksum,
            Error::Unsupported => IgmpRxError::Unsupported,
        }
    }
}

/// What `appliancectl` shows about one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortIgmpStatus {
    pub port: usize,
    /// The version reports are sent in.
    pub mode: CompatMode,
    /// Source address of the last query heard, and its version.
    pub querier: Option<Ipv4Addr>,
    pub querier_version: Option<u8>,
    pub groups: Vec<GroupStatus>,
}

/// One joined group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub group: Ipv4Addr,
    /// "exclude" (any source) or "include" (only `sources`).
    pub filter: &'static str,
    pub sources: Vec<Ipv4Addr>,
}

/// The IGMP host of every port.
#[derive(Debug, Clone)]
pub struct IgmpHost {
    cfg: IgmpConfig,
    ports: Vec<Port>,
    /// Scratch for frames, reused across polls.
    buf: Vec<u8>,
}

impl IgmpHost {
    /// A host with no memberships on `ports` ports.
    pub fn new(ports: usize, cfg: IgmpConfig) -> Self {
        let cfg = IgmpConfig {
            robustness: cfg.robustness.max(1),
            ..cfg
        };
        IgmpHost {
            cfg,
            ports: vec![Port::new(); ports],
            buf: Vec::new(),
        }
    }

    fn port_mut(&mut self, port: usize) -> &mut Port {
        if port >= self.ports.len() {
            self.ports.resize(port + 1, Port::new());
        }
        &mut self.ports[port]
    }

    /// Sets everything `port` wants (computed by the caller from the rule
    /// table) and schedules the reports that announce the difference.
    ///
    /// Per group the wanted state is EXCLUDE{} (any source) if any
    /// membership is ASM, else INCLUDE{its sources}. Groups that are not
    /// multicast, 224.0.0.1, and sources that cannot be a sender
    /// (multicast, 0.0.0.0, broadcast) are ignored.
    pub fn set_memberships(&mut self, port: usize, wanted: &[Membership], now: Time) {
        let mut filters: BTreeMap<Ipv4Addr, Filter> = BTreeMap::new();
        for m in wanted {
            if !m.group.is_multicast() || m.group == ALL_SYSTEMS {
                continue;
            }
            match m.source {
                None => {
                    filters.insert(m.group, Filter::Exclude);
                }
                Some(s) if s.is_multicast() || s.is_unspecified() || s.is_broadcast() => {}
                Some(s) => {
                    let f = filters
                        .entry(m.group)
                        .or_insert_with(|| Filter::Include(BTreeSet::new()));
                    if let Filter::Include(set) = f {
                        set.insert(s);
                    }
                }
            }
        }
        let cfg = self.cfg;
        self.port_mut(port).set_wanted(filters, now, &cfg);
    }

    /// Handles an IGMP message (the IP payload) received on `port` from
    /// `ip_src` to `ip_dst`: queries schedule responses (and may switch the
    /// port to v1/v2 compatibility), other hosts' v1/v2 reports sent to the
    /// group suppress ours in v1/v2 mode; other reports and leaves need
    /// nothing. Never panics, whatever the bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn on_igmp(
        &mut self,
        port: usize,
        ip_src: Ipv4Addr,
        ip_dst: Ipv4Addr,
        igmp: &[u8],
        now: Time,
        rng: &mut fastrand::Rng,
    ) -> Result<(), IgmpRxError> {
        let cfg = self.cfg;
        let packet = IgmpPacket::new_checked(igmp)?;
        if packet.msg_type() == msg_type::V1_REPORT {
            // IgmpRepr leaves v1 reports out, but a v1 host suppresses on them.
            if !packet.verify_checksum() {
                return Err(IgmpRxError::BadChecksum);
            }
            let group = packet.group_addr();
            if !group.is_multicast() {
                return Err(IgmpRxError::Malformed);
            }
            if ip_dst == group {
                self.port_mut(port).heard_report(group, now);
            }
            return Ok(());
        }
        match IgmpRepr::parse(&packet)? {
            IgmpRepr::MembershipQuery {
                max_resp_time_ds: code,
                group_addr,
                version,
            } => {
                let sources: BTreeSet<Ipv4Addr> = if version == IgmpVersion::V3 {
                    packet.v3_query()?.sources.collect()
                } else {
                    BTreeSet::new()
                };
                // RFC 3376 §4.1.9: only group-and-source queries have sources.
                if group_addr.is_unspecified() && !sources.is_empty() {
                    return Err(IgmpRxError::Malformed);
                }
                let max_resp =
                    Duration::from_millis(100 * u64::from(max_resp_time_ds(code, version)));
                self.port_mut(port).on_query(
                    ip_src, version, max_resp, group_addr, sources, now, rng, &cfg,
                );
            }
            // Only a report sent to the group reaches the other members.
            IgmpRepr::ReportV2 { group_addr } if ip_dst == group_addr => {
                self.port_mut(port).heard_report(group_addr, now);
            }
            IgmpRepr::ReportV2 { .. } | IgmpRepr::LeaveGroup { .. } | IgmpRepr::ReportV3 { .. } => {
            }
        }
        Ok(())
    }

    /// Writes every message due at `now` as a full Ethernet frame through
    /// `emit(port, frame)`, from `addrs[port]` = (our MAC, our IPv4 address;
    /// 0.0.0.0 if none, RFC 3376 §4.2.13). Messages of a port missing from
    /// `addrs` are dropped. Returns when the next timer fires.
    pub fn poll(
        &mut self,
        now: Time,
        rng: &mut fastrand::Rng,
        addrs: &[(MacAddr, Ipv4Addr)],
        emit: &mut dyn FnMut(usize, &[u8]),
    ) -> Option<Time> {
        let mut messages: Vec<Message> = Vec::new();
        let mut next: Option<Time> = None;
        for (i, port) in self.ports.iter_mut().enumerate() {
            messages.clear();
            port.poll(now, rng, &self.cfg, &mut messages);
            if let Some(&(mac, ip)) = addrs.get(i) {
                let from = frames::Origin { mac, ip };
                for m in &messages {
                    frames::build(m, from, self.cfg.mtu, &mut self.buf, &mut |f| emit(i, f));
                }
            }
            if let Some(t) = port.next_timer() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Per port: the version spoken, the last querier, the groups joined.
    pub fn status(&self) -> Vec<PortIgmpStatus> {
        self.ports
            .iter()
            .enumerate()
            .map(|(port, p)| PortIgmpStatus {
                port,
                mode: p.mode(),
                querier: p.querier().map(|(a, _)| a),
                querier_version: p.querier().map(|(_, v)| match v {
                    IgmpVersion::V1 => 1,
                    IgmpVersion::V2 => 2,
                    IgmpVersion::V3 => 3,
                }),
                groups: p
                    .memberships()
                    .map(|(group, f)| match f {
                        Filter::Exclude => GroupStatus {
                            group,
                            filter: "exclude",
                            sources: Vec::new(),
                        },
                        Filter::Include(s) => GroupStatus {
                            group,
                            filter: "include",
                            sources: s.iter().copied().collect(),
                        },
                    })
                    .collect(),
            })
            .collect()
    }
}
