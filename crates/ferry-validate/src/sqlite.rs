//! The SQLite side, read through rusqlite on blocking threads: catalog, counts and scans.
//!
//! Values are taken as SQLite stores them (`sqlite3_column_type` before any conversion,
//! i.e. `typeof()` of every value); TEXT is taken as raw bytes, so invalid UTF-8 is seen,
//! never replaced. The whole validation reads inside one read transaction: one snapshot.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_core::progress::Progress;
use ferry_core::value::{affinity, Affinity};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::canon::{KeyPart, Side, Val};
use crate::error::ValidateError;
use crate::rows::{Collector, Mode, RangeSet, RowBuf};
use crate::spec::{quote_ident, TableSpec};
use crate::sqlpred::{spans_predicate, Dialect};

/// Ranges per statement: keeps SQL short while still reading many segments in one pass.
const SPANS_PER_STATEMENT: usize = 32;

/// A read-only SQLite connection shared by blocking tasks.
#[derive(Debug, Clone)]
pub(crate) struct SqliteDb {
    conn: Arc<Mutex<Connection>>,
    pub path: PathBuf,
}

/// A table as SQLite declares it.
#[derive(Debug, Clone)]
pub(crate) struct SqliteTable {
    pub name: String,
    pub is_virtual: bool,
    pub columns: Vec<SqliteColumn>,
}

#[derive(Debug, Clone)]
pub(crate) struct SqliteColumn {
    pub name: String,
    pub declared: String,
    pub affinity: Affinity,
    pub not_null: bool,
    /// Position in the primary key (1-based), 0 when not part of it.
    pub pk: i64,
}

impl SqliteTable {
    pub fn primary_key(&self) -> Vec<String> {
        let mut pk: Vec<&SqliteColumn> = self.columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        pk.into_iter().map(|c| c.name.clone()).collect()
    }
}

impl SqliteDb {
    pub fn open(path: &Path) -> Result<Self, ValidateError> {
        if !path.is_file() {
            return Err(ValidateError::NoSqliteFile {
                path: path.to_owned(),
            });
        }
        check_header(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open_err = |source| ValidateError::OpenSqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        // One snapshot for the whole validation; memory-mapped reads are faster for scans.
        conn.execute_batch("PRAGMA mmap_size = 268435456; BEGIN;")
            .map_err(open_err)?;
        Ok(SqliteDb {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn run<R, F>(&self, what: &str, f: F) -> Result<R, ValidateError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let path = self.path.clone();
        let what_owned = what.to_owned();
        let joined = tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&guard)
        })
        .await;
        match joined {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(ValidateError::Sqlite {
                path,
                what: what_owned,
                source,
            }),
            Err(_) => Err(ValidateError::Worker { what: what_owned }),
        }
    }

    /// Ends the read transaction.
    pub async fn close(&self) -> Result<(), ValidateError> {
        self.run("ending the read transaction", |c| c.execute_batch("COMMIT"))
            .await
    }
}

/// Refuses a file that is not a SQLite database (an empty file would read as an empty
/// database and "validate" against nothing).
///
/// The file is never opened outside SQLite: closing any descriptor of it releases every
/// POSIX lock this process holds on it — a cutover fence's write lock (`BEGIN IMMEDIATE`),
/// another connection's shared lock — which in rollback-journal mode lets another process
/// write under a reader's feet. SQLite itself defers such closes.
pub(crate) fn check_header(path: &Path) -> Result<(), ValidateError> {
    let len = std::fs::metadata(path)
        .map_err(|e| ValidateError::NotSqlite {
            path: path.to_owned(),
            why: format!("it cannot be read ({})", e.kind()),
        })?
        .len();
    if len == 0 {
        return Err(ValidateError::NotSqlite {
            path: path.to_owned(),
            why: "the file is empty".to_owned(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let not_sqlite = || ValidateError::NotSqlite {
        path: path.to_owned(),
        why: "it does not start with the SQLite header".to_owned(),
    };
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(c) => c,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(not_sqlite())
        }
        // Anything else is reported, with its cause, by the open that follows.
        Err(_) => return Ok(()),
    };
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Err(not_sqlite())
        }
        _ => Ok(()),
    }
}

