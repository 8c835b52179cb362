//! Locating the guest kernel ELF and checking its ABI note before loading.

use std::path::{Path, PathBuf};

use capbox_shared::abi::{ABI_NOTE_NAME, ABI_NOTE_SECTION, ABI_NOTE_TYPE, ABI_VERSION, AbiNote};
use goblin::elf::Elf;

use crate::error::GuestElfError;

/// The guest ELF to load: `$CAPBOX_GUEST` at run time, else the one
/// `host/build.rs` built (or took from `CAPBOX_GUEST` at build time).
pub fn default_guest_path() -> PathBuf {
    match std::env::var_os("CAPBOX_GUEST") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CAPBOX_GUEST_ELF")),
    }
}

/// Reads `path`, checks that it carries an ABI note with [`ABI_VERSION`],
/// and returns its bytes.
pub fn load_checked(path: &Path) -> Result<Vec<u8>, GuestElfError> {
    let bytes = std::fs::read(path).map_err(|source| GuestElfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let found = abi_version(&bytes).map_err(|reason| GuestElfError::BadElf {
        path: path.to_path_buf(),
        reason,
    })?;
    match found {
        None => Err(GuestElfError::NoAbiNote {
            path: path.to_path_buf(),
        }),
        Some(v) if v != ABI_VERSION => Err(GuestElfError::AbiMismatch {
            path: path.to_path_buf(),
            guest: v,
            host: ABI_VERSION,
        }),
        Some(_) => Ok(bytes),
    }
}

/// The ABI version in the ELF's capbox note, `None` when there is no note.
pub fn abi_version(elf_bytes: &[u8]) -> Result<Option<u32>, String> {
    let elf = Elf::parse(elf_bytes).map_err(|e| e.to_string())?;
    let Some(notes) = elf.iter_note_sections(elf_bytes, Some(ABI_NOTE_SECTION)) else {
        return Ok(None);
    };
    for note in notes {
        let note = note.map_err(|e| e.to_string())?;
        if note.name == ABI_NOTE_NAME && note.n_type == ABI_NOTE_TYPE {
            return AbiNote::version_from_desc(note.desc)
                .map(Some)
                .ok_or_else(|| {
                    format!("ABI note descriptor has {} bytes, want 4", note.desc.len())
                });
        }
    }
    Ok(None)
}
