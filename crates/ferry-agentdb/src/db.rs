//! [`AgentDb`]: opening either backend from a URL, checking the schema is there, running
//! every operation with retries of transient errors, and the statement helpers the
//! operations share.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::redact::redact;
use ferry_core::sql::quote_ident;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::ConnectOptions;

use crate::backend::{is_transient, BackendKind, EmbeddingStorage, Kind, Pool, Sql, Tx, Val};
use crate::error::{AgentDbError, Fail, OpResult, Result};
use crate::layout::Layout;
use crate::mapping::{json_has_nul_escape, Cols, Documents, Mapper, Stored};

/// The tables the API reads and writes; [`AgentDb::connect`] refuses a database without them.
pub const TABLES: &[&str] = &[
    "agents",
    "agent_status",
    "tasks",
    "task_dependencies",
    "messages",
    "configurations",
    "project_analyses",
    "devlogs",
    "agent_memory",
    "documents",
];

/// How an [`AgentDb`] is opened.
#[derive(Debug, Clone)]
pub struct AgentDbOptions {
    /// PostgreSQL: the schema holding ferry's tables (`postgres.schema`). Default `public`.
    pub schema: String,
    /// Connections in the pool. Default: 8 on SQLite, 16 on PostgreSQL.
    pub max_connections: Option<u32>,
    /// SQLite: how long a statement waits for another writer before failing busy.
    pub busy_timeout: Duration,
    /// How long a caller waits for a free connection of the pool.
    pub acquire_timeout: Duration,
    pub retry: RetryPolicy,
    /// Where the store's layout starts inside the store (empty: at its root).
    pub store_prefix: String,
    /// ferry's state directory: documents over the snapshot threshold are read from and
    /// written to `state_dir/snapshots/` as the import does. Without one, large documents
    /// stay in the row.
    pub state_dir: Option<PathBuf>,
    /// `import.snapshot_threshold_bytes`.
    pub snapshot_threshold_bytes: u64,
    /// `timestamps.naive`, in seconds east of UTC: the offset a timestamp without one is
    /// read in when a document is mapped to its row.
    pub naive_offset_seconds: i32,
    /// PostgreSQL with pgvector: the ivfflat lists searched per query (`ivfflat.probes`).
    /// The migration builds 100 lists; 10 (pgvector's advice, √lists) trades a little
    /// recall for speed, 100 searches every list and returns exactly the exact search.
    pub ivfflat_probes: u32,
}

impl Default for AgentDbOptions {
    fn default() -> Self {
        Self {
            schema: "public".to_owned(),
            max_connections: None,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            store_prefix: String::new(),
            state_dir: None,
            snapshot_threshold_bytes: 1_048_576,
            naive_offset_seconds: 0,
            ivfflat_probes: 10,
        }
    }
}

impl AgentDbOptions {
    /// The options ferry's configuration implies: its schema, state directory, snapshot
    /// threshold and naive-timestamp offset.
    pub fn from_config(config: &ferry_core::config::Config) -> Self {
        Self {
            schema: config.postgres.schema.clone(),
            state_dir: Some(config.state_dir.clone()),
            snapshot_threshold_bytes: config.import.snapshot_threshold_bytes,
            naive_offset_seconds: config.timestamps.naive_offset_seconds(),
            ..Self::default()
        }
    }
}

/// Retries of transient errors: busy or locked SQLite, PostgreSQL serialization failures,
/// deadlocks and lost connections. The whole operation (one transaction) is run again after
/// an exponentially growing, jittered delay.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The delay before try `attempt + 1` (`attempt` ≥ 1): base × 2^(attempt-1), capped,
    /// scaled by a random factor in [0.5, 1) so that writers that collided do not collide
    /// again in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        let jitter = 0.5 + (random_u64() % 1000) as f64 / 2000.0;
        capped.mul_f64(jitter)
    }
}

/// Counters of what the retries absorbed, for load reports.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub retries: AtomicU64,
    pub gave_up: AtomicU64,
}

/// What the retries absorbed since the database was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryStats {
    /// Operations tried again after a transient error.
    pub retries: u64,
    /// Operations that still failed with a transient error after every try.
    pub gave_up: u64,
}

