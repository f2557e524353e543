//! Our own addresses, packed for the checks every packet goes through (is
//! it for us, is its source or destination a subnet broadcast): a few
//! words in one cache line instead of a walk over the interfaces.

use std::net::{Ipv4Addr, Ipv6Addr};

use arrayvec::ArrayVec;

use crate::config::MAX_PORTS;
use crate::interface::Interface;

/// One interface's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Own {
    address: u32,
    broadcast: u32,
    port: usize,
}

/// One interface's IPv6 addresses: its link-local one, its global one and
/// its subnet's Subnet-Router anycast address (0: none; all 0: IPv6 is off
/// on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Own6 {
    link_local: u128,
    global: u128,
    anycast: u128,
}

/// The addresses of the interfaces that have one, in port order, and every
/// port's IPv6 addresses by port index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnAddresses(ArrayVec<Own, MAX_PORTS>, ArrayVec<Own6, MAX_PORTS>);

impl OwnAddresses {
    /// Built from the interfaces by port index.
    pub fn of(interfaces: &[Interface]) -> Self {
        Self(
            interfaces
                .iter()
                .enumerate()
                .filter_map(|(port, i)| {
                    i.address.map(|a| Own {
                        address: u32::from(a.addr()),
                        broadcast: u32::from(a.broadcast()),
                        port,
                    })
                })
                .take(MAX_PORTS)
                .collect(),
            interfaces
                .iter()
                .map(|i| match i.address6 {
                    Some(a) => Own6 {
                        link_local: u128::from(i.link_local()),
                        global: u128::from(a.addr()),
                        anycast: i.subnet_router_anycast().map_or(0, u128::from),
                    },
                    // IPv6 is off on a port with no IPv6 address.
                    None => Own6 {
                        link_local: 0,
                        global: 0,
                        anycast: 0,
                    },
                })
                .take(MAX_PORTS)
                .collect(),
        )
    }

    /// The port index whose IPv6 address is `ip`, for a packet that arrived
    /// on `in_port` (`None`: from the tunnel or ourselves): a global or
    /// Subnet-Router anycast address of any port, or the arrival port's
    /// link-local one.
    #[inline]
    pub fn port_of6(&self, ip: Ipv6Addr, in_port: Option<usize>) -> Option<usize> {
        let ip = u128::from(ip);
        if ip == 0 {
            return None;
        }
        if let Some(p) = in_port {
            if self.1.get(p).is_some_and(|o| o.link_local == ip) {
                return Some(p);
            }
        }
        self.1
            .iter()
            .position(|o| o.global == ip || o.anycast == ip)
    }

    /// Whether `group` is the solicited-node group (ff02::1:ff00:0/104 and
    /// the low 24 bits, RFC 4291 §2.7.1) of one of port `port`'s IPv6
    /// addresses: link-local, global or Subnet-Router anycast.
    #[inline]
    pub fn is_solicited_node6(&self, group: Ipv6Addr, port: usize) -> bool {
        const PREFIX: u128 = 0xff02_0000_0000_0000_0000_0001_ff00_0000;
        let g = u128::from(group);
        let low = |a: u128| a & 0x00ff_ffff;
        g & !0x00ff_ffff == PREFIX
            && self.1.get(port).is_some_and(|o| {
                o.global != 0
                    && (low(o.link_local) == low(g)
                        || low(o.global) == low(g)
                        || o.anycast != 0 && low(o.anycast) == low(g))
            })
    }

    /// Whether `ip` is one of our IPv6 addresses on any port (a source we
    /// never take from the wire).
    #[inline]
    pub fn is_own6(&self, ip: Ipv6Addr) -> bool {
        let ip = u128::from(ip);
        ip != 0 && self.1.iter().any(|o| o.global == ip || o.link_local == ip)
    }

    /// The port index whose address is `ip`.
    #[inline]
    pub fn port_of(&self, ip: Ipv4Addr) -> Option<usize> {
        let ip = u32::from(ip);
        self.0.iter().find(|o| o.address == ip).map(|o| o.port)
    }

    /// Whether `ip` is the broadcast address of one of our subnets.
    #[inline]
    pub fn is_subnet_broadcast(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.0.iter().any(|o| o.broadcast == ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(address: Option<&str>) -> Interface {
        Interface::for_test(address, None)
    }

    #[test]
    fn ports_keep_their_index_when_one_has_no_address() {
        let own = OwnAddresses::of(&[
            iface(Some("10.0.1.1/24")),
            iface(None),
            iface(Some("10.0.2.1/30")),
        ]);
        assert_eq!(own.port_of(Ipv4Addr::new(10, 0, 1, 1)), Some(0));
        assert_eq!(own.port_of(Ipv4Addr::new(10, 0, 2, 1)), Some(2));
        assert_eq!(own.port_of(Ipv4Addr::new(10, 0, 2, 2)), None);
        assert!(own.is_subnet_broadcast(Ipv4Addr::new(10, 0, 1, 255)));
        assert!(own.is_subnet_broadcast(Ipv4Addr::new(10, 0, 2, 3)));
        assert!(!own.is_subnet_broadcast(Ipv4Addr::new(10, 0, 2, 255)));
    }

    /// The solicited-node groups of a port's addresses, as the wire layer
    /// makes them; another port's and a port without IPv6 are not.
    #[test]
    fn solicited_node_groups_of_a_port() {
        use crate::wire::ipv6::solicited_node;
        let with = Interface::for_test(None, Some("fd00:1::1:2:3/64"));
        let own = OwnAddresses::of(&[with.clone(), iface(Some("10.0.2.1/24"))]);
        let groups = [
            solicited_node("fd00:1::1:2:3".parse().unwrap()),
            solicited_node(with.link_local()),
            solicited_node("fd00:1::".parse().unwrap()),
        ];
        for g in groups {
            assert!(own.is_solicited_node6(g, 0), "{g}");
            assert!(!own.is_solicited_node6(g, 1), "{g}: port 1 has no IPv6");
        }
        assert!(!own.is_solicited_node6("ff02::1:ff99:9999".parse().unwrap(), 0));
        assert!(!own.is_solicited_node6("ff02::2:ff02:3".parse().unwrap(), 0));
    }
}
