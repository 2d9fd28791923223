//! The single writer: takes parsed files in path order, has [`decide`] work out what each
//! means for the database (rows to upsert, rows of an earlier version to release,
//! placeholder parents, the ledger row), and writes that through one connection with cached
//! prepared statements inside large transactions. It runs on a blocking thread with its own
//! rusqlite connection: binding values in place costs a fraction of a round trip to sqlx's
//! worker thread with an owned copy of every argument.
//!
//! Keys: a row's natural key belongs to the file that wrote it. A file whose key is already
//! owned by another file is quarantined (`key_conflict`), never allowed to overwrite it; the
//! upsert's `WHERE source_path = excluded.source_path` guard enforces the same inside SQLite.
//! Batches are written optimistically, without savepoints (a savepoint makes SQLite journal
//! every page it touches, which doubled the cost of writing). When the database refuses a
//! row anyway (a constraint the profile could not foresee), the transaction is rolled back
//! and everything it held is replayed file by file, each in a savepoint, so only the
//! offending file is quarantined and the rest is written. Nothing the run reports or
//! remembers (key owners, placeholder parents) changes before a COMMIT.

mod decide;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use rusqlite::{Connection, ErrorCode};

use crate::error::ImportError;
use crate::ledger::{self, LedgerRow};
use crate::parse::{Ctx, FileResult};
use crate::plan::quote;
use crate::record::{Cell, Row};
use crate::report::{LedgerEntry, Note, NoteKind, UpdatedFile};
use crate::schema::TableInfo;

pub(crate) use decide::{Change, FileSummary};
use decide::{Decider, FileOps, LedgerOp, Release};

const FLUSH_FILES: usize = 128;
const FLUSH_ROWS: usize = 8192;
const FLUSH_BYTES: u64 = 4 << 20;
const COMMIT_FILES: usize = 10_000;
/// Well under the import's page cache, so a transaction's pages never spill before commit.
const COMMIT_BYTES: u64 = 12 << 20;

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub rows_written: u64,
    pub rows_released: u64,
    pub placeholders: u64,
}

enum ApplyError {
    /// The database refused a row (or a key belongs to a row this file did not write).
    Constraint(String),
    Fatal(ImportError),
}

/// Why writing stopped before the end.
#[derive(Debug)]
pub(crate) enum Stop {
    Failed(ImportError),
    /// The database refused a row of a bulk load (see [`crate::bulk`]): the load is rolled
    /// back and the run imports again the ordinary way.
    Refused(String),
}

impl From<ImportError> for Stop {
    fn from(e: ImportError) -> Self {
        Stop::Failed(e)
    }
}

fn classify(context: &str) -> impl FnOnce(rusqlite::Error) -> ApplyError + '_ {
    move |e| {
        if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
            ApplyError::Constraint(e.to_string())
        } else {
            ApplyError::Fatal(ImportError::database(context.to_owned(), e))
        }
    }
}

pub(crate) struct Writer<'c> {
    conn: &'c Connection,
    ctx: Arc<Ctx>,
    schema: BTreeMap<String, TableInfo>,
    /// What each file means; it also keeps who owns which key.
    decider: Decider,
    pending: Vec<FileOps>,
    /// Written in the open transaction, not yet committed: replayed if it rolls back.
    applied: Vec<FileOps>,
    /// Placeholder parents created in the open transaction.
    txn_parents: HashSet<(usize, String)>,
    /// Takes committed files off the writer thread: their report entries are gathered there,
    /// and their rows freed there (the parser threads allocated them).
    finisher: Option<std::sync::mpsc::Sender<Vec<FileOps>>>,
    /// Committed files not yet handed to the finisher.
    done: Vec<FileOps>,
    /// A bulk load: one transaction into empty tables, rolled back as a whole when the
    /// database refuses a row.
    bulk: bool,
    finisher_thread: Option<std::thread::JoinHandle<Finished>>,
    pending_rows: usize,
    pending_bytes: u64,
    uncommitted_files: usize,
    uncommitted_bytes: u64,
    pub stats: Stats,
    /// Gathered when no finisher thread could be started.
    local: Finished,
    /// What the open transaction wrote, taken back if it rolls back.
    stats_txn: Stats,
}

