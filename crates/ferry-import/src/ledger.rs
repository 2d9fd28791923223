//! The import ledger, `ferry_source_files`: one row per file of the store, in exactly one
//! state, with the keys of the rows it produced. Read at the start of a run (what changed?),
//! written by the writer in the same transactions as the rows themselves.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::ImportError;
use crate::report::{FileStatus, Reason, ReasonKind};

/// The keys of one file's rows in one table: key column names and one compact-JSON key per
/// row (a scalar for a one-column key, an array otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeySet {
    pub cols: Vec<String>,
    pub rows: Vec<String>,
}

/// The keys of one file's rows, per table, in table-name order.
///
/// A file writes rows to one or two tables, and the whole ledger is held in memory during a
/// run: a sorted vector costs a fraction of a map, whose first entry allocates room for
/// eleven.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RowKeys(Vec<(String, KeySet)>);

impl RowKeys {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, table: &str) -> Option<&KeySet> {
        self.find(table).ok().map(|i| &self.0[i].1)
    }

    /// The key set of `table`, added (with `make`) when missing.
    pub fn get_or_insert_with(
        &mut self,
        table: &str,
        make: impl FnOnce() -> KeySet,
    ) -> &mut KeySet {
        let i = match self.find(table) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (table.to_owned(), make()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Sets the key set of `table`, replacing one it had.
    pub fn insert(&mut self, table: String, set: KeySet) {
        match self.find(&table) {
            Ok(i) => self.0[i].1 = set,
            Err(i) => self.0.insert(i, (table, set)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &KeySet)> {
        self.0.iter().map(|(t, s)| (t, s))
    }

    pub fn values(&self) -> impl Iterator<Item = &KeySet> {
        self.0.iter().map(|(_, s)| s)
    }

    fn find(&self, table: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(t, _)| t.as_str().cmp(table))
    }
}

impl<'a> IntoIterator for &'a RowKeys {
    type Item = (&'a String, &'a KeySet);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, KeySet)>,
        fn(&'a (String, KeySet)) -> (&'a String, &'a KeySet),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(t, s)| (t, s))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LedgerRow {
    pub path: String,
    pub size: u64,
    pub mtime_ns: Option<i64>,
    pub sha256: Option<String>,
    pub status: FileStatus,
    pub kind: Option<String>,
    pub format: Option<String>,
    pub target_table: Option<String>,
    pub row_keys: RowKeys,
    pub row_count: u64,
    pub records_parsed: u64,
    pub reason: Option<Reason>,
    pub quarantine_path: Option<String>,
    pub notes: Option<String>,
    pub settings_digest: String,
    pub first_seen_at: String,
    pub changed_at: String,
    pub disappeared_at: Option<String>,
    pub run_id: Option<i64>,
}

impl LedgerRow {
    /// Same content and outcome: writing it again would change nothing but timestamps.
    pub fn same_outcome(&self, other: &LedgerRow) -> bool {
        self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.sha256 == other.sha256
            && self.status == other.status
            && self.kind == other.kind
            && self.format == other.format
            && self.target_table == other.target_table
            && self.row_keys == other.row_keys
            && self.row_count == other.row_count
            && self.records_parsed == other.records_parsed
            && self.reason == other.reason
            && self.quarantine_path == other.quarantine_path
            && self.notes == other.notes
            && self.settings_digest == other.settings_digest
            && self.disappeared_at == other.disappeared_at
    }
}

/// `{"table": {"key": [columns], "rows": [keys]}}`, built as text: the keys already are
/// compact JSON.
pub(crate) fn row_keys_to_json(keys: &RowKeys) -> String {
    let len: usize = keys
        .iter()
        .map(|(t, set)| t.len() + 24 + set.rows.iter().map(|k| k.len() + 1).sum::<usize>())
        .sum();
    let mut out = String::with_capacity(len + 2);
    out.push('{');
    for (i, (table, set)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, table);
        out.push_str(":{\"key\":[");
        for (j, c) in set.cols.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_json_str(&mut out, c);
        }
        out.push_str("],\"rows\":[");
        for (j, k) in set.rows.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(k);
        }
        out.push_str("]}");
    }
    out.push('}');
    out
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes it.
fn push_json_str(out: &mut String, s: &str) {
    // Names of tables and columns rarely need escaping; when they do, serde_json decides.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::from(s).to_string());
    }
}

