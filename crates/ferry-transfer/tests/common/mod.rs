//! Test support: reads both sides of a transfer itself and compares every cell by meaning
//! (the table in `fidelity.md`), independently of the crate's own conversion code.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ferry_core::plan::{TablePlan, TargetType, TransferPlan};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection, Row};

/// A SQLite value as stored: TEXT keeps its bytes (it may not be UTF-8).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl SqlValue {
    fn text(&self) -> Option<&str> {
        match self {
            SqlValue::Text(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// A PostgreSQL value as decoded by its type.
#[derive(Debug, Clone, PartialEq)]
pub enum PgValue {
    Null,
    Int(i64),
    Float(f64),
    /// `numeric` in its exact text form.
    Numeric(String),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
    Tz(DateTime<Utc>),
    Ts(NaiveDateTime),
    Date(NaiveDate),
    Json(serde_json::Value),
    Floats(Vec<f32>),
}

/// The outcome of comparing one table.
#[derive(Debug, Default)]
pub struct Comparison {
    pub rows: u64,
    pub cells: u64,
    /// Keys of source rows with no row in PostgreSQL.
    pub missing: Vec<String>,
    /// Rows in PostgreSQL with no source row.
    pub extra: Vec<String>,
    /// `key column: source vs target` for every cell whose meaning changed.
    pub mismatches: Vec<String>,
}

pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .expect("connect to the scratch database")
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads every row of a source table as SQLite stores it (`rowid` first for rowid tables).
pub fn sqlite_rows(path: &Path, table: &TablePlan) -> Vec<Vec<SqlValue>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            if c.source == "rowid" {
                "rowid".into()
            } else {
                ident(&c.source)
            }
        })
        .collect();
    let sql = format!("SELECT {} FROM {}", cols.join(", "), ident(&table.source));
    let mut stmt = conn.prepare(&sql).unwrap();
    let n = cols.len();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    use rusqlite::types::ValueRef as V;
                    Ok(match r.get_ref(i)? {
                        V::Null => SqlValue::Null,
                        V::Integer(v) => SqlValue::Integer(v),
                        V::Real(v) => SqlValue::Real(v),
                        V::Text(v) => SqlValue::Text(v.to_vec()),
                        V::Blob(v) => SqlValue::Blob(v.to_vec()),
                    })
                })
                .collect::<Result<Vec<_>, rusqlite::Error>>()
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn select_expr(name: &str, t: &TargetType) -> String {
    match t {
        TargetType::Numeric | TargetType::Uuid => format!("{}::text", ident(name)),
        _ => ident(name),
    }
}

fn decode(row: &PgRow, i: usize, t: &TargetType) -> PgValue {
    macro_rules! get {
        ($ty:ty, $wrap:expr) => {
            match row
                .try_get::<Option<$ty>, _>(i)
                .unwrap_or_else(|e| panic!("decode column {i} as {t:?}: {e}"))
            {
                None => PgValue::Null,
                Some(v) => $wrap(v),
            }
        };
    }
    match t {
        TargetType::Boolean => get!(bool, PgValue::Bool),
        TargetType::Smallint => get!(i16, |v: i16| PgValue::Int(v.into())),
        TargetType::Integer => get!(i32, |v: i32| PgValue::Int(v.into())),
        TargetType::Bigint => get!(i64, PgValue::Int),
        TargetType::DoublePrecision => get!(f64, PgValue::Float),
        TargetType::Numeric => get!(String, PgValue::Numeric),
        TargetType::Text | TargetType::Uuid => get!(String, PgValue::Text),
        TargetType::Bytea => get!(Vec<u8>, PgValue::Bytes),
        TargetType::Date => get!(NaiveDate, PgValue::Date),
        TargetType::Timestamp => get!(NaiveDateTime, PgValue::Ts),
        TargetType::Timestamptz => get!(DateTime<Utc>, PgValue::Tz),
        TargetType::Json | TargetType::Jsonb | TargetType::MixedJsonb => {
            get!(serde_json::Value, PgValue::Json)
        }
        TargetType::RealArray => get!(Vec<f32>, PgValue::Floats),
    }
}

pub async fn pg_rows(
    conn: &mut PgConnection,
    schema: &str,
    table: &TablePlan,
) -> Vec<Vec<PgValue>> {
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|c| select_expr(&c.target, &c.target_type))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}.{}",
        cols.join(", "),
        ident(schema),
        ident(&table.target)
    );
    let rows = sqlx::query(&sql)
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| {
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| decode(r, i, &c.target_type))
                .collect()
        })
        .collect()
}

