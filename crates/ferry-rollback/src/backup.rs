//! Taking a backup: look at the inputs, copy and hash, fsync, test-restore, then seal the
//! folder with its manifest.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ferry_core::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::error::{io_at, io_error, RollbackError};
use crate::manifest::{
    self, Contents, Entry, Manifest, Mode, SqliteManifest, TestRestore, TreeManifest, FORMAT,
    MANIFEST_FILE, SQLITE_DIR, STORE_DIR,
};
use crate::restore;
use crate::sqlite;
use crate::tree::{self, Step, BUF_SIZE};

/// How many times a file that changes while it is copied is tried before giving up.
const COPY_ATTEMPTS: u32 = 3;

/// What to back up and where.
#[derive(Debug, Clone)]
pub struct BackupSpec {
    /// The folder that holds backups (`state_dir/backups`); created when missing.
    pub backups_root: PathBuf,
    /// The first part of the backup's id, such as `phase1`.
    pub label: String,
    /// A file tree to copy file by file.
    pub store_dir: Option<PathBuf>,
    /// A SQLite database to copy consistently with `VACUUM INTO`.
    pub sqlite_path: Option<PathBuf>,
    /// Accept a store with no files. Off by default: an empty store usually means a wrong path.
    pub allow_empty_store: bool,
}

/// A finished backup: its folder and its (verified on load) manifest.
#[derive(Debug, Clone)]
pub struct Backup {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// What the phase ledger keeps about a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEvidence {
    pub id: String,
    pub dir: PathBuf,
    pub manifest_sha256: String,
    pub created_at: DateTime<Utc>,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub store_source: Option<String>,
    pub sqlite_source: Option<String>,
    pub sqlite_sha256: Option<String>,
    pub sqlite_integrity_check: Option<String>,
    pub test_restore: TestRestore,
}

/// A folder under a backups root, as listed by [`list_backups`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupListing {
    pub id: String,
    pub dir: PathBuf,
    /// Has a manifest. A folder without one is an interrupted backup and is never used.
    pub complete: bool,
}

impl BackupSpec {
    pub fn new(backups_root: impl Into<PathBuf>, label: impl Into<String>) -> Self {
        Self {
            backups_root: backups_root.into(),
            label: label.into(),
            store_dir: None,
            sqlite_path: None,
            allow_empty_store: false,
        }
    }

    pub fn store(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.sqlite_path = Some(path.into());
        self
    }

    pub fn allow_empty_store(mut self, allow: bool) -> Self {
        self.allow_empty_store = allow;
        self
    }
}

