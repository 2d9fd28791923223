//! Prove that a SQLite database and a PostgreSQL schema hold the same data: typed canonical
//! digests per table, a row-level diff of whatever differs, and constraint checks.
//!
//! ferry-validate never trusts the transfer's conversions: it reads both databases itself,
//! each natively (rusqlite's `sqlite3_column_type`, PostgreSQL's binary COPY format), and
//! brings every cell into one canonical form decided by the target column's type — UTC
//! microseconds for timestamps, canonical JSON for `jsonb`, IEEE bits for doubles, exact
//! decimals for `numeric` — before hashing. No value is ever cast to text in SQL, so the
//! false differences of text-cast tools (SQLite prints `0.3` where PostgreSQL prints
//! `0.30000000000000004`) cannot happen, and a real difference cannot hide behind a
//! shared text rendering.
//!
//! * **Row hash**: 128-bit xxh3 of the row's cells, key columns first, each encoded as tag +
//!   length + bytes (NULL has its own tag, so NULL ≠ empty string).
//! * **Table digest**: (count, sum of row hashes mod 2^128, xor): independent of row order,
//!   and a duplicated row changes the sum. Both sides are read in parallel, streaming.
//! * **Row-level diff**: rows fall into key-range segments whose boundaries are sampled from
//!   the keys; segments whose digests differ are read again (with `COLLATE "C"` range
//!   predicates on PostgreSQL, matching SQLite's byte order) and split until rows are
//!   compared. The report names missing keys, extra keys, and changed rows with the
//!   differing columns and both values. A table without a primary key is compared as a
//!   multiset of rows: a changed row shows as one missing and one extra row, each with its
//!   values and how many times it occurs.
//! * **Constraints**: SQLite `foreign_key_check`; orphans and `VALIDATE CONSTRAINT` in
//!   PostgreSQL; identity/serial sequences ahead of their column; every NOT NULL, PRIMARY KEY,
//!   UNIQUE and FOREIGN KEY of the source present on the target, and in a derived schema
//!   every CHECK (found by the comment the transfer puts on it) or a person's
//!   acknowledgement that it was not carried over.
//! * **Which plan**: the one given; else the one a transfer recorded in the target schema;
//!   else none — tables and columns are paired by name (or by the shortened form a transfer
//!   gives names over 63 bytes) and each value is read by its column's type, the mixed-class
//!   `sqlite_value` domain included.
//! * **SQLite alone**: [`digest_sqlite`] gives the same per-table digests of one SQLite file,
//!   so two files, or one file before and after, can be compared.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_validate::ValidateError> {
//! use ferry_validate::{validate, PgTarget, ValidateOptions};
//! let target = PgTarget::new("postgres://postgres@127.0.0.1:5432/app", "ferry");
//! let report = validate("app.sqlite3".as_ref(), &target, None, &ValidateOptions::default()).await?;
//! println!("{}", report.summary_table());
//! assert!(report.equal, "{}", report.details());
//! # Ok(()) }
//! ```

mod canon;
mod compare;
mod constraints;
mod decimal;
mod error;
mod json;
mod pairing;
mod pg;
mod report;
mod rows;
mod spec;
mod sqlite;
mod sqlpred;
mod timefmt;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ferry_core::config::TimestampConfig;
use ferry_core::plan::TransferPlan;
use ferry_core::progress::Progress;
use serde::{Deserialize, Serialize};

pub use canon::{Domain, ENCODING_VERSION};
pub use error::ValidateError;
pub use report::{
    CellChange, ChangedRow, ColumnReport, ConstraintFinding, ConstraintKind, ConstraintReport,
    RowExample, TableDiff, TableReport, Totals, ValidationReport, Verdict,
};
pub use rows::TableDigest;

/// The name of the row hash recorded in reports.
pub const HASH_NAME: &str = "xxh3-128";

