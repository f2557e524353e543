//! What happens to one frame: a pure function from (tables, input port,
//! bytes) to a [`Verdict`], rewriting the frame in place when it is
//! forwarded. No DPDK here, so it runs under plain `cargo test` and fuzzing.
//!
//! Each check drops with its own [`DropReason`]; anything the workers cannot
//! finish alone (ARP, packets for us, ICMP errors, unresolved next hops) is
//! punted to the management lcore, which runs this same function again and
//! gets the same answer.

use std::net::Ipv4Addr;

pub use super::verdict::{Ingress, PuntReason, Verdict};
use crate::stats::DropReason;
use crate::tables::{NextHop, Tables, TUNNEL_PORT};
use crate::wire::ipv4::is_martian;
use crate::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, UdpPacket};

/// Classifies (and, for `Forward` and `TunnelTx`, rewrites) one frame that
/// arrived at `ingress`.
#[inline]
pub fn process(tables: &Tables, ingress: Ingress, frame: &mut [u8]) -> Verdict {
    let in_port = match ingress {
        Ingress::Port(p) => Some(p),
        Ingress::Tunnel(_) => None,
    };
    let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
        return Verdict::Drop(DropReason::EthTruncated);
    };
    let dst_mac = eth.dst_addr();
    let ethertype = eth.ethertype();
    if let Some(p) = in_port {
        let Some(iface) = tables.interfaces.get(p) else {
            return Verdict::Drop(DropReason::L2NotForUs);
        };
        if dst_mac.is_unicast() && dst_mac != iface.mac {
            return Verdict::Drop(DropReason::L2NotForUs);
        }
        if ethertype == EtherType::ARP {
            return Verdict::Punt(PuntReason::Arp);
        }
    }
    if ethertype == EtherType::IPV6 {
        return super::pipeline6::process6(tables, ingress, frame);
    }
    if ethertype != EtherType::IPV4 {
        return Verdict::Drop(DropReason::EthertypeUnsupported);
    }
    let l3 = &frame[EthernetFrame::<&[u8]>::HEADER_LEN..];
    let ip = match Ipv4Packet::new_checked(l3) {
        Ok(ip) => ip,
        Err(_) => return Verdict::Drop(ipv4_error(l3)),
    };
    // A packet out of the tunnel had its header checked when it was
    // decapsulated (before it could take a sequence number).
    if in_port.is_some() && !ip.verify_checksum() {
        return Verdict::Drop(DropReason::IpBadChecksum);
    }
    if ip.dst_addr().is_multicast() {
        return multicast(tables, mcast_input(ingress), &ip);
    }
    if ip.has_options() {
        return Verdict::Drop(DropReason::IpOptions);
    }
    if ip.is_fragment() {
        return Verdict::Drop(DropReason::IpFragment);
    }
    let (src, dst, ttl, proto) = (ip.src_addr(), ip.dst_addr(), ip.ttl(), ip.protocol());
    let (total_len, dont_frag) = (ip.total_len(), ip.dont_frag());
    if let Some(reason) = bad_source(tables, src) {
        return Verdict::Drop(reason);
    }
    let udp_dst_port = if proto == IpProtocol::UDP {
        match UdpPacket::new_checked(ip.payload()) {
            Ok(udp) => Some(udp.dst_port()),
            Err(_) => return Verdict::Drop(DropReason::UdpTruncated),
        }
    } else {
        None
    };
    if tables.local_port(dst).is_some() {
        let tunnel_port = udp_dst_port.is_some_and(|port| tables.is_tunnel_endpoint(dst, port));
        return match (tunnel_port, ingress) {
            (true, Ingress::Port(_)) => Verdict::TunnelRx,
            // Tunnel traffic inside the tunnel goes nowhere.
            (true, Ingress::Tunnel(_)) => Verdict::Drop(DropReason::TunnelLoop),
            (false, _) => Verdict::Punt(PuntReason::ToUs),
        };
    }
    if dst.is_broadcast() || tables.is_subnet_broadcast(dst) || !dst_mac.is_unicast() {
        return Verdict::Drop(DropReason::IpBroadcast);
    }
    if is_martian(dst) {
        return Verdict::Drop(DropReason::IpMartianDestination);
    }
    if ttl <= 1 {
        return Verdict::Punt(PuntReason::TtlExpired);
    }
    let Some(route) = tables.routes.lookup(dst) else {
        return Verdict::Punt(PuntReason::NoRoute);
    };
    let (next_hop, out) = match route.next_hop {
        NextHop::Connected { port } => (dst, port),
        NextHop::Gateway { via, port } => (via, port),
        NextHop::Tunnel(peer) => return into_tunnel(tables, peer, ingress, frame),
    };
    let Some(neighbor) = tables.neighbor_on(next_hop, out) else {
        return Verdict::Punt(PuntReason::NeighborMiss {
            next_hop,
            port: out,
        });
    };
    let Some(out_iface) = tables.interfaces.get(out) else {
        return Verdict::Punt(PuntReason::NoRoute);
    };
    if total_len > out_iface.mtu {
        // The appliance does not fragment (as for the tunnel).
        return if dont_frag {
            Verdict::Punt(PuntReason::TooBig { mtu: out_iface.mtu })
        } else {
            Verdict::Drop(DropReason::MtuExceededNoDf)
        };
    }
    rewrite_for_forwarding(frame, out_iface.mac, neighbor.mac);
    Verdict::Forward(out)
}

