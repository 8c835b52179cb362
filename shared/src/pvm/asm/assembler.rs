//! The text assembler: one instruction per line in the syntax of
//! [`super::syntax`], plus labels, comments and directives.
//!
//! ```text
//! // comments start with `//`, `;` or `#`
//! .jump_table @entry, @other, 7   // entries: labels or code offsets
//! .jump_entry_size 4              // optional; default: fewest octets (≥ 1)
//! @entry:                         // a label (the colon is optional)
//!     r7 = 10
//!     jump @entry if r7 != 0
//!     add_64 r9, r7, r8           // any instruction by its Graypaper name
//!     .insn 33 07 f6 ff           // raw octets, first one an instruction start
//!     .bytes 00 00                // raw octets that are not instruction starts
//!     jump [r0]                   // `jump [r0 + 0]`; also `ret` and `halt`
//!     r7 = r7 - 1                 // `r7 = r7 + -1` (add_imm_64)
//! ```
//!
//! **Labels start basic blocks.** A jump to an instruction that does not
//! start a basic block (one right after an instruction that is not a
//! terminator) panics at run time, so a label that is jumped to (by a jump,
//! a branch or the jump table) and follows such an instruction gets a
//! `fallthrough` inserted before it, and the assembler reports it as an
//! [`AsmNote`]. `.auto_fallthrough off` turns that off for the rest of the
//! text (the disassembler writes it when a program jumps into the middle of
//! a block, so that its text assembles back to the same octets).
//!
//! Image directives ([`assemble_image`]; the blob alone ignores them):
//!
//! ```text
//! .endpoint increment @inc       // a named endpoint at a label (in order)
//! .ro_data 68 69                 // read-only data octets (appended)
//! .rw_data 00 00 00 00 00 00 00 00   // initial read-write data (appended)
//! .heap_pages 2                  // zeroed pages after the rw data
//! .stack 8192                    // stack size in bytes
//! ```
//!
//! ```
//! let blob = capbox_shared::pvm::asm::assemble("r7 = 1\nr8 = r7 + 2\ntrap").unwrap();
//! assert!(capbox_shared::pvm::Program::from_blob(&blob).is_ok());
//! ```

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::builder::{BuiltProgram, ProgramBuilder};
use super::error::{AsmError, AsmErrorKind, BuildError};
use super::insn::{Label, Target};

use super::text::{Forms, TextTarget, Tok, tokenize};

/// Assembles `source` into a program blob.
pub fn assemble(source: &str) -> Result<Vec<u8>, AsmError> {
    Ok(assemble_program(source)?.blob)
}

/// Assembles `source`, also reporting where each line's item landed.
pub fn assemble_program(source: &str) -> Result<BuiltProgram, AsmError> {
    Ok(assemble_with_notes(source)?.program)
}

/// A program and what the assembler did beyond the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembled {
    /// The program.
    pub program: BuiltProgram,
    /// Changes made to keep the program runnable, in source order.
    pub notes: Vec<AsmNote>,
}

/// Something the assembler added to the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmNote {
    /// 1-based line of the label concerned.
    pub line: usize,
    /// The label's name (without `@`).
    pub label: String,
}

impl core::fmt::Display for AsmNote {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "line {}: inserted `fallthrough` before @{}: it is a jump target after an \
             instruction that does not end a basic block (a jump there would panic)",
            self.line, self.label
        )
    }
}

/// [`assemble_program`] with the notes on what was inserted.
pub fn assemble_with_notes(source: &str) -> Result<Assembled, AsmError> {
    Ok(assemble_parts(source)?.0)
}

/// The program, the notes and what the image directives said.
fn assemble_parts(source: &str) -> Result<(Assembled, ImageDirectives), AsmError> {
    // First pass: which labels are jumped to (uses may come after the
    // definition).
    let mut scan = Assembler::new(None);
    scan.parse(source)?;
    let jumped_to: BTreeSet<&str> = scan.first_use.keys().copied().collect();
    let mut assembler = Assembler::new(Some(jumped_to));
    assembler.parse(source)?;
    let notes = core::mem::take(&mut assembler.notes);
    let (program, image) = assembler.build()?;
    Ok((Assembled { program, notes }, image))
}

