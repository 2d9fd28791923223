//! `cargo xtask bench transfer [--scale N]`: generates a realistic SQLite file (~270,000 rows
//! per unit of scale), then measures in the same run, each into its own scratch database:
//!
//! - **floor**: the `sqlite3` shell's CSV output piped into `psql \copy`, two tables at a
//!   time, then the same primary keys and indexes, two at a time;
//! - **ferry**: the release xtask binary as a child process (`transfer`), so its own peak
//!   RSS is measured;
//! - **server floor**: what PostgreSQL itself ingests: the rows ferry loaded, written to
//!   server-side binary COPY files and loaded into a fresh schema two streams at a time, then
//!   the same keys and indexes (the strongest floor; ferry's target is ≤ 1.2× it);
//! - **pgloader**, when installed (skipped with a note otherwise).
//!
//! Prints each wall time, peak RSS (from `/usr/bin/time`, or `/proc` polling when it is
//! missing) and the ratios. Targets: ferry ≤ 1.0× the floor, ≥ 3× faster than pgloader,
//! peak RSS ≤ 256 MB.

use ferry_core::sql::quote_ident as q;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use ferry_core::plan::{TargetType, TransferPlan};
use ferry_core::table::Table;
use sqlx::postgres::PgConnection;
use sqlx::{ConnectOptions, Connection};
use tokio::process::Command;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Size of the generated file: ~270,000 rows per unit (10 ≈ 2.7M rows, ~1 GB).
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Parallel connections for ferry (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// PostgreSQL server to create the scratch databases on (default: the test server).
    #[arg(long)]
    pub url: Option<String>,
    /// Where the generated file is kept between runs (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Generate the file again even when it exists.
    #[arg(long)]
    pub regenerate: bool,
    /// Do not run pgloader even when it is installed.
    #[arg(long)]
    pub skip_pgloader: bool,
    /// Measure ferry as it copies a file that may be written meanwhile (one reader per
    /// table), instead of as phase 3 copies its snapshot (one reader per worker,
    /// `--source-immutable`).
    #[arg(long)]
    pub live_source: bool,
}

/// Indexes of the benchmark schema besides primary keys (`ferry_testkit::sqlite_gen::BENCH_SCHEMA`).
const BENCH_INDEXES: &[(&str, &str, &[&str], bool)] = &[
    ("events_agent_id_idx", "events", &["agent_id"], false),
    ("events_occurred_at_idx", "events", &["occurred_at"], false),
    (
        "metrics_agent_recorded_idx",
        "metrics",
        &["agent_id", "recorded_at"],
        false,
    ),
    ("documents_path_key", "documents", &["path"], true),
];

/// One measured run.
struct Measured {
    seconds: f64,
    peak_rss_kb: u64,
    status: String,
    /// CPU seconds the PostgreSQL server's processes spent during the timed part.
    server_cpu_s: Option<f64>,
    /// CPU seconds of the loading client's own processes (ferry; sqlite3 and psql).
    client_cpu_s: Option<f64>,
    /// Bytes of WAL the server wrote during the run (`pg_current_wal_lsn` before and after).
    wal_bytes: Option<u64>,
}

/// CPU time of the PostgreSQL server, read from /proc: every `postgres` process's user and
/// system time, plus what the postmaster collected from the backends that exited.
struct CpuMark {
    server_ticks: Option<u64>,
}

impl CpuMark {
    fn now() -> Self {
        Self {
            server_ticks: server_ticks(),
        }
    }

    fn server_seconds(&self) -> Option<f64> {
        let (a, b) = (self.server_ticks?, server_ticks()?);
        Some(b.saturating_sub(a) as f64 / clock_ticks_per_second())
    }
}