/// Parses ISO-8601 text into `(wall clock, offset seconds)`, with chrono, on its own.
fn parse_time(text: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    let (body, offset) = if let Some(b) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z'))
    {
        (b, Some(0))
    } else {
        match text
            .get(10..)
            .and_then(|t| t.rfind(['+', '-']))
            .map(|i| i + 10)
        {
            Some(i) => {
                let (b, o) = text.split_at(i);
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
                let (h, m) = match digits.len() {
                    2 => (digits.parse::<i32>().ok()?, 0),
                    4 => (
                        digits[..2].parse::<i32>().ok()?,
                        digits[2..].parse::<i32>().ok()?,
                    ),
                    _ => return None,
                };
                (b, Some(sign * (h * 3600 + m * 60)))
            }
            None => (text, None),
        }
    };
    let body = body.replacen('T', " ", 1);
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&body, fmt) {
            return Some((t, offset));
        }
    }
    NaiveDate::parse_from_str(&body, "%Y-%m-%d")
        .ok()
        .map(|d| (d.and_hms_opt(0, 0, 0).unwrap_or_default(), offset))
}

fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            _ => x.as_f64() == y.as_f64(),
        },
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Whether a PostgreSQL value means the same as the SQLite value.
pub fn same_meaning(src: &SqlValue, tgt: &PgValue, t: &TargetType, naive_offset: i32) -> bool {
    use PgValue as P;
    use SqlValue as S;
    match (src, tgt) {
        (S::Null, P::Null) => true,
        (S::Null, _) | (_, P::Null) => false,
        (S::Integer(i), P::Int(j)) => i == j,
        (S::Integer(i), P::Bool(b)) => (*i == 1 && *b) || (*i == 0 && !*b),
        (S::Integer(i), P::Numeric(s)) => s == &i.to_string(),
        (S::Integer(i), P::Float(f)) => {
            *f as i128 == i128::from(*i) && (*i as f64).to_bits() == f.to_bits()
        }
        (S::Integer(i), P::Text(s)) => s.parse::<i64>().ok() == Some(*i),
        (S::Real(f), P::Float(g)) => f.to_bits() == g.to_bits(),
        (S::Real(f), P::Numeric(s)) => s.parse::<f64>().ok().map(f64::to_bits) == Some(f.to_bits()),
        (S::Real(f), P::Text(s)) => s.parse::<f64>().ok().map(f64::to_bits) == Some(f.to_bits()),
        (S::Text(s), P::Text(p)) if *t != TargetType::Uuid => s == p.as_bytes(),
        (S::Text(_), P::Text(p)) => {
            src.text().map(str::to_lowercase).as_deref() == Some(p.as_str())
        }
        (S::Text(s), P::Bytes(b)) => s == b,
        (S::Blob(a), P::Bytes(b)) => a == b,
        (S::Text(_), P::Tz(d)) => src.text().and_then(parse_time).is_some_and(|(wall, off)| {
            let off = off.unwrap_or(naive_offset);
            (wall - chrono::Duration::seconds(i64::from(off))).and_utc() == *d
        }),
        (S::Text(_), P::Ts(d)) => src
            .text()
            .and_then(parse_time)
            .is_some_and(|(wall, off)| off.is_none() && wall == *d),
        (S::Text(_), P::Date(d)) => {
            src.text()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                == Some(*d)
        }
        (S::Text(s), P::Json(v)) if *t != TargetType::MixedJsonb => {
            serde_json::from_slice::<serde_json::Value>(s).is_ok_and(|w| json_eq(&w, v))
        }
        (S::Text(_), P::Json(v)) => v.as_str().is_some() && v.as_str() == src.text(),
        (S::Integer(i), P::Json(v)) => v.as_i64() == Some(*i) && !v.is_f64(),
        (S::Real(f), P::Json(v)) if f.is_finite() => {
            v.is_f64() && v.as_f64().map(f64::to_bits) == Some(f.to_bits())
        }
        (S::Real(f), P::Json(v)) => {
            let name = if *f > 0.0 { "Infinity" } else { "-Infinity" };
            v.get("$real").and_then(|r| r.as_str()) == Some(name)
        }
        (S::Blob(b), P::Json(v)) => {
            v.get("$blob").and_then(|r| r.as_str()) == Some(hex::encode(b).as_str())
        }
        (S::Blob(b), P::Floats(v)) => {
            b.len() == v.len() * 4
                && b.chunks_exact(4)
                    .zip(v)
                    .all(|(q, f)| u32::from_le_bytes([q[0], q[1], q[2], q[3]]) == f.to_bits())
        }
        _ => false,
    }
}

