//! Phase 2's gate checks, as pure read-only queries over the SQLite file, so the gate can
//! re-check them at any later time without the import's in-memory state:
//!
//! - [`accounting`]: every file of the phase-1 backup manifest has a ledger row in one of the
//!   four states; the rest are named.
//! - [`check_rows`]: every file's rows are in the database, table by table, in the number the
//!   ledger says were parsed, and no row claims a source file the ledger does not know.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row, SqliteConnection};

use crate::error::ImportError;
use crate::ledger;
use crate::plan::quote;
use crate::report::FileStatus;

/// Opens a SQLite file read-only, for re-checking a gate.
pub async fn open_read_only(path: &Path) -> Result<SqliteConnection, ImportError> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(ImportError::sqlite(format!(
            "opening {} read-only",
            path.display()
        )))
}

/// How the files of a manifest are accounted for in the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounting {
    pub manifest_files: u64,
    /// Manifest files by their ledger state.
    pub by_status: BTreeMap<FileStatus, u64>,
    /// Manifest files with no ledger row: the gate fails while this is not empty.
    pub unaccounted: Vec<String>,
}

impl Accounting {
    pub fn passed(&self) -> bool {
        self.unaccounted.is_empty()
    }
}

/// A manifest path as the ledger writes it: relative, without a leading `./`, and encoded
/// as the import encodes names (a name holding `\x` is escaped there).
fn normalise(path: &str) -> String {
    crate::names::encode_utf8_path(path.trim_start_matches("./"))
}

/// Which of `manifest_paths` (relative to the store directory) the ledger accounts for.
pub async fn accounting(
    conn: &mut SqliteConnection,
    manifest_paths: &[String],
) -> Result<Accounting, ImportError> {
    let rows = sqlx::query("SELECT path, status FROM ferry_source_files")
        .fetch_all(&mut *conn)
        .await
        .map_err(ImportError::sqlite("reading the ledger ferry_source_files"))?;
    let mut status: HashMap<String, FileStatus> = HashMap::with_capacity(rows.len());
    for r in rows {
        let path: String = r.get(0);
        let s: String = r.get(1);
        let s = FileStatus::parse(&s).ok_or_else(|| ImportError::Ledger {
            path: path.clone(),
            message: format!("unknown status `{s}`"),
        })?;
        status.insert(path, s);
    }
    let mut out = Accounting::default();
    for p in manifest_paths {
        out.manifest_files += 1;
        let p = normalise(p);
        match status.get(&p) {
            Some(s) => *out.by_status.entry(*s).or_default() += 1,
            None => out.unaccounted.push(p),
        }
    }
    out.unaccounted.sort();
    Ok(out)
}

/// Records parsed against rows found, for one kind of file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindRows {
    pub files: u64,
    pub records_parsed: u64,
    pub rows_found: u64,
}

/// A file whose rows in a table are not what the ledger says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowMismatch {
    pub path: String,
    pub table: String,
    pub expected: u64,
    pub found: u64,
}

/// Rows naming a source file the ledger does not list for that table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanRows {
    pub table: String,
    pub source_path: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCheck {
    pub kinds: BTreeMap<String, KindRows>,
    pub mismatches: Vec<RowMismatch>,
    pub orphans: Vec<OrphanRows>,
}

impl RowCheck {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.orphans.is_empty()
    }
}

