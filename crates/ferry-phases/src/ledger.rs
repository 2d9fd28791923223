//! The phase ledger: every run, gate verdict and rollback, with its facts and evidence.
//!
//! The authoritative copy is a JSON file under `state_dir/ledger/`, rewritten atomically
//! and durably (temporary file, fsync, rename, directory fsync), because a rollback may
//! replace or remove the SQLite file. A run or rollback is written there as `started`
//! before it does anything, updated at each checkpoint as it creates things, and finished
//! with its outcome; a `started` entry whose process died is marked `interrupted` by the
//! next run that takes the state-dir lock. Finished entries are then copied into the SQLite
//! table `ferry_phase_runs` when that file and table exist; entries missing there (after a
//! restore) are copied back in.
//!
//! Format 2 (this one) keeps each entry's pre-phase facts apart from its evidence and lifts
//! the report path, error and override note out of the evidence. Format 1 files are read
//! and converted in memory; the next write saves them as format 2.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::error::PhaseError;
use crate::lock::Holder;
use crate::phase::Phase;

const FORMAT: &str = "ferry-phase-ledger/2";
const FORMAT_V1: &str = "ferry-phase-ledger/1";

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Run,
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Rollback => "rollback",
        }
    }
}

/// How an action ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Written before any work; replaced by the outcome when the action ends.
    Started,
    /// The phase ran and its gate passed.
    Passed,
    /// The phase ran and its gate failed, or a rollback's verification failed.
    Failed,
    /// The action stopped on an error.
    Error,
    /// The phase was undone and the result verified.
    RolledBack,
    /// The process died while the action ran (found by the next run that took the lock).
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::RolledBack => "rolled_back",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// One ledger entry: one run or rollback of one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub run_id: String,
    pub phase: Phase,
    pub action: Action,
    pub started_at: DateTime<Utc>,
    /// `None` while the action is under way (or was when its process died).
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    /// The gate's verdict, for runs that reached the gate (and rollbacks that verified).
    pub gate_passed: Option<bool>,
    /// One line for `status`.
    pub summary: String,
    /// The process that did it.
    #[serde(default)]
    pub process: Option<Holder>,
    /// What was true before the phase's first attempt created anything (the phase's own
    /// typed facts, serialised). Taken once per attempt chain and copied into every rerun.
    #[serde(default)]
    pub facts: Value,
    /// What the action did and found (the phase's own typed evidence, serialised), written
    /// as it goes so that a killed run still says what it left.
    #[serde(default)]
    pub evidence: Value,
    /// What a run whose process died left behind, in words (backup folders, a created
    /// SQLite file, a half-built schema), as found when it was marked interrupted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_behind: Vec<String>,
    /// A rollback's changes so far, in words, written as each is made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// The gate or rollback report.
    #[serde(default)]
    pub report: Option<PathBuf>,
    /// Why the action stopped, when it stopped on an error (password masked).
    #[serde(default)]
    pub error: Option<String>,
    /// Which gate `--force` overrode, and why it did not hold.
    #[serde(default)]
    pub forced_over: Option<String>,
    /// Set when `--force --reason` overrode a gate.
    pub forced_reason: Option<String>,
    /// The digest of store, SQLite file, state dir and target this ran against.
    #[serde(default)]
    pub scope_digest: Option<String>,
    /// What the runner tidied before this action: runs marked interrupted, a lock taken
    /// over, incomplete backup folders removed or reported.
    #[serde(default, skip_serializing_if = "Housekeeping::is_empty")]
    pub housekeeping: Housekeeping,
    pub ferry_version: String,
    pub config_digest: String,
}

/// What a run found left by killed runs, and what it did about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Housekeeping {
    /// The lock file named this holder, whose process was gone.
    #[serde(default)]
    pub lock_taken_over_from: Option<Holder>,
    /// Runs found `started` whose process was gone, now marked `interrupted`.
    #[serde(default)]
    pub marked_interrupted: Vec<String>,
    /// Backup folders without a manifest that runs of this ledger left, removed.
    #[serde(default)]
    pub removed_incomplete_backups: Vec<PathBuf>,
    /// Backup folders without a manifest that no run of this ledger can be shown to have
    /// made: left in place, reported.
    #[serde(default)]
    pub unknown_incomplete_backups: Vec<PathBuf>,
}

impl Housekeeping {
    pub fn is_empty(&self) -> bool {
        self == &Housekeeping::default()
    }
}

