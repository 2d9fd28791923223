//! Phase 4, sync and cutover: capture in SQLite (triggers and a change log), the handoff
//! from phase 3's copy, and the cutover: SQLite's writers fenced, the log drained, the file
//! store rescanned through the incremental import, every table compared by digest on both
//! sides, sequences set, the cutover recorded, writers released.
//!
//! The SQLite schema is dumped once per attempt chain before anything is created (ferry's
//! own capture objects left out, in case `cargo xtask sync` installed them earlier), so a
//! rollback before cutover proves the file's schema is as it was. After cutover a rollback
//! refuses, counting what was written to PostgreSQL since, unless
//! `--discard-writes-since-cutover` is given (and recorded).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::config::Config;
use ferry_core::plan::TransferPlan;
use ferry_core::sql::qualified;
use ferry_import::{ImportOptions, Profile};
use ferry_schema::Database;
use ferry_sync::{
    Applier, Cutover, InstallOptions, LagSeries, StoreWatcher, SyncError, SyncOptions, SyncTarget,
};
use ferry_validate::{PgTarget, ValidateOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::PhaseError;
use crate::gate::{Check, Findings};
use crate::load::{self, Load};
use crate::module::{Cx, Depth, PhaseModule, PhaseResult, Recorded, RollbackCx, RunCx};
use crate::phase::Phase;

/// How long a recheck waits for PostgreSQL before calling its checks unverified.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Sync;

/// What was true before phase 4 first ran in this attempt chain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Facts {
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// The SQLite schema dump, ferry's capture objects (`ferry_sync_*`) left out.
    #[serde(default)]
    pub sqlite_schema_before: Option<String>,
    /// Capture was already installed (by `cargo xtask sync`) when the chain began.
    #[serde(default)]
    pub capture_installed_before: bool,
}

/// The cutover as the ledger keeps it (phase 5 reads these names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CutoverEvidence {
    /// RFC 3339.
    pub at: String,
    pub blackout_ms: f64,
    /// The last change-log entry before cutover.
    pub last_seq: i64,
    #[serde(default)]
    pub pg_xid: i64,
}

/// Lag of the changes sync applied (the follower's, and this run's drain).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LagEvidence {
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// One table as gate 4 compared it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TableCompared {
    pub table: String,
    pub source_rows: u64,
    pub target_rows: u64,
    pub verdict: String,
    /// When its digests were compared: `inside the fence`, or `before the fence` (then
    /// unchanged since on both sides: no change-log entry named it, and PostgreSQL has
    /// as many rows and no row version newer than that comparison).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compared: String,
}

/// When a table was compared (see [`TableCompared::compared`]).
const INSIDE: &str = "inside the fence";
const BEFORE: &str = "before the fence, unchanged since";

/// What a run of phase 4 did and found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Evidence {
    /// This run installed capture (a rollback removes it either way).
    #[serde(default)]
    pub capture_installed: bool,
    #[serde(default)]
    pub capture_id: Option<String>,
    /// Rows the handoff's full reconciliation fixed in PostgreSQL, when it ran.
    #[serde(default)]
    pub handoff_rows_fixed: Option<u64>,
    /// The final incremental import of the file store.
    #[serde(default)]
    pub import_report: Option<PathBuf>,
    #[serde(default)]
    pub import_changed_files: u64,
    /// Writers were fenced (SQLite's write lock taken) at this moment.
    #[serde(default)]
    pub fenced_at: Option<String>,
    #[serde(default)]
    pub drained_changes: u64,
    #[serde(default)]
    pub changes_behind: Option<u64>,
    #[serde(default)]
    pub open_rejects: u64,
    #[serde(default)]
    pub rejects_acknowledged: Option<String>,
    #[serde(default)]
    pub sequences_set: u64,
    #[serde(default)]
    pub validation_report: Option<PathBuf>,
    /// Every table compared before the fence (`validate4-before-fence-<time>.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_before_fence: Option<PathBuf>,
    /// How long the comparison before the fence took, and the one inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_before_fence_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_inside_fence_ms: Option<u64>,
    #[serde(default)]
    pub tables: Vec<TableCompared>,
    #[serde(default)]
    pub cutover: Option<CutoverEvidence>,
    /// Path of the lag time series under `state_dir/reports/`.
    #[serde(default)]
    pub lag_series: Option<PathBuf>,
    #[serde(default)]
    pub lag: LagEvidence,
}

impl PhaseModule for Sync {
    const PHASE: Phase = Phase::Sync;
    type Facts = Facts;
    type Evidence = Evidence;

    async fn facts(cx: &Cx<'_>) -> Result<Facts, PhaseError> {
        let sqlite = cx.config.sqlite.path.clone();
        let dump = sqlite_schema(&sqlite).await?;
        Ok(Facts {
            capture_installed_before: dump.contains(ferry_sync::LOG_TABLE),
            sqlite_schema_before: Some(without_capture(&dump)),
            sqlite: Some(sqlite),
        })
    }