fn server_ticks() -> Option<u64> {
    let mut total = 0;
    let mut seen = false;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: fields after the command name, which may hold spaces.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime, stime, cutime, cstime are fields 14–17 of stat: 12–15 after the comm.
        let ticks: u64 = f
            .get(11..15)
            .into_iter()
            .flatten()
            .filter_map(|x| x.parse::<u64>().ok())
            .sum();
        total += ticks;
        seen = true;
    }
    seen.then_some(total)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// What `/usr/bin/time -f '%U %S\n%M'` wrote: peak RSS in kB, and user + system seconds.
fn read_time_file(path: &Path) -> (Option<u64>, Option<f64>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (None, None);
    };
    let lines: Vec<&str> = text.trim().lines().collect();
    let kb = lines.last().and_then(|l| l.trim().parse().ok());
    let cpu = lines.iter().rev().nth(1).and_then(|l| {
        let v: Vec<f64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 2).then(|| v[0] + v[1])
    });
    (kb, cpu)
}

fn sh(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn have(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let scale = args.scale.max(1);
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("ferry-bench"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("transfer-scale-{scale}.sqlite"));
    if args.regenerate || !file.is_file() {
        let tmp = dir.join(format!("transfer-scale-{scale}.sqlite.partial"));
        let _ = std::fs::remove_file(&tmp);
        eprintln!("generating {} (scale {scale}) …", file.display());
        let started = Instant::now();
        let t = tmp.clone();
        let summary =
            tokio::task::spawn_blocking(move || ferry_testkit::sqlite_gen::bench(&t, scale))
                .await??;
        std::fs::rename(&tmp, &file)?;
        eprintln!(
            "generated {} rows in {:.1} s",
            summary.rows(),
            started.elapsed().as_secs_f64()
        );
    }
    let file = std::fs::canonicalize(&file)?;
    let size_mb = std::fs::metadata(&file)?.len() as f64 / 1e6;
    for tool in ["sqlite3", "psql"] {
        if have(tool).is_none() {
            bail!("`{tool}` is not installed; the floor needs the sqlite3 shell and psql (apt-get install sqlite3 postgresql-client)");
        }
    }
    let server = args
        .url
        .clone()
        .unwrap_or_else(ferry_core::env_vars::test_postgres_url);
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let tag = format!("ferry_bench_{}", std::process::id());
    let (floor_db, ferry_db, pgl_db) = (
        format!("{tag}_floor"),
        format!("{tag}_ferry"),
        format!("{tag}_pgloader"),
    );
    let admin_options = std::str::FromStr::from_str(&server)
        .map(|o: sqlx::postgres::PgConnectOptions| o.disable_statement_logging())
        .with_context(|| format!("reading {}", ferry_core::redact::redact(&server)))?;
    let mut admin = PgConnection::connect_with(&admin_options)
        .await
        .with_context(|| format!("connecting to {}", ferry_core::redact::redact(&server)))?;
    for db in [&floor_db, &ferry_db, &pgl_db] {
        sqlx::raw_sql(&format!("CREATE DATABASE {}", q(db)))
            .execute(&mut admin)
            .await?;
    }
    let result = measure_all(
        &args,
        &file,
        &server,
        workers,
        [&floor_db, &ferry_db, &pgl_db],
    )
    .await;
    for db in [&floor_db, &ferry_db, &pgl_db] {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", q(db)))
            .execute(&mut admin)
            .await;
    }
    let (rows, floor, ferry, pgloader, server_floor) = result?;
    let wal_level: Option<String> = sqlx::query_scalar("SHOW wal_level")
        .fetch_one(&mut admin)
        .await
        .ok();

    println!("\ntransfer benchmark: scale {scale}, {rows} rows, {size_mb:.0} MB SQLite file, {workers} ferry workers, {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    let mut t = Table::new([
        "tool",
        "seconds",
        "rows/s",
        "peak RSS MB",
        "server CPU s",
        "client CPU s",
        "WAL MB",
        "vs floor",
        "status",
    ]);
    let cpu = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"));
    let mut line = |name: &str, m: &Measured| {
        t.row([
            name.to_owned(),
            format!("{:.2}", m.seconds),
            format!("{:.0}", rows as f64 / m.seconds.max(1e-6)),
            format!("{:.0}", m.peak_rss_kb as f64 / 1024.0),
            cpu(m.server_cpu_s),
            cpu(m.client_cpu_s),
            m.wal_bytes
                .map_or_else(|| "-".to_owned(), |b| format!("{:.0}", b as f64 / 1e6)),
            format!("{:.2}x", m.seconds / floor.seconds.max(1e-6)),
            m.status.clone(),
        ]);
    };
    line(
        "floor: sqlite3 | psql \\copy, 2 at a time, + keys/indexes",
        &floor,
    );
    if let Ok(m) = &server_floor {
        line(
            "server floor: binary COPY of server-side files, 2 at a time, + keys/indexes",
            m,
        );
    }
    line(
        if args.live_source {
            "ferry transfer (live source: one reader per table)"
        } else {
            "ferry transfer (unchanging source, as phase 3: one reader per worker)"
        },
        &ferry,
    );
    if let Some(m) = &pgloader {
        line("pgloader", m);
    }
    print!("{t}");
    println!(
        "ferry / floor: {:.2}x (target <= 1.0x)",
        ferry.seconds / floor.seconds.max(1e-6)
    );
    match &server_floor {
        Ok(m) => {
            println!(
                "ferry / server floor: {:.2}x (target <= 1.2x)",
                ferry.seconds / m.seconds.max(1e-6)
            );
            // On a machine where ferry and the server share the cores, the CPU both need
            // bounds the wall time from below: what stands between ferry and the floor.
            if let (Some(fs), Some(fc), Some(ss)) =
                (ferry.server_cpu_s, ferry.client_cpu_s, m.server_cpu_s)
            {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                println!(
                    "CPU: ferry's run used {:.2} s of server CPU and {fc:.2} s of its own ({:.2} s in all) against the server floor's {ss:.2} s; on {cores} cores that alone takes at least {:.2} s ({:.2}x the server floor)",
                    fs,
                    fs + fc,
                    (fs + fc) / cores,
                    (fs + fc) / cores / m.seconds.max(1e-6)
                );
            }
        }
        Err(why) => println!("server floor: not measured: {why}"),
    }
    match &pgloader {
        Some(m) if m.status != "ok" => println!(
            "pgloader / ferry: no ratio, pgloader did not finish ({} after {:.1} s, {:.0} MB peak RSS)",
            m.status,
            m.seconds,
            m.peak_rss_kb as f64 / 1024.0
        ),
        Some(m) => println!(
            "pgloader / ferry: {:.2}x (target >= 3x)",
            m.seconds / ferry.seconds.max(1e-6)
        ),
        None if args.skip_pgloader => println!("pgloader: skipped (--skip-pgloader)"),
        None => println!("pgloader: skipped, not installed (apt-get install pgloader to compare)"),
    }
    println!(
        "ferry peak RSS: {:.0} MB (target <= 256 MB)",
        ferry.peak_rss_kb as f64 / 1024.0
    );
    if let Some(level) = wal_level {
        println!(
            "WAL: wal_level = {level}; {}",
            if level == "minimal" {
                "a table created in the loading transaction could skip WAL, but ferry commits each chunk with its checkpoint, so its tables are created before the load"
            } else {
                "every loaded row is written to WAL by every tool (skipping it needs wal_level = minimal and a table created in the loading transaction)"
            }
        );
    }
    Ok(())
}

