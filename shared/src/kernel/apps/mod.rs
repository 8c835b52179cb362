//! Apps built only from the kernel ops (programs written with the
//! [`ProgramBuilder`]): a key-value service and a parent that keeps one
//! key-value child per user.
//!
//! * [`kv`]: values are Data caps in the root CNode's slots (keys are slot
//!   numbers), the key count is the one word of instance memory.
//! * [`users`]: a parent holding the kv Image in slot 0 and one spawned kv
//!   child per user, forwarding puts (as Data caps) and gets (as outputs).
//!
//! Results follow the kernel's convention: a result or an error code in φ7
//! (never a trap). Errors the apps add sit just below the kernel's codes,
//! so "φ7 ≥ [`ERR_MIN`]" means "an error" for both.

pub mod kv;
pub mod users;

use crate::pvm::asm::{Label, ProgramBuilder, Reg};

/// A key (kv) or user (users) number out of range.
pub const ERR_BAD_KEY: u64 = u64::MAX - 16;
/// users: no child kv for this user (`add_user` it first).
pub const ERR_NO_USER: u64 = u64::MAX - 17;
/// users: the child call did not halt, or the kernel refused the call; φ8
/// says why (a `CALL_*` exit or the kernel's `ERR_*` code).
pub const ERR_CHILD_FAILED: u64 = u64::MAX - 18;
/// kv `put_many`: a truncated record.
pub const ERR_BAD_INPUT: u64 = u64::MAX - 19;
/// Every error code (the kernel's and the apps') is at least this.
pub const ERR_MIN: u64 = u64::MAX - 31;

/// Largest value the apps store: the stack buffer a value passes through
/// (`data_new`, `data_read`, `set_output` and `output_read` all take
/// program memory, so a value goes through memory whole).
pub const MAX_VALUE_LEN: u64 = 64 << 10;
/// Stack size of both images: the value buffer plus a page of headroom.
pub const STACK_SIZE: u32 = (MAX_VALUE_LEN as u32) + 4096;

/// Shared code-building helpers: one `fail` label per program that halts
/// with φ7 as it is and φ8 = 0.
pub(crate) struct Asm {
    pub b: ProgramBuilder,
    pub entries: alloc::vec::Vec<Label>,
    pub fail: Label,
}

impl Asm {
    pub fn new() -> Asm {
        let mut b = ProgramBuilder::new();
        let fail = b.new_label();
        Asm {
            b,
            entries: alloc::vec::Vec::new(),
            fail,
        }
    }

    /// Binds `label` here as a jump target: PVM jumps may only land on a
    /// basic block's start (after a terminator), hence the `fallthrough`.
    pub fn bind(&mut self, label: Label) {
        self.b.fallthrough();
        self.b.bind(label);
    }

    /// Starts the next endpoint (they are added in their enum's order).
    pub fn endpoint(&mut self) {
        let here = self.b.here();
        self.entries.push(here);
    }

    pub fn halt(&mut self) {
        self.b.jump_ind(Reg::R0, 0u32); // φ0 = the halt address
    }

    /// Halts through `fail` if φ7 holds an error code.
    pub fn fail_on_error(&mut self) {
        let fail = self.fail;
        self.b.branch_ge_u_imm(Reg::R7, ERR_MIN as u32, fail);
    }

    /// Halts with φ7 = `code`, φ8 = 0.
    pub fn fail_with(&mut self, code: u64) {
        let fail = self.fail;
        self.b.load_imm_64(Reg::R7, code).jump(fail);
    }

    /// A new label that, when jumped to, fails with `code` (emitted now,
    /// after a jump over it).
    pub fn error_stub(&mut self, code: u64) -> Label {
        let skip = self.b.new_label();
        self.b.jump(skip);
        let stub = self.b.here();
        self.fail_with(code);
        self.b.bind(skip);
        stub
    }

    /// `dst = sp - MAX_VALUE_LEN`: the value buffer at the stack's bottom
    /// end (stack pages are scratch: never committed).
    pub fn value_buffer(&mut self, dst: Reg) {
        self.b.add_imm_64(dst, Reg::R1, -(MAX_VALUE_LEN as i32));
    }

    /// Emits the shared `fail` code and returns the code blob and the
    /// endpoints' PCs.
    pub fn finish(mut self) -> (alloc::vec::Vec<u8>, alloc::vec::Vec<u32>) {
        let fail = self.fail;
        self.bind(fail);
        self.b.load_imm(Reg::R8, 0u32);
        self.halt();
        // The builder only fails on unbound or foreign labels, which this
        // module never produces (the apps' tests build every image).
        let built = self
            .b
            .build_program()
            .expect("the apps' programs are well formed");
        let pcs = self
            .entries
            .iter()
            .map(|&l| built.pc(l).unwrap_or(0))
            .collect();
        (built.blob, pcs)
    }
}