/// The data API over ferry's schema, on SQLite or PostgreSQL. Cheap to clone: clones share
/// the connection pool.
#[derive(Debug, Clone)]
pub struct AgentDb {
    pub(crate) pool: Pool,
    pub(crate) kind: BackendKind,
    pub(crate) embedding: EmbeddingStorage,
    pub(crate) layout: Layout,
    pub(crate) docs: Documents,
    pub(crate) mapper: Mapper,
    pub(crate) retry: RetryPolicy,
    pub(crate) counters: Arc<Counters>,
    target: String,
}

impl AgentDb {
    /// Opens `sqlite://PATH` (the file must exist and hold ferry's schema) or
    /// `postgres://…` (tables in `options.schema`). The schema is not created here: it has
    /// one owner, ferry-schema's migrator, with its ledger and lock (`cargo xtask migrate
    /// up`, or phases 1 and 3).
    pub async fn connect(url: &str, options: AgentDbOptions) -> Result<Self> {
        let layout = Layout::new(&options.store_prefix)?;
        let (pool, target) = if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            (
                open_sqlite(Path::new(path), &options).await?,
                path.to_owned(),
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let target = format!("schema \"{}\" of {}", options.schema, redact(url));
            (open_postgres(url, &options, &target).await?, target)
        } else {
            return Err(AgentDbError::BadUrl(redact(url).into_owned()));
        };
        let kind = pool.kind();
        let mut db = Self {
            pool,
            kind,
            embedding: match kind {
                BackendKind::Sqlite => EmbeddingStorage::Blob,
                BackendKind::Postgres => EmbeddingStorage::RealArray,
            },
            layout,
            docs: Documents {
                state_dir: options.state_dir.clone(),
                threshold: options.snapshot_threshold_bytes,
            },
            mapper: Mapper {
                naive_offset: options.naive_offset_seconds,
            },
            retry: options.retry,
            counters: Arc::new(Counters::default()),
            target,
        };
        if let Err(e) = db.check_schema(&options.schema).await {
            db.pool.close().await;
            return Err(e);
        }
        Ok(db)
    }

    /// Which backend this is.
    pub fn backend(&self) -> BackendKind {
        self.kind
    }

    /// How embeddings are stored here, and so how similarity is computed.
    pub fn embedding_storage(&self) -> EmbeddingStorage {
        self.embedding
    }

    /// The database in words, password masked.
    pub fn describe(&self) -> &str {
        &self.target
    }

