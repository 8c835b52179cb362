//! Interpreter edge cases: gas blocks and out-of-gas, host-call resumption,
//! halts, faults, invalid jumps and the decoder's implicit traps.

mod pvm_support;

use capbox_shared::pvm::{Exit, HALT_ADDRESS, Machine, Memory, Opcode, Program};
use pvm_support::*;

/// `r7 += 1` three times, then `trap`: one block of four instructions.
fn straight_line() -> Vec<Ins> {
    vec![
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1),
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1),
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1),
        no_args(Opcode::trap),
    ]
}

#[test]
fn gas_is_charged_per_block_on_entry() {
    let (exit, m) = run(&straight_line(), [0; 13], 10);
    assert_eq!(exit, Exit::Panic);
    assert_eq!(m.gas, 6);
    assert_eq!(m.regs[7], 3);
    assert_eq!(m.pc, 18, "pc stays on the trap");
}

#[test]
fn exactly_enough_gas_runs_the_block() {
    let (exit, m) = run(&straight_line(), [0; 13], 4);
    assert_eq!((exit, m.gas, m.regs[7]), (Exit::Panic, 0, 3));
}

#[test]
fn out_of_gas_mid_block_stops_at_the_unpaid_instruction() {
    let (exit, m) = run(&straight_line(), [0; 13], 2);
    assert_eq!(exit, Exit::OutOfGas);
    assert_eq!(m.regs[7], 2, "the two paid instructions ran");
    assert_eq!(m.pc, 12, "pc points at the third add");
    assert_eq!(m.gas, -1, "the Graypaper's ϱ' = ϱ - 1");
}

#[test]
fn zero_and_negative_gas_run_nothing() {
    let (exit, m) = run(&straight_line(), [0; 13], 0);
    assert_eq!((exit, m.pc, m.gas, m.regs[7]), (Exit::OutOfGas, 0, -1, 0));
    let (exit, m) = run(&straight_line(), [0; 13], -5);
    assert_eq!((exit, m.pc, m.gas), (Exit::OutOfGas, 0, -6));
    let (exit, m) = run(&straight_line(), [0; 13], i64::MIN);
    assert_eq!((exit, m.gas), (Exit::OutOfGas, i64::MIN), "saturates");
    let program = program(&straight_line());
    let mut m = Machine::new([0; 13], 1, i64::MIN, Memory::new());
    assert_eq!(m.run(&program), Exit::OutOfGas, "not an instruction start");
    assert_eq!(m.gas, i64::MIN);
}

#[test]
fn out_of_gas_resumes_with_more_gas() {
    let program = program(&straight_line());
    let mut m = Machine::new([0; 13], 0, 1, test_memory());
    assert_eq!(m.run(&program), Exit::OutOfGas);
    assert_eq!((m.pc, m.regs[7]), (6, 1));
    m.gas = 100;
    assert_eq!(m.run(&program), Exit::Panic);
    assert_eq!((m.regs[7], m.gas), (3, 97));
}

#[test]
fn fault_in_a_paid_block_keeps_the_block_charge() {
    // store to an unmapped page, then two more instructions.
    let code = vec![
        two_imms(Opcode::store_imm_u8, 0x30000, 1),
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1),
        no_args(Opcode::trap),
    ];
    let (exit, m) = run(&code, [0; 13], 10);
    assert_eq!(exit, Exit::PageFault(0x30000));
    assert_eq!((m.pc, m.gas, m.regs[7]), (0, 7, 0));
}

#[test]
fn host_call_resumes_after_ecalli_without_double_charging() {
    let code = vec![
        reg_imm(Opcode::load_imm, 7, 1),
        ecalli(42),
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1),
        no_args(Opcode::trap),
    ];
    let program = program(&code);
    let mut m = Machine::new([0; 13], 0, 100, test_memory());
    assert_eq!(m.run(&program), Exit::HostCall(42));
    assert_eq!(m.pc, 6 + 5, "pc is past the ecalli");
    // The whole block, through the ecalli, is charged on entry (departure
    // 12), as PolkaVM does; resuming charges nothing.
    assert_eq!(m.gas, 96, "the whole block: load_imm, ecalli, add, trap");
    m.regs[7] = 10; // the host's reply
    assert_eq!(m.run(&program), Exit::Panic);
    assert_eq!((m.regs[7], m.gas), (11, 96));
}

