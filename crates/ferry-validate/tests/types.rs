//! Each comparison domain on real databases: what is a representation change (equal) and
//! what is a difference (reported with key, column and both values), with and without a
//! transfer plan; tables without a primary key; missing tables and columns.

mod common;

use common::{assert_equal, only_difference, table, Fixture};
use ferry_core::config::TimestampConfig;
use ferry_core::plan::{ColumnPlan, PlanMode, TableKind, TablePlan, TargetType, TransferPlan};
use ferry_core::value::affinity;
use ferry_validate::{Domain, ValidateOptions, Verdict};

fn column(source: &str, target: &str, declared: &str, target_type: TargetType) -> ColumnPlan {
    ColumnPlan {
        source: source.into(),
        target: target.into(),
        declared_type: declared.into(),
        affinity: affinity(declared),
        target_type,
        not_null: false,
        profile: Default::default(),
        reason: String::new(),
        generated: None,
    }
}

fn plan(schema: &str, tables: Vec<TablePlan>) -> TransferPlan {
    TransferPlan {
        source: "source.sqlite3".into(),
        target_schema: schema.into(),
        mode: PlanMode::Derived,
        tables,
        renames: Vec::new(),
        warnings: Vec::new(),
    }
}

#[tokio::test]
async fn bytea_numeric_uuid_date_and_real_arrays() {
    let fx = Fixture::new("types").await;
    fx.lite_exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB, price NUMERIC, ratio REAL, u TEXT, d TEXT, v BLOB, f REAL);
         INSERT INTO t VALUES (1, x'00ff10', 12.5, 0.1, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '2025-02-28', x'0000803f00000040', 1e-300);
         INSERT INTO t VALUES (2, x'', 7, -0.0, NULL, NULL, NULL, 5);
         INSERT INTO t VALUES (3, NULL, '3.10', NULL, '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12}', '1999-12-31', x'', 123456789012);",
    );
    fx.pg_exec(
        "CREATE TABLE t (id bigint PRIMARY KEY, data bytea, price numeric(10,2), ratio double precision, u uuid, d date, v real[], f float8);
         INSERT INTO t VALUES (1, '\\x00ff10', 12.50, 0.1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2025-02-28', '{1,2}', 1e-300);
         INSERT INTO t VALUES (2, '', 7.00, 0, NULL, NULL, NULL, 5);
         INSERT INTO t VALUES (3, NULL, 3.1, NULL, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '1999-12-31', '{}', 123456789012);",
    )
    .await;
    let report = fx.validate().await;
    assert_equal(&report);
    let domains: Vec<Domain> = table(&report, "t")
        .columns
        .iter()
        .map(|c| c.compared_as)
        .collect();
    use Domain::*;
    assert_eq!(
        domains,
        vec![Integer, Bytes, Numeric, Float, Uuid, Date, FloatArray, Float]
    );

    // One byte of a blob; a numeric one cent off; a date one day off.
    fx.pg_exec("UPDATE t SET data = '\\x00fe10' WHERE id = 1; UPDATE t SET price = 7.01 WHERE id = 2; UPDATE t SET d = '2000-01-01' WHERE id IN (2, 3)").await;
    let report = fx.validate().await;
    let diff = only_difference(&report, "t");
    assert_eq!(
        (diff.missing, diff.extra, diff.changed),
        (0, 0, 3),
        "{diff:#?}"
    );
    let cells: Vec<(String, String, String, String)> = diff
        .changed_examples
        .iter()
        .flat_map(|r| {
            r.columns.iter().map(move |c| {
                (
                    r.key[0].clone(),
                    c.column.clone(),
                    c.source.clone(),
                    c.target.clone(),
                )
            })
        })
        .collect();
    assert_eq!(
        cells,
        vec![
            (
                "1".into(),
                "data".into(),
                "x'00ff10'".into(),
                "x'00fe10'".into()
            ),
            ("2".into(), "price".into(), "7".into(), "7.01".into()),
            ("2".into(), "d".into(), "NULL".into(), "2000-01-01".into()),
            (
                "3".into(),
                "d".into(),
                "1999-12-31".into(),
                "2000-01-01".into()
            ),
        ]
    );
}

