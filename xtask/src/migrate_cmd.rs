//! `cargo xtask migrate …`: ferry-schema on the command line.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ferry_core::config::Config;
use ferry_core::table::Table;
use ferry_schema::{Database, Dialect, MigrationSet, Migrator, SnapshotSet, State};

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    op: Op,
    /// `sqlite://PATH` or `postgres://user@host:port/db` (default: sqlite://<sqlite.path>).
    #[arg(long, global = true)]
    db: Option<String>,
    /// PostgreSQL schema to migrate (default: postgres.schema).
    #[arg(long, global = true)]
    schema: Option<String>,
    /// Migration directory: a root holding sqlite/ and postgres/, or one dialect's folder
    /// (default: the migrations embedded in this build; `add` writes to ./migrations).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Op {
    /// Create the next numbered up/down pair for each dialect.
    Add { name: String },
    /// Applied, pending, drifted, dirty and missing migrations (exit 1 on drift or dirt).
    Status,
    /// Apply pending migrations up to --to (default: head).
    Up {
        #[arg(long)]
        to: Option<i64>,
    },
    /// Revert applied migrations down to --to.
    Down {
        #[arg(long)]
        to: i64,
    },
    /// Dry run: the exact SQL `up`/`down` would run, in order.
    Plan {
        #[arg(long)]
        to: Option<i64>,
    },
    /// Fail (exit 1) when an applied migration's file changed, vanished or is dirty.
    Verify,
    /// Clear the dirty flag of VERSION (and accept its current file) after a manual fix.
    Repair {
        version: i64,
        /// The person undid the migration by hand: remove its ledger row instead.
        #[arg(long)]
        as_reverted: bool,
    },
    /// Print the canonical schema dump.
    Dump,
    /// Compare the live schema with the reviewed snapshot of its version (exit 1 on drift).
    Diff,
}

