//! PVM code to x86-64: one piece of machine code per instruction, in
//! program order, with the PVM's 13 registers in host registers.
//!
//! **Frame.** The entry (offset 0) is `extern "sysv64" fn(machine,
//! program, table, target)`: it saves the callee-saved registers, keeps
//! the program and the table in its frame, the machine in `r15`, loads the
//! PVM registers and jumps to `target` (an instruction's code). `rax` is
//! the one scratch register. Code returns `(at, what)` in `rax:rdx`, the
//! interpreter's [`Stop`](super::super::handlers) in raw form, with the
//! PVM registers stored back to `Machine::regs`.
//!
//! **Gas.** Where the interpreter charges on entry (a jump target, or
//! whatever follows a terminator) the code subtracts the block's cost from
//! `Machine::gas` and, when that goes below zero, adds it back and returns
//! "enter this block" (nothing charged): the interpreter's loop then
//! charges, slices or steps exactly as it does for its own handlers.
//!
//! **Everything else through the interpreter.** An instruction without
//! native code (division, `popcnt` without the host feature, `ecalli`,
//! `sbrk`, dynamic jumps, traps), and a load or store that misses the memory's windows,
//! runs as one handler call with no fuel (`fallback`), which returns where
//! to go on: the next instruction, a block to enter (charged on entry, as
//! above), or an exit. So every exit, fault and page walk is the
//! interpreter's own code. Instruction selection is in `select`.

mod select;

use alloc::vec::Vec;
use core::mem::offset_of;

use super::asm::{
    Alu, Asm, Cond, Mem, R8, R9, R10, R11, R12, R13, R14, R15, RAX, RBP, RBX, RCX, RDI, RDX, RSI,
    RSP, Reg, Shift, Width, mem,
};
use crate::pvm::handlers::{KIND_SHIFT, RESUME};
use crate::pvm::interpreter::Machine;
use crate::pvm::memory::{self, PAGE_SIZE};
use crate::pvm::program::{INVALID_TARGET, Program};
use crate::pvm::window;

/// Where PVM register `i` lives while generated code runs.
const REGS: [Reg; 13] = [
    RCX, RDX, RBX, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14,
];
/// The machine.
const CTX: Reg = R15;
/// Frame slots, from `rsp`.
const SLOT_PROGRAM: i32 = 0;
const SLOT_TABLE: i32 = 8;
const SLOT_AT: i32 = 16;
const FRAME: i32 = 24;
const SAVED: [Reg; 6] = [RBX, RBP, R12, R13, R14, R15];

const fn field(offset: usize) -> Mem {
    mem(CTX, offset as i32)
}

fn reg_slot(i: usize) -> Mem {
    field(offset_of!(Machine, regs) + 8 * i)
}

const GAS: Mem = field(offset_of!(Machine, gas));

/// A window's field: `window` is its offset in `Memory`.
const fn window_field(window: usize, field_offset: usize) -> Mem {
    field(offset_of!(Machine, memory) + window + field_offset)
}

/// Host features the code may use.
#[derive(Clone, Copy, Debug)]
pub(super) struct Features {
    /// `shlx`, `shrx`, `sarx`.
    pub bmi2: bool,
    /// `popcnt`.
    pub popcnt: bool,
}

/// The compiled program: code (position-independent but for the absolute
/// address of the fallback, passed in) and, per instruction, the offsets
/// of its code with the block's gas check (`[0]`, block starts only; the
/// same as `[1]` elsewhere) and without.
pub(super) struct Compiled {
    pub code: Vec<u8>,
    pub entries: Vec<[u32; 2]>,
}

/// Where a memory access's address comes from.
#[derive(Clone, Copy, Debug)]
enum Address {
    /// `reg + imm` (mod 2^32).
    Reg(Reg, i32),
    /// A fixed address.
    Imm(u32),
}

/// What a store writes.
#[derive(Clone, Copy, Debug)]
enum Value {
    Reg(Reg),
    Imm(u32),
}

