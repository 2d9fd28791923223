//! `status`: where the migration stands, from the ledger, with each passed gate's evidence
//! re-checked quickly, runs under way or interrupted (and what they left), the lock, the
//! schema versions, and what to run next. It reads only and creates nothing.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_core::config::Config;
use ferry_core::table::Table;
use serde::Serialize;

use crate::checks;
use crate::error::PhaseError;
use crate::foundation::BACKUP_LABELS;
use crate::gate::Check;
use crate::ledger::{self, Action, Ledger, Outcome, State};
use crate::lock::{Holder, LockState, StateLock};
use crate::module::{self, Cx, Depth};
use crate::phase::Phase;
use crate::runner::recheck_entry;

/// `status` for people and machines.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state_dir: PathBuf,
    pub ledger: PathBuf,
    /// Who holds the state-dir lock now.
    pub lock: LockState,
    pub sqlite: DatabaseVersion,
    pub postgres: DatabaseVersion,
    pub phases: Vec<PhaseStatus>,
    /// Runs and rollbacks whose process died before they finished.
    pub interrupted: Vec<InterruptedRun>,
    /// Backup folders without a manifest (the next run removes those a run of this ledger
    /// left, and reports the others).
    pub incomplete_backups: Vec<PathBuf>,
    /// Phase 4's sync, when capture is installed: changes and seconds behind, lag p50/p99,
    /// the last error.
    pub sync: Option<crate::sync::SyncLag>,
    pub next: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseStatus {
    pub phase: u8,
    pub name: String,
    pub state: State,
    pub when: Option<String>,
    pub gate: Option<bool>,
    pub summary: String,
    pub forced_reason: Option<String>,
    /// For a passed gate: whether its evidence still holds at a quick look (`None`: it
    /// could not be checked, such as PostgreSQL not answering).
    pub holds: Option<bool>,
    /// The quick recheck's checks that did not pass.
    pub recheck: Vec<Check>,
}

/// A run or rollback that started and never finished because its process died.
#[derive(Debug, Clone, Serialize)]
pub struct InterruptedRun {
    pub run_id: String,
    pub phase: u8,
    pub action: Action,
    pub started_at: DateTime<Utc>,
    pub process: Option<Holder>,
    /// Already marked `interrupted` in the ledger (else the next run marks it).
    pub marked: bool,
    pub left_behind: Vec<String>,
}

/// The schema version of one database, or why it is not known.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseVersion {
    pub database: String,
    pub current: Option<i64>,
    pub head: i64,
    pub note: String,
}

