//! The command line's errors as a person reads them, snapshotted with insta so they stay one
//! clear sentence: bad configuration (the key named once, what was meant), bad arguments,
//! files that are not SQLite, unreachable or misnamed servers — and no internals (SQL text,
//! driver prefixes, causes printed twice, retry warnings). Each case also checks that the
//! command left nothing behind.
//!
//! Snapshots hold relative paths (every command runs in a scratch folder) and `[PG]` for
//! the test server's address.

use std::path::Path;
use std::process::{Command, Output};

/// The test server, from `FERRY_TEST_POSTGRES_URL` (default: the local one).
fn test_url() -> String {
    ferry_core::env_vars::test_postgres_url()
}

/// `scheme://user@host:port` of the test server, replaced by `[PG]` in snapshots.
fn server_prefix() -> String {
    let url = test_url();
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    url[..end].to_owned()
}

fn xtask(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(dir).args(args).env("FERRY_PROGRESS", "0");
    for (var, _) in ferry_core::env_vars::CONFIG_VARS {
        cmd.env_remove(var);
    }
    cmd.env_remove("FERRY_CONFIG").env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run xtask")
}

/// The command, its exit code and what it printed on stderr, as the snapshot holds it.
fn transcript(args: &[&str], out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = format!(
        "$ cargo xtask {}\nexit {}\n{}",
        args.join(" "),
        out.status
            .code()
            .map_or("(signal)".into(), |c| c.to_string()),
        stderr
    );
    text.replace(&server_prefix(), "[PG]")
}

/// Names of the entries of `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `args` in a fresh folder holding `files`, and checks that the run changed nothing
/// in it; returns the transcript.
fn run_in_scratch(files: &[(&str, &[u8])], args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let before = listing(dir.path());
    let out = xtask(dir.path(), args, env);
    assert_eq!(
        listing(dir.path()),
        before,
        "`{}` left files behind",
        args.join(" ")
    );
    transcript(args, &out)
}

#[test]
fn config_errors_name_the_key_once_and_say_what_was_meant() {
    let cases: [(&str, &str); 4] = [
        ("typo_in_a_section", "[source]\nstore_dri = \"store\"\n"),
        ("key_at_the_top_level", "store_dir = \"store\"\n"),
        ("misspelt_section", "[trasnfer]\nworkers = 2\n"),
        (
            "not_a_postgres_url",
            "[postgres]\nurl = \"mysql://root:hunter2@127.0.0.1/app\"\n",
        ),
    ];
    for (name, toml) in cases {
        let t = run_in_scratch(&[("ferry.toml", toml.as_bytes())], &["status"], &[]);
        assert!(!t.contains("hunter2"), "password leaked: {t}");
        insta::assert_snapshot!(name, t);
    }
    let t = run_in_scratch(&[], &["status"], &[("FERRY_TRANSFER_WORKERS", "many")]);
    insta::assert_snapshot!("bad_value_from_the_environment", t);
}

#[test]
fn read_only_commands_on_a_missing_sqlite_file_create_nothing() {
    for op in ["status", "plan", "verify", "dump", "diff", "down --to 0"] {
        let mut args = vec!["migrate"];
        args.extend(op.split(' '));
        args.extend(["--db", "sqlite://app.sqlite3"]);
        let t = run_in_scratch(&[], &args, &[]);
        assert!(
            t.ends_with("error: SQLite file app.sqlite3 does not exist\n"),
            "{t}"
        );
    }
    // The default path, inside a state folder that exists (after `rollback --to 0`).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".ferry")).unwrap();
    let out = xtask(dir.path(), &["migrate", "status"], &[]);
    insta::assert_snapshot!(
        "migrate_status_on_a_missing_file",
        transcript(&["migrate", "status"], &out)
    );
    assert!(listing(&dir.path().join(".ferry")).is_empty());
}

