//! The SQLite side of a pass: read change-log entries after the cursor, read the current
//! state of the rows they name (one read transaction), and encode it for PostgreSQL with
//! the plan's conversions (`ferry_core::pgcopy::write_field`), so a synced value lands
//! exactly as the bulk copy would have written it.
//!
//! State-based: the log says *which* rows changed; what is applied is the row as it is now
//! (present: its values; absent: a delete). Replaying an entry therefore re-applies the
//! current state, which is what makes a repeated batch harmless.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::pgcopy::cell::{Cell, OwnedCell};
use ferry_core::pgcopy::{self, ConvertOptions};
use ferry_core::plan::{TableKind, TablePlan, TransferPlan};
use ferry_core::sql::quote_ident;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::capture::{self, sqlite_err, CaptureSpec, Follow, LOG_TABLE};
use crate::error::{Result, SyncError};

/// A value the plan could not convert, or a row PostgreSQL refused: never dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// SQLite table.
    pub table: String,
    /// `column=value, …` of the primary key (`rowid=N` for a table without one).
    pub key: String,
    /// SQLite column (empty when PostgreSQL refused the row as a whole).
    pub column: String,
    pub reason: String,
    pub bytes_hex: Option<String>,
}

/// How one plan table is read.
#[derive(Debug, Clone)]
pub(crate) struct SourceTable {
    pub plan: TablePlan,
    pub digest: bool,
    /// Positions of the key columns among the plan's columns.
    pub key_pos: Vec<usize>,
    lookup_eq: String,
    lookup_is: String,
    /// All rows: plan columns, then (tables without a key) the rowid for naming rejects.
    scan: String,
    scan_rowid: bool,
}

impl SourceTable {
    fn new(plan: &TablePlan, digest: bool) -> Result<Self> {
        let t = quote_ident(&plan.source);
        let cols: Vec<String> = plan
            .columns
            .iter()
            .map(|c| {
                if plan.kind == TableKind::FullText && c.source == "rowid" {
                    "rowid".to_owned()
                } else {
                    quote_ident(&c.source)
                }
            })
            .collect();
        let key_pos: Vec<usize> = plan
            .primary_key
            .iter()
            .map(|k| {
                plan.columns
                    .iter()
                    .position(|c| &c.source == k)
                    .ok_or_else(|| SyncError::Plan {
                        message: format!(
                            "key column {k:?} of table {:?} is not among its columns",
                            plan.source
                        ),
                    })
            })
            .collect::<Result<_>>()?;
        let cond = |op: &str| {
            plan.primary_key
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{} {op} ?{}", quote_ident(k), i + 1))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let select = format!("SELECT {} FROM {t}", cols.join(", "));
        let rowid = ["rowid", "_rowid_", "oid"].into_iter().find(|r| {
            !plan
                .columns
                .iter()
                .any(|c| c.source.eq_ignore_ascii_case(r))
        });
        let scan_rowid = plan.primary_key.is_empty() && plan.kind != TableKind::FullText;
        let scan = match (scan_rowid, rowid) {
            (true, Some(r)) => format!("SELECT {}, {r} FROM {t}", cols.join(", ")),
            _ => select.clone(),
        };
        Ok(Self {
            digest,
            key_pos,
            lookup_eq: format!("{select} WHERE {}", cond("=")),
            lookup_is: format!("{select} WHERE {}", cond("IS")),
            scan,
            scan_rowid: scan_rowid && rowid.is_some(),
            plan: plan.clone(),
        })
    }
}

/// The changes of one table in one batch, encoded for PostgreSQL.
#[derive(Debug, Default)]
pub(crate) struct TableChange {
    pub table: usize,
    /// Present rows, as binary COPY rows (no header or trailer).
    pub rows: Vec<u8>,
    pub n_rows: u64,
    /// Where each row ends in `rows`, and its key, to isolate a row PostgreSQL refuses.
    pub row_ends: Vec<usize>,
    pub row_keys: Vec<String>,
    /// Every touched key that PostgreSQL can hold, as binary COPY rows of the key columns:
    /// these rows are deleted before the present rows are inserted.
    pub keys: Vec<u8>,
    pub n_keys: u64,
    /// Replace the whole table (digest-followed tables, full passes).
    pub replace_all: bool,
    /// The new digest of a digest-followed table.
    pub digest: Option<String>,
    pub rejects: Vec<Reject>,
    /// Keys applied without a reject: earlier rejects of these keys are resolved.
    pub resolved: Vec<String>,
    /// Change-log entries this change covers.
    pub changes: u64,
    /// Capture times of those entries (Unix seconds).
    pub captured: Vec<f64>,
    /// The table's cursor after this change.
    pub cursor: Option<i64>,
}

/// What one read of the change log found.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub changes: Vec<TableChange>,
    /// The last entry read (the new global cursor once applied).
    pub last_seq: Option<i64>,
    /// Entries read (including those already applied by a table's own cursor).
    pub entries: u64,
    /// Capture time of the oldest entry not yet applied.
    pub oldest_pending: Option<f64>,
    /// The read stopped at the batch limit: more entries wait.
    pub more: bool,
}

