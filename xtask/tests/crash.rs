//! The phase runner under real faults: the `xtask` binary killed with SIGKILL at the moment
//! it has created something, and two runs started at once. Each test works in its own temp
//! dir and its own PostgreSQL schema.
//!
//! Kill moments are found by watching what the run creates (the SQLite file, a backup
//! folder, the migrated schema), as a person pressing ^C would; the random-delay kills are
//! `cargo xtask faults`, run here at a small size with its seed printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_phases::ledger::{Action, Entry, Ledger, Outcome};
use ferry_phases::Phase;
use serde_json::Value;

/// How many times a kill is tried when the run finished before the moment came.
const ATTEMPTS: usize = 6;

/// One migration in a temp dir, driven through the `xtask` binary.
struct Migration {
    dir: tempfile::TempDir,
    schema: String,
    original: BTreeMap<String, Vec<u8>>,
}

impl Migration {
    fn new(schema: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        ferry_testkit::store_gen::generate(&store, &ferry_testkit::store_gen::StoreSpec::small())
            .unwrap();
        // Backups refuse special files; the generator adds a FIFO for the import's sake.
        let _ = std::fs::remove_file(store.join("agent_workspaces/Agent-1/inbox/pipe.json"));
        let original = tree(&store);
        Self {
            dir,
            schema: schema.to_owned(),
            original,
        }
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
            .env("FERRY_POSTGRES_SCHEMA", &self.schema)
            .env("FERRY_PROGRESS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run xtask")
    }

    /// Runs and expects one of `codes`.
    fn ok(&self, args: &[&str], codes: &[i32]) -> Output {
        let out = self.run(args);
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

    fn store_unchanged(&self) -> bool {
        tree(&self.dir.path().join("store")) == self.original
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&p)
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                );
            } else if meta.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Starts `args` and kills it with SIGKILL as soon as `moment` holds; `true` when it was
