//! The runner's rules: one action per state dir at a time (the lock); a `started` ledger
//! entry before any work; a phase runs only when the gate before it passed and its evidence
//! still holds; `--force --reason` overrides and is recorded; a passed phase is not re-run
//! without `--rerun`; pre-phase facts are taken once per attempt chain; rollback undoes
//! phases newest first and verifies each step, and a rollback that does not verify leaves
//! the phase "rollback incomplete", never "passed".

use std::path::PathBuf;

use chrono::Utc;
use ferry_core::config::Config;
use serde_json::{json, Value};

use crate::error::PhaseError;
use crate::gate::{all_passed, Check, GateReport};
use crate::housekeeping::{self, CreatedDirs};
use crate::ledger::{self, Action, Entry, Housekeeping, Ledger, Outcome, State};
use crate::lock::{StateLock, Wait};
use crate::module::{self, Cx, Depth};
use crate::phase::Phase;

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
    /// Phase 3: what of the SQLite schema could not be carried over (views, triggers,
    /// CHECKs PostgreSQL refuses) is accepted, for this reason (recorded in the target).
    pub acknowledge_schema: Option<String>,
    /// Phase 4: the operator states that the old application no longer writes the file
    /// store (`--writers-stopped`); the cutover checks that no file changes during the drain.
    pub writers_stopped: bool,
    /// Phase 5: the person who signs the report when every check passes (recorded with the
    /// time and the report's sha256).
    pub signed_by: Option<String>,
    /// Phase 5: how long the simulated agents run (default 30 s).
    pub signoff_load: Option<std::time::Duration>,
    /// Phase 5: a person's reason for accepting PostgreSQL slower than the baselines by more
    /// than 10% (recorded in the report the signature covers; nothing else can be accepted).
    pub accept_slower: Option<String>,
    /// What to do when another run holds the state dir.
    pub wait: Wait,
}

/// How to roll back.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Rolling back phase 1 also restores the file store from the phase-1 backup when it
    /// changed since (files that appeared or changed are moved aside, never deleted).
    pub restore_store: bool,
    /// Rolling back phase 4 after its cutover discards what was written to PostgreSQL
    /// since (`--discard-writes-since-cutover`); without it the rollback refuses.
    pub discard_writes_since_cutover: bool,
    /// Rolling back phase 4 after its cutover first writes every row created, changed or
    /// deleted in PostgreSQL since back into the file store (`--export-back`); rolling back
    /// phase 1 then checks the store against what the export left.
    pub export_back: bool,
    /// What to do when another run holds the state dir.
    pub wait: Wait,
}

/// What `rollback --export-back --plan` would do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportPlanReport {
    pub cutover_at: Option<String>,
    /// `export_back.rs`'s plan: files, counts, rejects, tables.
    pub plan: Value,
    /// One line per file: action and path.
    pub lines: Vec<String>,
    pub rejects: usize,
    pub report: Option<PathBuf>,
}

/// What `run` did.
#[derive(Debug, Clone)]
pub enum RunResult {
    /// The phase had already passed (and its evidence still holds at a quick look) and
    /// `--rerun` was not given: nothing ran.
    AlreadyPassed(Box<Entry>),
    /// The phase ran; the report says whether its gate passed.
    Ran {
        report: Box<GateReport>,
        report_path: PathBuf,
    },
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
        if phase == Phase::Sync {
            // The cutover drains what the follower has not applied: it does not wait for
            // a follower that runs until it is stopped.
            if let Ok(crate::lock::LockState::Held(Some(h))) =
                StateLock::inspect(&self.config.state_dir)
            {
                if h.purpose == crate::lock::SYNC_PURPOSE {
                    return Err(PhaseError::failed(
                        "phase 4 (cutover)",
                        format!(
                            "`cargo xtask sync` (pid {} on {}) is following into PostgreSQL from state dir {}; stop it with Ctrl-C first, the cutover drains what it has not applied",
                            h.pid,
                            h.host,
                            self.config.state_dir.display()
                        ),
                    ));
                }
            }
        }
        let lock = StateLock::acquire(
            &self.config.state_dir,
            &format!("phase {}", phase.number()),
            options.wait,
        )
        .await?;
        let created = CreatedDirs::note(&self.config.state_dir);
        let tidied = housekeeping::tidy(&self.config, &self.ledger, &lock).await?;
        let entries = self.ledger.entries()?;
        let cx = Cx {
            config: &self.config,
            entries: &entries,
        };
        let module = module::module(phase);
        let forced_over = match admit(&cx, phase, options).await? {
            Admission::AlreadyPassed(entry) => return Ok(RunResult::AlreadyPassed(entry)),
            Admission::Run { forced_over } => forced_over,
        };

