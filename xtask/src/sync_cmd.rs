//! `cargo xtask sync`: follows the old application's writes into PostgreSQL until stopped
//! (Ctrl-C) — SQLite through capture triggers and the change log, the file store through a
//! watcher whose changes go through ferry-import's incremental path into SQLite (and from
//! there, captured, to PostgreSQL). Requires gate 3; holds the state-dir lock, so `phase 4`
//! and it never run at once. A restart resumes from PostgreSQL's cursor.

use std::time::Duration;

use anyhow::Context;
use ferry_core::config::Config;
use ferry_phases::{lock::SYNC_PURPOSE, Runner, StateLock, Wait};
use ferry_sync::{Applier, Follower, FollowerOptions, PassInfo, StoreWatcher, SyncOptions};

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run a full reconciliation pass first (every table compared and fixed), even when the
    /// handoff from phase 3's copy is already done.
    #[arg(long)]
    full: bool,
    /// Stop after the first pass that finds nothing to apply (scripts and tests).
    #[arg(long)]
    until_drained: bool,
    /// When another run holds the state dir, refuse at once (naming it) instead of waiting.
    #[arg(long)]
    no_wait: bool,
}

pub async fn run(args: Args, config: Config) -> anyhow::Result<Outcome> {
    crate::ci::ensure_postgres(config.postgres.url.expose()).await?;
    let runner = Runner::new(config.clone());
    let lock = StateLock::acquire(
        &config.state_dir,
        SYNC_PURPOSE,
        if args.no_wait {
            Wait::No
        } else {
            Wait::Forever
        },
    )
    .await?;
    let plan = runner.sync_plan()?;
    let spec = ferry_phases::sync::install_capture(&config, &plan)?;
    eprintln!(
        "capture {} in {}: {} tables followed",
        spec.capture_id,
        config.sqlite.path.display(),
        spec.tables.len()
    );
    let target = ferry_phases::sync::sync_target(&config);
    let applier = Applier::open(
        &config.sqlite.path,
        &target,
        &plan,
        &SyncOptions::from_config(&config),
        true,
    )
    .await
    .context("cannot start following")?;
    let watcher = StoreWatcher::new(
        &config.source.store_dir,
        Duration::from_secs(config.sync.rescan_secs.max(1)),
    )?;
    let mut follower = Follower::new(
        applier,
        FollowerOptions {
            interval: Duration::from_millis(config.sync.interval_ms),
            handoff: true,
            state_dir: Some(config.state_dir.clone()),
            progress: true,
            until_drained: args.until_drained,
            ..FollowerOptions::default()
        },
    )
    .with_watcher(watcher);
    let handle = follower.handle();
    if args.full {
        handle.request_full_pass();
    }
    let stop = handle.stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.trigger();
        }
    });
    eprintln!(
        "following {} and {} into schema \"{}\"; Ctrl-C stops (a restart resumes)",
        config.sqlite.path.display(),
        config.source.store_dir.display(),
        config.postgres.schema
    );
    let import_config = config.clone();
    let mut hook = move |info: &PassInfo<'_>| -> Result<(), String> {
        let Some(changes) = info.store.filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        let config = import_config.clone();
        let report = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(ferry_phases::sync::import_store(&config))
        })
        .map_err(|e| e.to_string())?;
        tracing::info!(
            "file store: {} paths changed; {} new, {} changed, {} gone, {} quarantined",
            changes.paths.len(),
            report.totals.new,
            report.totals.changed,
            report.totals.disappeared,
            report.totals.quarantined
        );
        Ok(())
    };
    let res = follower.run(&mut hook).await;
    follower.into_applier().close().await;
    lock.release();
    let summary = res?;
    println!(
        "sync stopped: {} passes, {} changes applied in {:.1} s; lag p50 {} p99 {} max {}; {} changes behind, {} open rejects{}",
        summary.passes,
        summary.changes,
        summary.seconds,
        ms(summary.lag_p50_ms),
        ms(summary.lag_p99_ms),
        ms(summary.lag_max_ms),
        summary.status.changes_behind,
        summary.status.open_rejects,
        summary
            .series_path
            .as_ref()
            .map_or(String::new(), |p| format!("; lag series {}", p.display()))
    );
    Ok(if summary.status.open_rejects > 0 {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0} ms"))
}
