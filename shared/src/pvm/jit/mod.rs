//! A compiler from PVM code to x86-64 machine code:
//! [`Program::compile_native`] compiles a decoded program once; from then
//! on [`Machine::run`] runs its gas blocks as native code. Feature
//! `jit-host` on Linux (the code in pages mapped for it, W^X), or `jit` in
//! the guest kernel (the code on the heap, which the hypervisor maps
//! executable).
//!
//! Exactness comes from the interpreter: the native code only does what
//! the interpreter's fast paths do (registers, arithmetic, branches, gas
//! per block on entry, loads and stores inside the memory's windows) and
//! hands every other instruction, and every access outside the windows,
//! to the interpreter's own handler for it (`compile`'s docs). A block it
//! cannot pay goes back to the interpreter's loop before anything in it
//! runs. So exits, faults, out-of-gas states and slices are the
//! interpreter's, and `tests/pvm_jit.rs` checks the whole state against it
//! on every workload and on random programs.
//!
//! In the local backend the generated code runs in the host process,
//! unisolated, so there it is opt-in (`Kernel::set_native_code`); inside
//! the micro-VM the hypervisor isolates it as it does the interpreter.

#[cfg(not(target_arch = "x86_64"))]
compile_error!("capbox_shared's `jit` feature generates x86-64 code");
#[cfg(all(not(feature = "jit-host"), not(target_os = "none")))]
compile_error!("`jit` without `jit-host` is for the guest (executable heap) only");

mod asm;
mod compile;

use alloc::vec::Vec;
use core::fmt;

use super::handlers::{Stop, dispatch_as};
use super::interpreter::Machine;
use super::program::{Handler, Program};

/// Why a program could not be compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JitError {
    /// Mapping executable memory failed (the OS error number).
    Map(i32),
    /// The code is larger than the compiler's jumps reach (2 GiB).
    TooLarge,
}

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitError::Map(errno) => write!(f, "cannot map executable memory (errno {errno})"),
            JitError::TooLarge => write!(f, "the compiled code would exceed 2 GiB"),
        }
    }
}

/// A program's machine code in executable memory, and the address of each
/// instruction's code (with and without its block's gas check).
pub(crate) struct NativeCode {
    code: ExecutableMemory,
    /// Per instruction: `[checked entry, body]` as addresses.
    table: Vec<[u64; 2]>,
}

impl fmt::Debug for NativeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeCode")
            .field("code_len", &self.code.len)
            .field("instructions", &self.table.len())
            .finish()
    }
}

/// The stop generated code returns: [`Stop`]'s two words.
#[repr(C)]
struct RawStop {
    at: u64,
    what: u64,
}

/// The generated code's entry: machine, program, table, target address.
///
/// # Safety
///
/// Callers pass a live machine and the program the code was compiled from,
/// that program's address table, and an address from that table.
// SAFETY: only `run` calls it, meeting that contract (see there).
type Entry =
    unsafe extern "sysv64" fn(*mut Machine, *const Program, *const [u64; 2], u64) -> RawStop;

/// Runs instruction `idx` alone through its interpreter handler (no fuel:
/// it returns where to go on). Called by generated code.
extern "sysv64" fn fallback(machine: *mut Machine, program: *const Program, idx: usize) -> RawStop {
    // SAFETY: generated code passes on the pointers `run` gave it: the
    // machine, borrowed mutably by `run` and not otherwise used while the
    // code runs, and the program, borrowed shared for as long.
    let (machine, program) = unsafe { (&mut *machine, &*program) };
    let Some(op) = program.ops.get(idx) else {
        return RawStop {
            at: idx as u64,
            what: Stop::exit(idx, super::Exit::Panic).raw().1,
        };
    };
    let single = Handler::from_opcode(op.opcode.unfused());
    let (at, what) = dispatch_as(single, machine, program, op, 0).raw();
    RawStop { at, what }
}

/// What the code may use beyond x86-64's base: BMI2 and `popcnt` where the
/// host has them. Not in a guest (no `jit-host`), whose instructions a
/// hypervisor may emulate without them: those instructions go through the
/// interpreter there.
fn host_features() -> compile::Features {
    #[cfg(feature = "jit-host")]
    {
        // cpuid is always available on x86-64.
        let leaf1 = core::arch::x86_64::__cpuid(1);
        let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
        compile::Features {
            popcnt: leaf1.ecx & (1 << 23) != 0,
            bmi2: leaf7.ebx & (1 << 8) != 0,
        }
    }
    #[cfg(not(feature = "jit-host"))]
    compile::Features {
        popcnt: false,
        bmi2: false,
    }
}

/// Where a [`Program`] keeps its machine code: set at most once, through a
/// shared reference (a cached program is compiled once it has run enough).
#[derive(Default)]
pub(crate) struct NativeSlot(spin::Once<NativeCode>);

impl NativeSlot {
    pub(crate) fn get(&self) -> Option<&NativeCode> {
        self.0.get()
    }
}

impl Clone for NativeSlot {
    fn clone(&self) -> Self {
        // The code is immutable and only read through the table: a clone
        // compiles again if asked (programs are cloned only in tests).
        NativeSlot::default()
    }
}

impl fmt::Debug for NativeSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.get().fmt(f)
    }
}

