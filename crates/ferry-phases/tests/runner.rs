//! The phase runner against real files: phase 1 passes and rolls back to a store equal to
//! its manifest, gates refuse what they must, `--force` is recorded, bad input leaves every
//! store as it was.

use std::path::{Path, PathBuf};

use ferry_core::config::{Config, ConfigLoader};
use ferry_phases::ledger::{Action, State};
use ferry_phases::{Phase, PhaseError, RollbackOptions, RunOptions, RunResult, Runner};

/// A scratch migration: a small store, a state dir and a SQLite path under one temp dir.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        for (path, body) in [
            (
                "agent_workspaces/Agent-1/status.json",
                "\u{feff}{\"agent_id\": \"Agent-1\", \"status\": \"busy\"}",
            ),
            (
                "agent_workspaces/Agent-1/inbox/msg_1.json",
                "{\"from\": \"Agent-2\", \"to\": \"Agent-1\", \"content\": \"hi\"}",
            ),
            (
                "agent_workspaces/agents.json",
                "{\"Agent-1\": {\"role\": \"captain\"}",
            ),
            ("devlogs/2025-01-01.md", "---\ntitle: first\n---\nbody\n"),
        ] {
            let p = store.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        Self { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn sqlite(&self) -> PathBuf {
        self.dir.path().join("out/ferry.sqlite3")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config(&self) -> Config {
        ConfigLoader::new()
            .flag("source.store_dir", self.store().display().to_string())
            .flag("sqlite.path", self.sqlite().display().to_string())
            .flag("state_dir", self.state().display().to_string())
            .load()
            .unwrap()
    }
}

/// Every file under `root` with its bytes, for byte-for-byte tree comparison.
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

async fn run(runner: &Runner, phase: Phase, options: &RunOptions) -> Result<RunResult, PhaseError> {
    runner.run(phase, options).await
}

#[tokio::test]
async fn phase_one_passes_then_rolls_back_to_a_store_equal_to_its_manifest() {
    let s = Scratch::new();
    let before = tree(&s.store());
    let runner = Runner::new(s.config());

    let RunResult::Ran {
        report,
        report_path,
    } = run(&runner, Phase::Foundation, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!("phase 1 should run");
    };
    assert!(report.passed, "{}", report.table());
    for name in [
        "backup test-restored",
        "backup verifies",
        "integrity_check",
        "foreign_key_check",
        "schema at head",
        "migration ledger clean",
        "schema equals reviewed snapshot",
    ] {
        assert!(
            report.checks.iter().any(|c| c.name == name && c.passed),
            "missing or failed check {name}: {}",
            report.table()
        );
    }
    assert!(report_path.exists() && report_path.with_extension("md").exists());
    assert!(s.sqlite().exists());
    // The ledger is mirrored into the SQLite file.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        s.sqlite().display()
    ))
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ferry_phase_runs WHERE phase = 1 AND outcome = 'passed'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 1);
    drop(conn);

    // Running a passed phase again is a no-op without --rerun.
    assert!(matches!(
        run(&runner, Phase::Foundation, &RunOptions::default())
            .await
            .unwrap(),
        RunResult::AlreadyPassed(_)
    ));
    let status = runner.status().await.unwrap();
    assert_eq!(status.phases[0].state, State::Passed);
    assert_eq!(status.sqlite.current, Some(status.sqlite.head));

    let reports = runner
        .rollback(0, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].passed, "{}", reports[0].table());
    assert!(
        !s.sqlite().exists(),
        "the SQLite file ferry created is gone from its place"
    );
    assert_eq!(tree(&s.store()), before, "the store is byte-identical");
    let status = runner.status().await.unwrap();
    assert_eq!(status.phases[0].state, State::RolledBack);
    assert_eq!(status.next, "cargo xtask phase 1");
}

