//! Durable file primitives: write-temp-fsync-rename, directory fsync, and the
//! advisory lock file that orders head updates and pruning across processes.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{IoContext, StoreError};

/// Suffix of every temp file; only files in the store's `tmp/` carry it.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp-file name unique across threads (counter) and processes (pid).
fn temp_path(tmp_dir: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp_dir.join(format!("{}-{n}{TEMP_SUFFIX}", std::process::id()))
}

/// Makes `dest` hold exactly `bytes`, durably, or leaves it untouched:
/// writes a fresh temp file in `tmp_dir` (same file system as `dest`),
/// fsyncs it, renames it over `dest`, then fsyncs `dest`'s directory so the
/// rename itself survives a crash. A failed attempt removes its temp file.
pub(crate) fn write_atomically(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let tmp = temp_path(tmp_dir);
    let written =
        write_temp(&tmp, bytes).and_then(|()| fs::rename(&tmp, dest).at("rename into place", dest));
    if written.is_err() {
        // Best effort: open() or the next prune removes leftovers anyway.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(parent_of(dest))
}

fn write_temp(tmp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .at("create temp file", tmp)?;
    file.write_all(bytes).at("write temp file", tmp)?;
    file.sync_all().at("fsync temp file", tmp)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Fsyncs a directory, making renames/creations/removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync directory", dir)
}

/// Creates `dir` (one level) if it is missing, and fsyncs its parent when it
/// did. Returns whether it was created.
pub(crate) fn ensure_dir(dir: &Path) -> Result<bool, StoreError> {
    match fs::create_dir(dir) {
        Ok(()) => {
            sync_dir(parent_of(dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(StoreError::io("create directory", dir, e)),
    }
}

/// Removes every `*.tmp` file in `tmp_dir`; returns how many. Callers hold
/// the exclusive lock, so no writer of this protocol is using them.
pub(crate) fn remove_temp_files(tmp_dir: &Path) -> Result<u64, StoreError> {
    let mut removed = 0;
    for entry in fs::read_dir(tmp_dir).at("list", tmp_dir)? {
        let path = entry.at("list", tmp_dir)?.path();
        let is_temp = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(TEMP_SUFFIX));
        if !is_temp {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove temp file", path, e)),
        }
    }
    Ok(removed)
}

/// A held advisory lock on the store's lock file; released on drop (closing
/// the file descriptor releases the `flock`). Each guard opens its own file
/// description, so threads of one process exclude each other too.
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

#[derive(Clone, Copy)]
pub(crate) enum LockMode {
    /// Blob writers: many at once, but never during a prune.
    Shared,
    /// Head updates and prune: alone.
    Exclusive,
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at("open lock file", path)
}

/// Blocks until the lock is held in `mode`.
pub(crate) fn lock(path: &Path, mode: LockMode) -> Result<LockGuard, StoreError> {
    let file = open_lock_file(path)?;
    match mode {
        LockMode::Shared => file.lock_shared(),
        LockMode::Exclusive => file.lock(),
    }
    .at("lock", path)?;
    Ok(LockGuard { _file: file })
}

/// Takes the exclusive lock if nobody holds the lock; `None` if somebody does.
pub(crate) fn try_lock_exclusive(path: &Path) -> Result<Option<LockGuard>, StoreError> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(LockGuard { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io("lock", path, e)),
    }
}
