//! ferry's own schema (migrations 0001 on both sides) validates equal when the data is equal
//! although every representation differs (TEXT timestamps vs timestamptz, JSON text vs jsonb,
//! INTEGER vs bigint, REAL vs double precision, BLOB embedding vs real[]), and every kind of
//! real change is reported with its key and column.

mod common;

use common::{assert_equal, only_difference, Fixture};
use ferry_validate::{ConstraintKind, Verdict};

fn migration(files: &[(&str, &str)]) -> String {
    files
        .iter()
        .find(|(name, _)| *name == "0001_agent_store.up.sql")
        .map(|(_, sql)| (*sql).to_owned())
        .expect("migration 0001 is embedded")
}

/// The embedding of memory 1: 1536 floats, little-endian in SQLite, real[] in PostgreSQL.
fn embedding() -> Vec<f32> {
    (0..1536).map(|i| (i as f32) * 0.001 - 0.5).collect()
}

const SQLITE_ROWS: &str = r#"
INSERT INTO agents (agent_id, display_name, role, status, status_raw, capabilities, registered_at, updated_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('agent-1', 'Agent One', NULL, 'online', 'Online', '{"tools": ["git", "bash"], "max": 3}', '2025-08-11T15:41:04.776422Z', '2025-08-11 15:41:05', 'agents.json', 0, '{"id": "agent-1", "name": "Agent One"}', 'aa', 40),
  ('agent-2', 'Agent Two', 'reviewer', 'idle', 'IDLE', NULL, '2025-08-12T00:00:00Z', NULL, 'agents.json', 1, '{"id":"agent-2","weight":1.50}', 'bb', 16),
  ('Agent-3', 'Ünïcödé 😀', 'writer', 'busy', NULL, '[]', '2025-08-12T10:00:00.5+02:00', NULL, 'agents.json', 2, '{"a":1,"a":2}', 'cc', 13);
INSERT INTO agent_status (agent_id, status, status_raw, current_task, last_update_at, performance, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('agent-1', 'online', 'online', 'task-1', '2025-08-11T15:41:04Z', '{"done": 3, "ratio": 0.75}', 'agent_workspaces/Agent-1/status.json', 0, '{"status":"online"}', 'dd', 19);
INSERT INTO tasks (task_id, agent_id, parent_task_id, title, description, status, status_raw, priority, priority_raw, created_at, updated_at, completed_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('task-1', 'agent-1', NULL, 'Migrate', 'Move the store', 'in_progress', 'In Progress', 'high', 'HIGH', '2025-08-10T09:00:00Z', '2025-08-10T10:00:00.000001Z', NULL, 'task_list.json', 0, '{"id":"task-1"}', 'ee', 15),
  ('task-2', 'agent-2', 'task-1', 'Review', '', 'pending', NULL, 'normal', NULL, '2025-08-10T09:30:00Z', NULL, NULL, 'task_list.json', 1, '{"id":"task-2"}', 'ff', 15),
  ('task-3', NULL, 'task-1', 'Ship', 'trailing space ', 'completed', 'done', 'low', NULL, '2025-08-10 11:00:00', NULL, '2025-08-11T11:00:00Z', 'task_list.json', 2, '{"id":"task-3"}', 'gg', 15);
INSERT INTO task_dependencies (task_id, depends_on_task_id) VALUES ('task-2', 'task-1'), ('task-3', 'task-1'), ('task-3', 'task-2');
INSERT INTO messages (message_id, mailbox_agent_id, folder, from_agent, to_agent, message_type, priority, priority_raw, subject, body, status, sent_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('msg-1', 'agent-2', 'inbox', 'agent-1', 'agent-2', 'request', 'normal', NULL, 'Hello', 'Please review', 'unread', '2025-08-11T12:00:00.123Z', 'agent_workspaces/Agent-2/inbox/msg-1.json', 0, '{"from":"agent-1","to":"agent-2"}', 'hh', 33);
INSERT INTO configurations (config_id, name, scope, updated_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('cfg-1', 'limits', 'global', NULL, 'config/limits.json', 0, '{"max_agents": 8, "ratio": 1e2}', 'ii', 30);
INSERT INTO project_analyses (analysis_id, project, analysis_type, created_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('pa-1', 'ferry', 'deps', '2025-08-01T00:00:00Z', 'analysis/pa-1.json', 0, '{"deps": {"b": 2, "a": 1}}', 'jj', 26);
INSERT INTO devlogs (devlog_id, title, agent_id, created_at, tags, front_matter, body, source_path, source_text, doc_sha256, doc_size) VALUES
  ('dev-1', 'Day one', 'agent-1', '2025-08-02T08:00:00Z', '["rust", "sqlite"]', '{"title": "Day one"}', 'Body text', 'devlogs/day1.md', '---\ntitle: Day one\n---\nBody text', 'kk', 34);
INSERT INTO context_documents (context_id, title, front_matter, body, updated_at, source_path, source_text, doc_sha256, doc_size) VALUES
  ('ctx-1', 'Context', NULL, 'Context body', NULL, '.claude/context/ctx.md', 'Context body', 'll', 12);
INSERT INTO sessions (session_id, started_at, ended_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('sess-1', '2025-08-03T08:00:00Z', '2025-08-03T09:00:00Z', '.claude/data/sessions/sess-1.json', 0, '{"id":"sess-1"}', 'mm', 15);
INSERT INTO hook_events (event_id, session_id, hook_name, tool_name, occurred_at, source_path, source_record, doc, doc_sha256, doc_size, doc_snapshot) VALUES
  (1, 'sess-1', 'PreToolUse', 'Bash', '2025-08-03T08:00:01Z', '.claude/logs/pre.json', 0, '{"tool":"Bash"}', 'nn', 15, NULL),
  (2, 'sess-1', 'PostToolUse', 'Bash', '2025-08-03T08:00:02Z', '.claude/logs/post.json', 0, '{"tool":"Bash","ok":true}', 'oo', 25, NULL),
  (3, 'sess-1', 'PreToolUse', NULL, NULL, '.claude/logs/pre.json', 1, NULL, 'pp', 0, 'snapshots/pp');
INSERT INTO memory_snapshots (snapshot_id, agent_id, taken_at, path, sha256, size_bytes, source_path) VALUES
  (1, 'agent-1', '2025-08-04T00:00:00Z', 'snapshots/ab/cd', '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 2048, 'memory/big.json');
INSERT INTO performance_metrics (metric_id, agent_id, metric, value, unit, recorded_at, source_path) VALUES
  (1, 'agent-1', 'latency', 0.1 + 0.2, 'ms', '2025-08-05T00:00:00Z', NULL),
  (2, 'agent-1', 'throughput', 1e300, NULL, '2025-08-05T00:00:01Z', NULL),
  (3, 'agent-2', 'latency', NULL, 'ms', NULL, NULL),
  (4, 'agent-2', 'errors', 0.0, NULL, '2025-08-05T00:00:03Z', NULL);
INSERT INTO documents (document_path, kind, format, agent_id, doc, source_text, doc_sha256, doc_size) VALUES
  ('notes/readme.txt', 'note', 'text', NULL, NULL, 'plain text', 'qq', 10);
"#;

const PG_ROWS: &str = r#"
INSERT INTO agents (agent_id, display_name, role, status, status_raw, capabilities, registered_at, updated_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('agent-1', 'Agent One', NULL, 'online', 'Online', '{"max":3,"tools":["git","bash"]}', '2025-08-11 17:41:04.776422+02', '2025-08-11T15:41:05Z', 'agents.json', 0, '{"name":"Agent One","id":"agent-1"}', 'aa', 40),
  ('agent-2', 'Agent Two', 'reviewer', 'idle', 'IDLE', NULL, '2025-08-12 00:00:00+00', NULL, 'agents.json', 1, '{"weight": 1.5, "id": "agent-2"}', 'bb', 16),
  ('Agent-3', 'Ünïcödé 😀', 'writer', 'busy', NULL, '[ ]', '2025-08-12T08:00:00.5Z', NULL, 'agents.json', 2, '{"a":2}', 'cc', 13);
INSERT INTO agent_status (agent_id, status, status_raw, current_task, last_update_at, performance, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('agent-1', 'online', 'online', 'task-1', '2025-08-11 10:41:04-05', '{"ratio":0.750,"done":3}', 'agent_workspaces/Agent-1/status.json', 0, '{"status":"online"}', 'dd', 19);
INSERT INTO tasks (task_id, agent_id, parent_task_id, title, description, status, status_raw, priority, priority_raw, created_at, updated_at, completed_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('task-1', 'agent-1', NULL, 'Migrate', 'Move the store', 'in_progress', 'In Progress', 'high', 'HIGH', '2025-08-10T09:00:00Z', '2025-08-10T10:00:00.000001Z', NULL, 'task_list.json', 0, '{"id":"task-1"}', 'ee', 15),
  ('task-2', 'agent-2', 'task-1', 'Review', '', 'pending', NULL, 'normal', NULL, '2025-08-10T09:30:00Z', NULL, NULL, 'task_list.json', 1, '{"id":"task-2"}', 'ff', 15),
  ('task-3', NULL, 'task-1', 'Ship', 'trailing space ', 'completed', 'done', 'low', NULL, '2025-08-10T11:00:00Z', NULL, '2025-08-11T11:00:00Z', 'task_list.json', 2, '{"id":"task-3"}', 'gg', 15);
INSERT INTO task_dependencies (task_id, depends_on_task_id) VALUES ('task-3', 'task-2'), ('task-2', 'task-1'), ('task-3', 'task-1');
INSERT INTO messages (message_id, mailbox_agent_id, folder, from_agent, to_agent, message_type, priority, priority_raw, subject, body, status, sent_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('msg-1', 'agent-2', 'inbox', 'agent-1', 'agent-2', 'request', 'normal', NULL, 'Hello', 'Please review', 'unread', '2025-08-11T12:00:00.123Z', 'agent_workspaces/Agent-2/inbox/msg-1.json', 0, '{"to":"agent-2","from":"agent-1"}', 'hh', 33);
INSERT INTO configurations (config_id, name, scope, updated_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('cfg-1', 'limits', 'global', NULL, 'config/limits.json', 0, '{"ratio": 100, "max_agents": 8}', 'ii', 30);
INSERT INTO project_analyses (analysis_id, project, analysis_type, created_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('pa-1', 'ferry', 'deps', '2025-08-01T00:00:00Z', 'analysis/pa-1.json', 0, '{"deps":{"a":1,"b":2}}', 'jj', 26);
INSERT INTO devlogs (devlog_id, title, agent_id, created_at, tags, front_matter, body, source_path, source_text, doc_sha256, doc_size) VALUES
  ('dev-1', 'Day one', 'agent-1', '2025-08-02T08:00:00Z', '["rust","sqlite"]', '{"title":"Day one"}', 'Body text', 'devlogs/day1.md', '---\ntitle: Day one\n---\nBody text', 'kk', 34);
INSERT INTO context_documents (context_id, title, front_matter, body, updated_at, source_path, source_text, doc_sha256, doc_size) VALUES
  ('ctx-1', 'Context', NULL, 'Context body', NULL, '.claude/context/ctx.md', 'Context body', 'll', 12);
INSERT INTO sessions (session_id, started_at, ended_at, source_path, source_record, doc, doc_sha256, doc_size) VALUES
  ('sess-1', '2025-08-03T08:00:00Z', '2025-08-03T09:00:00Z', '.claude/data/sessions/sess-1.json', 0, '{"id":"sess-1"}', 'mm', 15);
INSERT INTO hook_events (event_id, session_id, hook_name, tool_name, occurred_at, source_path, source_record, doc, doc_sha256, doc_size, doc_snapshot) VALUES
  (1, 'sess-1', 'PreToolUse', 'Bash', '2025-08-03T08:00:01Z', '.claude/logs/pre.json', 0, '{"tool":"Bash"}', 'nn', 15, NULL),
  (2, 'sess-1', 'PostToolUse', 'Bash', '2025-08-03T08:00:02Z', '.claude/logs/post.json', 0, '{"ok":true,"tool":"Bash"}', 'oo', 25, NULL),
  (3, 'sess-1', 'PreToolUse', NULL, NULL, '.claude/logs/pre.json', 1, NULL, 'pp', 0, 'snapshots/pp');
INSERT INTO memory_snapshots (snapshot_id, agent_id, taken_at, path, sha256, size_bytes, source_path) VALUES
  (1, 'agent-1', '2025-08-04T00:00:00Z', 'snapshots/ab/cd', '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 2048, 'memory/big.json');
INSERT INTO performance_metrics (metric_id, agent_id, metric, value, unit, recorded_at, source_path) VALUES
  (1, 'agent-1', 'latency', 0.30000000000000004, 'ms', '2025-08-05T00:00:00Z', NULL),
  (2, 'agent-1', 'throughput', 1e300, NULL, '2025-08-05T00:00:01Z', NULL),
  (3, 'agent-2', 'latency', NULL, 'ms', NULL, NULL),
  (4, 'agent-2', 'errors', '-0', NULL, '2025-08-05T00:00:03Z', NULL);
INSERT INTO documents (document_path, kind, format, agent_id, doc, source_text, doc_sha256, doc_size) VALUES
  ('notes/readme.txt', 'note', 'text', NULL, NULL, 'plain text', 'qq', 10);
SELECT setval(pg_get_serial_sequence('hook_events', 'event_id'), 3);
SELECT setval(pg_get_serial_sequence('memory_snapshots', 'snapshot_id'), 1);
SELECT setval(pg_get_serial_sequence('performance_metrics', 'metric_id'), 4);
SELECT setval(pg_get_serial_sequence('agent_memory', 'memory_id'), 1);
"#;

/// Both 0001 migrations applied and the same data inserted on each side.
async fn agent_store(prefix: &str) -> Fixture {
    let fx = Fixture::new(prefix).await;
    fx.lite_exec(&migration(ferry_migrations::SQLITE));
    fx.lite_exec(SQLITE_ROWS);
    let blob: Vec<u8> = embedding().iter().flat_map(|x| x.to_le_bytes()).collect();
    fx.lite()
        .execute(
            "INSERT INTO agent_memory (memory_id, agent_id, content, embedding, metadata, created_at) VALUES (1, 'agent-1', 'remember', ?1, '{\"k\": [1, 2]}', '2025-08-06T00:00:00.000Z')",
            [&blob],
        )
        .expect("insert memory");
    fx.pg_exec(&migration(ferry_migrations::POSTGRES)).await;
    fx.pg_exec(PG_ROWS).await;
    let mut conn = fx.pg().await;
    sqlx::query("INSERT INTO agent_memory (memory_id, agent_id, content, embedding, metadata, created_at) VALUES (1, 'agent-1', 'remember', $1, '{\"k\":[1,2]}', '2025-08-06T00:00:00Z')")
        .bind(embedding())
        .execute(&mut conn)
        .await
        .expect("insert memory");
    fx
}

#[tokio::test]
async fn equal_data_in_every_representation_validates_equal() {
    let fx = agent_store("store_equal").await;
    let report = fx.validate().await;
    assert_equal(&report);
    assert_eq!(report.tables.len(), 15, "{}", report.summary_table());
    assert!(report.tables.iter().all(|t| t.verdict == Verdict::Equal));
    assert_eq!(report.totals.source_rows, report.totals.target_rows);
    assert_eq!(report.totals.source_rows, 26);
    // The digests are the evidence: equal on both sides, and stable across runs.
    let agents = common::table(&report, "agents");
    assert_eq!(agents.source_digest, agents.target_digest);
    let again = fx.validate().await;
    assert_eq!(
        common::table(&again, "agents").source_digest,
        agents.source_digest
    );
    // The constraint checks ran and found the sequences ahead and every FK present.
    assert!(report.constraints.checked);
    assert_eq!(report.constraints.sequences, 4);
    assert!(report.constraints.target_foreign_keys >= 10);
    assert!(report.constraints.source_constraints > 30);
    // One table asked for: its foreign keys to tables not compared are still found.
    let opts = ferry_validate::ValidateOptions {
        tables: vec!["task_dependencies".into()],
        ..Default::default()
    };
    let one = fx.validate_with(None, &opts).await;
    assert_equal(&one);
    assert_eq!(one.tables.len(), 1);
    // The report serialises (the ledger stores it).
    let json = serde_json::to_string(&report).unwrap();
    let back: ferry_validate::ValidationReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

async fn mutated(prefix: &str, pg_sql: &str) -> ferry_validate::ValidationReport {
    let fx = agent_store(prefix).await;
    fx.pg_exec(pg_sql).await;
    fx.validate().await
}

fn one_changed_cell(
    diff: &ferry_validate::TableDiff,
    key: &[&str],
    column: &str,
) -> (String, String) {
    assert_eq!(
        (diff.missing, diff.extra, diff.changed),
        (0, 0, 1),
        "{diff:#?}"
    );
    assert_eq!(diff.changed_by_column.len(), 1, "{diff:#?}");
    assert_eq!(diff.changed_by_column.get(column), Some(&1), "{diff:#?}");
    let ex = &diff.changed_examples[0];
    assert_eq!(
        ex.key,
        key.iter().map(|k| k.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(ex.columns.len(), 1);
    assert_eq!(ex.columns[0].column, column);
    (ex.columns[0].source.clone(), ex.columns[0].target.clone())
}

#[tokio::test]
async fn an_integer_cell_changed() {
    let report = mutated(
        "mut_int",
        "UPDATE hook_events SET source_record = 7 WHERE event_id = 2",
    )
    .await;
    let diff = only_difference(&report, "hook_events");
    assert_eq!(
        one_changed_cell(diff, &["2"], "source_record"),
        ("0".into(), "7".into())
    );
}

#[tokio::test]
async fn a_float_changed_in_its_last_bit() {
    let report = mutated(
        "mut_float",
        "UPDATE performance_metrics SET value = 0.30000000000000010 WHERE metric_id = 1",
    )
    .await;
    let diff = only_difference(&report, "performance_metrics");
    assert_eq!(
        one_changed_cell(diff, &["1"], "value"),
        ("0.30000000000000004".into(), "0.3000000000000001".into())
    );
}

#[tokio::test]
async fn a_trailing_space_added_to_text() {
    let report = mutated(
        "mut_text",
        "UPDATE agents SET display_name = 'Agent One ' WHERE agent_id = 'agent-1'",
    )
    .await;
    let diff = only_difference(&report, "agents");
    assert_eq!(
        one_changed_cell(diff, &["\"agent-1\""], "display_name"),
        ("\"Agent One\"".into(), "\"Agent One \"".into())
    );
}

#[tokio::test]
async fn one_bit_of_a_blob_embedding_changed() {
    // The lowest bit of element 10: one byte of the SQLite BLOB, one real of the real[].
    let fx = agent_store("mut_blob").await;
    let mut changed = embedding();
    changed[10] = f32::from_bits(changed[10].to_bits() ^ 1);
    let mut conn = fx.pg().await;
    sqlx::query("UPDATE agent_memory SET embedding = $1 WHERE memory_id = 1")
        .bind(changed)
        .execute(&mut conn)
        .await
        .unwrap();
    let report = fx.validate().await;
    let diff = only_difference(&report, "agent_memory");
    let (source, target) = one_changed_cell(diff, &["1"], "embedding");
    assert!(
        source.ends_with("(1536 values)") && target.ends_with("(1536 values)"),
        "{source} / {target}"
    );
}

#[tokio::test]
async fn a_timestamp_shifted_by_one_microsecond() {
    let report = mutated(
        "mut_ts",
        "UPDATE tasks SET created_at = created_at + interval '1 microsecond' WHERE task_id = 'task-3'",
    )
    .await;
    let diff = only_difference(&report, "tasks");
    assert_eq!(
        one_changed_cell(diff, &["\"task-3\""], "created_at"),
        (
            "2025-08-10T11:00:00Z".into(),
            "2025-08-10T11:00:00.000001Z".into()
        )
    );
}

#[tokio::test]
async fn a_json_value_changed() {
    let report = mutated(
        "mut_json",
        r#"UPDATE agents SET capabilities = '{"max": 4, "tools": ["git", "bash"]}' WHERE agent_id = 'agent-1'"#,
    )
    .await;
    let diff = only_difference(&report, "agents");
    assert_eq!(
        one_changed_cell(diff, &["\"agent-1\""], "capabilities"),
        (
            r#"{"max":3,"tools":["git","bash"]}"#.into(),
            r#"{"max":4,"tools":["git","bash"]}"#.into()
        )
    );
}

#[tokio::test]
async fn a_deleted_row() {
    let report = mutated(
        "mut_delete",
        "DELETE FROM task_dependencies WHERE task_id = 'task-3' AND depends_on_task_id = 'task-2'",
    )
    .await;
    let diff = only_difference(&report, "task_dependencies");
    assert_eq!((diff.missing, diff.extra, diff.changed), (1, 0, 0));
    assert_eq!(
        diff.missing_examples[0].key,
        vec!["\"task-3\"", "\"task-2\""]
    );
}

#[tokio::test]
async fn an_extra_row() {
    let report = mutated(
        "mut_extra",
        "INSERT INTO documents (document_path, kind, format, doc_sha256, doc_size, source_text) VALUES ('notes/new.txt', 'note', 'text', 'zz', 1, 'x')",
    )
    .await;
    let diff = only_difference(&report, "documents");
    assert_eq!((diff.missing, diff.extra, diff.changed), (0, 1, 0));
    assert_eq!(diff.extra_examples[0].key, vec!["\"notes/new.txt\""]);
}

#[tokio::test]
async fn two_rows_values_swapped() {
    let report = mutated(
        "mut_swap",
        "UPDATE tasks SET title = CASE task_id WHEN 'task-1' THEN 'Review' ELSE 'Migrate' END WHERE task_id IN ('task-1', 'task-2')",
    )
    .await;
    let diff = only_difference(&report, "tasks");
    assert_eq!((diff.missing, diff.extra, diff.changed), (0, 0, 2));
    assert_eq!(diff.changed_by_column.get("title"), Some(&2));
    let keys: Vec<&str> = diff
        .changed_examples
        .iter()
        .map(|e| e.key[0].as_str())
        .collect();
    assert_eq!(keys, vec!["\"task-1\"", "\"task-2\""]);
    assert_eq!(diff.changed_examples[0].columns[0].source, "\"Migrate\"");
    assert_eq!(diff.changed_examples[0].columns[0].target, "\"Review\"");
}

#[tokio::test]
async fn a_null_turned_into_an_empty_string() {
    let report = mutated(
        "mut_null",
        "UPDATE agents SET role = '' WHERE agent_id = 'agent-1'",
    )
    .await;
    let diff = only_difference(&report, "agents");
    assert_eq!(
        one_changed_cell(diff, &["\"agent-1\""], "role"),
        ("NULL".into(), "\"\"".into())
    );
}

#[tokio::test]
async fn constraint_problems_are_found() {
    let fx = agent_store("constraints").await;
    fx.pg_exec(
        "SELECT setval(pg_get_serial_sequence('hook_events', 'event_id'), 2);
         ALTER TABLE tasks ALTER COLUMN status DROP NOT NULL;
         ALTER TABLE hook_events DROP CONSTRAINT hook_events_source_path_source_record_key;
         ALTER TABLE devlogs DROP CONSTRAINT devlogs_agent_id_fkey;
         ALTER TABLE devlogs ADD CONSTRAINT devlogs_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES agents (agent_id) NOT VALID;
         ALTER TABLE messages DROP CONSTRAINT messages_mailbox_agent_id_fkey;
         UPDATE messages SET mailbox_agent_id = 'ghost' WHERE message_id = 'msg-1';
         ALTER TABLE messages ADD CONSTRAINT messages_mailbox_agent_id_fkey FOREIGN KEY (mailbox_agent_id) REFERENCES agents (agent_id) NOT VALID;",
    )
    .await;
    fx.lite_exec(
        "PRAGMA foreign_keys = OFF; INSERT INTO task_dependencies VALUES ('task-9', 'task-1');",
    );
    fx.pg_exec("INSERT INTO task_dependencies VALUES ('task-2', 'task-3');")
        .await;
    let report = fx.validate().await;
    assert!(!report.equal);
    let kinds: Vec<(ConstraintKind, &str)> = report
        .constraints
        .findings
        .iter()
        .map(|f| (f.kind, f.table.as_str()))
        .collect();
    for want in [
        (ConstraintKind::SequenceBehind, "hook_events"),
        (ConstraintKind::MissingNotNull, "tasks"),
        (ConstraintKind::MissingUnique, "hook_events"),
        (ConstraintKind::TargetOrphans, "messages"),
        (ConstraintKind::TargetForeignKeyNotValid, "messages"),
        (ConstraintKind::SqliteForeignKey, "task_dependencies"),
    ] {
        assert!(
            kinds.contains(&want),
            "{want:?} not in {:#?}",
            report.constraints.findings
        );
    }
    // The NOT VALID foreign key without orphans was validated.
    assert_eq!(
        report.constraints.validated_foreign_keys,
        vec!["devlogs.devlogs_agent_id_fkey"]
    );
    // Data differences are still reported beside them.
    assert_eq!(
        common::table(&report, "messages").verdict,
        Verdict::Different
    );
    assert_eq!(
        common::table(&report, "task_dependencies").verdict,
        Verdict::Different
    );
}
