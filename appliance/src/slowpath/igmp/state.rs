//! One port's IGMP host state: what we are a member of, which state-change
//! reports still have retransmissions to go (RFC 3376 §5.1), which query
//! responses are pending (RFC 3376 §5.2, RFC 2236 §3), and which querier
//! versions are present (RFC 3376 §7.2.1).
//!
//! It produces [`Message`]s; turning them into frames is `frames.rs`'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use super::IgmpConfig;
use crate::time::Time;
use crate::wire::igmp::{
    ALLOW_NEW_SOURCES, BLOCK_OLD_SOURCES, CHANGE_TO_EXCLUDE, CHANGE_TO_INCLUDE, MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE,
};
use crate::wire::IgmpVersion;

/// RFC 3376 §8.2 / RFC 2236 §8.2: the Query Interval we assume for the Older
/// Version Querier Present Timeout, since v1/v2 queries do not carry it.
const QUERY_INTERVAL: Duration = Duration::from_secs(125);
/// Max Resp Time of a v1 query, which has no such field (RFC 2236 §4).
const V1_MAX_RESP: Duration = Duration::from_secs(10);

/// The reception state of one group on one port (RFC 3376 §3.2).
///
/// EXCLUDE never carries sources: the relay wants either every source of a
/// group (ASM) or a few named ones (SSM), never "all but these".
/// `Include` with an empty set means "no reception state": an entry only
/// stays in that state while its leave is being retransmitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Filter {
    Exclude,
    Include(BTreeSet<Ipv4Addr>),
}

impl Filter {
    pub(super) const NONE: Filter = Filter::Include(BTreeSet::new());

    /// True if the host wants some traffic of the group.
    pub(super) fn is_member(&self) -> bool {
        match self {
            Filter::Exclude => true,
            Filter::Include(s) => !s.is_empty(),
        }
    }
}

/// Which protocol version the port speaks (RFC 3376 §7.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompatMode {
    V3,
    /// An IGMPv2 querier was heard within the Older Version Querier Present
    /// Timeout.
    V2,
    /// An IGMPv1 querier was heard: v1 reports, no leaves.
    V1,
}

/// One group record of a v3 report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub record_type: u8,
    pub group: Ipv4Addr,
    pub sources: Vec<Ipv4Addr>,
}

/// Something to send on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Message {
    /// A v3 report to 224.0.0.22 (split into several if over the MTU).
    V3Report(Vec<Record>),
    /// A v2 report, to the group.
    V2Report(Ipv4Addr),
    /// A v1 report, to the group.
    V1Report(Ipv4Addr),
    /// A v2 leave, to 224.0.0.2.
    Leave(Ipv4Addr),
}

/// A v3 response to a group (or group-and-source) query, not yet sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingResponse {
    at: Time,
    /// `None`: a group-specific query, answered with the whole state.
    sources: Option<BTreeSet<Ipv4Addr>>,
}

#[derive(Debug, Clone)]
struct Group {
    filter: Filter,
    /// v3: transmissions of the filter-mode change record still to do.
    mode_retx: u8,
    /// v3: transmissions still to do for each source whose membership
    /// changed; it goes in ALLOW if it is now included, else in BLOCK.
    source_retx: BTreeMap<Ipv4Addr, u8>,
    /// v3: pending response to a group or group-and-source query.
    response: Option<PendingResponse>,
    /// v1/v2: when the next report for this group goes out (a query
    /// response or an unsolicited repeat; RFC 2236 §3 uses one timer).
    report_at: Option<Time>,
    /// v1/v2: unsolicited reports left, this one included.
    unsolicited_left: u8,
    /// v2: we sent the last report heard for the group, so we send the
    /// leave (RFC 2236 §3).
    reporter: bool,
}

impl Group {
    fn new() -> Group {
        Group {
            filter: Filter::NONE,
            mode_retx: 0,
            source_retx: BTreeMap::new(),
            response: None,
            report_at: None,
            unsolicited_left: 0,
            reporter: false,
        }
    }

