//! Differential fuzzing against PolkaVM 0.37's interpreter (JamV1).
//!
//! The input is read as a list of instructions (opcode selector, registers,
//! immediates, a target among the program's own instructions) and built
//! with our `ProgramBuilder`, so most inputs are valid programs. Both
//! engines run it from pc 0 with the same registers, a one-page writable
//! buffer and the same gas; they must agree on the exit, the registers, the
//! buffer and (when neither runs out of gas) the gas used.
//!
//! Left out on purpose, as documented differences (see `capbox_shared::pvm`):
//! opcodes 101–111 (PolkaVM numbers them differently); the state after
//! PolkaVM runs out of gas (it stops at the start of a block it cannot pay
//! for in full, we run the instructions that can be paid, so we may trap or
//! reach a host call first); conditional branches to non-block-starts
//! (PolkaVM traps on them even when not taken).
#![no_main]

use capbox_shared::pvm::asm::{Args, Insn, Label, ProgramBuilder, Reg, Target};
use capbox_shared::pvm::{
    ALL_OPCODES, Access, ArgFormat, Exit, Machine, Memory, Opcode, PageMapEntry, Program,
};
use libfuzzer_sys::fuzz_target;
use polkavm::{
    BackendKind, Config, Engine, GasMeteringKind, InterruptKind, Module, ModuleConfig, ProgramBlob,
    ProgramCounter, ProgramParts,
};

const GAS: i64 = 5_000;
const BUFFER: u32 = 4096;

fn usable() -> Vec<Opcode> {
    ALL_OPCODES
        .iter()
        .copied()
        .filter(|op| !(101..=111).contains(&op.to_u8()))
        .collect()
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn reg(&mut self) -> Option<Reg> {
        Reg::new(self.u8()? % 13)
    }

    /// Small or edge values most of the time, any 32-bit value sometimes.
    fn imm(&mut self, base: u64) -> Option<u64> {
        let selector = self.u8()?;
        Some(match selector % 8 {
            0 => 0,
            1 => u64::from(selector >> 3),
            2 => (-(i64::from(selector >> 3))) as u64,
            3 => base + u64::from(self.u8()?) * 8,
            4 => i32::MIN as i64 as u64,
            5 => i32::MAX as u64,
            _ => {
                let raw = [self.u8()?, self.u8()?, self.u8()?, self.u8()?];
                i32::from_le_bytes(raw) as i64 as u64
            }
        })
    }
}

/// One generated instruction before labels are placed: its target is an
/// index into the instruction list.
struct Planned {
    op: Opcode,
    args: Args,
    target: usize,
    fallthrough_before: bool,
}