/// The PostgreSQL side: a server URL and the schema holding the tables (the same type the
/// transfer writes into).
pub use ferry_core::pg::PgTarget;

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Only these SQLite tables (empty: every table). A table named here is compared even
    /// when it is one of ferry's own `ferry_*` tables.
    pub tables: Vec<String>,
    /// Tables to leave out (SQLite or PostgreSQL names).
    pub exclude: Vec<String>,
    /// Compare ferry's own bookkeeping tables (`ferry_*`) too.
    pub include_ferry_tables: bool,
    /// How timestamps written without an offset are read.
    pub timestamps: TimestampConfig,
    /// Examples of each kind of difference kept per table.
    pub max_examples: usize,
    /// Run the constraint checks.
    pub check_constraints: bool,
    /// Run `VALIDATE CONSTRAINT` on `NOT VALID` foreign keys without orphans (the only
    /// thing validation ever changes, and only in the catalog).
    pub validate_not_valid_foreign_keys: bool,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
    /// Source rows per first-pass segment; a differing segment of up to twice as many rows
    /// per side is compared row by row, a larger one is split first.
    pub leaf_rows: u64,
    /// Without a plan given, use the one a transfer recorded in the target schema's
    /// bookkeeping (`ferry_transfer_runs`), when there is one.
    pub recorded_plan: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            tables: Vec::new(),
            exclude: Vec::new(),
            include_ferry_tables: false,
            timestamps: TimestampConfig {
                naive: "UTC".into(),
            },
            max_examples: 20,
            check_constraints: true,
            validate_not_valid_foreign_keys: true,
            progress: false,
            leaf_rows: compare::Tuning::default().leaf_rows,
            recorded_plan: true,
        }
    }
}

/// Compares the SQLite file `source` with the tables of `target`, through `plan` when one is
/// given (renamed tables and columns, converted types), else through the plan a transfer
/// recorded in the target schema, else by names and the target columns' types (as
/// `docs/type-mapping.md` documents them).
pub async fn validate(
    source: &Path,
    target: &PgTarget,
    plan: Option<&TransferPlan>,
    options: &ValidateOptions,
) -> Result<ValidationReport, ValidateError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let lite = sqlite::SqliteDb::open(source)?;
    let shown_url = target.url.to_string();
    let mut conn = pg::connect(target.url.expose(), &shown_url).await?;
    if !pg::schema_exists(&mut conn, &target.schema).await? {
        return Err(ValidateError::NoSchema {
            schema: target.schema.clone(),
        });
    }
    pg::begin_snapshot(&mut conn).await?;
    let recorded = match plan {
        None if options.recorded_plan => pg::recorded_plan(&mut conn, &target.schema).await?,
        _ => None,
    };
    let plan_source = match (plan, &recorded) {
        (Some(_), _) => Some("given".to_owned()),
        (None, Some(_)) => Some(format!(
            "recorded in {}.{}",
            target.schema,
            ferry_core::plan::bookkeeping::RUNS
        )),
        (None, None) => None,
    };
    let plan = plan.or(recorded.as_ref());
    let acknowledged = pg::acknowledged(&mut conn, &target.schema).await?;
    let lite_tables = lite.run("reading the schema", sqlite::tables).await?;
    let pg_tables = pg::tables(&mut conn, &target.schema).await?;
    let mut pairs = pairing::pair_tables(
        &mut conn,
        &target.schema,
        lite_tables,
        pg_tables,
        plan,
        options,
    )
    .await?;
    let tuning = compare::Tuning {
        leaf_rows: options.leaf_rows.max(1),
        max_examples: options.max_examples,
        ..compare::Tuning::default()
    };
    let progress = options
        .progress
        .then(|| Progress::new("validate", "rows", None));
    compare_pairs(
        &lite,
        &mut conn,
        &target.schema,
        &mut pairs,
        tuning,
        progress.as_ref(),
    )
    .await?;
    if let Some(p) = &progress {
        p.finish();
    }
    pg::end_snapshot(&mut conn).await?;
    lite.close().await?;
    let constraints = if options.check_constraints {
        constraints::check(
            &lite,
            &mut conn,
            constraints::Scope {
                schema: &target.schema,
                pairs: &pairs,
                validate_not_valid: options.validate_not_valid_foreign_keys,
                // A managed schema's CHECKs come from its own migrations, written by hand.
                checks: plan.map(|p| p.mode == ferry_core::plan::PlanMode::Derived),
                acknowledged: &acknowledged,
            },
        )
        .await?
    } else {
        report::ConstraintReport::default()
    };
    let tables: Vec<TableReport> = pairs.into_iter().map(|p| p.report).collect();
    let (totals, equal) = totals(&tables, &constraints);
    Ok(ValidationReport {
        ferry_version: ferry_core::FERRY_VERSION.to_owned(),
        source: source.display().to_string(),
        target: shown_url,
        target_schema: target.schema.clone(),
        plan_used: plan.is_some(),
        plan_source,
        hash: HASH_NAME.to_owned(),
        encoding_version: ENCODING_VERSION,
        naive_timestamps: options.timestamps.naive.clone(),
        started_at,
        elapsed_ms: started.elapsed().as_millis() as u64,
        tables,
        constraints,
        totals,
        equal,
    })
}

