//! [`PgStore`]: the capbox store in PostgreSQL, shared by many hosts (see
//! docs/store.md for the schema, the guarantees and a deployment).
//!
//! The same contract as the filesystem [`crate::Store`] (it implements
//! [`StoreBackend`] with the semantics of `Store`'s methods); how each
//! guarantee is kept here:
//!
//! * **Blobs** are rows keyed by hash; a put decodes and hashes first, a
//!   get re-hashes what it reads ([`StoreError::CorruptBlob`]). A row is
//!   written in one statement: there are no partial blobs.
//! * **Head moves** are one transaction: the head row is locked
//!   (`SELECT … FOR UPDATE`) and compared with what the caller expects
//!   (else [`StoreError::HeadMoved`]), the graph is stored and checked,
//!   the history rows are inserted and the head row updated; then
//!   `COMMIT`. So the head and its history never disagree, and a writer
//!   that dies mid-way changes nothing (the server rolls it back).
//! * **gc/prune pinning**: every head-moving transaction first takes the
//!   advisory lock `GC_LOCK` *shared* (transaction-scoped); prune and gc
//!   take it *exclusive* in their own transaction (READ COMMITTED, so
//!   their statements see every move committed before they got it). A
//!   blob a writer is about to point a head at therefore cannot be deleted
//!   between its check and its commit, as with the filesystem store's
//!   lock; and a save stores again, from its source, whatever a gc removed
//!   before it started, with no retry loop.
//!
//! One connection per handle, behind a re-entrant lock: a save holds it
//! for its whole transaction, and a callback that calls back into the
//! store from the same thread (the session's "is it stored?") runs inside
//! that transaction.

mod error;
mod heads;
mod maint;
mod pages;
mod schema;
mod walk;

pub use error::PgError;
pub use schema::SCHEMA_VERSION;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use capbox_shared::{Cap, CapHash, CapKind};
use parking_lot::{ReentrantMutex, ReentrantMutexGuard};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

use crate::store::{
    BlobInfo, CapSource, HeadChange, HeadsListing, HistoryEntry, PruneReport, SaveReport,
    StoreBackend, StoreError, StoreOptions, StoreStats, VerifyReport,
};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The advisory lock that keeps gc/prune and head moves apart (shared:
/// head moves; exclusive: gc and prune).
const GC_LOCK: i64 = 0x6361_7062_6f78_0001;

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Whether a [`Txn`] is open on it.
    in_txn: bool,
}

impl Conn {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }
}

/// The capbox store in a PostgreSQL database (see the module docs).
pub struct PgStore {
    conn: ReentrantMutex<RefCell<Conn>>,
    /// The URL without its password.
    target: String,
    options: StoreOptions,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// `url` with any password replaced by `***` (in the authority and in a
/// `password=` parameter).
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    if let Some(query_start) = out.find('?') {
        let (base, query) = out.split_at(query_start + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| {
                if pair.to_ascii_lowercase().starts_with("password=") {
                    "password=***".to_owned()
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`,
    /// or `postgresql://`; no TLS: use a trusted network or a local
    /// socket) and creates or migrates the schema.
    pub fn open(url: &str, options: StoreOptions) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url, options)?;
        store.with_client(schema::migrate)?;
        Ok(store)
    }

    /// Connects for reading: creates and migrates nothing
    /// ([`PgError::NoSchema`] on a database without a capbox store).
    pub fn open_existing(url: &str, options: StoreOptions) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url, options)?;
        store.with_client(schema::check)?;
        Ok(store)
    }

