//! Shared test fixtures: a store with every kind of entry, an independent tree snapshot (so
//! the tests never trust the crate's own comparison), tmpfs mounts and privilege checks.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the fixtures"
)]

use std::collections::BTreeMap;
use std::fs::{self, File, FileTimes};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// One entry of a snapshot: everything restore promises to bring back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File {
        bytes: Vec<u8>,
        mode: u32,
        mtime: (i64, i64),
    },
    Dir {
        mode: u32,
        mtime: (i64, i64),
    },
    Link {
        target: PathBuf,
    },
}

/// Every entry under `root` (and the root itself as "."), never following links.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let meta = fs::metadata(root).unwrap();
    out.insert(
        ".".to_owned(),
        Node::Dir {
            mode: meta.mode() & 0o7777,
            mtime: (meta.mtime(), meta.mtime_nsec()),
        },
    );
    walk(root, "", &mut out);
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Node>) {
    for item in fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        let name = item.file_name().into_string().unwrap();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = item.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mtime = (meta.mtime(), meta.mtime_nsec());
        let mode = meta.mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Link {
                target: fs::read_link(&path).unwrap(),
            }
        } else if meta.is_dir() {
            walk(&path, &rel, out);
            Node::Dir { mode, mtime }
        } else {
            Node::File {
                bytes: fs::read(&path).unwrap(),
                mode,
                mtime,
            }
        };
        out.insert(rel, node);
    }
}

pub fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t))
        .unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift), so large files differ in every block.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A store with every kind of entry restore must bring back: nested directories, an empty
/// file, a file larger than the copy buffer, unusual modes and old mtimes with nanoseconds,
/// an empty directory, links inside the tree and a dangling one, a non-ASCII name, and a
/// `*.sqlite` file that is not a valid database (it must be copied as plain bytes).
pub fn build_store(root: &Path) {
    write(
        &root.join("agents.json"),
        br#"{"agents":["Agent-1","Agent-2"]}"#,
    );
    write(
        &root.join("Agent-1/status.json"),
        br#"{"state":"idle","task":null}"#,
    );
    write(
        &root.join("Agent-1/inbox/msg-001.json"),
        br#"{"from":"Agent-2","body":"hi"}"#,
    );
    write(
        &root.join("Agent-1/inbox/msg-002.json"),
        "{\"body\":\"caf\u{e9} \u{1f680}\"}".as_bytes(),
    );
    write(&root.join("Agent-1/run.sh"), b"#!/bin/sh\necho run\n");
    chmod(&root.join("Agent-1/run.sh"), 0o755);
    write(
        &root.join("Agent-2/secret.json"),
        br#"{"token":"not really"}"#,
    );
    chmod(&root.join("Agent-2/secret.json"), 0o600);
    write(&root.join("Agent-2/readonly.json"), b"{}");
    chmod(&root.join("Agent-2/readonly.json"), 0o444);
    write(&root.join("big.bin"), &noise(3 * 1024 * 1024 + 17, 7));
    write(&root.join("empty.json"), b"");
    let mut fake_db = b"SQLite format 3\0".to_vec();
    fake_db.extend(noise(5000, 11));
    write(&root.join("data/cache.sqlite"), &fake_db);
    write(&root.join("data/cache.sqlite-wal"), &noise(100, 12));
    write(
        &root.join("notes/\u{fc}mlaut \u{2713}.md"),
        "# Notiz\n".as_bytes(),
    );
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    chmod(&root.join("empty-dir"), 0o700);
    fs::create_dir_all(root.join("links")).unwrap();
    std::os::unix::fs::symlink("../Agent-1/status.json", root.join("links/to-status")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("links/dangling")).unwrap();
    set_mtime(&root.join("agents.json"), 1_614_834_367, 123_456_789);
    set_mtime(&root.join("Agent-1/status.json"), 1_000_000_000, 1);
    // Directory times last: creating entries above changed them.
    set_mtime(&root.join("Agent-1/inbox"), 1_500_000_000, 42);
    set_mtime(&root.join("empty-dir"), 1_400_000_000, 0);
}

/// Copies a tree (files, dirs, links) keeping modes and mtimes.
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for item in fs::read_dir(src).unwrap() {
        let item = item.unwrap();
        let (from, to) = (item.path(), dst.join(item.file_name()));
        let meta = fs::symlink_metadata(&from).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else if meta.is_dir() {
            copy_tree(&from, &to);
            chmod(&to, meta.mode() & 0o7777);
            set_mtime(&to, meta.mtime() as u64, meta.mtime_nsec() as u32);
        } else {
            fs::copy(&from, &to).unwrap();
            set_mtime(&to, meta.mtime() as u64, meta.mtime_nsec() as u32);
        }
    }
}

/// Names of the entries directly in `dir` (empty when it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(items) => items
            .map(|i| i.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Whether this process runs as root, for whom permission bits do not apply.
pub fn is_root() -> bool {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid() == 0
}

/// A tmpfs mounted for one test, unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (e.g. `size=64k`) at `path`; `Err` says why not (a
    /// mount needs root).
    pub fn mount(path: &Path, options: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs {
                path: path.to_path_buf(),
            })
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
