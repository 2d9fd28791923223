//! Shared helpers of the import tests: a fresh database with ferry's schema, digests of
//! whole databases, and ledger look-ups.

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row, SqliteConnection};

/// A new SQLite file with ferry's schema, created the way the migrator will: every embedded
/// `*.up.sql` in version order.
pub async fn fresh_db(dir: &Path) -> (PathBuf, SqliteConnection) {
    let path = dir.join("ferry.sqlite3");
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true)
        .connect()
        .await
        .expect("create the test database");
    let mut ups: Vec<&(&str, &str)> = ferry_migrations::SQLITE
        .iter()
        .filter(|(n, _)| n.ends_with(".up.sql"))
        .collect();
    ups.sort_by_key(|(n, _)| *n);
    for (name, sql) in ups {
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    (path, conn)
}

/// SHA-256 of every row of every table but the run log, in rowid order, as SQLite quotes them.
pub async fn db_digest(conn: &mut SqliteConnection) -> BTreeMap<String, (u64, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'ferry_import_runs' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let cols: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .bind(&t)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let expr = cols
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = ?1")
            .bind(&t)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let order = if sql.contains("WITHOUT ROWID") {
            "1"
        } else {
            "rowid"
        };
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT {expr} FROM \"{t}\" ORDER BY {order}"))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let mut h = Sha256::new();
        for r in &rows {
            h.update(r.as_bytes());
            h.update(b"\n");
        }
        out.insert(t, (rows.len() as u64, hex::encode(h.finalize())));
    }
    out
}

/// `(status, reason_kind)` of every ledger row.
pub async fn ledger_states(
    conn: &mut SqliteConnection,
) -> BTreeMap<String, (String, Option<String>)> {
    sqlx::query("SELECT path, status, reason_kind FROM ferry_source_files")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                (r.get::<String, _>(1), r.get::<Option<String>, _>(2)),
            )
        })
        .collect()
}

pub async fn fk_violations(conn: &mut SqliteConnection) -> usize {
    sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .len()
}

/// Every non-directory entry under `root`, relative and `/`-separated: a stand-in for the
/// phase-1 manifest.
pub fn manifest(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &r, out);
            } else {
                out.push(r);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out.sort();
    out
}
