//! `cargo xtask bench sync [--secs 60] [--rates 1000,5000]`: phase 4 under load. A separate
//! writer process (this program, `bench sync --writer …`) runs ferry's agent-store write
//! mix on SQLite (inserts, updates, deletes, INSERT OR REPLACE, UPSERT, key changes,
//! multi-row transactions) at each rate while the follower syncs; then prints lag p50, p99
//! and max, the backlog's trend, and apply throughput beside a floor measured in the same
//! run: the same changes (the same keys' final rows) applied by a bare batched loop (stage
//! with binary COPY, delete the keys, insert) with no change log, no bookkeeping and no
//! cursor, as a ratio.
//!
//! `--files` runs the file variant instead (`bench_sync_files`): files created, rewritten
//! and deleted in the store at `--file-rate` files/s while the follower imports and syncs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_core::pgcopy::cell::{Cell, OwnedCell};
use ferry_core::pgcopy::{self, ConvertOptions, SubMicrosecond};
use ferry_core::plan::TransferPlan;
use ferry_core::redact::SecretUrl;
use ferry_core::sql::{qualified, quote_ident};
use ferry_sync::{
    Applier, Follower, FollowerOptions, InstallOptions, NoHook, SyncOptions, SyncTarget,
};
use ferry_testkit::sync_writer::{self, WriterConfig};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds the writer runs at each rate.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Writer rates, in row writes per second.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub rates: Vec<u64>,
    /// Agents in the generated store (each brings tasks, messages, metrics, memories).
    #[arg(long, default_value_t = 40)]
    pub agents: usize,
    /// Writes of the throughput burst (written with the follower stopped, then drained).
    #[arg(long, default_value_t = 30_000)]
    pub burst: u64,
    /// `sync.batch_changes`.
    #[arg(long, default_value_t = 5_000)]
    pub batch: u64,
    /// `sync.workers`.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// `sync.interval_ms`.
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
    /// The file variant: a writer creates, rewrites and deletes files in the store at
    /// `--file-rate` files/s while the follower imports and syncs them.
    #[arg(long)]
    pub files: bool,
    /// Files per second of the file variant's writer.
    #[arg(long, default_value_t = 200)]
    pub file_rate: u64,
    /// Files of the file variant's throughput burst.
    #[arg(long, default_value_t = 2_000)]
    pub file_burst: u64,
    /// Run as the writer process on this SQLite file (used by the benchmark itself).
    #[arg(long, hide = true)]
    pub writer: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 0)]
    pub rate: u64,
    #[arg(long, hide = true, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, hide = true)]
    pub max_writes: Option<u64>,
}

pub(crate) const SCHEMA: &str = "bench";
const FLOOR: &str = "floor";

pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(file) = &args.writer {
        return writer_process(file, &args);
    }
    let db = crate::scratch_db::ScratchDb::create("bench_sync").await?;
    let outcome = if args.files {
        crate::bench_sync_files::bench(&db.url, &args).await
    } else {
        sql_bench(&db.url, &args).await
    };
    db.drop_it().await;
    outcome
}

async fn sql_bench(url: &str, args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let file = dir.path().join("bench.sqlite3");
    eprintln!("generating {} agents into {}", args.agents, file.display());
    generate(&file, args.agents)?;
    bench(&file, url, args).await
}

fn generate(file: &Path, agents: usize) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(file)?;
    for (name, sql) in ferry_migrations::SQLITE
        .iter()
        .filter(|(n, _)| n.ends_with(".up.sql"))
    {
        conn.execute_batch(sql)
            .with_context(|| format!("applying {name}"))?;
    }
    drop(conn);
    ferry_testkit::sqlite_gen::agent_store(file, agents)?;
    sync_writer::normalise_agent_store(file)?;
    sync_writer::use_wal(file)?;
    Ok(())
}

