//! Images from the standard PolkaVM toolchain: a PolkaVM 0.37 program blob
//! of the JAM instruction set (JamV1, what `polkavm_linker::program_from_elf`
//! writes with `TargetInstructionSet::JamV1`) turned into an [`Image`].
//!
//! * **Code**: the blob's `code_and_jump_table` section is the Graypaper
//!   `deblob` format and becomes [`Image::code`], with two rewrites in place
//!   (no instruction changes length, so no offset, jump-table entry or
//!   bitmask bit moves):
//!   - opcode 2, PolkaVM's `unlikely` (a scheduling hint the Graypaper does
//!     not define; capbox would trap on it), becomes opcode 1,
//!     `fallthrough`. In PolkaVM `unlikely` is a no-op costing one gas that
//!     does not end its basic block; `fallthrough` also costs one gas and
//!     does nothing, but ends the block, so the next instruction becomes a
//!     block start (a valid jump target no linker output jumps to). Gas
//!     totals are equal; only where an out-of-gas stop lands may differ,
//!     which capbox's gas rule already does (`capbox_shared::pvm`,
//!     departure 2).
//!   - `ecalli` immediates become kernel op numbers (see imports).
//! * **Imports**: each import symbol must be `capbox_<op>` for an op of the
//!   kernel's op table (`with_kernel_ops!`, via [`KernelOp::from_name`]).
//!   The SDK declares every import with `index = <op number>`, so the
//!   linker already writes `ecalli <op number>` and nothing is rewritten.
//!   Imports declared without indexes are numbered by the linker in symbol
//!   order; their `ecalli` immediates are rewritten to op numbers when the
//!   immediate's existing bytes can hold the op number (a 0-byte immediate
//!   holds only 0), else the import fails with
//!   [`ImportError::ImmediateTooShort`]. An `ecalli` whose number names no
//!   import, or an import that is not a kernel op, fails.
//! * **Data**: read-only data is the blob's payload padded with zeros to
//!   its declared size; read-write data is the payload, and the rest of the
//!   declared size (rounded up to pages) becomes heap pages. The stack size
//!   is the blob's. PolkaVM and the Graypaper place these sections at the
//!   same addresses (ro at 2^16, rw at 2·2^16 + the ro size rounded to
//!   2^16, the stack below 2^32 − 2·2^16 − 2^24), so the addresses the
//!   linker wrote into the code hold.
//! * **Endpoints**: the exports, in the blob's order, with their names.

use capbox_shared::cap::{CapError, Image, MAX_ENDPOINT_NAME_LEN, PAGE_SIZE};
use capbox_shared::kernel::ops::KernelOp;
use capbox_shared::pvm::layout::StandardLayout;
use capbox_shared::pvm::{Opcode, Program, ProgramError, deblob};
use polkavm::program::InstructionSetKind;
use polkavm::{ProgramBlob, ProgramParts};

/// The first bytes of every PolkaVM program blob.
pub const POLKAVM_MAGIC: [u8; 4] = *b"PVM\0";
/// The blob version byte of the JamV1 instruction set.
const JAM_V1_VERSION: u8 = 3;
/// PolkaVM's `unlikely` opcode in JamV1.
const OPCODE_UNLIKELY: u8 = 2;
/// Import symbols name kernel ops with this prefix.
pub const IMPORT_PREFIX: &str = "capbox_";

/// Why a file is not an importable program.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No PolkaVM magic.
    #[error("not a PolkaVM program blob (it does not start with \"PVM\\0\")")]
    NotPolkaVm,
    /// Shorter than its header says.
    #[error("truncated PolkaVM blob: {actual} bytes, its header says {expected}")]
    Truncated {
        /// Length from the header (0 if the header itself is cut).
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A blob of another instruction set.
    #[error(
        "PolkaVM blob of the {isa} instruction set: capbox runs JamV1 only \
         (link with polkavm_linker::TargetInstructionSet::JamV1)"
    )]
    WrongInstructionSet {
        /// PolkaVM's name of the set.
        isa: &'static str,
    },
    /// PolkaVM's parser refused it.
    #[error("malformed PolkaVM blob: {0}")]
    Malformed(String),
    /// An import that is not a kernel op.
    #[error(
        "import {index} `{symbol}` is not a kernel op (imports must be named \
         capbox_<op> for an op of docs/kernel.md's table)"
    )]
    UnknownImport {
        /// The import's index (its `ecalli` number).
        index: u32,
        /// Its symbol.
        symbol: String,
    },
    /// An `ecalli` whose number is no import.
    #[error("ecalli {number} at pc {pc} names no import of the blob")]
    UnboundHostCall {
        /// The immediate.
        number: u32,
        /// Where.
        pc: u32,
    },
    /// An `ecalli` that cannot be renumbered in place.
    #[error(
        "ecalli {index} at pc {pc} (import `{symbol}`) cannot become op {op} without \
         changing its length; declare the import with #[polkavm_import(index = {op})] \
         as the SDK does"
    )]
    ImmediateTooShort {
        /// The linker's index.
        index: u32,
        /// Where.
        pc: u32,
        /// The import.
        symbol: String,
        /// The op number it should be.
        op: u32,
    },
    /// An export name capbox cannot keep.
    #[error("export at pc {pc}: {reason}")]
    BadExport {
        /// Its entry.
        pc: u32,
        /// Why.
        reason: String,
    },
    /// The code does not load in capbox's PVM.
    #[error("the program's code is not a valid PVM program: {0}")]
    BadCode(#[from] ProgramError),
    /// Sections that do not fit the Graypaper's memory layout.
    #[error("the program's memory does not fit the standard layout: {0}")]
    Layout(String),
    /// The image breaks a cap bound.
    #[error("the image breaks a cap limit: {0}")]
    Image(#[from] CapError),
}

/// An import as mapped to a kernel op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportMapping {
    /// The linker's index (the `ecalli` number in the blob).
    pub index: u32,
    /// The import symbol.
    pub symbol: String,
    /// The kernel op.
    pub op: KernelOp,
}

