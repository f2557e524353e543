//! What a worker sends into the tunnel, at the moment it leaves: its lane
//! number, its path sequence number and its outer headers, then the TX
//! buffer of the path's port. Only this worker touches its lanes' counters.
//!
//! A packet takes its lane number when it leaves (after its path's shaper,
//! when the path has one), not when it was scheduled: the far end puts a
//! lane back in the order its packets left in, so a real-time packet that
//! passed a bulk backlog is not held there for the packets it passed, and a
//! packet the shaper dropped leaves no hole. The two copies of a `redundant`
//! packet share one number, which the first of them to leave takes.
//!
//! An encrypted tunnel seals each packet here, as it leaves, under the
//! current send key ([`Sealer`]). The two copies of a `redundant` packet
//! are sealed apart (each path has its own nonce), so the second is a copy
//! of the payload rather than a shared reference to it.

use std::sync::Arc;

use dpdk_bindings::{Mbuf, Mempool, SharedMbuf};

use crate::buf::PacketBuf;
use crate::config::tunnel::Tier;
use crate::dataplane::tx::{TxPorts, TxTag};
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::Tables;
use crate::time::Time;
use crate::tunnel::crypto::aead::PathSeqs;
use crate::tunnel::encap::{self, Outer, OUTER_LEN};
use crate::tunnel::scheduler;
use crate::tunnel::{TunnelTable, LANE_PORT_BASE, MAX_PATHS};
use crate::wire::tunnel::{flags, Kind as PacketKind, TunnelRepr};
use crate::wire::{EthernetFrame, MacAddr};

use super::keys::Sealer;

/// Bytes of the tag a sealed packet carries.
const TAG: usize = crate::tunnel::crypto::aead::TAG_LEN;

/// A worker's lane for network-control and real-time packets is its id plus
/// this (half the lanes the far end reorders).
pub const URGENT_LANE: u16 = (crate::tunnel::MAX_LANES / 2) as u16;

/// A packet scheduled onto a path and not yet sent: not numbered nor
/// encapsulated. What it keeps of its classification lets it be scheduled
/// again if its path goes away while it waits.
#[derive(Debug)]
pub struct Held {
    pub(super) body: Body,
    pub(super) tos: u8,
    pub(super) unordered: bool,
    /// Its tier (network control and real-time go on the urgent lane).
    pub(super) tier: Tier,
    /// Its class (index into the classes) and what its scheduler saw.
    pub(super) class: usize,
    pub(super) pkt: scheduler::Packet,
    pub(super) number: Number,
}

/// What a held packet carries.
#[derive(Debug)]
pub(super) enum Body {
    /// The inner packet behind its Ethernet header (which the outer
    /// headers will take the place of).
    Whole(Mbuf),
    /// One copy of a `redundant` packet: the inner packet alone, shared
    /// with the other copy, and its length.
    Copy(SharedMbuf, usize),
}

/// Where a held packet's lane number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Number {
    /// The lane's next when it leaves.
    AtDeparture,
    /// A `redundant` copy: the pair's (the first copy to leave takes it).
    Pair(u32),
    /// A `redundant` copy numbered when scheduled (the pair table was full).
    Fixed(u32),
}

impl Held {
    /// Its length on the wire once encapsulated, with `tag` bytes of tag
    /// ([`TunnelTable::tag_len`]: the shaper charges the tag too).
    pub(super) fn wire_len(&self, tag: usize) -> usize {
        tag + match &self.body {
            Body::Whole(m) => m.pkt_len() + encap::ADDED,
            Body::Copy(_, inner_len) => OUTER_LEN + inner_len,
        }
    }

    /// Whether it goes first (and on the urgent lane).
    pub(super) fn urgent(&self) -> bool {
        self.tier.goes_first()
    }
}

/// Where packets go as they leave, for one loop iteration: the snapshot
/// their TX tags refer to, the worker's TX buffers and its counters.
pub(super) struct Outlet<'a> {
    pub tables: &'a Tables,
    pub tx: &'a mut TxPorts,
    pub counters: &'a WorkerCounters,
}

