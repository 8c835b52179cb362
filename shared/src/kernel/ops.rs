//! Kernel operations: the `ecalli` numbers a program uses to call the
//! kernel, defined once. Arguments are in φ7.., the result in φ7.
//!
//! | op | number | arguments | result |
//! |---|---|---|---|
//! | `gas` | 0 | — | remaining gas (after this op's charge) |
//! | `log` | 1 | ptr, len | [`OK`], or [`ERR_MEMORY`] / [`ERR_TOO_LONG`] |
//! | `set_output` | 2 | ptr, len | [`OK`], or [`ERR_MEMORY`] / [`ERR_TOO_LONG`] |
//!
//! Numbers 3–10 are reserved for the cap operations of DESIGN §5
//! (`cap_info`, `data_read`, `data_write`, `slot_move`, `slot_copy`,
//! `slot_drop`, `spawn`, `call`); until they exist, like any other unknown
//! number, they end the invocation as a panic.

/// A kernel operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum KernelOp {
    /// Remaining gas.
    Gas = 0,
    /// Log `len` bytes at `ptr` (to the host's log).
    Log = 1,
    /// Set the invocation's output to `len` bytes at `ptr`.
    SetOutput = 2,
}

impl KernelOp {
    /// Every implemented op.
    pub const ALL: [KernelOp; 3] = [KernelOp::Gas, KernelOp::Log, KernelOp::SetOutput];

    /// The op for an `ecalli` immediate, if the kernel implements it.
    pub const fn from_number(n: u32) -> Option<KernelOp> {
        match n {
            0 => Some(KernelOp::Gas),
            1 => Some(KernelOp::Log),
            2 => Some(KernelOp::SetOutput),
            _ => None,
        }
    }

    /// The op's `ecalli` immediate.
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// Gas charged for the op on top of the `ecalli` instruction itself.
    pub const fn gas_cost(self) -> i64 {
        match self {
            KernelOp::Gas => 1,
            KernelOp::Log | KernelOp::SetOutput => 10,
        }
    }
}

/// Success.
pub const OK: u64 = 0;
/// A pointer/length argument names memory the program cannot read.
pub const ERR_MEMORY: u64 = u64::MAX - 1;
/// A length argument is over the op's limit.
pub const ERR_TOO_LONG: u64 = u64::MAX - 2;

/// Longest `log` message.
pub const MAX_LOG_LEN: u64 = 4096;
/// Longest output.
pub const MAX_OUTPUT_LEN: u64 = 1 << 20;