impl Entry {
    /// Whether the action has ended (in any way).
    pub fn is_finished(&self) -> bool {
        self.outcome != Outcome::Started
    }
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

    fn error(&self, message: impl Into<String>) -> PhaseError {
        PhaseError::Ledger {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Every entry, oldest first. A missing file is an empty ledger; a format-1 file is
    /// converted.
    pub fn entries(&self) -> Result<Vec<Entry>, PhaseError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(e.to_string())),
        };
        let not_a_ledger = |e: serde_json::Error| {
            self.error(format!(
                "not a phase ledger ({e}); restore it from a copy or move it aside"
            ))
        };
        let raw: Value = serde_json::from_slice(&bytes).map_err(not_a_ledger)?;
        match raw.get("format").and_then(Value::as_str) {
            Some(FORMAT) => Ok(serde_json::from_value::<File>(raw)
                .map_err(not_a_ledger)?
                .entries),
            Some(FORMAT_V1) => {
                let v1: FileV1 = serde_json::from_value(raw).map_err(not_a_ledger)?;
                Ok(v1.entries.into_iter().map(EntryV1::upgrade).collect())
            }
            other => Err(self.error(format!(
                "format `{}` is not `{FORMAT}` (or `{FORMAT_V1}`)",
                other.unwrap_or("?")
            ))),
        }
    }

    /// Writes `entry` durably: replaces the entry with the same run id, or appends it.
    /// The caller holds the state-dir lock.
    pub fn put(&self, entry: &Entry) -> Result<(), PhaseError> {
        let mut entries = self.entries()?;
        match entries.iter_mut().find(|e| e.run_id == entry.run_id) {
            Some(slot) => *slot = entry.clone(),
            None => entries.push(entry.clone()),
        }
        self.write_all(entries)
    }

    /// Rewrites the whole ledger (the caller holds the state-dir lock).
    pub(crate) fn write_all(&self, entries: Vec<Entry>) -> Result<(), PhaseError> {
        let file = File {
            format: FORMAT.to_owned(),
            entries,
        };
        ferry_core::fsutil::write_json(&self.path, &file).map_err(|e| self.error(e.to_string()))
    }

    /// Copies finished entries the SQLite table lacks into it. Best effort: the JSON file
    /// is the record; a SQLite file that is absent, rolled back or busy is brought up to
    /// date later.
    pub async fn mirror(&self) {
        let entries = match self.entries() {
            Ok(e) => e,
            Err(_) => return,
        };
        if let Err(e) = self.try_mirror(&entries).await {
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
            let Some(finished_at) = e.finished_at else {
                continue;
            };
            // The table's outcome column predates `interrupted`: it is mirrored as an error
            // whose summary says it was interrupted (the JSON ledger keeps the exact word).
            let outcome = match e.outcome {
                Outcome::Interrupted | Outcome::Started => Outcome::Error,
                o => o,
            };
            let evidence = serde_json::json!({
                "facts": e.facts,
                "evidence": e.evidence,
                "steps": e.steps,
                "left_behind": e.left_behind,
                "report": e.report,
                "error": e.error,
                "forced_over": e.forced_over,
                "housekeeping": e.housekeeping,
                "outcome": e.outcome.as_str(),
            });
            sqlx::query(
                "INSERT OR IGNORE INTO ferry_phase_runs (run_id, phase, action, started_at, finished_at, outcome, gate_passed, summary, evidence, ferry_version, config_digest, forced_reason)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&e.run_id)
            .bind(i64::from(e.phase.number()))
            .bind(e.action.as_str())
            .bind(e.started_at.to_rfc3339())
            .bind(finished_at.to_rfc3339())
            .bind(outcome.as_str())
            .bind(e.gate_passed.map(i64::from))
            .bind(&e.summary)
            .bind(evidence.to_string())
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
    /// A run or rollback is `started`: under way, or its process died (`status` tells
    /// which from the state-dir lock).
    InProgress,
    Passed,
    Failed,
    Error,
    /// A run's process died; what it left is undone by a rollback or finished by a rerun.
    Interrupted,
    RolledBack,
    /// A rollback changed things but did not verify (or was interrupted): the phase is
    /// neither in place nor undone, and the ledger entry says what state things are in.
    RollbackIncomplete,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotRun => "not run",
            State::InProgress => "in progress",
            State::Passed => "passed",
            State::Failed => "gate failed",
            State::Error => "error",
            State::Interrupted => "interrupted",
            State::RolledBack => "rolled back",
            State::RollbackIncomplete => "rollback incomplete",
        }
    }

    /// Something of the phase may be in place and need undoing.
    pub fn needs_rollback(self) -> bool {
        matches!(
            self,
            State::Passed
                | State::Failed
                | State::Error
                | State::Interrupted
                | State::RollbackIncomplete
                | State::InProgress
        )
    }
}

