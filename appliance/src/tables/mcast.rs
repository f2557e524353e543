//! Multicast relay rules as the workers read them: resolved to port
//! indices and addresses, found by one hash lookup, each with its own
//! per-worker counters.
//!
//! Counters belong to the rule object and travel with it from snapshot to
//! snapshot, so adding or removing another rule never resets them; deleting
//! or replacing a rule starts its counters afresh.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;

use crate::config::mcast::{DscpSpec, McastRuleSpec, SourceSpec, TtlSpec};
use crate::stats::{Counter, DropCounters, DropReason, PerWorker, Rate};
use crate::wire::MacAddr;

/// The match key: input port index, group, UDP port, source (SSM) or
/// `None` (any source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct McastKey {
    /// Input port index.
    pub port: usize,
    /// Group.
    pub group: Ipv4Addr,
    /// UDP destination port.
    pub udp_port: u16,
    /// SSM source, or any.
    pub source: Option<Ipv4Addr>,
}

/// How to reach an output's destination at Ethernet level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2Dest {
    /// A group: its 01:00:5e MAC.
    Group(MacAddr),
    /// A unicast address: the neighbour's MAC, looked up per packet (the
    /// management lcore keeps it resolved).
    Unicast,
}

/// One output, ready to write.
#[derive(Debug, Clone, Copy)]
pub struct McastOutput {
    /// Output port index.
    pub port: usize,
    /// New destination address.
    pub destination: Ipv4Addr,
    /// Destination MAC or how to find it.
    pub l2: L2Dest,
    /// New UDP destination port.
    pub udp_port: u16,
    /// New source address; `None` keeps the sender's.
    pub source: Option<Ipv4Addr>,
    /// TTL rule.
    pub ttl: TtlSpec,
    /// DSCP rule.
    pub dscp: DscpSpec,
}

/// Counters of one output, written by one worker.
#[derive(Debug, Default)]
pub struct OutputCounters {
    /// Copies the TX queue took.
    pub tx_packets: Counter,
    /// Their bytes.
    pub tx_bytes: Counter,
    /// Copies lost, by reason.
    pub drops: DropCounters,
}

impl OutputCounters {
    /// The reasons a copy can be lost, listed in reports even at zero.
    pub const DROP_REASONS: &'static [DropReason] = &[
        DropReason::TxFull,
        DropReason::NoMbuf,
        DropReason::McastTtlExpired,
        DropReason::McastUnresolved,
    ];
}

/// Counters of one rule, written by one worker.
#[derive(Debug)]
pub struct RuleWorkerCounters {
    /// Packets matched.
    pub rx_packets: Counter,
    /// Their bytes.
    pub rx_bytes: Counter,
    /// Matched packets not relayed at all, by reason (a lost copy counts
    /// against its output instead).
    pub drops: DropCounters,
    /// Per output.
    pub outputs: Box<[OutputCounters]>,
}

impl RuleWorkerCounters {
    /// The reasons a matched packet is not relayed, listed in reports even at
    /// zero.
    pub const DROP_REASONS: &'static [DropReason] = &[
        DropReason::IpFragment,
        DropReason::IpOptions,
        DropReason::UdpTruncated,
    ];

    /// Counts a matched packet: every packet that matched the rule is counted
    /// here once, relayed or not, so per rule `received = relayed + dropped`.
    #[inline]
    pub fn matched(&self, len: usize) {
        self.rx_packets.inc();
        self.rx_bytes.add(len as u64);
    }
}

/// Counters of one rule: a slot per worker, so each has one writer.
#[derive(Debug)]
pub struct RuleCounters {
    /// Indexed by worker id.
    pub workers: PerWorker<RuleWorkerCounters>,
    /// Matched packets per second, from the totals (management lcore).
    pub rx_rate: Rate,
    /// Per output: copies sent per second.
    pub output_rates: Box<[Rate]>,
}

impl RuleCounters {
    /// Zeroed counters for `workers` workers and `outputs` outputs.
    pub fn new(workers: usize, outputs: usize) -> Self {
        Self {
            workers: PerWorker::new(workers, || RuleWorkerCounters {
                rx_packets: Counter::default(),
                rx_bytes: Counter::default(),
                drops: DropCounters::default(),
                outputs: (0..outputs).map(|_| OutputCounters::default()).collect(),
            }),
            rx_rate: Rate::default(),
            output_rates: (0..outputs).map(|_| Rate::default()).collect(),
        }
    }

    /// `f` summed over the workers.
    pub fn total(&self, f: impl Fn(&RuleWorkerCounters) -> &Counter) -> u64 {
        self.workers.total(f)
    }

    /// `f` of output `k` summed over the workers.
    pub fn output_total(&self, k: usize, f: impl Fn(&OutputCounters) -> &Counter) -> u64 {
        self.workers
            .iter()
            .map(|w| w.outputs.get(k).map_or(0, |o| f(o).get()))
            .sum()
    }

    /// Samples the rule's rates, `elapsed` after the previous sample (management lcore
    /// only: the rates have one writer).
    pub fn sample_rates(&self, elapsed: Duration) {
        self.rx_rate.sample(
            self.total(|w| &w.rx_packets),
            self.total(|w| &w.rx_bytes),
            elapsed,
        );
        for (k, rate) in self.output_rates.iter().enumerate() {
            rate.sample(
                self.output_total(k, |o| &o.tx_packets),
                self.output_total(k, |o| &o.tx_bytes),
                elapsed,
            );
        }
    }

