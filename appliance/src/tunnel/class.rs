//! Traffic classes: which scheduler a packet entering the tunnel gets. Each
//! class matches on the inner packet's source and destination prefix,
//! protocol, ports, DSCP and size; the first class that matches wins, and
//! the default class takes the rest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net};

use crate::config::tunnel::{ClassConfig, MatchConfig, SchedulerName, Tier};
use crate::wire::{IpProtocol, Ipv4Packet};

/// What classification reads from an inner IPv4 or IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol (IPv6: the fixed header's Next Header).
    pub proto: u8,
    /// TCP/UDP source port (0 for other protocols, non-first fragments, and
    /// IPv6 packets with extension headers).
    pub sport: u16,
    /// TCP/UDP destination port (0 likewise).
    pub dport: u16,
    /// DSCP (6 bits).
    pub dscp: u8,
    /// IPv4 total length; IPv6 header and payload.
    pub len: u16,
}

impl FlowKey {
    /// Reads the key from the first bytes of an IPv4 or IPv6 packet (its
    /// header and ports), which may be all a header mbuf holds of it: only
    /// the IHL and the version are checked, the rest was validated when the
    /// packet was received or built. `None` if the header does not fit or is
    /// neither version.
    pub fn from_header(l3: &[u8]) -> Option<FlowKey> {
        if *l3.first()? >> 4 == 6 {
            return Self::from_ipv6_header(l3);
        }
        let ihl = usize::from(*l3.first()? & 0x0f) * 4;
        if l3[0] >> 4 != 4 || ihl < 20 || l3.len() < ihl {
            return None;
        }
        let proto = l3[9];
        let first_fragment = u16::from_be_bytes([l3[6], l3[7]]) & 0x1fff == 0;
        let (sport, dport) = match (proto, l3.get(ihl..ihl + 4)) {
            (6 | 17, Some(p)) if first_fragment => (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ),
            _ => (0, 0),
        };
        Some(FlowKey {
            src: Ipv4Addr::new(l3[12], l3[13], l3[14], l3[15]).into(),
            dst: Ipv4Addr::new(l3[16], l3[17], l3[18], l3[19]).into(),
            proto,
            sport,
            dport,
            dscp: l3[1] >> 2,
            len: u16::from_be_bytes([l3[2], l3[3]]),
        })
    }

    /// [`Self::from_header`] for IPv6: the ports when TCP or UDP follows the
    /// fixed header directly (a packet with extension headers is classified
    /// by its addresses, protocol and traffic class).
    fn from_ipv6_header(l3: &[u8]) -> Option<FlowKey> {
        let fixed: &[u8; 40] = l3.get(..40)?.try_into().ok()?;
        let addr = |at: usize| {
            let mut o = [0u8; 16];
            o.copy_from_slice(&fixed[at..at + 16]);
            IpAddr::V6(Ipv6Addr::from(o))
        };
        let proto = fixed[6];
        let (sport, dport) = match (proto, l3.get(40..44)) {
            (6 | 17, Some(p)) => (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ),
            _ => (0, 0),
        };
        let traffic_class = (fixed[0] << 4) | (fixed[1] >> 4);
        Some(FlowKey {
            src: addr(8),
            dst: addr(24),
            proto,
            sport,
            dport,
            dscp: traffic_class >> 2,
            len: u16::from_be_bytes([fixed[4], fixed[5]]).saturating_add(40),
        })
    }

    /// The addresses as the schedulers hash them: IPv4's as they are, an
    /// IPv6 address folded to 32 bits (its four words XORed).
    pub fn hash_words(&self) -> (u32, u32) {
        let fold = |a: IpAddr| match a {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => {
                let w = u128::from(a);
                (w as u32) ^ ((w >> 32) as u32) ^ ((w >> 64) as u32) ^ ((w >> 96) as u32)
            }
        };
        (fold(self.src), fold(self.dst))
    }

    /// Reads the key from a checked IPv4 packet.
    pub fn from_ipv4(ip: &Ipv4Packet<&[u8]>) -> FlowKey {
        let proto = ip.protocol();
        let (sport, dport) = match proto {
            IpProtocol::TCP | IpProtocol::UDP if ip.frag_offset() == 0 => {
                let p = ip.payload();
                if p.len() >= 4 {
                    (
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    )
                } else {
                    (0, 0)
                }
            }
            _ => (0, 0),
        };
        FlowKey {
            src: ip.src_addr().into(),
            dst: ip.dst_addr().into(),
            proto: proto.0,
            sport,
            dport,
            dscp: ip.dscp(),
            len: ip.total_len(),
        }
    }
}

