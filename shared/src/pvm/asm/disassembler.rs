//! The disassembler: prints a blob in the assembler's syntax, such that
//! assembling the text gives back the same blob, octet for octet.
//!
//! Instructions whose octets are not the canonical encoding of what they
//! decode to (invalid opcodes, over-long immediates, register nibbles above
//! 12, skips over unused octets) are printed as `.insn` with their raw
//! octets and, in a comment, what they decode to. Every line carries its
//! code offset and octets in a comment; basic blocks and jump targets get
//! labels `@0`, `@1`, … in code order.
//!
//! ```
//! use capbox_shared::pvm::asm::{assemble, disassemble};
//! let blob = assemble("@top:\nr7 = r7 + 1\njump @top if r7 <u 10\ntrap").unwrap();
//! let text = disassemble(&blob).unwrap();
//! assert_eq!(assemble(&text).unwrap(), blob);
//! ```

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use super::assembler::assemble_program;
use super::insn::{Args, Insn, Target, encode};
use super::text::{Forms, TextTarget, render, tokenize};
use crate::pvm::blob::{deblob, decode_natural};
use crate::pvm::decode::decode_instruction;
use crate::pvm::error::ProgramError;
use crate::pvm::instructions::Opcode;
use crate::pvm::program::Program;

/// A stretch of code: from one bitmask-marked octet to the next.
struct Unit {
    pc: u32,
    end: u32,
    /// `None`: print raw (also for octets before the first instruction).
    insn: Option<Insn>,
    /// What the octets decode to, for the raw form's comment.
    decoded: Option<Insn>,
    start: bool,
    /// The octets in hexadecimal, space separated.
    octets: String,
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

/// Disassembles a blob. Fails only when the blob itself is malformed.
pub fn disassemble(blob: &[u8]) -> Result<String, ProgramError> {
    let parts = deblob(blob)?;
    let program = Program::from_parts(&parts);
    let code = parts.code;
    let code_len = code.len() as u32;
    let mut starts: Vec<u32> = (0..code_len)
        .filter(|&i| parts.bitmask.is_set(i as usize))
        .collect();
    let mut units = Vec::with_capacity(starts.len() + 1);
    if starts.first() != Some(&0) && code_len > 0 {
        let end = starts.first().copied().unwrap_or(code_len);
        units.push(Unit {
            pc: 0,
            end,
            insn: None,
            decoded: None,
            start: false,
            octets: hex(&code[..end as usize]),
        });
    }
    starts.push(code_len);
    for pair in starts.windows(2) {
        let (pc, end) = (pair[0], pair[1]);
        let decoded = decode_instruction(code, &parts.bitmask, pc);
        let args = Args::from_operands(&decoded.operands);
        let insn = decoded
            .opcode
            .zip(args)
            .and_then(|(op, args)| Insn::new(op, args).ok());
        let canonical = insn.filter(|insn| {
            let target = insn.args().target().map(|t| match t {
                Target::Absolute(v) => v,
                Target::Label(_) => 0,
            });
            encode(insn, pc, target, 0)
                .is_ok_and(|e| e.as_bytes() == &code[pc as usize..end as usize])
        });
        units.push(Unit {
            pc,
            end,
            insn: canonical,
            decoded: insn,
            start: true,
            octets: hex(&code[pc as usize..end as usize]),
        });
    }

    let (entry_size, jump_table) = raw_jump_table(blob);
    let forms = Forms::new();
    loop {
        let text = render_program(&units, &jump_table, entry_size, &program, &forms);
        let Ok(built) = assemble_program(&text) else {
            // Cannot happen for the forms we print; raw octets are always exact.
            units.iter_mut().for_each(|u| u.insn = None);
            continue;
        };
        if built.blob == blob {
            return Ok(text);
        }
        let assembled = deblob(&built.blob).ok();
        let differs = |(i, unit): &(usize, &Unit)| {
            let Some(parts) = &assembled else {
                return true;
            };
            let pc = built.item_pcs.get(*i).copied();
            let end = built.item_pcs.get(i + 1).copied();
            pc != Some(unit.pc)
                || end != Some(unit.end)
                || parts.code.get(unit.pc as usize..unit.end as usize)
                    != code.get(unit.pc as usize..unit.end as usize)
        };
        match units
            .iter()
            .enumerate()
            .find(|u| u.1.insn.is_some() && differs(u))
        {
            Some((i, _)) => units[i].insn = None,
            None if units.iter().any(|u| u.insn.is_some()) => {
                units.iter_mut().for_each(|u| u.insn = None)
            }
            // Everything is raw and still differs: only the header can.
            None => return Ok(text),
        }
    }
}

/// The jump-table entry size `z` and the entries as stored in a blob that
/// `deblob` accepted (`ProgramParts` caps entries at 32 bits; the text must
/// keep every octet).
fn raw_jump_table(blob: &[u8]) -> (u8, Vec<u64>) {
    let Ok((count, at)) = decode_natural(blob) else {
        return (0, Vec::new());
    };
    let size = blob.get(at).copied().unwrap_or(0);
    let Ok((_, code_len_octets)) = decode_natural(blob.get(at + 1..).unwrap_or(&[])) else {
        return (size, Vec::new());
    };
    let start = at + 1 + code_len_octets;
    let entries = (0..count as usize)
        .map(|i| {
            let from = start + i * usize::from(size);
            let octets = blob.get(from..from + usize::from(size)).unwrap_or(&[]);
            octets
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        })
        .collect();
    (size, entries)
}

fn render_program(
    units: &[Unit],
    jump_table: &[u64],
    entry_size: u8,
    program: &Program,
    forms: &Forms,
) -> String {
    let unit_starts: BTreeSet<u32> = units.iter().filter(|u| u.start).map(|u| u.pc).collect();
    let mut labelled: BTreeSet<u32> = unit_starts
        .iter()
        .copied()
        .filter(|&pc| program.is_basic_block_start(pc))
        .collect();
    for unit in units {
        if let Some(Target::Absolute(t)) = unit.insn.and_then(|i| i.args().target())
            && let Ok(t) = u32::try_from(t)
            && unit_starts.contains(&t)
        {
            labelled.insert(t);
        }
    }
    labelled.extend(
        jump_table
            .iter()
            .filter_map(|&e| u32::try_from(e).ok())
            .filter(|pc| unit_starts.contains(pc)),
    );
    let names: BTreeMap<u32, String> = labelled
        .iter()
        .enumerate()
        .map(|(i, &pc)| (pc, format!("@{i}")))
        .collect();
    let name_of = |target: i64| -> String {
        u32::try_from(target)
            .ok()
            .and_then(|pc| names.get(&pc).cloned())
            .unwrap_or_else(|| target.to_string())
    };

    // Jump targets that do not start a basic block (a jump there panics):
    // marked, and the assembler told not to "fix" them.
    let mid_block: BTreeSet<u32> = labelled
        .iter()
        .copied()
        .filter(|&pc| !program.is_basic_block_start(pc))
        .collect();
    let mut out = String::new();
    if !mid_block.is_empty() {
        let _ = writeln!(
            out,
            ".auto_fallthrough off   // some jump targets do not start a basic block"
        );
    }
    if !jump_table.is_empty() {
        let entries: Vec<String> = jump_table
            .iter()
            .map(|&e| match i64::try_from(e) {
                Ok(e) => name_of(e),
                Err(_) => e.to_string(),
            })
            .collect();
        let _ = writeln!(out, ".jump_table {}", entries.join(", "));
    }
    let widest = jump_table.iter().copied().max().unwrap_or(0);
    let default_size = match jump_table.is_empty() {
        true => 0,
        false => ((8 - widest.leading_zeros() / 8) as u8).max(1),
    };
    if entry_size != default_size {
        let _ = writeln!(out, ".jump_entry_size {entry_size}");
    }
    for unit in units {
        if let Some(name) = names.get(&unit.pc).filter(|_| unit.start) {
            if mid_block.contains(&unit.pc) {
                let _ = writeln!(
                    out,
                    "{name}:   // not a basic-block start: a jump here panics"
                );
            } else {
                let _ = writeln!(out, "{name}:");
            }
        }
        let text = match unit.insn {
            Some(insn) => render_checked(&insn, forms, &name_of),
            None => None,
        };
        let octets = &unit.octets;
        let (text, note) = match text {
            Some(text) => (text, String::new()),
            None => {
                let directive = if unit.start { ".insn" } else { ".bytes" };
                let note = match (unit.start, unit.decoded) {
                    (false, _) => " (not instruction starts)".to_string(),
                    (true, Some(insn)) => format!(
                        " (not canonical: {})",
                        render(&insn, usize::MAX, &insn_target(&insn))
                    ),
                    (true, None) => " (invalid opcode: trap)".to_string(),
                };
                (format!("{directive} {octets}"), note)
            }
        };
        let _ = writeln!(out, "    {text:<34} // {}: {octets}{note}", unit.pc);
    }
    out
}

fn insn_target(insn: &Insn) -> String {
    match insn.args().target() {
        Some(Target::Absolute(t)) => t.to_string(),
        _ => String::new(),
    }
}

/// Renders `insn` in its first form, or its generic form if the first does
/// not read back to the same instruction; `None` if neither does.
fn render_checked(insn: &Insn, forms: &Forms, name_of: &dyn Fn(i64) -> String) -> Option<String> {
    let target = match insn.args().target() {
        Some(Target::Absolute(t)) => Some(t),
        _ => None,
    };
    let target_text = target.map(name_of).unwrap_or_default();
    let preferred = match *insn.args() {
        Args::TwoRegsTwoImms { a, b, .. }
            if insn.opcode() == Opcode::load_imm_jump_ind && a == b =>
        {
            1
        }
        _ => 0,
    };
    [preferred, usize::MAX].into_iter().find_map(|form| {
        let text = render(insn, form, &target_text);
        let tokens = tokenize(&text, false).ok()?;
        let parsed = forms.parse(&tokens).ok()?;
        let back = match parsed.target {
            Some(TextTarget::Label(_)) => parsed.insn.with_target(Target::Absolute(target?)),
            Some(TextTarget::Absolute(t)) => parsed.insn.with_target(Target::Absolute(t)),
            None => parsed.insn,
        };
        (back == *insn).then_some(text)
    })
}