    fn connect(url: &str, options: StoreOptions) -> Result<PgStore, StoreError> {
        let target = redact_url(url);
        let mut config = postgres::Config::from_str(url).map_err(|e| PgError::BadUrl {
            url: target.clone(),
            reason: e.to_string(),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("capbox");
        }
        let mut client = config
            .connect(NoTls)
            .map_err(|e| error::connect_error(&target, e))?;
        // Every lock wait (advisory locks, head rows) honours --lock-timeout.
        let timeout_ms = options
            .lock_timeout
            .map_or(0, |t| t.as_millis().clamp(1, i32::MAX as u128));
        client
            .batch_execute(&format!("SET lock_timeout = {timeout_ms}"))
            .map_err(|source| PgError::Query {
                target: target.clone(),
                action: "set the lock timeout",
                source,
            })?;
        Ok(PgStore {
            conn: ReentrantMutex::new(RefCell::new(Conn {
                client,
                statements: HashMap::new(),
                in_txn: false,
            })),
            target,
            options,
        })
    }

    /// The options this handle waits for locks with.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, PgError>,
    ) -> Result<T, StoreError> {
        let guard = self.conn.lock();
        let mut conn = guard.try_borrow_mut().map_err(|_| PgError::Busy {
            target: self.target.clone(),
        })?;
        Ok(f(&mut conn.client, &self.target)?)
    }