/// killed, `false` when it finished first.
fn kill_when(m: &Migration, args: &[&str], moment: impl Fn() -> bool) -> bool {
    let mut child = m.spawn(args);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if moment() {
            let alive = child.try_wait().unwrap().is_none();
            child.kill().ok();
            child.wait().unwrap();
            return alive;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            child.kill().ok();
            child.wait().unwrap();
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Regression (issue 9, items 3 and 4): `phase 1` killed once the SQLite file exists; the
/// run shows as interrupted with what it left, a rerun finishes it, and `rollback --to 0`
/// removes the file ferry created (it was described as restored before).
#[test]
fn a_killed_phase_one_is_shown_finished_by_a_rerun_and_its_sqlite_file_removed_on_rollback() {
    let mut tries = 0;
    let m = loop {
        tries += 1;
        assert!(tries <= ATTEMPTS, "phase 1 always finished before the kill");
        let m = Migration::new("unused");
        let sqlite = m.sqlite();
        if kill_when(&m, &["phase", "1"], || sqlite.exists()) {
            break m;
        }
    };
    let status = m.ok(&["status"], &[0]);
    let shown = text(&status);
    assert!(
        shown.contains("interrupted") && shown.contains("that phase 1 created"),
        "{shown}"
    );
    let json = m.ok(&["status", "--json"], &[0]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["phases"][0]["state"], "interrupted", "{v}");
    assert_eq!(v["lock"]["state"], "stale", "{v}");

    let rerun = m.ok(&["phase", "1"], &[0]);
    assert!(
        text(&rerun).contains("took over the lock"),
        "{}",
        text(&rerun)
    );
    let entries = m.entries();
    let runs: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.phase == Phase::Foundation)
        .collect();
    assert_eq!(runs.len(), 2, "{entries:#?}");
    assert_eq!(runs[0].outcome, Outcome::Interrupted);
    assert!(
        runs[0]
            .left_behind
            .iter()
            .any(|l| l.contains("that phase 1 created")),
        "{:?}",
        runs[0].left_behind
    );
    assert_eq!(runs[1].outcome, Outcome::Passed);
    for run in &runs {
        assert_eq!(run.facts["sqlite_preexisting"], false, "{}", run.facts);
    }

    let out = m.ok(&["rollback", "--to", "0"], &[0]);
    assert!(
        text(&out).contains("SQLite file ferry created removed"),
        "{}",
        text(&out)
    );
    assert!(
        !m.sqlite().exists(),
        "the SQLite file ferry created is gone"
    );
    assert!(m.store_unchanged());
}

/// Regression (issue 9, item 2): `phase 3` killed once its migrations are applied, rerun,
/// then rolled back. The rerun used to dump the half-built schema as the "before" state, so
/// the rollback failed to verify ("280 lines differ") and `status` still said "passed".
#[tokio::test]
async fn a_killed_phase_three_keeps_its_first_schema_dump_and_rolls_back_to_it() {
    let mut tries = 0;
    let (m, pg) = loop {
        tries += 1;
        assert!(tries <= ATTEMPTS, "phase 3 always finished before the kill");
        // The schema exists (empty) beforehand: rollback must leave it, and only it.
        let pg = ferry_testkit::pg::ScratchSchema::new("killed3").await;
        let m = Migration::new(&pg.name);
        m.ok(&["phase", "1"], &[0]);
        m.ok(&["phase", "2"], &[0, 1]);
        let url = ferry_testkit::pg::server_url();
        let schema = pg.name.clone();
        let migrated = move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                    .await
                    .unwrap();
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'agents'",
                )
                .bind(&schema)
                .fetch_one(&mut conn)
                .await
                .unwrap();
                n > 0
            })
        };
        let killed = std::thread::scope(|s| {
            s.spawn(|| kill_when(&m, &["phase", "3"], &migrated))
                .join()
                .unwrap()
        });
        if killed {
            break (m, pg);
        }
    };
    m.ok(&["phase", "3"], &[0]);
    let entries = m.entries();
    let runs: Vec<&Entry> = entries.iter().filter(|e| e.phase == Phase::Load).collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome, Outcome::Interrupted);
    assert_eq!(runs[1].outcome, Outcome::Passed);
    assert_eq!(
        runs[0].facts, runs[1].facts,
        "the rerun keeps the first dump"
    );
    assert_eq!(runs[1].facts["schema_existed"], true);

    let out = m.ok(&["rollback", "--to", "2"], &[0]);
    assert!(
        text(&out).contains("equals its dump from before phase 3"),
        "{}",
        text(&out)
    );
    let mut conn = pg.connect().await;
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = $1")
        .bind(&pg.name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        tables, 0,
        "every table ferry created is gone, the schema stays"
    );
    let v: Value = serde_json::from_slice(&m.ok(&["status", "--json"], &[0]).stdout).unwrap();
    assert_eq!(v["phases"][2]["state"], "rolled_back", "{v}");
    assert_eq!(v["next"], "cargo xtask phase 3");
}

/// Issue 9, item 4: a backup folder a killed run left without its manifest is shown by
/// `status` and removed by the next run (recorded on the run that left it); one no run of
/// the ledger made is reported and left alone.
#[test]
fn an_unsealed_backup_of_a_killed_run_is_removed_and_a_foreign_one_is_reported() {
    let mut tries = 0;
    let m = loop {
        tries += 1;
        assert!(
            tries <= ATTEMPTS,
            "the backup always finished before the kill"
        );
        let m = Migration::new("unused");
        let backups = m.state().join("backups");
        let unsealed = || {
            std::fs::read_dir(&backups).is_ok_and(|items| {
                items.flatten().any(|i| {
                    let name = i.file_name().to_string_lossy().into_owned();
                    name.starts_with("phase1-") && !i.path().join("manifest.json").exists()
                })
            })
        };
        if kill_when(&m, &["phase", "1"], unsealed) {
            break m;
        }
    };
    let backups = m.state().join("backups");
    let left: Vec<PathBuf> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|i| i.path())
        .filter(|p| p.is_dir() && !p.join("manifest.json").exists())
        .collect();
    assert!(!left.is_empty());
    let foreign = backups.join("phase1-20200101T000000000Z");
    std::fs::create_dir_all(foreign.join("store")).unwrap();

    let status = text(&m.ok(&["status"], &[0]));
    assert!(
        status.contains("incomplete backup (no manifest)")
            && status.contains("phase1-20200101T000000000Z"),
        "{status}"
    );
    let out = m.ok(&["phase", "1"], &[0]);
    assert!(
        text(&out).contains("no run in the ledger made"),
        "the foreign folder is reported: {}",
        text(&out)
    );
    for dir in &left {
        if dir.file_name().unwrap().to_string_lossy().starts_with('.') {
            assert!(!dir.exists(), "{} is removed", dir.display());
            continue;
        }
        assert!(!dir.exists(), "{} is removed", dir.display());
        let recorded = m.entries().iter().any(|e| {
            e.outcome == Outcome::Interrupted
                && e.housekeeping.removed_incomplete_backups.contains(dir)
        });
        assert!(
            recorded,
            "the removal of {} is in the ledger",
            dir.display()
        );
    }
    assert!(foreign.exists(), "a folder no run made is left alone");
}