fn src_key_part(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => "null".into(),
        SqlValue::Integer(i) => format!("i:{i}"),
        SqlValue::Real(f) => format!("r:{}", f.to_bits()),
        SqlValue::Text(s) => format!("t:{}", String::from_utf8_lossy(s)),
        SqlValue::Blob(b) => format!("b:{}", hex::encode(b)),
    }
}

fn pg_key_part(v: &PgValue) -> String {
    match v {
        PgValue::Null => "null".into(),
        PgValue::Int(i) => format!("i:{i}"),
        PgValue::Float(f) => format!("r:{}", f.to_bits()),
        PgValue::Numeric(s) => match s.parse::<i64>() {
            Ok(i) => format!("i:{i}"),
            Err(_) => format!("r:{}", s.parse::<f64>().unwrap_or(f64::NAN).to_bits()),
        },
        PgValue::Text(s) => format!("t:{s}"),
        PgValue::Bytes(b) => format!("b:{}", hex::encode(b)),
        PgValue::Json(j) if j.is_i64() => format!("i:{}", j.as_i64().unwrap_or_default()),
        PgValue::Json(j) if j.is_f64() => format!("r:{}", j.as_f64().unwrap_or_default().to_bits()),
        PgValue::Json(serde_json::Value::String(s)) => format!("t:{s}"),
        other => format!("{other:?}"),
    }
}

/// Compares one table cell by cell: rows matched by primary key, or as a multiset.
pub async fn compare_table(
    path: &Path,
    conn: &mut PgConnection,
    schema: &str,
    table: &TablePlan,
    naive_offset: i32,
) -> Comparison {
    let src = sqlite_rows(path, table);
    let tgt = pg_rows(conn, schema, table).await;
    let mut out = Comparison {
        rows: src.len() as u64,
        ..Default::default()
    };
    let key_idx: Vec<usize> = table
        .primary_key
        .iter()
        .map(|k| {
            table
                .columns
                .iter()
                .position(|c| &c.source == k)
                .expect("key column in plan")
        })
        .collect();
    let cmp_row = |s: &[SqlValue], p: &[PgValue], key: &str, out: &mut Comparison| {
        for (i, c) in table.columns.iter().enumerate() {
            out.cells += 1;
            if !same_meaning(&s[i], &p[i], &c.target_type, naive_offset) {
                out.mismatches.push(format!(
                    "{}[{key}].{}: {:?} vs {:?}",
                    table.source, c.source, s[i], p[i]
                ));
            }
        }
    };
    // SQLite lets NULL into a non-integer primary key: such a table is a multiset too.
    let null_key = src
        .iter()
        .any(|s| key_idx.iter().any(|i| s[*i] == SqlValue::Null));
    if !key_idx.is_empty() && !null_key {
        let mut by_key: HashMap<String, &Vec<PgValue>> = HashMap::new();
        for p in &tgt {
            let k: Vec<String> = key_idx.iter().map(|i| pg_key_part(&p[*i])).collect();
            if by_key.insert(k.join("|"), p).is_some() {
                out.extra.push(format!("duplicate key {}", k.join("|")));
            }
        }
        for s in &src {
            let k = key_idx
                .iter()
                .map(|i| src_key_part(&s[*i]))
                .collect::<Vec<_>>()
                .join("|");
            match by_key.remove(&k) {
                Some(p) => cmp_row(s, p, &k, &mut out),
                None => out.missing.push(k),
            }
        }
        out.extra.extend(by_key.keys().cloned());
    } else {
        let mut unmatched: Vec<&Vec<PgValue>> = tgt.iter().collect();
        for s in &src {
            let found = unmatched.iter().position(|p| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .all(|(i, c)| same_meaning(&s[i], &p[i], &c.target_type, naive_offset))
            });
            match found {
                Some(i) => {
                    unmatched.swap_remove(i);
                    out.cells += table.columns.len() as u64;
                }
                None => out.missing.push(format!("{s:?}")),
            }
        }
        out.extra.extend(unmatched.iter().map(|p| format!("{p:?}")));
    }
    out
}

