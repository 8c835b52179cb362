//! Random programs calling random kernel ops with random arguments, run
//! through the kernel service (`KernelState::handle` / `handle_owned`).
//!
//! The input builds one PVM program with `ProgramBuilder`: a straight-line
//! sequence of steps, each loading φ7..φ12 with values from interesting sets
//! chosen by the op's argument names (small slots, bad slots; pointers into
//! the read-write data, the read-only data, the stack (φ1-relative), the
//! unmapped page, 0, the top of the address space; lengths around 0, a
//! page, the ops' limits and huge; call selectors with small gas), then
//! `ecalli` of a (mostly valid) op; occasionally a store of a result to
//! memory, a register move, a `trap`, or a jump / branch back to an earlier
//! step (loops end when the gas does). Each step is its own basic block, so
//! any step can be a jump target or an endpoint. The program halts at the
//! end.
//!
//! Its Image is published together with root instances whose root CNodes
//! hold a mix of caps (`new_instance_with_slots`): Data of various sizes
//! (one long and sparse), the Image itself (so `spawn` and `call` recurse),
//! an Instance of the same image (callable at once), CNodes, a Type,
//! sometimes a hash nobody has. Then a few invocations (small gas,
//! sometimes an input; single, batched or chained) of the root instances
//! and of the states earlier invocations produced.
//!
//! Invariants, beyond "no panic, no hang":
//! * two kernels in lockstep, one through `handle` and one through
//!   `handle_owned`, give byte-identical replies and the same log lines;
//! * every reply decodes as an invoke reply;
//! * after each invoke reply the directory's working tier is empty (each
//!   invocation sweeps its working entries);
//! * an outcome that is not a halt names the instance it was given; gas
//!   used never exceeds the gas limit;
//! * a halt's new state is settled and published: every cap reachable from
//!   the new instance is a blob in the directory (when the input planted no
//!   missing hash);
//! * determinism: for some invocations, a fresh kernel (fresh directory and
//!   `ProgramCache`) given every blob the first one holds answers the same
//!   request with the same bytes and the same logs.
//! * the reply budget: every output is at most `MAX_OUTPUT_LEN`, a batch's
//!   outputs total at most `MAX_BATCH_OUTPUT_BYTES`, and a call is refused
//!   with `ReplyBudget` exactly when the outputs before it leave less than
//!   `MAX_OUTPUT_LEN` (so the refused calls are a suffix of the batch);
//! * a program over `MAX_INSTRUCTIONS` (instructions or jump-table entries)
//!   never runs: `BadProgram`; one within the limit is never `BadProgram`;
//! * `Timeout` only for a call with a deadline (the host's clock ticks once
//!   per look).
//!
//! *Large mode* (a quarter of the inputs, chosen by the first octet): the
//! program is padded after its code to around `MAX_INSTRUCTIONS`
//! instructions (one-byte `fallthrough`s, or one huge basic block of
//! `add_imm_64`, then a halt; the padding is another endpoint) or gets a
//! jump table that long; rw data up to 1.5 MiB and heaps up to 4097 pages;
//! steps that `set_output` (or `input_read`) around `MAX_OUTPUT_LEN`;
//! batches of up to six calls with gas up to 2 000 000 and inputs up to
//! `MAX_INPUT_LEN` + 1.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use capbox_shared::abi::{self, CapBlobMsg, ErrorKind, GuestFunction, InvocationMsg};
use capbox_shared::kernel::ops::{MAX_INPUT_LEN, MAX_LOG_LEN, MAX_OUTPUT_LEN, MAX_TRANSFER_LEN};
use capbox_shared::kernel::{KernelHost, KernelOp, KernelState, LogSink, ProgramCache};
use capbox_shared::kernel::{MAX_BATCH_OUTPUT_BYTES, NO_TIMEOUT, new_instance_with_slots, sample};
use capbox_shared::pvm::asm::{Imm, ProgramBuilder, Reg};
use capbox_shared::pvm::{MAX_INSTRUCTIONS, deblob, decode_natural, encode_natural};
use capbox_shared::{CNode, CacheDirectory, Cap, CapHash, CapHashOrRef, Data, Image, TypeCap};
use libfuzzer_sys::fuzz_target;

/// Program steps at most.
const MAX_STEPS: usize = 24;
/// Invocations per input at most.
const MAX_INVOCATIONS: usize = 8;
/// Gas limits an invocation picks from: small, so recursion and loops end.
const GAS: [u64; 6] = [20_000, 3_000, 60_000, 500, 50, 0];
/// Invocation inputs (most calls have none).
const INPUTS: [&[u8]; 5] = [b"", b"", b"", b"abc", &[0xa5; 5000]];
/// The page no layout maps (large mode: one far past its sections).
const UNMAPPED: u64 = 0x10_0000;
const UNMAPPED_LARGE: u64 = 0x7000_0000;
/// Large mode: gas limits (a 1 MiB `set_output` costs ~33k, a run through
/// 2^18 padding instructions ~2^18).
const GAS_LARGE: [u64; 6] = [40_000, 300_000, 2_000_000, 20_000, 500, 0];
/// Large mode: lengths for `set_output`, `input_read` and the like.
const LENS_LARGE: [u64; 6] = [
    MAX_OUTPUT_LEN,
    MAX_OUTPUT_LEN,
    MAX_OUTPUT_LEN - 1,
    MAX_OUTPUT_LEN + 1,
    1 << 19,
    3 << 18,
];
/// Deadlines (ticks of `FuzzHost`'s clock, one per look): mostly none.
const TIMEOUTS: [u64; 8] = [NO_TIMEOUT, NO_TIMEOUT, NO_TIMEOUT, NO_TIMEOUT, 0, 1, 3, 40];

