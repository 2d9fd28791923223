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
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("the store directory {path} cannot be read: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the SQLite database is not ready for an import: {0}")]
    Schema(String),
    #[error("SQLite {context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    /// From the import's own connection (rusqlite, on a blocking thread).
    #[error("SQLite {context}: {source}")]
    Database {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the ledger row of {path} cannot be read: {message}")]
    Ledger { path: String, message: String },
    #[error("a parser thread failed: {0}")]
    Worker(String),
}

impl ImportError {
    pub(crate) fn sqlite(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> ImportError {
        let context = context.into();
        move |source| ImportError::Sqlite { context, source }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ImportError {
        let context = context.into();
        move |source| ImportError::Database { context, source }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ImportError {
        let path = path.into();
        move |source| ImportError::Io {
            context,
            path,
            source,
        }
    }
}
