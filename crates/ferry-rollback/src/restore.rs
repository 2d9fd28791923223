//! Restoring a backup: verify it, move aside what is in the way, write what is missing,
//! set modes and times, then prove the target equals the manifest.
//!
//! Architecture invariant: restore never deletes a file ferry did not create. An entry that
//! is not in the manifest, or that differs from it, is moved to the displaced folder (renamed,
//! or copied and then removed across file systems) and listed in the report.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ferry_core::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::backup::Backup;
use crate::compare::{self, Aspect, Changed, Differences};
use crate::error::{io_at, RollbackError};
use crate::manifest::{
    Contents, Entry, Mode, SqliteManifest, TestRestore, TreeManifest, SQLITE_DIR, STORE_DIR,
};
use crate::sqlite;
use crate::tree::{self, Step, BUF_SIZE};
use crate::verify;

/// Where to restore to. Either part may be left out to restore only the other.
#[derive(Debug, Clone, Default)]
pub struct RestoreTargets {
    /// The store directory; created when missing.
    pub store_dir: Option<PathBuf>,
    /// The SQLite file; replaced atomically.
    pub sqlite_path: Option<PathBuf>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub backup_id: String,
    pub store_dir: Option<PathBuf>,
    pub sqlite_path: Option<PathBuf>,
    /// `<displaced_root>/<timestamp>`, when anything was moved aside.
    pub displaced_dir: Option<PathBuf>,
    /// Everything moved aside, with where it went.
    pub displaced: Vec<Displaced>,
    pub files_written: u64,
    /// Files already equal in content to the backup (their mode and mtime are still set).
    pub files_unchanged: u64,
    pub bytes_written: u64,
    pub sqlite_replaced: bool,
    /// The targets compared equal to the manifest afterwards. Always true in a returned
    /// report: a difference is an error.
    pub verified: bool,
}

/// One entry moved out of the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Displaced {
    /// The path relative to the store root, or the SQLite file's name (with its suffix for
    /// `-wal`, `-shm`, `-journal`).
    pub path: String,
    /// `file`, `dir`, `symlink`, `FIFO`, `socket`, …
    pub kind: String,
    pub reason: DisplaceReason,
    pub moved_to: PathBuf,
}

/// Why an entry was moved aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplaceReason {
    /// Not in the backup: it appeared after the backup was taken.
    Extra,
    /// In the backup, but different now (content, kind or link target); the backup's version
    /// took its place. For the SQLite file, the database that was replaced.
    Replaced,
    /// A `-wal`, `-shm` or `-journal` file of the replaced database, which would otherwise be
    /// applied to the restored one.
    StaleSidecar,
}

impl RestoreTargets {
    pub fn store(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.sqlite_path = Some(path.into());
        self
    }
}

