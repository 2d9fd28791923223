//! The runner's rules: a phase runs only when the gate before it passed and its evidence
//! still holds; `--force --reason` overrides and is recorded; a passed phase is not re-run
//! without `--rerun`; rollback undoes phases newest first and verifies each step.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use ferry_core::config::Config;
use ferry_core::table::Table;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::PhaseError;
use crate::gate::{all_passed, Check, GateReport};
use crate::ledger::{self, Action, Entry, Ledger, Outcome, State};
use crate::phase::Phase;
use crate::{foundation, import, load};

/// How to run a phase.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run even though the previous gate did not pass (or its evidence no longer holds),
    /// or a later phase passed. Needs a reason.
    pub force_reason: Option<String>,
    /// Run again a phase whose gate already passed.
    pub rerun: bool,
    /// Phase 3: rows the transfer rejects are accepted, for this reason (recorded).
    pub acknowledge_rejects: Option<String>,
}

/// How to roll back.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Rolling back phase 1 also restores the file store from the phase-1 backup when it
    /// changed since (files that appeared or changed are moved aside, never deleted).
    pub restore_store: bool,
}

/// What `run` did.
#[derive(Debug, Clone)]
pub enum RunResult {
    /// The phase had already passed and `--rerun` was not given: nothing ran.
    AlreadyPassed(Box<Entry>),
    /// The phase ran; the report says whether its gate passed.
    Ran {
        report: Box<GateReport>,
        report_path: PathBuf,
    },
}

/// What one phase does when it runs, when its evidence is rechecked, and when it is undone.
pub(crate) struct Ctx<'a> {
    pub config: &'a Config,
    /// Filled as the phase goes, so even a run that stops on an error records what it did
    /// (a backup taken, a file created) for its rollback.
    pub evidence: Map<String, Value>,
}

/// A phase's result: its gate checks and a one-line summary.
pub(crate) struct PhaseResult {
    pub checks: Vec<Check>,
    pub summary: String,
    /// A longer text for people, shown before the gate's checks.
    pub details: String,
}

/// The phase runner of one migration (one config, one state dir).
#[derive(Debug, Clone)]
pub struct Runner {
    config: Config,
    ledger: Ledger,
}

impl Runner {
    pub fn new(config: Config) -> Self {
        let ledger = Ledger::new(&config.state_dir, &config.sqlite.path);
        Self { config, ledger }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Runs `phase` under the runner's rules and records the run and its gate verdict.
    pub async fn run(&self, phase: Phase, options: &RunOptions) -> Result<RunResult, PhaseError> {
        if options
            .force_reason
            .as_deref()
            .is_some_and(|r| r.trim().is_empty())
        {
            return Err(PhaseError::ForceWithoutReason);
        }
        let forced = options.force_reason.is_some();
        let entries = self.ledger.entries()?;

        let (own_state, own_entry) = ledger::state_of(&entries, phase);
        if own_state == State::Passed && !options.rerun && !forced {
            return Ok(RunResult::AlreadyPassed(Box::new(
                own_entry.cloned().expect("a passed phase has an entry"),
            )));
        }
        for later in Phase::ALL.iter().copied().filter(|p| *p > phase) {
            if ledger::state_of(&entries, later).0 == State::Passed && !forced {
                return Err(PhaseError::LaterPhasePassed {
                    phase,
                    later,
                    to: phase.number() - 1,
                });
            }
        }
        let mut override_note = None;
        if let Some(previous) = phase.previous() {
            let why = match ledger::state_of(&entries, previous) {
                (State::Passed, Some(entry)) => {
                    let checks = self.recheck(previous, &entry.evidence).await;
                    let failed: Vec<String> = checks
                        .iter()
                        .filter(|c| !c.passed)
                        .map(|c| format!("{}: {}", c.name, c.detail))
                        .collect();
                    (!failed.is_empty()).then(|| {
                        format!(
                            "passed, but its evidence no longer holds ({})",
                            failed.join("; ")
                        )
                    })
                }
                (state, _) => Some(format!("has not passed (it is {})", state.as_str())),
            };
            if let Some(why) = why {
                if !forced {
                    return Err(PhaseError::GateNotPassed {
                        phase,
                        previous,
                        why,
                    });
                }
                tracing::warn!("{phase} forced although the gate of {previous} {why}");
                override_note = Some(format!("gate of {previous} {why}"));
            }
        }

        let started_at = Utc::now();
        let mut ctx = Ctx {
            config: &self.config,
            evidence: Map::new(),
        };
        if let Some(note) = &override_note {
            ctx.evidence.insert("forced_over".into(), json!(note));
        }
        if let Some(reason) = options
            .acknowledge_rejects
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            ctx.evidence
                .insert("rejects_acknowledged".into(), json!(reason));
        }
        // The gate rules above apply to every phase; only then is an unbuilt one refused
        // (and the attempt recorded, with its --force reason).
        let result = match phase {
            _ if !phase.is_built() => Err(PhaseError::NotBuilt { phase }),
            Phase::Foundation => foundation::run(&mut ctx).await,
            Phase::Import => import::run(&mut ctx).await,
            Phase::Load => load::run(&mut ctx).await,
            Phase::Sync | Phase::SignOff => Err(PhaseError::NotBuilt { phase }),
        };
        let evidence = Value::Object(ctx.evidence);
        let run_id = ledger::new_run_id(phase, Action::Run);
        match result {
            Err(err) => {
                let mut evidence = evidence;
                evidence["error"] = json!(ferry_core::redact::redact(&err.to_string()));
                self.ledger
                    .append(Entry {
                        run_id,
                        phase,
                        action: Action::Run,
                        started_at,
                        finished_at: Utc::now(),
                        outcome: Outcome::Error,
                        gate_passed: None,
                        summary: "stopped on an error".into(),
                        evidence,
                        ferry_version: ferry_core::FERRY_VERSION.into(),
                        config_digest: scope_digest(&self.config),
                        forced_reason: options.force_reason.clone(),
                    })
                    .await?;
                Err(err)
            }
            Ok(PhaseResult {
                checks,
                summary,
                details,
            }) => {
                let passed = all_passed(&checks);
                let mut report = GateReport {
                    phase,
                    kind: "gate".into(),
                    passed,
                    details,
                    checks,
                    evidence,
                    generated_at: Utc::now(),
                    ferry_version: ferry_core::FERRY_VERSION.into(),
                };
                let report_path = report.save(&self.config.state_dir).map_err(|e| {
                    PhaseError::failed(
                        format!(
                            "writing the gate report under {}",
                            self.config.state_dir.display()
                        ),
                        e,
                    )
                })?;
                report.evidence["report"] = json!(report_path);
                self.ledger
                    .append(Entry {
                        run_id,
                        phase,
                        action: Action::Run,
                        started_at,
                        finished_at: Utc::now(),
                        outcome: if passed {
                            Outcome::Passed
                        } else {
                            Outcome::Failed
                        },
                        gate_passed: Some(passed),
                        summary,
                        evidence: report.evidence.clone(),
                        ferry_version: ferry_core::FERRY_VERSION.into(),
                        config_digest: scope_digest(&self.config),
                        forced_reason: options.force_reason.clone(),
                    })
                    .await?;
                Ok(RunResult::Ran {
                    report: Box::new(report),
                    report_path,
                })
            }
        }
    }

