//! Backup, mutate, restore: the tree comes back byte-identical and what was in the way is
//! kept aside and listed. Also symlinks that point out of the root, and special files.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{build_store, chmod, names, set_mtime, snapshot, write};
use ferry_rollback::{
    backup, compare, list_backups, restore, verify, Aspect, BackupSpec, DisplaceReason, Entry,
    RestoreTargets, RollbackError,
};

#[tokio::test]
async fn backup_mutate_restore_gives_the_same_tree_and_lists_what_was_displaced() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    build_store(&store);
    let before = snapshot(&store);
    let backups = t.path().join("state/backups");

    let b = backup(&BackupSpec::new(&backups, "phase1").store(&store))
        .await
        .unwrap();

    // The backup is sealed, test-restored, and alone in the backups root (no scratch left).
    assert!(b.manifest.test_restore.matched);
    assert_eq!(b.manifest.test_restore.files, 12);
    let totals = b.manifest.contents.totals;
    assert_eq!((totals.files, totals.symlinks), (12, 2));
    assert_eq!(names(&backups), vec![b.id().to_owned()]);
    assert!(b.id().starts_with("phase1-"));
    let listed = list_backups(&backups).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].complete);
    assert!(verify(&b).unwrap().is_ok());
    // Files in the tree named *.sqlite are plain bytes, not databases.
    assert_eq!(
        fs::read(b.dir.join("store/data/cache.sqlite")).unwrap(),
        fs::read(store.join("data/cache.sqlite")).unwrap()
    );
    // The source is untouched by the backup.
    assert_eq!(snapshot(&store), before);

    // Mutate: edit, delete, add, chmod, touch, replace a file with a symlink, a link with a
    // file, an empty directory with a file.
    write(&store.join("Agent-1/status.json"), br#"{"state":"busy"}"#);
    fs::remove_file(store.join("Agent-1/inbox/msg-001.json")).unwrap();
    write(
        &store.join("Agent-1/inbox/msg-003.json"),
        b"{\"late\":true}",
    );
    write(&store.join("new-dir/x.json"), b"x");
    write(&store.join("new-dir/y/z.json"), b"z");
    chmod(&store.join("Agent-1/run.sh"), 0o644);
    set_mtime(&store.join("agents.json"), 1_700_000_000, 5);
    fs::remove_file(store.join("Agent-2/secret.json")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", store.join("Agent-2/secret.json")).unwrap();
    fs::remove_file(store.join("links/to-status")).unwrap();
    write(&store.join("links/to-status"), b"now a file");
    fs::remove_dir(store.join("empty-dir")).unwrap();
    write(&store.join("empty-dir"), b"was a dir");

    let tree = b.manifest.contents.store.as_ref().unwrap();
    let diffs = compare(tree, &store).unwrap();
    assert_eq!(diffs.missing, vec!["Agent-1/inbox/msg-001.json"]);
    assert_eq!(
        diffs.extra,
        vec![
            "Agent-1/inbox/msg-003.json",
            "new-dir",
            "new-dir/x.json",
            "new-dir/y",
            "new-dir/y/z.json"
        ]
    );
    let changed: BTreeMap<&str, &[Aspect]> = diffs
        .changed
        .iter()
        .map(|c| (c.path.as_str(), c.aspects.as_slice()))
        .collect();
    assert_eq!(changed["Agent-1/run.sh"], &[Aspect::Mode]);
    assert_eq!(changed["agents.json"], &[Aspect::Mtime]);
    assert_eq!(changed["Agent-1/status.json"][0], Aspect::Size);
    assert_eq!(changed["Agent-2/secret.json"], &[Aspect::Kind]);
    assert_eq!(changed["links/to-status"], &[Aspect::Kind]);
    assert_eq!(changed["empty-dir"], &[Aspect::Kind]);

    let displaced_root = t.path().join("state/displaced");
    let report = restore(
        &b,
        &RestoreTargets::default().store(&store),
        &displaced_root,
    )
    .unwrap();

    // Byte-identical: content, mode, mtime (nanoseconds), link targets, directory times.
    assert_eq!(snapshot(&store), before);
    assert!(compare(tree, &store).unwrap().is_empty());
    assert!(report.verified);

    // Nothing was deleted: everything in the way is listed and kept.
    let displaced: BTreeMap<&str, (&str, DisplaceReason)> = report
        .displaced
        .iter()
        .map(|d| (d.path.as_str(), (d.kind.as_str(), d.reason)))
        .collect();
    let expected: BTreeMap<&str, (&str, DisplaceReason)> = [
        (
            "Agent-1/inbox/msg-003.json",
            ("file", DisplaceReason::Extra),
        ),
        ("new-dir", ("dir", DisplaceReason::Extra)),
        ("new-dir/x.json", ("file", DisplaceReason::Extra)),
        ("new-dir/y", ("dir", DisplaceReason::Extra)),
        ("new-dir/y/z.json", ("file", DisplaceReason::Extra)),
        ("Agent-1/status.json", ("file", DisplaceReason::Replaced)),
        ("Agent-2/secret.json", ("symlink", DisplaceReason::Replaced)),
        ("links/to-status", ("file", DisplaceReason::Replaced)),
        ("empty-dir", ("file", DisplaceReason::Replaced)),
    ]
    .into_iter()
    .collect();
    assert_eq!(displaced, expected);
    let base = report.displaced_dir.clone().unwrap();
    assert!(base.starts_with(&displaced_root));
    let moved = |rel: &str| {
        report
            .displaced
            .iter()
            .find(|d| d.path == rel)
            .unwrap()
            .moved_to
            .clone()
    };
    assert_eq!(
        moved("new-dir/y/z.json"),
        base.join("store/new-dir/y/z.json")
    );
    assert_eq!(
        fs::read(moved("Agent-1/status.json")).unwrap(),
        br#"{"state":"busy"}"#
    );
    assert_eq!(fs::read(moved("new-dir/y/z.json")).unwrap(), b"z");
    assert_eq!(
        fs::read_link(moved("Agent-2/secret.json")).unwrap(),
        Path::new("/etc/hostname")
    );
    // A mode or time change alone is fixed in place, not displaced.
    // Written: msg-001 (deleted), status.json (edited), secret.json (became a link).
    assert_eq!((report.files_written, report.files_unchanged), (3, 9));

    // Restoring again changes nothing and displaces nothing.
    let again = restore(
        &b,
        &RestoreTargets::default().store(&store),
        &displaced_root,
    )
    .unwrap();
    assert!(again.displaced.is_empty());
    assert_eq!(again.files_written, 0);
    assert_eq!(snapshot(&store), before);
}

#[tokio::test]
async fn restore_into_a_missing_directory_recreates_the_tree() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    build_store(&store);
    let before = snapshot(&store);
    let b = backup(&BackupSpec::new(t.path().join("backups"), "phase1").store(&store))
        .await
        .unwrap();

    let elsewhere = t.path().join("elsewhere/store");
    let report = restore(
        &b,
        &RestoreTargets::default().store(&elsewhere),
        &t.path().join("displaced"),
    )
    .unwrap();
    assert_eq!(snapshot(&elsewhere), before);
    assert!(report.displaced.is_empty());
    assert!(report.displaced_dir.is_none());
    assert!(!t.path().join("displaced").exists());

    // The backup holds no SQLite file, so asking for one is refused before anything moves.
    let err = restore(
        &b,
        &RestoreTargets::default().sqlite(t.path().join("app.sqlite")),
        &t.path().join("displaced"),
    )
    .unwrap_err();
    assert!(matches!(err, RollbackError::NotInBackup { .. }), "{err}");
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_recorded_never_followed_nor_written_through() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    write(&outside.join("secret.txt"), b"TOP SECRET OUTSIDE THE STORE");
    let store = t.path().join("store");
    write(&store.join("sub/a.json"), b"{\"a\":1}");
    std::os::unix::fs::symlink(outside.join("secret.txt"), store.join("escape")).unwrap();
    std::os::unix::fs::symlink("../outside", store.join("escape-dir")).unwrap();
    let before = snapshot(&store);

    let b = backup(&BackupSpec::new(t.path().join("backups"), "phase1").store(&store))
        .await
        .unwrap();
    let tree = b.manifest.contents.store.as_ref().unwrap();
    let links: Vec<(&str, &str, bool)> = tree
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Symlink {
                path,
                target,
                outside_root,
            } => Some((path.as_str(), target.as_str(), *outside_root)),
            _ => None,
        })
        .collect();
    let secret_target = outside.join("secret.txt");
    assert_eq!(
        links,
        vec![
            ("escape", secret_target.to_str().unwrap(), true),
            ("escape-dir", "../outside", true)
        ]
    );
    // Nothing of what the links point to was copied.
    let copied = snapshot(&b.dir);
    assert!(
        copied.keys().all(|k| !k.contains("escape")),
        "{:?}",
        copied.keys()
    );
    assert!(copied.values().all(
        |n| !matches!(n, common::Node::File { bytes, .. } if bytes.starts_with(b"TOP SECRET"))
    ));

    // `sub` replaced by a link to a directory outside: restore must not write `a.json`
    // through it, but move the link aside and recreate a real directory.
    let trap = t.path().join("trap");
    fs::create_dir(&trap).unwrap();
    fs::remove_dir_all(store.join("sub")).unwrap();
    std::os::unix::fs::symlink(&trap, store.join("sub")).unwrap();
    let report = restore(
        &b,
        &RestoreTargets::default().store(&store),
        &t.path().join("displaced"),
    )
    .unwrap();
    assert!(
        names(&trap).is_empty(),
        "restore wrote through a symlink: {:?}",
        names(&trap)
    );
    assert_eq!(snapshot(&store), before);
    assert_eq!(report.displaced.len(), 1);
    assert_eq!(report.displaced[0].path, "sub");
    assert_eq!(report.displaced[0].kind, "symlink");
    assert_eq!(
        fs::read(outside.join("secret.txt")).unwrap(),
        b"TOP SECRET OUTSIDE THE STORE"
    );
}

