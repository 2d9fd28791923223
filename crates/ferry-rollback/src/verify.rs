//! Verifying a backup folder: the manifest still seals its contents, and every file still
//! hashes to its manifest entry, with nothing missing and nothing extra.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use ferry_core::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::backup::Backup;
use crate::compare::group;
use crate::error::{io_at, RollbackError};
use crate::manifest::{Entry, Manifest, MANIFEST_FILE, SQLITE_DIR, STORE_DIR};
use crate::tree::{self, Step, BUF_SIZE};

/// The result of [`verify`]. Paths are relative to the backup folder (`store/a/b.json`,
/// `sqlite/app.sqlite`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub backup_id: String,
    /// `manifest.json` on disk loads, its digest matches its contents, and it equals the
    /// manifest the backup was opened with.
    pub manifest_ok: bool,
    /// Why the manifest is not ok, when it is not.
    pub manifest_problem: Option<String>,
    pub files_checked: u64,
    pub bytes_checked: u64,
    pub missing: Vec<String>,
    /// Files whose kind, size or SHA-256 no longer match.
    pub changed: Vec<String>,
    pub extra: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.manifest_ok
            && self.missing.is_empty()
            && self.changed.is_empty()
            && self.extra.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(p) = &self.manifest_problem {
            parts.push(format!("manifest: {p}"));
        }
        for (label, paths) in [
            ("missing", &self.missing),
            ("changed", &self.changed),
            ("extra", &self.extra),
        ] {
            parts.extend(group(label, paths.len(), paths.iter().cloned()));
        }
        if parts.is_empty() {
            write!(
                f,
                "{} files ({} bytes) match the manifest",
                self.files_checked, self.bytes_checked
            )
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// Re-reads `manifest.json` and re-hashes every file of the backup against it. Differences
/// are collected in the report; an error means the folder could not be read at all.
///
/// Blocking: call it from `tokio::task::spawn_blocking` in async code.
pub fn verify(backup: &Backup) -> Result<VerifyReport, RollbackError> {
    let dir = &backup.dir;
    let manifest = &backup.manifest;
    let manifest_problem = match Manifest::load(dir) {
        Ok(on_disk) if on_disk == *manifest => None,
        Ok(_) => {
            Some("manifest.json on disk differs from the one the backup was opened with".to_owned())
        }
        Err(RollbackError::Incomplete { .. }) => Some("manifest.json is missing".to_owned()),
        Err(RollbackError::BadManifest { reason, .. }) => Some(reason),
        Err(e) => return Err(e),
    };
    let mut report = VerifyReport {
        backup_id: manifest.id.clone(),
        manifest_ok: manifest_problem.is_none(),
        manifest_problem,
        files_checked: 0,
        bytes_checked: 0,
        missing: Vec::new(),
        changed: Vec::new(),
        extra: Vec::new(),
    };
    let contents = &manifest.contents;
    let progress = Progress::new(
        "verify",
        "files",
        Some(contents.totals.files + u64::from(contents.sqlite.is_some())),
    );
    let mut buf = vec![0u8; BUF_SIZE];
    // Every path that may exist in the folder, for finding extras.
    let mut expected: HashSet<String> = HashSet::new();
    expected.insert(MANIFEST_FILE.to_owned());

    if let Some(tree) = &contents.store {
        expected.insert(STORE_DIR.to_owned());
        for entry in &tree.entries {
            let rel = format!("{STORE_DIR}/{}", entry.path());
            match entry {
                Entry::File { size, sha256, .. } => {
                    check_file(dir, &rel, *size, sha256, &mut report, &mut buf)?;
                    progress.inc(1, *size);
                }
                Entry::Dir { .. } => match fs::symlink_metadata(tree::join_rel(dir, &rel)) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => report.changed.push(rel.clone()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        report.missing.push(rel.clone())
                    }
                    Err(e) => return Err(io_at("inspect", &tree::join_rel(dir, &rel))(e)),
                },
                // Links live in the manifest only: nothing is on disk for them.
                Entry::Symlink { .. } => continue,
            }
            expected.insert(rel);
        }
    }
    if let Some(sm) = &contents.sqlite {
        expected.insert(SQLITE_DIR.to_owned());
        check_file(dir, &sm.file, sm.size, &sm.sha256, &mut report, &mut buf)?;
        progress.inc(1, sm.size);
        expected.insert(sm.file.clone());
    }
    progress.finish();

    tree::walk(dir, &mut |v| {
        if v.utf8 && expected.contains(v.rel) {
            Ok(Step::Descend)
        } else {
            report.extra.push(v.rel.to_owned());
            Ok(Step::Skip)
        }
    })?;
    Ok(report)
}

fn check_file(
    dir: &Path,
    rel: &str,
    size: u64,
    sha256: &str,
    report: &mut VerifyReport,
    buf: &mut [u8],
) -> Result<(), RollbackError> {
    let abs = tree::join_rel(dir, rel);
    match fs::symlink_metadata(&abs) {
        Ok(m) if m.is_file() => {
            report.files_checked += 1;
            let (n_bytes, digest) = tree::hash_file(&abs, buf)?;
            report.bytes_checked += n_bytes;
            if n_bytes != size || digest != sha256 {
                report.changed.push(rel.to_owned());
            }
        }
        Ok(_) => report.changed.push(rel.to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => report.missing.push(rel.to_owned()),
        Err(e) => return Err(io_at("inspect", &abs)(e)),
    }
    Ok(())
}
