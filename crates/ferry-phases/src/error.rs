//! Errors of the phase runner.

use std::path::PathBuf;

use crate::phase::Phase;

#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    #[error("{phase} is not built yet in this version of ferry")]
    NotBuilt { phase: Phase },

    #[error("{phase} cannot run: the gate of {previous} {why}; fix that, or override with --force --reason \"…\"")]
    GateNotPassed {
        phase: Phase,
        previous: Phase,
        why: String,
    },

    #[error("{phase} cannot run again while {later} has passed on top of it; roll back with `rollback --to {to}` first, or override with --force --reason \"…\"")]
    LaterPhasePassed { phase: Phase, later: Phase, to: u8 },

    #[error("{phase} passed at {when}, but its evidence no longer holds ({why}); run it again with --rerun, or roll back with `rollback --to {to}`")]
    NoLongerHolds {
        phase: Phase,
        when: String,
        why: String,
        to: u8,
    },

    #[error(transparent)]
    Locked(#[from] crate::lock::LockError),

    #[error("--force needs --reason \"…\": the reason is recorded in the phase ledger")]
    ForceWithoutReason,

    #[error("rollback target {0} is not a phase: use 0 to 4")]
    BadRollbackTarget(u8),

    #[error("phase ledger {}: {message}", path.display())]
    Ledger { path: PathBuf, message: String },

    #[error("{context}: {message}")]
    Failed { context: String, message: String },
}

impl PhaseError {
    /// Wraps any error with what was being done, password masked.
    pub fn failed(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::Failed {
            context: context.into(),
            message: ferry_core::redact::redact(&err.to_string()).into_owned(),
        }
    }
}