/// A class's match, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    src: Option<IpNet>,
    dst: Option<IpNet>,
    proto: Option<u8>,
    sports: Option<RangeInclusive<u16>>,
    dports: Option<RangeInclusive<u16>>,
    /// Bit d set: DSCP d matches.
    dscp: Option<u64>,
    size: Option<RangeInclusive<u16>>,
}

impl Matcher {
    /// From the config's `match` table (already validated).
    pub fn new(m: &MatchConfig) -> Matcher {
        Matcher {
            src: m.src,
            dst: m.dst,
            proto: m.protocol.map(|p| p.0),
            sports: m.src_ports.as_ref().map(|r| r.0.clone()),
            dports: m.dst_ports.as_ref().map(|r| r.0.clone()),
            dscp: m
                .dscp
                .as_ref()
                .map(|d| d.iter().fold(0u64, |bits, v| bits | (1u64 << (v & 63)))),
            size: m.size.as_ref().map(|r| r.0.clone()),
        }
    }

    /// The fields given, as text (`show classes`).
    pub fn describe(&self) -> String {
        let range = |r: &RangeInclusive<u16>| {
            if r.start() == r.end() {
                r.start().to_string()
            } else {
                format!("{}-{}", r.start(), r.end())
            }
        };
        let mut parts = Vec::new();
        if let Some(n) = self.src {
            parts.push(format!("src {n}"));
        }
        if let Some(n) = self.dst {
            parts.push(format!("dst {n}"));
        }
        if let Some(p) = self.proto {
            parts.push(match p {
                1 => "icmp".to_string(),
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                p => format!("protocol {p}"),
            });
        }
        if let Some(r) = &self.sports {
            parts.push(format!("sport {}", range(r)));
        }
        if let Some(r) = &self.dports {
            parts.push(format!("dport {}", range(r)));
        }
        if let Some(bits) = self.dscp {
            let v: Vec<String> = (0..64)
                .filter(|d| bits & (1 << d) != 0)
                .map(|d: u64| d.to_string())
                .collect();
            parts.push(format!("dscp {}", v.join(",")));
        }
        if let Some(r) = &self.size {
            parts.push(format!("size {}", range(r)));
        }
        if parts.is_empty() {
            "any".to_string()
        } else {
            parts.join(", ")
        }
    }

    /// Whether `k` matches every field given.
    #[inline]
    pub fn matches(&self, k: &FlowKey) -> bool {
        self.src.is_none_or(|n| n.contains(&k.src))
            && self.dst.is_none_or(|n| n.contains(&k.dst))
            && self.proto.is_none_or(|p| p == k.proto)
            && self.sports.as_ref().is_none_or(|r| r.contains(&k.sport))
            && self.dports.as_ref().is_none_or(|r| r.contains(&k.dport))
            && self
                .dscp
                .is_none_or(|bits| bits & (1u64 << (k.dscp & 63)) != 0)
            && self.size.as_ref().is_none_or(|r| r.contains(&k.len))
    }
}

/// A traffic class as the workers use it.
#[derive(Debug, Clone)]
pub struct Class {
    /// Name (`default` for the default class).
    pub name: String,
    /// What it matches.
    pub matcher: Matcher,
    /// Its scheduler.
    pub scheduler: SchedulerName,
    /// `source-subnet` bindings as (subnet, path index).
    pub bindings: Vec<(Ipv4Net, u8)>,
    /// Its shaper tier (`None`: each packet's by its DSCP).
    pub tier: Option<Tier>,
}

impl Class {
    /// From a config class; `path_index` maps a path name to its index.
    pub fn new(c: &ClassConfig, path_index: impl Fn(&str) -> Option<u8>) -> Class {
        Class {
            name: c.name.clone(),
            matcher: Matcher::new(&c.matches),
            scheduler: c.scheduler,
            bindings: c
                .bindings
                .iter()
                .filter_map(|b| path_index(&b.path).map(|p| (b.subnet, p)))
                .collect(),
            tier: c.tier,
        }
    }

    /// The default class: matches everything.
    pub fn default_class(scheduler: SchedulerName) -> Class {
        Class {
            name: "default".into(),
            matcher: Matcher::default(),
            scheduler,
            bindings: Vec::new(),
            tier: None,
        }
    }
}

/// The classes of the tunnel, default last: `classify` returns an index into
/// [`Self::all`].
#[derive(Debug, Clone)]
pub struct Classes {
    all: Vec<Class>,
}

impl Classes {
    /// `classes` in order, then `default`.
    pub fn new(mut classes: Vec<Class>, default: Class) -> Classes {
        classes.push(default);
        Classes { all: classes }
    }