/// `KERNEL_OPS_DEBUG=1`: print the program, each request and each reply
/// (to read a crash input: `cargo fuzz run kernel_ops <file>`).
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("KERNEL_OPS_DEBUG").is_some())
}

/// Reads the input front to back; once it runs out, further octets come
/// from a generator seeded with the whole input, so even a short input
/// makes a full program and several invocations (a mutation of the prefix
/// still changes only its own choices until the tail is reseeded).
struct Input<'a> {
    data: &'a [u8],
    tail: u64,
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        // FNV-1a of the input; never zero (xorshift's fixed point).
        let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Input {
            data,
            tail: seed | 1,
        }
    }
    fn u8(&mut self) -> u8 {
        if let Some((first, rest)) = self.data.split_first() {
            self.data = rest;
            return *first;
        }
        self.tail ^= self.tail << 13;
        self.tail ^= self.tail >> 7;
        self.tail ^= self.tail << 17;
        (self.tail >> 32) as u8
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[usize::from(self.u8()) % options.len()]
    }
}

/// How the program's memory is laid out (to aim pointers).
#[derive(Clone, Copy)]
struct Layout {
    ro_start: u64,
    rw_start: u64,
    rw_len: u64,
    /// Large mode: big lengths and outputs.
    large: bool,
}

/// A value for one argument register.
#[derive(Clone, Copy, Debug)]
enum Value {
    /// Leave the register as it is (a previous op's result).
    Keep,
    Imm(u64),
    /// φ1 − k: into (or just past) the stack.
    Stack(i32),
}

fn slot_value(input: &mut Input<'_>) -> Value {
    match input.u8() % 16 {
        0 => Value::Imm(input.pick(&[65_535, 65_536, u64::MAX, 1 << 32, 9, 255])),
        1 => Value::Keep,
        n => Value::Imm(u64::from(n % 8)),
    }
}

fn ptr_value(input: &mut Input<'_>, layout: Layout) -> Value {
    let rw = layout.rw_start;
    match input.u8() % 16 {
        0..=5 => Value::Imm(rw + u64::from(input.u8())),
        6 => Value::Imm(rw + 4096 - u64::from(input.u8() % 40)),
        7 => Value::Imm(rw + layout.rw_len.saturating_sub(u64::from(input.u8() % 40))),
        8..=10 => Value::Stack(input.pick(&[8, 32, 64, 100, 4096, 4097, 0, -8])),
        11 => Value::Imm(layout.ro_start + u64::from(input.u8() % 64)),
        12 if layout.large => Value::Imm(UNMAPPED_LARGE),
        12 => Value::Imm(UNMAPPED),
        13 => Value::Imm(input.pick(&[0, u64::MAX - 2, u64::MAX, 0xFFFF_FFF0, 1 << 32])),
        14 => Value::Keep,
        _ => Value::Imm(u64::from(input.u32())),
    }
}

fn len_value(input: &mut Input<'_>, layout: Layout) -> Value {
    if layout.large && input.u8().is_multiple_of(4) {
        return Value::Imm(input.pick(&LENS_LARGE));
    }
    match input.u8() % 16 {
        0..=7 => Value::Imm(u64::from(input.u8() % 65)),
        8 => Value::Imm(input.pick(&[4095, 4096, 4097, 8192, 5000])),
        9 => Value::Imm(input.pick(&[
            MAX_LOG_LEN,
            MAX_LOG_LEN + 1,
            MAX_OUTPUT_LEN,
            MAX_OUTPUT_LEN + 1,
            MAX_TRANSFER_LEN,
            MAX_TRANSFER_LEN + 1,
        ])),
        10 => Value::Imm(input.pick(&[u64::MAX, 1 << 32, u64::from(u32::MAX), 1 << 20])),
        11 => Value::Keep,
        _ => Value::Imm(u64::from(input.u16() % 300)),
    }
}

fn offset_value(input: &mut Input<'_>) -> Value {
    match input.u8() % 8 {
        0..=3 => Value::Imm(u64::from(input.u8() % 16)),
        4 => Value::Imm(input.pick(&[3, 5, 100, 4096, 4097, 5000])),
        5 => Value::Imm(input.pick(&[u64::MAX, 1 << 32, (1 << 20) - 1, 1 << 24])),
        6 => Value::Keep,
        _ => Value::Imm(u64::from(input.u16())),
    }
}

