//! Path schedulers of the multipath WAN tunnel.
//!
//! A worker asks the [`Scheduler`] of a packet's traffic class which WAN path(s) to send the
//! packet on. Every worker owns its own schedulers (no sharing, locks or atomics in here). The
//! caller passes the current state of the paths on every call as a slice of [`PathView`] (slice
//! index = path id) and the time as `now_ns` of a monotonic clock.
//!
//! Rules common to all schedulers:
//! - Only the first [`MAX_PATHS`] entries of the path slice are considered.
//! - A path that is not `usable` is never chosen. [`Choice::None`] is returned only when no path
//!   is usable.
//! - The *candidate set* is the usable non-backup paths or, only when there is none, the usable
//!   backup paths. Every scheduler chooses from the candidate set alone, with one exception:
//!   `redundant` sends its second copy on a backup path when exactly one non-backup path is usable.
//! - A path's `rate_bps` is used as a weight or a drain rate; a rate of 0 counts as 1 bit/s, so
//!   such a path is chosen only when nothing better is available.
//! - `pick` never allocates: per-path state lives in fixed arrays of [`MAX_PATHS`] entries; the
//!   only heap data (the subnet table of `source-subnet`) is built once in [`Scheduler::new`].
#![deny(clippy::unwrap_used, clippy::expect_used)]

/// Maximum number of WAN paths a scheduler considers; path ids are `0..MAX_PATHS`.
pub const MAX_PATHS: usize = 16;

const NS_PER_US: u64 = 1_000;
const NS_PER_S: u64 = 1_000_000_000;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// Odd 64-bit constant (2^64 / golden ratio) used to derive per-path hash inputs.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
// Domain tags so that a flow, a subnet and a bare source address never share hash inputs.
const TAG_FLOW: u64 = 0x666c_6f77_0000_0001;
const TAG_SUBNET: u64 = 0x7375_626e_0000_0002;
const TAG_SOURCE: u64 = 0x7372_6361_0000_0003;

/// State of one WAN path as the caller sees it at the time of the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathView {
    /// The path is up and its next hop is resolved. A path that is not usable is never chosen.
    pub usable: bool,
    /// A backup path is used only when no non-backup path is usable (see the module rules for the
    /// one exception, `redundant`).
    pub backup: bool,
    /// Lower is preferred; orders paths for the `backup` scheduler.
    pub priority: u8,
    /// Effective rate in bit/s: the configured rate, lowered by the management thread when the
    /// path's queueing delay grows.
    pub rate_bps: u64,
    /// Current one-way delay estimate in microseconds, queueing included. Only differences between
    /// paths matter.
    pub delay_us: u32,
    /// Weight of the per-flow schedulers' hashing: the configured rate, which does not change
    /// at run time, so a flow stays on its path while the effective rate moves (0: use
    /// `rate_bps`).
    pub weight: u64,
    /// The path's real backlog in ns when its shaper holds the queue: what every worker has
    /// queued for it and what it was charged for beyond now, at its shaped rate. `wlb` and
    /// `minrtt` use it in place of their own model, which sees only this worker's packets
    /// (`None`: not shaped, the model is all there is).
    pub backlog_ns: Option<u64>,
}

/// What a scheduler needs to know about a packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    /// Bytes on the wire (drives the byte accounting of `wlb` and `minrtt`).
    pub len: u32,
    /// IPv4 source address as a host-order `u32` (`u32::from(Ipv4Addr)`); `source-subnet` matches
    /// it against its table, which uses the same order. An IPv6 address folded to 32 bits.
    pub src: u32,
    /// IPv4 destination address as a host-order `u32` (IPv6: folded).
    pub dst: u32,
    /// The addresses are folded IPv6 ones: `source-subnet`'s bindings (IPv4 subnets) never
    /// match them, and each source keeps a path of its own by hash.
    pub ipv6: bool,
    /// IP protocol number.
    pub proto: u8,
    /// Source port; used only when `proto` is TCP (6) or UDP (17).
    pub sport: u16,
    /// Destination port; used only when `proto` is TCP (6) or UDP (17).
    pub dport: u16,
}

/// The path(s) to send a packet on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// No path is usable: the caller drops the packet and counts it.
    None,
    /// Send on this path.
    One(u8),
    /// Send a copy on each of these two distinct paths (only `redundant`); the first is the better.
    Two(u8, u8),
}

/// Which scheduler to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `flow-hash`: per-flow weighted rendezvous hashing; see [`Scheduler`].
    FlowHash,
    /// `source-subnet`: `(network, prefix_len, path)` bindings of LAN source subnets to paths.
    /// `network` is a host-order IPv4 address; bits past `prefix_len` are ignored, a `prefix_len`
    /// above 32 counts as 32, and of two identical prefixes the first listed wins. A binding to a
    /// path id that the caller's slice does not have behaves like a binding to an unusable path.
    SourceSubnet(Vec<(u32, u8, u8)>),
    /// `wlb`: per-packet earliest-delivery-first in bytes; see [`Scheduler`].
    Wlb,
    /// `minrtt`: lowest delay while under rate, spill over token buckets; see [`Scheduler`].
    MinRtt,
    /// `backup`: active/standby by priority; see [`Scheduler`].
    Backup,
    /// `redundant`: every packet on the two best paths; see [`Scheduler`].
    Redundant,
}

/// Tunables. [`SchedConfig::default`] gives the values documented on each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedConfig {
    /// Seed of the `flow-hash` and `source-subnet` hashes. Give every worker the same seed so that
    /// a flow maps to the same path whichever worker handles it. Default `0`.
    pub hash_seed: u64,
    /// `wlb`: bound of the virtual backlog, in ns (default 50 ms): no path's modelled delivery time
    /// may lie more than this beyond `now` + the largest delay among the candidate paths.
    pub wlb_backlog_cap_ns: u64,
    /// `wlb`: the previously chosen path keeps the packet unless another path would deliver it more
    /// than this many ns earlier (default 0.5 ms), so noisy delay estimates do not make the
    /// scheduler flip between paths of near-equal delay. `0` disables it.
    pub wlb_hysteresis_ns: u64,
    /// `minrtt`: each token bucket holds at most this many ns worth of its path's rate (default
    /// 1 ms)…
    pub minrtt_burst_ns: u64,
    /// …and never less than this many bytes (default 3000, two full-size packets).
    pub minrtt_min_burst_bytes: u32,
}

