//! The whole API against both backends, with the same assertions: a SQLite temp file and a
//! PostgreSQL scratch schema (on the Debian server: `real[]` embeddings, no pgvector).

mod common;

use std::collections::BTreeSet;

use ferry_agentdb::{
    cosine_distance, AgentDb, AgentDbError, BackendKind, EmbeddingStorage, NewAgent, NewAnalysis,
    NewDevlog, NewMemory, NewMessage, NewTask, Page, StatusUpdate, EMBEDDING_DIMS,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

/// Reads what the API does not expose, straight from the database.
enum Raw {
    Sqlite(String),
    Postgres(String, String),
}

impl Raw {
    /// `(text, doc_sha256, doc_size)` of every JSON document the API wrote in `table`.
    async fn docs(&self, table: &str) -> Vec<(String, String, i64)> {
        match self {
            Raw::Sqlite(url) => {
                let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query(&format!(
                    "SELECT doc, doc_sha256, doc_size FROM {table} WHERE doc IS NOT NULL"
                ))
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
            }
            Raw::Postgres(url, schema) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(&format!(
                    "SELECT doc::text, doc_sha256, doc_size FROM \"{schema}\".{table} WHERE doc IS NOT NULL"
                ))
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
            }
        }
    }

    async fn container(&self, path: &str) -> serde_json::Value {
        let docs = match self {
            Raw::Sqlite(url) => {
                let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar::<_, String>("SELECT doc FROM documents WHERE document_path = ?")
                    .bind(path)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
            Raw::Postgres(url, schema) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar::<_, String>(&format!(
                    "SELECT doc::text FROM \"{schema}\".documents WHERE document_path = $1"
                ))
                .bind(path)
                .fetch_one(&mut c)
                .await
                .unwrap()
            }
        };
        serde_json::from_str(&docs).unwrap()
    }
}

#[tokio::test]
async fn the_api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(dir.path(), "api.sqlite3").await;
    let db = common::open(&url, None).await;
    assert_eq!(db.backend(), BackendKind::Sqlite);
    assert_eq!(db.embedding_storage(), EmbeddingStorage::Blob);
    guarded(db, Raw::Sqlite(url)).await;
}

#[tokio::test]
async fn the_api_on_postgres() {
    let schema = common::pg_schema("agentdb_api").await;
    let db = common::open(&schema.url, Some(&schema.name)).await;
    assert_eq!(db.backend(), BackendKind::Postgres);
    // The Debian server has no pgvector: the migration keeps `real[]`.
    assert_eq!(db.embedding_storage(), EmbeddingStorage::RealArray);
    guarded(db, Raw::Postgres(schema.url.clone(), schema.name.clone())).await;
}

