//! The one module that talks to SQLite (through rusqlite, on blocking threads): read-only
//! connections, the catalog pragmas, and row iteration without copying values.
//!
//! sqlx's async SQLite driver hands rows over a channel one at a time with owned values;
//! reading through rusqlite on a blocking thread borrows each value in place and is several
//! times faster, which matters because every row is read twice (profile, then copy).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection, OpenFlags};

use crate::cell::{Cell, OwnedCell};
use crate::error::{Result, TransferError};

/// A read-only SQLite connection.
pub struct SqliteSource {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSource")
            .field("path", &self.path)
            .finish()
    }
}

/// A row of `pragma_table_list`.
#[derive(Debug, Clone)]
pub struct TableListEntry {
    pub name: String,
    /// `table`, `view`, `shadow` or `virtual`.
    pub kind: String,
    pub without_rowid: bool,
}

/// A row of `sqlite_schema`.
#[derive(Debug, Clone)]
pub struct MasterEntry {
    pub kind: String,
    pub name: String,
    pub table: String,
    pub sql: Option<String>,
}

/// A row of `pragma_table_xinfo`.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub declared: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// Position in the primary key, 1-based; 0 when not part of it.
    pub pk: u32,
    /// 0 normal, 1 hidden (virtual tables), 2 and 3 generated columns.
    pub hidden: i64,
}

/// A row of `pragma_index_list`.
#[derive(Debug, Clone)]
pub struct IndexListEntry {
    pub name: String,
    pub unique: bool,
    /// `c` CREATE INDEX, `u` UNIQUE constraint, `pk` PRIMARY KEY.
    pub origin: String,
    pub partial: bool,
}

/// A key column of `pragma_index_xinfo`.
#[derive(Debug, Clone)]
pub struct IndexColumn {
    /// The column, or `None` for an expression (or the rowid).
    pub name: Option<String>,
    /// -1 rowid, -2 expression.
    pub cid: i64,
    pub desc: bool,
    pub collation: String,
}

/// A row of `pragma_foreign_key_list`.
#[derive(Debug, Clone)]
pub struct ForeignKeyRow {
    pub id: i64,
    pub table: String,
    pub from: String,
    pub to: Option<String>,
    pub on_update: String,
    pub on_delete: String,
}

/// One row being read: borrowed values, valid during the callback.
pub struct SqliteRow<'a>(&'a rusqlite::Row<'a>);

impl SqliteRow<'_> {
    pub fn cell(&self, i: usize) -> Cell<'_> {
        match self.0.get_ref_unwrap(i) {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(v) => Cell::Integer(v),
            ValueRef::Real(v) => Cell::Real(v),
            ValueRef::Text(v) => Cell::Text(v),
            ValueRef::Blob(v) => Cell::Blob(v),
        }
    }
}

