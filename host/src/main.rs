//! The `capbox` command line.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "capbox",
    version,
    about = "Runs PVM programs against content-addressed capability state"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every PVM test vector (*.json) in DIR; exits 1 if any fails.
    Conformance {
        /// Directory of w3f PVM test vectors.
        dir: PathBuf,
    },
    /// Runs invocations of the sample program (or a program file) on a
    /// fresh instance.
    Run(cli::RunArgs),
    /// In-kernel micro-benchmarks and call-cost loops.
    Bench(cli::BenchArgs),
    /// The demo (also what `capbox` with no arguments does).
    Demo(cli::DemoArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Some(Command::Conformance { dir }) => {
            let report = capbox::conformance::run_dir(&dir)?;
            let all_passed = capbox::conformance::print_report(&report);
            Ok(if all_passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Run(args)) => cli::run(args),
        Some(Command::Bench(args)) => cli::bench(args),
        Some(Command::Demo(args)) => cli::demo(args),
        None => cli::demo(cli::DemoArgs::default()),
    }
}
