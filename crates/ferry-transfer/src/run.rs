//! Executing a plan: the lock, the first run's schema (or the resume of an unfinished one),
//! the copy with its post-data steps, the verification against the checkpoints, and the
//! report.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ferry_core::pg::PgTarget;
use ferry_core::plan::{PlanMode, TransferPlan};
use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::bookkeeping::{self, record_step, DeferredConstraint};
use crate::ddl::{self, Step};
use crate::engine;
use crate::error::{Result, TransferError};
use crate::ident::{qualified, quote};
use crate::pg::{self, describe, Connector};
use crate::report::{self, TableReport, TransferReport};
use crate::schema::SourceSchema;
use crate::steps;
use crate::{blocking, fingerprint, TransferOptions};

/// Executes a plan: schema (derived), copy, post-data steps, verification, report. Resumes
/// when the target schema records an unfinished run of the same plan.
pub async fn execute(
    plan: &TransferPlan,
    target: &PgTarget,
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
    let source = {
        let p = PathBuf::from(&plan.source);
        blocking(move || SourceSchema::read(&p)).await?
    };
    let pg = Connector::new(target, opts.retry, &opts.application_name)?;
    let mut control = pg.connect("connecting").await?;
    let run = Run {
        plan,
        pg: &pg,
        source: &source,
        opts,
        started_at,
        clock,
    };
    let res = run.execute_on(&mut control).await;
    Connector::close(control).await;
    res
}

/// One execution of a plan.
struct Run<'a> {
    plan: &'a TransferPlan,
    pg: &'a Connector,
    source: &'a SourceSchema,
    opts: &'a TransferOptions,
    started_at: chrono::DateTime<chrono::Utc>,
    clock: Instant,
}

/// Wall seconds per stage of one run, logged as they end.
struct Stages {
    done: Vec<(String, f64)>,
    mark: Instant,
}

impl Stages {
    fn new(start: f64) -> Self {
        Self {
            done: vec![("start".to_owned(), start)],
            mark: Instant::now(),
        }
    }

    fn end(&mut self, name: &str) {
        let secs = self.mark.elapsed().as_secs_f64();
        tracing::info!("{name} took {secs:.2} s");
        self.done.push((name.to_owned(), secs));
        self.mark = Instant::now();
    }
}

