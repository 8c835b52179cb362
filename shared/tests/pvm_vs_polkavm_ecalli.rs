//! Departure 12 (`capbox_shared::pvm` docs) checked against PolkaVM 0.37's
//! interpreter: a basic block is charged in full on entry, through any
//! `ecalli` in it, and resuming after a host call charges nothing. Every
//! exit of a run (host calls resumed) is compared: kind, pc, gas and
//! registers.

mod polkavm_support;

use capbox_shared::pvm::Exit;
use capbox_shared::pvm::asm::{ProgramBuilder, Reg};
use polkavm::InterruptKind;
use polkavm_support::{capbox_machine, polkavm_instance, polkavm_regs};

/// How a run stopped, in terms both engines share (a memory fault is a
/// trap for PolkaVM without dynamic paging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Halt,
    Trap,
    OutOfGas,
    Host(u32),
}

/// One exit: the stop, the pc (for a host call: the `ecalli`'s), the gas
/// left and the registers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    stop: Stop,
    pc: u32,
    gas: i64,
    regs: [u64; 13],
}

/// Gas the host takes at each host call (the next exit decides whether
/// the rest of the block still runs).
type HostCost = fn(u32) -> i64;

const MAX_EXITS: usize = 8;

fn ours(blob: &[u8], gas: i64, host_cost: HostCost) -> Vec<State> {
    let (program, mut machine) = capbox_machine(blob, gas);
    let mut states = Vec::new();
    while states.len() < MAX_EXITS {
        let exit = machine.run(&program);
        let (stop, pc) = match exit {
            Exit::Halt => (Stop::Halt, machine.pc),
            Exit::Panic | Exit::PageFault(_) => (Stop::Trap, machine.pc),
            Exit::OutOfGas => (Stop::OutOfGas, machine.pc),
            // `run` returns past the ecalli; PolkaVM reports the ecalli.
            Exit::HostCall(n) => (
                Stop::Host(n),
                program.instruction_before(machine.pc).unwrap(),
            ),
            Exit::Slice => unreachable!("run() never stops for a slice"),
        };
        states.push(State {
            stop,
            pc,
            gas: machine.gas,
            regs: machine.regs,
        });
        let Stop::Host(n) = stop else { break };
        machine.gas -= host_cost(n);
    }
    states
}

fn theirs(blob: &[u8], gas: i64, host_cost: HostCost) -> Vec<State> {
    let mut instance = polkavm_instance(blob, gas);
    let mut states = Vec::new();
    while states.len() < MAX_EXITS {
        let stop = match instance.run().unwrap() {
            InterruptKind::Finished => Stop::Halt,
            InterruptKind::Trap | InterruptKind::Segfault(_) => Stop::Trap,
            InterruptKind::NotEnoughGas => Stop::OutOfGas,
            InterruptKind::Ecalli(n) => Stop::Host(n),
            InterruptKind::Step => unreachable!("no step tracing"),
        };
        states.push(State {
            stop,
            pc: instance.program_counter().map_or(u32::MAX, |pc| pc.0),
            gas: instance.gas(),
            regs: polkavm_regs(&instance),
        });
        let Stop::Host(n) = stop else { break };
        instance.set_gas(instance.gas() - host_cost(n));
    }
    states
}

fn free(_: u32) -> i64 {
    0
}

/// `count` × `load_imm φ(i mod 6), i`.
fn fillers(b: &mut ProgramBuilder, count: u32) {
    const REGS: [Reg; 6] = [Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5, Reg::R6];
    for i in 0..count {
        b.load_imm(REGS[i as usize % REGS.len()], i + 1);
    }
}

#[test]
fn a_fault_before_an_ecalli_has_paid_the_whole_block() {
    // store to an unmapped page at pc 0; 25 fillers; ecalli; trap: one
    // block of 28 instructions, all charged before the store faults.
    let mut b = ProgramBuilder::new();
    b.store_imm_u8(0x7000_0000u32, 1u32);
    fillers(&mut b, 25);
    b.ecalli(3u32).trap();
    let blob = b.build().unwrap();
    let (ours, theirs) = (ours(&blob, 1000, free), theirs(&blob, 1000, free));
    assert_eq!(ours, theirs);
    assert_eq!((ours.len(), ours[0].stop), (1, Stop::Trap));
    assert_eq!((ours[0].pc, ours[0].gas), (0, 1000 - 28));
}

