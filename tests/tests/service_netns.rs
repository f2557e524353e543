//! The appliance under a service manager, as systemd runs it: the unit file verifies
//! (`systemd-analyze verify`), and against a listening `NOTIFY_SOCKET` the appliance says
//! READY once it forwards, pings the watchdog while its worker loops, stops pinging while the
//! worker is held (stopped alone, by ptrace, as a wedged worker would be), resumes when it
//! runs again, and says STOPPING at SIGTERM.

use std::net::Ipv4Addr;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use testbed::bins::{workspace_bin, workspace_root};
use testbed::control::wait_for;
use testbed::netns::{skip_unless_root, veth, Netns, NsProcess, RunId};

/// The watchdog timeout handed to the appliance: it checks and pings every half of it.
const WATCHDOG: Duration = Duration::from_secs(1);

/// How long the worker is held: several timeouts without a ping.
const HOLD: Duration = Duration::from_secs(3);

#[test]
fn the_unit_file_verifies() {
    if skip_unless_root(&["systemd-analyze"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = workspace_bin("appliance");
    let unit =
        std::fs::read_to_string(workspace_root().join("packaging/systemd/appliance.service.in"))
            .expect("unit template")
            .replace(
                "@BINDIR@",
                &bin.parent().expect("bin dir").display().to_string(),
            )
            .replace("@SYSCONFDIR@", "/etc")
            .replace("@DOCDIR@", "/usr/share/doc/appliance");
    assert!(!unit.contains('@'), "a placeholder is left: {unit}");
    let file = dir.path().join("appliance.service");
    std::fs::write(&file, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

/// The notify messages received so far, one string per datagram.
fn messages(sock: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

/// Watchdog pings that arrive within `span`.
fn pings_within(sock: &UnixDatagram, span: Duration) -> usize {
    let deadline = Instant::now() + span;
    let mut n = 0;
    while Instant::now() < deadline {
        n += messages(sock)
            .iter()
            .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .count();
        std::thread::sleep(Duration::from_millis(20));
    }
    n
}

/// The thread id of the appliance's worker lcore thread (DPDK 22.11 names it `rte-worker-<lcore>`).
fn worker_tid(pid: u32) -> Option<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.trim().starts_with("rte-worker"))
        })
        .and_then(|e| e.file_name().to_str()?.parse().ok())
}

/// Stops thread `tid` alone (the rest of the process runs on) for `span`, then lets it go.
fn hold_thread(tid: i32, span: Duration) {
    let tid = Pid::from_raw(tid);
    ptrace::seize(tid, ptrace::Options::empty()).expect("PTRACE_SEIZE the worker");
    ptrace::interrupt(tid).expect("PTRACE_INTERRUPT");
    waitpid(tid, Some(WaitPidFlag::__WALL)).expect("the worker stops");
    std::thread::sleep(span);
    ptrace::detach(tid, None).expect("PTRACE_DETACH");
}

#[test]
fn notify_ready_watchdog_while_workers_loop_and_stopping() {
    if skip_unless_root(&["ip"]) {
        return;
    }
    let run = RunId::new();
    let app = Netns::create(&run.ns_name("app")).expect("netns app");
    let peer = Netns::create(&run.ns_name("peer")).expect("netns peer");
    veth(&peer, "lan0", &app, "apl-lan", 1500).expect("veth lan");
    veth(&peer, "wan0", &app, "apl-wan", 1500).expect("veth wan");
    app.disable_ipv6().expect("no ipv6");
    peer.addr_add("lan0", Ipv4Addr::new(10, 10, 1, 10), 24)
        .expect("peer address");

    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("ctl.sock");
    std::fs::copy(
        workspace_root().join("hw-profiles/vm-af-packet.toml"),
        dir.path().join("profile.toml"),
    )
    .expect("profile");
    let config = std::fs::read_to_string(workspace_root().join("configs/demo.toml"))
        .expect("config")
        .replace("/run/appliance/demo.sock", &socket.display().to_string());
    std::fs::write(dir.path().join("config.toml"), config).expect("config");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind NOTIFY_SOCKET");
    notify.set_nonblocking(true).expect("nonblocking");

    let mut cmd = app.command(workspace_bin("appliance"));
    cmd.arg("--profile")
        .arg(dir.path().join("profile.toml"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string());
    let appliance = NsProcess::spawn(cmd).expect("start appliance");
    let pid = appliance.pid();

    // READY once it forwards: by then the control socket answers.
    let mut seen = Vec::new();
    wait_for("READY=1", Duration::from_secs(30), || {
        seen.extend(messages(&notify));
        seen.iter().any(|m| m.lines().any(|l| l == "READY=1"))
    });
    let ready = seen.iter().find(|m| m.contains("READY=1")).expect("ready");
    assert!(ready.contains("STATUS=forwarding: 1 workers"), "{ready}");
    assert!(
        std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "READY before the control socket answers"
    );

    // Pinged every half timeout while the worker loops.
    let pings = pings_within(&notify, 3 * WATCHDOG);
    assert!((4..=8).contains(&pings), "{pings} pings in 3 timeouts");

    // The worker held: no ping for as long as it is held (a check already under way may
    // still ping once), then pings again.
    let tid = worker_tid(pid).unwrap_or_else(|| {
        let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                    .collect()
            })
            .unwrap_or_default();
        panic!("no rte-worker thread in {names:?}")
    });
    let holder = std::thread::spawn(move || hold_thread(tid, HOLD));
    std::thread::sleep(WATCHDOG);
    // What was sent before the hold showed (read now, not counted).
    messages(&notify);
    let while_held = pings_within(&notify, HOLD - WATCHDOG - Duration::from_millis(200));
    holder.join().expect("holder thread");
    assert_eq!(while_held, 0, "pings while the worker was held");
    let after = pings_within(&notify, 2 * WATCHDOG);
    assert!(after >= 2, "{after} pings after the worker was let go");

    appliance.signal(Signal::SIGTERM).expect("SIGTERM");
    let out = appliance
        .wait_timeout(Duration::from_secs(20))
        .expect("appliance exits on SIGTERM");
    assert!(out.status.success(), "clean exit: {}", out.stderr);
    assert!(
        out.stderr.contains("made no progress") && out.stderr.contains("pings resume"),
        "the stall is logged: {}",
        out.stderr
    );
    let last = messages(&notify);
    assert!(
        last.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "STOPPING=1 at SIGTERM: {last:?}"
    );
}
