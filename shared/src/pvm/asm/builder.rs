//! [`ProgramBuilder`]: writing PVM programs in Rust.
//!
//! One method per instruction, generated from the instruction table
//! ([`with_instructions!`](crate::with_instructions)), plus labels with
//! forward references, jump-table entries and raw octets for malformed
//! programs. [`build`](ProgramBuilder::build) lays the code out (jump
//! offsets take as few octets as the distances allow) and produces a blob in
//! the Graypaper's `deblob` format.

use alloc::vec;
use alloc::vec::Vec;

use super::error::BuildError;
use super::insn::{Args, Encoded, Imm, Insn, Label, Reg, Target, encode, offset_len};
use crate::pvm::blob::{MAX_CODE_LEN, encode_natural};
use crate::pvm::instructions::Opcode;

/// Passes that may shrink as well as grow jump offsets before the layout
/// only lets them grow (which always settles).
const FREE_PASSES: usize = 16;

#[derive(Clone, Debug)]
enum Item {
    Insn(Insn),
    /// Octets copied as they are; `start` marks the first as an instruction
    /// start in the bitmask.
    Raw {
        bytes: Vec<u8>,
        start: bool,
    },
}

/// Builds a PVM program blob: instructions, labels, jump-table entries.
///
/// ```
/// use capbox_shared::pvm::asm::{ProgramBuilder, Reg};
/// let mut b = ProgramBuilder::new();
/// let done = b.new_label();
/// b.load_imm(Reg::R7, 3);
/// b.branch_eq_imm(Reg::R7, 3, done);
/// b.trap();
/// b.bind(done);
/// b.jump_ind(Reg::R0, 0);
/// let blob = b.build().unwrap();
/// assert!(capbox_shared::pvm::deblob(&blob).is_ok());
/// ```
///
/// Errors found while adding instructions (a label bound twice) are kept
/// and reported by [`build`](Self::build), so calls can be chained.
#[derive(Clone, Debug, Default)]
pub struct ProgramBuilder {
    items: Vec<Item>,
    /// For each label, the index of the item it precedes.
    labels: Vec<Option<usize>>,
    jump_table: Vec<JumpEntry>,
    entry_size: Option<u8>,
    deferred: Option<BuildError>,
}

/// A jump-table entry: a target, or a raw value (which may exceed 2^63).
#[derive(Clone, Copy, Debug)]
enum JumpEntry {
    Target(Target),
    Value(u64),
}

/// A built program: the blob and where things ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltProgram {
    /// The blob in `deblob` format.
    pub blob: Vec<u8>,
    /// Code offset of each item (instruction or raw chunk) in the order
    /// they were added, followed by the code length.
    pub item_pcs: Vec<u32>,
    label_pcs: Vec<u32>,
}

impl BuiltProgram {
    /// Code offset of a label of the builder that produced this program
    /// (`None` for a label of another builder).
    pub fn pc(&self, label: Label) -> Option<u32> {
        self.label_pcs.get(label.0 as usize).copied()
    }
}

impl ProgramBuilder {
    /// An empty program.
    pub fn new() -> ProgramBuilder {
        ProgramBuilder::default()
    }