#[tokio::test]
async fn a_phase_is_refused_until_the_gate_before_it_passed_and_force_is_recorded() {
    let s = Scratch::new();
    let runner = Runner::new(s.config());
    let err = run(&runner, Phase::Import, &RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PhaseError::GateNotPassed {
                previous: Phase::Foundation,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("phase 1 (foundation) has not passed"),
        "{err}"
    );

    // --force without a reason is refused; with one, the run happens and the reason is kept.
    let err = run(
        &runner,
        Phase::Foundation,
        &RunOptions {
            force_reason: Some("  ".into()),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PhaseError::ForceWithoutReason), "{err}");
    let _ = run(
        &runner,
        Phase::Import,
        &RunOptions {
            force_reason: Some("testing the override".into()),
            ..RunOptions::default()
        },
    )
    .await;
    let entries = runner.ledger().entries().unwrap();
    let last = entries.last().unwrap();
    assert_eq!((last.phase, last.action), (Phase::Import, Action::Run));
    assert_eq!(last.forced_reason.as_deref(), Some("testing the override"));
    assert!(last
        .forced_over
        .as_deref()
        .unwrap()
        .contains("has not passed"));
}

#[tokio::test]
async fn a_gate_whose_evidence_no_longer_holds_refuses_the_next_phase() {
    let s = Scratch::new();
    let runner = Runner::new(s.config());
    let RunResult::Ran { report, .. } = run(&runner, Phase::Foundation, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(report.passed, "{}", report.table());
    // Damage one file of the phase-1 backup.
    let backup_dir = PathBuf::from(report.evidence["backup"]["dir"].as_str().unwrap());
    let victim = backup_dir.join("store/agent_workspaces/Agent-1/inbox/msg_1.json");
    std::fs::write(&victim, b"tampered").unwrap();
    let err = run(&runner, Phase::Import, &RunOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PhaseError::GateNotPassed { .. }), "{text}");
    assert!(
        text.contains("evidence no longer holds") && text.contains("phase-1 backup verifies"),
        "{text}"
    );
}

#[tokio::test]
async fn an_existing_sqlite_file_is_baselined_and_restored_byte_identical_on_rollback() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.sqlite().parent().unwrap()).unwrap();
    // An application's own database that already has the agents table, with a row.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}?mode=rwc",
        s.sqlite().display()
    ))
    .await
    .unwrap();
    let first = ferry_migrations::SQLITE
        .iter()
        .find(|(n, _)| n.starts_with("0001") && n.ends_with(".up.sql"))
        .unwrap()
        .1;
    sqlx::raw_sql(first).execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO agents (agent_id, status) VALUES ('Agent-9', 'idle')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DROP INDEX tasks_agent_id_idx")
        .execute(&mut conn)
        .await
        .unwrap();
    <sqlx::SqliteConnection as sqlx::Connection>::close(conn)
        .await
        .unwrap();
    let original = std::fs::read(s.sqlite()).unwrap();

    let runner = Runner::new(s.config());
    let RunResult::Ran { report, .. } = run(&runner, Phase::Foundation, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(report.passed, "{}", report.table());
    // Adopted, not recreated: the row is still there, and the missing index was added.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        s.sqlite().display()
    ))
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM agents WHERE agent_id = 'Agent-9'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let idx: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'tasks_agent_id_idx'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(idx, 1);
    <sqlx::SqliteConnection as sqlx::Connection>::close(conn)
        .await
        .unwrap();

    let reports = runner
        .rollback(0, &RollbackOptions::default())
        .await
        .unwrap();
    assert!(reports[0].passed, "{}", reports[0].table());
    // The application's database is back as it was: same rows, same schema (the copy is a
    // consistent snapshot, so compare contents rather than page bytes).
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        s.sqlite().display()
    ))
    .await
    .unwrap();
    let idx: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'tasks_agent_id_idx'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(idx, 0, "the index phase 1 added is gone again");
    let ledger: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'ferry_schema_migrations'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(ledger, 0);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM agents WHERE agent_id = 'Agent-9'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    <sqlx::SqliteConnection as sqlx::Connection>::close(conn)
        .await
        .unwrap();
    assert!(!original.is_empty());
}

