//! The standard program format and memory layout (Graypaper A.7, the
//! function `Y`).
//!
//! ```text
//! 0x0001_0000            read-only data o   (R), padded to a page
//! 2Z + Q(|o|)            read-write data w  (W), then z heap pages; sbrk grows here
//! 2^32-2Z-I-P(s) .. 2^32-2Z-I   stack       (W)
//! 2^32-Z-I               arguments a        (R), padded to a page
//! ```
//! with zone `Z = 2^16`, input limit `I = 2^24`, `P` rounding up to pages
//! and `Q` rounding up to zones.

use super::blob::Reader;
use super::error::{MemoryError, ProgramError};
use super::memory::{Access, Memory, PAGE_SIZE};

/// The zone size `Z_Z`: sections are aligned to it and separated by one.
pub const ZONE_SIZE: u32 = 1 << 16;
/// The maximum argument size `Z_I`.
pub const MAX_INPUT: u32 = 1 << 24;
/// The halt address: a dynamic jump here halts the machine (φ0's initial
/// value).
pub const HALT_ADDRESS: u32 = 0xFFFF_0000;

const Z: u64 = ZONE_SIZE as u64;
const I: u64 = MAX_INPUT as u64;

fn page_round(x: u64) -> u64 {
    x.next_multiple_of(u64::from(PAGE_SIZE))
}

fn zone_round(x: u64) -> u64 {
    x.next_multiple_of(Z)
}

/// Addresses of every section of a standard program's memory, computed from
/// section sizes alone (no data), so the kernel can use it directly. Built
/// only by [`StandardLayout::new`], which checks the Graypaper's bound, so
/// every value satisfies it (the fields are private, read through the
/// methods of the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandardLayout {
    /// Start of read-only data (always `Z`).
    ro_start: u32,
    /// Length of read-only data.
    ro_len: u32,
    /// Mapped read-only length (`P(|o|)`).
    ro_mapped: u32,
    /// Start of read-write data, also the heap base `h`.
    rw_start: u32,
    /// Length of read-write data.
    rw_len: u32,
    /// Mapped writable length: `P(|w|) + z · Z_P`.
    rw_mapped: u32,
    /// Lowest stack address.
    stack_start: u32,
    /// One past the highest stack address (φ1's initial value).
    stack_end: u32,
    /// Start of the arguments (φ7's initial value).
    args_start: u32,
    /// Length of the arguments (φ8's initial value).
    args_len: u32,
    /// Mapped argument length (`P(|a|)`).
    args_mapped: u32,
}

impl StandardLayout {
    /// Computes the layout for sections of the given sizes; fails when they
    /// do not fit the Graypaper's bound
    /// `5Z + Q(|o|) + Q(|w| + z·Z_P) + Q(s) + I ≤ 2^32` or the arguments
    /// exceed `I`.
    pub fn new(
        ro_len: u32,
        rw_len: u32,
        heap_pages: u16,
        stack_size: u32,
        args_len: u32,
    ) -> Result<StandardLayout, ProgramError> {
        let (o, w, s, a) = (
            u64::from(ro_len),
            u64::from(rw_len),
            u64::from(stack_size),
            u64::from(args_len),
        );
        let heap = u64::from(heap_pages) * u64::from(PAGE_SIZE);
        let total = 5 * Z + zone_round(o) + zone_round(w + heap) + zone_round(s) + I;
        if total > 1 << 32 || a > I {
            return Err(ProgramError::LayoutTooLarge);
        }
        let stack_end = (1 << 32) - 2 * Z - I;
        let args_start = (1 << 32) - Z - I;
        // Every value below is < 2^32 thanks to the bound checked above.
        Ok(StandardLayout {
            ro_start: ZONE_SIZE,
            ro_len,
            ro_mapped: page_round(o) as u32,
            rw_start: (2 * Z + zone_round(o)) as u32,
            rw_len,
            rw_mapped: (page_round(w) + heap) as u32,
            stack_start: (stack_end - page_round(s)) as u32,
            stack_end: stack_end as u32,
            args_start: args_start as u32,
            args_len,
            args_mapped: page_round(a) as u32,
        })
    }

    /// See the field `ro_start`.
    pub fn ro_start(&self) -> u32 {
        self.ro_start
    }

    /// See the field `ro_len`.
    pub fn ro_len(&self) -> u32 {
        self.ro_len
    }

    /// See the field `ro_mapped`.
    pub fn ro_mapped(&self) -> u32 {
        self.ro_mapped
    }

    /// See the field `rw_start`.
    pub fn rw_start(&self) -> u32 {
        self.rw_start
    }

    /// See the field `rw_len`.
    pub fn rw_len(&self) -> u32 {
        self.rw_len
    }

    /// See the field `rw_mapped`.
    pub fn rw_mapped(&self) -> u32 {
        self.rw_mapped
    }

    /// See the field `stack_start`.
    pub fn stack_start(&self) -> u32 {
        self.stack_start
    }

