//! Parses and runs arbitrary program blobs with arbitrary registers, page
//! maps, memory contents and small gas budgets. The interpreter must never
//! panic and never hang (gas bounds every run; host calls are resumed a
//! bounded number of times).
//!
//! Input layout (missing octets read as zero):
//!
//! | octets | meaning |
//! |---|---|
//! | 0..2   | gas, `u16 % 4096` |
//! | 2      | mode: bit 0 = the rest is raw code (a blob is built around it), bits 1..=6 = page-map choice, bit 7 = the standard layout with a heap instead (sbrk bounded by a 1 MiB budget) |
//! | 3      | initial pc (small, so it often lands inside the code) |
//! | 4..17  | one selector per register (an interesting value, or a nearby one) |
//! | 17..   | the blob (or, in raw-code mode, code followed by its bitmask) |
#![no_main]

use capbox_shared::pvm::{
    Access, Exit, HALT_ADDRESS, Machine, Memory, PageMapEntry, Program, StandardLayout,
    encode_natural,
};
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 17;

/// Register values that sit on semantic edges: zero, sign boundaries,
/// page and region starts, the halt address, jump-table addresses.
const INTERESTING: [u64; 16] = [
    0,
    1,
    2,
    4,
    u64::MAX,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    i64::MIN as u64,
    i64::MAX as u64,
    0x1_0000,
    0x2_0000,
    0x2_0FFF,
    0xFFFF_F000,
    HALT_ADDRESS as u64,
    0xFFFF_FFFF_8000_0000,
];

/// Candidate regions; each bit of the page-map choice maps one of them.
const REGIONS: [(u32, u32, Access); 6] = [
    (0x1_0000, 0x1000, Access::Read),
    (0x2_0000, 0x2000, Access::Write),
    (0x2_2000, 0x1000, Access::Read),
    (0x8000_0000, 0x1000, Access::Write),
    (0xFFFF_E000, 0x2000, Access::Write),
    (0xFFFF_0000, 0x1000, Access::Read),
];

fn byte(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

/// Wraps raw code and a bitmask taken from the input into a valid-looking
/// blob, so most inputs reach the decoder and interpreter.
fn blob_from_code(rest: &[u8]) -> Vec<u8> {
    let code_len = rest.len() * 8 / 9;
    let (code, mask_src) = rest.split_at(code_len);
    let mut mask: Vec<u8> = mask_src
        .iter()
        .copied()
        .take(code_len.div_ceil(8))
        .collect();
    mask.resize(code_len.div_ceil(8), 0xFF);
    if code_len % 8 != 0
        && let Some(last) = mask.last_mut()
    {
        *last &= (1u8 << (code_len % 8)) - 1;
    }
    // A two-entry jump table pointing at the first two code offsets that
    // the bitmask marks, to exercise dynamic jumps.
    let starts: Vec<u8> = (0..code_len.min(256))
        .filter(|&i| mask[i / 8] & (1 << (i % 8)) != 0)
        .take(2)
        .map(|i| i as u8)
        .collect();
    let mut blob = Vec::with_capacity(rest.len() + 16);
    encode_natural(starts.len() as u64, &mut blob);
    blob.push(1);
    encode_natural(code_len as u64, &mut blob);
    blob.extend_from_slice(&starts);
    blob.extend_from_slice(code);
    blob.extend_from_slice(&mask);
    blob
}

fuzz_target!(|data: &[u8]| {
    let gas = i64::from(u16::from_le_bytes([byte(data, 0), byte(data, 1)]) % 4096);
    let mode = byte(data, 2);
    let pc = u32::from(byte(data, 3));
    let mut regs = [0u64; 13];
    for (i, reg) in regs.iter_mut().enumerate() {
        let selector = byte(data, 4 + i);
        let base = INTERESTING[usize::from(selector & 15)];
        *reg = base.wrapping_add(u64::from(selector >> 4)).wrapping_sub(8);
    }
    let rest = data.get(HEADER..).unwrap_or(&[]);
    let blob = if mode & 1 != 0 {
        blob_from_code(rest)
    } else {
        rest.to_vec()
    };
    let Ok(program) = Program::from_blob(&blob) else {
        return;
    };
    let entries: Vec<PageMapEntry> = REGIONS
        .iter()
        .enumerate()
        .filter(|(i, _)| (mode >> (i + 1)) & 1 != 0)
        .map(|(_, &(address, length, access))| PageMapEntry {
            address,
            length,
            access,
        })
        .collect();
    let memory = if mode & 0x80 != 0 {
        // The kernel's shape: ro data, rw data + heap that sbrk grows, stack.
        let Ok(layout) = StandardLayout::new(64, 4096, 1, 4096, 0) else {
            return;
        };
        let ro = &blob[..blob.len().min(64)];
        let Ok(mut memory) = Memory::standard(&layout, ro, ro, &[]) else {
            return;
        };
        memory.set_sbrk_budget(1 << 20);
        memory
    } else {
        let mut memory = Memory::from_page_map(&entries).expect("candidate regions never overlap");
        // Seed readable memory with the code itself so loads see non-zero data.
        for entry in &entries {
            let _ = memory.initialize(entry.address, &blob[..blob.len().min(64)]);
        }
        memory
    };
    let mut machine = Machine::new(regs, pc, gas, memory);
    for _ in 0..8 {
        let gas_before = machine.gas;
        let exit = machine.run(&program);
        assert!(
            machine.gas <= gas_before,
            "gas grew: {gas_before} -> {}",
            machine.gas
        );
        match exit {
            Exit::HostCall(_) | Exit::Slice => continue,
            Exit::OutOfGas => assert!(machine.gas < 0, "out of gas with {} left", machine.gas),
            Exit::Halt | Exit::Panic | Exit::PageFault(_) => assert!(machine.gas >= 0),
        }
        break;
    }
});
