//! Phase 2, import: the file store into SQLite through the profile, every file of the
//! phase-1 manifest accounted for.

use std::path::Path;

use ferry_core::config::Config;
use ferry_import::{gate as import_gate, ImportOptions, Profile};
use ferry_rollback::{Backup, Entry, RestoreTargets};
use ferry_schema::Database;
use serde_json::{json, Value};

use crate::checks;
use crate::error::PhaseError;
use crate::gate::Check;
use crate::ledger::{self, Ledger};
use crate::phase::Phase;
use crate::runner::{scope_digest, Ctx, PhaseResult};

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> Result<PhaseResult, PhaseError> {
    let config = ctx.config;
    ctx.evidence
        .insert("scope_digest".into(), json!(scope_digest(config)));
    let phase1 = phase1_evidence(config)?;
    let manifest_paths = manifest_paths(&phase1)?;

    let profile = Profile::from_setting(&config.import.profile)
        .map_err(|e| PhaseError::failed("loading the import profile", e))?;
    let mut options = ImportOptions::from_config(config);
    options.progress = true;
    options.workers = config.import.workers;
    let report = ferry_import::import_file(
        &config.source.store_dir,
        &config.sqlite.path,
        &profile,
        &options,
    )
    .await
    .map_err(|e| {
        PhaseError::failed(
            format!("importing {}", config.source.store_dir.display()),
            e,
        )
    })?;
    let report_path = ferry_core::fsutil::report_path(&config.state_dir, "import", "json")
        .and_then(|p| ferry_core::fsutil::write_json(&p, &report).map(|()| p))
        .map_err(|e| PhaseError::failed("writing the import report", e))?;
    ctx.evidence
        .insert("import_report".into(), json!(report_path));
    ctx.evidence
        .insert("import_totals".into(), json!(report.totals));
    ctx.evidence
        .insert("quarantined".into(), json!(report.quarantine_lines()));

    let (checks, digests) = gate_checks(config, &manifest_paths).await?;
    ctx.evidence.insert("table_digests".into(), digests);
    let t = &report.totals;
    Ok(PhaseResult {
        summary: format!(
            "{} files: {} imported, {} quarantined, {} excluded, {} unmapped; {} rows",
            t.files, t.imported, t.quarantined, t.excluded, t.unmapped, t.rows
        ),
        checks,
        details: report.summary_table().to_string(),
    })
}

