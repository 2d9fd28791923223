//! `cargo xtask faults`: kills each phase with SIGKILL at random points, then finishes or
//! undoes it, and checks the end state; prints how many points were tried and how many
//! held, and writes a JSON report.
//!
//! Every point is a fresh migration in its own scratch folder (a generated agent store)
//! with its own PostgreSQL schema. The phases before the one under test run normally; the
//! phase under test is started as a child process and killed after a random delay between
//! zero and a little more than an uninterrupted run of it takes (measured first). Then,
//! alternately, the phase is run again, or rolled back first and then run again; finally
//! everything is rolled back to 0. A point holds when:
//! - the rerun's gate passes, and its digests equal those of the uninterrupted run;
//! - a rollback verifies and leaves the state before the phase (no SQLite file before
//!   phase 1, the gate-1 file before phase 2, no schema before phase 3);
//! - after `rollback --to 0` the store is byte-identical to what was generated, the SQLite
//!   file ferry created is gone, the schema is gone, and no backup folder lacks a manifest;
//! - the ledger is consistent at every step: no run left `started`, the killed run marked
//!   `interrupted`, every gate report's run in the ledger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ferry_core::config::Config;
use ferry_core::table::Table;
use ferry_phases::ledger::{Entry, Ledger, Outcome};
use ferry_phases::Phase;
use ferry_testkit::sqlite_gen::Rng;
use ferry_testkit::store_gen::{self, StoreSpec};
use serde::Serialize;
use sqlx::Connection;

use crate::Outcome as CmdOutcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kill points per phase.
    #[arg(long, default_value_t = 20)]
    points: usize,
    /// The phases to kill, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4")]
    phases: Vec<u8>,
    /// Seed of the kill delays (default: from the clock). It is printed, so a run that
    /// found something can be replayed.
    #[arg(long)]
    seed: Option<u64>,
    /// About how many files the generated store has (default: a small store of a few
    /// hundred files with every kind of defect).
    #[arg(long)]
    files: Option<usize>,
    /// Keep the scratch folders (their path is printed).
    #[arg(long)]
    keep: bool,
}

