//! Which plots a result gets, built from the result alone: throughput over time with the
//! fault shaded and the events marked (TCP), each WAN link's load over time (TCP), loss,
//! jitter and received rate against offered rate (UDP), the far appliance's reorder buffers
//! over time (TCP, appliance rows), per-output loss and latency
//! (multicast), delivered rate and p99 latency against offered rate (zero-loss search).

use std::path::Path;

use anyhow::Result;

use super::plot::{render, Panel, Series, Span};
use super::result::{
    AppliedEvent, ReorderSample, RowData, ScenarioResult, Status, TcpVariant, ZeroLossTrial,
};
use super::schedule::fault_spans;
use super::spec::Workload;
use super::systems::System;

/// One PNG.
#[derive(Debug, Clone)]
pub struct Figure {
    pub file: String,
    pub title: String,
    pub panels: Vec<Panel>,
    pub cols: usize,
}

impl Figure {
    pub fn draw(&self, dir: &Path) -> Result<()> {
        let width = if self.cols > 1 { 1400 } else { 1100 };
        render(
            &dir.join(&self.file),
            &self.title,
            &self.panels,
            self.cols,
            width,
            420,
        )
    }
}

/// The same colour for a system in every plot.
fn color(s: System) -> usize {
    System::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

fn spans_and_markers(events: &[AppliedEvent], end: f64) -> (Vec<Span>, Vec<(f64, String)>) {
    let spans = fault_spans(events, end)
        .into_iter()
        .map(|s| Span {
            start: s.start,
            end: s.end,
            label: format!(" link {} {}", s.link, s.action),
        })
        .collect();
    // Every event gets a line; those that open a span are already labelled by it.
    let markers = events
        .iter()
        .map(|e| {
            let opens = e.action == "down" || e.action == "blackhole";
            let label = if opens {
                String::new()
            } else {
                format!(" {} {}", e.link, e.action)
            };
            (e.applied_s, label)
        })
        .collect();
    (spans, markers)
}

/// Every figure of a result.
pub fn figures(r: &ScenarioResult) -> Vec<Figure> {
    match r.spec.workload() {
        Workload::Tcp(_) => tcp_figures(r),
        Workload::UdpSweep(u) => udp_figures(r, &u.sizes),
        Workload::Mcast(_) => mcast_figures(r),
        Workload::ZeroLoss(_) => zero_loss_figures(r),
    }
}

fn tcp_rows<'a>(r: &'a ScenarioResult, name: &str) -> Vec<(System, &'a TcpVariant)> {
    r.rows
        .iter()
        .filter_map(|row| match &row.data {
            RowData::Tcp { variants } => variants
                .iter()
                .find(|v| v.name == name && v.error.is_none())
                .map(|v| (row.system, v)),
            _ => None,
        })
        .collect()
}

fn tcp_figures(r: &ScenarioResult) -> Vec<Figure> {
    let mut out = Vec::new();
    for v in r.spec.variants() {
        let rows = tcp_rows(r, &v.name);
        if rows.is_empty() {
            continue;
        }
        let end = rows
            .iter()
            .filter_map(|(_, tv)| tv.intervals.last().map(|i| i.end))
            .fold(0.0, f64::max);
        let (spans, markers) = spans_and_markers(&rows[0].1.events, end);
        let ceiling = rows[0].1.summary.as_ref().map_or(0.0, |s| s.ceiling_mbps);
        let suffix = if v.name == "default" {
            String::new()
        } else {
            format!("-{}", v.name)
        };
        out.push(Figure {
            file: format!("throughput{suffix}.png"),
            title: format!("{}: TCP goodput ({})", r.spec.name, v.name),
            cols: 1,
            panels: vec![Panel {
                title: "iperf3, all streams".into(),
                x_label: "time since start (s)".into(),
                y_label: "Mbit/s".into(),
                series: rows
                    .iter()
                    .map(|(s, tv)| Series {
                        name: s.name().into(),
                        points: tv
                            .intervals
                            .iter()
                            .map(|i| ((i.start + i.end) / 2.0, i.mbps))
                            .collect(),
                        color: color(*s),
                        dots: false,
                    })
                    .collect(),
                spans: spans.clone(),
                markers: markers.clone(),
                hlines: if ceiling > 0.0 {
                    vec![(ceiling, format!("ceiling {ceiling:.1}"))]
                } else {
                    vec![]
                },
                ..Default::default()
            }],
        });
        let link_rates: Vec<(String, f64)> = r
            .spec
            .links
            .iter()
            .filter_map(|l| Some((l.name.clone(), l.dir(0).rate?.0 as f64 / 1e6)))
            .collect();
        // Direct links have no emulator to sample them.
        if r.spec.wan == super::spec::WanKind::Emulated {
            out.push(Figure {
                file: format!("links{suffix}.png"),
                title: format!("{}: load of each WAN link, a→b ({})", r.spec.name, v.name),
                cols: rows.len().min(2),
                panels: row_panels(rows.iter(), end, "Mbit/s on the wire", link_series, |p| {
                    p.hlines = link_rates
                        .iter()
                        .map(|(n, rate)| (*rate, format!("{n}: {rate:.0}")))
                        .collect();
                }),
            });
        }
        // Per-flow schedulers' packets skip the buffer: their panels would be empty.
        let ordered = |tv: &TcpVariant| {
            let sum = |s: &ReorderSample| s.in_order + s.held + s.late;
            tv.reorder
                .first()
                .zip(tv.reorder.last())
                .is_some_and(|(a, b)| sum(b) > sum(a))
        };
        let with_reorder: Vec<&(System, &TcpVariant)> =
            rows.iter().filter(|(_, tv)| ordered(tv)).collect();
        if !with_reorder.is_empty() {
            out.push(Figure {
                file: format!("reorder{suffix}.png"),
                title: format!(
                    "{}: the far appliance's reorder buffers ({})",
                    r.spec.name, v.name
                ),
                cols: with_reorder.len().min(2),
                panels: row_panels(
                    with_reorder.iter().copied(),
                    end,
                    "packets",
                    reorder_series,
                    |_| {},
                ),
            });
        }
    }
    out
}

