//! Comparing a directory with a tree manifest: what is missing, changed or extra, by path.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use ferry_core::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::error::{io_at, RollbackError};
use crate::manifest::{Entry, TreeManifest};
use crate::tree::{self, Step, BUF_SIZE};

/// How a directory differs from a manifest. Empty means equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Differences {
    /// In the manifest, absent from the directory.
    pub missing: Vec<String>,
    /// Present in both, but different.
    pub changed: Vec<Changed>,
    /// In the directory, absent from the manifest (every path, including inside extra
    /// directories).
    pub extra: Vec<String>,
}

/// One changed path and what about it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub path: String,
    pub aspects: Vec<Aspect>,
}

/// What about a path differs from its manifest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aspect {
    /// A file became a directory, a link became a file, …
    Kind,
    Size,
    /// Same size, different SHA-256.
    Content,
    Mode,
    Mtime,
    /// A symlink points elsewhere.
    Target,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && self.extra.is_empty()
    }

    /// Total number of differing paths.
    pub fn len(&self) -> usize {
        self.missing.len() + self.changed.len() + self.extra.len()
    }
}

impl fmt::Display for Differences {
    /// A one-line summary naming up to three paths of each kind of difference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no differences");
        }
        let changed = self.changed.iter().map(|c| {
            let aspects: Vec<String> = c
                .aspects
                .iter()
                .map(|a| format!("{a:?}").to_lowercase())
                .collect();
            format!("{} ({})", c.path, aspects.join(", "))
        });
        let parts: Vec<String> = [
            group("missing", self.missing.len(), self.missing.iter().cloned()),
            group("changed", self.changed.len(), changed),
            group("extra", self.extra.len(), self.extra.iter().cloned()),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&parts.join("; "))
    }
}

/// `3 missing: a, b, c` or `7 extra: a, b, c and 4 more`; `None` when there are none.
pub(crate) fn group(
    label: &str,
    total: usize,
    paths: impl Iterator<Item = String>,
) -> Option<String> {
    const SHOWN: usize = 3;
    if total == 0 {
        return None;
    }
    let shown: Vec<String> = paths.take(SHOWN).collect();
    let more = total.saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Some(format!("{total} {label}: {}{tail}", shown.join(", ")))
}

/// Compares `dir` with `manifest`: every entry's kind, and for files size, SHA-256, mode and
/// mtime, for directories mode and mtime (the root's too), for symlinks the target. Files are
/// hashed as streams with a fixed buffer. Symlinks in `dir` are never followed.
///
/// Errors only when `dir` cannot be read at all; every difference is collected, not just the
/// first.
pub fn compare(manifest: &TreeManifest, dir: &Path) -> Result<Differences, RollbackError> {
    let total = manifest.totals();
    let progress = Progress::new("compare", "files", Some(total.files));
    let res = compare_with(manifest, dir, &progress);
    progress.finish();
    res
}