    /// Runs `f` on the connection (re-entrant from the same thread as long
    /// as `f` does not call back into the store).
    fn run<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let guard = self.conn.lock();
        let mut conn = guard.try_borrow_mut().map_err(|_| PgError::Busy {
            target: self.target.clone(),
        })?;
        f(&mut conn).map_err(|e| self.query_error(action, e))
    }

    fn query_error(&self, action: &'static str, source: postgres::Error) -> StoreError {
        if source.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return StoreError::LockTimeout {
                path: PathBuf::from(&self.target),
                waited: self.options.lock_timeout.unwrap_or_default(),
                holder: None,
            };
        }
        PgError::Query {
            target: self.target.clone(),
            action,
            source,
        }
        .into()
    }

    fn bad_row(&self, what: String) -> StoreError {
        PgError::BadRow {
            target: self.target.clone(),
            what,
        }
        .into()
    }

    /// Starts a transaction held until [`Txn::commit`] (or rolled back on
    /// drop), locking as `mode` says.
    fn begin(&self, mode: TxnMode) -> Result<Txn<'_>, StoreError> {
        let guard = self.conn.lock();
        let sql = match mode {
            TxnMode::HeadMove => format!("BEGIN; SELECT pg_advisory_xact_lock_shared({GC_LOCK})"),
            TxnMode::Gc => format!("BEGIN; SELECT pg_advisory_xact_lock({GC_LOCK})"),
            TxnMode::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_owned(),
        };
        // Created first, so a failed BEGIN (e.g. a lock timeout) is rolled back.
        let txn = Txn {
            store: self,
            _guard: guard,
            open: true,
        };
        self.run("begin a transaction", |c| {
            c.client.batch_execute(&sql)?;
            c.in_txn = true;
            Ok(())
        })?;
        Ok(txn)
    }

    /// Stores blobs (verified encodings), sorted by hash so that
    /// concurrent writers lock rows in one order. A row that exists is
    /// marked used, and rewritten if its bytes differ (a corrupt row is
    /// repaired by putting its cap again).
    fn insert_blobs(&self, blobs: &mut Vec<(CapHash, Vec<u8>)>) -> Result<(), StoreError> {
        if blobs.is_empty() {
            return Ok(());
        }
        blobs.sort_by_key(|(hash, _)| *hash);
        blobs.dedup_by_key(|(hash, _)| *hash);
        // Data caps are kept as tree parts (`pages`); the bytes were
        // verified by the caller.
        let mut rest = Vec::with_capacity(blobs.len());
        for (hash, bytes) in blobs.drain(..) {
            if bytes.first() == Some(&CapKind::Data.tag())
                && let Ok(Cap::Data(data)) = Cap::decode(&bytes)
            {
                self.store_data(&hash, &data)?;
            } else {
                rest.push((hash, bytes));
            }
        }
        *blobs = rest;
        if blobs.is_empty() {
            return Ok(());
        }
        let hashes: Vec<&[u8]> = blobs.iter().map(|(h, _)| h.as_bytes().as_slice()).collect();
        let kinds: Vec<i16> = blobs
            .iter()
            .map(|(_, b)| i16::from(b.first().copied().unwrap_or(u8::MAX)))
            .collect();
        let sizes: Vec<i64> = blobs.iter().map(|(_, b)| b.len() as i64).collect();
        let bytes: Vec<&[u8]> = blobs.iter().map(|(_, b)| b.as_slice()).collect();
        self.run("store blobs", |c| {
            c.execute(
                "INSERT INTO capbox_blobs (hash, kind, size, bytes)
                 SELECT * FROM unnest($1::bytea[], $2::int2[], $3::int8[], $4::bytea[])
                 ON CONFLICT (hash) DO UPDATE SET last_access = now(),
                   kind = EXCLUDED.kind, size = EXCLUDED.size,
                   bytes = CASE WHEN capbox_blobs.bytes = EXCLUDED.bytes
                                THEN capbox_blobs.bytes ELSE EXCLUDED.bytes END",
                &[&hashes, &kinds, &sizes, &bytes],
            )
        })?;
        Ok(())
    }

    /// Reads, decodes and re-hashes blob `hash`.
    fn read_verified(&self, hash: &CapHash) -> Result<Option<(Cap, Vec<u8>)>, StoreError> {
        let rows = self.run("read a blob", |c| {
            c.query(
                "SELECT bytes, layout FROM capbox_blobs WHERE hash = $1",
                &[&hash.as_bytes().as_slice()],
            )
        })?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let bytes: Vec<u8> = row
            .try_get(0)
            .map_err(|e| self.query_error("read a blob", e))?;
        let layout: i16 = row
            .try_get(1)
            .map_err(|e| self.query_error("read a blob", e))?;
        if layout == pages::LAYOUT_PARTS {
            let cap = Cap::Data(self.read_data(hash, &bytes)?);
            let encoded = cap.encode().map_err(|e| StoreError::CorruptBlob {
                hash: *hash,
                path: PathBuf::from(format!("{} (table capbox_blobs)", self.target)),
                reason: format!("does not encode: {e}"),
            })?;
            return Ok(Some((cap, encoded)));
        }
        let cap = self.verify_bytes(hash, &bytes)?;
        Ok(Some((cap, bytes)))
    }

    /// Decodes `bytes` and checks they hash to `hash`.
    fn verify_bytes(&self, hash: &CapHash, bytes: &[u8]) -> Result<Cap, StoreError> {
        let corrupt = |reason: String| StoreError::CorruptBlob {
            hash: *hash,
            path: PathBuf::from(format!("{} (table capbox_blobs)", self.target)),
            reason,
        };
        let cap = Cap::decode(bytes).map_err(|e| corrupt(format!("does not decode: {e}")))?;
        let actual = cap
            .hash()
            .map_err(|e| corrupt(format!("does not hash: {e}")))?;
        if actual != *hash {
            return Err(corrupt(format!("its bytes hash to {actual}")));
        }
        Ok(cap)
    }
}

/// What a transaction locks.
#[derive(Clone, Copy)]
enum TxnMode {
    /// Moves heads: [`GC_LOCK`] shared.
    HeadMove,
    /// Deletes blobs: [`GC_LOCK`] exclusive.
    Gc,
    /// Reads one consistent snapshot.
    Snapshot,
}

/// An open transaction on the store's connection; rolled back on drop
/// unless committed.
struct Txn<'a> {
    store: &'a PgStore,
    _guard: ReentrantMutexGuard<'a, RefCell<Conn>>,
    open: bool,
}

