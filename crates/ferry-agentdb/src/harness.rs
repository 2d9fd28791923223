//! Load and latency harness over the API, for phase 5's report and `cargo xtask bench
//! agentdb`:
//!
//! - [`seed`] fills a database through the API with a fixed, seeded fixture (agents, tasks,
//!   messages, devlogs, configuration, analyses, memories), so both backends hold the same
//!   data;
//! - [`measure_reads`] times the typical reads (`get_agent_status`, `get_agent_tasks`, an
//!   inbox page, the latest analysis, a configuration, a memory top-k) one after another and
//!   reports p50/p95/p99 and a histogram per read;
//! - [`run_load`] runs N simulated agents (default 16) doing a realistic mix of reads and
//!   writes for a set time (default 30 s), and reports throughput, latency percentiles per
//!   operation, errors and their rate, timeouts, deadlocks, and the operations and errors of
//!   every second, for a chart.
//!
//! Every result is a serde struct; nothing here prints.
//!
//! ```no_run
//! # async fn demo(db: &ferry_agentdb::AgentDb) -> Result<(), ferry_agentdb::AgentDbError> {
//! use ferry_agentdb::harness::{measure_reads, run_load, seed, FixtureSpec, LoadOptions};
//! let fixture = seed(db, &FixtureSpec::default()).await?;
//! let reads = measure_reads(db, &fixture, 200).await?;
//! let load = run_load(db, &fixture, &LoadOptions::default()).await;
//! println!("p95 of get_agent_status: {:.2} ms; {:.0} ops/s, error rate {:.4}",
//!     reads.query("get_agent_status").map_or(0.0, |q| q.p95_ms), load.throughput_ops_per_s, load.error_rate);
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::backend::BackendKind;
use crate::db::{AgentDb, RetryStats};
use crate::error::{AgentDbError, Result};
use crate::model::{
    NewAgent, NewAnalysis, NewDevlog, NewMemory, NewMessage, NewTask, Page, StatusUpdate,
    EMBEDDING_DIMS,
};

/// How much data [`seed`] writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FixtureSpec {
    pub agents: usize,
    pub tasks_per_agent: usize,
    pub messages_per_agent: usize,
    pub memories_per_agent: usize,
    pub devlogs_per_agent: usize,
    pub analyses: usize,
    pub configs: usize,
    pub seed: u64,
}

impl Default for FixtureSpec {
    fn default() -> Self {
        Self {
            agents: 16,
            tasks_per_agent: 20,
            messages_per_agent: 30,
            memories_per_agent: 20,
            devlogs_per_agent: 2,
            analyses: 10,
            configs: 5,
            seed: 42,
        }
    }
}

/// What [`seed`] wrote, for the reads and the load to aim at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fixture {
    pub agents: Vec<String>,
    pub projects: Vec<String>,
    pub configs: Vec<String>,
    pub task_ids: Vec<Vec<String>>,
    pub seed: u64,
    pub rows_written: u64,
}

