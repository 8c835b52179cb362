//! `Image`: a PVM program as published (the cap layer checks only bounds).

use alloc::vec::Vec;

use super::CapError;

/// Largest code blob, read-only data or read-write data section: 64 MiB.
pub const MAX_IMAGE_SECTION_LEN: u32 = 64 << 20;
/// Largest number of endpoints.
pub const MAX_ENDPOINTS: u32 = 4096;
/// Largest heap size in pages (the whole 4 GiB address space).
pub const MAX_HEAP_PAGES: u32 = 1 << 20;

/// A PVM program: a Graypaper `deblob` code blob (jump table, code, opcode
/// bitmask), its read-only and initial read-write data, heap pages, stack
/// size and entry points. PVM validity is checked by the interpreter, not here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    /// The code blob in Graypaper `deblob` format.
    pub code: Vec<u8>,
    /// Read-only data.
    pub ro_data: Vec<u8>,
    /// Initial read-write data.
    pub rw_data: Vec<u8>,
    /// Extra zeroed heap pages after the read-write data.
    pub heap_pages: u32,
    /// Stack size in bytes.
    pub stack_size: u32,
    /// Entry program counters, indexed by endpoint number.
    pub endpoints: Vec<u32>,
}

impl Image {
    /// Checks every field against its bound.
    pub fn check_limits(&self) -> Result<(), CapError> {
        let sections = [
            ("Image code length", self.code.len()),
            ("Image ro_data length", self.ro_data.len()),
            ("Image rw_data length", self.rw_data.len()),
        ];
        for (what, len) in sections {
            check(what, len as u64, u64::from(MAX_IMAGE_SECTION_LEN))?;
        }
        check(
            "Image heap_pages",
            self.heap_pages.into(),
            MAX_HEAP_PAGES.into(),
        )?;
        check(
            "Image endpoint count",
            self.endpoints.len() as u64,
            MAX_ENDPOINTS.into(),
        )
    }
}

pub(crate) fn check(what: &'static str, value: u64, max: u64) -> Result<(), CapError> {
    if value > max {
        Err(CapError::LimitExceeded { what, value, max })
    } else {
        Ok(())
    }
}
