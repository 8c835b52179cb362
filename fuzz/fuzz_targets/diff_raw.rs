//! Differential fuzzing of *raw* code against PolkaVM 0.37's interpreter
//! (JamV1): the input's octets become the code and the bitmask directly
//! (unusual skips, operands past an instruction's end, invalid opcodes,
//! jumps anywhere), not a builder-made program. Both engines run from pc 0
//! with the same registers, gas and memory map; every exit is compared
//! (host calls are resumed, up to four): the kind, pc, registers, gas and
//! the writable memory (buffer and stack).
//!
//! Left out, as documented differences (`capbox_shared::pvm`): programs
//! with an instruction start on opcodes 101–111 (PolkaVM's JamV1 numbers
//! them differently and has no `sbrk`, departure 7) or on opcode 2
//! (PolkaVM's `unlikely` hint, a no-op there; not in the Graypaper, where
//! it is invalid and traps, as in capbox); the state after
//! PolkaVM runs out of gas (departure 2: it stops at the start of a block it
//! cannot pay in full, we step the part that can be paid, so we may trap,
//! fault or reach a host call first). Blobs PolkaVM refuses are skipped.
#![no_main]

#[path = "../../shared/tests/raw_program/mod.rs"]
mod raw_program;

use capbox_shared::pvm::{Access, Exit, Machine, Memory, PageMapEntry, Program};
use libfuzzer_sys::fuzz_target;
use polkavm::{
    BackendKind, Config, Engine, GasMeteringKind, InterruptKind, Module, ModuleConfig, ProgramBlob,
    ProgramCounter, ProgramParts,
};
use raw_program::{RawProgram, raw_program};

const GAS: i64 = 2_000;
const BUFFER: u32 = 4096;
const STACK: u32 = 4096;
const MAX_EXITS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Halt,
    Trap,
    OutOfGas,
    Host(u32),
}

#[derive(Debug, PartialEq, Eq)]
struct State {
    stop: Stop,
    pc: u32,
    gas: i64,
    regs: [u64; 13],
    memory: Vec<u8>,
}

fn theirs(
    engine: &Engine,
    blob: &[u8],
    regs: [u64; 13],
) -> Option<(Vec<State>, Vec<PageMapEntry>)> {
    let mut parts = ProgramParts::empty(polkavm::program::InstructionSetKind::JamV1);
    parts.rw_data_size = BUFFER;
    parts.stack_size = STACK;
    parts.code_and_jump_table = blob.to_vec().into();
    let blob = ProgramBlob::from_parts(parts).ok()?;
    let mut config = ModuleConfig::new();
    config.set_gas_metering(Some(GasMeteringKind::Sync));
    config.set_page_size(0x1000);
    let module = Module::from_blob(engine, &config, blob).ok()?;
    let map = module.memory_map();
    if map.rw_data_address() != raw_program::RW {
        return None;
    }
    let mut regions = Vec::new();
    for (range, access) in [
        (map.ro_data_range(), Access::Read),
        (map.rw_data_range(), Access::Write),
        (map.stack_range(), Access::Write),
        (map.aux_data_range(), Access::Read),
    ] {
        if !range.is_empty() {
            regions.push(PageMapEntry {
                address: range.start,
                length: range.end - range.start,
                access,
            });
        }
    }
    let (rw, stack) = (map.rw_data_range(), map.stack_range());
    let mut instance = module.instantiate().ok()?;
    instance.set_next_program_counter(ProgramCounter(0));
    for (reg, &value) in polkavm::Reg::ALL.iter().zip(&regs) {
        instance.set_reg(*reg, value);
    }
    instance.set_gas(GAS);
    let mut states = Vec::new();
    while states.len() < MAX_EXITS {
        let stop = match instance.run().ok()? {
            InterruptKind::Finished => Stop::Halt,
            InterruptKind::Trap | InterruptKind::Segfault(_) => Stop::Trap,
            InterruptKind::NotEnoughGas => Stop::OutOfGas,
            InterruptKind::Ecalli(n) => Stop::Host(n),
            InterruptKind::Step => return None,
        };
        let mut memory = instance.read_memory(rw.start, rw.end - rw.start).ok()?;
        memory.extend(
            instance
                .read_memory(stack.start, stack.end - stack.start)
                .ok()?,
        );
        states.push(State {
            stop,
            pc: instance.program_counter().map_or(u32::MAX, |pc| pc.0),
            gas: instance.gas(),
            regs: core::array::from_fn(|i| instance.reg(polkavm::Reg::ALL[i])),
            memory,
        });
        if !matches!(stop, Stop::Host(_)) {
            break;
        }
    }
    Some((states, regions))
}

