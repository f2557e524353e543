//! The appliance config: addresses, routes, static neighbours, control and
//! slow-path settings. Port names refer to the hardware profile.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::mcast::{IfaceView, McastRuleSpec};
use super::tunnel::TunnelConfig;
use super::{parse_toml, read, ConfigError, HwProfile};
use crate::wire::MacAddr;

/// An interface: a profile port with an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    /// Port name from the hardware profile.
    pub port: String,
    /// Address and prefix, e.g. `10.10.1.1/24`.
    pub address: Ipv4Net,
    /// A global IPv6 address and prefix, e.g. `2001:db8:1::1/64` (the
    /// link-local address is derived from the MAC in any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Net>,
    /// Send router advertisements on this port (`[interfaces.ra]`): hosts
    /// take the appliance as their default router and, for a /64, make
    /// their addresses from its prefix (SLAAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ra: Option<RaConfig>,
}

/// Router advertisements on one port (RFC 4861 §6.2.1, radvd's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaConfig {
    /// Longest time between unsolicited advertisements, seconds (4 to 1800;
    /// each gap is drawn between a third of it and it).
    #[serde(default = "RaConfig::default_interval")]
    pub interval: u32,
    /// Seconds hosts keep the appliance as their default router (0: never a
    /// default router, the prefix only; at most 9000).
    #[serde(default = "RaConfig::default_router_lifetime")]
    pub router_lifetime: u16,
    /// Seconds the prefix stays valid on hosts.
    #[serde(default = "RaConfig::default_valid_lifetime")]
    pub valid_lifetime: u32,
    /// Seconds the addresses hosts make from it stay preferred (at most
    /// `valid_lifetime`).
    #[serde(default = "RaConfig::default_preferred_lifetime")]
    pub preferred_lifetime: u32,
}

impl RaConfig {
    fn default_interval() -> u32 {
        600
    }
    fn default_router_lifetime() -> u16 {
        1800
    }
    fn default_valid_lifetime() -> u32 {
        86_400
    }
    fn default_preferred_lifetime() -> u32 {
        14_400
    }
}

impl Default for RaConfig {
    fn default() -> Self {
        Self {
            interval: Self::default_interval(),
            router_lifetime: Self::default_router_lifetime(),
            valid_lifetime: Self::default_valid_lifetime(),
            preferred_lifetime: Self::default_preferred_lifetime(),
        }
    }
}

/// A static route, IPv4 or IPv6 (prefix and next hop of one family).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Next hop (must be on a connected subnet).
    pub via: IpAddr,
}

/// A static ARP entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    /// The neighbour's address (on a connected subnet, IPv4 or IPv6).
    pub address: IpAddr,
    /// Its MAC.
    #[serde(deserialize_with = "de_mac", serialize_with = "ser_mac")]
    pub mac: MacAddr,
}

fn ser_mac<S: serde::Serializer>(m: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&m.to_string())
}

fn de_mac<'de, D: serde::Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!("a MAC address like 02:00:00:00:00:01, not {s:?}"))
    })
}

/// Control socket and metrics endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Unix socket for `appliancectl` (created with mode 0600).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Prometheus `/metrics` listen address; loopback by default. Empty string: off.
    #[serde(default = "default_metrics")]
    pub metrics: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: default_socket(),
            metrics: default_metrics(),
        }
    }
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/appliance/appliance.sock")
}
fn default_metrics() -> String {
    "127.0.0.1:9469".into()
}

/// The log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The level (`RUST_LOG`'s, or info, when unset); a reload changes it, as does
    /// `appliancectl log level` until the next reload that changes this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
}

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors.
    Error,
    /// And warnings.
    Warn,
    /// And what changed (the default).
    Info,
    /// And details.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// As the `log` crate's filter.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    /// From the `log` crate's filter.
    pub fn of(filter: log::LevelFilter) -> Self {
        match filter {
            log::LevelFilter::Off => LogLevel::Off,
            log::LevelFilter::Error => LogLevel::Error,
            log::LevelFilter::Warn => LogLevel::Warn,
            log::LevelFilter::Info => LogLevel::Info,
            log::LevelFilter::Debug => LogLevel::Debug,
            log::LevelFilter::Trace => LogLevel::Trace,
        }
    }
}

/// Slow-path timers and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowPathConfig {
    /// ICMP errors (time exceeded, unreachable) sent per second at most.
    #[serde(default = "default_icmp_rate")]
    pub icmp_errors_per_sec: u32,
    /// Seconds a learned neighbour is trusted before it is re-resolved.
    #[serde(default = "default_arp_reachable")]
    pub arp_reachable_secs: u32,
    /// ARP requests sent before a next hop is declared unreachable.
    #[serde(default = "default_arp_retries")]
    pub arp_retries: u32,
    /// Packets held per unresolved next hop (Linux's unres_qlen).
    #[serde(default = "default_arp_hold")]
    pub arp_hold_packets: usize,
}

