//! Errors of ferry-schema. Each names the file, version, line or database it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },

    // The I/O error is part of the sentence and deliberately not a `source`: a chain
    // printer would otherwise print it twice.
    #[error("cannot {op} {}: {error}", path.display())]
    Io {
        /// `read`, `list`, `create` or `write`.
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    /// The SQLite argument is missing (for a command that never creates one), not a file,
    /// or not SQLite.
    #[error(transparent)]
    SqliteFile(#[from] ferry_core::sqlite_file::SqliteFileError),

    #[error("cannot create SQLite file {}: the folder {} does not exist", path.display(), folder.display())]
    NoFolder { path: PathBuf, folder: PathBuf },

    #[error("SQLite file {target} stayed locked by another connection for {seconds} s; stop the program writing to it (the application, or another ferry run) and try again")]
    SqliteLocked { target: String, seconds: u64 },

    #[error("PostgreSQL at {target} has no database named \"{database}\"; create it (createdb {database}) or name an existing one")]
    NoDatabase { target: String, database: String },

    #[error("version {version} is defined twice: {first} and {second}")]
    DuplicateVersion {
        version: i64,
        first: String,
        second: String,
    },

    #[error("`{0}` is not a database URL (expected sqlite://PATH or postgres://user@host:port/database)")]
    BadUrl(String),

    #[error("cannot open {target}: {message}")]
    Connect { target: String, message: String },

    #[error("{file} line {line}: {message}")]
    Statement {
        file: String,
        line: usize,
        message: String,
    },

    #[error("migration {label} is dirty: a migration that runs outside a transaction failed part-way on {at}; fix the database by hand, then run `migrate repair {version}`")]
    Dirty {
        version: i64,
        label: String,
        at: String,
    },

    #[error("applied migration {file} (version {version}) has changed since it was applied: ledger checksum {recorded}, file checksum {current}; restore the file, or accept the edit with `migrate repair {version}`")]
    Drift {
        version: i64,
        file: String,
        recorded: String,
        current: String,
    },

    #[error("the database has migration {version} ({name}) applied, but {origin} has no file for it; use the build or directory that applied it")]
    Unknown {
        version: i64,
        name: String,
        origin: String,
    },

    #[error(
        "migration {label} has no down file, so the database cannot go below version {version}"
    )]
    NoDown { version: i64, label: String },

    #[error("no migration with version {0}")]
    NoSuchVersion(i64),

    #[error("version {version} is not applied, so there is nothing to repair")]
    NotApplied { version: i64 },

    #[error("another migration run holds the lock on {target}; gave up after {seconds} s (lock_timeout)")]
    LockTimeout { target: String, seconds: u64 },

    #[error(
        "the database is at version {current}, which is below {target}; use `up --to {target}`"
    )]
    BelowTarget { current: i64, target: i64 },

    #[error("{context}: {message}")]
    Database { context: String, message: String },
}

impl SchemaError {
    /// Wraps a driver error with what was being done, password masked.
    pub fn db(context: impl Into<String>, err: sqlx::Error) -> Self {
        Self::Database {
            context: context.into(),
            message: crate::db::driver_message(&err),
        }
    }
}

pub type Result<T, E = SchemaError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_cause_is_printed_once() {
        let err = SchemaError::Io {
            op: "read",
            path: "m/0001_a.up.sql".into(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read m/0001_a.up.sql: {}",
                std::io::Error::from(std::io::ErrorKind::NotFound)
            )
        );
    }
}
