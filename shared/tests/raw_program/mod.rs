//! Raw PVM programs from arbitrary octets, shared by the `diff_raw` fuzz
//! target and the anan-as differential test (both compare capbox against
//! other PVMs on programs no assembler would write).

use capbox_shared::pvm::encode_natural;

/// Where both harnesses map the read-write data page.
pub const RW: u32 = 0x2_0000;
/// The address a register starts at to make `jump_ind` halt.
pub const HALT: u64 = 0xFFFF_0000;

/// One program built from input octets.
pub struct RawProgram {
    /// The code blob (jump table, code, bitmask).
    pub blob: Vec<u8>,
    /// The initial registers.
    pub regs: [u64; 13],
    /// The code octets (a `trap` appended).
    pub code: Vec<u8>,
    /// Which code octets start an instruction.
    pub starts: Vec<bool>,
}

impl RawProgram {
    /// Whether an instruction starts with `opcode`.
    pub fn has_opcode(&self, opcode: impl Fn(u8) -> bool) -> bool {
        self.code
            .iter()
            .zip(&self.starts)
            .any(|(&op, &start)| start && opcode(op))
    }

    /// Whether an instruction starts on an opcode PolkaVM 0.37's JamV1
    /// reads otherwise: 2 (its `unlikely` hint) and 101–111 (renumbered;
    /// no `sbrk`).
    pub fn polkavm_renumbers(&self) -> bool {
        self.has_opcode(|op| op == 2 || (101..=111).contains(&op))
    }
}

/// The program in `data`: 13 register selectors, a jump-table count and
/// its entries (one octet each), then code (8 of every 9 octets left, at
/// most 200) and its bitmask (one octet per 8 code octets). Octet 0 always
/// starts an instruction and a `trap` is appended. `None` when the input
/// is too short.
pub fn raw_program(data: &[u8]) -> Option<RawProgram> {
    let (selectors, rest) = data.split_at_checked(13)?;
    let regs: [u64; 13] = core::array::from_fn(|i| {
        let s = selectors[i];
        match s % 4 {
            0 => u64::from(s >> 2),
            1 => u64::from(RW) + u64::from(s >> 2) * 8,
            2 => HALT,
            _ => (-i64::from(s >> 2)) as u64,
        }
    });
    let (&count, rest) = rest.split_first()?;
    let entries = usize::from(count % 4);
    let (table, rest) = rest.split_at_checked(entries)?;
    let code_len = (rest.len() * 8 / 9).min(200);
    let (code, mask) = rest.split_at(code_len);
    let mut code = code.to_vec();
    let mut starts: Vec<bool> = (0..code.len())
        .map(|i| i == 0 || mask.get(i / 8).is_some_and(|m| m >> (i % 8) & 1 == 1))
        .collect();
    code.push(0);
    starts.push(true);
    let mut blob = Vec::new();
    encode_natural(entries as u64, &mut blob);
    blob.push(1);
    encode_natural(code.len() as u64, &mut blob);
    blob.extend(table.iter().map(|&t| t % code.len() as u8));
    blob.extend_from_slice(&code);
    for chunk in starts.chunks(8) {
        blob.push(chunk.iter().rev().fold(0, |acc, &b| acc << 1 | u8::from(b)));
    }
    Some(RawProgram {
        blob,
        regs,
        code,
        starts,
    })
}
