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
//! column, reason, bytes in hex), the rename map, and every constraint, default, index,
//! view or trigger that was not carried over, with its SQLite text and the reason. A value
//! that cannot be stored exactly is never altered: its row goes to the report. Nothing of
//! the schema is dropped quietly: until a person [`acknowledge`]s what was not carried
//! over, the report is not clean.
//!
//! Running [`execute`] again after a crash (even `kill -9`) continues where the last
//! committed chunk ended: each chunk commits with its checkpoint row in the target schema's
//! `ferry_transfer_checkpoints`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_transfer::TransferError> {
//! use ferry_transfer::{execute, plan_derived, PgTarget, TransferOptions};
//!
//! let target = PgTarget::new("postgres://postgres@127.0.0.1:5432/postgres", "chinook");
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
mod recorded;
mod report;
mod run;
mod schema;
mod sql;
mod sqlite;
mod steps;
pub mod typemap;
mod unify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::config::{Config, InvalidTextPolicy, MixedPolicy};
use ferry_core::plan::TransferPlan;
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
pub use ferry_core::pg::PgTarget;
pub use ferry_core::plan::{Acknowledgement, NotCarriedOver, ObjectKind};
pub use pg::RetryPolicy;
pub use recorded::{
    acknowledge, plan_or_resume, recorded_report, recorded_run, transfer, Planned, RecordedRun,
};
pub use report::{plan_text, Reject, TableReport, TransferReport};
pub use run::execute;
pub use schema::FERRY_PREFIX;

use crate::encode::ConvertOptions;
use crate::error::Result;
use crate::pg::Connector;

/// How a transfer runs.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Parallel PostgreSQL connections (and SQLite readers).
    pub workers: usize,
    /// Rows per checkpointed chunk.
    pub chunk_rows: u64,
    pub invalid_text: InvalidTextPolicy,
    /// Where a column mixing INTEGER and TEXT goes when `text` keeps it losslessly.
    pub mixed: MixedPolicy,
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
    /// Nothing writes the SQLite file while it is copied (a snapshot, such as phase 3's
    /// `VACUUM INTO` copy, or a file whose application is stopped). Then every worker reads
    /// through its own SQLite connection, so two workers on the largest table read and
    /// encode in parallel instead of sharing one reader. Checked, not trusted: the file's
    /// and its WAL's size and modification time must be the same after the copy as before,
    /// or the transfer stops with an error. Off by default: a live file is read by one
    /// reader per table, inside one read transaction, whatever writes it.
    pub source_immutable: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            chunk_rows: 50_000,
            invalid_text: InvalidTextPolicy::Reject,
            mixed: MixedPolicy::Text,
            naive_offset_seconds: 0,
            sub_microsecond: SubMicrosecond::Reject,
            retry: RetryPolicy::default(),
            progress: true,
            application_name: "ferry-transfer".into(),
            pause_after_chunk: None,
            source_immutable: false,
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
            mixed: config.transfer.mixed,
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
    target: &PgTarget,
    opts: &TransferOptions,
) -> Result<TransferPlan> {
    let pg = Connector::new(target, opts.retry, &opts.application_name)?;
    let mut conn = pg.connect("reading the target schema").await?;
    let catalog = target_catalog(&pg, &mut conn).await;
    Connector::close(conn).await;
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

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(TransferError::Inconsistent {
            table: String::new(),
            message: format!("a blocking task stopped: {e}"),
        })
    })
}

async fn target_catalog(
    pg: &Connector,
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
