//! `cargo xtask bench sync --files [--file-rate 200] [--secs 60]`: the file variant of the
//! phase-4 benchmark. A generated agent store is imported into SQLite and copied into
//! PostgreSQL (phases 2 and 3), capture is installed, and the follower runs as `cargo xtask
//! sync` does: a `StoreWatcher` (`notify` events plus a rescan) reports changed files, and
//! before each pass they go through ferry-import's incremental import, whose SQLite writes
//! the triggers log and the applier carries to PostgreSQL.
//!
//! A writer thread, standing in for the old application, creates (70%), rewrites (20%) and
//! deletes (10%) queue messages in the store's layout at `--file-rate` files per second
//! (each written to a temporary name and renamed, as an application that writes whole files
//! does). Every create and rewrite carries the operation's number in its subject; a monitor
//! polls PostgreSQL every 25 ms for the highest number arrived, so each such file's lag is
//! "in PostgreSQL" minus "renamed into the store" (25 ms resolution).
//!
//! The floor, measured in the same run: a burst of files written with the follower stopped,
//! then carried to PostgreSQL by one pass (incremental import plus drain, timed), against
//! the same files imported by a bare incremental import into a copy of the same SQLite file
//! without capture and without PostgreSQL.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_core::redact::SecretUrl;
use ferry_import::{ImportOptions, Profile};
use ferry_sync::{
    Applier, Follower, FollowerOptions, InstallOptions, PassInfo, StoreWatcher, SyncOptions,
    SyncTarget,
};
use sqlx::postgres::PgConnection;
use sqlx::Connection;

use crate::bench_sync::{ms, Args, SCHEMA};

/// Where the writer puts its files, inside the store.
const FOLDER: &str = "agent_workspaces/queue/bench";
/// The subject prefix that numbers each create and rewrite.
const SUBJECT: &str = "bench-op ";

