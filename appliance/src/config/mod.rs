//! What the box is (`hw-profiles/*.toml`, [`HwProfile`]) and what it does
//! (`configs/*.toml`, [`Config`]).
//!
//! Both are parsed strictly: unknown keys are errors, and every error names
//! the file, the key and what was expected, so an operator can fix it
//! without reading code. Loading never touches DPDK.

mod appliance;
mod hw_profile;
pub mod mcast;
pub mod tunnel;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};

pub use appliance::{
    Config, ControlConfig, InterfaceConfig, LogConfig, LogLevel, NeighborConfig, RaConfig,
    RouteConfig, SlowPathConfig,
};
pub use hw_profile::{instance_name, HEADER_DATA_ROOM, MAX_PORTS};
pub use hw_profile::{
    Driver, EalConfig, HugePages, HwProfile, IdleConfig, MempoolConfig, MgmtPriority, PollMode,
    PortProfile,
};

/// A configuration error: which file, which key, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file that was read.
    pub file: PathBuf,
    /// Dotted path of the offending key (`ports[1].iface`), or `-` for the
    /// file as a whole.
    pub key: String,
    /// What was expected, or what is wrong.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: key `{}`: {}",
            self.file.display(),
            self.key,
            self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub(crate) fn new(file: &Path, key: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            key: key.into(),
            expected: expected.into(),
        }
    }
}

/// Parses TOML text into `T`, mapping any error to the key path it is at.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let key = if path == "." || path.is_empty() {
            "-".to_string()
        } else {
            path
        };
        // toml's message carries a line/column excerpt; keep the first line,
        // which holds the reason, and add the line number.
        let inner = err.into_inner();
        let line = inner
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let reason = inner
            .message()
            .lines()
            .next()
            .unwrap_or("invalid value")
            .to_string();
        let expected = match line {
            Some(l) => format!("{reason} (line {l})"),
            None => reason,
        };
        ConfigError::new(file, key, expected)
    })
}

/// Reads a file for [`parse_toml`].
pub(crate) fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file)
        .map_err(|e| ConfigError::new(file, "-", format!("a readable TOML file ({e})")))
}

/// Why `ip` cannot be a next hop (or a neighbour) given our interface
/// addresses `ours`: it must be on one of their subnets, and be neither our
/// own address there nor the subnet's network or broadcast address. `None`
/// when it can be.
pub fn next_hop_problem(ours: impl IntoIterator<Item = Ipv4Net>, ip: Ipv4Addr) -> Option<String> {
    let Some(net) = ours.into_iter().find(|n| n.contains(&ip)) else {
        return Some(format!("{ip} is on no connected subnet"));
    };
    if ip == net.addr() {
        Some(format!("{ip} is our own address"))
    } else if ip == net.network() {
        Some(format!("{ip} is the network address of {}", net.trunc()))
    } else if ip == net.broadcast() {
        Some(format!("{ip} is the broadcast address of {}", net.trunc()))
    } else {
        None
    }
}

/// [`next_hop_problem`] for IPv6: `ip` must be on one of our global
/// subnets `ours` and not our own address there (a link-local next hop
/// would need its interface named, which routes do not do yet).
pub fn next_hop6_problem(ours: impl IntoIterator<Item = Ipv6Net>, ip: Ipv6Addr) -> Option<String> {
    let Some(net) = ours.into_iter().find(|n| n.contains(&ip)) else {
        return Some(format!("{ip} is on no connected IPv6 subnet"));
    };
    if ip == net.addr() {
        Some(format!("{ip} is our own address"))
    } else if ip == net.network() {
        Some(format!(
            "{ip} is the subnet-router anycast address of {}",
            net.trunc()
        ))
    } else {
        None
    }
}