/// An imported program: the image plus what the import did.
#[derive(Clone, Debug)]
pub struct ImportedImage {
    /// The image.
    pub image: Image,
    /// Every import of the blob, mapped.
    pub imports: Vec<ImportMapping>,
    /// `ecalli` instructions whose immediate was rewritten.
    pub ecalli_rewritten: usize,
    /// `unlikely` instructions rewritten to `fallthrough`.
    pub unlikely_rewritten: usize,
}

impl ImportedImage {
    /// A few lines for people: sizes, endpoints, imports, rewrites.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let image = &self.image;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "code: {} bytes; ro_data: {} bytes; rw_data: {} bytes + {} heap pages; stack: {} bytes",
            image.code.len(),
            image.ro_data.len(),
            image.rw_data.len(),
            image.heap_pages,
            image.stack_size
        );
        for (i, pc) in image.endpoints.iter().enumerate() {
            let name = image.endpoint_name(i as u32).unwrap_or("-");
            let _ = writeln!(out, "endpoint {i}: {name} (pc {pc})");
        }
        for import in &self.imports {
            let _ = writeln!(
                out,
                "import {}: {} -> op {} {}",
                import.index,
                import.symbol,
                import.op.number(),
                import.op.name()
            );
        }
        let _ = write!(
            out,
            "rewritten: {} ecalli immediates, {} unlikely -> fallthrough",
            self.ecalli_rewritten, self.unlikely_rewritten
        );
        out
    }
}

/// Whether `bytes` start like a PolkaVM program blob.
pub fn is_polkavm(bytes: &[u8]) -> bool {
    bytes.starts_with(&POLKAVM_MAGIC)
}

