//! af_packet ports the appliance drives itself, in place of DPDK 22.11's
//! `net_af_packet` PMD, because the PMD throws away what the kernel knows
//! about each frame: that its checksum is still partial
//! (`TP_STATUS_CSUMNOTREADY`), or that it is a GSO super-frame of up to
//! 64 KB that a 2 KB ring slot truncates. A Linux host beside the appliance
//! (a container, a VM guest, a namespace) sends both with its default
//! offloads, and forwarding them as they are breaks every TCP connection.
//!
//! Each queue is one `AF_PACKET` socket with `PACKET_VNET_HDR` (so every
//! frame comes with a virtio-net header, as VPP's host-interface does it),
//! memory-mapped `TPACKET_V2` RX and TX rings, and `PACKET_COPY_THRESH` (a
//! frame too large for a slot is also queued whole on the socket, read with
//! one `recv`). The sockets of a port join one fanout group hashing flows,
//! without rollover: a full ring drops (counted by the kernel) rather than
//! move part of a flow to another worker and reorder it.
//!
//! On receive a partial checksum is completed and a super-frame cut into
//! wire-size segments ([`vnet`]) before anything else sees the frame; a
//! frame that cannot be handled is dropped and counted by reason
//! ([`OffloadStats`]). On transmit frames go out whole, with an empty
//! virtio-net header.
//!
//! The ports take DPDK's port numbering from [`FIRST_ID`] on, so that the
//! rest of the appliance (mbuf `port` fields, [`crate::port`]'s queries)
//! treats them as any other port.

mod socket;
pub mod vnet;

use std::io;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use socket::{Geometry, Socket};
use vnet::{OffloadError, Segments, VnetHdr, VNET_HDR_LEN};

use crate::ffi;
use crate::mbuf::{Burst, Mbuf};
use crate::mempool::Mempool;

/// The first port id of a packet port: DPDK's own ports are below.
pub const FIRST_ID: u16 = ffi::RTE_MAX_ETHPORTS as u16;

/// Bytes per ring slot: a 1500-byte-MTU frame with its headers fits with
/// room to spare, as in the PMD.
pub const FRAME_SIZE: u32 = 2048;

/// Largest frame taken from the socket queue: a 64 KB GSO super-frame (the
/// kernel's default `gso_max_size`) with its Ethernet header.
const MAX_QUEUED_FRAME: usize = 65_536 + 14 + 4;

/// How to open a packet port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Kernel interface.
    pub iface: String,
    /// Queues (sockets) to open, all in one fanout group: every one must be
    /// polled.
    pub queues: u16,
    /// RX ring slots per queue (a power of two ≥ 512).
    pub rx_frames: u32,
    /// TX ring slots per queue.
    pub tx_frames: u32,
}

/// What the offload handling did on receive, per port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffloadStats {
    /// Frames whose partial checksum was completed.
    pub csum_completed: u64,
    /// GSO super-frames cut into segments.
    pub gso_frames: u64,
    /// Segments made of them.
    pub gso_segments: u64,
    /// Dropped: a GSO type or protocol not segmented here (UFO, VLAN-tagged,
    /// IPv6 with extension headers, not IP).
    pub drop_gso_unsupported: u64,
    /// Dropped: offload metadata or headers that do not fit the frame.
    pub drop_bad_offload: u64,
    /// Dropped: larger than a packet buffer, or the kernel's whole copy of
    /// an oversized frame was lost (its socket queue was full).
    pub drop_too_long: u64,
}

/// One queue's counters, written by the queue's owner only.
#[derive(Debug, Default)]
struct QueueCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_nombuf: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_errors: AtomicU64,
    csum_completed: AtomicU64,
    gso_frames: AtomicU64,
    gso_segments: AtomicU64,
    drop_gso_unsupported: AtomicU64,
    drop_bad_offload: AtomicU64,
    drop_too_long: AtomicU64,
}

