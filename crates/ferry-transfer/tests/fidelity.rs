//! Fidelity on a generated file with every awkward shape: every cell compared by meaning,
//! every constraint checked, rejects exactly the rows PostgreSQL cannot hold.

mod common;

use ferry_core::config::InvalidTextPolicy;
use ferry_core::plan::{ObjectKind, TableKind, TargetType};
use ferry_core::redact::SecretUrl;
use ferry_testkit::pg::ScratchDb;
use ferry_testkit::sqlite_gen;
use ferry_transfer::{execute, plan_derived, PgTarget, TransferOptions};

fn options() -> TransferOptions {
    TransferOptions {
        workers: 2,
        chunk_rows: 7_000,
        progress: false,
        ..TransferOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_file_keeps_every_cell_and_constraint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.sqlite");
    let facts = sqlite_gen::hostile(&path).unwrap();
    let db = ScratchDb::new("fidelity").await;
    let target = PgTarget {
        url: SecretUrl::new(db.url.clone()),
        schema: "Hostile Schema".into(),
    };
    let opts = options();
    let plan = plan_derived(&path, &target.schema, &opts).await.unwrap();

    // Types decided by the data and by SQLite's affinity for unknown names.
    let col = |t: &str, c: &str| {
        plan.table(t)
            .unwrap_or_else(|| panic!("table {t}"))
            .columns
            .iter()
            .find(|x| x.source == c)
            .unwrap_or_else(|| panic!("{t}.{c}"))
            .clone()
    };
    assert_eq!(col("epochs", "at").target_type, TargetType::DoublePrecision);
    assert_eq!(
        col("MixedCase Table", "value").target_type,
        TargetType::MixedJsonb
    );
    assert_eq!(
        col("Order Details", "Unit Price").target_type,
        TargetType::Numeric
    );
    assert_eq!(
        col("Order Details", "Quantity").target_type,
        TargetType::Bigint
    );
    assert_eq!(
        col("user", "Group").target_type,
        TargetType::Bigint,
        "TINYINT(1) follows INTEGER affinity"
    );
    assert_eq!(
        col("user", "references").target_type,
        TargetType::Bigint,
        "INT(11)"
    );
    assert_eq!(
        col("user", "note").target_type,
        TargetType::Text,
        "BLOB SUB_TYPE TEXT has TEXT affinity"
    );
    assert_eq!(
        col("user", "flags").target_type,
        TargetType::Text,
        "INTEGER_OR_TEXT holding integers and texts that spell none: text (transfer.mixed = text)"
    );
    assert_eq!(col("flags", "enabled").target_type, TargetType::Boolean);
    assert_eq!(
        col("flags", "maybe").target_type,
        TargetType::Bigint,
        "0/1/2 is not boolean"
    );
    assert_eq!(col("times", "naive").target_type, TargetType::Timestamp);
    assert_eq!(col("times", "zoned").target_type, TargetType::Timestamptz);
    assert_eq!(
        col("times", "precise").target_type,
        TargetType::Text,
        "7-digit fractions stay text"
    );
    assert_eq!(col("times", "day").target_type, TargetType::Date);
    assert_eq!(
        col("times", "epoch_i").target_type,
        TargetType::Bigint,
        "epoch integers are not reinterpreted"
    );
    assert_eq!(col("kv", "v").target_type, TargetType::Jsonb);
    assert_eq!(
        col("child", "doc").target_type,
        TargetType::Jsonb,
        "CHECK (json_valid(doc)) makes it JSON"
    );
    assert_eq!(plan.table("docs").unwrap().kind, TableKind::FullText);
    assert!(
        plan.table("docs_data").is_none() && plan.table("docs_idx").is_none(),
        "FTS shadow tables are not copied"
    );

    // Names over 63 bytes: shortened, distinct, reported.
    let long: Vec<&str> = facts
        .long_tables
        .iter()
        .map(|t| plan.table(t).unwrap().target.as_str())
        .collect();
    assert!(
        long[0] != long[1] && long.iter().all(|t| t.len() <= 63),
        "{long:?}"
    );
    let long_cols: Vec<String> = facts
        .long_columns
        .iter()
        .map(|c| col(&facts.long_tables[0], c).target)
        .collect();
    assert!(
        long_cols[0] != long_cols[1] && long_cols.iter().all(|c| c.len() <= 63),
        "{long_cols:?}"
    );
    assert!(plan.renames.len() >= 4, "{:?}", plan.renames);

    let report = execute(&plan, &target, &opts).await.unwrap();

    // Rejects: exactly the rows whose TEXT PostgreSQL cannot hold, with the bytes in hex.
    let mut rejected: Vec<String> = report
        .rejects
        .iter()
        .map(|r| format!("{}/{}", r.table, r.key))
        .collect();
    rejected.sort();
    rejected.dedup();
    assert_eq!(
        rejected,
        vec!["texts/id=100", "texts/id=101", "texts/id=102"],
        "{:#?}",
        report.rejects
    );
    assert!(report
        .rejects
        .iter()
        .all(|r| r.bytes_hex.is_some() && !r.column.is_empty()));
    assert!(report
        .rejects
        .iter()
        .any(|r| r.bytes_hex.as_deref() == Some("66696c65966e616d65")));
    assert!(!report.is_clean());

    // Every other cell means the same.
    let mut cells = 0;
    for (table, cmp) in common::compare_all(&path, &db.url, &plan, 0).await {
        assert!(cmp.mismatches.is_empty(), "{table}: {:#?}", cmp.mismatches);
        assert!(cmp.extra.is_empty(), "{table}: extra rows {:?}", cmp.extra);
        let expected: Vec<String> = facts
            .bad_text_rows
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, id)| format!("i:{id}"))
            .collect();
        assert_eq!(cmp.missing, expected, "{table}");
        cells += cmp.cells;
    }
    assert!(cells > 200_000, "{cells} cells compared");

    // 100,000 distinct REAL epochs stay distinct (float4 would keep a few hundred).
    let mut conn = common::connect(&db.url).await;
    let distinct: i64 =
        sqlx::query_scalar(r#"SELECT count(DISTINCT at) FROM "Hostile Schema".epochs"#)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(distinct as usize, facts.distinct_epochs);

    // Constraints: keys and NOT NULLs, foreign keys validated, CHECKs, unique and other indexes.
    common::assert_keys_and_not_nulls(&db.url, &plan).await;
    let child = common::constraints(&mut conn, "Hostile Schema", "child").await;
    assert_eq!(child.foreign_keys.len(), 1);
    assert!(child.foreign_keys[0].1, "foreign key validated");
    assert_eq!(child.checks.len(), 1, "json_valid CHECK translated");
    let od = common::constraints(&mut conn, "Hostile Schema", "Order Details").await;
    assert_eq!(od.checks.len(), 1);
    assert!(od.checks[0].1);
    let user = common::constraints(&mut conn, "Hostile Schema", "user").await;
    assert_eq!(user.unique_indexes, 1, "CREATE UNIQUE INDEX carried over");
    let mixed = common::constraints(&mut conn, "Hostile Schema", "MixedCase Table").await;
    assert_eq!(
        mixed.indexes, 3,
        "primary key + expression index + partial index"
    );
    let parent = common::constraints(&mut conn, "Hostile Schema", "parent").await;
    assert_eq!(parent.unique_indexes, 1, "UNIQUE constraint carried over");

    // AUTOINCREMENT: the next id passes SQLite's high-water mark (40), not the max row (35).
    let next: i64 = sqlx::query_scalar(
        r#"INSERT INTO "Hostile Schema"."user" ("select") VALUES ('new') RETURNING id"#,
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(next, 41);

    // The full-text table is a plain table with a tsvector column and a GIN index.
    let hits: i64 = sqlx::query_scalar(
        r#"SELECT count(*) FROM "Hostile Schema".docs WHERE search_vector @@ to_tsquery('simple', 'doc')"#,
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(hits, 25);
    let gin: i64 = sqlx::query_scalar(
        r#"SELECT count(*) FROM pg_indexes WHERE schemaname = 'Hostile Schema' AND tablename = 'docs' AND indexdef LIKE '%USING gin%'"#,
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(gin, 1);

    // Views translated, typeof() on the mixed column included; what is not carried over is
    // listed with its SQLite text and reason, and keeps the report from being clean.
    let view_rows: i64 =
        sqlx::query_scalar(r#"SELECT count(*) FROM "Hostile Schema"."big orders""#)
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}: {:#?}", report.not_carried_over));
    assert_eq!(view_rows, 240);
    let mut classes: Vec<String> = sqlx::query_scalar(r#"SELECT t FROM "Hostile Schema".odd"#)
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:#?}", report.not_carried_over));
    classes.sort();
    let mut expected: Vec<String> = {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut st = c.prepare("SELECT t FROM odd").unwrap();
        let rows: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    expected.sort();
    assert_eq!(
        classes, expected,
        "typeof() of every mixed value, as SQLite says"
    );
    let not_carried = |kind: ObjectKind, text: &str| {
        report
            .not_carried_over
            .iter()
            .any(|n| n.kind == kind && n.text.contains(text) && !n.reason.is_empty())
    };
    assert!(
        not_carried(ObjectKind::Trigger, "user_touch"),
        "{:#?}",
        report.not_carried_over
    );
    assert!(
        not_carried(ObjectKind::Default, "abs(random())"),
        "{:#?}",
        report.not_carried_over
    );
    assert!(
        not_carried(ObjectKind::Collation, "CamelColumn COLLATE NOCASE"),
        "{:#?}",
        report.not_carried_over
    );
    assert!(report.unacknowledged().count() >= 3);
    let stamp_default: Option<String> = sqlx::query_scalar(
        "SELECT column_default FROM information_schema.columns WHERE table_schema = 'Hostile Schema' AND table_name = 'user' AND column_name = 'stamp'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(stamp_default.is_some_and(|d| d.contains("to_char")));

    // Report: per-table rows and rejects, totals add up.
    let texts = report.tables.iter().find(|t| t.source == "texts").unwrap();
    assert_eq!((texts.rows, texts.rejected_rows), (8, 3));
    let epochs = report.tables.iter().find(|t| t.source == "epochs").unwrap();
    assert!(
        epochs.chunks >= 2,
        "the 100,000-row table was copied in several chunks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_text_kept_as_bytea_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.sqlite");
    sqlite_gen::hostile(&path).unwrap();
    let db = ScratchDb::new("fidelity_bytea").await;
    let target = PgTarget {
        url: SecretUrl::new(db.url.clone()),
        schema: "bytes".into(),
    };
    let opts = TransferOptions {
        invalid_text: InvalidTextPolicy::Bytea,
        ..options()
    };
    let plan = plan_derived(&path, &target.schema, &opts).await.unwrap();
    let texts = plan.table("texts").unwrap();
    assert!(texts
        .columns
        .iter()
        .filter(|c| c.source != "id")
        .all(|c| c.target_type == TargetType::Bytea));
    let report = execute(&plan, &target, &opts).await.unwrap();
    assert!(report.rejects.is_empty(), "{:#?}", report.rejects);
    let mut conn = common::connect(&db.url).await;
    let cmp = common::compare_table(&path, &mut conn, "bytes", texts, 0).await;
    assert!(
        cmp.missing.is_empty() && cmp.mismatches.is_empty(),
        "{cmp:#?}"
    );
    assert_eq!(cmp.rows, 11);
}

/// The plan a person reviews before copying (`--plan-only`): every column's declared type,
/// what it holds, its target type and why. A change here is a change of behaviour.
#[tokio::test]
async fn plan_of_the_hostile_file_is_reviewed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.sqlite");
    sqlite_gen::hostile(&path).unwrap();
    let plan = plan_derived(&path, "hostile", &options()).await.unwrap();
    let text = ferry_transfer::plan_text(&plan);
    let text = text.split_once('\n').map_or("", |(_, rest)| rest);
    insta::assert_snapshot!("hostile_plan", text);
}
