//! Phase 3, PostgreSQL load: apply the PostgreSQL migrations, copy the phase-2 SQLite file
//! into them (managed mode), and gate on every table equal by content digest.
//!
//! The target schema is dumped (or noted absent) once per attempt chain, before the first
//! attempt creates anything: a rerun after a killed run keeps that dump, so rolling back
//! always compares with the schema as it was before ferry touched it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::config::Config;
use ferry_core::plan::TransferPlan;
use ferry_schema::{Database, Migrator};
use ferry_transfer::TransferOptions;
use ferry_validate::{PgTarget, TableDigest, ValidateOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checks;
use crate::error::PhaseError;
use crate::gate::{Check, Findings};
use crate::import::{self, Import};
use crate::module::{Cx, Depth, PhaseModule, PhaseResult, Recorded, RollbackCx, RunCx};
use crate::phase::Phase;

/// How long a recheck waits for PostgreSQL before calling its checks unverified.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Load;

/// The target schema before phase 3 first ran in this attempt chain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Facts {
    #[serde(default)]
    pub schema: String,
    /// `None`: the ledger does not say (then nothing is dropped on rollback).
    #[serde(default)]
    pub schema_existed: Option<bool>,
    /// The canonical dump of the schema, when it existed.
    #[serde(default)]
    pub schema_before: String,
}

/// One table as gate 3 compared it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableEvidence {
    /// The SQLite name.
    pub table: String,
    /// The PostgreSQL name.
    #[serde(default)]
    pub target: Option<String>,
    pub source_rows: u64,
    pub target_rows: u64,
    #[serde(default)]
    pub source_digest: Option<TableDigest>,
    #[serde(default)]
    pub target_digest: Option<TableDigest>,
}

/// The validation's totals the ledger keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ValidationTotals {
    #[serde(default)]
    pub tables: u64,
    #[serde(default)]
    pub tables_equal: u64,
    #[serde(default)]
    pub source_rows: u64,
    #[serde(default)]
    pub target_rows: u64,
}

/// What a run of phase 3 did and found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Evidence {
    #[serde(default)]
    pub migrations_applied: Vec<String>,
    /// The transfer plan (also what the recheck compares through).
    #[serde(default)]
    pub plan: Option<PathBuf>,
    #[serde(default)]
    pub transfer_report: Option<PathBuf>,
    /// A completed copy no attempt had reported was emptied and copied again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copy_reset: bool,
    #[serde(default)]
    pub rows_copied: u64,
    #[serde(default)]
    pub rejected_rows: u64,
    /// `--acknowledge-rejects`: the reason the rejected rows were accepted.
    #[serde(default)]
    pub rejects_acknowledged: Option<String>,
    /// `--acknowledge`: the reason what was not carried over of the schema was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_acknowledged: Option<String>,
    #[serde(default)]
    pub validation_report: Option<PathBuf>,
    #[serde(default)]
    pub validation_totals: Option<ValidationTotals>,
    /// Every table's row counts and digests on both sides, as gate 3 compared them.
    #[serde(default)]
    pub tables: Vec<TableEvidence>,
    /// The consistent copy of the SQLite file the copy and the validation read: gate 3
    /// vouches for "PostgreSQL equals SQLite as of this snapshot".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
}

/// The snapshot of the SQLite file phase 3 copies and validates from (`VACUUM INTO`, one
/// read transaction of the live file, so the application may keep writing it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub path: PathBuf,
    /// RFC 3339: when the read transaction began (writes committed after it are sync's).
    pub taken_at: String,
    /// How long `VACUUM INTO` took.
    pub millis: u64,
    pub bytes: u64,
    /// SHA-256 of the snapshot file: its identity.
    pub sha256: String,
    /// Every data table's rows in the snapshot.
    pub tables: std::collections::BTreeMap<String, u64>,
    /// Removed once gate 3 passed (nothing reads it afterwards).
    #[serde(default)]
    pub removed: bool,
}

impl PhaseModule for Load {
    const PHASE: Phase = Phase::Load;
    type Facts = Facts;
    type Evidence = Evidence;

