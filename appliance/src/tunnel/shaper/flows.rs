//! The packets a path's queue holds and the flow queues they wait in.
//!
//! [`Slab`]: every packet of one worker's queue for one path, in slots
//! allocated once; each flow queue is a linked list through the slots, so
//! a queue of many flows needs no memory per flow beyond its list head.
//! [`Flows`]: one tier's flow queues, served by deficit round robin with
//! fq_codel's new and old lists (RFC 8290 §4): a flow that was idle comes
//! first once, so sparse flows (DNS, a keystroke, a probe) pass a bulk
//! flow's standing queue, and each flow has its own CoDel.

use std::collections::VecDeque;

use super::codel::{self, Codel, Fifo};

/// No slot.
const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Slot<T> {
    value: Option<T>,
    next: u32,
    len: u32,
    queued_at: u64,
}

/// Fixed storage for the packets of one path's queue.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Box<[Slot<T>]>,
    free: u32,
    used: u32,
}

impl<T> Slab<T> {
    /// Room for `capacity` packets, allocated now and never again.
    pub fn new(capacity: u32) -> Self {
        let slots = (0..capacity)
            .map(|i| Slot {
                value: None,
                next: if i + 1 < capacity { i + 1 } else { NIL },
                len: 0,
                queued_at: 0,
            })
            .collect();
        Self {
            slots,
            free: if capacity > 0 { 0 } else { NIL },
            used: 0,
        }
    }

    /// Packets held.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Whether no slot is free.
    pub fn is_full(&self) -> bool {
        self.free == NIL
    }

    /// Every packet held, to change in place (not their order or lengths).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|s| s.value.as_mut())
    }

    fn take(&mut self, value: T, len: u32, queued_at: u64) -> Result<u32, T> {
        let i = self.free;
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return Err(value);
        };
        self.free = slot.next;
        *slot = Slot {
            value: Some(value),
            next: NIL,
            len,
            queued_at,
        };
        self.used += 1;
        Ok(i)
    }

    fn release(&mut self, i: u32) -> Option<(T, u32, u64, u32)> {
        let slot = self.slots.get_mut(i as usize)?;
        let value = slot.value.take()?;
        let next = slot.next;
        slot.next = self.free;
        self.free = i;
        self.used -= 1;
        Some((value, slot.len, slot.queued_at, next))
    }
}

/// A FIFO through the slab.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    bytes: u64,
}

impl Default for List {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            bytes: 0,
        }
    }
}

impl List {
    fn is_empty(&self) -> bool {
        self.head == NIL
    }
}

/// One flow list and the slab it lives in, as CoDel sees it.
struct FlowFifo<'a, T> {
    slab: &'a mut Slab<T>,
    list: &'a mut List,
}

impl<T> Fifo for FlowFifo<'_, T> {
    type Item = T;

    fn pop(&mut self) -> Option<(T, u32, u64)> {
        let (value, len, at, next) = self.slab.release(self.list.head)?;
        self.list.head = next;
        if next == NIL {
            self.list.tail = NIL;
        }
        self.list.bytes -= u64::from(len);
        Some((value, len, at))
    }

    fn bytes(&self) -> u64 {
        self.list.bytes
    }
}

/// Which of the two lists of active flows a flow is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Active {
    #[default]
    No,
    New,
    Old,
}

#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    list: List,
    deficit: i32,
    codel: Codel,
    active: Active,
}

/// One tier's flow queues.
#[derive(Debug)]
pub struct Flows {
    flows: Box<[Flow]>,
    new: VecDeque<u16>,
    old: VecDeque<u16>,
    quantum: i32,
    packets: u32,
    bytes: u64,
}

impl Flows {
    /// `n` flow queues (1 to 65536), each served `quantum` bytes a round.
    pub fn new(n: usize, quantum: u32) -> Self {
        let n = n.clamp(1, 1 << 16);
        Self {
            flows: vec![Flow::default(); n].into_boxed_slice(),
            // Each flow is on one list at most: these never grow.
            new: VecDeque::with_capacity(n),
            old: VecDeque::with_capacity(n),
            quantum: i32::try_from(quantum).unwrap_or(i32::MAX),
            packets: 0,
            bytes: 0,
        }
    }