    async fn run(run: &mut RunCx<'_, Self>) -> Result<PhaseResult, PhaseError> {
        let config = run.config();
        let store = config.source.store_dir.clone();
        if !run.options.writers_stopped {
            return Err(PhaseError::failed(
                "phase 4 (cutover)",
                format!(
                    "the cutover needs --writers-stopped, stating that the old application no longer writes the file store {} (its SQLite writes are fenced by ferry itself); stop it, then run `phase 4 --writers-stopped`",
                    store.display()
                ),
            ));
        }
        run.evidence.rejects_acknowledged = run
            .options
            .acknowledge_rejects
            .clone()
            .filter(|r| !r.trim().is_empty());
        let plan = gate3_plan(run.cx)?;
        let sqlite = config.sqlite.path.clone();
        let target = sync_target(config);
        if let Some(cut) = recorded_cutover(&target)
            .await
            .map_err(|e| PhaseError::failed("reading the sync state in PostgreSQL", e))?
        {
            // An earlier attempt cut over (and was killed before its gate was recorded,
            // or the phase is run again): PostgreSQL is live; verify, never cut over twice.
            return after_cutover(run, &plan, &target, cut).await;
        }

        // 1. Capture, when `cargo xtask sync` did not install it already.
        let spec = match ferry_sync::verify(&sqlite) {
            Ok(spec) => spec,
            Err(SyncError::NotInstalled { .. }) => {
                run.evidence.capture_installed = true;
                run.checkpoint()?;
                install_capture(config, &plan)?
            }
            Err(e) => return Err(PhaseError::failed("checking capture in SQLite", e)),
        };
        run.evidence.capture_id = Some(spec.capture_id.clone());
        run.checkpoint()?;

        // 2. The file store: take its inventory, then import what changed since phase 2
        //    (the import writes SQLite, so it runs before the fence; the triggers log it).
        let mut watcher = StoreWatcher::new(&store, Duration::from_secs(24 * 3600))
            .map_err(|e| PhaseError::failed("taking the file store's inventory", e))?;
        let report = import_store(config).await?;
        run.evidence.import_changed_files =
            report.totals.new + report.totals.changed + report.totals.disappeared;
        run.evidence.import_report = Some(save(config, "import4", &report)?);
        run.checkpoint()?;

        // 3. The handoff, then catch up before the fence so the blackout is short.
        let mut applier = open_applier(config, &plan).await?;
        if !applier.handoff_done() {
            let full = applier
                .full_pass()
                .await
                .map_err(|e| PhaseError::failed("closing the handoff from phase 3's copy", e))?;
            run.evidence.handoff_rows_fixed = Some(full.rows_fixed);
            run.checkpoint()?;
        }
        applier
            .drain()
            .await
            .map_err(|e| PhaseError::failed("applying the change log", e))?;

        // 4. Every table compared before the fence, PostgreSQL's position noted first: inside
        //    the fence only what may have changed since is compared again, so the blackout
        //    does not grow with the data.
        let marker = pg_marker(&target)
            .await
            .map_err(|e| PhaseError::failed("reading PostgreSQL's snapshot", e))?;
        let started = std::time::Instant::now();
        let before = compare(config, &plan, &target, &[], true).await?;
        run.evidence.compare_before_fence_ms = Some(started.elapsed().as_millis() as u64);
        run.evidence.validation_before_fence =
            Some(save(config, "validate4-before-fence", &before)?);
        run.checkpoint()?;

        // 5. Fence, drain, rescan, compare what changed.
        let fence = applier
            .fence()
            .await
            .map_err(|e| PhaseError::failed("fencing SQLite's writers", e))?;
        run.evidence.fenced_at = Some(fence.acquired_at.clone());
        run.checkpoint()?;
        let inside = fenced_checks(
            run,
            &mut applier,
            &mut watcher,
            &plan,
            &target,
            (&before, &marker, &spec),
        )
        .await;
        let (mut checks, details) = match inside {
            Ok(v) => v,
            Err(e) => {
                let _ = applier.abort_fence(fence).await;
                applier.close().await;
                return Err(e);
            }
        };
        if !crate::gate::all_passed(&checks) {
            let held = applier
                .abort_fence(fence)
                .await
                .map_err(|e| PhaseError::failed("releasing SQLite's writers", e))?;
            applier.close().await;
            checks.push(Check::new(
                "cutover recorded",
                false,
                format!(
                    "not cut over: writers released after {:.0} ms; fix what the checks above name, then run `phase 4 --writers-stopped --rerun` (or `sync --full` first)",
                    held.as_secs_f64() * 1000.0
                ),
            ));
            return Ok(result(run, checks, details));
        }
        run.evidence.sequences_set = match applier.set_sequences().await {
            Ok(n) => n,
            Err(e) => {
                let _ = applier.abort_fence(fence).await;
                return Err(PhaseError::failed("setting the PostgreSQL sequences", e));
            }
        };
        let lag = applier.lag().clone();
        let cut = applier
            .release(fence)
            .await
            .map_err(|e| PhaseError::failed("recording the cutover", e))?;
        applier.close().await;
        run.evidence.cutover = Some(CutoverEvidence {
            at: cut.at.clone(),
            blackout_ms: cut.blackout_ms,
            last_seq: cut.seq,
            pg_xid: cut.pg_xid,
        });
        run.checkpoint()?;
        checks.push(Check::new(
            "cutover recorded",
            cut.drained,
            format!(
                "at {} after change-log entry {}; writers held {:.0} ms; {} sequences set",
                cut.at, cut.seq, cut.blackout_ms, run.evidence.sequences_set
            ),
        ));

        // The lag: the follower's figures (kept in PostgreSQL) and this run's drain.
        let recorded = recorded_lag(config).await.unwrap_or_default();
        let p = |q: f64| lag.quantile_ms(q);
        run.evidence.lag = LagEvidence {
            p50_ms: max_opt(recorded.p50_ms, p(0.5)),
            p99_ms: max_opt(recorded.p99_ms, p(0.99)),
            max_ms: max_opt(recorded.max_ms, lag.max_ms()),
        };
        run.evidence.lag_series = Some(save_series(config, &cut)?);
        run.checkpoint()?;
        Ok(result(run, checks, details))
    }

