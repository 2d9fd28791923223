//! The PostgreSQL side: catalog, and scans through `COPY (SELECT …) TO STDOUT (FORMAT
//! binary)`, decoding each type's binary form natively (no text casts in SQL).
//!
//! Every data read of one validation happens in one `REPEATABLE READ READ ONLY`
//! transaction, so all of them see one snapshot.

use std::sync::Arc;

use futures_util::StreamExt;
use sqlx::postgres::PgConnection;
use sqlx::Connection;

use crate::canon::{Side, Val};
use crate::decimal::Dec;
use crate::error::ValidateError;
use crate::rows::{Collector, RowBuf};
use crate::spec::{quote_ident, PgKind};
use crate::sqlite::ScanReq;
use crate::sqlpred::{spans_predicate, Dialect};
use crate::timefmt::{PG_EPOCH_DAYS, PG_EPOCH_MICROS};

const SPANS_PER_STATEMENT: usize = 32;
const COPY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// A PostgreSQL column as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct PgColumn {
    pub name: String,
    pub not_null: bool,
    /// `format_type` of the column.
    pub shown: String,
    pub kind: PgKind,
    /// The domain the column is declared with, if any (its base type gives `kind`).
    pub domain: Option<String>,
}

impl PgColumn {
    /// The domain of comparison the column's type says, without a plan: the mixed-class
    /// domain a derived transfer declares is read back as what it holds.
    pub fn default_domain(&self) -> crate::canon::Domain {
        if self.kind == PgKind::Jsonb
            && self.domain.as_deref() == Some(ferry_core::plan::MIXED_DOMAIN)
        {
            crate::canon::Domain::Mixed
        } else {
            self.kind.default_domain()
        }
    }
}

/// Opens a connection for reading one snapshot of `schema`.
pub(crate) async fn connect(url: &str, shown_url: &str) -> Result<PgConnection, ValidateError> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| ValidateError::Connect {
            url: shown_url.to_owned(),
            message: ferry_core::redact::redact(&e.to_string()).into_owned(),
        })?;
    sqlx::query("SET standard_conforming_strings = on")
        .execute(&mut conn)
        .await
        .map_err(|e| ValidateError::pg("setting up the session", e))?;
    sqlx::query("SET application_name = 'ferry-validate'")
        .execute(&mut conn)
        .await
        .map_err(|e| ValidateError::pg("setting up the session", e))?;
    Ok(conn)
}

pub(crate) async fn begin_snapshot(conn: &mut PgConnection) -> Result<(), ValidateError> {
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(|e| ValidateError::pg("starting a read-only snapshot", e))?;
    Ok(())
}

pub(crate) async fn end_snapshot(conn: &mut PgConnection) -> Result<(), ValidateError> {
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(|e| ValidateError::pg("ending the snapshot", e))?;
    Ok(())
}

pub(crate) async fn schema_exists(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<bool, ValidateError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(schema)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| ValidateError::pg(format!("looking up schema {schema}"), e))?;
    Ok(n > 0)
}

/// Ordinary and partitioned tables of `schema` (partitions are read through their parent).
pub(crate) async fn tables(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<String>, ValidateError> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| ValidateError::pg(format!("listing the tables of schema {schema}"), e))
}

