//! Measures backup, verify and restore on a generated tree of small JSON files.
//!
//! `cargo run --release -p ferry-rollback --example backup_bench -- WORK_DIR [N_FILES]`
//! builds `WORK_DIR/store` (N_FILES files, default 50,000, in folders of 500) when it is
//! missing, then times each step with backups under `WORK_DIR/state`.

use std::path::PathBuf;
use std::time::Instant;

use ferry_rollback::{backup, restore, verify, BackupSpec, RestoreTargets};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let work = PathBuf::from(
        args.next()
            .ok_or("usage: backup_bench WORK_DIR [N_FILES]")?,
    );
    let n_files: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50_000);
    let store = work.join("store");
    if !store.exists() {
        for i in 0..n_files {
            let dir = store.join(format!("Agent-{}/inbox", i / 500));
            if i % 500 == 0 {
                std::fs::create_dir_all(&dir)?;
            }
            let body = format!(
                "{{\"id\":{i},\"from\":\"Agent-{}\",\"body\":\"{}\"}}\n",
                i % 7,
                "lorem ipsum ".repeat(i % 40 + 1)
            );
            std::fs::write(dir.join(format!("msg-{i:06}.json")), body)?;
        }
    }
    let state = work.join("state");

    let started = Instant::now();
    let b = backup(&BackupSpec::new(state.join("backups"), "bench").store(&store)).await?;
    let secs = started.elapsed().as_secs_f64();
    let t = b.manifest.contents.totals;
    println!(
        "backup (copy + hash + fsync + test restore + compare): {} files, {:.1} MB in {secs:.2} s = {:.0} files/s, {:.1} MB/s",
        t.files,
        t.bytes as f64 / 1e6,
        t.files as f64 / secs,
        t.bytes as f64 / 1e6 / secs
    );

    let started = Instant::now();
    let report = verify(&b)?;
    println!(
        "verify: ok={} in {:.2} s",
        report.is_ok(),
        started.elapsed().as_secs_f64()
    );

    let fresh = work.join("restored");
    let _ = std::fs::remove_dir_all(&fresh);
    let started = Instant::now();
    let report = restore(
        &b,
        &RestoreTargets::default().store(&fresh),
        &state.join("displaced"),
    )?;
    println!(
        "restore into an empty folder (verify backup + copy + fsync + compare): {} files in {:.2} s",
        report.files_written,
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let report = restore(
        &b,
        &RestoreTargets::default().store(&store),
        &state.join("displaced"),
    )?;
    println!(
        "restore onto the unchanged store (verify backup + hash target + compare): {} written, {} unchanged in {:.2} s",
        report.files_written,
        report.files_unchanged,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
