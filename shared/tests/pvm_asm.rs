//! Builder, assembler and disassembler: encodings checked against the core
//! decoder, round trips, typed errors with line numbers.

use capbox_shared::pvm::asm::{
    Args, AsmErrorKind, BuildError, Imm, Insn, ProgramBuilder, Reg, Target, assemble,
    assemble_program, assemble_with_notes, disassemble,
};
use capbox_shared::pvm::decode::decode_instruction;
use capbox_shared::pvm::{ALL_OPCODES, ArgFormat, Opcode, deblob};
use proptest::prelude::*;

use Reg::*;

/// Sample operands of `format`, varied by `seed` (registers, immediates of
/// every length and sign, targets given by `target`).
fn sample_args(format: ArgFormat, seed: u64, target: Target) -> Args {
    const IMMS: [u64; 8] = [
        0,
        1,
        0x7f,
        0x80,
        u64::MAX,
        0xFFFF_FFFF_FFFF_8000,
        0x1234_5678,
        0xFFFF_FFFF_8000_0000,
    ];
    let reg = |k: u64| Reg::ALL[((seed + k * 5) % 13) as usize];
    let imm = |k: u64| IMMS[((seed + k * 3) % 8) as usize];
    match format {
        ArgFormat::NoArgs => Args::NoArgs,
        ArgFormat::OneImm => Args::OneImm { x: imm(0) },
        ArgFormat::OneRegExtImm => Args::OneRegExtImm {
            a: reg(0),
            x: 0x0123_4567_89AB_CDEF ^ seed,
        },
        ArgFormat::TwoImms => Args::TwoImms {
            x: imm(0),
            y: imm(1),
        },
        ArgFormat::OneOffset => Args::OneOffset { t: target },
        ArgFormat::OneRegOneImm => Args::OneRegOneImm {
            a: reg(0),
            x: imm(0),
        },
        ArgFormat::OneRegTwoImms => Args::OneRegTwoImms {
            a: reg(0),
            x: imm(0),
            y: imm(1),
        },
        ArgFormat::OneRegImmOffset => Args::OneRegImmOffset {
            a: reg(0),
            x: imm(2),
            t: target,
        },
        ArgFormat::TwoRegs => Args::TwoRegs {
            d: reg(0),
            a: reg(1),
        },
        ArgFormat::TwoRegsOneImm => Args::TwoRegsOneImm {
            a: reg(0),
            b: reg(1),
            x: imm(0),
        },
        ArgFormat::TwoRegsOneOffset => Args::TwoRegsOneOffset {
            a: reg(0),
            b: reg(1),
            t: target,
        },
        ArgFormat::TwoRegsTwoImms => Args::TwoRegsTwoImms {
            a: reg(0),
            b: reg(seed % 2),
            x: imm(0),
            y: imm(1),
        },
        ArgFormat::ThreeRegs => Args::ThreeRegs {
            d: reg(0),
            a: reg(1),
            b: reg(2),
        },
    }
}

/// Builds `insns`; checks that the core decoder reads every instruction
/// back as written (targets resolved to the label's offset) and that
/// disassembling and reassembling gives the same blob without raw lines.
fn check_program(builder: &ProgramBuilder, insns: &[Insn], label_pcs: &dyn Fn(Target) -> i64) {
    let built = builder.build_program().expect("build");
    let parts = deblob(&built.blob).expect("deblob");
    for (i, insn) in insns.iter().enumerate() {
        let pc = built.item_pcs[i];
        let decoded = decode_instruction(parts.code, &parts.bitmask, pc);
        assert_eq!(decoded.opcode, Some(insn.opcode()), "item {i} at {pc}");
        assert_eq!(
            decoded.next_pc(),
            u64::from(built.item_pcs[i + 1]),
            "length of {insn:?}"
        );
        let expected = match insn.args().target() {
            Some(t) => insn.with_target(Target::Absolute(label_pcs(t))),
            None => *insn,
        };
        let got = Args::from_operands(&decoded.operands).expect("registers in range");
        assert_eq!(got, *expected.args(), "operands of {insn:?}");
    }
    let text = disassemble(&built.blob).expect("disassemble");
    assert!(
        !text.contains(".insn"),
        "raw lines in canonical code:\n{text}"
    );
    assert_eq!(assemble(&text).expect("reassemble"), built.blob, "\n{text}");
}

