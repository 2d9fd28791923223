//! Phase 4 against a real SQLite file and the real PostgreSQL server: writes made after
//! phase 3 (to SQLite by a writer, and to the file store) reach PostgreSQL at cutover; the
//! gate fails naming a table that differs; rollback before cutover removes capture and proves
//! the SQLite schema; rollback after cutover refuses, counting what PostgreSQL received.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use ferry_core::config::{Config, ConfigLoader};
use ferry_phases::ledger::{Ledger, Outcome, State};
use ferry_phases::{Phase, RollbackOptions, RunOptions, RunResult, Runner};
use ferry_testkit::pg::ScratchSchema;
use ferry_testkit::sync_writer::{self, WriterConfig};

struct Scratch {
    dir: tempfile::TempDir,
    pg: ScratchSchema,
}

impl Scratch {
    async fn new(prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        ferry_testkit::store_gen::generate(&store, &ferry_testkit::store_gen::StoreSpec::small())
            .unwrap();
        // Backups refuse special files; the generator adds a FIFO for the import's sake.
        let _ = std::fs::remove_file(store.join("agent_workspaces/Agent-1/inbox/pipe.json"));
        Self {
            dir,
            pg: ScratchSchema::new(prefix).await,
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn sqlite(&self) -> PathBuf {
        self.dir.path().join("state/ferry.sqlite3")
    }

    fn config(&self) -> Config {
        ConfigLoader::new()
            .flag("source.store_dir", self.store().display().to_string())
            .flag("sqlite.path", self.sqlite().display().to_string())
            .flag(
                "state_dir",
                self.dir.path().join("state").display().to_string(),
            )
            .flag("postgres.url", ferry_testkit::pg::server_url())
            .flag("postgres.schema", self.pg.name.clone())
            .load()
            .unwrap()
    }

    /// Phases 1 to 3, each passed.
    async fn up_to_three(&self, runner: &Runner) {
        for phase in [Phase::Foundation, Phase::Import, Phase::Load] {
            let report = ran(runner.run(phase, &RunOptions::default()).await.unwrap());
            assert!(
                report.passed,
                "{phase}: {}\n{}",
                report.table(),
                report.details
            );
        }
    }

    /// The application writes SQLite: `writes` row writes of every shape.
    fn write_sqlite(&self, writes: u64, seed: u64) {
        sync_writer::use_wal(&self.sqlite()).unwrap();
        let stats = sync_writer::run(
            &self.sqlite(),
            &WriterConfig {
                rate: 0,
                seed,
                max_writes: Some(writes),
                duration: None,
                prefix: format!("w{seed}"),
                spare_imported: false,
            },
            &AtomicBool::new(false),
        )
        .unwrap();
        assert!(stats.writes >= writes, "{stats:?}");
    }
}

fn ran(r: RunResult) -> Box<ferry_phases::GateReport> {
    match r {
        RunResult::Ran { report, .. } => report,
        RunResult::AlreadyPassed(e) => panic!("expected a run, it had passed: {}", e.summary),
    }
}

fn cutover() -> RunOptions {
    RunOptions {
        writers_stopped: true,
        ..RunOptions::default()
    }
}

async fn pg_count(pg: &ScratchSchema, sql: &str) -> i64 {
    let mut conn = pg.connect().await;
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

fn sqlite_count(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn writes_after_phase_three_reach_postgres_at_cutover_and_rollback_after_it_refuses() {
    let s = Scratch::new("sync4").await;
    let runner = Runner::new(s.config());
    s.up_to_three(&runner).await;

    // The application keeps writing after phase 3: SQLite directly, and the file store.
    s.write_sqlite(400, 11);
    let msg = s
        .store()
        .join("agent_workspaces/Agent-1/inbox/msg_after_phase3.json");
    std::fs::write(
        &msg,
        r#"{"from": "Agent-2", "to": "Agent-1", "content": "written after phase 3"}"#,
    )
    .unwrap();

    // The cutover needs the operator's word that the file store is no longer written.
    let err = runner
        .run(Phase::Sync, &RunOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--writers-stopped"), "{err}");

    let report = ran(runner.run(Phase::Sync, &cutover()).await.unwrap());
    assert!(report.passed, "{}\n{}", report.table(), report.details);
    for name in [
        "change log drained",
        "lag 0",
        "every table equal",
        "no unacknowledged rejects",
        "capture triggers intact",
        "file store unchanged during the cutover",
        "cutover recorded",
    ] {
        assert!(
            report.checks.iter().any(|c| c.name == name && c.passed),
            "missing or failed check {name}: {}",
            report.table()
        );
    }
    // The evidence contract phase 5 reads.
    let ev = &report.evidence;
    assert!(
        chrono::DateTime::parse_from_rfc3339(ev["cutover"]["at"].as_str().unwrap()).is_ok(),
        "{ev}"
    );
    assert!(
        ev["cutover"]["blackout_ms"].as_f64().unwrap() >= 0.0,
        "{ev}"
    );
    assert!(ev["cutover"]["last_seq"].as_i64().unwrap() > 0, "{ev}");
    let series = PathBuf::from(ev["lag_series"].as_str().unwrap());
    assert!(series.is_file() && series.starts_with(s.dir.path().join("state/reports")));
    assert!(ev["lag"]["p99_ms"].as_f64().is_some(), "{ev}");
    assert!(ev["lag"].get("p50_ms").is_some() && ev["lag"].get("max_ms").is_some());
    assert!(!ev["tables"].as_array().unwrap().is_empty());

    // The writer's rows and the new file's message are in PostgreSQL.
    for table in ["tasks", "messages", "performance_metrics"] {
        let lite = sqlite_count(&s.sqlite(), &format!("SELECT count(*) FROM {table}"));
        let pg = pg_count(&s.pg, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(lite, pg, "{table}");
    }
    let carried = pg_count(
        &s.pg,
        "SELECT count(*) FROM messages WHERE body = 'written after phase 3'",
    )
    .await;
    assert_eq!(
        carried, 1,
        "the file written after phase 3 reached PostgreSQL"
    );

    // Status: phase 4 passed and holds; the earlier gates still hold.
    let st = runner.status().await.unwrap();
    for p in &st.phases[..4] {
        assert_eq!(p.state, State::Passed, "{p:?}");
        assert_eq!(p.holds, Some(true), "{p:?}");
    }

    // Someone still writes the old store: status names it.
    {
        let conn = rusqlite::Connection::open(s.sqlite()).unwrap();
        conn.execute(
            "UPDATE agents SET display_name = 'written after cutover' WHERE agent_id = (SELECT min(agent_id) FROM agents)",
            [],
        )
        .unwrap();
    }
    let st = runner.status().await.unwrap();
    let p4 = &st.phases[3];
    assert_eq!(p4.holds, Some(false), "{p4:?}");
    assert!(
        p4.recheck
            .iter()
            .any(|c| c.name == "no writes to SQLite after cutover" && c.detail.contains("1 rows")),
        "{p4:?}"
    );

    // PostgreSQL is live: a write there, then a rollback refuses, counting it.
    {
        let mut conn = s.pg.connect().await;
        sqlx::query("UPDATE agents SET display_name = 'live in postgres' WHERE agent_id = (SELECT max(agent_id) FROM agents)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let err = runner
        .rollback(3, &RollbackOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rows were written to it since")
            && err.contains("--discard-writes-since-cutover")
            && err.contains("agents"),
        "{err}"
    );
    assert!(err.contains(" 2 rows") || err.contains(" 1 rows"), "{err}");
    let reports = runner
        .rollback(
            3,
            &RollbackOptions {
                discard_writes_since_cutover: true,
                ..RollbackOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].passed, "{}", reports[0].table());
    assert!(
        reports[0].evidence["discarded_writes_since_cutover"]
            .as_i64()
            .unwrap()
            > 0
    );
    let ledger = Ledger::new(&s.dir.path().join("state"), &s.sqlite());
    let last = ledger.entries().unwrap().pop().unwrap();
    assert_eq!(last.outcome, Outcome::RolledBack);
    assert!(
        last.steps
            .iter()
            .any(|st| st.contains("--discard-writes-since-cutover")),
        "{:?}",
        last.steps
    );
    assert!(matches!(
        ferry_sync::verify(&s.sqlite()),
        Err(ferry_sync::SyncError::NotInstalled { .. })
    ));
}

#[tokio::test]
async fn gate_four_names_a_table_that_differs_and_rollback_before_cutover_restores_the_schema() {
    let s = Scratch::new("sync4diff").await;
    let runner = Runner::new(s.config());
    s.up_to_three(&runner).await;
    s.write_sqlite(200, 5);
    // Capture installed and the handoff closed before phase 4, as `cargo xtask sync` does.
    let plan_path = Ledger::new(&s.dir.path().join("state"), &s.sqlite())
        .entries()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.phase == Phase::Load)
        .and_then(|e| e.evidence["plan"].as_str().map(PathBuf::from))
        .unwrap();
    let plan: ferry_core::plan::TransferPlan =
        serde_json::from_slice(&std::fs::read(plan_path).unwrap()).unwrap();
    ferry_sync::install(&s.sqlite(), &plan, &ferry_sync::InstallOptions::default()).unwrap();
    let target = ferry_sync::SyncTarget {
        url: s.config().postgres.url.clone(),
        schema: s.pg.name.clone(),
    };
    let mut applier = ferry_sync::Applier::open(
        &s.sqlite(),
        &target,
        &plan,
        &ferry_sync::SyncOptions::default(),
        true,
    )
    .await
    .unwrap();
    applier.full_pass().await.unwrap();
    applier.close().await;
    s.write_sqlite(200, 6);
    // A row PostgreSQL holds differently, which no change of SQLite's touches.
    {
        let mut conn = s.pg.connect().await;
        let n = sqlx::query(
            "UPDATE devlogs SET title = 'edited in postgres' WHERE devlog_id = (SELECT min(devlog_id) FROM devlogs)",
        )
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(n, 1);
    }
    let report = ran(runner.run(Phase::Sync, &cutover()).await.unwrap());
    assert!(!report.passed, "{}", report.table());
    let equal = report
        .checks
        .iter()
        .find(|c| c.name == "every table equal")
        .unwrap();
    assert!(
        !equal.passed && equal.detail.contains("devlogs"),
        "{}",
        equal.detail
    );
    let cut = report
        .checks
        .iter()
        .find(|c| c.name == "cutover recorded")
        .unwrap();
    assert!(
        !cut.passed && cut.detail.contains("not cut over"),
        "{}",
        cut.detail
    );
    assert!(report.evidence["cutover"].is_null());
    // Writers were released: SQLite takes a write.
    {
        let conn = rusqlite::Connection::open(s.sqlite()).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .unwrap();
        conn.execute("UPDATE agents SET display_name = display_name", [])
            .unwrap();
    }
    assert!(ferry_sync::verify(&s.sqlite()).is_ok());

    // Before cutover: capture and the log removed, the SQLite schema as before phase 4.
    let reports = runner
        .rollback(3, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].passed, "{}", reports[0].table());
    assert!(reports[0]
        .checks
        .iter()
        .any(|c| c.name == "SQLite schema equals its pre-phase-4 dump" && c.passed));
    assert!(matches!(
        ferry_sync::verify(&s.sqlite()),
        Err(ferry_sync::SyncError::NotInstalled { .. })
    ));
    let left = pg_count(
        &s.pg,
        &format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename LIKE 'ferry_sync%'",
            s.pg.name
        ),
    )
    .await;
    assert_eq!(left, 0);
    let triggers = sqlite_count(
        &s.sqlite(),
        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ferry_sync%'",
    );
    assert_eq!(triggers, 0);
    assert_eq!(
        runner.status().await.unwrap().phases[3].state,
        State::RolledBack
    );
}

#[tokio::test]
async fn a_store_file_that_changes_during_the_cutover_aborts_it_naming_the_file() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    let s = Scratch::new("sync4store").await;
    let runner = Runner::new(s.config());
    s.up_to_three(&runner).await;
    // Something still writes the store although --writers-stopped was given.
    let busy = s
        .store()
        .join("agent_workspaces/Agent-1/inbox/still_written.json");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (busy, stop) = (busy.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                std::fs::write(
                    &busy,
                    format!(r#"{{"from": "Agent-2", "to": "Agent-1", "content": "write {n}"}}"#),
                )
                .unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let res = runner.run(Phase::Sync, &cutover()).await;
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let err = res.unwrap_err().to_string();
    assert!(
        err.contains("changed during the cutover") && err.contains("still_written.json"),
        "{err}"
    );
    // Nothing was cut over, and the writers were released.
    let target = ferry_sync::SyncTarget {
        url: s.config().postgres.url.clone(),
        schema: s.pg.name.clone(),
    };
    assert!(ferry_sync::pg_writes_since_cutover(&target)
        .await
        .unwrap()
        .is_empty());
    let conn = rusqlite::Connection::open(s.sqlite()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(2))
        .unwrap();
    conn.execute("UPDATE agents SET display_name = display_name", [])
        .unwrap();
    let st = runner.status().await.unwrap();
    assert_eq!(st.phases[3].state, State::Error, "{st}");
}
