//! The applier: reads batches of the change log and applies them to PostgreSQL exactly once
//! in effect; runs full reconciliations; applies given keys; fences SQLite's writers for
//! cutover.
//!
//! Architecture invariants:
//! - A table's rows, its rejects and its cursor (`ferry_sync_tables.cursor`) commit in one
//!   PostgreSQL transaction; the global cursor (`ferry_sync_state.cursor`) moves only after
//!   every table of the batch committed. After a crash the batch is read again from the
//!   global cursor, and a table skips the entries its own cursor already covers: no change
//!   is applied twice, none is skipped.
//! - What is applied is the row's state read in one SQLite snapshot taken after the
//!   entries were logged, so applying an entry again (after a lost connection, or after a
//!   full pass) re-applies the current state and changes nothing.
//! - A full pass or `apply_keys` locks the table's cursor row *before* it opens its SQLite
//!   snapshot, so it never writes a state older than one a committed batch wrote; a batch
//!   read earlier that commits after it writes an older state whose newer entries are
//!   still after the cursor, and are applied next.
//! - Connection errors are retried with backoff; a row PostgreSQL refuses sends the batch
//!   through careful mode (row by row under savepoints) and the row to the reject list.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::config::Config;
use ferry_core::pgcopy::cell::OwnedCell;
use ferry_core::pgcopy::{ConvertOptions, SubMicrosecond};
use ferry_core::plan::TransferPlan;
use ferry_core::sql::{qualified, quote_literal};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::capture::LOG_TABLE;
use crate::error::{Result, SyncError};
use crate::lag::{LagStats, SyncStatus};
use crate::source::{self, Batch, Reject, Source, TableChange};
use crate::target::{
    self, classify, exec, ErrorClass, PgSide, RetryPolicy, SyncTarget, TargetTable, REJECTS_TABLE,
    STATE_TABLE, TABLES_TABLE,
};

/// How the applier runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Change-log entries per batch.
    pub batch_changes: u64,
    /// Parallel apply connections; the tables of a batch are shared among them.
    pub workers: usize,
    /// The plan's value conversions (as phase 3 ran them).
    pub convert: ConvertOptions,
    pub retry: RetryPolicy,
    /// `application_name` of the PostgreSQL sessions.
    pub application_name: String,
    /// Sleep inside each apply transaction, after the rows are staged: widens the window in
    /// which a test cuts the connection.
    pub pause_in_apply: Option<Duration>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            batch_changes: 5_000,
            workers: 2,
            convert: ConvertOptions {
                naive_offset: 0,
                sub_microsecond: SubMicrosecond::Reject,
            },
            retry: RetryPolicy::default(),
            application_name: "ferry-sync".into(),
            pause_in_apply: None,
        }
    }
}

impl SyncOptions {
    /// The options a [`Config`] sets (`sync.*`, `timestamps.naive`).
    pub fn from_config(config: &Config) -> Self {
        Self {
            batch_changes: config.sync.batch_changes,
            workers: config.sync.workers,
            convert: ConvertOptions {
                naive_offset: config.timestamps.naive_offset_seconds(),
                sub_microsecond: SubMicrosecond::Reject,
            },
            ..Self::default()
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Change-log entries applied.
    pub changes: u64,
    /// Rows written (present rows inserted) and keys cleared.
    pub rows: u64,
    pub rejects: u64,
    /// More entries were waiting when the batch was read.
    pub more: bool,
    /// Digest-followed tables replaced.
    pub tables_replaced: u64,
    pub cursor: i64,
    /// The tables (SQLite names) the batch's entries named, and the digest-followed tables
    /// that changed.
    #[serde(default)]
    pub tables: Vec<String>,
}

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrainReport {
    pub batches: u64,
    pub changes: u64,
    pub rejects: u64,
    /// Digest-followed tables replaced.
    pub tables_replaced: u64,
    pub seconds: f64,
    pub cursor: i64,
    /// Every table (SQLite name) an applied entry named, and the digest-followed tables
    /// that changed: the tables this drain may have written in PostgreSQL.
    #[serde(default)]
    pub tables: std::collections::BTreeSet<String>,
}

/// What a full reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FullReport {
    /// `(table, rows read from SQLite)`.
    pub tables: Vec<(String, u64)>,
    /// Row writes the reconciliation made in PostgreSQL (rows inserted plus rows deleted:
    /// a changed row counts twice); 0 when PostgreSQL already matched.
    pub rows_fixed: u64,
    pub rejects: u64,
    pub seconds: f64,
}

/// The write lock on SQLite, held from [`Applier::fence`] to [`Applier::release`].
#[derive(Debug)]
pub struct Fence {
    acquired: Instant,
    pub acquired_at: String,
    /// How long taking the lock waited for the application's write transaction.
    pub waited: Duration,
}

/// The cutover, recorded in PostgreSQL (`ferry_sync_state.cutover`) while writers were
/// fenced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cutover {
    /// The last change-log entry before cutover.
    pub seq: i64,
    /// Where PostgreSQL's cursor was: equal to `seq` when drained.
    pub cursor: i64,
    pub drained: bool,
    pub at: String,
    /// How long the application's writers were held.
    pub blackout_ms: f64,
    /// PostgreSQL's transaction id at cutover, and each table's rows then, to count what
    /// was written to PostgreSQL since ([`crate::pg_writes_since_cutover`]).
    pub pg_xid: i64,
    /// `(PostgreSQL table, rows)`.
    pub table_rows: Vec<(String, i64)>,
}

struct Worker {
    conn: Option<PgConnection>,
    staged: HashSet<usize>,
}

