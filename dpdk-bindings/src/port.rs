//! Ethernet ports: lookup, setup (queues, RSS, offloads), start/stop, stats,
//! link state, and the per-queue burst handles the lcores own.

use std::ffi::{CStr, CString};

use crate::error::{check, DpdkError, Result};
use crate::ffi;
use crate::mbuf::{as_raw_array, Burst};
use crate::mempool::Mempool;
use crate::packet_port::{self, PacketRx, PacketTx};

/// Number of ports the EAL probed.
pub fn count() -> u16 {
    // SAFETY: plain query.
    unsafe { ffi::rte_eth_dev_count_avail() }
}

/// The port id of a device by its name (e.g. `net_af_packet0` or a PCI
/// address such as `0000:3b:00.0`).
///
/// # Errors
/// No such port (ENODEV).
pub fn by_name(name: &str) -> Result<u16> {
    let cname = CString::new(name).map_err(|_| DpdkError {
        op: "rte_eth_dev_get_port_by_name",
        code: 22,
    })?;
    let mut id: u16 = 0;
    // SAFETY: valid C string and out-pointer.
    let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    check("rte_eth_dev_get_port_by_name", ret).map(|_| id)
}

/// What a port's driver offers.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Driver name, e.g. `net_af_packet`.
    pub driver: String,
    /// Most RX queues the device accepts.
    pub max_rx_queues: u16,
    /// Most TX queues the device accepts.
    pub max_tx_queues: u16,
    /// RSS hash types the device can compute.
    pub rss_offloads: u64,
    /// TX offloads the device offers.
    pub tx_offload_capa: u64,
    /// Largest MTU.
    pub max_mtu: u16,
}

/// Reads the device info of `port`.
///
/// # Errors
/// Invalid port.
pub fn info(port: u16) -> Result<DeviceInfo> {
    if packet_port::is_packet_port(port) {
        let queues = packet_port::queue_count(port).ok_or(DpdkError {
            op: "packet_port::info",
            code: libc::ENODEV,
        })?;
        return Ok(DeviceInfo {
            driver: "af_packet".into(),
            max_rx_queues: queues,
            max_tx_queues: queues,
            rss_offloads: 0,
            tx_offload_capa: 0,
            max_mtu: u16::MAX,
        });
    }
    let mut di = ffi::rte_eth_dev_info::default();
    // SAFETY: valid out-pointer to a zeroed struct.
    check("rte_eth_dev_info_get", unsafe {
        ffi::rte_eth_dev_info_get(port, &mut di)
    })?;
    let driver = if di.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: DPDK fills driver_name with a static NUL-terminated string.
        unsafe { CStr::from_ptr(di.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(DeviceInfo {
        driver,
        max_rx_queues: di.max_rx_queues,
        max_tx_queues: di.max_tx_queues,
        rss_offloads: di.flow_type_rss_offloads,
        tx_offload_capa: di.tx_offload_capa,
        max_mtu: di.max_mtu,
    })
}

/// How to set a port up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// RX queues to configure (every one must be polled by someone).
    pub rx_queues: u16,
    /// TX queues to configure.
    pub tx_queues: u16,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// MTU to set, if any.
    pub mtu: Option<u16>,
    /// Spread flows over RX queues by an IP/UDP/TCP hash.
    pub rss: bool,
    /// Receive frames for any destination MAC.
    pub promiscuous: bool,
    /// Receive all multicast frames.
    pub allmulticast: bool,
    /// Ask for IPv4 and UDP checksum offload if the device has it.
    pub checksum_offload: bool,
    /// Packet ports: the largest IP packet (IPv4 total length, IPv6 header and
    /// payload) a host's TCP super-frame is cut into (at most the
    /// interface's MTU; `None`: the MTU).
    pub segment_ip_len: Option<u16>,
}

/// What setup actually enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Configured {
    /// RSS hash types enabled (0 = no RSS).
    pub rss_hf: u64,
    /// IPv4 header checksum is computed by the device on TX.
    pub tx_ipv4_cksum: bool,
    /// UDP checksum is computed by the device on TX.
    pub tx_udp_cksum: bool,
    /// The port's MTU (the largest IP packet it sends) as configured.
    pub mtu: u16,
}

