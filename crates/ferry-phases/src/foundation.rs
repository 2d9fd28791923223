//! Phase 1, foundation: back up the store (and an existing SQLite file), apply the SQLite
//! migrations, and gate on a proven backup and a schema equal to the reviewed snapshot.

use std::path::Path;

use ferry_core::config::Config;
use ferry_rollback::{Backup, BackupSpec, RestoreTargets};
use ferry_schema::{Database, Migrator};
use serde_json::{json, Value};

use crate::checks;
use crate::error::PhaseError;
use crate::gate::{all_passed, Check};
use crate::runner::{scope_digest, Ctx, PhaseResult, RollbackOptions};

pub(crate) async fn run(ctx: &mut Ctx<'_>) -> Result<PhaseResult, PhaseError> {
    let config = ctx.config;
    let store = &config.source.store_dir;
    let sqlite = &config.sqlite.path;
    ctx.evidence
        .insert("scope_digest".into(), json!(scope_digest(config)));
    ctx.evidence.insert("store_dir".into(), json!(store));
    ctx.evidence.insert("sqlite_path".into(), json!(sqlite));
    let preexisting = sqlite.exists();
    ctx.evidence
        .insert("sqlite_preexisting".into(), json!(preexisting));

    let mut spec = BackupSpec::new(config.state_dir.join("backups"), "phase1").store(store);
    if preexisting {
        spec = spec.sqlite(sqlite);
    }
    let backup = ferry_rollback::backup(&spec)
        .await
        .map_err(|e| PhaseError::failed("backing up before phase 1", e))?;
    ctx.evidence
        .insert("backup".into(), json!(backup.evidence()));

    if let Some(parent) = sqlite.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| PhaseError::failed(format!("creating {}", parent.display()), e))?;
    }
    let (set, snapshots) = checks::sqlite_schema()
        .map_err(|e| PhaseError::failed("loading the SQLite migrations", e))?;
    let mut db = Database::open_sqlite(sqlite)
        .await
        .map_err(|e| PhaseError::failed("opening the SQLite file", e))?;
    ctx.evidence
        .insert("sqlite_created".into(), json!(!preexisting));
    let ran = Migrator::new(set.clone())
        .up(&mut db, None)
        .await
        .map_err(|e| PhaseError::failed(format!("migrating {}", sqlite.display()), e))?;
    ctx.evidence.insert(
        "migrations_applied".into(),
        json!(ran.iter().map(|r| r.file.clone()).collect::<Vec<_>>()),
    );

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
        checks::backup_verifies(
            &Value::Object(ctx.evidence.clone()),
            "backup",
            "backup verifies",
        )
        .await,
    );
    checks.extend(checks::sqlite_integrity(&mut db).await);
    checks.extend(checks::schema_at_head(&mut db, &set, &snapshots).await);
    db.close().await;

    // The state phase 2's rollback returns to: the SQLite file as this gate passed it.
    if all_passed(&checks) {
        let gate_backup = ferry_rollback::backup(
            &BackupSpec::new(config.state_dir.join("backups"), "gate1").sqlite(sqlite),
        )
        .await
        .map_err(|e| PhaseError::failed("backing up the SQLite file after gate 1", e))?;
        ctx.evidence
            .insert("gate_backup".into(), json!(gate_backup.evidence()));
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
    })
}

/// Phase 1's evidence still holds: both backups verify and the schema is still at head and
/// equal to the snapshot.
pub(crate) async fn recheck(config: &Config, evidence: &Value) -> Vec<Check> {
    let mut checks = vec![
        checks::backup_verifies(evidence, "backup", "phase-1 backup verifies").await,
        checks::backup_verifies(evidence, "gate_backup", "gate-1 SQLite backup verifies").await,
    ];
    match (
        checks::sqlite_schema(),
        Database::open_sqlite(&config.sqlite.path).await,
    ) {
        (Ok((set, snapshots)), Ok(mut db)) => {
            checks.extend(checks::schema_at_head(&mut db, &set, &snapshots).await);
            db.close().await;
        }
        (Err(e), _) => checks.push(Check::new("schema at head", false, e.to_string())),
        (_, Err(e)) => checks.push(Check::new("schema at head", false, e.to_string())),
    }
    checks
}

/// Undoes phase 1: the SQLite file ferry created is moved aside (a pre-existing one is
/// restored from the phase-1 backup), then the store is compared with the backup manifest
/// (and restored from it when asked).
pub(crate) async fn rollback(
    config: &Config,
    evidence: &Value,
    options: &RollbackOptions,
) -> Result<(Vec<Check>, Value), PhaseError> {
    let sqlite = config.sqlite.path.clone();
    let store = config.source.store_dir.clone();
    let displaced_root = config.state_dir.join("displaced");
    let preexisting = evidence
        .get("sqlite_preexisting")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let backup_dir = evidence
        .get("backup")
        .and_then(|b| b.get("dir"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let backup = match &backup_dir {
        Some(dir) => Some(
            Backup::open(Path::new(dir))
                .map_err(|e| PhaseError::failed("opening the phase-1 backup", e))?,
        ),
        None => None,
    };
    let mut checks = Vec::new();
    let mut out = serde_json::Map::new();

    if preexisting {
        let backup = backup.clone().ok_or_else(|| {
            PhaseError::failed(
                "rolling back phase 1",
                "the ledger has no phase-1 backup to restore the SQLite file from",
            )
        })?;
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
    } else {
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

    match backup {
        None => checks.push(Check::new(
            "store equals the phase-1 backup",
            false,
            "no phase-1 backup was recorded",
        )),
        Some(backup) => {
            if options.restore_store {
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
                    "store equals the phase-1 backup",
                    report.verified,
                    format!(
                        "restored; {} entries that differed were moved aside",
                        report.displaced.len()
                    ),
                ));
                out.insert("store_restore".into(), json!(report));
            } else {
                let manifest = backup.manifest.contents.store.clone();
                let store2 = store.clone();
                let diff = tokio::task::spawn_blocking(move || {
                    manifest.map(|m| ferry_rollback::compare(&m, &store2))
                })
                .await
                .map_err(|e| PhaseError::failed("comparing the store", e))?;
                match diff {
                    Some(Ok(d)) if d.is_empty() => checks.push(Check::new(
                        "store equals the phase-1 backup",
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
                            "store equals the phase-1 backup",
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
                    Some(Err(e)) => checks.push(Check::new(
                        "store equals the phase-1 backup",
                        false,
                        e.to_string(),
                    )),
                    None => checks.push(Check::new(
                        "store equals the phase-1 backup",
                        false,
                        "the backup holds no store",
                    )),
                }
            }
        }
    }
    Ok((checks, Value::Object(out)))
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
        if !path.exists() {
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
