//! The PostgreSQL side: connections (with triggers and foreign-key actions off, as logical
//! replication applies), ferry's bookkeeping tables, and the statements that apply one
//! table's changes.
//!
//! Why `session_replication_role = replica`: SQLite already enforced its constraints and
//! already ran its own cascades (each cascaded row is in the change log); PostgreSQL mirrors
//! the resulting state. With foreign-key actions on, deleting a row to re-insert its new
//! state, or a delete applied before the update that moved a child away, would cascade to
//! rows that still exist in SQLite. With them off, every table applies independently:
//! delete every touched key, delete rows that hold a staged row's value of another UNIQUE
//! constraint (SQLite's uniqueness proves no row holds it there now), insert the present
//! rows. Unique constraints, NOT NULL and CHECK still hold; orphans, which only a SQLite
//! with `foreign_keys` off can produce, are found by ferry-validate's constraint check.

use std::str::FromStr;
use std::time::{Duration, Instant};

use ferry_core::plan::TablePlan;
use ferry_core::redact::SecretUrl;
use ferry_core::sql::{qualified, quote_ident, quote_literal};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};

use crate::error::{clean, Result, SyncError};
use crate::source::{Reject, TableChange};

/// ferry's bookkeeping tables in the target schema.
pub const STATE_TABLE: &str = "ferry_sync_state";
pub const TABLES_TABLE: &str = "ferry_sync_tables";
pub const REJECTS_TABLE: &str = "ferry_sync_rejects";

/// How often and how patiently a lost connection is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `n` (1-based; attempt 1 has none).
    pub fn backoff(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (attempt - 2).min(16);
        (self.first_backoff * factor).min(self.max_backoff)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The connection is gone or the server is shutting down: reconnect and retry.
    Connection,
    /// A row PostgreSQL refused: isolate it and reject it.
    Data,
    Other,
}

pub(crate) fn classify(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorClass::Connection,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(c)
                if c.starts_with("08")
                    || c.starts_with("57P")
                    || c == "53300"
                    || c == "40001"
                    || c == "40P01" =>
            {
                ErrorClass::Connection
            }
            Some(c) if c.starts_with("22") || c.starts_with("23") => ErrorClass::Data,
            _ => ErrorClass::Other,
        },
        _ => ErrorClass::Other,
    }
}

/// The message of a driver error, with PostgreSQL's detail, redacted.
pub(crate) fn describe(e: &sqlx::Error) -> String {
    if let Some(db) = e.as_database_error() {
        if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            let mut s = pg.message().to_owned();
            if let Some(d) = pg.detail() {
                s.push_str(&format!(" ({d})"));
            }
            return clean(s);
        }
    }
    clean(e)
}

/// Runs SQL text (one or more statements, no parameters) with the simple query protocol.
pub(crate) async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await.map(|_| ())
}

/// Where sync writes: a server and a schema.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub url: SecretUrl,
    pub schema: String,
}

/// Connections to the target, with retries.
#[derive(Debug, Clone)]
pub(crate) struct PgSide {
    pub url: SecretUrl,
    pub schema: String,
    options: PgConnectOptions,
    pub retry: RetryPolicy,
}

impl PgSide {
    pub fn new(target: &SyncTarget, retry: RetryPolicy, application_name: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(target.url.expose())
            .map_err(|e| SyncError::Postgres {
                url: target.url.to_string(),
                context: "reading the URL".into(),
                message: clean(e),
            })?
            .application_name(application_name)
            .disable_statement_logging();
        Ok(Self {
            url: target.url.clone(),
            schema: target.schema.clone(),
            options,
            retry,
        })
    }

    pub fn err(&self, context: impl Into<String>, e: &sqlx::Error) -> SyncError {
        SyncError::Postgres {
            url: self.url.to_string(),
            context: context.into(),
            message: describe(e),
        }
    }

    pub fn unreachable(
        &self,
        context: &str,
        attempts: u32,
        started: Instant,
        e: &sqlx::Error,
    ) -> SyncError {
        SyncError::Unreachable {
            url: self.url.to_string(),
            context: context.to_owned(),
            attempts,
            seconds: started.elapsed().as_secs_f64(),
            message: describe(e),
        }
    }

