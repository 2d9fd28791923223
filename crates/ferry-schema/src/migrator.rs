//! Applying, reverting, planning and checking migrations against the ledger table
//! `ferry_schema_migrations`, one migration per transaction, under a lock.
//!
//! Locking: on PostgreSQL a session-level advisory lock taken on a dedicated connection
//! (so the lock holder is never inside the migration's transaction and cannot deadlock
//! with `CREATE INDEX CONCURRENTLY`), polled until `lock_timeout`. On SQLite every
//! migration runs inside `BEGIN IMMEDIATE`, which takes the database's write lock, and
//! re-reads the ledger inside it: a second runner waits (busy timeout) and then finds the
//! migration applied. Either way a migration is never applied twice.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::postgres::{PgConnection, PgDatabaseError, PgErrorPosition};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};

use crate::checksum;
use crate::db::{quote_ident, Database, Dialect};
use crate::error::{Result, SchemaError};
use crate::source::{Migration, MigrationSet};
use crate::split::{split, Statement};

/// The ledger table's name in every database ferry migrates.
pub const LEDGER_TABLE: &str = "ferry_schema_migrations";

const SQLITE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS ferry_schema_migrations (
    version            INTEGER PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL,
    checksum           TEXT NOT NULL,
    checksum_algorithm TEXT NOT NULL,
    applied_at         TEXT NOT NULL,
    execution_ms       INTEGER NOT NULL,
    dirty              INTEGER NOT NULL DEFAULT 0 CHECK (dirty IN (0, 1))
)";

const PG_LEDGER: &str = "CREATE TABLE IF NOT EXISTS ferry_schema_migrations (
    version            bigint PRIMARY KEY,
    name               text NOT NULL,
    checksum           text NOT NULL,
    checksum_algorithm text NOT NULL,
    applied_at         timestamptz NOT NULL DEFAULT now(),
    execution_ms       bigint NOT NULL,
    dirty              boolean NOT NULL DEFAULT false
)";

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedRow {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    pub checksum_algorithm: String,
    pub applied_at: String,
    pub execution_ms: i64,
    pub dirty: bool,
}

/// The state of one migration in one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Applied, and the file still has the checksum recorded.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, but the file changed since.
    Drifted,
    /// A non-transactional migration that failed part-way.
    Dirty,
    /// Applied, but no file for it exists any more.
    Missing,
}

/// One line of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub version: i64,
    pub name: String,
    pub state: State,
    pub applied_at: Option<String>,
    pub execution_ms: Option<i64>,
}

/// The whole of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub database: String,
    pub dialect: Dialect,
    /// Highest applied version (0 when none).
    pub current: i64,
    /// Highest version among the files.
    pub head: i64,
    pub rows: Vec<StatusRow>,
}

impl Status {
    /// Applied up to head, no dirty, drifted or missing row.
    pub fn is_clean_at_head(&self) -> bool {
        self.current == self.head && self.rows.iter().all(|r| r.state == State::Applied)
    }

    pub fn count(&self, state: State) -> usize {
        self.rows.iter().filter(|r| r.state == state).count()
    }
}

/// One migration as a dry run shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub version: i64,
    pub file: String,
    pub direction: Direction,
    pub transactional: bool,
    pub sql: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// One migration that ran.
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    pub version: i64,
    pub file: String,
    pub direction: Direction,
    pub execution_ms: i64,
}

/// Applies and reverts one migration set.
#[derive(Debug, Clone)]
pub struct Migrator {
    set: MigrationSet,
    lock_timeout: Duration,
}

impl Migrator {
    pub fn new(set: MigrationSet) -> Self {
        Self {
            set,
            lock_timeout: Duration::from_secs(60),
        }
    }

