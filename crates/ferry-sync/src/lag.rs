//! Lag: how far PostgreSQL is behind SQLite, as a status the runner can show and as a time
//! series for the sign-off report's chart.
//!
//! Two measures: *behind* (changes not yet applied: newest seq − cursor; and seconds since
//! the oldest of them was captured) and the *lag of each applied change* (commit time in
//! PostgreSQL − capture time in SQLite), kept in a log-scale histogram (about 2% per bucket,
//! bounded memory however long the follower runs) for p50/p99/max since start.

use serde::{Deserialize, Serialize};

/// Buckets grow by this factor from [`FIRST_MS`]: about 2% resolution.
const GROWTH: f64 = 1.02;
const FIRST_MS: f64 = 0.05;
const BUCKETS: usize = 1200;

/// Lags of applied changes since start.
#[derive(Debug, Clone)]
pub struct LagStats {
    counts: Vec<u64>,
    n: u64,
    max_ms: f64,
    sum_ms: f64,
}

impl Default for LagStats {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            max_ms: 0.0,
            sum_ms: 0.0,
        }
    }
}

impl LagStats {
    pub fn record_ms(&mut self, ms: f64) {
        let ms = ms.max(0.0);
        let i = if ms <= FIRST_MS {
            0
        } else {
            ((ms / FIRST_MS).ln() / GROWTH.ln()).ceil() as usize
        };
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.n += 1;
        self.sum_ms += ms;
        if ms > self.max_ms {
            self.max_ms = ms;
        }
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn max_ms(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max_ms)
    }

    pub fn mean_ms(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum_ms / self.n as f64)
    }

    /// The `q` quantile (0..=1), to the histogram's resolution (never above the maximum).
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = FIRST_MS * GROWTH.powi(i as i32);
                return Some(upper.min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    /// Adds another histogram (e.g. one interval's) into this one.
    pub fn merge(&mut self, other: &LagStats) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.sum_ms += other.sum_ms;
        self.max_ms = self.max_ms.max(other.max_ms);
    }
}

/// Where sync stands, for `status` and `status --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub capture_id: String,
    /// Every change-log entry up to here is in PostgreSQL.
    pub cursor: i64,
    /// The newest entry in the change log.
    pub max_seq: i64,
    pub changes_behind: u64,
    /// Now − capture time of the oldest entry not yet applied (0 when none waits).
    pub seconds_behind: f64,
    /// Whether the full reconciliation after install (the handoff from phase 3's copy)
    /// has been done.
    pub handoff_done: bool,
    /// Changes applied since this follower started, and since capture was installed.
    pub applied_since_start: u64,
    pub applied_total: u64,
    pub changes_per_second: f64,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    /// Rejects not resolved by a later apply of the same key.
    pub open_rejects: u64,
    pub retries: u64,
    pub last_error: Option<String>,
    /// Changes SQLite logged after cutover (writes that reached the old database).
    pub written_after_cutover: u64,
    pub cut_over: bool,
    pub updated_at: String,
}

/// One point of the lag time series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagPoint {
    /// Seconds since the follower started.
    pub t: f64,
    pub changes_behind: u64,
    pub seconds_behind: f64,
    /// Changes applied since start.
    pub applied: u64,
    /// p99 lag of the changes applied since the previous point.
    pub lag_p99_ms: Option<f64>,
}

/// The lag time series, bounded: when full, every other point is dropped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LagSeries {
    pub started_at: String,
    pub points: Vec<LagPoint>,
}

impl LagSeries {
    pub const MAX_POINTS: usize = 10_000;

    pub fn push(&mut self, p: LagPoint) {
        if self.points.len() >= Self::MAX_POINTS {
            let kept: Vec<LagPoint> = self.points.iter().step_by(2).copied().collect();
            self.points = kept;
        }
        self.points.push(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bucket_resolution() {
        let mut s = LagStats::default();
        for i in 1..=1000 {
            s.record_ms(i as f64);
        }
        let p50 = s.quantile_ms(0.5).unwrap();
        let p99 = s.quantile_ms(0.99).unwrap();
        assert!((p50 - 500.0).abs() / 500.0 < 0.03, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.03, "{p99}");
        assert_eq!(s.max_ms(), Some(1000.0));
        assert_eq!(s.quantile_ms(1.0), Some(1000.0));
        assert_eq!(LagStats::default().quantile_ms(0.5), None);
    }

    #[test]
    fn the_series_stays_bounded() {
        let mut series = LagSeries::default();
        for i in 0..(LagSeries::MAX_POINTS * 3) {
            series.push(LagPoint {
                t: i as f64,
                changes_behind: 0,
                seconds_behind: 0.0,
                applied: i as u64,
                lag_p99_ms: None,
            });
        }
        assert!(series.points.len() <= LagSeries::MAX_POINTS);
        assert_eq!(
            series.points.last().unwrap().applied,
            (LagSeries::MAX_POINTS * 3 - 1) as u64
        );
    }
}