/// Restores `backup` into `targets`, byte-identical (content, mode, mtime; symlinks as
/// links). Entries in the way go to `<displaced_root>/<timestamp>/store/<path>` and
/// `…/sqlite/<name>`. The backup is verified first, so a damaged backup changes nothing;
/// afterwards the targets are compared with the manifest and any difference is an error.
///
/// Blocking: call it from `tokio::task::spawn_blocking` in async code.
pub fn restore(
    backup: &Backup,
    targets: &RestoreTargets,
    displaced_root: &Path,
) -> Result<RestoreReport, RollbackError> {
    let contents = &backup.manifest.contents;
    if targets.store_dir.is_none() && targets.sqlite_path.is_none() {
        return Err(RollbackError::NothingToRestore);
    }
    let id = backup.id().to_owned();
    let tree = match (&targets.store_dir, &contents.store) {
        (Some(dir), Some(tree)) => Some((dir, tree)),
        (Some(_), None) => return Err(RollbackError::NotInBackup { id, what: "store" }),
        (None, _) => None,
    };
    let db = match (&targets.sqlite_path, &contents.sqlite) {
        (Some(path), Some(sm)) => Some((path, sm)),
        (Some(_), None) => {
            return Err(RollbackError::NotInBackup {
                id,
                what: "SQLite file",
            })
        }
        (None, _) => None,
    };
    if let Some((dir, _)) = tree {
        if tree::resolve(displaced_root).starts_with(tree::resolve(dir)) {
            return Err(RollbackError::DisplacedInsideTarget {
                displaced: displaced_root.to_path_buf(),
                target: dir.clone(),
            });
        }
    }

    let check = verify::verify(backup)?;
    if !check.is_ok() {
        return Err(RollbackError::BackupCorrupt {
            id,
            report: Box::new(check),
        });
    }

    let mut displacer = Displacer::new(displaced_root);
    let mut report = RestoreReport {
        backup_id: id,
        store_dir: targets.store_dir.clone(),
        sqlite_path: targets.sqlite_path.clone(),
        displaced_dir: None,
        displaced: Vec::new(),
        files_written: 0,
        files_unchanged: 0,
        bytes_written: 0,
        sqlite_replaced: false,
        verified: false,
    };
    let mut buf = vec![0u8; BUF_SIZE];
    if let Some((dir, tree)) = tree {
        let progress = Progress::new("restore", "files", Some(tree.totals().files));
        let stats = restore_tree(
            &backup.dir.join(STORE_DIR),
            tree,
            dir,
            Some(&mut displacer),
            true,
            &progress,
        );
        progress.finish();
        let stats = stats?;
        report.files_written = stats.files_written;
        report.files_unchanged = stats.files_unchanged;
        report.bytes_written = stats.bytes_written;
        let differences = compare::compare(tree, dir)?;
        if !differences.is_empty() {
            return Err(RollbackError::RestoreMismatch {
                target: dir.clone(),
                differences,
            });
        }
    }
    if let Some((path, sm)) = db {
        report.sqlite_replaced = restore_sqlite(&backup.dir, sm, path, &mut displacer, &mut buf)?;
    }
    displacer.sync()?;
    report.displaced_dir = displacer.base.clone();
    report.displaced = displacer.items;
    report.verified = true;
    Ok(report)
}

/// Restores the backup into a fresh `scratch` folder and compares it with `contents`: the
/// proof a backup needs before it counts.
pub(crate) fn test_restore(
    dir: &Path,
    contents: &Contents,
    scratch: &Path,
    id: &str,
) -> Result<TestRestore, RollbackError> {
    fs::create_dir(scratch).map_err(io_at("create directory", scratch))?;
    let mut differences = Differences::default();
    let (mut files, mut bytes) = (0u64, 0u64);
    if let Some(tree) = &contents.store {
        let target = scratch.join(STORE_DIR);
        let progress = Progress::new("test-restore", "files", Some(tree.totals().files));
        let stats = restore_tree(&dir.join(STORE_DIR), tree, &target, None, false, &progress);
        progress.finish();
        let stats = stats?;
        files += stats.files_written;
        bytes += stats.bytes_written;
        differences = compare::compare(tree, &target)?;
    }
    if let Some(sm) = &contents.sqlite {
        let mut buf = vec![0u8; BUF_SIZE];
        let target = tree::join_rel(scratch, &sm.file);
        let parent = scratch.join(SQLITE_DIR);
        fs::create_dir(&parent).map_err(io_at("create directory", &parent))?;
        write_verified(
            &dir.join(&sm.file),
            &target,
            sm.size,
            &sm.sha256,
            sm.mode,
            None,
            false,
            &mut buf,
        )?;
        let (n_bytes, sha256) = tree::hash_file(&target, &mut buf)?;
        if sha256 != sm.sha256 || n_bytes != sm.size {
            differences.changed.push(Changed {
                path: sm.file.clone(),
                aspects: vec![Aspect::Content],
            });
        }
        files += 1;
        bytes += n_bytes;
    }
    if !differences.is_empty() {
        return Err(RollbackError::TestRestoreMismatch {
            id: id.to_owned(),
            differences,
        });
    }
    Ok(TestRestore {
        matched: true,
        at: Utc::now(),
        files,
        bytes,
    })
}

pub(crate) struct TreeStats {
    files_written: u64,
    files_unchanged: u64,
    bytes_written: u64,
}

