//! The interpreter: runs a pre-decoded [`Program`] on a [`Machine`].
//!
//! Gas is charged once per gas block on entry (see [`crate::pvm`] for the
//! exact rules); inside a block the loop only dispatches. When the
//! remaining gas cannot pay for the whole block, the same loop is run in a
//! second, stepping instantiation that stops at the first instruction that
//! cannot be paid, so the out-of-gas state is the Graypaper's. A gas block
//! runs through its `ecalli`s: a host call from a block paid in full
//! leaves `Machine::prepaid_at` set, and the run that resumes there starts
//! with nothing to charge (departure 12).
//!
//! **Slices.** [`Machine::run_sliced`] lets the caller regain control every
//! so many gas units without changing anything else: the run's gas is split
//! into a *slice* and a *reserve*. When the next block cannot be paid from
//! the slice but could with the reserve, the run stops with
//! [`Exit::Slice`] at that block's first instruction, nothing charged;
//! running again continues as if nothing happened. When the block cannot
//! be paid even with the reserve, the reserve joins the slice and the
//! stepping loop runs as without slices. The test sits where the block
//! charge already failed, so the hot loop is unchanged, and gas, registers,
//! memory and every other exit are those of an unsliced run.

use super::layout::HALT_ADDRESS;
use super::memory::{AccessTrap, Memory};
use super::program::{Handler, INVALID_TARGET, Op, Program};

/// Why [`Machine::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// A dynamic jump to the halt address ([`HALT_ADDRESS`]).
    Halt,
    /// `trap`, an invalid instruction or jump, or an access below 64 KiB.
    Panic,
    /// The gas ran out.
    OutOfGas,
    /// An access touched an inaccessible page (the page's address).
    PageFault(u32),
    /// `ecalli` with this immediate; `pc` already points past it, so calling
    /// `run` again resumes.
    HostCall(u32),
    /// Only from [`Machine::run_sliced`]: the slice is used up. `pc` is
    /// the start of the next block, which is not charged yet; running
    /// again resumes.
    Slice,
}

/// The machine state: registers `φ`, program counter `ı`, gas `ϱ` and
/// memory `μ`.
#[derive(Debug, Default)]
pub struct Machine {
    /// The 13 registers.
    pub regs: [u64; 13],
    /// Code offset of the next instruction to execute.
    pub pc: u32,
    /// Remaining gas; negative after running out.
    pub gas: i64,
    /// The memory.
    pub memory: Memory,
    /// After a [`Exit::HostCall`] from a block that was charged in full on
    /// entry: the `pc` the run resumes at, whose rest of the block is
    /// already paid (departure 12). Any run clears it; it only applies
    /// when that run starts at this `pc`, so a caller that moves `pc`
    /// (or starts afresh) is charged as usual.
    prepaid_at: Option<u32>,
}

/// How the inner loop left.
enum Flow {
    /// Control moved (`from` → `to`); the block at `to` must be charged.
    Enter { from: usize, to: usize },
    /// The machine stopped at instruction `at`.
    Exit { exit: Exit, at: usize },
}

impl Machine {
    /// A machine with the given state.
    pub fn new(regs: [u64; 13], pc: u32, gas: i64, memory: Memory) -> Machine {
        Machine {
            regs,
            pc,
            gas,
            memory,
            prepaid_at: None,
        }
    }

    /// Runs until the machine exits. Never panics, whatever the program or
    /// memory; on every exit but `HostCall`, `pc` is the instruction that
    /// caused it.
    pub fn run(&mut self, program: &Program) -> Exit {
        self.run_at(program, program.index_of(self.pc), u64::MAX)
    }

    /// [`Self::run`], but stops with [`Exit::Slice`] at the first block
    /// boundary where the gas used by this run plus the next block's cost
    /// would exceed `slice` (the first block is always run: a slice
    /// smaller than its cost counts as its cost). Apart from those extra
    /// stops everything (gas, registers, memory, exits) is exactly as
    /// with [`Self::run`]; `gas` always holds all the remaining gas.
    pub fn run_sliced(&mut self, program: &Program, slice: u64) -> Exit {
        self.run_at(program, program.index_of(self.pc), slice)
    }

