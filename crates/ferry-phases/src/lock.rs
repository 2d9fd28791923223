//! The state-dir lock: one phase run, rollback or sync follower at a time per migration.
//!
//! The lock is an OS file lock (`flock`) on `state_dir/ferry.lock`, so the kernel releases
//! it when its process dies, however it dies. The holder writes who it is (pid, host, start
//! time, what it is doing) into the file, for the messages of whoever waits. A clean release
//! removes the file; a file that still names a holder while nobody holds the lock was left
//! by a process that was killed, and whoever takes the lock next reports the takeover.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_phases::lock::LockError> {
//! use ferry_phases::lock::{StateLock, Wait};
//! let lock = StateLock::acquire(".ferry".as_ref(), "the sync follower", Wait::No).await?;
//! if let Some(dead) = lock.took_over() {
//!     eprintln!("took the lock over from {dead}, whose process is gone");
//! }
//! // ... work on the migration ...
//! lock.release();
//! # Ok(()) }
//! ```

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The lock file's name under the state dir.
pub const LOCK_FILE: &str = "ferry.lock";

/// How long a refusing acquirer keeps trying before it refuses: a `status` that peeks at the
/// lock holds it shared for an instant, and that must not look like a running phase.
const NO_WAIT_GRACE: Duration = Duration::from_millis(300);

/// Who holds (or held) the lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub started_at: DateTime<Utc>,
    /// What holds it, in words: `phase 1`, `rollback --to 0`, `the sync follower`.
    pub purpose: String,
    pub ferry_version: String,
}

impl Holder {
    /// This process, about to do `purpose`.
    pub fn this_process(purpose: &str) -> Self {
        Holder {
            pid: std::process::id(),
            host: host_name(),
            started_at: Utc::now(),
            purpose: purpose.to_owned(),
            ferry_version: ferry_core::FERRY_VERSION.to_owned(),
        }
    }

    /// Whether this holder is this very process.
    pub fn is_this_process(&self) -> bool {
        self.pid == std::process::id() && self.host == host_name()
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {} on {}, since {})",
            self.purpose,
            self.pid,
            self.host,
            self.started_at.format("%Y-%m-%d %H:%M:%SZ")
        )
    }
}

/// The purpose `cargo xtask sync` holds the lock for (phase 4 refuses rather than waits).
pub const SYNC_PURPOSE: &str = "the sync follower";

/// How long to wait for a lock someone else holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wait {
    /// Until it is free, saying so while waiting.
    #[default]
    Forever,
    /// Not at all: refuse, naming the holder.
    No,
    /// Up to this long, then refuse.
    Up(Duration),
}