/// Adds `n` to a counter that only one thread writes (no locked add).
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// One packet port: its sockets, counters, and what `configure` set.
#[derive(Debug)]
struct Port {
    iface: String,
    ifindex: c_int,
    sockets: Vec<Arc<Socket>>,
    counters: Vec<Arc<QueueCounters>>,
    /// Queue handles not yet taken by [`queues`].
    handles: Mutex<Option<(Vec<PacketRx>, Vec<PacketTx>)>>,
    /// Largest IP packet (IPv4 total length, IPv6 header + payload) a TCP
    /// super-frame is cut into.
    segment_ip_len: AtomicUsize,
}

/// The open packet ports, indexed by `id - FIRST_ID`. Written at start-up
/// and shutdown only; the data path holds its queues directly.
static PORTS: RwLock<Vec<Option<Arc<Port>>>> = RwLock::new(Vec::new());

fn get(id: u16) -> Option<Arc<Port>> {
    let i = usize::from(id.checked_sub(FIRST_ID)?);
    let ports = PORTS.read().unwrap_or_else(PoisonError::into_inner);
    ports.get(i)?.clone()
}

/// Whether `id` names a packet port (open or not).
pub fn is_packet_port(id: u16) -> bool {
    id >= FIRST_ID
}

/// Opens a packet port on `config.iface` (the equivalent of a vdev probe):
/// its sockets exist, bound and in their fanout group, from here on.
/// Returns its port id.
///
/// # Errors
/// No such interface, no `CAP_NET_RAW`, or the kernel refused the rings.
pub fn open(config: &PortConfig) -> io::Result<u16> {
    let ifindex = socket::ifindex(&config.iface)?;
    let geometry = Geometry {
        rx_frames: config.rx_frames,
        tx_frames: config.tx_frames,
        frame_size: FRAME_SIZE,
    }
    .whole_blocks();
    let mut ports = PORTS.write().unwrap_or_else(PoisonError::into_inner);
    let index = ports.len();
    let id = FIRST_ID
        .checked_add(u16::try_from(index).map_err(|_| io::ErrorKind::OutOfMemory)?)
        .ok_or(io::ErrorKind::OutOfMemory)?;
    // A group id unique to this process and interface, as the PMD makes it.
    let fanout = (std::process::id() ^ ifindex as u32) as u16;
    let sockets = (0..config.queues.max(1))
        .map(|_| Socket::open(ifindex, geometry, fanout).map(Arc::new))
        .collect::<io::Result<Vec<_>>>()?;
    let counters: Vec<_> = sockets.iter().map(|_| Arc::default()).collect();
    let port = Arc::new(Port {
        iface: config.iface.clone(),
        ifindex,
        sockets,
        counters,
        handles: Mutex::new(None),
        segment_ip_len: AtomicUsize::new(1500),
    });
    ports.push(Some(port));
    Ok(id)
}

/// Queues the port offers (sockets it opened).
pub(crate) fn queue_count(id: u16) -> Option<u16> {
    get(id).and_then(|p| u16::try_from(p.sockets.len()).ok())
}

/// Largest frame the port receives into one ring slot and packet buffer,
/// and sends from one slot.
pub(crate) fn max_frame(pool: &Mempool) -> usize {
    pool.data_room()
        .min(FRAME_SIZE as usize - socket::RX_DATA_OFFSET)
        .min(FRAME_SIZE as usize - socket::TX_DATA_OFFSET - VNET_HDR_LEN)
}

/// How [`configure`] sets a packet port up.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// RX queues: every socket's (all are in the fanout and must be polled).
    pub rx_queues: u16,
    /// TX queues: at most one per socket.
    pub tx_queues: u16,
    /// MTU to set on the interface, if any.
    pub mtu: Option<u16>,
    /// Receive frames for any destination MAC.
    pub promiscuous: bool,
    /// Receive all multicast frames.
    pub allmulticast: bool,
    /// Largest IP packet (IPv4 total length, IPv6 header + payload) a TCP
    /// super-frame is cut into (at most the MTU).
    pub segment_ip_len: Option<u16>,
}

