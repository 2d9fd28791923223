//! Phase 5, verification and sign-off: ferry-signoff's checks (zero loss, typical-read
//! latency against the old read paths, concurrent agents, the migration's lag and blackout)
//! on the migrated data, the report under `state_dir/reports/signoff-*.{json,md,html}`, and
//! a person's signature.
//!
//! Gate 5 passes when every check passes. Without `--signed-by` a passed gate leaves the
//! phase "awaiting signature": the run reports it as a finding (exit 1) and its summary says
//! so. `phase 5 --signed-by NAME` runs the checks again and, when they all pass, records who
//! signed, when, and the sha256 of the report JSON (the evidence). Rolling back to phase 4
//! withdraws the signature, recorded as a rollback step.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_signoff::{MigrationEvidence, SignoffConfig, SignoffOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::PhaseError;
use crate::gate::{Check, Findings};
use crate::ledger;
use crate::module::{Cx, Depth, PhaseModule, PhaseResult, Recorded, RollbackCx, RunCx};
use crate::phase::Phase;

pub(crate) struct SignOff;

/// Who signed what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SignatureEvidence {
    pub signed_by: String,
    pub signed_at: Option<DateTime<Utc>>,
    /// sha256 of the report JSON.
    pub evidence_sha256: String,
}

/// What a run of phase 5 measured and whether it was signed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Evidence {
    /// The report JSON (the evidence a signature covers), and its Markdown and HTML pages.
    #[serde(default)]
    pub signoff_json: Option<PathBuf>,
    #[serde(default)]
    pub markdown: Option<PathBuf>,
    #[serde(default)]
    pub html: Option<PathBuf>,
    #[serde(default)]
    pub evidence_sha256: Option<String>,
    #[serde(default)]
    pub checks_total: u64,
    #[serde(default)]
    pub checks_passed: u64,
    #[serde(default)]
    pub signature: Option<SignatureEvidence>,
    /// `--accept-slower`: the reason PostgreSQL slower than a baseline was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slower_accepted: Option<String>,
    /// `--signed-by` was given but the gate failed: nothing was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_refused: Option<String>,
    /// What an earlier run killed mid-way had left and this run removed first: its scratch
    /// schemas and scratch copies (the run holds the state-dir lock, so they are nobody's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleared_before_run: Vec<String>,
}

/// Phase 4's evidence as the sign-off reads it: `cutover.{at, blackout_ms, last_seq}`,
/// `lag_series`, `lag.{p50_ms, p99_ms, max_ms}` (flat `cutover_at`, … are read too).
pub(crate) fn migration_evidence(phase4: Option<&Value>) -> MigrationEvidence {
    let Some(v) = phase4 else {
        return MigrationEvidence::default();
    };
    let get = |nested: &[&str], flat: &str| -> Option<&Value> {
        let mut cur = v;
        for k in nested {
            match cur.get(*k) {
                Some(next) => cur = next,
                None => return v.get(flat),
            }
        }
        Some(cur)
    };
    let f = |nested: &[&str], flat: &str| get(nested, flat).and_then(Value::as_f64);
    MigrationEvidence {
        cutover_at: get(&["cutover", "at"], "cutover_at")
            .and_then(Value::as_str)
            .map(str::to_owned),
        blackout_ms: f(&["cutover", "blackout_ms"], "blackout_ms"),
        last_seq: get(&["cutover", "last_seq"], "last_seq").and_then(Value::as_i64),
        lag_series: get(&["lag_series"], "lag_series")
            .and_then(Value::as_str)
            .map(PathBuf::from),
        lag_p50_ms: f(&["lag", "p50_ms"], "lag_p50_ms"),
        lag_p99_ms: f(&["lag", "p99_ms"], "lag_p99_ms"),
        lag_max_ms: f(&["lag", "max_ms"], "lag_max_ms"),
        ..MigrationEvidence::default()
    }
}

fn sha256_of(path: &std::path::Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|b| hex::encode(Sha256::digest(&b)))
        .map_err(|e| format!("the sign-off report {} cannot be read: {e}", path.display()))
}

impl PhaseModule for SignOff {
    const PHASE: Phase = Phase::SignOff;
    type Facts = Value;
    type Evidence = Evidence;

    async fn facts(_cx: &Cx<'_>) -> Result<Value, PhaseError> {
        Ok(Value::Null)
    }

