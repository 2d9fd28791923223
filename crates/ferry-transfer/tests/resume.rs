//! Kill and resume: a real child process copying a file is killed with SIGKILL at several
//! points (after some chunks, in the middle of a COPY, while keys and indexes are built);
//! running the same command again finishes with no duplicate and no missing row.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_core::redact::SecretUrl;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{recorded_run, PgTarget, TransferOptions};
use sqlx::postgres::PgConnection;

const SCHEMA: &str = "resumed";

fn spawn(file: &std::path::Path, url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferry-transfer"))
        .arg(file)
        .arg(url)
        .args([
            "--schema",
            SCHEMA,
            "--workers",
            "2",
            "--chunk-rows",
            "1500",
            "--pause-ms",
            "60",
        ])
        .env("FERRY_PROGRESS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the ferry-transfer binary")
}

async fn scalar(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(conn)
        .await
        .unwrap_or(0)
}

/// Waits until `ready` says so, then SIGKILLs the child; returns whether it was killed (it
/// may have finished first).
async fn kill_when(
    child: &mut Child,
    conn: &mut PgConnection,
    what: &str,
    sql: &str,
    at_least: i64,
) -> bool {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended ({status}) before the kill point `{what}`");
        }
        if scalar(conn, sql).await >= at_least {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert!(status.code().is_none(), "killed by a signal: {status}");
            return true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "kill point `{what}` never reached"
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_at_several_points_then_resume_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source.sqlite");
    common::medium_file(&file, 40_000);
    let db = ScratchDb::new("resume").await;
    let mut conn = common::connect(&db.url).await;
    let checkpoints = format!("SELECT count(*) FROM {SCHEMA}.ferry_transfer_checkpoints");
    let copying = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND state = 'active' AND query LIKE 'COPY%'",
        db.name
    );
    let steps = format!("SELECT count(*) FROM {SCHEMA}.ferry_transfer_steps");
    let points = [
        ("after 2 chunks", checkpoints.clone(), 2),
        ("in the middle of a COPY", copying, 1),
        ("after 14 chunks", checkpoints, 14),
        ("while keys and indexes are built", steps, 2),
    ];
    let mut previous = 0;
    for (what, sql, at_least) in &points {
        let mut child = spawn(&file, &db.url);
        kill_when(&mut child, &mut conn, what, sql, *at_least).await;
        let done: i64 = scalar(
            &mut conn,
            &format!("SELECT count(*) FROM {SCHEMA}.ferry_transfer_checkpoints"),
        )
        .await;
        assert!(done >= previous, "committed chunks never go away ({what})");
        previous = done;
    }
    // The same command again finishes.
    let out = spawn(&file, &db.url).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let target = PgTarget {
        url: SecretUrl::new(db.url.clone()),
        schema: SCHEMA.into(),
    };
    let run = recorded_run(&target, &TransferOptions::default())
        .await
        .unwrap()
        .expect("a recorded run");
    assert!(run.complete);
    common::assert_exact_copy(&file, &db.url, &run.plan).await;
    common::assert_keys_and_not_nulls(&db.url, &run.plan).await;
    let fks = common::constraints(&mut conn, SCHEMA, "events")
        .await
        .foreign_keys;
    assert_eq!(fks.len(), 1);
    assert!(fks[0].1);
    // Chunks were really resumed, not redone: every rowid range was committed once.
    let overlaps: i64 = scalar(
        &mut conn,
        &format!(
            "SELECT count(*) FROM {SCHEMA}.ferry_transfer_checkpoints a JOIN {SCHEMA}.ferry_transfer_checkpoints b
             ON a.source_table = b.source_table AND a.lo < b.lo AND a.hi >= b.lo"
        ),
    )
    .await;
    assert_eq!(overlaps, 0);

    // A completed transfer is not copied twice.
    let out = spawn(&file, &db.url).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("completed transfer"));
}
