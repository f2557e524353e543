//! The control socket: one text command per line, one JSON object per reply line.
//!
//! ```text
//! show                                     -> the full Snapshot (counters, params, events)
//! events                                   -> {"events": [...]}
//! link <name> state up|down|blackhole [both|a-to-b|b-to-a]
//! link <name> [both|a-to-b|b-to-a] <key> <value> [<key> <value>...]
//!        keys: delay jitter rate queue loss ge_p ge_r reorder overhead  (rate 0 = unlimited)
//! stop                                     -> shuts the emulator down
//! ```
//! Errors come back as `{"error": "..."}`; successful changes as `{"ok": true}`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::config::{DirPatch, Direction, LinkState};
use super::engine::{Change, Emulator};

/// A parsed control command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Show,
    Events,
    Stop,
    Link(String, Change),
}

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["show"] => Ok(Command::Show),
        ["events"] => Ok(Command::Events),
        ["stop"] => Ok(Command::Stop),
        ["link", name, "state", state, rest @ ..] => {
            ensure!(rest.len() <= 1, "too many words after the state");
            Ok(Command::Link(
                (*name).to_owned(),
                Change::State(LinkState::parse(state, rest.first().copied())?),
            ))
        }
        ["link", name, rest @ ..] => {
            let (dir, kv) = match rest.first().map(|s| s.parse::<Direction>()) {
                Some(Ok(d)) => (d, &rest[1..]),
                _ => (Direction::Both, rest),
            };
            ensure!(
                !kv.is_empty() && kv.len() % 2 == 0,
                "expected <key> <value> pairs after the link name"
            );
            let mut patch = DirPatch::default();
            for pair in kv.chunks(2) {
                patch.set(pair[0], pair[1])?;
            }
            Ok(Command::Link((*name).to_owned(), Change::Set(dir, patch)))
        }
        [] => bail!("empty command"),
        _ => bail!("unknown command {line:?}"),
    }
}

/// Executes one command line against the emulator and returns the JSON reply.
pub fn execute(emu: &Emulator, line: &str) -> Value {
    let result = parse(line).and_then(|cmd| -> Result<Value> {
        Ok(match cmd {
            Command::Show => serde_json::to_value(emu.snapshot())?,
            Command::Events => json!({ "events": emu.snapshot().events }),
            Command::Stop => {
                emu.shutdown.store(true, Ordering::Relaxed);
                json!({ "ok": true })
            }
            Command::Link(name, change) => {
                emu.apply(&name, &change, None)?;
                json!({ "ok": true })
            }
        })
    });
    result.unwrap_or_else(|e| json!({ "error": format!("{e:#}") }))
}

/// Binds the control socket at `path` (replacing a stale one) and serves it from a
/// background thread; each connection gets its own thread blocked in `read`.
pub fn serve(emu: Arc<Emulator>, path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("removing stale {path:?}"))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("binding {path:?}"))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        let emu = emu.clone();
                        let _ = std::thread::Builder::new()
                            .name("control-conn".into())
                            .spawn(move || {
                                if let Err(e) = handle(&emu, stream) {
                                    log::debug!("control connection: {e}");
                                }
                            });
                    }
                    Err(e) => log::warn!("control accept: {e}"),
                }
            }
        })?;
    Ok(())
}

fn handle(emu: &Emulator, stream: UnixStream) -> Result<()> {
    let mut out = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = execute(emu, line.trim());
        writeln!(out, "{reply}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("show").unwrap(), Command::Show);
        assert_eq!(
            parse("link a state blackhole a-to-b").unwrap(),
            Command::Link(
                "a".into(),
                Change::State(LinkState::Blackhole(Direction::AToB))
            )
        );
        assert_eq!(
            parse("link a state down").unwrap(),
            Command::Link("a".into(), Change::State(LinkState::Down))
        );
        let Command::Link(_, Change::Set(dir, p)) =
            parse("link x b-to-a delay 30ms loss 1%").unwrap()
        else {
            panic!("not a set")
        };
        assert_eq!(dir, Direction::BToA);
        assert_eq!(p.delay.unwrap().0, Duration::from_millis(30));
        assert_eq!(p.loss, Some(0.01));
        let Command::Link(_, Change::Set(dir, _)) = parse("link x delay 5ms").unwrap() else {
            panic!("not a set")
        };
        assert_eq!(dir, Direction::Both);
        assert!(parse("link x delay").is_err());
        assert!(parse("link x state sideways").is_err());
        assert!(parse("frobnicate").is_err());
    }
}
