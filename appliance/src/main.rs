//! `appliance`: boots the data plane from a hardware profile and a config;
//! `appliance genkey` and `appliance pubkey` make the tunnel's keys;
//! `appliance prepare` readies a bare-metal box (hugepages, NIC binding).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use appliance::boot::{self, BootError, Options};
use appliance::config::HwProfile;
use appliance::tunnel::crypto::keys::PrivateKey;
use clap::{Parser, Subcommand};

/// DPDK appliance: multipath WAN tunnel and multicast translation relay.
#[derive(Debug, Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Hardware profile (hw-profiles/*.toml): what the box is.
    #[arg(long, required = true)]
    profile: Option<PathBuf>,
    /// Appliance config (configs/*.toml): what the box does.
    #[arg(long, required = true)]
    config: Option<PathBuf>,
    /// Validate both files, print the EAL arguments, and exit.
    #[arg(long)]
    check: bool,
    /// Stop after this many milliseconds without a received packet (golden tests).
    #[arg(long)]
    exit_when_idle_ms: Option<u64>,
    /// Write the final counters as JSON to this file.
    #[arg(long)]
    final_stats: Option<PathBuf>,
}

/// Key commands (as `wg genkey` and `wg pubkey`), and readying the box.
#[derive(Debug, Subcommand)]
enum Command {
    /// Writes a new private key to FILE (mode 0600; an existing file is
    /// never overwritten).
    Genkey {
        /// Where to write it.
        file: PathBuf,
    },
    /// Reserves the profile's hugepages and binds its NICs to their DPDK
    /// drivers (dpdk-hugepages.py, dpdk-devbind.py); the systemd unit runs it
    /// before every start.
    Prepare {
        /// Hardware profile.
        #[arg(long)]
        profile: PathBuf,
        /// Print the commands without running them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Prints the public key of the private key in FILE (or on stdin: `-`).
    Pubkey {
        /// The private key file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
}

fn subcommand(command: &Command) -> ExitCode {
    match command {
        Command::Prepare { profile, dry_run } => {
            let p = match HwProfile::load(profile) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match appliance::prepare::run(&p, *dry_run) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Genkey { file } => match PrivateKey::generate().write_new(file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing {}: {e}", file.display());
                ExitCode::FAILURE
            }
        },
        Command::Pubkey { file } => {
            let key = if file == Path::new("-") {
                let mut text = String::new();
                match std::io::stdin().read_to_string(&mut text) {
                    Ok(_) => PrivateKey::parse(&text),
                    Err(e) => {
                        eprintln!("error: reading stdin: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                PrivateKey::read(file)
            };
            match key {
                Ok(k) => {
                    println!("{}", k.public());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}: expected {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn main() -> ExitCode {
    appliance::logging::init(appliance::logging::Style::detect());
    let args = Args::parse();
    if let Some(command) = &args.command {
        return subcommand(command);
    }
    let (Some(profile), Some(config)) = (args.profile, args.config) else {
        eprintln!("error: --profile and --config are required");
        return ExitCode::from(2);
    };
    let opts = Options {
        profile,
        config,
        exit_when_idle: args.exit_when_idle_ms.map(Duration::from_millis),
        final_stats: args.final_stats,
    };
    if args.check {
        return match boot::load(&opts) {
            Ok((profile, _)) => {
                println!("ok: {}", boot::eal_args(&opts, &profile).join(" "));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    match boot::run(&opts) {
        Ok(outcome) => {
            let s = &outcome.stats;
            let leak = outcome.mempool_in_use_at_exit != s.mempool.baseline_in_use
                || outcome.headers_in_use_at_exit != 0;
            println!("final counters:");
            println!("  rx packets per port: {:?}", s.rx_packets);
            println!("  tx packets per port: {:?}", s.tx_packets);
            println!("  rx missed per port: {:?}", s.rx_missed);
            println!("  rx rollovers per port: {:?}", s.rx_rollovers);
            println!("  punted: {}", s.punted);
            for (reason, n) in s.drops.iter().filter(|(_, n)| **n > 0) {
                println!("  drop {reason}: {n}");
            }
            for (event, n) in s.slowpath.iter().filter(|(_, n)| **n > 0) {
                println!("  slowpath {event}: {n}");
            }
            for r in &outcome.mcast.rules {
                let outs: Vec<String> = r
                    .outputs
                    .iter()
                    .map(|o| {
                        format!(
                            "{}:{}:{} {}",
                            o.interface, o.destination, o.port, o.tx_packets
                        )
                    })
                    .collect();
                println!(
                    "  mcast {}: rx {} -> {}",
                    r.rule.input,
                    r.rx_packets,
                    outs.join(", ")
                );
            }
            println!(
                "  mempool in use at exit: {} (baseline {}), header mbufs {}{}",
                outcome.mempool_in_use_at_exit,
                s.mempool.baseline_in_use,
                outcome.headers_in_use_at_exit,
                if leak { " LEAK" } else { "" }
            );
            if let Some(path) = &opts.final_stats {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["mempool_in_use_at_exit"] = outcome.mempool_in_use_at_exit.into();
                v["headers_in_use_at_exit"] = outcome.headers_in_use_at_exit.into();
                v["mcast"] = serde_json::to_value(&outcome.mcast).unwrap_or_default();
                if let Err(e) = std::fs::write(path, v.to_string()) {
                    eprintln!("error: writing {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(BootError::Config(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