/// Configures queues, RSS, offloads and MTU of `port`, with every RX queue
/// drawing mbufs from `pool`. Does not start the port.
///
/// # Errors
/// The first DPDK call that failed.
pub fn configure(port: u16, setup: &Setup, pool: &Mempool) -> Result<Configured> {
    if packet_port::is_packet_port(port) {
        let settings = packet_port::Settings {
            rx_queues: setup.rx_queues,
            tx_queues: setup.tx_queues,
            mtu: setup.mtu,
            promiscuous: setup.promiscuous,
            allmulticast: setup.allmulticast,
            segment_ip_len: setup.segment_ip_len,
        };
        return packet_port::configure(port, &settings, pool)
            .map(|mtu| Configured {
                mtu,
                ..Configured::default()
            })
            .map_err(|e| io_error("packet_port::configure", &e));
    }
    let dev = info(port)?;
    let mut conf = ffi::rte_eth_conf::default();
    let mut out = Configured::default();
    if setup.rss && setup.rx_queues > 1 {
        // SAFETY: the shim only returns constants.
        let wanted =
            unsafe { ffi::shim_eth_rss_ip() | ffi::shim_eth_rss_udp() | ffi::shim_eth_rss_tcp() };
        let hf = wanted & dev.rss_offloads;
        if hf != 0 {
            conf.rxmode.mq_mode = ffi::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
            out.rss_hf = hf;
        }
    }
    if setup.checksum_offload {
        // SAFETY: the shim only returns constants.
        let (ip, udp) = unsafe {
            (
                ffi::shim_eth_tx_offload_ipv4_cksum(),
                ffi::shim_eth_tx_offload_udp_cksum(),
            )
        };
        if dev.tx_offload_capa & ip != 0 {
            conf.txmode.offloads |= ip;
            out.tx_ipv4_cksum = true;
        }
        if dev.tx_offload_capa & udp != 0 {
            conf.txmode.offloads |= udp;
            out.tx_udp_cksum = true;
        }
    }
    // SAFETY: conf is a valid, fully initialised struct; DPDK copies it.
    let ret = unsafe { ffi::rte_eth_dev_configure(port, setup.rx_queues, setup.tx_queues, &conf) };
    check("rte_eth_dev_configure", ret)?;

    let mut rx_desc = setup.rx_desc;
    let mut tx_desc = setup.tx_desc;
    // SAFETY: valid in/out pointers.
    let ret = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut rx_desc, &mut tx_desc) };
    check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;
    // SAFETY: plain query.
    let socket = unsafe { ffi::rte_eth_dev_socket_id(port) };
    let socket = u32::try_from(socket).unwrap_or(ffi::SOCKET_ID_ANY as u32);
    for q in 0..setup.rx_queues {
        // SAFETY: NULL rxconf means the driver default; pool outlives the port.
        let ret = unsafe {
            ffi::rte_eth_rx_queue_setup(port, q, rx_desc, socket, std::ptr::null(), pool.as_ptr())
        };
        check("rte_eth_rx_queue_setup", ret)?;
    }
    for q in 0..setup.tx_queues {
        // SAFETY: NULL txconf means the driver default (offloads come from
        // the port configuration above).
        let ret =
            unsafe { ffi::rte_eth_tx_queue_setup(port, q, tx_desc, socket, std::ptr::null()) };
        check("rte_eth_tx_queue_setup", ret)?;
    }
    if let Some(mtu) = setup.mtu {
        // SAFETY: plain call.
        check("rte_eth_dev_set_mtu", unsafe {
            ffi::rte_eth_dev_set_mtu(port, mtu)
        })?;
    }
    let mut mtu = 0u16;
    // SAFETY: `mtu` is a valid u16 for the call to write.
    let known = unsafe { ffi::rte_eth_dev_get_mtu(port, &mut mtu) } == 0;
    // A driver that does not say gets Ethernet's default.
    out.mtu = if known && mtu > 0 { mtu } else { 1500 };
    if setup.promiscuous {
        // Not every vdev implements it (net_pcap, net_ring): best effort.
        // SAFETY: plain call.
        let _ = unsafe { ffi::rte_eth_promiscuous_enable(port) };
    }
    if setup.allmulticast {
        // SAFETY: plain call; best effort as above.
        let _ = unsafe { ffi::rte_eth_allmulticast_enable(port) };
    }
    Ok(out)
}

/// Starts the port.
///
/// # Errors
/// The driver refused.
pub fn start(port: u16) -> Result<()> {
    if packet_port::is_packet_port(port) {
        // Its sockets receive from the moment they are bound.
        return Ok(());
    }
    // SAFETY: plain call on a configured port.
    check("rte_eth_dev_start", unsafe { ffi::rte_eth_dev_start(port) }).map(|_| ())
}

