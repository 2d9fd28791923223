//! The two places the import writes outside SQLite: the quarantine
//! (`state_dir/quarantine/<relative path>`, a copy of each quarantined file) and the
//! content-addressed snapshot store (`state_dir/snapshots/<sha256>`).

use std::fs;
use std::path::Path;

use crate::error::ImportError;
use crate::scan::EntryKind;

/// Where quarantined copies go, relative to the state directory.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Where large documents go, relative to the state directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Copies a quarantined entry; returns the copy's path relative to the state directory, or
/// `None` for what cannot be copied (a special file is never opened).
pub(crate) fn quarantine(
    state_dir: &Path,
    rel: &str,
    abs: &Path,
    kind: &EntryKind,
) -> Result<Option<String>, ImportError> {
    let rel_copy = format!("{QUARANTINE_DIR}/{rel}");
    let dest = state_dir.join(&rel_copy);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)
            .map_err(ImportError::io("creating the quarantine directory", parent))?;
    }
    // Replace an older copy (or a link) of the same path.
    if fs::symlink_metadata(&dest).is_ok() {
        fs::remove_file(&dest).map_err(ImportError::io("replacing the quarantined copy", &dest))?;
    }
    match kind {
        EntryKind::File | EntryKind::BadName => {
            fs::copy(abs, &dest).map_err(ImportError::io("copying to the quarantine", abs))?;
        }
        EntryKind::SymlinkOutside { target }
        | EntryKind::SymlinkBroken { target }
        | EntryKind::SymlinkInside { target } => {
            // The link itself, pointing where it pointed: the person sees what it was.
            #[cfg(unix)]
            std::os::unix::fs::symlink(target, &dest).map_err(ImportError::io(
                "recreating the link in the quarantine",
                &dest,
            ))?;
            #[cfg(not(unix))]
            fs::write(&dest, target).map_err(ImportError::io(
                "recording the link in the quarantine",
                &dest,
            ))?;
        }
        EntryKind::Special(_) => return Ok(None),
    }
    Ok(Some(rel_copy))
}

/// Removes the quarantined copy of a file that now imports cleanly.
pub(crate) fn unquarantine(state_dir: &Path, rel: &str) {
    let dest = state_dir.join(QUARANTINE_DIR).join(rel);
    // Best effort: a stale copy misleads nobody who reads the ledger, which is the record.
    let _ = fs::remove_file(dest);
}

/// Stores `bytes` under their SHA-256 unless already there; returns `snapshots/<sha256>`.
pub(crate) fn snapshot(
    state_dir: &Path,
    sha256: &str,
    bytes: &[u8],
) -> Result<String, ImportError> {
    let rel = format!("{SNAPSHOT_DIR}/{sha256}");
    let dest = state_dir.join(&rel);
    let present = fs::metadata(&dest).is_ok_and(|m| m.len() == bytes.len() as u64);
    if !present {
        ferry_core::fsutil::write_atomic(&dest, bytes)
            .map_err(ImportError::io("writing the snapshot", &dest))?;
    }
    Ok(rel)
}

/// Reads a document back from the snapshot store (`doc_snapshot` is relative to `state_dir`).
pub fn read_snapshot(state_dir: &Path, doc_snapshot: &str) -> std::io::Result<Vec<u8>> {
    fs::read(state_dir.join(doc_snapshot))
}
