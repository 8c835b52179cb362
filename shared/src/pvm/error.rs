//! Typed errors for malformed program blobs and memory set-ups.

use core::fmt;

/// Why a program blob (or a standard-format program) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramError {
    /// The blob ended before `what` could be read completely.
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Octet offset where the field starts.
        offset: usize,
    },
    /// A natural number used a longer encoding than the Graypaper's `E`
    /// produces for its value (every field has exactly one encoding).
    NonCanonicalNatural {
        /// The field being read.
        what: &'static str,
        /// Octet offset of the number.
        offset: usize,
    },
    /// A length or count does not fit the machine's 32-bit address space.
    TooLarge {
        /// The field being read.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The program is larger than the decoder accepts
    /// (`pvm::program::MAX_INSTRUCTIONS`).
    OverLimit {
        /// What was counted.
        what: &'static str,
        /// How many.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The jump-table entry size `z` is larger than 8 octets.
    JumpTableEntrySize(u8),
    /// The bitmask's final octet has bits set past the end of the code.
    BitmaskPadding,
    /// Octets remain after the last field.
    TrailingBytes {
        /// How many octets were left over.
        count: usize,
    },
    /// The standard program's sections do not fit in 2^32 octets of memory.
    LayoutTooLarge,
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramError::Truncated { what, offset } => {
                write!(f, "program blob truncated: {what} at offset {offset} runs past the end")
            }
            ProgramError::NonCanonicalNatural { what, offset } => write!(
                f,
                "program blob: {what} at offset {offset} is not canonically encoded"
            ),
            ProgramError::TooLarge { what, value } => {
                write!(f, "program blob: {what} = {value} exceeds the 32-bit address space")
            }
            ProgramError::OverLimit { what, value, max } => {
                write!(f, "program blob: {value} {what}, more than the {max} allowed")
            }
            ProgramError::JumpTableEntrySize(z) => {
                write!(f, "program blob: jump-table entry size {z} exceeds 8 octets")
            }
            ProgramError::BitmaskPadding => {
                f.write_str("program blob: opcode bitmask has bits set past the end of the code")
            }
            ProgramError::TrailingBytes { count } => {
                write!(f, "program blob: {count} trailing octets after the last field")
            }
            ProgramError::LayoutTooLarge => f.write_str(
                "standard program: read-only data, read-write data, heap, stack and arguments do not fit in 2^32 octets",
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProgramError {}

/// Why a memory map could not be built or accessed by the host/kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// A region's address or length is not a multiple of the 4 KiB page size.
    Unaligned {
        /// Region start.
        address: u32,
        /// Region length in octets.
        length: u32,
    },
    /// A region would reach past 2^32.
    OutOfRange {
        /// Region start.
        address: u32,
        /// Region length in octets.
        length: u32,
    },
    /// A region overlaps the first 64 KiB, which are never accessible.
    Reserved {
        /// Region start.
        address: u32,
    },
    /// A region overlaps one that is already mapped.
    Overlap {
        /// Region start.
        address: u32,
    },
    /// Initial contents were given for memory that is not mapped.
    Unmapped {
        /// The first unmapped address.
        address: u32,
    },
    /// An access touched an inaccessible page (for writes: a non-writable
    /// one); `address` is the start of the lowest such page.
    PageFault {
        /// Page address.
        address: u32,
    },
    /// The page allocator (the guest's arena) cannot hold the region.
    OutOfMemory {
        /// Region start.
        address: u32,
        /// Region length in octets.
        length: u32,
    },
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryError::Unaligned { address, length } => write!(
                f,
                "memory region {address:#x}+{length:#x} is not aligned to 4 KiB pages"
            ),
            MemoryError::OutOfRange { address, length } => write!(
                f,
                "memory region {address:#x}+{length:#x} reaches past 2^32"
            ),
            MemoryError::Reserved { address } => write!(
                f,
                "memory region at {address:#x} overlaps the reserved first 64 KiB"
            ),
            MemoryError::Overlap { address } => {
                write!(f, "memory region at {address:#x} overlaps another region")
            }
            MemoryError::Unmapped { address } => {
                write!(f, "initial memory contents at {address:#x} are not mapped")
            }
            MemoryError::PageFault { address } => {
                write!(f, "page fault at page {address:#x}")
            }
            MemoryError::OutOfMemory { address, length } => write!(
                f,
                "no page storage left for memory region {address:#x}+{length:#x}"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for MemoryError {}