/// Applies `migrations/postgres` into `schema` and copies the SQLite file into it (phase 3).
pub(crate) async fn load(file: &Path, url: &str, schema: &str) -> anyhow::Result<TransferPlan> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute(
        format!(
            "CREATE SCHEMA {}; SET search_path TO {}",
            quote_ident(schema),
            quote_ident(schema)
        )
        .as_str(),
    )
    .await?;
    for (name, sql) in ferry_migrations::POSTGRES
        .iter()
        .filter(|(n, _)| n.ends_with(".up.sql"))
    {
        conn.execute(*sql)
            .await
            .with_context(|| format!("applying {name}"))?;
    }
    conn.close().await?;
    let target = ferry_transfer::PgTarget {
        url: SecretUrl::new(url),
        schema: schema.into(),
    };
    let opts = ferry_transfer::TransferOptions {
        progress: false,
        ..ferry_transfer::TransferOptions::default()
    };
    let plan = ferry_transfer::plan_managed(file, &target, &opts).await?;
    let report = ferry_transfer::execute(&plan, &target, &opts).await?;
    anyhow::ensure!(
        report.is_clean(),
        "the bulk copy rejected rows:\n{}",
        report.summary_table()
    );
    Ok(plan)
}

fn spawn_writer(
    file: &Path,
    rate: u64,
    secs: Option<u64>,
    max: Option<u64>,
    seed: u64,
) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("cannot find this program to run the writer")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["bench", "sync", "--writer"])
        .arg(file)
        .args(["--rate", &rate.to_string(), "--seed", &seed.to_string()])
        .args(["--secs", &secs.unwrap_or(0).to_string()])
        .stdout(std::process::Stdio::piped());
    if let Some(m) = max {
        cmd.args(["--max-writes", &m.to_string()]);
    }
    Ok(cmd.spawn()?)
}

