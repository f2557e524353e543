//! The `[tunnel]` section: the peer site's prefixes, the WAN paths to it, the
//! traffic classes and their schedulers, probing and reordering. Checked
//! against the interfaces and the hardware profile; every error names the
//! key.
//!
//! ```toml
//! [tunnel]
//! prefixes = ["10.2.0.0/24"]          # the peer site's networks
//! default_scheduler = "wlb"
//! private_key = "site-a.key"           # appliance genkey site-a.key (mode 0600)
//! peer_public_key = "base64..."        # appliance pubkey site-b.key, at the peer
//! # encryption = "auto"                # or aes-256-gcm, chacha20-poly1305, none
//!
//! [[tunnel.paths]]
//! name = "a"
//! id = 0                               # the same id on both appliances
//! interface = "wan0"
//! remote = "172.16.0.2"                # the peer's address on this path; left out, the
//!                                      # path learns it from the peer's packets (NAT)
//! rate = "300mbit"
//!
//! [[tunnel.classes]]
//! name = "voice"
//! scheduler = "redundant"
//! tier = "realtime"                    # default: from the DSCP (RFC 4594)
//! match = { protocol = "udp", dscp = [46] }
//!
//! [tunnel.shaping]                     # on by default
//! rate_percent = 95                    # of each path's rate
//! ```

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer, Serialize};

use super::InterfaceConfig;
use crate::wire::ipv4::is_martian;

/// Most paths to the peer (path ids are 0..MAX_PATHS).
pub const MAX_PATHS: usize = 16;
/// Bytes the tunnel adds in front of an inner packet: outer IPv4 (20), UDP
/// (8) and the tunnel header (20). The inner MTU is the path MTU minus this
/// and, when the tunnel is encrypted, the tag ([`TAG`]).
pub const OVERHEAD: u16 = 48;
/// Bytes of the authentication tag after an encrypted payload.
pub const TAG: u16 = crate::tunnel::crypto::aead::TAG_LEN as u16;

/// How the tunnel's packets are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Encryption {
    /// AES-256-GCM where the CPU has AES instructions, else
    /// ChaCha20-Poly1305 (the two ends agree in the handshake).
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// AES-256-GCM only.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// ChaCha20-Poly1305 only.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
    /// In clear, unauthenticated: for a private WAN only.
    #[serde(rename = "none")]
    None,
}

/// The keys of an encrypted tunnel, read from their files.
#[derive(Debug)]
pub struct TunnelKeys {
    /// Ours.
    pub private: crate::tunnel::crypto::keys::PrivateKey,
    /// The peer's.
    pub peer: crate::tunnel::crypto::keys::PublicKey,
    /// Mixed into every handshake, if configured.
    pub psk: Option<crate::tunnel::crypto::keys::PresharedKey>,
}

impl TunnelKeys {
    /// What tells these keys from others without holding a secret.
    pub fn print(&self) -> crate::tunnel::crypto::keys::KeyPrint {
        crate::tunnel::crypto::keys::KeyPrint::of(&self.private, self.peer, self.psk.as_ref())
    }
}
/// The smallest inner MTU a path may leave (IPv4's minimum datagram every
/// host must accept, RFC 791).
pub const MIN_INNER_MTU: u16 = 576;

/// A path scheduler (see `docs/tunnel.md` for what each does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerName {
    /// A flow stays on one healthy path.
    FlowHash,
    /// Each LAN source subnet is bound to one path.
    SourceSubnet,
    /// Per packet, in bytes, in proportion to each path's rate.
    Wlb,
    /// The lowest-delay healthy path, spilling to the next at its rate.
    #[serde(rename = "minrtt")]
    MinRtt,
    /// Active/standby by priority.
    Backup,
    /// Every packet on the two best paths.
    Redundant,
}

impl SchedulerName {
    /// The name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerName::FlowHash => "flow-hash",
            SchedulerName::SourceSubnet => "source-subnet",
            SchedulerName::Wlb => "wlb",
            SchedulerName::MinRtt => "minrtt",
            SchedulerName::Backup => "backup",
            SchedulerName::Redundant => "redundant",
        }
    }
}

/// A rate such as `"300mbit"`, in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BitRate(pub u64);

impl std::str::FromStr for BitRate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let mult = match unit.trim() {
            "bit" | "bps" | "" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            _ => {
                return Err(format!(
                    "a rate such as \"300mbit\" (bit, kbit, mbit, gbit), not {s:?}"
                ))
            }
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("a rate such as \"300mbit\", not {s:?}"))?;
        let bps = (v * mult).round();
        if !(1.0..=1e13).contains(&bps) {
            return Err(format!("a rate between 1 bit/s and 10 Tbit/s, not {s:?}"));
        }
        Ok(BitRate(bps as u64))
    }
}

/// A rate as the config writes it (`"300000000bit"`); reports show it as a number.
fn ser_rate<S: serde::Serializer>(r: &BitRate, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&r.to_string())
}

impl std::fmt::Display for BitRate {
    /// As the config takes it: `30000000bit`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}bit", self.0)
    }
}

