//! `capbox asm` and `capbox disasm`: PVM programs as text, and the loader
//! `capbox run --program` uses (a blob, or assembly text by extension).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use capbox_shared::cap::{Cap, Image};
use capbox_shared::pvm::Program;
use capbox_shared::pvm::asm::{
    AsmNote, DEFAULT_STACK, assemble_image_with_notes, assemble_with_notes, disassemble,
};
use clap::Args;

/// File extensions read as assembly text rather than a `deblob` blob.
const TEXT_EXTENSIONS: &[&str] = &["pvmasm", "asm", "s"];

/// `capbox asm --help`'s closing text: a whole program and the rules a
/// first program runs into.
const ASM_HELP: &str = "\
Example (examples/loop.pvmasm style): sum 5+4+3+2+1 into r7, then halt
    r7 = 5
    r8 = 0
    @loop:                       // a jump target
        r8 = r8 + r7
        r7 = r7 - 1              // sugar for r7 = r7 + -1
        jump @loop if r7 != 0
    r7 = r8
    halt                         // sugar for jump [r0 + 0]: r0 holds the halt address

    capbox asm sum.pvmasm -o sum.blob && capbox run --program sum.blob

Rules:
  * A jump target must start a basic block (follow a jump, branch, trap,
    fallthrough or ecalli); the assembler inserts `fallthrough` before a
    label that is jumped to and does not, and prints a note.
    `.auto_fallthrough off` keeps the text exactly as written.
  * Running off the end of the code panics: end with `halt`, `trap` or a jump.
  * Memory: read-write data and the heap start at 0x20000 plus the
    read-only data's size rounded to 64 KiB (one zeroed page by default
    for `run --program`); the stack ends just below 0xfefe0000 (r1).
  * Kernel ops: `ecalli N`, arguments in r7.., result in r7
    (see docs/kernel.md, `Kernel ops`).
  * Other sugar: `ret` (= halt), `jump [rA]`, `u8 [rA] = rB` (no offset).";

#[derive(Args, Debug)]
#[command(after_help = ASM_HELP)]
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
#[command(after_help = "Example:
  capbox asm examples/loop.pvmasm -o loop.blob && capbox disasm loop.blob")]
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
    let assembled =
        assemble_with_notes(source).with_context(|| format!("assembling {}", origin.display()))?;
    checked_assembly(&assembled.program.blob, &assembled.notes, origin)?;
    Ok(assembled.program.blob)
}

/// Assembly text as a whole Image (its image directives applied).
fn assemble_text_image(bytes: &[u8], origin: &Path) -> anyhow::Result<Image> {
    let source = std::str::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text", origin.display()))?;
    let (image, notes) = assemble_image_with_notes(source)
        .with_context(|| format!("assembling {}", origin.display()))?;
    checked_assembly(&image.code, &notes, origin)?;
    Ok(image)
}

/// Refuses a program without instructions and prints what the assembler
/// inserted.
fn checked_assembly(blob: &[u8], notes: &[AsmNote], origin: &Path) -> anyhow::Result<()> {
    if capbox_shared::pvm::deblob(blob).is_ok_and(|parts| parts.code.is_empty()) {
        anyhow::bail!(
            "{} has no instructions: an empty program panics at its first step",
            origin.display()
        );
    }
    for note in notes {
        eprintln!("note: {}: {note}", origin.display());
    }
    Ok(())
}

/// `capbox asm SOURCE [-o OUT]`.
pub fn run_asm(args: &AsmArgs) -> anyhow::Result<ExitCode> {
    let blob = if args.image {
        let image = assemble_text_image(&read_input(&args.source)?, &args.source)?;
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
        assemble_text_image(&bytes, path)?
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

/// The code offset of the program's last instruction when execution can
/// continue past it, off the end of the code (which panics): the last
/// instruction is not a jump or `trap`. `None` when it cannot, or for a
/// blob that does not decode.
pub fn last_instruction_falls_off_end(blob: &[u8]) -> Option<u32> {
    use capbox_shared::pvm::{Opcode, deblob, decode_instruction};
    let parts = deblob(blob).ok()?;
    let last = (0..parts.code.len())
        .rev()
        .find(|&i| parts.bitmask.is_set(i))?;
    let insn = decode_instruction(parts.code, &parts.bitmask, last as u32);
    let stops = matches!(
        insn.opcode,
        None | Some(
            Opcode::trap
                | Opcode::jump
                | Opcode::jump_ind
                | Opcode::load_imm_jump
                | Opcode::load_imm_jump_ind
        )
    );
    (!stops).then_some(last as u32)
}