/// Compares every paired table's rows; a table SQLite cannot read is reported, the others
/// still compared.
async fn compare_pairs(
    lite: &sqlite::SqliteDb,
    conn: &mut sqlx::postgres::PgConnection,
    schema: &str,
    pairs: &mut [pairing::Pair],
    tuning: compare::Tuning,
    progress: Option<&Progress>,
) -> Result<(), ValidateError> {
    for pair in pairs.iter_mut() {
        let table_started = Instant::now();
        let report = &mut pair.report;
        match (&pair.spec, report.verdict) {
            (Some(spec), _) => {
                match compare::compare_table(lite, &mut *conn, Arc::clone(spec), tuning, progress)
                    .await
                {
                    Ok(done) => {
                        report.source_rows = done.source.count;
                        report.target_rows = done.target.count;
                        report.source_digest = Some(done.source.public());
                        report.target_digest = Some(done.target.public());
                        report.verdict = if done.diff.is_none() && report.missing_columns.is_empty()
                        {
                            Verdict::Equal
                        } else {
                            Verdict::Different
                        };
                        if !done.pushdown && spec.n_key > 0 && done.diff.is_some() {
                            report.notes.push("key ranges were filtered in ferry, not in SQL (keys of other types or classes)".into());
                        }
                        report.diff = done.diff;
                    }
                    // A table SQLite cannot read (a virtual table whose module is missing, a
                    // corrupt page) is reported; the others are still compared.
                    Err(e @ ValidateError::Sqlite { .. }) => {
                        report.verdict = Verdict::Error;
                        report.error = Some(e.to_string());
                    }
                    Err(e) => return Err(e),
                }
            }
            (None, Verdict::ExtraOnTarget) => {
                if let Some(t) = &report.target {
                    let sql = format!(
                        "SELECT count(*) FROM {}.{}",
                        spec::quote_ident(schema),
                        spec::quote_ident(t)
                    );
                    let n: i64 = sqlx::query_scalar(&sql)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(|e| ValidateError::pg(format!("counting the rows of {t}"), e))?;
                    report.target_rows = n.max(0) as u64;
                }
            }
            (None, Verdict::MissingOnTarget) => {
                let name = report.source.clone();
                report.source_rows = lite
                    .run(&format!("counting the rows of {name}"), move |c| {
                        sqlite::count(c, &name)
                    })
                    .await?;
            }
            (None, _) => {}
        }
        report.elapsed_ms = table_started.elapsed().as_millis() as u64;
        tracing::info!(
            table = report.name(),
            verdict = report.verdict.as_str(),
            rows = report.source_rows,
            "table compared"
        );
    }
    Ok(())
}

/// Sums over every table, and whether everything is equal.
fn totals(tables: &[TableReport], constraints: &report::ConstraintReport) -> (Totals, bool) {
    let mut totals = Totals {
        tables: tables.len() as u64,
        constraint_findings: constraints.findings.len() as u64,
        ..Totals::default()
    };
    let mut equal = constraints.findings.is_empty();
    for t in tables {
        totals.source_rows += t.source_rows;
        totals.target_rows += t.target_rows;
        if let Some(d) = &t.diff {
            totals.missing_rows += d.missing;
            totals.extra_rows += d.extra;
            totals.changed_rows += d.changed;
        }
        match t.verdict {
            Verdict::Equal => totals.tables_equal += 1,
            Verdict::ExtraOnTarget if t.target_rows == 0 => totals.tables_equal += 1,
            Verdict::Error => {
                totals.tables_error += 1;
                equal = false;
            }
            _ => {
                totals.tables_different += 1;
                equal = false;
            }
        }
    }
    (totals, equal)
}

/// Per-table digests of one SQLite file, every value in its own storage class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqliteDigest {
    pub hash: String,
    pub encoding_version: u32,
    pub tables: Vec<SqliteTableDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqliteTableDigest {
    pub table: String,
    pub digest: TableDigest,
}