/// Issue 9, item 1: two `phase N` started together. Exactly one runs; the other waits and
/// then finds the phase passed. The ledger and the gate reports agree.
fn two_at_once(phase: u8) {
    let m = Migration::new("unused");
    for n in 1..phase {
        m.ok(&["phase", &n.to_string()], &[0, 1]);
    }
    let n = phase.to_string();
    let a = m.spawn(&["phase", &n]);
    let b = m.spawn(&["phase", &n]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "exit {:?}: {}",
            out.status.code(),
            text(out)
        );
    }
    let ran = [&a, &b]
        .iter()
        .filter(|o| text(o).contains(": gate passed"))
        .count();
    let waited = [&a, &b]
        .iter()
        .filter(|o| text(o).contains("already passed"))
        .count();
    assert_eq!((ran, waited), (1, 1), "A: {}\nB: {}", text(&a), text(&b));

    let phase = Phase::try_from(phase).unwrap();
    let entries = m.entries();
    let runs: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.phase == phase && e.action == Action::Run)
        .collect();
    assert_eq!(runs.len(), 1, "{entries:#?}");
    assert_eq!(runs[0].outcome, Outcome::Passed);
    let reports: Vec<PathBuf> = std::fs::read_dir(m.state().join("reports"))
        .unwrap()
        .flatten()
        .map(|i| i.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("gate{}-", phase.number())) && name.ends_with(".json")
        })
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report: Value = serde_json::from_slice(&std::fs::read(&reports[0]).unwrap()).unwrap();
    assert_eq!(report["run_id"], runs[0].run_id.as_str());
    assert_eq!(
        runs[0].report.as_deref(),
        Some(reports[0].as_path()),
        "the ledger names the report"
    );
}

#[test]
fn two_phase_one_runs_at_once_one_runs_and_the_other_waits() {
    two_at_once(1);
}

#[test]
fn two_phase_two_runs_at_once_one_runs_and_the_other_waits() {
    two_at_once(2);
}

/// Issue 9, item 1: `--no-wait` refuses at once, in one sentence naming the holder (pid,
/// host, start time), and records nothing; a second real process is refused the same way.
#[test]
fn no_wait_refuses_naming_the_holder() {
    let m = Migration::new("unused");
    let held = ferry_phases::lock::StateLock::try_acquire(&m.state(), "the sync follower")
        .unwrap()
        .unwrap();
    for args in [
        &["phase", "1", "--no-wait"][..],
        &["rollback", "--to", "0", "--no-wait"],
    ] {
        let out = m.run(args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
        assert!(
            line.contains(&format!(
                "in use by the sync follower (pid {} on {}, since ",
                std::process::id(),
                ferry_phases::lock::host_name()
            )),
            "{err}"
        );
    }
    assert!(m.entries().is_empty(), "nothing is recorded");
    held.release();

    // A real run holds it: the second process names that run's pid. The first run is
    // stopped (SIGSTOP) once it holds the lock, so a small phase 1 cannot finish before the
    // second process starts, then continued (SIGCONT) to finish.
    let m = Migration::new("unused");
    let lock = m.state().join("ferry.lock");
    let first = m.spawn(&["phase", "1"]);
    let pid = first.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&format!("\"pid\": {pid}"))) {
        assert!(Instant::now() < deadline, "phase 1 never took the lock");
        std::thread::sleep(Duration::from_millis(1));
    }
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let second = m.run(&["phase", "1", "--no-wait"]);
    signal("-CONT");
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(
        text(&second).contains(&format!("in use by phase 1 (pid {pid} on ")),
        "{}",
        text(&second)
    );
    let runs = m.entries();
    assert_eq!(
        runs.len(),
        1,
        "only the first run is in the ledger: {runs:#?}"
    );
}

