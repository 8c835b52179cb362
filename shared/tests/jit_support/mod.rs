//! The compiled code (`pvm::jit`) against the interpreter: run a program
//! both ways from identical machines and compare the states at every exit,
//! naming the first difference. Shared by `shared/tests/pvm_jit.rs` and the
//! `diff_jit` fuzz target (which include it with `#[path]`, beside
//! `raw_program`).
#![allow(dead_code)]

use capbox_shared::pvm::{
    Access, Exit, Machine, Memory, PageMapEntry, Program, deblob, instructions,
};

use super::raw_program;

/// Exits a run goes through (host calls resumed) before it is compared.
pub const MAX_EXITS: usize = 5;
/// The read-only page (initialised from the input).
pub const RO: u32 = 0x1_0000;
/// The regions compared for raw programs: the read-only page and the two
/// writable pages.
pub const COMPARED: [(u32, u32); 2] = [(RO, 0x1000), (raw_program::RW, 0x2000)];

/// What one exit left.
#[derive(Debug, PartialEq, Eq)]
pub struct State {
    pub exit: Exit,
    pub pc: u32,
    pub gas: i64,
    pub regs: [u64; 13],
    pub memory: Vec<u8>,
    pub dirty: Vec<u32>,
}

/// The raw programs' memory: a read-only page, the read-write page and a
/// write page after it (as in `shared/tests/pvm_jit.rs`).
pub fn raw_regions() -> Vec<PageMapEntry> {
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

/// The state at an exit, with the memory of the `compared` regions.
pub fn snapshot(exit: Exit, machine: &Machine, compared: &[(u32, u32)]) -> State {
    let mut memory = Vec::new();
    for &(address, length) in compared {
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
pub fn run_all(
    program: &Program,
    mut machine: Machine,
    slice: u64,
    compared: &[(u32, u32)],
) -> Vec<State> {
    let mut states = Vec::new();
    loop {
        let exit = machine.run_sliced(program, slice);
        if exit == Exit::Slice {
            continue;
        }
        states.push(snapshot(exit, &machine, compared));
        if !matches!(exit, Exit::HostCall(_)) || states.len() >= MAX_EXITS {
            return states;
        }
    }
}

/// The address of memory octet `at` of a snapshot of `compared`.
fn address_of(mut at: usize, compared: &[(u32, u32)]) -> u32 {
    for &(address, length) in compared {
        if at < length as usize {
            return address + at as u32;
        }
        at -= length as usize;
    }
    unreachable!("octet past the compared regions")
}

/// The first difference between two states, if any.
pub fn first_difference(c: &State, t: &State, compared: &[(u32, u32)]) -> Option<String> {
    if c.exit != t.exit {
        return Some(format!(
            "exit: compiled {:?}, interpreted {:?}",
            c.exit, t.exit
        ));
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
            address_of(at, compared),
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
pub fn listing(blob: &[u8]) -> String {
    let Ok(parts) = deblob(blob) else {
        return "\n  (does not deblob)".into();
    };
    let mut text = String::new();
    for i in instructions(&parts) {
        text += &format!("\n  {}: {:?} {:?}", i.pc, i.opcode, i.operands);
    }
    text
}

/// Panics naming the first difference between the compiled run's states
/// `c` and the interpreted run's `t`; `what` describes the case.
pub fn assert_same(c: &[State], t: &[State], compared: &[(u32, u32)], what: &dyn Fn() -> String) {
    for (i, (ci, ti)) in c.iter().zip(t).enumerate() {
        if let Some(difference) = first_difference(ci, ti, compared) {
            panic!("exit {i} ({:?}): {difference}\n{}", ti.exit, what());
        }
    }
    assert_eq!(
        c.len(),
        t.len(),
        "number of exits (compiled, interpreted)\n{}",
        what()
    );
}

/// The raw program `data` makes (`raw_program`), run interpreted and
/// compiled from identical machines (`gas`, slices of `slice`), must end
/// alike at every exit. Inputs too short for a program are skipped.
pub fn raw_case(data: &[u8], gas: i64, slice: u64) {
    let Some(raw) = raw_program::raw_program(data) else {
        return;
    };
    let Ok(interpreted) = Program::from_blob(&raw.blob) else {
        return;
    };
    let compiled = interpreted.clone();
    if let Err(e) = compiled.compile_native() {
        panic!("compile_native failed: {e}{}", listing(&raw.blob));
    }
    // As a guest compiles it: no BMI2, no popcnt.
    let baseline = interpreted.clone();
    if let Err(e) = baseline.compile_native_baseline() {
        panic!("compile_native_baseline failed: {e}{}", listing(&raw.blob));
    }
    assert!(compiled.is_native() && baseline.is_native() && !interpreted.is_native());
    let regions = raw_regions();
    let machine = || {
        let mut memory = Memory::from_page_map(&regions).expect("maps");
        memory
            .initialize(RO, &data[..data.len().min(4096)])
            .expect("fits");
        Machine::new(raw.regs, 0, gas, memory)
    };
    let t = run_all(&interpreted, machine(), slice, &COMPARED);
    for (kind, program) in [("host", &compiled), ("baseline", &baseline)] {
        let c = run_all(program, machine(), slice, &COMPARED);
        let what = || {
            format!(
                "{kind} code, gas {gas}, slice {slice}, regs {:x?}{}",
                raw.regs,
                listing(&raw.blob)
            )
        };
        assert_same(&c, &t, &COMPARED, &what);
    }
}
