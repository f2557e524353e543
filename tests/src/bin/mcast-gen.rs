//! mcast-gen: paced UDP (usually multicast) test streams.
//!
//! Each `--dest` is one stream (stream id = its position). Every stream sends `--pps`
//! datagrams per second of `--size` bytes of UDP payload carrying stream id, sequence number
//! and send time (see `testbed::traffic::payload`). Sends follow an absolute schedule
//! (sleep, then busy-wait the last 200 µs), staggered across streams, so pacing neither
//! drifts nor bunches. Prints a JSON summary at the end, or on SIGINT/SIGTERM.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use clap::Parser;
use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
use testbed::probe::sleep_until;
use testbed::traffic::{realtime_ns, Header, HEADER_LEN};
use testbed::wanem::Dur;

#[derive(Debug, Parser)]
#[command(about = "Paced UDP/multicast test streams with sequence numbers and timestamps")]
struct Args {
    /// Destination group:port of each stream (repeat or comma-separate).
    #[arg(long, value_delimiter = ',', required = true)]
    dest: Vec<SocketAddrV4>,
    /// Datagrams per second, per stream.
    #[arg(long, default_value_t = 1000.0)]
    pps: f64,
    /// UDP payload bytes (at least 24).
    #[arg(long, default_value_t = 1200)]
    size: usize,
    /// How long to send, e.g. 2s.
    #[arg(long, default_value = "2s")]
    duration: Dur,
    /// Local address whose interface sends multicast (IP_MULTICAST_IF).
    #[arg(long)]
    source: Option<Ipv4Addr>,
    /// Multicast TTL.
    #[arg(long, default_value_t = 8)]
    ttl: u32,
    /// Test hook: send every Nth datagram of each stream twice (to check a sink's
    /// duplicate detection).
    #[arg(long)]
    dup_every: Option<u64>,
    /// Stop when `--duration` is over even if the schedule is behind (the sender could not
    /// keep up): the datagrams not sent by then are never sent, so the run takes the given
    /// time and `sent / elapsed_s` is the rate reached. Without it every scheduled datagram
    /// is sent, as fast as possible once behind.
    #[arg(long)]
    strict_end: bool,
    /// Send N datagrams per write with `UDP_SEGMENT` (Linux's UDP GSO: the kernel, or the
    /// device, cuts the write into datagrams of `--size` bytes), at the same datagram rate.
    #[arg(long, default_value_t = 1)]
    gso: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.size >= HEADER_LEN,
        "--size must be at least {HEADER_LEN}"
    );
    ensure!(args.pps > 0.0, "--pps must be positive");
    ensure!(
        (1..=64).contains(&args.gso) && args.gso as usize * args.size <= 65_000,
        "--gso: 1 to 64 datagrams of --size per write, 65,000 bytes at most"
    );
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    // One socket (so one source port and one kernel flow hash) per stream,
    // as separate senders would have: receivers that spread flows over
    // queues by hash (RSS, af_packet fanout) then see distinct flows.
    let socks = args
        .dest
        .iter()
        .map(|_| open_socket(&args))
        .collect::<Result<Vec<UdpSocket>>>()?;

    let n = args.dest.len();
    let interval = Duration::from_secs_f64(1.0 / args.pps);
    let stagger = interval / n as u32;
    let start = Instant::now() + Duration::from_millis(1);
    let end = start + args.duration.0;
    // (due, stream, seq): the earliest due datagram is sent next.
    let mut queue: BinaryHeap<Reverse<(Instant, usize, u64)>> = (0..n)
        .map(|s| Reverse((start + stagger * s as u32, s, 0)))
        .collect();
    let mut sent = vec![0u64; n];
    let mut errors = vec![0u64; n];
    let batch = args.gso as usize;
    let mut buf = vec![0u8; args.size * batch];
    while let Some(Reverse((due, s, seq))) = queue.pop() {
        if due >= end || stop.load(Ordering::Relaxed) || (args.strict_end && Instant::now() >= end)
        {
            break;
        }
        sleep_until(due);
        let now_ns = realtime_ns();
        for (k, datagram) in buf.chunks_mut(args.size).enumerate() {
            Header {
                stream: s as u32,
                seq: seq + k as u64,
                sent_ns: now_ns,
            }
            .write(datagram);
        }
        let copies = match args.dup_every {
            Some(k) if k > 0 && seq % k == k - 1 => 2,
            _ => 1,
        };
        for _ in 0..copies {
            match socks[s].send_to(&buf, args.dest[s]) {
                Ok(_) => sent[s] += args.gso,
                Err(_) => errors[s] += args.gso,
            }
        }
        let next = seq + args.gso;
        queue.push(Reverse((
            start + interval * next as u32 + stagger * s as u32,
            s,
            next,
        )));
    }
    let streams: Vec<_> = (0..n)
        .map(|s| json!({ "stream": s, "dest": args.dest[s].to_string(), "sent": sent[s], "errors": errors[s] }))
        .collect();
    println!(
        "{}",
        json!({ "elapsed_s": start.elapsed().as_secs_f64(), "streams": streams })
    );
    Ok(())
}

fn open_socket(args: &Args) -> Result<UdpSocket> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_multicast_ttl_v4(args.ttl)?;
    // No copy to ourselves: the local loopback of every datagram would cost
    // as much kernel time as sending it, and nobody here listens.
    sock.set_multicast_loop_v4(false)?;
    if args.gso > 1 {
        let size = i32::try_from(args.size)?;
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::UdpGsoSegment, &size)?;
    }
    if let Some(src) = args.source {
        sock.set_multicast_if_v4(&src)?;
        sock.bind(&SocketAddrV4::new(src, 0).into())?;
    }
    Ok(sock.into())
}
