use std::time::Duration;
use anyhow::Result;
use testbed::scenario::systems::appliance_tunnel::{Site, TunnelSpec};
use testbed::tunnel_bed::{bed_with, RATES};

#[test]
fn scratch() -> Result<()> {
    let mut spec = TunnelSpec::new(&std::env::var("SCHED").unwrap_or("wlb".into()), &RATES);
    spec.extra = std::env::var("EXTRA").unwrap_or_default().replace("\\n", "\n");
    let b = bed_with(spec, 0.0)?;
    b.wait_bfd_up(Duration::from_secs(10))?;
    let streams: u32 = std::env::var("STREAMS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let (mbps, samples) = std::thread::scope(|s| -> Result<(f64, Vec<String>)> {
        let tcp = s.spawn(|| b.tcp_streams(12, streams));
        let mut samples = vec![];
        for _ in 0..5 {
            std::thread::sleep(Duration::from_secs(2));
            let p = b.paths(Site::A);
            samples.push(format!("a {} b {} (backlog {} {})", p[0]["tx_rate"]["bps"], p[1]["tx_rate"]["bps"], p[0]["shaper"]["backlog_us"], p[1]["shaper"]["backlog_us"]));
        }
        Ok((tcp.join().unwrap()?, samples))
    })?;
    eprintln!("RESULT {mbps:.1} Mbit/s");
    for s in samples { eprintln!("  {s}"); }
    for p in b.paths(Site::A) {
        eprintln!("  path {}: shaper {}", p["name"], p["shaper"]);
    }
    let w = b.show(Site::A, "workers");
    eprintln!("  workers {}", w);
    b.finish()?;
    Ok(())
}
