//! `cargo xtask bench validate [--rows N]`: generates N rows into SQLite, transfers them into
//! a scratch PostgreSQL database with ferry's own transfer (timed), then times, in the same
//! run, a full validation with the transfer's plan and the location of 10 planted changes,
//! beside two floors: `SELECT count(*)` on both sides, and reading every value on both sides
//! (SQLite aggregates over every column, PostgreSQL binary `COPY … TO STDOUT`).

use ferry_core::sql::quote_ident as q;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_core::plan::TransferPlan;
use ferry_core::redact::SecretUrl;
use ferry_transfer::{execute, plan_derived, TransferOptions};
use ferry_validate::{validate, PgTarget, ValidateOptions};
use futures_util::StreamExt;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rows in the main table (a second table without primary key gets a tenth of that).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Timed runs of each measurement (the transfer included); the best is reported.
    #[arg(long, default_value_t = 2)]
    pub runs: u32,
    /// Keep the generated SQLite file in this directory and the scratch database (its name
    /// is printed), for profiling or inspection.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

/// The PostgreSQL schema the transfer creates and the validation reads.
const SCHEMA: &str = "bench";

/// Declared `JSON` and `TIMESTAMP` so that the derived transfer chooses `jsonb` and
/// `timestamptz`: the validation then canonicalises JSON and instants on both sides.
const SQLITE_SCHEMA: &str = "
CREATE TABLE events (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, doc JSON, created_at TIMESTAMP,
    score REAL, payload BLOB, note TEXT, flag INTEGER
);
CREATE TABLE event_tags (event_id INTEGER, tag TEXT);";

pub async fn run(args: Args) -> anyhow::Result<()> {
    let rows = args.rows.max(100);
    let runs = args.runs.max(1);
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let file = match &args.keep {
        Some(keep) => {
            std::fs::create_dir_all(keep)
                .with_context(|| format!("cannot create {}", keep.display()))?;
            let file = keep.join("bench.sqlite3");
            if file.exists() {
                std::fs::remove_file(&file)
                    .with_context(|| format!("cannot replace {}", file.display()))?;
            }
            file
        }
        None => dir.path().join("bench.sqlite3"),
    };
    eprintln!("generating {rows} rows into {}", file.display());
    let started = Instant::now();
    generate_sqlite(&file, rows).await?;
    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
    eprintln!(
        "  {:.1} s, {:.0} MB",
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );

    let db = crate::scratch_db::ScratchDb::create("bench_validate").await?;
    let outcome = bench(&file, &db.url, rows, runs).await;
    if args.keep.is_some() {
        println!(
            "kept: {} and database {} (schema {SCHEMA})",
            file.display(),
            db.name
        );
        return outcome;
    }
    // The scratch database goes whatever happened.
    db.drop_it().await;
    outcome
}

/// What reading every value of both sides took, in the fastest run.
struct RawRead {
    sqlite: Duration,
    postgres: Duration,
    copy_bytes: u64,
}

