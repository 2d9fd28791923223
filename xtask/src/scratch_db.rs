//! A scratch PostgreSQL database on the test server (`FERRY_TEST_POSTGRES_URL`) for a bench
//! to work in: created under a unique name, dropped when the bench is done with it.

use anyhow::Context;
use sqlx::postgres::PgConnection;
use sqlx::Connection;

pub(crate) struct ScratchDb {
    admin: PgConnection,
    /// The database's name.
    pub(crate) name: String,
    /// Its URL.
    pub(crate) url: String,
}

impl ScratchDb {
    /// Creates a database named after `prefix` and made unique.
    pub(crate) async fn create(prefix: &str) -> anyhow::Result<Self> {
        let server = ferry_core::env_vars::test_postgres_url();
        let name = ferry_testkit::pg::unique_name(prefix);
        let mut admin = PgConnection::connect(&server).await.with_context(|| {
            format!(
                "cannot connect to PostgreSQL at {}",
                ferry_core::redact::redact(&server)
            )
        })?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .context("cannot create the scratch database")?;
        let url = ferry_testkit::pg::with_database(&server, &name);
        Ok(Self { admin, name, url })
    }

    /// Drops it, whatever the bench's outcome; a failure is a warning.
    pub(crate) async fn drop_it(mut self) {
        let dropped = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut self.admin)
        .await;
        if let Err(e) = dropped {
            eprintln!(
                "warning: could not drop scratch database {}: {e}",
                self.name
            );
        }
    }
}