        // Facts are taken once per attempt chain, before its first run creates anything;
        // a rerun (after a failure, a kill or a passed gate) keeps the first run's facts.
        let facts = match ledger::chain_facts(&entries, phase) {
            Some(facts) => facts.clone(),
            None => module.facts(&cx).await?,
        };
        let mut entry = self.new_entry(phase, Action::Run, &lock, facts, tidied);
        entry.forced_over = forced_over;
        entry.forced_reason = options.force_reason.clone();
        self.ledger.put(&entry)?;

        let result = if module.built() {
            module.run(&cx, &self.ledger, options, &mut entry).await
        } else {
            Err(PhaseError::NotBuilt { phase })
        };
        let outcome = match result {
            Err(err) => {
                let text = ferry_core::redact::redact(&err.to_string()).into_owned();
                entry.outcome = Outcome::Error;
                entry.finished_at = Some(Utc::now());
                entry.summary = format!("stopped on an error: {text}");
                entry.error = Some(text);
                self.ledger.put(&entry)?;
                created.remove_empty();
                Err(err)
            }
            Ok(result) => {
                let passed = all_passed(&result.checks);
                let mut report = GateReport {
                    run_id: entry.run_id.clone(),
                    phase,
                    kind: "gate".into(),
                    passed,
                    details: result.details,
                    checks: result.checks,
                    findings: result.findings,
                    evidence: entry.evidence.clone(),
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
                entry.outcome = if passed {
                    Outcome::Passed
                } else {
                    Outcome::Failed
                };
                entry.finished_at = Some(Utc::now());
                entry.gate_passed = Some(passed);
                entry.summary = result.summary;
                entry.report = Some(report_path.clone());
                self.ledger.put(&entry)?;
                Ok(RunResult::Ran {
                    report: Box::new(report),
                    report_path,
                })
            }
        };
        self.ledger.mirror().await;
        lock.release();
        outcome
    }

    /// Re-checks that what the latest passed gate of `phase` vouched for still holds.
    pub async fn recheck(&self, phase: Phase, depth: Depth) -> Result<Vec<Check>, PhaseError> {
        let entries = self.ledger.entries()?;
        let cx = Cx {
            config: &self.config,
            entries: &entries,
        };
        Ok(match ledger::state_of(&entries, phase) {
            (State::Passed, Some(entry)) => recheck_entry(&cx, entry, depth).await,
            (state, _) => vec![Check::new(
                "gate passed",
                false,
                format!("{phase} is {}", state.as_str()),
            )],
        })
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
        if options.export_back && options.restore_store {
            return Err(PhaseError::failed(
                "rollback",
                "--restore-store puts the phase-1 backup of the store back, which would undo what --export-back writes into it; give one of them",
            ));
        }
        let lock = StateLock::acquire(
            &self.config.state_dir,
            &format!("rollback --to {to}"),
            options.wait,
        )
        .await?;
        let mut tidied = Some(housekeeping::tidy(&self.config, &self.ledger, &lock).await?);
        let mut reports = Vec::new();
        for phase in Phase::ALL.iter().rev().copied().filter(|p| p.number() > to) {
            let entries = self.ledger.entries()?;
            let (state, _) = ledger::state_of(&entries, phase);
            if !state.needs_rollback() {
                continue;
            }
            let cx = Cx {
                config: &self.config,
                entries: &entries,
            };
            let facts = ledger::chain_facts(&entries, phase)
                .cloned()
                .unwrap_or(Value::Null);
            let mut entry = self.new_entry(
                phase,
                Action::Rollback,
                &lock,
                facts,
                tidied.take().unwrap_or_default(),
            );
            self.ledger.put(&entry)?;
            let result = module::module(phase)
                .rollback(&cx, &self.ledger, options, &mut entry)
                .await;
            entry.finished_at = Some(Utc::now());
            let (checks, evidence) = match result {
                Ok(r) => r,
                Err(err) => {
                    let text = ferry_core::redact::redact(&err.to_string()).into_owned();
                    entry.outcome = Outcome::Error;
                    entry.summary = if entry.steps.is_empty() {
                        format!("rollback stopped before changing anything: {text}")
                    } else {
                        format!(
                            "rollback incomplete: {}; then it stopped on an error: {text}",
                            entry.steps.join("; ")
                        )
                    };
                    entry.error = Some(text);
                    self.ledger.put(&entry)?;
                    self.ledger.mirror().await;
                    return Err(err);
                }
            };
            let passed = all_passed(&checks);
            let mut report = GateReport {
                run_id: entry.run_id.clone(),
                phase,
                kind: "rollback".into(),
                passed,
                details: String::new(),
                checks,
                findings: Default::default(),
                evidence,
                generated_at: Utc::now(),
                ferry_version: ferry_core::FERRY_VERSION.into(),
            };
            let path = report
                .save(&self.config.state_dir)
                .map_err(|e| PhaseError::failed("writing the rollback report", e))?;
            report.evidence["report"] = json!(path);
            entry.outcome = if passed {
                Outcome::RolledBack
            } else {
                Outcome::Failed
            };
            entry.gate_passed = Some(passed);
            entry.summary = if passed {
                "undone and verified".into()
            } else {
                format!(
                    "rollback incomplete: {}",
                    failures(&report.checks, true).join("; ")
                )
            };
            entry.evidence = report.evidence.clone();
            entry.report = Some(path);
            self.ledger.put(&entry)?;
            reports.push(report);
            if !passed {
                break;
            }
        }
        self.ledger.mirror().await;
        lock.release();
        Ok(reports)
    }