pub(crate) async fn columns(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Vec<PgColumn>, ValidateError> {
    // Name, NOT NULL, shown type, base type, array element type, domain.
    type ColumnRow = (String, bool, String, String, Option<String>, Option<String>);
    let rows: Vec<ColumnRow> = sqlx::query_as(
        "SELECT a.attname::text, a.attnotnull, format_type(a.atttypid, a.atttypmod), b.typname::text, e.typname::text, \
                CASE WHEN t.typtype = 'd' THEN t.typname::text END \
         FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_type t ON t.oid = a.atttypid \
         JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
         LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A' \
         WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| ValidateError::pg(format!("reading the columns of {schema}.{table}"), e))?;
    Ok(rows
        .into_iter()
        .map(|(name, not_null, shown, base, elem, domain)| PgColumn {
            kind: PgKind::from_names(&base, elem.as_deref()),
            name,
            not_null,
            shown,
            domain,
        })
        .collect())
}

/// The transfer plan ferry's bookkeeping records in `schema`, when there is one.
pub(crate) async fn recorded_plan(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Option<ferry_core::plan::TransferPlan>, ValidateError> {
    let Some(json) = bookkeeping_value(
        conn,
        schema,
        ferry_core::plan::bookkeeping::RUNS,
        "plan",
        "WHERE id = 1",
    )
    .await?
    else {
        return Ok(None);
    };
    match serde_json::from_value(json) {
        Ok(plan) => Ok(Some(plan)),
        Err(e) => {
            tracing::warn!(
                schema,
                "the recorded transfer plan does not read ({e}); comparing by names"
            );
            Ok(None)
        }
    }
}

/// One jsonb value of a bookkeeping table, when the table exists and has the row.
async fn bookkeeping_value(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    column: &str,
    filter: &str,
) -> Result<Option<serde_json::Value>, ValidateError> {
    let qualified = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&qualified)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| ValidateError::pg("looking for the transfer's bookkeeping", e))?;
    if exists.is_none() {
        return Ok(None);
    }
    let v: Option<sqlx::types::Json<serde_json::Value>> = sqlx::query_scalar(&format!(
        "SELECT {} FROM {qualified} {filter}",
        quote_ident(column)
    ))
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| ValidateError::pg("reading the transfer's bookkeeping", e))?;
    Ok(v.map(|j| j.0))
}

/// What a person acknowledged as not carried over: `(kind, source table, SQLite text)`.
pub(crate) async fn acknowledged(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<(String, String, String)>, ValidateError> {
    let table = format!(
        "{}.{}",
        quote_ident(schema),
        quote_ident(ferry_core::plan::bookkeeping::ACKNOWLEDGEMENTS)
    );
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| ValidateError::pg("looking for acknowledgements", e))?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_as(&format!(
        "SELECT kind, source_table, source_text FROM {table}"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| ValidateError::pg("reading acknowledgements", e))
}

/// Reads the target rows of `req.set`, decoding and encoding each, on this task.
pub(crate) async fn scan(
    conn: &mut PgConnection,
    req: &ScanReq,
) -> Result<Collector, ValidateError> {
    let spec = &req.spec;
    let cols = if req.key_only {
        &spec.cols[..spec.n_key]
    } else {
        &spec.cols[..]
    };
    let n_key = if req.key_only { cols.len() } else { spec.n_key };
    let select: Vec<String> = cols.iter().map(|c| quote_ident(&c.target)).collect();
    let base = format!(
        "SELECT {} FROM {}.{}",
        if select.is_empty() {
            "1".to_owned()
        } else {
            select.join(", ")
        },
        quote_ident(&spec.schema),
        quote_ident(&spec.target)
    );
    let mut statements = Vec::new();
    if req.pushdown && !req.set.covers_all() {
        for chunk in req.set.spans().chunks(SPANS_PER_STATEMENT) {
            match spans_predicate(
                Dialect::Postgres,
                &spec.cols[..spec.n_key],
                chunk,
                &mut Vec::new(),
            ) {
                Some(pred) => statements.push(format!("{base} WHERE {pred}")),
                None => {
                    statements = vec![base.clone()];
                    break;
                }
            }
        }
    } else {
        statements.push(base);
    }
    let kinds: Vec<PgKind> = cols.iter().map(|c| c.pg).collect();
    let mut collector = Collector::new(req.mode, Arc::clone(&req.set));
    let mut buf = RowBuf::new(n_key);
    let what = || format!("reading table {}.{}", spec.schema, spec.target);
    for sql in statements {
        let copy = format!("COPY ({sql}) TO STDOUT (FORMAT binary)");
        let mut stream = conn
            .copy_out_raw(&copy)
            .await
            .map_err(|e| ValidateError::pg(what(), e))?;
        let mut parser = CopyParser::default();
        let mut failure = None;
        // The stream is always drained to its end so the connection stays usable.
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ValidateError::pg(what(), e))?;
            if failure.is_some() {
                continue;
            }
            let res = parser.feed(&chunk, |fields| {
                buf.start();
                for (i, kind) in kinds.iter().enumerate() {
                    let v = match fields.get(i).copied().flatten() {
                        None => Val::Null,
                        Some(bytes) => decode(*kind, bytes),
                    };
                    buf.push(cols[i].domain, &v, spec.ctx, Side::Target);
                }
                buf.finish();
                collector.row(&buf);
            });
            if let Err(e) = res {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            return Err(ValidateError::pg(what(), e));
        }
    }
    Ok(collector)
}