#[test]
fn several_ecallis_in_one_block_are_charged_once() {
    // Three ecallis with fillers between them, then trap: the first exit
    // has paid everything; resuming charges nothing.
    let mut b = ProgramBuilder::new();
    fillers(&mut b, 2);
    b.ecalli(1u32);
    fillers(&mut b, 3);
    b.ecalli(2u32).ecalli(3u32);
    fillers(&mut b, 1);
    b.trap();
    let blob = b.build().unwrap();
    let (ours, theirs) = (ours(&blob, 100, free), theirs(&blob, 100, free));
    assert_eq!(ours, theirs);
    let stops: Vec<Stop> = ours.iter().map(|s| s.stop).collect();
    assert_eq!(
        stops,
        [Stop::Host(1), Stop::Host(2), Stop::Host(3), Stop::Trap]
    );
    assert!(ours.iter().all(|s| s.gas == 100 - 10), "{ours:?}");
}

#[test]
fn an_ecalli_as_the_last_instruction_of_its_block() {
    // Right before the block's terminator (a fallthrough starts the next
    // one): each block is charged on its own entry.
    let mut b = ProgramBuilder::new();
    fillers(&mut b, 2);
    b.ecalli(7u32).fallthrough();
    fillers(&mut b, 4);
    b.trap();
    let blob = b.build().unwrap();
    let (o, t) = (ours(&blob, 100, free), theirs(&blob, 100, free));
    assert_eq!(o, t);
    assert_eq!((o[0].stop, o[0].gas), (Stop::Host(7), 100 - 4));
    assert_eq!((o[1].stop, o[1].gas), (Stop::Trap, 100 - 9));
    // Right before a jump to the next block.
    let mut b = ProgramBuilder::new();
    let next = b.new_label();
    fillers(&mut b, 1);
    b.ecalli(8u32).jump(next);
    b.bind(next);
    fillers(&mut b, 2);
    b.trap();
    let blob = b.build().unwrap();
    let (o, t) = (ours(&blob, 100, free), theirs(&blob, 100, free));
    assert_eq!(o, t);
    assert_eq!((o[0].stop, o[0].gas), (Stop::Host(8), 100 - 3));
    assert_eq!((o[1].stop, o[1].gas), (Stop::Trap, 100 - 6));
}

#[test]
fn an_ecalli_as_the_last_instruction_of_the_code() {
    // PolkaVM refuses code that does not end with a terminator, so only
    // ours: the block is the fillers, the ecalli and the implicit trap
    // past the end (charged as part of it, as the w3f vectors charge it).
    let mut b = ProgramBuilder::new();
    fillers(&mut b, 3);
    b.ecalli(9u32);
    let blob = b.build().unwrap();
    let o = ours(&blob, 100, free);
    let stops: Vec<(Stop, i64)> = o.iter().map(|s| (s.stop, s.gas)).collect();
    assert_eq!(stops, [(Stop::Host(9), 95), (Stop::Trap, 95)]);
    assert_eq!(o[1].pc, blob_code_len(&blob));
}

/// The code length of a blob built without a jump table (header octets:
/// table length 0, entry size 0, code length < 128).
fn blob_code_len(blob: &[u8]) -> u32 {
    assert_eq!(&blob[..2], [0, 0]);
    u32::from(blob[2])
}

#[test]
fn out_of_gas_in_a_block_with_an_ecalli() {
    let mut b = ProgramBuilder::new();
    fillers(&mut b, 4);
    b.ecalli(5u32);
    fillers(&mut b, 4);
    b.trap();
    let blob = b.build().unwrap();
    // Exactly enough for the block (10): runs to the trap, gas 0.
    let (o, t) = (ours(&blob, 10, free), theirs(&blob, 10, free));
    assert_eq!(o, t);
    assert_eq!(o.last().unwrap().stop, Stop::Trap);
    // The host takes all that is left at the ecalli: the rest of the block
    // was paid on entry, so it still runs (no out-of-gas on resumption).
    fn all(_: u32) -> i64 {
        5
    }
    let (o, t) = (ours(&blob, 15, all), theirs(&blob, 15, all));
    assert_eq!(o, t);
    assert_eq!((o[1].stop, o[1].gas), (Stop::Trap, 0));
    // Less than the cost up to the ecalli: both run out of gas and the
    // host call is never made. (Where and with what gas differs:
    // departure 2, PolkaVM stops at the block's start untouched.)
    for gas in [0, 3, 4] {
        let (o, t) = (ours(&blob, gas, free), theirs(&blob, gas, free));
        assert_eq!(o.len(), 1, "gas {gas}: {o:?}");
        assert_eq!((o[0].stop, t[0].stop), (Stop::OutOfGas, Stop::OutOfGas));
        assert_eq!((t[0].pc, t[0].gas), (0, gas));
        // Ours steps the `gas` fillers it can pay (3 octets each) and stops
        // at the next one with gas −1.
        assert_eq!((o[0].pc, o[0].gas), (3 * gas as u32, -1));
    }
}