/// The state of `phase`, from its latest entry, and that entry.
pub fn state_of(entries: &[Entry], phase: Phase) -> (State, Option<&Entry>) {
    let Some(pos) = entries.iter().rposition(|e| e.phase == phase) else {
        return (State::NotRun, None);
    };
    let e = &entries[pos];
    let state = match (e.action, e.outcome) {
        (_, Outcome::Started) => State::InProgress,
        (Action::Run, Outcome::Passed) => State::Passed,
        (Action::Run, Outcome::Failed) => State::Failed,
        (Action::Run, Outcome::Error) => State::Error,
        (Action::Run, Outcome::Interrupted) => State::Interrupted,
        (Action::Run, Outcome::RolledBack) | (Action::Rollback, Outcome::RolledBack) => {
            State::RolledBack
        }
        (Action::Rollback, Outcome::Passed) => State::RolledBack,
        // A rollback that stopped before changing anything leaves the phase as it was.
        (Action::Rollback, Outcome::Error) if e.steps.is_empty() => {
            return state_of(&entries[..pos], phase);
        }
        (Action::Rollback, Outcome::Error | Outcome::Failed | Outcome::Interrupted) => {
            State::RollbackIncomplete
        }
    };
    (state, Some(e))
}

/// The run entries of `phase`'s current attempt chain, oldest first: every run since its
/// last verified rollback. The chain's pre-phase facts are those of its first run.
pub fn chain(entries: &[Entry], phase: Phase) -> Vec<&Entry> {
    let start = entries
        .iter()
        .rposition(|e| {
            e.phase == phase && e.action == Action::Rollback && e.outcome == Outcome::RolledBack
        })
        .map_or(0, |i| i + 1);
    entries[start..]
        .iter()
        .filter(|e| e.phase == phase && e.action == Action::Run)
        .collect()
}

/// The facts recorded by the first run of `phase`'s current chain, if it has run.
pub fn chain_facts(entries: &[Entry], phase: Phase) -> Option<&Value> {
    chain(entries, phase)
        .into_iter()
        .map(|e| &e.facts)
        .find(|f| !f.is_null())
}

/// The latest run entry of `phase`.
pub fn latest_run(entries: &[Entry], phase: Phase) -> Option<&Entry> {
    entries
        .iter()
        .rev()
        .find(|e| e.phase == phase && e.action == Action::Run)
}