    /// How long to wait for another runner's lock before failing (default 60 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    pub fn set(&self) -> &MigrationSet {
        &self.set
    }

    /// Every migration and its state in `db`. Creates nothing.
    pub async fn status(&self, db: &mut Database) -> Result<Status> {
        let applied = read_ledger(db).await?;
        let mut rows = Vec::new();
        for m in self.set.migrations() {
            let row = applied.iter().find(|a| a.version == m.version);
            let state = match row {
                None => State::Pending,
                Some(a) if a.dirty => State::Dirty,
                Some(a) if a.checksum != m.checksum => State::Drifted,
                Some(_) => State::Applied,
            };
            rows.push(StatusRow {
                version: m.version,
                name: m.name.clone(),
                state,
                applied_at: row.map(|a| a.applied_at.clone()),
                execution_ms: row.map(|a| a.execution_ms),
            });
        }
        for a in &applied {
            if self.set.get(a.version).is_none() {
                rows.push(StatusRow {
                    version: a.version,
                    name: a.name.clone(),
                    state: if a.dirty {
                        State::Dirty
                    } else {
                        State::Missing
                    },
                    applied_at: Some(a.applied_at.clone()),
                    execution_ms: Some(a.execution_ms),
                });
            }
        }
        rows.sort_by_key(|r| r.version);
        Ok(Status {
            database: db.describe(),
            dialect: db.dialect(),
            current: applied.iter().map(|a| a.version).max().unwrap_or(0),
            head: self.set.head(),
            rows,
        })
    }

    /// Fails on the first applied migration whose file changed, is gone, or is dirty.
    pub async fn verify(&self, db: &mut Database) -> Result<()> {
        let applied = read_ledger(db).await?;
        self.check_ledger(&applied, &db.describe())
    }

    fn check_ledger(&self, applied: &[AppliedRow], database: &str) -> Result<()> {
        for a in applied {
            let label = self
                .set
                .get(a.version)
                .map_or_else(|| format!("{:04}_{}", a.version, a.name), Migration::label);
            if a.dirty {
                return Err(SchemaError::Dirty {
                    version: a.version,
                    label,
                    at: database.to_owned(),
                });
            }
            let Some(m) = self.set.get(a.version) else {
                return Err(SchemaError::Unknown {
                    version: a.version,
                    name: a.name.clone(),
                    origin: self.set.origin.clone(),
                });
            };
            if a.checksum != m.checksum {
                return Err(SchemaError::Drift {
                    version: a.version,
                    file: m.up_file.clone(),
                    recorded: a.checksum.clone(),
                    current: m.checksum.clone(),
                });
            }
        }
        Ok(())
    }

    /// What `up --to` would run, in order, without running it.
    pub async fn plan_up(&self, db: &mut Database, to: Option<i64>) -> Result<Vec<PlannedStep>> {
        let applied = read_ledger(db).await?;
        self.check_ledger(&applied, &db.describe())?;
        let to = self.target(to)?;
        Ok(self
            .set
            .migrations()
            .iter()
            .filter(|m| m.version <= to && !applied.iter().any(|a| a.version == m.version))
            .map(|m| PlannedStep {
                version: m.version,
                file: m.up_file.clone(),
                direction: Direction::Up,
                transactional: !m.no_transaction(),
                sql: m.up_sql.clone(),
            })
            .collect())
    }

    /// What `down --to` would run, in order, without running it.
    pub async fn plan_down(&self, db: &mut Database, to: i64) -> Result<Vec<PlannedStep>> {
        let applied = read_ledger(db).await?;
        self.check_ledger(&applied, &db.describe())?;
        let mut steps = Vec::new();
        for a in applied.iter().rev().filter(|a| a.version > to) {
            let m = self
                .set
                .get(a.version)
                .ok_or(SchemaError::NoSuchVersion(a.version))?;
            let sql = m.down_sql.clone().ok_or_else(|| SchemaError::NoDown {
                version: m.version,
                label: m.label(),
            })?;
            steps.push(PlannedStep {
                version: m.version,
                file: m.down_file.clone().unwrap_or_default(),
                direction: Direction::Down,
                transactional: !m.down_no_transaction(),
                sql,
            });
        }
        Ok(steps)
    }

    fn target(&self, to: Option<i64>) -> Result<i64> {
        match to {
            None => Ok(self.set.head()),
            Some(0) => Ok(0),
            Some(v) if self.set.get(v).is_some() => Ok(v),
            Some(v) => Err(SchemaError::NoSuchVersion(v)),
        }
    }

    /// Applies every pending migration up to `to` (default: head), each in its own
    /// transaction unless it opts out, under the lock. Refuses to start when an applied
    /// migration drifted, vanished or is dirty.
    pub async fn up(&self, db: &mut Database, to: Option<i64>) -> Result<Vec<Ran>> {
        let to = self.target(to)?;
        let lock = Lock::acquire(db, self.lock_timeout).await?;
        let result = self.up_locked(db, to).await;
        lock.release().await;
        result
    }

    async fn up_locked(&self, db: &mut Database, to: i64) -> Result<Vec<Ran>> {
        ensure_ledger(db).await?;
        let applied = read_ledger(db).await?;
        self.check_ledger(&applied, &db.describe())?;
        let mut ran = Vec::new();
        for m in self.set.migrations().iter().filter(|m| m.version <= to) {
            if applied.iter().any(|a| a.version == m.version) {
                continue;
            }
            if let Some(r) = apply(db, m, Direction::Up).await? {
                tracing::debug!(file = %m.up_file, ms = r.execution_ms, "applied migration");
                ran.push(r);
            }
        }
        Ok(ran)
    }

    /// Reverts applied migrations above `to`, newest first, each with its down file.
    pub async fn down(&self, db: &mut Database, to: i64) -> Result<Vec<Ran>> {
        if to < 0 {
            return Err(SchemaError::NoSuchVersion(to));
        }
        let lock = Lock::acquire(db, self.lock_timeout).await?;
        let result = self.down_locked(db, to).await;
        lock.release().await;
        result
    }

    async fn down_locked(&self, db: &mut Database, to: i64) -> Result<Vec<Ran>> {
        let applied = read_ledger(db).await?;
        self.check_ledger(&applied, &db.describe())?;
        let mut ran = Vec::new();
        for a in applied.iter().rev().filter(|a| a.version > to) {
            let m = self
                .set
                .get(a.version)
                .ok_or(SchemaError::NoSuchVersion(a.version))?;
            if m.down_sql.is_none() {
                return Err(SchemaError::NoDown {
                    version: m.version,
                    label: m.label(),
                });
            }
            if let Some(r) = apply(db, m, Direction::Down).await? {
                tracing::debug!(file = ?m.down_file, ms = r.execution_ms, "reverted migration");
                ran.push(r);
            }
        }
        Ok(ran)
    }

    /// After a person fixed the database by hand: clears the dirty flag of `version` and
    /// records the file's current checksum (which also accepts an edited file). With
    /// `as_reverted`, removes the row instead, for a migration the person undid.
    pub async fn repair(&self, db: &mut Database, version: i64, as_reverted: bool) -> Result<()> {
        let lock = Lock::acquire(db, self.lock_timeout).await?;
        let result = self.repair_locked(db, version, as_reverted).await;
        lock.release().await;
        result
    }

    async fn repair_locked(
        &self,
        db: &mut Database,
        version: i64,
        as_reverted: bool,
    ) -> Result<()> {
        let applied = read_ledger(db).await?;
        if !applied.iter().any(|a| a.version == version) {
            return Err(SchemaError::NotApplied { version });
        }
        let context = format!("repairing version {version} in {}", db.describe());
        if as_reverted {
            delete_row(db, version)
                .await
                .map_err(|e| SchemaError::db(context, e))?;
            return Ok(());
        }
        let m = self
            .set
            .get(version)
            .ok_or(SchemaError::NoSuchVersion(version))?;
        let done = match db {
            Database::Sqlite { conn, .. } => {
                sqlx::query("UPDATE ferry_schema_migrations SET dirty = 0, checksum = ?, checksum_algorithm = ? WHERE version = ?")
                    .bind(&m.checksum)
                    .bind(checksum::ALGORITHM)
                    .bind(version)
                    .execute(conn)
                    .await
                    .map(drop)
            }
            Database::Postgres { conn, .. } => {
                sqlx::query("UPDATE ferry_schema_migrations SET dirty = false, checksum = $1, checksum_algorithm = $2 WHERE version = $3")
                    .bind(&m.checksum)
                    .bind(checksum::ALGORITHM)
                    .bind(version)
                    .execute(conn)
                    .await
                    .map(drop)
            }
        };
        done.map_err(|e| SchemaError::db(context, e))?;
        Ok(())
    }
}

