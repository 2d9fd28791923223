//! Errors of ferry-rollback. Each is one sentence that names the path it is about.

use std::io;
use std::path::{Path, PathBuf};

use crate::compare::Differences;
use crate::verify::VerifyReport;

/// Everything that can stop a backup, a verification or a restore.
///
/// A lower-level error named `error` is part of the sentence and deliberately not a
/// `source`, so a printer that walks the chain prints it once; the full and read-only disk
/// variants keep theirs as a `source` and say what happened in their own words.
///
/// [`RollbackError::is_bad_input`] tells a command line which errors are the user's input
/// (exit 2) rather than a fault of ferry or of the machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    #[error("store directory {} does not exist", path.display())]
    StoreMissing { path: PathBuf },

    #[error("store path {} is not a directory", path.display())]
    StoreNotDirectory { path: PathBuf },

    /// The store directory, or a directory or file inside it, cannot be read.
    #[error("{what} {} cannot be read: {error}", path.display())]
    StoreUnreadable {
        /// `store directory`, `directory in the store` or `file in the store`.
        what: &'static str,
        path: PathBuf,
        error: io::Error,
    },

    /// An empty store is refused unless [`crate::BackupSpec::allow_empty_store`] is set:
    /// backing up nothing usually means the configured path is wrong.
    #[error("store directory {} contains no files, so there is nothing to back up", path.display())]
    StoreEmpty { path: PathBuf },

    #[error("{} is a {kind}, which ferry cannot back up (only regular files, directories and symlinks){}", path.display(), and_more(*more))]
    SpecialFile {
        path: PathBuf,
        kind: &'static str,
        /// How many more special files the store holds besides this one.
        more: usize,
    },

    #[error("the name of {} is not valid UTF-8, which the backup manifest cannot record", path.display())]
    NonUtf8Name { path: PathBuf },

    #[error("{} changed while it was being backed up ({reason}); stop whatever writes to the store and back up again", path.display())]
    ChangedDuringBackup { path: PathBuf, reason: String },

    #[error("SQLite file {} does not exist", path.display())]
    SqliteMissing { path: PathBuf },

    #[error("{} is not a SQLite database: {reason}", path.display())]
    NotSqlite { path: PathBuf, reason: String },

    #[error("SQLite database {} is corrupt: {detail}", path.display())]
    SqliteCorrupt { path: PathBuf, detail: String },

    #[error("SQLite database {} could not be {action}: {error}", path.display())]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        error: sqlx::Error,
    },

    #[error("backups root {} is not writable: {error}", path.display())]
    BackupsRootNotWritable { path: PathBuf, error: io::Error },

    #[error("no space left on the device while writing {}", path.display())]
    DiskFull { path: PathBuf, source: io::Error },

    #[error("{} is on a read-only file system", path.display())]
    ReadOnly { path: PathBuf, source: io::Error },

    #[error("invalid backup label {label:?}: use letters, digits, '.', '_' and '-'")]
    InvalidLabel { label: String },

    #[error("nothing to back up: neither a store directory nor a SQLite file was given")]
    NothingToBackUp,

    #[error("nothing to restore: neither a store directory nor a SQLite file was given as target")]
    NothingToRestore,

    #[error("backup {id} holds no {what} to restore")]
    NotInBackup { id: String, what: &'static str },

    #[error("backup folder {} is incomplete (it has no manifest.json) and is never used", dir.display())]
    Incomplete { dir: PathBuf },

    #[error("backup manifest {} is not valid: {reason}", path.display())]
    BadManifest { path: PathBuf, reason: String },

    #[error("test restore of backup {id} did not match its manifest: {differences}")]
    TestRestoreMismatch {
        id: String,
        differences: Differences,
    },

    #[error("backup {id} failed verification, so nothing was restored: {report}")]
    BackupCorrupt {
        id: String,
        report: Box<VerifyReport>,
    },

    #[error("backups root {} lies inside the store {}; choose a folder outside it", backups_root.display(), store.display())]
    BackupsInsideStore {
        backups_root: PathBuf,
        store: PathBuf,
    },

    #[error("displaced folder {} lies inside the restore target {}; choose a folder outside it", displaced.display(), target.display())]
    DisplacedInsideTarget { displaced: PathBuf, target: PathBuf },

    #[error("backup file {} does not match its manifest entry (size or SHA-256 differ)", path.display())]
    BackupFileDamaged { path: PathBuf },

    #[error("SQLite target {} exists but is not a regular file", path.display())]
    SqliteTargetNotFile { path: PathBuf },

    #[error("restore target {} is not a directory", path.display())]
    TargetNotDirectory { path: PathBuf },

    #[error("after restoring, {} still differs from the manifest: {differences}", target.display())]
    RestoreMismatch {
        target: PathBuf,
        differences: Differences,
    },

    #[error("the work was cancelled because the async runtime shut down")]
    Cancelled,

    #[error("cannot {op} {}: {error}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        error: io::Error,
    },
}

impl RollbackError {
    /// Whether the error is about the user's input or machine (missing, empty or unreadable
    /// store, special files, a file that is not SQLite or is corrupt, a read-only or full
    /// disk), which a command line reports with exit code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::StoreMissing { .. }
                | Self::StoreNotDirectory { .. }
                | Self::StoreUnreadable { .. }
                | Self::StoreEmpty { .. }
                | Self::SpecialFile { .. }
                | Self::NonUtf8Name { .. }
                | Self::ChangedDuringBackup { .. }
                | Self::SqliteMissing { .. }
                | Self::NotSqlite { .. }
                | Self::SqliteCorrupt { .. }
                | Self::BackupsRootNotWritable { .. }
                | Self::DiskFull { .. }
                | Self::ReadOnly { .. }
                | Self::InvalidLabel { .. }
                | Self::NothingToBackUp
                | Self::NothingToRestore
                | Self::TargetNotDirectory { .. }
                | Self::BackupsInsideStore { .. }
                | Self::DisplacedInsideTarget { .. }
                | Self::SqliteTargetNotFile { .. }
        )
    }
}

fn and_more(more: usize) -> String {
    match more {
        0 => String::new(),
        1 => "; 1 more special file is in the store".to_owned(),
        n => format!("; {n} more special files are in the store"),
    }
}

/// Wraps an I/O error with the operation and path, lifting a full or read-only disk into
/// their own variants so that callers can tell them apart.
pub(crate) fn io_error(op: &'static str, path: &Path, source: io::Error) -> RollbackError {
    let path = path.to_path_buf();
    match source.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            RollbackError::DiskFull { path, source }
        }
        io::ErrorKind::ReadOnlyFilesystem => RollbackError::ReadOnly { path, source },
        _ => RollbackError::Io {
            op,
            path,
            error: source,
        },
    }
}

/// `map_err` shorthand: `.map_err(io_at("read", path))`.
pub(crate) fn io_at<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> RollbackError + 'a {
    move |source| io_error(op, path, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its causes as a chain printer shows them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            out.push_str(&format!(": {c}"));
            cause = c.source();
        }
        out
    }

    #[test]
    fn a_cause_is_printed_once() {
        let denied = || io::Error::new(io::ErrorKind::PermissionDenied, "Permission denied");
        for err in [
            io_error("read", Path::new("store/a.json"), denied()),
            RollbackError::StoreUnreadable {
                what: "store directory",
                path: "store".into(),
                error: denied(),
            },
            RollbackError::BackupsRootNotWritable {
                path: "backups".into(),
                error: denied(),
            },
        ] {
            let text = chain(&err);
            assert_eq!(text.matches("Permission denied").count(), 1, "{text}");
        }
    }
}
