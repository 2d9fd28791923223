//! Phase 2, import: the file store into SQLite through the profile, every file of the
//! phase-1 manifest accounted for.

use std::path::PathBuf;

use ferry_core::config::Config;
use ferry_import::{gate as import_gate, ImportOptions, Profile};
use ferry_rollback::{Backup, BackupEvidence, Entry as ManifestEntry, RestoreTargets};
use ferry_schema::Database;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checks;
use crate::error::PhaseError;
use crate::foundation::Foundation;
use crate::gate::{Check, Findings};
use crate::module::{Cx, Depth, PhaseModule, PhaseResult, Recorded, RollbackCx, RunCx};
use crate::phase::Phase;

/// How many quarantined files a gate report shows on screen (the report lists them all).
const FIRST_FINDINGS: usize = 5;

pub(crate) struct Import;

/// What was true before phase 2 first ran in this attempt chain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Facts {
    /// The SQLite file as gate 1 passed it, which rolling back phase 2 restores.
    #[serde(default)]
    pub gate1_backup: Option<BackupEvidence>,
}

/// The import's totals the ledger keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ImportTotals {
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub imported: u64,
    #[serde(default)]
    pub quarantined: u64,
    #[serde(default)]
    pub excluded: u64,
    #[serde(default)]
    pub unmapped: u64,
    #[serde(default)]
    pub rows: u64,
}

/// What a run of phase 2 did and found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Evidence {
    #[serde(default)]
    pub import_report: Option<PathBuf>,
    #[serde(default)]
    pub import_totals: Option<ImportTotals>,
    /// Every quarantined file with its reason.
    #[serde(default)]
    pub quarantined: Vec<String>,
    /// The digest of every SQLite data table as gate 2 saw it.
    #[serde(default)]
    pub table_digests: Option<ferry_validate::SqliteDigest>,
}

impl PhaseModule for Import {
    const PHASE: Phase = Phase::Import;
    type Facts = Facts;
    type Evidence = Evidence;

    async fn facts(cx: &Cx<'_>) -> Result<Facts, PhaseError> {
        Ok(Facts {
            gate1_backup: cx
                .latest_run::<Foundation>()?
                .and_then(|r| r.evidence.gate_backup),
        })
    }

    async fn run(run: &mut RunCx<'_, Self>) -> Result<PhaseResult, PhaseError> {
        let config = run.config();
        let phase1 = run
            .cx
            .latest_run::<Foundation>()?
            .ok_or_else(|| PhaseError::failed("phase 2", "phase 1 has no run in the ledger"))?;
        let manifest_paths = manifest_paths(phase1.evidence.backup.as_ref())?;

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
        let t = &report.totals;
        run.evidence.import_report = Some(report_path.clone());
        run.evidence.import_totals = Some(ImportTotals {
            files: t.files,
            imported: t.imported,
            quarantined: t.quarantined,
            excluded: t.excluded,
            unmapped: t.unmapped,
            rows: t.rows,
        });
        run.evidence.quarantined = report.quarantine_lines();
        run.checkpoint()?;

        let (checks, digests) = gate_checks(config, &manifest_paths).await?;
        run.evidence.table_digests = Some(digests);
        let findings = Findings {
            count: run.evidence.quarantined.len() as u64,
            what: "quarantined files".into(),
            first: run
                .evidence
                .quarantined
                .iter()
                .take(FIRST_FINDINGS)
                .cloned()
                .collect(),
            report: Some(report_path),
        };
        Ok(PhaseResult {
            summary: format!(
                "{} files: {} imported, {} quarantined, {} excluded, {} unmapped; {} rows",
                t.files, t.imported, t.quarantined, t.excluded, t.unmapped, t.rows
            ),
            checks,
            details: report.summary_table().to_string(),
            findings,
        })
    }

    /// The SQLite tables are as gate 2 left them (quick: the same row counts; full: the same
    /// digests) and the backup rolling back restores still verifies.
    async fn recheck(cx: &Cx<'_>, rec: &Recorded<Self>, depth: Depth) -> Vec<Check> {
        let gate1 = rec
            .facts
            .gate1_backup
            .clone()
            .or_else(|| gate1_backup(cx).ok().flatten());
        vec![
            checks::backup_verifies(gate1.as_ref(), "gate-1 SQLite backup verifies", depth).await,
            tables_unchanged(cx.config, &rec.evidence, depth).await,
        ]
    }

    async fn left_behind(cx: &Cx<'_>, _rec: &Recorded<Self>) -> Vec<String> {
        let sqlite = &cx.config.sqlite.path;
        match checks::sqlite_counts(sqlite, ["ferry_source_files"].into_iter()).await {
            Ok(n) => vec![format!(
                "SQLite file {} with {} files of the store recorded by the import",
                sqlite.display(),
                n.values().sum::<u64>()
            )],
            Err(e) => vec![format!("SQLite file {} ({e})", sqlite.display())],
        }
    }