    /// Dumps the target schema (or notes it absent) before anything is created in it.
    async fn facts(cx: &Cx<'_>) -> Result<Facts, PhaseError> {
        let schema = cx.config.postgres.schema.clone();
        let mut db = connect(cx.config, &schema).await?;
        let existed = schema_exists(&mut db, &schema).await?;
        let before = if existed {
            ferry_schema::dump(&mut db)
                .await
                .map_err(|e| PhaseError::failed("dumping the target schema", e))?
        } else {
            String::new()
        };
        db.close().await;
        Ok(Facts {
            schema,
            schema_existed: Some(existed),
            schema_before: before,
        })
    }

    async fn run(run: &mut RunCx<'_, Self>) -> Result<PhaseResult, PhaseError> {
        let config = run.config();
        let schema = config.postgres.schema.clone();
        let url = config.postgres.url.clone();
        run.evidence.rejects_acknowledged = run
            .options
            .acknowledge_rejects
            .clone()
            .filter(|r| !r.trim().is_empty());

        let mut db = connect(config, &schema).await?;
        let (set, snapshots) = checks::postgres_schema()
            .map_err(|e| PhaseError::failed("loading the PostgreSQL migrations", e))?;
        let ran = Migrator::new(set.clone())
            .up(&mut db, None)
            .await
            .map_err(|e| PhaseError::failed(format!("migrating schema \"{schema}\""), e))?;
        run.evidence.migrations_applied = ran.iter().map(|r| r.file.clone()).collect();
        run.checkpoint()?;

        // A consistent snapshot: the application may keep writing the live file while the
        // copy runs (sync carries those writes); the copy and the validation read this one.
        let (snapshot, reused) = snapshot(run).await?;
        run.evidence.snapshot = Some(snapshot.clone());
        run.checkpoint()?;

        let target = PgTarget {
            url: url.clone(),
            schema: schema.clone(),
        };
        let mut options = TransferOptions::from_config(config);
        options.progress = true;
        // Phase 3 copies its own snapshot, which nothing writes: the largest table can be
        // read by every worker at once (ferry-transfer checks the file did not change).
        options.source_immutable = true;
        let plan = ferry_transfer::plan_managed(&snapshot.path, &target, &options)
            .await
            .map_err(|e| PhaseError::failed("planning the copy into PostgreSQL", e))?;
        let mut snapshot = snapshot;
        snapshot.tables = plan
            .tables
            .iter()
            .map(|t| (t.source.clone(), t.source_rows))
            .collect();
        run.evidence.snapshot = Some(snapshot.clone());
        run.evidence.plan = Some(save(config, "plan3", &plan)?);
        run.checkpoint()?;
        let mut report = match completed_copy(run, &target, &options, &plan, reused).await? {
            Some(report) => report,
            None => ferry_transfer::execute(&plan, &target, &options)
                .await
                .map_err(|e| PhaseError::failed("copying SQLite into PostgreSQL", e))?,
        };
        if let Some(reason) = run
            .options
            .acknowledge_schema
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            if report.unacknowledged().next().is_some() {
                report = ferry_transfer::acknowledge(&target, reason, &options)
                    .await
                    .map_err(|e| PhaseError::failed("recording the acknowledgement", e))?;
            }
            run.evidence.schema_acknowledged = Some(reason.trim().to_owned());
        }
        let report_path = save(config, "transfer3", &report)?;
        run.evidence.transfer_report = Some(report_path.clone());
        run.evidence.rows_copied = report.tables.iter().map(|t| t.rows).sum();
        run.evidence.rejected_rows = report.rejected_rows();
        run.checkpoint()?;

        let validation = ferry_validate::validate(
            &snapshot.path,
            &PgTarget {
                url: url.clone(),
                schema: schema.clone(),
            },
            Some(&plan),
            &validation_options(config, true),
        )
        .await
        .map_err(|e| PhaseError::failed("validating PostgreSQL against SQLite", e))?;
        run.evidence.validation_report = Some(save(config, "validate3", &validation)?);
        let t = &validation.totals;
        run.evidence.validation_totals = Some(ValidationTotals {
            tables: t.tables,
            tables_equal: t.tables_equal,
            source_rows: t.source_rows,
            target_rows: t.target_rows,
        });
        run.evidence.tables = validation
            .tables
            .iter()
            .map(|tr| TableEvidence {
                table: tr.name().to_owned(),
                target: tr.target.clone(),
                source_rows: tr.source_rows,
                target_rows: tr.target_rows,
                source_digest: tr.source_digest.clone(),
                target_digest: tr.target_digest.clone(),
            })
            .collect();

