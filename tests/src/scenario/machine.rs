//! What the numbers were measured on: cores, kernel, CPU model, memory, load, tool
//! versions, the commit, the date. Recorded in every result so a figure is never quoted
//! without its machine.

use std::process::Command;

use serde::{Deserialize, Serialize};

/// The machine and software a run was made with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub cpu_model: String,
    pub mem_total_mb: u64,
    /// UTC, RFC 3339.
    pub date: String,
    /// `/proc/loadavg` when the run started: other work on the machine skews figures.
    pub loadavg_start: String,
    pub loadavg_end: String,
    /// Network namespaces of other runs present at the start and at the end (concurrent
    /// tests on the same machine share its two cores).
    #[serde(default)]
    pub other_netns: [usize; 2],
    /// `git describe --always --dirty` of the workspace.
    pub commit: String,
    /// The version line of each tool the rows use.
    pub tools: Vec<String>,
}

impl Machine {
    /// Reads everything but the end load (see [`Machine::finish`]).
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            cpu_model: field(&cpuinfo, "model name").unwrap_or_default(),
            mem_total_mb: field(&meminfo, "MemTotal")
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |kb| kb / 1024),
            date: now_rfc3339(),
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
            other_netns: [other_netns(), 0],
            commit: first_line(
                Command::new("git")
                    .args(["describe", "--always", "--dirty"])
                    .current_dir(crate::bins::workspace_root()),
            ),
            tools: [
                ("iperf3", "--version"),
                ("socat", "-V"),
                ("smcrouted", "-v"),
                ("mptcpize", "--version"),
            ]
            .iter()
            .filter(|(t, _)| super::tools::on_path(t))
            .map(|(t, flag)| {
                let line = first_line(Command::new(t).arg(flag));
                if line.is_empty() {
                    (*t).to_string()
                } else {
                    line
                }
            })
            .collect(),
        }
    }

    /// Records the load at the end of the run.
    pub fn finish(&mut self) {
        self.loadavg_end = loadavg();
        self.other_netns[1] = other_netns();
    }

    /// One line for a README.
    pub fn summary(&self) -> String {
        format!(
            "{} vCPU {}, {} MB, kernel {}; load {} at the start, {} at the end; other runs' \
             namespaces {} at the start, {} at the end; commit {}; {}",
            self.nproc,
            self.cpu_model,
            self.mem_total_mb,
            self.kernel,
            self.loadavg_start,
            self.loadavg_end,
            self.other_netns[0],
            self.other_netns[1],
            self.commit,
            self.date
        )
    }
}

/// Named network namespaces that are not this process's.
pub fn other_netns() -> usize {
    let mine = crate::netns::process_prefix();
    crate::netns::list_netns()
        .map(|l| l.iter().filter(|n| !n.starts_with(&mine)).count())
        .unwrap_or(0)
}

/// The current UTC time as RFC 3339 (seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The machine's CPU time counters (`/proc/stat`), to tell how busy all cores were over a
/// stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    pub fn now() -> CpuTimes {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = fields.iter().take(8).sum();
        // idle and iowait are fields 4 and 5.
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        CpuTimes {
            busy: total.saturating_sub(idle),
            total,
        }
    }

    /// Busy seconds summed over all cores since `earlier`.
    pub fn busy_seconds_since(&self, earlier: &CpuTimes) -> f64 {
        self.busy.saturating_sub(earlier.busy) as f64 / clock_ticks_per_second()
    }

    /// Percentage of all cores' time that was busy since `earlier`.
    pub fn busy_pct_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 * 100.0 / total as f64
    }
}

/// User + system CPU seconds used so far by all of `processes` (those gone count 0).
pub fn processes_cpu_seconds(processes: &[crate::netns::NsProcess]) -> f64 {
    processes.iter().map(|p| process_cpu_seconds(p.pid())).sum()
}

/// User + system CPU seconds used so far by process `pid` (0 if it is gone).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

/// The unit of `/proc/stat` and `/proc/<pid>/stat` times (USER_HZ).
fn clock_ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            // The first line with a number in it: `socat -V` starts with its authors.
            String::from_utf8_lossy(&text)
                .lines()
                .find(|l| l.contains(|c: char| c.is_ascii_digit()))
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let m = Machine::probe();
        assert!(m.nproc >= 1);
        assert!(!m.kernel.is_empty());
        assert!(m.date.ends_with('Z'), "{}", m.date);
        assert_eq!(m.loadavg_start.split_whitespace().count(), 3);
        // This process has used some CPU by now; a dead pid reads as zero.
        let me = process_cpu_seconds(std::process::id());
        assert!(me >= 0.0);
        assert_eq!(process_cpu_seconds(u32::MAX), 0.0);
        let a = CpuTimes::now();
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let busy = CpuTimes::now().busy_pct_since(&a);
        assert!((0.0..=100.0).contains(&busy), "{busy}");
    }
}
