//! Comparing one table: digests per key-range segment from both sides in parallel, then a
//! row-level diff of the segments that differ, splitting large segments until rows are
//! compared.
//!
//! Segments are ranges of canonical key bytes, with boundaries sampled from the keys. Every
//! row is put in its segment in Rust, so the first pass reads both tables in whatever order
//! the engines find fastest (no `ORDER BY`). A differing segment is read back on its own:
//! with SQL range predicates when the key is integers or text (SQLite `COLLATE BINARY`,
//! PostgreSQL `COLLATE "C"`: the byte order of the canonical keys), else by a full scan
//! filtered in Rust. Tables without a primary key are multisets of rows: their key is the
//! row hash, and a changed row shows as one missing and one extra row.

use std::sync::Arc;

use ferry_core::progress::Progress;
use sqlx::postgres::PgConnection;

use crate::canon;
use crate::error::ValidateError;
use crate::pg;
use crate::report::{CellChange, ChangedRow, RowExample, TableDiff};
use crate::rows::{hash_cuts, quantile_cuts, Acc, Collector, LeafRow, Mode, Range, RangeSet};
use crate::spec::TableSpec;
use crate::sqlite::{self, ScanReq, SqliteDb};

/// Sizes that shape the diff.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// First-pass segments hold about this many source rows; a differing segment with at
    /// most twice as many rows on each side is compared row by row, a larger one is split.
    pub leaf_rows: u64,
    /// Upper bound on first-pass segments (memory: two digests each).
    pub max_segments: u64,
    /// How many parts a large differing segment is split into.
    pub split: u64,
    /// Rows held in memory at once for row-by-row comparison (both sides).
    pub batch_rows: u64,
    /// Deepest split; below it a segment is compared row by row whatever its size.
    pub max_depth: u32,
    pub max_examples: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            leaf_rows: 4_096,
            max_segments: 65_536,
            split: 32,
            batch_rows: 131_072,
            max_depth: 6,
            max_examples: 20,
        }
    }
}

/// The outcome of comparing one table's rows.
#[derive(Debug)]
pub(crate) struct Compared {
    pub source: Acc,
    pub target: Acc,
    /// `None` when the digests are equal.
    pub diff: Option<TableDiff>,
    pub pushdown: bool,
}

