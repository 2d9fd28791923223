//! SQLite backups: consistent while another connection writes, checked, restored atomically
//! with stale `-wal`/`-shm`/`-journal` files moved aside; bad SQLite input refused.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{names, noise, write};
use ferry_rollback::{
    backup, restore, verify, BackupSpec, DisplaceReason, RestoreTargets, RollbackError,
};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

const ACCOUNTS: i64 = 100;
const TOTAL: i64 = 1_000_000;

async fn connect(path: &Path, mode: SqliteJournalMode) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(mode)
        .busy_timeout(Duration::from_secs(60))
        .connect()
        .await
        .unwrap()
}

/// A bank: balances always sum to TOTAL, and `ledger` has exactly `counter.n` rows. A copy
/// taken mid-transaction would break one of them.
async fn create_bank(path: &Path, mode: SqliteJournalMode) {
    let mut c = connect(path, mode).await;
    sqlx::raw_sql(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE ledger (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, memo TEXT);
         CREATE INDEX ledger_src ON ledger(src);
         CREATE TABLE counter (n INTEGER NOT NULL);
         INSERT INTO counter VALUES (0);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let mut tx = c.begin().await.unwrap();
    for id in 0..ACCOUNTS {
        sqlx::query("INSERT INTO accounts VALUES (?, ?)")
            .bind(id)
            .bind(TOTAL / ACCOUNTS)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    // Enough pages that the copy takes a while.
    for i in 0..5000i64 {
        sqlx::query("INSERT INTO ledger (src, dst, amount, memo) VALUES (0, 0, 0, ?)")
            .bind(format!("opening {i} {}", "x".repeat(200)))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE counter SET n = 5000")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.close().await.unwrap();
}

async fn check_bank(path: &Path) -> (i64, i64) {
    // Read-write though only reading: a read-only connection to a WAL database leaves `-wal`
    // and `-shm` files behind, which verify and restore would rightly see.
    let mut c = SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let sum: i64 = sqlx::query_scalar("SELECT SUM(balance) FROM accounts")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT n FROM counter")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(sum, TOTAL, "balances do not add up in {}", path.display());
    assert_eq!(rows, n, "ledger and counter disagree in {}", path.display());
    c.close().await.unwrap();
    (rows, n)
}

async fn copy_while_writing(mode: SqliteJournalMode, wal: bool) {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("app.sqlite");
    create_bank(&db, mode).await;

    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, commits) = (db.clone(), stop.clone(), commits.clone());
        tokio::spawn(async move {
            let mut c = connect(&db, mode).await;
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (src, dst, amount) = (i % ACCOUNTS, (i * 7 + 3) % ACCOUNTS, i % 97 + 1);
                let mut tx = c.begin().await.unwrap();
                sqlx::query("UPDATE accounts SET balance = balance - ? WHERE id = ?")
                    .bind(amount)
                    .bind(src)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(
                    "INSERT INTO ledger (src, dst, amount, memo) VALUES (?, ?, ?, 'transfer')",
                )
                .bind(src)
                .bind(dst)
                .bind(amount)
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query("UPDATE accounts SET balance = balance + ? WHERE id = ?")
                    .bind(amount)
                    .bind(dst)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("UPDATE counter SET n = n + 1")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                commits.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            c.close().await.unwrap();
        })
    };
    // The writer is running before the backup starts.
    while commits.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let b = backup(&BackupSpec::new(t.path().join("backups"), "phase1").sqlite(&db))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let sm = b.manifest.contents.sqlite.as_ref().unwrap();
    assert_eq!(sm.integrity_check, "ok");
    assert_eq!(sm.wal, wal);
    assert_eq!(sm.file, "sqlite/app.sqlite");
    let copy = b.dir.join(&sm.file);
    let bytes = fs::read(&copy).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sm.sha256);
    // Header bytes 18/19 say WAL (2) or rollback journal (1), like the source.
    assert_eq!(bytes[18], if wal { 2 } else { 1 });
    // Nothing but the copy: no -wal or -shm left next to it, and none next to the source
    // that the backup created.
    assert_eq!(names(&b.dir.join("sqlite")), vec!["app.sqlite"]);
    assert!(
        names(t.path())
            .iter()
            .all(|n| !n.starts_with("app.sqlite-")),
        "{:?}",
        names(t.path())
    );
    let (rows, _) = check_bank(&copy).await;
    assert!(rows > 5000, "the copy holds none of the concurrent writes");
    assert!(verify(&b).unwrap().is_ok());
    let evidence = b.evidence();
    assert_eq!(evidence.sqlite_integrity_check.as_deref(), Some("ok"));
    assert_eq!(evidence.sqlite_sha256.as_deref(), Some(sm.sha256.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_copy_taken_during_writes_is_consistent() {
    copy_while_writing(SqliteJournalMode::Wal, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_journal_copy_taken_during_writes_is_consistent() {
    copy_while_writing(SqliteJournalMode::Delete, false).await;
}

#[tokio::test]
async fn restore_replaces_the_database_and_moves_stale_sidecars_aside() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("data/app.sqlite");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    create_bank(&db, SqliteJournalMode::Wal).await;
    let b = backup(&BackupSpec::new(t.path().join("backups"), "phase1").sqlite(&db))
        .await
        .unwrap();
    let sm = b.manifest.contents.sqlite.clone().unwrap();

    // After the backup: more rows, and leftovers that SQLite would apply on open.
    let mut c = connect(&db, SqliteJournalMode::Wal).await;
    sqlx::query("INSERT INTO ledger (memo) VALUES ('after')")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("UPDATE counter SET n = n + 1")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let changed = fs::read(&db).unwrap();
    write(&t.path().join("data/app.sqlite-wal"), &noise(4096, 1));
    write(&t.path().join("data/app.sqlite-shm"), &noise(4096, 2));
    write(&t.path().join("data/app.sqlite-journal"), &noise(512, 3));

    let report = restore(
        &b,
        &RestoreTargets::default().sqlite(&db),
        &t.path().join("displaced"),
    )
    .unwrap();
    assert!(report.sqlite_replaced);
    assert_eq!(
        hex::encode(Sha256::digest(fs::read(&db).unwrap())),
        sm.sha256
    );
    assert_eq!(names(&t.path().join("data")), vec!["app.sqlite"]);
    let (rows, _) = check_bank(&db).await;
    assert_eq!(rows, 5000);

    let got: Vec<(&str, DisplaceReason)> = report
        .displaced
        .iter()
        .map(|d| (d.path.as_str(), d.reason))
        .collect();
    assert_eq!(
        got,
        vec![
            ("app.sqlite", DisplaceReason::Replaced),
            ("app.sqlite-wal", DisplaceReason::StaleSidecar),
            ("app.sqlite-shm", DisplaceReason::StaleSidecar),
            ("app.sqlite-journal", DisplaceReason::StaleSidecar),
        ]
    );
    // The replaced database is kept, byte for byte, with its sidecars beside it.
    let base = report.displaced_dir.unwrap();
    assert_eq!(fs::read(base.join("sqlite/app.sqlite")).unwrap(), changed);
    assert_eq!(
        fs::read(base.join("sqlite/app.sqlite-wal")).unwrap(),
        noise(4096, 1)
    );

    // Already equal: nothing to replace, nothing displaced.
    let again = restore(
        &b,
        &RestoreTargets::default().sqlite(&db),
        &t.path().join("displaced"),
    )
    .unwrap();
    assert!(!again.sqlite_replaced);
    assert!(again.displaced.is_empty());
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_by_path() {
    let t = tempfile::tempdir().unwrap();
    let backups = t.path().join("backups");
    let text = t.path().join("notes.sqlite");
    fs::write(&text, "this is a text file, long enough to have a header of a hundred bytes or more, but not SQLite's header").unwrap();
    let err = backup(&BackupSpec::new(&backups, "phase1").sqlite(&text))
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::NotSqlite { .. }), "{err}");
    assert!(err.is_bad_input());
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a SQLite database: it does not start with the SQLite header \"SQLite format 3\"",
            text.display()
        )
    );

    let empty = t.path().join("empty.sqlite");
    fs::write(&empty, b"").unwrap();
    let err = backup(&BackupSpec::new(&backups, "phase1").sqlite(&empty))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a SQLite database: the file is empty",
            empty.display()
        )
    );

    let missing = t.path().join("missing.sqlite");
    let err = backup(&BackupSpec::new(&backups, "phase1").sqlite(&missing))
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::SqliteMissing { .. }), "{err}");
    assert!(!backups.exists());
}

#[tokio::test]
async fn a_corrupt_database_is_refused_and_leaves_no_partial_backup() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("app.sqlite");
    create_bank(&db, SqliteJournalMode::Delete).await;
    // Overwrite three pages in the middle of the table and index data, keeping the header.
    let mut bytes = fs::read(&db).unwrap();
    let page = 4096;
    let start = bytes.len() / 2 / page * page;
    bytes[start..start + 3 * page].copy_from_slice(&noise(3 * page, 99));
    fs::write(&db, &bytes).unwrap();
    let backups = t.path().join("backups");
    fs::create_dir(&backups).unwrap();

    let err = backup(&BackupSpec::new(&backups, "phase1").sqlite(&db))
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::SqliteCorrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("SQLite database {} is corrupt: ", db.display())),
        "{err}"
    );
    assert!(
        names(&backups).is_empty(),
        "partial backup left: {:?}",
        names(&backups)
    );
    assert_eq!(fs::read(&db).unwrap(), bytes, "the source was modified");
}
