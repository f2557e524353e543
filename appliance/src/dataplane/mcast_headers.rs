//! The headers of one relayed copy: Ethernet, IPv4 and UDP rewritten for an
//! output. Pure byte work, no DPDK, so it is unit-tested and fuzzed.
//!
//! The UDP checksum is updated incrementally (RFC 1624) for the changed
//! addresses and port, because the payload is the same for every copy and
//! reading it again per output would cost more than the rest of the relay.

use std::net::Ipv4Addr;

use crate::config::mcast::{DscpSpec, TtlSpec};
use crate::stats::DropReason;
use crate::tables::McastOutput;
use crate::wire::checksum;
use crate::wire::{EthernetFrame, Ipv4Packet, MacAddr, UdpPacket};

/// Ethernet + IPv4 without options + UDP.
pub const HEADERS_LEN: usize = 14 + 20 + 8;

/// Which checksums the output port computes on transmit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// IPv4 header checksum.
    pub ipv4: bool,
    /// UDP checksum (the header then carries the pseudo-header sum).
    pub udp: bool,
}

/// Writes the headers of the copy for `out` into `buf[..HEADERS_LEN]`,
/// starting from the received headers `orig`. Returns which checksums the
/// port must fill in.
///
/// # Errors
/// `McastTtlExpired` when decrementing would leave the TTL at zero.
pub fn write_headers(
    orig: &[u8; HEADERS_LEN],
    out: &McastOutput,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    offload: TxOffload,
    buf: &mut [u8],
) -> Result<TxOffload, DropReason> {
    let buf = buf.get_mut(..HEADERS_LEN).ok_or(DropReason::NoMbuf)?;
    let old_ttl = orig[14 + 8];
    let ttl = match out.ttl {
        TtlSpec::Decrement if old_ttl <= 1 => return Err(DropReason::McastTtlExpired),
        TtlSpec::Decrement => old_ttl - 1,
        TtlSpec::Set(v) => v,
    };
    buf.copy_from_slice(orig);
    let mut eth = EthernetFrame::new_unchecked(&mut *buf);
    eth.set_dst_addr(dst_mac);
    eth.set_src_addr(src_mac);

    let mut ip = Ipv4Packet::new_unchecked(&mut buf[14..34]);
    let (old_src, old_dst) = (ip.src_addr(), ip.dst_addr());
    let src = out.source.unwrap_or(old_src);
    let dst = out.destination;
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.set_ttl(ttl);
    if let DscpSpec::Set(d) = out.dscp {
        ip.set_dscp(d);
    }
    let mut used = TxOffload::default();
    if offload.ipv4 {
        ip.set_checksum(0);
        used.ipv4 = true;
    } else {
        ip.fill_checksum();
    }

    let mut udp = UdpPacket::new_unchecked(&mut buf[34..HEADERS_LEN]);
    let old_port = udp.dst_port();
    udp.set_dst_port(out.udp_port);
    let old_sum = udp.checksum();
    if old_sum == 0 {
        // The sender sent no checksum (legal for UDP over IPv4): neither
        // do we, since computing one would mean reading the payload.
    } else if offload.udp {
        let len = udp.len();
        udp.set_checksum(checksum::fold(checksum::pseudo_header_sum(
            src, dst, 17, len,
        )));
        used.udp = true;
    } else {
        udp.set_checksum(updated_udp_sum(
            old_sum,
            (old_src, old_dst, old_port),
            (src, dst, out.udp_port),
        ));
    }
    Ok(used)
}

