//! Durable file primitives: write-temp-fsync-rename, directory fsync, and the
//! advisory lock file that orders head updates and pruning across processes.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use super::StoreOptions;
use super::error::{IoContext, StoreError};

/// Suffix of every temp file; only files in the store's `tmp/` carry it.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// How many fresh names a temp-file creation tries before giving up.
const TEMP_NAME_ATTEMPTS: u32 = 16;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temp-file name: pid, nanosecond clock, a process-wide counter and
/// 64 random bits (std's per-process random hasher keys). The pid and the
/// counter alone repeat when a killed process's pid comes back; the clock
/// and the random bits make that practically impossible, and
/// [`create_temp`] retries with a new name if it happens anyway.
fn temp_name() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(n);
    hasher.write_u128(nanos);
    let random = hasher.finish();
    format!(
        "{}-{nanos:x}-{n}-{random:016x}{TEMP_SUFFIX}",
        std::process::id()
    )
}

/// Creates a new, exclusively ours, temp file in `tmp_dir` (`create_new`:
/// never opens a file somebody else left or is writing), retrying with a
/// new name when one exists.
pub(crate) fn create_temp(tmp_dir: &Path) -> Result<(File, PathBuf), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let path = tmp_dir.join(temp_name());
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < TEMP_NAME_ATTEMPTS => {}
            Err(e) => return Err(StoreError::io("create temp file", path, e)),
        }
    }
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
    let (file, tmp) = create_temp(tmp_dir)?;
    let written = write_temp(file, &tmp, bytes)
        .and_then(|()| fs::rename(&tmp, dest).at("rename into place", dest));
    if written.is_err() {
        // Best effort: open() or the next prune removes leftovers anyway.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(parent_of(dest))
}

/// [`write_atomically`] without the directory fsync: the caller syncs
/// `dest`'s directory (once for many files) before anything depends on it.
pub(crate) fn write_atomically_unsynced_dir(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let (file, tmp) = create_temp(tmp_dir)?;
    let written = write_temp(file, &tmp, bytes)
        .and_then(|()| fs::rename(&tmp, dest).at("rename into place", dest));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_temp(mut file: File, tmp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    file.write_all(bytes).at("write temp file", tmp)?;
    file.sync_all().at("fsync temp file", tmp)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Fsyncs a directory, making renames/creations/removals in it durable.
#[cfg(not(windows))]
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync directory", dir)
}

/// Windows has no directory fsync (a directory cannot be opened as a
/// `File`); NTFS journals its metadata, so a rename that returned is
/// durable once the renamed file's own data was flushed, which
/// `write_atomically` does first. (Compiled for Windows in CI; not run there.)
#[cfg(windows)]
pub(crate) fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
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
///
/// An exclusive holder records itself in the lock file ("pid command"), so
/// a process waiting for the lock can say who holds it, and empties the
/// file again before releasing it.
#[derive(Debug)]
pub(crate) struct LockGuard {
    file: File,
    recorded: bool,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.recorded {
            // Best effort: a stale record is only ever shown as a hint.
            let _ = self.file.set_len(0);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Blob writers: many at once, but never during a prune.
    Shared,
    /// Head updates and prune: alone.
    Exclusive,
}

/// How long a waiter stays quiet before saying it waits (and for whom).
pub(crate) const LOCK_NOTICE_DELAY: Duration = Duration::from_millis(300);
/// The longest sleep between two attempts to take the lock.
const LOCK_POLL_MAX: Duration = Duration::from_millis(10);

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    let writable = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    match writable {
        Ok(file) => Ok(file),
        // A store this user may only read: a lock taken on a read-only
        // handle still excludes writers (and a write would fail anyway).
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            File::open(path).at("open lock file", path)
        }
        Err(e) => Err(StoreError::io("open lock file", path, e)),
    }
}

/// One non-blocking attempt: `Ok(false)` when somebody else holds the lock.
fn try_take(file: &File, mode: LockMode, path: &Path) -> Result<bool, StoreError> {
    let taken = match mode {
        LockMode::Shared => file.try_lock_shared(),
        LockMode::Exclusive => file.try_lock(),
    };
    match taken {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(StoreError::io("lock", path, e)),
    }
}

fn guard(file: File, mode: LockMode) -> LockGuard {
    let recorded = mode == LockMode::Exclusive && record_holder(&file);
    LockGuard { file, recorded }
}

