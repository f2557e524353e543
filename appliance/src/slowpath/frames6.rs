//! IPv6 frames the slow path sends: Neighbor Solicitations and
//! Advertisements, echo replies and ICMPv6 errors. Pure functions over byte
//! buffers, like [`super::frames`] for IPv4.

use std::net::Ipv6Addr;

use crate::wire::icmpv6::{na_flags, Icmpv6Packet, Icmpv6Repr};
use crate::wire::ipv6::{
    is_martian_source, multicast_mac, next_header, solicited_node, walk, Ipv6Packet, Ipv6Repr,
    Upper,
};
use crate::wire::mld::{Record, ReportRepr, ALL_MLDV2_ROUTERS, HOP_BY_HOP_ROUTER_ALERT};
use crate::wire::{EtherType, EthernetFrame, EthernetRepr, IpProtocol, MacAddr};

use super::frames::{IcmpError, OWN_TTL};

const ETH: usize = 14;
const IP6: usize = 40;
/// Largest frame the builders here produce: an error fills the IPv6
/// minimum MTU.
pub const MAX_BUILT6: usize = ETH + 1280;
/// Hop limit of Neighbor Discovery messages (RFC 4861 §7.1: a receiver
/// drops one with less, so it cannot have come from off the link).
const ND_HOP_LIMIT: u8 = 255;

/// Writes an Ethernet/IPv6/ICMPv6 frame carrying `icmp` into `buf`;
/// returns its length, or `None` if `buf` is too short.
fn icmpv6_frame(
    buf: &mut [u8],
    (mac, eth_dst): (MacAddr, MacAddr),
    (src, dst): (Ipv6Addr, Ipv6Addr),
    hop_limit: u8,
    icmp: &Icmpv6Repr<'_>,
) -> Option<usize> {
    let icmp_len = icmp.buffer_len();
    let len = ETH + IP6 + icmp_len;
    let buf = buf.get_mut(..len)?;
    EthernetRepr {
        src_addr: mac,
        dst_addr: eth_dst,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut *buf));
    Ipv6Repr {
        src,
        dst,
        next_header: next_header::ICMPV6,
        payload_len: u16::try_from(icmp_len).ok()?,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut buf[ETH..]);
    icmp.emit(&mut buf[ETH + IP6..], &src, &dst);
    Some(len)
}

/// A Neighbor Solicitation for `target` from our `(mac, src)`: to its
/// solicited-node group (resolution), or with `unicast` to the address
/// itself at the MAC we hold for it (unreachability detection, RFC 4861
/// §7.3.3).
pub fn neighbor_solicit(
    buf: &mut [u8],
    mac: MacAddr,
    src: Ipv6Addr,
    target: Ipv6Addr,
    unicast: Option<MacAddr>,
) -> Option<usize> {
    let (dst, eth_dst) = match unicast {
        Some(m) => (target, m),
        None => {
            let group = solicited_node(target);
            (group, multicast_mac(group))
        }
    };
    let ns = Icmpv6Repr::NeighborSolicit {
        target,
        source_lladdr: Some(mac),
    };
    icmpv6_frame(buf, (mac, eth_dst), (src, dst), ND_HOP_LIMIT, &ns)
}

/// Duplicate Address Detection's probe for `target` (RFC 4862 §5.4.2):
/// from `::`, with no link-layer address option, to its solicited-node
/// group.
pub fn dad_probe(buf: &mut [u8], mac: MacAddr, target: Ipv6Addr) -> Option<usize> {
    let group = solicited_node(target);
    let ns = Icmpv6Repr::NeighborSolicit {
        target,
        source_lladdr: None,
    };
    icmpv6_frame(
        buf,
        (mac, multicast_mac(group)),
        (Ipv6Addr::UNSPECIFIED, group),
        ND_HOP_LIMIT,
        &ns,
    )
}