/// The start-up call of an application: migrate to head or fail fast, with the same rules
/// as the command line (lock, per-migration transactions, drift and dirty checks).
pub async fn migrate_to_head(db: &mut Database, set: &MigrationSet) -> Result<Vec<Ran>> {
    Migrator::new(set.clone()).up(db, None).await
}

/// Reads the ledger; a database without one has nothing applied.
pub async fn read_ledger(db: &mut Database) -> Result<Vec<AppliedRow>> {
    let context = format!("reading {LEDGER_TABLE} in {}", db.describe());
    // The two drivers return different row types; one macro converts either.
    macro_rules! to_rows {
        ($rows:expr) => {{
            let mut out = Vec::new();
            for row in $rows {
                let get = |e: sqlx::Error| SchemaError::db(&context, e);
                out.push(AppliedRow {
                    version: row.try_get("version").map_err(get)?,
                    name: row.try_get("name").map_err(get)?,
                    checksum: row.try_get("checksum").map_err(get)?,
                    checksum_algorithm: row.try_get("checksum_algorithm").map_err(get)?,
                    applied_at: row.try_get("applied_at").map_err(get)?,
                    execution_ms: row.try_get("execution_ms").map_err(get)?,
                    dirty: row.try_get("dirty").map_err(get)?,
                });
            }
            out
        }};
    }
    match db {
        Database::Sqlite { conn, .. } => {
            let exists: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?",
            )
            .bind(LEDGER_TABLE)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| SchemaError::db(&context, e))?;
            if exists == 0 {
                return Ok(Vec::new());
            }
            let rows = sqlx::query("SELECT version, name, checksum, checksum_algorithm, applied_at, execution_ms, dirty <> 0 AS dirty FROM ferry_schema_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| SchemaError::db(&context, e))?;
            Ok(to_rows!(rows))
        }
        Database::Postgres { conn, schema, .. } => {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2)",
            )
            .bind(schema.as_str())
            .bind(LEDGER_TABLE)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| SchemaError::db(&context, e))?;
            if !exists {
                return Ok(Vec::new());
            }
            let rows = sqlx::query("SELECT version, name, checksum, checksum_algorithm, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS applied_at, execution_ms, dirty FROM ferry_schema_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| SchemaError::db(&context, e))?;
            Ok(to_rows!(rows))
        }
    }
}

