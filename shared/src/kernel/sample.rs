//! A small stateful sample program, hand-assembled: the demo, the tests and
//! the in-guest benchmarks run it on both backends.
//!
//! Its state is one little-endian u64 counter at the start of its
//! read-write data. Endpoints (see [`Endpoint`]): increment, read, add φ7,
//! output the counter via `set_output`, loop φ7 times, trap, page fault,
//! unknown kernel op, touch only the stack, read the gas, a plain halt,
//! write-then-trap, read-the-stack and log the counter.

use alloc::vec;
use alloc::vec::Vec;

use crate::cap::Image;

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
}

impl Endpoint {
    /// Every endpoint, in index order.
    pub const ALL: [Endpoint; 14] = [
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
    ];

    /// Index into the image's endpoint list.
    pub const fn index(self) -> u32 {
        self as u32
    }
}

/// Address of the counter: the read-write data start when there is no
/// read-only data (2 · 2^16).
pub const COUNTER_ADDRESS: u32 = 0x2_0000;

// Opcodes (Graypaper v0.7.2, appendix A.5).
const TRAP: u8 = 0;
const ECALLI: u8 = 10;
const JUMP_IND: u8 = 50;
const LOAD_IMM: u8 = 51;
const LOAD_U64: u8 = 58;
const STORE_U64: u8 = 62;
const BRANCH_NE_IMM: u8 = 82;
const STORE_IND_U64: u8 = 123;
const ADD_IMM_64: u8 = 149;
const LOAD_IND_U64: u8 = 130;
const ADD_64: u8 = 200;

/// Little-endian immediate in 3 bytes (positive values below 2^23).
fn imm3(x: u32) -> [u8; 3] {
    let b = x.to_le_bytes();
    [b[0], b[1], b[2]]
}

fn halt() -> Vec<u8> {
    vec![JUMP_IND, 0x00] // jump_ind φ0 + 0, φ0 = the halt address
}

/// Assembles instructions (each one opcode + operand bytes) into a `deblob`
/// code blob (no jump table),
/// returning the blob and each instruction's offset.
pub fn assemble(instructions: &[Vec<u8>]) -> (Vec<u8>, Vec<u32>) {
    let mut code = Vec::new();
    let mut starts = Vec::new();
    for ins in instructions {
        starts.push(code.len() as u32);
        code.extend_from_slice(ins);
    }
    let mut mask = vec![0u8; code.len().div_ceil(8)];
    for &s in &starts {
        mask[s as usize / 8] |= 1 << (s % 8);
    }
    let mut blob = Vec::new();
    blob.push(0); // |j| = 0
    blob.push(0); // jump table entry size
    encode_natural(code.len() as u64, &mut blob);
    blob.extend_from_slice(&code);
    blob.extend_from_slice(&mask);
    (blob, starts)
}

/// The Graypaper's variable-length natural number encoding (serialization
/// appendix), used by `deblob`.
fn encode_natural(x: u64, out: &mut Vec<u8>) {
    if x == 0 {
        out.push(0);
        return;
    }
    for l in 0..8u32 {
        if x < 1u64 << (7 * (l + 1)) {
            let prefix = (256u64 - (1u64 << (8 - l))) as u8;
            out.push(prefix.wrapping_add((x >> (8 * l)) as u8));
            for i in 0..l {
                out.push((x >> (8 * i)) as u8);
            }
            return;
        }
    }
    out.push(0xff);
    out.extend_from_slice(&x.to_le_bytes());
}

/// The sample image.
pub fn sample_image() -> Image {
    let counter = imm3(COUNTER_ADDRESS);
    let load_counter = |reg: u8| {
        let mut v = vec![LOAD_U64, reg];
        v.extend_from_slice(&counter);
        v
    };
    let store_counter = |reg: u8| {
        let mut v = vec![STORE_U64, reg];
        v.extend_from_slice(&counter);
        v
    };
    // Each endpoint is a list of instructions; the first starts a block
    // because the previous endpoint ends in a terminator.
    let endpoints: [Vec<Vec<u8>>; 14] = [
        // Increment
        vec![
            load_counter(7),
            vec![ADD_IMM_64, 0x77, 1],
            store_counter(7),
            halt(),
        ],
        // Read
        vec![load_counter(7), halt()],
        // Add: φ8 = counter; φ7 = φ7 + φ8 (add_64 φ7, φ8 -> φ7)
        vec![
            load_counter(8),
            vec![ADD_64, 0x87, 0x07],
            store_counter(7),
            halt(),
        ],
        // Output: set_output(counter address, 8)
        vec![
            {
                let mut v = vec![LOAD_IMM, 7];
                v.extend_from_slice(&counter);
                v
            },
            vec![LOAD_IMM, 8, 8],
            vec![ECALLI, 2],
            halt(),
        ],
        // Loop: φ7 -= 1 until 0 (branch back 3 bytes to the add)
        vec![
            vec![ADD_IMM_64, 0x77, 0xff],
            vec![BRANCH_NE_IMM, 0x07, 0xfd],
            halt(),
        ],
        // Trap
        vec![vec![TRAP]],
        // Fault: load from 0x10_0000, never mapped
        vec![vec![LOAD_U64, 7, 0x00, 0x00, 0x10], halt()],
        // UnknownOp
        vec![vec![ECALLI, 99], halt()],
        // StackOnly: store φ7 at φ1 - 8
        vec![vec![STORE_IND_U64, 0x17, 0xf8], halt()],
        // Gas
        vec![vec![ECALLI, 0], halt()],
        // Empty
        vec![halt()],
        // WriteThenTrap
        vec![
            load_counter(7),
            vec![ADD_IMM_64, 0x77, 1],
            store_counter(7),
            vec![TRAP],
        ],
        // ReadStack: φ7 = [φ1 - 8]
        vec![vec![LOAD_IND_U64, 0x17, 0xf8], halt()],
        // Log: log(counter address, 8)
        vec![
            {
                let mut v = vec![LOAD_IMM, 7];
                v.extend_from_slice(&counter);
                v
            },
            vec![LOAD_IMM, 8, 8],
            vec![ECALLI, 1],
            halt(),
        ],
    ];
    let mut instructions = Vec::new();
    let mut entry_indices = Vec::new();
    for ep in &endpoints {
        entry_indices.push(instructions.len());
        instructions.extend(ep.iter().cloned());
    }
    let (code, starts) = assemble(&instructions);
    Image {
        code,
        ro_data: Vec::new(),
        rw_data: vec![0; 8],
        heap_pages: 0,
        stack_size: 4096,
        endpoints: entry_indices.iter().map(|&i| starts[i]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_encoding_matches_the_graypaper_examples() {
        let enc = |x| {
            let mut v = Vec::new();
            encode_natural(x, &mut v);
            v
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(128), [0x80, 0x80]);
        assert_eq!(enc(0x3fff), [0xbf, 0xff]);
        assert_eq!(enc(0x4000), [0xc0, 0x00, 0x40]);
        assert_eq!(
            enc(u64::MAX),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn sample_has_every_endpoint() {
        let image = sample_image();
        assert_eq!(image.endpoints.len(), Endpoint::ALL.len());
        assert_eq!(image.endpoints[0], 0);
    }
}