/// `call`'s endpoint (bits 0..32) and gas limit (bits 32..64).
fn selector_value(input: &mut Input<'_>) -> Value {
    if input.u8().is_multiple_of(16) {
        return Value::Imm(input.u64());
    }
    let endpoint = u64::from(input.u8() % 5);
    let gas = input.pick(&[0u64, 1, 100, 1_000, 5_000, 0xFFFF_FFFF]);
    Value::Imm(endpoint | (gas << 32))
}

fn any_value(input: &mut Input<'_>) -> Value {
    match input.u8() % 4 {
        0 => Value::Keep,
        1 => Value::Imm(input.u64()),
        _ => Value::Imm(u64::from(input.u8())),
    }
}

/// A value for the argument named `name` (from the op table).
fn arg_value(name: &str, input: &mut Input<'_>, layout: Layout) -> Value {
    // Sometimes any kind of value for any argument.
    let name = if input.u8().is_multiple_of(16) {
        input.pick(&["slot", "ptr", "len", "offset", "endpoint_and_gas", "a0"])
    } else {
        name
    };
    if name.ends_with("slot") {
        slot_value(input)
    } else {
        match name {
            "ptr" => ptr_value(input, layout),
            "len" => len_value(input, layout),
            "offset" => offset_value(input),
            "endpoint_and_gas" => selector_value(input),
            _ => any_value(input),
        }
    }
}

const ARG_REGS: [Reg; 6] = [Reg::R7, Reg::R8, Reg::R9, Reg::R10, Reg::R11, Reg::R12];

#[derive(Debug)]
enum Step {
    /// Load the argument registers, then `ecalli number`.
    Op {
        number: u32,
        args: Vec<Value>,
    },
    /// Store a register (a result) to memory.
    Store {
        reg: Reg,
        addr: u32,
    },
    /// `move_reg`: a result becomes an argument.
    Move {
        dst: Reg,
        src: Reg,
    },
    Trap,
    /// Jump back to an earlier step.
    JumpBack(usize),
    /// Branch back when φ7 equals `value` (e.g. OK).
    BranchBack {
        to: usize,
        value: u32,
    },
}

/// Large mode: a step that moves a lot of bytes (a big output, most
/// often, or all of a big input into memory).
fn big_step(input: &mut Input<'_>, layout: Layout) -> Step {
    let rw = layout.rw_start;
    let ptr = Value::Imm(input.pick(&[rw, rw, rw, rw + 4096, layout.ro_start]));
    let len = Value::Imm(match input.u8() % 4 {
        0 => layout.rw_len,
        _ => input.pick(&LENS_LARGE),
    });
    let (op, args) = match input.u8() % 4 {
        0 => (KernelOp::InputRead, vec![Value::Imm(0), ptr, len]),
        _ => (KernelOp::SetOutput, vec![ptr, len]),
    };
    Step::Op {
        number: op.number(),
        args,
    }
}

fn next_step(input: &mut Input<'_>, index: usize, layout: Layout) -> Step {
    if layout.large && input.u8().is_multiple_of(4) {
        return big_step(input, layout);
    }
    match input.u8() % 32 {
        31 | 30 => Step::Store {
            reg: input.pick(&ARG_REGS),
            addr: input.pick(&[
                layout.rw_start as u32,
                layout.rw_start as u32 + 8,
                layout.rw_start as u32 + 4096,
                layout.ro_start as u32,
            ]),
        },
        29 | 28 => Step::Move {
            dst: input.pick(&ARG_REGS),
            src: input.pick(&ARG_REGS),
        },
        27 => Step::Trap,
        26 if index > 0 => Step::JumpBack(index - 1 - usize::from(input.u8()) % index.min(4)),
        25 if index > 0 => Step::BranchBack {
            to: index - 1 - usize::from(input.u8()) % index.min(4),
            value: input.pick(&[0, 1, 255]),
        },
        _ => {
            let number = match input.u8() % 32 {
                31 => input.pick(&[99, 19, 255, u32::MAX]),
                n => KernelOp::ALL[usize::from(n) % KernelOp::ALL.len()].number(),
            };
            let names: &[&str] = match KernelOp::from_number(number) {
                Some(op) => op.args(),
                None => &["a0", "a1"],
            };
            let args = names
                .iter()
                .map(|name| arg_value(name, input, layout))
                .collect();
            Step::Op { number, args }
        }
    }
}

fn load(b: &mut ProgramBuilder, reg: Reg, value: Value) {
    match value {
        Value::Keep => {}
        Value::Imm(v) => match Imm::new(v) {
            Some(imm) => {
                b.load_imm(reg, imm);
            }
            None => {
                b.load_imm_64(reg, v);
            }
        },
        Value::Stack(k) => {
            b.add_imm_64(reg, Reg::R1, -k);
        }
    }
}