async fn bench(file: &Path, url: &str, rows: u64, runs: u32) -> anyhow::Result<()> {
    let total_rows = rows + rows / 10;
    let (transfer, plan) = transfer_best(file, url, runs, total_rows).await?;

    // Autovacuum would otherwise visit the freshly loaded tables during the timings.
    let mut pg = PgConnection::connect(url)
        .await
        .context("cannot connect to the scratch database")?;
    for t in &plan.tables {
        sqlx::raw_sql(&format!("VACUUM ANALYZE {}.{}", q(SCHEMA), q(&t.target)))
            .execute(&mut pg)
            .await?;
    }

    let target = PgTarget::new(url, SCHEMA);
    let options = ValidateOptions {
        progress: false,
        ..ValidateOptions::default()
    };

    // Warm both caches the same way before any timing.
    count_both(file, url, &plan).await?;
    read_both(file, url, &plan).await?;
    let (floor, ()) = best(runs.max(3), || count_both(file, url, &plan)).await?;
    let (read_floor, raw) = best(runs.max(3), || read_both(file, url, &plan)).await?;
    let (validation, ()) = best(runs, || async {
        let report = validate(file, &target, Some(&plan), &options).await?;
        anyhow::ensure!(
            report.equal,
            "the transferred data does not validate equal:\n{}\n{}",
            report.summary_table(),
            report.details()
        );
        Ok(())
    })
    .await?;

    // Ten changed rows spread through the table.
    let planted: Vec<i64> = (1..=10).map(|k| (rows * k / 11) as i64).collect();
    let list = planted
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let events = plan
        .table("events")
        .context("the plan has no events table")?;
    let column = |source: &str| {
        events
            .columns
            .iter()
            .find(|c| c.source == source)
            .map(|c| q(&c.target))
            .with_context(|| format!("the plan has no events.{source}"))
    };
    let (id, name) = (column("id")?, column("name")?);
    let updated = sqlx::query(&format!(
        "UPDATE {}.{} SET {name} = {name} || '!' WHERE {id} IN ({list})",
        q(SCHEMA),
        q(&events.target)
    ))
    .execute(&mut pg)
    .await?;
    anyhow::ensure!(updated.rows_affected() == 10, "planted {updated:?}");
    let (locate, located) = best(runs, || async {
        let report = validate(file, &target, Some(&plan), &options).await?;
        let t = &report.totals;
        anyhow::ensure!(
            (t.changed_rows, t.missing_rows, t.extra_rows) == (10, 0, 0),
            "expected exactly 10 changed rows:\n{}",
            report.summary_table()
        );
        let located: Vec<String> = report
            .tables
            .iter()
            .filter_map(|t| t.diff.as_ref())
            .flat_map(|d| d.changed_examples.iter().map(|e| e.key.join(",")))
            .collect();
        Ok(located)
    })
    .await?;
    let want: Vec<String> = planted.iter().map(i64::to_string).collect();
    anyhow::ensure!(located == want, "located {located:?}, planted {want:?}");

    let secs = |d: Duration| d.as_secs_f64();
    let types: Vec<String> = plan
        .tables
        .iter()
        .map(|t| {
            let cols: Vec<String> = t
                .columns
                .iter()
                .map(|c| format!("{} {}", c.target, c.target_type.sql()))
                .collect();
            format!("{}({})", t.target, cols.join(", "))
        })
        .collect();
    println!(
        "bench validate: {rows} rows in `events` (+{} in `event_tags`, no primary key), SQLite file {:.0} MB, {} cores, best of {runs} (floors: best of {})",
        rows / 10,
        std::fs::metadata(file).map_or(0, |m| m.len()) as f64 / 1e6,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        runs.max(3)
    );
    println!(
        "  PostgreSQL types chosen by the transfer: {}",
        types.join(", ")
    );
    println!(
        "  transfer (plan_derived + execute)              {:>8.3} s",
        secs(transfer)
    );
    println!(
        "  floor: count(*) on both sides, in parallel     {:>8.3} s",
        secs(floor)
    );
    println!(
        "  floor: every value read on both sides          {:>8.3} s  (SQLite max() of every column {:.3} s; PostgreSQL binary COPY TO STDOUT {:.3} s, {:.0} MB)",
        secs(read_floor),
        secs(raw.sqlite),
        secs(raw.postgres),
        raw.copy_bytes as f64 / 1e6
    );
    println!(
        "  full validation (equal data)                   {:>8.3} s  ({:.0} rows/s per side)",
        secs(validation),
        total_rows as f64 / secs(validation)
    );
    println!(
        "  locate 10 changed rows                         {:>8.3} s  (found: {})",
        secs(locate),
        located.join(" ")
    );
    println!(
        "  ratio validation / transfer                    {:>8.2}×  (target ≤ 1.0×)",
        secs(validation) / secs(transfer)
    );
    println!(
        "  ratio validation / count(*) floor              {:>8.2}×  (target ≤ 3×)",
        secs(validation) / secs(floor)
    );
    println!(
        "  ratio validation / read-every-value floor      {:>8.2}×",
        secs(validation) / secs(read_floor)
    );
    println!(
        "  ratio locate / validation                      {:>8.2}×  (target ≤ 2×)",
        secs(locate) / secs(validation)
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "validate",
            "rows": rows,
            "transfer_s": secs(transfer),
            "floor_s": secs(floor),
            "read_floor_s": secs(read_floor),
            "read_floor_sqlite_s": secs(raw.sqlite),
            "read_floor_postgres_s": secs(raw.postgres),
            "copy_bytes": raw.copy_bytes,
            "validation_s": secs(validation),
            "locate_s": secs(locate),
            "validation_over_transfer": secs(validation) / secs(transfer),
            "validation_over_floor": secs(validation) / secs(floor),
            "validation_over_read_floor": secs(validation) / secs(read_floor),
            "locate_over_validation": secs(locate) / secs(validation),
            "peak_rss_mb": crate::rss::peak_rss_mb(),
        })
    );
    crate::rss::print_own_peak("the transfers and validations ran in it");
    Ok(())
}

