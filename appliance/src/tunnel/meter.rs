//! Path measurement from the tunnel's probes, on the management lcore: per
//! path the round-trip time, the forward one-way delay (relative to the other
//! paths), jitter and loss, as moving figures. Pure: the caller passes the
//! time and the probe replies.
//!
//! Every probe carries our send timestamp; the reply echoes it and adds the
//! peer's receive time minus it (`forward_us`: the forward delay plus the
//! clocks' unknown offset, the same for every path). So the round trip is
//! exact, and the forward delays of two paths compare exactly although the
//! clocks are not synchronised.

use std::time::Duration;

use crate::time::Time;

/// Probes remembered for loss and matching replies.
const HISTORY: usize = 128;
/// Two buckets of this length make the windowed minimum (base delays forget
/// a route change after 10–20 s).
const BASE_BUCKET: Duration = Duration::from_secs(10);
/// A probe unanswered this long counts as lost (for the loss figure).
const LOST_AFTER: Duration = Duration::from_secs(1);

/// A windowed minimum over two rotating buckets.
#[derive(Debug, Clone, Copy, Default)]
struct WindowMin {
    current: Option<i64>,
    previous: Option<i64>,
    started: Time,
}

impl WindowMin {
    fn add(&mut self, v: i64, now: Time) {
        if now.duration_since(self.started) >= BASE_BUCKET {
            self.previous = self.current;
            self.current = None;
            self.started = now;
        }
        self.current = Some(self.current.map_or(v, |c| c.min(v)));
    }

    fn get(&self) -> Option<i64> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    seq: u32,
    at: Time,
    answered: bool,
    valid: bool,
}

/// What one path's meter shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PathFigures {
    /// Smoothed round-trip time (µs).
    pub srtt_us: u64,
    /// Round-trip variation (µs).
    pub rttvar_us: u64,
    /// Lowest round trip in the last 10–20 s (µs).
    pub min_rtt_us: u64,
    /// Forward one-way delay now, relative to the fastest path's base (µs).
    pub delay_us: u64,
    /// Forward delay above this path's own base: its queue (µs).
    pub queueing_us: u64,
    /// Jitter of the forward delay (mean deviation, µs).
    pub jitter_us: u64,
    /// Share of the probes of the last ~second that went unanswered (0–1).
    pub loss: f64,
    /// Probes sent.
    pub probes_sent: u64,
    /// Replies received.
    pub replies: u64,
}

/// The meter of one path.
#[derive(Debug, Clone)]
pub struct PathMeter {
    history: [Sent; HISTORY],
    next_seq: u32,
    srtt_us: Option<f64>,
    rttvar_us: f64,
    min_rtt: WindowMin,
    /// Forward delay samples, relative to the meters' common reference.
    fwd_base: WindowMin,
    fwd_recent: Option<f64>,
    fwd_dev: f64,
    last_reply: Option<Time>,
    probes_sent: u64,
    replies: u64,
}

impl Default for PathMeter {
    fn default() -> Self {
        Self {
            history: [Sent::default(); HISTORY],
            next_seq: 0,
            srtt_us: None,
            rttvar_us: 0.0,
            min_rtt: WindowMin::default(),
            fwd_base: WindowMin::default(),
            fwd_recent: None,
            fwd_dev: 0.0,
            last_reply: None,
            probes_sent: 0,
            replies: 0,
        }
    }
}

