//! The worker lcore: poll its RX queues, run each packet through the
//! pipeline, buffer by output port, flush every iteration. Run to
//! completion; no locks, allocation, logging or syscalls while packets flow
//! (the idle back-off sleeps only when there are none).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk_bindings::port::{RxQueue, TxQueue};
use dpdk_bindings::ring::Producer;
use dpdk_bindings::{Burst, Mbuf};

use crate::dataplane::counters::{DropReason, WorkerCounters};
use crate::dataplane::idle::Idle;
use crate::dataplane::pipeline::{process, Verdict};
use crate::tables::{Published, Tables};

/// Everything one worker owns.
#[derive(Debug)]
pub struct Worker {
    /// Worker number (0-based), also its TX queue id on every port.
    pub id: usize,
    /// RX queues it polls, each with its port index.
    pub rx: Vec<(RxQueue, usize)>,
    /// Its TX queue on every port, by port index.
    pub tx: Vec<TxQueue>,
    /// Slow-path ring to the management lcore.
    pub punt: Producer,
    /// Its counters.
    pub counters: Arc<WorkerCounters>,
    /// The tables.
    pub tables: Published,
    /// Set by the management lcore to stop.
    pub stop: Arc<AtomicBool>,
    /// Idle back-off.
    pub idle: Idle,
}

impl Worker {
    /// The loop. Returns 0 when stopped.
    pub fn run(mut self) -> i32 {
        // Per-port transmit buffers (l3fwd's `tx_mbufs`).
        let mut txb: Vec<Burst> = (0..self.tx.len()).map(|_| Burst::new()).collect();
        let mut rx = Burst::new();
        while !self.stop.load(Ordering::Relaxed) {
            let mut handled = 0;
            // One snapshot per iteration: a table change takes effect on the
            // next burst, and the old snapshot is released before any sleep.
            let tables = self.tables.load();
            for (queue, port) in &mut self.rx {
                let n = queue.rx_burst(&mut rx);
                if n == 0 {
                    continue;
                }
                handled += n;
                for m in rx.drain(..) {
                    let c = &self.counters;
                    c.rx_packets[*port].inc();
                    c.rx_bytes[*port].add(m.pkt_len() as u64);
                    handle(&tables, *port, m, &mut txb, &mut self.tx, &mut self.punt, c);
                }
            }
            drop(tables);
            for (port, q) in self.tx.iter_mut().enumerate() {
                flush(q, &mut txb[port], port, &self.counters);
            }
            self.counters.polls.inc();
            if handled > 0 {
                self.counters.busy_polls.inc();
            }
            if self.idle.after_poll(handled) {
                self.counters.idle_sleeps.inc();
            }
        }
        for (port, q) in self.tx.iter_mut().enumerate() {
            flush(q, &mut txb[port], port, &self.counters);
        }
        0
    }
}

#[inline]
fn handle(
    tables: &Tables,
    port: usize,
    mut m: Mbuf,
    txb: &mut [Burst],
    tx: &mut [TxQueue],
    punt: &mut Producer,
    c: &WorkerCounters,
) {
    if !m.is_contiguous() {
        c.drop_one(DropReason::MultiSegment);
        return;
    }
    match process(tables, port, m.data_mut()) {
        Verdict::Forward(out) => {
            let Some(buf) = txb.get_mut(out) else {
                c.drop_one(DropReason::TxFull);
                return;
            };
            if buf.is_full() {
                if let Some(q) = tx.get_mut(out) {
                    flush(q, buf, out, c);
                }
            }
            // After a flush the buffer has room unless the queue took
            // nothing, in which case flush already counted and freed.
            if buf.try_push(m).is_err() {
                c.drop_one(DropReason::TxFull);
            }
        }
        Verdict::Punt(_) => match punt.enqueue(m) {
            Ok(()) => c.punted.inc(),
            Err(_m) => c.drop_one(DropReason::PuntRingFull),
        },
        Verdict::Drop(reason) => c.drop_one(reason),
    }
}

/// Sends what the buffer holds; what the queue refuses is freed and counted.
/// Returns how many were sent.
#[inline]
pub(crate) fn flush(q: &mut TxQueue, buf: &mut Burst, port: usize, c: &WorkerCounters) -> usize {
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
