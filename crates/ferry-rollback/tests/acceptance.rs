//! Acceptance on a real agent store: a copy of the `agent-cellphone` sample is backed up,
//! verified, mutated, restored, and compares equal to the backup.

mod common;

use std::fs;

use common::{copy_tree, snapshot, write};
use ferry_rollback::{backup, compare, restore, verify, BackupSpec, RestoreTargets};

#[tokio::test]
async fn agent_cellphone_store_round_trips() {
    // Absent: fails under CI, and is counted by `cargo xtask ci` elsewhere.
    let Some(sample) = ferry_testkit::samples::require("stores/agent-cellphone") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("agent-cellphone");
    copy_tree(&sample, &store);
    let before = snapshot(&store);

    let b = backup(&BackupSpec::new(t.path().join("state/backups"), "phase1").store(&store))
        .await
        .unwrap();
    let totals = b.manifest.contents.totals;
    assert!(totals.files >= 300, "only {} files backed up", totals.files);
    assert!(b.manifest.test_restore.matched);
    assert_eq!(b.manifest.test_restore.files, totals.files);
    let report = verify(&b).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.files_checked, totals.files);

    // Mutate like an agent would: edit a status, drop a message, add new ones.
    let tree = b.manifest.contents.store.as_ref().unwrap();
    let mut jsons = tree
        .entries
        .iter()
        .filter(|e| e.kind_name() == "file" && e.path().ends_with(".json"));
    let edited = jsons.next().unwrap().path().to_owned();
    let deleted = jsons.next().unwrap().path().to_owned();
    write(
        &store.join(&edited),
        br#"{"status":"rewritten after the backup"}"#,
    );
    fs::remove_file(store.join(&deleted)).unwrap();
    write(
        &store.join("agent_workspaces/Agent-9/inbox/late.json"),
        b"{\"late\":true}",
    );
    assert!(!compare(tree, &store).unwrap().is_empty());

    let report = restore(
        &b,
        &RestoreTargets::default().store(&store),
        &t.path().join("state/displaced"),
    )
    .unwrap();
    assert!(compare(tree, &store).unwrap().is_empty());
    assert_eq!(snapshot(&store), before);
    let displaced: Vec<&str> = report.displaced.iter().map(|d| d.path.as_str()).collect();
    assert!(displaced.contains(&edited.as_str()), "{displaced:?}");
    assert!(
        displaced.iter().any(|p| p.ends_with("late.json")),
        "{displaced:?}"
    );
    println!(
        "agent-cellphone: {} files, {} dirs, {} bytes backed up, verified, restored; {} entries displaced",
        totals.files,
        totals.dirs,
        totals.bytes,
        report.displaced.len()
    );
}