async fn ensure_ledger(db: &mut Database) -> Result<()> {
    let described = db.describe();
    match db {
        Database::Sqlite { conn, .. } => {
            sqlite_write(
                conn,
                &described,
                SQLITE_LEDGER,
                "creating the migration ledger",
            )
            .await
        }
        Database::Postgres { conn, schema, .. } => {
            let sql = format!(
                "CREATE SCHEMA IF NOT EXISTS {}; {PG_LEDGER}",
                quote_ident(schema)
            );
            sqlx::raw_sql(&sql)
                .execute(conn)
                .await
                .map(drop)
                .map_err(|e| SchemaError::db(format!("creating {LEDGER_TABLE} in {described}"), e))
        }
    }
}

async fn delete_row(db: &mut Database, version: i64) -> Result<(), sqlx::Error> {
    match db {
        Database::Sqlite { conn, .. } => {
            sqlx::query("DELETE FROM ferry_schema_migrations WHERE version = ?")
                .bind(version)
                .execute(conn)
                .await
                .map(drop)
        }
        Database::Postgres { conn, .. } => {
            sqlx::query("DELETE FROM ferry_schema_migrations WHERE version = $1")
                .bind(version)
                .execute(conn)
                .await
                .map(drop)
        }
    }
}

/// Runs one migration in one direction and records it. Returns `None` when another runner
/// did it first (seen inside the lock).
async fn apply(db: &mut Database, m: &Migration, direction: Direction) -> Result<Option<Ran>> {
    let (file, sql, transactional) = match direction {
        Direction::Up => (m.up_file.clone(), m.up_sql.as_str(), !m.no_transaction()),
        Direction::Down => (
            m.down_file.clone().unwrap_or_default(),
            m.down_sql.as_deref().unwrap_or_default(),
            !m.down_no_transaction(),
        ),
    };
    let statements = split(sql);
    let started = Instant::now();
    let described = db.describe();
    let context = |what: &str| format!("{what} {file} on {described}");
    match db {
        Database::Sqlite { conn, .. } => {
            if transactional {
                begin_immediate(conn, &described).await?;
                match sqlite_done(conn, m.version, direction).await {
                    Ok(true) => {
                        rollback_sqlite(conn).await;
                        return Ok(None);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        rollback_sqlite(conn).await;
                        return Err(SchemaError::db(context("reading the ledger for"), e));
                    }
                }
                if let Err(e) = run_sqlite(conn, &file, &statements).await {
                    rollback_sqlite(conn).await;
                    return Err(e);
                }
                let ms = elapsed_ms(started);
                if let Err(e) = record_sqlite(conn, m, direction, ms).await {
                    rollback_sqlite(conn).await;
                    return Err(SchemaError::db(context("recording"), e));
                }
                sqlx::raw_sql("COMMIT")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| SchemaError::db(context("committing"), e))?;
                Ok(Some(Ran {
                    version: m.version,
                    file,
                    direction,
                    execution_ms: ms,
                }))
            } else {
                // Mark the row dirty first, in its own transaction, so a failure part-way
                // leaves a trace every later run refuses to go past.
                begin_immediate(conn, &described).await?;
                let done = sqlite_done(conn, m.version, direction).await;
                let mark = match done {
                    Ok(true) => {
                        rollback_sqlite(conn).await;
                        return Ok(None);
                    }
                    Ok(false) => mark_dirty_sqlite(conn, m, direction).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = mark {
                    rollback_sqlite(conn).await;
                    return Err(SchemaError::db(context("marking"), e));
                }
                sqlx::raw_sql("COMMIT")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| SchemaError::db(context("committing"), e))?;
                run_sqlite(conn, &file, &statements).await?;
                let ms = elapsed_ms(started);
                record_sqlite(conn, m, direction, ms)
                    .await
                    .map_err(|e| SchemaError::db(context("recording"), e))?;
                Ok(Some(Ran {
                    version: m.version,
                    file,
                    direction,
                    execution_ms: ms,
                }))
            }
        }
        Database::Postgres { conn, .. } => {
            if transactional {
                let mut tx = conn
                    .begin()
                    .await
                    .map_err(|e| SchemaError::db(context("starting"), e))?;
                if pg_done(&mut tx, m.version, direction)
                    .await
                    .map_err(|e| SchemaError::db(context("reading the ledger for"), e))?
                {
                    return Ok(None);
                }
                run_pg(&mut tx, &file, &statements).await?;
                let ms = elapsed_ms(started);
                record_pg(&mut tx, m, direction, ms)
                    .await
                    .map_err(|e| SchemaError::db(context("recording"), e))?;
                tx.commit()
                    .await
                    .map_err(|e| SchemaError::db(context("committing"), e))?;
                Ok(Some(Ran {
                    version: m.version,
                    file,
                    direction,
                    execution_ms: ms,
                }))
            } else {
                if pg_done(conn, m.version, direction)
                    .await
                    .map_err(|e| SchemaError::db(context("reading the ledger for"), e))?
                {
                    return Ok(None);
                }
                mark_dirty_pg(conn, m, direction)
                    .await
                    .map_err(|e| SchemaError::db(context("marking"), e))?;
                run_pg(conn, &file, &statements).await?;
                let ms = elapsed_ms(started);
                record_pg(conn, m, direction, ms)
                    .await
                    .map_err(|e| SchemaError::db(context("recording"), e))?;
                Ok(Some(Ran {
                    version: m.version,
                    file,
                    direction,
                    execution_ms: ms,
                }))
            }
        }
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// How long `BEGIN IMMEDIATE` waits quietly before saying that it waits.
const QUIET_WAIT: Duration = Duration::from_secs(1);

/// Takes SQLite's write lock (`BEGIN IMMEDIATE`), saying so when it has to wait.
async fn begin_immediate(conn: &mut SqliteConnection, described: &str) -> Result<()> {
    sqlite_write(
        conn,
        described,
        "BEGIN IMMEDIATE",
        "locking it for a migration",
    )
    .await
}

/// Runs a statement that needs SQLite's write lock. When another connection holds the
/// lock, says so (and on which file) after a second, then waits out the rest of the busy
/// timeout; a lock held past it is an error naming the file.
async fn sqlite_write(
    conn: &mut SqliteConnection,
    described: &str,
    sql: &str,
    doing: &str,
) -> Result<()> {
    let busy = |e: &sqlx::Error| {
        e.as_database_error()
            .and_then(|d| d.code())
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 5)
    };
    let set_timeout = |d: Duration| format!("PRAGMA busy_timeout = {}", d.as_millis());
    let fail = |e| SchemaError::db(format!("{doing} ({described})"), e);
    sqlx::raw_sql(&set_timeout(QUIET_WAIT))
        .execute(&mut *conn)
        .await
        .map_err(fail)?;
    let result = match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Err(e) if busy(&e) => {
            let rest = crate::db::SQLITE_BUSY_TIMEOUT.saturating_sub(QUIET_WAIT);
            tracing::warn!(
                "{described} is locked by another connection (the application, or another ferry run); waiting up to {} s for it",
                rest.as_secs()
            );
            sqlx::raw_sql(&set_timeout(rest))
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            match sqlx::raw_sql(sql).execute(&mut *conn).await {
                Err(e) if busy(&e) => Err(SchemaError::SqliteLocked {
                    target: described.to_owned(),
                    seconds: crate::db::SQLITE_BUSY_TIMEOUT.as_secs(),
                }),
                Err(e) => Err(fail(e)),
                Ok(_) => {
                    tracing::info!("the lock on {described} was released; going on");
                    Ok(())
                }
            }
        }
        Err(e) => Err(fail(e)),
        Ok(_) => Ok(()),
    };
    let restore = sqlx::raw_sql(&set_timeout(crate::db::SQLITE_BUSY_TIMEOUT))
        .execute(&mut *conn)
        .await;
    match (result, restore) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => {
            if sql == "BEGIN IMMEDIATE" {
                rollback_sqlite(conn).await;
            }
            Err(fail(e))
        }
        (Ok(()), Ok(_)) => Ok(()),
    }
}

