//! Walking the store: every entry that is not a directory, with its relative path, type, size
//! and modification time. Symlinks are never followed; a link's target decides whether it is
//! excluded (it leads inside the store, whose own entry is imported) or quarantined (it
//! leads out, or nowhere). FIFOs, sockets and devices are never opened.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::UNIX_EPOCH;

use crate::error::ImportError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    File,
    SymlinkInside {
        target: String,
    },
    SymlinkOutside {
        target: String,
    },
    SymlinkBroken {
        target: String,
    },
    Special(&'static str),
    /// A path that is not UTF-8 (the file's name, or a folder's above it): the ledger path
    /// is escaped so that it round-trips to the bytes (see [`crate::names`]).
    BadName,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub rel: String,
    pub abs: PathBuf,
    pub kind: EntryKind,
    pub size: u64,
    pub mtime_ns: Option<i64>,
}

/// What could not be listed: the relative path (`.` for the root) and why.
#[derive(Debug, Clone)]
pub(crate) struct Unreadable {
    pub rel: String,
    pub error: String,
}

/// The store's entries sorted by path, and what could not be listed, walked by `threads`
/// threads (the walk comes before anything else can start, so the cores are free).
pub(crate) fn walk(
    root: &Path,
    threads: usize,
) -> Result<(Vec<Entry>, Vec<Unreadable>), ImportError> {
    let canonical_root = match root.canonicalize() {
        Ok(r) => r,
        // A symlink loop or a permission problem is not a missing store: only NotFound is.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImportError::StoreMissing {
                path: root.to_owned(),
            })
        }
        Err(error) => {
            return Err(ImportError::Store {
                path: root.to_owned(),
                error,
            })
        }
    };
    if !canonical_root.is_dir() {
        return Err(ImportError::StoreNotDirectory {
            path: root.to_owned(),
        });
    }
    let read = fs::read_dir(root).map_err(|error| ImportError::Store {
        path: root.to_owned(),
        error,
    })?;
    let mut out = Listing::default();
    let mut subdirs = Vec::new();
    list(read, ("", false), &canonical_root, &mut out, &mut subdirs);
    let queue = Queue {
        state: Mutex::new(QueueState {
            dirs: subdirs,
            active: 0,
        }),
        cv: Condvar::new(),
    };
    let listings: Vec<Listing> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-walk-{i}"))
                .spawn_scoped(scope, || queue.work(&canonical_root));
            match spawned {
                Ok(h) => handles.push(h),
                // Walk with the threads there are; with none, on this one.
                Err(_) if !handles.is_empty() => break,
                Err(_) => return vec![queue.work(&canonical_root)],
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for l in listings {
        out.entries.extend(l.entries);
        out.unreadable.extend(l.unreadable);
    }
    let Listing {
        mut entries,
        mut unreadable,
    } = out;
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    unreadable.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((entries, unreadable))
}

#[derive(Default)]
struct Listing {
    entries: Vec<Entry>,
    unreadable: Vec<Unreadable>,
}

/// Directories still to list, shared by the walking threads.
struct Queue {
    state: Mutex<QueueState>,
    cv: Condvar,
}

struct QueueState {
    /// Folders still to list: where, the ledger path, and whether that path is not UTF-8.
    dirs: Vec<(PathBuf, String, bool)>,
    /// Threads listing a directory, which may add more.
    active: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lists directories until none is left and no thread can add one.
    fn work(&self, canonical_root: &Path) -> Listing {
        let mut out = Listing::default();
        loop {
            let (dir, rel_dir, bad_dir) = {
                let mut s = self.lock();
                loop {
                    if let Some(d) = s.dirs.pop() {
                        s.active += 1;
                        break d;
                    }
                    if s.active == 0 {
                        return out;
                    }
                    s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            let mut subdirs = Vec::new();
            match fs::read_dir(&dir) {
                Ok(read) => list(
                    read,
                    (&rel_dir, bad_dir),
                    canonical_root,
                    &mut out,
                    &mut subdirs,
                ),
                Err(e) => out.unreadable.push(Unreadable {
                    rel: rel_dir,
                    error: e.to_string(),
                }),
            }
            let mut s = self.lock();
            s.dirs.extend(subdirs);
            s.active -= 1;
            self.cv.notify_all();
        }
    }
}

/// The entries of one directory (`rel_dir` empty for the root, with whether its path is not
/// UTF-8); its subdirectories go to `subdirs`. A directory's type comes with its entry, and
/// a file's metadata is read relative to the open directory, so no path is resolved from
/// the root again.
fn list(
    read: fs::ReadDir,
    (rel_dir, bad_dir): (&str, bool),
    canonical_root: &Path,
    out: &mut Listing,
    subdirs: &mut Vec<(PathBuf, String, bool)>,
) {
    for item in read {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                out.unreadable.push(Unreadable {
                    rel: if rel_dir.is_empty() {
                        ".".into()
                    } else {
                        rel_dir.to_owned()
                    },
                    error: e.to_string(),
                });
                continue;
            }
        };
        // The name as the ledger keeps it: exact and unique, whatever its bytes.
        let (name, bad_name) = crate::names::encode_component(&item.file_name());
        let bad_name = bad_name || bad_dir;
        let rel = if rel_dir.is_empty() {
            name
        } else {
            format!("{rel_dir}/{name}")
        };
        let abs = item.path();
        match item.file_type() {
            Ok(ft) if ft.is_dir() => {
                subdirs.push((abs, rel, bad_name));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                out.unreadable.push(Unreadable {
                    rel,
                    error: e.to_string(),
                });
                continue;
            }
        }
        // Like `symlink_metadata`: a link is described, not followed.
        let meta = match item.metadata() {
            Ok(m) => m,
            Err(e) => {
                out.unreadable.push(Unreadable {
                    rel,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            // Replaced by a directory since it was listed.
            subdirs.push((abs, rel, bad_name));
            continue;
        }
        let kind = if bad_name {
            EntryKind::BadName
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_symlink() {
            let target = fs::read_link(&abs)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            match abs.canonicalize() {
                Err(_) => EntryKind::SymlinkBroken { target },
                Ok(resolved) if resolved.starts_with(canonical_root) => {
                    EntryKind::SymlinkInside { target }
                }
                Ok(_) => EntryKind::SymlinkOutside { target },
            }
        } else {
            EntryKind::Special(special_name(&ft))
        };
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok());
        out.entries.push(Entry {
            rel,
            abs,
            kind,
            size: meta.len(),
            mtime_ns,
        });
    }
}

#[cfg(unix)]
fn special_name(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a named pipe (FIFO)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_name(_ft: &fs::FileType) -> &'static str {
    "a special file"
}
