//! One interface of the box as the data plane sees it: its port, MAC,
//! address and offloads, and how to tell whether it has carrier. Below the
//! tables and the tunnel, which both describe things in terms of it.

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::wire::MacAddr;

/// An interface of the box as the data plane sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Interface {
    /// Port name from the profile.
    pub name: String,
    /// DPDK port id.
    pub port_id: u16,
    /// Our MAC on it.
    #[serde(serialize_with = "ser_display")]
    pub mac: MacAddr,
    /// Our address and subnet, if it has one.
    pub address: Option<Ipv4Net>,
    /// The port computes IPv4 header checksums on transmit.
    pub tx_ipv4_cksum: bool,
    /// The port computes UDP checksums on transmit.
    pub tx_udp_cksum: bool,
    /// The Linux interface behind an `af_xdp` port: DPDK's driver reports a
    /// link that is always up, so its carrier is read from the kernel
    /// instead. (The af_packet driver reports the kernel's carrier itself.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_iface: Option<String>,
}

impl Interface {
    /// Whether the port has carrier: the kernel's view for a port on a Linux
    /// interface, else the PMD's link status (unknown counts as up). Reads a
    /// file or asks the driver: management lcore only.
    pub fn has_carrier(&self) -> bool {
        if let Some(iface) = &self.kernel_iface {
            // `carrier` reads 1 or 0, and fails (EINVAL) while the interface
            // is administratively down. Absent: not this namespace's sysfs.
            match std::fs::read_to_string(format!("/sys/class/net/{iface}/carrier")) {
                Ok(s) => return s.trim() == "1",
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return false,
                Err(_) => {}
            }
        }
        dpdk_bindings::port::link(self.port_id).map_or(true, |l| l.up)
    }
}

fn ser_display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
