//! `cargo xtask demo [--keep]`: the main job, end to end, on a generated agent store —
//! phases 1 to 3, then a writer standing in for the old application while sync follows it
//! (lag shown), the cutover (phase 4), the sign-off of phase 5 (with where its report is),
//! status, rollback — saying what it did at each step.
//!
//! Without `--keep` it works in a temporary folder and removes it at the end (the rollback
//! has already dropped its PostgreSQL schema). With `--keep` it works in `./ferry-demo` and
//! leaves it there: the store, a `ferry.toml` that names it with paths relative to that
//! folder, and the demo's own state, so `cd ferry-demo` and the README's tour run as
//! written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ferry_core::config::ConfigLoader;
use ferry_phases::{Phase, RollbackOptions, RunOptions, RunResult, Runner};

use crate::Outcome;

/// Where `--keep` puts the demo, relative to the current directory.
pub const KEEP_DIR: &str = "ferry-demo";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Work in ./ferry-demo and leave it there: the store, a ferry.toml naming it, and the
    /// demo's state, ready for the tour in README.md (`cd ferry-demo`).
    #[arg(long)]
    keep: bool,
}

pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    let schema = format!("ferry_demo_{}", std::process::id());
    let root = if args.keep {
        let dir = std::env::current_dir()
            .context("reading the current directory")?
            .join(KEEP_DIR);
        if dir.exists() {
            bail!(
                "{} already exists; remove it (or run the demo in another folder) to keep a fresh demo there",
                dir.display()
            );
        }
        dir
    } else {
        std::env::temp_dir().join(format!(
            "ferry-demo-{}",
            ferry_core::fsutil::timestamp_for_path()
        ))
    };
    let store = root.join("store");
    let state = root.join(".ferry");
    // The URL comes through the configuration's own layers (ferry.toml, FERRY_POSTGRES_URL,
    // the default); everything the demo creates is set by flags.
    let config = ConfigLoader::new()
        .flag("source.store_dir", store.display().to_string())
        .flag(
            "sqlite.path",
            state.join("ferry.sqlite3").display().to_string(),
        )
        .flag("state_dir", state.display().to_string())
        .flag("postgres.schema", schema.clone())
        .load()?;
    crate::ci::ensure_postgres(config.postgres.url.expose()).await?;

    let files = write_demo_store(&store)
        .with_context(|| format!("writing the demo store under {}", store.display()))?;
    if args.keep {
        let toml = root.join("ferry.toml");
        std::fs::write(&toml, kept_config(&schema))
            .with_context(|| format!("writing {}", toml.display()))?;
    }
    println!("ferry demo in {}\n", root.display());
    println!("1. generated an agent store of {files} files (with a byte-order mark, 7-digit fractional seconds, a truncated and an empty file) at {}\n", store.display());

    let runner = Runner::new(config);
    let mut clean = true;
    let steps = [
        (Phase::Foundation, "backed up the store, proved the backup by restoring it, and created the SQLite schema"),
        (Phase::Import, "imported every file into SQLite through the default profile (broken files quarantined with a reason)"),
        (Phase::Load, "created the PostgreSQL schema, copied every row with binary COPY, and compared both sides cell by cell"),
    ];
    let mut writer = None;
    for (n, (phase, what)) in steps.into_iter().enumerate() {
        if phase == Phase::Load && clean {
            // The old application keeps writing from here on: phase 3 copies a consistent
            // snapshot while it writes, and sync carries what it writes after.
            writer = Some(DemoWriter::start(&runner.config().sqlite.path)?);
            println!(
                "   a writer now stands in for the old application, writing SQLite without pause through phase 3 and sync (200 row writes/s: inserts, updates, deletes, INSERT OR REPLACE, UPSERT)\n"
            );
        }
        match runner.run(phase, &RunOptions::default()).await? {
            RunResult::Ran {
                report,
                report_path,
            } => {
                println!("{}. {phase} {what}.\n", n + 2);
                if !report.details.is_empty() {
                    println!("{}", report.details);
                }
                println!(
                    "   gate {}: {}\n\n{}",
                    phase.number(),
                    if report.passed { "passed" } else { "FAILED" },
                    report.table()
                );
                println!("   gate report: {}\n", report_path.display());
                clean &= report.passed;
            }
            RunResult::AlreadyPassed(_) => println!("{phase} had already passed in this folder"),
        }
    }
    let mut step = steps.len() + 2;
    match writer {
        Some(writer) if clean => {
            clean &= sync_and_cut_over(&runner, step, writer).await?;
            step += 2;
        }
        Some(writer) => {
            writer.stop()?;
        }
        None => {}
    }
    let signoff_report = sign_off(&runner, step, &mut clean).await?;
    step += 1;
    println!("{step}. status:\n\n{}\n", runner.status().await?);
    let rollback = RollbackOptions {
        // PostgreSQL became the live store at cutover: undoing phase 4 needs this flag,
        // and the ledger records it.
        discard_writes_since_cutover: true,
        ..RollbackOptions::default()
    };
    for report in runner.rollback(0, &rollback).await? {
        println!(
            "   rolled back {}: {}\n\n{}",
            report.phase,
            if report.passed {
                "verified"
            } else {
                "VERIFICATION FAILED"
            },
            report.table()
        );
        clean &= report.passed;
    }
    println!(
        "{}. status after `rollback --to 0 --discard-writes-since-cutover`:\n\n{}\n",
        step + 1,
        runner.status().await?
    );
    if let Some(path) = &signoff_report {
        println!(
            "The sign-off report: {}{}\n",
            path.display(),
            if args.keep || !clean {
                ""
            } else {
                " (removed with the demo folder; `--keep` keeps it)"
            }
        );
    }
    if args.keep {
        println!(
            "Kept in {}: the store (store/), ferry.toml, and the demo's state (.ferry/: backups, reports, ledger).\nTry the tour of README.md on it:\n\n    cd {KEEP_DIR}\n    cargo xtask phase 1\n    cargo xtask status",
            root.display()
        );
    } else if clean {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("removing the demo folder {}", root.display()))?;
        println!(
            "Removed the demo folder {}. `cargo xtask demo --keep` leaves the store, a ferry.toml and the state in ./{KEEP_DIR} to try the tour of README.md on.",
            root.display()
        );
    } else {
        println!(
            "A check failed, so the demo folder stays for a look: {} (the store, .ferry/reports, .ferry/ledger).",
            root.display()
        );
    }
    Ok(if clean {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// The demo's stand-in for the old application: ferry's write mix on SQLite at 200 row
/// writes/s, in a thread, from before phase 3 until it is stopped before the cutover.
struct DemoWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<rusqlite::Result<ferry_testkit::sync_writer::WriterStats>>,
}

impl DemoWriter {
    fn start(sqlite: &Path) -> anyhow::Result<Self> {
        ferry_testkit::sync_writer::use_wal(sqlite)
            .with_context(|| format!("setting {} to WAL", sqlite.display()))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = {
            let (path, stop) = (sqlite.to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                ferry_testkit::sync_writer::run(
                    &path,
                    &ferry_testkit::sync_writer::WriterConfig {
                        rate: 200,
                        prefix: "demo".into(),
                        // Phase 5 compares every imported file with its rows; this
                        // application writes rows of its own (docs/phases.md, phase 5).
                        spare_imported: true,
                        ..Default::default()
                    },
                    &stop,
                )
            })
        };
        Ok(Self { stop, handle })
    }

    fn stop(self) -> anyhow::Result<ferry_testkit::sync_writer::WriterStats> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(self
            .handle
            .join()
            .map_err(|_| anyhow::anyhow!("the demo writer stopped unexpectedly"))??)
    }
}