impl Default for SlowPathConfig {
    fn default() -> Self {
        Self {
            icmp_errors_per_sec: default_icmp_rate(),
            arp_reachable_secs: default_arp_reachable(),
            arp_retries: default_arp_retries(),
            arp_hold_packets: default_arp_hold(),
        }
    }
}

fn default_icmp_rate() -> u32 {
    100
}
fn default_arp_reachable() -> u32 {
    60
}
fn default_arp_retries() -> u32 {
    3
}
fn default_arp_hold() -> usize {
    3
}

/// The whole appliance config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Interfaces (one per port that has an address).
    pub interfaces: Vec<InterfaceConfig>,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Static neighbours.
    #[serde(default)]
    pub neighbors: Vec<NeighborConfig>,
    /// Control socket and metrics.
    #[serde(default)]
    pub control: ControlConfig,
    /// Slow-path settings.
    #[serde(default)]
    pub slowpath: SlowPathConfig,
    /// The log.
    #[serde(default)]
    pub log: LogConfig,
    /// Multicast relay rules (more can be added at run time).
    #[serde(default)]
    pub mcast_rules: Vec<McastRuleSpec>,
    /// The multipath tunnel to the peer site.
    #[serde(default)]
    pub tunnel: Option<TunnelConfig>,
}

impl Config {
    /// The config as a file that `--check` accepts (every key written, defaults included).
    ///
    /// # Errors
    /// A value TOML cannot hold (none is expected: every field serialises as it parses).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Loads and validates a config against its hardware profile.
    ///
    /// # Errors
    /// The first problem found, naming file and key.
    pub fn load(file: &Path, profile: &HwProfile) -> Result<Self, ConfigError> {
        let text = read(file)?;
        Self::parse(file, &text, profile)
    }

    /// Parses and validates config text (`file` is for messages only).
    ///
    /// # Errors
    /// The first problem found, naming file and key.
    pub fn parse(file: &Path, text: &str, profile: &HwProfile) -> Result<Self, ConfigError> {
        let mut c: Config = parse_toml(file, text)?;
        if let Some(t) = &mut c.tunnel {
            t.resolve_key_paths(file.parent().unwrap_or(Path::new(".")));
        }
        c.validate(file, profile)?;
        Ok(c)
    }

