//! Running post-data steps: each in its own transaction together with its row in
//! `ferry_transfer_steps`, retried when the connection is lost, recorded as failed (with
//! PostgreSQL's reason) when PostgreSQL refuses it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;

use crate::bookkeeping::{self, record_step};
use crate::ddl::{self, Step};
use crate::error::{clean, Result, TransferError};
use crate::pg::{self, classify, describe, Connector, ErrorClass};

/// Runs the steps not yet recorded, stage by stage; steps of a stage in parallel (views in
/// rounds, so a view that needs another is retried once that one exists).
pub(crate) async fn run_steps(
    pg: &Connector,
    control: &mut PgConnection,
    steps: Vec<Step>,
    workers: usize,
    pause: Option<Duration>,
) -> Result<()> {
    let steps = ddl::schedule(steps);
    let recorded = bookkeeping::steps(control, &pg.schema)
        .await
        .map_err(|e| pg.err("reading the finished steps", &e))?;
    let done: HashSet<String> = recorded.iter().map(|s| s.step.clone()).collect();
    let mut stages: Vec<u8> = steps.iter().map(|s| s.stage).collect();
    stages.sort_unstable();
    stages.dedup();
    for stage in stages {
        let todo: Vec<Step> = steps
            .iter()
            .filter(|s| s.stage == stage && !done.contains(&s.id))
            .cloned()
            .collect();
        if todo.is_empty() {
            continue;
        }
        if stage >= ddl::STAGE_VIEWS {
            let mut left = todo;
            loop {
                let mut next = Vec::new();
                let before = left.len();
                for s in left {
                    if !run_step(pg, control, &s, false).await? {
                        next.push(s);
                    }
                    if let Some(p) = pause {
                        tokio::time::sleep(p).await;
                    }
                }
                if next.is_empty() || next.len() == before {
                    for s in &next {
                        run_step(pg, control, s, true).await?;
                    }
                    break;
                }
                left = next;
            }
            continue;
        }
        let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
            todo,
        )));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let queue = queue.clone();
            let pg = pg.clone();
            set.spawn(async move {
                let mut conn = pg.connect("building keys and indexes").await?;
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some(step) = next else { break };
                    if let Err(e) = run_step(&pg, &mut conn, &step, true).await {
                        Connector::close(conn).await;
                        return Err(e);
                    }
                    if let Some(p) = pause {
                        tokio::time::sleep(p).await;
                    }
                }
                Connector::close(conn).await;
                Ok(())
            });
        }
        while let Some(joined) = set.join_next().await {
            joined.unwrap_or_else(|e| {
                Err(TransferError::Inconsistent {
                    table: String::new(),
                    message: format!("a step worker stopped: {e}"),
                })
            })?;
        }
    }
    Ok(())
}

/// Runs one step in a transaction with its record. Returns whether it succeeded; a failure
/// is recorded only when `record_failure` (views are retried before that).
pub(crate) fn run_step<'a>(
    pg: &'a Connector,
    conn: &'a mut PgConnection,
    step: &'a Step,
    record_failure: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send + 'a>> {
    Box::pin(run_step_body(pg, conn, step, record_failure))
}

async fn run_step_body(
    pg: &Connector,
    conn: &mut PgConnection,
    step: &Step,
    record_failure: bool,
) -> Result<bool> {
    if let Some(problem) = &step.problem {
        if record_failure {
            record_step(conn, &pg.schema, &step.row("failed", problem))
                .await
                .map_err(|e| pg.err("recording a step", &e))?;
        }
        return Ok(false);
    }
    let mut attempt = 1;
    let started = Instant::now();
    loop {
        let res = run_statements(conn, &pg.schema, step).await;
        let Err(e) = res else { return Ok(true) };
        if classify(&e) == ErrorClass::Connection {
            if attempt >= pg.retry.attempts {
                return Err(TransferError::Unreachable {
                    url: pg.url.to_string(),
                    context: format!("building {}", step.what),
                    attempts: attempt,
                    seconds: started.elapsed().as_secs_f64(),
                    message: describe(&e),
                });
            }
            attempt += 1;
            tokio::time::sleep(pg.retry.backoff(attempt)).await;
            *conn = pg.connect("building keys and indexes").await?;
            continue;
        }
        let _ = pg::exec(&mut *conn, "ROLLBACK").await;
        if record_failure {
            let outcome = if step.validation {
                "not_valid"
            } else {
                "failed"
            };
            let reason = clean(describe(&e));
            tracing::warn!("{}: {reason}", step.what);
            record_step(conn, &pg.schema, &step.row(outcome, &reason))
                .await
                .map_err(|e| pg.err("recording a step", &e))?;
        }
        return Ok(false);
    }
}

async fn run_statements(
    conn: &mut PgConnection,
    schema: &str,
    step: &Step,
) -> Result<(), sqlx::Error> {
    pg::exec(&mut *conn, "BEGIN").await?;
    for sql in &step.sql {
        pg::exec(&mut *conn, sql).await?;
    }
    record_step(conn, schema, &step.row("ok", &step.what)).await?;
    pg::exec(&mut *conn, "COMMIT").await?;
    Ok(())
}