    fn cancel_timers(&mut self) {
        self.mode_retx = 0;
        self.source_retx.clear();
        self.response = None;
        self.report_at = None;
        self.unsolicited_left = 0;
    }

    /// Still worth keeping: a member, or a leave still being retransmitted.
    fn live(&self) -> bool {
        self.filter.is_member() || self.mode_retx > 0 || !self.source_retx.is_empty()
    }

    /// The current-state record (RFC 3376 §4.2.12) for a general or group
    /// query, if we are a member.
    fn current_state(&self, group: Ipv4Addr) -> Option<Record> {
        match &self.filter {
            Filter::Exclude => Some(Record {
                record_type: MODE_IS_EXCLUDE,
                group,
                sources: Vec::new(),
            }),
            Filter::Include(s) if !s.is_empty() => Some(Record {
                record_type: MODE_IS_INCLUDE,
                group,
                sources: s.iter().copied().collect(),
            }),
            Filter::Include(_) => None,
        }
    }

    /// The records of the next state-change report for this group, counting
    /// the transmission (RFC 3376 §5.1, "merging" simplified: while a
    /// filter-mode change is pending only its record is sent, and it always
    /// carries the current source list).
    fn take_change_records(&mut self, group: Ipv4Addr, out: &mut Vec<Record>) {
        if self.mode_retx > 0 {
            self.mode_retx -= 1;
            out.push(match &self.filter {
                Filter::Exclude => Record {
                    record_type: CHANGE_TO_EXCLUDE,
                    group,
                    sources: Vec::new(),
                },
                Filter::Include(s) => Record {
                    record_type: CHANGE_TO_INCLUDE,
                    group,
                    sources: s.iter().copied().collect(),
                },
            });
            return;
        }
        let included = match &self.filter {
            Filter::Include(s) => s.clone(),
            Filter::Exclude => BTreeSet::new(),
        };
        let (allow, block): (Vec<Ipv4Addr>, Vec<Ipv4Addr>) =
            self.source_retx.keys().partition(|s| included.contains(*s));
        // Linux puts ALLOW before BLOCK for an INCLUDE-mode group.
        for (record_type, sources) in [(ALLOW_NEW_SOURCES, allow), (BLOCK_OLD_SOURCES, block)] {
            if !sources.is_empty() {
                out.push(Record {
                    record_type,
                    group,
                    sources,
                });
            }
        }
        self.source_retx.retain(|_, n| {
            *n -= 1;
            *n > 0
        });
    }
}

/// Everything the host knows about one port.
#[derive(Debug, Clone)]
pub(super) struct Port {
    groups: BTreeMap<Ipv4Addr, Group>,
    mode: CompatMode,
    v1_querier_until: Option<Time>,
    v2_querier_until: Option<Time>,
    /// v3: when the next state-change report (or repeat) goes out.
    change_at: Option<Time>,
    /// v3: pending response to a general query.
    general_at: Option<Time>,
    /// v2: leaves to send at the next poll, and when they were decided.
    leaves: Vec<(Ipv4Addr, Time)>,
    /// The source address and version of the last query heard.
    querier: Option<(Ipv4Addr, IgmpVersion)>,
}

/// A uniformly random delay in `[0, max]`.
fn random_delay(rng: &mut fastrand::Rng, max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(0..=nanos))
}

fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn due(t: Option<Time>, now: Time) -> bool {
    t.is_some_and(|t| t <= now)
}

impl Port {
    pub(super) fn new() -> Port {
        Port {
            groups: BTreeMap::new(),
            mode: CompatMode::V3,
            v1_querier_until: None,
            v2_querier_until: None,
            change_at: None,
            general_at: None,
            leaves: Vec::new(),
            querier: None,
        }
    }

    pub(super) fn mode(&self) -> CompatMode {
        self.mode
    }

    pub(super) fn querier(&self) -> Option<(Ipv4Addr, IgmpVersion)> {
        self.querier
    }