/// A read connection to the SQLite file, with the capture record.
pub(crate) struct Source {
    pub path: PathBuf,
    pub conn: Connection,
    pub spec: CaptureSpec,
    pub tables: Vec<SourceTable>,
    pub by_name: HashMap<String, usize>,
    schema_version: Option<i64>,
    /// Inside the fence's `BEGIN IMMEDIATE`: reads need no transaction of their own.
    pub fenced: bool,
    pub conv: ConvertOptions,
}

impl Source {
    pub fn open(path: &Path, plan: &TransferPlan, conv: ConvertOptions) -> Result<Self> {
        let conn = capture::open(path, Duration::from_secs(30))?;
        let spec = capture::read_spec(&conn, path)?.ok_or_else(|| SyncError::NotInstalled {
            path: path.to_owned(),
        })?;
        let mut tables = Vec::new();
        for t in &plan.tables {
            let cap = spec
                .table(&t.source)
                .ok_or_else(|| SyncError::InstalledDifferently {
                    path: path.to_owned(),
                    message: format!("table {:?} of the plan is not captured", t.source),
                })?;
            tables.push(SourceTable::new(
                t,
                matches!(cap.follow, Follow::Digest { .. }),
            )?);
        }
        if spec.tables.len() != tables.len() {
            return Err(SyncError::InstalledDifferently {
                path: path.to_owned(),
                message: format!(
                    "{} tables are captured, the plan has {}",
                    spec.tables.len(),
                    tables.len()
                ),
            });
        }
        let by_name = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.plan.source.clone(), i))
            .collect();
        Ok(Self {
            path: path.to_owned(),
            conn,
            spec,
            tables,
            by_name,
            schema_version: None,
            fenced: false,
            conv,
        })
    }

    fn err(&self, context: &str) -> impl Fn(rusqlite::Error) -> SyncError + '_ {
        sqlite_err(&self.path, context.to_owned())
    }

    /// Runs `f` inside one read transaction (or inside the fence's transaction).
    pub fn in_snapshot<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.fenced {
            return f(self);
        }
        self.conn
            .execute_batch("BEGIN")
            .map_err(self.err("starting a read transaction"))?;
        let res = f(self);
        let end = self
            .conn
            .execute_batch(if res.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let out = res?;
        end.map_err(self.err("ending a read transaction"))?;
        Ok(out)
    }

    /// Checks triggers and columns when the schema changed since the last check.
    pub fn check_schema(&mut self) -> Result<()> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(self.err("reading the schema version"))?;
        if self.schema_version == Some(v) {
            return Ok(());
        }
        capture::verify_in(&self.conn, &self.path, &self.spec)?;
        self.schema_version = Some(v);
        Ok(())
    }

    /// The newest entry, and the capture time of the first entry after `after`.
    pub fn positions(&self, after: i64) -> Result<(i64, Option<f64>)> {
        let max: Option<i64> = self
            .conn
            .query_row(&format!("SELECT max(seq) FROM {LOG_TABLE}"), [], |r| {
                r.get(0)
            })
            .map_err(self.err("reading the change log"))?;
        let oldest: Option<f64> = self
            .conn
            .query_row(
                &format!("SELECT captured_at FROM {LOG_TABLE} WHERE seq > ?1 ORDER BY seq LIMIT 1"),
                [after],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(self.err("reading the change log"))?;
        Ok((max.unwrap_or(0), oldest))
    }

    /// Reads the entries after `after` (at most `limit`) and the current state of the rows
    /// they name, and digests the digest-followed tables; call inside [`Self::in_snapshot`].
    pub fn read_batch(
        &mut self,
        after: i64,
        table_cursors: &[i64],
        limit: u64,
        digests: &[Option<String>],
    ) -> Result<Batch> {
        self.check_schema()?;
        let width = self.spec.key_width;
        let keys: Vec<String> = (1..=width).map(|i| format!("k{i}")).collect();
        let sql = format!(
            "SELECT seq, tbl, captured_at, {} FROM {LOG_TABLE} WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            keys.join(", ")
        );
        // Per table: the distinct keys (exact bytes) in first-seen order, entries, times.
        struct Pending {
            keys: Vec<Vec<OwnedCell>>,
            seen: HashSet<Vec<u8>>,
            changes: u64,
            captured: Vec<f64>,
            last: i64,
        }
        let mut pending: HashMap<usize, Pending> = HashMap::new();
        let mut batch = Batch::default();
        {
            let mut st = self
                .conn
                .prepare_cached(&sql)
                .map_err(sqlite_err(&self.path, "reading the change log"))?;
            let mut rows = st
                .query(rusqlite::params![after, limit as i64])
                .map_err(sqlite_err(&self.path, "reading the change log"))?;
            while let Some(r) = rows
                .next()
                .map_err(sqlite_err(&self.path, "reading the change log"))?
            {
                let seq: i64 = r
                    .get(0)
                    .map_err(sqlite_err(&self.path, "reading the change log"))?;
                let tbl: String = r
                    .get(1)
                    .map_err(sqlite_err(&self.path, "reading the change log"))?;
                let at: f64 = r
                    .get(2)
                    .map_err(sqlite_err(&self.path, "reading the change log"))?;
                batch.entries += 1;
                batch.last_seq = Some(seq);
                let Some(&ti) = self.by_name.get(&tbl) else {
                    // A table no longer followed (cannot happen while the record matches).
                    continue;
                };
                if seq <= table_cursors[ti] {
                    continue;
                }
                if batch.oldest_pending.is_none() {
                    batch.oldest_pending = Some(at);
                }
                let n = self.tables[ti].key_pos.len();
                let key: Vec<OwnedCell> = (0..n)
                    .map(|i| to_cell(r.get_ref_unwrap(3 + i)).to_owned_cell())
                    .collect();
                let p = pending.entry(ti).or_insert_with(|| Pending {
                    keys: Vec::new(),
                    seen: HashSet::new(),
                    changes: 0,
                    captured: Vec::new(),
                    last: 0,
                });
                if p.seen.insert(key_bytes(&key)) {
                    p.keys.push(key);
                }
                p.changes += 1;
                p.captured.push(at);
                p.last = seq;
            }
        }
        batch.more = batch.entries == limit;
        let mut order: Vec<usize> = pending.keys().copied().collect();
        order.sort_unstable();
        for ti in order {
            let p = pending.remove(&ti).expect("present");
            let mut change = self.read_keys(ti, &p.keys)?;
            change.changes = p.changes;
            change.captured = p.captured;
            change.cursor = Some(p.last);
            batch.changes.push(change);
        }
        for (ti, known) in digests.iter().enumerate().take(self.tables.len()) {
            if !self.tables[ti].digest {
                continue;
            }
            let digest = self.digest_table(ti)?;
            if known.as_deref() != Some(digest.as_str()) {
                let mut change = self.read_all(ti)?;
                change.digest = Some(digest);
                batch.changes.push(change);
            }
        }
        Ok(batch)
    }

    /// The current state of `keys` of table `ti`, encoded.
    pub fn read_keys(&self, ti: usize, keys: &[Vec<OwnedCell>]) -> Result<TableChange> {
        let t = &self.tables[ti];
        let mut change = TableChange {
            table: ti,
            ..TableChange::default()
        };
        let ctx = format!("reading rows of table {:?}", t.plan.source);
        let key_types: Vec<_> = t
            .key_pos
            .iter()
            .map(|&i| t.plan.columns[i].target_type.clone())
            .collect();
        for key in keys {
            let has_null = key.contains(&OwnedCell::Null);
            let sql = if has_null { &t.lookup_is } else { &t.lookup_eq };
            let mut st = self
                .conn
                .prepare_cached(sql)
                .map_err(sqlite_err(&self.path, ctx.clone()))?;
            let params: Vec<P<'_>> = key.iter().map(P).collect();
            let mut rows = st
                .query(rusqlite::params_from_iter(params.iter()))
                .map_err(sqlite_err(&self.path, ctx.clone()))?;
            let display = key_display(&t.plan, key);
            let mut present = false;
            while let Some(r) = rows.next().map_err(sqlite_err(&self.path, ctx.clone()))? {
                let row_key: Vec<OwnedCell> = t
                    .key_pos
                    .iter()
                    .map(|&i| to_cell(r.get_ref_unwrap(i)).to_owned_cell())
                    .collect();
                if has_null {
                    // A NULL in a primary key: SQLite allows it in rowid tables, a
                    // PostgreSQL primary key cannot hold it.
                    let col = t
                        .key_pos
                        .iter()
                        .zip(&row_key)
                        .find(|(_, c)| **c == OwnedCell::Null)
                        .map(|(&i, _)| t.plan.columns[i].source.clone())
                        .unwrap_or_default();
                    change.rejects.push(Reject {
                        table: t.plan.source.clone(),
                        key: display.clone(),
                        column: col,
                        reason:
                            "the primary key holds NULL, which a PostgreSQL primary key cannot hold"
                                .into(),
                        bytes_hex: None,
                    });
                    present = true;
                    continue;
                }
                // A key column with a NOCASE or RTRIM collation matches other bytes: only the
                // exact key is this row.
                if key_bytes(&row_key) != key_bytes(key) {
                    continue;
                }
                present = true;
                if encode_row(
                    &t.plan,
                    &self.conv,
                    |i| to_cell(r.get_ref_unwrap(i)),
                    &display,
                    &mut change,
                ) {
                    change.resolved.push(display.clone());
                }
            }
            if !present {
                change.resolved.push(display.clone());
            }
            if has_null {
                continue;
            }
            // Every touched key PostgreSQL can hold is deleted first; a key it cannot hold
            // was never stored there.
            let start = change.keys.len();
            pgcopy::begin_row(&mut change.keys, key.len());
            let mut ok = true;
            for (cell, ty) in key.iter().zip(&key_types) {
                if pgcopy::write_field(&mut change.keys, ty, borrow(cell), &self.conv).is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                change.n_keys += 1;
            } else {
                change.keys.truncate(start);
            }
        }
        Ok(change)
    }

    /// Every row of table `ti`, encoded, to replace the table.
    pub fn read_all(&self, ti: usize) -> Result<TableChange> {
        let t = &self.tables[ti];
        let mut change = TableChange {
            table: ti,
            replace_all: true,
            ..TableChange::default()
        };
        let ctx = format!("reading table {:?}", t.plan.source);
        let mut st = self
            .conn
            .prepare(&t.scan)
            .map_err(sqlite_err(&self.path, ctx.clone()))?;
        let mut rows = st.query([]).map_err(sqlite_err(&self.path, ctx.clone()))?;
        let width = t.plan.columns.len();
        while let Some(r) = rows.next().map_err(sqlite_err(&self.path, ctx.clone()))? {
            let display = if t.scan_rowid {
                format!("rowid={}", to_cell(r.get_ref_unwrap(width)).display())
            } else {
                let key: Vec<OwnedCell> = t
                    .key_pos
                    .iter()
                    .map(|&i| to_cell(r.get_ref_unwrap(i)).to_owned_cell())
                    .collect();
                key_display(&t.plan, &key)
            };
            encode_row(
                &t.plan,
                &self.conv,
                |i| to_cell(r.get_ref_unwrap(i)),
                &display,
                &mut change,
            );
        }
        Ok(change)
    }

    /// An order-independent digest of a table's rows, every value with its storage class.
    pub fn digest_table(&self, ti: usize) -> Result<String> {
        let t = &self.tables[ti];
        let ctx = format!("digesting table {:?}", t.plan.source);
        let mut st = self
            .conn
            .prepare(&t.scan)
            .map_err(sqlite_err(&self.path, ctx.clone()))?;
        let mut rows = st.query([]).map_err(sqlite_err(&self.path, ctx.clone()))?;
        let width = t.plan.columns.len();
        let (mut count, mut sum, mut xor) = (0u64, 0u128, 0u128);
        let mut buf = Vec::new();
        // Same hashing as `stream_table`, so a full pass records a digest passes compare.
        while let Some(r) = rows.next().map_err(sqlite_err(&self.path, ctx.clone()))? {
            buf.clear();
            for i in 0..width {
                push_cell(&mut buf, to_cell(r.get_ref_unwrap(i)));
            }
            let h = xxhash_rust::xxh3::xxh3_128(&buf);
            count += 1;
            sum = sum.wrapping_add(h);
            xor ^= h;
        }
        Ok(format!("{count}:{sum:032x}:{xor:032x}"))
    }
}