/// Who has the lock right now, as seen without taking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "holder")]
pub enum LockState {
    /// Nobody.
    Free,
    /// A live process (`None` while it has not yet written who it is).
    Held(Option<Holder>),
    /// Nobody, but the file names a holder: that process was killed while it held the lock.
    Stale(Holder),
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} is in use by {}; wait for it to finish (run again without --no-wait), or stop it first", state_dir.display(), describe(holder.as_ref()))]
    Held {
        state_dir: PathBuf,
        holder: Option<Holder>,
    },
    #[error("cannot lock the state dir {}: {source}", state_dir.display())]
    Io {
        state_dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn describe(holder: Option<&Holder>) -> String {
    holder.map_or_else(
        || "another ferry process (it has not written who it is yet)".to_owned(),
        Holder::to_string,
    )
}

/// The held lock of one state dir; released on drop.
#[derive(Debug)]
pub struct StateLock {
    file: Option<File>,
    path: PathBuf,
    holder: Holder,
    took_over: Option<Holder>,
    /// This lock made the state dir: if nothing else was put in it, releasing removes it,
    /// so a refused run leaves no empty folder behind.
    created_dir: bool,
}

impl StateLock {
    /// Takes the lock of `state_dir` (created when missing) for `purpose`, waiting as `wait`
    /// says. While it waits it logs, once and then every 30 s, who holds the lock.
    pub async fn acquire(state_dir: &Path, purpose: &str, wait: Wait) -> Result<Self, LockError> {
        let started = Instant::now();
        let mut last_said: Option<Instant> = None;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(lock) = Self::try_acquire(state_dir, purpose)? {
                if last_said.is_some() {
                    tracing::info!(
                        "took the lock of {} after waiting {:.1} s",
                        state_dir.display(),
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(lock);
            }
            let waited = started.elapsed();
            let give_up = match wait {
                Wait::Forever => false,
                Wait::No => waited >= NO_WAIT_GRACE,
                Wait::Up(limit) => waited >= limit.max(NO_WAIT_GRACE),
            };
            if give_up {
                return Err(LockError::Held {
                    state_dir: state_dir.to_path_buf(),
                    holder: current_holder(state_dir),
                });
            }
            let grace_over = waited >= NO_WAIT_GRACE;
            if grace_over
                && wait != Wait::No
                && last_said.is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
            {
                tracing::info!(
                    "waiting for {} to finish with {} (--no-wait refuses instead)",
                    describe(current_holder(state_dir).as_ref()),
                    state_dir.display()
                );
                last_said = Some(Instant::now());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Takes the lock if nobody holds it; `None` when someone does.
    pub fn try_acquire(state_dir: &Path, purpose: &str) -> Result<Option<Self>, LockError> {
        let io_err = |source| LockError::Io {
            state_dir: state_dir.to_path_buf(),
            source,
        };
        let created_dir = !state_dir.exists();
        let path = state_dir.join(LOCK_FILE);
        // A few rounds at most: a round only repeats when the holder released (and removed)
        // the file, or the folder it made, between our open and our lock.
        for _ in 0..100 {
            fs::create_dir_all(state_dir).map_err(io_err)?;
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path);
            let mut file = match opened {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
            // The holder we waited for removes the file before it unlocks; if the path no
            // longer names the file we locked, our lock guards nothing: open it again.
            let ours = file.metadata().map_err(io_err)?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e)),
            }
            let mut previous = String::new();
            file.read_to_string(&mut previous).map_err(io_err)?;
            let took_over = serde_json::from_str::<Holder>(previous.trim()).ok();
            let holder = Holder::this_process(purpose);
            let mut text = serde_json::to_vec_pretty(&holder)
                .map_err(io::Error::other)
                .map_err(io_err)?;
            text.push(b'\n');
            file.set_len(0).map_err(io_err)?;
            file.rewind().map_err(io_err)?;
            file.write_all(&text).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            if let Some(dead) = &took_over {
                tracing::warn!(
                    "took over the lock of {} from {dead}: that process is gone",
                    state_dir.display()
                );
            }
            return Ok(Some(StateLock {
                file: Some(file),
                path,
                holder,
                took_over,
                created_dir,
            }));
        }
        Err(io_err(io::Error::other(
            "the lock file keeps being replaced while it is taken",
        )))
    }

    /// Who holds the lock of `state_dir` now, without taking it and without creating
    /// anything.
    pub fn inspect(state_dir: &Path) -> Result<LockState, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockState::Free),
            Err(source) => {
                return Err(LockError::Io {
                    state_dir: state_dir.to_path_buf(),
                    source,
                })
            }
        };
        let mut text = String::new();
        // Unreadable content is treated as "not yet written".
        let _ = file.read_to_string(&mut text);
        let holder = serde_json::from_str::<Holder>(text.trim()).ok();
        match file.try_lock_shared() {
            Ok(()) => Ok(holder.map_or(LockState::Free, LockState::Stale)),
            Err(TryLockError::WouldBlock) => Ok(LockState::Held(holder)),
            Err(TryLockError::Error(source)) => Err(LockError::Io {
                state_dir: state_dir.to_path_buf(),
                source,
            }),
        }
    }

    /// This holder: this process and its purpose.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The holder named in the lock file when this process took the lock: a process that
    /// was killed while it held it.
    pub fn took_over(&self) -> Option<&Holder> {
        self.took_over.as_ref()
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases the lock (as dropping it does).
    pub fn release(mut self) {
        self.unlock();
    }

    fn unlock(&mut self) {
        if let Some(file) = self.file.take() {
            // The file goes first, while still locked: whoever locks the old file after us
            // sees that the path no longer names it and opens the path again.
            let _ = fs::remove_file(&self.path);
            drop(file);
            if self.created_dir {
                if let Some(dir) = self.path.parent() {
                    // Removes only an empty folder.
                    let _ = fs::remove_dir(dir);
                }
            }
        }
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        self.unlock();
    }
}

