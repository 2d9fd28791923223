//! ferry's own schema, embedded at build time: every `migrations/<dialect>/*.sql` file as
//! `(file name, contents)`, and the reviewed schema snapshots of
//! `migrations/<dialect>/snapshots/*.snap`.
//!
//! `ferry-schema` turns these into a migration set (`MigrationSet::from_embedded`); any
//! other program can use `ferry-schema` with its own directory instead.
//!
//! ```
//! assert!(ferry_migrations::SQLITE.iter().any(|(name, _)| name.ends_with(".up.sql")));
//! ```

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