impl Run<'_> {
    async fn execute_on(&self, control: &mut PgConnection) -> Result<TransferReport> {
        let (plan, pg) = (self.plan, self.pg);
        let schema = &pg.schema;
        lock(pg, control).await?;
        if plan.mode == PlanMode::Managed {
            require_schema(pg, control).await?;
        }
        bookkeeping::ensure(control, schema)
            .await
            .map_err(|e| pg.err("creating ferry's bookkeeping tables", &e))?;
        let mut names = ddl::DerivedNames::new(plan, self.source);
        let (deferred, resumed) = self.start_or_resume(control, &names).await?;
        let mut stages = Stages::new(self.clock.elapsed().as_secs_f64());
        tracing::info!(schema = %schema, resumed, "copying {} tables", plan.tables.len());

        let all_steps = match plan.mode {
            PlanMode::Derived => ddl::derived_steps(plan, self.source, &mut names),
            PlanMode::Managed => ddl::managed_steps(
                plan,
                &deferred,
                &managed_sequences(pg, control, plan).await?,
            ),
        };
        let outcomes = self.copy(control, all_steps.clone()).await?;
        stages.end("copy and keys");
        let (_, late) = split_late(all_steps);
        steps::run_steps(
            pg,
            control,
            late,
            self.opts.workers,
            self.opts.pause_after_chunk,
        )
        .await?;
        stages.end("views");

        let tables = self.verify(control, &outcomes).await?;
        mark_complete(pg, control).await?;
        stages.end("verify");
        let mut renames = plan.renames.clone();
        renames.extend(names.renames.iter().cloned());
        report::assemble(
            pg,
            control,
            report::Assembly {
                plan,
                tables,
                renames,
                started_at: self.started_at,
                seconds: self.clock.elapsed().as_secs_f64(),
                resumed,
                stage_seconds: stages.done,
            },
        )
        .await
    }

    /// Starts a first run, or takes up the unfinished run recorded in the schema.
    async fn start_or_resume(
        &self,
        control: &mut PgConnection,
        names: &ddl::DerivedNames,
    ) -> Result<(Vec<DeferredConstraint>, bool)> {
        let (plan, pg) = (self.plan, self.pg);
        let schema = &pg.schema;
        let fp = fingerprint(plan);
        let run = bookkeeping::load_run(control, schema)
            .await
            .map_err(|e| pg.err("reading the recorded transfer", &e))?;
        match run {
            None => Ok((start(plan, pg, control, self.source, names, &fp).await?, false)),
            Some(run) if run.status == bookkeeping::STATUS_COMPLETE => Err(TransferError::Target {
                schema: schema.clone(),
                message: format!(
                    "already holds a completed transfer of {}; drop the schema (or its tables and ferry_transfer_* tables) to copy again",
                    run.source
                ),
            }),
            Some(run) if run.fingerprint != fp || run.source != plan.source => {
                Err(TransferError::Target {
                    schema: schema.clone(),
                    message: format!(
                        "holds an unfinished transfer of {} with a different plan; continue it with its recorded plan, or drop the schema",
                        run.source
                    ),
                })
            }
            Some(run) => Ok((run.deferred, true)),
        }
    }

    /// The copy stage, with the post-data steps that can run beside it.
    async fn copy(
        &self,
        control: &mut PgConnection,
        all_steps: Vec<Step>,
    ) -> Result<HashMap<String, engine::CopyOutcome>> {
        let (plan, pg, opts) = (self.plan, self.pg, self.opts);
        let bars = crate::progress::Bars::new(opts.progress);
        let generated = generated_columns(pg, control).await?;
        let specs = plan
            .tables
            .iter()
            .map(|t| {
                let skip = generated.get(&t.target).cloned().unwrap_or_default();
                engine::TableSpec::new(&pg.schema, t, &skip).map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        let recorded = bookkeeping::steps(control, &pg.schema)
            .await
            .map_err(|e| pg.err("reading the finished steps", &e))?;
        let done_steps: HashSet<String> = recorded.iter().map(|s| s.step.clone()).collect();
        let failed_steps: HashSet<String> = recorded
            .iter()
            .filter(|s| s.outcome != "ok")
            .map(|s| s.step.clone())
            .collect();
        let (early, _) = split_late(all_steps);
        let source = Path::new(&plan.source);
        let stamp = if opts.source_immutable {
            Some(crate::sqlite::FileStamp::take(source)?)
        } else {
            None
        };
        let outcomes = engine::CopyStage {
            pg,
            source,
            specs,
            conv: opts.convert(),
            workers: opts.workers,
            chunk_rows: opts.chunk_rows,
            bars: &bars,
            pause_after_chunk: opts.pause_after_chunk,
            steps: early
                .into_iter()
                .filter(|s| !done_steps.contains(&s.id))
                .collect(),
            done_steps,
            failed_steps,
            source_immutable: opts.source_immutable,
        }
        .run(control)
        .await?;
        // Readers of one table may each have read their own snapshot: only the same file
        // before and after makes them one.
        if let Some(before) = stamp {
            let after = crate::sqlite::FileStamp::take(source)?;
            if let Some(what) = after.changed_since(&before) {
                return Err(TransferError::Source {
                    path: source.to_owned(),
                    context: "copying a source declared unchanging".into(),
                    message: format!(
                        "{what} changed during the copy, so the tables' readers may have seen different states; drop the target schema and copy again from a snapshot, or without declaring the source unchanging"
                    ),
                });
            }
        }
        Ok(outcomes)
    }

    /// PostgreSQL holds exactly the rows the checkpoints account for, and this run's copy
    /// accounts for every row of its SQLite snapshot.
    async fn verify(
        &self,
        control: &mut PgConnection,
        outcomes: &HashMap<String, engine::CopyOutcome>,
    ) -> Result<Vec<TableReport>> {
        let (plan, pg) = (self.plan, self.pg);
        let schema = &pg.schema;
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
        Ok(tables)
    }
}

/// Post-data steps that wait for every table and key (views, triggers) apart from those
/// that run beside the copy: `(early, late)`.
fn split_late(all: Vec<Step>) -> (Vec<Step>, Vec<Step>) {
    let (late, early): (Vec<Step>, Vec<Step>) = ddl::schedule(all)
        .into_iter()
        .partition(|s| s.stage >= ddl::STAGE_VIEWS);
    (early, late)
}

/// One transfer per schema at a time; the lock goes with the session, also on kill -9.
async fn lock(pg: &Connector, control: &mut PgConnection) -> Result<()> {
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(hashtextextended('ferry-transfer:' || $1, 0))",
    )
    .bind(&pg.schema)
    .fetch_one(&mut *control)
    .await
    .map_err(|e| pg.err("taking the transfer lock", &e))?;
    if !locked {
        return Err(TransferError::Target {
            schema: pg.schema.clone(),
            message: "another ferry transfer into this schema is running".into(),
        });
    }
    Ok(())
}