/// A Neighbor Advertisement that our `target` is at `mac`, as a router,
/// overriding what the receiver holds (unless `anycast`: RFC 4861 §7.2.7):
/// to `(dst, eth_dst)` (the soliciting node), or unsolicited to all nodes.
pub fn neighbor_advert(
    buf: &mut [u8],
    mac: MacAddr,
    target: Ipv6Addr,
    to: Option<(Ipv6Addr, MacAddr)>,
    anycast: bool,
) -> Option<usize> {
    let (dst, eth_dst, solicited) = match to {
        Some((ip, m)) => (ip, m, na_flags::SOLICITED),
        None => {
            let all = crate::wire::ipv6::ALL_NODES;
            (all, multicast_mac(all), 0)
        }
    };
    let override_flag = if anycast { 0 } else { na_flags::OVERRIDE };
    let na = Icmpv6Repr::NeighborAdvert {
        flags: na_flags::ROUTER | override_flag | solicited,
        target,
        target_lladdr: Some(mac),
    };
    icmpv6_frame(buf, (mac, eth_dst), (target, dst), ND_HOP_LIMIT, &na)
}

/// A router advertisement `ra` from our `(mac, link_local)` to all nodes
/// (RFC 4861 §4.2: from the link-local address, hop limit 255).
pub fn router_advert(
    buf: &mut [u8],
    mac: MacAddr,
    link_local: Ipv6Addr,
    ra: &Icmpv6Repr<'_>,
) -> Option<usize> {
    let all = crate::wire::ipv6::ALL_NODES;
    icmpv6_frame(
        buf,
        (mac, multicast_mac(all)),
        (link_local, all),
        ND_HOP_LIMIT,
        ra,
    )
}

/// An MLDv2 report of `records` from our `(mac, link_local)` to all
/// MLDv2-capable routers (RFC 9777 §5.2.13–§5.2.14: hop limit 1, a
/// link-local source, behind a Hop-by-Hop header with Router Alert).
pub fn mld_report(
    buf: &mut [u8],
    mac: MacAddr,
    link_local: Ipv6Addr,
    records: &[Record],
) -> Option<usize> {
    let dst = ALL_MLDV2_ROUTERS;
    let report = ReportRepr { records };
    let hbh = HOP_BY_HOP_ROUTER_ALERT.len();
    let len = ETH + IP6 + hbh + report.buffer_len();
    let buf = buf.get_mut(..len)?;
    EthernetRepr {
        src_addr: mac,
        dst_addr: multicast_mac(dst),
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut *buf));
    Ipv6Repr {
        src: link_local,
        dst,
        next_header: next_header::HOP_BY_HOP,
        payload_len: u16::try_from(hbh + report.buffer_len()).ok()?,
        hop_limit: 1,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut buf[ETH..]);
    buf[ETH + IP6..ETH + IP6 + hbh].copy_from_slice(&HOP_BY_HOP_ROUTER_ALERT);
    report.emit(&mut buf[ETH + IP6 + hbh..], &link_local, &dst);
    Some(len)
}

/// The echo reply to `request` (an echo request to us that passed the
/// pipeline), from `src` (the address it was sent to, or ours on the link
/// when it went to a group).
pub fn echo_reply6(buf: &mut [u8], mac: MacAddr, src: Ipv6Addr, request: &[u8]) -> Option<usize> {
    let eth = EthernetFrame::new_checked(request).ok()?;
    let ip = Ipv6Packet::new_checked(request.get(ETH..)?).ok()?;
    let Upper::Protocol { protocol, offset } = walk(&ip).ok()?.upper else {
        return None;
    };
    if protocol != IpProtocol(next_header::ICMPV6) {
        return None;
    }
    let packet = Icmpv6Packet::new_checked(ip.payload().get(offset..)?).ok()?;
    let Icmpv6Repr::EchoRequest {
        ident,
        seq_no,
        data,
    } = Icmpv6Repr::parse(&packet, &ip.src_addr(), &ip.dst_addr()).ok()?
    else {
        return None;
    };
    let reply = Icmpv6Repr::EchoReply {
        ident,
        seq_no,
        data,
    };
    icmpv6_frame(
        buf,
        (mac, eth.src_addr()),
        (src, ip.src_addr()),
        OWN_TTL,
        &reply,
    )
}

