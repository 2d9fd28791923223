//! The phase ledger: every run, gate verdict and rollback, with its evidence.
//!
//! The authoritative copy is a JSON file under `state_dir/ledger/`, written atomically
//! before anything else, because a rollback may replace or remove the SQLite file. Each
//! entry is then copied into the SQLite table `ferry_phase_runs` when that file and table
//! exist; entries missing there (after a restore) are copied back in.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::error::PhaseError;
use crate::phase::Phase;

const FORMAT: &str = "ferry-phase-ledger/1";

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Run,
    Rollback,
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The phase ran and its gate passed.
    Passed,
    /// The phase ran and its gate failed, or a rollback's verification failed.
    Failed,
    /// The action stopped on an error.
    Error,
    /// The phase was undone and the result verified.
    RolledBack,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::RolledBack => "rolled_back",
        }
    }
}

/// One ledger entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub run_id: String,
    pub phase: Phase,
    pub action: Action,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The gate's verdict, for runs that reached the gate.
    pub gate_passed: Option<bool>,
    /// One line for `status`.
    pub summary: String,
    /// Counts, digests, file lists, backup ids, report paths.
    pub evidence: serde_json::Value,
    pub ferry_version: String,
    pub config_digest: String,
    /// Set when `--force --reason` overrode a gate.
    pub forced_reason: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    format: String,
    entries: Vec<Entry>,
}

/// The ledger of one migration (one state dir).
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
    sqlite: PathBuf,
}

impl Ledger {
    /// The ledger kept under `state_dir`, mirrored into the SQLite file at `sqlite`.
    pub fn new(state_dir: &Path, sqlite: &Path) -> Self {
        Self {
            path: state_dir.join("ledger").join("phase-runs.json"),
            sqlite: sqlite.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, oldest first. A missing file is an empty ledger.
    pub fn entries(&self) -> Result<Vec<Entry>, PhaseError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let file: File =
                    serde_json::from_slice(&bytes).map_err(|e| PhaseError::Ledger {
                        path: self.path.clone(),
                        message: format!(
                            "not a phase ledger ({e}); restore it from a copy or move it aside"
                        ),
                    })?;
                if file.format != FORMAT {
                    return Err(PhaseError::Ledger {
                        path: self.path.clone(),
                        message: format!("format `{}` is not `{FORMAT}`", file.format),
                    });
                }
                Ok(file.entries)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(PhaseError::Ledger {
                path: self.path.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// Appends an entry: first to the JSON file (durably), then to SQLite when possible.
    pub async fn append(&self, entry: Entry) -> Result<(), PhaseError> {
        let mut entries = self.entries()?;
        entries.push(entry);
        let file = File {
            format: FORMAT.to_owned(),
            entries,
        };
        ferry_core::fsutil::write_json(&self.path, &file).map_err(|e| PhaseError::Ledger {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        self.mirror(&file.entries).await;
        Ok(())
    }

    /// Copies entries the SQLite table lacks into it. Best effort: the JSON file is the
    /// record; a SQLite file that is absent, rolled back or busy is brought up to date on a
    /// later append.
    async fn mirror(&self, entries: &[Entry]) {
        if let Err(e) = self.try_mirror(entries).await {
            tracing::debug!(
                "phase ledger not mirrored into {}: {e}",
                self.sqlite.display()
            );
        }
    }

    async fn try_mirror(&self, entries: &[Entry]) -> Result<(), sqlx::Error> {
        if !self.sqlite.is_file() {
            return Ok(());
        }
        let options = SqliteConnectOptions::new()
            .filename(&self.sqlite)
            .busy_timeout(std::time::Duration::from_secs(10))
            .disable_statement_logging();
        let mut conn = SqliteConnection::connect_with(&options).await?;
        let has_table: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'ferry_phase_runs'",
        )
        .fetch_one(&mut conn)
        .await?;
        if has_table == 0 {
            conn.close().await?;
            return Ok(());
        }
        let mut tx = conn.begin().await?;
        for e in entries {
            sqlx::query(
                "INSERT OR IGNORE INTO ferry_phase_runs (run_id, phase, action, started_at, finished_at, outcome, gate_passed, summary, evidence, ferry_version, config_digest, forced_reason)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&e.run_id)
            .bind(i64::from(e.phase.number()))
            .bind(match e.action {
                Action::Run => "run",
                Action::Rollback => "rollback",
            })
            .bind(e.started_at.to_rfc3339())
            .bind(e.finished_at.to_rfc3339())
            .bind(e.outcome.as_str())
            .bind(e.gate_passed.map(i64::from))
            .bind(&e.summary)
            .bind(e.evidence.to_string())
            .bind(&e.ferry_version)
            .bind(&e.config_digest)
            .bind(&e.forced_reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        conn.close().await
    }
}

/// Where a phase stands, from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    NotRun,
    Passed,
    Failed,
    Error,
    RolledBack,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotRun => "not run",
            State::Passed => "passed",
            State::Failed => "gate failed",
            State::Error => "error",
            State::RolledBack => "rolled back",
        }
    }

    /// Something of the phase may be in place and need undoing.
    pub fn needs_rollback(self) -> bool {
        matches!(self, State::Passed | State::Failed | State::Error)
    }
}

/// The state of `phase`: that of its latest entry.
pub fn state_of(entries: &[Entry], phase: Phase) -> (State, Option<&Entry>) {
    match entries.iter().rev().find(|e| e.phase == phase) {
        None => (State::NotRun, None),
        Some(e) => {
            let state = match (e.action, e.outcome) {
                (Action::Rollback, Outcome::RolledBack) => State::RolledBack,
                // A rollback that could not verify leaves the phase as it was.
                (Action::Rollback, _) => {
                    return entries
                        .iter()
                        .rev()
                        .find(|x| x.phase == phase && x.action == Action::Run)
                        .map_or((State::NotRun, None), |run| (state_of_run(run), Some(run)))
                }
                (Action::Run, _) => state_of_run(e),
            };
            (state, Some(e))
        }
    }
}

fn state_of_run(e: &Entry) -> State {
    match e.outcome {
        Outcome::Passed => State::Passed,
        Outcome::Failed => State::Failed,
        Outcome::Error => State::Error,
        Outcome::RolledBack => State::RolledBack,
    }
}

/// The latest run entry of `phase` (the evidence a rollback or a recheck works from).
pub fn latest_run(entries: &[Entry], phase: Phase) -> Option<&Entry> {
    entries
        .iter()
        .rev()
        .find(|e| e.phase == phase && e.action == Action::Run)
}

/// A new run id: phase, time, and a process-unique counter.
pub fn new_run_id(phase: Phase, action: Action) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let kind = match action {
        Action::Run => "run",
        Action::Rollback => "rollback",
    };
    format!(
        "p{}-{kind}-{}-{}",
        phase.number(),
        ferry_core::fsutil::timestamp_for_path(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
