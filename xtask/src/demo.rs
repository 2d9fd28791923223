//! `cargo xtask demo`: the main job, end to end, on a generated agent store in a temporary
//! folder — phase 1, status, rollback — saying what it did at each step.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_core::config::ConfigLoader;
use ferry_phases::{Phase, RollbackOptions, RunOptions, RunResult, Runner};

use crate::Outcome;

pub async fn run() -> anyhow::Result<Outcome> {
    let url = std::env::var(ferry_core::env_vars::CONFIG_VARS[2].0)
        .unwrap_or_else(|_| ferry_core::env_vars::DEFAULT_POSTGRES_URL.to_owned());
    crate::ci::ensure_postgres(&url).await?;

    let root = std::env::temp_dir().join(format!(
        "ferry-demo-{}",
        ferry_core::fsutil::timestamp_for_path()
    ));
    let store = root.join("store");
    let files = write_demo_store(&store)
        .with_context(|| format!("writing the demo store under {}", store.display()))?;
    let schema = format!("ferry_demo_{}", std::process::id());
    let config = ConfigLoader::new()
        .flag("source.store_dir", store.display().to_string())
        .flag(
            "sqlite.path",
            root.join("ferry.sqlite3").display().to_string(),
        )
        .flag("state_dir", root.join("state").display().to_string())
        .flag("postgres.url", url.clone())
        .flag("postgres.schema", schema)
        .load()?;
    println!("ferry demo in {}\n", root.display());
    println!("1. generated an agent store of {files} files (with a byte-order mark, 7-digit fractional seconds, a truncated and an empty file) at {}\n", store.display());

    let runner = Runner::new(config);
    let mut clean = true;
    let steps = [
        (Phase::Foundation, "backed up the store, proved the backup by restoring it, and created the SQLite schema"),
        (Phase::Import, "imported every file into SQLite through the default profile (broken files quarantined with a reason)"),
        (Phase::Load, "created the PostgreSQL schema, copied every row with binary COPY, and compared both sides cell by cell"),
    ];
    for (n, (phase, what)) in steps.into_iter().enumerate() {
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
    println!(
        "{}. status:\n\n{}\n",
        steps.len() + 2,
        runner.status().await?
    );
    for report in runner.rollback(0, &RollbackOptions::default()).await? {
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
        "{}. status after `rollback --to 0`:\n\n{}\n",
        steps.len() + 3,
        runner.status().await?
    );
    println!(
        "Everything is under {}: the store, state/backups, state/reports, state/ledger.",
        root.display()
    );
    Ok(if clean {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
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
        std::fs::create_dir_all(full.parent().expect("relative paths have parents"))?;
        std::fs::write(full, bytes)?;
    }
    Ok(files.len())
}
