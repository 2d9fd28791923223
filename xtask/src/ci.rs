//! `cargo xtask ci` (the same command CI runs) and the PostgreSQL check every command that
//! needs the server starts with.

use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use ferry_core::env_vars::FERRY_SKIPPED_CHECKS_DIR;
use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;

use crate::Outcome;

/// Runs fmt check, clippy with warnings denied, and every test, in that order, then says
/// how many acceptance checks did not run and why.
///
/// `CI` is passed through from the environment, not set: under CI an acceptance check whose
/// shared sample is absent fails (`ferry_testkit::samples`); elsewhere it records a marker
/// in a folder this command provides, and the markers are counted at the end.
pub async fn run() -> anyhow::Result<Outcome> {
    ensure_postgres_named(
        &ferry_core::env_vars::test_postgres_url(),
        "FERRY_TEST_POSTGRES_URL",
    )
    .await?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let skips = tempfile::Builder::new()
        .prefix("ferry-skipped-checks-")
        .tempdir()
        .context("creating a folder for the skipped-check markers")?;
    let steps: [(&str, &[&str]); 3] = [
        ("format", &["fmt", "--all", "--check"]),
        (
            "lint",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--release",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("test", &["test", "--workspace", "--release"]),
    ];
    for (what, args) in steps {
        eprintln!("==> {what}: cargo {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(args)
            .env(FERRY_SKIPPED_CHECKS_DIR, skips.path())
            .status()
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        if !status.success() {
            bail!(
                "{what} failed: `cargo {}` exited with {status}",
                args.join(" ")
            );
        }
    }
    let skipped = ferry_testkit::samples::read_skips(skips.path());
    if skipped.is_empty() {
        eprintln!("==> ci passed; every acceptance check ran");
    } else {
        eprintln!(
            "==> ci passed, but {} acceptance check{} did not run:",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" }
        );
        for line in &skipped {
            eprintln!("    {line}");
        }
        eprintln!(
            "    (under CI=true these fail instead; set {} to the samples folder to run them)",
            ferry_core::env_vars::FERRY_SAMPLES_DIR
        );
    }
    Ok(Outcome::Clean)
}

/// [`ensure_postgres_named`] for the configured server, `postgres.url`.
pub async fn ensure_postgres(url: &str) -> anyhow::Result<()> {
    ensure_postgres_named(url, "postgres.url (FERRY_POSTGRES_URL)").await
}

/// Makes sure PostgreSQL answers at `url`, which came from `setting` (named in the message
/// when the URL is what needs changing). When nothing listens and the URL points at a local
/// Debian cluster that is down, starts it and waits. Otherwise fails with one sentence:
/// not a PostgreSQL URL, not reachable, no such database, or the login refused.
pub async fn ensure_postgres_named(url: &str, setting: &str) -> anyhow::Result<()> {
    if let Err(why) = ferry_core::config::check_postgres_url(url) {
        bail!("{setting}: {why}");
    }
    let shown = ferry_core::redact::redact(url).into_owned();
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        anyhow::anyhow!(
            "{setting}: `{shown}` is not a valid PostgreSQL URL ({})",
            ferry_core::redact::redact(&e.to_string())
        )
    })?;
    let first = match try_connect(&options).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let unreachable = match first {
        Refusal::Unreachable(why) => why,
        other => bail!("{}", other.sentence(&shown, &options, setting)),
    };
    let cluster = local_cluster_for(&options);
    if let Some(c) = cluster.as_ref().filter(|c| !c.online) {
        eprintln!(
            "PostgreSQL is not answering at {shown}; starting the local cluster {}/{}",
            c.version, c.name
        );
        let started = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &c.version, &c.name, "start"])
            .output();
        if started.is_ok_and(|o| o.status.success()) {
            for _ in 0..30 {
                match try_connect(&options).await {
                    Ok(()) => return Ok(()),
                    Err(Refusal::Unreachable(_)) => {}
                    Err(other) => bail!("{}", other.sentence(&shown, &options, setting)),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let hint = match local_clusters().iter().find(|c| c.online) {
        Some(c) if is_local(&options) && c.port != options.get_port() => format!(
            " (the local cluster {}/{} answers on port {})",
            c.version, c.name, c.port
        ),
        _ => String::new(),
    };
    bail!(
        "PostgreSQL is not reachable at {shown} ({unreachable}); start a PostgreSQL server there, or set {setting} to one that runs{hint}"
    )
}

/// Why a connection attempt failed, in the terms the person can act on.
enum Refusal {
    /// Nothing answered: refused, timed out, no route.
    Unreachable(String),
    /// The server answered but has no such database.
    NoDatabase,
    /// The server refused the login (password, role, pg_hba.conf).
    Login(String),
    /// Anything else the server said.
    Other(String),
}

impl Refusal {
    fn sentence(&self, shown: &str, options: &PgConnectOptions, setting: &str) -> String {
        match self {
            Refusal::Unreachable(why) => format!("PostgreSQL is not reachable at {shown} ({why})"),
            Refusal::NoDatabase => {
                let db = options.get_database().unwrap_or("postgres");
                format!("PostgreSQL at {shown} has no database named \"{db}\"; create it (createdb {db}) or name an existing one in {setting}")
            }
            Refusal::Login(why) => format!(
                "PostgreSQL at {shown} refused the login ({why}); check the user and password in {setting}"
            ),
            Refusal::Other(why) => format!("PostgreSQL at {shown} refused the connection ({why})"),
        }
    }
}

async fn try_connect(options: &PgConnectOptions) -> Result<(), Refusal> {
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect_with(options),
    )
    .await;
    let e = match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return Ok(());
        }
        Ok(Err(e)) => e,
        Err(_) => return Err(Refusal::Unreachable("no answer within 5 s".into())),
    };
    let text = |t: &str| ferry_core::redact::redact(t).into_owned();
    Err(match &e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("3D000") => Refusal::NoDatabase,
            Some(code) if code.starts_with("28") => Refusal::Login(text(d.message())),
            _ => Refusal::Other(text(d.message())),
        },
        sqlx::Error::Io(io) => Refusal::Unreachable(match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "the connection timed out".into(),
            _ => text(&io.to_string()),
        }),
        other => Refusal::Unreachable(text(&other.to_string())),
    })
}

/// A cluster of the Debian `postgresql-common` tools.
#[derive(Debug, Clone)]
struct Cluster {
    version: String,
    name: String,
    port: u16,
    online: bool,
}

/// The local clusters `pg_lsclusters` lists; none where the tools are not installed.
fn local_clusters() -> Vec<Cluster> {
    let Ok(out) = Command::new("pg_lsclusters").arg("--no-header").output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            Some(Cluster {
                version: (*cols.first()?).to_owned(),
                name: (*cols.get(1)?).to_owned(),
                port: cols.get(2)?.parse().ok()?,
                online: cols.get(3)?.starts_with("online"),
            })
        })
        .collect()
}

/// The local cluster that would answer `options`, when its host is this machine.
fn local_cluster_for(options: &PgConnectOptions) -> Option<Cluster> {
    if !is_local(options) {
        return None;
    }
    local_clusters()
        .into_iter()
        .find(|c| c.port == options.get_port())
}

fn is_local(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]") || host.starts_with('/')
}