#[test]
fn the_rest_of_a_paid_block_runs_after_the_host_used_up_the_gas() {
    let code = vec![
        ecalli(1),
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1),
        no_args(Opcode::trap),
    ];
    let program = program(&code);
    let mut m = Machine::new([0; 13], 0, 3, test_memory());
    assert_eq!(m.run(&program), Exit::HostCall(1));
    assert_eq!(m.gas, 0);
    // Already paid: no out-of-gas although nothing is left.
    assert_eq!(m.run(&program), Exit::Panic);
    assert_eq!((m.regs[7], m.gas, m.pc), (1, 0, 11), "at the trap");
}

#[test]
fn moving_pc_after_a_host_call_charges_as_usual() {
    let code = vec![
        ecalli(1),
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1),
        no_args(Opcode::trap),
    ];
    let program = program(&code);
    let mut m = Machine::new([0; 13], 0, 10, test_memory());
    assert_eq!(m.run(&program), Exit::HostCall(1));
    assert_eq!(m.gas, 7);
    // Restarting at the ecalli pays for its block again.
    m.pc = 0;
    assert_eq!(m.run(&program), Exit::HostCall(1));
    assert_eq!(m.gas, 4);
    // A stepping (unpayable) block is not prepaid: with 1 gas the ecalli
    // runs, then the add cannot be paid.
    let mut m = Machine::new([0; 13], 0, 1, test_memory());
    assert_eq!(m.run(&program), Exit::HostCall(1));
    assert_eq!(m.gas, 0);
    assert_eq!(m.run(&program), Exit::OutOfGas);
    assert_eq!((m.gas, m.regs[7]), (-1, 0));
}

#[test]
fn djump_to_the_halt_address_halts() {
    let mut regs = [0; 13];
    regs[0] = u64::from(HALT_ADDRESS);
    let code = vec![
        reg_imm(Opcode::load_imm, 7, 5),
        reg_imm(Opcode::jump_ind, 0, 0),
    ];
    let (exit, m) = run(&code, regs, 10);
    assert_eq!((exit, m.pc, m.gas, m.regs[7]), (Exit::Halt, 6, 8, 5));
}

#[test]
fn dynamic_jumps_use_the_jump_table() {
    let code = vec![
        reg_imm(Opcode::jump_ind, 7, 0),           // 0
        no_args(Opcode::trap),                     // 6
        reg_imm(Opcode::load_imm, 8, 99),          // 7: block start
        no_args(Opcode::trap),                     // 13
        two_regs_imm(Opcode::add_imm_64, 9, 9, 1), // 14: block start
        two_regs_imm(Opcode::add_imm_64, 9, 9, 1), // 20: mid block
        no_args(Opcode::trap),
    ];
    let table = [7, 20, 1000];
    let program = Program::from_blob(&blob_with_table(&code, &table)).unwrap();
    let run_with = |r7: u64| {
        let mut regs = [0; 13];
        regs[7] = r7;
        let mut m = Machine::new(regs, 0, 100, Memory::new());
        (m.run(&program), m)
    };
    let (exit, m) = run_with(2);
    assert_eq!((exit, m.regs[8], m.pc), (Exit::Panic, 99, 13));
    for bad in [0, 1, 3, 4, 6, 8, u64::from(u32::MAX), 0xFFFF_0002] {
        let (exit, m) = run_with(bad);
        assert_eq!((exit, m.pc), (Exit::Panic, 0), "address {bad}");
    }
    // 2^32 + 2 wraps to 2.
    let (exit, m) = run_with((1 << 32) + 2);
    assert_eq!((exit, m.regs[8]), (Exit::Panic, 99));
}

#[test]
fn static_jumps_must_target_block_starts() {
    let code = vec![
        offset(Opcode::jump, 10),                  // 0 → 10 (mid block)
        no_args(Opcode::trap),                     // 5
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1), // 6: block start
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1), // 12: mid block
        no_args(Opcode::trap),
    ];
    let (exit, m) = run(&code, [0; 13], 100);
    assert_eq!((exit, m.pc, m.regs[7]), (Exit::Panic, 0, 0));
    let mut code = code;
    code[0] = offset(Opcode::jump, 6);
    let (exit, m) = run(&code, [0; 13], 100);
    assert_eq!((exit, m.pc, m.regs[7]), (Exit::Panic, 18, 2));
    // Out of the code, or backwards past 0.
    code[0] = offset(Opcode::jump, -3);
    assert_eq!(run(&code, [0; 13], 100).0, Exit::Panic);
    code[0] = offset(Opcode::jump, 1 << 30);
    assert_eq!(run(&code, [0; 13], 100).0, Exit::Panic);
}

