//! The `capbox` command line.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Runs every PVM test vector (*.json) in DIR; exits 1 if any fails, 2 on
    /// an unreadable directory or file.
    Conformance {
        /// Directory of w3f PVM test vectors.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            // Each error's message already names its cause.
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Conformance { dir }) => {
            let report = capbox::conformance::run_dir(&dir)?;
            let all_passed = capbox::conformance::print_report(&report);
            Ok(if all_passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            println!(
                "capbox {}: workspace skeleton; no demo yet",
                env!("CARGO_PKG_VERSION")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