impl Default for SchedConfig {
    fn default() -> Self {
        Self {
            hash_seed: 0,
            wlb_backlog_cap_ns: 50_000_000,
            wlb_hysteresis_ns: 500_000,
            minrtt_burst_ns: 1_000_000,
            minrtt_min_burst_bytes: 3000,
        }
    }
}

/// The path scheduler of one traffic class on one worker.
///
/// Built once; `pick` is then called per packet and never allocates. The rules of each kind:
///
/// - **flow-hash** — A flow is the 5-tuple (addresses, protocol, ports) for TCP and UDP, and the
///   addresses plus protocol for any other protocol. Each flow goes to the candidate path with the
///   highest weighted rendezvous (highest-random-weight) score: every path draws a pseudo-random
///   `u` in (0,1) from a hash of (seed, flow, path id) and the path minimising `-ln(u) / rate_bps`
///   wins. This keeps no per-flow state, sends a flow to the same path on every packet, splits many
///   flows over the paths in proportion to their rates, and when a path stops being usable moves
///   only the flows that were on it (they return to it when it is usable again). A change of a
///   path's rate moves only flows between that path and the others.
/// - **source-subnet** — The source address is matched against the subnet table, longest prefix
///   first. A matched subnet goes to its bound path when that path is a candidate; otherwise the
///   whole subnet goes to the path chosen by the flow-hash rule with the subnet as key
///   (deterministic, weighted by rate), and comes back to its own path on the first packet after
///   that path is a candidate again. An unmatched source goes to the path chosen by the same rule
///   with the source address as key. Nothing is remembered between packets. (A subnet bound to a
///   backup path is served by that path only while no non-backup path is usable.)
/// - **wlb** — Per packet, earliest delivery first, in bytes. For each candidate path `p` the
///   scheduler keeps a virtual `busy_until[p]`: the time at which `p` would finish sending what it
///   was given. The packet would be delivered at
///   `max(now, busy_until[p]) + len·8/rate_bps[p] + delay[p]`; the earliest wins, the previously
///   chosen path winning unless another one is earlier by more than `wlb_hysteresis_ns`. The
///   chosen path's `busy_until` becomes `max(now, busy_until) + len·8/rate_bps` (exact: the
///   sub-nanosecond remainder is carried to the path's next packet). Under light load everything
///   goes to the lowest-delay path; once its backlog makes another path deliver earlier, traffic
///   spreads, and under saturation each path gets a byte share equal to its share of the total
///   rate. Flows are never pinned. Backlog cap: when the chosen path's delivery horizon
///   (`busy_until + delay`) passes `now + max candidate delay + wlb_backlog_cap_ns`, every
///   candidate's `busy_until` is moved back by the excess. Moving all of them by the same amount
///   keeps the rate-proportional split under overload (clamping only the path that hit the cap
///   would hand it all of the excess), and measuring against the largest delay keeps a path whose
///   delay exceeds the others' by more than the cap in use. The model thus never runs more than
///   the cap (plus the delay spread) ahead of `now`. A path that is not a candidate has its state
///   cleared, so it starts empty when it comes back. A shaped path (`backlog_ns` given) starts
///   at `now + backlog_ns` instead of its `busy_until`: its shaper's queue is the real one, shared
///   by every worker, where the model sees only this worker's packets.
/// - **minrtt** — Every path has a token bucket filled at `rate_bps` and holding at most
///   `max(minrtt_min_burst_bytes, minrtt_burst_ns of rate)` (full when first seen). The packet goes
///   to the lowest-delay candidate whose bucket holds the packet's bytes, and those bytes are
///   taken from it; so traffic stays on the lowest-delay path while it is under its rate and only
///   the excess spills, in order of delay, to the next paths. If no bucket holds enough, the
///   lowest-delay candidate is used anyway (its bucket stays empty). A shaped path (`backlog_ns`
///   given) holds the packet while its real backlog plus the packet fits in the burst.
/// - **backup** — Active/standby: the candidate with the lowest `priority`, then the lowest id
///   (never the measured delay, which moves with the load and would make the pair flip). Backup
///   paths are candidates only when no non-backup path is usable.
/// - **redundant** — Every packet is sent on the two best usable paths, ranked non-backup before
///   backup, then by lowest delay, then lowest id: the two best non-backup paths; the only usable
///   non-backup path and the best backup path; or, with no non-backup path usable, the two best
///   backup paths. [`Choice::One`] when only one path is usable.
///
/// Ties are broken towards the lowest path id.
#[derive(Clone, Debug)]
pub struct Scheduler {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    FlowHash { key_seed: u64 },
    SourceSubnet(SubnetTable),
    Wlb(Wlb),
    MinRtt(MinRtt),
    Backup,
    Redundant,
}

impl Scheduler {
    /// Builds a scheduler of the given kind. This is the only place that allocates.
    #[must_use]
    pub fn new(kind: Kind, cfg: &SchedConfig) -> Self {
        let inner = match kind {
            Kind::FlowHash => Inner::FlowHash {
                key_seed: mix64(cfg.hash_seed ^ TAG_FLOW),
            },
            Kind::SourceSubnet(bindings) => {
                Inner::SourceSubnet(SubnetTable::new(&bindings, cfg.hash_seed))
            }
            Kind::Wlb => Inner::Wlb(Wlb {
                paths: [WlbPath::default(); MAX_PATHS],
                prev: None,
                cap_ns: cfg.wlb_backlog_cap_ns,
                hysteresis_ns: cfg.wlb_hysteresis_ns,
            }),
            Kind::MinRtt => Inner::MinRtt(MinRtt {
                // u64::MAX is clamped to the burst on first use: buckets start full.
                tokens: [u64::MAX; MAX_PATHS],
                last_ns: [0; MAX_PATHS],
                burst_ns: cfg.minrtt_burst_ns,
                min_burst_nbits: bytes_to_nbits(cfg.minrtt_min_burst_bytes),
            }),
            Kind::Backup => Inner::Backup,
            Kind::Redundant => Inner::Redundant,
        };
        Self { inner }
    }

