//! Bad input: each case is one sentence naming the path, and leaves the store and any
//! earlier backup as they were. Read-only and full disks are real tmpfs mounts.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{chmod, is_root, names, noise, snapshot, write, Tmpfs};
use ferry_rollback::{backup, list_backups, verify, Backup, BackupSpec, RollbackError};

fn spec(backups: &Path, store: &Path) -> BackupSpec {
    BackupSpec::new(backups, "phase1").store(store)
}

#[tokio::test]
async fn a_missing_store_is_refused_before_anything_is_written() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("no-such-store");
    let backups = t.path().join("state/backups");
    let err = backup(&spec(&backups, &store)).await.unwrap_err();
    assert!(matches!(err, RollbackError::StoreMissing { .. }), "{err}");
    assert!(err.is_bad_input());
    assert_eq!(
        err.to_string(),
        format!("store directory {} does not exist", store.display())
    );
    assert!(!t.path().join("state").exists());
}

#[tokio::test]
async fn a_store_that_is_a_file_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store.json");
    fs::write(&store, b"{}").unwrap();
    let err = backup(&spec(&t.path().join("backups"), &store))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RollbackError::StoreNotDirectory { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("store path {} is not a directory", store.display())
    );
    assert_eq!(fs::read(&store).unwrap(), b"{}");
}

#[tokio::test]
async fn an_empty_store_is_its_own_error_unless_allowed() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    // Directories alone hold nothing to back up.
    fs::create_dir_all(store.join("Agent-1/inbox")).unwrap();
    let backups = t.path().join("backups");
    let err = backup(&spec(&backups, &store)).await.unwrap_err();
    assert!(matches!(err, RollbackError::StoreEmpty { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "store directory {} contains no files, so there is nothing to back up",
            store.display()
        )
    );
    assert!(!backups.exists());

    let b = backup(&spec(&backups, &store).allow_empty_store(true))
        .await
        .unwrap();
    assert_eq!(b.manifest.contents.totals.files, 0);
    assert_eq!(b.manifest.contents.totals.dirs, 2);
    assert!(verify(&b).unwrap().is_ok());
}

/// Set in the child process that runs the unreadable-store check without root's privileges.
const CHILD_DIR: &str = "FERRY_ROLLBACK_TEST_UNREADABLE_DIR";
const CHILD_DONE: &str = "unreadable-store check ran as an unprivileged user";

#[tokio::test]
async fn an_unreadable_store_is_refused() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        // The child: permission bits apply here.
        let t = PathBuf::from(dir);
        let store = t.join("store");
        let err = backup(&spec(&t.join("backups"), &store)).await.unwrap_err();
        assert!(
            matches!(err, RollbackError::StoreUnreadable { .. }),
            "{err}"
        );
        assert!(err.is_bad_input());
        assert_eq!(
            err.to_string(),
            format!(
                "store directory {} cannot be read: Permission denied (os error 13)",
                store.display()
            )
        );
        println!("{CHILD_DONE}");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    write(&store.join("a.json"), b"{}");
    let backups = t.path().join("backups");
    if is_root() {
        // Root reads anything, so run the same check in a child process as `nobody`, for
        // whom the root-owned 0700 store is unreadable.
        chmod(t.path(), 0o755);
        chmod(&store, 0o700);
        fs::create_dir(&backups).unwrap();
        chmod(&backups, 0o777);
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "an_unreadable_store_is_refused",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, t.path())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(CHILD_DONE),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        chmod(&store, 0o000);
        let err = backup(&spec(&backups, &store)).await.unwrap_err();
        chmod(&store, 0o755);
        assert!(
            matches!(err, RollbackError::StoreUnreadable { .. }),
            "{err}"
        );
    }
    assert!(names(&backups).is_empty());
    assert_eq!(fs::read(store.join("a.json")).unwrap(), b"{}");
}

