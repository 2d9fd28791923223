//! Nothing is dropped quietly: what a transfer does not carry over makes it exit 1, is
//! listed with its SQLite text and reason, stays listed across runs, and stops counting
//! once a person acknowledges it with a reason (which the validation then reads too). A
//! file that is not a SQLite database is refused with one sentence and exit 2.

mod common;

use std::process::Command;

use ferry_core::plan::ObjectKind;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{
    acknowledge, execute, plan_derived, recorded_report, PgTarget, TransferOptions,
};
use ferry_validate::{validate, ConstraintKind, ValidateOptions};

const SCHEMA: &str = "
CREATE TABLE price (
    id INTEGER PRIMARY KEY,
    amount REAL NOT NULL CHECK (amount >= 0),
    CHECK (amount = round(amount, 2))
);
CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
INSERT INTO price (amount) VALUES (1.25), (3.5);
INSERT INTO note (body) VALUES ('one');
CREATE TRIGGER note_copy AFTER INSERT ON note BEGIN INSERT INTO note (body) SELECT NEW.body WHERE 0; END;
";

fn options() -> TransferOptions {
    TransferOptions {
        workers: 2,
        progress: false,
        ..TransferOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_carried_over_counts_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lost.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SCHEMA)
        .unwrap();
    let db = ScratchDb::new("ack").await;
    let target = PgTarget::new(db.url.clone(), "lost");

    // The command line exits 1 and lists both objects.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry-transfer"))
        .arg(&path)
        .arg(&db.url)
        .args(["--schema", "lost", "--workers", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("round(amount, 2)") && stdout.contains("note_copy"),
        "{stdout}"
    );

    let report = recorded_report(&target, &options()).await.unwrap().unwrap();
    let mut kinds: Vec<(ObjectKind, String)> = report
        .unacknowledged()
        .map(|n| (n.kind, n.text.clone()))
        .collect();
    kinds.sort();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(
        kinds[0],
        (ObjectKind::Check, "amount = round(amount, 2)".into())
    );
    assert_eq!(kinds[1].0, ObjectKind::Trigger);
    assert!(report
        .not_carried_over
        .iter()
        .all(|n| n.reason.contains("not translated")));
    assert!(!report.is_clean());

    // The validation finds the source CHECK missing, and says so, until it is acknowledged.
    let v = validate(&path, &target, None, &ValidateOptions::default())
        .await
        .unwrap();
    let missing: Vec<&str> = v
        .constraints
        .findings
        .iter()
        .filter(|f| f.kind == ConstraintKind::MissingCheck)
        .map(|f| f.detail.as_str())
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("round(amount, 2)"));
    assert!(!v.equal);
    assert_eq!(v.constraints.source_checks, 2);

    // An empty reason is no acknowledgement.
    assert!(acknowledge(&target, "  ", &options()).await.is_err());
    let acked = acknowledge(&target, "cents are enforced by the application", &options())
        .await
        .unwrap();
    assert!(acked.is_clean(), "{:#?}", acked.not_carried_over);
    assert_eq!(acked.not_carried_over.len(), 2);
    assert!(acked.not_carried_over.iter().all(|n| n
        .acknowledged
        .as_ref()
        .is_some_and(|a| a.reason == "cents are enforced by the application")));
    let v = validate(&path, &target, None, &ValidateOptions::default())
        .await
        .unwrap();
    assert!(v.equal, "{}", v.details());
    assert_eq!(
        v.constraints.acknowledged,
        vec!["price: CHECK (amount = round(amount, 2))"]
    );

    // A later acknowledgement keeps the first reason; the report read again is the same.
    acknowledge(&target, "another reason", &options())
        .await
        .unwrap();
    let again = recorded_report(&target, &options()).await.unwrap().unwrap();
    assert_eq!(again.not_carried_over, acked.not_carried_over);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_sqlite_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let db = ScratchDb::new("notsqlite").await;
    for (name, bytes, why) in [
        ("empty.db", &b""[..], "the file is empty"),
        (
            "notes.db",
            &b"just some notes, not a database\n"[..],
            "does not start with the SQLite header",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = plan_derived(&path, "x", &options())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains(why), "{err}");
        assert!(!err.contains("SELECT"), "no internals: {err}");
        let err = validate(
            &path,
            &PgTarget::new(db.url.clone(), "public"),
            None,
            &ValidateOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains(why), "{err}");
        let out = Command::new(env!("CARGO_BIN_EXE_ferry-transfer"))
            .arg(&path)
            .arg(&db.url)
            .args(["--schema", "never"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        // Nothing was created.
        let mut conn = db.connect().await;
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'never'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(n, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_execute_cycle_reports_each_object_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lost.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SCHEMA)
        .unwrap();
    let db = ScratchDb::new("ack_lib").await;
    let target = PgTarget::new(db.url.clone(), "lost");
    let plan = plan_derived(&path, "lost", &options()).await.unwrap();
    let report = execute(&plan, &target, &options()).await.unwrap();
    let ids: Vec<&str> = report
        .not_carried_over
        .iter()
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(ids, vec!["check:price:2", "trigger:note_copy"]);
}