    /// The first class that matches `k` (the default when none does).
    #[inline]
    pub fn classify(&self, k: &FlowKey) -> usize {
        let last = self.all.len().saturating_sub(1);
        self.all[..last]
            .iter()
            .position(|c| c.matcher.matches(k))
            .unwrap_or(last)
    }

    /// Every class, default last.
    pub fn all(&self) -> &[Class] {
        &self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(src: [u8; 4], proto: u8, dport: u16, dscp: u8, len: u16) -> FlowKey {
        FlowKey {
            src: src.into(),
            dst: [10, 2, 0, 2].into(),
            proto,
            sport: 40000,
            dport,
            dscp,
            len,
        }
    }

    fn class(name: &str, toml_match: &str, sched: SchedulerName) -> Class {
        let m: MatchConfig = toml::from_str(toml_match).unwrap();
        Class {
            name: name.into(),
            matcher: Matcher::new(&m),
            scheduler: sched,
            bindings: vec![],
            tier: None,
        }
    }

    #[test]
    fn first_match_wins_and_the_default_takes_the_rest() {
        let classes = Classes::new(
            vec![
                class(
                    "voice",
                    "protocol = \"udp\"\ndscp = [46]",
                    SchedulerName::Redundant,
                ),
                class(
                    "web",
                    "protocol = \"tcp\"\ndst_ports = \"80-443\"",
                    SchedulerName::FlowHash,
                ),
                class("small", "size = \"0-200\"", SchedulerName::MinRtt),
                class("lan1", "src = \"10.1.1.0/24\"", SchedulerName::Backup),
            ],
            Class::default_class(SchedulerName::Wlb),
        );
        let c = |k: FlowKey| classes.all()[classes.classify(&k)].name.clone();
        assert_eq!(c(key([10, 1, 0, 2], 17, 5004, 46, 200)), "voice");
        assert_eq!(
            c(key([10, 1, 0, 2], 17, 5004, 0, 200)),
            "small",
            "no DSCP 46"
        );
        assert_eq!(c(key([10, 1, 0, 2], 6, 443, 46, 1500)), "web");
        assert_eq!(c(key([10, 1, 0, 2], 6, 444, 0, 1500)), "default");
        assert_eq!(c(key([10, 1, 1, 7], 6, 22, 0, 1500)), "lan1");
    }

    /// IPv6: the key from the fixed header and the ports right after it;
    /// a class's prefix matches only its own family.
    #[test]
    fn ipv6_packets_are_classified_by_their_own_prefixes() {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv6(a("fd00:1::2"), a("fd00:2::2"), 64)
            .tcp(1234, 443, 1, 1000)
            .write(&mut v, &[0; 10])
            .unwrap();
        // Traffic class 0xb8: DSCP 46.
        v[0] = 0x6b;
        v[1] = 0x80;
        let k = FlowKey::from_header(&v).unwrap();
        assert_eq!(
            (k.src, k.sport, k.dport, k.dscp, k.len, k.proto),
            (IpAddr::V6(a("fd00:1::2").into()), 1234, 443, 46, 70, 6)
        );
        let classes = Classes::new(
            vec![
                class("v4-lan", "src = \"10.1.0.0/16\"", SchedulerName::Backup),
                class("v6-lan", "src = \"fd00:1::/48\"", SchedulerName::MinRtt),
            ],
            Class::default_class(SchedulerName::Wlb),
        );
        let c = |k: FlowKey| classes.all()[classes.classify(&k)].name.clone();
        assert_eq!(c(k), "v6-lan");
        assert_eq!(c(key([10, 1, 0, 2], 6, 443, 0, 100)), "v4-lan");
        let other = FlowKey {
            src: IpAddr::V6(a("fd00:9::2").into()),
            ..k
        };
        assert_eq!(c(other), "default");
        // The schedulers' 32-bit view of an IPv6 flow depends on every word.
        let (s1, _) = k.hash_words();
        let (s2, _) = FlowKey {
            src: IpAddr::V6(a("fd00:1::3").into()),
            ..k
        }
        .hash_words();
        assert_ne!(s1, s2);
        // Too short for a fixed header: no key.
        assert!(FlowKey::from_header(&v[..39]).is_none());
    }

    #[test]
    fn reads_the_key_from_a_packet() {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 1, 0, 2], [10, 2, 0, 2], 64)
            .udp(1234, 5678)
            .write(&mut v, &[0; 10])
            .unwrap();
        v[1] = 46 << 2;
        let ip = Ipv4Packet::new_checked(&v[..]).unwrap();
        let k = FlowKey::from_ipv4(&ip);
        assert_eq!(
            (k.sport, k.dport, k.dscp, k.len, k.proto),
            (1234, 5678, 46, 38, 17)
        );
    }
}
