//! Managed mode against ferry's own schema: `migrations/sqlite` applied to a SQLite file
//! filled with realistic rows, `migrations/postgres` applied to a scratch schema; every
//! cell must arrive converted to the migrated column's type, and timestamps with a nonzero
//! digit beyond microseconds are never altered silently.

mod common;

use std::path::Path;

use ferry_core::plan::{PlanMode, TargetType};
use ferry_core::redact::SecretUrl;
use ferry_testkit::pg::ScratchSchema;
use ferry_testkit::sqlite_gen;
use ferry_transfer::{execute, plan_managed, PgTarget, SubMicrosecond, TransferOptions};
use sqlx::Executor;

fn sqlite_store(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("ferry.sqlite3");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for (name, sql) in ferry_migrations::SQLITE
        .iter()
        .filter(|(n, _)| n.ends_with(".up.sql"))
    {
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // ferry's own bookkeeping, which must stay behind.
    conn.execute_batch("CREATE TABLE IF NOT EXISTS ferry_scratch_note (n INTEGER); INSERT INTO ferry_scratch_note VALUES (1);").unwrap();
    drop(conn);
    sqlite_gen::agent_store(&path, 40).unwrap();
    path
}

async fn migrated_schema(prefix: &str) -> ScratchSchema {
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

/// `(table, key)` of rows whose timestamp text has a nonzero digit after the sixth
/// fraction digit, found by reading SQLite directly.
fn sub_microsecond_rows(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = Vec::new();
    for (table, key, column) in [
        ("performance_metrics", "metric_id", "recorded_at"),
        ("hook_events", "event_id", "occurred_at"),
    ] {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {key}, {column} FROM {table} ORDER BY {key}"
            ))
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .unwrap();
        for row in rows {
            let (id, text) = row.unwrap();
            let Some(text) = text else { continue };
            let Some(frac) = text.split_once('.').map(|(_, f)| {
                f.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            }) else {
                continue;
            };
            if frac.len() > 6 && frac[6..].chars().any(|c| c != '0') {
                out.push((table.to_owned(), format!("{key}={id}")));
            }
        }
    }
    out
}