/// A packet routed to a peer site: not back to the peer it came from (a
/// hub forwards one spoke's packets to another), and no bigger than that
/// peer's inner MTU (the appliance does not fragment: DF gets ICMP
/// fragmentation needed, no DF is dropped).
#[inline]
fn into_tunnel(tables: &Tables, peer: u16, ingress: Ingress, frame: &mut [u8]) -> Verdict {
    let Some(t) = tables.peer(peer) else {
        return Verdict::Punt(PuntReason::NoRoute);
    };
    if ingress == Ingress::Tunnel(peer) {
        return Verdict::Drop(DropReason::TunnelLoop);
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[EthernetFrame::<&[u8]>::HEADER_LEN..]);
    if ip.total_len() > t.inner_mtu {
        return if ip.dont_frag() {
            Verdict::Punt(PuntReason::TunnelTooBig { mtu: t.inner_mtu })
        } else {
            Verdict::Drop(DropReason::TunnelMtuNoDf)
        };
    }
    ip.decrement_ttl();
    Verdict::TunnelTx(peer)
}

/// The port index multicast rules name as their input: the port, or
/// [`TUNNEL_PORT`] for packets that came out of the tunnel.
#[inline]
fn mcast_input(ingress: Ingress) -> usize {
    match ingress {
        Ingress::Port(p) => p,
        Ingress::Tunnel(_) => TUNNEL_PORT,
    }
}

/// A packet to a group: IGMP goes to the slow path; UDP that matches a rule
/// is relayed. Fragments and packets with IP options are not relayed:
/// counted against their rule when the UDP header says which (a first
/// fragment, or options), globally otherwise (later fragments carry no
/// port).
#[inline]
fn multicast(tables: &Tables, in_port: usize, ip: &Ipv4Packet<&[u8]>) -> Verdict {
    let src = ip.src_addr();
    if let Some(reason) = bad_source(tables, src) {
        return Verdict::Drop(reason);
    }
    match ip.protocol() {
        IpProtocol::IGMP => return Verdict::Punt(PuntReason::Igmp),
        IpProtocol::UDP => {}
        _ => return Verdict::Drop(DropReason::McastNoRule),
    }
    if ip.frag_offset() != 0 {
        return Verdict::Drop(DropReason::IpFragment);
    }
    // A first fragment holds only part of the datagram: the UDP length
    // field describes the whole, so read just the ports.
    let payload = ip.payload();
    if payload.len() < 8 {
        return Verdict::Drop(DropReason::UdpTruncated);
    }
    let dst_port = u16::from_be_bytes([payload[2], payload[3]]);
    let Some(rule) = tables.mcast.lookup(in_port, ip.dst_addr(), dst_port, src) else {
        return Verdict::Drop(DropReason::McastNoRule);
    };
    if ip.more_frags() {
        return Verdict::RelayDrop(rule, DropReason::IpFragment);
    }
    if ip.has_options() {
        return Verdict::RelayDrop(rule, DropReason::IpOptions);
    }
    if UdpPacket::new_checked(payload).is_err() {
        return Verdict::RelayDrop(rule, DropReason::UdpTruncated);
    }
    Verdict::Relay(rule)
}