/// Reads the SQLite change log and applies it to PostgreSQL.
pub struct Applier {
    source: Arc<Mutex<Source>>,
    plan: TransferPlan,
    pg: PgSide,
    control: Option<PgConnection>,
    exclusive: bool,
    workers: Vec<Worker>,
    tables: Arc<Vec<TargetTable>>,
    table_cursors: Vec<i64>,
    digests: Vec<Option<String>>,
    cursor: i64,
    capture_id: String,
    handoff_done: bool,
    options: SyncOptions,
    lag: LagStats,
    /// The lags recorded since [`Self::take_interval_lag`] was last called.
    interval_lag: LagStats,
    applied_since_open: u64,
    applied_total: u64,
    retries: u64,
    last_error: Option<String>,
    started: Instant,
    fenced: Option<Instant>,
    /// The last entry before cutover, once cut over: nothing is applied after it.
    cut_seq: Option<i64>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("schema", &self.pg.schema)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(SyncError::Hook {
            message: format!("a blocking task stopped: {e}"),
        })
    })
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Applier {
    /// Opens the SQLite file (capture must be installed for the plan's tables) and the
    /// target schema. `exclusive` takes the schema's follower lock: one follower at a time
    /// (`apply_keys` from another process needs no lock).
    ///
    /// A capture PostgreSQL has not seen yet (the first open after `install`, or after a
    /// reinstall) resets the cursors to 0: a full reconciliation then closes the gap between
    /// phase 3's copy and the start of capture ([`Self::full_pass`], or the runner's
    /// [`Self::apply_keys`] followed by [`Self::record_handoff`]).
    pub async fn open(
        sqlite: &Path,
        target: &SyncTarget,
        plan: &TransferPlan,
        options: &SyncOptions,
        exclusive: bool,
    ) -> Result<Self> {
        ferry_core::config::check_identifier(&target.schema).map_err(|m| SyncError::Plan {
            message: format!("schema {:?}: {m}", target.schema),
        })?;
        let path = sqlite.to_owned();
        let plan_c = plan.clone();
        let conv = options.convert;
        let source = blocking(move || {
            let mut s = Source::open(&path, &plan_c, conv)?;
            s.in_snapshot(|s| s.check_schema())?;
            Ok(s)
        })
        .await?;
        let pg = PgSide::new(target, options.retry, &options.application_name)?;
        let mut control = pg.connect("connecting", true).await?;
        if exclusive {
            lock(&pg, &mut control).await?;
        }
        let names: Vec<String> = plan.tables.iter().map(|t| t.source.clone()).collect();
        target::ensure_bookkeeping(&mut control, &pg.schema, &names)
            .await
            .map_err(|e| pg.err("creating ferry's sync bookkeeping", &e))?;
        let capture_id = source.spec.capture_id.clone();
        let row = sqlx::query(&format!(
            "SELECT capture_id, cursor, handoff_done, applied_changes FROM {} WHERE id = 1",
            qualified(&pg.schema, STATE_TABLE)
        ))
        .fetch_optional(&mut control)
        .await
        .map_err(|e| pg.err("reading the sync state", &e))?;
        let (cursor, handoff_done, applied_total) = match row {
            Some(r) if r.get::<String, _>(0) == capture_id => {
                (r.get(1), r.get(2), r.get::<i64, _>(3))
            }
            _ => {
                // A new capture: its log starts at 1, and the rows written before it began
                // reach PostgreSQL through the full reconciliation.
                exec(
                    &mut control,
                    &format!(
                        "BEGIN;
                         INSERT INTO {state} (id, capture_id) VALUES (1, {id})
                           ON CONFLICT (id) DO UPDATE SET capture_id = EXCLUDED.capture_id, cursor = 0,
                             handoff_done = false, applied_changes = 0, cutover = NULL, last_error = NULL,
                             lag_p50_ms = NULL, lag_p99_ms = NULL, lag_max_ms = NULL, updated_at = now();
                         UPDATE {tables} SET cursor = 0, digest = NULL, applied_changes = 0;
                         COMMIT;",
                        state = qualified(&pg.schema, STATE_TABLE),
                        tables = qualified(&pg.schema, TABLES_TABLE),
                        id = quote_literal(&capture_id)
                    ),
                )
                .await
                .map_err(|e| pg.err("recording the new capture", &e))?;
                tracing::info!(capture = %capture_id, "new capture: cursor at 0, a full reconciliation closes the handoff");
                (0, false, 0)
            }
        };
        let cut_seq: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT (cutover ->> 'seq')::bigint FROM {} WHERE id = 1",
            qualified(&pg.schema, STATE_TABLE)
        ))
        .fetch_one(&mut control)
        .await
        .map_err(|e| pg.err("reading the sync state", &e))?;
        let rows = sqlx::query(&format!(
            "SELECT tbl, cursor, digest FROM {}",
            qualified(&pg.schema, TABLES_TABLE)
        ))
        .fetch_all(&mut control)
        .await
        .map_err(|e| pg.err("reading the table cursors", &e))?;
        let mut table_cursors = vec![0; plan.tables.len()];
        let mut digests = vec![None; plan.tables.len()];
        for r in rows {
            let name: String = r.get(0);
            if let Some(i) = source.by_name.get(&name) {
                table_cursors[*i] = r.get(1);
                digests[*i] = r.get(2);
            }
        }
        let mut tables = Vec::new();
        for (i, t) in plan.tables.iter().enumerate() {
            tables.push(TargetTable::load(&mut control, &pg, i, t, source.tables[i].digest).await?);
        }
        let workers = (0..options.workers.max(1))
            .map(|_| Worker {
                conn: None,
                staged: HashSet::new(),
            })
            .collect();
        Ok(Self {
            source: Arc::new(Mutex::new(source)),
            plan: plan.clone(),
            pg,
            control: Some(control),
            exclusive,
            workers,
            tables: Arc::new(tables),
            table_cursors,
            digests,
            cursor,
            capture_id,
            handoff_done,
            options: options.clone(),
            lag: LagStats::default(),
            interval_lag: LagStats::default(),
            applied_since_open: 0,
            applied_total: applied_total as u64,
            retries: 0,
            last_error: None,
            started: Instant::now(),
            fenced: None,
            cut_seq,
        })
    }

    /// The global cursor: every entry up to it is applied.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    pub fn handoff_done(&self) -> bool {
        self.handoff_done
    }

    /// Lags of the changes applied since open.
    pub fn lag(&self) -> &LagStats {
        &self.lag
    }

    /// The lags recorded since the previous call (one point of the time series).
    pub fn take_interval_lag(&mut self) -> LagStats {
        std::mem::take(&mut self.interval_lag)
    }

    pub fn plan(&self) -> &TransferPlan {
        &self.plan
    }

    /// Reads one batch after the cursor and applies it.
    pub async fn step(&mut self) -> Result<BatchReport> {
        if let Some(seq) = self.cut_seq {
            return Err(SyncError::CutOver { seq });
        }
        let after = self.cursor;
        let cursors = self.table_cursors.clone();
        let digests = self.digests.clone();
        let limit = self.options.batch_changes.max(1);
        let source = self.source.clone();
        let batch: Batch = blocking(move || {
            let mut s = source.lock().unwrap_or_else(|p| p.into_inner());
            s.in_snapshot(|s| s.read_batch(after, &cursors, limit, &digests))
        })
        .await?;
        let mut report = BatchReport {
            more: batch.more,
            cursor: self.cursor,
            ..BatchReport::default()
        };
        if !batch.changes.is_empty() {
            report.tables = batch
                .changes
                .iter()
                .map(|c| self.plan.tables[c.table].source.clone())
                .collect();
            let outcome = self.apply(batch.changes).await?;
            report.changes = outcome.changes;
            report.rows = outcome.rows;
            report.rejects = outcome.rejects;
            report.tables_replaced = outcome.replaced;
        }
        if let Some(seq) = batch.last_seq {
            self.set_cursor(seq, report.changes).await?;
            report.cursor = seq;
        }
        Ok(report)
    }

    /// Applies batches until the log holds nothing after the cursor.
    pub async fn drain(&mut self) -> Result<DrainReport> {
        let started = Instant::now();
        let mut out = DrainReport::default();
        loop {
            let b = self.step().await?;
            out.batches += 1;
            out.changes += b.changes;
            out.rejects += b.rejects;
            out.tables_replaced += b.tables_replaced;
            out.tables.extend(b.tables);
            if !b.more {
                break;
            }
        }
        out.seconds = started.elapsed().as_secs_f64();
        out.cursor = self.cursor;
        Ok(out)
    }

    async fn set_cursor(&mut self, seq: i64, changes: u64) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET cursor = greatest(cursor, $1), applied_changes = applied_changes + $2,
               lag_p50_ms = $3, lag_p99_ms = $4, lag_max_ms = $5, updated_at = now() WHERE id = 1",
            qualified(&self.pg.schema, STATE_TABLE)
        );
        let (p50, p99, max) = (
            self.lag.quantile_ms(0.5),
            self.lag.quantile_ms(0.99),
            self.lag.max_ms(),
        );
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let conn = self.control_conn().await?;
            let res = sqlx::query(&sql)
                .bind(seq)
                .bind(changes as i64)
                .bind(p50)
                .bind(p99)
                .bind(max)
                .execute(&mut *conn)
                .await;
            match res {
                Ok(_) => break,
                Err(e)
                    if classify(&e) == ErrorClass::Connection
                        && attempt < self.pg.retry.attempts =>
                {
                    self.drop_control().await;
                    attempt += 1;
                    self.retries += 1;
                    tokio::time::sleep(self.pg.retry.backoff(attempt)).await;
                }
                Err(e) if classify(&e) == ErrorClass::Connection => {
                    return Err(self
                        .pg
                        .unreachable("recording the cursor", attempt, started, &e))
                }
                Err(e) => return Err(self.pg.err("recording the cursor", &e)),
            }
        }
        self.cursor = self.cursor.max(seq);
        self.applied_total += changes;
        Ok(())
    }

    async fn control_conn(&mut self) -> Result<&mut PgConnection> {
        if self.control.is_none() {
            let mut c = self.pg.connect("reconnecting", true).await?;
            if self.exclusive {
                lock(&self.pg, &mut c).await?;
            }
            self.control = Some(c);
        }
        Ok(self.control.as_mut().expect("just connected"))
    }

    async fn drop_control(&mut self) {
        if let Some(c) = self.control.take() {
            PgSide::close(c).await;
        }
    }

    /// Applies table changes, the tables shared among the workers, each worker's part in
    /// one transaction with its tables' cursors.
    async fn apply(&mut self, changes: Vec<TableChange>) -> Result<Outcome> {
        let n = self.workers.len();
        let mut groups: Vec<Vec<TableChange>> = (0..n).map(|_| Vec::new()).collect();
        for ch in changes {
            groups[ch.table % n].push(ch);
        }
        let mut handles = Vec::new();
        for (wi, group) in groups.into_iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let worker = Worker {
                conn: self.workers[wi].conn.take(),
                staged: std::mem::take(&mut self.workers[wi].staged),
            };
            let pg = self.pg.clone();
            let tables = self.tables.clone();
            let pause = self.options.pause_in_apply;
            handles.push((
                wi,
                tokio::spawn(async move { apply_group(pg, worker, tables, group, pause).await }),
            ));
        }
        let mut outcome = Outcome::default();
        let mut first_err = None;
        for (wi, h) in handles {
            let (worker, res) = match h.await {
                Ok(v) => v,
                Err(e) => {
                    first_err.get_or_insert(SyncError::Hook {
                        message: format!("an apply worker stopped: {e}"),
                    });
                    continue;
                }
            };
            self.workers[wi] = worker;
            match res {
                Ok(done) => {
                    self.retries += done.retries;
                    for ch in &done.changes {
                        if let Some(c) = ch.cursor {
                            self.table_cursors[ch.table] = self.table_cursors[ch.table].max(c);
                        }
                        if ch.digest.is_some() {
                            self.digests[ch.table] = ch.digest.clone();
                        }
                        for at in &ch.captured {
                            let ms = (done.committed_at - at) * 1000.0;
                            self.lag.record_ms(ms);
                            self.interval_lag.record_ms(ms);
                        }
                        outcome.changes += ch.changes;
                        outcome.rows += ch.n_rows + ch.n_keys;
                        outcome.rejects += ch.rejects.len() as u64;
                        outcome.replaced += u64::from(ch.replace_all);
                    }
                    outcome.rejects += done.refused;
                    self.applied_since_open += done.changes.iter().map(|c| c.changes).sum::<u64>();
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    /// Brings every table to SQLite's current state: per table, every row is staged and
    /// PostgreSQL's differing, missing and extra rows are fixed; rejects are recorded.
    /// Closes the handoff from phase 3's copy (records it done). The cursor is unchanged:
    /// entries after it are applied afterwards, with no effect where nothing changed.
    pub async fn full_pass(&mut self) -> Result<FullReport> {
        let started = Instant::now();
        let mut report = FullReport::default();
        for ti in 0..self.tables.len() {
            let (rows, fixed, rejects) = self.reconcile_table(ti).await?;
            report
                .tables
                .push((self.plan.tables[ti].source.clone(), rows));
            report.rows_fixed += fixed;
            report.rejects += rejects;
        }
        self.record_handoff().await?;
        report.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            rows_fixed = report.rows_fixed,
            rejects = report.rejects,
            "full reconciliation done in {:.1} s",
            report.seconds
        );
        Ok(report)
    }

    /// Records that the rows written before capture began are in PostgreSQL (after a
    /// reconciliation the runner drove with [`Self::apply_keys`]).
    pub async fn record_handoff(&mut self) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET handoff_done = true, updated_at = now() WHERE id = 1",
            qualified(&self.pg.schema, STATE_TABLE)
        );
        let conn = self.control_conn().await?;
        exec(conn, &sql)
            .await
            .map_err(|e| self.pg.err("recording the handoff", &e))?;
        self.handoff_done = true;
        Ok(())
    }

    async fn reconcile_table(&mut self, ti: usize) -> Result<(u64, u64, u64)> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match self.reconcile_once(ti).await {
                Ok(v) => return Ok(v),
                Err(Retry::Again(e)) if attempt < self.pg.retry.attempts => {
                    tracing::warn!(table = %self.plan.tables[ti].source, "connection lost during reconciliation ({}); retrying", target::describe(&e));
                    if let Some(c) = self.workers[0].conn.take() {
                        PgSide::close(c).await;
                    }
                    attempt += 1;
                    self.retries += 1;
                    tokio::time::sleep(self.pg.retry.backoff(attempt)).await;
                }
                Err(Retry::Again(e)) => {
                    return Err(self
                        .pg
                        .unreachable("reconciling a table", attempt, started, &e))
                }
                Err(Retry::Fail(e)) => return Err(e),
            }
        }
    }

    async fn reconcile_once(&mut self, ti: usize) -> Result<(u64, u64, u64), Retry> {
        let t = self.tables[ti].clone();
        let pg = self.pg.clone();
        let context = format!("reconciling table {:?}", t.source);
        let fail = |e: sqlx::Error| Retry::of(&pg, &context, e);
        let st = {
            let s = self.source.lock().unwrap_or_else(|p| p.into_inner());
            s.tables[ti].clone()
        };
        let path = self
            .source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .path
            .clone();
        let conv = self.options.convert;
        let schema = self.pg.schema.clone();
        let worker = &mut self.workers[0];
        if worker.conn.is_none() {
            worker.conn = Some(
                self.pg
                    .connect("reconciling", true)
                    .await
                    .map_err(Retry::Fail)?,
            );
            worker.staged.clear();
        }
        let conn = worker.conn.as_mut().expect("connected");
        exec(conn, "BEGIN").await.map_err(fail)?;
        if worker.staged.insert(ti) {
            exec(conn, &t.stage_sql()).await.map_err(fail)?;
        }
        // The cursor row is locked before SQLite's snapshot begins.
        sqlx::query(&format!(
            "SELECT cursor FROM {} WHERE tbl = $1 FOR UPDATE",
            qualified(&schema, TABLES_TABLE)
        ))
        .bind(&t.source)
        .fetch_optional(&mut *conn)
        .await
        .map_err(fail)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let reader = tokio::task::spawn_blocking(move || {
            if let Err(e) = source::stream_table(&path, &st, &conv, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let mut copy = conn.copy_in_raw(&t.copy_rows_sql()).await.map_err(fail)?;
        copy.send(ferry_core::pgcopy::HEADER).await.map_err(fail)?;
        let mut rows = 0u64;
        let mut rejects: Vec<Reject> = Vec::new();
        let mut digest = None;
        let mut failed = None;
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Ok(c) => {
                    if !c.rows.is_empty() {
                        copy.send(c.rows.as_slice()).await.map_err(fail)?;
                    }
                    rows += c.n_rows;
                    rejects.extend(c.rejects);
                    if c.digest.is_some() {
                        digest = c.digest;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let _ = reader.await;
        if let Some(e) = failed {
            let _ = copy.abort("ferry stopped reading the source").await;
            let _ = exec(conn, "ROLLBACK").await;
            return Err(Retry::Fail(e));
        }
        copy.send(&ferry_core::pgcopy::TRAILER[..])
            .await
            .map_err(fail)?;
        copy.finish().await.map_err(fail)?;
        let tq = &t.qualified;
        let s = &t.stage;
        let mut sql = String::new();
        if t.key.is_empty() {
            sql.push_str(&format!("DELETE FROM {tq}; {}", t.insert_sql()));
        } else {
            let on = |a: &str, b: &str| {
                t.key
                    .iter()
                    .map(|k| format!("{a}.{k} = {b}.{k}"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            let row = |a: &str| {
                t.cols
                    .iter()
                    .map(|c| format!("{a}.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            sql.push_str(&format!(
                "DELETE FROM {tq} t WHERE NOT EXISTS (SELECT 1 FROM {s} s WHERE {on_ts});
                 DELETE FROM {tq} t USING {s} s WHERE {on_ts} AND ({rt}) IS DISTINCT FROM ({rs});",
                on_ts = on("t", "s"),
                rt = row("t"),
                rs = row("s"),
            ));
            for (cols, nnd) in &t.uniques {
                let m = cols
                    .iter()
                    .map(|c| {
                        if *nnd {
                            format!("t.{c} IS NOT DISTINCT FROM s.{c}")
                        } else {
                            format!("t.{c} = s.{c}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                sql.push_str(&format!(
                    "DELETE FROM {tq} t USING {s} s WHERE {m} AND NOT ({});",
                    on("t", "s")
                ));
            }
            sql.push_str(&format!(
                "INSERT INTO {tq} ({cols}){ov} SELECT {scols} FROM {s} s WHERE NOT EXISTS (SELECT 1 FROM {tq} t WHERE {on_ts});",
                cols = t.cols.join(", "),
                ov = if t.overriding { " OVERRIDING SYSTEM VALUE" } else { "" },
                scols = row("s"),
                on_ts = on("t", "s"),
            ));
        }
        let before: i64 = sqlx::query_scalar("SELECT pg_stat_get_xact_tuples_inserted($1::regclass) + pg_stat_get_xact_tuples_deleted($1::regclass)")
            .bind(tq)
            .fetch_one(&mut *conn)
            .await
            .map_err(fail)?;
        exec(conn, &sql).await.map_err(|e| match classify(&e) {
            ErrorClass::Connection => Retry::Again(e),
            _ => Retry::Fail(self.pg.err(format!("reconciling table {:?}", t.source), &e)),
        })?;
        let after: i64 = sqlx::query_scalar("SELECT pg_stat_get_xact_tuples_inserted($1::regclass) + pg_stat_get_xact_tuples_deleted($1::regclass)")
            .bind(tq)
            .fetch_one(&mut *conn)
            .await
            .map_err(fail)?;
        let fixed = (after - before).max(0) as u64;
        // Every row was judged again: earlier rejects are superseded by this pass's.
        sqlx::query(&format!(
            "UPDATE {} SET resolved_at = now() WHERE tbl = $1 AND resolved_at IS NULL",
            qualified(&schema, REJECTS_TABLE)
        ))
        .bind(&t.source)
        .execute(&mut *conn)
        .await
        .map_err(fail)?;
        let n_rejects = rejects.len() as u64;
        if !rejects.is_empty() {
            let col = |f: fn(&Reject) -> String| rejects.iter().map(f).collect::<Vec<String>>();
            sqlx::query(&format!(
                "INSERT INTO {} (tbl, row_key, column_name, reason, bytes_hex)
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[])",
                qualified(&schema, REJECTS_TABLE)
            ))
            .bind(&t.source)
            .bind(col(|r| r.key.clone()))
            .bind(col(|r| r.column.clone()))
            .bind(col(|r| r.reason.clone()))
            .bind(
                rejects
                    .iter()
                    .map(|r| r.bytes_hex.clone())
                    .collect::<Vec<Option<String>>>(),
            )
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        }
        if t.key.is_empty() {
            sqlx::query(&format!(
                "UPDATE {} SET digest = $2 WHERE tbl = $1",
                qualified(&schema, TABLES_TABLE)
            ))
            .bind(&t.source)
            .bind(&digest)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        }
        exec(conn, "COMMIT").await.map_err(fail)?;
        if t.key.is_empty() {
            self.digests[ti] = digest;
        }
        Ok((rows + n_rejects_rows(&rejects), fixed, n_rejects))
    }

    /// Applies the current SQLite state of the given keys of one table (the runner computes
    /// them with ferry-validate's row diff). Returns the keys applied. The cursor is
    /// unchanged.
    pub async fn apply_keys(&mut self, table: &str, keys: &[Vec<OwnedCell>]) -> Result<u64> {
        let ti = *self
            .source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .get(table)
            .ok_or_else(|| SyncError::Plan {
                message: format!("table {table:?} is not in the transfer plan"),
            })?;
        if self.tables[ti].key.is_empty() {
            // A digest-followed table has no stable key: it is replaced whole.
            self.reconcile_table(ti).await?;
            return Ok(keys.len() as u64);
        }
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match self.apply_keys_once(ti, keys).await {
                Ok(()) => return Ok(keys.len() as u64),
                Err(Retry::Again(_)) if attempt < self.pg.retry.attempts => {
                    if let Some(c) = self.workers[0].conn.take() {
                        PgSide::close(c).await;
                    }
                    attempt += 1;
                    self.retries += 1;
                    tokio::time::sleep(self.pg.retry.backoff(attempt)).await;
                }
                Err(Retry::Again(e)) => {
                    return Err(self.pg.unreachable("applying keys", attempt, started, &e))
                }
                Err(Retry::Fail(e)) => return Err(e),
            }
        }
    }

    async fn apply_keys_once(&mut self, ti: usize, keys: &[Vec<OwnedCell>]) -> Result<(), Retry> {
        let schema = self.pg.schema.clone();
        let pg = self.pg.clone();
        let context = format!("applying keys of table {:?}", self.tables[ti].source);
        let fail = |e: sqlx::Error| Retry::of(&pg, &context, e);
        let worker = &mut self.workers[0];
        if worker.conn.is_none() {
            worker.conn = Some(
                self.pg
                    .connect("applying keys", true)
                    .await
                    .map_err(Retry::Fail)?,
            );
            worker.staged.clear();
        }
        let conn = worker.conn.as_mut().expect("connected");
        exec(conn, "BEGIN").await.map_err(fail)?;
        sqlx::query(&format!(
            "SELECT cursor FROM {} WHERE tbl = $1 FOR UPDATE",
            qualified(&schema, TABLES_TABLE)
        ))
        .bind(&self.tables[ti].source)
        .fetch_optional(&mut *conn)
        .await
        .map_err(fail)?;
        let source = self.source.clone();
        let keys = keys.to_vec();
        let change = blocking(move || {
            let mut s = source.lock().unwrap_or_else(|p| p.into_inner());
            s.in_snapshot(|s| s.read_keys(ti, &keys))
        })
        .await
        .map_err(Retry::Fail)?;
        let mut careful = false;
        loop {
            let res = target::apply_in_tx(
                conn,
                &schema,
                &self.tables,
                &[&change],
                careful,
                &mut worker.staged,
            )
            .await;
            match res {
                Ok(_) => break,
                Err(e) if classify(&e) == ErrorClass::Data && !careful => {
                    exec(conn, "ROLLBACK; BEGIN").await.map_err(fail)?;
                    careful = true;
                }
                Err(e) => return Err(fail(e)),
            }
        }
        exec(conn, "COMMIT").await.map_err(fail)?;
        Ok(())
    }

    /// Where sync stands (positions read now from both sides).
    pub async fn status(&mut self) -> Result<SyncStatus> {
        let source = self.source.clone();
        let after = self.cursor;
        let cut_seq = self.cut_seq;
        let (max_seq, oldest, after_cut) = blocking(move || {
            let mut s = source.lock().unwrap_or_else(|p| p.into_inner());
            s.in_snapshot(|s| {
                let (m, o) = s.positions(after)?;
                let after_cut = match cut_seq {
                    Some(c) => s
                        .conn
                        .query_row(
                            &format!("SELECT count(*) FROM {LOG_TABLE} WHERE seq > ?1"),
                            [c],
                            |r| r.get::<_, i64>(0),
                        )
                        .map_err(crate::capture::sqlite_err(
                            &s.path,
                            "counting writes after cutover",
                        ))?,
                    None => 0,
                };
                Ok((m, o, after_cut))
            })
        })
        .await?;
        let schema = self.pg.schema.clone();
        let pg = self.pg.clone();
        let conn = self.control_conn().await?;
        let open = target::open_rejects(conn, &schema)
            .await
            .map_err(|e| pg.err("reading the rejects", &e))?;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        Ok(SyncStatus {
            capture_id: self.capture_id.clone(),
            cursor: self.cursor,
            max_seq,
            changes_behind: (max_seq - self.cursor).max(0) as u64,
            seconds_behind: oldest.map_or(0.0, |o| (now_secs() - o).max(0.0)),
            handoff_done: self.handoff_done,
            applied_since_start: self.applied_since_open,
            applied_total: self.applied_total,
            changes_per_second: self.applied_since_open as f64 / secs,
            lag_p50_ms: self.lag.quantile_ms(0.5),
            lag_p99_ms: self.lag.quantile_ms(0.99),
            lag_max_ms: self.lag.max_ms(),
            open_rejects: open.len() as u64,
            retries: self.retries,
            last_error: self.last_error.clone(),
            written_after_cutover: after_cut as u64,
            cut_over: self.cut_seq.is_some(),
            updated_at: chrono::Utc::now().to_rfc3339(),
        })
    }

    /// Notes an error for the status (and PostgreSQL's `ferry_sync_state.last_error`).
    pub async fn note_error(&mut self, message: &str) {
        self.last_error = Some(message.to_owned());
        let sql = format!(
            "UPDATE {} SET last_error = $1, last_error_at = now() WHERE id = 1",
            qualified(&self.pg.schema, STATE_TABLE)
        );
        if let Ok(conn) = self.control_conn().await {
            let _ = sqlx::query(&sql).bind(message).execute(&mut *conn).await;
        }
    }

    /// Rejects not resolved by a later apply of the same key.
    pub async fn open_rejects(&mut self) -> Result<Vec<Reject>> {
        let schema = self.pg.schema.clone();
        let pg = self.pg.clone();
        let conn = self.control_conn().await?;
        target::open_rejects(conn, &schema)
            .await
            .map_err(|e| pg.err("reading the rejects", &e))
    }

    /// Deletes the change-log entries every table has applied, keeping the newest entry
    /// so SQLite never hands out a sequence number at or below the cursor again. Skipped
    /// (0) when the application holds the write lock.
    pub async fn prune(&mut self) -> Result<u64> {
        if self.fenced.is_some() {
            return Ok(0);
        }
        let below = self.cursor;
        let source = self.source.clone();
        blocking(move || {
            let s = source.lock().unwrap_or_else(|p| p.into_inner());
            s.conn
                .busy_timeout(Duration::from_millis(50))
                .map_err(crate::capture::sqlite_err(&s.path, "setting the busy timeout"))?;
            let res = s.conn.execute(
                &format!("DELETE FROM {LOG_TABLE} WHERE seq < ?1 AND seq < (SELECT max(seq) FROM {LOG_TABLE})"),
                [below],
            );
            let _ = s.conn.busy_timeout(Duration::from_secs(30));
            match res {
                Ok(n) => Ok(n as u64),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
                {
                    Ok(0)
                }
                Err(e) => Err(crate::capture::sqlite_err(&s.path, "pruning the change log")(e)),
            }
        })
        .await
    }

    /// Takes SQLite's write lock (`BEGIN IMMEDIATE`): the application's writers wait (with
    /// their busy timeout) instead of failing. Drain through it with [`Self::drain`], then
    /// [`Self::release`].
    pub async fn fence(&mut self) -> Result<Fence> {
        let source = self.source.clone();
        let started = Instant::now();
        blocking(move || {
            let mut s = source.lock().unwrap_or_else(|p| p.into_inner());
            s.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(crate::capture::sqlite_err(
                    &s.path,
                    "taking the write lock (fence)",
                ))?;
            s.fenced = true;
            Ok(())
        })
        .await?;
        let now = Instant::now();
        self.fenced = Some(now);
        Ok(Fence {
            acquired: now,
            acquired_at: chrono::Utc::now().to_rfc3339(),
            waited: started.elapsed(),
        })
    }

    /// Records the cutover in PostgreSQL and releases SQLite's write lock; the held writers
    /// proceed. Their writes are still logged, and counted as written after cutover; this
    /// applier applies nothing after it.
    pub async fn release(&mut self, fence: Fence) -> Result<Cutover> {
        let source = self.source.clone();
        let (max_seq, _) = blocking(move || {
            let s = source.lock().unwrap_or_else(|p| p.into_inner());
            s.positions(0)
        })
        .await?;
        let schema = self.pg.schema.clone();
        let mut table_rows = Vec::new();
        let tables = self.tables.clone();
        let pg = self.pg.clone();
        let cursor = self.cursor;
        let conn = self.control_conn().await?;
        for t in tables.iter() {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", t.qualified))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| pg.err("counting rows at cutover", &e))?;
            table_rows.push((t.target.clone(), n));
        }
        let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| pg.err("reading the transaction id at cutover", &e))?;
        let mut cut = Cutover {
            seq: max_seq,
            cursor,
            drained: cursor >= max_seq,
            at: chrono::Utc::now().to_rfc3339(),
            blackout_ms: 0.0,
            pg_xid: xid,
            table_rows,
        };
        let json = serde_json::to_value(&cut).expect("cutover serialises");
        sqlx::query(&format!(
            "UPDATE {} SET cutover = $1, updated_at = now() WHERE id = 1",
            qualified(&schema, STATE_TABLE)
        ))
        .bind(sqlx::types::Json(json))
        .execute(&mut *conn)
        .await
        .map_err(|e| pg.err("recording the cutover", &e))?;
        // The fence wrote nothing to SQLite: ROLLBACK keeps the snapshot of every waiting
        // application transaction valid (a write here would make a deferred transaction
        // that read before the fence fail with SQLITE_BUSY_SNAPSHOT when it writes).
        let source = self.source.clone();
        blocking(move || {
            let mut s = source.lock().unwrap_or_else(|p| p.into_inner());
            let path = s.path.clone();
            let res = s
                .conn
                .execute_batch("ROLLBACK")
                .map_err(crate::capture::sqlite_err(
                    &path,
                    "releasing the write lock",
                ));
            s.fenced = false;
            res
        })
        .await?;
        self.cut_seq = Some(cut.seq);
        self.fenced = None;
        cut.blackout_ms = fence.acquired.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(seq = cut.seq, blackout_ms = cut.blackout_ms, "cut over");
        Ok(cut)
    }

    /// Moves every identity or serial sequence of the target tables past its column's
    /// highest value (never backwards), as the bulk copy left them: rows inserted by sync
    /// carry their keys from SQLite. Returns the sequences moved.
    pub async fn set_sequences(&mut self) -> Result<u64> {
        let tables = self.tables.clone();
        let pg = self.pg.clone();
        let conn = self.control_conn().await?;
        let mut moved = 0;
        for t in tables.iter() {
            for c in &t.cols {
                let col = c.trim_matches('"').replace("\"\"", "\"");
                let seq: Option<String> =
                    sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                        .bind(&t.qualified)
                        .bind(&col)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(|e| pg.err("looking up sequences", &e))?;
                let Some(seq) = seq else { continue };
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(setval($1::regclass, m)) FROM (SELECT max({c})::bigint AS m FROM {}) x
                     WHERE m IS NOT NULL AND m >= coalesce(pg_sequence_last_value($1::regclass), 0)",
                    t.qualified
                ))
                .bind(&seq)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| pg.err(format!("setting sequence {seq}"), &e))?;
                moved += n as u64;
            }
        }
        Ok(moved)
    }

    /// Releases the write lock without recording a cutover (the runner found a difference
    /// inside the fence); returns how long writers were held.
    pub async fn abort_fence(&mut self, fence: Fence) -> Result<Duration> {
        let source = self.source.clone();
        blocking(move || {
            let mut s = source.lock().unwrap_or_else(|p| p.into_inner());
            let res = s
                .conn
                .execute_batch("ROLLBACK")
                .map_err(crate::capture::sqlite_err(
                    &s.path.clone(),
                    "releasing the write lock",
                ));
            s.fenced = false;
            res
        })
        .await?;
        self.fenced = None;
        Ok(fence.acquired.elapsed())
    }

    /// The SQLite file followed.
    pub fn sqlite_path(&self) -> PathBuf {
        self.source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .path
            .clone()
    }

    /// Closes every connection.
    pub async fn close(mut self) {
        for w in &mut self.workers {
            if let Some(c) = w.conn.take() {
                PgSide::close(c).await;
            }
        }
        if let Some(mut c) = self.control.take() {
            // Released here rather than by the server when the session ends, which it does
            // after the client has gone on: an applier opened right after this one (the
            // next step of a script, a bench) would otherwise find the lock still held.
            if self.exclusive {
                let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
                    .execute(&mut c)
                    .await;
            }
            PgSide::close(c).await;
        }
    }
}

fn n_rejects_rows(rejects: &[Reject]) -> u64 {
    let keys: HashSet<&str> = rejects.iter().map(|r| r.key.as_str()).collect();
    keys.len() as u64
}

enum Retry {
    Again(sqlx::Error),
    Fail(SyncError),
}

impl Retry {
    fn of(pg: &PgSide, context: &str, e: sqlx::Error) -> Self {
        match classify(&e) {
            ErrorClass::Connection => Retry::Again(e),
            _ => Retry::Fail(pg.err(context, &e)),
        }
    }
}

#[derive(Default)]
struct Outcome {
    changes: u64,
    rows: u64,
    rejects: u64,
    replaced: u64,
}

struct GroupDone {
    changes: Vec<TableChange>,
    refused: u64,
    retries: u64,
    committed_at: f64,
}

async fn lock(pg: &PgSide, conn: &mut PgConnection) -> Result<()> {
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended('ferry-sync:' || $1, 0))")
            .bind(&pg.schema)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| pg.err("taking the follower lock", &e))?;
    if !locked {
        return Err(SyncError::Busy {
            schema: pg.schema.clone(),
        });
    }
    Ok(())
}

/// One worker's tables in one transaction, retried on lost connections, in careful mode
/// after a refused row.
async fn apply_group(
    pg: PgSide,
    mut worker: Worker,
    tables: Arc<Vec<TargetTable>>,
    changes: Vec<TableChange>,
    pause: Option<Duration>,
) -> (Worker, Result<GroupDone>) {
    let started = Instant::now();
    let mut attempt = 1;
    let mut careful = false;
    let mut retries = 0;
    loop {
        if worker.conn.is_none() {
            match pg.connect("applying changes", true).await {
                Ok(c) => {
                    worker.conn = Some(c);
                    worker.staged.clear();
                }
                Err(e) => return (worker, Err(e)),
            }
        }
        let conn = worker.conn.as_mut().expect("connected");
        let refs: Vec<&TableChange> = changes.iter().collect();
        let res: Result<target::Applied, sqlx::Error> = async {
            exec(conn, "BEGIN").await?;
            let applied = target::apply_in_tx(
                conn,
                &pg.schema,
                &tables,
                &refs,
                careful,
                &mut worker.staged,
            )
            .await?;
            if let Some(p) = pause {
                tokio::time::sleep(p).await;
            }
            exec(conn, "COMMIT").await?;
            Ok(applied)
        }
        .await;
        match res {
            Ok(applied) => {
                let committed_at = now_secs();
                return (
                    worker,
                    Ok(GroupDone {
                        refused: applied.refused.len() as u64,
                        changes,
                        retries,
                        committed_at,
                    }),
                );
            }
            Err(e) => match classify(&e) {
                ErrorClass::Connection => {
                    if let Some(c) = worker.conn.take() {
                        PgSide::close(c).await;
                    }
                    if attempt >= pg.retry.attempts {
                        let err = pg.unreachable("applying changes", attempt, started, &e);
                        return (worker, Err(err));
                    }
                    attempt += 1;
                    retries += 1;
                    tracing::warn!(
                        attempt,
                        "connection lost while applying ({}); retrying the batch",
                        target::describe(&e)
                    );
                    tokio::time::sleep(pg.retry.backoff(attempt)).await;
                }
                ErrorClass::Data if !careful => {
                    tracing::info!(
                        "PostgreSQL refused a row ({}); applying row by row",
                        target::describe(&e)
                    );
                    let _ = exec(conn, "ROLLBACK").await;
                    careful = true;
                }
                _ => {
                    let _ = exec(conn, "ROLLBACK").await;
                    let tables_named: Vec<&str> = changes
                        .iter()
                        .map(|c| tables[c.table].source.as_str())
                        .collect();
                    return (
                        worker,
                        Err(pg.err(
                            format!("applying changes to {}", tables_named.join(", ")),
                            &e,
                        )),
                    );
                }
            },
        }
    }
}

/// Rows written to PostgreSQL since the cutover, per table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableWrites {
    pub table: String,
    /// Rows inserted or updated since cutover (newer than the cutover's transaction).
    pub new_or_changed: i64,
    /// Rows of the cutover state that are gone (deleted, or replaced by an update).
    pub gone: i64,
}

/// What was written to PostgreSQL since the cutover recorded in `target` (empty when
/// there was no cutover). Rollback 4→3 refuses when any table shows a write.
pub async fn pg_writes_since_cutover(target: &SyncTarget) -> Result<Vec<TableWrites>> {
    let pg = PgSide::new(target, RetryPolicy::default(), "ferry-sync")?;
    let mut conn = pg.connect("counting writes since cutover", false).await?;
    let res = async {
        if !target::table_exists(&mut conn, &pg.schema, STATE_TABLE).await? {
            return Ok(Vec::new());
        }
        let cut: Option<Option<sqlx::types::Json<Cutover>>> = sqlx::query_scalar(&format!(
            "SELECT cutover FROM {} WHERE id = 1",
            qualified(&pg.schema, STATE_TABLE)
        ))
        .fetch_optional(&mut conn)
        .await?;
        let Some(Some(cut)) = cut else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let low = cut.0.pg_xid & 0xFFFF_FFFF;
        for (table, before) in &cut.0.table_rows {
            let name = table.clone();
            // xmin is 32 bits: a row is newer than the cutover when its xid is at most 2^31
            // transactions after the cutover's.
            let row = sqlx::query(&format!(
                "SELECT count(*), count(*) FILTER (WHERE ((xmin::text::bigint - $1) & 4294967295) < 2147483648 AND xmin::text::bigint <> $1)
                 FROM {}",
                qualified(&pg.schema, &name)
            ))
            .bind(low)
            .fetch_one(&mut conn)
            .await?;
            let now: i64 = row.get(0);
            let new: i64 = row.get(1);
            out.push(TableWrites {
                table: table.clone(),
                new_or_changed: new,
                gone: (before - (now - new)).max(0),
            });
        }
        Ok(out)
    }
    .await;
    PgSide::close(conn).await;
    res.map_err(|e: sqlx::Error| pg.err("counting writes since cutover", &e))
}

/// Drops ferry's sync bookkeeping from the target schema (rollback of phase 4).
pub async fn drop_bookkeeping(target: &SyncTarget) -> Result<()> {
    let pg = PgSide::new(target, RetryPolicy::default(), "ferry-sync")?;
    let mut conn = pg.connect("dropping the sync bookkeeping", false).await?;
    let sql = format!(
        "DROP TABLE IF EXISTS {}, {}, {}",
        qualified(&pg.schema, STATE_TABLE),
        qualified(&pg.schema, TABLES_TABLE),
        qualified(&pg.schema, REJECTS_TABLE)
    );
    let res = exec(&mut conn, &sql).await;
    PgSide::close(conn).await;
    res.map_err(|e| pg.err("dropping the sync bookkeeping", &e))
}