#[test]
fn every_opcode_encodes_decodes_and_round_trips() {
    for seed in 0..16u64 {
        let mut b = ProgramBuilder::new();
        let back = b.here();
        let forward = b.new_label();
        let mut insns = Vec::new();
        for (i, &op) in ALL_OPCODES.iter().enumerate() {
            let target = match (i as u64 + seed) % 3 {
                0 => Target::Label(back),
                1 => Target::Label(forward),
                _ => Target::Absolute(3),
            };
            let insn = Insn::new(op, sample_args(op.format(), seed + i as u64, target))
                .expect("sample operands fit");
            b.push_insn(insn);
            insns.push(insn);
        }
        b.bind(forward);
        b.trap();
        let built = b.build_program().expect("build");
        let pc_of = |t: Target| match t {
            Target::Label(l) => i64::from(built.pc(l).unwrap()),
            Target::Absolute(v) => v,
        };
        check_program(&b, &insns, &pc_of);
    }
}

#[test]
fn builder_methods_match_generic_push() {
    let mut typed = ProgramBuilder::new();
    let mut generic = ProgramBuilder::new();
    let l1 = typed.here();
    let l2 = generic.here();
    typed
        .add_64(R9, R7, R8)
        .add_imm_32(R1, R2, -5)
        .load_imm_64(R3, u64::MAX - 1)
        .store_imm_u32(0xFFFF_0000u32, 7)
        .branch_lt_s_imm(R4, -1, l1)
        .load_imm_jump_ind(R0, R0, 1, 2)
        .ecalli(0xFFFF_FFFFu32);
    generic
        .push(
            Opcode::add_64,
            Args::ThreeRegs {
                d: R9,
                a: R7,
                b: R8,
            },
        )
        .and_then(|g| {
            g.push(
                Opcode::add_imm_32,
                Args::TwoRegsOneImm {
                    a: R1,
                    b: R2,
                    x: -5i64 as u64,
                },
            )
        })
        .and_then(|g| {
            g.push(
                Opcode::load_imm_64,
                Args::OneRegExtImm {
                    a: R3,
                    x: u64::MAX - 1,
                },
            )
        })
        .and_then(|g| {
            g.push(
                Opcode::store_imm_u32,
                Args::TwoImms {
                    x: 0xFFFF_FFFF_FFFF_0000,
                    y: 7,
                },
            )
        })
        .and_then(|g| {
            g.push(
                Opcode::branch_lt_s_imm,
                Args::OneRegImmOffset {
                    a: R4,
                    x: u64::MAX,
                    t: l2.into(),
                },
            )
        })
        .and_then(|g| {
            g.push(
                Opcode::load_imm_jump_ind,
                Args::TwoRegsTwoImms {
                    a: R0,
                    b: R0,
                    x: 1,
                    y: 2,
                },
            )
        })
        .and_then(|g| g.push(Opcode::ecalli, Args::OneImm { x: u64::MAX }))
        .expect("valid pushes");
    assert_eq!(typed.build().unwrap(), generic.build().unwrap());
}