impl Backup {
    /// Opens a finished backup; refuses a folder without a manifest or with one that does not
    /// check out (digest, paths, test-restore verdict). Does not re-hash files: see
    /// [`crate::verify`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Backup, RollbackError> {
        let dir = dir.as_ref();
        let manifest = Manifest::load(dir)?;
        Ok(Backup {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    pub fn evidence(&self) -> BackupEvidence {
        let c = &self.manifest.contents;
        BackupEvidence {
            id: self.manifest.id.clone(),
            dir: self.dir.clone(),
            manifest_sha256: self.manifest.manifest_sha256.clone(),
            created_at: c.created_at,
            files: c.totals.files,
            dirs: c.totals.dirs,
            symlinks: c.totals.symlinks,
            bytes: c.totals.bytes,
            store_source: c.store.as_ref().map(|s| s.source.clone()),
            sqlite_source: c.sqlite.as_ref().map(|s| s.source.clone()),
            sqlite_sha256: c.sqlite.as_ref().map(|s| s.sha256.clone()),
            sqlite_integrity_check: c.sqlite.as_ref().map(|s| s.integrity_check.clone()),
            test_restore: self.manifest.test_restore.clone(),
        }
    }
}

/// Lists the backup folders under `backups_root`, oldest id first. Hidden folders (test
/// restores in progress) are skipped; a missing root lists nothing.
pub fn list_backups(backups_root: &Path) -> Result<Vec<BackupListing>, RollbackError> {
    let items = match fs::read_dir(backups_root) {
        Ok(items) => items,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at("read directory", backups_root)(e)),
    };
    let mut out = Vec::new();
    for item in items {
        let item = item.map_err(io_at("read directory", backups_root))?;
        let Some(id) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let dir = item.path();
        if id.starts_with('.') || !dir.is_dir() {
            continue;
        }
        let complete = dir.join(MANIFEST_FILE).is_file();
        out.push(BackupListing { id, dir, complete });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Backs up a store directory and/or a SQLite file into `<backups_root>/<label>-<utc>/`.
///
/// Returns only after every file and directory is fsynced, the backup was test-restored
/// into a scratch folder and compared equal to its manifest, and the manifest was written
/// (last, atomically). On any error the partial folder is removed; earlier backups and the
/// sources are never touched. Bad input is found before anything is written.
pub async fn backup(spec: &BackupSpec) -> Result<Backup, RollbackError> {
    check_label(&spec.label)?;
    if spec.store_dir.is_none() && spec.sqlite_path.is_none() {
        return Err(RollbackError::NothingToBackUp);
    }
    let scan = match &spec.store_dir {
        Some(dir) => {
            let (dir, allow_empty) = (dir.clone(), spec.allow_empty_store);
            Some(blocking(move || scan_store(&dir, allow_empty)).await?)
        }
        None => None,
    };
    let sqlite = match &spec.sqlite_path {
        Some(path) => Some(SqliteSource::inspect(path)?),
        None => None,
    };

    let root = &spec.backups_root;
    if let Some(scan) = &scan {
        // Checked before the root is created, so a refused backup leaves the store as it was.
        if tree::resolve(root).starts_with(&scan.root) {
            return Err(RollbackError::BackupsInsideStore {
                backups_root: root.clone(),
                store: scan.root.clone(),
            });
        }
    }
    fs::create_dir_all(root).map_err(|e| root_error(root, e))?;
    let (id, dir) = create_backup_dir(root, &spec.label)?;
    let scratch = root.join(format!(".{id}.test-restore"));
    let res = fill(spec, &id, &dir, &scratch, scan, sqlite).await;
    if res.is_err() {
        // Only this backup's own folders; the backups root and earlier backups stay as they
        // were. A full disk still allows unlinking.
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&scratch);
        let _ = tree::sync_dir(root);
    }
    res
}

async fn fill(
    spec: &BackupSpec,
    id: &str,
    dir: &Path,
    scratch: &Path,
    scan: Option<Scan>,
    sqlite: Option<SqliteSource>,
) -> Result<Backup, RollbackError> {
    let created_at = Utc::now();
    let store = match scan {
        Some(scan) => {
            let dst = dir.join(STORE_DIR);
            Some(blocking(move || copy_tree(scan, &dst)).await?)
        }
        None => None,
    };
    let sqlite = match sqlite {
        Some(src) => Some(src.copy_into(dir).await?),
        None => None,
    };
    tree::sync_dir(dir)?;

    let mut totals = store.as_ref().map(TreeManifest::totals).unwrap_or_default();
    if let Some(s) = &sqlite {
        totals.bytes += s.size;
    }
    let contents = Contents {
        label: spec.label.clone(),
        created_at,
        ferry_version: ferry_core::FERRY_VERSION.to_owned(),
        totals,
        store,
        sqlite,
    };
    let manifest_sha256 = contents.digest();

    let test_restore = {
        let (dir, scratch, contents, id) = (
            dir.to_path_buf(),
            scratch.to_path_buf(),
            contents.clone(),
            id.to_owned(),
        );
        blocking(move || {
            let res = restore::test_restore(&dir, &contents, &scratch, &id);
            let removed = fs::remove_dir_all(&scratch).map_err(io_at("remove", &scratch));
            let verdict = res?;
            removed?;
            Ok(verdict)
        })
        .await?
    };

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        id: id.to_owned(),
        manifest_sha256,
        contents,
        test_restore,
    };
    let path = dir.join(MANIFEST_FILE);
    ferry_core::fsutil::write_json(&path, &manifest).map_err(io_at("write", &path))?;
    tree::sync_dir(&spec.backups_root)?;
    Ok(Backup {
        dir: dir.to_path_buf(),
        manifest,
    })
}

/// The store as found by the walk, before copying.
struct Scan {
    root: PathBuf,
    source: String,
    root_mode: Mode,
    root_mtime: DateTime<Utc>,
    items: Vec<ScanItem>,
}

struct ScanItem {
    entry: Entry,
    /// Device and inode seen by the walk, to notice a file replaced before it is copied.
    dev: u64,
    ino: u64,
}

/// Walks the store (metadata only) and refuses what cannot be backed up.
fn scan_store(dir: &Path, allow_empty: bool) -> Result<Scan, RollbackError> {
    // The root itself may be a symlink to the real store (a common way to configure a path);
    // everything below it is never followed.
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RollbackError::StoreMissing {
                path: dir.to_path_buf(),
            })
        }
        Err(error) => {
            return Err(RollbackError::StoreUnreadable {
                what: "store directory",
                path: dir.to_path_buf(),
                error,
            })
        }
    };
    if !meta.is_dir() {
        return Err(RollbackError::StoreNotDirectory {
            path: dir.to_path_buf(),
        });
    }
    let root = fs::canonicalize(dir).map_err(|error| RollbackError::StoreUnreadable {
        what: "store directory",
        path: dir.to_path_buf(),
        error,
    })?;
    let source = utf8(&root)?.to_owned();

    let mut items = Vec::new();
    let mut specials: Vec<(PathBuf, &'static str)> = Vec::new();
    let res = tree::walk(&root, &mut |v| {
        if let Some(kind) = tree::special_kind(v.meta) {
            specials.push((v.abs.to_path_buf(), kind));
            return Ok(Step::Skip);
        }
        if !v.utf8 {
            return Err(RollbackError::NonUtf8Name {
                path: v.abs.to_path_buf(),
            });
        }
        let path = v.rel.to_owned();
        let entry = if v.meta.is_dir() {
            Entry::Dir {
                path,
                mode: tree::mode_of(v.meta),
                mtime: tree::mtime_of(v.meta),
            }
        } else if v.meta.file_type().is_symlink() {
            let target = fs::read_link(v.abs).map_err(io_at("read link", v.abs))?;
            let target = utf8(&target)
                .map_err(|_| RollbackError::NonUtf8Name {
                    path: v.abs.to_path_buf(),
                })?
                .to_owned();
            Entry::Symlink {
                outside_root: manifest::escapes_root(&path, &target),
                path,
                target,
            }
        } else {
            Entry::File {
                path,
                size: v.meta.len(),
                mode: tree::mode_of(v.meta),
                mtime: tree::mtime_of(v.meta),
                sha256: String::new(),
            }
        };
        items.push(ScanItem {
            entry,
            dev: v.meta.dev(),
            ino: v.meta.ino(),
        });
        Ok(Step::Descend)
    });
    if let Err(err) = res {
        return Err(match err {
            RollbackError::Io { path, error, .. }
                if error.kind() == io::ErrorKind::PermissionDenied =>
            {
                let what = if path == root {
                    "store directory"
                } else {
                    "directory in the store"
                };
                RollbackError::StoreUnreadable { what, path, error }
            }
            other => other,
        });
    }
    if let Some((path, kind)) = specials.first() {
        return Err(RollbackError::SpecialFile {
            path: path.clone(),
            kind,
            more: specials.len() - 1,
        });
    }
    let has_content = items.iter().any(|i| !matches!(i.entry, Entry::Dir { .. }));
    if !has_content && !allow_empty {
        return Err(RollbackError::StoreEmpty {
            path: dir.to_path_buf(),
        });
    }
    Ok(Scan {
        root,
        source,
        root_mode: tree::mode_of(&meta),
        root_mtime: tree::mtime_of(&meta),
        items,
    })
}

