//! Multicast relay rules as an operator writes them: in the config file
//! (`[[mcast_rules]]`) and, with the same shape in JSON, on the control
//! socket. Interfaces are named; [`crate::tables::McastTable`] holds the
//! resolved form the workers read.

use std::fmt;
use std::net::Ipv4Addr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The name a rule uses for the multipath tunnel (as input: streams the peer
/// site relayed into it; as output: republished into it for the peer).
pub const TUNNEL_INTERFACE: &str = "tunnel";

/// Most outputs one input may fan out to (one header mbuf each).
pub const MAX_OUTPUTS: usize = 64;

/// What a rule matches: UDP to `group:port` arriving on `interface`, from
/// any source (ASM) or from `source` only (SSM).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McastInputSpec {
    /// Interface name (the config's `interfaces[].port`).
    pub interface: String,
    /// Multicast group.
    pub group: Ipv4Addr,
    /// UDP destination port, 1-65535.
    pub port: u32,
    /// Only packets from this source (SSM); any source if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
}

impl fmt::Display for McastInputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.interface, self.group, self.port)?;
        if let Some(s) = self.source {
            write!(f, "@{s}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for McastInputSpec {
    type Err = String;

    /// `interface:group:port`, optionally `@source` (the `appliancectl` form).
    fn from_str(text: &str) -> Result<Self, String> {
        let (main, source) = match text.split_once('@') {
            Some((m, s)) => (
                m,
                Some(
                    s.parse()
                        .map_err(|_| format!("source {s:?} is not an IPv4 address"))?,
                ),
            ),
            None => (text, None),
        };
        let (interface, group, port) = split3(main)?;
        Ok(Self {
            interface,
            group,
            port,
            source,
        })
    }
}

impl std::str::FromStr for McastOutputSpec {
    type Err = String;

    /// `interface:destination:port` followed by any of `,source=keep|interface|A.B.C.D`,
    /// `,ttl=N|decrement`, `,dscp=N|keep` (the `appliancectl` form).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.split(',');
        let (interface, destination, port) = split3(parts.next().unwrap_or_default())?;
        let mut out = Self {
            interface,
            destination,
            port,
            source: SourceSpec::default(),
            ttl: TtlSpec::default(),
            dscp: DscpSpec::default(),
        };
        for opt in parts {
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| format!("{opt:?}: expected key=value (source=, ttl=, dscp=)"))?;
            // The option values go through the same parsers as the config.
            let value = serde_json::Value::String(v.to_string());
            let number = v.parse::<u64>().ok().map(serde_json::Value::from);
            let arg = number.unwrap_or(value);
            let bad = |e: serde_json::Error| format!("{k}: {e}");
            match k {
                "source" => {
                    out.source =
                        serde_json::from_value(serde_json::Value::String(v.into())).map_err(bad)?;
                }
                "ttl" => out.ttl = serde_json::from_value(arg).map_err(bad)?,
                "dscp" => out.dscp = serde_json::from_value(arg).map_err(bad)?,
                _ => return Err(format!("unknown output option {k:?} (source, ttl, dscp)")),
            }
        }
        Ok(out)
    }
}

fn split3(text: &str) -> Result<(String, Ipv4Addr, u32), String> {
    let mut it = text.split(':');
    let (Some(i), Some(a), Some(p), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(format!("{text:?}: expected interface:address:port"));
    };
    let addr = a
        .parse()
        .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
    let port = p
        .parse()
        .map_err(|_| format!("{p:?} is not a port number"))?;
    Ok((i.to_string(), addr, port))
}

/// Source address of republished packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceSpec {
    /// The output interface's address (the default: receivers can route
    /// back to it, which is what solves the RPF problem).
    #[default]
    Interface,
    /// The original sender's address.
    Keep,
    /// This address.
    Address(Ipv4Addr),
}

/// TTL of republished packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlSpec {
    /// One less than received (dropped and counted at zero).
    #[default]
    Decrement,
    /// This value, 1-255.
    Set(u8),
}

/// DSCP of republished packets (ECN bits are always kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DscpSpec {
    /// As received.
    #[default]
    Keep,
    /// This value, 0-63.
    Set(u8),
}