    /// Chooses the path(s) for `pkt` given the current path states (`paths[i]` is path `i`) at
    /// time `now_ns`. Does not allocate.
    #[must_use]
    pub fn pick(&mut self, paths: &[PathView], pkt: &Packet, now_ns: u64) -> Choice {
        let paths = &paths[..paths.len().min(MAX_PATHS)];
        let cands = candidates(paths);
        match &mut self.inner {
            Inner::FlowHash { key_seed } => hrw(paths, cands, flow_key(*key_seed, pkt)),
            Inner::SourceSubnet(table) => table.pick(paths, cands, pkt.src, !pkt.ipv6),
            Inner::Wlb(w) => w.pick(paths, cands, pkt.len, now_ns),
            Inner::MinRtt(m) => m.pick(paths, cands, pkt.len, now_ns),
            Inner::Backup => {
                // Active/standby is an operator's order: priority, then the order of
                // the paths, never the measured delay (which moves with the load).
                let best = Bits(cands).min_by_key(|&i| (paths[i].priority, i));
                best.map_or(Choice::None, one)
            }
            Inner::Redundant => redundant(paths),
        }
    }

    /// True for the per-flow schedulers (`flow-hash`, `source-subnet`): a flow stays on one path,
    /// so the far end can deliver its packets at once instead of passing them through the
    /// reorder buffer.
    #[must_use]
    pub fn bypasses_reorder(&self) -> bool {
        matches!(self.inner, Inner::FlowHash { .. } | Inner::SourceSubnet(_))
    }
}

fn one(i: usize) -> Choice {
    // `i < MAX_PATHS <= 256` by construction of every candidate mask.
    Choice::One(i as u8)
}

/// Bit `i` set = path `i` is a candidate: the usable non-backup paths, or the usable backup
/// paths when there is no usable non-backup path.
fn candidates(paths: &[PathView]) -> u32 {
    let (mut primary, mut standby) = (0u32, 0u32);
    for (i, p) in paths.iter().enumerate() {
        if p.usable {
            if p.backup {
                standby |= 1 << i;
            } else {
                primary |= 1 << i;
            }
        }
    }
    if primary != 0 {
        primary
    } else {
        standby
    }
}

/// Iterates over the set bits of a path mask, lowest id first.
struct Bits(u32);

