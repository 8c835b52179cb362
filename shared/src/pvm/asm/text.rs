//! Tokens, matching a line against an instruction form, and rendering an
//! instruction in a form (see [`super::syntax`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::error::AsmErrorKind;
use super::insn::{Args, Imm, Insn, Reg, Target, fits_imm};
use super::syntax::{generic_operands, generic_template, templates};
use crate::pvm::instructions::{ALL_OPCODES, ArgFormat, Opcode};

/// One token of a line or of a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    Ident(&'a str),
    Num(u64),
    /// `@name` (without the `@`).
    Label(&'a str),
    Punct(&'static str),
    /// A form's placeholder, e.g. `a`, `+x` (without the `$`).
    Hole(&'a str),
}

/// Longest first, so `<<` wins over `<`.
const PUNCTUATION: [&str; 23] = [
    "<<", ">>", "<=", ">=", "==", "!=", "=", ",", "[", "]", "(", ")", "+", "-", "*", "/", "%", "&",
    "|", "^", "~", "<", ">",
];

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits a line (or, with `holes`, a form) into tokens.
pub(crate) fn tokenize(text: &str, holes: bool) -> Result<Vec<Tok<'_>>, AsmErrorKind> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let word_end = |s: &str| s.find(|c: char| !is_word(c)).unwrap_or(s.len());
        if c.is_ascii_digit() {
            let end = word_end(rest);
            let word = &rest[..end];
            tokens.push(Tok::Num(
                parse_number(word).ok_or_else(|| AsmErrorKind::BadNumber(word.to_string()))?,
            ));
            rest = &rest[end..];
        } else if is_word(c) {
            let end = word_end(rest);
            tokens.push(Tok::Ident(&rest[..end]));
            rest = &rest[end..];
        } else if c == '@' {
            let end = 1 + word_end(&rest[1..]);
            if end == 1 {
                return Err(AsmErrorKind::UnexpectedChar('@'));
            }
            tokens.push(Tok::Label(&rest[1..end]));
            rest = &rest[end..];
        } else if holes && c == '$' {
            let sign = usize::from(rest[1..].starts_with('+'));
            let end = 1 + sign + word_end(&rest[1 + sign..]);
            tokens.push(Tok::Hole(&rest[1..end]));
            rest = &rest[end..];
        } else if let Some(p) = PUNCTUATION.iter().find(|p| rest.starts_with(**p)) {
            tokens.push(Tok::Punct(p));
            rest = &rest[p.len()..];
        } else {
            return Err(AsmErrorKind::UnexpectedChar(c));
        }
    }
    Ok(tokens)
}

/// A decimal or `0x` hexadecimal number (underscores allowed).
fn parse_number(word: &str) -> Option<u64> {
    let digits: String = word.chars().filter(|&c| c != '_').collect();
    match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => digits.parse().ok(),
    }
}

/// A register name: `r0` … `r12`, or PolkaVM's ABI names (`ra`, `sp`,
/// `t0`-`t2`, `s0`, `s1`, `a0`-`a5`), which TESTCASES.md sometimes prints.
pub(crate) fn parse_reg(name: &str) -> Option<Reg> {
    const ABI: [&str; 13] = [
        "ra", "sp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
    ];
    if let Some(index) = ABI.iter().position(|&n| n == name) {
        return Reg::new(index as u8);
    }
    let digits = name.strip_prefix('r')?;
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    Reg::new(digits.parse().ok()?)
}

/// A target as written: a label name or an absolute code offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextTarget<'a> {
    Label(&'a str),
    Absolute(i64),
}

/// What a line matched: the instruction (its target, if a label, is a
/// placeholder) and the target as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub insn: Insn,
    pub target: Option<TextTarget<'a>>,
}

#[derive(Default)]
struct Captures<'a> {
    a: Option<Reg>,
    b: Option<Reg>,
    d: Option<Reg>,
    x: Option<u64>,
    y: Option<u64>,
    t: Option<TextTarget<'a>>,
}

