//! Test support: ferry's agent-store schema on both sides, phase 3's copy with
//! ferry-transfer, a file with awkward keys and a derived plan, and equality proved by
//! ferry-validate (which reads both databases itself).

#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

use std::path::{Path, PathBuf};

use ferry_core::plan::{PlanMode, TransferPlan};
use ferry_core::redact::SecretUrl;
use ferry_sync::{SyncOptions, SyncTarget};
use ferry_testkit::pg::ScratchSchema;
use ferry_transfer::{PgTarget as Target, TransferOptions};
use sqlx::Executor;

/// A SQLite file with ferry's schema and `n` agents' worth of rows, every timestamp one
/// PostgreSQL can hold, in WAL mode.
pub fn agent_sqlite(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("ferry.sqlite3");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for (name, sql) in ferry_migrations::SQLITE
        .iter()
        .filter(|(n, _)| n.ends_with(".up.sql"))
    {
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    drop(conn);
    ferry_testkit::sqlite_gen::agent_store(&path, n).unwrap();
    ferry_testkit::sync_writer::normalise_agent_store(&path).unwrap();
    ferry_testkit::sync_writer::use_wal(&path).unwrap();
    path
}

/// A scratch schema with `migrations/postgres` applied.
pub async fn migrated_schema(prefix: &str) -> ScratchSchema {
    let schema = ScratchSchema::new(prefix).await;
    let mut conn = schema.connect().await;
    for (name, sql) in ferry_migrations::POSTGRES
        .iter()
        .filter(|(n, _)| n.ends_with(".up.sql"))
    {
        conn.execute(*sql)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    schema
}

pub fn transfer_options() -> TransferOptions {
    TransferOptions {
        workers: 2,
        progress: false,
        ..TransferOptions::default()
    }
}

/// Phase 3: plans and copies (managed into a migrated schema, derived otherwise).
pub async fn phase3(path: &Path, schema: &ScratchSchema, mode: PlanMode) -> TransferPlan {
    let target = Target {
        url: SecretUrl::new(schema.url.clone()),
        schema: schema.name.clone(),
    };
    let opts = transfer_options();
    let plan = match mode {
        PlanMode::Managed => ferry_transfer::plan_managed(path, &target, &opts).await,
        PlanMode::Derived => ferry_transfer::plan_derived(path, &schema.name, &opts).await,
    }
    .unwrap();
    let report = ferry_transfer::execute(&plan, &target, &opts)
        .await
        .unwrap();
    assert!(report.rejects.is_empty(), "{:#?}", report.rejects);
    plan
}

pub fn target(schema: &ScratchSchema) -> SyncTarget {
    SyncTarget {
        url: SecretUrl::new(schema.url.clone()),
        schema: schema.name.clone(),
    }
}

pub fn sync_options() -> SyncOptions {
    SyncOptions {
        batch_changes: 400,
        workers: 2,
        ..SyncOptions::default()
    }
}

/// ferry-validate's verdict: every table equal cell by cell, constraints hold.
pub async fn validate(
    path: &Path,
    schema: &ScratchSchema,
    plan: &TransferPlan,
) -> ferry_validate::ValidationReport {
    let target = ferry_validate::PgTarget::new(schema.url.clone(), schema.name.clone());
    ferry_validate::validate(
        path,
        &target,
        Some(plan),
        &ferry_validate::ValidateOptions::default(),
    )
    .await
    .unwrap()
}

pub async fn assert_equal(path: &Path, schema: &ScratchSchema, plan: &TransferPlan) {
    let report = validate(path, schema, plan).await;
    assert!(report.equal, "{}", report.details());
    assert!(report.totals.source_rows > 0);
}

/// Runs SQL on the SQLite file from a connection of its own (the application's).
pub fn app_exec(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    conn.execute_batch(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn sqlite_scalar(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub async fn pg_scalar(schema: &ScratchSchema, sql: &str) -> i64 {
    let mut conn = schema.connect().await;
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The SQLite schema as text (every object's SQL, sorted), to prove uninstall leaves it.
pub fn sqlite_schema(path: &Path) -> Vec<(String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// A SQLite file whose keys are awkward (see [`ferry_testkit::sqlite_gen::awkward_keys`]).
pub fn awkward_sqlite(dir: &Path) -> PathBuf {
    let path = dir.join("awkward.sqlite3");
    ferry_testkit::sqlite_gen::awkward_keys(&path).unwrap();
    path
}
