//! Capture in the SQLite file: the change log, its triggers, the capture record, and the
//! checks that every pass runs (triggers still there, columns still as the plan says).
//!
//! `install` adds, in one `BEGIN IMMEDIATE` transaction:
//! - `ferry_sync_log(seq INTEGER PRIMARY KEY, tbl, op, captured_at, k1 … kN)`: one row per
//!   changed row, written by the triggers in the writer's own transaction, so it commits or
//!   rolls back with the change. SQLite has one writer at a time, so `seq` follows commit
//!   order and `seq > cursor` never skips a committed change. The key columns `k1 … kN` have
//!   no declared type: SQLite stores each value exactly as the row holds it (storage class,
//!   REAL bits, BLOB and invalid UTF-8 bytes).
//! - `ferry_sync_meta(name, value)`: the capture record (JSON).
//! - three triggers per keyed table (`AFTER INSERT/UPDATE/DELETE`), which work in any SQLite
//!   the application links: `julianday('now')` for the capture time, `IS NOT … COLLATE
//!   BINARY` and `typeof` to notice a changed key (an UPDATE that changes the key logs the
//!   old key too).
//!
//! Tables triggers cannot follow safely are followed by a whole-table digest each pass
//! instead: virtual (full-text) tables, which take no triggers, and tables without a
//! primary key, whose rowids VACUUM may renumber. A digest-followed table larger than
//! `sync.digest_max_rows` is refused at install with one sentence.
//!
//! `seq` has no AUTOINCREMENT (which would add `sqlite_sequence` to the application's
//! schema): pruning never deletes the newest entry, so SQLite's `max(seq) + 1` never reuses
//! a number at or below the cursor.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_core::plan::{TableKind, TablePlan, TransferPlan};
use ferry_core::sql::{quote_ident, quote_literal};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SyncError};

/// The name prefix of every object capture installs (tables and triggers).
pub const OBJECT_PREFIX: &str = "ferry_sync_";
/// The change log table in the SQLite file.
pub const LOG_TABLE: &str = "ferry_sync_log";
/// The capture record table in the SQLite file.
pub const META_TABLE: &str = "ferry_sync_meta";

/// The capture-time expression: Unix seconds with milliseconds, in any SQLite version.
const NOW: &str = "(julianday('now') - 2440587.5) * 86400.0";

/// What `install` put into a SQLite file, kept in `ferry_sync_meta` as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureSpec {
    /// Identifies this installation: PostgreSQL's cursor belongs to one capture, and a new
    /// capture starts from a full reconciliation.
    pub capture_id: String,
    pub installed_at: String,
    /// Key columns in the log (`k1 … kN`): the widest key of a followed table.
    pub key_width: usize,
    pub tables: Vec<CapturedTable>,
    /// Every table of the file at install (ferry's and SQLite's own left out): a table that
    /// appears later is not in the plan, and would not reach PostgreSQL.
    pub all_tables: Vec<String>,
}

/// One table of the plan and how it is followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedTable {
    pub table: String,
    pub follow: Follow,
    /// `name type hidden` of every column at install (`PRAGMA table_xinfo`).
    pub columns: Vec<String>,
}

/// How a table's changes are found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Follow {
    /// Capture triggers log the key of every changed row.
    Triggers {
        key: Vec<String>,
        /// `(name, sql)` of the three triggers, exactly as installed.
        triggers: Vec<(String, String)>,
    },
    /// A whole-table digest each pass; the table is replaced in PostgreSQL when it changed.
    Digest { reason: String },
}

impl CaptureSpec {
    pub fn table(&self, name: &str) -> Option<&CapturedTable> {
        self.tables.iter().find(|t| t.table == name)
    }
}

/// How `install` decides.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Largest table followed by digest; a larger one is refused.
    pub digest_max_rows: u64,
    /// How long to wait for the application's write transaction to end.
    pub busy_timeout: std::time::Duration,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            digest_max_rows: 100_000,
            busy_timeout: std::time::Duration::from_secs(30),
        }
    }
}

