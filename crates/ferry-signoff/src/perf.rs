//! The typical reads on PostgreSQL against the baselines: the SQLite database (a copy of
//! it, so that opening it in WAL mode changes nothing of the migrated file) and the old read
//! path, reading and parsing the store's JSON files as the application did before.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_agentdb::harness::{measure_reads, Fixture, Latency, ReadReport, TYPICAL_READS};
use ferry_agentdb::{AgentDb, AgentDbOptions, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{SignoffCheck, SignoffConfig, SignoffError, SignoffOptions};

const AREA: &str = "performance";

/// Agents, projects and configurations the reads aim at (at most this many of each).
const MAX_TARGETS: usize = 32;

/// The performance part of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerfReport {
    pub checks: Vec<SignoffCheck>,
    /// Agents, projects and configurations of the migrated data the reads cycle through.
    pub agents: Vec<String>,
    pub projects: Vec<String>,
    pub configs: Vec<String>,
    pub postgres: ReadReport,
    pub sqlite: ReadReport,
    /// The old read path: the JSON files, per read it has (agent memory has no files).
    pub files: Vec<Latency>,
    /// Per read: the three p95s side by side.
    pub comparison: Vec<Comparison>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub read: String,
    pub postgres_p95_ms: f64,
    pub sqlite_p95_ms: f64,
    pub files_p95_ms: Option<f64>,
}

/// Builds the fixture of reads from the migrated data, then times the reads on the three
/// paths.
pub async fn measure(
    config: &SignoffConfig,
    options: &SignoffOptions,
) -> Result<PerfReport, SignoffError> {
    let mut agent_options = agentdb_options(config, &config.schema);
    agent_options.max_connections = Some(4);
    let pg = AgentDb::connect(config.postgres_url.expose(), agent_options.clone())
        .await
        .map_err(|e| {
            SignoffError::failed(
                format!("opening schema \"{}\" with ferry-agentdb", config.schema),
                e,
            )
        })?;
    let fixture = match fixture_of(config, &pg).await {
        Ok(f) => f,
        Err(e) => {
            pg.close().await;
            return Err(e);
        }
    };
    let postgres = measure_reads(&pg, &fixture, options.read_iterations).await;
    pg.close().await;
    let postgres =
        postgres.map_err(|e| SignoffError::failed("timing the reads on PostgreSQL", e))?;

    let copy = sqlite_copy(config)?;
    let sqlite = async {
        let url = format!("sqlite://{}", copy.display());
        let db = AgentDb::connect(&url, agent_options)
            .await
            .map_err(|e| SignoffError::failed("opening the copy of the SQLite file", e))?;
        let r = measure_reads(&db, &fixture, options.read_iterations).await;
        db.close().await;
        r.map_err(|e| SignoffError::failed("timing the reads on SQLite", e))
    }
    .await;
    remove_copy(&copy);
    let sqlite = sqlite?;

    let files = measure_files(&config.store_dir, &fixture, options.read_iterations);
    let comparison: Vec<Comparison> = TYPICAL_READS
        .iter()
        .map(|name| Comparison {
            read: (*name).to_owned(),
            postgres_p95_ms: postgres.query(name).map_or(0.0, |q| q.p95_ms),
            sqlite_p95_ms: sqlite.query(name).map_or(0.0, |q| q.p95_ms),
            files_p95_ms: files.iter().find(|f| f.name == *name).map(|f| f.p95_ms),
        })
        .collect();
    let checks = perf_checks(&comparison, options);
    Ok(PerfReport {
        checks,
        agents: fixture.agents.clone(),
        projects: fixture.projects.clone(),
        configs: fixture.configs.clone(),
        postgres,
        sqlite,
        files,
        comparison,
    })
}

pub(crate) fn agentdb_options(config: &SignoffConfig, schema: &str) -> AgentDbOptions {
    AgentDbOptions {
        schema: schema.to_owned(),
        state_dir: Some(config.state_dir.clone()),
        naive_offset_seconds: config.timestamps.naive_offset_seconds(),
        ..AgentDbOptions::default()
    }
}

