//! The slow path's IPv6: what comes to our addresses (Neighbor Discovery,
//! echo), ICMPv6 errors, and soliciting next hops. The resolution itself
//! (holding packets, retries, giving up, probing stale neighbours) is shared
//! with ARP in [`super`]; only the messages differ.
//!
//! Neighbor Discovery as a router does it (RFC 4861): a solicitation for one
//! of our addresses is answered with a router advertisement of our MAC, and
//! its sender learned (§7.2.3); an advertisement is believed only for a
//! neighbour we asked for or hold (§7.2.5: an unsolicited one for an unknown
//! target is dropped); a probe from `::` for one of our addresses (another
//! node's Duplicate Address Detection) is answered to all nodes, which
//! defends the address (RFC 4862 §5.4.3). Router advertisements, on the
//! ports configured to send them, are scheduled by [`super::ra`].

use std::net::{IpAddr, Ipv6Addr};

use dpdk_bindings::Mbuf;

use super::frames::IcmpError;
use super::frames6::{self, MAX_BUILT6};
use super::mld::Listener;
use super::ra::Advertiser;
use super::{SlowPath, SlowTimer};
use crate::config::RaConfig;
use crate::dataplane::pipeline::Ingress;
use crate::interface::Interface;
use crate::stats::DropReason;
use crate::time::Time;

/// How long an address stays tentative (RetransTimer × DupAddrDetectTransmits,
/// RFC 4861 §10 and RFC 4862 §5.1 defaults: 1 s × 1).
const DAD_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
use crate::wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use crate::wire::ipv6::{is_link_local_unicast, next_header, walk, Ipv6Packet, Upper};
use crate::wire::{icmpv4, mld, EthernetFrame, IpProtocol, MacAddr};

const ETH: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

/// Whether `ip` is one of `iface`'s IPv6 addresses (its link-local one, its
/// global one, or its subnet's Subnet-Router anycast address).
fn is_ours_on(iface: &Interface, ip: Ipv6Addr) -> bool {
    iface.address6.is_some()
        && (iface.link_local() == ip
            || iface.address6.is_some_and(|a| a.addr() == ip)
            || iface.subnet_router_anycast() == Some(ip))
}

/// Whether `ip` is on `iface`'s link: link-local, or in its subnet.
fn on_link(iface: &Interface, ip: Ipv6Addr) -> bool {
    is_link_local_unicast(&ip) || iface.address6.is_some_and(|a| a.contains(&ip))
}

/// The address we speak from on `iface` to `peer`: the link-local one to a
/// link-local peer, else the global one (a peer behind a gateway must get
/// an error it can be sent: a link-local source is never forwarded, RFC
/// 4291 §2.5.6).
fn source_for(iface: &Interface, peer: Ipv6Addr) -> Ipv6Addr {
    match iface.address6 {
        Some(a) if !is_link_local_unicast(&peer) => a.addr(),
        _ => iface.link_local(),
    }
}

/// Neighbours learned from others' solicitations, at most: a solicitation
/// teaches us its sender unasked (RFC 4861 §7.2.3), so a flood of them from
/// made-up addresses in a /64 must not grow the table without end.
const MAX_UNSOLICITED_NEIGHBORS: usize = 4096;