/// Writes the fixture through the API (so its rows are what an application would write).
pub async fn seed(db: &AgentDb, spec: &FixtureSpec) -> Result<Fixture> {
    let mut rng = Rng(spec.seed);
    let mut rows = 0u64;
    let agents: Vec<String> = (1..=spec.agents.max(1))
        .map(|i| format!("Agent-{i}"))
        .collect();
    let statuses = ["online", "busy", "idle", "Active", "ready"];
    for a in &agents {
        db.register_agent(&NewAgent {
            display_name: Some(format!("{a} ({})", rng.words(2))),
            role: Some(rng.pick(&["captain", "developer", "reviewer"]).to_owned()),
            status: Some(rng.pick(&statuses).to_owned()),
            capabilities: Some(json!(["task_execution", "status_reporting"])),
            ..NewAgent::new(a.clone())
        })
        .await?;
        db.update_agent_status(
            a,
            &StatusUpdate {
                current_task: Some(rng.words(4)),
                performance: Some(json!({"tasks_completed": rng.below(50), "error_count": 0})),
                ..StatusUpdate::new(rng.pick(&statuses))
            },
        )
        .await?;
        rows += 2;
    }
    let mut task_ids = Vec::new();
    for a in &agents {
        let mut ids = Vec::new();
        for _ in 0..spec.tasks_per_agent {
            let t = db
                .create_task(&NewTask {
                    description: Some(rng.words(12)),
                    status: Some(
                        rng.pick(&["pending", "in_progress", "To Do", "done"])
                            .into(),
                    ),
                    priority: Some(rng.pick(&["low", "normal", "High"]).into()),
                    ..NewTask::new(a.clone(), rng.words(4))
                })
                .await?;
            ids.push(t.task_id);
            rows += 2;
        }
        task_ids.push(ids);
    }
    for (i, a) in agents.iter().enumerate() {
        for _ in 0..spec.messages_per_agent {
            let to = &agents[rng.below(agents.len())];
            db.send_message(&NewMessage {
                message_type: Some(rng.pick(&["task", "sync", "status_update"]).into()),
                subject: Some(rng.words(3)),
                priority: Some(rng.pick(&["normal", "High", "urgent"]).into()),
                ..NewMessage::new(a.clone(), to.clone(), rng.words(15))
            })
            .await?;
            rows += 2;
        }
        for _ in 0..spec.memories_per_agent {
            db.store_memory(&NewMemory {
                agent_id: Some(a.clone()),
                content: rng.words(10),
                embedding: rng.embedding(),
                metadata: Some(json!({"agent": i})),
            })
            .await?;
            rows += 1;
        }
        for _ in 0..spec.devlogs_per_agent {
            db.append_devlog(&NewDevlog {
                agent_id: Some(a.clone()),
                title: rng.words(4),
                body: format!("# {}\n\n{}\n", rng.words(3), rng.words(60)),
                tags: vec!["devlog".into()],
            })
            .await?;
            rows += 1;
        }
    }
    let projects: Vec<String> = (0..spec.analyses.max(1).div_ceil(5))
        .map(|i| format!("project-{i}"))
        .collect();
    for i in 0..spec.analyses.max(1) {
        db.record_analysis(&NewAnalysis {
            project: projects[i % projects.len()].clone(),
            analysis_type: rng.pick(&["structure", "deps", "quality"]).into(),
            result: json!({"modules": rng.below(40), "notes": rng.words(8)}),
        })
        .await?;
        rows += 1;
    }
    let configs: Vec<String> = (0..spec.configs.max(1))
        .map(|i| format!("settings-{i}"))
        .collect();
    for c in &configs {
        db.set_config(
            c,
            &json!({"retries": rng.below(5), "timeout_s": 30, "features": {"sync": true}}),
        )
        .await?;
        rows += 1;
    }
    Ok(Fixture {
        agents,
        projects,
        configs,
        task_ids,
        seed: spec.seed,
        rows_written: rows,
    })
}

/// The typical reads, by the API's names.
pub const TYPICAL_READS: &[&str] = &[
    "get_agent_status",
    "get_agent_tasks",
    "get_inbox",
    "latest_analysis",
    "get_config",
    "search_memory",
];

/// Latencies of one read or operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub name: String,
    pub samples: u64,
    pub errors: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Counts per bucket: `le_ms` is the bucket's upper bound (the last one is infinite).
    pub histogram: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bucket {
    pub le_ms: f64,
    pub count: u64,
}

/// Bucket bounds of the histograms: 0.05 ms to 5 s, in steps of about ×1.8.
const BOUNDS_MS: &[f64] = &[
    0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 1.8, 3.2, 5.6, 10.0, 18.0, 32.0, 56.0, 100.0, 180.0, 320.0,
    560.0, 1000.0, 1800.0, 3200.0, 5000.0,
];

impl Latency {
    /// Percentiles (nearest rank) and a histogram of `samples_ms`.
    pub fn from_samples(name: &str, mut samples_ms: Vec<f64>, errors: u64) -> Self {
        samples_ms.sort_by(f64::total_cmp);
        let n = samples_ms.len();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            samples_ms[rank.clamp(1, n) - 1]
        };
        let mut histogram: Vec<Bucket> = BOUNDS_MS
            .iter()
            .map(|b| Bucket {
                le_ms: *b,
                count: 0,
            })
            .collect();
        histogram.push(Bucket {
            le_ms: f64::INFINITY,
            count: 0,
        });
        for s in &samples_ms {
            let i = BOUNDS_MS
                .iter()
                .position(|b| s <= b)
                .unwrap_or(BOUNDS_MS.len());
            histogram[i].count += 1;
        }
        Self {
            name: name.to_owned(),
            samples: n as u64,
            errors,
            mean_ms: if n == 0 {
                0.0
            } else {
                samples_ms.iter().sum::<f64>() / n as f64
            },
            p50_ms: pct(50.0),
            p95_ms: pct(95.0),
            p99_ms: pct(99.0),
            max_ms: samples_ms.last().copied().unwrap_or(0.0),
            histogram,
        }
    }
}

