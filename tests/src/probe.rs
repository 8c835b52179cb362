//! The *probe*: a program whose endpoints each run one kernel op (or one
//! way of failing), so the op tests can drive every op with arguments of
//! their choosing from the host, on both backends.
//!
//! Memory: two read-write pages at [`RW`]: the first holds the bytes
//! `0, 1, 2, ..` ([`pattern`]), the second is where endpoints record
//! results ([`RESULT`], [`MARK`]). 16 KiB of stack.

use capbox::shared::cap::{Cap, Image};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::ops::ERR_EMPTY;
use capbox::shared::kernel::{KernelOp, new_instance_with_slots};
use capbox::shared::pvm::asm::{ProgramBuilder, Reg};

/// Start of the read-write data.
pub const RW: u32 = 0x2_0000;
/// Where `Deep` records a call's result (u64).
pub const RESULT: u32 = RW + 4096;
/// Where the `Deep` leaf and `Trap` write a mark (u64) before acting.
pub const MARK: u32 = RW + 4096 + 8;
/// The slot `Deep` calls (its child).
pub const CHILD_SLOT: u64 = 1;
/// The slot the `Deep` leaf makes a Data in before acting.
pub const LEAF_DATA_SLOT: u64 = 2;

/// The first read-write page: byte i = i mod 256.
pub fn pattern() -> Vec<u8> {
    (0..4096).map(|i| i as u8).collect()
}

/// The probe's endpoints: `Op(n)` is endpoint n; the rest follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `ecalli n` with φ7..φ10 = the invocation's args, then halt.
    Op(KernelOp),
    /// `call` (φ7..φ10 = args), then output φ7..φ10 (4 × u64 LE) and halt
    /// with φ7 = the call's result.
    CallOut,
    /// Write [`MARK`], then `trap`.
    Trap,
    /// Loop until out of gas.
    Loop,
    /// Load from an unmapped page.
    Fault,
    /// `ecalli 99`.
    Unknown,
    /// φ7 = action, φ8 = gas limit L. Calls its child in [`CHILD_SLOT`]
    /// at `Deep` with the same action and limit L − 1000 (so each parent
    /// keeps gas to record the result even when its child runs out); if the call's result is `ERR_EMPTY` (no child: this is
    /// the leaf) it writes [`MARK`], makes a Data in [`LEAF_DATA_SLOT`]
    /// and acts: 0 halt, 1 trap, 2 loop (out of gas), 3 page fault, 4
    /// unknown op. Otherwise it records the call's result at [`RESULT`]
    /// and halts.
    Deep,
    /// `Deep` with action 0, then `trap` at the top.
    DeepThenTrap,
    /// `data_new(φ7, RW, φ8)` then `hash_of(φ7, RESULT)`, then halt with
    /// φ7 = hash_of's result (the hash of a working cap, settled).
    NewThenHash,
}

const EXTRA: [Probe; 8] = [
    Probe::CallOut,
    Probe::Trap,
    Probe::Loop,
    Probe::Fault,
    Probe::Unknown,
    Probe::Deep,
    Probe::DeepThenTrap,
    Probe::NewThenHash,
];

impl Probe {
    /// The endpoint index.
    pub fn index(self) -> u32 {
        let ops = KernelOp::ALL.len() as u32;
        match self {
            Probe::Op(op) => op.number(),
            other => ops + EXTRA.iter().position(|&p| p == other).unwrap() as u32,
        }
    }
}

fn halt(b: &mut ProgramBuilder) {
    b.jump_ind(Reg::R0, 0u32);
}