/// Copies every file of the scan into `dst`, hashing as it reads, flushes the copy to disk
/// (one `syncfs`, then every directory), and returns the tree manifest.
///
/// Directories are created first, then files are copied by [`tree::parallel`] workers.
fn copy_tree(scan: Scan, dst: &Path) -> Result<TreeManifest, RollbackError> {
    fs::create_dir(dst).map_err(io_at("create directory", dst))?;
    let mut dirs = vec![dst.to_path_buf()];
    let mut files = Vec::new();
    for (i, item) in scan.items.iter().enumerate() {
        match &item.entry {
            Entry::Dir { path, .. } => {
                let d = tree::join_rel(dst, path);
                fs::create_dir(&d).map_err(io_at("create directory", &d))?;
                dirs.push(d);
            }
            Entry::File { .. } => files.push(i),
            Entry::Symlink { .. } => {}
        }
    }
    let progress = Progress::new("backup", "files", Some(files.len() as u64));
    let items = &scan.items;
    let copied = tree::parallel(&files, |i, buf| {
        let item = &items[i];
        let path = item.entry.path();
        let src = tree::join_rel(&scan.root, path);
        let out = tree::join_rel(dst, path);
        let entry = copy_file(&src, &out, path.to_owned(), item.dev, item.ino, buf)?;
        if let Entry::File { size, .. } = &entry {
            progress.inc(1, *size);
        }
        Ok(entry)
    });
    progress.finish();
    let mut entries: Vec<Option<Entry>> = scan
        .items
        .into_iter()
        .map(|i| match i.entry {
            Entry::File { .. } => None,
            other => Some(other),
        })
        .collect();
    for (i, entry) in copied? {
        entries[i] = Some(entry);
    }
    tree::sync_filesystem(dst)?;
    // Children before parents, so each directory is synced after the entries made in it.
    for d in dirs.iter().rev() {
        tree::sync_dir(d)?;
    }
    Ok(TreeManifest {
        source: scan.source,
        root_mode: scan.root_mode,
        root_mtime: scan.root_mtime,
        entries: entries.into_iter().flatten().collect(),
    })
}

