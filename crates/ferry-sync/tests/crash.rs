//! Crash safety with real processes: the follower (the `ferry-sync` binary) is killed with
//! SIGKILL at a dozen random points while a writer keeps writing, and restarted each time;
//! at the end both sides are equal by ferry-validate and every change-log entry was counted
//! exactly once in PostgreSQL's bookkeeping (committed with the rows it applied).

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferry_core::plan::PlanMode;
use ferry_sync::{install, InstallOptions};
use ferry_testkit::sqlite_gen::Rng;
use ferry_testkit::sync_writer::{self, WriterConfig};

fn follower(
    path: &std::path::Path,
    url: &str,
    schema: &str,
    plan: &std::path::Path,
    until_drained: bool,
) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry-sync"));
    cmd.arg("follow")
        .arg(path)
        .arg(url)
        .args(["--schema", schema, "--plan"])
        .arg(plan)
        .args(["--batch", "150", "--interval-ms", "20", "--pause-ms", "15"])
        .env("FERRY_PROGRESS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if until_drained {
        cmd.arg("--until-drained");
    }
    cmd.spawn().expect("spawn the ferry-sync binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_under_load_then_restart_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 10);
    let schema = migrated_schema("sync_crash").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(&plan).unwrap()).unwrap();
    install(&path, &plan, &InstallOptions::default()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (p, s) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let cfg = WriterConfig {
                rate: 400,
                seed: 21,
                prefix: "k".into(),
                ..WriterConfig::default()
            };
            sync_writer::run(&p, &cfg, &s).expect("the writer never fails")
        })
    };
    let mut rng = Rng::new(0x5EED);
    let mut kills = 0;
    for round in 0..12 {
        let mut child = follower(&path, &schema.url, &schema.name, &plan_path, false);
        // The first round also kills the built-in full reconciliation part-way.
        let wait = if round == 0 {
            150
        } else {
            100 + rng.below(700)
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the follower ended ({status}) before it was killed: {err}");
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(status.code().is_none(), "killed by a signal: {status}");
        kills += 1;
    }
    assert!(kills >= 10);
    stop.store(true, Ordering::SeqCst);
    let stats = writer.join().unwrap();
    assert!(stats.writes > 1_000, "{stats:?}");

    let mut child = follower(&path, &schema.url, &schema.name, &plan_path, true);
    let out = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert!(out.0.success(), "{}", out.1);

    // Every entry was counted once, in the transaction that applied it.
    let max_seq = sqlite_scalar(&path, "SELECT max(seq) FROM ferry_sync_log");
    let counted = pg_scalar(
        &schema,
        "SELECT sum(applied_changes)::bigint FROM ferry_sync_tables",
    )
    .await;
    assert_eq!(counted, max_seq, "no entry applied twice, none skipped");
    assert_eq!(
        pg_scalar(&schema, "SELECT cursor FROM ferry_sync_state").await,
        max_seq
    );
    assert_eq!(
        pg_scalar(
            &schema,
            "SELECT count(*) FROM ferry_sync_state WHERE handoff_done"
        )
        .await,
        1
    );
    let mut a = ferry_sync::Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    a.set_sequences().await.unwrap();
    assert_equal(&path, &schema, &plan).await;
}