    /// Quick: the cutover is recorded and nobody writes the old store (SQLite writes after
    /// the cutover are a finding). Full adds capture intact up to the cutover.
    async fn recheck(cx: &Cx<'_>, rec: &Recorded<Self>, depth: Depth) -> Vec<Check> {
        let mut out = Vec::new();
        let Some(cut) = &rec.evidence.cutover else {
            out.push(Check::new(
                "cutover recorded",
                false,
                "gate 4 recorded no cutover",
            ));
            return out;
        };
        let target = sync_target(cx.config);
        match tokio::time::timeout(CONNECT_TIMEOUT, recorded_cutover(&target)).await {
            Ok(Ok(Some(now))) if now.seq == cut.last_seq => out.push(Check::new(
                "cutover recorded",
                true,
                format!("at {} after change-log entry {}", now.at, now.seq),
            )),
            Ok(Ok(Some(now))) => out.push(Check::new(
                "cutover recorded",
                false,
                format!(
                    "PostgreSQL records a cutover after entry {}, gate 4 recorded {}",
                    now.seq, cut.last_seq
                ),
            )),
            Ok(Ok(None)) => out.push(Check::new(
                "cutover recorded",
                false,
                format!(
                    "schema \"{}\" records no cutover (its sync bookkeeping is gone)",
                    target.schema
                ),
            )),
            Ok(Err(e)) => out.push(Check::unverified("cutover recorded", e)),
            Err(_) => out.push(Check::unverified(
                "cutover recorded",
                format!(
                    "PostgreSQL did not answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
            )),
        }
        let sqlite = cx.config.sqlite.path.clone();
        let seq = cut.last_seq;
        let written =
            tokio::task::spawn_blocking(move || ferry_sync::written_after_cutover(&sqlite, seq))
                .await;
        out.push(match written {
            Ok(Ok(0)) => Check::new(
                "no writes to SQLite after cutover",
                true,
                "the old store has not been written since the cutover",
            ),
            Ok(Ok(n)) => Check::new(
                "no writes to SQLite after cutover",
                false,
                format!(
                    "{n} rows were written to SQLite file {} after the cutover: something still writes the old store, and those writes do not reach PostgreSQL",
                    cx.config.sqlite.path.display()
                ),
            ),
            Ok(Err(e)) => Check::new("no writes to SQLite after cutover", false, e.to_string()),
            Err(e) => Check::new("no writes to SQLite after cutover", false, e.to_string()),
        });
        if depth == Depth::Full {
            out.push(capture_intact(&cx.config.sqlite.path).await);
        }
        out
    }

    async fn left_behind(cx: &Cx<'_>, rec: &Recorded<Self>) -> Vec<String> {
        let mut out = Vec::new();
        let sqlite = cx.config.sqlite.path.clone();
        if let Ok(Ok(spec)) = tokio::task::spawn_blocking(move || ferry_sync::verify(&sqlite)).await
        {
            out.push(format!(
                "capture {} installed in {} (triggers and change log)",
                spec.capture_id,
                cx.config.sqlite.path.display()
            ));
        }
        if rec.evidence.fenced_at.is_some() && rec.evidence.cutover.is_none() {
            out.push(
                "writers were fenced; the write lock ended with the process, no cutover recorded"
                    .into(),
            );
        }
        let target = sync_target(cx.config);
        if let Ok(Ok(Some(cut))) =
            tokio::time::timeout(CONNECT_TIMEOUT, recorded_cutover(&target)).await
        {
            out.push(format!(
                "a cutover recorded in PostgreSQL at {} (entry {})",
                cut.at, cut.seq
            ));
        }
        out
    }

    /// Before cutover: removes capture and the log from SQLite and ferry's sync bookkeeping
    /// from PostgreSQL, then proves the SQLite schema equals its pre-phase-4 dump. After
    /// cutover: refuses, counting the rows written to PostgreSQL since, unless
    /// `--discard-writes-since-cutover` was given.
    async fn rollback(rb: &mut RollbackCx<'_, Self>) -> Result<(Vec<Check>, Value), PhaseError> {
        let config = rb.config();
        let sqlite = rb
            .facts
            .sqlite
            .clone()
            .unwrap_or_else(|| config.sqlite.path.clone());
        let target = sync_target(config);
        let mut out = serde_json::Map::new();
        let mut export_checks = Vec::new();
        let cut = recorded_cutover(&target)
            .await
            .map_err(|e| PhaseError::failed("rolling back phase 4", e))?;
        if let Some(cut) = &cut {
            let writes = ferry_sync::pg_writes_since_cutover(&target)
                .await
                .map_err(|e| PhaseError::failed("rolling back phase 4", e))?;
            let total: i64 = writes.iter().map(|w| w.new_or_changed + w.gone).sum();
            let per_table: Vec<String> = writes
                .iter()
                .filter(|w| w.new_or_changed + w.gone > 0)
                .map(|w| format!("{} {}", w.table, w.new_or_changed + w.gone))
                .collect();
            if rb.options.export_back {
                let (checks, evidence) = export_back(rb, &sqlite, cut, &writes).await?;
                out.insert("cutover_at".into(), json!(cut.at));
                out.insert("export_back".into(), evidence);
                if !crate::gate::all_passed(&checks) {
                    // Nothing of the cutover is undone: PostgreSQL keeps every row, and a
                    // rerun exports again.
                    return Ok((checks, Value::Object(out)));
                }
                export_checks = checks;
            } else if !rb.options.discard_writes_since_cutover {
                return Err(PhaseError::failed(
                    "rolling back phase 4",
                    format!(
                        "PostgreSQL is the live store since the cutover at {}, and {total} rows were written to it since{}; {}, so nothing was changed: give --discard-writes-since-cutover to roll back anyway",
                        cut.at,
                        if per_table.is_empty() { String::new() } else { format!(" ({})", per_table.join(", ")) },
                        if total == 0 { "rolling back makes SQLite the live store again" } else { "they would be lost" }
                    ),
                ));
            } else {
                rb.step(format!(
                "discarding {total} rows written to PostgreSQL since the cutover at {} (--discard-writes-since-cutover)",
                cut.at
            ))?;
                out.insert("cutover_at".into(), json!(cut.at));
                out.insert("discarded_writes_since_cutover".into(), json!(total));
                out.insert("discarded_writes".into(), json!(writes));
            }
        }
        rb.step(format!(
            "removing capture (triggers, change log) from {}",
            sqlite.display()
        ))?;
        let path = sqlite.clone();
        let removed = tokio::task::spawn_blocking(move || ferry_sync::uninstall(&path))
            .await
            .map_err(|e| PhaseError::failed("removing capture", e))?
            .map_err(|e| PhaseError::failed("removing capture", e))?;
        out.insert("capture_removed".into(), json!(removed));
        rb.step(format!(
            "dropping ferry's sync bookkeeping in schema \"{}\"",
            target.schema
        ))?;
        ferry_sync::drop_bookkeeping(&target)
            .await
            .map_err(|e| PhaseError::failed("dropping the sync bookkeeping", e))?;

        let mut checks = export_checks;
        let now = sqlite_schema(&sqlite).await?;
        checks.push(match &rb.facts.sqlite_schema_before {
            Some(before) => {
                let diff = ferry_schema::snapshot::line_diff(before, &now);
                Check::new(
                    "SQLite schema equals its pre-phase-4 dump",
                    diff.is_empty(),
                    if diff.is_empty() {
                        format!(
                            "{} has the schema it had before phase 4, capture removed",
                            sqlite.display()
                        )
                    } else {
                        format!(
                            "{} lines differ, first: {}",
                            diff.len(),
                            diff.iter().take(3).cloned().collect::<Vec<_>>().join(" | ")
                        )
                    },
                )
            }
            None => Check::new(
                "SQLite schema equals its pre-phase-4 dump",
                false,
                "the ledger holds no pre-phase-4 dump of the SQLite schema",
            ),
        });
        let left = bookkeeping_tables(config).await?;
        checks.push(Check::new(
            "sync bookkeeping gone from PostgreSQL",
            left.is_empty(),
            if left.is_empty() {
                format!("no ferry_sync_* table in schema \"{}\"", target.schema)
            } else {
                format!("still there: {}", left.join(", "))
            },
        ));
        Ok((checks, Value::Object(out)))
    }

    /// Replaces the recheck of phase 3: once sync applies new writes, gate 3's digests no
    /// longer match, legitimately. What must hold instead: gate 3's plan is readable,
    /// capture (when installed) is intact, and PostgreSQL's sync bookkeeping is readable.
    async fn precondition(cx: &Cx<'_>, _depth: Depth) -> Option<Vec<Check>> {
        let mut out = Vec::new();
        out.push(match gate3_plan(cx) {
            Ok(plan) => Check::new(
                "gate 3's transfer plan readable",
                true,
                format!("{} tables", plan.tables.len()),
            ),
            Err(e) => Check::new("gate 3's transfer plan readable", false, e.to_string()),
        });
        out.push(capture_intact(&cx.config.sqlite.path).await);
        let target = sync_target(cx.config);
        out.push(
            match tokio::time::timeout(CONNECT_TIMEOUT, recorded_cutover(&target)).await {
                Ok(Ok(None)) => Check::new(
                    "PostgreSQL sync bookkeeping readable",
                    true,
                    format!("schema \"{}\": no cutover recorded yet", target.schema),
                ),
                Ok(Ok(Some(cut))) => Check::new(
                    "PostgreSQL sync bookkeeping readable",
                    true,
                    format!("schema \"{}\": cut over at {}", target.schema, cut.at),
                ),
                Ok(Err(e)) => Check::new("PostgreSQL sync bookkeeping readable", false, e),
                Err(_) => Check::unverified(
                    "PostgreSQL sync bookkeeping readable",
                    format!(
                        "PostgreSQL did not answer within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ),
            },
        );
        Some(out)
    }
}

/// What the fence holds: drain, file store unchanged, capture intact, lag 0, rejects,
/// every table equal — compared again inside the fence when the drain named it, when it is
/// followed by digest (no change-log entries tell its changes), or when it differed before
/// the fence; the others were compared `before` the fence and are shown unchanged since on
/// both sides (SQLite: no change-log entry, with capture verified intact; PostgreSQL: as
/// many rows and no row version newer than `marker`).
async fn fenced_checks(
    run: &mut RunCx<'_, Sync>,
    applier: &mut Applier,
    watcher: &mut StoreWatcher,
    plan: &TransferPlan,
    target: &SyncTarget,
    (before, marker, spec): (
        &ferry_validate::ValidationReport,
        &PgMarker,
        &ferry_sync::CaptureSpec,
    ),
) -> Result<(Vec<Check>, String), PhaseError> {
    let config = run.config();
    let mut checks = Vec::new();
    let drained = applier
        .drain()
        .await
        .map_err(|e| PhaseError::failed("draining the change log inside the fence", e))?;
    run.evidence.drained_changes = drained.changes;
    let changed = watcher
        .rescan()
        .map_err(|e| PhaseError::failed("rescanning the file store", e))?;
    if !changed.is_empty() {
        let names: Vec<String> = changed
            .paths
            .iter()
            .take(10)
            .map(|p| p.display().to_string())
            .collect();
        return Err(PhaseError::failed(
            "phase 4 (cutover)",
            format!(
                "{} files of the file store {} changed during the cutover although --writers-stopped was given ({}{}); stop whatever writes them and run phase 4 again",
                changed.paths.len(),
                config.source.store_dir.display(),
                names.join(", "),
                if changed.paths.len() > names.len() { ", …" } else { "" }
            ),
        ));
    }
    checks.push(Check::new(
        "file store unchanged during the cutover",
        true,
        format!(
            "{} files, none changed since the final import",
            watcher.files()
        ),
    ));
    let sqlite = config.sqlite.path.clone();
    checks.push(capture_intact(&sqlite).await);
    let status = applier
        .status()
        .await
        .map_err(|e| PhaseError::failed("reading the sync status", e))?;
    run.evidence.changes_behind = Some(status.changes_behind);
    checks.push(Check::new(
        "change log drained",
        status.changes_behind == 0 && status.cursor >= status.max_seq,
        format!(
            "cursor {} of {}; {} changes applied inside the fence",
            status.cursor, status.max_seq, drained.changes
        ),
    ));
    checks.push(Check::new(
        "lag 0",
        status.changes_behind == 0,
        format!("{} changes behind", status.changes_behind),
    ));
    let rejects = applier
        .open_rejects()
        .await
        .map_err(|e| PhaseError::failed("reading the sync rejects", e))?;
    run.evidence.open_rejects = rejects.len() as u64;
    let acknowledged = run.evidence.rejects_acknowledged.clone();
    checks.push(Check::new(
        "no unacknowledged rejects",
        rejects.is_empty() || acknowledged.is_some(),
        match (rejects.first(), acknowledged) {
            (None, _) => "every change arrived".to_owned(),
            (Some(_), Some(reason)) => format!("{} rejected rows acknowledged: {reason}", rejects.len()),
            (Some(r), None) => format!(
                "{} rejected rows (first: {} key {} column {}: {}); acknowledge with `phase 4 --writers-stopped --rerun --acknowledge-rejects \"reason\"`",
                rejects.len(), r.table, r.key, r.column, r.reason
            ),
        },
    ));
    let started = std::time::Instant::now();
    let mut again: std::collections::BTreeSet<String> = drained.tables.clone();
    for t in &plan.tables {
        let by_digest = !matches!(
            spec.table(&t.source).map(|c| &c.follow),
            Some(ferry_sync::Follow::Triggers { .. })
        );
        if by_digest {
            again.insert(t.source.clone());
        }
    }
    for t in &before.tables {
        if t.verdict.as_str() != "equal" || t.error.is_some() {
            again.insert(t.name().to_owned());
        }
    }
    let again: Vec<String> = again.into_iter().collect();
    let inside = if again.is_empty() {
        None
    } else {
        let v = compare(config, plan, target, &again, false).await?;
        run.evidence.validation_report = Some(save(config, "validate4", &v)?);
        Some(v)
    };
    let untouched: Vec<&ferry_validate::TableReport> = before
        .tables
        .iter()
        .filter(|t| !again.iter().any(|a| a == t.name()))
        .collect();
    let unchanged = pg_unchanged(target, &untouched, marker)
        .await
        .map_err(|e| PhaseError::failed("checking PostgreSQL's untouched tables", e))?;
    run.evidence.compare_inside_fence_ms = Some(started.elapsed().as_millis() as u64);
    checks.push(fenced_tables_check(
        run,
        inside.as_ref(),
        &untouched,
        &unchanged,
    ));
    run.checkpoint()?;
    let details = match &inside {
        Some(v) => format!(
            "compared inside the fence:\n{}\ncompared before the fence:\n{}",
            v.summary_table(),
            before.summary_table()
        ),
        None => format!(
            "compared before the fence (nothing changed since):\n{}",
            before.summary_table()
        ),
    };
    Ok((checks, details))
}

/// ferry-validate through the plan: every table (`tables` empty) or those named, with the
/// constraint checks when `constraints`.
async fn compare(
    config: &Config,
    plan: &TransferPlan,
    target: &SyncTarget,
    tables: &[String],
    constraints: bool,
) -> Result<ferry_validate::ValidationReport, PhaseError> {
    ferry_validate::validate(
        &config.sqlite.path,
        &PgTarget {
            url: target.url.clone(),
            schema: target.schema.clone(),
        },
        Some(plan),
        &ValidateOptions {
            tables: tables.to_vec(),
            timestamps: config.timestamps.clone(),
            progress: true,
            check_constraints: constraints,
            validate_not_valid_foreign_keys: constraints,
            ..ValidateOptions::default()
        },
    )
    .await
    .map_err(|e| PhaseError::failed("comparing SQLite and PostgreSQL", e))
}

/// PostgreSQL's position before the comparison ahead of the fence: the next transaction id
/// and those in progress (32-bit, as `xmin` holds them). A row version written by any
/// transaction the comparison may not have seen has one of them or a newer one as `xmin`.
#[derive(Debug, Clone)]
struct PgMarker {
    xmax: i64,
    in_progress: Vec<i64>,
}

async fn pg_marker(target: &SyncTarget) -> Result<PgMarker, String> {
    let mut conn = pg_connect(target).await?;
    let snap: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| ferry_core::redact::redact(&e.to_string()).into_owned())?;
    let _ = sqlx::Connection::close(conn).await;
    // `xmin:xmax:xip,xip,…`
    let mut parts = snap.split(':');
    let (_, xmax, xip) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    let wrap = |v: i64| v.rem_euclid(1 << 32);
    let xmax = xmax
        .and_then(|x| x.parse::<i64>().ok())
        .ok_or_else(|| format!("PostgreSQL's snapshot {snap:?} is not xmin:xmax:xip"))?;
    Ok(PgMarker {
        xmax: wrap(xmax),
        in_progress: xip
            .split(',')
            .filter_map(|x| x.parse::<i64>().ok())
            .map(wrap)
            .collect(),
    })
}

/// For each table compared before the fence and not again: `(table, rows now, row
/// versions newer than the marker)` in PostgreSQL. One scan of the table, no data read out.
async fn pg_unchanged(
    target: &SyncTarget,
    tables: &[&ferry_validate::TableReport],
    marker: &PgMarker,
) -> Result<Vec<(String, i64, i64)>, String> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pg_connect(target).await?;
    let mut out = Vec::new();
    for t in tables {
        let Some(name) = &t.target else { continue };
        let sql = format!(
            "SELECT count(*), count(*) FILTER (WHERE
                 ((xmin::text::bigint - $1 + 4294967296) % 4294967296) < 2147483648
                 OR xmin::text::bigint = ANY($2))
             FROM {}",
            qualified(&target.schema, name)
        );
        let (rows, newer): (i64, i64) = sqlx::query_as(&sql)
            .bind(marker.xmax)
            .bind(marker.in_progress.as_slice())
            .fetch_one(&mut conn)
            .await
            .map_err(|e| {
                format!(
                    "table {name}: {}",
                    ferry_core::redact::redact(&e.to_string())
                )
            })?;
        out.push((t.name().to_owned(), rows, newer));
    }
    let _ = sqlx::Connection::close(conn).await;
    Ok(out)
}