/// An incremental parser of PostgreSQL's binary COPY format.
#[derive(Debug, Default)]
pub(crate) struct CopyParser {
    pending: Vec<u8>,
    header_done: bool,
    ended: bool,
    fields: Vec<(usize, i32)>,
}

impl CopyParser {
    /// Feeds one chunk; calls `row` with each complete tuple's fields (`None` = NULL).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(&[Option<&[u8]>]),
    ) -> Result<(), String> {
        let owned;
        let data: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(chunk);
            owned = std::mem::take(&mut self.pending);
            &owned
        };
        let mut pos = 0;
        if !self.header_done {
            if data.len() < 19 {
                self.pending = data.to_vec();
                return Ok(());
            }
            if &data[..11] != COPY_SIGNATURE {
                return Err("COPY output does not start with the binary signature".into());
            }
            let ext = u32::from_be_bytes([data[15], data[16], data[17], data[18]]) as usize;
            if data.len() < 19 + ext {
                self.pending = data.to_vec();
                return Ok(());
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        let mut slots: Vec<Option<&[u8]>> = Vec::new();
        loop {
            if self.ended || data.len() < pos + 2 {
                break;
            }
            let n = i16::from_be_bytes([data[pos], data[pos + 1]]);
            if n == -1 {
                self.ended = true;
                pos += 2;
                break;
            }
            let n = usize::try_from(n)
                .map_err(|_| format!("negative field count {n} in COPY output"))?;
            // Find every field's extent first: the tuple may be incomplete.
            self.fields.clear();
            let mut p = pos + 2;
            let mut complete = true;
            for _ in 0..n {
                if data.len() < p + 4 {
                    complete = false;
                    break;
                }
                let len = i32::from_be_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]);
                p += 4;
                if len >= 0 {
                    let len_u = len as usize;
                    if data.len() < p + len_u {
                        complete = false;
                        break;
                    }
                    self.fields.push((p, len));
                    p += len_u;
                } else {
                    self.fields.push((p, -1));
                }
            }
            if !complete {
                break;
            }
            slots.clear();
            slots.extend(
                self.fields
                    .iter()
                    .map(|&(at, len)| (len >= 0).then(|| &data[at..at + len as usize])),
            );
            row(&slots);
            pos = p;
        }
        if pos < data.len() && !self.ended {
            self.pending = data[pos..].to_vec();
        }
        Ok(())
    }
}

