//! The WAN emulator's configuration: links, per-direction parameters and scheduled events.
//!
//! ```toml
//! control = "/run/wanem.sock"          # optional; the command line can override it
//!
//! [[link]]
//! name = "a"
//! a_iface = "ea0"
//! b_iface = "eb0"
//! state = "up"                         # up | down | blackhole (with blackhole_dir)
//! [link.both]                          # or [link.a_to_b] / [link.b_to_a]
//! delay = "10ms"
//! jitter = "1ms"                       # uniform in [delay - jitter, delay + jitter]
//! rate = "50mbit"                      # absent: unlimited, no queue
//! queue = "100ms"                      # "100ms" | "150000B" | "100pkt"
//! loss = 0.01                          # independent random loss probability
//! ge_p = 0.001                         # Gilbert-Elliott: P(good -> bad) per frame
//! ge_r = 0.3                           #                  P(bad -> good); bad state loses all
//!
//! [[event]]
//! at = "20s"                           # since the emulator started forwarding
//! link = "a"
//! action = "blackhole"                 # up | down | blackhole | set
//! direction = "a-to-b"                 # both (default) | a-to-b | b-to-a
//! [[event]]
//! at = "25s"
//! link = "a"
//! action = "set"
//! params = { delay = "30ms" }
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written like `30ms`, `1.5s` or `250us`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        // humantime has no fractions ("1.5s"); accept them since events are often fractional.
        if let Some((num, unit)) = split_number(s) {
            if num.contains('.') {
                let v: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
                let scale = match unit {
                    "s" => 1.0,
                    "ms" => 1e-3,
                    "us" | "µs" => 1e-6,
                    "ns" => 1e-9,
                    _ => bail!("bad duration unit in {s:?}"),
                };
                ensure!(v >= 0.0, "negative duration {s:?}");
                return Ok(Dur(Duration::from_secs_f64(v * scale)));
            }
        }
        if s == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        Ok(Dur(
            humantime::parse_duration(s).with_context(|| format!("bad duration {s:?}"))?
        ))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if us % 1000 == 0 {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{us}us")
        }
    }
}

/// A link rate in bits per second, written like `50mbit`, `1.5gbit`, `800kbit`, `64000bit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(pub u64);

impl FromStr for Rate {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (num, unit) = split_number(&s).with_context(|| format!("bad rate {s:?}"))?;
        let v: f64 = num.parse().with_context(|| format!("bad rate {s:?}"))?;
        let scale = match unit {
            "bit" | "bps" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            _ => bail!("bad rate unit in {s:?} (use bit, kbit, mbit or gbit)"),
        };
        let bps = (v * scale).round();
        ensure!(bps >= 1.0, "rate {s:?} must be positive");
        Ok(Rate(bps as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1_000_000 == 0 {
            write!(f, "{}mbit", self.0 / 1_000_000)
        } else if self.0 % 1000 == 0 {
            write!(f, "{}kbit", self.0 / 1000)
        } else {
            write!(f, "{}bit", self.0)
        }
    }
}

/// The bound of a rate-limited direction's queue: frames arriving when it is full are
/// tail-dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLimit {
    /// As much as the rate drains in this time (`100ms`): the queueing-delay bound.
    Time(Duration),
    /// Bytes of frames, counted like the rate (`150000B`).
    Bytes(u64),
    /// Frames (`100pkt`).
    Packets(u32),
}

impl Default for QueueLimit {
    fn default() -> Self {
        QueueLimit::Time(Duration::from_millis(100))
    }
}

impl FromStr for QueueLimit {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(n) = s.strip_suffix("pkt").or_else(|| s.strip_suffix('p')) {
            return Ok(QueueLimit::Packets(
                n.trim()
                    .parse()
                    .with_context(|| format!("bad queue {s:?}"))?,
            ));
        }
        if let Some(n) = s.strip_suffix('B').or_else(|| s.strip_suffix('b')) {
            return Ok(QueueLimit::Bytes(
                n.trim()
                    .parse()
                    .with_context(|| format!("bad queue {s:?}"))?,
            ));
        }
        Ok(QueueLimit::Time(s.parse::<Dur>()?.0))
    }
}

impl fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueLimit::Time(d) => write!(f, "{}", Dur(*d)),
            QueueLimit::Bytes(b) => write!(f, "{b}B"),
            QueueLimit::Packets(p) => write!(f, "{p}pkt"),
        }
    }
}