impl SlowPath {
    /// An IPv6 packet the pipeline says is for us (from a port, or out of
    /// the tunnel: echo and errors only, Neighbor Discovery is a link's).
    pub(super) fn local_delivery6(&mut self, m: &Mbuf, ingress: Ingress, now: Time) {
        let data = m.data();
        let Some(ip) = data
            .get(ETH..)
            .and_then(|l3| Ipv6Packet::new_checked(l3).ok())
        else {
            self.counters.drop_one(DropReason::Ip6Truncated);
            return;
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let upper = match walk(&ip) {
            Ok(chain) => chain.upper,
            Err(_) => {
                self.counters.drop_one(DropReason::Ip6ExtHeader);
                return;
            }
        };
        let Upper::Protocol { protocol, offset } = upper else {
            self.counters.drop_one(DropReason::LocalUnsupported);
            return;
        };
        if protocol != IpProtocol(next_header::ICMPV6) {
            self.counters.drop_one(DropReason::LocalUnsupported);
            if matches!(protocol, IpProtocol::TCP | IpProtocol::UDP) {
                let kind = IcmpError::Unreachable(icmpv4::code::PORT_UNREACHABLE);
                self.icmp6_error(m, ingress, kind, now);
            }
            return;
        }
        match ip.payload().get(offset).copied() {
            Some(mld::msg_type::QUERY) => {
                self.mld_query(&ip, offset, ingress, now);
                return;
            }
            // Another listener's report: nothing to do for a listener.
            Some(mld::msg_type::REPORT_V1 | mld::msg_type::DONE_V1 | mld::msg_type::REPORT_V2) => {
                self.counters.drop_one(DropReason::Ip6Multicast);
                return;
            }
            _ => {}
        }
        let repr = ip
            .payload()
            .get(offset..)
            .and_then(|b| Icmpv6Packet::new_checked(b).ok())
            .map(|p| (p.msg_type(), Icmpv6Repr::parse(&p, &src, &dst)));
        let repr = match repr {
            Some((_, Ok(r))) => r,
            Some((133..=136, Err(_))) => {
                self.counters.drop_one(DropReason::NdMalformed);
                return;
            }
            _ => {
                self.counters.drop_one(DropReason::IcmpMalformed);
                return;
            }
        };
        if repr.needs_hop_limit_255() && ip.hop_limit() != 255 {
            self.counters.drop_one(DropReason::NdMalformed);
            return;
        }
        let eth_src = EthernetFrame::new_unchecked(data).src_addr();
        let (port, iface) = match ingress {
            Ingress::Port(p) => match self.state.interfaces().get(p) {
                Some(i) => (p, i.clone()),
                None => return,
            },
            Ingress::Tunnel(_) => {
                if let Icmpv6Repr::EchoRequest { .. } = repr {
                    self.echo6(data, dst, ingress, MacAddr::ZERO, now);
                } else {
                    self.counters.drop_one(DropReason::LocalUnsupported);
                }
                return;
            }
        };
        match repr {
            Icmpv6Repr::EchoRequest { .. } => {
                // To a group (all nodes) or the anycast address: answered from
                // a unicast address of ours on the link (RFC 4443 §4.2).
                let from = if dst.is_multicast() || iface.subnet_router_anycast() == Some(dst) {
                    source_for(&iface, src)
                } else {
                    dst
                };
                self.echo6(data, from, ingress, iface.mac, now);
            }
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => {
                self.slow.nd_received.inc();
                let lladdr = (source_lladdr, eth_src);
                self.neighbor_solicited(port, &iface, (src, dst), target, lladdr, now);
            }
            Icmpv6Repr::NeighborAdvert {
                target,
                target_lladdr,
                ..
            } => {
                self.slow.nd_received.inc();
                // A solicited answer may leave the option out (RFC 4861 §4.4):
                // the frame came from the neighbour's MAC then.
                let mac = target_lladdr.unwrap_or(eth_src);
                // Every router on the subnet answers for its anycast address:
                // another one doing so claims nothing of ours.
                if is_ours_on(&iface, target) && iface.subnet_router_anycast() != Some(target) {
                    self.address_claimed(port, target, mac, now);
                    return;
                }
                let wanted = self.pending.contains_key(&IpAddr::V6(target))
                    || self.state.neighbors6.contains_key(&target);
                if wanted && on_link(&iface, target) && mac.is_unicast() {
                    self.resolved(target.into(), mac, port, now);
                } else {
                    self.counters.drop_one(DropReason::NdNotForUs);
                }
            }
            Icmpv6Repr::RouterSolicit { .. } if self.advertises(port) => {
                self.slow.nd_router_solicits_received.inc();
                // While the addresses are checked the port has no advertiser
                // yet: its first advertisement, at the end of the check, is
                // the answer.
                if let Some(at) = self.ra.solicited(port, now, &mut self.rng) {
                    self.timers.arm_no_later(SlowTimer::RouterAdvert, at);
                }
            }
            // Hosts ask every router; a port that does not advertise has no answer.
            Icmpv6Repr::RouterSolicit { .. } => self.counters.drop_one(DropReason::Ip6Multicast),
            _ => self.counters.drop_one(DropReason::LocalUnsupported),
        }
    }

    /// Whether port `port` sends router advertisements (or will, once its
    /// addresses are checked).
    fn advertises(&self, port: usize) -> bool {
        self.ra.advertises(port)
            || self.ra_configs.get(port).is_some_and(Option::is_some)
                && self.tentative.iter().any(|(p, _)| *p == port)
    }

    /// Whether `ip` is one of our addresses that Duplicate Address Detection
    /// still checks: it is not ours yet, so nothing is answered for it or
    /// sent from it (RFC 4862 §5.4).
    fn is_tentative(&self, ip: Ipv6Addr) -> bool {
        self.tentative.iter().any(|(_, t)| *t == ip)
    }

    /// Answers the echo request `request` from our address `from`, back
    /// where it came from (our `mac` on a port; the tunnel ignores it).
    fn echo6(&mut self, request: &[u8], from: Ipv6Addr, ingress: Ingress, mac: MacAddr, now: Time) {
        if self.is_tentative(from) {
            self.counters.drop_one(DropReason::Ip6Tentative);
            return;
        }
        // The reply is as long as the request (less its extension headers):
        // up to the port's MTU, more than the errors' 1280.
        let mut buf = vec![0u8; request.len().max(MAX_BUILT6)];
        match frames6::echo_reply6(&mut buf, mac, from, request) {
            Some(n) => {
                if self.send_back(ingress, &buf[..n], now) {
                    self.slow.echo_replies_sent.inc();
                }
            }
            None => self.counters.drop_one(DropReason::IcmpMalformed),
        }
    }

    /// Sends `frame` back where a packet came from: out of its port, or
    /// into the tunnel.
    fn send_back(&mut self, ingress: Ingress, frame: &[u8], now: Time) -> bool {
        match ingress {
            Ingress::Port(p) => self.send_bytes(p, frame),
            Ingress::Tunnel(peer) => self.send_through_tunnel(peer, frame, now),
        }
    }

    /// The address ICMPv6 about tunnel traffic comes from: the global
    /// address of the first interface that carries no tunnel path (the LAN
    /// side), else of any.
    fn tunnel_side_address6(&self) -> Option<Ipv6Addr> {
        self.lan_side_first()
            .find_map(|i| i.address6.map(|a| a.addr()))
    }

    /// Starts router advertisements on the ports whose config asks for them
    /// (`configs` by port index); the first go out once the addresses are
    /// checked.
    pub fn advertise_routes(&mut self, configs: &[Option<RaConfig>]) {
        // They come from the link-local address, so they start once Duplicate
        // Address Detection has found it ours ([`Self::dad_done`]).
        self.ra_configs = configs.to_vec();
    }

    /// Sends the advertisements due at `now` and re-arms.
    pub(super) fn advertise_due(&mut self, now: Time) {
        for port in self.ra.due(now, &mut self.rng) {
            self.router_advert(port, false);
        }
        if let Some(at) = self.ra.next_deadline() {
            self.timers.arm(SlowTimer::RouterAdvert, at);
        }
    }

    /// Tells the hosts on every advertising port to stop using the
    /// appliance as their router now (router lifetime 0, RFC 4861 §6.2.5):
    /// at shutdown, while the ports still run.
    pub fn retire_router(&mut self) {
        let ports: Vec<usize> = self.ra.ports().collect();
        for port in ports {
            self.router_advert(port, true);
        }
        self.timers.cancel(SlowTimer::RouterAdvert);
    }

    fn router_advert(&mut self, port: usize, retiring: bool) {
        let Some((mac, link_local, ra)) = self.ra.advert(port, retiring) else {
            return;
        };
        let mut buf = [0u8; MAX_BUILT6];
        if let Some(n) = frames6::router_advert(&mut buf, mac, link_local, &ra) {
            if self.send_bytes(port, &buf[..n]) {
                self.slow.nd_router_adverts_sent.inc();
            }
        }
    }

    /// A Neighbor Solicitation from `src` to `dst` on `port` for `target`.
    fn neighbor_solicited(
        &mut self,
        port: usize,
        iface: &Interface,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        target: Ipv6Addr,
        (source_lladdr, eth_src): (Option<MacAddr>, MacAddr),
        now: Time,
    ) {
        if !is_ours_on(iface, target) {
            self.counters.drop_one(DropReason::NdNotForUs);
            return;
        }
        let mut buf = [0u8; MAX_BUILT6];
        if src.is_unspecified() {
            // Another node's Duplicate Address Detection: it must be to the
            // solicited-node group and carry no address option (RFC 4861
            // §7.1.1). Answering to all nodes defends our address.
            if !dst.is_multicast() || source_lladdr.is_some() {
                self.counters.drop_one(DropReason::NdMalformed);
                return;
            }
            if self.tentative.contains(&(port, target)) {
                // Both of us are checking it at once: neither may have it
                // (RFC 4862 §5.4.3).
                self.dad_failed(port, target, None, now);
                return;
            }
            let anycast = iface.subnet_router_anycast() == Some(target);
            if let Some(n) = frames6::neighbor_advert(&mut buf, iface.mac, target, None, anycast) {
                if self.send_bytes(port, &buf[..n]) {
                    self.slow.nd_dad_defended.inc();
                    self.slow.nd_adverts_sent.inc();
                }
            }
            return;
        }
        if self.tentative.contains(&(port, target)) {
            // Not ours until Duplicate Address Detection is done.
            self.counters.drop_one(DropReason::NdNotForUs);
            return;
        }
        // A multicast solicitation must carry the sender's address (RFC 4861
        // §7.1.1); a unicast one may leave it out (§7.2.2), and is answered
        // to the frame's source.
        let mac = match source_lladdr {
            Some(m) if m.is_unicast() => m,
            None if !dst.is_multicast() && eth_src.is_unicast() => eth_src,
            _ => {
                self.counters.drop_one(DropReason::NdMalformed);
                return;
            }
        };
        // Learned only from the option, never from one of our own addresses,
        // and unasked only up to a bound.
        let known =
            self.state.neighbors6.contains_key(&src) || self.pending.contains_key(&IpAddr::V6(src));
        let room = self.state.neighbors6.len() < MAX_UNSOLICITED_NEIGHBORS;
        if source_lladdr.is_some()
            && on_link(iface, src)
            && !self.state.tables().own.is_own6(src)
            && (known || room)
        {
            self.resolved(src.into(), mac, port, now);
        }
        // An anycast target is advertised without the override flag (RFC 4861
        // §7.2.7): another router's answer for it may stand.
        let anycast = iface.subnet_router_anycast() == Some(target);
        if let Some(n) =
            frames6::neighbor_advert(&mut buf, iface.mac, target, Some((src, mac)), anycast)
        {
            if self.send_bytes(port, &buf[..n]) {
                self.slow.nd_adverts_sent.inc();
            }
        }
    }

    /// Sends the ICMPv6 error `kind` about `offending`, which arrived on
    /// `port`, within the ICMP error budget shared with IPv4.
    pub(super) fn icmp6_error(
        &mut self,
        offending: &Mbuf,
        ingress: Ingress,
        kind: IcmpError,
        now: Time,
    ) {
        let Some(offender) = offending
            .data()
            .get(ETH..)
            .and_then(|l3| Ipv6Packet::new_checked(l3).ok())
            .map(|ip| ip.src_addr())
        else {
            return;
        };
        let source = match ingress {
            Ingress::Port(p) => self
                .state
                .interfaces()
                .get(p)
                .map(|i| (i.mac, source_for(i, offender))),
            // The reply is encapsulated: its MACs are never seen.
            Ingress::Tunnel(_) => self.tunnel_side_address6().map(|a| (MacAddr::ZERO, a)),
        };
        let Some((mac, src)) = source.filter(|(_, src)| !self.is_tentative(*src)) else {
            return;
        };
        let mut buf = [0u8; MAX_BUILT6];
        let Some(n) = frames6::icmp6_error(&mut buf, mac, src, offending.data(), kind) else {
            return;
        };
        if !self.icmp_bucket.take(now) {
            self.slow.icmp_errors_rate_limited.inc();
            return;
        }
        if self.send_back(ingress, &buf[..n], now) {
            self.slow.icmp_errors_sent.inc();
        }
    }

    /// Solicits `target` on `port` (see [`SlowPath::solicit`]).
    pub(super) fn neighbor_solicit(
        &mut self,
        port: usize,
        target: Ipv6Addr,
        unicast: Option<MacAddr>,
    ) {
        let Some(iface) = self.state.interfaces().get(port).cloned() else {
            return;
        };
        if iface.address6.is_none() {
            // IPv6 is off here (duplicate address detection turned it off).
            return;
        }
        let mut buf = [0u8; MAX_BUILT6];
        let src = source_for(&iface, target);
        if self.is_tentative(src) {
            // Not ours yet: the next try (a second on) is after the check.
            return;
        }
        if let Some(n) = frames6::neighbor_solicit(&mut buf, iface.mac, src, target, unicast) {
            if self.send_bytes(port, &buf[..n]) {
                self.slow.nd_solicits_sent.inc();
            }
        }
    }

    /// An MLD query: valid only from a link-local address with hop limit 1
    /// (RFC 9777 §6.2), then handed to the listener.
    fn mld_query(&mut self, ip: &Ipv6Packet<&[u8]>, offset: usize, ingress: Ingress, now: Time) {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let query = ip
            .payload()
            .get(offset..)
            .and_then(|b| Icmpv6Packet::new_checked(b).ok())
            .and_then(|p| mld::QueryRepr::parse(&p, &src, &dst).ok());
        let (Some(q), Ingress::Port(port)) = (query, ingress) else {
            self.counters.drop_one(DropReason::IcmpMalformed);
            return;
        };
        if !is_link_local_unicast(&src) || ip.hop_limit() != 1 {
            self.counters.drop_one(DropReason::IcmpMalformed);
            return;
        }
        self.slow.mld_queries_received.inc();
        if let Some(at) = self.mld.on_query(port, &q, now, &mut self.rng) {
            self.timers.arm_no_later(SlowTimer::Mld, at);
        }
    }

    /// Sends the MLD reports due at `now` and re-arms.
    pub(super) fn mld_due(&mut self, now: Time) {
        let due = self.mld.due(now, &mut self.rng);
        self.mld_send(due);
        if let Some(at) = self.mld.next_deadline() {
            self.timers.arm(SlowTimer::Mld, at);
        }
    }

    /// Leaves the groups our IPv6 listened to (at shutdown, while the ports
    /// still run).
    pub fn leave_ipv6_groups(&mut self) {
        let reports = self.mld.leave();
        self.mld_send(reports);
        self.timers.cancel(SlowTimer::Mld);
    }

    fn mld_send(&mut self, reports: Vec<(usize, Vec<mld::Record>)>) {
        for (port, records) in reports {
            let Some((mac, link_local)) = self
                .state
                .interfaces()
                .get(port)
                .map(|i| (i.mac, i.link_local()))
            else {
                continue;
            };
            // From `::` while the link-local address is still checked (RFC
            // 3590 §4).
            let src = if self.is_tentative(link_local) {
                Ipv6Addr::UNSPECIFIED
            } else {
                link_local
            };
            let mut buf = [0u8; MAX_BUILT6];
            if let Some(n) = frames6::mld_report(&mut buf, mac, src, &records) {
                if self.send_bytes(port, &buf[..n]) {
                    self.slow.mld_reports_sent.inc();
                }
            }
        }
    }

    /// Starts Duplicate Address Detection (RFC 4862 §5.4) for every IPv6
    /// address: a solicitation for each from `::`; an address is ours once
    /// [`DAD_WAIT`] passes with no other node claiming it ([`Self::dad_done`]).
    pub(super) fn start_dad(&mut self, now: Time) {
        // The solicited-node groups are joined first (RFC 4862 §5.4.2), so a
        // switch that snoops MLD delivers the answers.
        self.mld = Listener::new(self.state.interfaces(), now);
        self.mld_due(now);
        let addresses: Vec<(usize, MacAddr, Ipv6Addr)> = self
            .state
            .interfaces()
            .iter()
            .enumerate()
            .filter_map(|(p, i)| i.address6.map(|a| (p, i, a.addr())))
            .flat_map(|(p, i, global)| [(p, i.mac, i.link_local()), (p, i.mac, global)])
            .collect();
        for (port, mac, ip) in addresses {
            let mut buf = [0u8; MAX_BUILT6];
            if let Some(n) = frames6::dad_probe(&mut buf, mac, ip) {
                if self.send_bytes(port, &buf[..n]) {
                    self.slow.nd_solicits_sent.inc();
                }
            }
            self.tentative.push((port, ip));
        }
        if !self.tentative.is_empty() {
            self.timers.arm(SlowTimer::DadDone, now + DAD_WAIT);
        }
    }

    /// The addresses nobody claimed are ours: each is announced with an
    /// unsolicited Neighbor Advertisement to all nodes (as gratuitous ARP
    /// does for IPv4), so neighbours that held another MAC for it move at
    /// once.
    pub(super) fn dad_done(&mut self, now: Time) {
        // Router advertisements start now, on the ports whose IPv6 survived.
        self.ra = Advertiser::new(self.state.interfaces(), &self.ra_configs, now);
        if let Some(at) = self.ra.next_deadline() {
            self.timers.arm(SlowTimer::RouterAdvert, at);
        }
        for (port, ip) in std::mem::take(&mut self.tentative) {
            let Some(mac) = self.state.interfaces().get(port).map(|i| i.mac) else {
                continue;
            };
            let mut buf = [0u8; MAX_BUILT6];
            if let Some(n) = frames6::neighbor_advert(&mut buf, mac, ip, None, false) {
                if self.send_bytes(port, &buf[..n]) {
                    self.slow.nd_adverts_sent.inc();
                }
            }
        }
    }

    /// Another node advertised `ip`, one of our addresses on `port`, at
    /// `mac`: while we are still checking it, it is theirs; afterwards it is
    /// a conflict, logged and counted (ours stays: a router's address is
    /// configured, and the operator must settle who keeps it).
    fn address_claimed(&mut self, port: usize, ip: Ipv6Addr, mac: MacAddr, now: Time) {
        if self.tentative.contains(&(port, ip)) {
            self.dad_failed(port, ip, Some(mac), now);
            return;
        }
        self.slow.nd_address_conflicts.inc();
        log::warn!("another node ({mac}) advertises {ip}, our address on port {port}");
    }

    /// Duplicate Address Detection found `ip` in use on `port` (by `mac`,
    /// when it answered): IPv6 goes off on the port, as Linux turns it off
    /// for a duplicate link-local address (a port has one global address,
    /// and does nothing useful in IPv6 without it).
    fn dad_failed(&mut self, port: usize, ip: Ipv6Addr, mac: Option<MacAddr>, now: Time) {
        self.tentative.retain(|(p, _)| *p != port);
        self.slow.nd_dad_failed.inc();
        let name = self
            .state
            .interfaces()
            .get(port)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let by = mac.map_or_else(
            || "another node checking it at the same time".to_string(),
            |m| format!("answered by {m}"),
        );
        log::error!("{name}: {ip} is in use on the link ({by}): IPv6 is off on {name}");
        self.ra.stop(port);
        self.mld.stop(port);
        self.state.disable_ipv6(port);
        // What waited for an IPv6 next hop there never leaves: given up on as
        // an unanswered solicitation is.
        let stranded: Vec<IpAddr> = self
            .pending
            .iter()
            .filter(|(ip, p)| ip.is_ipv6() && p.port == port)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in stranded {
            self.give_up(ip, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface() -> Interface {
        Interface::for_test(None, Some("fd00:1::1/64"))
    }

    /// Errors and answers go from the global address to anyone not
    /// link-local, on the subnet or behind a gateway (a link-local source
    /// would not be forwarded to the latter).
    #[test]
    fn we_speak_from_the_global_address_unless_the_peer_is_link_local() {
        let i = iface();
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(source_for(&i, a("fd00:1::10")), a("fd00:1::1"));
        assert_eq!(source_for(&i, a("fd00:30::7")), a("fd00:1::1"));
        assert_eq!(source_for(&i, a("fe80::10")), i.link_local());
        assert!(
            is_ours_on(&i, a("fd00:1::")),
            "the subnet-router anycast address"
        );
        assert!(is_ours_on(&i, i.link_local()));
        assert!(!is_ours_on(&i, a("fd00:1::2")));
    }
}
