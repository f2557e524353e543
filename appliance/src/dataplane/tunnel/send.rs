//! A worker's sending side of the tunnel: classify the packet, let its
//! class's scheduler pick the path (or two), number it on the worker's own
//! lane, encapsulate it, buffer it for the path's port. Only this worker
//! touches its lane's sequence counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dpdk_bindings::{Mbuf, Mempool};

use crate::buf::PacketBuf;
use crate::config::tunnel::SchedulerName;
use crate::dataplane::tx::{TxPorts, TxTag};
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::Tables;
use crate::time::Time;
use crate::tunnel::class::FlowKey;
use crate::tunnel::encap::{self, Outer, OUTER_LEN};
use crate::tunnel::scheduler::{self, Choice, Kind, PathView, SchedConfig, Scheduler};
use crate::tunnel::{TunnelTable, LANE_PORT_BASE, MAX_PATHS};
use crate::wire::tunnel::{flags, Kind as PacketKind, TunnelRepr};
use crate::wire::{EthernetFrame, MacAddr};

/// One worker's sending state.
#[derive(Debug)]
pub struct TunnelSender {
    id: usize,
    table: Arc<TunnelTable>,
    /// Our lane (the worker's id) and its counters.
    lane: u16,
    lane_seq: u32,
    path_seq: [u32; MAX_PATHS],
    /// One scheduler per class, default last.
    schedulers: Vec<Scheduler>,
    /// Per path index, refreshed every burst.
    views: [PathView; MAX_PATHS],
    /// Per path index, refreshed every burst: our MAC and the next hop's.
    macs: [Option<(MacAddr, MacAddr)>; MAX_PATHS],
    /// Small mbufs for the second copy's headers (`redundant`).
    headers: Arc<Mempool>,
}

/// The scheduler of a class.
fn scheduler(name: SchedulerName, bindings: &[(ipnet::Ipv4Net, u8)], seed: u64) -> Scheduler {
    let kind = match name {
        SchedulerName::FlowHash => Kind::FlowHash,
        SchedulerName::SourceSubnet => Kind::SourceSubnet(
            bindings
                .iter()
                .map(|(net, path)| (u32::from(net.network()), net.prefix_len(), *path))
                .collect(),
        ),
        SchedulerName::Wlb => Kind::Wlb,
        SchedulerName::MinRtt => Kind::MinRtt,
        SchedulerName::Backup => Kind::Backup,
        SchedulerName::Redundant => Kind::Redundant,
    };
    Scheduler::new(
        kind,
        &SchedConfig {
            // Every worker hashes a flow to the same path.
            hash_seed: seed,
            ..SchedConfig::default()
        },
    )
}

impl TunnelSender {
    /// Worker `id`'s sender for `table`.
    pub fn new(id: usize, table: Arc<TunnelTable>, headers: Arc<Mempool>) -> Self {
        let seed = u64::from(table.epoch) ^ 0x5eed;
        let schedulers = table
            .classes
            .all()
            .iter()
            .map(|c| scheduler(c.scheduler, &c.bindings, seed))
            .collect();
        Self {
            id,
            lane: u16::try_from(id).unwrap_or(0),
            lane_seq: 0,
            path_seq: [0; MAX_PATHS],
            schedulers,
            views: [PathView::default(); MAX_PATHS],
            macs: [None; MAX_PATHS],
            headers,
            table,
        }
    }

    /// Reads the paths' state once per burst: usable (up, not taken down,
    /// next hop resolved), rate and delay.
    #[inline]
    pub fn begin_burst(&mut self, tables: &Tables) {
        for (i, p) in self.table.paths.iter().enumerate().take(MAX_PATHS) {
            let state = &self.table.live[i];
            let macs = tables.macs_to(p.next_hop, p.port);
            self.macs[i] = macs;
            self.views[i] = PathView {
                usable: state.usable() && macs.is_some(),
                backup: p.backup,
                priority: p.priority,
                rate_bps: state.rate_bps.load(Ordering::Relaxed),
                delay_us: state.delay_us.load(Ordering::Relaxed),
                weight: p.rate_bps,
            };
        }
    }

