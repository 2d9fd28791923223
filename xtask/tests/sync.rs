//! `cargo xtask sync` and `phase 4` as real processes: the follower started as a child,
//! writes to SQLite reach PostgreSQL, SIGINT stops it cleanly and a restart resumes; phase 4
//! refuses while it runs; a `phase 4` killed with SIGKILL once capture exists leaves the
//! ledger honest, and its rerun cuts over; a writer that never pauses from before phase 3
//! until after the cutover loses nothing; a `phase 5` killed while its agents run leaves a
//! scratch schema that its rerun removes first.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_phases::ledger::{Entry, Ledger, Outcome};
use ferry_phases::Phase;
use ferry_testkit::sync_writer::{self, WriterConfig};
use serde_json::Value;

/// How long a test waits for something that must happen before calling it a failure.
const PATIENCE: Duration = Duration::from_secs(120);

struct Migration {
    dir: tempfile::TempDir,
    pg: ferry_testkit::pg::ScratchSchema,
}

impl Migration {
    async fn new(prefix: &str) -> Self {
        let m = Self::imported(prefix).await;
        m.ok(&["phase", "3"], &[0]);
        m
    }

    /// Phases 1 and 2 passed; phase 3 not run.
    async fn imported(prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        ferry_testkit::store_gen::generate(&store, &ferry_testkit::store_gen::StoreSpec::small())
            .unwrap();
        let _ = std::fs::remove_file(store.join("agent_workspaces/Agent-1/inbox/pipe.json"));
        let m = Self {
            dir,
            pg: ferry_testkit::pg::ScratchSchema::new(prefix).await,
        };
        m.ok(&["phase", "1"], &[0]);
        m.ok(&["phase", "2"], &[0, 1]);
        m
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn sqlite(&self) -> PathBuf {
        self.state().join("ferry.sqlite3")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("FERRY_CONFIG")
            .env("FERRY_STORE_DIR", self.dir.path().join("store"))
            .env("FERRY_STATE_DIR", self.state())
            .env("FERRY_SQLITE_PATH", self.sqlite())
            .env("FERRY_POSTGRES_URL", ferry_testkit::pg::server_url())
            .env("FERRY_POSTGRES_SCHEMA", &self.pg.name)
            .env("FERRY_PROGRESS", "0")
            .env("FERRY_SYNC_INTERVAL_MS", "50")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn ok(&self, args: &[&str], codes: &[i32]) -> Output {
        let out = self.command(args).output().expect("run xtask");
        assert!(
            codes.contains(&out.status.code().unwrap_or(-1)),
            "`{}` exited {:?}: {}",
            args.join(" "),
            out.status.code(),
            text(&out)
        );
        out
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().expect("start xtask")
    }

    fn entries(&self) -> Vec<Entry> {
        Ledger::new(&self.state(), &self.sqlite())
            .entries()
            .unwrap()
    }

    /// The application writes SQLite.
    fn write(&self, writes: u64, seed: u64) {
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

    /// The newest change-log entry in SQLite, and PostgreSQL's cursor.
    async fn positions(&self) -> (i64, Option<i64>) {
        let conn = rusqlite::Connection::open(self.sqlite()).unwrap();
        let logged: i64 = conn
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM ferry_sync_log",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        let mut pg = self.pg.connect().await;
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT cursor FROM ferry_sync_state WHERE id = 1")
                .fetch_optional(&mut pg)
                .await
                .unwrap_or(None);
        (logged, cursor)
    }

    /// Waits until PostgreSQL's cursor reaches the newest entry (after some were written).
    async fn caught_up(&self, child: &mut Child) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (logged, cursor) = self.positions().await;
            if logged > 0 && cursor == Some(logged) {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("sync exited early ({status}) at entry {logged}, cursor {cursor:?}");
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL never caught up: entry {logged}, cursor {cursor:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sigint(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -INT {}", child.id());
}

#[tokio::test]
async fn sync_follows_writes_stops_on_sigint_resumes_and_phase_four_waits_for_it() {
    let m = Migration::new("sync_cmd").await;
    let mut child = m.spawn(&["sync"]);
    // The follower installs capture; wait for its handoff (the state row exists).
    let deadline = Instant::now() + PATIENCE;
    while m.positions().await.1.is_none() {
        assert!(child.try_wait().unwrap().is_none(), "sync exited early");
        assert!(Instant::now() < deadline, "sync never started following");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    m.write(300, 21);
    m.caught_up(&mut child).await;

    // Phase 4 refuses while sync runs, and says what to do.
    let out = m.ok(&["phase", "4", "--writers-stopped"], &[2]);
    assert!(
        text(&out).contains("stop it with Ctrl-C first"),
        "{}",
        text(&out)
    );

    // While it runs, status shows the lag.
    let out = m.ok(&["status", "--json"], &[0]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sync"]["changes_behind"], 0, "{v}");

    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("sync stopped"), "{}", text(&out));
    let reports = m.state().join("reports");
    assert!(std::fs::read_dir(&reports).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("sync-lag-")));

    // Writes while it is stopped; a restart resumes from the cursor and catches up.
    let (_, before) = m.positions().await;
    m.write(200, 22);
    let mut child = m.spawn(&["sync"]);
    m.caught_up(&mut child).await;
    let (logged, after) = m.positions().await;
    assert!(after > before && after == Some(logged));
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Cutover with nothing left behind.
    let out = m.ok(&["phase", "4", "--writers-stopped"], &[0]);
    assert!(text(&out).contains("gate passed"), "{}", text(&out));
}

#[tokio::test]
async fn a_killed_phase_four_is_shown_interrupted_and_its_rerun_cuts_over() {
    let m = Migration::new("killed4").await;
    m.write(300, 31);
    let sqlite = m.sqlite();
    let captured = move || {
        rusqlite::Connection::open_with_flags(&sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'ferry_sync_log'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .unwrap_or(0)
            > 0
    };
    let mut child = m.spawn(&["phase", "4", "--writers-stopped"]);
    let deadline = Instant::now() + PATIENCE;
    let killed = loop {
        if captured() {
            let alive = child.try_wait().unwrap().is_none();
            child.kill().ok();
            child.wait().unwrap();
            break alive;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            child.kill().ok();
            child.wait().unwrap();
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(killed, "phase 4 finished before capture was seen");

    let v: Value = serde_json::from_slice(&m.ok(&["status", "--json"], &[0]).stdout).unwrap();
    let interrupted = v["interrupted"].as_array().unwrap();
    assert_eq!(interrupted.len(), 1, "{v}");
    assert_eq!(interrupted[0]["phase"], 4);
    assert!(
        interrupted[0]["left_behind"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("capture")),
        "{v}"
    );

    m.write(100, 32);
    let out = m.ok(&["phase", "4", "--writers-stopped"], &[0]);
    assert!(text(&out).contains("gate passed"), "{}", text(&out));
    let entries = m.entries();
    let runs: Vec<&Entry> = entries.iter().filter(|e| e.phase == Phase::Sync).collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome, Outcome::Interrupted);
    assert_eq!(runs[1].outcome, Outcome::Passed);
    assert_eq!(
        runs[0].facts, runs[1].facts,
        "the rerun keeps the first dump"
    );
    assert!(runs[1].evidence["cutover"]["last_seq"].as_i64().unwrap() > 0);

    // Rolled back after cutover with the explicit flag, the SQLite schema is as before.
    let out = m.ok(&["rollback", "--to", "3"], &[2]);
    assert!(
        text(&out).contains("--discard-writes-since-cutover"),
        "{}",
        text(&out)
    );
    let out = m.ok(
        &["rollback", "--to", "3", "--discard-writes-since-cutover"],
        &[0],
    );
    assert!(
        text(&out).contains("SQLite schema equals its pre-phase-4 dump"),
        "{}",
        text(&out)
    );
}

/// This migration's scratch schemas of the sign-off's concurrency check.
async fn scratch_schemas(m: &Migration) -> Vec<String> {
    let prefix = ferry_signoff::concurrency::scratch_prefix(&m.pg.name);
    let mut pg = m.pg.connect().await;
    let names: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace")
        .fetch_all(&mut pg)
        .await
        .unwrap();
    names
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Phase 5 killed with SIGKILL while its simulated agents run: status shows it interrupted
/// with what it left, the rerun removes the dead run's scratch schema first and signs, and
/// the rollback to 4 withdraws the signature and leaves no scratch behind.
#[tokio::test]
async fn a_killed_phase_five_is_shown_interrupted_its_rerun_clears_the_scratch_and_signs() {
    let m = Migration::new("killed5").await;
    m.ok(&["phase", "4", "--writers-stopped"], &[0]);

    let mut child = m.spawn(&["phase", "5", "--load-secs", "60"]);
    let deadline = Instant::now() + PATIENCE;
    let left = loop {
        let found = scratch_schemas(&m).await;
        if !found.is_empty() {
            // Let the agents start writing into it before the kill.
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                child.try_wait().unwrap().is_none(),
                "phase 5 ended within half a second of its 60 s load"
            );
            child.kill().unwrap();
            child.wait().unwrap();
            break found;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("phase 5 ended ({status}) before its scratch schema was seen");
        }
        assert!(Instant::now() < deadline, "no scratch schema appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        scratch_schemas(&m).await,
        left,
        "the kill left the scratch schema"
    );

    let v: Value = serde_json::from_slice(&m.ok(&["status", "--json"], &[0]).stdout).unwrap();
    let interrupted = v["interrupted"].as_array().unwrap();
    assert_eq!(interrupted.len(), 1, "{v}");
    assert_eq!(interrupted[0]["phase"], 5);
    assert!(
        interrupted[0]["left_behind"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("scratch")),
        "{v}"
    );

    let out = m.ok(
        &[
            "phase",
            "5",
            "--load-secs",
            "1",
            "--signed-by",
            "Release Manager",
            "--accept-slower",
            "a loopback round trip per read",
        ],
        &[0],
    );
    let said = text(&out);
    assert!(said.contains("signed by Release Manager"), "{said}");
    assert!(
        said.contains("left by a killed run") && said.contains(&left[0]),
        "{said}"
    );
    assert!(scratch_schemas(&m).await.is_empty(), "{said}");
    let entries = m.entries();
    let runs: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.phase == Phase::SignOff)
        .collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome, Outcome::Interrupted);
    assert_eq!(runs[1].outcome, Outcome::Passed);
    let cleared = runs[1].evidence["cleared_before_run"].as_array().unwrap();
    assert!(
        cleared
            .iter()
            .any(|c| c.as_str().unwrap().contains(&left[0])),
        "{cleared:?}"
    );

    let out = m.ok(&["rollback", "--to", "4"], &[0]);
    assert!(
        text(&out).contains("signature of Release Manager is withdrawn"),
        "{}",
        text(&out)
    );
    let v: Value = serde_json::from_slice(&m.ok(&["status", "--json"], &[0]).stdout).unwrap();
    assert_eq!(v["phases"][4]["state"], "rolled_back", "{v}");
    assert_eq!(v["phases"][3]["state"], "passed", "{v}");
}

/// The old application: one row per transaction into `messages`, at a steady rate, never
/// pausing (the cutover's fence makes it wait on its busy timeout, not fail). Each row's key
/// and subject are kept in commit order once committed.
struct SteadyWriter {
    stop: Arc<AtomicBool>,
    committed: Arc<Mutex<Vec<(String, String)>>>,
    handle: std::thread::JoinHandle<()>,
}

impl SteadyWriter {
    /// `wal`: the file in WAL mode, else in rollback-journal mode (`DELETE`), where the
    /// cutover's fence is a lock on the database file itself.
    fn start(sqlite: PathBuf, wal: bool) -> Self {
        if wal {
            sync_writer::use_wal(&sqlite).unwrap();
        } else {
            rusqlite::Connection::open(&sqlite)
                .unwrap()
                .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
                .unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(Mutex::new(Vec::new()));
        let handle = {
            let (stop, committed) = (stop.clone(), committed.clone());
            std::thread::spawn(move || {
                let mut conn = rusqlite::Connection::open(&sqlite).unwrap();
                conn.busy_timeout(Duration::from_secs(60)).unwrap();
                let agent: String = conn
                    .query_row("SELECT agent_id FROM agents ORDER BY agent_id", [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let id = format!("steady-{n:06}");
                    let subject = format!("steady write {n} of the old application");
                    let tx = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .unwrap();
                    tx.execute(
                        "INSERT INTO messages (message_id, mailbox_agent_id, folder, from_agent, to_agent, subject, body, sent_at, source_path, doc, doc_sha256, doc_size)
                         VALUES (?1, ?2, 'inbox', ?2, ?2, ?3, 'body', '2025-06-01T00:00:00.000000Z', ?4, '{}', ?5, 2)",
                        rusqlite::params![id, agent, subject, format!("inbox/{id}.json"), format!("{n:064}")],
                    )
                    .unwrap();
                    tx.commit().unwrap();
                    committed.lock().unwrap().push((id, subject));
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Self {
            stop,
            committed,
            handle,
        }
    }

    fn committed(&self) -> usize {
        self.committed.lock().unwrap().len()
    }

    fn stop(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the writer panicked");
        Arc::try_unwrap(self.committed)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

#[tokio::test]
async fn a_writer_running_from_before_phase_three_until_after_the_cutover_loses_nothing() {
    steady_writer_through_the_cutover("steady", true).await;
}

#[tokio::test]
async fn in_rollback_journal_mode_too_the_fence_holds_the_writer_and_nothing_is_lost() {
    steady_writer_through_the_cutover("steady_journal", false).await;
}

async fn steady_writer_through_the_cutover(prefix: &str, wal: bool) {
    let m = Migration::imported(prefix).await;
    let writer = SteadyWriter::start(m.sqlite(), wal);
    let deadline = Instant::now() + PATIENCE;
    while writer.committed() < 20 {
        assert!(Instant::now() < deadline, "the writer never wrote");
        std::thread::sleep(Duration::from_millis(10));
    }

    // Phase 3 copies a snapshot while the writer goes on: gate 3 passes, and says sync
    // carries what SQLite holds beyond it.
    let at_phase3 = writer.committed();
    let out = m.ok(&["phase", "3"], &[0]);
    assert!(text(&out).contains("gate passed"), "{}", text(&out));
    assert!(
        writer.committed() > at_phase3,
        "the writer paused during phase 3"
    );
    let load = m
        .entries()
        .into_iter()
        .rfind(|e| e.phase == Phase::Load)
        .unwrap();
    let snapshot = &load.evidence["snapshot"];
    assert!(snapshot["sha256"].as_str().is_some(), "{snapshot}");
    assert_eq!(snapshot["removed"], true, "{snapshot}");
    assert!(!std::path::Path::new(snapshot["path"].as_str().unwrap()).exists());

    // Sync follows (its handoff closes the gap between the snapshot and capture) until it
    // has applied some of the writer's entries, then stops on SIGINT.
    let mut child = m.spawn(&["sync"]);
    let deadline = Instant::now() + PATIENCE;
    while m.positions().await.1.unwrap_or(0) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "sync exited early");
        assert!(Instant::now() < deadline, "sync never applied an entry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The cutover fences the writer (it waits, then goes on writing to SQLite).
    let before_cutover = writer.committed();
    let out = m.ok(&["phase", "4", "--writers-stopped"], &[0]);
    assert!(text(&out).contains("gate passed"), "{}", text(&out));
    let written = writer.stop();
    assert!(written.len() > before_cutover, "the writer stopped early");
    let sync = m
        .entries()
        .into_iter()
        .rfind(|e| e.phase == Phase::Sync)
        .unwrap();
    assert_eq!(sync.outcome, Outcome::Passed);

    // What status counts as written after the cutover, and what PostgreSQL holds.
    let v: Value = serde_json::from_slice(&m.ok(&["status", "--json"], &[0, 1]).stdout).unwrap();
    let after = v["sync"]["written_after_cutover"]
        .as_u64()
        .unwrap_or_else(|| panic!("status --json has no sync.written_after_cutover: {v}"));
    let mut pg = m.pg.connect().await;
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT message_id, subject FROM messages WHERE message_id LIKE 'steady-%' ORDER BY message_id",
    )
    .fetch_all(&mut pg)
    .await
    .unwrap();
    assert_eq!(
        rows.len() as u64 + after,
        written.len() as u64,
        "PostgreSQL holds {} of the writer's rows, status counts {after} written after the cutover, the writer committed {}",
        rows.len(),
        written.len()
    );
    // The writer commits one row at a time, in key order: the cutover splits its rows into
    // those before (every one in PostgreSQL, values equal) and those after.
    let before = &written[..rows.len()];
    for ((id, subject), (pg_id, pg_subject)) in before.iter().zip(&rows) {
        assert_eq!(id, pg_id);
        assert_eq!(Some(subject), pg_subject.as_ref(), "{id}");
    }
    assert!(
        rows.len() >= before_cutover,
        "{} rows in PostgreSQL, {before_cutover} committed before phase 4 started",
        rows.len()
    );
}