    /// Connects (retrying while the failure looks transient); `apply` connections run with
    /// triggers and foreign-key actions off.
    pub async fn connect(&self, context: &str, apply: bool) -> Result<PgConnection> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match self.options.connect().await {
                Ok(mut conn) => {
                    if apply {
                        if let Err(e) =
                            exec(&mut conn, "SET session_replication_role = replica").await
                        {
                            let _ = conn.close().await;
                            if classify(&e) != ErrorClass::Connection {
                                return Err(SyncError::Privilege {
                                    url: self.url.to_string(),
                                    message: describe(&e),
                                });
                            }
                        } else {
                            return Ok(conn);
                        }
                    } else {
                        return Ok(conn);
                    }
                }
                Err(e) => {
                    if classify(&e) != ErrorClass::Connection {
                        return Err(self.err(context, &e));
                    }
                    if attempt >= self.retry.attempts {
                        return Err(self.unreachable(context, attempt, started, &e));
                    }
                    tracing::warn!(
                        attempt,
                        "cannot reach PostgreSQL ({}); retrying",
                        describe(&e)
                    );
                }
            }
            attempt += 1;
            if attempt > self.retry.attempts {
                return Err(SyncError::Unreachable {
                    url: self.url.to_string(),
                    context: context.to_owned(),
                    attempts: attempt - 1,
                    seconds: started.elapsed().as_secs_f64(),
                    message: "the connection kept failing while it was set up".into(),
                });
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        }
    }

    pub async fn close(conn: PgConnection) {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    }
}

/// How one plan table is written in PostgreSQL.
#[derive(Debug, Clone)]
pub(crate) struct TargetTable {
    pub source: String,
    /// The PostgreSQL table name, unquoted.
    pub target: String,
    /// `"schema"."table"`.
    pub qualified: String,
    /// Quoted target columns, in plan order.
    pub cols: Vec<String>,
    /// Quoted target key columns (empty for digest-followed tables).
    pub key: Vec<String>,
    /// Other unique constraints: quoted columns, and whether NULLs count as equal.
    pub uniques: Vec<(Vec<String>, bool)>,
    pub stage: String,
    pub keys: String,
    pub overriding: bool,
}