/// Runs the suite in a task of its own and closes the pool whatever happens, so that a
/// failed assertion is reported instead of leaving a connection that holds locks while the
/// scratch schema is dropped.
async fn guarded(db: AgentDb, raw: Raw) {
    let inner = db.clone();
    let outcome = tokio::spawn(async move { exercise(&inner, &raw).await }).await;
    db.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn exercise(db: &AgentDb, raw: &Raw) {
    agents(db).await;
    tasks(db, raw).await;
    messages(db).await;
    devlogs_config_analyses(db).await;
    memory(db).await;
    // Every JSON document a row keeps is, byte for byte, the text its hash and size name.
    for table in [
        "agents",
        "agent_status",
        "tasks",
        "messages",
        "configurations",
        "project_analyses",
        "documents",
    ] {
        let docs = raw.docs(table).await;
        assert!(!docs.is_empty(), "{table} has documents");
        for (text, sha, size) in docs {
            assert_eq!(
                hex::encode(Sha256::digest(text.as_bytes())),
                sha,
                "{table}: {text}"
            );
            assert_eq!(text.len() as i64, size, "{table}: {text}");
        }
    }
    assert_eq!(db.retry_stats().gave_up, 0);
}

async fn agents(db: &AgentDb) {
    let a1 = db
        .register_agent(&NewAgent {
            display_name: Some("Agent One".into()),
            role: Some("captain".into()),
            status: Some("Active".into()),
            capabilities: Some(json!(["task_execution", "status_reporting"])),
            ..NewAgent::new("A-1")
        })
        .await
        .unwrap();
    assert_eq!(
        (a1.status.as_str(), a1.status_raw.as_deref()),
        ("online", Some("Active"))
    );
    assert_eq!(
        a1.source_path.as_deref(),
        Some("agent_workspaces/agents.json")
    );
    assert_eq!(
        a1.capabilities,
        Some(json!(["task_execution", "status_reporting"]))
    );
    assert!(a1.registered_at.is_some());
    let a2 = db.register_agent(&NewAgent::new("A-2")).await.unwrap();
    assert_eq!((a2.status.as_str(), a2.status_raw), ("unknown", None));
    let err = db.register_agent(&NewAgent::new("A-1")).await.unwrap_err();
    assert!(matches!(err, AgentDbError::AgentExists { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "agent A-1 is already registered (in agent_workspaces/agents.json)"
    );
    let err = db
        .register_agent(&NewAgent::new("queue"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid agent_id: `queue`"),
        "{err}"
    );
    let ids: Vec<String> = db
        .list_agents()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.agent_id)
        .collect();
    assert_eq!(ids, ["A-1", "A-2"]);

    assert_eq!(db.get_agent_status("A-1").await.unwrap(), None);
    let s = db
        .update_agent_status(
            "A-1",
            &StatusUpdate {
                current_task: Some("write the report".into()),
                performance: Some(json!({"tasks_completed": 3})),
                ..StatusUpdate::new("busy")
            },
        )
        .await
        .unwrap();
    assert_eq!(s.status, "busy");
    assert_eq!(s.source_path, "agent_workspaces/A-1/status.json");
    let first_update = s.last_update_at.unwrap();
    let s = db
        .update_agent_status("A-1", &StatusUpdate::new("Crashed"))
        .await
        .unwrap();
    assert_eq!(
        (s.status.as_str(), s.status_raw.as_deref()),
        ("error", Some("Crashed"))
    );
    // What the update did not name stays as it was.
    assert_eq!(s.current_task.as_deref(), Some("write the report"));
    assert_eq!(s.performance, Some(json!({"tasks_completed": 3})));
    assert!(s.last_update_at.unwrap() >= first_update);
    assert_eq!(db.get_agent_status("A-1").await.unwrap(), Some(s));
    let err = db
        .update_agent_status("nobody", &StatusUpdate::new("busy"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "agent nobody is not registered");
}

async fn tasks(db: &AgentDb, raw: &Raw) {
    let t0 = db
        .create_task(&NewTask {
            task_id: Some("T-0".into()),
            status: Some("To Do".into()),
            priority: Some("High".into()),
            description: Some("first".into()),
            ..NewTask::new("A-1", "first task")
        })
        .await
        .unwrap();
    assert_eq!(
        (t0.status.as_str(), t0.status_raw.as_deref()),
        ("pending", Some("To Do"))
    );
    assert_eq!(
        (t0.priority.as_str(), t0.priority_raw.as_deref()),
        ("high", Some("High"))
    );
    assert_eq!(
        (t0.source_path.as_deref(), t0.source_record),
        (Some("agent_workspaces/A-1/task_list.json"), 0)
    );
    let t1 = db
        .create_task(&NewTask {
            priority: Some("asap".into()),
            ..NewTask::new("A-1", "second task")
        })
        .await
        .unwrap();
    assert!(t1.task_id.starts_with("A-1-task-"), "{}", t1.task_id);
    assert_eq!(
        (t1.status.as_str(), t1.status_raw.as_deref()),
        ("pending", None)
    );
    assert_eq!((t1.priority.as_str(), t1.source_record), ("other", 1));
    let t2 = db
        .create_task(&NewTask {
            task_id: Some("T-2".into()),
            status: Some("wip".into()),
            ..NewTask::new("A-1", "third task")
        })
        .await
        .unwrap();
    assert_eq!((t2.status.as_str(), t2.source_record), ("in_progress", 2));

    let listed: Vec<String> = db
        .get_agent_tasks("A-1", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(listed, ["T-2", t1.task_id.as_str(), "T-0"], "newest first");
    assert_eq!(db.get_agent_tasks("A-1", 2).await.unwrap().len(), 2);

    let done = db.update_task_status("T-0", "done").await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.status_raw.as_deref()),
        ("completed", Some("done"))
    );
    assert!(done.completed_at.is_some() && done.updated_at.is_some());
    assert_eq!(
        (done.title.as_deref(), done.source_record),
        (Some("first task"), 0)
    );
    assert_eq!(db.get_task("T-0").await.unwrap(), Some(done));

    db.add_task_dependency("T-2", "T-0").await.unwrap();
    db.add_task_dependency("T-2", "T-0").await.unwrap();
    db.add_task_dependency("T-2", &t1.task_id).await.unwrap();
    let mut expected = vec!["T-0".to_owned(), t1.task_id.clone()];
    expected.sort();
    assert_eq!(db.get_task_dependencies("T-2").await.unwrap(), expected);
    let err = db.add_task_dependency("T-2", "T-2").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid depends_on: task T-2 cannot depend on itself"
    );
    let err = db.add_task_dependency("T-2", "T-404").await.unwrap_err();
    assert_eq!(err.to_string(), "task T-404 does not exist");
    let err = db
        .create_task(&NewTask {
            task_id: Some("T-0".into()),
            ..NewTask::new("A-1", "again")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AgentDbError::TaskExists { .. }), "{err}");

    // The file kept whole follows every change: three elements, the edits inside them.
    let file = raw.container("agent_workspaces/A-1/task_list.json").await;
    let items = file.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["status"], "done");
    assert_eq!(items[2]["depends_on"], json!(["T-0", t1.task_id]));

    // Writers of one file at the same time are serialised: 16 tasks, 16 distinct indexes.
    let mut handles = Vec::new();
    for i in 0..16 {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            db.create_task(&NewTask::new("A-2", format!("parallel {i}")))
                .await
                .unwrap()
                .source_record
        }));
    }
    let mut records = BTreeSet::new();
    for h in handles {
        records.insert(h.await.unwrap());
    }
    assert_eq!(records, (0..16).collect());
    let file = raw.container("agent_workspaces/A-2/task_list.json").await;
    assert_eq!(file.as_array().unwrap().len(), 16);
}

