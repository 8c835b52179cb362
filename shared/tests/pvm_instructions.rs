//! The instruction table: numbering, names, formats and terminators agree
//! with the Graypaper v0.7.2 listing.

use capbox_shared::pvm::{ALL_OPCODES, ArgFormat, Opcode};
use std::collections::HashSet;

#[test]
fn table_has_every_v0_7_2_instruction_once() {
    assert_eq!(ALL_OPCODES.len(), 139);
    let names: HashSet<_> = ALL_OPCODES.iter().map(|op| op.name()).collect();
    assert_eq!(names.len(), ALL_OPCODES.len(), "duplicate names");
    assert!(ALL_OPCODES.windows(2).all(|w| w[0].to_u8() < w[1].to_u8()));
}

#[test]
fn from_u8_inverts_to_u8_and_rejects_gaps() {
    let valid: HashSet<u8> = ALL_OPCODES.iter().map(|op| op.to_u8()).collect();
    for byte in 0..=255u8 {
        match Opcode::from_u8(byte) {
            Some(op) => assert_eq!(op.to_u8(), byte),
            None => assert!(!valid.contains(&byte), "{byte} is valid but unmapped"),
        }
    }
    for op in ALL_OPCODES {
        assert_eq!(Opcode::from_name(op.name()), Some(*op));
        assert_eq!(op.to_string(), op.name());
        assert_eq!(op.gas(), 1);
    }
    assert_eq!(Opcode::from_u8(2), None);
    assert_eq!(Opcode::from_u8(231), None);
    assert_eq!(Opcode::from_name("nop"), None);
}

#[test]
fn terminators_are_the_graypaper_set_t() {
    let expected: HashSet<u8> = [0, 1, 40, 50, 80, 180]
        .into_iter()
        .chain(81..=90)
        .chain(170..=175)
        .collect();
    let got: HashSet<u8> = ALL_OPCODES
        .iter()
        .filter(|op| op.is_terminator())
        .map(|op| op.to_u8())
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn formats_follow_the_appendix_sections() {
    let section = |op: u8| match op {
        0..=1 => ArgFormat::NoArgs,
        10 => ArgFormat::OneImm,
        20 => ArgFormat::OneRegExtImm,
        30..=33 => ArgFormat::TwoImms,
        40 => ArgFormat::OneOffset,
        50..=62 => ArgFormat::OneRegOneImm,
        70..=73 => ArgFormat::OneRegTwoImms,
        80..=90 => ArgFormat::OneRegImmOffset,
        100..=111 => ArgFormat::TwoRegs,
        120..=161 => ArgFormat::TwoRegsOneImm,
        170..=175 => ArgFormat::TwoRegsOneOffset,
        180 => ArgFormat::TwoRegsTwoImms,
        190..=230 => ArgFormat::ThreeRegs,
        other => panic!("opcode {other} outside every section"),
    };
    for op in ALL_OPCODES {
        assert_eq!(op.format(), section(op.to_u8()), "{op}");
    }
    let used: HashSet<_> = ALL_OPCODES.iter().map(|op| op.format()).collect();
    assert_eq!(used.len(), ArgFormat::ALL.len());
}

#[test]
fn spot_check_names() {
    assert_eq!(Opcode::from_u8(20).map(Opcode::name), Some("load_imm_64"));
    assert_eq!(
        Opcode::from_u8(159).map(Opcode::name),
        Some("rot_r_64_imm_alt")
    );
    assert_eq!(
        Opcode::from_u8(180).map(Opcode::name),
        Some("load_imm_jump_ind")
    );
    assert_eq!(Opcode::from_u8(230).map(Opcode::name), Some("min_u"));
}
