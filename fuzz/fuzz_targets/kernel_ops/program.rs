//! Program and image generation for `kernel_ops` (its own file to keep the
//! target readable): the input reader, argument values chosen by each op's
//! argument names, steps, the builder, large-mode padding, the image.

use super::*;

/// Reads the input front to back; once it runs out, further octets come
/// from a generator seeded with the whole input, so even a short input
/// makes a full program and several invocations (a mutation of the prefix
/// still changes only its own choices until the tail is reseeded).
pub(super) struct Input<'a> {
    pub(super) data: &'a [u8],
    pub(super) tail: u64,
}

impl<'a> Input<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        // FNV-1a of the input; never zero (xorshift's fixed point).
        let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Input {
            data,
            tail: seed | 1,
        }
    }
    pub(super) fn u8(&mut self) -> u8 {
        if let Some((first, rest)) = self.data.split_first() {
            self.data = rest;
            return *first;
        }
        self.tail ^= self.tail << 13;
        self.tail ^= self.tail >> 7;
        self.tail ^= self.tail << 17;
        (self.tail >> 32) as u8
    }
    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub(super) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub(super) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    pub(super) fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[usize::from(self.u8()) % options.len()]
    }
}

/// How the program's memory is laid out (to aim pointers).
#[derive(Clone, Copy)]
pub(super) struct Layout {
    pub(super) ro_start: u64,
    pub(super) rw_start: u64,
    pub(super) rw_len: u64,
    /// Large mode: big lengths and outputs.
    pub(super) large: bool,
}

/// A value for one argument register.
#[derive(Clone, Copy, Debug)]
pub(super) enum Value {
    /// Leave the register as it is (a previous op's result).
    Keep,
    Imm(u64),
    /// φ1 − k: into (or just past) the stack.
    Stack(i32),
}

pub(super) fn slot_value(input: &mut Input<'_>) -> Value {
    match input.u8() % 16 {
        0 => Value::Imm(input.pick(&[65_535, 65_536, u64::MAX, 1 << 32, 9, 255])),
        1 => Value::Keep,
        n => Value::Imm(u64::from(n % 8)),
    }
}

pub(super) fn ptr_value(input: &mut Input<'_>, layout: Layout) -> Value {
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

pub(super) fn len_value(input: &mut Input<'_>, layout: Layout) -> Value {
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

pub(super) fn offset_value(input: &mut Input<'_>) -> Value {
    match input.u8() % 8 {
        0..=3 => Value::Imm(u64::from(input.u8() % 16)),
        4 => Value::Imm(input.pick(&[3, 5, 100, 4096, 4097, 5000])),
        5 => Value::Imm(input.pick(&[u64::MAX, 1 << 32, (1 << 20) - 1, 1 << 24])),
        6 => Value::Keep,
        _ => Value::Imm(u64::from(input.u16())),
    }
}

/// `call`'s endpoint (bits 0..32) and gas limit (bits 32..64).
pub(super) fn selector_value(input: &mut Input<'_>) -> Value {
    if input.u8().is_multiple_of(16) {
        return Value::Imm(input.u64());
    }
    let endpoint = u64::from(input.u8() % 5);
    let gas = input.pick(&[0u64, 1, 100, 1_000, 5_000, 0xFFFF_FFFF]);
    Value::Imm(endpoint | (gas << 32))
}

pub(super) fn any_value(input: &mut Input<'_>) -> Value {
    match input.u8() % 4 {
        0 => Value::Keep,
        1 => Value::Imm(input.u64()),
        _ => Value::Imm(u64::from(input.u8())),
    }
}

/// A value for the argument named `name` (from the op table).
pub(super) fn arg_value(name: &str, input: &mut Input<'_>, layout: Layout) -> Value {
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

pub(super) const ARG_REGS: [Reg; 6] = [Reg::R7, Reg::R8, Reg::R9, Reg::R10, Reg::R11, Reg::R12];

#[derive(Debug)]
pub(super) enum Step {
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
pub(super) fn big_step(input: &mut Input<'_>, layout: Layout) -> Step {
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

pub(super) fn next_step(input: &mut Input<'_>, index: usize, layout: Layout) -> Step {
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

pub(super) fn load(b: &mut ProgramBuilder, reg: Reg, value: Value) {
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
pub(super) fn build_program(steps: &[Step], entry_steps: &[usize]) -> (Vec<u8>, Vec<u32>) {
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
pub(super) fn instruction_bytes(emit: impl FnOnce(&mut ProgramBuilder)) -> Vec<u8> {
    let mut b = ProgramBuilder::new();
    emit(&mut b);
    let blob = b.build().expect("a straight-line snippet builds");
    deblob(&blob).expect("a built blob splits").code.to_vec()
}

/// Large mode's padding units (each one instruction): `fallthrough` (each
/// its own basic block) or `add_imm_64 φ8, φ8, 1` (one huge basic block),
/// and the tail after them, `jump_ind φ0` (halt).
pub(super) fn padding_units() -> &'static [Vec<u8>; 3] {
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
pub(super) struct Size {
    /// Instructions (bitmask bits) in the code.
    pub(super) instructions: u64,
    /// Dynamic jump-table entries.
    pub(super) jump_entries: u64,
    /// Zero-width jump-table entries outnumbering the blob's octets
    /// (`deblob` refuses them: `ProgramError::TooLarge`).
    pub(super) zero_width_overflow: bool,
}

impl Size {
    /// Whether the kernel must refuse the program (`ProgramError::OverLimit`
    /// or, for zero-width entries, `TooLarge`).
    pub(super) fn over_limit(self) -> bool {
        self.instructions > MAX_INSTRUCTIONS
            || self.jump_entries > MAX_INSTRUCTIONS
            || self.zero_width_overflow
    }
}

/// Instruction (or jump-table) counts large mode pads a program to: just
/// under, at and just over `MAX_INSTRUCTIONS`, or anything below.
pub(super) fn size_target(input: &mut Input<'_>) -> u64 {
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
pub(super) fn pad_program(
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

pub(super) fn fuzz_image(input: &mut Input<'_>, large: bool) -> (Image, Layout, Size) {
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
        endpoint_names: Vec::new(),
        endpoints,
    };
    (image, layout, size)
}
