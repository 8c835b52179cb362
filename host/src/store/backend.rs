//! [`StoreBackend`]: the store behind one object-safe trait, so that
//! [`crate::Session`] and the CLI work the same on the embedded filesystem
//! [`Store`] and on the shared PostgreSQL store ([`crate::store_pg::PgStore`]).
//!
//! A store is named by a *location* ([`StoreLocation`]): a directory path
//! (the filesystem store, the default) or a `postgres://` /
//! `postgresql://` URL. [`open_store`] opens either; `--store` and
//! `$CAPBOX_STORE` take both spellings. See docs/store.md.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capbox_shared::{Cap, CapHash};

use super::heads::HeadsListing;
use super::{
    BlobInfo, HeadChange, HistoryEntry, PruneReport, SaveReport, Store, StoreError, StoreOptions,
    StoreStats, VerifyReport,
};

/// Where a graph walk gets caps the store lacks (the kernel's copy):
/// `None` means "not mine: it should already be stored".
pub type CapSource<'a> = &'a mut dyn FnMut(&CapHash) -> Option<Cap>;

/// A store shared between a session, the kernel's blob fallback and the
/// CLI: cheap to clone.
pub type SharedStore = Arc<dyn StoreBackend>;

/// What a capbox store offers, whatever keeps it. Every method has the
/// semantics of the [`Store`] method of the same name (its docs are the
/// contract); backends differ only in how they keep the guarantees (see
/// docs/store.md).
pub trait StoreBackend: fmt::Debug + Send + Sync {
    /// Where the store is, for messages: a path, or a URL without its
    /// password.
    fn location(&self) -> String;