/// A piece of a whole-table read, streamed to a COPY.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub rows: Vec<u8>,
    pub n_rows: u64,
    pub rejects: Vec<Reject>,
    /// On the last chunk: the table's digest.
    pub digest: Option<String>,
}

const CHUNK_BYTES: usize = 1 << 20;

/// Reads every row of a table in its own read transaction (begun now) on the calling
/// thread, sending encoded chunks of about 1 MiB; the last one carries the digest.
pub(crate) fn stream_table(
    path: &Path,
    t: &SourceTable,
    conv: &ConvertOptions,
    tx: &tokio::sync::mpsc::Sender<Result<Chunk>>,
) -> Result<()> {
    let conn = capture::open(path, Duration::from_secs(30))?;
    let ctx = format!("reading table {:?}", t.plan.source);
    conn.execute_batch("BEGIN")
        .map_err(sqlite_err(path, ctx.clone()))?;
    let mut st = conn
        .prepare(&t.scan)
        .map_err(sqlite_err(path, ctx.clone()))?;
    let mut rows = st.query([]).map_err(sqlite_err(path, ctx.clone()))?;
    let width = t.plan.columns.len();
    let (mut count, mut sum, mut xor) = (0u64, 0u128, 0u128);
    let mut buf = Vec::new();
    let mut change = TableChange::default();
    while let Some(r) = rows.next().map_err(sqlite_err(path, ctx.clone()))? {
        buf.clear();
        for i in 0..width {
            push_cell(&mut buf, to_cell(r.get_ref_unwrap(i)));
        }
        let h = xxhash_rust::xxh3::xxh3_128(&buf);
        count += 1;
        sum = sum.wrapping_add(h);
        xor ^= h;
        let display = if t.scan_rowid {
            format!("rowid={}", to_cell(r.get_ref_unwrap(width)).display())
        } else {
            let key: Vec<OwnedCell> = t
                .key_pos
                .iter()
                .map(|&i| to_cell(r.get_ref_unwrap(i)).to_owned_cell())
                .collect();
            key_display(&t.plan, &key)
        };
        encode_row(
            &t.plan,
            conv,
            |i| to_cell(r.get_ref_unwrap(i)),
            &display,
            &mut change,
        );
        if change.rows.len() >= CHUNK_BYTES {
            let chunk = Chunk {
                rows: std::mem::take(&mut change.rows),
                n_rows: std::mem::take(&mut change.n_rows),
                rejects: std::mem::take(&mut change.rejects),
                digest: None,
            };
            change.row_ends.clear();
            change.row_keys.clear();
            if tx.blocking_send(Ok(chunk)).is_err() {
                return Ok(());
            }
        }
    }
    let _ = tx.blocking_send(Ok(Chunk {
        rows: change.rows,
        n_rows: change.n_rows,
        rejects: change.rejects,
        digest: Some(format!("{count}:{sum:032x}:{xor:032x}")),
    }));
    Ok(())
}

