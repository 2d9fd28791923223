//! Acceptance over the real-world SQLite samples shipped beside the project
//! (`<workspace>/../shared/samples/sqlite/`): every file transfers with zero cells changed
//! and every key, NOT NULL and foreign key present; what is not carried over (views using
//! SQLite-only functions, triggers) is reported.
//!
//! Known shapes, documented here:
//! - `pgloader-bad-utf8.db`: its invalid UTF-8 value is stored as a BLOB (not TEXT), so the
//!   column mixes TEXT and BLOB and becomes jsonb scalars; the BLOB keeps its bytes as
//!   `{"$blob": "<hex>"}`. Nothing is rejected. (Invalid UTF-8 stored as TEXT is rejected,
//!   see the fidelity test.)
//! - `pgloader-type-mismatch.db`: TEXT in an INTEGER column: jsonb scalars, nothing lost.
//! - `pgloader-sqlite.db`: `DATETIME DEFAULT 0` holding 0 and text: jsonb scalars; the
//!   default `'"0"'` of an INTEGER column has no integer meaning and is reported.
//! - `northwind.sqlite`, `sakila.sqlite`: views using `DATETIME()`, text/number comparisons
//!   or `||` on numbers are reported, not created; sakila's 30 triggers are reported.

mod common;

use std::path::PathBuf;

use ferry_core::redact::SecretUrl;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{execute, plan_derived, Target, TransferOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_transfers_with_zero_cells_changed() {
    // Absent: fails under CI, and is counted by `cargo xtask ci` elsewhere.
    let Some(dir) = ferry_testkit::samples::require("sqlite") else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let db = ScratchDb::new("samples").await;
    let opts = TransferOptions {
        workers: 2,
        progress: false,
        ..TransferOptions::default()
    };
    let mut conn = common::connect(&db.url).await;
    for file in files {
        let name = file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(['.', '-'], "_");
        let target = Target {
            url: SecretUrl::new(db.url.clone()),
            schema: name.clone(),
        };
        let plan = plan_derived(&file, &target.schema, &opts)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let report = execute(&plan, &target, &opts)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            report.rejects.is_empty(),
            "{}: {:#?}",
            file.display(),
            report.rejects
        );
        let mut cells = 0;
        for (table, cmp) in common::compare_all(&file, &db.url, &plan, 0).await {
            assert!(
                cmp.missing.is_empty() && cmp.extra.is_empty() && cmp.mismatches.is_empty(),
                "{} table {table}: {cmp:#?}",
                file.display()
            );
            cells += cmp.cells;
        }
        common::assert_keys_and_not_nulls(&db.url, &plan).await;
        // Foreign keys: every SQLite foreign key exists and is validated.
        let sqlite = rusqlite::Connection::open_with_flags(
            &file,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        for t in &plan.tables {
            let fks: i64 = sqlite
                .query_row(
                    "SELECT count(DISTINCT id) FROM pragma_foreign_key_list(?1)",
                    [&t.source],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            let c = common::constraints(&mut conn, &name, &t.target).await;
            assert_eq!(
                c.foreign_keys.len() as i64,
                fks,
                "{} table {}: {:#?}",
                file.display(),
                t.source,
                report.warnings
            );
            assert!(
                c.foreign_keys.iter().all(|(_, valid)| *valid),
                "{} table {}",
                file.display(),
                t.source
            );
        }
        for w in &report.warnings {
            let known = w.contains("view ")
                || w.contains("trigger ")
                || w.contains("shadow")
                || w.contains("default ")
                || w.contains("collation");
            assert!(known, "{}: unexpected warning {w}", file.display());
        }
        println!(
            "{}: {} tables, {cells} cells equal, {} warnings",
            file.display(),
            plan.tables.len(),
            report.warnings.len()
        );
    }
}
