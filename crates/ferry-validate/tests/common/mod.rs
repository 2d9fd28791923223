//! Shared fixtures of the integration tests: a SQLite file in a temporary directory and a
//! scratch PostgreSQL schema, and helpers to fill, mutate and validate them.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::path::PathBuf;

use ferry_core::plan::TransferPlan;
use ferry_testkit::pg::ScratchSchema;
use ferry_validate::{
    validate, PgTarget, TableDiff, TableReport, ValidateOptions, ValidationReport, Verdict,
};
use sqlx::postgres::PgConnection;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub sqlite: PathBuf,
    pub pg: ScratchSchema,
}

impl Fixture {
    pub async fn new(prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = dir.path().join("source.sqlite3");
        let pg = ScratchSchema::new(prefix).await;
        Fixture { dir, sqlite, pg }
    }

    /// A read-write connection to the SQLite file (created on first use).
    pub fn lite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.sqlite).expect("open sqlite")
    }

    pub fn lite_exec(&self, sql: &str) {
        self.lite()
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("sqlite: {e}\n{}", &sql[..sql.len().min(300)]));
    }

    /// A connection whose search_path is the scratch schema.
    pub async fn pg(&self) -> PgConnection {
        self.pg.connect().await
    }

    pub async fn pg_exec(&self, sql: &str) {
        let mut conn = self.pg().await;
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("postgres: {e}\n{}", &sql[..sql.len().min(300)]));
    }

    pub fn target(&self) -> PgTarget {
        PgTarget::new(self.pg.url.clone(), self.pg.name.clone())
    }

    pub async fn validate(&self) -> ValidationReport {
        self.validate_with(None, &ValidateOptions::default()).await
    }

    pub async fn validate_with(
        &self,
        plan: Option<&TransferPlan>,
        opts: &ValidateOptions,
    ) -> ValidationReport {
        validate(&self.sqlite, &self.target(), plan, opts)
            .await
            .unwrap_or_else(|e| panic!("validate: {e}"))
    }
}

pub fn table<'a>(report: &'a ValidationReport, name: &str) -> &'a TableReport {
    report
        .tables
        .iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no table {name} in report"))
}

/// Asserts that every table but `name` is equal and returns `name`'s diff.
pub fn only_difference<'a>(report: &'a ValidationReport, name: &str) -> &'a TableDiff {
    assert!(!report.equal, "the change was not detected");
    for t in &report.tables {
        if t.name() != name {
            assert_eq!(
                t.verdict,
                Verdict::Equal,
                "table {} should be equal: {t:#?}",
                t.name()
            );
        }
    }
    let t = table(report, name);
    assert_eq!(t.verdict, Verdict::Different, "{t:#?}");
    t.diff.as_ref().expect("a diff")
}

/// Asserts the report is all equal, printing what differs otherwise.
pub fn assert_equal(report: &ValidationReport) {
    assert!(
        report.equal,
        "expected equal:\n{}\n{}\n{:#?}",
        report.summary_table(),
        report.details(),
        report.constraints.findings
    );
}