impl<'de> Deserialize<'de> for BitRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration such as `"10ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    /// `us` microseconds (BFD's unit).
    pub fn from_micros(us: u32) -> Self {
        Span(Duration::from_micros(u64::from(us)))
    }

    /// In microseconds, at most `u32::MAX` (BFD's unit).
    pub fn micros(self) -> u32 {
        u32::try_from(self.0.as_micros()).unwrap_or(u32::MAX)
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(Span)
            .map_err(|_| format!("a duration such as \"10ms\", not {s:?}"))
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// BFD on a path (RFC 5880 asynchronous mode; RFC 5881 single hop, UDP
/// 3784, TTL 255; or RFC 5883 multihop, UDP 4784).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BfdConfig {
    /// Run a session on the path.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Desired Min TX Interval while Up.
    #[serde(default = "default_bfd_interval")]
    pub desired_min_tx: Span,
    /// Required Min RX Interval.
    #[serde(default = "default_bfd_interval")]
    pub required_min_rx: Span,
    /// Detect Mult.
    #[serde(default = "default_detect_mult")]
    pub detect_mult: u8,
    /// RFC 5883 multihop instead of single hop.
    #[serde(default)]
    pub multihop: bool,
    /// Multihop only: the lowest TTL accepted.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: u8,
}

impl Default for BfdConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            desired_min_tx: default_bfd_interval(),
            required_min_rx: default_bfd_interval(),
            detect_mult: default_detect_mult(),
            multihop: false,
            min_ttl: default_min_ttl(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_bfd_interval() -> Span {
    Span(Duration::from_millis(100))
}
fn default_detect_mult() -> u8 {
    3
}
fn default_min_ttl() -> u8 {
    254
}

impl BfdConfig {
    /// Checks the timers (and the multihop TTL); errors name `key`'s fields.
    pub fn validate(&self, key: &str) -> Result<(), TunnelConfigError> {
        for (name, v) in [
            ("desired_min_tx", self.desired_min_tx.0),
            ("required_min_rx", self.required_min_rx.0),
        ] {
            if v < Duration::from_millis(1) || v > Duration::from_secs(60) {
                return fail(format!("{key}.{name}"), format!("1ms to 60s, not {v:?}"));
            }
        }
        if self.detect_mult == 0 {
            return fail(format!("{key}.detect_mult"), "1 to 255, not 0");
        }
        if self.multihop && self.min_ttl == 0 {
            return fail(format!("{key}.min_ttl"), "1 to 255, not 0");
        }
        Ok(())
    }
}

/// One WAN path to the peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    /// Name, for `appliancectl` and logs.
    pub name: String,
    /// Id carried in every packet: the same path has the same id on both
    /// appliances.
    pub id: u8,
    /// The WAN interface (a config `interfaces[].port`).
    pub interface: String,
    /// Our address on it (default: the interface's).
    #[serde(default)]
    pub local: Option<Ipv4Addr>,
    /// The peer's address on this path. Left out, the path learns the peer's
    /// address and port from the packets that authenticate as the peer's (a
    /// peer behind NAT, or whose address changes; `docs/tunnel.md`, "A peer
    /// behind NAT", says which packets count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Ipv4Addr>,
    /// The next hop towards `remote` (default: `remote` itself, which must
    /// then be on the interface's subnet; for a learned remote, the address
    /// learned).
    #[serde(default)]
    pub next_hop: Option<Ipv4Addr>,
    /// The path's rate: the schedulers' ceiling for it.
    #[serde(serialize_with = "ser_rate")]
    pub rate: BitRate,
    /// The path's IP MTU (default 1500); the inner MTU is this minus 48.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Lower is preferred by the `backup` scheduler.
    #[serde(default)]
    pub priority: u8,
    /// Only used when no non-backup path is up.
    #[serde(default)]
    pub backup: bool,
    /// BFD on this path (default: the tunnel's `bfd`).
    #[serde(default)]
    pub bfd: Option<BfdConfig>,
}

fn default_mtu() -> u16 {
    1500
}

/// A port or size range: `"80"` or `"5000-5100"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range(pub RangeInclusive<u16>);

impl Serialize for Range {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (a, b) = (*self.0.start(), *self.0.end());
        if a == b {
            s.serialize_u16(a)
        } else {
            s.serialize_str(&format!("{a}-{b}"))
        }
    }
}

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(u16),
            Text(String),
        }
        let bad = |s: &str| {
            serde::de::Error::custom(format!(
                "a number or a range such as \"5000-5100\", not {s:?}"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::One(v) => Ok(Range(v..=v)),
            Raw::Text(s) => {
                let (a, b) = s.split_once('-').unwrap_or((&s, &s));
                let (a, b): (u16, u16) = (
                    a.trim().parse().map_err(|_| bad(&s))?,
                    b.trim().parse().map_err(|_| bad(&s))?,
                );
                if a > b {
                    return Err(bad(&s));
                }
                Ok(Range(a..=b))
            }
        }
    }
}

/// An IP protocol: `"tcp"`, `"udp"`, `"icmp"` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol(pub u8);

impl Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            1 => s.serialize_str("icmp"),
            6 => s.serialize_str("tcp"),
            17 => s.serialize_str("udp"),
            n => s.serialize_u8(n),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u8),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(Protocol(n)),
            Raw::Name(s) => match s.as_str() {
                "icmp" => Ok(Protocol(1)),
                "tcp" => Ok(Protocol(6)),
                "udp" => Ok(Protocol(17)),
                _ => Err(serde::de::Error::custom(format!(
                    "\"tcp\", \"udp\", \"icmp\" or a protocol number, not {s:?}"
                ))),
            },
        }
    }
}

/// What a traffic class matches (every given field must match; none given
/// matches everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Inner source in this prefix (IPv4 or IPv6: a packet of the other
    /// family does not match).
    #[serde(default)]
    pub src: Option<IpNet>,
    /// Inner destination in this prefix (likewise).
    #[serde(default)]
    pub dst: Option<IpNet>,
    /// IP protocol.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// TCP/UDP source port in this range.
    #[serde(default)]
    pub src_ports: Option<Range>,
    /// TCP/UDP destination port in this range.
    #[serde(default)]
    pub dst_ports: Option<Range>,
    /// DSCP is one of these.
    #[serde(default)]
    pub dscp: Option<Vec<u8>>,
    /// Inner packet's length in this range (bytes: IPv4's total length,
    /// IPv6's header and payload).
    #[serde(default)]
    pub size: Option<Range>,
}

/// A source subnet bound to a path (`source-subnet` classes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// LAN source subnet.
    pub subnet: Ipv4Net,
    /// Path name.
    pub path: String,
}

/// A traffic class: first match wins; unmatched traffic takes the default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// Name.
    pub name: String,
    /// Its scheduler.
    pub scheduler: SchedulerName,
    /// What it matches.
    #[serde(rename = "match", default)]
    pub matches: MatchConfig,
    /// Subnet-to-path bindings (`source-subnet` only).
    #[serde(default)]
    pub bindings: Vec<BindingConfig>,
    /// The shaper tier of its packets (default: each packet's by its DSCP).
    #[serde(default)]
    pub tier: Option<Tier>,
}

/// A priority tier of the paths' shapers, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// Routing and control protocols (RFC 4594 "network control", CS6 and
    /// CS7) and the appliance's own BFD and probes.
    NetworkControl = 0,
    /// Telephony, signaling, interactive and conferencing video (EF,
    /// VOICE-ADMIT, CS5, CS4, AF4x, CS3).
    Realtime = 1,
    /// Everything else.
    Default = 2,
    /// Low-priority data (CS1, and LE of RFC 8622): what may wait.
    Bulk = 3,
}