/// A load instruction's parts.
#[derive(Clone, Copy, Debug)]
struct Load {
    idx: usize,
    address: Address,
    width: Width,
    signed: bool,
    dst: Reg,
}

/// Out-of-line code, emitted after all instructions.
enum Cold {
    /// The block at `idx` cannot be paid: give back `cost` and return
    /// "enter `idx`".
    Gas { from: usize, idx: usize, cost: i32 },
    /// Run `idx` through the fallback.
    Fallback { from: usize, idx: usize },
    /// The load missed the newer window: try the older one.
    OlderLoad {
        from: usize,
        load: Load,
        back: usize,
    },
    /// The store missed the newer marked page: try the older one (`rax`
    /// holds the address minus the newer page's address).
    OlderPage {
        from: usize,
        idx: usize,
        value: Value,
        width: Width,
        back: usize,
    },
}

struct Compiler<'a> {
    asm: Asm,
    program: &'a Program,
    features: Features,
    entries: Vec<[u32; 2]>,
    /// rel32s that jump to an instruction's checked entry.
    to_block: Vec<(usize, usize)>,
    cold: Vec<Cold>,
    epilogue: usize,
    fallback_common: usize,
    gas_exit_common: usize,
}

const fn width_bytes(width: Width) -> i32 {
    match width {
        Width::W8 => 1,
        Width::W16 => 2,
        Width::W32 => 4,
        Width::W64 => 8,
    }
}

/// Compiles `program`; `fallback` is the address of the function generated
/// code calls for what it does not run itself.
pub(super) fn compile(program: &Program, fallback: u64, features: Features) -> Compiled {
    let mut c = Compiler {
        asm: Asm::default(),
        program,
        features,
        entries: Vec::with_capacity(program.ops.len()),
        to_block: Vec::new(),
        cold: Vec::new(),
        epilogue: 0,
        fallback_common: 0,
        gas_exit_common: 0,
    };
    c.frame(fallback);
    // Where the interpreter charges on entry: jump targets (block starts)
    // and whatever follows a terminator (the fall-through of a branch not
    // taken charges the next instruction's gas even where that is no valid
    // jump target, e.g. an invalid opcode).
    let charged = |idx: usize| {
        program.starts_block(idx)
            || idx
                .checked_sub(1)
                .is_some_and(|before| program.ops[before].opcode.unfused().is_terminator())
    };
    let mut to_body = Vec::new();
    for (idx, op) in program.ops.iter().enumerate() {
        let checked = c.asm.pos() as u32;
        if charged(idx) {
            c.asm.alu_mem_imm(Alu::Sub, GAS, op.gas as i32);
            let from = c.asm.jcc(Cond::Less);
            c.cold.push(Cold::Gas {
                from,
                idx,
                cost: op.gas as i32,
            });
        }
        c.entries.push([checked, c.asm.pos() as u32]);
        c.instruction(idx, op);
        // Straight on into an instruction that charges on entry: past its
        // check (the interpreter charges nothing there).
        if !op.opcode.unfused().is_terminator() && charged(idx + 1) {
            to_body.push((c.asm.jmp(), idx + 1));
        }
    }
    for (from, idx) in to_body {
        let target = c.entries[idx][1] as usize;
        c.asm.patch(from, target);
    }
    for (from, idx) in core::mem::take(&mut c.to_block) {
        let target = c.entries[idx][0] as usize;
        c.asm.patch(from, target);
    }
    for cold in core::mem::take(&mut c.cold) {
        c.emit_cold(cold);
    }
    Compiled {
        code: c.asm.code,
        entries: c.entries,
    }
}