impl SqliteDigest {
    /// The table's digest, by name.
    pub fn table(&self, name: &str) -> Option<&TableDigest> {
        self.tables
            .iter()
            .find(|t| t.table == name)
            .map(|t| &t.digest)
    }

    /// One sentence per table that differs from `other` (empty when they are equal).
    pub fn differences(&self, other: &SqliteDigest) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            match other.table(&t.table) {
                None => out.push(format!("table {} is only in the first database", t.table)),
                Some(d) if d != &t.digest => out.push(format!(
                    "table {} differs: {} rows (sum {}) vs {} rows (sum {})",
                    t.table, t.digest.count, t.digest.sum, d.count, d.sum
                )),
                Some(_) => {}
            }
        }
        for t in &other.tables {
            if self.table(&t.table).is_none() {
                out.push(format!("table {} is only in the second database", t.table));
            }
        }
        out
    }
}

/// Which tables [`digest_sqlite`] reads.
#[derive(Debug, Clone, Default)]
pub struct DigestOptions {
    /// Only these tables (empty: all but ferry's own `ferry_*` tables).
    pub tables: Vec<String>,
    pub include_ferry_tables: bool,
}

/// Digests every table of a SQLite file with the same canonical encoding and row hash as
/// [`validate`] (each value as its own storage class: INTEGER 1 and TEXT `1` differ). This
/// blocks: call it from a blocking thread in async code.
///
/// ```no_run
/// let before = ferry_validate::digest_sqlite("a.sqlite3".as_ref(), &Default::default())?;
/// let after = ferry_validate::digest_sqlite("b.sqlite3".as_ref(), &Default::default())?;
/// assert!(before.differences(&after).is_empty());
/// # Ok::<(), ferry_validate::ValidateError>(())
/// ```
pub fn digest_sqlite(path: &Path, options: &DigestOptions) -> Result<SqliteDigest, ValidateError> {
    if !path.is_file() {
        return Err(ValidateError::NoSqliteFile {
            path: path.to_owned(),
        });
    }
    sqlite::check_header(path)?;
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let err = |what: &str| {
        let what = what.to_owned();
        move |source| ValidateError::Sqlite {
            path: path.to_owned(),
            what: what.clone(),
            source,
        }
    };
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|source| {
        ValidateError::OpenSqlite {
            path: path.to_owned(),
            source,
        }
    })?;
    conn.execute_batch("BEGIN")
        .map_err(err("starting a read transaction"))?;
    let all = sqlite::tables(&conn).map_err(err("reading the schema"))?;
    for t in &options.tables {
        if !all.iter().any(|a| &a.name == t) {
            return Err(ValidateError::UnknownTable { table: t.clone() });
        }
    }
    let mut tables = Vec::new();
    for t in all {
        let wanted = if options.tables.is_empty() {
            options.include_ferry_tables || !t.name.to_ascii_lowercase().starts_with("ferry_")
        } else {
            options.tables.contains(&t.name)
        };
        if !wanted {
            continue;
        }
        let pk = t.primary_key();
        let mut cols: Vec<spec::ColSpec> = pk
            .iter()
            .filter_map(|k| t.columns.iter().find(|c| &c.name == k))
            .chain(t.columns.iter().filter(|c| !pk.contains(&c.name)))
            .map(|c| spec::ColSpec {
                source: c.name.clone(),
                target: c.name.clone(),
                domain: Domain::Native,
                pg: spec::PgKind::Other,
                pg_type: String::new(),
                declared: c.declared.clone(),
                affinity: c.affinity,
            })
            .collect();
        cols.shrink_to_fit();
        let table_spec = Arc::new(spec::TableSpec {
            source: t.name.clone(),
            target: t.name.clone(),
            schema: String::new(),
            n_key: pk.len(),
            cols,
            ctx: canon::Ctx::default(),
        });
        let req = sqlite::ScanReq {
            spec: table_spec,
            set: Arc::new(rows::RangeSet::new(vec![rows::Range::all()])),
            pushdown: false,
            mode: rows::Mode::Digest,
            key_only: false,
        };
        let done =
            sqlite::scan(&conn, &req, None).map_err(err(&format!("reading table {}", t.name)))?;
        tables.push(SqliteTableDigest {
            table: t.name,
            digest: done.digests[0].public(),
        });
    }
    Ok(SqliteDigest {
        hash: HASH_NAME.to_owned(),
        encoding_version: ENCODING_VERSION,
        tables,
    })
}