/// RFC 1624 update of a UDP checksum for new addresses and destination
/// port. A result of zero is sent as 0xffff (RFC 768: zero means none).
fn updated_udp_sum(
    sum: u16,
    (old_src, old_dst, old_port): (Ipv4Addr, Ipv4Addr, u16),
    (src, dst, port): (Ipv4Addr, Ipv4Addr, u16),
) -> u16 {
    let words = |a: Ipv4Addr| {
        let o = a.octets();
        [
            u16::from_be_bytes([o[0], o[1]]),
            u16::from_be_bytes([o[2], o[3]]),
        ]
    };
    let mut sum = sum;
    for (old, new) in words(old_src)
        .into_iter()
        .zip(words(src))
        .chain(words(old_dst).into_iter().zip(words(dst)))
        .chain([(old_port, port)])
    {
        sum = checksum::incremental_update(sum, old, new);
    }
    if sum == 0 {
        0xffff
    } else {
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::L2Dest;
    use proptest::prelude::*;

    const SRC_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const GROUP_MAC: MacAddr = MacAddr([1, 0, 0x5e, 10, 1, 1]);

    fn frame(src: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [1, 0, 0x5e, 1, 1, 1])
            .ipv4(src, [239, 1, 1, 1], ttl)
            .udp(4000, 5000);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    fn output(source: Option<Ipv4Addr>, ttl: TtlSpec, dscp: DscpSpec) -> McastOutput {
        McastOutput {
            port: 1,
            destination: Ipv4Addr::new(239, 10, 1, 1),
            l2: L2Dest::Group(GROUP_MAC),
            udp_port: 6000,
            source,
            ttl,
            dscp,
        }
    }

    fn rewrite(f: &[u8], out: &McastOutput, offload: TxOffload) -> (Vec<u8>, TxOffload) {
        let orig: [u8; HEADERS_LEN] = f[..HEADERS_LEN].try_into().unwrap();
        let mut g = f.to_vec();
        let used = write_headers(&orig, out, SRC_MAC, GROUP_MAC, offload, &mut g).unwrap();
        (g, used)
    }

    #[test]
    fn rewritten_copy_is_valid_and_translated() {
        let f = frame([10, 0, 1, 7], 64, b"hello relay");
        let out = output(
            Some(Ipv4Addr::new(10, 0, 2, 1)),
            TtlSpec::Decrement,
            DscpSpec::Set(46),
        );
        let (g, used) = rewrite(&f, &out, TxOffload::default());
        assert_eq!(used, TxOffload::default());
        let p = etherparse::SlicedPacket::from_ethernet(&g).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
            panic!()
        };
        assert_eq!((eth.destination(), eth.source()), (GROUP_MAC.0, SRC_MAC.0));
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!(
            (h.source, h.destination, h.time_to_live),
            ([10, 0, 2, 1], [239, 10, 1, 1], 63)
        );
        assert_eq!(h.dscp.value(), 46);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
            panic!()
        };
        let uh = udp.to_header();
        assert_eq!((uh.source_port, uh.destination_port), (4000, 6000));
        assert_eq!(
            uh.checksum,
            uh.calc_checksum_ipv4(&h, udp.payload()).unwrap()
        );
        assert_eq!(udp.payload(), b"hello relay");
    }

    #[test]
    fn ttl_rules() {
        let f = frame([10, 0, 1, 7], 1, b"x");
        let orig: [u8; HEADERS_LEN] = f[..HEADERS_LEN].try_into().unwrap();
        let mut g = f.clone();
        let dec = output(None, TtlSpec::Decrement, DscpSpec::Keep);
        assert_eq!(
            write_headers(
                &orig,
                &dec,
                SRC_MAC,
                GROUP_MAC,
                TxOffload::default(),
                &mut g
            ),
            Err(DropReason::McastTtlExpired)
        );
        let (g, _) = rewrite(
            &f,
            &output(None, TtlSpec::Set(16), DscpSpec::Keep),
            TxOffload::default(),
        );
        assert_eq!(g[22], 16);
        assert_eq!(&g[26..30], &[10, 0, 1, 7], "source kept");
    }

    #[test]
    fn offload_leaves_sums_to_the_port_and_no_checksum_stays_none() {
        let f = frame([10, 0, 1, 7], 64, b"abc");
        let out = output(None, TtlSpec::Decrement, DscpSpec::Keep);
        let (g, used) = rewrite(
            &f,
            &out,
            TxOffload {
                ipv4: true,
                udp: true,
            },
        );
        assert_eq!(
            used,
            TxOffload {
                ipv4: true,
                udp: true
            }
        );
        assert_eq!(&g[24..26], &[0, 0]);
        let len = u16::from_be_bytes([g[38], g[39]]);
        let phdr = checksum::fold(checksum::pseudo_header_sum(
            Ipv4Addr::new(10, 0, 1, 7),
            Ipv4Addr::new(239, 10, 1, 1),
            17,
            len,
        ));
        assert_eq!(u16::from_be_bytes([g[40], g[41]]), phdr);
        let mut f0 = f.clone();
        f0[40] = 0;
        f0[41] = 0;
        let (g, used) = rewrite(
            &f0,
            &out,
            TxOffload {
                ipv4: false,
                udp: true,
            },
        );
        assert!(!used.udp);
        assert_eq!(&g[40..42], &[0, 0]);
    }

    proptest! {
        /// The incremental UDP checksum equals a full recomputation.
        #[test]
        fn incremental_udp_sum_matches_full(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<[u8; 4]>(),
            new_src in any::<[u8; 4]>(),
            port in 1u16..,
        ) {
            let f = frame(src, 64, &payload);
            let mut out = output(Some(Ipv4Addr::from(new_src)), TtlSpec::Decrement, DscpSpec::Keep);
            out.udp_port = port;
            let (g, _) = rewrite(&f, &out, TxOffload::default());
            let p = etherparse::SlicedPacket::from_ethernet(&g).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else { panic!() };
            let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else { panic!() };
            let full = udp.to_header().calc_checksum_ipv4(&ip.header().to_header(), udp.payload()).unwrap();
            prop_assert_eq!(udp.to_header().checksum, full);
        }
    }
}