async fn messages(db: &AgentDb) {
    let sent = db
        .send_message(&NewMessage {
            message_type: Some("task".into()),
            subject: Some("report".into()),
            priority: Some("urgent".into()),
            ..NewMessage::new("A-1", "A-2", "please review")
        })
        .await
        .unwrap();
    assert!(sent
        .inbox
        .message_id
        .starts_with("agent_workspaces/A-2/inbox/"));
    assert!(sent.inbox.message_id.ends_with("_A-1_to_A-2.json"));
    let outbox = sent.outbox.clone().unwrap();
    assert!(outbox
        .message_id
        .starts_with("agent_workspaces/A-1/outbox/"));
    assert_eq!(
        (
            sent.inbox.priority.as_str(),
            sent.inbox.priority_raw.as_deref()
        ),
        ("high", Some("urgent"))
    );
    assert_eq!(sent.inbox.message_type.as_deref(), Some("task"));
    assert_eq!(sent.inbox.status.as_deref(), Some("pending"));
    assert!(sent.inbox.sent_at.is_some());
    assert_eq!(
        db.get_outbox("A-1", Page::first(10)).await.unwrap(),
        vec![outbox]
    );

    // A sender that is not an agent has no outbox.
    let from_system = db
        .send_message(&NewMessage::new("system", "A-2", "hello"))
        .await
        .unwrap();
    assert_eq!(from_system.outbox, None);
    for i in 0..5 {
        db.send_message(&NewMessage::new("A-1", "A-2", format!("note {i}")))
            .await
            .unwrap();
    }
    // Pages of 3, newest first, nothing twice, nothing missed.
    let mut seen = Vec::new();
    let mut page = Page::first(3);
    loop {
        let items = db.get_inbox("A-2", page).await.unwrap();
        if items.is_empty() {
            break;
        }
        assert!(items.len() <= 3);
        seen.extend(items);
        page = page.next();
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[0].body.as_deref(), Some("note 4"));
    assert_eq!(seen[6].body.as_deref(), Some("please review"));
    let ids: BTreeSet<&str> = seen.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), 7);

    let moved = db.mark_processed(&sent.inbox.message_id).await.unwrap();
    assert_eq!(moved.folder, "processed");
    assert_eq!(
        moved.message_id,
        sent.inbox.message_id.replace("/inbox/", "/processed/")
    );
    assert_eq!(moved.status.as_deref(), Some("processed"));
    assert_eq!(moved.body.as_deref(), Some("please review"));
    assert_eq!(db.get_inbox("A-2", Page::first(50)).await.unwrap().len(), 6);
    assert_eq!(db.get_message(&sent.inbox.message_id).await.unwrap(), None);
    let err = db.mark_processed(&moved.message_id).await.unwrap_err();
    assert!(matches!(err, AgentDbError::NotInInbox { .. }), "{err}");
    let err = db
        .send_message(&NewMessage::new("A-1", "nobody", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "agent nobody is not registered");
}