/// The holder named in the lock file right now, if any.
fn current_holder(state_dir: &Path) -> Option<Holder> {
    match StateLock::inspect(state_dir) {
        Ok(LockState::Held(h)) => h,
        Ok(LockState::Stale(h)) => Some(h),
        _ => None,
    }
}

/// This machine's name, for lock messages (`/proc/sys/kernel/hostname` on Linux).
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "this host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::try_acquire(dir.path(), "phase 1")
            .unwrap()
            .unwrap();
        assert!(first.took_over().is_none());
        // Another open file description of the same file conflicts, as another process would.
        assert!(StateLock::try_acquire(dir.path(), "phase 2")
            .unwrap()
            .is_none());
        match StateLock::inspect(dir.path()).unwrap() {
            LockState::Held(Some(h)) => {
                assert_eq!(h.purpose, "phase 1");
                assert_eq!(h.pid, std::process::id());
            }
            other => panic!("{other:?}"),
        }
        first.release();
        assert!(
            !dir.path().join(LOCK_FILE).exists(),
            "a clean release removes the file"
        );
        assert_eq!(StateLock::inspect(dir.path()).unwrap(), LockState::Free);
        let second = StateLock::try_acquire(dir.path(), "phase 2")
            .unwrap()
            .unwrap();
        assert!(second.took_over().is_none());
    }

    #[tokio::test]
    async fn no_wait_refuses_with_one_sentence_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = StateLock::try_acquire(dir.path(), "phase 3")
            .unwrap()
            .unwrap();
        let err = StateLock::acquire(dir.path(), "rollback --to 0", Wait::No)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("in use by phase 3 (pid ")
                && text.contains(&std::process::id().to_string())
                && text.contains(&host_name()),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn a_file_left_by_a_dead_holder_is_stale_and_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let dead = Holder {
            pid: 999_999_999,
            host: host_name(),
            started_at: Utc::now(),
            purpose: "phase 1".into(),
            ferry_version: "0.0.0".into(),
        };
        std::fs::write(
            dir.path().join(LOCK_FILE),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        assert_eq!(
            StateLock::inspect(dir.path()).unwrap(),
            LockState::Stale(dead.clone())
        );
        let lock = StateLock::try_acquire(dir.path(), "phase 1")
            .unwrap()
            .unwrap();
        assert_eq!(lock.took_over(), Some(&dead));
    }

    #[test]
    fn a_lock_that_made_the_state_dir_removes_it_when_nothing_else_was_put_there() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        StateLock::try_acquire(&state, "phase 2")
            .unwrap()
            .unwrap()
            .release();
        assert!(!state.exists());
        let lock = StateLock::try_acquire(&state, "phase 1").unwrap().unwrap();
        std::fs::create_dir_all(state.join("ledger")).unwrap();
        lock.release();
        assert!(state.join("ledger").exists(), "what a run recorded stays");
    }

    #[test]
    fn inspecting_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(StateLock::inspect(&state).unwrap(), LockState::Free);
        assert!(!state.exists());
    }
}