    /// What the retries absorbed so far.
    pub fn retry_stats(&self) -> RetryStats {
        RetryStats {
            retries: self.counters.retries.load(Ordering::Relaxed),
            gave_up: self.counters.gave_up.load(Ordering::Relaxed),
        }
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn check_schema(&mut self, schema: &str) -> Result<()> {
        let mut q = self.sql();
        match self.kind {
            BackendKind::Sqlite => {
                q.push("SELECT name FROM sqlite_master WHERE type = 'table'");
            }
            BackendKind::Postgres => {
                q.push(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = ",
                )
                .bind(Val::text(schema));
            }
        }
        let rows = self
            .pool
            .fetch(&q, &[Kind::Text])
            .await
            .map_err(|e| AgentDbError::Connect {
                target: self.target.clone(),
                message: redact(&e.to_string()).into_owned(),
            })?;
        let present: Vec<String> = rows
            .into_iter()
            .filter_map(|mut r| r.remove(0).into_text())
            .collect();
        if let Some(missing) = TABLES.iter().find(|t| !present.iter().any(|p| p == *t)) {
            return Err(AgentDbError::MissingTable {
                target: self.target.clone(),
                table: (*missing).to_owned(),
            });
        }
        if self.kind == BackendKind::Postgres {
            let mut q = self.sql();
            q.push("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = to_regclass(")
                .bind(Val::text(format!("{}.agent_memory", quote_ident(schema))))
                .push(") AND a.attname = 'embedding'");
            let ty = self
                .pool
                .fetch_optional(&q, &[Kind::Text])
                .await
                .map_err(|e| AgentDbError::Connect {
                    target: self.target.clone(),
                    message: redact(&e.to_string()).into_owned(),
                })?
                .and_then(|mut r| r.remove(0).into_text())
                .unwrap_or_default();
            if ty.starts_with("vector") {
                self.embedding = EmbeddingStorage::Vector;
            }
        }
        Ok(())
    }

    /// A new statement for this backend.
    pub(crate) fn sql(&self) -> Sql {
        Sql::new(self.kind, self.embedding)
    }

    /// Runs `op` (one transaction, or one read) until it succeeds, fails for a reason
    /// retrying cannot change, or runs out of tries.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        key: &str,
        op: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = OpResult<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Fail::Api(e)) => return Err(e),
                Err(Fail::Db(e)) => {
                    let transient = is_transient(self.kind, &e);
                    if transient && attempt < self.retry.attempts {
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(operation, key, attempt, error = %redact(&e.to_string()), "transient error; trying again");
                        tokio::time::sleep(self.retry.delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    if transient {
                        self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
                    }
                    return Err(AgentDbError::Database {
                        operation,
                        key: key.to_owned(),
                        message: describe_db_error(&e),
                        attempts: attempt,
                        transient,
                    });
                }
            }
        }
    }

    /// `INSERT INTO table (cols…) VALUES (…)`.
    pub(crate) fn insert(&self, table: &str, cols: &Cols) -> Sql {
        let mut q = self.sql();
        let names: Vec<String> = cols.iter().map(|(c, _)| quote_ident(c)).collect();
        q.push(&format!(
            "INSERT INTO {} ({}) VALUES (",
            quote_ident(table),
            names.join(", ")
        ));
        q.bind_all(cols.iter().map(|(_, v)| v.clone()));
        q.push(")");
        q
    }

    /// `UPDATE table SET cols… WHERE key_col = key` (the key column is left out of the SET).
    pub(crate) fn update(&self, table: &str, cols: &Cols, key_col: &str, key: &str) -> Sql {
        let mut q = self.sql();
        q.push(&format!("UPDATE {} SET ", quote_ident(table)));
        let mut first = true;
        for (c, v) in cols.iter().filter(|(c, _)| *c != key_col) {
            if !first {
                q.push(", ");
            }
            first = false;
            q.push(&format!("{} = ", quote_ident(c))).bind(v.clone());
        }
        q.push(&format!(" WHERE {} = ", quote_ident(key_col)))
            .bind(Val::text(key));
        q
    }

    /// Keeps a JSON document as the import would (see [`Documents::store`]) and parses it.
    /// On PostgreSQL the text is first put in jsonb's own rendering: PostgreSQL keeps jsonb,
    /// not text, so the text it gives back (`doc::text`) is then byte for byte the text whose
    /// SHA-256 and size the row records, and a file written back from it hashes the same.
    pub(crate) async fn store_json(
        &self,
        tx: &mut Tx,
        table: &'static str,
        key: &str,
        text: String,
    ) -> OpResult<(Stored, serde_json::Value)> {
        let text = if self.kind == BackendKind::Postgres && !json_has_nul_escape(&text) {
            let mut q = self.sql();
            q.push("SELECT ").bind(Val::Json(Some(text))).push("::text");
            tx.fetch_optional(&q, &[Kind::Text])
                .await?
                .and_then(|r| r.into_iter().next().and_then(Val::into_text))
                .unwrap_or_default()
        } else {
            text
        };
        let value =
            serde_json::from_str(&text).map_err(|e| AgentDbError::bad_doc(table, key, e))?;
        let stored = self.docs.store(table, key, text, true)?;
        Ok((stored, value))
    }

    /// Serialises the writers of one file of the store: PostgreSQL takes a transaction-scoped
    /// advisory lock on the path (SQLite's `BEGIN IMMEDIATE` already admits one writer).
    pub(crate) async fn lock_file(&self, tx: &mut Tx, path: &str) -> OpResult<()> {
        if self.kind == BackendKind::Postgres {
            let mut q = self.sql();
            q.push("SELECT pg_advisory_xact_lock(hashtextextended(")
                .bind(Val::text(path))
                .push(", 0))::text");
            tx.fetch(&q, &[Kind::Text]).await?;
        }
        Ok(())
    }
}