/// Gate 4's "every table equal" from the cutover's two comparisons; every table's verdict,
/// counts and when it was compared go into the evidence.
fn fenced_tables_check(
    run: &mut RunCx<'_, Sync>,
    inside: Option<&ferry_validate::ValidationReport>,
    untouched: &[&ferry_validate::TableReport],
    unchanged: &[(String, i64, i64)],
) -> Check {
    let mut tables = Vec::new();
    let mut different = Vec::new();
    let mut written = Vec::new();
    if let Some(v) = inside {
        for t in &v.tables {
            tables.push(TableCompared {
                table: t.name().to_owned(),
                source_rows: t.source_rows,
                target_rows: t.target_rows,
                verdict: t.verdict.as_str().to_owned(),
                compared: INSIDE.into(),
            });
            if t.verdict.as_str() != "equal" || t.error.is_some() {
                different.push(format!(
                    "{} ({}: {} rows in SQLite, {} in PostgreSQL)",
                    t.name(),
                    t.verdict.as_str(),
                    t.source_rows,
                    t.target_rows
                ));
            }
        }
    }
    for t in untouched {
        let now = unchanged.iter().find(|(n, _, _)| n == t.name());
        let verdict = match now {
            Some((_, rows, 0)) if *rows >= 0 && *rows as u64 == t.target_rows => "equal",
            Some((_, rows, newer)) => {
                written.push(format!(
                    "{} ({rows} rows, {} before the fence, {newer} row versions written since by something other than sync)",
                    t.name(),
                    t.target_rows
                ));
                "written in PostgreSQL since compared"
            }
            None => {
                written.push(format!("{} (not found in PostgreSQL)", t.name()));
                "not found"
            }
        };
        tables.push(TableCompared {
            table: t.name().to_owned(),
            source_rows: t.source_rows,
            target_rows: t.target_rows,
            verdict: verdict.into(),
            compared: BEFORE.into(),
        });
    }
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    let rows: u64 = tables.iter().map(|t| t.source_rows).sum();
    let n_inside = tables.iter().filter(|t| t.compared == INSIDE).count();
    let n = tables.len();
    run.evidence.tables = tables;
    let errors = inside.map_or(0, |v| v.totals.tables_error);
    let passed = different.is_empty() && written.is_empty() && errors == 0;
    Check::new(
        "every table equal",
        passed,
        if passed {
            format!(
                "all {n} tables equal cell by cell ({rows} rows): {n_inside} compared inside the fence (named by the final drain, or followed by digest), {} before it and unchanged since on both sides",
                n - n_inside
            )
        } else {
            let mut parts = Vec::new();
            if !different.is_empty() {
                parts.push(format!("differ inside the fence: {}", different.join(", ")));
            }
            if !written.is_empty() {
                parts.push(format!(
                    "PostgreSQL written since the comparison before the fence, by something other than sync (only sync writes the target before cutover): {}",
                    written.join(", ")
                ));
            }
            parts.join("; ")
        },
    )
}

