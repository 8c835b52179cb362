//! The store's typed error: every variant names the path or hash involved.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use capbox_shared::{CapError, CapHash, CapKind};

/// Why a [`super::Store`] operation failed.
///
/// A variant that wraps another error keeps it as its [`std::error::Error::source`]
/// and does not repeat its text: print the chain (anyhow's `{:#}`, or walk
/// `source()`) to see every cause once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("store I/O error: cannot {action} {path}")]
    Io {
        /// What was being done (e.g. "read", "rename into place").
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The store's format file names a version this build does not know.
    #[error(
        "unsupported store format at {path}: found {found:?}, this build reads {expected:?} only{}",
        if found == "capbox-store 1" {
            " (format 1 was written before CNodes hashed as a Merkle tree, so its CNode blobs \
             and the heads above them have other hashes now; move that store aside or point \
             CAPBOX_STORE elsewhere to start a new one)"
        } else {
            ""
        }
    )]
    UnsupportedFormat {
        /// The format file.
        path: PathBuf,
        /// Its (first line of) content.
        found: String,
        /// The format line this build writes and reads.
        expected: &'static str,
    },
    /// A prune or gc found a corrupt head without a history, so what it
    /// pins is unknown: nothing was removed.
    #[error(
        "{corrupt}; it has no history to tell what it pointed at, so nothing was removed \
         (`capbox store set-head NAME HASH` repairs it, `capbox store remove-head NAME` drops it)"
    )]
    CorruptHeadBlocksPrune {
        /// What is wrong with the head (its `CorruptHead` message).
        corrupt: String,
    },
    /// A read-only open of a directory that holds no store.
    #[error(
        "no capbox store at {path} (nothing to read; a command that writes, e.g. `capbox new`, creates one)"
    )]
    NoStore {
        /// The directory.
        path: PathBuf,
    },
    /// A read-only open of a store in an older format (migrated only by a
    /// writing open).
    #[error(
        "the store at {path} is in format {found:?}; run `capbox store migrate` (or any command that writes, e.g. `capbox store gc`) to migrate it to {expected:?}"
    )]
    NeedsMigration {
        /// The store.
        path: PathBuf,
        /// Its format line.
        found: String,
        /// The current format.
        expected: &'static str,
    },
    /// The directory exists, is not empty, and has no format file.
    #[error("{path} is not a capbox store (non-empty directory without a FORMAT file)")]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// Bytes offered for storage are not a canonical cap encoding.
    #[error("rejected a {len}-byte cap encoding{}", expected_suffix(.expected))]
    InvalidEncoding {
        /// Length of the rejected bytes.
        len: usize,
        /// The hash the caller claimed for them, if any.
        expected: Option<CapHash>,
        /// Why decoding failed.
        #[source]
        source: CapError,
    },
    /// A cap could not be encoded or hashed (e.g. it still holds a `Ref`).
    #[error("cannot store a {kind} cap")]
    Unencodable {
        /// The cap's kind.
        kind: CapKind,
        /// Why.
        #[source]
        source: CapError,
    },
    /// Bytes offered under a hash do not hash to it; nothing was stored.
    #[error("hash mismatch: bytes were offered as {expected} but hash to {actual}")]
    HashMismatch {
        /// The hash the caller claimed.
        expected: CapHash,
        /// The hash the bytes actually have.
        actual: CapHash,
    },
    /// A page-granular export of Data `hash` failed: the source (the
    /// kernel) refused, or sent parts that do not hash to what their
    /// parent names. Nothing of the Data's root was stored.
    #[error("page-granular export of Data {hash}: {reason}")]
    DataExport {
        /// The Data.
        hash: CapHash,
        /// What went wrong.
        reason: String,
    },
    /// A stored blob does not decode, or does not re-hash to its name.
    #[error("corrupt blob {hash} at {path}: {reason}")]
    CorruptBlob {
        /// The blob's name.
        hash: CapHash,
        /// Its file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A head name that is empty, too long, or could escape the heads directory.
    #[error("invalid head name {name:?}: {reason}")]
    InvalidHeadName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A head file that does not hold a hash.
    #[error("corrupt head {name:?} at {path}: {reason}")]
    CorruptHead {
        /// The head's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A head may only point at an Instance cap.
    #[error("head {name:?} must point at an Instance, but {hash} is a {found} cap")]
    HeadNotInstance {
        /// The head's name.
        name: String,
        /// The hash offered.
        hash: CapHash,
        /// Its kind.
        found: CapKind,
    },
    /// Setting a head was refused because its graph is not all in the store.
    #[error("refusing head {name:?} -> {root}: blob {missing} of its graph is not in the store")]
    IncompleteGraph {
        /// The head's name.
        name: String,
        /// The instance the head would point at.
        root: CapHash,
        /// The first missing blob found.
        missing: CapHash,
    },
    /// The store's lock stayed taken by another process (or thread) for the
    /// whole [`super::StoreOptions::lock_timeout`].
    #[error(
        "timed out after {} waiting for the store lock {path}{}; another capbox is using \
         the store (retry later, or raise --lock-timeout)",
        super::fsio::seconds(*.waited),
        holder_suffix(.holder)
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
        /// Who held it, as its holder recorded ("pid N (command)"), if known.
        holder: Option<String>,
    },
    /// A compare-and-swap head move lost: the head is not what the caller
    /// expected (another process moved it). Nothing was changed.
    #[error(
        "head {name:?} moved: expected {}, found {}",
        head_text(.expected),
        head_text(.found)
    )]
    HeadMoved {
        /// The head.
        name: String,
        /// What the caller expected (`None`: no such head).
        expected: Option<CapHash>,
        /// What it is (`None`: no such head).
        found: Option<CapHash>,
    },
    /// A head's history log does not agree with the head (a damaged or
    /// missing record; a crash never causes this).
    #[error("history of head {name:?} at {path} is damaged: {reason}")]
    CorruptHistory {
        /// The head.
        name: String,
        /// The log file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A head move was asked for with no history record to write.
    #[error("moving head {name:?} needs at least one history record")]
    NoChange {
        /// The head.
        name: String,
    },
    /// A link in a cap graph points at a cap of the wrong kind.
    #[error(
        "malformed graph: {parent} links {child} as its {field}, expected {expected}, found {found}"
    )]
    WrongLinkKind {
        /// The cap holding the link.
        parent: CapHash,
        /// The linked cap.
        child: CapHash,
        /// Which field holds the link.
        field: &'static str,
        /// The kind the field requires.
        expected: CapKind,
        /// The kind found.
        found: CapKind,
    },
    /// The PostgreSQL store failed (connecting, its schema, a statement).
    #[error(transparent)]
    Postgres(#[from] crate::store_pg::PgError),
}

fn head_text(head: &Option<CapHash>) -> String {
    match head {
        Some(hash) => hash.to_string(),
        None => "no head".to_owned(),
    }
}

fn holder_suffix(holder: &Option<String>) -> String {
    match holder {
        Some(holder) => format!(" (held by {holder})"),
        None => String::new(),
    }
}

fn expected_suffix(expected: &Option<CapHash>) -> String {
    match expected {
        Some(hash) => format!(" offered as {hash}"),
        None => String::new(),
    }
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Adds the action and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::io(action, path, source))
    }
}