/// Builds a program from the input; `None` when the input runs out first.
///
/// Conditional branches only go to basic-block starts: PolkaVM 0.37 traps
/// on a branch to a non-start even when it is not taken, while the
/// Graypaper (and we) continue; that difference is reported, not fuzzed.
fn generate(data: &[u8], base: u64) -> Option<(Vec<u8>, [u64; 13])> {
    let opcodes = usable();
    let mut input = Bytes(data);
    let mut regs = [0u64; 13];
    for reg in regs.iter_mut().skip(2) {
        *reg = input.imm(base)?;
    }
    regs[0] = 0xFFFF_0000;
    let count = usize::from(input.u8()? % 48) + 1;
    let placeholder = Target::Absolute(0);
    let mut plan = Vec::with_capacity(count);
    for _ in 0..count {
        let selector = input.u8()?;
        let op = opcodes[usize::from(selector) % opcodes.len()];
        let target = usize::from(input.u8()?) % (count + 1);
        let (a, b, d) = (input.reg()?, input.reg()?, input.reg()?);
        let t = placeholder;
        let args = match op.format() {
            ArgFormat::NoArgs => Args::NoArgs,
            ArgFormat::OneImm => Args::OneImm {
                x: u64::from(input.u8()?),
            },
            ArgFormat::OneRegExtImm => Args::OneRegExtImm {
                a,
                x: input.imm(base)? | (input.imm(base)? << 32),
            },
            ArgFormat::TwoImms => Args::TwoImms {
                x: input.imm(base)?,
                y: input.imm(base)?,
            },
            ArgFormat::OneOffset => Args::OneOffset { t },
            ArgFormat::OneRegOneImm => Args::OneRegOneImm {
                a,
                x: input.imm(base)?,
            },
            ArgFormat::OneRegTwoImms => Args::OneRegTwoImms {
                a,
                x: input.imm(base)?,
                y: input.imm(base)?,
            },
            ArgFormat::OneRegImmOffset => Args::OneRegImmOffset {
                a,
                x: input.imm(base)?,
                t,
            },
            ArgFormat::TwoRegs => Args::TwoRegs { d, a },
            ArgFormat::TwoRegsOneImm => Args::TwoRegsOneImm {
                a,
                b,
                x: input.imm(base)?,
            },
            ArgFormat::TwoRegsOneOffset => Args::TwoRegsOneOffset { a, b, t },
            ArgFormat::TwoRegsTwoImms => Args::TwoRegsTwoImms {
                a,
                b,
                x: input.imm(base)?,
                y: input.imm(base)?,
            },
            ArgFormat::ThreeRegs => Args::ThreeRegs { d, a, b },
        };
        plan.push(Planned {
            op,
            args,
            target,
            fallthrough_before: selector >= 0xC0,
        });
    }
    // Index `count` is the final halt, always a block start (a fallthrough
    // precedes it when needed).
    let starts: Vec<bool> = (0..=count)
        .map(|i| {
            i == 0 || i == count || plan[i].fallthrough_before || plan[i - 1].op.is_terminator()
        })
        .collect();
    let block_start_from = |i: usize| (i..=count).find(|&j| starts[j]).unwrap_or(count);

    let mut b = ProgramBuilder::new();
    let labels: Vec<Label> = (0..=count).map(|_| b.new_label()).collect();
    for &label in labels.iter().take(3) {
        b.jump_table_entry(label);
    }
    for (i, planned) in plan.iter().enumerate() {
        if planned.fallthrough_before && i > 0 {
            b.fallthrough();
        }
        b.bind(labels[i]);
        let conditional = planned.op.is_terminator()
            && !matches!(planned.op, Opcode::jump | Opcode::load_imm_jump)
            && planned.args.target().is_some();
        let target = if conditional {
            block_start_from(planned.target)
        } else {
            planned.target
        };
        let insn = Insn::new(planned.op, planned.args).ok()?;
        b.push_insn(insn.with_target(labels[target].into()));
    }
    if !plan[count - 1].op.is_terminator() {
        b.fallthrough();
    }
    b.bind(labels[count]);
    b.jump_ind(Reg::R0, 0);
    Some((b.build().ok()?, regs))
}

/// Exits compared across engines (PolkaVM without dynamic paging reports
/// faults as traps).
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Halt,
    Trap,
    OutOfGas,
    HostCall(u32),
}

/// PolkaVM's memory map (its layout differs from the Graypaper's standard
/// one, e.g. no input zone below the stack), mirrored in ours so that the
/// same addresses are mapped in both.
struct Layout {
    regions: Vec<PageMapEntry>,
    buffer: u32,
}

fn ours(
    blob: &[u8],
    regs: [u64; 13],
    layout: &Layout,
) -> Option<(Outcome, [u64; 13], Vec<u8>, i64)> {
    let program = Program::from_blob(blob).ok()?;
    let memory = Memory::from_page_map(&layout.regions).ok()?;
    let mut machine = Machine::new(regs, 0, GAS, memory);
    let outcome = match machine.run(&program) {
        Exit::Halt => Outcome::Halt,
        Exit::Panic | Exit::PageFault(_) => Outcome::Trap,
        Exit::OutOfGas => Outcome::OutOfGas,
        Exit::HostCall(n) => Outcome::HostCall(n),
        Exit::Slice => unreachable!("run() never stops for a slice"),
    };
    let mut buffer = vec![0; BUFFER as usize];
    machine.memory.read(layout.buffer, &mut buffer).ok()?;
    Some((outcome, machine.regs, buffer, GAS - machine.gas))
}

