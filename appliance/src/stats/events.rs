//! Events of the management lcore's slow path (single writer: the management
//! lcore). Shown by `show stats` under `slowpath` and on `/metrics` as
//! `appliance_slowpath_events_total{event=...}`.

crate::counter_set! {
    /// Slow-path events.
    pub struct SlowCounters {
        arp_received: "ARP packets received",
        arp_replies_sent: "ARP replies sent for our addresses",
        arp_requests_sent: "ARP requests sent to resolve next hops",
        gratuitous_arp_sent: "gratuitous ARP announcements sent",
        neighbors_learned: "neighbours learned from ARP or Neighbor Discovery",
        held_packets_released: "packets held for ARP or Neighbor Discovery that left once resolved",
        nd_received: "Neighbor Solicitations and Advertisements received",
        nd_adverts_sent: "Neighbor Advertisements sent for our IPv6 addresses (answers and announcements)",
        nd_solicits_sent: "Neighbor Solicitations sent: to resolve or confirm IPv6 next hops, and duplicate address detection's probes",
        nd_router_adverts_sent: "router advertisements sent (periodic, answers to solicitations, and the last one at shutdown)",
        nd_router_solicits_received: "router solicitations received on a port that advertises",
        mld_reports_sent: "MLDv2 reports sent for the groups our IPv6 listens to (joins, answers to queries, leaves)",
        mld_queries_received: "MLD queries received (answered when general or about one of our groups)",
        nd_dad_failed: "our IPv6 addresses found in use by another node at start (IPv6 turned off on that port)",
        nd_address_conflicts: "advertisements by another node of one of our IPv6 addresses after start",
        nd_dad_defended: "Duplicate Address Detection probes for one of our addresses answered (another node wants it)",
        echo_replies_sent: "ICMP and ICMPv6 echo replies sent",
        icmp_errors_sent: "ICMP and ICMPv6 errors sent (time exceeded, unreachable, too big)",
        icmp_errors_rate_limited: "ICMP errors not sent because of the rate limit",
        route_changes: "static route changes applied",
        mcast_rule_changes: "multicast rule changes applied",
        igmp_received: "IGMP messages received",
        igmp_reports_sent: "IGMP reports sent",
        mcast_filter_unsupported: "ports that keep no multicast filter list (run allmulticast)",
        mgmt_sleeps: "times the management lcore slept until a timer, a worker's punt or a control request",
    }
}