async fn foreign_keys(schema: &ScratchSchema) -> Vec<(String, String, bool)> {
    let mut conn = schema.connect().await;
    sqlx::query_as(
        "SELECT c.relname::text, con.conname::text, con.convalidated FROM pg_constraint con
         JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE con.contype = 'f' AND n.nspname = $1 ORDER BY 1, 2",
    )
    .bind(&schema.name)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_copy_into_ferrys_schema_keeps_every_cell() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_store(dir.path());
    let schema = migrated_schema("managed").await;
    let fks_before = foreign_keys(&schema).await;
    assert!(fks_before.len() >= 10);
    let target = PgTarget {
        url: SecretUrl::new(schema.url.clone()),
        schema: schema.name.clone(),
    };
    let opts = TransferOptions {
        workers: 2,
        chunk_rows: 50,
        progress: false,
        ..TransferOptions::default()
    };
    let plan = plan_managed(&path, &target, &opts).await.unwrap();
    assert_eq!(plan.mode, PlanMode::Managed);
    assert!(
        plan.tables.iter().all(|t| !t.source.starts_with("ferry_")),
        "ferry's bookkeeping is never copied"
    );
    let ty = |t: &str, c: &str| {
        plan.table(t)
            .unwrap()
            .columns
            .iter()
            .find(|x| x.source == c)
            .unwrap()
            .target_type
            .clone()
    };
    assert_eq!(ty("agents", "capabilities"), TargetType::Jsonb);
    assert_eq!(ty("agents", "registered_at"), TargetType::Timestamptz);
    assert_eq!(ty("agents", "source_record"), TargetType::Bigint);
    assert_eq!(ty("agent_memory", "embedding"), TargetType::RealArray);
    assert_eq!(
        ty("performance_metrics", "value"),
        TargetType::DoublePrecision
    );

    let report = execute(&plan, &target, &opts).await.unwrap();

    // Rejected: exactly the rows with digits beyond microseconds, reason and bytes given.
    let mut expected = sub_microsecond_rows(&path);
    assert!(!expected.is_empty());
    let mut rejected: Vec<(String, String)> = report
        .rejects
        .iter()
        .map(|r| (r.table.clone(), r.key.clone()))
        .collect();
    expected.sort();
    rejected.sort();
    assert_eq!(rejected, expected);
    assert!(report
        .rejects
        .iter()
        .all(|r| r.reason.contains("beyond microseconds") && r.bytes_hex.is_some()));

    // Every other cell arrived, converted.
    let mut cells = 0;
    for (table, cmp) in common::compare_all(&path, &schema.url, &plan, 0).await {
        assert!(
            cmp.mismatches.is_empty() && cmp.extra.is_empty(),
            "{table}: {cmp:#?}"
        );
        let mut want: Vec<String> = expected
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, k)| format!("i:{}", k.split_once('=').unwrap().1))
            .collect();
        let mut missing = cmp.missing.clone();
        missing.sort();
        want.sort();
        assert_eq!(missing, want, "{table}");
        cells += cmp.cells;
    }
    assert!(cells > 5_000, "{cells}");
    let agents = report.tables.iter().find(|t| t.source == "agents").unwrap();
    assert_eq!(agents.rows, 40);

    // The foreign keys taken off for the copy are back, with the same names, validated.
    let fks_after = foreign_keys(&schema).await;
    assert_eq!(
        fks_after.iter().map(|f| (&f.0, &f.1)).collect::<Vec<_>>(),
        fks_before.iter().map(|f| (&f.0, &f.1)).collect::<Vec<_>>()
    );
    assert!(fks_after.iter().all(|f| f.2), "{fks_after:?}");

    // Identity sequences are past the highest key.
    let mut conn = schema.connect().await;
    let max: i64 = sqlx::query_scalar("SELECT max(event_id) FROM hook_events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO hook_events (source_path, source_record, doc_sha256, doc_size, doc) VALUES ('x', -1, 'h', 2, '{}') RETURNING event_id",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(next > max, "{next} <= {max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_truncation_is_listed_and_naive_offset_applies() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_store(dir.path());
    let schema = migrated_schema("managed_trunc").await;
    let target = PgTarget {
        url: SecretUrl::new(schema.url.clone()),
        schema: schema.name.clone(),
    };
    let opts = TransferOptions {
        workers: 2,
        progress: false,
        sub_microsecond: SubMicrosecond::Truncate,
        naive_offset_seconds: 7200,
        ..TransferOptions::default()
    };
    let plan = plan_managed(&path, &target, &opts).await.unwrap();
    let report = execute(&plan, &target, &opts).await.unwrap();
    assert!(report.rejects.is_empty(), "{:#?}", report.rejects);
    let mut adjusted: Vec<(String, String)> = report
        .adjusted
        .iter()
        .map(|r| (r.table.clone(), r.key.clone()))
        .collect();
    adjusted.sort();
    let mut expected = sub_microsecond_rows(&path);
    expected.sort();
    assert_eq!(adjusted, expected, "every truncated value is listed");
    assert!(!report.is_clean());
    // Only the listed cells differ, and naive values were read at +02:00.
    for (table, cmp) in common::compare_all(&path, &schema.url, &plan, 7200).await {
        assert!(
            cmp.missing.is_empty() && cmp.extra.is_empty(),
            "{table}: {cmp:#?}"
        );
        assert_eq!(
            cmp.mismatches.len(),
            expected.iter().filter(|(t, _)| *t == table).count(),
            "{table}: {:#?}",
            cmp.mismatches
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_mismatch_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_store(dir.path());
    let schema = migrated_schema("managed_mismatch").await;
    let mut conn = schema.connect().await;
    conn.execute("ALTER TABLE agents DROP COLUMN role; DROP TABLE devlogs")
        .await
        .unwrap();
    let target = PgTarget {
        url: SecretUrl::new(schema.url.clone()),
        schema: schema.name.clone(),
    };
    let opts = TransferOptions {
        progress: false,
        ..TransferOptions::default()
    };
    let err = plan_managed(&path, &target, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"agents\".\"role\"") && err.contains("\"devlogs\""),
        "{err}"
    );
}
