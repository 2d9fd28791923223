//! Capture's life cycle on real SQLite files: install is atomic and idempotent, refuses what
//! it cannot follow with one sentence, uninstall leaves the schema exactly as it was, and
//! every pass notices a dropped trigger, an added column or a new table before applying
//! anything.

mod common;

use common::*;
use ferry_core::plan::PlanMode;
use ferry_sync::{install, uninstall, verify, Applier, InstallOptions, SyncError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_is_idempotent_and_uninstall_restores_the_schema_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 3);
    let schema = migrated_schema("sync_capture").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    let before = sqlite_schema(&path);
    let spec = install(&path, &plan, &InstallOptions::default()).unwrap();
    assert_eq!(spec.tables.len(), plan.tables.len());
    let triggers = sqlite_scalar(
        &path,
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'ferry_sync_%'",
    );
    assert_eq!(triggers as usize, 3 * plan.tables.len());
    // Installing again returns the same capture and changes nothing.
    let again = install(&path, &plan, &InstallOptions::default()).unwrap();
    assert_eq!(again, spec);
    assert_eq!(verify(&path).unwrap(), spec);
    // Writes are logged in the writer's transaction: a rolled-back write leaves no entry.
    app_exec(&path, "BEGIN; UPDATE agents SET role = 'x'; ROLLBACK;");
    assert_eq!(
        sqlite_scalar(&path, "SELECT count(*) FROM ferry_sync_log"),
        0
    );
    app_exec(
        &path,
        "UPDATE agents SET role = 'x' WHERE agent_id = 'Agent-0'",
    );
    assert_eq!(
        sqlite_scalar(&path, "SELECT count(*) FROM ferry_sync_log"),
        1
    );
    assert!(uninstall(&path).unwrap());
    assert_eq!(
        sqlite_schema(&path),
        before,
        "the schema is exactly the pre-install one"
    );
    assert!(!uninstall(&path).unwrap(), "nothing left to remove");
    assert!(matches!(verify(&path), Err(SyncError::NotInstalled { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_table_too_large_for_a_digest_is_refused_and_nothing_installed() {
    let dir = tempfile::tempdir().unwrap();
    let path = awkward_sqlite(dir.path());
    let schema = ferry_testkit::pg::ScratchSchema::new("sync_refuse").await;
    let plan = phase3(&path, &schema, PlanMode::Derived).await;
    let before = sqlite_schema(&path);
    let err = install(
        &path,
        &plan,
        &InstallOptions {
            digest_max_rows: 2,
            ..InstallOptions::default()
        },
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SyncError::Refused { .. }), "{text}");
    assert!(
        text.contains("\"loose\"")
            && text.contains("no primary key")
            && text.contains("sync.digest_max_rows"),
        "{text}"
    );
    assert_eq!(
        sqlite_schema(&path),
        before,
        "a refused install changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_trigger_is_named_on_the_next_pass_and_nothing_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 3);
    let schema = migrated_schema("sync_dropped").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    install(&path, &plan, &InstallOptions::default()).unwrap();
    let mut a = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    a.full_pass().await.unwrap();
    app_exec(
        &path,
        "UPDATE agents SET role = 'before drop' WHERE agent_id = 'Agent-0'",
    );
    app_exec(&path, "DROP TRIGGER ferry_sync_upd_tasks");
    let err = a.drain().await.unwrap_err();
    assert!(
        matches!(&err, SyncError::TriggerMissing { table, trigger } if table == "tasks" && trigger == "ferry_sync_upd_tasks"),
        "{err}"
    );
    assert_eq!(a.cursor(), 0);
    assert_eq!(
        pg_scalar(
            &schema,
            "SELECT count(*) FROM agents WHERE role = 'before drop'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_mid_sync_stops_the_pass_with_the_table_and_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 3);
    let schema = migrated_schema("sync_column").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    install(&path, &plan, &InstallOptions::default()).unwrap();
    let mut a = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap();
    a.full_pass().await.unwrap();
    app_exec(
        &path,
        "UPDATE agents SET role = 'first' WHERE agent_id = 'Agent-0'",
    );
    a.drain().await.unwrap();
    let cursor = a.cursor();
    app_exec(
        &path,
        "UPDATE agents SET role = 'second' WHERE agent_id = 'Agent-0'",
    );
    app_exec(&path, "ALTER TABLE messages ADD COLUMN urgency INTEGER");
    let err = a.drain().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SyncError::SchemaDrift { .. }), "{text}");
    assert!(
        text.contains("\"messages\"") && text.contains("\"urgency\"") && text.contains("added"),
        "{text}"
    );
    assert!(
        !text.contains("SELECT") && !text.contains("PRAGMA"),
        "no internals: {text}"
    );
    assert_eq!(a.cursor(), cursor, "nothing of the pass was applied");
    assert_eq!(
        pg_scalar(&schema, "SELECT count(*) FROM agents WHERE role = 'second'").await,
        0
    );
    // A new table is noticed the same way.
    app_exec(
        &path,
        "ALTER TABLE messages DROP COLUMN urgency; CREATE TABLE extra (id INTEGER PRIMARY KEY)",
    );
    let err = a.drain().await.unwrap_err().to_string();
    assert!(
        err.contains("\"extra\"") && err.contains("not in the transfer plan"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_are_one_sentence_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = agent_sqlite(dir.path(), 2);
    let schema = migrated_schema("sync_bad").await;
    let plan = phase3(&path, &schema, PlanMode::Managed).await;
    // Capture not installed yet.
    let err = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::NotInstalled { .. }), "{err}");
    install(&path, &plan, &InstallOptions::default()).unwrap();
    // A table of the plan missing from the target.
    let mut conn = schema.connect().await;
    sqlx::query("DROP TABLE documents")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = Applier::open(&path, &target(&schema), &plan, &sync_options(), true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"documents\"") && err.contains("not in schema"),
        "{err}"
    );
    // A role that may not turn PostgreSQL's triggers off while applying.
    let role = format!("ferry_t_role_{}", std::process::id());
    sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = schema.url.replacen("postgres@", &format!("{role}@"), 1);
    let t = ferry_sync::SyncTarget {
        url: ferry_core::redact::SecretUrl::new(url),
        schema: schema.name.clone(),
    };
    let err = Applier::open(&path, &t, &plan, &sync_options(), true)
        .await
        .unwrap_err();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let text = err.to_string();
    assert!(matches!(err, SyncError::Privilege { .. }), "{text}");
    assert!(
        text.contains("GRANT SET ON PARAMETER session_replication_role"),
        "{text}"
    );
}