/// Stops the port (its queues must no longer be polled).
pub fn stop(port: u16) {
    if packet_port::is_packet_port(port) {
        return;
    }
    // SAFETY: plain call; an error here leaves nothing to undo.
    let _ = unsafe { ffi::rte_eth_dev_stop(port) };
}

/// Closes the port, releasing its queues and (for pcap) flushing files.
pub fn close(port: u16) {
    if packet_port::is_packet_port(port) {
        packet_port::close(port);
        return;
    }
    // SAFETY: plain call on a stopped port.
    let _ = unsafe { ffi::rte_eth_dev_close(port) };
}

/// The port's MAC address.
///
/// # Errors
/// Invalid port.
pub fn mac_addr(port: u16) -> Result<[u8; 6]> {
    if packet_port::is_packet_port(port) {
        return packet_port::mac_addr(port).map_err(|e| io_error("SIOCGIFHWADDR", &e));
    }
    let mut addr = ffi::rte_ether_addr::default();
    // SAFETY: valid out-pointer.
    check("rte_eth_macaddr_get", unsafe {
        ffi::rte_eth_macaddr_get(port, &mut addr)
    })?;
    Ok(addr.addr_bytes)
}

/// Programs the port's multicast MAC filter (replaces the previous list).
///
/// # Errors
/// The driver has no filter (ENOTSUP) or the list is too long.
pub fn set_multicast_filter(port: u16, macs: &[[u8; 6]]) -> Result<()> {
    if packet_port::is_packet_port(port) {
        // Its sockets take all multicast (as the PMD's do): no filter.
        return Err(DpdkError {
            op: "set_multicast_filter",
            code: libc::ENOTSUP,
        });
    }
    let mut list: Vec<ffi::rte_ether_addr> = macs
        .iter()
        .map(|m| ffi::rte_ether_addr { addr_bytes: *m })
        .collect();
    let n = u32::try_from(list.len()).unwrap_or(u32::MAX);
    // SAFETY: list holds n valid addresses for the duration of the call.
    let ret = unsafe { ffi::rte_eth_dev_set_mc_addr_list(port, list.as_mut_ptr(), n) };
    check("rte_eth_dev_set_mc_addr_list", ret).map(|_| ())
}

/// Port counters (as the driver keeps them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// RX drops by the hardware (full rings). Note: 22.11's af_packet PMD
    /// never counts kernel ring drops here.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Per-queue received packets (first 16 queues).
    pub q_ipackets: [u64; 16],
    /// Per-queue sent packets (first 16 queues).
    pub q_opackets: [u64; 16],
}

/// Reads the port counters.
///
/// # Errors
/// Invalid port.
pub fn stats(port: u16) -> Result<Stats> {
    if packet_port::is_packet_port(port) {
        let queues = packet_port::queue_stats(port).ok_or(DpdkError {
            op: "packet_port::queue_stats",
            code: libc::ENODEV,
        })?;
        let mut s = Stats::default();
        for (q, c) in queues.iter().enumerate() {
            s.ipackets += c.rx_packets;
            s.opackets += c.tx_packets;
            s.ibytes += c.rx_bytes;
            s.obytes += c.tx_bytes;
            s.rx_nombuf += c.rx_nombuf;
            s.ierrors += c.rx_errors;
            s.oerrors += c.tx_errors;
            if let (Some(qi), Some(qo)) = (s.q_ipackets.get_mut(q), s.q_opackets.get_mut(q)) {
                *qi = c.rx_packets;
                *qo = c.tx_packets;
            }
        }
        return Ok(s);
    }
    let mut s = ffi::rte_eth_stats::default();
    // SAFETY: valid out-pointer.
    check("rte_eth_stats_get", unsafe {
        ffi::rte_eth_stats_get(port, &mut s)
    })?;
    Ok(Stats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        q_ipackets: s.q_ipackets,
        q_opackets: s.q_opackets,
    })
}

/// Link state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Reads the link state without waiting.
///
/// # Errors
/// Invalid port or not supported.
pub fn link(port: u16) -> Result<Link> {
    if packet_port::is_packet_port(port) {
        let up = packet_port::link_up(port).map_err(|e| io_error("SIOCGIFFLAGS", &e))?;
        return Ok(Link {
            up,
            speed_mbps: 0,
            full_duplex: true,
        });
    }
    let mut l = ffi::rte_eth_link::default();
    // SAFETY: valid out-pointer.
    check("rte_eth_link_get_nowait", unsafe {
        ffi::rte_eth_link_get_nowait(port, &mut l)
    })?;
    Ok(Link {
        up: l.link_status() != 0,
        speed_mbps: if l.link_speed == u32::MAX {
            0
        } else {
            l.link_speed
        },
        full_duplex: l.link_duplex() != 0,
    })
}

