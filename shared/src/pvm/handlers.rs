//! The instruction handlers: one function per [`Handler`], each ending in
//! the dispatch of the next instruction as a call in tail position.
//!
//! **Why functions, not one `match`.** With one `match` every instruction
//! goes through the same indirect jump, and where LLVM lays out that one
//! big function (which values stay in registers, how handlers reach the
//! jump) moved unrelated loops by up to 60 % with every edit
//! (docs/pvm-speed.md). Here each handler is a small function of its own
//! with the run's state in four argument registers (machine, program, op,
//! fuel); it ends by loading the next op and calling that op's
//! handler from [`TABLE`]. In an optimised build that call is a jump, so
//! each handler has its own dispatch jump, predicted from its own history,
//! and one handler's code cannot change another's.
//!
//! **Bounded depth without guaranteed tail calls.** Stable Rust does not
//! promise that a call in tail position reuses the frame (`become` is
//! nightly only), so every dispatch spends one unit of *fuel*: a handler
//! called with no fuel left returns to the caller's loop
//! ([`Stop::resume`]) instead of calling on. The stack depth of a run is
//! therefore at most [`FUEL`] frames whatever the build does with the
//! calls, and the stepping loop (out of gas) calls every handler with no
//! fuel, so each returns after its one instruction.
//!
//! **Gas.** Charged per gas block on entry, as before: a jump, a branch or
//! a fall-through into a block charges the target's cost when the gas
//! suffices and fuel is left, and otherwise returns to the caller's loop
//! ([`Stop::enter`]), which charges it, stops for a slice, or steps.
//! During a run [`Machine::gas`] holds the gas the run may use; an op's
//! index is computed from its address only where a run stops, so neither
//! takes an argument register (with six, the hot handlers ran out of
//! scratch registers and saved and restored up to six on every dispatch).

use super::fusion::with_fusions;
use super::interpreter::{Exit, Machine};
use super::layout::HALT_ADDRESS;
use super::memory::AccessTrap;
use super::program::{Handler, INVALID_TARGET, Op, Program};

/// A handler: runs the instruction `op` (an entry of `p.ops`, never
/// anything else: see `next_op`) on the machine, then the ones after it
/// while fuel is left.
pub(super) type HandlerFn =
    for<'a> fn(m: &mut Machine, p: &'a Program, op: &'a Op, fuel: u32) -> Stop;

/// Dispatches per call from the loops in `interpreter.rs`. Bounds the
/// stack depth of a run (see the module's docs); a run returns to the loop
/// this often, which costs a return and one dispatch.
pub(super) const FUEL: u32 = 255;

/// Where and why a chain of handlers returned: two words, so it comes back
/// in registers. `what` holds a kind in its top byte and an index or an
/// exit's payload in its low 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stop {
    /// The index of the instruction that stopped (the one that exited,
    /// jumped, or ran last).
    pub at: usize,
    what: u64,
}

/// What the loop does after a [`Stop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Enter the block at this index: charge it first.
    Enter(usize),
    /// Go on at this index, nothing to charge (the fuel ran out, or the
    /// stepping loop's one instruction is done).
    Resume(usize),
    /// The machine exited.
    Exit(Exit),
}

pub(super) const KIND_SHIFT: u32 = 56;
const ENTER: u64 = 0;
pub(super) const RESUME: u64 = 1;
const HALT: u64 = 2;
const PANIC: u64 = 3;
const OUT_OF_GAS: u64 = 4;
const PAGE_FAULT: u64 = 5;
const HOST_CALL: u64 = 6;

impl Stop {
    #[inline(always)]
    fn new(at: usize, kind: u64, low: u32) -> Stop {
        Stop {
            at,
            what: (kind << KIND_SHIFT) | u64::from(low),
        }
    }

    /// Control moves from `at` to the block at `to`, which is not charged.
    #[inline(always)]
    pub(super) fn enter(at: usize, to: usize) -> Stop {
        // Indices fit in 32 bits: a program has fewer instructions than
        // its code has bytes, and code lengths are u32.
        Stop::new(at, ENTER, to as u32)
    }