/// Compares every table of a plan; returns per-table comparisons.
pub async fn compare_all(
    path: &Path,
    url: &str,
    plan: &TransferPlan,
    naive_offset: i32,
) -> Vec<(String, Comparison)> {
    let mut conn = connect(url).await;
    let mut out = Vec::new();
    for t in &plan.tables {
        out.push((
            t.source.clone(),
            compare_table(path, &mut conn, &plan.target_schema, t, naive_offset).await,
        ));
    }
    out
}

/// Constraint facts of a target table: primary key columns, NOT NULL columns, foreign keys
/// (validated or not), unique constraints+indexes, CHECKs, indexes.
#[derive(Debug, Default)]
pub struct TargetConstraints {
    pub primary_key: Vec<String>,
    pub not_null: Vec<String>,
    pub foreign_keys: Vec<(String, bool)>,
    pub checks: Vec<(String, bool)>,
    pub unique_indexes: usize,
    pub indexes: usize,
}

pub async fn constraints(conn: &mut PgConnection, schema: &str, table: &str) -> TargetConstraints {
    let rel = format!("{}.{}", ident(schema), ident(table));
    let pk: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
         WHERE c.conrelid = $1::regclass AND c.contype = 'p' ORDER BY array_position(c.conkey, a.attnum)",
    )
    .bind(&rel)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let not_null: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attnotnull ORDER BY attnum",
    )
    .bind(&rel)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let cons: Vec<(String, String, bool)> =
        sqlx::query_as("SELECT conname::text, contype::text, convalidated FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY conname")
            .bind(&rel)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let (unique_indexes, indexes): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE indisunique AND NOT indisprimary), count(*) FROM pg_index WHERE indrelid = $1::regclass",
    )
    .bind(&rel)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    TargetConstraints {
        primary_key: pk,
        not_null,
        foreign_keys: cons
            .iter()
            .filter(|c| c.1 == "f")
            .map(|c| (c.0.clone(), c.2))
            .collect(),
        checks: cons
            .iter()
            .filter(|c| c.1 == "c")
            .map(|c| (c.0.clone(), c.2))
            .collect(),
        unique_indexes: unique_indexes as usize,
        indexes: indexes as usize,
    }
}

/// Asserts that every NOT NULL and primary key of the plan exists in PostgreSQL.
pub async fn assert_keys_and_not_nulls(url: &str, plan: &TransferPlan) {
    let mut conn = connect(url).await;
    for t in &plan.tables {
        let c = constraints(&mut conn, &plan.target_schema, &t.target).await;
        let want_pk: Vec<String> = t
            .primary_key
            .iter()
            .map(|k| {
                t.columns
                    .iter()
                    .find(|c| &c.source == k)
                    .map(|c| c.target.clone())
                    .unwrap_or_default()
            })
            .collect();
        let nullable_key = t.primary_key.iter().any(|k| {
            t.columns
                .iter()
                .any(|c| &c.source == k && c.profile.nulls > 0)
        });
        if !nullable_key {
            assert_eq!(c.primary_key, want_pk, "primary key of {:?}", t.source);
        }
        for col in t.columns.iter().filter(|c| c.not_null) {
            assert!(
                c.not_null.contains(&col.target),
                "NOT NULL of {:?}.{:?} is missing",
                t.source,
                col.source
            );
        }
    }
}