async fn measure_all(
    args: &Args,
    file: &Path,
    server: &str,
    workers: usize,
    [floor_db, ferry_db, pgl_db]: [&String; 3],
) -> anyhow::Result<(
    u64,
    Measured,
    Measured,
    Option<Measured>,
    Result<Measured, String>,
)> {
    let with_db = |db: &str| ferry_testkit::pg::with_database(server, db);
    // The floor's tables get the types ferry chooses, so both load the same columns.
    let opts = ferry_transfer::TransferOptions {
        progress: false,
        ..Default::default()
    };
    let plan = ferry_transfer::plan_derived(file, "floor", &opts).await?;
    let rows: u64 = plan.tables.iter().map(|t| t.source_rows).sum();

    // Each tool starts from a quiet server: the previous one's dirty pages are flushed.
    let settle = || async {
        if let Ok(mut c) = PgConnection::connect(server).await {
            let _ = sqlx::raw_sql("CHECKPOINT").execute(&mut c).await;
        }
    };
    settle().await;
    eprintln!("measuring the floor (sqlite3 | psql) …");
    let wal = wal_lsn(server).await;
    let mut floor = floor(file, &with_db(floor_db), &plan).await?;
    floor.wal_bytes = wal_since(server, wal).await;
    settle().await;
    eprintln!("measuring ferry …");
    let wal = wal_lsn(server).await;
    let mut ferry = ferry(file, &with_db(ferry_db), workers, !args.live_source).await?;
    ferry.wal_bytes = wal_since(server, wal).await;
    let stored = count_rows(&with_db(ferry_db), "ferry_bench", &plan).await?;
    if stored != rows {
        bail!("ferry stored {stored} rows of {rows}");
    }
    settle().await;
    eprintln!("measuring the server's own ingest (binary COPY from server-side files) …");
    let wal = wal_lsn(server).await;
    let mut server_floor = server_floor(&with_db(ferry_db), &plan)
        .await
        .map_err(|e| format!("{e:#}"));
    if let Ok(m) = &mut server_floor {
        m.wal_bytes = wal_since(server, wal).await;
    }
    let pgloader = match have("pgloader") {
        Some(_) if !args.skip_pgloader => {
            settle().await;
            eprintln!("measuring pgloader …");
            Some(pgloader(file, &with_db(pgl_db)).await?)
        }
        _ => None,
    };
    Ok((rows, floor, ferry, pgloader, server_floor))
}

