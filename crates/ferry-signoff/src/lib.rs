//! Phase 5's checks, usable on their own: given a SQLite file, a PostgreSQL target, the file
//! store and a state directory, [`run`] measures what the migration promised and returns it
//! typed, and [`write_reports`] writes it as Markdown, JSON and one self-contained HTML page
//! with charts (drawn by `plotters` into inline SVG).
//!
//! - **Data** ([`data`]): ferry-validate's deep comparison of SQLite with PostgreSQL (every
//!   table cell by cell, constraints validated), and the file store against the database:
//!   every imported file of the import ledger (`ferry_source_files`) holds, byte for byte,
//!   the document of each of its rows, in the number of rows the ledger records; the
//!   quarantined files are listed with their reasons. Files ↔ SQLite by bytes and SQLite ↔
//!   PostgreSQL by canonical digests prove files ↔ PostgreSQL.
//! - **Performance** ([`perf`]): ferry-agentdb's typical reads timed on PostgreSQL, on a
//!   copy of the SQLite file, and on the old read path (read and parse the JSON files), with
//!   p50/p95/p99. Passes when every read's p95 on PostgreSQL is under 100 ms and within 10%
//!   of each baseline's p95, or faster.
//! - **Concurrency** ([`concurrency`]): simulated agents (default 16) run a realistic mix
//!   through ferry-agentdb for a set time (default 30 s) in a scratch schema migrated like
//!   the real one and dropped afterwards, so the migrated data is never written. Passes when
//!   the error rate is under 0.1% and nothing deadlocked or stalled.
//! - **Migration**: phase 4's lag series and cutover blackout, when the caller gives them.
//!
//! The crate does not know the phase runner; `ferry-phases` wraps it as phase 5.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_signoff::SignoffError> {
//! use ferry_signoff::{run, write_reports, SignoffConfig, SignoffOptions};
//! let config = SignoffConfig {
//!     sqlite: "state/ferry.sqlite3".into(),
//!     postgres_url: ferry_core::redact::SecretUrl::new("postgres://postgres@127.0.0.1:5432/postgres"),
//!     schema: "ferry".into(),
//!     store_dir: "store".into(),
//!     state_dir: "state".into(),
//!     timestamps: ferry_core::config::TimestampConfig { naive: "UTC".into() },
//! };
//! let report = run(&config, &SignoffOptions::default(), None).await?;
//! let paths = write_reports(&report, &config.state_dir, None)?;
//! println!("{}: {}", if report.passed { "all checks pass" } else { "a check failed" }, paths.html.display());
//! # Ok(()) }
//! ```

pub mod charts;
pub mod concurrency;
pub mod data;
mod error;
pub mod migration;
pub mod perf;
pub mod report;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_core::config::TimestampConfig;
use ferry_core::redact::SecretUrl;
use serde::{Deserialize, Serialize};

pub use error::SignoffError;
pub use migration::{LagPoint, MigrationEvidence};
pub use report::{write_reports, ReportPaths};

/// Where the migrated data is.
#[derive(Debug, Clone)]
pub struct SignoffConfig {
    pub sqlite: PathBuf,
    pub postgres_url: SecretUrl,
    /// The PostgreSQL schema holding the migrated tables.
    pub schema: String,
    pub store_dir: PathBuf,
    /// ferry's state directory: documents over the snapshot threshold, reports, scratch copies.
    pub state_dir: PathBuf,
    pub timestamps: TimestampConfig,
}

impl SignoffConfig {
    pub fn from_config(config: &ferry_core::config::Config) -> Self {
        Self {
            sqlite: config.sqlite.path.clone(),
            postgres_url: config.postgres.url.clone(),
            schema: config.postgres.schema.clone(),
            store_dir: config.source.store_dir.clone(),
            state_dir: config.state_dir.clone(),
            timestamps: config.timestamps.clone(),
        }
    }
}

/// How the checks run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignoffOptions {
    /// Times each typical read is measured on each path.
    pub read_iterations: u32,
    /// Simulated agents of the concurrency check (at least 10 for the check to pass).
    pub agents: usize,
    /// How long the simulated agents run.
    pub load_duration: Duration,
    /// p95 bound of every typical read on PostgreSQL.
    pub p95_bound_ms: f64,
    /// How much slower than a baseline PostgreSQL may be (0.10: within 10%).
    pub baseline_tolerance: f64,
    /// Largest error rate of the concurrency check (0.001: 0.1%).
    pub max_error_rate: f64,
    /// A person's reason for accepting PostgreSQL slower than a baseline by more than the
    /// tolerance. The bound stays as it is: a check that misses it still shows its numbers,
    /// and says it was accepted and why. Nothing else can be accepted.
    pub accept_slower: Option<String>,
}