    async fn run(run: &mut RunCx<'_, Self>) -> Result<PhaseResult, PhaseError> {
        let config = run.config();
        // A killed run leaves its scratch schema and copies; this one holds the state-dir
        // lock, so nothing else of this migration can be using them.
        let scratch_dir = config.state_dir.join("signoff");
        if scratch_dir.exists() {
            std::fs::remove_dir_all(&scratch_dir).map_err(|e| {
                PhaseError::failed(
                    format!(
                        "removing the scratch copies a killed run left in {}",
                        scratch_dir.display()
                    ),
                    e,
                )
            })?;
            run.evidence
                .cleared_before_run
                .push(format!("scratch copies in {}", scratch_dir.display()));
        }
        let dropped = drop_scratch_schemas(config)
            .await
            .map_err(|e| PhaseError::failed("dropping the scratch schemas a killed run left", e))?;
        for name in dropped {
            run.evidence
                .cleared_before_run
                .push(format!("scratch schema \"{name}\""));
        }
        if !run.evidence.cleared_before_run.is_empty() {
            run.checkpoint()?;
        }
        let phase4 = ledger::latest_run(run.cx.entries, Phase::Sync).map(|e| &e.evidence);
        let migration = migration_evidence(phase4);
        let mut options = SignoffOptions::default();
        if let Some(d) = run.options.signoff_load {
            options.load_duration = d;
        }
        options.accept_slower = run.options.accept_slower.clone();
        run.evidence.slower_accepted = options
            .accept_slower
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        let signoff_config = SignoffConfig::from_config(config);
        let report = ferry_signoff::run(&signoff_config, &options, Some(migration))
            .await
            .map_err(|e| PhaseError::failed("running the sign-off checks", e))?;
        let signed_by = run
            .options
            .signed_by
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let paths = ferry_signoff::write_reports(
            &report,
            &config.state_dir,
            signed_by.filter(|_| report.passed),
        )
        .map_err(|e| PhaseError::failed("writing the sign-off report", e))?;
        let e = &mut run.evidence;
        e.signoff_json = Some(paths.json.clone());
        e.markdown = Some(paths.markdown.clone());
        e.html = Some(paths.html.clone());
        e.evidence_sha256 = Some(paths.evidence_sha256.clone());
        e.checks_total = report.checks.len() as u64;
        e.checks_passed = report.checks.iter().filter(|c| c.passed).count() as u64;
        e.signature = paths.signature.as_ref().map(|s| SignatureEvidence {
            signed_by: s.signed_by.clone(),
            signed_at: Some(s.signed_at),
            evidence_sha256: s.evidence_sha256.clone(),
        });
        if let (Some(who), false) = (signed_by, report.passed) {
            e.signature_refused = Some(format!(
                "{who} did not sign: the gate failed, so there is nothing to sign"
            ));
        }
        run.checkpoint()?;

        let checks: Vec<Check> = report
            .checks
            .iter()
            .map(|c| {
                Check::new(
                    &format!("{}: {}", c.area, c.name),
                    c.passed,
                    c.detail.clone(),
                )
            })
            .collect();
        let signature = run.evidence.signature.clone();
        let findings = match (&signature, report.passed) {
            (None, true) => Findings {
                count: 1,
                what: "awaiting signature".to_owned(),
                first: vec![format!(
                    "every check passed; sign the report with `cargo xtask phase 5 --signed-by NAME` (it runs the checks again and signs what they measure); report {}",
                    paths.html.display()
                )],
                report: Some(paths.html.clone()),
            },
            _ => Findings::default(),
        };
        let summary = match (&signature, report.passed) {
            (Some(s), _) => format!(
                "all {} checks pass; signed by {} (evidence sha256 {})",
                report.checks.len(),
                s.signed_by,
                &s.evidence_sha256[..12.min(s.evidence_sha256.len())]
            ),
            (None, true) => format!(
                "all {} checks pass; awaiting signature",
                report.checks.len()
            ),
            (None, false) => format!(
                "{} of {} checks failed",
                report.checks.iter().filter(|c| !c.passed).count(),
                report.checks.len()
            ),
        };
        Ok(PhaseResult {
            details: format!(
                "{}sign-off report: {} (and .md, .json)\nevidence sha256: {}{}{}",
                if run.evidence.cleared_before_run.is_empty() {
                    String::new()
                } else {
                    format!(
                        "removed first, left by a killed run: {}\n",
                        run.evidence.cleared_before_run.join(", ")
                    )
                },
                paths.html.display(),
                paths.evidence_sha256,
                signature.as_ref().map_or(String::new(), |s| format!(
                    "\nsigned by {} at {}",
                    s.signed_by,
                    s.signed_at.map_or_else(
                        || "-".to_owned(),
                        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()
                    )
                )),
                run.evidence
                    .signature_refused
                    .as_deref()
                    .map_or(String::new(), |r| format!("\n{r}"))
            ),
            summary,
            checks,
            findings,
        })
    }

    /// The report the gate (and a signature) vouched for is still there, unchanged.
    async fn recheck(_cx: &Cx<'_>, rec: &Recorded<Self>, _depth: Depth) -> Vec<Check> {
        let name = "sign-off report unchanged";
        let (Some(path), Some(sha)) = (&rec.evidence.signoff_json, &rec.evidence.evidence_sha256)
        else {
            return vec![Check::new(name, false, "gate 5 recorded no report")];
        };
        vec![match sha256_of(path) {
            Ok(now) if &now == sha => Check::new(
                name,
                true,
                format!("{} still hashes to {}", path.display(), sha),
            ),
            Ok(now) => Check::new(
                name,
                false,
                format!(
                    "{} hashes to {now}, gate 5 recorded {sha}: the evidence changed",
                    path.display()
                ),
            ),
            Err(e) => Check::new(name, false, e),
        }]
    }

