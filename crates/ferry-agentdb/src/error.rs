//! The errors of the data API: one sentence each, naming the agent, task, message, file or
//! table concerned, never SQL text; a database password never appears in one.

use std::path::PathBuf;

/// Everything an [`crate::AgentDb`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AgentDbError {
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    #[error("cannot open {target}: {message}")]
    Connect { target: String, message: String },
    #[error(
        "{target} has no table {table}; apply ferry's migrations first (cargo xtask migrate up)"
    )]
    MissingTable { target: String, table: String },
    /// A database error that was not transient, or still failed after every retry.
    #[error("{operation} {key}: {message}{}", if *attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() })]
    Database {
        operation: &'static str,
        key: String,
        message: String,
        attempts: u32,
        /// Busy, locked, serialization failure, deadlock or lost connection.
        transient: bool,
    },
    #[error("agent {0} is not registered")]
    AgentNotFound(String),
    #[error("agent {agent_id} is already registered (in {source_path})")]
    AgentExists {
        agent_id: String,
        source_path: String,
    },
    #[error("task {0} does not exist")]
    TaskNotFound(String),
    #[error("task {task_id} already exists (in {source_path})")]
    TaskExists {
        task_id: String,
        source_path: String,
    },
    #[error("message {0} does not exist")]
    MessageNotFound(String),
    #[error("message {message_id} is in the {folder} folder; only inbox and processing messages can be marked processed")]
    NotInInbox { message_id: String, folder: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the document of {table} {key} cannot be edited: {reason}")]
    Document {
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error("the document of {table} {key} belongs in the snapshot store ({reason}); open the database with a state_dir")]
    NeedsStateDir {
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error("snapshot {}: {source}", path.display())]
    Snapshot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{table} {key}: column {column} holds `{value}`, which is not {expected}")]
    BadValue {
        table: &'static str,
        key: String,
        column: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl AgentDbError {
    /// The error was a busy database, a lock conflict, a serialization failure, a deadlock
    /// or a lost connection that retries did not get past.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AgentDbError::Database {
                transient: true,
                ..
            }
        )
    }

    /// A stored document that does not parse.
    pub(crate) fn bad_doc(table: &'static str, key: &str, e: serde_json::Error) -> Self {
        AgentDbError::Document {
            table,
            key: key.to_owned(),
            reason: format!("it is not valid JSON ({e})"),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        AgentDbError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// The result of every call.
pub type Result<T, E = AgentDbError> = std::result::Result<T, E>;

/// Inside an operation: a database error (which may be retried) or an answer for the caller.
#[derive(Debug)]
pub(crate) enum Fail {
    Db(sqlx::Error),
    Api(AgentDbError),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<AgentDbError> for Fail {
    fn from(e: AgentDbError) -> Self {
        Fail::Api(e)
    }
}

pub(crate) type OpResult<T> = std::result::Result<T, Fail>;