/// The program and its endpoints' step indexes.
fn build_program(steps: &[Step], entry_steps: &[usize]) -> (Vec<u8>, Vec<u32>) {
    let mut b = ProgramBuilder::new();
    let labels: Vec<_> = (0..steps.len()).map(|_| b.new_label()).collect();
    for (i, step) in steps.iter().enumerate() {
        // Every step starts a basic block: any may be a target.
        if i > 0 {
            b.fallthrough();
        }
        b.bind(labels[i]);
        match step {
            Step::Op { number, args } => {
                for (reg, value) in ARG_REGS.iter().zip(args) {
                    load(&mut b, *reg, *value);
                }
                b.ecalli(*number);
            }
            Step::Store { reg, addr } => {
                b.store_u64(*reg, *addr);
            }
            Step::Move { dst, src } => {
                b.move_reg(*dst, *src);
            }
            Step::Trap => {
                b.trap();
            }
            Step::JumpBack(to) => {
                b.jump(labels[*to]);
            }
            Step::BranchBack { to, value } => {
                b.branch_eq_imm(Reg::R7, *value, labels[*to]);
            }
        }
    }
    let end = b.new_label();
    b.fallthrough();
    b.bind(end);
    b.jump_ind(Reg::R0, 0u32);
    let built = b
        .build_program()
        .expect("generated programs are well formed");
    let endpoints = entry_steps
        .iter()
        .map(|&s| {
            let label = labels.get(s).copied().unwrap_or(end);
            built.pc(label).expect("a label of this builder")
        })
        .collect();
    (built.blob, endpoints)
}

/// The octets of the instructions `emit` pushes (no jump targets).
fn instruction_bytes(emit: impl FnOnce(&mut ProgramBuilder)) -> Vec<u8> {
    let mut b = ProgramBuilder::new();
    emit(&mut b);
    let blob = b.build().expect("a straight-line snippet builds");
    deblob(&blob).expect("a built blob splits").code.to_vec()
}

/// Large mode's padding units (each one instruction): `fallthrough` (each
/// its own basic block) or `add_imm_64 φ8, φ8, 1` (one huge basic block),
/// and the tail after them, `jump_ind φ0` (halt).
fn padding_units() -> &'static [Vec<u8>; 3] {
    static UNITS: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    UNITS.get_or_init(|| {
        [
            instruction_bytes(|b| {
                b.fallthrough();
            }),
            instruction_bytes(|b| {
                b.add_imm_64(Reg::R8, Reg::R8, 1);
            }),
            instruction_bytes(|b| {
                b.jump_ind(Reg::R0, 0u32);
            }),
        ]
    })
}

/// What large mode did to a program's size.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    /// Instructions (bitmask bits) in the code.
    instructions: u64,
    /// Dynamic jump-table entries.
    jump_entries: u64,
    /// Zero-width jump-table entries outnumbering the blob's octets
    /// (`deblob` refuses them: `ProgramError::TooLarge`).
    zero_width_overflow: bool,
}

impl Size {
    /// Whether the kernel must refuse the program (`ProgramError::OverLimit`
    /// or, for zero-width entries, `TooLarge`).
    fn over_limit(self) -> bool {
        self.instructions > MAX_INSTRUCTIONS
            || self.jump_entries > MAX_INSTRUCTIONS
            || self.zero_width_overflow
    }
}

/// Instruction (or jump-table) counts large mode pads a program to: just
/// under, at and just over `MAX_INSTRUCTIONS`, or anything below.
fn size_target(input: &mut Input<'_>) -> u64 {
    match input.u8() % 8 {
        0 => MAX_INSTRUCTIONS - 1,
        1 | 2 => MAX_INSTRUCTIONS,
        3 | 4 => MAX_INSTRUCTIONS + 1,
        5 => MAX_INSTRUCTIONS + 1 + u64::from(input.u16()),
        _ => u64::from(input.u32()) % MAX_INSTRUCTIONS,
    }
}

/// Large mode: appends padding to the built program `blob` (after its code,
/// so no pc moves) up to `instructions` instructions, ended by a halt; its
/// start becomes another endpoint. Then pads the jump table (with entries
/// of offset 0) to `jump_entries`. Returns the new blob and its size.
fn pad_program(
    blob: &[u8],
    instructions: Option<(u64, usize)>,
    jump_entries: Option<(u64, u8)>,
    endpoints: &mut Vec<u32>,
) -> (Vec<u8>, Size) {
    let parts = deblob(blob).expect("a built blob splits");
    let (_, at) = decode_natural(blob).expect("a built blob starts with |j|");
    let mut entry_size = blob[at];
    let mut code = parts.code.to_vec();
    let mut starts: Vec<bool> = (0..code.len()).map(|i| parts.bitmask.is_set(i)).collect();
    let have = starts.iter().filter(|&&s| s).count() as u64;
    let mut push = |code: &mut Vec<u8>, bytes: &[u8]| {
        code.extend_from_slice(bytes);
        starts.push(true);
        starts.extend(std::iter::repeat_n(false, bytes.len() - 1));
    };
    if let Some((target, unit)) = instructions {
        let [fallthrough, add, halt] = padding_units();
        let unit = if unit == 0 { fallthrough } else { add };
        let count = target.saturating_sub(have + 1);
        if count > 0 && endpoints.len() < 8 {
            endpoints.push(code.len() as u32);
        }
        code.reserve(count as usize * unit.len() + halt.len());
        for _ in 0..count {
            push(&mut code, unit);
        }
        push(&mut code, halt);
    }
    let mut jump_table = parts.jump_table.clone();
    if let Some((target, size)) = jump_entries {
        if jump_table.is_empty() {
            // Any width for a table of zeros (0: no octets per entry).
            entry_size = size;
        }
        jump_table.resize(jump_table.len().max(target as usize), 0);
    }
    let mut out = Vec::with_capacity(code.len() * 2);
    encode_natural(jump_table.len() as u64, &mut out);
    out.push(entry_size);
    encode_natural(code.len() as u64, &mut out);
    for entry in &jump_table {
        out.extend_from_slice(&u64::from(*entry).to_le_bytes()[..usize::from(entry_size)]);
    }
    out.extend_from_slice(&code);
    let mut mask = vec![0u8; code.len().div_ceil(8)];
    for (i, _) in starts.iter().enumerate().filter(|(_, s)| **s) {
        mask[i / 8] |= 1 << (i % 8);
    }
    out.extend_from_slice(&mask);
    let size = Size {
        instructions: starts.iter().filter(|&&s| s).count() as u64,
        jump_entries: jump_table.len() as u64,
        zero_width_overflow: entry_size == 0 && jump_table.len() > out.len(),
    };
    (out, size)
}

