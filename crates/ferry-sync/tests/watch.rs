//! The file-store watcher on a real directory: events name new, changed and removed files;
//! a rescan finds what no event reported (a change made while nobody watched).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_sync::{StoreChanges, StoreWatcher};

fn poll_until(w: &mut StoreWatcher, want: &[&str]) -> BTreeSet<PathBuf> {
    let want: BTreeSet<PathBuf> = want.iter().map(PathBuf::from).collect();
    let mut seen = BTreeSet::new();
    let started = Instant::now();
    while !want.is_subset(&seen) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "saw only {seen:?}, want {want:?}"
        );
        let c: StoreChanges = w.poll().unwrap();
        seen.extend(c.paths);
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

#[test]
fn events_and_rescans_report_every_changed_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("agent_workspaces/A/inbox")).unwrap();
    std::fs::write(root.join("agents.json"), "{}").unwrap();
    std::fs::write(root.join("agent_workspaces/A/status.json"), "{}").unwrap();
    let mut w = StoreWatcher::new(root, Duration::from_secs(3600)).unwrap();
    assert_eq!(w.files(), 2);
    assert!(w.poll().unwrap().is_empty());

    std::fs::write(root.join("agent_workspaces/A/inbox/m1.json"), "{\"a\":1}").unwrap();
    std::fs::write(root.join("agents.json"), "{\"changed\":true}").unwrap();
    std::fs::remove_file(root.join("agent_workspaces/A/status.json")).unwrap();
    poll_until(
        &mut w,
        &[
            "agent_workspaces/A/inbox/m1.json",
            "agents.json",
            "agent_workspaces/A/status.json",
        ],
    );

    // A watcher that was not running misses events; the rescan finds the difference.
    drop(w);
    let mut w = StoreWatcher::new(root, Duration::from_secs(3600)).unwrap();
    std::fs::write(root.join("late.json"), "[1]").unwrap();
    std::fs::remove_file(root.join("agents.json")).unwrap();
    let found = w.rescan().unwrap();
    assert!(found.rescanned);
    let expected: BTreeSet<PathBuf> = ["late.json", "agents.json"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(found.paths, expected);
    // A second rescan with nothing new reports nothing.
    assert!(w.rescan().unwrap().is_empty());
}

#[test]
fn a_scheduled_rescan_runs_when_due() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.json"), "{}").unwrap();
    let mut w = StoreWatcher::new(dir.path(), Duration::ZERO).unwrap();
    let c = w.poll().unwrap();
    assert!(c.rescanned, "a rescan every 0 s runs on every poll");
    assert!(
        StoreWatcher::new(&dir.path().join("missing"), Duration::ZERO)
            .unwrap_err()
            .to_string()
            .contains("not a directory")
    );
}
