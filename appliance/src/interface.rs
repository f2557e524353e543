//! One interface of the box as the data plane sees it: its port, MAC,
//! address and offloads, and how to tell whether it has carrier. Below the
//! tables and the tunnel, which both describe things in terms of it.

use std::net::Ipv6Addr;

use ipnet::{Ipv4Net, Ipv6Net};
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
    /// Our global IPv6 address and subnet, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Net>,
    /// The largest IP packet the port sends (its MTU).
    pub mtu: u16,
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
    /// The Subnet-Router anycast address of its IPv6 subnet (RFC 4291
    /// §2.6.1: the prefix with a zero interface identifier), which a router
    /// answers on every subnet it is on; none on a /127 (RFC 6164 §6) or
    /// /128, or without IPv6.
    pub fn subnet_router_anycast(&self) -> Option<std::net::Ipv6Addr> {
        self.address6
            .filter(|a| a.prefix_len() < 127)
            .map(|a| a.network())
    }

    /// A port for tests: MAC 02:00:00:00:00:01, MTU 1500, no offloads, the
    /// addresses given (`"10.0.1.1/24"`, `"fd00:1::1/64"`).
    ///
    /// # Panics
    /// An address that does not parse.
    #[cfg(test)]
    pub fn for_test(address: Option<&str>, address6: Option<&str>) -> Interface {
        Interface {
            name: "lan".into(),
            port_id: 0,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            address: address.map(|a| a.parse().expect("an IPv4 prefix")),
            address6: address6.map(|a| a.parse().expect("an IPv6 prefix")),
            mtu: 1500,
            tx_ipv4_cksum: false,
            tx_udp_cksum: false,
            kernel_iface: None,
        }
    }

    /// Our IPv6 link-local address on it: fe80::/64 with the interface
    /// identifier made from the MAC (modified EUI-64, RFC 4291 appendix A),
    /// as Linux derives it by default, so a neighbour can predict it.
    pub fn link_local(&self) -> Ipv6Addr {
        link_local_of(self.mac)
    }

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

/// The modified EUI-64 link-local address of `mac` (RFC 4291 appendix A:
/// ff:fe in the middle, the universal/local bit flipped).
pub fn link_local_of(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address Linux gives a veth with this MAC (`ip -6 addr` on a fresh one).
    #[test]
    fn link_local_is_modified_eui64() {
        assert_eq!(
            link_local_of(MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55])),
            "fe80::11:22ff:fe33:4455".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            link_local_of(MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }
}