/// Ordinary and virtual tables of the main schema; SQLite's own tables and the shadow
/// tables behind virtual tables are left out.
pub(crate) fn tables(conn: &Connection) -> rusqlite::Result<Vec<SqliteTable>> {
    let mut stmt = conn.prepare(
        "SELECT name, type FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(names.len());
    for (name, kind) in names {
        out.push(SqliteTable {
            columns: columns(conn, &name)?,
            is_virtual: kind == "virtual",
            name,
        });
    }
    Ok(out)
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<SqliteColumn>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
    )?;
    let rows = stmt.query_map([table], |r| {
        let declared: String = r.get::<_, Option<String>>(1)?.unwrap_or_default();
        Ok((
            SqliteColumn {
                name: r.get(0)?,
                affinity: affinity(&declared),
                declared,
                not_null: r.get::<_, i64>(2)? != 0,
                pk: r.get(3)?,
            },
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (col, hidden) = row?;
        // hidden = 1: a virtual table's hidden column (not data); 2/3: generated columns.
        if hidden != 1 {
            out.push(col);
        }
    }
    Ok(out)
}

pub(crate) fn count(conn: &Connection, table: &str) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM {}", quote_ident(table)),
        [],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// One value as SQLite holds it.
pub(crate) fn val(v: ValueRef<'_>) -> Val<'_> {
    match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(i) => Val::Int(i),
        ValueRef::Real(x) => Val::Real(x),
        ValueRef::Text(t) => Val::Text(t),
        ValueRef::Blob(b) => Val::Blob(b),
    }
}

/// What one scan reads.
#[derive(Debug, Clone)]
pub(crate) struct ScanReq {
    pub spec: Arc<TableSpec>,
    pub set: Arc<RangeSet>,
    pub pushdown: bool,
    pub mode: Mode,
    /// Read only the key columns.
    pub key_only: bool,
}

/// Reads the rows of `req.set` (all of them, filtered here, unless pushed down), encodes
/// each and hands it to a collector.
pub(crate) fn scan(
    conn: &Connection,
    req: &ScanReq,
    progress: Option<&Progress>,
) -> rusqlite::Result<Collector> {
    let spec = &req.spec;
    let cols = if req.key_only {
        &spec.cols[..spec.n_key]
    } else {
        &spec.cols[..]
    };
    let n_key = if req.key_only { cols.len() } else { spec.n_key };
    let select: Vec<String> = cols.iter().map(|c| quote_ident(&c.source)).collect();
    let base = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        quote_ident(&spec.source)
    );
    let mut statements: Vec<(String, Vec<KeyPart>)> = Vec::new();
    if req.pushdown && !req.set.covers_all() {
        let spans = req.set.spans();
        for chunk in spans.chunks(SPANS_PER_STATEMENT) {
            let mut params = Vec::new();
            match spans_predicate(
                Dialect::Sqlite,
                &spec.cols[..spec.n_key],
                chunk,
                &mut params,
            ) {
                Some(pred) => statements.push((format!("{base} WHERE {pred}"), params)),
                None => {
                    statements = vec![(base.clone(), Vec::new())];
                    break;
                }
            }
        }
    } else {
        statements.push((base, Vec::new()));
    }
    let mut collector = Collector::new(req.mode, Arc::clone(&req.set));
    let mut buf = RowBuf::new(n_key);
    let mut pending = 0u64;
    for (sql, params) in statements {
        tracing::trace!(table = %spec.source, sql = %sql, "sqlite scan");
        let mut stmt = conn.prepare(&sql)?;
        for (i, p) in params.iter().enumerate() {
            match p {
                KeyPart::Int(v) => stmt.raw_bind_parameter(i + 1, v)?,
                KeyPart::Text(s) => stmt.raw_bind_parameter(i + 1, s.as_str())?,
            }
        }
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            buf.start();
            for (i, c) in cols.iter().enumerate() {
                buf.push(c.domain, &val(row.get_ref(i)?), spec.ctx, Side::Source);
            }
            buf.finish();
            collector.row(&buf);
            pending += 1;
            if pending == 4096 {
                if let Some(p) = progress {
                    p.inc(pending, 0);
                }
                pending = 0;
            }
        }
    }
    if let Some(p) = progress {
        p.inc(pending, 0);
    }
    Ok(collector)
}