/// A number with an optional leading minus, as a wrapping 64-bit value.
fn signed_number(tokens: &[Tok<'_>], at: &mut usize) -> Option<(bool, u64)> {
    let negative = tokens.get(*at) == Some(&Tok::Punct("-"));
    let i = *at + usize::from(negative);
    let Some(&Tok::Num(n)) = tokens.get(i) else {
        return None;
    };
    *at = i + 1;
    Some((negative, n))
}

/// Matches `line` against `form`. `Ok(None)`: a different shape;
/// `Err(reason)`: the right shape with an operand out of range.
fn match_form<'a>(
    form: &[Tok<'_>],
    line: &[Tok<'a>],
) -> Result<Option<Captures<'a>>, &'static str> {
    let mut caps = Captures::default();
    let mut at = 0;
    for token in form {
        let Tok::Hole(hole) = *token else {
            if line.get(at) != Some(token) {
                return Ok(None);
            }
            at += 1;
            continue;
        };
        let field = hole.chars().last().unwrap_or('x');
        match hole {
            "a" | "b" | "d" => {
                let Some(reg) = (match line.get(at) {
                    Some(Tok::Ident(name)) => parse_reg(name),
                    _ => None,
                }) else {
                    return Ok(None);
                };
                at += 1;
                *match field {
                    'a' => &mut caps.a,
                    'b' => &mut caps.b,
                    _ => &mut caps.d,
                } = Some(reg);
                continue;
            }
            "t" => {
                caps.t = Some(match line.get(at) {
                    Some(&Tok::Label(name)) => {
                        at += 1;
                        TextTarget::Label(name)
                    }
                    _ => match signed_number(line, &mut at) {
                        Some((negative, n)) => {
                            let n = i64::try_from(n).map_err(|_| "jump target out of range")?;
                            TextTarget::Absolute(if negative { -n } else { n })
                        }
                        None => return Ok(None),
                    },
                });
                continue;
            }
            _ => {}
        }
        let value = if let Some(kind) = hole.strip_prefix('+') {
            let sign = match line.get(at) {
                Some(Tok::Punct("+")) => false,
                Some(Tok::Punct("-")) => true,
                // `[r7]`: no displacement is `+ 0`.
                Some(Tok::Punct("]")) => {
                    match field {
                        'y' => caps.y = Some(0),
                        _ => caps.x = Some(0),
                    }
                    continue;
                }
                _ => return Ok(None),
            };
            at += 1;
            if sign && line.get(at) == Some(&Tok::Punct("-")) {
                return Ok(None);
            }
            let Some((negative, n)) = signed_number(line, &mut at) else {
                return Ok(None);
            };
            let value = if sign != negative {
                n.wrapping_neg()
            } else {
                n
            };
            check_imm(kind, negative || sign, n, value)?
        } else {
            let Some((negative, n)) = signed_number(line, &mut at) else {
                return Ok(None);
            };
            check_imm(
                hole,
                negative,
                n,
                if negative { n.wrapping_neg() } else { n },
            )?
        };
        match field {
            'y' => caps.y = Some(value),
            _ => caps.x = Some(value),
        }
    }
    Ok((at == line.len()).then_some(caps))
}

/// Checks a written number against its placeholder kind and returns the
/// 64-bit value the instruction carries.
fn check_imm(kind: &str, negative: bool, magnitude: u64, value: u64) -> Result<u64, &'static str> {
    if negative && magnitude > 1 << 63 {
        return Err("number below -2^63");
    }
    match kind {
        "q" => Ok(value),
        "X" | "u" => {
            if !negative && magnitude <= u64::from(u32::MAX) {
                Ok(Imm::from(magnitude as u32).value())
            } else if fits_imm(value) {
                Ok(value)
            } else {
                Err("address or number must be below 2^32")
            }
        }
        _ if fits_imm(value) => Ok(value),
        _ => Err("immediate is not a sign-extended 32-bit value (use -n or the 64-bit pattern)"),
    }
}

/// Builds the arguments of `op` from captures; a missing capture means the
/// form does not name that operand (never for the table's forms).
fn args_from(op: Opcode, c: &Captures<'_>) -> Option<Args> {
    let t = || c.t.map(|_| Target::Absolute(0));
    Some(match op.format() {
        ArgFormat::NoArgs => Args::NoArgs,
        ArgFormat::OneImm => Args::OneImm { x: c.x? },
        ArgFormat::OneRegExtImm => Args::OneRegExtImm { a: c.a?, x: c.x? },
        ArgFormat::TwoImms => Args::TwoImms { x: c.x?, y: c.y? },
        ArgFormat::OneOffset => Args::OneOffset { t: t()? },
        ArgFormat::OneRegOneImm => Args::OneRegOneImm { a: c.a?, x: c.x? },
        ArgFormat::OneRegTwoImms => Args::OneRegTwoImms {
            a: c.a?,
            x: c.x?,
            y: c.y?,
        },
        ArgFormat::OneRegImmOffset => Args::OneRegImmOffset {
            a: c.a?,
            x: c.x?,
            t: t()?,
        },
        ArgFormat::TwoRegs => Args::TwoRegs { d: c.d?, a: c.a? },
        ArgFormat::TwoRegsOneImm => Args::TwoRegsOneImm {
            a: c.a?,
            b: c.b?,
            x: c.x?,
        },
        ArgFormat::TwoRegsOneOffset => Args::TwoRegsOneOffset {
            a: c.a?,
            b: c.b?,
            t: t()?,
        },
        ArgFormat::TwoRegsTwoImms => Args::TwoRegsTwoImms {
            a: c.a?,
            b: c.b?,
            x: c.x?,
            y: c.y?,
        },
        ArgFormat::ThreeRegs => Args::ThreeRegs {
            d: c.d?,
            a: c.a?,
            b: c.b?,
        },
    })
}

/// Every form with its opcode, in matching order: `load_imm_64`'s `rN = n`
/// comes last so a value that fits 32 bits picks the shorter `load_imm`.
/// Forms are tokenized once, here.
pub(crate) struct Forms {
    forms: Vec<(Opcode, usize, Vec<Tok<'static>>)>,
}

impl Forms {
    pub(crate) fn new() -> Forms {
        // The table's forms are well-formed; an error here would only drop
        // that form (and the tests would notice).
        let tokens = |text: &'static str| tokenize(text, true).unwrap_or_default();
        let mut forms = Vec::new();
        let mut late = Vec::new();
        for &op in ALL_OPCODES {
            for (index, form) in templates(op).iter().enumerate() {
                let entry = (op, index, tokens(form));
                if op == Opcode::load_imm_64 {
                    late.push(entry);
                } else {
                    forms.push(entry);
                }
            }
            let mut generic = vec![Tok::Ident(op.name())];
            generic.extend(tokens(generic_operands(op.format())));
            forms.push((op, usize::MAX, generic));
        }
        forms.extend(late);
        Forms { forms }
    }

    /// Reads one instruction from a tokenized line.
    pub(crate) fn parse<'a>(&self, line: &[Tok<'a>]) -> Result<Parsed<'a>, AsmErrorKind> {
        let mut first_error = None;
        for (op, index, form) in &self.forms {
            // Cheap first check: a literal first token must match.
            if let (Some(first), Some(head)) = (form.first(), line.first())
                && !matches!(first, Tok::Hole(_))
                && first != head
            {
                continue;
            }
            let caps = match match_form(form, line) {
                Ok(Some(caps)) => caps,
                Ok(None) => continue,
                Err(reason) => {
                    first_error.get_or_insert((*op, reason));
                    continue;
                }
            };
            if *op == Opcode::load_imm_jump_ind && *index != usize::MAX {
                let same = caps.a == caps.b;
                if *index == 0 && same {
                    first_error.get_or_insert((
                        *op,
                        "the target register is also the base: write `tmp = rN, rN = x, jump [tmp + y]`",
                    ));
                    continue;
                }
                if *index == 1 && !same {
                    first_error.get_or_insert((*op, "`tmp = rB, rA = …` needs rA = rB"));
                    continue;
                }
            }
            let Some(mut args) = args_from(*op, &caps) else {
                continue;
            };
            if is_subtract_form(*op, *index) {
                // `rA = rB - n` is `rA = rB + (-n)`.
                if let Args::TwoRegsOneImm { x, .. } = &mut args {
                    *x = x.wrapping_neg();
                    if *op == Opcode::add_imm_32 {
                        // The 32-bit form's immediate is still sign-extended.
                        *x = u64::from(*x as u32) as i32 as i64 as u64;
                    }
                }
            }
            return match Insn::new(*op, args) {
                Ok(insn) => Ok(Parsed {
                    insn,
                    target: caps.t,
                }),
                Err(_) => Err(AsmErrorKind::BadOperand {
                    opcode: *op,
                    reason: "immediate out of range",
                }),
            };
        }
        Err(match first_error {
            Some((opcode, reason)) => AsmErrorKind::BadOperand { opcode, reason },
            None => AsmErrorKind::UnknownInstruction(render_tokens(line)),
        })
    }
}