#[allow(clippy::type_complexity)]
fn theirs(
    engine: &Engine,
    blob: &[u8],
    regs: [u64; 13],
) -> Option<(Outcome, [u64; 13], Vec<u8>, i64, Layout)> {
    let mut parts = ProgramParts::empty(polkavm::program::InstructionSetKind::JamV1);
    parts.rw_data_size = BUFFER;
    parts.stack_size = 0x1000;
    parts.code_and_jump_table = blob.to_vec().into();
    let blob = ProgramBlob::from_parts(parts).ok()?;
    let mut config = ModuleConfig::new();
    config.set_gas_metering(Some(GasMeteringKind::Sync));
    config.set_page_size(0x1000);
    let module = Module::from_blob(engine, &config, blob).ok()?;
    let map = module.memory_map();
    let base = map.rw_data_address();
    if base != 0x2_0000 {
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
    let layout = Layout {
        regions,
        buffer: base,
    };
    let mut instance = module.instantiate().ok()?;
    instance.prepare_call_untyped(ProgramCounter(0), &[]);
    for (reg, &value) in polkavm::Reg::ALL.iter().zip(&regs) {
        instance.set_reg(*reg, value);
    }
    instance.set_gas(GAS);
    let outcome = match instance.run().ok()? {
        InterruptKind::Finished => Outcome::Halt,
        InterruptKind::Trap | InterruptKind::Segfault(_) => Outcome::Trap,
        InterruptKind::NotEnoughGas => Outcome::OutOfGas,
        InterruptKind::Ecalli(n) => Outcome::HostCall(n),
        InterruptKind::Step => return None,
    };
    let mut out = [0u64; 13];
    for (slot, reg) in out.iter_mut().zip(polkavm::Reg::ALL) {
        *slot = instance.reg(reg);
    }
    let buffer = instance.read_memory(base, BUFFER).ok()?;
    Some((outcome, out, buffer, GAS - instance.gas(), layout))
}

thread_local! {
    static ENGINE: Engine = {
        let mut config = Config::new();
        config.set_backend(Some(BackendKind::Interpreter));
        Engine::new(&config).expect("PolkaVM engine")
    };
}

fuzz_target!(|data: &[u8]| {
    // PolkaVM puts the writable buffer at 0x20000 (checked by `theirs`).
    let base = 0x2_0000;
    let Some((blob, regs)) = generate(data, base) else {
        return;
    };
    let Some(other) = ENGINE.with(|engine| theirs(engine, &blob, regs)) else {
        return;
    };
    let Some(mine) = ours(&blob, regs, &other.4) else {
        return;
    };
    let text = capbox_shared::pvm::asm::disassemble(&blob).unwrap_or_default();
    // PolkaVM stops with "not enough gas" at the start of a block it cannot
    // pay for in full; we run the instructions that can be paid, so we may
    // first reach a trap or a host call inside that block.
    if other.0 == Outcome::OutOfGas {
        assert!(
            matches!(
                mine.0,
                Outcome::OutOfGas | Outcome::Trap | Outcome::HostCall(_)
            ),
            "PolkaVM ran out of gas, we got {:?}\n{text}",
            mine.0
        );
        return;
    }
    assert_eq!(mine.0, other.0, "exit differs\n{text}");
    assert_eq!(mine.1, other.1, "registers differ ({:?})\n{text}", mine.0);
    assert!(mine.2 == other.2, "buffer differs\n{text}");
    if mine.0 == Outcome::Halt {
        assert_eq!(mine.3, other.3, "gas differs\n{text}");
    }
});
