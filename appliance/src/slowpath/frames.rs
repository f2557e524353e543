//! Frames the slow path sends: ARP, ICMP echo replies (rewritten in place)
//! and ICMP errors. Pure functions over byte buffers.

use std::net::Ipv4Addr;

use crate::wire::{
    icmpv4, ArpOp, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, MacAddr,
};

const ETH: usize = 14;
/// TTL of packets the appliance originates (Linux's default).
pub const OWN_TTL: u8 = 64;
/// Largest frame the builders here produce.
pub const MAX_BUILT: usize = ETH + 20 + 8 + 60 + 8;

/// Writes an Ethernet/ARP frame into `buf`; returns its length (42).
pub fn arp(buf: &mut [u8], eth_dst: MacAddr, repr: &ArpRepr) -> usize {
    let len = ETH + ArpPacket::<&[u8]>::LEN;
    let eth = EthernetRepr {
        src_addr: repr.source_hardware_addr,
        dst_addr: eth_dst,
        ethertype: EtherType::ARP,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..len]));
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[ETH..len]));
    len
}

/// A who-has request for `target` from `(mac, ip)`, broadcast.
pub fn arp_request(buf: &mut [u8], mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> usize {
    let repr = ArpRepr {
        operation: ArpOp::Request,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: MacAddr::ZERO,
        target_protocol_addr: target,
    };
    arp(buf, MacAddr::BROADCAST, &repr)
}

/// The reply to `request` for our `(mac, ip)`.
pub fn arp_reply(buf: &mut [u8], mac: MacAddr, request: &ArpRepr) -> usize {
    let repr = ArpRepr {
        operation: ArpOp::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: request.target_protocol_addr,
        target_hardware_addr: request.source_hardware_addr,
        target_protocol_addr: request.source_protocol_addr,
    };
    arp(buf, request.source_hardware_addr, &repr)
}

/// Turns an ICMP echo request to us (a frame that passed the pipeline) into
/// the reply, in place. Returns false if the ICMP part is malformed.
pub fn echo_reply_in_place(frame: &mut [u8], our_mac: MacAddr) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
        return false;
    };
    let peer_mac = eth.src_addr();
    let Ok(ip) = Ipv4Packet::new_checked(&frame[ETH..]) else {
        return false;
    };
    let (src, dst, hl, total) = (
        ip.src_addr(),
        ip.dst_addr(),
        ip.header_len(),
        usize::from(ip.total_len()),
    );
    if ip.protocol() != IpProtocol::ICMP {
        return false;
    }
    let icmp_range = ETH + hl..ETH + total;
    {
        let Ok(icmp) = Icmpv4Packet::new_checked(&frame[icmp_range.clone()]) else {
            return false;
        };
        if !matches!(Icmpv4Repr::parse(&icmp), Ok(Icmpv4Repr::EchoRequest { .. })) {
            return false;
        }
    }
    let mut icmp = Icmpv4Packet::new_unchecked(&mut frame[icmp_range]);
    icmp.set_msg_type(icmpv4::msg_type::ECHO_REPLY);
    icmp.fill_checksum();
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETH..]);
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(OWN_TTL);
    ip.fill_checksum();
    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    eth.set_dst_addr(peer_mac);
    eth.set_src_addr(our_mac);
    true
}

/// Which ICMP error to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Time exceeded in transit.
    TtlExpired,
    /// Destination unreachable with this code.
    Unreachable(u8),
    /// Destination unreachable, fragmentation needed and DF set, with the
    /// next-hop MTU (RFC 1191).
    FragNeeded(u16),
}