fn ours(blob: &[u8], regs: [u64; 13], regions: &[PageMapEntry]) -> Option<Vec<State>> {
    let program = Program::from_blob(blob).ok()?;
    let memory = Memory::from_page_map(regions).ok()?;
    let writable: Vec<&PageMapEntry> = regions
        .iter()
        .filter(|r| r.access == Access::Write)
        .collect();
    let mut machine = Machine::new(regs, 0, GAS, memory);
    let mut states = Vec::new();
    while states.len() < MAX_EXITS {
        let exit = machine.run(&program);
        let (stop, pc) = match exit {
            Exit::Halt => (Stop::Halt, machine.pc),
            Exit::Panic | Exit::PageFault(_) => (Stop::Trap, machine.pc),
            Exit::OutOfGas => (Stop::OutOfGas, machine.pc),
            Exit::HostCall(n) => (Stop::Host(n), program.instruction_before(machine.pc)?),
            Exit::Slice => unreachable!("run() never stops for a slice"),
        };
        let mut memory = Vec::new();
        for region in &writable {
            let mut bytes = vec![0; region.length as usize];
            machine.memory.read(region.address, &mut bytes).ok()?;
            memory.extend(bytes);
        }
        states.push(State {
            stop,
            pc,
            gas: machine.gas,
            regs: machine.regs,
            memory,
        });
        if !matches!(stop, Stop::Host(_)) {
            break;
        }
    }
    Some(states)
}

thread_local! {
    static ENGINE: Engine = {
        let mut config = Config::new();
        config.set_backend(Some(BackendKind::Interpreter));
        Engine::new(&config).expect("PolkaVM engine")
    };
}

fn listing(code: &[u8], starts: &[bool]) -> String {
    code.iter()
        .zip(starts)
        .enumerate()
        .map(|(pc, (op, &start))| format!("{}{pc}:{op:02x}", if start { " |" } else { " " }))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some(program) = raw_program(data).filter(|p| !p.polkavm_renumbers()) else {
        return;
    };
    let RawProgram {
        blob,
        regs,
        code,
        starts,
    } = program;
    let Some((other, regions)) = ENGINE.with(|engine| theirs(engine, &blob, regs)) else {
        return;
    };
    let Some(mine) = ours(&blob, regs, &regions) else {
        return;
    };
    let text = listing(&code, &starts);
    for (i, (m, t)) in mine.iter().zip(&other).enumerate() {
        if t.stop == Stop::OutOfGas {
            assert!(
                !matches!(m.stop, Stop::Halt),
                "exit {i}: PolkaVM ran out of gas, we halted\n{text}"
            );
            return;
        }
        assert_eq!(m.stop, t.stop, "exit {i}: kind\n{text}");
        // PolkaVM has no pc after a halt (ours: the jump, departure 3).
        if t.stop != Stop::Halt {
            assert_eq!(m.pc, t.pc, "exit {i} ({:?}): pc\n{text}", m.stop);
        }
        assert_eq!(m.regs, t.regs, "exit {i} ({:?}): registers\n{text}", m.stop);
        assert_eq!(m.gas, t.gas, "exit {i} ({:?}): gas\n{text}", m.stop);
        assert!(
            m.memory == t.memory,
            "exit {i} ({:?}): memory\n{text}",
            m.stop
        );
    }
    assert_eq!(mine.len(), other.len(), "number of exits\n{text}");
});
