//! `cargo xtask import STORE_DIR SQLITE_FILE [--profile FILE]`: imports a file store into a
//! SQLite file on its own (outside the phases), prints a summary per kind and every
//! quarantined file, and writes the JSON report under `state_dir/reports/`.
//!
//! Exit 0 when every file imported (or was excluded or unmapped), 1 when something was
//! quarantined (the import still completed), 2 on error.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferry_core::config::Config;
use ferry_core::sqlite_file::Found;
use ferry_import::{ImportOptions, Profile};

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file store to import.
    pub store_dir: PathBuf,
    /// The SQLite file to fill; created with ferry's schema when it does not exist (and
    /// removed again if the import fails).
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
    if args.delete_disappeared {
        options.delete_disappeared = Some(true);
    }
    if let Some(w) = args.workers {
        anyhow::ensure!(w > 0, "--workers must be at least 1");
        options.workers = w;
    }
    // Bad input is found before anything is written: the store must be a readable
    // directory, and the SQLite argument missing (to be created) or a SQLite file.
    ferry_import::check_store(&args.store_dir)?;
    let created = ferry_core::sqlite_file::inspect(&args.sqlite_file)? == Found::Missing;
    let result = import(&args, &profile, &options).await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            // A failed import leaves no output file where there was none.
            if created {
                remove_database(&args.sqlite_file);
            }
            return Err(e);
        }
    };

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
        println!("notes (each file's are in the report):");
        for (kind, n) in &report.note_counts {
            println!("  {n:>7}  {}", kind.describe());
        }
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

/// Opens (creating when missing) the SQLite file, migrates it to ferry's schema head with
/// the migrator (ledger, checksums, lock, baselining of an existing database), and imports.
async fn import(
    args: &Args,
    profile: &Profile,
    options: &ImportOptions,
) -> anyhow::Result<ferry_import::ImportReport> {
    let path = &args.sqlite_file;
    let mut db = ferry_schema::Database::open_sqlite(path).await?;
    let set = ferry_schema::MigrationSet::from_embedded(ferry_migrations::SQLITE)?;
    ferry_schema::migrate_to_head(&mut db, &set)
        .await
        .with_context(|| format!("creating ferry's schema in {}", path.display()))?;
    // The import writes through a connection of its own; this one only migrated.
    db.close().await;
    eprintln!(
        "importing {} into {} (profile: {})",
        args.store_dir.display(),
        path.display(),
        profile.origin()
    );
    Ok(ferry_import::import_file(&args.store_dir, path, profile, options).await?)
}

/// Removes a database file this command created, with SQLite's side files.
fn remove_database(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}
