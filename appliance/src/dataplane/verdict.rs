//! What the pipeline says about a frame ([`Verdict`]), why it hands one to
//! the management lcore ([`PuntReason`]) and where the frame came from
//! ([`Ingress`]): shared by both families' pipelines
//! ([`super::pipeline`], [`super::pipeline6`]) and by everything that acts on
//! their verdicts.

use crate::stats::DropReason;

/// Why a packet goes to the management lcore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PuntReason {
    /// ARP for the slow path to answer or learn from.
    Arp,
    /// Addressed to one of our addresses.
    ToUs,
    /// TTL would reach zero: needs ICMP time exceeded.
    TtlExpired,
    /// No route: needs ICMP unreachable.
    NoRoute,
    /// IGMP (queries for the appliance as a group member on this port).
    Igmp,
    /// IPv6 next hop not resolved yet: hold it and solicit it.
    NeighborMiss6 {
        /// The next hop to resolve.
        next_hop: std::net::Ipv6Addr,
        /// The port index to resolve it on.
        port: usize,
    },
    /// Next hop not resolved yet: hold it and ARP.
    NeighborMiss {
        /// The next hop to resolve.
        next_hop: std::net::Ipv4Addr,
        /// The port index to resolve it on.
        port: usize,
    },
    /// Bigger than the outgoing port's MTU (IPv4 with DF set, or IPv6,
    /// which routers never fragment): needs ICMP fragmentation needed or
    /// ICMPv6 packet too big with this MTU.
    TooBig {
        /// The outgoing port's MTU.
        mtu: u16,
    },
    /// Bigger than the tunnel's inner MTU with DF set: needs ICMP
    /// fragmentation needed with this next-hop MTU.
    TunnelTooBig {
        /// The tunnel's inner MTU.
        mtu: u16,
    },
}

/// Where a frame entered the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// Received on this port index.
    Port(usize),
    /// Decapsulated from the tunnel, sent by this peer (index in
    /// `tables.tunnels`; its Ethernet header is the outer frame's, so layer 2
    /// is not checked again).
    Tunnel(u16),
}

/// The `port` field of an mbuf decapsulated from the tunnel is this plus
/// the peer's index, so the slow path, which runs the pipeline again on
/// what it is punted, sees the same ingress (DPDK port ids stay far below).
const TUNNEL_PORT_ID_BASE: u16 = 0xc000;

// Every peer's index fits below the mark.
const _: () = assert!(crate::config::tunnel::MAX_PEERS <= 0x3fff);

impl Ingress {
    /// The `port` field an mbuf decapsulated from `peer` is marked with.
    #[inline]
    pub fn tunnel_port_id(peer: u16) -> u16 {
        TUNNEL_PORT_ID_BASE | (peer & 0x3fff)
    }

    /// The peer a port id of [`Self::tunnel_port_id`] names, if it is one.
    #[inline]
    pub fn tunnel_peer_of(port_id: u16) -> Option<u16> {
        let peer = port_id & 0x3fff;
        (port_id & TUNNEL_PORT_ID_BASE == TUNNEL_PORT_ID_BASE
            && usize::from(peer) < crate::config::tunnel::MAX_PEERS)
            .then_some(peer)
    }
}

/// The outcome for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten in place; send on this port index.
    Forward(usize),
    /// Hand to the management lcore.
    Punt(PuntReason),
    /// Matches multicast rule `rule` (index in `tables.mcast.rules`):
    /// republish it; the frame is unchanged.
    Relay(u32),
    /// Matches multicast rule `rule` but cannot be relayed: count it
    /// against the rule as well.
    RelayDrop(u32, DropReason),
    /// For one of our tunnel endpoints: the tunnel stage takes it.
    TunnelRx,
    /// Routed into the tunnel to this peer (index in `tables.tunnels`; TTL
    /// already decremented): its sender classifies, schedules and
    /// encapsulates it.
    TunnelTx(u16),
    /// Free it and count the reason.
    Drop(DropReason),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decapsulated packet's mark names its peer back; a real port id, or
    /// an id beyond the peers (0xffff: no port), names none.
    #[test]
    fn a_tunnel_port_id_names_its_peer_and_nothing_else_does() {
        let last = crate::config::tunnel::MAX_PEERS as u16 - 1;
        for peer in [0, 1, last] {
            assert_eq!(
                Ingress::tunnel_peer_of(Ingress::tunnel_port_id(peer)),
                Some(peer)
            );
        }
        for id in [0, 1, 63, 0xffff, Ingress::tunnel_port_id(last + 1)] {
            assert_eq!(Ingress::tunnel_peer_of(id), None, "{id:#x}");
        }
    }
}
