//! The compare checks files on several workers: every difference is still reported, in
//! manifest order, and nothing under a missing or replaced directory is looked at.

mod common;

use std::fs;

use common::{chmod, write};
use ferry_rollback::{backup, compare, Aspect, BackupSpec, Changed};

#[tokio::test]
async fn parallel_compare_reports_every_difference_in_manifest_order() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    // Enough files in several directories that every worker gets some.
    for d in ["a", "b", "c", "gone", "now-file"] {
        for i in 0..40 {
            write(
                &store.join(format!("{d}/f-{i:02}.json")),
                format!("{{\"dir\":\"{d}\",\"n\":{i}}}").as_bytes(),
            );
        }
    }
    write(&store.join("gone/deeper/x.json"), b"x");
    let b = backup(&BackupSpec::new(t.path().join("backups"), "t").store(&store))
        .await
        .unwrap();
    let tree = b.manifest.contents.store.as_ref().unwrap();
    assert!(compare(tree, &store).unwrap().is_empty());

    // Same size, different content, in files spread over the tree; modes changed on others.
    for (d, i) in [("a", 3), ("b", 17), ("c", 39), ("a", 25)] {
        let p = store.join(format!("{d}/f-{i:02}.json"));
        let mut bytes = fs::read(&p).unwrap();
        bytes[1] ^= 0x20;
        fs::write(&p, bytes).unwrap();
    }
    for (d, i) in [("b", 2), ("c", 11)] {
        chmod(&store.join(format!("{d}/f-{i:02}.json")), 0o600);
    }
    // A missing directory: everything under it is missing. A directory replaced by a file:
    // a kind change, and its children missing without being looked at.
    fs::remove_dir_all(store.join("gone")).unwrap();
    fs::remove_dir_all(store.join("now-file")).unwrap();
    write(&store.join("now-file"), b"not a dir");

    let expected_missing: Vec<String> = tree
        .entries
        .iter()
        .map(|e| e.path())
        .filter(|p| p.starts_with("gone") || p.starts_with("now-file/"))
        .map(str::to_owned)
        .collect();
    // gone, its 40 files, gone/deeper and its file; the 40 files of now-file.
    assert_eq!(expected_missing.len(), 1 + 40 + 2 + 40);
    let manifest_pos = |p: &str| tree.entries.iter().position(|e| e.path() == p).unwrap();
    let mut expected_changed: Vec<Changed> = [
        ("a/f-03.json", vec![Aspect::Content, Aspect::Mtime]),
        ("a/f-25.json", vec![Aspect::Content, Aspect::Mtime]),
        ("b/f-02.json", vec![Aspect::Mode]),
        ("b/f-17.json", vec![Aspect::Content, Aspect::Mtime]),
        ("c/f-11.json", vec![Aspect::Mode]),
        ("c/f-39.json", vec![Aspect::Content, Aspect::Mtime]),
        ("now-file", vec![Aspect::Kind]),
    ]
    .into_iter()
    .map(|(p, aspects)| Changed {
        path: p.to_owned(),
        aspects,
    })
    .collect();
    expected_changed.sort_by_key(|c| manifest_pos(&c.path));

    // The report is the same, in the same order, however the workers interleave.
    for _ in 0..5 {
        let diffs = compare(tree, &store).unwrap();
        // Rewriting a file changes its mtime, and the root's and directories' mtimes moved
        // too: only look at the paths this test changed.
        let changed: Vec<Changed> = diffs
            .changed
            .iter()
            .filter(|c| expected_changed.iter().any(|e| e.path == c.path))
            .cloned()
            .collect();
        assert_eq!(changed, expected_changed);
        let other: Vec<&Changed> = diffs
            .changed
            .iter()
            .filter(|c| !expected_changed.iter().any(|e| e.path == c.path))
            .collect();
        assert!(
            other
                .iter()
                .all(|c| c.aspects == [Aspect::Mtime] && !c.path.ends_with(".json")),
            "{other:?}"
        );
        assert_eq!(diffs.missing, expected_missing);
        assert_eq!(diffs.extra, Vec::<String>::new());
    }
}