fn writer_process(file: &Path, args: &Args) -> anyhow::Result<()> {
    let cfg = WriterConfig {
        rate: args.rate,
        seed: args.seed,
        max_writes: args.max_writes,
        duration: (args.secs > 0).then(|| Duration::from_secs(args.secs)),
        prefix: format!("b{}", args.seed),
        spare_imported: false,
    };
    let started = Instant::now();
    let stats = sync_writer::run(file, &cfg, &AtomicBool::new(false))?;
    println!(
        "{} {} {:.3}",
        stats.writes,
        stats.transactions,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `(writes, transactions, seconds)` the writer printed.
fn writer_result(child: std::process::Child) -> anyhow::Result<(u64, u64, f64)> {
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "the writer process failed ({})",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let w = it.next().context("writer output")?.parse()?;
    let t = it.next().context("writer output")?.parse()?;
    let s = it.next().context("writer output")?.parse()?;
    Ok((w, t, s))
}

async fn bench(file: &Path, url: &str, args: &Args) -> anyhow::Result<()> {
    eprintln!("phase 3: copying into PostgreSQL");
    let plan = load(file, url, SCHEMA).await?;
    ferry_sync::install(file, &plan, &InstallOptions::default())?;
    let target = SyncTarget {
        url: SecretUrl::new(url),
        schema: SCHEMA.into(),
    };
    let options = SyncOptions {
        batch_changes: args.batch,
        workers: args.workers,
        ..SyncOptions::default()
    };
    {
        let mut a = Applier::open(file, &target, &plan, &options, true).await?;
        a.full_pass().await?;
        a.close().await;
    }
    let mut rows = Vec::new();
    for (i, &rate) in args.rates.iter().enumerate() {
        eprintln!(
            "writer at {rate} writes/s for {} s, follower every {} ms",
            args.secs, args.interval_ms
        );
        let applier = Applier::open(file, &target, &plan, &options, true).await?;
        let mut follower = Follower::new(
            applier,
            FollowerOptions {
                interval: Duration::from_millis(args.interval_ms),
                progress: true,
                ..FollowerOptions::default()
            },
        );
        let handle = follower.handle();
        let task = tokio::spawn(async move {
            let res = follower.run(&mut NoHook).await;
            (follower, res)
        });
        let writer = spawn_writer(file, rate, Some(args.secs), None, 100 + i as u64)?;
        let (writes, _tx, secs) =
            tokio::task::spawn_blocking(move || writer_result(writer)).await??;
        // Let the follower catch up with the last writes, then stop it.
        tokio::time::sleep(Duration::from_millis(args.interval_ms * 3 + 500)).await;
        handle.stop.trigger();
        let (follower, res) = task.await?;
        let summary = res?;
        let points = &follower.series().points;
        let behind: Vec<u64> = points.iter().map(|p| p.changes_behind).collect();
        let third = (behind.len() / 3).max(1);
        let mean = |s: &[u64]| {
            if s.is_empty() {
                0.0
            } else {
                s.iter().sum::<u64>() as f64 / s.len() as f64
            }
        };
        let first = mean(&behind[..third.min(behind.len())]);
        let last = mean(&behind[behind.len().saturating_sub(third)..]);
        let growing = last > (2.0 * first).max(args.batch as f64);
        let mut a = follower.into_applier();
        let drained = a.drain().await?;
        a.close().await;
        rows.push((
            rate,
            writes as f64 / secs,
            summary,
            first,
            last,
            growing,
            drained.changes,
        ));
    }

    // Throughput: a burst written with no follower, then drained; the same changes by the
    // bare loop into a copy of the same starting state.
    eprintln!("throughput: copying the current state into the floor schema");
    let floor_plan = load(file, url, FLOOR).await?;
    let before: i64 = rusqlite::Connection::open(file)?.query_row(
        "SELECT coalesce(max(seq), 0) FROM ferry_sync_log",
        [],
        |r| r.get(0),
    )?;
    eprintln!("throughput: writing a burst of {} writes", args.burst);
    let writer = spawn_writer(file, 0, None, Some(args.burst), 999)?;
    tokio::task::spawn_blocking(move || writer_result(writer)).await??;
    let pending = pending_keys(file, before)?;
    let n_changes: u64 = pending.iter().map(|b| b.entries).sum();
    let mut a = Applier::open(file, &target, &plan, &options, true).await?;
    let started = Instant::now();
    let drained = a.drain().await?;
    let ours = started.elapsed();
    a.close().await;
    anyhow::ensure!(
        drained.changes == n_changes,
        "drained {} of {n_changes} changes",
        drained.changes
    );
    let floor = bare_apply(file, url, &floor_plan, &pending).await?;
    let ours_rate = n_changes as f64 / ours.as_secs_f64();
    let floor_rate = n_changes as f64 / floor.as_secs_f64();

    println!();
    println!("sync lag under load (agent-store mix, {} s per rate, batch {}, workers {}, interval {} ms)", args.secs, args.batch, args.workers, args.interval_ms);
    let mut t = ferry_core::table::Table::new([
        "target writes/s",
        "achieved",
        "changes",
        "lag p50",
        "lag p99",
        "lag max",
        "backlog first/last third",
        "backlog max",
        "backlog",
    ]);
    for (rate, achieved, s, first, last, growing, _) in &rows {
        t.row([
            rate.to_string(),
            format!("{achieved:.0}"),
            s.changes.to_string(),
            ms(s.lag_p50_ms),
            ms(s.lag_p99_ms),
            ms(s.lag_max_ms),
            format!("{first:.0} / {last:.0}"),
            s.max_changes_behind.to_string(),
            if *growing {
                "GROWING".into()
            } else {
                "steady".to_string()
            },
        ]);
    }
    print!("{t}");
    println!();
    let mut t = ferry_core::table::Table::new([
        "apply of a backlog",
        "changes",
        "seconds",
        "changes/s",
        "ratio",
    ]);
    t.row([
        "ferry-sync (log, bookkeeping, cursor)".to_string(),
        n_changes.to_string(),
        format!("{:.2}", ours.as_secs_f64()),
        format!("{ours_rate:.0}"),
        format!("{:.2}x", ours_rate / floor_rate),
    ]);
    t.row([
        "floor: bare batched delete + insert".to_string(),
        n_changes.to_string(),
        format!("{:.2}", floor.as_secs_f64()),
        format!("{floor_rate:.0}"),
        "1.00x".into(),
    ]);
    print!("{t}");
    println!("targets: p99 lag < 1 s at 1,000 writes/s; backlog steady at 5,000 writes/s; throughput >= 0.5x the floor");
    crate::rss::print_own_peak("the follower ran in it; the writer is a child");
    Ok(())
}

pub(crate) fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0} ms"))
}

