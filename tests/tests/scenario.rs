//! The scenario runner end to end, as root: a 3-second two-link scenario with one Linux row
//! and one appliance row (the tunnel, wlb) writes a sane result.json, README.md and PNG
//! plots, and leaves no namespace, temporary directory or process behind; a run interrupted
//! with SIGINT leaves nothing either; the encrypted baselines (wireguard-go, kernel IPsec) run
//! on a direct link, or say why the kernel cannot.
//!
//! Leftover processes are found by making this test process a child subreaper: whatever the
//! runner started and did not stop is re-parented here when the runner exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testbed::netns::list_netns;
use testbed::scenario::result::{Row, RowData, ScenarioResult, Status, TcpVariant};
use testbed::scenario::System;
use testbed::skip_unless_root;

const TINY: &str = r#"
name = "tiny"
description = "Two links, one ECMP row, 3 s; link a blackholed from 1 s to 2 s."
topology = "sites"
events = [ { at = "1s", link = "a", action = "blackhole" },
           { at = "2s", link = "a", action = "up" } ]
systems = ["linux-ecmp-vxlan", "appliance-wlb"]
[[links]]
name = "a"
both = { rate = "30mbit", delay = "10ms", queue = "100ms" }
[[links]]
name = "b"
both = { rate = "8mbit", delay = "30ms", queue = "100ms" }
[tcp]
parallel = 4
duration = "DURATION"
interval = "0.5s"
settle = "0.5s"
"#;

fn runner() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_scenario"))
}

/// Writes the tiny scenario with `duration` into `dir`.
fn scenario_file(dir: &Path, duration: &str) -> Result<PathBuf> {
    let f = dir.join("tiny.toml");
    std::fs::write(&f, TINY.replace("DURATION", duration))?;
    Ok(f)
}

/// Reaps this process's zombie children: processes the runner killed on its way out are
/// re-parented here and wait to be reaped.
fn reap_zombies() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(s) = waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Pids of this process's live children (with the subreaper set: also orphaned
/// descendants of the runner).
fn children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(me)
        })
        .collect()
}

/// Checks that nothing of the runner with pid `pid` is left: namespaces, temp dirs,
/// processes.
fn nothing_left(pid: u32) -> Result<()> {
    let prefix = format!("tb{pid:x}x");
    let ns: Vec<String> = list_netns()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    ensure!(ns.is_empty(), "namespaces left behind: {ns:?}");
    let dirs: Vec<String> = std::fs::read_dir(std::env::temp_dir())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    ensure!(
        dirs.is_empty(),
        "temporary directories left behind: {dirs:?}"
    );
    // Give the kernel a moment to re-parent, then reap what was killed.
    std::thread::sleep(Duration::from_millis(200));
    reap_zombies();
    let left = children();
    let names: Vec<String> = left
        .iter()
        .map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default())
        .collect();
    ensure!(left.is_empty(), "processes left behind: {left:?} {names:?}");
    Ok(())
}

/// Runs the scenario `file` into `out` with `--strict` (a failed row fails the run), printing
/// what the runner said; the runner's pid, for [`nothing_left`].
fn run_to_the_end(file: &Path, out: &Path) -> Result<u32> {
    let started = Instant::now();
    let child = Command::new(runner())
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("--strict")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "runner took {:.1} s:\n{stderr}",
        started.elapsed().as_secs_f64()
    );
    ensure!(output.status.success(), "runner failed: {stderr}");
    Ok(pid)
}

/// The first variant of `row`, which must be `system`'s and have run.
fn first_variant(row: &Row, system: System) -> Result<&TcpVariant> {
    ensure!(
        row.system == system && row.status == Status::Ok,
        "{}: {:?} {:?}",
        row.system,
        row.status,
        row.error
    );
    let RowData::Tcp { variants } = &row.data else {
        anyhow::bail!("{system} row has no TCP data");
    };
    variants.first().context("no variant")
}

/// Width and height from a PNG's IHDR.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[1..4] != b"PNG" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

