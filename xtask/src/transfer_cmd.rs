//! `cargo xtask transfer SQLITE_FILE POSTGRES_URL [--schema NAME] [--workers N] [--plan-only]
//! [--managed]`: copies a SQLite file into PostgreSQL on its own (outside the phases).
//!
//! Derived mode (the default) creates the schema from the SQLite one; `--managed` copies
//! into tables that already exist (made by migrations), matching columns by name. The plan
//! is printed with `--plan-only`; plan and report are written as JSON under
//! `state_dir/reports/`. An unfinished transfer recorded in the target schema (after a
//! crash or `kill -9`) is continued with its recorded plan.
//!
//! Exit 0 when every row arrived, 1 when rows were rejected (the rest arrived; the report
//! lists each with key, column, reason and bytes), 2 on error.

use std::path::PathBuf;

use anyhow::Context;
use ferry_core::config::Config;
use ferry_core::fsutil::{report_path, write_json};
use ferry_core::plan::PlanMode;
use ferry_core::redact::SecretUrl;
use ferry_transfer::{SubMicrosecond, Target, TransferOptions};

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
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<Outcome> {
    // Bad input first, each in one sentence: the SQLite argument, then the server (so an
    // unreachable one is not retried with a warning per attempt).
    ferry_core::sqlite_file::require(&args.sqlite_file)?;
    crate::ci::ensure_postgres_named(&args.postgres_url, "the POSTGRES_URL argument").await?;
    let target = Target {
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
    if args.truncate_sub_microseconds {
        opts.sub_microsecond = SubMicrosecond::Truncate;
    }
    let mode = if args.managed {
        PlanMode::Managed
    } else {
        PlanMode::Derived
    };
    let file = &args.sqlite_file;

    let recorded = if args.plan_only {
        None
    } else {
        ferry_transfer::recorded_run(&target, &opts)
            .await
            .with_context(|| format!("reading schema {:?} of {}", target.schema, target.url))?
    };
    let plan = match recorded {
        Some(run) if !run.complete && run.source == ferry_transfer::source_name(file) => {
            eprintln!(
                "continuing the unfinished transfer of {} recorded in schema {:?}",
                run.source, target.schema
            );
            run.plan
        }
        _ => {
            eprintln!("profiling {} …", file.display());
            match mode {
                PlanMode::Derived => {
                    ferry_transfer::plan_derived(file, &target.schema, &opts).await?
                }
                PlanMode::Managed => ferry_transfer::plan_managed(file, &target, &opts).await?,
            }
        }
    };
    let plan_file = report_path(&config.state_dir, "transfer-plan", "json")
        .context("creating the reports directory")?;
    write_json(&plan_file, &plan).with_context(|| format!("writing {}", plan_file.display()))?;
    if args.plan_only {
        print!("{}", ferry_transfer::plan_text(&plan));
        println!("plan: {}", plan_file.display());
        return Ok(Outcome::Clean);
    }
    let columns: usize = plan.tables.iter().map(|t| t.columns.len()).sum();
    eprintln!(
        "copying {} tables ({columns} columns) into schema {:?} of {} with {} workers; plan: {}",
        plan.tables.len(),
        target.schema,
        target.url,
        opts.workers,
        plan_file.display()
    );
    let report = ferry_transfer::execute(&plan, &target, &opts).await?;

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
    let report_file = report_path(&config.state_dir, "transfer", "json")
        .context("creating the reports directory")?;
    write_json(&report_file, &report)
        .with_context(|| format!("writing {}", report_file.display()))?;
    println!("report: {}", report_file.display());
    Ok(if report.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