    /// Re-checks that what a passed gate vouched for still holds.
    pub async fn recheck(&self, phase: Phase, evidence: &Value) -> Vec<Check> {
        let mut checks = vec![Check::new(
            "same migration",
            evidence_scope(evidence).is_none_or(|d| d == scope_digest(&self.config)),
            "store, SQLite file, state dir and PostgreSQL target are the ones the gate saw",
        )];
        checks.extend(match phase {
            Phase::Foundation => foundation::recheck(&self.config, evidence).await,
            Phase::Import => import::recheck(&self.config, evidence).await,
            Phase::Load => load::recheck(&self.config, evidence).await,
            Phase::Sync | Phase::SignOff => Vec::new(),
        });
        checks
    }

    /// Undoes phases newest first down to the state after phase `to`, verifying and
    /// recording each. Stops at the first rollback whose verification fails.
    pub async fn rollback(
        &self,
        to: u8,
        options: &RollbackOptions,
    ) -> Result<Vec<GateReport>, PhaseError> {
        if to > 4 {
            return Err(PhaseError::BadRollbackTarget(to));
        }
        let mut reports = Vec::new();
        for phase in Phase::ALL.iter().rev().copied().filter(|p| p.number() > to) {
            let entries = self.ledger.entries()?;
            let (state, _) = ledger::state_of(&entries, phase);
            if !state.needs_rollback() {
                continue;
            }
            let evidence =
                ledger::latest_run(&entries, phase).map_or(Value::Null, |e| e.evidence.clone());
            let started_at = Utc::now();
            let result = match phase {
                Phase::Foundation => foundation::rollback(&self.config, &evidence, options).await,
                Phase::Import => import::rollback(&self.config, &evidence).await,
                Phase::Load => load::rollback(&self.config, &evidence).await,
                Phase::Sync | Phase::SignOff => Err(PhaseError::NotBuilt { phase }),
            };
            let (checks, rollback_evidence) = match result {
                Ok(r) => r,
                Err(err) => {
                    self.ledger
                        .append(Entry {
                            run_id: ledger::new_run_id(phase, Action::Rollback),
                            phase,
                            action: Action::Rollback,
                            started_at,
                            finished_at: Utc::now(),
                            outcome: Outcome::Error,
                            gate_passed: None,
                            summary: "rollback stopped on an error".into(),
                            evidence: json!({ "error": ferry_core::redact::redact(&err.to_string()) }),
                            ferry_version: ferry_core::FERRY_VERSION.into(),
                            config_digest: scope_digest(&self.config),
                            forced_reason: None,
                        })
                        .await?;
                    return Err(err);
                }
            };
            let passed = all_passed(&checks);
            let mut report = GateReport {
                phase,
                kind: "rollback".into(),
                passed,
                details: String::new(),
                checks,
                evidence: rollback_evidence,
                generated_at: Utc::now(),
                ferry_version: ferry_core::FERRY_VERSION.into(),
            };
            let path = report
                .save(&self.config.state_dir)
                .map_err(|e| PhaseError::failed("writing the rollback report", e))?;
            report.evidence["report"] = json!(path);
            self.ledger
                .append(Entry {
                    run_id: ledger::new_run_id(phase, Action::Rollback),
                    phase,
                    action: Action::Rollback,
                    started_at,
                    finished_at: Utc::now(),
                    outcome: if passed {
                        Outcome::RolledBack
                    } else {
                        Outcome::Failed
                    },
                    gate_passed: Some(passed),
                    summary: if passed {
                        "undone and verified".into()
                    } else {
                        "undone, verification found differences".into()
                    },
                    evidence: report.evidence.clone(),
                    ferry_version: ferry_core::FERRY_VERSION.into(),
                    config_digest: scope_digest(&self.config),
                    forced_reason: None,
                })
                .await?;
            reports.push(report);
            if !passed {
                break;
            }
        }
        Ok(reports)
    }