/// Sets the port up: MTU, promiscuous and all-multicast memberships, the
/// pool RX draws from, and the size TCP super-frames are cut to; makes
/// the queue handles for [`queues`]. Returns the interface's MTU.
pub(crate) fn configure(id: u16, setup: &Settings, pool: &Mempool) -> io::Result<u16> {
    let port = get(id).ok_or(io::ErrorKind::NotFound)?;
    if usize::from(setup.rx_queues) != port.sockets.len()
        || usize::from(setup.tx_queues) > port.sockets.len()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} has {} queues: every one is polled, and sends on at most that many",
                port.iface,
                port.sockets.len()
            ),
        ));
    }
    if let Some(mtu) = setup.mtu {
        socket::set_mtu(&port.iface, mtu)?;
    }
    let mtu = socket::mtu(&port.iface)? as usize;
    if mtu + 14 > max_frame(pool) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} has MTU {mtu}: a frame of it does not fit a {}-byte packet buffer",
                port.iface,
                max_frame(pool)
            ),
        ));
    }
    let first = &port.sockets[0];
    if setup.promiscuous {
        first.add_membership(port.ifindex, libc::PACKET_MR_PROMISC)?;
    }
    if setup.allmulticast {
        first.add_membership(port.ifindex, libc::PACKET_MR_ALLMULTI)?;
    }
    let limit = setup
        .segment_ip_len
        .map_or(mtu, |l| usize::from(l).min(mtu));
    port.segment_ip_len.store(limit, Ordering::Relaxed);
    let rx = port
        .sockets
        .iter()
        .zip(&port.counters)
        .enumerate()
        .map(|(q, (s, c))| {
            let mut big = vec![0; VNET_HDR_LEN + MAX_QUEUED_FRAME].into_boxed_slice();
            // What arrived while the port was being set up is not traffic
            // of the configured port yet.
            let next = s.discard_received(&mut big);
            PacketRx {
                queue: q as u16,
                port_id: id,
                sock: Arc::clone(s),
                counters: Arc::clone(c),
                next,
                pool: pool.as_ptr(),
                room: pool.data_room(),
                big,
                pending: None,
                segment_ip_len: limit,
            }
        })
        .collect();
    let tx = port
        .sockets
        .iter()
        .zip(&port.counters)
        .take(usize::from(setup.tx_queues))
        .enumerate()
        .map(|(q, (s, c))| PacketTx {
            queue: q as u16,
            port_id: id,
            sock: Arc::clone(s),
            counters: Arc::clone(c),
            next: 0,
        })
        .collect();
    *port.handles.lock().unwrap_or_else(PoisonError::into_inner) = Some((rx, tx));
    Ok(u16::try_from(mtu).unwrap_or(u16::MAX))
}

/// The queue handles made by [`configure`], once.
pub(crate) fn queues(id: u16) -> (Vec<PacketRx>, Vec<PacketTx>) {
    get(id)
        .and_then(|p| {
            p.handles
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        })
        .unwrap_or_default()
}

/// Forgets the port; its sockets close once the queue handles are dropped.
pub(crate) fn close(id: u16) {
    if let Some(i) = id.checked_sub(FIRST_ID) {
        let mut ports = PORTS.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = ports.get_mut(usize::from(i)) {
            *slot = None;
        }
    }
}

/// The kernel's own counters of a packet port's sockets, which only the
/// kernel keeps: frames dropped on a full ring, frames rolled over.
#[derive(Debug)]
pub struct KernelCounters {
    iface: String,
    sockets: Vec<Arc<Socket>>,
    queues: Vec<Arc<QueueCounters>>,
    /// Per queue: its received count at the previous read, and how many
    /// reads in a row it took nothing while its ring dropped.
    watch: Vec<(AtomicU64, AtomicU64)>,
}

/// Reads in a row (one a second, from the management lcore) in which a
/// queue takes nothing while the kernel drops on its ring before that is
/// logged as an error.
const STUCK_READS: u64 = 3;

impl KernelCounters {
    /// How many sockets (queues) the port has.
    pub fn sockets(&self) -> usize {
        self.sockets.len()
    }

