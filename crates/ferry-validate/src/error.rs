//! Errors of validation. Differences are not errors: they are in the report. These are the
//! reasons a comparison could not be made at all.

use std::path::PathBuf;

use ferry_core::redact::redact;

/// Why a comparison could not be made.
///
/// `Display` is written out by hand: a SQLite error is part of the sentence, and it is
/// deliberately not returned by `source()` as well, so a printer that walks the chain
/// (`{:#}` in the command line) prints it once.
#[derive(Debug)]
pub enum ValidateError {
    NoSqliteFile {
        path: PathBuf,
    },
    NotSqlite {
        path: PathBuf,
        why: String,
    },
    OpenSqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    Sqlite {
        path: PathBuf,
        what: String,
        source: rusqlite::Error,
    },
    Connect {
        url: String,
        message: String,
    },
    Postgres {
        what: String,
        message: String,
    },
    NoSchema {
        schema: String,
    },
    Worker {
        what: String,
    },
    UnknownTable {
        table: String,
    },
}

impl std::fmt::Display for ValidateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSqliteFile { path } => {
                write!(f, "SQLite file {} does not exist", path.display())
            }
            Self::NotSqlite { path, why } => {
                write!(f, "{} is not a SQLite database: {why}", path.display())
            }
            Self::OpenSqlite { path, source } => {
                write!(f, "cannot open SQLite file {}: {source}", path.display())
            }
            Self::Sqlite { path, what, source } => write!(
                f,
                "while {what} in SQLite file {}: {source}",
                path.display()
            ),
            Self::Connect { url, message } => {
                write!(f, "cannot connect to PostgreSQL at {url}: {message}")
            }
            Self::Postgres { what, message } => {
                write!(f, "while {what} in PostgreSQL: {message}")
            }
            Self::NoSchema { schema } => write!(f, "PostgreSQL schema `{schema}` does not exist"),
            Self::Worker { what } => {
                write!(f, "while {what}: the SQLite reader stopped unexpectedly")
            }
            Self::UnknownTable { table } => write!(
                f,
                "table `{table}` asked for with --table is not in the SQLite file"
            ),
        }
    }
}

impl std::error::Error for ValidateError {}

impl ValidateError {
    /// A PostgreSQL error with the password of any URL or echoed secret masked.
    pub(crate) fn pg(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        ValidateError::Postgres {
            what: redact(&what.into()).into_owned(),
            message: redact(&err.to_string()).into_owned(),
        }
    }
}
