//! Real-world SQLite schemas: the fidelity issue's own file and a reference-shaped one
//! transfer with nothing left behind, every constraint present in PostgreSQL and working
//! (the same rows refused and accepted as in SQLite), and the validation equal with the
//! plan, with the plan recorded in the schema, and with no plan at all. Columns joined by a
//! foreign key get one type, chosen over the foreign-key graph.

mod common;

use std::path::Path;

use common::{pg_refusal, same_view_rows, sqlite_refusal};
use ferry_core::config::MixedPolicy;
use ferry_core::plan::{ObjectKind, TargetType, TransferPlan};
use ferry_testkit::pg::ScratchDb;
use ferry_testkit::schema_gen;
use ferry_transfer::{execute, plan_derived, PgTarget, TransferOptions, TransferReport};
use ferry_validate::{validate, ValidateOptions, ValidationReport};

fn options(mixed: MixedPolicy) -> TransferOptions {
    TransferOptions {
        workers: 2,
        progress: false,
        mixed,
        ..TransferOptions::default()
    }
}

async fn transfer(
    file: &Path,
    db: &ScratchDb,
    schema: &str,
    mixed: MixedPolicy,
) -> (TransferPlan, TransferReport) {
    let target = PgTarget::new(db.url.clone(), schema);
    let plan = plan_derived(file, schema, &options(mixed)).await.unwrap();
    let report = execute(&plan, &target, &options(mixed))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (plan, report)
}

/// The validation through the given plan, through the recorded one, and through none.
async fn validations(
    file: &Path,
    db: &ScratchDb,
    schema: &str,
    plan: &TransferPlan,
) -> Vec<(&'static str, ValidationReport)> {
    let mut out = Vec::new();
    for (how, given, recorded) in [
        ("with the plan", Some(plan), false),
        ("with the recorded plan", None, true),
        ("without a plan", None, false),
    ] {
        let opts = ValidateOptions {
            recorded_plan: recorded,
            ..ValidateOptions::default()
        };
        let report = validate(file, &PgTarget::new(db.url.clone(), schema), given, &opts)
            .await
            .unwrap();
        out.push((how, report));
    }
    out
}

fn assert_equal(how: &str, v: &ValidationReport) {
    assert!(v.equal, "{how}: {}\n{}", v.summary_table(), v.details());
}

fn column_type(plan: &TransferPlan, table: &str, column: &str) -> TargetType {
    plan.table(table)
        .and_then(|t| t.columns.iter().find(|c| c.source == column))
        .map(|c| c.target_type.clone())
        .unwrap_or_else(|| panic!("{table}.{column}"))
}