/// Steps `step` and `step + 1`: the writer standing in for the old application (inserts,
/// updates, deletes, INSERT OR REPLACE, UPSERT on SQLite, running since before phase 3)
/// goes on while the sync follower carries its writes to PostgreSQL, showing the lag; the
/// application is stopped and phase 4 cuts over.
async fn sync_and_cut_over(
    runner: &Runner,
    step: usize,
    writer: DemoWriter,
) -> anyhow::Result<bool> {
    use std::time::Duration;

    let config = runner.config().clone();
    let sqlite = config.sqlite.path.clone();
    let plan = runner.sync_plan()?;
    let spec = ferry_phases::sync::install_capture(&config, &plan)?;
    let applier = ferry_sync::Applier::open(
        &sqlite,
        &ferry_phases::sync::sync_target(&config),
        &plan,
        &ferry_sync::SyncOptions::from_config(&config),
        true,
    )
    .await?;
    let mut follower = ferry_sync::Follower::new(
        applier,
        ferry_sync::FollowerOptions {
            interval: Duration::from_millis(100),
            state_dir: Some(config.state_dir.clone()),
            ..ferry_sync::FollowerOptions::default()
        },
    );
    let stop = follower.handle().stop;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        stop.trigger();
    });
    let summary = follower.run(&mut ferry_sync::NoHook).await?;
    follower.into_applier().close().await;
    let written = writer.stop()?;
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
    println!(
        "{step}. the writer stood in for the old application from before phase 3 ({} row writes: {} INSERT OR REPLACE, {} upserts, {} deletes, {} key changes) while `cargo xtask sync` followed it: capture {} on {} tables, {} changes applied, lag p50 {} p99 {} max {}, {} changes behind when the writer stopped; lag series {}\n",
        written.writes,
        written.replaces,
        written.upserts,
        written.deletes,
        written.key_changes,
        spec.capture_id,
        spec.tables.len(),
        summary.changes,
        ms(summary.lag_p50_ms),
        ms(summary.lag_p99_ms),
        ms(summary.lag_max_ms),
        summary.status.changes_behind,
        summary
            .series_path
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string())
    );
    let options = RunOptions {
        writers_stopped: true,
        ..RunOptions::default()
    };
    let passed = match runner.run(Phase::Sync, &options).await? {
        RunResult::Ran {
            report,
            report_path,
        } => {
            println!(
                "{}. {} fenced SQLite's writers, drained the change log, rescanned the store, compared every table and cut over.\n",
                step + 1,
                Phase::Sync
            );
            println!(
                "   gate 4: {}\n\n{}",
                if report.passed { "passed" } else { "FAILED" },
                report.table()
            );
            println!("   gate report: {}\n", report_path.display());
            report.passed
        }
        RunResult::AlreadyPassed(_) => true,
    };
    Ok(passed)
}

