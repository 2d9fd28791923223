//! `cargo xtask bench signoff [--files 50000] [--load-secs 30] [--keep DIR]`: the whole
//! migration of a generated store of that many files, phases 1–5, each as its own `xtask`
//! child process in a scratch PostgreSQL database, then the sign-off's own measurements:
//! the typical reads on PostgreSQL against the two baselines measured in the same run (the
//! SQLite file, and reading and parsing the JSON files), the simulated agents, and every
//! check of gate 5 with its verdict. The report paths are printed; nothing is signed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context};
use ferry_core::table::Table;
use ferry_testkit::store_gen::{self, StoreSpec};
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files in the generated store.
    #[arg(long, default_value_t = 50_000)]
    pub files: usize,
    /// How long the simulated agents run in phase 5, in seconds.
    #[arg(long, default_value_t = 30)]
    pub load_secs: u64,
    /// Keep the store, state and reports in this directory (default: a temporary one).
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _tmp;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.canonicalize()?
        }
        None => {
            _tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            _tmp.path().to_owned()
        }
    };
    let store = dir.join("store");
    if store.exists() {
        bail!(
            "{} already exists; give --keep an empty directory",
            store.display()
        );
    }
    let spec = StoreSpec::with_files(args.files.max(100));
    eprintln!(
        "generating a store of about {} files in {}",
        args.files,
        store.display()
    );
    let (gen_root, gen_spec) = (store.clone(), spec.clone());
    tokio::task::spawn_blocking(move || store_gen::generate(&gen_root, &gen_spec))
        .await?
        .context("generating the store")?;
    crate::bench_backup::remove_special_files(&store)?;
    let (files, bytes) = crate::bench_import::regular_files(&store)?;

    let db = crate::scratch_db::ScratchDb::create("bench_signoff").await?;
    let outcome = phases(&dir, &store, &db.url, &spec, &args, (files, bytes));
    if args.keep.is_none() {
        db.drop_it().await;
    } else {
        println!("kept: {} (PostgreSQL database {})", dir.display(), db.name);
    }
    outcome
}

fn phases(
    dir: &Path,
    store: &Path,
    url: &str,
    spec: &StoreSpec,
    args: &Args,
    (files, bytes): (u64, u64),
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let state = dir.join("state");
    let load_secs = args.load_secs.to_string();
    let steps: [(&str, Vec<&str>, &[i32]); 5] = [
        ("phase 1", vec!["phase", "1"], &[0]),
        // The generated store holds broken files on purpose: quarantined, exit 1.
        ("phase 2", vec!["phase", "2"], &[0, 1]),
        ("phase 3", vec!["phase", "3"], &[0]),
        ("phase 4", vec!["phase", "4", "--writers-stopped"], &[0]),
        // Unsigned: exit 1 (awaiting signature, or a check missed; the table says which).
        (
            "phase 5",
            vec!["phase", "5", "--load-secs", &load_secs],
            &[0, 1],
        ),
    ];
    let mut timings = Table::new(["step", "seconds", "peak RSS MiB", "exit"]);
    for (name, argv, ok) in steps {
        eprintln!("running {name}");
        let started = Instant::now();
        let rss_file = dir.join(format!("{}.rss", name.replace(' ', "-")));
        let out = crate::rss::timed_command(&exe, &rss_file)
            .args(&argv)
            .current_dir(dir)
            .env_remove("FERRY_CONFIG")
            .env("FERRY_STORE_DIR", store)
            .env("FERRY_STATE_DIR", &state)
            .env("FERRY_SQLITE_PATH", state.join("ferry.sqlite3"))
            .env("FERRY_POSTGRES_URL", url)
            .env("FERRY_POSTGRES_SCHEMA", "ferry")
            .env(
                "FERRY_IMPORT_MAX_FILE_BYTES",
                spec.max_file_bytes().to_string(),
            )
            .env("FERRY_PROGRESS", "0")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        let code = out.status.code().unwrap_or(-1);
        timings.row([
            name.to_owned(),
            format!("{:.1}", started.elapsed().as_secs_f64()),
            crate::rss::read_peak_kib(&rss_file)
                .map_or_else(|| "-".into(), |kb| format!("{:.0}", kb as f64 / 1024.0)),
            code.to_string(),
        ]);
        if !ok.contains(&code) {
            bail!(
                "{name} exited {code}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let report = newest_report(&state.join("reports"))?;
    let v: Value = serde_json::from_slice(
        &std::fs::read(&report).with_context(|| format!("reading {}", report.display()))?,
    )
    .with_context(|| format!("parsing {}", report.display()))?;

    println!(
        "\nsign-off benchmark: {files} files, {:.1} MB, phases 1–5\n",
        bytes as f64 / 1e6
    );
    print!("{timings}");
    println!();
    let mut reads = Table::new([
        "read",
        "postgres p95 ms",
        "sqlite p95 ms",
        "files p95 ms",
        "pg / sqlite",
        "pg / files",
    ]);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".to_owned(),
    };
    let ms = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.2}"));
    for c in v["performance"]["comparison"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (pg, lite, file) = (
            c["postgres_p95_ms"].as_f64(),
            c["sqlite_p95_ms"].as_f64(),
            c["files_p95_ms"].as_f64(),
        );
        reads.row([
            c["read"].as_str().unwrap_or("-").to_owned(),
            ms(pg),
            ms(lite),
            ms(file),
            ratio(pg, lite),
            ratio(pg, file),
        ]);
    }
    print!("{reads}");
    println!();
    let mut checks = Table::new(["area", "check", "verdict", "detail"]);
    for c in v["checks"].as_array().into_iter().flatten() {
        checks.row([
            c["area"].as_str().unwrap_or("-").to_owned(),
            c["name"].as_str().unwrap_or("-").to_owned(),
            if c["passed"].as_bool() == Some(true) {
                "pass".to_owned()
            } else {
                "FAIL".to_owned()
            },
            shorten(c["detail"].as_str().unwrap_or("")),
        ]);
    }
    print!("{checks}");
    println!("\nsign-off report: {}", report.display());
    Ok(())
}

/// The first 110 characters of a check's detail (the report has all of it).
fn shorten(detail: &str) -> String {
    match detail.char_indices().nth(110) {
        Some((i, _)) => format!("{}…", &detail[..i]),
        None => detail.to_owned(),
    }
}

/// The newest `signoff-*.json` under `reports`.
fn newest_report(reports: &Path) -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(reports)
        .with_context(|| format!("listing {}", reports.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("signoff-") && n.ends_with(".json"))
        })
        .collect();
    found.sort();
    found
        .pop()
        .with_context(|| format!("phase 5 wrote no signoff-*.json in {}", reports.display()))
}
