//! Phase 1, foundation: back up the store (and an existing SQLite file), apply the SQLite
//! migrations, and gate on a proven backup and a schema equal to the reviewed snapshot.

use std::path::{Path, PathBuf};

use ferry_rollback::{Backup, BackupEvidence, BackupSpec, RestoreTargets};
use ferry_schema::{Database, Migrator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::checks;
use crate::error::PhaseError;
use crate::gate::{all_passed, Check, Findings};
use crate::module::{Cx, Depth, PhaseModule, PhaseResult, Recorded, RollbackCx, RunCx};
use crate::phase::Phase;

/// The labels of the backups phase 1 takes (`<label>-<time>` under `state_dir/backups/`).
pub(crate) const BACKUP_LABELS: [&str; 2] = ["phase1", "gate1"];

pub(crate) struct Foundation;

/// What was true before phase 1 first ran in this attempt chain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Facts {
    /// Whether a file was at `sqlite.path` (`None`: the ledger does not say).
    #[serde(default)]
    pub sqlite_preexisting: Option<bool>,
    #[serde(default)]
    pub sqlite_path: Option<PathBuf>,
}

/// What a run of phase 1 did and found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Evidence {
    #[serde(default)]
    pub store_dir: Option<PathBuf>,
    #[serde(default)]
    pub sqlite_path: Option<PathBuf>,
    /// This run's backup of the store (and of the SQLite file when it existed before).
    #[serde(default)]
    pub backup: Option<BackupEvidence>,
    /// The backup holding the SQLite file as it was before the chain's first run changed
    /// it: rolling back restores that one, never a later copy of a half-migrated file.
    #[serde(default)]
    pub sqlite_original: Option<BackupEvidence>,
    /// This run created the SQLite file.
    #[serde(default)]
    pub sqlite_created: bool,
    #[serde(default)]
    pub migrations_applied: Vec<String>,
    /// The SQLite file as gate 1 passed it: what rolling back phase 2 restores.
    #[serde(default)]
    pub gate_backup: Option<BackupEvidence>,
}

impl PhaseModule for Foundation {
    const PHASE: Phase = Phase::Foundation;
    type Facts = Facts;
    type Evidence = Evidence;

    async fn facts(cx: &Cx<'_>) -> Result<Facts, PhaseError> {
        let sqlite = &cx.config.sqlite.path;
        Ok(Facts {
            sqlite_preexisting: Some(sqlite.symlink_metadata().is_ok()),
            sqlite_path: Some(sqlite.clone()),
        })
    }