/// A rerun after the cutover: the recorded cutover becomes this run's evidence, and the
/// gate checks that SQLite was not written since and that every table is still equal.
async fn after_cutover(
    run: &mut RunCx<'_, Sync>,
    plan: &TransferPlan,
    target: &SyncTarget,
    cut: Cutover,
) -> Result<PhaseResult, PhaseError> {
    let config = run.config();
    run.evidence.capture_id = capture_installed(&config.sqlite.path).await;
    run.evidence.cutover = Some(CutoverEvidence {
        at: cut.at.clone(),
        blackout_ms: cut.blackout_ms,
        last_seq: cut.seq,
        pg_xid: cut.pg_xid,
    });
    run.evidence.lag = recorded_lag(config).await.unwrap_or_default();
    run.evidence.lag_series = Some(save_series(config, &cut)?);
    run.checkpoint()?;
    let mut checks = vec![Check::new(
        "cutover recorded",
        cut.drained,
        format!(
            "by an earlier attempt at {} after change-log entry {}; writers held {:.0} ms",
            cut.at, cut.seq, cut.blackout_ms
        ),
    )];
    let sqlite = config.sqlite.path.clone();
    let seq = cut.seq;
    let written =
        tokio::task::spawn_blocking(move || ferry_sync::written_after_cutover(&sqlite, seq))
            .await
            .map_err(|e| PhaseError::failed("counting writes after cutover", e))?
            .map_err(|e| PhaseError::failed("counting writes after cutover", e))?;
    checks.push(Check::new(
        "no writes to SQLite after cutover",
        written == 0,
        if written == 0 {
            "the old store has not been written since the cutover".to_owned()
        } else {
            format!("{written} rows were written to SQLite after the cutover; they do not reach PostgreSQL")
        },
    ));
    let validation = ferry_validate::validate(
        &config.sqlite.path,
        &PgTarget {
            url: target.url.clone(),
            schema: target.schema.clone(),
        },
        Some(plan),
        &ValidateOptions {
            timestamps: config.timestamps.clone(),
            progress: true,
            ..ValidateOptions::default()
        },
    )
    .await
    .map_err(|e| PhaseError::failed("comparing SQLite and PostgreSQL", e))?;
    run.evidence.validation_report = Some(save(config, "validate4", &validation)?);
    checks.push(tables_check(run, &validation));
    run.checkpoint()?;
    Ok(result(run, checks, validation.summary_table().to_string()))
}

/// Records every table's verdict in the evidence; the check names those that differ.
fn tables_check(run: &mut RunCx<'_, Sync>, validation: &ferry_validate::ValidationReport) -> Check {
    run.evidence.tables = validation
        .tables
        .iter()
        .map(|t| TableCompared {
            table: t.name().to_owned(),
            source_rows: t.source_rows,
            target_rows: t.target_rows,
            verdict: t.verdict.as_str().to_owned(),
            compared: "after the cutover".into(),
        })
        .collect();
    let t = &validation.totals;
    let different: Vec<String> = validation
        .tables
        .iter()
        .filter(|tr| tr.verdict.as_str() != "equal")
        .map(|tr| {
            format!(
                "{} ({}: {} rows in SQLite, {} in PostgreSQL)",
                tr.name(),
                tr.verdict.as_str(),
                tr.source_rows,
                tr.target_rows
            )
        })
        .collect();
    Check::new(
        "every table equal",
        different.is_empty() && t.tables_error == 0,
        if different.is_empty() {
            format!(
                "all {} tables equal cell by cell ({} rows)",
                t.tables, t.source_rows
            )
        } else {
            format!(
                "{} missing, {} extra, {} changed rows in: {}",
                t.missing_rows,
                t.extra_rows,
                t.changed_rows,
                different.join(", ")
            )
        },
    )
}