/// CHECK and foreign-key constraints of a schema's tables: how many, and how many validated.
async fn constraint_counts(db: &ScratchDb, schema: &str, contype: &str) -> (i64, i64) {
    let mut conn = db.connect().await;
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE con.convalidated) FROM pg_constraint con \
         JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND con.contype = $2::\"char\" AND c.relname NOT LIKE 'ferry\\_%'",
    )
    .bind(schema)
    .bind(contype)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_file_keeps_every_constraint_and_validates_equal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issue.db");
    schema_gen::mixed_keys(&path).unwrap();
    let db = ScratchDb::new("issue").await;
    for (mixed, code_type) in [
        (MixedPolicy::Text, TargetType::Text),
        (MixedPolicy::Jsonb, TargetType::MixedJsonb),
    ] {
        let schema = format!("issue_{mixed:?}").to_lowercase();
        let (plan, report) = transfer(&path, &db, &schema, mixed).await;
        assert!(
            report.is_clean(),
            "{mixed:?}: {:#?}",
            report.not_carried_over
        );
        assert!(report.not_carried_over.is_empty() && report.rejects.is_empty());
        // One type for the key and the column referring to it.
        assert_eq!(column_type(&plan, "p", "code"), code_type);
        assert_eq!(column_type(&plan, "ch", "code"), code_type);
        assert_eq!(column_type(&plan, "p", "flag"), TargetType::Boolean);
        assert_eq!(column_type(&plan, "m", "v"), TargetType::MixedJsonb);
        assert_eq!(constraint_counts(&db, &schema, "c").await, (2, 2));
        assert_eq!(constraint_counts(&db, &schema, "f").await, (1, 1));

        // Working: the rows SQLite refuses, PostgreSQL refuses for the same constraint.
        let code = |v: &str| match mixed {
            MixedPolicy::Text => format!("'{v}'"),
            MixedPolicy::Jsonb => format!("to_jsonb('{v}'::text)"),
        };
        let mut conn = db.connect().await;
        let q = |s: &str| format!("\"{schema}\".{s}");
        assert!(
            sqlite_refusal(&path, "INSERT INTO p VALUES ('EPSG', '', 1)")
                .is_some_and(|e| e.contains("CHECK"))
        );
        assert_eq!(
            pg_refusal(
                &mut conn,
                &format!("INSERT INTO {} VALUES ('EPSG', {}, true)", q("p"), code(""))
            )
            .await
            .as_deref(),
            Some("23514")
        );
        assert!(
            sqlite_refusal(&path, "INSERT INTO ch VALUES ('EPSG', 'nope')")
                .is_some_and(|e| e.contains("FOREIGN KEY"))
        );
        assert_eq!(
            pg_refusal(
                &mut conn,
                &format!("INSERT INTO {} VALUES ('EPSG', {})", q("ch"), code("nope"))
            )
            .await
            .as_deref(),
            Some("23503")
        );
        assert_eq!(
            sqlite_refusal(&path, "INSERT INTO ch VALUES ('EPSG', 'X1')"),
            None
        );
        assert_eq!(
            pg_refusal(
                &mut conn,
                &format!("INSERT INTO {} VALUES ('EPSG', {})", q("ch"), code("X1"))
            )
            .await,
            None
        );
        for (how, v) in validations(&path, &db, &schema, &plan).await {
            assert_equal(how, &v);
        }

        // A class changed in PostgreSQL is a difference, in a value and in a composite key.
        sqlx::raw_sql(&format!(
            "UPDATE {} SET v = '\"7\"' WHERE id = 2; UPDATE {} SET code = {} WHERE code = {}",
            q("m"),
            q("p"),
            match mixed {
                MixedPolicy::Text => "'X2'".to_owned(),
                MixedPolicy::Jsonb => "'{\"$blob\": \"5831\"}'::jsonb".to_owned(),
            },
            code("X1")
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        for (how, v) in validations(&path, &db, &schema, &plan).await {
            let m = v.tables.iter().find(|t| t.source == "m").unwrap();
            let diff = m.diff.as_ref().unwrap_or_else(|| panic!("{how}: m equal"));
            assert_eq!((diff.changed, diff.missing, diff.extra), (1, 0, 0), "{how}");
            assert_eq!(diff.changed_examples[0].columns[0].column, "v");
            let p = v.tables.iter().find(|t| t.source == "p").unwrap();
            let diff = p.diff.as_ref().unwrap_or_else(|| panic!("{how}: p equal"));
            assert_eq!((diff.missing, diff.extra), (1, 1), "{how}");
            assert!(
                diff.missing_examples[0].key[1].contains("X1"),
                "{how}: {diff:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_shaped_file_transfers_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.db");
    let facts = schema_gen::reference(&path).unwrap();
    assert!(facts.tables >= 30 && facts.checks >= 100 && facts.triggers >= 5 && facts.views >= 5);
    let db = ScratchDb::new("reference").await;
    for mixed in [MixedPolicy::Text, MixedPolicy::Jsonb] {
        let schema = format!("ref_{mixed:?}").to_lowercase();
        let (plan, report) = transfer(&path, &db, &schema, mixed).await;
        assert!(
            report.not_carried_over.is_empty(),
            "{mixed:?}: {:#?}",
            report.not_carried_over
        );
        assert!(report.is_clean());
        // Every constraint present and validated.
        let checks = facts.checks as i64;
        assert_eq!(constraint_counts(&db, &schema, "c").await, (checks, checks));
        let fks = facts.foreign_keys as i64;
        assert_eq!(constraint_counts(&db, &schema, "f").await, (fks, fks));
        let mut conn = db.connect().await;
        let (triggers, views): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal), \
                    (SELECT count(*) FROM pg_views WHERE schemaname = $1)",
        )
        .bind(&schema)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            (triggers, views),
            (facts.triggers as i64, facts.views as i64)
        );
        // The generated column is computed by PostgreSQL.
        let generated: String = sqlx::query_scalar(
            "SELECT attgenerated::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'area_class'",
        )
        .bind(format!("\"{schema}\".extent"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(generated, "s");
        // Every view returns the rows SQLite's does.
        for view in [
            "crs_view",
            "object_view",
            "authority_list",
            "recent_changes",
            "operation_steps",
            "ellipsoid_summary",
        ] {
            let unordered: &[(usize, char)] = if view == "authority_list" {
                &[(2, ';')]
            } else {
                &[]
            };
            let n = same_view_rows(&path, &mut conn, &schema, view, unordered)
                .await
                .unwrap_or_else(|e| panic!("{mixed:?}: {e}"));
            assert!(n > 0, "{view} is empty");
        }
        for (how, v) in validations(&path, &db, &schema, &plan).await {
            assert_equal(how, &v);
            assert!(v.constraints.source_checks >= facts.checks as u64, "{how}");
        }
    }

    // The triggers refuse and accept the same statements in both engines.
    let schema = "ref_text";
    let mut conn = db.connect().await;
    sqlx::query(&format!("SET search_path TO {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let ellipsoid = |uom: i64| {
        format!(
            "INSERT INTO ellipsoid (auth_name, code, name, deprecated, celestial_body_auth_name, celestial_body_code, semi_major_axis, uom_auth_name, uom_code, inv_flattening) \
             VALUES ('EPSG', '77777', 'Probe', {{bool}}, 'EPSG', '1', 6378137.0, 'EPSG', '{uom}', 298.3)"
        )
    };
    let crs = |code: i64| {
        format!(
            "INSERT INTO geodetic_crs (auth_name, code, name, deprecated, type, coordinate_system_auth_name, coordinate_system_code, datum_auth_name, datum_code) \
             VALUES ('EPSG', '{code}', 'Probe', {{bool}}, 'geographic 2D', 'EPSG', '4400', 'EPSG', '6000')"
        )
    };
    let probes: Vec<(String, bool)> = vec![
        // An angle unit for an ellipsoid's axis; a length unit.
        (ellipsoid(9001), false),
        (ellipsoid(9000), true),
        // A code a projected CRS already has (the trigger looks into a view); a new one.
        (crs(32600), false),
        (crs(99999), true),
        // param_count may only grow.
        (
            "UPDATE conversion_method SET param_count = 0 WHERE code = '9603'".into(),
            false,
        ),
        (
            "UPDATE conversion_method SET param_count = 5 WHERE code = '9603'".into(),
            true,
        ),
        // A unit an ellipsoid uses; a unit nothing uses.
        (
            "DELETE FROM unit_of_measure WHERE auth_name = 'EPSG' AND code = '9000'".into(),
            false,
        ),
        (
            "DELETE FROM unit_of_measure WHERE auth_name = 'EPSG' AND code = '9002'".into(),
            true,
        ),
    ];
    for (sql, accepted) in probes {
        let lite = sqlite_refusal(&path, &sql.replace("{bool}", "0"));
        let pg = pg_refusal(&mut conn, &sql.replace("{bool}", "false")).await;
        assert_eq!(lite.is_none(), accepted, "SQLite: {sql}: {lite:?}");
        assert_eq!(pg.is_none(), accepted, "PostgreSQL: {sql}: {pg:?}");
        if !accepted {
            // Refused by the trigger, not by a type or another constraint.
            assert!(
                lite.is_some_and(|e| e.contains("violates constraint")),
                "{sql}"
            );
            assert_eq!(pg.as_deref(), Some("23514"), "{sql}");
        }
    }
    // The trigger that stamps an edited row.
    let stamped: bool = {
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query("UPDATE change_log SET note = 'probe' WHERE id = 1")
            .execute(&mut conn)
            .await
            .unwrap();
        let s: bool = sqlx::query_scalar(
            "SELECT edited_at BETWEEN now() - interval '1 hour' AND now() + interval '1 hour' FROM change_log WHERE id = 1",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
        s
    };
    assert!(stamped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_key_types_are_chosen_over_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         -- The parent holds every child value: its type wins.
         CREATE TABLE authority (code INTEGER_OR_TEXT PRIMARY KEY);
         CREATE TABLE uses (id INTEGER PRIMARY KEY, code INTEGER_OR_TEXT REFERENCES authority (code));
         INSERT INTO authority VALUES (4326), ('X1');
         INSERT INTO uses (code) VALUES (4326), (4326);
         CREATE TABLE reading (at REAL PRIMARY KEY);
         CREATE TABLE mark (at INTEGER REFERENCES reading (at));
         INSERT INTO reading VALUES (1.5), (2.0);
         INSERT INTO mark VALUES (2);
         -- Neither holds the other's values: both widen to text.
         CREATE TABLE kind (k INT PRIMARY KEY);
         CREATE TABLE tagged (k TEXT REFERENCES kind (k));
         INSERT INTO kind VALUES (5), (6);
         INSERT INTO tagged VALUES ('5');
         -- A rowid key is never widened: the foreign key is reported instead.
         CREATE TABLE owner (id INTEGER PRIMARY KEY);
         CREATE TABLE pet (owner_id TEXT REFERENCES owner (id));
         INSERT INTO owner VALUES (7);
         INSERT INTO pet VALUES ('7');",
    )
    .unwrap();
    drop(conn);
    let db = ScratchDb::new("graph").await;
    let (plan, report) = transfer(&path, &db, "graph", MixedPolicy::Text).await;
    assert_eq!(column_type(&plan, "uses", "code"), TargetType::Text);
    assert_eq!(column_type(&plan, "authority", "code"), TargetType::Text);
    assert_eq!(
        column_type(&plan, "reading", "at"),
        TargetType::DoublePrecision
    );
    assert_eq!(
        column_type(&plan, "mark", "at"),
        TargetType::DoublePrecision
    );
    assert_eq!(column_type(&plan, "kind", "k"), TargetType::Text);
    assert_eq!(column_type(&plan, "tagged", "k"), TargetType::Text);
    assert_eq!(column_type(&plan, "owner", "id"), TargetType::Bigint);
    assert_eq!(column_type(&plan, "pet", "owner_id"), TargetType::Text);
    // Three foreign keys hold; the fourth is listed with PostgreSQL's reason.
    assert_eq!(constraint_counts(&db, "graph", "f").await, (3, 3));
    let lost: Vec<_> = report.unacknowledged().collect();
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_eq!(lost[0].kind, ObjectKind::ForeignKey);
    assert_eq!(lost[0].table, "pet");
    assert!(
        lost[0].reason.contains("incompatible types"),
        "{}",
        lost[0].reason
    );
    assert!(!report.is_clean());
    for (how, v) in validations(&path, &db, "graph", &plan).await {
        assert!(
            v.tables.iter().all(|t| t.diff.is_none()),
            "{how}: {}",
            v.summary_table()
        );
    }
}