pub(crate) async fn status(config: &Config, ledger: &Ledger) -> Result<StatusReport, PhaseError> {
    let entries = ledger.entries()?;
    let lock = StateLock::inspect(&config.state_dir)?;
    let running_pid = match &lock {
        LockState::Held(Some(h)) => Some((h.pid, h.host.clone())),
        _ => None,
    };
    let cx = Cx {
        config,
        entries: &entries,
    };
    // The interrupted runs that still matter: each phase's latest entry, when its process
    // died (older ones are history, kept in the ledger).
    let mut interrupted = Vec::new();
    for phase in Phase::ALL {
        let Some(e) = entries.iter().rev().find(|e| e.phase == phase) else {
            continue;
        };
        let running = e.outcome == Outcome::Started
            && (matches!(lock, LockState::Held(None))
                || e.process.as_ref().map(|p| (p.pid, p.host.clone())) == running_pid);
        let dead = (e.outcome == Outcome::Started && !running) || e.outcome == Outcome::Interrupted;
        if !dead {
            continue;
        }
        interrupted.push(InterruptedRun {
            run_id: e.run_id.clone(),
            phase: e.phase.number(),
            action: e.action,
            started_at: e.started_at,
            process: e.process.clone(),
            marked: e.outcome == Outcome::Interrupted,
            left_behind: module::module(e.phase).left_behind(&cx, e).await,
        });
    }

    let mut phases = Vec::new();
    for phase in Phase::ALL {
        let (mut state, entry) = ledger::state_of(&entries, phase);
        let mut summary = match entry {
            _ if !phase.is_built() => "not built yet".to_owned(),
            Some(e) => e.summary.clone(),
            None => String::new(),
        };
        let (mut holds, mut recheck) = (None, Vec::new());
        if let Some(e) = entry {
            if state == State::InProgress {
                let running = e.process.as_ref().map(|p| (p.pid, p.host.clone())) == running_pid
                    || matches!(lock, LockState::Held(None));
                if running {
                    summary = format!(
                        "{} under way{}",
                        e.action.as_str(),
                        e.process
                            .as_ref()
                            .map_or(String::new(), |p| format!(" ({p})"))
                    );
                } else {
                    state = match e.action {
                        Action::Run => State::Interrupted,
                        Action::Rollback => State::RollbackIncomplete,
                    };
                    summary = format!(
                        "{} interrupted: {} is gone",
                        e.action.as_str(),
                        e.process
                            .as_ref()
                            .map_or("its process".to_owned(), |p| format!(
                                "pid {} on {}",
                                p.pid, p.host
                            ))
                    );
                }
            }
            if state == State::Passed {
                let checks = recheck_entry(&cx, e, Depth::Quick).await;
                holds = if checks.iter().any(|c| !c.passed && !c.unverified) {
                    Some(false)
                } else if checks.iter().any(|c| c.unverified) {
                    None
                } else {
                    Some(true)
                };
                recheck = checks.into_iter().filter(|c| !c.passed).collect();
            }
        }
        phases.push(PhaseStatus {
            phase: phase.number(),
            name: phase.name().to_owned(),
            state,
            when: entry.map(|e| {
                e.finished_at
                    .unwrap_or(e.started_at)
                    .format("%Y-%m-%d %H:%M:%SZ")
                    .to_string()
            }),
            gate: entry.and_then(|e| e.gate_passed),
            summary,
            forced_reason: entry.and_then(|e| e.forced_reason.clone()),
            holds,
            recheck,
        });
    }
    let next = next_step(&phases, &lock);
    Ok(StatusReport {
        state_dir: config.state_dir.clone(),
        ledger: ledger.path().to_path_buf(),
        lock,
        sqlite: sqlite_version(config).await,
        postgres: postgres_version(config).await,
        phases,
        interrupted,
        incomplete_backups: checks::incomplete_backups(&config.state_dir, &BACKUP_LABELS),
        sync: crate::sync::lag_status(config).await,
        next,
    })
}

impl PhaseStatus {
    /// The state in words, with what the quick recheck found for a passed gate.
    pub fn state_text(&self) -> String {
        match (self.state, self.holds) {
            (State::Passed, Some(false)) => "passed, NO LONGER HOLDS".into(),
            (State::Passed, None) => "passed (unverified)".into(),
            (state, _) => state.as_str().into(),
        }
    }
}

impl StatusReport {
    pub fn table(&self) -> Table {
        let mut table = Table::new(["phase", "name", "state", "when", "gate", "evidence"]);
        for p in &self.phases {
            let gate = match p.gate {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "-",
            };
            let mut summary = p.summary.clone();
            if let Some(reason) = &p.forced_reason {
                summary.push_str(&format!(" (forced: {reason})"));
            }
            for c in &p.recheck {
                summary.push_str(&format!("; now {}: {}", c.name, c.detail));
            }
            table.row([
                p.phase.to_string(),
                p.name.clone(),
                p.state_text(),
                p.when.clone().unwrap_or_else(|| "-".into()),
                gate.to_owned(),
                summary,
            ]);
        }
        table
    }
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.table())?;
        for db in [&self.sqlite, &self.postgres] {
            match db.current {
                Some(v) => writeln!(
                    f,
                    "schema {}: version {v} of {} {}",
                    db.database, db.head, db.note
                )?,
                None => writeln!(f, "schema {}: {}", db.database, db.note)?,
            }
        }
        for run in &self.interrupted {
            let left = if run.left_behind.is_empty() {
                "nothing found".to_owned()
            } else {
                run.left_behind.join(", ")
            };
            writeln!(
                f,
                "interrupted: {} of phase {} started {}{}; it left: {left}",
                run.action.as_str(),
                run.phase,
                run.started_at.format("%Y-%m-%d %H:%M:%SZ"),
                run.process.as_ref().map_or(String::new(), |p| format!(
                    " by pid {} on {}",
                    p.pid, p.host
                )),
            )?;
        }
        if let Some(sync) = &self.sync {
            writeln!(f, "{sync}")?;
        }
        for dir in &self.incomplete_backups {
            writeln!(f, "incomplete backup (no manifest): {}", dir.display())?;
        }
        match &self.lock {
            LockState::Free => {}
            LockState::Held(Some(h)) => writeln!(f, "lock: held by {h}")?,
            LockState::Held(None) => writeln!(f, "lock: held by another ferry process")?,
            LockState::Stale(h) => writeln!(
                f,
                "lock: left by {h}, whose process is gone; the next run takes it over"
            )?,
        }
        writeln!(f, "ledger: {}", self.ledger.display())?;
        write!(f, "next: {}", self.next)
    }
}