/// Whether form `index` of `op` is the subtraction sugar for adding a
/// negated immediate (the assembler negates what it read).
pub(crate) fn is_subtract_form(op: Opcode, index: usize) -> bool {
    matches!(op, Opcode::add_imm_64 | Opcode::add_imm_32) && index == 1
}

fn render_tokens(line: &[Tok<'_>]) -> String {
    let parts: Vec<String> = line
        .iter()
        .map(|t| match t {
            Tok::Ident(s) => s.to_string(),
            Tok::Num(n) => n.to_string(),
            Tok::Label(s) => format!("@{s}"),
            Tok::Punct(p) => p.to_string(),
            Tok::Hole(h) => format!("${h}"),
        })
        .collect();
    parts.join(" ")
}

/// A number as the disassembler prints it: small ones in decimal, others
/// in hexadecimal.
pub(crate) fn fmt_unsigned(n: u64) -> String {
    if n < 10 {
        n.to_string()
    } else {
        format!("{n:#x}")
    }
}

/// A 64-bit immediate printed as a signed value.
pub(crate) fn fmt_signed(value: u64) -> String {
    let signed = value as i64;
    if signed < 0 && signed > -4096 {
        format!("-{}", signed.unsigned_abs())
    } else if signed < 0 {
        format!("-{}", fmt_unsigned(signed.unsigned_abs()))
    } else {
        fmt_unsigned(value)
    }
}

/// Renders `insn` in form `form` (`usize::MAX`: the generic form), naming
/// its target with `target`.
pub(crate) fn render(insn: &Insn, form: usize, target: &str) -> String {
    let op = insn.opcode();
    let text = match templates(op).get(form) {
        Some(form) => (*form).to_string(),
        None => generic_template(op),
    };
    let (mut a, mut b, mut d, mut x, mut y) = (None, None, None, 0u64, 0u64);
    match *insn.args() {
        Args::NoArgs | Args::OneOffset { .. } => {}
        Args::OneImm { x: vx } => x = vx,
        Args::OneRegExtImm { a: ra, x: vx }
        | Args::OneRegOneImm { a: ra, x: vx }
        | Args::OneRegImmOffset { a: ra, x: vx, .. } => (a, x) = (Some(ra), vx),
        Args::TwoImms { x: vx, y: vy } => (x, y) = (vx, vy),
        Args::OneRegTwoImms {
            a: ra,
            x: vx,
            y: vy,
        } => (a, x, y) = (Some(ra), vx, vy),
        Args::TwoRegs { d: rd, a: ra } => (d, a) = (Some(rd), Some(ra)),
        Args::TwoRegsOneImm {
            a: ra,
            b: rb,
            x: vx,
        } => (a, b, x) = (Some(ra), Some(rb), vx),
        Args::TwoRegsOneOffset { a: ra, b: rb, .. } => (a, b) = (Some(ra), Some(rb)),
        Args::TwoRegsTwoImms {
            a: ra,
            b: rb,
            x: vx,
            y: vy,
        } => (a, b, x, y) = (Some(ra), Some(rb), vx, vy),
        Args::ThreeRegs {
            d: rd,
            a: ra,
            b: rb,
        } => (d, a, b) = (Some(rd), Some(ra), Some(rb)),
    }
    let reg = |r: Option<Reg>| r.map_or_else(String::new, |r| r.to_string());
    let displacement = |v: u64| {
        if (v as i64) < 0 {
            format!("- {}", fmt_unsigned((v as i64).unsigned_abs()))
        } else {
            format!("+ {}", fmt_unsigned(v))
        }
    };
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let sign = rest.starts_with('+');
        let kind = rest[usize::from(sign)..].chars().next().unwrap_or('x');
        rest = &rest[usize::from(sign) + 1..];
        let value = if kind == 'y' { y } else { x };
        let piece = match kind {
            'a' => reg(a),
            'b' => reg(b),
            'd' => reg(d),
            't' => target.to_string(),
            _ if sign => displacement(value),
            'X' => format!("{:#x}", value as u32),
            'u' => (value as u32).to_string(),
            'q' => fmt_unsigned(value),
            _ => fmt_signed(value),
        };
        out.push_str(&piece);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_tokenizes_and_reads_back_its_own_rendering() {
        let forms = Forms::new();
        for &op in ALL_OPCODES {
            for (index, form) in templates(op).iter().enumerate() {
                let tokens = tokenize(form, true).expect(form);
                assert!(!tokens.is_empty(), "{op}: empty form");
                // Registers r7/r8/r9 differ, so `tmp` forms need a == b.
                let same = op == Opcode::load_imm_jump_ind && index == 1;
                let (a, b) = (Reg::R7, if same { Reg::R7 } else { Reg::R8 });
                let args = match op.format() {
                    ArgFormat::NoArgs => Args::NoArgs,
                    ArgFormat::OneImm => Args::OneImm { x: 5 },
                    ArgFormat::OneRegExtImm => Args::OneRegExtImm { a, x: 1 << 40 },
                    ArgFormat::TwoImms => Args::TwoImms { x: 0x2_0000, y: 3 },
                    ArgFormat::OneOffset => Args::OneOffset {
                        t: Target::Absolute(0),
                    },
                    ArgFormat::OneRegOneImm => Args::OneRegOneImm { a, x: 0x2_0000 },
                    ArgFormat::OneRegTwoImms => Args::OneRegTwoImms { a, x: 4, y: 3 },
                    ArgFormat::OneRegImmOffset => Args::OneRegImmOffset {
                        a,
                        x: 3,
                        t: Target::Absolute(0),
                    },
                    ArgFormat::TwoRegs => Args::TwoRegs { d: Reg::R9, a },
                    ArgFormat::TwoRegsOneImm => Args::TwoRegsOneImm { a, b, x: 3 },
                    ArgFormat::TwoRegsOneOffset => Args::TwoRegsOneOffset {
                        a,
                        b,
                        t: Target::Absolute(0),
                    },
                    ArgFormat::TwoRegsTwoImms => Args::TwoRegsTwoImms { a, b, x: 3, y: 4 },
                    ArgFormat::ThreeRegs => Args::ThreeRegs { d: Reg::R9, a, b },
                };
                let insn = Insn::new(op, args).expect("sample fits");
                let text = render(&insn, index, "0");
                let line = tokenize(&text, false).expect(&text);
                let parsed = forms.parse(&line).expect(&text);
                let expected = match args {
                    // `rA = rB - 3` reads as adding -3.
                    Args::TwoRegsOneImm { a, b, x } if is_subtract_form(op, index) => Insn::new(
                        op,
                        Args::TwoRegsOneImm {
                            a,
                            b,
                            x: x.wrapping_neg(),
                        },
                    )
                    .expect("-3 fits"),
                    _ => insn,
                };
                assert_eq!(parsed.insn, expected, "{op}: `{text}`");
            }
        }
    }
}
