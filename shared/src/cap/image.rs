//! `Image`: a PVM program as published (the cap layer checks only bounds).

use alloc::string::String;
use alloc::vec::Vec;

use super::CapError;

/// Largest code blob, read-only data or read-write data section: 64 MiB.
pub const MAX_IMAGE_SECTION_LEN: u32 = 64 << 20;
/// Largest number of endpoints.
pub const MAX_ENDPOINTS: u32 = 4096;
/// Largest heap size in pages (the whole 4 GiB address space).
pub const MAX_HEAP_PAGES: u32 = 1 << 20;
/// Longest endpoint name, in bytes of UTF-8.
pub const MAX_ENDPOINT_NAME_LEN: u32 = 255;

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
    /// Endpoint names: empty (no names: the encoding is exactly that of an
    /// image without them), or one per endpoint, where `""` leaves that
    /// endpoint unnamed. Set names are 1..=[`MAX_ENDPOINT_NAME_LEN`] bytes
    /// and unique, and at least one is set (so an image has one encoding).
    pub endpoint_names: Vec<String>,
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
        )?;
        self.check_names()
    }

    /// Checks [`Self::endpoint_names`]: none, or one per endpoint, each at
    /// most [`MAX_ENDPOINT_NAME_LEN`] bytes, the set ones unique, at least
    /// one set.
    pub fn check_names(&self) -> Result<(), CapError> {
        let names = &self.endpoint_names;
        if names.is_empty() {
            return Ok(());
        }
        if names.len() != self.endpoints.len() {
            return Err(CapError::NonCanonical(
                "Image endpoint names: not one per endpoint",
            ));
        }
        if names.iter().all(String::is_empty) {
            return Err(CapError::NonCanonical(
                "Image endpoint names: present but none set",
            ));
        }
        for (i, name) in names.iter().enumerate() {
            check(
                "Image endpoint name length",
                name.len() as u64,
                MAX_ENDPOINT_NAME_LEN.into(),
            )?;
            if !name.is_empty() && names[..i].contains(name) {
                return Err(CapError::NonCanonical(
                    "Image endpoint names: a name is used twice",
                ));
            }
        }
        Ok(())
    }

    /// The endpoint number named `name`, if any.
    pub fn endpoint_by_name(&self, name: &str) -> Option<u32> {
        if name.is_empty() {
            return None;
        }
        let index = self.endpoint_names.iter().position(|n| n == name)?;
        u32::try_from(index).ok()
    }

    /// The name of endpoint `index`, if it has one.
    pub fn endpoint_name(&self, index: u32) -> Option<&str> {
        let name = self.endpoint_names.get(index as usize)?;
        (!name.is_empty()).then_some(name.as_str())
    }
}

pub(crate) fn check(what: &'static str, value: u64, max: u64) -> Result<(), CapError> {
    if value > max {
        Err(CapError::LimitExceeded { what, value, max })
    } else {
        Ok(())
    }
}