/// Issue 10, item 3: `phase 2` with quarantined files passes its gate and exits 1, showing
/// the count, the first reasons and the report, like a standalone `import`.
#[test]
fn phase_two_with_quarantined_files_exits_one_and_shows_the_first_reasons() {
    let m = Migration::new("unused");
    m.ok(&["phase", "1"], &[0]);
    let out = m.ok(&["phase", "2"], &[1]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("gate passed"), "{shown}");
    let line = shown
        .lines()
        .find(|l| l.contains("quarantined files"))
        .unwrap_or_else(|| panic!("{shown}"));
    let count: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
    assert!(count > 0, "{line}");
    let first: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.contains("quarantined files"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    assert_eq!(first.len() as u64, count.min(5), "{shown}");
    assert!(
        shown.contains("all of them, with their reasons: "),
        "{shown}"
    );
    let entries = m.entries();
    let run = entries
        .iter()
        .rev()
        .find(|e| e.phase == Phase::Import)
        .unwrap();
    let recorded: Vec<&str> = run.evidence["quarantined"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap())
        .collect();
    assert_eq!(
        recorded.len() as u64,
        count,
        "the count on screen is the ledger's"
    );
    for reason in first {
        assert!(
            recorded.contains(&reason) && reason.contains(": "),
            "{reason} is a path and its reason, as recorded"
        );
    }
}

/// Issue 10, item 1: a phase 1 that fails on bad input leaves only what it records about
/// itself (its ledger entry): no lock file, no empty folders.
#[test]
fn a_failed_phase_one_leaves_only_its_ledger_entry() {
    let m = Migration::new("unused");
    std::fs::remove_dir_all(m.dir.path().join("store")).unwrap();
    let out = m.ok(&["phase", "1"], &[2]);
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    let mut left = Vec::new();
    let mut stack = vec![m.state()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            left.push(p.strip_prefix(m.state()).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    left.sort();
    assert_eq!(left, ["ledger", "ledger/phase-runs.json"]);
    let entries = m.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].outcome, Outcome::Error);
    assert!(entries[0]
        .error
        .as_deref()
        .unwrap()
        .contains("does not exist"));
}

/// A run refused by the gate rules leaves no state dir behind (the lock made it, and took
/// it away again with nothing in it).
#[test]
fn a_refused_phase_leaves_no_state_dir() {
    let m = Migration::new("unused");
    let out = m.ok(&["phase", "2"], &[2]);
    assert!(text(&out).contains("has not passed"), "{}", text(&out));
    assert!(!m.state().exists(), "{} was left", m.state().display());
}

/// Issue 9, item 7, at CI size: the fault suite holds at every point it tries. The seed is
/// printed so a failure can be replayed with `cargo xtask faults --seed N`.
#[test]
fn the_fault_suite_holds_at_a_few_random_points_per_phase() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000;
    eprintln!("fault suite seed {seed}: replay with `cargo xtask faults --points 4 --seed {seed}`");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "faults",
            "--points",
            "4",
            "--phases",
            "1,2,3",
            "--seed",
            &seed.to_string(),
        ])
        .current_dir(dir.path())
        .env_remove("FERRY_CONFIG")
        .env("FERRY_POSTGRES_URL", ferry_testkit::pg::server_url())
        .env("FERRY_STATE_DIR", dir.path().join("state"))
        .env("FERRY_PROGRESS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "seed {seed}: {}", text(&out));
    let reports: Vec<PathBuf> = std::fs::read_dir(dir.path().join("state/reports"))
        .unwrap()
        .flatten()
        .map(|i| i.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("faults-")
        })
        .collect();
    assert_eq!(reports.len(), 1);
    let report: Value = serde_json::from_slice(&std::fs::read(&reports[0]).unwrap()).unwrap();
    assert_eq!(report["tried"], 12, "{report}");
    assert_eq!(report["held"], 12, "seed {seed}: {report}");
    assert_eq!(report["seed"], seed);
}
