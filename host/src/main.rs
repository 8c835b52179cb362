//! The `capbox` command line.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod cli_apps;
mod cli_asm;
mod cli_conformance;
mod cli_heads;
mod cli_import;
mod cli_soak;
mod cli_store;

#[derive(Parser)]
#[command(
    name = "capbox",
    version,
    about = "Runs PVM programs against content-addressed capability state"
)]
struct Cli {
    /// Give up after SECS seconds (fractions allowed) when another capbox
    /// holds the store's lock [default: wait until it is free, saying so].
    #[arg(long, value_name = "SECS", global = true, value_parser = cli_store::parse_lock_timeout)]
    lock_timeout: Option<std::time::Duration>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every PVM test vector (*.json) in DIR; exits 1 if any fails
    /// (an unreadable vector is a failure), 2 on an unreadable directory.
    Conformance(cli_conformance::ConformanceArgs),
    /// Runs invocations of the sample program (or a program file) on a
    /// fresh instance.
    Run(cli::RunArgs),
    /// In-kernel micro-benchmarks and call-cost loops.
    Bench(cli::BenchArgs),
    /// The demo (also what `capbox` with no arguments does).
    Demo(cli::DemoArgs),
    /// Store administration: stats, list, heads, verify, prune, gc, set-head, remove-head.
    #[command(
        after_help = "Examples:\n  capbox store stats --json\n  capbox store verify            # re-hash every blob, check every head\n  capbox store prune --max-bytes 100000000\n  capbox --lock-timeout 5 store gc"
    )]
    Store {
        #[command(flatten)]
        location: cli_store::StoreLocation,
        #[command(subcommand)]
        command: cli_store::StoreCommand,
    },
    /// Stores a file holding one cap encoding; prints its hash.
    Publish(cli_store::PublishArgs),
    /// Prints a stored cap's kind and fields.
    Inspect(cli_store::InspectArgs),
    /// Assembles PVM text (the TESTCASES.md disassembly syntax) into a blob.
    Asm(cli_asm::AsmArgs),
    /// Prints a PVM program blob as assembly text.
    Disasm(cli_asm::DisasmArgs),
    /// Turns a PolkaVM (JamV1) program blob into an Image: prints its
    /// endpoints and hash, writes its encoding with -o.
    Import(cli_import::ImportArgs),
    /// The kv service on a head in the store: put, get, delete, len.
    Kv(cli_apps::KvArgs),
    /// Creates a head on a fresh instance of a program.
    New(cli_heads::NewArgs),
    /// Runs invocations on a stored head (or instance) and commits each:
    /// stores the new state, advances the head, records it in the history.
    Invoke(cli_heads::InvokeArgs),
    /// Lists the heads with their number of moves.
    Heads(cli_heads::HeadsArgs),
    /// Prints a head's history.
    Log(cli_heads::LogArgs),
    /// State-changing invocations for a while, printing the kernel's
    /// directory, evictions, spills and the host's RSS every interval.
    Soak(cli_soak::SoakArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            // Each error's message already names its cause.
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store_options = capbox::StoreOptions {
        lock_timeout: cli.lock_timeout,
        ..capbox::StoreOptions::default()
    };
    match cli.command {
        Some(Command::Conformance(args)) => cli_conformance::run_conformance(&args),
        Some(Command::Run(args)) => cli::run(args),
        Some(Command::Bench(args)) => cli::bench(args),
        Some(Command::Demo(args)) => cli::demo(args, store_options),
        Some(Command::Store { location, command }) => {
            cli_store::run_store(&location, command, store_options)
        }
        Some(Command::Publish(args)) => cli_store::run_publish(&args, store_options),
        Some(Command::Inspect(args)) => cli_store::run_inspect(&args, store_options),
        Some(Command::Asm(args)) => cli_asm::run_asm(&args),
        Some(Command::Disasm(args)) => cli_asm::run_disasm(&args),
        Some(Command::Import(args)) => cli_import::run_import(&args),
        Some(Command::Kv(args)) => cli_apps::run_kv(args, store_options),
        Some(Command::New(args)) => cli_heads::run_new(&args, store_options),
        Some(Command::Invoke(args)) => cli_heads::run_invoke(&args, store_options),
        Some(Command::Heads(args)) => cli_heads::run_heads(&args, store_options),
        Some(Command::Log(args)) => cli_heads::run_log(&args, store_options),
        Some(Command::Soak(args)) => cli_soak::soak(args),
        None => cli::demo(cli::DemoArgs::default(), store_options),
    }
}