impl Tier {
    /// All tiers, highest first.
    pub const ALL: [Tier; 4] = [
        Tier::NetworkControl,
        Tier::Realtime,
        Tier::Default,
        Tier::Bulk,
    ];

    /// The tier RFC 4594's service classes give a DSCP.
    pub fn of_dscp(dscp: u8) -> Tier {
        match dscp {
            48 | 56 => Tier::NetworkControl,
            46 | 44 | 40 | 32 | 34 | 36 | 38 | 24 => Tier::Realtime,
            8 | 1 => Tier::Bulk,
            _ => Tier::Default,
        }
    }

    /// Network control and real-time: served first by the paths' shapers
    /// and sent on each worker's urgent lane.
    pub fn goes_first(self) -> bool {
        matches!(self, Tier::NetworkControl | Tier::Realtime)
    }

    /// Name in configs, reports and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Tier::NetworkControl => "network-control",
            Tier::Realtime => "realtime",
            Tier::Default => "default",
            Tier::Bulk => "bulk",
        }
    }
}

/// Egress shaping of every path: the tunnel's own queue in front of each
/// (`docs/tunnel.md`, "Shaping and queues").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapingConfig {
    /// Shape the paths.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The share of each path's rate it is shaped to, in percent: a few
    /// percent under the link's rate keeps the link's own queue empty.
    #[serde(default = "default_rate_percent")]
    pub rate_percent: u8,
    /// CoDel's target: the standing queue delay accepted.
    #[serde(default = "default_codel_target")]
    pub target: Span,
    /// CoDel's interval: about the longest round trip of the traffic.
    #[serde(default = "default_codel_interval")]
    pub interval: Span,
    /// Packets each worker holds at most for one path; unset, 250 ms of
    /// the path's rate in full-size frames (128 to 4096), within a quarter
    /// of the pool ([`TunnelConfig::shaper_packets`]).
    #[serde(default)]
    pub max_packets: Option<u32>,
}

impl Default for ShapingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rate_percent: default_rate_percent(),
            target: default_codel_target(),
            interval: default_codel_interval(),
            max_packets: None,
        }
    }
}

fn default_rate_percent() -> u8 {
    95
}
fn default_codel_target() -> Span {
    Span(Duration::from_millis(5))
}
fn default_codel_interval() -> Span {
    Span(Duration::from_millis(100))
}

/// The fewest packets a worker's queue for a path holds when its size is
/// left to the rate.
const AUTO_SHAPER_MIN: u32 = 128;
/// The most.
const AUTO_SHAPER_MAX: u32 = 4096;

/// Reorder buffer limits (per lane).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReorderConfig {
    /// Packets held at most per lane (a power of two); unset, sized from the
    /// paths' rates ([`TunnelConfig::reorder_packets`]).
    #[serde(default)]
    pub max_packets: Option<usize>,
    /// Longest a packet waits for an earlier one.
    #[serde(default = "default_max_hold")]
    pub max_hold: Span,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        Self {
            max_packets: None,
            max_hold: default_max_hold(),
        }
    }
}

/// The least a lane holds when its size is left to the rates.
const AUTO_REORDER_MIN: usize = 1024;
/// The most a lane may hold.
const REORDER_MAX: usize = 65536;
/// Bits in the full-size frame the automatic size counts in.
const FULL_FRAME_BITS: f64 = 1500.0 * 8.0;
fn default_max_hold() -> Span {
    Span(Duration::from_millis(100))
}

/// The `[tunnel]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// Outer UDP destination port (the same on both appliances).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The peer site's networks, IPv4 and IPv6: routed through the tunnel
    /// (the one-peer form; with `peers`, each peer has its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IpNet>,
    /// The paths to the peer (the one-peer form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathConfig>,
    /// Traffic classes, first match wins (the one-peer form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassConfig>,
    /// The scheduler of traffic no class matches.
    #[serde(default = "default_scheduler")]
    pub default_scheduler: SchedulerName,
    /// How often each path is probed (RTT, one-way delay).
    #[serde(default = "default_probe_interval")]
    pub probe_interval: Span,
    /// Reorder buffer limits.
    #[serde(default)]
    pub reorder: ReorderConfig,
    /// BFD on every path (a path's own `bfd` replaces it).
    #[serde(default)]
    pub bfd: BfdConfig,
    /// Longest a flapping path is kept out after it comes back (RFC 5882
    /// dampening: the hold-down doubles with each flap in a row, from 1 s).
    #[serde(default = "default_max_hold_down")]
    pub max_hold_down: Span,
    /// Egress shaping of the paths.
    #[serde(default)]
    pub shaping: ShapingConfig,
    /// The cipher, or `"none"` for a tunnel in clear.
    #[serde(default)]
    pub encryption: Encryption,
    /// The file holding our private key (`appliance genkey FILE`); relative
    /// to the config file's folder.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// The peer's public key (`appliance pubkey` at the peer), base64.
    #[serde(default)]
    pub peer_public_key: Option<String>,
    /// A file holding a pre-shared key both sites have (optional; mixed
    /// into the handshake as WireGuard's psk).
    #[serde(default)]
    pub preshared_key: Option<PathBuf>,
    /// The peer sites, each with its own key, prefixes, paths and classes
    /// (`[[tunnel.peers]]`). Empty: the section itself names its one peer
    /// (the form of a two-site tunnel), which [`Self::peers`] calls
    /// [`ONE_PEER_NAME`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerConfig>,
}

/// The name of the one peer of a `[tunnel]` that lists no `peers`.
pub const ONE_PEER_NAME: &str = "peer";

/// Most peers of one appliance. A receiver finds the peer of a sealed
/// packet from its Key ID (16 bits, which the receiver chooses): each peer
/// owns [`KEY_IDS_PER_PEER`] of them (`docs/wire-format.md`, "Key ID"),
/// which would allow 13,107.
pub const MAX_PEERS: usize = 10_000;

/// Key IDs each peer's sessions take theirs from: at most three sessions'
/// receive keys are held, one handshake of ours may be pending, and an
/// answer to the peer's needs one more.
pub const KEY_IDS_PER_PEER: u16 = 5;

// Every peer's block of Key IDs fits the header's 16 bits.
const _: () = assert!(MAX_PEERS * KEY_IDS_PER_PEER as usize <= u16::MAX as usize);

