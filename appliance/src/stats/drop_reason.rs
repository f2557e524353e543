//! Why the data plane dropped a packet: one reason per drop, each a counter
//! (VPP's error counters). Names are stable: they are metric labels.

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $help:literal;)*) => {
        /// Why the data plane dropped a packet. Every drop has one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $(#[doc = $help] $variant,)* }

        impl DropReason {
            /// All reasons, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();
            /// Stable snake_case name for counters and metrics.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
            /// One-line meaning.
            pub fn help(self) -> &'static str {
                match self { $(DropReason::$variant => $help,)* }
            }
        }
    };
}

drop_reasons! {
    EthTruncated => "eth_truncated", "frame shorter than an Ethernet header";
    EthertypeUnsupported => "ethertype_unsupported", "not IPv4, IPv6 or ARP (VLAN-tagged, other)";
    L2NotForUs => "l2_not_for_us", "unicast frame for another MAC";
    MultiSegment => "multi_segment", "frame spans several mbufs";
    IpTruncated => "ip_truncated", "shorter than an IPv4 header";
    IpBadHeader => "ip_bad_header", "IPv4 version is not 4 or IHL < 5";
    IpBadTotalLength => "ip_bad_total_length", "IPv4 total length disagrees with the frame";
    IpBadChecksum => "ip_bad_checksum", "IPv4 header checksum is wrong";
    IpOptions => "ip_options", "IPv4 options are not forwarded";
    IpFragment => "ip_fragment", "IPv4 fragments are not forwarded";
    IpBadSource => "ip_bad_source", "source is multicast or ours";
    IpMartianSource => "ip_martian_source", "source no packet may come from (RFC 1812 5.3.7): 0/8, 127/8, 240/4 (with the limited broadcast), a subnet broadcast";
    IpBroadcast => "ip_broadcast", "destination is a broadcast address";
    IpMartianDestination => "ip_martian_destination", "destination that is not routable: 0/8, 127/8, 240/4";
    Ip6L2Multicast => "ip6_l2_multicast", "unicast IPv6 in a broadcast or multicast frame (not routed; RFC 4443 2.4(e.3))";
    Ip6Tentative => "ip6_tentative", "to one of our IPv6 addresses while duplicate address detection still checks it (RFC 4862 5.4: not ours yet)";
    Ip6Disabled => "ip6_disabled", "IPv6 on a port with no IPv6 address configured (IPv6 is off there)";
    Ip6Truncated => "ip6_truncated", "shorter than an IPv6 header, or its payload length runs past the frame";
    Ip6BadHeader => "ip6_bad_header", "IPv6 version is not 6";
    Ip6ExtHeader => "ip6_ext_header", "IPv6 extension headers refused: hop-by-hop not first, routing type 0 with segments left, the chain not in the first fragment, or too long (RFC 8200, 5095, 7112)";
    Ip6MartianSource => "ip6_martian_source", "IPv6 source no packet may come from: ::, ::1, IPv4-mapped, documentation (2001:db8::/32)";
    Ip6MartianDestination => "ip6_martian_destination", "IPv6 destination that is never routed: ::, ::1, IPv4-mapped, documentation, link-local not ours";
    Ip6LinkLocalSource => "ip6_link_local_source", "IPv6 packet from a link-local source that would have to leave its link (RFC 4291 2.5.6)";
    Ip6Multicast => "ip6_multicast", "IPv6 multicast not for us (Neighbor Discovery of others, MLD, RS with no RA configured, streams: no IPv6 relay yet)";
    NdNotForUs => "nd_not_for_us", "Neighbor Solicitation for an address that is not ours, or an advertisement of a neighbour we did not ask for";
    NdMalformed => "nd_malformed", "Neighbor Discovery message with a hop limit below 255, a bad checksum or malformed options (RFC 4861 7.1)";
    UdpTruncated => "udp_truncated", "UDP header or length field does not fit";
    McastNoRule => "mcast_no_rule", "multicast with no relay rule (or not UDP)";
    McastTtlExpired => "mcast_ttl_expired", "relayed copy would leave with TTL 0";
    McastUnresolved => "mcast_unresolved", "relay output to a unicast address with no route or no ARP answer yet";
    IgmpMalformed => "igmp_malformed", "IGMP that is truncated, has a bad checksum or is not understood";
    PuntRingFull => "punt_ring_full", "slow-path ring full";
    TxFull => "tx_full", "TX queue did not take the packet";
    NoRoute => "no_route", "no route to the destination (ICMP unreachable sent)";
    TtlExpired => "ttl_expired", "TTL reached zero (ICMP time exceeded sent)";
    NeighborUnresolved => "neighbor_unresolved", "next hop did not answer ARP or Neighbor Solicitation";
    NeighborHoldOverflow => "neighbor_hold_overflow", "too many packets waiting for one ARP reply or Neighbor Advertisement, or too many next hops being resolved at once (1024)";
    ArpMalformed => "arp_malformed", "ARP that is not Ethernet/IPv4 or is truncated";
    ArpNotForUs => "arp_not_for_us", "ARP for an address that is not ours";
    LocalUnsupported => "local_unsupported", "to us but not ICMP echo (ICMP unreachable sent)";
    IcmpMalformed => "icmp_malformed", "ICMP or ICMPv6 to us that is truncated or has a bad checksum";
    NoMbuf => "no_mbuf", "mempool empty when building a reply or a relay header";
    TunnelTruncated => "tunnel_truncated", "tunnel packet shorter than its headers, or its UDP length disagrees";
    TunnelBadVersion => "tunnel_bad_version", "tunnel header of a version we do not speak";
    TunnelBadType => "tunnel_bad_type", "tunnel header of an unknown type";
    TunnelUnknownPath => "tunnel_unknown_path", "tunnel packet whose path id, outer addresses or arrival port match no configured path";
    TunnelBadLane => "tunnel_bad_lane", "tunnel data on a lane number beyond the receiver's lanes";
    TunnelUnknownKey => "tunnel_unknown_key", "tunnel packet under a key id we do not hold (never made, retired, from before a restart, or the tunnel is in clear)";
    TunnelAuthFailed => "tunnel_auth_failed", "tunnel packet whose authentication tag does not verify (forged, damaged, or sealed under another key)";
    TunnelReplay => "tunnel_replay", "tunnel packet already accepted under its key, or older than the replay window";
    TunnelCleartext => "tunnel_cleartext", "tunnel data or probe in clear to an encrypted tunnel, or a handshake to a tunnel in clear";
    TunnelNoKey => "tunnel_no_key", "no session key to seal under (handshake not complete, or the key expired or is used up)";
    TunnelHandshakeLimited => "tunnel_handshake_limited", "handshake message over the rate the workers hand to the management lcore";
    TunnelOutOfWindow => "tunnel_out_of_window", "tunnel sequence number far outside the reorder window";
    TunnelStale => "tunnel_stale", "tunnel packet too old to deliver: behind the duplicate window, or late by more than its path delay plus max_hold";
    TunnelDuplicate => "tunnel_duplicate", "second copy of a tunnel packet (redundant scheduler, or a duplicated packet)";
    TunnelBadInner => "tunnel_bad_inner", "tunnel data that decapsulates to no valid IPv4 packet";
    TunnelLoop => "tunnel_loop", "decapsulated packet routed back to the peer it came from";
    TunnelInnerSource => "tunnel_inner_source", "decapsulated packet whose inner source is not in the sending peer's prefixes";
    TunnelPeerRemoved => "tunnel_peer_removed", "held in a reorder lane of a peer a reload removed";
    TunnelNoState => "tunnel_no_state", "the first packet of a peer's lane or (lane, path) found no spare reorder lane or replay window made ready (the management lcore restocks them: within a millisecond while they are being taken, 10 ms at most after a quiet spell)";
    TunnelNoPath => "tunnel_no_path", "no tunnel path is up (and resolved) to send on";
    ShaperAqm => "shaper_aqm", "the path's shaper queue dropped it: it waited above CoDel's target for an interval";
    ShaperOverlimit => "shaper_overlimit", "the path's shaper queue was full: the oldest packet of the flow holding the most bytes made room";
    ShaperStopped => "shaper_stopped", "still waiting in a path's shaper queue when the appliance stopped";
    ShaperPeerRemoved => "shaper_peer_removed", "still waiting in a path's shaper queue when a reload removed its peer";
    ShaperPathDown => "shaper_path_down", "waited for a path that went down (or that a reload removed) and could not move to another: a redundant copy (the other copy goes on), or no path was usable";
    MtuExceeded => "mtu_exceeded", "larger than the outgoing port's MTU: IPv4 with DF set (ICMP fragmentation needed sent) or IPv6 (ICMPv6 packet too big sent), rate-limited";
    MtuExceededNoDf => "mtu_exceeded_no_df", "IPv4 larger than the outgoing port's MTU without DF (the appliance does not fragment)";
    TunnelMtuDf => "tunnel_mtu_df", "larger than the tunnel's inner MTU with DF set (ICMP fragmentation needed sent, rate-limited)";
    TunnelMtuNoDf => "tunnel_mtu_no_df", "larger than the tunnel's inner MTU without DF (the appliance does not fragment)";
    TunnelHandoffFull => "tunnel_handoff_full", "ring to the worker that owns the lane full";
}