#[tokio::test]
async fn a_fifo_in_the_store_is_refused_by_path() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    write(&store.join("a.json"), b"{}");
    let fifo = store.join("pipes/events.fifo");
    fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let backups = t.path().join("backups");

    let err = backup(&BackupSpec::new(&backups, "phase1").store(&store))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RollbackError::SpecialFile { kind: "FIFO", .. }),
        "{err}"
    );
    assert!(err.is_bad_input());
    assert_eq!(
        err.to_string(),
        format!(
            "{} is a FIFO, which ferry cannot back up (only regular files, directories and symlinks)",
            fifo.display()
        )
    );
    assert!(
        !backups.exists(),
        "a refused backup wrote {:?}",
        names(&backups)
    );
}

#[tokio::test]
async fn sockets_in_the_store_are_refused_and_counted() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    write(&store.join("a.json"), b"{}");
    let _one = std::os::unix::net::UnixListener::bind(store.join("agent.sock")).unwrap();
    let _two = std::os::unix::net::UnixListener::bind(store.join("other.sock")).unwrap();
    let backups = t.path().join("backups");

    let err = backup(&BackupSpec::new(&backups, "phase1").store(&store))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RollbackError::SpecialFile {
                kind: "socket",
                more: 1,
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&store.join("agent.sock").display().to_string()),
        "{message}"
    );
    assert!(
        message.ends_with("; 1 more special file is in the store"),
        "{message}"
    );
    assert!(!backups.exists());
}

#[tokio::test]
async fn a_displaced_folder_inside_the_target_is_refused_before_anything_moves() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    build_store(&store);
    let b = backup(&BackupSpec::new(t.path().join("backups"), "phase1").store(&store))
        .await
        .unwrap();
    write(&store.join("late.json"), b"{}");
    let before = snapshot(&store);

    let err = restore(
        &b,
        &RestoreTargets::default().store(&store),
        &store.join(".displaced"),
    )
    .unwrap_err();
    assert!(
        matches!(err, RollbackError::DisplacedInsideTarget { .. }),
        "{err}"
    );
    assert_eq!(snapshot(&store), before);
}