fn result(run: &RunCx<'_, Sync>, checks: Vec<Check>, details: String) -> PhaseResult {
    let e = &run.evidence;
    let equal = e.tables.iter().filter(|t| t.verdict == "equal").count();
    PhaseResult {
        summary: match &e.cutover {
            Some(c) => format!(
                "cut over at {} (entry {}), writers held {:.0} ms; {equal} of {} tables equal; lag p99 {}",
                c.at,
                c.last_seq,
                c.blackout_ms,
                e.tables.len(),
                e.lag.p99_ms.map_or("-".into(), |v| format!("{v:.0} ms"))
            ),
            None => format!("not cut over; {equal} of {} tables equal", e.tables.len()),
        },
        details,
        checks,
        findings: Findings::default(),
    }
}

/// The transfer plan gate 3 recorded (what sync applies through).
pub(crate) fn gate3_plan(cx: &Cx<'_>) -> Result<TransferPlan, PhaseError> {
    let phase3 = cx
        .latest_run::<Load>()?
        .ok_or_else(|| PhaseError::failed("phase 4", "phase 3 has no run in the ledger"))?;
    let path = phase3.evidence.plan.ok_or_else(|| {
        PhaseError::failed(
            "phase 4",
            "the ledger's phase-3 run recorded no transfer plan",
        )
    })?;
    load::read_plan(&path).map_err(|e| PhaseError::failed("phase 4", e))
}

pub fn sync_target(config: &Config) -> SyncTarget {
    SyncTarget {
        url: config.postgres.url.clone(),
        schema: config.postgres.schema.clone(),
    }
}

pub fn install_capture(
    config: &Config,
    plan: &TransferPlan,
) -> Result<ferry_sync::CaptureSpec, PhaseError> {
    ferry_sync::install(
        &config.sqlite.path,
        plan,
        &InstallOptions {
            digest_max_rows: config.sync.digest_max_rows,
            ..InstallOptions::default()
        },
    )
    .map_err(|e| PhaseError::failed("installing capture in SQLite", e))
}

pub(crate) async fn open_applier(
    config: &Config,
    plan: &TransferPlan,
) -> Result<Applier, PhaseError> {
    Applier::open(
        &config.sqlite.path,
        &sync_target(config),
        plan,
        &SyncOptions::from_config(config),
        true,
    )
    .await
    .map_err(|e| match e {
        SyncError::Busy { schema } => PhaseError::failed(
            "phase 4 (cutover)",
            format!("another ferry sync is following into schema \"{schema}\"; stop it (Ctrl-C) first, the cutover drains what it has not applied"),
        ),
        e => PhaseError::failed("opening sync", e),
    })
}

/// The file store's changes since phase 2, through ferry-import's incremental path (same
/// profile, ledger and quarantine).
pub async fn import_store(config: &Config) -> Result<ferry_import::ImportReport, PhaseError> {
    let profile = Profile::from_setting(&config.import.profile)
        .map_err(|e| PhaseError::failed("loading the import profile", e))?;
    let mut options = ImportOptions::from_config(config);
    options.workers = config.import.workers;
    ferry_import::import_file(
        &config.source.store_dir,
        &config.sqlite.path,
        &profile,
        &options,
    )
    .await
    .map_err(|e| {
        PhaseError::failed(
            format!(
                "importing the changes of {}",
                config.source.store_dir.display()
            ),
            e,
        )
    })
}

/// The capture id when capture is installed in the SQLite file (intact or not).
pub(crate) async fn capture_installed(sqlite: &Path) -> Option<String> {
    let path = sqlite.to_owned();
    match tokio::task::spawn_blocking(move || ferry_sync::verify(&path)).await {
        Ok(Ok(spec)) => Some(spec.capture_id),
        Ok(Err(SyncError::NotInstalled { .. })) | Err(_) => None,
        Ok(Err(SyncError::Sqlite { .. })) => None,
        Ok(Err(_)) => Some("(changed since install)".into()),
    }
}

async fn capture_intact(sqlite: &Path) -> Check {
    let path = sqlite.to_owned();
    let name = "capture triggers intact";
    match tokio::task::spawn_blocking(move || ferry_sync::verify(&path)).await {
        Ok(Ok(spec)) => Check::new(
            name,
            true,
            format!(
                "capture {}: {} tables followed, every trigger as installed",
                spec.capture_id,
                spec.tables.len()
            ),
        ),
        Ok(Err(SyncError::NotInstalled { .. })) => Check::new(
            name,
            true,
            format!(
                "capture is not installed in {} yet (phase 4 installs it)",
                sqlite.display()
            ),
        ),
        Ok(Err(e)) => Check::new(name, false, e.to_string()),
        Err(e) => Check::new(name, false, e.to_string()),
    }
}

/// The cutover PostgreSQL records (`ferry_sync_state.cutover`), `None` when there is none
/// or no sync bookkeeping. Errors are one sentence, password masked.
pub(crate) async fn recorded_cutover(target: &SyncTarget) -> Result<Option<Cutover>, String> {
    let mut conn = pg_connect(target).await?;
    let state = qualified(&target.schema, ferry_sync::STATE_TABLE);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&state)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| ferry_core::redact::redact(&e.to_string()).into_owned())?;
    let res = if exists {
        sqlx::query_scalar::<_, Option<sqlx::types::Json<Cutover>>>(&format!(
            "SELECT cutover FROM {state} WHERE id = 1"
        ))
        .fetch_optional(&mut conn)
        .await
        .map(|r| r.flatten().map(|j| j.0))
        .map_err(|e| ferry_core::redact::redact(&e.to_string()).into_owned())
    } else {
        Ok(None)
    };
    let _ = sqlx::Connection::close(conn).await;
    res
}

async fn recorded_lag(config: &Config) -> Result<LagEvidence, String> {
    let target = sync_target(config);
    let mut conn = pg_connect(&target).await?;
    let row: Option<(Option<f64>, Option<f64>, Option<f64>)> = sqlx::query_as(&format!(
        "SELECT lag_p50_ms, lag_p99_ms, lag_max_ms FROM {} WHERE id = 1",
        qualified(&target.schema, ferry_sync::STATE_TABLE)
    ))
    .fetch_optional(&mut conn)
    .await
    .map_err(|e| ferry_core::redact::redact(&e.to_string()).into_owned())?;
    let _ = sqlx::Connection::close(conn).await;
    let (p50_ms, p99_ms, max_ms) = row.unwrap_or_default();
    Ok(LagEvidence {
        p50_ms,
        p99_ms,
        max_ms,
    })
}

pub(crate) async fn pg_connect(target: &SyncTarget) -> Result<sqlx::PgConnection, String> {
    <sqlx::PgConnection as sqlx::Connection>::connect(target.url.expose())
        .await
        .map_err(|e| {
            format!(
                "cannot connect to PostgreSQL {}: {}",
                target.url,
                ferry_core::redact::redact(&e.to_string())
            )
        })
}