fn split_number(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    (end > 0).then(|| (&s[..end], s[end..].trim()))
}

macro_rules! string_serde {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
            }
        }
    )*};
}
string_serde!(Dur, Rate, QueueLimit);

/// The behaviour of one direction of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirParams {
    /// One-way propagation delay added after serialisation.
    pub delay: Dur,
    /// Delay varies uniformly in `[delay - jitter, delay + jitter]` (never below zero).
    pub jitter: Dur,
    /// Allow jitter to reorder frames; otherwise a frame never leaves before its predecessor.
    pub reorder: bool,
    /// Bottleneck rate; `None` is unlimited (no serialisation time, no queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Queue bound when `rate` is set.
    pub queue: QueueLimit,
    /// Bytes added to each frame for rate accounting (e.g. 24 for preamble, FCS and
    /// inter-frame gap; 0 counts the Ethernet frame as AF_PACKET sees it: header + payload).
    pub overhead: u32,
    /// Independent random loss probability per frame (0..=1).
    pub loss: f64,
    /// Gilbert-Elliott burst loss: probability of entering the bad (all-lost) state.
    pub ge_p: f64,
    /// Gilbert-Elliott: probability of leaving the bad state (mean burst = 1 / ge_r frames).
    pub ge_r: f64,
}

impl DirParams {
    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<()> {
        for (name, p) in [
            ("loss", self.loss),
            ("ge_p", self.ge_p),
            ("ge_r", self.ge_r),
        ] {
            ensure!(
                (0.0..=1.0).contains(&p),
                "{name} = {p} is not a probability"
            );
        }
        ensure!(
            self.ge_p == 0.0 || self.ge_r > 0.0,
            "ge_r must be > 0 when ge_p is set, or the bad state never ends"
        );
        Ok(())
    }

    /// Applies a partial update.
    pub fn apply(&mut self, p: &DirPatch) {
        macro_rules! take {
            ($($f:ident),*) => {$(if let Some(v) = p.$f { self.$f = v; })*};
        }
        take!(delay, jitter, reorder, queue, overhead, loss, ge_p, ge_r);
        if let Some(r) = p.rate {
            // Rate 0 in a patch means "unlimited".
            self.rate = (r.0 > 0).then_some(r);
        }
    }
}

/// A partial [`DirParams`], used by `set` events and control commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reorder: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ge_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ge_r: Option<f64>,
}

impl DirPatch {
    /// Sets one field from its control-command form (`delay 30ms`, `rate 0` = unlimited).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let prob = |v: &str| -> Result<f64> {
            let p = match v.strip_suffix('%') {
                Some(pct) => pct.parse::<f64>()? / 100.0,
                None => v.parse::<f64>()?,
            };
            ensure!((0.0..=1.0).contains(&p), "{v} is not a probability");
            Ok(p)
        };
        match key {
            "delay" => self.delay = Some(value.parse()?),
            "jitter" => self.jitter = Some(value.parse()?),
            "reorder" => {
                self.reorder = Some(match value {
                    "on" | "true" | "1" => true,
                    "off" | "false" | "0" => false,
                    _ => bail!("reorder takes on|off"),
                })
            }
            "rate" => {
                self.rate = Some(if value == "0" || value == "unlimited" {
                    Rate(0)
                } else {
                    value.parse()?
                })
            }
            "queue" => self.queue = Some(value.parse()?),
            "overhead" => self.overhead = Some(value.parse()?),
            "loss" => self.loss = Some(prob(value)?),
            "ge_p" => self.ge_p = Some(prob(value)?),
            "ge_r" => self.ge_r = Some(prob(value)?),
            _ => bail!("unknown parameter {key:?}"),
        }
        Ok(())
    }
}

/// Which direction(s) of a link something applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    #[default]
    Both,
    AToB,
    BToA,
}

impl Direction {
    /// Whether this selection includes direction index `d` (0 = a-to-b, 1 = b-to-a).
    pub fn includes(self, d: usize) -> bool {
        matches!(
            (self, d),
            (Direction::Both, _) | (Direction::AToB, 0) | (Direction::BToA, 1)
        )
    }
}

impl FromStr for Direction {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "both" => Direction::Both,
            "a-to-b" => Direction::AToB,
            "b-to-a" => Direction::BToA,
            _ => bail!("direction must be both, a-to-b or b-to-a, not {s:?}"),
        })
    }
}