#[tokio::test]
async fn a_plan_maps_renamed_tables_and_columns_and_says_boolean() {
    let fx = Fixture::new("plan").await;
    fx.lite_exec(
        "CREATE TABLE \"Order Details\" (\"OrderID\" INTEGER PRIMARY KEY, \"Active\" TEXT, \"Qty\" INTEGER, \"Misc\");
         INSERT INTO \"Order Details\" VALUES (1, '1', 5, 5), (2, '0', 6, 5.0), (3, 'true', 7, 'text'), (4, 'false', 8, x'ab'), (5, NULL, 9, NULL);",
    );
    fx.pg_exec(
        "CREATE TABLE order_details (order_id bigint PRIMARY KEY, active boolean, qty bigint, misc jsonb);
         INSERT INTO order_details VALUES (1, true, 5, '5'), (2, false, 6, '5.0'), (3, true, 7, '\"text\"'), (4, false, 8, '{\"$blob\": \"ab\"}'), (5, NULL, 9, NULL);",
    )
    .await;
    let plan = plan(
        &fx.pg.name,
        vec![TablePlan {
            source: "Order Details".into(),
            target: "order_details".into(),
            kind: TableKind::Table,
            primary_key: vec!["OrderID".into()],
            columns: vec![
                column("OrderID", "order_id", "INTEGER", TargetType::Bigint),
                column("Active", "active", "TEXT", TargetType::Boolean),
                column("Qty", "qty", "INTEGER", TargetType::Bigint),
                column("Misc", "misc", "", TargetType::MixedJsonb),
            ],
            source_rows: 5,
        }],
    );
    let report = fx
        .validate_with(Some(&plan), &ValidateOptions::default())
        .await;
    assert_equal(&report);
    assert!(report.plan_used);
    let t = table(&report, "Order Details");
    assert_eq!(t.target.as_deref(), Some("order_details"));
    assert_eq!(t.columns[1].compared_as, Domain::BooleanOrText);
    assert_eq!(t.columns[3].compared_as, Domain::Mixed);

    // A REAL that came back as an integer lost its storage class.
    fx.pg_exec("UPDATE order_details SET misc = '5' WHERE order_id = 2")
        .await;
    let report = fx
        .validate_with(Some(&plan), &ValidateOptions::default())
        .await;
    let diff = only_difference(&report, "Order Details");
    assert_eq!(diff.changed_by_column.get("Misc"), Some(&1));
    assert_eq!(diff.changed_examples[0].columns[0].source, "5.0");
    assert_eq!(diff.changed_examples[0].columns[0].target, "5");
}

#[tokio::test]
async fn text_zero_one_is_a_boolean_only_where_the_plan_says_so() {
    let fx = Fixture::new("bool").await;
    fx.lite_exec("CREATE TABLE flags (id INTEGER PRIMARY KEY, on_off TEXT); INSERT INTO flags VALUES (1, '1'), (2, '0');");
    fx.pg_exec("CREATE TABLE flags (id bigint PRIMARY KEY, on_off boolean); INSERT INTO flags VALUES (1, true), (2, false);").await;
    // By name, a TEXT is not a boolean: both rows are reported, with the reason.
    let report = fx.validate().await;
    let diff = only_difference(&report, "flags");
    assert_eq!(diff.changed, 2);
    assert_eq!(
        diff.changed_examples[0].columns[0].source,
        "text \"1\" (not comparable as boolean)"
    );
    let plan = plan(
        &fx.pg.name,
        vec![TablePlan {
            source: "flags".into(),
            target: "flags".into(),
            kind: TableKind::Table,
            primary_key: vec!["id".into()],
            columns: vec![
                column("id", "id", "INTEGER", TargetType::Bigint),
                column("on_off", "on_off", "TEXT", TargetType::Boolean),
            ],
            source_rows: 2,
        }],
    );
    assert_equal(
        &fx.validate_with(Some(&plan), &ValidateOptions::default())
            .await,
    );
}

#[tokio::test]
async fn a_table_without_primary_key_is_a_multiset() {
    let fx = Fixture::new("multiset").await;
    fx.lite_exec("CREATE TABLE log (msg TEXT, n INTEGER); INSERT INTO log VALUES ('a', 1), ('a', 1), ('b', 2), ('d', NULL);");
    fx.pg_exec("CREATE TABLE log (msg text, n bigint); INSERT INTO log VALUES ('d', NULL), ('b', 2), ('a', 1), ('a', 1);").await;
    let report = fx.validate().await;
    assert_equal(&report);
    assert!(table(&report, "log").key_columns.is_empty());
    // One of the duplicates is gone and a row changed: a changed row of a multiset is one
    // missing and one extra row.
    fx.pg_exec("DELETE FROM log WHERE ctid = (SELECT min(ctid) FROM log WHERE msg = 'a'); UPDATE log SET n = 3 WHERE msg = 'b';").await;
    let report = fx.validate().await;
    let diff = only_difference(&report, "log");
    assert_eq!((diff.missing, diff.extra, diff.changed), (2, 1, 0));
    let mut missing: Vec<(Vec<String>, u64)> = diff
        .missing_examples
        .iter()
        .map(|e| (e.key.clone(), e.count))
        .collect();
    missing.sort();
    assert_eq!(
        missing,
        vec![
            (vec!["\"a\"".into(), "1".into()], 1),
            (vec!["\"b\"".into(), "2".into()], 1)
        ]
    );
    assert_eq!(diff.extra_examples[0].key, vec!["\"b\"", "3"]);
}

