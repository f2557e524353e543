//! Router advertisements on the ports configured to send them
//! (`[interfaces.ra]`, RFC 4861 §6.2): when each is due, and what it says.
//! Pure: the slow path sends what [`Advertiser::advert`] describes when
//! [`Advertiser::due`] says so.
//!
//! Timing (RFC 4861 §6.2.4–§6.2.6): an advertisement at start, the first
//! three no more than 16 s apart, then one every `interval` at random
//! between a third of it and it (routers on a link do not fall into step);
//! a Router Solicitation is answered to all nodes within half a second, but
//! never sooner than 3 s after the last one (a flood of solicitations costs
//! one advertisement every 3 s). At shutdown a final advertisement with
//! router lifetime 0 tells hosts to stop using the appliance at once.

use std::net::Ipv6Addr;
use std::time::Duration;

use ipnet::Ipv6Net;

use crate::config::RaConfig;
use crate::interface::Interface;
use crate::time::Time;
use crate::wire::icmpv6::{prefix_flags, Icmpv6Repr, PrefixInfo};
use crate::wire::MacAddr;

/// MAX_INITIAL_RTR_ADVERT_INTERVAL (RFC 4861 §10).
const INITIAL_INTERVAL: Duration = Duration::from_secs(16);
/// MAX_INITIAL_RTR_ADVERTISEMENTS.
const INITIAL_ADVERTS: u8 = 3;
/// MIN_DELAY_BETWEEN_RAS.
const MIN_DELAY: Duration = Duration::from_secs(3);
/// MAX_RA_DELAY_TIME: the longest an answer to a solicitation waits.
const MAX_ANSWER_DELAY_MS: u64 = 500;

/// One advertising port.
#[derive(Debug, Clone)]
struct Port {
    cfg: RaConfig,
    prefix: Ipv6Net,
    mtu: u16,
    mac: MacAddr,
    link_local: Ipv6Addr,
    /// Initial advertisements still to send at the short interval.
    initial_left: u8,
    /// When the last one went out.
    last: Option<Time>,
    /// When the next is due.
    next: Time,
}

/// The advertising ports and their schedule.
#[derive(Debug, Clone, Default)]
pub struct Advertiser {
    ports: Vec<Option<Port>>,
}

impl Advertiser {
    /// Ports by index with their `ra` settings; one without an IPv6 address
    /// never advertises (the config refuses that). The first advertisements
    /// are due at `now`.
    pub fn new(interfaces: &[Interface], configs: &[Option<RaConfig>], now: Time) -> Self {
        let ports = interfaces
            .iter()
            .zip(configs.iter().chain(std::iter::repeat(&None)))
            .map(|(i, cfg)| {
                let (cfg, address) = ((*cfg)?, i.address6?);
                Some(Port {
                    cfg,
                    prefix: address.trunc(),
                    mtu: i.mtu,
                    mac: i.mac,
                    link_local: i.link_local(),
                    initial_left: INITIAL_ADVERTS,
                    last: None,
                    next: now,
                })
            })
            .collect();
        Self { ports }
    }

    /// Whether port `port` advertises.
    pub fn advertises(&self, port: usize) -> bool {
        self.ports.get(port).is_some_and(Option::is_some)
    }

    /// When the next advertisement is due on any port.
    pub fn next_deadline(&self) -> Option<Time> {
        self.ports.iter().flatten().map(|p| p.next).min()
    }