/// One lane's numbering.
#[derive(Debug)]
struct Lane {
    id: u16,
    seq: u32,
    /// Per path: its sequence, the nonce of a sealed packet.
    path_seq: PathSeqs,
}

/// The lane numbers of `redundant` pairs whose copies wait in the shapers:
/// fixed slots, a free list that never grows past them.
#[derive(Debug)]
struct Pairs {
    seq: Box<[Option<u32>]>,
    /// Copies of the pair not yet sent or dropped.
    alive: Box<[u8]>,
    free: Vec<u32>,
}

impl Pairs {
    fn new(n: usize) -> Self {
        Self {
            seq: vec![None; n].into_boxed_slice(),
            alive: vec![0; n].into_boxed_slice(),
            free: (0..u32::try_from(n).unwrap_or(u32::MAX)).rev().collect(),
        }
    }

    /// A slot for a new pair, if one is free.
    fn open(&mut self) -> Option<u32> {
        let i = self.free.pop()?;
        self.seq[i as usize] = None;
        self.alive[i as usize] = 2;
        Some(i)
    }

    /// One copy of pair `i` is gone (sent or dropped).
    fn close_one(&mut self, i: u32) {
        let Some(alive) = self.alive.get_mut(i as usize) else {
            return;
        };
        *alive = alive.saturating_sub(1);
        if *alive == 0 {
            // At most as many as there are slots: within its capacity.
            self.free.push(i);
        }
    }
}

/// The lanes' numbering and what encapsulation needs.
#[derive(Debug)]
pub struct Departures {
    id: usize,
    table: Arc<TunnelTable>,
    /// Our lanes: default and bulk (`[0]`, the worker's id), network control
    /// and real-time (`[1]`).
    lanes: [Lane; 2],
    /// Per path index, refreshed every burst: our MAC and the next hop's.
    macs: [Option<(MacAddr, MacAddr)>; MAX_PATHS],
    /// Small mbufs for the copies' headers (`redundant`).
    headers: Arc<Mempool>,
    /// Full-size mbufs for the sealed copies of `redundant` packets.
    pool: Arc<Mempool>,
    pairs: Pairs,
    /// Seals what leaves (`None`: the tunnel is in clear).
    sealer: Option<Sealer>,
}

impl Departures {
    /// Worker `id`'s, with room for `pairs` `redundant` pairs waiting at once.
    pub fn new(
        id: usize,
        table: Arc<TunnelTable>,
        headers: Arc<Mempool>,
        pool: Arc<Mempool>,
        pairs: usize,
    ) -> Self {
        Self {
            sealer: table
                .crypto
                .as_ref()
                .map(|c| Sealer::new(id, Arc::clone(c))),
            pool,
            id,
            lanes: [0, URGENT_LANE].map(|base| Lane {
                id: u16::try_from(id).unwrap_or(0).wrapping_add(base),
                seq: 0,
                path_seq: PathSeqs::default(),
            }),
            macs: [None; MAX_PATHS],
            headers,
            table,
            pairs: Pairs::new(pairs),
        }
    }

    /// Takes a reloaded table: the MACs follow its path indices at the next
    /// burst; the lanes' numbers and the nonces (kept by path id) carry on,
    /// as do the keys.
    pub fn retable(&mut self, table: Arc<TunnelTable>) {
        self.table = table;
    }

    /// The worker's id.
    pub fn worker(&self) -> usize {
        self.id
    }

    /// Once per burst: picks up new keys.
    #[inline]
    pub fn begin_burst(&mut self) {
        if let Some(s) = &mut self.sealer {
            s.begin_burst();
        }
    }

    /// Path `p`'s MACs for this burst (`None`: its next hop is unresolved).
    pub fn set_macs(&mut self, p: usize, macs: Option<(MacAddr, MacAddr)>) {
        if let Some(m) = self.macs.get_mut(p) {
            *m = macs;
        }
    }

