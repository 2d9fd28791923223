//! What a target schema records about its transfer, read back: the run and its plan (an
//! unfinished run is resumed with it: the resume rule lives here, not in the command line),
//! the report of a transfer without running it again, and a person's acknowledgement of
//! what was not carried over.

use std::path::Path;

use ferry_core::pg::PgTarget;
use ferry_core::plan::{PlanMode, Rename, TransferPlan};
use sqlx::postgres::PgConnection;

use crate::bookkeeping;
use crate::error::{Result, TransferError};
use crate::pg::Connector;
use crate::report::{self, TableReport, TransferReport};
use crate::{execute, plan_derived, plan_managed, source_name, TransferOptions};

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
pub async fn recorded_run(
    target: &PgTarget,
    opts: &TransferOptions,
) -> Result<Option<RecordedRun>> {
    let pg = Connector::new(target, opts.retry, &opts.application_name)?;
    let mut conn = pg.connect("reading the recorded transfer").await?;
    let res = load(&pg, &mut conn).await;
    Connector::close(conn).await;
    Ok(res?.map(|(run, plan)| RecordedRun {
        source: run.source,
        plan,
        complete: run.status == bookkeeping::STATUS_COMPLETE,
    }))
}

async fn load(
    pg: &Connector,
    conn: &mut PgConnection,
) -> Result<Option<(bookkeeping::Run, TransferPlan)>> {
    let read = |e: sqlx::Error| pg.err("reading the recorded transfer", &e);
    if !bookkeeping::run_table_exists(conn, &pg.schema)
        .await
        .map_err(read)?
    {
        return Ok(None);
    }
    let Some(run) = bookkeeping::load_run(conn, &pg.schema)
        .await
        .map_err(read)?
    else {
        return Ok(None);
    };
    let plan: TransferPlan =
        serde_json::from_value(run.plan.clone()).map_err(|e| TransferError::Target {
            schema: pg.schema.clone(),
            message: format!("holds a transfer plan this ferry cannot read: {e}"),
        })?;
    Ok(Some((run, plan)))
}

/// A plan to execute, and whether it continues a transfer that was interrupted.
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: TransferPlan,
    /// The plan is the one recorded in the target schema by an unfinished transfer of the
    /// same file: executing it continues that transfer where it stopped.
    pub resumes: bool,
}

/// The resume rule: when the target schema records an unfinished transfer of this same
/// file, its recorded plan (so the transfer continues exactly as it began); otherwise a new
/// plan, derived from the file or matched to the managed schema.
pub async fn plan_or_resume(
    sqlite: &Path,
    target: &PgTarget,
    mode: PlanMode,
    opts: &TransferOptions,
) -> Result<Planned> {
    if let Some(run) = recorded_run(target, opts).await? {
        if !run.complete && run.source == source_name(sqlite) {
            return Ok(Planned {
                plan: run.plan,
                resumes: true,
            });
        }
    }
    let plan = match mode {
        PlanMode::Derived => plan_derived(sqlite, &target.schema, opts).await?,
        PlanMode::Managed => plan_managed(sqlite, target, opts).await?,
    };
    Ok(Planned {
        plan,
        resumes: false,
    })
}

/// Plans (or takes the unfinished plan recorded in the target) and executes.
pub async fn transfer(
    sqlite: &Path,
    target: &PgTarget,
    mode: PlanMode,
    opts: &TransferOptions,
) -> Result<(TransferPlan, TransferReport)> {
    let planned = plan_or_resume(sqlite, target, mode, opts).await?;
    let report = execute(&planned.plan, target, opts).await?;
    Ok((planned.plan, report))
}

/// The report of the transfer recorded in the target schema (finished or not), read from
/// its bookkeeping without copying anything.
pub async fn recorded_report(
    target: &PgTarget,
    opts: &TransferOptions,
) -> Result<Option<TransferReport>> {
    let pg = Connector::new(target, opts.retry, &opts.application_name)?;
    let mut conn = pg.connect("reading the recorded transfer").await?;
    let res = report_of(&pg, &mut conn).await;
    Connector::close(conn).await;
    res
}

async fn report_of(pg: &Connector, conn: &mut PgConnection) -> Result<Option<TransferReport>> {
    let Some((run, plan)) = load(pg, conn).await? else {
        return Ok(None);
    };
    bookkeeping::ensure(conn, &pg.schema)
        .await
        .map_err(|e| pg.err("updating ferry's bookkeeping tables", &e))?;
    let mut tables = Vec::new();
    for t in &plan.tables {
        let cps = bookkeeping::checkpoints(conn, &pg.schema, &t.source)
            .await
            .map_err(|e| pg.err(format!("reading the checkpoints of {:?}", t.source), &e))?;
        tables.push(TableReport {
            source: t.source.clone(),
            target: t.target.clone(),
            rows: cps.iter().map(|c| c.rows).sum::<i64>() as u64,
            bytes: cps.iter().map(|c| c.bytes).sum::<i64>() as u64,
            seconds: cps.iter().map(|c| c.seconds).sum(),
            rejected_rows: cps.iter().map(|c| c.rejected_rows).sum::<i64>() as u64,
            chunks: cps.len() as u64,
        });
    }
    let mut renames: Vec<Rename> = plan.renames.clone();
    renames.extend(run.renames.iter().cloned());
    let seconds = run.finished_at.map_or(0.0, |f| {
        (f - run.started_at).num_milliseconds() as f64 / 1000.0
    });
    let report = report::assemble(
        pg,
        conn,
        report::Assembly {
            plan: &plan,
            tables,
            renames,
            started_at: run.started_at,
            seconds,
            resumed: false,
            stage_seconds: Vec::new(),
        },
    )
    .await?;
    Ok(Some(report))
}

/// Records a person's reason for accepting everything the recorded transfer did not carry
/// over (and has no acknowledgement yet), and returns the report with it. A later
/// validation and gate 3 read the acknowledgement from the target schema.
pub async fn acknowledge(
    target: &PgTarget,
    reason: &str,
    opts: &TransferOptions,
) -> Result<TransferReport> {
    if reason.trim().is_empty() {
        return Err(TransferError::Target {
            schema: target.schema.clone(),
            message: "an acknowledgement needs a reason a person wrote".into(),
        });
    }
    let pg = Connector::new(target, opts.retry, &opts.application_name)?;
    let mut conn = pg.connect("recording an acknowledgement").await?;
    let res = acknowledge_on(&pg, &mut conn, reason).await;
    Connector::close(conn).await;
    res
}

async fn acknowledge_on(
    pg: &Connector,
    conn: &mut PgConnection,
    reason: &str,
) -> Result<TransferReport> {
    let Some(report) = report_of(pg, conn).await? else {
        return Err(TransferError::Target {
            schema: pg.schema.clone(),
            message: "holds no recorded transfer to acknowledge".into(),
        });
    };
    let open: Vec<_> = report.unacknowledged().collect();
    bookkeeping::acknowledge(conn, &pg.schema, &open, reason.trim())
        .await
        .map_err(|e| pg.err("recording the acknowledgement", &e))?;
    tracing::info!(
        schema = %pg.schema,
        objects = open.len(),
        "acknowledged what was not carried over"
    );
    report_of(pg, conn)
        .await?
        .ok_or_else(|| TransferError::Target {
            schema: pg.schema.clone(),
            message: "lost its recorded transfer while acknowledging".into(),
        })
}