/// A link's state. `Down` passes nothing either way; `Blackhole` silently drops the
/// selected direction(s). Both also drop frames still in flight when they are due to leave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkState {
    #[default]
    Up,
    Down,
    Blackhole(Direction),
}

impl LinkState {
    pub fn parse(state: &str, dir: Option<&str>) -> Result<LinkState> {
        Ok(match state {
            "up" => LinkState::Up,
            "down" => LinkState::Down,
            "blackhole" => {
                LinkState::Blackhole(dir.map(str::parse).transpose()?.unwrap_or_default())
            }
            _ => bail!("state must be up, down or blackhole, not {state:?}"),
        })
    }

    /// A compact code for an atomic: 0 up, 1 down, 2..=4 blackhole both/a-to-b/b-to-a.
    pub fn code(self) -> u8 {
        match self {
            LinkState::Up => 0,
            LinkState::Down => 1,
            LinkState::Blackhole(Direction::Both) => 2,
            LinkState::Blackhole(Direction::AToB) => 3,
            LinkState::Blackhole(Direction::BToA) => 4,
        }
    }

    pub fn from_code(c: u8) -> LinkState {
        match c {
            1 => LinkState::Down,
            2 => LinkState::Blackhole(Direction::Both),
            3 => LinkState::Blackhole(Direction::AToB),
            4 => LinkState::Blackhole(Direction::BToA),
            _ => LinkState::Up,
        }
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkState::Up => f.write_str("up"),
            LinkState::Down => f.write_str("down"),
            LinkState::Blackhole(Direction::Both) => f.write_str("blackhole both"),
            LinkState::Blackhole(Direction::AToB) => f.write_str("blackhole a-to-b"),
            LinkState::Blackhole(Direction::BToA) => f.write_str("blackhole b-to-a"),
        }
    }
}

/// One bridged link: frames received on `a_iface` leave on `b_iface` and vice versa.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    pub name: String,
    pub a_iface: String,
    pub b_iface: String,
    /// Initial state: `up` (default), `down` or `blackhole`.
    #[serde(default = "default_state")]
    pub state: String,
    /// Direction for an initial `blackhole` state.
    #[serde(default)]
    pub blackhole_dir: Direction,
    /// Parameters for both directions (exclusive with `a_to_b` / `b_to_a`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub both: Option<DirParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_to_b: Option<DirParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_to_a: Option<DirParams>,
}

fn default_state() -> String {
    "up".into()
}

/// The parameters of direction `d` (0 = a-to-b, 1 = b-to-a) of a link given as `both`,
/// `a_to_b` and `b_to_a`: the direction's own, else `both`, else the defaults. The one rule
/// for the emulator's config and the scenario files.
pub fn dir_params(
    both: Option<DirParams>,
    a_to_b: Option<DirParams>,
    b_to_a: Option<DirParams>,
    d: usize,
) -> DirParams {
    let specific = if d == 0 { a_to_b } else { b_to_a };
    specific.or(both).unwrap_or_default()
}

impl LinkConfig {
    /// Parameters of direction `d` (0 = a-to-b, 1 = b-to-a).
    pub fn dir_params(&self, d: usize) -> DirParams {
        dir_params(self.both, self.a_to_b, self.b_to_a, d)
    }

    pub fn initial_state(&self) -> Result<LinkState> {
        let dir = match self.blackhole_dir {
            Direction::Both => "both",
            Direction::AToB => "a-to-b",
            Direction::BToA => "b-to-a",
        };
        LinkState::parse(&self.state, Some(dir))
    }
}

/// What a scheduled event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Up,
    Down,
    Blackhole,
    Set,
}