pub(crate) fn row_keys_from_json(text: &str) -> Result<RowKeys, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("row_keys is not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("row_keys is not an object".into());
    };
    let mut out = RowKeys::new();
    for (table, v) in map {
        let cols = v
            .get("key")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("row_keys.{table}.key is missing"))?
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("row_keys.{table}.key holds a non-string"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = v
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("row_keys.{table}.rows is missing"))?
            .iter()
            .map(Value::to_string)
            .collect();
        out.insert(table, KeySet { cols, rows });
    }
    Ok(out)
}

const COLUMNS: &str = "path, size, mtime_ns, sha256, status, kind, format, target_table, row_keys, row_count, records_parsed, \
     reason_kind, reason, reason_line, reason_column, quarantine_path, notes, settings_digest, first_seen_at, changed_at, \
     disappeared_at, run_id";
/// Number of columns in [`COLUMNS`].
pub(crate) const N_COLUMNS: usize = 22;

/// A ledger row as stored, before its texts are checked.
struct Stored {
    path: String,
    size: i64,
    mtime_ns: Option<i64>,
    sha256: Option<String>,
    status: String,
    kind: Option<String>,
    format: Option<String>,
    target_table: Option<String>,
    row_keys: String,
    row_count: i64,
    records_parsed: i64,
    reason_kind: Option<String>,
    reason: Option<String>,
    reason_line: Option<i64>,
    reason_column: Option<i64>,
    quarantine_path: Option<String>,
    notes: Option<String>,
    settings_digest: String,
    first_seen_at: String,
    changed_at: String,
    disappeared_at: Option<String>,
    run_id: Option<i64>,
}

impl Stored {
    fn decode(self) -> Result<LedgerRow, ImportError> {
        let bad = |message: String| ImportError::Ledger {
            path: self.path.clone(),
            message,
        };
        let status = FileStatus::parse(&self.status)
            .ok_or_else(|| bad(format!("unknown status `{}`", self.status)))?;
        let reason = match &self.reason_kind {
            None => None,
            Some(kind) => Some(Reason {
                kind: ReasonKind::parse(kind)
                    .ok_or_else(|| bad(format!("unknown reason kind `{kind}`")))?,
                message: self.reason.clone().unwrap_or_default(),
                line: self.reason_line.map(|v| v as u64),
                column: self.reason_column.map(|v| v as u64),
            }),
        };
        let row_keys = row_keys_from_json(&self.row_keys).map_err(bad)?;
        Ok(LedgerRow {
            size: self.size as u64,
            mtime_ns: self.mtime_ns,
            sha256: self.sha256,
            status,
            kind: self.kind,
            format: self.format,
            target_table: self.target_table,
            row_keys,
            row_count: self.row_count as u64,
            records_parsed: self.records_parsed as u64,
            reason,
            quarantine_path: self.quarantine_path,
            notes: self.notes,
            settings_digest: self.settings_digest,
            first_seen_at: self.first_seen_at,
            changed_at: self.changed_at,
            disappeared_at: self.disappeared_at,
            run_id: self.run_id,
            path: self.path,
        })
    }
}

/// Every ledger row, by path, through the import's own connection.
pub(crate) fn load(conn: &rusqlite::Connection) -> Result<HashMap<String, LedgerRow>, ImportError> {
    let ctx = || ImportError::db("reading the ledger ferry_source_files");
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM ferry_source_files"))
        .map_err(ctx())?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Stored {
                path: r.get(0)?,
                size: r.get(1)?,
                mtime_ns: r.get(2)?,
                sha256: r.get(3)?,
                status: r.get(4)?,
                kind: r.get(5)?,
                format: r.get(6)?,
                target_table: r.get(7)?,
                row_keys: r.get(8)?,
                row_count: r.get(9)?,
                records_parsed: r.get(10)?,
                reason_kind: r.get(11)?,
                reason: r.get(12)?,
                reason_line: r.get(13)?,
                reason_column: r.get(14)?,
                quarantine_path: r.get(15)?,
                notes: r.get(16)?,
                settings_digest: r.get(17)?,
                first_seen_at: r.get(18)?,
                changed_at: r.get(19)?,
                disappeared_at: r.get(20)?,
                run_id: r.get(21)?,
            })
        })
        .map_err(ctx())?;
    let mut out = HashMap::new();
    for row in rows {
        let row = row.map_err(ctx())?.decode()?;
        out.insert(row.path.clone(), row);
    }
    Ok(out)
}