pub(crate) async fn compare_table(
    lite: &SqliteDb,
    conn: &mut PgConnection,
    spec: Arc<TableSpec>,
    tuning: Tuning,
    progress: Option<&Progress>,
) -> Result<Compared, ValidateError> {
    let table = spec.source.clone();
    let n_src = lite
        .run(&format!("counting the rows of {table}"), move |c| {
            sqlite::count(c, &table)
        })
        .await?;
    let segments = n_src
        .div_ceil(tuning.leaf_rows)
        .clamp(1, tuning.max_segments);
    let cuts = if segments <= 1 {
        Vec::new()
    } else if spec.n_key == 0 {
        hash_cuts(None, None, segments as usize)
    } else {
        // A systematic sample of the keys, four per segment, in SQLite's order: evenly
        // spread quantiles without holding the keys.
        let step = (n_src / (segments * 4)).max(1);
        let req = ScanReq {
            spec: Arc::clone(&spec),
            set: Arc::new(RangeSet::new(vec![Range::all()])),
            pushdown: false,
            mode: Mode::Sample { step },
            key_only: true,
        };
        let started = std::time::Instant::now();
        let keys = run_sqlite(lite, req, None).await?.keys;
        tracing::debug!(table = %spec.source, keys = keys.len(), ms = started.elapsed().as_millis() as u64, "keys sampled");
        quantile_cuts(keys, segments as usize)
    };
    let set = Arc::new(RangeSet::new(Range::all().split(&cuts)));
    let (src, tgt) = digest_both(lite, conn, &spec, &set, false, progress).await?;
    let total = |c: &Collector| {
        let mut acc = Acc::default();
        for d in &c.digests {
            acc.merge(d);
        }
        acc
    };
    let (source, target) = (total(&src), total(&tgt));
    let pushdown = spec.pushdown_possible() && src.unsafe_keys == 0 && tgt.unsafe_keys == 0;
    if source == target {
        return Ok(Compared {
            source,
            target,
            diff: None,
            pushdown,
        });
    }
    let mut diff = TableDiff {
        segments: set.ranges.len() as u64,
        ..TableDiff::default()
    };
    let mut work: Vec<(Range, u64, u64)> = Vec::new();
    for (i, r) in set.ranges.iter().enumerate() {
        if src.digests[i] != tgt.digests[i] {
            work.push((r.clone(), src.digests[i].count, tgt.digests[i].count));
        }
    }
    diff.segments_differing = work.len() as u64;
    let mut level = 1;
    while !work.is_empty() {
        diff.levels = level;
        let (mut leaves, splits): (Vec<_>, Vec<_>) = work.into_iter().partition(|(_, s, t)| {
            (*s).max(*t) <= 2 * tuning.leaf_rows || level >= tuning.max_depth
        });
        let mut sub_ranges = Vec::new();
        for (r, s, t) in splits {
            let cuts = if spec.n_key == 0 {
                hash_cuts(r.lo.as_deref(), r.hi.as_deref(), tuning.split as usize)
            } else {
                let (cuts, read) =
                    sample_cuts(lite, conn, &spec, (&r, s, t), tuning.split, pushdown).await?;
                diff.rows_read += read;
                cuts
            };
            if cuts.is_empty() {
                // All its rows share one key: nothing to split.
                leaves.push((r, s, t));
            } else {
                sub_ranges.extend(r.split(&cuts));
            }
        }
        compare_leaves(lite, conn, &spec, leaves, pushdown, tuning, &mut diff).await?;
        work = Vec::new();
        if !sub_ranges.is_empty() {
            let set = Arc::new(RangeSet::new(sub_ranges));
            let (src, tgt) = digest_both(lite, conn, &spec, &set, pushdown, None).await?;
            diff.rows_read += src.read + tgt.read;
            for (i, r) in set.ranges.iter().enumerate() {
                if src.digests[i] != tgt.digests[i] {
                    work.push((r.clone(), src.digests[i].count, tgt.digests[i].count));
                }
            }
        }
        level += 1;
    }
    Ok(Compared {
        source,
        target,
        diff: Some(diff),
        pushdown,
    })
}

async fn run_sqlite(
    lite: &SqliteDb,
    req: ScanReq,
    progress: Option<Progress>,
) -> Result<Collector, ValidateError> {
    let what = format!("reading table {}", req.spec.source);
    lite.run(&what, move |c| sqlite::scan(c, &req, progress.as_ref()))
        .await
}

/// Both sides' digests of `set`, read in parallel.
async fn digest_both(
    lite: &SqliteDb,
    conn: &mut PgConnection,
    spec: &Arc<TableSpec>,
    set: &Arc<RangeSet>,
    pushdown: bool,
    progress: Option<&Progress>,
) -> Result<(Collector, Collector), ValidateError> {
    let req = ScanReq {
        spec: Arc::clone(spec),
        set: Arc::clone(set),
        pushdown,
        mode: Mode::Digest,
        key_only: false,
    };
    let started = std::time::Instant::now();
    let timed = |fut| async move {
        let r = fut.await;
        (r, started.elapsed())
    };
    let ((src, src_time), (tgt, tgt_time)) = tokio::join!(
        timed(run_sqlite(lite, req.clone(), progress.cloned())),
        async { (pg::scan(conn, &req).await, started.elapsed()) }
    );
    tracing::debug!(
        table = %spec.source,
        segments = set.ranges.len(),
        sqlite_ms = src_time.as_millis() as u64,
        postgres_ms = tgt_time.as_millis() as u64,
        "digests read"
    );
    Ok((src?, tgt?))
}

