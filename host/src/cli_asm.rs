//! `capbox asm` and `capbox disasm`: PVM programs as text, and the loader
//! `capbox run --program` uses (a blob, or assembly text by extension).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use capbox_shared::cap::{Cap, Image};
use capbox_shared::pvm::Program;
use capbox_shared::pvm::asm::{DEFAULT_STACK, assemble, assemble_image, disassemble};
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
    /// Write the whole Image's cap encoding instead of the code blob: the
    /// code plus the image directives (`.endpoint NAME @label`, `.ro_data`,
    /// `.rw_data`, `.heap_pages`, `.stack`), for `capbox publish` and
    /// `capbox run --program X.image`.
    #[arg(long)]
    pub image: bool,
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
    let blob = if args.image {
        let bytes = read_input(&args.source)?;
        let source = std::str::from_utf8(&bytes)
            .with_context(|| format!("{} is not UTF-8 text", args.source.display()))?;
        let image = assemble_image(source)
            .with_context(|| format!("assembling {}", args.source.display()))?;
        Cap::Image(image).encode()?
    } else {
        assemble_text(&read_input(&args.source)?, &args.source)?
    };
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

/// The image `capbox run --program` runs for a code file: assembly text
/// when the extension says so (`.pvmasm`, `.asm`, `.s`; its image
/// directives give data sections, stack and named endpoints, see
/// `assemble_image`), else a `deblob` blob with the same defaults (one
/// endpoint at pc 0, one page of read-write data, a 64 KiB stack). Either
/// way the code is decoded here first, so a bad program is reported before
/// any backend starts. (`path` names the file for the extension and
/// messages; the bytes were read with [`read_input`].)
pub fn load_image_bytes(bytes: Vec<u8>, path: &Path) -> anyhow::Result<Image> {
    let is_text = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| TEXT_EXTENSIONS.contains(&e));
    let image = if is_text {
        let source = std::str::from_utf8(&bytes)
            .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
        assemble_image(source).with_context(|| format!("assembling {}", path.display()))?
    } else {
        Image {
            code: bytes,
            ro_data: Vec::new(),
            rw_data: vec![0; 4096],
            heap_pages: 0,
            stack_size: DEFAULT_STACK,
            endpoints: vec![0],
            endpoint_names: Vec::new(),
        }
    };
    Program::from_blob(&image.code)
        .with_context(|| format!("{} is not a valid PVM program", path.display()))?;
    Ok(image)
}