    /// `rollback --export-back --plan`: what the export would write, create and remove, and
    /// which rows it could not render. Takes no lock and changes nothing in the store, the
    /// SQLite file or PostgreSQL (the JSON report goes under `state_dir/reports/`).
    pub async fn export_plan(&self) -> Result<ExportPlanReport, PhaseError> {
        let target = crate::sync::sync_target(&self.config);
        let cut = crate::sync::recorded_cutover(&target)
            .await
            .map_err(|e| PhaseError::failed("planning the export", e))?;
        let Some(cut) = cut else {
            return Ok(ExportPlanReport {
                cutover_at: None,
                plan: json!({"files": [], "counts": {"write": 0, "create": 0, "remove": 0, "unrenderable_rows": 0}}),
                lines: Vec::new(),
                rejects: 0,
                report: None,
            });
        };
        let writes = ferry_sync::pg_writes_since_cutover(&target)
            .await
            .map_err(|e| PhaseError::failed("planning the export", e))?;
        let computed =
            crate::export_back::compute(&self.config, &self.config.sqlite.path, &writes).await?;
        let plan = crate::export_back::plan_json(&computed);
        let mut lines: Vec<String> = computed
            .plan
            .files
            .iter()
            .filter(|f| !f.done)
            .map(|f| {
                format!(
                    "{:<6} {} ({} records)",
                    f.action.as_str(),
                    f.path,
                    f.records
                )
            })
            .collect();
        lines.extend(computed.plan.rejects.iter().map(|r| {
            format!(
                "reject table {} key {}{}: {}",
                r.table,
                r.key,
                r.path
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
                r.reason
            )
        }));
        let mut report = ExportPlanReport {
            cutover_at: Some(cut.at.clone()),
            plan,
            lines,
            rejects: computed.plan.rejects.len(),
            report: None,
        };
        let path = ferry_core::fsutil::report_path(&self.config.state_dir, "export-plan", "json")
            .map_err(|e| PhaseError::failed("writing the export plan", e))?;
        ferry_core::fsutil::write_json(&path, &report)
            .map_err(|e| PhaseError::failed("writing the export plan", e))?;
        report.report = Some(path);
        Ok(report)
    }

    fn new_entry(
        &self,
        phase: Phase,
        action: Action,
        lock: &StateLock,
        facts: Value,
        housekeeping: Housekeeping,
    ) -> Entry {
        Entry {
            run_id: ledger::new_run_id(phase, action),
            phase,
            action,
            started_at: Utc::now(),
            finished_at: None,
            outcome: Outcome::Started,
            gate_passed: None,
            summary: match action {
                Action::Run => "started".into(),
                Action::Rollback => "rollback started".into(),
            },
            process: Some(lock.holder().clone()),
            facts,
            evidence: Value::Null,
            left_behind: Vec::new(),
            steps: Vec::new(),
            report: None,
            error: None,
            forced_over: None,
            forced_reason: None,
            scope_digest: Some(scope_digest(&self.config)),
            housekeeping,
            ferry_version: ferry_core::FERRY_VERSION.into(),
            config_digest: scope_digest(&self.config),
        }
    }

