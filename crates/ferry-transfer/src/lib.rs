//! Copy a SQLite database into PostgreSQL without losing a cell or a constraint, at the speed
//! of binary COPY, in parallel, resumable after a crash.
//!
//! Two ways in:
//! - **derived**: [`plan_derived`] profiles every column and chooses PostgreSQL types that
//!   hold every value exactly (see [`typemap`](crate::typemap) for the table); [`execute`]
//!   creates the schema, copies, then builds keys, indexes, CHECKs, foreign keys, sequences,
//!   full-text indexes and views.
//! - **managed**: [`plan_managed`] matches the SQLite tables and columns by name to tables
//!   that already exist in PostgreSQL (made by migrations) and converts each value to the
//!   existing column's type, with the same strictness.
//!
//! Either way the plan is a [`ferry_core::plan::TransferPlan`] (print it with
//! [`plan_text`], review it, keep it), and [`execute`] returns a [`TransferReport`] with
//! per-table rows, bytes, seconds and rejected rows, every rejected cell (table, key,
//! column, reason, bytes in hex), the rename map and the warnings. A value that cannot be
//! stored exactly is never altered: its row goes to the report.
//!
//! Running [`execute`] again after a crash (even `kill -9`) continues where the last
//! committed chunk ended: each chunk commits with its checkpoint row in the target schema's
//! `ferry_transfer_checkpoints`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_transfer::TransferError> {
//! use ferry_core::redact::SecretUrl;
//! use ferry_transfer::{execute, plan_derived, Target, TransferOptions};
//!
//! let target = Target {
//!     url: SecretUrl::new("postgres://postgres@127.0.0.1:5432/postgres"),
//!     schema: "chinook".into(),
//! };
//! let opts = TransferOptions::default();
//! let plan = plan_derived("chinook.sqlite".as_ref(), &target.schema, &opts).await?;
//! println!("{}", ferry_transfer::plan_text(&plan));
//! let report = execute(&plan, &target, &opts).await?;
//! println!("{}", report.summary_table());
//! assert!(report.is_clean());
//! # Ok(()) }
//! ```

mod bookkeeping;
mod ddl;
mod engine;
mod error;
mod ident;
mod pg;
mod plan_build;
mod profile;
mod progress;
mod report;
mod schema;
mod sqlite;
mod sqltext;
mod steps;
pub mod typemap;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::config::{Config, InvalidTextPolicy};
use ferry_core::plan::{PlanMode, TransferPlan};
use ferry_core::redact::SecretUrl;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;
use sqlx::Row;

// The value conversions live in ferry-core so that ferry-sync applies changes with exactly
// the same code.
pub(crate) use ferry_core::pgcopy as encode;
pub(crate) use ferry_core::pgcopy::{cell, json, timestamp};

pub use bookkeeping::{
    CHECKPOINTS as CHECKPOINTS_TABLE, REJECTS as REJECTS_TABLE, RUNS as RUNS_TABLE,
    STEPS as STEPS_TABLE,
};
pub use encode::SubMicrosecond;
pub use error::TransferError;
pub use pg::RetryPolicy;
pub use report::{plan_text, Reject, TableReport, TransferReport};
pub use schema::FERRY_PREFIX;

use crate::bookkeeping::DeferredConstraint;
use crate::ddl::Step;
use crate::encode::ConvertOptions;
use crate::error::Result;
use crate::ident::{qualified, quote};
use crate::pg::{describe, PgTarget};
use crate::steps::record_step;

/// Where a transfer writes.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: SecretUrl,
    /// Created when missing (derived mode); must exist with its tables (managed mode).
    pub schema: String,
}

/// How a transfer runs.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Parallel PostgreSQL connections (and SQLite readers).
    pub workers: usize,
    /// Rows per checkpointed chunk.
    pub chunk_rows: u64,
    pub invalid_text: InvalidTextPolicy,
    /// Seconds east of UTC in which timestamps without an offset are read.
    pub naive_offset_seconds: i32,
    pub sub_microsecond: SubMicrosecond,
    pub retry: RetryPolicy,
    /// Draw progress bars (on a terminal only).
    pub progress: bool,
    /// `application_name` of ferry's PostgreSQL sessions.
    pub application_name: String,
    /// Sleep after each committed chunk and each post-data step: widens the window in
    /// which a test kills the transfer.
    pub pause_after_chunk: Option<Duration>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            chunk_rows: 50_000,
            invalid_text: InvalidTextPolicy::Reject,
            naive_offset_seconds: 0,
            sub_microsecond: SubMicrosecond::Reject,
            retry: RetryPolicy::default(),
            progress: true,
            application_name: "ferry-transfer".into(),
            pause_after_chunk: None,
        }
    }
}