/// Stack size of an assembled image without `.stack`.
pub const DEFAULT_STACK: u32 = 64 << 10;

/// Assembles `source` into a whole [`Image`](crate::cap::Image): the code,
/// plus what the image directives say. Defaults (what `capbox run
/// --program` always used for text): without `.endpoint`, one unnamed
/// endpoint at pc 0; without `.rw_data` and `.heap_pages`, one zeroed page
/// of read-write data; without `.stack`, [`DEFAULT_STACK`]. Endpoint names
/// are checked as the Image requires (unique, at most 255 bytes).
pub fn assemble_image(source: &str) -> Result<crate::cap::Image, AsmError> {
    Ok(assemble_image_with_notes(source)?.0)
}

/// [`assemble_image`] with the notes on what the assembler inserted.
pub fn assemble_image_with_notes(
    source: &str,
) -> Result<(crate::cap::Image, Vec<AsmNote>), AsmError> {
    let (assembled, directives) = assemble_parts(source)?;
    let notes = assembled.notes;
    let built = assembled.program;
    let mut endpoints = Vec::new();
    let mut endpoint_names = Vec::new();
    for (name, label, line) in &directives.endpoints {
        // Every label was checked to be defined.
        let pc = built.pc(*label).ok_or(AsmError {
            line: *line,
            kind: AsmErrorKind::UndefinedLabel(name.clone()),
        })?;
        endpoints.push(pc);
        endpoint_names.push(name.clone());
    }
    if endpoints.is_empty() {
        endpoints.push(0);
    }
    let rw_data = match (&directives.rw_data, directives.heap_pages) {
        (None, None) => vec![0; 4096],
        (rw, _) => rw.clone().unwrap_or_default(),
    };
    let image = crate::cap::Image {
        code: built.blob,
        ro_data: directives.ro_data,
        rw_data,
        heap_pages: directives.heap_pages.unwrap_or(0),
        stack_size: directives.stack.unwrap_or(DEFAULT_STACK),
        endpoints,
        endpoint_names,
    };
    image.check_limits().map_err(|e| AsmError {
        line: directives.endpoints.first().map_or(0, |e| e.2),
        kind: AsmErrorKind::BadDirective(alloc::format!("the image: {e}")),
    })?;
    Ok((image, notes))
}

/// What the image directives said.
#[derive(Default)]
struct ImageDirectives {
    /// Name, label and line of each `.endpoint`.
    endpoints: Vec<(String, Label, usize)>,
    ro_data: Vec<u8>,
    rw_data: Option<Vec<u8>>,
    heap_pages: Option<u32>,
    stack: Option<u32>,
}

struct Assembler<'a> {
    forms: Forms,
    builder: ProgramBuilder,
    labels: BTreeMap<&'a str, Label>,
    defined: BTreeMap<&'a str, usize>,
    first_use: BTreeMap<&'a str, usize>,
    /// Source line of each builder item and of each jump-table entry.
    item_lines: Vec<usize>,
    entry_lines: Vec<usize>,
    /// Labels that are jumped to (`None`: not known yet, insert nothing).
    jumped_to: Option<BTreeSet<&'a str>>,
    /// Whether to insert `fallthrough` before such labels.
    auto_fallthrough: bool,
    notes: Vec<AsmNote>,
    image: ImageDirectives,
}

/// `jump [r0 + 0]`, what `halt` and `ret` stand for.
const JUMP_R0: [Tok<'static>; 6] = [
    Tok::Ident("jump"),
    Tok::Punct("["),
    Tok::Ident("r0"),
    Tok::Punct("+"),
    Tok::Num(0),
    Tok::Punct("]"),
];

