//! Gate verdicts: named checks with details, printed as a table and saved as JSON and
//! Markdown under `state_dir/reports/`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ferry_core::table::Table;
use serde::{Deserialize, Serialize};

use crate::phase::Phase;

/// One check of a gate (or of a rollback's verification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// What was measured, in words a person can act on.
    pub detail: String,
    /// The check could not be made (a server did not answer): it does not pass, and says
    /// so rather than claiming a difference.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

impl Check {
    pub fn new(name: &str, passed: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            passed,
            detail: detail.into(),
            unverified: false,
        }
    }

    /// A check that could not be made, and why.
    pub fn unverified(name: &str, detail: impl Into<String>) -> Self {
        Self {
            unverified: true,
            ..Self::new(name, false, detail)
        }
    }
}

/// What a passed gate still wants a person to see, such as quarantined files: the command
/// shows the first few with the count and the report, and exits 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    pub count: u64,
    /// What they are, plural: `quarantined files`.
    pub what: String,
    /// The first few, each a path and its reason.
    pub first: Vec<String>,
    /// The report that lists them all.
    pub report: Option<PathBuf>,
}

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Whether every check passed.
pub fn all_passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.passed)
}

/// A gate's (or rollback's) report, as saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateReport {
    /// The ledger entry of the run (or rollback) this report belongs to.
    #[serde(default)]
    pub run_id: String,
    pub phase: Phase,
    /// `gate` or `rollback`.
    pub kind: String,
    pub passed: bool,
    /// The phase's own summary (e.g. the import's table per kind), printed before the checks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    pub checks: Vec<Check>,
    /// Passed, yet worth a person's look (exit 1).
    #[serde(default, skip_serializing_if = "Findings::is_empty")]
    pub findings: Findings,
    pub evidence: serde_json::Value,
    pub generated_at: DateTime<Utc>,
    pub ferry_version: String,
}

impl GateReport {
    pub fn table(&self) -> Table {
        let mut table = Table::new(["check", "result", "detail"]);
        for c in &self.checks {
            table.row([
                c.name.clone(),
                if c.passed {
                    "pass".into()
                } else if c.unverified {
                    "UNVERIFIED".into()
                } else {
                    "FAIL".into()
                },
                c.detail.clone(),
            ]);
        }
        table
    }

    /// The report as Markdown, for a person to read or attach to a ticket.
    pub fn markdown(&self) -> String {
        let verdict = if self.passed { "passed" } else { "FAILED" };
        format!(
            "# {} {}: {verdict}\n\nRun {}, generated {} by ferry {}.\n\n{}\n{}## Evidence\n\n```json\n{}\n```\n",
            self.phase,
            self.kind,
            self.run_id,
            self.generated_at.to_rfc3339(),
            self.ferry_version,
            self.table().to_markdown(),
            if self.details.is_empty() { String::new() } else { format!("## Summary\n\n```\n{}\n```\n\n", self.details.trim_end()) },
            serde_json::to_string_pretty(&self.evidence).unwrap_or_default()
        )
    }

    /// Writes `gate<N>-<time>.json` and `.md` under `state_dir/reports/`; returns the JSON path.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<PathBuf> {
        let name = format!("{}{}", self.kind, self.phase.number());
        let json = ferry_core::fsutil::report_path(state_dir, &name, "json")?;
        ferry_core::fsutil::write_json(&json, self)?;
        ferry_core::fsutil::write_atomic(&json.with_extension("md"), self.markdown().as_bytes())?;
        Ok(json)
    }
}