    /// The ports whose advertisement is due at `now`, each rescheduled as if
    /// it was sent now.
    pub fn due(&mut self, now: Time, rng: &mut fastrand::Rng) -> Vec<usize> {
        let mut due = Vec::new();
        for (i, p) in self.ports.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            if p.next > now {
                continue;
            }
            due.push(i);
            let max = Duration::from_secs(u64::from(p.cfg.interval));
            let min = max / 3;
            let mut gap = min + Duration::from_millis(rng.u64(0..=(max - min).as_millis() as u64));
            if p.initial_left > 0 {
                p.initial_left -= 1;
                gap = gap.min(INITIAL_INTERVAL);
            }
            p.last = Some(now);
            p.next = now + gap;
        }
        due
    }

    /// A Router Solicitation arrived on `port`: its answer is brought
    /// forward to within half a second, and no sooner than 3 s after the
    /// last advertisement. Returns when it is due (`None`: the port does not
    /// advertise).
    pub fn solicited(&mut self, port: usize, now: Time, rng: &mut fastrand::Rng) -> Option<Time> {
        let p = self.ports.get_mut(port)?.as_mut()?;
        let mut at = now + Duration::from_millis(rng.u64(0..=MAX_ANSWER_DELAY_MS));
        if let Some(last) = p.last {
            at = at.max(last + MIN_DELAY);
        }
        p.next = p.next.min(at);
        Some(p.next)
    }

    /// What port `port` advertises: its MAC, link-local source address and
    /// the message (router lifetime 0 when `retiring`: the appliance stops).
    pub fn advert(
        &self,
        port: usize,
        retiring: bool,
    ) -> Option<(MacAddr, Ipv6Addr, Icmpv6Repr<'static>)> {
        let p = self.ports.get(port)?.as_ref()?;
        // Addresses are made only from a /64 (RFC 4862 §5.5.3 with RFC 4291's
        // 64-bit interface identifiers); any other length is on-link only.
        let autonomous = if p.prefix.prefix_len() == 64 {
            prefix_flags::AUTONOMOUS
        } else {
            0
        };
        let ra = Icmpv6Repr::RouterAdvert {
            cur_hop_limit: 64,
            flags: 0,
            router_lifetime: if retiring { 0 } else { p.cfg.router_lifetime },
            reachable_time: 0,
            retrans_time: 0,
            source_lladdr: Some(p.mac),
            mtu: Some(u32::from(p.mtu)),
            prefix: Some(PrefixInfo {
                prefix_len: p.prefix.prefix_len(),
                flags: prefix_flags::ON_LINK | autonomous,
                valid_lifetime: p.cfg.valid_lifetime,
                preferred_lifetime: p.cfg.preferred_lifetime,
                prefix: p.prefix.network(),
            }),
        };
        Some((p.mac, p.link_local, ra))
    }

    /// Stops advertising on `port` (its IPv6 went off).
    pub fn stop(&mut self, port: usize) {
        if let Some(p) = self.ports.get_mut(port) {
            *p = None;
        }
    }

    /// Every advertising port's index.
    pub fn ports(&self) -> impl Iterator<Item = usize> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|_| i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(address6: Option<&str>) -> Interface {
        Interface::for_test(None, address6)
    }

    #[test]
    fn first_three_come_quickly_then_within_the_interval() {
        let ifaces = [iface(Some("fd00:1::1/64")), iface(Some("fd00:2::1/64"))];
        let cfg = RaConfig {
            interval: 600,
            ..RaConfig::default()
        };
        let mut a = Advertiser::new(&ifaces, &[Some(cfg), None], Time::ZERO);
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(a.advertises(0) && !a.advertises(1));
        let mut now = Time::ZERO;
        let mut gaps = Vec::new();
        for _ in 0..20 {
            now = a.next_deadline().unwrap();
            assert_eq!(a.due(now, &mut rng), vec![0]);
            gaps.push(a.next_deadline().unwrap().duration_since(now));
        }
        assert!(gaps[..3].iter().all(|g| *g <= INITIAL_INTERVAL), "{gaps:?}");
        assert!(
            gaps[3..]
                .iter()
                .all(|g| *g >= Duration::from_secs(200) && *g <= Duration::from_secs(600)),
            "{gaps:?}"
        );
        assert!(gaps[3..].windows(2).any(|w| w[0] != w[1]), "jittered");
        // A solicitation brings the next one forward, but not within 3 s of the last.
        let at = a
            .solicited(0, now + Duration::from_secs(1), &mut rng)
            .unwrap();
        assert!(at >= now + MIN_DELAY && at <= now + MIN_DELAY + Duration::from_millis(500));
        let later = now + Duration::from_secs(100);
        let at = a.solicited(0, later, &mut rng).unwrap();
        assert!(at <= later + Duration::from_millis(500));
        assert_eq!(a.solicited(1, later, &mut rng), None);
    }

    #[test]
    fn the_advert_carries_the_prefix_mtu_and_lifetimes() {
        let ifaces = [iface(Some("fd00:1::1/64")), iface(Some("fd00:2::1/56"))];
        let cfg = Some(RaConfig::default());
        let a = Advertiser::new(&ifaces, &[cfg, cfg], Time::ZERO);
        let Some((
            _,
            src,
            Icmpv6Repr::RouterAdvert {
                router_lifetime,
                mtu,
                prefix: Some(p),
                ..
            },
        )) = a.advert(0, false)
        else {
            panic!("no advert")
        };
        assert_eq!(src, ifaces[0].link_local());
        assert_eq!((router_lifetime, mtu), (1800, Some(1500)));
        assert_eq!(p.prefix, "fd00:1::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            (p.prefix_len, p.flags),
            (64, prefix_flags::ON_LINK | prefix_flags::AUTONOMOUS)
        );
        assert!(matches!(
            a.advert(0, true),
            Some((
                _,
                _,
                Icmpv6Repr::RouterAdvert {
                    router_lifetime: 0,
                    ..
                }
            ))
        ));
        let Some((
            _,
            _,
            Icmpv6Repr::RouterAdvert {
                prefix: Some(p), ..
            },
        )) = a.advert(1, false)
        else {
            panic!("no advert")
        };
        assert_eq!(p.flags, prefix_flags::ON_LINK, "no addresses from a /56");
    }
}
