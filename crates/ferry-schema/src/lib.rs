//! Versioned SQL migrations for SQLite and PostgreSQL, with a checksummed ledger, locks,
//! dry runs, drift detection and a canonical schema dump.
//!
//! Migrations are `<version>_<name>.up.sql` / `.down.sql` files, loaded from a directory at
//! run time ([`MigrationSet::from_dir`]) or embedded at build time
//! ([`MigrationSet::from_embedded`]). Each runs in its own transaction unless its first line
//! is `-- ferry:no-transaction`; a non-transactional migration that fails leaves a dirty
//! ledger row that blocks every later run until [`Migrator::repair`]. Checksums are over
//! normalised text, so line endings never look like drift.
//!
//! [`Database::connect`] creates a missing SQLite file (for `up`); [`Database::connect_existing`]
//! never does (for everything that only reads). A file that is not SQLite, a missing folder, a
//! missing PostgreSQL database and a SQLite file locked past the busy timeout are each one
//! sentence naming it; waiting on a lock is said after a second, with the file.
//!
//! ```no_run
//! # async fn start() -> Result<(), ferry_schema::SchemaError> {
//! use ferry_schema::{Database, MigrationSet, migrate_to_head};
//! let set = MigrationSet::from_dir(std::path::Path::new("migrations/sqlite"))?;
//! let mut db = Database::connect("sqlite://app.db", None).await?;
//! let ran = migrate_to_head(&mut db, &set).await?; // fail fast at start-up
//! println!("applied {} migrations", ran.len());
//! # Ok(()) }
//! ```

pub mod checksum;
pub mod db;
pub mod dump;
pub mod error;
pub mod migrator;
pub mod snapshot;
pub mod source;
pub mod split;

pub use db::{quote_ident, Database, Dialect};
pub use dump::dump;
pub use error::SchemaError;
pub use migrator::{migrate_to_head, read_ledger, Direction, Migrator, State, Status};
pub use snapshot::{compare as compare_snapshot, SnapshotCheck, SnapshotSet};
pub use source::{Migration, MigrationSet};

/// Creates the next numbered pair of empty migration files for each dialect directory
/// under `root` (`root/sqlite`, `root/postgres`): the version is one more than the highest
/// in either. Returns the files created.
pub fn add(root: &std::path::Path, name: &str) -> Result<Vec<std::path::PathBuf>, SchemaError> {
    source::validate_name(name).map_err(|reason| SchemaError::BadFile {
        path: root.join(name),
        reason,
    })?;
    let mut head = 0;
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let dir = root.join(dialect.dir_name());
        if dir.is_dir() {
            head = head.max(MigrationSet::from_dir(&dir)?.head());
        }
    }
    let version = head + 1;
    let mut created = Vec::new();
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let dir = root.join(dialect.dir_name());
        std::fs::create_dir_all(&dir).map_err(|e| SchemaError::Io {
            op: "create",
            path: dir.clone(),
            error: e,
        })?;
        for (suffix, body) in [
            (
                "up",
                format!("-- {version:04}_{name}: what this migration does, and why.\n"),
            ),
            (
                "down",
                format!("-- Exactly undoes {version:04}_{name}.up.sql.\n"),
            ),
        ] {
            let path = dir.join(format!("{version:04}_{name}.{suffix}.sql"));
            std::fs::write(&path, body).map_err(|e| SchemaError::Io {
                op: "write",
                path: path.clone(),
                error: e,
            })?;
            created.push(path);
        }
    }
    Ok(created)
}
