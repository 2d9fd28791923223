//! The scheduling side of the copy: which table's next chunk a worker takes, which
//! post-data step may run once the tables it needs are copied, and the worker loop that
//! does both on `workers` PostgreSQL connections.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ferry_core::plan::TableKind;
use sqlx::postgres::PgConnection;
use tokio::sync::oneshot;

use super::chunk::{copy_chunk, BoxFut};
use super::reader::{Chunk, TableReader, TableSpec};
use crate::bookkeeping;
use crate::cell::Cell;
use crate::ddl::{self, Step};
use crate::encode::ConvertOptions;
use crate::error::{Result, TransferError};
use crate::pg::Connector;
use crate::progress::{Bars, TableBar};
use crate::sqlite::SqliteSource;
use crate::steps;

/// One table in the copy stage.
pub(crate) struct TableJob {
    pub(crate) spec: Arc<TableSpec>,
    pub(crate) chunks: Mutex<std::collections::VecDeque<Chunk>>,
    pub(crate) remaining: AtomicUsize,
    pub(crate) active: AtomicUsize,
    /// The table's one reader, shared by every worker copying it (a live source).
    pub(crate) reader: Mutex<Option<Arc<TableReader>>>,
    /// Readers not lent to a worker right now (a source nothing writes: one per worker).
    pub(crate) idle: Mutex<Vec<Arc<TableReader>>>,
    pub(crate) snapshot_rows: Mutex<Option<oneshot::Receiver<std::result::Result<u64, String>>>>,
    pub(crate) bar: TableBar,
    /// This run's rows, bytes and rejected rows (for verification).
    pub(crate) rows: AtomicU64,
    pub(crate) rejected: AtomicU64,
    /// Whether chunks had been committed before this run.
    pub(crate) resumed: bool,
}

impl TableJob {
    /// A reader for one chunk. A live source: the table's one reader, so every chunk reads
    /// the same snapshot. A source nothing writes (`own`): an idle reader of the table, or
    /// a new one, so workers on the same table read in parallel. The table's first reader
    /// counts its rows.
    fn reader(&self, path: &Path, conv: ConvertOptions, own: bool) -> Arc<TableReader> {
        if own {
            if let Some(r) = lock(&self.idle).pop() {
                return r;
            }
        }
        let mut slot = lock(&self.reader);
        if !own {
            if let Some(r) = slot.as_ref() {
                return r.clone();
            }
        }
        let mut counting = lock(&self.snapshot_rows);
        let first = counting.is_none();
        let (reader, count) = TableReader::spawn(path.to_owned(), self.spec.clone(), conv, first);
        if first {
            *counting = Some(count);
        }
        let reader = Arc::new(reader);
        if !own {
            *slot = Some(reader.clone());
        }
        reader
    }

    /// Takes back a reader lent for one chunk (a source nothing writes). Called before the
    /// chunk counts as finished, so the table's last chunk clears it with the others.
    fn give_back(&self, reader: Arc<TableReader>, own: bool) {
        if own {
            lock(&self.idle).push(reader);
        }
    }

    /// Returns whether that was the table's last chunk.
    fn chunk_finished(&self) -> bool {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Last chunk: end the read transactions.
            *lock(&self.reader) = None;
            lock(&self.idle).clear();
            return true;
        }
        false
    }
}

/// What the copy stage needs.
pub struct CopyStage<'a> {
    pub pg: &'a Connector,
    pub source: &'a Path,
    pub specs: Vec<Arc<TableSpec>>,
    pub conv: ConvertOptions,
    pub workers: usize,
    pub chunk_rows: u64,
    pub bars: &'a Bars,
    pub pause_after_chunk: Option<std::time::Duration>,
    /// Nothing writes the source during the copy: one reader per worker, not per table.
    pub source_immutable: bool,
    /// Post-data steps (views excepted) not yet done: each runs on the same workers as
    /// soon as what it needs is copied, filling the time other tables still copy.
    pub steps: Vec<Step>,
    /// Steps done by an earlier run, and which of them failed.
    pub done_steps: HashSet<String>,
    pub failed_steps: HashSet<String>,
}

/// Which post-data steps are waiting, running and done.
#[derive(Debug, Default)]
pub(crate) struct Board {
    pending: Vec<Step>,
    running: Vec<Step>,
    finished: HashSet<String>,
    /// Finished steps that did not carry their object over: validating what was never
    /// added is skipped.
    failed: HashSet<String>,
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

    fn finish(&mut self, id: &str, ok: bool) {
        self.running.retain(|s| s.id != id);
        self.finished.insert(id.to_owned());
        if !ok {
            self.failed.insert(id.to_owned());
        }
    }

    /// A validation step whose constraint was never added.
    fn pointless(&self, s: &Step) -> bool {
        s.validation
            && s.id
                .strip_suffix(":validate")
                .is_some_and(|add| self.failed.contains(add))
    }
}

pub(crate) struct Shared {
    pub(crate) pg: Connector,
    pub(crate) source: PathBuf,
    pub(crate) conv: ConvertOptions,
    pub(crate) jobs: Vec<TableJob>,
    pub(crate) failed: AtomicBool,
    pub(crate) pause: Option<std::time::Duration>,
    pub(crate) source_immutable: bool,
    pub(crate) board: Mutex<Board>,
    /// Chunks not yet committed (queued or being copied), all tables together.
    pub(crate) chunks_left: AtomicUsize,
    pub(crate) changed: tokio::sync::Notify,
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
                idle: Mutex::new(Vec::new()),
                snapshot_rows: Mutex::new(None),
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
            failed: self.failed_steps,
            copied,
        };
        let shared = Arc::new(Shared {
            pg: self.pg.clone(),
            source: self.source.to_owned(),
            conv: self.conv,
            jobs,
            failed: AtomicBool::new(false),
            pause: self.pause_after_chunk,
            source_immutable: self.source_immutable,
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
            // No reader when every chunk was committed before this run: no count.
            let pending = lock(&job.snapshot_rows).take();
            let snapshot = match pending {
                Some(rx) => rx.await.ok().and_then(|r| r.ok()),
                None => None,
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
        Connector::close(c).await;
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
            let own = shared.source_immutable;
            let reader = job.reader(&shared.source, shared.conv, own);
            let res = copy_chunk(shared, conn, job, &reader, chunk).await;
            job.active.fetch_sub(1, Ordering::SeqCst);
            job.give_back(reader, own && res.is_ok());
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
        if lock(&shared.board).pointless(&step) {
            lock(&shared.board).finish(&step.id, false);
            shared.changed.notify_waiters();
            continue;
        }
        let c = match conn.take() {
            Some(c) => conn.insert(c),
            None => conn.insert(shared.pg.connect("building keys and indexes").await?),
        };
        let res = steps::run_step(&shared.pg, c, &step, true).await;
        lock(&shared.board).finish(&step.id, matches!(res, Ok(true)));
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
