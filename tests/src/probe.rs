//! Sequence-numbered UDP probes: a paced sender and a receiver that records which sequence
//! numbers arrived. Used inside namespaces via [`crate::Netns::run_in`] / `spawn_in`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Waits until `deadline`: sleeps while it is more than 200 µs away, then busy-waits, so
/// pacing does not drift by the sleep's wake-up latency.
pub fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(200));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Sends `count` datagrams of `size` bytes (at least 8) to `dst`, the i-th at `i * interval`
/// after the start. The payload starts with the sequence number (u64, big endian).
pub fn send_seq(dst: SocketAddr, count: u64, interval: Duration, size: usize) -> Result<()> {
    send_seq_from(dst, count, interval, size, Instant::now())
}

/// [`send_seq`] with the i-th datagram due at `start + i * interval`.
pub fn send_seq_from(
    dst: SocketAddr,
    count: u64,
    interval: Duration,
    size: usize,
    start: Instant,
) -> Result<()> {
    send_seq_marked(dst, count, interval, size, start, 0)
}

/// [`send_seq_from`] with the IPv4 TOS byte `tos` on every datagram (0xb8: DSCP EF, as voice
/// is marked).
pub fn send_seq_marked(
    dst: SocketAddr,
    count: u64,
    interval: Duration,
    size: usize,
    start: Instant,
    tos: u8,
) -> Result<()> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    if tos != 0 {
        socket2::SockRef::from(&sock)
            .set_tos_v4(u32::from(tos))
            .context("IP_TOS on the probe socket")?;
    }
    let mut buf = vec![0u8; size.max(8)];
    for seq in 0..count {
        sleep_until(start + interval * seq as u32);
        buf[..8].copy_from_slice(&seq.to_be_bytes());
        // ENOBUFS/ECONNREFUSED are expected while a link is down; the probe just goes on.
        let _ = sock.send_to(&buf, dst);
    }
    Ok(())
}

/// A bound receiver of sequence-numbered datagrams.
#[derive(Debug)]
pub struct SeqReceiver {
    sock: UdpSocket,
}

impl SeqReceiver {
    pub fn bind(port: u16) -> Result<SeqReceiver> {
        let sock = UdpSocket::bind(("0.0.0.0", port)).with_context(|| format!("bind :{port}"))?;
        Ok(SeqReceiver { sock })
    }

    /// Collects sequence numbers in arrival order until nothing arrives for `idle` (after
    /// the first datagram) or `limit` has passed in total.
    pub fn collect(self, idle: Duration, limit: Duration) -> Result<Vec<u64>> {
        Ok(self
            .collect_timed(idle, limit)?
            .into_iter()
            .map(|(seq, _)| seq)
            .collect())
    }

    /// [`Self::collect`] with each datagram's arrival time.
    pub fn collect_timed(self, idle: Duration, limit: Duration) -> Result<Vec<(u64, Instant)>> {
        let end = Instant::now() + limit;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        self.sock
            .set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut last = Instant::now();
        loop {
            let now = Instant::now();
            if now >= end || (!got.is_empty() && now - last >= idle) {
                return Ok(got);
            }
            match self.sock.recv(&mut buf) {
                Ok(n) if n >= 8 => {
                    let mut seq = [0u8; 8];
                    seq.copy_from_slice(&buf[..8]);
                    last = Instant::now();
                    got.push((u64::from_be_bytes(seq), last));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
