//! `capbox import`: a PolkaVM program blob into an Image (`capbox::import`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use capbox::shared::cap::Cap;
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  capbox import programs/counter.polkavm                   # summary: endpoints, imports, rewrites
  capbox import programs/counter.polkavm -o counter.image  # an Image cap for `capbox publish`
  capbox new programs/counter.polkavm --head c && capbox invoke c --endpoint increment 5")]
pub struct ImportArgs {
    /// A PolkaVM 0.37 program blob of the JamV1 instruction set (`-`:
    /// standard input), as scripts/build-programs.sh links them.
    program: PathBuf,
    /// Write the Image's cap encoding here (what `capbox publish` stores and
    /// `capbox run --program` runs; by convention `NAME.image`).
    #[arg(short = 'o', long, value_name = "OUT")]
    output: Option<PathBuf>,
}

/// `capbox import PROG.polkavm [-o OUT]`: prints a summary and the image
/// hash; writes the encoding with `-o`.
pub fn run_import(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let bytes = crate::cli_asm::read_input(&args.program)?;
    let imported = capbox::import::image_from_polkavm(&bytes)
        .with_context(|| format!("cannot import {}", args.program.display()))?;
    let cap = Cap::Image(imported.image.clone());
    let encoding = cap.encode()?;
    println!("{}", imported.summary());
    println!("image: {}", cap.hash()?);
    if let Some(out) = &args.output {
        std::fs::write(out, &encoding)
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("wrote {} ({} bytes)", out.display(), encoding.len());
    }
    Ok(ExitCode::SUCCESS)
}