fn fuzz_image(input: &mut Input<'_>, large: bool) -> (Image, Layout, Size) {
    let ro_len = input.pick(&[0usize, 0, 0, 16]);
    let rw_len = if large {
        input.pick(&[4096usize, 1 << 20, (1 << 20) + 5000, 3 << 19, 9000, 0])
    } else {
        input.pick(&[0usize, 16, 4096, 4096, 5000, 9000])
    };
    let ro_start = 0x1_0000;
    let rw_start = if ro_len == 0 { 0x2_0000 } else { 0x3_0000 };
    let layout = Layout {
        ro_start,
        rw_start,
        rw_len: rw_len as u64,
        large,
    };
    let step_count = 1 + usize::from(input.u8()) % MAX_STEPS;
    let steps: Vec<Step> = (0..step_count)
        .map(|i| next_step(input, i, layout))
        .collect();
    let entry_steps: Vec<usize> = std::iter::once(0)
        .chain((0..input.u8() % 4).map(|_| usize::from(input.u8()) % (step_count + 1)))
        .collect();
    let (mut code, mut endpoints) = build_program(&steps, &entry_steps);
    let mut size = Size::default();
    if large {
        let instructions = match input.u8() % 4 {
            0 | 1 => None,
            _ => Some((size_target(input), usize::from(input.u8() % 3 == 0))),
        };
        let jump_entries = match input.u8() % 8 {
            0 => Some((size_target(input), input.pick(&[0, 1, 4]))),
            _ => None,
        };
        (code, size) = pad_program(&code, instructions, jump_entries, &mut endpoints);
    }
    let heap_pages = if large {
        // 256 pages: a 1 MiB output fits after small rw data; 8192: the
        // layout maps more than MAX_MAPPED_BYTES (refused).
        match input.u8() % 16 {
            0 => 8192,
            1..=4 => 0,
            n => input.pick(&[1, 256, 257, 2048, 4096]) + u32::from(n % 2),
        }
    } else {
        input.pick(&[0, 0, 1, 2])
    };
    let stack_size = if large {
        input.pick(&[4096, 4096, 1 << 16, 1 << 20, 100])
    } else {
        input.pick(&[4096, 4096, 16384, 0, 100])
    };
    let image = Image {
        code,
        ro_data: (0..ro_len).map(|i| i as u8 ^ 0x5a).collect(),
        rw_data: (0..rw_len).map(|i| i as u8).collect(),
        heap_pages,
        stack_size,
        endpoints,
    };
    (image, layout, size)
}

/// Records the log lines one kernel produces and serves the blobs the input
/// kept on the host side.
/// Its clock ticks once per look, so a deadline of `n` ticks ends an
/// invocation at its `n`th look (deterministic: counted from the start).
#[derive(Default)]
struct FuzzHost {
    blobs: HashMap<[u8; 32], Vec<u8>>,
    logs: Vec<Vec<u8>>,
    ticks: u64,
}

impl LogSink for FuzzHost {
    fn log(&mut self, message: &[u8]) {
        self.logs.push(message.to_vec());
    }
}

impl KernelHost for FuzzHost {
    fn fetch_blob(&mut self, hash: &CapHash) -> Option<Vec<u8>> {
        self.blobs.get(&hash.0).cloned()
    }
    fn now(&mut self) -> Option<u64> {
        self.ticks += 1;
        Some(self.ticks)
    }
}

/// Large mode's invocation inputs: none, a little, half and all of
/// `MAX_INPUT_LEN`, and one octet more (refused: `BadMessage`). At most
/// one big input per request (`*big`): encoding a request costs ~1 µs per
/// input octet with the fuzzer's instrumentation.
fn large_input(input: &mut Input<'_>, big_used: &mut bool) -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    let big = BIG.get_or_init(|| {
        (0..=MAX_INPUT_LEN as usize)
            .map(|i| (i as u8) ^ (i >> 12) as u8)
            .collect()
    });
    let len = match input.u8() % 8 {
        4 if !*big_used => 1 << 19,
        5 if !*big_used => MAX_INPUT_LEN as usize,
        6 if !*big_used => MAX_INPUT_LEN as usize + 1,
        3..=6 => 3,
        _ => 0,
    };
    *big_used |= len > 3;
    &big[..len]
}