async fn count_rows(url: &str, schema: &str, plan: &TransferPlan) -> anyhow::Result<u64> {
    let mut conn = PgConnection::connect(url).await?;
    let mut total = 0;
    for t in &plan.tables {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}.{}",
            q(schema),
            q(&t.target)
        ))
        .fetch_one(&mut conn)
        .await?;
        total += n as u64;
    }
    Ok(total)
}

/// A finished shell command: wall time, largest peak RSS of the `/usr/bin/time` output
/// files it wrote, and its error output when it failed.
struct ShellRun {
    seconds: f64,
    peak_kb: u64,
    cpu_s: f64,
    failure: Option<String>,
}

async fn shell(script: &str, rss_files: &[PathBuf]) -> anyhow::Result<ShellRun> {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; {script}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut peak_kb = 0;
    let mut cpu_s = 0.0;
    for f in rss_files {
        let (kb, cpu) = read_time_file(f);
        peak_kb = peak_kb.max(kb.unwrap_or(0));
        cpu_s += cpu.unwrap_or(0.0);
        let _ = std::fs::remove_file(f);
    }
    let failure = (!out.status.success())
        .then(|| format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    Ok(ShellRun {
        seconds,
        peak_kb,
        cpu_s,
        failure,
    })
}

/// Like [`shell`], but a failure is an error.
async fn timed_shell(script: &str, rss_files: &[PathBuf]) -> anyhow::Result<(f64, u64, f64)> {
    let run = shell(script, rss_files).await?;
    if let Some(f) = run.failure {
        bail!(
            "{} failed: {f}",
            script.chars().take(200).collect::<String>()
        );
    }
    Ok((run.seconds, run.peak_kb, run.cpu_s))
}

fn time_prefix(out: &Path) -> String {
    if Path::new("/usr/bin/time").is_file() {
        format!(
            "/usr/bin/time -f '%U %S\\n%M' -o {} ",
            sh(&out.display().to_string())
        )
    } else {
        String::new()
    }
}

async fn floor(file: &Path, url: &str, plan: &TransferPlan) -> anyhow::Result<Measured> {
    let mut conn = PgConnection::connect(url).await?;
    let mut ddl = String::from("CREATE SCHEMA floor;\n");
    for t in &plan.tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                let ty = if c.target_type == TargetType::MixedJsonb {
                    "text"
                } else {
                    c.target_type.sql()
                };
                format!(
                    "{} {ty}{}",
                    q(&c.target),
                    if c.not_null { " NOT NULL" } else { "" }
                )
            })
            .collect();
        ddl.push_str(&format!(
            "CREATE TABLE floor.{} ({});\n",
            q(&t.target),
            cols.join(", ")
        ));
    }
    sqlx::raw_sql(&ddl).execute(&mut conn).await?;
    let tmp = tempfile::tempdir()?;
    let mut tables: Vec<_> = plan.tables.iter().collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.source_rows));
    let mut jobs: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let select: Vec<String> = t
            .columns
            .iter()
            .map(|c| match c.target_type {
                TargetType::Bytea => format!("'\\x' || hex({})", q(&c.source)),
                _ => q(&c.source),
            })
            .collect();
        let query = format!("SELECT {} FROM {}", select.join(", "), q(&t.source));
        let cols: Vec<String> = t.columns.iter().map(|c| q(&c.target)).collect();
        let copy = format!(
            "\\copy floor.{} ({}) FROM STDIN WITH (FORMAT csv)",
            q(&t.target),
            cols.join(", ")
        );
        let (a, b) = (
            tmp.path().join(format!("s{i}")),
            tmp.path().join(format!("p{i}")),
        );
        let script = format!(
            "{}sqlite3 -bail -csv {} {} | {}psql {} -X -q -v ON_ERROR_STOP=1 -c {}",
            time_prefix(&a),
            sh(&file.display().to_string()),
            sh(&query),
            time_prefix(&b),
            sh(url),
            sh(&copy)
        );
        jobs.push((script, vec![a, b]));
    }
    let mut keys: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut statements: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| !t.primary_key.is_empty())
        .map(|t| {
            let cols: Vec<String> = t.primary_key.iter().map(|k| q(k)).collect();
            format!(
                "ALTER TABLE floor.{} ADD PRIMARY KEY ({})",
                q(&t.target),
                cols.join(", ")
            )
        })
        .collect();
    for (name, table, cols, unique) in BENCH_INDEXES {
        let cols: Vec<String> = cols.iter().map(|c| q(c)).collect();
        statements.push(format!(
            "CREATE {}INDEX {} ON floor.{} ({})",
            if *unique { "UNIQUE " } else { "" },
            q(name),
            q(table),
            cols.join(", ")
        ));
    }
    for (i, s) in statements.iter().enumerate() {
        let out = tmp.path().join(format!("k{i}"));
        keys.push((
            format!(
                "{}psql {} -X -q -v ON_ERROR_STOP=1 -c {}",
                time_prefix(&out),
                sh(url),
                sh(&format!("SET maintenance_work_mem = '256MB'; {s}"))
            ),
            vec![out],
        ));
    }
    let cpu = CpuMark::now();
    let started = Instant::now();
    let mut peak = 0;
    let mut client = 0.0;
    for batch in [jobs, keys] {
        let (kb, cpu_s) = two_at_a_time(batch).await?;
        peak = peak.max(kb);
        client += cpu_s;
    }
    Ok(Measured {
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_kb: peak,
        status: "ok".into(),
        server_cpu_s: cpu.server_seconds(),
        client_cpu_s: Some(client),
        wal_bytes: None,
    })
}