    /// `at` ran and the run goes on at `to` with nothing to charge.
    #[inline(always)]
    pub(super) fn resume(at: usize, to: usize) -> Stop {
        Stop::new(at, RESUME, to as u32)
    }

    /// The machine exited at `at`.
    #[inline(always)]
    pub(super) fn exit(at: usize, exit: Exit) -> Stop {
        match exit {
            Exit::Halt => Stop::new(at, HALT, 0),
            Exit::Panic => Stop::new(at, PANIC, 0),
            Exit::OutOfGas => Stop::new(at, OUT_OF_GAS, 0),
            Exit::PageFault(page) => Stop::new(at, PAGE_FAULT, page),
            Exit::HostCall(n) => Stop::new(at, HOST_CALL, n),
            // Handlers never stop for a slice; the loop does.
            Exit::Slice => Stop::new(at, PANIC, 0),
        }
    }

    /// The two words generated code passes around (`jit`).
    #[cfg(feature = "jit")]
    pub(super) fn raw(self) -> (u64, u64) {
        (self.at as u64, self.what)
    }

    /// A stop from [`Self::raw`]'s words.
    #[cfg(feature = "jit")]
    pub(super) fn from_raw(at: u64, what: u64) -> Stop {
        Stop {
            at: at as usize,
            what,
        }
    }

    /// What the loop does next.
    #[inline(always)]
    pub(super) fn next(self) -> Next {
        let low = self.what as u32;
        match self.what >> KIND_SHIFT {
            ENTER => Next::Enter(low as usize),
            RESUME => Next::Resume(low as usize),
            HALT => Next::Exit(Exit::Halt),
            OUT_OF_GAS => Next::Exit(Exit::OutOfGas),
            PAGE_FAULT => Next::Exit(Exit::PageFault(low)),
            HOST_CALL => Next::Exit(Exit::HostCall(low)),
            _ => Next::Exit(Exit::Panic),
        }
    }
}

/// Calls the handler of `op` (index `idx`).
#[inline(always)]
pub(super) fn dispatch<'a>(m: &mut Machine, p: &'a Program, op: &'a Op, fuel: u32) -> Stop {
    TABLE[op.opcode as usize](m, p, op, fuel)
}

/// Calls `handler` for entry `op` (index `idx`), whatever `op.opcode` says.
#[inline(always)]
pub(super) fn dispatch_as<'a>(
    handler: Handler,
    m: &mut Machine,
    p: &'a Program,
    op: &'a Op,
    fuel: u32,
) -> Stop {
    TABLE[handler as usize](m, p, op, fuel)
}

/// The fast twin of every [`Handler`]'s handler by its number.
static TABLE: [HandlerFn; 256] = table::<false>();

/// The slow twins: loads and stores go through the whole region walk.
static SLOW_TABLE: [HandlerFn; 256] = table::<true>();

const fn table<const SLOW: bool>() -> [HandlerFn; 256] {
    let mut table: [HandlerFn; 256] = [handlers::trap::<SLOW>; 256];
    let mut i = 0;
    while i < Handler::ALL.len() {
        let handler = Handler::ALL[i];
        table[handler as usize] = handler_fn::<SLOW>(handler);
        i += 1;
    }
    table
}

/// A load or store left the region of the previous one: runs the
/// instruction at `op` alone (a fused sequence's part is its own entry, so
/// nothing runs twice) through its slow twin, which
/// walks the regions (and moves the memory's window) or traps, then goes
/// on as usual.
#[cold]
#[inline(never)]
fn retry_slow<'a>(m: &mut Machine, p: &'a Program, op: &'a Op, fuel: u32) -> Stop {
    let single = Handler::from_opcode(op.opcode.unfused());
    SLOW_TABLE[single as usize](m, p, op, fuel)
}

/// The entry after `op`.
///
/// # Safety
///
/// `op` must be an entry of a [`Program`]'s ops other than the last one.
#[inline(always)]
unsafe fn next_op(op: &Op) -> &Op {
    // SAFETY: by the contract, `op + 1` is the next entry of the same
    // `Vec<Op>`, alive as long as `op` (same lifetime).
    unsafe { &*core::ptr::from_ref(op).add(1) }
}

