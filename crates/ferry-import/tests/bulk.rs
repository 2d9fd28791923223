//! The bulk load (the first import into empty tables, see `src/bulk.rs`): it writes exactly
//! what the ordinary import writes, leaves the schema as it found it, falls back to the
//! ordinary import when the database refuses a row, and a run killed half-way leaves the
//! database as it was.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_import::{gate, import, import_file, ImportOptions, Profile, ReasonKind};
use ferry_testkit::store_gen::{self, StoreSpec};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row, SqliteConnection};

use common::{db_digest, fk_violations, fresh_db, ledger_states, manifest};

/// Set in the child process of the crash test: the directory whose store it imports.
const CRASH_CHILD: &str = "FERRY_IMPORT_TEST_CRASH_CHILD";

fn options(state: &Path, spec: &StoreSpec) -> ImportOptions {
    let mut o = ImportOptions::new(state);
    o.max_file_bytes = spec.max_file_bytes();
    o.snapshot_threshold_bytes = (spec.large_session_bytes / 2) as u64;
    o
}

async fn schema_rows(conn: &mut SqliteConnection) -> Vec<(String, String, String, String)> {
    sqlx::query(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// Every ledger row without the times and run of the import that wrote it.
async fn ledger_without_times(conn: &mut SqliteConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT path || '|' || size || '|' || quote(sha256) || '|' || status || '|' || quote(kind) || '|' || quote(target_table) \
         || '|' || row_keys || '|' || row_count || '|' || records_parsed || '|' || quote(reason_kind) || '|' || quote(reason) \
         || '|' || quote(quarantine_path) || '|' || quote(notes) || '|' || settings_digest FROM ferry_source_files ORDER BY path",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn bulk_and_ordinary_imports_write_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::small();
    let store = store_gen::generate(&dir.path().join("store"), &spec).unwrap();

    // A fresh database: the first import is a bulk load.
    let bulk_dir = dir.path().join("bulk");
    fs::create_dir_all(&bulk_dir).unwrap();
    let (_, mut bulk) = fresh_db(&bulk_dir).await;
    let schema_before = schema_rows(&mut bulk).await;
    let bulk_report = import(
        &store.root,
        &mut bulk,
        &Profile::builtin(),
        &options(&bulk_dir.join("state"), &spec),
    )
    .await
    .unwrap();

    // A row already in a target table makes the same import an ordinary one. It is removed
    // afterwards; the digest compares values in row order, so the tables must then agree.
    let plain_dir = dir.path().join("plain");
    fs::create_dir_all(&plain_dir).unwrap();
    let (_, mut plain) = fresh_db(&plain_dir).await;
    sqlx::query("INSERT INTO documents (document_path, kind, format, doc_sha256, doc_size, source_text) VALUES ('elsewhere.txt', 'other', 'text', 'x', 1, 'x')")
        .execute(&mut plain)
        .await
        .unwrap();
    let plain_report = import(
        &store.root,
        &mut plain,
        &Profile::builtin(),
        &options(&plain_dir.join("state"), &spec),
    )
    .await
    .unwrap();
    sqlx::query("DELETE FROM documents WHERE document_path = 'elsewhere.txt'")
        .execute(&mut plain)
        .await
        .unwrap();

    let without_ledger = |d: BTreeMap<String, (u64, String)>| -> BTreeMap<String, (u64, String)> {
        d.into_iter()
            .filter(|(t, _)| t != "ferry_source_files")
            .collect()
    };
    assert_eq!(
        without_ledger(db_digest(&mut bulk).await),
        without_ledger(db_digest(&mut plain).await)
    );
    assert_eq!(
        ledger_without_times(&mut bulk).await,
        ledger_without_times(&mut plain).await
    );
    assert_eq!(bulk_report.totals, plain_report.totals);
    assert_eq!(bulk_report.quarantined, plain_report.quarantined);
    assert_eq!(bulk_report.ledger.written, plain_report.ledger.written);

    // The schema is the one the migrations made (the phase-1 gate compares it with a
    // reviewed snapshot), every CHECK holds, and the caller's connection checks them.
    assert_eq!(schema_rows(&mut bulk).await, schema_before);
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut bulk)
        .await
        .unwrap();
    assert_eq!(integrity, vec!["ok".to_owned()]);
    let ignored: i64 = sqlx::query_scalar("PRAGMA ignore_check_constraints")
        .fetch_one(&mut bulk)
        .await
        .unwrap();
    assert_eq!(ignored, 0);
    assert_eq!(fk_violations(&mut bulk).await, 0);
    assert!(gate::check_rows(&mut bulk).await.unwrap().passed());
}

#[tokio::test]
async fn a_row_the_database_refuses_in_a_bulk_load_quarantines_only_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let inbox = root.join("agent_workspaces/Agent-A/inbox");
    fs::create_dir_all(&inbox).unwrap();
    for i in 0..5 {
        fs::write(
            inbox.join(format!("m{i}.json")),
            format!("{{\"from\": \"Agent-B\", \"message\": \"hello {i}\"}}"),
        )
        .unwrap();
    }
    // A CHECK, which the bulk load verifies at its end, and a UNIQUE column, which the
    // database enforces as the rows go in: both make the load start over row by row.
    fs::create_dir_all(root.join("metrics")).unwrap();
    fs::write(root.join("metrics/a_ok.json"), br#"{"n": 3, "tag": "a"}"#).unwrap();
    fs::write(
        root.join("metrics/b_negative.json"),
        br#"{"n": -1, "tag": "b"}"#,
    )
    .unwrap();
    fs::write(
        root.join("metrics/c_same_tag.json"),
        br#"{"n": 4, "tag": "a"}"#,
    )
    .unwrap();
    let (_, mut conn) = fresh_db(dir.path()).await;
    sqlx::raw_sql("CREATE TABLE counters (counter_id TEXT PRIMARY KEY, n INTEGER CHECK (n > 0), tag TEXT UNIQUE, source_path TEXT NOT NULL, doc TEXT, doc_sha256 TEXT, doc_size INTEGER, doc_snapshot TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    let toml = ferry_import::BUILTIN_TOML.replacen(
        "[[rule]]",
        "[[rule]]\nkind = \"counters\"\nglob = \"metrics/*.json\"\nformat = \"json\"\ntable = \"counters\"\n[rule.columns]\ncounter_id = \"{stem}\"\nn = \"/n\"\ntag = \"/tag\"\n\n[[rule]]",
        1,
    );
    let profile = Profile::from_toml(&toml, "test profile").unwrap();
    let report = import(
        &root,
        &mut conn,
        &profile,
        &ImportOptions::new(dir.path().join("state")),
    )
    .await
    .unwrap();

    let reasons: BTreeMap<&str, ReasonKind> = report
        .quarantined
        .iter()
        .map(|q| (q.path.as_str(), q.reason.kind))
        .collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("metrics/b_negative.json", ReasonKind::ConstraintViolation),
            ("metrics/c_same_tag.json", ReasonKind::KeyConflict),
        ])
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let n: i64 = sqlx::query_scalar("SELECT n FROM counters")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 3);
    // Only the rows of the attempt that was committed are counted, and the run is recorded
    // once, finished.
    assert_eq!(report.totals.rows_written, 6);
    let runs: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT rows_written, finished_at FROM ferry_import_runs")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, 6);
    assert!(runs[0].1.is_some());
    let states = ledger_states(&mut conn).await;
    assert_eq!(states.len(), 8);
    assert!(gate::check_rows(&mut conn).await.unwrap().passed());
    assert_eq!(fk_violations(&mut conn).await, 0);
    let ignored: i64 = sqlx::query_scalar("PRAGMA ignore_check_constraints")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(ignored, 0);
}