/// Writes "pid command" into the (exclusively held) lock file.
fn record_holder(mut file: &File) -> bool {
    let command: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut line = format!("{} {}", std::process::id(), command.join(" "));
    if line.len() > 200 {
        let mut end = 200;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line.push('\n');
    file.set_len(0).is_ok() && file.rewind().is_ok() && file.write_all(line.as_bytes()).is_ok()
}

/// Who holds the lock, as the exclusive holder recorded it: "pid N
/// (command)"; `None` if nobody recorded (a blob writer holds it shared) or
/// the recorded process is gone.
fn read_holder(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(512)
        .read_to_string(&mut text)
        .ok()?;
    let line = text.lines().next()?.trim();
    let (pid, command) = line.split_once(' ').unwrap_or((line, ""));
    let pid: u32 = pid.parse().ok()?;
    if pid == std::process::id() {
        return Some(format!("pid {pid} (this process: another thread)"));
    }
    #[cfg(target_os = "linux")]
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    Some(format!("pid {pid} ({command})"))
}

/// Takes the lock in `mode`, waiting as `options` say: after
/// [`LOCK_NOTICE_DELAY`] one line on stderr (if `lock_wait_notice`), and
/// [`StoreError::LockTimeout`] once `lock_timeout` has passed.
///
/// Without a timeout the wait is a blocking `flock` (the kernel wakes us
/// when the lock is free), with a helper thread saying so meanwhile; with
/// one it is a polling loop of non-blocking attempts.
pub(crate) fn lock(
    path: &Path,
    mode: LockMode,
    options: &StoreOptions,
) -> Result<LockGuard, StoreError> {
    let file = open_lock_file(path)?;
    if try_take(&file, mode, path)? {
        return Ok(guard(file, mode));
    }
    match options.lock_timeout {
        None => wait_blocking(file, path, mode, options.lock_wait_notice),
        Some(timeout) => wait_polling(file, path, mode, options.lock_wait_notice, timeout),
    }
}

fn wait_blocking(
    file: File,
    path: &Path,
    mode: LockMode,
    notice: bool,
) -> Result<LockGuard, StoreError> {
    let take = |file: &File| {
        match mode {
            LockMode::Shared => file.lock_shared(),
            LockMode::Exclusive => file.lock(),
        }
        .at("lock", path)
    };
    if !notice {
        take(&file)?;
        return Ok(guard(file, mode));
    }
    let (done, wait) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(LOCK_NOTICE_DELAY) {
                print_notice(path, None);
            }
        });
        let taken = take(&file);
        drop(done);
        taken
    })?;
    Ok(guard(file, mode))
}

fn wait_polling(
    file: File,
    path: &Path,
    mode: LockMode,
    notice: bool,
    timeout: Duration,
) -> Result<LockGuard, StoreError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut noticed = !notice;
    loop {
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(StoreError::LockTimeout {
                path: path.to_path_buf(),
                waited,
                holder: read_holder(path),
            });
        }
        if !noticed && waited >= LOCK_NOTICE_DELAY {
            noticed = true;
            print_notice(path, Some(timeout));
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(LOCK_POLL_MAX);
        if try_take(&file, mode, path)? {
            return Ok(guard(file, mode));
        }
    }
}

/// The one line a waiter prints.
fn print_notice(path: &Path, timeout: Option<Duration>) {
    let holder = read_holder(path).unwrap_or_else(|| "another process or thread".to_owned());
    let until = match timeout {
        Some(timeout) => format!("up to {}", seconds(timeout)),
        None => "until it is free; --lock-timeout SECS limits this".to_owned(),
    };
    eprintln!(
        "capbox: waiting for the store lock {} held by {holder} ({until})",
        path.display()
    );
}

/// A duration as seconds for messages: "1s", "0.5s", "1.25s" (to the
/// hundredth).
pub(crate) fn seconds(d: Duration) -> String {
    let text = format!("{:.2}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

/// Takes the exclusive lock if nobody holds the lock; `None` if somebody does.
pub(crate) fn try_lock_exclusive(path: &Path) -> Result<Option<LockGuard>, StoreError> {
    let file = open_lock_file(path)?;
    Ok(try_take(&file, LockMode::Exclusive, path)?.then(|| guard(file, LockMode::Exclusive)))
}