async fn bookkeeping_tables(config: &Config) -> Result<Vec<String>, PhaseError> {
    let target = sync_target(config);
    let mut conn = pg_connect(&target)
        .await
        .map_err(|e| PhaseError::failed("rolling back phase 4", e))?;
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'ferry\\_sync\\_%'",
    )
    .bind(&target.schema)
    .fetch_all(&mut conn)
    .await
    .map_err(|e| PhaseError::failed("listing ferry's sync tables", e))?;
    let _ = sqlx::Connection::close(conn).await;
    Ok(left)
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The lag series for the sign-off: every point the follower saved under
/// `state_dir/reports/` (`sync-lag-*.json`), oldest first, ending at the cutover.
fn save_series(config: &Config, cut: &Cutover) -> Result<PathBuf, PhaseError> {
    let reports = config.state_dir.join("reports");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&reports)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("sync-lag-") && n.ends_with(".json"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut runs = Vec::new();
    // One time line for the sign-off's chart: each follower run after the one before, then
    // the cutover itself, where the drain left `seq - cursor` changes behind (0 when drained).
    let mut points = Vec::new();
    let mut offset = 0.0;
    for f in &files {
        if let Ok(series) =
            serde_json::from_slice::<LagSeries>(&std::fs::read(f).unwrap_or_default())
        {
            let mut end = offset;
            for p in &series.points {
                end = offset + p.t;
                points.push(json!({
                    "t": end,
                    "changes_behind": p.changes_behind,
                    "seconds_behind": p.seconds_behind,
                }));
            }
            offset = end;
            runs.push(json!({ "file": f, "series": series }));
        }
    }
    points.push(json!({
        "t": offset,
        "changes_behind": (cut.seq - cut.cursor).max(0),
        "seconds_behind": 0.0,
        "at_cutover": true,
    }));
    save(
        config,
        "lag4",
        &json!({
            "cutover_at": cut.at,
            "blackout_ms": cut.blackout_ms,
            "last_seq": cut.seq,
            "follower_runs": runs,
            "points": points,
        }),
    )
}

/// The SQLite schema dump (the file must exist).
async fn sqlite_schema(path: &Path) -> Result<String, PhaseError> {
    let url = format!("sqlite://{}", path.display());
    let mut db = Database::connect_existing(&url, None)
        .await
        .map_err(|e| PhaseError::failed(format!("opening {}", path.display()), e))?;
    let dump = ferry_schema::dump(&mut db)
        .await
        .map_err(|e| PhaseError::failed(format!("dumping the schema of {}", path.display()), e));
    db.close().await;
    dump
}

/// The dump without ferry's capture objects (`ferry_sync_*` tables and triggers).
pub(crate) fn without_capture(dump: &str) -> String {
    ferry_schema::dump::without_prefixed(dump, ferry_sync::OBJECT_PREFIX).0
}

fn save<T: Serialize>(config: &Config, name: &str, value: &T) -> Result<PathBuf, PhaseError> {
    ferry_core::fsutil::report_path(&config.state_dir, name, "json")
        .and_then(|p| ferry_core::fsutil::write_json(&p, value).map(|()| p))
        .map_err(|e| {
            PhaseError::failed(
                format!(
                    "writing a {name} report under {}",
                    config.state_dir.display()
                ),
                e,
            )
        })
}

/// Sync's lag as `status` shows it, read now from both sides: the change log in SQLite and
/// PostgreSQL's cursor and lag figures (`ferry_sync_state`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncLag {
    pub capture_id: Option<String>,
    /// The newest change-log entry in SQLite.
    pub max_seq: i64,
    /// PostgreSQL's cursor: every entry up to it is applied.
    pub cursor: Option<i64>,
    pub changes_behind: u64,
    /// Age of the oldest entry not applied yet.
    pub seconds_behind: f64,
    pub handoff_done: Option<bool>,
    /// Lag of the applied changes since the follower started.
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    pub last_error: Option<String>,
    pub cut_over_at: Option<String>,
    /// After the cutover: change-log entries written to SQLite since (writes that do not
    /// reach PostgreSQL: something still writes the old store).
    pub written_after_cutover: Option<u64>,
    /// Why PostgreSQL's side could not be read, when it could not.
    pub note: Option<String>,
}

impl std::fmt::Display for SyncLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
        write!(
            f,
            "sync: {} changes behind ({:.1} s), entry {} of {}; lag p50 {} p99 {} max {}",
            self.changes_behind,
            self.seconds_behind,
            self.cursor.map_or("-".into(), |c| c.to_string()),
            self.max_seq,
            ms(self.lag_p50_ms),
            ms(self.lag_p99_ms),
            ms(self.lag_max_ms)
        )?;
        if self.handoff_done == Some(false) {
            write!(f, "; handoff from phase 3's copy not done yet")?;
        }
        if let Some(at) = &self.cut_over_at {
            write!(f, "; cut over at {at}")?;
        }
        if let Some(n) = self.written_after_cutover.filter(|n| *n > 0) {
            write!(f, "; {n} rows written to SQLite after the cutover")?;
        }
        if let Some(e) = &self.last_error {
            write!(f, "; last error: {e}")?;
        }
        if let Some(n) = &self.note {
            write!(f, "; {n}")?;
        }
        Ok(())
    }
}