    /// [`Self::run_sliced`] with `program.index_of(self.pc)` already known
    /// (`start`), e.g. an entry point looked up once per program
    /// (`slice` = `u64::MAX`: no slices).
    pub(crate) fn run_at(&mut self, program: &Program, start: Option<usize>, slice: u64) -> Exit {
        debug_assert_eq!(start, program.index_of(self.pc));
        // Indexed by the decoded register numbers (always ≤ 12) masked to
        // 4 bits: the mask lets the compiler drop the bounds check, and 16
        // entries are cheap to set up per run (256, unmasked, cost a 2 KiB
        // memset on every run and every resume after a kernel op).
        let mut regs = [0u64; 16];
        regs[..13].copy_from_slice(&self.regs);
        let prepaid = self.prepaid_at.take() == Some(self.pc);
        let exit = match start {
            Some(start) => self.execute(program, &mut regs, start, slice, prepaid),
            // Not an instruction start: the opcode reads as `trap`.
            None => {
                self.gas = self.gas.saturating_sub(1);
                if self.gas < 0 {
                    Exit::OutOfGas
                } else {
                    Exit::Panic
                }
            }
        };
        self.regs.copy_from_slice(&regs[..13]);
        exit
    }

    fn execute(
        &mut self,
        program: &Program,
        regs: &mut [u64; 16],
        mut idx: usize,
        slice: u64,
        prepaid: bool,
    ) -> Exit {
        let cost_at = |idx: usize| program.ops.get(idx).map_or(1, |op| i64::from(op.gas));
        // Resuming after a host call in a block paid in full: the rest of
        // it costs nothing now (departure 12).
        let mut first_cost = Some(if prepaid { 0 } else { cost_at(idx) });
        // The gas this run may use before a slice stop (`gas`, kept in a
        // local so the hot loop does not go through `self`) and the rest
        // (`reserve`). At least the first block's cost, so every run makes
        // progress.
        let slice = i64::try_from(slice)
            .unwrap_or(i64::MAX)
            .max(first_cost.unwrap_or(0));
        let (mut gas, mut reserve) = if self.gas > slice {
            (slice, self.gas - slice)
        } else {
            (self.gas, 0)
        };
        let memory = &mut self.memory;
        // Whether the block the machine is in was paid in full on entry.
        let mut paid = true;
        let (exit, at) = loop {
            let cost = first_cost.take().unwrap_or_else(|| cost_at(idx));
            let flow = if gas >= cost {
                gas -= cost;
                paid = true;
                interpret::<false>(program, regs, memory, &mut gas, idx, usize::MAX)
            } else if gas + reserve >= cost {
                // Payable, but not from the slice: stop before the block.
                break (Exit::Slice, idx);
            } else {
                // Not payable at all: step with all the gas there is.
                paid = false;
                gas += reserve;
                reserve = 0;
                let start = idx;
                let affordable = gas.max(0) as usize;
                let flow =
                    interpret::<true>(program, regs, memory, &mut gas, idx, start + affordable);
                // Stepping charges each executed instruction, including the
                // one that exits (or could not be paid).
                let last = match flow {
                    Flow::Enter { from, .. } => from,
                    Flow::Exit { at, .. } => at,
                };
                gas = gas.saturating_sub((last - start + 1) as i64);
                flow
            };
            match flow {
                Flow::Enter { to, .. } => idx = to,
                Flow::Exit { exit, at } => break (exit, at),
            }
        };
        // 0 ≤ reserve, and reserve > 0 only while gas ≥ 0: no overflow.
        self.gas = gas + reserve;
        let resume_at = match exit {
            Exit::HostCall(_) => at + 1,
            _ => at,
        };
        self.pc = program.pcs.get(resume_at).copied().unwrap_or(self.pc);
        if paid && matches!(exit, Exit::HostCall(_)) {
            self.prepaid_at = Some(self.pc);
        }
        exit
    }
}

#[inline(always)]
fn sext32(value: u64) -> u64 {
    value as u32 as i32 as i64 as u64
}

#[inline(always)]
fn imm(value: u32) -> u64 {
    value as i32 as i64 as u64
}