/// Why a source address is refused before routing or relaying, if it is: a
/// martian or a directed broadcast of one of our subnets (RFC 1812 §5.3.7),
/// a group, or one of our own addresses (a loop, or a spoof).
#[inline]
pub(crate) fn bad_source(tables: &Tables, src: Ipv4Addr) -> Option<DropReason> {
    if is_martian(src) || tables.is_subnet_broadcast(src) {
        Some(DropReason::IpMartianSource)
    } else if src.is_multicast() || tables.local_port(src).is_some() {
        Some(DropReason::IpBadSource)
    } else {
        None
    }
}

/// Maps a failed IPv4 `new_checked` to the precise reason.
fn ipv4_error(l3: &[u8]) -> DropReason {
    if l3.len() < 20 {
        return DropReason::IpTruncated;
    }
    let version = l3[0] >> 4;
    let ihl = usize::from(l3[0] & 0x0f) * 4;
    if version != 4 || ihl < 20 {
        return DropReason::IpBadHeader;
    }
    if ihl > l3.len() {
        return DropReason::IpTruncated;
    }
    DropReason::IpBadTotalLength
}

/// New MACs and TTL - 1 with an incremental checksum update (RFC 1624).
#[inline]
fn rewrite_for_forwarding(frame: &mut [u8], src: MacAddr, dst: MacAddr) {
    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[EthernetFrame::<&[u8]>::HEADER_LEN..]);
    ip.decrement_ttl();
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::tables::{
        Interface, McastRule, McastTable, Neighbor, NextHop6, Route, Route6, Route6Table,
        RouteKind, RouteTable,
    };
    use etherparse::PacketBuilder;
    use hashbrown::HashMap;

    pub(crate) const LAN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    pub(crate) const WAN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    pub(crate) const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
    pub(crate) const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x20]);

    /// A LAN (10.0.1.1/24, fd00:1::1/64) and a WAN (10.0.2.1/24,
    /// fd00:2::1/64) port, a static route of each family through the
    /// WAN's gateway (10.0.2.2, fd00:2::2), resolved when
    /// `with_neighbor`, and a relay rule.
    pub(crate) fn tables(with_neighbor: bool) -> Tables {
        let interfaces = vec![
            Interface {
                name: "lan".into(),
                port_id: 0,
                mac: LAN_MAC,
                address: Some("10.0.1.1/24".parse().unwrap()),
                mtu: 1500,
                tx_ipv4_cksum: false,
                tx_udp_cksum: false,
                address6: Some("fd00:1::1/64".parse().unwrap()),
                kernel_iface: None,
            },
            Interface {
                name: "wan".into(),
                port_id: 1,
                mac: WAN_MAC,
                address: Some("10.0.2.1/24".parse().unwrap()),
                mtu: 1500,
                tx_ipv4_cksum: false,
                tx_udp_cksum: false,
                address6: Some("fd00:2::1/64".parse().unwrap()),
                kernel_iface: None,
            },
        ];
        let routes = RouteTable::new([
            Route {
                prefix: "10.0.1.0/24".parse().unwrap(),
                next_hop: NextHop::Connected { port: 0 },
                kind: RouteKind::Connected,
            },
            Route {
                prefix: "10.0.2.0/24".parse().unwrap(),
                next_hop: NextHop::Connected { port: 1 },
                kind: RouteKind::Connected,
            },
            Route {
                prefix: "10.9.0.0/16".parse().unwrap(),
                next_hop: NextHop::Gateway {
                    via: "10.0.2.2".parse().unwrap(),
                    port: 1,
                },
                kind: RouteKind::Static,
            },
        ]);
        let routes6 = Route6Table::new([
            Route6 {
                prefix: "fd00:1::/64".parse().unwrap(),
                next_hop: NextHop6::Connected { port: 0 },
                kind: RouteKind::Connected,
            },
            Route6 {
                prefix: "fd00:2::/64".parse().unwrap(),
                next_hop: NextHop6::Connected { port: 1 },
                kind: RouteKind::Connected,
            },
            Route6 {
                prefix: "fd00:9::/48".parse().unwrap(),
                next_hop: NextHop6::Gateway {
                    via: "fd00:2::2".parse().unwrap(),
                    port: 1,
                },
                kind: RouteKind::Static,
            },
        ]);
        let mut neighbors = HashMap::new();
        let mut neighbors6 = HashMap::new();
        if with_neighbor {
            let gw = Neighbor {
                mac: GW_MAC,
                port: 1,
            };
            neighbors.insert("10.0.2.2".parse().unwrap(), gw);
            neighbors6.insert(
                u128::from("fd00:2::2".parse::<std::net::Ipv6Addr>().unwrap()),
                gw,
            );
        }
        let spec: crate::config::mcast::McastRuleSpec = serde_json::from_str(
            r#"{"input":{"interface":"lan","group":"239.1.1.1","port":5000},
                "outputs":[{"interface":"wan","destination":"239.10.1.1","port":6000}]}"#,
        )
        .unwrap();
        let rule = McastRule::new(spec, 0, &[1], &[None, None], 1);
        Tables {
            version: 1,
            own: crate::tables::OwnAddresses::of(&interfaces),
            interfaces,
            routes: std::sync::Arc::new(routes),
            neighbors,
            routes6: std::sync::Arc::new(routes6),
            neighbors6,
            mcast: McastTable::new(vec![std::sync::Arc::new(rule)]),
            tunnels: std::sync::Arc::new([]),
            idle: crate::config::IdleConfig::default(),
        }
    }

    fn udp_to(dst: [u8; 4], dst_port: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(HOST_MAC, [1, 0, 0x5e, 1, 1, 1])
            .ipv4([10, 0, 1, 10], dst, 8)
            .udp(1000, dst_port);
        let mut v = Vec::new();
        b.write(&mut v, &[9u8; 40]).unwrap();
        v
    }

    #[test]
    fn multicast_verdicts() {
        let t = tables(true);
        let g = [239, 1, 1, 1];
        assert_eq!(
            process(&t, Ingress::Port(0), &mut udp_to(g, 5000)),
            Verdict::Relay(0)
        );
        assert_eq!(
            process(&t, Ingress::Port(0), &mut udp_to(g, 5001)),
            Verdict::Drop(DropReason::McastNoRule)
        );
        assert_eq!(
            process(&t, Ingress::Port(1), &mut udp_to(g, 5000)),
            Verdict::Drop(DropReason::McastNoRule),
            "a rule belongs to its input port"
        );
        let set_frag = |f: &mut Vec<u8>, word: u16| {
            f[20..22].copy_from_slice(&word.to_be_bytes());
            Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
        };
        let mut first = udp_to(g, 5000);
        set_frag(&mut first, 0x2000);
        assert_eq!(
            process(&t, Ingress::Port(0), &mut first),
            Verdict::RelayDrop(0, DropReason::IpFragment)
        );
        let mut later = udp_to(g, 5000);
        set_frag(&mut later, 0x0003);
        assert_eq!(
            process(&t, Ingress::Port(0), &mut later),
            Verdict::Drop(DropReason::IpFragment)
        );
        // Router Alert option on a matched stream.
        let f = udp_to(g, 5000);
        let mut o = f[..34].to_vec();
        o.extend_from_slice(&[0x94, 4, 0, 0]);
        o.extend_from_slice(&f[34..]);
        o[14] = 0x46;
        let tl = u16::from_be_bytes([o[16], o[17]]) + 4;
        o[16..18].copy_from_slice(&tl.to_be_bytes());
        Ipv4Packet::new_unchecked(&mut o[14..]).fill_checksum();
        assert_eq!(
            process(&t, Ingress::Port(0), &mut o),
            Verdict::RelayDrop(0, DropReason::IpOptions)
        );
        let mut igmp = o.clone();
        igmp[14 + 9] = 2;
        Ipv4Packet::new_unchecked(&mut igmp[14..]).fill_checksum();
        assert_eq!(
            process(&t, Ingress::Port(0), &mut igmp),
            Verdict::Punt(PuntReason::Igmp)
        );
        let mut own = udp_to(g, 5000);
        own[26..30].copy_from_slice(&[10, 0, 1, 1]);
        Ipv4Packet::new_unchecked(&mut own[14..]).fill_checksum();
        assert_eq!(
            process(&t, Ingress::Port(0), &mut own),
            Verdict::Drop(DropReason::IpBadSource),
            "our own copies never loop back in"
        );
    }

    fn udp(dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ttl: u8) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(HOST_MAC, dst_mac)
            .ipv4(src, dst, ttl)
            .udp(1000, 2000);
        let payload = [7u8; 32];
        let mut v = Vec::new();
        b.write(&mut v, &payload).unwrap();
        v
    }

    #[test]
    fn routed_packet_is_rewritten() {
        let t = tables(true);
        let mut f = udp(LAN_MAC.0, [10, 0, 1, 10], [10, 9, 1, 1], 64);
        assert_eq!(process(&t, Ingress::Port(0), &mut f), Verdict::Forward(1));
        let parsed = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let etherparse::LinkSlice::Ethernet2(eth) = parsed.link.unwrap() else {
            panic!()
        };
        assert_eq!(eth.destination(), GW_MAC.0);
        assert_eq!(eth.source(), WAN_MAC.0);
        let etherparse::NetSlice::Ipv4(ip) = parsed.net.unwrap() else {
            panic!()
        };
        assert_eq!(ip.header().ttl(), 63);
        let h = ip.header().to_header();
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "checksum stays valid"
        );
    }

    /// Larger than the outgoing port's MTU: never fragmented; with DF the
    /// sender is told the MTU.
    #[test]
    fn a_packet_above_the_outgoing_mtu_is_not_fragmented() {
        let mut t = tables(true);
        t.interfaces[1].mtu = 1400;
        let big = |df: bool| {
            let b = PacketBuilder::ethernet2(HOST_MAC, LAN_MAC.0)
                .ipv4([10, 0, 1, 10], [10, 9, 1, 1], 64)
                .udp(1000, 2000);
            let mut v = Vec::new();
            b.write(&mut v, &[7u8; 1380]).unwrap();
            v[20] = if df { 0x40 } else { 0 };
            Ipv4Packet::new_unchecked(&mut v[14..]).fill_checksum();
            v
        };
        assert_eq!(
            process(&t, Ingress::Port(0), &mut big(true)),
            Verdict::Punt(PuntReason::TooBig { mtu: 1400 })
        );
        assert_eq!(
            process(&t, Ingress::Port(0), &mut big(false)),
            Verdict::Drop(DropReason::MtuExceededNoDf)
        );
        let mut fits = big(true);
        fits.truncate(14 + 1400);
        fits[16..18].copy_from_slice(&1400u16.to_be_bytes());
        fits[38..40].copy_from_slice(&1372u16.to_be_bytes());
        Ipv4Packet::new_unchecked(&mut fits[14..]).fill_checksum();
        assert_eq!(
            process(&t, Ingress::Port(0), &mut fits),
            Verdict::Forward(1)
        );
    }

    #[test]
    fn punts_and_drops() {
        let t = tables(false);
        let v = |f: &mut Vec<u8>| process(&t, Ingress::Port(0), f);
        assert_eq!(
            v(&mut udp(LAN_MAC.0, [10, 0, 1, 10], [10, 9, 1, 1], 64)),
            Verdict::Punt(PuntReason::NeighborMiss {
                next_hop: "10.0.2.2".parse().unwrap(),
                port: 1
            })
        );
        assert_eq!(
            v(&mut udp(LAN_MAC.0, [10, 0, 1, 10], [10, 0, 1, 1], 64)),
            Verdict::Punt(PuntReason::ToUs)
        );
        assert_eq!(
            v(&mut udp(LAN_MAC.0, [10, 0, 1, 10], [10, 9, 1, 1], 1)),
            Verdict::Punt(PuntReason::TtlExpired)
        );
        assert_eq!(
            v(&mut udp(LAN_MAC.0, [10, 0, 1, 10], [192, 0, 2, 1], 64)),
            Verdict::Punt(PuntReason::NoRoute)
        );
        assert_eq!(
            v(&mut udp(
                [2, 9, 9, 9, 9, 9],
                [10, 0, 1, 10],
                [10, 9, 1, 1],
                64
            )),
            Verdict::Drop(DropReason::L2NotForUs)
        );
        assert_eq!(
            v(&mut udp(LAN_MAC.0, [10, 0, 1, 10], [239, 1, 1, 1], 64)),
            Verdict::Drop(DropReason::McastNoRule)
        );
        assert_eq!(
            v(&mut udp(LAN_MAC.0, [10, 0, 1, 10], [10, 0, 1, 255], 64)),
            Verdict::Drop(DropReason::IpBroadcast)
        );
        assert_eq!(
            v(&mut udp(LAN_MAC.0, [10, 0, 2, 1], [10, 9, 1, 1], 64)),
            Verdict::Drop(DropReason::IpBadSource)
        );
        assert_eq!(
            v(&mut vec![0u8; 10]),
            Verdict::Drop(DropReason::EthTruncated)
        );
    }

    /// RFC 1812 §5.3.7: martian sources are dropped before routing, relaying
    /// or answering (so no ICMP is ever sent about them); martian
    /// destinations are not routed.
    #[test]
    fn martians_are_dropped_before_routing_and_relaying() {
        let t = tables(true);
        let v = |f: &mut Vec<u8>| process(&t, Ingress::Port(0), f);
        let sources: [[u8; 4]; 8] = [
            [0, 0, 0, 0],
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [240, 0, 0, 1],
            [255, 255, 255, 254],
            [255, 255, 255, 255],
            [10, 0, 1, 255], // the broadcast of the subnet it arrived on
            [10, 0, 2, 255], // another connected subnet's
        ];
        for src in sources {
            for dst in [[10, 9, 1, 1], [10, 0, 1, 1], [192, 0, 2, 1]] {
                assert_eq!(
                    v(&mut udp(LAN_MAC.0, src, dst, 64)),
                    Verdict::Drop(DropReason::IpMartianSource),
                    "{src:?} -> {dst:?}"
                );
            }
            let mut m = udp_to([239, 1, 1, 1], 5000);
            m[26..30].copy_from_slice(&src);
            Ipv4Packet::new_unchecked(&mut m[14..]).fill_checksum();
            assert_eq!(
                v(&mut m),
                Verdict::Drop(DropReason::IpMartianSource),
                "relayed from {src:?}"
            );
        }
        for dst in [
            [0, 0, 0, 1],
            [127, 0, 0, 1],
            [240, 1, 2, 3],
            [255, 255, 255, 254],
        ] {
            assert_eq!(
                v(&mut udp(LAN_MAC.0, [10, 0, 1, 10], dst, 64)),
                Verdict::Drop(DropReason::IpMartianDestination),
                "{dst:?}"
            );
        }
        assert!(!is_martian(Ipv4Addr::new(1, 0, 0, 0)));
        assert!(!is_martian(Ipv4Addr::new(126, 255, 255, 255)));
        assert!(!is_martian(Ipv4Addr::new(239, 255, 255, 255)));
    }

    /// Malformed variants of a good frame, each with its reason.
    #[test]
    fn malformed_frames_have_reasons() {
        let t = tables(true);
        let good = udp(LAN_MAC.0, [10, 0, 1, 10], [10, 9, 1, 1], 64);
        let fix_csum = |f: &mut Vec<u8>| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.fill_checksum();
        };
        let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
        cases.push((good[..30].to_vec(), DropReason::IpTruncated));
        let mut f = good.clone();
        f[14] = 0x65; // version 6
        cases.push((f, DropReason::IpBadHeader));
        let mut f = good.clone();
        f[14] = 0x44; // IHL 4
        cases.push((f, DropReason::IpBadHeader));
        let mut f = good.clone();
        f[16..18].copy_from_slice(&2000u16.to_be_bytes());
        cases.push((f, DropReason::IpBadTotalLength));
        let mut f = good.clone();
        f[24] ^= 0xff;
        cases.push((f, DropReason::IpBadChecksum));
        let mut f = good.clone();
        f[20] = 0x20; // MF
        fix_csum(&mut f);
        cases.push((f, DropReason::IpFragment));
        let mut f = good.clone();
        f[38..40].copy_from_slice(&4u16.to_be_bytes()); // UDP length < 8
        cases.push((f, DropReason::UdpTruncated));
        let mut f = good.clone();
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes()); // a VLAN tag
        cases.push((f, DropReason::EthertypeUnsupported));
        // IP options: IHL 6 with a NOP option word inserted.
        let mut f = good[..34].to_vec();
        f.extend_from_slice(&[1, 1, 1, 0]);
        f.extend_from_slice(&good[34..]);
        f[14] = 0x46;
        let tl = u16::from_be_bytes([f[16], f[17]]) + 4;
        f[16..18].copy_from_slice(&tl.to_be_bytes());
        fix_csum(&mut f);
        cases.push((f, DropReason::IpOptions));
        for (i, (mut f, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                process(&t, Ingress::Port(0), &mut f),
                Verdict::Drop(want),
                "case {i}"
            );
        }
    }

    proptest::proptest! {
        /// No byte string panics the pipeline, and only forwarding changes bytes.
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), port in 0usize..3) {
            let t = tables(true);
            let before = bytes.clone();
            let v = process(&t, Ingress::Port(port), &mut bytes);
            if !matches!(v, Verdict::Forward(_)) {
                proptest::prop_assert_eq!(before, bytes);
            }
        }
    }
}