    fn validate(&self, file: &Path, profile: &HwProfile) -> Result<(), ConfigError> {
        let err = |key: String, what: String| Err(ConfigError::new(file, key, what));
        let names: Vec<&str> = profile.ports.iter().map(|p| p.name.as_str()).collect();
        for (i, ifc) in self.interfaces.iter().enumerate() {
            if !names.contains(&ifc.port.as_str()) {
                return err(
                    format!("interfaces[{i}].port"),
                    format!("one of the profile's ports {names:?}, not {:?}", ifc.port),
                );
            }
            if self.interfaces[..i].iter().any(|o| o.port == ifc.port) {
                return err(
                    format!("interfaces[{i}].port"),
                    "a port not given an address already (one address per port)".into(),
                );
            }
            let a = ifc.address.addr();
            if ifc.address.prefix_len() > 30
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
                || a == ifc.address.network()
                || a == ifc.address.broadcast()
            {
                return err(
                    format!("interfaces[{i}].address"),
                    format!(
                        "a unicast host address with a prefix of /30 or shorter, not {}",
                        ifc.address
                    ),
                );
            }
            if let Some(o) = self.interfaces[..i]
                .iter()
                .find(|o| o.address.contains(&a) || ifc.address.contains(&o.address.addr()))
            {
                return err(
                    format!("interfaces[{i}].address"),
                    format!("a subnet not overlapping port {}'s {}", o.port, o.address),
                );
            }
            if let Some(net) = ifc.address6 {
                let mtu = profile
                    .ports
                    .iter()
                    .find(|p| p.name == ifc.port)
                    .and_then(|p| p.mtu);
                if let Some(mtu) = mtu.filter(|m| *m < 1280) {
                    return err(
                        format!("interfaces[{i}].address6"),
                        format!(
                            "a port whose MTU carries IPv6 (at least 1280, RFC 8200 §5): the profile gives {} an MTU of {mtu}",
                            ifc.port
                        ),
                    );
                }
                let a = net.addr();
                let segs = a.segments();
                if net.prefix_len() > 127
                    || a.is_multicast()
                    || a.is_unspecified()
                    || a.is_loopback()
                    || crate::wire::ipv6::is_link_local_unicast(&a)
                    || crate::wire::ipv6::is_documentation(&a)
                    || segs[..5] == [0; 5] && (segs[5] == 0 || segs[5] == 0xffff)
                    || a == net.network()
                {
                    return err(
                        format!("interfaces[{i}].address6"),
                        format!(
                            "a global unicast IPv6 address with a prefix of /127 or shorter, not {net} (the link-local one is derived from the MAC; documentation addresses, 2001:db8::/32, are never routed: a lab uses unique local ones, fd00::/8)"
                        ),
                    );
                }
                if let Some((o, n)) = self.interfaces[..i].iter().find_map(|o| {
                    o.address6
                        .filter(|n| n.contains(&a) || net.contains(&n.addr()))
                        .map(|n| (o, n))
                }) {
                    return err(
                        format!("interfaces[{i}].address6"),
                        format!("a subnet not overlapping port {}'s {n}", o.port),
                    );
                }
            }
        }
        for (i, ifc) in self.interfaces.iter().enumerate() {
            let Some(ra) = ifc.ra else { continue };
            let key = |k: &str| format!("interfaces[{i}].ra.{k}");
            if ifc.address6.is_none() {
                return err(
                    format!("interfaces[{i}].ra"),
                    "an address6 on the port first (advertisements announce its prefix)".into(),
                );
            }
            if !(4..=1800).contains(&ra.interval) {
                return err(key("interval"), "4 to 1800 seconds (RFC 4861 6.2.1)".into());
            }
            if ra.router_lifetime != 0
                && (u32::from(ra.router_lifetime) < ra.interval || ra.router_lifetime > 9000)
            {
                return err(
                    key("router_lifetime"),
                    format!(
                        "0 (not a default router) or from the interval ({}) to 9000 seconds",
                        ra.interval
                    ),
                );
            }
            if ra.preferred_lifetime > ra.valid_lifetime {
                return err(
                    key("preferred_lifetime"),
                    format!("at most valid_lifetime ({})", ra.valid_lifetime),
                );
            }
        }
        let ours = || self.interfaces.iter().map(|i| i.address);
        let ours6 = || self.interfaces.iter().filter_map(|i| i.address6);
        // A set, not a scan of the routes before each: a full table is a
        // million routes.
        let mut prefixes = std::collections::HashSet::with_capacity(self.routes.len());
        for (i, r) in self.routes.iter().enumerate() {
            if r.prefix != r.prefix.trunc() {
                return err(
                    format!("routes[{i}].prefix"),
                    format!("a prefix with no host bits set ({} here)", r.prefix.trunc()),
                );
            }
            let why = match (r.prefix, r.via) {
                (IpNet::V4(_), IpAddr::V4(via)) => super::next_hop_problem(ours(), via),
                (IpNet::V6(p), IpAddr::V6(via)) => {
                    let a = p.addr();
                    if p.prefix_len() > 0
                        && (a.is_multicast()
                            || crate::wire::ipv6::is_link_local_unicast(&a)
                            || crate::wire::ipv6::is_documentation(&a))
                    {
                        return err(
                            format!("routes[{i}].prefix"),
                            format!("a routable prefix (outside fe80::/10, ff00::/8 and 2001:db8::/32), not {p}"),
                        );
                    }
                    super::next_hop6_problem(ours6(), via)
                }
                (prefix, via) => {
                    return err(
                        format!("routes[{i}].via"),
                        format!(
                            "a next hop of the prefix's family ({prefix} is routed, {via} given)"
                        ),
                    )
                }
            };
            if let Some(why) = why {
                return err(
                    format!("routes[{i}].via"),
                    format!("a host on a connected subnet that is not ours ({why})"),
                );
            }
            if !prefixes.insert(r.prefix) {
                return err(
                    format!("routes[{i}].prefix"),
                    "a prefix not routed already".into(),
                );
            }
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            let why = match n.address {
                IpAddr::V4(a) => super::next_hop_problem(ours(), a),
                IpAddr::V6(a) => super::next_hop6_problem(ours6(), a),
            };
            if let Some(why) = why {
                return err(
                    format!("neighbors[{i}].address"),
                    format!("a host on a connected subnet that is not ours ({why})"),
                );
            }
            if !n.mac.is_unicast() {
                return err(format!("neighbors[{i}].mac"), "a unicast MAC".into());
            }
        }
        if !self.control.metrics.is_empty() && self.control.metrics.parse::<SocketAddr>().is_err() {
            return err(
                "control.metrics".into(),
                format!(
                    "an address:port such as 127.0.0.1:9469, or \"\" for off, not {:?}",
                    self.control.metrics
                ),
            );
        }
        if self.control.socket.as_os_str().is_empty() {
            return err(
                "control.socket".into(),
                "a path for the control socket".into(),
            );
        }
        let mut ifaces: Vec<IfaceView<'_>> = self
            .interfaces
            .iter()
            .map(|i| IfaceView {
                name: &i.port,
                address: Some(i.address.addr()),
            })
            .collect();
        if let Some(t) = &self.tunnel {
            // The tunnel as a rule interface: its address is the first
            // interface no path uses (the LAN side).
            let lan = self
                .interfaces
                .iter()
                .find(|i| {
                    !t.peers()
                        .iter()
                        .any(|(_, v)| v.paths.iter().any(|p| p.interface == i.port))
                })
                .map(|i| i.address.addr());
            ifaces.push(IfaceView {
                name: super::mcast::TUNNEL_INTERFACE,
                address: lan,
            });
        }
        for (i, r) in self.mcast_rules.iter().enumerate() {
            if let Err(e) = r.validate(&ifaces) {
                return err(format!("mcast_rules[{i}].{}", e.key), e.what);
            }
            let peers = self.tunnel.as_ref().map_or(0, |t| t.peers().len());
            let into_tunnel = r
                .outputs
                .iter()
                .position(|o| o.interface == super::mcast::TUNNEL_INTERFACE);
            if let (true, Some(k)) = (peers > 1, into_tunnel) {
                return err(
                    format!("mcast_rules[{i}].outputs[{k}].interface"),
                    "a port: relaying into a tunnel with several peers is not supported".into(),
                );
            }
            if self.mcast_rules[..i].iter().any(|o| o.input == r.input) {
                return err(
                    format!("mcast_rules[{i}].input"),
                    format!("an input not matched by an earlier rule ({} is)", r.input),
                );
            }
        }
        if self.slowpath.arp_hold_packets > 64 {
            return err("slowpath.arp_hold_packets".into(), "at most 64".into());
        }
        if let Some(t) = &self.tunnel {
            // Each worker sends on two lanes (its own, and its own + 32 for
            // network control and real-time); the far end reorders 64.
            if profile.workers() > 32 {
                return err(
                    "tunnel".into(),
                    format!(
                        "at most 32 workers with a tunnel (each sends on two of the 64 lanes the far end reorders); the profile's lcores give {}",
                        profile.workers()
                    ),
                );
            }
            let statics: Vec<IpNet> = self.routes.iter().map(|r| r.prefix).collect();
            if let Err(e) = t.validate(
                &self.interfaces,
                &statics,
                profile.mempool.mbufs,
                profile.workers(),
            ) {
                return err(format!("tunnel.{}", e.key), e.what);
            }
            if let Err(e) = t.peer_keys() {
                return err(format!("tunnel.{}", e.key), e.what);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// What `to_toml` writes parses back to the same config: every kind of key, the
    /// tunnel's classes and the relay's outputs included.
    #[test]
    fn a_config_written_out_reads_back_the_same() {
        use crate::config::HwProfile;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let profile = HwProfile::load(&root.join("hw-profiles/vm-af-packet.toml")).unwrap();
        let tunnel = r#"
[[interfaces]]
port = "lan"
address = "10.10.1.1/24"
[[interfaces]]
port = "wan"
address = "10.10.2.1/24"
[[neighbors]]
address = "10.10.2.7"
mac = "02:00:00:00:00:07"
[tunnel]
prefixes = ["10.2.0.0/16"]
encryption = "none"
[[tunnel.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.10.2.9"
rate = "300mbit"
bfd = { desired_min_tx = "300ms", detect_mult = 5 }
[[tunnel.classes]]
name = "voice"
scheduler = "redundant"
tier = "realtime"
match = { protocol = "udp", dscp = [46], dst_ports = "5000-5100", src_ports = 7 }
"#;
        let relay = std::fs::read_to_string(root.join("configs/relay.toml")).unwrap();
        for text in [tunnel, relay.as_str()] {
            let file = std::path::Path::new("x.toml");
            let c = Config::parse(file, text, &profile).unwrap();
            let written = c.to_toml().unwrap();
            let back = Config::parse(file, &written, &profile)
                .unwrap_or_else(|e| panic!("{e}\n{written}"));
            assert_eq!(back, c, "{written}");
        }
    }

    use super::*;

    fn profile() -> HwProfile {
        HwProfile::parse(
            Path::new("p.toml"),
            r#"
name = "t"
poll_mode = "busy"
[eal]
lcores = "0-1"
memory_mb = 256
[mempool]
mbufs = 4095
[[ports]]
name = "lan"
driver = "null"
[[ports]]
name = "wan"
driver = "null"
"#,
        )
        .unwrap()
    }

    const GOOD: &str = r#"
[[interfaces]]
port = "lan"
address = "10.0.1.1/24"
[[interfaces]]
port = "wan"
address = "10.0.2.1/24"
[[routes]]
prefix = "10.9.0.0/16"
via = "10.0.2.2"
[[neighbors]]
address = "10.0.2.2"
mac = "02:00:00:00:00:22"
[control]
socket = "/tmp/x.sock"
metrics = "127.0.0.1:9999"
[[mcast_rules]]
input = { interface = "lan", group = "239.1.1.1", port = 5000 }
outputs = [{ interface = "wan", destination = "239.10.1.1", port = 6000, ttl = 16 }]
"#;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("c.toml"), t, &profile())
    }

    #[test]
    fn good_config() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.slowpath.icmp_errors_per_sec, 100);
    }

    const TUNNEL: &str = r#"
[tunnel]
prefixes = ["10.9.0.0/16"]
encryption = "none"
[[tunnel.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.0.2.2"
rate = "30mbit"
[[tunnel.classes]]
name = "voice"
scheduler = "redundant"
match = { protocol = "udp", dst_ports = "5000-5100", dscp = [46] }
"#;

    fn tunnel_config_with(tunnel: &str) -> String {
        GOOD.replace(
            "[[routes]]\nprefix = \"10.9.0.0/16\"\nvia = \"10.0.2.2\"\n",
            "",
        ) + tunnel
    }

    fn tunnel_config() -> String {
        tunnel_config_with(TUNNEL)
    }

    /// A hub with two peers in clear, `extra` appended to the first peer.
    fn hub_config(extra: &str) -> String {
        tunnel_config_with(&format!(
            r#"
[tunnel]
encryption = "none"
probe_interval = "20ms"
[[tunnel.peers]]
name = "east"
prefixes = ["10.9.0.0/16"]
default_scheduler = "backup"
[[tunnel.peers.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.0.2.2"
rate = "30mbit"
{extra}
[[tunnel.peers]]
name = "west"
prefixes = ["10.8.0.0/16"]
[[tunnel.peers.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.0.2.3"
rate = "10mbit"
"#
        ))
    }

    /// Each peer is a tunnel of its own: its name, prefixes, paths and
    /// scheduler, with the section's shared settings.
    #[test]
    fn a_tunnel_lists_its_peers() {
        let c = parse(&hub_config("")).unwrap();
        let peers = c.tunnel.as_ref().unwrap().peers();
        let names: Vec<&str> = peers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["east", "west"]);
        let (east, west) = (&peers[0].1, &peers[1].1);
        assert_eq!(east.paths[0].remote, Some("10.0.2.2".parse().unwrap()));
        assert_eq!(west.prefixes, vec!["10.8.0.0/16".parse().unwrap()]);
        use crate::config::tunnel::SchedulerName;
        assert_eq!(east.default_scheduler, SchedulerName::Backup);
        assert_eq!(west.default_scheduler, SchedulerName::Wlb);
        assert_eq!(west.probe_interval.0, std::time::Duration::from_millis(20));
        assert!(west.peers.is_empty());
        // The two-site form is one peer.
        let one = parse(&tunnel_config()).unwrap().tunnel.unwrap().peers();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, crate::config::tunnel::ONE_PEER_NAME);
        // And it reads back as it was written.
        let written = c.to_toml().unwrap();
        assert_eq!(parse(&written).unwrap(), c, "{written}");
    }

    /// What cannot be: keys of the one-peer form beside `peers`, two peers
    /// of one name, one prefix or one address at two peers, a peer's own
    /// mistakes (under `peers[i]`), a relay into a tunnel of several peers.
    #[test]
    fn peers_are_checked_each_and_against_one_another() {
        let key_of = |text: String| parse(&text).unwrap_err().key;
        let hub = hub_config("");
        assert_eq!(
            key_of(hub.replacen(
                "[tunnel]
",
                "[tunnel]
prefixes = [\"10.7.0.0/16\"]
",
                1
            )),
            "tunnel.prefixes"
        );
        assert_eq!(
            key_of(hub.replacen("name = \"west\"", "name = \"east\"", 1)),
            "tunnel.peers[1].name"
        );
        assert_eq!(
            key_of(hub.replacen("name = \"west\"", "name = \"we st\"", 1)),
            "tunnel.peers[1].name"
        );
        // The one peer of a tunnel that lists none is called that.
        assert_eq!(
            key_of(hub.replacen("name = \"west\"", "name = \"peer\"", 1)),
            "tunnel.peers[1].name"
        );
        // A scheduler set for the whole tunnel is named where it was set.
        assert_eq!(
            key_of(hub.replacen(
                "probe_interval = \"20ms\"",
                "probe_interval = \"20ms\"\ndefault_scheduler = \"source-subnet\"",
                1
            )),
            "tunnel.default_scheduler"
        );
        assert_eq!(
            key_of(hub.replacen("\"10.8.0.0/16\"", "\"10.9.0.0/16\"", 1)),
            "tunnel.peers[1].prefixes[0]"
        );
        assert_eq!(
            key_of(hub.replacen("\"10.0.2.3\"", "\"10.0.2.2\"", 1)),
            "tunnel.peers[1].paths[0].remote"
        );
        assert_eq!(
            key_of(hub.replacen("\"10.0.2.3\"", "\"10.0.2.1\"", 1)),
            "tunnel.peers[1].paths[0].remote"
        );
        assert_eq!(
            key_of(hub.replacen("probe_interval = \"20ms\"", "probe_interval = \"0ms\"", 1)),
            "tunnel.probe_interval"
        );
        let relayed = hub.clone()
            + "[[mcast_rules]]\ninput = { interface = \"lan\", group = \"239.1.1.2\", port = 5000 }\n\
               outputs = [{ interface = \"tunnel\", destination = \"239.10.1.2\", port = 6000 }]\n";
        assert_eq!(key_of(relayed), "mcast_rules[1].outputs[0].interface");
        let mut many = tunnel_config_with("[tunnel]\nencryption = \"none\"\n");
        for i in 0..=crate::config::tunnel::MAX_PEERS {
            many += &format!(
                "[[tunnel.peers]]\nname = \"p{i}\"\nprefixes = [\"10.{}.{}.0/24\"]\n\
                 [[tunnel.peers.paths]]\nname = \"a\"\nid = 0\ninterface = \"wan\"\n\
                 remote = \"10.0.2.{}\"\nrate = \"1mbit\"\n",
                100 + i / 200,
                i % 200,
                2 + i % 250
            );
        }
        assert_eq!(key_of(many), "tunnel.peers");
    }

    #[test]
    fn a_tunnel_config_parses() {
        let c = parse(&tunnel_config()).unwrap();
        let t = c.tunnel.unwrap();
        assert_eq!(t.paths[0].rate.0, 30_000_000);
        assert_eq!(t.inner_mtu(), 1452);
        // Shaping is on by default, 5 % under the rate, CoDel at 5/100 ms.
        assert!(t.shaping.enabled);
        assert_eq!(t.shaping.rate_percent, 95);
        assert_eq!(t.classes[0].tier, None);
        let c = parse(&tunnel_config_with(&TUNNEL.replacen(
            "name = \"voice\"",
            "name = \"voice\"\ntier = \"realtime\"",
            1,
        )))
        .unwrap();
        assert_eq!(
            c.tunnel.unwrap().classes[0].tier,
            Some(crate::config::tunnel::Tier::Realtime)
        );
    }

    /// An encrypted tunnel (the default) needs its keys, each checked.
    #[test]
    fn encryption_needs_keys_unless_none() {
        use crate::tunnel::crypto::keys::PrivateKey;
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("config-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("site.key");
        let _ = std::fs::remove_file(&key);
        PrivateKey::generate().write_new(&key).unwrap();
        let peer = PrivateKey::generate().public().to_string();
        let ours = PrivateKey::read(&key).unwrap().public().to_string();
        let with = |lines: &str| {
            let t = TUNNEL.replace("encryption = \"none\"\n", lines);
            Config::parse(&dir.join("c.toml"), &tunnel_config_with(&t), &profile())
        };
        let key_of =
            |r: Result<Config, ConfigError>| r.map(|_| ()).map_err(|e| (e.key, e.expected));
        let good = format!("private_key = \"site.key\"\npeer_public_key = \"{peer}\"\n");
        let c = with(&good).unwrap();
        let t = c.tunnel.unwrap();
        assert_eq!(
            t.private_key.as_deref(),
            Some(key.as_path()),
            "relative to the config's folder"
        );
        assert_eq!(t.inner_mtu(), 1436, "the tag costs 16 bytes");
        let cases = [
            ("", "tunnel.private_key"),
            ("private_key = \"site.key\"\n", "tunnel.peer_public_key"),
            (
                "private_key = \"nope.key\"\npeer_public_key = \"x\"\n",
                "tunnel.private_key",
            ),
            (
                "private_key = \"site.key\"\npeer_public_key = \"short\"\n",
                "tunnel.peer_public_key",
            ),
        ];
        for (lines, want) in cases {
            let (k, what) = key_of(with(lines)).unwrap_err();
            assert_eq!(k, want, "{lines}: {what}");
        }
        let own = format!("private_key = \"site.key\"\npeer_public_key = \"{ours}\"\n");
        assert_eq!(key_of(with(&own)).unwrap_err().0, "tunnel.peer_public_key");
        let psk = format!("{good}preshared_key = \"site.key\"\n");
        assert!(with(&psk).is_ok());
        // A learned remote: encrypted only, and without BFD.
        let learned = |lines: &str, path: &str| {
            let t = TUNNEL
                .replace("encryption = \"none\"\n", lines)
                .replace("remote = \"10.0.2.2\"\n", path);
            Config::parse(&dir.join("c.toml"), &tunnel_config_with(&t), &profile())
        };
        let no_bfd = "bfd = { enabled = false }\n";
        let c = learned(&good, no_bfd).expect("learned");
        assert_eq!(c.tunnel.unwrap().paths[0].remote, None);
        assert_eq!(
            key_of(learned(&good, "")).unwrap_err().0,
            "tunnel.paths[0].bfd"
        );
        assert_eq!(
            key_of(learned("encryption = \"none\"\n", no_bfd))
                .unwrap_err()
                .0,
            "tunnel.paths[0].remote"
        );
        assert_eq!(
            key_of(learned(
                &good,
                "bfd = { enabled = false }\nnext_hop = \"10.0.3.1\"\n"
            ))
            .unwrap_err()
            .0,
            "tunnel.paths[0].next_hop"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (k, what) = key_of(with(&good)).unwrap_err();
        assert_eq!(k, "tunnel.private_key");
        assert!(what.contains("mode 0640"), "{what}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tunnel_errors_name_the_key() {
        let cases = [
            (
                "interface = \"wan\"",
                "interface = \"dmz\"",
                "tunnel.paths[0].interface",
            ),
            (
                "remote = \"10.0.2.2\"",
                "remote = \"10.0.2.1\"",
                "tunnel.paths[0].remote",
            ),
            (
                "remote = \"10.0.2.2\"",
                "remote = \"192.0.2.1\"",
                "tunnel.paths[0].remote",
            ),
            // A martian, and another port's subnet broadcast: a peer's
            // address may be neither (the receive fast pass relies on it).
            (
                "remote = \"10.0.2.2\"",
                "remote = \"240.0.0.1\"\nnext_hop = \"10.0.2.2\"",
                "tunnel.paths[0].remote",
            ),
            (
                "remote = \"10.0.2.2\"",
                "remote = \"10.0.1.255\"\nnext_hop = \"10.0.2.2\"",
                "tunnel.paths[0].remote",
            ),
            (
                "rate = \"30mbit\"",
                "rate = \"fast\"",
                "tunnel.paths[0].rate",
            ),
            ("id = 0", "id = 16", "tunnel.paths[0].id"),
            ("id = 0", "id = 0\nmtu = 600", "tunnel.paths[0].mtu"),
            ("10.9.0.0/16", "10.0.1.0/24", "tunnel.prefixes[0]"),
            ("10.9.0.0/16", "10.9.0.1/16", "tunnel.prefixes[0]"),
            ("10.9.0.0/16", "10.0.0.0/8", "tunnel.prefixes[0]"),
            (
                "scheduler = \"redundant\"",
                "scheduler = \"fastest\"",
                "tunnel.classes[0].scheduler",
            ),
            (
                "scheduler = \"redundant\"",
                "scheduler = \"source-subnet\"",
                "tunnel.classes[0].bindings",
            ),
            ("protocol = \"udp\", ", "", "tunnel.classes[0].match"),
            ("dscp = [46]", "dscp = [64]", "tunnel.classes[0].match.dscp"),
            (
                "dst_ports = \"5000-5100\"",
                "dst_ports = \"5100-5000\"",
                "tunnel.classes[0].match.dst_ports",
            ),
            (
                "name = \"voice\"",
                "name = \"voice\"\ncolour = 1",
                "tunnel.classes[0].colour",
            ),
            (
                "rate = \"30mbit\"",
                "rate = \"30mbit\"\nbfd = { detect_mult = 0 }",
                "tunnel.paths[0].bfd.detect_mult",
            ),
            (
                "rate = \"30mbit\"",
                "rate = \"30mbit\"\nbfd = { desired_min_tx = \"0ms\" }",
                "tunnel.paths[0].bfd.desired_min_tx",
            ),
            (
                "rate = \"30mbit\"",
                "rate = \"30mbit\"\nbfd = { interval = \"50ms\" }",
                "tunnel.paths[0].bfd.interval",
            ),
            (
                // The peer behind a router: single-hop BFD cannot reach it.
                "remote = \"10.0.2.2\"",
                "remote = \"192.0.2.1\"\nnext_hop = \"10.0.2.2\"",
                "tunnel.paths[0].bfd.multihop",
            ),
            (
                "prefixes = [",
                "max_hold_down = \"2h\"\nprefixes = [",
                "tunnel.max_hold_down",
            ),
            (
                "prefixes = [",
                "shaping = { rate_percent = 120 }\nprefixes = [",
                "tunnel.shaping.rate_percent",
            ),
            (
                "prefixes = [",
                "shaping = { target = \"200ms\", interval = \"100ms\" }\nprefixes = [",
                "tunnel.shaping.interval",
            ),
            (
                "prefixes = [",
                "shaping = { max_packets = 1000000 }\nprefixes = [",
                "tunnel.shaping.max_packets",
            ),
            (
                "prefixes = [",
                "shaping = { quantum = 1 }\nprefixes = [",
                "tunnel.shaping.quantum",
            ),
            (
                "name = \"voice\"",
                "name = \"voice\"\ntier = \"urgent\"",
                "tunnel.classes[0].tier",
            ),
        ];
        for (from, to, key) in cases {
            let text = tunnel_config_with(&TUNNEL.replacen(from, to, 1));
            assert_ne!(text, tunnel_config(), "{from} not in the config");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key, key, "{from} -> {to}: {e}");
        }
        let routed = GOOD.to_string() + TUNNEL;
        assert_eq!(
            parse(&routed).unwrap_err().key,
            "tunnel.prefixes[0]",
            "a prefix routed already"
        );
    }

    /// IPv6: interface addresses, routes, router advertisements and tunnel
    /// prefixes, each refusal naming its key.
    #[test]
    fn ipv6_errors_name_the_key() {
        const V6: &str = r#"
[[interfaces]]
port = "lan"
address = "10.0.1.1/24"
address6 = "fd00:1::1/64"
[interfaces.ra]
interval = 200
[[interfaces]]
port = "wan"
address = "10.0.2.1/24"
address6 = "fd00:2::1/64"
[[routes]]
prefix = "fd00:9::/48"
via = "fd00:2::2"
[[neighbors]]
address = "fd00:2::7"
mac = "02:00:00:00:00:07"
[tunnel]
prefixes = ["10.9.0.0/16", "fd00:8::/48"]
encryption = "none"
[[tunnel.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.0.2.2"
rate = "30mbit"
"#;
        let c = parse(V6).unwrap();
        assert_eq!(c.interfaces[0].ra.map(|r| r.interval), Some(200));
        // `show config` writes the IPv6 keys back as --check reads them.
        assert_eq!(parse(&c.to_toml().unwrap()).unwrap(), c);
        let cases = [
            ("fd00:2::1/64", "fd00:1::2/64", "interfaces[1].address6"),
            ("fd00:2::1/64", "fe80::1/64", "interfaces[1].address6"),
            ("fd00:2::1/64", "2001:db8::1/64", "interfaces[1].address6"),
            ("fd00:2::1/64", "fd00:2::/64", "interfaces[1].address6"),
            ("fd00:2::1/64", "ff02::1/64", "interfaces[1].address6"),
            (
                "interval = 200",
                "interval = 2",
                "interfaces[0].ra.interval",
            ),
            (
                "interval = 200",
                "interval = 200
router_lifetime = 100",
                "interfaces[0].ra.router_lifetime",
            ),
            (
                "interval = 200",
                "interval = 200
preferred_lifetime = 90000",
                "interfaces[0].ra.preferred_lifetime",
            ),
            (
                "address6 = \"fd00:1::1/64\"\n[interfaces.ra]",
                "[interfaces.ra]",
                "interfaces[0].ra",
            ),
            ("fd00:9::/48", "fd00:9::1/48", "routes[0].prefix"),
            ("fd00:9::/48", "fe80::/64", "routes[0].prefix"),
            (
                "via = \"fd00:2::2\"",
                "via = \"fd00:3::2\"",
                "routes[0].via",
            ),
            (
                "via = \"fd00:2::2\"",
                "via = \"fd00:2::1\"",
                "routes[0].via",
            ),
            ("via = \"fd00:2::2\"", "via = \"10.0.2.2\"", "routes[0].via"),
            ("fd00:2::7", "fd00:7::7", "neighbors[0].address"),
            ("fd00:2::7", "fd00:2::1", "neighbors[0].address"),
            ("\"fd00:8::/48\"", "\"fd00:1::/48\"", "tunnel.prefixes[1]"),
            ("\"fd00:8::/48\"", "\"fd00:9::/48\"", "tunnel.prefixes[1]"),
            ("\"fd00:8::/48\"", "\"2001:db8::/32\"", "tunnel.prefixes[1]"),
            // Paths that leave less than IPv6's 1280 inside (1300 - 48 in clear).
            (
                "rate = \"30mbit\"",
                "rate = \"30mbit\"\nmtu = 1300",
                "tunnel.prefixes[1]",
            ),
        ];
        for (from, to, key) in cases {
            let text = V6.replacen(from, to, 1);
            assert_ne!(text, V6, "{from} not in the config");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key, key, "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("port = \"wan\"", "port = \"dmz\"", "interfaces[1].port"),
            ("10.0.2.1/24", "10.0.1.2/24", "interfaces[1].address"),
            ("10.0.2.1/24", "10.0.2.0/24", "interfaces[1].address"),
            ("10.9.0.0/16", "10.9.1.0/16", "routes[0].prefix"),
            ("via = \"10.0.2.2\"", "via = \"10.7.0.1\"", "routes[0].via"),
            // Next hops that cannot be: ours, the subnet's network and broadcast.
            ("via = \"10.0.2.2\"", "via = \"10.0.2.1\"", "routes[0].via"),
            ("via = \"10.0.2.2\"", "via = \"10.0.2.0\"", "routes[0].via"),
            (
                "via = \"10.0.2.2\"",
                "via = \"10.0.2.255\"",
                "routes[0].via",
            ),
            // A static neighbour for our own address.
            (
                "address = \"10.0.2.2\"\nmac",
                "address = \"10.0.2.1\"\nmac",
                "neighbors[0].address",
            ),
            ("02:00:00:00:00:22", "zz", "neighbors[0].mac"),
            ("127.0.0.1:9999", "localhost", "control.metrics"),
            ("[control]", "[control]\nverbose = true", "control.verbose"),
            (
                "port = 6000",
                "port = 65536",
                "mcast_rules[0].outputs[0].port",
            ),
            ("ttl = 16", "ttl = 0", "mcast_rules[0].outputs[0].ttl"),
            ("239.1.1.1", "10.1.1.1", "mcast_rules[0].input.group"),
            (
                "address = \"10.0.1.1/24\"",
                "address = \"10.0.1.1\"",
                "interfaces[0].address",
            ),
        ];
        for (from, to, key) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "{from} is in the config");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key, key, "{from} -> {to}: {e}");
            assert!(e.to_string().starts_with("c.toml: key"), "{e}");
        }
    }
}
