//! Zero loss: SQLite against PostgreSQL (ferry-validate, constraints included), and the file
//! store against the database through the import ledger.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_core::pg::PgTarget;
use ferry_validate::{ValidateOptions, ValidationReport};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Row, SqliteConnection};

use crate::{SignoffCheck, SignoffConfig};

const AREA: &str = "data";

/// The data part of the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataReport {
    pub checks: Vec<SignoffCheck>,
    /// Rows per table on both sides, for the chart.
    pub tables: Vec<TableRows>,
    pub validation: Option<ValidationSummary>,
    pub files: FileCheck,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableRows {
    pub table: String,
    pub sqlite_rows: u64,
    pub postgres_rows: u64,
    pub verdict: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidationSummary {
    pub tables: u64,
    pub tables_equal: u64,
    pub source_rows: u64,
    pub target_rows: u64,
    pub missing_rows: u64,
    pub extra_rows: u64,
    pub changed_rows: u64,
    pub constraint_findings: u64,
    pub foreign_keys_checked: u64,
    pub source_constraints: u64,
    pub elapsed_ms: u64,
}

/// The file store against the database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileCheck {
    /// Ledger rows per state (`imported`, `quarantined`, `excluded`, `unmapped`).
    pub files_by_status: BTreeMap<String, u64>,
    /// Imported files whose rows were compared with the file.
    pub files_compared: u64,
    /// Rows whose document was found in its file.
    pub documents_equal: u64,
    /// Every difference: file, table, key and what differs.
    pub differences: Vec<FileDifference>,
    pub quarantined: Vec<QuarantinedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDifference {
    pub path: String,
    pub table: String,
    /// The row's key as the import ledger writes it (compact JSON), or empty for the file.
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for FileDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "file {} ({}): {}", self.path, self.table, self.reason)
        } else {
            write!(
                f,
                "table {} key {} (file {}): {}",
                self.table, self.key, self.path, self.reason
            )
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedFile {
    pub path: String,
    pub reason_kind: String,
    pub reason: String,
    pub line: Option<i64>,
    pub column: Option<i64>,
}

/// Runs the data checks; never fails: what cannot be checked is a failed check.
pub async fn check(config: &SignoffConfig) -> DataReport {
    let mut report = DataReport::default();
    match validate(config).await {
        Ok(v) => {
            report.checks.extend(validation_checks(&v));
            report.tables = v
                .tables
                .iter()
                .map(|t| TableRows {
                    table: t.name().to_owned(),
                    sqlite_rows: t.source_rows,
                    postgres_rows: t.target_rows,
                    verdict: t.verdict.as_str().to_owned(),
                })
                .collect();
            let t = &v.totals;
            report.validation = Some(ValidationSummary {
                tables: t.tables,
                tables_equal: t.tables_equal,
                source_rows: t.source_rows,
                target_rows: t.target_rows,
                missing_rows: t.missing_rows,
                extra_rows: t.extra_rows,
                changed_rows: t.changed_rows,
                constraint_findings: t.constraint_findings,
                foreign_keys_checked: v.constraints.target_foreign_keys,
                source_constraints: v.constraints.source_constraints,
                elapsed_ms: v.elapsed_ms,
            });
        }
        Err(e) => report.checks.push(SignoffCheck::new(
            AREA,
            "SQLite equals PostgreSQL",
            false,
            e,
        )),
    }
    match files_against_sqlite(config).await {
        Ok(files) => {
            report.checks.extend(file_checks(&files));
            report.files = files;
        }
        Err(e) => report.checks.push(SignoffCheck::new(
            AREA,
            "every file's documents in the database",
            false,
            e,
        )),
    }
    report
}

async fn validate(config: &SignoffConfig) -> Result<ValidationReport, String> {
    let target = PgTarget {
        url: config.postgres_url.clone(),
        schema: config.schema.clone(),
    };
    let options = ValidateOptions {
        timestamps: config.timestamps.clone(),
        ..ValidateOptions::default()
    };
    ferry_validate::validate(&config.sqlite, &target, None, &options)
        .await
        .map_err(|e| {
            format!(
                "validating {} against schema \"{}\": {}",
                config.sqlite.display(),
                config.schema,
                ferry_core::redact::redact(&e.to_string())
            )
        })
}

fn validation_checks(v: &ValidationReport) -> Vec<SignoffCheck> {
    let t = &v.totals;
    let mut problems = Vec::new();
    for table in &v.tables {
        if table.verdict.as_str() == "equal" {
            continue;
        }
        let name = table.name();
        let mut what = vec![format!("table {name} {}", table.verdict.as_str())];
        if let Some(d) = &table.diff {
            for m in d.missing_examples.iter().take(3) {
                what.push(format!("key {} missing in PostgreSQL", m.key.join(", ")));
            }
            for m in d.extra_examples.iter().take(3) {
                what.push(format!("key {} only in PostgreSQL", m.key.join(", ")));
            }
            for c in d.changed_examples.iter().take(3) {
                let cols: Vec<String> = c
                    .columns
                    .iter()
                    .map(|cc| {
                        format!(
                            "{}: {} in SQLite, {} in PostgreSQL",
                            cc.column, cc.source, cc.target
                        )
                    })
                    .collect();
                what.push(format!(
                    "key {} changed ({})",
                    c.key.join(", "),
                    cols.join("; ")
                ));
            }
        }
        if let Some(e) = &table.error {
            what.push(e.clone());
        }
        problems.push(what.join(", "));
    }
    let equal = problems.is_empty() && t.tables_error == 0;
    let mut checks = vec![SignoffCheck::new(
        AREA,
        "SQLite equals PostgreSQL",
        equal,
        if equal {
            format!(
                "{} tables, {} rows on each side, equal cell by cell (canonical typed digests)",
                t.tables, t.source_rows
            )
        } else {
            format!(
                "{} missing, {} extra, {} changed rows: {}",
                t.missing_rows,
                t.extra_rows,
                t.changed_rows,
                problems.join("; ")
            )
        },
    )];
    let findings: Vec<String> = v
        .constraints
        .findings
        .iter()
        .map(|f| format!("{} {:?}: {}", f.table, f.kind, f.detail))
        .collect();
    checks.push(SignoffCheck::new(
        AREA,
        "constraints validated",
        v.constraints.checked && findings.is_empty(),
        if findings.is_empty() {
            format!(
                "{} foreign keys without orphans, {} sequences ahead of their columns, {} source constraints present in PostgreSQL",
                v.constraints.target_foreign_keys, v.constraints.sequences, v.constraints.source_constraints
            )
        } else {
            findings.into_iter().take(5).collect::<Vec<_>>().join("; ")
        },
    ));
    checks
}

fn file_checks(f: &FileCheck) -> Vec<SignoffCheck> {
    let imported = f.files_by_status.get("imported").copied().unwrap_or(0);
    let first: Vec<String> = f
        .differences
        .iter()
        .take(5)
        .map(|d| d.to_string())
        .collect();
    let mut checks = vec![SignoffCheck::new(
        AREA,
        "every file's documents in the database",
        f.differences.is_empty() && f.files_compared == imported,
        if f.differences.is_empty() {
            format!(
                "{} imported files, {} row documents each found byte for byte in its file (with SQLite equal to PostgreSQL: in PostgreSQL too)",
                f.files_compared, f.documents_equal
            )
        } else {
            format!(
                "{} differences in {} imported files: {}",
                f.differences.len(),
                f.files_compared,
                first.join("; ")
            )
        },
    )];
    let listed: Vec<String> = f
        .quarantined
        .iter()
        .take(5)
        .map(|q| format!("{} ({}: {})", q.path, q.reason_kind, q.reason))
        .collect();
    checks.push(SignoffCheck::new(
        AREA,
        "quarantined files listed with reasons",
        f.quarantined.iter().all(|q| !q.reason.is_empty()),
        if f.quarantined.is_empty() {
            "no file was quarantined".to_owned()
        } else {
            format!("{} quarantined: {}", f.quarantined.len(), listed.join("; "))
        },
    ));
    checks
}

async fn open_read_only(path: &Path) -> Result<SqliteConnection, String> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| format!("opening {} read-only: {e}", path.display()))
}

