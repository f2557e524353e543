//! The README of a result folder: what was run, on what, and the figures in tables, with
//! the plots and the raw `result.json` linked. Rendered from the result alone.

use std::fmt::Write as _;

use super::figures::Figure;
use super::result::{
    McastRun, ProbeHandoff, ReorderSample, Row, RowData, ScenarioResult, Status, TcpVariant,
};
use super::schedule::schedule;
use super::spec::{WanKind, Workload};
use super::systems::System;

/// A markdown table.
#[derive(Debug, Default)]
pub struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| (*h).to_string()).collect(),
            rows: vec![],
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = format!(
            "| {} |\n",
            self.head
                .iter()
                .map(|h| cell(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out.push_str(&format!("|{}\n", "---|".repeat(self.head.len())));
        for r in &self.rows {
            let mut cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
            cells.resize(self.head.len(), String::new());
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }
}

use super::spec::human as secs;

/// A number with `digits` decimals, or "–" when absent.
pub fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

fn status_text(row: &Row) -> String {
    match row.status {
        Status::Ok => "ok".into(),
        Status::Failed => format!("**failed**: {}", row.error.as_deref().unwrap_or("")),
        Status::NotAvailable => row.error.clone().unwrap_or_else(|| "not available".into()),
    }
}

/// The whole README.
pub fn markdown(r: &ScenarioResult, figures: &[Figure]) -> String {
    let spec = &r.spec;
    let mut md = format!("# {}\n\n", spec.name);
    if !spec.description.is_empty() {
        let _ = writeln!(md, "{}\n", spec.description.trim());
    }
    let _ = writeln!(md, "- Machine: {}", r.machine.summary());
    if !r.machine.tools.is_empty() {
        let _ = writeln!(md, "- Tools: {}", r.machine.tools.join("; "));
    }
    let shipped = r.file == format!("scenarios/{}.toml", spec.name);
    let _ = writeln!(
        md,
        "- Reproduce: {}`{}`, {:.0} s in all",
        if shipped {
            format!("`make bench-{}` or ", spec.name)
        } else {
            String::new()
        },
        r.command,
        r.wall_s
    );
    let link = if r.file.starts_with('/') {
        r.file.clone()
    } else {
        format!("../../../{}", r.file)
    };
    let _ = writeln!(
        md,
        "- Scenario: [`{}`]({link}); raw numbers: [result.json](result.json)\n",
        r.file
    );

    md.push_str("## Systems\n\n");
    let mut t = Table::new(&["system", "what it is", "status", "run time"]);
    for row in &r.rows {
        t.push(vec![
            format!("`{}`", row.system),
            row.system.describe().to_string(),
            status_text(row),
            format!("{:.0} s", row.wall_s),
        ]);
    }
    md.push_str(&t.render());
    md.push('\n');

    match spec.workload() {
        Workload::Tcp(tcp) => {
            for v in spec.variants() {
                let steps = if v.flap.is_some() {
                    Vec::new()
                } else {
                    schedule(&v.events)
                };
                let _ = writeln!(md, "## Variant `{}`\n", v.name);
                let _ = writeln!(
                    md,
                    "iperf3 TCP, {} stream{}, {}, congestion control {}, {} intervals (receiver side); means after the first {}.{}\n",
                    v.parallel.unwrap_or(tcp.parallel),
                    if v.parallel.unwrap_or(tcp.parallel) == 1 { "" } else { "s" },
                    secs(tcp.duration),
                    tcp.congestion.as_deref().unwrap_or("the kernel's default"),
                    secs(tcp.interval),
                    secs(tcp.settle),
                    if let Some(f) = &v.flap {
                        format!(
                            " Link {} {} and up every {} from {} to {}.",
                            f.link,
                            super::schedule::action_name(f.action),
                            secs(f.period),
                            secs(f.from),
                            secs(f.until)
                        )
                    } else if steps.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " Events: {}.",
                            steps
                                .iter()
                                .map(|s| format!("at {:.1} s link {} {}", s.at.as_secs_f64(), s.link, s.action))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
                md.push_str(&tcp_table(r, &v.name));
                md.push('\n');
                if steps
                    .iter()
                    .any(|s| s.action == "down" || s.action == "blackhole")
                {
                    md.push_str(&fault_table(r, &v.name));
                    md.push('\n');
                }
                if let Some(t) = latency_table(r, &v.name) {
                    md.push_str(&t);
                    md.push('\n');
                }
                if let Some(t) = reorder_table(r, &v.name) {
                    md.push_str(&t);
                    md.push('\n');
                }
                if let Some(t) = soak_tables(r, &v.name) {
                    md.push_str(&t);
                    md.push('\n');
                }
            }
        }
        Workload::UdpSweep(u) => {
            let _ = writeln!(
                md,
                "## UDP sweep\n\niperf3 UDP, {} stream(s) from fixed client ports (the same flows at every step), {} per step; received rate, loss and jitter as the server reported them; per link: the emulator's forwarded a→b rate (Ethernet frames, tunnel headers included), which shows where the flows went.\n",
                u.parallel, secs(u.step)
            );
            for &size in &u.sizes {
                let _ = writeln!(md, "### {size} B payload\n");
                md.push_str(&udp_table(r, size));
                md.push('\n');
            }
        }
        Workload::Mcast(m) => {
            let _ = writeln!(
                md,
                "## Multicast\n\n{} streams × {} pps of {} B for {}, fan-out 1:{}. Loss counts every datagram the generator sent that an output did not deliver.\n",
                m.streams, m.pps, m.size, secs(m.duration), m.fanout
            );
            md.push_str(&mcast_table(r));
            md.push('\n');
        }
        Workload::ZeroLoss(z) => {
            let _ = writeln!(
                md,
                "## Zero-loss rate\n\n{} B datagrams, {} per trial, from {} pps rising ×{} up to {} pps, then {} bisections. A trial is zero-loss when every output delivered every datagram sent exactly once and in order (within {} s of the generator's end){}. Rates are input datagrams per second over all streams. Max zero-loss: the highest rate the generator reached in a trial that lost nothing, and in brackets the highest target that was offered in full and lost nothing; output = that measured input × fan-out. First lossy: the target, and in brackets the rate reached. A trial whose generator reached less than 97 % of its target but delivered everything ends the rise (\"generator limit\"): higher rates cannot be offered on this machine, and its measured rate still counts as zero-loss; one that lost datagrams counts as lossy at the rate it reached. The sinks ignore datagrams sent before they started (left over from the previous trial), and trials are 2 s apart so a relay that fell behind can drain. \"Its loss\": at the first lossy rate, datagrams lost in all, and how many of them the kernel counted as receive-buffer overflows in the sink's and the relay's namespaces or as bad UDP checksums at the sink (a loss in the sink is a limit of the measurement, not of the relay), and the packets the kernel dropped on the interfaces of the relay, switch and sink namespaces; then the worst output's p99 latency.\n",
                z.size,
                secs(z.step),
                z.start_pps,
                z.factor,
                z.max_pps,
                z.refine,
                super::mcast::DRAIN.as_secs_f64(),
                z.max_p99_latency.map_or(String::new(), |d| format!(
                    " and no output's 99th percentile latency was above {} (a relay that queues more is falling behind: a longer trial would overflow its queue; such a trial counts as lossy, \"late\")",
                    secs(d)
                ))
            );
            md.push_str(&zero_loss_table(r));
            md.push('\n');
        }
    }

    if !figures.is_empty() {
        md.push_str("## Plots\n\n");
        for f in figures {
            let _ = writeln!(md, "![{}]({})\n", f.title, f.file);
        }
    }
    let mut notes: Vec<String> = spec.notes.clone();
    for row in &r.rows {
        for n in &row.notes {
            notes.push(format!("`{}`: {n}", row.system));
        }
        if let RowData::Tcp { variants } = &row.data {
            for v in variants {
                if !v.evidence.is_null() {
                    notes.push(format!(
                        "`{}` ({}): counters {}",
                        row.system, v.name, v.evidence
                    ));
                }
            }
        }
    }
    if !notes.is_empty() {
        md.push_str("## Notes\n\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

fn variant<'a>(row: &'a Row, name: &str) -> Option<&'a TcpVariant> {
    match &row.data {
        RowData::Tcp { variants } => variants.iter().find(|v| v.name == name),
        _ => None,
    }
}

/// Mean goodput of the reference row (`linux-single`) in a variant, for ratios.
fn reference(r: &ScenarioResult, name: &str) -> Option<f64> {
    r.rows
        .iter()
        .find(|row| row.system == System::LinuxSingle && row.status == Status::Ok)
        .and_then(|row| variant(row, name)?.summary.as_ref().map(|s| s.mean_mbps))
        .filter(|m| *m > 0.0)
}

/// Whether variant `name` of the scenario runs `system`.
fn runs(r: &ScenarioResult, name: &str, system: System) -> bool {
    r.spec
        .variants()
        .iter()
        .find(|v| v.name == name)
        .is_none_or(|v| v.runs(system))
}

fn tcp_table(r: &ScenarioResult, name: &str) -> String {
    let reference = reference(r, name);
    // Direct links have no emulator to count their bytes or to cost CPU.
    let emulated = r.spec.wan == WanKind::Emulated;
    let link_names: Vec<String> = if emulated {
        r.spec.links.iter().map(|l| l.name.clone()).collect()
    } else {
        Vec::new()
    };
    let mut head = vec!["system", "mean Mbit/s", "× linux-single", "of ceiling"];
    let link_heads: Vec<String> = link_names
        .iter()
        .map(|l| format!("link {l} Mbit/s"))
        .collect();
    head.extend(link_heads.iter().map(String::as_str));
    head.extend(["retransmits", "iperf3 received Mbit/s"]);
    if emulated {
        head.push("emulator CPU %");
    }
    head.extend([
        "system CPU %",
        "machine busy %",
        "system CPU s per Gbit",
        "machine CPU s per Gbit",
    ]);
    let mut t = Table::new(&head);
    for row in &r.rows {
        let mut cells = vec![format!("`{}`", row.system)];
        match variant(row, name) {
            Some(v) if v.error.is_none() => {
                let s = v.summary.as_ref();
                let mean = s.map(|s| s.mean_mbps);
                cells.push(num(mean, 1));
                cells.push(num(mean.zip(reference).map(|(m, r)| m / r), 2));
                cells.push(
                    s.filter(|s| s.ceiling_mbps > 0.0)
                        .map(|s| format!("{:.0} %", s.mean_mbps / s.ceiling_mbps * 100.0))
                        .unwrap_or_else(|| "–".into()),
                );
                for l in &link_names {
                    let rate =
                        s.and_then(|s| s.link_mbps.iter().find(|(n, _)| n == l).map(|x| x.1));
                    cells.push(num(rate, 1));
                }
                cells.push(v.retransmits.to_string());
                cells.push(num(Some(v.received_mbps), 1));
                if emulated {
                    cells.push(format!("{:.0}", v.emulator_cpu_pct));
                }
                cells.push(num(v.system_cpu_pct, 0));
                cells.push(format!("{:.0}", v.machine_busy_pct));
                cells.push(num(v.system_cpu_s_per_gbit, 2));
                cells.push(num(v.machine_cpu_s_per_gbit, 2));
            }
            Some(v) => cells.push(format!("**failed**: {}", v.error.as_deref().unwrap_or(""))),
            // The variant is not for this system.
            None if matches!(row.data, RowData::Tcp { .. }) || !runs(r, name, row.system) => {
                continue
            }
            // Not run at all: the systems table above says why.
            None if row.status == Status::NotAvailable => {
                cells.push("not available (see the systems above)".into())
            }
            None => cells.push(status_text(row)),
        }
        t.push(cells);
    }
    let mut out = t.render();
    if emulated {
        out.push_str(
            "\nCeiling: Σ link rate × 1448/1514 (TCP payload of a full frame). Link columns: the \
             emulator's forwarded a→b Ethernet bytes over the same window, tunnel headers \
             included. Emulator CPU: % of one core over the run.",
        );
    } else {
        out.push_str("\nThe WAN links are plain veth pairs (no emulator, no rate limit).");
    }
    out.push_str(
        " System CPU: the system's own processes \
         (both appliances, or both wireguard-go), % of one core (– for Linux routers, whose \
         work is the kernel's); machine busy: % of all cores (everything on the machine, the \
         emulator and iperf3 included). CPU s per Gbit: those CPU seconds over the Gbit iperf3 \
         received (an appliance's worker polls while traffic flows). iperf3 reads \
         retransmits from TCP_INFO, which an MPTCP socket does not fill.\n",
    );
    out
}

fn fault_table(r: &ScenarioResult, name: &str) -> String {
    let mut t = Table::new(&[
        "system",
        "fault",
        "before Mbit/s",
        "during",
        "min during",
        "stalled intervals",
        "after",
        "TTF s",
        "TTR s",
        "downtime s",
        "probes lost fail/recover",
        "probe gap ms fail/recover",
        "T-latency ms fail/recover",
    ]);
    for row in &r.rows {
        let Some(f) = variant(row, name).and_then(|v| v.summary.as_ref()?.fault.as_ref()) else {
            continue;
        };
        t.push(vec![
            format!("`{}`", row.system),
            format!(
                "link {} {} {:.1}–{:.1} s",
                f.link, f.action, f.start_s, f.end_s
            ),
            num(Some(f.before_mbps), 1),
            num(Some(f.during_mbps), 1),
            num(Some(f.min_during_mbps), 1),
            f.stalled_intervals.to_string(),
            num(Some(f.after_mbps), 1),
            num(f.ttf_s, 1),
            num(f.ttr_s, 1),
            num(Some(f.downtime_s), 1),
            pair(&f.failure, &f.recovery, |h| Some(h.lost as f64), 0),
            pair(&f.failure, &f.recovery, |h| Some(h.longest_gap_ms), 0),
            pair(&f.failure, &f.recovery, |h| h.t_latency_ms, 0),
        ]);
    }
    let mut out = t.render();
    out.push_str(
        "\nStalled: intervals during the fault below 5 % of the rate before it. TTF (mqvpn's \
         definition): from the fault to the end of the first interval at ≥ 50 % of the \
         surviving links' ceiling. TTR: from the link's return to the end of the first interval \
         at ≥ 90 % of the rate before the fault. – : not reached (TTF: before the link came back; TTR: before the end). \
         Downtime: the 0.5 s intervals from the fault to the end below 50 % of the surviving \
         links' ceiling. Probes: a sequence-stamped UDP stream beside the transfer, judged \
         from 0.5 s before the failure (recovery) to 5 s after: probes lost, the longest time \
         without an arrival, and T-latency, from the event to the end of that silence, when \
         the stream flowed again (0: the silence ended before the event, or nothing was \
         lost and no silence passed 50 ms; –: it had not ended 5 s after).\n",
    );
    out
}

/// Latency under load: the probe stream's one-way delay while the transfer runs, if the
/// variant had a probe stream and no fault.
fn latency_table(r: &ScenarioResult, name: &str) -> Option<String> {
    let mut t = Table::new(&[
        "system",
        "probe one-way delay p50 ms",
        "p99 ms",
        "max ms",
        "probes lost",
    ]);
    let mut any = false;
    for row in &r.rows {
        let Some(d) = variant(row, name).and_then(|v| v.summary.as_ref()?.probe_delay.as_ref())
        else {
            continue;
        };
        any = true;
        t.push(vec![
            format!("`{}`", row.system),
            num(Some(d.p50_ms), 1),
            num(Some(d.p99_ms), 1),
            num(Some(d.max_ms), 1),
            format!("{} of {}", d.lost, d.sent),
        ]);
    }
    if !any {
        return None;
    }
    let mut out = String::from("Latency under load:\n\n");
    out.push_str(&t.render());
    out.push_str(
        "\nA sequence-stamped UDP probe stream (160 B, marked EF as voice is) from host A to \
         host B beside the transfer: each probe's arrival minus the time it was due to leave, \
         after the first \
         `settle` (both hosts share this machine's clock). The links' own delays and queues \
         are in it; whatever a system adds on top is the difference between the rows.\n",
    );
    Some(out)
}

/// Every fault of a soak (appliance rows with health samples), then BFD flaps per path and
/// the appliances' memory over the run.
fn soak_tables(r: &ScenarioResult, name: &str) -> Option<String> {
    let mut out = String::new();
    for row in &r.rows {
        let Some(v) = variant(row, name) else {
            continue;
        };
        let (Some(s), Some(first), Some(last)) =
            (v.summary.as_ref(), v.health.first(), v.health.last())
        else {
            continue;
        };
        let _ = writeln!(
            out,
            "Every fault, `{}`:
",
            row.system
        );
        let mut t = Table::new(&[
            "fault",
            "link",
            "from s",
            "to s",
            "probes lost",
            "longest probe gap ms",
            "fewest usable paths (site A)",
            "tunnel_no_path drops",
        ]);
        for (i, f) in s.faults.iter().enumerate() {
            t.push(vec![
                (i + 1).to_string(),
                f.link.clone(),
                num(Some(f.start_s), 1),
                num(Some(f.end_s), 1),
                f.failure
                    .as_ref()
                    .map_or("-".into(), |h| h.lost.to_string()),
                num(f.failure.as_ref().map(|h| h.longest_gap_ms), 0),
                f.min_usable.map_or("-".into(), |u| u.to_string()),
                f.no_path_drops.map_or("-".into(), |d| d.to_string()),
            ]);
        }
        out.push_str(&t.render());
        let zero = s.faults.iter().filter(|f| f.min_usable == Some(0)).count();
        let flaps: Vec<String> = last
            .bfd_flaps
            .iter()
            .map(|(p, f)| format!("path {p}: site A {}, site B {}", f[0], f[1]))
            .collect();
        let max = |i: usize| v.health.iter().map(|h| h.rss_kb[i]).max().unwrap_or(0);
        let _ =
            writeln!(
            out,
            "\nFaults that left site A no usable path: {zero} of {}. BFD flaps over the run: {}. \
             Resident memory (site A, site B): {} and {} kB at the start, {} and {} kB at the end, \
             at most {} and {} kB ({} samples, every {:.2} s).\n",
            s.faults.len(),
            if flaps.is_empty() { "-".to_string() } else { flaps.join("; ") },
            first.rss_kb[0],
            first.rss_kb[1],
            last.rss_kb[0],
            last.rss_kb[1],
            max(0),
            max(1),
            v.health.len(),
            v.health.get(1).map_or(0.0, |h| h.t - first.t),
        );
    }
    (!out.is_empty()).then_some(out)
}

/// What the far appliance's reorder buffers did over the transfer (appliance rows).
fn reorder_table(r: &ScenarioResult, name: &str) -> Option<String> {
    let mut t = Table::new(&[
        "system",
        "packets through the buffer",
        "waited for an earlier one",
        "holes skipped, loss proven",
        "holes skipped at the deadline",
        "holes skipped, buffer full",
        "late (after their hole was skipped)",
        "per-flow (not reordered)",
        "held at once, max of samples",
    ]);
    let mut any = false;
    for row in &r.rows {
        let Some(v) = variant(row, name) else {
            continue;
        };
        let (Some(first), Some(last)) = (v.reorder.first(), v.reorder.last()) else {
            continue;
        };
        any = true;
        let d = |f: fn(&ReorderSample) -> u64| f(last).saturating_sub(f(first));
        let ordered = d(|s| s.in_order) + d(|s| s.held) + d(|s| s.late);
        let total = ordered + d(|s| s.unordered);
        let pct = |n: u64| {
            if ordered == 0 {
                "–".to_string()
            } else {
                format!("{n} ({:.2} %)", n as f64 * 100.0 / ordered as f64)
            }
        };
        t.push(vec![
            format!("`{}`", row.system),
            total.to_string(),
            pct(d(|s| s.held)),
            d(|s| s.released_early).to_string(),
            d(|s| s.timed_out).to_string(),
            first
                .overflow
                .zip(last.overflow)
                .map_or("–".to_string(), |(a, b)| b.saturating_sub(a).to_string()),
            d(|s| s.late).to_string(),
            d(|s| s.unordered).to_string(),
            v.reorder
                .iter()
                .map(|s| s.occupancy)
                .max()
                .unwrap_or(0)
                .to_string(),
        ]);
    }
    if !any {
        return None;
    }
    let mut out = String::from("The far appliance's reorder buffers:\n\n");
    out.push_str(&t.render());
    out.push_str(
        "\nEvery lane summed, from `show tunnel` on site B's appliance once per interval over \
         the transfer: packets of per-packet schedulers pass through the buffer and wait \
         only behind a hole; a hole goes as soon as a later packet on the same path proves \
         it lost, else at a deadline from the paths' measured delay difference. Per-flow \
         schedulers' packets are delivered at once. Occupancy is sampled, so short peaks \
         between samples are missed.\n",
    );
    Some(out)
}

/// `failure/recovery` of a probe figure.
fn pair(
    fail: &Option<ProbeHandoff>,
    recover: &Option<ProbeHandoff>,
    f: impl Fn(&ProbeHandoff) -> Option<f64>,
    digits: usize,
) -> String {
    let one =
        |h: &Option<ProbeHandoff>| h.as_ref().map_or("–".to_string(), |h| num(f(h), digits));
    if fail.is_none() && recover.is_none() {
        return "–".into();
    }
    format!("{}/{}", one(fail), one(recover))
}

fn udp_table(r: &ScenarioResult, size: u32) -> String {
    let rows: Vec<&Row> = r
        .rows
        .iter()
        .filter(|row| matches!(row.data, RowData::UdpSweep { .. }))
        .collect();
    let mut head = vec!["offered Mbit/s".to_string()];
    for row in &rows {
        head.push(format!("`{}` received Mbit/s", row.system));
        head.push("loss %".into());
        head.push("jitter ms".into());
        head.push("per link Mbit/s".into());
    }
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&head_refs);
    let rates: Vec<f64> = match r.spec.workload() {
        Workload::UdpSweep(u) => u.rates.iter().map(|x| x.0 as f64 / 1e6).collect(),
        _ => vec![],
    };
    for rate in rates {
        let mut cells = vec![format!("{rate:.1}")];
        for row in &rows {
            let RowData::UdpSweep { steps } = &row.data else {
                continue;
            };
            match steps
                .iter()
                .find(|s| s.size == size && (s.offered_mbps - rate).abs() < 1e-6)
            {
                Some(s) if s.error.is_none() => {
                    cells.push(num(Some(s.received_mbps), 2));
                    cells.push(num(Some(s.loss_pct), 3));
                    cells.push(num(Some(s.jitter_ms), 3));
                    cells.push(
                        s.link_mbps
                            .iter()
                            .map(|(l, m)| format!("{l} {m:.1}"))
                            .collect::<Vec<_>>()
                            .join(" / "),
                    );
                }
                Some(s) => {
                    cells.push(format!("error: {}", s.error.as_deref().unwrap_or("")));
                    cells.extend([String::new(), String::new(), String::new()]);
                }
                None => cells.extend(["–".into(), "–".into(), "–".into(), "–".into()]),
            }
        }
        t.push(cells);
    }
    let others: Vec<String> = r
        .rows
        .iter()
        .filter(|row| !matches!(row.data, RowData::UdpSweep { .. }))
        .map(|row| format!("`{}`: {}", row.system, status_text(row)))
        .collect();
    let mut out = t.render();
    if !others.is_empty() {
        out.push_str(&format!("\nNot in the table: {}.\n", others.join("; ")));
    }
    out
}

fn mcast_table(r: &ScenarioResult) -> String {
    let mut t = Table::new(&[
        "system",
        "input pps (target)",
        "expected",
        "delivered",
        "lost",
        "loss %",
        "dup",
        "reordered",
        "latency p50 / worst p99 / max µs",
        "relay CPU %",
        "relay CPU per packet, µs",
        "machine busy %",
        "rcvbuf errors sink / relay",
        "interface drops",
    ]);
    for row in &r.rows {
        match &row.data {
            RowData::Mcast { run } => {
                let x = &run.totals;
                t.push(vec![
                    format!("`{}`", row.system),
                    format!(
                        "{:.0} ({:.0})",
                        x.input_pps,
                        run.pps * f64::from(run.streams)
                    ),
                    x.expected.to_string(),
                    x.unique.to_string(),
                    x.lost.to_string(),
                    format!("{:.3}", x.loss_pct),
                    x.duplicates.to_string(),
                    x.reordered.to_string(),
                    format!(
                        "{:.0} / {:.0} / {:.0}",
                        x.latency_p50_us, x.latency_p99_worst_us, x.latency_max_us
                    ),
                    format!("{:.0}", run.relay_cpu_pct),
                    num(cpu_us_per_packet(run), 1),
                    format!("{:.0}", run.machine_busy_pct),
                    format!("{} / {}", run.sink_rcvbuf_errors, run.relay_rcvbuf_errors),
                    drops_text(&run.interface_drops),
                ]);
            }
            _ => t.push(vec![format!("`{}`", row.system), status_text(row)]),
        }
    }
    let mut out = t.render();
    out.push_str(
        "\nRelay CPU: the relay's processes, % of one core, and per input packet; machine \
         busy: % of all cores (generator, relay and sink included).\n",
    );
    out
}

/// The relay's CPU time per input datagram, in µs.
fn cpu_us_per_packet(run: &McastRun) -> Option<f64> {
    (run.totals.input_pps > 0.0).then(|| run.relay_cpu_pct / 100.0 / run.totals.input_pps * 1e6)
}

/// `relay 0, switch 12, sink0 0` (only the namespaces that dropped something; `0` if none).
fn drops_text(d: &[(String, u64)]) -> String {
    let some: Vec<String> = d
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(ns, n)| format!("{ns} {n}"))
        .collect();
    if some.is_empty() {
        "0".into()
    } else {
        some.join(", ")
    }
}

fn zero_loss_table(r: &ScenarioResult) -> String {
    let mut t = Table::new(&[
        "system",
        "streams",
        "fan-out",
        "max zero-loss input pps, measured (highest clean target)",
        "output pps",
        "first lossy input pps (measured)",
        "its loss: lost / sink buffer / sink checksum / relay buffer / interface drops; dup / reordered; p99 latency",
        "relay CPU per packet at max zero-loss, µs",
        "generator limit",
        "trials",
    ]);
    for row in &r.rows {
        let RowData::ZeroLoss { cases } = &row.data else {
            t.push(vec![format!("`{}`", row.system), status_text(row)]);
            continue;
        };
        for c in cases {
            let mut cells = vec![
                format!("`{}`", row.system),
                c.streams.to_string(),
                format!("1:{}", c.fanout),
            ];
            match c.status {
                Status::Ok => {
                    cells.push(format!(
                        "{} ({})",
                        num(c.max_zero_loss_measured_pps, 0),
                        num(c.max_zero_loss_pps, 0)
                    ));
                    cells.push(num(
                        c.max_zero_loss_measured_pps
                            .map(|p| p * f64::from(c.fanout)),
                        0,
                    ));
                    let lossy = c
                        .first_lossy_pps
                        .and_then(|p| c.trials.iter().find(|t| t.target_pps == p && !t.zero_loss));
                    cells.push(match lossy {
                        Some(t) => format!("{:.0} ({:.0})", t.target_pps, t.run.totals.input_pps),
                        None => "–".into(),
                    });
                    cells.push(lossy.map_or("–".into(), |t| {
                        format!(
                            "{} / {} / {} / {} / {}; {} / {}; {:.1} ms{}",
                            t.run.totals.lost,
                            t.run.sink_rcvbuf_errors,
                            t.run.sink_udp_in_errors.1,
                            t.run.relay_rcvbuf_errors,
                            drops_text(&t.run.interface_drops),
                            t.run.totals.duplicates,
                            t.run.totals.reordered,
                            t.run.totals.latency_p99_worst_us / 1000.0,
                            if t.late { " (late)" } else { "" }
                        )
                    }));
                    let best =
                        c.trials.iter().filter(|t| t.zero_loss).max_by(|a, b| {
                            a.run.totals.input_pps.total_cmp(&b.run.totals.input_pps)
                        });
                    cells.push(num(best.and_then(|t| cpu_us_per_packet(&t.run)), 1));
                    cells.push(num(c.generator_limit_pps, 0));
                    cells.push(c.trials.len().to_string());
                }
                _ => cells.push(c.error.clone().unwrap_or_default()),
            }
            t.push(cells);
        }
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_and_pad() {
        let mut t = Table::new(&["a", "b"]);
        t.push(vec!["x|y".into()]);
        assert_eq!(t.render(), "| a | b |\n|---|---|\n| x\\|y |  |\n");
        assert_eq!(num(None, 1), "–");
        assert_eq!(num(Some(f64::NAN), 1), "–");
        assert_eq!(num(Some(2.345), 2), "2.35");
    }
}