fn next_step(phases: &[PhaseStatus], lock: &LockState) -> String {
    for p in phases {
        let Ok(phase) = Phase::try_from(p.phase) else {
            continue;
        };
        if !phase.is_built() {
            return format!(
                "phases 1 to {} are done; {} is not built yet",
                p.phase - 1,
                phase
            );
        }
        let n = p.phase;
        match p.state {
            State::Passed if p.holds == Some(false) => {
                return format!(
                    "{phase} passed but its evidence no longer holds: `cargo xtask phase {n} --rerun`, or `cargo xtask rollback --to {}`",
                    n - 1
                )
            }
            State::Passed => continue,
            State::NotRun | State::RolledBack => return format!("cargo xtask phase {n}"),
            State::InProgress => {
                return match lock {
                    LockState::Held(Some(h)) => format!("wait for {h} to finish"),
                    _ => format!("wait for {phase} to finish"),
                }
            }
            State::Interrupted => {
                return format!(
                    "{phase} was interrupted: `cargo xtask phase {n}` finishes it, or `cargo xtask rollback --to {}` undoes what it left",
                    n - 1
                )
            }
            State::RollbackIncomplete => {
                return format!(
                    "the rollback of {phase} did not finish or did not verify: read its report, fix the cause, then `cargo xtask rollback --to {}` again",
                    n - 1
                )
            }
            State::Failed => {
                return format!(
                    "{phase} did not pass: read its report, fix the cause, then `cargo xtask phase {n}` (or `cargo xtask rollback --to {}`)",
                    n - 1
                )
            }
            State::Error => {
                return format!(
                    "{phase} stopped on an error (its line above says which): fix the cause, then `cargo xtask phase {n}` (or `cargo xtask rollback --to {}`)",
                    n - 1
                )
            }
        }
    }
    "every phase has passed".into()
}

async fn sqlite_version(config: &Config) -> DatabaseVersion {
    let head =
        ferry_schema::MigrationSet::from_embedded(ferry_migrations::SQLITE).map_or(0, |s| s.head());
    let path = &config.sqlite.path;
    let database = path.display().to_string();
    if !path.is_file() {
        return DatabaseVersion {
            database,
            current: None,
            head,
            note: "does not exist yet".into(),
        };
    }
    match ferry_schema::Database::open_sqlite(path).await {
        Ok(mut db) => {
            let res = ferry_schema::read_ledger(&mut db).await;
            db.close().await;
            match res {
                Ok(rows) => DatabaseVersion {
                    database,
                    current: Some(rows.iter().map(|r| r.version).max().unwrap_or(0)),
                    head,
                    note: String::new(),
                },
                Err(e) => DatabaseVersion {
                    database,
                    current: None,
                    head,
                    note: e.to_string(),
                },
            }
        }
        Err(e) => DatabaseVersion {
            database,
            current: None,
            head,
            note: e.to_string(),
        },
    }
}

async fn postgres_version(config: &Config) -> DatabaseVersion {
    let head = ferry_schema::MigrationSet::from_embedded(ferry_migrations::POSTGRES)
        .map_or(0, |s| s.head());
    let database = format!("\"{}\" on {}", config.postgres.schema, config.postgres.url);
    let connect = ferry_schema::Database::connect(
        config.postgres.url.expose(),
        Some(&config.postgres.schema),
    );
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(mut db)) => {
            let res = ferry_schema::read_ledger(&mut db).await;
            db.close().await;
            match res {
                Ok(rows) => DatabaseVersion {
                    database,
                    current: Some(rows.iter().map(|r| r.version).max().unwrap_or(0)),
                    head,
                    note: String::new(),
                },
                Err(e) => DatabaseVersion {
                    database,
                    current: None,
                    head,
                    note: e.to_string(),
                },
            }
        }
        Ok(Err(e)) => DatabaseVersion {
            database,
            current: None,
            head,
            note: format!("unreachable: {e}"),
        },
        Err(_) => DatabaseVersion {
            database,
            current: None,
            head,
            note: "unreachable: no answer within 5 s".into(),
        },
    }
}
