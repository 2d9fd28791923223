//! The load and latency harness on both backends: the fixture goes in through the API, every
//! typical read is timed, and ten simulated agents work at once without an error, a
//! timeout, a deadlock or a stalled agent; every operation is counted once in the series.

mod common;

use std::time::Duration;

use ferry_agentdb::harness::{
    measure_reads, run_load, seed, FixtureSpec, LoadOptions, MIX, TYPICAL_READS,
};
use ferry_agentdb::AgentDb;

async fn check(db: &AgentDb) {
    let spec = FixtureSpec {
        agents: 10,
        tasks_per_agent: 3,
        messages_per_agent: 3,
        memories_per_agent: 3,
        devlogs_per_agent: 1,
        analyses: 3,
        configs: 2,
        seed: 1,
    };
    let fixture = seed(db, &spec).await.unwrap();
    assert_eq!(fixture.agents.len(), 10);
    assert_eq!(db.list_agents().await.unwrap().len(), 10);

    let reads = measure_reads(db, &fixture, 5).await.unwrap();
    let names: Vec<&str> = reads.queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, TYPICAL_READS);
    for q in &reads.queries {
        assert_eq!(q.samples, 5, "{}", q.name);
        assert!(q.p50_ms <= q.p95_ms && q.p95_ms <= q.p99_ms && q.p99_ms <= q.max_ms);
        assert_eq!(q.histogram.iter().map(|b| b.count).sum::<u64>(), 5);
    }

    let load = run_load(
        db,
        &fixture,
        &LoadOptions {
            agents: 10,
            duration: Duration::from_secs(2),
            ..LoadOptions::default()
        },
    )
    .await;
    assert!(load.total_ops > 0);
    assert_eq!(load.errors, 0, "{:?}", load.error_samples);
    assert_eq!(
        (load.timeouts, load.deadlocks, load.stalled_agents),
        (0, 0, 0)
    );
    assert_eq!(
        load.series.iter().map(|p| p.ops).sum::<u64>(),
        load.total_ops
    );
    assert_eq!(load.per_operation.len(), MIX.len());
    assert_eq!(
        load.per_operation
            .iter()
            .map(|o| o.samples + o.errors)
            .sum::<u64>(),
        load.total_ops
    );
    let json = serde_json::to_value(&load).unwrap();
    assert!(json["series"].as_array().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn the_harness_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(dir.path(), "harness.sqlite3").await;
    let db = common::open(&url, None).await;
    check(&db).await;
    db.close().await;
}

#[tokio::test]
async fn the_harness_on_postgres() {
    let db = ferry_testkit::pg::ScratchDb::new("agentdb_harness").await;
    common::migrate(&db.url, Some("public"), ferry_migrations::POSTGRES).await;
    let api = common::open(&db.url, None).await;
    check(&api).await;
    api.close().await;
}