async fn require_schema(pg: &Connector, control: &mut PgConnection) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&pg.schema)
            .fetch_one(&mut *control)
            .await
            .map_err(|e| pg.err("looking for the schema", &e))?;
    if !exists {
        return Err(TransferError::Target {
            schema: pg.schema.clone(),
            message: "does not exist; managed mode needs the migrated schema".into(),
        });
    }
    Ok(())
}

async fn mark_complete(pg: &Connector, control: &mut PgConnection) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE {} SET status = $1, finished_at = now() WHERE id = 1",
        qualified(&pg.schema, bookkeeping::RUNS)
    ))
    .bind(bookkeeping::STATUS_COMPLETE)
    .execute(&mut *control)
    .await
    .map_err(|e| pg.err("recording the end of the transfer", &e))?;
    Ok(())
}

/// Target columns PostgreSQL computes itself (generated), by table: the copy leaves them out.
async fn generated_columns(
    pg: &Connector,
    control: &mut PgConnection,
) -> Result<HashMap<String, HashSet<String>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND a.attgenerated <> '' AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(&pg.schema)
    .fetch_all(&mut *control)
    .await
    .map_err(|e| pg.err("reading the generated columns", &e))?;
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (table, column) in rows {
        out.entry(table).or_default().insert(column);
    }
    Ok(out)
}

/// First run: creates the tables (derived) or takes the foreign keys off (managed), and
/// records the run, all in one transaction.
async fn start(
    plan: &TransferPlan,
    pg: &Connector,
    conn: &mut PgConnection,
    source: &SourceSchema,
    names: &ddl::DerivedNames,
    fp: &str,
) -> Result<Vec<DeferredConstraint>> {
    let wrap = |e: sqlx::Error| pg.err("creating the target tables", &e);
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
    pg: &Connector,
    conn: &mut PgConnection,
    source: &SourceSchema,
    names: &ddl::DerivedNames,
    fp: &str,
) -> Result<Vec<DeferredConstraint>> {
    let deferred = match plan.mode {
        PlanMode::Derived => {
            create_derived(plan, pg, conn, source, names).await?;
            Vec::new()
        }
        PlanMode::Managed => take_off_foreign_keys(plan, pg, conn).await?,
    };
    record_run(plan, pg, conn, fp, &deferred, &names.renames).await?;
    Ok(deferred)
}