/// A database error in one sentence: the server's own message, password masked, without the
/// driver's "error returned from database:" preamble.
fn describe_db_error(e: &sqlx::Error) -> String {
    let text = match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a free connection".to_owned(),
        sqlx::Error::Io(io) => format!("the connection failed: {io}"),
        other => other.to_string(),
    };
    redact(&text).into_owned()
}

async fn open_sqlite(path: &Path, options: &AgentDbOptions) -> Result<Pool> {
    let target = path.display().to_string();
    if !path.is_file() {
        return Err(AgentDbError::Connect {
            target,
            message:
                "no such file; create it with ferry's migrations first (cargo xtask migrate up)"
                    .into(),
        });
    }
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(options.busy_timeout)
        .disable_statement_logging();
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections.unwrap_or(8))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(|e| AgentDbError::Connect {
            target,
            message: e.to_string(),
        })?;
    Ok(Pool::Sqlite(pool))
}

async fn open_postgres(url: &str, options: &AgentDbOptions, target: &str) -> Result<Pool> {
    ferry_core::config::check_identifier(&options.schema).map_err(|why| AgentDbError::Connect {
        target: target.to_owned(),
        message: format!("schema name: {why}"),
    })?;
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| AgentDbError::Connect {
            target: target.to_owned(),
            message: redact(&e.to_string()).into_owned(),
        })?
        .disable_statement_logging();
    // One direct connection first: a server that is down or refuses fails here at once,
    // with its own message, instead of the pool retrying until its acquire timeout.
    let probe = <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect)
        .await
        .map_err(|e| AgentDbError::Connect {
            target: target.to_owned(),
            message: redact(&e.to_string()).into_owned(),
        })?;
    let _ = sqlx::Connection::close(probe).await;
    let schema = options.schema.clone();
    let probes = options.ivfflat_probes.max(1);
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.unwrap_or(16))
        .acquire_timeout(options.acquire_timeout)
        .after_connect(move |conn, _| {
            let schema = schema.clone();
            Box::pin(async move { prepare_pg_connection(conn, &schema, probes).await })
        })
        .connect_with(connect)
        .await
        .map_err(|e| AgentDbError::Connect {
            target: target.to_owned(),
            message: redact(&e.to_string()).into_owned(),
        })?;
    Ok(Pool::Postgres(pool))
}

/// Every new PostgreSQL connection: the schema (and pgvector's, wherever it was installed)
/// on the search path, and pgvector's search settings when the extension is there.
fn prepare_pg_connection<'c>(
    conn: &'c mut sqlx::PgConnection,
    schema: &'c str,
    probes: u32,
) -> std::pin::Pin<Box<dyn Future<Output = std::result::Result<(), sqlx::Error>> + Send + 'c>> {
    Box::pin(async move {
        use sqlx::{Executor, Row};
        let row = conn
        .fetch_optional(
            "SELECT n.nspname::text, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'",
        )
        .await?;
        let vector: Option<(String, String)> = match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        };
        let mut path = vec![quote_ident(schema), "public".to_owned()];
        if let Some((ext_schema, _)) = &vector {
            if ext_schema != schema && ext_schema != "public" {
                path.push(quote_ident(ext_schema));
            }
        }
        let mut set = format!("SET search_path TO {}", path.join(", "));
        if let Some((_, version)) = &vector {
            set.push_str(&format!("; SET ivfflat.probes = {probes}"));
            // Iterative index scans (pgvector 0.8) keep a filtered search from coming back with
            // fewer than k rows.
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            if (major, minor) >= (0, 8) {
                set.push_str("; SET ivfflat.iterative_scan = relaxed_order");
            }
        }
        conn.execute(set.as_str()).await?;
        Ok(())
    })
}

/// A random number from the standard library's randomly keyed hasher (no extra dependency).
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Now, as every timestamp the API writes: UTC, six fraction digits.
pub(crate) fn now_text() -> String {
    ferry_core::timestamp::format_utc(chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        };
        for _ in 0..50 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(5) && d1 < Duration::from_millis(10));
            let d4 = p.delay(4);
            assert!(d4 >= Duration::from_millis(40) && d4 < Duration::from_millis(80));
            assert!(p.delay(30) < Duration::from_millis(100));
        }
    }
}
