//! One `AF_PACKET` socket with its memory-mapped `TPACKET_V2` rings: the
//! system calls and the raw frame access, kept apart from the logic of
//! what a frame means (`mod.rs`) so that every `unsafe` block here is about
//! one syscall or one pointer into the ring.
//!
//! Layout of the mapping (the kernel's): the RX ring's frames first, then
//! the TX ring's, each frame `frame_size` bytes starting with a
//! `tpacket2_hdr` whose `tp_status` is the hand-off word between the kernel
//! and us.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::{c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::vnet::VNET_HDR_LEN;

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `bind(2)` want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// Ring blocks are one page: the kernel allocates each block contiguously,
/// and a page never fails to allocate.
const BLOCK_SIZE: u32 = 4096;
/// Where the frame data starts in a TX frame: the kernel reads it at the
/// `tpacket2_hdr` rounded up to 16 bytes (`tp_hdrlen - sizeof(sockaddr_ll)`).
pub(super) const TX_DATA_OFFSET: usize = libc::TPACKET2_HDRLEN - size_of::<libc::sockaddr_ll>();
/// Where the Ethernet header of a received frame starts in an RX slot: the
/// kernel puts the network header at the `tpacket2_hdr` plus 16 bytes rounded
/// up to 16, plus the virtio-net header (`tpacket_rcv`).
pub(super) const RX_DATA_OFFSET: usize =
    ((libc::TPACKET2_HDRLEN + 16 + 15) & !15) + VNET_HDR_LEN - 14;
/// Socket receive buffer for the frames too large for a ring slot (GSO
/// super-frames, which the kernel queues whole beside the truncated slot):
/// room for about 60 of 64 KB.
const COPY_QUEUE_BYTES: c_int = 4 << 20;

/// How one socket is set up.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    /// RX ring slots.
    pub rx_frames: u32,
    /// TX ring slots.
    pub tx_frames: u32,
    /// Bytes per slot (both rings).
    pub frame_size: u32,
}

impl Geometry {
    /// The same geometry with both rings rounded up to whole ring blocks
    /// (the kernel refuses a ring whose frames do not fill its blocks).
    pub fn whole_blocks(self) -> Self {
        let per_block = (BLOCK_SIZE / self.frame_size).max(1);
        let round = |n: u32| n.max(1).div_ceil(per_block) * per_block;
        Self {
            rx_frames: round(self.rx_frames),
            tx_frames: round(self.tx_frames),
            ..self
        }
    }
}

/// What the kernel said about one received frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct RxFrame {
    /// `tp_status` (`TP_STATUS_*`).
    pub status: u32,
    /// The VLAN tag the kernel took off the frame, if `TP_STATUS_VLAN_VALID`:
    /// (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
    /// The frame's length on the wire.
    pub len: usize,
    /// Bytes of it in the slot.
    pub snaplen: usize,
    /// Offset of the Ethernet header in the slot.
    pub mac: usize,
}

/// An open, bound `AF_PACKET` socket with its rings mapped. Closed and
/// unmapped on drop.
#[derive(Debug)]
pub(super) struct Socket {
    fd: OwnedFd,
    map: NonNull<u8>,
    map_len: usize,
    geometry: Geometry,
}

// SAFETY: the mapping is shared memory whose slots are handed over through
// `tp_status` with acquire/release ordering; each ring is used by one owner
// at a time (the RX queue, the TX queue), and the descriptor is a plain fd.
unsafe impl Send for Socket {}
// SAFETY: as above: the methods that touch a ring are called by that ring's
// one owner; the others are syscalls on the fd.
unsafe impl Sync for Socket {}

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn setsockopt<T>(fd: c_int, level: c_int, name: c_int, value: &T, what: &str) -> io::Result<()> {
    // SAFETY: `value` is a live T and the length says so; the kernel only
    // reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast::<c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_error(what))
    }
}

/// The kernel's index of interface `iface`.
pub(super) fn ifindex(iface: &str) -> io::Result<c_int> {
    let name = CString::new(iface).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(last_error(&format!("interface {iface}")));
    }
    c_int::try_from(index).map_err(|_| io::ErrorKind::InvalidData.into())
}