/// Transfers the file into [`SCHEMA`] with ferry (derived mode) `runs` times, each from an
/// empty database after a checkpoint, and returns the fastest wall time (planning
/// included, as `cargo xtask transfer` does it) and the plan of the copy left in place.
async fn transfer_best(
    file: &Path,
    url: &str,
    runs: u32,
    total_rows: u64,
) -> anyhow::Result<(Duration, TransferPlan)> {
    let target = PgTarget {
        url: SecretUrl::new(url),
        schema: SCHEMA.into(),
    };
    let opts = TransferOptions {
        progress: false,
        ..TransferOptions::default()
    };
    let mut fastest = Duration::MAX;
    let mut plan = None;
    for run in 1..=runs {
        let mut c = PgConnection::connect(url)
            .await
            .context("cannot connect to the scratch database")?;
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", q(SCHEMA)))
            .execute(&mut c)
            .await?;
        // Each run starts from a quiet server: the previous run's dirty pages are flushed.
        let _ = sqlx::raw_sql("CHECKPOINT").execute(&mut c).await;
        c.close().await?;
        eprintln!(
            "transferring into PostgreSQL with ferry (run {run} of {runs}, {} workers)",
            opts.workers
        );
        let started = Instant::now();
        let p = plan_derived(file, SCHEMA, &opts).await?;
        let report = execute(&p, &target, &opts).await?;
        let took = started.elapsed();
        eprintln!("  {:.1} s", took.as_secs_f64());
        anyhow::ensure!(
            report.is_clean(),
            "the transfer rejected or adjusted cells:\n{}",
            report.rejects_table(10)
        );
        let stored: u64 = report.tables.iter().map(|t| t.rows).sum();
        anyhow::ensure!(
            stored == total_rows,
            "the transfer stored {stored} rows of {total_rows}"
        );
        fastest = fastest.min(took);
        plan = Some(p);
    }
    Ok((fastest, plan.context("no transfer ran")?))
}

/// The best time of `runs` runs, and what the fastest run returned.
async fn best<T, F, Fut>(runs: u32, mut f: F) -> anyhow::Result<(Duration, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut fastest: Option<(Duration, T)> = None;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let value = f().await?;
        let took = started.elapsed();
        if fastest.as_ref().is_none_or(|(d, _)| took < *d) {
            fastest = Some((took, value));
        }
    }
    fastest.context("no run")
}

fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}?mode=ro", file.display())
}