/// A file of `n` events (rowid table, FK, JSON, timestamps, reals, blobs), 50 agents (text
/// key) and `n / 10` pairs (WITHOUT ROWID, composite key) for the resume and connection
/// tests.
pub fn medium_file(path: &Path, n: i64) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE agents (name TEXT PRIMARY KEY NOT NULL, note TEXT);
         CREATE TABLE events (
             id INTEGER PRIMARY KEY, agent TEXT NOT NULL REFERENCES agents (name),
             at TIMESTAMP NOT NULL, payload JSON, score REAL, data BLOB);
         CREATE INDEX events_agent_idx ON events (agent);
         CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, w REAL, PRIMARY KEY (a, b)) WITHOUT ROWID;",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..50 {
        tx.execute(
            "INSERT INTO agents VALUES (?1, ?2)",
            rusqlite::params![format!("Agent-{i}"), format!("note {i} ü")],
        )
        .unwrap();
    }
    {
        let mut st = tx
            .prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .unwrap();
        for i in 1..=n {
            st.execute(rusqlite::params![
                i,
                format!("Agent-{}", i % 50),
                format!(
                    "2025-0{}-1{}T0{}:00:00.{:06}+02:00",
                    1 + i % 9,
                    i % 10,
                    i % 10,
                    i % 999_999
                ),
                format!("{{\"i\": {i}, \"tags\": [\"x\", \"y\"]}}"),
                i as f64 / 3.0,
                vec![(i % 256) as u8; (i % 64) as usize],
            ])
            .unwrap();
        }
        let mut st = tx.prepare("INSERT INTO pairs VALUES (?1, ?2, ?3)").unwrap();
        for i in 0..n / 10 {
            st.execute(rusqlite::params![i % 97, format!("b-{i}"), i as f64 * 0.5])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Asserts PostgreSQL holds exactly the source rows (no duplicate, none missing) with
/// every cell equal.
pub async fn assert_exact_copy(path: &Path, url: &str, plan: &TransferPlan) {
    for (table, cmp) in compare_all(path, url, plan, 0).await {
        assert!(
            cmp.missing.is_empty(),
            "{table}: {} rows missing",
            cmp.missing.len()
        );
        assert!(
            cmp.extra.is_empty(),
            "{table}: {} extra or duplicate rows: {:?}",
            cmp.extra.len(),
            &cmp.extra[..cmp.extra.len().min(5)]
        );
        assert!(
            cmp.mismatches.is_empty(),
            "{table}: {:?}",
            &cmp.mismatches[..cmp.mismatches.len().min(5)]
        );
    }
}

/// One cell, made comparable across the engines by the PostgreSQL column's type: numbers
/// by value, booleans as SQLite's 0/1, times as UTC microseconds, text as it is.
///
/// Numbers are compared to 12 significant digits: a view's aggregate of REALs is summed in
/// another order by each engine (SQLite even changed its summation in 3.43), so its last
/// bits may differ while it means the same; stored values are compared bit for bit by the
/// validation, not here.
fn canon_number(x: f64) -> String {
    let r: f64 = format!("{x:.11e}").parse().unwrap_or(x);
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r:.11e}")
    }
}

fn canon_time(text: &str) -> String {
    match ferry_core::pgcopy::timestamp::parse(text.as_bytes()) {
        Some(t) => t.utc_micros(0).to_string(),
        None => text.to_owned(),
    }
}

fn canon_cell(pg_type: &str, v: &SqlValue) -> String {
    let pg_type = if pg_type.ends_with("sqlite_value") {
        "jsonb"
    } else {
        pg_type
    };
    let numeric = [
        "smallint",
        "integer",
        "bigint",
        "numeric",
        "double precision",
        "real",
    ]
    .iter()
    .any(|t| pg_type.starts_with(t));
    let time = pg_type.starts_with("timestamp") || pg_type == "date";
    match v {
        SqlValue::Null => "NULL".into(),
        SqlValue::Integer(i) if pg_type == "boolean" => i.to_string(),
        SqlValue::Integer(i) if numeric || pg_type == "jsonb" => canon_number(*i as f64),
        SqlValue::Real(x) if numeric || pg_type == "jsonb" => canon_number(*x),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(x) => canon_number(*x),
        SqlValue::Text(b) => {
            let s = String::from_utf8_lossy(b).into_owned();
            if time {
                canon_time(&s)
            } else if numeric {
                s.parse::<f64>().map_or(s, canon_number)
            } else {
                s
            }
        }
        SqlValue::Blob(b) => format!("x{}", hex::encode(b)),
    }
}

fn canon_pg(pg_type: &str, text: Option<String>) -> String {
    let Some(s) = text else {
        return "NULL".into();
    };
    let pg_type = if pg_type.ends_with("sqlite_value") {
        "jsonb"
    } else {
        pg_type
    };
    match pg_type {
        "boolean" => if s == "t" || s == "true" { "1" } else { "0" }.into(),
        "jsonb" => match serde_json::from_str::<serde_json::Value>(&s) {
            Ok(serde_json::Value::String(x)) => x,
            Ok(serde_json::Value::Number(n)) => canon_number(n.as_f64().unwrap_or(f64::NAN)),
            _ => s,
        },
        "bytea" => format!("x{}", s.trim_start_matches("\\x")),
        t if t.starts_with("timestamp") || t == "date" => canon_time(&s),
        t if [
            "smallint",
            "integer",
            "bigint",
            "numeric",
            "double precision",
            "real",
        ]
        .iter()
        .any(|n| t.starts_with(n)) =>
        {
            s.parse::<f64>().map_or(s, canon_number)
        }
        _ => s,
    }
}

