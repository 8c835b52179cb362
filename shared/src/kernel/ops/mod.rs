//! Kernel operations: the `ecalli` numbers a program uses to call the
//! kernel, defined once in [`with_kernel_ops!`]: number, name, argument
//! registers, result and gas. The enum, the lookup, the names and the table
//! in `docs/kernel.md` (checked by a test against [`doc_table`]) all derive
//! from it.
//!
//! Convention: arguments in φ7.. (as many as the op takes), the result in
//! φ7; a few ops return more in φ8.. (see each op). A failure is an error
//! code in φ7 (the `ERR_*` constants, all ≥ 2^64 − 16, so they never clash
//! with a length or a kind) and the program continues. Slots are those of
//! the invoking instance's root CNode, `0..65536`.
//!
//! Gas: each op costs its base gas on top of the `ecalli` instruction, plus
//! its per-page gas for every 4 KiB page it reads or writes (of program
//! memory or of a cap; rounded up per op). The charge comes first: an op
//! the program cannot pay ends the invocation as out of gas. Per-page
//! prices follow the work: 128 for a page copied (a few hundred ns, like
//! ~128 arithmetic instructions), 2048 for a page of new or changed Data
//! (copied, then hashed at commit: a few µs).

mod children;
mod data;
mod io;
mod slots;

use alloc::string::String;
use core::fmt::Write;
use core::hash::BuildHasher;

use super::transaction::{Frame, OpError, Txn};
use crate::pvm::Machine;

/// The one table of kernel ops: `Variant = number, "name", [arguments],
/// "result", base gas, gas per page;`.
#[macro_export]
macro_rules! with_kernel_ops {
    ($m:ident) => {
        $m! {
            Gas = 0, "gas", [], "remaining gas (after this op's charge)", 2, 0;
            Log = 1, "log", [ptr, len], "OK; ERR_MEMORY, ERR_TOO_LONG (len > 4096)", 10, 256;
            SetOutput = 2, "set_output", [ptr, len], "OK; ERR_MEMORY, ERR_TOO_LONG (len > 1 MiB)", 10, 128;
            InputLen = 3, "input_len", [], "the invocation's input length", 1, 0;
            InputRead = 4, "input_read", [offset, ptr, len], "bytes copied (min(len, input_len − offset)); ERR_OFFSET, ERR_MEMORY, ERR_TOO_LONG", 10, 128;
            CapInfo = 5, "cap_info", [slot], "kind tag (0 Data, 1 CNode, 2 Image, 3 Instance, 4 Type) or INFO_EMPTY; φ8 = size (Data length, CNode slot count, Image code length, else 0); ERR_SLOT", 15, 0;
            DataNew = 6, "data_new", [dst_slot, ptr, len], "OK; ERR_SLOT, ERR_OCCUPIED, ERR_MEMORY, ERR_TOO_LONG, ERR_LIMIT", 20, 2048;
            DataRead = 7, "data_read", [slot, offset, ptr, len], "bytes copied (min(len, data_len − offset)); ERR_SLOT, ERR_EMPTY, ERR_KIND, ERR_OFFSET, ERR_MEMORY, ERR_TOO_LONG", 10, 128;
            DataWrite = 8, "data_write", [slot, offset, ptr, len], "OK (the Data grows to offset + len if shorter); ERR_SLOT, ERR_EMPTY, ERR_KIND, ERR_MEMORY, ERR_TOO_LONG, ERR_LIMIT", 20, 2048;
            SlotMove = 9, "slot_move", [src_slot, dst_slot], "OK; ERR_SLOT, ERR_EMPTY, ERR_OCCUPIED", 50, 0;
            SlotCopy = 10, "slot_copy", [src_slot, dst_slot], "OK; ERR_SLOT, ERR_EMPTY, ERR_OCCUPIED", 50, 0;
            SlotDrop = 11, "slot_drop", [slot], "OK (also for an empty slot); ERR_SLOT", 30, 0;
            HashOf = 12, "hash_of", [slot, ptr], "OK, 32 bytes at ptr; ERR_SLOT, ERR_EMPTY, ERR_MEMORY", 20, 0;
            TypeOf = 13, "type_of", [slot, ptr], "OK, 32 bytes at ptr (an Instance's type chain, or a Type cap's); ERR_SLOT, ERR_EMPTY, ERR_KIND, ERR_MEMORY", 10, 0;
            Spawn = 14, "spawn", [image_slot, dst_slot], "OK (a new child Instance in dst_slot); ERR_SLOT, ERR_EMPTY, ERR_KIND, ERR_OCCUPIED, ERR_LIMIT", 100, 2048;
            Give = 15, "give", [child_slot, src_slot, child_dst_slot], "OK (moves src into the child's root CNode); ERR_SLOT, ERR_EMPTY, ERR_KIND, ERR_OCCUPIED", 60, 0;
            Take = 16, "take", [child_slot, child_src_slot, dst_slot], "OK (moves out of the child's root CNode); ERR_SLOT, ERR_EMPTY, ERR_KIND, ERR_OCCUPIED", 60, 0;
            Call = 17, "call", [child_slot, endpoint_and_gas, a0, a1, a2, a3], "the child's exit (CALL_HALT, CALL_PANIC, CALL_OUT_OF_GAS, CALL_PAGE_FAULT); φ8 = its φ7 (or the fault address), φ9 = its φ8, φ10 = its output length; ERR_SLOT, ERR_EMPTY, ERR_KIND, ERR_ENDPOINT, ERR_CHILD, ERR_DEPTH, ERR_LIMIT", 100, 0;
            OutputRead = 18, "output_read", [offset, ptr, len], "bytes copied of the last call's output; ERR_OFFSET, ERR_MEMORY, ERR_TOO_LONG", 10, 128;
        }
    };
}