async fn devlogs_config_analyses(db: &AgentDb) {
    let d = db
        .append_devlog(&NewDevlog {
            agent_id: Some("A-1".into()),
            title: "Sync \"phase\" notes: done".into(),
            body: "# Heading\n\nSome text.\n".into(),
            tags: vec!["devlog".into(), "sync".into()],
        })
        .await
        .unwrap();
    assert!(d.devlog_id.starts_with("agent_workspaces/A-1/devlogs/"));
    assert_eq!(d.title.as_deref(), Some("Sync \"phase\" notes: done"));
    assert_eq!(d.tags, Some(json!(["devlog", "sync"])));
    assert_eq!(d.body, "# Heading\n\nSome text.\n");
    let global = db
        .append_devlog(&NewDevlog {
            title: "store-wide".into(),
            body: "text".into(),
            ..NewDevlog::default()
        })
        .await
        .unwrap();
    assert!(
        global.devlog_id.starts_with("devlogs/"),
        "{}",
        global.devlog_id
    );
    assert_eq!(global.agent_id, None);
    assert_eq!(db.list_devlogs(Some("A-1"), 10).await.unwrap(), vec![d]);
    assert_eq!(db.list_devlogs(None, 10).await.unwrap().len(), 2);

    assert_eq!(db.get_config("app").await.unwrap(), None);
    db.set_config("app", &json!({"retries": 3, "nested": {"b": [1, 2]}}))
        .await
        .unwrap();
    db.set_config("app", &json!({"retries": 5})).await.unwrap();
    assert_eq!(
        db.get_config("app").await.unwrap(),
        Some(json!({"retries": 5}))
    );
    let err = db.set_config("../x", &json!(1)).await.unwrap_err();
    assert!(err.to_string().starts_with("invalid name:"), "{err}");

    let first = db
        .record_analysis(&NewAnalysis {
            project: "ferry".into(),
            analysis_type: "structure".into(),
            result: json!({"modules": 12}),
        })
        .await
        .unwrap();
    let second = db
        .record_analysis(&NewAnalysis {
            project: "ferry".into(),
            analysis_type: "deps".into(),
            result: json!({"crates": 9}),
        })
        .await
        .unwrap();
    let latest = db.latest_analysis("ferry", None).await.unwrap().unwrap();
    assert_eq!(latest.analysis_id, second.analysis_id);
    assert_eq!(latest.document.unwrap()["result"], json!({"crates": 9}));
    let of_type = db
        .latest_analysis("ferry", Some("structure"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(of_type.analysis_id, first.analysis_id);
    assert_eq!(of_type.created_at, first.created_at);
    assert_eq!(db.latest_analysis("other", None).await.unwrap(), None);
}

async fn memory(db: &AgentDb) {
    let mut ids = Vec::new();
    for i in 0..24u64 {
        let agent = if i % 2 == 0 { "A-1" } else { "A-2" };
        ids.push(
            db.store_memory(&NewMemory {
                agent_id: Some(agent.into()),
                content: format!("memory {i}"),
                embedding: common::embedding(i),
                metadata: Some(json!({"i": i})),
            })
            .await
            .unwrap(),
        );
    }
    // The nearest memory to a memory's own embedding is itself, at distance 0.
    let query = common::embedding(6);
    let hits = db.search_memory(None, &query, 5).await.unwrap();
    assert_eq!(hits[0].memory_id, ids[6]);
    assert!(hits[0].distance.abs() < 1e-6, "{}", hits[0].distance);
    assert_eq!(hits[0].metadata, Some(json!({"i": 6})));
    // The top 5 are the exact top 5, computed here.
    let qn = query
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    let mut exact: Vec<(f64, i64)> = (0..24u64)
        .map(|i| {
            (
                cosine_distance(&query, qn, &common::embedding(i)).unwrap(),
                ids[i as usize],
            )
        })
        .collect();
    exact.sort_by(|a, b| a.0.total_cmp(&b.0));
    let got: Vec<i64> = hits.iter().map(|h| h.memory_id).collect();
    let want: Vec<i64> = exact.iter().take(5).map(|e| e.1).collect();
    assert_eq!(got, want);
    for (h, e) in hits.iter().zip(&exact) {
        assert!((h.distance - e.0).abs() < 1e-6, "{} vs {}", h.distance, e.0);
    }
    let mine = db.search_memory(Some("A-2"), &query, 100).await.unwrap();
    assert_eq!(mine.len(), 12);
    assert!(mine.iter().all(|h| h.agent_id.as_deref() == Some("A-2")));
    assert!(mine.windows(2).all(|w| w[0].distance <= w[1].distance));
    let err = db.search_memory(None, &[1.0; 3], 5).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid query: has 3 values; embeddings have {EMBEDDING_DIMS}")
    );
}

#[tokio::test]
async fn bad_databases_get_one_sentence_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite3");
    let err = AgentDb::connect(
        &format!("sqlite://{}", missing.display()),
        Default::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot open {}: no such file; create it with ferry's migrations first (cargo xtask migrate up)",
            missing.display()
        )
    );
    // A SQLite file without ferry's schema: the first missing table is named.
    let empty = dir.path().join("empty.sqlite3");
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", empty.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE agents (agent_id TEXT)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let err = AgentDb::connect(&format!("sqlite://{}", empty.display()), Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} has no table agent_status; apply ferry's migrations first (cargo xtask migrate up)",
            empty.display()
        )
    );
    let err = AgentDb::connect("mysql://u:hunter2@h/db", Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported database url `mysql://u:***@h/db`: use sqlite://PATH or postgres://USER@HOST/DB"
    );
    // Nothing listens on port 1: the error names the target, never the password.
    let err = AgentDb::connect(
        "postgres://ferry:s3cret-pw@127.0.0.1:1/db",
        Default::default(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot open schema \"public\" of postgres://ferry:***@127.0.0.1:1/db: "),
        "{text}"
    );
    assert!(!text.contains("s3cret-pw"), "{text}");
}
