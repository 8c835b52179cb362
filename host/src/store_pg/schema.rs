//! The PostgreSQL store's schema: a version row and ordered migrations,
//! applied under an advisory lock so concurrent first opens do not race.

use postgres::Client;
use postgres::error::SqlState;

use super::error::PgError;

/// The schema version this build writes; [`MIGRATIONS`]`[v - 1]` takes a
/// database from version `v - 1` to `v`.
pub const SCHEMA_VERSION: i32 = 2;

/// Advisory lock key held (transaction-scoped) while migrating.
const MIGRATE_LOCK: i64 = 0x6361_7062_6f78_0002;

/// Version 1: blobs, heads, history.
///
/// * `capbox_blobs.layout` 0 means `bytes` holds the blob's whole canonical
///   encoding; a later version can add a `capbox_pages` table (page hash →
///   bytes) and a layout in which a Data blob's row keeps only its page
///   list, without touching the other kinds.
/// * `capbox_heads.seq` is the head's move number: its last history record.
/// * `capbox_history` has one row per move, keyed by (head, seq);
///   `gas_used` holds the u64's bits in a bigint.
const V1: &str = "
CREATE TABLE capbox_blobs (
    hash        bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    kind        smallint NOT NULL,
    size        bigint NOT NULL CHECK (size >= 0),
    layout      smallint NOT NULL DEFAULT 0,
    bytes       bytea NOT NULL,
    last_access timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX capbox_blobs_by_access ON capbox_blobs (last_access, hash);
CREATE TABLE capbox_heads (
    name     text PRIMARY KEY,
    hash     bytea NOT NULL CHECK (octet_length(hash) = 32),
    seq      bigint NOT NULL CHECK (seq >= 0),
    moved_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE capbox_history (
    head     text NOT NULL,
    seq      bigint NOT NULL CHECK (seq >= 1),
    time_ms  bigint NOT NULL,
    prev     bytea CHECK (octet_length(prev) = 32),
    new      bytea NOT NULL CHECK (octet_length(new) = 32),
    action   text NOT NULL,
    endpoint bigint,
    gas_used bigint,
    outcome  text,
    PRIMARY KEY (head, seq)
);
";

/// Version 2: Data caps as Merkle-tree parts (docs/store.md "Data pages"):
/// pages and inner nodes by digest; a Data row with `layout` 1 holds the
/// 41-byte root record (`tag ‖ len ‖ root`). Version-1 Data rows (`layout`
/// 0, whole) stay as they are and readable; new Data rows use layout 1.
const V2: &str = "
CREATE TABLE capbox_data_parts (
    digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
    page   boolean NOT NULL,
    bytes  bytea NOT NULL
);
";

const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2];

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS capbox_schema (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version integer NOT NULL
)";

/// The schema version in the database; 0 when there is none.
pub(super) fn read_version(client: &mut Client, target: &str) -> Result<i32, PgError> {
    match client.query_opt("SELECT version FROM capbox_schema", &[]) {
        Ok(Some(row)) => row.try_get(0).map_err(|source| PgError::Query {
            target: target.to_owned(),
            action: "read the schema version",
            source,
        }),
        Ok(None) => Ok(0),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(source) => Err(PgError::Query {
            target: target.to_owned(),
            action: "read the schema version",
            source,
        }),
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] (creating it in an empty
/// database). Refuses a newer schema.
pub(super) fn migrate(client: &mut Client, target: &str) -> Result<(), PgError> {
    let found = read_version(client, target)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if found > SCHEMA_VERSION {
        return Err(too_new(target, found));
    }
    let query = |action| {
        move |source| PgError::Query {
            target: target.to_owned(),
            action,
            source,
        }
    };
    let mut tx = client.transaction().map_err(query("begin a migration"))?;
    tx.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .map_err(query("lock the schema for migration"))?;
    tx.batch_execute(VERSION_TABLE)
        .map_err(query("create the schema version table"))?;
    // Again, under the lock: another process may have migrated meanwhile.
    let found: i32 = tx
        .query_opt("SELECT version FROM capbox_schema", &[])
        .map_err(query("read the schema version"))?
        .map_or(Ok(0), |row| row.try_get(0))
        .map_err(query("read the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(too_new(target, found));
    }
    for sql in &MIGRATIONS[found.max(0) as usize..] {
        tx.batch_execute(sql).map_err(query("migrate the schema"))?;
    }
    tx.execute(
        "INSERT INTO capbox_schema (one, version) VALUES (true, $1)
         ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
        &[&SCHEMA_VERSION],
    )
    .map_err(query("record the schema version"))?;
    tx.commit().map_err(query("commit the migration"))
}

/// Checks the schema for a read-only open: exactly this build's version.
pub(super) fn check(client: &mut Client, target: &str) -> Result<(), PgError> {
    match read_version(client, target)? {
        0 => Err(PgError::NoSchema {
            target: target.to_owned(),
        }),
        SCHEMA_VERSION => Ok(()),
        found if found > SCHEMA_VERSION => Err(too_new(target, found)),
        found => Err(PgError::NeedsMigration {
            target: target.to_owned(),
            found,
            expected: SCHEMA_VERSION,
        }),
    }
}

fn too_new(target: &str, found: i32) -> PgError {
    PgError::SchemaTooNew {
        target: target.to_owned(),
        found,
        supported: SCHEMA_VERSION,
    }
}