macro_rules! define_kernel_ops {
    ($($variant:ident = $number:literal, $name:literal, [$($arg:ident),*], $result:literal, $gas:literal, $per_page:literal;)*) => {
        /// A kernel operation (see [`with_kernel_ops!`] for the table).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u32)]
        pub enum KernelOp {
            $(
                #[doc = $result]
                $variant = $number,
            )*
        }

        impl KernelOp {
            /// Every op, in number order.
            pub const ALL: &'static [KernelOp] = &[$(KernelOp::$variant),*];

            /// The op for an `ecalli` immediate, if the kernel implements it.
            pub const fn from_number(n: u32) -> Option<KernelOp> {
                match n {
                    $($number => Some(KernelOp::$variant),)*
                    _ => None,
                }
            }

            /// The op's name (as in the docs and the SDK: `capbox_<name>`).
            pub const fn name(self) -> &'static str {
                match self { $(KernelOp::$variant => $name,)* }
            }

            /// The argument registers' meanings, from φ7 on.
            pub const fn args(self) -> &'static [&'static str] {
                match self { $(KernelOp::$variant => &[$(stringify!($arg)),*],)* }
            }

            /// What the op returns (φ7 and any further registers).
            pub const fn result(self) -> &'static str {
                match self { $(KernelOp::$variant => $result,)* }
            }

            /// Gas charged for the op on top of the `ecalli` instruction.
            pub const fn gas_cost(self) -> i64 {
                match self { $(KernelOp::$variant => $gas,)* }
            }

            /// Further gas per 4 KiB page the op reads or writes.
            pub const fn gas_per_page(self) -> i64 {
                match self { $(KernelOp::$variant => $per_page,)* }
            }
        }
    };
}

with_kernel_ops!(define_kernel_ops);

impl KernelOp {
    /// The op's `ecalli` immediate.
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// The op named `name` (without the `capbox_` prefix), if any.
    pub fn from_name(name: &str) -> Option<KernelOp> {
        KernelOp::ALL.iter().copied().find(|op| op.name() == name)
    }
}