/// The probe image.
pub fn probe_image() -> Image {
    let mut b = ProgramBuilder::new();
    let mut entries = Vec::new();
    for op in KernelOp::ALL {
        entries.push(b.here());
        b.ecalli(op.number());
        halt(&mut b);
    }
    // CallOut
    entries.push(b.here());
    b.ecalli(KernelOp::Call.number())
        .store_ind_u64(Reg::R7, Reg::R1, -32i32)
        .store_ind_u64(Reg::R8, Reg::R1, -24i32)
        .store_ind_u64(Reg::R9, Reg::R1, -16i32)
        .store_ind_u64(Reg::R10, Reg::R1, -8i32)
        .move_reg(Reg::R7, Reg::R1)
        .add_imm_64(Reg::R7, Reg::R7, -32i32)
        .load_imm(Reg::R8, 32u32)
        .ecalli(KernelOp::SetOutput.number())
        .load_ind_u64(Reg::R7, Reg::R1, -32i32);
    halt(&mut b);
    // Trap
    entries.push(b.here());
    b.load_imm(Reg::R2, 7u32).store_u64(Reg::R2, MARK).trap();
    // Loop
    let top = b.here();
    entries.push(top);
    b.jump(top);
    // Fault
    entries.push(b.here());
    b.load_u64(Reg::R7, 0x10_0000u32);
    halt(&mut b);
    // Unknown
    entries.push(b.here());
    b.ecalli(99u32);
    halt(&mut b);
    // Deep
    let deep = b.here();
    entries.push(deep);
    let deep_index = KernelOp::ALL.len() as u32 + 5;
    let leaf = b.new_label();
    b.move_reg(Reg::R5, Reg::R7)
        .add_imm_64(Reg::R6, Reg::R8, -1000i32)
        .shlo_l_imm_64(Reg::R8, Reg::R6, 32u32)
        .or_imm(Reg::R8, Reg::R8, deep_index)
        .load_imm(Reg::R7, CHILD_SLOT as u32)
        .move_reg(Reg::R9, Reg::R5)
        .move_reg(Reg::R10, Reg::R6)
        .ecalli(KernelOp::Call.number())
        .branch_eq_imm(Reg::R7, -5i32, leaf)
        .store_u64(Reg::R7, RESULT);
    halt(&mut b);
    b.bind(leaf);
    let acts: Vec<_> = (0..5).map(|_| b.new_label()).collect();
    b.load_imm(Reg::R2, 1u32)
        .store_u64(Reg::R2, MARK)
        .load_imm(Reg::R7, LEAF_DATA_SLOT as u32)
        .load_imm(Reg::R8, RW)
        .load_imm(Reg::R9, 16u32)
        .ecalli(KernelOp::DataNew.number());
    for (i, act) in acts.iter().enumerate() {
        b.branch_eq_imm(Reg::R5, i as u32, *act);
    }
    b.trap();
    b.bind(acts[0]);
    halt(&mut b);
    b.bind(acts[1]);
    b.trap();
    b.bind(acts[2]);
    b.jump(acts[2]);
    b.bind(acts[3]);
    b.load_u64(Reg::R7, 0x10_0000u32);
    halt(&mut b);
    b.bind(acts[4]);
    b.ecalli(99u32);
    halt(&mut b);
    // DeepThenTrap
    entries.push(b.here());
    b.load_imm(Reg::R7, CHILD_SLOT as u32)
        .load_imm(Reg::R8, deep_index)
        .load_imm(Reg::R9, 0u32)
        .load_imm(Reg::R10, 0u32)
        .ecalli(KernelOp::Call.number())
        .trap();
    // NewThenHash
    entries.push(b.here());
    b.move_reg(Reg::R5, Reg::R7)
        .move_reg(Reg::R9, Reg::R8)
        .load_imm(Reg::R8, RW)
        .ecalli(KernelOp::DataNew.number())
        .move_reg(Reg::R7, Reg::R5)
        .load_imm(Reg::R8, RESULT)
        .ecalli(KernelOp::HashOf.number());
    halt(&mut b);

    let built = b.build_program().expect("the probe is well formed");
    let mut rw_data = pattern();
    rw_data.resize(8192, 0);
    let _ = ERR_EMPTY; // the `-5` above is ERR_EMPTY as a sign-extended imm
    debug_assert_eq!(-5i64 as u64, ERR_EMPTY);
    Image {
        code: built.blob.clone(),
        ro_data: Vec::new(),
        rw_data,
        heap_pages: 0,
        stack_size: 16 * 1024,
        endpoint_names: Vec::new(),
        endpoints: entries.iter().map(|&l| built.pc(l).unwrap()).collect(),
    }
}

/// The probe image's cap and hash.
pub fn probe_cap() -> (Cap, CapHash) {
    let cap = Cap::Image(probe_image());
    let hash = cap.hash().unwrap();
    (cap, hash)
}

/// Caps to publish for a probe instance whose root CNode holds `slots`,
/// and its hash (the image comes first).
pub fn probe_instance(slots: &[(u32, CapHash)]) -> (Vec<Cap>, CapHash) {
    let (image_cap, image_hash) = probe_cap();
    let Cap::Image(image) = &image_cap else {
        unreachable!()
    };
    let fresh = new_instance_with_slots(image_hash, image, slots).unwrap();
    let hash = fresh.instance_hash;
    (
        vec![image_cap, fresh.memory, fresh.root_cnode, fresh.instance],
        hash,
    )
}

/// A chain of `len` probe instances, each holding the next in
/// [`CHILD_SLOT`] (the last holds none): the caps to publish and the top
/// instance's hash.
pub fn probe_chain(len: usize) -> (Vec<Cap>, CapHash) {
    let mut caps = Vec::new();
    let mut below: Option<CapHash> = None;
    for _ in 0..len {
        let slots: Vec<(u32, CapHash)> = below.iter().map(|&h| (CHILD_SLOT as u32, h)).collect();
        let (more, hash) = probe_instance(&slots);
        caps.extend(more);
        below = Some(hash);
    }
    (caps, below.expect("len > 0"))
}
