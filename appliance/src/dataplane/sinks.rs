//! Where a worker's packets can go, and the context it carries while it
//! handles them: what the dispatch, the relay and the tunnel stages share.

use dpdk_bindings::ring::Producer;
use dpdk_bindings::{Mbuf, Mempool};

use crate::dataplane::tunnel::TunnelSenders;
use crate::dataplane::tx::TxPorts;
use crate::stats::{DropReason, WorkerCounters};
use crate::time::Time;

/// Where a worker's packets can go: its TX buffers, its punt ring to the
/// management lcore, the tunnel (when one is configured), and what relaying
/// needs.
#[derive(Debug)]
pub struct Sinks<'a> {
    /// TX buffers per port.
    pub tx: &'a mut TxPorts,
    /// Ring to the management lcore.
    pub punt: &'a mut Producer,
    /// Whether anything was punted (the worker rings the management lcore's
    /// doorbell after its flush).
    pub punted: bool,
    /// The worker's sending side of the tunnel, one per peer (empty: no
    /// tunnel).
    pub tunnel: &'a mut TunnelSenders,
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
            Ok(()) => {
                self.relay.counters.punted.inc();
                self.punted = true;
            }
            Err(_m) => self.drop_one(DropReason::PuntRingFull),
        }
    }

    /// Sends `m` (routed into the tunnel) to peer `peer`; whether its sender
    /// took it (it counts its own drops).
    #[inline]
    pub fn send_tunnel(&mut self, tables: &crate::tables::Tables, peer: u16, m: Mbuf) -> bool {
        let (now, counters) = (self.relay.now, self.relay.counters);
        match self
            .tunnel
            .send(tables, usize::from(peer), m, now, self.tx, counters)
        {
            Some(taken) => taken,
            None => {
                self.drop_one(DropReason::TunnelNoPath);
                false
            }
        }
    }
}

/// What a worker needs besides the tables to relay.
#[derive(Debug)]
pub struct RelayCtx<'a> {
    /// Worker id (its counter slot in each rule).
    pub worker: usize,
    /// Pool of small mbufs for per-output headers.
    pub headers: &'a Mempool,
    /// The packet pool (whole copies into the tunnel).
    pub pool: &'a Mempool,
    /// Its worker counters.
    pub counters: &'a WorkerCounters,
    /// Now (the tunnel stamps its packets).
    pub now: Time,
}
