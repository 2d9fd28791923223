//! One import run: walk the store, decide per file (excluded, unmapped, unchanged, to read),
//! parse in parallel on a pool of threads, and write in path order through the single writer.
//! Everything here is synchronous and runs on a blocking thread with its own connection.
//!
//! Memory stays bounded: a parser thread takes the next file only while the files taken but
//! not yet written stay under a count and a byte budget (the file the writer waits for is
//! always allowed), and the channel to the writer is bounded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{Connection, OpenFlags};

use crate::bulk::BulkLoad;
use crate::error::ImportError;
use crate::fsops::QUARANTINE_DIR;
use crate::ledger::{self, LedgerRow};
use crate::options::ImportOptions;
use crate::parse::{self, Ctx, FileResult, Job};
use crate::plan::{quote, Plan};
use crate::profile::Profile;
use crate::report::{
    DisappearedFile, FileStatus, ImportReport, KindCounts, LedgerSummary, QuarantinedFile, Reason,
    ReasonKind, Totals, REPORT_FORMAT,
};
use crate::scan::{self, Entry};
use crate::schema;
use crate::timestamp::format_utc;
use crate::writer::{Change, FileSummary, Stop, Writer};

/// How far the parsers may run ahead of the writer. Small on purpose: what a parser has just
/// produced is still in the shared cache when the writer binds it (a window of a thousand
/// files made the writer wait on memory for the copies it binds).
const WINDOW_FILES: usize = 128;
const WINDOW_BYTES: u64 = 4 << 20;
/// A parser thread takes this many consecutive files (or this many bytes) at a time.
const CHUNK_FILES: usize = 8;
const CHUNK_BYTES: u64 = 1 << 20;
/// The page cache during an import, in KiB: an ordinary import commits before it fills, so
/// dirty pages never spill to the file mid-transaction (each spilled page is written again).
/// A bulk load is one transaction and does spill; a larger cache was measured and only helps
/// once it holds the whole database, which would break the import's memory bound.
const IMPORT_CACHE_KIB: u64 = 32_768;
/// How long the import waits for another writer to let go of the database.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it waits quietly before saying that it waits, and on what.
const QUIET_WAIT: Duration = Duration::from_secs(1);

/// Opens the import's own connection to an existing database file.
pub(crate) fn open(path: &Path) -> Result<Connection, ImportError> {
    let ctx = || ImportError::db(format!("opening {}", path.display()));
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(ctx())?;
    // The connection is used on this thread only, so the busy handler finds the file's name
    // in this thread's slot.
    WAITING.with_borrow_mut(|w| *w = Waiting::on(path));
    conn.busy_handler(Some(on_busy)).map_err(ctx())?;
    conn.set_prepared_statement_cache_capacity(256);
    // Temporary files in memory: the savepoint around each batch journals the pages it
    // touches, and writing that journal to a file costs a system call per page.
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA cache_size = -{IMPORT_CACHE_KIB}; PRAGMA temp_store = MEMORY;"
    ))
    .map_err(ctx())?;
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .map_err(ctx())?;
    if fk != 1 {
        return Err(ImportError::Schema(
            "foreign keys cannot be enabled; ferry never imports with them off".into(),
        ));
    }
    Ok(conn)
}

/// What the import's connection on this thread waits for when SQLite reports the file
/// busy, and since when.
struct Waiting {
    file: String,
    since: Option<Instant>,
    said: bool,
}

impl Waiting {
    fn on(path: &Path) -> Self {
        Self {
            file: path.display().to_string(),
            since: None,
            said: false,
        }
    }
}

thread_local! {
    static WAITING: std::cell::RefCell<Waiting> = std::cell::RefCell::new(Waiting::on(Path::new("the SQLite file")));
}

