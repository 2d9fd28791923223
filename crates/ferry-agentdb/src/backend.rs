//! The two backends behind one small interface: statements built once with `$n`
//! placeholders (both SQLite and PostgreSQL read them), values typed so that PostgreSQL gets
//! `jsonb`, `timestamptz` and `vector` where its schema has them, and rows decoded into the
//! same [`Val`]s on both sides.
//!
//! PostgreSQL returns timestamps and JSON as text in the form SQLite stores them
//! (`2025-08-12T10:00:00.000000Z`, JSON text), so the operations above decode one way.

use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{Row, Transaction};

/// Which database an [`crate::AgentDb`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `agent_memory.embedding` is stored, which decides how similarity is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingStorage {
    /// SQLite: 1536 little-endian f32 in a BLOB; cosine distance computed in Rust.
    Blob,
    /// PostgreSQL without pgvector: `real[]`; cosine distance computed by the server in SQL.
    RealArray,
    /// PostgreSQL with pgvector: `vector(1536)`, searched with `<=>` (its ivfflat index).
    Vector,
}

/// A value bound to a statement or read from a row. Every variant carries an `Option` so a
/// NULL is typed, as PostgreSQL needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
    /// JSON text; `jsonb` on PostgreSQL.
    Json(Option<String>),
    /// A canonical UTC timestamp (`…T…Z`, six fraction digits); `timestamptz` on PostgreSQL.
    Ts(Option<String>),
    /// An embedding: a BLOB on SQLite, `real[]` or `vector` on PostgreSQL.
    Embedding(Option<Vec<f32>>),
}

impl Val {
    pub fn text(s: impl Into<String>) -> Val {
        Val::Text(Some(s.into()))
    }

    pub fn into_text(self) -> Option<String> {
        match self {
            Val::Text(t) | Val::Json(t) | Val::Ts(t) => t,
            Val::Int(i) => i.map(|i| i.to_string()),
            Val::Real(r) => r.map(|r| r.to_string()),
            Val::Embedding(_) => None,
        }
    }

    pub fn into_int(self) -> Option<i64> {
        match self {
            Val::Int(i) => i,
            _ => None,
        }
    }

    pub fn into_real(self) -> Option<f64> {
        match self {
            Val::Real(r) => r,
            Val::Int(i) => i.map(|i| i as f64),
            _ => None,
        }
    }

    pub fn into_embedding(self) -> Option<Vec<f32>> {
        match self {
            Val::Embedding(e) => e,
            _ => None,
        }
    }
}

/// What a selected column is decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Int,
    Real,
    Embedding,
}

/// A statement under construction, for one backend.
#[derive(Debug)]
pub(crate) struct Sql {
    kind: BackendKind,
    embedding: EmbeddingStorage,
    pub text: String,
    pub args: Vec<Val>,
}

impl Sql {
    pub fn new(kind: BackendKind, embedding: EmbeddingStorage) -> Self {
        Self {
            kind,
            embedding,
            text: String::new(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `v`, with the cast PostgreSQL needs for its column type.
    pub fn bind(&mut self, v: Val) -> &mut Self {
        let n = self.args.len() + 1;
        let placeholder = match (self.kind, &v) {
            (BackendKind::Postgres, Val::Json(_)) => format!("${n}::jsonb"),
            (BackendKind::Postgres, Val::Ts(_)) => format!("${n}::timestamptz"),
            (BackendKind::Postgres, Val::Embedding(_))
                if self.embedding == EmbeddingStorage::Vector =>
            {
                format!("${n}::real[]::vector")
            }
            (BackendKind::Postgres, Val::Embedding(_)) => format!("${n}::real[]"),
            _ => format!("${n}"),
        };
        self.text.push_str(&placeholder);
        self.args.push(v);
        self
    }

    /// A comma-separated list of placeholders.
    pub fn bind_all(&mut self, vals: impl IntoIterator<Item = Val>) -> &mut Self {
        for (i, v) in vals.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self
    }
}

/// A column as text in the form SQLite stores it: timestamps as `…T…Z` with six digits.
pub(crate) fn ts_out(kind: BackendKind, col: &str) -> String {
    match kind {
        BackendKind::Sqlite => col.to_owned(),
        BackendKind::Postgres => {
            format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        }
    }
}

/// A JSON column as its text.
pub(crate) fn json_out(kind: BackendKind, col: &str) -> String {
    match kind {
        BackendKind::Sqlite => col.to_owned(),
        BackendKind::Postgres => format!("{col}::text"),
    }
}

/// An embedding column in a form [`Kind::Embedding`] decodes.
pub(crate) fn embedding_out(storage: EmbeddingStorage, col: &str) -> String {
    match storage {
        EmbeddingStorage::Vector => format!("{col}::real[]"),
        _ => col.to_owned(),
    }
}

/// An open transaction on either backend.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn execute(&mut self, q: &Sql) -> Result<u64, sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => Ok(sqlite_query(q).execute(&mut **tx).await?.rows_affected()),
            Tx::Postgres(tx) => Ok(pg_query(q).execute(&mut **tx).await?.rows_affected()),
        }
    }

