//! wanem-bench: measures the WAN emulator's CPU cost at a given load.
//!
//! Default: 380 Mbit/s of 1514 B frames, as two iperf3 UDP streams of 300 + 80 Mbit/s through
//! two links (300 mbit / 10 ms and 80 mbit / 30 ms, 100 ms queues). The emulator's CPU time
//! is read from /proc/<pid>/stat (utime + stime) before and after the run. This is a
//! measurement, not a test: it prints figures and fails only if the setup fails.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use testbed::topology::wan_pair;
use testbed::wanem::{Config, DirParams, Dur, EmulatorProcess, LinkConfig, QueueLimit, Rate};
use testbed::{skip_unless_root, NsProcess};

#[derive(Debug, Parser)]
#[command(about = "CPU cost of wan-emulator at a given offered load")]
struct Args {
    /// Measured seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Frame rates (Mbit/s of whole Ethernet frames), one stream and link per value.
    #[arg(long, value_delimiter = ',', default_values_t = [300u64, 80])]
    mbit: Vec<u64>,
    /// One-way delays in ms for the links, in the same order.
    #[arg(long, value_delimiter = ',', default_values_t = [10u64, 30])]
    delay_ms: Vec<u64>,
    /// Use TCP (goodput limited by the links) instead of paced UDP.
    #[arg(long)]
    tcp: bool,
    /// Path of wan-emulator (default: next to this binary).
    #[arg(long)]
    emulator: Option<PathBuf>,
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    Ok(ticks as f64 / hz)
}

/// Busy and total jiffies of the whole machine, for context.
fn machine_busy() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let v: Vec<u64> = stat
        .lines()
        .next()
        .context("empty /proc/stat")?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Ok((total - idle, total))
}

fn main() -> Result<()> {
    env_logger::init();
    let args = Args::parse();
    if skip_unless_root(&["iperf3", "ethtool"]) {
        bail!("needs root, iperf3 and ethtool");
    }
    if args.mbit.len() != args.delay_ms.len() {
        bail!("--mbit and --delay-ms need the same number of values");
    }
    let exe = match args.emulator {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("wan-emulator"),
    };
    if !exe.exists() {
        bail!("{exe:?} not found: build it first (cargo build --release -p testbed --bins)");
    }
    let pair = wan_pair(args.mbit.len())?;
    let cfg = Config {
        control: None,
        links: pair
            .links
            .iter()
            .zip(args.mbit.iter().zip(&args.delay_ms))
            .enumerate()
            .map(|(i, (l, (mbit, delay)))| LinkConfig {
                name: format!("l{i}"),
                a_iface: l.emu_a_iface.clone(),
                b_iface: l.emu_b_iface.clone(),
                state: "up".into(),
                both: Some(DirParams {
                    delay: Dur(Duration::from_millis(*delay)),
                    rate: Some(Rate(mbit * 1_000_000)),
                    queue: QueueLimit::Time(Duration::from_millis(100)),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        events: vec![],
    };
    let emu = EmulatorProcess::start(&pair.emu, &exe, &cfg, &[])?;
    let pid = emu.pid().context("emulator pid")?;
    let mut servers: Vec<NsProcess> = Vec::new();
    for i in 0..pair.links.len() {
        let port = (5301 + i).to_string();
        servers.push(pair.host_b.spawn(&["iperf3", "-s", "-1", "-p", &port])?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let total = (args.seconds + 1).to_string();
    let mut clients = Vec::new();
    for (i, (l, mbit)) in pair.links.iter().zip(&args.mbit).enumerate() {
        let port = (5301 + i).to_string();
        let dst = l.b_addr.to_string();
        let mut cmd = vec!["iperf3", "-c", &dst, "-p", &port, "-t", &total, "-J"];
        // 1472 B of UDP payload make a 1514 B frame; iperf3's -b counts payload only.
        let payload_bps = (*mbit as f64 * 1e6 * 1472.0 / 1514.0) as u64;
        let b = payload_bps.to_string();
        if !args.tcp {
            cmd.extend(["-u", "-l", "1472", "-b", &b]);
        }
        clients.push(pair.host_a.spawn(&cmd)?);
    }
    std::thread::sleep(Duration::from_secs(1));
    let (cpu0, busy0, t0) = (cpu_seconds(pid)?, machine_busy()?, Instant::now());
    let before = emu.control()?.show()?;
    std::thread::sleep(Duration::from_secs(args.seconds));
    let (cpu1, busy1, elapsed) = (cpu_seconds(pid)?, machine_busy()?, t0.elapsed());
    let after = emu.control()?.show()?;
    for c in clients {
        c.wait_timeout(Duration::from_secs(30))?;
    }
    drop(servers);
    emu.stop()?;

    let secs = elapsed.as_secs_f64();
    let emu_cpu = (cpu1 - cpu0) / secs * 100.0;
    let machine = (busy1.0 - busy0.0) as f64 / (busy1.1 - busy0.1) as f64 * 100.0;
    let mut total_mbit = 0.0;
    for (b, a) in before.links.iter().zip(&after.links) {
        let fwd = (a.a_to_b.stats.bytes - b.a_to_b.stats.bytes) as f64 * 8.0 / secs / 1e6;
        let drops = a.a_to_b.stats.dropped_total() - b.a_to_b.stats.dropped_total();
        total_mbit += fwd;
        println!(
            "link {}: forwarded {fwd:.1} Mbit/s of frames a->b, {drops} dropped, \
             release lateness mean {:.1} us, max {:.1} us, {} frames over 100 us",
            a.name,
            a.a_to_b.stats.late_mean_us,
            a.a_to_b.stats.late_max_us,
            a.a_to_b.stats.late_over_100us
        );
    }
    println!(
        "wan-emulator CPU: {emu_cpu:.1} % of one core at {total_mbit:.1} Mbit/s of 1514 B frames \
         ({} over {secs:.1} s); whole machine {machine:.1} % busy of {} cores",
        if args.tcp { "TCP" } else { "UDP" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}