#[test]
fn load_imm_jump_sets_its_register_even_when_the_target_is_bad() {
    let code = vec![
        reg_imm_offset(Opcode::load_imm_jump, 7, 77, 3),
        no_args(Opcode::trap),
    ];
    let (exit, m) = run(&code, [0; 13], 10);
    assert_eq!((exit, m.regs[7], m.pc), (Exit::Panic, 77, 0));
}

#[test]
fn branches_take_and_fall_through() {
    // if r7 < 5 { r8 = 1 } else { r8 = 2 }
    let code = vec![
        reg_imm_offset(Opcode::branch_lt_u_imm, 7, 5, 17), // 0 → 17
        reg_imm(Opcode::load_imm, 8, 2),                   // 10
        no_args(Opcode::trap),                             // 16
        reg_imm(Opcode::load_imm, 8, 1),                   // 17
        no_args(Opcode::trap),                             // 23
    ];
    let (exit, m) = run(&code, [0; 13], 100);
    assert_eq!(
        (exit, m.pc, m.regs[8], m.gas),
        (Exit::Panic, 23, 1, 97),
        "taken"
    );
    let mut regs = [0; 13];
    regs[7] = 9;
    let (exit, m) = run(&code, regs, 100);
    assert_eq!(
        (exit, m.pc, m.regs[8], m.gas),
        (Exit::Panic, 16, 2, 97),
        "not taken"
    );
    // A target that is not a block start panics at the branch.
    let mut code = code;
    code[0] = reg_imm_offset(Opcode::branch_lt_u_imm, 7, 5, 16);
    let (exit, m) = run(&code, [0; 13], 100);
    assert_eq!((exit, m.pc, m.regs[8]), (Exit::Panic, 0, 0));
}

#[test]
fn a_long_skip_lands_on_an_implicit_trap() {
    // add_64 followed by 29 octets that are not instruction starts.
    let mut ins = three_regs(Opcode::add_64, 9, 7, 8);
    ins.extend([0xAA; 27]);
    let code = vec![ins, no_args(Opcode::fallthrough)];
    let mut regs = [0; 13];
    regs[7] = 1;
    regs[8] = 2;
    let (exit, m) = run(&code, regs, 100);
    assert_eq!((exit, m.pc, m.regs[9]), (Exit::Panic, 25, 3));
}

#[test]
fn running_off_the_end_traps_at_the_code_length() {
    let code = vec![two_regs_imm(Opcode::add_imm_64, 7, 7, 1)];
    let (exit, m) = run(&code, [0; 13], 100);
    assert_eq!((exit, m.pc, m.gas), (Exit::Panic, 6, 98));
}

#[test]
fn starting_inside_an_instruction_traps() {
    let program = program(&straight_line());
    let mut m = Machine::new([0; 13], 3, 5, Memory::new());
    assert_eq!(m.run(&program), Exit::Panic);
    assert_eq!((m.pc, m.gas), (3, 4));
    let mut m = Machine::new([0; 13], 1 << 31, 0, Memory::new());
    assert_eq!(m.run(&program), Exit::OutOfGas);
}

#[test]
fn invalid_opcodes_behave_as_trap() {
    let code = vec![
        two_regs_imm(Opcode::add_imm_64, 7, 7, 1),
        vec![2],
        vec![255],
    ];
    let (exit, m) = run(&code, [0; 13], 100);
    assert_eq!((exit, m.pc, m.regs[7]), (Exit::Panic, 6, 1));
}

#[test]
fn empty_program_traps_at_zero() {
    let program = Program::from_blob(&[0, 0, 0]).unwrap();
    let mut m = Machine::new([0; 13], 0, 10, Memory::new());
    assert_eq!(m.run(&program), Exit::Panic);
    assert_eq!((m.pc, m.gas), (0, 9));
}

#[test]
fn memory_traps() {
    let mut regs = [0; 13];
    regs[8] = 0xABCD;
    let cases: [(Ins, Exit); 6] = [
        // Below 64 KiB: panic.
        (reg_imm(Opcode::store_u8, 8, 0x100), Exit::Panic),
        (reg_imm(Opcode::load_u8, 8, 0xFFFF), Exit::Panic),
        // Unmapped: fault with the page.
        (
            reg_imm(Opcode::load_u32, 8, 0x40123),
            Exit::PageFault(0x40000),
        ),
        // Read-only: stores fault, loads work.
        (
            reg_imm(Opcode::store_u16, 8, 0x21010),
            Exit::PageFault(0x21000),
        ),
        // Straddling writable → read-only: the first unwritable page.
        (
            reg_imm(Opcode::store_u32, 8, 0x20FFE),
            Exit::PageFault(0x21000),
        ),
        // Wrapping past 2^32: the unmapped top page comes first.
        (
            reg_imm(Opcode::load_u64, 8, -2),
            Exit::PageFault(0xFFFF_F000),
        ),
    ];
    for (ins, want) in cases {
        let code = vec![ins.clone(), no_args(Opcode::trap)];
        let (exit, m) = run(&code, regs, 10);
        assert_eq!(exit, want, "{ins:?}");
        assert_eq!(m.pc, 0);
        assert_eq!(m.regs, regs, "state untouched");
        assert_eq!(m.memory.dirty_pages().count(), 0);
    }
}

