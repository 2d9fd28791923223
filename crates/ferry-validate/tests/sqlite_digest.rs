//! The SQLite-only building block: per-table digests of one file, so two files (or one file
//! before and after) can be compared with the same canonical encoding.

use ferry_validate::{digest_sqlite, DigestOptions, ValidateError};

fn make(path: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

const SCHEMA: &str = "
CREATE TABLE a (id INTEGER PRIMARY KEY, v);
CREATE TABLE b (x TEXT, y BLOB);
CREATE TABLE ferry_import_ledger (path TEXT PRIMARY KEY);
INSERT INTO ferry_import_ledger VALUES ('one');";

#[test]
fn equal_files_digest_equal_and_every_change_shows() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.db"), dir.path().join("two.db"));
    // Same rows, inserted in another order.
    make(&one, &format!("{SCHEMA} INSERT INTO a VALUES (1, 1), (2, 'x'), (3, 2.5), (4, NULL); INSERT INTO b VALUES ('p', x'00'), ('p', x'00'), ('q', NULL);"));
    make(&two, &format!("{SCHEMA} INSERT INTO b VALUES ('q', NULL), ('p', x'00'), ('p', x'00'); INSERT INTO a VALUES (4, NULL), (3, 2.5), (2, 'x'), (1, 1);"));
    let d1 = digest_sqlite(&one, &DigestOptions::default()).unwrap();
    let d2 = digest_sqlite(&two, &DigestOptions::default()).unwrap();
    assert_eq!(d1, d2);
    assert_eq!(d1.tables.len(), 2, "ferry's own tables are left out");
    assert_eq!(d1.table("b").unwrap().count, 3);
    assert!(d1.differences(&d2).is_empty());

    // INTEGER 1 and TEXT '1' are different values; so is a lost duplicate.
    let conn = rusqlite::Connection::open(&two).unwrap();
    conn.execute_batch("UPDATE a SET v = '1' WHERE id = 1")
        .unwrap();
    let d3 = digest_sqlite(&two, &DigestOptions::default()).unwrap();
    assert_eq!(d1.differences(&d3).len(), 1);
    assert!(d1.differences(&d3)[0].starts_with("table a differs"));
    conn.execute_batch("UPDATE a SET v = 1 WHERE id = 1; DELETE FROM b WHERE rowid = (SELECT min(rowid) FROM b WHERE x = 'p')").unwrap();
    let d4 = digest_sqlite(&two, &DigestOptions::default()).unwrap();
    assert_eq!(d1.differences(&d4), vec![d1.differences(&d4)[0].clone()]);
    assert!(d1.differences(&d4)[0].starts_with("table b differs"));

    let only = DigestOptions {
        tables: vec!["ferry_import_ledger".into()],
        include_ferry_tables: false,
    };
    assert_eq!(digest_sqlite(&one, &only).unwrap().tables.len(), 1);
    let missing = DigestOptions {
        tables: vec!["nope".into()],
        include_ferry_tables: false,
    };
    assert!(matches!(
        digest_sqlite(&one, &missing),
        Err(ValidateError::UnknownTable { .. })
    ));
}
