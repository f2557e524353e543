//! CoDel (RFC 8289), the dequeue-side state machine of one queue: a packet
//! that waited longer than `target` for a whole `interval` starts a dropping
//! state in which drops come ever closer (`interval / sqrt(count)`) until the
//! waiting time falls below `target` again. Pure: the caller owns the queue
//! and passes it in as a [`Fifo`].

/// What CoDel needs of the queue it watches.
pub trait Fifo {
    /// What the queue holds.
    type Item;
    /// Takes the head: the item, its length in bytes and when it was queued
    /// (ns).
    fn pop(&mut self) -> Option<(Self::Item, u32, u64)>;
    /// Bytes still queued.
    fn bytes(&self) -> u64;
}

/// The two knobs (RFC 8289 §4.2, §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Acceptable standing queue delay (ns), 5 ms by default.
    pub target_ns: u64,
    /// Sliding window to tell a standing queue from a burst (ns), 100 ms by
    /// default: about a worst-case round trip.
    pub interval_ns: u64,
    /// A queue holding no more than this many bytes is never dropped from
    /// (one full-size packet, RFC 8289's MAXPACKET). Each flow queue is
    /// judged by its own bytes (Linux's fq_codel looks at the whole
    /// qdisc's): a flow's last packet is never dropped for the others'
    /// backlog.
    pub max_packet: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            target_ns: 5_000_000,
            interval_ns: 100_000_000,
            max_packet: 1514,
        }
    }
}

/// One queue's CoDel state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Codel {
    /// When the sojourn time went (and stayed) above target, plus interval;
    /// 0: it is below.
    first_above: u64,
    /// When the next drop is due in the dropping state.
    drop_next: u64,
    /// Drops since entering the dropping state.
    count: u32,
    /// `count` when the last dropping state was entered.
    last_count: u32,
    /// In the dropping state.
    dropping: bool,
}

impl Codel {
    /// Dequeues the next packet to send from `q` at `now` (ns), handing the
    /// packets CoDel drops to `drop` (which frees and counts them). The
    /// RFC's `dequeue()`.
    pub fn dequeue<Q: Fifo>(
        &mut self,
        q: &mut Q,
        now: u64,
        p: &Params,
        mut drop: impl FnMut(Q::Item, u32),
    ) -> Option<(Q::Item, u32)> {
        let Some((mut item, mut len, ok_to_drop)) = self.do_dequeue(q, now, p) else {
            self.dropping = false;
            return None;
        };
        if self.dropping {
            if !ok_to_drop {
                self.dropping = false;
            }
            while self.dropping && now >= self.drop_next {
                drop(item, len);
                self.count = self.count.wrapping_add(1);
                match self.do_dequeue(q, now, p) {
                    None => {
                        self.dropping = false;
                        return None;
                    }
                    Some((next, next_len, ok)) => {
                        (item, len) = (next, next_len);
                        if ok {
                            self.drop_next = control_law(self.drop_next, self.count, p);
                        } else {
                            self.dropping = false;
                        }
                    }
                }
            }
        } else if ok_to_drop {
            drop(item, len);
            let next = self.do_dequeue(q, now, p);
            self.dropping = true;
            // Re-enter with the drop rate of the last dropping state if it
            // ended recently (the RFC's hysteresis).
            let delta = self.count.wrapping_sub(self.last_count);
            self.count = if delta > 1 && now.wrapping_sub(self.drop_next) < 16 * p.interval_ns {
                delta
            } else {
                1
            };
            self.drop_next = control_law(now, self.count, p);
            self.last_count = self.count;
            let (next, next_len, _) = next?;
            (item, len) = (next, next_len);
        }
        Some((item, len))
    }

    /// The RFC's `dodequeue()`: the head and whether it may be dropped.
    fn do_dequeue<Q: Fifo>(
        &mut self,
        q: &mut Q,
        now: u64,
        p: &Params,
    ) -> Option<(Q::Item, u32, bool)> {
        let Some((item, len, queued_at)) = q.pop() else {
            self.first_above = 0;
            return None;
        };
        let sojourn = now.saturating_sub(queued_at);
        let mut ok_to_drop = false;
        if sojourn < p.target_ns || q.bytes() <= u64::from(p.max_packet) {
            self.first_above = 0;
        } else if self.first_above == 0 {
            self.first_above = now + p.interval_ns;
        } else if now >= self.first_above {
            ok_to_drop = true;
        }
        Some((item, len, ok_to_drop))
    }

    /// In the dropping state (for reports and tests).
    pub fn dropping(&self) -> bool {
        self.dropping
    }
}