#[test]
fn a_tiny_scenario_writes_sane_results_and_leaves_nothing() -> Result<()> {
    if skip_unless_root(&["iperf3", "ethtool", "ping", "nft", "chrt"]) {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true)?;
    let dir = tempfile::tempdir()?;
    let file = scenario_file(dir.path(), "3s")?;
    let out = dir.path().join("out");
    let pid = run_to_the_end(&file, &out)?;
    nothing_left(pid)?;

    let result: ScenarioResult =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json"))?)
            .context("result.json is a scenario result")?;
    ensure!(
        result.machine.nproc >= 1
            && !result.machine.kernel.is_empty()
            && !result.machine.cpu_model.is_empty()
    );
    ensure!(result.rows.len() == 2, "two rows: {:?}", result.rows.len());
    let v = first_variant(&result.rows[0], System::LinuxEcmpVxlan)?;
    ensure!(v.intervals.len() >= 5, "{} intervals", v.intervals.len());
    let s = v.summary.as_ref().context("no summary")?;
    // Both links together carry at most 38 Mbit/s (a little more in one 0.5 s interval,
    // from the queues); something must have got through.
    ensure!(
        s.mean_mbps > 1.0 && s.mean_mbps < 45.0,
        "mean {} Mbit/s",
        s.mean_mbps
    );
    ensure!(
        v.intervals.iter().all(|i| i.mbps >= 0.0 && i.mbps < 60.0),
        "an interval above both links' rate: {:?}",
        v.intervals
    );
    ensure!(v.events.len() == 2, "events applied: {:?}", v.events);
    ensure!(
        (v.events[0].applied_s - 1.0).abs() < 0.2 && (v.events[1].applied_s - 2.0).abs() < 0.2,
        "events applied on time: {:?}",
        v.events
    );
    let fault = s.fault.as_ref().context("no fault summary")?;
    ensure!(fault.link == "a" && fault.action == "blackhole");
    ensure!(v.links.len() >= 5, "{} link samples", v.links.len());
    // The emulator's counters: link a dropped what arrived during the blackhole. ECMP hashes
    // each flow (and its ACKs) onto a link on its own, so with 4 flows link a carries some
    // of them in one direction or the other unless all eight hashes chose link b (1 in 256);
    // then there is nothing for the blackhole to drop, and nothing to check.
    let link_a = &v.emulator["links"][0];
    let (mut received, mut dropped) = (0, 0);
    for dir in ["a_to_b", "b_to_a"] {
        received += link_a[dir]["rx_frames"]
            .as_u64()
            .context("emulator snapshot in the result")?;
        dropped += link_a[dir]["dropped"]["blackhole"]
            .as_u64()
            .context("emulator snapshot in the result")?;
    }
    eprintln!("link a: {received} frames received, {dropped} dropped in its blackhole");
    ensure!(
        dropped <= received && (received < 200 || dropped > 0),
        "link a received {received} frames and dropped {dropped} in its blackhole"
    );
    // The tunnel row ran: both appliances, traffic through them, their CPU measured.
    let v = first_variant(&result.rows[1], System::ApplianceWlb)?;
    let s = v.summary.as_ref().context("no summary")?;
    ensure!(
        s.mean_mbps > 1.0 && s.mean_mbps < 45.0,
        "mean {} Mbit/s",
        s.mean_mbps
    );
    ensure!(
        v.system_cpu_pct.is_some_and(|c| c > 0.0),
        "appliance CPU {:?}",
        v.system_cpu_pct
    );
    // wlb sends per packet: the far side's reorder buffers saw the transfer.
    let (first, last) = (v.reorder.first(), v.reorder.last());
    let through = first
        .zip(last)
        .map_or(0, |(a, b)| (b.in_order + b.held) - (a.in_order + a.held));
    ensure!(
        v.reorder.len() >= 4 && through > 100,
        "reorder samples {:?}",
        v.reorder
    );

    let md = std::fs::read_to_string(out.join("README.md"))?;
    for needle in [
        "# tiny",
        "| `linux-ecmp-vxlan` |",
        "mean Mbit/s",
        "link a blackhole",
        "| `appliance-wlb` |",
        "reorder buffers",
        "![",
        "result.json",
        &result.machine.kernel,
    ] {
        ensure!(md.contains(needle), "README lacks {needle:?}:\n{md}");
    }
    for png in ["throughput.png", "links.png", "reorder.png"] {
        let bytes = std::fs::read(out.join(png)).with_context(|| png.to_string())?;
        let (w, h) = png_size(&bytes).with_context(|| format!("{png} is not a PNG"))?;
        ensure!(w >= 800 && h >= 300, "{png} is {w}x{h}");
        ensure!(bytes.len() > 10_000, "{png} is only {} bytes", bytes.len());
        ensure!(md.contains(png), "README does not show {png}");
    }
    Ok(())
}

