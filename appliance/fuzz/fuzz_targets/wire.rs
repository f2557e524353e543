//! Feeds arbitrary bytes through every `new_checked` + `Repr::parse` chain of
//! `appliance::wire` (Ethernet -> ARP | IPv4 -> ICMP / UDP / IGMP; IPv6 and its
//! extension-header walk) and checks
//! the module contract: nothing panics once `new_checked` has succeeded, and
//! whatever parses re-emits to something that parses to the same value.
//!
//! The same bytes are also tried directly as an IPv4 packet, because random
//! input rarely carries the right EtherType and the IP layer is where the
//! interesting length fields are.

#![no_main]

use std::net::Ipv4Addr;

use appliance::wire::igmp::{self, IgmpVersion};
use appliance::wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use appliance::wire::ipv6;
use appliance::wire::{
    ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    IgmpPacket, IgmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ethernet(data);
    ipv4(data);
    ipv4(&with_valid_checksums(data));
    ipv6(data);
});

/// An IPv6 header and its extension-header walk: nothing panics once `new_checked` has
/// succeeded, and the fixed header re-emits to the same bytes.
fn ipv6(data: &[u8]) {
    let Ok(packet) = ipv6::Ipv6Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = ipv6::Ipv6Repr::parse(&packet) else {
        panic!("a checked IPv6 header must parse");
    };
    let mut out = [0u8; 40];
    repr.emit(&mut out);
    assert_eq!(&out[..], &data[..40]);
    if let Ok(ipv6::Chain {
        upper:
            ipv6::Upper::Protocol {
                protocol: IpProtocol(58),
                offset,
            },
        ..
    }) = ipv6::walk(&packet)
    {
        let icmp = &packet.payload()[offset..];
        if let Ok(p) = Icmpv6Packet::new_checked(icmp) {
            let _ = Icmpv6Repr::parse(&p, &repr.src, &repr.dst);
        }
    }
}

/// The input with its IPv4 and transport checksums recomputed. Random bytes
/// almost never carry a valid checksum, so without this every `Repr::parse`
/// past the IP layer would stop at `BadChecksum` and go unexercised.
fn with_valid_checksums(data: &[u8]) -> Vec<u8> {
    let mut copy = data.to_vec();
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut copy[..]) else {
        return copy;
    };
    ip.fill_checksum();
    let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let payload = ip.payload_mut();
    match protocol {
        IpProtocol::ICMP => {
            if let Ok(mut p) = Icmpv4Packet::new_checked(payload) {
                p.fill_checksum();
            }
        }
        IpProtocol::IGMP => {
            if let Ok(mut p) = IgmpPacket::new_checked(payload) {
                p.fill_checksum();
            }
        }
        IpProtocol::UDP => {
            if let Ok(mut p) = UdpPacket::new_checked(payload) {
                p.fill_checksum(src, dst);
            }
        }
        _ => {}
    }
    copy
}

fn ethernet(data: &[u8]) {
    let _ = EthernetRepr::parse(&EthernetFrame::new_unchecked(data));
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = (
        frame.dst_addr(),
        frame.src_addr(),
        frame.dst_addr().is_unicast(),
    );
    let Ok(repr) = EthernetRepr::parse(&frame) else {
        panic!("a checked Ethernet frame must parse");
    };
    let mut out = [0u8; 14];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..14]);

    match repr.ethertype {
        EtherType::ARP => arp(frame.payload()),
        EtherType::IPV4 => ipv4(frame.payload()),
        _ => {}
    }
}

fn arp(data: &[u8]) {
    let _ = ArpRepr::parse(&ArpPacket::new_unchecked(data));
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    let _ = (
        packet.operation(),
        packet.source_hardware_addr(),
        packet.source_protocol_addr(),
        packet.target_hardware_addr(),
        packet.target_protocol_addr(),
    );
    let Ok(repr) = ArpRepr::parse(&packet) else {
        panic!("a checked ARP packet must parse");
    };
    let mut out = [0u8; 28];
    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..28]);
}

