//! `cargo xtask phase N`, `status` and `rollback --to N`: the phase runner on the command line.

use ferry_core::config::Config;
use ferry_phases::{Phase, RollbackOptions, RunOptions, RunResult, Runner, Wait};

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct PhaseArgs {
    /// The phase to run, 1 to 5.
    phase: u8,
    /// Run although the previous gate did not pass (needs --reason; recorded in the ledger).
    #[arg(long, requires = "reason")]
    force: bool,
    /// Why the gate is overridden.
    #[arg(long, requires = "force")]
    reason: Option<String>,
    /// Run again a phase whose gate already passed.
    #[arg(long)]
    rerun: bool,
    /// Phase 3: accept the rows the transfer rejects (they stay listed in its report), for
    /// this reason, which is recorded in the ledger.
    #[arg(long, value_name = "REASON")]
    acknowledge_rejects: Option<String>,
    /// Phase 3: accept what of the SQLite schema was not carried over (views, triggers,
    /// CHECKs; listed in the transfer report), for this reason, which is recorded.
    #[arg(long, value_name = "REASON")]
    acknowledge: Option<String>,
    /// Phase 4: the old application no longer writes the file store; the cutover checks
    /// that no file changes while it drains, and aborts naming them if one does.
    #[arg(long)]
    writers_stopped: bool,
    /// Phase 5: sign the report as NAME when every check passes (recorded with the time and
    /// the report's sha256). Runs the checks again when phase 5 already passed unsigned.
    #[arg(long, value_name = "NAME")]
    signed_by: Option<String>,
    /// Phase 5: how long the simulated agents of the concurrency check run, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    load_secs: u64,
    /// Phase 5: accept PostgreSQL's typical reads slower than SQLite or the file reads by
    /// more than 10%, for this reason; the report the signature covers shows the numbers,
    /// that they were accepted, and why.
    #[arg(long, value_name = "REASON")]
    accept_slower: Option<String>,
    /// When another run holds the state dir, refuse at once (naming it) instead of waiting.
    #[arg(long)]
    no_wait: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// Undo phases down to the state after this phase (0 undoes everything).
    #[arg(long)]
    to: u8,
    /// When undoing phase 1, also put the file store back as the phase-1 backup holds it
    /// (files that changed or appeared since are moved aside, never deleted).
    #[arg(long)]
    restore_store: bool,
    /// When undoing phase 4 after its cutover, discard what was written to PostgreSQL since
    /// (without it the rollback refuses, counting those rows); recorded in the ledger.
    #[arg(long)]
    discard_writes_since_cutover: bool,
    /// When undoing phase 4 after its cutover, first write every row created, changed or
    /// deleted in PostgreSQL since back into the file store (replaced files moved aside,
    /// never deleted); undoing phase 1 then checks the store against what the export left.
    #[arg(long)]
    export_back: bool,
    /// With --export-back: list every file the export would write, create or remove, and
    /// the rows it could not render, with counts and a JSON report; changes nothing.
    #[arg(long, requires = "export_back")]
    plan: bool,
    /// When another run holds the state dir, refuse at once (naming it) instead of waiting.
    #[arg(long)]
    no_wait: bool,
}

fn wait(no_wait: bool) -> Wait {
    if no_wait {
        Wait::No
    } else {
        Wait::Forever
    }
}