impl Txn<'_> {
    fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.store.run("commit", |c| {
            c.in_txn = false;
            c.client.batch_execute("COMMIT")
        })
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.open {
            // A failure here means the connection is gone: the server
            // rolls the transaction back itself.
            let _ = self.store.run("roll back", |c| {
                c.in_txn = false;
                c.client.batch_execute("ROLLBACK")
            });
        }
    }
}

/// The canonical encoding of `cap`, checked to be named `hash`.
fn encode_as(cap: &Cap, hash: &CapHash) -> Result<Vec<u8>, StoreError> {
    let unencodable = |source| StoreError::Unencodable {
        kind: cap.kind(),
        source,
    };
    let bytes = cap.encode().map_err(unencodable)?;
    let actual = cap.hash().map_err(unencodable)?;
    if actual != *hash {
        return Err(StoreError::HashMismatch {
            expected: *hash,
            actual,
        });
    }
    Ok(bytes)
}

fn hash_from(bytes: &[u8]) -> Option<CapHash> {
    Some(CapHash::from_bytes(bytes.try_into().ok()?))
}

fn kind_from(tag: i16) -> Option<CapKind> {
    u8::try_from(tag).ok().and_then(CapKind::from_tag)
}

impl StoreBackend for PgStore {
    fn location(&self) -> String {
        self.target.clone()
    }

    fn put(&self, cap: &Cap) -> Result<CapHash, StoreError> {
        let unencodable = |source| StoreError::Unencodable {
            kind: cap.kind(),
            source,
        };
        let bytes = cap.encode().map_err(unencodable)?;
        let hash = cap.hash().map_err(unencodable)?;
        self.insert_blobs(&mut vec![(hash, bytes)])?;
        Ok(hash)
    }

    fn put_encoded(&self, bytes: &[u8]) -> Result<CapHash, StoreError> {
        let invalid = |source| StoreError::InvalidEncoding {
            len: bytes.len(),
            expected: None,
            source,
        };
        let hash = Cap::decode(bytes)
            .map_err(invalid)?
            .hash()
            .map_err(invalid)?;
        self.insert_blobs(&mut vec![(hash, bytes.to_vec())])?;
        Ok(hash)
    }

    fn put_encoded_with_hash(&self, hash: &CapHash, bytes: &[u8]) -> Result<(), StoreError> {
        let invalid = |source| StoreError::InvalidEncoding {
            len: bytes.len(),
            expected: Some(*hash),
            source,
        };
        let actual = Cap::decode(bytes)
            .map_err(invalid)?
            .hash()
            .map_err(invalid)?;
        if actual != *hash {
            return Err(StoreError::HashMismatch {
                expected: *hash,
                actual,
            });
        }
        self.insert_blobs(&mut vec![(actual, bytes.to_vec())])
    }

