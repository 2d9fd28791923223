//! The backup manifest: what a backup holds, entry by entry, and the digest that seals it.
//!
//! `manifest.json` is written last, atomically, after the test restore matched; a backup
//! folder without one is incomplete. `manifest_sha256` is the SHA-256 of the compact JSON
//! of `contents`, so any edit of an entry (or of the totals) is detected on load.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::{io_at, RollbackError};

/// The manifest's file name inside a backup folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest format written by this version.
pub const FORMAT: &str = "ferry-backup/1";
/// Where the store's files are copied inside a backup folder.
pub(crate) const STORE_DIR: &str = "store";
/// Where the SQLite copy is written inside a backup folder.
pub(crate) const SQLITE_DIR: &str = "sqlite";

/// The whole `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// `<label>-<utc timestamp>`, also the backup folder's name.
    pub id: String,
    /// SHA-256 (hex) of the compact JSON of `contents`.
    pub manifest_sha256: String,
    pub contents: Contents,
    /// The result of restoring the backup into a scratch folder before it was declared done.
    pub test_restore: TestRestore,
}

/// What was backed up. Sealed by [`Manifest::manifest_sha256`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contents {
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub ferry_version: String,
    pub totals: Totals,
    pub store: Option<TreeManifest>,
    pub sqlite: Option<SqliteManifest>,
}

/// Counts over the store tree; `bytes` includes the SQLite copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// A directory tree: its root's metadata and every entry below it, parents before children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeManifest {
    /// The absolute path the tree was backed up from.
    pub source: String,
    pub root_mode: Mode,
    pub root_mtime: DateTime<Utc>,
    pub entries: Vec<Entry>,
}

/// One entry of a tree. Paths are relative, `/`-separated, without `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    File {
        path: String,
        size: u64,
        mode: Mode,
        mtime: DateTime<Utc>,
        sha256: String,
    },
    Dir {
        path: String,
        mode: Mode,
        mtime: DateTime<Utc>,
    },
    /// A link is recorded as its target text and never followed. Its own mtime is not
    /// recorded: the standard library cannot set a link's times without following it.
    Symlink {
        path: String,
        target: String,
        /// The target is absolute or climbs above the tree's root.
        #[serde(default, skip_serializing_if = "is_false")]
        outside_root: bool,
    },
}

/// The SQLite file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteManifest {
    /// The absolute path the database was copied from.
    pub source: String,
    /// The copy, relative to the backup folder (`sqlite/<file name>`).
    pub file: String,
    /// Size and SHA-256 of the copy (a consistent snapshot, not a byte copy of the source).
    pub size: u64,
    pub sha256: String,
    pub mode: Mode,
    /// The source was in WAL mode; the copy is set to WAL too so the restored file behaves
    /// the same for an application that relies on the persistent journal mode.
    pub wal: bool,
    /// The result of `PRAGMA integrity_check` on the copy: always `ok` in a finished backup.
    pub integrity_check: String,
}

/// The test restore's verdict, recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRestore {
    /// The restored scratch copy compared equal to the manifest. A manifest is only ever
    /// written with `true`; a mismatch fails the backup.
    pub matched: bool,
    pub at: DateTime<Utc>,
    pub files: u64,
    pub bytes: u64,
}

/// Permission bits (`0o7777` of `st_mode`), written as an octal string such as `"0644"`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(pub u32);

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Dir { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }

    /// `file`, `dir` or `symlink`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Entry::File { .. } => "file",
            Entry::Dir { .. } => "dir",
            Entry::Symlink { .. } => "symlink",
        }
    }
}

impl Manifest {
    /// Reads and checks `<dir>/manifest.json`: format, digest, paths and test-restore verdict.
    pub fn load(dir: &Path) -> Result<Manifest, RollbackError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RollbackError::Incomplete {
                    dir: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(io_at("read", &path)(e)),
        };
        let bad = |reason: String| RollbackError::BadManifest {
            path: path.clone(),
            reason,
        };
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        manifest.check().map_err(bad)?;
        Ok(manifest)
    }

    /// The problems that make a manifest unusable, as one sentence.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format is {:?}, expected {FORMAT:?}", self.format));
        }
        let digest = self.contents.digest();
        if digest != self.manifest_sha256 {
            return Err(format!(
                "its contents hash to {digest}, but it records {}; it was edited or damaged",
                self.manifest_sha256
            ));
        }
        if !self.test_restore.matched {
            return Err("its test restore did not match, so the backup never counted".to_owned());
        }
        if let Some(tree) = &self.contents.store {
            tree.check()?;
        }
        if let Some(sqlite) = &self.contents.sqlite {
            check_relative(&sqlite.file)?;
        }
        Ok(())
    }
}

