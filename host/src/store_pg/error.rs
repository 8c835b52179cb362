//! [`PgError`]: why the PostgreSQL store failed (a [`crate::StoreError::Postgres`]).

use std::error::Error as _;
use std::io;

use postgres::error::SqlState;

/// Why a [`super::PgStore`] operation failed. `target` is the server and
/// database as the URL names them, never with a password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The store URL does not parse.
    #[error("bad PostgreSQL store URL {url}: {reason}")]
    BadUrl {
        /// The URL, password removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Nothing listens at the address (is the server running?).
    #[error(
        "cannot connect to PostgreSQL at {target}: connection refused (is the server running and listening there?)"
    )]
    ConnectionRefused {
        /// The server.
        target: String,
        /// The underlying error.
        #[source]
        source: postgres::Error,
    },
    /// The server refused the user or password.
    #[error(
        "PostgreSQL at {target} refused the login (check the user and password in the URL, or the server's pg_hba.conf)"
    )]
    AuthFailed {
        /// The server.
        target: String,
        /// The underlying error.
        #[source]
        source: postgres::Error,
    },
    /// The database named in the URL does not exist.
    #[error("PostgreSQL at {target}: the database does not exist (create it with `createdb NAME`)")]
    NoDatabase {
        /// The server.
        target: String,
        /// The underlying error.
        #[source]
        source: postgres::Error,
    },
    /// Any other failure to connect (DNS, timeout, TLS required, …).
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect {
        /// The server.
        target: String,
        /// The underlying error.
        #[source]
        source: postgres::Error,
    },
    /// The database holds a capbox schema newer than this build knows.
    #[error(
        "the capbox schema in {target} is version {found}, this build knows up to {supported}: \
         a newer capbox wrote it; upgrade capbox"
    )]
    SchemaTooNew {
        /// The server.
        target: String,
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// A read-only open of a database without a capbox schema.
    #[error(
        "no capbox store in {target} (nothing to read; a command that writes, e.g. `capbox new`, creates one)"
    )]
    NoSchema {
        /// The server.
        target: String,
    },
    /// A read-only open of an older schema (migrated only by a writing open).
    #[error(
        "the capbox schema in {target} is version {found}; a command that writes (e.g. `capbox store gc`) migrates it to {expected}"
    )]
    NeedsMigration {
        /// The server.
        target: String,
        /// The version found.
        found: i32,
        /// The current version.
        expected: i32,
    },
    /// A statement failed.
    #[error("PostgreSQL store at {target}: cannot {action}")]
    Query {
        /// The server.
        target: String,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: postgres::Error,
    },
    /// A row holds something capbox never writes (edited by hand).
    #[error("PostgreSQL store at {target}: {what}")]
    BadRow {
        /// The server.
        target: String,
        /// What is wrong.
        what: String,
    },
    /// A store operation was called from inside one of its own callbacks in
    /// a way that would need the connection twice.
    #[error("PostgreSQL store at {target}: the connection is busy (re-entrant use)")]
    Busy {
        /// The server.
        target: String,
    },
}

/// Classifies a failure to connect.
pub(super) fn connect_error(target: &str, source: postgres::Error) -> PgError {
    let target = target.to_owned();
    if let Some(db) = source.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return PgError::AuthFailed { target, source };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return PgError::NoDatabase { target, source };
        }
    }
    let mut cause = source.source();
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::ConnectionRefused
        {
            return PgError::ConnectionRefused { target, source };
        }
        cause = error.source();
    }
    // "password missing" and the like are configuration errors of a
    // login that needs a password.
    if source.to_string().contains("password") {
        return PgError::AuthFailed { target, source };
    }
    PgError::Connect { target, source }
}