impl Socket {
    /// Opens a socket on `ifindex` with virtio-net headers, both rings, the
    /// qdisc bypassed, and joins fanout group `fanout` (hash of the flow, IP
    /// fragments defragmented first so a datagram stays on one socket; no
    /// rollover, which would reorder a flow when a ring fills).
    pub fn open(ifindex: c_int, geometry: Geometry, fanout: u16) -> io::Result<Self> {
        // Protocol 0: the socket receives nothing until `bind` names the
        // interface and the protocol, so no other interface's frame gets
        // into the ring meanwhile.
        // SAFETY: plain socket creation; the descriptor is owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if raw < 0 {
            return Err(last_error("socket(AF_PACKET)"));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        let one: c_int = 1;
        let version = libc::tpacket_versions::TPACKET_V2 as c_int;
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "PACKET_VERSION",
        )?;
        // Before the rings: the kernel refuses it once they exist.
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_VNET_HDR,
            &one,
            "PACKET_VNET_HDR",
        )?;
        // A bad TX frame is skipped, not left to block the ring.
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_LOSS, &one, "PACKET_LOSS")?;
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &one,
            "PACKET_QDISC_BYPASS",
        )?;
        // Frames this process (or anyone) sends on the interface are not
        // received back.
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            "PACKET_IGNORE_OUTGOING",
        )?;
        // A frame larger than a slot is also queued whole on the socket.
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_COPY_THRESH,
            &one,
            "PACKET_COPY_THRESH",
        )?;
        if setsockopt(
            s,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &COPY_QUEUE_BYTES,
            "",
        )
        .is_err()
        {
            setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &COPY_QUEUE_BYTES,
                "SO_RCVBUF",
            )?;
        }
        // The kernel wants whole blocks: `frames` is rounded up to them
        // (`Geometry::whole_blocks` made it so already).
        let per_block = BLOCK_SIZE / geometry.frame_size;
        let ring = |frames: u32| libc::tpacket_req {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: frames.div_ceil(per_block),
            tp_frame_size: geometry.frame_size,
            tp_frame_nr: frames.div_ceil(per_block) * per_block,
        };
        let rx = ring(geometry.rx_frames);
        let tx = ring(geometry.tx_frames);
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &rx,
            "PACKET_RX_RING",
        )?;
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_TX_RING,
            &tx,
            "PACKET_TX_RING",
        )?;
        let map_len = (rx.tp_block_nr + tx.tp_block_nr) as usize * BLOCK_SIZE as usize;
        // SAFETY: maps the rings the kernel just allocated for this socket;
        // the mapping is unmapped once, in Drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                s,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last_error("mmap(packet rings)"));
        }
        let socket = Self {
            fd,
            map: NonNull::new(map.cast::<u8>()).ok_or(io::ErrorKind::Other)?,
            map_len,
            geometry,
        };
        // SAFETY: all-zero is a valid sockaddr_ll; the fields below fill it.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL_BE;
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                s,
                (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_error("bind(AF_PACKET)"));
        }
        let arg: c_int = c_int::from(fanout)
            | ((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) as c_int) << 16;
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &arg,
            "PACKET_FANOUT",
        )?;
        Ok(socket)
    }

    /// Adds a `PACKET_MR_*` membership (promiscuous, all-multicast); it
    /// lasts as long as the socket.
    pub fn add_membership(&self, ifindex: c_int, kind: c_int) -> io::Result<()> {
        // SAFETY: all-zero is a valid packet_mreq.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = kind as u16;
        setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
            "PACKET_ADD_MEMBERSHIP",
        )
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Start of slot `i` of the RX ring (`i < rx_frames`) or, past it, of
    /// the TX ring.
    fn slot(&self, i: u32) -> *mut u8 {
        debug_assert!(i < self.geometry.rx_frames + self.geometry.tx_frames);
        // Frames never straddle blocks (a block holds a whole number of
        // them), so slot i is at i × frame_size.
        // SAFETY: i indexes a slot inside the mapping (callers keep it
        // below the ring sizes), so the offset stays in bounds.
        unsafe {
            self.map
                .as_ptr()
                .add(i as usize * self.geometry.frame_size as usize)
        }
    }

    fn status(&self, i: u32) -> &AtomicU32 {
        // SAFETY: tp_status is the first, 4-aligned u32 of every slot, and
        // the kernel and we only ever access it atomically.
        unsafe { AtomicU32::from_ptr(self.slot(i).cast::<u32>()) }
    }

    /// The RX slot `i` if the kernel has handed it to us.
    pub fn rx_frame(&self, i: u32) -> Option<RxFrame> {
        // Acquire: the frame's bytes are visible once the status says USER.
        let status = self.status(i).load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the slot is ours until we give it back; its header is a
        // tpacket2_hdr at the slot's start.
        let h = unsafe { &*self.slot(i).cast::<libc::tpacket2_hdr>() };
        let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                h.tp_vlan_tpid
            } else {
                0x8100
            };
            (tpid, h.tp_vlan_tci)
        });
        Some(RxFrame {
            status,
            vlan,
            len: h.tp_len as usize,
            snaplen: h.tp_snaplen as usize,
            mac: usize::from(h.tp_mac),
        })
    }

    /// The bytes of RX slot `i` from `start` for `len` (clamped to the slot).
    ///
    /// # Safety
    /// Slot `i` must be ours: [`Socket::rx_frame`] returned it and it was not
    /// released since (the kernel writes slots it owns), and the caller is
    /// the socket's one RX queue.
    pub unsafe fn rx_bytes(&self, i: u32, start: usize, len: usize) -> &[u8] {
        let size = self.geometry.frame_size as usize;
        let start = start.min(size);
        let len = len.min(size - start);
        // SAFETY: the range lies inside slot i, which is ours (the caller
        // saw TP_STATUS_USER) until `rx_release`.
        unsafe { std::slice::from_raw_parts(self.slot(i).add(start), len) }
    }

    /// Whether TX slot `i` was committed and the kernel has not sent it yet
    /// (a send that failed leaves it so, and waits for the next kick).
    pub fn tx_pending(&self, i: u32) -> bool {
        let slot = self.geometry.rx_frames + i;
        self.status(slot).load(Ordering::Acquire) == libc::TP_STATUS_SEND_REQUEST
    }

    /// Drops whatever arrived since the socket was bound, and returns the
    /// slot where the kernel will write next. The kernel fills slots in
    /// order from 0, so the ones it filled are a run from 0; each that
    /// carries `TP_STATUS_COPY` has one whole copy queued on the socket,
    /// which is read off with it, so that copies and slots stay paired.
    /// Only before any RX queue polls the socket.
    pub fn discard_received(&self, scratch: &mut [u8]) -> u32 {
        let mut i = 0;
        while i < self.geometry.rx_frames {
            let Some(f) = self.rx_frame(i) else { break };
            if f.status & libc::TP_STATUS_COPY != 0 {
                let _ = self.recv_queued(scratch);
            }
            self.rx_release(i);
            i += 1;
        }
        i % self.geometry.rx_frames
    }

    /// Gives RX slot `i` back to the kernel.
    pub fn rx_release(&self, i: u32) {
        // Release: we are done reading before the kernel may write.
        self.status(i)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    /// TX slot `i` (`i < tx_frames`) as a writable buffer for a frame of
    /// `len` bytes after the virtio-net header, if the kernel is done
    /// with it and the frame fits.
    ///
    /// # Safety
    /// Only the socket's one TX queue calls this, and it drops the buffer
    /// (commits the slot) before it asks for another one: the slot is then
    /// written by nobody else.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn tx_slot(&self, i: u32, len: usize) -> Option<&mut [u8]> {
        let slot = self.geometry.rx_frames + i;
        if self.status(slot).load(Ordering::Acquire) != libc::TP_STATUS_AVAILABLE {
            return None;
        }
        let room = self.geometry.frame_size as usize - TX_DATA_OFFSET;
        let total = VNET_HDR_LEN + len;
        if total > room {
            return None;
        }
        // SAFETY: the slot is available (the kernel is not reading it) and
        // only its one owner (the TX queue) writes it; the range is inside it.
        Some(unsafe { std::slice::from_raw_parts_mut(self.slot(slot).add(TX_DATA_OFFSET), total) })
    }

    /// Hands TX slot `i`, filled with `len` bytes (header included), to
    /// the kernel.
    ///
    /// # Safety
    /// As [`Socket::tx_slot`]: only the socket's one TX queue calls this, for
    /// a slot `tx_slot` gave it.
    pub unsafe fn tx_commit(&self, i: u32, len: usize) {
        let slot = self.geometry.rx_frames + i;
        // SAFETY: the slot is ours (see tx_slot); only tp_len is written
        // before the status hands it over.
        unsafe { (*self.slot(slot).cast::<libc::tpacket2_hdr>()).tp_len = len as u32 };
        self.status(slot)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
    }

    /// Asks the kernel to send the committed TX slots. Never blocks; a
    /// full device queue leaves them committed for the next kick.
    pub fn tx_kick(&self) {
        // SAFETY: a send with no data on our own socket; the kernel walks
        // the TX ring.
        let _ = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
    }

    /// Reads the next whole frame queued on the socket (the copy the kernel
    /// makes of a frame too large for a slot) into `buf`: the virtio-net
    /// header then the frame. Returns its length, or `None` if nothing was
    /// queued or it did not fit (then it is consumed and lost).
    pub fn recv_queued(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: `buf` is writable for its length; MSG_TRUNC makes the
        // kernel return the full length so truncation can be seen.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        let n = usize::try_from(n).ok()?;
        (n <= buf.len()).then_some(n)
    }
}

