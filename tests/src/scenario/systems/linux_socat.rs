//! `linux-socat`: the relay namespace is a Linux host running one `socat` per stream and
//! output. Each joins the stream's input group on the generator side and sends every
//! datagram it receives to the output group and port from the sink-side address (TTL 8).
//! This is the classic user-space translation relay (MCR's published baseline), with the
//! kernel's default socket buffers.

use std::net::SocketAddrV4;

use anyhow::{Context, Result};

use super::RelayGuard;
use crate::scenario::mcast_plan::StreamPlan;
use crate::scenario::tools::require;
use crate::topology::Relay;

pub fn setup(r: &Relay, plan: &[StreamPlan]) -> Result<RelayGuard> {
    require("socat", "socat")?;
    let mut guard = RelayGuard::default();
    for s in plan {
        for out in &s.outputs {
            let (recv, send) = addresses(r, s.input, *out);
            let p = r
                .appliance
                .spawn(&["socat", "-u", &recv, &send])
                .with_context(|| format!("starting socat for {}", s.input))?;
            guard.processes.push(p);
        }
    }
    // A socat that could not bind or join exits at once: give them a moment to fail.
    std::thread::sleep(std::time::Duration::from_millis(300));
    if !guard.all_running() {
        let report = guard.stop()?;
        anyhow::bail!("a socat exited at start: {}", report["stderr"]);
    }
    guard.notes.push(format!(
        "{} socat processes",
        plan.iter().map(|s| s.outputs.len()).sum::<usize>()
    ));
    Ok(guard)
}

/// socat's two addresses for one output of one stream.
fn addresses(r: &Relay, input: SocketAddrV4, output: SocketAddrV4) -> (String, String) {
    let recv = format!(
        "UDP4-RECV:{},reuseaddr,ip-add-membership={}:{}",
        input.port(),
        input.ip(),
        r.app_gen_addr
    );
    let send = format!(
        "UDP4-SENDTO:{}:{},ip-multicast-if={},ip-multicast-ttl=8,bind={}",
        output.ip(),
        output.port(),
        r.app_sink_addr,
        r.app_sink_addr
    );
    (recv, send)
}
