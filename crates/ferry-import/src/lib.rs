//! Import a JSON/Markdown file store into SQLite through a declarative profile, so that every
//! file ends in exactly one state: **imported**, **quarantined** with a reason a person can
//! act on (error kind, line, column), **excluded** by the profile, or **unmapped** (no rule
//! matched it; reported, never silently skipped).
//!
//! - A [`Profile`] (TOML; [`Profile::builtin`] for the agent-store layout) maps files to tables
//!   with globs and captures, formats, JSON pointers, templates and vocabularies.
//! - Every record keeps its original document (`doc`, or `source_text` for Markdown and text;
//!   large ones in the content-addressed snapshot store `state_dir/snapshots/<sha256>`), so a
//!   field the profile does not map is never lost.
//! - The ledger `ferry_source_files` makes re-runs incremental and idempotent; [`gate`] checks
//!   it against a backup manifest and the tables.
//! - Files are parsed in parallel and written through one connection, in path order, in
//!   multi-row statements inside large transactions, with foreign keys on.
//! - A file's ledger path is exact and its own, whatever the bytes of its name ([`names`]);
//!   a JSON key written twice in one object is noted ([`NoteKind::DuplicateJsonKey`]).
//! - [`check_store`] finds a store that cannot be imported before anything is written.
//!
//! The database needs ferry's SQLite schema (`migrations/sqlite/`): the target tables and the
//! import ledger.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use ferry_import::{import_file, ImportOptions, Profile};
//!
//! let options = ImportOptions::new(".ferry");
//! let report = import_file(Path::new("store"), Path::new("ferry.sqlite3"), &Profile::builtin(), &options).await?;
//! print!("{}", report.summary_table());
//! for line in report.quarantine_lines() {
//!     eprintln!("quarantined {line}");
//! }
//! # Ok(()) }
//! ```

mod bulk;
mod error;
pub mod export;
mod front_matter;
mod fsops;
pub mod gate;
mod glob;
mod json;
mod ledger;
pub mod names;
mod options;
mod parse;
mod plan;
mod profile;
mod record;
mod report;
mod run;
mod scan;
mod schema;
mod template;
pub mod timestamp;
mod writer;

use std::path::{Path, PathBuf};

use sqlx::{Row, SqliteConnection};

pub use error::{ImportError, ProfileError};
pub use fsops::{read_snapshot, QUARANTINE_DIR, SNAPSHOT_DIR};
pub use options::ImportOptions;
pub use plan::{DOCUMENTS_TABLE, LEDGER_TABLE, RUNS_TABLE};
pub use profile::{Format, Profile, BUILTIN_NAME, BUILTIN_TOML};
pub use report::{
    DisappearedFile, FileStatus, ImportReport, KindCounts, LedgerEntry, LedgerSummary, Note,
    NoteKind, QuarantinedFile, Reason, ReasonKind, Totals, UpdatedFile, REPORT_FORMAT,
};

/// Imports `store_dir` into the database file behind `conn`.
///
/// The import writes through a connection of its own to the same file, on a blocking thread
/// (see `docs/architecture.md`); `conn` must not be inside a transaction, or the import waits
/// for it and then fails. An in-memory database cannot be imported into.
pub async fn import(
    store_dir: &Path,
    conn: &mut SqliteConnection,
    profile: &Profile,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let path = main_database_file(conn).await?;
    import_file(store_dir, &path, profile, options).await
}

/// Imports `store_dir` into the SQLite file at `sqlite_path`, which must exist and hold
/// ferry's schema.
pub async fn import_file(
    store_dir: &Path,
    sqlite_path: &Path,
    profile: &Profile,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let (store, path, profile, options) = (
        store_dir.to_owned(),
        sqlite_path.to_owned(),
        profile.clone(),
        options.clone(),
    );
    tokio::task::spawn_blocking(move || run::run(&store, &path, &profile, &options))
        .await
        .map_err(|e| ImportError::Worker(format!("the import thread failed: {e}")))?
}

/// Checks that `store_dir` is a directory the import can list, without reading anything
/// else: a command calls it before it creates an output file, so bad input leaves nothing
/// behind. A symlink loop or an unreadable folder is named as such, never as missing.
pub fn check_store(store_dir: &Path) -> Result<(), ImportError> {
    match std::fs::metadata(store_dir) {
        Ok(m) if m.is_dir() => {
            std::fs::read_dir(store_dir)
                .map(drop)
                .map_err(|error| ImportError::Store {
                    path: store_dir.to_owned(),
                    error,
                })
        }
        Ok(_) => Err(ImportError::StoreNotDirectory {
            path: store_dir.to_owned(),
        }),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(store_dir).is_err() =>
        {
            Err(ImportError::StoreMissing {
                path: store_dir.to_owned(),
            })
        }
        Err(error) => Err(ImportError::Store {
            path: store_dir.to_owned(),
            error,
        }),
    }
}

/// The file of the `main` database of a connection.
async fn main_database_file(conn: &mut SqliteConnection) -> Result<PathBuf, ImportError> {
    let rows = sqlx::query("PRAGMA database_list")
        .fetch_all(&mut *conn)
        .await
        .map_err(ImportError::sqlite("listing the connection's databases"))?;
    for r in rows {
        let name: String = r.get(1);
        let file: String = r.get(2);
        if name == "main" {
            if file.is_empty() {
                return Err(ImportError::Schema(
                    "the connection's database is in memory; the import needs a database file"
                        .into(),
                ));
            }
            return Ok(PathBuf::from(file));
        }
    }
    Err(ImportError::Schema(
        "the connection has no main database".into(),
    ))
}
