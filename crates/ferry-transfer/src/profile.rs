//! Profiling: one pass over every table, before any DDL, counting what each column really
//! holds (storage classes, integer range, invalid UTF-8, NUL bytes) and whether its values
//! all parse as what its declared type suggests (timestamps, JSON, UUIDs, 0/1).

use ferry_core::plan::ColumnProfile;
use ferry_core::value::base_type_name;

use crate::cell::Cell;
use crate::error::Result;
use crate::ident::quote_sqlite;
use crate::schema::SourceTable;
use crate::sqlite::SqliteSource;
use crate::{json, timestamp};
use ferry_core::sqlite_text::Token;

/// What the declared type suggests a column could become, checked against the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Candidates {
    pub boolean: bool,
    pub time: bool,
    pub json: bool,
    pub uuid: bool,
    pub decimal: bool,
}

impl Candidates {
    pub fn of(declared: &str, json_checked: bool) -> Self {
        let upper = declared.to_ascii_uppercase();
        let base = base_type_name(declared);
        Self {
            boolean: upper.contains("BOOL"),
            time: upper.contains("DATE") || upper.contains("TIME"),
            json: matches!(base.as_str(), "JSON" | "JSONB") || json_checked,
            uuid: upper.contains("UUID")
                || upper.contains("GUID")
                || upper.contains("UNIQUEIDENTIFIER"),
            decimal: matches!(
                base.as_str(),
                "NUMERIC" | "DECIMAL" | "DEC" | "MONEY" | "SMALLMONEY" | "NUMBER"
            ),
        }
    }
}

/// One column's profile plus the checks its candidates asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnStats {
    pub profile: ColumnProfile,
    pub candidates: Candidates,
    /// Valid text values that parse as timestamps (when `candidates.time`).
    pub time_ok: u64,
    pub time_with_offset: u64,
    pub time_date_only: u64,
    pub time_beyond_micros: u64,
    /// Valid text values that are JSON jsonb keeps exactly (when `candidates.json`).
    pub json_ok: u64,
    pub json_example_error: Option<String>,
    pub uuid_ok: u64,
    /// INTEGER values that are 0 or 1.
    pub zero_one: u64,
    pub nonfinite_reals: u64,
    /// The text layout of the timestamps seen: `None` before the first, then the one
    /// layout they share, or `Some(None)` once two differ.
    pub layout: Option<Option<String>>,
}

impl ColumnStats {
    /// TEXT values that PostgreSQL `text` can hold.
    pub fn valid_texts(&self) -> u64 {
        self.profile.texts - self.invalid_texts()
    }

    /// TEXT values with invalid UTF-8 or a NUL (a value with both counts once as invalid
    /// UTF-8 in `ColumnProfile::invalid_utf8` and is not counted again here).
    pub fn invalid_texts(&self) -> u64 {
        self.profile.invalid_utf8 + self.profile.nul_bytes
    }