impl Compiler<'_> {
    fn load_regs(&mut self) {
        for (i, &reg) in REGS.iter().enumerate() {
            self.asm.load(Width::W64, false, reg, reg_slot(i));
        }
    }

    fn store_regs(&mut self) {
        for (i, &reg) in REGS.iter().enumerate() {
            self.asm.store(Width::W64, reg_slot(i), reg);
        }
    }

    /// The entry, the epilogue and the shared exits.
    fn frame(&mut self, fallback: u64) {
        let a = &mut self.asm;
        for reg in SAVED {
            a.push(reg);
        }
        a.alu_imm(Alu::Sub, true, RSP, FRAME);
        a.store(Width::W64, mem(RSP, SLOT_PROGRAM), RSI);
        a.store(Width::W64, mem(RSP, SLOT_TABLE), RDX);
        a.mov(true, CTX, RDI);
        a.mov(true, RAX, RCX);
        self.load_regs();
        self.asm.jmp_reg(RAX);

        // rax:rdx hold the stop; the PVM registers are stored.
        self.epilogue = self.asm.pos();
        let a = &mut self.asm;
        a.alu_imm(Alu::Add, true, RSP, FRAME);
        for reg in SAVED.iter().rev() {
            a.pop(*reg);
        }
        a.ret();

        // eax = the index of a block that cannot be paid.
        self.gas_exit_common = self.asm.pos();
        self.store_regs();
        self.asm.mov(false, RDX, RAX);
        let jump = self.asm.jmp();
        self.asm.patch(jump, self.epilogue);

        // eax = the index of an instruction for the interpreter.
        self.fallback_common = self.asm.pos();
        self.store_regs();
        let a = &mut self.asm;
        a.mov(true, RDX, RAX);
        a.mov(true, RDI, CTX);
        a.load(Width::W64, false, RSI, mem(RSP, SLOT_PROGRAM));
        a.mov_imm(RAX, fallback);
        a.call_reg(RAX);
        a.store(Width::W64, mem(RSP, SLOT_AT), RAX);
        a.mov(true, RAX, RDX);
        a.shift_imm(Shift::Shr, true, RAX, KIND_SHIFT as u8);
        a.alu_imm(Alu::Cmp, false, RAX, RESUME as i32);
        let exit = a.jcc(Cond::Above);
        // Enter (kind 0: the checked entry) or resume (kind 1: the body)
        // at the stop's index.
        a.mov(false, RDX, RDX);
        a.lea_indexed2(RAX, RAX, RDX);
        a.load(Width::W64, false, RDX, mem(RSP, SLOT_TABLE));
        a.load_indexed(RAX, RDX, RAX);
        self.load_regs();
        self.asm.jmp_reg(RAX);
        let here = self.asm.pos();
        self.asm.patch(exit, here);
        self.asm.load(Width::W64, false, RAX, mem(RSP, SLOT_AT));
        let jump = self.asm.jmp();
        self.asm.patch(jump, self.epilogue);
    }

    fn fallback(&mut self, idx: usize) {
        self.asm.mov_imm(RAX, idx as u64);
        let jump = self.asm.jmp();
        self.asm.patch(jump, self.fallback_common);
    }

    /// A jump (`cond` none) or branch to block `target`, or `false` when
    /// the target is not a block start (the interpreter panics there).
    fn jump_to_block(&mut self, cond: Option<Cond>, target: u32) -> bool {
        if target == INVALID_TARGET || !self.program.starts_block(target as usize) {
            return false;
        }
        let from = match cond {
            Some(cond) => self.asm.jcc(cond),
            None => self.asm.jmp(),
        };
        self.to_block.push((from, target as usize));
        true
    }

    fn address(&mut self, address: Address) {
        match address {
            Address::Reg(reg, offset) => self.asm.lea(false, RAX, mem(reg, offset)),
            Address::Imm(value) => self.asm.mov_imm(RAX, u64::from(value)),
        }
    }

    /// `rax` = the host address of `width` octets at `address` through the
    /// load window at `window`, or a jump to be patched when it misses.
    fn load_through(&mut self, window: usize, address: Address, width: Width) -> usize {
        let n = width_bytes(width);
        self.address(address);
        let a = &mut self.asm;
        a.alu_load(
            Alu::Sub,
            false,
            RAX,
            window_field(window, window::offsets::BASE),
        );
        a.alu_imm(Alu::Add, true, RAX, n);
        a.alu_load(
            Alu::Cmp,
            true,
            RAX,
            window_field(window, window::offsets::LEN),
        );
        let miss = a.jcc(Cond::Above);
        a.alu_load(
            Alu::Add,
            true,
            RAX,
            window_field(window, window::offsets::DATA),
        );
        miss
    }

    /// `load` through the window at `window`; returns the jump taken
    /// when it misses (to be patched).
    fn load_via(&mut self, window: usize, load: Load) -> usize {
        let miss = self.load_through(window, load.address, load.width);
        let at = mem(RAX, -width_bytes(load.width));
        self.asm.load(load.width, load.signed, load.dst, at);
        miss
    }

    fn load(&mut self, load: Load) {
        let from = self.load_via(memory::offsets::LOAD_WINDOW, load);
        let back = self.asm.pos();
        self.cold.push(Cold::OlderLoad { from, load, back });
    }

    /// Checks `rax` (a guest address) minus marked page `page`'s address
    /// against a store of `width`; jumps (to be patched) when it misses,
    /// else leaves the host address in `rax`.
    fn in_marked(&mut self, page: usize, width: Width) -> usize {
        let store = memory::offsets::STORE_WINDOW;
        let address = window_field(store, window::offsets::MARKED_ADDRESS + 8 * page);
        let host = window_field(store, window::offsets::MARKED_HOST + 8 * page);
        let a = &mut self.asm;
        a.alu_load(Alu::Sub, true, RAX, address);
        a.alu_imm(Alu::Cmp, true, RAX, PAGE_SIZE as i32 - width_bytes(width));
        let miss = a.jcc(Cond::Above);
        a.alu_load(Alu::Add, true, RAX, host);
        miss
    }

    fn write(&mut self, width: Width, value: Value) {
        match value {
            Value::Reg(reg) => self.asm.store(width, mem(RAX, 0), reg),
            Value::Imm(imm) => self.asm.store_imm(width, mem(RAX, 0), imm),
        }
    }

    fn store(&mut self, idx: usize, address: Address, width: Width, value: Value) {
        self.address(address);
        let from = self.in_marked(0, width);
        self.write(width, value);
        let back = self.asm.pos();
        self.cold.push(Cold::OlderPage {
            from,
            idx,
            value,
            width,
            back,
        });
    }

    fn emit_cold(&mut self, cold: Cold) {
        let here = self.asm.pos();
        match cold {
            Cold::Gas { from, idx, cost } => {
                self.asm.patch(from, here);
                self.asm.alu_mem_imm(Alu::Add, GAS, cost);
                self.asm.mov_imm(RAX, idx as u64);
                let jump = self.asm.jmp();
                self.asm.patch(jump, self.gas_exit_common);
            }
            Cold::Fallback { from, idx } => {
                self.asm.patch(from, here);
                self.fallback(idx);
            }
            Cold::OlderLoad { from, load, back } => {
                self.asm.patch(from, here);
                let miss = self.load_via(memory::offsets::OLDER_LOAD_WINDOW, load);
                let jump = self.asm.jmp();
                self.asm.patch(jump, back);
                self.cold.push(Cold::Fallback {
                    from: miss,
                    idx: load.idx,
                });
            }
            Cold::OlderPage {
                from,
                idx,
                value,
                width,
                back,
            } => {
                self.asm.patch(from, here);
                let store = memory::offsets::STORE_WINDOW;
                let newer = window_field(store, window::offsets::MARKED_ADDRESS);
                self.asm.alu_load(Alu::Add, true, RAX, newer);
                let miss = self.in_marked(1, width);
                self.write(width, value);
                let jump = self.asm.jmp();
                self.asm.patch(jump, back);
                self.cold.push(Cold::Fallback { from: miss, idx });
            }
        }
        // Cold code may add cold code (the fallbacks above): emit it too.
        for cold in core::mem::take(&mut self.cold) {
            self.emit_cold(cold);
        }
    }
}