/// The derived tables, then their defaults one by one (a default PostgreSQL refuses is
/// recorded, never fatal).
async fn create_derived(
    plan: &TransferPlan,
    pg: &Connector,
    conn: &mut PgConnection,
    source: &SourceSchema,
    names: &ddl::DerivedNames,
) -> Result<()> {
    let wrap = |e: sqlx::Error| pg.err("creating the target tables", &e);
    let created = ddl::create_tables(plan, source, names);
    for sql in &created.creates {
        pg::exec(&mut *conn, sql)
            .await
            .map_err(|e| pg.err(format!("running {sql}"), &e))?;
    }
    for attempt in &created.attempts {
        if let Some(problem) = &attempt.problem {
            record_step(conn, &pg.schema, &attempt.row("failed", problem))
                .await
                .map_err(wrap)?;
            continue;
        }
        pg::exec(&mut *conn, "SAVEPOINT ferry_attempt")
            .await
            .map_err(wrap)?;
        let mut res = Ok(());
        for sql in &attempt.sql {
            res = pg::exec(&mut *conn, sql).await;
            if res.is_err() {
                break;
            }
        }
        match res {
            Ok(()) => {
                pg::exec(&mut *conn, "RELEASE SAVEPOINT ferry_attempt")
                    .await
                    .map_err(wrap)?;
                record_step(conn, &pg.schema, &attempt.row("ok", &attempt.what))
                    .await
                    .map_err(wrap)?;
            }
            Err(e) => {
                pg::exec(&mut *conn, "ROLLBACK TO SAVEPOINT ferry_attempt")
                    .await
                    .map_err(wrap)?;
                for sql in &attempt.fallback {
                    pg::exec(&mut *conn, sql)
                        .await
                        .map_err(|e| pg.err(format!("running {sql}"), &e))?;
                }
                record_step(conn, &pg.schema, &attempt.row("failed", &describe(&e)))
                    .await
                    .map_err(wrap)?;
            }
        }
    }
    Ok(())
}

/// Managed mode: rows arrive in any order and in parallel, so the target's foreign keys
/// come off for the copy and are put back (and validated) after it.
async fn take_off_foreign_keys(
    plan: &TransferPlan,
    pg: &Connector,
    conn: &mut PgConnection,
) -> Result<Vec<DeferredConstraint>> {
    let schema = &pg.schema;
    let wrap = |e: sqlx::Error| pg.err("preparing the target tables", &e);
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
                message: format!(
                    "table {:?} already holds {n} rows; managed mode copies into empty tables",
                    t.target
                ),
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
    let mut deferred = Vec::new();
    for r in rows {
        let c = DeferredConstraint {
            table: r.get(0),
            name: r.get(1),
            definition: r.get(2),
        };
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
    Ok(deferred)
}

async fn record_run(
    plan: &TransferPlan,
    pg: &Connector,
    conn: &mut PgConnection,
    fp: &str,
    deferred: &[DeferredConstraint],
    renames: &[ferry_core::plan::Rename],
) -> Result<()> {
    let schema = &pg.schema;
    let json = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| TransferError::Target {
            schema: schema.clone(),
            message: e.to_string(),
        })
    };
    let mode = match plan.mode {
        PlanMode::Derived => "derived",
        PlanMode::Managed => "managed",
    };
    sqlx::query(&format!(
        "INSERT INTO {} (id, source, mode, fingerprint, plan, status, deferred, ferry_version, renames) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8)",
        qualified(schema, bookkeeping::RUNS)
    ))
    .bind(&plan.source)
    .bind(mode)
    .bind(fp)
    .bind(sqlx::types::Json(json(serde_json::to_value(plan))?))
    .bind(bookkeeping::STATUS_COPYING)
    .bind(sqlx::types::Json(json(serde_json::to_value(deferred))?))
    .bind(ferry_core::FERRY_VERSION)
    .bind(sqlx::types::Json(json(serde_json::to_value(renames))?))
    .execute(&mut *conn)
    .await
    .map_err(|e| pg.err("recording the transfer", &e))?;
    Ok(())
}

/// `(table, column, sequence)` of every identity or serial column of the managed tables.
async fn managed_sequences(
    pg: &Connector,
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
