//! What a run does first, once it holds the state-dir lock: marks the runs whose process
//! died as interrupted (with what they left), and removes the backup folders without a
//! manifest that those runs left (or reports the ones no run of this ledger made).
//!
//! Holding the lock is the proof: no other ferry process works on this state dir, so a
//! `started` entry or an unsealed backup folder belongs to a process that is gone.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ferry_core::config::Config;

use crate::checks;
use crate::error::PhaseError;
use crate::foundation::BACKUP_LABELS;
use crate::ledger::{Entry, Housekeeping, Ledger, Outcome};
use crate::lock::StateLock;
use crate::module::{self, Cx};

/// Tidies after killed runs and returns what it did; every change is already in the
/// ledger (on the entries it concerns) when this returns.
pub(crate) async fn tidy(
    config: &Config,
    ledger: &Ledger,
    lock: &StateLock,
) -> Result<Housekeeping, PhaseError> {
    let mut done = Housekeeping {
        lock_taken_over_from: lock.took_over().cloned(),
        ..Housekeeping::default()
    };
    let mut entries = ledger.entries()?;
    let now = Utc::now();
    let mut changed = false;

    let unfinished: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.outcome == Outcome::Started)
        .map(|(i, _)| i)
        .collect();
    for i in unfinished {
        let left = {
            let cx = Cx {
                config,
                entries: &entries,
            };
            module::module(entries[i].phase)
                .left_behind(&cx, &entries[i])
                .await
        };
        let e = &mut entries[i];
        let who = e.process.as_ref().map_or_else(
            || "its process".to_owned(),
            |p| format!("pid {} on {}", p.pid, p.host),
        );
        e.outcome = Outcome::Interrupted;
        e.finished_at = Some(now);
        e.summary = format!(
            "interrupted: {who} was gone when {} took the lock{}",
            lock.holder(),
            if left.is_empty() {
                String::new()
            } else {
                format!("; it left {}", left.join(", "))
            }
        );
        e.error = Some(format!("interrupted: {who} stopped before it finished"));
        if let (Some(dead), Some(p)) = (lock.took_over(), &e.process) {
            if dead.pid == p.pid && dead.host == p.host {
                e.housekeeping.lock_taken_over_from = Some(dead.clone());
            }
        }
        e.left_behind = left;
        done.marked_interrupted.push(e.run_id.clone());
        changed = true;
    }

    for dir in checks::incomplete_backups(&config.state_dir, &BACKUP_LABELS) {
        let owner = checks::backup_time(&dir).and_then(|t| owner_of(&entries, t, now));
        match owner {
            Some(i) => {
                remove_backup_dir(&dir)?;
                tracing::info!(
                    "removed {}, an incomplete backup left by run {}",
                    dir.display(),
                    entries[i].run_id
                );
                entries[i]
                    .housekeeping
                    .removed_incomplete_backups
                    .push(dir.clone());
                done.removed_incomplete_backups.push(dir);
                changed = true;
            }
            None => done.unknown_incomplete_backups.push(dir),
        }
    }
    for dir in &done.unknown_incomplete_backups {
        tracing::warn!(
            "{} is a backup folder without a manifest that no run in the ledger made; it was left in place",
            dir.display()
        );
    }
    if changed {
        ledger.write_all(entries)?;
    }
    Ok(done)
}

/// The entry whose run was under way at `t` (phase 1 takes the backups).
fn owner_of(entries: &[Entry], t: DateTime<Utc>, now: DateTime<Utc>) -> Option<usize> {
    let slack = chrono::Duration::seconds(2);
    entries
        .iter()
        .rposition(|e| t + slack >= e.started_at && t <= e.finished_at.unwrap_or(now) + slack)
}

fn remove_backup_dir(dir: &Path) -> Result<(), PhaseError> {
    std::fs::remove_dir_all(dir)
        .map_err(|e| PhaseError::failed(format!("removing {}", dir.display()), e))?;
    if let Some(parent) = dir.parent() {
        let _ = ferry_core::fsutil::sync_dir(parent);
    }
    Ok(())
}

/// The folders under the state dir a run may create; those that did not exist before a run
/// that stopped on an error, and are empty, are removed again, so that a failed run leaves
/// only its ledger entry.
pub(crate) struct CreatedDirs(Vec<PathBuf>);

impl CreatedDirs {
    pub fn note(state_dir: &Path) -> Self {
        CreatedDirs(
            ["backups", "displaced", "reports", "quarantine", "snapshots"]
                .iter()
                .map(|d| state_dir.join(d))
                .filter(|d| !d.exists())
                .collect(),
        )
    }

    /// Removes the noted folders that exist now and are empty.
    pub fn remove_empty(&self) {
        for dir in &self.0 {
            // remove_dir removes only empty folders.
            let _ = std::fs::remove_dir(dir);
        }
    }
}