    /// Frames dropped on a full ring since the previous call, summed over
    /// the sockets (the kernel resets its count when it is read, so one
    /// caller must own this). A queue that took no frame for
    /// [`STUCK_READS`] calls in a row while its ring dropped is logged as
    /// an error: its worker gets no CPU, or the ring is stuck (the kernel
    /// limit in docs/datapath.md).
    pub fn take_ring_drops(&self) -> u64 {
        let mut total = 0;
        for (q, s) in self.sockets.iter().enumerate() {
            let drops = s.take_ring_drops();
            total += drops;
            let (Some(c), Some((last_rx, quiet))) = (self.queues.get(q), self.watch.get(q)) else {
                continue;
            };
            let rx = c.rx_packets.load(Ordering::Relaxed);
            let took_nothing = rx == last_rx.swap(rx, Ordering::Relaxed);
            if drops > 0 && took_nothing {
                if quiet.fetch_add(1, Ordering::Relaxed) + 1 == STUCK_READS {
                    log::error!(
                        "{} queue {q}: no frame taken for {STUCK_READS} s while the kernel \
                         dropped {drops} in the last second on its ring: its worker gets no \
                         CPU, or the ring is stuck (docs/datapath.md, \"A known kernel limit\")",
                        self.iface
                    );
                }
            } else {
                quiet.store(0, Ordering::Relaxed);
            }
        }
        total
    }

    /// Frames the fanout moved from these sockets to another one, since
    /// they were opened (0: they join without rollover).
    pub fn rollovers(&self) -> u64 {
        self.sockets.iter().map(|s| s.rollovers()).sum()
    }
}

/// The kernel's counters of packet port `id`; `None` if it is not one.
pub fn kernel_counters(id: u16) -> Option<KernelCounters> {
    get(id).map(|p| KernelCounters {
        iface: p.iface.clone(),
        sockets: p.sockets.clone(),
        queues: p.counters.clone(),
        watch: p.sockets.iter().map(|_| Default::default()).collect(),
    })
}

pub(crate) fn mac_addr(id: u16) -> io::Result<[u8; 6]> {
    socket::mac_address(&get(id).ok_or(io::ErrorKind::NotFound)?.iface)
}

pub(crate) fn link_up(id: u16) -> io::Result<bool> {
    socket::running(&get(id).ok_or(io::ErrorKind::NotFound)?.iface)
}

/// One queue's traffic counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Frames received (segments, once a super-frame is cut).
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames dropped for want of an mbuf.
    pub rx_nombuf: u64,
    /// Frames refused by the offload handling (every `drop_*` of
    /// [`OffloadStats`]).
    pub rx_errors: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Frames too long for a TX slot, dropped.
    pub tx_errors: u64,
}

/// The port's counters per queue; `None` for a port that is not a packet
/// port.
pub(crate) fn queue_stats(id: u16) -> Option<Vec<QueueStats>> {
    let port = get(id)?;
    let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Some(
        port.counters
            .iter()
            .map(|c| QueueStats {
                rx_packets: r(&c.rx_packets),
                rx_bytes: r(&c.rx_bytes),
                rx_nombuf: r(&c.rx_nombuf),
                rx_errors: r(&c.drop_gso_unsupported)
                    + r(&c.drop_bad_offload)
                    + r(&c.drop_too_long),
                tx_packets: r(&c.tx_packets),
                tx_bytes: r(&c.tx_bytes),
                tx_errors: r(&c.tx_errors),
            })
            .collect(),
    )
}

/// What the offload handling did on the port's receive side; `None` for a
/// port that is not a packet port.
pub fn offload_stats(id: u16) -> Option<OffloadStats> {
    let port = get(id)?;
    let mut s = OffloadStats::default();
    for c in &port.counters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        s.csum_completed += r(&c.csum_completed);
        s.gso_frames += r(&c.gso_frames);
        s.gso_segments += r(&c.gso_segments);
        s.drop_gso_unsupported += r(&c.drop_gso_unsupported);
        s.drop_bad_offload += r(&c.drop_bad_offload);
        s.drop_too_long += r(&c.drop_too_long);
    }
    Some(s)
}