    async fn run(run: &mut RunCx<'_, Self>) -> Result<PhaseResult, PhaseError> {
        let config = run.config();
        let store = &config.source.store_dir;
        let sqlite = &config.sqlite.path;
        let preexisting = run.facts.sqlite_preexisting.unwrap_or(sqlite.exists());
        run.evidence.store_dir = Some(store.clone());
        run.evidence.sqlite_path = Some(sqlite.clone());
        if preexisting {
            run.evidence.sqlite_original = run.earlier.iter().find_map(|r| {
                r.evidence.sqlite_original.clone().or_else(|| {
                    r.evidence
                        .backup
                        .clone()
                        .filter(|b| b.sqlite_sha256.is_some())
                })
            });
        }

        let mut spec =
            BackupSpec::new(config.state_dir.join("backups"), BACKUP_LABELS[0]).store(store);
        if preexisting && sqlite.exists() {
            spec = spec.sqlite(sqlite);
        }
        let backup = ferry_rollback::backup(&spec)
            .await
            .map_err(|e| PhaseError::failed("backing up before phase 1", e))?;
        run.evidence.backup = Some(backup.evidence());
        if preexisting && run.evidence.sqlite_original.is_none() && spec.sqlite_path.is_some() {
            // No earlier attempt got this far, so nothing has touched the file yet.
            run.evidence.sqlite_original = Some(backup.evidence());
        }
        run.evidence.sqlite_created = !sqlite.exists();
        // Durable before the SQLite file is created or changed.
        run.checkpoint()?;

        if let Some(parent) = sqlite.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| PhaseError::failed(format!("creating {}", parent.display()), e))?;
        }
        let (set, snapshots) = checks::sqlite_schema()
            .map_err(|e| PhaseError::failed("loading the SQLite migrations", e))?;
        let mut db = Database::open_sqlite(sqlite)
            .await
            .map_err(|e| PhaseError::failed("opening the SQLite file", e))?;
        let ran = Migrator::new(set.clone())
            .up(&mut db, None)
            .await
            .map_err(|e| PhaseError::failed(format!("migrating {}", sqlite.display()), e))?;
        run.evidence.migrations_applied = ran.iter().map(|r| r.file.clone()).collect();
        run.checkpoint()?;

        let mut checks = vec![Check::new(
            "backup test-restored",
            backup.manifest.test_restore.matched,
            format!(
                "{}: {} files, {} bytes restored into a scratch folder and compared with the manifest",
                backup.id(),
                backup.manifest.test_restore.files,
                backup.manifest.test_restore.bytes
            ),
        )];
        checks.push(
            checks::backup_verifies(run.evidence.backup.as_ref(), "backup verifies", Depth::Full)
                .await,
        );
        checks.extend(checks::sqlite_integrity(&mut db).await);
        checks.extend(checks::schema_at_head(&mut db, &set, &snapshots).await);
        db.close().await;

        // The state phase 2's rollback returns to: the SQLite file as this gate passed it.
        if all_passed(&checks) {
            let gate_backup = ferry_rollback::backup(
                &BackupSpec::new(config.state_dir.join("backups"), BACKUP_LABELS[1]).sqlite(sqlite),
            )
            .await
            .map_err(|e| PhaseError::failed("backing up the SQLite file after gate 1", e))?;
            run.evidence.gate_backup = Some(gate_backup.evidence());
            run.checkpoint()?;
        }
        let files = backup.manifest.contents.totals.files;
        Ok(PhaseResult {
            summary: format!(
                "backup {} ({files} files), SQLite schema v{} at {}",
                backup.id(),
                set.head(),
                sqlite.display()
            ),
            checks,
            details: String::new(),
            findings: Findings::default(),
        })
    }

    /// Both backups still verify (quick: their manifests still open and check out) and the
    /// schema is still at head and equal to the snapshot.
    async fn recheck(cx: &Cx<'_>, rec: &Recorded<Self>, depth: Depth) -> Vec<Check> {
        let mut out = vec![
            checks::backup_verifies(
                rec.evidence.backup.as_ref(),
                "phase-1 backup verifies",
                depth,
            )
            .await,
            checks::backup_verifies(
                rec.evidence.gate_backup.as_ref(),
                "gate-1 SQLite backup verifies",
                depth,
            )
            .await,
        ];
        let sqlite = &cx.config.sqlite.path;
        if !sqlite.is_file() {
            out.push(Check::new(
                "schema at head",
                false,
                format!("{} does not exist", sqlite.display()),
            ));
            return out;
        }
        match (checks::sqlite_schema(), Database::open_sqlite(sqlite).await) {
            (Ok((set, snapshots)), Ok(mut db)) => {
                out.extend(checks::schema_at_head(&mut db, &set, &snapshots).await);
                db.close().await;
            }
            (Err(e), _) => out.push(Check::new("schema at head", false, e.to_string())),
            (_, Err(e)) => out.push(Check::new("schema at head", false, e.to_string())),
        }
        out
    }

    async fn left_behind(cx: &Cx<'_>, rec: &Recorded<Self>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(b) = &rec.evidence.backup {
            out.push(format!("backup {} (complete)", b.id));
        }
        if let Some(b) = &rec.evidence.gate_backup {
            out.push(format!("gate-1 backup {} (complete)", b.id));
        }
        for dir in checks::incomplete_backups(&cx.config.state_dir, &BACKUP_LABELS) {
            let within = checks::backup_time(&dir).is_some_and(|t| {
                t >= rec.started_at - chrono::Duration::seconds(2)
                    && rec.finished_at.is_none_or(|f| t <= f)
            });
            if within {
                out.push(format!(
                    "backup folder {} without a manifest",
                    dir.display()
                ));
            }
        }
        let sqlite = &cx.config.sqlite.path;
        if rec.facts.sqlite_preexisting == Some(false) && sqlite.exists() {
            out.push(format!(
                "SQLite file {} that phase 1 created",
                sqlite.display()
            ));
        } else if rec.facts.sqlite_preexisting == Some(true)
            && !rec.evidence.migrations_applied.is_empty()
        {
            out.push(format!("SQLite file {} migrated", sqlite.display()));
        }
        out
    }

    /// The SQLite file ferry created is moved aside (a pre-existing one is restored from the
    /// backup taken before the first attempt changed it), then the store is compared with
    /// the newest backup manifest (and restored from it when asked).
    async fn rollback(rb: &mut RollbackCx<'_, Self>) -> Result<(Vec<Check>, Value), PhaseError> {
        let config = rb.config();
        let sqlite = config.sqlite.path.clone();
        let store = config.source.store_dir.clone();
        let displaced_root = config.state_dir.join("displaced");
        let mut checks = Vec::new();
        let mut out = serde_json::Map::new();

        let original = rb.newest(|r| r.evidence.sqlite_original.clone());
        let created_by_a_run = rb.runs.iter().any(|r| r.evidence.sqlite_created);
        match rb.facts.sqlite_preexisting {
            None => checks.push(Check::new(
                "SQLite file as before phase 1",
                false,
                format!(
                    "the ledger does not say whether {} existed before phase 1, so it was left in place",
                    sqlite.display()
                ),
            )),
            Some(true) if original.is_some() => {
                let original = original.expect("checked");
                let backup = Backup::open(&original.dir)
                    .map_err(|e| PhaseError::failed("opening the phase-1 backup", e))?;
                rb.step(format!(
                    "restoring {} from backup {} (the replaced version is moved to {})",
                    sqlite.display(),
                    original.id,
                    displaced_root.display()
                ))?;
                let (sqlite2, displaced2) = (sqlite.clone(), displaced_root.clone());
                let report = tokio::task::spawn_blocking(move || {
                    ferry_rollback::restore(
                        &backup,
                        &RestoreTargets::default().sqlite(&sqlite2),
                        &displaced2,
                    )
                })
                .await
                .map_err(|e| PhaseError::failed("restoring the SQLite file", e))?
                .map_err(|e| PhaseError::failed("restoring the SQLite file", e))?;
                checks.push(Check::new(
                    "SQLite file restored",
                    report.verified,
                    format!(
                        "the file as it was before phase 1, from {}; replaced version moved to {}",
                        report.backup_id,
                        report
                            .displaced_dir
                            .as_ref()
                            .map_or("-".into(), |d| d.display().to_string())
                    ),
                ));
                out.insert("sqlite_restore".into(), json!(report));
            }
            Some(true) if !created_by_a_run => checks.push(Check::new(
                "SQLite file as before phase 1",
                true,
                "left as it was: no attempt of phase 1 got as far as changing it (each backs it up first)",
            )),
            Some(_) => {
                if sqlite.exists() {
                    rb.step(format!(
                        "moving the SQLite file phase 1 created, {}, to {}",
                        sqlite.display(),
                        displaced_root.display()
                    ))?;
                }
                let moved = move_aside(&sqlite, &displaced_root)?;
                checks.push(Check::new(
                    "SQLite file ferry created removed",
                    !sqlite.exists(),
                    if moved.is_empty() {
                        "there was none".to_owned()
                    } else {
                        format!("moved to {}", moved.join(", "))
                    },
                ));
                out.insert("sqlite_moved_to".into(), json!(moved));
            }
        }

        if rb.options.export_back {
            // The store is what the export of rollback 4→3 left: the cutover's store with
            // every exported file as written (its inventory was taken after verifying them).
            let exported = rb.cx.entries.iter().rev().find_map(|e| {
                (e.phase == crate::phase::Phase::Sync
                    && e.action == crate::ledger::Action::Rollback
                    && e.outcome == crate::ledger::Outcome::RolledBack)
                    .then(|| {
                        e.evidence["export_back"]["inventory"]
                            .as_str()
                            .map(PathBuf::from)
                    })
                    .flatten()
            });
            if let Some(inv) = exported {
                let name = "store equals the cutover store plus the exported changes";
                let saved: Vec<crate::export_back::InventoryEntry> = std::fs::read(&inv)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| {
                        PhaseError::failed(
                            "checking the store",
                            format!("the export's inventory {} cannot be read", inv.display()),
                        )
                    })?;
                let store2 = store.clone();
                let diff = tokio::task::spawn_blocking(move || {
                    crate::export_back::compare_inventory(&store2, &saved)
                })
                .await
                .map_err(|e| PhaseError::failed("comparing the store", e))?
                .map_err(|e| PhaseError::failed("comparing the store", e))?;
                checks.push(Check::new(
                    name,
                    diff.is_empty(),
                    if diff.is_empty() {
                        format!(
                            "{} compared with the inventory taken after the export, {}",
                            store.display(),
                            inv.display()
                        )
                    } else {
                        format!(
                            "{} files differ from the inventory taken after the export ({}), first: {}",
                            diff.len(),
                            inv.display(),
                            diff.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                ));
                out.insert("store_inventory".into(), json!(inv));
                return Ok((checks, Value::Object(out)));
            }
        }
        let name = "store equals the phase-1 backup";
        let Some(evidence) = rb.newest(|r| r.evidence.backup.clone()) else {
            // ferry never writes the store; with no backup there is no manifest to prove it.
            checks.push(Check::new(
                name,
                true,
                "nothing to compare with: no attempt of phase 1 completed its backup, and ferry never writes the store",
            ));
            return Ok((checks, Value::Object(out)));
        };
        let backup = Backup::open(&evidence.dir)
            .map_err(|e| PhaseError::failed("opening the phase-1 backup", e))?;
        if rb.options.restore_store {
            rb.step(format!(
                "restoring the store {} from backup {}",
                store.display(),
                backup.id()
            ))?;
            let (store2, displaced2) = (store.clone(), displaced_root.clone());
            let report = tokio::task::spawn_blocking(move || {
                ferry_rollback::restore(
                    &backup,
                    &RestoreTargets::default().store(&store2),
                    &displaced2,
                )
            })
            .await
            .map_err(|e| PhaseError::failed("restoring the store", e))?
            .map_err(|e| PhaseError::failed("restoring the store", e))?;
            checks.push(Check::new(
                name,
                report.verified,
                format!(
                    "restored; {} entries that differed were moved aside",
                    report.displaced.len()
                ),
            ));
            out.insert("store_restore".into(), json!(report));
            return Ok((checks, Value::Object(out)));
        }
        let manifest = backup.manifest.contents.store.clone();
        let store2 = store.clone();
        let diff = tokio::task::spawn_blocking(move || {
            manifest.map(|m| ferry_rollback::compare(&m, &store2))
        })
        .await
        .map_err(|e| PhaseError::failed("comparing the store", e))?;
        match diff {
            Some(Ok(d)) if d.is_empty() => checks.push(Check::new(
                name,
                true,
                format!("{} compared with manifest {}", store.display(), backup.id()),
            )),
            Some(Ok(d)) => {
                let first: Vec<&str> = d
                    .missing
                    .iter()
                    .chain(d.extra.iter())
                    .map(String::as_str)
                    .chain(d.changed.iter().map(|c| c.path.as_str()))
                    .take(3)
                    .collect();
                checks.push(Check::new(
                    name,
                    false,
                    format!(
                        "{} missing, {} changed, {} new since the backup (first: {}); ferry never writes the store, so these are the application's changes; `rollback --to 0 --restore-store` puts the backed-up files back and moves the others aside",
                        d.missing.len(),
                        d.changed.len(),
                        d.extra.len(),
                        first.join(", ")
                    ),
                ));
                out.insert("store_differences".into(), json!(d));
            }
            Some(Err(e)) => checks.push(Check::new(name, false, e.to_string())),
            None => checks.push(Check::new(name, false, "the backup holds no store")),
        }
        Ok((checks, Value::Object(out)))
    }
}