        let mut checks = Vec::new();
        let counts_equal = validation
            .tables
            .iter()
            .all(|tr| tr.source_rows == tr.target_rows);
        checks.push(Check::new(
            "row counts equal",
            counts_equal && t.tables_error == 0,
            format!(
                "{} tables, {} rows in SQLite, {} in PostgreSQL",
                t.tables, t.source_rows, t.target_rows
            ),
        ));
        let different: Vec<String> = validation
            .tables
            .iter()
            .filter(|tr| tr.verdict.as_str() != "equal")
            .map(|tr| format!("{} ({})", tr.name(), tr.verdict.as_str()))
            .collect();
        checks.push(Check::new(
            "content digests equal",
            different.is_empty() && t.tables_error == 0,
            if different.is_empty() {
                format!(
                    "all {} tables equal cell by cell (canonical typed digests)",
                    t.tables
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
        ));
        let open: Vec<String> = report
            .unacknowledged()
            .map(|n| {
                let what = if n.name.is_empty() { &n.table } else { &n.name };
                format!("{} {what} of {} ({})", n.kind.as_str(), n.table, n.reason)
            })
            .collect();
        let accepted = report.not_carried_over.len() - open.len();
        checks.push(Check::new(
            "schema carried over",
            open.is_empty(),
            match (open.first(), accepted) {
                (None, 0) => "every table, index, constraint, view and trigger carried over".to_owned(),
                (None, n) => format!("{n} objects not carried over, each acknowledged; listed in {}", report_path.display()),
                (Some(first), _) => format!(
                    "{} objects not carried over (first: {first}); see {}; accept them with `phase 3 --rerun --acknowledge \"reason\"`",
                    open.len(),
                    report_path.display()
                ),
            },
        ));
        let rejects = report.rejected_rows();
        let acknowledged = run.evidence.rejects_acknowledged.clone();
        checks.push(Check::new(
            "no unacknowledged rejects",
            rejects == 0 || acknowledged.is_some(),
            match (rejects, acknowledged) {
                (0, _) => "every row arrived".to_owned(),
                (n, Some(reason)) => format!("{n} rejected rows acknowledged: {reason}; listed in {}", report_path.display()),
                (n, None) => format!(
                    "{n} rejected rows (first: {}); see {}; acknowledge with `phase 3 --rerun --acknowledge-rejects \"reason\"`",
                    report.rejects.first().map_or(String::new(), |r| format!("{} key {} column {}: {}", r.table, r.key, r.column, r.reason)),
                    report_path.display()
                ),
            },
        ));
        let fk_findings: Vec<String> = validation
            .constraints
            .findings
            .iter()
            .map(|f| format!("{} {:?}: {}", f.table, f.kind, f.detail))
            .collect();
        checks.push(Check::new(
            "constraints validated in PostgreSQL",
            validation.constraints.checked && fk_findings.is_empty(),
            if fk_findings.is_empty() {
                format!(
                    "{} foreign keys without orphans ({} validated now), {} sequences past their maximum, {} source constraints present",
                    validation.constraints.target_foreign_keys,
                    validation.constraints.validated_foreign_keys.len(),
                    validation.constraints.sequences,
                    validation.constraints.source_constraints
                )
            } else {
                fk_findings.into_iter().take(5).collect::<Vec<_>>().join("; ")
            },
        ));
        checks.extend(checks::schema_at_head(&mut db, &set, &snapshots).await);
        db.close().await;
        if checks.iter().all(|c| c.passed) {
            // Gate 3 passed: nothing reads the snapshot again (a rerun takes a new one).
            remove_snapshot(&snapshot.path);
            if let Some(s) = run.evidence.snapshot.as_mut() {
                s.removed = true;
            }
        }
        let live_rows: u64 = checks::sqlite_counts(
            &config.sqlite.path,
            snapshot.tables.keys().map(String::as_str),
        )
        .await
        .map(|n| n.values().sum())
        .unwrap_or(0);
        let snapshot_rows: u64 = snapshot.tables.values().sum();

        Ok(PhaseResult {
            summary: format!(
                "{} rows copied into \"{schema}\" from SQLite as of {} ({} ms to snapshot), {} rejected; {} of {} tables equal{}",
                run.evidence.rows_copied,
                snapshot.taken_at,
                snapshot.millis,
                rejects,
                t.tables_equal,
                t.tables,
                if live_rows != snapshot_rows {
                    format!("; SQLite holds {live_rows} rows now, {snapshot_rows} at the snapshot: sync (phase 4) carries the difference")
                } else {
                    String::new()
                }
            ),
            details: format!("{}\n{}", report.summary_table(), validation.summary_table()),
            checks,
            findings: Findings::default(),
        })
    }

    /// What gate 3 vouched for still holds: SQLite as gate 2 left it, the PostgreSQL schema
    /// at head, and PostgreSQL's data as gate 3 compared it — the same row counts
    /// ([`Depth::Quick`]), or the same digests on both sides, read again through the plan
    /// by ferry-validate ([`Depth::Full`]).
    async fn recheck(cx: &Cx<'_>, rec: &Recorded<Self>, depth: Depth) -> Vec<Check> {
        let mut out = Vec::new();
        match cx.latest_run::<Import>() {
            Ok(Some(phase2)) => {
                out.push(import::tables_unchanged(cx.config, &phase2.evidence, depth).await)
            }
            Ok(None) => out.push(Check::new(
                "SQLite tables unchanged since gate 2",
                false,
                "phase 2 has no run in the ledger",
            )),
            Err(e) => out.push(Check::new(
                "SQLite tables unchanged since gate 2",
                false,
                e.to_string(),
            )),
        }
        let schema = &cx.config.postgres.schema;
        let mut db = match tokio::time::timeout(CONNECT_TIMEOUT, connect(cx.config, schema)).await {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => {
                out.push(Check::unverified(
                    "PostgreSQL data as gate 3 saw it",
                    e.to_string(),
                ));
                return out;
            }
            Err(_) => {
                out.push(Check::unverified(
                    "PostgreSQL data as gate 3 saw it",
                    format!(
                        "PostgreSQL did not answer within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ));
                return out;
            }
        };
        match checks::postgres_schema() {
            Ok((set, snapshots)) => {
                let head = checks::schema_at_head(&mut db, &set, &snapshots).await;
                let at_head = head.iter().all(|c| c.passed);
                out.extend(head);
                if !at_head {
                    db.close().await;
                    return out;
                }
            }
            Err(e) => out.push(Check::new(
                "PostgreSQL schema at head",
                false,
                e.to_string(),
            )),
        }
        if let Some(spec) = crate::sync::capture_installed(&cx.config.sqlite.path).await {
            // Sync applies the application's new writes: gate 3's digests no longer match,
            // legitimately; phase 4 compares every table itself.
            out.push(Check::new(
                "PostgreSQL data as gate 3 saw it",
                true,
                format!("followed by sync since capture {spec} was installed; gate 4 compares every table at cutover"),
            ));
            db.close().await;
            return out;
        }
        out.push(match depth {
            Depth::Quick => postgres_counts_unchanged(&mut db, schema, &rec.evidence).await,
            Depth::Full => data_unchanged(cx.config, &rec.evidence).await,
        });
        db.close().await;
        out
    }

    async fn left_behind(cx: &Cx<'_>, rec: &Recorded<Self>) -> Vec<String> {
        let schema = if rec.facts.schema.is_empty() {
            cx.config.postgres.schema.clone()
        } else {
            rec.facts.schema.clone()
        };
        let connect = connect(cx.config, &schema);
        let mut db = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(db)) => db,
            _ => {
                return vec![format!(
                    "unknown: PostgreSQL did not answer, so what is left in schema \"{schema}\" is not known"
                )]
            }
        };
        let mut out = Vec::new();
        let exists = schema_exists(&mut db, &schema).await.unwrap_or(false);
        let tables = count_tables(&mut db, &schema).await.unwrap_or(0);
        match (rec.facts.schema_existed, exists) {
            (Some(false), true) => out.push(format!(
                "schema \"{schema}\" with {tables} tables, created by phase 3"
            )),
            (Some(true), true) => {
                if let Ok(now) = ferry_schema::dump(&mut db).await {
                    let diff = ferry_schema::snapshot::line_diff(&rec.facts.schema_before, &now);
                    if !diff.is_empty() {
                        out.push(format!(
                            "schema \"{schema}\" differs from its pre-phase dump in {} lines ({tables} tables)",
                            diff.len()
                        ));
                    }
                }
            }
            (_, false) => {}
            (None, true) => out.push(format!("schema \"{schema}\" with {tables} tables")),
        }
        if let Some(plan) = &rec.evidence.plan {
            out.push(format!("transfer plan {}", plan.display()));
        }
        if let Some(s) = rec.evidence.snapshot.as_ref().filter(|s| s.path.is_file()) {
            out.push(format!(
                "snapshot of SQLite taken at {} ({})",
                s.taken_at,
                s.path.display()
            ));
        }
        db.close().await;
        out
    }

    /// Drops what ferry created in PostgreSQL and proves the schema equals its pre-phase
    /// dump (absent, when ferry created it).
    async fn rollback(rb: &mut RollbackCx<'_, Self>) -> Result<(Vec<Check>, Value), PhaseError> {
        let config = rb.config();
        let schema = if rb.facts.schema.is_empty() {
            config.postgres.schema.clone()
        } else {
            rb.facts.schema.clone()
        };
        let Some(existed) = rb.facts.schema_existed else {
            return Err(PhaseError::failed(
                "rolling back phase 3",
                format!("the ledger does not say whether schema \"{schema}\" existed before phase 3, so nothing was dropped"),
            ));
        };
        let before = rb.facts.schema_before.clone();
        let snapshot = snapshot_path(config);
        if snapshot.exists() {
            rb.step(format!(
                "removing the snapshot of SQLite a run of phase 3 left, {}",
                snapshot.display()
            ))?;
            remove_snapshot(&snapshot);
        }
        let mut db = connect(config, &schema).await?;
        let quoted = ferry_core::sql::quote_ident(&schema);
        let mut out = serde_json::Map::new();
        let mut did = Vec::new();
        if existed {
            // The schema was there before: revert the migrations, then drop ferry's own
            // bookkeeping tables (transfer checkpoints and runs), leaving what was there.
            let (set, _) = checks::postgres_schema()
                .map_err(|e| PhaseError::failed("loading the PostgreSQL migrations", e))?;
            rb.step(format!(
                "reverting ferry's migrations in schema \"{schema}\""
            ))?;
            let reverted = Migrator::new(set).down(&mut db, 0).await.map_err(|e| {
                PhaseError::failed(format!("reverting the migrations in \"{schema}\""), e)
            })?;
            did.push(format!("{} migrations reverted", reverted.len()));
            out.insert(
                "migrations_reverted".into(),
                json!(reverted.iter().map(|r| r.file.clone()).collect::<Vec<_>>()),
            );
            let conn = postgres(&mut db)?;
            let ferry_tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'ferry\\_%'",
            )
            .bind(&schema)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| PhaseError::failed("listing ferry's tables", e))?;
            if !ferry_tables.is_empty() {
                rb.step(format!(
                    "dropping ferry's tables in schema \"{schema}\": {}",
                    ferry_tables.join(", ")
                ))?;
            }
            let conn = postgres(&mut db)?;
            for table in &ferry_tables {
                sqlx::raw_sql(&format!(
                    "DROP TABLE IF EXISTS {quoted}.{} CASCADE",
                    ferry_core::sql::quote_ident(table)
                ))
                .execute(&mut *conn)
                .await
                .map_err(|e| PhaseError::failed(format!("dropping {table}"), e))?;
            }
            did.push(format!("{} bookkeeping tables dropped", ferry_tables.len()));
            out.insert("dropped".into(), json!(ferry_tables));
        } else {
            if schema_exists(&mut db, &schema).await? {
                rb.step(format!(
                    "dropping schema \"{schema}\", which phase 3 created"
                ))?;
            }
            let conn = postgres(&mut db)?;
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"))
                .execute(&mut *conn)
                .await
                .map_err(|e| PhaseError::failed(format!("dropping schema \"{schema}\""), e))?;
            did.push(format!("schema \"{schema}\" dropped"));
            out.insert("dropped".into(), json!([format!("schema {schema}")]));
        }
        let now_exists = schema_exists(&mut db, &schema).await?;
        let after = if now_exists {
            ferry_schema::dump(&mut db)
                .await
                .map_err(|e| PhaseError::failed("dumping the target schema", e))?
        } else {
            String::new()
        };
        db.close().await;
        let diff = ferry_schema::snapshot::line_diff(&before, &after);
        let equal = diff.is_empty() && now_exists == existed;
        let detail = if equal {
            if existed {
                format!("schema \"{schema}\" equals its dump from before phase 3")
            } else {
                format!("schema \"{schema}\" is gone, as before phase 3")
            }
        } else if now_exists != existed {
            format!(
                "{}; schema \"{schema}\" {} although it {} before phase 3",
                did.join(", "),
                if now_exists { "exists" } else { "is gone" },
                if existed { "existed" } else { "did not exist" }
            )
        } else {
            format!(
                "{}; schema \"{schema}\" differs from its dump from before phase 3 in {} lines, first: {}",
                did.join(", "),
                diff.len(),
                diff.iter().take(3).cloned().collect::<Vec<_>>().join(" | ")
            )
        };
        let checks = vec![Check::new(
            "target schema equals its pre-phase snapshot",
            equal,
            detail,
        )];
        Ok((checks, Value::Object(out)))
    }
}