/// A super-frame in the RX queue's buffer whose segments did not all fit
/// the burst that read it.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Bytes of the buffer (virtio-net header included).
    len: usize,
    /// The next segment to deliver.
    next: usize,
}

/// The receive side of one packet-port queue. One lcore owns it.
#[derive(Debug)]
pub struct PacketRx {
    queue: u16,
    port_id: u16,
    sock: Arc<Socket>,
    counters: Arc<QueueCounters>,
    /// The next RX slot to look at.
    next: u32,
    pool: *mut ffi::rte_mempool,
    /// Data room of the pool's mbufs.
    room: usize,
    /// A frame too large for a slot, or a super-frame being segmented.
    big: Box<[u8]>,
    pending: Option<Pending>,
    segment_ip_len: usize,
}

// SAFETY: the pool pointer is to a thread-safe DPDK mempool that outlives
// the port (as for any DPDK RX queue); the rest is owned or Arc'd.
unsafe impl Send for PacketRx {}

impl PacketRx {
    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the free room of `out`; returns how many arrived.
    pub fn rx_burst(&mut self, out: &mut Burst) -> usize {
        let start = out.len();
        if let Some(p) = self.pending.take() {
            self.deliver_segments(p, out);
        }
        let frames = self.sock.geometry().rx_frames;
        while !out.is_full() && self.pending.is_none() {
            let Some(f) = self.sock.rx_frame(self.next) else {
                break;
            };
            let slot = self.next;
            self.next = (self.next + 1) % frames;
            let hdr = match f.mac.checked_sub(VNET_HDR_LEN) {
                Some(at) => {
                    let mut b = [0u8; VNET_HDR_LEN];
                    // SAFETY: the slot is ours (rx_frame returned it) until
                    // released below, and this queue is its only reader.
                    b.copy_from_slice(unsafe { self.sock.rx_bytes(slot, at, VNET_HDR_LEN) });
                    VnetHdr::parse(&b)
                }
                None => VnetHdr::default(),
            };
            if f.snaplen < f.len || hdr.is_gso() {
                let whole = self.take_whole(slot, &f);
                self.sock.rx_release(slot);
                match whole {
                    // The kernel took a VLAN tag off: a tagged super-frame
                    // is not segmented here.
                    Some(_) if f.vlan.is_some() => bump(&self.counters.drop_gso_unsupported, 1),
                    Some(len) => self.deliver_big(len, out),
                    None => bump(&self.counters.drop_too_long, 1),
                }
                continue;
            }
            // SAFETY: as above.
            let frame = unsafe { self.sock.rx_bytes(slot, f.mac, f.snaplen) };
            if let Some(mut m) = self.copy_to_mbuf(frame) {
                // The checksum offsets count from the frame as it is, without
                // the tag the kernel took off; the tag goes back after.
                let done = vnet::complete_checksum(m.data_mut(), &hdr);
                let tagged = f.vlan.is_none_or(|tag| put_vlan_tag_back(&mut m, tag));
                match done {
                    Ok(()) if tagged => {
                        if hdr.needs_csum() {
                            bump(&self.counters.csum_completed, 1);
                        }
                        out.push(m);
                    }
                    Ok(()) => bump(&self.counters.drop_too_long, 1),
                    Err(e) => self.count_refused(e),
                }
            }
            self.sock.rx_release(slot);
        }
        let n = out.len() - start;
        if n > 0 {
            let bytes: usize = out[start..].iter().map(Mbuf::pkt_len).sum();
            bump(&self.counters.rx_packets, n as u64);
            bump(&self.counters.rx_bytes, bytes as u64);
        }
        n
    }