/// One kill point and what was found.
#[derive(Debug, Clone, Serialize)]
struct Point {
    phase: u8,
    point: usize,
    delay_ms: u64,
    /// The child was still running when it was killed (else it had finished first).
    killed_mid_run: bool,
    /// What the ledger says of the killed run: `interrupted`, `passed` (it had written its
    /// outcome), `not started` (killed before its `started` entry).
    killed_run: String,
    /// `rerun` (run again, then roll back to 0) or `rollback-first` (roll back to the
    /// phase before, run again, roll back to 0).
    mode: &'static str,
    held: bool,
    failures: Vec<String>,
    dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct Report {
    seed: u64,
    points_per_phase: usize,
    phases: Vec<u8>,
    files: u64,
    tried: usize,
    held: usize,
    killed_mid_run: usize,
    calibration_ms: BTreeMap<u8, u64>,
    points: Vec<Point>,
    elapsed_seconds: f64,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<CmdOutcome> {
    let started = Instant::now();
    let url = config.postgres.url.expose().to_owned();
    crate::ci::ensure_postgres(&url).await?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut phases = Vec::new();
    for n in &args.phases {
        let phase = Phase::try_from(*n).map_err(anyhow::Error::msg)?;
        if phase.is_built() {
            phases.push(phase);
        } else {
            println!("{phase} is not built yet: skipped");
        }
    }
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let root = tempfile::Builder::new()
        .prefix("ferry-faults-")
        .tempdir()
        .context("creating a scratch folder")?;
    let spec = args
        .files
        .map_or_else(StoreSpec::small, StoreSpec::with_files);
    println!(
        "faults: seed {seed} (replay with --seed {seed}), {} points per phase, phases {}, scratch {}",
        args.points,
        phases
            .iter()
            .map(|p| p.number().to_string())
            .collect::<Vec<_>>()
            .join(","),
        root.path().display()
    );

    let mut rng = Rng::new(seed);
    let mut points = Vec::new();
    let mut calibration_ms = BTreeMap::new();
    let mut files = 0;
    for phase in phases.iter().copied() {
        let n = phase.number();
        let calibrate = Scenario::new(
            &root.path().join(format!("p{n}-calibrate")),
            &exe,
            &url,
            &spec,
        )?;
        files = calibrate.files;
        calibrate.prepare(phase)?;
        // The shorter of two uninterrupted runs (the first one warms caches): kills are
        // spread over it.
        let mut took = Duration::MAX;
        for round in 0..2 {
            if round > 0 {
                let back = (n - 1).to_string();
                calibrate.xtask(
                    &["rollback", "--to", &back, "--discard-writes-since-cutover"],
                    "calibrate-rollback",
                )?;
            }
            let t = Instant::now();
            let out = calibrate.xtask(&phase_args(n), "calibrate")?;
            took = took.min(t.elapsed());
            if !matches!(out.status.code(), Some(0 | 1)) {
                bail!(
                    "{phase} does not pass without a fault, so nothing can be learnt from killing it: {}",
                    calibrate.log_tail("calibrate")
                );
            }
        }
        let reference = calibrate.reference(phase).await?;
        calibrate.cleanup(args.keep).await;
        calibration_ms.insert(n, took.as_millis() as u64);
        println!(
            "{phase}: an uninterrupted run takes {} ms",
            took.as_millis()
        );

        for i in 0..args.points {
            let delay = took.mul_f64(rng.unit() * 1.1);
            let mode = if i % 2 == 0 {
                "rerun"
            } else {
                "rollback-first"
            };
            let scenario =
                Scenario::new(&root.path().join(format!("p{n}-{i}")), &exe, &url, &spec)?;
            let point = scenario.fault(phase, i, delay, mode, &reference).await;
            let point = match point {
                Ok(p) => p,
                Err(e) => Point {
                    phase: n,
                    point: i,
                    delay_ms: delay.as_millis() as u64,
                    killed_mid_run: false,
                    killed_run: String::new(),
                    mode,
                    held: false,
                    failures: vec![format!("{e:#}")],
                    dir: scenario.dir.clone(),
                },
            };
            println!(
                "{phase} point {}/{}: killed at {} ms ({}), {mode}: {}",
                i + 1,
                args.points,
                point.delay_ms,
                if point.killed_mid_run {
                    format!("mid-run, the ledger says {}", point.killed_run)
                } else {
                    "it had finished".to_owned()
                },
                if point.held {
                    "held".to_owned()
                } else {
                    format!("FAILED: {}", point.failures.join("; "))
                }
            );
            // A failed point keeps its folder, for a person to look at.
            scenario.cleanup(args.keep || !point.held).await;
            points.push(point);
        }
    }

    let mut table = Table::new(["phase", "points", "killed mid-run", "held", "failed"]);
    for phase in &phases {
        let of: Vec<&Point> = points
            .iter()
            .filter(|p| p.phase == phase.number())
            .collect();
        table.row([
            phase.to_string(),
            of.len().to_string(),
            of.iter().filter(|p| p.killed_mid_run).count().to_string(),
            of.iter().filter(|p| p.held).count().to_string(),
            of.iter().filter(|p| !p.held).count().to_string(),
        ]);
    }
    let held = points.iter().filter(|p| p.held).count();
    let report = Report {
        seed,
        points_per_phase: args.points,
        phases: phases.iter().map(|p| p.number()).collect(),
        files,
        tried: points.len(),
        held,
        killed_mid_run: points.iter().filter(|p| p.killed_mid_run).count(),
        calibration_ms,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        points,
    };
    let path = ferry_core::fsutil::report_path(&config.state_dir, "faults", "json")
        .and_then(|p| ferry_core::fsutil::write_json(&p, &report).map(|()| p))
        .with_context(|| format!("writing the report under {}", config.state_dir.display()))?;
    println!("\n{table}");
    println!(
        "{} of {} points held ({} killed mid-run) in {:.0} s; seed {seed}",
        report.held, report.tried, report.killed_mid_run, report.elapsed_seconds
    );
    println!("report: {}", path.display());
    if args.keep {
        let kept = root.keep();
        println!("scratch folders kept in {}", kept.display());
    } else if held < report.tried {
        let kept = root.keep();
        println!("the failed points' folders are kept in {}", kept.display());
    }
    Ok(if held == report.tried {
        CmdOutcome::Clean
    } else {
        CmdOutcome::Findings
    })
}

/// What an uninterrupted run of a phase produced, to compare a faulted one with.
#[derive(Debug, Clone, Default)]
struct Reference {
    /// Phase 2: every SQLite data table's digest.
    sqlite: Option<ferry_validate::SqliteDigest>,
    /// Phase 3: every table's digests on both sides, as gate 3 recorded them.
    tables: Option<serde_json::Value>,
}

/// One scratch migration: a generated store, a state dir, a SQLite path and a schema.
struct Scenario {
    dir: PathBuf,
    exe: PathBuf,
    url: String,
    schema: String,
    files: u64,
    /// The store as generated: what `rollback --to 0` must leave.
    original: BTreeMap<String, TreeItem>,
}

impl Scenario {
    fn new(dir: &Path, exe: &Path, url: &str, spec: &StoreSpec) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("logs"))?;
        let generated = store_gen::generate(&dir.join("store"), spec)
            .with_context(|| format!("generating a store under {}", dir.display()))?;
        // Backups refuse special files (a FIFO the generator adds for the import's sake).
        remove_special_files(&dir.join("store"))?;
        let original = tree(&dir.join("store"))?;
        Ok(Scenario {
            dir: dir.to_path_buf(),
            exe: exe.to_path_buf(),
            url: url.to_owned(),
            schema: ferry_testkit::pg::unique_name("faults"),
            files: generated.files,
            original,
        })
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn sqlite(&self) -> PathBuf {
        self.state().join("ferry.sqlite3")
    }

    fn command(&self, args: &[&str], log: &str) -> anyhow::Result<Command> {
        let mut cmd = Command::new(&self.exe);
        let out = std::fs::File::create(self.dir.join("logs").join(format!("{log}.out")))?;
        let err = std::fs::File::create(self.dir.join("logs").join(format!("{log}.err")))?;
        cmd.args(args)
            .current_dir(&self.dir)
            .env_remove(ferry_core::env_vars::FERRY_CONFIG)
            .env("FERRY_STORE_DIR", self.dir.join("store"))
            .env("FERRY_STATE_DIR", self.state())
            .env("FERRY_SQLITE_PATH", self.sqlite())
            .env("FERRY_POSTGRES_URL", &self.url)
            .env("FERRY_POSTGRES_SCHEMA", &self.schema)
            .env(ferry_core::env_vars::FERRY_PROGRESS, "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        Ok(cmd)
    }

    fn xtask(&self, args: &[&str], log: &str) -> anyhow::Result<Output> {
        self.command(args, log)?
            .output()
            .with_context(|| format!("running xtask {}", args.join(" ")))
    }

    fn spawn(&self, args: &[&str], log: &str) -> anyhow::Result<Child> {
        self.command(args, log)?
            .spawn()
            .with_context(|| format!("starting xtask {}", args.join(" ")))
    }

    fn log_tail(&self, log: &str) -> String {
        let err = std::fs::read_to_string(self.dir.join("logs").join(format!("{log}.err")))
            .unwrap_or_default();
        let out = std::fs::read_to_string(self.dir.join("logs").join(format!("{log}.out")))
            .unwrap_or_default();
        let text = format!("{out}{err}");
        let lines: Vec<&str> = text.lines().rev().take(6).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Runs the phases before `phase`, each of which must pass.
    fn prepare(&self, phase: Phase) -> anyhow::Result<()> {
        for n in 1..phase.number() {
            let log = format!("prepare-{n}");
            let out = self.xtask(&phase_args(n), &log)?;
            if !matches!(out.status.code(), Some(0 | 1)) {
                bail!("phase {n} did not pass: {}", self.log_tail(&log));
            }
        }
        Ok(())
    }

    fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        Ok(Ledger::new(&self.state(), &self.sqlite()).entries()?)
    }

    async fn reference(&self, phase: Phase) -> anyhow::Result<Reference> {
        Ok(match phase {
            Phase::Import => Reference {
                sqlite: Some(digest(&self.sqlite()).await?),
                tables: None,
            },
            Phase::Load => Reference {
                sqlite: None,
                tables: Some(self.gate3_tables()?),
            },
            _ => Reference::default(),
        })
    }

    fn gate3_tables(&self) -> anyhow::Result<serde_json::Value> {
        let entries = self.entries()?;
        let entry = ferry_phases::ledger::latest_run(&entries, Phase::Load)
            .context("phase 3 has no run in the ledger")?;
        Ok(entry.evidence["tables"].clone())
    }

    /// One kill point: prepare, kill, then finish or undo, checking every step.
    async fn fault(
        &self,
        phase: Phase,
        i: usize,
        delay: Duration,
        mode: &'static str,
        reference: &Reference,
    ) -> anyhow::Result<Point> {
        self.prepare(phase)?;
        let n = phase.number();
        let pre = self.pre_phase_state(phase).await?;
        let mut child = self.spawn(&phase_args(n), "killed")?;
        let pid = child.id();
        std::thread::sleep(delay);
        let killed_mid_run = child.try_wait()?.is_none();
        if killed_mid_run {
            child.kill()?;
        }
        child.wait()?;

        let mut failures = Vec::new();
        self.ledger_consistent(&mut failures, "after the kill", false)?;
        if mode == "rollback-first" {
            let back = (n - 1).to_string();
            self.step(
                &["rollback", "--to", &back, "--discard-writes-since-cutover"],
                "rollback-first",
                &[0],
                &mut failures,
            )?;
            self.ledger_consistent(&mut failures, "after rolling back the killed phase", true)?;
            self.expect_pre_phase_state(phase, &pre, &mut failures)
                .await?;
        }
        self.step(&phase_args(n), "rerun", &[0, 1], &mut failures)?;
        self.ledger_consistent(&mut failures, "after the rerun", true)?;
        let killed_run = self.killed_run(pid)?;
        self.expect_passed(phase, reference, &mut failures).await?;
        self.step(
            &["rollback", "--to", "0", "--discard-writes-since-cutover"],
            "rollback-0",
            &[0],
            &mut failures,
        )?;
        self.ledger_consistent(&mut failures, "after rollback --to 0", true)?;
        self.expect_nothing_left(&mut failures).await?;
        Ok(Point {
            phase: n,
            point: i,
            delay_ms: delay.as_millis() as u64,
            killed_mid_run,
            killed_run,
            mode,
            held: failures.is_empty(),
            failures,
            dir: self.dir.clone(),
        })
    }

    fn step(
        &self,
        args: &[&str],
        log: &str,
        ok: &[i32],
        failures: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let out = self.xtask(args, log)?;
        let code = out.status.code().unwrap_or(-1);
        if !ok.contains(&code) {
            failures.push(format!(
                "`{}` exited {code}: {}",
                args.join(" "),
                self.log_tail(log)
            ));
        }
        Ok(())
    }

    /// No run left `started` (with `after_a_run`, the killed one was found and marked by
    /// the run that followed), and every gate or rollback report belongs to a ledger entry.
    fn ledger_consistent(
        &self,
        failures: &mut Vec<String>,
        when: &str,
        after_a_run: bool,
    ) -> anyhow::Result<()> {
        let entries = self.entries()?;
        if after_a_run {
            for e in entries.iter().filter(|e| e.outcome == Outcome::Started) {
                failures.push(format!(
                    "{when}: run {} of phase {} is still `started`",
                    e.run_id,
                    e.phase.number()
                ));
            }
        }
        for e in &entries {
            if e.outcome != Outcome::Started && e.finished_at.is_none() {
                failures.push(format!("{when}: run {} has no finish time", e.run_id));
            }
        }
        let reports = self.state().join("reports");
        if let Ok(items) = std::fs::read_dir(&reports) {
            for item in items.flatten() {
                let name = item.file_name().to_string_lossy().into_owned();
                let gate_or_rollback = (name.starts_with("gate") || name.starts_with("rollback"))
                    && name.ends_with(".json");
                if !gate_or_rollback {
                    continue;
                }
                let text = std::fs::read_to_string(item.path()).unwrap_or_default();
                let run_id = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["run_id"].as_str().map(str::to_owned));
                match run_id {
                    Some(id) if entries.iter().any(|e| e.run_id == id) => {}
                    _ => failures.push(format!(
                        "{when}: report {name} belongs to no run in the ledger"
                    )),
                }
            }
        }
        Ok(())
    }

    /// What became of the killed process's run in the ledger: `interrupted` (found and
    /// marked by the next run), `passed`/… (it had finished its ledger entry before the
    /// kill), or `not started` (killed before it wrote its `started` entry).
    fn killed_run(&self, pid: u32) -> anyhow::Result<String> {
        let entries = self.entries()?;
        Ok(entries
            .iter()
            .find(|e| e.process.as_ref().is_some_and(|p| p.pid == pid))
            .map_or_else(
                || "not started".to_owned(),
                |e| e.outcome.as_str().to_owned(),
            ))
    }

    /// Before phase 2: every table of the SQLite file but the phase ledger's mirror (which
    /// every run and rollback appends to).
    async fn pre_phase_state(
        &self,
        phase: Phase,
    ) -> anyhow::Result<Option<ferry_validate::SqliteDigest>> {
        Ok(match phase {
            Phase::Import => Some(digest_but_phase_ledger(&self.sqlite()).await?),
            _ => None,
        })
    }

    async fn expect_pre_phase_state(
        &self,
        phase: Phase,
        pre: &Option<ferry_validate::SqliteDigest>,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        match phase {
            Phase::Foundation => {
                if self.sqlite().exists() {
                    failures
                        .push("after rolling back phase 1 the SQLite file is still there".into());
                }
                self.expect_store_unchanged(failures)?;
            }
            Phase::Import => {
                let now = digest_but_phase_ledger(&self.sqlite()).await?;
                if let Some(pre) = pre {
                    let diffs = pre.differences(&now);
                    if !diffs.is_empty() {
                        failures.push(format!(
                            "after rolling back phase 2 the SQLite file differs from the one gate 1 passed: {}",
                            diffs.join("; ")
                        ));
                    }
                }
            }
            Phase::Load if self.schema_exists().await? => failures.push(format!(
                "after rolling back phase 3 schema {} still exists",
                self.schema
            )),
            _ => {}
        }
        Ok(())
    }

    async fn expect_passed(
        &self,
        phase: Phase,
        reference: &Reference,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let entries = self.entries()?;
        match ferry_phases::ledger::latest_run(&entries, phase) {
            Some(e) if e.outcome == Outcome::Passed => {}
            Some(e) => failures.push(format!(
                "the rerun of {phase} is {}: {}",
                e.outcome.as_str(),
                e.summary
            )),
            None => failures.push(format!("{phase} has no run in the ledger")),
        }
        if let Some(expected) = &reference.sqlite {
            let now = digest(&self.sqlite()).await?;
            let diffs = expected.differences(&now);
            if !diffs.is_empty() {
                failures.push(format!(
                    "the SQLite tables differ from an uninterrupted import: {}",
                    diffs.join("; ")
                ));
            }
        }
        if let Some(expected) = &reference.tables {
            let now = self.gate3_tables()?;
            if &now != expected {
                failures.push("gate 3's digests differ from those of an uninterrupted load".into());
            }
        }
        Ok(())
    }

    async fn expect_nothing_left(&self, failures: &mut Vec<String>) -> anyhow::Result<()> {
        self.expect_store_unchanged(failures)?;
        if self.sqlite().exists() {
            failures
                .push("after rollback --to 0 the SQLite file ferry created is still there".into());
        }
        if self.schema_exists().await? {
            failures.push(format!(
                "after rollback --to 0 schema {} still exists",
                self.schema
            ));
        }
        let backups = self.state().join("backups");
        if let Ok(items) = std::fs::read_dir(&backups) {
            for item in items.flatten() {
                let p = item.path();
                if p.is_dir() && !p.join(ferry_rollback::MANIFEST_FILE).is_file() {
                    failures.push(format!("backup folder {} has no manifest", p.display()));
                }
            }
        }
        Ok(())
    }

    fn expect_store_unchanged(&self, failures: &mut Vec<String>) -> anyhow::Result<()> {
        let now = tree(&self.dir.join("store"))?;
        if now != self.original {
            let changed: Vec<&String> = self
                .original
                .iter()
                .filter(|(k, v)| now.get(*k) != Some(v))
                .map(|(k, _)| k)
                .chain(now.keys().filter(|k| !self.original.contains_key(*k)))
                .take(3)
                .collect();
            failures.push(format!("the store changed: {changed:?}"));
        }
        Ok(())
    }

    async fn schema_exists(&self) -> anyhow::Result<bool> {
        let mut conn = sqlx::PgConnection::connect(&self.url).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&self.schema)
                .fetch_one(&mut conn)
                .await?;
        conn.close().await.ok();
        Ok(exists)
    }

