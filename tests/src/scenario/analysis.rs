//! Figures derived from a TCP variant's raw data: mean goodput after slow start, the
//! links' share, and what happened around the fault (before / during / after, stalls, and
//! mqvpn's time-to-failover and time-to-recover definitions, so their published figures and
//! ours mean the same thing).

use super::result::{FaultSummary, Interval, LinkSample, TcpSummary, TcpVariant};
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
        FaultSummary {
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
    TcpSummary {
        mean_mbps: mean_between(&v.intervals, settle, end),
        ceiling_mbps: ceiling_mbps(links).unwrap_or(0.0),
        link_mbps: link_rates(&v.links, settle),
        fault,
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

    fn tcp(secs: u64, settle: u64) -> TcpSpec {
        TcpSpec {
            parallel: 4,
            duration: Dur(Duration::from_secs(secs)),
            interval: Dur(Duration::from_secs(1)),
            settle: Dur(Duration::from_secs(settle)),
            congestion: None,
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