/// [`measure_reads`]' result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadReport {
    pub backend: BackendKind,
    pub iterations: u32,
    pub queries: Vec<Latency>,
}

impl ReadReport {
    pub fn query(&self, name: &str) -> Option<&Latency> {
        self.queries.iter().find(|q| q.name == name)
    }
}

/// Times each typical read `iterations` times (after a warm-up of a tenth as many), one at a
/// time, cycling through the fixture's agents. A read that fails stops the measure: the
/// numbers would not mean what they say.
pub async fn measure_reads(db: &AgentDb, fixture: &Fixture, iterations: u32) -> Result<ReadReport> {
    let mut rng = Rng(fixture.seed ^ 0x5eed);
    let queries: Vec<Vec<f32>> = (0..8).map(|_| rng.embedding()).collect();
    let mut queries_out = Vec::new();
    for name in TYPICAL_READS {
        let warmup = (iterations / 10).max(1);
        let mut samples = Vec::with_capacity(iterations as usize);
        for i in 0..warmup + iterations {
            let n = i as usize;
            let started = Instant::now();
            read(db, fixture, name, n, &queries[n % queries.len()]).await?;
            if i >= warmup {
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        queries_out.push(Latency::from_samples(name, samples, 0));
    }
    Ok(ReadReport {
        backend: db.backend(),
        iterations,
        queries: queries_out,
    })
}

async fn read(db: &AgentDb, f: &Fixture, name: &str, n: usize, query: &[f32]) -> Result<()> {
    let agent = &f.agents[n % f.agents.len()];
    match name {
        "get_agent_status" => {
            db.get_agent_status(agent).await?;
        }
        "get_agent_tasks" => {
            db.get_agent_tasks(agent, 20).await?;
        }
        "get_inbox" => {
            db.get_inbox(agent, Page::first(20)).await?;
        }
        "latest_analysis" => {
            db.latest_analysis(&f.projects[n % f.projects.len()], None)
                .await?;
        }
        "get_config" => {
            db.get_config(&f.configs[n % f.configs.len()]).await?;
        }
        "search_memory" => {
            db.search_memory(Some(agent), query, 10).await?;
        }
        other => {
            return Err(AgentDbError::invalid(
                "read",
                format!("`{other}` is not a typical read"),
            ))
        }
    }
    Ok(())
}

/// How [`run_load`] runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Simulated agents working at once (phase 5 asks for at least 10).
    pub agents: usize,
    pub duration: Duration,
    /// An operation slower than this counts as a timeout (and an error): a sign of a
    /// deadlock or of a lock held too long.
    pub op_timeout: Duration,
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            agents: 16,
            duration: Duration::from_secs(30),
            op_timeout: Duration::from_secs(10),
            seed: 7,
        }
    }
}

/// The operations of the mix and their weights (reads 70%, writes 30%).
pub const MIX: &[(&str, u32)] = &[
    ("get_agent_status", 15),
    ("get_agent_tasks", 15),
    ("get_inbox", 15),
    ("get_config", 8),
    ("latest_analysis", 5),
    ("search_memory", 12),
    ("update_agent_status", 8),
    ("create_task", 6),
    ("update_task_status", 5),
    ("send_message", 8),
    ("mark_processed", 2),
    ("append_devlog", 1),
];

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondPoint {
    /// Seconds since the start (the second that ends here).
    pub t_s: u64,
    pub ops: u64,
    pub errors: u64,
}

/// [`run_load`]'s result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub backend: BackendKind,
    pub agents: usize,
    pub duration_s: f64,
    pub total_ops: u64,
    pub errors: u64,
    /// errors / total_ops.
    pub error_rate: f64,
    pub throughput_ops_per_s: f64,
    /// Operations that did not finish within `op_timeout`.
    pub timeouts: u64,
    /// Errors the database reported as a deadlock.
    pub deadlocks: u64,
    /// Some simulated agent had not finished `op_timeout` after the end: something hangs.
    pub stalled_agents: usize,
    pub retries: RetryStats,
    pub per_operation: Vec<Latency>,
    pub series: Vec<SecondPoint>,
    /// The first few error messages, for a person to read.
    pub error_samples: Vec<String>,
}

#[derive(Debug)]
struct Sample {
    op: usize,
    at_ms: u64,
    latency_ms: f64,
    error: Option<String>,
    timeout: bool,
}

