//! Each CHECK translation proven on both engines: a row that violates the SQLite CHECK is
//! refused by SQLite and, written as PostgreSQL holds it, refused by PostgreSQL with a
//! check violation; a row that satisfies it is accepted by both. Covered: booleans compared
//! with 0/1 and used in arithmetic; `length`, `substr`, `typeof`, `IN`, `LIKE` and `GLOB` on
//! mixed-class columns (as `text` and as `jsonb` scalars), on `bigint`, on `numeric` and on
//! `timestamp` columns; and SQLite's ASCII-only case folding in `LIKE`.

mod common;

use common::{pg_refusal, sqlite_refusal};
use ferry_core::config::MixedPolicy;
use ferry_core::plan::TargetType;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{execute, plan_derived, PgTarget, TransferOptions};

/// One CHECK on a table of its own.
struct Case {
    table: &'static str,
    /// Column definitions and the CHECK.
    ddl: &'static str,
    /// Rows that make the column's type what the case is about.
    seed: &'static [&'static str],
    /// The type the checked column must get.
    column: (&'static str, TargetType),
    /// `(SQLite VALUES, PostgreSQL VALUES)` of a row that violates the CHECK.
    bad: (&'static str, &'static str),
    /// The same for a row that satisfies it.
    good: (&'static str, &'static str),
}

