//! Shared vocabulary of ferry: configuration, secret redaction, typed SQLite values, the
//! transfer plan, reports, tables and progress.
//!
//! Every other ferry crate depends on this one and on nothing else of ferry's, so a phase
//! crate never needs to import another. Architecture invariant: `ferry-core` opens no
//! database connection; its only I/O is reading a config file, writing report files and
//! reading the first bytes of a file to tell whether it is SQLite ([`sqlite_file`]).
//!
//! ```
//! use ferry_core::redact::redact;
//! assert_eq!(
//!     redact("postgres://ferry:hunter2@db.example:5432/app"),
//!     "postgres://ferry:***@db.example:5432/app"
//! );
//! ```

pub mod config;
pub mod env_vars;
pub mod exit;
pub mod fsutil;
pub mod logging;
pub mod pg;
pub mod pgcopy;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod sql;
pub mod sqlite_file;
pub mod sqlite_text;
pub mod table;
pub mod timestamp;
pub mod value;

/// The version of ferry recorded in ledgers and reports.
pub const FERRY_VERSION: &str = env!("CARGO_PKG_VERSION");