/// Runs instructions from `idx` until control leaves the block or the
/// machine exits. With `STEP`, stops before executing instruction `stop`
/// (out of gas).
#[inline(always)]
fn interpret<const STEP: bool>(
    program: &Program,
    regs: &mut [u64; 16],
    memory: &mut Memory,
    gas: &mut i64,
    mut idx: usize,
    stop: usize,
) -> Flow {
    let ops: &[Op] = &program.ops;
    loop {
        if STEP && idx >= stop {
            return Flow::Exit {
                exit: Exit::OutOfGas,
                at: idx,
            };
        }
        let Some(mut op) = ops.get(idx) else {
            // Unreachable: the last entry is always a trap.
            return Flow::Exit {
                exit: Exit::Panic,
                at: idx.saturating_sub(1),
            };
        };
        macro_rules! reg {
            ($r:ident) => {
                regs[op.$r.index()]
            };
        }
        macro_rules! exit {
            ($exit:expr) => {
                return Flow::Exit {
                    exit: $exit,
                    at: idx,
                }
            };
        }
        macro_rules! trap {
            ($trap:expr) => {
                match $trap {
                    AccessTrap::Panic => exit!(Exit::Panic),
                    AccessTrap::Fault(page) => exit!(Exit::PageFault(page)),
                }
            };
        }
        // Enters the block at `to`: in the fast instantiation, charges it and
        // keeps looping when the gas suffices; otherwise lets the caller
        // decide (stepping).
        macro_rules! enter {
            ($to:expr) => {{
                let to: usize = $to;
                if !STEP
                    && let Some(next) = ops.get(to)
                    && *gas >= i64::from(next.gas)
                {
                    *gas -= i64::from(next.gas);
                    idx = to;
                    continue;
                }
                return Flow::Enter { from: idx, to };
            }};
        }
        macro_rules! jump {
            ($target:expr) => {{
                let target = $target;
                if target == INVALID_TARGET {
                    exit!(Exit::Panic);
                }
                enter!(target as usize);
            }};
        }
        // A conditional branch whose target is not a block start panics
        // whether or not it is taken (departure 11 in `pvm`'s docs).
        macro_rules! branch {
            ($cond:expr) => {{
                if op.y == INVALID_TARGET {
                    exit!(Exit::Panic);
                }
                if $cond {
                    enter!(op.y as usize);
                }
                enter!(idx + 1);
            }};
        }
        macro_rules! djump {
            ($address:expr) => {{
                let address = $address as u32;
                if address == HALT_ADDRESS {
                    exit!(Exit::Halt);
                }
                let entry = (address / 2) as usize;
                if address == 0 || address % 2 != 0 {
                    exit!(Exit::Panic);
                }
                match program.jump_targets.get(entry - 1) {
                    Some(&target) => jump!(target),
                    None => exit!(Exit::Panic),
                }
            }};
        }
        macro_rules! load {
            ($dst:ident, $address:expr, $n:literal, $convert:expr) => {{
                match memory.load::<$n>($address as u32) {
                    Ok(bytes) => reg!($dst) = $convert(bytes),
                    Err(trap) => trap!(trap),
                }
            }};
        }
        macro_rules! store {
            ($address:expr, $bytes:expr) => {{
                if let Err(trap) = memory.store($address as u32, $bytes) {
                    trap!(trap);
                }
            }};
        }
        macro_rules! alu3 {
            (|$a:ident, $b:ident| $value:expr) => {{
                let $a = reg!(a);
                let $b = reg!(b);
                reg!(d) = $value;
            }};
        }
        macro_rules! alu_imm {
            (|$b:ident, $x:ident| $value:expr) => {{
                let $b = reg!(b);
                let $x = imm(op.x);
                reg!(a) = $value;
            }};
        }
        // The body of one instruction, for the fused pairs.
        macro_rules! one {
            (load_ind_u64) => {
                load!(a, reg!(b).wrapping_add(imm(op.x)), 8, u64::from_le_bytes)
            };
            (load_ind_u8) => {
                load!(a, reg!(b).wrapping_add(imm(op.x)), 1, |b: [u8; 1]| {
                    u64::from(b[0])
                })
            };
            (store_ind_u64) => {
                store!(reg!(b).wrapping_add(imm(op.x)), reg!(a).to_le_bytes())
            };
            (add_64) => {
                alu3!(|a, b| a.wrapping_add(b))
            };
            (xor) => {
                alu3!(|a, b| a ^ b)
            };
            (mul_64) => {
                alu3!(|a, b| a.wrapping_mul(b))
            };
            (rot_r_64_imm) => {
                alu_imm!(|b, x| b.rotate_right((x & 63) as u32))
            };
            (add_imm_64) => {
                alu_imm!(|b, x| b.wrapping_add(x))
            };
            (branch_ne_imm) => {
                branch!(reg!(a) != imm(op.x))
            };
        }
        // A fused pair: the first instruction, then the second (its own
        // entry, so an exit there reports its index); the second never
        // is past the end, as the first is not a terminator.
        macro_rules! pair {
            ($first:ident, $second:ident) => {{
                one!($first);
                idx += 1;
                op = match ops.get(idx) {
                    Some(next) => next,
                    None => exit!(Exit::Panic),
                };
                one!($second);
            }};
        }
        // The stepping loop runs a fused pair's first instruction alone.
        let handler = if STEP {
            Handler::from_opcode(op.opcode.unfused())
        } else {
            op.opcode
        };
        match handler {
            Handler::load_ind_u64__add_64 => pair!(load_ind_u64, add_64),
            Handler::load_ind_u64__load_ind_u64 => pair!(load_ind_u64, load_ind_u64),
            Handler::store_ind_u64__load_ind_u64 => pair!(store_ind_u64, load_ind_u64),
            Handler::add_64__store_ind_u64 => pair!(add_64, store_ind_u64),
            Handler::add_64__add_64 => pair!(add_64, add_64),
            Handler::xor__rot_r_64_imm => pair!(xor, rot_r_64_imm),
            Handler::load_ind_u8__add_imm_64 => pair!(load_ind_u8, add_imm_64),
            Handler::xor__add_imm_64 => pair!(xor, add_imm_64),
            Handler::mul_64__branch_ne_imm => pair!(mul_64, branch_ne_imm),
            Handler::trap => exit!(Exit::Panic),
            Handler::fallthrough => enter!(idx + 1),
            Handler::ecalli => exit!(Exit::HostCall(op.x)),
            Handler::load_imm_64 => reg!(a) = u64::from(op.x) | (u64::from(op.y) << 32),
            Handler::store_imm_u8 => store!(op.x, [op.y as u8]),
            Handler::store_imm_u16 => store!(op.x, (op.y as u16).to_le_bytes()),
            Handler::store_imm_u32 => store!(op.x, op.y.to_le_bytes()),
            Handler::store_imm_u64 => store!(op.x, imm(op.y).to_le_bytes()),
            Handler::jump => jump!(op.y),
            Handler::jump_ind => djump!(reg!(a).wrapping_add(imm(op.x))),
            Handler::load_imm => reg!(a) = imm(op.x),
            Handler::load_u8 => load!(a, op.x, 1, |b: [u8; 1]| u64::from(b[0])),
            Handler::load_i8 => load!(a, op.x, 1, |b: [u8; 1]| b[0] as i8 as i64 as u64),
            Handler::load_u16 => load!(a, op.x, 2, |b| u64::from(u16::from_le_bytes(b))),
            Handler::load_i16 => load!(a, op.x, 2, |b| i16::from_le_bytes(b) as i64 as u64),
            Handler::load_u32 => load!(a, op.x, 4, |b| u64::from(u32::from_le_bytes(b))),
            Handler::load_i32 => load!(a, op.x, 4, |b| i32::from_le_bytes(b) as i64 as u64),
            Handler::load_u64 => load!(a, op.x, 8, u64::from_le_bytes),
            Handler::store_u8 => store!(op.x, [reg!(a) as u8]),
            Handler::store_u16 => store!(op.x, (reg!(a) as u16).to_le_bytes()),
            Handler::store_u32 => store!(op.x, (reg!(a) as u32).to_le_bytes()),
            Handler::store_u64 => store!(op.x, reg!(a).to_le_bytes()),
            Handler::store_imm_ind_u8 => {
                store!(reg!(a).wrapping_add(imm(op.x)), [op.y as u8])
            }
            Handler::store_imm_ind_u16 => {
                store!(reg!(a).wrapping_add(imm(op.x)), (op.y as u16).to_le_bytes())
            }
            Handler::store_imm_ind_u32 => {
                store!(reg!(a).wrapping_add(imm(op.x)), op.y.to_le_bytes())
            }
            Handler::store_imm_ind_u64 => {
                store!(reg!(a).wrapping_add(imm(op.x)), imm(op.y).to_le_bytes())
            }
            Handler::load_imm_jump => {
                reg!(a) = imm(op.x);
                jump!(op.y)
            }
            Handler::branch_eq_imm => branch!(reg!(a) == imm(op.x)),
            Handler::branch_ne_imm => branch!(reg!(a) != imm(op.x)),
            Handler::branch_lt_u_imm => branch!(reg!(a) < imm(op.x)),
            Handler::branch_le_u_imm => branch!(reg!(a) <= imm(op.x)),
            Handler::branch_ge_u_imm => branch!(reg!(a) >= imm(op.x)),
            Handler::branch_gt_u_imm => branch!(reg!(a) > imm(op.x)),
            Handler::branch_lt_s_imm => branch!((reg!(a) as i64) < (imm(op.x) as i64)),
            Handler::branch_le_s_imm => branch!((reg!(a) as i64) <= (imm(op.x) as i64)),
            Handler::branch_ge_s_imm => branch!((reg!(a) as i64) >= (imm(op.x) as i64)),
            Handler::branch_gt_s_imm => branch!((reg!(a) as i64) > (imm(op.x) as i64)),
            Handler::move_reg => reg!(d) = reg!(a),
            Handler::sbrk => reg!(d) = memory.sbrk(reg!(a)),
            Handler::count_set_bits_64 => reg!(d) = u64::from(reg!(a).count_ones()),
            Handler::count_set_bits_32 => reg!(d) = u64::from((reg!(a) as u32).count_ones()),
            Handler::leading_zero_bits_64 => reg!(d) = u64::from(reg!(a).leading_zeros()),
            Handler::leading_zero_bits_32 => reg!(d) = u64::from((reg!(a) as u32).leading_zeros()),
            Handler::trailing_zero_bits_64 => reg!(d) = u64::from(reg!(a).trailing_zeros()),
            Handler::trailing_zero_bits_32 => {
                reg!(d) = u64::from((reg!(a) as u32).trailing_zeros())
            }
            Handler::sign_extend_8 => reg!(d) = reg!(a) as u8 as i8 as i64 as u64,
            Handler::sign_extend_16 => reg!(d) = reg!(a) as u16 as i16 as i64 as u64,
            Handler::zero_extend_16 => reg!(d) = u64::from(reg!(a) as u16),
            Handler::reverse_bytes => reg!(d) = reg!(a).swap_bytes(),
            Handler::store_ind_u8 => store!(reg!(b).wrapping_add(imm(op.x)), [reg!(a) as u8]),
            Handler::store_ind_u16 => store!(
                reg!(b).wrapping_add(imm(op.x)),
                (reg!(a) as u16).to_le_bytes()
            ),
            Handler::store_ind_u32 => store!(
                reg!(b).wrapping_add(imm(op.x)),
                (reg!(a) as u32).to_le_bytes()
            ),
            Handler::store_ind_u64 => {
                store!(reg!(b).wrapping_add(imm(op.x)), reg!(a).to_le_bytes())
            }
            Handler::load_ind_u8 => load!(a, reg!(b).wrapping_add(imm(op.x)), 1, |b: [u8; 1]| {
                u64::from(b[0])
            }),
            Handler::load_ind_i8 => load!(a, reg!(b).wrapping_add(imm(op.x)), 1, |b: [u8; 1]| {
                b[0] as i8 as i64 as u64
            }),
            Handler::load_ind_u16 => load!(a, reg!(b).wrapping_add(imm(op.x)), 2, |b| {
                u64::from(u16::from_le_bytes(b))
            }),
            Handler::load_ind_i16 => load!(a, reg!(b).wrapping_add(imm(op.x)), 2, |b| {
                i16::from_le_bytes(b) as i64 as u64
            }),
            Handler::load_ind_u32 => load!(a, reg!(b).wrapping_add(imm(op.x)), 4, |b| {
                u64::from(u32::from_le_bytes(b))
            }),
            Handler::load_ind_i32 => load!(a, reg!(b).wrapping_add(imm(op.x)), 4, |b| {
                i32::from_le_bytes(b) as i64 as u64
            }),
            Handler::load_ind_u64 => {
                load!(a, reg!(b).wrapping_add(imm(op.x)), 8, u64::from_le_bytes)
            }
            Handler::add_imm_32 => alu_imm!(|b, x| sext32(b.wrapping_add(x))),
            Handler::and_imm => alu_imm!(|b, x| b & x),
            Handler::xor_imm => alu_imm!(|b, x| b ^ x),
            Handler::or_imm => alu_imm!(|b, x| b | x),
            Handler::mul_imm_32 => alu_imm!(|b, x| sext32(b.wrapping_mul(x))),
            Handler::set_lt_u_imm => alu_imm!(|b, x| u64::from(b < x)),
            Handler::set_lt_s_imm => alu_imm!(|b, x| u64::from((b as i64) < (x as i64))),
            Handler::shlo_l_imm_32 => alu_imm!(|b, x| sext32(u64::from((b as u32) << (x & 31)))),
            Handler::shlo_r_imm_32 => alu_imm!(|b, x| sext32(u64::from((b as u32) >> (x & 31)))),
            Handler::shar_r_imm_32 => alu_imm!(|b, x| ((b as i32) >> (x & 31)) as i64 as u64),
            Handler::neg_add_imm_32 => alu_imm!(|b, x| sext32(x.wrapping_sub(b))),
            Handler::set_gt_u_imm => alu_imm!(|b, x| u64::from(b > x)),
            Handler::set_gt_s_imm => alu_imm!(|b, x| u64::from((b as i64) > (x as i64))),
            Handler::shlo_l_imm_alt_32 => {
                alu_imm!(|b, x| sext32(u64::from((x as u32) << (b & 31))))
            }
            Handler::shlo_r_imm_alt_32 => {
                alu_imm!(|b, x| sext32(u64::from((x as u32) >> (b & 31))))
            }
            Handler::shar_r_imm_alt_32 => {
                alu_imm!(|b, x| ((x as i32) >> (b & 31)) as i64 as u64)
            }
            Handler::cmov_iz_imm => {
                if reg!(b) == 0 {
                    reg!(a) = imm(op.x);
                }
            }
            Handler::cmov_nz_imm => {
                if reg!(b) != 0 {
                    reg!(a) = imm(op.x);
                }
            }
            Handler::add_imm_64 => alu_imm!(|b, x| b.wrapping_add(x)),
            Handler::mul_imm_64 => alu_imm!(|b, x| b.wrapping_mul(x)),
            Handler::shlo_l_imm_64 => alu_imm!(|b, x| b << (x & 63)),
            Handler::shlo_r_imm_64 => alu_imm!(|b, x| b >> (x & 63)),
            Handler::shar_r_imm_64 => alu_imm!(|b, x| ((b as i64) >> (x & 63)) as u64),
            Handler::neg_add_imm_64 => alu_imm!(|b, x| x.wrapping_sub(b)),
            Handler::shlo_l_imm_alt_64 => alu_imm!(|b, x| x << (b & 63)),
            Handler::shlo_r_imm_alt_64 => alu_imm!(|b, x| x >> (b & 63)),
            Handler::shar_r_imm_alt_64 => alu_imm!(|b, x| ((x as i64) >> (b & 63)) as u64),
            Handler::rot_r_64_imm => alu_imm!(|b, x| b.rotate_right((x & 63) as u32)),
            Handler::rot_r_64_imm_alt => alu_imm!(|b, x| x.rotate_right((b & 63) as u32)),
            Handler::rot_r_32_imm => {
                alu_imm!(|b, x| sext32(u64::from((b as u32).rotate_right((x & 31) as u32))))
            }
            Handler::rot_r_32_imm_alt => {
                alu_imm!(|b, x| sext32(u64::from((x as u32).rotate_right((b & 31) as u32))))
            }
            Handler::branch_eq => branch!(reg!(a) == reg!(b)),
            Handler::branch_ne => branch!(reg!(a) != reg!(b)),
            Handler::branch_lt_u => branch!(reg!(a) < reg!(b)),
            Handler::branch_lt_s => branch!((reg!(a) as i64) < (reg!(b) as i64)),
            Handler::branch_ge_u => branch!(reg!(a) >= reg!(b)),
            Handler::branch_ge_s => branch!((reg!(a) as i64) >= (reg!(b) as i64)),
            Handler::load_imm_jump_ind => {
                let address = reg!(b).wrapping_add(imm(op.y));
                reg!(a) = imm(op.x);
                djump!(address)
            }
            Handler::add_32 => alu3!(|a, b| sext32(a.wrapping_add(b))),
            Handler::sub_32 => alu3!(|a, b| sext32(a.wrapping_sub(b))),
            Handler::mul_32 => alu3!(|a, b| sext32(a.wrapping_mul(b))),
            Handler::div_u_32 => alu3!(|a, b| match b as u32 {
                0 => u64::MAX,
                divisor => sext32(u64::from((a as u32) / divisor)),
            }),
            Handler::div_s_32 => alu3!(|a, b| {
                let (a, b) = (a as i32, b as i32);
                match b {
                    0 => u64::MAX,
                    _ => a.wrapping_div(b) as i64 as u64,
                }
            }),
            Handler::rem_u_32 => alu3!(|a, b| match b as u32 {
                0 => sext32(a),
                divisor => sext32(u64::from((a as u32) % divisor)),
            }),
            Handler::rem_s_32 => alu3!(|a, b| {
                let (a, b) = (a as i32, b as i32);
                match b {
                    0 => a as i64 as u64,
                    _ => a.wrapping_rem(b) as i64 as u64,
                }
            }),
            Handler::shlo_l_32 => alu3!(|a, b| sext32(u64::from((a as u32) << (b & 31)))),
            Handler::shlo_r_32 => alu3!(|a, b| sext32(u64::from((a as u32) >> (b & 31)))),
            Handler::shar_r_32 => alu3!(|a, b| ((a as i32) >> (b & 31)) as i64 as u64),
            Handler::add_64 => alu3!(|a, b| a.wrapping_add(b)),
            Handler::sub_64 => alu3!(|a, b| a.wrapping_sub(b)),
            Handler::mul_64 => alu3!(|a, b| a.wrapping_mul(b)),
            Handler::div_u_64 => alu3!(|a, b| a.checked_div(b).unwrap_or(u64::MAX)),
            Handler::div_s_64 => alu3!(|a, b| match b {
                0 => u64::MAX,
                _ => (a as i64).wrapping_div(b as i64) as u64,
            }),
            Handler::rem_u_64 => alu3!(|a, b| a.checked_rem(b).unwrap_or(a)),
            Handler::rem_s_64 => alu3!(|a, b| match b {
                0 => a,
                _ => (a as i64).wrapping_rem(b as i64) as u64,
            }),
            Handler::shlo_l_64 => alu3!(|a, b| a << (b & 63)),
            Handler::shlo_r_64 => alu3!(|a, b| a >> (b & 63)),
            Handler::shar_r_64 => alu3!(|a, b| ((a as i64) >> (b & 63)) as u64),
            Handler::and => alu3!(|a, b| a & b),
            Handler::xor => alu3!(|a, b| a ^ b),
            Handler::or => alu3!(|a, b| a | b),
            Handler::mul_upper_s_s => {
                alu3!(|a, b| ((i128::from(a as i64) * i128::from(b as i64)) >> 64) as u64)
            }
            Handler::mul_upper_u_u => {
                alu3!(|a, b| ((u128::from(a) * u128::from(b)) >> 64) as u64)
            }
            Handler::mul_upper_s_u => {
                alu3!(|a, b| ((i128::from(a as i64) * i128::from(b)) >> 64) as u64)
            }
            Handler::set_lt_u => alu3!(|a, b| u64::from(a < b)),
            Handler::set_lt_s => alu3!(|a, b| u64::from((a as i64) < (b as i64))),
            Handler::cmov_iz => {
                if reg!(b) == 0 {
                    reg!(d) = reg!(a);
                }
            }
            Handler::cmov_nz => {
                if reg!(b) != 0 {
                    reg!(d) = reg!(a);
                }
            }
            Handler::rot_l_64 => alu3!(|a, b| a.rotate_left((b & 63) as u32)),
            Handler::rot_l_32 => {
                alu3!(|a, b| sext32(u64::from((a as u32).rotate_left((b & 31) as u32))))
            }
            Handler::rot_r_64 => alu3!(|a, b| a.rotate_right((b & 63) as u32)),
            Handler::rot_r_32 => {
                alu3!(|a, b| sext32(u64::from((a as u32).rotate_right((b & 31) as u32))))
            }
            Handler::and_inv => alu3!(|a, b| a & !b),
            Handler::or_inv => alu3!(|a, b| a | !b),
            Handler::xnor => alu3!(|a, b| !(a ^ b)),
            Handler::max => alu3!(|a, b| (a as i64).max(b as i64) as u64),
            Handler::max_u => alu3!(|a, b| a.max(b)),
            Handler::min => alu3!(|a, b| (a as i64).min(b as i64) as u64),
            Handler::min_u => alu3!(|a, b| a.min(b)),
        }
        idx += 1;
    }
}