/// `SELECT count(*)` of every table, SQLite and PostgreSQL in parallel.
async fn count_both(file: &Path, url: &str, plan: &TransferPlan) -> anyhow::Result<()> {
    let lite = async {
        let mut c = SqliteConnection::connect(&sqlite_url(file)).await?;
        let mut n = 0i64;
        for t in &plan.tables {
            n += sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {}", q(&t.source)))
                .fetch_one(&mut c)
                .await?;
        }
        c.close().await?;
        anyhow::Ok(n)
    };
    let pg = async {
        let mut c = PgConnection::connect(url).await?;
        let mut n = 0i64;
        for t in &plan.tables {
            n += sqlx::query_scalar::<_, i64>(&format!(
                "SELECT count(*) FROM {}.{}",
                q(SCHEMA),
                q(&t.target)
            ))
            .fetch_one(&mut c)
            .await?;
        }
        c.close().await?;
        anyhow::Ok(n)
    };
    let (a, b) = tokio::join!(lite, pg);
    anyhow::ensure!(a? == b?, "row counts differ");
    Ok(())
}

/// Reads every value of every table on both sides, in parallel, and does nothing with
/// them: SQLite takes `max()` of every column inside the engine (each value is loaded,
/// overflow pages included, and no row leaves SQLite); PostgreSQL sends each table as
/// binary COPY, the format the validation reads, whose bytes are counted and dropped. No
/// validation can read less.
async fn read_both(file: &Path, url: &str, plan: &TransferPlan) -> anyhow::Result<RawRead> {
    let started = Instant::now();
    let lite = async {
        let mut c = SqliteConnection::connect(&sqlite_url(file)).await?;
        for t in &plan.tables {
            let cols: Vec<String> = t
                .columns
                .iter()
                .map(|c| format!("max({})", q(&c.source)))
                .collect();
            sqlx::query(&format!("SELECT {} FROM {}", cols.join(", "), q(&t.source)))
                .fetch_one(&mut c)
                .await?;
        }
        c.close().await?;
        anyhow::Ok(started.elapsed())
    };
    let pg = async {
        let mut c = PgConnection::connect(url).await?;
        let mut bytes = 0u64;
        for t in &plan.tables {
            let mut stream = c
                .copy_out_raw(&format!(
                    "COPY {}.{} TO STDOUT (FORMAT binary)",
                    q(SCHEMA),
                    q(&t.target)
                ))
                .await?;
            while let Some(chunk) = stream.next().await {
                bytes += chunk?.len() as u64;
            }
        }
        c.close().await?;
        anyhow::Ok((started.elapsed(), bytes))
    };
    let (sqlite, pg) = tokio::join!(lite, pg);
    let (postgres, copy_bytes) = pg?;
    Ok(RawRead {
        sqlite: sqlite?,
        postgres,
        copy_bytes,
    })
}

async fn generate_sqlite(file: &Path, rows: u64) -> anyhow::Result<()> {
    // The generating statement is slow by design: keep sqlx from logging it as a warning.
    use sqlx::ConnectOptions;
    let mut c: SqliteConnection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .disable_statement_logging()
        .connect()
        .await?;
    sqlx::raw_sql(SQLITE_SCHEMA).execute(&mut c).await?;
    // Text, JSON text (keys in an order jsonb will not keep), ISO timestamps with
    // milliseconds, reals, blobs, NULLs, and a table without primary key with duplicates.
    let sql = format!(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows})
         INSERT INTO events SELECT i,
           'event ' || i || ' ' || substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26, 1 + i % 9),
           json_object('kind', CASE i % 4 WHEN 0 THEN 'click' WHEN 1 THEN 'view' WHEN 2 THEN 'buy' ELSE 'other' END,
                       'id', i, 'tags', json_array(i % 10, 'x' || (i % 3)), 'weight', (i % 1000) / 7.0),
           strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + i * 37 + (i % 1000) / 1000.0, 'unixepoch'),
           i * 0.1 / 3.0,
           randomblob(16 + i % 32),
           CASE WHEN i % 5 = 0 THEN NULL ELSE 'note ' || hex(randomblob(8)) END,
           i % 2
         FROM c;
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {tags})
         INSERT INTO event_tags SELECT i % 5000, 'tag-' || (i % 37) FROM c;",
        tags = rows / 10
    );
    sqlx::raw_sql(&sql).execute(&mut c).await?;
    c.close().await?;
    Ok(())
}