/// A bound parameter: the value with its storage class and exact bytes (TEXT is bound as
/// TEXT even when it is not valid UTF-8, so keyset reads compare as SQLite stored it).
struct Param<'a>(&'a OwnedCell);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput::Borrowed;
        Ok(match self.0 {
            OwnedCell::Null => Borrowed(ValueRef::Null),
            OwnedCell::Integer(i) => Borrowed(ValueRef::Integer(*i)),
            OwnedCell::Real(f) => Borrowed(ValueRef::Real(*f)),
            OwnedCell::Text(t) => Borrowed(ValueRef::Text(t)),
            OwnedCell::Blob(b) => Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Refuses a file that is not a SQLite database, with one sentence.
///
/// The file is never opened outside SQLite: closing any descriptor of it releases every
/// POSIX lock this process holds on it (another table reader's shared lock, a fence's write
/// lock), which in rollback-journal mode lets another process write under a reader's feet.
/// SQLite itself defers such closes.
fn check_header(path: &Path) -> Result<()> {
    let not_sqlite = |why: &str| TransferError::NotSqlite {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let len = std::fs::metadata(path)
        .map_err(|e| TransferError::NotSqlite {
            path: path.to_owned(),
            why: format!("it cannot be read ({})", e.kind()),
        })?
        .len();
    if len == 0 {
        return Err(not_sqlite("the file is empty"));
    }
    let is_not_a_database = |e: &rusqlite::Error| {
        matches!(e, rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::NotADatabase)
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(c) => c,
        Err(e) if is_not_a_database(&e) => {
            return Err(not_sqlite("it does not start with the SQLite header"))
        }
        // Anything else is reported, with its cause, by the open that follows.
        Err(_) => return Ok(()),
    };
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Err(e) if is_not_a_database(&e) => {
            Err(not_sqlite("it does not start with the SQLite header"))
        }
        _ => Ok(()),
    }
}

impl SqliteSource {
    /// Opens a SQLite file read-only; it must exist and be a SQLite database (an empty
    /// file is not one: SQLite would read it as an empty database and a transfer would
    /// copy "0 tables").
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(TransferError::Source {
                path: path.to_owned(),
                context: "opening".into(),
                message: "no such file".into(),
            });
        }
        check_header(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| TransferError::Source {
            path: path.to_owned(),
            context: "opening".into(),
            message: e.to_string(),
        })?;
        let source = Self {
            conn,
            path: path.to_owned(),
        };
        source
            .conn
            .busy_timeout(Duration::from_secs(30))
            .map_err(|e| source.err("setting a busy timeout", e))?;
        // Fail now, with the file's name, when it is not a database at all.
        source.scalar_i64("SELECT count(*) FROM sqlite_schema")?;
        Ok(source)
    }

    fn err(&self, context: &str, e: rusqlite::Error) -> TransferError {
        TransferError::Source {
            path: self.path.clone(),
            context: context.to_owned(),
            message: e.to_string(),
        }
    }

    /// Starts the read transaction every read of one table happens in, and takes its snapshot.
    pub fn begin_read(&self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN")
            .map_err(|e| self.err("starting a read transaction", e))?;
        self.scalar_i64("SELECT count(*) FROM sqlite_schema")?;
        Ok(())
    }

    pub fn scalar_i64(&self, sql: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            .map_err(|e| self.err(&format!("running `{sql}`"), e))
    }

    pub fn table_list(&self) -> Result<Vec<TableListEntry>> {
        let ctx = "listing tables";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' ORDER BY name",
            )
            .map_err(|e| self.err(ctx, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TableListEntry {
                    name: r.get(0)?,
                    kind: r.get(1)?,
                    without_rowid: r.get::<_, i64>(2)? != 0,
                })
            })
            .map_err(|e| self.err(ctx, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(ctx, e))
    }

    pub fn master(&self) -> Result<Vec<MasterEntry>> {
        let ctx = "reading sqlite_schema";
        let mut stmt = self
            .conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid")
            .map_err(|e| self.err(ctx, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(MasterEntry {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    table: r.get(2)?,
                    sql: r.get(3)?,
                })
            })
            .map_err(|e| self.err(ctx, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(ctx, e))
    }

    pub fn columns(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        let ctx = format!("reading the columns of table {table:?}");
        let mut stmt = self
            .conn
            .prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid")
            .map_err(|e| self.err(&ctx, e))?;
        let rows = stmt
            .query_map([table], |r| {
                Ok(ColumnInfo {
                    name: r.get(0)?,
                    declared: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    not_null: r.get::<_, i64>(2)? != 0,
                    default: r.get(3)?,
                    pk: r.get::<_, i64>(4)? as u32,
                    hidden: r.get(5)?,
                })
            })
            .map_err(|e| self.err(&ctx, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&ctx, e))
    }

    pub fn indexes(&self, table: &str) -> Result<Vec<IndexListEntry>> {
        let ctx = format!("reading the indexes of table {table:?}");
        let mut stmt = self
            .conn
            .prepare("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY seq DESC")
            .map_err(|e| self.err(&ctx, e))?;
        let rows = stmt
            .query_map([table], |r| {
                Ok(IndexListEntry {
                    name: r.get(0)?,
                    unique: r.get::<_, i64>(1)? != 0,
                    origin: r.get(2)?,
                    partial: r.get::<_, i64>(3)? != 0,
                })
            })
            .map_err(|e| self.err(&ctx, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&ctx, e))
    }

    pub fn index_columns(&self, index: &str) -> Result<Vec<IndexColumn>> {
        let ctx = format!("reading the columns of index {index:?}");
        let mut stmt = self
            .conn
            .prepare("SELECT name, cid, \"desc\", coll FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno")
            .map_err(|e| self.err(&ctx, e))?;
        let rows = stmt
            .query_map([index], |r| {
                Ok(IndexColumn {
                    name: r.get(0)?,
                    cid: r.get(1)?,
                    desc: r.get::<_, i64>(2)? != 0,
                    collation: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                })
            })
            .map_err(|e| self.err(&ctx, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&ctx, e))
    }

    pub fn foreign_keys(&self, table: &str) -> Result<Vec<ForeignKeyRow>> {
        let ctx = format!("reading the foreign keys of table {table:?}");
        let mut stmt = self
            .conn
            .prepare("SELECT id, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
            .map_err(|e| self.err(&ctx, e))?;
        let rows = stmt
            .query_map([table], |r| {
                Ok(ForeignKeyRow {
                    id: r.get(0)?,
                    table: r.get(1)?,
                    from: r.get(2)?,
                    to: r.get(3)?,
                    on_update: r.get(4)?,
                    on_delete: r.get(5)?,
                })
            })
            .map_err(|e| self.err(&ctx, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&ctx, e))
    }

    /// The `sqlite_sequence` value of an AUTOINCREMENT table, when there is one.
    pub fn autoincrement_seq(&self, table: &str) -> Result<Option<i64>> {
        let has =
            self.scalar_i64("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'")?;
        if has != Some(1) {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT max(seq) FROM sqlite_sequence WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| self.err("reading sqlite_sequence", e))
    }

    /// Runs `sql` with `params` and calls `each` on every row until it returns `false`.
    pub fn for_each_row(
        &self,
        context: &str,
        sql: &str,
        params: &[OwnedCell],
        mut each: impl FnMut(&SqliteRow<'_>) -> bool,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err(context, e))?;
        let mut rows = stmt
            .query(params_from_iter(params.iter().map(Param)))
            .map_err(|e| self.err(context, e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(context, e))? {
            if !each(&SqliteRow(row)) {
                break;
            }
        }
        Ok(())
    }
}

/// What `stat` says about a SQLite file and its WAL: enough to notice that something wrote
/// the file between two looks. Taken with `stat` only: opening the file outside SQLite and
/// closing it again would release this process's POSIX locks on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    /// `(suffix, (size, mtime seconds, mtime nanoseconds))`; `None` for a WAL not there.
    parts: Vec<(String, Option<Seen>)>,
}

type Seen = (u64, i64, i64);

impl FileStamp {
    pub(crate) fn take(path: &Path) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let mut parts = Vec::new();
        for suffix in ["", "-wal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = PathBuf::from(name);
            let seen = match std::fs::metadata(&file) {
                Ok(m) => Some((m.len(), m.mtime(), m.mtime_nsec())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => None,
                Err(e) => {
                    return Err(TransferError::Source {
                        path: file,
                        context: "inspecting".into(),
                        message: e.to_string(),
                    })
                }
            };
            parts.push((suffix.to_owned(), seen));
        }
        Ok(Self { parts })
    }

    /// What differs from `earlier`, in words; `None` when nothing does.
    pub(crate) fn changed_since(&self, earlier: &FileStamp) -> Option<String> {
        let changed: Vec<String> = self
            .parts
            .iter()
            .zip(&earlier.parts)
            .filter(|(now, then)| now != then)
            .map(|((suffix, _), _)| {
                if suffix.is_empty() {
                    "the database file".to_owned()
                } else {
                    format!("its {suffix} file")
                }
            })
            .collect();
        (!changed.is_empty()).then(|| changed.join(" and "))
    }
}