/// One peer site: `[[tunnel.peers]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Name, for `appliancectl`, logs and metrics.
    pub name: String,
    /// The peer's public key (`appliance pubkey` at the peer), base64.
    #[serde(default)]
    pub public_key: Option<String>,
    /// A file holding a pre-shared key shared with this peer (default: the
    /// tunnel's `preshared_key`, if any).
    #[serde(default)]
    pub preshared_key: Option<PathBuf>,
    /// The peer site's networks: routed to it, and the only inner sources
    /// accepted from it.
    pub prefixes: Vec<IpNet>,
    /// The paths to it.
    pub paths: Vec<PathConfig>,
    /// Its traffic classes, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassConfig>,
    /// The scheduler of its traffic no class matches (default: the
    /// tunnel's `default_scheduler`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_scheduler: Option<SchedulerName>,
}

/// The keys of the one-peer form that a tunnel with `peers` sets per peer.
const PER_PEER_KEYS: [&str; 4] = ["prefixes", "paths", "classes", "peer_public_key"];

fn default_max_hold_down() -> Span {
    Span(Duration::from_secs(30))
}

fn default_port() -> u16 {
    4800
}
fn default_scheduler() -> SchedulerName {
    SchedulerName::Wlb
}
fn default_probe_interval() -> Span {
    Span(Duration::from_millis(10))
}

/// A problem in `[tunnel]`: the key below `tunnel.` and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfigError {
    /// Key path under `tunnel`, e.g. `paths[1].remote`.
    pub key: String,
    /// What was expected.
    pub what: String,
}

impl TunnelConfigError {
    /// The error of peer `i`'s view ([`TunnelConfig::peers`]) under the key
    /// the operator wrote: a per-peer key moves under `peers[i]` (`peer`:
    /// the tunnel lists its peers, this is the `i`th), a shared one stays, as
    /// does a per-peer key the peer inherits from the section.
    pub fn in_peer(mut self, peer: Option<&PeerConfig>, i: usize) -> Self {
        let Some(peer) = peer else {
            return self;
        };
        let inherited = (self.key.starts_with("preshared_key") && peer.preshared_key.is_none())
            || (self.key.starts_with("default_scheduler") && peer.default_scheduler.is_none());
        if inherited {
            return self;
        }
        let per_peer = [
            "prefixes",
            "paths",
            "classes",
            "default_scheduler",
            "peer_public_key",
            "preshared_key",
        ]
        .iter()
        .any(|k| self.key.starts_with(k));
        if per_peer {
            let key = self.key.replacen("peer_public_key", "public_key", 1);
            self.key = format!("peers[{i}].{key}");
        }
        self
    }
}

fn fail<T>(key: impl Into<String>, what: impl Into<String>) -> Result<T, TunnelConfigError> {
    Err(TunnelConfigError {
        key: key.into(),
        what: what.into(),
    })
}

impl TunnelConfig {
    /// Bytes the tunnel adds to an inner packet: [`OVERHEAD`], and the tag
    /// when encrypted.
    pub fn overhead(&self) -> u16 {
        if self.encrypted() {
            OVERHEAD + TAG
        } else {
            OVERHEAD
        }
    }

    /// Whether the tunnel is encrypted.
    pub fn encrypted(&self) -> bool {
        self.encryption != Encryption::None
    }

    /// The inner MTU: the smallest path MTU minus the tunnel's overhead.
    pub fn inner_mtu(&self) -> u16 {
        let overhead = self.overhead();
        self.paths
            .iter()
            .map(|p| p.mtu.saturating_sub(overhead))
            .min()
            .unwrap_or(0)
    }

