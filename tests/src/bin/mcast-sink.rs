//! mcast-sink: joins UDP multicast groups (or listens on unicast ports) and reports, per
//! stream, received, lost, duplicated and reordered datagrams and one-way latency
//! percentiles. Prints one JSON object when `--duration` ends or on SIGINT/SIGTERM.
//!
//! With `--by-group`, a stream arriving on several groups (a relay's fan-out outputs) is
//! reported once per group: each datagram's destination address is read with IP_PKTINFO,
//! since a socket bound to the wildcard address receives every group joined on its port.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
use testbed::traffic::{realtime_ns, Header, StreamStats};
use testbed::wanem::Dur;

#[derive(Debug, Parser)]
#[command(about = "Receives test streams and reports loss, duplicates, reordering, latency")]
struct Args {
    /// group:port to join (repeat or comma-separate); a unicast address just listens.
    #[arg(long, value_delimiter = ',', required = true)]
    group: Vec<SocketAddrV4>,
    /// Local address of the interface to join on (default: chosen by routing).
    #[arg(long)]
    iface_addr: Option<Ipv4Addr>,
    /// Stop after this long (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    duration: Option<Dur>,
    /// Report each (destination group, stream) separately, with a `group` field.
    #[arg(long)]
    by_group: bool,
    /// Ignore datagrams sent before this sink started (left over from an earlier run and
    /// still queued somewhere); they are counted as `stale` instead.
    #[arg(long)]
    fresh_only: bool,
}

/// What `receive` keeps and how.
#[derive(Debug, Clone, Copy)]
struct Filter {
    by_group: bool,
    /// Datagrams sent before this (CLOCK_REALTIME ns) are stale.
    not_before_ns: u64,
}

/// Statistics by (destination group:port when `--by-group`, stream id).
type Streams = Arc<Mutex<BTreeMap<(Option<SocketAddrV4>, u32), StreamStats>>>;

/// One socket per distinct port, bound to the wildcard address, joined to its groups.
fn open(port: u16, groups: &[Ipv4Addr], iface: Ipv4Addr) -> Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_recv_buffer_size(4 << 20)?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    for g in groups.iter().filter(|g| g.is_multicast()) {
        s.join_multicast_v4(g, &iface)
            .with_context(|| format!("joining {g}"))?;
    }
    let s: UdpSocket = s.into();
    setsockopt(&s, sockopt::Ipv4PacketInfo, &true).context("IP_PKTINFO")?;
    // Wake up regularly to notice the stop flag.
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(s)
}

fn receive(
    sock: UdpSocket,
    port: u16,
    filter: Filter,
    streams: Streams,
    stale: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = [0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, dst)) = recv_with_destination(&sock, &mut buf) else {
            continue;
        };
        let now = realtime_ns();
        if let Some(h) = Header::read(&buf[..n]) {
            if h.sent_ns < filter.not_before_ns {
                stale.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let group = filter
                .by_group
                .then(|| SocketAddrV4::new(dst.unwrap_or(Ipv4Addr::UNSPECIFIED), port));
            let mut map = streams.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((group, h.stream))
                .or_insert_with(|| match group {
                    Some(g) => StreamStats::for_group(h.stream, g.to_string()),
                    None => StreamStats::new(h.stream),
                })
                .record(h.seq, now.saturating_sub(h.sent_ns));
        }
    }
}

/// Receives one datagram and the destination address of its IP header (IP_PKTINFO).
fn recv_with_destination(sock: &UdpSocket, buf: &mut [u8]) -> Result<(usize, Option<Ipv4Addr>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )?;
    let mut dst = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
            dst = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
        }
    }
    Ok((msg.bytes, dst))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let iface = args.iface_addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let ports: BTreeSet<u16> = args.group.iter().map(|g| g.port()).collect();
    let streams: Streams = Arc::default();
    let stale = Arc::new(AtomicU64::new(0));
    let filter = Filter {
        by_group: args.by_group,
        not_before_ns: if args.fresh_only { realtime_ns() } else { 0 },
    };
    let mut threads = Vec::new();
    for port in ports {
        let groups: Vec<Ipv4Addr> = args
            .group
            .iter()
            .filter(|g| g.port() == port)
            .map(|g| *g.ip())
            .collect();
        let sock = open(port, &groups, iface)?;
        let (streams, stale, stop) = (streams.clone(), stale.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            receive(sock, port, filter, streams, stale, stop)
        }));
    }
    // Tells a supervising test that the groups are joined.
    eprintln!("ready");
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if args.duration.is_some_and(|d| start.elapsed() >= d.0) {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for t in threads {
        let _ = t.join();
    }
    let reports: Vec<_> = streams
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(StreamStats::report)
        .collect();
    println!(
        "{}",
        json!({
            "elapsed_s": start.elapsed().as_secs_f64(),
            "stale": stale.load(Ordering::Relaxed),
            "streams": reports
        })
    );
    Ok(())
}