impl Default for SignoffOptions {
    fn default() -> Self {
        Self {
            read_iterations: 200,
            agents: 16,
            load_duration: Duration::from_secs(30),
            p95_bound_ms: 100.0,
            baseline_tolerance: 0.10,
            max_error_rate: 0.001,
            accept_slower: None,
        }
    }
}

/// Fewer simulated agents than this cannot pass the concurrency check.
pub const MIN_AGENTS: usize = 10;

/// One check of the sign-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignoffCheck {
    /// `data`, `performance`, `concurrency` or `migration`.
    pub area: String,
    pub name: String,
    pub passed: bool,
    /// What was measured, in words and numbers.
    pub detail: String,
}

impl SignoffCheck {
    pub fn new(area: &str, name: &str, passed: bool, detail: impl Into<String>) -> Self {
        Self {
            area: area.to_owned(),
            name: name.to_owned(),
            passed,
            detail: detail.into(),
        }
    }
}

/// Everything the sign-off measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignoffReport {
    pub ferry_version: String,
    pub generated_at: DateTime<Utc>,
    /// The SQLite file, the PostgreSQL target (password masked), schema and store.
    pub sqlite: String,
    pub postgres: String,
    pub schema: String,
    pub store_dir: String,
    pub options: SignoffOptions,
    pub passed: bool,
    pub checks: Vec<SignoffCheck>,
    pub data: data::DataReport,
    pub performance: Option<perf::PerfReport>,
    pub concurrency: Option<concurrency::ConcurrencyReport>,
    pub migration: Option<MigrationEvidence>,
    /// Who signed, when, and the digest of what they signed: filled by the caller that
    /// records the signature (phase 5), never by [`run`].
    #[serde(default)]
    pub signature: Option<Signature>,
}

/// A person's sign-off of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub signed_by: String,
    pub signed_at: DateTime<Utc>,
    /// sha256 of the report JSON as written without the signature.
    pub evidence_sha256: String,
    pub evidence: PathBuf,
}

/// Runs every check. A check that cannot be made (a server does not answer, a file cannot
/// be read) fails with the reason; only a configuration that cannot be used at all is an
/// error.
pub async fn run(
    config: &SignoffConfig,
    options: &SignoffOptions,
    migration: Option<MigrationEvidence>,
) -> Result<SignoffReport, SignoffError> {
    if !config.sqlite.is_file() {
        return Err(SignoffError::Config(format!(
            "the SQLite file {} (sqlite.path) does not exist",
            config.sqlite.display()
        )));
    }
    if !config.store_dir.is_dir() {
        return Err(SignoffError::Config(format!(
            "the store {} (source.store_dir) is not a folder",
            config.store_dir.display()
        )));
    }
    let mut checks = Vec::new();
    let data = data::check(config).await;
    checks.extend(data.checks.clone());

    let performance = match perf::measure(config, options).await {
        Ok(p) => {
            checks.extend(p.checks.clone());
            Some(p)
        }
        Err(e) => {
            checks.push(SignoffCheck::new(
                "performance",
                "typical reads measured",
                false,
                e.to_string(),
            ));
            None
        }
    };
    let concurrency = match concurrency::run(config, options).await {
        Ok(c) => {
            checks.extend(c.checks.clone());
            Some(c)
        }
        Err(e) => {
            checks.push(SignoffCheck::new(
                "concurrency",
                "simulated agents ran",
                false,
                e.to_string(),
            ));
            None
        }
    };
    let migration = migration.map(|m| m.load_series(&config.state_dir));
    checks.extend(migration::checks(migration.as_ref()));
    Ok(SignoffReport {
        ferry_version: env!("CARGO_PKG_VERSION").to_owned(),
        generated_at: Utc::now(),
        sqlite: config.sqlite.display().to_string(),
        postgres: config.postgres_url.redacted(),
        schema: config.schema.clone(),
        store_dir: config.store_dir.display().to_string(),
        options: options.clone(),
        passed: checks.iter().all(|c| c.passed),
        checks,
        data,
        performance,
        concurrency,
        migration,
        signature: None,
    })
}
