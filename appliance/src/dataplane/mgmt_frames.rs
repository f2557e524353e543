//! Frames the management lcore sends (ARP, ICMP, IGMP, BFD, tunnel probes)
//! on ports where it has no TX queue of its own (af_packet, see
//! [`crate::dataplane::tx::MgmtTx`]): the worker that owns such a port's
//! ring takes them once per loop iteration and sends them on its own queue,
//! so no queue is shared and none needs a lock.

use dpdk_bindings::ring::Consumer;
use dpdk_bindings::Burst;

use crate::dataplane::sinks::Sinks;
use crate::dataplane::stage::Stage;
use crate::dataplane::tx::TxTag;
use crate::tables::Tables;
use crate::time::Time;

/// The management lcore's rings this worker drains, each with its port index.
#[derive(Debug)]
pub struct MgmtFrames {
    rings: Vec<(Consumer, usize)>,
}

impl MgmtFrames {
    /// Drains `rings`, each into the port index it names.
    pub fn new(rings: Vec<(Consumer, usize)>) -> Self {
        Self { rings }
    }
}

impl Stage for MgmtFrames {
    /// Inlined into the worker loop is only the check for rings: inlined
    /// whole, the draining cost encapsulation 10 % of its rate on ports that
    /// have none (`make bench`), by what it did to the loop's code.
    #[inline]
    fn poll(&mut self, tables: &Tables, _now: Time, sinks: &mut Sinks<'_>) -> usize {
        if self.rings.is_empty() {
            return 0;
        }
        self.drain(tables, sinks)
    }

    fn next_deadline(&self) -> Option<Time> {
        None
    }
}

impl MgmtFrames {
    /// Sends what every ring holds.
    #[inline(never)]
    fn drain(&mut self, tables: &Tables, sinks: &mut Sinks<'_>) -> usize {
        let mut moved = 0;
        for (ring, port) in &mut self.rings {
            let mut burst = Burst::new();
            moved += ring.dequeue_burst(&mut burst);
            for m in burst {
                sinks.tx.push(*port, m, TxTag::NONE, tables);
            }
        }
        moved
    }
}
