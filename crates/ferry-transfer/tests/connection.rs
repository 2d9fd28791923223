//! Lost connections: a backend terminated in the middle of a COPY is reconnected and its
//! chunk copied again (exactly once); a server that is not there is a clear error after the
//! retries, without the password.

mod common;

use std::time::Duration;

use ferry_core::redact::SecretUrl;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{
    execute, plan_derived, PgTarget, RetryPolicy, TransferError, TransferOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_are_retried_and_nothing_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source.sqlite");
    common::medium_file(&file, 40_000);
    let db = ScratchDb::new("lost_conn").await;
    let app = format!("ferry-test-{}", db.name);
    let opts = TransferOptions {
        workers: 2,
        chunk_rows: 2_000,
        progress: false,
        application_name: app.clone(),
        pause_after_chunk: Some(Duration::from_millis(30)),
        retry: RetryPolicy {
            attempts: 6,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
        },
        ..TransferOptions::default()
    };
    let target = PgTarget {
        url: SecretUrl::new(db.url.clone()),
        schema: "lost".into(),
    };
    let plan = plan_derived(&file, &target.schema, &opts).await.unwrap();
    let copy = {
        let (plan, target, opts) = (plan.clone(), target.clone(), opts.clone());
        tokio::spawn(async move { execute(&plan, &target, &opts).await })
    };
    // From another connection, terminate two backends while they are copying.
    let mut killer = common::connect(&db.url).await;
    let mut terminated = 0;
    while terminated < 2 && !copy.is_finished() {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE 'COPY%'",
        )
        .bind(&app)
        .fetch_all(&mut killer)
        .await
        .unwrap();
        if let Some(pid) = pids.first() {
            let ok: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&mut killer)
                .await
                .unwrap();
            if ok {
                terminated += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let report = copy.await.unwrap().unwrap();
    assert_eq!(terminated, 2, "two backends were terminated mid-COPY");
    assert!(report.is_clean());
    common::assert_exact_copy(&file, &db.url, &plan).await;
    let events = report.tables.iter().find(|t| t.source == "events").unwrap();
    assert_eq!(events.rows, 40_000);
}

#[tokio::test]
async fn a_dead_server_is_a_clear_error_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source.sqlite");
    common::medium_file(&file, 10);
    let opts = TransferOptions {
        progress: false,
        retry: RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
        },
        ..TransferOptions::default()
    };
    let target = PgTarget {
        url: SecretUrl::new("postgres://ferry:Sup3r-Secret-pw@127.0.0.1:1/nowhere"),
        schema: "x".into(),
    };
    let plan = plan_derived(&file, &target.schema, &opts).await.unwrap();
    let err = execute(&plan, &target, &opts).await.unwrap_err();
    assert!(
        matches!(err, TransferError::Unreachable { attempts: 3, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("unreachable") && text.contains("3 attempts") && text.contains("127.0.0.1:1"),
        "{text}"
    );
    assert!(!text.contains("Sup3r-Secret-pw"), "{text}");
}