/// Encodes one row into `change` (or its rejects); returns whether it was stored.
fn encode_row<'a>(
    plan: &TablePlan,
    conv: &ConvertOptions,
    cell: impl Fn(usize) -> Cell<'a>,
    display: &str,
    change: &mut TableChange,
) -> bool {
    let start = change.rows.len();
    pgcopy::begin_row(&mut change.rows, plan.columns.len());
    let mut problems = Vec::new();
    for (i, col) in plan.columns.iter().enumerate() {
        // `Adjusted` (a truncated timestamp) only happens when the plan's options ask for
        // it; the transfer lists those cells, sync applies them the same way.
        if let Err(e) = pgcopy::write_field(&mut change.rows, &col.target_type, cell(i), conv) {
            problems.push((i, e));
        }
    }
    if problems.is_empty() {
        change.n_rows += 1;
        change.row_ends.push(change.rows.len());
        change.row_keys.push(display.to_owned());
        return true;
    }
    change.rows.truncate(start);
    for (i, e) in problems {
        change.rejects.push(Reject {
            table: plan.source.clone(),
            key: display.to_owned(),
            column: plan.columns[i].source.clone(),
            reason: e.reason,
            bytes_hex: e.bytes.map(hex::encode),
        });
    }
    false
}

/// `name=value, …` as ferry-transfer names a rejected row.
pub(crate) fn key_display(plan: &TablePlan, key: &[OwnedCell]) -> String {
    plan.primary_key
        .iter()
        .zip(key)
        .map(|(n, c)| format!("{n}={}", borrow(c).display()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn to_cell(v: ValueRef<'_>) -> Cell<'_> {
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Integer(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) => Cell::Text(t),
        ValueRef::Blob(b) => Cell::Blob(b),
    }
}

pub(crate) fn borrow(c: &OwnedCell) -> Cell<'_> {
    match c {
        OwnedCell::Null => Cell::Null,
        OwnedCell::Integer(i) => Cell::Integer(*i),
        OwnedCell::Real(f) => Cell::Real(*f),
        OwnedCell::Text(t) => Cell::Text(t),
        OwnedCell::Blob(b) => Cell::Blob(b),
    }
}

/// A key as exact bytes: storage class, then payload (REAL by its bits).
pub(crate) fn key_bytes(key: &[OwnedCell]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in key {
        push_cell(&mut out, borrow(c));
    }
    out
}

fn push_cell(out: &mut Vec<u8>, c: Cell<'_>) {
    let (tag, bytes): (u8, std::borrow::Cow<'_, [u8]>) = match c {
        Cell::Null => (0, (&[][..]).into()),
        Cell::Integer(i) => (1, i.to_be_bytes().to_vec().into()),
        Cell::Real(f) => (2, f.to_bits().to_be_bytes().to_vec().into()),
        Cell::Text(t) => (3, t.into()),
        Cell::Blob(b) => (4, b.into()),
    };
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(&bytes);
}

/// A key value bound exactly as logged (invalid UTF-8 text stays text).
pub(crate) struct P<'a>(pub &'a OwnedCell);

impl rusqlite::ToSql for P<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            OwnedCell::Null => ValueRef::Null,
            OwnedCell::Integer(i) => ValueRef::Integer(*i),
            OwnedCell::Real(f) => ValueRef::Real(*f),
            OwnedCell::Text(t) => ValueRef::Text(t),
            OwnedCell::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bytes_keep_the_storage_class() {
        let a = key_bytes(&[OwnedCell::Integer(1)]);
        let b = key_bytes(&[OwnedCell::Real(1.0)]);
        let c = key_bytes(&[OwnedCell::Text(b"1".to_vec())]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            key_bytes(&[OwnedCell::Real(0.0)]),
            key_bytes(&[OwnedCell::Real(-0.0)])
        );
    }
}