    /// See the field `stack_end`.
    pub fn stack_end(&self) -> u32 {
        self.stack_end
    }

    /// See the field `args_start`.
    pub fn args_start(&self) -> u32 {
        self.args_start
    }

    /// See the field `args_len`.
    pub fn args_len(&self) -> u32 {
        self.args_len
    }

    /// See the field `args_mapped`.
    pub fn args_mapped(&self) -> u32 {
        self.args_mapped
    }

    /// Bytes the layout maps: read-only, read-write (with heap), stack and
    /// arguments.
    pub fn mapped_bytes(&self) -> u64 {
        u64::from(self.ro_mapped)
            + u64::from(self.rw_mapped)
            + u64::from(self.stack_end - self.stack_start)
            + u64::from(self.args_mapped)
    }

    /// The heap base `h` used by `sbrk`.
    pub fn heap_base(&self) -> u32 {
        self.rw_start
    }

    /// The initial registers of `Y`: φ0 = halt address, φ1 = stack top,
    /// φ7 = argument address, φ8 = argument length, the rest zero.
    pub fn initial_registers(&self) -> [u64; 13] {
        let mut regs = [0; 13];
        regs[0] = u64::from(HALT_ADDRESS);
        regs[1] = u64::from(self.stack_end);
        regs[7] = u64::from(self.args_start);
        regs[8] = u64::from(self.args_len);
        regs
    }
}

impl Memory {
    /// The memory of `Y`: read-only data, read-write data plus heap, stack
    /// and arguments at the addresses of `layout`. `sbrk` grows the heap
    /// from the end of the read-write section up to the stack.
    pub fn standard(
        layout: &StandardLayout,
        ro: &[u8],
        rw: &[u8],
        args: &[u8],
    ) -> Result<Memory, MemoryError> {
        let mut memory = Memory::new();
        let sections = [
            (
                layout.ro_start(),
                layout.ro_mapped(),
                Access::Read,
                ro,
                layout.ro_len(),
            ),
            (
                layout.rw_start(),
                layout.rw_mapped(),
                Access::Write,
                rw,
                layout.rw_len(),
            ),
            (
                layout.stack_start(),
                layout.stack_end() - layout.stack_start(),
                Access::Write,
                &[][..],
                0,
            ),
            (
                layout.args_start(),
                layout.args_mapped(),
                Access::Read,
                args,
                layout.args_len(),
            ),
        ];
        for (start, mapped, access, data, declared_len) in sections {
            if data.len() != declared_len as usize {
                return Err(MemoryError::Unmapped {
                    address: start.saturating_add(declared_len),
                });
            }
            memory.map(start, mapped, access)?;
            memory.initialize(start, data)?;
        }
        let heap_top = layout.rw_start() + layout.rw_mapped();
        memory.set_heap(layout.rw_start(), heap_top, layout.stack_start());
        memory.clear_dirty();
        Ok(memory)
    }
}

/// A standard-format program blob split into its parts (borrowing it):
/// `E_3(|o|) ‖ E_3(|w|) ‖ E_2(z) ‖ E_3(s) ‖ o ‖ w ‖ E_4(|c|) ‖ c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandardProgram<'a> {
    /// Read-only data `o`.
    pub ro_data: &'a [u8],
    /// Initial read-write data `w`.
    pub rw_data: &'a [u8],
    /// Extra heap pages `z`.
    pub heap_pages: u16,
    /// Stack size `s` in octets.
    pub stack_size: u32,
    /// The code blob `c` (in `deblob` format).
    pub code_blob: &'a [u8],
}

impl<'a> StandardProgram<'a> {
    /// Splits a standard program blob; fails on truncation or trailing
    /// octets. The layout bound is checked by [`layout`](Self::layout).
    pub fn parse(blob: &'a [u8]) -> Result<StandardProgram<'a>, ProgramError> {
        let mut reader = Reader::new(blob);
        let ro_len = reader.fixed(3, "read-only data length")? as usize;
        let rw_len = reader.fixed(3, "read-write data length")? as usize;
        let heap_pages = reader.fixed(2, "heap pages")? as u16;
        let stack_size = reader.fixed(3, "stack size")? as u32;
        let ro_data = reader.bytes(ro_len, "read-only data")?;
        let rw_data = reader.bytes(rw_len, "read-write data")?;
        let code_len = reader.fixed(4, "code blob length")? as usize;
        let code_blob = reader.bytes(code_len, "code blob")?;
        if reader.remaining() != 0 {
            return Err(ProgramError::TrailingBytes {
                count: reader.remaining(),
            });
        }
        Ok(StandardProgram {
            ro_data,
            rw_data,
            heap_pages,
            stack_size,
            code_blob,
        })
    }

    /// The memory layout for arguments of length `args_len`.
    pub fn layout(&self, args_len: u32) -> Result<StandardLayout, ProgramError> {
        StandardLayout::new(
            self.ro_data.len() as u32,
            self.rw_data.len() as u32,
            self.heap_pages,
            self.stack_size,
            args_len,
        )
    }
}