/// One output of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McastOutputSpec {
    /// Interface name to send on.
    pub interface: String,
    /// New destination: a group, or a unicast address (resolved by ARP).
    pub destination: Ipv4Addr,
    /// New UDP destination port, 1-65535.
    pub port: u32,
    /// `"interface"` (default), `"keep"` or an IPv4 address.
    #[serde(default)]
    pub source: SourceSpec,
    /// `"decrement"` (default) or 1-255.
    #[serde(default)]
    pub ttl: TtlSpec,
    /// `"keep"` (default) or 0-63.
    #[serde(default)]
    pub dscp: DscpSpec,
}

/// A whole rule: one input, 1 to [`MAX_OUTPUTS`] outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McastRuleSpec {
    /// What to match.
    pub input: McastInputSpec,
    /// Where to republish it.
    pub outputs: Vec<McastOutputSpec>,
}

/// A rule that does not make sense: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {what}")]
pub struct McastRuleError {
    /// Field path inside the rule, e.g. `outputs[2].destination`.
    pub key: String,
    /// What was expected.
    pub what: String,
}

/// An interface as rule validation needs it.
#[derive(Debug, Clone, Copy)]
pub struct IfaceView<'a> {
    /// Name.
    pub name: &'a str,
    /// Its address, if any.
    pub address: Option<Ipv4Addr>,
}

/// A group a relay may join and republish to: multicast, and not in
/// 224.0.0.0/24, which is link-local control traffic (IGMP, OSPF, ...).
pub fn is_relayable_group(ip: Ipv4Addr) -> bool {
    ip.is_multicast() && ip.octets()[..3] != [224, 0, 0]
}

impl McastRuleSpec {
    /// Checks the rule on its own and against the interfaces; returns the
    /// input and output interface indices.
    ///
    /// # Errors
    /// The first field that is wrong.
    pub fn validate(
        &self,
        ifaces: &[IfaceView<'_>],
    ) -> Result<(usize, Vec<usize>), McastRuleError> {
        let err = |key: String, what: String| Err(McastRuleError { key, what });
        let names: Vec<&str> = ifaces.iter().map(|i| i.name).collect();
        let find = |name: &str| ifaces.iter().position(|i| i.name == name);
        let i = &self.input;
        let Some(in_port) = find(&i.interface) else {
            return err(
                "input.interface".into(),
                format!("one of the interfaces {names:?}, not {:?}", i.interface),
            );
        };
        if !is_relayable_group(i.group) {
            return err(
                "input.group".into(),
                format!("a multicast group outside 224.0.0.0/24, not {}", i.group),
            );
        }
        if !(1..=65535).contains(&i.port) {
            return err(
                "input.port".into(),
                format!("a UDP port 1-65535, not {}", i.port),
            );
        }
        if let Some(s) = i.source {
            if !is_unicast_host(s) {
                return err(
                    "input.source".into(),
                    format!("a unicast source address (SSM), not {s}"),
                );
            }
        }
        if self.outputs.is_empty() || self.outputs.len() > MAX_OUTPUTS {
            return err(
                "outputs".into(),
                format!("1 to {MAX_OUTPUTS} outputs, not {}", self.outputs.len()),
            );
        }
        let mut out_ports = Vec::with_capacity(self.outputs.len());
        for (k, o) in self.outputs.iter().enumerate() {
            let key = |f: &str| format!("outputs[{k}].{f}");
            let Some(port) = find(&o.interface) else {
                return err(
                    key("interface"),
                    format!("one of the interfaces {names:?}, not {:?}", o.interface),
                );
            };
            let d = o.destination;
            let own = ifaces.iter().any(|f| f.address == Some(d));
            if !(is_relayable_group(d) || is_unicast_host(d)) || own {
                return err(
                    key("destination"),
                    format!("a multicast group outside 224.0.0.0/24 or a unicast address that is not ours, not {d}"),
                );
            }
            if !(1..=65535).contains(&o.port) {
                return err(key("port"), format!("a UDP port 1-65535, not {}", o.port));
            }
            if port == in_port && o.interface == TUNNEL_INTERFACE {
                return err(
                    key("interface"),
                    "an output other than the tunnel for a stream that came out of it (the sites would pass it back and forth)".into(),
                );
            }
            if port == in_port && d == i.group && o.port == i.port {
                return err(
                    key("destination"),
                    format!(
                        "an output that does not loop back onto the input ({} {}:{} is the input itself)",
                        o.interface, d, o.port
                    ),
                );
            }
            match o.source {
                SourceSpec::Interface if ifaces[port].address.is_none() => {
                    return err(
                        key("source"),
                        format!(
                            "\"keep\" or an address: interface {:?} has no address of its own",
                            o.interface
                        ),
                    );
                }
                SourceSpec::Address(a) if !is_unicast_host(a) => {
                    return err(key("source"), format!("a unicast address, not {a}"));
                }
                _ => {}
            }
            if let TtlSpec::Set(0) = o.ttl {
                return err(key("ttl"), "\"decrement\" or 1-255, not 0".into());
            }
            if let DscpSpec::Set(v) = o.dscp {
                if v > 63 {
                    return err(key("dscp"), format!("\"keep\" or 0-63, not {v}"));
                }
            }
            if self.outputs[..k]
                .iter()
                .any(|p| p.interface == o.interface && p.destination == d && p.port == o.port)
            {
                return err(
                    key("destination"),
                    format!(
                        "an output not listed already ({} {}:{} is)",
                        o.interface, d, o.port
                    ),
                );
            }
            out_ports.push(port);
        }
        Ok((in_port, out_ports))
    }
}

fn is_unicast_host(ip: Ipv4Addr) -> bool {
    !(ip.is_multicast() || ip.is_broadcast() || ip.is_unspecified() || ip.is_loopback())
        && ip.octets()[0] < 240
}

// --- serde forms: "interface" | "keep" | "A.B.C.D"; "decrement" | 1-255; "keep" | 0-63 ---

impl Serialize for SourceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SourceSpec::Interface => s.serialize_str("interface"),
            SourceSpec::Keep => s.serialize_str("keep"),
            SourceSpec::Address(a) => s.collect_str(a),
        }
    }
}

