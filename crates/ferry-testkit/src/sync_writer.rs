//! A writer that behaves like the old application during phase 4: a steady mix of writes
//! on ferry's agent-store schema (`migrations/sqlite/0001`) at a chosen rate, including the
//! shapes that break naive change capture:
//!
//! - inserts, updates and deletes (a task delete cascades to its dependencies and sets its
//!   subtasks' parent to NULL, with `foreign_keys` on as the application runs);
//! - `INSERT OR REPLACE` of an existing key, and UPSERT (`ON CONFLICT … DO UPDATE`);
//! - `INSERT OR REPLACE` that hits a UNIQUE constraint other than the key
//!   (`performance_metrics (agent_id, metric, recorded_at)`), which silently deletes a
//!   *different* row;
//! - an UPDATE that changes a primary key (`messages.message_id`);
//! - multi-row transactions; composite keys (`task_dependencies`).
//!
//! Every value written converts exactly into the managed PostgreSQL schema, so a correct sync
//! ends with both sides equal. Deterministic for a seed, apart from timing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use crate::sqlite_gen::Rng;

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Row writes per second (statements that change rows); 0: as fast as possible.
    pub rate: u64,
    pub seed: u64,
    /// Stop after this many writes.
    pub max_writes: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Prefix of the keys this writer creates (two writers need different ones).
    pub prefix: String,
    /// Change only rows this writer created: imported tasks, messages and agent statuses
    /// are left as their files have them (phase 5 compares every imported file with its
    /// rows, and an application that rewrites imported rows makes those files differ).
    pub spare_imported: bool,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            rate: 1_000,
            seed: 7,
            max_writes: None,
            duration: None,
            prefix: "w".into(),
            spare_imported: false,
        }
    }
}

/// What the writer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub writes: u64,
    pub transactions: u64,
    pub replaces: u64,
    pub upserts: u64,
    pub deletes: u64,
    pub key_changes: u64,
}

/// Sets the SQLite file to WAL (what a concurrent application uses) and returns.
pub fn use_wal(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    Ok(())
}

/// Makes every timestamp of [`crate::sqlite_gen::agent_store`] one PostgreSQL can hold (the
/// generator plants a nonzero seventh fraction digit in some), so sync tests compare equal.
pub fn normalise_agent_store(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    for (t, c) in [
        ("performance_metrics", "recorded_at"),
        ("hook_events", "occurred_at"),
    ] {
        conn.execute_batch(&format!(
            "UPDATE {t} SET {c} = substr({c}, 1, 26) || '0' || substr({c}, 28)
             WHERE length({c}) = 33 AND substr({c}, 20, 1) = '.' AND substr({c}, 27, 1) <> '0'"
        ))?;
    }
    Ok(())
}

