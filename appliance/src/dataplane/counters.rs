//! Per-worker counters: one writer (the worker), many readers (management
//! lcore, metrics thread). Cache-line aligned so workers never share a line.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::config::MAX_PORTS;

/// A counter with a single writer: a relaxed load + store, which compiles
/// to a plain add (no locked instruction on the hot path).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (single writer only).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    /// Adds one (single writer only).
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Reads the value (any thread).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

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
    EthertypeUnsupported => "ethertype_unsupported", "not IPv4 or ARP (IPv6, VLAN-tagged, other)";
    L2NotForUs => "l2_not_for_us", "unicast frame for another MAC";
    MultiSegment => "multi_segment", "frame spans several mbufs";
    IpTruncated => "ip_truncated", "shorter than an IPv4 header";
    IpBadHeader => "ip_bad_header", "IPv4 version is not 4 or IHL < 5";
    IpBadTotalLength => "ip_bad_total_length", "IPv4 total length disagrees with the frame";
    IpBadChecksum => "ip_bad_checksum", "IPv4 header checksum is wrong";
    IpOptions => "ip_options", "IPv4 options are not forwarded";
    IpFragment => "ip_fragment", "IPv4 fragments are not forwarded";
    IpBadSource => "ip_bad_source", "source is multicast, broadcast or ours";
    IpBroadcast => "ip_broadcast", "destination is a broadcast address";
    UdpTruncated => "udp_truncated", "UDP header or length field does not fit";
    McastNoRule => "mcast_no_rule", "multicast with no relay rule (or not UDP)";
    McastTtlExpired => "mcast_ttl_expired", "relayed copy would leave with TTL 0";
    McastUnresolved => "mcast_unresolved", "relay output to a unicast address with no route or no ARP answer yet";
    IgmpMalformed => "igmp_malformed", "IGMP that is truncated, has a bad checksum or is not understood";
    PuntRingFull => "punt_ring_full", "slow-path ring full";
    TxFull => "tx_full", "TX queue did not take the packet";
    NoRoute => "no_route", "no route to the destination (ICMP unreachable sent)";
    TtlExpired => "ttl_expired", "TTL reached zero (ICMP time exceeded sent)";
    NeighborUnresolved => "neighbor_unresolved", "next hop did not answer ARP";
    NeighborHoldOverflow => "neighbor_hold_overflow", "too many packets waiting for one ARP reply";
    ArpMalformed => "arp_malformed", "ARP that is not Ethernet/IPv4 or is truncated";
    ArpNotForUs => "arp_not_for_us", "ARP for an address that is not ours";
    LocalUnsupported => "local_unsupported", "to us but not ICMP echo (ICMP unreachable sent)";
    IcmpMalformed => "icmp_malformed", "ICMP to us that is truncated or has a bad checksum";
    NoMbuf => "no_mbuf", "mempool empty when building a reply or a relay header";
}

/// Counters of one worker (or of the management lcore, which uses the same
/// layout for what it drops and sends).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    /// Packets received per port index.
    pub rx_packets: [Counter; MAX_PORTS],
    /// Bytes received per port index.
    pub rx_bytes: [Counter; MAX_PORTS],
    /// Packets sent per port index.
    pub tx_packets: [Counter; MAX_PORTS],
    /// Bytes sent per port index.
    pub tx_bytes: [Counter; MAX_PORTS],
    /// Packets handed to the slow path.
    pub punted: Counter,
    /// Drops by reason.
    pub drops: [Counter; DropReason::COUNT],
    /// Poll-loop iterations.
    pub polls: Counter,
    /// Iterations that found packets.
    pub busy_polls: Counter,
    /// Idle sleeps taken.
    pub idle_sleeps: Counter,
}

impl WorkerCounters {
    /// Counts one drop.
    #[inline]
    pub fn drop_one(&self, reason: DropReason) {
        self.drops[reason as usize].inc();
    }

    /// A plain copy for reports.
    pub fn snapshot(&self) -> CounterSnapshot {
        let v = |a: &[Counter]| a.iter().map(Counter::get).collect::<Vec<_>>();
        CounterSnapshot {
            rx_packets: v(&self.rx_packets),
            rx_bytes: v(&self.rx_bytes),
            tx_packets: v(&self.tx_packets),
            tx_bytes: v(&self.tx_bytes),
            punted: self.punted.get(),
            drops: v(&self.drops),
            polls: self.polls.get(),
            busy_polls: self.busy_polls.get(),
            idle_sleeps: self.idle_sleeps.get(),
        }
    }
}

/// A copy of [`WorkerCounters`] at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CounterSnapshot {
    /// Per port index.
    pub rx_packets: Vec<u64>,
    /// Per port index.
    pub rx_bytes: Vec<u64>,
    /// Per port index.
    pub tx_packets: Vec<u64>,
    /// Per port index.
    pub tx_bytes: Vec<u64>,
    /// Handed to the slow path.
    pub punted: u64,
    /// By `DropReason` order.
    pub drops: Vec<u64>,
    /// Loop iterations.
    pub polls: u64,
    /// Iterations with packets.
    pub busy_polls: u64,
    /// Idle sleeps.
    pub idle_sleeps: u64,
}

impl CounterSnapshot {
    /// Adds `other` into `self`, element by element.
    pub fn accumulate(&mut self, other: &CounterSnapshot) {
        fn add(a: &mut Vec<u64>, b: &[u64]) {
            if a.len() < b.len() {
                a.resize(b.len(), 0);
            }
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        add(&mut self.rx_packets, &other.rx_packets);
        add(&mut self.rx_bytes, &other.rx_bytes);
        add(&mut self.tx_packets, &other.tx_packets);
        add(&mut self.tx_bytes, &other.tx_bytes);
        add(&mut self.drops, &other.drops);
        self.punted += other.punted;
        self.polls += other.polls;
        self.busy_polls += other.busy_polls;
        self.idle_sleeps += other.idle_sleeps;
    }

    /// Drops of one reason.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops.get(r as usize).copied().unwrap_or(0)
    }
}
