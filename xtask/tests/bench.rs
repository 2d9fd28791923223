//! Every `cargo xtask bench …` command runs, at a tiny size, so none of them can rot. These
//! tests check that each bench ran to the end and printed its ratio against the baseline it
//! measured in the same run; they assert no timing (speed is for the benches themselves).

use std::path::Path;
use std::process::{Command, Output};

fn bench(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(dir)
        .arg("bench")
        .args(args)
        .env("FERRY_PROGRESS", "0")
        .env_remove("FERRY_CONFIG");
    let out: Output = cmd.output().expect("run xtask bench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "bench {args:?} exited {}:\n{text}",
        out.status
    );
    text
}

#[test]
fn bench_backup_compares_with_cp() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(dir.path(), &["backup", "--files", "300"]);
    assert!(out.contains("floor (cp -r)"), "{out}");
    assert!(out.contains("× `cp -r`"), "{out}");
    assert!(out.contains("ferry backup"), "{out}");
}

#[test]
fn bench_import_compares_with_cat() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(dir.path(), &["import", "--files", "300"]);
    assert!(out.contains("read floor (cat)"), "{out}");
    assert!(out.contains("× the read floor"), "{out}");
    assert!(out.contains("peak RSS"), "{out}");
}

#[test]
fn bench_validate_compares_with_count() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(dir.path(), &["validate", "--rows", "2000", "--runs", "1"]);
    assert!(out.contains("count"), "{out}");
    assert!(out.contains("peak RSS of this process"), "{out}");
}

#[test]
fn bench_agentdb_compares_postgres_with_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        dir.path(),
        &[
            "agentdb",
            "--agents",
            "10",
            "--seconds",
            "1",
            "--iterations",
            "5",
        ],
    );
    assert!(out.contains("pg/sqlite"), "{out}");
    assert!(out.contains("postgres / sqlite throughput"), "{out}");
    assert!(out.contains("peak RSS of this process"), "{out}");
}

#[test]
fn bench_transfer_compares_with_sqlite3_and_psql() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = bench(
        dir.path(),
        &[
            "transfer",
            "--scale",
            "1",
            "--skip-pgloader",
            "--dir",
            cache.to_str().unwrap(),
        ],
    );
    assert!(out.contains("floor: sqlite3 | psql"), "{out}");
    assert!(out.contains("ferry / floor:"), "{out}");
    assert!(out.contains("ferry / server floor:"), "{out}");
    assert!(out.contains("WAL MB"), "{out}");
    assert!(out.contains("ferry peak RSS"), "{out}");
    assert!(out.contains("one reader per worker"), "{out}");
}

#[test]
fn bench_sync_compares_with_a_bare_loop() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        dir.path(),
        &[
            "sync", "--secs", "2", "--rates", "100", "--burst", "500", "--agents", "4",
        ],
    );
    assert!(out.contains("sync lag under load"), "{out}");
    assert!(out.contains("floor: bare batched delete + insert"), "{out}");
    assert!(out.contains("peak RSS of this process"), "{out}");
}

#[test]
fn bench_signoff_runs_phases_one_to_five_and_prints_the_reads_against_both_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        dir.path(),
        &["signoff", "--files", "300", "--load-secs", "1"],
    );
    assert!(out.contains("phase 5"), "{out}");
    assert!(out.contains("pg / sqlite"), "{out}");
    assert!(out.contains("pg / files"), "{out}");
    assert!(out.contains("get_agent_status"), "{out}");
    assert!(out.contains("concurrency"), "{out}");
    assert!(out.contains("sign-off report: "), "{out}");
    assert!(out.contains("peak RSS MiB"), "{out}");
}

#[test]
fn bench_sync_files_compares_with_a_bare_import() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        dir.path(),
        &[
            "sync",
            "--files",
            "--secs",
            "2",
            "--file-rate",
            "50",
            "--file-burst",
            "100",
            "--agents",
            "2",
        ],
    );
    assert!(out.contains("sync lag of file changes under load"), "{out}");
    assert!(out.contains("floor: bare incremental import"), "{out}");
    assert!(out.contains("peak RSS"), "{out}");
}
