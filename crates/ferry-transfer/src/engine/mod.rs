//! The copy engine: chunks of rowid ranges, read from SQLite on one blocking thread per
//! table inside one read transaction, encoded as binary COPY, streamed by `workers`
//! PostgreSQL connections, each chunk committed with its checkpoint row.
//!
//! Architecture invariants:
//! - A chunk's rows, its rejects and its checkpoint commit in one PostgreSQL transaction,
//!   so after a crash a chunk is either wholly there (and skipped) or wholly absent (and
//!   copied again): no duplicate, no missing row.
//! - Chunks of one table partition the whole rowid space (`i64::MIN..=i64::MAX`) minus what
//!   was committed before, so no row can fall between chunks.
//! - Every read of one table happens in one SQLite read transaction (one snapshot), also
//!   when several connections copy chunks of it in parallel: the table's reader thread
//!   serves them all, in keyset batches.
//! - Memory is bounded: a worker holds at most two encoded batches (about 1 MiB each, or
//!   one row if a row is larger).
//!
//! The engine has three parts, so each can change alone: [`reader`] (SQLite to encoded
//! batches), [`scheduler`] (which chunk or step runs next, on which connection) and
//! [`chunk`] (one chunk into PostgreSQL with its checkpoint).

mod chunk;
mod reader;
mod scheduler;

pub use reader::TableSpec;
pub use scheduler::{CopyOutcome, CopyStage};