impl TransferOptions {
    /// The options a [`Config`] sets (`transfer.*`, `timestamps.naive`).
    pub fn from_config(config: &Config) -> Self {
        Self {
            workers: config.transfer.workers,
            chunk_rows: config.transfer.chunk_rows,
            invalid_text: config.transfer.invalid_text,
            naive_offset_seconds: config.timestamps.naive_offset_seconds(),
            ..Self::default()
        }
    }

    fn convert(&self) -> ConvertOptions {
        ConvertOptions {
            naive_offset: self.naive_offset_seconds,
            sub_microsecond: self.sub_microsecond,
        }
    }
}

/// Profiles a SQLite file and derives a PostgreSQL schema for it.
pub async fn plan_derived(
    sqlite: &Path,
    schema: &str,
    opts: &TransferOptions,
) -> Result<TransferPlan> {
    let path = absolute(sqlite);
    let schema = schema.to_owned();
    let opts = opts.clone();
    blocking(move || {
        let profiled = plan_build::profile_file(&path, opts.workers)?;
        Ok(plan_build::derive(&path, &profiled, &schema, &opts))
    })
    .await
}

/// Profiles a SQLite file and matches it, by table and column name, to the tables that
/// already exist in the target schema. Tables named `ferry_…` on either side are skipped.
pub async fn plan_managed(
    sqlite: &Path,
    target: &Target,
    opts: &TransferOptions,
) -> Result<TransferPlan> {
    let pg = PgTarget::new(
        &target.url,
        &target.schema,
        opts.retry,
        &opts.application_name,
    )?;
    let mut conn = pg.connect("reading the target schema").await?;
    let catalog = target_catalog(&pg, &mut conn).await;
    PgTarget::close(conn).await;
    let catalog = catalog?;
    if catalog.is_empty() {
        return Err(TransferError::Target {
            schema: target.schema.clone(),
            message: "has no tables; managed mode copies into tables made by the migrations".into(),
        });
    }
    let path = absolute(sqlite);
    let schema = target.schema.clone();
    let workers = opts.workers;
    blocking(move || {
        let profiled = plan_build::profile_file(&path, workers)?;
        plan_build::managed(&path, &profiled, &schema, &catalog)
    })
    .await
}

/// How a plan names a SQLite file (its absolute path): compare with
/// [`RecordedRun::source`] to know whether a recorded run copies this file.
pub fn source_name(path: &Path) -> String {
    absolute(path).display().to_string()
}

/// The file's absolute path, so a plan names its source the same from any directory (and
/// a resumed run recognises it).
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(TransferError::Inconsistent {
            table: String::new(),
            message: format!("a blocking task stopped: {e}"),
        })
    })
}

async fn target_catalog(
    pg: &PgTarget,
    conn: &mut PgConnection,
) -> Result<HashMap<String, Vec<plan_build::TargetColumn>>> {
    let rows = sqlx::query(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text,
                a.attnotnull, a.atthasdef OR a.attidentity <> '', a.attgenerated <> ''
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_type t ON t.oid = a.atttypid
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY c.relname, a.attnum",
    )
    .bind(&pg.schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| pg.err("reading the target catalog", &e))?;
    let mut out: HashMap<String, Vec<plan_build::TargetColumn>> = HashMap::new();
    for r in rows {
        let table: String = r.get(0);
        if table.starts_with(FERRY_PREFIX) {
            continue;
        }
        out.entry(table)
            .or_default()
            .push(plan_build::TargetColumn {
                name: r.get(1),
                formatted: r.get(2),
                typname: r.get(3),
                not_null: r.get(4),
                has_default: r.get(5),
                generated: r.get(6),
            });
    }
    Ok(out)
}

/// A transfer recorded in a target schema.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    /// The SQLite file it copies.
    pub source: String,
    pub plan: TransferPlan,
    /// Finished (every chunk and step done).
    pub complete: bool,
}