/// One panel per row over time, with the row's fault shaded and events marked; `finish`
/// adds what a figure needs beyond that.
fn row_panels<'a>(
    rows: impl Iterator<Item = &'a (System, &'a TcpVariant)>,
    end: f64,
    y_label: &str,
    series: fn(&TcpVariant) -> Vec<Series>,
    finish: impl Fn(&mut Panel),
) -> Vec<Panel> {
    rows.map(|(s, tv)| {
        let (spans, markers) = spans_and_markers(&tv.events, end);
        let mut p = Panel {
            title: s.name().into(),
            x_label: "time since start (s)".into(),
            y_label: y_label.into(),
            series: series(tv),
            spans,
            markers,
            ..Default::default()
        };
        finish(&mut p);
        p
    })
    .collect()
}

/// Packets held at each sample, and how many waited for an earlier one between samples.
fn reorder_series(tv: &TcpVariant) -> Vec<Series> {
    vec![
        Series {
            name: "held at the sample".into(),
            points: tv
                .reorder
                .iter()
                .map(|s| (s.t, s.occupancy as f64))
                .collect(),
            color: 0,
            dots: false,
        },
        Series {
            name: "waited for an earlier one, per interval".into(),
            points: tv
                .reorder
                .windows(2)
                .map(|w| {
                    (
                        (w[0].t + w[1].t) / 2.0,
                        w[1].held.saturating_sub(w[0].held) as f64,
                    )
                })
                .collect(),
            color: 1,
            dots: false,
        },
    ]
}

/// Each link's a→b rate between consecutive counter samples.
fn link_series(tv: &TcpVariant) -> Vec<Series> {
    let Some(first) = tv.links.first() else {
        return vec![];
    };
    first
        .links
        .iter()
        .enumerate()
        .map(|(k, l)| Series {
            name: format!("link {}", l.link),
            points: tv
                .links
                .windows(2)
                .filter_map(|w| {
                    let a = w[0].links.iter().find(|x| x.link == l.link)?;
                    let b = w[1].links.iter().find(|x| x.link == l.link)?;
                    let dt = w[1].t - w[0].t;
                    (dt > 0.0).then(|| {
                        (
                            (w[0].t + w[1].t) / 2.0,
                            b.a_to_b_bytes.saturating_sub(a.a_to_b_bytes) as f64 * 8.0 / dt / 1e6,
                        )
                    })
                })
                .collect(),
            color: k,
            dots: false,
        })
        .collect()
}

