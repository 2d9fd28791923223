//! A source declared unchanging (`source_immutable`, as phase 3 copies its snapshot) is read
//! by a reader per worker: the copy is still exact, and a file that was written during the
//! copy after all stops the transfer instead of mixing two states.

mod common;

use std::time::Duration;

use ferry_core::redact::SecretUrl;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{execute, plan_derived, PgTarget, TransferError, TransferOptions};

fn options() -> TransferOptions {
    TransferOptions {
        workers: 2,
        chunk_rows: 2_000,
        progress: false,
        source_immutable: true,
        ..TransferOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanging_source_read_by_a_reader_per_worker_is_copied_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source.sqlite");
    // 20 chunks of events, so both workers copy chunks of the same table with their own
    // readers; `pairs` has no rowid and is read whole.
    common::medium_file(&file, 40_000);
    let db = ScratchDb::new("unchanging").await;
    let target = PgTarget {
        url: SecretUrl::new(db.url.clone()),
        schema: "unchanging".into(),
    };
    let opts = options();
    let plan = plan_derived(&file, &target.schema, &opts).await.unwrap();
    let report = execute(&plan, &target, &opts).await.unwrap();
    let events = report.tables.iter().find(|t| t.source == "events").unwrap();
    assert_eq!(events.rows, 40_000);
    assert!(events.chunks >= 20, "{} chunks", events.chunks);
    common::assert_exact_copy(&file, &db.url, &plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_written_during_a_copy_declared_unchanging_stops_the_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source.sqlite");
    common::medium_file(&file, 40_000);
    {
        let conn = rusqlite::Connection::open(&file).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    let db = ScratchDb::new("unchanging_written").await;
    let target = PgTarget {
        url: SecretUrl::new(db.url.clone()),
        schema: "written".into(),
    };
    let opts = TransferOptions {
        pause_after_chunk: Some(Duration::from_millis(40)),
        ..options()
    };
    let plan = plan_derived(&file, &target.schema, &opts).await.unwrap();
    let copy = {
        let (plan, target, opts) = (plan.clone(), target.clone(), opts.clone());
        tokio::spawn(async move { execute(&plan, &target, &opts).await })
    };
    // Once the first chunk is committed, the application writes one row.
    let mut conn = common::connect(&db.url).await;
    let mut copying = false;
    for _ in 0..400 {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT count(*) FROM written.ferry_transfer_checkpoints WHERE source_table = 'events'",
        )
        .fetch_one(&mut conn)
        .await
        .ok();
        if n.unwrap_or(0) > 0 {
            copying = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(copying, "the copy never committed a chunk of events");
    assert!(!copy.is_finished(), "the copy ended before the write");
    {
        let w = rusqlite::Connection::open(&file).unwrap();
        w.busy_timeout(Duration::from_secs(10)).unwrap();
        w.execute(
            "UPDATE agents SET note = 'written during the copy' WHERE name = 'Agent-1'",
            [],
        )
        .unwrap();
    }
    let err = copy.await.unwrap().unwrap_err();
    match &err {
        TransferError::Source { message, .. } => {
            assert!(
                message.contains("changed during the copy"),
                "unexpected message: {message}"
            );
        }
        other => panic!("expected a source error, got {other}"),
    }
    assert!(err.to_string().contains("source.sqlite"), "{err}");
}
