//! Every fused handler against its instructions run one dispatch each:
//! the same instructions, with random registers drawn from three (so
//! parts read and overwrite each other's registers) and small immediates,
//! once back to back (fused) and once with a `fallthrough` between each
//! two (a block boundary, so nothing fuses), must end with the same exit,
//! registers and memory.

use alloc::vec::Vec;

use super::asm::{Args, Insn, Label, ProgramBuilder, Reg};
use super::program::{Handler, Program};
use super::{Access, ArgFormat, Exit, HALT_ADDRESS, Machine, Memory, Opcode, PageMapEntry};

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn reg(&mut self) -> Reg {
        Reg::new(1 + (self.next() % 3) as u8).expect("1 to 3")
    }

    fn imm(&mut self) -> u64 {
        self.next() % 24
    }
}

/// Random operands for `opcode`; branches and jumps go to `end`.
fn args(opcode: Opcode, rng: &mut Rng, end: Label) -> Args {
    match opcode.format() {
        ArgFormat::TwoRegsOneImm => Args::TwoRegsOneImm {
            a: rng.reg(),
            b: rng.reg(),
            x: rng.imm(),
        },
        ArgFormat::ThreeRegs => Args::ThreeRegs {
            d: rng.reg(),
            a: rng.reg(),
            b: rng.reg(),
        },
        ArgFormat::TwoRegs => Args::TwoRegs {
            d: rng.reg(),
            a: rng.reg(),
        },
        ArgFormat::OneRegTwoImms => Args::OneRegTwoImms {
            a: rng.reg(),
            x: rng.imm(),
            y: rng.next() % 256,
        },
        ArgFormat::OneRegImmOffset => Args::OneRegImmOffset {
            a: rng.reg(),
            x: rng.next() % 3,
            t: end.into(),
        },
        ArgFormat::TwoRegsOneOffset => Args::TwoRegsOneOffset {
            a: rng.reg(),
            b: rng.reg(),
            t: end.into(),
        },
        ArgFormat::OneOffset => Args::OneOffset { t: end.into() },
        other => panic!("no operands drawn for {other:?} ({opcode}): add them here"),
    }
}

/// The program: `parts` with `fallthrough` between them if `split`, then
/// a halt.
fn program(parts: &[Insn], split: bool, end: Label, mut b: ProgramBuilder) -> Program {
    for (i, insn) in parts.iter().enumerate() {
        if split && i > 0 {
            b.fallthrough();
        }
        b.push_insn(*insn);
    }
    b.bind(end).jump_ind(Reg::new(0).expect("r0"), 0);
    Program::from_blob(&b.build().expect("builds")).expect("decodes")
}

/// Exit, registers and the page after running `program`.
fn run(program: &Program) -> (Exit, [u64; 13], Vec<u8>) {
    let mut memory = Memory::from_page_map(&[PageMapEntry {
        address: 0x10000,
        length: 0x1000,
        access: Access::Write,
    }])
    .expect("maps");
    let pattern: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    memory.initialize(0x10000, &pattern).expect("fits");
    let mut regs = [0; 13];
    regs[0] = u64::from(HALT_ADDRESS);
    (regs[1], regs[2], regs[3]) = (0x10000, 0x10008, 0x10011);
    let mut m = Machine::new(regs, 0, 1000, memory);
    let exit = m.run(program);
    let mut page = alloc::vec![0; 0x1000];
    m.memory.read(0x10000, &mut page).expect("reads");
    (exit, m.regs, page)
}

#[test]
fn every_fused_handler_matches_its_instructions_run_apart() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for &handler in Handler::ALL {
        let opcodes = handler.parts();
        if opcodes.is_empty() {
            continue;
        }
        for _ in 0..200 {
            let mut fused = ProgramBuilder::new();
            let end = fused.new_label();
            let parts: Vec<Insn> = opcodes
                .iter()
                .map(|&op| Insn::new(op, args(op, &mut rng, end)).expect("valid operands"))
                .collect();
            let fused = program(&parts, false, end, fused);
            assert_eq!(fused.ops[0].opcode, handler, "{parts:?} is one dispatch");
            let mut apart = ProgramBuilder::new();
            let end = apart.new_label();
            let apart = program(&parts, true, end, apart);
            assert_eq!(run(&fused), run(&apart), "{handler:?}: {parts:?}");
            checked += 1;
        }
    }
    assert!(checked >= 40 * 200, "only {checked} cases");
}