    /// Packets queued.
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Bytes queued.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Queues `value` (`len` bytes, at `now` ns) on the flow `hash` falls
    /// in; gives it back when the slab is full.
    pub fn enqueue<T>(
        &mut self,
        slab: &mut Slab<T>,
        hash: u32,
        value: T,
        len: u32,
        now: u64,
    ) -> Result<(), T> {
        let f = (hash as usize) % self.flows.len();
        let i = slab.take(value, len, now)?;
        let flow = &mut self.flows[f];
        match slab.slots.get_mut(flow.list.tail as usize) {
            Some(tail) => tail.next = i,
            None => flow.list.head = i,
        }
        flow.list.tail = i;
        flow.list.bytes += u64::from(len);
        if flow.active == Active::No {
            flow.active = Active::New;
            flow.deficit = self.quantum;
            // `f` < flows ≤ 65536.
            self.new.push_back(f as u16);
        }
        self.packets += 1;
        self.bytes += u64::from(len);
        Ok(())
    }

    /// The next packet to send at `now` (ns), or `None` when every flow is
    /// empty; packets CoDel drops on the way go to `drop`.
    pub fn dequeue<T>(
        &mut self,
        slab: &mut Slab<T>,
        now: u64,
        params: &codel::Params,
        mut drop: impl FnMut(T, u32),
    ) -> Option<(T, u32)> {
        loop {
            let (f, from_new) = match self.new.front() {
                Some(&f) => (f, true),
                None => (*self.old.front()?, false),
            };
            let flow = &mut self.flows[usize::from(f)];
            if flow.deficit <= 0 {
                // Its turn is used up: to the end of the old flows.
                flow.deficit += self.quantum;
                flow.active = Active::Old;
                pop_front(&mut self.new, &mut self.old, from_new);
                self.old.push_back(f);
                continue;
            }
            let before = flow.list.bytes;
            let mut fifo = FlowFifo {
                slab: &mut *slab,
                list: &mut flow.list,
            };
            let mut dropped = (0u32, 0u64);
            let out = flow.codel.dequeue(&mut fifo, now, params, |v, len| {
                dropped.0 += 1;
                dropped.1 += u64::from(len);
                drop(v, len);
            });
            let taken = before - flow.list.bytes;
            self.bytes -= taken;
            self.packets -= dropped.0 + u32::from(out.is_some());
            match out {
                Some((v, len)) => {
                    flow.deficit -= i32::try_from(len).unwrap_or(i32::MAX);
                    return Some((v, len));
                }
                None => {
                    // Empty. A new flow goes to the old list once more so
                    // that it cannot come back new at once and starve the
                    // old flows (RFC 8290 §4.2); an old one leaves.
                    pop_front(&mut self.new, &mut self.old, from_new);
                    if from_new && !self.old.is_empty() {
                        flow.active = Active::Old;
                        self.old.push_back(f);
                    } else {
                        flow.active = Active::No;
                    }
                }
            }
        }
    }

    /// The flow holding the most bytes, and how many.
    pub fn fattest(&self) -> Option<(usize, u64)> {
        self.flows
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.list.is_empty())
            .max_by_key(|(_, f)| f.list.bytes)
            .map(|(i, f)| (i, f.list.bytes))
    }

    /// Drops the head of flow `f` (fq_codel's answer to a full queue: the
    /// fattest flow pays). Returns the packet and its length.
    pub fn drop_head<T>(&mut self, slab: &mut Slab<T>, f: usize) -> Option<(T, u32)> {
        let flow = self.flows.get_mut(f)?;
        let mut fifo = FlowFifo {
            slab,
            list: &mut flow.list,
        };
        let (v, len, _) = fifo.pop()?;
        self.packets -= 1;
        self.bytes -= u64::from(len);
        // An emptied flow stays on its list; the next dequeue takes it off.
        Some((v, len))
    }
}