/// `t + interval / sqrt(count)`.
fn control_law(t: u64, count: u32, p: &Params) -> u64 {
    // One square root per drop, not per packet.
    let step = p.interval_ns as f64 / f64::from(count.max(1)).sqrt();
    t + step as u64
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// RFC 8289's pseudocode (§5), transcribed as literally as Rust allows,
    /// on its own queue: what [`Codel`] must agree with.
    struct Reference {
        q: VecDeque<(u32, u32, u64)>,
        bytes: u64,
        first_above_time: u64,
        drop_next: u64,
        count: u32,
        lastcount: u32,
        dropping: bool,
        dropped: Vec<u32>,
    }

    impl Reference {
        fn enqueue(&mut self, id: u32, len: u32, now: u64) {
            self.q.push_back((id, len, now));
            self.bytes += u64::from(len);
        }

        fn dodequeue(&mut self, now: u64, p: &Params) -> (Option<u32>, bool) {
            let Some((id, len, ts)) = self.q.pop_front() else {
                self.first_above_time = 0;
                return (None, false);
            };
            self.bytes -= u64::from(len);
            let sojourn = now - ts;
            let mut ok = false;
            if sojourn < p.target_ns || self.bytes <= u64::from(p.max_packet) {
                self.first_above_time = 0;
            } else if self.first_above_time == 0 {
                self.first_above_time = now + p.interval_ns;
            } else if now >= self.first_above_time {
                ok = true;
            }
            (Some(id), ok)
        }

        fn control_law(t: u64, count: u32, p: &Params) -> u64 {
            t + (p.interval_ns as f64 / f64::from(count).sqrt()) as u64
        }

        fn dequeue(&mut self, now: u64, p: &Params) -> Option<u32> {
            let (mut r, mut ok) = self.dodequeue(now, p);
            if r.is_none() {
                self.dropping = false;
                return None;
            }
            if self.dropping {
                if !ok {
                    self.dropping = false;
                }
                while now >= self.drop_next && self.dropping {
                    self.dropped.push(r.unwrap());
                    self.count += 1;
                    (r, ok) = self.dodequeue(now, p);
                    if !ok {
                        self.dropping = false;
                    } else {
                        self.drop_next = Self::control_law(self.drop_next, self.count, p);
                    }
                }
            } else if ok {
                self.dropped.push(r.unwrap());
                (r, _) = self.dodequeue(now, p);
                self.dropping = true;
                let delta = self.count.wrapping_sub(self.lastcount);
                self.count = 1;
                if delta > 1 && now.wrapping_sub(self.drop_next) < 16 * p.interval_ns {
                    self.count = delta;
                }
                self.drop_next = Self::control_law(now, self.count, p);
                self.lastcount = self.count;
            }
            r
        }
    }

    /// A plain queue for [`Codel`].
    #[derive(Default)]
    struct Plain {
        q: VecDeque<(u32, u32, u64)>,
        bytes: u64,
    }

    impl Fifo for Plain {
        type Item = u32;
        fn pop(&mut self) -> Option<(u32, u32, u64)> {
            let head = self.q.pop_front()?;
            self.bytes -= u64::from(head.1);
            Some(head)
        }
        fn bytes(&self) -> u64 {
            self.bytes
        }
    }

    /// A link of `rate` bit/s fed by a sender of varying rate; every packet
    /// goes through both CoDels; both must send and drop the same packets.
    fn same_as_reference(seed: u64, rate_bps: u64, secs: u64) -> (usize, usize) {
        let p = Params::default();
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut ours = (Codel::default(), Plain::default(), Vec::new(), Vec::new());
        let mut reference = Reference {
            q: VecDeque::new(),
            bytes: 0,
            first_above_time: 0,
            drop_next: 0,
            count: 0,
            lastcount: 0,
            dropping: false,
            dropped: Vec::new(),
        };
        let end = secs * 1_000_000_000;
        let (mut now, mut link_free, mut id) = (0u64, 0u64, 0u32);
        // The offered load swings between 0.5× and 3× the link's rate.
        let mut load = 1.0f64;
        while now < end {
            if rng.u32(0..1000) == 0 {
                load = 0.5 + rng.f64() * 2.5;
            }
            let len = if rng.bool() { 1514 } else { rng.u32(64..1514) };
            now += (f64::from(len) * 8.0 / (rate_bps as f64 * load) * 1e9) as u64;
            // The link sends what was queued before this arrival.
            while link_free <= now && !ours.1.q.is_empty() {
                let a = ours
                    .0
                    .dequeue(&mut ours.1, link_free, &p, |i, _| ours.3.push(i));
                let b = reference.dequeue(link_free, &p);
                assert_eq!(a.map(|(i, _)| i), b, "seed {seed}: at {link_free} ns");
                let Some((i, len)) = a else { break };
                ours.2.push(i);
                link_free += u64::from(len) * 8 * 1_000_000_000 / rate_bps;
            }
            link_free = link_free.max(now);
            ours.1.q.push_back((id, len, now));
            ours.1.bytes += u64::from(len);
            reference.enqueue(id, len, now);
            id += 1;
        }
        assert_eq!(
            ours.3, reference.dropped,
            "seed {seed}: the same packets dropped"
        );
        (ours.2.len(), ours.3.len())
    }

    #[test]
    fn drops_as_the_reference_algorithm_does_on_the_same_arrivals() {
        let mut drops = 0;
        for seed in 0..12 {
            let (_, d) = same_as_reference(seed, 8_000_000, 20);
            drops += d;
        }
        assert!(drops > 100, "the trace must make CoDel drop ({drops})");
    }

    #[test]
    fn a_queue_below_target_is_never_dropped() {
        let p = Params::default();
        let mut c = Codel::default();
        let mut q = Plain::default();
        for i in 0..10_000u32 {
            let now = u64::from(i) * 1_000_000;
            q.q.push_back((i, 1500, now));
            q.q.push_back((i, 1500, now));
            q.bytes += 3000;
            // 4 ms of sojourn: under the 5 ms target.
            let out = c.dequeue(&mut q, now + 4_000_000, &p, |_, _| {
                panic!("dropped below target")
            });
            assert!(out.is_some());
            c.dequeue(&mut q, now + 4_000_000, &p, |_, _| {
                panic!("dropped below target")
            });
        }
    }
}
