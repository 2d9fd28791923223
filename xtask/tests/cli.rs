//! The command line as a user meets it: exit codes (0 success, 1 findings, 2 error), errors
//! that name the key or file, and passwords that never reach the terminal.

use std::path::Path;
use std::process::{Command, Output};

fn xtask(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(dir).args(args).env("FERRY_PROGRESS", "0");
    for var in [
        "FERRY_CONFIG",
        "FERRY_POSTGRES_URL",
        "FERRY_TRANSFER_WORKERS",
        "FERRY_STORE_DIR",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run xtask")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn migrate_verify_exits_one_on_drift_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("m");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("0001_init.up.sql"),
        "CREATE TABLE t (id integer);\n",
    )
    .unwrap();
    std::fs::write(migrations.join("0001_init.down.sql"), "DROP TABLE t;\n").unwrap();
    let db = "sqlite://app.sqlite3";
    let out = xtask(
        dir.path(),
        &["migrate", "up", "--db", db, "--dir", "m"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = xtask(
        dir.path(),
        &["migrate", "verify", "--db", db, "--dir", "m"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    std::fs::write(
        migrations.join("0001_init.up.sql"),
        "CREATE TABLE t (id bigint);\n",
    )
    .unwrap();
    let out = xtask(
        dir.path(),
        &["migrate", "verify", "--db", db, "--dir", "m"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("0001_init.up.sql"), "{}", text(&out));
    let out = xtask(
        dir.path(),
        &["migrate", "status", "--db", db, "--dir", "m"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("drifted"), "{}", text(&out));
}

#[test]
fn a_bad_config_value_exits_two_naming_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask(
        dir.path(),
        &["status"],
        &[("FERRY_TRANSFER_WORKERS", "many")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("transfer.workers") && t.contains("FERRY_TRANSFER_WORKERS"),
        "{t}"
    );

    std::fs::write(dir.path().join("ferry.toml"), "[sqlite]\npaht = \"x\"\n").unwrap();
    let out = xtask(dir.path(), &["status"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("sqlite.paht") && text(&out).contains("ferry.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_phase_before_its_gate_exits_two_and_says_which_gate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    std::fs::write(dir.path().join("store/a.json"), "{}").unwrap();
    let out = xtask(dir.path(), &["phase", "2"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("phase 1 (foundation) has not passed"),
        "{}",
        text(&out)
    );
    let out = xtask(dir.path(), &["phase", "2", "--force"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--force without --reason is refused: {}",
        text(&out)
    );
}

#[test]
fn a_password_never_reaches_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "Sw0rdfish-Secret";
    // Nothing listens on port 1: the error must still mask the password.
    let url = format!("postgres://postgres:{secret}@127.0.0.1:1/postgres");
    let out = xtask(dir.path(), &["migrate", "status", "--db", &url], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(!t.contains(secret), "password leaked: {t}");
    assert!(t.contains("postgres:***@127.0.0.1:1"), "{t}");

    let out = xtask(
        dir.path(),
        &["--log-format", "json", "-v", "status"],
        &[("FERRY_POSTGRES_URL", &url)],
    );
    let t = text(&out);
    assert!(!t.contains(secret), "password leaked: {t}");
}

#[test]
fn status_json_is_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask(dir.path(), &["status", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["phases"].as_array().unwrap().len(), 5);
    assert_eq!(v["next"], "cargo xtask phase 1");
}

/// Regression (issue 10, item 1): the README's tour stranded a newcomer, whose copied
/// ferry.toml named a store that did not exist. `demo --keep` leaves one the tour runs in,
/// and the tour's phases 1 to 5 and its rollback run there as the README writes them
/// (`sync`, which runs until Ctrl-C, has its own process test in `tests/sync.rs`).
#[test]
fn demo_keep_leaves_a_folder_the_tour_runs_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = ferry_core::env_vars::test_postgres_url();
    let env = [("FERRY_POSTGRES_URL", url.as_str())];
    let out = xtask(dir.path(), &["demo", "--keep"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let kept = dir.path().join("ferry-demo");
    assert!(kept.join("ferry.toml").is_file() && kept.join("store").is_dir());
    assert!(text(&out).contains("cd ferry-demo"), "{}", text(&out));

    // The tour, from the kept folder, as the README writes it.
    let out = xtask(&kept, &["phase", "1"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = xtask(&kept, &["status"], &env);
    assert!(
        text(&out).contains("next: cargo xtask phase 2"),
        "{}",
        text(&out)
    );
    let out = xtask(&kept, &["migrate", "status"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Phase 2 passes with the store's broken files quarantined: exit 1, as documented.
    let out = xtask(&kept, &["phase", "2"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("gate passed"), "{}", text(&out));
    let out = xtask(&kept, &["phase", "3"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = xtask(&kept, &["phase", "4", "--writers-stopped"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Unsigned, phase 5 exits 1 whether it awaits the signature or a comparison missed.
    let out = xtask(&kept, &["phase", "5", "--load-secs", "1"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = xtask(
        &kept,
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
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("signed by Release Manager"),
        "{}",
        text(&out)
    );
    // Phase 4's capture objects are ferry's own, not drift of the reviewed schema.
    let out = xtask(&kept, &["migrate", "diff"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("matches the reviewed snapshot"),
        "{}",
        text(&out)
    );
    let out = xtask(
        &kept,
        &["rollback", "--to", "0", "--export-back", "--plan"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing is changed"), "{}", text(&out));
    let out = xtask(&kept, &["rollback", "--to", "0", "--export-back"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A second kept demo never overwrites the first.
    let out = xtask(dir.path(), &["demo", "--keep"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("already exists"), "{}", text(&out));
}

/// Holds SQLite's write lock on `path` for `hold`, from another connection, while `args`
/// runs; returns what the command printed and its exit code.
fn run_while_locked(dir: &Path, path: &Path, args: &[&str], hold: std::time::Duration) -> Output {
    use sqlx::{ConnectOptions, Connection};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut holder = rt.block_on(async {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(dir)
        .args(args)
        .env("FERRY_PROGRESS", "0")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // The command meets the lock, waits, and says so; then the lock goes away.
    std::thread::sleep(hold);
    rt.block_on(async {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut holder)
            .await
            .unwrap();
        holder.close().await.unwrap();
    });
    child.wait_with_output().unwrap()
}

/// Regression (issue 9, item 6): waiting on a locked SQLite file was silent for 30 s.
#[test]
fn waiting_on_a_locked_sqlite_file_says_so_and_on_what() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/agent_workspaces/Agent-1")).unwrap();
    std::fs::write(
        dir.path()
            .join("store/agent_workspaces/Agent-1/status.json"),
        "{\"agent_id\": \"Agent-1\", \"status\": \"idle\"}",
    )
    .unwrap();
    let out = xtask(dir.path(), &["import", "store", "app.sqlite3"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The import's own connection (its write transaction).
    let hold = std::time::Duration::from_secs(3);
    let out = run_while_locked(
        dir.path(),
        &dir.path().join("app.sqlite3"),
        &["import", "store", "app.sqlite3"],
        hold,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("app.sqlite3 is locked by another connection"),
        "{}",
        text(&out)
    );

    // The migrator (creating its ledger, then each migration's transaction).
    let fresh = dir.path().join("fresh.sqlite3");
    std::fs::write(&fresh, "").unwrap();
    let out = run_while_locked(
        dir.path(),
        &fresh,
        &["migrate", "up", "--db", "sqlite://fresh.sqlite3"],
        hold,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("fresh.sqlite3 is locked by another connection"),
        "{}",
        text(&out)
    );
}

/// Regression (issue 9, item 5): with two names that are not UTF-8 beside a valid one, the
/// summary, the ledger and the exit code disagreed. Now each file has its own exact ledger
/// path, both are listed as quarantined, and the import exits 1.
#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_are_quarantined_each_and_the_exit_code_says_so() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    for name in [
        &b"x\xff.json"[..],
        b"x\xfe.json",
        "x\u{fffd}.json".as_bytes(),
    ] {
        std::fs::write(store.join(std::ffi::OsStr::from_bytes(name)), "{}").unwrap();
    }
    let out = xtask(dir.path(), &["import", "store", "app.sqlite3"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    for line in [
        "quarantined: x\\xFF.json: invalid_file_name",
        "quarantined: x\\xFE.json: invalid_file_name",
    ] {
        assert!(t.contains(line), "{line} in {t}");
    }
    assert!(!t.contains("quarantined: x\u{fffd}.json"), "{t}");
}

/// Regression (issue 10, item 3): the import's summary printed internal names
/// (`117 TimestampTruncated`).
#[test]
fn the_import_summary_names_its_notes_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("store/agent_workspaces/Agent-1");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("status.json"),
        "\u{feff}{\"agent_id\": \"Agent-1\", \"status\": \"idle\", \"last_update\": \"2025-08-11T10:41:04.7764221-05:00\"}",
    )
    .unwrap();
    let out = xtask(dir.path(), &["import", "store", "app.sqlite3"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("byte-order marks stripped"), "{t}");
    assert!(
        t.contains("timestamps with digits beyond microseconds truncated"),
        "{t}"
    );
    assert!(
        !t.contains("BomStripped") && !t.contains("TimestampTruncated"),
        "{t}"
    );
}
