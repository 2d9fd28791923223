//! Imports a store into a SQLite file with the built-in profile, on its own:
//! `cargo run --release -p ferry-import --example import_store -- STORE_DIR SQLITE_FILE [STATE_DIR]`.
//! The SQLite file is created with ferry's schema when it does not exist.

use std::path::PathBuf;

use ferry_import::{import_file, ImportOptions, Profile};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `RUST_LOG=ferry_import=debug` shows where the time goes.
    ferry_core::logging::init(ferry_core::logging::LogFormat::Text, 0);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, db, rest @ ..] = args.as_slice() else {
        eprintln!("usage: import_store STORE_DIR SQLITE_FILE [STATE_DIR]");
        std::process::exit(i32::from(ferry_core::exit::ERROR));
    };
    let state = rest
        .first()
        .map_or_else(|| PathBuf::from(".ferry"), PathBuf::from);
    let db = PathBuf::from(db);
    {
        let conn = rusqlite::Connection::open(&db)?;
        let mut ups: Vec<&(&str, &str)> = ferry_migrations::SQLITE
            .iter()
            .filter(|(n, _)| n.ends_with(".up.sql"))
            .collect();
        ups.sort_by_key(|(n, _)| *n);
        for (_, sql) in ups {
            conn.execute_batch(sql)?;
        }
    }
    let mut options = ImportOptions::new(state);
    if let Ok(cap) = std::env::var("FERRY_IMPORT_MAX_FILE_BYTES") {
        options.max_file_bytes = cap.parse()?;
    }
    let report = import_file(&PathBuf::from(store), &db, &Profile::builtin(), &options).await?;
    print!("{}", report.summary_table());
    println!(
        "{} files, {} read, {:.2} s, {} rows written",
        report.totals.files,
        report.totals.files_read,
        report.elapsed_seconds,
        report.totals.rows_written
    );
    Ok(())
}