/// Makes `target` match `tree`, copying files from `src_root`. Without a displacer, finding
/// anything in the way is an error (the test restore writes into a fresh folder).
fn restore_tree(
    src_root: &Path,
    tree: &TreeManifest,
    target: &Path,
    mut displacer: Option<&mut Displacer>,
    durable: bool,
    progress: &Progress,
) -> Result<TreeStats, RollbackError> {
    // Like backup, a root that is a symlink to the real store is followed; nothing below it.
    match fs::metadata(target) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(RollbackError::TargetNotDirectory {
                path: target.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(target).map_err(io_at("create directory", target))?;
        }
        Err(e) => return Err(io_at("inspect", target)(e)),
    }
    let index = tree.index();
    let mut buf = vec![0u8; BUF_SIZE];

    // 1. Move aside whatever the manifest does not have, or has in another form. A directory
    // that stands where the manifest has a directory is descended into; anything else that
    // differs (a symlink where a directory was, say) is moved whole, never entered, so
    // nothing is ever written through a link.
    tree::walk(target, &mut |v| {
        let reason = match index.get(v.rel).filter(|_| v.utf8) {
            None => DisplaceReason::Extra,
            Some(entry) => match matches_entry(entry, v.abs, v.meta, &mut buf)? {
                Found::Descend => return Ok(Step::Descend),
                Found::Same => return Ok(Step::Skip),
                Found::Differs => DisplaceReason::Replaced,
            },
        };
        let Some(d) = displacer.as_deref_mut() else {
            return Err(RollbackError::Io {
                op: "restore into",
                path: target.to_path_buf(),
                error: io::Error::other(format!("{} is in the way", v.rel)),
            });
        };
        d.move_away(v.abs, STORE_DIR, v.rel, kind_name(v.meta), reason)?;
        Ok(Step::Skip)
    })?;

    // 2. Create what is missing: directories and links in manifest order (parents before
    // children), then files on worker threads.
    let mut missing_files = Vec::new();
    let mut files_unchanged = 0u64;
    for (i, entry) in tree.entries.iter().enumerate() {
        let abs = tree::join_rel(target, entry.path());
        let exists = match fs::symlink_metadata(&abs) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_at("inspect", &abs)(e)),
        };
        match entry {
            Entry::Dir { .. } if !exists => {
                fs::create_dir(&abs).map_err(io_at("create directory", &abs))?;
            }
            Entry::File { size, .. } if exists => {
                files_unchanged += 1;
                progress.inc(1, *size);
            }
            Entry::File { .. } => missing_files.push(i),
            Entry::Symlink { target: to, .. } if !exists => {
                std::os::unix::fs::symlink(to, &abs).map_err(io_at("create symlink", &abs))?;
            }
            Entry::Dir { .. } | Entry::Symlink { .. } => {}
        }
    }
    let written = tree::parallel(&missing_files, |i, buf| {
        let Entry::File {
            path,
            size,
            mode,
            mtime,
            sha256,
        } = &tree.entries[i]
        else {
            return Ok(0);
        };
        let (src, dst) = (tree::join_rel(src_root, path), tree::join_rel(target, path));
        write_verified(&src, &dst, *size, sha256, *mode, Some(mtime), durable, buf)?;
        progress.inc(1, *size);
        Ok(*size)
    })?;
    let stats = TreeStats {
        files_written: written.len() as u64,
        files_unchanged,
        bytes_written: written.iter().map(|(_, n)| n).sum(),
    };

    // 3. Times and modes, children before parents and the root last, because creating an
    // entry changes its directory's mtime. The time is set before the mode so that a mode
    // without read permission does not stop it.
    for entry in tree.entries.iter().rev() {
        let (mode, mtime) = match entry {
            Entry::File { mode, mtime, .. } | Entry::Dir { mode, mtime, .. } => (*mode, mtime),
            Entry::Symlink { .. } => continue,
        };
        let abs = tree::join_rel(target, entry.path());
        set_meta(&abs, mode, mtime)?;
        if durable && matches!(entry, Entry::Dir { .. }) {
            tree::sync_dir(&abs)?;
        }
    }
    set_meta(target, tree.root_mode, &tree.root_mtime)?;
    if durable {
        tree::sync_dir(target)?;
    }
    Ok(stats)
}