/// Turns a PolkaVM 0.37 JamV1 program blob into an [`Image`] (module docs).
pub fn image_from_polkavm(bytes: &[u8]) -> Result<ImportedImage, ImportError> {
    if !is_polkavm(bytes) {
        return Err(ImportError::NotPolkaVm);
    }
    let actual = bytes.len() as u64;
    let Some(header) = bytes.get(..13) else {
        return Err(ImportError::Truncated {
            expected: 0,
            actual,
        });
    };
    let version = header[4];
    if version != JAM_V1_VERSION {
        return Err(match isa_name(version) {
            Some(isa) => ImportError::WrongInstructionSet { isa },
            None => ImportError::Malformed(format!("unknown blob version {version}")),
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[5..13]);
    let expected = u64::from_le_bytes(len);
    if expected > actual {
        return Err(ImportError::Truncated { expected, actual });
    }
    let parts = ProgramParts::from_bytes(bytes.to_vec().into())
        .map_err(|e| ImportError::Malformed(e.to_string()))?;
    debug_assert_eq!(parts.isa, InstructionSetKind::JamV1);
    let (ro_size, rw_size, stack_size) = (parts.ro_data_size, parts.rw_data_size, parts.stack_size);
    let mut code = parts.code_and_jump_table.to_vec();
    let blob = ProgramBlob::from_parts(parts).map_err(|e| ImportError::Malformed(e.to_string()))?;

    let imports = map_imports(&blob)?;
    let (ecalli_rewritten, unlikely_rewritten) = rewrite_code(&mut code, &imports)?;
    let program = Program::from_blob(&code)?;

    let mut endpoints = Vec::new();
    let mut endpoint_names = Vec::new();
    for export in blob.exports() {
        let pc = export.program_counter().0;
        let bad = |reason: &str| ImportError::BadExport {
            pc,
            reason: reason.to_string(),
        };
        let name = std::str::from_utf8(export.symbol().as_bytes())
            .map_err(|_| bad("its name is not UTF-8"))?;
        if name.is_empty() || name.len() > MAX_ENDPOINT_NAME_LEN as usize {
            return Err(bad("its name is empty or longer than 255 bytes"));
        }
        if endpoint_names.iter().any(|n: &String| n == name) {
            return Err(bad(&format!("the name `{name}` is exported twice")));
        }
        if !program.is_basic_block_start(pc) {
            return Err(bad("its entry is not the start of a basic block"));
        }
        endpoints.push(pc);
        endpoint_names.push(name.to_string());
    }

    let mut ro_data = blob.ro_data().to_vec();
    ro_data.resize(ro_size as usize, 0);
    let rw_data = blob.rw_data().to_vec();
    let page = PAGE_SIZE as u64;
    let declared = u64::from(rw_size).next_multiple_of(page);
    let payload = (rw_data.len() as u64).next_multiple_of(page);
    let heap_pages = u32::try_from(declared.saturating_sub(payload) / page)
        .map_err(|_| ImportError::Layout("too many heap pages".into()))?;
    let heap16 = u16::try_from(heap_pages)
        .map_err(|_| ImportError::Layout(format!("{heap_pages} heap pages (at most 65535)")))?;
    StandardLayout::new(ro_size, rw_data.len() as u32, heap16, stack_size, 0)
        .map_err(|e| ImportError::Layout(e.to_string()))?;

    let image = Image {
        code,
        ro_data,
        rw_data,
        heap_pages,
        stack_size,
        endpoints,
        endpoint_names,
    };
    image.check_limits()?;
    Ok(ImportedImage {
        image,
        imports,
        ecalli_rewritten,
        unlikely_rewritten,
    })
}

fn isa_name(version: u8) -> Option<&'static str> {
    Some(match version {
        0 => "ReviveV1",
        1 => "Latest32",
        2 => "Latest64",
        3 => "JamV1",
        _ => return None,
    })
}

/// Every import of `blob` mapped to its kernel op; holes the linker left
/// between explicit indexes (empty symbols) are skipped.
fn map_imports(blob: &ProgramBlob) -> Result<Vec<ImportMapping>, ImportError> {
    let mut out = Vec::new();
    for (index, symbol) in blob.imports().iter().enumerate() {
        let index = index as u32;
        let symbol = symbol.ok_or_else(|| {
            ImportError::Malformed(format!("import {index}: its symbol is out of bounds"))
        })?;
        let bytes = symbol.as_bytes();
        if bytes.is_empty() {
            continue;
        }
        let symbol = String::from_utf8_lossy(bytes).into_owned();
        let op = symbol
            .strip_prefix(IMPORT_PREFIX)
            .and_then(KernelOp::from_name)
            .ok_or_else(|| ImportError::UnknownImport {
                index,
                symbol: symbol.clone(),
            })?;
        out.push(ImportMapping { index, symbol, op });
    }
    Ok(out)
}

/// Rewrites `unlikely` to `fallthrough` and `ecalli` immediates to op
/// numbers, in place; the counts of each.
fn rewrite_code(
    code_blob: &mut [u8],
    imports: &[ImportMapping],
) -> Result<(usize, usize), ImportError> {
    let mut edits: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut unlikely = 0;
    let mut ecalli = 0;
    {
        let parts = deblob(code_blob)?;
        let code = parts.code;
        // `code` borrows `code_blob`: its offset there.
        let base = code.as_ptr() as usize - code_blob.as_ptr() as usize;
        for pc in (0..code.len()).filter(|&pc| parts.bitmask.is_set(pc)) {
            let raw = code[pc];
            if raw == OPCODE_UNLIKELY {
                edits.push((base + pc, vec![Opcode::fallthrough as u8]));
                unlikely += 1;
                continue;
            }
            if raw != Opcode::ecalli as u8 {
                continue;
            }
            let imm_len = parts.bitmask.skip(pc).min(4) as usize;
            let imm_at = pc + 1;
            let mut imm = [0u8; 8];
            for (i, b) in imm.iter_mut().enumerate().take(imm_len) {
                *b = code.get(imm_at + i).copied().unwrap_or(0);
            }
            let number = sext(u64::from_le_bytes(imm), imm_len) as u32;
            let import =
                imports
                    .iter()
                    .find(|i| i.index == number)
                    .ok_or(ImportError::UnboundHostCall {
                        number,
                        pc: pc as u32,
                    })?;
            let op = import.op.number();
            if op == number {
                continue;
            }
            let too_short = || ImportError::ImmediateTooShort {
                index: number,
                pc: pc as u32,
                symbol: import.symbol.clone(),
                op,
            };
            let bytes = u64::from(op).to_le_bytes();
            let fits = imm_at + imm_len <= code.len()
                && sext(
                    u64::from_le_bytes({
                        let mut b = [0u8; 8];
                        b[..imm_len].copy_from_slice(&bytes[..imm_len]);
                        b
                    }),
                    imm_len,
                ) == u64::from(op);
            if !fits {
                return Err(too_short());
            }
            edits.push((base + imm_at, bytes[..imm_len].to_vec()));
            ecalli += 1;
        }
    }
    for (at, bytes) in edits {
        code_blob[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    Ok((ecalli, unlikely))
}

/// Sign-extends the low `n` bytes of `x` (as the Graypaper's immediates).
fn sext(x: u64, n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    let shift = 64 - 8 * n as u32;
    (((x << shift) as i64) >> shift) as u64
}
