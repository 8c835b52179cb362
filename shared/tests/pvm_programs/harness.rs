//! Running builder programs and checking the exact final state.

#![allow(dead_code)]

use capbox_shared::pvm::asm::{BuiltProgram, ProgramBuilder, Reg};
use capbox_shared::pvm::{Access, Exit, HALT_ADDRESS, Machine, Memory, PageMapEntry, Program};

/// The halt address as a register value.
pub const HALT: u64 = HALT_ADDRESS as u64;

/// A finished run.
pub struct Run {
    pub exit: Exit,
    pub machine: Machine,
    pub built: BuiltProgram,
    pub program: Program,
    pub initial_gas: i64,
}

impl Run {
    /// Gas consumed so far.
    pub fn gas_used(&self) -> i64 {
        self.initial_gas - self.machine.gas
    }

    /// Register value.
    pub fn reg(&self, r: Reg) -> u64 {
        self.machine.regs[usize::from(r.index())]
    }

    /// Code offset of builder item `i`.
    pub fn item_pc(&self, i: usize) -> u32 {
        self.built.item_pcs[i]
    }

    /// Runs again from the current state (after a host call).
    pub fn resume(&mut self) -> Exit {
        self.exit = self.machine.run(&self.program);
        self.exit
    }
}

/// Appends `jump [r0 + 0]`, which halts while r0 holds the halt address.
pub fn halt(b: &mut ProgramBuilder) -> &mut ProgramBuilder {
    b.jump_ind(Reg::R0, 0)
}

/// Runs `b` from pc 0 with r0 = halt address plus `regs`, `gas` and
/// `memory`.
pub fn run_with(b: &ProgramBuilder, regs: &[(Reg, u64)], gas: i64, memory: Memory) -> Run {
    let built = b.build_program().expect("program builds");
    let program = Program::from_blob(&built.blob).expect("program decodes");
    let mut initial = [0u64; 13];
    initial[0] = HALT;
    for &(r, v) in regs {
        initial[usize::from(r.index())] = v;
    }
    let mut machine = Machine::new(initial, 0, gas, memory);
    let exit = machine.run(&program);
    Run {
        exit,
        machine,
        built,
        program,
        initial_gas: gas,
    }
}

/// Runs `b` with no memory and plenty of gas.
pub fn run(b: &ProgramBuilder, regs: &[(Reg, u64)]) -> Run {
    run_with(b, regs, 1000, Memory::new())
}

/// Memory with one read-only page at 0x10000, two writable pages at
/// 0x20000 and one read-only page at 0x22000.
pub fn test_memory() -> Memory {
    Memory::from_page_map(&[
        PageMapEntry {
            address: 0x1_0000,
            length: 0x1000,
            access: Access::Read,
        },
        PageMapEntry {
            address: 0x2_0000,
            length: 0x2000,
            access: Access::Write,
        },
        PageMapEntry {
            address: 0x2_2000,
            length: 0x1000,
            access: Access::Read,
        },
    ])
    .expect("valid page map")
}

/// `len` octets of memory at `address`.
pub fn read(run: &Run, address: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    run.machine
        .memory
        .read(address, &mut out)
        .expect("readable");
    out
}
