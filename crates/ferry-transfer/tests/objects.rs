//! Views, triggers and generated columns on PostgreSQL: each translated view returns the
//! rows SQLite's returns, each translated trigger refuses (or changes) the same rows, a
//! generated column is computed by PostgreSQL, and what cannot keep its meaning is reported
//! with its SQLite text instead of being created wrong.

mod common;

use common::{pg_refusal, same_view_rows, sqlite_refusal};
use ferry_core::plan::ObjectKind;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{execute, plan_derived, PgTarget, TransferOptions};

const SCHEMA: &str = r#"
CREATE TABLE item (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    label TEXT,
    qty INTEGER NOT NULL,
    price REAL NOT NULL,
    made DATETIME NOT NULL,
    shelf INTEGER_OR_TEXT,
    total REAL GENERATED ALWAYS AS (qty * price) STORED,
    size_class TEXT GENERATED ALWAYS AS (CASE WHEN qty > 10 THEN 'bulk' ELSE 'few' END) VIRTUAL,
    odd_half REAL GENERATED ALWAYS AS (round(price / 3, 2)) VIRTUAL
);
CREATE TABLE audit (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, at DATETIME);
INSERT INTO item (id, name, label, qty, price, made, shelf) VALUES
    (1, 'Hammer drill', NULL, 3, 89.5, '2024-01-15 08:30:00', 12),
    (2, 'Nail', 'bulk nails', 500, 0.02, '2023-12-31 23:59:59', 'A7'),
    (3, 'Saw', 'hand saw', 7, 19.99, '2024-02-29 12:00:00', 12),
    (4, 'Tape measure', NULL, 12, 7.25, '2024-03-01 00:00:00', 'B1');
INSERT INTO audit (item_id, at) VALUES (1, '2024-01-16 09:00:00'), (3, NULL);

CREATE VIEW v_ifnull AS SELECT id, ifnull(label, name) AS shown, ifnull(label, '') AS label_or_empty FROM item;
CREATE VIEW v_substr AS SELECT id, substr(name, 1, 4) AS head, substr(name, -3) AS tail, substr(name, 2) AS rest FROM item;
CREATE VIEW v_instr AS SELECT id, instr(name, ' ') AS space_at, instr(lower(name), 'a') AS first_a FROM item;
CREATE VIEW v_group AS SELECT shelf, count(*) AS n, group_concat(name) AS names FROM item GROUP BY shelf;
CREATE VIEW v_time AS SELECT id, datetime(made) AS at, date(made) AS day, time(made) AS clock,
    strftime('%Y/%m', made) AS month, julianday(made) AS jd, datetime(made, '+1 day', 'start of day') AS next_day
    FROM item;
CREATE VIEW v_concat AS SELECT id, id || '-' || qty AS code, name || ' x' || qty AS line, shelf || '' AS shelf_text FROM item;
CREATE VIEW v_filter AS SELECT name FROM item WHERE made >= '2024-01-01' AND name LIKE '%a%' AND shelf = 12 ORDER BY name;
CREATE VIEW v_round AS SELECT id, round(price, 1) AS price1 FROM item;

CREATE TRIGGER item_qty_check BEFORE INSERT ON item FOR EACH ROW BEGIN
    SELECT RAISE(ABORT, 'quantity must be positive') WHERE NEW.qty <= 0;
    SELECT RAISE(ABORT, 'a bulk item needs a label') WHERE NEW.qty > 100 AND NEW.label IS NULL;
END;
CREATE TRIGGER item_price_check BEFORE UPDATE OF price ON item FOR EACH ROW
    WHEN NEW.price > OLD.price * 2 BEGIN
    SELECT CASE WHEN NEW.price > 1000 THEN RAISE(ABORT, 'price too high') END;
    SELECT RAISE(FAIL, 'price may at most double');
END;
CREATE TRIGGER audit_needs_item BEFORE INSERT ON audit FOR EACH ROW BEGIN
    SELECT RAISE(ABORT, 'no such item') WHERE NOT EXISTS (SELECT 1 FROM item WHERE item.id = NEW.item_id);
END;
CREATE TRIGGER audit_stamp AFTER INSERT ON audit FOR EACH ROW BEGIN
    UPDATE audit SET at = datetime('now') WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER item_log AFTER DELETE ON item FOR EACH ROW BEGIN
    INSERT INTO audit (item_id, at) VALUES (OLD.id, datetime('now'));
