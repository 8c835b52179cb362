//! `Store`: the host's embedded persistence (DESIGN §7) — a directory of cap
//! blobs keyed by hash plus named heads (name → Instance hash).
//!
//! # Layout
//!
//! ```text
//! <root>/FORMAT            "capbox-store 4": the format version. Formats 2 (no head
//!                          history) and 3 (Data blobs whole) are migrated in place on
//!                          open or by `capbox store migrate`; others are refused
//!                          (2: CNodes hash as a Merkle tree; a format-1 store holds
//!                          CNode blobs under their old hashes)
//! <root>/blobs/ab/ab12…    one blob per file: the canonical encoding (`Cap::encode`),
//!                          named by its 64-hex hash, under a 2-hex-digit fan-out dir;
//!                          a Data blob is a 41-byte root record instead (`pages`)
//! <root>/pages/ab/ab12…    one Data page (4096 bytes) per file, named by its digest
//! <root>/nodes/ab/ab12…    one Data tree node (left ‖ right, 64 bytes), by its digest
//! <root>/heads/<name>      one head per file: "<64 hex>\n", then "history <n>\n" when
//!                          n > 0: the head's move number (its last history record)
//! <root>/history/<name>    the head's history: one record line per move (below)
//! <root>/tmp/*.tmp         temp files being written; never read as blobs or heads
//!                          (<pid>-<ns clock hex>-<counter>-<64 random bits hex>.tmp)
//! <root>/lock              advisory lock file (flock); while held exclusively it
//!                          holds "<pid> <command line>\n" of the holder, else nothing
//! ```
//!
//! # Crash consistency
//!
//! Every file is written to a fresh temp file in `tmp/`, fsynced, renamed into
//! place, and then its directory is fsynced. Temp files are created with
//! `create_new` under a name no other writer (nor a dead process whose pid
//! came back) uses: pid, nanosecond clock, a process-wide counter and random
//! bits; should a name exist anyway, another is drawn. A blob is therefore durable
//! before [`Store::set_head`] can see it, and `set_head` refuses any graph
//! that is not fully present, so a crash at any point leaves every head
//! pointing at a complete graph. A crash can only leave temp files behind
//! (and a history record past the head, see "Head history"); they are
//! never visible as blobs, and are removed by [`Store::open`] (when no other
//! process holds the lock) and by every prune.
//!
//! # Concurrency
//!
//! Blob writes and history reads take the lock shared; head updates (with
//! their history appends) and prune take it exclusive, so a prune never deletes a blob while it is being written and
//! never races a head update. Reads take no lock. Blob files are immutable
//! and equal for equal names, so two writers of the same blob are harmless.
//! A graph written by one process can still be pruned (as unreachable) by
//! another before its head is set; `set_head` then fails with
//! [`StoreError::IncompleteGraph`]. So writers save state with
//! [`Store::save_graph`]: it puts the graph's blobs from a caller-supplied
//! source (the kernel's copy), then, holding the exclusive lock, walks the
//! graph, stores again from the source whatever a prune removed meanwhile,
//! and only then moves the head. Nothing can remove a blob under that lock,
//! so the save cannot lose that race (no retry loop is needed). The CLI's
//! demo, `capbox kv` and `capbox publish --head` save this way.
//!
//! **Reading only**: [`Store::open_existing`] opens a store without
//! creating, migrating or cleaning anything, so the CLI's read-only
//! commands (`store stats|list|heads|verify`, `inspect`, `heads`, `log`,
//! `kv get|len`) create no store where there is none and work on a store
//! the user can only read (the lock file is then opened read-only; a
//! shared lock on it still keeps writers out).
//!
//! ## Waiting for the lock
//!
//! The lock is taken with a non-blocking attempt first. If somebody holds
//! it, [`StoreOptions`] decide: without `lock_timeout` (the default) the
//! process blocks in `flock` until it is free; with one, it polls (1 ms
//! doubling to 10 ms) and gives up with [`StoreError::LockTimeout`]. Either
//! way, after 300 ms it prints one line to stderr (unless
//! `lock_wait_notice` is off) naming the lock file and, when known, the
//! holder: an exclusive holder writes its pid and command line into the
//! lock file and empties it before releasing; shared holders (blob writers,
//! many at once) record nothing. The CLI's global `--lock-timeout SECS`
//! sets the timeout.
//!
//! # Head history
//!
//! Every head move appends to `history/<name>` first, then rewrites the head
//! file; both under the exclusive lock. One record per move, one text line:
//!
//! ```text
//! h1 <seq> <unix ms> <prev hash | -> <new hash> <action> <endpoint | -> <gas | -> <outcome | -> <fnv64>
//! ```
//!
//! `seq` is the head's move number (1 for its first recorded move); the
//! head file's second line `history <seq>` names the record that put it
//! there. `action` is `new`, `invoke` ([`crate::Session`]), `set`
//! ([`Store::set_head`], `capbox store set-head`), `save` ([`Store::save_graph`]:
//! the demo, `capbox kv`); `outcome` a summary such as
//! `exit=Halt,r7=1,r8=0,out=0` (both stored as tokens: no spaces); the last
//! field is an FNV-1a checksum of the rest of the line in hex.
//!
//! Why the head and the history never disagree:
//!
//! * The records are fsynced before the head moves, so a head at move `n`
//!   always has its records 1..=n on disk.
//! * A crash between the append and the head write leaves a record numbered
//!   past the head's: readers ([`Store::history`]) take only records up to
//!   the head's number. A crash inside an append leaves a line without its
//!   newline (or failing its checksum): not a record.
//! * Before every append the writer cuts the log back to the end of the
//!   head's own record (`repair_tail`, reading only the log's last 64 KiB),
//!   so leftovers are always at the end and never mix with later records;
//!   older records are never rewritten.
//! * A move number, not a hash, tells an orphan from the chain, so even an
//!   invocation that left the state unchanged (prev = new) is told apart.
//! * [`Store::remove_head`] removes the head, then its log; a log left by a
//!   crash in between belongs to no head (move number 0): the next move of a
//!   head of that name cuts it, and prune/gc remove it.
//!
//! [`Store::history`] checks the chain (records 1..=n, each starting where
//! the previous ended, the last at the head) and fails with
//! [`StoreError::CorruptHistory`] otherwise; [`Store::verify`] reports it as
//! [`VerifyProblem::BadHistory`]. Only damage (not a crash) causes that.
//!
//! Compare-and-swap: [`Store::set_head_if`] and [`Store::save_graph_if`]
//! move a head only if it is what the caller expects (checked under the
//! exclusive lock), else [`StoreError::HeadMoved`], changing nothing.
//!
//! History does not pin: prune and gc keep only what heads reach, so a
//! record may name a state that was pruned since (`capbox log` marks it
//! "state pruned"). Pinning every state a head ever had would make a busy
//! head's store grow without bound; a head that must keep a state can be
//! forked to it (`capbox invoke HASH --head NAME` or `store set-head`).
//!
//! Format 4 keeps Data caps as Merkle-tree parts shared between versions
//! (module `pages`, docs/store.md "Data pages"); [`Store::open`] and
//! [`Store::migrate`] convert every Data blob of a format-3 store (parts
//! first, then the root record replaces the encoding; a crash midway is
//! finished by the next open).
//!
//! Format 3 added the history; [`Store::open`] migrates a format-2 store in
//! place (under the exclusive lock it rewrites `FORMAT`: a one-line format-2
//! head reads as move number 0 with an empty history). A format-2 build
//! refuses a format-3 store by its FORMAT line.
//!
//! # Access tracking
//!
//! A blob's last access is its file's modification time: blobs are never
//! modified, so the mtime is free to mean "last put or get". Each `get`/`put`
//! of an existing blob sets it (one `futimens`, errors ignored: tracking is
//! best effort, e.g. on a read-only mount). Prune evicts the oldest first.
//!
//! # Pruning
//!
//! Heads pin their graphs: [`Store::prune`] never removes a blob reachable
//! from a head. Every other blob is unreachable from all heads, hence a
//! cache entry; prune removes those least recently used first until the
//! store is within `max_entries` and `max_bytes`, and reports
//! ([`PruneReport::limits_met`]) when the pinned graphs alone exceed the
//! limits. [`Store::gc`] removes every unreachable blob.
//!
//! # Verification
//!
//! `put_encoded*` decode the bytes (rejecting anything non-canonical) and
//! hash them before storing; `get*` re-hash what they read, so a corrupt file
//! is a [`StoreError::CorruptBlob`], never a wrong answer. Re-putting a cap
//! replaces a corrupt file of it.
//!
//! [`Store::verify`] (`capbox store verify`) checks the whole store on
//! demand: it reads, decodes and re-hashes every blob, and walks every
//! head's graph for missing blobs and links to the wrong kind, holding the
//! lock shared (heads cannot move meanwhile). It reports every problem in a
//! [`VerifyReport`] rather than stopping at the first.
//!
//! # Errors
//!
//! A [`StoreError`] that wraps an I/O or decoding error keeps it as its
//! `source()` and does not repeat its text; print the chain (anyhow's
//! `{:#}`, as the CLI does) to see each cause once.

