//! ferry's own tables in the target schema: the run (plan, state), the checkpoints (one
//! row per committed chunk, in the chunk's own transaction), the rejects and the finished
//! post-data steps. Their names start with `ferry_transfer_`; nothing else in the schema is
//! ferry's bookkeeping.

use ferry_core::plan::{Acknowledgement, ObjectKind};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::ident::qualified;

pub use ferry_core::plan::bookkeeping::{
    ACKNOWLEDGEMENTS, ALL as TABLES, CHECKPOINTS, REJECTS, RUNS, STEPS,
};

/// Creates the schema (if missing) and the bookkeeping tables.
pub async fn ensure(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let s = crate::ident::quote(schema);
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
        CREATE TABLE IF NOT EXISTS {runs} (
            id integer PRIMARY KEY CHECK (id = 1),
            source text NOT NULL,
            mode text NOT NULL,
            fingerprint text NOT NULL,
            plan jsonb NOT NULL,
            status text NOT NULL,
            deferred jsonb NOT NULL DEFAULT '[]',
            ferry_version text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz
        );
        ALTER TABLE {runs} ADD COLUMN IF NOT EXISTS renames jsonb NOT NULL DEFAULT '[]';
        CREATE TABLE IF NOT EXISTS {checkpoints} (
            source_table text NOT NULL,
            lo bigint NOT NULL,
            hi bigint NOT NULL,
            rows bigint NOT NULL,
            bytes bigint NOT NULL,
            rejected_rows bigint NOT NULL,
            seconds double precision NOT NULL,
            committed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source_table, lo),
            CHECK (lo <= hi)
        );
        CREATE TABLE IF NOT EXISTS {rejects} (
            source_table text NOT NULL,
            chunk_lo bigint NOT NULL,
            kind text NOT NULL,
            row_key text NOT NULL,
            column_name text NOT NULL,
            reason text NOT NULL,
            bytes_hex text
        );
        CREATE TABLE IF NOT EXISTS {steps} (
            step text PRIMARY KEY,
            outcome text NOT NULL,
            detail text NOT NULL,
            done_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE {steps}
            ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT '',
            ADD COLUMN IF NOT EXISTS source_table text NOT NULL DEFAULT '',
            ADD COLUMN IF NOT EXISTS object_name text NOT NULL DEFAULT '',
            ADD COLUMN IF NOT EXISTS source_text text NOT NULL DEFAULT '';
        CREATE TABLE IF NOT EXISTS {acks} (
            object_id text PRIMARY KEY,
            kind text NOT NULL,
            source_table text NOT NULL,
            source_text text NOT NULL,
            reason text NOT NULL,
            acknowledged_at timestamptz NOT NULL DEFAULT now()
        );",
        runs = qualified(schema, RUNS),
        checkpoints = qualified(schema, CHECKPOINTS),
        rejects = qualified(schema, REJECTS),
        steps = qualified(schema, STEPS),
        acks = qualified(schema, ACKNOWLEDGEMENTS),
    );
    crate::pg::exec(conn, &sql).await?;
    Ok(())
}

/// The run recorded in a schema.
#[derive(Debug, Clone)]
pub struct Run {
    pub source: String,
    pub fingerprint: String,
    pub plan: serde_json::Value,
    pub status: String,
    pub deferred: Vec<DeferredConstraint>,
    /// Names of indexes and constraints changed to fit PostgreSQL.
    pub renames: Vec<ferry_core::plan::Rename>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A constraint taken off a managed table for the copy, to be put back after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredConstraint {
    pub table: String,
    pub name: String,
    /// `pg_get_constraintdef()`.
    pub definition: String,
}

pub const STATUS_COPYING: &str = "copying";
pub const STATUS_COMPLETE: &str = "complete";

/// Whether the bookkeeping exists, without creating it.
pub async fn run_table_exists(conn: &mut PgConnection, schema: &str) -> Result<bool, sqlx::Error> {
    let name = qualified(schema, RUNS);
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&name)
        .fetch_one(conn)
        .await?;
    Ok(found.is_some())
}

pub async fn load_run(conn: &mut PgConnection, schema: &str) -> Result<Option<Run>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT source, fingerprint, plan, status, deferred, renames, started_at, finished_at FROM {} WHERE id = 1",
        qualified(schema, RUNS)
    ))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let deferred: sqlx::types::Json<Vec<DeferredConstraint>> = r.get("deferred");
        let renames: sqlx::types::Json<Vec<ferry_core::plan::Rename>> = r.get("renames");
        Run {
            source: r.get("source"),
            fingerprint: r.get("fingerprint"),
            plan: r.get::<sqlx::types::Json<serde_json::Value>, _>("plan").0,
            status: r.get("status"),
            deferred: deferred.0,
            renames: renames.0,
            started_at: r.get("started_at"),
            finished_at: r.get("finished_at"),
        }
    }))
}