/// Every ledger row, by path, through a caller's sqlx connection (for the gate).
pub(crate) async fn load_sqlx(
    conn: &mut sqlx::SqliteConnection,
) -> Result<HashMap<String, LedgerRow>, ImportError> {
    use sqlx::Row;
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM ferry_source_files"))
        .fetch_all(&mut *conn)
        .await
        .map_err(ImportError::sqlite("reading the ledger ferry_source_files"))?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let stored = Stored {
            path: r.get(0),
            size: r.get(1),
            mtime_ns: r.get(2),
            sha256: r.get(3),
            status: r.get(4),
            kind: r.get(5),
            format: r.get(6),
            target_table: r.get(7),
            row_keys: r.get(8),
            row_count: r.get(9),
            records_parsed: r.get(10),
            reason_kind: r.get(11),
            reason: r.get(12),
            reason_line: r.get(13),
            reason_column: r.get(14),
            quarantine_path: r.get(15),
            notes: r.get(16),
            settings_digest: r.get(17),
            first_seen_at: r.get(18),
            changed_at: r.get(19),
            disappeared_at: r.get(20),
            run_id: r.get(21),
        };
        let row = stored.decode()?;
        out.insert(row.path.clone(), row);
    }
    Ok(out)
}

/// The ledger upsert, one row per execution, in [`COLUMNS`] order.
pub(crate) fn upsert_sql() -> String {
    let values = vec!["?"; N_COLUMNS].join(", ");
    format!("INSERT INTO ferry_source_files ({COLUMNS}) VALUES ({values}) ON CONFLICT (path) DO UPDATE SET {}", update_sets())
}

/// The plain insert of one ledger row, for a bulk load into an empty ledger.
pub(crate) fn insert_sql() -> String {
    let values = vec!["?"; N_COLUMNS].join(", ");
    format!("INSERT INTO ferry_source_files ({COLUMNS}) VALUES ({values})")
}

/// Binds one ledger row, in [`COLUMNS`] order.
pub(crate) fn execute(
    stmt: &mut rusqlite::CachedStatement<'_>,
    row: &LedgerRow,
    row_keys: &str,
) -> rusqlite::Result<usize> {
    let reason = row.reason.as_ref();
    stmt.execute(rusqlite::params![
        row.path,
        row.size as i64,
        row.mtime_ns,
        row.sha256,
        row.status.as_str(),
        row.kind,
        row.format,
        row.target_table,
        row_keys,
        row.row_count as i64,
        row.records_parsed as i64,
        reason.map(|r| r.kind.as_str()),
        reason.map(|r| r.message.as_str()),
        reason.and_then(|r| r.line).map(|v| v as i64),
        reason.and_then(|r| r.column).map(|v| v as i64),
        row.quarantine_path,
        row.notes,
        row.settings_digest,
        row.first_seen_at,
        row.changed_at,
        row.disappeared_at,
        row.run_id,
    ])
}

fn update_sets() -> String {
    COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| *c != "path" && *c != "first_seen_at")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_round_trip() {
        let mut keys = RowKeys::new();
        keys.insert(
            "messages".into(),
            KeySet {
                cols: vec!["message_id".into()],
                rows: vec!["\"a/b.json\"".into()],
            },
        );
        keys.insert(
            "hook_events".into(),
            KeySet {
                cols: vec!["source_record".into()],
                rows: vec!["0".into(), "1".into()],
            },
        );
        let json = row_keys_to_json(&keys);
        assert_eq!(row_keys_from_json(&json).unwrap(), keys);
        assert_eq!(
            json,
            r#"{"hook_events":{"key":["source_record"],"rows":[0,1]},"messages":{"key":["message_id"],"rows":["a/b.json"]}}"#
        );
        let mut odd = RowKeys::new();
        odd.insert(
            "t\"q".into(),
            KeySet {
                cols: vec!["c\\d".into()],
                rows: vec![],
            },
        );
        let json = row_keys_to_json(&odd);
        assert_eq!(json, r#"{"t\"q":{"key":["c\\d"],"rows":[]}}"#);
        assert_eq!(row_keys_from_json(&json).unwrap(), odd);
        assert_eq!(upsert_sql().matches('?').count(), N_COLUMNS);
        assert_eq!(insert_sql().matches('?').count(), N_COLUMNS);
    }
}
