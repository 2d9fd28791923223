//! The errors of a transfer, each naming the file, table, chunk or statement it concerns.
//!
//! Messages from the PostgreSQL driver pass through [`ferry_core::redact::redact`] before
//! they are stored here, so no error ever carries a password.

use std::path::PathBuf;

/// Everything that can stop a plan or a transfer. Rows that cannot be converted are not
/// errors: they are rejects in the report.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("while {context} in SQLite file {path}: {message}")]
    Source {
        path: PathBuf,
        context: String,
        message: String,
    },
    #[error("{} is not a SQLite database: {why}", path.display())]
    NotSqlite { path: PathBuf, why: String },
    #[error("while {context} in PostgreSQL {url}: {message}")]
    Postgres {
        url: String,
        context: String,
        message: String,
    },
    #[error("PostgreSQL {url} is unreachable: gave up after {attempts} attempts over {seconds:.1}s while {context}: {message}")]
    Unreachable {
        url: String,
        context: String,
        attempts: u32,
        seconds: f64,
        message: String,
    },
    #[error("the SQLite file {path} does not fit the managed schema {schema:?}: {}", problems.join("; "))]
    Mismatch {
        path: PathBuf,
        schema: String,
        problems: Vec<String>,
    },
    #[error("target schema {schema:?}: {message}")]
    Target { schema: String, message: String },
    #[error("the copy of table {table:?} is inconsistent: {message}")]
    Inconsistent { table: String, message: String },
}

/// Shorthand for results in this crate.
pub type Result<T, E = TransferError> = std::result::Result<T, E>;

/// Redacts a driver message.
pub(crate) fn clean(message: impl std::fmt::Display) -> String {
    ferry_core::redact::redact(&message.to_string()).into_owned()
}
