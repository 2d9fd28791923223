//! A damaged backup is found by path, and restore refuses it before touching the target.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use common::{build_store, names, snapshot, write};
use ferry_rollback::{backup, restore, verify, Backup, BackupSpec, RestoreTargets, RollbackError};

async fn fresh_backup(root: &Path) -> (std::path::PathBuf, Backup) {
    let store = root.join("store");
    build_store(&store);
    let b = backup(&BackupSpec::new(root.join("backups"), "phase1").store(&store))
        .await
        .unwrap();
    assert!(verify(&b).unwrap().is_ok());
    (store, b)
}

#[tokio::test]
async fn a_flipped_byte_is_reported_by_path() {
    let t = tempfile::tempdir().unwrap();
    let (_, b) = fresh_backup(t.path()).await;
    let file = b.dir.join("store/big.bin");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    // Deep inside the file, past the first copy buffer, same size afterwards.
    f.seek(SeekFrom::Start(2 * 1024 * 1024 + 3)).unwrap();
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut f, &mut byte).unwrap();
    f.seek(SeekFrom::Start(2 * 1024 * 1024 + 3)).unwrap();
    f.write_all(&[byte[0] ^ 0x01]).unwrap();
    drop(f);

    let report = verify(&b).unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.changed, vec!["store/big.bin"]);
    assert!(report.missing.is_empty() && report.extra.is_empty() && report.manifest_ok);
    assert_eq!(report.to_string(), "1 changed: store/big.bin");
}

#[tokio::test]
async fn truncated_deleted_and_extra_files_are_reported_by_path() {
    let t = tempfile::tempdir().unwrap();
    let (_, b) = fresh_backup(t.path()).await;
    let truncated = b.dir.join("store/Agent-1/status.json");
    OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(3)
        .unwrap();
    fs::remove_file(b.dir.join("store/Agent-1/inbox/msg-002.json")).unwrap();
    fs::remove_dir(b.dir.join("store/empty-dir")).unwrap();
    write(&b.dir.join("store/Agent-1/stowaway.json"), b"{}");

    let report = verify(&b).unwrap();
    assert_eq!(report.changed, vec!["store/Agent-1/status.json"]);
    assert_eq!(
        report.missing,
        vec!["store/Agent-1/inbox/msg-002.json", "store/empty-dir"]
    );
    assert_eq!(report.extra, vec!["store/Agent-1/stowaway.json"]);
    assert!(!report.is_ok());
}

#[tokio::test]
async fn an_edited_manifest_no_longer_opens_and_fails_verification() {
    let t = tempfile::tempdir().unwrap();
    let (_, b) = fresh_backup(t.path()).await;
    let path = b.dir.join("manifest.json");
    let text = fs::read_to_string(&path).unwrap();
    // Claim a different size for the empty file: valid JSON, wrong seal.
    let edited = text.replacen("\"size\": 0,", "\"size\": 1,", 1);
    assert_ne!(edited, text);
    fs::write(&path, edited).unwrap();

    let err = Backup::open(&b.dir).unwrap_err();
    assert!(matches!(err, RollbackError::BadManifest { .. }), "{err}");
    assert!(
        err.to_string().contains("it was edited or damaged"),
        "{err}"
    );
    let report = verify(&b).unwrap();
    assert!(!report.manifest_ok);
    assert!(!report.is_ok());

    fs::remove_file(&path).unwrap();
    let err = Backup::open(&b.dir).unwrap_err();
    assert!(matches!(err, RollbackError::Incomplete { .. }), "{err}");
    assert_eq!(
        verify(&b).unwrap().manifest_problem.as_deref(),
        Some("manifest.json is missing")
    );
}

#[tokio::test]
async fn restore_refuses_a_damaged_backup_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (store, b) = fresh_backup(t.path()).await;
    write(
        &store.join("Agent-1/status.json"),
        b"edited after the backup",
    );
    write(&store.join("late.json"), b"{}");
    let before = snapshot(&store);
    fs::write(b.dir.join("store/agents.json"), b"tampered").unwrap();

    let displaced = t.path().join("displaced");
    let err = restore(&b, &RestoreTargets::default().store(&store), &displaced).unwrap_err();
    let RollbackError::BackupCorrupt { report, .. } = &err else {
        panic!("expected BackupCorrupt, got {err}");
    };
    assert_eq!(report.changed, vec!["store/agents.json"]);
    assert!(err.to_string().contains("store/agents.json"), "{err}");
    assert_eq!(snapshot(&store), before);
    assert!(names(&displaced).is_empty());
}
