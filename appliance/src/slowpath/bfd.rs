//! BFD on the management lcore: one session per tunnel path, to the peer's
//! address on that path (RFC 5881 single hop: UDP 3784, TTL 255 sent and
//! required; or RFC 5883 multihop: UDP 4784, a minimum TTL). The state
//! machine and its timers are [`crate::bfd::Session`]; this part builds and
//! reads the packets, finds the session a packet is for, and counts what it
//! discards by reason.

use std::sync::Arc;

use crate::bfd::{Session, SessionConfig, SessionStatus, StateChange};
use crate::config::tunnel::{BfdConfig, Span};
use crate::tables::Tables;
use crate::time::Time;
use crate::tunnel::TunnelTable;
use crate::wire::bfd::{BfdPacket, BfdRepr, RxError, State, PORT_MULTIHOP, PORT_SINGLE_HOP};
use crate::wire::{
    EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

/// First UDP source port of the sessions (RFC 5881: 49152–65535, one per
/// session, fixed for its life).
const SOURCE_PORT_BASE: u16 = 49152;
/// DSCP CS6 (network control), as routers send BFD.
const DSCP_CS6: u8 = 48;

/// One path's session.
#[derive(Debug)]
struct PathSession {
    session: Session,
    /// Path index.
    path: usize,
}

impl PathSession {
    /// A session for `table`'s path `path` if its BFD is enabled.
    fn new(table: &TunnelTable, path: usize, now: Time, rng: &mut fastrand::Rng) -> Option<Self> {
        let p = table.paths.get(path).filter(|p| p.bfd.enabled)?;
        let cfg = SessionConfig {
            desired_min_tx_us: p.bfd.desired_min_tx.micros(),
            required_min_rx_us: p.bfd.required_min_rx.micros(),
            detect_mult: p.bfd.detect_mult,
            multihop: p.bfd.multihop,
            min_ttl: p.bfd.min_ttl,
            passive: false,
        };
        let discr = rng.u32(1..);
        Some(PathSession {
            session: Session::new(cfg, discr, now.as_nanos(), rng.fork()),
            path,
        })
    }
}

/// A session's state change, with what the peer said at that moment.
#[derive(Debug, Clone, Copy)]
pub struct PathEvent {
    /// Path index.
    pub path: usize,
    /// The change.
    pub change: StateChange,
    /// The peer's state when it happened: `AdminDown` means the peer took
    /// the session down on purpose (RFC 5882 §3.2: not a path failure).
    pub remote_state: State,
}

/// One frame to send on a port.
pub type PortFrame = (usize, Vec<u8>);

/// New values for a session's timers; `None` keeps the current one.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimerChange {
    /// Desired Min TX Interval.
    pub desired_min_tx: Option<Span>,
    /// Required Min RX Interval.
    pub required_min_rx: Option<Span>,
    /// Detect Mult.
    pub detect_mult: Option<u8>,
}

/// The BFD sessions of the tunnel's paths.
#[derive(Debug)]
pub struct BfdPaths {
    table: Arc<TunnelTable>,
    sessions: Vec<PathSession>,
    events: Vec<PathEvent>,
}

impl BfdPaths {
    /// A session for every path whose BFD is enabled; discards are counted in
    /// the table's `bfd_discards`.
    pub fn new(table: Arc<TunnelTable>, now: Time) -> Self {
        let mut rng = fastrand::Rng::new();
        let sessions = (0..table.paths.len())
            .filter_map(|path| PathSession::new(&table, path, now, &mut rng))
            .collect();
        Self {
            table,
            sessions,
            events: Vec::new(),
        }
    }

    /// How many paths the sessions are for (the table's).
    pub fn paths(&self) -> usize {
        self.table.paths.len()
    }

    /// Takes a reloaded table: a path that stays keeps its session (whose
    /// timers change by [`Self::change_timers`]), a path added with BFD gets
    /// a new one (Down, as at boot), a removed path's ends.
    pub fn retable(&mut self, table: Arc<TunnelTable>, now: Time) {
        let carried = table.carried_from(&self.table);
        let mut old: Vec<Option<PathSession>> = std::mem::take(&mut self.sessions)
            .into_iter()
            .map(Some)
            .collect();
        let mut rng = fastrand::Rng::new();
        for (path, from) in carried.iter().enumerate() {
            let kept = from.and_then(|from| {
                old.iter_mut()
                    .find(|s| s.as_ref().is_some_and(|s| s.path == from))?
                    .take()
            });
            let session = match kept {
                Some(mut s) => {
                    s.path = path;
                    Some(s)
                }
                None => PathSession::new(&table, path, now, &mut rng),
            };
            self.sessions.extend(session);
        }
        self.table = table;
    }