#[tokio::test]
async fn values_the_target_type_cannot_hold_are_differences() {
    let fx = Fixture::new("unconvertible").await;
    fx.lite_exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, at TEXT, j TEXT);
         INSERT INTO t VALUES (1, 'abc', CAST(x'61ff62' AS TEXT), '2025-01-01T00:00:00.1234567Z', '{bad json');
         INSERT INTO t VALUES (2, 2, 'ok', '2025-01-01T00:00:00Z', '{}');",
    );
    fx.pg_exec(
        "CREATE TABLE t (id bigint PRIMARY KEY, n bigint, s text, at timestamptz, j jsonb);
         INSERT INTO t VALUES (1, NULL, 'a\u{fffd}b', '2025-01-01T00:00:00.123457Z', NULL);
         INSERT INTO t VALUES (2, 2, 'ok', '2025-01-01T00:00:00Z', '{}');",
    )
    .await;
    let report = fx.validate().await;
    let diff = only_difference(&report, "t");
    assert_eq!(diff.changed, 1);
    let cols: Vec<(&str, &str)> = diff.changed_examples[0]
        .columns
        .iter()
        .map(|c| (c.column.as_str(), c.source.as_str()))
        .collect();
    assert_eq!(
        cols,
        vec![
            ("n", "text \"abc\" (not comparable as integer)"),
            ("s", "(invalid UTF-8) x'61ff62'"),
            (
                "at",
                "text \"2025-01-01T00:00:00.1234567Z\" (not comparable as timestamp)"
            ),
            ("j", "text \"{bad json\" (not comparable as json)"),
        ]
    );
}

#[tokio::test]
async fn naive_timestamps_read_at_the_configured_offset() {
    let fx = Fixture::new("naive").await;
    fx.lite_exec("CREATE TABLE e (id INTEGER PRIMARY KEY, at TEXT, local TEXT); INSERT INTO e VALUES (1, '2025-01-01 10:00:00', '2025-01-01 10:00:00');");
    fx.pg_exec("CREATE TABLE e (id bigint PRIMARY KEY, at timestamptz, local timestamp); INSERT INTO e VALUES (1, '2025-01-01T08:00:00Z', '2025-01-01 10:00:00');").await;
    let opts = ValidateOptions {
        timestamps: TimestampConfig {
            naive: "+02:00".into(),
        },
        ..ValidateOptions::default()
    };
    assert_equal(&fx.validate_with(None, &opts).await);
    // Read as UTC, the naive text is two hours later than the timestamptz.
    let report = fx.validate().await;
    let diff = only_difference(&report, "e");
    assert_eq!(
        diff.changed_by_column.keys().collect::<Vec<_>>(),
        vec!["at"]
    );
}

#[tokio::test]
async fn missing_tables_columns_and_extra_tables() {
    let fx = Fixture::new("shape").await;
    fx.lite_exec(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT, gone TEXT); INSERT INTO a VALUES (1, 'x', 'lost');
         CREATE TABLE only_here (id INTEGER PRIMARY KEY); INSERT INTO only_here VALUES (1);
         CREATE TABLE ferry_ledger (id INTEGER PRIMARY KEY);",
    );
    fx.pg_exec(
        "CREATE TABLE a (id bigint PRIMARY KEY, x text, added text); INSERT INTO a VALUES (1, 'x', 'new');
         CREATE TABLE only_there (id bigint PRIMARY KEY); INSERT INTO only_there VALUES (1), (2);
         CREATE TABLE empty_there (id bigint);",
    )
    .await;
    let report = fx.validate().await;
    assert!(!report.equal);
    let a = table(&report, "a");
    assert_eq!(a.verdict, Verdict::Different);
    assert_eq!(a.missing_columns, vec!["gone"]);
    assert_eq!(a.extra_columns, vec!["added"]);
    assert_eq!(
        table(&report, "only_here").verdict,
        Verdict::MissingOnTarget
    );
    assert_eq!(table(&report, "only_here").source_rows, 1);
    assert_eq!(table(&report, "only_there").verdict, Verdict::ExtraOnTarget);
    assert_eq!(table(&report, "only_there").target_rows, 2);
    assert_eq!(
        report.totals.tables_different, 3,
        "an empty extra table is not a difference"
    );
    assert!(
        report.tables.iter().all(|t| t.name() != "ferry_ledger"),
        "ferry's own tables are left out"
    );
    // Asked for by name, ferry's table is compared (and is missing on the target).
    let opts = ValidateOptions {
        tables: vec!["ferry_ledger".into()],
        ..ValidateOptions::default()
    };
    let report = fx.validate_with(None, &opts).await;
    assert_eq!(report.tables.len(), 1);
    assert_eq!(report.tables[0].verdict, Verdict::MissingOnTarget);
}