impl Args {
    /// The PostgreSQL URL this command talks to, if any (so the server is checked first).
    pub fn postgres_url(&self) -> Option<&str> {
        self.db
            .as_deref()
            .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<Outcome> {
    if let Op::Add { name } = &args.op {
        let root = args
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("migrations"));
        for path in ferry_schema::add(&root, name)? {
            println!("created {}", path.display());
        }
        return Ok(Outcome::Clean);
    }
    let url = args
        .db
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", config.sqlite.path.display()));
    let schema = args
        .schema
        .clone()
        .unwrap_or_else(|| config.postgres.schema.clone());
    if ferry_schema::db::sqlite_path(&url).is_none() && args.postgres_url().is_none() {
        bail!(
            "--db `{}`: ferry migrates SQLite and PostgreSQL databases only (expected sqlite://PATH or postgres://user@host:port/database)",
            ferry_core::redact::redact(&url)
        );
    }
    // Only `up` may create a SQLite file: every other command reads, or cannot apply to a
    // database that does not exist, and must leave nothing behind.
    let mut db = match args.op {
        Op::Up { .. } => Database::connect(&url, Some(&schema)).await?,
        _ => Database::connect_existing(&url, Some(&schema)).await?,
    };
    let dialect = db.dialect();
    let (set, snapshots) = load_sets(args.dir.as_deref(), dialect)?;
    let migrator = Migrator::new(set);
    let outcome = match args.op {
        // Handled above, before connecting.
        Op::Add { .. } => Outcome::Clean,
        Op::Status => {
            let status = migrator.status(&mut db).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let mut table = Table::new(["version", "name", "state", "applied at", "ms"]);
                for r in &status.rows {
                    table.row([
                        format!("{:04}", r.version),
                        r.name.clone(),
                        format!("{:?}", r.state).to_lowercase(),
                        r.applied_at.clone().unwrap_or_default(),
                        r.execution_ms.map(|m| m.to_string()).unwrap_or_default(),
                    ]);
                }
                println!(
                    "{}: version {} of {}\n{table}",
                    status.database, status.current, status.head
                );
            }
            let bad = status
                .rows
                .iter()
                .any(|r| matches!(r.state, State::Drifted | State::Dirty | State::Missing));
            if bad {
                Outcome::Findings
            } else {
                Outcome::Clean
            }
        }
        Op::Up { to } => {
            let ran = migrator.up(&mut db, to).await?;
            for r in &ran {
                println!("applied {} ({} ms)", r.file, r.execution_ms);
            }
            let status = migrator.status(&mut db).await?;
            println!(
                "{} is at version {} of {}",
                status.database, status.current, status.head
            );
            Outcome::Clean
        }
        Op::Down { to } => {
            let ran = migrator.down(&mut db, to).await?;
            for r in &ran {
                println!("reverted {} ({} ms)", r.file, r.execution_ms);
            }
            let status = migrator.status(&mut db).await?;
            println!("{} is at version {}", status.database, status.current);
            Outcome::Clean
        }
        Op::Plan { to } => {
            let current = migrator.status(&mut db).await?.current;
            let steps = match to {
                Some(v) if v < current => migrator.plan_down(&mut db, v).await?,
                other => migrator.plan_up(&mut db, other).await?,
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&steps)?);
            } else if steps.is_empty() {
                println!(
                    "-- nothing to run: {} is at version {current}",
                    db.describe()
                );
            } else {
                for s in &steps {
                    let how = if s.transactional {
                        "in a transaction"
                    } else {
                        "outside a transaction"
                    };
                    println!("-- {} ({how})\n{}\n", s.file, s.sql.trim_end());
                }
            }
            Outcome::Clean
        }
        Op::Verify => match migrator.verify(&mut db).await {
            Ok(()) => {
                println!(
                    "{}: every applied migration matches its file",
                    db.describe()
                );
                Outcome::Clean
            }
            Err(
                e @ (ferry_schema::SchemaError::Drift { .. }
                | ferry_schema::SchemaError::Dirty { .. }
                | ferry_schema::SchemaError::Unknown { .. }),
            ) => {
                println!("{e}");
                Outcome::Findings
            }
            Err(e) => return Err(e.into()),
        },
        Op::Repair {
            version,
            as_reverted,
        } => {
            migrator.repair(&mut db, version, as_reverted).await?;
            println!("repaired version {version} in {}", db.describe());
            Outcome::Clean
        }
        Op::Dump => {
            print!("{}", ferry_schema::dump(&mut db).await?);
            Outcome::Clean
        }
        Op::Diff => {
            let current = migrator.status(&mut db).await?.current;
            let live = ferry_schema::dump(&mut db).await?;
            // Phase 4's capture (triggers and a log in the SQLite file) is ferry's own, put
            // there and taken away by the phases: not drift of the reviewed schema.
            let (live, capture) =
                ferry_schema::dump::without_prefixed(&live, ferry_sync::OBJECT_PREFIX);
            if capture > 0 && !args.json {
                println!(
                    "left out: {capture} objects of phase 4's capture ({}*), installed and removed by ferry's phases",
                    ferry_sync::OBJECT_PREFIX
                );
            }
            let check = ferry_schema::compare_snapshot(&snapshots, current, &live);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&check)?);
            } else if check.equal {
                println!(
                    "{} matches the reviewed snapshot of version {current}",
                    db.describe()
                );
            } else {
                println!(
                    "{} differs from the reviewed snapshot of version {current}:",
                    db.describe()
                );
                for line in &check.diff {
                    println!("  {line}");
                }
            }
            if check.equal {
                Outcome::Clean
            } else {
                Outcome::Findings
            }
        }
    };
    db.close().await;
    Ok(outcome)
}

/// The migration set and snapshots for `dialect`, from `dir` or embedded.
pub fn load_sets(
    dir: Option<&Path>,
    dialect: Dialect,
) -> anyhow::Result<(MigrationSet, SnapshotSet)> {
    match dir {
        None => {
            let (files, snaps) = match dialect {
                Dialect::Sqlite => (ferry_migrations::SQLITE, ferry_migrations::SQLITE_SNAPSHOTS),
                Dialect::Postgres => (
                    ferry_migrations::POSTGRES,
                    ferry_migrations::POSTGRES_SNAPSHOTS,
                ),
            };
            Ok((
                MigrationSet::from_embedded(files)?,
                SnapshotSet::from_embedded(snaps),
            ))
        }
        Some(dir) => {
            if !dir.is_dir() {
                bail!("migration directory {} does not exist", dir.display());
            }
            let sub = dir.join(dialect.dir_name());
            let dialect_dir = if sub.is_dir() { sub } else { dir.to_path_buf() };
            let set = MigrationSet::from_dir(&dialect_dir)
                .with_context(|| format!("reading migrations from {}", dialect_dir.display()))?;
            let snaps = SnapshotSet::from_dir(&dialect_dir.join("snapshots"))?;
            Ok((set, snaps))
        }
    }
}