/// Serves one op (its base gas already charged) for `frame`: φ7 (and any
/// further result registers) are set and the program continues, or the
/// invocation ends (`OpError::OutOfGas`, `OpError::Kernel`).
pub(crate) fn dispatch<S: BuildHasher>(
    op: KernelOp,
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> Result<(), OpError> {
    let result = match op {
        KernelOp::Gas => io::gas(machine),
        KernelOp::Log => io::message(machine, op, MAX_LOG_LEN).map(|message| {
            txn.host.log(&message);
            OK
        }),
        KernelOp::SetOutput => io::message(machine, op, MAX_OUTPUT_LEN).map(|message| {
            frame.output = message;
            OK
        }),
        KernelOp::InputLen => Ok(input_of(frame, txn).len() as u64),
        KernelOp::InputRead => io::read_into(machine, op, input_of(frame, txn)),
        KernelOp::OutputRead => io::read_into(machine, op, &frame.child_output),
        KernelOp::CapInfo => data::cap_info(machine, frame, txn),
        KernelOp::DataNew => data::data_new(machine, frame, txn),
        KernelOp::DataRead => data::data_read(machine, frame, txn),
        KernelOp::DataWrite => data::data_write(machine, frame, txn),
        KernelOp::HashOf => data::hash_of(machine, frame, txn),
        KernelOp::TypeOf => data::type_of(machine, frame, txn),
        KernelOp::SlotMove => slots::slot_move(machine, frame, txn),
        KernelOp::SlotCopy => slots::slot_copy(machine, frame, txn),
        KernelOp::SlotDrop => slots::slot_drop(machine, frame, txn),
        KernelOp::Spawn => children::spawn(machine, frame, txn),
        KernelOp::Give => children::give(machine, frame, txn),
        KernelOp::Take => children::take(machine, frame, txn),
        KernelOp::Call => children::call(machine, frame, txn),
    };
    machine.regs[7] = match result {
        Ok(value) => value,
        Err(OpError::Code(code)) => code,
        Err(stop) => return Err(stop),
    };
    Ok(())
}

/// The input `frame` reads: the invocation's at the top, none in a child
/// (a parent hands a child data as caps or arguments).
fn input_of<'a, S>(frame: &Frame, txn: &Txn<'a, S>) -> &'a [u8] {
    if frame.depth == 0 { txn.input } else { &[] }
}

/// The Markdown table of every op, as `docs/kernel.md` shows it.
pub fn doc_table() -> String {
    let mut out = String::from(
        "| # | op | arguments (φ7..) | result (φ7..) | gas | gas/page |\n|---|---|---|---|---|---|\n",
    );
    for op in KernelOp::ALL {
        let args = op.args().join(", ");
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} |",
            op.number(),
            op.name(),
            if args.is_empty() { "—".into() } else { args },
            op.result(),
            op.gas_cost(),
            op.gas_per_page()
        );
    }
    out
}

/// Success.
pub const OK: u64 = 0;
/// A pointer/length argument names memory the program cannot read (or,
/// for an op that writes, cannot write).
pub const ERR_MEMORY: u64 = u64::MAX - 1;
/// A length argument is over the op's limit.
pub const ERR_TOO_LONG: u64 = u64::MAX - 2;
/// A slot number is not below [`crate::cap::MAX_CNODE_SLOTS`].
pub const ERR_SLOT: u64 = u64::MAX - 3;
/// A slot the op reads from is empty.
pub const ERR_EMPTY: u64 = u64::MAX - 4;
/// A cap has the wrong kind for the op (e.g. `data_read` on a CNode).
pub const ERR_KIND: u64 = u64::MAX - 5;
/// An offset is past the end of the Data, input or output.
pub const ERR_OFFSET: u64 = u64::MAX - 6;
/// `call` would nest deeper than [`MAX_CALL_DEPTH`].
pub const ERR_DEPTH: u64 = u64::MAX - 7;
/// A destination slot is occupied (ops never overwrite a cap silently:
/// `slot_drop` it first).
pub const ERR_OCCUPIED: u64 = u64::MAX - 8;
/// A per-invocation budget is exhausted ([`MAX_NEW_BYTES`], or the memory
/// the call stack maps, [`crate::kernel::MAX_MAPPED_BYTES`]).
pub const ERR_LIMIT: u64 = u64::MAX - 9;
/// `call`: the child's image has no such endpoint.
pub const ERR_ENDPOINT: u64 = u64::MAX - 10;
/// `call`: the child cannot run (its image's code or memory layout is
/// invalid).
pub const ERR_CHILD: u64 = u64::MAX - 11;