pub async fn phase(args: PhaseArgs, config: Config) -> anyhow::Result<Outcome> {
    let phase = Phase::try_from(args.phase).map_err(anyhow::Error::msg)?;
    if phase >= Phase::Load {
        crate::ci::ensure_postgres(config.postgres.url.expose()).await?;
    }
    if args.signed_by.is_some() && phase != Phase::SignOff {
        anyhow::bail!("--signed-by signs phase 5's report; it does nothing for {phase}");
    }
    let runner = Runner::new(config);
    let options = RunOptions {
        force_reason: if args.force { args.reason } else { None },
        // Signing measures again and signs what it measured.
        rerun: args.rerun || args.signed_by.is_some(),
        acknowledge_rejects: args.acknowledge_rejects,
        acknowledge_schema: args.acknowledge,
        writers_stopped: args.writers_stopped,
        signed_by: args.signed_by,
        signoff_load: Some(std::time::Duration::from_secs(args.load_secs.max(1))),
        accept_slower: args.accept_slower,
        wait: wait(args.no_wait),
    };
    match runner.run(phase, &options).await? {
        RunResult::AlreadyPassed(entry) => {
            println!(
                "{phase} already passed at {} ({}); nothing to do. Use --rerun to run it again.",
                entry
                    .finished_at
                    .unwrap_or(entry.started_at)
                    .format("%Y-%m-%d %H:%M:%SZ"),
                entry.summary
            );
            Ok(Outcome::Clean)
        }
        RunResult::Ran {
            report,
            report_path,
        } => {
            if !report.details.is_empty() {
                println!("{}", report.details);
            }
            println!(
                "{phase}: gate {}\n\n{}",
                if report.passed { "passed" } else { "FAILED" },
                report.table()
            );
            let findings = &report.findings;
            if report.passed && !findings.is_empty() {
                // The gate passes (every file is accounted for), but a person should look
                // at these: the same exit 1 as a standalone `import` that quarantined files.
                println!(
                    "\n{} {}{}:",
                    findings.count,
                    findings.what,
                    if findings.first.len() < findings.count as usize {
                        format!(", the first {}", findings.first.len())
                    } else {
                        String::new()
                    }
                );
                for line in &findings.first {
                    println!("  {line}");
                }
                if let Some(path) = &findings.report {
                    println!("all of them, with their reasons: {}", path.display());
                }
            }
            println!("report: {} (and .md)", report_path.display());
            Ok(if report.passed && findings.is_empty() {
                Outcome::Clean
            } else {
                Outcome::Findings
            })
        }
    }
}

pub async fn status(args: StatusArgs, config: Config) -> anyhow::Result<Outcome> {
    let report = Runner::new(config).status().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(Outcome::Clean)
}

pub async fn rollback(args: RollbackArgs, config: Config) -> anyhow::Result<Outcome> {
    let runner = Runner::new(config);
    if args.plan {
        return export_plan(&runner).await;
    }
    let reports = runner
        .rollback(
            args.to,
            &RollbackOptions {
                restore_store: args.restore_store,
                discard_writes_since_cutover: args.discard_writes_since_cutover,
                export_back: args.export_back,
                wait: wait(args.no_wait),
            },
        )
        .await?;
    if reports.is_empty() {
        println!("nothing to roll back: no phase above {} has run", args.to);
        return Ok(Outcome::Clean);
    }
    let mut clean = true;
    for r in &reports {
        println!(
            "rolled back {}: {}\n\n{}",
            r.phase,
            if r.passed {
                "verified"
            } else {
                "VERIFICATION FOUND DIFFERENCES"
            },
            r.table()
        );
        clean &= r.passed;
    }
    Ok(if clean {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// `rollback --export-back --plan`: the list, the counts and the JSON report; nothing changed.
async fn export_plan(runner: &Runner) -> anyhow::Result<Outcome> {
    let report = runner.export_plan().await?;
    let Some(at) = &report.cutover_at else {
        println!("no cutover is recorded: there is nothing written to PostgreSQL since to export");
        return Ok(Outcome::Clean);
    };
    println!(
        "export back to files of the writes since the cutover at {at} (plan: nothing is changed)\n"
    );
    for line in &report.lines {
        println!("  {line}");
    }
    let counts = &report.plan["counts"];
    println!(
        "\n{:<20} {:>8}\n{:<20} {:>8}\n{:<20} {:>8}\n{:<20} {:>8}\n{:<20} {:>8}",
        "files to write",
        counts["write"],
        "files to create",
        counts["create"],
        "files to remove",
        counts["remove"],
        "already as planned",
        counts["already_as_planned"],
        "unrenderable rows",
        counts["unrenderable_rows"]
    );
    if let Some(p) = &report.report {
        println!("\nJSON report: {}", p.display());
    }
    Ok(if report.rejects > 0 {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}
