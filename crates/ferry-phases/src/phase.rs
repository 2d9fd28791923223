//! The five phases as a type.

use serde::{Deserialize, Serialize};

/// One of the five phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Phase {
    /// Backup and SQLite schema.
    Foundation = 1,
    /// File store into SQLite.
    Import = 2,
    /// SQLite into PostgreSQL.
    Load = 3,
    /// Record-time sync and cutover.
    Sync = 4,
    /// Verification and sign-off.
    SignOff = 5,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Foundation,
        Phase::Import,
        Phase::Load,
        Phase::Sync,
        Phase::SignOff,
    ];

    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Foundation => "foundation",
            Phase::Import => "import",
            Phase::Load => "postgres load",
            Phase::Sync => "sync and cutover",
            Phase::SignOff => "verification and sign-off",
        }
    }

    /// The phase before this one, if any.
    pub fn previous(self) -> Option<Phase> {
        Phase::try_from(self.number() - 1).ok()
    }

    /// Whether this build can run the phase.
    pub fn is_built(self) -> bool {
        crate::module::module(self).built()
    }
}

impl From<Phase> for u8 {
    fn from(p: Phase) -> u8 {
        p.number()
    }
}

impl TryFrom<u8> for Phase {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, Self::Error> {
        Ok(match n {
            1 => Phase::Foundation,
            2 => Phase::Import,
            3 => Phase::Load,
            4 => Phase::Sync,
            5 => Phase::SignOff,
            _ => return Err(format!("there is no phase {n}: phases are 1 to 5")),
        })
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "phase {} ({})", self.number(), self.name())
    }
}