    /// The SQLite file goes back to the state gate 1 passed, from the backup taken then,
    /// verified by digest. Quarantine and snapshot folders stay (they are ferry's own
    /// state, and the next import re-uses what still applies).
    async fn rollback(rb: &mut RollbackCx<'_, Self>) -> Result<(Vec<Check>, Value), PhaseError> {
        let config = rb.config();
        let evidence = match rb.facts.gate1_backup.clone() {
            Some(b) => b,
            None => gate1_backup(rb.cx)?.ok_or_else(|| {
                PhaseError::failed(
                    "rolling back phase 2",
                    "phase 1's ledger entry has no gate-1 SQLite backup",
                )
            })?,
        };
        let backup = Backup::open(&evidence.dir)
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
        rb.step(format!(
            "restoring {} from backup {} (the imported version is moved to {})",
            sqlite.display(),
            backup.id(),
            displaced.display()
        ))?;
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
}

/// The gate-1 backup of phase 1's latest run.
fn gate1_backup(cx: &Cx<'_>) -> Result<Option<BackupEvidence>, PhaseError> {
    Ok(cx
        .latest_run::<Foundation>()?
        .and_then(|r| r.evidence.gate_backup))
}

/// Gate 2's checks over the SQLite file as it is now, and the per-table digests they saw.
async fn gate_checks(
    config: &Config,
    manifest_paths: &[String],
) -> Result<(Vec<Check>, ferry_validate::SqliteDigest), PhaseError> {
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
    Ok((checks, digests))
}

/// The SQLite data tables still have what gate 2 recorded: the same digests
/// ([`Depth::Full`]) or the same row counts ([`Depth::Quick`]).
pub(crate) async fn tables_unchanged(config: &Config, evidence: &Evidence, depth: Depth) -> Check {
    let name = "SQLite tables unchanged since gate 2";
    let Some(then) = &evidence.table_digests else {
        return Check::new(name, false, "gate 2 recorded no table digests");
    };
    let sqlite = &config.sqlite.path;
    if !sqlite.is_file() {
        return Check::new(name, false, format!("{} does not exist", sqlite.display()));
    }
    if let Some(spec) = crate::sync::capture_installed(sqlite).await {
        // The application keeps writing SQLite; sync carries its writes to PostgreSQL and
        // gate 4 compares every table at cutover.
        return Check::new(
            name,
            true,
            format!("followed by sync since capture {spec} was installed; gate 4 compares every table at cutover"),
        );
    }
    match depth {
        Depth::Full => match checks::sqlite_digests(sqlite).await {
            Ok(now) => {
                if then.differences(&now).is_empty() {
                    return Check::new(
                        name,
                        true,
                        format!(
                            "all {} tables have the digests gate 2 recorded",
                            now.tables.len()
                        ),
                    );
                }
                let counts = now
                    .tables
                    .iter()
                    .map(|t| (t.table.clone(), t.digest.count))
                    .collect();
                let changed: Vec<&str> = then
                    .tables
                    .iter()
                    .filter(|t| now.table(&t.table) != Some(&t.digest))
                    .map(|t| t.table.as_str())
                    .collect();
                written_since(name, then, &counts, &changed)
            }
            Err(e) => Check::new(name, false, e),
        },
        Depth::Quick => {
            match checks::sqlite_counts(sqlite, then.tables.iter().map(|t| t.table.as_str())).await
            {
                Ok(now) => {
                    let changed: Vec<&str> = then
                        .tables
                        .iter()
                        .filter(|t| now.get(&t.table) != Some(&t.digest.count))
                        .map(|t| t.table.as_str())
                        .collect();
                    if changed.is_empty() {
                        return Check::new(
                            name,
                            true,
                            format!(
                                "all {} tables have the row counts gate 2 recorded (digests are compared before the next phase)",
                                then.tables.len()
                            ),
                        );
                    }
                    written_since(name, then, &now, &changed)
                }
                Err(e) => Check::new(name, false, e),
            }
        }
    }
}

/// SQLite differs from what gate 2 recorded in the tables `changed`. The application may
/// keep writing SQLite once its files are imported (phase 3 copies a consistent snapshot,
/// and phase 4 carries what follows), so a table with rows added or changed passes, named.
/// A table with fewer rows than gate 2 saw (or gone) fails: rows were lost, and a loss is
/// never waved through as a write. (Whether every imported file's rows are still as the
/// file has them is phase 5's file check.)
fn written_since(
    name: &str,
    then: &ferry_validate::SqliteDigest,
    now: &std::collections::BTreeMap<String, u64>,
    changed: &[&str],
) -> Check {
    let mut lost = Vec::new();
    let mut written = Vec::new();
    for t in then
        .tables
        .iter()
        .filter(|t| changed.contains(&t.table.as_str()))
    {
        match now.get(&t.table) {
            None => lost.push(format!("table {} is gone", t.table)),
            Some(&n) if n < t.digest.count => lost.push(format!(
                "table {} has {n} rows, gate 2 saw {}: rows were lost",
                t.table, t.digest.count
            )),
            Some(&n) if n == t.digest.count => {
                written.push(format!("{} (as many rows, content changed)", t.table))
            }
            Some(&n) => written.push(format!("{} (+{} rows)", t.table, n - t.digest.count)),
        }
    }
    if lost.is_empty() {
        Check::new(
            name,
            true,
            format!(
                "no rows lost; SQLite was written since gate 2 in {}: phase 3 copies a consistent snapshot, and sync (phase 4) carries later writes",
                written.join(", ")
            ),
        )
    } else {
        Check::new(name, false, lost.join("; "))
    }
}

/// Relative paths of every file and symlink in the phase-1 backup of the store.
fn manifest_paths(backup: Option<&BackupEvidence>) -> Result<Vec<String>, PhaseError> {
    let backup = backup
        .ok_or_else(|| PhaseError::failed("phase 2", "phase 1's ledger entry has no backup"))?;
    let backup = Backup::open(&backup.dir)
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
            ManifestEntry::File { path, .. } | ManifestEntry::Symlink { path, .. } => Some(path),
            ManifestEntry::Dir { .. } => None,
        })
        .collect())
}
