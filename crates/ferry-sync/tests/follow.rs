//! The follower against a live writer: the handoff from phase 3's copy with a writer that
//! never pauses, the fence at cutover, and a connection cut in the middle of a batch.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferry_core::plan::PlanMode;
use ferry_sync::{
    install, pg_writes_since_cutover, written_after_cutover, Applier, Follower, FollowerOptions,
    InstallOptions, PassInfo, SyncOptions,
};
use ferry_testkit::sync_writer::{self, WriterConfig, WriterStats};

fn start_writer(
    path: &std::path::Path,
    rate: u64,
    seed: u64,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<WriterStats>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let p = path.to_owned();
    let handle = std::thread::spawn(move || {
        let cfg = WriterConfig {
            rate,
            seed,
            prefix: format!("w{seed}"),
            ..WriterConfig::default()
        };
        sync_writer::run(&p, &cfg, &s).expect("the writer never fails")
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_running_from_before_the_copy_until_after_the_drain_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 10);
    let schema = migrated_schema("sync_handoff").await;
    // The application writes before, during and after phase 3's copy, without a pause.
    let (stop_writer, writer) = start_writer(&path, 300, 11);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    install(&path, &plan, &InstallOptions::default()).unwrap();
    let applier = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    assert!(!applier.handoff_done());
    let state_dir = dir.path().join("state");
    let mut follower = Follower::new(
        applier,
        FollowerOptions {
            interval: Duration::from_millis(100),
            state_dir: Some(state_dir.clone()),
            progress: false,
            prune_every: Duration::from_millis(500),
            ..FollowerOptions::default()
        },
    );
    let handle = follower.handle();
    let passes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = passes.clone();
    let run = tokio::spawn(async move {
        let mut hook = move |info: &PassInfo<'_>| {
            seen.store(info.pass, Ordering::SeqCst);
            Ok(())
        };
        let summary = follower.run(&mut hook).await;
        (follower, summary)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let live = handle.status();
    assert!(live.handoff_done, "{live:?}");
    assert!(live.applied_since_start > 0, "{live:?}");
    stop_writer.store(true, Ordering::SeqCst);
    let stats = writer.join().unwrap();
    assert!(
        stats.writes > 500 && stats.replaces > 0 && stats.upserts > 0 && stats.deletes > 0,
        "{stats:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.stop.trigger();
    let (follower, summary) = run.await.unwrap();
    let summary = summary.unwrap();
    assert!(
        passes.load(Ordering::SeqCst) >= 5,
        "the hook runs before every pass"
    );
    assert!(
        summary.changes > 0 && summary.lag_p99_ms.is_some(),
        "{summary:?}"
    );
    let series = summary.series_path.clone().expect("a lag series");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&series).unwrap()).unwrap();
    assert!(!json["points"].as_array().unwrap().is_empty());
    let mut a = follower.into_applier();
    a.drain().await.unwrap();
    let status = a.status().await.unwrap();
    assert_eq!(status.changes_behind, 0);
    assert_eq!(status.open_rejects, 0);
    assert!(
        sqlite_scalar(&path, "SELECT count(*) FROM ferry_sync_log") < status.max_seq,
        "applied entries were pruned"
    );
    a.set_sequences().await.unwrap();
    assert_equal(&path, &schema, &plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_holds_writers_drains_and_releases_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 6);
    let schema = migrated_schema("sync_fence").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    install(&path, &plan, &InstallOptions::default()).unwrap();
    let mut a = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    a.full_pass().await.unwrap();
    let (stop_writer, writer) = start_writer(&path, 400, 12);
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.drain().await.unwrap();
    let max_seq = || sqlite_scalar(&path, "SELECT coalesce(max(seq), 0) FROM ferry_sync_log");

    let fence = a.fence().await.unwrap();
    a.drain().await.unwrap();
    let held_at = max_seq();
    assert_eq!(
        a.cursor(),
        held_at,
        "drained through the fence to the last entry"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(max_seq(), held_at, "no write got through the fence");
    // Inside the fence both sides are equal (what the runner checks before cutting over).
    a.set_sequences().await.unwrap();
    assert_equal(&path, &schema, &plan).await;
    let cut = a.release(fence).await.unwrap();
    assert!(cut.drained && cut.seq == held_at, "{cut:?}");
    assert!(cut.blackout_ms >= 400.0, "{cut:?}");

    // The held writer goes on: its writes reach SQLite after cutover, and are counted.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop_writer.store(true, Ordering::SeqCst);
    let stats = writer.join().unwrap();
    assert!(stats.writes > 100, "{stats:?}");
    assert!(max_seq() > held_at);
    assert_eq!(
        written_after_cutover(&path, cut.seq).unwrap() as i64,
        max_seq() - held_at
    );
    assert!(
        matches!(a.drain().await, Err(ferry_sync::SyncError::CutOver { .. })),
        "nothing is applied after cutover"
    );
    let status = a.status().await.unwrap();
    assert!(
        status.cut_over && status.written_after_cutover > 0,
        "{status:?}"
    );

    // Rows written to PostgreSQL after cutover are counted per table.
    let t = target(&schema);
    let before = pg_writes_since_cutover(&t).await.unwrap();
    assert!(
        before.iter().all(|w| w.new_or_changed == 0 && w.gone == 0),
        "{before:?}"
    );
    let mut conn = schema.connect().await;
    sqlx::query("UPDATE agents SET role = 'after cutover' WHERE agent_id = 'Agent-1'")
        .execute(&mut conn)
        .await
        .unwrap();
    let after = pg_writes_since_cutover(&t).await.unwrap();
    let agents = after.iter().find(|w| w.table == "agents").unwrap();
    assert_eq!((agents.new_or_changed, agents.gone), (1, 1), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_terminated_mid_batch_is_retried_and_the_batch_completes() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 6);
    let schema = migrated_schema("sync_terminate").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    install(&path, &plan, &InstallOptions::default()).unwrap();
    let app_name = format!("ferry-sync-test-{}", std::process::id());
    let options = SyncOptions {
        pause_in_apply: Some(Duration::from_millis(400)),
        application_name: app_name.clone(),
        ..sync_options()
    };
    let mut a = Applier::open(&path, &target(&schema), &plan, &options, true)
        .await
        .unwrap();
    a.record_handoff().await.unwrap();
    app_exec(
        &path,
        "UPDATE tasks SET title = 'after cut ' || task_id WHERE rowid % 3 = 0;
         DELETE FROM messages WHERE rowid % 5 = 0;",
    );
    let drain = tokio::spawn(async move {
        let r = a.drain().await;
        (a, r)
    });
    let mut admin = schema.connect().await;
    let mut killed = 0i64;
    for _ in 0..200 {
        killed = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'",
        )
        .bind(&app_name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if killed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(killed > 0, "an apply transaction was cut");
    let (mut a, r) = drain.await.unwrap();
    let r = r.unwrap();
    assert!(r.changes > 0, "{r:?}");
    let status = a.status().await.unwrap();
    assert!(status.retries >= 1, "{status:?}");
    assert_eq!(status.changes_behind, 0);
    assert_equal(&path, &schema, &plan).await;
}
