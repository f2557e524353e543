//! The management lcore's part of the tunnel: it probes every path (round
//! trip, forward delay, loss), answers the peer's probes, decides from the
//! answers and the carrier whether a path is up, publishes each path's state,
//! delay and effective rate to the workers (the atomics of
//! [`crate::tunnel::PathLive`]), and sends its own packets (ICMP about
//! packets that came through the tunnel) back through it.
//!
//! Everything here runs on the management lcore; the workers never wait for
//! it.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::buf::VecBuf;
use crate::tables::Tables;
use crate::time::Time;
use crate::tunnel::encap::{self, Outer, Rx, OUTER_LEN};
use crate::tunnel::meter::Meters;
use crate::tunnel::{PathState, TunnelTable, LANE_PORT_BASE};
use crate::wire::tunnel::{flags, Kind, ProbeReplyRepr, ProbeRepr, TunnelRepr, CONTROL_LANE};

/// Replies in a row that bring a path back up.
const UP_AFTER_PROGRESS: u32 = 3;

/// The health of one path as the management lcore tracks it.
///
/// A path is alive while what we send on it arrives: every probe and probe
/// reply the peer sends (on the path's other direction) carries how many
/// tunnel packets it has received on the path from us. While that count
/// moves, the path delivers, even if congestion drops some probes; when it
/// stops moving for a few probe intervals (we probe every interval, so we
/// always send), the path is dead, whatever the carrier says.
#[derive(Debug, Clone, Copy)]
struct Health {
    state: PathState,
    since: Time,
    /// The peer's last count of packets received from us on the path.
    peer_rx: Option<u32>,
    /// When that count last moved.
    progress: Time,
    /// Consecutive reports in which it moved (brings a path back).
    progress_in_row: u32,
    flaps: u64,
}

/// One frame to send on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Port index.
    pub port: usize,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// The management lcore's tunnel state.
#[derive(Debug)]
pub struct MgmtTunnel {
    table: Arc<TunnelTable>,
    meters: Meters,
    health: Vec<Health>,
    /// Per path: the control lane's path sequence.
    path_seq: Vec<u32>,
}

impl MgmtTunnel {
    /// State for `table`, at `now`: every path starts up (so traffic flows
    /// while the first probes go out) and is taken down if they go
    /// unanswered.
    pub fn new(table: Arc<TunnelTable>, now: Time) -> Self {
        let n = table.paths.len();
        Self {
            meters: Meters::new(n),
            health: vec![
                Health {
                    state: PathState::Starting,
                    since: now,
                    peer_rx: None,
                    progress: now,
                    progress_in_row: 0,
                    flaps: 0,
                };
                n
            ],
            path_seq: vec![0; n],
            table,
        }
    }

    /// The tunnel table.
    pub fn table(&self) -> &Arc<TunnelTable> {
        &self.table
    }

    /// How often each path is probed.
    pub fn probe_interval(&self) -> Duration {
        self.table.probe_interval
    }

