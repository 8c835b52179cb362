//! Writing capbox programs in Rust.
//!
//! A program is a `no_std`, `no_main` crate built for PolkaVM's
//! `riscv64emac-unknown-none-polkavm` target and linked for the JAM
//! instruction set (`scripts/build-programs.sh`); `capbox import` turns the
//! `.polkavm` blob into an Image.
//!
//! Conventions (docs/kernel.md, "Programs from PolkaVM"):
//!
//! * **Endpoints** are exported functions
//!   (`#[polkavm_derive::polkavm_export] extern "C" fn name(a0: u64, ..) -> u64`):
//!   the export's name is the endpoint's name, its arguments are the
//!   invocation's four arguments (φ7..φ10), its result is φ7 (return
//!   `(u64, u64)` for φ7 and φ8). Returning halts the invocation and commits
//!   the state; a panic (the handler below traps) discards it.
//! * **State** is the program's static memory (`.data`/`.bss`): the
//!   instance's memory is the read-write section, kept between invocations.
//! * **Input and output**: [`input_len`] / [`input_read`] (or
//!   [`read_input`]) and [`set_output`].
//! * **Caps** live in the instance's root CNode, slots `0..65536`.
//!
//! Every op returns a [`Result`]; the error is the kernel's code as an
//! [`Error`].

#![no_std]

mod error;
pub mod sys;

pub use error::*;
pub use polkavm_derive::{polkavm_export, polkavm_import};

/// Remaining gas (after this op's charge).
#[inline]
pub fn gas() -> u64 {
    // SAFETY: the op takes no arguments.
    unsafe { sys::capbox_gas() }
}

/// Writes `message` to the host's log (at most 4096 bytes).
#[inline]
pub fn log(message: &[u8]) -> Result<()> {
    // SAFETY: the kernel only reads `message.len()` bytes at its address.
    check(unsafe { sys::capbox_log(message.as_ptr(), message.len() as u64) }).map(drop)
}

/// Sets the invocation's output (at most 1 MiB; a later call replaces it).
#[inline]
pub fn set_output(bytes: &[u8]) -> Result<()> {
    // SAFETY: the kernel only reads `bytes.len()` bytes at its address.
    check(unsafe { sys::capbox_set_output(bytes.as_ptr(), bytes.len() as u64) }).map(drop)
}

/// The invocation's input length.
#[inline]
pub fn input_len() -> usize {
    // SAFETY: the op takes no arguments.
    unsafe { sys::capbox_input_len() as usize }
}

/// Copies input bytes from `offset` into `buf`; the number copied.
#[inline]
pub fn input_read(offset: usize, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check(unsafe { sys::capbox_input_read(offset as u64, buf.as_mut_ptr(), buf.len() as u64) })
        .map(|n| n as usize)
}

/// The whole input into `buf`: its prefix that holds it, or
/// `Error::TooLong` if the input is longer than `buf`.
pub fn read_input(buf: &mut [u8]) -> Result<&mut [u8]> {
    let len = input_len();
    if len > buf.len() {
        return Err(Error::TooLong);
    }
    let n = input_read(0, &mut buf[..len])?;
    Ok(&mut buf[..n])
}

/// A cap's kind, as `cap_info` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    /// A byte string.
    Data,
    /// A table of slots.
    CNode,
    /// A program.
    Image,
    /// A program with its state.
    Instance,
    /// A type chain.
    Type,
    /// A kind this SDK does not know.
    Other(u64),
}

/// What a slot holds: `None` when empty, else the kind and size (Data
/// length, CNode slot count, Image code length, else 0).
pub fn cap_info(slot: u32) -> Result<Option<(CapKind, u64)>> {
    // SAFETY: the op takes only register arguments.
    let (tag, size) = unsafe { sys::capbox_cap_info(u64::from(slot)) };
    let tag = check(tag)?;
    let kind = match tag {
        INFO_EMPTY => return Ok(None),
        0 => CapKind::Data,
        1 => CapKind::CNode,
        2 => CapKind::Image,
        3 => CapKind::Instance,
        4 => CapKind::Type,
        other => CapKind::Other(other),
    };
    Ok(Some((kind, size)))
}

/// A new Data cap holding `bytes` in the empty slot `dst`.
#[inline]
pub fn data_new(dst: u32, bytes: &[u8]) -> Result<()> {
    // SAFETY: the kernel only reads `bytes.len()` bytes at its address.
    check(unsafe { sys::capbox_data_new(u64::from(dst), bytes.as_ptr(), bytes.len() as u64) })
        .map(drop)
}

/// Copies the Data in `slot` from `offset` into `buf`; the number copied.
#[inline]
pub fn data_read(slot: u32, offset: u64, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check(unsafe {
        sys::capbox_data_read(u64::from(slot), offset, buf.as_mut_ptr(), buf.len() as u64)
    })
    .map(|n| n as usize)
}