fn udp_figures(r: &ScenarioResult, sizes: &[u32]) -> Vec<Figure> {
    type Pick = fn(&super::result::UdpStep) -> f64;
    let metrics: [(&str, &str, &str, Pick); 3] = [
        ("udp-loss.png", "loss", "loss %", |s| s.loss_pct),
        ("udp-jitter.png", "jitter", "jitter (ms)", |s| s.jitter_ms),
        (
            "udp-received.png",
            "received rate",
            "received Mbit/s",
            |s| s.received_mbps,
        ),
    ];
    metrics
        .iter()
        .map(|(file, what, unit, pick)| Figure {
            file: (*file).into(),
            title: format!("{}: UDP {what} against offered rate", r.spec.name),
            cols: sizes.len().min(2),
            panels: sizes
                .iter()
                .map(|&size| Panel {
                    title: format!("{size} B payload"),
                    x_label: "offered Mbit/s".into(),
                    y_label: (*unit).into(),
                    series: r
                        .rows
                        .iter()
                        .filter_map(|row| match &row.data {
                            RowData::UdpSweep { steps } => Some(Series {
                                name: row.system.name().into(),
                                points: steps
                                    .iter()
                                    .filter(|s| s.size == size && s.error.is_none())
                                    .map(|s| (s.offered_mbps, pick(s)))
                                    .collect(),
                                color: color(row.system),
                                dots: true,
                            }),
                            _ => None,
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        })
        .collect()
}

fn mcast_figures(r: &ScenarioResult) -> Vec<Figure> {
    let runs: Vec<(System, &super::result::McastRun)> = r
        .rows
        .iter()
        .filter_map(|row| match &row.data {
            RowData::Mcast { run } => Some((row.system, &**run)),
            _ => None,
        })
        .collect();
    if runs.is_empty() {
        return vec![];
    }
    type Pick = fn(&super::result::McastStream) -> f64;
    let panels: [(&str, &str, Pick); 2] = [
        ("loss per output", "loss %", |s| {
            if s.sent == 0 {
                0.0
            } else {
                s.lost as f64 * 100.0 / s.sent as f64
            }
        }),
        ("99th percentile latency per output", "µs", |s| {
            s.latency_us.p99
        }),
    ];
    vec![Figure {
        file: "mcast-outputs.png".into(),
        title: format!("{}: per output (stream × fan-out branch)", r.spec.name),
        cols: 2,
        panels: panels
            .iter()
            .map(|(title, unit, pick)| Panel {
                title: (*title).into(),
                x_label: "output (stream index)".into(),
                y_label: (*unit).into(),
                series: runs
                    .iter()
                    .map(|(s, run)| Series {
                        name: s.name().into(),
                        points: run
                            .per_stream
                            .iter()
                            .enumerate()
                            .map(|(i, o)| (i as f64 / f64::from(run.fanout.max(1)), pick(o)))
                            .collect(),
                        color: color(*s),
                        dots: true,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }]
}

/// The gray of the reference lines (no system uses it).
const REFERENCE_COLOR: usize = 7;

fn zero_loss_figures(r: &ScenarioResult) -> Vec<Figure> {
    let Workload::ZeroLoss(z) = r.spec.workload() else {
        return vec![];
    };
    let bound_ms = z.max_p99_latency.map(|d| d.0.as_secs_f64() * 1e3);
    // Latencies far above the bound only say "queueing": the panel is cut at twice it.
    let latency_top = bound_ms.map_or(100.0, |b| 2.0 * b);
    // Every trial of one case and system as (measured input pps, trial).
    let trials_of = |streams: u32, fanout: u32| {
        r.rows
            .iter()
            .filter_map(move |row| {
                let RowData::ZeroLoss { cases } = &row.data else {
                    return None;
                };
                let case = cases.iter().find(|x| {
                    x.streams == streams && x.fanout == fanout && x.status == Status::Ok
                })?;
                let mut trials: Vec<_> = case
                    .trials
                    .iter()
                    .filter(|t| t.run.totals.expected > 0 && t.run.duration_s > 0.0)
                    .collect();
                trials.sort_by(|a, b| a.run.totals.input_pps.total_cmp(&b.run.totals.input_pps));
                Some((row.system, trials))
            })
            .collect::<Vec<_>>()
    };
    let mut delivered = Vec::new();
    let mut latency = Vec::new();
    for c in &z.cases {
        let rows = trials_of(c.streams, c.fanout);
        let title = format!("{} stream(s), fan-out 1:{}", c.streams, c.fanout);
        let offered_max = rows
            .iter()
            .flat_map(|(_, ts)| ts.iter().map(|t| t.run.totals.input_pps))
            .fold(0.0_f64, f64::max);
        // One dotted series per system: `y` of each trial against the input rate it reached.
        let per_system = |y: &dyn Fn(&ZeroLossTrial) -> f64| -> Vec<Series> {
            rows.iter()
                .map(|(system, ts)| Series {
                    name: system.name().into(),
                    points: ts.iter().map(|t| (t.run.totals.input_pps, y(t))).collect(),
                    color: color(*system),
                    dots: true,
                })
                .collect()
        };
        let mut series = per_system(&|t| t.run.totals.unique as f64 / t.run.duration_s);
        if offered_max > 0.0 {
            series.push(Series {
                name: format!("offered × {} (nothing lost)", c.fanout),
                points: vec![(0.0, 0.0), (offered_max, offered_max * f64::from(c.fanout))],
                color: REFERENCE_COLOR,
                dots: false,
            });
        }
        delivered.push(Panel {
            title: title.clone(),
            x_label: "input pps the generator reached (all streams)".into(),
            y_label: "delivered pps (all outputs)".into(),
            legend_upper_left: true,
            series,
            ..Default::default()
        });
        latency.push(Panel {
            title,
            x_label: "input pps the generator reached (all streams)".into(),
            y_label: format!("worst output p99 latency, ms (cut at {latency_top:.0})"),
            legend_upper_left: true,
            y_range: Some((0.0, latency_top * 1.05)),
            hlines: bound_ms
                .map(|b| vec![(b, format!("bound {b:.0} ms"))])
                .unwrap_or_default(),
            series: per_system(&|t| (t.run.totals.latency_p99_worst_us / 1e3).min(latency_top)),
            ..Default::default()
        });
    }
    if delivered.iter().all(|p| p.series.is_empty()) {
        return vec![];
    }
    vec![
        Figure {
            file: "zero-loss.png".into(),
            title: format!("{}: delivered rate per trial", r.spec.name),
            cols: 2,
            panels: delivered,
        },
        Figure {
            file: "zero-loss-latency.png".into(),
            title: format!("{}: p99 latency per trial", r.spec.name),
            cols: 2,
            panels: latency,
        },
    ]
}