/// Builds the ICMPv6 error `kind` about `offending` (a frame that arrived
/// from the neighbour it names), sent back to its source from our
/// `(mac, src)`. `None` when none may be sent (RFC 4443 §2.4(e): not about
/// an ICMPv6 error, not about a packet to a group unless it is too big, not
/// to a source that cannot be answered).
pub fn icmp6_error(
    buf: &mut [u8],
    mac: MacAddr,
    src: Ipv6Addr,
    offending: &[u8],
    kind: IcmpError,
) -> Option<usize> {
    let eth = EthernetFrame::new_checked(offending).ok()?;
    let l3 = offending.get(ETH..)?;
    let orig = Ipv6Packet::new_checked(l3).ok()?;
    let (osrc, odst) = (orig.src_addr(), orig.dst_addr());
    if is_martian_source(&osrc) {
        return None;
    }
    if odst.is_multicast() && !matches!(kind, IcmpError::FragNeeded(_)) {
        return None;
    }
    if let Ok(chain) = walk(&orig) {
        if let Upper::Protocol { protocol, offset } = chain.upper {
            let first = orig.payload().get(offset).copied();
            if protocol == IpProtocol(next_header::ICMPV6) && first.is_none_or(|t| t < 128) {
                return None;
            }
        }
    }
    let invoking = &l3[..IP6 + usize::from(orig.payload_len())];
    let icmp = match kind {
        IcmpError::TtlExpired => Icmpv6Repr::TimeExceeded { code: 0, invoking },
        IcmpError::FragNeeded(mtu) => Icmpv6Repr::PacketTooBig {
            mtu: u32::from(mtu),
            invoking,
        },
        IcmpError::Unreachable(code) => Icmpv6Repr::DstUnreachable {
            code: unreachable_code(code),
            invoking,
        },
    };
    icmpv6_frame(buf, (mac, eth.src_addr()), (src, osrc), OWN_TTL, &icmp)
}

/// ICMPv6's destination-unreachable code for ICMP's (RFC 4443 §3.1): no
/// route (0), address unreachable (3: Neighbor Discovery failed), port
/// unreachable (4).
fn unreachable_code(icmpv4_code: u8) -> u8 {
    use crate::wire::icmpv4::code;
    match icmpv4_code {
        code::HOST_UNREACHABLE => 3,
        code::PORT_UNREACHABLE | code::PROTOCOL_UNREACHABLE => 4,
        _ => 0,
    }
}