    /// Member groups and their filters, in address order.
    pub(super) fn memberships(&self) -> impl Iterator<Item = (Ipv4Addr, &Filter)> {
        self.groups
            .iter()
            .filter(|(_, g)| g.filter.is_member())
            .map(|(a, g)| (*a, &g.filter))
    }

    /// Expires the older-querier timers and applies the resulting mode.
    fn refresh_mode(&mut self, now: Time) {
        if self.v1_querier_until.is_some_and(|t| t <= now) {
            self.v1_querier_until = None;
        }
        if self.v2_querier_until.is_some_and(|t| t <= now) {
            self.v2_querier_until = None;
        }
        let mode = if self.v1_querier_until.is_some() {
            CompatMode::V1
        } else if self.v2_querier_until.is_some() {
            CompatMode::V2
        } else {
            CompatMode::V3
        };
        if mode != self.mode {
            // RFC 3376 §7.2.1: "Whenever a host changes its compatibility
            // mode, it cancels all its pending response and retransmission
            // timers."
            self.mode = mode;
            self.change_at = None;
            self.general_at = None;
            self.leaves.clear();
            for g in self.groups.values_mut() {
                g.cancel_timers();
            }
            self.groups.retain(|_, g| g.filter.is_member());
        }
    }

    /// Moves to the wanted state, scheduling what has to be said about it.
    pub(super) fn set_wanted(
        &mut self,
        wanted: BTreeMap<Ipv4Addr, Filter>,
        now: Time,
        cfg: &IgmpConfig,
    ) {
        self.refresh_mode(now);
        let all: BTreeSet<Ipv4Addr> = self.groups.keys().chain(wanted.keys()).copied().collect();
        let mut changed = false;
        for addr in all {
            let new = wanted.get(&addr).cloned().unwrap_or(Filter::NONE);
            let group = self.groups.entry(addr).or_insert_with(Group::new);
            if group.filter == new {
                continue;
            }
            let old = std::mem::replace(&mut group.filter, new);
            match self.mode {
                CompatMode::V3 => {
                    changed = true;
                    v3_change(group, &old, cfg.robustness);
                }
                CompatMode::V2 | CompatMode::V1 => {
                    let (was, is) = (old.is_member(), group.filter.is_member());
                    if !was && is {
                        // RFC 2236 §3: report at once, then repeat.
                        group.report_at = Some(now);
                        group.unsolicited_left = cfg.robustness;
                    } else if was && !is {
                        // RFC 2236 §3: leave only if we were the last to
                        // report; IGMPv1 has no leave.
                        if self.mode == CompatMode::V2 && group.reporter {
                            self.leaves.push((addr, now));
                        }
                        group.cancel_timers();
                    }
                }
            }
        }
        self.groups.retain(|_, g| g.live());
        if changed {
            // RFC 3376 §5.1: the first report goes out immediately (and a
            // change during retransmissions restarts them).
            self.change_at = Some(now);
        }
    }