/// Phase 5: the sign-off checks on what the phases before migrated, signed for the demo,
/// and where the report is. Runs once gate 4 has passed; says so otherwise.
async fn sign_off(
    runner: &Runner,
    step: usize,
    clean: &mut bool,
) -> anyhow::Result<Option<PathBuf>> {
    let entries = runner.ledger().entries()?;
    let gate4 = ferry_phases::ledger::latest_run(&entries, Phase::Sync).and_then(|e| e.gate_passed);
    if gate4 != Some(true) {
        println!(
            "{step}. {} needs gate 4 (cutover), which has not passed here; no sign-off.\n",
            Phase::SignOff
        );
        return Ok(None);
    }
    let load = Some(std::time::Duration::from_secs(5));
    // First as the checks stand: PostgreSQL's reads go over a socket and SQLite's and the
    // files' do not, so "within 10% of the baseline" usually fails, with its numbers.
    let first = match runner
        .run(
            Phase::SignOff,
            &RunOptions {
                signoff_load: load,
                ..RunOptions::default()
            },
        )
        .await?
    {
        RunResult::Ran { report, .. } => report,
        RunResult::AlreadyPassed(_) => return Ok(None),
    };
    println!("{step}. {} checked zero loss (files, SQLite, PostgreSQL), timed the typical reads against SQLite and the files, ran 16 agents at once, and read phase 4's lag and blackout.\n", Phase::SignOff);
    println!(
        "   gate 5 as measured: {}\n\n{}\n",
        if first.passed { "passed" } else { "FAILED" },
        first.table()
    );
    let only_slower = first
        .checks
        .iter()
        .filter(|c| !c.passed)
        .all(|c| c.name.starts_with("performance: PostgreSQL within"));
    if !only_slower {
        *clean = false;
        return Ok(None);
    }
    // A person signs; where only the comparison with the baselines missed, they accept it
    // with a reason the signed report keeps beside the numbers.
    let accept = (!first.passed).then(|| {
        "the demo accepts one loopback round trip per read against in-process SQLite and file reads".to_owned()
    });
    if let Some(reason) = &accept {
        println!("   signing with `--accept-slower \"{reason}\"`: the report keeps the numbers, that they were accepted, and why\n");
    }
    let options = RunOptions {
        signed_by: Some("ferry demo".to_owned()),
        signoff_load: load,
        accept_slower: accept,
        rerun: true,
        ..RunOptions::default()
    };
    match runner.run(Phase::SignOff, &options).await? {
        RunResult::Ran {
            report,
            report_path,
        } => {
            println!("{}\n", report.details);
            println!(
                "   gate 5, signed: {}\n\n{}\n",
                if report.passed { "passed" } else { "FAILED" },
                report.table()
            );
            println!("   gate report: {}\n", report_path.display());
            *clean &= report.passed;
            let html = report
                .evidence
                .get("html")
                .and_then(|v| v.as_str())
                .map(PathBuf::from);
            Ok(html)
        }
        RunResult::AlreadyPassed(_) => Ok(None),
    }
}

