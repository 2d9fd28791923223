//! Errors of the import. A broken *file* is never an error: it is quarantined and reported.
//! These are the failures that stop the run: a bad profile, a schema the profile does not fit,
//! the database or the state directory failing.

use std::path::PathBuf;

/// A profile that cannot be used, naming the key and the file.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("profile {origin}: key `{key}`: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// Why an import stopped.
///
/// A lower-level error is part of the sentence and deliberately not a `source`: printed as
/// a chain, it would otherwise appear twice.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("store directory {} does not exist", path.display())]
    StoreMissing { path: PathBuf },
    #[error("store path {} is not a directory", path.display())]
    StoreNotDirectory { path: PathBuf },
    #[error("store directory {} cannot be read: {error}", path.display())]
    Store {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the SQLite database is not ready for an import: {0}")]
    Schema(String),
    #[error(transparent)]
    SqliteFile(#[from] ferry_core::sqlite_file::SqliteFileError),
    #[error("SQLite {context}: {error}")]
    Sqlite { context: String, error: sqlx::Error },
    /// From the import's own connection (rusqlite, on a blocking thread).
    #[error("SQLite {context}: {error}")]
    Database {
        context: String,
        error: rusqlite::Error,
    },
    #[error("the SQLite file stayed locked by another connection for {seconds} s while {context}; stop the program writing to it (the application, or another ferry run) and import again")]
    Locked { context: String, seconds: u64 },
    #[error("{context} {path}: {error}")]
    Io {
        context: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the ledger row of {path} cannot be read: {message}")]
    Ledger { path: String, message: String },
    #[error("a parser thread failed: {0}")]
    Worker(String),
}

impl ImportError {
    pub(crate) fn sqlite(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> ImportError {
        let context = context.into();
        move |error| ImportError::Sqlite { context, error }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ImportError {
        let context = context.into();
        move |error| ImportError::database(context, error)
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ImportError {
        let path = path.into();
        move |error| ImportError::Io {
            context,
            path,
            error,
        }
    }

    /// An error of the import's own connection; SQLite's "database is locked" after the
    /// whole busy timeout becomes [`ImportError::Locked`].
    pub(crate) fn database(context: String, error: rusqlite::Error) -> ImportError {
        if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
            return ImportError::Locked {
                context,
                seconds: crate::run::BUSY_TIMEOUT.as_secs(),
            };
        }
        ImportError::Database { context, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its causes as a chain printer shows them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            out.push_str(&format!(": {c}"));
            cause = c.source();
        }
        out
    }

    /// Regression (issue 10, item 4): "No such file or directory (os error 2): No such file
    /// or directory (os error 2)".
    #[test]
    fn a_cause_is_printed_once() {
        let gone = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let errors = [
            ImportError::Store {
                path: "store".into(),
                error: gone(),
            },
            ImportError::io("copying to the quarantine", "store/a.json")(gone()),
            ImportError::db("opening x.sqlite3")(rusqlite::Error::InvalidQuery),
        ];
        for err in errors {
            let text = chain(&err);
            let cause = match &err {
                ImportError::Database { error, .. } => error.to_string(),
                _ => gone().to_string(),
            };
            assert_eq!(text.matches(&cause).count(), 1, "{text}");
        }
    }
}
