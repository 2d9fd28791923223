//! `cargo xtask validate SQLITE_FILE POSTGRES_URL`: compare a SQLite file with a PostgreSQL
//! schema, print a verdict per table, write a JSON report; exit 0 equal, 1 different, 2 error.

use std::path::PathBuf;

use anyhow::Context;
use ferry_core::config::Config;
use ferry_core::plan::TransferPlan;
use ferry_validate::{validate, PgTarget, ValidateOptions, Verdict};

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The SQLite file (default: the config's `sqlite.path`).
    pub sqlite_file: Option<PathBuf>,
    /// The PostgreSQL URL (default: the config's `postgres.url`; prefer FERRY_POSTGRES_URL
    /// for a URL with a password).
    pub postgres_url: Option<String>,
    /// The schema holding the tables (default: the plan's, else the config's
    /// `postgres.schema`).
    #[arg(long)]
    pub schema: Option<String>,
    /// Compare only this SQLite table (repeatable).
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// The transfer plan (JSON) that renamed tables and columns and chose their types
    /// (default: the plan the transfer recorded in the target schema, if any).
    #[arg(long, value_name = "PLAN.json")]
    pub plan: Option<PathBuf>,
    /// Do not use the plan recorded in the target schema: match by name and read values
    /// by the target columns' types.
    #[arg(long)]
    pub ignore_recorded_plan: bool,
    /// Examples of each kind of difference shown per table.
    #[arg(long, default_value_t = 20)]
    pub max_examples: usize,
    /// Skip the constraint checks.
    #[arg(long)]
    pub no_constraints: bool,
    /// Compare ferry's own `ferry_*` tables too.
    #[arg(long)]
    pub include_ferry_tables: bool,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<Outcome> {
    let plan: Option<TransferPlan> = match &args.plan {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read plan {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("plan {} is not a transfer plan", path.display()))?,
            )
        }
        None => None,
    };
    let sqlite = args
        .sqlite_file
        .unwrap_or_else(|| config.sqlite.path.clone());
    let args_url_given = args.postgres_url.is_some();
    let url = args
        .postgres_url
        .unwrap_or_else(|| config.postgres.url.expose().to_owned());
    let schema = args
        .schema
        .or_else(|| {
            plan.as_ref()
                .map(|p| p.target_schema.clone())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| config.postgres.schema.clone());
    // Bad input first, each in one sentence: the SQLite file, then the server.
    ferry_core::sqlite_file::require(&sqlite)?;
    let setting = if args_url_given {
        "the POSTGRES_URL argument"
    } else {
        "postgres.url (FERRY_POSTGRES_URL)"
    };
    crate::ci::ensure_postgres_named(&url, setting).await?;
    let target = PgTarget::new(url, schema);
    let options = ValidateOptions {
        tables: args.tables,
        include_ferry_tables: args.include_ferry_tables,
        timestamps: config.timestamps.clone(),
        max_examples: args.max_examples,
        check_constraints: !args.no_constraints,
        recorded_plan: !args.ignore_recorded_plan,
        progress: true,
        ..ValidateOptions::default()
    };
    let report = validate(&sqlite, &target, plan.as_ref(), &options).await?;
    print!("{}", report.summary_table());
    let details = report.details();
    if !details.is_empty() {
        println!();
        print!("{details}");
    }
    let c = &report.constraints;
    if c.checked {
        println!(
            "\nconstraints: {} source constraints looked up ({} CHECKs), {} foreign keys checked for orphans, {} sequences checked, {} NOT VALID foreign keys validated, {} acknowledged as not carried over, {} findings",
            c.source_constraints,
            c.source_checks,
            c.target_foreign_keys,
            c.sequences,
            c.validated_foreign_keys.len(),
            c.acknowledged.len(),
            c.findings.len()
        );
        for note in &c.notes {
            println!("note: {note}");
        }
    }
    match &report.plan_source {
        Some(from) => println!("plan: {from}"),
        None => println!("plan: none; tables and columns matched by name, values read by the target columns' types"),
    }
    let path = ferry_core::fsutil::report_path(&config.state_dir, "validate", "json")
        .with_context(|| {
            format!(
                "cannot create the reports folder under {}",
                config.state_dir.display()
            )
        })?;
    ferry_core::fsutil::write_json(&path, &report)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let t = &report.totals;
    println!(
        "{}: {} tables, {} equal, {} different, {} errors; rows {} source / {} target; {} missing, {} extra, {} changed ({:.1} s)\nreport: {}",
        if report.equal { "EQUAL" } else { "DIFFERENT" },
        t.tables,
        t.tables_equal,
        t.tables_different,
        t.tables_error,
        t.source_rows,
        t.target_rows,
        t.missing_rows,
        t.extra_rows,
        t.changed_rows,
        report.elapsed_ms as f64 / 1000.0,
        path.display()
    );
    let errors: Vec<String> = report
        .tables
        .iter()
        .filter(|t| t.verdict == Verdict::Error)
        .map(|t| format!("{}: {}", t.name(), t.error.as_deref().unwrap_or("error")))
        .collect();
    if !errors.is_empty() {
        anyhow::bail!(
            "{} tables could not be compared ({}); report: {}",
            errors.len(),
            errors.join("; "),
            path.display()
        );
    }
    Ok(if report.equal {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