/// The checks over the p95s: the bound on PostgreSQL, and PostgreSQL against each baseline.
pub fn perf_checks(comparison: &[Comparison], options: &SignoffOptions) -> Vec<SignoffCheck> {
    let bound = options.p95_bound_ms;
    let over: Vec<String> = comparison
        .iter()
        .filter(|c| c.postgres_p95_ms >= bound)
        .map(|c| format!("{} {:.2} ms", c.read, c.postgres_p95_ms))
        .collect();
    let worst = comparison
        .iter()
        .max_by(|a, b| a.postgres_p95_ms.total_cmp(&b.postgres_p95_ms));
    let mut checks = vec![SignoffCheck::new(
        AREA,
        &format!("p95 under {bound} ms on PostgreSQL"),
        over.is_empty() && !comparison.is_empty(),
        if over.is_empty() {
            format!(
                "{} typical reads, slowest p95 {}",
                comparison.len(),
                worst.map_or("none".into(), |w| format!(
                    "{} {:.3} ms",
                    w.read, w.postgres_p95_ms
                ))
            )
        } else {
            format!("p95 at or over {bound} ms: {}", over.join(", "))
        },
    )];
    let tol = 1.0 + options.baseline_tolerance;
    let pct = (options.baseline_tolerance * 100.0).round();
    for (baseline, pick) in [
        (
            "SQLite",
            (|c: &Comparison| Some(c.sqlite_p95_ms)) as fn(&Comparison) -> Option<f64>,
        ),
        ("the file reads", |c: &Comparison| c.files_p95_ms),
    ] {
        let mut lines = Vec::new();
        let mut slower = Vec::new();
        for c in comparison {
            let Some(base) = pick(c) else { continue };
            let ratio = if base > 0.0 {
                c.postgres_p95_ms / base
            } else {
                f64::INFINITY
            };
            let line = format!(
                "{} {:.3} ms vs {:.3} ms (×{:.2})",
                c.read, c.postgres_p95_ms, base, ratio
            );
            if c.postgres_p95_ms > base * tol {
                slower.push(line.clone());
            }
            lines.push(line);
        }
        let accepted = options
            .accept_slower
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty() && !slower.is_empty());
        checks.push(SignoffCheck::new(
            AREA,
            &format!("PostgreSQL within {pct}% of {baseline} or faster"),
            (slower.is_empty() || accepted.is_some()) && !lines.is_empty(),
            match (slower.is_empty(), accepted) {
                (true, _) => format!("p95: {}", lines.join(", ")),
                (false, Some(reason)) => format!(
                    "NOT MET, ACCEPTED by the signer (--accept-slower: {reason}): PostgreSQL p95 more than {pct}% slower: {}",
                    slower.join(", ")
                ),
                (false, None) => format!(
                    "PostgreSQL p95 more than {pct}% slower: {}; a signer may accept it with `phase 5 --accept-slower \"reason\"`",
                    slower.join(", ")
                ),
            },
        ));
    }
    checks
}

/// The agents, projects and configurations of the migrated data, as a harness fixture.
/// Names the API refuses (an agent id that is not a folder name) are left out.
async fn fixture_of(config: &SignoffConfig, db: &AgentDb) -> Result<Fixture, SignoffError> {
    let mut agents = Vec::new();
    for a in db
        .list_agents()
        .await
        .map_err(|e| SignoffError::failed("listing the migrated agents", e))?
    {
        if agents.len() < MAX_TARGETS && db.get_agent_status(&a.agent_id).await.is_ok() {
            agents.push(a.agent_id);
        }
    }
    if agents.is_empty() {
        return Err(SignoffError::failed(
            "building the typical reads",
            "the migrated data has no agent (table agents is empty), so no typical read can be timed",
        ));
    }
    let mut projects = Vec::new();
    let mut configs = Vec::new();
    let (names_projects, names_configs) = names(config)
        .await
        .map_err(|e| SignoffError::failed("listing projects and configurations", e))?;
    for p in names_projects {
        if projects.len() < MAX_TARGETS && db.latest_analysis(&p, None).await.is_ok() {
            projects.push(p);
        }
    }
    for c in names_configs {
        if configs.len() < MAX_TARGETS && db.get_config(&c).await.is_ok() {
            configs.push(c);
        }
    }
    // A read of something absent is still the read the application makes.
    if projects.is_empty() {
        projects.push("project".to_owned());
    }
    if configs.is_empty() {
        configs.push("settings".to_owned());
    }
    Ok(Fixture {
        task_ids: vec![Vec::new(); agents.len()],
        agents,
        projects,
        configs,
        seed: 42,
        rows_written: 0,
    })
}