    /// When a session next has to send or decide.
    pub fn next_deadline(&self) -> Option<Time> {
        self.sessions
            .iter()
            .map(|s| s.session.next_deadline())
            .min()
            .filter(|d| *d != u64::MAX)
            .map(Time::from_nanos)
    }

    /// Runs every session's timers; returns the frames due.
    pub fn poll(&mut self, tables: &Tables, now: Time) -> Vec<PortFrame> {
        let mut out = Vec::new();
        for i in 0..self.sessions.len() {
            if let Some(repr) = self.sessions[i].session.poll(now.as_nanos()) {
                out.extend(self.frame(tables, i, &repr));
            }
            self.collect_events(i);
        }
        out
    }

    /// Whether `frame` (an IPv4 packet for one of our addresses) is BFD: UDP
    /// to 3784 or 4784.
    pub fn is_bfd(frame: &[u8]) -> bool {
        let port = frame
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(|l3| Ipv4Packet::new_checked(l3).ok())
            .filter(|ip| ip.protocol() == IpProtocol::UDP)
            .and_then(|ip| {
                UdpPacket::new_checked(ip.payload())
                    .ok()
                    .map(|u| u.dst_port())
            });
        matches!(port, Some(PORT_SINGLE_HOP | PORT_MULTIHOP))
    }

    /// Whether a BFD packet arriving on port `in_port` is for one of these
    /// sessions (by Your Discriminator, or while that is 0 by source address
    /// and port): which peer's sessions take it.
    pub fn claims(&self, frame: &[u8], in_port: usize) -> bool {
        let Some(ip) = frame
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(|l3| Ipv4Packet::new_checked(l3).ok())
        else {
            return false;
        };
        let src = ip.src_addr();
        let your_discr = UdpPacket::new_checked(ip.payload()).ok().and_then(|u| {
            BfdPacket::new_checked(u.payload())
                .ok()
                .map(|b| b.your_discriminator())
        });
        self.sessions.iter().any(|s| match your_discr {
            Some(d) if d != 0 => s.session.local_discr() == d,
            _ => {
                let p = &self.table.paths[s.path];
                p.remote == src && p.port == in_port
            }
        })
    }

    /// A BFD packet arrived on port `in_port`: checked, demultiplexed (by Your
    /// Discriminator, or while that is 0 by source address, port and hop
    /// mode) and given to its session; discards are counted by reason and
    /// leave the session as it was. Returns the frames to send at once (a
    /// Final, or the packet that announces a state change).
    pub fn on_packet(
        &mut self,
        tables: &Tables,
        frame: &[u8],
        in_port: usize,
        now: Time,
    ) -> Vec<PortFrame> {
        let parsed = frame
            .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
            .and_then(|l3| Ipv4Packet::new_checked(l3).ok())
            .and_then(|ip| {
                let udp = UdpPacket::new_checked(ip.payload()).ok()?;
                UdpRepr::parse(&udp, ip.src_addr(), ip.dst_addr()).ok()?;
                let repr = BfdPacket::new_checked(udp.payload()).and_then(|p| BfdRepr::parse(&p));
                Some((
                    ip.src_addr(),
                    ip.ttl(),
                    udp.dst_port() == PORT_MULTIHOP,
                    repr,
                ))
            });
        let Some((src, ttl, multihop, repr)) = parsed else {
            self.table.bfd_discards.inc(RxError::BadUdp);
            return Vec::new();
        };
        let repr = match repr {
            Ok(r) => r,
            Err(e) => {
                self.table.bfd_discards.inc(e);
                return Vec::new();
            }
        };
        let table = &self.table;
        let found = self.sessions.iter().position(|s| {
            let p = &table.paths[s.path];
            if repr.your_discr != 0 {
                s.session.local_discr() == repr.your_discr
            } else {
                p.remote == src && p.port == in_port && s.session.config().multihop == multihop
            }
        });
        let Some(i) = found else {
            self.table.bfd_discards.inc(RxError::UnknownDiscriminator);
            return Vec::new();
        };
        // A packet for a session from the wrong address or hop mode is not
        // the peer's (RFC 5881 §4: the session is bound to the addresses).
        let p = &table.paths[self.sessions[i].path];
        if p.remote != src || self.sessions[i].session.config().multihop != multihop {
            self.table.bfd_discards.inc(RxError::WrongPeer);
            return Vec::new();
        }
        if let Err(e) = self.sessions[i]
            .session
            .on_packet(&repr, ttl, now.as_nanos())
        {
            self.table.bfd_discards.inc(e);
            return Vec::new();
        }
        // A Final or a state change goes out now, not at the next period.
        let mut out = Vec::new();
        if let Some(reply) = self.sessions[i].session.poll(now.as_nanos()) {
            out.extend(self.frame(tables, i, &reply));
        }
        self.collect_events(i);
        out
    }