/// The `ferry.toml` of a kept demo: the demo's paths relative to its folder, and its schema.
fn kept_config(schema: &str) -> String {
    format!(
        "# Written by `cargo xtask demo --keep`: the demo's store, ready for the tour in README.md.\n\
         # Run ferry in this folder (`cd {KEEP_DIR}`); paths are relative to it. Every other key keeps\n\
         # its default: ferry.example.toml in the checkout lists them all.\n\
         state_dir = \".ferry\"\n\n\
         [source]\n\
         store_dir = \"store\"\n\n\
         [sqlite]\n\
         path = \".ferry/ferry.sqlite3\"\n\n\
         [postgres]\n\
         # The demo's own schema in the default database, so the tour never touches `ferry`.\n\
         schema = \"{schema}\"\n"
    )
}

/// A small agent store in the layout ferry's default profile reads, with real defects.
fn write_demo_store(store: &Path) -> std::io::Result<usize> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for n in 1..=3 {
        let agent = format!("Agent-{n}");
        let ws = PathBuf::from("agent_workspaces").join(&agent);
        let status = format!(
            "{{\n  \"agent_id\": \"{agent}\",\n  \"status\": \"busy\",\n  \"current_task\": \"task-{n}\",\n  \"last_update\": \"2025-08-1{n}T12:45:00Z\"\n}}\n"
        );
        // The first agent's status file starts with a UTF-8 byte-order mark, as some editors write.
        let status = if n == 1 {
            [b"\xEF\xBB\xBF".as_slice(), status.as_bytes()].concat()
        } else {
            status.into_bytes()
        };
        files.push((ws.join("status.json"), status));
        files.push((
            ws.join("task_list.json"),
            format!("{{\"tasks\": [{{\"task_id\": \"task-{n}\", \"title\": \"Survey {n}\", \"status\": \"in_progress\", \"priority\": \"High\"}}], \"last_updated\": \"2025-07-02T07:36:55Z\"}}\n").into_bytes(),
        ));
        for m in 1..=4 {
            files.push((
                ws.join("inbox").join(format!("msg_2025081{n}_10410{m}_Agent-5_to_{agent}.json")),
                format!("{{\"type\": \"task\", \"from\": \"Agent-5\", \"to\": \"{agent}\", \"timestamp\": \"2025-08-11T10:41:0{m}.7764221-05:00\", \"topic\": \"contract {m}\", \"summary\": \"Do step {m}\"}}\n").into_bytes(),
            ));
        }
        files.push((
            ws.join("outbox").join(format!("reply_{n}.json")),
            format!("{{\"from\": \"{agent}\", \"to\": \"Agent-5\", \"timestamp\": \"2025-08-12 09:00:00\", \"content\": \"done\"}}\n").into_bytes(),
        ));
    }
    files.push((
        PathBuf::from("agent_workspaces/agents.json"),
        b"{\n  \"captain-1\": {\n    \"agent_id\": \"captain-1\",\n    \"role\": ".to_vec(),
    ));
    files.push((
        PathBuf::from("agent_workspaces/Agent-2/processing/update.json"),
        Vec::new(),
    ));
    files.push((PathBuf::from("devlogs/2025-08-12-sync.md"), b"---\ntitle: Sync contract\nagent: Agent-1\ndate: 2025-08-12\ntags: [sync, contract]\n---\n\nAgreed the message format.\n".to_vec()));
    files.push((
        PathBuf::from(".claude/context/project.md"),
        b"# Project context\n\nThe agents coordinate through files.\n".to_vec(),
    ));
    files.push((
        PathBuf::from(".claude/logs/pre_tool_use.json"),
        b"[{\"session_id\": \"s-1\", \"hook_event_name\": \"PreToolUse\", \"tool_name\": \"Bash\"}, {\"session_id\": \"s-1\", \"hook_event_name\": \"PreToolUse\", \"tool_name\": \"Read\"}]\n".to_vec(),
    ));
    for (path, bytes) in &files {
        let full = store.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(full, bytes)?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_config_names_the_demo_files_relative_to_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, kept_config("ferry_demo_42")).unwrap();
        let config = ConfigLoader::new().file(&path).load().unwrap();
        assert_eq!(config.source.store_dir, PathBuf::from("store"));
        assert_eq!(config.state_dir, PathBuf::from(".ferry"));
        assert_eq!(config.sqlite.path, PathBuf::from(".ferry/ferry.sqlite3"));
        assert_eq!(config.postgres.schema, "ferry_demo_42");
    }
}
