//! The reading side of the copy: how one table is read (its [`TableSpec`]), and the
//! blocking reader threads that serve the workers copying it, in keyset batches inside a
//! SQLite read transaction, each row encoded for binary COPY as it is read. A live source
//! has one reader per table, serving every worker in one read transaction; a source
//! nothing writes during the copy has one reader per worker on the table.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_core::plan::{TableKind, TablePlan};
use tokio::sync::oneshot;

use crate::bookkeeping::RejectRow;
use crate::cell::{Cell, OwnedCell};
use crate::encode::{self, ConvertOptions};
use crate::error::{Result, TransferError};
use crate::ident::{qualified, quote, quote_sqlite};
use crate::sqlite::{SqliteRow, SqliteSource};

/// A chunk: a rowid range, or the whole of a table without rowid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Rowid { lo: i64, hi: i64 },
    Whole,
}

impl Chunk {
    pub fn bounds(&self) -> (i64, i64) {
        match *self {
            Chunk::Rowid { lo, hi } => (lo, hi),
            Chunk::Whole => (i64::MIN, i64::MAX),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Cursor {
    Start,
    Rowid(i64),
    Key(Vec<OwnedCell>),
}

/// Rows encoded for COPY (without the file header and trailer).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) data: Vec<u8>,
    pub(crate) rows: u64,
    /// In careful mode: where each written row ends in `data`, and its key.
    pub(crate) row_ends: Vec<usize>,
    pub(crate) row_keys: Vec<String>,
    pub(crate) rejected_rows: u64,
    pub(crate) rejects: Vec<RejectRow>,
    /// Where the next batch starts; `None` when the chunk is exhausted.
    pub(crate) next: Option<Cursor>,
}

struct ReadRequest {
    chunk: Chunk,
    cursor: Cursor,
    careful: bool,
    reply: oneshot::Sender<std::result::Result<Batch, String>>,
}

/// How one table is read and written.
#[derive(Debug)]
pub struct TableSpec {
    pub plan: TablePlan,
    pub(crate) copy_sql: String,
    /// Rowid tables: `SELECT rowid, cols … WHERE rowid BETWEEN ?1 AND ?2 ORDER BY rowid LIMIT ?3`.
    /// Keyed tables: the first batch, `… ORDER BY key LIMIT ?1`.
    sql_first: String,
    /// Keyed tables: `… WHERE (key) > (?…) ORDER BY key LIMIT ?n`.
    sql_next: String,
    /// Number of leading key columns in the SELECT.
    key_width: usize,
    /// SELECT index of each plan column.
    column_index: Vec<usize>,
    /// SELECT index and name of each primary-key column, for naming rejected rows.
    key_display: Vec<(usize, String)>,
    count_sql: String,
    /// `min(rowid), max(rowid)`: two index seeks, not a scan.
    pub(crate) bounds_sql: String,
}

impl TableSpec {
    /// How to read and write one table; `computed` names target columns PostgreSQL
    /// generates itself, which the copy leaves out.
    pub fn new(schema: &str, plan: &TablePlan, computed: &HashSet<String>) -> Result<Self> {
        let mut plan = plan.clone();
        plan.columns.retain(|c| !computed.contains(&c.target));
        let plan = &plan;
        let table = quote_sqlite(&plan.source);
        let cols: Vec<String> = plan.columns.iter().map(|c| quote(&c.target)).collect();
        let copy_sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            qualified(schema, &plan.target),
            cols.join(", ")
        );
        let limit_batch = |n: usize| format!("?{n}");
        if plan.kind == TableKind::WithoutRowid {
            let key: Vec<String> = plan.primary_key.iter().map(|k| quote_sqlite(k)).collect();
            let k = key.len();
            let select: Vec<String> = key
                .iter()
                .cloned()
                .chain(plan.columns.iter().map(|c| quote_sqlite(&c.source)))
                .collect();
            let base = format!("SELECT {} FROM {table}", select.join(", "));
            let order = key.join(", ");
            let params: Vec<String> = (1..=k).map(|i| format!("?{i}")).collect();
            return Ok(Self {
                copy_sql,
                sql_first: format!("{base} ORDER BY {order} LIMIT {}", limit_batch(1)),
                sql_next: format!(
                    "{base} WHERE ({order}) > ({}) ORDER BY {order} LIMIT {}",
                    params.join(", "),
                    limit_batch(k + 1)
                ),
                key_width: k,
                column_index: (0..plan.columns.len()).map(|i| k + i).collect(),
                key_display: plan
                    .primary_key
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i, n.clone()))
                    .collect(),
                count_sql: format!("SELECT count(*) FROM {table}"),
                bounds_sql: String::new(),
                plan: plan.clone(),
            });
        }
        // The rowid by a name no column shadows.
        let rowid = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|r| !plan.columns.iter().any(|c| c.source.eq_ignore_ascii_case(r) && plan.kind != TableKind::FullText))
            .ok_or_else(|| TransferError::Inconsistent {
                table: plan.source.clone(),
                message: "columns named rowid, _rowid_ and oid hide the rowid, so the table cannot be read in chunks".into(),
            })?;
        let mut select = vec![rowid.to_owned()];
        let mut column_index = Vec::new();
        for c in &plan.columns {
            if plan.kind == TableKind::FullText && c.source == "rowid" {
                column_index.push(0);
            } else {
                column_index.push(select.len());
                select.push(quote_sqlite(&c.source));
            }
        }
        let key_display = if plan.primary_key.is_empty() {
            vec![(0, "rowid".to_owned())]
        } else {
            plan.primary_key
                .iter()
                .filter_map(|k| {
                    plan.columns
                        .iter()
                        .position(|c| &c.source == k)
                        .map(|i| (column_index[i], k.clone()))
                })
                .collect()
        };
        Ok(Self {
            copy_sql,
            sql_first: format!(
                "SELECT {} FROM {table} WHERE {rowid} >= ?1 AND {rowid} <= ?2 ORDER BY {rowid} LIMIT ?3",
                select.join(", ")
            ),
            sql_next: String::new(),
            key_width: 1,
            column_index,
            key_display,
            count_sql: format!("SELECT count(*) FROM {table}"),
            bounds_sql: format!("SELECT min({rowid}), max({rowid}) FROM {table}"),
            plan: plan.clone(),
        })
    }
}