impl Iterator for Bits {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

/// 64-bit finaliser (splitmix64 constants): a bijection with full avalanche, so distinct inputs
/// give independent-looking outputs.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A 32-bit hash of the packet's flow (the shaper's flow queues).
#[must_use]
pub fn flow_hash(pkt: &Packet) -> u32 {
    (flow_key(TAG_FLOW, pkt) >> 32) as u32
}

fn flow_key(key_seed: u64, pkt: &Packet) -> u64 {
    let ports = if pkt.proto == IPPROTO_TCP || pkt.proto == IPPROTO_UDP {
        (u64::from(pkt.sport) << 16) | u64::from(pkt.dport)
    } else {
        0
    };
    let addrs = (u64::from(pkt.src) << 32) | u64::from(pkt.dst);
    mix64(mix64(key_seed ^ addrs) ^ ((u64::from(pkt.proto) << 32) | ports))
}

/// Weighted rendezvous hashing: each candidate draws `u` in (0,1) from `(key, id)` and the one
/// with the smallest `-ln(u) / rate` wins. These are exponential variables with rates equal to
/// the weights, so path `p` wins with probability `rate_p / Σ rate`; each path's draw depends on
/// nothing but the key and its own id, so removing a path only moves the keys it had won.
fn hrw(paths: &[PathView], cands: u32, key: u64) -> Choice {
    let mut best: Option<(usize, f64)> = None;
    for i in Bits(cands) {
        let h = mix64(key.wrapping_add((i as u64 + 1).wrapping_mul(GOLDEN)));
        // Top 53 bits, centred in their interval: never 0 or 1, so ln is finite and negative.
        let u = ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        let weight = match paths[i].weight {
            0 => paths[i].rate_bps,
            w => w,
        };
        let score = -u.ln() / weight.max(1) as f64;
        if best.is_none_or(|(_, s)| score < s) {
            best = Some((i, score));
        }
    }
    best.map_or(Choice::None, |(i, _)| one(i))
}

fn delay_ns(p: &PathView) -> u64 {
    u64::from(p.delay_us) * NS_PER_US
}

/// Longest-prefix-match table of `source-subnet`, built once.
#[derive(Clone, Debug)]
struct SubnetTable {
    /// `(network, path)`, grouped by prefix length (longest first), sorted by network in a group.
    entries: Vec<(u32, u8)>,
    /// `(prefix_len, first entry, one past last entry)`, longest prefix first.
    groups: Vec<(u8, usize, usize)>,
    subnet_seed: u64,
    source_seed: u64,
}

fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl SubnetTable {
    fn new(bindings: &[(u32, u8, u8)], seed: u64) -> Self {
        let mut all: Vec<(u8, u32, u8)> = bindings
            .iter()
            .map(|&(net, len, path)| {
                let len = len.min(32);
                (len, net & prefix_mask(len), path)
            })
            .collect();
        // Stable sort then dedup keeps the first-listed binding of a duplicated prefix.
        all.sort_by_key(|&(len, net, _)| (u8::MAX - len, net));
        all.dedup_by_key(|&mut (len, net, _)| (len, net));
        let mut groups: Vec<(u8, usize, usize)> = Vec::new();
        for (idx, &(len, _, _)) in all.iter().enumerate() {
            match groups.last_mut() {
                Some(g) if g.0 == len => g.2 = idx + 1,
                _ => groups.push((len, idx, idx + 1)),
            }
        }
        Self {
            entries: all.iter().map(|&(_, net, path)| (net, path)).collect(),
            groups,
            subnet_seed: mix64(seed ^ TAG_SUBNET),
            source_seed: mix64(seed ^ TAG_SOURCE),
        }
    }

    /// Longest match: `(network, prefix_len, path)`.
    fn lookup(&self, src: u32) -> Option<(u32, u8, u8)> {
        self.groups.iter().find_map(|&(len, start, end)| {
            let net = src & prefix_mask(len);
            let group = self.entries.get(start..end)?;
            let at = group.binary_search_by_key(&net, |&(n, _)| n).ok()?;
            group.get(at).map(|&(n, path)| (n, len, path))
        })
    }

    /// The path for source `src`: its binding's when `bindable` (an IPv4
    /// source), else one by the source's hash.
    fn pick(&self, paths: &[PathView], cands: u32, src: u32, bindable: bool) -> Choice {
        match self.lookup(src).filter(|_| bindable) {
            Some((_, _, path)) if usize::from(path) < MAX_PATHS && cands & (1 << path) != 0 => {
                Choice::One(path)
            }
            Some((net, len, _)) => {
                let key = mix64(self.subnet_seed ^ ((u64::from(net) << 8) | u64::from(len)));
                hrw(paths, cands, key)
            }
            None => hrw(paths, cands, mix64(self.source_seed ^ u64::from(src))),
        }
    }
}

/// Per-path state of `wlb`.
#[derive(Clone, Copy, Debug, Default)]
struct WlbPath {
    /// Virtual time (ns) at which the path will have sent everything it was given.
    busy_until: u64,
    /// Remainder of `bits·1e9 / rate` not yet counted in `busy_until`, in units of `1/rate` ns,
    /// so that many small packets are not systematically under-counted by integer division.
    carry: u64,
}

#[derive(Clone, Debug)]
struct Wlb {
    paths: [WlbPath; MAX_PATHS],
    prev: Option<usize>,
    cap_ns: u64,
    hysteresis_ns: u64,
}

impl Wlb {
    fn pick(&mut self, paths: &[PathView], cands: u32, len: u32, now: u64) -> Choice {
        // Forget paths that cannot be chosen now: the model's backlog for a path that went
        // away is not in the real path any more when it comes back.
        for (i, st) in self.paths.iter_mut().enumerate() {
            if cands & (1 << i) == 0 {
                *st = WlbPath::default();
            }
        }
        let bits_ns = u64::from(len).saturating_mul(8 * NS_PER_S);
        // (path, score with hysteresis, new busy_until, new carry)
        let mut best: Option<(usize, u64, u64, u64)> = None;
        for i in Bits(cands) {
            let st = self.paths[i];
            let rate = paths[i].rate_bps.max(1);
            let num = bits_ns.saturating_add(st.carry);
            let start = match paths[i].backlog_ns {
                Some(b) => now.saturating_add(b),
                None => st.busy_until.max(now),
            };
            let done = start.saturating_add(num / rate);
            let deliver = done.saturating_add(delay_ns(&paths[i]));
            let score = if self.prev == Some(i) {
                deliver.saturating_sub(self.hysteresis_ns)
            } else {
                deliver
            };
            if best.is_none_or(|(_, s, _, _)| score < s) {
                best = Some((i, score, done, num % rate));
            }
        }
        let Some((c, _, done, carry)) = best else {
            self.prev = None;
            return Choice::None;
        };
        self.paths[c] = WlbPath {
            busy_until: done,
            carry,
        };
        self.prev = Some(c);
        let max_delay = Bits(cands).map(|i| delay_ns(&paths[i])).max().unwrap_or(0);
        let limit = now.saturating_add(max_delay).saturating_add(self.cap_ns);
        let horizon = done.saturating_add(delay_ns(&paths[c]));
        if horizon > limit {
            let excess = horizon - limit;
            for i in Bits(cands) {
                let b = &mut self.paths[i].busy_until;
                *b = b.saturating_sub(excess);
            }
        }
        one(c)
    }
}

/// Bytes to nano-bits (1e-9 bit), the token unit of `minrtt`: `rate_bps × ns` is then exactly the
/// refill over `ns` nanoseconds, with no division.
fn bytes_to_nbits(bytes: u32) -> u64 {
    u64::from(bytes).saturating_mul(8 * NS_PER_S)
}

#[derive(Clone, Debug)]
struct MinRtt {
    /// Tokens per path, in nano-bits.
    tokens: [u64; MAX_PATHS],
    last_ns: [u64; MAX_PATHS],
    burst_ns: u64,
    min_burst_nbits: u64,
}

impl MinRtt {
    fn pick(&mut self, paths: &[PathView], cands: u32, len: u32, now: u64) -> Choice {
        let cost = bytes_to_nbits(len);
        // (path, delay) of the lowest-delay candidate, and of the lowest-delay one with tokens.
        let mut lowest: Option<(usize, u32)> = None;
        let mut under_rate: Option<(usize, u32)> = None;
        for i in Bits(cands) {
            let rate = paths[i].rate_bps.max(1);
            let burst = rate.saturating_mul(self.burst_ns).max(self.min_burst_nbits);
            let elapsed = now.saturating_sub(self.last_ns[i]);
            self.tokens[i] = self.tokens[i]
                .saturating_add(rate.saturating_mul(elapsed))
                .min(burst);
            self.last_ns[i] = now;
            let d = paths[i].delay_us;
            if lowest.is_none_or(|(_, bd)| d < bd) {
                lowest = Some((i, d));
            }
            // A shaped path is under its rate while its real backlog, this
            // packet included, fits in the burst.
            let room = match paths[i].backlog_ns {
                Some(b) => b.saturating_mul(rate).saturating_add(cost) <= burst,
                None => self.tokens[i] >= cost,
            };
            if room && under_rate.is_none_or(|(_, bd)| d < bd) {
                under_rate = Some((i, d));
            }
        }
        match under_rate.or(lowest) {
            Some((c, _)) => {
                self.tokens[c] = self.tokens[c].saturating_sub(cost);
                one(c)
            }
            None => Choice::None,
        }
    }
}

/// Two lowest-delay paths of a mask, ties to the lowest id.
fn two_lowest_delay(paths: &[PathView], mask: u32) -> [Option<usize>; 2] {
    let mut best = [None::<usize>; 2];
    for i in Bits(mask) {
        let d = paths[i].delay_us;
        if best[0].is_none_or(|b| d < paths[b].delay_us) {
            best = [Some(i), best[0]];
        } else if best[1].is_none_or(|b| d < paths[b].delay_us) {
            best[1] = Some(i);
        }
    }
    best
}

fn redundant(paths: &[PathView]) -> Choice {
    let (mut primary, mut standby) = (0u32, 0u32);
    for (i, p) in paths.iter().enumerate() {
        if p.usable {
            if p.backup {
                standby |= 1 << i;
            } else {
                primary |= 1 << i;
            }
        }
    }
    let [p0, p1] = two_lowest_delay(paths, primary);
    let [b0, b1] = two_lowest_delay(paths, standby);
    let mut ranked = [p0, p1, b0, b1].into_iter().flatten();
    match (ranked.next(), ranked.next()) {
        (Some(a), Some(b)) => Choice::Two(a as u8, b as u8),
        (Some(a), None) => one(a),
        _ => Choice::None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MBIT: u64 = 1_000_000;

    fn path(rate_mbit: u64, delay_ms: u32) -> PathView {
        PathView {
            usable: true,
            backup: false,
            priority: 0,
            rate_bps: rate_mbit * MBIT,
            delay_us: delay_ms * 1000,
            weight: 0,
            backlog_ns: None,
        }
    }

    fn pkt(len: u32) -> Packet {
        Packet {
            len,
            src: 0x0a00_0001,
            dst: 0x0a01_0001,
            proto: IPPROTO_UDP,
            sport: 1000,
            dport: 2000,
            ipv6: false,
        }
    }

    fn id(c: Choice) -> usize {
        match c {
            Choice::One(i) => usize::from(i),
            other => panic!("expected One, got {other:?}"),
        }
    }

    fn rate_shares(paths: &[PathView]) -> Vec<f64> {
        let total: u64 = paths.iter().map(|p| p.rate_bps).sum();
        paths
            .iter()
            .map(|p| p.rate_bps as f64 / total as f64)
            .collect()
    }

    fn assert_shares(got: &[u64], want: &[f64], what: &str) {
        let total: u64 = got.iter().sum();
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let share = g as f64 / total as f64;
            assert!(
                (share - w).abs() < 0.02,
                "{what}: path {i} share {share:.4} want {w:.4} (all {got:?})"
            );
        }
    }

    /// Offers `n` packets to a fresh scheduler, arrivals spaced so that the offered bit rate is
    /// `load_bps`, and returns the bytes sent per path.
    fn offer(
        kind: Kind,
        cfg: &SchedConfig,
        paths: &[PathView],
        load_bps: f64,
        n: usize,
        mut size: impl FnMut(usize) -> u32,
    ) -> Vec<u64> {
        let mut s = Scheduler::new(kind, cfg);
        let mut bytes = vec![0u64; paths.len()];
        let mut t = 1e9;
        for k in 0..n {
            let len = size(k);
            bytes[id(s.pick(paths, &pkt(len), t as u64))] += u64::from(len);
            t += f64::from(len) * 8.0 * 1e9 / load_bps;
        }
        bytes
    }

    fn random_sizes(seed: u64) -> impl FnMut(usize) -> u32 {
        let mut rng = fastrand::Rng::with_seed(seed);
        move |_| rng.u32(64..=1500)
    }

    fn total_bps(paths: &[PathView]) -> f64 {
        paths.iter().map(|p| p.rate_bps as f64).sum()
    }

    // ---- wlb ----

    /// Under 1.2× overload, byte shares match rate shares (within 2 points), including ratios an
    /// integer weight would floor (30:8), a fast path with the higher delay, and three paths.
    #[test]
    fn wlb_saturated_byte_shares_follow_rates() {
        let cases: [&[PathView]; 7] = [
            &[path(30, 10), path(8, 30)],
            &[path(300, 10), path(80, 30)],
            &[path(100, 20), path(100, 20)],
            &[path(100, 10), path(10, 30)],
            &[path(10, 10), path(100, 30)],
            &[path(50, 30), path(20, 10), path(100, 20)],
            &[path(30, 10), path(8, 100)],
        ];
        for (n, paths) in cases.iter().enumerate() {
            let cfg = SchedConfig::default();
            let load = 1.2 * total_bps(paths);
            let got = offer(
                Kind::Wlb,
                &cfg,
                paths,
                load,
                100_000,
                random_sizes(n as u64),
            );
            assert_shares(&got, &rate_shares(paths), &format!("case {n}"));
        }
    }

    /// Byte accounting, not packet counting: with alternating 1500 B / 64 B packets a per-packet
    /// round robin would give one path ~96 % of the bytes.
    #[test]
    fn wlb_shares_are_bytes_not_packets() {
        for paths in [[path(100, 20), path(100, 20)], [path(30, 10), path(8, 30)]] {
            let load = 1.2 * total_bps(&paths);
            let cfg = SchedConfig::default();
            let sizes = |k: usize| if k.is_multiple_of(2) { 1500 } else { 64 };
            let got = offer(Kind::Wlb, &cfg, &paths, load, 100_000, sizes);
            assert_shares(&got, &rate_shares(&paths), "alternating sizes");
        }
    }

    /// At 20 % of the lowest-delay path's rate every packet goes to that path, wherever it is in
    /// the slice and whatever its rate.
    #[test]
    fn wlb_light_load_uses_lowest_delay_path_only() {
        let cases: [(&[PathView], usize); 3] = [
            (&[path(300, 10), path(80, 30)], 0),
            (&[path(80, 30), path(30, 10), path(300, 20)], 1),
            (&[path(8, 30), path(30, 12)], 1),
        ];
        for (paths, fast) in cases {
            let load = 0.2 * paths[fast].rate_bps as f64;
            let cfg = SchedConfig::default();
            let got = offer(Kind::Wlb, &cfg, paths, load, 100_000, random_sizes(7));
            let total: u64 = got.iter().sum();
            assert_eq!(got[fast], total, "{got:?}");
        }
    }

    /// A path that was not usable starts with an empty model when it comes back: right after a
    /// saturated period and a one-packet outage, the returning slow path is chosen at once.
    #[test]
    fn wlb_resets_path_state_when_it_comes_back() {
        let mut paths = [path(300, 10), path(80, 30)];
        let mut s = Scheduler::new(Kind::Wlb, &SchedConfig::default());
        let mut t = 1_000_000_000u64;
        for _ in 0..50_000 {
            let _ = s.pick(&paths, &pkt(1500), t);
            t += 26_000; // 1500 B every 26 µs ≈ 460 Mbit/s, above 380
        }
        paths[1].usable = false;
        assert_eq!(id(s.pick(&paths, &pkt(1500), t)), 0);
        paths[1].usable = true;
        assert_eq!(id(s.pick(&paths, &pkt(1500), t + 26_000)), 1);
    }

    /// The backlog cap bounds the model: after 2 s offered at 3× the only path's rate, the model
    /// has forgotten the excess once the cap has elapsed, and light traffic goes back to the
    /// lowest-delay path rather than to the newly usable slower one.
    #[test]
    fn wlb_backlog_cap_bounds_the_model() {
        let mut paths = [path(100, 10), path(100, 30)];
        paths[1].usable = false;
        let cfg = SchedConfig::default();
        let mut s = Scheduler::new(Kind::Wlb, &cfg);
        let mut t = 1_000_000_000u64;
        for _ in 0..50_000 {
            let _ = s.pick(&paths, &pkt(1500), t);
            t += 40_000; // 300 Mbit/s
        }
        paths[1].usable = true;
        t += cfg.wlb_backlog_cap_ns + 1_000_000;
        assert_eq!(id(s.pick(&paths, &pkt(100), t)), 0);
    }

    /// Two workers' `wlb` schedulers over shaped paths: each sees the
    /// paths' shared backlog, so together they split by rate as one does.
    #[test]
    fn wlb_two_workers_on_shaped_paths_split_by_rate() {
        let mut paths = [path(30, 10), path(8, 30)];
        let mut workers = [
            Scheduler::new(Kind::Wlb, &SchedConfig::default()),
            Scheduler::new(Kind::Wlb, &SchedConfig::default()),
        ];
        // Each path's queue: bytes waiting, drained at its rate.
        let mut queued = [0f64; 2];
        let mut bytes = [0u64; 2];
        let mut rng = fastrand::Rng::with_seed(3);
        let (mut now, end) = (0u64, 5 * NS_PER_S);
        let gap = 1_000_000_000 * 1500 * 8 / (2 * 38 * MBIT);
        while now < end {
            for (q, p) in queued.iter_mut().zip(&paths) {
                *q = (*q - p.rate_bps as f64 / 8.0 * gap as f64 / 1e9).max(0.0);
            }
            // Offered at twice the total, 80 % of it through worker 0; a
            // queue is dropped from past 50 ms (the shaper's AQM).
            let w = usize::from(rng.u32(0..10) >= 8);
            for (p, q) in paths.iter_mut().zip(&queued) {
                p.backlog_ns = Some((q * 8.0 / p.rate_bps as f64 * 1e9) as u64);
            }
            let c = id(workers[w].pick(&paths, &pkt(1500), now));
            let cap = paths[c].rate_bps as f64 / 8.0 * 0.05;
            if queued[c] < cap {
                queued[c] += 1500.0;
                bytes[c] += 1500;
            }
            now += gap;
        }
        let share = bytes[1] as f64 / (bytes[0] + bytes[1]) as f64;
        assert!((share - 8.0 / 38.0).abs() < 0.03, "path b's share {share}");
    }

    /// The hysteresis keeps the previous path while another is less than 0.5 ms earlier, and
    /// switches when the difference is larger (or immediately when the hysteresis is 0).
    #[test]
    fn wlb_hysteresis() {
        for (hyst, expect_after_swap) in [(500_000, 0), (0, 1)] {
            let cfg = SchedConfig {
                wlb_hysteresis_ns: hyst,
                ..SchedConfig::default()
            };
            let mut s = Scheduler::new(Kind::Wlb, &cfg);
            let mut paths = [path(100, 10), path(100, 10)];
            paths[1].delay_us += 200;
            assert_eq!(id(s.pick(&paths, &pkt(100), 1_000_000_000)), 0);
            paths[0].delay_us += 400; // now 0.2 ms worse than path 1
            let c = id(s.pick(&paths, &pkt(100), 1_001_000_000));
            assert_eq!(c, expect_after_swap, "hysteresis {hyst}");
            paths[0].delay_us += 1000; // now 1.2 ms worse
            assert_eq!(id(s.pick(&paths, &pkt(100), 1_002_000_000)), 1);
        }
    }

    // ---- flow-hash ----

    fn random_flow(rng: &mut fastrand::Rng) -> Packet {
        Packet {
            len: 100,
            src: rng.u32(..),
            dst: rng.u32(..),
            proto: if rng.bool() { IPPROTO_TCP } else { IPPROTO_UDP },
            sport: rng.u16(..),
            dport: rng.u16(..),
            ipv6: false,
        }
    }

    /// 10^5 random flows split within 2 points of the rate shares.
    #[test]
    fn flow_hash_splits_flows_by_rate() {
        let cases: [&[PathView]; 4] = [
            &[path(300, 10), path(80, 30)],
            &[path(30, 10), path(8, 30)],
            &[path(100, 10), path(100, 10)],
            &[path(50, 10), path(20, 10), path(100, 10)],
        ];
        for paths in cases {
            let mut s = Scheduler::new(Kind::FlowHash, &SchedConfig::default());
            let mut rng = fastrand::Rng::with_seed(1);
            let mut count = vec![0u64; paths.len()];
            for _ in 0..100_000 {
                count[id(s.pick(paths, &random_flow(&mut rng), 0))] += 1;
            }
            assert_shares(&count, &rate_shares(paths), "flow-hash");
        }
    }

    /// A flow maps to the same path on every packet, on every worker; ports matter only for TCP
    /// and UDP.
    /// The effective rate moves with the paths' queues; flows must not.
    #[test]
    fn flow_hash_ignores_effective_rate_changes_when_weighted() {
        let mut s = Scheduler::new(Kind::FlowHash, &SchedConfig::default());
        let mut paths = vec![path(30, 10), path(8, 30)];
        for p in &mut paths {
            p.weight = p.rate_bps;
        }
        let flows: Vec<Packet> = (0..1000u16)
            .map(|i| Packet {
                sport: i,
                ..pkt(1500)
            })
            .collect();
        let before: Vec<Choice> = flows.iter().map(|f| s.pick(&paths, f, 0)).collect();
        paths[0].rate_bps /= 10;
        paths[1].rate_bps *= 3;
        let after: Vec<Choice> = flows.iter().map(|f| s.pick(&paths, f, 0)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn flow_hash_is_stable_per_flow() {
        let paths = [path(100, 10), path(100, 10), path(100, 10), path(100, 10)];
        let cfg = SchedConfig::default();
        let (mut a, mut b) = (
            Scheduler::new(Kind::FlowHash, &cfg),
            Scheduler::new(Kind::FlowHash, &cfg),
        );
        let mut rng = fastrand::Rng::with_seed(2);
        for _ in 0..1000 {
            let f = random_flow(&mut rng);
            let first = a.pick(&paths, &f, 0);
            for t in 1..5 {
                assert_eq!(a.pick(&paths, &f, t), first);
                assert_eq!(b.pick(&paths, &f, t), first);
            }
        }
        // ICMP: ports ignored; TCP: different ports reach more than one path.
        let mut icmp = pkt(100);
        icmp.proto = 1;
        let mut tcp = pkt(100);
        tcp.proto = IPPROTO_TCP;
        let (mut icmp_paths, mut tcp_paths) = (0u32, 0u32);
        for port in 0..64 {
            icmp.sport = port;
            tcp.sport = port;
            icmp_paths |= 1 << id(a.pick(&paths, &icmp, 0));
            tcp_paths |= 1 << id(a.pick(&paths, &tcp, 0));
        }
        assert_eq!(icmp_paths.count_ones(), 1);
        assert!(tcp_paths.count_ones() > 1);
    }

    /// Only the flows of a failed path move, to usable paths; they return when it comes back.
    #[test]
    fn flow_hash_failover_moves_only_that_paths_flows() {
        let mut paths = [path(300, 10), path(80, 30), path(50, 20)];
        let mut s = Scheduler::new(Kind::FlowHash, &SchedConfig::default());
        let mut rng = fastrand::Rng::with_seed(3);
        let flows: Vec<Packet> = (0..10_000).map(|_| random_flow(&mut rng)).collect();
        let before: Vec<usize> = flows.iter().map(|f| id(s.pick(&paths, f, 0))).collect();
        paths[1].usable = false;
        let mut moved = 0;
        for (f, &b) in flows.iter().zip(&before) {
            let now = id(s.pick(&paths, f, 0));
            if b == 1 {
                assert_ne!(now, 1);
                moved += 1;
            } else {
                assert_eq!(now, b);
            }
        }
        assert!(moved > 1000, "{moved}");
        paths[1].usable = true;
        let after: Vec<usize> = flows.iter().map(|f| id(s.pick(&paths, f, 0))).collect();
        assert_eq!(after, before);
    }

    // ---- source-subnet ----

    fn subnet_sched() -> Scheduler {
        Scheduler::new(
            Kind::SourceSubnet(vec![
                (0x0a01_0000, 16, 0), // 10.1.0.0/16 -> A
                (0x0a02_0000, 16, 1), // 10.2.0.0/16 -> B
                (0x0a00_0000, 8, 2),  // 10.0.0.0/8  -> C
                (0x0a01_0203, 40, 2), // 10.1.2.3/32 (len clamped) -> C
                (0x0a02_ffff, 16, 2), // duplicate of 10.2.0.0/16: first listed wins
                (0xc0a8_0000, 16, 9), // 192.168.0.0/16 -> nonexistent path
            ]),
            &SchedConfig::default(),
        )
    }

    fn from(src: u32) -> Packet {
        Packet { src, ..pkt(100) }
    }

    /// Bound subnets go to their path, by longest match.
    #[test]
    fn source_subnet_binds_by_longest_match() {
        let paths = [path(300, 10), path(80, 30), path(50, 20)];
        let mut s = subnet_sched();
        assert!(s.bypasses_reorder());
        for (src, want) in [
            (0x0a01_0505, 0),
            (0x0a01_0203, 2),
            (0x0a02_0001, 1),
            (0x0a03_0001, 2),
        ] {
            assert_eq!(id(s.pick(&paths, &from(src), 0)), want, "{src:#x}");
        }
        // A folded IPv6 source that happens to fall in a bound IPv4 subnet is not bound
        // by it: it is spread by its hash like any unbound source, and kept stably.
        let v6 = |src| Packet {
            ipv6: true,
            ..from(src)
        };
        let picks: Vec<usize> = (0..64)
            .map(|h| id(s.pick(&paths, &v6(0x0a01_0200 + h), 0)))
            .collect();
        assert!(picks.iter().any(|&p| p != 2), "{picks:?}");
        assert_eq!(id(s.pick(&paths, &v6(0x0a01_0203), 0)), picks[3]);
    }

    /// When its path is down a subnet moves, as a whole, to a usable path that is the same on every
    /// packet and every worker, and it moves back as soon as its path is usable again.
    #[test]
    fn source_subnet_failover_and_return() {
        let mut paths = [path(300, 10), path(80, 30), path(50, 20)];
        let (mut s, mut other) = (subnet_sched(), subnet_sched());
        paths[1].usable = false;
        let target = id(s.pick(&paths, &from(0x0a02_0001), 0));
        assert_ne!(target, 1);
        for host in 0..1000 {
            let p = from(0x0a02_0000 + host);
            assert_eq!(id(s.pick(&paths, &p, host.into())), target);
            assert_eq!(id(other.pick(&paths, &p, 0)), target);
        }
        paths[1].usable = true;
        assert_eq!(id(s.pick(&paths, &from(0x0a02_0001), 0)), 1);
        // Bound to a path id the slice lacks: served by failover, deterministically.
        let t = id(s.pick(&paths, &from(0xc0a8_0101), 0));
        assert_eq!(id(s.pick(&paths, &from(0xc0a8_ff01), 0)), t);
    }

    /// Unbound sources are spread by hashing the source address, stably.
    #[test]
    fn source_subnet_unbound_sources_hash() {
        let paths = [path(100, 10), path(100, 30)];
        let mut s = subnet_sched();
        let mut count = [0u32; 2];
        for src in 0..1000u32 {
            let p = from(0x0b00_0000 + src * 7919);
            let c = id(s.pick(&paths, &p, 0));
            assert_eq!(id(s.pick(&paths, &p, 1)), c);
            count[c] += 1;
        }
        assert!(count[0] > 400 && count[1] > 400, "{count:?}");
    }

    // ---- minrtt ----

    /// Below the fast path's rate everything stays on it.
    #[test]
    fn minrtt_stays_on_lowest_delay_path_under_rate() {
        let paths = [path(100, 30), path(100, 10)];
        let cfg = SchedConfig::default();
        let got = offer(Kind::MinRtt, &cfg, &paths, 80e6, 100_000, random_sizes(4));
        assert_eq!(got[0], 0, "{got:?}");
    }

    /// Above the fast path's rate it carries its rate and the excess spills to the next path;
    /// above the sum the excess falls back to the fast path.
    #[test]
    fn minrtt_spills_the_excess() {
        let paths = [path(100, 10), path(100, 30)];
        let cfg = SchedConfig::default();
        let got = offer(Kind::MinRtt, &cfg, &paths, 150e6, 100_000, random_sizes(5));
        assert_shares(&got, &[100.0 / 150.0, 50.0 / 150.0], "150 on 100+100");
        let got = offer(Kind::MinRtt, &cfg, &paths, 300e6, 100_000, random_sizes(6));
        assert_shares(&got, &[200.0 / 300.0, 100.0 / 300.0], "300 on 100+100");
        let three = [path(100, 10), path(50, 20), path(100, 30)];
        let got = offer(Kind::MinRtt, &cfg, &three, 200e6, 100_000, random_sizes(8));
        assert_shares(&got, &[0.5, 0.25, 0.25], "200 on 100+50+100");
    }

    // ---- backup and redundant ----

    #[test]
    fn backup_prefers_priority_then_order_and_standby_last() {
        let mut paths = [path(100, 30), path(100, 20), path(100, 5), path(100, 1)];
        paths[0].priority = 1;
        paths[1].priority = 1;
        paths[2].priority = 2;
        paths[3].backup = true;
        let mut s = Scheduler::new(Kind::Backup, &SchedConfig::default());
        assert!(!s.bypasses_reorder());
        // Lowest priority, then the paths' order: never the delay, which moves
        // with the load and would make an active/standby pair flip.
        assert_eq!(id(s.pick(&paths, &pkt(100), 0)), 0);
        paths[0].usable = false;
        assert_eq!(id(s.pick(&paths, &pkt(100), 0)), 1);
        paths[1].usable = false;
        assert_eq!(id(s.pick(&paths, &pkt(100), 0)), 2);
        paths[2].usable = false;
        assert_eq!(id(s.pick(&paths, &pkt(100), 0)), 3); // standby only now
        paths[3].usable = false;
        assert_eq!(s.pick(&paths, &pkt(100), 0), Choice::None);
    }

    #[test]
    fn redundant_uses_two_best_paths() {
        let mut paths = [path(100, 30), path(100, 20), path(100, 5), path(100, 1)];
        paths[3].backup = true;
        let mut s = Scheduler::new(Kind::Redundant, &SchedConfig::default());
        assert_eq!(s.pick(&paths, &pkt(100), 0), Choice::Two(2, 1));
        paths[2].usable = false;
        assert_eq!(s.pick(&paths, &pkt(100), 0), Choice::Two(1, 0));
        paths[1].usable = false;
        assert_eq!(s.pick(&paths, &pkt(100), 0), Choice::Two(0, 3));
        paths[3].usable = false;
        assert_eq!(s.pick(&paths, &pkt(100), 0), Choice::One(0));
        paths[0].usable = false;
        assert_eq!(s.pick(&paths, &pkt(100), 0), Choice::None);
        paths[3].usable = true;
        assert_eq!(s.pick(&paths, &pkt(100), 0), Choice::One(3));
    }

    // ---- properties of every scheduler ----

    fn arb_path() -> impl Strategy<Value = PathView> {
        (
            any::<bool>(),
            0u8..4,
            prop_oneof![Just(0u64), 1u64..10_000_000_000],
            0u32..200_000,
            prop_oneof![Just(None), (0u64..200_000_000).prop_map(Some)],
        )
            .prop_map(
                |(backup, priority, rate_bps, delay_us, backlog_ns)| PathView {
                    usable: true,
                    backup,
                    priority,
                    rate_bps,
                    delay_us,
                    weight: 0,
                    backlog_ns,
                },
            )
    }

    fn arb_packet() -> impl Strategy<Value = Packet> {
        (
            1u32..=9000,
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(len, src, dst, proto, sport, dport)| Packet {
                len,
                src,
                dst,
                proto,
                sport,
                dport,
                ipv6: false,
            })
    }

    fn arb_kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::FlowHash),
            proptest::collection::vec((any::<u32>(), 0u8..=40, 0u8..20), 0..8)
                .prop_map(Kind::SourceSubnet),
            Just(Kind::Wlb),
            Just(Kind::MinRtt),
            Just(Kind::Backup),
            Just(Kind::Redundant),
        ]
    }