/// Every row of a SQLite query, each value as SQLite holds it.
pub fn sqlite_query(path: &Path, sql: &str) -> Vec<Vec<SqlValue>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    use rusqlite::types::ValueRef as V;
                    Ok(match r.get_ref(i)? {
                        V::Null => SqlValue::Null,
                        V::Integer(v) => SqlValue::Integer(v),
                        V::Real(v) => SqlValue::Real(v),
                        V::Text(v) => SqlValue::Text(v.to_vec()),
                        V::Blob(v) => SqlValue::Blob(v.to_vec()),
                    })
                })
                .collect::<Result<Vec<_>, rusqlite::Error>>()
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Whether a SQLite view and its PostgreSQL translation return the same rows (a multiset,
/// values compared by meaning; the columns in `unordered` hold `sep`-separated lists whose
/// order neither engine defines, e.g. `group_concat`).
pub async fn same_view_rows(
    path: &Path,
    conn: &mut PgConnection,
    schema: &str,
    view: &str,
    unordered: &[(usize, char)],
) -> Result<usize, String> {
    let rel = format!("{}.{}", ident(schema), ident(view));
    let cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum",
    )
    .bind(&rel)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| format!("view {view}: {e}"))?;
    let select: Vec<String> = cols
        .iter()
        .map(|(n, _)| format!("{}::text", ident(n)))
        .collect();
    let pg: Vec<PgRow> = sqlx::query(&format!("SELECT {} FROM {rel}", select.join(", ")))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| format!("view {view}: {e}"))?;
    let fix = |mut row: Vec<String>| {
        for (i, sep) in unordered {
            let mut parts: Vec<&str> = row[*i].split(*sep).collect();
            parts.sort_unstable();
            row[*i] = parts.join(&sep.to_string());
        }
        row
    };
    let mut pg_rows: Vec<Vec<String>> = pg
        .iter()
        .map(|r| {
            fix(cols
                .iter()
                .enumerate()
                .map(|(i, (_, t))| canon_pg(t, r.get::<Option<String>, _>(i)))
                .collect())
        })
        .collect();
    let mut lite_rows: Vec<Vec<String>> =
        sqlite_query(path, &format!("SELECT * FROM {}", ident(view)))
            .into_iter()
            .map(|r| {
                fix(r
                    .iter()
                    .zip(&cols)
                    .map(|(v, (_, t))| canon_cell(t, v))
                    .collect())
            })
            .collect();
    pg_rows.sort();
    lite_rows.sort();
    if pg_rows == lite_rows {
        Ok(pg_rows.len())
    } else {
        let missing: Vec<&Vec<String>> = lite_rows
            .iter()
            .filter(|r| !pg_rows.contains(r))
            .take(3)
            .collect();
        let extra: Vec<&Vec<String>> = pg_rows
            .iter()
            .filter(|r| !lite_rows.contains(r))
            .take(3)
            .collect();
        Err(format!(
            "view {view}: {} rows in SQLite, {} in PostgreSQL; only in SQLite {missing:?}; only in PostgreSQL {extra:?}",
            lite_rows.len(),
            pg_rows.len()
        ))
    }
}

/// The SQLSTATE PostgreSQL refuses a statement with, or `None` when it runs.
pub async fn pg_refusal(conn: &mut PgConnection, sql: &str) -> Option<String> {
    sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    let res = sqlx::raw_sql(sql).execute(&mut *conn).await;
    sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
    match res {
        Ok(_) => None,
        Err(e) => Some(
            e.as_database_error()
                .and_then(|d| d.code().map(|c| c.into_owned()))
                .unwrap_or_else(|| format!("not a database error: {e}")),
        ),
    }
}

/// SQLite's refusal of a statement (its message), or `None` when it runs; the file is left
/// as it was.
pub fn sqlite_refusal(path: &Path, sql: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON; BEGIN")
        .unwrap();
    let res = conn.execute_batch(sql);
    conn.execute_batch("ROLLBACK").unwrap();
    res.err().map(|e| e.to_string())
}