const TEXT_MODE: &[Case] = &[
    Case {
        table: "bool_or",
        ddl: "id INTEGER PRIMARY KEY, active BOOLEAN NOT NULL CHECK (active IN (0, 1)), reason TEXT, CHECK (active = 1 OR reason IS NOT NULL)",
        seed: &["(1, 1, NULL)", "(2, 0, 'closed')"],
        column: ("active", TargetType::Boolean),
        bad: ("(3, 0, NULL)", "(3, false, NULL)"),
        good: ("(3, 0, 'moved')", "(3, false, 'moved')"),
    },
    Case {
        table: "bool_sum",
        ddl: "id INTEGER PRIMARY KEY, a BOOL NOT NULL, b BOOL NOT NULL, CHECK (a + b <= 1)",
        seed: &["(1, 1, 0)", "(2, 0, 0)"],
        column: ("a", TargetType::Boolean),
        bad: ("(3, 1, 1)", "(3, true, true)"),
        good: ("(3, 0, 1)", "(3, false, true)"),
    },
    Case {
        table: "code_length",
        ddl: "id INTEGER PRIMARY KEY, code INTEGER_OR_TEXT NOT NULL CHECK (length(code) >= 2)",
        seed: &["(1, 4326)", "(2, 'X1')"],
        column: ("code", TargetType::Text),
        // INTEGER 7 is written "7" in the text column: one character either way.
        bad: ("(3, 7)", "(3, '7')"),
        good: ("(3, 42)", "(3, '42')"),
    },
    Case {
        table: "code_in",
        ddl: "id INTEGER PRIMARY KEY, code INTEGER_OR_TEXT NOT NULL CHECK (code IN (4326, 'X1', 'X2'))",
        seed: &["(1, 4326)", "(2, 'X1')"],
        column: ("code", TargetType::Text),
        bad: ("(3, 4327)", "(3, '4327')"),
        good: ("(3, 'X2')", "(3, 'X2')"),
    },
    Case {
        table: "code_typeof",
        ddl: "id INTEGER PRIMARY KEY, code INTEGER_OR_TEXT NOT NULL CHECK (typeof(code) = 'integer' OR code GLOB 'X[0-9]*')",
        seed: &["(1, 4326)", "(2, 'X1')"],
        column: ("code", TargetType::Text),
        bad: ("(3, 'Y1')", "(3, 'Y1')"),
        good: ("(3, 12)", "(3, '12')"),
    },
    Case {
        table: "int_length",
        ddl: "id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (length(n) <= 3)",
        seed: &["(1, 100)", "(2, -12)"],
        column: ("n", TargetType::Bigint),
        bad: ("(3, 1234)", "(3, 1234)"),
        good: ("(3, -99)", "(3, -99)"),
    },
    Case {
        table: "int_substr",
        ddl: "id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (substr(n, 1, 1) <> '9' AND substr(n, -1) <> '0')",
        seed: &["(1, 123)", "(2, 81)"],
        column: ("n", TargetType::Bigint),
        bad: ("(3, 95)", "(3, 95)"),
        good: ("(3, 59)", "(3, 59)"),
    },
    Case {
        table: "int_like",
        ddl: "id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n NOT LIKE '%00')",
        seed: &["(1, 105)", "(2, 7)"],
        column: ("n", TargetType::Bigint),
        bad: ("(3, 300)", "(3, 300)"),
        good: ("(3, 301)", "(3, 301)"),
    },
    Case {
        table: "int_glob",
        ddl: "id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n GLOB '[1-5]*')",
        seed: &["(1, 15)", "(2, 5000)"],
        column: ("n", TargetType::Bigint),
        bad: ("(3, 61)", "(3, 61)"),
        good: ("(3, 42)", "(3, 42)"),
    },
    Case {
        table: "num_typeof",
        ddl: "id INTEGER PRIMARY KEY, amount DECIMAL(10,2) NOT NULL CHECK (typeof(amount) = 'real')",
        seed: &["(1, 1.5)", "(2, 19.25)"],
        column: ("amount", TargetType::Numeric),
        // An integer: SQLite keeps 2 INTEGER in a DECIMAL column, numeric keeps scale 0.
        bad: ("(3, 2)", "(3, 2)"),
        good: ("(3, 2.5)", "(3, 2.5)"),
    },
    Case {
        table: "ts_substr",
        ddl: "id INTEGER PRIMARY KEY, at DATETIME NOT NULL CHECK (substr(at, 1, 4) >= '2000')",
        seed: &["(1, '2024-01-01 10:00:00')", "(2, '2001-12-31 23:59:59')"],
        column: ("at", TargetType::Timestamp),
        bad: ("(3, '1999-06-01 12:00:00')", "(3, '1999-06-01 12:00:00')"),
        good: ("(3, '2000-06-01 12:00:00')", "(3, '2000-06-01 12:00:00')"),
    },
    Case {
        table: "ts_like",
        ddl: "id INTEGER PRIMARY KEY, at DATETIME NOT NULL CHECK (at LIKE '%:00:00' AND length(at) = 19)",
        seed: &["(1, '2024-01-01 10:00:00')", "(2, '2024-01-02 11:00:00')"],
        column: ("at", TargetType::Timestamp),
        bad: ("(3, '2024-01-03 10:30:00')", "(3, '2024-01-03 10:30:00')"),
        good: ("(3, '2024-01-03 12:00:00')", "(3, '2024-01-03 12:00:00')"),
    },
    Case {
        table: "ts_glob_in",
        ddl: "id INTEGER PRIMARY KEY, day DATE NOT NULL CHECK (day GLOB '202[0-9]-*' AND day NOT IN ('2024-12-25', '2025-12-25'))",
        seed: &["(1, '2024-01-01')", "(2, '2021-07-04')"],
        column: ("day", TargetType::Date),
        bad: ("(3, '2024-12-25')", "(3, '2024-12-25')"),
        good: ("(3, '2024-12-24')", "(3, '2024-12-24')"),
    },
    Case {
        table: "ts_glob_year",
        ddl: "id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL CHECK (at GLOB '202[0-9]-*')",
        seed: &["(1, '2024-01-01T10:00:00Z')", "(2, '2021-07-04T00:00:00Z')"],
        column: ("at", TargetType::Timestamptz),
        bad: ("(3, '2019-01-01T00:00:00Z')", "(3, '2019-01-01T00:00:00Z')"),
        good: ("(3, '2020-01-01T00:00:00Z')", "(3, '2020-01-01T00:00:00Z')"),
    },
    Case {
        table: "text_like",
        ddl: "id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (name LIKE 'a%' OR name LIKE 'é%')",
        seed: &["(1, 'apple')", "(2, 'Avocado')"],
        column: ("name", TargetType::Text),
        // SQLite folds ASCII letters only: 'É' is not 'é' to its LIKE.
        bad: ("(3, 'Éclair')", "(3, 'Éclair')"),
        good: ("(3, 'Apricot')", "(3, 'Apricot')"),
    },
];

