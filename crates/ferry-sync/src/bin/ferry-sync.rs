//! A minimal standalone command line for this crate (the project's command line will be
//! `cargo xtask sync`): `ferry-sync follow SQLITE_FILE POSTGRES_URL --schema NAME --plan
//! PLAN.json [--batch N] [--workers N] [--interval-ms N] [--pause-ms N] [--until-drained]`.
//! It follows the change log (running the built-in full reconciliation first when the
//! handoff is not recorded) until Ctrl-C, or until a pass finds nothing to do. Exit 0, or 2
//! on error. The crate's crash tests run it as a child process and kill it with SIGKILL.

use std::process::ExitCode;
use std::time::Duration;

use ferry_core::plan::TransferPlan;
use ferry_core::redact::{redact, SecretUrl};
use ferry_sync::{Applier, Follower, FollowerOptions, NoHook, SyncOptions, SyncTarget};

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ferry_core::exit::ERROR);
        }
    };
    match rt.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", redact(&e));
            ExitCode::from(ferry_core::exit::ERROR)
        }
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("follow") {
        return Err("usage: ferry-sync follow SQLITE_FILE POSTGRES_URL --schema NAME --plan PLAN.json [--batch N] [--workers N] [--interval-ms N] [--pause-ms N] [--until-drained]".into());
    }
    let mut positional = Vec::new();
    let mut schema = None;
    let mut plan_path = None;
    let mut options = SyncOptions::default();
    let mut follow = FollowerOptions {
        interval: Duration::from_millis(100),
        progress: false,
        ..FollowerOptions::default()
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<u64>().map_err(|e| format!("{name}: {e}"));
        match a.as_str() {
            "--schema" => schema = Some(value("--schema")?),
            "--plan" => plan_path = Some(value("--plan")?),
            "--batch" => options.batch_changes = number("--batch", value("--batch")?)?,
            "--workers" => options.workers = number("--workers", value("--workers")?)? as usize,
            "--interval-ms" => {
                follow.interval =
                    Duration::from_millis(number("--interval-ms", value("--interval-ms")?)?)
            }
            "--pause-ms" => {
                options.pause_in_apply = Some(Duration::from_millis(number(
                    "--pause-ms",
                    value("--pause-ms")?,
                )?))
            }
            "--until-drained" => follow.until_drained = true,
            other if other.starts_with("--") => return Err(format!("unknown flag {other}")),
            _ => positional.push(a),
        }
    }
    let [sqlite, url] = positional.as_slice() else {
        return Err("expected SQLITE_FILE and POSTGRES_URL".into());
    };
    let schema = schema.ok_or("--schema is required")?;
    let plan_path = plan_path.ok_or("--plan is required")?;
    let text =
        std::fs::read_to_string(&plan_path).map_err(|e| format!("cannot read {plan_path}: {e}"))?;
    let plan: TransferPlan = serde_json::from_str(&text)
        .map_err(|e| format!("{plan_path} is not a transfer plan: {e}"))?;
    let target = SyncTarget {
        url: SecretUrl::new(url.clone()),
        schema,
    };
    let applier = Applier::open(sqlite.as_ref(), &target, &plan, &options, true)
        .await
        .map_err(|e| e.to_string())?;
    let mut follower = Follower::new(applier, follow);
    let stop = follower.handle().stop;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.trigger();
        }
    });
    let summary = follower.run(&mut NoHook).await.map_err(|e| e.to_string())?;
    println!(
        "{} changes in {} passes; cursor {}",
        summary.changes, summary.passes, summary.status.cursor
    );
    follower.into_applier().close().await;
    Ok(())
}