/// Reads batches of one table for every worker copying it, in one read transaction.
pub(crate) struct TableReader {
    requests: std::sync::mpsc::Sender<ReadRequest>,
}

impl TableReader {
    /// Starts a reader thread with its own read transaction. With `count`, it first counts
    /// the table's rows in that transaction (the snapshot the copy is verified against) and
    /// sends the count; otherwise it sends 0 as soon as it is open.
    pub(crate) fn spawn(
        path: PathBuf,
        spec: Arc<TableSpec>,
        conv: ConvertOptions,
        count: bool,
    ) -> (Self, oneshot::Receiver<std::result::Result<u64, String>>) {
        let (tx, rx) = std::sync::mpsc::channel::<ReadRequest>();
        let (count_tx, count_rx) = oneshot::channel();
        std::thread::spawn(move || {
            let opened = SqliteSource::open(&path).and_then(|db| {
                db.begin_read()?;
                let n = if count {
                    db.scalar_i64(&spec.count_sql)?.unwrap_or(0)
                } else {
                    0
                };
                Ok((db, n))
            });
            match opened {
                Ok((db, n)) => {
                    let _ = count_tx.send(Ok(n as u64));
                    while let Ok(req) = rx.recv() {
                        let res = read_batch(&db, &spec, &conv, &req).map_err(|e| e.to_string());
                        let _ = req.reply.send(res);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    let _ = count_tx.send(Err(msg.clone()));
                    while let Ok(req) = rx.recv() {
                        let _ = req.reply.send(Err(msg.clone()));
                    }
                }
            }
        });
        (Self { requests: tx }, count_rx)
    }

    pub(crate) fn request(
        &self,
        chunk: Chunk,
        cursor: Cursor,
        careful: bool,
    ) -> oneshot::Receiver<std::result::Result<Batch, String>> {
        let (reply, rx) = oneshot::channel();
        // A send error drops `reply`, and the receiver reports the reader as gone.
        let _ = self.requests.send(ReadRequest {
            chunk,
            cursor,
            careful,
            reply,
        });
        rx
    }
}

const BATCH_ROWS: i64 = 10_000;
const BATCH_BYTES: usize = 1 << 20;
const CAREFUL_ROWS: i64 = 512;

fn read_batch(
    db: &SqliteSource,
    spec: &TableSpec,
    conv: &ConvertOptions,
    req: &ReadRequest,
) -> Result<Batch> {
    let limit = if req.careful {
        CAREFUL_ROWS
    } else {
        BATCH_ROWS
    };
    let (sql, params) = match (&req.chunk, &req.cursor) {
        (Chunk::Rowid { lo, hi }, Cursor::Start) => (
            &spec.sql_first,
            vec![
                OwnedCell::Integer(*lo),
                OwnedCell::Integer(*hi),
                OwnedCell::Integer(limit),
            ],
        ),
        (Chunk::Rowid { hi, .. }, Cursor::Rowid(after)) => {
            if after >= hi {
                return Ok(Batch::default());
            }
            (
                &spec.sql_first,
                vec![
                    OwnedCell::Integer(after + 1),
                    OwnedCell::Integer(*hi),
                    OwnedCell::Integer(limit),
                ],
            )
        }
        (Chunk::Whole, Cursor::Start) => (&spec.sql_first, vec![OwnedCell::Integer(limit)]),
        (Chunk::Whole, Cursor::Key(key)) => {
            let mut p = key.clone();
            p.push(OwnedCell::Integer(limit));
            (&spec.sql_next, p)
        }
        _ => unreachable!("cursor kinds follow chunk kinds"),
    };
    let mut batch = Batch::default();
    let mut n: i64 = 0;
    let mut full = false;
    let mut last: Option<Cursor> = None;
    let plan = &spec.plan;
    let width = plan.columns.len();
    let context = format!("reading table {:?}", plan.source);
    db.for_each_row(&context, sql, &params, |row| {
        n += 1;
        last = Some(if spec.plan.kind == TableKind::WithoutRowid {
            Cursor::Key(
                (0..spec.key_width)
                    .map(|i| row.cell(i).to_owned_cell())
                    .collect(),
            )
        } else {
            match row.cell(0) {
                Cell::Integer(r) => Cursor::Rowid(r),
                _ => Cursor::Rowid(i64::MAX),
            }
        });
        encode_row(spec, conv, row, width, req.careful, &mut batch);
        if batch.data.len() >= BATCH_BYTES {
            full = true;
            return false;
        }
        true
    })?;
    batch.next = if n == limit || full { last } else { None };
    Ok(batch)
}

fn row_key(spec: &TableSpec, row: &SqliteRow<'_>) -> String {
    spec.key_display
        .iter()
        .map(|(i, name)| format!("{name}={}", row.cell(*i).display()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn encode_row(
    spec: &TableSpec,
    conv: &ConvertOptions,
    row: &SqliteRow<'_>,
    width: usize,
    careful: bool,
    batch: &mut Batch,
) {
    let start = batch.data.len();
    encode::begin_row(&mut batch.data, width);
    let mut problems = Vec::new();
    let mut adjusted = Vec::new();
    for (ci, col) in spec.plan.columns.iter().enumerate() {
        let cell = row.cell(spec.column_index[ci]);
        match encode::write_field(&mut batch.data, &col.target_type, cell, conv) {
            Ok(None) => {}
            Ok(Some(a)) => adjusted.push((ci, a)),
            Err(e) => problems.push((ci, e)),
        }
    }
    if !problems.is_empty() {
        batch.data.truncate(start);
        let key = row_key(spec, row);
        batch.rejected_rows += 1;
        for (ci, e) in problems {
            batch.rejects.push(RejectRow {
                table: spec.plan.source.clone(),
                kind: "reject".into(),
                key: key.clone(),
                column: spec.plan.columns[ci].source.clone(),
                reason: e.reason,
                bytes_hex: e.bytes.map(hex::encode),
            });
        }
        return;
    }
    if !adjusted.is_empty() {
        let key = row_key(spec, row);
        for (ci, a) in adjusted {
            batch.rejects.push(RejectRow {
                table: spec.plan.source.clone(),
                kind: "adjusted".into(),
                key: key.clone(),
                column: spec.plan.columns[ci].source.clone(),
                reason: a.reason,
                bytes_hex: None,
            });
        }
    }
    batch.rows += 1;
    if careful {
        batch.row_ends.push(batch.data.len());
        batch.row_keys.push(row_key(spec, row));
    }
}
