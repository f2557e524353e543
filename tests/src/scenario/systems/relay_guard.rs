//! What a multicast relay system leaves running during a trial: its processes (inside the
//! relay namespace) and their files. Dropping the guard kills the processes and removes the
//! files; [`RelayGuard::stop`] does the same politely and returns what they reported.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use crate::netns::NsProcess;
use crate::rundir::RunDir;

/// The running relay.
#[derive(Debug, Default)]
pub struct RelayGuard {
    // Processes stop before their directory goes (fields drop in order).
    pub processes: Vec<NsProcess>,
    pub dir: Option<RunDir>,
    /// A JSON file the system writes when it stops (the appliance's `--final-stats`).
    pub final_stats: Option<PathBuf>,
    /// SIGINT rather than SIGTERM asks it to stop cleanly (the appliance prints its counters).
    pub stop_with_sigint: bool,
    pub notes: Vec<String>,
}

impl RelayGuard {
    /// User + system CPU time of its processes so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        crate::scenario::machine::processes_cpu_seconds(&self.processes)
    }

    /// True while every process is still running.
    pub fn all_running(&mut self) -> bool {
        self.processes.iter_mut().all(NsProcess::is_running)
    }

    /// Stops everything; returns the tail of each process's stderr (when it said anything)
    /// and the final-stats JSON if one was written.
    pub fn stop(mut self) -> Result<Value> {
        let mut stderr = Vec::new();
        for p in std::mem::take(&mut self.processes) {
            let out = if self.stop_with_sigint {
                let _ = p.signal(nix::sys::signal::Signal::SIGINT);
                p.wait_timeout(Duration::from_secs(20))?
            } else {
                p.stop()?
            };
            let text = out.stderr.trim();
            if !text.is_empty() {
                stderr.push(tail(text, 1500));
            }
        }
        // Many identical processes (socat) say the same thing: keep a few.
        stderr.dedup();
        stderr.truncate(4);
        let final_stats = self
            .final_stats
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        Ok(json!({ "stderr": stderr, "final_stats": final_stats }))
    }
}

/// The last `max` bytes of `s` (on a character boundary).
pub fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}