impl<'de> Deserialize<'de> for SourceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "interface" => Ok(SourceSpec::Interface),
            "keep" => Ok(SourceSpec::Keep),
            _ => s.parse().map(SourceSpec::Address).map_err(|_| {
                de::Error::custom(format!(
                    "\"interface\", \"keep\" or an IPv4 address, not {s:?}"
                ))
            }),
        }
    }
}

/// Accepts a keyword or an integer in a range, for `ttl` and `dscp`.
struct KeywordOrInt {
    keyword: &'static str,
    range: std::ops::RangeInclusive<u8>,
}

impl<'de> Visitor<'de> for KeywordOrInt {
    type Value = Option<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\" or an integer {}-{}",
            self.keyword,
            self.range.start(),
            self.range.end()
        )
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u8>, E> {
        if v == self.keyword {
            Ok(None)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u8>, E> {
        u8::try_from(v)
            .ok()
            .filter(|v| self.range.contains(v))
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u8>, E> {
        u8::try_from(v)
            .ok()
            .filter(|v| self.range.contains(v))
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
}

impl Serialize for TtlSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TtlSpec::Decrement => s.serialize_str("decrement"),
            TtlSpec::Set(v) => s.serialize_u8(*v),
        }
    }
}

impl<'de> Deserialize<'de> for TtlSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(KeywordOrInt {
            keyword: "decrement",
            range: 1..=255,
        })?;
        Ok(v.map_or(TtlSpec::Decrement, TtlSpec::Set))
    }
}

impl Serialize for DscpSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DscpSpec::Keep => s.serialize_str("keep"),
            DscpSpec::Set(v) => s.serialize_u8(*v),
        }
    }
}