    fn get_encoded(&self, hash: &CapHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_verified(hash)?.map(|(_, bytes)| bytes))
    }

    fn get(&self, hash: &CapHash) -> Result<Option<Cap>, StoreError> {
        Ok(self.read_verified(hash)?.map(|(cap, _)| cap))
    }

    fn contains(&self, hash: &CapHash) -> Result<bool, StoreError> {
        let rows = self.run("look a blob up", |c| {
            c.query(
                "SELECT 1 FROM capbox_blobs WHERE hash = $1",
                &[&hash.as_bytes().as_slice()],
            )
        })?;
        Ok(!rows.is_empty())
    }

    fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let rows = self.run("list blobs", |c| {
            c.query(
                "SELECT hash, kind, size, last_access FROM capbox_blobs ORDER BY hash",
                &[],
            )
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e| self.query_error("list blobs", e);
            let hash: Vec<u8> = row.try_get(0).map_err(get)?;
            let kind: i16 = row.try_get(1).map_err(get)?;
            let size: i64 = row.try_get(2).map_err(get)?;
            let last_access: SystemTime = row.try_get(3).map_err(get)?;
            let hash = hash_from(&hash)
                .ok_or_else(|| self.bad_row("a blob row's hash is not 32 bytes".to_owned()))?;
            out.push(BlobInfo {
                hash,
                kind: kind_from(kind),
                size: size.max(0) as u64,
                last_access,
            });
        }
        Ok(out)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let rows = self.run("count blobs and heads", |c| {
            c.query(
                "SELECT (SELECT count(*) FROM capbox_blobs),
                        (SELECT coalesce(sum(size), 0)::int8 FROM capbox_blobs),
                        (SELECT count(*) FROM capbox_heads),
                        (SELECT count(*) FROM capbox_data_parts),
                        (SELECT coalesce(sum(octet_length(bytes)), 0)::int8
                         FROM capbox_data_parts)",
                &[],
            )
        })?;
        let row = rows
            .first()
            .ok_or_else(|| self.bad_row("no statistics row".to_owned()))?;
        let get = |i| {
            row.try_get::<_, i64>(i)
                .map(|v| v.max(0) as u64)
                .map_err(|e| self.query_error("count blobs and heads", e))
        };
        Ok(StoreStats {
            entries: get(0)?,
            bytes: get(1)?,
            heads: get(2)?,
            data_parts: get(3)?,
            data_part_bytes: get(4)?,
        })
    }

    fn head_state(&self, name: &str) -> Result<Option<(CapHash, u64)>, StoreError> {
        self.head_state_impl(name)
    }
    fn heads_and_corrupt(&self) -> Result<HeadsListing, StoreError> {
        self.heads_impl()
    }
    fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.history_impl(name)
    }
    fn set_head(&self, name: &str, hash: &CapHash) -> Result<(), StoreError> {
        self.move_head(name, None, hash, None, &[HeadChange::action("set")])
            .map(|_| ())
    }
    fn set_head_if(
        &self,
        name: &str,
        expected: Option<&CapHash>,
        new: &CapHash,
        change: &HeadChange,
    ) -> Result<u64, StoreError> {
        self.move_head(
            name,
            Some(expected),
            new,
            None,
            std::slice::from_ref(change),
        )
        .map(|(_, seq)| seq)
    }
    fn save_graph_if(
        &self,
        name: &str,
        expected: Option<Option<&CapHash>>,
        root: &CapHash,
        source: CapSource<'_>,
        changes: &[HeadChange],
    ) -> Result<(SaveReport, u64), StoreError> {
        self.move_head(name, expected, root, Some(source), changes)
    }
    fn put_graph(&self, root: &CapHash, source: CapSource<'_>) -> Result<SaveReport, StoreError> {
        let mut blobs = walk::collect(root, source)?;
        let report = SaveReport {
            blobs: blobs.len() as u64,
            repaired: 0,
        };
        self.insert_blobs(&mut blobs)?;
        Ok(report)
    }
    fn remove_head(&self, name: &str) -> Result<Option<CapHash>, StoreError> {
        self.remove_head_impl(name)
    }
    fn prune(&self, max_entries: u64, max_bytes: u64) -> Result<PruneReport, StoreError> {
        self.prune_impl(max_entries, max_bytes)
    }
    fn gc(&self) -> Result<PruneReport, StoreError> {
        self.prune_impl(0, 0)
    }
    fn keeps_data_paged(&self) -> bool {
        true
    }

    fn put_data_paged(
        &self,
        hash: &CapHash,
        source: &mut dyn crate::DataNodeSource,
    ) -> Result<Option<crate::PagedPut>, StoreError> {
        PgStore::put_data_paged(self, hash, source)
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.verify_impl()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?password=secret&sslmode=disable"),
            "postgres://u@h/db?password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        let error = PgStore::open("postgres://u:pw@h:notaport/db", StoreOptions::default())
            .expect_err("a bad port must not parse");
        assert!(
            matches!(error, StoreError::Postgres(PgError::BadUrl { .. })),
            "{error:?}"
        );
        assert!(!format!("{error} {error:?}").contains("pw@"), "{error}");
    }
}
