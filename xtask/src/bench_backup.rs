//! `cargo xtask bench backup [--files N]`: generates the agent store `bench import` uses,
//! then in the same run times
//!
//! 1. the floor: `cp -r` of the store into a fresh folder (twice; the faster one counts),
//! 2. a second baseline: `cp -r` followed by `sync`, since ferry must make its copy durable
//!    and `cp -r` does not,
//! 3. ferry's phase-1 backup of the same store (`ferry_rollback::backup`: copy while hashing
//!    every file, fsync, test restore into a scratch folder compared with the manifest, then
//!    the manifest), run as a child process of this binary under `/usr/bin/time` for its
//!    peak RSS.
//!
//! It prints all three, ferry's ratio to both baselines (the target is ≤ 2× `cp -r`) and the peak RSS. Every
//! measurement reads from a warm page cache. The generated store's FIFO is removed first:
//! a backup refuses special files, by design, and `cp -r` would block on it.

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
    /// Keep the store and the backups in this directory (default: a temporary one).
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Internal: back up STORE into BACKUPS and exit (the measured child process).
    #[arg(long, hide = true, num_args = 2, value_names = ["STORE", "BACKUPS"])]
    pub child: Option<Vec<PathBuf>>,
}

struct Measure {
    name: &'static str,
    seconds: f64,
    rss_kb: Option<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(paths) = &args.child {
        return child(&paths[0], &paths[1]).await;
    }
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
        "generating a store of about {} files in {}",
        args.files,
        store.display()
    );
    let gen_spec = spec.clone();
    let gen_root = store.clone();
    tokio::task::spawn_blocking(move || store_gen::generate(&gen_root, &gen_spec))
        .await
        .context("the generator thread failed")?
        .context("generating the store")?;
    remove_special_files(&store)?;
    let (files, bytes) = crate::bench_import::regular_files(&store)?;

    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    if !exe.components().any(|c| c.as_os_str() == "release") {
        eprintln!("warning: {} is not a release build; run `cargo xtask bench backup` (the alias builds in release)", exe.display());
    }
    let floor1 = cp_floor(&store, &dir.join("cp1"))?;
    let ferry = ferry_backup(&exe, &dir, &store, &dir.join("backups"))?;
    let floor2 = cp_floor(&store, &dir.join("cp2"))?;
    let floor = floor1.seconds.min(floor2.seconds);
    let synced = cp_sync(&store, &dir.join("cp3"))?;

    let mut t = Table::new([
        "measure",
        "seconds",
        "files/s",
        "MB/s",
        "peak RSS MB",
        "× floor",
        "× cp+sync",
    ]);
    for m in [&floor1, &floor2, &synced, &ferry] {
        t.row([
            m.name.to_owned(),
            format!("{:.3}", m.seconds),
            format!("{:.0}", files as f64 / m.seconds),
            format!("{:.1}", bytes as f64 / 1e6 / m.seconds),
            m.rss_kb
                .map_or_else(|| "-".to_owned(), |kb| format!("{:.0}", kb as f64 / 1024.0)),
            format!("{:.2}", m.seconds / floor),
            format!("{:.2}", m.seconds / synced.seconds),
        ]);
    }
    println!(
        "\nbackup benchmark: {files} files, {:.1} MB, warm page cache; floor = faster of the two `cp -r`\n",
        bytes as f64 / 1e6
    );
    print!("{t}");
    println!(
        "\nferry backup (hash, fsync, test restore, manifest): {:.2}× `cp -r` (target ≤ 2×), {:.2}× `cp -r` + `sync`, peak RSS {}",
        ferry.seconds / floor,
        ferry.seconds / synced.seconds,
        ferry.rss_kb.map_or_else(
            || "not measured".to_owned(),
            |kb| format!("{:.0} MB", kb as f64 / 1024.0)
        )
    );
    if args.keep.is_some() {
        println!("kept: {}", dir.display());
    }
    Ok(())
}

/// The measured child: one backup, as phase 1 takes it.
async fn child(store: &Path, backups: &Path) -> anyhow::Result<()> {
    let spec = ferry_rollback::BackupSpec::new(backups, "bench").store(store);
    let b = ferry_rollback::backup(&spec)
        .await
        .with_context(|| format!("backing up {}", store.display()))?;
    if !b.manifest.test_restore.matched {
        bail!("the test restore of {} did not match", b.dir.display());
    }
    Ok(())
}

/// FIFOs and other special files: a backup refuses them and `cp -r` blocks on a FIFO.
pub(crate) fn remove_special_files(root: &Path) -> anyhow::Result<()> {
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if !ft.is_file() && !ft.is_symlink() {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
    }
    Ok(())
}

fn cp_floor(store: &Path, dest: &Path) -> anyhow::Result<Measure> {
    let started = Instant::now();
    let status = Command::new("cp")
        .arg("-r")
        .arg(store)
        .arg(dest)
        .status()
        .context("running cp -r")?;
    if !status.success() {
        bail!("cp -r failed: {status}");
    }
    Ok(Measure {
        name: "floor (cp -r)",
        seconds: started.elapsed().as_secs_f64(),
        rss_kb: None,
    })
}

/// `cp -r` then `sync`: a copy made durable, as ferry's is (`sync` flushes every file
/// system, which is all it can promise; ferry flushes only its own).
fn cp_sync(store: &Path, dest: &Path) -> anyhow::Result<Measure> {
    // Start from clean page cache state: nothing dirty left by the runs before.
    let _ = Command::new("sync").status();
    let started = Instant::now();
    let mut m = cp_floor(store, dest)?;
    let status = Command::new("sync").status().context("running sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    m.name = "cp -r + sync";
    m.seconds = started.elapsed().as_secs_f64();
    Ok(m)
}

fn ferry_backup(exe: &Path, dir: &Path, store: &Path, backups: &Path) -> anyhow::Result<Measure> {
    let rss_file = dir.join("rss.txt");
    let mut cmd = crate::rss::timed_command(exe, &rss_file);
    cmd.args(["bench", "backup", "--child"])
        .arg(store)
        .arg(backups)
        .env_remove("FERRY_CONFIG");
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("ferry backup failed: {status}");
    }
    let rss_kb = crate::rss::read_peak_kib(&rss_file);
    Ok(Measure {
        name: "ferry backup",
        seconds,
        rss_kb,
    })
}