/// Gate 2's checks over the SQLite file as it is now, and the per-table digests they saw.
async fn gate_checks(
    config: &Config,
    manifest_paths: &[String],
) -> Result<(Vec<Check>, Value), PhaseError> {
    let mut conn = import_gate::open_read_only(&config.sqlite.path)
        .await
        .map_err(|e| PhaseError::failed("opening the SQLite file for gate 2", e))?;
    let mut checks = Vec::new();
    match import_gate::accounting(&mut conn, manifest_paths).await {
        Ok(acc) => {
            let by: Vec<String> = acc
                .by_status
                .iter()
                .map(|(s, n)| format!("{n} {}", s.as_str()))
                .collect();
            let detail = if acc.passed() {
                format!(
                    "all {} files of the phase-1 manifest: {}",
                    acc.manifest_files,
                    by.join(", ")
                )
            } else {
                format!(
                    "{} of {} files unaccounted for, first: {}",
                    acc.unaccounted.len(),
                    acc.manifest_files,
                    acc.unaccounted
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            checks.push(Check::new(
                "every manifest file accounted for",
                acc.passed(),
                detail,
            ));
        }
        Err(e) => checks.push(Check::new(
            "every manifest file accounted for",
            false,
            e.to_string(),
        )),
    }
    match import_gate::check_rows(&mut conn).await {
        Ok(rows) => {
            let parsed: u64 = rows.kinds.values().map(|k| k.records_parsed).sum();
            let found: u64 = rows.kinds.values().map(|k| k.rows_found).sum();
            let detail = if rows.passed() {
                format!(
                    "{parsed} records parsed, {found} rows found, in {} kinds",
                    rows.kinds.len()
                )
            } else {
                let first: Vec<String> =
                    rows.mismatches
                        .iter()
                        .take(3)
                        .map(|m| {
                            format!(
                                "{} in {}: {} expected, {} found",
                                m.path, m.table, m.expected, m.found
                            )
                        })
                        .chain(rows.orphans.iter().take(3).map(|o| {
                            format!("{} rows of {} claim {}", o.rows, o.table, o.source_path)
                        }))
                        .collect();
                format!(
                    "{} mismatches, {} orphan groups: {}",
                    rows.mismatches.len(),
                    rows.orphans.len(),
                    first.join("; ")
                )
            };
            checks.push(Check::new(
                "rows per kind equal records parsed",
                rows.passed(),
                detail,
            ));
        }
        Err(e) => checks.push(Check::new(
            "rows per kind equal records parsed",
            false,
            e.to_string(),
        )),
    }
    sqlx::Connection::close(conn).await.ok();
    let mut db = Database::open_sqlite(&config.sqlite.path)
        .await
        .map_err(|e| PhaseError::failed("opening the SQLite file", e))?;
    checks.extend(checks::sqlite_integrity(&mut db).await);
    db.close().await;
    let digests = checks::sqlite_digests(&config.sqlite.path)
        .await
        .map_err(|e| PhaseError::failed("digesting the SQLite tables", e))?;
    Ok((checks, json!(digests)))
}

/// Phase 2's evidence still holds: the SQLite tables are as gate 2 left them and the
/// backup rollback-to-1 restores from still verifies.
pub(crate) async fn recheck(config: &Config, evidence: &Value) -> Vec<Check> {
    let mut out = Vec::new();
    match phase1_evidence(config) {
        Ok(p1) => out.push(
            checks::backup_verifies(&p1, "gate_backup", "gate-1 SQLite backup verifies").await,
        ),
        Err(e) => out.push(Check::new(
            "gate-1 SQLite backup verifies",
            false,
            e.to_string(),
        )),
    }
    out.push(tables_unchanged(config, evidence).await);
    out
}

/// The SQLite data tables still have the digests gate 2 recorded.
pub(crate) async fn tables_unchanged(config: &Config, evidence: &Value) -> Check {
    let name = "SQLite tables unchanged since gate 2";
    let then: Option<ferry_validate::SqliteDigest> = evidence
        .get("table_digests")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let Some(then) = then else {
        return Check::new(name, false, "gate 2 recorded no table digests");
    };
    match checks::sqlite_digests(&config.sqlite.path).await {
        Ok(now) => {
            let diffs = then.differences(&now);
            let detail = if diffs.is_empty() {
                format!(
                    "all {} tables have the digests gate 2 recorded",
                    now.tables.len()
                )
            } else {
                diffs.join("; ")
            };
            Check::new(name, diffs.is_empty(), detail)
        }
        Err(e) => Check::new(name, false, e),
    }
}

/// Undoes phase 2: the SQLite file goes back to the state gate 1 passed, from the backup
/// taken then, verified by digest. Quarantine and snapshot folders stay (they are ferry's
/// own state, and the next import re-uses what still applies).
pub(crate) async fn rollback(
    config: &Config,
    _evidence: &Value,
) -> Result<(Vec<Check>, Value), PhaseError> {
    let phase1 = phase1_evidence(config)?;
    let dir = phase1
        .get("gate_backup")
        .and_then(|b| b.get("dir"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            PhaseError::failed(
                "rolling back phase 2",
                "phase 1's ledger entry has no gate-1 SQLite backup",
            )
        })?
        .to_owned();
    let backup = Backup::open(Path::new(&dir))
        .map_err(|e| PhaseError::failed("opening the gate-1 backup", e))?;
    let expected = backup
        .manifest
        .contents
        .sqlite
        .as_ref()
        .map(|s| s.sha256.clone());
    let (sqlite, displaced) = (
        config.sqlite.path.clone(),
        config.state_dir.join("displaced"),
    );
    let report = tokio::task::spawn_blocking(move || {
        ferry_rollback::restore(
            &backup,
            &RestoreTargets::default().sqlite(&sqlite),
            &displaced,
        )
    })
    .await
    .map_err(|e| PhaseError::failed("restoring the SQLite file", e))?
    .map_err(|e| PhaseError::failed("restoring the SQLite file", e))?;
    let actual = checks::sha256_file(&config.sqlite.path)
        .map_err(|e| PhaseError::failed("hashing the restored SQLite file", e))?;
    let equal = expected.as_deref() == Some(actual.as_str());
    let checks = vec![Check::new(
        "SQLite file equals the gate-1 backup",
        report.verified && equal,
        format!(
            "sha256 {actual} (backup {}); the imported version was moved to {}",
            report.backup_id,
            report
                .displaced_dir
                .as_ref()
                .map_or("-".into(), |d| d.display().to_string())
        ),
    )];
    Ok((checks, json!({ "restore": report })))
}

/// The evidence of phase 1's latest run, which phase 2 builds on.
fn phase1_evidence(config: &Config) -> Result<Value, PhaseError> {
    let entries = Ledger::new(&config.state_dir, &config.sqlite.path).entries()?;
    ledger::latest_run(&entries, Phase::Foundation)
        .map(|e| e.evidence.clone())
        .ok_or_else(|| PhaseError::failed("phase 2", "phase 1 has no run in the ledger"))
}

/// Relative paths of every file and symlink in the phase-1 backup of the store.
fn manifest_paths(phase1: &Value) -> Result<Vec<String>, PhaseError> {
    let dir = phase1
        .get("backup")
        .and_then(|b| b.get("dir"))
        .and_then(Value::as_str)
        .ok_or_else(|| PhaseError::failed("phase 2", "phase 1's ledger entry has no backup"))?;
    let backup = Backup::open(Path::new(dir))
        .map_err(|e| PhaseError::failed("opening the phase-1 backup", e))?;
    let store = backup
        .manifest
        .contents
        .store
        .ok_or_else(|| PhaseError::failed("phase 2", "the phase-1 backup holds no store"))?;
    Ok(store
        .entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::File { path, .. } | Entry::Symlink { path, .. } => Some(path),
            Entry::Dir { .. } => None,
        })
        .collect())
}