/// Whether `frame` is an IPv6 frame (by its Ethertype).
pub fn is_ipv6(frame: &[u8]) -> bool {
    EthernetFrame::new_checked(frame).is_ok_and(|e| e.ethertype() == EtherType::IPV6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv6Type, PacketBuilder, SlicedPacket, TransportSlice};

    const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const HOST: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn icmp_of(frame: &[u8]) -> (etherparse::Ipv6Header, Icmpv6Type, Vec<u8>) {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
            panic!("not IPv6")
        };
        let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("not ICMPv6")
        };
        let h = ip.header().to_header();
        let payload = icmp.payload().to_vec();
        // etherparse recomputes the checksum over the pseudo header.
        assert_eq!(
            icmp.icmp_type()
                .calc_checksum(h.source, h.destination, icmp.payload())
                .unwrap(),
            icmp.checksum()
        );
        (h, icmp.icmp_type(), payload)
    }

    #[test]
    fn a_solicitation_goes_to_the_solicited_node_group_with_our_mac() {
        let mut buf = [0u8; MAX_BUILT6];
        let src = addr("fe80::1");
        let n = neighbor_solicit(&mut buf, OURS, src, addr("fd00:1::abcd:1234"), None).unwrap();
        assert_eq!(&buf[..6], &[0x33, 0x33, 0xff, 0xcd, 0x12, 0x34]);
        let (h, t, payload) = icmp_of(&buf[..n]);
        assert_eq!(h.destination, addr("ff02::1:ffcd:1234").octets());
        assert_eq!(h.hop_limit, 255);
        assert!(matches!(t, Icmpv6Type::Unknown { type_u8: 135, .. }));
        assert_eq!(&payload[..16], &addr("fd00:1::abcd:1234").octets());
        assert_eq!(
            &payload[16..18],
            &[1, 1],
            "source link-layer address option"
        );
        assert_eq!(&payload[18..24], &OURS.0);
    }

    #[test]
    fn an_advertisement_answers_as_a_router_and_overrides() {
        let mut buf = [0u8; MAX_BUILT6];
        let to = (addr("fd00:1::9"), MacAddr(HOST));
        let n = neighbor_advert(&mut buf, OURS, addr("fd00:1::1"), Some(to), false).unwrap();
        assert_eq!(&buf[..6], &HOST);
        let (h, t, payload) = icmp_of(&buf[..n]);
        assert_eq!(h.source, addr("fd00:1::1").octets());
        let Icmpv6Type::Unknown {
            type_u8: 136,
            bytes5to8,
            ..
        } = t
        else {
            panic!("not an advertisement: {t:?}")
        };
        assert_eq!(bytes5to8[0], 0xe0, "router, solicited, override");
        assert_eq!(&payload[..16], &addr("fd00:1::1").octets());
        assert_eq!(
            &payload[16..18],
            &[2, 1],
            "target link-layer address option"
        );
        assert_eq!(&payload[18..24], &OURS.0);
    }

    #[test]
    fn echo_reply_and_errors_are_addressed_back() {
        let b = PacketBuilder::ethernet2(HOST, OURS.0)
            .ipv6(addr("fd00:1::9").octets(), addr("fd00:1::1").octets(), 64)
            .icmpv6_echo_request(7, 3);
        let mut f = Vec::new();
        b.write(&mut f, b"hello").unwrap();
        let mut buf = [0u8; MAX_BUILT6];
        let n = echo_reply6(&mut buf, OURS, addr("fd00:1::1"), &f).unwrap();
        let (h, t, payload) = icmp_of(&buf[..n]);
        assert_eq!(h.destination, addr("fd00:1::9").octets());
        assert!(matches!(t, Icmpv6Type::EchoReply(e) if e.id == 7 && e.seq == 3));
        assert_eq!(payload, b"hello");

        let n = icmp6_error(&mut buf, OURS, addr("fd00:1::1"), &f, IcmpError::TtlExpired).unwrap();
        let (h, t, payload) = icmp_of(&buf[..n]);
        assert_eq!(h.destination, addr("fd00:1::9").octets());
        assert!(matches!(t, Icmpv6Type::TimeExceeded(_)));
        assert_eq!(payload, &f[ETH..], "the whole offending packet is quoted");
        let n = icmp6_error(
            &mut buf,
            OURS,
            addr("fd00:1::1"),
            &f,
            IcmpError::FragNeeded(1400),
        )
        .unwrap();
        assert!(matches!(
            icmp_of(&buf[..n]).1,
            Icmpv6Type::PacketTooBig { mtu: 1400 }
        ));

        // Never an error about an error.
        let err = buf[..n].to_vec();
        assert!(icmp6_error(
            &mut buf,
            OURS,
            addr("fd00:1::1"),
            &err,
            IcmpError::TtlExpired
        )
        .is_none());
    }

    /// An MLDv2 report as etherparse reads it: Hop-by-Hop with Router Alert,
    /// hop limit 1, to ff02::16 at 33:33:00:00:00:16, the checksum right.
    #[test]
    fn an_mld_report_rides_behind_router_alert() {
        use crate::wire::mld::record_type;
        let mut buf = [0u8; MAX_BUILT6];
        let records = [Record {
            kind: record_type::CHANGE_TO_EXCLUDE,
            group: addr("ff02::2"),
        }];
        let n = mld_report(&mut buf, OURS, addr("fe80::1"), &records).unwrap();
        assert_eq!(&buf[..6], &[0x33, 0x33, 0, 0, 0, 0x16]);
        let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
            panic!("not IPv6")
        };
        let h = ip.header().to_header();
        assert_eq!((h.hop_limit, h.next_header.0), (1, 0));
        let exts = ip.extensions();
        let hbh = exts.first_header().unwrap();
        assert_eq!(hbh.0, 0, "hop-by-hop first");
        let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("not ICMPv6")
        };
        assert!(matches!(
            icmp.icmp_type(),
            Icmpv6Type::Unknown { type_u8: 143, .. }
        ));
        assert_eq!(
            icmp.icmp_type()
                .calc_checksum(h.source, h.destination, icmp.payload())
                .unwrap(),
            icmp.checksum()
        );
    }

    #[test]
    fn an_error_quote_is_cut_to_fit_1280() {
        let b = PacketBuilder::ethernet2(HOST, OURS.0)
            .ipv6(addr("fd00:1::9").octets(), addr("fd00:2::9").octets(), 1)
            .udp(1000, 2000);
        let mut f = Vec::new();
        b.write(&mut f, &[7u8; 1400]).unwrap();
        let mut buf = [0u8; MAX_BUILT6];
        let n = icmp6_error(&mut buf, OURS, addr("fd00:1::1"), &f, IcmpError::TtlExpired).unwrap();
        assert_eq!(n, ETH + 1280);
        icmp_of(&buf[..n]);
    }
}
