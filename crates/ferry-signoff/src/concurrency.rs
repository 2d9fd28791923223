//! Simulated agents at once, through ferry-agentdb, in a scratch schema of the same server
//! migrated exactly like the real one (ferry's PostgreSQL migrations), seeded through the
//! API, and dropped afterwards: the migrated data is never written.

use ferry_agentdb::harness::{run_load, seed, FixtureSpec, LoadOptions, LoadReport};
use ferry_agentdb::AgentDb;
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;

use crate::{SignoffCheck, SignoffConfig, SignoffError, SignoffOptions, MIN_AGENTS};

const AREA: &str = "concurrency";

/// The concurrency part of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConcurrencyReport {
    pub checks: Vec<SignoffCheck>,
    /// The scratch schema the agents worked in (dropped afterwards).
    pub scratch_schema: String,
    pub scratch_dropped: bool,
    pub fixture: FixtureSpec,
    pub load: LoadReport,
}

/// The start of the name of every scratch schema the concurrency check makes for the
/// migration in `schema`: `<schema>_signoff_` (the schema's name cut to 32 bytes so the whole
/// stays within PostgreSQL's 63). A rollback drops the leftovers of its own migration by
/// this prefix, never another migration's.
pub fn scratch_prefix(schema: &str) -> String {
    let mut cut = schema.len().min(32);
    while !schema.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_signoff_", &schema[..cut])
}

/// Creates the scratch schema, runs the agents, drops the schema.
pub async fn run(
    config: &SignoffConfig,
    options: &SignoffOptions,
) -> Result<ConcurrencyReport, SignoffError> {
    let scratch = format!(
        "{}{}_{}",
        scratch_prefix(&config.schema),
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let result = load_in(config, options, &scratch).await;
    let dropped = drop_schema(config, &scratch).await;
    let (fixture, load) = result?;
    let checks = load_checks(&load, options, &scratch, &dropped);
    Ok(ConcurrencyReport {
        checks,
        scratch_schema: scratch,
        scratch_dropped: dropped.is_ok(),
        fixture,
        load,
    })
}

async fn load_in(
    config: &SignoffConfig,
    options: &SignoffOptions,
    scratch: &str,
) -> Result<(FixtureSpec, LoadReport), SignoffError> {
    let url = config.postgres_url.expose();
    let mut db = ferry_schema::Database::connect(url, Some(scratch))
        .await
        .map_err(|e| SignoffError::failed("connecting to PostgreSQL for the scratch schema", e))?;
    let set = ferry_schema::MigrationSet::from_embedded(ferry_migrations::POSTGRES)
        .map_err(|e| SignoffError::failed("loading the PostgreSQL migrations", e))?;
    let migrated = ferry_schema::migrate_to_head(&mut db, &set).await;
    db.close().await;
    migrated.map_err(|e| {
        SignoffError::failed(format!("migrating the scratch schema \"{scratch}\""), e)
    })?;

    let mut agent_options = crate::perf::agentdb_options(config, scratch);
    // One connection per simulated agent, and a few to spare.
    agent_options.max_connections = Some(options.agents.max(1) as u32 + 4);
    let api = AgentDb::connect(url, agent_options).await.map_err(|e| {
        SignoffError::failed(format!("opening the scratch schema \"{scratch}\""), e)
    })?;
    let spec = FixtureSpec {
        agents: options.agents.max(1),
        ..FixtureSpec::default()
    };
    let fixture = match seed(&api, &spec).await {
        Ok(f) => f,
        Err(e) => {
            api.close().await;
            return Err(SignoffError::failed(
                format!("seeding the scratch schema \"{scratch}\""),
                e,
            ));
        }
    };
    let load = run_load(
        &api,
        &fixture,
        &LoadOptions {
            agents: options.agents,
            duration: options.load_duration,
            ..LoadOptions::default()
        },
    )
    .await;
    api.close().await;
    Ok((spec, load))
}

async fn drop_schema(config: &SignoffConfig, scratch: &str) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(config.postgres_url.expose())
        .await
        .map_err(|e| ferry_core::redact::redact(&e.to_string()).into_owned())?;
    let res = sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        ferry_core::sql::quote_ident(scratch)
    ))
    .execute(&mut conn)
    .await
    .map(|_| ())
    .map_err(|e| e.to_string());
    let _ = conn.close().await;
    res
}

/// The checks over a load run.
pub fn load_checks(
    load: &LoadReport,
    options: &SignoffOptions,
    scratch: &str,
    dropped: &Result<(), String>,
) -> Vec<SignoffCheck> {
    let pct = |r: f64| format!("{:.3}%", r * 100.0);
    let mut checks = vec![
        SignoffCheck::new(
            AREA,
            &format!("at least {MIN_AGENTS} agents at once"),
            load.agents >= MIN_AGENTS,
            format!(
                "{} simulated agents for {:.1} s: {} operations, {:.0} per second",
                load.agents, load.duration_s, load.total_ops, load.throughput_ops_per_s
            ),
        ),
        SignoffCheck::new(
            AREA,
            &format!("error rate under {}", pct(options.max_error_rate)),
            load.total_ops > 0 && load.error_rate < options.max_error_rate,
            format!(
                "{} errors in {} operations ({}){}",
                load.errors,
                load.total_ops,
                pct(load.error_rate),
                load.error_samples
                    .first()
                    .map_or(String::new(), |e| format!("; first: {e}"))
            ),
        ),
        SignoffCheck::new(
            AREA,
            "no deadlock, timeout or stalled agent",
            load.deadlocks == 0 && load.timeouts == 0 && load.stalled_agents == 0,
            format!(
                "{} deadlocks, {} operations over {} s, {} stalled agents; {} transient errors retried",
                load.deadlocks,
                load.timeouts,
                LoadOptions::default().op_timeout.as_secs(),
                load.stalled_agents,
                load.retries.retries
            ),
        ),
    ];
    checks.push(SignoffCheck::new(
        AREA,
        "migrated data not written",
        dropped.is_ok(),
        match dropped {
            Ok(()) => {
                format!("the agents worked in scratch schema \"{scratch}\", dropped afterwards")
            }
            Err(e) => format!("scratch schema \"{scratch}\" could not be dropped: {e}"),
        },
    ));
    checks
}