/// When an earlier attempt of this chain completed the copy (it was killed while validating,
/// or the phase passed and is run again), its transfer report, so the copy is not repeated.
/// A completed copy without such a report (the attempt died between the two) is reset, so
/// that the copy runs again from the start. So is any copy, finished or not, read from
/// another snapshot than this attempt's (`reused`: this attempt reads the snapshot the
/// earlier ones read). `None`: copy (or resume an unfinished copy of the same snapshot).
async fn completed_copy(
    run: &mut RunCx<'_, Load>,
    target: &PgTarget,
    options: &TransferOptions,
    plan: &TransferPlan,
    reused: bool,
) -> Result<Option<ferry_transfer::TransferReport>, PhaseError> {
    let recorded = ferry_transfer::recorded_run(target, options)
        .await
        .map_err(|e| PhaseError::failed("reading the transfer recorded in PostgreSQL", e))?;
    let Some(recorded) = recorded else {
        return Ok(None);
    };
    if !recorded.complete && reused {
        return Ok(None);
    }
    let same = recorded.complete
        && recorded.source == plan.source
        && ferry_transfer::fingerprint(&recorded.plan) == ferry_transfer::fingerprint(plan);
    let sha = run.evidence.snapshot.as_ref().map(|s| s.sha256.clone());
    let earlier = run
        .earlier
        .iter()
        .rev()
        .filter(|r| r.evidence.snapshot.as_ref().map(|s| &s.sha256) == sha.as_ref())
        .filter_map(|r| r.evidence.transfer_report.as_deref())
        .find_map(|p| {
            let report: ferry_transfer::TransferReport =
                serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
            (report.schema == target.schema).then_some((p.to_path_buf(), report))
        });
    if let (true, Some((path, report))) = (same, earlier) {
        tracing::info!(
            "the copy into \"{}\" was completed by an earlier attempt ({}); validating it again",
            target.schema,
            path.display()
        );
        return Ok(Some(report));
    }
    tracing::warn!(
        "schema \"{}\" holds a copy no attempt of this phase reported from this snapshot of SQLite; emptying its tables to copy again",
        target.schema
    );
    run.evidence.copy_reset = true;
    run.checkpoint()?;
    let mut db = connect(run.config(), &target.schema).await?;
    let tables: Vec<String> = plan
        .tables
        .iter()
        .map(|t| ferry_core::sql::qualified(&target.schema, &t.target))
        .collect();
    let bookkeeping: Vec<String> = [
        ferry_transfer::RUNS_TABLE,
        ferry_transfer::CHECKPOINTS_TABLE,
        ferry_transfer::REJECTS_TABLE,
        ferry_transfer::STEPS_TABLE,
    ]
    .iter()
    .map(|t| ferry_core::sql::qualified(&target.schema, t))
    .collect();
    let sql = format!(
        "TRUNCATE {}; DROP TABLE IF EXISTS {}",
        tables.join(", "),
        bookkeeping.join(", ")
    );
    let res = sqlx::raw_sql(&sql).execute(postgres(&mut db)?).await;
    db.close().await;
    res.map_err(|e| {
        PhaseError::failed(
            format!("emptying schema \"{}\" to copy again", target.schema),
            e,
        )
    })?;
    Ok(None)
}