    /// Stores `cap`; returns its hash ([`Store::put`]).
    fn put(&self, cap: &Cap) -> Result<CapHash, StoreError>;
    /// Decodes, hashes and stores an encoding ([`Store::put_encoded`]).
    fn put_encoded(&self, bytes: &[u8]) -> Result<CapHash, StoreError>;
    /// Stores an encoding only if it hashes to `hash`
    /// ([`Store::put_encoded_with_hash`]).
    fn put_encoded_with_hash(&self, hash: &CapHash, bytes: &[u8]) -> Result<(), StoreError>;
    /// The verified encoding of `hash`, if stored ([`Store::get_encoded`]).
    fn get_encoded(&self, hash: &CapHash) -> Result<Option<Vec<u8>>, StoreError>;
    /// The verified cap `hash`, if stored ([`Store::get`]).
    fn get(&self, hash: &CapHash) -> Result<Option<Cap>, StoreError>;
    /// Whether `hash` is stored, unverified ([`Store::contains`]).
    fn contains(&self, hash: &CapHash) -> Result<bool, StoreError>;
    /// Every blob, sorted by hash ([`Store::list`]).
    fn list(&self) -> Result<Vec<BlobInfo>, StoreError>;
    /// Blob count, bytes and head count ([`Store::stats`]).
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Head `name`'s hash and move number, if it exists
    /// ([`Store::head_state`]).
    fn head_state(&self, name: &str) -> Result<Option<(CapHash, u64)>, StoreError>;
    /// Every readable head and an error per corrupt one
    /// ([`Store::heads_and_corrupt`]).
    fn heads_and_corrupt(&self) -> Result<HeadsListing, StoreError>;
    /// Head `name`'s history, oldest first ([`Store::history`]).
    fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, StoreError>;
    /// Points a head at a complete graph, action `"set"`
    /// ([`Store::set_head`]).
    fn set_head(&self, name: &str, hash: &CapHash) -> Result<(), StoreError>;
    /// Compare-and-swap head move ([`Store::set_head_if`]); the move number.
    fn set_head_if(
        &self,
        name: &str,
        expected: Option<&CapHash>,
        new: &CapHash,
        change: &HeadChange,
    ) -> Result<u64, StoreError>;
    /// Stores `root`'s graph from `source` and moves the head by
    /// compare-and-swap, safe against a concurrent prune or gc
    /// ([`Store::save_graph_if`]).
    fn save_graph_if(
        &self,
        name: &str,
        expected: Option<Option<&CapHash>>,
        root: &CapHash,
        source: CapSource<'_>,
        changes: &[HeadChange],
    ) -> Result<(SaveReport, u64), StoreError>;
    /// Stores every cap `source` has of `root`'s graph; moves no head
    /// ([`Store::put_graph`]).
    fn put_graph(&self, root: &CapHash, source: CapSource<'_>) -> Result<SaveReport, StoreError>;
    /// Removes a head and its history ([`Store::remove_head`]).
    fn remove_head(&self, name: &str) -> Result<Option<CapHash>, StoreError>;

    /// Evicts unpinned blobs down to the limits ([`Store::prune`]).
    fn prune(&self, max_entries: u64, max_bytes: u64) -> Result<PruneReport, StoreError>;
    /// Removes every unpinned blob ([`Store::gc`]).
    fn gc(&self) -> Result<PruneReport, StoreError>;
    /// Re-hashes every blob, checks every head's graph and history
    /// ([`Store::verify`]).
    fn verify(&self) -> Result<VerifyReport, StoreError>;

    /// Whether this store keeps Data caps as Merkle-tree parts (pages and
    /// nodes shared between versions; docs/store.md "Data pages"), so
    /// [`StoreBackend::put_data_paged`] moves only what it lacks.
    fn keeps_data_paged(&self) -> bool {
        false
    }

    /// Stores Data `hash` from `source`, fetching only the tree parts this
    /// store lacks; `None` if `hash` is not a Data or this store keeps Data
    /// whole (the caller then stores it by the whole-cap path).
    fn put_data_paged(
        &self,
        _hash: &CapHash,
        _source: &mut dyn crate::DataNodeSource,
    ) -> Result<Option<crate::PagedPut>, StoreError> {
        Ok(None)
    }

    /// The hash head `name` points at, if it exists.
    fn head(&self, name: &str) -> Result<Option<CapHash>, StoreError> {
        Ok(self.head_state(name)?.map(|(hash, _)| hash))
    }

    /// [`StoreBackend::save_graph_if`] with any expected head and the
    /// action `"save"` ([`Store::save_graph`]).
    fn save_graph(
        &self,
        name: &str,
        root: &CapHash,
        source: CapSource<'_>,
    ) -> Result<SaveReport, StoreError> {
        self.save_graph_if(name, None, root, source, &[HeadChange::action("save")])
            .map(|(report, _)| report)
    }
}

impl StoreBackend for Store {
    fn location(&self) -> String {
        self.path().display().to_string()
    }
    fn put(&self, cap: &Cap) -> Result<CapHash, StoreError> {
        Store::put(self, cap)
    }
    fn put_encoded(&self, bytes: &[u8]) -> Result<CapHash, StoreError> {
        Store::put_encoded(self, bytes)
    }
    fn put_encoded_with_hash(&self, hash: &CapHash, bytes: &[u8]) -> Result<(), StoreError> {
        Store::put_encoded_with_hash(self, hash, bytes)
    }
    fn get_encoded(&self, hash: &CapHash) -> Result<Option<Vec<u8>>, StoreError> {
        Store::get_encoded(self, hash)
    }
    fn get(&self, hash: &CapHash) -> Result<Option<Cap>, StoreError> {
        Store::get(self, hash)
    }
    fn contains(&self, hash: &CapHash) -> Result<bool, StoreError> {
        Store::contains(self, hash)
    }
    fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        Store::list(self)
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        Store::stats(self)
    }
    fn head_state(&self, name: &str) -> Result<Option<(CapHash, u64)>, StoreError> {
        Store::head_state(self, name)
    }
    fn heads_and_corrupt(&self) -> Result<HeadsListing, StoreError> {
        Store::heads_and_corrupt(self)
    }
    fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        Store::history(self, name)
    }
    fn set_head(&self, name: &str, hash: &CapHash) -> Result<(), StoreError> {
        Store::set_head(self, name, hash)
    }
    fn set_head_if(
        &self,
        name: &str,
        expected: Option<&CapHash>,
        new: &CapHash,
        change: &HeadChange,
    ) -> Result<u64, StoreError> {
        Store::set_head_if(self, name, expected, new, change)
    }
    fn save_graph_if(
        &self,
        name: &str,
        expected: Option<Option<&CapHash>>,
        root: &CapHash,
        source: CapSource<'_>,
        changes: &[HeadChange],
    ) -> Result<(SaveReport, u64), StoreError> {
        Store::save_graph_if(self, name, expected, root, source, changes)
    }
    fn put_graph(&self, root: &CapHash, source: CapSource<'_>) -> Result<SaveReport, StoreError> {
        Store::put_graph(self, root, source)
    }
    fn remove_head(&self, name: &str) -> Result<Option<CapHash>, StoreError> {
        Store::remove_head(self, name)
    }
    fn prune(&self, max_entries: u64, max_bytes: u64) -> Result<PruneReport, StoreError> {
        Store::prune(self, max_entries, max_bytes)
    }
    fn gc(&self) -> Result<PruneReport, StoreError> {
        Store::gc(self)
    }
    fn verify(&self) -> Result<VerifyReport, StoreError> {
        Store::verify(self)
    }

    fn keeps_data_paged(&self) -> bool {
        true
    }

    fn put_data_paged(
        &self,
        hash: &CapHash,
        source: &mut dyn crate::DataNodeSource,
    ) -> Result<Option<crate::PagedPut>, StoreError> {
        Store::put_data_paged(self, hash, source)
    }
}

