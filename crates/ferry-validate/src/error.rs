//! Errors of validation. Differences are not errors: they are in the report. These are the
//! reasons a comparison could not be made at all.

use std::path::PathBuf;

use ferry_core::redact::redact;

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("SQLite file {} does not exist", path.display())]
    NoSqliteFile { path: PathBuf },
    #[error("cannot open SQLite file {}: {source}", path.display())]
    OpenSqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("while {what} in SQLite file {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot connect to PostgreSQL at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("while {what} in PostgreSQL: {message}")]
    Postgres { what: String, message: String },
    #[error("PostgreSQL schema `{schema}` does not exist")]
    NoSchema { schema: String },
    #[error("while {what}: the SQLite reader stopped unexpectedly")]
    Worker { what: String },
    #[error("table `{table}` asked for with --table is not in the SQLite file")]
    UnknownTable { table: String },
}

impl ValidateError {
    /// A PostgreSQL error with the password of any URL or echoed secret masked.
    pub(crate) fn pg(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        ValidateError::Postgres {
            what: redact(&what.into()).into_owned(),
            message: redact(&err.to_string()).into_owned(),
        }
    }
}
