//! `cargo xtask ci` (the same command CI runs) and the PostgreSQL check every command that
//! needs the server starts with.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::Connection;

use crate::Outcome;

/// Runs fmt check, clippy with warnings denied, and every test, in that order.
pub async fn run() -> anyhow::Result<Outcome> {
    ensure_postgres(&ferry_core::env_vars::test_postgres_url()).await?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
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
            .env("CI", "true")
            .status()
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        if !status.success() {
            bail!(
                "{what} failed: `cargo {}` exited with {status}",
                args.join(" ")
            );
        }
    }
    eprintln!("==> ci passed");
    Ok(Outcome::Clean)
}

/// Makes sure PostgreSQL answers at `url`: if it does not and a local cluster is installed,
/// starts it and waits; otherwise fails with one sentence saying what is missing.
pub async fn ensure_postgres(url: &str) -> anyhow::Result<()> {
    let shown = ferry_core::redact::redact(url).into_owned();
    let first = match try_connect(url).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if let Some(version) = local_cluster() {
        eprintln!(
            "PostgreSQL is not answering at {shown}; starting the local cluster {version}/main"
        );
        let status = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .status();
        if status.is_ok_and(|s| s.success()) {
            for _ in 0..30 {
                if try_connect(url).await.is_ok() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    bail!(
        "PostgreSQL is not reachable at {shown} ({first}); start a PostgreSQL server there, or set FERRY_POSTGRES_URL (and FERRY_TEST_POSTGRES_URL for tests) to one that runs"
    )
}

async fn try_connect(url: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(ferry_core::redact::redact(&e.to_string()).into_owned()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// The version of the installed Debian cluster, if `pg_ctlcluster` and one cluster exist.
fn local_cluster() -> Option<String> {
    let which = Command::new("sh")
        .args(["-c", "command -v pg_ctlcluster"])
        .output()
        .ok()?;
    if !which.status.success() {
        return None;
    }
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    versions.sort();
    versions.pop()
}
