//! Talking to a running appliance from a test: one JSON request line on its control socket,
//! one JSON reply line back (the protocol `appliancectl` speaks), and polling until a
//! condition holds.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::workspace_bin;
use crate::netns::{Netns, NsProcess};

/// Sends `line` to the control socket and returns the reply. Panics (the test fails) when
/// the socket cannot be reached or the reply is not JSON.
pub fn request(socket: &Path, line: &str) -> Value {
    let mut s = UnixStream::connect(socket).expect("connect control socket");
    s.write_all(line.as_bytes()).expect("write");
    s.write_all(b"\n").expect("write");
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).expect("read reply");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?} is not JSON: {e}"))
}

/// Polls `f` every 100 ms until it holds; panics naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the appliance in `ns` with `dir/profile.toml` and `dir/config.toml`, its final
/// counters to `dir/final.json`, and waits until its control socket `socket` answers.
pub fn start_appliance(ns: &Netns, dir: &Path, socket: &Path) -> NsProcess {
    let mut cmd = ns.command(workspace_bin("appliance"));
    cmd.arg("--profile")
        .arg(dir.join("profile.toml"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--final-stats")
        .arg(dir.join("final.json"));
    let appliance = NsProcess::spawn(cmd).expect("start appliance");
    wait_for("control socket", Duration::from_secs(30), || {
        UnixStream::connect(socket).is_ok()
    });
    appliance
}
