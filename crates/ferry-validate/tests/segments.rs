//! The row-level diff on tables of many rows: segments by sampled key ranges, range reads
//! that select exactly the same rows on both sides (integer keys, text keys whose column
//! collation is not byte order, keys of other types filtered in ferry), and splitting of
//! a large differing segment until rows are compared.

mod common;

use common::{assert_equal, only_difference, table, Fixture};
use ferry_validate::ValidateOptions;

fn small_segments(leaf_rows: u64) -> ValidateOptions {
    ValidateOptions {
        leaf_rows,
        ..ValidateOptions::default()
    }
}

#[tokio::test]
async fn few_changes_among_many_integer_keyed_rows_are_located() {
    let fx = Fixture::new("seg_int").await;
    fx.lite_exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v REAL, doc TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
         INSERT INTO t SELECT i, 'row-' || i, i * 0.5, '{\"i\": ' || i || '}' FROM c;",
    );
    fx.pg_exec(
        "CREATE TABLE t (id bigint PRIMARY KEY, name text, v double precision, doc jsonb);
         INSERT INTO t SELECT i, 'row-' || i, i * 0.5, ('{\"i\":' || i || '}')::jsonb FROM generate_series(1, 20000) i;",
    )
    .await;
    let opts = small_segments(500);
    assert_equal(&fx.validate_with(None, &opts).await);
    fx.pg_exec(
        "UPDATE t SET name = 'changed' WHERE id IN (17, 9000);
         UPDATE t SET v = v + 1 WHERE id = 19999;
         DELETE FROM t WHERE id = 5000;
         INSERT INTO t VALUES (0, 'first', 0, '{}'), (30000, 'last', 0, '{}');",
    )
    .await;
    let report = fx.validate_with(None, &opts).await;
    let diff = only_difference(&report, "t");
    assert_eq!(
        (diff.missing, diff.extra, diff.changed),
        (1, 2, 3),
        "{diff:#?}"
    );
    assert_eq!(diff.missing_examples[0].key, vec!["5000"]);
    let extra: Vec<&str> = diff
        .extra_examples
        .iter()
        .map(|e| e.key[0].as_str())
        .collect();
    assert_eq!(extra, vec!["0", "30000"]);
    let changed: Vec<(&str, &str)> = diff
        .changed_examples
        .iter()
        .map(|e| (e.key[0].as_str(), e.columns[0].column.as_str()))
        .collect();
    assert_eq!(
        changed,
        vec![("17", "name"), ("9000", "name"), ("19999", "v")]
    );
    assert_eq!(diff.segments, 40);
    // Only the segments holding a change were read back, and only once.
    assert!(diff.segments_differing <= 6, "{diff:#?}");
    assert_eq!(diff.levels, 1);
    assert!(diff.rows_compared < 6 * 2 * 600, "{diff:#?}");
    // The range predicates restricted what the databases sent: not a filtered full scan.
    assert_eq!(diff.rows_read, diff.rows_compared, "{diff:#?}");
    assert!(
        table(&report, "t").notes.is_empty(),
        "ranges were pushed into SQL"
    );
}

#[tokio::test]
async fn text_key_ranges_follow_byte_order_whatever_the_column_collation() {
    let fx = Fixture::new("seg_text").await;
    // Keys starting with 'a', 'B' and 'é': byte order (B < a < é) differs from the
    // ICU order of the PostgreSQL column (a < B < é), so a range predicate that did not
    // compare with COLLATE "C" would select other rows than SQLite's.
    fx.lite_exec(
        "CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 6000)
         INSERT INTO t SELECT CASE i % 3 WHEN 0 THEN 'a' WHEN 1 THEN 'B' ELSE 'é' END || printf('%05d', i), i FROM c;",
    );
    fx.pg_exec(
        "CREATE TABLE t (k text COLLATE \"und-x-icu\" PRIMARY KEY, n bigint);
         INSERT INTO t SELECT CASE i % 3 WHEN 0 THEN 'a' WHEN 1 THEN 'B' ELSE 'é' END || lpad(i::text, 5, '0'), i FROM generate_series(1, 6000) i;",
    )
    .await;
    let opts = small_segments(200);
    assert_equal(&fx.validate_with(None, &opts).await);
    fx.pg_exec("UPDATE t SET n = -1 WHERE k IN ('a00003', 'B04000', 'é05999')")
        .await;
    let report = fx.validate_with(None, &opts).await;
    let diff = only_difference(&report, "t");
    assert_eq!(
        (diff.missing, diff.extra, diff.changed),
        (0, 0, 3),
        "{diff:#?}"
    );
    let keys: Vec<&str> = diff
        .changed_examples
        .iter()
        .map(|e| e.key[0].as_str())
        .collect();
    assert_eq!(keys, vec!["\"B04000\"", "\"a00003\"", "\"é05999\""]);
    assert!(diff.segments_differing <= 3);
    assert_eq!(diff.rows_read, diff.rows_compared, "{diff:#?}");
    assert!(
        table(&report, "t").notes.is_empty(),
        "ranges were pushed into SQL"
    );
}

#[tokio::test]
async fn a_large_differing_segment_is_split_until_rows_are_compared() {
    let fx = Fixture::new("seg_split").await;
    fx.lite_exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000) INSERT INTO t SELECT i, i FROM c;",
    );
    // 20,000 extra rows all beyond the last source key: one segment, far above the leaf
    // size, so it is split by keys sampled from the target.
    fx.pg_exec("CREATE TABLE t (id bigint PRIMARY KEY, n bigint); INSERT INTO t SELECT i, i FROM generate_series(1, 21000) i;").await;
    let report = fx.validate_with(None, &small_segments(500)).await;
    let diff = only_difference(&report, "t");
    assert_eq!((diff.missing, diff.extra, diff.changed), (0, 20000, 0));
    assert!(diff.levels >= 2, "{diff:#?}");
    assert_eq!(diff.extra_examples.len(), 20);
    assert_eq!(diff.extra_examples[0].key, vec!["1001"]);
    assert_eq!(table(&report, "t").target_rows, 21000);
}

#[tokio::test]
async fn keys_of_other_types_are_segmented_and_filtered_in_ferry() {
    let fx = Fixture::new("seg_ts").await;
    fx.lite_exec(
        "CREATE TABLE t (at TEXT PRIMARY KEY, n INTEGER);
         WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 2999)
         INSERT INTO t SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 1735689600 + i * 60, 'unixepoch'), i FROM c;",
    );
    fx.pg_exec(
        "CREATE TABLE t (at timestamptz PRIMARY KEY, n bigint);
         INSERT INTO t SELECT to_timestamp(1735689600 + i * 60), i FROM generate_series(0, 2999) i;",
    )
    .await;
    let opts = small_segments(200);
    assert_equal(&fx.validate_with(None, &opts).await);
    fx.pg_exec("UPDATE t SET n = -5 WHERE n = 1234").await;
    let report = fx.validate_with(None, &opts).await;
    let diff = only_difference(&report, "t");
    assert_eq!((diff.missing, diff.extra, diff.changed), (0, 0, 1));
    assert_eq!(diff.changed_examples[0].key, vec!["2025-01-01T20:34:00Z"]);
    assert_eq!(diff.changed_examples[0].columns[0].target, "-5");
    assert!(
        !table(&report, "t").notes.is_empty(),
        "timestamps are not pushed into SQL"
    );
    assert_eq!(
        diff.rows_read, 6000,
        "a full scan of both sides, filtered in ferry"
    );
}
