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
/// punt, drop, and into the tunnel (a hub sends one peer's packets on to
/// another). A packet for a tunnel endpoint reaches here only when it came
/// out of the tunnel, and is dropped as a loop.
#[inline]
pub fn act(tables: &Tables, verdict: Verdict, m: Mbuf, sinks: &mut Sinks<'_>) {
    match verdict {
        Verdict::Forward(out) => sinks.tx.push(out, m, TxTag::NONE, tables),
        Verdict::Relay(rule) => relay::matched(tables, rule, m, None, sinks),
        Verdict::RelayDrop(rule, reason) => relay::matched(tables, rule, m, Some(reason), sinks),
        Verdict::Punt(_) => sinks.punt(m),
        Verdict::TunnelTx(peer) => {
            sinks.send_tunnel(tables, peer, m);
        }
        Verdict::TunnelRx => sinks.drop_one(DropReason::TunnelLoop),
        Verdict::Drop(reason) => sinks.drop_one(reason),
    }
}
