//! Backups that are proven: a file tree and/or a SQLite file copied into a folder with a
//! manifest (path, kind, size, mode, mtime, SHA-256 of every file; link targets), fsynced,
//! test-restored into a scratch folder and compared with the manifest before they count.
//!
//! - [`backup`] copies a store directory file by file (hashing as it reads, with a fixed
//!   buffer) and a SQLite file with `VACUUM INTO` (a consistent snapshot while other
//!   connections write), checks the copy with `PRAGMA integrity_check`, fsyncs files and
//!   directories, test-restores, and writes `manifest.json` last, atomically. A folder without
//!   a manifest is an interrupted backup and is never used; a failed backup removes its own
//!   folder and nothing else.
//! - [`verify`] re-hashes a backup against its manifest: changed, missing and extra files by
//!   path, and a manifest whose digest no longer matches.
//! - [`restore`] puts every file back byte-identical (content, mode, mtime; symlinks as
//!   links) and then compares the target with the manifest. It never deletes a file ferry did
//!   not create: whatever is in the way is moved to a displaced folder and listed.
//! - [`compare`] proves a directory equals a tree manifest, or says how it differs.
//!
//! Symlinks are recorded as links and never followed (below the root); special files are
//! refused. Everything a phase ledger keeps is serde-serialisable ([`BackupEvidence`],
//! [`VerifyReport`], [`RestoreReport`], [`Differences`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ferry_rollback::{backup, compare, restore, verify, BackupSpec, RestoreTargets};
//!
//! let tmp = tempfile::tempdir()?;
//! let store = tmp.path().join("store");
//! std::fs::create_dir_all(store.join("Agent-1"))?;
//! std::fs::write(store.join("Agent-1/status.json"), br#"{"state":"idle"}"#)?;
//!
//! let b = backup(&BackupSpec::new(tmp.path().join("state/backups"), "phase1").store(&store)).await?;
//! assert!(b.manifest.test_restore.matched);
//! assert!(verify(&b)?.is_ok());
//!
//! std::fs::write(store.join("Agent-1/status.json"), b"edited")?;
//! std::fs::write(store.join("new.json"), b"{}")?;
//! let report = restore(&b, &RestoreTargets::default().store(&store), &tmp.path().join("state/displaced"))?;
//! assert_eq!(report.displaced.len(), 2); // the edited version and the new file, kept aside
//! assert!(compare(b.manifest.contents.store.as_ref().unwrap(), &store)?.is_empty());
//! # Ok(())
//! # }
//! ```

mod backup;
mod compare;
mod error;
mod manifest;
mod restore;
mod sqlite;
mod tree;
mod verify;

pub use backup::{backup, list_backups, Backup, BackupEvidence, BackupListing, BackupSpec};
pub use compare::{compare, Aspect, Changed, Differences};
pub use error::RollbackError;
pub use manifest::{
    Contents, Entry, Manifest, Mode, SqliteManifest, TestRestore, Totals, TreeManifest, FORMAT,
    MANIFEST_FILE,
};
pub use restore::{restore, DisplaceReason, Displaced, RestoreReport, RestoreTargets};
pub use verify::{verify, VerifyReport};
