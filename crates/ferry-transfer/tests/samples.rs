//! Acceptance over the real-world SQLite samples shipped beside the project
//! (`<workspace>/../shared/samples/sqlite/`): every file transfers with zero cells changed
//! and every key, NOT NULL, foreign key and CHECK present; every translated view returns
//! the rows SQLite's returns; what is not carried over is exactly the documented list.
//!
//! Known shapes, documented here:
//! - `pgloader-bad-utf8.db`: its invalid UTF-8 value is stored as a BLOB (not TEXT), so the
//!   column mixes TEXT and BLOB and becomes jsonb scalars; the BLOB keeps its bytes as
//!   `{"$blob": "<hex>"}`. Nothing is rejected. (Invalid UTF-8 stored as TEXT is rejected,
//!   see the fidelity test.)
//! - `pgloader-type-mismatch.db`: TEXT in an INTEGER column: jsonb scalars, nothing lost.
//! - `pgloader-sqlite.db`: `DATETIME DEFAULT 0` holding 0 and text: jsonb scalars; the
//!   default `'"0"'` of an INTEGER column has no integer meaning and is reported.
//! - `pgloader-sqlite.db`: the default `'"0"'` of an INTEGER column (a text with quotes,
//!   which no bigint holds) is not carried over.
//! - `northwind.sqlite`: 16 of its 17 views are translated; `Invoices` adds texts with `+`
//!   (SQLite reads a number out of each: the column is always 0), which is reported.
//! - `sakila.sqlite`: its 30 triggers stamp `last_update` and become `BEFORE` triggers; its
//!   5 views are translated.

mod common;

use std::path::PathBuf;

use ferry_core::plan::ObjectKind;
use ferry_core::redact::SecretUrl;
use ferry_testkit::pg::ScratchDb;
use ferry_transfer::{execute, plan_derived, PgTarget, TransferOptions};

/// What each sample is expected not to carry over: `(kind, SQLite name)`.
fn documented_losses(file_name: &str) -> Vec<(ObjectKind, &'static str)> {
    match file_name {
        "northwind.sqlite" => vec![(ObjectKind::View, "Invoices")],
        "pgloader-sqlite.db" => vec![(ObjectKind::Default, "is_public")],
        _ => Vec::new(),
    }
}

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
        let target = PgTarget {
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
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
        let lost: Vec<(ObjectKind, &str)> = report
            .not_carried_over
            .iter()
            .map(|n| (n.kind, n.name.as_str()))
            .collect();
        assert_eq!(
            lost,
            documented_losses(&file_name),
            "{}: {:#?}",
            file.display(),
            report.not_carried_over
        );
        // Every translated view returns SQLite's rows.
        let views: Vec<String> = sqlx::query_scalar(
            "SELECT viewname::text FROM pg_views WHERE schemaname = $1 ORDER BY 1",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for view in &views {
            common::same_view_rows(&file, &mut conn, &name, view, &[])
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        println!(
            "{}: {} tables, {cells} cells equal, {} views returning SQLite's rows, {} objects not carried over",
            file.display(),
            plan.tables.len(),
            views.len(),
            report.not_carried_over.len()
        );
    }
}