/// Builds an ICMP error about `offending` (a frame that arrived from
/// `peer_mac`), sent back to its source from our `(mac, ip)`. Returns the
/// frame length, or `None` if no error may be sent about it (RFC 1812
/// §4.3.2.7: not about ICMP errors, fragments, or broadcast/multicast).
pub fn icmp_error(
    buf: &mut [u8],
    mac: MacAddr,
    ip: Ipv4Addr,
    offending: &[u8],
    kind: IcmpError,
) -> Option<usize> {
    let eth = EthernetFrame::new_checked(offending).ok()?;
    let peer_mac = eth.src_addr();
    let orig = Ipv4Packet::new_checked(&offending[ETH..]).ok()?;
    // RFC 1812 §4.3.2.7: never about a packet whose source cannot be
    // answered (martian, multicast) or about a later fragment.
    if orig.src_addr().is_multicast()
        || crate::wire::ipv4::is_martian(orig.src_addr())
        || orig.dst_addr().is_broadcast()
        || orig.is_fragment()
    {
        return None;
    }
    if orig.protocol() == IpProtocol::ICMP {
        // Never an error about an error (an echo is fine).
        let t = orig.payload().first().copied()?;
        if !matches!(
            t,
            icmpv4::msg_type::ECHO_REQUEST | icmpv4::msg_type::ECHO_REPLY
        ) {
            return None;
        }
    }
    let quote_len = (orig.header_len() + 8).min(usize::from(orig.total_len()));
    let invoking = &offending[ETH..ETH + quote_len];
    let icmp = match kind {
        IcmpError::TtlExpired => Icmpv4Repr::TimeExceeded {
            code: icmpv4::code::TTL_EXPIRED_IN_TRANSIT,
            invoking,
        },
        IcmpError::Unreachable(code) => Icmpv4Repr::DstUnreachable { code, invoking },
        IcmpError::FragNeeded(_) => Icmpv4Repr::DstUnreachable {
            code: icmpv4::code::FRAG_NEEDED,
            invoking,
        },
    };
    let ip_repr = Ipv4Repr {
        src_addr: ip,
        dst_addr: orig.src_addr(),
        protocol: IpProtocol::ICMP,
        payload_len: icmp.buffer_len(),
        ttl: OWN_TTL,
        dscp: 0,
        ident: 0,
        dont_frag: false,
    };
    let len = ETH + Ipv4Repr::HEADER_LEN + icmp.buffer_len();
    if buf.len() < len {
        return None;
    }
    let buf = &mut buf[..len];
    EthernetRepr {
        src_addr: mac,
        dst_addr: peer_mac,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut *buf));
    ip_repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[ETH..]));
    let mut packet = Icmpv4Packet::new_unchecked(&mut buf[ETH + Ipv4Repr::HEADER_LEN..]);
    icmp.emit(&mut packet);
    if let IcmpError::FragNeeded(mtu) = kind {
        packet.set_next_hop_mtu(mtu);
        packet.fill_checksum();
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket};

    const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    #[test]
    fn echo_reply_is_valid_and_addressed_back() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], OURS.0)
            .ipv4([10, 0, 1, 9], [10, 0, 1, 1], 64)
            .icmpv4_echo_request(7, 3);
        let mut f = Vec::new();
        b.write(&mut f, b"hello").unwrap();
        assert!(echo_reply_in_place(&mut f, OURS));
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
            panic!()
        };
        assert_eq!(ip.header().source(), [10, 0, 1, 1]);
        assert_eq!(ip.header().destination(), [10, 0, 1, 9]);
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = p.transport else {
            panic!()
        };
        assert!(
            matches!(icmp.icmp_type(), etherparse::Icmpv4Type::EchoReply(e) if e.id == 7 && e.seq == 3)
        );
        assert_eq!(icmp.payload(), b"hello");
        let computed = icmp.icmp_type().calc_checksum(icmp.payload());
        assert_eq!(icmp.checksum(), computed);
    }

    #[test]
    fn time_exceeded_quotes_header_and_8_bytes() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], OURS.0)
            .ipv4([10, 0, 1, 9], [10, 9, 0, 1], 1)
            .udp(5, 6);
        let mut f = Vec::new();
        b.write(&mut f, &[0xab; 40]).unwrap();
        let mut out = [0u8; MAX_BUILT];
        let n = icmp_error(
            &mut out,
            OURS,
            "10.0.1.1".parse().unwrap(),
            &f,
            IcmpError::TtlExpired,
        )
        .unwrap();
        assert_eq!(n, 14 + 20 + 8 + 28);
        let p = SlicedPacket::from_ethernet(&out[..n]).unwrap();
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = p.transport else {
            panic!()
        };
        assert!(matches!(
            icmp.icmp_type(),
            etherparse::Icmpv4Type::TimeExceeded(_)
        ));
        assert_eq!(&icmp.payload()[..28], &f[14..42]);
    }

    #[test]
    fn no_error_about_an_error() {
        let mut inner = [0u8; 70];
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], OURS.0)
            .ipv4([10, 0, 1, 9], [10, 9, 0, 1], 1)
            .icmpv4_raw(3, 1, [0; 4]);
        let mut f = Vec::new();
        b.write(&mut f, &[0; 28]).unwrap();
        assert!(icmp_error(
            &mut inner,
            OURS,
            "10.0.1.1".parse().unwrap(),
            &f,
            IcmpError::TtlExpired
        )
        .is_none());
    }

    #[test]
    fn arp_reply_answers_request() {
        let mut buf = [0u8; 64];
        let n = arp_request(
            &mut buf,
            MacAddr([2, 0, 0, 0, 0, 9]),
            "10.0.1.9".parse().unwrap(),
            "10.0.1.1".parse().unwrap(),
        );
        let req = ArpRepr::parse(&ArpPacket::new_checked(&buf[14..n]).unwrap()).unwrap();
        let mut out = [0u8; 64];
        let m = arp_reply(&mut out, OURS, &req);
        let rep = ArpRepr::parse(&ArpPacket::new_checked(&out[14..m]).unwrap()).unwrap();
        assert_eq!(rep.operation, ArpOp::Reply);
        assert_eq!(rep.source_hardware_addr, OURS);
        assert_eq!(
            rep.source_protocol_addr,
            "10.0.1.1".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(rep.target_hardware_addr, MacAddr([2, 0, 0, 0, 0, 9]));
        assert_eq!(&out[0..6], &[2, 0, 0, 0, 0, 9]);
    }
}