/// Copies one file while hashing it, and records the metadata of the version copied.
/// A file that changes during the copy (size, mtime or ctime moved, or it was replaced) is
/// copied again, up to [`COPY_ATTEMPTS`] times.
fn copy_file(
    src: &Path,
    dst: &Path,
    path: String,
    dev: u64,
    ino: u64,
    buf: &mut [u8],
) -> Result<Entry, RollbackError> {
    let (mut dev, mut ino) = (dev, ino);
    for attempt in 1..=COPY_ATTEMPTS {
        if attempt > 1 {
            // Look again: the file may have been replaced by a new one (write and rename).
            match fs::symlink_metadata(src) {
                Ok(m) if m.is_file() => (dev, ino) = (m.dev(), m.ino()),
                Ok(_) => return Err(changed(src, "it is no longer a regular file")),
                Err(_) => return Err(changed(src, "it disappeared")),
            }
        }
        let mut f = match File::open(src) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(changed(src, "it disappeared"))
            }
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                return Err(RollbackError::StoreUnreadable {
                    what: "file in the store",
                    path: src.to_path_buf(),
                    error,
                })
            }
            Err(e) => return Err(io_error("read", src, e)),
        };
        let before = f.metadata().map_err(io_at("inspect", src))?;
        if !before.is_file() || before.dev() != dev || before.ino() != ino {
            continue;
        }
        let mut out = File::create(dst).map_err(io_at("create", dst))?;
        let (n_bytes, sha256) = tree::copy_hashing(&mut f, Some(&mut out), buf, src, dst)?;
        // Made durable by the one `syncfs` of the whole copy (see `copy_tree`).
        let after = f.metadata().map_err(io_at("inspect", src))?;
        let unchanged = n_bytes == before.len()
            && after.len() == before.len()
            && after.mtime() == before.mtime()
            && after.mtime_nsec() == before.mtime_nsec()
            && after.ctime() == before.ctime()
            && after.ctime_nsec() == before.ctime_nsec();
        if unchanged {
            return Ok(Entry::File {
                path,
                size: n_bytes,
                mode: tree::mode_of(&before),
                mtime: tree::mtime_of(&before),
                sha256,
            });
        }
    }
    Err(changed(
        src,
        &format!("it was different after each of {COPY_ATTEMPTS} copies"),
    ))
}