enum Found {
    Descend,
    Same,
    Differs,
}

/// Whether what is on disk can stay. Mode and mtime do not matter here: they are set later.
fn matches_entry(
    entry: &Entry,
    abs: &Path,
    meta: &fs::Metadata,
    buf: &mut [u8],
) -> Result<Found, RollbackError> {
    let t = meta.file_type();
    Ok(match entry {
        Entry::Dir { .. } if t.is_dir() => Found::Descend,
        Entry::File { size, sha256, .. } if t.is_file() => {
            if meta.len() == *size && tree::hash_file(abs, buf)?.1 == *sha256 {
                Found::Same
            } else {
                Found::Differs
            }
        }
        Entry::Symlink { target, .. } if t.is_symlink() => {
            let actual = fs::read_link(abs).map_err(io_at("read link", abs))?;
            if actual.as_os_str().as_encoded_bytes() == target.as_bytes() {
                Found::Same
            } else {
                Found::Differs
            }
        }
        _ => Found::Differs,
    })
}

fn set_meta(abs: &Path, mode: Mode, mtime: &DateTime<Utc>) -> Result<(), RollbackError> {
    let meta = fs::symlink_metadata(abs).map_err(io_at("inspect", abs))?;
    if tree::mtime_of(&meta) != *mtime {
        tree::set_mtime(abs, mtime)?;
    }
    if tree::mode_of(&meta) != mode {
        tree::set_mode(abs, mode)?;
    }
    Ok(())
}