/// Moves a SQLite file and its `-wal`/`-shm`/`-journal` companions to
/// `<displaced_root>/<time>/`; returns where they went.
pub(crate) fn move_aside(sqlite: &Path, displaced_root: &Path) -> Result<Vec<String>, PhaseError> {
    let mut moved = Vec::new();
    let dest = displaced_root.join(ferry_core::fsutil::timestamp_for_path());
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = sqlite.as_os_str().to_owned();
        name.push(suffix);
        let path = Path::new(&name);
        if path.symlink_metadata().is_err() {
            continue;
        }
        std::fs::create_dir_all(&dest)
            .map_err(|e| PhaseError::failed(format!("creating {}", dest.display()), e))?;
        let target = dest.join(path.file_name().unwrap_or_default());
        if std::fs::rename(path, &target).is_err() {
            std::fs::copy(path, &target)
                .map_err(|e| PhaseError::failed(format!("moving {} aside", path.display()), e))?;
            std::fs::remove_file(path)
                .map_err(|e| PhaseError::failed(format!("moving {} aside", path.display()), e))?;
        }
        moved.push(target.display().to_string());
    }
    if !moved.is_empty() {
        ferry_core::fsutil::sync_dir(&dest)
            .map_err(|e| PhaseError::failed(format!("syncing {}", dest.display()), e))?;
    }
    Ok(moved)
}