/// The index of `op`, an entry of `p.ops`: computed where a run stops
/// rather than carried in a register through every handler.
#[inline(always)]
fn index_of(p: &Program, op: &Op) -> usize {
    let offset = core::ptr::from_ref(op)
        .addr()
        .wrapping_sub(p.ops.as_ptr().addr());
    offset / core::mem::size_of::<Op>()
}

/// No register's index: what `fwd` in a handler names before any part of
/// it wrote a register.
const NO_REG: usize = 13;

#[inline(always)]
fn sext32(value: u64) -> u64 {
    value as u32 as i32 as i64 as u64
}

#[inline(always)]
fn imm(value: u32) -> u64 {
    value as i32 as i64 as u64
}

/// Generates one function per `name => body;` in module `handlers` and
/// [`handler_fn`], whose `match` makes a [`Handler`] without a body a
/// compile error. The bodies name the run's state by the identifiers
/// passed first (`|m, p, op, fuel|`) and use the helper macros
/// defined here (`reg!`, `exit!`, `enter!`, `load!`, ...); `$d` is a `$`,
/// for the helper macros' own parameters.
macro_rules! define_handlers {
    // From `with_fusions!`: the bodies written below, then the fusions.
    (
        [
            $d:tt |$m:ident, $p:ident, $op:ident, $fuel:ident|
            $($name:ident => $body:expr;)*
        ]
        [$($fused:ident = $number:literal, [$first:ident $(, $rest:ident)+];)*]
    ) => {
        define_handlers! {
            @bodies $d |$m, $p, $op, $fuel|
            $($name => $body;)*
            $($fused => fused!($first $(, $rest)+);)*
        }
    };
    (
        @bodies $d:tt |$m:ident, $p:ident, $op:ident, $fuel:ident|
        $($name:ident => $body:expr;)*
    ) => {
        /// The fast twin (`SLOW` = false) or the slow twin of a handler.
        const fn handler_fn<const SLOW: bool>(handler: Handler) -> HandlerFn {
            match handler {
                $(Handler::$name => handlers::$name::<SLOW>,)*
            }
        }

        #[allow(
            non_snake_case,
            unused_mut,
            unused_macros,
            unused_variables,
            unused_assignments,
            unreachable_code
        )]
        mod handlers {
            use super::*;

            $(
                pub(super) fn $name<'a, const SLOW: bool>(
                    $m: &mut Machine,
                    $p: &'a Program,
                    mut $op: &'a Op,
                    $fuel: u32,
                ) -> Stop {
                    macro_rules! reg {
                        ($d r:ident) => {
                            $m.regs[$op.$d r.index()]
                        };
                    }
                    // The register the previous part of a fused sequence
                    // wrote, and its value: a later part that reads it
                    // takes the value from here instead of through the
                    // register file, whose store-then-load round trip
                    // would sit on the host's critical path. `one!` bodies
                    // (and the macros they use) read with `get!` and write
                    // with `set!`; in a handler of one instruction `fwd`
                    // never names a register, and the test folds away.
                    let mut fwd: (usize, u64) = (NO_REG, 0);
                    macro_rules! get {
                        ($d r:ident) => {{
                            let i = $op.$d r.index();
                            if i == fwd.0 { fwd.1 } else { $m.regs[i] }
                        }};
                    }
                    macro_rules! set {
                        ($d r:ident, $d value:expr) => {{
                            let value = $d value;
                            let i = $op.$d r.index();
                            $m.regs[i] = value;
                            fwd = (i, value);
                        }};
                    }
                    macro_rules! exit {
                        ($d exit:expr) => {{
                            return Stop::exit(index_of($p, $op), $d exit);
                        }};
                    }
                    macro_rules! trap {
                        ($d trap:expr) => {
                            match $d trap {
                                AccessTrap::Panic => exit!(Exit::Panic),
                                AccessTrap::Fault(page) => exit!(Exit::PageFault(page)),
                            }
                        };
                    }
                    // Enters the block at `to`: charges it and calls on when
                    // fuel is left and the gas suffices; otherwise the loop
                    // decides (charge, slice, or step).
                    macro_rules! enter {
                        ($d to:expr) => {{
                            let to: usize = $d to;
                            if $fuel > 0
                                && let Some(next) = $p.ops.get(to)
                                && $m.gas >= i64::from(next.gas)
                            {
                                $m.gas -= i64::from(next.gas);
                                return dispatch($m, $p, next, $fuel - 1);
                            }
                            return Stop::enter(index_of($p, $op), to);
                        }};
                    }
                    // The entry after this one (this instruction is not the
                    // last entry: see `next_op`).
                    macro_rules! next {
                        () => {{
                            // Handlers get only entries of their program (the
                            // loops in `interpreter.rs` and the handlers pass
                            // nothing else); `next!` serves only an instruction
                            // that falls through, a branch not taken, or a fused
                            // sequence's part before its last.
                            debug_assert!(index_of($p, $op) + 1 < $p.ops.len());
                            // SAFETY: so `$op` is not the last entry (always a
                            // synthesised `trap`, `Program::from_parts`).
                            unsafe { next_op($op) }
                        }};
                    }
                    // `enter!(index + 1)`, without computing the index.
                    macro_rules! enter_next {
                        () => {{
                            let next = next!();
                            if $fuel > 0 && $m.gas >= i64::from(next.gas) {
                                $m.gas -= i64::from(next.gas);
                                return dispatch($m, $p, next, $fuel - 1);
                            }
                            let at = index_of($p, $op);
                            return Stop::enter(at, at + 1);
                        }};
                    }
                    macro_rules! jump {
                        ($d target:expr) => {{
                            let target = $d target;
                            if target == INVALID_TARGET {
                                exit!(Exit::Panic);
                            }
                            enter!(target as usize);
                        }};
                    }
                    // A conditional branch whose target is not a block start
                    // panics whether or not it is taken (departure 11 in
                    // `pvm`'s docs).
                    macro_rules! branch {
                        ($d cond:expr) => {{
                            if $op.y == INVALID_TARGET {
                                exit!(Exit::Panic);
                            }
                            if $d cond {
                                enter!($op.y as usize);
                            }
                            enter_next!();
                        }};
                    }
                    macro_rules! djump {
                        ($d address:expr) => {{
                            let address = $d address as u32;
                            if address == HALT_ADDRESS {
                                exit!(Exit::Halt);
                            }
                            let entry = (address / 2) as usize;
                            if address == 0 || address % 2 != 0 {
                                exit!(Exit::Panic);
                            }
                            match $p.jump_targets.get(entry - 1) {
                                Some(&target) => jump!(target),
                                None => exit!(Exit::Panic),
                            }
                        }};
                    }
                    // The fast twin tries the previous access's region
                    // only; on a miss it hands this instruction to its slow
                    // twin (`retry_slow`), so the fast path holds no call.
                    macro_rules! load {
                        ($d dst:ident, $d address:expr, $d n:literal, $d convert:expr) => {{
                            let address = $d address as u32;
                            if SLOW {
                                match $m.memory.load::<$d n>(address) {
                                    Ok(bytes) => set!($d dst, $d convert(bytes)),
                                    Err(trap) => trap!(trap),
                                }
                            } else {
                                match $m.memory.load_hinted::<$d n>(address) {
                                    Some(bytes) => set!($d dst, $d convert(bytes)),
                                    None => return retry_slow($m, $p, $op, $fuel),
                                }
                            }
                        }};
                    }
                    macro_rules! store {
                        ($d address:expr, $d bytes:expr) => {{
                            let address = $d address as u32;
                            let bytes = $d bytes;
                            if SLOW {
                                if let Err(trap) = $m.memory.store(address, bytes) {
                                    trap!(trap);
                                }
                            } else if !$m.memory.store_hinted(address, bytes) {
                                return retry_slow($m, $p, $op, $fuel);
                            }
                        }};
                    }
                    macro_rules! sbrk {
                        ($d size:expr) => {{
                            let size = $d size;
                            $m.memory.sbrk(size)
                        }};
                    }
                    macro_rules! alu3 {
                        (|$d a:ident, $d b:ident| $d value:expr) => {{
                            let $d a = get!(a);
                            let $d b = get!(b);
                            set!(d, $d value);
                        }};
                    }
                    macro_rules! alu_imm {
                        (|$d b:ident, $d x:ident| $d value:expr) => {{
                            let $d b = get!(b);
                            let $d x = imm($op.x);
                            set!(a, $d value);
                        }};
                    }
                    // The body of each instruction that takes part in a
                    // fusion (its only definition: its own handler runs
                    // it through here too).
                    macro_rules! one {
                        (load_ind_u64) => {
                            load!(a, get!(b).wrapping_add(imm($op.x)), 8, u64::from_le_bytes)
                        };
                        (load_ind_u8) => {
                            load!(a, get!(b).wrapping_add(imm($op.x)), 1, |b: [u8; 1]| {
                                u64::from(b[0])
                            })
                        };
                        (store_ind_u64) => {
                            store!(get!(b).wrapping_add(imm($op.x)), get!(a).to_le_bytes())
                        };
                        (store_ind_u8) => {
                            store!(get!(b).wrapping_add(imm($op.x)), [get!(a) as u8])
                        };
                        (store_imm_ind_u8) => {
                            store!(get!(a).wrapping_add(imm($op.x)), [$op.y as u8])
                        };
                        (add_64) => {
                            alu3!(|a, b| a.wrapping_add(b))
                        };
                        (xor) => {
                            alu3!(|a, b| a ^ b)
                        };
                        (or) => {
                            alu3!(|a, b| a | b)
                        };
                        (mul_64) => {
                            alu3!(|a, b| a.wrapping_mul(b))
                        };
                        (shlo_l_64) => {
                            alu3!(|a, b| a << (b & 63))
                        };
                        (rot_r_64_imm) => {
                            alu_imm!(|b, x| b.rotate_right((x & 63) as u32))
                        };
                        (add_imm_64) => {
                            alu_imm!(|b, x| b.wrapping_add(x))
                        };
                        (and_imm) => {
                            alu_imm!(|b, x| b & x)
                        };
                        (shlo_l_imm_64) => {
                            alu_imm!(|b, x| b << (x & 63))
                        };
                        (shlo_r_imm_64) => {
                            alu_imm!(|b, x| b >> (x & 63))
                        };
                        (branch_ne_imm) => {
                            branch!(get!(a) != imm($op.x))
                        };
                        (branch_ge_u) => {
                            branch!(get!(a) >= get!(b))
                        };
                        (branch_lt_u) => {
                            branch!(get!(a) < get!(b))
                        };
                        (jump) => {
                            jump!($op.y)
                        };
                        (move_reg) => {
                            set!(d, get!(a))
                        };
                    }
                    // A fused sequence: the first instruction, then each
                    // next one on its own entry (so an exit there reports
                    // its index); none is past the end, as only the last
                    // may be a terminator.
                    macro_rules! fused {
                        ($d first:ident $d(, $d rest:ident)+) => {{
                            one!($d first);
                            $d(
                                $op = next!();
                                one!($d rest);
                            )+
                        }};
                    }

                    $body;

                    // Not a terminator: on to the next instruction (the last
                    // entry is always a trap, so there is one).
                    if $fuel == 0 {
                        let at = index_of($p, $op);
                        return Stop::resume(at, at + 1);
                    }
                    dispatch($m, $p, next!(), $fuel - 1)
                }
            )*
        }
    };
}