    /// Puts the whole frame of `slot` (header first) in `big`: from the
    /// socket queue if the kernel copied it there, else from the slot.
    fn take_whole(&mut self, slot: u32, f: &socket::RxFrame) -> Option<usize> {
        if f.status & libc::TP_STATUS_COPY != 0 {
            return self
                .sock
                .recv_queued(&mut self.big)
                .filter(|n| *n >= VNET_HDR_LEN);
        }
        if f.snaplen < f.len {
            // Truncated with no whole copy: the socket queue was full.
            return None;
        }
        let at = f.mac.checked_sub(VNET_HDR_LEN)?;
        let len = VNET_HDR_LEN + f.snaplen;
        // SAFETY: the slot is ours until the caller releases it.
        let bytes = unsafe { self.sock.rx_bytes(slot, at, len) };
        self.big.get_mut(..len)?.copy_from_slice(bytes);
        Some(len)
    }

    /// Delivers the frame in `big`: its segments if it is a super-frame,
    /// else the frame itself with its checksum completed.
    fn deliver_big(&mut self, len: usize, out: &mut Burst) {
        let mut b = [0u8; VNET_HDR_LEN];
        b.copy_from_slice(&self.big[..VNET_HDR_LEN]);
        let hdr = VnetHdr::parse(&b);
        if hdr.is_gso() {
            self.deliver_segments(Pending { len, next: 0 }, out);
            return;
        }
        let frame = &mut self.big[VNET_HDR_LEN..len];
        if hdr.needs_csum() {
            if let Err(e) = vnet::complete_checksum(frame, &hdr) {
                self.count_refused(e);
                return;
            }
            bump(&self.counters.csum_completed, 1);
        }
        let frame = &self.big[VNET_HDR_LEN..len];
        if let Some(m) = self.copy_to_mbuf(frame) {
            out.push(m);
        }
    }

    /// Cuts the super-frame in `big` from segment `p.next` on into `out`;
    /// what does not fit waits in `pending` for the next burst.
    fn deliver_segments(&mut self, p: Pending, out: &mut Burst) {
        let mut b = [0u8; VNET_HDR_LEN];
        b.copy_from_slice(&self.big[..VNET_HDR_LEN]);
        let hdr = VnetHdr::parse(&b);
        let frame = &self.big[VNET_HDR_LEN..p.len];
        let plan = match Segments::plan(frame, &hdr, self.segment_ip_len) {
            Ok(plan) => plan,
            Err(e) => {
                count_refused(&self.counters, e);
                return;
            }
        };
        if p.next == 0 {
            bump(&self.counters.gso_frames, 1);
        }
        let mut i = p.next;
        while i < plan.count() {
            if out.is_full() {
                self.pending = Some(Pending {
                    len: p.len,
                    next: i,
                });
                return;
            }
            let len = plan.segment_len(i);
            i += 1;
            if len > self.room {
                bump(&self.counters.drop_too_long, 1);
                continue;
            }
            let Some(mut m) = alloc(self.pool, self.port_id) else {
                bump(&self.counters.rx_nombuf, 1);
                continue;
            };
            let Some(buf) = m.append(len as u16) else {
                bump(&self.counters.drop_too_long, 1);
                continue;
            };
            plan.write(i - 1, buf);
            bump(&self.counters.gso_segments, 1);
            out.push(m);
        }
    }

    /// A fresh mbuf holding `frame`, or `None` (counted) if there is no
    /// mbuf or it does not fit one.
    fn copy_to_mbuf(&self, frame: &[u8]) -> Option<Mbuf> {
        if frame.len() > self.room {
            bump(&self.counters.drop_too_long, 1);
            return None;
        }
        let Some(mut m) = alloc(self.pool, self.port_id) else {
            bump(&self.counters.rx_nombuf, 1);
            return None;
        };
        m.append(frame.len() as u16)?.copy_from_slice(frame);
        Some(m)
    }

    fn count_refused(&self, e: OffloadError) {
        count_refused(&self.counters, e);
    }
}

fn count_refused(c: &QueueCounters, e: OffloadError) {
    match e {
        OffloadError::UnsupportedGso => bump(&c.drop_gso_unsupported, 1),
        OffloadError::BadChecksumOffsets | OffloadError::Malformed => {
            bump(&c.drop_bad_offload, 1);
        }
    }
}