impl Program {
    /// Compiles the program to machine code; later runs use it. Idempotent
    /// (concurrent callers compile once). A clone does not share the code.
    pub fn compile_native(&self) -> Result<(), JitError> {
        self.compile_native_with(host_features())
    }

    /// [`Self::compile_native`] with x86-64's base instructions only (no
    /// BMI2, no `popcnt`), as in a guest: for tests of that code on a host
    /// that has more.
    pub fn compile_native_baseline(&self) -> Result<(), JitError> {
        self.compile_native_with(compile::Features {
            bmi2: false,
            popcnt: false,
        })
    }

    fn compile_native_with(&self, features: compile::Features) -> Result<(), JitError> {
        if self.native.get().is_some() {
            return Ok(());
        }
        let compiled = compile::compile(self, fallback as *const () as usize as u64, features);
        if i32::try_from(compiled.code.len()).is_err() {
            return Err(JitError::TooLarge);
        }
        let code = ExecutableMemory::new(&compiled.code)?;
        let base = code.ptr as u64;
        let table = compiled
            .entries
            .iter()
            .map(|&[checked, body]| [base + u64::from(checked), base + u64::from(body)])
            .collect();
        self.native.0.call_once(|| NativeCode { code, table });
        Ok(())
    }

    /// Whether [`Self::compile_native`] compiled this program.
    pub fn is_native(&self) -> bool {
        self.native.get().is_some()
    }

    /// Bytes of machine code and its address table (0 until compiled).
    pub fn native_bytes(&self) -> usize {
        self.native.get().map_or(0, |n| {
            n.code.len + n.table.len() * core::mem::size_of::<[u64; 2]>()
        })
    }

    /// The machine code, and the offset of each instruction's code in it
    /// (its gas check first where it has one), for disassembling.
    pub fn native_code(&self) -> Option<(&[u8], Vec<usize>)> {
        let native = self.native.get()?;
        // SAFETY: the mapping holds `len` readable bytes for as long as
        // `native`, which `self` borrows.
        let code = unsafe { core::slice::from_raw_parts(native.code.ptr, native.code.len) };
        let base = native.code.ptr as u64;
        let offsets = native
            .table
            .iter()
            .map(|&[checked, _]| (checked - base) as usize)
            .collect();
        Some((code, offsets))
    }
}

/// Runs native code from instruction `idx` (paid, or inside a paid block)
/// as [`Machine`]'s `run_paid` runs handlers: until a block cannot be
/// paid from `machine.gas` or the machine exits.
pub(super) fn run(
    machine: &mut Machine,
    program: &Program,
    native: &NativeCode,
    idx: usize,
) -> Stop {
    let Some(&[_, target]) = native.table.get(idx) else {
        return Stop::exit(idx.saturating_sub(1), super::Exit::Panic);
    };
    // SAFETY: the code at offset 0 is the entry `compile` generates, with
    // this signature; it was made from `program` (whose decoded form never
    // changes after `compile_native`) and is kept alive by `native`.
    let entry: Entry = unsafe { core::mem::transmute::<*const u8, Entry>(native.code.ptr) };
    // SAFETY: `target` is an instruction's code in that memory; the
    // machine and program pointers are valid for the call (borrowed here)
    // and the table has an entry for every instruction index the code
    // jumps through.
    let raw = unsafe { entry(machine, program, native.table.as_ptr(), target) };
    Stop::from_raw(raw.at, raw.what)
}

/// Read-only, executable pages holding code (`jit-host`: mapped for it;
/// in a guest, whose heap the hypervisor maps executable: a heap block).
struct ExecutableMemory {
    ptr: *const u8,
    len: usize,
    #[cfg(not(feature = "jit-host"))]
    _block: alloc::boxed::Box<[u8]>,
}

// SAFETY: the code is immutable after `new` and freed only by `drop`.
unsafe impl Send for ExecutableMemory {}
// SAFETY: as for `Send`: nothing writes it.
unsafe impl Sync for ExecutableMemory {}

#[cfg(not(feature = "jit-host"))]
impl ExecutableMemory {
    fn new(code: &[u8]) -> Result<ExecutableMemory, JitError> {
        let block: alloc::boxed::Box<[u8]> = code.into();
        Ok(ExecutableMemory {
            ptr: block.as_ptr(),
            len: block.len(),
            _block: block,
        })
    }
}

#[cfg(feature = "jit-host")]
impl ExecutableMemory {
    fn new(code: &[u8]) -> Result<ExecutableMemory, JitError> {
        let len = code.len().max(1);
        // SAFETY: a fresh anonymous private mapping; no existing memory is
        // touched.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(JitError::Map(errno()));
        }
        let memory = ExecutableMemory {
            ptr: ptr.cast(),
            len,
        };
        // SAFETY: the mapping is `len` ≥ `code.len()` bytes, writable, and
        // nothing else refers to it yet.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), ptr.cast::<u8>(), code.len()) };
        // SAFETY: the mapping made above, `len` bytes.
        if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            return Err(JitError::Map(errno()));
        }
        Ok(memory)
    }
}

#[cfg(feature = "jit-host")]
impl Drop for ExecutableMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, `len` bytes, unmapped once.
        unsafe { libc::munmap(self.ptr.cast_mut().cast(), self.len) };
    }
}

#[cfg(feature = "jit-host")]
fn errno() -> i32 {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}
