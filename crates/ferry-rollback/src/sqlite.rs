//! Consistent copies of a live SQLite file: header check, `PRAGMA integrity_check` on the
//! source, `VACUUM INTO` a new file, and `integrity_check` on the copy.
//!
//! `VACUUM INTO` reads inside one transaction, so the copy is a snapshot even while another
//! connection writes; unlike the online backup API it does not restart when a writer commits.
//! It does not fsync and always writes a rollback-journal file, so the caller fsyncs, and a
//! WAL source gets its copy switched to WAL here.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::error::{io_at, RollbackError};

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The `-wal`, `-shm` and `-journal` siblings SQLite keeps next to a database file.
pub(crate) const SIDECAR_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Checks that `path` is a regular file with a SQLite header; returns whether it is in WAL
/// mode (header bytes 18 and 19 are 2).
pub(crate) fn check_header(path: &Path) -> Result<bool, RollbackError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RollbackError::SqliteMissing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io_at("inspect", path)(e)),
    };
    let not_sqlite = |reason: &str| RollbackError::NotSqlite {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    if !meta.is_file() {
        return Err(not_sqlite("it is not a regular file"));
    }
    if meta.len() == 0 {
        return Err(not_sqlite("the file is empty"));
    }
    let mut header = Vec::with_capacity(100);
    File::open(path)
        .and_then(|f| f.take(100).read_to_end(&mut header))
        .map_err(io_at("read", path))?;
    if header.len() < 100 || &header[..16] != MAGIC {
        return Err(not_sqlite(
            "it does not start with the SQLite header \"SQLite format 3\"",
        ));
    }
    Ok(header[18] == 2 && header[19] == 2)
}

/// Runs `integrity_check` on `src`, then `VACUUM INTO dst` (which must not exist), then
/// checks the copy. Returns the copy's `integrity_check` result (always `ok`).
pub(crate) async fn copy_consistent(
    src: &Path,
    dst: &Path,
    wal: bool,
) -> Result<String, RollbackError> {
    let dst_text = dst.to_str().ok_or_else(|| RollbackError::NonUtf8Name {
        path: dst.to_path_buf(),
    })?;
    // Read-write on purpose: a read-only connection to a WAL database leaves empty `-wal` and
    // `-shm` files behind, and only reads are issued here.
    let mut conn = open(src).await?;
    let res = async {
        integrity_check(&mut conn, src).await?;
        sqlx::query("VACUUM INTO ?1")
            .bind(dst_text)
            .execute(&mut conn)
            .await
            .map_err(|e| match sqlx_error(src, "copied with VACUUM INTO", e) {
                // The source is only read: a full disk is the copy's.
                RollbackError::DiskFull { source, .. } => RollbackError::DiskFull {
                    path: dst.to_path_buf(),
                    source,
                },
                other => other,
            })?;
        Ok::<_, RollbackError>(())
    }
    .await;
    let closed = conn.close().await;
    res?;
    closed.map_err(|e| sqlx_error(src, "closed", e))?;

    let mut copy = open(dst).await?;
    let res = async {
        if wal {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut copy)
                .await
                .map_err(|e| sqlx_error(dst, "switched to WAL", e))?;
        }
        integrity_check(&mut copy, dst).await
    }
    .await;
    let closed = copy.close().await;
    let verdict = res?;
    closed.map_err(|e| sqlx_error(dst, "closed", e))?;
    // The last connection to close checkpoints and deletes the WAL; anything left would be
    // state outside the hashed file.
    for suffix in SIDECAR_SUFFIXES {
        let side = sidecar(dst, suffix);
        if side.exists() {
            fs::remove_file(&side).map_err(io_at("remove", &side))?;
        }
    }
    Ok(verdict)
}

pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

async fn open(path: &Path) -> Result<SqliteConnection, RollbackError> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        // A writer holding the lock briefly must not fail the backup.
        .busy_timeout(Duration::from_secs(60))
        .connect()
        .await
        .map_err(|e| sqlx_error(path, "opened", e))
}

async fn integrity_check(
    conn: &mut SqliteConnection,
    path: &Path,
) -> Result<String, RollbackError> {
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| sqlx_error(path, "checked", e))?;
    if rows.len() == 1 && rows[0] == "ok" {
        return Ok("ok".to_owned());
    }
    let shown: Vec<&str> = rows.iter().take(3).map(String::as_str).collect();
    let more = rows.len().saturating_sub(shown.len());
    let mut detail = format!("integrity_check reports {}", shown.join("; "));
    if more > 0 {
        detail.push_str(&format!(" and {more} more problems"));
    }
    Err(RollbackError::SqliteCorrupt {
        path: path.to_path_buf(),
        detail,
    })
}

/// Maps SQLite's result codes to the errors a user can act on.
fn sqlx_error(path: &Path, action: &'static str, e: sqlx::Error) -> RollbackError {
    let path = path.to_path_buf();
    let primary = match &e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff),
        _ => None,
    };
    match primary {
        // SQLITE_NOTADB
        Some(26) => RollbackError::NotSqlite {
            path,
            reason: e.to_string(),
        },
        // SQLITE_CORRUPT
        Some(11) => RollbackError::SqliteCorrupt {
            path,
            detail: e.to_string(),
        },
        // SQLITE_FULL
        Some(13) => RollbackError::DiskFull {
            path,
            source: io::Error::new(io::ErrorKind::StorageFull, e.to_string()),
        },
        _ => RollbackError::Sqlite {
            path,
            action,
            error: e,
        },
    }
}