/// Cut points splitting `r` into about `parts` ranges, sampled from the keys of the side
/// holding more of its rows.
async fn sample_cuts(
    lite: &SqliteDb,
    conn: &mut PgConnection,
    spec: &Arc<TableSpec>,
    (r, s, t): (&Range, u64, u64),
    parts: u64,
    pushdown: bool,
) -> Result<(Vec<Vec<u8>>, u64), ValidateError> {
    let (from_source, rows) = (s >= t, s.max(t));
    let req = ScanReq {
        spec: Arc::clone(spec),
        set: Arc::new(RangeSet::new(vec![r.clone()])),
        pushdown,
        mode: Mode::Sample {
            step: (rows / (parts * 4)).max(1),
        },
        key_only: true,
    };
    let got = if from_source {
        run_sqlite(lite, req, None).await?
    } else {
        pg::scan(conn, &req).await?
    };
    // A cut equal to the range's low bound would make an empty first part.
    let cuts = quantile_cuts(got.keys, parts as usize);
    Ok((
        cuts.into_iter()
            .filter(|c| r.lo.as_ref() != Some(c))
            .collect(),
        got.read,
    ))
}

/// Reads the rows of the leaf segments from both sides, a batch at a time, and compares
/// them row by row.
async fn compare_leaves(
    lite: &SqliteDb,
    conn: &mut PgConnection,
    spec: &Arc<TableSpec>,
    leaves: Vec<(Range, u64, u64)>,
    pushdown: bool,
    tuning: Tuning,
    diff: &mut TableDiff,
) -> Result<(), ValidateError> {
    let mut batch: Vec<Range> = Vec::new();
    let mut batch_rows = 0;
    let n = leaves.len();
    for (k, (r, s, t)) in leaves.into_iter().enumerate() {
        batch.push(r);
        batch_rows += s + t;
        if batch_rows >= tuning.batch_rows || k + 1 == n {
            let set = Arc::new(RangeSet::new(std::mem::take(&mut batch)));
            batch_rows = 0;
            let ranges = set.ranges.len();
            let req = ScanReq {
                spec: Arc::clone(spec),
                set,
                pushdown,
                mode: Mode::Collect,
                key_only: false,
            };
            let started = std::time::Instant::now();
            let ((src, src_ms), (tgt, tgt_ms)) = tokio::join!(
                async {
                    (
                        run_sqlite(lite, req.clone(), None).await,
                        started.elapsed().as_millis() as u64,
                    )
                },
                async {
                    (
                        pg::scan(conn, &req).await,
                        started.elapsed().as_millis() as u64,
                    )
                }
            );
            let (src, tgt) = (src?, tgt?);
            tracing::debug!(
                sqlite_ms = src_ms,
                postgres_ms = tgt_ms,
                table = %spec.source,
                ranges,
                pushdown,
                rows = src.rows.len() + tgt.rows.len(),
                ms = started.elapsed().as_millis() as u64,
                "rows read for comparison"
            );
            diff.rows_compared += (src.rows.len() + tgt.rows.len()) as u64;
            diff.rows_read += src.read + tgt.read;
            compare_rows(spec, src.rows, tgt.rows, tuning.max_examples, diff);
        }
    }
    Ok(())
}

/// Row-by-row comparison of two sets of rows (sorted here by key, then hash).
pub(crate) fn compare_rows(
    spec: &TableSpec,
    mut a: Vec<LeafRow>,
    mut b: Vec<LeafRow>,
    max_examples: usize,
    diff: &mut TableDiff,
) {
    let order = |x: &LeafRow, y: &LeafRow| x.key.cmp(&y.key).then(x.hash.cmp(&y.hash));
    a.sort_by(order);
    b.sort_by(order);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.key.cmp(&y.key),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                let end = group_end(&a, i);
                missing(spec, &a[i..end], max_examples, diff, true);
                i = end;
            }
            std::cmp::Ordering::Greater => {
                let end = group_end(&b, j);
                missing(spec, &b[j..end], max_examples, diff, false);
                j = end;
            }
            std::cmp::Ordering::Equal => {
                let (ea, eb) = (group_end(&a, i), group_end(&b, j));
                same_key(spec, &a[i..ea], &b[j..eb], max_examples, diff);
                i = ea;
                j = eb;
            }
        }
    }
}