    /// A query arrived. `max_resp` is already decoded; `sources` is the
    /// source list of a v3 query.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_query(
        &mut self,
        querier: Ipv4Addr,
        version: IgmpVersion,
        max_resp: Duration,
        group: Ipv4Addr,
        sources: BTreeSet<Ipv4Addr>,
        now: Time,
        rng: &mut fastrand::Rng,
        cfg: &IgmpConfig,
    ) {
        self.querier = Some((querier, version));
        // RFC 3376 §8.12: Older Version Querier Present Timeout =
        // Robustness Variable × Query Interval + Query Response Interval.
        let timeout = QUERY_INTERVAL * u32::from(cfg.robustness);
        match version {
            IgmpVersion::V1 => self.v1_querier_until = Some(now + timeout + V1_MAX_RESP),
            IgmpVersion::V2 => self.v2_querier_until = Some(now + timeout + max_resp),
            IgmpVersion::V3 => {}
        }
        self.refresh_mode(now);
        match self.mode {
            CompatMode::V3 => self.v3_query(group, sources, max_resp, now, rng),
            // As Linux does: with a v1 querier present, any query that is
            // not v2 is a general query with a 10 s delay; with a v2 querier
            // present a v3 query is read as v2 (its sources ignored).
            CompatMode::V1 if version != IgmpVersion::V2 => {
                self.v2_query(Ipv4Addr::UNSPECIFIED, V1_MAX_RESP, now, rng)
            }
            CompatMode::V1 | CompatMode::V2 => self.v2_query(group, max_resp, now, rng),
        }
    }

    /// RFC 3376 §5.2: schedule the response to a v3 query.
    fn v3_query(
        &mut self,
        group: Ipv4Addr,
        sources: BTreeSet<Ipv4Addr>,
        max_resp: Duration,
        now: Time,
        rng: &mut fastrand::Rng,
    ) {
        let at = now + random_delay(rng, max_resp);
        // Rules 1 and 2: a pending general response sent sooner covers it.
        if self.general_at.is_some_and(|t| t <= at) {
            return;
        }
        if group.is_unspecified() {
            self.general_at = Some(at);
            return;
        }
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if !g.filter.is_member() {
            return;
        }
        let sources = (!sources.is_empty()).then_some(sources);
        g.response = Some(match g.response.take() {
            // Rule 3.
            None => PendingResponse { at, sources },
            // Rules 4 and 5: merge into the pending one, at the earlier time;
            // a group query (either one) makes it a group response.
            Some(p) => PendingResponse {
                at: p.at.min(at),
                sources: match (p.sources, sources) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                },
            },
        });
    }

    /// RFC 2236 §3: start (or shorten) the report timer of the queried
    /// groups. A query also ends unsolicited repeats, as in Linux.
    fn v2_query(
        &mut self,
        group: Ipv4Addr,
        max_resp: Duration,
        now: Time,
        rng: &mut fastrand::Rng,
    ) {
        for (addr, g) in &mut self.groups {
            if !(group.is_unspecified() || group == *addr) || !g.filter.is_member() {
                continue;
            }
            g.unsolicited_left = 0;
            // "If a timer for the group is already running, it is reset to
            // the random value only if the requested Max Response Time is
            // less than the remaining value of the running timer."
            if g.report_at
                .is_some_and(|t| t.saturating_duration_since(now) < max_resp)
            {
                continue;
            }
            g.report_at = Some(now + random_delay(rng, max_resp));
        }
    }

    /// Another host's v1/v2 report for `group`, sent to the group: a v1/v2
    /// host with a report pending suppresses its own (RFC 2236 §3). IGMPv3
    /// hosts never suppress (RFC 3376 §5.2).
    pub(super) fn heard_report(&mut self, group: Ipv4Addr, now: Time) {
        self.refresh_mode(now);
        if self.mode == CompatMode::V3 {
            return;
        }
        if let Some(g) = self.groups.get_mut(&group) {
            if g.report_at.is_some() {
                g.report_at = None;
                g.unsolicited_left = 0;
                g.reporter = false;
            }
        }
    }

    /// Appends the messages due at `now` to `out`.
    pub(super) fn poll(
        &mut self,
        now: Time,
        rng: &mut fastrand::Rng,
        cfg: &IgmpConfig,
        out: &mut Vec<Message>,
    ) {
        self.refresh_mode(now);
        match self.mode {
            CompatMode::V3 => self.poll_v3(now, rng, cfg, out),
            CompatMode::V2 | CompatMode::V1 => self.poll_v2(now, rng, cfg, out),
        }
    }

    fn poll_v3(
        &mut self,
        now: Time,
        rng: &mut fastrand::Rng,
        cfg: &IgmpConfig,
        out: &mut Vec<Message>,
    ) {
        if due(self.change_at, now) {
            let mut records = Vec::new();
            for (addr, g) in &mut self.groups {
                g.take_change_records(*addr, &mut records);
            }
            self.groups.retain(|_, g| g.live());
            let more = self
                .groups
                .values()
                .any(|g| g.mode_retx > 0 || !g.source_retx.is_empty());
            // RFC 3376 §5.1: retransmit at random within the Unsolicited
            // Report Interval.
            self.change_at = more.then(|| now + random_delay(rng, cfg.unsolicited_report_interval));
            if !records.is_empty() {
                out.push(Message::V3Report(records));
            }
        }
        if due(self.general_at, now) {
            self.general_at = None;
            // One report with every group (RFC 3376 §5.2).
            let records: Vec<Record> = self
                .groups
                .iter()
                .filter_map(|(addr, g)| g.current_state(*addr))
                .collect();
            if !records.is_empty() {
                out.push(Message::V3Report(records));
            }
        }
        for (addr, g) in &mut self.groups {
            let Some(response) = g.response.take_if(|r| r.at <= now) else {
                continue;
            };
            // One report per group, as Linux sends them.
            let record = match (&g.filter, response.sources) {
                // An EXCLUDE-mode group answers a group-and-source query
                // with its whole state, as Linux does (RFC 3376 §5.2 would
                // have IS_IN(queried sources); IS_EX{} tells the router
                // the same and more).
                (_, None) | (Filter::Exclude, Some(_)) => g.current_state(*addr),
                (Filter::Include(ours), Some(asked)) => {
                    let both: Vec<Ipv4Addr> = ours.intersection(&asked).copied().collect();
                    (!both.is_empty()).then_some(Record {
                        record_type: MODE_IS_INCLUDE,
                        group: *addr,
                        sources: both,
                    })
                }
            };
            if let Some(r) = record {
                out.push(Message::V3Report(vec![r]));
            }
        }
    }

    fn poll_v2(
        &mut self,
        now: Time,
        rng: &mut fastrand::Rng,
        cfg: &IgmpConfig,
        out: &mut Vec<Message>,
    ) {
        out.extend(self.leaves.drain(..).map(|(g, _)| Message::Leave(g)));
        for (addr, g) in &mut self.groups {
            if !due(g.report_at, now) {
                continue;
            }
            g.report_at = None;
            if !g.filter.is_member() {
                continue;
            }
            out.push(match self.mode {
                CompatMode::V1 => Message::V1Report(*addr),
                _ => Message::V2Report(*addr),
            });
            g.reporter = true;
            if g.unsolicited_left > 0 {
                g.unsolicited_left -= 1;
                if g.unsolicited_left > 0 {
                    g.report_at = Some(now + random_delay(rng, cfg.v2_unsolicited_report_interval));
                }
            }
        }
    }

    /// When the next timer fires.
    pub(super) fn next_timer(&self) -> Option<Time> {
        let mut t = earliest(self.v1_querier_until, self.v2_querier_until);
        t = earliest(t, self.change_at);
        t = earliest(t, self.general_at);
        for g in self.groups.values() {
            t = earliest(t, g.report_at);
            t = earliest(t, g.response.as_ref().map(|r| r.at));
        }
        for (_, at) in &self.leaves {
            t = earliest(t, Some(*at));
        }
        t
    }
}

/// Records what an IGMPv3 host has to report for a change from `old` to the
/// group's new filter (RFC 3376 §5.1 table). A non-member is INCLUDE{}.
fn v3_change(group: &mut Group, old: &Filter, robustness: u8) {
    match (old, &group.filter) {
        // Source-list change: ALLOW the new sources, BLOCK the old ones.
        // Linux sends ALLOW{S} for a new SSM group too (INCLUDE{} → INCLUDE{S}).
        (Filter::Include(a), Filter::Include(b)) => {
            if group.mode_retx > 0 {
                // A filter-mode change is still being retransmitted; its
                // record carries the new list, so restart it instead.
                group.mode_retx = robustness;
            } else {
                for s in a.symmetric_difference(b) {
                    group.source_retx.insert(*s, robustness);
                }
            }
        }
        // Filter-mode change: TO_EX / TO_IN, which replaces any pending
        // source-list records.
        _ => {
            group.mode_retx = robustness;
            group.source_retx.clear();
        }
    }
}
