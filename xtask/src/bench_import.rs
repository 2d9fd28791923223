//! `cargo xtask bench import [--files N]`: generates a realistic agent store (a few hundred
//! agents with hundreds of messages each, status and task files, devlogs, hook logs, sessions,
//! about 1% broken files of every kind), then in the same run times
//!
//! 1. the floor: reading every file once (`find -type f -print0 | xargs -0 cat > /dev/null`),
//! 2. `cargo xtask import` of the whole store into a new SQLite file, run as a child process
//!    of this (release) binary under `/usr/bin/time` for its peak RSS,
//! 3. the floor again, and a re-run of the import on the unchanged store.
//!
//! Every measurement reads from a warm page cache (the store was just written and the floor
//! read it first); the faster of the two floors is the one ferry is compared with.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use ferry_core::table::Table;
use ferry_testkit::store_gen::{self, StoreSpec};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files in the generated store.
    #[arg(long, default_value_t = 50_000)]
    pub files: usize,
    /// Keep the store, database and reports in this directory (default: a temporary one).
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

struct Measure {
    name: &'static str,
    seconds: f64,
    rss_kb: Option<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => tmp.path().to_owned(),
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
        "generating a store of about {} files ({} agents × {} messages) in {}",
        args.files,
        spec.agents,
        spec.messages_per_agent,
        store.display()
    );
    let started = Instant::now();
    let gen_spec = spec.clone();
    let gen_root = store.clone();
    let generated = tokio::task::spawn_blocking(move || store_gen::generate(&gen_root, &gen_spec))
        .await
        .context("the generator thread failed")?
        .context("generating the store")?;
    let (files, bytes) = regular_files(&store)?;
    eprintln!(
        "  {files} regular files ({} entries), {:.1} MB, {} broken on purpose, in {:.1} s",
        generated.files,
        bytes as f64 / 1e6,
        generated
            .expected
            .values()
            .filter(|e| matches!(e, store_gen::Expect::Quarantined(_)))
            .count(),
        started.elapsed().as_secs_f64()
    );

    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    if !exe.components().any(|c| c.as_os_str() == "release") {
        eprintln!("warning: {} is not a release build; run `cargo xtask bench import` (the alias builds in release)", exe.display());
    }
    let db = dir.join("bench.sqlite3");
    let state = dir.join("state");

    let floor1 = read_floor(&store)?;
    let first = ferry_import(
        &exe,
        &dir,
        &store,
        &db,
        &state,
        spec.max_file_bytes(),
        "ferry import",
    )?;
    let floor2 = read_floor(&store)?;
    let rerun = ferry_import(
        &exe,
        &dir,
        &store,
        &db,
        &state,
        spec.max_file_bytes(),
        "ferry re-run (unchanged)",
    )?;
    let floor = if floor1.seconds <= floor2.seconds {
        &floor1
    } else {
        &floor2
    };

    let mut t = Table::new([
        "measure",
        "seconds",
        "files/s",
        "MB/s",
        "peak RSS MB",
        "× floor",
    ]);
    for m in [&floor1, &floor2, &first, &rerun] {
        t.row([
            m.name.to_owned(),
            format!("{:.3}", m.seconds),
            format!("{:.0}", files as f64 / m.seconds),
            format!("{:.1}", bytes as f64 / 1e6 / m.seconds),
            m.rss_kb
                .map_or_else(|| "-".to_owned(), |kb| format!("{:.0}", kb as f64 / 1024.0)),
            format!("{:.2}", m.seconds / floor.seconds),
        ]);
    }
    println!("\nimport benchmark: {files} files, {:.1} MB, warm page cache; floor = faster of the two reads\n", bytes as f64 / 1e6);
    print!("{t}");
    let ratio = first.seconds / floor.seconds;
    let rss_mb = first.rss_kb.map(|kb| kb as f64 / 1024.0);
    println!(
        "\nferry import: {ratio:.2}× the read floor (target ≤ 1.5×), peak RSS {} (target ≤ 200 MB for 50,000 files)",
        rss_mb.map_or_else(|| "not measured".to_owned(), |m| format!("{m:.0} MB"))
    );
    if args.keep.is_some() {
        println!("kept: {}", dir.display());
    }
    Ok(())
}

pub(crate) fn regular_files(root: &Path) -> anyhow::Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                files += 1;
                bytes += e.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

/// Reads every regular file once; symlinks and the FIFO are skipped as `find -type f` does.
fn read_floor(store: &Path) -> anyhow::Result<Measure> {
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg("find \"$1\" -type f -print0 | xargs -0 cat > /dev/null")
        .arg("sh")
        .arg(store)
        .status()
        .context("running find | xargs cat")?;
    if !status.success() {
        bail!("find | xargs cat failed: {status}");
    }
    Ok(Measure {
        name: "read floor (cat)",
        seconds: started.elapsed().as_secs_f64(),
        rss_kb: None,
    })
}

fn ferry_import(
    exe: &Path,
    dir: &Path,
    store: &Path,
    db: &Path,
    state: &Path,
    max_file_bytes: u64,
    name: &'static str,
) -> anyhow::Result<Measure> {
    let rss_file = dir.join("rss.txt");
    let mut cmd = crate::rss::timed_command(exe, &rss_file);
    cmd.arg("import")
        .arg(store)
        .arg(db)
        .current_dir(dir)
        .env_remove("FERRY_CONFIG")
        .env("FERRY_STATE_DIR", state)
        .env("FERRY_IMPORT_MAX_FILE_BYTES", max_file_bytes.to_string())
        .env("FERRY_PROGRESS", "0")
        .stdout(std::process::Stdio::null());
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    // Exit 1 is expected: the store holds broken files on purpose.
    if !matches!(status.code(), Some(0 | 1)) {
        bail!("{name} failed: {status}");
    }
    let rss_kb = crate::rss::read_peak_kib(&rss_file);
    Ok(Measure {
        name,
        seconds,
        rss_kb,
    })
}
