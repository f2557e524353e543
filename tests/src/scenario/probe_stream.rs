//! A sequence-stamped UDP probe stream from host A to host B beside a TCP transfer: when
//! each probe was due to leave and when (if) it arrived, on the runner's clock. The
//! handoff metrics read it: how many probes a failure or a recovery cost, the longest
//! silence, and T-latency (see `analysis::probe_handoff`).

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use crate::probe::{send_seq_marked, SeqReceiver};
use crate::topology::{Host, Sites};

/// UDP port of the stream on host B.
const PORT: u16 = 7100;
/// Bytes per probe (a voice-sized datagram).
const SIZE: usize = 160;
/// The probes are marked as voice is (DSCP EF): a system that keeps real-time traffic out
/// of its bulk queue (the appliance's shaper) can; to the others the mark is nothing.
const TOS_EF: u8 = 0xb8;

/// What the stream delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeStream {
    /// Time between probes (ms).
    pub interval_ms: f64,
    pub sent: u64,
    pub received: u64,
    /// (sequence number, arrival in s after the run's zero), in arrival order. Not kept in
    /// result.json: the summary holds what is read from it.
    #[serde(skip)]
    pub arrivals: Vec<(u64, f64)>,
}

/// The stream while it runs.
#[derive(Debug)]
pub struct ProbeRun {
    rx: JoinHandle<Result<Vec<(u64, Instant)>>>,
    tx: JoinHandle<Result<()>>,
    t0: Instant,
    interval: Duration,
    count: u64,
}

/// Starts the stream: probe i is due to leave host A at `t0 + i × interval`, for
/// `duration`.
pub fn start(
    sites: &Sites,
    interval: Duration,
    duration: Duration,
    t0: Instant,
) -> Result<ProbeRun> {
    start_between(&sites.host_a, &sites.host_b, interval, duration, t0)
}

/// [`start`] between any two hosts, `from` sending to `to` (a topology other than
/// [`Sites`], or the stream's reverse direction). Streams to distinct hosts can run at once:
/// each receiver binds the port in its own host's namespace.
pub fn start_between(
    from: &Host,
    to: &Host,
    interval: Duration,
    duration: Duration,
    t0: Instant,
) -> Result<ProbeRun> {
    let count = (duration.as_nanos() / interval.as_nanos().max(1)) as u64;
    // The receiver stops 2 s after the last probe is due (a silence of any length inside
    // the run is what it is there to measure).
    let limit = duration + Duration::from_secs(2);
    let rx = to
        .ns
        .spawn_in(move || SeqReceiver::bind(PORT)?.collect_timed(limit, limit))?;
    let dst = SocketAddr::from((to.addr, PORT));
    let tx = from
        .ns
        .spawn_in(move || send_seq_marked(dst, count, interval, SIZE, t0, TOS_EF))?;
    Ok(ProbeRun {
        rx,
        tx,
        t0,
        interval,
        count,
    })
}

impl ProbeRun {
    /// Waits for both ends.
    pub fn finish(self) -> Result<ProbeStream> {
        self.tx
            .join()
            .map_err(|_| anyhow!("probe sender panicked"))??;
        let got = self
            .rx
            .join()
            .map_err(|_| anyhow!("probe receiver panicked"))??;
        let arrivals: Vec<(u64, f64)> = got
            .into_iter()
            .filter(|(seq, _)| *seq < self.count)
            .map(|(seq, at)| (seq, at.saturating_duration_since(self.t0).as_secs_f64()))
            .collect();
        let mut unique: Vec<u64> = arrivals.iter().map(|(s, _)| *s).collect();
        unique.sort_unstable();
        unique.dedup();
        Ok(ProbeStream {
            interval_ms: self.interval.as_secs_f64() * 1e3,
            sent: self.count,
            received: unique.len() as u64,
            arrivals,
        })
    }
}
