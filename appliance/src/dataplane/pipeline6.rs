//! The pipeline's IPv6 branch ([`super::pipeline::process`] hands it every
//! frame of Ethertype 0x86DD): the same verdicts as IPv4, from the checks an
//! IPv6 router makes (RFC 8200, RFC 4291's scopes, RFC 4861's link-local
//! control traffic).
//!
//! IPv6 is on for a port that has an IPv6 address (`address6`), as a
//! router's `ipv6 address` turns it on; elsewhere IPv6 frames are dropped
//! (`ip6_disabled`) and the appliance sends none. Out of the tunnel, IPv6
//! is routed as it is from a port; into it, as IPv4 is (the tunnel's
//! prefixes of either family are its routes).
//!
//! What a frame goes through, in order, each refusal with its own
//! [`DropReason`]:
//! 1. the fixed header (version, payload length within the frame) and the
//!    extension-header walk with its policy ([`crate::wire::ipv6::walk`]);
//! 2. multicast: Neighbor Discovery for us (to the solicited-node group of
//!    one of our addresses on the arrival port, to all nodes, to all
//!    routers) goes to the management lcore; any other group is dropped (no
//!    IPv6 relay yet);
//! 3. the source: ours or multicast, then martians;
//! 4. to one of our addresses (a global one, a subnet's Subnet-Router
//!    anycast address, or the arrival port's link-local one): punted;
//! 5. martian destinations, link-local sources that would leave their link;
//! 6. hop limit, route (longest-prefix match), neighbour: what the workers
//!    cannot finish is punted (ICMPv6 errors, Neighbor Solicitation);
//! 7. no bigger than the outgoing port's MTU (a router never fragments
//!    IPv6: packet too big instead, RFC 8201);
//! 8. forwarded with new MACs and the hop limit less one (IPv6 has no header
//!    checksum to mend).

use crate::stats::DropReason;
use crate::tables::{NextHop6, Tables};
use crate::wire::ipv6::{
    is_link_local_unicast, is_martian_destination, is_martian_source, next_header, walk,
    Ipv6Packet, Upper, ALL_NODES, ALL_ROUTERS,
};
use crate::wire::EthernetFrame;

use super::verdict::{Ingress, PuntReason, Verdict};

/// Classifies (and, for `Forward`, rewrites) one IPv6 frame that arrived at
/// `ingress`; the Ethernet header is checked already.
#[inline]
pub(super) fn process6(tables: &Tables, ingress: Ingress, frame: &mut [u8]) -> Verdict {
    let in_port = match ingress {
        Ingress::Port(p) => Some(p),
        Ingress::Tunnel(_) => None,
    };
    if in_port.is_some_and(|p| {
        tables
            .interfaces
            .get(p)
            .is_none_or(|i| i.address6.is_none())
    }) {
        return Verdict::Drop(DropReason::Ip6Disabled);
    }
    let l3 = &frame[EthernetFrame::<&[u8]>::HEADER_LEN..];
    let ip = match Ipv6Packet::new_checked(l3) {
        Ok(ip) => ip,
        Err(_) if l3.len() >= Ipv6Packet::<&[u8]>::HEADER_LEN && l3[0] >> 4 != 6 => {
            return Verdict::Drop(DropReason::Ip6BadHeader)
        }
        Err(_) => return Verdict::Drop(DropReason::Ip6Truncated),
    };
    let Ok(chain) = walk(&ip) else {
        return Verdict::Drop(DropReason::Ip6ExtHeader);
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if dst.is_multicast() {
        return match in_port {
            Some(p) => multicast6(tables, p, &ip, chain.upper),
            // Groups are not carried across the tunnel in IPv6 (yet).
            None => Verdict::Drop(DropReason::Ip6Multicast),
        };
    }
    if frame[0] & 1 == 1 && in_port.is_some() {
        // A unicast packet in a broadcast or multicast frame: not routed,
        // and no error about it (RFC 4443 §2.4(e.3)).
        return Verdict::Drop(DropReason::Ip6L2Multicast);
    }
    if src.is_multicast() || tables.own.is_own6(src) {
        return Verdict::Drop(DropReason::IpBadSource);
    }
    if is_martian_source(&src) {
        return Verdict::Drop(DropReason::Ip6MartianSource);
    }
    if tables.local_port6(dst, in_port).is_some() {
        return Verdict::Punt(PuntReason::ToUs);
    }
    if is_martian_destination(&dst) {
        return Verdict::Drop(DropReason::Ip6MartianDestination);
    }
    if is_link_local_unicast(&src) {
        return Verdict::Drop(DropReason::Ip6LinkLocalSource);
    }
    if ip.hop_limit() <= 1 {
        return Verdict::Punt(PuntReason::TtlExpired);
    }
    let Some(route) = tables.routes6.lookup(dst) else {
        return Verdict::Punt(PuntReason::NoRoute);
    };
    let (next_hop, out) = match route.next_hop {
        NextHop6::Connected { port } => (dst, port),
        NextHop6::Gateway { via, port } => (via, port),
        NextHop6::Tunnel(peer) => return into_tunnel6(tables, peer, ingress, frame),
    };
    let Some(neighbor) = tables.neighbor6_on(next_hop, out) else {
        return Verdict::Punt(PuntReason::NeighborMiss6 {
            next_hop,
            port: out,
        });
    };
    let Some(out_iface) = tables.interfaces.get(out) else {
        return Verdict::Punt(PuntReason::NoRoute);
    };
    if Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len()) > usize::from(out_iface.mtu)
    {
        return Verdict::Punt(PuntReason::TooBig { mtu: out_iface.mtu });
    }
    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    eth.set_dst_addr(neighbor.mac);
    eth.set_src_addr(out_iface.mac);
    let mut ip = Ipv6Packet::new_unchecked(&mut frame[EthernetFrame::<&[u8]>::HEADER_LEN..]);
    ip.set_hop_limit(ip.hop_limit() - 1);
    Verdict::Forward(out)
}

