//! Reviewed schema snapshots: the canonical dump expected after each migration version,
//! kept as insta `.snap` files in `migrations/<dialect>/snapshots/<version>.snap` so a
//! migration change shows its SQL and its schema diff side by side in review.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Result, SchemaError};

/// Expected dumps by version.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSet {
    by_version: BTreeMap<i64, String>,
}

impl SnapshotSet {
    /// From `(file name, contents)` pairs such as `ferry_migrations::SQLITE_SNAPSHOTS`.
    pub fn from_embedded(files: &[(&str, &str)]) -> Self {
        let mut by_version = BTreeMap::new();
        for (name, text) in files {
            if let Some(version) = name
                .strip_suffix(".snap")
                .and_then(|v| v.parse::<i64>().ok())
            {
                by_version.insert(version, strip_header(text).to_owned());
            }
        }
        Self { by_version }
    }

    /// From `dir/<version>.snap` files; a missing directory is an empty set.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Self::default());
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".snap") {
                let text = std::fs::read_to_string(&path).map_err(|e| SchemaError::Io {
                    op: "read",
                    path,
                    error: e,
                })?;
                files.push((name, text));
            }
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Ok(Self::from_embedded(&refs))
    }

    /// The expected dump at `version` (version 0 is the empty schema).
    pub fn get(&self, version: i64) -> Option<&str> {
        if version == 0 {
            return Some("");
        }
        self.by_version.get(&version).map(String::as_str)
    }
}

/// The body of an insta snapshot file, without its `---`-delimited header.
fn strip_header(text: &str) -> &str {
    let text = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"));
    match text {
        Some(rest) => match rest.find("\n---\n") {
            Some(end) => &rest[end + 5..],
            None => rest,
        },
        None => "",
    }
}

/// The result of comparing a live dump with its snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotCheck {
    pub version: i64,
    pub has_snapshot: bool,
    pub equal: bool,
    /// Lines only in the database (`+`) or only in the snapshot (`-`), each naming the
    /// object it belongs to: `+table "agents": column "nickname" text`.
    pub diff: Vec<String>,
}

/// Compares `live` with the snapshot of `version`.
pub fn compare(snapshots: &SnapshotSet, version: i64, live: &str) -> SnapshotCheck {
    match snapshots.get(version) {
        None => SnapshotCheck {
            version,
            has_snapshot: false,
            equal: false,
            diff: vec![format!("no reviewed snapshot for version {version}")],
        },
        Some(expected) => {
            let diff = line_diff(&qualify(expected.trim_end()), &qualify(live.trim_end()));
            SnapshotCheck {
                version,
                has_snapshot: true,
                equal: diff.is_empty(),
                diff,
            }
        }
    }
}

/// A dump with every indented line prefixed by the object it belongs to (`table "a":
/// column "x" text`), so a drift line on its own still says which table it is about.
fn qualify(dump: &str) -> String {
    let mut object = "";
    let mut out = String::with_capacity(dump.len() * 2);
    for line in dump.lines() {
        let body = line.trim_start();
        if body.len() == line.len() {
            object = line;
            out.push_str(line);
        } else {
            out.push_str(object);
            out.push_str(": ");
            out.push_str(body);
        }
        out.push('\n');
    }
    out
}

/// A small LCS line diff: `-` lines of `old` missing from `new`, `+` lines added.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = if old.is_empty() {
        Vec::new()
    } else {
        old.lines().collect()
    };
    let b: Vec<&str> = if new.is_empty() {
        Vec::new()
    } else {
        new.lines().collect()
    };
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+{}", b[j]));
            j += 1;
        } else {
            out.push(format!("-{}", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_insta_headers() {
        let set = SnapshotSet::from_embedded(&[(
            "0001.snap",
            "---\nsource: x.rs\nexpression: dump\n---\ntable \"a\"\n",
        )]);
        assert_eq!(set.get(1), Some("table \"a\"\n"));
        assert_eq!(set.get(0), Some(""));
        assert_eq!(set.get(2), None);
    }

    #[test]
    fn drift_lines_name_their_table() {
        let set = SnapshotSet::from_embedded(&[(
            "0001.snap",
            "---\nsource: x.rs\n---\ntable \"a\"\n  column \"id\" integer\ntable \"b\"\n  column \"id\" integer\n",
        )]);
        let live = "table \"a\"\n  column \"id\" integer\ntable \"b\"\n  column \"id\" integer\n  column \"extra\" text\n";
        let check = compare(&set, 1, live);
        assert!(!check.equal);
        assert_eq!(check.diff, vec!["+table \"b\": column \"extra\" text"]);
    }

    #[test]
    fn diff_names_lines_on_each_side() {
        assert_eq!(line_diff("a\nb\nc", "a\nc\nd"), vec!["-b", "+d"]);
        assert!(line_diff("a\nb", "a\nb").is_empty());
    }
}