/// Writes a backup file to `dst` through a temporary sibling: content checked against the
/// manifest's size and SHA-256 while copying, mode and mtime set, fsynced when `durable`,
/// then renamed over `dst`.
#[expect(
    clippy::too_many_arguments,
    reason = "one call per manifest field; a struct would only rename them"
)]
fn write_verified(
    src: &Path,
    dst: &Path,
    size: u64,
    sha256: &str,
    mode: Mode,
    mtime: Option<&DateTime<Utc>>,
    durable: bool,
    buf: &mut [u8],
) -> Result<(), RollbackError> {
    let tmp = write_temp(src, dst, size, sha256, mode, mtime, durable, buf)?;
    fs::rename(&tmp, dst).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_at("rename into place", dst)(e)
    })
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call per manifest field; a struct would only rename them"
)]
fn write_temp(
    src: &Path,
    dst: &Path,
    size: u64,
    sha256: &str,
    mode: Mode,
    mtime: Option<&DateTime<Utc>>,
    durable: bool,
    buf: &mut [u8],
) -> Result<PathBuf, RollbackError> {
    let parent = dst.parent().unwrap_or(Path::new("."));
    let name = dst.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.ferry-restore-{}", std::process::id()));
    let res = (|| {
        let mut input = File::open(src).map_err(io_at("read", src))?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_at("create", &tmp))?;
        let (n_bytes, digest) = tree::copy_hashing(&mut input, Some(&mut out), buf, src, &tmp)?;
        if n_bytes != size || digest != sha256 {
            return Err(RollbackError::BackupFileDamaged {
                path: src.to_path_buf(),
            });
        }
        out.set_permissions(fs::Permissions::from_mode(mode.0))
            .map_err(io_at("set the permissions of", &tmp))?;
        if let Some(t) = mtime {
            out.set_times(fs::FileTimes::new().set_modified(tree::system_time(t)))
                .map_err(io_at("set the modification time of", &tmp))?;
        }
        if durable {
            out.sync_all().map_err(io_at("sync", &tmp))?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces the SQLite file atomically with the backup's copy. The database it replaces is
/// kept in the displaced folder (hard link, or copy across file systems) together with its
/// `-wal`/`-shm`/`-journal` files, which are moved there so they cannot be applied to the
/// restored file. Returns false when the file already equalled the backup.
fn restore_sqlite(
    backup_dir: &Path,
    sm: &SqliteManifest,
    target: &Path,
    displacer: &mut Displacer,
    buf: &mut [u8],
) -> Result<bool, RollbackError> {
    let src = tree::join_rel(backup_dir, &sm.file);
    // A configured path that is a symlink to the real database: replace the database, not
    // the link.
    let target = match fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(target).map_err(io_at("resolve", target))?
        }
        _ => target.to_path_buf(),
    };
    let existing = match fs::symlink_metadata(&target) {
        Ok(m) if m.is_file() => Some(m),
        Ok(_) => {
            return Err(RollbackError::SqliteTargetNotFile { path: target });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_at("inspect", &target)(e)),
    };
    let sidecars: Vec<(PathBuf, &str)> = sqlite::SIDECAR_SUFFIXES
        .iter()
        .map(|s| (sqlite::sidecar(&target, s), *s))
        .filter(|(p, _)| fs::symlink_metadata(p).is_ok())
        .collect();
    if let Some(meta) = &existing {
        if sidecars.is_empty()
            && meta.len() == sm.size
            && tree::hash_file(&target, buf)?.1 == sm.sha256
        {
            if tree::mode_of(meta) != sm.mode {
                tree::set_mode(&target, sm.mode)?;
            }
            return Ok(false);
        }
    }
    let name = target
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    fs::create_dir_all(&parent).map_err(io_at("create directory", &parent))?;
    let tmp = write_temp(&src, &target, sm.size, &sm.sha256, sm.mode, None, true, buf)?;
    let res = (|| {
        if existing.is_some() {
            displacer.keep_copy(&target, SQLITE_DIR, &name, DisplaceReason::Replaced)?;
        }
        for (side, suffix) in &sidecars {
            let meta = fs::symlink_metadata(side).map_err(io_at("inspect", side))?;
            displacer.move_away(
                side,
                SQLITE_DIR,
                &format!("{name}{suffix}"),
                kind_name(&meta),
                DisplaceReason::StaleSidecar,
            )?;
        }
        fs::rename(&tmp, &target).map_err(io_at("rename into place", &target))?;
        tree::sync_dir(&parent)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let (n_bytes, sha256) = tree::hash_file(&target, buf)?;
    if n_bytes != sm.size || sha256 != sm.sha256 {
        return Err(RollbackError::RestoreMismatch {
            target,
            differences: Differences {
                changed: vec![Changed {
                    path: sm.file.clone(),
                    aspects: vec![Aspect::Content],
                }],
                ..Differences::default()
            },
        });
    }
    Ok(true)
}

fn kind_name(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "file"
    } else {
        tree::special_kind(meta).unwrap_or("special file")
    }
}

/// Moves entries into `<root>/<timestamp>/`, created on first use, and remembers them.
struct Displacer {
    root: PathBuf,
    base: Option<PathBuf>,
    items: Vec<Displaced>,
    /// Directories whose entries changed, fsynced at the end.
    touched: BTreeSet<PathBuf>,
}

impl Displacer {
    fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            base: None,
            items: Vec::new(),
            touched: BTreeSet::new(),
        }
    }

    /// A folder of this restore's own, so a move never lands on an earlier restore's file.
    fn base(&mut self) -> Result<PathBuf, RollbackError> {
        if let Some(b) = &self.base {
            return Ok(b.clone());
        }
        fs::create_dir_all(&self.root).map_err(io_at("create directory", &self.root))?;
        loop {
            let b = self.root.join(ferry_core::fsutil::timestamp_for_path());
            match fs::create_dir(&b) {
                Ok(()) => {
                    self.touched.insert(self.root.clone());
                    self.base = Some(b.clone());
                    return Ok(b);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => return Err(io_at("create directory", &b)(e)),
            }
        }
    }

    fn destination(&mut self, sub: &str, rel: &str) -> Result<PathBuf, RollbackError> {
        let dest = tree::join_rel(&self.base()?.join(sub), rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_at("create directory", parent))?;
            self.touched.insert(parent.to_path_buf());
        }
        Ok(dest)
    }

    /// Moves `abs` (any kind; a directory with everything in it) to `<base>/<sub>/<rel>`.
    fn move_away(
        &mut self,
        abs: &Path,
        sub: &str,
        rel: &str,
        kind: &'static str,
        reason: DisplaceReason,
    ) -> Result<(), RollbackError> {
        let dest = self.destination(sub, rel)?;
        match fs::rename(abs, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                copy_out(abs, &dest)?;
                // The copy is complete and synced: removing the original is a move.
                if kind == "dir" {
                    fs::remove_dir_all(abs).map_err(io_at("remove", abs))?;
                } else {
                    fs::remove_file(abs).map_err(io_at("remove", abs))?;
                }
            }
            Err(e) => return Err(io_at("move aside", abs)(e)),
        }
        if let Some(parent) = abs.parent() {
            self.touched.insert(parent.to_path_buf());
        }
        self.items.push(Displaced {
            path: rel.to_owned(),
            kind: kind.to_owned(),
            reason,
            moved_to: dest.clone(),
        });
        if kind == "dir" {
            // List what the directory held too, so the report names every file.
            let mut inner = Vec::new();
            tree::walk(&dest, &mut |v| {
                inner.push(Displaced {
                    path: format!("{rel}/{}", v.rel),
                    kind: kind_name(v.meta).to_owned(),
                    reason,
                    moved_to: v.abs.to_path_buf(),
                });
                Ok(Step::Descend)
            })?;
            self.items.extend(inner);
        }
        Ok(())
    }

    /// Keeps a copy of the regular file `abs` at `<base>/<sub>/<rel>` without removing it:
    /// a hard link when possible, else a copy.
    fn keep_copy(
        &mut self,
        abs: &Path,
        sub: &str,
        rel: &str,
        reason: DisplaceReason,
    ) -> Result<(), RollbackError> {
        let dest = self.destination(sub, rel)?;
        if fs::hard_link(abs, &dest).is_err() {
            copy_out(abs, &dest)?;
        }
        self.items.push(Displaced {
            path: rel.to_owned(),
            kind: "file".to_owned(),
            reason,
            moved_to: dest,
        });
        Ok(())
    }

    fn sync(&self) -> Result<(), RollbackError> {
        for dir in self.touched.iter().rev() {
            if dir.is_dir() {
                tree::sync_dir(dir)?;
            }
        }
        Ok(())
    }
}