/// Runs `options.agents` simulated agents against `db` for `options.duration`. Each works
/// as one of the fixture's agents: it reads its status, tasks, inbox, configuration, the
/// latest analysis and its memories, updates its status, creates and completes tasks, sends
/// messages to the others, processes its inbox and writes devlogs, in [`MIX`]'s proportions.
pub async fn run_load(db: &AgentDb, fixture: &Fixture, options: &LoadOptions) -> LoadReport {
    let before = db.retry_stats();
    let started = Instant::now();
    let deadline = started + options.duration;
    let mut handles = Vec::new();
    for i in 0..options.agents.max(1) {
        let db = db.clone();
        let f = fixture.clone();
        let timeout = options.op_timeout;
        let seed = options.seed.wrapping_add(i as u64 * 0x9E37);
        handles.push(tokio::spawn(async move {
            agent_loop(&db, &f, i, seed, started, deadline, timeout).await
        }));
    }
    let mut samples = Vec::new();
    let mut stalled = 0;
    let grace = deadline + options.op_timeout;
    for h in handles {
        let left = grace.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, h).await {
            Ok(Ok(s)) => samples.extend(s),
            Ok(Err(_)) | Err(_) => stalled += 1,
        }
    }
    let elapsed = started.elapsed().min(options.duration + options.op_timeout);
    let after = db.retry_stats();
    summarise(
        db.backend(),
        options.agents,
        elapsed,
        samples,
        stalled,
        RetryStats {
            retries: after.retries - before.retries,
            gave_up: after.gave_up - before.gave_up,
        },
    )
}

async fn agent_loop(
    db: &AgentDb,
    f: &Fixture,
    index: usize,
    seed: u64,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
) -> Vec<Sample> {
    let mut rng = Rng(seed);
    let me = f.agents[index % f.agents.len()].clone();
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut my_tasks: Vec<String> = f.task_ids[index % f.task_ids.len()].clone();
    let queries: Vec<Vec<f32>> = (0..4).map(|_| rng.embedding()).collect();
    let mut out = Vec::new();
    let mut n = 0usize;
    while Instant::now() < deadline {
        let mut pick = (rng.next() % u64::from(total)) as u32;
        let op = MIX
            .iter()
            .position(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        let t0 = Instant::now();
        let fut = one_op(
            db,
            f,
            &me,
            MIX[op].0,
            &mut rng,
            &mut my_tasks,
            &queries[n % 4],
        );
        let (error, timed_out) = match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(())) => (None, false),
            Ok(Err(e)) => (Some(e.to_string()), false),
            Err(_) => (
                Some(format!("{} took longer than {:?}", MIX[op].0, timeout)),
                true,
            ),
        };
        out.push(Sample {
            op,
            at_ms: t0.duration_since(started).as_millis() as u64,
            latency_ms: t0.elapsed().as_secs_f64() * 1000.0,
            error,
            timeout: timed_out,
        });
        n += 1;
    }
    out
}

async fn one_op(
    db: &AgentDb,
    f: &Fixture,
    me: &str,
    op: &str,
    rng: &mut Rng,
    my_tasks: &mut Vec<String>,
    query: &[f32],
) -> Result<()> {
    match op {
        "update_agent_status" => {
            db.update_agent_status(
                me,
                &StatusUpdate {
                    current_task: Some(rng.words(3)),
                    ..StatusUpdate::new(rng.pick(&["busy", "idle", "online"]))
                },
            )
            .await?;
        }
        "create_task" => {
            let t = db
                .create_task(&NewTask {
                    priority: Some(rng.pick(&["low", "normal", "High"]).into()),
                    ..NewTask::new(me, rng.words(4))
                })
                .await?;
            my_tasks.push(t.task_id);
        }
        "update_task_status" => {
            if !my_tasks.is_empty() {
                let id = my_tasks[rng.below(my_tasks.len())].clone();
                db.update_task_status(&id, rng.pick(&["in_progress", "done", "blocked"]))
                    .await?;
            }
        }
        "send_message" => {
            let to = &f.agents[rng.below(f.agents.len())];
            db.send_message(&NewMessage {
                message_type: Some("sync".into()),
                ..NewMessage::new(me, to.clone(), rng.words(12))
            })
            .await?;
        }
        "mark_processed" => {
            if let Some(m) = db.get_inbox(me, Page::first(1)).await?.into_iter().next() {
                db.mark_processed(&m.message_id).await?;
            }
        }
        "append_devlog" => {
            db.append_devlog(&NewDevlog {
                agent_id: Some(me.to_owned()),
                title: rng.words(3),
                body: rng.words(40),
                tags: Vec::new(),
            })
            .await?;
        }
        "get_agent_status" => {
            db.get_agent_status(me).await?;
        }
        "get_agent_tasks" => {
            db.get_agent_tasks(me, 20).await?;
        }
        "get_inbox" => {
            db.get_inbox(me, Page::first(20)).await?;
        }
        "get_config" => {
            db.get_config(&f.configs[rng.below(f.configs.len())])
                .await?;
        }
        "latest_analysis" => {
            db.latest_analysis(&f.projects[rng.below(f.projects.len())], None)
                .await?;
        }
        _ => {
            db.search_memory(Some(me), query, 10).await?;
        }
    }
    Ok(())
}

