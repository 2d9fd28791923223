//! The known traps of trigger-based capture, each against real SQLite files and the real
//! PostgreSQL server, each proved by ferry-validate reading both sides:
//! `INSERT OR REPLACE` and UPSERT (no DELETE trigger fires), a REPLACE that silently deletes
//! a *different* row through another UNIQUE constraint, a primary key changed by UPDATE,
//! foreign-key cascades, keys of every storage class (REAL, BLOB, invalid UTF-8, NOCASE,
//! composite), a full-text table and a table without a primary key across VACUUM, a value
//! the plan cannot convert, and a row only PostgreSQL refuses.

mod common;

use common::*;
use ferry_core::plan::PlanMode;
use ferry_sync::{install, Applier, InstallOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_upsert_key_change_and_unique_victims_reach_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 8);
    let schema = migrated_schema("sync_traps").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    install(&path, &plan, &InstallOptions::default()).unwrap();
    let mut a = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    let full = a.full_pass().await.unwrap();
    assert_eq!(full.rows_fixed, 0, "nothing changed since the copy");

    let victim = sqlite_scalar(
        &path,
        "SELECT min(metric_id) FROM performance_metrics WHERE agent_id IS NOT NULL AND recorded_at IS NOT NULL",
    );
    let moved_from: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT min(message_id) FROM messages", [], |r| r.get(0))
        .unwrap();
    let deps_before = sqlite_scalar(&path, "SELECT count(*) FROM task_dependencies");
    app_exec(
        &path,
        &format!(
            "
        -- REPLACE of an existing key: SQLite deletes and inserts, only the INSERT trigger fires.
        INSERT OR REPLACE INTO tasks (task_id, agent_id, title, status, priority, source_path, source_record, doc_sha256, doc_size)
            VALUES ('task-00001', 'Agent-1', 'replaced', 'other', 'high', 'x', 1, 'h', 1);
        -- UPSERT: the UPDATE trigger fires (the first one may insert).
        INSERT INTO agent_status (agent_id, status, source_path, doc, doc_sha256, doc_size)
            VALUES ('Agent-2', 'idle', 'p', '{{}}', 'h', 2)
            ON CONFLICT (agent_id) DO UPDATE SET status = 'idle';
        INSERT INTO agent_status (agent_id, status, source_path, doc, doc_sha256, doc_size)
            VALUES ('Agent-2', 'idle', 'p', '{{}}', 'h', 2)
            ON CONFLICT (agent_id) DO UPDATE SET status = 'busy', current_task = 'upserted';
        -- REPLACE through UNIQUE (agent_id, metric, recorded_at): row {victim} is deleted by
        -- SQLite without any trigger; PostgreSQL must lose it too.
        INSERT OR REPLACE INTO performance_metrics (metric_id, agent_id, metric, value, recorded_at)
            SELECT 999999, agent_id, metric, 1.5, recorded_at FROM performance_metrics WHERE metric_id = {victim};
        -- A key changed by UPDATE: both the old and the new key are logged.
        UPDATE messages SET message_id = 'moved-away' WHERE message_id = '{moved_from}';
        -- A delete that cascades to task_dependencies and sets subtasks' parent to NULL.
        DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM task_dependencies WHERE task_id <> 'task-00001' LIMIT 1);
        "
        ),
    );
    assert!(sqlite_scalar(&path, "SELECT count(*) FROM task_dependencies") < deps_before);
    // Two rows swap their UNIQUE (source_path, source_record) in three steps; PostgreSQL
    // sees only the end state, which one INSERT … ON CONFLICT could not apply in order.
    let (a_id, a_path, a_rec, b_id, b_path, b_rec): (i64, String, i64, i64, String, i64) =
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT a.event_id, a.source_path, a.source_record, b.event_id, b.source_path, b.source_record
                 FROM hook_events a, hook_events b WHERE a.event_id = (SELECT min(event_id) FROM hook_events)
                 AND b.event_id = (SELECT max(event_id) FROM hook_events)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
    app_exec(
        &path,
        &format!(
            "UPDATE hook_events SET source_record = -999 WHERE event_id = {a_id};
             UPDATE hook_events SET source_path = '{a_path}', source_record = {a_rec} WHERE event_id = {b_id};
             UPDATE hook_events SET source_path = '{b_path}', source_record = {b_rec} WHERE event_id = {a_id};"
        ),
    );
    assert_eq!(
        pg_scalar(
            &schema,
            &format!("SELECT count(*) FROM performance_metrics WHERE metric_id = {victim}")
        )
        .await,
        1
    );
    let report = a.drain().await.unwrap();
    assert!(report.changes >= 6, "{report:?}");
    assert_eq!(report.rejects, 0);
    assert_eq!(
        pg_scalar(
            &schema,
            &format!("SELECT count(*) FROM performance_metrics WHERE metric_id = {victim}")
        )
        .await,
        0,
        "the row SQLite's REPLACE deleted silently is gone from PostgreSQL too"
    );
    assert_eq!(
        pg_scalar(
            &schema,
            &format!("SELECT count(*) FROM messages WHERE message_id = '{moved_from}'")
        )
        .await,
        0
    );
    assert_eq!(
        pg_scalar(
            &schema,
            "SELECT count(*) FROM tasks WHERE task_id = 'task-00001' AND title = 'replaced'"
        )
        .await,
        1
    );
    assert_eq!(
        pg_scalar(
            &schema,
            "SELECT count(*) FROM agent_status WHERE agent_id = 'Agent-2' AND status = 'busy'"
        )
        .await,
        1
    );
    a.set_sequences().await.unwrap();
    assert_equal(&path, &schema, &plan).await;

    // Applying the same entries again changes nothing: the state is applied, not the ops.
    let status = a.status().await.unwrap();
    assert_eq!(status.changes_behind, 0);
    assert_eq!(status.open_rejects, 0);
    a.close().await;
    let mut again = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    assert!(again.handoff_done());
    assert_eq!(again.drain().await.unwrap().changes, 0);
    assert_equal(&path, &schema, &plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_keys_fulltext_and_keyless_tables_on_a_derived_plan() {
    let dir = tempfile::tempdir().unwrap();
    let path = awkward_sqlite(dir.path());
    let schema = ferry_testkit::pg::ScratchSchema::new("sync_awkward").await;
    let plan = phase3(&path, &schema, PlanMode::Derived).await;
    let spec = install(&path, &plan, &InstallOptions::default()).unwrap();
    let digest: Vec<&str> = spec
        .tables
        .iter()
        .filter(|t| matches!(t.follow, ferry_sync::Follow::Digest { .. }))
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(
        digest,
        ["loose", "notes"],
        "keyless and full-text tables are followed by digest"
    );
    assert_eq!(spec.key_width, 2);
    let mut a = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    a.full_pass().await.unwrap();
    assert_equal(&path, &schema, &plan).await;

    app_exec(
        &path,
        r#"
        UPDATE ints SET id = 5 WHERE id = -9223372036854775808;
        UPDATE ints SET score = 1e-300, name = 'deux' WHERE id = 2;
        INSERT INTO ints (id, name, parent) VALUES (3, 'three', 3);
        UPDATE reals SET k = 0.2 WHERE k = 0.1;
        INSERT INTO reals VALUES (1e-300, 'tiny');
        DELETE FROM blobs WHERE k = x'';
        INSERT INTO blobs VALUES (x'00', 4);
        UPDATE blobs SET v = 30 WHERE k = x'deadbeef';
        UPDATE texts SET v = x'ffff' WHERE k = 'naïve ✓';
        DELETE FROM texts WHERE k = 'trailing  ';
        UPDATE "Mixed Key" SET v = 'changed' WHERE "a b" = 1 AND "c""d" = 'x';
        DELETE FROM "Mixed Key" WHERE "a b" = 1 AND "c""d" = 'y';
        INSERT INTO "Mixed Key" VALUES (3, 'z', NULL);
        UPDATE nocase SET k = 'ALPHA' WHERE k = 'alpha';
        INSERT INTO loose VALUES ('new', 7);
        DELETE FROM loose WHERE rowid = (SELECT min(rowid) FROM loose WHERE a = 'dup');
        INSERT INTO notes (rowid, title, body) VALUES (3, 'third', 'more text');
        UPDATE notes SET body = 'hello again' WHERE rowid = 1;
        DELETE FROM notes WHERE rowid = 2;
        "#,
    );
    // VACUUM may renumber the rowids of the keyless table: a digest does not care.
    app_exec(&path, "VACUUM");
    let r = a.drain().await.unwrap();
    assert!(r.changes >= 14, "{r:?}");
    assert_eq!(r.tables_replaced, 2, "loose and notes changed");
    assert_eq!(
        pg_scalar(&schema, "SELECT count(*) FROM nocase WHERE k = 'ALPHA'").await
            + pg_scalar(&schema, "SELECT count(*) FROM nocase WHERE k = 'Alpha'").await,
        1,
        "a key changed only in case replaces the old row"
    );
    // Sequences are the cutover's business; here the key 5 passed the sequence.
    a.set_sequences().await.unwrap();
    assert_equal(&path, &schema, &plan).await;
    // Nothing changed: the digest-followed tables are left alone.
    let r = a.drain().await.unwrap();
    assert_eq!((r.changes, r.tables_replaced), (0, 0));

    // A key PostgreSQL text cannot hold: rejected with key, column and bytes, never dropped.
    app_exec(
        &path,
        "INSERT INTO texts VALUES (CAST(x'ff61' AS TEXT), x'01')",
    );
    let r = a.drain().await.unwrap();
    assert_eq!(r.rejects, 1, "{r:?}");
    let rejects = a.open_rejects().await.unwrap();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0].table, "texts");
    assert_eq!(rejects[0].column, "k");
    assert_eq!(rejects[0].key, "k=x'ff61'");
    assert_eq!(rejects[0].bytes_hex.as_deref(), Some("ff61"));
    let report = validate(&path, &schema, &plan).await;
    assert!(!report.equal, "the rejected row shows as missing");
    // Fixing the row in SQLite resolves the reject.
    app_exec(&path, "DELETE FROM texts WHERE k = CAST(x'ff61' AS TEXT)");
    a.drain().await.unwrap();
    assert!(a.open_rejects().await.unwrap().is_empty());
    assert_equal(&path, &schema, &plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_postgresql_refuses_is_rejected_and_the_rest_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 6);
    let schema = migrated_schema("sync_refused").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    install(&path, &plan, &InstallOptions::default()).unwrap();
    let mut a = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    a.full_pass().await.unwrap();
    // A constraint only PostgreSQL has: SQLite accepts the row, PostgreSQL refuses it.
    let mut conn = schema.connect().await;
    sqlx::query("ALTER TABLE tasks ADD CONSTRAINT no_forbidden CHECK (title IS DISTINCT FROM 'forbidden') NOT VALID")
        .execute(&mut conn)
        .await
        .unwrap();
    app_exec(
        &path,
        "UPDATE tasks SET title = 'forbidden' WHERE task_id = 'task-00003';
         UPDATE tasks SET title = 'fine' WHERE task_id = 'task-00004';
         UPDATE agents SET role = 'changed' WHERE agent_id = 'Agent-1';",
    );
    let r = a.drain().await.unwrap();
    assert_eq!(r.rejects, 1, "{r:?}");
    let rejects = a.open_rejects().await.unwrap();
    assert_eq!(rejects[0].key, "task_id='task-00003'");
    assert!(
        rejects[0].reason.contains("PostgreSQL refused the row"),
        "{rejects:?}"
    );
    assert_eq!(
        pg_scalar(
            &schema,
            "SELECT count(*) FROM tasks WHERE task_id = 'task-00004' AND title = 'fine'"
        )
        .await,
        1
    );
    assert_eq!(
        pg_scalar(
            &schema,
            "SELECT count(*) FROM agents WHERE role = 'changed'"
        )
        .await,
        1
    );
    assert_eq!(
        pg_scalar(
            &schema,
            "SELECT count(*) FROM tasks WHERE task_id = 'task-00003'"
        )
        .await,
        0,
        "a refused row is absent, as a rejected row of the bulk copy is"
    );
    app_exec(
        &path,
        "UPDATE tasks SET title = 'allowed' WHERE task_id = 'task-00003'",
    );
    a.drain().await.unwrap();
    assert!(a.open_rejects().await.unwrap().is_empty());
    assert_equal(&path, &schema, &plan).await;
}