/// What PostgreSQL itself can ingest: the rows ferry loaded (schema `ferry_bench`) are
/// written to server-side binary COPY files, then loaded into a fresh schema of the same
/// tables with no keys, two streams at a time, largest first, followed by the same primary
/// keys and indexes two at a time. Only the load and the keys are timed.
async fn server_floor(url: &str, plan: &TransferPlan) -> anyhow::Result<Measured> {
    use std::os::unix::fs::PermissionsExt as _;
    let files = tempfile::tempdir()?;
    // The server process writes and reads the files: it must be able to enter the folder.
    std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o777))?;
    let file_of = |t: &str| sh(&files.path().join(format!("{t}.bin")).display().to_string());
    let mut conn = PgConnection::connect(url).await?;
    let mut ddl = String::from("CREATE SCHEMA server_floor;\n");
    for t in &plan.tables {
        let name = q(&t.target);
        sqlx::raw_sql(&format!(
            "COPY ferry_bench.{name} TO {} WITH (FORMAT binary)",
            file_of(&t.target)
        ))
        .execute(&mut conn)
        .await
        .with_context(|| {
            format!(
                "the server cannot write {} (a server on another host or with a private /tmp)",
                files.path().display()
            )
        })?;
        ddl.push_str(&format!(
            "CREATE TABLE server_floor.{name} (LIKE ferry_bench.{name});\n"
        ));
    }
    sqlx::raw_sql(&ddl).execute(&mut conn).await?;
    let _ = sqlx::raw_sql("CHECKPOINT").execute(&mut conn).await;
    conn.close().await?;

    let mut tables: Vec<_> = plan.tables.iter().collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.source_rows));
    let loads: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "COPY server_floor.{} FROM {} WITH (FORMAT binary)",
                q(&t.target),
                file_of(&t.target)
            )
        })
        .collect();
    let mut keys: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| !t.primary_key.is_empty())
        .map(|t| {
            let cols: Vec<String> = t.primary_key.iter().map(|k| q(k)).collect();
            format!(
                "SET maintenance_work_mem = '256MB'; ALTER TABLE server_floor.{} ADD PRIMARY KEY ({})",
                q(&t.target),
                cols.join(", ")
            )
        })
        .collect();
    for (name, table, cols, unique) in BENCH_INDEXES {
        let cols: Vec<String> = cols.iter().map(|c| q(c)).collect();
        keys.push(format!(
            "SET maintenance_work_mem = '256MB'; CREATE {}INDEX {} ON server_floor.{} ({})",
            if *unique { "UNIQUE " } else { "" },
            q(name),
            q(table),
            cols.join(", ")
        ));
    }
    let cpu = CpuMark::now();
    let started = Instant::now();
    for batch in [loads, keys] {
        sql_two_at_a_time(url, batch).await?;
    }
    Ok(Measured {
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_kb: 0,
        status: "ok".into(),
        server_cpu_s: cpu.server_seconds(),
        client_cpu_s: None,
        wal_bytes: None,
    })
}