fn at(line: usize) -> impl Fn(AsmErrorKind) -> AsmError {
    move |kind| AsmError { line, kind }
}

impl<'a> Assembler<'a> {
    fn new(jumped_to: Option<BTreeSet<&'a str>>) -> Assembler<'a> {
        Assembler {
            jumped_to,
            auto_fallthrough: true,
            notes: Vec::new(),
            forms: Forms::new(),
            builder: ProgramBuilder::new(),
            labels: BTreeMap::new(),
            defined: BTreeMap::new(),
            first_use: BTreeMap::new(),
            item_lines: Vec::new(),
            entry_lines: Vec::new(),
            image: ImageDirectives::default(),
        }
    }

    /// Reads every line into the builder.
    fn parse(&mut self, source: &'a str) -> Result<(), AsmError> {
        for (index, raw) in source.lines().enumerate() {
            let line = index + 1;
            let text = strip_comment(raw).trim();
            self.line(text, line).map_err(at(line))?;
        }
        Ok(())
    }

    fn build(mut self) -> Result<(BuiltProgram, ImageDirectives), AsmError> {
        if let Some((name, &line)) = self
            .first_use
            .iter()
            .find(|(name, _)| !self.defined.contains_key(*name))
        {
            return Err(AsmError {
                line,
                kind: AsmErrorKind::UndefinedLabel(name.to_string()),
            });
        }
        let image = core::mem::take(&mut self.image);
        let built = self.builder.build_program().map_err(|error| {
            let line = match &error {
                BuildError::JumpTooFar { item, .. } => self.item_lines.get(*item),
                BuildError::JumpTableEntry { index, .. } => self.entry_lines.get(*index),
                _ => None,
            };
            AsmError {
                line: line.copied().unwrap_or(0),
                kind: AsmErrorKind::Build(error),
            }
        })?;
        Ok((built, image))
    }

    fn line(&mut self, text: &'a str, line: usize) -> Result<(), AsmErrorKind> {
        if text.is_empty() {
            return Ok(());
        }
        if let Some(directive) = text.strip_prefix('.') {
            return self.directive(directive, line);
        }
        if let Some(rest) = text.strip_prefix('@') {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let (name, after) = rest.split_at(end);
            let after = after.trim_start();
            // `@name:` alone, or followed by an instruction on the same line.
            if !name.is_empty() && (after.is_empty() || after.starts_with(':')) {
                if self.defined.insert(name, line).is_some() {
                    return Err(AsmErrorKind::DuplicateLabel(name.to_string()));
                }
                let label = self.label(name, None);
                if self.auto_fallthrough
                    && self.builder.in_open_block()
                    && self.jumped_to.as_ref().is_some_and(|j| j.contains(name))
                {
                    self.builder.fallthrough();
                    self.item_lines.push(line);
                    self.notes.push(AsmNote {
                        line,
                        label: name.to_string(),
                    });
                }
                self.builder.bind(label);
                return self.line(after.trim_start_matches(':').trim(), line);
            }
        }
        let tokens = tokenize(text, false)?;
        let parsed = match tokens[..] {
            // Sugar: the halt address is in r0 when an endpoint starts.
            [Tok::Ident("halt" | "ret")] => self.forms.parse(&JUMP_R0)?,
            _ => self.forms.parse(&tokens)?,
        };
        let insn = match parsed.target {
            Some(TextTarget::Label(name)) => parsed
                .insn
                .with_target(Target::Label(self.label(name, Some(line)))),
            Some(TextTarget::Absolute(offset)) => parsed.insn.with_target(Target::Absolute(offset)),
            None => parsed.insn,
        };
        self.builder.push_insn(insn);
        self.item_lines.push(line);
        Ok(())
    }

    fn directive(&mut self, text: &'a str, line: usize) -> Result<(), AsmErrorKind> {
        let (name, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let bad = |what: &str| AsmErrorKind::BadDirective(alloc::format!(".{name}: {what}"));
        match name {
            "jump_table" => {
                for token in tokenize(rest, false)? {
                    match token {
                        Tok::Label(label) => {
                            let label = self.label(label, Some(line));
                            self.builder.jump_table_entry(label);
                        }
                        Tok::Num(n) => {
                            self.builder.jump_table_value(n);
                        }
                        Tok::Punct(",") => continue,
                        _ => return Err(bad("entries are @labels or numbers")),
                    }
                    self.entry_lines.push(line);
                }
            }
            "auto_fallthrough" => match rest.trim() {
                "on" => self.auto_fallthrough = true,
                "off" => self.auto_fallthrough = false,
                _ => return Err(bad("expects `on` or `off`")),
            },
            "jump_entry_size" => {
                let size = rest
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|&z| z <= 8)
                    .ok_or_else(|| bad("expects a size from 0 to 8"))?;
                self.builder.set_jump_entry_size(size);
            }
            "endpoint" => {
                let mut words = rest.split_whitespace();
                let (Some(endpoint), Some(target), None) =
                    (words.next(), words.next(), words.next())
                else {
                    return Err(bad("expects a name and a @label"));
                };
                let Some(label) = target.strip_prefix('@').filter(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }) else {
                    return Err(bad("expects a name and a @label"));
                };
                if self.image.endpoints.iter().any(|(n, _, _)| n == endpoint) {
                    return Err(bad("an endpoint of this name exists"));
                }
                let label = self.label(label, Some(line));
                self.image
                    .endpoints
                    .push((endpoint.to_string(), label, line));
            }
            "ro_data" | "rw_data" => {
                let bytes = hex_octets(rest).ok_or_else(|| bad("expects hexadecimal octets"))?;
                if bytes.is_empty() {
                    return Err(bad("expects at least one octet"));
                }
                let section = if name == "ro_data" {
                    &mut self.image.ro_data
                } else {
                    self.image.rw_data.get_or_insert_with(Vec::new)
                };
                section.extend_from_slice(&bytes);
                if section.len() > crate::cap::MAX_IMAGE_SECTION_LEN as usize {
                    return Err(bad("the section is over 64 MiB"));
                }
            }
            "heap_pages" | "stack" => {
                let value = rest
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .ok_or_else(|| bad("expects a number"))?;
                let slot = if name == "stack" {
                    &mut self.image.stack
                } else {
                    &mut self.image.heap_pages
                };
                if slot.replace(value).is_some() {
                    return Err(bad("given twice"));
                }
            }
            "insn" | "bytes" => {
                let bytes = hex_octets(rest)
                    .ok_or_else(|| bad("expects hexadecimal octets such as `33 07 0a`"))?;
                if bytes.is_empty() {
                    return Err(bad("expects at least one octet"));
                }
                if name == "insn" {
                    self.builder.raw_instruction(&bytes);
                } else {
                    self.builder.raw_bytes(&bytes);
                }
                self.item_lines.push(line);
            }
            _ => return Err(bad("unknown directive")),
        }
        Ok(())
    }

    /// The label named `name`, created on first mention; `used_at` records
    /// a use (for "never defined" errors).
    fn label(&mut self, name: &'a str, used_at: Option<usize>) -> Label {
        if let Some(line) = used_at {
            self.first_use.entry(name).or_insert(line);
        }
        if let Some(&label) = self.labels.get(name) {
            return label;
        }
        let label = self.builder.new_label();
        self.labels.insert(name, label);
        label
    }
}

/// Hexadecimal octets separated by spaces or commas (`0x` optional).
fn hex_octets(text: &str) -> Option<Vec<u8>> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let hex = s.strip_prefix("0x").unwrap_or(s);
            (hex.len() <= 2)
                .then(|| u8::from_str_radix(hex, 16).ok())
                .flatten()
        })
        .collect()
}

/// The line without its comment (`//`, `;` or `#` to the end).
fn strip_comment(line: &str) -> &str {
    let cut = [line.find("//"), line.find(';'), line.find('#')]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(line.len());
    &line[..cut]
}