mod backend;
mod blobs;
mod error;
mod fsio;
mod graph;
mod heads;
mod history;
mod overflow;
mod pages;
mod prune;
mod verify;

pub use backend::{
    CapSource, SharedStore, StoreBackend, StoreLocation, open_store, open_store_existing,
};
pub use blobs::{BlobInfo, BlobReader, BlobWriter, StoreStats};
pub use error::StoreError;
pub use heads::{HeadsListing, MAX_HEAD_NAME_LEN, SaveReport, validate_head_name};
pub(crate) use history::token as history_token;
pub use history::{HeadChange, HistoryEntry, MAX_RECORD_TEXT};
pub use overflow::{OverflowStore, TempBlobDir};
pub use prune::PruneReport;
pub(crate) use verify::chain as error_chain;
pub use verify::{VerifyProblem, VerifyReport};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use capbox_shared::{CapHash, CapKind};

use error::IoContext;
use fsio::LockMode;

/// The format line in `<root>/FORMAT`.
pub const STORE_FORMAT: &str = "capbox-store 4";
/// The format before Data pages; [`Store::open`] migrates it in place.
const FORMAT_3: &str = "capbox-store 3";
/// The format before head history; [`Store::open`] migrates it in place
/// (to 3, then 4).
const PREVIOUS_FORMAT: &str = "capbox-store 2";
/// Environment variable naming the default store directory.
pub const STORE_ENV: &str = "CAPBOX_STORE";
/// The default store directory when [`STORE_ENV`] is unset (relative to the
/// working directory).
pub const DEFAULT_STORE_DIR: &str = ".capbox/store";