fn changed(src: &Path, reason: &str) -> RollbackError {
    RollbackError::ChangedDuringBackup {
        path: src.to_path_buf(),
        reason: reason.to_owned(),
    }
}

/// A SQLite file to back up, checked before anything is written.
struct SqliteSource {
    path: PathBuf,
    source: String,
    name: String,
    mode: Mode,
    wal: bool,
}

impl SqliteSource {
    fn inspect(path: &Path) -> Result<SqliteSource, RollbackError> {
        let wal = sqlite::check_header(path)?;
        let abs = fs::canonicalize(path).map_err(io_at("resolve", path))?;
        let meta = fs::metadata(&abs).map_err(io_at("inspect", &abs))?;
        let name = abs
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| RollbackError::NonUtf8Name { path: abs.clone() })?
            .to_owned();
        Ok(SqliteSource {
            source: utf8(&abs)?.to_owned(),
            path: abs,
            name,
            mode: tree::mode_of(&meta),
            wal,
        })
    }

    async fn copy_into(self, dir: &Path) -> Result<SqliteManifest, RollbackError> {
        let sub = dir.join(SQLITE_DIR);
        fs::create_dir(&sub).map_err(io_at("create directory", &sub))?;
        let dst = sub.join(&self.name);
        let progress = Progress::new("sqlite", "files", Some(1));
        let integrity_check = sqlite::copy_consistent(&self.path, &dst, self.wal).await?;
        let hashed = dst.clone();
        let (size, sha256) = blocking(move || {
            let f = File::open(&hashed).map_err(io_at("open", &hashed))?;
            f.sync_all().map_err(io_at("sync", &hashed))?;
            tree::hash_file(&hashed, &mut vec![0u8; BUF_SIZE])
        })
        .await?;
        tree::sync_dir(&sub)?;
        progress.inc(1, size);
        progress.finish();
        Ok(SqliteManifest {
            source: self.source,
            file: format!("{SQLITE_DIR}/{}", self.name),
            size,
            sha256,
            mode: self.mode,
            wal: self.wal,
            integrity_check,
        })
    }
}

fn check_label(label: &str) -> Result<(), RollbackError> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RollbackError::InvalidLabel {
            label: label.to_owned(),
        })
    }
}

/// Creates `<root>/<label>-<timestamp>` with a name no other backup has.
fn create_backup_dir(root: &Path, label: &str) -> Result<(String, PathBuf), RollbackError> {
    loop {
        let id = format!("{label}-{}", ferry_core::fsutil::timestamp_for_path());
        let dir = root.join(&id);
        match fs::create_dir(&dir) {
            Ok(()) => {
                tree::sync_dir(root)?;
                return Ok((id, dir));
            }
            // Two backups within the same millisecond: take the next one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => return Err(root_error(root, e)),
        }
    }
}

fn root_error(root: &Path, e: io::Error) -> RollbackError {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            RollbackError::BackupsRootNotWritable {
                path: root.to_path_buf(),
                error: e,
            }
        }
        _ => io_error("create directory", root, e),
    }
}

fn utf8(path: &Path) -> Result<&str, RollbackError> {
    path.to_str().ok_or_else(|| RollbackError::NonUtf8Name {
        path: path.to_path_buf(),
    })
}

/// Runs file work on tokio's blocking pool so a caller's runtime keeps serving other tasks.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RollbackError> + Send + 'static,
) -> Result<T, RollbackError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(res) => res,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels blocking work.
        Err(_) => Err(RollbackError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_plain_names() {
        assert!(check_label("phase1").is_ok());
        assert!(check_label("pre-rollback_2.b").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "../x"] {
            assert!(check_label(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