/// One batch of the pending log: the distinct keys per table.
struct PendingBatch {
    entries: u64,
    keys: HashMap<String, Vec<Vec<OwnedCell>>>,
}

/// The log after `after`, in batches of the same size the follower uses.
fn pending_keys(file: &Path, after: i64) -> anyhow::Result<Vec<PendingBatch>> {
    let conn = rusqlite::Connection::open(file)?;
    let width: usize = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('ferry_sync_log') WHERE name LIKE 'k%'",
        [],
        |r| r.get::<_, i64>(0),
    )? as usize;
    let cols: Vec<String> = (1..=width).map(|i| format!("k{i}")).collect();
    let mut st = conn.prepare(&format!(
        "SELECT tbl, {} FROM ferry_sync_log WHERE seq > ?1 ORDER BY seq",
        cols.join(", ")
    ))?;
    let mut rows = st.query([after])?;
    let mut out: Vec<PendingBatch> = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    while let Some(r) = rows.next()? {
        if out.last().is_none_or(|b| b.entries >= 5_000) {
            out.push(PendingBatch {
                entries: 0,
                keys: HashMap::new(),
            });
            seen.clear();
        }
        let b = out.last_mut().expect("pushed");
        b.entries += 1;
        let tbl: String = r.get(0)?;
        let key: Vec<OwnedCell> = (0..width)
            .map(|i| cell(r.get_ref(1 + i).expect("column")).to_owned_cell())
            .take_while(|c| *c != OwnedCell::Null)
            .collect();
        if seen.insert((tbl.clone(), format!("{key:?}"))) {
            b.keys.entry(tbl).or_default().push(key);
        }
    }
    Ok(out)
}

fn cell(v: rusqlite::types::ValueRef<'_>) -> Cell<'_> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Integer(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) => Cell::Text(t),
        ValueRef::Blob(b) => Cell::Blob(b),
    }
}

fn owned(c: &OwnedCell) -> Cell<'_> {
    match c {
        OwnedCell::Null => Cell::Null,
        OwnedCell::Integer(i) => Cell::Integer(*i),
        OwnedCell::Real(f) => Cell::Real(*f),
        OwnedCell::Text(t) => Cell::Text(t),
        OwnedCell::Blob(b) => Cell::Blob(b),
    }
}

