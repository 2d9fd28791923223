//! The sign-off's errors: one sentence each, naming the file, table or configuration key.

/// What stops the sign-off before any check could be made.
#[derive(Debug, thiserror::Error)]
pub enum SignoffError {
    /// The configuration names something that is not there.
    #[error("{0}")]
    Config(String),
    /// A check could not be made.
    #[error("{what}: {message}")]
    Failed { what: String, message: String },
    #[error("writing the sign-off report {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl SignoffError {
    pub(crate) fn failed(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        SignoffError::Failed {
            what: what.into(),
            message: ferry_core::redact::redact(&message.to_string()).into_owned(),
        }
    }
}