/// What the report learns from the committed files.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    pub summaries: Vec<FileSummary>,
    /// At most [`NOTES_PER_KIND`] notes of each kind; `note_counts` counts them all.
    pub notes: Vec<Note>,
    pub note_counts: BTreeMap<NoteKind, u64>,
    pub notes_omitted: u64,
    pub updated: Vec<UpdatedFile>,
    pub written: Vec<LedgerEntry>,
    notes_listed: BTreeMap<NoteKind, usize>,
}

/// Notes listed in a report per kind: enough to see the pattern; the ledger keeps every
/// file's note counts.
pub(crate) const NOTES_PER_KIND: usize = 500;

impl Finished {
    fn add(&mut self, op: FileOps) {
        // Every ledger row written is listed in the report, built here from the row itself
        // rather than copied on the writer thread.
        if let LedgerOp::Upsert(row, _) = op.ledger {
            let row = *row;
            self.written.push(LedgerEntry {
                path: row.path,
                status: row.status,
                kind: row.kind,
                table: row.target_table,
                rows: row.row_count,
                sha256: row.sha256,
            });
        }
        let r = op.report;
        if let Some(s) = r.summary {
            self.summaries.push(s);
        }
        for n in r.notes {
            let listed = self.notes_listed.entry(n.kind).or_default();
            *self.note_counts.entry(n.kind).or_default() += n.count;
            if *listed < NOTES_PER_KIND {
                *listed += 1;
                self.notes.push(n);
            } else {
                self.notes_omitted += 1;
            }
        }
        self.updated.extend(r.updated);
    }
}