/// The caps to publish and the root instances.
struct World {
    published: Vec<Cap>,
    /// Only on the host (`fetch_blob`).
    host_only: Vec<Cap>,
    roots: Vec<CapHash>,
    /// A slot names a hash nobody has.
    planted_missing: bool,
}

fn data_cap(input: &mut Input<'_>) -> Cap {
    let len = input.pick(&[0usize, 1, 5, 64, 4096, 5000]);
    let mut data = Data::from_bytes(&vec![input.u8() | 1; len]).expect("small data");
    if input.u8().is_multiple_of(8) {
        // Long and sparse.
        let long = input.pick(&[1u64 << 20, (1 << 24) + 3, 70_000]);
        data.set_len(long).expect("within MAX_DATA_LEN");
        data.write(long - 1, &[7]).expect("in range");
    }
    Cap::Data(data)
}

fn build_world(input: &mut Input<'_>, image: &Image) -> World {
    let image_cap = Cap::Image(image.clone());
    let image_hash = image_cap.hash().expect("the image hashes");
    let mut world = World {
        published: vec![image_cap],
        host_only: Vec::new(),
        roots: Vec::new(),
        planted_missing: false,
    };
    // A child instance of the same image (its own CNode: a Data, maybe the
    // image), callable from a slot at once.
    let mut child_slots = vec![(0, {
        let cap = data_cap(input);
        let hash = cap.hash().expect("data hashes");
        world.published.push(cap);
        hash
    })];
    if input.u8().is_multiple_of(2) {
        child_slots.push((1, image_hash));
    }
    let child = new_instance_with_slots(image_hash, image, &child_slots).expect("child instance");
    let child_hash = child.instance_hash;
    world
        .published
        .extend([child.memory, child.root_cnode, child.instance]);
    let sample = Cap::Image(sample::sample_image());
    let sample_hash = sample.hash().expect("the sample hashes");
    world.published.push(sample);

    for _ in 0..1 + input.u8() % 2 {
        let mut slots = Vec::new();
        for slot in 0..8u32 {
            let choice = input.u8() % 12;
            let (hash, cap) = match choice {
                0 | 1 => continue,
                2..=4 => {
                    let cap = data_cap(input);
                    (cap.hash().expect("data hashes"), Some(cap))
                }
                5 | 6 => (image_hash, None),
                7 => (child_hash, None),
                8 => {
                    let mut cnode = CNode::new();
                    for _ in 0..input.u8() % 3 {
                        let _ =
                            cnode.set(u32::from(input.u8() % 8), CapHashOrRef::Hash(image_hash));
                    }
                    let cap = Cap::CNode(cnode);
                    (cap.hash().expect("cnode hashes"), Some(cap))
                }
                9 => {
                    let cap = Cap::Type(TypeCap {
                        image_hash_chain: TypeCap::child(&TypeCap::ROOT_CHAIN, &image_hash),
                    });
                    (cap.hash().expect("type hashes"), Some(cap))
                }
                10 => (sample_hash, None),
                _ => {
                    // Held by the host only, or by nobody.
                    if input.u8().is_multiple_of(2) {
                        world.planted_missing = true;
                        (CapHash([input.u8() | 1; 32]), None)
                    } else {
                        let cap = data_cap(input);
                        let hash = cap.hash().expect("data hashes");
                        world.host_only.push(cap);
                        (hash, None)
                    }
                }
            };
            if let Some(cap) = cap {
                world.published.push(cap);
            }
            slots.push((slot, hash));
        }
        let root = new_instance_with_slots(image_hash, image, &slots).expect("root instance");
        world.roots.push(root.instance_hash);
        world
            .published
            .extend([root.memory, root.root_cnode, root.instance]);
    }
    world
}

fn put_request(caps: &[Cap]) -> Vec<u8> {
    let encoded: Vec<(CapHash, Vec<u8>)> = caps
        .iter()
        .map(|c| (c.hash().expect("hashes"), c.encode().expect("encodes")))
        .collect();
    let msgs: Vec<CapBlobMsg<'_>> = encoded
        .iter()
        .map(|(h, b)| CapBlobMsg {
            hash: Some(h.0),
            bytes: b,
        })
        .collect();
    abi::encode_put_cap_request(&msgs)
}