    /// The slot of worker `id`.
    #[inline]
    pub fn worker(&self, id: usize) -> &RuleWorkerCounters {
        self.workers.worker(id)
    }
}

/// A rule as the data plane uses it.
#[derive(Debug)]
pub struct McastRule {
    /// As configured (for `show` and for replacing).
    pub spec: McastRuleSpec,
    /// What it matches.
    pub key: McastKey,
    /// Its outputs.
    pub outputs: Vec<McastOutput>,
    /// Its counters.
    pub counters: RuleCounters,
}

impl McastRule {
    /// Resolves a validated spec. `in_port`/`out_ports` and `addresses`
    /// (per port index) come from [`McastRuleSpec::validate`] and the
    /// interfaces.
    pub fn new(
        spec: McastRuleSpec,
        in_port: usize,
        out_ports: &[usize],
        addresses: &[Option<Ipv4Addr>],
        workers: usize,
    ) -> Self {
        let key = McastKey {
            port: in_port,
            group: spec.input.group,
            udp_port: u16::try_from(spec.input.port).unwrap_or(0),
            source: spec.input.source,
        };
        let outputs = spec
            .outputs
            .iter()
            .zip(out_ports)
            .map(|(o, &port)| McastOutput {
                port,
                destination: o.destination,
                l2: if o.destination.is_multicast() {
                    L2Dest::Group(MacAddr::from_ipv4_multicast(o.destination))
                } else {
                    L2Dest::Unicast
                },
                udp_port: u16::try_from(o.port).unwrap_or(0),
                source: match o.source {
                    SourceSpec::Interface => addresses.get(port).copied().flatten(),
                    SourceSpec::Keep => None,
                    SourceSpec::Address(a) => Some(a),
                },
                ttl: o.ttl,
                dscp: o.dscp,
            })
            .collect();
        let counters = RuleCounters::new(workers, spec.outputs.len());
        Self {
            spec,
            key,
            outputs,
            counters,
        }
    }
}

/// The rule table of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct McastTable {
    /// Rules in the order they were added.
    pub rules: Vec<Arc<McastRule>>,
    index: HashMap<McastKey, u32>,
    has_ssm: bool,
}

impl McastTable {
    /// Indexes `rules` (their keys must be distinct).
    pub fn new(rules: Vec<Arc<McastRule>>) -> Self {
        let index = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        let has_ssm = rules.iter().any(|r| r.key.source.is_some());
        Self {
            rules,
            index,
            has_ssm,
        }
    }

    /// The rule for a packet: an SSM rule for its source wins over an ASM
    /// rule for the group. Returns the rule's index in [`Self::rules`].
    #[inline]
    pub fn lookup(
        &self,
        port: usize,
        group: Ipv4Addr,
        udp_port: u16,
        src: Ipv4Addr,
    ) -> Option<u32> {
        let mut key = McastKey {
            port,
            group,
            udp_port,
            source: None,
        };
        if self.has_ssm {
            key.source = Some(src);
            if let Some(i) = self.index.get(&key) {
                return Some(*i);
            }
            key.source = None;
        }
        self.index.get(&key).copied()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str, workers: usize) -> Arc<McastRule> {
        let spec: McastRuleSpec = serde_json::from_str(json).unwrap();
        Arc::new(McastRule::new(
            spec,
            0,
            &[1],
            &[
                Some(Ipv4Addr::new(10, 0, 1, 1)),
                Some(Ipv4Addr::new(10, 0, 2, 1)),
            ],
            workers,
        ))
    }

    #[test]
    fn ssm_wins_over_asm_and_ports_must_match() {
        let asm = rule(
            r#"{"input":{"interface":"lan","group":"239.1.1.1","port":5000},"outputs":[{"interface":"wan","destination":"239.9.9.9","port":1}]}"#,
            2,
        );
        let ssm = rule(
            r#"{"input":{"interface":"lan","group":"239.1.1.1","port":5000,"source":"10.0.1.7"},"outputs":[{"interface":"wan","destination":"10.0.2.9","port":1,"source":"keep"}]}"#,
            2,
        );
        assert_eq!(ssm.outputs[0].l2, L2Dest::Unicast);
        assert_eq!(ssm.outputs[0].source, None);
        assert_eq!(asm.outputs[0].source, Some(Ipv4Addr::new(10, 0, 2, 1)));
        let t = McastTable::new(vec![asm, ssm]);
        let g = Ipv4Addr::new(239, 1, 1, 1);
        assert_eq!(t.lookup(0, g, 5000, Ipv4Addr::new(10, 0, 1, 7)), Some(1));
        assert_eq!(t.lookup(0, g, 5000, Ipv4Addr::new(10, 0, 1, 8)), Some(0));
        assert_eq!(t.lookup(0, g, 5001, Ipv4Addr::new(10, 0, 1, 8)), None);
        assert_eq!(t.lookup(1, g, 5000, Ipv4Addr::new(10, 0, 1, 8)), None);
        assert_eq!(t.rules[0].counters.workers.len(), 2);
    }
}