/// The floor, on one connection: per batch and table, the keys' rows read from SQLite and converted with the
/// same conversions, then in one transaction per batch: keys and rows staged by binary
/// COPY, the keys deleted, the rows inserted (`ON CONFLICT DO NOTHING` stands in for the
/// unique-victim handling it does not do).
/// Returns the time of the apply itself (connecting and creating the staging tables are
/// left out, as opening the applier is for ferry-sync).
async fn bare_apply(
    file: &Path,
    url: &str,
    plan: &TransferPlan,
    batches: &[PendingBatch],
) -> anyhow::Result<Duration> {
    let conv = ConvertOptions {
        naive_offset: 0,
        sub_microsecond: SubMicrosecond::Reject,
    };
    let lite = rusqlite::Connection::open(file)?;
    let mut pg = PgConnection::connect(url).await?;
    // Foreign-key actions off, as ferry-sync applies: the tables of a batch go in any order.
    pg.execute("SET session_replication_role = replica").await?;
    for (i, t) in plan.tables.iter().enumerate() {
        let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.target)).collect();
        let key: Vec<String> = t
            .primary_key
            .iter()
            .map(|k| {
                quote_ident(
                    &t.columns
                        .iter()
                        .find(|c| &c.source == k)
                        .expect("key column")
                        .target,
                )
            })
            .collect();
        pg.execute(
            format!(
                "CREATE TEMP TABLE s{i} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA;
             CREATE TEMP TABLE k{i} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA;",
                cols.join(", "),
                qualified(FLOOR, &t.target),
                key.join(", "),
                qualified(FLOOR, &t.target)
            )
            .as_str(),
        )
        .await?;
    }
    let started = Instant::now();
    for b in batches {
        // One SQLite read transaction per batch, as ferry-sync reads.
        lite.execute_batch("BEGIN")?;
        pg.execute("BEGIN").await?;
        for (i, t) in plan.tables.iter().enumerate() {
            let Some(keys) = b.keys.get(&t.source) else {
                continue;
            };
            let kpos: Vec<usize> = t
                .primary_key
                .iter()
                .map(|k| t.columns.iter().position(|c| &c.source == k).expect("key"))
                .collect();
            let cond: Vec<String> = t
                .primary_key
                .iter()
                .enumerate()
                .map(|(j, k)| format!("{} = ?{}", quote_ident(k), j + 1))
                .collect();
            let sql = format!(
                "SELECT {} FROM {} WHERE {}",
                t.columns
                    .iter()
                    .map(|c| quote_ident(&c.source))
                    .collect::<Vec<_>>()
                    .join(", "),
                quote_ident(&t.source),
                cond.join(" AND ")
            );
            let mut st = lite.prepare_cached(&sql)?;
            let (mut rows, mut kbuf) = (Vec::new(), Vec::new());
            for k in keys {
                pgcopy::begin_row(&mut kbuf, k.len());
                for (j, c) in k.iter().enumerate() {
                    pgcopy::write_field(
                        &mut kbuf,
                        &t.columns[kpos[j]].target_type,
                        owned(c),
                        &conv,
                    )
                    .map_err(|e| anyhow::anyhow!(e.reason))?;
                }
                let params: Vec<rusqlite::types::Value> = k
                    .iter()
                    .map(|c| match c {
                        OwnedCell::Null => rusqlite::types::Value::Null,
                        OwnedCell::Integer(i) => rusqlite::types::Value::Integer(*i),
                        OwnedCell::Real(f) => rusqlite::types::Value::Real(*f),
                        OwnedCell::Text(t) => {
                            rusqlite::types::Value::Text(String::from_utf8_lossy(t).into_owned())
                        }
                        OwnedCell::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
                    })
                    .collect();
                let mut q = st.query(rusqlite::params_from_iter(params))?;
                if let Some(r) = q.next()? {
                    pgcopy::begin_row(&mut rows, t.columns.len());
                    for (j, c) in t.columns.iter().enumerate() {
                        pgcopy::write_field(&mut rows, &c.target_type, cell(r.get_ref(j)?), &conv)
                            .map_err(|e| anyhow::anyhow!(e.reason))?;
                    }
                }
            }
            for (table, data) in [(format!("k{i}"), &kbuf), (format!("s{i}"), &rows)] {
                let mut copy = pg
                    .copy_in_raw(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
                    .await?;
                copy.send(pgcopy::HEADER).await?;
                copy.send(data.as_slice()).await?;
                copy.send(&pgcopy::TRAILER[..]).await?;
                copy.finish().await?;
            }
            let key: Vec<String> = t
                .primary_key
                .iter()
                .map(|k| {
                    quote_ident(
                        &t.columns
                            .iter()
                            .find(|c| &c.source == k)
                            .expect("key")
                            .target,
                    )
                })
                .collect();
            let on: Vec<String> = key.iter().map(|k| format!("t.{k} = k.{k}")).collect();
            let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.target)).collect();
            pg.execute(format!(
                "DELETE FROM {tq} t USING k{i} k WHERE {on}; INSERT INTO {tq} ({cols}) SELECT {cols} FROM s{i} ON CONFLICT DO NOTHING;",
                tq = qualified(FLOOR, &t.target), on = on.join(" AND "), cols = cols.join(", ")
            ).as_str()).await?;
        }
        pg.execute("COMMIT").await?;
        lite.execute_batch("COMMIT")?;
    }
    let took = started.elapsed();
    pg.close().await?;
    Ok(took)
}