/// `struct tpacket_stats` (what a `TPACKET_V2` socket fills).
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
}

/// `struct tpacket_rollover_stats`: `tp_all` counts the frames the fanout
/// hash gave this socket that went to another one because its ring was
/// full; `tp_huge` and `tp_failed` are parts of that.
#[repr(C)]
#[derive(Default)]
struct TpacketRolloverStats {
    tp_all: u64,
    tp_huge: u64,
    tp_failed: u64,
}

impl Socket {
    /// Frames the kernel dropped on a full RX ring since the previous call
    /// (reading resets the kernel's count).
    pub fn take_ring_drops(&self) -> u64 {
        let mut st = TpacketStats::default();
        if self.getsockopt(libc::PACKET_STATISTICS, &mut st) {
            u64::from(st.tp_drops)
        } else {
            0
        }
    }

    /// Frames the fanout moved from this socket to another one since it
    /// was opened (0 without `PACKET_FANOUT_FLAG_ROLLOVER`).
    pub fn rollovers(&self) -> u64 {
        let mut st = TpacketRolloverStats::default();
        if self.getsockopt(libc::PACKET_ROLLOVER_STATS, &mut st) {
            st.tp_all
        } else {
            0
        }
    }

    /// A `SOL_PACKET` option read into `out`; false if the kernel refused
    /// (then `out` is left as it was).
    fn getsockopt<T>(&self, option: c_int, out: &mut T) -> bool {
        let mut len = size_of::<T>() as libc::socklen_t;
        // SAFETY: `out` is a live, writable T and `len` its size; the kernel
        // writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                option,
                (out as *mut T).cast::<c_void>(),
                &mut len,
            )
        };
        rc == 0
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once; the fd closes
        // after it (OwnedFd).
        unsafe { libc::munmap(self.map.as_ptr().cast::<c_void>(), self.map_len) };
    }
}

