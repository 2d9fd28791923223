//! The copy engine: chunks of rowid ranges, read from SQLite on one blocking thread per
//! table inside one read transaction, encoded as binary COPY, streamed by `workers`
//! PostgreSQL connections, each chunk committed with its checkpoint row.
//!
//! Architecture invariants:
//! - A chunk's rows, its rejects and its checkpoint commit in one PostgreSQL transaction,
//!   so after a crash a chunk is either wholly there (and skipped) or wholly absent (and
//!   copied again): no duplicate, no missing row.
//! - Chunks of one table partition the whole rowid space (`i64::MIN..=i64::MAX`) minus what
//!   was committed before, so no row can fall between chunks.
//! - Every read of one table happens in one SQLite read transaction (one snapshot), also
//!   when several connections copy chunks of it in parallel: the table's reader thread
//!   serves them all, in keyset batches.
//! - Memory is bounded: a worker holds at most two encoded batches (about 1 MiB each, or
//!   one row if a row is larger).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferry_core::plan::{TableKind, TablePlan};
use sqlx::postgres::PgConnection;
use tokio::sync::oneshot;

use crate::bookkeeping::{self, RejectRow};
use crate::cell::{Cell, OwnedCell};
use crate::ddl::{self, Step};
use crate::encode::{self, ConvertOptions};
use crate::error::{Result, TransferError};
use crate::ident::{qualified, quote, quote_sqlite};
use crate::pg::{self, classify, describe, error_column, ErrorClass, PgTarget};
use crate::progress::{Bars, TableBar};
use crate::sqlite::{SqliteRow, SqliteSource};
use crate::steps;

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
enum Cursor {
    Start,
    Rowid(i64),
    Key(Vec<OwnedCell>),
}

/// Rows encoded for COPY (without the file header and trailer).
#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    rows: u64,
    /// In careful mode: where each written row ends in `data`, and its key.
    row_ends: Vec<usize>,
    row_keys: Vec<String>,
    rejected_rows: u64,
    rejects: Vec<RejectRow>,
    /// Where the next batch starts; `None` when the chunk is exhausted.
    next: Option<Cursor>,
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
    copy_sql: String,
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
    bounds_sql: String,
}

