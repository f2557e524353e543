//! The worker lcore: poll its RX queues, run each packet through the
//! pipeline, relay or buffer it by output port, poll the stages that hold
//! packets of their own, flush every iteration. Run to completion; no locks,
//! allocation, logging or syscalls while a packet is in hand (the idle
//! back-off and receive coalescing sleep only with the rings drained and
//! everything flushed, and never past a stage's deadline; the doorbell that
//! wakes a sleeping management lcore after a punt rings after the flush).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk_bindings::port::RxQueue;
use dpdk_bindings::ring::Producer;
use dpdk_bindings::{Burst, Mbuf, Mempool};

use crate::dataplane::dispatch::act;
use crate::dataplane::doorbell::Doorbell;
use crate::dataplane::idle::{Idle, Pause};
use crate::dataplane::mgmt_frames::MgmtFrames;
use crate::dataplane::pipeline::{process, Ingress, Verdict};
use crate::dataplane::sinks::RelayCtx;
use crate::dataplane::sinks::Sinks;
use crate::dataplane::stage::Stage;
use crate::dataplane::tunnel::{TunnelRx, TunnelSenders};
use crate::dataplane::tx::TxPorts;
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::{Published, Tables};
use crate::time::{Clock, Time};

/// Everything one worker owns.
#[derive(Debug)]
pub struct Worker {
    /// Worker number (0-based), also its TX queue id on every port.
    pub id: usize,
    /// RX queues it polls, each with its port index.
    pub rx: Vec<(RxQueue, usize)>,
    /// Its TX queues and buffers.
    pub tx: TxPorts,
    /// Slow-path ring to the management lcore.
    pub punt: Producer,
    /// Wakes the management lcore when it sleeps and this worker punted.
    pub doorbell: Doorbell,
    /// Its counters.
    pub counters: Arc<WorkerCounters>,
    /// The tables.
    pub tables: Published,
    /// Small mbufs for relay headers (fan-out).
    pub headers: Arc<Mempool>,
    /// The packet pool (whole copies of relayed packets into the tunnel).
    pub pool: Arc<Mempool>,
    /// Set by the management lcore to stop.
    pub stop: Arc<AtomicBool>,
    /// Idle back-off.
    pub idle: Idle,
    /// The appliance's clock (deadlines of stages).
    pub clock: Clock,
    /// Stages polled every iteration (see [`crate::dataplane::stage`]).
    pub stages: Vec<Box<dyn Stage>>,
    /// The management lcore's frames this worker sends for it (af_packet
    /// ports), polled first in every iteration.
    pub mgmt_frames: MgmtFrames,
    /// Its sending side of the tunnel, one per peer (empty: no tunnel).
    pub tunnel_tx: TunnelSenders,
    /// Its receiving side of the tunnel (also polled as a stage).
    pub tunnel_rx: Option<TunnelRx>,
}

impl Worker {
    /// The loop. Returns 0 when stopped.
    pub fn run(mut self) -> i32 {
        if self.idle.sleeps() {
            // Coalescing sleeps are sized to the traffic: Linux's default
            // 50 µs of timer slack would add to each one.
            crate::time::set_timer_slack();
        }
        let mut rx = Burst::new();
        loop {
            // Seen at the start, the stop still lets this iteration run, so
            // what the management lcore queued for us before it stopped us
            // (its IGMP leaves) goes out (Acquire: its frames are visible).
            let stopping = self.stop.load(Ordering::Acquire);
            let mut handled = 0;
            // One snapshot per iteration: a table change takes effect on the
            // next burst, and the old snapshot is released before any sleep.
            // It is held until the flush, which attributes sent packets to
            // the rule outputs and tunnel paths of this same snapshot.
            let tables = self.tables.load();
            self.idle.follow(&tables.idle);
            let now = self.clock.now();
            self.tunnel_tx.follow(&tables.tunnels, &self.counters);

            if let Some(t) = &mut self.tunnel_rx {
                t.begin_burst(&tables, &self.counters);
            }
            let mut sinks = Sinks {
                tx: &mut self.tx,
                punt: &mut self.punt,
                punted: false,
                tunnel: &mut self.tunnel_tx,
                relay: RelayCtx {
                    worker: self.id,
                    headers: &self.headers,
                    pool: &self.pool,
                    counters: &self.counters,
                    now,
                },
            };
            // The management lcore's frames first: packets it held until a
            // next hop was resolved were queued before it published the
            // neighbour (`RoutingState::learn_held`), and must leave before
            // the packets of the same flows this iteration forwards directly.
            handled += self.mgmt_frames.poll(&tables, now, &mut sinks);
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
                    handle(&tables, *port, m, now, &mut sinks, self.tunnel_rx.as_mut());
                }
            }
            let stages = self
                .stages
                .iter_mut()
                .map(|s| &mut **s as &mut dyn Stage)
                .chain(self.tunnel_rx.iter_mut().map(|t| t as &mut dyn Stage));
            for stage in stages {
                handled += stage.poll(&tables, now, &mut sinks);
            }
            // Last, so what this iteration queued can leave in it.
            handled += sinks.tunnel.drain(&tables, now, sinks.tx, &self.counters);
            let punted = sinks.punted;
            self.tx.flush_all(&tables);
            drop(tables);
            if punted {
                self.doorbell.ring();
            }
            if stopping {
                break;
            }
            self.counters.polls.inc();
            if handled > 0 {
                self.counters.busy_polls.inc();
            }
            let deadline = self
                .stages
                .iter()
                .map(|s| &**s as &dyn Stage)
                .chain(self.tunnel_rx.iter().map(|t| t as &dyn Stage))
                .filter_map(|s| s.next_deadline())
                .chain(self.tunnel_tx.next_deadline())
                .min();
            let finished = if deadline.is_some() || self.idle.sleeps() {
                self.clock.now()
            } else {
                now
            };
            let until = deadline.map(|d| d.saturating_duration_since(finished));
            match self.idle.after_poll(handled, (now, finished), until) {
                Pause::Sleep(_) => self.counters.idle_sleeps.inc(),
                Pause::Coalesce(_) => self.counters.coalesce_sleeps.inc(),
                Pause::None | Pause::Spin => {}
            }
        }
        // What still waits in the tunnel's path queues is dropped, counted.
        self.tunnel_tx
            .discard_queued(&self.counters, DropReason::ShaperStopped);
        if let Some(rx) = &mut self.tunnel_rx {
            rx.publish_all();
        }
        0
    }
}

#[inline]
fn handle(
    tables: &Tables,
    port: usize,
    m: Mbuf,
    now: Time,
    sinks: &mut Sinks<'_>,
    mut tunnel_rx: Option<&mut TunnelRx>,
) {
    if !m.is_contiguous() {
        sinks.drop_one(DropReason::MultiSegment);
        return;
    }
    let mut m = match tunnel_rx.as_deref_mut() {
        Some(t) => match t.try_receive(tables, m, port, now, sinks) {
            Ok(()) => return,
            Err(m) => m,
        },
        None => m,
    };
    let verdict = process(tables, Ingress::Port(port), m.data_mut());
    match (verdict, tunnel_rx) {
        (Verdict::TunnelRx, Some(t)) => t.receive(tables, m, port, now, sinks),
        (Verdict::TunnelTx(peer), _) => {
            sinks.send_tunnel(tables, peer, m);
        }
        (v, _) => act(tables, v, m, sinks),
    }
}