/// SQLite's busy handler: waits up to [`BUSY_TIMEOUT`] for another connection's lock, and
/// after [`QUIET_WAIT`] says which file it is waiting on (a silent 30 s looks like a hang).
fn on_busy(attempt: i32) -> bool {
    WAITING.with_borrow_mut(|w| {
        let now = Instant::now();
        if attempt == 0 {
            w.since = Some(now);
            w.said = false;
        }
        let waited = now - *w.since.get_or_insert(now);
        if waited >= BUSY_TIMEOUT {
            return false;
        }
        if !w.said && waited >= QUIET_WAIT {
            w.said = true;
            tracing::warn!(
                "{} is locked by another connection (the application, or another ferry run); waiting up to {} s for it",
                w.file,
                BUSY_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(if attempt < 20 { 2 } else { 20 }));
        true
    })
}

pub(crate) fn run(
    store_dir: &Path,
    db_path: &Path,
    profile: &Profile,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let now = format_utc(started_at);
    let conn = open(db_path)?;
    let phase = Instant::now();
    let schema = schema::load_all(&conn)?;
    let plan = Plan::build(profile, &schema)?;
    let settings_digest = options.settings_digest(profile);
    let mut ledger = ledger::load(&conn)?;
    tracing::debug!(
        files = ledger.len(),
        seconds = phase.elapsed().as_secs_f64(),
        "schema, profile and ledger loaded"
    );
    let phase = Instant::now();
    let (entries, unreadable) = scan::walk(store_dir, options.workers())?;
    tracing::debug!(
        entries = entries.len(),
        seconds = phase.elapsed().as_secs_f64(),
        "store walked"
    );
    let phase = Instant::now();

    // Decide per file; unchanged files are not read at all.
    let mut jobs = Vec::new();
    let mut summaries: Vec<FileSummary> = Vec::new();
    let mut seen: HashSet<String> = HashSet::with_capacity(entries.len());
    for entry in entries {
        seen.insert(entry.rel.clone());
        let prev = ledger.get(&entry.rel);
        if let Some(p) = prev.filter(|p| unchanged(p, &entry, &settings_digest)) {
            summaries.push(FileSummary::from_ledger(p, Change::Unchanged));
            continue;
        }
        let prev_sha256 = prev
            .filter(|p| reusable(p, &settings_digest))
            .and_then(|p| p.sha256.clone());
        jobs.push(Job { entry, prev_sha256 });
    }
    // A file under a directory that could not be listed has not disappeared: it is unknown.
    let hidden = |path: &str| {
        unreadable.iter().any(|u| {
            u.rel == "."
                || path == u.rel
                || path
                    .strip_prefix(u.rel.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    let mut disappeared: Vec<LedgerRow> = ledger
        .values()
        .filter(|r| !seen.contains(&r.path) && !hidden(&r.path))
        .cloned()
        .collect();
    let unreadable_dirs: Vec<String> = unreadable
        .iter()
        .map(|u| format!("{}: {}", u.rel, u.error))
        .collect();
    disappeared.sort_by(|a, b| a.path.cmp(&b.path));
    let delete_disappeared = options
        .delete_disappeared
        .unwrap_or(profile.delete_disappeared);
    tracing::debug!(
        to_read = jobs.len(),
        unchanged = summaries.len(),
        seconds = phase.elapsed().as_secs_f64(),
        "files classified"
    );
    let phase = Instant::now();

    let ctx = Arc::new(Ctx {
        profile: profile.clone(),
        kinds: profile.rules.iter().map(|r| r.kind.clone()).collect(),
        plan,
        state_dir: options.state_dir.clone(),
        snapshot_threshold: options.snapshot_threshold_bytes,
        max_file_bytes: options.max_file_bytes,
        naive_offset: options.naive_offset_seconds,
    });
    let run_id = record_run(&conn, &now, store_dir, profile, &settings_digest)?;
    let bulk = BulkLoad::eligible(&conn, &ctx.plan, ledger.len())?;
    let pieces = Pieces {
        conn: &conn,
        ctx: &ctx,
        schema: &schema,
        run_id,
        settings_digest: &settings_digest,
        now: &now,
        jobs: &jobs,
        unchanged: summaries.len() as u64,
        disappeared: &disappeared,
        delete_disappeared,
        options,
    };
    let mut result = write_all(&pieces, &mut ledger, bulk);
    if let Err(Stop::Refused(why)) = &result {
        // The bulk load rolled itself back; the ordinary import checks every row as it is
        // written and quarantines only the files whose rows the database refuses.
        tracing::info!(reason = %why, "bulk load refused; importing again row by row");
        result = write_all(&pieces, &mut ledger, false);
    }
    let written = match result {
        Ok(w) => w,
        Err(stop) => {
            // Nothing of a failed run stays: the ledger and the rows roll back together.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(match stop {
                Stop::Failed(e) => e,
                Stop::Refused(why) => ImportError::Worker(format!(
                    "the database refused rows outside a bulk load: {why}"
                )),
            });
        }
    };
    conn.execute_batch("COMMIT")
        .map_err(ImportError::db("committing the import"))?;
    tracing::debug!(
        seconds = phase.elapsed().as_secs_f64(),
        "files parsed and written"
    );
    let phase = Instant::now();

    // The report: the store as the ledger now describes it.
    summaries.extend(written.summaries);
    let mut kinds: BTreeMap<String, KindCounts> = BTreeMap::new();
    let mut totals = Totals::default();
    for s in &summaries {
        let k = kinds.entry(s.kind.clone()).or_default();
        k.files += 1;
        k.bytes += s.size;
        k.records += s.records;
        k.rows += s.rows;
        k.add_status(s.status);
        match s.change {
            Change::New => k.new += 1,
            Change::Changed => k.changed += 1,
            Change::Unchanged => k.unchanged += 1,
        }
    }
    for k in kinds.values() {
        totals.files += k.files;
        totals.new += k.new;
        totals.changed += k.changed;
        totals.unchanged += k.unchanged;
        totals.imported += k.imported;
        totals.quarantined += k.quarantined;
        totals.excluded += k.excluded;
        totals.unmapped += k.unmapped;
        totals.records += k.records;
        totals.rows += k.rows;
    }
    totals.files_read = written.files_read;
    totals.bytes_read = written.bytes_read;
    totals.disappeared = disappeared.len() as u64;
    totals.rows_written = written.stats.rows_written;
    totals.rows_released = written.stats.rows_released;
    totals.placeholders = written.stats.placeholders;

    let LedgerOverview {
        quarantined,
        unmapped,
        by_status,
        files,
    } = ledger_overview(&conn)?;
    let index = options.state_dir.join(QUARANTINE_DIR).join("index.json");
    if !quarantined.is_empty() || index.exists() {
        ferry_core::fsutil::write_json(&index, &quarantined)
            .map_err(ImportError::io("writing the quarantine index", &index))?;
    }
    tracing::debug!(seconds = phase.elapsed().as_secs_f64(), "report built");
    let finished_at = Utc::now();
    Ok(ImportReport {
        format: REPORT_FORMAT.to_owned(),
        ferry_version: ferry_core::FERRY_VERSION.to_owned(),
        run_id: written.run_id,
        store_dir: store_dir.display().to_string(),
        profile: profile.origin().to_owned(),
        settings_digest,
        started_at,
        finished_at,
        elapsed_seconds: clock.elapsed().as_secs_f64(),
        totals,
        kinds,
        quarantined,
        unmapped,
        disappeared: disappeared
            .iter()
            .map(|d| DisappearedFile {
                path: d.path.clone(),
                kind: d.kind.clone(),
                rows: d.row_count,
                deleted: delete_disappeared,
            })
            .collect(),
        updated: written.updated,
        notes: written.notes,
        note_counts: written.note_counts,
        notes_omitted: written.notes_omitted,
        unreadable_dirs,
        ledger: LedgerSummary {
            table: crate::plan::LEDGER_TABLE.to_owned(),
            files,
            by_status,
            written: written.entries,
        },
    })
}

/// What the writer hands back for the report.
struct Written {
    run_id: i64,
    summaries: Vec<FileSummary>,
    notes: Vec<crate::report::Note>,
    note_counts: BTreeMap<crate::report::NoteKind, u64>,
    notes_omitted: u64,
    updated: Vec<crate::report::UpdatedFile>,
    entries: Vec<crate::report::LedgerEntry>,
    stats: crate::writer::Stats,
    files_read: u64,
    bytes_read: u64,
}

/// The parts of one run that writing reads, passed once (and again when a bulk load is
/// replayed).
struct Pieces<'a> {
    conn: &'a Connection,
    ctx: &'a Arc<Ctx>,
    schema: &'a BTreeMap<String, schema::TableInfo>,
    run_id: i64,
    settings_digest: &'a str,
    now: &'a str,
    jobs: &'a [Job],
    /// Files whose size and modification time match the ledger: seen, but not read.
    unchanged: u64,
    disappeared: &'a [LedgerRow],
    delete_disappeared: bool,
    options: &'a ImportOptions,
}

/// Records the run on its own, before the import's transaction: a run that fails stays in
/// the log, unfinished.
fn record_run(
    conn: &Connection,
    now: &str,
    store_dir: &Path,
    profile: &Profile,
    settings_digest: &str,
) -> Result<i64, ImportError> {
    conn.execute(
        "INSERT INTO ferry_import_runs (started_at, store_dir, profile, settings_digest, ferry_version) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![now, store_dir.display().to_string(), profile.origin(), settings_digest, ferry_core::FERRY_VERSION],
    )
    .map_err(ImportError::db("recording the run in ferry_import_runs"))?;
    Ok(conn.last_insert_rowid())
}

/// Parses every job on the parser threads and writes the results in path order, inside a
/// transaction left open for the caller to commit. With `bulk`, the whole run is one bulk
/// load (see [`crate::bulk`]); when the database refuses a row of it, the transaction is
/// rolled back and `Stop::Refused` returned.
fn write_all(
    p: &Pieces<'_>,
    ledger: &mut HashMap<String, LedgerRow>,
    bulk: bool,
) -> Result<Written, Stop> {
    let conn = p.conn;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(ImportError::db("starting the import transaction"))?;
    let load = if bulk {
        Some(BulkLoad::begin(conn, &p.ctx.plan, p.schema)?)
    } else {
        None
    };
    let outcome = write_files(p, ledger, load.is_some());
    let outcome = match (outcome, &load) {
        (Ok(w), Some(load)) => match load.finish(conn)? {
            None => Ok(w),
            Some(violation) => Err(Stop::Refused(violation)),
        },
        (outcome, _) => outcome,
    };
    if let (Err(Stop::Refused(why)), Some(load)) = (&outcome, &load) {
        conn.execute_batch("ROLLBACK")
            .map_err(ImportError::db("rolling back the bulk load"))?;
        load.abandon(conn)?;
        return Err(Stop::Refused(why.clone()));
    }
    let (written, stats) = outcome?;
    let count = |f: &dyn Fn(&FileSummary) -> bool| {
        written.finished.summaries.iter().filter(|s| f(s)).count() as i64
    };
    conn.execute(
        "UPDATE ferry_import_runs SET finished_at = ?1, files_seen = ?2, files_new = ?3, files_changed = ?4, files_unchanged = ?5, \
         files_quarantined = ?6, files_disappeared = ?7, rows_written = ?8, rows_deleted = ?9 WHERE run_id = ?10",
        rusqlite::params![
            format_utc(Utc::now()),
            // Every file of the store was seen, read or not; unchanged files skipped
            // before reading are counted with those found unchanged after hashing.
            p.jobs.len() as i64 + p.unchanged as i64,
            count(&|s| s.change == Change::New),
            count(&|s| s.change == Change::Changed),
            count(&|s| s.change == Change::Unchanged) + p.unchanged as i64,
            count(&|s| s.status == FileStatus::Quarantined),
            p.disappeared.len() as i64,
            stats.rows_written as i64,
            stats.rows_released as i64,
            p.run_id
        ],
    )
    .map_err(ImportError::db("finishing the run record"))?;
    let crate::writer::Finished {
        summaries,
        notes,
        note_counts,
        notes_omitted,
        updated,
        written: entries,
        ..
    } = written.finished;
    Ok(Written {
        run_id: p.run_id,
        summaries,
        notes,
        note_counts,
        notes_omitted,
        updated,
        entries,
        stats,
        files_read: written.files_read,
        bytes_read: written.bytes_read,
    })
}

/// What the writer finished with, before the run record is updated.
struct Files {
    finished: crate::writer::Finished,
    files_read: u64,
    bytes_read: u64,
}

/// Runs the parser threads and the writer over every job.
fn write_files(
    p: &Pieces<'_>,
    ledger: &mut HashMap<String, LedgerRow>,
    bulk: bool,
) -> Result<(Files, crate::writer::Stats), Stop> {
    let ctx = p.ctx;
    let known_parents = load_parents(p.conn, &ctx.plan)?;
    let mut writer = Writer::new(
        p.conn,
        ctx.clone(),
        p.schema.clone(),
        p.run_id,
        p.settings_digest.to_owned(),
        p.now.to_owned(),
        ledger,
        known_parents,
        bulk,
    );
    for d in p.disappeared {
        writer.disappeared(d, p.delete_disappeared);
    }
    let jobs = p.jobs;
    let total = jobs.len();
    let window = Window::new(jobs);
    let n_chunks = window.n_chunks();
    let (tx, rx) = sync_channel::<Result<Chunk, ImportError>>(64);
    let progress = p
        .options
        .progress
        .then(|| ferry_core::progress::Progress::new("import", "files", Some(total as u64)));
    let mut files_read = 0u64;
    let mut bytes_read = 0u64;
    let workers = p.options.workers().min(n_chunks.max(1));
    let (outcome, joined) = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..workers {
            let (window, tx) = (&window, tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-import-{i}"))
                .spawn_scoped(scope, move || parse_loop(window, ctx, jobs, &tx));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    window.abort();
                    return (
                        Err(Stop::Failed(ImportError::Worker(format!(
                            "cannot start a parser thread: {e}"
                        )))),
                        true,
                    );
                }
            }
        }
        drop(tx);
        let outcome = (|| -> Result<crate::writer::Finished, Stop> {
            let mut reorder: BTreeMap<usize, Vec<FileResult>> = BTreeMap::new();
            let mut next = 0;
            // Time the writer spent waiting for the parsers: tells which side is the bottleneck.
            let mut waited = Duration::ZERO;
            while next < n_chunks {
                let wait = Instant::now();
                let received = rx.recv();
                waited += wait.elapsed();
                match received {
                    Err(_) => {
                        return Err(Stop::Failed(ImportError::Worker(
                            "the parser threads stopped before every file was read".into(),
                        )))
                    }
                    Ok(Err(e)) => return Err(Stop::Failed(e)),
                    Ok(Ok(chunk)) => {
                        reorder.insert(chunk.index, chunk.results);
                    }
                }
                while let Some(results) = reorder.remove(&next) {
                    let (mut n_files, mut n_bytes) = (0u64, 0u64);
                    for r in results {
                        if r.read {
                            files_read += 1;
                            bytes_read += r.bytes_read;
                        }
                        n_files += 1;
                        n_bytes += r.bytes_read;
                        let prev = ledger.remove(&r.entry.rel);
                        writer.accept(r, prev)?;
                    }
                    if let Some(p) = &progress {
                        p.inc(n_files, n_bytes);
                    }
                    window.consumed(next);
                    next += 1;
                }
            }
            tracing::debug!(
                waited_for_parsers = waited.as_secs_f64(),
                "every file handed to the writer"
            );
            writer.finish()
        })();
        window.abort();
        drop(rx);
        // Every thread is joined, even after one failed.
        let joined: Vec<bool> = handles.into_iter().map(|h| h.join().is_ok()).collect();
        (outcome, joined.iter().all(|ok| *ok))
    });
    if let Some(p) = &progress {
        p.finish();
    }
    let finished = outcome?;
    if !joined {
        return Err(Stop::Failed(ImportError::Worker(
            "a parser thread panicked".into(),
        )));
    }
    let stats = std::mem::take(&mut writer.stats);
    Ok((
        Files {
            finished,
            files_read,
            bytes_read,
        },
        stats,
    ))
}

