//! PostgreSQL connections for a transfer: options, session settings, error classes and
//! reconnection with backoff.

use std::str::FromStr;
use std::time::{Duration, Instant};

use ferry_core::pg::PgTarget;
use ferry_core::redact::SecretUrl;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::error::{clean, Result, TransferError};

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
            attempts: 6,
            first_backoff: Duration::from_millis(250),
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

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The connection is gone or the server is shutting down: reconnect and retry.
    Connection,
    /// A value or row PostgreSQL refused (data exceptions, integrity violations): isolate
    /// the row and reject it.
    Data,
    /// Anything else: stop.
    Other,
}

pub fn classify(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorClass::Connection,
        sqlx::Error::Protocol(_) => ErrorClass::Connection,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(code)
                if code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "53300"
                    || code == "40001"
                    || code == "40P01" =>
            {
                ErrorClass::Connection
            }
            Some(code) if code.starts_with("22") || code.starts_with("23") => ErrorClass::Data,
            _ => ErrorClass::Other,
        },
        _ => ErrorClass::Other,
    }
}

/// The message of a driver error, with PostgreSQL's detail and context, redacted.
pub fn describe(e: &sqlx::Error) -> String {
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

/// The column a PostgreSQL error names, from its fields or its COPY context.
pub fn error_column(e: &sqlx::Error) -> Option<String> {
    let pg = e
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    if let Some(c) = pg.column() {
        return Some(c.to_owned());
    }
    let context = pg.r#where()?;
    let after = context.split(", column ").nth(1)?;
    Some(after.split(':').next()?.to_owned())
}

/// Runs SQL text (one or more statements, no parameters) with the simple query protocol.
pub async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await.map(|_| ())
}

/// How ferry connects to the [`PgTarget`] it writes: connection options, session settings
/// and the retry policy.
#[derive(Debug, Clone)]
pub struct Connector {
    pub url: SecretUrl,
    pub schema: String,
    options: PgConnectOptions,
    pub retry: RetryPolicy,
}

impl Connector {
    pub fn new(target: &PgTarget, retry: RetryPolicy, application_name: &str) -> Result<Self> {
        let url = &target.url;
        let schema = &target.schema;
        let options = PgConnectOptions::from_str(url.expose())
            .map_err(|e| TransferError::Postgres {
                url: url.to_string(),
                context: "reading the URL".into(),
                message: clean(e),
            })?
            .application_name(application_name)
            .disable_statement_logging();
        Ok(Self {
            url: url.clone(),
            schema: schema.to_owned(),
            options,
            retry,
        })
    }

    pub fn err(&self, context: impl Into<String>, e: &sqlx::Error) -> TransferError {
        TransferError::Postgres {
            url: self.url.to_string(),
            context: context.into(),
            message: describe(e),
        }
    }

    /// Connects, retrying with backoff while the failure looks transient.
    pub async fn connect(&self, context: &str) -> Result<PgConnection> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match self.connect_once().await {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    let transient = classify(&e) == ErrorClass::Connection
                        || matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("57P03"));
                    if !transient {
                        return Err(self.err(context, &e));
                    }
                    if attempt >= self.retry.attempts {
                        return Err(TransferError::Unreachable {
                            url: self.url.to_string(),
                            context: context.to_owned(),
                            attempts: attempt,
                            seconds: started.elapsed().as_secs_f64(),
                            message: describe(&e),
                        });
                    }
                    attempt += 1;
                    tracing::warn!(
                        attempt,
                        "cannot reach PostgreSQL ({}); retrying",
                        describe(&e)
                    );
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
            }
        }
    }

    async fn connect_once(&self) -> Result<PgConnection, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        // Commits are made durable by the checkpoint protocol, not by each fsync: a server
        // crash may lose the last chunks, data and checkpoint together, and they are copied
        // again. This saved ~30% on many small commits.
        exec(
            &mut conn,
            "SET synchronous_commit = off; SET client_min_messages = warning; SET maintenance_work_mem = '256MB'",
        ).await?;
        // lz4 compresses large values (TOAST) several times faster than the default pglz;
        // only how values are stored changes, not the schema. Servers built without lz4
        // refuse the setting, and keep pglz.
        let _ = exec(&mut conn, "SET default_toast_compression = 'lz4'").await;
        Ok(conn)
    }

    /// Closes a connection politely, ignoring errors (it may be broken already).
    pub async fn close(conn: PgConnection) {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 6,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (1..=6).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 400, 500, 500]);
    }
}
