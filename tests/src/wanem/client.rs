//! Driving a `wan-emulator` process from tests: start it in a namespace, talk to its control
//! socket, stop it and collect its final counters.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::config::Config;
use super::engine::Snapshot;
use crate::netns::{Netns, NsProcess};
use crate::rundir::RunDir;

/// A connection to the control socket.
#[derive(Debug)]
pub struct Control {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Control {
    pub fn connect(path: &Path) -> Result<Control> {
        let s = UnixStream::connect(path).with_context(|| format!("connecting to {path:?}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Control {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// Sends one command; a reply with an `error` field is an error.
    pub fn cmd(&mut self, line: &str) -> Result<Value> {
        writeln!(self.writer, "{line}")?;
        let mut reply = String::new();
        self.reader.read_line(&mut reply)?;
        let v: Value = serde_json::from_str(&reply)
            .with_context(|| format!("bad reply to {line:?}: {reply:?}"))?;
        if let Some(e) = v.get("error") {
            bail!("{line:?}: {e}");
        }
        Ok(v)
    }

    pub fn show(&mut self) -> Result<Snapshot> {
        Ok(serde_json::from_value(self.cmd("show")?)?)
    }
}

/// A `wan-emulator` running inside a namespace; killed when dropped. Its config and control
/// socket live in a temporary directory removed with it, or on SIGINT/SIGTERM/SIGHUP of this
/// process ([`RunDir`]).
#[derive(Debug)]
pub struct EmulatorProcess {
    // Declared before `dir`: the process stops before its directory is removed.
    process: Option<NsProcess>,
    dir: RunDir,
    pub control_path: PathBuf,
}

impl EmulatorProcess {
    /// Writes `config` (its `control` path is replaced), starts `exe --config ...` in `ns`
    /// and waits until the control socket answers.
    pub fn start(ns: &Netns, exe: &Path, config: &Config, extra_args: &[&str]) -> Result<Self> {
        let dir = RunDir::new("wanem")?;
        let control_path = dir.path().join("control.sock");
        let mut cfg = config.clone();
        cfg.control = Some(control_path.to_string_lossy().into_owned());
        let cfg_path = dir.path().join("wanem.toml");
        std::fs::write(&cfg_path, cfg.to_toml()?)?;
        // Round-robin real-time priority (util-linux chrt) keeps its release times exact on a
        // busy machine; a frame is never held up behind ordinary tasks. Its busy-waits are
        // bounded, and the kernel's RT throttling leaves 5 % to everything else regardless.
        let mut args = vec![
            "chrt",
            "--rr",
            "1",
            exe.to_str().context("emulator path")?,
            "--config",
            cfg_path.to_str().context("config path")?,
        ];
        args.extend_from_slice(extra_args);
        let mut process = ns.spawn(&args)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if control_path.exists() && Control::connect(&control_path).is_ok() {
                break;
            }
            if !process.is_running() {
                let out = process.wait_timeout(Duration::from_secs(1))?;
                bail!(
                    "wan-emulator exited ({}): {}",
                    out.status,
                    out.stderr.trim()
                );
            }
            if Instant::now() > deadline {
                bail!("wan-emulator did not open its control socket within 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(EmulatorProcess {
            process: Some(process),
            dir,
            control_path,
        })
    }

    pub fn control(&self) -> Result<Control> {
        Control::connect(&self.control_path)
    }

    /// The temporary directory holding its files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, for CPU accounting.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(NsProcess::pid)
    }

    /// Stops it with SIGTERM and returns the final snapshot it prints on exit.
    pub fn stop(mut self) -> Result<Snapshot> {
        let p = self.process.take().context("already stopped")?;
        let out = p.stop()?;
        let last = out
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .with_context(|| format!("no final snapshot; stderr: {}", out.stderr.trim()))?;
        Ok(serde_json::from_str(last)?)
    }
}