    /// A packet routed into the tunnel (TTL already decremented) or a relayed
    /// copy sent into it: classify, schedule, encapsulate, buffer for TX.
    /// Its Ethernet header and inner IPv4 header must be in the first
    /// segment (a relayed fan-out copy is a header mbuf in front of a shared
    /// payload). Returns whether it left on at least one path.
    #[inline]
    pub fn send(
        &mut self,
        tables: &Tables,
        mut m: Mbuf,
        now: Time,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) -> bool {
        let frame = m.data();
        let Some(key) = frame
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(FlowKey::from_header)
        else {
            counters.drop_one(DropReason::TunnelBadInner);
            return false;
        };
        let tos = encap::inner_tos(frame);
        let class = self.table.classes.classify(&key);
        let pkt = scheduler::Packet {
            len: u32::try_from(m.pkt_len() + encap::ADDED).unwrap_or(u32::MAX),
            src: u32::from(key.src),
            dst: u32::from(key.dst),
            proto: key.proto,
            sport: key.sport,
            dport: key.dport,
        };
        let n = self.table.paths.len().min(MAX_PATHS);
        let Some(sched) = self.schedulers.get_mut(class) else {
            counters.drop_one(DropReason::TunnelNoPath);
            return false;
        };
        let choice = sched.pick(&self.views[..n], &pkt, now.as_nanos());
        let unordered = sched.bypasses_reorder();
        let cc = self.table.class_counters[class].worker(self.id);
        cc.packets.inc();
        cc.bytes.add(u64::from(key.len));
        // An ordered packet takes the lane's next number; an unordered one
        // carries it without taking it (it marks what was sent before it).
        let lane_seq = self.lane_seq;
        if !unordered && choice != Choice::None {
            self.lane_seq = self.lane_seq.wrapping_add(1);
        }
        let copy = Numbering {
            tos,
            lane_seq,
            unordered,
            now,
        };
        match choice {
            Choice::None => {
                cc.no_path.inc();
                counters.drop_one(DropReason::TunnelNoPath);
                false
            }
            Choice::One(p) => {
                let p = usize::from(p);
                let Some(outer) = self.outer(p, &copy) else {
                    counters.drop_one(DropReason::TunnelNoPath);
                    return false;
                };
                // The inner packet may span segments: its length is the packet's.
                let inner_len = m
                    .pkt_len()
                    .saturating_sub(EthernetFrame::<&[u8]>::HEADER_LEN);
                let Ok(front) = PacketBuf::prepend(&mut m, encap::ADDED) else {
                    counters.drop_one(DropReason::NoMbuf);
                    return false;
                };
                let _ = front;
                encap::write_outer(
                    &mut PacketBuf::data_mut(&mut m)[..OUTER_LEN],
                    &outer,
                    inner_len,
                );
                let port = self.table.paths[p].port;
                let tag = TxTag::path(p, m.pkt_len());
                tx.push(port, m, tag, tables);
                true
            }
            Choice::Two(a, b) => {
                cc.copies.inc();
                self.send_copies(
                    tables,
                    m,
                    [usize::from(a), usize::from(b)],
                    &copy,
                    tx,
                    counters,
                )
            }
        }
    }

    /// The outer headers for path `p`.
    #[inline]
    fn outer(&mut self, p: usize, copy: &Numbering) -> Option<Outer> {
        let path = self.table.paths.get(p)?;
        let (src_mac, dst_mac) = self.macs[p]?;
        let seq = &mut self.path_seq[p];
        *seq = seq.wrapping_add(1);
        Some(Outer {
            src_mac,
            dst_mac,
            src_ip: path.local,
            dst_ip: path.remote,
            src_port: LANE_PORT_BASE.wrapping_add(self.lane),
            dst_port: self.table.port,
            tos: copy.tos,
            header: TunnelRepr {
                kind: PacketKind::Data,
                flags: if copy.unordered { flags::UNORDERED } else { 0 },
                path: path.id,
                key: 0,
                lane: self.lane,
                epoch: self.table.epoch,
                lane_seq: copy.lane_seq,
                path_seq: *seq,
                sent_us: copy.now.as_micros_u32(),
            },
        })
    }

    /// Sends the inner packet on two paths: each copy is a private header
    /// mbuf chained in front of the shared inner packet (as the relay's
    /// fan-out does), so the payload is not copied. Needs a one-segment
    /// packet (a relayed copy into the tunnel is made one).
    fn send_copies(
        &mut self,
        tables: &Tables,
        mut m: Mbuf,
        paths: [usize; 2],
        copy: &Numbering,
        tx: &mut TxPorts,
        counters: &WorkerCounters,
    ) -> bool {
        let inner_len = m
            .pkt_len()
            .saturating_sub(EthernetFrame::<&[u8]>::HEADER_LEN);
        let payload = if m.adj(EthernetFrame::<&[u8]>::HEADER_LEN as u16) {
            m.into_shared()
        } else {
            Err(m)
        };
        let Ok(payload) = payload else {
            counters.drop_one(DropReason::MultiSegment);
            return false;
        };
        let mut sent = false;
        for p in paths {
            let Some(outer) = self.outer(p, copy) else {
                counters.drop_one(DropReason::TunnelNoPath);
                continue;
            };
            let Some(mut h) = self.headers.alloc() else {
                counters.drop_one(DropReason::NoMbuf);
                continue;
            };
            let Some(buf) = h.append(OUTER_LEN as u16) else {
                counters.drop_one(DropReason::NoMbuf);
                continue;
            };
            encap::write_outer(buf, &outer, inner_len);
            if h.chain_shared(payload.share()).is_err() {
                counters.drop_one(DropReason::NoMbuf);
                continue;
            }
            let port = self.table.paths[p].port;
            let tag = TxTag::path(p, h.pkt_len());
            tx.push(port, h, tag, tables);
            sent = true;
        }
        sent
    }
}

/// What every copy of one packet shares: its tunnel numbering and time.
#[derive(Debug, Clone, Copy)]
struct Numbering {
    tos: u8,
    lane_seq: u32,
    unordered: bool,
    now: Time,
}