/// Runs the statements on two connections, each taking the next from a shared queue.
async fn sql_two_at_a_time(url: &str, statements: Vec<String>) -> anyhow::Result<()> {
    let queue = std::sync::Mutex::new(std::collections::VecDeque::from(statements));
    let stream = || async {
        let mut conn = PgConnection::connect(url).await?;
        loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some(sql) = next else { break };
            sqlx::raw_sql(&sql)
                .execute(&mut conn)
                .await
                .with_context(|| sql.chars().take(120).collect::<String>())?;
        }
        conn.close().await?;
        anyhow::Ok(())
    };
    let (a, b) = tokio::join!(stream(), stream());
    a.and(b)
}

/// Runs the shell jobs two at a time; returns the peak RSS (kB) and the CPU seconds of the
/// timed processes.
async fn two_at_a_time(jobs: Vec<(String, Vec<PathBuf>)>) -> anyhow::Result<(u64, f64)> {
    let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
        jobs,
    )));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let queue = queue.clone();
        set.spawn(async move {
            let (mut peak, mut cpu) = (0, 0.0);
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some((script, files)) = next else { break };
                let (_, kb, cpu_s) = timed_shell(&script, &files).await?;
                peak = peak.max(kb);
                cpu += cpu_s;
            }
            anyhow::Ok((peak, cpu))
        });
    }
    let (mut peak, mut cpu) = (0, 0.0);
    while let Some(r) = set.join_next().await {
        let (kb, cpu_s) = r??;
        peak = peak.max(kb);
        cpu += cpu_s;
    }
    Ok((peak, cpu))
}