const FORMAT_FILE: &str = "FORMAT";
const BLOBS_DIR: &str = "blobs";
const HEADS_DIR: &str = "heads";
const TMP_DIR: &str = "tmp";
const LOCK_FILE: &str = "lock";
const HISTORY_DIR: &str = "history";
const KNOWN_ENTRIES: [&str; 8] = [
    FORMAT_FILE,
    pages::PAGES_DIR,
    pages::NODES_DIR,
    BLOBS_DIR,
    HEADS_DIR,
    TMP_DIR,
    LOCK_FILE,
    HISTORY_DIR,
];

/// What [`Store::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationReport {
    /// The format found.
    pub from: String,
    /// Data blobs converted to root records plus parts.
    pub data_blobs: u64,
    /// Pages written.
    pub pages: u64,
    /// Tree nodes written.
    pub nodes: u64,
}

/// How a [`Store`] waits for its lock (see "Concurrency" in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Give up waiting for the lock after this long, with
    /// [`StoreError::LockTimeout`]; `None` (the default) waits until it is free.
    pub lock_timeout: Option<Duration>,
    /// Print one line to stderr when a wait for the lock lasts longer than
    /// a moment (300 ms), naming the holder if it recorded itself. On by
    /// default: a silent wait looks like a hang.
    pub lock_wait_notice: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            lock_timeout: None,
            lock_wait_notice: true,
        }
    }
}

