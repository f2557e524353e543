//! The kernel's own counters of the `net_af_packet` PMD's sockets, which the
//! PMD does not report: frames dropped because a socket's ring was full
//! (`PACKET_STATISTICS`) and frames the fanout moved from a socket to
//! another one (`PACKET_ROLLOVER_STATS`: DPDK 22.11 joins its sockets to
//! the fanout with `PACKET_FANOUT_FLAG_ROLLOVER`, and offers no way to turn
//! it off).
//!
//! The PMD keeps its sockets to itself, so they are found the way `ss`
//! finds them: the process's descriptors that are `AF_PACKET` sockets bound
//! to the interface. Only queries are made on them (`getsockopt`,
//! `getsockname`); nothing is sent, received or closed.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::raw::{c_int, c_void};

/// `<linux/if_packet.h>`: socket option for the ring statistics.
const PACKET_STATISTICS: c_int = 6;
/// `<linux/if_packet.h>`: socket option for the fanout rollover statistics.
const PACKET_ROLLOVER_STATS: c_int = 21;

/// `struct tpacket_stats_v3` (TPACKET_V1/V2 sockets fill its first two
/// fields, `struct tpacket_stats`).
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
    tp_freeze_q_cnt: u32,
}

/// `struct tpacket_rollover_stats`: `tp_all` counts the frames the fanout
/// hash gave this socket that went to another one because this one's ring
/// was full (or three quarters full, for a flow that dominated it); of those,
/// `tp_huge` the latter; `tp_failed` frames no other socket had room for
/// either (then dropped, and counted in the ring drops).
#[repr(C)]
#[derive(Default)]
struct TpacketRolloverStats {
    tp_all: u64,
    tp_huge: u64,
    tp_failed: u64,
}

/// The `AF_PACKET` sockets of this process on one kernel interface.
#[derive(Debug)]
pub struct PacketSockets {
    fds: Vec<c_int>,
}

impl PacketSockets {
    /// Finds the sockets bound to kernel interface `iface`, in descriptor
    /// order (the order the PMD opened its queues in).
    ///
    /// # Errors
    /// No such interface, or `/proc/self/fd` cannot be read.
    pub fn of_interface(iface: &str) -> io::Result<Self> {
        let name = CString::new(iface).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fds: Vec<c_int> = std::fs::read_dir("/proc/self/fd")?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| is_packet_socket_on(*fd, ifindex))
            .collect();
        fds.sort_unstable();
        Ok(Self { fds })
    }

    /// How many sockets were found.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Frames dropped on a full ring since the previous call, summed over
    /// the sockets (the kernel resets the count when it is read, so one
    /// caller must own this).
    pub fn take_ring_drops(&self) -> u64 {
        self.fds
            .iter()
            .filter_map(|fd| {
                let mut st = TpacketStats::default();
                getsockopt(*fd, PACKET_STATISTICS, &mut st).then_some(u64::from(st.tp_drops))
            })
            .sum()
    }

    /// Frames the fanout moved away from these sockets to another member
    /// because theirs was full, since they were opened, summed over the
    /// sockets (0 for a socket in no fanout with rollover).
    pub fn rollovers(&self) -> u64 {
        self.fds
            .iter()
            .filter_map(|fd| {
                let mut st = TpacketRolloverStats::default();
                getsockopt(*fd, PACKET_ROLLOVER_STATS, &mut st).then_some(st.tp_all)
            })
            .sum()
    }
}

/// Whether `fd` is an `AF_PACKET` socket bound to interface `ifindex`.
fn is_packet_socket_on(fd: c_int, ifindex: u32) -> bool {
    let mut domain: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `domain` is a c_int and `len` says so; on a descriptor that is
    // not a socket the call fails with ENOTSOCK and writes nothing.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut c_int).cast::<c_void>(),
            &mut len,
        )
    };
    if rc != 0 || domain != libc::AF_PACKET {
        return false;
    }
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a sockaddr_ll and `len` its size; the kernel writes
    // at most `len` bytes.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_ll).cast::<libc::sockaddr>(),
            &mut len,
        )
    };
    rc == 0 && u32::try_from(addr.sll_ifindex).ok() == Some(ifindex)
}

/// A `SOL_PACKET` option of `fd` read into `out`; false if the kernel
/// refused (then `out` is left as it was).
fn getsockopt<T>(fd: c_int, option: c_int, out: &mut T) -> bool {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `out` is a live, writable T and `len` its size; the kernel
    // writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            option,
            (out as *mut T).cast::<c_void>(),
            &mut len,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet socket of our own on the loopback is found, and its
    /// counters read; a socket of another family is not taken for one.
    #[test]
    fn finds_a_packet_socket_and_reads_its_counters() {
        // SAFETY: plain socket creation; the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            eprintln!("skipped: no AF_PACKET socket without CAP_NET_RAW");
            return;
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        let lo = CString::new("lo").unwrap();
        // SAFETY: a valid C string.
        addr.sll_ifindex = unsafe { libc::if_nametoindex(lo.as_ptr()) } as i32;
        // SAFETY: `addr` is a sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind to lo");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let found = PacketSockets::of_interface("lo").unwrap();
        assert!(found.fds.contains(&fd), "{found:?} has {fd}");
        assert!(!found.fds.contains(&std::os::fd::AsRawFd::as_raw_fd(&udp)));
        assert_eq!(found.take_ring_drops(), 0);
        // Not in a fanout: no rollover statistics, read as zero.
        assert_eq!(found.rollovers(), 0);
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(fd) };
        assert!(PacketSockets::of_interface("no-such-if0").is_err());
    }
}