impl PathMeter {
    /// Records a probe sent at `now`; returns its sequence number.
    pub fn sent(&mut self, now: Time) -> u32 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.history[seq as usize % HISTORY] = Sent {
            seq,
            at: now,
            answered: false,
            valid: true,
        };
        self.probes_sent += 1;
        seq
    }

    /// When the last reply arrived.
    pub fn last_reply(&self) -> Option<Time> {
        self.last_reply
    }

    /// The smoothed round trip, if measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(|v| Duration::from_micros(v as u64))
    }

    fn loss(&self, now: Time) -> f64 {
        let judged = self
            .history
            .iter()
            .filter(|s| s.valid && now.duration_since(s.at) >= LOST_AFTER.min(self.loss_timeout()));
        let (mut n, mut lost) = (0u32, 0u32);
        for s in judged {
            n += 1;
            lost += u32::from(!s.answered);
        }
        if n == 0 {
            0.0
        } else {
            f64::from(lost) / f64::from(n)
        }
    }

    /// How long a probe may stay unanswered before it counts as lost: four
    /// round trips, at least 100 ms.
    fn loss_timeout(&self) -> Duration {
        let rtt = self.srtt_us.unwrap_or(0.0) + 4.0 * self.rttvar_us;
        Duration::from_micros((4.0 * rtt).max(100_000.0) as u64)
    }
}

/// The meters of all paths, sharing the reference that makes their forward
/// delays comparable.
#[derive(Debug, Clone)]
pub struct Meters {
    paths: Vec<PathMeter>,
    /// The first forward sample: later samples are kept relative to it.
    reference: Option<u32>,
}

impl Meters {
    /// Meters for `paths` paths.
    pub fn new(paths: usize) -> Self {
        Self {
            paths: vec![PathMeter::default(); paths],
            reference: None,
        }
    }

    /// Moves the meters to a reloaded table's path indices (`carried` as in
    /// [`crate::tunnel::carry_over`]); a path added starts unmeasured.
    pub fn carry_over(&mut self, carried: &[Option<usize>]) {
        let old = std::mem::take(&mut self.paths);
        self.paths = crate::tunnel::carry_over(old, carried, |_| PathMeter::default()).0;
    }

    /// Records a probe sent on `path` at `now`; returns its sequence number.
    pub fn sent(&mut self, path: usize, now: Time) -> Option<u32> {
        self.paths.get_mut(path).map(|m| m.sent(now))
    }

    /// A reply on `path` to probe `seq` (sent at our `echo_sent_us`):
    /// `forward_us` and `hold_us` as the peer wrote them. Replies to probes
    /// we do not remember, or answered already, are ignored.
    pub fn reply(&mut self, path: usize, seq: u32, forward_us: u32, hold_us: u32, now: Time) {
        let reference = *self.reference.get_or_insert(forward_us);
        let Some(m) = self.paths.get_mut(path) else {
            return;
        };
        let slot = &mut m.history[seq as usize % HISTORY];
        if !slot.valid || slot.seq != seq || slot.answered {
            return;
        }
        slot.answered = true;
        let sent_at = slot.at;
        m.replies += 1;
        m.last_reply = Some(now);
        let rtt = now
            .duration_since(sent_at)
            .saturating_sub(Duration::from_micros(u64::from(hold_us)));
        let rtt_us = rtt.as_secs_f64() * 1e6;
        // RFC 6298's estimator.
        match m.srtt_us {
            None => {
                m.srtt_us = Some(rtt_us);
                m.rttvar_us = rtt_us / 2.0;
            }
            Some(s) => {
                m.rttvar_us = 0.75 * m.rttvar_us + 0.25 * (s - rtt_us).abs();
                m.srtt_us = Some(0.875 * s + 0.125 * rtt_us);
            }
        }
        m.min_rtt.add(rtt_us as i64, now);
        let fwd = i64::from(forward_us.wrapping_sub(reference) as i32);
        m.fwd_base.add(fwd, now);
        // Fast up (a growing queue shows at once), slow down.
        let recent = match m.fwd_recent {
            Some(r) if (fwd as f64) < r => r + ((fwd as f64) - r) / 8.0,
            _ => fwd as f64,
        };
        m.fwd_dev = 0.75 * m.fwd_dev + 0.25 * ((fwd as f64) - recent).abs();
        m.fwd_recent = Some(recent);
    }