/// A new run id: phase, action, time, process and a process-unique counter, so two
/// processes never make the same id.
pub fn new_run_id(phase: Phase, action: Action) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "p{}-{}-{}-{}-{}",
        phase.number(),
        action.as_str(),
        ferry_core::fsutil::timestamp_for_path(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Format 1: one entry per finished action, with everything in `evidence`.
#[derive(Debug, Deserialize)]
struct FileV1 {
    entries: Vec<EntryV1>,
}

#[derive(Debug, Deserialize)]
struct EntryV1 {
    run_id: String,
    phase: Phase,
    action: Action,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: Outcome,
    gate_passed: Option<bool>,
    summary: String,
    evidence: Value,
    ferry_version: String,
    config_digest: String,
    forced_reason: Option<String>,
}

impl EntryV1 {
    fn upgrade(self) -> Entry {
        let mut evidence = self.evidence;
        let mut take = |key: &str| evidence.as_object_mut().and_then(|m| m.remove(key));
        let report = take("report").and_then(|v| v.as_str().map(PathBuf::from));
        let error = take("error").and_then(|v| v.as_str().map(str::to_owned));
        let forced_over = take("forced_over").and_then(|v| v.as_str().map(str::to_owned));
        let scope_digest = take("scope_digest").and_then(|v| v.as_str().map(str::to_owned));
        // Format 1 kept a run's pre-phase facts (`sqlite_preexisting`, `schema_before`, …)
        // among its evidence, under the names the typed facts use: each phase's facts
        // struct reads the keys it knows from the same object.
        let facts = match self.action {
            Action::Run => evidence.clone(),
            Action::Rollback => Value::Null,
        };
        Entry {
            run_id: self.run_id,
            phase: self.phase,
            action: self.action,
            started_at: self.started_at,
            finished_at: Some(self.finished_at),
            outcome: self.outcome,
            gate_passed: self.gate_passed,
            summary: self.summary,
            process: None,
            facts,
            evidence,
            left_behind: Vec::new(),
            steps: Vec::new(),
            report,
            error,
            forced_over,
            forced_reason: self.forced_reason,
            scope_digest,
            housekeeping: Housekeeping::default(),
            ferry_version: self.ferry_version,
            config_digest: self.config_digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(phase: u8, action: Action, outcome: Outcome) -> Entry {
        Entry {
            run_id: new_run_id(Phase::try_from(phase).unwrap(), action),
            phase: Phase::try_from(phase).unwrap(),
            action,
            started_at: Utc::now(),
            finished_at: (outcome != Outcome::Started).then(Utc::now),
            outcome,
            gate_passed: None,
            summary: String::new(),
            process: None,
            facts: serde_json::json!({ "n": 1 }),
            evidence: Value::Null,
            left_behind: Vec::new(),
            steps: Vec::new(),
            report: None,
            error: None,
            forced_over: None,
            forced_reason: None,
            scope_digest: None,
            housekeeping: Housekeeping::default(),
            ferry_version: "0".into(),
            config_digest: "0".into(),
        }
    }

    #[test]
    fn a_rollback_that_did_not_verify_never_leaves_the_phase_passed() {
        let mut entries = vec![entry(3, Action::Run, Outcome::Passed)];
        assert_eq!(state_of(&entries, Phase::Load).0, State::Passed);
        let mut rollback = entry(3, Action::Rollback, Outcome::Failed);
        rollback.steps = vec!["dropped schema x".into()];
        entries.push(rollback);
        assert_eq!(state_of(&entries, Phase::Load).0, State::RollbackIncomplete);
        // One that stopped before changing anything leaves the phase as it was.
        entries.pop();
        entries.push(entry(3, Action::Rollback, Outcome::Error));
        assert_eq!(state_of(&entries, Phase::Load).0, State::Passed);
        entries.push(entry(3, Action::Rollback, Outcome::Interrupted));
        assert_eq!(state_of(&entries, Phase::Load).0, State::RollbackIncomplete);
    }

    #[test]
    fn the_chain_starts_after_the_last_verified_rollback() {
        let mut first = entry(1, Action::Run, Outcome::Interrupted);
        first.facts = serde_json::json!({ "sqlite_preexisting": false });
        let mut second = entry(1, Action::Run, Outcome::Passed);
        second.facts = serde_json::json!({ "sqlite_preexisting": true });
        let entries = vec![
            entry(1, Action::Run, Outcome::Passed),
            entry(1, Action::Rollback, Outcome::RolledBack),
            first,
            entry(2, Action::Run, Outcome::Passed),
            second,
        ];
        assert_eq!(chain(&entries, Phase::Foundation).len(), 2);
        assert_eq!(
            chain_facts(&entries, Phase::Foundation).unwrap()["sqlite_preexisting"],
            false,
            "the first attempt's facts hold for the whole chain"
        );
    }

    #[test]
    fn a_format_one_ledger_is_read_with_its_facts_and_report() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger/phase-runs.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"format": "ferry-phase-ledger/1", "entries": [{
                "run_id": "p3-run-1", "phase": 3, "action": "run",
                "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z",
                "outcome": "passed", "gate_passed": true, "summary": "ok",
                "evidence": {"scope_digest": "abc", "schema": "ferry", "schema_existed": false,
                             "schema_before": "", "report": "/r/gate3.json",
                             "rejects_acknowledged": "known"},
                "ferry_version": "0.1.0", "config_digest": "d", "forced_reason": null}]}"#,
        )
        .unwrap();
        let ledger = Ledger::new(dir.path(), &dir.path().join("none.sqlite3"));
        let entries = ledger.entries().unwrap();
        let e = &entries[0];
        assert_eq!(e.outcome, Outcome::Passed);
        assert_eq!(e.report.as_deref(), Some(Path::new("/r/gate3.json")));
        assert_eq!(e.scope_digest.as_deref(), Some("abc"));
        assert_eq!(e.facts["schema_existed"], false);
        assert_eq!(e.evidence["rejects_acknowledged"], "known");
        assert!(e.evidence.get("report").is_none());
        // Written back as format 2.
        ledger.put(e).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(FORMAT), "{text}");
        assert_eq!(ledger.entries().unwrap().len(), 1);
    }
}