    /// The number both copies of a new `redundant` pair will carry.
    pub(super) fn pair_number(&mut self, urgent: bool) -> Number {
        match self.pairs.open() {
            Some(i) => Number::Pair(i),
            None => Number::Fixed(self.take_lane_seq(urgent, false)),
        }
    }

    /// A held packet that will not be sent (the shaper dropped it, or its
    /// path went away with nowhere else to go): frees what it holds of its
    /// pair. The caller counts it.
    pub(super) fn discard(&mut self, held: Held) {
        if let Number::Pair(i) = held.number {
            self.pairs.close_one(i);
        }
    }

    /// The lane number of a packet leaving now on the urgent lane or the
    /// other: an ordered packet takes the lane's next; an unordered one
    /// carries it without taking it (it marks what was sent before it).
    #[inline]
    fn take_lane_seq(&mut self, urgent: bool, unordered: bool) -> u32 {
        let lane = &mut self.lanes[usize::from(urgent)];
        let seq = lane.seq;
        if !unordered {
            lane.seq = lane.seq.wrapping_add(1);
        }
        seq
    }

    /// Numbers, encapsulates and buffers `held` for path `p`'s port.
    /// Returns whether it was handed to the TX buffer; a packet that was not
    /// is counted here.
    #[inline]
    pub(super) fn depart(&mut self, p: usize, held: Held, now: Time, o: &mut Outlet<'_>) -> bool {
        let counters = o.counters;
        // A path without a resolved next hop takes no number.
        if self.macs.get(p).copied().flatten().is_none() {
            self.discard(held);
            return self.refused(p, counters, DropReason::TunnelNoPath);
        }
        // A packet that cannot be sealed takes no number (it would leave a
        // hole the far end waits for).
        let key = match self.sealer.as_mut().map(|s| s.admit(now)) {
            None => 0,
            Some(Ok(id)) => id,
            Some(Err(reason)) => {
                self.discard(held);
                return self.refused(p, counters, reason);
            }
        };
        let urgent = held.urgent();
        let lane_seq = match held.number {
            Number::AtDeparture => self.take_lane_seq(urgent, held.unordered),
            Number::Fixed(seq) => seq,
            Number::Pair(i) => {
                let seq = match self.pairs.seq.get(i as usize).copied().flatten() {
                    Some(seq) => seq,
                    None => {
                        let seq = self.take_lane_seq(urgent, false);
                        if let Some(slot) = self.pairs.seq.get_mut(i as usize) {
                            *slot = Some(seq);
                        }
                        seq
                    }
                };
                self.pairs.close_one(i);
                seq
            }
        };
        let Some(outer) = self.outer(p, &held, lane_seq, key, now) else {
            return self.refused(p, counters, DropReason::TunnelNoPath);
        };
        let port = self.table.paths[p].port;
        match held.body {
            Body::Whole(mut m) => {
                // The inner packet may span segments: its length is the packet's.
                let inner_len = m
                    .pkt_len()
                    .saturating_sub(EthernetFrame::<&[u8]>::HEADER_LEN);
                if PacketBuf::prepend(&mut m, encap::ADDED).is_err() {
                    return self.refused(p, counters, DropReason::NoMbuf);
                }
                let Some(sealer) = &self.sealer else {
                    encap::write_outer(
                        &mut PacketBuf::data_mut(&mut m)[..OUTER_LEN],
                        &outer,
                        inner_len,
                    );
                    let tag = TxTag::path(self.table.index, p, m.pkt_len());
                    o.tx.push(port, m, tag, o.tables);
                    return true;
                };
                // Sealed in place: the payload must be in one piece, with
                // room after it for the tag.
                if !m.is_contiguous() {
                    return self.refused(p, counters, DropReason::MultiSegment);
                }
                if m.append(TAG as u16).is_none() {
                    return self.refused(p, counters, DropReason::NoMbuf);
                }
                let frame = PacketBuf::data_mut(&mut m);
                encap::write_outer(&mut frame[..OUTER_LEN], &outer, inner_len + TAG);
                sealer.seal(frame);
                let tag = TxTag::path(self.table.index, p, m.pkt_len());
                o.tx.push(port, m, tag, o.tables);
            }
            Body::Copy(payload, inner_len) if self.sealer.is_some() => {
                // A copy of its own: sealed under this path's nonce.
                let Some(mut c) = self.pool.alloc() else {
                    return self.refused(p, counters, DropReason::NoMbuf);
                };
                let Some(inner) = payload.data().get(..inner_len) else {
                    return self.refused(p, counters, DropReason::MultiSegment);
                };
                let Some(frame) = u16::try_from(OUTER_LEN + inner_len + TAG)
                    .ok()
                    .and_then(|n| c.append(n))
                else {
                    return self.refused(p, counters, DropReason::NoMbuf);
                };
                encap::write_outer(&mut frame[..OUTER_LEN], &outer, inner_len + TAG);
                frame[OUTER_LEN..OUTER_LEN + inner_len].copy_from_slice(inner);
                if let Some(s) = &self.sealer {
                    s.seal(frame);
                }
                let tag = TxTag::path(self.table.index, p, c.pkt_len());
                o.tx.push(port, c, tag, o.tables);
            }
            Body::Copy(payload, inner_len) => {
                // Each copy is a private header mbuf chained in front of the
                // shared inner packet (as the relay's fan-out does): the
                // payload is not copied.
                let Some(mut h) = self.headers.alloc() else {
                    return self.refused(p, counters, DropReason::NoMbuf);
                };
                let Some(buf) = h.append(OUTER_LEN as u16) else {
                    return self.refused(p, counters, DropReason::NoMbuf);
                };
                encap::write_outer(buf, &outer, inner_len);
                if h.chain_shared(payload).is_err() {
                    return self.refused(p, counters, DropReason::NoMbuf);
                }
                let tag = TxTag::path(self.table.index, p, h.pkt_len());
                o.tx.push(port, h, tag, o.tables);
            }
        }
        true
    }

