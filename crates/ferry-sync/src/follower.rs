//! The follower: a loop that drains the change log every `sync.interval_ms` until it is
//! stopped, with a hook before each pass (the runner's incremental import when the file
//! store changed), a progress line (changes/s, backlog, lag), the status, and the lag time
//! series written under `state_dir/reports/`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::engine::Applier;
use crate::error::{Result, SyncError};
use crate::lag::{LagPoint, LagSeries, LagStats, SyncStatus};
use crate::watch::{StoreChanges, StoreWatcher};

/// Asks a follower to stop; cheap to clone (wire it to Ctrl-C).
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<(AtomicBool, Notify)>);

impl Stop {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        self.0 .1.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.0 .0.load(Ordering::SeqCst)
    }

    /// Sleeps for `d`, or less when stopped meanwhile.
    pub async fn sleep(&self, d: Duration) {
        if self.is_triggered() {
            return;
        }
        let notified = self.0 .1.notified();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = notified => {}
        }
    }
}

/// Controls a running follower from elsewhere.
#[derive(Debug, Clone)]
pub struct FollowerHandle {
    pub stop: Stop,
    full: Arc<AtomicBool>,
    status: Arc<Mutex<SyncStatus>>,
}

impl FollowerHandle {
    /// Runs a full reconciliation before the next drain (`cargo xtask sync --full`).
    pub fn request_full_pass(&self) {
        self.full.store(true, Ordering::SeqCst);
    }

    /// The status as of the last pass.
    pub fn status(&self) -> SyncStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What the hook learns about the pass about to run.
#[derive(Debug)]
pub struct PassInfo<'a> {
    pub pass: u64,
    /// What changed in the file store, when a watcher is attached.
    pub store: Option<&'a StoreChanges>,
}

/// Called before each drain (the runner runs ferry-import's incremental import there when
/// the store changed, so imported rows are captured and applied in the same pass).
pub trait PassHook: Send {
    fn before_pass(&mut self, info: &PassInfo<'_>) -> std::result::Result<(), String>;
}

impl<F> PassHook for F
where
    F: FnMut(&PassInfo<'_>) -> std::result::Result<(), String> + Send,
{
    fn before_pass(&mut self, info: &PassInfo<'_>) -> std::result::Result<(), String> {
        self(info)
    }
}

/// A hook that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl PassHook for NoHook {
    fn before_pass(&mut self, _: &PassInfo<'_>) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// How the follower runs.
#[derive(Debug, Clone)]
pub struct FollowerOptions {
    pub interval: Duration,
    /// Runs the built-in full reconciliation first when the handoff is not recorded yet
    /// (the runner turns this off and drives the reconciliation with `apply_keys`).
    pub handoff: bool,
    /// Where the lag time series is written (`<dir>/reports/sync-lag-<time>.json`).
    pub state_dir: Option<PathBuf>,
    /// Draw the progress line (on a terminal only).
    pub progress: bool,
    /// Stop after the first pass that found the log empty (tests, drains).
    pub until_drained: bool,
    /// How often applied entries are pruned from the change log. Pruning is ferry's only
    /// write to the SQLite file while it follows; it waits at most 50 ms for the write lock
    /// and is skipped when the application holds it.
    pub prune_every: Duration,
}

impl Default for FollowerOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            handoff: true,
            state_dir: None,
            progress: true,
            until_drained: false,
            prune_every: Duration::from_secs(30),
        }
    }
}

/// What a follower did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FollowerSummary {
    pub passes: u64,
    pub changes: u64,
    pub seconds: f64,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    pub max_changes_behind: u64,
    pub transient_errors: u64,
    pub series_path: Option<PathBuf>,
    pub status: SyncStatus,
}

/// Follows the change log until stopped.
pub struct Follower {
    applier: Applier,
    options: FollowerOptions,
    watcher: Option<StoreWatcher>,
    handle: FollowerHandle,
    series: LagSeries,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("applier", &self.applier)
            .finish_non_exhaustive()
    }
}

impl Follower {
    pub fn new(applier: Applier, options: FollowerOptions) -> Self {
        Self {
            applier,
            options,
            watcher: None,
            handle: FollowerHandle {
                stop: Stop::new(),
                full: Arc::new(AtomicBool::new(false)),
                status: Arc::new(Mutex::new(SyncStatus::default())),
            },
            series: LagSeries {
                started_at: chrono::Utc::now().to_rfc3339(),
                points: Vec::new(),
            },
        }
    }

    /// Watches the file store too; its changes are passed to the hook.
    pub fn with_watcher(mut self, watcher: StoreWatcher) -> Self {
        self.watcher = Some(watcher);
        self
    }

    pub fn handle(&self) -> FollowerHandle {
        self.handle.clone()
    }

    pub fn applier(&mut self) -> &mut Applier {
        &mut self.applier
    }

    pub fn into_applier(self) -> Applier {
        self.applier
    }

    /// The lag time series so far.
    pub fn series(&self) -> &LagSeries {
        &self.series
    }