impl Contents {
    /// SHA-256 (hex) of the compact JSON of these contents.
    pub fn digest(&self) -> String {
        // Serialising plain structs, strings and integers cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

impl TreeManifest {
    /// Entries by path.
    pub fn index(&self) -> HashMap<&str, &Entry> {
        self.entries.iter().map(|e| (e.path(), e)).collect()
    }

    /// Counts of files, dirs, symlinks and file bytes.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for e in &self.entries {
            match e {
                Entry::File { size, .. } => {
                    t.files += 1;
                    t.bytes += size;
                }
                Entry::Dir { .. } => t.dirs += 1,
                Entry::Symlink { .. } => t.symlinks += 1,
            }
        }
        t
    }

    /// Every path is relative and normal, appears once, and sits in a directory entry (or the
    /// root). Restore relies on this: it never writes below something that is not a
    /// directory it created or checked, so a crafted manifest cannot write outside the target.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut kinds: HashMap<&str, &'static str> = HashMap::with_capacity(self.entries.len());
        for e in &self.entries {
            let path = e.path();
            check_relative(path)?;
            if let Some((parent, _)) = path.rsplit_once('/') {
                match kinds.get(parent) {
                    Some(&"dir") => {}
                    Some(kind) => {
                        return Err(format!(
                            "entry {path:?} lies below a {kind}, not a directory"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "entry {path:?} comes before its directory {parent:?}"
                        ))
                    }
                }
            }
            if kinds.insert(path, e.kind_name()).is_some() {
                return Err(format!("entry {path:?} appears twice"));
            }
            if let Entry::File { sha256, .. } = e {
                if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("entry {path:?} has no valid sha256"));
                }
            }
        }
        Ok(())
    }
}

fn check_relative(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(format!("path {path:?} is not a plain relative path"))
    }
}

/// Whether a symlink target, read at `link_path` (relative to the root), leads outside it.
pub(crate) fn escapes_root(link_path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    // The link's own directory depth, then walk the target's components lexically.
    let mut depth = link_path.matches('/').count() as i64;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0 & 0o7777)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match u32::from_str_radix(&s, 8) {
            Ok(bits) if bits <= 0o7777 => Ok(Mode(bits)),
            _ => Err(serde::de::Error::custom(format!(
                "mode {s:?} is not an octal permission such as \"0644\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_round_trips_as_octal_text() {
        let json = serde_json::to_string(&Mode(0o4755)).unwrap();
        assert_eq!(json, "\"4755\"");
        assert_eq!(
            serde_json::from_str::<Mode>("\"0644\"").unwrap(),
            Mode(0o644)
        );
        assert!(serde_json::from_str::<Mode>("\"0999\"").is_err());
        assert!(serde_json::from_str::<Mode>("\"17777\"").is_err());
    }

    #[test]
    fn escapes_root_is_lexical() {
        assert!(escapes_root("a", "/etc/passwd"));
        assert!(escapes_root("a", "../x"));
        assert!(!escapes_root("d/a", "../x"));
        assert!(escapes_root("d/a", "../../x"));
        assert!(!escapes_root("d/a", "b/../c"));
        assert!(escapes_root("a", "b/../../c"));
    }

    fn tree(entries: Vec<Entry>) -> TreeManifest {
        TreeManifest {
            source: "/s".into(),
            root_mode: Mode(0o755),
            root_mtime: DateTime::UNIX_EPOCH,
            entries,
        }
    }

    fn dir(path: &str) -> Entry {
        Entry::Dir {
            path: path.into(),
            mode: Mode(0o755),
            mtime: DateTime::UNIX_EPOCH,
        }
    }

    fn link(path: &str) -> Entry {
        Entry::Symlink {
            path: path.into(),
            target: "/tmp".into(),
            outside_root: true,
        }
    }

    #[test]
    fn check_refuses_paths_that_could_escape_the_target() {
        assert!(tree(vec![dir("a"), dir("a/b")]).check().is_ok());
        assert!(tree(vec![dir("../a")]).check().is_err());
        assert!(tree(vec![dir("/a")]).check().is_err());
        assert!(tree(vec![dir("a/./b")]).check().is_err());
        assert!(tree(vec![dir("a"), dir("a")]).check().is_err());
        // An entry below a symlink would be written through the link.
        assert!(tree(vec![link("a"), dir("a/b")]).check().is_err());
        // An entry before its parent could be restored before its parent is checked.
        assert!(tree(vec![dir("a/b"), dir("a")]).check().is_err());
    }

    #[test]
    fn entry_json_shape() {
        let e = Entry::File {
            path: "a/b.json".into(),
            size: 3,
            mode: Mode(0o644),
            mtime: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
            sha256: "0".repeat(64),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"kind":"file","path":"a/b.json","size":3,"mode":"0644","mtime":"2023-11-14T22:13:20.123456789Z","sha256":"{}"}}"#,
                "0".repeat(64)
            )
        );
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
        let l = serde_json::to_string(&link("x")).unwrap();
        assert_eq!(
            l,
            r#"{"kind":"symlink","path":"x","target":"/tmp","outside_root":true}"#
        );
    }
}
