//! A connection to the database being migrated: a SQLite file or a PostgreSQL schema.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ferry_core::redact::redact;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::error::{Result, SchemaError};

/// Which SQL dialect a database speaks, and which migration directory it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The folder name under `migrations/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// An open database.
#[derive(Debug)]
pub enum Database {
    Sqlite {
        conn: SqliteConnection,
        path: PathBuf,
    },
    Postgres {
        conn: PgConnection,
        options: Box<PgConnectOptions>,
        schema: String,
        /// The URL with its password masked, for messages.
        shown: String,
    },
}

/// How long SQLite waits for another writer before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

impl Database {
    /// Opens `sqlite://PATH` (created if missing), `sqlite:PATH`, or `postgres://…`. For
    /// PostgreSQL, `schema` is the schema migrated (default `public`); it is created by
    /// `up` when missing and is the connection's `search_path`.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Self::open_sqlite(Path::new(path)).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::open_postgres(url, schema.unwrap_or("public")).await;
        }
        Err(SchemaError::BadUrl(redact(url).into_owned()))
    }

    /// Opens (creating if missing) a SQLite file with foreign keys enforced.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .disable_statement_logging();
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| SchemaError::Connect {
                target: path.display().to_string(),
                message: e.to_string(),
            })?;
        // A file that is not SQLite opens fine and fails on first read: find out now.
        sqlx::query("SELECT count(*) FROM sqlite_schema")
            .execute(&mut conn)
            .await
            .map_err(|e| SchemaError::Connect {
                target: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Self::Sqlite {
            conn,
            path: path.to_path_buf(),
        })
    }

    async fn open_postgres(url: &str, schema: &str) -> Result<Self> {
        ferry_core::config::check_identifier(schema).map_err(|why| SchemaError::Connect {
            target: redact(url).into_owned(),
            message: format!("schema name: {why}"),
        })?;
        let shown = redact(url).into_owned();
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| SchemaError::Connect {
                target: shown.clone(),
                message: redact(&e.to_string()).into_owned(),
            })?
            .disable_statement_logging();
        let conn = Self::pg_connect(&options, schema, &shown).await?;
        Ok(Self::Postgres {
            conn,
            options: Box::new(options),
            schema: schema.to_owned(),
            shown,
        })
    }

    pub(crate) async fn pg_connect(
        options: &PgConnectOptions,
        schema: &str,
        shown: &str,
    ) -> Result<PgConnection> {
        let mut conn =
            PgConnection::connect_with(options)
                .await
                .map_err(|e| SchemaError::Connect {
                    target: shown.to_owned(),
                    message: redact(&e.to_string()).into_owned(),
                })?;
        sqlx::raw_sql(&format!(
            "SET search_path TO {}, public; SET client_min_messages TO warning",
            quote_ident(schema)
        ))
        .execute(&mut conn)
        .await
        .map_err(|e| SchemaError::db(format!("setting search_path on {shown}"), e))?;
        Ok(conn)
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite { .. } => Dialect::Sqlite,
            Self::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// The database in words, password masked: a path, or `schema "x" of postgres://…`.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => path.display().to_string(),
            Self::Postgres { schema, shown, .. } => format!("schema \"{schema}\" of {shown}"),
        }
    }

    /// The SQLite connection, when this is SQLite.
    pub fn sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match self {
            Self::Sqlite { conn, .. } => Some(conn),
            Self::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL connection, when this is PostgreSQL.
    pub fn postgres(&mut self) -> Option<&mut PgConnection> {
        match self {
            Self::Postgres { conn, .. } => Some(conn),
            Self::Sqlite { .. } => None,
        }
    }

    /// Closes the connection cleanly.
    pub async fn close(self) {
        match self {
            Self::Sqlite { conn, .. } => {
                let _ = conn.close().await;
            }
            Self::Postgres { conn, .. } => {
                let _ = conn.close().await;
            }
        }
    }
}

pub use ferry_core::sql::{quote_ident, quote_literal};