#[tokio::test]
async fn bad_input_is_one_clear_error_and_changes_nothing() {
    // A store that does not exist.
    let s = Scratch::new();
    let mut config = s.config();
    config.source.store_dir = s.dir.path().join("no-such-store");
    let err = run(
        &Runner::new(config),
        Phase::Foundation,
        &RunOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no-such-store"), "{err}");
    assert!(!s.sqlite().exists());

    // An empty store.
    let empty = s.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut config = s.config();
    config.source.store_dir = empty.clone();
    let err = run(
        &Runner::new(config),
        Phase::Foundation,
        &RunOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    // A SQLite path holding something that is not SQLite: refused, left byte-identical.
    std::fs::create_dir_all(s.sqlite().parent().unwrap()).unwrap();
    std::fs::write(s.sqlite(), b"these are notes, not a database\n").unwrap();
    let err = run(
        &Runner::new(s.config()),
        Phase::Foundation,
        &RunOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ferry.sqlite3"), "{err}");
    assert_eq!(
        std::fs::read(s.sqlite()).unwrap(),
        b"these are notes, not a database\n"
    );
}

#[tokio::test]
async fn phases_one_to_three_on_the_shared_sample_stores_pass_and_roll_back() {
    // Absent: fails under CI, and is counted by `cargo xtask ci` elsewhere.
    let Some(samples) = ferry_testkit::samples::require("stores") else {
        return;
    };
    for store in [
        "agent-cellphone",
        "claude-dirs/agents-league",
        "claude-dirs/CideryManagementWebApp",
    ] {
        let s = Scratch::new();
        std::fs::remove_dir_all(s.store()).unwrap();
        copy_tree(&samples.join(store), &s.store());
        let before = tree(&s.store());
        // A schema that does not exist yet: rollback must drop it again.
        let schema = ferry_testkit::pg::unique_name("samples");
        let _cleanup = DropSchema(schema.clone());
        let mut config = s.config();
        config.postgres.schema = schema;
        let runner = Runner::new(config);
        for phase in [Phase::Foundation, Phase::Import, Phase::Load] {
            let RunResult::Ran { report, .. } =
                run(&runner, phase, &RunOptions::default()).await.unwrap()
            else {
                panic!()
            };
            assert!(
                report.passed,
                "{store}, {phase}: {}\n{}",
                report.table(),
                report.details
            );
            if phase == Phase::Foundation {
                assert_eq!(
                    report.evidence["backup"]["files"].as_u64().unwrap() as usize,
                    before.len(),
                    "{store}"
                );
            }
        }
        let reports = runner
            .rollback(0, &RollbackOptions::default())
            .await
            .unwrap();
        assert_eq!(reports.len(), 3, "{store}");
        for r in &reports {
            assert!(r.passed, "{store}, rollback of {}: {}", r.phase, r.table());
        }
        assert_eq!(tree(&s.store()), before, "{store}");
    }
}

/// Drops a schema when the test ends, whether or not the rollback under test did.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = ferry_testkit::pg::admin().await;
                let _ = sqlx::raw_sql(&sql).execute(&mut conn).await;
            });
        })
        .join()
        .unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            let mut perms = std::fs::metadata(&target).unwrap().permissions();
            #[expect(
                clippy::permissions_set_readonly_false,
                reason = "the samples are read-only; the copy must be writable"
            )]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).unwrap();
        }
    }
}

