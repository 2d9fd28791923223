//! ferry's own tables in the target schema: the run (plan, state), the checkpoints (one
//! row per committed chunk, in the chunk's own transaction), the rejects and the finished
//! post-data steps. Their names start with `ferry_transfer_`; nothing else in the schema is
//! ferry's bookkeeping.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::ident::qualified;

pub const RUNS: &str = "ferry_transfer_runs";
pub const CHECKPOINTS: &str = "ferry_transfer_checkpoints";
pub const REJECTS: &str = "ferry_transfer_rejects";
pub const STEPS: &str = "ferry_transfer_steps";

/// Every bookkeeping table name (reserved when naming target tables).
pub const TABLES: &[&str] = &[RUNS, CHECKPOINTS, REJECTS, STEPS];

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
        );",
        runs = qualified(schema, RUNS),
        checkpoints = qualified(schema, CHECKPOINTS),
        rejects = qualified(schema, REJECTS),
        steps = qualified(schema, STEPS),
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
        "SELECT source, fingerprint, plan, status, deferred FROM {} WHERE id = 1",
        qualified(schema, RUNS)
    ))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let deferred: sqlx::types::Json<Vec<DeferredConstraint>> = r.get("deferred");
        Run {
            source: r.get("source"),
            fingerprint: r.get("fingerprint"),
            plan: r.get::<sqlx::types::Json<serde_json::Value>, _>("plan").0,
            status: r.get("status"),
            deferred: deferred.0,
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

/// The finished steps: `(step, outcome, detail)`.
pub async fn steps(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT step, outcome, detail FROM {} ORDER BY done_at, step",
        qualified(schema, STEPS)
    ))
    .fetch_all(conn)
    .await
}