END;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_triggers_and_generated_columns_behave_as_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("objects.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SCHEMA)
        .unwrap();
    let db = ScratchDb::new("objects").await;
    let opts = TransferOptions {
        workers: 2,
        progress: false,
        ..TransferOptions::default()
    };
    let plan = plan_derived(&path, "objects", &opts).await.unwrap();
    let report = execute(&plan, &PgTarget::new(db.url.clone(), "objects"), &opts)
        .await
        .unwrap();

    // Reported, with the reason, rather than created with another meaning.
    let mut lost: Vec<(ObjectKind, &str)> = report
        .not_carried_over
        .iter()
        .map(|n| (n.kind, n.name.as_str()))
        .collect();
    lost.sort();
    assert_eq!(
        lost,
        vec![
            (ObjectKind::Generated, "odd_half"),
            (ObjectKind::View, "v_round"),
            (ObjectKind::Trigger, "item_log"),
        ],
        "{:#?}",
        report.not_carried_over
    );
    assert!(report
        .not_carried_over
        .iter()
        .all(|n| !n.reason.is_empty() && !n.text.is_empty()));
    assert!(!report.is_clean());

    let mut conn = db.connect().await;
    for (view, unordered) in [
        ("v_ifnull", None),
        ("v_substr", None),
        ("v_instr", None),
        ("v_group", Some((2, ','))),
        ("v_time", None),
        ("v_concat", None),
        ("v_filter", None),
    ] {
        let unordered: Vec<(usize, char)> = unordered.into_iter().collect();
        let n = same_view_rows(&path, &mut conn, "objects", view, &unordered)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(n > 0, "{view} is empty");
    }

    // Generated columns: computed by PostgreSQL (not written by the copy), equal to SQLite's;
    // the one whose expression does not translate holds the copied values.
    let kinds: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, attgenerated::text FROM pg_attribute WHERE attrelid = 'objects.item'::regclass AND attname IN ('total', 'size_class', 'odd_half') ORDER BY attname",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        kinds,
        vec![
            ("odd_half".to_owned(), String::new()),
            ("size_class".to_owned(), "s".to_owned()),
            ("total".to_owned(), "s".to_owned()),
        ]
    );
    sqlx::raw_sql("CREATE VIEW objects.generated_values AS SELECT id, total, size_class, odd_half FROM objects.item")
        .execute(&mut conn)
        .await
        .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE VIEW generated_values AS SELECT id, total, size_class, odd_half FROM item",
        )
        .unwrap();
    same_view_rows(&path, &mut conn, "objects", "generated_values", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Triggers refuse and accept the same statements.
    let insert = |qty: i64, label: &str| {
        format!("INSERT INTO {{s}}item (id, name, label, qty, price, made, shelf) VALUES (9, 'Probe', {label}, {qty}, 1.0, '2024-05-01 00:00:00', 'C3')")
    };
    let probes: Vec<(String, bool)> = vec![
        (insert(0, "NULL"), false),
        (insert(150, "NULL"), false),
        (insert(150, "'pallet'"), true),
        (insert(5, "NULL"), true),
        (
            "UPDATE {s}item SET price = price * 3 WHERE id = 1".into(),
            false,
        ),
        ("UPDATE {s}item SET price = 2000 WHERE id = 1".into(), false),
        (
            "UPDATE {s}item SET price = price * 1.5 WHERE id = 1".into(),
            true,
        ),
        ("UPDATE {s}item SET qty = 1000 WHERE id = 1".into(), true),
        ("INSERT INTO {s}audit (item_id) VALUES (42)".into(), false),
        ("INSERT INTO {s}audit (item_id) VALUES (2)".into(), true),
    ];
    for (sql, accepted) in probes {
        let lite = sqlite_refusal(&path, &sql.replace("{s}", ""));
        let pg = pg_refusal(&mut conn, &sql.replace("{s}", "objects.")).await;
        assert_eq!(lite.is_none(), accepted, "SQLite: {sql}: {lite:?}");
        assert_eq!(pg.is_none(), accepted, "PostgreSQL: {sql}: {pg:?}");
        if !accepted {
            assert_eq!(pg.as_deref(), Some("23514"), "{sql}");
        }
    }
    // The stamping trigger fills the column the row was inserted without.
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO objects.audit (item_id) VALUES (4)")
        .execute(&mut conn)
        .await
        .unwrap();
    let stamped: Option<chrono::NaiveDateTime> =
        sqlx::query_scalar("SELECT at FROM objects.audit ORDER BY id DESC LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    let stamped = stamped.expect("the trigger stamps the row");
    let age = chrono::Utc::now().naive_utc() - stamped;
    assert!(age.num_minutes().abs() < 60, "{stamped}");
}