pub(crate) fn sqlite_err(
    path: &Path,
    context: impl Into<String>,
) -> impl Fn(rusqlite::Error) -> SyncError + '_ {
    let context = context.into();
    move |e| SyncError::Sqlite {
        path: path.to_owned(),
        context: context.clone(),
        message: crate::error::clean(e),
    }
}

pub(crate) fn open(path: &Path, busy: std::time::Duration) -> Result<Connection> {
    if !path.is_file() {
        return Err(SyncError::Sqlite {
            path: path.to_owned(),
            context: "opening the database".into(),
            message: "no such file".into(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err(path, "opening the database"))?;
    conn.busy_timeout(busy)
        .map_err(sqlite_err(path, "setting the busy timeout"))?;
    Ok(conn)
}

/// Installs capture for every table of `plan` in the SQLite file, or returns the capture
/// already installed for the same tables. Nothing is changed when a table is refused.
pub fn install(path: &Path, plan: &TransferPlan, options: &InstallOptions) -> Result<CaptureSpec> {
    let conn = open(path, options.busy_timeout)?;
    let err = |c: &str| sqlite_err(path, c.to_owned());
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(err("taking the write lock to install capture"))?;
    let res = install_in(&conn, path, plan, options);
    match res {
        Ok((spec, fresh)) => {
            if fresh {
                conn.execute_batch("COMMIT")
                    .map_err(err("committing the capture triggers"))?;
                tracing::info!(tables = spec.tables.len(), "capture installed");
            } else {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Ok(spec)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn install_in(
    conn: &Connection,
    path: &Path,
    plan: &TransferPlan,
    options: &InstallOptions,
) -> Result<(CaptureSpec, bool)> {
    let err = |c: &str| sqlite_err(path, c.to_owned());
    if let Some(existing) = read_spec(conn, path)? {
        let want: BTreeSet<&str> = plan.tables.iter().map(|t| t.source.as_str()).collect();
        let have: BTreeSet<&str> = existing.tables.iter().map(|t| t.table.as_str()).collect();
        if want != have {
            return Err(SyncError::InstalledDifferently {
                path: path.to_owned(),
                message: format!(
                    "installed for {} tables, the plan has {}",
                    have.len(),
                    want.len()
                ),
            });
        }
        verify_in(conn, path, &existing)?;
        return Ok((existing, false));
    }
    let all_tables = user_tables(conn).map_err(err("reading the schema"))?;
    let mut tables = Vec::new();
    for t in &plan.tables {
        if !all_tables.contains(&t.source) {
            return Err(SyncError::Refused {
                table: t.source.clone(),
                reason: "it is in the transfer plan but not in the SQLite file".into(),
            });
        }
        let columns = columns_of(conn, &t.source).map_err(err("reading the columns"))?;
        check_plan_columns(t, &columns)?;
        let follow = match follow_mode(t) {
            Some(reason) => {
                let n: i64 = conn
                    .query_row(
                        &format!("SELECT count(*) FROM {}", quote_ident(&t.source)),
                        [],
                        |r| r.get(0),
                    )
                    .map_err(err("counting rows"))?;
                if n as u64 > options.digest_max_rows {
                    return Err(SyncError::Refused {
                        table: t.source.clone(),
                        reason: format!(
                            "{reason}, so it would be followed by a whole-table digest each pass, which is only practical up to sync.digest_max_rows ({}) rows and it has {n}; give it a primary key or raise the limit",
                            options.digest_max_rows
                        ),
                    });
                }
                Follow::Digest { reason }
            }
            None => Follow::Triggers {
                key: t.primary_key.clone(),
                triggers: Vec::new(),
            },
        };
        tables.push(CapturedTable {
            table: t.source.clone(),
            follow,
            columns,
        });
    }
    let key_width = tables
        .iter()
        .filter_map(|t| match &t.follow {
            Follow::Triggers { key, .. } => Some(key.len()),
            Follow::Digest { .. } => None,
        })
        .max()
        .unwrap_or(1)
        .max(1);
    for t in &mut tables {
        if let Follow::Triggers { key, triggers } = &mut t.follow {
            *triggers = trigger_sql(&t.table, key, key_width);
            for (name, _) in triggers.iter() {
                let taken: Option<String> = conn
                    .query_row(
                        "SELECT type FROM sqlite_master WHERE name = ?1",
                        [name],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err("reading the schema"))?;
                if let Some(kind) = taken {
                    return Err(SyncError::Refused {
                        table: t.table.clone(),
                        reason: format!("a {kind} named {name:?} already exists"),
                    });
                }
            }
        }
    }
    let keys: Vec<String> = (1..=key_width).map(|i| format!("k{i}")).collect();
    conn.execute_batch(&format!(
        "CREATE TABLE {LOG_TABLE} (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL, captured_at REAL NOT NULL, {});
         CREATE TABLE {META_TABLE} (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);",
        keys.join(", ")
    ))
    .map_err(err("creating the change log"))?;
    for t in &tables {
        if let Follow::Triggers { triggers, .. } = &t.follow {
            for (_, sql) in triggers {
                conn.execute_batch(sql).map_err(err(&format!(
                    "creating the capture triggers of {:?}",
                    t.table
                )))?;
            }
        }
    }
    let spec = CaptureSpec {
        capture_id: format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%6fZ"),
            std::process::id()
        ),
        installed_at: chrono::Utc::now().to_rfc3339(),
        key_width,
        tables,
        all_tables: all_tables.into_iter().collect(),
    };
    let json = serde_json::to_string(&spec).expect("the capture record serialises");
    conn.execute(
        &format!("INSERT INTO {META_TABLE} (name, value) VALUES ('capture', ?1)"),
        [json],
    )
    .map_err(err("writing the capture record"))?;
    Ok((spec, true))
}

/// Why a table is followed by digest instead of triggers, or `None` for triggers.
fn follow_mode(t: &TablePlan) -> Option<String> {
    match t.kind {
        TableKind::FullText => Some("it is a virtual (full-text) table, which takes no triggers".into()),
        _ if t.primary_key.is_empty() => Some(
            "it has no primary key, and its rowids may change on VACUUM, so a rowid is not a stable key".into(),
        ),
        _ => None,
    }
}

fn check_plan_columns(t: &TablePlan, columns: &[String]) -> Result<()> {
    let now: Vec<&str> = columns
        .iter()
        .filter(|c| !c.ends_with("\u{1f}1"))
        .map(|c| c.split('\u{1f}').next().unwrap_or(""))
        .collect();
    let planned: Vec<&str> = t
        .columns
        .iter()
        .map(|c| c.source.as_str())
        .filter(|c| !(t.kind == TableKind::FullText && *c == "rowid"))
        .collect();
    for c in &planned {
        if !now.contains(c) {
            return Err(SyncError::SchemaDrift {
                table: t.source.clone(),
                change: format!("column {c:?} of the transfer plan is gone"),
            });
        }
    }
    for c in &now {
        if !planned.contains(c) {
            return Err(SyncError::SchemaDrift {
                table: t.source.clone(),
                change: format!("column {c:?} is not in the transfer plan"),
            });
        }
    }
    Ok(())
}

/// The three capture triggers of a table: `(name, CREATE TRIGGER …)`.
fn trigger_sql(table: &str, key: &[String], width: usize) -> Vec<(String, String)> {
    let cols: Vec<String> = (1..=key.len()).map(|i| format!("k{i}")).collect();
    let _ = width;
    let insert = |op: &str, side: &str| {
        format!(
            "INSERT INTO {LOG_TABLE} (tbl, op, captured_at, {}) VALUES ({}, '{op}', {NOW}, {})",
            cols.join(", "),
            quote_literal(table),
            key.iter()
                .map(|k| format!("{side}.{}", quote_ident(k)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let changed: Vec<String> = key
        .iter()
        .map(|k| {
            let k = quote_ident(k);
            format!("OLD.{k} IS NOT NEW.{k} COLLATE BINARY OR typeof(OLD.{k}) <> typeof(NEW.{k})")
        })
        .collect();
    let old_key = format!(
        "INSERT INTO {LOG_TABLE} (tbl, op, captured_at, {}) SELECT {}, 'K', {NOW}, {} WHERE {}",
        cols.join(", "),
        quote_literal(table),
        key.iter()
            .map(|k| format!("OLD.{}", quote_ident(k)))
            .collect::<Vec<_>>()
            .join(", "),
        changed.join(" OR ")
    );
    let name = |what: &str| format!("ferry_sync_{what}_{table}");
    let t = quote_ident(table);
    vec![
        (
            name("ins"),
            format!(
                "CREATE TRIGGER {} AFTER INSERT ON {t} BEGIN {}; END",
                quote_ident(&name("ins")),
                insert("I", "NEW")
            ),
        ),
        (
            name("upd"),
            format!(
                "CREATE TRIGGER {} AFTER UPDATE ON {t} BEGIN {}; {old_key}; END",
                quote_ident(&name("upd")),
                insert("U", "NEW")
            ),
        ),
        (
            name("del"),
            format!(
                "CREATE TRIGGER {} AFTER DELETE ON {t} BEGIN {}; END",
                quote_ident(&name("del")),
                insert("D", "OLD")
            ),
        ),
    ]
}

/// Every table of the file but SQLite's and ferry's own, sorted.
pub(crate) fn user_tables(conn: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'ferry\\_%' ESCAPE '\\'",
    )?;
    let names = st.query_map([], |r| r.get::<_, String>(0))?;
    names.collect()
}

/// `name␟type␟hidden` of every column, in order.
pub(crate) fn columns_of(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(&format!("PRAGMA table_xinfo({})", quote_ident(table)))?;
    let cols = st.query_map([], |r| {
        Ok(format!(
            "{}\u{1f}{}\u{1f}{}",
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(6)?
        ))
    })?;
    cols.collect()
}

pub(crate) fn read_spec(conn: &Connection, path: &Path) -> Result<Option<CaptureSpec>> {
    let err = sqlite_err(path, "reading the capture record");
    let exists: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [META_TABLE],
            |r| r.get::<_, i64>(0),
        )
        .map_err(&err)?
        > 0;
    if !exists {
        return Ok(None);
    }
    let json: Option<String> = conn
        .query_row(
            &format!("SELECT value FROM {META_TABLE} WHERE name = 'capture'"),
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(&err)?;
    match json {
        None => Ok(None),
        Some(j) => serde_json::from_str(&j)
            .map(Some)
            .map_err(|e| SyncError::Sqlite {
                path: path.to_owned(),
                context: "reading the capture record".into(),
                message: format!("the record in {META_TABLE} is not one this ferry wrote: {e}"),
            }),
    }
}

/// The capture installed in a SQLite file, checked: every trigger exactly as installed,
/// every table's columns as at install, no table added or removed.
pub fn verify(path: &Path) -> Result<CaptureSpec> {
    let conn = open(path, std::time::Duration::from_secs(5))?;
    let spec = read_spec(&conn, path)?.ok_or_else(|| SyncError::NotInstalled {
        path: path.to_owned(),
    })?;
    verify_in(&conn, path, &spec)?;
    Ok(spec)
}

pub(crate) fn verify_in(conn: &Connection, path: &Path, spec: &CaptureSpec) -> Result<()> {
    let err = |c: &str| sqlite_err(path, c.to_owned());
    let log: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [LOG_TABLE],
            |r| r.get(0),
        )
        .map_err(err("reading the schema"))?;
    if log == 0 {
        return Err(SyncError::NotInstalled {
            path: path.to_owned(),
        });
    }
    let now = user_tables(conn).map_err(err("reading the schema"))?;
    for t in &spec.tables {
        if !now.contains(&t.table) {
            return Err(SyncError::SchemaDrift {
                table: t.table.clone(),
                change: "the table is gone".into(),
            });
        }
        if let Follow::Triggers { triggers, .. } = &t.follow {
            for (name, sql) in triggers {
                let found: Option<(String, Option<String>)> = conn
                    .query_row(
                        "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                        [name],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(err("reading the triggers"))?;
                match found {
                    Some((tbl, Some(s))) if tbl == t.table && &s == sql => {}
                    _ => {
                        return Err(SyncError::TriggerMissing {
                            table: t.table.clone(),
                            trigger: name.clone(),
                        })
                    }
                }
            }
        }
        let cols = columns_of(conn, &t.table).map_err(err("reading the columns"))?;
        if cols != t.columns {
            return Err(SyncError::SchemaDrift {
                table: t.table.clone(),
                change: describe_column_change(&t.columns, &cols),
            });
        }
    }
    let was: BTreeSet<&String> = spec.all_tables.iter().collect();
    if let Some(new) = now.iter().find(|n| !was.contains(n)) {
        return Err(SyncError::SchemaDrift {
            table: new.clone(),
            change: "the table appeared after capture was installed, it is not in the transfer plan, so its rows would not reach PostgreSQL".into(),
        });
    }
    Ok(())
}

fn describe_column_change(before: &[String], after: &[String]) -> String {
    let split = |c: &String| {
        let mut it = c.split('\u{1f}');
        (
            it.next().unwrap_or("").to_owned(),
            it.next().unwrap_or("").to_owned(),
        )
    };
    let b: Vec<(String, String)> = before.iter().map(split).collect();
    let a: Vec<(String, String)> = after.iter().map(split).collect();
    for (name, ty) in &a {
        match b.iter().find(|(n, _)| n == name) {
            None => {
                return format!(
                    "column {name:?} ({}) was added",
                    if ty.is_empty() { "no type" } else { ty }
                )
            }
            Some((_, old)) if old != ty => {
                return format!("column {name:?} changed type from {old:?} to {ty:?}")
            }
            _ => {}
        }
    }
    for (name, _) in &b {
        if !a.iter().any(|(n, _)| n == name) {
            return format!("column {name:?} was dropped");
        }
    }
    "its columns were reordered".into()
}

/// Removes the triggers, the change log and the capture record; returns whether capture was
/// installed. The rest of the file is left exactly as it was.
pub fn uninstall(path: &Path) -> Result<bool> {
    let conn = open(path, std::time::Duration::from_secs(30))?;
    let err = |c: &str| sqlite_err(path, c.to_owned());
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(err("taking the write lock to remove capture"))?;
    let res = (|| -> Result<bool> {
        let spec = read_spec(&conn, path)?;
        let mut names: Vec<String> = Vec::new();
        if let Some(spec) = &spec {
            for t in &spec.tables {
                if let Follow::Triggers { triggers, .. } = &t.follow {
                    names.extend(triggers.iter().map(|(n, _)| n.clone()));
                }
            }
        }
        // Triggers ferry named, even when the record is gone.
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'ferry\\_sync\\_%' ESCAPE '\\'")
            .map_err(err("reading the triggers"))?;
        let found: Vec<String> = st
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(err("reading the triggers"))?;
        names.extend(found);
        names.sort();
        names.dedup();
        let mut any = spec.is_some();
        for n in &names {
            conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", quote_ident(n)))
                .map_err(err("dropping a capture trigger"))?;
            any = true;
        }
        for t in [LOG_TABLE, META_TABLE] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [t],
                    |r| r.get(0),
                )
                .map_err(err("reading the schema"))?;
            if n > 0 {
                conn.execute_batch(&format!("DROP TABLE {t}"))
                    .map_err(err("dropping the change log"))?;
                any = true;
            }
        }
        Ok(any)
    })();
    match res {
        Ok(any) => {
            conn.execute_batch("COMMIT")
                .map_err(err("committing the removal of capture"))?;
            Ok(any)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Change-log entries after `seq` (the cutover's [`crate::Cutover::seq`]): writes that still
/// reached SQLite after cutover. 0 when capture is gone.
pub fn written_after_cutover(path: &Path, seq: i64) -> Result<u64> {
    let conn = open(path, std::time::Duration::from_secs(5))?;
    if read_spec(&conn, path)?.is_none() {
        return Ok(0);
    }
    let n: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {LOG_TABLE} WHERE seq > ?1"),
            [seq],
            |r| r.get(0),
        )
        .map_err(sqlite_err(path, "counting writes after cutover"))?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_log_both_keys_of_a_key_change() {
        let sql = trigger_sql("t\"x", &["a".into(), "b".into()], 3);
        assert_eq!(sql.len(), 3);
        assert!(sql[1].1.contains("'K'"), "{}", sql[1].1);
        assert!(sql[1].1.contains("COLLATE BINARY"), "{}", sql[1].1);
        assert!(sql[0].1.contains("ON \"t\"\"x\""), "{}", sql[0].1);
    }
}
