//! `linux-smcroute`: kernel multicast routing, set up by `smcrouted` with one static
//! `mroute` per input group from the generator-side interface to the sink-side one. The kernel
//! forwards each datagram unchanged (same group and port, TTL - 1): smcroute cannot
//! translate (smcroute#136), and with one sink segment it has one output per input, so it
//! serves the 1:1 cases only and the sinks join the input groups.

use anyhow::{ensure, Context, Result};

use super::RelayGuard;
use crate::rundir::RunDir;
use crate::scenario::mcast_plan::StreamPlan;
use crate::scenario::tools::require;
use crate::topology::Relay;

/// Why a case cannot run on smcroute, if it cannot.
pub fn unavailable(fanout: u32) -> Option<String> {
    (fanout > 1).then(|| {
        format!(
            "not available: smcroute routes without translation, so a 1:{fanout} fan-out would \
             need {fanout} output segments"
        )
    })
}

/// What the sinks receive: the input groups themselves.
pub fn delivered(plan: &[StreamPlan]) -> Vec<StreamPlan> {
    plan.iter()
        .map(|s| StreamPlan {
            input: s.input,
            outputs: vec![s.input],
        })
        .collect()
}

pub fn setup(r: &Relay, plan: &[StreamPlan]) -> Result<RelayGuard> {
    require("smcrouted", "smcroute")?;
    let dir = RunDir::new("smcroute")?;
    let conf = dir.path().join("smcroute.conf");
    let sock = dir.path().join("smcroute.sock");
    let mut text = format!(
        "phyint {} enable\nphyint {} enable\n",
        r.app_gen_iface, r.app_sink_iface
    );
    for s in plan {
        text.push_str(&format!(
            "mroute from {} group {} to {}\n",
            r.app_gen_iface,
            s.input.ip(),
            r.app_sink_iface
        ));
    }
    std::fs::write(&conf, text)?;
    let path = |p: &std::path::Path| p.to_str().map(str::to_owned).context("path");
    let p = r.appliance.spawn(&[
        "smcrouted",
        "-n",
        "-N",
        "-f",
        &path(&conf)?,
        "-i",
        r.run.base(),
        "-P",
        &path(&dir.path().join("smcroute.pid"))?,
        "-u",
        &path(&sock)?,
        "-l",
        "notice",
    ])?;
    let mut guard = RelayGuard {
        processes: vec![p],
        dir: Some(dir),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        if !guard.all_running() {
            let report = guard.stop()?;
            anyhow::bail!("smcrouted exited: {}", report["stderr"]);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "smcrouted did not open its socket within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The routes are installed once the socket is up; leave it a moment to read its file.
    std::thread::sleep(std::time::Duration::from_millis(300));
    guard.notes.push(format!(
        "{} static (*,G) routes, no translation",
        plan.len()
    ));
    Ok(guard)
}