/// Receive side of one queue. Only one lcore may hold it; `configure`
/// callers hand each one to exactly one lcore.
#[derive(Debug)]
pub struct RxQueue(RxKind);

#[derive(Debug)]
enum RxKind {
    Eth { port: u16, queue: u16 },
    Packet(Box<PacketRx>),
}

/// Transmit side of one queue, owned by one lcore.
#[derive(Debug)]
pub struct TxQueue(TxKind);

#[derive(Debug)]
enum TxKind {
    Eth { port: u16, queue: u16 },
    Packet(Box<PacketTx>),
}

/// Creates the burst handles for a configured port: one per queue, each to
/// be moved to the one lcore that uses it.
pub fn queues(port: u16, setup: &Setup) -> (Vec<RxQueue>, Vec<TxQueue>) {
    if packet_port::is_packet_port(port) {
        let (rx, tx) = packet_port::queues(port);
        return (
            rx.into_iter()
                .map(|q| RxQueue(RxKind::Packet(Box::new(q))))
                .collect(),
            tx.into_iter()
                .map(|q| TxQueue(TxKind::Packet(Box::new(q))))
                .collect(),
        );
    }
    (
        (0..setup.rx_queues)
            .map(|queue| RxQueue(RxKind::Eth { port, queue }))
            .collect(),
        (0..setup.tx_queues)
            .map(|queue| TxQueue(TxKind::Eth { port, queue }))
            .collect(),
    )
}

impl RxQueue {
    /// Queue id.
    pub fn queue(&self) -> u16 {
        match &self.0 {
            RxKind::Eth { queue, .. } => *queue,
            RxKind::Packet(q) => q.queue(),
        }
    }

    /// Receives up to the free room of `out`; returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut Burst) -> usize {
        let (port, queue) = match &mut self.0 {
            RxKind::Eth { port, queue } => (*port, *queue),
            RxKind::Packet(q) => return q.rx_burst(out),
        };
        let have = out.len();
        let room = u16::try_from(out.remaining_capacity()).unwrap_or(u16::MAX);
        // SAFETY: the array has `room` free slots after `have`; the driver
        // writes `n <= room` valid owned mbuf pointers there, and the length
        // is raised by exactly n so every slot in 0..len is initialised.
        unsafe {
            let base = as_raw_array(out).add(have);
            let n = ffi::shim_eth_rx_burst(port, queue, base, room);
            out.set_len(have + usize::from(n));
            usize::from(n)
        }
    }
}

impl TxQueue {
    /// Port id.
    pub fn port(&self) -> u16 {
        match &self.0 {
            TxKind::Eth { port, .. } => *port,
            TxKind::Packet(q) => q.port(),
        }
    }
    /// Queue id.
    pub fn queue(&self) -> u16 {
        match &self.0 {
            TxKind::Eth { queue, .. } => *queue,
            TxKind::Packet(q) => q.queue(),
        }
    }

    /// Hands the front of `pkts` to the driver; the sent mbufs leave `pkts`,
    /// what the driver did not take stays, in order. Returns how many went.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        let (port, queue) = match &mut self.0 {
            TxKind::Eth { port, queue } => (*port, *queue),
            TxKind::Packet(q) => return q.tx_burst(pkts),
        };
        let len = u16::try_from(pkts.len()).unwrap_or(u16::MAX);
        // SAFETY: pkts holds `len` owned mbufs; the driver takes ownership of
        // the first `n`.
        let n =
            usize::from(unsafe { ffi::shim_eth_tx_burst(port, queue, as_raw_array(pkts), len) });
        // The first n now belong to the driver: remove them without freeing.
        for m in pkts.drain(..n) {
            let _ = m.into_raw();
        }
        n
    }
}

/// A packet port's I/O error as a [`DpdkError`] (same errno).
fn io_error(op: &'static str, e: &std::io::Error) -> DpdkError {
    log::warn!("{op}: {e}");
    DpdkError {
        op,
        code: e.raw_os_error().unwrap_or(libc::EINVAL),
    }
}
