//! A worker's transmit side: one queue and one burst buffer per port
//! (l3fwd's `tx_mbufs`), flushed every loop iteration or when full.
//!
//! Each buffered packet carries a [`TxTag`] naming the relay output or
//! tunnel path it belongs to, so their counters record what the queue
//! actually took and what it refused, not what was attempted.

use std::sync::Arc;

use arrayvec::ArrayVec;
use dpdk_bindings::port::TxQueue;
use dpdk_bindings::ring::Producer;
use dpdk_bindings::{Burst, Mbuf, BURST_SIZE};

use crate::stats::{DropReason, WorkerCounters};
use crate::tables::Tables;

/// What a buffered packet counts against once the queue took (or refused)
/// it: a relay output, a tunnel path, or nothing beyond the port.
#[derive(Debug, Clone, Copy)]
pub enum TxTag {
    /// Only the port's counters.
    Plain,
    /// Output `output` of relay rule `rule`.
    Relay {
        /// Rule index in the snapshot.
        rule: u32,
        /// Output index.
        output: u16,
        /// Bytes.
        len: u32,
    },
    /// Tunnel path `path` of peer `peer`.
    Path {
        /// Peer index.
        peer: u16,
        /// Path index.
        path: u8,
        /// Bytes.
        len: u32,
    },
}

impl TxTag {
    /// Not a relayed copy nor a tunnel packet.
    pub const NONE: TxTag = TxTag::Plain;

    /// Output `output` of rule `rule`, `len` bytes.
    #[inline]
    pub fn output(rule: u32, output: usize, len: usize) -> TxTag {
        TxTag::Relay {
            rule,
            output: u16::try_from(output).unwrap_or(u16::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
        }
    }

    /// Path index `path` of peer index `peer`, `len` bytes.
    #[inline]
    pub fn path(peer: u16, path: usize, len: usize) -> TxTag {
        TxTag::Path {
            peer,
            path: u8::try_from(path).unwrap_or(u8::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    pkts: Burst,
    tags: ArrayVec<TxTag, BURST_SIZE>,
}

/// Per-port TX queues and buffers of one lcore.
#[derive(Debug)]
pub struct TxPorts {
    queues: Vec<TxQueue>,
    pending: Vec<Pending>,
    worker: usize,
    counters: Arc<WorkerCounters>,
}

impl TxPorts {
    /// `queues[i]` is this lcore's queue on port index `i`; `worker` is
    /// its slot in rule counters.
    pub fn new(queues: Vec<TxQueue>, worker: usize, counters: Arc<WorkerCounters>) -> Self {
        let pending = queues.iter().map(|_| Pending::default()).collect();
        Self {
            queues,
            pending,
            worker,
            counters,
        }
    }

    /// Buffers `m` for port index `port`, flushing first if the buffer is
    /// full. `tables` must be the snapshot the tag's rule index refers to.
    #[inline]
    pub fn push(&mut self, port: usize, m: Mbuf, tag: TxTag, tables: &Tables) {
        let Some(p) = self.pending.get_mut(port) else {
            self.counters.drop_one(DropReason::TxFull);
            return;
        };
        if p.pkts.is_full() {
            if let Some(q) = self.queues.get_mut(port) {
                flush_tagged(q, p, port, &self.counters, tables, self.worker);
            }
        }
        // After a flush the buffer is empty (what the queue refused was
        // freed and counted).
        if p.pkts.try_push(m).is_ok() {
            p.tags.push(tag);
        } else {
            self.counters.drop_one(DropReason::TxFull);
        }
    }

    /// Sends everything buffered. Call with the same snapshot as `push`.
    #[inline]
    pub fn flush_all(&mut self, tables: &Tables) {
        for (port, (q, p)) in self.queues.iter_mut().zip(&mut self.pending).enumerate() {
            flush_tagged(q, p, port, &self.counters, tables, self.worker);
        }
    }
}

#[inline]
fn flush_tagged(
    q: &mut TxQueue,
    p: &mut Pending,
    port: usize,
    c: &WorkerCounters,
    tables: &Tables,
    worker: usize,
) {
    let sent = flush(q, &mut p.pkts, port, c);
    for (i, tag) in p.tags.iter().enumerate() {
        let ok = i < sent;
        match *tag {
            TxTag::Plain => {}
            TxTag::Relay { rule, output, len } => {
                let Some(oc) = tables
                    .mcast
                    .rules
                    .get(rule as usize)
                    .and_then(|r| r.counters.worker(worker).outputs.get(usize::from(output)))
                else {
                    continue;
                };
                if ok {
                    oc.tx_packets.inc();
                    oc.tx_bytes.add(u64::from(len));
                } else {
                    oc.drops.inc(DropReason::TxFull);
                }
            }
            TxTag::Path { peer, path, len } => {
                let Some(pc) = tables
                    .peer(peer)
                    .and_then(|t| t.path_counters.get(usize::from(path)))
                    .map(|c| c.worker(worker))
                else {
                    continue;
                };
                if ok {
                    pc.tx_packets.inc();
                    pc.tx_bytes.add(u64::from(len));
                } else {
                    pc.drops.inc(DropReason::TxFull);
                }
            }
        }
    }
    p.tags.clear();
}

/// How the management lcore sends on one port.
#[derive(Debug)]
pub enum MgmtTx {
    /// A TX queue of its own.
    Queue(TxQueue),
    /// A ring that one worker drains into its own TX queue
    /// ([`crate::dataplane::mgmt_frames`]). On af_packet every queue is a
    /// socket that the kernel's receive fanout feeds, so a queue of the
    /// management lcore's own would take a share of the flows that a worker
    /// then had to poll on top of its own.
    ViaWorker(Producer),
}

impl MgmtTx {
    /// Sends one frame on port index `port`, counted in `c` when a queue of
    /// our own takes it (a worker counts what it sends for us). Returns
    /// whether it was taken; a refused frame is freed and counted.
    pub fn send(&mut self, m: Mbuf, port: usize, c: &WorkerCounters) -> bool {
        match self {
            Self::Queue(q) => {
                let mut b = Burst::new();
                b.push(m);
                flush(q, &mut b, port, c) == 1
            }
            Self::ViaWorker(ring) => match ring.enqueue(m) {
                Ok(()) => true,
                Err(m) => {
                    drop(m);
                    c.drop_one(DropReason::TxFull);
                    false
                }
            },
        }
    }
}

/// Sends what the buffer holds; what the queue refuses is freed and counted.
/// Returns how many were sent (always a prefix of the buffer).
#[inline]
pub fn flush(q: &mut TxQueue, buf: &mut Burst, port: usize, c: &WorkerCounters) -> usize {
    if buf.is_empty() {
        return 0;
    }
    let bytes: u64 = buf.iter().map(|m| m.pkt_len() as u64).sum();
    let mut sent = q.tx_burst(buf);
    // One retry: a NIC ring that was momentarily full usually drains in the
    // time of a burst.
    if !buf.is_empty() {
        sent += q.tx_burst(buf);
    }
    let unsent_bytes: u64 = buf.iter().map(|m| m.pkt_len() as u64).sum();
    c.tx_packets[port].add(sent as u64);
    c.tx_bytes[port].add(bytes - unsent_bytes);
    c.drops[DropReason::TxFull as usize].add(buf.len() as u64);
    buf.clear();
    sent
}
