//! The validation agrees with the transfer on every documented representation without any
//! plan (the bookkeeping dropped): identifiers shortened to 63 bytes or holding quotes, a
//! STRICT table's `ANY` columns, and the mixed-class `sqlite_value` scalars in values and in
//! composite keys. Each class changed in PostgreSQL is still caught.

mod common;

use ferry_core::plan::TargetType;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{execute, plan_derived, PgTarget, TransferOptions};
use ferry_validate::{validate, ValidateOptions};

const LONG_TABLE: &str = "a_table_whose_name_is_far_longer_than_postgresql_allows_an_identifier";
const LONG_COLUMN: &str = "a column whose name is also far longer than postgresql allows, yes";

fn schema_sql() -> String {
    format!(
        r#"
CREATE TABLE "{LONG_TABLE}" (id INTEGER PRIMARY KEY, "{LONG_COLUMN}" TEXT, "quote""d" INTEGER);
INSERT INTO "{LONG_TABLE}" VALUES (1, 'long', 5), (2, NULL, -1);
CREATE TABLE s (id INTEGER PRIMARY KEY, v ANY) STRICT;
INSERT INTO s VALUES (1, 7), (2, 7.5), (3, '7'), (4, x'00ff'), (5, 9e999), (6, NULL), (7, 1e300), (8, 'n/a');
CREATE TABLE k (a TEXT NOT NULL, b ANY NOT NULL, note TEXT, PRIMARY KEY (a, b)) STRICT;
INSERT INTO k VALUES ('EPSG', 1, 'int'), ('EPSG', 'X1', 'text'), ('EPSG', 2.5, 'real'), ('ESRI', x'01', 'blob'), ('ESRI', '1', 'text one');
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validation_needs_no_plan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agree.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&schema_sql())
        .unwrap();
    let db = ScratchDb::new("agree").await;
    let target = PgTarget::new(db.url.clone(), "agree");
    let opts = TransferOptions {
        workers: 2,
        progress: false,
        ..TransferOptions::default()
    };
    let plan = plan_derived(&path, "agree", &opts).await.unwrap();
    assert_eq!(
        plan.table("s").unwrap().columns[1].target_type,
        TargetType::MixedJsonb
    );
    assert_eq!(
        plan.table("k").unwrap().columns[1].target_type,
        TargetType::MixedJsonb
    );
    let long = plan.table(LONG_TABLE).unwrap();
    assert_ne!(long.target, LONG_TABLE);
    assert_ne!(long.columns[1].target, LONG_COLUMN);
    let report = execute(&plan, &target, &opts).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.not_carried_over);

    // No plan at all: the bookkeeping is gone.
    let mut conn = db.connect().await;
    sqlx::raw_sql(
        "DROP TABLE agree.ferry_transfer_runs, agree.ferry_transfer_checkpoints, agree.ferry_transfer_rejects, \
         agree.ferry_transfer_steps, agree.ferry_transfer_acknowledgements",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let check = || async {
        validate(&path, &target, None, &ValidateOptions::default())
            .await
            .unwrap()
    };
    let v = check().await;
    assert!(v.plan_source.is_none());
    assert!(v.equal, "{}\n{}", v.summary_table(), v.details());

    // One change of class (or of value) per mixed value, and one in a composite key.
    sqlx::raw_sql(
        r#"UPDATE agree.s SET v = '7.0' WHERE id = 1;
           UPDATE agree.s SET v = '"7.5"' WHERE id = 2;
           UPDATE agree.s SET v = '7' WHERE id = 3;
           UPDATE agree.s SET v = '{"$blob": "00fe"}' WHERE id = 4;
           UPDATE agree.s SET v = '{"$real": "-Infinity"}' WHERE id = 5;
           UPDATE agree.k SET b = '"1"' WHERE a = 'EPSG' AND b = '1';"#,
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let v = check().await;
    let s = v.tables.iter().find(|t| t.source == "s").unwrap();
    let diff = s.diff.as_ref().expect("s differs");
    assert_eq!(
        (diff.changed, diff.missing, diff.extra),
        (5, 0, 0),
        "{diff:#?}"
    );
    let k = v.tables.iter().find(|t| t.source == "k").unwrap();
    let diff = k.diff.as_ref().expect("k differs");
    // ("EPSG", 1) is gone and ("EPSG", "1") appeared; ("ESRI", "1") is untouched.
    assert_eq!(
        (diff.changed, diff.missing, diff.extra),
        (0, 1, 1),
        "{diff:#?}"
    );
    assert_eq!(diff.missing_examples[0].key, vec!["\"EPSG\"", "1"]);
    assert_eq!(diff.extra_examples[0].key, vec!["\"EPSG\"", "\"1\""]);
}