/// The projects of `project_analyses` and the configuration names of `configurations`
/// (`config/<name>.json`).
async fn names(config: &SignoffConfig) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(config.postgres_url.expose()).await?;
    let projects: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT project FROM {} WHERE project IS NOT NULL ORDER BY 1 LIMIT {MAX_TARGETS}",
        ferry_core::sql::qualified(&config.schema, "project_analyses")
    ))
    .fetch_all(&mut conn)
    .await?;
    let paths: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT source_path FROM {} ORDER BY 1 LIMIT {MAX_TARGETS}",
        ferry_core::sql::qualified(&config.schema, "configurations")
    ))
    .fetch_all(&mut conn)
    .await?;
    let _ = conn.close().await;
    let configs = paths
        .iter()
        .filter_map(|p| p.rsplit_once("config/").map(|(_, n)| n))
        .filter_map(|n| n.strip_suffix(".json"))
        .filter(|n| !n.contains('/'))
        .map(str::to_owned)
        .collect();
    Ok((projects, configs))
}

fn sqlite_copy(config: &SignoffConfig) -> Result<PathBuf, SignoffError> {
    let dir = config.state_dir.join("signoff");
    std::fs::create_dir_all(&dir)
        .map_err(|e| SignoffError::failed(format!("creating {}", dir.display()), e))?;
    let copy = dir.join(format!("reads-{}.sqlite3", std::process::id()));
    std::fs::copy(&config.sqlite, &copy).map_err(|e| {
        SignoffError::failed(
            format!("copying {} to {}", config.sqlite.display(), copy.display()),
            e,
        )
    })?;
    let wal = PathBuf::from(format!("{}-wal", config.sqlite.display()));
    if wal.exists() {
        let _ = std::fs::copy(&wal, format!("{}-wal", copy.display()));
    }
    Ok(copy)
}

fn remove_copy(copy: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
}

/// The old read path: each read opens, reads and parses the files the application kept,
/// as it did before the migration.
pub fn measure_files(store: &Path, f: &Fixture, iterations: u32) -> Vec<Latency> {
    let mut out = Vec::new();
    for name in TYPICAL_READS {
        if *name == "search_memory" {
            continue;
        }
        let warmup = (iterations / 10).max(1);
        let mut samples = Vec::with_capacity(iterations as usize);
        for i in 0..warmup + iterations {
            let n = i as usize;
            let started = Instant::now();
            std::hint::black_box(file_read(store, f, name, n));
            if i >= warmup {
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        out.push(Latency::from_samples(name, samples, 0));
    }
    out
}

fn read_json(path: &Path) -> Option<Value> {
    // Only regular files: a FIFO or device in the store would block or never end.
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    serde_json::from_slice(bytes).ok()
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            out.extend(json_files(&p));
        } else if kind.is_file() && p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out
}

fn time_of(v: &Value) -> String {
    [
        "timestamp",
        "created_at",
        "created",
        "updated_at",
        "last_update",
    ]
    .iter()
    .find_map(|k| v.get(k).and_then(Value::as_str))
    .unwrap_or("")
    .to_owned()
}

/// One typical read on the files; returns how many documents it produced.
fn file_read(store: &Path, f: &Fixture, name: &str, n: usize) -> usize {
    let agent = &f.agents[n % f.agents.len()];
    let ws = store.join("agent_workspaces").join(agent);
    match name {
        "get_agent_status" => read_json(&ws.join("status.json")).map_or(0, |_| 1),
        "get_agent_tasks" => {
            let Some(doc) = read_json(&ws.join("task_list.json")) else {
                return 0;
            };
            let mut tasks: Vec<Value> = match doc {
                Value::Array(a) => a,
                Value::Object(mut o) => match o.remove("tasks") {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            tasks.sort_by_key(|t| std::cmp::Reverse(time_of(t)));
            tasks.truncate(20);
            tasks.len()
        }
        "get_inbox" => {
            let mut msgs: Vec<Value> = json_files(&ws.join("inbox"))
                .iter()
                .filter_map(|p| read_json(p))
                .collect();
            msgs.sort_by_key(|m| std::cmp::Reverse(time_of(m)));
            msgs.truncate(Page::first(20).limit as usize);
            msgs.len()
        }
        "latest_analysis" => {
            let project = &f.projects[n % f.projects.len()];
            json_files(&store.join("project_analysis"))
                .iter()
                .filter_map(|p| read_json(p))
                .filter(|d| d.get("project").and_then(Value::as_str) == Some(project))
                .max_by_key(time_of)
                .map_or(0, |_| 1)
        }
        "get_config" => {
            let c = &f.configs[n % f.configs.len()];
            read_json(&store.join("config").join(format!("{c}.json"))).map_or(0, |_| 1)
        }
        _ => 0,
    }
}
