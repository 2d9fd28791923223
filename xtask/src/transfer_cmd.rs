//! `cargo xtask transfer SQLITE_FILE POSTGRES_URL [--schema NAME] [--workers N] [--plan-only]
//! [--managed]`: copies a SQLite file into PostgreSQL on its own (outside the phases).
//!
//! Derived mode (the default) creates the schema from the SQLite one; `--managed` copies
//! into tables that already exist (made by migrations), matching columns by name. The plan
//! is printed with `--plan-only`; plan and report are written as JSON under
//! `state_dir/reports/`. An unfinished transfer recorded in the target schema (after a
//! crash or `kill -9`) is continued with its recorded plan (the library's
//! `plan_or_resume` decides).
//!
//! Exit 0 when every row arrived and everything of the schema was carried over (or
//! acknowledged with `--acknowledge "reason"`); 1 when rows were rejected or a constraint,
//! default, index, view or trigger was not carried over (the report lists each with its
//! SQLite text and the reason); 2 on error.

use std::path::PathBuf;

use anyhow::Context;
use ferry_core::config::Config;
use ferry_core::fsutil::{report_path, write_json};
use ferry_core::plan::PlanMode;
use ferry_core::redact::SecretUrl;
use ferry_transfer::{PgTarget, SubMicrosecond, TransferOptions};
use serde::Serialize;

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The SQLite file to copy.
    pub sqlite_file: PathBuf,
    /// `postgres://user[:password]@host:port/database` (the password is never printed).
    pub postgres_url: String,
    /// Target schema (default: `postgres.schema` of the configuration). Created when missing
    /// in derived mode.
    #[arg(long)]
    pub schema: Option<String>,
    /// Parallel connections (default: `transfer.workers`, one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Rows per checkpointed chunk (default: `transfer.chunk_rows`).
    #[arg(long)]
    pub chunk_rows: Option<u64>,
    /// Print and save the plan (every column: source type, storage profile, target type,
    /// why) without copying.
    #[arg(long)]
    pub plan_only: bool,
    /// Copy into the existing tables of the schema (made by migrations).
    #[arg(long)]
    pub managed: bool,
    /// Truncate timestamps with digits beyond microseconds (each listed in the report)
    /// instead of rejecting their rows.
    #[arg(long)]
    pub truncate_sub_microseconds: bool,
    /// Record a person's reason for accepting what the transfer did not carry over (the
    /// list the report shows); stored in the target schema, read by `validate` and gate 3.
    #[arg(long, value_name = "REASON")]
    pub acknowledge: Option<String>,
    /// Nothing writes the SQLite file during the copy (a snapshot, or the application is
    /// stopped): each worker reads with its own connection, so the largest table is read in
    /// parallel. Checked: if the file or its WAL changed by the end, the transfer fails.
    #[arg(long)]
    pub source_immutable: bool,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<Outcome> {
    // Bad input first, each in one sentence: the SQLite argument, then the server (so an
    // unreachable one is not retried with a warning per attempt).
    ferry_core::sqlite_file::require(&args.sqlite_file)?;
    crate::ci::ensure_postgres_named(&args.postgres_url, "the POSTGRES_URL argument").await?;
    let target = PgTarget {
        url: SecretUrl::new(args.postgres_url.clone()),
        schema: args
            .schema
            .clone()
            .unwrap_or_else(|| config.postgres.schema.clone()),
    };
    let mut opts = TransferOptions::from_config(config);
    if let Some(w) = args.workers {
        anyhow::ensure!(w > 0, "--workers must be at least 1");
        opts.workers = w;
    }
    if let Some(n) = args.chunk_rows {
        anyhow::ensure!(n > 0, "--chunk-rows must be at least 1");
        opts.chunk_rows = n;
    }
    opts.source_immutable = args.source_immutable;
    if args.truncate_sub_microseconds {
        opts.sub_microsecond = SubMicrosecond::Truncate;
    }
    let mode = if args.managed {
        PlanMode::Managed
    } else {
        PlanMode::Derived
    };
    let file = &args.sqlite_file;

    if let Some(reason) = &args.acknowledge {
        anyhow::ensure!(
            !reason.trim().is_empty(),
            "--acknowledge needs a reason a person wrote"
        );
    }
    if args.plan_only {
        eprintln!("profiling {} …", file.display());
        let plan = match mode {
            PlanMode::Derived => ferry_transfer::plan_derived(file, &target.schema, &opts).await?,
            PlanMode::Managed => ferry_transfer::plan_managed(file, &target, &opts).await?,
        };
        let plan_file = save(config, "transfer-plan", &plan)?;
        print!("{}", ferry_transfer::plan_text(&plan));
        println!("plan: {}", plan_file.display());
        return Ok(Outcome::Clean);
    }
    // A finished transfer of this file is only acknowledged, never copied again.
    let finished = match &args.acknowledge {
        Some(_) => ferry_transfer::recorded_run(&target, &opts)
            .await?
            .is_some_and(|run| run.complete && run.source == ferry_transfer::source_name(file)),
        None => false,
    };
    let copied = if finished {
        None
    } else {
        let planned = ferry_transfer::plan_or_resume(file, &target, mode, &opts).await?;
        if planned.resumes {
            eprintln!(
                "continuing the unfinished transfer of {} recorded in schema {:?}",
                planned.plan.source, target.schema
            );
        } else {
            eprintln!("profiled {}", file.display());
        }
        let plan_file = save(config, "transfer-plan", &planned.plan)?;
        let columns: usize = planned.plan.tables.iter().map(|t| t.columns.len()).sum();
        eprintln!(
            "copying {} tables ({columns} columns) into schema {:?} of {} with {} workers; plan: {}",
            planned.plan.tables.len(),
            target.schema,
            target.url,
            opts.workers,
            plan_file.display()
        );
        Some(ferry_transfer::execute(&planned.plan, &target, &opts).await?)
    };
    let report = match (&args.acknowledge, copied) {
        (Some(reason), _) => ferry_transfer::acknowledge(&target, reason, &opts).await?,
        (None, Some(report)) => report,
        (None, None) => anyhow::bail!("nothing was copied and nothing acknowledged"),
    };

    print!("{}", report.summary_table());
    let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
    let bytes: u64 = report.tables.iter().map(|t| t.bytes).sum();
    let secs = report.seconds.max(1e-6);
    println!(
        "{rows} rows, {:.1} MB in {secs:.2} s ({:.0} rows/s, {:.1} MB/s){}",
        bytes as f64 / 1e6,
        rows as f64 / secs,
        bytes as f64 / 1e6 / secs,
        if report.resumed { ", resumed" } else { "" }
    );
    if !report.rejects.is_empty() {
        println!(
            "\n{} rows rejected ({} cells); the first ones:",
            report.rejected_rows(),
            report.rejects.len()
        );
        print!("{}", report.rejects_table(20));
    }
    if !report.adjusted.is_empty() {
        println!(
            "\n{} cells stored not exactly as written (see `adjusted` in the report)",
            report.adjusted.len()
        );
    }
    if !report.renames.is_empty() {
        println!(
            "\n{} identifiers renamed to fit PostgreSQL (see `renames` in the report)",
            report.renames.len()
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    if !report.not_carried_over.is_empty() {
        let open = report.unacknowledged().count();
        println!(
            "\n{} objects of the SQLite schema not carried over ({open} not acknowledged):",
            report.not_carried_over.len()
        );
        print!("{}", report.not_carried_over_table(50));
        if open > 0 {
            println!(
                "review them, then record why they may stay behind: `--acknowledge \"reason\"`"
            );
        }
    }
    let report_file = save(config, "transfer", &report)?;
    println!("report: {}", report_file.display());
    Ok(if report.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// Writes a JSON report under `state_dir/reports/`.
fn save<T: Serialize>(config: &Config, name: &str, value: &T) -> anyhow::Result<PathBuf> {
    let path =
        report_path(&config.state_dir, name, "json").context("creating the reports directory")?;
    write_json(&path, value).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