/// Decodes one binary value of a column of `kind`.
pub(crate) fn decode(kind: PgKind, b: &[u8]) -> Val<'_> {
    let bad = |what: &str| {
        Val::Opaque(format!(
            "{what} value of {} bytes that does not decode",
            b.len()
        ))
    };
    match kind {
        PgKind::Bool => match b {
            [x] => Val::Bool(*x != 0),
            _ => bad("boolean"),
        },
        PgKind::Int2 => match <[u8; 2]>::try_from(b) {
            Ok(x) => Val::Int(i64::from(i16::from_be_bytes(x))),
            Err(_) => bad("smallint"),
        },
        PgKind::Int4 => match <[u8; 4]>::try_from(b) {
            Ok(x) => Val::Int(i64::from(i32::from_be_bytes(x))),
            Err(_) => bad("integer"),
        },
        PgKind::Int8 => match <[u8; 8]>::try_from(b) {
            Ok(x) => Val::Int(i64::from_be_bytes(x)),
            Err(_) => bad("bigint"),
        },
        PgKind::Float4 => match <[u8; 4]>::try_from(b) {
            Ok(x) => Val::F32(f32::from_be_bytes(x)),
            Err(_) => bad("real"),
        },
        PgKind::Float8 => match <[u8; 8]>::try_from(b) {
            Ok(x) => Val::Real(f64::from_be_bytes(x)),
            Err(_) => bad("double precision"),
        },
        PgKind::Numeric => match Dec::from_pg_binary(b) {
            Some(d) => Val::Numeric(d),
            None => bad("numeric"),
        },
        PgKind::Text => Val::Text(b),
        PgKind::Bytea => Val::Blob(b),
        PgKind::Timestamp | PgKind::Timestamptz => match <[u8; 8]>::try_from(b) {
            Ok(x) => {
                let raw = i64::from_be_bytes(x);
                let t = match raw {
                    i64::MAX | i64::MIN => raw,
                    _ => raw.saturating_add(PG_EPOCH_MICROS),
                };
                if kind == PgKind::Timestamp {
                    Val::TsLocal(t)
                } else {
                    Val::Ts(t)
                }
            }
            Err(_) => bad("timestamp"),
        },
        PgKind::Date => match <[u8; 4]>::try_from(b) {
            Ok(x) => {
                let raw = i32::from_be_bytes(x);
                Val::Date(match raw {
                    i32::MAX | i32::MIN => raw,
                    _ => raw.saturating_add(PG_EPOCH_DAYS),
                })
            }
            Err(_) => bad("date"),
        },
        PgKind::Json => Val::JsonText(b),
        PgKind::Jsonb => match b.split_first() {
            Some((1, text)) => Val::JsonText(text),
            _ => bad("jsonb"),
        },
        PgKind::Uuid => match <[u8; 16]>::try_from(b) {
            Ok(u) => Val::Uuid(u),
            Err(_) => bad("uuid"),
        },
        PgKind::Float4Array => decode_f32_array(b).map_or_else(
            || bad("real[] (NULL elements or several dimensions)"),
            Val::F32s,
        ),
        PgKind::Vector => decode_vector(b).map_or_else(|| bad("vector"), Val::F32s),
        PgKind::Other => Val::Opaque(format!(
            "a value of an unsupported type ({} bytes)",
            b.len()
        )),
    }
}

/// A one-dimensional `real[]` without NULL elements.
fn decode_f32_array(b: &[u8]) -> Option<Vec<f32>> {
    let i32_at = |p: usize| {
        b.get(p..p + 4)
            .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let ndim = i32_at(0)?;
    if ndim == 0 {
        return Some(Vec::new());
    }
    if ndim != 1 {
        return None;
    }
    let n = usize::try_from(i32_at(12)?).ok()?;
    let mut p = 20;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if i32_at(p)? != 4 {
            return None;
        }
        let s = b.get(p + 4..p + 8)?;
        out.push(f32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        p += 8;
    }
    (p == b.len()).then_some(out)
}

/// pgvector's binary form: u16 dimensions, u16 unused, then big-endian f32 values.
fn decode_vector(b: &[u8]) -> Option<Vec<f32>> {
    let dim = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
    if b.len() != 4 + 4 * dim {
        return None;
    }
    Some(
        b[4..]
            .chunks_exact(4)
            .map(|s| f32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_parser_handles_split_chunks() {
        let mut data = COPY_SIGNATURE.to_vec();
        data.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        // Two tuples of two fields: (7, NULL) and (8, "ab").
        for (n, text) in [(7i32, None), (8, Some(&b"ab"[..]))] {
            data.extend_from_slice(&2i16.to_be_bytes());
            data.extend_from_slice(&4i32.to_be_bytes());
            data.extend_from_slice(&n.to_be_bytes());
            match text {
                None => data.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(t) => {
                    data.extend_from_slice(&(t.len() as i32).to_be_bytes());
                    data.extend_from_slice(t);
                }
            }
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        for split in 1..data.len() {
            let mut parser = CopyParser::default();
            let mut seen = Vec::new();
            for part in [&data[..split], &data[split..]] {
                parser
                    .feed(part, |f| {
                        seen.push((f[0].map(<[u8]>::to_vec), f[1].map(<[u8]>::to_vec)))
                    })
                    .unwrap();
            }
            assert_eq!(seen.len(), 2, "split at {split}");
            assert_eq!(seen[1].1.as_deref(), Some(&b"ab"[..]));
            assert_eq!(seen[0].1, None);
        }
    }
}
