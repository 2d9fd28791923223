//! Scratch PostgreSQL databases and schemas, dropped when the guard goes out of scope.

use std::sync::atomic::{AtomicU64, Ordering};

use ferry_core::sql::quote_ident;
use sqlx::postgres::PgConnection;
use sqlx::Connection;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The server tests run against (see [`ferry_core::env_vars::test_postgres_url`]).
pub fn server_url() -> String {
    ferry_core::env_vars::test_postgres_url()
}

/// A name unique across processes and threads: `ferry_t_<prefix>_<pid>_<time>_<n>`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    format!("ferry_t_{clean}_{}_{nanos}_{n}", std::process::id())
}

/// Connects to the test server's maintenance database, or panics saying what is missing.
pub async fn admin() -> PgConnection {
    let url = server_url();
    match PgConnection::connect(&url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {} ({}); start it (pg_ctlcluster 15 main start) or set {} to a server tests may create databases on",
            ferry_core::redact::redact(&url),
            ferry_core::redact::redact(&e.to_string()),
            ferry_core::env_vars::FERRY_TEST_POSTGRES_URL
        ),
    }
}

/// Replaces the database of a `postgres://…/db?params` URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A database of its own, dropped (with `FORCE`) when this guard is dropped.
#[derive(Debug)]
pub struct ScratchDb {
    pub name: String,
    pub url: String,
    /// The server's maintenance-database URL the database is dropped through.
    server: String,
}

impl ScratchDb {
    pub async fn new(prefix: &str) -> Self {
        Self::on(&server_url(), prefix).await
    }

    /// A scratch database on another server (`server` is a URL of its maintenance
    /// database), such as the pgvector server of [`crate::pgvector`].
    pub async fn on(server: &str, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let mut conn = PgConnection::connect(server).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {} ({})",
                ferry_core::redact::redact(server),
                ferry_core::redact::redact(&e.to_string())
            )
        });
        sqlx::query(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create scratch database {name}: {e}"));
        let _ = conn.close().await;
        let url = with_database(server, &name);
        Self {
            name,
            url,
            server: server.to_owned(),
        }
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to scratch database {}: {e}", self.name))
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        );
        run_detached(sql, self.server.clone());
    }
}

/// A schema of its own in the test server's default database, dropped with `CASCADE`.
#[derive(Debug)]
pub struct ScratchSchema {
    pub name: String,
    /// The database URL (the schema is not part of it).
    pub url: String,
}

impl ScratchSchema {
    pub async fn new(prefix: &str) -> Self {
        let name = unique_name(prefix);
        let mut conn = admin().await;
        sqlx::query(&format!("CREATE SCHEMA {}", quote_ident(&name)))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create scratch schema {name}: {e}"));
        Self {
            name,
            url: server_url(),
        }
    }

    /// A connection whose `search_path` is this schema.
    pub async fn connect(&self) -> PgConnection {
        let mut conn = admin().await;
        sqlx::query(&format!("SET search_path TO {}", quote_ident(&self.name)))
            .execute(&mut conn)
            .await
            .expect("set search_path");
        conn
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&self.name));
        run_detached(sql, server_url());
    }
}

/// Runs one statement on its own thread and runtime, so a guard can clean up from `Drop`
/// inside or outside an async context.
fn run_detached(sql: String, url: String) {
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use sqlx::ConnectOptions as _;
            let options = match url.parse::<sqlx::postgres::PgConnectOptions>() {
                Ok(o) => o.disable_statement_logging(),
                Err(_) => return,
            };
            if let Ok(mut conn) = PgConnection::connect_with(&options).await {
                let _ = sqlx::query(&sql).execute(&mut conn).await;
                let _ = conn.close().await;
            }
        });
    });
    let _ = handle.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=off", "x"),
            "postgres://u@h:5432/x?sslmode=off"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    #[tokio::test]
    async fn scratch_database_exists_then_is_dropped() {
        let name;
        {
            let db = ScratchDb::new("testkit").await;
            name = db.name.clone();
            let mut conn = db.connect().await;
            let one: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(one, 1);
            conn.close().await.unwrap();
        }
        let mut admin = admin().await;
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(left, 0);
    }
}