    /// Where the migration stands: each phase, the schema version of each database, and
    /// what to run next.
    pub async fn status(&self) -> Result<StatusReport, PhaseError> {
        let entries = self.ledger.entries()?;
        let mut phases = Vec::new();
        for phase in Phase::ALL {
            let (state, entry) = ledger::state_of(&entries, phase);
            phases.push(PhaseStatus {
                phase: phase.number(),
                name: phase.name().to_owned(),
                state,
                when: entry.map(|e| e.finished_at.format("%Y-%m-%d %H:%M:%SZ").to_string()),
                gate: entry.and_then(|e| e.gate_passed),
                summary: if phase.is_built() {
                    entry.map(|e| e.summary.clone()).unwrap_or_default()
                } else {
                    "not built yet".into()
                },
                forced_reason: entry.and_then(|e| e.forced_reason.clone()),
            });
        }
        let next = next_step(&phases);
        Ok(StatusReport {
            state_dir: self.config.state_dir.clone(),
            ledger: self.ledger.path().to_path_buf(),
            sqlite: sqlite_version(&self.config).await,
            postgres: postgres_version(&self.config).await,
            phases,
            next,
        })
    }
}

/// The digest of what identifies a migration: store, SQLite file, state dir, PostgreSQL
/// target (password masked). A gate's evidence holds only for the same migration.
pub fn scope_digest(config: &Config) -> String {
    use sha2::{Digest, Sha256};
    let scope = json!({
        "store_dir": config.source.store_dir,
        "sqlite": config.sqlite.path,
        "state_dir": config.state_dir,
        "postgres": config.postgres.url.redacted(),
        "schema": config.postgres.schema,
    });
    hex::encode(Sha256::digest(scope.to_string().as_bytes()))
}

fn evidence_scope(evidence: &Value) -> Option<&str> {
    evidence.get("scope_digest").and_then(Value::as_str)
}

/// `status` for people and machines.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state_dir: PathBuf,
    pub ledger: PathBuf,
    pub sqlite: DatabaseVersion,
    pub postgres: DatabaseVersion,
    pub phases: Vec<PhaseStatus>,
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
}

/// The schema version of one database, or why it is not known.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseVersion {
    pub database: String,
    pub current: Option<i64>,
    pub head: i64,
    pub note: String,
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
            table.row([
                p.phase.to_string(),
                p.name.clone(),
                p.state.as_str().to_owned(),
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
        writeln!(f, "ledger: {}", self.ledger.display())?;
        write!(f, "next: {}", self.next)
    }
}

fn next_step(phases: &[PhaseStatus]) -> String {
    for p in phases {
        let phase = Phase::try_from(p.phase).expect("phase numbers are valid");
        if !phase.is_built() {
            return format!(
                "phases 1 to {} are done; {} is not built yet",
                p.phase - 1,
                phase
            );
        }
        match p.state {
            State::Passed => continue,
            State::NotRun | State::RolledBack => return format!("cargo xtask phase {}", p.phase),
            State::Failed | State::Error => {
                return format!(
                    "{} did not pass: read its report, fix the cause, then `cargo xtask phase {} --rerun` (or `cargo xtask rollback --to {}`)",
                    phase,
                    p.phase,
                    p.phase - 1
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
    if !path.exists() {
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
                Ok(rows) if rows.is_empty() => DatabaseVersion {
                    database,
                    current: Some(0),
                    head,
                    note: String::new(),
                },
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