/// Where phase 3 keeps its snapshot of the SQLite file.
pub(crate) fn snapshot_path(config: &Config) -> PathBuf {
    config
        .state_dir
        .join("load3")
        .join("sqlite-snapshot.sqlite3")
}

/// The snapshot this attempt reads, and whether an earlier attempt of the chain took it:
/// the one an earlier attempt left (its copy may be unfinished or unvalidated) when it is
/// still there with the bytes recorded, else a new one.
async fn snapshot(run: &RunCx<'_, Load>) -> Result<(Snapshot, bool), PhaseError> {
    let left = run
        .earlier
        .iter()
        .rev()
        .find_map(|r| r.evidence.snapshot.clone())
        .filter(|s| !s.removed && s.path.is_file());
    if let Some(earlier) = left {
        let path = earlier.path.clone();
        let sha = tokio::task::spawn_blocking(move || checks::sha256_file(&path))
            .await
            .ok()
            .and_then(Result::ok);
        if sha.as_deref() == Some(earlier.sha256.as_str()) {
            tracing::info!(
                "reading the snapshot of SQLite an earlier attempt took at {} ({})",
                earlier.taken_at,
                earlier.path.display()
            );
            return Ok((earlier, true));
        }
    }
    take_snapshot(run.config()).await.map(|s| (s, false))
}

