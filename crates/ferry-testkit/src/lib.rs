//! Test and demo support: a headless browser for the HTML reports ([`browser::chromium`]), scratch PostgreSQL databases and schemas that clean up after
//! themselves, a PostgreSQL server with pgvector ([`pgvector`]), generators of realistic
//! fixtures, the shared samples acceptance tests read ([`samples::require`]: an absent sample
//! fails under CI and is counted elsewhere), and the timestamp cases every timestamp grammar of
//! ferry is checked against ([`timestamps`]).
//!
//! Every PostgreSQL test in ferry gets its own database or schema with a unique name, so
//! tests run in parallel and leave nothing behind. A test never skips itself when the server
//! is missing: [`pg::ScratchDb::new`] panics with a sentence saying what is missing.
//!
//! ```no_run
//! # async fn demo() {
//! let db = ferry_testkit::pg::ScratchDb::new("example").await;
//! let mut conn = db.connect().await;
//! sqlx::query("CREATE TABLE t (id bigint)").execute(&mut conn).await.unwrap();
//! # }
//! ```

pub mod browser;
pub mod pg;
pub mod pgvector;
pub mod samples;
pub mod schema_gen;
pub mod sqlite_gen;
pub mod store_gen;
pub mod sync_writer;
pub mod timestamps;
