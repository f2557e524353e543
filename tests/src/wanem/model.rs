//! The per-direction link model: decides, for each arriving frame, whether it is lost or
//! tail-dropped, and when it leaves. Pure (no I/O, time passed in), so it is unit-tested.
//!
//! Order of operations, as in netem: random loss, then Gilbert-Elliott loss (both at
//! ingress, so lost frames use no bottleneck capacity), then the bounded queue of the rate
//! limiter, then the propagation delay with jitter.
//!
//! The rate limiter is a single FIFO server: a frame starts serialising when the previous one
//! has finished (`link_free_at`) and takes `(len + overhead) * 8 / rate`. The queue holds
//! every admitted frame whose serialisation has not finished, including the one being sent,
//! so the queueing delay and the drops behave like a real bottleneck's tail-drop queue.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::{DirParams, QueueLimit};
use super::stats::DropReason;

/// What happens to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it at `release`.
    Forward {
        release: Instant,
    },
    Drop(DropReason),
}

/// State of one direction of one link.
#[derive(Debug)]
pub struct DirModel {
    params: DirParams,
    rng: fastrand::Rng,
    /// Gilbert-Elliott state: true while in the bad (losing) state.
    ge_bad: bool,
    /// Finish times and sizes of admitted frames still in the queue.
    queue: VecDeque<(Instant, u64)>,
    queued_bytes: u64,
    link_free_at: Option<Instant>,
    last_release: Option<Instant>,
}

impl DirModel {
    pub fn new(params: DirParams, seed: u64) -> DirModel {
        DirModel {
            params,
            rng: fastrand::Rng::with_seed(seed),
            ge_bad: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            link_free_at: None,
            last_release: None,
        }
    }

    pub fn params(&self) -> &DirParams {
        &self.params
    }

    /// Replaces the parameters; frames already admitted keep their release times.
    pub fn set_params(&mut self, params: DirParams) {
        if params.rate.is_none() {
            self.queue.clear();
            self.queued_bytes = 0;
            self.link_free_at = None;
        }
        self.params = params;
    }

    /// Bytes waiting or being serialised at `now`.
    pub fn queued_bytes(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.queued_bytes
    }