/// `VACUUM INTO` a file under the state dir: one read transaction of the live file, so its
/// writers are not held (in WAL mode; in rollback-journal mode they wait for the read).
pub(crate) async fn take_snapshot(config: &Config) -> Result<Snapshot, PhaseError> {
    let path = snapshot_path(config);
    let fail = |e: String| {
        PhaseError::failed(
            format!(
                "taking a snapshot of {} into {}",
                config.sqlite.path.display(),
                path.display()
            ),
            e,
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    for f in [
        path.clone(),
        with_suffix(&path, "-wal"),
        with_suffix(&path, "-shm"),
    ] {
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(fail(format!(
                    "removing the old snapshot {}: {e}",
                    f.display()
                )))
            }
        }
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&config.sqlite.path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30));
    let started = std::time::Instant::now();
    let taken_at = chrono::Utc::now().to_rfc3339();
    let mut conn = sqlx::ConnectOptions::connect(&options)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let res = sqlx::query("VACUUM INTO ?1")
        .bind(path.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await;
    sqlx::Connection::close(conn).await.ok();
    res.map_err(|e| fail(e.to_string()))?;
    let millis = started.elapsed().as_millis() as u64;
    let hashed = path.clone();
    let sha256 = tokio::task::spawn_blocking(move || checks::sha256_file(&hashed))
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    tracing::info!(
        "snapshot of {} taken in {millis} ms ({bytes} bytes): phase 3 copies and validates it",
        config.sqlite.path.display()
    );
    Ok(Snapshot {
        path,
        taken_at,
        millis,
        bytes,
        sha256,
        tables: Default::default(),
        removed: false,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes the snapshot file (and any `-wal`/`-shm` a reader left beside it).
pub(crate) fn remove_snapshot(path: &Path) {
    for f in [
        path.to_path_buf(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ] {
        if let Err(e) = std::fs::remove_file(&f) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("could not remove the snapshot {}: {e}", f.display());
            }
        }
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// PostgreSQL's tables have the row counts gate 3 recorded.
async fn postgres_counts_unchanged(db: &mut Database, schema: &str, evidence: &Evidence) -> Check {
    let name = "PostgreSQL data as gate 3 saw it";
    if evidence.tables.is_empty() {
        return Check::new(name, false, "gate 3 recorded no tables");
    }
    let Some(conn) = db.postgres() else {
        return Check::new(name, false, "not a PostgreSQL database");
    };
    let mut diffs = Vec::new();
    for t in &evidence.tables {
        let Some(target) = &t.target else { continue };
        let sql = format!(
            "SELECT count(*) FROM {}",
            ferry_core::sql::qualified(schema, target)
        );
        match sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(&mut *conn)
            .await
        {
            Ok(n) if n.max(0) as u64 == t.target_rows => {}
            Ok(n) => diffs.push(format!(
                "table {target} has {n} rows, gate 3 saw {}",
                t.target_rows
            )),
            Err(e) => diffs.push(format!("table {target}: {e}")),
        }
    }
    if diffs.is_empty() {
        Check::new(
            name,
            true,
            format!(
                "all {} tables have the row counts gate 3 recorded (digests are compared before the next phase)",
                evidence.tables.len()
            ),
        )
    } else {
        Check::new(name, false, diffs.join("; "))
    }
}

/// Both sides read again by ferry-validate through gate 3's plan: every table's digests on
/// both sides equal those gate 3 recorded.
async fn data_unchanged(config: &Config, evidence: &Evidence) -> Check {
    let name = "PostgreSQL data as gate 3 saw it";
    if evidence.tables.is_empty() {
        return Check::new(name, false, "gate 3 recorded no tables");
    }
    let Some(plan_path) = &evidence.plan else {
        return Check::new(name, false, "gate 3 recorded no transfer plan");
    };
    let plan = match read_plan(plan_path) {
        Ok(p) => p,
        Err(e) => return Check::new(name, false, e),
    };
    let target = PgTarget {
        url: config.postgres.url.clone(),
        schema: config.postgres.schema.clone(),
    };
    let report = match ferry_validate::validate(
        &config.sqlite.path,
        &target,
        Some(&plan),
        &validation_options(config, false),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return Check::new(name, false, e.to_string()),
    };
    let mut diffs = Vec::new();
    let mut written = Vec::new();
    for then in &evidence.tables {
        let now = report.tables.iter().find(|t| t.name() == then.table);
        match now {
            None => diffs.push(format!("table {} is gone", then.table)),
            Some(now) => {
                if now.target_digest != then.target_digest || now.target_rows != then.target_rows {
                    diffs.push(format!(
                        "table {} in PostgreSQL: {} rows now, {} at gate 3{}",
                        then.table,
                        now.target_rows,
                        then.target_rows,
                        if now.target_rows == then.target_rows {
                            " (content changed)"
                        } else {
                            ""
                        }
                    ));
                }
                if now.source_digest != then.source_digest {
                    // The application may keep writing SQLite after gate 3's snapshot:
                    // sync (phase 4) carries those writes. Rows lost are not writes sync
                    // carries: fewer rows than the snapshot fails.
                    if now.source_rows < then.source_rows {
                        diffs.push(format!(
                            "table {} in SQLite has {} rows, {} at gate 3's snapshot: rows were lost",
                            then.table, now.source_rows, then.source_rows
                        ));
                    } else {
                        written.push(format!(
                            "{} (+{} rows{})",
                            then.table,
                            now.source_rows - then.source_rows,
                            if now.source_rows == then.source_rows {
                                ", content changed"
                            } else {
                                ""
                            }
                        ));
                    }
                }
            }
        }
    }
    if diffs.is_empty() && written.is_empty() {
        Check::new(
            name,
            true,
            format!(
                "all {} tables have on both sides the digests gate 3 recorded",
                evidence.tables.len()
            ),
        )
    } else if diffs.is_empty() {
        Check::new(
            name,
            true,
            format!(
                "PostgreSQL's {} tables have the digests gate 3 recorded; SQLite was written since gate 3's snapshot, no rows lost, in {}: sync (phase 4) carries those writes and gate 4 compares every table",
                evidence.tables.len(),
                written.join(", ")
            ),
        )
    } else {
        Check::new(name, false, diffs.join("; "))
    }
}

fn validation_options(config: &Config, progress: bool) -> ValidateOptions {
    ValidateOptions {
        timestamps: config.timestamps.clone(),
        progress,
        ..ValidateOptions::default()
    }
}

pub(crate) fn read_plan(path: &Path) -> Result<TransferPlan, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "the plan gate 3 used, {}, cannot be read: {e}",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "the plan gate 3 used, {}, is not a plan: {e}",
            path.display()
        )
    })
}

async fn connect(config: &Config, schema: &str) -> Result<Database, PhaseError> {
    Database::connect(config.postgres.url.expose(), Some(schema))
        .await
        .map_err(|e| PhaseError::failed("connecting to PostgreSQL", e))
}

fn postgres(db: &mut Database) -> Result<&mut sqlx::PgConnection, PhaseError> {
    db.postgres()
        .ok_or_else(|| PhaseError::failed("phase 3", "postgres.url is not a PostgreSQL database"))
}

async fn schema_exists(db: &mut Database, schema: &str) -> Result<bool, PhaseError> {
    let conn = postgres(db)?;
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(conn)
        .await
        .map_err(|e| PhaseError::failed("reading the PostgreSQL catalog", e))
}

async fn count_tables(db: &mut Database, schema: &str) -> Result<i64, PhaseError> {
    let conn = postgres(db)?;
    sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = $1")
        .bind(schema)
        .fetch_one(conn)
        .await
        .map_err(|e| PhaseError::failed("reading the PostgreSQL catalog", e))
}

fn save<T: serde::Serialize>(
    config: &Config,
    name: &str,
    value: &T,
) -> Result<PathBuf, PhaseError> {
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
