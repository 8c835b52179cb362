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
//! ```
//!
//! ```
//! let blob = capbox_shared::pvm::asm::assemble("r7 = 1\nr8 = r7 + 2\ntrap").unwrap();
//! assert!(capbox_shared::pvm::Program::from_blob(&blob).is_ok());
//! ```

use alloc::collections::BTreeMap;
use alloc::string::ToString;
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
    Assembler::new().run(source)
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
}

fn at(line: usize) -> impl Fn(AsmErrorKind) -> AsmError {
    move |kind| AsmError { line, kind }
}

impl<'a> Assembler<'a> {
    fn new() -> Assembler<'a> {
        Assembler {
            forms: Forms::new(),
            builder: ProgramBuilder::new(),
            labels: BTreeMap::new(),
            defined: BTreeMap::new(),
            first_use: BTreeMap::new(),
            item_lines: Vec::new(),
            entry_lines: Vec::new(),
        }
    }

    fn run(mut self, source: &'a str) -> Result<BuiltProgram, AsmError> {
        for (index, raw) in source.lines().enumerate() {
            let line = index + 1;
            let text = strip_comment(raw).trim();
            self.line(text, line).map_err(at(line))?;
        }
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
        self.builder.build_program().map_err(|error| {
            let line = match &error {
                BuildError::JumpTooFar { item, .. } => self.item_lines.get(*item),
                BuildError::JumpTableEntry { index, .. } => self.entry_lines.get(*index),
                _ => None,
            };
            AsmError {
                line: line.copied().unwrap_or(0),
                kind: AsmErrorKind::Build(error),
            }
        })
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
                self.builder.bind(label);
                return self.line(after.trim_start_matches(':').trim(), line);
            }
        }
        let tokens = tokenize(text, false)?;
        let parsed = self.forms.parse(&tokens)?;
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
            "jump_entry_size" => {
                let size = rest
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|&z| z <= 8)
                    .ok_or_else(|| bad("expects a size from 0 to 8"))?;
                self.builder.set_jump_entry_size(size);
            }
            "insn" | "bytes" => {
                let bytes = rest
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        let hex = s.strip_prefix("0x").unwrap_or(s);
                        (hex.len() <= 2)
                            .then(|| u8::from_str_radix(hex, 16).ok())
                            .flatten()
                    })
                    .collect::<Option<Vec<u8>>>()
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

/// The line without its comment (`//`, `;` or `#` to the end).
fn strip_comment(line: &str) -> &str {
    let cut = [line.find("//"), line.find(';'), line.find('#')]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(line.len());
    &line[..cut]
}