/// `cap_info` of an empty slot.
pub const INFO_EMPTY: u64 = 0xff;

/// `call` result: the child halted; its state was committed into its slot.
pub const CALL_HALT: u64 = 0;
/// `call` result: the child panicked; its slot is unchanged.
pub const CALL_PANIC: u64 = 1;
/// `call` result: the child ran out of gas; its slot is unchanged.
pub const CALL_OUT_OF_GAS: u64 = 2;
/// `call` result: the child page-faulted (φ8 = address); slot unchanged.
pub const CALL_PAGE_FAULT: u64 = 3;

/// Longest `log` message.
pub const MAX_LOG_LEN: u64 = 4096;
/// Longest output.
pub const MAX_OUTPUT_LEN: u64 = 1 << 20;
/// Longest input an invocation carries.
pub const MAX_INPUT_LEN: u64 = 1 << 20;
/// Most bytes one `data_new` / `data_read` / `data_write` /
/// `input_read` / `output_read` moves.
pub const MAX_TRANSFER_LEN: u64 = 16 << 20;
/// Most bytes of new Data one top-level invocation may create, at any depth
/// (`data_new` lengths, plus 4 KiB per page `data_write` touches or adds,
/// plus spawned children's memory): bounds what a program can make the
/// kernel allocate.
pub const MAX_NEW_BYTES: u64 = 32 << 20;
/// Deepest nesting of `call` (the top-level invocation is depth 0).
pub const MAX_CALL_DEPTH: u32 = 8;
/// `call`'s second argument: endpoint in bits 0..32, the child's gas limit
/// in bits 32..64 (0 = all the caller's remaining gas).
pub const CALL_GAS_SHIFT: u32 = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_dense_unique_and_round_trip() {
        for (i, op) in KernelOp::ALL.iter().enumerate() {
            assert_eq!(op.number() as usize, i, "{op:?}");
            assert_eq!(KernelOp::from_number(op.number()), Some(*op));
            assert_eq!(KernelOp::from_name(op.name()), Some(*op));
            assert!(op.args().len() <= 6, "{op:?}: at most φ7..φ12");
        }
        assert_eq!(KernelOp::from_number(KernelOp::ALL.len() as u32), None);
    }

    #[test]
    fn error_codes_are_distinct_and_high() {
        let codes = [
            ERR_MEMORY,
            ERR_TOO_LONG,
            ERR_SLOT,
            ERR_EMPTY,
            ERR_KIND,
            ERR_OFFSET,
            ERR_DEPTH,
            ERR_OCCUPIED,
            ERR_LIMIT,
            ERR_ENDPOINT,
            ERR_CHILD,
        ];
        for (i, a) in codes.iter().enumerate() {
            assert!(*a >= u64::MAX - 16);
            assert!(codes[i + 1..].iter().all(|b| a != b));
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn docs_show_the_generated_table() {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/kernel.md"))
                .expect("docs/kernel.md");
        assert!(
            docs.contains(&doc_table()),
            "docs/kernel.md's op table is out of date; paste this:\n{}",
            doc_table()
        );
    }
}