    /// Counts a packet for path `p` that was not sent, for the worker and
    /// the path.
    pub(super) fn count_drop(&self, p: usize, counters: &WorkerCounters, reason: DropReason) {
        counters.drop_one(reason);
        if let Some(c) = self.table.path_counters.get(p) {
            c.worker(self.id).drops.inc(reason);
        }
    }

    /// [`Self::count_drop`], for `depart`: returns false.
    fn refused(&self, p: usize, counters: &WorkerCounters, reason: DropReason) -> bool {
        self.count_drop(p, counters, reason);
        false
    }

    /// The outer headers for path `p`.
    #[inline]
    fn outer(
        &mut self,
        p: usize,
        held: &Held,
        lane_seq: u32,
        key: u16,
        now: Time,
    ) -> Option<Outer> {
        let path = self.table.paths.get(p)?;
        let (src_mac, dst_mac) = self.macs[p]?;
        let lane = &mut self.lanes[usize::from(held.urgent())];
        let (dst_ip, dst_port, src_port) = self
            .table
            .endpoint(p, LANE_PORT_BASE.wrapping_add(lane.id))?;
        let path_seq = lane.path_seq.next(path.id);
        Some(Outer {
            src_mac,
            dst_mac,
            src_ip: path.local,
            dst_ip,
            src_port,
            dst_port,
            tos: held.tos,
            header: TunnelRepr {
                kind: PacketKind::Data,
                flags: if held.unordered { flags::UNORDERED } else { 0 },
                path: path.id,
                key,
                lane: lane.id,
                epoch: self.table.epoch,
                lane_seq,
                path_seq,
                sent_us: now.as_micros_u32(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_slot_is_free_again_once_both_copies_are_gone() {
        let mut p = Pairs::new(2);
        let a = p.open().unwrap();
        let b = p.open().unwrap();
        assert_eq!(p.open(), None, "two slots");
        p.close_one(a);
        assert_eq!(p.open(), None, "one copy of a still waits");
        p.close_one(a);
        assert_eq!(p.open(), Some(a));
        p.close_one(b);
        p.close_one(b);
        assert_eq!(p.free.len(), 1);
        assert!(p.free.capacity() >= 2, "the free list never grows");
    }
}