/// An IPv6 packet routed to a peer site: not back to the peer it came
/// from, and no bigger than that peer's inner MTU (packet too big otherwise:
/// IPv6 is never fragmented on the way).
#[inline]
fn into_tunnel6(tables: &Tables, peer: u16, ingress: Ingress, frame: &mut [u8]) -> Verdict {
    let Some(t) = tables.peer(peer) else {
        return Verdict::Punt(PuntReason::NoRoute);
    };
    if ingress == Ingress::Tunnel(peer) {
        return Verdict::Drop(DropReason::TunnelLoop);
    }
    let mut ip = Ipv6Packet::new_unchecked(&mut frame[EthernetFrame::<&[u8]>::HEADER_LEN..]);
    if Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len()) > usize::from(t.inner_mtu) {
        return Verdict::Punt(PuntReason::TunnelTooBig { mtu: t.inner_mtu });
    }
    ip.set_hop_limit(ip.hop_limit() - 1);
    Verdict::TunnelTx(peer)
}

/// A packet to an IPv6 group: ICMPv6 to the solicited-node group of one of
/// our addresses on the arrival port (its Subnet-Router anycast address
/// included), to all nodes or to all routers is
/// Neighbor Discovery for the management lcore (a Duplicate Address
/// Detection probe from `::`, or an advertisement from one of our own
/// addresses, included: either may be about our address); anything else is
/// dropped.
#[inline]
fn multicast6(tables: &Tables, in_port: usize, ip: &Ipv6Packet<&[u8]>, upper: Upper) -> Verdict {
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    // `::` is Duplicate Address Detection's source; one of our own addresses
    // is how another node answers our detection probe (or claims our address
    // later): the slow path judges both.
    if !src.is_unspecified() && is_martian_source(&src) {
        return Verdict::Drop(DropReason::Ip6MartianSource);
    }
    let for_us =
        dst == ALL_NODES || dst == ALL_ROUTERS || tables.own.is_solicited_node6(dst, in_port);
    // ICMPv6 after any extension headers: MLD queries ride behind a
    // Hop-by-Hop header (Router Alert).
    let icmpv6 =
        matches!(upper, Upper::Protocol { protocol, .. } if protocol.0 == next_header::ICMPV6);
    if for_us && icmpv6 {
        Verdict::Punt(PuntReason::ToUs)
    } else {
        Verdict::Drop(DropReason::Ip6Multicast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::pipeline::process;
    use crate::dataplane::pipeline::tests::{tables, GW_MAC, HOST_MAC, LAN_MAC, WAN_MAC};
    use crate::wire::ipv6::multicast_mac;
    use etherparse::PacketBuilder;
    use std::net::Ipv6Addr;

    fn a(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    fn udp6(dst_mac: [u8; 6], src: &str, dst: &str, hop_limit: u8) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(HOST_MAC, dst_mac)
            .ipv6(a(src), a(dst), hop_limit)
            .udp(1000, 2000);
        let mut v = Vec::new();
        b.write(&mut v, &[7u8; 32]).unwrap();
        v
    }

    fn on_lan(t: &Tables, f: &mut [u8]) -> Verdict {
        process(t, Ingress::Port(0), f)
    }

    #[test]
    fn a_routed_packet_gets_new_macs_and_one_hop_less() {
        let t = tables(true);
        let mut f = udp6(LAN_MAC.0, "fd00:1::10", "fd00:9::5", 64);
        let before = f.clone();
        assert_eq!(on_lan(&t, &mut f), Verdict::Forward(1));
        assert_eq!(&f[..6], &GW_MAC.0);
        assert_eq!(&f[6..12], &WAN_MAC.0);
        assert_eq!(f[14 + 7], 63);
        assert_eq!(f[12..14 + 7], before[12..14 + 7]);
        assert_eq!(f[14 + 8..], before[14 + 8..], "nothing else changes");
        // Connected: straight to the host, once it is resolved.
        let mut f = udp6(LAN_MAC.0, "fd00:1::10", "fd00:2::2", 64);
        assert_eq!(on_lan(&t, &mut f), Verdict::Forward(1));
    }

    #[test]
    fn a_packet_above_the_outgoing_mtu_gets_packet_too_big() {
        let mut t = tables(true);
        t.interfaces[1].mtu = 1280;
        let mut f = udp6(LAN_MAC.0, "fd00:1::10", "fd00:9::5", 64);
        let payload = 1280 - 40 - 8 + 1;
        let b = PacketBuilder::ethernet2(HOST_MAC, LAN_MAC.0)
            .ipv6(a("fd00:1::10"), a("fd00:9::5"), 64)
            .udp(1000, 2000);
        let mut big = Vec::new();
        b.write(&mut big, &vec![7u8; payload]).unwrap();
        assert_eq!(
            on_lan(&t, &mut big),
            Verdict::Punt(PuntReason::TooBig { mtu: 1280 })
        );
        assert_eq!(on_lan(&t, &mut f), Verdict::Forward(1));
    }

    #[test]
    fn what_the_workers_cannot_finish_is_punted() {
        let t = tables(false);
        assert_eq!(
            on_lan(&t, &mut udp6(LAN_MAC.0, "fd00:1::10", "fd00:9::5", 64)),
            Verdict::Punt(PuntReason::NeighborMiss6 {
                next_hop: "fd00:2::2".parse().unwrap(),
                port: 1
            })
        );
        assert_eq!(
            on_lan(&t, &mut udp6(LAN_MAC.0, "fd00:1::10", "fd00:9::5", 1)),
            Verdict::Punt(PuntReason::TtlExpired)
        );
        assert_eq!(
            on_lan(&t, &mut udp6(LAN_MAC.0, "fd00:1::10", "2a00::1", 64)),
            Verdict::Punt(PuntReason::NoRoute)
        );
        // Ours: a global address of any port, the link-local one of the port it came in on,
        // a subnet's Subnet-Router anycast address.
        for dst in [
            "fd00:1::1",
            "fd00:2::1",
            "fe80::ff:fe00:1",
            "fd00:1::",
            "fd00:2::",
        ] {
            assert_eq!(
                on_lan(&t, &mut udp6(LAN_MAC.0, "fd00:1::10", dst, 64)),
                Verdict::Punt(PuntReason::ToUs),
                "{dst}"
            );
        }
        assert_eq!(
            on_lan(&t, &mut udp6(LAN_MAC.0, "fe80::10", "fe80::ff:fe00:2", 64)),
            Verdict::Drop(DropReason::Ip6MartianDestination),
            "the WAN port's link-local address is not on the LAN's link"
        );
    }

    #[test]
    fn neighbor_discovery_for_us_is_punted_and_other_groups_dropped() {
        let t = tables(true);
        let ns_to = |group: &str, src: &str| {
            let g: Ipv6Addr = group.parse().unwrap();
            let b = PacketBuilder::ethernet2(HOST_MAC, multicast_mac(g).0)
                .ipv6(a(src), g.octets(), 255)
                .icmpv6_echo_request(1, 1);
            let mut v = Vec::new();
            b.write(&mut v, &[]).unwrap();
            v
        };
        // fd00:1::1's and fe80::ff:fe00:1's solicited-node groups (the low 24 bits).
        assert_eq!(
            on_lan(&t, &mut ns_to("ff02::1:ff00:1", "fd00:1::10")),
            Verdict::Punt(PuntReason::ToUs)
        );
        assert_eq!(
            on_lan(&t, &mut ns_to("ff02::1", "fe80::10")),
            Verdict::Punt(PuntReason::ToUs)
        );
        assert_eq!(
            on_lan(&t, &mut ns_to("ff02::1:ff00:1", "::")),
            Verdict::Punt(PuntReason::ToUs),
            "another node's duplicate address detection may be about our address"
        );
        assert_eq!(
            on_lan(&t, &mut ns_to("ff02::1", "fd00:1::1")),
            Verdict::Punt(PuntReason::ToUs),
            "another node answering our duplicate address detection for fd00:1::1"
        );
        // Behind a Hop-by-Hop header (an MLD query's Router Alert): still ICMPv6 for us.
        let mut hbh = ns_to("ff02::1", "fe80::10");
        hbh[14 + 6] = 0;
        hbh.splice(54..54, crate::wire::mld::HOP_BY_HOP_ROUTER_ALERT);
        let len = u16::from_be_bytes([hbh[18], hbh[19]]) + 8;
        hbh[18..20].copy_from_slice(&len.to_be_bytes());
        assert_eq!(on_lan(&t, &mut hbh), Verdict::Punt(PuntReason::ToUs));
        assert_eq!(
            on_lan(&t, &mut ns_to("ff02::2", "fe80::10")),
            Verdict::Punt(PuntReason::ToUs),
            "router solicitations"
        );
        for group in ["ff02::1:ff00:10", "ff02::16", "ff02::1:2", "ff0e::1234"] {
            assert_eq!(
                on_lan(&t, &mut ns_to(group, "fe80::10")),
                Verdict::Drop(DropReason::Ip6Multicast),
                "{group}"
            );
        }
    }

    #[test]
    fn refused_packets_have_their_reasons() {
        let t = tables(true);
        let good = udp6(LAN_MAC.0, "fd00:1::10", "fd00:9::5", 64);
        let cases: Vec<(Vec<u8>, DropReason)> = vec![
            (good[..50].to_vec(), DropReason::Ip6Truncated),
            (
                {
                    let mut f = good.clone();
                    f[14] = 0x45;
                    f
                },
                DropReason::Ip6BadHeader,
            ),
            (
                {
                    let mut f = good.clone();
                    f[18..20].copy_from_slice(&2000u16.to_be_bytes());
                    f
                },
                DropReason::Ip6Truncated,
            ),
            (
                udp6(LAN_MAC.0, "::1", "fd00:9::5", 64),
                DropReason::Ip6MartianSource,
            ),
            (
                udp6(LAN_MAC.0, "2001:db8::1", "fd00:9::5", 64),
                DropReason::Ip6MartianSource,
            ),
            (
                udp6(LAN_MAC.0, "fd00:2::1", "fd00:9::5", 64),
                DropReason::IpBadSource,
            ),
            (
                udp6(LAN_MAC.0, "fd00:1::10", "2001:db8::5", 64),
                DropReason::Ip6MartianDestination,
            ),
            (
                udp6(LAN_MAC.0, "fe80::10", "fd00:9::5", 64),
                DropReason::Ip6LinkLocalSource,
            ),
            (
                udp6([2, 9, 9, 9, 9, 9], "fd00:1::10", "fd00:9::5", 64),
                DropReason::L2NotForUs,
            ),
            (
                udp6([0xff; 6], "fd00:1::10", "fd00:9::5", 64),
                DropReason::Ip6L2Multicast,
            ),
            (
                udp6([0x33, 0x33, 0, 0, 0, 1], "fd00:1::10", "fd00:1::1", 64),
                DropReason::Ip6L2Multicast,
            ),
        ];
        for (i, (mut f, want)) in cases.into_iter().enumerate() {
            let before = f.clone();
            assert_eq!(on_lan(&t, &mut f), Verdict::Drop(want), "case {i}");
            assert_eq!(f, before, "case {i}: a dropped frame is not touched");
        }
        // A type 0 routing header with segments left (RFC 5095).
        let mut f = good[..54].to_vec();
        f[20] = next_header::ROUTING;
        f.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 0]);
        f.extend_from_slice(&good[54..]);
        let len = u16::from_be_bytes([f[18], f[19]]) + 8;
        f[18..20].copy_from_slice(&len.to_be_bytes());
        assert_eq!(on_lan(&t, &mut f), Verdict::Drop(DropReason::Ip6ExtHeader));
    }

    proptest::proptest! {
        /// No IPv6 frame panics the pipeline, and only forwarding changes bytes.
        #[test]
        fn arbitrary_ipv6_never_panics(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160),
            port in 0usize..3,
        ) {
            let t = tables(true);
            let mut f = udp6(LAN_MAC.0, "fd00:1::10", "fd00:9::5", 64)[..14].to_vec();
            f.extend_from_slice(&body);
            let before = f.clone();
            let v = process(&t, Ingress::Port(port), &mut f);
            if !matches!(v, Verdict::Forward(_)) {
                proptest::prop_assert_eq!(before, f);
            }
        }
    }
}