/// A change applied at a fixed time after the emulator starts forwarding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub at: Dur,
    pub link: String,
    pub action: Action,
    #[serde(default)]
    pub direction: Direction,
    /// The parameters changed by a `set` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<DirPatch>,
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Path of the control socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    #[serde(default, rename = "link")]
    pub links: Vec<LinkConfig>,
    #[serde(default, rename = "event", skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).context("parsing the emulator config")?;
        c.validate()?;
        Ok(c)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(!self.links.is_empty(), "no [[link]] configured");
        let mut names = std::collections::HashSet::new();
        let mut ifaces = std::collections::HashSet::new();
        for l in &self.links {
            ensure!(names.insert(&l.name), "duplicate link name {:?}", l.name);
            for i in [&l.a_iface, &l.b_iface] {
                ensure!(ifaces.insert(i), "interface {i:?} used twice");
            }
            ensure!(
                l.both.is_none() || (l.a_to_b.is_none() && l.b_to_a.is_none()),
                "link {:?}: give either `both` or `a_to_b`/`b_to_a`",
                l.name
            );
            l.initial_state()?;
            for d in 0..2 {
                l.dir_params(d)
                    .validate()
                    .with_context(|| format!("link {:?}", l.name))?;
            }
        }
        for e in &self.events {
            ensure!(
                names.contains(&e.link),
                "event at {} names unknown link {:?}",
                e.at,
                e.link
            );
            ensure!(
                (e.action == Action::Set) == e.params.is_some(),
                "event at {}: `params` goes with action = \"set\" only",
                e.at
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("30ms".parse::<Dur>().unwrap().0, Duration::from_millis(30));
        assert_eq!(
            "1.5s".parse::<Dur>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!(
            "250us".parse::<Dur>().unwrap().0,
            Duration::from_micros(250)
        );
        assert_eq!("0".parse::<Dur>().unwrap().0, Duration::ZERO);
        assert_eq!("50mbit".parse::<Rate>().unwrap().0, 50_000_000);
        assert_eq!("1.5Gbit".parse::<Rate>().unwrap().0, 1_500_000_000);
        assert!("50".parse::<Rate>().is_err());
        assert_eq!(
            "100pkt".parse::<QueueLimit>().unwrap(),
            QueueLimit::Packets(100)
        );
        assert_eq!(
            "64000B".parse::<QueueLimit>().unwrap(),
            QueueLimit::Bytes(64000)
        );
        assert_eq!(
            "100ms".parse::<QueueLimit>().unwrap(),
            QueueLimit::Time(Duration::from_millis(100))
        );
    }

    #[test]
    fn full_config_round_trips() {
        let text = r#"
            [[link]]
            name = "a"
            a_iface = "ea0"
            b_iface = "eb0"
            [link.a_to_b]
            delay = "10ms"
            rate = "50mbit"
            queue = "100ms"
            loss = 0.1
            [[link]]
            name = "b"
            a_iface = "ea1"
            b_iface = "eb1"
            state = "blackhole"
            blackhole_dir = "b-to-a"
            [[event]]
            at = "20s"
            link = "a"
            action = "blackhole"
            direction = "a-to-b"
            [[event]]
            at = "1.5s"
            link = "b"
            action = "set"
            params = { delay = "30ms" }
        "#;
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.links[0].dir_params(0).rate, Some(Rate(50_000_000)));
        assert_eq!(c.links[0].dir_params(1), DirParams::default());
        assert_eq!(
            c.links[1].initial_state().unwrap(),
            LinkState::Blackhole(Direction::BToA)
        );
        assert_eq!(c.events[1].at.0, Duration::from_millis(1500));
        let again = Config::from_toml(&c.to_toml().unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn rejects_bad_configs() {
        let base = "[[link]]\nname = \"a\"\na_iface = \"x\"\nb_iface = \"y\"\n";
        assert!(Config::from_toml(&format!("{base}[link.both]\nloss = 1.5\n")).is_err());
        assert!(Config::from_toml(&format!("{base}[link.both]\nbogus = 1\n")).is_err());
        assert!(Config::from_toml(&format!(
            "{base}[[event]]\nat = \"1s\"\nlink = \"zz\"\naction = \"down\"\n"
        ))
        .is_err());
        assert!(Config::from_toml("").is_err());
    }

    #[test]
    fn patches_apply() {
        let mut p = DirParams::default();
        let mut patch = DirPatch::default();
        patch.set("delay", "30ms").unwrap();
        patch.set("loss", "10%").unwrap();
        patch.set("rate", "8mbit").unwrap();
        p.apply(&patch);
        assert_eq!(p.delay.0, Duration::from_millis(30));
        assert!((p.loss - 0.1).abs() < 1e-12);
        assert_eq!(p.rate, Some(Rate(8_000_000)));
        let mut unlimit = DirPatch::default();
        unlimit.set("rate", "0").unwrap();
        p.apply(&unlimit);
        assert_eq!(p.rate, None);
        assert!(patch.set("nope", "1").is_err());
    }
}