/// The store's exclusive lock, held until dropped (see [`Store::hold_exclusive`]).
#[derive(Debug)]
pub struct StoreLock {
    _guard: fsio::LockGuard,
}

/// A persistent, content-addressed cap store (see the module docs for the
/// on-disk layout and its guarantees). Cheap to share between threads: it
/// holds only paths, and every method takes `&self`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    blobs: PathBuf,
    pages: PathBuf,
    nodes: PathBuf,
    heads: PathBuf,
    history: PathBuf,
    tmp: PathBuf,
    lock: PathBuf,
    options: StoreOptions,
}

impl Store {
    /// `$CAPBOX_STORE` if set (and not empty), else `./.capbox/store`.
    pub fn default_path() -> PathBuf {
        match std::env::var_os(STORE_ENV) {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => PathBuf::from(DEFAULT_STORE_DIR),
        }
    }

    /// Opens the store at [`Store::default_path`].
    pub fn open_default() -> Result<Store, StoreError> {
        Store::open(Store::default_path())
    }

    /// Opens the store at `path`, creating it (and its parents) if missing.
    ///
    /// Refuses a directory whose FORMAT file names another format, and a
    /// non-empty directory without one. Removes temp files left by a crash
    /// when no other process is using the store.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default())
    }

    /// [`Store::open`] with `options` for every later lock wait (and the
    /// one opening may need).
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let root = path.as_ref().to_path_buf();
        fs::create_dir_all(&root).at("create store directory", &root)?;
        let store = Store {
            blobs: root.join(BLOBS_DIR),
            pages: root.join(pages::PAGES_DIR),
            nodes: root.join(pages::NODES_DIR),
            heads: root.join(HEADS_DIR),
            history: root.join(HISTORY_DIR),
            tmp: root.join(TMP_DIR),
            lock: root.join(LOCK_FILE),
            root,
            options,
        };
        store.check_or_write_format()?;
        for dir in [
            &store.blobs,
            &store.pages,
            &store.nodes,
            &store.heads,
            &store.history,
        ] {
            fsio::ensure_dir(dir)?;
        }
        if let Some(_alone) = fsio::try_lock_exclusive(&store.lock)? {
            fsio::remove_temp_files(&store.tmp)?;
        }
        Ok(store)
    }

    /// Opens the existing store at `path` for reading: creates, migrates,
    /// cleans and writes nothing, so it works on a store the user can only
    /// read ([`StoreError::NoStore`] when there is none,
    /// [`StoreError::NeedsMigration`] for an older format). Writing through
    /// the handle fails as the file system says.
    pub fn open_existing(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let root = path.as_ref().to_path_buf();
        let format_path = root.join(FORMAT_FILE);
        let found = match fs::read_to_string(&format_path) {
            Ok(text) => text.lines().next().unwrap_or("").trim().to_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if root.is_dir() && !dir_is_empty(&root)? {
                    StoreError::NotAStore { path: root }
                } else {
                    StoreError::NoStore { path: root }
                });
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => "(not UTF-8 text)".to_owned(),
            Err(e) => return Err(StoreError::io("read", format_path, e)),
        };
        if found == PREVIOUS_FORMAT || found == FORMAT_3 {
            return Err(StoreError::NeedsMigration {
                path: root,
                found,
                expected: STORE_FORMAT,
            });
        }
        if found != STORE_FORMAT {
            return Err(StoreError::UnsupportedFormat {
                path: format_path,
                found: found.chars().take(80).collect(),
                expected: STORE_FORMAT,
            });
        }
        Ok(Store {
            blobs: root.join(BLOBS_DIR),
            pages: root.join(pages::PAGES_DIR),
            nodes: root.join(pages::NODES_DIR),
            heads: root.join(HEADS_DIR),
            history: root.join(HISTORY_DIR),
            tmp: root.join(TMP_DIR),
            lock: root.join(LOCK_FILE),
            root,
            options,
        })
    }

    /// The options this handle waits for the lock with.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    /// Changes how this handle waits for the lock from now on.
    pub fn set_options(&mut self, options: StoreOptions) {
        self.options = options;
    }

    /// Takes the store's exclusive lock (waiting as the options say) and
    /// holds it until the returned guard is dropped: no blob write, head
    /// update or prune of any process runs meanwhile, e.g. while the store
    /// is copied. Calling another writing method of the store from the same
    /// thread while holding it waits for itself.
    pub fn hold_exclusive(&self) -> Result<StoreLock, StoreError> {
        Ok(StoreLock {
            _guard: self.lock(LockMode::Exclusive)?,
        })
    }

    /// The store's root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn check_or_write_format(&self) -> Result<(), StoreError> {
        let format_path = self.root.join(FORMAT_FILE);
        match fs::read_to_string(&format_path) {
            Ok(text) => {
                let found = text.lines().next().unwrap_or("").trim();
                if found == STORE_FORMAT {
                    fsio::ensure_dir(&self.tmp)?;
                    Ok(())
                } else if found == PREVIOUS_FORMAT || found == FORMAT_3 {
                    if found == PREVIOUS_FORMAT {
                        self.migrate_from_format_2(&format_path)?;
                    }
                    let report = self.migrate_from_format_3(&format_path)?;
                    if report.data_blobs > 0 {
                        eprintln!(
                            "capbox: migrated the store at {} to {STORE_FORMAT:?}: {} Data blobs \
                             now kept as {} pages and {} tree nodes",
                            self.root.display(),
                            report.data_blobs,
                            report.pages,
                            report.nodes
                        );
                    }
                    Ok(())
                } else {
                    Err(StoreError::UnsupportedFormat {
                        path: format_path,
                        found: found.chars().take(80).collect(),
                        expected: STORE_FORMAT,
                    })
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.refuse_foreign_directory()?;
                fsio::ensure_dir(&self.tmp)?;
                // Every temp-file writer holds the lock, so a concurrent
                // open does not clean our temp file away mid-write.
                let _writer = self.lock(LockMode::Shared)?;
                let line = format!("{STORE_FORMAT}\n");
                fsio::write_atomically(&self.tmp, &format_path, line.as_bytes())
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(StoreError::UnsupportedFormat {
                    path: format_path,
                    found: "(not UTF-8 text)".to_owned(),
                    expected: STORE_FORMAT,
                })
            }
            Err(e) => Err(StoreError::io("read", format_path, e)),
        }
    }

    /// Format 2 → 3: format 3 adds `history/` and the head file's optional
    /// `history <n>` line; a format-2 head (one line) reads as a head with
    /// move number 0 and no history, so only the FORMAT file changes.
    /// Under the exclusive lock, after reading FORMAT again (another
    /// process may have migrated meanwhile).
    fn migrate_from_format_2(&self, format_path: &Path) -> Result<(), StoreError> {
        fsio::ensure_dir(&self.tmp)?;
        let _alone = self.lock(LockMode::Exclusive)?;
        let text = fs::read_to_string(format_path).at("read", format_path)?;
        let found = text.lines().next().unwrap_or("").trim();
        if found == PREVIOUS_FORMAT {
            fsio::ensure_dir(&self.history)?;
            let line = format!("{FORMAT_3}\n");
            fsio::write_atomically(&self.tmp, format_path, line.as_bytes())?;
        }
        Ok(())
    }

    /// Format 3 → 4: every Data blob (its canonical encoding) becomes a
    /// root record plus its pages and tree nodes (see `pages`). Under the
    /// exclusive lock, after reading FORMAT again. Each blob is converted
    /// atomically (parts first, then the root record replaces the
    /// encoding), and converting skips blobs already converted, so a crash
    /// midway leaves a format-3 store that the next open finishes.
    fn migrate_from_format_3(&self, format_path: &Path) -> Result<MigrationReport, StoreError> {
        fsio::ensure_dir(&self.tmp)?;
        let _alone = self.lock(LockMode::Exclusive)?;
        let text = fs::read_to_string(format_path).at("read", format_path)?;
        let found = text.lines().next().unwrap_or("").trim().to_owned();
        let mut report = MigrationReport {
            from: found.clone(),
            ..MigrationReport::default()
        };
        if found != FORMAT_3 {
            return Ok(report);
        }
        for dir in [&self.pages, &self.nodes] {
            fsio::ensure_dir(dir)?;
        }
        let mut data_blobs = Vec::new();
        self.scan_blobs(|hash, path, _| {
            if graph::read_kind(path).ok().flatten() == Some(CapKind::Data) {
                data_blobs.push(hash);
            }
            Ok(())
        })?;
        data_blobs.sort();
        let (pages_before, nodes_before) = self.part_counts()?;
        for hash in data_blobs {
            if self.convert_data_blob(&hash)? {
                report.data_blobs += 1;
            }
        }
        let (pages_after, nodes_after) = self.part_counts()?;
        report.pages = pages_after - pages_before.min(pages_after);
        report.nodes = nodes_after - nodes_before.min(nodes_after);
        let line = format!("{STORE_FORMAT}\n");
        fsio::write_atomically(&self.tmp, format_path, line.as_bytes())?;
        Ok(report)
    }

    fn part_counts(&self) -> Result<(u64, u64), StoreError> {
        let (mut pages, mut nodes) = (0, 0);
        self.scan_parts(|(_, page), _, _| {
            if page {
                pages += 1;
            } else {
                nodes += 1;
            }
            Ok(())
        })?;
        Ok((pages, nodes))
    }

    /// Migrates the store at `path` to [`STORE_FORMAT`] (`capbox store
    /// migrate`), creating nothing where there is no store; what it did
    /// (`from` is the format found; nothing converted if it was current).
    pub fn migrate(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<MigrationReport, StoreError> {
        let root = path.as_ref().to_path_buf();
        let format_path = root.join(FORMAT_FILE);
        let found = match fs::read_to_string(&format_path) {
            Ok(text) => text.lines().next().unwrap_or("").trim().to_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoStore { path: root });
            }
            Err(e) => return Err(StoreError::io("read", format_path, e)),
        };
        if found == STORE_FORMAT {
            return Ok(MigrationReport {
                from: found,
                ..MigrationReport::default()
            });
        }
        if found != PREVIOUS_FORMAT && found != FORMAT_3 {
            return Err(StoreError::UnsupportedFormat {
                path: format_path,
                found: found.chars().take(80).collect(),
                expected: STORE_FORMAT,
            });
        }
        let store = Store {
            blobs: root.join(BLOBS_DIR),
            pages: root.join(pages::PAGES_DIR),
            nodes: root.join(pages::NODES_DIR),
            heads: root.join(HEADS_DIR),
            history: root.join(HISTORY_DIR),
            tmp: root.join(TMP_DIR),
            lock: root.join(LOCK_FILE),
            root,
            options,
        };
        if found == PREVIOUS_FORMAT {
            store.migrate_from_format_2(&format_path)?;
        }
        let mut report = store.migrate_from_format_3(&format_path)?;
        report.from = found;
        Ok(report)
    }

    /// A store is only ever created in an empty directory (or one holding
    /// what a crashed creation of a store left).
    fn refuse_foreign_directory(&self) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.root).at("list", &self.root)? {
            let name = entry.at("list", &self.root)?.file_name();
            let known = name.to_str().is_some_and(|n| KNOWN_ENTRIES.contains(&n));
            if !known {
                return Err(StoreError::NotAStore {
                    path: self.root.clone(),
                });
            }
        }
        Ok(())
    }

    fn blob_path(&self, hash: &CapHash) -> PathBuf {
        let hex = hash.to_hex();
        self.blobs.join(&hex[..2]).join(hex)
    }

    fn lock(&self, mode: LockMode) -> Result<fsio::LockGuard, StoreError> {
        fsio::lock(&self.lock, mode, &self.options)
    }
}

/// Whether `dir` has no entries.
fn dir_is_empty(dir: &Path) -> Result<bool, StoreError> {
    Ok(fs::read_dir(dir).at("list", dir)?.next().is_none())
}
