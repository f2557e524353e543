//! Figures derived from a TCP variant's raw data: mean goodput after slow start, the
//! links' share, and what happened around the fault (before / during / after, stalls, and
//! mqvpn's time-to-failover and time-to-recover definitions, so their published figures and
//! ours mean the same thing).

use super::result::{
    FaultRow, FaultSummary, HealthSample, Interval, LinkSample, ProbeDelay, ProbeHandoff,
    ProbeStream, TcpSummary, TcpVariant,
};
use super::schedule::fault_spans;
use super::spec::{LinkSpec, TcpSpec};

/// TCP payload per full 1514-byte Ethernet frame (1500 - 20 IP - 32 TCP with timestamps).
pub const TCP_PAYLOAD_SHARE: f64 = 1448.0 / 1514.0;

/// TCP goodput ceiling of some links, a-to-b, in Mbit/s; `None` if one is unlimited.
pub fn ceiling_mbps<'a>(links: impl IntoIterator<Item = &'a LinkSpec>) -> Option<f64> {
    let mut sum = 0.0;
    for l in links {
        sum += l.dir(0).rate?.0 as f64 / 1e6;
    }
    Some(sum * TCP_PAYLOAD_SHARE)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// Mean rate of intervals lying wholly in `[from, to)`.
fn mean_between(iv: &[Interval], from: f64, to: f64) -> f64 {
    const EPS: f64 = 1e-6;
    mean(
        iv.iter()
            .filter(|i| i.start >= from - EPS && i.end <= to + EPS)
            .map(|i| i.mbps),
    )
}

/// Mean a-to-b rate of each link between the first sample at or after `from` and the last.
pub fn link_rates(samples: &[LinkSample], from: f64) -> Vec<(String, f64)> {
    let (Some(first), Some(last)) = (samples.iter().find(|s| s.t >= from), samples.last()) else {
        return vec![];
    };
    let dt = last.t - first.t;
    first
        .links
        .iter()
        .map(|l0| {
            let bytes = last
                .links
                .iter()
                .find(|l| l.link == l0.link)
                .map_or(0, |l| l.a_to_b_bytes.saturating_sub(l0.a_to_b_bytes));
            let mbps = if dt > 0.0 {
                bytes as f64 * 8.0 / dt / 1e6
            } else {
                0.0
            };
            (l0.link.clone(), mbps)
        })
        .collect()
}

/// The summary of one variant.
pub fn tcp_summary(links: &[LinkSpec], tcp: &TcpSpec, v: &TcpVariant) -> TcpSummary {
    let settle = tcp.settle.0.as_secs_f64();
    let end = v
        .intervals
        .last()
        .map_or(tcp.duration.0.as_secs_f64(), |i| i.end);
    let fault = fault_spans(&v.events, end).into_iter().next().map(|span| {
        let before = mean_between(&v.intervals, settle, span.start);
        let during_iv: Vec<&Interval> = v
            .intervals
            .iter()
            .filter(|i| i.start >= span.start - 1e-6 && i.end <= span.end + 1e-6)
            .collect();
        let surviving = ceiling_mbps(links.iter().filter(|l| l.name != span.link));
        // Intervals count as after an instant when most of them is.
        let mid = |i: &Interval| (i.start + i.end) / 2.0;
        let ttf_s = surviving.and_then(|c| {
            v.intervals
                .iter()
                .find(|i| mid(i) >= span.start && mid(i) < span.end && i.mbps >= 0.5 * c)
                .map(|i| i.end - span.start)
        });
        let ttr_s = if span.recovered && before > 0.0 {
            v.intervals
                .iter()
                .find(|i| mid(i) >= span.end && i.mbps >= 0.9 * before)
                .map(|i| i.end - span.end)
        } else {
            None
        };
        let downtime_s = surviving.map_or(0.0, |c| {
            v.intervals
                .iter()
                .filter(|i| mid(i) >= span.start && i.mbps < 0.5 * c)
                .fold(0.0, |sum, i| sum + (i.end - i.start))
        });
        let probes = v.probes.as_ref();
        FaultSummary {
            downtime_s,
            failure: probes.map(|p| probe_handoff(p, span.start)),
            recovery: probes
                .filter(|_| span.recovered)
                .map(|p| probe_handoff(p, span.end)),
            link: span.link.clone(),
            action: span.action.clone(),
            start_s: span.start,
            end_s: span.end,
            before_mbps: before,
            during_mbps: mean(during_iv.iter().map(|i| i.mbps)),
            min_during_mbps: during_iv
                .iter()
                .map(|i| i.mbps)
                .reduce(f64::min)
                .unwrap_or(0.0),
            after_mbps: mean_between(&v.intervals, span.end, end),
            stalled_intervals: during_iv.iter().filter(|i| i.mbps < 0.05 * before).count() as u32,
            ttf_s,
            ttr_s,
        }
    });
    let probe_delay = match (&fault, &v.probes) {
        (None, Some(p)) => probe_delay(p, settle),
        _ => None,
    };
    TcpSummary {
        mean_mbps: mean_between(&v.intervals, settle, end),
        ceiling_mbps: ceiling_mbps(links).unwrap_or(0.0),
        link_mbps: link_rates(&v.links, settle),
        fault,
        faults: fault_rows(v, end),
        probe_delay,
    }
}

/// Every fault of a variant with health samples: what the probe stream lost around it,
/// the fewest usable paths at site A and the `tunnel_no_path` drops at both sites from
/// the fault to 1 s after it ended.
pub fn fault_rows(v: &TcpVariant, end: f64) -> Vec<FaultRow> {
    if v.health.is_empty() {
        return vec![];
    }
    fault_spans(&v.events, end)
        .into_iter()
        .map(|span| {
            let until = span.end + 1.0;
            let within: Vec<&HealthSample> = v
                .health
                .iter()
                .filter(|h| h.t >= span.start && h.t <= until)
                .collect();
            let drops = |h: &HealthSample| h.no_path_drops[0] + h.no_path_drops[1];
            // From the last sample before the fault to the last one in the span.
            let before = v.health.iter().rev().find(|h| h.t < span.start);
            let no_path_drops = within
                .last()
                .map(|last| drops(last) - before.map_or(0, drops));
            FaultRow {
                failure: v.probes.as_ref().map(|p| probe_handoff(p, span.start)),
                min_usable: within.iter().map(|h| h.usable[0]).min(),
                no_path_drops,
                link: span.link,
                start_s: span.start,
                end_s: span.end,
            }
        })
        .collect()
}

/// The probe stream's one-way delays for probes due after `settle`.
pub fn probe_delay(p: &ProbeStream, settle: f64) -> Option<ProbeDelay> {
    let interval = p.interval_ms / 1e3;
    let first = (settle / interval).ceil() as u64;
    let mut seen = std::collections::HashSet::new();
    let mut delays: Vec<f64> = p
        .arrivals
        .iter()
        .filter(|(s, _)| *s >= first && seen.insert(*s))
        .map(|(s, t)| (t - *s as f64 * interval) * 1e3)
        .collect();
    if delays.is_empty() {
        return None;
    }
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    let due = p.sent.saturating_sub(first);
    Some(ProbeDelay {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: delays[delays.len() - 1],
        lost: due.saturating_sub(delays.len() as u64),
        sent: due,
    })
}

/// Probes due from this long before an event are judged with it.
const HANDOFF_BEFORE_S: f64 = 0.5;
/// ... and up to this long after.
const HANDOFF_AFTER_S: f64 = 5.0;
/// A silence shorter than this (or five probe intervals) with nothing lost is jitter,
/// not an outage.
const OUTAGE_S: f64 = 0.05;

/// What the probe stream saw around an event at `at` (s after the run's zero): probes due
/// in `[at - 0.5 s, at + 5 s]` that never arrived, the longest time without an arrival in
/// that window, and T-latency: from the event to the end of that silence, when the stream
/// flowed again (0 if the silence ended before the event, or if nothing was lost and no
/// silence lasted over 50 ms or five probe intervals: the stream was never broken).
pub fn probe_handoff(p: &ProbeStream, at: f64) -> ProbeHandoff {
    let interval = p.interval_ms / 1e3;
    let (from, to) = (at - HANDOFF_BEFORE_S, at + HANDOFF_AFTER_S);
    let first = (from.max(0.0) / interval).ceil() as u64;
    let last = ((to / interval).floor() as u64).min(p.sent.saturating_sub(1));
    let arrived: std::collections::HashSet<u64> = p.arrivals.iter().map(|(s, _)| *s).collect();
    let lost = (first..=last).filter(|s| !arrived.contains(s)).count() as u64;
    let mut times: Vec<f64> = p
        .arrivals
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| (from..=to).contains(t))
        .collect();
    times.sort_by(f64::total_cmp);
    // Silences as (length, when it ended): before the first arrival, between arrivals,
    // and after the last (which never ends in the window).
    let mut silences: Vec<(f64, Option<f64>)> = Vec::new();
    let mut prev = from;
    for t in &times {
        silences.push((t - prev, Some(*t)));
        prev = *t;
    }
    silences.push((to - prev, None));
    // The first of equal silences (within 1 µs): a steady stream's gaps all tie.
    let (gap, ended) =
        silences.into_iter().fold(
            (0.0, None),
            |best: (f64, Option<f64>), x| {
                if x.0 > best.0 + 1e-6 {
                    x
                } else {
                    best
                }
            },
        );
    // Nothing lost and no silence beyond jitter: the stream was never broken.
    let t_latency_ms = if lost == 0 && gap <= (5.0 * interval).max(OUTAGE_S) {
        Some(0.0)
    } else {
        ended.map(|e| (e - at).max(0.0) * 1e3)
    };
    ProbeHandoff {
        lost,
        longest_gap_ms: gap * 1e3,
        t_latency_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::result::{AppliedEvent, LinkCounters};
    use crate::wanem::{DirParams, Dur, Rate};
    use std::time::Duration;

    fn link(name: &str, mbit: u64) -> LinkSpec {
        LinkSpec {
            name: name.into(),
            both: Some(DirParams {
                rate: Some(Rate(mbit * 1_000_000)),
                ..Default::default()
            }),
            a_to_b: None,
            b_to_a: None,
        }
    }

    fn variant(rates: &[f64], events: &[(f64, &str)]) -> TcpVariant {
        TcpVariant {
            name: "v".into(),
            events: events
                .iter()
                .map(|(t, a)| AppliedEvent {
                    at_s: *t,
                    applied_s: *t,
                    link: "a".into(),
                    action: (*a).into(),
                    command: String::new(),
                })
                .collect(),
            intervals: rates
                .iter()
                .enumerate()
                .map(|(i, r)| Interval {
                    start: i as f64,
                    end: i as f64 + 1.0,
                    mbps: *r,
                })
                .collect(),
            ..TcpVariant::default()
        }
    }

    #[test]
    fn fault_rows_read_the_health_samples_of_each_fault() {
        let mut v = variant(
            &[10.0; 20],
            &[
                (2.0, "blackhole"),
                (5.0, "up"),
                (10.0, "blackhole"),
                (13.0, "up"),
            ],
        );
        v.health = (0..40)
            .map(|i| {
                let t = i as f64 * 0.5;
                // Site A lost its last path from 11 to 12 s; 30 drops then.
                let usable = if (2.0..5.0).contains(&t) || (10.0..13.0).contains(&t) {
                    1
                } else {
                    2
                };
                let usable = if (11.0..12.0).contains(&t) { 0 } else { usable };
                let drops = if t >= 11.0 { 30 } else { 0 };
                HealthSample {
                    t,
                    usable: [usable, 2],
                    no_path_drops: [drops, 0],
                    ..HealthSample::default()
                }
            })
            .collect();
        let rows = fault_rows(&v, 20.0);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].min_usable, rows[0].no_path_drops),
            (Some(1), Some(0))
        );
        assert_eq!(
            (rows[1].min_usable, rows[1].no_path_drops),
            (Some(0), Some(30))
        );
        assert_eq!((rows[1].start_s, rows[1].end_s), (10.0, 13.0));
        // No health samples: no rows (the first fault's summary covers it).
        assert!(fault_rows(&variant(&[1.0], &[(0.5, "down")]), 1.0).is_empty());
    }

    /// 10 ms probes for 10 s, 20 ms on the way; those due in `lost` never arrive.
    fn stream(lost: std::ops::RangeInclusive<u64>) -> ProbeStream {
        ProbeStream {
            interval_ms: 10.0,
            sent: 1000,
            received: (0..1000).filter(|s| !lost.contains(s)).count() as u64,
            arrivals: (0..1000)
                .filter(|s| !lost.contains(s))
                .map(|s| (s, s as f64 * 0.01 + 0.02))
                .collect(),
        }
    }

    #[test]
    fn probe_delay_is_arrival_minus_due() {
        let d = probe_delay(&stream(500..=509), 1.0).unwrap();
        assert!((d.p50_ms - 20.0).abs() < 1e-6, "{d:?}");
        assert!((d.p99_ms - 20.0).abs() < 1e-6, "{d:?}");
        assert_eq!((d.sent, d.lost), (900, 10));
    }

    #[test]
    fn probe_handoff_measures_the_outage() {
        let h = probe_handoff(&stream(500..=530), 5.0);
        assert_eq!(h.lost, 31);
        assert!((h.longest_gap_ms - 320.0).abs() < 1e-6, "{h:?}");
        // Probe 531 (due 5.31 s) arrives 20 ms later: the stream flows again.
        assert!((h.t_latency_ms.unwrap() - 330.0).abs() < 1e-6, "{h:?}");
        let clean = probe_handoff(&stream(2000..=2000), 5.0);
        assert_eq!(clean.lost, 0);
        assert!((clean.longest_gap_ms - 10.0).abs() < 1e-6, "{clean:?}");
        assert_eq!(clean.t_latency_ms, Some(0.0), "{clean:?}");
        // Nothing arrives after the event: the silence lasts to the end of the window.
        let dead = probe_handoff(&stream(498..=999), 5.0);
        assert_eq!(dead.t_latency_ms, None, "{dead:?}");
        assert!(dead.longest_gap_ms > 5000.0, "{dead:?}");
    }

    fn tcp(secs: u64, settle: u64) -> TcpSpec {
        TcpSpec {
            parallel: 4,
            duration: Dur(Duration::from_secs(secs)),
            interval: Dur(Duration::from_secs(1)),
            settle: Dur(Duration::from_secs(settle)),
            congestion: None,
            probe_interval: None,
            health_interval: None,
        }
    }

    #[test]
    fn fault_figures_follow_the_definitions() {
        let links = [link("a", 30), link("b", 8)];
        // 0-1 slow start, 1-4 at 36, fault at 4: stall, then 7.5 on b; up at 8: 10, 20, 35.
        let rates = [
            5.0, 36.0, 36.0, 36.0, 0.5, 0.2, 7.5, 7.5, 10.0, 20.0, 35.0, 36.0,
        ];
        let v = variant(&rates, &[(4.0, "down"), (8.0, "up")]);
        let s = tcp_summary(&links, &tcp(12, 1), &v);
        let f = s.fault.unwrap();
        assert_eq!((f.start_s, f.end_s), (4.0, 8.0));
        assert_eq!(f.before_mbps, 36.0);
        assert_eq!(f.during_mbps, (0.5 + 0.2 + 7.5 + 7.5) / 4.0);
        assert_eq!(f.min_during_mbps, 0.2);
        assert_eq!(f.stalled_intervals, 2); // below 1.8 = 5 % of 36
                                            // Surviving ceiling 8 × 1448/1514 = 7.65; half is 3.83: the interval 6-7 reaches it.
        assert_eq!(f.ttf_s, Some(3.0));
        // 90 % of 36 = 32.4: reached by the interval 10-11.
        assert_eq!(f.ttr_s, Some(3.0));
        assert_eq!(f.after_mbps, (10.0 + 20.0 + 35.0 + 36.0) / 4.0);
        assert!((s.ceiling_mbps - 38.0 * TCP_PAYLOAD_SHARE).abs() < 1e-9);
        assert!((s.mean_mbps - rates[1..].iter().sum::<f64>() / 11.0).abs() < 1e-9);
    }

    #[test]
    fn no_events_no_fault_and_unlimited_links_have_no_ceiling() {
        let v = variant(&[1.0, 2.0, 3.0], &[]);
        let s = tcp_summary(
            &[LinkSpec {
                name: "a".into(),
                both: None,
                a_to_b: None,
                b_to_a: None,
            }],
            &tcp(3, 0),
            &v,
        );
        assert!(s.fault.is_none());
        assert_eq!(s.ceiling_mbps, 0.0);
        assert_eq!(s.mean_mbps, 2.0);
        // Nothing reaches the surviving links' half ceiling during the fault: no TTF, even
        // though the rate after the return would.
        let v = variant(
            &[36.0, 36.0, 0.0, 0.0, 36.0, 36.0],
            &[(2.0, "down"), (4.0, "up")],
        );
        let f = tcp_summary(&[link("a", 30), link("b", 8)], &tcp(6, 0), &v)
            .fault
            .unwrap();
        assert_eq!(f.ttf_s, None);
        assert_eq!(f.ttr_s, Some(1.0));
        // A fault that never recovers has no TTR.
        let v = variant(&[9.0, 9.0, 1.0, 1.0], &[(2.0, "blackhole")]);
        let f = tcp_summary(&[link("a", 30), link("b", 8)], &tcp(4, 0), &v)
            .fault
            .unwrap();
        assert_eq!(f.ttr_s, None);
        assert_eq!(f.end_s, 4.0);
    }

    #[test]
    fn link_rates_from_counter_samples() {
        let sample = |t: f64, a: u64, b: u64| LinkSample {
            t,
            links: vec![
                LinkCounters {
                    link: "a".into(),
                    a_to_b_bytes: a,
                    b_to_a_bytes: 0,
                    a_to_b_dropped: 0,
                    b_to_a_dropped: 0,
                },
                LinkCounters {
                    link: "b".into(),
                    a_to_b_bytes: b,
                    b_to_a_bytes: 0,
                    a_to_b_dropped: 0,
                    b_to_a_dropped: 0,
                },
            ],
        };
        let s = [
            sample(0.0, 0, 0),
            sample(1.0, 1_000_000, 0),
            sample(3.0, 6_000_000, 500_000),
        ];
        let r = link_rates(&s, 1.0);
        assert_eq!(r, vec![("a".to_string(), 20.0), ("b".to_string(), 2.0)]);
        assert!(link_rates(&[], 0.0).is_empty());
    }
}