    /// Loops until stopped (or, with `until_drained`, until a pass finds nothing to do).
    /// A lost PostgreSQL is retried pass after pass; anything else stops the follower with
    /// its error (recorded as the status's last error).
    pub async fn run(&mut self, hook: &mut impl PassHook) -> Result<FollowerSummary> {
        let started = Instant::now();
        let bar = progress_bar(self.options.progress);
        let stop = self.handle.stop.clone();
        let mut summary = FollowerSummary::default();
        let series_path = match &self.options.state_dir {
            Some(dir) => Some(
                ferry_core::fsutil::report_path(dir, "sync-lag", "json").map_err(|e| {
                    SyncError::Io {
                        what: "create the reports folder under".into(),
                        path: dir.clone(),
                        source: e,
                    }
                })?,
            ),
            None => None,
        };
        let res = async {
            if self.options.handoff && !self.applier.handoff_done() {
                bar.set_message("full reconciliation (handoff from phase 3's copy)");
                self.applier.full_pass().await?;
            }
            let mut last_prune = Instant::now();
            let mut last_point = Instant::now() - Duration::from_secs(10);
            let mut last_written = Instant::now();
            let mut interval_lag = LagStats::default();
            let mut applied_at_last_point = 0u64;
            while !stop.is_triggered() {
                summary.passes += 1;
                let store = match self.watcher.as_mut() {
                    Some(w) => Some(w.poll()?),
                    None => None,
                };
                hook.before_pass(&PassInfo {
                    pass: summary.passes,
                    store: store.as_ref(),
                })
                .map_err(|message| SyncError::Hook { message })?;
                if self.handle.full.swap(false, Ordering::SeqCst) {
                    bar.set_message("full reconciliation");
                    self.applier.full_pass().await?;
                }
                let drained = match self.applier.drain().await {
                    Ok(d) => d,
                    Err(e) if e.is_transient() => {
                        summary.transient_errors += 1;
                        let msg = e.to_string();
                        tracing::warn!("{msg}; trying again next pass");
                        self.applier.note_error(&msg).await;
                        stop.sleep(self.options.interval).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                summary.changes += drained.changes;
                if last_prune.elapsed() >= self.options.prune_every {
                    self.applier.prune().await?;
                    last_prune = Instant::now();
                }
                let status = self.applier.status().await?;
                summary.max_changes_behind = summary.max_changes_behind.max(status.changes_behind);
                interval_lag.merge(&self.applier.take_interval_lag());
                if last_point.elapsed() >= Duration::from_secs(1) {
                    self.series.push(LagPoint {
                        t: started.elapsed().as_secs_f64(),
                        changes_behind: status.changes_behind,
                        seconds_behind: status.seconds_behind,
                        applied: status.applied_since_start,
                        lag_p99_ms: interval_lag.quantile_ms(0.99),
                    });
                    let rate = (status.applied_since_start - applied_at_last_point) as f64
                        / last_point.elapsed().as_secs_f64().min(3600.0);
                    applied_at_last_point = status.applied_since_start;
                    interval_lag = LagStats::default();
                    last_point = Instant::now();
                    bar.set_message(format!(
                        "{rate:.0} changes/s  backlog {}  behind {:.2} s  lag p50 {} p99 {}",
                        status.changes_behind,
                        status.seconds_behind,
                        ms(status.lag_p50_ms),
                        ms(status.lag_p99_ms)
                    ));
                }
                *self.handle.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
                if let Some(p) = &series_path {
                    if last_written.elapsed() >= Duration::from_secs(10) {
                        write_series(p, &self.series)?;
                        last_written = Instant::now();
                    }
                }
                if self.options.until_drained && drained.changes == 0 {
                    break;
                }
                stop.sleep(self.options.interval).await;
            }
            Ok(())
        }
        .await;
        bar.finish_and_clear();
        if let Err(e) = &res {
            self.applier.note_error(&e.to_string()).await;
        }
        if let Some(p) = &series_path {
            write_series(p, &self.series)?;
        }
        res?;
        let lag = self.applier.lag();
        summary.seconds = started.elapsed().as_secs_f64();
        summary.lag_p50_ms = lag.quantile_ms(0.5);
        summary.lag_p99_ms = lag.quantile_ms(0.99);
        summary.lag_max_ms = lag.max_ms();
        summary.series_path = series_path;
        summary.status = self.applier.status().await?;
        *self.handle.status.lock().unwrap_or_else(|p| p.into_inner()) = summary.status.clone();
        Ok(summary)
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0} ms"))
}

fn write_series(path: &std::path::Path, series: &LagSeries) -> Result<()> {
    ferry_core::fsutil::write_json(path, series).map_err(|e| SyncError::Io {
        what: "write the lag series".into(),
        path: path.to_owned(),
        source: e,
    })
}

fn progress_bar(enabled: bool) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} {spinner} {msg}").expect("valid template"),
    );
    bar.set_prefix("sync");
    if !enabled || !ferry_core::progress::visible() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}