/// The results of a run of consecutive jobs, in job order.
struct Chunk {
    index: usize,
    results: Vec<FileResult>,
}

fn parse_loop(
    window: &Window,
    ctx: &Ctx,
    jobs: &[Job],
    tx: &SyncSender<Result<Chunk, ImportError>>,
) {
    while let Some((index, range)) = window.take() {
        let mut results = Vec::with_capacity(range.len());
        for job in &jobs[range] {
            let path = job.entry.rel.clone();
            let result =
                std::panic::catch_unwind(AssertUnwindSafe(|| parse::process(ctx, job.clone())))
                    .unwrap_or_else(|_| {
                        Err(ImportError::Worker(format!(
                            "the parser panicked on {path}"
                        )))
                    });
            match result {
                Ok(r) => results.push(r),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if tx.send(Ok(Chunk { index, results })).is_err() {
            return;
        }
    }
}

/// The files handed to parser threads and not yet written, bounded by count and bytes.
///
/// Files go out in chunks of consecutive jobs, so a thread hand-off (and the wake-ups it
/// costs) is paid per chunk, not per file.
struct Window {
    state: Mutex<WindowState>,
    cv: Condvar,
    /// Per chunk: its jobs and its cost in bytes.
    chunks: Vec<(std::ops::Range<usize>, u64)>,
}

struct WindowState {
    next: usize,
    consumed: usize,
    in_flight_files: usize,
    in_flight_bytes: u64,
    abort: bool,
}

impl Window {
    fn new(jobs: &[Job]) -> Self {
        let mut chunks = Vec::new();
        let mut start = 0;
        let mut bytes = 0u64;
        for (i, job) in jobs.iter().enumerate() {
            let cost = job.entry.size.clamp(4096, WINDOW_BYTES);
            if i > start && (i - start >= CHUNK_FILES || bytes + cost > CHUNK_BYTES) {
                chunks.push((start..i, bytes));
                (start, bytes) = (i, 0);
            }
            bytes += cost;
        }
        if start < jobs.len() {
            chunks.push((start..jobs.len(), bytes));
        }
        Self {
            state: Mutex::new(WindowState {
                next: 0,
                consumed: 0,
                in_flight_files: 0,
                in_flight_bytes: 0,
                abort: false,
            }),
            cv: Condvar::new(),
            chunks,
        }
    }

    fn n_chunks(&self) -> usize {
        self.chunks.len()
    }

    fn lock(&self) -> MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next chunk to parse, waiting while the window is full.
    fn take(&self) -> Option<(usize, std::ops::Range<usize>)> {
        let mut s = self.lock();
        loop {
            if s.abort || s.next >= self.chunks.len() {
                return None;
            }
            let (range, cost) = &self.chunks[s.next];
            // The chunk the writer waits for is always allowed, so the window never stalls.
            if s.next == s.consumed
                || (s.in_flight_files + range.len() <= WINDOW_FILES
                    && s.in_flight_bytes + cost <= WINDOW_BYTES)
            {
                let index = s.next;
                s.next += 1;
                s.in_flight_files += range.len();
                s.in_flight_bytes += cost;
                return Some((index, range.clone()));
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The writer is done with a chunk.
    fn consumed(&self, index: usize) {
        let mut s = self.lock();
        s.consumed = index + 1;
        let (range, cost) = &self.chunks[index];
        s.in_flight_files = s.in_flight_files.saturating_sub(range.len());
        s.in_flight_bytes = s.in_flight_bytes.saturating_sub(*cost);
        self.cv.notify_all();
    }

    fn abort(&self) {
        self.lock().abort = true;
        self.cv.notify_all();
    }
}

/// A ledger row still describes this entry: same settings, size and modification time.
fn unchanged(prev: &LedgerRow, entry: &Entry, settings_digest: &str) -> bool {
    entry.mtime_ns.is_some()
        && prev.size == entry.size
        && prev.mtime_ns == entry.mtime_ns
        && reusable(prev, settings_digest)
}

/// A ledger row's outcome can stand for the same bytes: same settings, still present, and
/// not a key conflict (which depends on other files, so it is retried).
fn reusable(prev: &LedgerRow, settings_digest: &str) -> bool {
    prev.settings_digest == settings_digest
        && prev.disappeared_at.is_none()
        && prev
            .reason
            .as_ref()
            .is_none_or(|r| r.kind != ReasonKind::KeyConflict)
}

/// Keys of the tables that can receive placeholder rows, as they are now.
fn load_parents(conn: &Connection, plan: &Plan) -> Result<HashSet<(usize, String)>, ImportError> {
    let mut out = HashSet::new();
    let parent_tables: HashSet<usize> = plan
        .rules
        .iter()
        .flat_map(|r| r.parents.iter().map(|p| p.table))
        .collect();
    for t in parent_tables {
        let table = &plan.tables[t];
        let Some(col) = &table.placeholder_col else {
            continue;
        };
        let sql = format!(
            "SELECT CAST({} AS TEXT) FROM {}",
            quote(col),
            quote(&table.name)
        );
        let keys: Vec<Option<String>> = conn
            .prepare(&sql)
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(ImportError::db(format!(
                "reading the keys of {}",
                table.name
            )))?;
        out.extend(keys.into_iter().flatten().map(|k| (t, k)));
    }
    Ok(out)
}

/// What the report says about the whole ledger.
struct LedgerOverview {
    quarantined: Vec<QuarantinedFile>,
    unmapped: Vec<String>,
    by_status: BTreeMap<FileStatus, u64>,
    files: u64,
}

/// Files per status, and every quarantined and unmapped file, in path order: one pass over
/// the ledger (it is as large as the store has files, and read after the import's pages
/// left the cache).
fn ledger_overview(conn: &Connection) -> Result<LedgerOverview, ImportError> {
    let ctx = || ImportError::db("reading the ledger for the report");
    let mut stmt = conn
        .prepare(
            "SELECT status, path, kind, reason_kind, reason, reason_line, reason_column, quarantine_path, row_count \
             FROM ferry_source_files ORDER BY path",
        )
        .map_err(ctx())?;
    let mut rows = stmt.query([]).map_err(ctx())?;
    let mut out = LedgerOverview {
        quarantined: Vec::new(),
        unmapped: Vec::new(),
        by_status: BTreeMap::new(),
        files: 0,
    };
    while let Some(r) = rows.next().map_err(ctx())? {
        let status = r
            .get_ref(0)
            .map_err(ctx())?
            .as_str()
            .ok()
            .and_then(FileStatus::parse);
        let Some(status) = status else {
            continue;
        };
        *out.by_status.entry(status).or_default() += 1;
        out.files += 1;
        match status {
            FileStatus::Unmapped => out.unmapped.push(r.get(1).map_err(ctx())?),
            FileStatus::Quarantined => {
                let path: String = r.get(1).map_err(ctx())?;
                let reason_kind: String = r.get(3).map_err(ctx())?;
                let kind = ReasonKind::parse(&reason_kind).ok_or_else(|| ImportError::Ledger {
                    path: path.clone(),
                    message: format!("unknown reason kind `{reason_kind}`"),
                })?;
                let message: Option<String> = r.get(4).map_err(ctx())?;
                let line: Option<i64> = r.get(5).map_err(ctx())?;
                let column: Option<i64> = r.get(6).map_err(ctx())?;
                let rows_kept: i64 = r.get(8).map_err(ctx())?;
                out.quarantined.push(QuarantinedFile {
                    kind: r.get(2).map_err(ctx())?,
                    reason: Reason {
                        kind,
                        message: message.unwrap_or_default(),
                        line: line.map(|v| v as u64),
                        column: column.map(|v| v as u64),
                    },
                    quarantine_path: r.get(7).map_err(ctx())?,
                    rows_kept: rows_kept as u64,
                    path,
                });
            }
            FileStatus::Imported | FileStatus::Excluded => {}
        }
    }
    Ok(out)
}