/// A committed chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checkpoint {
    pub lo: i64,
    pub hi: i64,
    pub rows: i64,
    pub bytes: i64,
    pub rejected_rows: i64,
    pub seconds: f64,
}

pub async fn checkpoints(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT lo, hi, rows, bytes, rejected_rows, seconds FROM {} WHERE source_table = $1 ORDER BY lo",
        qualified(schema, CHECKPOINTS)
    ))
    .bind(table)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Checkpoint {
            lo: r.get(0),
            hi: r.get(1),
            rows: r.get(2),
            bytes: r.get(3),
            rejected_rows: r.get(4),
            seconds: r.get(5),
        })
        .collect())
}

/// A recorded reject or adjusted cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectRow {
    pub table: String,
    pub kind: String,
    pub key: String,
    pub column: String,
    pub reason: String,
    pub bytes_hex: Option<String>,
}

pub async fn rejects(conn: &mut PgConnection, schema: &str) -> Result<Vec<RejectRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT source_table, kind, row_key, column_name, reason, bytes_hex FROM {} ORDER BY source_table, chunk_lo, row_key, column_name",
        qualified(schema, REJECTS)
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| RejectRow {
            table: r.get(0),
            kind: r.get(1),
            key: r.get(2),
            column: r.get(3),
            reason: r.get(4),
            bytes_hex: r.get(5),
        })
        .collect())
}

/// A post-data step (or an attempt made while creating the tables) as recorded: what it
/// carries over, and how it ended (`ok`, `failed`, `not_valid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub step: String,
    pub outcome: String,
    /// What the step does (when it succeeded) or why it failed.
    pub detail: String,
    pub kind: Option<ObjectKind>,
    pub table: String,
    pub name: String,
    /// The SQLite text of what the step carries over.
    pub text: String,
}

pub fn kind_name(kind: ObjectKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub fn kind_from_name(name: &str) -> Option<ObjectKind> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// Records a step's outcome, unless it is recorded already (a resumed run).
pub async fn record_step(
    conn: &mut PgConnection,
    schema: &str,
    row: &StepRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO {} (step, outcome, detail, kind, source_table, object_name, source_text) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (step) DO NOTHING",
        qualified(schema, STEPS)
    ))
    .bind(&row.step)
    .bind(&row.outcome)
    .bind(&row.detail)
    .bind(row.kind.map(kind_name).unwrap_or_default())
    .bind(&row.table)
    .bind(&row.name)
    .bind(&row.text)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every recorded step, in the order they finished.
pub async fn steps(conn: &mut PgConnection, schema: &str) -> Result<Vec<StepRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT step, outcome, detail, kind, source_table, object_name, source_text FROM {} ORDER BY done_at, step",
        qualified(schema, STEPS)
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| StepRow {
            step: r.get(0),
            outcome: r.get(1),
            detail: r.get(2),
            kind: kind_from_name(r.get::<&str, _>(3)),
            table: r.get(4),
            name: r.get(5),
            text: r.get(6),
        })
        .collect())
}

/// The acknowledgements given, by object id.
pub async fn acknowledgements(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<(String, Acknowledgement)>, sqlx::Error> {
    let rows: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(&format!(
        "SELECT object_id, reason, acknowledged_at FROM {} ORDER BY object_id",
        qualified(schema, ACKNOWLEDGEMENTS)
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, reason, at)| (id, Acknowledgement { reason, at }))
        .collect())
}

/// Records a person's reason for each object not carried over (once per object: a later
/// acknowledgement of the same object keeps the first).
pub async fn acknowledge(
    conn: &mut PgConnection,
    schema: &str,
    items: &[&ferry_core::plan::NotCarriedOver],
    reason: &str,
) -> Result<(), sqlx::Error> {
    for item in items {
        sqlx::query(&format!(
            "INSERT INTO {} (object_id, kind, source_table, source_text, reason) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (object_id) DO NOTHING",
            qualified(schema, ACKNOWLEDGEMENTS)
        ))
        .bind(&item.id)
        .bind(kind_name(item.kind))
        .bind(&item.table)
        .bind(&item.text)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
