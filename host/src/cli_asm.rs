//! `capbox asm` and `capbox disasm`: PVM programs as text, and the loader
//! `capbox run --program` uses (a blob, or assembly text by extension).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use capbox_shared::pvm::Program;
use capbox_shared::pvm::asm::{assemble, disassemble};
use clap::Args;

/// File extensions read as assembly text rather than a `deblob` blob.
const TEXT_EXTENSIONS: &[&str] = &["pvmasm", "asm", "s"];

#[derive(Args, Debug)]
pub struct AsmArgs {
    /// Assembly source (the disassembly syntax of the w3f TESTCASES.md,
    /// e.g. `r9 = r7 + r8`, `jump @loop`); `-` reads standard input.
    pub source: PathBuf,
    /// Where to write the program blob; without it, hex goes to stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DisasmArgs {
    /// A program blob (`deblob` format: jump table, code, opcode bitmask);
    /// `-` reads standard input.
    pub blob: PathBuf,
}

pub(crate) fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("reading standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn assemble_text(bytes: &[u8], origin: &Path) -> anyhow::Result<Vec<u8>> {
    let source = std::str::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text", origin.display()))?;
    assemble(source).with_context(|| format!("assembling {}", origin.display()))
}

/// `capbox asm SOURCE [-o OUT]`.
pub fn run_asm(args: &AsmArgs) -> anyhow::Result<ExitCode> {
    let blob = assemble_text(&read_input(&args.source)?, &args.source)?;
    match &args.output {
        Some(out) => {
            std::fs::write(out, &blob).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("{} bytes written to {}", blob.len(), out.display());
        }
        None => {
            let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(std::io::stdout(), "{hex}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `capbox disasm BLOB`.
pub fn run_disasm(args: &DisasmArgs) -> anyhow::Result<ExitCode> {
    let blob = read_input(&args.blob)?;
    let text = disassemble(&blob)
        .with_context(|| format!("{} is not a valid program blob", args.blob.display()))?;
    write!(std::io::stdout(), "{text}")?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a program for `capbox run --program`: assembly text when the
/// extension says so (`.pvmasm`, `.asm`, `.s`), else a blob. Either way the
/// blob is decoded here first, so a bad program is reported before any
/// backend starts.
/// (`path` names the file for the extension and messages; the bytes were
/// read with [`read_input`].)
pub fn load_program_bytes(bytes: Vec<u8>, path: &Path) -> anyhow::Result<Vec<u8>> {
    let is_text = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| TEXT_EXTENSIONS.contains(&e));
    let blob = if is_text {
        assemble_text(&bytes, path)?
    } else {
        bytes
    };
    Program::from_blob(&blob)
        .with_context(|| format!("{} is not a valid PVM program", path.display()))?;
    Ok(blob)
}
