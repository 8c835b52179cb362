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

use super::handlers::{FUEL, Next, Stop, dispatch, dispatch_as};
use super::memory::Memory;
use super::program::{Handler, Program};

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
        let prepaid = self.prepaid_at.take() == Some(self.pc);
        match start {
            Some(start) => self.execute(program, start, slice, prepaid),
            // Not an instruction start: the opcode reads as `trap`.
            None => {
                self.gas = self.gas.saturating_sub(1);
                if self.gas < 0 {
                    Exit::OutOfGas
                } else {
                    Exit::Panic
                }
            }
        }
    }

    fn execute(&mut self, program: &Program, mut idx: usize, slice: u64, prepaid: bool) -> Exit {
        let cost_at = |idx: usize| program.ops.get(idx).map_or(1, |op| i64::from(op.gas));
        // Resuming after a host call in a block paid in full: the rest of
        // it costs nothing now (departure 12).
        let mut first_cost = Some(if prepaid { 0 } else { cost_at(idx) });
        // The gas this run may use before a slice stop (`gas`) and the rest
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
        // Whether the block the machine is in was paid in full on entry.
        let mut paid = true;
        let (exit, at) = loop {
            let cost = first_cost.take().unwrap_or_else(|| cost_at(idx));
            let next = if gas >= cost {
                gas -= cost;
                paid = true;
                let (stop, left) = self.run_paid(program, idx, gas);
                gas = left;
                stop
            } else if gas + reserve >= cost {
                // Payable, but not from the slice: stop before the block.
                break (Exit::Slice, idx);
            } else {
                // Not payable at all: step with all the gas there is.
                paid = false;
                gas += reserve;
                reserve = 0;
                let affordable = gas.max(0) as usize;
                let stop = self.step(program, idx, idx + affordable);
                // Stepping charges each executed instruction, including the
                // one that exits (or could not be paid).
                gas = gas.saturating_sub((stop.at - idx + 1) as i64);
                stop
            };
            match next.next() {
                Next::Enter(to) => idx = to,
                Next::Exit(exit) => break (exit, next.at),
                // Neither loop returns it.
                Next::Resume(_) => break (Exit::Panic, next.at),
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

    /// Runs from `idx`, a block start already paid (or resumed inside
    /// one), until control enters a block the handlers could not charge or
    /// the machine exits; returns that stop and the gas left.
    fn run_paid(&mut self, program: &Program, mut idx: usize, gas: i64) -> (Stop, i64) {
        // The handlers charge blocks from `self.gas`.
        self.gas = gas;
        #[cfg(feature = "jit")]
        if let Some(native) = program.native.get() {
            let stop = super::jit::run(self, program, native, idx);
            return (stop, self.gas);
        }
        loop {
            let Some(op) = program.ops.get(idx) else {
                // Unreachable: the last entry is always a trap.
                return (Stop::exit(idx.saturating_sub(1), Exit::Panic), self.gas);
            };
            let stop = dispatch(self, program, op, FUEL);
            match stop.next() {
                Next::Resume(to) => idx = to,
                _ => return (stop, self.gas),
            }
        }
    }

    /// Runs one instruction at a time from `idx` (a fused sequence's first
    /// instruction alone), with nothing charged, and stops before `stop`
    /// (out of gas) or where control enters a block or the machine exits.
    fn step(&mut self, program: &Program, mut idx: usize, stop: usize) -> Stop {
        loop {
            if idx >= stop {
                return Stop::exit(idx, Exit::OutOfGas);
            }
            let Some(op) = program.ops.get(idx) else {
                // Unreachable: the last entry is always a trap.
                return Stop::exit(idx.saturating_sub(1), Exit::Panic);
            };
            // A fused sequence's first instruction alone: handlers do not read
            // `opcode`, so the entry itself goes to its first half's handler.
            let single = Handler::from_opcode(op.opcode.unfused());
            let stop = dispatch_as(single, self, program, op, 0);
            match stop.next() {
                Next::Resume(to) => idx = to,
                _ => return stop,
            }
        }
    }
}
