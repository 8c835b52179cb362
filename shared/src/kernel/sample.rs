//! A small stateful sample program (built with the PVM `ProgramBuilder`):
//! the demo, the tests and the in-guest benchmarks run it on both backends.
//!
//! Its state is one little-endian u64 counter at the start of its
//! read-write data. Endpoints (see [`Endpoint`]): increment, read, add φ7,
//! output the counter via `set_output`, loop φ7 times, trap, page fault,
//! unknown kernel op, touch only the stack, read the gas, a plain halt,
//! write-then-trap, read-the-stack and log the counter.

use alloc::vec;
use alloc::vec::Vec;

use super::ops::KernelOp;
use crate::cap::Image;
use crate::pvm::asm::{ProgramBuilder, Reg};

/// The sample program's endpoints (index into `Image::endpoints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Endpoint {
    /// counter += 1; φ7 = counter.
    Increment = 0,
    /// φ7 = counter (no state change).
    Read = 1,
    /// counter += φ7; φ7 = counter.
    Add = 2,
    /// output = the counter's 8 bytes; φ7 = the op's result code.
    Output = 3,
    /// Decrement φ7 until zero, then halt (φ7 = 0 loops until out of gas).
    Loop = 4,
    /// `trap`: a panic.
    Trap = 5,
    /// Load from an unmapped page: a page fault.
    Fault = 6,
    /// `ecalli 99`: an unknown kernel op, so a panic.
    UnknownOp = 7,
    /// Write only to the stack, then halt: the state does not change.
    StackOnly = 8,
    /// φ7 = remaining gas (kernel op `gas`).
    Gas = 9,
    /// Halt at once: the empty endpoint.
    Empty = 10,
    /// counter += 1 in memory, then `trap`: the write must not stick.
    WriteThenTrap = 11,
    /// φ7 = the stack word at φ1 - 8 (always 0: stacks start zeroed).
    ReadStack = 12,
    /// log(the counter's 8 bytes); φ7 = the op's result code.
    Log = 13,
    /// `call` the child instance in root slot 0 at its `Empty` endpoint;
    /// φ7 = the call's result (what the nested-call cost is measured on).
    CallEmpty = 14,
}

impl Endpoint {
    /// Every endpoint, in index order.
    pub const ALL: [Endpoint; 15] = [
        Endpoint::Increment,
        Endpoint::Read,
        Endpoint::Add,
        Endpoint::Output,
        Endpoint::Loop,
        Endpoint::Trap,
        Endpoint::Fault,
        Endpoint::UnknownOp,
        Endpoint::StackOnly,
        Endpoint::Gas,
        Endpoint::Empty,
        Endpoint::WriteThenTrap,
        Endpoint::ReadStack,
        Endpoint::Log,
        Endpoint::CallEmpty,
    ];

    /// Index into the image's endpoint list.
    pub const fn index(self) -> u32 {
        self as u32
    }
}

/// Address of the counter: the read-write data start when there is no
/// read-only data (2 · 2^16).
pub const COUNTER_ADDRESS: u32 = 0x2_0000;

fn halt(b: &mut ProgramBuilder) {
    b.jump_ind(Reg::R0, 0u32); // φ0 = the halt address
}

/// The sample image, built with the PVM [`ProgramBuilder`].
pub fn sample_image() -> Image {
    let counter = COUNTER_ADDRESS;
    let mut b = ProgramBuilder::new();
    let mut entries = Vec::new();
    // Increment
    entries.push(b.here());
    b.load_u64(Reg::R7, counter)
        .add_imm_64(Reg::R7, Reg::R7, 1u32)
        .store_u64(Reg::R7, counter);
    halt(&mut b);
    // Read
    entries.push(b.here());
    b.load_u64(Reg::R7, counter);
    halt(&mut b);
    // Add: φ7 = φ7 + counter; counter = φ7
    entries.push(b.here());
    b.load_u64(Reg::R8, counter)
        .add_64(Reg::R7, Reg::R7, Reg::R8)
        .store_u64(Reg::R7, counter);
    halt(&mut b);
    // Output: set_output(counter address, 8)
    entries.push(b.here());
    b.load_imm(Reg::R7, counter)
        .load_imm(Reg::R8, 8u32)
        .ecalli(KernelOp::SetOutput.number());
    halt(&mut b);
    // Loop: φ7 -= 1 until 0
    let top = b.here();
    entries.push(top);
    b.add_imm_64(Reg::R7, Reg::R7, -1i32)
        .branch_ne_imm(Reg::R7, 0u32, top);
    halt(&mut b);
    // Trap
    entries.push(b.here());
    b.trap();
    // Fault: load from 0x10_0000, never mapped
    entries.push(b.here());
    b.load_u64(Reg::R7, 0x10_0000u32);
    halt(&mut b);
    // UnknownOp
    entries.push(b.here());
    b.ecalli(99u32);
    halt(&mut b);
    // StackOnly: store φ7 at φ1 - 8
    entries.push(b.here());
    b.store_ind_u64(Reg::R7, Reg::R1, -8i32);
    halt(&mut b);
    // Gas
    entries.push(b.here());
    b.ecalli(KernelOp::Gas.number());
    halt(&mut b);
    // Empty
    entries.push(b.here());
    halt(&mut b);
    // WriteThenTrap
    entries.push(b.here());
    b.load_u64(Reg::R7, counter)
        .add_imm_64(Reg::R7, Reg::R7, 1u32)
        .store_u64(Reg::R7, counter)
        .trap();
    // ReadStack: φ7 = [φ1 - 8]
    entries.push(b.here());
    b.load_ind_u64(Reg::R7, Reg::R1, -8i32);
    halt(&mut b);
    // Log: log(counter address, 8)
    entries.push(b.here());
    b.load_imm(Reg::R7, counter)
        .load_imm(Reg::R8, 8u32)
        .ecalli(KernelOp::Log.number());
    halt(&mut b);

    // CallEmpty: call(slot 0, Empty)
    entries.push(b.here());
    b.load_imm(Reg::R7, 0u32)
        .load_imm(Reg::R8, Endpoint::Empty.index())
        .ecalli(KernelOp::Call.number());
    halt(&mut b);

    let built = b
        .build_program()
        .expect("the sample program is well formed");
    Image {
        code: built.blob.clone(),
        ro_data: Vec::new(),
        rw_data: vec![0; 8],
        heap_pages: 0,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: entries
            .iter()
            .map(|&l| built.pc(l).expect("labels of this builder"))
            .collect(),
    }
}

/// A second sample for large memories: endpoint 0 stores φ8 (u64) at
/// read-write offset φ7 (memory address [`COUNTER_ADDRESS`] + φ7) and
/// halts. Its memory is `memory_len` bytes, none zero (byte i is
/// `i % 251 + 1`), so every page is stored and hashed: the store's page
/// checks and the Data delta tests use it.
pub fn writer_image(memory_len: usize) -> Image {
    let mut b = ProgramBuilder::new();
    let entry = b.here();
    b.store_ind_u64(Reg::R8, Reg::R7, COUNTER_ADDRESS as i32);
    halt(&mut b);
    let built = b.build_program().expect("the writer program builds");
    Image {
        code: built.blob.clone(),
        ro_data: Vec::new(),
        rw_data: (0..memory_len).map(|i| (i % 251) as u8 + 1).collect(),
        heap_pages: 0,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: vec![built.pc(entry).expect("the entry is an instruction start")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_has_every_endpoint() {
        let image = sample_image();
        assert_eq!(image.endpoints.len(), Endpoint::ALL.len());
        assert_eq!(image.endpoints[0], 0);
    }
}
