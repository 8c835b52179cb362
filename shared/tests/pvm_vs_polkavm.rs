//! Departures 10 and 11 (`capbox_shared::pvm` docs) checked against
//! PolkaVM 0.37's interpreter on the same blobs: where the Graypaper text
//! is literal about programs no assembler writes, capbox does what the
//! reference implementations do.

mod polkavm_support;

use capbox_shared::pvm::Exit;
use capbox_shared::pvm::asm::{ProgramBuilder, Reg};
use polkavm::InterruptKind;
use polkavm_support::{capbox_machine, polkavm_instance, polkavm_regs};

const GAS: i64 = 10_000;

/// Ours: (panicked, pc, φ0..φ12).
fn ours(blob: &[u8]) -> (bool, u32, [u64; 13]) {
    let (program, mut machine) = capbox_machine(blob, GAS);
    let exit = machine.run(&program);
    (exit == Exit::Panic, machine.pc, machine.regs)
}

/// PolkaVM 0.37's interpreter: (trapped, pc, φ0..φ12).
fn theirs(blob: &[u8]) -> (bool, u32, [u64; 13]) {
    let mut instance = polkavm_instance(blob, GAS);
    let exit = instance.run().unwrap();
    let pc = instance.program_counter().map_or(u32::MAX, |pc| pc.0);
    (
        matches!(exit, InterruptKind::Trap),
        pc,
        polkavm_regs(&instance),
    )
}

#[test]
fn three_register_destination_is_the_low_nibble_as_in_polkavm() {
    // φ3 = 0x40; shlo_r_32 with r_D octet 0x90: φ0 = 0x40 (low nibble 0),
    // not φ12 (min(12, 0x90)); then trap.
    let mut b = ProgramBuilder::new();
    b.load_imm(Reg::R3, 0x40u32)
        .raw_instruction(&[0xc6, 0x33, 0x90])
        .trap();
    let blob = b.build().unwrap();
    let (ours, theirs) = (ours(&blob), theirs(&blob));
    assert!(ours.0 && theirs.0);
    assert_eq!(ours.2, theirs.2, "registers");
    assert_eq!((ours.2[0], ours.2[12]), (0x40, 0));
}

#[test]
fn an_untaken_branch_to_a_non_block_start_panics_as_in_polkavm() {
    // φ2 = 1; branch_eq_imm φ2, 0 → a target inside a block (not taken);
    // then φ3 = 7 and trap. Both panic at the branch, φ3 still 0.
    let mut b = ProgramBuilder::new();
    let inside = b.new_label();
    b.load_imm(Reg::R2, 1u32);
    b.bind(inside);
    b.load_imm(Reg::R4, 9u32)
        .branch_eq_imm(Reg::R2, 0u32, inside)
        .load_imm(Reg::R3, 7u32)
        .trap();
    let blob = b.build().unwrap();
    let (ours, theirs) = (ours(&blob), theirs(&blob));
    assert_eq!(ours.0, theirs.0, "both panic");
    assert_eq!(ours.2, theirs.2, "registers");
    assert_eq!(ours.1, theirs.1, "pc");
    assert_eq!(ours.2[3], 0, "the branch panicked before φ3 = 7");
}

#[test]
fn opcode_2_is_invalid_here_and_polkavms_unlikely_hint_there() {
    // A documented difference the raw differential fuzzer (fuzz/diff_raw)
    // skips: PolkaVM's JamV1 runs opcode 2 as `unlikely`, a no-op hint the
    // Graypaper does not have; capbox (the text) traps on it.
    let blob = [0, 0, 2, 2, 0, 0b11];
    let (ours, theirs) = (ours(&blob), theirs(&blob));
    assert!(ours.0 && theirs.0, "both end in a trap");
    assert_eq!(
        (ours.1, theirs.1),
        (0, 1),
        "pc: ours at the 2, theirs past it"
    );
}

#[test]
fn immediates_stop_at_the_instructions_end_as_in_polkavm() {
    // Found against anan-as 1.2.0 (scripts/diff-anan-as.sh), which takes
    // the missing immediate octets from the next instruction: at pc 0
    // `load_imm_jump_ind` with skip 0 (its octets 1.. belong to the
    // `fallthrough` at pc 1); then `trap`. Here and in PolkaVM φ1 = 0
    // (anan-as: 0x2c3b60) and the jump to φ0 + 0 = 0 panics at pc 0.
    let code = [0xb4, 0x01, 0x88, 0x60, 0x3b, 0x2c, 0x00];
    let blob = [
        0, 1, 7, 0xb4, 0x01, 0x88, 0x60, 0x3b, 0x2c, 0x00, 0b100_0011,
    ];
    assert_eq!(&blob[3..10], &code);
    let (ours, theirs) = (ours(&blob), theirs(&blob));
    assert!(ours.0 && theirs.0, "both panic");
    assert_eq!(ours.2, theirs.2, "registers");
    assert_eq!(ours.1, theirs.1, "pc");
    assert_eq!((ours.1, ours.2[1]), (0, 0));
}