    /// Decides the fate of a frame of `len` bytes arriving at `now`.
    pub fn on_frame(&mut self, now: Instant, len: usize) -> Verdict {
        let p = self.params;
        if p.loss > 0.0 && self.rng.f64() < p.loss {
            return Verdict::Drop(DropReason::Loss);
        }
        if p.ge_p > 0.0 {
            // Transition first, then the state decides this frame's fate.
            let flip = if self.ge_bad { p.ge_r } else { p.ge_p };
            if self.rng.f64() < flip {
                self.ge_bad = !self.ge_bad;
            }
            if self.ge_bad {
                return Verdict::Drop(DropReason::BurstLoss);
            }
        }
        let serialised = match p.rate {
            None => now,
            Some(rate) => {
                self.expire(now);
                let bytes = len as u64 + u64::from(p.overhead);
                let full = match p.queue {
                    QueueLimit::Packets(n) => self.queue.len() as u64 >= u64::from(n),
                    QueueLimit::Bytes(b) => self.queued_bytes + bytes > b,
                    QueueLimit::Time(t) => {
                        let limit = (t.as_secs_f64() * rate.0 as f64 / 8.0) as u64;
                        self.queued_bytes + bytes > limit
                    }
                };
                // An empty queue always admits one frame, or frames larger than the
                // limit could never pass.
                if full && !self.queue.is_empty() {
                    return Verdict::Drop(DropReason::Queue);
                }
                let start = self.link_free_at.map_or(now, |t| t.max(now));
                let finish = start + Duration::from_nanos(bytes * 8 * 1_000_000_000 / rate.0);
                self.link_free_at = Some(finish);
                self.queue.push_back((finish, bytes));
                self.queued_bytes += bytes;
                finish
            }
        };
        let mut delay = p.delay.0.as_nanos() as i128;
        let jitter = p.jitter.0.as_nanos() as i128;
        if jitter > 0 {
            delay += self.rng.i128(-jitter..=jitter);
        }
        let mut release = serialised + Duration::from_nanos(delay.max(0) as u64);
        if !p.reorder {
            if let Some(last) = self.last_release {
                release = release.max(last);
            }
        }
        self.last_release = Some(release);
        Verdict::Forward { release }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(finish, bytes)) = self.queue.front() {
            if finish > now {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wanem::config::{Dur, Rate};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pure_delay() {
        let t0 = Instant::now();
        let mut m = DirModel::new(
            DirParams {
                delay: Dur(ms(10)),
                ..Default::default()
            },
            1,
        );
        assert_eq!(
            m.on_frame(t0, 100),
            Verdict::Forward {
                release: t0 + ms(10)
            }
        );
    }

    #[test]
    fn rate_serialises_and_tail_drops() {
        let t0 = Instant::now();
        // 8 Mbit/s: 1000 B take exactly 1 ms. Queue of 3 frames.
        let mut m = DirModel::new(
            DirParams {
                rate: Some(Rate(8_000_000)),
                queue: QueueLimit::Packets(3),
                ..Default::default()
            },
            1,
        );
        let rel: Vec<Verdict> = (0..5).map(|_| m.on_frame(t0, 1000)).collect();
        assert_eq!(
            rel[0],
            Verdict::Forward {
                release: t0 + ms(1)
            }
        );
        assert_eq!(
            rel[2],
            Verdict::Forward {
                release: t0 + ms(3)
            }
        );
        assert_eq!(rel[3], Verdict::Drop(DropReason::Queue));
        // After 1.5 ms one frame has left, so one more fits, behind the others.
        assert_eq!(
            m.on_frame(t0 + Duration::from_micros(1500), 1000),
            Verdict::Forward {
                release: t0 + ms(4)
            }
        );
    }

    #[test]
    fn time_queue_bounds_queueing_delay() {
        let t0 = Instant::now();
        let mut m = DirModel::new(
            DirParams {
                rate: Some(Rate(8_000_000)),
                queue: QueueLimit::Time(ms(10)),
                ..Default::default()
            },
            1,
        );
        let forwarded = (0..100)
            .filter(|_| matches!(m.on_frame(t0, 1000), Verdict::Forward { .. }))
            .count();
        assert_eq!(forwarded, 10);
    }

    #[test]
    fn jitter_without_reorder_is_monotonic() {
        let t0 = Instant::now();
        let mut m = DirModel::new(
            DirParams {
                delay: Dur(ms(10)),
                jitter: Dur(ms(5)),
                ..Default::default()
            },
            7,
        );
        let mut last = t0;
        let mut spread = (Duration::MAX, Duration::ZERO);
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            let Verdict::Forward { release } = m.on_frame(now, 100) else {
                panic!("no loss configured")
            };
            assert!(release >= last, "reordered");
            last = release;
            let d = release - now;
            spread = (spread.0.min(d), spread.1.max(d));
        }
        assert!(
            spread.0 >= ms(5) && spread.1 <= ms(15) + ms(5),
            "{spread:?}"
        );
    }

    #[test]
    fn random_loss_rate() {
        let t0 = Instant::now();
        let mut m = DirModel::new(
            DirParams {
                loss: 0.1,
                ..Default::default()
            },
            3,
        );
        let n = 100_000;
        let lost = (0..n)
            .filter(|_| m.on_frame(t0, 100) == Verdict::Drop(DropReason::Loss))
            .count() as f64;
        let sigma = (n as f64 * 0.1 * 0.9).sqrt();
        assert!((lost - 10_000.0).abs() < 4.0 * sigma, "lost {lost}");
    }

    #[test]
    fn gilbert_elliott_mean_loss_and_burst() {
        let t0 = Instant::now();
        let (p, r) = (0.01, 0.25);
        let mut m = DirModel::new(
            DirParams {
                ge_p: p,
                ge_r: r,
                ..Default::default()
            },
            5,
        );
        let n = 200_000;
        let lost: Vec<bool> = (0..n)
            .map(|_| m.on_frame(t0, 100) == Verdict::Drop(DropReason::BurstLoss))
            .collect();
        let total = lost.iter().filter(|l| **l).count() as f64;
        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        let expected = p / (p + r);
        assert!(
            (total / n as f64 - expected).abs() < 0.005,
            "{}",
            total / n as f64
        );
        assert!((total / bursts - 1.0 / r).abs() < 0.3, "{}", total / bursts);
    }
}