impl TargetTable {
    pub async fn load(
        conn: &mut PgConnection,
        pg: &PgSide,
        i: usize,
        plan: &TablePlan,
        digest: bool,
    ) -> Result<Self> {
        let target_key: Vec<String> = if digest {
            Vec::new()
        } else {
            plan.primary_key
                .iter()
                .map(|k| {
                    plan.columns
                        .iter()
                        .find(|c| &c.source == k)
                        .map(|c| c.target.clone())
                        .ok_or_else(|| SyncError::Plan {
                            message: format!(
                                "key column {k:?} of table {:?} has no target",
                                plan.source
                            ),
                        })
                })
                .collect::<Result<_>>()?
        };
        if !table_exists(conn, &pg.schema, &plan.target)
            .await
            .map_err(|e| pg.err("reading the target schema", &e))?
        {
            return Err(SyncError::Plan {
                message: format!(
                    "table {:?} of the plan is not in schema {:?} (phase 3 makes it)",
                    plan.target, pg.schema
                ),
            });
        }
        let rows = sqlx::query(
            "SELECT coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false),
                    array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL",
        )
        .bind(&pg.schema)
        .bind(&plan.target)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| pg.err(format!("reading the unique constraints of {:?}", plan.target), &e))?;
        let mut uniques = Vec::new();
        for r in rows {
            let nnd: bool = r.get(0);
            let cols: Vec<String> = r.get(1);
            let mut sorted = cols.clone();
            sorted.sort();
            let mut key = target_key.clone();
            key.sort();
            if sorted == key {
                continue;
            }
            uniques.push((cols.iter().map(|c| quote_ident(c)).collect(), nnd));
        }
        let overriding: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attidentity = 'a')",
        )
        .bind(&pg.schema)
        .bind(&plan.target)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| pg.err(format!("reading the columns of {:?}", plan.target), &e))?;
        Ok(Self {
            source: plan.source.clone(),
            target: plan.target.clone(),
            qualified: qualified(&pg.schema, &plan.target),
            cols: plan
                .columns
                .iter()
                .map(|c| quote_ident(&c.target))
                .collect(),
            key: target_key.iter().map(|k| quote_ident(k)).collect(),
            uniques,
            stage: quote_ident(&format!("ferry_sync_stage_{i}")),
            keys: quote_ident(&format!("ferry_sync_keys_{i}")),
            overriding,
        })
    }

    /// Creates this session's staging tables (emptied at every commit).
    pub fn stage_sql(&self) -> String {
        let mut sql = format!(
            "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA;",
            self.stage,
            self.cols.join(", "),
            self.qualified
        );
        if !self.key.is_empty() {
            sql.push_str(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA;",
                self.keys,
                self.key.join(", "),
                self.qualified
            ));
        }
        sql
    }

    fn insert_head(&self) -> String {
        format!(
            "INSERT INTO {} ({}){} ",
            self.qualified,
            self.cols.join(", "),
            if self.overriding {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            }
        )
    }

    fn match_on(cols: &[String], left: &str, right: &str, nulls_equal: bool) -> String {
        cols.iter()
            .map(|c| {
                if nulls_equal {
                    format!("{left}.{c} IS NOT DISTINCT FROM {right}.{c}")
                } else {
                    format!("{left}.{c} = {right}.{c}")
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The deletes that make room for the staged rows: touched keys (or everything), and
    /// rows holding a staged row's value of another unique constraint.
    pub fn delete_sql(&self, replace_all: bool, has_keys: bool, has_rows: bool) -> String {
        let mut sql = String::new();
        if replace_all {
            sql.push_str(&format!("DELETE FROM {};", self.qualified));
            return sql;
        }
        if has_keys {
            sql.push_str(&format!(
                "DELETE FROM {} t USING {} k WHERE {};",
                self.qualified,
                self.keys,
                Self::match_on(&self.key, "t", "k", false)
            ));
        }
        if has_rows {
            for (cols, nnd) in &self.uniques {
                sql.push_str(&format!(
                    "DELETE FROM {} t USING {} s WHERE {};",
                    self.qualified,
                    self.stage,
                    Self::match_on(cols, "t", "s", *nnd)
                ));
            }
        }
        sql
    }

    pub fn insert_sql(&self) -> String {
        format!(
            "{}SELECT {} FROM {};",
            self.insert_head(),
            self.cols.join(", "),
            self.stage
        )
    }

    pub fn copy_rows_sql(&self) -> String {
        format!("COPY {} FROM STDIN (FORMAT binary)", self.stage)
    }

    pub fn copy_keys_sql(&self) -> String {
        format!("COPY {} FROM STDIN (FORMAT binary)", self.keys)
    }
}

/// Creates the bookkeeping tables and one row per followed table.
pub(crate) async fn ensure_bookkeeping(
    conn: &mut PgConnection,
    schema: &str,
    tables: &[String],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {state} (
            id integer PRIMARY KEY CHECK (id = 1),
            capture_id text NOT NULL,
            cursor bigint NOT NULL DEFAULT 0,
            handoff_done boolean NOT NULL DEFAULT false,
            applied_changes bigint NOT NULL DEFAULT 0,
            lag_p50_ms double precision,
            lag_p99_ms double precision,
            lag_max_ms double precision,
            last_error text,
            last_error_at timestamptz,
            cutover jsonb,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS {tables} (
            tbl text PRIMARY KEY,
            cursor bigint NOT NULL DEFAULT 0,
            digest text,
            applied_changes bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS {rejects} (
            tbl text NOT NULL,
            row_key text NOT NULL,
            column_name text NOT NULL,
            reason text NOT NULL,
            bytes_hex text,
            seq bigint,
            rejected_at timestamptz NOT NULL DEFAULT now(),
            resolved_at timestamptz
        );
        CREATE INDEX IF NOT EXISTS ferry_sync_rejects_open ON {rejects} (tbl, row_key) WHERE resolved_at IS NULL;",
        state = qualified(schema, STATE_TABLE),
        tables = qualified(schema, TABLES_TABLE),
        rejects = qualified(schema, REJECTS_TABLE),
    );
    exec(conn, &sql).await?;
    sqlx::query(&format!(
        "INSERT INTO {} (tbl) SELECT unnest($1::text[]) ON CONFLICT (tbl) DO NOTHING",
        qualified(schema, TABLES_TABLE)
    ))
    .bind(tables)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether a table of the target exists.
pub(crate) async fn table_exists(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(qualified(schema, table))
        .fetch_one(conn)
        .await?;
    Ok(found.is_some())
}

/// One COPY of already encoded rows.
pub(crate) async fn copy_bytes(
    conn: &mut PgConnection,
    sql: &str,
    rows: &[u8],
) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(sql).await?;
    copy.send(ferry_core::pgcopy::HEADER).await?;
    if !rows.is_empty() {
        copy.send(rows).await?;
    }
    copy.send(&ferry_core::pgcopy::TRAILER[..]).await?;
    copy.finish().await
}

/// What applying changes found beyond the changes themselves.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Rows PostgreSQL refused (careful mode), rejected with its message.
    pub refused: Vec<Reject>,
}

/// Applies the changes of some tables in the current transaction. In careful mode the
/// present rows are inserted one by one under savepoints, and a row PostgreSQL refuses is
/// rejected (its key stays deleted) instead of failing the batch.
pub(crate) async fn apply_in_tx(
    conn: &mut PgConnection,
    schema: &str,
    tables: &[TargetTable],
    changes: &[&TableChange],
    careful: bool,
    staged: &mut std::collections::HashSet<usize>,
) -> Result<Applied, sqlx::Error> {
    let mut applied = Applied::default();
    for ch in changes {
        let t = &tables[ch.table];
        if staged.insert(ch.table) {
            exec(conn, &t.stage_sql()).await?;
        }
        if ch.n_rows > 0 && !careful {
            copy_bytes(conn, &t.copy_rows_sql(), &ch.rows).await?;
        }
        if ch.n_keys > 0 && !ch.replace_all {
            copy_bytes(conn, &t.copy_keys_sql(), &ch.keys).await?;
        }
        let mut sql = t.delete_sql(ch.replace_all, ch.n_keys > 0, ch.n_rows > 0 && !careful);
        if ch.n_rows > 0 && !careful {
            sql.push_str(&t.insert_sql());
        }
        sql.push_str(&format!(
            "UPDATE {} SET cursor = greatest(cursor, {}), applied_changes = applied_changes + {}{} WHERE tbl = {};",
            qualified(schema, TABLES_TABLE),
            ch.cursor.unwrap_or(0),
            ch.changes,
            match &ch.digest {
                Some(d) => format!(", digest = {}", quote_literal(d)),
                None => String::new(),
            },
            quote_literal(&t.source)
        ));
        exec(conn, &sql).await?;
        if careful && ch.n_rows > 0 {
            careful_insert(conn, t, ch, &mut applied).await?;
        }
        record_rejects(conn, schema, t, ch, &applied.refused).await?;
    }
    Ok(applied)
}

async fn careful_insert(
    conn: &mut PgConnection,
    t: &TargetTable,
    ch: &TableChange,
    applied: &mut Applied,
) -> Result<(), sqlx::Error> {
    // Rows holding another unique value than their key are cleared row by row too.
    let mut start = 0;
    for (i, end) in ch.row_ends.iter().enumerate() {
        let row = &ch.rows[start..*end];
        start = *end;
        exec(conn, "SAVEPOINT ferry_sync_row").await?;
        let res = async {
            exec(conn, &format!("TRUNCATE {}", t.stage)).await?;
            copy_bytes(conn, &t.copy_rows_sql(), row).await?;
            let mut sql = t.delete_sql(false, false, true);
            sql.push_str(&t.insert_sql());
            exec(conn, &sql).await
        }
        .await;
        match res {
            Ok(()) => exec(conn, "RELEASE SAVEPOINT ferry_sync_row").await?,
            Err(e) if classify(&e) == ErrorClass::Data => {
                exec(
                    conn,
                    "ROLLBACK TO SAVEPOINT ferry_sync_row; RELEASE SAVEPOINT ferry_sync_row",
                )
                .await?;
                applied.refused.push(Reject {
                    table: t.source.clone(),
                    key: ch.row_keys[i].clone(),
                    column: String::new(),
                    reason: format!("PostgreSQL refused the row: {}", describe(&e)),
                    bytes_hex: None,
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn record_rejects(
    conn: &mut PgConnection,
    schema: &str,
    t: &TargetTable,
    ch: &TableChange,
    refused: &[Reject],
) -> Result<(), sqlx::Error> {
    let rejects: Vec<&Reject> = ch
        .rejects
        .iter()
        .chain(refused.iter().filter(|r| r.table == t.source))
        .collect();
    let table = qualified(schema, REJECTS_TABLE);
    if !ch.resolved.is_empty() || !rejects.is_empty() {
        // A key applied again supersedes its earlier rejects, whatever the outcome now.
        let mut touched: Vec<String> = ch.resolved.clone();
        touched.extend(rejects.iter().map(|r| r.key.clone()));
        sqlx::query(&format!(
            "UPDATE {table} SET resolved_at = now() WHERE tbl = $1 AND resolved_at IS NULL AND row_key = ANY($2)"
        ))
        .bind(&t.source)
        .bind(&touched)
        .execute(&mut *conn)
        .await?;
    }
    if rejects.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Reject) -> String| rejects.iter().map(|r| f(r)).collect::<Vec<String>>();
    sqlx::query(&format!(
        "INSERT INTO {table} (tbl, row_key, column_name, reason, bytes_hex, seq)
         SELECT $1, *, $6 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[])"
    ))
    .bind(&t.source)
    .bind(col(|r| r.key.clone()))
    .bind(col(|r| r.column.clone()))
    .bind(col(|r| r.reason.clone()))
    .bind(
        rejects
            .iter()
            .map(|r| r.bytes_hex.clone())
            .collect::<Vec<Option<String>>>(),
    )
    .bind(ch.cursor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The rejects not yet resolved by a later, successful apply of the same key.
pub(crate) async fn open_rejects(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<Reject>, sqlx::Error> {
    if !table_exists(conn, schema, REJECTS_TABLE).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT tbl, row_key, column_name, reason, bytes_hex FROM {} WHERE resolved_at IS NULL ORDER BY tbl, row_key, column_name",
        qualified(schema, REJECTS_TABLE)
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Reject {
            table: r.get(0),
            key: r.get(1),
            column: r.get(2),
            reason: r.get(3),
            bytes_hex: r.get(4),
        })
        .collect())
}