with_fusions!(define_handlers {
    $ |m, p, op, fuel|
    trap => exit!(Exit::Panic);
    fallthrough => enter_next!();
    ecalli => exit!(Exit::HostCall(op.x));
    load_imm_64 => reg!(a) = u64::from(op.x) | (u64::from(op.y) << 32);
    store_imm_u8 => store!(op.x, [op.y as u8]);
    store_imm_u16 => store!(op.x, (op.y as u16).to_le_bytes());
    store_imm_u32 => store!(op.x, op.y.to_le_bytes());
    store_imm_u64 => store!(op.x, imm(op.y).to_le_bytes());
    jump => one!(jump);
    jump_ind => djump!(reg!(a).wrapping_add(imm(op.x)));
    load_imm => reg!(a) = imm(op.x);
    load_u8 => load!(a, op.x, 1, |b: [u8; 1]| u64::from(b[0]));
    load_i8 => load!(a, op.x, 1, |b: [u8; 1]| b[0] as i8 as i64 as u64);
    load_u16 => load!(a, op.x, 2, |b| u64::from(u16::from_le_bytes(b)));
    load_i16 => load!(a, op.x, 2, |b| i16::from_le_bytes(b) as i64 as u64);
    load_u32 => load!(a, op.x, 4, |b| u64::from(u32::from_le_bytes(b)));
    load_i32 => load!(a, op.x, 4, |b| i32::from_le_bytes(b) as i64 as u64);
    load_u64 => load!(a, op.x, 8, u64::from_le_bytes);
    store_u8 => store!(op.x, [reg!(a) as u8]);
    store_u16 => store!(op.x, (reg!(a) as u16).to_le_bytes());
    store_u32 => store!(op.x, (reg!(a) as u32).to_le_bytes());
    store_u64 => store!(op.x, reg!(a).to_le_bytes());
    store_imm_ind_u8 => one!(store_imm_ind_u8);
    store_imm_ind_u16 => {
            store!(reg!(a).wrapping_add(imm(op.x)), (op.y as u16).to_le_bytes())
        };
    store_imm_ind_u32 => {
            store!(reg!(a).wrapping_add(imm(op.x)), op.y.to_le_bytes())
        };
    store_imm_ind_u64 => {
            store!(reg!(a).wrapping_add(imm(op.x)), imm(op.y).to_le_bytes())
        };
    load_imm_jump => {
            reg!(a) = imm(op.x);
            jump!(op.y)
        };
    branch_eq_imm => branch!(reg!(a) == imm(op.x));
    branch_ne_imm => one!(branch_ne_imm);
    branch_lt_u_imm => branch!(reg!(a) < imm(op.x));
    branch_le_u_imm => branch!(reg!(a) <= imm(op.x));
    branch_ge_u_imm => branch!(reg!(a) >= imm(op.x));
    branch_gt_u_imm => branch!(reg!(a) > imm(op.x));
    branch_lt_s_imm => branch!((reg!(a) as i64) < (imm(op.x) as i64));
    branch_le_s_imm => branch!((reg!(a) as i64) <= (imm(op.x) as i64));
    branch_ge_s_imm => branch!((reg!(a) as i64) >= (imm(op.x) as i64));
    branch_gt_s_imm => branch!((reg!(a) as i64) > (imm(op.x) as i64));
    move_reg => one!(move_reg);
    sbrk => reg!(d) = sbrk!(reg!(a));
    count_set_bits_64 => reg!(d) = u64::from(reg!(a).count_ones());
    count_set_bits_32 => reg!(d) = u64::from((reg!(a) as u32).count_ones());
    leading_zero_bits_64 => reg!(d) = u64::from(reg!(a).leading_zeros());
    leading_zero_bits_32 => reg!(d) = u64::from((reg!(a) as u32).leading_zeros());
    trailing_zero_bits_64 => reg!(d) = u64::from(reg!(a).trailing_zeros());
    trailing_zero_bits_32 => {
            reg!(d) = u64::from((reg!(a) as u32).trailing_zeros())
        };
    sign_extend_8 => reg!(d) = reg!(a) as u8 as i8 as i64 as u64;
    sign_extend_16 => reg!(d) = reg!(a) as u16 as i16 as i64 as u64;
    zero_extend_16 => reg!(d) = u64::from(reg!(a) as u16);
    reverse_bytes => reg!(d) = reg!(a).swap_bytes();
    store_ind_u8 => one!(store_ind_u8);
    store_ind_u16 => store!(
            reg!(b).wrapping_add(imm(op.x)),
            (reg!(a) as u16).to_le_bytes()
        );
    store_ind_u32 => store!(
            reg!(b).wrapping_add(imm(op.x)),
            (reg!(a) as u32).to_le_bytes()
        );
    store_ind_u64 => one!(store_ind_u64);
    load_ind_u8 => one!(load_ind_u8);
    load_ind_i8 => load!(a, reg!(b).wrapping_add(imm(op.x)), 1, |b: [u8; 1]| {
            b[0] as i8 as i64 as u64
        });
    load_ind_u16 => load!(a, reg!(b).wrapping_add(imm(op.x)), 2, |b| {
            u64::from(u16::from_le_bytes(b))
        });
    load_ind_i16 => load!(a, reg!(b).wrapping_add(imm(op.x)), 2, |b| {
            i16::from_le_bytes(b) as i64 as u64
        });
    load_ind_u32 => load!(a, reg!(b).wrapping_add(imm(op.x)), 4, |b| {
            u64::from(u32::from_le_bytes(b))
        });
    load_ind_i32 => load!(a, reg!(b).wrapping_add(imm(op.x)), 4, |b| {
            i32::from_le_bytes(b) as i64 as u64
        });
    load_ind_u64 => one!(load_ind_u64);
    add_imm_32 => alu_imm!(|b, x| sext32(b.wrapping_add(x)));
    and_imm => one!(and_imm);
    xor_imm => alu_imm!(|b, x| b ^ x);
    or_imm => alu_imm!(|b, x| b | x);
    mul_imm_32 => alu_imm!(|b, x| sext32(b.wrapping_mul(x)));
    set_lt_u_imm => alu_imm!(|b, x| u64::from(b < x));
    set_lt_s_imm => alu_imm!(|b, x| u64::from((b as i64) < (x as i64)));
    shlo_l_imm_32 => alu_imm!(|b, x| sext32(u64::from((b as u32) << (x & 31))));
    shlo_r_imm_32 => alu_imm!(|b, x| sext32(u64::from((b as u32) >> (x & 31))));
    shar_r_imm_32 => alu_imm!(|b, x| ((b as i32) >> (x & 31)) as i64 as u64);
    neg_add_imm_32 => alu_imm!(|b, x| sext32(x.wrapping_sub(b)));
    set_gt_u_imm => alu_imm!(|b, x| u64::from(b > x));
    set_gt_s_imm => alu_imm!(|b, x| u64::from((b as i64) > (x as i64)));
    shlo_l_imm_alt_32 => {
            alu_imm!(|b, x| sext32(u64::from((x as u32) << (b & 31))))
        };
    shlo_r_imm_alt_32 => {
            alu_imm!(|b, x| sext32(u64::from((x as u32) >> (b & 31))))
        };
    shar_r_imm_alt_32 => {
            alu_imm!(|b, x| ((x as i32) >> (b & 31)) as i64 as u64)
        };
    cmov_iz_imm => {
            if reg!(b) == 0 {
                reg!(a) = imm(op.x);
            }
        };
    cmov_nz_imm => {
            if reg!(b) != 0 {
                reg!(a) = imm(op.x);
            }
        };
    add_imm_64 => one!(add_imm_64);
    mul_imm_64 => alu_imm!(|b, x| b.wrapping_mul(x));
    shlo_l_imm_64 => one!(shlo_l_imm_64);
    shlo_r_imm_64 => one!(shlo_r_imm_64);
    shar_r_imm_64 => alu_imm!(|b, x| ((b as i64) >> (x & 63)) as u64);
    neg_add_imm_64 => alu_imm!(|b, x| x.wrapping_sub(b));
    shlo_l_imm_alt_64 => alu_imm!(|b, x| x << (b & 63));
    shlo_r_imm_alt_64 => alu_imm!(|b, x| x >> (b & 63));
    shar_r_imm_alt_64 => alu_imm!(|b, x| ((x as i64) >> (b & 63)) as u64);
    rot_r_64_imm => one!(rot_r_64_imm);
    rot_r_64_imm_alt => alu_imm!(|b, x| x.rotate_right((b & 63) as u32));
    rot_r_32_imm => {
            alu_imm!(|b, x| sext32(u64::from((b as u32).rotate_right((x & 31) as u32))))
        };
    rot_r_32_imm_alt => {
            alu_imm!(|b, x| sext32(u64::from((x as u32).rotate_right((b & 31) as u32))))
        };
    branch_eq => branch!(reg!(a) == reg!(b));
    branch_ne => branch!(reg!(a) != reg!(b));
    branch_lt_u => one!(branch_lt_u);
    branch_lt_s => branch!((reg!(a) as i64) < (reg!(b) as i64));
    branch_ge_u => one!(branch_ge_u);
    branch_ge_s => branch!((reg!(a) as i64) >= (reg!(b) as i64));
    load_imm_jump_ind => {
            let address = reg!(b).wrapping_add(imm(op.y));
            reg!(a) = imm(op.x);
            djump!(address)
        };
    add_32 => alu3!(|a, b| sext32(a.wrapping_add(b)));
    sub_32 => alu3!(|a, b| sext32(a.wrapping_sub(b)));
    mul_32 => alu3!(|a, b| sext32(a.wrapping_mul(b)));
    div_u_32 => alu3!(|a, b| match b as u32 {
            0 => u64::MAX,
            divisor => sext32(u64::from((a as u32) / divisor)),
        });
    div_s_32 => alu3!(|a, b| {
            let (a, b) = (a as i32, b as i32);
            match b {
                0 => u64::MAX,
                _ => a.wrapping_div(b) as i64 as u64,
            }
        });
    rem_u_32 => alu3!(|a, b| match b as u32 {
            0 => sext32(a),
            divisor => sext32(u64::from((a as u32) % divisor)),
        });
    rem_s_32 => alu3!(|a, b| {
            let (a, b) = (a as i32, b as i32);
            match b {
                0 => a as i64 as u64,
                _ => a.wrapping_rem(b) as i64 as u64,
            }
        });
    shlo_l_32 => alu3!(|a, b| sext32(u64::from((a as u32) << (b & 31))));
    shlo_r_32 => alu3!(|a, b| sext32(u64::from((a as u32) >> (b & 31))));
    shar_r_32 => alu3!(|a, b| ((a as i32) >> (b & 31)) as i64 as u64);
    add_64 => one!(add_64);
    sub_64 => alu3!(|a, b| a.wrapping_sub(b));
    mul_64 => one!(mul_64);
    div_u_64 => alu3!(|a, b| a.checked_div(b).unwrap_or(u64::MAX));
    div_s_64 => alu3!(|a, b| match b {
            0 => u64::MAX,
            _ => (a as i64).wrapping_div(b as i64) as u64,
        });
    rem_u_64 => alu3!(|a, b| a.checked_rem(b).unwrap_or(a));
    rem_s_64 => alu3!(|a, b| match b {
            0 => a,
            _ => (a as i64).wrapping_rem(b as i64) as u64,
        });
    shlo_l_64 => one!(shlo_l_64);
    shlo_r_64 => alu3!(|a, b| a >> (b & 63));
    shar_r_64 => alu3!(|a, b| ((a as i64) >> (b & 63)) as u64);
    and => alu3!(|a, b| a & b);
    xor => one!(xor);
    or => one!(or);
    mul_upper_s_s => {
            alu3!(|a, b| ((i128::from(a as i64) * i128::from(b as i64)) >> 64) as u64)
        };
    mul_upper_u_u => {
            alu3!(|a, b| ((u128::from(a) * u128::from(b)) >> 64) as u64)
        };
    mul_upper_s_u => {
            alu3!(|a, b| ((i128::from(a as i64) * i128::from(b)) >> 64) as u64)
        };
    set_lt_u => alu3!(|a, b| u64::from(a < b));
    set_lt_s => alu3!(|a, b| u64::from((a as i64) < (b as i64)));
    cmov_iz => {
            if reg!(b) == 0 {
                reg!(d) = reg!(a);
            }
        };
    cmov_nz => {
            if reg!(b) != 0 {
                reg!(d) = reg!(a);
            }
        };
    rot_l_64 => alu3!(|a, b| a.rotate_left((b & 63) as u32));
    rot_l_32 => {
            alu3!(|a, b| sext32(u64::from((a as u32).rotate_left((b & 31) as u32))))
        };
    rot_r_64 => alu3!(|a, b| a.rotate_right((b & 63) as u32));
    rot_r_32 => {
            alu3!(|a, b| sext32(u64::from((a as u32).rotate_right((b & 31) as u32))))
        };
    and_inv => alu3!(|a, b| a & !b);
    or_inv => alu3!(|a, b| a | !b);
    xnor => alu3!(|a, b| !(a ^ b));
    max => alu3!(|a, b| (a as i64).max(b as i64) as u64);
    max_u => alu3!(|a, b| a.max(b));
    min => alu3!(|a, b| (a as i64).min(b as i64) as u64);
    min_u => alu3!(|a, b| a.min(b));
});