impl<'de> Deserialize<'de> for DscpSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(KeywordOrInt {
            keyword: "keep",
            range: 0..=63,
        })?;
        Ok(v.map_or(DscpSpec::Keep, DscpSpec::Set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IFACES: [IfaceView<'static>; 3] = [
        IfaceView {
            name: "lan",
            address: Some(Ipv4Addr::new(10, 0, 1, 1)),
        },
        IfaceView {
            name: "wan",
            address: Some(Ipv4Addr::new(10, 0, 2, 1)),
        },
        IfaceView {
            name: "tap",
            address: None,
        },
    ];

    fn rule(json: &str) -> McastRuleSpec {
        serde_json::from_str(json).unwrap()
    }

    const GOOD: &str = r#"{"input":{"interface":"lan","group":"239.1.1.1","port":5000},
        "outputs":[{"interface":"wan","destination":"239.10.1.1","port":6000},
                   {"interface":"wan","destination":"10.0.2.9","port":7000,"source":"keep","ttl":8,"dscp":46}]}"#;

    #[test]
    fn good_rule_and_defaults() {
        let r = rule(GOOD);
        assert_eq!(r.validate(&IFACES), Ok((0, vec![1, 1])));
        assert_eq!(r.outputs[0].source, SourceSpec::Interface);
        assert_eq!(r.outputs[0].ttl, TtlSpec::Decrement);
        assert_eq!(r.outputs[1].ttl, TtlSpec::Set(8));
        assert_eq!(r.outputs[1].dscp, DscpSpec::Set(46));
        let round: McastRuleSpec =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(round, r);
    }

    #[test]
    fn each_mistake_names_its_field() {
        let cases = [
            (
                r#""interface":"lan","group""#,
                r#""interface":"dmz","group""#,
                "input.interface",
            ),
            ("239.1.1.1", "10.1.1.1", "input.group"),
            ("239.1.1.1", "224.0.0.5", "input.group"),
            (r#""port":5000"#, r#""port":0"#, "input.port"),
            (r#""port":5000"#, r#""port":70000"#, "input.port"),
            ("239.10.1.1", "255.255.255.255", "outputs[0].destination"),
            ("239.10.1.1", "10.0.1.1", "outputs[0].destination"),
            (r#""port":6000"#, r#""port":65536"#, "outputs[0].port"),
            (
                r#""interface":"wan","destination":"239"#,
                r#""interface":"tap","destination":"239"#,
                "outputs[0].source",
            ),
            (
                r#""interface":"wan","destination":"239.10.1.1","port":6000"#,
                r#""interface":"lan","destination":"239.1.1.1","port":5000"#,
                "outputs[0].destination",
            ),
            (
                r#""destination":"10.0.2.9","port":7000"#,
                r#""destination":"239.10.1.1","port":6000"#,
                "outputs[1].destination",
            ),
        ];
        for (from, to, key) in cases {
            let r = rule(&GOOD.replacen(from, to, 1));
            let e = r.validate(&IFACES).unwrap_err();
            assert_eq!(e.key, key, "{from} -> {to}: {e}");
        }
        let mut r = rule(GOOD);
        r.outputs = (0..65)
            .map(|k| McastOutputSpec {
                port: 6000 + k,
                ..r.outputs[0].clone()
            })
            .collect();
        assert_eq!(r.validate(&IFACES).unwrap_err().key, "outputs");
    }

    #[test]
    fn command_line_forms() {
        let i: McastInputSpec = "lan:239.1.1.1:5000@10.0.1.7".parse().unwrap();
        assert_eq!(i.source, Some(Ipv4Addr::new(10, 0, 1, 7)));
        assert_eq!(i.to_string(), "lan:239.1.1.1:5000@10.0.1.7");
        let o: McastOutputSpec = "wan:239.10.1.1:6000,source=keep,ttl=8,dscp=46"
            .parse()
            .unwrap();
        assert_eq!(
            (o.source, o.ttl, o.dscp, o.port),
            (SourceSpec::Keep, TtlSpec::Set(8), DscpSpec::Set(46), 6000)
        );
        let o: McastOutputSpec = "wan:10.0.2.9:1,ttl=decrement,source=10.0.2.1"
            .parse()
            .unwrap();
        assert_eq!(o.source, SourceSpec::Address(Ipv4Addr::new(10, 0, 2, 1)));
        for bad in [
            "wan:239.1.1.1",
            "wan:x:1",
            "wan:239.1.1.1:p",
            "wan:239.1.1.1:1,ttl=0",
            "wan:239.1.1.1:1,mtu=9",
        ] {
            assert!(bad.parse::<McastOutputSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn keyword_fields_say_what_they_accept() {
        for (from, to, needle) in [
            (
                r#""ttl":8"#,
                r#""ttl":0"#,
                "\"decrement\" or an integer 1-255",
            ),
            (
                r#""ttl":8"#,
                r#""ttl":"down""#,
                "\"decrement\" or an integer 1-255",
            ),
            (
                r#""dscp":46"#,
                r#""dscp":64"#,
                "\"keep\" or an integer 0-63",
            ),
            (
                r#""source":"keep""#,
                r#""source":"me""#,
                "\"interface\", \"keep\" or an IPv4 address",
            ),
        ] {
            let e = serde_json::from_str::<McastRuleSpec>(&GOOD.replacen(from, to, 1)).unwrap_err();
            assert!(e.to_string().contains(needle), "{to}: {e}");
        }
    }
}
