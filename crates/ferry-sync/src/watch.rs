//! The file-store watcher: reports "the store may have changed" with the paths, from
//! filesystem events (the `notify` crate) and from a full rescan every few seconds, because
//! watchers drop events when their queue overflows and see nothing while ferry is stopped.
//!
//! It only reports; the runner hands the paths to ferry-import's incremental import (same
//! profile, ledger and quarantine), which decides what changed by size, time and hash.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use crate::error::{Result, SyncError};

/// What changed in the store since the last poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreChanges {
    /// Paths relative to the store's root: new, changed or removed files.
    pub paths: BTreeSet<PathBuf>,
    /// A rescan ran (on schedule, or because the watcher lost events).
    pub rescanned: bool,
    /// The watcher reported lost events.
    pub overflow: bool,
}

impl StoreChanges {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// `(size, modification time in ns)` of a file, or of a symlink itself.
type Stamp = (u64, i128);

/// Watches a file store.
pub struct StoreWatcher {
    root: PathBuf,
    _watcher: notify::RecommendedWatcher,
    events: Receiver<notify::Result<notify::Event>>,
    known: HashMap<PathBuf, Stamp>,
    rescan_every: Duration,
    last_rescan: Instant,
}

impl std::fmt::Debug for StoreWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWatcher")
            .field("root", &self.root)
            .field("files", &self.known.len())
            .finish_non_exhaustive()
    }
}

impl StoreWatcher {
    /// Starts watching `root` (recursively) and takes the first inventory.
    pub fn new(root: &Path, rescan_every: Duration) -> Result<Self> {
        let err = |m: String| SyncError::Watch {
            path: root.to_owned(),
            message: m,
        };
        if !root.is_dir() {
            return Err(err("not a directory".into()));
        }
        let (tx, rx) = channel();
        let mut watcher = notify::recommended_watcher(move |ev| {
            let _ = tx.send(ev);
        })
        .map_err(|e| err(e.to_string()))?;
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| err(e.to_string()))?;
        let known = inventory(root).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            root: root.to_owned(),
            _watcher: watcher,
            events: rx,
            known,
            rescan_every,
            last_rescan: Instant::now(),
        })
    }

    /// Files known from the last inventory.
    pub fn files(&self) -> usize {
        self.known.len()
    }

    /// What changed since the last call: the paths of the events received, and when a
    /// rescan is due (or events were lost) the difference from the last inventory.
    pub fn poll(&mut self) -> Result<StoreChanges> {
        let mut out = StoreChanges::default();
        loop {
            match self.events.try_recv() {
                Ok(Ok(ev)) => {
                    if ev.need_rescan() {
                        out.overflow = true;
                    }
                    for p in ev.paths {
                        if let Ok(rel) = p.strip_prefix(&self.root) {
                            if !rel.as_os_str().is_empty() && !p.is_dir() {
                                out.paths.insert(rel.to_owned());
                            }
                        }
                    }
                }
                Ok(Err(_)) => out.overflow = true,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    out.overflow = true;
                    break;
                }
            }
        }
        if out.overflow || self.last_rescan.elapsed() >= self.rescan_every {
            let found = self.rescan()?;
            out.paths.extend(found.paths);
            out.rescanned = true;
        } else {
            // Keep the inventory current for the paths the events named.
            for rel in &out.paths {
                match stamp(&self.root.join(rel)) {
                    Some(s) => {
                        self.known.insert(rel.clone(), s);
                    }
                    None => {
                        self.known.remove(rel);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Walks the whole store and reports every file added, changed or removed since the
    /// last inventory.
    pub fn rescan(&mut self) -> Result<StoreChanges> {
        let now = inventory(&self.root).map_err(|e| SyncError::Watch {
            path: self.root.clone(),
            message: e.to_string(),
        })?;
        let mut out = StoreChanges {
            rescanned: true,
            ..StoreChanges::default()
        };
        for (p, s) in &now {
            if self.known.get(p) != Some(s) {
                out.paths.insert(p.clone());
            }
        }
        for p in self.known.keys() {
            if !now.contains_key(p) {
                out.paths.insert(p.clone());
            }
        }
        self.known = now;
        self.last_rescan = Instant::now();
        Ok(out)
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(path).ok()?;
    if m.is_dir() {
        return None;
    }
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Some((m.len(), t))
}

/// Every file (and symlink, never followed) under `root`, relative.
fn inventory(root: &Path) -> std::io::Result<HashMap<PathBuf, Stamp>> {
    let mut out = HashMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(path);
            } else if let Some(s) = stamp(&path) {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.insert(rel.to_owned(), s);
                }
            }
        }
    }
    Ok(out)
}