/// Checks, table by table and file by file, that the rows the ledger lists are there.
pub async fn check_rows(conn: &mut SqliteConnection) -> Result<RowCheck, ImportError> {
    let ledger = ledger::load_sqlx(conn).await?;
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'ferry_%'")
        .fetch_all(&mut *conn)
        .await
        .map_err(ImportError::sqlite("listing tables"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = RowCheck::default();
    // expected[(table, path)] = rows
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut keys_by_table: BTreeMap<String, Vec<(String, &ledger::KeySet)>> = BTreeMap::new();
    let mut paths: Vec<&String> = ledger.keys().collect();
    paths.sort();
    for path in paths {
        let row = &ledger[path];
        let kind = row
            .kind
            .clone()
            .unwrap_or_else(|| format!("({})", row.status));
        let k = out.kinds.entry(kind).or_default();
        k.files += 1;
        k.records_parsed += row.records_parsed;
        let listed: u64 = row.row_keys.values().map(|s| s.rows.len() as u64).sum();
        if listed != row.records_parsed {
            out.mismatches.push(RowMismatch {
                path: path.clone(),
                table: "(ledger: records parsed vs keys listed)".into(),
                expected: row.records_parsed,
                found: listed,
            });
        }
        for (table, set) in &row.row_keys {
            expected.insert((table.clone(), path.clone()), set.rows.len() as u64);
            keys_by_table
                .entry(table.clone())
                .or_default()
                .push((path.clone(), set));
        }
    }
    let mut found: BTreeMap<(String, String), u64> = BTreeMap::new();
    for table in &tables {
        let cols: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info(?1)")
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(ImportError::sqlite(format!(
                "reading the columns of {table}"
            )))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if cols.iter().any(|c| c == "source_path") {
            let rows = sqlx::query(&format!(
                "SELECT source_path, count(*) FROM {} WHERE source_path IS NOT NULL GROUP BY source_path",
                quote(table)
            ))
            .fetch_all(&mut *conn)
            .await
            .map_err(ImportError::sqlite(format!("counting the rows of {table}")))?;
            for r in rows {
                let path: String = r.get(0);
                let n: i64 = r.get(1);
                if expected.contains_key(&(table.clone(), path.clone())) {
                    found.insert((table.clone(), path), n as u64);
                } else {
                    out.orphans.push(OrphanRows {
                        table: table.clone(),
                        source_path: path,
                        rows: n as u64,
                    });
                }
            }
        } else if let Some(files) = keys_by_table.get(table) {
            // No source column (the `documents` table): look the listed keys up, one scan of
            // the table per key-column set.
            let mut present: HashMap<Vec<String>, HashSet<String>> = HashMap::new();
            for (path, set) in files {
                if set.cols.iter().any(|c| !cols.contains(c)) {
                    continue;
                }
                if !present.contains_key(&set.cols) {
                    let keys = table_keys(conn, table, &set.cols).await?;
                    present.insert(set.cols.clone(), keys);
                }
                let keys = &present[&set.cols];
                let n = set.rows.iter().filter(|k| keys.contains(*k)).count() as u64;
                found.insert((table.clone(), path.clone()), n);
            }
        }
    }
    let table_set: HashSet<&String> = tables.iter().collect();
    for ((table, path), want) in &expected {
        let got = if table_set.contains(table) {
            found
                .get(&(table.clone(), path.clone()))
                .copied()
                .unwrap_or(0)
        } else {
            0
        };
        if let Some(row) = ledger.get(path) {
            let kind = row
                .kind
                .clone()
                .unwrap_or_else(|| format!("({})", row.status));
            out.kinds.entry(kind).or_default().rows_found += got;
        }
        if got != *want {
            out.mismatches.push(RowMismatch {
                path: path.clone(),
                table: table.clone(),
                expected: *want,
                found: got,
            });
        }
    }
    out.orphans
        .sort_by(|a, b| (&a.table, &a.source_path).cmp(&(&b.table, &b.source_path)));
    Ok(out)
}

/// Every row's key over `cols`, encoded as the ledger encodes keys.
async fn table_keys(
    conn: &mut SqliteConnection,
    table: &str,
    cols: &[String],
) -> Result<HashSet<String>, ImportError> {
    let select = cols
        .iter()
        .map(|c| format!("typeof({0}), {0}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = sqlx::query(&format!("SELECT {select} FROM {}", quote(table)))
        .fetch_all(&mut *conn)
        .await
        .map_err(ImportError::sqlite(format!("reading the keys of {table}")))?;
    let mut out = HashSet::with_capacity(rows.len());
    for r in rows {
        let mut values = Vec::with_capacity(cols.len());
        for i in 0..cols.len() {
            let ty: String = r.get(2 * i);
            values.push(match ty.as_str() {
                "integer" => serde_json::Value::from(r.get::<i64, _>(2 * i + 1)),
                "real" => serde_json::Number::from_f64(r.get::<f64, _>(2 * i + 1))
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                "text" => serde_json::Value::String(r.get::<String, _>(2 * i + 1)),
                _ => serde_json::Value::Null,
            });
        }
        let key = match values.len() {
            1 => values.remove(0).to_string(),
            _ => serde_json::Value::Array(values).to_string(),
        };
        out.insert(key);
    }
    Ok(out)
}