/// Writes `bytes` into the Data in `slot` at `offset` (it grows if shorter).
#[inline]
pub fn data_write(slot: u32, offset: u64, bytes: &[u8]) -> Result<()> {
    // SAFETY: the kernel only reads `bytes.len()` bytes at its address.
    check(unsafe {
        sys::capbox_data_write(u64::from(slot), offset, bytes.as_ptr(), bytes.len() as u64)
    })
    .map(drop)
}

/// Moves the cap in `src` to the empty slot `dst`.
#[inline]
pub fn slot_move(src: u32, dst: u32) -> Result<()> {
    // SAFETY: the op takes only register arguments.
    check(unsafe { sys::capbox_slot_move(u64::from(src), u64::from(dst)) }).map(drop)
}

/// Copies the cap in `src` to the empty slot `dst`.
#[inline]
pub fn slot_copy(src: u32, dst: u32) -> Result<()> {
    // SAFETY: the op takes only register arguments.
    check(unsafe { sys::capbox_slot_copy(u64::from(src), u64::from(dst)) }).map(drop)
}

/// Empties `slot` (also fine when it is empty).
#[inline]
pub fn slot_drop(slot: u32) -> Result<()> {
    // SAFETY: the op takes only register arguments.
    check(unsafe { sys::capbox_slot_drop(u64::from(slot)) }).map(drop)
}

/// The hash of the cap in `slot`.
pub fn hash_of(slot: u32) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    // SAFETY: the kernel writes exactly 32 bytes into `out`.
    check(unsafe { sys::capbox_hash_of(u64::from(slot), out.as_mut_ptr()) })?;
    Ok(out)
}

/// The type chain of the Instance (or Type cap) in `slot`.
pub fn type_of(slot: u32) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    // SAFETY: the kernel writes exactly 32 bytes into `out`.
    check(unsafe { sys::capbox_type_of(u64::from(slot), out.as_mut_ptr()) })?;
    Ok(out)
}

/// A new child Instance of the Image in `image` in the empty slot `dst`.
#[inline]
pub fn spawn(image: u32, dst: u32) -> Result<()> {
    // SAFETY: the op takes only register arguments.
    check(unsafe { sys::capbox_spawn(u64::from(image), u64::from(dst)) }).map(drop)
}

/// Moves the cap in `src` into slot `child_dst` of the child in `child`.
#[inline]
pub fn give(child: u32, src: u32, child_dst: u32) -> Result<()> {
    // SAFETY: the op takes only register arguments.
    check(unsafe { sys::capbox_give(u64::from(child), u64::from(src), u64::from(child_dst)) })
        .map(drop)
}

/// Moves the cap in slot `child_src` of the child in `child` to `dst`.
#[inline]
pub fn take(child: u32, child_src: u32, dst: u32) -> Result<()> {
    // SAFETY: the op takes only register arguments.
    check(unsafe { sys::capbox_take(u64::from(child), u64::from(child_src), u64::from(dst)) })
        .map(drop)
}

/// How a child's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallExit {
    /// It halted; `value` is its φ7 and its new state is in its slot.
    Halt,
    /// It panicked; its slot is unchanged.
    Panic,
    /// It ran out of gas; its slot is unchanged.
    OutOfGas,
    /// It page-faulted; `value` is the address; its slot is unchanged.
    PageFault,
    /// An exit code this SDK does not know.
    Other(u64),
}

/// A child's run: its exit and its φ7 (or the fault address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallResult {
    /// How it ended.
    pub exit: CallExit,
    /// Its φ7 (a halt's result), or the page-fault address.
    pub value: u64,
}

/// Runs `endpoint` of the child in `child` with `args` (φ7..φ10) on at most
/// `gas` of the caller's gas (0: all of it). The output is read with
/// [`output_read`].
pub fn call(child: u32, endpoint: u32, gas: u32, args: [u64; 4]) -> Result<CallResult> {
    let selector = u64::from(endpoint) | (u64::from(gas) << 32);
    // SAFETY: the op takes only register arguments.
    let (exit, value) = unsafe {
        sys::capbox_call(u64::from(child), selector, args[0], args[1], args[2], args[3])
    };
    let exit = match check(exit)? {
        CALL_HALT => CallExit::Halt,
        CALL_PANIC => CallExit::Panic,
        CALL_OUT_OF_GAS => CallExit::OutOfGas,
        CALL_PAGE_FAULT => CallExit::PageFault,
        other => CallExit::Other(other),
    };
    Ok(CallResult { exit, value })
}

/// Copies the last call's output from `offset` into `buf`; the number
/// copied.
#[inline]
pub fn output_read(offset: usize, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check(unsafe { sys::capbox_output_read(offset as u64, buf.as_mut_ptr(), buf.len() as u64) })
        .map(|n| n as usize)
}

/// Ends the invocation as a panic (nothing it did is kept).
#[inline]
pub fn abort() -> ! {
    // SAFETY: `unimp` is PolkaVM's `trap`; it never returns.
    unsafe { core::arch::asm!("unimp", options(noreturn)) }
}

#[cfg(all(feature = "panic-handler", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    abort()
}