    /// The transfer plan gate 3 passed with, which `cargo xtask sync` follows SQLite
    /// through. Refused, in one sentence, unless phase 3 passed and phase 4 has not.
    pub fn sync_plan(&self) -> Result<ferry_core::plan::TransferPlan, PhaseError> {
        let entries = self.ledger.entries()?;
        match ledger::state_of(&entries, Phase::Load) {
            (State::Passed, _) => {}
            (state, _) => {
                return Err(PhaseError::failed(
                    "sync",
                    format!(
                        "sync follows SQLite into the schema phase 3 loaded, but phase 3 is {}; run `cargo xtask phase 3` first",
                        state.as_str()
                    ),
                ))
            }
        }
        if let (State::Passed, Some(e)) = ledger::state_of(&entries, Phase::Sync) {
            return Err(PhaseError::failed(
                "sync",
                format!(
                    "phase 4 cut over at {}: PostgreSQL is the live store and there is nothing left to follow",
                    e.finished_at.unwrap_or(e.started_at).format("%Y-%m-%d %H:%M:%SZ")
                ),
            ));
        }
        let cx = Cx {
            config: &self.config,
            entries: &entries,
        };
        crate::sync::gate3_plan(&cx)
    }

    /// Where the migration stands: each phase, its evidence re-checked quickly, runs that
    /// are under way or were interrupted, the lock, the schema version of each database,
    /// and what to run next. Reads only; creates nothing.
    pub async fn status(&self) -> Result<crate::status::StatusReport, PhaseError> {
        crate::status::status(&self.config, &self.ledger).await
    }
}

/// What the gate rules say about running `phase` now.
enum Admission {
    /// It passed, its evidence still holds at a quick look, and no rerun was asked for.
    AlreadyPassed(Box<Entry>),
    /// Run it; `forced_over` says which gate `--force` overrode, and why.
    Run { forced_over: Option<String> },
}

/// The runner's rules, applied the same to every phase: a passed phase is not run again
/// without `--rerun` (and not called passed when its evidence no longer holds), nor while a
/// later phase has passed; the gate before it must have passed with its evidence still
/// holding (or the phase's own precondition must hold); `--force` overrides and is noted.
async fn admit(cx: &Cx<'_>, phase: Phase, options: &RunOptions) -> Result<Admission, PhaseError> {
    let entries = cx.entries;
    let forced = options.force_reason.is_some();
    let module = module::module(phase);
    let (own_state, own_entry) = ledger::state_of(entries, phase);
    if let (State::Passed, Some(entry)) = (own_state, own_entry) {
        if !options.rerun && !forced {
            let checks = recheck_entry(cx, entry, Depth::Quick).await;
            let broken = failures(&checks, false);
            if broken.is_empty() {
                return Ok(Admission::AlreadyPassed(Box::new(entry.clone())));
            }
            return Err(PhaseError::NoLongerHolds {
                phase,
                when: when(entry),
                why: broken.join("; "),
                to: phase.number() - 1,
            });
        }
    }
    for later in Phase::ALL.iter().copied().filter(|p| *p > phase) {
        if ledger::state_of(entries, later).0 == State::Passed && !forced {
            return Err(PhaseError::LaterPhasePassed {
                phase,
                later,
                to: phase.number() - 1,
            });
        }
    }
    let mut forced_over = None;
    if let Some(previous) = phase.previous() {
        let why = match ledger::state_of(entries, previous) {
            (State::Passed, Some(entry)) => {
                let checks = match module.precondition(cx, Depth::Full).await {
                    Some(own) => own,
                    None => recheck_entry(cx, entry, Depth::Full).await,
                };
                let broken = failures(&checks, false);
                let unverified = failures(&checks, true);
                if !broken.is_empty() {
                    Some(format!(
                        "passed, but its evidence no longer holds ({})",
                        broken.join("; ")
                    ))
                } else if !unverified.is_empty() {
                    Some(format!(
                        "passed, but its evidence cannot be re-checked now ({})",
                        unverified.join("; ")
                    ))
                } else {
                    None
                }
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
            forced_over = Some(format!("gate of {previous} {why}"));
        }
    }
    Ok(Admission::Run { forced_over })
}

/// Whether what `entry`'s gate vouched for still holds: the same migration, and the
/// phase's own recheck.
pub(crate) async fn recheck_entry(cx: &Cx<'_>, entry: &Entry, depth: Depth) -> Vec<Check> {
    let mut checks = vec![Check::new(
        "same migration",
        entry
            .scope_digest
            .as_deref()
            .is_none_or(|d| d == scope_digest(cx.config)),
        "store, SQLite file, state dir and PostgreSQL target are the ones the gate saw",
    )];
    checks.extend(module::module(entry.phase).recheck(cx, entry, depth).await);
    checks
}

/// The failed checks as `name: detail`; unverified ones count only when `strict`.
pub(crate) fn failures(checks: &[Check], strict: bool) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.passed && (strict || !c.unverified))
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

fn when(entry: &Entry) -> String {
    entry
        .finished_at
        .unwrap_or(entry.started_at)
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string()
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