/// Where a table keeps a row's document.
struct DocColumns {
    /// `doc` (JSON) or `source_text` (Markdown).
    text: &'static str,
    has_record: bool,
}

/// What the ledger says one imported file put in one table.
struct Expected {
    /// Index into the list of imported paths.
    file: usize,
    /// The table's key columns, as the ledger names them.
    cols: Vec<String>,
    /// The keys of the file's rows, as compact JSON arrays.
    keys: Vec<String>,
}

/// Every imported file of the ledger against its rows in SQLite: each row's document occurs
/// byte for byte in the file (the whole file, for a one-record or Markdown file) and hashes
/// to its `doc_sha256`; each table holds exactly the keys the ledger recorded.
///
/// One ordered pass per table (`ORDER BY source_path`), merged with the ledger in path
/// order: a query per file would scan a table without an index on `source_path` once per
/// file, which is quadratic in the size of the store.
pub async fn files_against_sqlite(config: &SignoffConfig) -> Result<FileCheck, String> {
    let mut conn = open_read_only(&config.sqlite).await?;
    let ledger = sqlx::query(
        "SELECT path, status, row_keys, reason_kind, reason, reason_line, reason_column \
         FROM ferry_source_files WHERE disappeared_at IS NULL ORDER BY path",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| {
        format!(
            "reading the import ledger ferry_source_files of {}: {e}",
            config.sqlite.display()
        )
    })?;
    let mut out = FileCheck::default();
    let mut paths: Vec<String> = Vec::new();
    let mut per_table: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    for row in ledger {
        let path: String = row.get(0);
        let status: String = row.get(1);
        *out.files_by_status.entry(status.clone()).or_default() += 1;
        if status == "quarantined" {
            out.quarantined.push(QuarantinedFile {
                path,
                reason_kind: row.get::<Option<String>, _>(3).unwrap_or_default(),
                reason: row.get::<Option<String>, _>(4).unwrap_or_default(),
                line: row.get(5),
                column: row.get(6),
            });
            continue;
        }
        if status != "imported" {
            continue;
        }
        out.files_compared += 1;
        let row_keys: String = row.get(2);
        let keys: Value = match serde_json::from_str(&row_keys) {
            Ok(v) => v,
            Err(e) => {
                out.differences.push(FileDifference {
                    path,
                    table: String::new(),
                    key: String::new(),
                    reason: format!("its ledger row_keys is not JSON: {e}"),
                });
                continue;
            }
        };
        let Some(keys) = keys.as_object() else {
            continue;
        };
        let file = paths.len();
        for (table, set) in keys {
            let cols: Vec<String> = set
                .get("key")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let keys: Vec<String> = set
                .get("rows")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|k| match k {
                            Value::Array(_) => k.to_string(),
                            // A table keyed by (source_path, source_record): the ledger
                            // keeps the record number alone.
                            _ if cols.len() == 2 && cols[0] == "source_path" => {
                                Value::Array(vec![Value::String(path.clone()), k.clone()])
                                    .to_string()
                            }
                            _ => format!("[{k}]"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            per_table
                .entry(table.clone())
                .or_default()
                .push(Expected { file, cols, keys });
        }
        paths.push(path);
    }

    for (table, expected) in per_table {
        let Some(doc_cols) = doc_columns(&mut conn, &table).await? else {
            // A table without documents (task_dependencies): its keys are checked by
            // phase 2's gate and its content by the SQLite/PostgreSQL comparison.
            continue;
        };
        // Files whose ledger entry names no key columns for this table are not compared,
        // as before; the others share the table's key.
        let Some(cols) = expected
            .iter()
            .find(|e| !e.cols.is_empty())
            .map(|e| e.cols.clone())
        else {
            continue;
        };
        let key_sql = cols
            .iter()
            .map(|c| ferry_core::sql::quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT source_path, json_array({key_sql}), {}, doc_sha256, doc_snapshot FROM {} \
             WHERE source_path IS NOT NULL ORDER BY source_path{}",
            doc_cols.text,
            ferry_core::sql::quote_ident(&table),
            if doc_cols.has_record {
                ", source_record"
            } else {
                ""
            }
        );
        let mut rows = sqlx::query(&sql).fetch(&mut conn);
        let mut next: Option<SqliteRow> = None;
        for e in expected.iter().filter(|e| !e.cols.is_empty()) {
            let path = &paths[e.file];
            // This file's rows: rows of paths the ledger does not list as imported (and
            // therefore before this one in the order) are not this check's business.
            let mut group = Vec::new();
            loop {
                let r = match next.take() {
                    Some(r) => r,
                    None => match rows.try_next().await {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(e) => return Err(format!("reading the rows of table {table}: {e}")),
                    },
                };
                let p: String = r.get(0);
                match p.as_str().cmp(path.as_str()) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => group.push(r),
                    std::cmp::Ordering::Greater => {
                        next = Some(r);
                        break;
                    }
                }
            }
            compare_file(config, &mut out, &table, path, &e.keys, group);
        }
    }
    let _ = sqlx::Connection::close(conn).await;
    // File by file, as a person reads them.
    out.differences
        .sort_by(|a, b| (&a.path, &a.table).cmp(&(&b.path, &b.table)));
    out.differences.dedup();
    Ok(out)
}

/// One imported file's rows in one table (`source_path`, key, document, sha, snapshot; in
/// record order) against the file in the store and the keys the ledger recorded.
fn compare_file(
    config: &SignoffConfig,
    out: &mut FileCheck,
    table: &str,
    path: &str,
    expected: &[String],
    rows: Vec<SqliteRow>,
) {
    let diff = |key: &str, reason: String| FileDifference {
        path: path.to_owned(),
        table: table.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let bytes = match std::fs::read(config.store_dir.join(path)) {
        Ok(b) => b,
        Err(e) => {
            out.differences.push(FileDifference {
                path: path.to_owned(),
                table: String::new(),
                key: String::new(),
                reason: format!("cannot be read in the store: {e}"),
            });
            return;
        }
    };
    let file = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut found = Vec::new();
    // Records come in file order: each search starts where the last one ended.
    let mut from = 0usize;
    for r in rows {
        let key: String = r.get(1);
        let text: Option<String> = r.get(2);
        let sha: Option<String> = r.get(3);
        let snapshot: Option<String> = r.get(4);
        found.push(key.clone());
        let text = match (text, snapshot) {
            (Some(t), _) => t.into_bytes(),
            (None, Some(s)) => match std::fs::read(config.state_dir.join(&s)) {
                Ok(b) => b,
                Err(e) => {
                    out.differences.push(diff(
                        &key,
                        format!("its document snapshot {s} cannot be read: {e}"),
                    ));
                    continue;
                }
            },
            (None, None) => {
                out.differences
                    .push(diff(&key, "the row has no document".to_owned()));
                continue;
            }
        };
        if let Some(sha) = sha {
            let got = hex::encode(Sha256::digest(&text));
            if got != sha {
                out.differences.push(diff(
                    &key,
                    format!("its document hashes to {got}, its doc_sha256 says {sha}"),
                ));
                continue;
            }
        }
        let at = find(&file[from.min(file.len())..], &text)
            .map(|i| i + from)
            .or_else(|| find(file, &text));
        let Some(at) = at else {
            out.differences.push(diff(
                &key,
                "its document is not in the file as it is in the store".to_owned(),
            ));
            continue;
        };
        from = at + text.len();
        out.documents_equal += 1;
    }
    let found_set: std::collections::HashSet<&String> = found.iter().collect();
    let expected_set: std::collections::HashSet<&String> = expected.iter().collect();
    for k in expected {
        if !found_set.contains(k) {
            out.differences.push(diff(
                k,
                "the file's document has no row in the database".to_owned(),
            ));
        }
    }
    for k in &found {
        if !expected_set.contains(k) {
            out.differences.push(diff(
                k,
                "a row claims this file, but the ledger does not list it".to_owned(),
            ));
        }
    }
}

async fn doc_columns(
    conn: &mut SqliteConnection,
    table: &str,
) -> Result<Option<DocColumns>, String> {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| format!("reading the columns of table {table}: {e}"))?;
    let has = |c: &str| names.iter().any(|n| n == c);
    if !has("source_path") || !has("doc_sha256") || !has("doc_snapshot") {
        return Ok(None);
    }
    let text = if has("doc") {
        "doc"
    } else if has("source_text") {
        "source_text"
    } else {
        return Ok(None);
    };
    Ok(Some(DocColumns {
        text,
        has_record: has("source_record"),
    }))
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    if haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_document_inside_its_file() {
        assert_eq!(find(b"{\"tasks\": [{\"a\": 1}]}", b"{\"a\": 1}"), Some(11));
        assert_eq!(find(b"{\"tasks\": [{\"a\": 2}]}", b"{\"a\": 1}"), None);
        assert_eq!(find(b"abc", b"abc"), Some(0));
        assert_eq!(find(b"ab", b"abc"), None);
    }
}