fn group_end(rows: &[LeafRow], start: usize) -> usize {
    let mut end = start + 1;
    while end < rows.len() && rows[end].key == rows[start].key {
        end += 1;
    }
    end
}

fn shown_key(spec: &TableSpec, row: &LeafRow) -> Vec<String> {
    // A multiset table's "key" is the whole row.
    let n = if spec.n_key == 0 {
        row.len()
    } else {
        spec.n_key
    };
    (0..n.min(row.len()))
        .map(|c| canon::show(spec.cols[c].domain, row.brief(c), 120))
        .collect()
}

/// Rows of one key present on one side only (`source_side`: in SQLite, not in PostgreSQL).
fn missing(
    spec: &TableSpec,
    rows: &[LeafRow],
    max_examples: usize,
    diff: &mut TableDiff,
    source_side: bool,
) {
    let n = rows.len() as u64;
    let (total, examples) = if source_side {
        (&mut diff.missing, &mut diff.missing_examples)
    } else {
        (&mut diff.extra, &mut diff.extra_examples)
    };
    *total += n;
    if examples.len() < max_examples {
        examples.push(RowExample {
            key: shown_key(spec, &rows[0]),
            count: n,
        });
    }
}

/// Rows with one key on both sides: identical rows pair off; the rest pair up as changed
/// rows, and any surplus is missing or extra (a duplicated key, or a multiset count).
fn same_key(
    spec: &TableSpec,
    a: &[LeafRow],
    b: &[LeafRow],
    max_examples: usize,
    diff: &mut TableDiff,
) {
    // Both groups are sorted by hash: remove the pairs with equal hashes.
    let (mut i, mut j) = (0, 0);
    let mut left_a = Vec::new();
    let mut left_b = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].hash.cmp(&b[j].hash) {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                left_a.push(&a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                left_b.push(&b[j]);
                j += 1;
            }
        }
    }
    left_a.extend(&a[i..]);
    left_b.extend(&b[j..]);
    let paired = if spec.n_key == 0 {
        0
    } else {
        left_a.len().min(left_b.len())
    };
    for k in 0..paired {
        changed(spec, left_a[k], left_b[k], max_examples, diff);
    }
    if left_a.len() > paired {
        let rest: Vec<LeafRow> = left_a[paired..].iter().map(|r| (*r).clone()).collect();
        missing(spec, &rest, max_examples, diff, true);
    }
    if left_b.len() > paired {
        let rest: Vec<LeafRow> = left_b[paired..].iter().map(|r| (*r).clone()).collect();
        missing(spec, &rest, max_examples, diff, false);
    }
}

fn changed(spec: &TableSpec, a: &LeafRow, b: &LeafRow, max_examples: usize, diff: &mut TableDiff) {
    diff.changed += 1;
    let mut columns = Vec::new();
    for (c, col) in spec.cols.iter().enumerate().take(a.len().min(b.len())) {
        if a.cell_hash(c) != b.cell_hash(c) || a.brief(c) != b.brief(c) {
            *diff
                .changed_by_column
                .entry(col.source.clone())
                .or_insert(0) += 1;
            if diff.changed_examples.len() < max_examples {
                columns.push(CellChange {
                    column: col.source.clone(),
                    source: canon::show(col.domain, a.brief(c), 120),
                    target: canon::show(col.domain, b.brief(c), 120),
                });
            }
        }
    }
    if diff.changed_examples.len() < max_examples {
        diff.changed_examples.push(ChangedRow {
            key: shown_key(spec, a),
            columns,
        });
    }
}
