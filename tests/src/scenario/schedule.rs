//! The event schedule of a variant: the scenario's link events in time order, each turned
//! into the emulator control command that applies it, and the fault spans they make (from
//! a `down` or `blackhole` to the link's next `up`), which the analysis and the plots use.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::result::AppliedEvent;
use crate::wanem::{Action, DirPatch, Direction, Event};

/// One event, due `at` after the traffic starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub link: String,
    pub action: &'static str,
    /// The control-socket line that applies it.
    pub command: String,
}

/// The events in time order (events at the same time keep their file order).
pub fn schedule(events: &[Event]) -> Vec<Step> {
    let mut steps: Vec<Step> = events
        .iter()
        .map(|e| Step {
            at: e.at.0,
            link: e.link.clone(),
            action: action_name(e.action),
            command: command(e),
        })
        .collect();
    steps.sort_by_key(|s| s.at);
    steps
}

pub fn action_name(a: Action) -> &'static str {
    match a {
        Action::Up => "up",
        Action::Down => "down",
        Action::Blackhole => "blackhole",
        Action::Set => "set",
    }
}

fn direction_word(d: Direction) -> &'static str {
    match d {
        Direction::Both => "both",
        Direction::AToB => "a-to-b",
        Direction::BToA => "b-to-a",
    }
}

/// The `wan-emulator` control command for one event (see `wanem::control`).
pub fn command(e: &Event) -> String {
    match e.action {
        Action::Up => format!("link {} state up", e.link),
        Action::Down => format!("link {} state down", e.link),
        Action::Blackhole => format!(
            "link {} state blackhole {}",
            e.link,
            direction_word(e.direction)
        ),
        Action::Set => format!(
            "link {} {}{}",
            e.link,
            direction_word(e.direction),
            patch_words(&e.params.clone().unwrap_or_default())
        ),
    }
}

/// ` key value` pairs for every field a patch sets, in the control syntax.
fn patch_words(p: &DirPatch) -> String {
    let mut w = String::new();
    let mut add = |k: &str, v: String| w.push_str(&format!(" {k} {v}"));
    if let Some(v) = p.delay {
        add("delay", v.to_string());
    }
    if let Some(v) = p.jitter {
        add("jitter", v.to_string());
    }
    if let Some(v) = p.reorder {
        add("reorder", if v { "on" } else { "off" }.into());
    }
    if let Some(v) = p.rate {
        add("rate", if v.0 == 0 { "0".into() } else { v.to_string() });
    }
    if let Some(v) = p.queue {
        add("queue", v.to_string());
    }
    if let Some(v) = p.overhead {
        add("overhead", v.to_string());
    }
    for (k, v) in [("loss", p.loss), ("ge_p", p.ge_p), ("ge_r", p.ge_r)] {
        if let Some(v) = v {
            add(k, v.to_string());
        }
    }
    w
}

/// A time during which a link was failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpan {
    pub link: String,
    /// `down` or `blackhole`.
    pub action: String,
    pub start: f64,
    /// When the link came back up, or the end of the traffic.
    pub end: f64,
    /// False when the link was still failed at the end.
    pub recovered: bool,
}

/// Fault spans from applied events, in order of their start; `end` closes spans still open.
pub fn fault_spans(events: &[AppliedEvent], end: f64) -> Vec<FaultSpan> {
    let mut sorted: Vec<&AppliedEvent> = events.iter().collect();
    sorted.sort_by(|a, b| a.applied_s.total_cmp(&b.applied_s));
    let mut open: Vec<FaultSpan> = Vec::new();
    let mut done = Vec::new();
    for e in sorted {
        let pos = open.iter().position(|s| s.link == e.link);
        match e.action.as_str() {
            "down" | "blackhole" => {
                // A second failure of an already failed link changes its kind, not its start.
                if let Some(i) = pos {
                    open[i].action = e.action.clone();
                } else {
                    open.push(FaultSpan {
                        link: e.link.clone(),
                        action: e.action.clone(),
                        start: e.applied_s,
                        end,
                        recovered: false,
                    });
                }
            }
            "up" => {
                if let Some(i) = pos {
                    let mut s = open.remove(i);
                    s.end = e.applied_s;
                    s.recovered = true;
                    done.push(s);
                }
            }
            _ => {}
        }
    }
    done.extend(open);
    done.sort_by(|a, b| a.start.total_cmp(&b.start));
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wanem::Dur;

    fn ev(at_ms: u64, link: &str, action: Action) -> Event {
        Event {
            at: Dur(Duration::from_millis(at_ms)),
            link: link.into(),
            action,
            direction: Direction::Both,
            params: None,
        }
    }

    fn applied(t: f64, link: &str, action: &str) -> AppliedEvent {
        AppliedEvent {
            at_s: t,
            applied_s: t + 0.001,
            link: link.into(),
            action: action.into(),
            command: String::new(),
        }
    }

    #[test]
    fn sorts_and_builds_commands() {
        let mut bh = ev(20_000, "a", Action::Blackhole);
        bh.direction = Direction::AToB;
        let mut set = ev(5_000, "b", Action::Set);
        set.params = Some(DirPatch {
            delay: Some(Dur(Duration::from_millis(30))),
            loss: Some(0.01),
            ..Default::default()
        });
        let steps = schedule(&[
            ev(40_000, "a", Action::Up),
            bh,
            set,
            ev(20_000, "b", Action::Down),
        ]);
        let got: Vec<(u128, &str)> = steps
            .iter()
            .map(|s| (s.at.as_millis(), s.command.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (5_000, "link b both delay 30ms loss 0.01"),
                (20_000, "link a state blackhole a-to-b"),
                (20_000, "link b state down"),
                (40_000, "link a state up"),
            ]
        );
        // Every command is one the emulator's control parser accepts.
        for s in &steps {
            crate::wanem::control::parse(&s.command).unwrap();
        }
    }

    #[test]
    fn spans_from_failure_to_up_or_end() {
        let events = [
            applied(20.0, "a", "down"),
            applied(25.0, "b", "blackhole"),
            applied(40.0, "a", "up"),
            applied(30.0, "a", "blackhole"),
            applied(45.0, "c", "up"),
        ];
        let spans = fault_spans(&events, 60.0);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].link, "a");
        assert_eq!(spans[0].action, "blackhole");
        assert!((spans[0].start - 20.001).abs() < 1e-9 && (spans[0].end - 40.001).abs() < 1e-9);
        assert!(spans[0].recovered);
        assert_eq!(spans[1].link, "b");
        assert_eq!(spans[1].end, 60.0);
        assert!(!spans[1].recovered);
        assert!(fault_spans(&[], 10.0).is_empty());
    }
}
