//! `cargo xtask import STORE_DIR SQLITE_FILE [--profile FILE]`: imports a file store into a
//! SQLite file on its own (outside the phases), prints a summary per kind and every
//! quarantined file, and writes the JSON report under `state_dir/reports/`.
//!
//! Exit 0 when every file imported (or was excluded or unmapped), 1 when something was
//! quarantined (the import still completed), 2 on error.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_core::config::Config;
use ferry_import::{ImportOptions, Profile};

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file store to import.
    pub store_dir: PathBuf,
    /// The SQLite file to fill; created with ferry's schema when it does not exist.
    pub sqlite_file: PathBuf,
    /// A profile TOML file (default: `import.profile` of the configuration, the built-in
    /// profile unless set).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Delete the rows of files that disappeared from the store (overrides the profile).
    #[arg(long)]
    pub delete_disappeared: bool,
    /// Parser threads (default: `import.workers`, one per core unless set).
    #[arg(long)]
    pub workers: Option<usize>,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<Outcome> {
    let profile = match &args.profile {
        Some(path) => Profile::load(path)?,
        None => Profile::from_setting(&config.import.profile)?,
    };
    let mut options = ImportOptions::from_config(config);
    options.progress = true;
    options.workers = config.import.workers;
    if args.delete_disappeared {
        options.delete_disappeared = Some(true);
    }
    if let Some(w) = args.workers {
        options.workers = w;
    }
    let mut db = open(&args.sqlite_file).await?;
    let conn = db.sqlite().expect("a SQLite database");
    eprintln!(
        "importing {} into {} (profile: {})",
        args.store_dir.display(),
        args.sqlite_file.display(),
        profile.origin()
    );
    let report = ferry_import::import(&args.store_dir, conn, &profile, &options)
        .await
        .with_context(|| format!("importing {}", args.store_dir.display()))?;
    db.close().await;

    print!("{}", report.summary_table());
    let secs = report.elapsed_seconds.max(1e-6);
    println!(
        "{} files ({} read, {:.1} MB) in {:.2} s: {:.0} files/s, {:.1} MB/s; {} rows written, {} released, {} placeholder rows",
        report.totals.files,
        report.totals.files_read,
        report.totals.bytes_read as f64 / 1e6,
        secs,
        report.totals.files_read as f64 / secs,
        report.totals.bytes_read as f64 / 1e6 / secs,
        report.totals.rows_written,
        report.totals.rows_released,
        report.totals.placeholders,
    );
    if !report.note_counts.is_empty() {
        let notes: Vec<String> = report
            .note_counts
            .iter()
            .map(|(k, n)| format!("{} {k:?}", n))
            .collect();
        println!("notes: {}", notes.join(", "));
    }
    for d in &report.disappeared {
        println!(
            "disappeared: {} ({} rows {})",
            d.path,
            d.rows,
            if d.deleted { "deleted" } else { "kept" }
        );
    }
    for p in &report.unmapped {
        println!("unmapped: {p}");
    }
    for dir in &report.unreadable_dirs {
        println!("unreadable directory: {dir}");
    }
    for line in report.quarantine_lines() {
        println!("quarantined: {line}");
    }
    let path = ferry_core::fsutil::report_path(&config.state_dir, "import", "json")
        .with_context(|| format!("creating {}", config.state_dir.join("reports").display()))?;
    ferry_core::fsutil::write_json(&path, &report)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("report: {}", path.display());
    Ok(if report.has_findings() {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

/// Opens (creating when missing) the SQLite file and migrates it to ferry's schema head
/// with the migrator: ledger, checksums, lock, baselining of an existing database.
async fn open(path: &Path) -> anyhow::Result<ferry_schema::Database> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut db = ferry_schema::Database::open_sqlite(path).await?;
    let set = ferry_schema::MigrationSet::from_embedded(ferry_migrations::SQLITE)?;
    ferry_schema::migrate_to_head(&mut db, &set)
        .await
        .with_context(|| format!("creating ferry's schema in {}", path.display()))?;
    Ok(db)
}