pub async fn bench(url: &str, args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store = dir.path().join("store");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    let file = state.join("bench.sqlite3");
    let spec = ferry_testkit::store_gen::StoreSpec {
        agents: args.agents,
        broken_per_mille: 0,
        ..ferry_testkit::store_gen::StoreSpec::small()
    };
    eprintln!(
        "generating a store of {} agents into {}",
        args.agents,
        store.display()
    );
    let generated = ferry_testkit::store_gen::generate(&store, &spec)?;
    std::fs::create_dir_all(store.join(FOLDER))?;
    create_sqlite(&file)?;
    let profile = Profile::builtin();
    let options = import_options(&state);
    eprintln!("phase 2: importing {} files", generated.files);
    ferry_import::import_file(&store, &file, &profile, &options).await?;
    ferry_testkit::sync_writer::use_wal(&file)?;
    eprintln!("phase 3: copying into PostgreSQL");
    let plan = crate::bench_sync::load(&file, url, SCHEMA).await?;
    ferry_sync::install(&file, &plan, &InstallOptions::default())?;
    let target = SyncTarget {
        url: SecretUrl::new(url),
        schema: SCHEMA.into(),
    };
    let sync_options = SyncOptions {
        batch_changes: args.batch,
        workers: args.workers,
        ..SyncOptions::default()
    };
    {
        let mut a = Applier::open(&file, &target, &plan, &sync_options, true).await?;
        a.full_pass().await?;
        a.close().await;
    }

    // Follow while the writer changes files at the target rate.
    eprintln!(
        "writer at {} files/s for {} s, follower every {} ms",
        args.file_rate, args.secs, args.interval_ms
    );
    let applier = Applier::open(&file, &target, &plan, &sync_options, true).await?;
    let watcher = StoreWatcher::new(&store, Duration::from_secs(5))?;
    let mut follower = Follower::new(
        applier,
        FollowerOptions {
            interval: Duration::from_millis(args.interval_ms),
            progress: true,
            ..FollowerOptions::default()
        },
    )
    .with_watcher(watcher);
    let handle = follower.handle();
    let (hook_store, hook_file, hook_state) = (store.clone(), file.clone(), state.clone());
    let task = tokio::spawn(async move {
        let mut hook = move |info: &PassInfo<'_>| -> Result<(), String> {
            if info.store.is_none_or(|c| c.is_empty()) {
                return Ok(());
            }
            let options = import_options(&hook_state);
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(ferry_import::import_file(
                    &hook_store,
                    &hook_file,
                    &Profile::builtin(),
                    &options,
                ))
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        let res = follower.run(&mut hook).await;
        (follower, res)
    });
    let started = Instant::now();
    let stop_monitor = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
    let monitor = tokio::spawn(monitor(
        url.to_owned(),
        started,
        stop_monitor.clone(),
        samples.clone(),
    ));
    let writer = {
        let (store, rate, secs) = (store.clone(), args.file_rate, args.secs);
        std::thread::spawn(move || write_files(&store, rate, Duration::from_secs(secs), started, 1))
    };
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the file writer panicked"))??;
    // Wait for the last numbered file to arrive (or give up after 60 s), then stop.
    let last = written.numbered.last().map_or(0, |(n, _)| *n);
    let deadline = Instant::now() + Duration::from_secs(60);
    while samples.lock().unwrap().last().map_or(0, |s| s.1) < last && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_monitor.store(true, Ordering::SeqCst);
    monitor.await??;
    handle.stop.trigger();
    let (follower, res) = task.await?;
    let summary = res?;
    let lags = file_lags(&written.numbered, &samples.lock().unwrap());
    let arrived = lags.len();
    let mut sorted = lags.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| {
        (!sorted.is_empty())
            .then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize] * 1000.0)
    };
    let achieved = written.ops as f64 / written.seconds;
    drop(follower);

    // The floor: a burst with the follower stopped, carried by one pass, against a bare
    // incremental import of the same files into a copy without capture.
    eprintln!(
        "throughput: writing a burst of {} files with the follower stopped",
        args.file_burst
    );
    let burst = write_burst(&store, args.file_burst)?;
    let floor_file = dir.path().join("floor.sqlite3");
    {
        let conn = rusqlite::Connection::open(&file)?;
        conn.execute("VACUUM INTO ?1", [floor_file.to_string_lossy()])?;
    }
    ferry_sync::uninstall(&floor_file)?;
    let floor_state = dir.path().join("floor-state");
    std::fs::create_dir_all(&floor_state)?;
    let mut a = Applier::open(&file, &target, &plan, &sync_options, true).await?;
    let t = Instant::now();
    let ours_import = ferry_import::import_file(&store, &file, &profile, &options).await?;
    let drained = a.drain().await?;
    let ours = t.elapsed();
    a.close().await;
    let t = Instant::now();
    let floor_import =
        ferry_import::import_file(&store, &floor_file, &profile, &import_options(&floor_state))
            .await?;
    let floor = t.elapsed();
    let carried = ours_import.totals.new + ours_import.totals.changed;
    let floored = floor_import.totals.new + floor_import.totals.changed;
    anyhow::ensure!(
        carried == burst && floored == burst,
        "the burst of {burst} files: {carried} imported with sync, {floored} by the bare import"
    );
    let ours_rate = burst as f64 / ours.as_secs_f64();
    let floor_rate = burst as f64 / floor.as_secs_f64();
    let peak = crate::rss::peak_rss_mb();

    println!();
    println!(
        "sync lag of file changes under load (queue messages in the agent-store layout, {} s, interval {} ms, rescan 5 s)",
        args.secs, args.interval_ms
    );
    let mut t = ferry_core::table::Table::new([
        "target files/s",
        "achieved",
        "created",
        "rewritten",
        "deleted",
        "arrived",
        "lag p50",
        "lag p99",
        "lag max",
        "changes applied",
    ]);
    t.row([
        args.file_rate.to_string(),
        format!("{achieved:.0}"),
        written.created.to_string(),
        written.rewritten.to_string(),
        written.deleted.to_string(),
        format!("{arrived} of {}", written.numbered.len()),
        ms(q(0.5)),
        ms(q(0.99)),
        ms(q(1.0)),
        summary.changes.to_string(),
    ]);
    print!("{t}");
    println!();
    let mut t = ferry_core::table::Table::new([
        "a burst of new files",
        "files",
        "seconds",
        "files/s",
        "ratio",
    ]);
    t.row([
        "ferry: incremental import + capture + apply to PostgreSQL".to_string(),
        burst.to_string(),
        format!("{:.2}", ours.as_secs_f64()),
        format!("{ours_rate:.0}"),
        format!("{:.2}x", ours_rate / floor_rate),
    ]);
    t.row([
        "floor: bare incremental import into SQLite".to_string(),
        burst.to_string(),
        format!("{:.2}", floor.as_secs_f64()),
        format!("{floor_rate:.0}"),
        "1.00x".into(),
    ]);
    print!("{t}");
    println!(
        "{} changes drained after the burst; peak RSS {}",
        drained.changes,
        peak.map_or("-".into(), |p| format!("{p:.0} MiB"))
    );
    println!("target: file variant p99 lag < 2 s");
    Ok(())
}

fn import_options(state: &Path) -> ImportOptions {
    ImportOptions {
        progress: false,
        delete_disappeared: Some(true),
        ..ImportOptions::new(state)
    }
}

