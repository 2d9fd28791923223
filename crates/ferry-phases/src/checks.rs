//! Checks several gates share: SQLite integrity and foreign keys, schema at head and equal
//! to the reviewed snapshot, backups that still verify, interrupted backup folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ferry_rollback::{Backup, BackupEvidence};
use ferry_schema::{Database, MigrationSet, Migrator, SnapshotSet};
use sqlx::Row;

use crate::gate::Check;
use crate::module::Depth;

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check` on an open SQLite database.
pub(crate) async fn sqlite_integrity(db: &mut Database) -> Vec<Check> {
    let Some(conn) = db.sqlite() else {
        return Vec::new();
    };
    let integrity = match sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
    {
        Ok(lines) if lines == ["ok"] => Check::new("integrity_check", true, "ok"),
        Ok(lines) => Check::new(
            "integrity_check",
            false,
            lines.into_iter().take(5).collect::<Vec<_>>().join("; "),
        ),
        Err(e) => Check::new("integrity_check", false, e.to_string()),
    };
    let fk = match sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) if rows.is_empty() => Check::new("foreign_key_check", true, "no violations"),
        Ok(rows) => {
            let first: Vec<String> = rows
                .iter()
                .take(5)
                .map(|r| {
                    let table: String = r.try_get(0).unwrap_or_default();
                    let rowid: Option<i64> = r.try_get(1).unwrap_or_default();
                    let parent: String = r.try_get(2).unwrap_or_default();
                    format!(
                        "{table} rowid {} → {parent}",
                        rowid.map_or("?".into(), |v| v.to_string())
                    )
                })
                .collect();
            Check::new(
                "foreign_key_check",
                false,
                format!("{} violations, first: {}", rows.len(), first.join(", ")),
            )
        }
        Err(e) => Check::new("foreign_key_check", false, e.to_string()),
    };
    vec![integrity, fk]
}

/// Schema at head, ledger clean, and the live dump equal to the reviewed snapshot of head.
pub(crate) async fn schema_at_head(
    db: &mut Database,
    set: &MigrationSet,
    snapshots: &SnapshotSet,
) -> Vec<Check> {
    let migrator = Migrator::new(set.clone());
    let mut checks = Vec::new();
    match migrator.status(db).await {
        Ok(status) => checks.push(Check::new(
            "schema at head",
            status.is_clean_at_head(),
            format!("version {} of {}", status.current, status.head),
        )),
        Err(e) => checks.push(Check::new("schema at head", false, e.to_string())),
    }
    checks.push(match migrator.verify(db).await {
        Ok(()) => Check::new(
            "migration ledger clean",
            true,
            "no dirty row, no checksum drift",
        ),
        Err(e) => Check::new("migration ledger clean", false, e.to_string()),
    });
    checks.push(match ferry_schema::dump(db).await {
        Ok(live) => {
            let live = without_runtime_tables(&live);
            let cmp = ferry_schema::compare_snapshot(snapshots, set.head(), &live);
            let detail = if cmp.equal {
                format!("equal to the reviewed snapshot of version {}", set.head())
            } else {
                format!(
                    "{} lines differ, first: {}",
                    cmp.diff.len(),
                    cmp.diff
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" | ")
                )
            };
            Check::new("schema equals reviewed snapshot", cmp.equal, detail)
        }
        Err(e) => Check::new("schema equals reviewed snapshot", false, e.to_string()),
    });
    checks
}

/// The backup `evidence` names still checks out: at [`Depth::Full`] every file is
/// re-hashed against the manifest; at [`Depth::Quick`] the manifest opens and its seal
/// (digest, paths, test-restore verdict) holds.
pub(crate) async fn backup_verifies(
    evidence: Option<&BackupEvidence>,
    name: &str,
    depth: Depth,
) -> Check {
    let Some(evidence) = evidence else {
        return Check::new(name, false, "the ledger names no such backup");
    };
    let dir = evidence.dir.clone();
    let sealed = evidence.manifest_sha256.clone();
    let res = tokio::task::spawn_blocking(move || {
        let backup = Backup::open(&dir)?;
        let report = match depth {
            Depth::Full => Some(ferry_rollback::verify(&backup)?),
            Depth::Quick => None,
        };
        Ok::<_, ferry_rollback::RollbackError>((backup, report))
    })
    .await;
    match res {
        Ok(Ok((backup, _))) if backup.manifest.manifest_sha256 != sealed => Check::new(
            name,
            false,
            format!(
                "{}: its manifest is not the one the gate recorded",
                backup.id()
            ),
        ),
        Ok(Ok((backup, None))) => Check::new(
            name,
            true,
            format!(
                "{}: manifest intact ({} files; re-hashed before the next phase)",
                backup.id(),
                backup.manifest.contents.totals.files
            ),
        ),
        Ok(Ok((backup, Some(report)))) if report.is_ok() => Check::new(
            name,
            true,
            format!(
                "{}: {} files re-hashed, all match",
                backup.id(),
                report.files_checked
            ),
        ),
        Ok(Ok((backup, Some(report)))) => Check::new(
            name,
            false,
            format!(
                "{}: {} missing, {} changed, {} extra{}",
                backup.id(),
                report.missing.len(),
                report.changed.len(),
                report.extra.len(),
                report
                    .manifest_problem
                    .map(|p| format!("; {p}"))
                    .unwrap_or_default()
            ),
        ),
        Ok(Err(e)) => Check::new(name, false, e.to_string()),
        Err(e) => Check::new(name, false, e.to_string()),
    }
}

/// Backup folders under `state_dir/backups/` with one of `labels` that have no manifest
/// (interrupted backups), and the hidden test-restore folders of interrupted backups.
pub(crate) fn incomplete_backups(state_dir: &Path, labels: &[&str]) -> Vec<PathBuf> {
    let root = state_dir.join("backups");
    let Ok(items) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        if !path.is_dir() {
            continue;
        }
        let id = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".test-restore"));
        let incomplete = match id {
            Some(_) => true,
            None => !path.join(ferry_rollback::MANIFEST_FILE).is_file(),
        };
        let id = id.unwrap_or(&name);
        if incomplete && labels.iter().any(|l| backup_label(id) == Some(*l)) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The label of a backup id `<label>-<yyyymmddThhmmssmmmZ>`.
fn backup_label(id: &str) -> Option<&str> {
    let (label, time) = id.rsplit_once('-')?;
    parse_backup_time(time).map(|_| label)
}

/// When the backup folder `dir` was started, from its name.
pub(crate) fn backup_time(dir: &Path) -> Option<DateTime<Utc>> {
    let name = dir.file_name()?.to_str()?;
    let id = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".test-restore"))
        .unwrap_or(name);
    parse_backup_time(id.rsplit_once('-')?.1)
}

fn parse_backup_time(text: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S%3fZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Row counts of `tables` in a SQLite file, read-only (a missing file is an error, never
/// created).
pub(crate) async fn sqlite_counts(
    path: &Path,
    tables: impl Iterator<Item = &str>,
) -> Result<BTreeMap<String, u64>, String> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    let mut conn = sqlx::ConnectOptions::connect(&options)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}",
            ferry_core::sql::quote_ident(t)
        ))
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("counting the rows of {t}: {e}"))?;
        out.insert(t.to_owned(), n.max(0) as u64);
    }
    sqlx::Connection::close(conn).await.ok();
    Ok(out)
}

/// The embedded SQLite migrations and snapshots.
pub(crate) fn sqlite_schema() -> Result<(MigrationSet, SnapshotSet), ferry_schema::SchemaError> {
    Ok((
        MigrationSet::from_embedded(ferry_migrations::SQLITE)?,
        SnapshotSet::from_embedded(ferry_migrations::SQLITE_SNAPSHOTS),
    ))
}

/// The embedded PostgreSQL migrations and snapshots.
pub(crate) fn postgres_schema() -> Result<(MigrationSet, SnapshotSet), ferry_schema::SchemaError> {
    Ok((
        MigrationSet::from_embedded(ferry_migrations::POSTGRES)?,
        SnapshotSet::from_embedded(ferry_migrations::POSTGRES_SNAPSHOTS),
    ))
}

/// Per-table digests of a SQLite file's data tables (ferry's own `ferry_*` bookkeeping
/// left out), as evidence a later recheck compares with.
pub(crate) async fn sqlite_digests(path: &Path) -> Result<ferry_validate::SqliteDigest, String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        ferry_validate::digest_sqlite(&path, &ferry_validate::DigestOptions::default())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Hex SHA-256 of a file's bytes.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The dump without the tables ferry-transfer creates at run time for its own bookkeeping
/// (`ferry_transfer_*`), and phase 4's capture (`ferry_sync_*` tables and triggers in
/// SQLite, sync bookkeeping in PostgreSQL): they belong to no migration, so no snapshot has
/// them.
pub(crate) fn without_runtime_tables(dump: &str) -> String {
    let mut out = String::with_capacity(dump.len());
    let mut skipping = false;
    for line in dump.lines() {
        if !line.starts_with(' ') {
            skipping = line.starts_with("table \"ferry_transfer_")
                || line.starts_with("table \"ferry_sync_")
                || line.starts_with("trigger \"ferry_sync_");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
