//! What the ledger claims stays true: pre-phase facts survive reruns, `status` and "already
//! passed" re-check the evidence, a rollback that does not verify never leaves a phase
//! "passed", a format-1 ledger still works, and the state-dir lock makes a second runner
//! wait or refuse.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::config::{Config, ConfigLoader};
use ferry_phases::ledger::{Action, Outcome, State};
use ferry_phases::lock::{StateLock, Wait};
use ferry_phases::{Depth, Phase, PhaseError, RollbackOptions, RunOptions, RunResult, Runner};

/// A scratch migration: a small store, a state dir, a SQLite path and a PostgreSQL schema.
struct Scratch {
    dir: tempfile::TempDir,
    schema: String,
}

impl Scratch {
    fn new(schema: String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in [
            (
                "agent_workspaces/Agent-1/status.json",
                "{\"agent_id\": \"Agent-1\", \"status\": \"busy\"}",
            ),
            (
                "agent_workspaces/Agent-1/inbox/msg_1.json",
                "{\"from\": \"Agent-2\", \"to\": \"Agent-1\", \"content\": \"hi\"}",
            ),
            (
                "agent_workspaces/Agent-2/inbox/msg_2.json",
                "{\"from\": \"Agent-1\", \"to\": \"Agent-2\", \"content\": \"hello\"}",
            ),
            ("devlogs/2025-01-01.md", "---\ntitle: first\n---\nbody\n"),
        ] {
            let p = dir.path().join("store").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        Self { dir, schema }
    }

    fn sqlite(&self) -> PathBuf {
        self.dir.path().join("state/ferry.sqlite3")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config(&self) -> Config {
        ConfigLoader::new()
            .flag(
                "source.store_dir",
                self.dir.path().join("store").display().to_string(),
            )
            .flag("sqlite.path", self.sqlite().display().to_string())
            .flag("state_dir", self.state().display().to_string())
            .flag("postgres.url", ferry_testkit::pg::server_url())
            .flag("postgres.schema", self.schema.clone())
            .load()
            .unwrap()
    }
}

async fn pass(runner: &Runner, phase: Phase, options: &RunOptions) {
    match runner.run(phase, options).await.unwrap() {
        RunResult::Ran { report, .. } => assert!(
            report.passed,
            "{phase}: {}\n{}",
            report.table(),
            report.details
        ),
        RunResult::AlreadyPassed(_) => panic!("{phase} should have run"),
    }
}

fn rerun() -> RunOptions {
    RunOptions {
        rerun: true,
        ..RunOptions::default()
    }
}

/// Regression (issue 9, item 3): a rerun of phase 1 once the SQLite file exists recorded it
/// as "pre-existing", and the rollback then kept the file ferry had created.
#[tokio::test]
async fn a_rerun_keeps_the_first_attempts_facts_and_the_rollback_removes_what_ferry_created() {
    let s = Scratch::new("unused".into());
    let runner = Runner::new(s.config());
    pass(&runner, Phase::Foundation, &RunOptions::default()).await;
    assert!(s.sqlite().exists());
    pass(&runner, Phase::Foundation, &rerun()).await;
    let entries = runner.ledger().entries().unwrap();
    let runs: Vec<_> = entries
        .iter()
        .filter(|e| e.phase == Phase::Foundation)
        .collect();
    assert_eq!(runs.len(), 2);
    for e in &runs {
        assert_eq!(
            e.facts["sqlite_preexisting"], false,
            "both attempts keep the first one's facts: {}",
            e.facts
        );
    }
    let reports = runner
        .rollback(0, &RollbackOptions::default())
        .await
        .unwrap();
    assert!(reports[0].passed, "{}", reports[0].table());
    assert!(
        !s.sqlite().exists(),
        "the SQLite file ferry created is gone"
    );
}

/// Regression (issue 9, item 2): a rerun of phase 3 dumped the schema its own earlier
/// attempt had built as the "before" state, and the rollback then failed to verify.
#[tokio::test]
async fn a_rerun_of_phase_three_keeps_the_first_dump_and_rolls_back_to_it() {
    let pg = ferry_testkit::pg::ScratchSchema::new("facts3").await;
    let s = Scratch::new(pg.name.clone());
    let runner = Runner::new(s.config());
    for phase in [Phase::Foundation, Phase::Import, Phase::Load] {
        pass(&runner, phase, &RunOptions::default()).await;
    }
    pass(&runner, Phase::Load, &rerun()).await;
    let entries = runner.ledger().entries().unwrap();
    let facts: Vec<_> = entries
        .iter()
        .filter(|e| e.phase == Phase::Load)
        .map(|e| e.facts.clone())
        .collect();
    assert_eq!(facts.len(), 2);
    assert_eq!(facts[0], facts[1], "the rerun keeps the first dump");
    assert_eq!(facts[0]["schema_existed"], true);
    let reports = runner
        .rollback(2, &RollbackOptions::default())
        .await
        .unwrap();
    assert!(reports[0].passed, "{}", reports[0].table());
    let mut conn = pg.connect().await;
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = $1")
        .bind(&pg.name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tables, 0, "the schema is back to empty, as it was");
}

/// Issue 9, item 2: `status` and "already passed" re-check the evidence instead of trusting
/// the ledger; the quick recheck sees a row count change, the full one a changed cell.
#[tokio::test]
async fn a_passed_phase_whose_data_changed_is_not_reported_as_passed() {
    let pg = ferry_testkit::pg::ScratchSchema::new("holds3").await;
    let s = Scratch::new(pg.name.clone());
    let runner = Runner::new(s.config());
    for phase in [Phase::Foundation, Phase::Import, Phase::Load] {
        pass(&runner, phase, &RunOptions::default()).await;
    }
    let status = runner.status().await.unwrap();
    assert_eq!(status.phases[2].holds, Some(true), "{status}");

    // A changed cell keeps the counts: only the full recheck (digests) sees it.
    let mut conn = pg.connect().await;
    sqlx::query("UPDATE messages SET subject = 'edited in PostgreSQL'")
        .execute(&mut conn)
        .await
        .unwrap();
    let quick = runner.recheck(Phase::Load, Depth::Quick).await.unwrap();
    assert!(quick.iter().all(|c| c.passed), "{quick:?}");
    let full = runner.recheck(Phase::Load, Depth::Full).await.unwrap();
    let data = full
        .iter()
        .find(|c| c.name == "PostgreSQL data as gate 3 saw it")
        .unwrap();
    assert!(
        !data.passed && data.detail.contains("messages") && data.detail.contains("content changed"),
        "{data:?}"
    );

    // A deleted row changes the count: status says the evidence no longer holds.
    sqlx::query("DELETE FROM messages")
        .execute(&mut conn)
        .await
        .unwrap();
    let status = runner.status().await.unwrap();
    let p3 = &status.phases[2];
    assert_eq!(
        (p3.state, p3.holds),
        (State::Passed, Some(false)),
        "{status}"
    );
    assert!(status.to_string().contains("NO LONGER HOLDS"), "{status}");
    assert!(status.next.contains("--rerun"), "{}", status.next);
    let err = runner
        .run(Phase::Load, &RunOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PhaseError::NoLongerHolds { .. }), "{err}");
    assert!(err.to_string().contains("messages has 0 rows"), "{err}");

    // Dropping the schema's tables by hand: status no longer says "passed" silently.
    sqlx::raw_sql(&format!(
        "DROP SCHEMA \"{}\" CASCADE; CREATE SCHEMA \"{}\"",
        pg.name, pg.name
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let status = runner.status().await.unwrap();
    assert_eq!(status.phases[2].holds, Some(false), "{status}");
    assert!(
        status.phases[2]
            .recheck
            .iter()
            .any(|c| c.name == "schema at head" && c.detail.contains("version 0")),
        "{status}"
    );
}

/// Issue 9, item 2: a rollback that fails verification says exactly what state things are
/// in, and the phase is "rollback incomplete", never "passed".
#[tokio::test]
async fn a_rollback_that_does_not_verify_leaves_the_phase_rollback_incomplete() {
    let pg = ferry_testkit::pg::ScratchSchema::new("incomplete3").await;
    let s = Scratch::new(pg.name.clone());
    let runner = Runner::new(s.config());
    for phase in [Phase::Foundation, Phase::Import, Phase::Load] {
        pass(&runner, phase, &RunOptions::default()).await;
    }
    // Someone adds a table of their own to the schema after phase 3.
    let mut conn = pg.connect().await;
    sqlx::query("CREATE TABLE notes_of_my_own (id int PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap();
    let reports = runner
        .rollback(2, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(!reports[0].passed, "{}", reports[0].table());

    let entries = runner.ledger().entries().unwrap();
    let last = entries.last().unwrap();
    assert_eq!(
        (last.action, last.outcome),
        (Action::Rollback, Outcome::Failed)
    );
    assert!(
        last.summary.starts_with("rollback incomplete")
            && last.summary.contains("migrations reverted")
            && last
                .summary
                .contains("differs from its dump from before phase 3 in"),
        "{}",
        last.summary
    );
    assert!(!last.steps.is_empty(), "the changes it made are listed");
    let status = runner.status().await.unwrap();
    assert_eq!(
        status.phases[2].state,
        State::RollbackIncomplete,
        "{status}"
    );
    assert!(status.next.contains("rollback --to 2"), "{}", status.next);
    // Phase 3 is not "already passed", and nothing may build on it.
    let err = runner
        .run(Phase::Sync, &RunOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rollback incomplete"), "{err}");

    // Once the cause is gone, rolling back again verifies.
    sqlx::query("DROP TABLE notes_of_my_own")
        .execute(&mut conn)
        .await
        .unwrap();
    let reports = runner
        .rollback(2, &RollbackOptions::default())
        .await
        .unwrap();
    assert!(reports[0].passed, "{}", reports[0].table());
    assert_eq!(
        runner.status().await.unwrap().phases[2].state,
        State::RolledBack
    );
}

/// Issue 10, item 7: a state dir whose ledger was written by the previous format (evidence
/// under string keys, facts among it) still works: phase 2 builds on its phase 1, and
/// rolling back honours its facts.
#[tokio::test]
async fn a_ledger_written_in_the_previous_format_still_works() {
    let s = Scratch::new("unused".into());
    let runner = Runner::new(s.config());
    pass(&runner, Phase::Foundation, &RunOptions::default()).await;
    let path = runner.ledger().path().to_path_buf();
    std::fs::write(&path, to_format_one(&path)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("ferry-phase-ledger/1"));

    pass(
        &Runner::new(s.config()),
        Phase::Import,
        &RunOptions::default(),
    )
    .await;
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("ferry-phase-ledger/2"));
    let reports = runner
        .rollback(0, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.passed), "{}", reports[1].table());
    assert!(!s.sqlite().exists());
}

/// The ledger as the previous version of ferry wrote it: one entry per finished action,
/// with the facts, the report path and the error inside `evidence`.
fn to_format_one(path: &Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let entries: Vec<serde_json::Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut evidence = e["evidence"].as_object().cloned().unwrap_or_default();
            for (k, v) in e["facts"].as_object().cloned().unwrap_or_default() {
                evidence.insert(k, v);
            }
            evidence.insert("report".into(), e["report"].clone());
            evidence.insert("scope_digest".into(), e["scope_digest"].clone());
            serde_json::json!({
                "run_id": e["run_id"], "phase": e["phase"], "action": e["action"],
                "started_at": e["started_at"], "finished_at": e["finished_at"],
                "outcome": e["outcome"], "gate_passed": e["gate_passed"],
                "summary": e["summary"], "evidence": evidence,
                "ferry_version": e["ferry_version"], "config_digest": e["config_digest"],
                "forced_reason": e["forced_reason"],
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "format": "ferry-phase-ledger/1",
        "entries": entries,
    }))
    .unwrap()
}

/// Issue 9, item 1, in one process: while another holder has the state dir, a run refuses
/// (naming it) or waits until it is free, then runs.
#[tokio::test]
async fn a_second_runner_refuses_or_waits_while_the_state_dir_is_held() {
    let s = Scratch::new("unused".into());
    let runner = Runner::new(s.config());
    let held = StateLock::try_acquire(&s.state(), "the sync follower")
        .unwrap()
        .unwrap();
    let err = runner
        .run(
            Phase::Foundation,
            &RunOptions {
                wait: Wait::No,
                ..RunOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("in use by the sync follower (pid "),
        "{err}"
    );
    assert!(
        runner.ledger().entries().unwrap().is_empty(),
        "a refused run records nothing"
    );

    let release = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        held.release();
    };
    let options = RunOptions::default();
    let ((), res) = tokio::join!(release, runner.run(Phase::Foundation, &options));
    let RunResult::Ran { report, .. } = res.unwrap() else {
        panic!("the waiting run should run once the lock is free")
    };
    assert!(report.passed, "{}", report.table());
    assert_eq!(
        StateLock::inspect(&s.state()).unwrap(),
        ferry_phases::lock::LockState::Free
    );
}

/// Gate 3 fails while part of the SQLite schema was not carried over (here a foreign key
/// PostgreSQL had to leave NOT VALID because of an orphan), naming it; `--acknowledge`
/// records a person's reason in the target and in the evidence.
#[tokio::test]
async fn gate_three_names_what_of_the_schema_was_not_carried_over_until_acknowledged() {
    use sqlx::Connection;
    let pg = ferry_testkit::pg::ScratchSchema::new("carried3").await;
    let s = Scratch::new(pg.name.clone());
    let runner = Runner::new(s.config());
    for phase in [Phase::Foundation, Phase::Import] {
        pass(&runner, phase, &RunOptions::default()).await;
    }
    let url = format!("sqlite://{}", s.sqlite().display());
    let mut lite = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut lite)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO agent_status (agent_id, status, source_path, doc, doc_sha256, doc_size) \
         VALUES ('Agent-Ghost', 'idle', 'agent_workspaces/Agent-Ghost/status.json', '{}', 'x', 2)",
    )
    .execute(&mut lite)
    .await
    .unwrap();
    lite.close().await.unwrap();

    // The orphan changed what gate 2 recorded, so phase 3 runs only when forced.
    let forced = RunOptions {
        force_reason: Some("an orphan added on purpose".into()),
        ..RunOptions::default()
    };
    let RunResult::Ran { report, .. } = runner.run(Phase::Load, &forced).await.unwrap() else {
        panic!("phase 3 should have run");
    };
    assert!(!report.passed, "{}", report.table());
    let carried = report
        .checks
        .iter()
        .find(|c| c.name == "schema carried over")
        .expect("gate 3 has the check");
    assert!(
        !carried.passed
            && carried.detail.contains("agent_status")
            && carried.detail.contains("--acknowledge"),
        "{carried:?}"
    );

    let RunResult::Ran { report, .. } = runner
        .run(
            Phase::Load,
            &RunOptions {
                acknowledge_schema: Some("the orphan is kept on purpose".into()),
                rerun: true,
                ..forced.clone()
            },
        )
        .await
        .unwrap()
    else {
        panic!("phase 3 should have run");
    };
    let carried = report
        .checks
        .iter()
        .find(|c| c.name == "schema carried over")
        .unwrap();
    assert!(
        carried.passed && carried.detail.contains("acknowledged"),
        "{carried:?}"
    );
    let entries = runner.ledger().entries().unwrap();
    let last = entries
        .iter()
        .rev()
        .find(|e| e.phase == Phase::Load)
        .unwrap();
    assert_eq!(
        last.evidence["schema_acknowledged"],
        "the orphan is kept on purpose"
    );
}