fn summarise(
    backend: BackendKind,
    agents: usize,
    elapsed: Duration,
    samples: Vec<Sample>,
    stalled_agents: usize,
    retries: RetryStats,
) -> LoadReport {
    let total_ops = samples.len() as u64;
    let errors = samples.iter().filter(|s| s.error.is_some()).count() as u64;
    let timeouts = samples.iter().filter(|s| s.timeout).count() as u64;
    let deadlocks = samples
        .iter()
        .filter(|s| s.error.as_deref().is_some_and(|e| e.contains("deadlock")))
        .count() as u64;
    let mut per_operation = Vec::new();
    for (i, (name, _)) in MIX.iter().enumerate() {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.op == i).collect();
        let ok: Vec<f64> = of
            .iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.latency_ms)
            .collect();
        let errs = of.len() as u64 - ok.len() as u64;
        per_operation.push(Latency::from_samples(name, ok, errs));
    }
    let seconds = elapsed.as_secs_f64().ceil().max(1.0) as usize;
    let mut series: Vec<SecondPoint> = (1..=seconds as u64)
        .map(|t_s| SecondPoint {
            t_s,
            ops: 0,
            errors: 0,
        })
        .collect();
    for s in &samples {
        let i = ((s.at_ms / 1000) as usize).min(seconds - 1);
        series[i].ops += 1;
        if s.error.is_some() {
            series[i].errors += 1;
        }
    }
    let mut error_samples: Vec<String> = samples.iter().filter_map(|s| s.error.clone()).collect();
    error_samples.sort();
    error_samples.dedup();
    error_samples.truncate(10);
    let secs = elapsed.as_secs_f64().max(1e-9);
    LoadReport {
        backend,
        agents,
        duration_s: secs,
        total_ops,
        errors,
        error_rate: if total_ops == 0 {
            0.0
        } else {
            errors as f64 / total_ops as f64
        },
        throughput_ops_per_s: total_ops as f64 / secs,
        timeouts,
        deadlocks,
        stalled_agents,
        retries,
        per_operation,
        series,
        error_samples,
    }
}

/// A small deterministic generator (SplitMix64): the same seed gives the same fixture and
/// the same mix on both backends.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn words(&mut self, n: usize) -> String {
        const WORDS: &[&str] = &[
            "sync",
            "repository",
            "contract",
            "status",
            "report",
            "tests",
            "coverage",
            "pipeline",
            "deploy",
            "review",
            "agent",
            "captain",
            "queue",
            "retry",
            "validate",
            "schema",
            "index",
            "latency",
            "handoff",
            "metrics",
        ];
        (0..n.max(1))
            .map(|_| self.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn embedding(&mut self) -> Vec<f32> {
        (0..EMBEDDING_DIMS)
            .map(|_| ((self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency::from_samples("x", (1..=100).map(f64::from).collect(), 2);
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(l.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
        assert_eq!(l.errors, 2);
        let empty = Latency::from_samples("y", Vec::new(), 0);
        assert_eq!((empty.samples, empty.p99_ms), (0, 0.0));
    }

    #[test]
    fn the_series_counts_every_operation_once() {
        let samples = (0..30)
            .map(|i| Sample {
                op: i % MIX.len(),
                at_ms: i as u64 * 100,
                latency_ms: 1.0,
                error: (i == 5).then(|| "boom: deadlock detected".to_owned()),
                timeout: false,
            })
            .collect();
        let r = summarise(
            BackendKind::Sqlite,
            3,
            Duration::from_secs(3),
            samples,
            0,
            RetryStats::default(),
        );
        assert_eq!(r.series.iter().map(|p| p.ops).sum::<u64>(), 30);
        assert_eq!(r.series.len(), 3);
        assert_eq!((r.errors, r.deadlocks), (1, 1));
        assert!((r.error_rate - 1.0 / 30.0).abs() < 1e-12);
        assert_eq!(
            r.per_operation
                .iter()
                .map(|o| o.samples + o.errors)
                .sum::<u64>(),
            30
        );
    }
}