    /// A new, unbound label.
    pub fn new_label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() as u32 - 1)
    }

    /// Binds `label` to the position of the next instruction.
    pub fn bind(&mut self, label: Label) -> &mut Self {
        match self.labels.get_mut(label.0 as usize) {
            Some(slot @ None) => *slot = Some(self.items.len()),
            Some(Some(_)) => self.defer(BuildError::LabelBoundTwice(label)),
            None => self.defer(BuildError::ForeignLabel(label)),
        }
        self
    }

    /// A new label bound here.
    pub fn here(&mut self) -> Label {
        let label = self.new_label();
        self.bind(label);
        label
    }

    /// Appends an instruction of any opcode (checked against its format).
    pub fn push(&mut self, opcode: Opcode, args: Args) -> Result<&mut Self, BuildError> {
        let insn = Insn::new(opcode, args)?;
        Ok(self.push_insn(insn))
    }

    /// Appends an already checked instruction.
    pub fn push_insn(&mut self, insn: Insn) -> &mut Self {
        self.items.push(Item::Insn(insn));
        self
    }

    /// Appends octets as one instruction start followed by non-start
    /// octets, exactly as given (for malformed or non-canonical code).
    pub fn raw_instruction(&mut self, bytes: &[u8]) -> &mut Self {
        if bytes.is_empty() {
            self.defer(BuildError::EmptyRawInstruction);
        }
        self.items.push(Item::Raw {
            bytes: bytes.to_vec(),
            start: true,
        });
        self
    }

    /// Appends octets that are not instruction starts.
    pub fn raw_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.items.push(Item::Raw {
            bytes: bytes.to_vec(),
            start: false,
        });
        self
    }

    /// Adds a jump-table entry and returns the address a dynamic jump uses
    /// to reach it (`2 · (index + 1)`).
    pub fn jump_table_entry(&mut self, target: impl Into<Target>) -> u32 {
        self.jump_table.push(JumpEntry::Target(target.into()));
        2 * self.jump_table.len() as u32
    }

    /// Adds a jump-table entry holding `value` as is (any 64-bit value; a
    /// blob may carry entries of up to 8 octets) and returns its address.
    pub fn jump_table_value(&mut self, value: u64) -> u32 {
        self.jump_table.push(JumpEntry::Value(value));
        2 * self.jump_table.len() as u32
    }

    /// Forces the jump-table entry size `z` (by default the fewest octets,
    /// at least 1, that hold every entry; 0 for an empty table).
    pub fn set_jump_entry_size(&mut self, size: u8) -> &mut Self {
        self.entry_size = Some(size);
        self
    }

    /// Number of items (instructions and raw chunks) added so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the last item is an instruction that does not end a basic
    /// block, so that a label bound now would not start one (a jump there
    /// panics). Raw octets count as ending one: they are the caller's.
    pub fn in_open_block(&self) -> bool {
        matches!(self.items.last(), Some(Item::Insn(insn)) if !insn.opcode().is_terminator())
    }

    /// Lays out the code and encodes the blob.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        Ok(self.build_program()?.blob)
    }

    /// Like [`build`](Self::build), also reporting where items and labels
    /// landed.
    pub fn build_program(&self) -> Result<BuiltProgram, BuildError> {
        if let Some(error) = &self.deferred {
            return Err(error.clone());
        }
        for (id, slot) in self.labels.iter().enumerate() {
            if slot.is_none() {
                return Err(BuildError::UnboundLabel(Label(id as u32)));
            }
        }
        let used = self
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Insn(insn) => insn.args().target(),
                Item::Raw { .. } => None,
            })
            .chain(self.jump_table.iter().filter_map(|entry| match entry {
                JumpEntry::Target(target) => Some(*target),
                JumpEntry::Value(_) => None,
            }));
        for target in used {
            if let Target::Label(label) = target
                && label.0 as usize >= self.labels.len()
            {
                return Err(BuildError::ForeignLabel(label));
            }
        }
        let (item_pcs, encoded) = self.layout()?;
        let label_pcs: Vec<u32> = self
            .labels
            .iter()
            .map(|slot| item_pcs[slot.unwrap_or(0)])
            .collect();

        let mut code = Vec::with_capacity(item_pcs[self.items.len()] as usize);
        let mut starts = Vec::with_capacity(code.capacity());
        for (item, encoded) in self.items.iter().zip(&encoded) {
            let (bytes, start) = match item {
                Item::Insn(_) => (encoded.as_ref().map_or(&[][..], |e| e.as_bytes()), true),
                Item::Raw { bytes, start } => (&bytes[..], *start),
            };
            for (i, &byte) in bytes.iter().enumerate() {
                code.push(byte);
                starts.push(start && i == 0);
            }
        }

        let entries = self
            .jump_table
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let value = match *entry {
                    JumpEntry::Value(value) => return Ok(value),
                    JumpEntry::Target(Target::Label(label)) => {
                        i64::from(label_pcs[label.0 as usize])
                    }
                    JumpEntry::Target(Target::Absolute(value)) => value,
                };
                u64::try_from(value).map_err(|_| BuildError::JumpTableEntry { index, value })
            })
            .collect::<Result<Vec<u64>, BuildError>>()?;
        let widest = entries.iter().copied().max().unwrap_or(0);
        let needed = (8 - widest.leading_zeros() / 8) as u8;
        let size = match self.entry_size {
            Some(size) if size > 8 => return Err(BuildError::JumpEntrySize(size)),
            Some(size) => size,
            None if entries.is_empty() => 0,
            None => needed.max(1),
        };
        if let Some(index) = entries
            .iter()
            .position(|&e| size < 8 && e >> (8 * size) != 0)
        {
            return Err(BuildError::JumpTableEntry {
                index,
                value: entries[index] as i64,
            });
        }

        let mut blob = Vec::with_capacity(code.len() * 9 / 8 + 16);
        encode_natural(entries.len() as u64, &mut blob);
        blob.push(size);
        encode_natural(code.len() as u64, &mut blob);
        for entry in entries {
            blob.extend_from_slice(&entry.to_le_bytes()[..usize::from(size)]);
        }
        blob.extend_from_slice(&code);
        let mut mask = vec![0u8; code.len().div_ceil(8)];
        for (i, _) in starts.iter().enumerate().filter(|(_, s)| **s) {
            mask[i / 8] |= 1 << (i % 8);
        }
        blob.extend_from_slice(&mask);
        Ok(BuiltProgram {
            blob,
            item_pcs,
            label_pcs,
        })
    }

    /// Finds item offsets such that every jump's offset field is encoded
    /// for the distance it actually spans.
    #[allow(clippy::type_complexity)]
    fn layout(&self) -> Result<(Vec<u32>, Vec<Option<Encoded>>), BuildError> {
        let count = self.items.len();
        let mut floors = vec![0usize; count];
        let mut sizes: Vec<usize> = vec![0; count];
        let mut pass = 0;
        loop {
            let mut pcs = Vec::with_capacity(count + 1);
            let mut pc = 0u64;
            for (item, &size) in self.items.iter().zip(&sizes) {
                pcs.push(pc as u32);
                let len = match item {
                    Item::Insn(_) => size,
                    Item::Raw { bytes, .. } => bytes.len(),
                };
                pc += len as u64;
                if pc > MAX_CODE_LEN as u64 {
                    return Err(BuildError::CodeTooLarge);
                }
            }
            pcs.push(pc as u32);
            let target_pc = |target: Target| -> i64 {
                match target {
                    Target::Label(label) => {
                        let item = self.labels[label.0 as usize].unwrap_or(0);
                        i64::from(pcs[item])
                    }
                    Target::Absolute(value) => value,
                }
            };
            let mut encoded = Vec::with_capacity(count);
            let mut changed = false;
            for (i, item) in self.items.iter().enumerate() {
                let Item::Insn(insn) = item else {
                    encoded.push(None);
                    continue;
                };
                let target = insn.args().target().map(target_pc);
                let e = encode(insn, pcs[i], target, floors[i]).map_err(|error| match error {
                    BuildError::JumpTooFar { pc, distance, .. } => BuildError::JumpTooFar {
                        item: i,
                        pc,
                        distance,
                    },
                    other => other,
                })?;
                if e.as_bytes().len() != sizes[i] {
                    changed = true;
                    sizes[i] = e.as_bytes().len();
                }
                if pass >= FREE_PASSES {
                    floors[i] = floors[i].max(offset_len(insn, &e));
                }
                encoded.push(Some(e));
            }
            if !changed {
                return Ok((pcs, encoded));
            }
            pass += 1;
        }
    }

    fn defer(&mut self, error: BuildError) {
        self.deferred.get_or_insert(error);
    }

    fn typed(&mut self, opcode: Opcode, args: Args) -> &mut Self {
        match Insn::new(opcode, args) {
            Ok(insn) => self.push_insn(insn),
            Err(error) => {
                self.defer(error);
                self
            }
        }
    }
}