    /// The next hops the paths need resolved, with their port.
    pub fn next_hops(&self) -> impl Iterator<Item = (Ipv4Addr, usize)> + '_ {
        self.table.paths.iter().map(|p| (p.next_hop, p.port))
    }

    /// The outer headers for `path` (no next-hop MAC: `None`).
    fn outer(&mut self, tables: &Tables, path: usize, kind: Kind, now: Time) -> Option<Outer> {
        let p = self.table.paths.get(path)?;
        let iface = tables.interfaces.get(p.port)?;
        let nh = tables
            .neighbors
            .get(&p.next_hop)
            .filter(|n| n.port == p.port)?;
        let seq = self.path_seq.get_mut(path)?;
        *seq = seq.wrapping_add(1);
        Some(Outer {
            src_mac: iface.mac,
            dst_mac: nh.mac,
            src_ip: p.local,
            dst_ip: p.remote,
            src_port: LANE_PORT_BASE.wrapping_add(CONTROL_LANE % 0x4000),
            dst_port: self.table.port,
            tos: 0xc0, // CS6, network control
            header: TunnelRepr {
                kind,
                flags: flags::UNORDERED,
                path: p.id,
                key: 0,
                lane: CONTROL_LANE,
                epoch: self.table.epoch,
                lane_seq: 0,
                path_seq: *seq,
                sent_us: now.as_micros_u32(),
            },
        })
    }

    /// The probe to send on `path` now, if its next hop is resolved. Also
    /// checks the path's carrier and silence, and republishes its figures.
    pub fn probe(
        &mut self,
        tables: &Tables,
        path: usize,
        carrier: bool,
        now: Time,
    ) -> Option<Frame> {
        self.judge(path, carrier, now);
        self.publish(path, now);
        let mut outer = self.outer(tables, path, Kind::Probe, now)?;
        let seq = self.meters.sent(path, now)?;
        // The probe's own sequence is the meter's, so replies match it.
        outer.header.path_seq = seq;
        let mut bytes = vec![0u8; OUTER_LEN + ProbeRepr::LEN];
        encap::write_outer(&mut bytes, &outer, ProbeRepr::LEN);
        ProbeRepr {
            rx_packets: self.rx_packets(path),
        }
        .emit(&mut bytes[OUTER_LEN..]);
        Some(Frame {
            port: self.table.paths[path].port,
            bytes,
        })
    }

    /// A probe or probe reply arrived on port `in_port` (the pipeline said
    /// it is for our tunnel endpoint). A probe is answered on the path it
    /// came over; a reply feeds the meter. Returns the frame to send, if any.
    pub fn on_control(
        &mut self,
        tables: &Tables,
        frame: &[u8],
        in_port: usize,
        now: Time,
    ) -> Option<Frame> {
        let rx: Rx = encap::parse_rx(frame).ok()?;
        let path = self
            .table
            .rx_path(in_port, rx.src, rx.dst, rx.header.path)?;
        match rx.header.kind {
            Kind::Probe => {
                let probe = ProbeRepr::parse(rx.payload(frame)).ok()?;
                self.peer_received(path, probe.rx_packets, now);
                let mut outer = self.outer(tables, path, Kind::ProbeReply, now)?;
                outer.header.path_seq = rx.header.path_seq;
                let reply = ProbeReplyRepr {
                    echo_sent_us: rx.header.sent_us,
                    forward_us: now.as_micros_u32().wrapping_sub(rx.header.sent_us),
                    hold_us: 0,
                    rx_packets: self.rx_packets(path),
                };
                let mut bytes = vec![0u8; OUTER_LEN + ProbeReplyRepr::LEN];
                encap::write_outer(&mut bytes, &outer, ProbeReplyRepr::LEN);
                reply.emit(&mut bytes[OUTER_LEN..]);
                Some(Frame {
                    port: self.table.paths[path].port,
                    bytes,
                })
            }
            Kind::ProbeReply => {
                let r = ProbeReplyRepr::parse(rx.payload(frame)).ok()?;
                self.meters
                    .reply(path, rx.header.path_seq, r.forward_us, r.hold_us, now);
                self.peer_received(path, r.rx_packets, now);
                self.publish(path, now);
                None
            }
            Kind::Data => None,
        }
    }

    /// Tunnel packets received on `path` so far (all workers), as the wire
    /// carries it (wrapping).
    fn rx_packets(&self, path: usize) -> u32 {
        self.table
            .path_counters
            .get(path)
            .map_or(0, |c| c.total(|w| &w.rx_packets) as u32)
    }

    /// The peer reported `count` packets received from us on `path`.
    fn peer_received(&mut self, path: usize, count: u32, now: Time) {
        let Some(h) = self.health.get_mut(path) else {
            return;
        };
        if h.peer_rx != Some(count) {
            h.peer_rx = Some(count);
            h.progress = now;
            h.progress_in_row += 1;
        }
        self.judge(path, true, now);
    }

    /// Decides whether `path` is up: no carrier, or what we send no longer
    /// arriving for a few probe intervals, takes it down; the peer's count
    /// moving in a few reports in a row brings it back.
    fn judge(&mut self, path: usize, carrier: bool, now: Time) {
        let interval = self.table.probe_interval;
        let figures = self.meters.figures(path, now);
        // A few probe intervals, plus the round trip's variation: the gap
        // between reports no delivering path shows.
        let dead_after =
            interval * 3 + Duration::from_micros(4 * figures.rttvar_us) + Duration::from_millis(5);
        let silent = now.duration_since(self.health[path].progress) > dead_after;
        let h = &mut self.health[path];
        if silent || !carrier {
            h.progress_in_row = 0;
        }
        let next = match h.state {
            _ if !carrier => PathState::NoCarrier,
            PathState::Up | PathState::Starting if silent => PathState::NoReplies,
            PathState::Up => PathState::Up,
            _ if h.progress_in_row >= UP_AFTER_PROGRESS => PathState::Up,
            PathState::NoCarrier => PathState::NoReplies,
            s => s,
        };
        if next != h.state {
            // A path the peer never answered yet (it may start later) has
            // not flapped.
            if h.state == PathState::Up && !next.carries() {
                h.flaps += 1;
            }
            log::info!(
                "tunnel path {}: {:?} -> {:?}",
                self.table.paths[path].name,
                h.state,
                next
            );
            h.state = next;
            h.since = now;
        }
        let cells = &self.table.live[path].report;
        cells.state.store(h.state.code(), Ordering::Relaxed);
        cells.since_ns.store(h.since.as_nanos(), Ordering::Relaxed);
        cells.flaps.store(h.flaps, Ordering::Relaxed);
        self.table.live[path]
            .up
            .store(h.state.carries(), Ordering::Relaxed);
    }

    /// Publishes `path`'s measurements: its forward delay (queueing
    /// included) to the workers' schedulers, the rest for reports. The
    /// delay is how `wlb` and `minrtt` steer around a queue: a path whose
    /// queue grows delivers later, so it gets less until its queue drains.
    fn publish(&mut self, path: usize, now: Time) {
        let f = self.meters.figures(path, now);
        let live = &self.table.live[path];
        let us = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        live.delay_us.store(us(f.delay_us), Ordering::Relaxed);
        let cells = &live.report;
        cells.srtt_us.store(us(f.srtt_us), Ordering::Relaxed);
        cells.rttvar_us.store(us(f.rttvar_us), Ordering::Relaxed);
        cells.min_rtt_us.store(us(f.min_rtt_us), Ordering::Relaxed);
        cells
            .queueing_us
            .store(us(f.queueing_us), Ordering::Relaxed);
        cells.jitter_us.store(us(f.jitter_us), Ordering::Relaxed);
        cells
            .loss_ppm
            .store((f.loss * 1e6) as u32, Ordering::Relaxed);
        cells.probes_sent.store(f.probes_sent, Ordering::Relaxed);
        cells.replies.store(f.replies, Ordering::Relaxed);
    }

    /// Sets a path administratively down or up; `false` if there is no such
    /// path.
    pub fn set_admin(&self, name: &str, up: bool) -> bool {
        match self.table.paths.iter().position(|p| p.name == name) {
            Some(i) => {
                self.table.live[i].admin_up.store(up, Ordering::Relaxed);
                log::info!(
                    "tunnel path {name}: administratively {}",
                    if up { "up" } else { "down" }
                );
                true
            }
            None => false,
        }
    }

    /// Encapsulates one of our own packets (an Ethernet frame carrying IPv4)
    /// for the peer, on the usable path with the lowest delay.
    pub fn encapsulate(&mut self, tables: &Tables, frame: &[u8], now: Time) -> Option<Frame> {
        let path = (0..self.table.paths.len())
            .filter(|i| self.table.live[*i].usable())
            .min_by_key(|i| self.table.live[*i].delay_us.load(Ordering::Relaxed))?;
        let mut outer = self.outer(tables, path, Kind::Data, now)?;
        outer.tos = encap::inner_tos(frame);
        let mut buf = VecBuf::new(frame);
        encap::encapsulate(&mut buf, &outer).ok()?;
        Some(Frame {
            port: self.table.paths[path].port,
            bytes: buf.into_vec(),
        })
    }
}
