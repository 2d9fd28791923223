//! ferry's command line (`cargo xtask …`): thin glue over the ferry crates.
//!
//! Exit codes, decided here and nowhere else: 0 success; 1 the work ran but found
//! differences, rejects, quarantined files or drift; 2 error.

mod bench_agentdb;
mod bench_backup;
mod bench_import;
mod bench_signoff;
mod bench_sync;
mod bench_sync_files;
mod bench_transfer;
mod bench_validate;
mod ci;
mod demo;
mod faults;
mod import_cmd;
mod migrate_cmd;
mod pgvector;
mod phase_cmd;
mod rss;
mod scratch_db;
mod sync_cmd;
mod transfer_cmd;
mod validate_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry_core::config::{Config, ConfigLoader};
use ferry_core::logging::{self, LogFormat};

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything matched, nothing was rejected: exit 0.
    Clean,
    /// The work completed but found differences, rejects, quarantined files or drift: exit 1.
    Findings,
}

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about = "ferry: move a JSON/Markdown store into SQLite, then PostgreSQL, in five gated phases",
    long_about = "ferry: move a JSON/Markdown store into SQLite, then PostgreSQL, in five gated phases.\n\nRun it as `cargo xtask <COMMAND>` from anywhere inside the ferry checkout (the alias builds and runs the `xtask` binary in release mode). Exit codes: 0 success, 1 the work ran but found differences, rejects, quarantined files or drift, 2 error.",
    after_help = "Start with `cargo xtask demo`, or `cargo xtask demo --keep` for a store and a ferry.toml to try the phases on; see README.md."
)]
struct Cli {
    /// Config file (default: $FERRY_CONFIG, else ./ferry.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// `text` for people, `json` for machines.
    #[arg(long, global = true, default_value = "text", env = "FERRY_LOG_FORMAT")]
    log_format: LogFormat,
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job on a generated agent store, end to end, in a temporary folder
    /// (`--keep`: in ./ferry-demo, left there with its ferry.toml for the tour).
    Demo(demo::Args),
    /// Format check, clippy with warnings denied, and every test: what CI runs.
    Ci,
    /// Run one phase, gated on the one before: `phase 1` … `phase 5`.
    Phase(phase_cmd::PhaseArgs),
    /// Where the migration stands: phases, gates, schema versions, what to run next.
    Status(phase_cmd::StatusArgs),
    /// Undo phases newest first down to the state after phase N, verifying each.
    Rollback(phase_cmd::RollbackArgs),
    /// Phase 4's follower: the old application's writes (SQLite and file store) into
    /// PostgreSQL until Ctrl-C, with changes/s, backlog and lag; `--full` reconciles first.
    Sync(sync_cmd::Args),
    /// Kill each phase with SIGKILL at random points, finish or undo it, check the end state.
    Faults(faults::Args),
    /// Versioned schema migrations: add, status, up, down, plan, verify, repair, dump, diff.
    Migrate(migrate_cmd::Args),
    /// Import a file store into SQLite (standalone): `import STORE_DIR SQLITE_FILE`.
    Import(import_cmd::Args),
    /// Copy a SQLite file into PostgreSQL (standalone): `transfer SQLITE_FILE POSTGRES_URL`.
    Transfer(transfer_cmd::Args),
    /// Compare a SQLite file with a PostgreSQL schema: `validate SQLITE_FILE POSTGRES_URL`.
    Validate(validate_cmd::Args),
    /// The PostgreSQL server with pgvector for the vector tests: start, stop, url, status.
    Pgvector(pgvector::Args),
    /// Benchmarks against a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Import of a generated store vs reading every file.
    Import(bench_import::Args),
    /// Phase 1's proven backup of a generated store vs `cp -r`.
    Backup(bench_backup::Args),
    /// Transfer of a generated SQLite file vs sqlite3 | psql COPY, and pgloader.
    Transfer(bench_transfer::Args),
    /// Validation vs count(*) on both sides.
    Validate(bench_validate::Args),
    /// The data API's typical reads and simulated agents, PostgreSQL vs SQLite.
    Agentdb(bench_agentdb::Args),
    /// Phase-4 sync under a writer process: lag, backlog, and apply throughput vs a bare loop.
    Sync(bench_sync::Args),
    /// Phases 1–5 on a generated store of N files: the sign-off's reads against SQLite and
    /// the files, the simulated agents, and gate 5's checks.
    Signoff(bench_signoff::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ferry_core::exit::ERROR);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(ferry_core::exit::FINDINGS),
        Err(err) => {
            eprintln!("error: {}", error_sentence(&err));
            ExitCode::from(ferry_core::exit::ERROR)
        }
    }
}

/// The error and its causes as one line, password masked. A cause whose text its context
/// already spelled out is not repeated: drivers' errors often print their cause and return
/// it as `source()` as well.
fn error_sentence(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    ferry_core::redact::redact(&out).into_owned()
}

fn load_config(cli_config: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut loader = ConfigLoader::new();
    if let Some(path) = cli_config {
        loader = loader.file(path);
    }
    Ok(loader.load()?)
}

async fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Ci => ci::run().await,
        Command::Demo(args) => demo::run(args).await,
        Command::Phase(args) => phase_cmd::phase(args, load_config(cli.config)?).await,
        Command::Status(args) => phase_cmd::status(args, load_config(cli.config)?).await,
        Command::Rollback(args) => phase_cmd::rollback(args, load_config(cli.config)?).await,
        Command::Sync(args) => sync_cmd::run(args, load_config(cli.config)?).await,
        Command::Faults(args) => faults::run(args, &load_config(cli.config)?).await,
        Command::Migrate(args) => {
            let config = load_config(cli.config)?;
            if let Some(url) = args.postgres_url() {
                ci::ensure_postgres_named(url, "--db").await?;
            }
            migrate_cmd::run(args, &config).await
        }
        Command::Import(args) => import_cmd::run(args, &load_config(cli.config)?).await,
        Command::Transfer(args) => transfer_cmd::run(args, &load_config(cli.config)?).await,
        Command::Validate(args) => validate_cmd::run(args, &load_config(cli.config)?).await,
        Command::Pgvector(args) => pgvector::run(args).await,
        Command::Bench { which } => {
            match which {
                BenchCommand::Import(args) => bench_import::run(args).await?,
                BenchCommand::Transfer(args) => bench_transfer::run(args).await?,
                BenchCommand::Validate(args) => bench_validate::run(args).await?,
                BenchCommand::Agentdb(args) => bench_agentdb::run(args).await?,
                BenchCommand::Sync(args) => bench_sync::run(args).await?,
                BenchCommand::Signoff(args) => bench_signoff::run(args).await?,
                BenchCommand::Backup(args) => bench_backup::run(args).await?,
            }
            Ok(Outcome::Clean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error_sentence;

    /// An error type that prints its cause and also returns it, as sqlx's do.
    #[derive(Debug)]
    struct Doubled(std::io::Error);

    impl std::fmt::Display for Doubled {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error returned from database: {}", self.0)
        }
    }

    impl std::error::Error for Doubled {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_printed_once_and_passwords_never() {
        let io = std::io::Error::other("file is not a database");
        let err = anyhow::Error::new(Doubled(io)).context("opening app.sqlite3");
        assert_eq!(
            error_sentence(&err),
            "opening app.sqlite3: error returned from database: file is not a database"
        );
        let err = anyhow::anyhow!("cannot reach postgres://u:hunter2@db/app").context("connecting");
        assert_eq!(
            error_sentence(&err),
            "connecting: cannot reach postgres://u:***@db/app"
        );
    }
}