    /// Makes the key files' paths relative to `dir` (the config file's
    /// folder) absolute.
    pub fn resolve_key_paths(&mut self, dir: &Path) {
        let peers = self.peers.iter_mut().map(|p| &mut p.preshared_key);
        for p in [&mut self.private_key, &mut self.preshared_key]
            .into_iter()
            .chain(peers)
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Reads the keys (`None` for a tunnel in clear).
    ///
    /// # Errors
    /// A missing, unreadable, exposed or malformed key, with its key.
    pub fn keys(&self) -> Result<Option<TunnelKeys>, TunnelConfigError> {
        use crate::tunnel::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
        if !self.encrypted() {
            return Ok(None);
        }
        let Some(private) = &self.private_key else {
            return fail(
                "private_key",
                "the file of this appliance's private key (write one with `appliance genkey FILE`), \
                 or encryption = \"none\" for a tunnel in clear",
            );
        };
        let private = PrivateKey::read(private)
            .or_else(|e| fail("private_key", format!("{e}: {}", private.display())))?;
        let Some(peer) = &self.peer_public_key else {
            return fail(
                "peer_public_key",
                "the peer's public key (run `appliance pubkey KEYFILE` at the peer), \
                 or encryption = \"none\" for a tunnel in clear",
            );
        };
        let peer: PublicKey = peer
            .parse()
            .or_else(|e| fail("peer_public_key", format!("{e}, not {peer:?}")))?;
        if peer == private.public() {
            return fail(
                "peer_public_key",
                "the peer's public key, not this appliance's own",
            );
        }
        let psk = match &self.preshared_key {
            None => None,
            Some(f) => Some(
                PresharedKey::read(f)
                    .or_else(|e| fail("preshared_key", format!("{e}: {}", f.display())))?,
            ),
        };
        Ok(Some(TunnelKeys { private, peer, psk }))
    }

    /// Each peer as a tunnel of its own: the section's shared keys (port,
    /// encryption, our private key, probing, BFD, reordering, shaping) with
    /// the peer's name, key, prefixes, paths and classes. The one-peer form
    /// gives itself, named [`ONE_PEER_NAME`].
    pub fn peers(&self) -> Vec<(String, TunnelConfig)> {
        if self.peers.is_empty() {
            return vec![(ONE_PEER_NAME.to_owned(), self.clone())];
        }
        let shared = self.shared();
        self.peers
            .iter()
            .map(|p| {
                let view = TunnelConfig {
                    prefixes: p.prefixes.clone(),
                    paths: p.paths.clone(),
                    classes: p.classes.clone(),
                    default_scheduler: p.default_scheduler.unwrap_or(self.default_scheduler),
                    peer_public_key: p.public_key.clone(),
                    preshared_key: p
                        .preshared_key
                        .clone()
                        .or_else(|| self.preshared_key.clone()),
                    ..shared.clone()
                };
                (p.name.clone(), view)
            })
            .collect()
    }

    /// A copy of the shared settings, without the peers (each view copies
    /// it: copying every peer into every view would be quadratic).
    fn shared(&self) -> TunnelConfig {
        // Every field named, so a new one is not forgotten here.
        let TunnelConfig {
            port,
            prefixes,
            paths,
            classes,
            default_scheduler,
            probe_interval,
            reorder,
            bfd,
            max_hold_down,
            shaping,
            encryption,
            private_key,
            peer_public_key,
            preshared_key,
            peers: _,
        } = self;
        TunnelConfig {
            port: *port,
            prefixes: prefixes.clone(),
            paths: paths.clone(),
            classes: classes.clone(),
            default_scheduler: *default_scheduler,
            probe_interval: *probe_interval,
            reorder: *reorder,
            bfd: *bfd,
            max_hold_down: *max_hold_down,
            shaping: *shaping,
            encryption: *encryption,
            private_key: private_key.clone(),
            peer_public_key: peer_public_key.clone(),
            preshared_key: preshared_key.clone(),
            peers: Vec::new(),
        }
    }

    /// The keys of every peer, in [`Self::peers`]' order (`None`: in clear).
    ///
    /// # Errors
    /// The first missing, unreadable or malformed key, with its key.
    pub fn peer_keys(&self) -> Result<Vec<Option<TunnelKeys>>, TunnelConfigError> {
        self.peers()
            .iter()
            .enumerate()
            .map(|(i, (_, v))| v.keys().map_err(|e| e.in_peer(self.peers.get(i), i)))
            .collect()
    }

    /// Checks the section against the interfaces, the static route prefixes
    /// and the workers' reorder memory (`mbufs` in the pool): each peer on
    /// its own, with an equal share of the pool, and the peers against one
    /// another.
    ///
    /// # Errors
    /// The first problem, with its key under `tunnel`.
    pub fn validate(
        &self,
        interfaces: &[InterfaceConfig],
        static_prefixes: &[IpNet],
        mbufs: u32,
        workers: usize,
    ) -> Result<(), TunnelConfigError> {
        if self.peers.is_empty() {
            return self.validate_peer(interfaces, static_prefixes, mbufs, workers);
        }
        let set = [
            !self.prefixes.is_empty(),
            !self.paths.is_empty(),
            !self.classes.is_empty(),
            self.peer_public_key.is_some(),
        ];
        if let Some((key, _)) = PER_PEER_KEYS.iter().zip(set).find(|(_, s)| *s) {
            return fail(
                *key,
                "nothing here: this tunnel lists its peers, and each [[tunnel.peers]] has its own",
            );
        }
        if self.peers.len() > MAX_PEERS {
            return fail(
                "peers",
                format!("at most {MAX_PEERS} peers, not {}", self.peers.len()),
            );
        }
        let share = mbufs / u32::try_from(self.peers.len()).unwrap_or(u32::MAX);
        let views = self.peers();
        // What the peers before this one hold, each with the first peer that
        // holds it: thousands of peers are checked against one another in
        // one pass.
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut prefixes: HashMap<IpNet, usize> = HashMap::new();
        let mut keys: HashMap<&str, usize> = HashMap::new();
        let mut on_interface: HashMap<(Ipv4Addr, &str), usize> = HashMap::new();
        let mut with_id: HashMap<(Ipv4Addr, u8), usize> = HashMap::new();
        for (i, (name, view)) in views.iter().enumerate() {
            let key = |f: &str| format!("peers[{i}].{f}");
            let good = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if name.is_empty()
                || !name.chars().all(good)
                || name == ONE_PEER_NAME
                || names.contains_key(name.as_str())
            {
                return fail(
                    key("name"),
                    format!("a name of letters, digits, '-', '_' or '.' not used by another peer (nor {ONE_PEER_NAME:?}, the one peer of a tunnel that lists none), not {name:?}"),
                );
            }
            view.validate_peer(interfaces, static_prefixes, share, workers)
                .map_err(|e| e.in_peer(self.peers.get(i), i))?;
            let other = |j: usize| views.get(j).map_or("", |(n, _)| n.as_str());
            for (p, prefix) in view.prefixes.iter().enumerate() {
                if let Some(&j) = prefixes.get(prefix) {
                    return fail(
                        key(&format!("prefixes[{p}]")),
                        format!(
                            "a prefix of this peer only ({prefix} is peer {}'s)",
                            other(j)
                        ),
                    );
                }
            }
            if let Some(public) = view.peer_public_key.as_deref().filter(|_| view.encrypted()) {
                if let Some(&j) = keys.get(public) {
                    return fail(
                        key("public_key"),
                        format!("this peer's own key (peers[{j}], {}, has it)", other(j)),
                    );
                }
            }
            // A packet with no Key ID (in clear, a handshake) finds its peer by its
            // source address and path id.
            for (p, path) in view.paths.iter().enumerate() {
                let Some(r) = path.remote else { continue };
                let there = on_interface
                    .get(&(r, path.interface.as_str()))
                    .or_else(|| with_id.get(&(r, path.id)));
                if let Some(&j) = there {
                    return fail(
                        key(&format!("paths[{p}].remote")),
                        format!(
                            "an address no other peer has on this interface (peer {} is there)",
                            other(j)
                        ),
                    );
                }
            }
            names.insert(name, i);
            for prefix in &view.prefixes {
                prefixes.entry(*prefix).or_insert(i);
            }
            if let Some(public) = view.peer_public_key.as_deref().filter(|_| view.encrypted()) {
                keys.entry(public).or_insert(i);
            }
            for path in &view.paths {
                if let Some(r) = path.remote {
                    on_interface
                        .entry((r, path.interface.as_str()))
                        .or_insert(i);
                    with_id.entry((r, path.id)).or_insert(i);
                }
            }
        }
        Ok(())
    }

    /// [`Self::validate`] for one peer.
    fn validate_peer(
        &self,
        interfaces: &[InterfaceConfig],
        static_prefixes: &[IpNet],
        mbufs: u32,
        workers: usize,
    ) -> Result<(), TunnelConfigError> {
        if self.port == 0 {
            return fail("port", "a UDP port 1-65535");
        }
        if self.paths.is_empty() || self.paths.len() > MAX_PATHS {
            return fail(
                "paths",
                format!("1 to {MAX_PATHS} paths, not {}", self.paths.len()),
            );
        }
        for (i, p) in self.paths.iter().enumerate() {
            let key = |f: &str| format!("paths[{i}].{f}");
            if p.name.is_empty() || self.paths[..i].iter().any(|o| o.name == p.name) {
                return fail(
                    key("name"),
                    format!("a name not used by another path, not {:?}", p.name),
                );
            }
            if usize::from(p.id) >= MAX_PATHS || self.paths[..i].iter().any(|o| o.id == p.id) {
                return fail(
                    key("id"),
                    format!(
                        "an id 0-{} not used by another path, not {}",
                        MAX_PATHS - 1,
                        p.id
                    ),
                );
            }
            let Some(ifc) = interfaces.iter().find(|c| c.port == p.interface) else {
                let names: Vec<&str> = interfaces.iter().map(|c| c.port.as_str()).collect();
                return fail(
                    key("interface"),
                    format!(
                        "an interface with an address {names:?}, not {:?}",
                        p.interface
                    ),
                );
            };
            if p.local.is_some_and(|l| l != ifc.address.addr()) {
                return fail(
                    key("local"),
                    format!(
                        "the interface's own address {}, or nothing",
                        ifc.address.addr()
                    ),
                );
            }
            let Some(r) = p.remote else {
                self.validate_learned(i, p, ifc)?;
                continue;
            };
            // The receive fast pass relies on this: a packet from a path's
            // peer can never be a martian or come from one of our subnets'
            // broadcast addresses, so those checks are not repeated for it.
            if r.is_multicast() || is_martian(r) {
                return fail(
                    key("remote"),
                    format!("a unicast address of the peer, not {r}"),
                );
            }
            if interfaces.iter().any(|c| c.address.broadcast() == r) {
                return fail(
                    key("remote"),
                    format!("the peer's address, not one of our subnets' broadcast ({r})"),
                );
            }
            if interfaces.iter().any(|c| c.address.addr() == r) {
                return fail(
                    key("remote"),
                    format!("the peer's address, not one of ours ({r})"),
                );
            }
            let next_hop = p.next_hop.unwrap_or(r);
            if !ifc.address.contains(&next_hop)
                || next_hop == ifc.address.network()
                || next_hop == ifc.address.broadcast()
                || next_hop == ifc.address.addr()
            {
                let which = if p.next_hop.is_some() {
                    "next_hop"
                } else {
                    "remote"
                };
                return fail(key(which), format!(
                    "a next hop on {}'s subnet {} (set next_hop when the peer is further away), not {next_hop}",
                    p.interface, ifc.address.trunc()
                ));
            }
            if let Some(b) = &p.bfd {
                b.validate(&key("bfd"))?;
            }
            let bfd = p.bfd.unwrap_or(self.bfd);
            if bfd.enabled && !bfd.multihop && next_hop != r {
                return fail(key("bfd.multihop"), format!(
                    "true: the peer {r} is behind next hop {next_hop}, and single-hop BFD (RFC 5881) needs it on the link"
                ));
            }
            let overhead = self.overhead();
            if !(overhead + MIN_INNER_MTU..=9000).contains(&p.mtu) {
                return fail(key("mtu"), format!(
                    "an MTU of {} to 9000 (the inner MTU is {overhead} less and must stay >= {MIN_INNER_MTU}), not {}",
                    overhead + MIN_INNER_MTU, p.mtu
                ));
            }
        }
        for (i, prefix) in self.prefixes.iter().enumerate() {
            let key = format!("prefixes[{i}]");
            if *prefix != prefix.trunc() {
                return fail(
                    key,
                    format!("a prefix with no host bits set ({} here)", prefix.trunc()),
                );
            }
            let ours = interfaces.iter().find_map(|c| {
                let overlaps =
                    |net: IpNet| prefix.contains(&net.addr()) || net.trunc().contains(prefix);
                [Some(IpNet::V4(c.address)), c.address6.map(IpNet::V6)]
                    .into_iter()
                    .flatten()
                    .find(|net| overlaps(*net))
                    .map(|net| (c, net))
            });
            if let Some((c, net)) = ours {
                return fail(
                    key,
                    format!("a remote network, not one overlapping {}'s {net}", c.port),
                );
            }
            if let IpNet::V6(p) = prefix {
                let a = p.addr();
                if a.is_multicast()
                    || crate::wire::ipv6::is_link_local_unicast(&a)
                    || crate::wire::ipv6::is_documentation(&a)
                {
                    return fail(
                        key,
                        format!("a routable prefix (outside fe80::/10, ff00::/8 and 2001:db8::/32), not {p}"),
                    );
                }
            }
            if let Some(p) = self.paths.iter().find(|p| {
                let holds = |a: Ipv4Addr| prefix.contains(&std::net::IpAddr::V4(a));
                p.remote.is_some_and(holds) || p.next_hop.or(p.remote).is_some_and(holds)
            }) {
                return fail(key, format!(
                    "a prefix not holding path {}'s peer address or next hop (its own packets would enter the tunnel)",
                    p.name
                ));
            }
            if static_prefixes.contains(prefix) || self.prefixes[..i].contains(prefix) {
                return fail(key, format!("a prefix not routed already ({prefix} is)"));
            }
        }
        if let Some(i) = self.prefixes.iter().position(|p| matches!(p, IpNet::V6(_))) {
            let inner = self.inner_mtu();
            if inner < 1280 {
                return fail(
                    format!("prefixes[{i}]"),
                    format!(
                        "an IPv6 prefix only over paths that leave an inner MTU of 1280 (IPv6's minimum, RFC 8200 §5); these leave {inner}"
                    ),
                );
            }
        }
        if self.prefixes.is_empty() {
            return fail("prefixes", "at least one network of the peer site");
        }
        for (i, c) in self.classes.iter().enumerate() {
            let key = |f: &str| format!("classes[{i}].{f}");
            if c.name.is_empty()
                || c.name == "default"
                || self.classes[..i].iter().any(|o| o.name == c.name)
            {
                return fail(
                    key("name"),
                    format!(
                        "a name not used by another class (nor \"default\"), not {:?}",
                        c.name
                    ),
                );
            }
            let m = &c.matches;
            if (m.src_ports.is_some() || m.dst_ports.is_some())
                && !matches!(m.protocol, Some(Protocol(6 | 17)))
            {
                return fail(
                    key("match"),
                    "protocol = \"tcp\" or \"udp\" when ports are matched",
                );
            }
            if let Some(d) = m.dscp.as_ref().and_then(|d| d.iter().find(|v| **v > 63)) {
                return fail(key("match.dscp"), format!("DSCP values 0-63, not {d}"));
            }
            match (c.scheduler, c.bindings.is_empty()) {
                (SchedulerName::SourceSubnet, true) => {
                    return fail(
                        key("bindings"),
                        "at least one { subnet, path } for a source-subnet class",
                    )
                }
                (SchedulerName::SourceSubnet, false) => {}
                (_, false) => {
                    return fail(key("bindings"), "bindings only in a source-subnet class")
                }
                (_, true) => {}
            }
            for (j, b) in c.bindings.iter().enumerate() {
                if b.subnet != b.subnet.trunc() {
                    return fail(
                        format!("classes[{i}].bindings[{j}].subnet"),
                        format!("a subnet with no host bits set ({} here)", b.subnet.trunc()),
                    );
                }
                if !self.paths.iter().any(|p| p.name == b.path) {
                    let names: Vec<&str> = self.paths.iter().map(|p| p.name.as_str()).collect();
                    return fail(
                        format!("classes[{i}].bindings[{j}].path"),
                        format!("one of the paths {names:?}, not {:?}", b.path),
                    );
                }
            }
        }
        if self.default_scheduler == SchedulerName::SourceSubnet {
            return fail(
                "default_scheduler",
                "a scheduler that needs no bindings (source-subnet needs a class of its own)",
            );
        }
        self.bfd.validate("bfd")?;
        if self.max_hold_down.0 > Duration::from_secs(3600) {
            return fail(
                "max_hold_down",
                format!("at most 1h, not {:?}", self.max_hold_down.0),
            );
        }
        let probe = self.probe_interval.0;
        if probe < Duration::from_millis(1) || probe > Duration::from_secs(10) {
            return fail("probe_interval", format!("1ms to 10s, not {probe:?}"));
        }
        let r = self.reorder;
        if let Some(n) = r.max_packets {
            if !n.is_power_of_two() || !(64..=REORDER_MAX).contains(&n) {
                return fail(
                    "reorder.max_packets",
                    format!("a power of two from 64 to {REORDER_MAX}, not {n}"),
                );
            }
        }
        if r.max_hold.0 < Duration::from_millis(1) || r.max_hold.0 > Duration::from_secs(1) {
            return fail(
                "reorder.max_hold",
                format!("1ms to 1s, not {:?}", r.max_hold.0),
            );
        }
        let sh = self.shaping;
        if !(50..=100).contains(&sh.rate_percent) {
            return fail(
                "shaping.rate_percent",
                format!(
                    "50 to 100 (percent of each path's rate), not {}",
                    sh.rate_percent
                ),
            );
        }
        if sh.target.0 < Duration::from_micros(100) || sh.target.0 > Duration::from_secs(1) {
            return fail(
                "shaping.target",
                format!("100us to 1s, not {:?}", sh.target.0),
            );
        }
        if sh.interval.0 <= sh.target.0 || sh.interval.0 > Duration::from_secs(10) {
            return fail(
                "shaping.interval",
                format!(
                    "more than target ({:?}) and at most 10s, not {:?}",
                    sh.target.0, sh.interval.0
                ),
            );
        }
        if let Some(n) = sh.max_packets {
            let held = u64::from(n) * self.paths.len() as u64 * workers.max(1) as u64;
            if !(16..=65536).contains(&n) || held > u64::from(mbufs) / 4 {
                return fail("shaping.max_packets", format!(
                    "16 to 65536, and within a quarter of the mempool ({mbufs} mbufs) across {} path(s) and {workers} worker(s): {n} gives {held}",
                    self.paths.len()
                ));
            }
        }
        // Each worker holds at most one full lane per lane it owns that
        // carries traffic; with one lane per sending worker, keep that below
        // half the pool so holding never starves reception.
        if let Some(n) = r.max_packets {
            let held = n.saturating_mul(workers.max(1));
            if held > (mbufs as usize) / 2 {
                return fail("reorder.max_packets", format!(
                    "at most half the mempool ({mbufs} mbufs) across {workers} worker(s): {n} × {workers} = {held} here"
                ));
            }
        }
        Ok(())
    }

    /// Packets each worker's shaper queue for path `path` holds:
    /// `shaping.max_packets`, or, unset, 250 ms of the path's rate in
    /// full-size frames (128 to 4096), capped so that every worker's queues
    /// for every path fit in a quarter of a pool of `mbufs`.
    pub fn shaper_packets(&self, path: usize, mbufs: u32, workers: usize) -> u32 {
        if let Some(n) = self.shaping.max_packets {
            return n;
        }
        let rate = self.paths.get(path).map_or(0, |p| p.rate.0);
        let want = (rate as f64 * 0.25 / FULL_FRAME_BITS).ceil() as u32;
        let queues = (self.paths.len() * workers.max(1)) as u32;
        let fit = (mbufs / 4 / queues.max(1)).max(16);
        want.clamp(AUTO_SHAPER_MIN, AUTO_SHAPER_MAX).min(fit)
    }

    /// The checks of path `i`, whose remote is learned: only from packets
    /// that authenticate (an encrypted tunnel), with no BFD (which runs to a
    /// fixed address), and a next hop on the interface's subnet if one is
    /// given.
    fn validate_learned(
        &self,
        i: usize,
        p: &PathConfig,
        ifc: &InterfaceConfig,
    ) -> Result<(), TunnelConfigError> {
        let key = |f: &str| format!("paths[{i}].{f}");
        if !self.encrypted() {
            return fail(
                key("remote"),
                "the peer's address: a path learns it only on an encrypted tunnel \
                 (a packet in clear proves nothing about who sent it)",
            );
        }
        if p.bfd.unwrap_or(self.bfd).enabled {
            return fail(
                key("bfd"),
                "{ enabled = false }: BFD runs to a fixed address (RFC 5881), \
                 and this path learns its remote; the probes watch it",
            );
        }
        if let Some(n) = p.next_hop {
            if !ifc.address.contains(&n)
                || n == ifc.address.network()
                || n == ifc.address.broadcast()
                || n == ifc.address.addr()
            {
                return fail(
                    key("next_hop"),
                    format!(
                        "a next hop on {}'s subnet {}, not {n}",
                        p.interface,
                        ifc.address.trunc()
                    ),
                );
            }
        }
        let overhead = self.overhead();
        if !(overhead + MIN_INNER_MTU..=9000).contains(&p.mtu) {
            return fail(
                key("mtu"),
                format!(
                    "an MTU of {} to 9000 (the inner MTU is {overhead} less and must stay >= {MIN_INNER_MTU}), not {}",
                    overhead + MIN_INNER_MTU,
                    p.mtu
                ),
            );
        }
        Ok(())
    }

    /// Packets each lane's reorder buffer holds: `reorder.max_packets`, or,
    /// unset, what the paths together deliver in `reorder.max_hold` at their
    /// configured rates in full-size frames (a hole may be waited for that
    /// long), as a power of two of at least 1024, capped so that the lanes
    /// of `workers` workers fit in half a pool of `mbufs`.
    pub fn reorder_packets(&self, mbufs: u32, workers: usize) -> usize {
        if let Some(n) = self.reorder.max_packets {
            return n;
        }
        let rate: u64 = self.paths.iter().map(|p| p.rate.0).sum();
        let frames = rate as f64 * self.reorder.max_hold.0.as_secs_f64() / FULL_FRAME_BITS;
        let want = (frames.ceil() as usize)
            .next_power_of_two()
            .clamp(AUTO_REORDER_MIN, REORDER_MAX);
        let fit = (mbufs as usize / 2 / workers.max(1)).max(64);
        // The largest power of two that fits.
        let fit = 1usize << (usize::BITS - 1 - fit.leading_zeros());
        want.min(fit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_bits() {
        assert_eq!("300mbit".parse(), Ok(BitRate(300_000_000)));
        assert_eq!("1.5gbit".parse(), Ok(BitRate(1_500_000_000)));
        assert_eq!("64kbit".parse(), Ok(BitRate(64_000)));
        assert_eq!("1000".parse(), Ok(BitRate(1000)));
        assert!("fast".parse::<BitRate>().is_err());
        assert!("300mb".parse::<BitRate>().is_err());
        assert!("0mbit".parse::<BitRate>().is_err());
    }

    #[test]
    fn the_inner_mtu_is_the_smallest_path_mtu_less_the_overhead() {
        let t: TunnelConfig = toml::from_str(
            r#"
prefixes = ["10.2.0.0/24"]
[[paths]]
name = "a"
id = 0
interface = "wan0"
remote = "172.16.0.2"
rate = "30mbit"
[[paths]]
name = "b"
id = 1
interface = "wan1"
remote = "172.16.1.2"
rate = "8mbit"
mtu = 1400
"#,
        )
        .unwrap();
        assert_eq!(t.inner_mtu(), 1400 - 48 - 16, "encrypted by default");
        let clear = TunnelConfig {
            encryption: Encryption::None,
            ..t.clone()
        };
        assert_eq!(clear.inner_mtu(), 1352);
        assert_eq!(t.port, 4800);
        assert_eq!(t.default_scheduler, SchedulerName::Wlb);
        assert_eq!(t.probe_interval.0, Duration::from_millis(10));
    }

    fn two_paths(a: &str, b: &str, reorder: &str) -> TunnelConfig {
        toml::from_str(&format!(
            "prefixes = [\"10.2.0.0/24\"]\n{reorder}\n\
             [[paths]]\nname = \"a\"\nid = 0\ninterface = \"wan0\"\nremote = \"172.16.0.2\"\nrate = \"{a}\"\n\
             [[paths]]\nname = \"b\"\nid = 1\ninterface = \"wan1\"\nremote = \"172.16.1.2\"\nrate = \"{b}\"\n"
        ))
        .unwrap()
    }

    /// RFC 4594's classes: CS6/CS7 network control; EF, VOICE-ADMIT, CS5,
    /// CS4, AF4x and CS3 real-time; CS1 and LE bulk; the rest default.
    #[test]
    fn dscps_map_to_tiers_as_rfc_4594_suggests() {
        let tier = |d| Tier::of_dscp(d);
        for d in [48, 56] {
            assert_eq!(tier(d), Tier::NetworkControl, "{d}");
        }
        for d in [46, 44, 40, 32, 34, 36, 38, 24] {
            assert_eq!(tier(d), Tier::Realtime, "{d}");
        }
        for d in [8, 1] {
            assert_eq!(tier(d), Tier::Bulk, "{d}");
        }
        for d in [0, 10, 12, 14, 16, 18, 20, 22, 26, 28, 30, 63] {
            assert_eq!(tier(d), Tier::Default, "{d}");
        }
    }

    /// Unset, a worker's queue for a path holds 250 ms of its rate in full
    /// frames (128 to 4096), within a quarter of the pool.
    #[test]
    fn the_shaper_queues_are_sized_from_the_rates_unless_set() {
        let t = two_paths("300mbit", "8mbit", "");
        assert_eq!(t.shaper_packets(0, 65535, 1), 4096);
        assert_eq!(t.shaper_packets(1, 65535, 1), 167);
        assert_eq!(t.shaper_packets(0, 16383, 2), 16383 / 4 / 4);
        let set = two_paths("300mbit", "8mbit", "shaping = { max_packets = 64 }");
        assert_eq!(set.shaper_packets(0, 16383, 2), 64);
    }

    /// Unset, a lane holds what the paths deliver in `max_hold`, in full
    /// frames: 380 Mbit/s for 100 ms is 3,167 frames, so 4096; slow links
    /// keep the floor; the pool caps it; a set value is taken as it is.
    #[test]
    fn the_reorder_buffer_is_sized_from_the_rates_unless_set() {
        let fast = two_paths("300mbit", "80mbit", "");
        assert_eq!(fast.reorder_packets(65535, 2), 4096);
        // 16383 mbufs for 2 workers: at most 4095 each, so 2048.
        assert_eq!(fast.reorder_packets(16383, 2), 2048);
        assert_eq!(
            two_paths("30mbit", "8mbit", "").reorder_packets(16383, 2),
            1024
        );
        let held = two_paths("300mbit", "80mbit", "reorder = { max_hold = \"20ms\" }");
        assert_eq!(held.reorder_packets(65535, 2), 1024);
        let set = two_paths("300mbit", "80mbit", "reorder = { max_packets = 256 }");
        assert_eq!(set.reorder_packets(16383, 2), 256);
    }
}