/// Copies a file, symlink or directory tree to `dest` (which must not exist), keeping modes
/// and mtimes, fsynced. Used when a move crosses file systems.
fn copy_out(src: &Path, dest: &Path) -> Result<(), RollbackError> {
    let meta = fs::symlink_metadata(src).map_err(io_at("inspect", src))?;
    let t = meta.file_type();
    if t.is_symlink() {
        let to = fs::read_link(src).map_err(io_at("read link", src))?;
        std::os::unix::fs::symlink(to, dest).map_err(io_at("create symlink", dest))?;
    } else if t.is_file() {
        let mut input = File::open(src).map_err(io_at("read", src))?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(io_at("create", dest))?;
        io::copy(&mut input, &mut out).map_err(io_at("copy to", dest))?;
        out.set_permissions(meta.permissions())
            .map_err(io_at("set the permissions of", dest))?;
        out.set_times(fs::FileTimes::new().set_modified(tree::system_time(&tree::mtime_of(&meta))))
            .map_err(io_at("set the modification time of", dest))?;
        out.sync_all().map_err(io_at("sync", dest))?;
    } else if t.is_dir() {
        fs::create_dir(dest).map_err(io_at("create directory", dest))?;
        for item in fs::read_dir(src).map_err(io_at("read directory", src))? {
            let item = item.map_err(io_at("read directory", src))?;
            copy_out(&item.path(), &dest.join(item.file_name()))?;
        }
        tree::set_mtime(dest, &tree::mtime_of(&meta))?;
        tree::set_mode(dest, tree::mode_of(&meta))?;
        tree::sync_dir(dest)?;
    } else {
        return Err(RollbackError::Io {
            op: "move across file systems",
            path: src.to_path_buf(),
            error: io::Error::new(
                io::ErrorKind::Unsupported,
                format!("a {} cannot be copied", kind_name(&meta)),
            ),
        });
    }
    Ok(())
}
