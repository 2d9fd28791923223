//! A connection to the database being migrated: a SQLite file or a PostgreSQL schema.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ferry_core::redact::redact;
use ferry_core::sqlite_file::{self, Found};
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
        Self::connect_as(url, schema, true).await
    }

    /// Like [`Database::connect`], but a SQLite file that does not exist is an error and is
    /// never created: for commands that only read (status, plan, verify, dump, diff) or
    /// that cannot apply to an empty database (down, repair).
    pub async fn connect_existing(url: &str, schema: Option<&str>) -> Result<Self> {
        Self::connect_as(url, schema, false).await
    }

    async fn connect_as(url: &str, schema: Option<&str>, create: bool) -> Result<Self> {
        if let Some(path) = sqlite_path(url) {
            return if create {
                Self::open_sqlite(path).await
            } else {
                Self::open_sqlite_existing(path).await
            };
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::open_postgres(url, schema.unwrap_or("public")).await;
        }
        Err(SchemaError::BadUrl(redact(url).into_owned()))
    }

    /// Opens (creating if missing) a SQLite file with foreign keys enforced.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        if sqlite_file::inspect(path)? == Found::Missing {
            // SQLite's own message for this is "unable to open database file".
            if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !folder.is_dir() {
                    return Err(SchemaError::NoFolder {
                        path: path.to_path_buf(),
                        folder: folder.to_path_buf(),
                    });
                }
            }
        }
        Self::open_sqlite_with(path, true).await
    }

    /// Opens a SQLite file that must exist; never creates one.
    pub async fn open_sqlite_existing(path: &Path) -> Result<Self> {
        sqlite_file::require(path)?;
        Self::open_sqlite_with(path, false).await
    }

    async fn open_sqlite_with(path: &Path, create: bool) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .disable_statement_logging();
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| SchemaError::Connect {
                target: path.display().to_string(),
                message: driver_message(&e),
            })?;
        // The header was checked, but a file can be damaged past it: read the schema now so
        // that fails here, with the file's name, and not in the middle of a migration.
        sqlx::query("SELECT count(*) FROM sqlite_schema")
            .execute(&mut conn)
            .await
            .map_err(|e| SchemaError::Connect {
                target: path.display().to_string(),
                message: driver_message(&e),
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
        let mut conn = PgConnection::connect_with(options).await.map_err(|e| {
            // A server that answers but has no such database is not "unreachable".
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("3D000") {
                return SchemaError::NoDatabase {
                    target: shown.to_owned(),
                    database: options.get_database().unwrap_or_default().to_owned(),
                };
            }
            SchemaError::Connect {
                target: shown.to_owned(),
                message: driver_message(&e),
            }
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

/// The path of a `sqlite://PATH` or `sqlite:PATH` URL.
pub fn sqlite_path(url: &str) -> Option<&Path> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(Path::new)
}

/// A driver error as a person reads it: the database's own message without sqlx's
/// "error returned from database: " prefix or SQLite's "(code: N)", password masked.
pub(crate) fn driver_message(e: &sqlx::Error) -> String {
    let text = match e.as_database_error() {
        Some(d) => d.message().to_owned(),
        None => e.to_string(),
    };
    redact(&text).into_owned()
}
