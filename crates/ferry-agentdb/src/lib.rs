//! The data API an application moves onto after ferry's migration: agents, tasks, messages,
//! devlogs, configuration, project analyses and agent memory, over ferry's schema
//! (`migrations/sqlite/`, `migrations/postgres/`), on SQLite or PostgreSQL, chosen by the URL.
//!
//! - **One API, two backends.** `sqlite://PATH` (a pool in WAL mode with a busy timeout and
//!   foreign keys on) or `postgres://…` with a schema ([`AgentDbOptions::schema`]). The same
//!   calls, the same answers.
//! - **Retries.** Each call is one transaction; a busy or locked SQLite, a PostgreSQL
//!   serialization failure or deadlock, or a lost connection runs it again with jittered
//!   exponential backoff ([`RetryPolicy`]). Writers of the same file are serialised.
//! - **Rows an import cannot tell apart from its own.** Every write builds the document the
//!   old application would have written — the member of `agents.json`, the element of
//!   `task_list.json`, the message file, the Markdown devlog — at the path it would have
//!   written it (`source_path`), and derives the row's columns from that document exactly as
//!   the import's built-in profile does (same pointers, vocabularies, timestamp
//!   normalisation, `doc`, `doc_sha256`, `doc_size`). Edits change the members they concern
//!   in the document's text and leave every other byte. So the way back after cutover can
//!   write each row's document back into the store. On PostgreSQL a JSON document is kept
//!   in jsonb's own rendering, so `doc::text` hashes to `doc_sha256`. Two differences from
//!   an import remain: `task_dependencies` rows (no profile rule fills that table; the list
//!   is also in the task's `depends_on`), and documents over the snapshot threshold stay in
//!   the row when no state directory is given ([`AgentDbOptions::state_dir`]).
//! - **Agent memory** with 1536-dimension embeddings and top-k cosine search: pgvector's
//!   `<=>` where the column is `vector`, SQL over `real[]` where the server has no pgvector,
//!   Rust over the BLOBs on SQLite.
//! - [`harness`] times the typical reads (p50/p95/p99) and runs simulated agents
//!   concurrently, for phase 5's report and `cargo xtask bench agentdb`.
//!
//! The schema is not created here: ferry-schema's migrator owns it, with its ledger, lock
//! and checksums (`cargo xtask migrate up --db …`, or phases 1 and 3). [`AgentDb::connect`]
//! checks the tables are there and says how to create them when they are not.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! use ferry_agentdb::{AgentDb, AgentDbOptions, NewAgent, NewTask, Page, NewMessage};
//!
//! // A SQLite file with ferry's schema (here made on the spot with ferry-schema).
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("app.sqlite3").display());
//! let mut schema = ferry_schema::Database::connect(&url, None).await?;
//! let set = ferry_schema::MigrationSet::from_embedded(ferry_migrations::SQLITE)?;
//! ferry_schema::migrate_to_head(&mut schema, &set).await?;
//! schema.close().await;
//!
//! let db = AgentDb::connect(&url, AgentDbOptions::default()).await?;
//! db.register_agent(&NewAgent { status: Some("Active".into()), ..NewAgent::new("Agent-1") }).await?;
//! db.register_agent(&NewAgent::new("Agent-2")).await?;
//! let task = db.create_task(&NewTask::new("Agent-1", "Write the report")).await?;
//! assert_eq!(task.source_path.as_deref(), Some("agent_workspaces/Agent-1/task_list.json"));
//! db.update_task_status(&task.task_id, "done").await?;
//! db.send_message(&NewMessage::new("Agent-1", "Agent-2", "report is ready")).await?;
//! let inbox = db.get_inbox("Agent-2", Page::first(20)).await?;
//! assert_eq!(inbox[0].body.as_deref(), Some("report is ready"));
//! let tasks = db.get_agent_tasks("Agent-1", 10).await?;
//! assert_eq!((tasks[0].status.as_str(), tasks[0].status_raw.as_deref()), ("completed", Some("done")));
//! db.close().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

mod agents;
mod backend;
mod db;
mod error;
pub mod harness;
mod jsontext;
mod layout;
mod mapping;
mod memory;
mod messages;
mod model;
mod records;
mod tasks;
pub mod vocab;

pub use backend::{BackendKind, EmbeddingStorage};
pub use db::{AgentDb, AgentDbOptions, RetryPolicy, RetryStats, TABLES};
pub use error::{AgentDbError, Result};
pub use memory::cosine_distance;
pub use model::{
    Agent, AgentStatus, Analysis, Devlog, MemoryHit, Message, NewAgent, NewAnalysis, NewDevlog,
    NewMemory, NewMessage, NewTask, Page, SentMessage, StatusUpdate, Task, EMBEDDING_DIMS,
};