    fn check(kind: &Kind, paths: &[PathView], c: Choice) -> Result<(), TestCaseError> {
        let seen = &paths[..paths.len().min(MAX_PATHS)];
        let usable = seen.iter().filter(|p| p.usable).count();
        let primaries = seen.iter().filter(|p| p.usable && !p.backup).count();
        let ok = |i: u8, backup_allowed: bool| {
            seen.get(usize::from(i))
                .is_some_and(|p| p.usable && (!p.backup || backup_allowed))
        };
        match c {
            Choice::None => prop_assert_eq!(usable, 0),
            Choice::One(a) => {
                prop_assert!(ok(a, primaries == 0), "{:?} {:?}", c, seen);
                if *kind == Kind::Redundant {
                    prop_assert_eq!(usable, 1);
                }
            }
            Choice::Two(a, b) => {
                prop_assert_eq!(kind, &Kind::Redundant);
                prop_assert_ne!(a, b);
                prop_assert!(ok(a, primaries == 0), "{:?} {:?}", c, seen);
                prop_assert!(ok(b, primaries < 2), "{:?} {:?}", c, seen);
            }
        }
        Ok(())
    }

    proptest! {
        /// For every scheduler, over random path sets, usable masks changing per packet (so
        /// stateful schedulers see paths go and come back) and random packets: an unusable path is
        /// never chosen, `Two` never names a path twice, `None` only when nothing is usable, and
        /// backup paths only when no non-backup path is usable (redundant: as its second copy
        /// when fewer than two are). Slices longer than MAX_PATHS are truncated.
        #[test]
        fn prop_choices_respect_the_rules(
            kind in arb_kind(),
            base in proptest::collection::vec(arb_path(), 0..=MAX_PATHS + 2),
            steps in proptest::collection::vec(
                (any::<u32>(), arb_packet(), 0u64..5_000_000),
                1..64,
            ),
        ) {
            let mut s = Scheduler::new(kind.clone(), &SchedConfig::default());
            let mut paths = base;
            let mut now = 0u64;
            for (mask, p, dt) in steps {
                for (i, path) in paths.iter_mut().enumerate() {
                    path.usable = mask & (1 << i) != 0;
                }
                now += dt;
                let c = s.pick(&paths, &p, now);
                check(&kind, &paths, c)?;
            }
        }

        /// flow-hash over random rates: removing any one path moves exactly the flows it had.
        #[test]
        fn prop_flow_hash_minimal_disruption(
            base in proptest::collection::vec(arb_path(), 2..=MAX_PATHS),
            flows in proptest::collection::vec(arb_packet(), 1..200),
            gone in 0usize..MAX_PATHS,
        ) {
            let mut paths: Vec<PathView> =
                base.into_iter().map(|p| PathView { backup: false, ..p }).collect();
            let gone = gone % paths.len();
            let mut s = Scheduler::new(Kind::FlowHash, &SchedConfig::default());
            let before: Vec<Choice> = flows.iter().map(|f| s.pick(&paths, f, 0)).collect();
            paths[gone].usable = false;
            for (f, b) in flows.iter().zip(&before) {
                let now = s.pick(&paths, f, 0);
                if *b == Choice::One(gone as u8) {
                    prop_assert_ne!(now, *b);
                } else {
                    prop_assert_eq!(now, *b);
                }
            }
        }
    }
}
