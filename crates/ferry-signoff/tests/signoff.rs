//! The sign-off on a real migration: a generated store imported into a real SQLite file and
//! copied into a scratch schema of the real PostgreSQL server.

use std::path::PathBuf;
use std::time::Duration;

use ferry_core::config::TimestampConfig;
use ferry_core::redact::SecretUrl;
use ferry_signoff::{data, run, write_reports, SignoffConfig, SignoffOptions};
use ferry_testkit::pg::ScratchSchema;
use ferry_testkit::store_gen::{generate, StoreSpec};
use sqlx::{Connection, SqliteConnection};

struct Migrated {
    _dir: tempfile::TempDir,
    _schema: ScratchSchema,
    config: SignoffConfig,
}

/// Store → SQLite (ferry's migrations, the built-in profile) → PostgreSQL (ferry's
/// migrations, managed transfer), as phases 1 to 3 do it.
async fn migrated(prefix: &str) -> Migrated {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let spec = StoreSpec::small();
    generate(&store, &spec).unwrap();
    let sqlite = state.join("ferry.sqlite3");
    let mut db = ferry_schema::Database::connect(&format!("sqlite://{}", sqlite.display()), None)
        .await
        .unwrap();
    let set = ferry_schema::MigrationSet::from_embedded(ferry_migrations::SQLITE).unwrap();
    ferry_schema::migrate_to_head(&mut db, &set).await.unwrap();
    db.close().await;
    let mut options = ferry_import::ImportOptions::new(&state);
    options.max_file_bytes = spec.max_file_bytes();
    // Some documents go to the snapshot store, so that path is checked too.
    options.snapshot_threshold_bytes = 10_000;
    let report =
        ferry_import::import_file(&store, &sqlite, &ferry_import::Profile::builtin(), &options)
            .await
            .unwrap();
    assert!(report.totals.files > 0);

    let schema = ScratchSchema::new(prefix).await;
    let mut pg = ferry_schema::Database::connect(&schema.url, Some(&schema.name))
        .await
        .unwrap();
    let set = ferry_schema::MigrationSet::from_embedded(ferry_migrations::POSTGRES).unwrap();
    ferry_schema::migrate_to_head(&mut pg, &set).await.unwrap();
    pg.close().await;
    let target = ferry_transfer::PgTarget::new(schema.url.clone(), schema.name.clone());
    let topts = ferry_transfer::TransferOptions::default();
    let plan = ferry_transfer::plan_managed(&sqlite, &target, &topts)
        .await
        .unwrap();
    let copied = ferry_transfer::execute(&plan, &target, &topts)
        .await
        .unwrap();
    assert_eq!(copied.rejected_rows(), 0);
    let config = SignoffConfig {
        sqlite,
        postgres_url: SecretUrl::new(schema.url.clone()),
        schema: schema.name.clone(),
        store_dir: store,
        state_dir: state,
        timestamps: TimestampConfig {
            naive: "UTC".into(),
        },
    };
    Migrated {
        _dir: dir,
        _schema: schema,
        config,
    }
}