impl TableSpec {
    pub fn new(schema: &str, plan: &TablePlan) -> Result<Self> {
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
struct TableReader {
    requests: std::sync::mpsc::Sender<ReadRequest>,
}

impl TableReader {
    fn spawn(
        path: PathBuf,
        spec: Arc<TableSpec>,
        conv: ConvertOptions,
    ) -> (Self, oneshot::Receiver<std::result::Result<u64, String>>) {
        let (tx, rx) = std::sync::mpsc::channel::<ReadRequest>();
        let (count_tx, count_rx) = oneshot::channel();
        std::thread::spawn(move || {
            let opened = SqliteSource::open(&path).and_then(|db| {
                db.begin_read()?;
                let n = db.scalar_i64(&spec.count_sql)?.unwrap_or(0);
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

    fn request(
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

/// One table in the copy stage.
struct TableJob {
    spec: Arc<TableSpec>,
    chunks: Mutex<std::collections::VecDeque<Chunk>>,
    remaining: AtomicUsize,
    active: AtomicUsize,
    reader: Mutex<Option<Arc<TableReader>>>,
    snapshot_rows: Mutex<Option<oneshot::Receiver<std::result::Result<u64, String>>>>,
    snapshot: Mutex<Option<u64>>,
    bar: TableBar,
    /// This run's rows, bytes and rejected rows (for verification).
    rows: AtomicU64,
    rejected: AtomicU64,
    /// Whether chunks had been committed before this run.
    resumed: bool,
}

impl TableJob {
    fn reader(&self, path: &Path, conv: ConvertOptions) -> Arc<TableReader> {
        let mut slot = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot.as_ref() {
            return r.clone();
        }
        let (reader, count) = TableReader::spawn(path.to_owned(), self.spec.clone(), conv);
        *self.snapshot_rows.lock().unwrap_or_else(|p| p.into_inner()) = Some(count);
        let reader = Arc::new(reader);
        *slot = Some(reader.clone());
        reader
    }

    /// Returns whether that was the table's last chunk.
    fn chunk_finished(&self) -> bool {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Last chunk: end the read transaction.
            *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return true;
        }
        false
    }
}

/// What the copy stage needs.
pub struct CopyStage<'a> {
    pub pg: &'a PgTarget,
    pub source: &'a Path,
    pub specs: Vec<Arc<TableSpec>>,
    pub conv: ConvertOptions,
    pub workers: usize,
    pub chunk_rows: u64,
    pub bars: &'a Bars,
    pub pause_after_chunk: Option<std::time::Duration>,
    /// Post-data steps (views excepted) not yet done: each runs on the same workers as
    /// soon as what it needs is copied, filling the time other tables still copy.
    pub steps: Vec<Step>,
    /// Steps done by an earlier run.
    pub done_steps: HashSet<String>,
}

/// Which post-data steps are waiting, running and done.
#[derive(Debug, Default)]
struct Board {
    pending: Vec<Step>,
    running: Vec<Step>,
    finished: HashSet<String>,
    /// Source tables whose every chunk is committed.
    copied: HashSet<String>,
}

impl Board {
    fn keys_left(&self, table: &str) -> bool {
        self.pending
            .iter()
            .chain(&self.running)
            .any(|s| s.stage == ddl::STAGE_KEYS && s.table == table)
    }

    fn ready(&self, s: &Step) -> bool {
        match s.stage {
            ddl::STAGE_KEYS => s.table.is_empty() || self.copied.contains(&s.table),
            ddl::STAGE_FOREIGN => s
                .deps
                .iter()
                .all(|t| self.copied.contains(t) && !self.keys_left(t)),
            ddl::STAGE_VALIDATE => {
                s.id.strip_suffix(":validate")
                    .is_some_and(|add| self.finished.contains(add))
            }
            _ => false,
        }
    }

    /// The next step whose prerequisites are done; with `force` (nothing else can make
    /// progress), the first waiting one.
    fn take(&mut self, force: bool) -> Option<Step> {
        let i = match self.pending.iter().position(|s| self.ready(s)) {
            Some(i) => i,
            None if force && !self.pending.is_empty() => 0,
            None => return None,
        };
        let s = self.pending.remove(i);
        self.running.push(s.clone());
        Some(s)
    }

    fn finish(&mut self, id: &str) {
        self.running.retain(|s| s.id != id);
        self.finished.insert(id.to_owned());
    }
}

struct Shared {
    pg: PgTarget,
    source: PathBuf,
    conv: ConvertOptions,
    jobs: Vec<TableJob>,
    failed: AtomicBool,
    pause: Option<std::time::Duration>,
    board: Mutex<Board>,
    /// Chunks not yet committed (queued or being copied), all tables together.
    chunks_left: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl Shared {
    /// The next chunk: from the table with the fewest workers on it, then the most chunks
    /// left, so readers of different tables run side by side.
    fn next_chunk(&self) -> Option<(usize, Chunk)> {
        let mut best: Option<(usize, usize, usize)> = None;
        for (i, job) in self.jobs.iter().enumerate() {
            let left = job.chunks.lock().unwrap_or_else(|p| p.into_inner()).len();
            if left == 0 {
                continue;
            }
            let active = job.active.load(Ordering::SeqCst);
            let better = match best {
                None => true,
                Some((_, a, l)) => active < a || (active == a && left > l),
            };
            if better {
                best = Some((i, active, left));
            }
        }
        let (i, _, _) = best?;
        let chunk = self.jobs[i]
            .chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()?;
        self.jobs[i].active.fetch_add(1, Ordering::SeqCst);
        Some((i, chunk))
    }
}

/// Per-table outcome of the copy stage in this run.
#[derive(Debug, Clone, Default)]
pub struct CopyOutcome {
    pub source_snapshot_rows: Option<u64>,
    pub rows: u64,
    pub rejected_rows: u64,
    pub resumed: bool,
}

/// Splits what is not yet committed of a table into chunks.
pub fn plan_chunks(
    done: &[(i64, i64)],
    bounds: Option<(i64, i64, u64)>,
    chunk_rows: u64,
) -> Vec<Chunk> {
    let mut uncovered = Vec::new();
    let mut next: i128 = i128::from(i64::MIN);
    let mut sorted = done.to_vec();
    sorted.sort();
    for (lo, hi) in sorted {
        if i128::from(lo) > next {
            uncovered.push((next as i64, lo - 1));
        }
        next = next.max(i128::from(hi) + 1);
    }
    if next <= i128::from(i64::MAX) {
        uncovered.push((next as i64, i64::MAX));
    }
    let Some((min, max, count)) = bounds.filter(|(min, max, count)| *count > 0 && min <= max)
    else {
        return uncovered
            .into_iter()
            .map(|(lo, hi)| Chunk::Rowid { lo, hi })
            .collect();
    };
    let span = i128::from(max) - i128::from(min) + 1;
    let density = count as f64 / span as f64;
    let mut out = Vec::new();
    for (a, b) in uncovered {
        let lo = i128::from(a.max(min));
        let hi = i128::from(b.min(max));
        if lo > hi {
            out.push(Chunk::Rowid { lo: a, hi: b });
            continue;
        }
        let estimate = ((hi - lo + 1) as f64 * density).ceil();
        let n = ((estimate / chunk_rows.max(1) as f64).ceil() as i128).clamp(1, hi - lo + 1);
        let width = (hi - lo + 1) / n;
        let mut start = i128::from(a);
        for k in 1..n {
            let end = lo + width * k - 1;
            out.push(Chunk::Rowid {
                lo: start as i64,
                hi: end as i64,
            });
            start = end + 1;
        }
        out.push(Chunk::Rowid {
            lo: start as i64,
            hi: b,
        });
    }
    out
}

impl CopyStage<'_> {
    /// Copies every chunk not yet committed; returns per-table outcomes by source name.
    pub async fn run(self, control: &mut PgConnection) -> Result<HashMap<String, CopyOutcome>> {
        let schema = self.pg.schema.clone();
        let mut jobs = Vec::new();
        for spec in &self.specs {
            let name = &spec.plan.source;
            let done = bookkeeping::checkpoints(control, &schema, name)
                .await
                .map_err(|e| {
                    self.pg
                        .err(format!("reading the checkpoints of table {name:?}"), &e)
                })?;
            let ranges: Vec<(i64, i64)> = done.iter().map(|c| (c.lo, c.hi)).collect();
            let chunks = if spec.plan.kind == TableKind::WithoutRowid {
                if done.is_empty() {
                    vec![Chunk::Whole]
                } else {
                    vec![]
                }
            } else if plan_chunks(&ranges, None, 1).is_empty() {
                vec![]
            } else {
                // The plan's row count sizes the chunks; correctness does not depend on it.
                let rows = spec.plan.source_rows.max(1);
                let bounds =
                    source_bounds(self.source, &spec.bounds_sql)?.map(|(lo, hi)| (lo, hi, rows));
                plan_chunks(&ranges, bounds, self.chunk_rows)
            };
            let done_rows: i64 = done.iter().map(|c| c.rows + c.rejected_rows).sum();
            let bar = self.bars.table(
                &spec.plan.source,
                spec.plan.source_rows.max(done_rows as u64),
            );
            bar.set_done(done_rows as u64);
            jobs.push(TableJob {
                spec: spec.clone(),
                remaining: AtomicUsize::new(chunks.len()),
                chunks: Mutex::new(chunks.into()),
                active: AtomicUsize::new(0),
                reader: Mutex::new(None),
                snapshot_rows: Mutex::new(None),
                snapshot: Mutex::new(None),
                bar,
                rows: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                resumed: !done.is_empty(),
            });
        }
        let chunks_left = jobs
            .iter()
            .map(|j| j.remaining.load(Ordering::SeqCst))
            .sum();
        let copied = jobs
            .iter()
            .filter(|j| j.remaining.load(Ordering::SeqCst) == 0)
            .map(|j| j.spec.plan.source.clone())
            .collect();
        let board = Board {
            pending: self.steps,
            running: Vec::new(),
            finished: self.done_steps,
            copied,
        };
        let shared = Arc::new(Shared {
            pg: self.pg.clone(),
            source: self.source.to_owned(),
            conv: self.conv,
            jobs,
            failed: AtomicBool::new(false),
            pause: self.pause_after_chunk,
            board: Mutex::new(board),
            chunks_left: AtomicUsize::new(chunks_left),
            changed: tokio::sync::Notify::new(),
        });
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..self.workers.max(1) {
            let shared = shared.clone();
            set.spawn(async move { worker(shared).await });
        }
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            let res = joined.unwrap_or_else(|e| {
                Err(TransferError::Inconsistent {
                    table: String::new(),
                    message: format!("a copy worker stopped: {e}"),
                })
            });
            if let Err(e) = res {
                shared.failed.store(true, Ordering::SeqCst);
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let mut out = HashMap::new();
        for job in &shared.jobs {
            job.bar.finish();
            let pending = job
                .snapshot_rows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let snapshot = match pending {
                Some(rx) => rx.await.ok().and_then(|r| r.ok()),
                None => *job.snapshot.lock().unwrap_or_else(|p| p.into_inner()),
            };
            out.insert(
                job.spec.plan.source.clone(),
                CopyOutcome {
                    source_snapshot_rows: snapshot,
                    rows: job.rows.load(Ordering::SeqCst),
                    rejected_rows: job.rejected.load(Ordering::SeqCst),
                    resumed: job.resumed,
                },
            );
        }
        Ok(out)
    }
}

fn source_bounds(path: &Path, sql: &str) -> Result<Option<(i64, i64)>> {
    let db = SqliteSource::open(path)?;
    let mut out = None;
    db.for_each_row("reading rowid bounds", sql, &[], |row| {
        if let (Cell::Integer(min), Cell::Integer(max)) = (row.cell(0), row.cell(1)) {
            out = Some((min, max));
        }
        false
    })?;
    Ok(out)
}

fn worker(shared: Arc<Shared>) -> BoxFut<'static, Result<()>> {
    Box::pin(worker_body(shared))
}

async fn worker_body(shared: Arc<Shared>) -> Result<()> {
    let mut conn: Option<PgConnection> = None;
    let res = worker_loop(&shared, &mut conn).await;
    if res.is_err() {
        // Wake the workers waiting for work, so they see the failure and stop.
        shared.failed.store(true, Ordering::SeqCst);
        shared.changed.notify_waiters();
    }
    if let Some(c) = conn {
        PgTarget::close(c).await;
    }
    res
}

async fn worker_loop(shared: &Shared, conn: &mut Option<PgConnection>) -> Result<()> {
    loop {
        if shared.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Registered before looking, so a change made meanwhile is not missed.
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some((i, chunk)) = shared.next_chunk() {
            let job = &shared.jobs[i];
            let reader = job.reader(&shared.source, shared.conv);
            let res = copy_chunk(shared, conn, job, &reader, chunk).await;
            drop(reader);
            job.active.fetch_sub(1, Ordering::SeqCst);
            if job.chunk_finished() {
                lock(&shared.board)
                    .copied
                    .insert(job.spec.plan.source.clone());
            }
            shared.chunks_left.fetch_sub(1, Ordering::SeqCst);
            shared.changed.notify_waiters();
            res?;
            if let Some(pause) = shared.pause {
                tokio::time::sleep(pause).await;
            }
            continue;
        }
        let step = {
            let mut board = lock(&shared.board);
            let idle = shared.chunks_left.load(Ordering::SeqCst) == 0 && board.running.is_empty();
            if idle && board.pending.is_empty() {
                return Ok(());
            }
            board.take(idle)
        };
        let Some(step) = step else {
            changed.await;
            continue;
        };
        if conn.is_none() {
            *conn = Some(shared.pg.connect("building keys and indexes").await?);
        }
        let res = match conn.as_mut() {
            Some(c) => steps::run_step(&shared.pg, c, &step, true).await,
            None => Ok(false),
        };
        lock(&shared.board).finish(&step.id);
        shared.changed.notify_waiters();
        res?;
        if let Some(pause) = shared.pause {
            tokio::time::sleep(pause).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum ChunkError {
    Pg(sqlx::Error),
    Fatal(TransferError),
}

impl From<sqlx::Error> for ChunkError {
    fn from(e: sqlx::Error) -> Self {
        ChunkError::Pg(e)
    }
}

async fn copy_chunk(
    shared: &Shared,
    conn: &mut Option<PgConnection>,
    job: &TableJob,
    reader: &TableReader,
    chunk: Chunk,
) -> Result<()> {
    let table = &job.spec.plan.source;
    let (lo, hi) = chunk.bounds();
    let context = format!("copying table {table:?} rowids {lo}..={hi}");
    let policy = shared.pg.retry;
    let started = Instant::now();
    let mut attempt = 1;
    let mut careful = false;
    loop {
        if conn.is_none() {
            *conn = Some(shared.pg.connect(&context).await?);
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut counted = (0u64, 0u64);
        match copy_chunk_once(shared, c, job, reader, chunk, careful, &mut counted).await {
            Ok(()) => return Ok(()),
            Err(ChunkError::Fatal(e)) => return Err(e),
            Err(ChunkError::Pg(e)) => {
                job.bar.undo(counted.0, counted.1);
                match classify(&e) {
                    ErrorClass::Connection => {
                        if let Some(broken) = conn.take() {
                            PgTarget::close(broken).await;
                        }
                        if attempt >= policy.attempts {
                            return Err(TransferError::Unreachable {
                                url: shared.pg.url.to_string(),
                                context,
                                attempts: attempt,
                                seconds: started.elapsed().as_secs_f64(),
                                message: describe(&e),
                            });
                        }
                        attempt += 1;
                        tracing::warn!(table = %table, lo, hi, attempt, "connection lost ({}); retrying the chunk", describe(&e));
                        tokio::time::sleep(policy.backoff(attempt)).await;
                    }
                    ErrorClass::Data if !careful => {
                        tracing::info!(table = %table, lo, hi, "PostgreSQL refused a row ({}); isolating it", describe(&e));
                        let _ = pg::exec(&mut *c, "ROLLBACK").await;
                        careful = true;
                    }
                    _ => {
                        let _ = pg::exec(&mut *c, "ROLLBACK").await;
                        return Err(shared.pg.err(context, &e));
                    }
                }
            }
        }
    }
}

async fn next_batch(
    rx: oneshot::Receiver<std::result::Result<Batch, String>>,
    table: &str,
) -> std::result::Result<Batch, ChunkError> {
    match rx.await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(msg)) => Err(ChunkError::Fatal(TransferError::Inconsistent {
            table: table.to_owned(),
            message: msg,
        })),
        Err(_) => Err(ChunkError::Fatal(TransferError::Inconsistent {
            table: table.to_owned(),
            message: "the SQLite reader thread stopped".into(),
        })),
    }
}

/// A boxed `Send` future: spelling the type out lets the compiler prove `Send` for the
/// borrowed connection (sqlx's executor bounds otherwise defeat its inference).
type BoxFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

fn copy_chunk_once<'a>(
    shared: &'a Shared,
    conn: &'a mut PgConnection,
    job: &'a TableJob,
    reader: &'a TableReader,
    chunk: Chunk,
    careful: bool,
    counted: &'a mut (u64, u64),
) -> BoxFut<'a, std::result::Result<(), ChunkError>> {
    Box::pin(copy_chunk_body(
        shared, conn, job, reader, chunk, careful, counted,
    ))
}

async fn copy_chunk_body(
    shared: &Shared,
    conn: &mut PgConnection,
    job: &TableJob,
    reader: &TableReader,
    chunk: Chunk,
    careful: bool,
    counted: &mut (u64, u64),
) -> std::result::Result<(), ChunkError> {
    let spec = &job.spec;
    let table = &spec.plan.source;
    let schema = &shared.pg.schema;
    let (lo, hi) = chunk.bounds();
    let started = Instant::now();
    pg::exec(&mut *conn, "BEGIN").await?;
    // A previous attempt may have committed before its connection died.
    let exists: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT rows FROM {} WHERE source_table = $1 AND lo = $2",
        qualified(schema, bookkeeping::CHECKPOINTS)
    ))
    .bind(table)
    .bind(lo)
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_some() {
        pg::exec(&mut *conn, "ROLLBACK").await?;
        return Ok(());
    }
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut rejected = 0u64;
    let mut rejects: Vec<RejectRow> = Vec::new();
    if !careful {
        let mut copy = conn.copy_in_raw(&spec.copy_sql).await?;
        let mut acc = Tally::default();
        let streamed = stream_chunk(&mut copy, reader, chunk, job, &mut acc, counted).await;
        rows = acc.rows;
        bytes = acc.bytes;
        rejected = acc.rejected;
        rejects = acc.rejects;
        match streamed {
            Ok(()) => {
                copy.send(&encode::TRAILER[..]).await?;
                let n = copy.finish().await?;
                if n != rows {
                    return Err(ChunkError::Fatal(TransferError::Inconsistent {
                        table: table.clone(),
                        message: format!(
                            "PostgreSQL stored {n} rows of chunk {lo}..={hi}, ferry sent {rows}"
                        ),
                    }));
                }
            }
            Err(ChunkError::Fatal(e)) => {
                let _ = copy.abort("ferry stopped reading the source").await;
                let _ = pg::exec(&mut *conn, "ROLLBACK").await;
                return Err(ChunkError::Fatal(e));
            }
            Err(ChunkError::Pg(e)) => return Err(ChunkError::Pg(e)),
        }
    } else {
        let mut cursor = Cursor::Start;
        loop {
            let batch = next_batch(reader.request(chunk, cursor.clone(), true), table).await?;
            rejected += batch.rejected_rows;
            rejects.extend(batch.rejects.iter().cloned());
            let (loaded, refused) = copy_isolating(conn, spec, &batch, &mut rejects).await?;
            rows += loaded;
            rejected += refused;
            bytes += batch.data.len() as u64;
            job.bar
                .add(batch.rows + batch.rejected_rows, batch.data.len() as u64);
            counted.0 += batch.rows + batch.rejected_rows;
            counted.1 += batch.data.len() as u64;
            match batch.next {
                Some(n) => cursor = n,
                None => break,
            }
        }
    }
    sqlx::query(&format!(
        "INSERT INTO {} (source_table, lo, hi, rows, bytes, rejected_rows, seconds) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        qualified(schema, bookkeeping::CHECKPOINTS)
    ))
    .bind(table)
    .bind(lo)
    .bind(hi)
    .bind(rows as i64)
    .bind(bytes as i64)
    .bind(rejected as i64)
    .bind(started.elapsed().as_secs_f64())
    .execute(&mut *conn)
    .await?;
    if !rejects.is_empty() {
        let col = |f: fn(&RejectRow) -> String| rejects.iter().map(f).collect::<Vec<String>>();
        sqlx::query(&format!(
            "INSERT INTO {} (source_table, chunk_lo, kind, row_key, column_name, reason, bytes_hex)
             SELECT $1, $2, * FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[])",
            qualified(schema, bookkeeping::REJECTS)
        ))
        .bind(table)
        .bind(lo)
        .bind(col(|r| r.kind.clone()))
        .bind(col(|r| r.key.clone()))
        .bind(col(|r| r.column.clone()))
        .bind(col(|r| r.reason.clone()))
        .bind(rejects.iter().map(|r| r.bytes_hex.clone()).collect::<Vec<Option<String>>>())
        .execute(&mut *conn)
        .await?;
    }
    pg::exec(&mut *conn, "COMMIT").await?;
    job.rows.fetch_add(rows, Ordering::SeqCst);
    job.rejected.fetch_add(rejected, Ordering::SeqCst);
    Ok(())
}

/// What a chunk has sent so far.
#[derive(Default)]
struct Tally {
    rows: u64,
    bytes: u64,
    rejected: u64,
    rejects: Vec<RejectRow>,
}

/// Streams a chunk's batches into an open COPY, reading the next batch while one travels.
async fn stream_chunk(
    copy: &mut sqlx::postgres::PgCopyIn<&mut PgConnection>,
    reader: &TableReader,
    chunk: Chunk,
    job: &TableJob,
    acc: &mut Tally,
    counted: &mut (u64, u64),
) -> std::result::Result<(), ChunkError> {
    let table = &job.spec.plan.source;
    copy.send(encode::HEADER).await?;
    let mut pending = Some(reader.request(chunk, Cursor::Start, false));
    while let Some(rx) = pending.take() {
        let batch = next_batch(rx, table).await?;
        if let Some(n) = &batch.next {
            pending = Some(reader.request(chunk, n.clone(), false));
        }
        if !batch.data.is_empty() {
            copy.send(batch.data.as_slice()).await?;
        }
        acc.rows += batch.rows;
        acc.bytes += batch.data.len() as u64;
        acc.rejected += batch.rejected_rows;
        acc.rejects.extend(batch.rejects);
        job.bar
            .add(batch.rows + batch.rejected_rows, batch.data.len() as u64);
        counted.0 += batch.rows + batch.rejected_rows;
        counted.1 += batch.data.len() as u64;
    }
    Ok(())
}

/// One COPY of already encoded rows.
async fn copy_bytes(
    conn: &mut PgConnection,
    sql: &str,
    rows: &[u8],
) -> std::result::Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(sql).await?;
    copy.send(encode::HEADER).await?;
    copy.send(rows).await?;
    copy.send(&encode::TRAILER[..]).await?;
    copy.finish().await
}

/// Copies a careful batch under savepoints, halving around rows PostgreSQL refuses until
/// each refused row stands alone; returns rows loaded and rows refused.
fn copy_isolating<'a>(
    conn: &'a mut PgConnection,
    spec: &'a TableSpec,
    batch: &'a Batch,
    rejects: &'a mut Vec<RejectRow>,
) -> BoxFut<'a, std::result::Result<(u64, u64), ChunkError>> {
    Box::pin(copy_isolating_body(conn, spec, batch, rejects))
}

async fn copy_isolating_body(
    conn: &mut PgConnection,
    spec: &TableSpec,
    batch: &Batch,
    rejects: &mut Vec<RejectRow>,
) -> std::result::Result<(u64, u64), ChunkError> {
    let mut loaded = 0;
    let mut refused = 0;
    let n = batch.row_ends.len();
    let mut stack: Vec<Range<usize>> = Vec::new();
    if n > 0 {
        stack.push(0..n);
    }
    let start_of = |i: usize| if i == 0 { 0 } else { batch.row_ends[i - 1] };
    while let Some(range) = stack.pop() {
        pg::exec(&mut *conn, "SAVEPOINT ferry_rows").await?;
        let bytes = &batch.data[start_of(range.start)..batch.row_ends[range.end - 1]];
        let res = copy_bytes(conn, &spec.copy_sql, bytes).await;
        match res {
            Ok(_) => {
                pg::exec(&mut *conn, "RELEASE SAVEPOINT ferry_rows").await?;
                loaded += range.len() as u64;
            }
            Err(e) if classify(&e) == ErrorClass::Data => {
                pg::exec(
                    &mut *conn,
                    "ROLLBACK TO SAVEPOINT ferry_rows; RELEASE SAVEPOINT ferry_rows",
                )
                .await?;
                if range.len() == 1 {
                    refused += 1;
                    let column = error_column(&e).and_then(|target| {
                        spec.plan
                            .columns
                            .iter()
                            .find(|c| c.target == target)
                            .map(|c| c.source.clone())
                    });
                    rejects.push(RejectRow {
                        table: spec.plan.source.clone(),
                        kind: "reject".into(),
                        key: batch.row_keys[range.start].clone(),
                        column: column.unwrap_or_default(),
                        reason: format!("PostgreSQL refused the row: {}", describe(&e)),
                        bytes_hex: None,
                    });
                } else {
                    let mid = range.start + range.len() / 2;
                    // Pushed in reverse so rows are tried in order.
                    stack.push(mid..range.end);
                    stack.push(range.start..mid);
                }
            }
            Err(e) => return Err(ChunkError::Pg(e)),
        }
    }
    Ok((loaded, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(chunks: &[Chunk]) -> Vec<(i64, i64)> {
        chunks.iter().map(Chunk::bounds).collect()
    }

    #[test]
    fn chunks_partition_the_rowid_space() {
        let all = ranges(&plan_chunks(&[], Some((1, 100, 100)), 30));
        assert_eq!(all.first().unwrap().0, i64::MIN);
        assert_eq!(all.last().unwrap().1, i64::MAX);
        assert_eq!(all.len(), 4);
        for w in all.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        // After chunks 2 and 4 committed, the rest is exactly the gaps.
        let done = [all[1], all[3]];
        let rest = ranges(&plan_chunks(&done, Some((1, 100, 100)), 30));
        assert_eq!(rest, vec![all[0], all[2]]);
        // Nothing left.
        assert!(plan_chunks(&[(i64::MIN, i64::MAX)], Some((1, 100, 100)), 30).is_empty());
        // Empty table: one chunk over everything.
        assert_eq!(
            ranges(&plan_chunks(&[], None, 30)),
            vec![(i64::MIN, i64::MAX)]
        );
    }
}