async fn rollback_sqlite(conn: &mut SqliteConnection) {
    let _ = sqlx::raw_sql("ROLLBACK").execute(conn).await;
}

/// Whether the step is already done: for up, the row exists; for down, it is gone.
async fn sqlite_done(
    conn: &mut SqliteConnection,
    version: i64,
    direction: Direction,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ferry_schema_migrations WHERE version = ? AND dirty = 0",
    )
    .bind(version)
    .fetch_one(conn)
    .await?;
    Ok(match direction {
        Direction::Up => n > 0,
        Direction::Down => n == 0,
    })
}

async fn pg_done(
    conn: &mut PgConnection,
    version: i64,
    direction: Direction,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ferry_schema_migrations WHERE version = $1 AND NOT dirty",
    )
    .bind(version)
    .fetch_one(conn)
    .await?;
    Ok(match direction {
        Direction::Up => n > 0,
        Direction::Down => n == 0,
    })
}

async fn run_sqlite(
    conn: &mut SqliteConnection,
    file: &str,
    statements: &[Statement<'_>],
) -> Result<()> {
    for stmt in statements {
        sqlx::raw_sql(stmt.sql)
            .execute(&mut *conn)
            .await
            .map_err(|e| SchemaError::Statement {
                file: file.to_owned(),
                line: stmt.line,
                message: e
                    .as_database_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
            })?;
    }
    Ok(())
}

async fn run_pg(conn: &mut PgConnection, file: &str, statements: &[Statement<'_>]) -> Result<()> {
    for stmt in statements {
        if let Err(e) = sqlx::raw_sql(stmt.sql).execute(&mut *conn).await {
            let (line, message) = match e
                .as_database_error()
                .and_then(|d| d.try_downcast_ref::<PgDatabaseError>())
            {
                Some(pg) => {
                    let line = match pg.position() {
                        Some(PgErrorPosition::Original(pos)) => stmt.line_of_position(pos),
                        _ => stmt.line,
                    };
                    (line, pg.message().to_owned())
                }
                None => (stmt.line, e.to_string()),
            };
            return Err(SchemaError::Statement {
                file: file.to_owned(),
                line,
                message: ferry_core::redact::redact(&message).into_owned(),
            });
        }
    }
    Ok(())
}

async fn mark_dirty_sqlite(
    conn: &mut SqliteConnection,
    m: &Migration,
    direction: Direction,
) -> Result<(), sqlx::Error> {
    match direction {
        Direction::Up => sqlx::query("INSERT INTO ferry_schema_migrations (version, name, checksum, checksum_algorithm, applied_at, execution_ms, dirty) VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 0, 1)")
            .bind(m.version)
            .bind(&m.name)
            .bind(&m.checksum)
            .bind(checksum::ALGORITHM)
            .execute(conn)
            .await
            .map(drop),
        Direction::Down => sqlx::query("UPDATE ferry_schema_migrations SET dirty = 1 WHERE version = ?")
            .bind(m.version)
            .execute(conn)
            .await
            .map(drop),
    }
}

async fn mark_dirty_pg(
    conn: &mut PgConnection,
    m: &Migration,
    direction: Direction,
) -> Result<(), sqlx::Error> {
    match direction {
        Direction::Up => sqlx::query("INSERT INTO ferry_schema_migrations (version, name, checksum, checksum_algorithm, execution_ms, dirty) VALUES ($1, $2, $3, $4, 0, true)")
            .bind(m.version)
            .bind(&m.name)
            .bind(&m.checksum)
            .bind(checksum::ALGORITHM)
            .execute(conn)
            .await
            .map(drop),
        Direction::Down => sqlx::query("UPDATE ferry_schema_migrations SET dirty = true WHERE version = $1")
            .bind(m.version)
            .execute(conn)
            .await
            .map(drop),
    }
}

async fn record_sqlite(
    conn: &mut SqliteConnection,
    m: &Migration,
    direction: Direction,
    ms: i64,
) -> Result<(), sqlx::Error> {
    match direction {
        Direction::Up => sqlx::query("INSERT INTO ferry_schema_migrations (version, name, checksum, checksum_algorithm, applied_at, execution_ms, dirty) VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?, 0) ON CONFLICT (version) DO UPDATE SET dirty = 0, execution_ms = excluded.execution_ms, applied_at = excluded.applied_at")
            .bind(m.version)
            .bind(&m.name)
            .bind(&m.checksum)
            .bind(checksum::ALGORITHM)
            .bind(ms)
            .execute(conn)
            .await
            .map(drop),
        Direction::Down => sqlx::query("DELETE FROM ferry_schema_migrations WHERE version = ?")
            .bind(m.version)
            .execute(conn)
            .await
            .map(drop),
    }
}

async fn record_pg(
    conn: &mut PgConnection,
    m: &Migration,
    direction: Direction,
    ms: i64,
) -> Result<(), sqlx::Error> {
    match direction {
        Direction::Up => sqlx::query("INSERT INTO ferry_schema_migrations (version, name, checksum, checksum_algorithm, execution_ms, dirty) VALUES ($1, $2, $3, $4, $5, false) ON CONFLICT (version) DO UPDATE SET dirty = false, execution_ms = excluded.execution_ms, applied_at = now()")
            .bind(m.version)
            .bind(&m.name)
            .bind(&m.checksum)
            .bind(checksum::ALGORITHM)
            .bind(ms)
            .execute(conn)
            .await
            .map(drop),
        Direction::Down => sqlx::query("DELETE FROM ferry_schema_migrations WHERE version = $1")
            .bind(m.version)
            .execute(conn)
            .await
            .map(drop),
    }
}

/// The lock held while migrating.
enum Lock {
    /// SQLite locks per migration with `BEGIN IMMEDIATE`.
    Sqlite,
    Postgres {
        conn: PgConnection,
        key: i64,
    },
}

impl Lock {
    async fn acquire(db: &mut Database, timeout: Duration) -> Result<Self> {
        match db {
            Database::Sqlite { .. } => Ok(Self::Sqlite),
            Database::Postgres {
                options,
                schema,
                shown,
                ..
            } => {
                let mut conn = Database::pg_connect(options, schema, shown).await?;
                let key = lock_key(schema);
                let deadline = Instant::now() + timeout;
                loop {
                    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                        .bind(key)
                        .fetch_one(&mut conn)
                        .await
                        .map_err(|e| {
                            SchemaError::db(format!("taking the migration lock on {shown}"), e)
                        })?;
                    if got {
                        return Ok(Self::Postgres { conn, key });
                    }
                    if Instant::now() >= deadline {
                        let _ = conn.close().await;
                        return Err(SchemaError::LockTimeout {
                            target: format!("schema \"{schema}\" of {shown}"),
                            seconds: timeout.as_secs(),
                        });
                    }
                    tracing::info!(
                        "waiting for another migration run to finish on schema \"{schema}\""
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn release(self) {
        if let Self::Postgres { mut conn, key } = self {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

/// A stable advisory-lock key per schema, so runs on different schemas do not wait for
/// each other.
fn lock_key(schema: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("ferry-schema:{schema}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}