const JSONB_MODE: &[Case] = &[
    Case {
        table: "code_length",
        ddl: "id INTEGER PRIMARY KEY, code INTEGER_OR_TEXT NOT NULL CHECK (length(code) >= 2)",
        seed: &["(1, 4326)", "(2, 'X1')"],
        column: ("code", TargetType::MixedJsonb),
        bad: ("(3, 7)", "(3, '7'::jsonb)"),
        good: ("(3, 'XY')", "(3, to_jsonb('XY'::text))"),
    },
    Case {
        table: "code_typeof",
        ddl: "id INTEGER PRIMARY KEY, code INTEGER_OR_TEXT NOT NULL CHECK (typeof(code) IN ('integer', 'text'))",
        seed: &["(1, 4326)", "(2, 'X1')"],
        column: ("code", TargetType::MixedJsonb),
        bad: ("(3, 1.5)", "(3, '1.5'::jsonb)"),
        good: ("(3, 'X3')", "(3, to_jsonb('X3'::text))"),
    },
    Case {
        table: "code_in",
        ddl: "id INTEGER PRIMARY KEY, code INTEGER_OR_TEXT NOT NULL CHECK (code IN (4326, 'X1', 'X2'))",
        seed: &["(1, 4326)", "(2, 'X1')"],
        column: ("code", TargetType::MixedJsonb),
        bad: ("(3, 4327)", "(3, '4327'::jsonb)"),
        good: ("(3, 'X2')", "(3, to_jsonb('X2'::text))"),
    },
    Case {
        table: "code_like_substr",
        ddl: "id INTEGER PRIMARY KEY, code INTEGER_OR_TEXT NOT NULL CHECK (code NOT LIKE 'z%' AND substr(code, 1, 1) <> '9')",
        seed: &["(1, 4326)", "(2, 'X1')"],
        column: ("code", TargetType::MixedJsonb),
        bad: ("(3, 9001)", "(3, '9001'::jsonb)"),
        good: ("(3, 8001)", "(3, '8001'::jsonb)"),
    },
];

async fn prove(cases: &[Case], mixed: MixedPolicy, db: &ScratchDb) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checks.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for c in cases {
        conn.execute_batch(&format!("CREATE TABLE {} ({});", c.table, c.ddl))
            .unwrap();
        for row in c.seed {
            conn.execute_batch(&format!("INSERT INTO {} VALUES {row};", c.table))
                .unwrap_or_else(|e| panic!("{}: seed {row}: {e}", c.table));
        }
    }
    drop(conn);
    let schema = format!("checks_{mixed:?}").to_lowercase();
    let opts = TransferOptions {
        workers: 2,
        progress: false,
        mixed,
        ..TransferOptions::default()
    };
    let plan = plan_derived(&path, &schema, &opts).await.unwrap();
    let report = execute(&plan, &PgTarget::new(db.url.clone(), &schema), &opts)
        .await
        .unwrap();
    assert!(
        report.not_carried_over.is_empty(),
        "{mixed:?}: {:#?}",
        report.not_carried_over
    );
    let mut pg = db.connect().await;
    for c in cases {
        let ty = plan
            .table(c.table)
            .and_then(|t| t.columns.iter().find(|col| col.source == c.column.0))
            .map(|col| col.target_type.clone());
        assert_eq!(ty.as_ref(), Some(&c.column.1), "{}", c.table);
        let lite = |values: &str| {
            sqlite_refusal(&path, &format!("INSERT INTO {} VALUES {values}", c.table))
        };
        let pg_sql = |values: &str| format!("INSERT INTO \"{schema}\".{} VALUES {values}", c.table);
        assert!(
            lite(c.bad.0).is_some_and(|e| e.contains("CHECK constraint failed")),
            "{}: SQLite accepts {}",
            c.table,
            c.bad.0
        );
        assert_eq!(
            pg_refusal(&mut pg, &pg_sql(c.bad.1)).await.as_deref(),
            Some("23514"),
            "{}: PostgreSQL does not refuse {} with a check violation",
            c.table,
            c.bad.1
        );
        assert_eq!(
            lite(c.good.0),
            None,
            "{}: SQLite refuses {}",
            c.table,
            c.good.0
        );
        assert_eq!(
            pg_refusal(&mut pg, &pg_sql(c.good.1)).await,
            None,
            "{}: PostgreSQL refuses {}",
            c.table,
            c.good.1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_keep_their_meaning_for_the_chosen_types() {
    let db = ScratchDb::new("checks").await;
    prove(TEXT_MODE, MixedPolicy::Text, &db).await;
    prove(JSONB_MODE, MixedPolicy::Jsonb, &db).await;
}
