//! Differential fuzzing of the compiled code (`pvm::jit`) against the
//! interpreter on *raw* programs (`raw_program`: the input's octets become
//! the registers, a small jump table, the code and its bitmask). The first
//! three input octets choose the gas (2000, or 0..40 to run out mid-block)
//! and the slice (none, or 1..20 gas per `run_sliced`); the rest makes the
//! program and fills the read-only page. The same program, decoded once and
//! cloned, runs interpreted and compiled (`compile_native`) from identical
//! machines, host calls resumed (up to five exits) and `Exit::Slice`
//! continued: at every exit both must agree on the exit, pc, gas,
//! registers, memory (the read-only page and the two writable pages) and
//! the dirty pages. A failure names the first difference and lists the
//! program.
#![no_main]

#[path = "../../shared/tests/raw_program/mod.rs"]
#[allow(dead_code)] // Shared with other harnesses.
mod raw_program;

use capbox_shared::pvm::{
    Access, Exit, Machine, Memory, PageMapEntry, Program, deblob, instructions,
};
use libfuzzer_sys::fuzz_target;

const MAX_EXITS: usize = 5;
/// The read-only page (initialised from the input).
const RO: u32 = 0x1_0000;
/// The regions compared: the read-only page and the two writable pages.
const COMPARED: [(u32, u32); 2] = [(RO, 0x1000), (raw_program::RW, 0x2000)];

/// What one exit left.
#[derive(Debug, PartialEq, Eq)]
struct State {
    exit: Exit,
    pc: u32,
    gas: i64,
    regs: [u64; 13],
    memory: Vec<u8>,
    dirty: Vec<u32>,
}

/// The raw programs' memory: a read-only page, the read-write page and a
/// write page after it (as in `shared/tests/pvm_jit.rs`).
fn raw_regions() -> Vec<PageMapEntry> {
    vec![
        PageMapEntry {
            address: RO,
            length: 0x1000,
            access: Access::Read,
        },
        PageMapEntry {
            address: raw_program::RW,
            length: 0x2000,
            access: Access::Write,
        },
    ]
}

fn snapshot(exit: Exit, machine: &Machine) -> State {
    let mut memory = Vec::new();
    for (address, length) in COMPARED {
        let mut bytes = vec![0; length as usize];
        machine.memory.read(address, &mut bytes).expect("readable");
        memory.extend(bytes);
    }
    let mut dirty = Vec::new();
    machine.memory.dirty_page_addresses(&mut dirty);
    State {
        exit,
        pc: machine.pc,
        gas: machine.gas,
        regs: machine.regs,
        memory,
        dirty,
    }
}

/// Runs to the end (resuming host calls, up to `MAX_EXITS` exits) in
/// slices of `slice` gas (`u64::MAX`: none); the states at each exit.
fn run_all(program: &Program, mut machine: Machine, slice: u64) -> Vec<State> {
    let mut states = Vec::new();
    loop {
        let exit = machine.run_sliced(program, slice);
        if exit == Exit::Slice {
            continue;
        }
        states.push(snapshot(exit, &machine));
        if !matches!(exit, Exit::HostCall(_)) || states.len() >= MAX_EXITS {
            return states;
        }
    }
}

/// The address of memory octet `at` of a snapshot.
fn address_of(mut at: usize) -> u32 {
    for (address, length) in COMPARED {
        if at < length as usize {
            return address + at as u32;
        }
        at -= length as usize;
    }
    unreachable!("octet past the compared regions")
}

/// The first difference between two states, if any.
fn first_difference(c: &State, t: &State) -> Option<String> {
    if c.exit != t.exit {
        return Some(format!("exit: compiled {:?}, interpreted {:?}", c.exit, t.exit));
    }
    if c.pc != t.pc {
        return Some(format!("pc: compiled {}, interpreted {}", c.pc, t.pc));
    }
    if c.gas != t.gas {
        return Some(format!("gas: compiled {}, interpreted {}", c.gas, t.gas));
    }
    if let Some(r) = (0..13).find(|&r| c.regs[r] != t.regs[r]) {
        return Some(format!(
            "register φ{r}: compiled {:#x}, interpreted {:#x} (compiled {:x?}, interpreted {:x?})",
            c.regs[r], t.regs[r], c.regs, t.regs
        ));
    }
    if let Some(at) = c.memory.iter().zip(&t.memory).position(|(a, b)| a != b) {
        return Some(format!(
            "memory at {:#x}: compiled {:#04x}, interpreted {:#04x}",
            address_of(at),
            c.memory[at],
            t.memory[at]
        ));
    }
    if c.dirty != t.dirty {
        return Some(format!(
            "dirty pages: compiled {:x?}, interpreted {:x?}",
            c.dirty, t.dirty
        ));
    }
    None
}

/// The program's instructions, one per line.
fn listing(blob: &[u8]) -> String {
    let Ok(parts) = deblob(blob) else {
        return "\n  (does not deblob)".into();
    };
    let mut text = String::new();
    for i in instructions(&parts) {
        text += &format!("\n  {}: {:?} {:?}", i.pc, i.opcode, i.operands);
    }
    text
}

fuzz_target!(|input: &[u8]| {
    let Some((&[g, v, s], data)) = input.split_first_chunk::<3>() else {
        return;
    };
    let gas: i64 = if g & 1 == 0 { 2_000 } else { i64::from(v % 40) };
    let slice: u64 = if s & 1 == 0 {
        u64::MAX
    } else {
        1 + u64::from(s >> 1) % 19
    };
    let Some(raw) = raw_program::raw_program(data) else {
        return;
    };
    let Ok(interpreted) = Program::from_blob(&raw.blob) else {
        return;
    };
    let mut compiled = interpreted.clone();
    if let Err(e) = compiled.compile_native() {
        panic!("compile_native failed: {e}{}", listing(&raw.blob));
    }
    assert!(compiled.is_native() && !interpreted.is_native());
    let regions = raw_regions();
    let machine = || {
        let mut memory = Memory::from_page_map(&regions).expect("maps");
        memory
            .initialize(RO, &data[..data.len().min(4096)])
            .expect("fits");
        Machine::new(raw.regs, 0, gas, memory)
    };
    let t = run_all(&interpreted, machine(), slice);
    let c = run_all(&compiled, machine(), slice);
    let what = || {
        format!(
            "gas {gas}, slice {slice}, regs {:x?}{}",
            raw.regs,
            listing(&raw.blob)
        )
    };
    for (i, (ci, ti)) in c.iter().zip(&t).enumerate() {
        if let Some(difference) = first_difference(ci, ti) {
            panic!("exit {i} ({:?}): {difference}\n{}", ti.exit, what());
        }
    }
    assert_eq!(
        c.len(),
        t.len(),
        "number of exits (compiled, interpreted)\n{}",
        what()
    );
});