/// Takes the head off the list it was read from.
fn pop_front(new: &mut VecDeque<u16>, old: &mut VecDeque<u16>, from_new: bool) {
    if from_new {
        new.pop_front();
    } else {
        old.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> codel::Params {
        codel::Params::default()
    }

    #[test]
    fn flows_share_by_bytes_and_a_sparse_flow_goes_first() {
        let mut slab = Slab::new(4096);
        let mut fq = Flows::new(16, 1514);
        // Flow 1: 1000 full-size packets; flow 2: 1000 small ones.
        for i in 0..1000u32 {
            fq.enqueue(&mut slab, 1, (1, i), 1500, 0).unwrap();
            fq.enqueue(&mut slab, 2, (2, i), 100, 0).unwrap();
        }
        let mut bytes = [0u64; 4];
        let mut got = 0;
        while got < 1000 {
            let ((flow, _), len) = fq
                .dequeue(&mut slab, 0, &params(), |_, _| panic!())
                .unwrap();
            bytes[flow] += u64::from(len);
            got += 1;
        }
        let share = bytes[1] as f64 / (bytes[1] + bytes[2]) as f64;
        assert!((share - 0.5).abs() < 0.05, "byte shares {bytes:?}");
        // A new sparse flow is served next, ahead of the backlog.
        fq.enqueue(&mut slab, 3, (3, 0), 80, 0).unwrap();
        let ((flow, _), _) = fq
            .dequeue(&mut slab, 0, &params(), |_, _| panic!())
            .unwrap();
        assert_eq!(flow, 3);
        assert_eq!(fq.packets() + 1001, 2001);
        assert_eq!(slab.used(), fq.packets());
    }

    #[test]
    fn a_full_slab_gives_the_packet_back_and_the_fattest_flow_pays() {
        let mut slab = Slab::new(8);
        let mut fq = Flows::new(4, 1514);
        for i in 0..6u32 {
            fq.enqueue(&mut slab, 0, i, 1000, 0).unwrap();
        }
        fq.enqueue(&mut slab, 1, 100, 100, 0).unwrap();
        fq.enqueue(&mut slab, 1, 101, 100, 0).unwrap();
        assert!(slab.is_full());
        assert_eq!(fq.enqueue(&mut slab, 2, 7, 10, 0), Err(7));
        assert_eq!(fq.fattest(), Some((0, 6000)));
        assert_eq!(fq.drop_head(&mut slab, 0), Some((0, 1000)));
        assert!(fq.enqueue(&mut slab, 2, 7, 10, 0).is_ok());
        let mut out = Vec::new();
        while let Some((v, _)) = fq.dequeue(&mut slab, 0, &params(), |_, _| panic!()) {
            out.push(v);
        }
        out.sort_unstable();
        assert_eq!(out, vec![1, 2, 3, 4, 5, 7, 100, 101]);
        assert_eq!((fq.packets(), fq.bytes(), slab.used()), (0, 0, 0));
    }

    #[test]
    fn each_flow_has_its_own_codel() {
        let mut slab = Slab::new(4096);
        let mut fq = Flows::new(8, 1514);
        // A bulk flow with a standing 50 ms queue and a sparse one.
        let mut dropped = Vec::new();
        let mut sparse_sent = 0;
        for ms in 0..2000u64 {
            let now = ms * 1_000_000;
            fq.enqueue(&mut slab, 0, 0u8, 1500, now).unwrap();
            if ms % 20 == 0 {
                fq.enqueue(&mut slab, 5, 1u8, 100, now).unwrap();
            }
            // Half the bulk rate leaves: the bulk queue stands and CoDel
            // drops from it.
            if ms % 2 == 0 {
                if let Some((v, _)) = fq.dequeue(&mut slab, now, &params(), |v, _| dropped.push(v))
                {
                    sparse_sent += usize::from(v == 1);
                }
            }
        }
        assert!(
            !dropped.is_empty() && dropped.iter().all(|&v| v == 0),
            "only bulk dropped"
        );
        assert_eq!(sparse_sent, 100, "every sparse packet left");
    }
}