#[test]
fn an_interrupted_run_leaves_nothing() -> Result<()> {
    if skip_unless_root(&["iperf3", "ethtool", "ping", "nft", "chrt"]) {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true)?;
    let dir = tempfile::tempdir()?;
    let file = scenario_file(dir.path(), "30s")?;
    let mut child = Command::new(runner())
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let prefix = format!("tb{pid:x}x");
    // Wait until the traffic runs: the emulator's temporary directory exists and iperf3 is
    // connected (the variant's progress line has been printed well before).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let has_emulator = std::fs::read_dir(std::env::temp_dir())?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .any(|n| n.starts_with(&format!("{prefix}-wanem")));
        if has_emulator {
            break;
        }
        ensure!(child.try_wait()?.is_none(), "runner exited early");
        ensure!(
            Instant::now() < deadline,
            "the run did not start within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        ensure!(
            Instant::now() < deadline,
            "runner did not exit within 20 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(
        status.code() == Some(130),
        "exit status {status} (want 128 + SIGINT)"
    );
    nothing_left(pid)?;
    ensure!(
        !dir.path().join("out/result.json").exists(),
        "an interrupted run wrote results"
    );
    Ok(())
}

const ENCRYPTED_DIRECT: &str = r#"
name = "encrypted-direct"
description = "One direct link (no emulator), the encrypted tunnels users pick today, 2 s."
topology = "sites"
wan = "direct"
systems = ["linux-wireguard", "linux-ipsec"]
[[links]]
name = "a"
[tcp]
parallel = 1
duration = "2s"
interval = "0.5s"
settle = "0.5s"
"#;

/// The encrypted baselines on a direct link: wireguard-go carries the transfer and its CPU per
/// Gbit is measured; kernel IPsec runs, or says why this kernel cannot (no ESP); neither
/// leaves a process or a wireguard-go control socket behind.
#[test]
fn the_encrypted_baselines_run_on_a_direct_link() -> Result<()> {
    if skip_unless_root(&["iperf3", "ping", "nft", "wireguard-go", "wg"]) {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true)?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("encrypted-direct.toml");
    std::fs::write(&file, ENCRYPTED_DIRECT)?;
    let out = dir.path().join("out");
    let pid = run_to_the_end(&file, &out)?;
    nothing_left(pid)?;
    let sockets: Vec<String> = std::fs::read_dir("/var/run/wireguard")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("tb{pid:x}x")))
                .collect()
        })
        .unwrap_or_default();
    ensure!(sockets.is_empty(), "wireguard-go sockets left: {sockets:?}");

    let result: ScenarioResult =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json"))?)?;
    let v = first_variant(&result.rows[0], System::LinuxWireguard)?;
    ensure!(
        v.received_mbps > 10.0,
        "wireguard-go: {} Mbit/s",
        v.received_mbps
    );
    ensure!(v.links.is_empty(), "no emulator, no link samples");
    ensure!(
        v.system_cpu_pct.is_some_and(|c| c > 0.0)
            && v.system_cpu_s_per_gbit.is_some_and(|c| c > 0.0)
            && v.machine_cpu_s_per_gbit >= v.system_cpu_s_per_gbit,
        "CPU: {:?} %, {:?} s/Gbit of {:?} s/Gbit",
        v.system_cpu_pct,
        v.system_cpu_s_per_gbit,
        v.machine_cpu_s_per_gbit
    );
    let ipsec = &result.rows[1];
    match ipsec.status {
        Status::Ok => {}
        Status::NotAvailable => ensure!(
            ipsec
                .error
                .as_deref()
                .is_some_and(|e| e.contains("CONFIG_INET_ESP")),
            "{:?}",
            ipsec.error
        ),
        Status::Failed => anyhow::bail!("linux-ipsec failed: {:?}", ipsec.error),
    }
    let md = std::fs::read_to_string(out.join("README.md"))?;
    ensure!(
        md.contains("machine CPU s per Gbit") && md.contains("plain veth pairs"),
        "{md}"
    );
    Ok(())
}