#[tokio::test]
async fn a_read_only_backups_root_is_refused_and_the_store_is_untouched() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    write(&store.join("a.json"), b"{}");
    let before = snapshot(&store);
    let ro = t.path().join("ro");
    // A read-only mount stops root too; without root, permission bits do the same.
    let _mount = if is_root() {
        Some(Tmpfs::mount(&ro, "ro,size=64k").unwrap())
    } else {
        fs::create_dir(&ro).unwrap();
        chmod(&ro, 0o555);
        None
    };
    let backups = ro.join("backups");
    let err = backup(&spec(&backups, &store)).await.unwrap_err();
    assert!(
        matches!(err, RollbackError::BackupsRootNotWritable { .. }),
        "{err}"
    );
    assert!(err.is_bad_input());
    assert!(
        err.to_string().starts_with(&format!(
            "backups root {} is not writable: ",
            backups.display()
        )),
        "{err}"
    );
    assert_eq!(snapshot(&store), before);
}

#[tokio::test]
async fn a_full_disk_removes_the_partial_backup_and_keeps_the_earlier_one() {
    let t = tempfile::tempdir().unwrap();
    let small = t.path().join("small");
    let _mount = match Tmpfs::mount(&small, "size=64k") {
        Ok(m) => m,
        Err(why) => {
            // Under CI the check must run: a skipped full-disk test is not a passed one.
            assert!(
                !ferry_testkit::samples::under_ci(),
                "the full-disk check cannot run under CI: cannot mount a 64 KiB tmpfs ({why})"
            );
            println!("full-disk check not run: cannot mount a 64 KiB tmpfs ({why})");
            return;
        }
    };
    let store = t.path().join("store");
    write(&store.join("a.json"), b"{\"a\":1}");
    write(&store.join("b/c.json"), b"{\"c\":2}");
    let backups = small.join("backups");
    let first = backup(&spec(&backups, &store)).await.unwrap();

    write(&store.join("big.bin"), &noise(200 * 1024, 5));
    let before = snapshot(&store);
    let err = backup(&spec(&backups, &store)).await.unwrap_err();
    let RollbackError::DiskFull { path, .. } = &err else {
        panic!("expected DiskFull, got {err}");
    };
    assert!(path.starts_with(&backups), "{}", path.display());
    assert!(err.is_bad_input());
    assert!(
        err.to_string()
            .starts_with("no space left on the device while writing "),
        "{err}"
    );

    // The store, and the earlier backup, are as they were; nothing else is left behind.
    assert_eq!(snapshot(&store), before);
    assert_eq!(names(&backups), vec![first.id().to_owned()]);
    assert!(
        names(&small).iter().all(|n| n == "backups"),
        "{:?}",
        names(&small)
    );
    let reopened = Backup::open(&first.dir).unwrap();
    assert!(verify(&reopened).unwrap().is_ok());
    assert!(list_backups(&backups).unwrap().iter().all(|l| l.complete));
}

#[tokio::test]
async fn a_full_disk_during_the_sqlite_copy_is_reported_and_cleaned_up() {
    let t = tempfile::tempdir().unwrap();
    let small = t.path().join("small");
    let _mount = match Tmpfs::mount(&small, "size=64k") {
        Ok(m) => m,
        Err(why) => {
            // Under CI the check must run: a skipped full-disk test is not a passed one.
            assert!(
                !ferry_testkit::samples::under_ci(),
                "the full-disk check cannot run under CI: cannot mount a 64 KiB tmpfs ({why})"
            );
            println!("full-disk check not run: cannot mount a 64 KiB tmpfs ({why})");
            return;
        }
    };
    let db = t.path().join("app.sqlite");
    let mut c = sqlx::ConnectOptions::connect(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (x BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO t SELECT randomblob(1000) FROM n;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::Connection::close(c).await.unwrap();
    let backups = small.join("backups");

    let err = backup(&BackupSpec::new(&backups, "phase1").sqlite(&db))
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::DiskFull { .. }), "{err}");
    assert!(names(&backups).is_empty(), "{:?}", names(&backups));
}

#[tokio::test]
async fn a_backups_root_inside_the_store_is_refused_without_creating_it() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    write(&store.join("a.json"), b"{}");
    let before = snapshot(&store);
    let err = backup(&spec(&store.join("state/backups"), &store))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RollbackError::BackupsInsideStore { .. }),
        "{err}"
    );
    assert_eq!(snapshot(&store), before);
}

#[tokio::test]
async fn labels_and_empty_specs_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let err = backup(&BackupSpec::new(t.path(), "phase 1/x").store(t.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::InvalidLabel { .. }), "{err}");
    let err = backup(&BackupSpec::new(t.path(), "phase1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::NothingToBackUp), "{err}");
}