#[test]
fn a_file_that_is_not_sqlite_is_named_without_internals() {
    let notes: &[u8] = b"these are notes, not a database\n";
    for (name, args) in [
        (
            "migrate_on_a_text_file",
            vec!["migrate", "status", "--db", "sqlite://notes.db"],
        ),
        (
            "import_into_a_text_file",
            vec!["import", "store", "notes.db"],
        ),
        (
            "transfer_from_a_text_file",
            vec!["transfer", "notes.db", "postgres://postgres@127.0.0.1:1/x"],
        ),
    ] {
        let t = run_in_scratch(&[("notes.db", notes), ("store/a.json", b"{}")], &args, &[]);
        assert!(!t.to_lowercase().contains("select"), "SQL shown: {t}");
        insta::assert_snapshot!(name, t);
    }
}

#[test]
fn a_failed_import_leaves_no_output_file() {
    let t = run_in_scratch(&[], &["import", "no-such-store", "out.sqlite3"], &[]);
    insta::assert_snapshot!("import_from_a_missing_store", t);
    let t = run_in_scratch(
        &[("store/a.json", b"{}")],
        &["import", "store", "out/x.sqlite3"],
        &[],
    );
    insta::assert_snapshot!("import_into_a_missing_folder", t);
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_not_called_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
    for (name, args) in [
        (
            "transfer_from_a_symlink_loop",
            vec!["transfer", "loop", "postgres://postgres@127.0.0.1:1/x"],
        ),
        (
            "import_from_a_symlink_loop",
            vec!["import", "loop", "out.sqlite3"],
        ),
    ] {
        let out = xtask(dir.path(), &args, &[]);
        let t = transcript(&args, &out);
        assert!(!t.contains("does not exist"), "{t}");
        insta::assert_snapshot!(name, t);
    }
    assert_eq!(listing(dir.path()), vec!["loop"]);
}

/// A real SQLite file, for the commands that check it before the server.
fn sqlite_file(dir: &Path) {
    let path = dir.join("app.sqlite3");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
}

#[test]
fn server_errors_are_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    sqlite_file(dir.path());
    // No `pg_lsclusters` on this PATH: the sentence must not depend on the machine's
    // clusters, and nothing may try to start one.
    let bare_path = dir.path().join("bin");
    std::fs::create_dir(&bare_path).unwrap();
    let no_tools = [("PATH", bare_path.to_str().unwrap())];
    let nowhere = "postgres://postgres@127.0.0.1:1/postgres";
    let no_such_db = format!("{}/ferry_no_such_database", server_prefix());
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "transfer_to_a_mysql_url",
            vec!["transfer", "app.sqlite3", "mysql://root@127.0.0.1/app"],
        ),
        (
            "transfer_to_a_closed_port",
            vec!["transfer", "app.sqlite3", nowhere],
        ),
        (
            "validate_against_a_closed_port",
            vec!["validate", "app.sqlite3", nowhere],
        ),
        (
            "migrate_a_closed_port",
            vec!["migrate", "status", "--db", nowhere],
        ),
        (
            "migrate_a_database_that_does_not_exist",
            vec!["migrate", "status", "--db", &no_such_db],
        ),
        (
            "transfer_to_a_database_that_does_not_exist",
            vec!["transfer", "app.sqlite3", &no_such_db],
        ),
        (
            "migrate_a_mysql_url",
            vec!["migrate", "status", "--db", "mysql://root@127.0.0.1/app"],
        ),
    ];
    for (name, args) in cases {
        let out = xtask(dir.path(), &args, &no_tools);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.lines().count(),
            1,
            "`{}` says one sentence, with no retry warnings: {stderr}",
            args.join(" ")
        );
        insta::assert_snapshot!(name, transcript(&args, &out));
    }
}

#[test]
fn help_says_how_to_call_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask(dir.path(), &["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Usage: cargo xtask [OPTIONS] <COMMAND>"),
        "{help}"
    );
    assert!(help.contains("Run it as `cargo xtask <COMMAND>`"), "{help}");
    let out = xtask(dir.path(), &["import", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: cargo xtask import"), "{help}");
}