impl<'c> Writer<'c> {
    #[expect(
        clippy::too_many_arguments,
        reason = "one constructor, called once, with named locals"
    )]
    pub fn new(
        conn: &'c Connection,
        ctx: Arc<Ctx>,
        schema: BTreeMap<String, TableInfo>,
        run_id: i64,
        settings_digest: String,
        now: String,
        ledger: &HashMap<String, LedgerRow>,
        known_parents: HashSet<(usize, String)>,
        bulk: bool,
    ) -> Self {
        let decider = Decider::new(
            ctx.clone(),
            schema.keys().cloned(),
            run_id,
            settings_digest,
            now,
            ledger,
            known_parents,
        );
        let (tx, rx) = std::sync::mpsc::channel::<Vec<FileOps>>();
        let finisher_thread = std::thread::Builder::new()
            .name("ferry-import-report".into())
            .spawn(move || {
                let mut out = Finished::default();
                for ops in rx {
                    for op in ops {
                        out.add(op);
                    }
                }
                out
            })
            .ok();
        Self {
            conn,
            ctx,
            schema,
            decider,
            pending: Vec::new(),
            applied: Vec::new(),
            txn_parents: HashSet::new(),
            finisher: Some(tx),
            done: Vec::new(),
            bulk,
            finisher_thread,
            pending_rows: 0,
            pending_bytes: 0,
            uncommitted_files: 0,
            uncommitted_bytes: 0,
            stats: Stats::default(),
            local: Finished::default(),
            stats_txn: Stats::default(),
        }
    }

    pub fn exec(&self, sql: &str) -> Result<(), ImportError> {
        self.conn
            .execute_batch(sql)
            .map_err(ImportError::db(format!("running `{sql}`")))
    }

    /// Takes one file's result, in path order.
    pub fn accept(&mut self, r: FileResult, prev: Option<LedgerRow>) -> Result<(), Stop> {
        let ops = self.decider.decide(r, prev)?;
        self.pending_rows += ops.n_rows;
        self.pending_bytes += ops.bytes;
        self.pending.push(ops);
        if self.pending.len() >= FLUSH_FILES
            || self.pending_rows >= FLUSH_ROWS
            || self.pending_bytes >= FLUSH_BYTES
        {
            self.flush()?;
        }
        Ok(())
    }

    /// A file that vanished from the store: marked, or with `delete` its rows released and
    /// its ledger row removed.
    pub fn disappeared(&mut self, prev: &LedgerRow, delete: bool) {
        if let Some(ops) = self.decider.disappeared(prev, delete) {
            self.pending.push(ops);
        }
    }

    /// Writes what is pending. On a constraint failure the transaction is rolled back and
    /// replayed file by file (or, in a bulk load, given up).
    pub fn flush(&mut self) -> Result<(), Stop> {
        let ops = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        self.pending_bytes = 0;
        if !ops.is_empty() {
            self.uncommitted_files += ops.len();
            self.uncommitted_bytes += ops.iter().map(|o| o.bytes).sum::<u64>();
            match self.apply(&ops) {
                Ok(stats) if self.bulk => {
                    // The load commits or rolls back as a whole, and a rollback starts the
                    // run over: what is written counts now.
                    self.add_stats(stats);
                    self.decider.parents_committed(self.txn_parents.drain());
                    self.decider.forget_uncommitted();
                    for op in ops {
                        self.committed(op);
                    }
                    self.hand_over();
                }
                Ok(stats) => {
                    self.add_stats(stats);
                    self.applied.extend(ops);
                }
                Err(ApplyError::Fatal(e)) => return Err(Stop::Failed(e)),
                Err(ApplyError::Constraint(m)) if self.bulk => return Err(Stop::Refused(m)),
                Err(ApplyError::Constraint(_)) => self.roll_back_and_replay(ops)?,
            }
        }
        if !self.bulk
            && (self.uncommitted_files >= COMMIT_FILES || self.uncommitted_bytes >= COMMIT_BYTES)
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits the open transaction, starts the next, and makes its files count.
    pub fn commit(&mut self) -> Result<(), ImportError> {
        self.exec("COMMIT")?;
        self.exec("BEGIN IMMEDIATE")?;
        self.uncommitted_files = 0;
        self.uncommitted_bytes = 0;
        self.decider.forget_uncommitted();
        self.stats_txn = Stats::default();
        self.decider.parents_committed(self.txn_parents.drain());
        for op in std::mem::take(&mut self.applied) {
            self.committed(op);
        }
        self.hand_over();
        Ok(())
    }

    /// The database refused something in `failed`: undo the transaction and write it again
    /// one file at a time, each in a savepoint, quarantining the file that is refused.
    fn roll_back_and_replay(&mut self, failed: Vec<FileOps>) -> Result<(), ImportError> {
        self.exec("ROLLBACK")?;
        self.exec("BEGIN IMMEDIATE")?;
        self.txn_parents.clear();
        self.decider.forget_uncommitted();
        let undone = std::mem::take(&mut self.stats_txn);
        self.stats.rows_written -= undone.rows_written;
        self.stats.rows_released -= undone.rows_released;
        self.stats.placeholders -= undone.placeholders;
        let ops: Vec<FileOps> = std::mem::take(&mut self.applied)
            .into_iter()
            .chain(failed)
            .collect();
        for op in ops {
            let op = self.replay(op)?;
            self.decider.reclaim(&op);
            self.applied.push(op);
        }
        Ok(())
    }

    /// One file on its own, in a savepoint; returns what was written (the file, or its
    /// quarantine record).
    fn replay(&mut self, op: FileOps) -> Result<FileOps, ImportError> {
        self.exec("SAVEPOINT ferry_file")?;
        match self.apply(std::slice::from_ref(&op)) {
            Ok(stats) => {
                self.exec("RELEASE ferry_file")?;
                self.add_stats(stats);
                Ok(op)
            }
            Err(ApplyError::Fatal(e)) => Err(e),
            Err(ApplyError::Constraint(message)) => {
                self.exec("ROLLBACK TO ferry_file")?;
                self.exec("RELEASE ferry_file")?;
                let q = self.decider.requarantine(op, &message)?;
                match self.apply(std::slice::from_ref(&q)) {
                    Ok(stats) => {
                        self.add_stats(stats);
                        Ok(q)
                    }
                    Err(ApplyError::Fatal(e)) => Err(e),
                    Err(ApplyError::Constraint(m)) => Err(ImportError::Ledger {
                        path: q.path.to_string(),
                        message: format!("the quarantine record could not be written: {m}"),
                    }),
                }
            }
        }
    }

    fn add_stats(&mut self, s: Stats) {
        self.stats.rows_written += s.rows_written;
        self.stats.rows_released += s.rows_released;
        self.stats.placeholders += s.placeholders;
        self.stats_txn.rows_written += s.rows_written;
        self.stats_txn.rows_released += s.rows_released;
        self.stats_txn.placeholders += s.placeholders;
    }

    /// Writes and commits what is left (a bulk load is left for the caller to finish and
    /// commit); returns what the report needs.
    pub fn finish(&mut self) -> Result<Finished, Stop> {
        self.flush()?;
        if !self.bulk {
            self.commit()?;
        }
        self.hand_over();
        self.finisher.take();
        let mut done = std::mem::take(&mut self.local);
        if let Some(t) = self.finisher_thread.take() {
            let mut f = t
                .join()
                .map_err(|_| ImportError::Worker("the report thread panicked".into()))?;
            f.summaries.append(&mut done.summaries);
            f.notes.append(&mut done.notes);
            for (k, n) in done.note_counts {
                *f.note_counts.entry(k).or_default() += n;
            }
            f.notes_omitted += done.notes_omitted;
            f.updated.append(&mut done.updated);
            f.written.append(&mut done.written);
            done = f;
        }
        Ok(done)
    }

    /// A file's transaction committed: its keys are its owners' now, and its report
    /// entries go to the finisher.
    fn committed(&mut self, mut op: FileOps) {
        self.decider.committed(&mut op);
        self.done.push(op);
    }

    /// Hands the committed files to the finisher thread, in one message.
    fn hand_over(&mut self) {
        if self.done.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.done);
        let ops = match &self.finisher {
            Some(tx) => match tx.send(ops) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(ops)) => ops,
            },
            None => ops,
        };
        for op in ops {
            self.local.add(op);
        }
    }

    fn apply(&mut self, ops: &[FileOps]) -> Result<Stats, ApplyError> {
        let mut stats = Stats::default();
        // 1. Rows of earlier versions that are gone: released first, so a key can move to
        //    another file within one batch.
        for op in ops {
            for rel in &op.releases {
                stats.rows_released += self.release(rel)?;
            }
        }
        // 2. Placeholder parents (an agent named by a directory).
        let mut seen = HashSet::new();
        for op in ops {
            for p in &op.parents {
                if self.decider.parent_known(p) || self.txn_parents.contains(p) || !seen.insert(p) {
                    continue;
                }
                let table = &self.ctx.plan.tables[p.0];
                let Some(col) = &table.placeholder_col else {
                    continue;
                };
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES (?1) ON CONFLICT DO NOTHING",
                    quote(&table.name),
                    quote(col)
                );
                let mut stmt = self
                    .conn
                    .prepare_cached(&sql)
                    .map_err(classify("preparing placeholder rows"))?;
                stats.placeholders +=
                    stmt.execute([&p.1])
                        .map_err(classify("creating placeholder rows"))? as u64;
            }
        }
        for op in ops {
            self.txn_parents.extend(op.parents.iter().cloned());
        }
        // 3. Rows, parents' tables first; within a rule, in file order.
        let ctx = self.ctx.clone();
        let mut by_plan: Vec<Vec<&Row>> = vec![Vec::new(); ctx.plan.rules.len()];
        for op in ops {
            for pr in &op.rows {
                by_plan[pr.plan].extend(pr.rows.iter());
            }
        }
        for t in ctx.plan.table_order() {
            let table = &ctx.plan.tables[t].name;
            // Into empty tables nothing can conflict, except with placeholder rows.
            let plain = self.bulk && !ctx.plan.tables[t].receives_placeholders;
            for (p, plan) in ctx.plan.rules.iter().enumerate() {
                if plan.table != t || by_plan[p].is_empty() {
                    continue;
                }
                let sql = if plain {
                    &plan.insert_sql
                } else {
                    &plan.upsert_sql
                };
                let mut stmt = self
                    .conn
                    .prepare_cached(sql)
                    .map_err(classify("preparing the row upsert"))?;
                for row in &by_plan[p] {
                    let n = stmt
                        .execute(rusqlite::params_from_iter(row.values()))
                        .map_err(classify("writing rows"))?;
                    // The upsert's guard skipped a row another file (or not ferry) wrote.
                    if n != 1 {
                        return Err(ApplyError::Constraint(format!(
                            "conflict: a row of table {table} with the same key exists and was not imported from this file"
                        )));
                    }
                    stats.rows_written += 1;
                }
            }
        }
        // 4. The ledger, in the same transaction as the rows.
        let ledger_sql = if self.bulk {
            ledger::insert_sql()
        } else {
            ledger::upsert_sql()
        };
        let mut upsert = self
            .conn
            .prepare_cached(&ledger_sql)
            .map_err(classify("preparing the ledger upsert"))?;
        for op in ops {
            let done = match &op.ledger {
                LedgerOp::Upsert(row, keys) => ledger::execute(&mut upsert, row, keys),
                LedgerOp::Touch { size, mtime_ns } => self
                    .conn
                    .prepare_cached("UPDATE ferry_source_files SET size = ?1, mtime_ns = ?2 WHERE path = ?3")
                    .and_then(|mut s| s.execute(rusqlite::params![*size as i64, mtime_ns, &*op.path])),
                LedgerOp::MarkDisappeared { at, run_id } => self
                    .conn
                    .prepare_cached("UPDATE ferry_source_files SET disappeared_at = ?1, run_id = ?2 WHERE path = ?3")
                    .and_then(|mut s| s.execute(rusqlite::params![at, run_id, &*op.path])),
                LedgerOp::Delete => self
                    .conn
                    .prepare_cached("DELETE FROM ferry_source_files WHERE path = ?1")
                    .and_then(|mut s| s.execute([&*op.path])),
                LedgerOp::Nothing => continue,
            };
            done.map_err(classify("writing the ledger"))?;
        }
        Ok(stats)
    }

    fn release(&mut self, rel: &Release) -> Result<u64, ApplyError> {
        let Some(info) = self.schema.get(&rel.table) else {
            return Ok(0);
        };
        let key_cols: Vec<&String> = rel.cols.iter().filter(|c| *c != "source_path").collect();
        let owned = info.has("source_path");
        let reset = self
            .ctx
            .plan
            .tables
            .iter()
            .find(|t| t.name == rel.table)
            .and_then(|t| t.reset_sql.clone());
        let keys_cond = if key_cols.is_empty() {
            "1".to_owned()
        } else {
            key_cols
                .iter()
                .map(|c| format!("{} = ?", quote(c)))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let owner_cond = if owned {
            "\"source_path\" = ? AND "
        } else {
            ""
        };
        let sql = match &reset {
            Some(update) => format!("{update} WHERE {owner_cond}{keys_cond}"),
            None => format!(
                "DELETE FROM {} WHERE {owner_cond}{keys_cond}",
                quote(&rel.table)
            ),
        };
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(classify("preparing the release of rows"))?;
        let mut n = 0;
        for key in &rel.keys {
            let value: serde_json::Value =
                serde_json::from_str(key).unwrap_or(serde_json::Value::Null);
            let mut cells: Vec<Cell> = match value {
                serde_json::Value::Array(items) if key_cols.len() > 1 => {
                    items.iter().map(Cell::from_key).collect()
                }
                other => vec![Cell::from_key(&other)],
            };
            if owned {
                cells.insert(0, Cell::Text(rel.owner.to_string()));
            }
            n += stmt
                .execute(rusqlite::params_from_iter(cells.iter()))
                .map_err(classify("releasing rows of a previous version"))? as u64;
        }
        Ok(n)
    }
}