    /// The figures of `path` at `now`.
    pub fn figures(&self, path: usize, now: Time) -> PathFigures {
        let Some(m) = self.paths.get(path) else {
            return PathFigures::default();
        };
        let floor = self
            .paths
            .iter()
            .filter_map(|p| p.fwd_base.get())
            .min()
            .unwrap_or(0);
        let recent = m.fwd_recent.unwrap_or(0.0);
        let own_base = m.fwd_base.get().unwrap_or(floor) as f64;
        PathFigures {
            srtt_us: m.srtt_us.unwrap_or(0.0) as u64,
            rttvar_us: m.rttvar_us as u64,
            min_rtt_us: m.min_rtt.get().unwrap_or(0).max(0) as u64,
            delay_us: (recent - floor as f64).max(0.0) as u64,
            queueing_us: (recent - own_base).max(0.0) as u64,
            jitter_us: m.fwd_dev as u64,
            loss: m.loss(now),
            probes_sent: m.probes_sent,
            replies: m.replies,
        }
    }

    /// The meter of `path`.
    pub fn path(&self, path: usize) -> Option<&PathMeter> {
        self.paths.get(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Two paths with 10 and 30 ms forward delay, 10 and 30 ms back, a clock
    /// offset of 5 s between the appliances.
    #[test]
    fn round_trips_and_relative_forward_delays() {
        let mut m = Meters::new(2);
        let offset_us: u32 = 5_000_000;
        let mut now = Time::from_secs(100);
        for _ in 0..50 {
            for (p, one_way) in [(0usize, 10u64), (1, 30)] {
                let seq = m.sent(p, now).unwrap();
                let sent_us = now.as_micros_u32();
                let peer_rx = sent_us
                    .wrapping_add(offset_us)
                    .wrapping_add((one_way * 1000) as u32);
                let forward = peer_rx.wrapping_sub(sent_us);
                m.reply(
                    p,
                    seq,
                    forward,
                    200,
                    now + ms(2 * one_way) + Duration::from_micros(200),
                );
            }
            now += ms(10);
        }
        let a = m.figures(0, now);
        let b = m.figures(1, now);
        assert_eq!(
            (a.srtt_us, b.srtt_us),
            (20_000, 60_000),
            "hold time taken off"
        );
        assert_eq!((a.delay_us, b.delay_us), (0, 20_000), "the offset cancels");
        assert_eq!((a.queueing_us, a.jitter_us), (0, 0));
        assert_eq!(a.loss, 0.0);
        assert_eq!((a.probes_sent, a.replies), (50, 50));
    }

    #[test]
    fn a_growing_queue_shows_at_once_and_drains_slowly() {
        let mut m = Meters::new(1);
        let mut now = Time::from_secs(1);
        for extra in [0u32, 0, 0, 20_000, 20_000, 0] {
            let seq = m.sent(0, now).unwrap();
            m.reply(0, seq, 1_000 + extra, 0, now + ms(2));
            now += ms(10);
        }
        let f = m.figures(0, now);
        assert!(f.queueing_us > 10_000 && f.queueing_us < 20_000, "{f:?}");
    }

    #[test]
    fn unanswered_probes_count_as_loss_once_old_enough() {
        let mut m = Meters::new(1);
        let mut now = Time::from_secs(1);
        for i in 0..100 {
            let seq = m.sent(0, now).unwrap();
            if i % 4 != 0 {
                m.reply(0, seq, 1000, 0, now + ms(1));
            }
            now += ms(10);
        }
        let loss = m.figures(0, now + ms(2_000)).loss;
        assert!((loss - 0.25).abs() < 0.01, "{loss}");
        // A late or repeated reply changes nothing; an unknown one is ignored.
        m.reply(0, 99, 1000, 0, now);
        m.reply(0, 12_345, 1000, 0, now);
        assert_eq!(m.figures(0, now).replies, 75);
    }
}