/// Generates one builder method per table row, with parameters by format.
macro_rules! builder_method {
    (NoArgs, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), "`.")]
        pub fn $name(&mut self) -> &mut Self {
            self.typed(Opcode::$name, Args::NoArgs)
        }
    };
    (OneImm, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " x`.")]
        pub fn $name(&mut self, x: impl Into<Imm>) -> &mut Self {
            let x = x.into().value();
            self.typed(Opcode::$name, Args::OneImm { x })
        }
    };
    (OneRegExtImm, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " a, x` (a full 64-bit immediate).")]
        pub fn $name(&mut self, a: Reg, x: u64) -> &mut Self {
            self.typed(Opcode::$name, Args::OneRegExtImm { a, x })
        }
    };
    (TwoImms, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " x, y`.")]
        pub fn $name(&mut self, x: impl Into<Imm>, y: impl Into<Imm>) -> &mut Self {
            let (x, y) = (x.into().value(), y.into().value());
            self.typed(Opcode::$name, Args::TwoImms { x, y })
        }
    };
    (OneOffset, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " t`.")]
        pub fn $name(&mut self, t: impl Into<Target>) -> &mut Self {
            let t = t.into();
            self.typed(Opcode::$name, Args::OneOffset { t })
        }
    };
    (OneRegOneImm, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " a, x`.")]
        pub fn $name(&mut self, a: Reg, x: impl Into<Imm>) -> &mut Self {
            let x = x.into().value();
            self.typed(Opcode::$name, Args::OneRegOneImm { a, x })
        }
    };
    (OneRegTwoImms, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " a, x, y`.")]
        pub fn $name(&mut self, a: Reg, x: impl Into<Imm>, y: impl Into<Imm>) -> &mut Self {
            let (x, y) = (x.into().value(), y.into().value());
            self.typed(Opcode::$name, Args::OneRegTwoImms { a, x, y })
        }
    };
    (OneRegImmOffset, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " a, x, t`.")]
        pub fn $name(&mut self, a: Reg, x: impl Into<Imm>, t: impl Into<Target>) -> &mut Self {
            let (x, t) = (x.into().value(), t.into());
            self.typed(Opcode::$name, Args::OneRegImmOffset { a, x, t })
        }
    };
    (TwoRegs, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " d, a` (d is written).")]
        pub fn $name(&mut self, d: Reg, a: Reg) -> &mut Self {
            self.typed(Opcode::$name, Args::TwoRegs { d, a })
        }
    };
    (TwoRegsOneImm, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " a, b, x` (r_A is the destination of ")]
        #[doc = "arithmetic and loads, the value of stores; r_B is the base or source)."]
        pub fn $name(&mut self, a: Reg, b: Reg, x: impl Into<Imm>) -> &mut Self {
            let x = x.into().value();
            self.typed(Opcode::$name, Args::TwoRegsOneImm { a, b, x })
        }
    };
    (TwoRegsOneOffset, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " a, b, t`.")]
        pub fn $name(&mut self, a: Reg, b: Reg, t: impl Into<Target>) -> &mut Self {
            let t = t.into();
            self.typed(Opcode::$name, Args::TwoRegsOneOffset { a, b, t })
        }
    };
    (TwoRegsTwoImms, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " a, b, x, y`.")]
        pub fn $name(&mut self, a: Reg, b: Reg, x: impl Into<Imm>, y: impl Into<Imm>) -> &mut Self {
            let (x, y) = (x.into().value(), y.into().value());
            self.typed(Opcode::$name, Args::TwoRegsTwoImms { a, b, x, y })
        }
    };
    (ThreeRegs, $name:ident) => {
        #[doc = concat!("Appends `", stringify!($name), " d, a, b` (d = a op b).")]
        pub fn $name(&mut self, d: Reg, a: Reg, b: Reg) -> &mut Self {
            self.typed(Opcode::$name, Args::ThreeRegs { d, a, b })
        }
    };
}

macro_rules! define_builder_methods {
    ($($name:ident = $op:literal, $fmt:ident, $gas:literal, $flow:ident;)*) => {
        /// One method per instruction of the table.
        impl ProgramBuilder {
            $(builder_method!($fmt, $name);)*
        }
    };
}

crate::with_instructions!(define_builder_methods);