impl From<Store> for SharedStore {
    fn from(store: Store) -> SharedStore {
        Arc::new(store)
    }
}

impl From<crate::store_pg::PgStore> for SharedStore {
    fn from(store: crate::store_pg::PgStore) -> SharedStore {
        Arc::new(store)
    }
}

/// Where a store is: a directory or a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The filesystem store in this directory.
    Dir(PathBuf),
    /// The PostgreSQL store at this `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a password.
        write!(f, "StoreLocation({self})")
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Dir(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&crate::store_pg::redact_url(url)),
        }
    }
}

impl StoreLocation {
    /// A `postgres://`/`postgresql://` URL is PostgreSQL (scheme matched
    /// case-insensitively); anything else is a directory.
    pub fn parse(text: impl AsRef<Path>) -> StoreLocation {
        let path = text.as_ref();
        if let Some(text) = path.to_str() {
            let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
            if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
                return StoreLocation::Postgres(text.to_owned());
            }
        }
        StoreLocation::Dir(path.to_path_buf())
    }

    /// `given` (e.g. `--store`), else `$CAPBOX_STORE`, else
    /// `./.capbox/store` ([`Store::default_path`]).
    pub fn from_arg_or_env(given: Option<&Path>) -> StoreLocation {
        match given {
            Some(path) => StoreLocation::parse(path),
            None => StoreLocation::parse(Store::default_path()),
        }
    }
}

/// Opens the store at `location`, creating it (a directory, or the schema
/// in an empty database) or migrating it if needed. `options.lock_timeout`
/// bounds every lock wait in either backend.
pub fn open_store(
    location: &StoreLocation,
    options: StoreOptions,
) -> Result<SharedStore, StoreError> {
    Ok(match location {
        StoreLocation::Dir(path) => Arc::new(Store::open_with(path, options)?),
        StoreLocation::Postgres(url) => Arc::new(crate::store_pg::PgStore::open(url, options)?),
    })
}

/// Opens the existing store at `location` for reading: creates, migrates
/// and writes nothing ([`StoreError::NoStore`] when there is none).
pub fn open_store_existing(
    location: &StoreLocation,
    options: StoreOptions,
) -> Result<SharedStore, StoreError> {
    Ok(match location {
        StoreLocation::Dir(path) => Arc::new(Store::open_existing(path, options)?),
        StoreLocation::Postgres(url) => {
            Arc::new(crate::store_pg::PgStore::open_existing(url, options)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_postgres_and_paths_the_filesystem() {
        let pg = StoreLocation::parse("postgres://u:secret@db:5432/capbox");
        assert!(matches!(pg, StoreLocation::Postgres(_)));
        assert!(matches!(
            StoreLocation::parse("PostgreSQL://db/capbox"),
            StoreLocation::Postgres(_)
        ));
        assert_eq!(
            StoreLocation::parse("/tmp/store"),
            StoreLocation::Dir(PathBuf::from("/tmp/store"))
        );
        assert_eq!(
            StoreLocation::parse("postgres"),
            StoreLocation::Dir(PathBuf::from("postgres"))
        );
        let shown = format!("{pg} {pg:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
