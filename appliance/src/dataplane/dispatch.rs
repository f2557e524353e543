//! What a worker does with a verdict: where each packet goes once the
//! pipeline has decided. Shared by the worker loop and the stages that
//! re-inject packets (tunnel decapsulation).

use dpdk_bindings::ring::Producer;
use dpdk_bindings::Mbuf;

use crate::dataplane::pipeline::Verdict;
use crate::dataplane::relay::{self, RelayCtx};
use crate::dataplane::tunnel::TunnelSender;
use crate::dataplane::tx::{TxPorts, TxTag};
use crate::stats::DropReason;
use crate::tables::Tables;

/// Where a worker's packets can go: its TX buffers, its punt ring to the
/// management lcore, the tunnel (when one is configured), and what relaying
/// needs.
#[derive(Debug)]
pub struct Sinks<'a> {
    /// TX buffers per port.
    pub tx: &'a mut TxPorts,
    /// Ring to the management lcore.
    pub punt: &'a mut Producer,
    /// The worker's sending side of the tunnel.
    pub tunnel: Option<&'a mut TunnelSender>,
    /// Worker id, pools and counters.
    pub relay: RelayCtx<'a>,
}

impl Sinks<'_> {
    /// Counts one drop in the worker's counters.
    #[inline]
    pub fn drop_one(&self, reason: DropReason) {
        self.relay.counters.drop_one(reason);
    }

    /// Hands `m` to the management lcore (counted), or drops it if the ring
    /// is full.
    #[inline]
    pub fn punt(&mut self, m: Mbuf) {
        match self.punt.enqueue(m) {
            Ok(()) => self.relay.counters.punted.inc(),
            Err(_m) => self.drop_one(DropReason::PuntRingFull),
        }
    }
}

/// Acts on every verdict that needs no stage of its own: forward, relay,
/// punt, drop. Tunnel verdicts reach here only for packets that may not
/// enter the tunnel (they came out of it), and are dropped as a loop.
#[inline]
pub fn act(tables: &Tables, verdict: Verdict, m: Mbuf, sinks: &mut Sinks<'_>) {
    match verdict {
        Verdict::Forward(out) => sinks.tx.push(out, m, TxTag::NONE, tables),
        Verdict::Relay(rule) => relay::matched(tables, rule, m, None, sinks),
        Verdict::RelayDrop(rule, reason) => relay::matched(tables, rule, m, Some(reason), sinks),
        Verdict::Punt(_) => sinks.punt(m),
        Verdict::TunnelRx | Verdict::TunnelTx => sinks.drop_one(DropReason::TunnelLoop),
        Verdict::Drop(reason) => sinks.drop_one(reason),
    }
}