fn create_sqlite(file: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(file)?;
    for (name, sql) in ferry_migrations::SQLITE
        .iter()
        .filter(|(n, _)| n.ends_with(".up.sql"))
    {
        conn.execute_batch(sql)
            .with_context(|| format!("applying {name}"))?;
    }
    Ok(())
}

/// What the file writer did.
struct Written {
    ops: u64,
    created: u64,
    rewritten: u64,
    deleted: u64,
    seconds: f64,
    /// `(operation number, seconds since start when the file was renamed into place)` of
    /// every create and rewrite.
    numbered: Vec<(u64, f64)>,
}

fn message(n: u64) -> String {
    format!(
        "{{\n  \"type\": \"task\",\n  \"from\": \"Agent-1\",\n  \"to\": \"Agent-2\",\n  \"timestamp\": \"2025-07-02T07:00:00Z\",\n  \"subject\": \"{SUBJECT}{n:012}\",\n  \"message\": \"written by the benchmark's stand-in for the old application\",\n  \"priority\": \"normal\"\n}}\n"
    )
}

/// Writes `name` whole: a temporary name the profile does not match, then a rename.
fn put(store: &Path, name: &str, n: u64) -> std::io::Result<()> {
    let dir = store.join(FOLDER);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, message(n))?;
    std::fs::rename(&tmp, dir.join(name))
}

fn write_files(
    store: &Path,
    rate: u64,
    duration: Duration,
    started: Instant,
    seed: u64,
) -> anyhow::Result<Written> {
    let mut rng = ferry_testkit::sqlite_gen::Rng::new(seed);
    let mut live: Vec<String> = Vec::new();
    let mut w = Written {
        ops: 0,
        created: 0,
        rewritten: 0,
        deleted: 0,
        seconds: 0.0,
        numbered: Vec::new(),
    };
    let begin = Instant::now();
    while begin.elapsed() < duration {
        let due = Duration::from_secs_f64(w.ops as f64 / rate.max(1) as f64);
        let el = begin.elapsed();
        if due > el {
            std::thread::sleep((due - el).min(Duration::from_millis(20)));
            continue;
        }
        w.ops += 1;
        let n = w.ops;
        let op = rng.below(100);
        // Rewrites and deletes leave the newest 50 files alone, so the highest number in
        // PostgreSQL only grows.
        let older = live.len().saturating_sub(50);
        if op < 20 && older > 0 {
            let name = live[rng.below(older as u64) as usize].clone();
            put(store, &name, n)?;
            w.rewritten += 1;
            w.numbered.push((n, started.elapsed().as_secs_f64()));
        } else if op < 30 && older > 0 {
            let name = live.swap_remove(rng.below(older as u64) as usize);
            std::fs::remove_file(store.join(FOLDER).join(&name))?;
            w.deleted += 1;
        } else {
            let name = format!("bench-{n:09}.json");
            put(store, &name, n)?;
            live.push(name);
            w.created += 1;
            w.numbered.push((n, started.elapsed().as_secs_f64()));
        }
    }
    w.seconds = begin.elapsed().as_secs_f64();
    Ok(w)
}

fn write_burst(store: &Path, files: u64) -> anyhow::Result<u64> {
    for i in 0..files {
        put(store, &format!("burst-{i:09}.json"), 1_000_000_000 + i)?;
    }
    Ok(files)
}

/// Polls PostgreSQL for the highest operation number arrived: `(seconds since start, n)`.
async fn monitor(
    url: String,
    started: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&url).await?;
    let sql = format!(
        "SELECT max(subject) FROM {}.messages WHERE subject LIKE '{SUBJECT}%'",
        ferry_core::sql::quote_ident(SCHEMA)
    );
    while !stop.load(Ordering::SeqCst) {
        let max: Option<String> = sqlx::query_scalar(&sql).fetch_one(&mut conn).await?;
        let n = max
            .and_then(|s| s.strip_prefix(SUBJECT).and_then(|d| d.parse::<u64>().ok()))
            .unwrap_or(0);
        samples
            .lock()
            .unwrap()
            .push((started.elapsed().as_secs_f64(), n));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    conn.close().await?;
    Ok(())
}

/// Each numbered file's lag in seconds: the first sample that shows it (or a later number)
/// arrived, minus when it was written. Files that never arrived are left out (the table
/// says how many arrived).
fn file_lags(numbered: &[(u64, f64)], samples: &[(f64, u64)]) -> Vec<f64> {
    let mut out = Vec::with_capacity(numbered.len());
    let mut i = 0;
    for &(n, at) in numbered {
        while i < samples.len() && samples[i].1 < n {
            i += 1;
        }
        match samples.get(i) {
            Some(&(seen, _)) => out.push((seen - at).max(0.0)),
            None => break,
        }
    }
    out
}
