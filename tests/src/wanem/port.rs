//! An AF_PACKET socket bound to one interface, sending and receiving whole Ethernet frames.
//!
//! The socket is created with socket2 so that a classic-BPF filter can hide the frames we
//! transmit ourselves: an AF_PACKET socket also sees its interface's outgoing frames, and
//! bridging those back would loop. pnet_datalink binds it to the interface and sets
//! promiscuous mode (there is no safe `sockaddr_ll` constructor elsewhere); it shares the
//! socket through a duplicated descriptor, and we do all I/O on our own descriptor.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

/// ETH_P_ALL: every protocol.
const ETH_P_ALL: u16 = 0x0003;

/// `ldb [pkttype]; jeq #PACKET_OUTGOING, drop, accept`.
fn not_outgoing_filter() -> [SockFilter; 4] {
    // BPF_LD (0x00) | BPF_B (0x10) | BPF_ABS (0x20).
    const BPF_LD_B_ABS: u16 = 0x10 | 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
    const BPF_RET_K: u16 = 0x06;
    // SKF_AD_OFF (-0x1000) + SKF_AD_PKTTYPE (4): the skb's packet type, an ancillary field.
    const SKF_AD_PKTTYPE: u32 = 0xFFFF_F000 + 4;
    const PACKET_OUTGOING: u32 = 4;
    [
        SockFilter::new(BPF_LD_B_ABS, 0, 0, SKF_AD_PKTTYPE),
        SockFilter::new(BPF_JMP_JEQ_K, 0, 1, PACKET_OUTGOING),
        SockFilter::new(BPF_RET_K, 0, 0, 0),
        SockFilter::new(BPF_RET_K, 0, 0, u32::MAX),
    ]
}

/// One bridged interface.
#[derive(Debug)]
pub struct Port {
    pub name: String,
    sock: Socket,
}

impl Port {
    /// Opens a non-blocking, promiscuous AF_PACKET socket on `iface` that receives only
    /// frames arriving on it.
    pub fn open(iface: &str) -> Result<Port> {
        let proto = Protocol::from(i32::from(ETH_P_ALL.to_be()));
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(proto))
            .context("AF_PACKET socket (needs root or CAP_NET_RAW)")?;
        sock.attach_filter(&not_outgoing_filter())
            .context("attaching the BPF filter")?;
        // Ask for a large receive buffer so a scheduling hiccup does not overflow it; the
        // kernel caps this at net.core.rmem_max.
        let _ = sock.set_recv_buffer_size(8 << 20);
        let _ = sock.set_send_buffer_size(8 << 20);
        let ni = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
            .with_context(|| format!("no interface {iface:?} in this namespace"))?;
        let cfg = pnet_datalink::Config {
            socket_fd: Some(sock.try_clone()?.into_raw_fd()),
            promiscuous: true,
            ..Default::default()
        };
        // Binding and promiscuous membership belong to the shared socket, so they stay in
        // force after pnet's channel (and its descriptor) is dropped here.
        drop(pnet_datalink::channel(&ni, cfg).with_context(|| format!("binding to {iface}"))?);
        sock.set_nonblocking(true)?;
        // Kernel receive timestamps: a frame's arrival time must not include how long this
        // thread took to wake up and read it.
        setsockopt(&sock, sockopt::ReceiveTimestampns, &true).context("SO_TIMESTAMPNS")?;
        let port = Port {
            name: iface.to_owned(),
            sock,
        };
        // Before bind the socket saw every interface; discard what it queued then.
        let mut buf = vec![0u8; 65536];
        while port.recv(&mut buf)?.is_some() {}
        Ok(port)
    }

    /// Receives one frame into `buf`: its length and when the kernel received it.
    /// `None` when nothing is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Instant)>> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!(TimeSpec);
        let msg = match recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        let mut at = now;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    at = kernel_time_to_instant(ts, now);
                }
            }
        }
        Ok(Some((msg.bytes, at)))
    }

    /// Sends one whole frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.sock.send(frame).map(drop)
    }
}

/// Converts a CLOCK_REALTIME timestamp to an `Instant`, by its age relative to now. Falls
/// back to `now` if the clock jumped (a negative or implausibly old age).
fn kernel_time_to_instant(ts: TimeSpec, now: Instant) -> Instant {
    let stamp = Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32);
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    match wall.checked_sub(stamp) {
        Some(age) if age < Duration::from_secs(1) => now.checked_sub(age).unwrap_or(now),
        _ => now,
    }
}

impl AsFd for Port {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