#[tokio::test]
async fn phase_two_imports_every_file_and_rolls_back_to_the_gate_one_file() {
    let s = Scratch::new();
    let runner = Runner::new(s.config());
    let RunResult::Ran { report, .. } = run(&runner, Phase::Foundation, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(report.passed, "{}", report.table());
    let gate1_sha = report.evidence["gate_backup"]["sqlite_sha256"]
        .as_str()
        .unwrap()
        .to_owned();

    let RunResult::Ran { report, .. } = run(&runner, Phase::Import, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(report.passed, "{}", report.table());
    let accounted = report
        .checks
        .iter()
        .find(|c| c.name == "every manifest file accounted for")
        .unwrap();
    assert!(
        accounted.detail.contains("all 4 files"),
        "{}",
        accounted.detail
    );
    // The truncated agents.json is quarantined with a reason, and listed.
    let quarantined = report.evidence["quarantined"].as_array().unwrap();
    assert!(
        quarantined
            .iter()
            .any(|q| q.as_str().unwrap().contains("agents.json")),
        "{quarantined:?}"
    );

    let reports = runner
        .rollback(1, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].passed, "{}", reports[0].table());
    let check = reports[0]
        .checks
        .iter()
        .find(|c| c.name == "SQLite file equals the gate-1 backup")
        .unwrap();
    assert!(
        check.passed && check.detail.contains(&gate1_sha),
        "{}",
        check.detail
    );
    // Nothing imported is left (the ledger mirror may have been written since).
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        s.sqlite().display()
    ))
    .await
    .unwrap();
    for table in ["messages", "agent_status", "ferry_source_files"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    <sqlx::SqliteConnection as sqlx::Connection>::close(conn)
        .await
        .unwrap();
    assert_eq!(
        runner.status().await.unwrap().phases[1].state,
        State::RolledBack
    );
    // And phase 2 can run again from there.
    let RunResult::Ran { report, .. } = run(&runner, Phase::Import, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(report.passed, "{}", report.table());
}

#[tokio::test]
async fn gate_two_fails_when_a_manifest_file_is_unaccounted_for() {
    let s = Scratch::new();
    let runner = Runner::new(s.config());
    let RunResult::Ran { report, .. } = run(&runner, Phase::Foundation, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(report.passed, "{}", report.table());
    // The application removes a message after the backup: the import never sees it.
    std::fs::remove_file(s.store().join("agent_workspaces/Agent-1/inbox/msg_1.json")).unwrap();
    let RunResult::Ran { report, .. } = run(&runner, Phase::Import, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(!report.passed, "{}", report.table());
    let accounted = report
        .checks
        .iter()
        .find(|c| c.name == "every manifest file accounted for")
        .unwrap();
    assert!(
        !accounted.passed
            && accounted
                .detail
                .contains("agent_workspaces/Agent-1/inbox/msg_1.json"),
        "{}",
        accounted.detail
    );
    assert_eq!(
        runner.status().await.unwrap().phases[1].state,
        State::Failed
    );
}

#[tokio::test]
async fn phase_three_loads_postgres_equal_and_rolls_back_to_the_pre_phase_schema() {
    let s = Scratch::new();
    // The target schema exists beforehand (empty): rollback must leave it, and only it.
    let pg = ferry_testkit::pg::ScratchSchema::new("phase3").await;
    let mut config = s.config();
    config.postgres.schema = pg.name.clone();
    let runner = Runner::new(config);
    for phase in [Phase::Foundation, Phase::Import, Phase::Load] {
        let RunResult::Ran { report, .. } =
            run(&runner, phase, &RunOptions::default()).await.unwrap()
        else {
            panic!()
        };
        assert!(
            report.passed,
            "{phase}: {}\n{}",
            report.table(),
            report.details
        );
    }
    // The rows are really in PostgreSQL, with their types.
    let mut conn = pg.connect().await;
    let (n, typed): (i64, i64) = sqlx::query_as("SELECT count(*), count(sent_at) FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(typed, 0, "the message has no timestamp field");
    let status: String =
        sqlx::query_scalar("SELECT status FROM agent_status WHERE agent_id = 'Agent-1'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(status, "busy");
    let state = runner.status().await.unwrap();
    assert_eq!(state.phases[2].state, State::Passed);
    assert_eq!(state.postgres.current, Some(state.postgres.head));

    let reports = runner
        .rollback(2, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].passed, "{}", reports[0].table());
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = $1")
        .bind(&pg.name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tables, 0, "every table ferry created is gone");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&pg.name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(exists, "the schema that was there before stays");
    // Phase 2's evidence still holds, so phase 3 can run again.
    let RunResult::Ran { report, .. } = run(&runner, Phase::Load, &RunOptions::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(report.passed, "{}", report.table());
}

#[tokio::test]
async fn phase_three_is_refused_when_sqlite_lost_rows_after_gate_two() {
    let s = Scratch::new();
    let pg = ferry_testkit::pg::ScratchSchema::new("phase3_refused").await;
    let mut config = s.config();
    config.postgres.schema = pg.name.clone();
    let runner = Runner::new(config);
    for phase in [Phase::Foundation, Phase::Import] {
        let RunResult::Ran { report, .. } =
            run(&runner, phase, &RunOptions::default()).await.unwrap()
        else {
            panic!()
        };
        assert!(report.passed, "{}", report.table());
    }
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        s.sqlite().display()
    ))
    .await
    .unwrap();
    // Rows lost since gate 2 refuse phase 3; an application that keeps writing does not
    // (phase 3 copies a snapshot, and sync carries what follows).
    sqlx::query("DELETE FROM agent_status WHERE rowid = (SELECT min(rowid) FROM agent_status)")
        .execute(&mut conn)
        .await
        .unwrap();
    <sqlx::SqliteConnection as sqlx::Connection>::close(conn)
        .await
        .unwrap();
    let err = run(&runner, Phase::Load, &RunOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("SQLite tables unchanged since gate 2")
            && text.contains("agent_status")
            && text.contains("rows were lost"),
        "{text}"
    );
}
