//! Shared helpers of the agentdb tests: databases with ferry's schema, made the way the
//! migrator makes them, on SQLite and on PostgreSQL.

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]

use std::path::Path;

use ferry_agentdb::{AgentDb, AgentDbOptions};
use ferry_schema::{migrate_to_head, Database, MigrationSet};

/// A SQLite file at `dir/name` with ferry's schema at head; returns its URL.
pub async fn sqlite_url(dir: &Path, name: &str) -> String {
    let url = format!("sqlite://{}", dir.join(name).display());
    migrate(&url, None, ferry_migrations::SQLITE).await;
    url
}

/// Applies ferry's migrations of one dialect to `url` (and `schema`).
pub async fn migrate(url: &str, schema: Option<&str>, files: &[(&str, &str)]) {
    let mut db = Database::connect(url, schema)
        .await
        .expect("open for migration");
    let set = MigrationSet::from_embedded(files).expect("embedded migrations");
    migrate_to_head(&mut db, &set)
        .await
        .expect("migrate to head");
    db.close().await;
}

/// A scratch PostgreSQL schema with ferry's schema at head.
pub async fn pg_schema(prefix: &str) -> ferry_testkit::pg::ScratchSchema {
    let schema = ferry_testkit::pg::ScratchSchema::new(prefix).await;
    migrate(&schema.url, Some(&schema.name), ferry_migrations::POSTGRES).await;
    schema
}

pub async fn open(url: &str, schema: Option<&str>) -> AgentDb {
    let mut options = AgentDbOptions::default();
    if let Some(s) = schema {
        options.schema = s.to_owned();
    }
    AgentDb::connect(url, options).await.expect("open AgentDb")
}

/// A deterministic embedding: a point on the unit sphere picked by `seed`.
pub fn embedding(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..ferry_agentdb::EMBEDDING_DIMS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}
