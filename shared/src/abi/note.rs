//! The ELF note that carries [`ABI_VERSION`] in the guest binary.
//!
//! Layout is the standard ELF note: `namesz`, `descsz`, `type` (u32 each),
//! the NUL-terminated name padded to 4 bytes, then the descriptor: the ABI
//! version as a little-endian u32.

use super::functions::ABI_VERSION;

/// Section the guest places its note in.
pub const ABI_NOTE_SECTION: &str = ".note.capbox-abi";
/// Note owner name (without the NUL).
pub const ABI_NOTE_NAME: &str = "capbox";
/// Note type for "ABI version".
pub const ABI_NOTE_TYPE: u32 = 1;

const NAME_LEN: usize = 8; // "capbox\0" padded to a multiple of 4

/// An ELF note holding the ABI version; the guest embeds one as a `static`.
#[repr(C, align(4))]
pub struct AbiNote {
    namesz: u32,
    descsz: u32,
    note_type: u32,
    name: [u8; NAME_LEN],
    desc: [u8; 4],
}

impl AbiNote {
    /// The note for this crate's [`ABI_VERSION`].
    pub const fn current() -> Self {
        let mut name = [0u8; NAME_LEN];
        let src = ABI_NOTE_NAME.as_bytes();
        let mut i = 0;
        while i < src.len() {
            name[i] = src[i];
            i += 1;
        }
        AbiNote {
            namesz: src.len() as u32 + 1,
            descsz: 4,
            note_type: ABI_NOTE_TYPE,
            name,
            desc: ABI_VERSION.to_le_bytes(),
        }
    }

    /// Reads the version back from a note descriptor, as found in an ELF.
    pub fn version_from_desc(desc: &[u8]) -> Option<u32> {
        let bytes: [u8; 4] = desc.try_into().ok()?;
        Some(u32::from_le_bytes(bytes))
    }
}