/// Writes until `stop` is set (or the configured limit), at the configured rate.
pub fn run(path: &Path, cfg: &WriterConfig, stop: &AtomicBool) -> rusqlite::Result<WriterStats> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // What an application on WAL usually sets: commits are not fsynced one by one.
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL")?;
    let mut rng = Rng::new(cfg.seed);
    let agents: Vec<String> = ids(&conn, "SELECT agent_id FROM agents ORDER BY agent_id")?;
    if agents.is_empty() {
        return Err(rusqlite::Error::InvalidQuery);
    }
    let (mut tasks, mut messages): (Vec<String>, Vec<String>) = if cfg.spare_imported {
        (Vec::new(), Vec::new())
    } else {
        (
            ids(&conn, "SELECT task_id FROM tasks ORDER BY task_id")?,
            ids(&conn, "SELECT message_id FROM messages ORDER BY message_id")?,
        )
    };
    let mut stats = WriterStats::default();
    let started = Instant::now();
    let mut n: u64 = 0;
    let p = &cfg.prefix;
    while !stop.load(Ordering::Relaxed) {
        if cfg.max_writes.is_some_and(|m| stats.writes >= m)
            || cfg.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        if cfg.rate > 0 {
            let due = Duration::from_secs_f64(stats.writes as f64 / cfg.rate as f64);
            let el = started.elapsed();
            if due > el {
                std::thread::sleep((due - el).min(Duration::from_millis(50)));
                continue;
            }
        }
        n += 1;
        let agent = rng.pick(&agents).clone();
        let ts = stamp(&mut rng);
        let op = rng.below(100);
        // IMMEDIATE, as a WAL application with other writers should: a deferred
        // transaction that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT) when
        // another connection committed in between, whatever the busy timeout.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut writes = 0;
        match op {
            // Insert a task (sometimes a subtask).
            0..=19 => {
                let id = format!("{p}-task-{n}");
                let parent = if !tasks.is_empty() && rng.chance(0.3) {
                    Some(rng.pick(&tasks).clone())
                } else {
                    None
                };
                tx.execute(
                    "INSERT INTO tasks (task_id, agent_id, parent_task_id, title, status, priority, created_at, source_path, doc, doc_sha256, doc_size)
                     VALUES (?1, ?2, ?3, ?4, 'pending', 'normal', ?5, ?6, ?7, ?8, ?9)",
                    params![id, agent, parent, format!("task {n} ✓"), ts, format!("tasks/{id}.json"),
                            format!("{{\"n\": {n}, \"by\": \"{p}\"}}"), rng.hex(64), 20 + n as i64],
                )?;
                tasks.push(id);
                writes += 1;
            }
            // Update a task.
            20..=39 if !tasks.is_empty() => {
                let id = rng.pick(&tasks).clone();
                writes += tx.execute(
                    "UPDATE tasks SET title = ?2, status = ?3, updated_at = ?4, doc = ?5 WHERE task_id = ?1",
                    params![id, format!("edited {n} «ü»"), *rng.pick(&["in_progress", "blocked", "completed"]), ts,
                            format!("{{\"edit\": {n}, \"x\": [1, 2.5, null]}}")],
                )? as u64;
            }
            // Delete a task: its dependencies cascade, its subtasks lose their parent.
            40..=47 if tasks.len() > 10 => {
                let i = rng.below(tasks.len() as u64) as usize;
                let id = tasks.swap_remove(i);
                writes += tx.execute("DELETE FROM tasks WHERE task_id = ?1", [id])? as u64;
                stats.deletes += 1;
            }
            // INSERT OR REPLACE of an existing task: no DELETE trigger fires.
            48..=55 if !tasks.is_empty() => {
                let id = rng.pick(&tasks).clone();
                tx.execute(
                    "INSERT OR REPLACE INTO tasks (task_id, agent_id, title, status, priority, created_at, source_path, source_record, doc_sha256, doc_size)
                     VALUES (?1, ?2, ?3, 'other', 'high', ?4, ?5, 1, ?6, 1)",
                    params![id, agent, format!("replaced {n}"), ts, format!("tasks/{id}.json"), rng.hex(64)],
                )?;
                writes += 1;
                stats.replaces += 1;
            }
            // UPSERT of an agent's status.
            56..=67 if !cfg.spare_imported => {
                tx.execute(
                    "INSERT INTO agent_status (agent_id, status, current_task, last_update_at, source_path, doc, doc_sha256, doc_size)
                     VALUES (?1, ?2, ?3, ?4, ?5, '{}', ?6, 2)
                     ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status, current_task = excluded.current_task,
                       last_update_at = excluded.last_update_at",
                    params![agent, *rng.pick(&["online", "busy", "idle"]), format!("t{n}"), ts,
                            format!("agent_workspaces/{agent}/status.json"), rng.hex(64)],
                )?;
                writes += 1;
                stats.upserts += 1;
            }
            // A multi-row transaction: messages in, one out, the agent touched.
            68..=79 => {
                for k in 0..3 {
                    let id = format!("{p}-msg-{n}-{k}");
                    tx.execute(
                        "INSERT INTO messages (message_id, mailbox_agent_id, folder, from_agent, to_agent, subject, body, sent_at, source_path, doc, doc_sha256, doc_size)
                         VALUES (?1, ?2, 'inbox', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![id, agent, rng.pick(&agents), format!("re: {n}"), "body\nwith lines", ts,
                                format!("inbox/{id}.json"), format!("{{\"k\": {k}}}"), rng.hex(64), 9],
                    )?;
                    messages.push(id);
                    writes += 1;
                }
                writes += tx.execute(
                    "UPDATE agents SET display_name = ?2, updated_at = ?3 WHERE agent_id = ?1",
                    params![agent, format!("agent {n}"), ts],
                )? as u64;
                if messages.len() > 20 {
                    let i = rng.below(messages.len() as u64) as usize;
                    let id = messages.swap_remove(i);
                    writes +=
                        tx.execute("DELETE FROM messages WHERE message_id = ?1", [id])? as u64;
                    stats.deletes += 1;
                }
            }
            // INSERT OR REPLACE hitting UNIQUE (agent_id, metric, recorded_at): the row
            // holding that triple under another metric_id is deleted by SQLite, silently.
            80..=87 => {
                let slot = rng.below(40);
                tx.execute(
                    "INSERT OR REPLACE INTO performance_metrics (metric_id, agent_id, metric, value, unit, recorded_at)
                     VALUES (?1, ?2, 'latency', ?3, 'ms', ?4)",
                    params![1_000_000_000 + n as i64 + cfg.seed as i64 * 10_000_000, agents[slot as usize % agents.len()],
                            rng.unit() * 100.0, format!("2025-06-01T00:00:{:02}.000000Z", slot)],
                )?;
                writes += 1;
                stats.replaces += 1;
            }
            // An UPDATE that changes the primary key.
            88..=93 if !messages.is_empty() => {
                let i = rng.below(messages.len() as u64) as usize;
                let new = format!("{p}-moved-{n}");
                let changed = tx.execute(
                    "UPDATE messages SET message_id = ?2, folder = 'processed' WHERE message_id = ?1",
                    params![messages[i], new],
                )?;
                if changed > 0 {
                    messages[i] = new;
                    stats.key_changes += 1;
                }
                writes += changed as u64;
            }
            // A composite key: dependencies come and go.
            _ if tasks.len() > 2 => {
                let a = rng.pick(&tasks).clone();
                let b = rng.pick(&tasks).clone();
                if a != b {
                    if rng.chance(0.6) {
                        writes += tx.execute(
                            "INSERT OR IGNORE INTO task_dependencies (task_id, depends_on_task_id) VALUES (?1, ?2)",
                            params![a, b],
                        )? as u64;
                    } else {
                        let one: Option<(String, String)> = tx
                            .query_row(
                                "SELECT task_id, depends_on_task_id FROM task_dependencies WHERE task_id >= ?1 ORDER BY task_id LIMIT 1",
                                [a],
                                |r| Ok((r.get(0)?, r.get(1)?)),
                            )
                            .optional()?;
                        if let Some((x, y)) = one {
                            writes += tx.execute(
                                "DELETE FROM task_dependencies WHERE task_id = ?1 AND depends_on_task_id = ?2",
                                params![x, y],
                            )? as u64;
                            stats.deletes += 1;
                        }
                    }
                }
            }
            _ => {}
        }
        tx.commit()?;
        stats.transactions += 1;
        // A statement that changed nothing still counts toward the rate, or a writer that
        // finds nothing to change would spin.
        stats.writes += writes.max(1);
    }
    Ok(stats)
}

fn ids(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// An ISO-8601 UTC timestamp with microseconds, as the application writes them.
fn stamp(rng: &mut Rng) -> String {
    let secs = 1_750_000_000 + rng.below(10_000_000) as i64;
    let t = chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .naive_utc();
    format!(
        "{}.{:06}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        rng.below(1_000_000)
    )
}