#[test]
fn known_encodings() {
    // Octets as in TESTCASES.md (PolkaVM's assembler), plus the blob header.
    let cases: &[(&str, &[u8])] = &[
        ("i32 r9 = r7 + r8", &[0xbe, 0x87, 0x09]),
        ("r7 = -10", &[0x33, 0x07, 0xf6]),
        (
            "r7 = 0xdeadbeef",
            &[0x14, 0x07, 0xef, 0xbe, 0xad, 0xde, 0, 0, 0, 0],
        ),
        ("u8 [r7 + 0x1001] = a1", &[0x78, 0x78, 0x01, 0x10]),
        (
            "u16 [r7 + 256] = 0x1234",
            &[0x47, 0x27, 0x00, 0x01, 0x34, 0x12],
        ),
        (
            "u32 [0x20000] = 0x12345678",
            &[0x20, 0x03, 0, 0, 2, 0x78, 0x56, 0x34, 0x12],
        ),
        (
            "tmp = r7, r7 = 1234, jump [tmp + 0x64]",
            &[0xb4, 0x77, 0x02, 0xd2, 0x04, 0x64],
        ),
        ("r8 = 1234, jump [r7 + 0]", &[0xb4, 0x78, 0x02, 0xd2, 0x04]),
        ("r7 = 0x64 if r10 == 0", &[0x93, 0xa7, 0x64]),
        (
            "i32 r9 = 0xffffffffffff0001 >>a r8",
            &[0x92, 0x89, 0x01, 0x00, 0xff],
        ),
        ("jump [r0 + 0]", &[0x32, 0x00]),
        ("r0 = r0", &[0x64, 0x00]),
        ("ecalli 4294967295", &[0x0a, 0xff]),
        ("ecalli 128", &[0x0a, 0x80, 0x00]),
        ("load_imm_64 r7, 5", &[0x14, 0x07, 5, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for (text, code) in cases {
        let blob = assemble(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let parts = deblob(&blob).unwrap();
        assert_eq!(parts.code, *code, "{text}");
    }
}

#[test]
fn labels_resolve_forward_and_backward() {
    let source = "
        // a counting loop
        .jump_table @exit
        r7 = 0
        @loop:
            r7 = r7 + 1          ; increment
            jump @loop if r7 <u 3
        r8 = 2                   # jump-table address of @exit
        jump [r8 + 0]
        @exit: trap
    ";
    let built = assemble_program(source).expect("assembles");
    let parts = deblob(&built.blob).unwrap();
    // r7 = 0 (2 octets: a zero immediate takes none), the fallthrough the
    // assembler puts before @loop so that it starts a basic block (1),
    // r7 = r7 + 1 (3), branch (4), r8 = 2 (3), jump (2), trap (1)
    assert_eq!(built.item_pcs, vec![0, 2, 3, 6, 10, 13, 15, 16]);
    assert_eq!(parts.jump_table, vec![15]);
    let branch = decode_instruction(parts.code, &parts.bitmask, 6);
    assert_eq!(
        Args::from_operands(&branch.operands),
        Some(Args::OneRegImmOffset {
            a: R7,
            x: 3,
            t: Target::Absolute(3)
        })
    );
}

#[test]
fn far_jumps_grow_their_offset_field() {
    // 200 three-octet instructions between a jump and its target: the
    // offset needs two octets, and the layout must settle on that.
    let mut b = ProgramBuilder::new();
    let end = b.new_label();
    let start = b.here();
    b.jump(end);
    for _ in 0..200 {
        b.add_64(R1, R1, R2);
    }
    b.bind(end);
    b.jump(start);
    let built = b.build_program().unwrap();
    assert_eq!(built.item_pcs[1], 3, "jump takes opcode + 2 offset octets");
    assert_eq!(built.pc(end), Some(603));
    let parts = deblob(&built.blob).unwrap();
    assert_eq!(&parts.code[..3], &[40, 0x5b, 0x02]);
    assert_eq!(&parts.code[603..], &[40, 0xa5, 0xfd]); // -603
}

fn error_of(source: &str) -> (usize, AsmErrorKind) {
    let error = assemble(source).expect_err(source);
    assert!(
        error
            .to_string()
            .starts_with(&format!("line {}", error.line))
    );
    (error.line, error.kind)
}

#[test]
fn assembler_errors_name_the_line() {
    let (line, kind) = error_of("trap\nr13 = 5");
    assert_eq!(line, 2);
    assert!(
        matches!(kind, AsmErrorKind::UnknownInstruction(_)),
        "{kind:?}"
    );

    let (line, kind) = error_of("\n\nr7 = r8 & 0xffffffff");
    assert_eq!(line, 3);
    assert!(
        matches!(
            kind,
            AsmErrorKind::BadOperand {
                opcode: Opcode::and_imm,
                ..
            }
        ),
        "{kind:?}"
    );

    let (line, kind) = error_of("jump @nowhere\ntrap");
    assert_eq!(
        (line, kind),
        (1, AsmErrorKind::UndefinedLabel("nowhere".into()))
    );

    let (line, kind) = error_of("@a:\ntrap\n@a:\ntrap");
    assert_eq!((line, kind), (3, AsmErrorKind::DuplicateLabel("a".into())));

    let (line, kind) = error_of("trap\n.frobnicate 1");
    assert_eq!(line, 2);
    assert!(matches!(kind, AsmErrorKind::BadDirective(_)));

    let (line, kind) = error_of(".insn 1ff");
    assert_eq!(line, 1);
    assert!(matches!(kind, AsmErrorKind::BadDirective(_)));

    let (line, kind) = error_of("r7 = 99999999999999999999999");
    assert_eq!(line, 1);
    assert!(matches!(kind, AsmErrorKind::BadNumber(_)));

    let (line, kind) = error_of("r7 = 1 $ 2");
    assert_eq!((line, kind), (1, AsmErrorKind::UnexpectedChar('$')));

    let (line, kind) = error_of("r7 = 5, jump [r7 + 0]");
    assert_eq!(line, 1);
    assert!(matches!(
        kind,
        AsmErrorKind::BadOperand {
            opcode: Opcode::load_imm_jump_ind,
            ..
        }
    ));

    let (line, kind) = error_of("u8 [0x100000000] = 1");
    assert_eq!(line, 1);
    assert!(matches!(
        kind,
        AsmErrorKind::BadOperand {
            opcode: Opcode::store_imm_u8,
            ..
        }
    ));

    let (line, kind) = error_of("trap\n.jump_table 300\n.jump_entry_size 1");
    assert_eq!(line, 2);
    assert!(matches!(
        kind,
        AsmErrorKind::Build(BuildError::JumpTableEntry {
            index: 0,
            value: 300
        })
    ));

    let (line, kind) = error_of("trap\njump 0x80000000");
    assert_eq!(line, 2);
    assert!(
        matches!(kind, AsmErrorKind::Build(BuildError::JumpTooFar { .. })),
        "{kind:?}"
    );
}

#[test]
fn builder_errors() {
    let mut b = ProgramBuilder::new();
    let l = b.new_label();
    b.jump(l);
    assert_eq!(b.build(), Err(BuildError::UnboundLabel(l)));
    b.bind(l).bind(l);
    assert_eq!(b.build(), Err(BuildError::LabelBoundTwice(l)));

    let mut other = ProgramBuilder::new();
    other.new_label();
    let foreign = other.new_label();
    let mut b = ProgramBuilder::new();
    b.bind(foreign);
    assert_eq!(b.build(), Err(BuildError::ForeignLabel(foreign)));
    let mut b = ProgramBuilder::new();
    b.jump(foreign);
    assert_eq!(b.build(), Err(BuildError::ForeignLabel(foreign)));
    let mut b = ProgramBuilder::new();
    b.trap().jump_table_entry(foreign);
    assert_eq!(b.build(), Err(BuildError::ForeignLabel(foreign)));

    let mut b = ProgramBuilder::new();
    assert!(matches!(
        b.push(Opcode::add_64, Args::NoArgs),
        Err(BuildError::WrongFormat {
            opcode: Opcode::add_64,
            expected: ArgFormat::ThreeRegs
        })
    ));
    assert!(matches!(
        b.push(Opcode::load_imm, Args::OneRegOneImm { a: R0, x: 1 << 40 }),
        Err(BuildError::ImmediateTooWide { value, .. }) if value == 1 << 40
    ));
    assert_eq!(Imm::new(0xFFFF_FFFF), None);
    assert_eq!(Imm::new(u64::MAX).map(Imm::value), Some(u64::MAX));

    let mut b = ProgramBuilder::new();
    b.trap().jump_table_entry(Target::Absolute(-1));
    assert!(matches!(
        b.build(),
        Err(BuildError::JumpTableEntry {
            index: 0,
            value: -1
        })
    ));
    let mut b = ProgramBuilder::new();
    b.trap().set_jump_entry_size(9);
    b.jump_table_entry(Target::Absolute(0));
    assert_eq!(b.build(), Err(BuildError::JumpEntrySize(9)));
}

#[test]
fn jump_table_entry_size_and_addresses() {
    let mut b = ProgramBuilder::new();
    let a = b.here();
    b.trap();
    let c = b.here();
    b.trap();
    assert_eq!(b.jump_table_entry(a), 2);
    assert_eq!(b.jump_table_entry(c), 4);
    assert_eq!(b.jump_table_entry(Target::Absolute(0x1_0000)), 6);
    let blob = b.build().unwrap();
    let parts = deblob(&blob).unwrap();
    assert_eq!(parts.jump_table, vec![0, 1, 0x1_0000]);
    assert_eq!(blob[1], 3, "entry size: fewest octets holding 0x10000");
    b.set_jump_entry_size(4);
    let blob4 = b.build().unwrap();
    assert_eq!(blob4[1], 4);
    assert_eq!(deblob(&blob4).unwrap().jump_table, parts.jump_table);
    assert_eq!(assemble(&disassemble(&blob4).unwrap()).unwrap(), blob4);
}

#[test]
fn non_canonical_code_round_trips_through_raw_lines() {
    let mut b = ProgramBuilder::new();
    b.raw_bytes(&[0xAA]) // octet before the first instruction start
        .raw_instruction(&[0x33, 0x07, 0xf6, 0xff]) // load_imm with an over-long immediate
        .raw_instruction(&[0xff]) // invalid opcode
        .raw_instruction(&[0x64, 0xdd]) // register nibbles above 12
        .raw_instruction(&[0x64; 30]) // skip capped at 24
        .trap();
    let blob = b.build().unwrap();
    let text = disassemble(&blob).unwrap();
    assert_eq!(text.matches(".insn").count(), 4, "{text}");
    assert_eq!(text.matches(".bytes").count(), 1, "{text}");
    assert!(text.contains("not canonical: load_imm r7, -10"), "{text}");
    assert_eq!(assemble(&text).unwrap(), blob, "{text}");
}

/// The disassembly listings of TESTCASES.md: every line assembles, at its
/// code offset, to the octets the listing shows, except where the vectors'
/// text prints a branch immediate as an unsigned 32-bit number (our syntax
/// takes immediates as 64-bit values; see the `asm` module docs).
#[test]
fn testcases_listings_assemble_to_their_octets() {
    let Ok(dir) = std::env::var("CAPBOX_PVM_VECTORS") else {
        eprintln!("CAPBOX_PVM_VECTORS not set: skipping");
        return;
    };
    // The variable names the `programs` directory (as CI sets it) or the
    // directory above it; TESTCASES.md sits in the latter.
    let dir = std::path::Path::new(&dir);
    let path = [dir.join("TESTCASES.md"), dir.join("../TESTCASES.md")]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no TESTCASES.md in or above {}", dir.display()));
    let listing = std::fs::read_to_string(path).expect("TESTCASES.md");
    let (mut matched, mut unsigned_imm) = (0, 0);
    let mut in_code = false;
    for line in listing.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let Some((pc, rest)) = line.split_once(": ").filter(|_| in_code) else {
            continue;
        };
        let Ok(pc) = pc.trim().parse::<usize>() else {
            continue;
        };
        // Octets are two hex digits each, then the text.
        let mut octets = Vec::new();
        let mut text = rest.trim_start();
        while let Some((word, tail)) = text.split_once(' ')
            && word.len() == 2
            && let Ok(byte) = u8::from_str_radix(word, 16)
        {
            octets.push(byte);
            text = tail.trim_start();
        }
        if octets.is_empty() {
            continue; // `invalid`: the implicit trap past the code
        }
        let pad = if pc == 0 {
            String::new()
        } else {
            format!(".bytes {}\n", vec!["00"; pc].join(" "))
        };
        match assemble(&format!("{pad}{text}")) {
            Ok(blob) => {
                let parts = deblob(&blob).unwrap();
                assert_eq!(&parts.code[pc..], &octets[..], "`{text}` at {pc}");
                matched += 1;
            }
            Err(error) => {
                assert!(
                    matches!(error.kind, AsmErrorKind::BadOperand { opcode, .. }
                        if opcode.format() == ArgFormat::OneRegImmOffset)
                        && text.contains(" 42949"),
                    "`{text}`: {error}"
                );
                unsigned_imm += 1;
            }
        }
    }
    eprintln!("{matched} listing lines match; {unsigned_imm} print unsigned 32-bit immediates");
    assert!(matched > 300);
}

fn arb_insn() -> impl Strategy<Value = (u8, Args)> {
    (0..ALL_OPCODES.len(), any::<u64>(), 0..3u8).prop_map(|(i, seed, t)| {
        let op = ALL_OPCODES[i];
        let target = Target::Absolute([0i64, 7, -5][t as usize]);
        (i as u8, sample_args(op.format(), seed, target))
    })
}

proptest! {
    #[test]
    fn random_programs_round_trip(insns in prop::collection::vec(arb_insn(), 1..40)) {
        let mut b = ProgramBuilder::new();
        let mut list = Vec::new();
        for (i, args) in insns {
            let insn = Insn::new(ALL_OPCODES[usize::from(i)], args).unwrap();
            b.push_insn(insn);
            list.push(insn);
        }
        check_program(&b, &list, &|t| match t {
            Target::Absolute(v) => v,
            Target::Label(_) => unreachable!(),
        });
    }

    #[test]
    fn random_blobs_round_trip(code in prop::collection::vec(any::<u8>(), 0..64),
                               mask in prop::collection::vec(any::<u8>(), 8),
                               table in prop::collection::vec(0u32..80, 0..4)) {
        let mut b = ProgramBuilder::new();
        for (i, &byte) in code.iter().enumerate() {
            if mask[i % 8] & (1 << (i / 8 % 8)) != 0 {
                b.raw_instruction(&[byte]);
            } else {
                b.raw_bytes(&[byte]);
            }
        }
        for entry in table {
            b.jump_table_entry(Target::Absolute(i64::from(entry)));
        }
        let blob = b.build().unwrap();
        let text = disassemble(&blob).unwrap();
        prop_assert_eq!(assemble(&text).unwrap(), blob, "{}", text);
    }
}

#[test]
fn disassembly_text_is_stable() {
    let mut b = ProgramBuilder::new();
    let top = b.new_label();
    let out = b.new_label();
    b.jump_table_entry(out);
    b.load_imm(R7, -10).fallthrough();
    b.bind(top);
    b.add_imm_64(R7, R7, 1)
        .store_ind_u8(R7, R1, -4)
        .branch_lt_s_imm(R7, 0, top)
        .load_imm_jump_ind(R8, R8, 0x1000, 2);
    b.bind(out);
    b.load_imm_64(R9, 5).ecalli(3u32);
    halt(&mut b);
    let text = disassemble(&b.build().unwrap()).unwrap();
    let expected = "\
.jump_table @3
@0:
    r7 = -10                           // 0: 33 07 f6
    fallthrough                        // 3: 01
@1:
    r7 = r7 + 1                        // 4: 95 77 01
    u8 [r1 - 4] = r7                   // 7: 78 17 fc
    jump @1 if r7 <s 0                 // 10: 57 07 fa
@2:
    tmp = r8, r8 = 0x1000, jump [tmp + 2] // 13: b4 88 02 00 10 02
@3:
    load_imm_64 r9, 5                  // 19: 14 09 05 00 00 00 00 00 00 00
    ecalli 3                           // 29: 0a 03
    jump [r0 + 0]                      // 31: 32 00
";
    assert_eq!(text, expected);
}

fn halt(b: &mut ProgramBuilder) {
    b.jump_ind(R0, 0);
}

/// A label that is jumped to right after an instruction that does not end
/// a basic block gets a `fallthrough` (else the jump panics), with a note;
/// a label nobody jumps to, or one after a terminator, gets none; and
/// `.auto_fallthrough off` keeps the text exact.
#[test]
fn jumped_to_labels_start_basic_blocks() {
    let looping = "r7 = 3\n@loop:\nr7 = r7 - 1\njump @loop if r7 != 0\nhalt\n";
    let assembled = assemble_with_notes(looping).expect("assembles");
    assert_eq!(assembled.notes.len(), 1, "{:?}", assembled.notes);
    assert_eq!(assembled.notes[0].line, 2);
    assert_eq!(assembled.notes[0].label, "loop");
    let program = capbox_shared::pvm::Program::from_blob(&assembled.program.blob).unwrap();
    let loop_pc = assembled.program.item_pcs[2];
    assert!(program.is_basic_block_start(loop_pc));

    // Unused label, and a label after a terminator: nothing inserted.
    for text in [
        "r7 = 3\n@unused:\nr7 = r7 - 1\nhalt\n",
        "jump @next\n@next:\nhalt\n",
    ] {
        let assembled = assemble_with_notes(text).expect(text);
        assert!(assembled.notes.is_empty(), "{text}: {:?}", assembled.notes);
    }
    // A forward use counts too, and the jump table.
    let forward = "jump @a if r7 == 0\nr8 = 1\n@a:\nhalt\n";
    assert_eq!(assemble_with_notes(forward).unwrap().notes.len(), 1);
    let table = ".jump_table @b\nr8 = 1\n@b:\nhalt\n";
    assert_eq!(assemble_with_notes(table).unwrap().notes.len(), 1);

    let exact = format!(".auto_fallthrough off\n{looping}");
    let assembled = assemble_with_notes(&exact).expect("assembles");
    assert!(assembled.notes.is_empty());
    let program = capbox_shared::pvm::Program::from_blob(&assembled.program.blob).unwrap();
    assert!(!program.is_basic_block_start(assembled.program.item_pcs[1]));
    // The disassembler marks such a label and its text assembles back
    // octet for octet.
    let text = disassemble(&assembled.program.blob).unwrap();
    assert!(text.starts_with(".auto_fallthrough off"), "{text}");
    assert!(text.contains("not a basic-block start"), "{text}");
    assert_eq!(assemble(&text).unwrap(), assembled.program.blob);
    assert!(assemble(".auto_fallthrough maybe\ntrap").is_err());
}

/// `halt`/`ret` jump to r0 (the halt address an endpoint starts with),
/// `jump [rA]` has no displacement, `rA = rB - n` adds -n.
#[test]
fn sugar_people_try_first() {
    let same = [
        ("halt", "jump [r0 + 0]"),
        ("ret", "jump [r0 + 0]"),
        ("jump [r0]", "jump [r0 + 0]"),
        ("r7 = u8 [r8]", "r7 = u8 [r8 + 0]"),
        ("u32 [r8] = r7", "u32 [r8 + 0] = r7"),
        ("r7 = r7 - 1", "r7 = r7 + -1"),
        ("r7 = r8 - -5", "r7 = r8 + 5"),
        ("i32 r7 = r7 - 1", "i32 r7 = r7 + -1"),
        ("i32 r7 = r7 - -0x80000000", "i32 r7 = r7 + -0x80000000"),
    ];
    for (sugar, plain) in same {
        assert_eq!(
            assemble(sugar).unwrap_or_else(|e| panic!("{sugar}: {e}")),
            assemble(plain).unwrap_or_else(|e| panic!("{plain}: {e}")),
            "{sugar} vs {plain}"
        );
    }
    // 2^31 cannot be added to a 64-bit register as an immediate.
    assert!(assemble("r7 = r7 - 0x7fffffff").is_ok());
    assert!(assemble("r7 = r7 - -0x80000000").is_err());
    assert!(assemble("r7 = r7 - 0x80000001").is_err());
}