/// Every cap reachable from `root` is a blob in `dir` (no working links),
/// or one the host holds that the kernel never needed (a link the program
/// moved without reading it).
fn assert_published(dir: &CacheDirectory, host: &HashMap<[u8; 32], Vec<u8>>, root: CapHash) {
    let mut seen = HashSet::new();
    let mut todo = vec![root];
    while let Some(hash) = todo.pop() {
        if !seen.insert(hash) || (host.contains_key(&hash.0) && !dir.contains_blob(&hash)) {
            continue;
        }
        let cap = dir.get_blob(&hash).unwrap_or_else(|| {
            panic!("{hash:?}, reachable from a halt's state {root:?}, is not published")
        });
        let link = |l: &CapHashOrRef| match l {
            CapHashOrRef::Hash(h) => *h,
            CapHashOrRef::Ref(r) => panic!("a published cap links a working entry {r:?}"),
        };
        match &*cap {
            Cap::CNode(cnode) => todo.extend(cnode.iter().map(|(_, l)| link(l))),
            Cap::Instance(inst) => {
                todo.extend([inst.image, link(&inst.memory), link(&inst.root_cnode)]);
            }
            Cap::Data(_) | Cap::Image(_) | Cap::Type(_) => {}
        }
    }
}

fn fresh_state_reply(
    dir_a: &CacheDirectory,
    host_blobs: &HashMap<[u8; 32], Vec<u8>>,
    function: GuestFunction,
    request: &[u8],
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let dir = CacheDirectory::new();
    let programs = ProgramCache::new();
    for (hash, cap) in dir_a.iter_blobs() {
        dir.put_cap_with_hash(hash, &cap).expect("a blob copies");
    }
    let mut host = FuzzHost {
        blobs: host_blobs.clone(),
        ..FuzzHost::default()
    };
    let state = KernelState {
        dir: &dir,
        programs: &programs,
    };
    let reply = state.handle(&mut host, function, request);
    assert_eq!(
        dir.stats().instance_count,
        0,
        "a fresh kernel kept working entries"
    );
    (reply, host.logs)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    // A quarter of the inputs: large mode.
    let large = input.u8().is_multiple_of(4);
    let (image, _layout, size) = fuzz_image(&mut input, large);
    let world = build_world(&mut input, &image);
    if debug() {
        let listing = if image.code.len() > 4096 {
            format!("{} octets of code", image.code.len())
        } else {
            capbox_shared::pvm::asm::disassemble(&image.code).unwrap_or_default()
        };
        eprintln!(
            "program{}:\n{listing}\n{size:?}, endpoints {:?}, rw {} bytes, ro {} bytes, heap {} pages, stack {}",
            if large { " (large mode)" } else { "" },
            image.endpoints,
            image.rw_data.len(),
            image.ro_data.len(),
            image.heap_pages,
            image.stack_size
        );
    }

    let dir_a = CacheDirectory::new();
    let programs_a = ProgramCache::new();
    let dir_b = CacheDirectory::new();
    let programs_b = ProgramCache::new();
    let state_a = KernelState {
        dir: &dir_a,
        programs: &programs_a,
    };
    let state_b = KernelState {
        dir: &dir_b,
        programs: &programs_b,
    };
    let mut host_a = FuzzHost::default();
    for cap in &world.host_only {
        host_a.blobs.insert(
            cap.hash().expect("hashes").0,
            cap.encode().expect("encodes"),
        );
    }
    let mut host_b = FuzzHost {
        blobs: host_a.blobs.clone(),
        ..FuzzHost::default()
    };

    let put = put_request(&world.published);
    let reply_a = state_a.handle(&mut host_a, GuestFunction::PutCap, &put);
    let reply_b = state_b.handle_owned(&mut host_b, GuestFunction::PutCap, put);
    assert_eq!(reply_a, reply_b);
    abi::decode_put_cap_reply(&reply_a)
        .expect("put_cap reply decodes")
        .expect("the world publishes");

    let mut instances = world.roots.clone();
    for _ in 0..1 + usize::from(input.u8()) % MAX_INVOCATIONS {
        let count = match input.u8() % 8 {
            // Large mode: mostly batches, for outputs past the reply budget.
            n if large && n < 6 => 2 + usize::from(input.u8() % 5),
            0 => 2 + usize::from(input.u8() % 2),
            _ => 1,
        };
        let mut big_used = false;
        let calls: Vec<InvocationMsg<'_>> = (0..count)
            .map(|i| {
                let pick = input.u8();
                // A later call of a batch sometimes chains on the previous.
                let instance = if i > 0 && pick.is_multiple_of(2) {
                    [0; 32]
                } else {
                    instances[usize::from(pick) % instances.len()].0
                };
                InvocationMsg {
                    instance,
                    endpoint: match input.u8() {
                        // Mostly one the image has.
                        0..=223 => u32::from(input.u8()) % image.endpoints.len() as u32,
                        _ => u32::from(input.u8() % 8),
                    },
                    args: [
                        u64::from(input.u8() % 8),
                        input.pick(&[0, 1, 100, 4096, u64::MAX]),
                        u64::from(input.u8()),
                        input.u64(),
                    ],
                    gas: input.pick(if large { &GAS_LARGE } else { &GAS }),
                    input: if large {
                        large_input(&mut input, &mut big_used)
                    } else {
                        input.pick(&INPUTS)
                    },
                    timeout: input.pick(&TIMEOUTS),
                }
            })
            .collect();
        let (function, request) = if count == 1 && input.u8().is_multiple_of(2) {
            (
                GuestFunction::InvokeOne,
                abi::encode_invoke_one_request(&calls[0]),
            )
        } else {
            (
                GuestFunction::Invoke,
                abi::encode_invoke_request(&[], &calls),
            )
        };
        let check_determinism = input.u8().is_multiple_of(4);
        let logs_before = host_a.logs.len();

        let reply_a = state_a.handle(&mut host_a, function, &request);
        let reply_b = state_b.handle_owned(&mut host_b, function, request.clone());
        assert_eq!(reply_a, reply_b, "handle and handle_owned disagree");
        assert_eq!(
            host_a.logs, host_b.logs,
            "the two kernels logged differently"
        );
        assert_eq!(
            dir_a.stats().instance_count,
            0,
            "working entries survive an invocation"
        );
        assert_eq!(dir_b.stats().instance_count, 0);

        let results = abi::decode_invoke_reply(&reply_a).expect("invoke reply decodes");
        // An input over MAX_INPUT_LEN makes the whole request malformed.
        if calls.iter().any(|c| c.input.len() as u64 > MAX_INPUT_LEN) {
            let e = results.expect_err("a request with an over-long input is refused");
            assert_eq!(e.kind, ErrorKind::BadMessage, "{e:?}");
            continue;
        }
        let results = results.expect("the request is well formed");
        if debug() {
            for (call, result) in calls.iter().zip(&results) {
                eprintln!(
                    "{} endpoint {} args {:x?} gas {} input {} bytes -> {:?}",
                    function.name(),
                    call.endpoint,
                    call.args,
                    call.gas,
                    call.input.len(),
                    result
                        .as_ref()
                        .map(|r| (r.exit, r.r7, r.r8, r.gas_used, r.output.len()))
                );
            }
        }
        assert_eq!(results.len(), calls.len());
        let mut previous: Option<CapHash> = None;
        let mut missing = false;
        // Output octets of the batch's calls so far.
        let mut outputs = 0u64;
        for (call, result) in calls.iter().zip(&results) {
            let given = if call.instance == [0; 32] {
                previous
            } else {
                Some(CapHash(call.instance))
            };
            // The reply budget: a call runs only while MAX_OUTPUT_LEN of
            // MAX_BATCH_OUTPUT_BYTES is left (the first always runs), so
            // the refused calls are a suffix of the batch.
            let over_budget = outputs > 0 && outputs + MAX_OUTPUT_LEN > MAX_BATCH_OUTPUT_BYTES;
            let refused = matches!(result, Err(e) if e.kind == ErrorKind::ReplyBudget);
            assert_eq!(
                refused, over_budget,
                "ReplyBudget after {outputs} output octets: {result:?}"
            );
            if let Ok(r) = result {
                let len = r.output.len() as u64;
                assert!(len <= MAX_OUTPUT_LEN, "an output of {len} octets");
                outputs += len;
                assert!(
                    outputs <= MAX_BATCH_OUTPUT_BYTES,
                    "a batch reply carries {outputs} output octets"
                );
                assert!(
                    r.exit.kind != 4 || call.timeout != NO_TIMEOUT,
                    "a timeout without a deadline"
                );
            }
            // A program over MAX_INSTRUCTIONS never runs: refused as
            // BadProgram once the instance and the endpoint are found.
            let plain_call = given.is_some() && call.endpoint < image.endpoints.len() as u32;
            match result {
                Ok(r) => assert!(
                    !size.over_limit(),
                    "a program of {size:?} ran: {:?}",
                    r.exit
                ),
                Err(e) if size.over_limit() && plain_call => assert_eq!(
                    e.kind,
                    ErrorKind::BadProgram,
                    "a program of {size:?}: {e:?}"
                ),
                Err(e) => assert!(
                    e.kind != ErrorKind::BadProgram || size.over_limit(),
                    "a program of {size:?} refused: {e:?}"
                ),
            }
            match result {
                Ok(r) => {
                    let given = given.expect("a chained call ran after a success");
                    let after = CapHash(r.instance);
                    assert!(
                        r.gas_used <= call.gas,
                        "gas used {} over the limit {}",
                        r.gas_used,
                        call.gas
                    );
                    if r.exit.kind == 0 {
                        if !world.planted_missing {
                            assert_published(&dir_a, &host_a.blobs, after);
                        }
                        if !instances.contains(&after) {
                            instances.push(after);
                        }
                    } else {
                        assert_eq!(
                            after, given,
                            "an invocation that did not halt ({:?}) changed its instance",
                            r.exit
                        );
                    }
                    previous = Some(after);
                }
                Err(e) => {
                    missing |= e.kind == abi::ErrorKind::MissingCap;
                    previous = None;
                }
            }
        }

        // A fresh kernel with the same blobs answers the same. (A call that
        // gave up fetching could have found everything on a fresh kernel.)
        if check_determinism && !missing {
            let (reply_fresh, logs_fresh) =
                fresh_state_reply(&dir_a, &host_a.blobs, function, &request);
            assert_eq!(
                reply_fresh, reply_a,
                "a fresh kernel answers the same request differently"
            );
            assert_eq!(
                logs_fresh,
                host_a.logs[logs_before..],
                "a fresh kernel logs differently"
            );
        }
    }
});