/// The server's WAL position in bytes.
async fn wal_lsn(server: &str) -> Option<u64> {
    let mut c = PgConnection::connect(server).await.ok()?;
    let lsn: i64 = sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
        .fetch_one(&mut c)
        .await
        .ok()?;
    u64::try_from(lsn).ok()
}

/// WAL bytes written since `start` (`None` when either position is unknown).
async fn wal_since(server: &str, start: Option<u64>) -> Option<u64> {
    Some(wal_lsn(server).await?.saturating_sub(start?))
}

async fn ferry(
    file: &Path,
    url: &str,
    workers: usize,
    source_immutable: bool,
) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let state = tempfile::tempdir()?;
    let rss = state.path().join("rss");
    let mut cmd = if Path::new("/usr/bin/time").is_file() {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%U %S\n%M", "-o"]).arg(&rss).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.arg("transfer")
        .arg(file)
        .arg(url)
        .args(["--schema", "ferry_bench", "--workers", &workers.to_string()])
        .args(source_immutable.then_some("--source-immutable"))
        .env("FERRY_STATE_DIR", state.path())
        .env("FERRY_PROGRESS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let cpu = CpuMark::now();
    let started = Instant::now();
    let child = cmd.spawn().context("starting ferry")?;
    let pid = child.id();
    let poll = tokio::spawn(poll_rss(pid));
    let out = child.wait_with_output().await?;
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu_s = cpu.server_seconds();
    let polled = poll.await.unwrap_or(0);
    if !out.status.success() {
        bail!(
            "ferry transfer failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (timed, client_cpu_s) = read_time_file(&rss);
    Ok(Measured {
        seconds,
        peak_rss_kb: timed.unwrap_or(polled),
        status: "ok".into(),
        server_cpu_s,
        client_cpu_s,
        wal_bytes: None,
    })
}

/// Peak RSS (`VmHWM`) of a process and its direct children, read from /proc until it exits;
/// the fallback when `/usr/bin/time` is missing.
async fn poll_rss(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    let mut peak = 0;
    loop {
        let mut pids = vec![pid.to_string()];
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            pids.extend(children.split_whitespace().map(str::to_owned));
        }
        let mut alive = false;
        for p in pids {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
                alive = true;
                if let Some(kb) = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                {
                    peak = peak.max(kb);
                }
            }
        }
        if !alive {
            return peak;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn pgloader(file: &Path, url: &str) -> anyhow::Result<Measured> {
    let tmp = tempfile::tempdir()?;
    let rss = tmp.path().join("rss");
    let script = format!(
        "{}pgloader {} {}",
        time_prefix(&rss),
        sh(&format!("sqlite://{}", file.display())),
        sh(&url.replacen("postgres://", "postgresql://", 1))
    );
    let run = shell(&script, &[rss]).await?;
    let status = match run.failure {
        None => "ok".to_owned(),
        Some(f) => {
            // The telling line: a heap exhaustion or an error, else the last line.
            let lines: Vec<&str> = f.lines().filter(|l| !l.trim().is_empty()).collect();
            let telling = lines
                .iter()
                .find(|l| l.contains("exhausted"))
                .or_else(|| {
                    lines
                        .iter()
                        .find(|l| l.contains("ERROR") || l.contains("FATAL"))
                })
                .or(lines.last())
                .copied()
                .unwrap_or("");
            format!(
                "failed: {}",
                telling.trim().chars().take(70).collect::<String>()
            )
        }
    };
    Ok(Measured {
        seconds: run.seconds,
        peak_rss_kb: run.peak_kb,
        status,
        server_cpu_s: None,
        client_cpu_s: Some(run.cpu_s),
        wal_bytes: None,
    })
}