fn ipv4(data: &[u8]) {
    let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(data));
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        packet.dscp(),
        packet.ecn(),
        packet.ident(),
        packet.dont_frag(),
        packet.more_frags(),
        packet.frag_offset(),
        packet.is_fragment(),
        packet.has_options(),
        packet.hop_limit(),
        packet.checksum(),
        packet.options(),
        packet.verify_checksum(),
    );

    // Mutating accessors on a private copy: also panic-free, and the
    // incremental TTL update must keep a valid header valid.
    let mut copy = data.to_vec();
    if let Ok(mut m) = Ipv4Packet::new_checked(&mut copy[..]) {
        let was_valid = m.verify_checksum();
        m.decrement_ttl();
        if was_valid {
            assert!(m.verify_checksum(), "decrement_ttl broke the checksum");
        }
        m.fill_checksum();
        assert!(m.verify_checksum());
        let _ = (m.payload_mut().len(), m.options_mut().len());
    }

    let Ok(repr) = Ipv4Repr::parse(&packet) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
    let reparsed = Ipv4Packet::new_checked(&out[..]).map(|p| Ipv4Repr::parse(&p));
    assert_eq!(reparsed, Ok(Ok(repr)));

    let (src, dst) = (repr.src_addr, repr.dst_addr);
    let payload = packet.payload();
    match repr.protocol {
        IpProtocol::ICMP => icmpv4(payload),
        IpProtocol::UDP => udp(payload, src, dst),
        IpProtocol::IGMP => igmp(payload),
        _ => {}
    }
}

fn icmpv4(data: &[u8]) {
    let _ = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(data));
    let _ = appliance::wire::icmpv4::invoking_datagram(data);
    let Ok(packet) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        packet.msg_type(),
        packet.msg_code(),
        packet.checksum(),
        packet.echo_ident(),
        packet.echo_seq_no(),
        packet.next_hop_mtu(),
        packet.data(),
    );
    let Ok(repr) = Icmpv4Repr::parse(&packet) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
    let reparsed = Icmpv4Packet::new_checked(&out[..]).map(|p| Icmpv4Repr::parse(&p));
    assert_eq!(reparsed, Ok(Ok(repr)));
}

fn udp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let _ = UdpRepr::parse(&UdpPacket::new_unchecked(data), src, dst);
    let Ok(packet) = UdpPacket::new_checked(data) else {
        return;
    };
    let _ = (packet.len(), packet.checksum(), packet.payload());
    let Ok(repr) = UdpRepr::parse(&packet, src, dst) else {
        return;
    };
    let payload = packet.payload();
    let mut out = vec![0u8; repr.buffer_len(payload.len())];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut out[..]),
        src,
        dst,
        payload.len(),
        |b| b.copy_from_slice(payload),
    );
    let reparsed = UdpPacket::new_checked(&out[..]).map(|p| UdpRepr::parse(&p, src, dst));
    assert_eq!(reparsed, Ok(Ok(repr)));
}

fn igmp(data: &[u8]) {
    let _ = IgmpRepr::parse(&IgmpPacket::new_unchecked(data));
    let Ok(packet) = IgmpPacket::new_checked(data) else {
        return;
    };
    let _ = (
        packet.msg_type(),
        packet.max_resp_code(),
        packet.checksum(),
        packet.group_addr(),
        packet.num_group_records(),
        packet.query_version(),
    );
    if let Ok(q) = packet.v3_query() {
        let _ = q.sources.count();
    }
    if let Ok(records) = packet.group_records() {
        for r in records {
            let _ = (r.record_type, r.group_addr, r.sources.count(), r.aux_data);
        }
    }
    let Ok(repr) = IgmpRepr::parse(&packet) else {
        return;
    };
    if let IgmpRepr::MembershipQuery {
        max_resp_time_ds,
        version,
        ..
    } = repr
    {
        let _ = igmp::max_resp_time_ds(max_resp_time_ds, version);
        if version == IgmpVersion::V3 {
            let _ = igmp::decode_v3_code(max_resp_time_ds);
        }
    }
    // Compared as values, not bytes: v3 queries re-emit without their
    // source list and with default QRV/QQIC.
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut IgmpPacket::new_unchecked(&mut out[..]));
    let reparsed = IgmpPacket::new_checked(&out[..])
        .map(|p| IgmpRepr::parse(&p))
        .map(|r| r == Ok(repr.clone()));
    assert_eq!(reparsed, Ok(true));
}