pub(crate) fn compare_with(
    manifest: &TreeManifest,
    dir: &Path,
    progress: &Progress,
) -> Result<Differences, RollbackError> {
    let mut diffs = Differences::default();
    let root_meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            diffs.missing.push(".".to_owned());
            diffs
                .missing
                .extend(manifest.entries.iter().map(|e| e.path().to_owned()));
            return Ok(diffs);
        }
        Err(e) => return Err(io_at("inspect", dir)(e)),
    };
    if !root_meta.is_dir() {
        return Err(RollbackError::TargetNotDirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut root_aspects = Vec::new();
    if tree::mode_of(&root_meta) != manifest.root_mode {
        root_aspects.push(Aspect::Mode);
    }
    if tree::mtime_of(&root_meta) != manifest.root_mtime {
        root_aspects.push(Aspect::Mtime);
    }
    if !root_aspects.is_empty() {
        diffs.changed.push(Changed {
            path: ".".to_owned(),
            aspects: root_aspects,
        });
    }

    let mut buf = vec![0u8; BUF_SIZE];
    // Entries whose parent is missing or not a directory are reported as missing without
    // looking: looking would follow whatever stands in the parent's place.
    let mut unreachable: HashSet<&str> = HashSet::new();
    for entry in &manifest.entries {
        let rel = entry.path();
        if let Some((parent, _)) = rel.rsplit_once('/') {
            if unreachable.contains(parent) {
                unreachable.insert(rel);
                diffs.missing.push(rel.to_owned());
                continue;
            }
        }
        let abs = tree::join_rel(dir, rel);
        let meta = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                unreachable.insert(rel);
                diffs.missing.push(rel.to_owned());
                continue;
            }
            Err(e) => return Err(io_at("inspect", &abs)(e)),
        };
        let aspects = entry_aspects(entry, &abs, &meta, &mut buf)?;
        if let Entry::File { size, .. } = entry {
            progress.inc(1, *size);
        }
        if aspects.contains(&Aspect::Kind) {
            unreachable.insert(rel);
        }
        if !aspects.is_empty() {
            diffs.changed.push(Changed {
                path: rel.to_owned(),
                aspects,
            });
        }
    }

    let index = manifest.index();
    tree::walk(dir, &mut |v| {
        // A known path is reported above (a kind change as changed); what lies inside a
        // directory that replaced a file is extra, which descending finds.
        if !(v.utf8 && index.contains_key(v.rel)) {
            diffs.extra.push(v.rel.to_owned());
        }
        Ok(Step::Descend)
    })?;
    Ok(diffs)
}

/// How the entry on disk at `abs` (with `lstat` metadata `meta`) differs from `entry`.
pub(crate) fn entry_aspects(
    entry: &Entry,
    abs: &Path,
    meta: &fs::Metadata,
    buf: &mut [u8],
) -> Result<Vec<Aspect>, RollbackError> {
    let mut aspects = Vec::new();
    match entry {
        Entry::File {
            size,
            mode,
            mtime,
            sha256,
            ..
        } => {
            if !meta.file_type().is_file() {
                return Ok(vec![Aspect::Kind]);
            }
            if meta.len() != *size {
                aspects.push(Aspect::Size);
            } else {
                let (_, digest) = tree::hash_file(abs, buf)?;
                if digest != *sha256 {
                    aspects.push(Aspect::Content);
                }
            }
            if tree::mode_of(meta) != *mode {
                aspects.push(Aspect::Mode);
            }
            if tree::mtime_of(meta) != *mtime {
                aspects.push(Aspect::Mtime);
            }
        }
        Entry::Dir { mode, mtime, .. } => {
            if !meta.file_type().is_dir() {
                return Ok(vec![Aspect::Kind]);
            }
            if tree::mode_of(meta) != *mode {
                aspects.push(Aspect::Mode);
            }
            if tree::mtime_of(meta) != *mtime {
                aspects.push(Aspect::Mtime);
            }
        }
        Entry::Symlink { target, .. } => {
            if !meta.file_type().is_symlink() {
                return Ok(vec![Aspect::Kind]);
            }
            let actual = fs::read_link(abs).map_err(io_at("read link", abs))?;
            if actual.as_os_str().as_encoded_bytes() != target.as_bytes() {
                aspects.push(Aspect::Target);
            }
        }
    }
    Ok(aspects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_paths_and_counts_the_rest() {
        let d = Differences {
            missing: vec!["a.json".into()],
            changed: vec![Changed {
                path: "b.json".into(),
                aspects: vec![Aspect::Size, Aspect::Mtime],
            }],
            extra: (1..=5).map(|i| format!("new-{i}.json")).collect(),
        };
        assert_eq!(
            d.to_string(),
            "1 missing: a.json; 1 changed: b.json (size, mtime); \
             5 extra: new-1.json, new-2.json, new-3.json and 2 more"
        );
        assert_eq!(Differences::default().to_string(), "no differences");
    }
}