    async fn cleanup(&self, keep: bool) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await {
            let sql = format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                ferry_core::sql::quote_ident(&self.schema)
            );
            let _ = sqlx::raw_sql(&sql).execute(&mut conn).await;
            conn.close().await.ok();
        }
        if !keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A file, link or directory of a tree, as compared byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TreeItem {
    File { mode: u32, bytes: Vec<u8> },
    Link(PathBuf),
    Dir { mode: u32 },
}

/// Every entry under `root` (links not followed).
fn tree(root: &Path) -> anyhow::Result<BTreeMap<String, TreeItem>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = item?.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path)?;
            let mode = meta.permissions().mode();
            let entry = if meta.file_type().is_symlink() {
                TreeItem::Link(std::fs::read_link(&path)?)
            } else if meta.is_dir() {
                stack.push(path.clone());
                TreeItem::Dir { mode }
            } else {
                TreeItem::File {
                    mode,
                    bytes: std::fs::read(&path)?,
                }
            };
            out.insert(rel, entry);
        }
    }
    Ok(out)
}

fn remove_special_files(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir)? {
            let item = item?;
            let kind = item.file_type()?;
            if kind.is_dir() {
                stack.push(item.path());
            } else if kind.is_fifo()
                || kind.is_socket()
                || kind.is_block_device()
                || kind.is_char_device()
            {
                std::fs::remove_file(item.path())?;
            }
        }
    }
    Ok(())
}

async fn digest(path: &Path) -> anyhow::Result<ferry_validate::SqliteDigest> {
    let path = path.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || {
        ferry_validate::digest_sqlite(&path, &ferry_validate::DigestOptions::default())
    })
    .await??)
}

async fn digest_but_phase_ledger(path: &Path) -> anyhow::Result<ferry_validate::SqliteDigest> {
    let path = path.to_path_buf();
    let mut d = tokio::task::spawn_blocking(move || {
        ferry_validate::digest_sqlite(
            &path,
            &ferry_validate::DigestOptions {
                include_ferry_tables: true,
                ..Default::default()
            },
        )
    })
    .await??;
    d.tables.retain(|t| t.table != "ferry_phase_runs");
    Ok(d)
}

/// `phase N`, and for the cutover the operator's statement that the store's writers are
/// stopped (nothing writes the generated store here).
fn phase_args(n: u8) -> Vec<&'static str> {
    const NUMBERS: [&str; 6] = ["0", "1", "2", "3", "4", "5"];
    let mut args = vec!["phase", NUMBERS[usize::from(n).min(5)]];
    if n == 4 {
        args.push("--writers-stopped");
    }
    args
}