    fn collect_events(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        let remote_state = s.session.remote_state();
        for change in s.session.take_events() {
            self.events.push(PathEvent {
                path: s.path,
                change,
                remote_state,
            });
        }
    }

    /// The state changes since the last call.
    pub fn take_events(&mut self) -> Vec<PathEvent> {
        std::mem::take(&mut self.events)
    }

    /// Takes `path`'s session administratively down (it tells the peer) or
    /// back.
    pub fn set_admin_down(&mut self, path: usize, down: bool, now: Time) {
        if let Some(s) = self.sessions.iter_mut().find(|s| s.path == path) {
            s.session.set_admin_down(down, now.as_nanos());
        }
    }

    /// Changes `path`'s timers at run time (`appliancectl bfd set`): the values given
    /// replace the session's, checked as the config checks them; while Up the change goes
    /// through a Poll Sequence. The session's status after it, or why not.
    pub fn change_timers(
        &mut self,
        path: usize,
        change: TimerChange,
        now: Time,
    ) -> Result<SessionStatus, String> {
        let s = self
            .sessions
            .iter_mut()
            .find(|s| s.path == path)
            .ok_or("the path runs no BFD session")?;
        let cfg = *s.session.config();
        let wanted = BfdConfig {
            enabled: true,
            desired_min_tx: change
                .desired_min_tx
                .unwrap_or(Span::from_micros(cfg.desired_min_tx_us)),
            required_min_rx: change
                .required_min_rx
                .unwrap_or(Span::from_micros(cfg.required_min_rx_us)),
            detect_mult: change.detect_mult.unwrap_or(cfg.detect_mult),
            multihop: cfg.multihop,
            min_ttl: cfg.min_ttl,
        };
        wanted
            .validate("bfd")
            .map_err(|e| format!("{}: {}", e.key, e.what))?;
        s.session.set_timers(
            wanted.desired_min_tx.micros(),
            wanted.required_min_rx.micros(),
            wanted.detect_mult,
            now.as_nanos(),
        );
        Ok(s.session.status())
    }

    /// Every session's status, by path index.
    pub fn statuses(&self) -> impl Iterator<Item = (usize, SessionStatus)> + '_ {
        self.sessions.iter().map(|s| (s.path, s.session.status()))
    }

    /// The Ethernet frame carrying `repr` for session `i`: from our address
    /// on the path to the peer's, UDP from the session's fixed source port,
    /// TTL 255, CS6. `None` while the path's next hop is not resolved.
    fn frame(&self, tables: &Tables, i: usize, repr: &BfdRepr) -> Option<PortFrame> {
        let path = self.sessions[i].path;
        let multihop = self.sessions[i].session.config().multihop;
        let p = self.table.paths.get(path)?;
        let (src_mac, dst_mac) = tables.macs_to(p.next_hop, p.port)?;
        let udp = UdpRepr {
            src_port: SOURCE_PORT_BASE + u16::try_from(path).unwrap_or(0),
            dst_port: if multihop {
                PORT_MULTIHOP
            } else {
                PORT_SINGLE_HOP
            },
        };
        let bfd_len = repr.buffer_len();
        let udp_len = udp.buffer_len(bfd_len);
        let eth_len = EthernetFrame::<&[u8]>::HEADER_LEN;
        let mut buf = vec![0u8; eth_len + Ipv4Repr::HEADER_LEN + udp_len];
        EthernetRepr {
            src_addr: src_mac,
            dst_addr: dst_mac,
            ethertype: EtherType::IPV4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut buf[..eth_len]));
        let (head, l4) = buf.split_at_mut(eth_len + Ipv4Repr::HEADER_LEN);
        Ipv4Repr {
            src_addr: p.local,
            dst_addr: p.remote,
            protocol: IpProtocol::UDP,
            payload_len: udp_len,
            ttl: 255,
            dscp: DSCP_CS6,
            ident: 0,
            dont_frag: true,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut head[eth_len..]));
        udp.emit(
            &mut UdpPacket::new_unchecked(l4),
            p.local,
            p.remote,
            bfd_len,
            |payload| repr.emit(&mut BfdPacket::new_unchecked(payload)),
        );
        Some((p.port, buf))
    }
}
