//! A minimal standalone command line for this crate (the project's command line is
//! `cargo xtask transfer`): `ferry-transfer SQLITE_FILE POSTGRES_URL --schema NAME
//! [--managed] [--plan-only] [--workers N] [--chunk-rows N] [--pause-ms N]
//! [--invalid-text reject|bytea]`. Exit 0 clean, 1 rows rejected, 2 error. The crate's
//! kill-and-resume tests run it as a child process and kill it with SIGKILL.

use std::process::ExitCode;
use std::time::Duration;

use ferry_core::config::InvalidTextPolicy;
use ferry_core::plan::PlanMode;
use ferry_core::redact::redact;
use ferry_transfer::{PgTarget, TransferOptions};

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(ferry_core::exit::FINDINGS),
        Err(e) => {
            eprintln!("error: {}", redact(&e));
            ExitCode::from(ferry_core::exit::ERROR)
        }
    }
}

fn run() -> Result<bool, String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut schema = None;
    let mut mode = PlanMode::Derived;
    let mut plan_only = false;
    let mut opts = TransferOptions::default();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--schema" => schema = Some(value("--schema")?),
            "--managed" => mode = PlanMode::Managed,
            "--plan-only" => plan_only = true,
            "--workers" => {
                opts.workers = value("--workers")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?
            }
            "--chunk-rows" => {
                opts.chunk_rows = value("--chunk-rows")?
                    .parse()
                    .map_err(|e| format!("--chunk-rows: {e}"))?
            }
            "--pause-ms" => {
                let ms: u64 = value("--pause-ms")?
                    .parse()
                    .map_err(|e| format!("--pause-ms: {e}"))?;
                opts.pause_after_chunk = Some(Duration::from_millis(ms));
            }
            "--invalid-text" => {
                opts.invalid_text = match value("--invalid-text")?.as_str() {
                    "reject" => InvalidTextPolicy::Reject,
                    "bytea" => InvalidTextPolicy::Bytea,
                    other => {
                        return Err(format!("--invalid-text {other}: expected reject or bytea"))
                    }
                }
            }
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => positional.push(a),
        }
    }
    let [sqlite, url] = positional.as_slice() else {
        return Err(
            "usage: ferry-transfer SQLITE_FILE POSTGRES_URL --schema NAME [options]".into(),
        );
    };
    let target = PgTarget::new(url.clone(), schema.ok_or("--schema is required")?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let sqlite = std::path::Path::new(sqlite);
        if plan_only {
            let plan = match mode {
                PlanMode::Derived => {
                    ferry_transfer::plan_derived(sqlite, &target.schema, &opts).await
                }
                PlanMode::Managed => ferry_transfer::plan_managed(sqlite, &target, &opts).await,
            }
            .map_err(|e| e.to_string())?;
            println!("{}", ferry_transfer::plan_text(&plan));
            return Ok(true);
        }
        let (_, report) = ferry_transfer::transfer(sqlite, &target, mode, &opts)
            .await
            .map_err(|e| e.to_string())?;
        println!("{}", report.summary_table());
        let stages: Vec<String> = report
            .stage_seconds
            .iter()
            .map(|(n, s)| format!("{n} {s:.2}s"))
            .collect();
        println!("stages: {}", stages.join(", "));
        for w in &report.warnings {
            println!("warning: {w}");
        }
        if !report.rejects.is_empty() {
            println!("{}", report.rejects_table(20));
        }
        if !report.not_carried_over.is_empty() {
            println!("{}", report.not_carried_over_table(20));
        }
        Ok(report.is_clean())
    })
}
