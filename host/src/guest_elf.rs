//! Locating the guest kernel ELF and checking its ABI note before loading.

use std::path::{Path, PathBuf};

use capbox_shared::abi::{ABI_NOTE_NAME, ABI_NOTE_SECTION, ABI_NOTE_TYPE, ABI_VERSION, AbiNote};
use capbox_shared::hash::{GUEST_FEATURES_NOTE_TYPE, GUEST_NEEDS_SSE41};
use goblin::elf::Elf;

use crate::error::GuestElfError;

/// The guest kernel `host/build.rs` built (or took from `CAPBOX_GUEST` at
/// build time), inside this binary: an installed `capbox` needs neither the
/// build tree nor a file next to it.
pub static EMBEDDED_GUEST: &[u8] = include_bytes!(env!("CAPBOX_GUEST_ELF"));

/// Which guest kernel a sandbox loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestImage {
    /// [`EMBEDDED_GUEST`].
    Embedded,
    /// An ELF file (e.g. from `CAPBOX_GUEST`).
    File(PathBuf),
}

impl GuestImage {
    /// `$CAPBOX_GUEST` when set at run time, else the embedded guest.
    pub fn from_env() -> GuestImage {
        match std::env::var_os("CAPBOX_GUEST") {
            Some(p) if !p.is_empty() => GuestImage::File(PathBuf::from(p)),
            _ => GuestImage::Embedded,
        }
    }

    /// Its bytes, checked like [`load_checked`].
    pub fn load_checked(&self) -> Result<Vec<u8>, GuestElfError> {
        match self {
            GuestImage::File(path) => load_checked(path),
            GuestImage::Embedded => check(
                EMBEDDED_GUEST.to_vec(),
                Path::new("(embedded in this capbox binary)"),
            ),
        }
    }
}

/// The guest ELF file: `$CAPBOX_GUEST` at run time, else the one
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
    check(bytes, path)
}

/// Checks the ABI note of `bytes` (named `path` in errors).
fn check(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, GuestElfError> {
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
        Some(_) => {
            check_features(&bytes, path)?;
            Ok(bytes)
        }
    }
}

/// The CPU-feature bits of the ELF's capbox features note (0 without one).
pub fn needed_features(elf_bytes: &[u8]) -> Result<u32, String> {
    let elf = Elf::parse(elf_bytes).map_err(|e| e.to_string())?;
    let Some(notes) = elf.iter_note_sections(elf_bytes, Some(ABI_NOTE_SECTION)) else {
        return Ok(0);
    };
    let mut bits = 0;
    for note in notes {
        let note = note.map_err(|e| e.to_string())?;
        if note.name == ABI_NOTE_NAME && note.n_type == GUEST_FEATURES_NOTE_TYPE {
            let desc = <[u8; 4]>::try_from(note.desc).map_err(|_| {
                format!(
                    "features note descriptor has {} bytes, want 4",
                    note.desc.len()
                )
            })?;
            bits |= u32::from_le_bytes(desc);
        }
    }
    Ok(bits)
}

/// Refuses a guest whose features note asks for what this CPU lacks (or
/// for a feature this host does not know).
fn check_features(bytes: &[u8], path: &Path) -> Result<(), GuestElfError> {
    let bits = needed_features(bytes).map_err(|reason| GuestElfError::BadElf {
        path: path.to_path_buf(),
        reason,
    })?;
    let missing = |feature: &'static str| GuestElfError::CpuFeature {
        path: path.to_path_buf(),
        feature,
    };
    if bits & !GUEST_NEEDS_SSE41 != 0 {
        return Err(missing("unknown (features note bits beyond SSE4.1)"));
    }
    if bits & GUEST_NEEDS_SSE41 != 0 && !cpu_has_sse41() {
        return Err(missing("SSE4.1"));
    }
    Ok(())
}

fn cpu_has_sse41() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
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

#[cfg(test)]
mod tests {
    use super::*;

    fn built_guest() -> Vec<u8> {
        std::fs::read(default_guest_path()).expect("host/build.rs built the guest")
    }

    /// Offset of the note descriptor (the version bytes) in the ELF.
    fn desc_offset(elf: &[u8]) -> usize {
        let mut pattern = b"capbox\0\0".to_vec();
        pattern.extend_from_slice(&ABI_VERSION.to_le_bytes());
        elf.windows(pattern.len())
            .position(|w| w == pattern.as_slice())
            .expect("the guest carries the note")
            + 8
    }

    #[test]
    fn the_built_guest_has_the_current_abi_note() {
        assert_eq!(abi_version(&built_guest()), Ok(Some(ABI_VERSION)));
        assert!(load_checked(&default_guest_path()).is_ok());
        // The embedded copy is the same kernel.
        assert_eq!(abi_version(EMBEDDED_GUEST), Ok(Some(ABI_VERSION)));
        assert!(GuestImage::Embedded.load_checked().is_ok());
    }

    #[test]
    fn a_mismatched_or_missing_note_is_refused() {
        let dir = std::env::temp_dir().join(format!("capbox-elf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut elf = built_guest();
        let at = desc_offset(&elf);
        elf[at..at + 4].copy_from_slice(&(ABI_VERSION + 1).to_le_bytes());
        let patched = dir.join("guest-v2");
        std::fs::write(&patched, &elf).unwrap();
        let err = load_checked(&patched).unwrap_err();
        assert!(
            matches!(err, GuestElfError::AbiMismatch { guest, host, .. } if guest == ABI_VERSION + 1 && host == ABI_VERSION),
            "{err}"
        );
        assert!(err.to_string().contains("rebuild the guest"), "{err}");

        // Rename the owner: no capbox note any more.
        let mut elf = built_guest();
        let at = desc_offset(&elf) - 8;
        elf[at] = b'X';
        let renamed = dir.join("guest-no-note");
        std::fs::write(&renamed, &elf).unwrap();
        assert!(matches!(
            load_checked(&renamed),
            Err(GuestElfError::NoAbiNote { .. })
        ));

        // Turn the ABI note into a features note: its bits are read, an
        // unknown bit is refused, SSE4.1 only where the CPU has it.
        let path = Path::new("patched");
        let mut elf = built_guest();
        assert_eq!(
            needed_features(&elf),
            Ok(0),
            "the default guest needs nothing"
        );
        let at = desc_offset(&elf);
        elf[at - 12..at - 8].copy_from_slice(&GUEST_FEATURES_NOTE_TYPE.to_le_bytes());
        elf[at..at + 4].copy_from_slice(&GUEST_NEEDS_SSE41.to_le_bytes());
        assert_eq!(needed_features(&elf), Ok(GUEST_NEEDS_SSE41));
        assert_eq!(check_features(&elf, path).is_ok(), cpu_has_sse41());
        elf[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            check_features(&elf, path),
            Err(GuestElfError::CpuFeature { feature, .. }) if feature.starts_with("unknown")
        ));

        let not_elf = dir.join("not-elf");
        std::fs::write(&not_elf, b"hello").unwrap();
        assert!(matches!(
            load_checked(&not_elf),
            Err(GuestElfError::BadElf { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
