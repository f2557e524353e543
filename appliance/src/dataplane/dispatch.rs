//! What a worker does with a verdict: where each packet goes once the
//! pipeline has decided. Shared by the worker loop and the stages that
//! re-inject packets (tunnel decapsulation).

use dpdk_bindings::Mbuf;

use crate::dataplane::pipeline::Verdict;
use crate::dataplane::relay;
use crate::dataplane::sinks::Sinks;
use crate::dataplane::tx::TxTag;
use crate::stats::DropReason;
use crate::tables::Tables;

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
