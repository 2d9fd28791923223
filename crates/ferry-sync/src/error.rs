//! The errors of sync, each one sentence naming the file, table, trigger or key it concerns.
//!
//! Driver messages pass through [`ferry_core::redact::redact`] before they are stored here,
//! so no error ever carries a password.

use std::path::PathBuf;

/// Everything that can stop capture, apply or the follower. A value the plan cannot convert
/// is not an error: it is a reject, recorded with key, column, reason and bytes.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("while {context} in SQLite file {path}: {message}")]
    Sqlite {
        path: PathBuf,
        context: String,
        message: String,
    },
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
    #[error("table {table:?} cannot be followed: {reason}")]
    Refused { table: String, reason: String },
    #[error("capture trigger {trigger:?} on table {table:?} is gone or was changed, so changes to {table:?} are no longer captured; reinstall capture and run a full reconciliation")]
    TriggerMissing { table: String, trigger: String },
    #[error("table {table:?} changed since capture was installed: {change}; nothing of this pass was applied")]
    SchemaDrift { table: String, change: String },
    #[error("capture is not installed in SQLite file {path}")]
    NotInstalled { path: PathBuf },
    #[error("capture in SQLite file {path} was installed for other tables ({message}); uninstall it first")]
    InstalledDifferently { path: PathBuf, message: String },
    #[error("the transfer plan does not fit: {message}")]
    Plan { message: String },
    #[error("PostgreSQL role may not set session_replication_role in {url} ({message}); sync applies SQLite's state with PostgreSQL's triggers and foreign-key actions off, as logical replication does: run it as a superuser or GRANT SET ON PARAMETER session_replication_role TO the role")]
    Privilege { url: String, message: String },
    #[error("sync stopped at the cutover (change-log entry {seq}): what reaches SQLite after it is counted, never applied")]
    CutOver { seq: i64 },
    #[error("another ferry sync is following into schema {schema:?}")]
    Busy { schema: String },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch the file store {path}: {message}")]
    Watch { path: PathBuf, message: String },
    #[error("the pass hook failed: {message}")]
    Hook { message: String },
}

impl SyncError {
    /// Whether waiting and trying again may help (the server went away), as opposed to a
    /// problem a person must fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, SyncError::Unreachable { .. })
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// Redacts a driver message.
pub(crate) fn clean(message: impl std::fmt::Display) -> String {
    ferry_core::redact::redact(&message.to_string()).into_owned()
}
