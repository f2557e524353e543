//! scenario: runs a benchmark scenario for every system it lists and writes `result.json`,
//! `README.md` and PNG plots (see `testbed::scenario` and tests/README.md).
//!
//! ```text
//! scenario run scenarios/dual-path.toml [--out DIR] [--systems linux-mptcp,...] [--bin-dir DIR]
//! scenario check scenarios/*.toml
//! scenario render docs/benchmarks/dual-path
//! ```
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use testbed::bins::workspace_root;
use testbed::scenario::result::Status;
use testbed::scenario::tools::Tools;
use testbed::scenario::{output, run, RunOptions, Scenario, System};

#[derive(Debug, Parser)]
#[command(about = "Runs netns benchmark scenarios against Linux baselines and the appliance")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a scenario (as root) and write its result folder.
    Run {
        /// The scenario file.
        file: PathBuf,
        /// Output folder (default: docs/benchmarks/<name>/ in the workspace).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run only these systems (comma-separated names from the file).
        #[arg(long, value_delimiter = ',')]
        systems: Option<Vec<String>>,
        /// Where wan-emulator, mcast-gen, mcast-sink and appliance are (default: next to
        /// this program).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Exit with status 2 when a row failed (default: 0 once the results are written).
        #[arg(long)]
        strict: bool,
    },
    /// Parse and validate scenario files.
    Check { files: Vec<PathBuf> },
    /// Re-draw README.md and the plots of a result folder from its result.json.
    Render { dir: PathBuf },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    testbed::netns::cleanup_on_panic();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `file` relative to the workspace root when it is inside it (for links in the README).
fn relative_to_workspace(file: &Path) -> String {
    let root = workspace_root();
    std::fs::canonicalize(file)
        .ok()
        .and_then(|abs| {
            let root = std::fs::canonicalize(&root).ok()?;
            abs.strip_prefix(&root)
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| file.display().to_string())
}

fn parse_systems(names: &[String]) -> Result<Vec<System>> {
    names
        .iter()
        .map(|n| {
            System::ALL
                .iter()
                .copied()
                .find(|s| s.name() == n)
                .with_context(|| {
                    let all: Vec<&str> = System::ALL.iter().map(|s| s.name()).collect();
                    format!("--systems: one of {all:?}, not {n:?}")
                })
        })
        .collect()
}

fn real_main() -> Result<ExitCode> {
    let args = Args::parse();
    match args.cmd {
        Cmd::Check { files } => {
            let mut ok = true;
            for f in &files {
                match Scenario::load(f) {
                    Ok(s) => println!(
                        "{}: ok ({}, {} systems)",
                        f.display(),
                        s.name,
                        s.systems.len()
                    ),
                    Err(e) => {
                        eprintln!("error: {e}");
                        ok = false;
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Render { dir } => {
            let result = output::read(&dir)?;
            let mut written = Vec::new();
            output::render(&result, &dir, &mut written)?;
            println!("{}: {}", dir.display(), written.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            file,
            out,
            systems,
            bin_dir,
            strict,
        } => {
            let spec = Scenario::load(&file)?;
            let only = systems.as_deref().map(parse_systems).transpose()?;
            let tools = match bin_dir {
                Some(dir) => Tools { dir },
                None => Tools::beside_current_exe()?,
            };
            let out =
                out.unwrap_or_else(|| workspace_root().join("docs/benchmarks").join(&spec.name));
            let command = std::env::args()
                .enumerate()
                .map(|(i, a)| {
                    if i == 0 {
                        Path::new(&a)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or(a)
                    } else {
                        a
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let opts = RunOptions {
                tools,
                only,
                file: PathBuf::from(relative_to_workspace(&file)),
                command,
            };
            let result = run(&spec, &opts)?;
            let written = output::write(&result, &out)?;
            println!("{}: {}", out.display(), written.join(", "));
            let failed: Vec<String> = result
                .rows
                .iter()
                .filter(|r| r.status == Status::Failed)
                .map(|r| format!("{}: {}", r.system, r.error.as_deref().unwrap_or("")))
                .collect();
            for f in &failed {
                eprintln!("row failed: {f}");
            }
            Ok(if strict && !failed.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
