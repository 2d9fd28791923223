//! The shared real-world samples (SQLite files and agent stores) that acceptance tests read,
//! and the rule for when they are absent: an acceptance check never passes without running.
//!
//! [`require`] returns the sample's path. When the sample is missing it either fails the
//! test — under CI (`CI` set, and not `false` or `0`), where a missing sample means the
//! pipeline is broken — or records a skip marker and returns `None`, so the test can stop
//! early and `cargo xtask ci` can count and name every check that did not run.
//!
//! The samples folder is `$FERRY_SAMPLES_DIR`, else `../shared/samples` beside the
//! workspace. Markers go to `$FERRY_SKIPPED_CHECKS_DIR`, else `target/skipped-checks/` of
//! the workspace: one file per check, holding one line that says which test and why.
//!
//! ```no_run
//! #[test]
//! fn every_sample_is_read() {
//!     let Some(dir) = ferry_testkit::samples::require("sqlite") else {
//!         return; // recorded as not run; under CI this point is never reached
//!     };
//!     assert!(dir.read_dir().unwrap().next().is_some());
//! }
//! ```

use std::path::{Path, PathBuf};

use ferry_core::env_vars::{FERRY_SAMPLES_DIR, FERRY_SKIPPED_CHECKS_DIR};

/// The extension of a skip marker file.
pub const MARKER_EXTENSION: &str = "skipped";

/// The folder the shared samples are read from.
pub fn root() -> PathBuf {
    match std::env::var_os(FERRY_SAMPLES_DIR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let root = workspace_root();
            root.parent().unwrap_or(&root).join("shared/samples")
        }
    }
}

/// The sample at `rel` under [`root`] (a folder or a file), or `None` when it is absent and
/// this is not CI; the skip is then recorded (see the module documentation). Under CI an
/// absent sample panics with a sentence naming the path.
#[track_caller]
pub fn require(rel: &str) -> Option<PathBuf> {
    let caller = std::panic::Location::caller();
    let check = Check {
        test: std::thread::current()
            .name()
            .unwrap_or("an acceptance check")
            .to_owned(),
        file: caller.file().to_owned(),
    };
    match resolve(&root(), rel, under_ci(), &skipped_checks_dir(), &check) {
        Ok(found) => found,
        Err(why) => panic!("{why}"),
    }
}

/// The test asking for a sample, as the marker and the panic name it.
#[derive(Debug, Clone)]
struct Check {
    test: String,
    file: String,
}

/// [`require`] without the environment: `Ok(Some)` when present, `Ok(None)` after writing
/// a marker to `skips`, `Err` (the panic message) under CI.
fn resolve(
    root: &Path,
    rel: &str,
    ci: bool,
    skips: &Path,
    check: &Check,
) -> Result<Option<PathBuf>, String> {
    let path = root.join(rel);
    if path.exists() {
        return Ok(Some(path));
    }
    let reason = format!(
        "{} is absent (set {FERRY_SAMPLES_DIR} to the samples folder)",
        path.display()
    );
    if ci {
        return Err(format!(
            "acceptance check {} ({}) cannot run under CI: {reason}",
            check.test, check.file
        ));
    }
    let line = format!("{} {}: not run: {reason}", check.file, check.test);
    eprintln!("{line}");
    record_skip(skips, check, &line);
    Ok(None)
}

/// Whether the tests run under CI: `CI` is set to anything but `false`, `0` or nothing.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// The folder skip markers are written to.
pub fn skipped_checks_dir() -> PathBuf {
    match std::env::var_os(FERRY_SKIPPED_CHECKS_DIR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target/skipped-checks"),
    }
}

/// The recorded skips in `dir`, one line each, sorted.
pub fn read_skips(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == MARKER_EXTENSION))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|t| t.trim_end().to_owned())
        .collect();
    lines.sort();
    lines
}

/// Writes the marker of one skipped check. A marker that cannot be written is reported on
/// stderr, not fatal: the check still did not run, and the line above says so.
fn record_skip(dir: &Path, check: &Check, line: &str) {
    let name: String = format!("{}--{}", check.file, check.test)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}.{MARKER_EXTENSION}"));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, line));
    if let Err(e) = written {
        eprintln!("cannot record the skipped check in {}: {e}", path.display());
    }
}

/// The workspace this crate was built in (`crates/ferry-testkit` is two levels below).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_sample_fails_under_ci_and_is_recorded_elsewhere() {
        let dir = tempfile_dir();
        let (samples, skips) = (dir.join("samples"), dir.join("skips"));
        std::fs::create_dir_all(samples.join("sqlite")).unwrap();
        let check = Check {
            test: "probe".into(),
            file: "crates/x/tests/a.rs".into(),
        };
        assert_eq!(
            resolve(&samples, "sqlite", true, &skips, &check).unwrap(),
            Some(samples.join("sqlite"))
        );
        let err = resolve(&samples, "stores", true, &skips, &check).unwrap_err();
        assert!(
            err.contains("cannot run under CI") && err.contains("stores"),
            "{err}"
        );
        assert!(
            read_skips(&skips).is_empty(),
            "CI records no skip: it fails"
        );
        assert_eq!(
            resolve(&samples, "stores", false, &skips, &check).unwrap(),
            None
        );
        let lines = read_skips(&skips);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("crates/x/tests/a.rs probe: not run: ")
                && lines[0].contains("stores is absent"),
            "{lines:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn markers_are_read_back_sorted() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("b.skipped"), "b: not run: x\n").unwrap();
        std::fs::write(dir.join("a.skipped"), "a: not run: y\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        assert_eq!(read_skips(&dir), vec!["a: not run: y", "b: not run: x"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ferry-testkit-samples-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