    /// Adds the profile of other rows of the same column.
    pub fn merge(&mut self, o: &ColumnStats) {
        let (p, q) = (&mut self.profile, &o.profile);
        p.nulls += q.nulls;
        p.integers += q.integers;
        p.reals += q.reals;
        p.texts += q.texts;
        p.blobs += q.blobs;
        p.invalid_utf8 += q.invalid_utf8;
        p.nul_bytes += q.nul_bytes;
        p.min_integer = match (p.min_integer, q.min_integer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        p.max_integer = match (p.max_integer, q.max_integer) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.time_ok += o.time_ok;
        self.time_with_offset += o.time_with_offset;
        self.time_date_only += o.time_date_only;
        self.time_beyond_micros += o.time_beyond_micros;
        self.json_ok += o.json_ok;
        if self.json_example_error.is_none() {
            self.json_example_error.clone_from(&o.json_example_error);
        }
        self.uuid_ok += o.uuid_ok;
        self.zero_one += o.zero_one;
        self.nonfinite_reals += o.nonfinite_reals;
        p.texts_like_integer += q.texts_like_integer;
        self.layout = match (self.layout.take(), &o.layout) {
            (None, other) => other.clone(),
            (mine, None) => mine,
            (Some(a), Some(b)) if a == *b => Some(a),
            _ => Some(None),
        };
    }

    /// The profile, with the shared timestamp layout filled in.
    pub fn finished_profile(&self) -> ColumnProfile {
        let mut p = self.profile.clone();
        p.text_layout = self.layout.clone().flatten();
        p
    }

    fn add(&mut self, cell: Cell<'_>) {
        let p = &mut self.profile;
        match cell {
            Cell::Null => p.nulls += 1,
            Cell::Integer(i) => {
                p.integers += 1;
                p.min_integer = Some(p.min_integer.map_or(i, |m| m.min(i)));
                p.max_integer = Some(p.max_integer.map_or(i, |m| m.max(i)));
                if i == 0 || i == 1 {
                    self.zero_one += 1;
                }
            }
            Cell::Real(f) => {
                p.reals += 1;
                if !f.is_finite() {
                    self.nonfinite_reals += 1;
                }
            }
            Cell::Blob(_) => p.blobs += 1,
            Cell::Text(b) => {
                p.texts += 1;
                if std::str::from_utf8(b).is_err() {
                    p.invalid_utf8 += 1;
                    return;
                }
                if b.contains(&0) {
                    p.nul_bytes += 1;
                    return;
                }
                if spells_integer(b) {
                    p.texts_like_integer += 1;
                }
                let c = self.candidates;
                if c.time {
                    if let Some(t) = timestamp::parse(b) {
                        self.time_ok += 1;
                        self.time_with_offset += u64::from(t.offset.is_some());
                        self.time_date_only += u64::from(t.date_only());
                        self.time_beyond_micros += u64::from(t.beyond_micros);
                        let this = text_layout(b);
                        self.layout = match self.layout.take() {
                            None => Some(this),
                            Some(seen) if seen == this => Some(seen),
                            Some(_) => Some(None),
                        };
                    }
                }
                if c.json {
                    match json::check(b) {
                        Ok(()) => self.json_ok += 1,
                        Err(e) if self.json_example_error.is_none() => {
                            self.json_example_error = Some(e)
                        }
                        Err(_) => {}
                    }
                }
                if c.uuid && is_uuid(b) {
                    self.uuid_ok += 1;
                }
            }
        }
    }
}

/// A canonical integer: what SQLite writes for an INTEGER (`-7`, `42`; not `007`, `+1`).
pub fn spells_integer(b: &[u8]) -> bool {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
        && (b != b"-0")
        && std::str::from_utf8(b).is_ok_and(|s| s.parse::<i64>().is_ok())
}

/// The `to_char` pattern that writes this timestamp text back exactly, when there is one:
/// `YYYY-MM-DD`, then `T` or a space, `HH24:MI`, `:SS`, 1–6 fraction digits, and `Z`.
pub fn text_layout(b: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(b).ok()?;
    if s.len() == 10 {
        return Some("YYYY-MM-DD".into());
    }
    let sep = match s.as_bytes().get(10)? {
        b'T' => "\"T\"",
        b' ' => " ",
        _ => return None,
    };
    let rest = &s[11..];
    let (rest, zulu) = match rest.strip_suffix('Z') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    if !rest
        .bytes()
        .all(|c| c.is_ascii_digit() || c == b':' || c == b'.')
    {
        return None;
    }
    let mut out = format!("YYYY-MM-DD{sep}HH24:MI");
    match rest.len() {
        5 => {}
        8 => out.push_str(":SS"),
        n if n > 9 && n <= 15 && rest.as_bytes()[8] == b'.' => {
            out.push_str(&format!(":SS.FF{}", n - 9));
        }
        _ => return None,
    }
    if zulu {
        out.push_str("\"Z\"");
    }
    Some(out)
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Columns named in a `CHECK (json_valid(col))`, lower-cased.
pub fn json_checked_columns(table: &SourceTable) -> Vec<String> {
    let mut out = Vec::new();
    for check in &table.checks {
        for w in check.expr.windows(4) {
            if let [Token::Word(f), Token::LParen, Token::Word(c) | Token::Quoted(c), Token::RParen] =
                w
            {
                if f.eq_ignore_ascii_case("json_valid") {
                    out.push(c.to_lowercase());
                }
            }
        }
    }
    out
}

/// The SELECT list that reads a table's columns in plan order.
pub fn select_list(table: &SourceTable) -> String {
    table
        .columns
        .iter()
        .map(|c| {
            if c.synthetic_rowid {
                "rowid".to_owned()
            } else {
                quote_sqlite(&c.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name under which a table's rowid can be read (`None` for WITHOUT ROWID tables, or
/// when columns named `rowid`, `_rowid_` and `oid` hide it).
pub fn rowid_name(table: &SourceTable) -> Option<&'static str> {
    if table.kind == ferry_core::plan::TableKind::WithoutRowid {
        return None;
    }
    ["rowid", "_rowid_", "oid"].into_iter().find(|r| {
        !table
            .columns
            .iter()
            .any(|c| !c.synthetic_rowid && c.name.eq_ignore_ascii_case(r))
    })
}

/// Profiles every column of one table (or of the rows whose rowid is in `range`) in one
/// pass; returns the stats and the row count.
pub fn profile_table(
    db: &SqliteSource,
    table: &SourceTable,
    range: Option<(i64, i64)>,
) -> Result<(Vec<ColumnStats>, u64)> {
    let checked = json_checked_columns(table);
    let mut stats: Vec<ColumnStats> = table
        .columns
        .iter()
        .map(|c| ColumnStats {
            candidates: Candidates::of(&c.declared, checked.contains(&c.name.to_lowercase())),
            ..Default::default()
        })
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {}",
        select_list(table),
        quote_sqlite(&table.name)
    );
    let mut params = Vec::new();
    if let (Some((lo, hi)), Some(rowid)) = (range, rowid_name(table)) {
        sql.push_str(&format!(" WHERE {rowid} >= ?1 AND {rowid} <= ?2"));
        params = vec![
            crate::cell::OwnedCell::Integer(lo),
            crate::cell::OwnedCell::Integer(hi),
        ];
    }
    let mut rows = 0u64;
    db.for_each_row(
        &format!("profiling table {:?}", table.name),
        &sql,
        &params,
        |row| {
            rows += 1;
            for (i, s) in stats.iter_mut().enumerate() {
                s.add(row.cell(i));
            }
            true
        },
    )?;
    Ok((stats, rows))
}
