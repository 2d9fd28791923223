//! `cargo xtask bench agentdb [--agents 16] [--seconds 30] [--iterations 300]`: the data
//! API on SQLite and on PostgreSQL, with the same generated data, in the same run:
//!
//! 1. each database gets ferry's schema and the same fixture, written through the API;
//! 2. the typical reads (`get_agent_status`, `get_agent_tasks`, an inbox page, the latest
//!    analysis, a configuration, a memory top-k) are timed one after another: p50/p95/p99;
//! 3. simulated agents run the realistic mix of reads and writes for the set time:
//!    throughput, errors, timeouts, deadlocks, retries, latency per operation;
//! 4. the ratios PostgreSQL / SQLite are printed (SQLite is the baseline), and everything is
//!    saved as JSON (`agentdb-bench.json` in the work directory).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use ferry_agentdb::harness::{self, FixtureSpec, LoadOptions, LoadReport, ReadReport};
use ferry_agentdb::{AgentDb, AgentDbOptions};
use ferry_core::table::Table;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Simulated agents in the concurrency run.
    #[arg(long, default_value_t = 16)]
    pub agents: usize,
    /// Length of each concurrency run, in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Timed calls of each typical read.
    #[arg(long, default_value_t = 300)]
    pub iterations: u32,
    /// Keep the databases and the JSON results in this directory (default: a temporary one).
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct Results {
    fixture: FixtureSpec,
    rows_written: u64,
    reads: Vec<ReadReport>,
    load: Vec<LoadReport>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.agents == 0 || args.seconds == 0 || args.iterations == 0 {
        bail!("--agents, --seconds and --iterations must be at least 1");
    }
    let server = ferry_core::env_vars::test_postgres_url();
    crate::ci::ensure_postgres(&server).await?;
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => tmp.path().to_owned(),
    };
    let sqlite_path = dir.join("agentdb-bench.sqlite3");
    if sqlite_path.exists() {
        bail!(
            "{} already exists; give --keep an empty directory",
            sqlite_path.display()
        );
    }
    let sqlite_url = format!("sqlite://{}", sqlite_path.display());
    migrate(&sqlite_url, None, ferry_migrations::SQLITE).await?;
    let pg = ferry_testkit::pg::ScratchDb::on(&server, "bench_agentdb").await;
    migrate(&pg.url, Some("public"), ferry_migrations::POSTGRES).await?;

    let spec = FixtureSpec {
        agents: args.agents.max(1),
        ..FixtureSpec::default()
    };
    let load = LoadOptions {
        agents: args.agents,
        duration: Duration::from_secs(args.seconds),
        ..LoadOptions::default()
    };
    let mut results = Results {
        fixture: spec.clone(),
        rows_written: 0,
        reads: Vec::new(),
        load: Vec::new(),
    };
    for (name, url) in [
        ("sqlite", sqlite_url.as_str()),
        ("postgres", pg.url.as_str()),
    ] {
        let db = AgentDb::connect(url, AgentDbOptions::default())
            .await
            .with_context(|| format!("opening the {name} database"))?;
        eprintln!(
            "{name}: writing the fixture through the API ({} agents)",
            spec.agents
        );
        let fixture = harness::seed(&db, &spec).await?;
        results.rows_written = fixture.rows_written;
        eprintln!(
            "{name}: timing {} calls of each typical read",
            args.iterations
        );
        results
            .reads
            .push(harness::measure_reads(&db, &fixture, args.iterations).await?);
        eprintln!(
            "{name}: {} simulated agents for {} s",
            load.agents, args.seconds
        );
        let bar = ferry_core::progress::Progress::new(name, "s", Some(args.seconds));
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    bar.inc(1, 0);
                }
            })
        };
        let report = harness::run_load(&db, &fixture, &load).await;
        ticker.abort();
        bar.finish();
        results.load.push(report);
        db.close().await;
    }

    print_reads(&results.reads);
    print_load(&results.load);
    crate::rss::print_own_peak("the data API's clients and simulated agents ran in it");
    let json = dir.join("agentdb-bench.json");
    ferry_core::fsutil::write_json(&json, &results)
        .with_context(|| format!("writing {}", json.display()))?;
    if args.keep.is_some() {
        println!("\nkept: {} (results in {})", dir.display(), json.display());
    }
    Ok(())
}

async fn migrate(url: &str, schema: Option<&str>, files: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut db = ferry_schema::Database::connect(url, schema).await?;
    let set = ferry_schema::MigrationSet::from_embedded(files)?;
    ferry_schema::migrate_to_head(&mut db, &set).await?;
    db.close().await;
    Ok(())
}

fn print_reads(reads: &[ReadReport]) {
    let [sqlite, pg] = reads else {
        return;
    };
    let mut t = Table::new([
        "read",
        "sqlite p50 ms",
        "p95",
        "p99",
        "postgres p50 ms",
        "p95",
        "p99",
        "p95 pg/sqlite",
    ]);
    for q in &sqlite.queries {
        let Some(p) = pg.query(&q.name) else { continue };
        t.row([
            q.name.clone(),
            format!("{:.3}", q.p50_ms),
            format!("{:.3}", q.p95_ms),
            format!("{:.3}", q.p99_ms),
            format!("{:.3}", p.p50_ms),
            format!("{:.3}", p.p95_ms),
            format!("{:.3}", p.p99_ms),
            format!("{:.2}", p.p95_ms / q.p95_ms.max(1e-9)),
        ]);
    }
    println!(
        "\ntypical reads, {} calls each, one at a time (baseline: SQLite)\n",
        sqlite.iterations
    );
    print!("{t}");
}

fn print_load(load: &[LoadReport]) {
    let mut t = Table::new([
        "backend",
        "agents",
        "ops",
        "ops/s",
        "errors",
        "error rate",
        "timeouts",
        "deadlocks",
        "retries",
        "stalled",
    ]);
    for r in load {
        t.row([
            r.backend.to_string(),
            r.agents.to_string(),
            r.total_ops.to_string(),
            format!("{:.0}", r.throughput_ops_per_s),
            r.errors.to_string(),
            format!("{:.5}", r.error_rate),
            r.timeouts.to_string(),
            r.deadlocks.to_string(),
            r.retries.retries.to_string(),
            r.stalled_agents.to_string(),
        ]);
    }
    println!("\nconcurrency run\n");
    print!("{t}");
    if let [sqlite, pg] = load {
        let mut ops = Table::new(["operation", "sqlite p95 ms", "postgres p95 ms", "pg/sqlite"]);
        for o in &sqlite.per_operation {
            if let Some(p) = pg.per_operation.iter().find(|p| p.name == o.name) {
                ops.row([
                    o.name.clone(),
                    format!("{:.3}", o.p95_ms),
                    format!("{:.3}", p.p95_ms),
                    format!("{:.2}", p.p95_ms / o.p95_ms.max(1e-9)),
                ]);
            }
        }
        println!("\nlatency under load\n");
        print!("{ops}");
        println!(
            "\npostgres / sqlite throughput: {:.2}× ({:.0} vs {:.0} ops/s); errors {} vs {}",
            pg.throughput_ops_per_s / sqlite.throughput_ops_per_s.max(1e-9),
            pg.throughput_ops_per_s,
            sqlite.throughput_ops_per_s,
            pg.errors,
            sqlite.errors
        );
        for e in sqlite.error_samples.iter().chain(&pg.error_samples) {
            println!("  error: {e}");
        }
    }
}