/// An `ifreq` for `iface`, for the `SIOC*` ioctls.
fn ifreq(iface: &str) -> io::Result<libc::ifreq> {
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = iface.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// An `SIOC*` ioctl on a throwaway datagram socket.
fn ioctl(request: libc::c_ulong, req: &mut libc::ifreq, what: &str) -> io::Result<()> {
    // SAFETY: plain socket creation; closed below by OwnedFd.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if raw < 0 {
        return Err(last_error("socket(AF_INET)"));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `req` is a valid ifreq the kernel reads and writes in place.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, req as *mut libc::ifreq) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_error(what))
    }
}

/// The interface's MAC address.
pub(super) fn mac_address(iface: &str) -> io::Result<[u8; 6]> {
    let mut req = ifreq(iface)?;
    ioctl(libc::SIOCGIFHWADDR, &mut req, "SIOCGIFHWADDR")?;
    // SAFETY: SIOCGIFHWADDR fills the hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(data) {
        *d = s as u8;
    }
    Ok(mac)
}

/// Whether the interface is up with a carrier (`IFF_RUNNING`).
pub(super) fn running(iface: &str) -> io::Result<bool> {
    let mut req = ifreq(iface)?;
    ioctl(libc::SIOCGIFFLAGS, &mut req, "SIOCGIFFLAGS")?;
    // SAFETY: SIOCGIFFLAGS fills the flags member of the union.
    let flags = c_int::from(unsafe { req.ifr_ifru.ifru_flags });
    Ok(flags & libc::IFF_RUNNING != 0 && flags & libc::IFF_UP != 0)
}

