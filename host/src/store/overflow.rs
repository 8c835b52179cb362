//! Where the host's blob cache puts blobs it must not lose
//! ([`crate::Kernel`], docs/kernel.md "Host memory"): a private temporary
//! directory of blob files the kernel creates on first use and removes
//! when dropped, or a caller's [`Store`].
//!
//! The temporary directory is scratch space, not a store: no lock, no
//! fsync (it dies with the process), files named by hash under a
//! one-byte fan-out, written to a temporary name and renamed so a reader
//! never sees half a blob. Every read is decoded and re-hashed, as the
//! store's are.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use capbox_shared::cap::Cap;
use capbox_shared::hash::CapHash;

use super::{Store, StoreError};

/// Where overflowed blobs live.
#[derive(Debug)]
pub enum OverflowStore {
    /// A private temporary directory, removed on drop.
    Temp(TempBlobDir),
    /// A caller's store (blobs written there stay).
    Store(Store),
}

impl OverflowStore {
    /// Keeps `bytes` (the encoding of `hash`, which the caller has
    /// checked).
    pub fn put(&self, hash: &CapHash, bytes: &[u8]) -> Result<(), StoreError> {
        match self {
            OverflowStore::Temp(dir) => dir.put(hash, bytes),
            OverflowStore::Store(store) => store.put_encoded_with_hash(hash, bytes),
        }
    }

    /// The encoding of `hash`, verified, if kept.
    pub fn get(&self, hash: &CapHash) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            OverflowStore::Temp(dir) => dir.get(hash),
            OverflowStore::Store(store) => store.get_encoded(hash),
        }
    }

    /// Whether `hash` is kept (not verified).
    pub fn contains(&self, hash: &CapHash) -> bool {
        match self {
            OverflowStore::Temp(dir) => dir.path_of(hash).is_file(),
            OverflowStore::Store(store) => store.contains(hash).unwrap_or(false),
        }
    }
}

/// A private directory of blob files, removed (with everything in it)
/// when dropped.
#[derive(Debug)]
pub struct TempBlobDir {
    root: PathBuf,
    next_tmp: AtomicU64,
}

impl TempBlobDir {
    /// A new empty directory under `parent` (e.g. `std::env::temp_dir()`),
    /// readable by this user only. Directories left there by processes
    /// that are gone (a kernel never dropped, e.g. one in a `static`, or a
    /// killed process) are removed first.
    pub fn create_in(parent: &Path) -> Result<Self, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        remove_stale(parent);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let root = parent.join(format!("{PREFIX}{pid}-{n}"));
            match private_dir_builder().create(&root) {
                Ok(()) => {
                    return Ok(TempBlobDir {
                        root,
                        next_tmp: AtomicU64::new(0),
                    });
                }
                // Left by an earlier process with the same id: next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("create overflow directory", root, e)),
            }
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, hash: &CapHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    fn put(&self, hash: &CapHash, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(hash);
        if path.is_file() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join(format!("tmp-{n}"));
        let written = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io("write overflow blob", path, e));
        }
        Ok(())
    }

    fn get(&self, hash: &CapHash) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(hash);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read overflow blob", path, e)),
        };
        let corrupt = |reason: String| StoreError::CorruptBlob {
            hash: *hash,
            path: path.clone(),
            reason,
        };
        let cap = Cap::decode(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let actual = cap.hash().map_err(|e| corrupt(e.to_string()))?;
        if actual != *hash {
            return Err(corrupt(format!("hashes to {actual}")));
        }
        Ok(Some(bytes))
    }
}

const PREFIX: &str = "capbox-host-blobs-";

/// Removes `PREFIX<pid>-<n>` directories under `parent` whose process is
/// gone (Linux: no `/proc/<pid>`; elsewhere nothing is removed). Best
/// effort.
fn remove_stale(parent: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u64>()) else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for TempBlobDir {
    fn drop(&mut self) {
        // Best effort: a failure leaves scratch files in the temp directory.
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A builder of directories only their owner can read (mode 0700 on
/// Unix; elsewhere the platform's default).
fn private_dir_builder() -> fs::DirBuilder {
    #[cfg(unix)]
    {
        let mut builder = fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
    }
    #[cfg(not(unix))]
    {
        fs::DirBuilder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capbox_shared::cap::Data;

    #[test]
    fn blobs_round_trip_are_verified_and_the_directory_goes_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let dir = TempBlobDir::create_in(parent.path()).unwrap();
        let root = dir.path().to_path_buf();
        let overflow = OverflowStore::Temp(dir);
        let cap = Cap::Data(Data::from_bytes(&[3; 5000]).unwrap());
        let (hash, bytes) = (cap.hash().unwrap(), cap.encode().unwrap());
        assert!(!overflow.contains(&hash));
        assert_eq!(overflow.get(&hash).unwrap(), None);
        overflow.put(&hash, &bytes).unwrap();
        overflow.put(&hash, &bytes).unwrap();
        assert!(overflow.contains(&hash));
        assert_eq!(overflow.get(&hash).unwrap(), Some(bytes.clone()));
        // A file altered behind its back is refused, not served.
        let OverflowStore::Temp(dir) = &overflow else {
            unreachable!()
        };
        fs::write(dir.path_of(&hash), &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(
            overflow.get(&hash),
            Err(StoreError::CorruptBlob { .. })
        ));
        drop(overflow);
        assert!(!root.exists());
    }

    #[test]
    fn directories_of_gone_processes_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        // No process has this id (above the kernel's pid limit).
        let stale = parent.path().join(format!("{PREFIX}4294967295-0"));
        let mine = parent
            .path()
            .join(format!("{PREFIX}{}-999", std::process::id()));
        let other = parent.path().join("capbox-host-blobs-not-ours");
        for dir in [&stale, &mine, &other] {
            fs::create_dir(dir).unwrap();
        }
        let dir = TempBlobDir::create_in(parent.path()).unwrap();
        assert!(!stale.exists());
        assert!(mine.exists() && other.exists() && dir.path().exists());
    }
}