#[tokio::test]
async fn an_import_killed_midway_leaves_the_database_as_it_was() {
    if let Ok(dir) = std::env::var(CRASH_CHILD) {
        // The child: import until the parent kills it.
        let dir = Path::new(&dir);
        let spec = StoreSpec::with_files(8_000);
        let _ = import_file(
            &dir.join("store"),
            &dir.join("ferry.sqlite3"),
            &Profile::builtin(),
            &options(&dir.join("state"), &spec),
        )
        .await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::with_files(8_000);
    let store = store_gen::generate(&dir.path().join("store"), &spec).unwrap();
    let (db, conn) = fresh_db(dir.path()).await;
    drop(conn);

    // First the bulk load into the fresh database, then an ordinary run after the messages
    // of forty agents changed.
    for round in 0..2 {
        let mut conn = connect(&db).await;
        let before = db_digest(&mut conn).await;
        drop(conn);
        let killed = kill_an_import_midway(dir.path(), round == 0);
        let mut conn = connect(&db).await;
        let after = db_digest(&mut conn).await;
        // The bulk load is one transaction; the ordinary run commits every 10,000 files or
        // 12 MB, more than this round changes. Either way the killed run is undone.
        if killed {
            assert_eq!(
                after, before,
                "round {round}: the killed run left rows behind"
            );
        }
        // Whatever the moment, the ledger agrees with the rows.
        assert!(gate::check_rows(&mut conn).await.unwrap().passed());
        assert_eq!(fk_violations(&mut conn).await, 0);

        // The next run completes, and accounts for every file.
        import(
            &store.root,
            &mut conn,
            &Profile::builtin(),
            &options(&dir.path().join("state"), &spec),
        )
        .await
        .unwrap();
        let acc = gate::accounting(&mut conn, &manifest(&store.root))
            .await
            .unwrap();
        assert!(acc.passed(), "{:?}", acc.unaccounted);
        assert!(gate::check_rows(&mut conn).await.unwrap().passed());
        assert_eq!(fk_violations(&mut conn).await, 0);

        for agent in 1..=40 {
            let inbox = store
                .root
                .join(format!("agent_workspaces/Agent-{agent}/inbox"));
            for e in fs::read_dir(&inbox).unwrap() {
                let e = e.unwrap();
                // The store holds a FIFO and links on purpose: only regular files change.
                if !e.file_type().unwrap().is_file() {
                    continue;
                }
                let path = e.path();
                let text = fs::read_to_string(&path).unwrap_or_default();
                if let Some(rest) = text.strip_prefix('{') {
                    fs::write(&path, format!("{{\"changed\": {round}, {rest}")).unwrap();
                }
            }
        }
    }
}

async fn connect(db: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(db)
        .foreign_keys(true)
        .connect()
        .await
        .unwrap()
}

/// Runs the import of `dir/store` in a child process and kills it once it is writing rows;
/// `false` when it finished first.
///
/// A first import copies quarantined files as it parses, at most a thousand files ahead of
/// the writer: a few dozen new copies mean rows are going in. A later run changes rows that
/// exist, so its rollback journal grows past the few pages of the run record.
fn kill_an_import_midway(dir: &Path, first: bool) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_import_killed_midway_leaves_the_database_as_it_was",
            "--nocapture",
        ])
        .env(CRASH_CHILD, dir)
        .spawn()
        .unwrap();
    let quarantine = dir.join("state/quarantine");
    let journal = dir.join("ferry.sqlite3-journal");
    let copies_before = count_files(&quarantine);
    let writing = || {
        if first {
            count_files(&quarantine) >= copies_before + 30
        } else {
            fs::metadata(&journal).is_ok_and(|m| m.len() >= 64 << 10)
        }
    };
    let started = Instant::now();
    while !writing() && started.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    running
}

fn count_files(dir: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        let Ok(read) = fs::read_dir(dir) else { return };
        for e in read.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), n);
            } else {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}