/// Sets the interface's MTU.
pub(super) fn set_mtu(iface: &str, mtu: u16) -> io::Result<()> {
    let mut req = ifreq(iface)?;
    req.ifr_ifru.ifru_mtu = c_int::from(mtu);
    ioctl(libc::SIOCSIFMTU, &mut req, "SIOCSIFMTU")
}

/// The interface's MTU.
pub(super) fn mtu(iface: &str) -> io::Result<u32> {
    let mut req = ifreq(iface)?;
    ioctl(libc::SIOCGIFMTU, &mut req, "SIOCGIFMTU")?;
    // SAFETY: SIOCGIFMTU fills the mtu member of the union.
    u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).map_err(|_| io::ErrorKind::InvalidData.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket on the loopback opens with its rings; a UDP datagram sent
    /// over the loopback (whose checksum offload leaves it partial) arrives
    /// in the RX ring behind a virtio-net header that says so, and the
    /// completed checksum verifies; nothing was dropped or rolled over.
    #[test]
    fn the_loopback_hands_a_partial_checksum_with_its_offsets() {
        use super::super::vnet::{complete_checksum, VnetHdr};
        let geometry = Geometry {
            rx_frames: 64,
            tx_frames: 64,
            frame_size: 2048,
        };
        let socket = match ifindex("lo").and_then(|i| Socket::open(i, geometry, 0x7a51)) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: no AF_PACKET socket without CAP_NET_RAW");
                return;
            }
            Err(e) => panic!("open on lo: {e}"),
        };
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"a datagram over the loopback", ("127.0.0.1", port))
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut slot = 0;
        let (hdr, mut frame) = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the datagram reached the ring"
            );
            let Some(f) = socket.rx_frame(slot) else {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            };
            let mut h = [0u8; 10];
            // SAFETY: the slot is ours (rx_frame returned it) until released
            // below, and this test is the socket's one reader.
            let (hb, frame) = unsafe {
                (
                    socket.rx_bytes(slot, f.mac - 10, 10),
                    socket.rx_bytes(slot, f.mac, f.snaplen),
                )
            };
            h.copy_from_slice(hb);
            let frame = frame.to_vec();
            socket.rx_release(slot);
            slot = (slot + 1) % geometry.rx_frames;
            let ours = frame.len() >= 38 && frame[23] == 17 && frame[36..38] == port.to_be_bytes();
            if ours {
                break (VnetHdr::parse(&h), frame);
            }
        };
        assert!(
            hdr.needs_csum(),
            "the loopback left the checksum partial: {hdr:?}"
        );
        assert_eq!((hdr.csum_start, hdr.csum_offset), (34, 6), "{hdr:?}");
        complete_checksum(&mut frame, &hdr).unwrap();
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&frame[14..])
            .unwrap()
            .to_header();
        let udp = etherparse::UdpHeaderSlice::from_slice(&frame[34..])
            .unwrap()
            .to_header();
        let expected = udp.calc_checksum_ipv4(&ip, &frame[42..]).unwrap();
        assert_eq!(udp.checksum, expected, "the completed checksum verifies");
        assert_eq!(socket.take_ring_drops(), 0);
        assert_eq!(socket.rollovers(), 0);
        assert!(ifindex("no-such-if0").is_err());
    }
}
