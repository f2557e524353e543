//! wan-emulator: layer-2 WAN link emulator over AF_PACKET (see `testbed::wanem`).
//!
//! Runs until SIGINT/SIGTERM or a `stop` command, then prints the final `show` snapshot as
//! one JSON line on stdout.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use testbed::wanem::{control, Config, Emulator};

#[derive(Debug, Parser)]
#[command(about = "Bridges interface pairs with delay, jitter, rate, loss and link states")]
struct Args {
    /// TOML configuration (links, parameters, events).
    #[arg(long)]
    config: PathBuf,
    /// Control socket path (overrides `control` in the config).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Seed for the loss and jitter draws (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {:?}", args.config))?;
    let cfg = Config::from_toml(&text)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let emu = Emulator::start(&cfg, seed)?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, emu.shutdown.clone())?;
    }
    let control_path = args.control.or(cfg.control.clone().map(PathBuf::from));
    if let Some(p) = &control_path {
        control::serve(emu.clone(), p)?;
    }
    log::info!(
        "forwarding {} link(s), seed {seed}, control {:?}",
        cfg.links.len(),
        control_path
    );
    emu.run_events(&cfg.events)?;
    while !emu.shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    emu.stop();
    if let Some(p) = &control_path {
        let _ = std::fs::remove_file(p);
    }
    println!("{}", serde_json::to_string(&emu.snapshot())?);
    Ok(())
}