fn short() -> SignoffOptions {
    SignoffOptions {
        read_iterations: 40,
        agents: 12,
        load_duration: Duration::from_secs(2),
        ..SignoffOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_check_runs_on_a_real_migration_and_the_report_renders_in_a_browser() {
    let m = migrated("signoff_good").await;
    let report = run(&m.config, &short(), None).await.unwrap();
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.passed && c.area != "performance")
        .map(|c| format!("{} {}: {}", c.area, c.name, c.detail))
        .collect();
    // Performance is measured and reported as it is; every other check must pass.
    assert!(failed.is_empty(), "{failed:#?}");
    let files = &report.data.files;
    assert!(files.files_compared > 0 && files.documents_equal >= files.files_compared);
    assert!(
        !files.quarantined.is_empty(),
        "the small store has broken files"
    );
    assert!(files.quarantined.iter().all(|q| !q.reason.is_empty()));
    let perf = report.performance.as_ref().expect("the reads were timed");
    assert_eq!(
        perf.comparison.len(),
        ferry_agentdb::harness::TYPICAL_READS.len()
    );
    assert!(perf
        .comparison
        .iter()
        .all(|c| c.postgres_p95_ms > 0.0 && c.sqlite_p95_ms > 0.0));
    assert_eq!(
        perf.files.len(),
        5,
        "every read but memory search has a file path"
    );
    for area in ["data", "performance", "concurrency", "migration"] {
        assert!(report.checks.iter().any(|c| c.area == area), "{area}");
    }
    let load = &report.concurrency.as_ref().unwrap().load;
    assert_eq!(load.agents, 12);
    assert!(load.total_ops > 0 && load.error_rate < 0.001);
    // The agents worked in a scratch schema, now gone; the migrated data did not change.
    let again = data::check(&m.config).await;
    assert!(again.checks.iter().all(|c| c.passed), "{:#?}", again.checks);
    let mut admin = ferry_testkit::pg::admin().await;
    let scratch: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&report.concurrency.as_ref().unwrap().scratch_schema)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(scratch, 0);

    let paths = write_reports(&report, &m.config.state_dir, Some("Release Manager")).unwrap();
    let json = std::fs::read(&paths.json).unwrap();
    assert_eq!(
        paths.evidence_sha256,
        format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&json))
    );
    let md = std::fs::read_to_string(&paths.markdown).unwrap();
    assert!(md.contains("Signed by Release Manager"), "{md}");
    assert!(md.contains(&paths.evidence_sha256));

    let png: PathBuf = m.config.state_dir.join("signoff.png");
    let dom = ferry_testkit::browser::render(&paths.html, &png);
    let svgs = dom.matches("<svg").count();
    // Rows per table, one histogram per typical read, throughput, sync lag.
    assert!(
        svgs >= 3 + ferry_agentdb::harness::TYPICAL_READS.len(),
        "{svgs} charts in the rendered page"
    );
    assert!(dom.contains("ferry sign-off"));
    assert!(dom.contains("get_agent_status: latency histogram"));
    assert!(dom.contains("Signed by Release Manager"));
    let shot = std::fs::read(&png).unwrap();
    assert!(shot.len() > 10_000, "screenshot of {} bytes", shot.len());
    assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_row_and_a_missing_file_document_fail_the_data_check_naming_table_and_key() {
    let m = migrated("signoff_bad").await;
    let good = data::check(&m.config).await;
    assert!(good.checks.iter().all(|c| c.passed), "{:#?}", good.checks);

    // A task changed in PostgreSQL.
    let mut pg = sqlx::PgConnection::connect(m.config.postgres_url.expose())
        .await
        .unwrap();
    let task: String = sqlx::query_scalar(&format!(
        "UPDATE {}.tasks SET title = 'changed after the migration' \
         WHERE task_id = (SELECT min(task_id) FROM {}.tasks) RETURNING task_id",
        m.config.schema, m.config.schema
    ))
    .fetch_one(&mut pg)
    .await
    .unwrap();
    pg.close().await.unwrap();
    // A message file's row gone from SQLite.
    let mut lite = SqliteConnection::connect(&format!("sqlite://{}", m.config.sqlite.display()))
        .await
        .unwrap();
    let (message, path): (String, String) =
        sqlx::query_as("SELECT message_id, source_path FROM messages ORDER BY message_id LIMIT 1")
            .fetch_one(&mut lite)
            .await
            .unwrap();
    // A second message claims another message's file: the ledger does not list it. And a
    // row of a file the ledger does not know sorts before every imported path: not this
    // check's business, and it must not throw the ordered pass off.
    let (other, other_path): (String, String) = sqlx::query_as(
        "SELECT message_id, source_path FROM messages ORDER BY message_id DESC LIMIT 1",
    )
    .fetch_one(&mut lite)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TEMP TABLE copied AS SELECT * FROM messages WHERE message_id = '{other}';
         INSERT INTO messages SELECT 'claimant', mailbox_agent_id, folder, from_agent, to_agent,
             message_type, priority, priority_raw, subject, body, status, sent_at, source_path,
             source_record, doc, doc_sha256, doc_size, doc_snapshot FROM copied;
         INSERT INTO messages SELECT 'stray', mailbox_agent_id, folder, from_agent, to_agent,
             message_type, priority, priority_raw, subject, body, status, sent_at, '!stray.json',
             source_record, doc, doc_sha256, doc_size, doc_snapshot FROM copied;"
    ))
    .execute(&mut lite)
    .await
    .unwrap();
    sqlx::query("DELETE FROM messages WHERE message_id = ?")
        .bind(&message)
        .execute(&mut lite)
        .await
        .unwrap();
    lite.close().await.unwrap();

    let bad = data::check(&m.config).await;
    let check = |name: &str| {
        bad.checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}"))
            .clone()
    };
    let db = check("SQLite equals PostgreSQL");
    assert!(!db.passed);
    assert!(db.detail.contains("table tasks"), "{}", db.detail);
    assert!(db.detail.contains(&task), "{}", db.detail);
    assert!(db.detail.contains("table messages"), "{}", db.detail);
    let files = check("every file's documents in the database");
    assert!(!files.passed);
    assert!(files.detail.contains("table messages"), "{}", files.detail);
    assert!(files.detail.contains(&message), "{}", files.detail);
    assert!(files.detail.contains(&path), "{}", files.detail);
    assert!(bad
        .files
        .differences
        .iter()
        .any(|d| d.table == "messages" && d.key.contains(&message) && d.path == path));
    let claimant: Vec<_> = bad
        .files
        .differences
        .iter()
        .filter(|d| d.key.contains("claimant"))
        .collect();
    assert_eq!(claimant.len(), 1, "{:#?}", bad.files.differences);
    assert_eq!(claimant[0].path, other_path);
    assert!(
        claimant[0].reason.contains("the ledger does not list it"),
        "{claimant:?}"
    );
    assert!(
        !bad.files
            .differences
            .iter()
            .any(|d| d.key.contains("stray")),
        "{:#?}",
        bad.files.differences
    );
    // Nothing else differs: every other file's documents were still found.
    assert_eq!(
        bad.files.differences.len(),
        2,
        "{:#?}",
        bad.files.differences
    );
    // One document fewer (the deleted message), one more (the claimant's, which is in the
    // file it claims).
    assert_eq!(bad.files.documents_equal, good.files.documents_equal);
}