/// Puts back the VLAN tag `(tpid, tci)` the kernel took off a frame (it
/// hands tagged frames to a packet socket untagged, the tag beside them), so
/// that the pipeline sees the frame as it was on the wire; false if the
/// mbuf has no headroom for it.
fn put_vlan_tag_back(m: &mut Mbuf, (tpid, tci): (u16, u16)) -> bool {
    if m.data_len() < 12 || m.prepend(4).is_none() {
        return false;
    }
    let d = m.data_mut();
    d.copy_within(4..16, 0);
    d[12..14].copy_from_slice(&tpid.to_be_bytes());
    d[14..16].copy_from_slice(&tci.to_be_bytes());
    true
}

/// One mbuf from `pool`, marked as received on `port_id`.
#[inline]
fn alloc(pool: *mut ffi::rte_mempool, port_id: u16) -> Option<Mbuf> {
    // SAFETY: `pool` is the live mempool `configure` was given, which
    // outlives the port; a non-null result is a fresh mbuf we own.
    let mut m = unsafe { Mbuf::from_raw(ffi::shim_pktmbuf_alloc(pool)) }?;
    m.set_port(port_id);
    Some(m)
}

/// The transmit side of one packet-port queue. One lcore owns it.
#[derive(Debug)]
pub struct PacketTx {
    queue: u16,
    port_id: u16,
    sock: Arc<Socket>,
    counters: Arc<QueueCounters>,
    /// The next TX slot to fill.
    next: u32,
}

impl PacketTx {
    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Port id.
    pub fn port(&self) -> u16 {
        self.port_id
    }

    /// Copies the front of `pkts` into the TX ring and asks the kernel to
    /// send it; the mbufs taken leave `pkts` (freed: their bytes are in
    /// the ring), what did not fit stays, in order. A frame too long for a
    /// slot is taken and counted as an error. Returns how many were taken.
    pub fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        let frames = self.sock.geometry().tx_frames;
        let mut taken = 0;
        let mut sent = 0;
        let mut bytes = 0;
        let mut kicked = false;
        let mut i = 0;
        while let Some(m) = pkts.get(i) {
            let len = m.pkt_len();
            // SAFETY: this queue is the socket's only sender, and each slot
            // buffer is dropped (committed) before the next is asked for.
            let Some(slot) = (unsafe { self.sock.tx_slot(self.next, len) }) else {
                // SAFETY: as above; the buffer is dropped at once.
                if unsafe { self.sock.tx_slot(self.next, 0) }.is_some() {
                    // The slot is free: the frame is what does not fit.
                    taken += 1;
                    i += 1;
                    bump(&self.counters.tx_errors, 1);
                    continue;
                }
                // The ring is full. If the kernel stopped on a frame it could
                // not send (the link was down, its buffer full), the frames
                // committed wait for a kick: give it one, once, and look again.
                if !kicked && self.sock.tx_pending(self.next) {
                    self.sock.tx_kick();
                    kicked = true;
                    continue;
                }
                break;
            };
            let (hdr, data) = slot.split_at_mut(VNET_HDR_LEN);
            if let Ok(hdr) = <&mut [u8; VNET_HDR_LEN]>::try_from(hdr) {
                // No offload asked of the kernel: the frame is complete.
                VnetHdr::default().emit(hdr);
            }
            let mut at = 0;
            for seg in m.segments() {
                data[at..at + seg.len()].copy_from_slice(seg);
                at += seg.len();
            }
            // SAFETY: the slot tx_slot gave this queue, filled, buffer dropped.
            unsafe { self.sock.tx_commit(self.next, VNET_HDR_LEN + len) };
            self.next = (self.next + 1) % frames;
            taken += 1;
            i += 1;
            sent += 1;
            bytes += len;
        }
        if sent > 0 {
            self.sock.tx_kick();
            // Frames handed to the kernel; one it then fails to send shows
            // in the kernel's counters, not here.
            bump(&self.counters.tx_packets, sent);
            bump(&self.counters.tx_bytes, bytes as u64);
        }
        // The taken mbufs are freed here: their bytes are in the ring.
        pkts.drain(..taken);
        taken
    }
}