    pub async fn fetch(&mut self, q: &Sql, kinds: &[Kind]) -> Result<Vec<Vec<Val>>, sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => sqlite_query(q)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| decode_sqlite(r, kinds))
                .collect(),
            Tx::Postgres(tx) => pg_query(q)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| decode_pg(r, kinds))
                .collect(),
        }
    }

    pub async fn fetch_optional(
        &mut self,
        q: &Sql,
        kinds: &[Kind],
    ) -> Result<Option<Vec<Val>>, sqlx::Error> {
        Ok(self.fetch(q, kinds).await?.into_iter().next())
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

/// A pool of either backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub fn kind(&self) -> BackendKind {
        match self {
            Pool::Sqlite(_) => BackendKind::Sqlite,
            Pool::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// A write transaction. SQLite's starts with `BEGIN IMMEDIATE`: it takes the write lock
    /// up front (waiting in the busy handler) instead of failing when a read upgrades.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        match self {
            Pool::Sqlite(p) => Ok(Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?)),
            Pool::Postgres(p) => Ok(Tx::Postgres(p.begin().await?)),
        }
    }

    pub async fn fetch(&self, q: &Sql, kinds: &[Kind]) -> Result<Vec<Vec<Val>>, sqlx::Error> {
        match self {
            Pool::Sqlite(p) => sqlite_query(q)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| decode_sqlite(r, kinds))
                .collect(),
            Pool::Postgres(p) => pg_query(q)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| decode_pg(r, kinds))
                .collect(),
        }
    }

    pub async fn fetch_optional(
        &self,
        q: &Sql,
        kinds: &[Kind],
    ) -> Result<Option<Vec<Val>>, sqlx::Error> {
        Ok(self.fetch(q, kinds).await?.into_iter().next())
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn sqlite_query(q: &Sql) -> SqliteQuery<'_> {
    let mut query = sqlx::query(&q.text);
    for v in &q.args {
        query = match v {
            Val::Text(t) | Val::Json(t) | Val::Ts(t) => query.bind(t.as_deref()),
            Val::Int(i) => query.bind(*i),
            Val::Real(r) => query.bind(*r),
            Val::Embedding(e) => query.bind(e.as_deref().map(embedding_to_blob)),
        };
    }
    query
}

fn pg_query(q: &Sql) -> PgQuery<'_> {
    let mut query = sqlx::query(&q.text);
    for v in &q.args {
        query = match v {
            Val::Text(t) | Val::Json(t) | Val::Ts(t) => query.bind(t.as_deref()),
            Val::Int(i) => query.bind(*i),
            Val::Real(r) => query.bind(*r),
            Val::Embedding(e) => query.bind(e.as_deref()),
        };
    }
    query
}

fn decode_sqlite(row: &SqliteRow, kinds: &[Kind]) -> Result<Vec<Val>, sqlx::Error> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(match k {
                Kind::Text => Val::Text(row.try_get(i)?),
                Kind::Int => Val::Int(row.try_get(i)?),
                Kind::Real => Val::Real(row.try_get(i)?),
                Kind::Embedding => {
                    let blob: Option<Vec<u8>> = row.try_get(i)?;
                    Val::Embedding(blob.map(|b| blob_to_embedding(&b)))
                }
            })
        })
        .collect()
}

fn decode_pg(row: &PgRow, kinds: &[Kind]) -> Result<Vec<Val>, sqlx::Error> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(match k {
                Kind::Text => Val::Text(row.try_get(i)?),
                // `SELECT 1` is int4, the schema's keys int8: both read as i64.
                Kind::Int => match row.try_get::<Option<i64>, _>(i) {
                    Ok(v) => Val::Int(v),
                    Err(_) => Val::Int(row.try_get::<Option<i32>, _>(i)?.map(i64::from)),
                },
                Kind::Real => Val::Real(row.try_get(i)?),
                Kind::Embedding => Val::Embedding(row.try_get(i)?),
            })
        })
        .collect()
}

/// 1536 f32 as the little-endian BLOB SQLite's `agent_memory.embedding` holds.
pub(crate) fn embedding_to_blob(e: &[f32]) -> Vec<u8> {
    e.iter().flat_map(|f| f.to_le_bytes()).collect()
}

pub(crate) fn blob_to_embedding(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Whether a database error is worth retrying: SQLite busy or locked; PostgreSQL
/// serialization failure, deadlock, lock not available, a server shutting down or too many
/// connections; and a connection lost on the way (I/O).
pub(crate) fn is_transient(kind: BackendKind, e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            match kind {
                // Extended result codes: the primary code is the low byte (5 BUSY, 6 LOCKED).
                BackendKind::Sqlite => code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
                BackendKind::Postgres => {
                    matches!(
                        &*code,
                        "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300"
                    ) || code.starts_with("08")
                }
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_carry_postgres_casts() {
        let mut q = Sql::new(BackendKind::Postgres, EmbeddingStorage::Vector);
        q.push("INSERT INTO t VALUES (").bind_all([
            Val::text("a"),
            Val::Json(Some("{}".into())),
            Val::Ts(None),
            Val::Embedding(None),
        ]);
        q.push(")");
        assert_eq!(
            q.text,
            "INSERT INTO t VALUES ($1, $2::jsonb, $3::timestamptz, $4::real[]::vector)"
        );
        let mut q = Sql::new(BackendKind::Sqlite, EmbeddingStorage::Blob);
        q.bind_all([Val::Json(None), Val::Ts(None)]);
        assert_eq!(q.text, "$1, $2");
    }

    #[test]
    fn embeddings_round_trip_through_blobs() {
        let e = vec![0.5f32, -1.25, f32::MIN_POSITIVE, 3.0e10];
        let blob = embedding_to_blob(&e);
        assert_eq!(blob.len(), 16);
        assert_eq!(&blob[..4], &0.5f32.to_le_bytes());
        assert_eq!(blob_to_embedding(&blob), e);
    }
}