/// Sync's lag when capture is installed in the SQLite file (`None` otherwise). Reads only.
pub(crate) async fn lag_status(config: &Config) -> Option<SyncLag> {
    let path = &config.sqlite.path;
    if !path.is_file() {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    let mut lite = sqlx::ConnectOptions::connect(&options).await.ok()?;
    let installed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1")
            .bind(ferry_sync::LOG_TABLE)
            .fetch_one(&mut lite)
            .await
            .ok()?;
    if installed == 0 {
        let _ = sqlx::Connection::close(lite).await;
        return None;
    }
    let mut out = SyncLag {
        max_seq: sqlx::query_scalar::<_, i64>(&format!(
            "SELECT coalesce(max(seq), 0) FROM {}",
            ferry_sync::LOG_TABLE
        ))
        .fetch_one(&mut lite)
        .await
        .unwrap_or(0),
        ..SyncLag::default()
    };
    let target = sync_target(config);
    let pg = read_state(&target);
    match tokio::time::timeout(CONNECT_TIMEOUT, pg).await {
        Ok(Ok(Some((id, cursor, handoff, p50, p99, max, err, cut, cut_seq)))) => {
            if let Some(seq) = cut_seq.and_then(|s| s.parse::<i64>().ok()) {
                out.written_after_cutover = sqlx::query_scalar::<_, i64>(&format!(
                    "SELECT count(*) FROM {} WHERE seq > ?1",
                    ferry_sync::LOG_TABLE
                ))
                .bind(seq)
                .fetch_one(&mut lite)
                .await
                .ok()
                .map(|n| n.max(0) as u64);
            }
            out.capture_id = Some(id);
            out.cursor = Some(cursor);
            out.handoff_done = Some(handoff);
            out.lag_p50_ms = p50;
            out.lag_p99_ms = p99;
            out.lag_max_ms = max;
            out.last_error = err;
            out.cut_over_at = cut;
        }
        Ok(Ok(None)) => out.note = Some("PostgreSQL has no sync state yet".into()),
        Ok(Err(e)) => out.note = Some(format!("PostgreSQL's side could not be read: {e}")),
        Err(_) => {
            out.note = Some(format!(
                "PostgreSQL did not answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        }
    }
    let cursor = out.cursor.unwrap_or(0);
    // After the cutover, entries past it are writes that never reach PostgreSQL (counted
    // in `written_after_cutover`), not changes behind.
    let after = out.written_after_cutover.unwrap_or(0) as i64;
    out.changes_behind = (out.max_seq - after - cursor).max(0) as u64;
    if out.changes_behind > 0 && out.cut_over_at.is_none() {
        let oldest: Option<f64> = sqlx::query_scalar(&format!(
            "SELECT min(captured_at) FROM {} WHERE seq > ?1",
            ferry_sync::LOG_TABLE
        ))
        .bind(cursor)
        .fetch_one(&mut lite)
        .await
        .ok()
        .flatten();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        out.seconds_behind = oldest.map_or(0.0, |o| (now - o).max(0.0));
    }
    let _ = sqlx::Connection::close(lite).await;
    Some(out)
}

type StateRow = (
    String,
    i64,
    bool,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn read_state(target: &SyncTarget) -> Result<Option<StateRow>, String> {
    let mut conn = pg_connect(target).await?;
    let row = sqlx::query_as::<_, StateRow>(&format!(
        "SELECT capture_id, cursor, handoff_done, lag_p50_ms, lag_p99_ms, lag_max_ms, last_error, cutover ->> 'at', cutover ->> 'seq'
         FROM {} WHERE id = 1",
        qualified(&target.schema, ferry_sync::STATE_TABLE)
    ))
    .fetch_optional(&mut conn)
    .await
    .map_err(|e| ferry_core::redact::redact(&e.to_string()).into_owned());
    let _ = sqlx::Connection::close(conn).await;
    row
}

/// Rollback 4→3 with `--export-back`: every row created, changed or deleted in PostgreSQL
/// since the cutover written back into the store (see `export_back.rs` and
/// `ferry_import::export`), each written file read back and compared with its rows, and the
/// store's inventory after the export saved for rollback 1→0. Rows that cannot be rendered
/// stop it before any file is touched (unless `--discard-writes-since-cutover` accepts
/// losing them, recorded); so does a file that does not verify, after the export.
async fn export_back(
    rb: &mut RollbackCx<'_, Sync>,
    sqlite: &Path,
    cut: &Cutover,
    writes: &[ferry_sync::TableWrites],
) -> Result<(Vec<Check>, Value), PhaseError> {
    use ferry_import::export;
    let config = rb.config();
    let computed = crate::export_back::compute(config, sqlite, writes).await?;
    let dir = crate::export_back::export_dir(config, &cut.at);
    let displaced = crate::export_back::displaced_dir(config, &cut.at);
    let mut evidence = crate::export_back::plan_json(&computed);
    let save = |name: &str, v: &Value| -> Result<PathBuf, PhaseError> {
        let path = dir.join(name);
        ferry_core::fsutil::write_json(&path, v)
            .map_err(|e| PhaseError::failed(format!("writing {}", path.display()), e))?;
        Ok(path)
    };
    let plan = &computed.plan;
    let rejects = plan.rejects.len();
    let mut checks = Vec::new();
    if rejects > 0 {
        let path = save("unrenderable-rows.json", &json!(plan.rejects))?;
        evidence["unrenderable_report"] = json!(path);
        let first = &plan.rejects[0];
        let detail = format!(
            "{rejects} rows cannot be written back (report {}); first: table {} key {}: {}",
            path.display(),
            first.table,
            first.key,
            first.reason
        );
        if !rb.options.discard_writes_since_cutover {
            checks.push(Check::new(
                "every row written since the cutover can be written back",
                false,
                format!("{detail}; nothing was changed (give --discard-writes-since-cutover as well to export the rest and lose these)"),
            ));
            return Ok((checks, evidence));
        }
        rb.step(format!(
            "discarding {rejects} rows that cannot be written back (--discard-writes-since-cutover); {detail}"
        ))?;
        checks.push(Check::new(
            "every row written since the cutover can be written back",
            true,
            format!("{detail}; discarded, as --discard-writes-since-cutover says"),
        ));
    }
    let todo: Vec<export::FilePlan> = plan.files.iter().filter(|f| !f.done).cloned().collect();
    rb.step(format!(
        "exporting the writes since the cutover at {} into {}: {} files to write, {} to create, {} to remove ({} already as planned); replaced versions go to {}",
        cut.at,
        config.source.store_dir.display(),
        plan.count(export::Action::Write),
        plan.count(export::Action::Create),
        plan.count(export::Action::Remove),
        plan.files.len() - todo.len(),
        displaced.display()
    ))?;
    let store = config.source.store_dir.clone();
    let total = todo.len();
    let mut applied = Vec::with_capacity(total);
    let mut next_mark = total / 10;
    for (i, f) in todo.into_iter().enumerate() {
        let (s, d) = (store.clone(), displaced.clone());
        let a = tokio::task::spawn_blocking(move || export::apply(&s, &d, &f))
            .await
            .map_err(|e| PhaseError::failed("exporting", e))?
            .map_err(|e| PhaseError::failed("exporting a file back into the store", e))?;
        applied.push(a);
        if total >= 20 && i + 1 >= next_mark.max(1) && i + 1 < total {
            rb.step(format!("exported {} of {total} files", i + 1))?;
            next_mark += total / 10;
        }
    }
    evidence["applied"] = json!(applied);
    evidence["displaced_dir"] = json!(displaced);
    let profile = ferry_import::Profile::from_setting(&config.import.profile)
        .map_err(|e| PhaseError::failed("loading the import profile", e))?;
    let files = plan.files.clone();
    let (s2, p2) = (store.clone(), profile.clone());
    let problems: Vec<String> = tokio::task::spawn_blocking(move || {
        files
            .iter()
            .flat_map(|f| export::verify(&p2, &s2, f))
            .collect()
    })
    .await
    .map_err(|e| PhaseError::failed("verifying the export", e))?;
    checks.push(Check::new(
        "exported files verified",
        problems.is_empty(),
        if problems.is_empty() {
            format!(
                "{} files read back, split into records as the import does, each equal to its rows in PostgreSQL",
                plan.files.len()
            )
        } else {
            format!(
                "{} problems, first: {}; PostgreSQL is left as it is",
                problems.len(),
                problems.iter().take(3).cloned().collect::<Vec<_>>().join(" | ")
            )
        },
    ));
    if !problems.is_empty() {
        evidence["verification_problems"] = json!(problems);
        return Ok((checks, evidence));
    }
    let s3 = store.clone();
    let inventory = tokio::task::spawn_blocking(move || crate::export_back::inventory(&s3))
        .await
        .map_err(|e| PhaseError::failed("taking the store's inventory", e))?
        .map_err(|e| PhaseError::failed("taking the store's inventory", e))?;
    let inv_path = save("store-after-export.json", &json!(inventory))?;
    evidence["inventory"] = json!(inv_path);
    evidence["inventory_files"] = json!(inventory.len());
    let report = save("export-report.json", &evidence)?;
    evidence["report"] = json!(report);
    Ok((checks, evidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pre_phase_dump_leaves_out_capture_objects_only() {
        let dump = "table \"agents\"\n  \"agent_id\" text\ntable \"ferry_sync_log\"\n  \"seq\" integer\ntrigger \"ferry_sync_ins_agents\"\n  CREATE TRIGGER …\ntrigger \"mine\"\n  CREATE TRIGGER mine …\n";
        assert_eq!(
            without_capture(dump),
            "table \"agents\"\n  \"agent_id\" text\ntrigger \"mine\"\n  CREATE TRIGGER mine …\n"
        );
        assert_eq!(
            crate::checks::without_runtime_tables(dump),
            without_capture(dump)
        );
    }
}
