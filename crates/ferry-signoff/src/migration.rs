//! The migration itself: phase 4's cutover blackout and sync lag, as the caller passes them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SignoffCheck;

const AREA: &str = "migration";

/// What phase 4 recorded of the cutover and of the sync's lag.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MigrationEvidence {
    /// When the cutover happened (RFC 3339).
    pub cutover_at: Option<String>,
    /// How long writers were fenced.
    pub blackout_ms: Option<f64>,
    /// The last change-log sequence applied before cutover.
    pub last_seq: Option<i64>,
    /// The JSON lag series (a path under `state_dir/reports/`, or relative to `state_dir`).
    pub lag_series: Option<PathBuf>,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    /// The series' points, read from `lag_series`.
    #[serde(default)]
    pub points: Vec<LagPoint>,
    /// Why the series could not be read, when it could not.
    #[serde(default)]
    pub series_error: Option<String>,
}

/// One point of the lag series: seconds since the sync started, changes not yet applied,
/// and how old the oldest of them is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagPoint {
    pub t: f64,
    pub changes_behind: u64,
    pub seconds_behind: f64,
}

impl MigrationEvidence {
    /// Reads the points of `lag_series` (a `{"points": [...]}` object or a bare array; a
    /// point's time is `t`, `t_s` or `time`).
    pub fn load_series(mut self, state_dir: &Path) -> Self {
        let Some(path) = self.lag_series.clone() else {
            return self;
        };
        // Phase 4 records the path as it wrote it: absolute, or relative to where ferry ran
        // (a relative `state_dir` is part of it). A path that only makes sense under the
        // state dir is read from there.
        let full = if path.is_absolute() || path.exists() {
            path.clone()
        } else {
            state_dir.join(&path)
        };
        let parsed = std::fs::read(&full)
            .map_err(|e| format!("the lag series {} cannot be read: {e}", full.display()))
            .and_then(|b| {
                serde_json::from_slice::<Value>(&b)
                    .map_err(|e| format!("the lag series {} is not JSON: {e}", full.display()))
            });
        match parsed {
            Ok(v) => {
                let points = v.get("points").unwrap_or(&v);
                self.points = points
                    .as_array()
                    .map(|a| a.iter().filter_map(point).collect())
                    .unwrap_or_default();
            }
            Err(e) => self.series_error = Some(e),
        }
        self
    }
}

fn point(v: &Value) -> Option<LagPoint> {
    let num = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).and_then(Value::as_f64));
    Some(LagPoint {
        t: num(&["t", "t_s", "time"])?,
        changes_behind: num(&["changes_behind", "changes"]).unwrap_or(0.0).max(0.0) as u64,
        seconds_behind: num(&["seconds_behind", "seconds"]).unwrap_or(0.0),
    })
}

/// The migration checks: the blackout was measured, and the sync had caught up (the lag
/// series ends with nothing behind). Without evidence (a standalone run) one check says so.
pub fn checks(m: Option<&MigrationEvidence>) -> Vec<SignoffCheck> {
    let Some(m) = m else {
        return vec![SignoffCheck::new(
            AREA,
            "cutover and sync lag",
            true,
            "not given: no phase-4 evidence was passed to this run",
        )];
    };
    let mut checks = vec![SignoffCheck::new(
        AREA,
        "cutover blackout recorded",
        m.cutover_at.is_some() && m.blackout_ms.is_some(),
        match (&m.cutover_at, m.blackout_ms) {
            (Some(at), Some(ms)) => format!(
                "cutover at {at}, writers fenced for {ms:.0} ms{}",
                m.last_seq
                    .map_or(String::new(), |s| format!(", last change {s}"))
            ),
            _ => "phase 4 recorded no cutover time or blackout".to_owned(),
        },
    )];
    let last = m.points.last();
    let caught_up = m.series_error.is_none() && last.is_some_and(|p| p.changes_behind == 0);
    checks.push(SignoffCheck::new(
        AREA,
        "sync caught up before cutover",
        caught_up,
        if let Some(e) = &m.series_error {
            e.clone()
        } else if let Some(p) = last {
            format!(
                "{} points; last: {} changes behind at {:.1} s; lag p50 {}, p99 {}, max {}",
                m.points.len(),
                p.changes_behind,
                p.t,
                ms(m.lag_p50_ms),
                ms(m.lag_p99_ms),
                ms(m.lag_max_ms)
            )
        } else {
            "phase 4 recorded no lag series".to_owned()
        },
    ));
    checks
}

fn ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} ms"))
}