    async fn left_behind(cx: &Cx<'_>, _rec: &Recorded<Self>) -> Vec<String> {
        let dir = cx.config.state_dir.join("signoff");
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                out.push(format!("scratch copy {}", e.path().display()));
            }
        }
        out.push(
            "possibly a scratch schema <schema>_signoff_* of the concurrency check (a rollback drops it)"
                .to_owned(),
        );
        out
    }

    /// Withdraws the signature (recorded as a step) and removes what a killed run left:
    /// scratch copies and scratch schemas. The reports stay, as every phase's reports do.
    async fn rollback(rb: &mut RollbackCx<'_, Self>) -> Result<(Vec<Check>, Value), PhaseError> {
        let signature = rb.newest(|r| r.evidence.signature.clone());
        if let Some(s) = &signature {
            rb.step(format!(
                "withdrawing the signature of {} (signed {}, evidence sha256 {})",
                s.signed_by,
                s.signed_at
                    .map_or("at an unknown time".into(), |t| t.to_rfc3339()),
                s.evidence_sha256
            ))?;
        }
        let config = rb.config();
        let dir = config.state_dir.join("signoff");
        if dir.exists() {
            rb.step(format!("removing the scratch copies in {}", dir.display()))?;
            let _ = std::fs::remove_dir_all(&dir);
        }
        let dropped = drop_scratch_schemas(config).await;
        let mut checks = vec![Check::new(
            "signature withdrawn",
            true,
            match &signature {
                Some(s) => format!(
                    "the signature of {} is withdrawn; phase 5 must pass and be signed again",
                    s.signed_by
                ),
                None => "phase 5 was not signed; nothing to withdraw".to_owned(),
            },
        )];
        checks.push(match &dropped {
            Ok(names) => Check::new(
                "no scratch left",
                !dir.exists(),
                if names.is_empty() {
                    "no scratch schema or copy remains".to_owned()
                } else {
                    format!("dropped scratch schemas {}", names.join(", "))
                },
            ),
            Err(e) => Check::unverified("no scratch left", e.clone()),
        });
        Ok((
            checks,
            json!({
                "signature_withdrawn": signature,
                "scratch_schemas_dropped": dropped.unwrap_or_default(),
            }),
        ))
    }
}

/// Drops the concurrency check's scratch schemas (`<schema>_signoff_*`) a killed run left.
async fn drop_scratch_schemas(config: &ferry_core::config::Config) -> Result<Vec<String>, String> {
    use sqlx::Connection as _;
    let connect = sqlx::PgConnection::connect(config.postgres.url.expose());
    let mut conn = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(ferry_core::redact::redact(&e.to_string()).into_owned()),
        Err(_) => return Err("PostgreSQL did not answer within 5 s".to_owned()),
    };
    // Only this migration's: another migration on the same server may be running its own.
    let prefix = ferry_signoff::concurrency::scratch_prefix(&config.postgres.schema);
    let names: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|n: &String| n.starts_with(&prefix))
        .collect();
    for n in &names {
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            ferry_core::sql::quote_ident(n)
        ))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("dropping scratch schema \"{n}\": {e}"))?;
    }
    let _ = conn.close().await;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_four_evidence_is_read_nested_or_flat() {
        let nested = json!({
            "cutover": {"at": "2026-12-06T07:00:00Z", "blackout_ms": 850.0, "last_seq": 42},
            "lag_series": "reports/lag-1.json",
            "lag": {"p50_ms": 12.0, "p99_ms": 90.0, "max_ms": 120.0}
        });
        let m = migration_evidence(Some(&nested));
        assert_eq!(m.cutover_at.as_deref(), Some("2026-12-06T07:00:00Z"));
        assert_eq!((m.blackout_ms, m.last_seq), (Some(850.0), Some(42)));
        assert_eq!(m.lag_series, Some(PathBuf::from("reports/lag-1.json")));
        assert_eq!(
            (m.lag_p50_ms, m.lag_p99_ms, m.lag_max_ms),
            (Some(12.0), Some(90.0), Some(120.0))
        );
        let flat = json!({"cutover_at": "x", "blackout_ms": 3, "lag_max_ms": 7});
        let m = migration_evidence(Some(&flat));
        assert_eq!(
            (m.cutover_at.as_deref(), m.blackout_ms, m.lag_max_ms),
            (Some("x"), Some(3.0), Some(7.0))
        );
        let none = migration_evidence(None);
        let checks = ferry_signoff::migration::checks(Some(&none));
        assert!(checks.iter().all(|c| !c.passed), "{checks:?}");
    }
}