/// The transfer recorded in the target schema, if any: an unfinished one is continued by
/// running [`execute`] with its plan.
pub async fn recorded_run(target: &Target, opts: &TransferOptions) -> Result<Option<RecordedRun>> {
    let pg = PgTarget::new(
        &target.url,
        &target.schema,
        opts.retry,
        &opts.application_name,
    )?;
    let mut conn = pg.connect("reading the recorded transfer").await?;
    let res = load_recorded(&mut conn, &target.schema).await;
    PgTarget::close(conn).await;
    let Some(run) = res.map_err(|e| pg.err("reading the recorded transfer", &e))? else {
        return Ok(None);
    };
    let plan: TransferPlan =
        serde_json::from_value(run.plan).map_err(|e| TransferError::Target {
            schema: target.schema.clone(),
            message: format!("holds a transfer plan this ferry cannot read: {e}"),
        })?;
    Ok(Some(RecordedRun {
        source: run.source,
        plan,
        complete: run.status == bookkeeping::STATUS_COMPLETE,
    }))
}

async fn load_recorded(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Option<bookkeeping::Run>, sqlx::Error> {
    if !bookkeeping::run_table_exists(conn, schema).await? {
        return Ok(None);
    }
    bookkeeping::load_run(conn, schema).await
}

/// Plans (or takes the unfinished plan recorded in the target) and executes.
pub async fn transfer(
    sqlite: &Path,
    target: &Target,
    mode: PlanMode,
    opts: &TransferOptions,
) -> Result<(TransferPlan, TransferReport)> {
    let plan = match recorded_run(target, opts).await? {
        Some(run) if !run.complete && run.source == source_name(sqlite) => run.plan,
        _ => match mode {
            PlanMode::Derived => plan_derived(sqlite, &target.schema, opts).await?,
            PlanMode::Managed => plan_managed(sqlite, target, opts).await?,
        },
    };
    let report = execute(&plan, target, opts).await?;
    Ok((plan, report))
}

/// A digest of what the target tables are made of: two plans with the same fingerprint
/// write the same tables, columns and types.
pub fn fingerprint(plan: &TransferPlan) -> String {
    let shape: Vec<serde_json::Value> = plan
        .tables
        .iter()
        .map(|t| {
            serde_json::json!({
                "source": t.source, "target": t.target, "kind": t.kind, "key": t.primary_key,
                "columns": t.columns.iter().map(|c| serde_json::json!([c.source, c.target, c.target_type, c.not_null])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let json =
        serde_json::json!({ "mode": plan.mode, "schema": plan.target_schema, "tables": shape });
    hex::encode(Sha256::digest(json.to_string().as_bytes()))
}

/// Executes a plan: schema (derived), copy, post-data steps, verification, report. Resumes
/// when the target schema records an unfinished run of the same plan.
pub async fn execute(
    plan: &TransferPlan,
    target: &Target,
    opts: &TransferOptions,
) -> Result<TransferReport> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let schema = target.schema.clone();
    if plan.target_schema != schema {
        return Err(TransferError::Target {
            schema,
            message: format!("the plan was made for schema {:?}", plan.target_schema),
        });
    }
    ferry_core::config::check_identifier(&schema).map_err(|message| TransferError::Target {
        schema: schema.clone(),
        message,
    })?;
    let source_path = PathBuf::from(&plan.source);
    let source = {
        let p = source_path.clone();
        blocking(move || schema::SourceSchema::read(&p)).await?
    };
    let pg = PgTarget::new(&target.url, &schema, opts.retry, &opts.application_name)?;
    let mut control = pg.connect("connecting").await?;
    let res = execute_on(plan, &pg, &mut control, &source, opts, started_at, clock).await;
    PgTarget::close(control).await;
    res
}

async fn execute_on(
    plan: &TransferPlan,
    pg: &PgTarget,
    control: &mut PgConnection,
    source: &schema::SourceSchema,
    opts: &TransferOptions,
    started_at: chrono::DateTime<chrono::Utc>,
    clock: Instant,
) -> Result<TransferReport> {
    let schema = &pg.schema;
    // One transfer per schema at a time; the lock goes with the session, also on kill -9.
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(hashtextextended('ferry-transfer:' || $1, 0))",
    )
    .bind(schema)
    .fetch_one(&mut *control)
    .await
    .map_err(|e| pg.err("taking the transfer lock", &e))?;
    if !locked {
        return Err(TransferError::Target {
            schema: schema.clone(),
            message: "another ferry transfer into this schema is running".into(),
        });
    }
    if plan.mode == PlanMode::Managed {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut *control)
                .await
                .map_err(|e| pg.err("looking for the schema", &e))?;
        if !exists {
            return Err(TransferError::Target {
                schema: schema.clone(),
                message: "does not exist; managed mode needs the migrated schema".into(),
            });
        }
    }
    bookkeeping::ensure(control, schema)
        .await
        .map_err(|e| pg.err("creating ferry's bookkeeping tables", &e))?;
    let fp = fingerprint(plan);
    let mut names = ddl::DerivedNames::new(plan, source);
    let run = bookkeeping::load_run(control, schema)
        .await
        .map_err(|e| pg.err("reading the recorded transfer", &e))?;
    let (deferred, resumed) = match run {
        None => (start(plan, pg, control, source, &names, &fp).await?, false),
        Some(run) if run.status == bookkeeping::STATUS_COMPLETE => {
            return Err(TransferError::Target {
                schema: schema.clone(),
                message: format!(
                    "already holds a completed transfer of {}; drop the schema (or its tables and ferry_transfer_* tables) to copy again",
                    run.source
                ),
            })
        }
        Some(run) if run.fingerprint != fp || run.source != plan.source => {
            return Err(TransferError::Target {
                schema: schema.clone(),
                message: format!(
                    "holds an unfinished transfer of {} with a different plan; continue it with its recorded plan, or drop the schema",
                    run.source
                ),
            })
        }
        Some(run) => (run.deferred, true),
    };
    let mut stages = vec![("start".to_owned(), clock.elapsed().as_secs_f64())];
    let mut mark = Instant::now();
    let mut stage = |name: &str, stages: &mut Vec<(String, f64)>| {
        stages.push((name.to_owned(), mark.elapsed().as_secs_f64()));
        tracing::info!("{name} took {:.2} s", mark.elapsed().as_secs_f64());
        mark = Instant::now();
    };
    tracing::info!(schema = %schema, resumed, "copying {} tables", plan.tables.len());
    let bars = progress::Bars::new(opts.progress);
    let specs = plan
        .tables
        .iter()
        .map(|t| engine::TableSpec::new(schema, t).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let all_steps = match plan.mode {
        PlanMode::Derived => ddl::derived_steps(plan, source, &mut names),
        PlanMode::Managed => ddl::managed_steps(
            plan,
            &deferred,
            &managed_sequences(pg, control, plan).await?,
        ),
    };
    let done_steps: HashSet<String> = bookkeeping::steps(control, schema)
        .await
        .map_err(|e| pg.err("reading the finished steps", &e))?
        .into_iter()
        .map(|(s, _, _)| s)
        .collect();
    let (views, keys): (Vec<Step>, Vec<Step>) = ddl::schedule(all_steps)
        .into_iter()
        .partition(|s| s.stage == ddl::STAGE_VIEWS);
    let outcomes = engine::CopyStage {
        pg,
        source: Path::new(&plan.source),
        specs,
        conv: opts.convert(),
        workers: opts.workers,
        chunk_rows: opts.chunk_rows,
        bars: &bars,
        pause_after_chunk: opts.pause_after_chunk,
        steps: keys
            .into_iter()
            .filter(|s| !done_steps.contains(&s.id))
            .collect(),
        done_steps,
    }
    .run(control)
    .await?;
    stage("copy and keys", &mut stages);
    steps::run_steps(pg, control, views, opts.workers, opts.pause_after_chunk).await?;
    stage("views", &mut stages);

    // Verify: PostgreSQL holds exactly the rows the checkpoints account for.
    let mut tables = Vec::new();
    for t in &plan.tables {
        let cps = bookkeeping::checkpoints(control, schema, &t.source)
            .await
            .map_err(|e| pg.err(format!("reading the checkpoints of {:?}", t.source), &e))?;
        let rows: i64 = cps.iter().map(|c| c.rows).sum();
        let rejected: i64 = cps.iter().map(|c| c.rejected_rows).sum();
        let stored: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}",
            qualified(schema, &t.target)
        ))
        .fetch_one(&mut *control)
        .await
        .map_err(|e| pg.err(format!("counting the rows of {:?}", t.target), &e))?;
        if stored != rows {
            return Err(TransferError::Inconsistent {
                table: t.source.clone(),
                message: format!(
                    "PostgreSQL holds {stored} rows but the checkpoints account for {rows}"
                ),
            });
        }
        if let Some(o) = outcomes.get(&t.source) {
            if let (false, Some(snapshot)) = (o.resumed, o.source_snapshot_rows) {
                if snapshot != o.rows + o.rejected_rows {
                    return Err(TransferError::Inconsistent {
                        table: t.source.clone(),
                        message: format!(
                            "the SQLite snapshot holds {snapshot} rows; {} were stored and {} rejected",
                            o.rows, o.rejected_rows
                        ),
                    });
                }
            }
        }
        tables.push(TableReport {
            source: t.source.clone(),
            target: t.target.clone(),
            rows: rows as u64,
            bytes: cps.iter().map(|c| c.bytes).sum::<i64>() as u64,
            seconds: cps.iter().map(|c| c.seconds).sum(),
            rejected_rows: rejected as u64,
            chunks: cps.len() as u64,
        });
    }
    sqlx::query(&format!(
        "UPDATE {} SET status = $1, finished_at = now() WHERE id = 1",
        qualified(schema, bookkeeping::RUNS)
    ))
    .bind(bookkeeping::STATUS_COMPLETE)
    .execute(&mut *control)
    .await
    .map_err(|e| pg.err("recording the end of the transfer", &e))?;

    stage("verify", &mut stages);
    let mut rejects = Vec::new();
    let mut adjusted = Vec::new();
    for r in bookkeeping::rejects(control, schema)
        .await
        .map_err(|e| pg.err("reading the rejects", &e))?
    {
        let item = Reject {
            table: r.table,
            key: r.key,
            column: r.column,
            reason: r.reason,
            bytes_hex: r.bytes_hex,
        };
        if r.kind == "adjusted" {
            adjusted.push(item);
        } else {
            rejects.push(item);
        }
    }
    let mut warnings = plan.warnings.clone();
    for (_, outcome, detail) in bookkeeping::steps(control, schema)
        .await
        .map_err(|e| pg.err("reading the steps", &e))?
    {
        match outcome.as_str() {
            "failed" => warnings.push(format!("not carried over: {detail}")),
            "not_valid" => warnings.push(format!(
                "left NOT VALID (existing rows violate it): {detail}"
            )),
            _ => {}
        }
    }
    let mut renames = plan.renames.clone();
    renames.extend(names.renames.iter().cloned());
    Ok(TransferReport {
        ferry_version: ferry_core::FERRY_VERSION.to_owned(),
        source: plan.source.clone(),
        target: pg.url.to_string(),
        schema: schema.clone(),
        mode: plan.mode,
        started_at,
        finished_at: chrono::Utc::now(),
        seconds: clock.elapsed().as_secs_f64(),
        resumed,
        tables,
        rejects,
        adjusted,
        renames,
        warnings,
        stage_seconds: stages,
    })
}

/// First run: creates the tables (derived) or takes the foreign keys off (managed), and
/// records the run, all in one transaction.
async fn start(
    plan: &TransferPlan,
    pg: &PgTarget,
    conn: &mut PgConnection,
    source: &schema::SourceSchema,
    names: &ddl::DerivedNames,
    fp: &str,
) -> Result<Vec<DeferredConstraint>> {
    let ctx = "creating the target tables";
    let wrap = |e: sqlx::Error| pg.err(ctx, &e);
    pg::exec(&mut *conn, "BEGIN").await.map_err(wrap)?;
    let res = start_body(plan, pg, conn, source, names, fp).await;
    match res {
        Ok(d) => {
            pg::exec(&mut *conn, "COMMIT").await.map_err(wrap)?;
            Ok(d)
        }
        Err(e) => {
            let _ = pg::exec(&mut *conn, "ROLLBACK").await;
            Err(e)
        }
    }
}

async fn start_body(
    plan: &TransferPlan,
    pg: &PgTarget,
    conn: &mut PgConnection,
    source: &schema::SourceSchema,
    names: &ddl::DerivedNames,
    fp: &str,
) -> Result<Vec<DeferredConstraint>> {
    let schema = &pg.schema;
    let ctx = "creating the target tables";
    let wrap = |e: sqlx::Error| pg.err(ctx, &e);
    let mut deferred = Vec::new();
    let steps_table = qualified(schema, bookkeeping::STEPS);
    match plan.mode {
        PlanMode::Derived => {
            let (creates, defaults, warnings) = ddl::create_tables(plan, source, names);
            for sql in creates {
                pg::exec(&mut *conn, &sql)
                    .await
                    .map_err(|e| pg.err(format!("running {sql}"), &e))?;
            }
            for (n, (what, sql)) in defaults.iter().enumerate() {
                pg::exec(&mut *conn, "SAVEPOINT ferry_default")
                    .await
                    .map_err(wrap)?;
                match pg::exec(&mut *conn, sql).await {
                    Ok(_) => {
                        pg::exec(&mut *conn, "RELEASE SAVEPOINT ferry_default")
                            .await
                            .map_err(wrap)?;
                    }
                    Err(e) => {
                        pg::exec(&mut *conn, "ROLLBACK TO SAVEPOINT ferry_default")
                            .await
                            .map_err(wrap)?;
                        record_step(
                            conn,
                            &steps_table,
                            &format!("default:{n}"),
                            "failed",
                            &format!("{what}: {}", describe(&e)),
                        )
                        .await
                        .map_err(wrap)?;
                    }
                }
            }
            for (n, w) in warnings.iter().enumerate() {
                record_step(
                    conn,
                    &steps_table,
                    &format!("default-untranslated:{n}"),
                    "failed",
                    w,
                )
                .await
                .map_err(wrap)?;
            }
        }
        PlanMode::Managed => {
            for t in &plan.tables {
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM {}",
                    qualified(schema, &t.target)
                ))
                .fetch_one(&mut *conn)
                .await
                .map_err(wrap)?;
                if n > 0 {
                    return Err(TransferError::Target {
                        schema: schema.clone(),
                        message: format!("table {:?} already holds {n} rows; managed mode copies into empty tables", t.target),
                    });
                }
            }
            let targets: Vec<String> = plan.tables.iter().map(|t| t.target.clone()).collect();
            let rows = sqlx::query(
                "SELECT c.relname::text, con.conname::text, pg_get_constraintdef(con.oid)
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE con.contype = 'f' AND n.nspname = $1 AND c.relname = ANY($2)
                 ORDER BY c.relname, con.conname",
            )
            .bind(schema)
            .bind(&targets)
            .fetch_all(&mut *conn)
            .await
            .map_err(wrap)?;
            for r in rows {
                let c = DeferredConstraint {
                    table: r.get(0),
                    name: r.get(1),
                    definition: r.get(2),
                };
                // Rows arrive in any order and in parallel: the keys are checked after.
                pg::exec(
                    conn,
                    &format!(
                        "ALTER TABLE {} DROP CONSTRAINT {}",
                        qualified(schema, &c.table),
                        quote(&c.name)
                    ),
                )
                .await
                .map_err(wrap)?;
                deferred.push(c);
            }
        }
    }
    let mode = match plan.mode {
        PlanMode::Derived => "derived",
        PlanMode::Managed => "managed",
    };
    let plan_json = serde_json::to_value(plan).map_err(|e| TransferError::Target {
        schema: schema.clone(),
        message: e.to_string(),
    })?;
    let deferred_json = serde_json::to_value(&deferred).map_err(|e| TransferError::Target {
        schema: schema.clone(),
        message: e.to_string(),
    })?;
    sqlx::query(&format!(
        "INSERT INTO {} (id, source, mode, fingerprint, plan, status, deferred, ferry_version) VALUES (1, $1, $2, $3, $4, $5, $6, $7)",
        qualified(schema, bookkeeping::RUNS)
    ))
    .bind(&plan.source)
    .bind(mode)
    .bind(fp)
    .bind(sqlx::types::Json(plan_json))
    .bind(bookkeeping::STATUS_COPYING)
    .bind(sqlx::types::Json(deferred_json))
    .bind(ferry_core::FERRY_VERSION)
    .execute(&mut *conn)
    .await
    .map_err(wrap)?;
    Ok(deferred)
}

/// `(table, column, sequence)` of every identity or serial column of the managed tables.
async fn managed_sequences(
    pg: &PgTarget,
    conn: &mut PgConnection,
    plan: &TransferPlan,
) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for t in &plan.tables {
        for c in &t.columns {
            let seq: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                .bind(qualified(&pg.schema, &t.target))
                .bind(&c.target)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| pg.err("looking up sequences", &e))?;
            if let Some(seq) = seq {
                out.push((t.target.clone(), c.target.clone(), seq));
            }
        }
    }
    Ok(out)
}