#[test]
fn a_wrapping_access_reaching_low_memory_panics() {
    let program = program(&[reg_imm(Opcode::load_u64, 7, -2), no_args(Opcode::trap)]);
    let memory = Memory::from_page_map(&[capbox_shared::pvm::PageMapEntry {
        address: 0xFFFF_F000,
        length: 0x1000,
        access: capbox_shared::pvm::Access::Read,
    }])
    .unwrap();
    let mut m = Machine::new([0; 13], 0, 10, memory);
    assert_eq!(m.run(&program), Exit::Panic);
    assert_eq!(m.pc, 0);
}

#[test]
fn loads_may_straddle_adjacent_regions() {
    let program = program(&[reg_imm(Opcode::load_u32, 7, 0x20FFE), no_args(Opcode::trap)]);
    let mut memory = test_memory();
    memory.initialize(0x20FFE, &[1, 2, 3, 4]).unwrap();
    let mut m = Machine::new([0; 13], 0, 10, memory);
    assert_eq!(m.run(&program), Exit::Panic);
    assert_eq!(m.regs[7], 0x0403_0201);
}

#[test]
fn stores_mark_pages_dirty() {
    let code = vec![
        two_imms(Opcode::store_imm_u32, 0x20FFE, -1),
        no_args(Opcode::trap),
    ];
    let program = program(&code);
    let mut memory = Memory::from_page_map(&[capbox_shared::pvm::PageMapEntry {
        address: 0x20000,
        length: 0x3000,
        access: capbox_shared::pvm::Access::Write,
    }])
    .unwrap();
    memory.initialize(0x22000, &[5]).unwrap();
    let mut m = Machine::new([0; 13], 0, 10, memory);
    assert_eq!(m.run(&program), Exit::Panic);
    let dirty: Vec<u32> = m.memory.dirty_pages().map(|(page, _)| page).collect();
    assert_eq!(dirty, [0x20000, 0x21000], "initialize does not dirty");
    let (_, page) = m.memory.dirty_pages().nth(1).unwrap();
    assert_eq!(&page[..2], &[0xFF, 0xFF]);
    m.memory.clear_dirty();
    assert_eq!(m.memory.dirty_pages().count(), 0);
}

#[test]
fn program_reports_basic_blocks() {
    let program = program(&straight_line());
    assert!(program.is_basic_block_start(0));
    assert!(!program.is_basic_block_start(6));
    assert!(
        !program.is_basic_block_start(18),
        "trap follows no terminator"
    );
    assert!(!program.is_basic_block_start(3), "not an instruction");
    assert_eq!(program.code_len(), 19);
    assert_eq!(
        program.instruction_count(),
        5,
        "four + the implicit end trap"
    );
}

#[test]
fn program_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Program>();
    let program = std::sync::Arc::new(program(&straight_line()));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let program = program.clone();
            std::thread::spawn(move || {
                let mut m = Machine::new([0; 13], 0, 100, Memory::new());
                (m.run(&program), m.regs[7])
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), (Exit::Panic, 3));
    }
}

#[test]
fn instructions_lists_what_a_disassembler_shows() {
    use capbox_shared::pvm::{Operands, deblob, instructions};
    let blob = blob(&[
        three_regs(Opcode::add_64, 9, 7, 8),
        offset(Opcode::jump, -3),
        vec![2],
    ]);
    let parts = deblob(&blob).unwrap();
    let listed: Vec<_> = instructions(&parts).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].opcode, Some(Opcode::add_64));
    assert_eq!(
        listed[0].operands,
        Operands::ThreeRegs {
            ra: 7,
            rb: 8,
            rd: 9
        }
    );
    assert_eq!(listed[1].pc, 3);
    assert_eq!(listed[1].operands, Operands::OneOffset { target: 0 });
    assert_eq!(listed[2].opcode, None, "2 is not an opcode");
    assert_eq!(listed[2].next_pc(), 9);
}
