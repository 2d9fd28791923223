//! The bulk load: the first import into an empty ledger and empty target tables, written as
//! one transaction with the CHECK constraints verified once at its end instead of row by row.
//!
//! SQLite rebuilds the list of an `IN (...)` CHECK (a temporary b-tree) for every row it
//! checks, which was half of its time in an import. During a bulk load CHECK constraints are
//! not evaluated per row (`PRAGMA ignore_check_constraints`); before the commit, every row of
//! every table the load wrote is checked against the same CHECK expressions, read from the
//! table's `CREATE TABLE` statement, by one query per table that builds each list once.
//! NOT NULL, UNIQUE and foreign keys are enforced as always.
//!
//! A row that violates a CHECK (or any constraint the database refuses during the load)
//! makes the run roll the whole transaction back and import again the ordinary way, where
//! the database refuses the offending file's rows and only that file is quarantined. A crash
//! at any point leaves the database as it was before the run: the load is one transaction.
//! Nothing of it outlives the run: the pragma belongs to the import's own connection and is
//! switched off again before the run record is written.
//!
//! Dropping the target tables' secondary indexes for the load and building them again at the
//! end was measured too: at 50,000 files rebuilding them cost as much as maintaining them, so
//! the schema is left alone.

use std::collections::BTreeMap;

use rusqlite::Connection;

use crate::error::ImportError;
use crate::plan::{quote, Plan, LEDGER_TABLE};
use crate::schema::TableInfo;

#[derive(Debug)]
pub(crate) struct BulkLoad {
    /// Per table with CHECK constraints: the query that counts the rows violating one.
    checks: Vec<(String, String)>,
    /// CHECK constraints are verified at the end instead of row by row.
    checks_deferred: bool,
}

impl BulkLoad {
    /// A run is a bulk load when nothing was imported before: the ledger is empty and so is
    /// every table the profile writes.
    pub fn eligible(
        conn: &Connection,
        plan: &Plan,
        ledger_rows: usize,
    ) -> Result<bool, ImportError> {
        if ledger_rows > 0 {
            return Ok(false);
        }
        for t in tables(plan) {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", quote(t));
            let any: bool = conn
                .query_row(&sql, [], |r| r.get(0))
                .map_err(ImportError::db(format!("looking for rows in {t}")))?;
            if any {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Starts the load inside the open transaction.
    pub fn begin(
        conn: &Connection,
        plan: &Plan,
        schema: &BTreeMap<String, TableInfo>,
    ) -> Result<Self, ImportError> {
        let mut checks = Vec::new();
        let mut checks_deferred = true;
        for t in tables(plan) {
            let Some(info) = schema.get(t).filter(|i| !i.checks.is_empty()) else {
                continue;
            };
            let sql = violations_sql(info);
            // A CHECK read wrongly from the statement must not go unchecked: then every row
            // is checked as it is written.
            if let Err(e) = conn.prepare(&sql) {
                tracing::debug!(table = t, error = %e, "CHECK constraints stay per row");
                checks_deferred = false;
            }
            checks.push((t.to_owned(), sql));
        }
        if checks_deferred {
            set_ignore_checks(conn, true)?;
        }
        tracing::debug!(checks_deferred, "bulk load started");
        Ok(Self {
            checks,
            checks_deferred,
        })
    }

    /// Ends the load inside the transaction: CHECK constraints are enforced again and every
    /// row is checked. `Some(message)` names a violation; the caller then rolls back.
    pub fn finish(&self, conn: &Connection) -> Result<Option<String>, ImportError> {
        set_ignore_checks(conn, false)?;
        if !self.checks_deferred {
            return Ok(None);
        }
        let _timing = Elapsed(std::time::Instant::now(), "rows checked");
        for (table, sql) in &self.checks {
            let n: i64 = conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(ImportError::db(format!("checking the rows of {table}")))?;
            if n > 0 {
                return Ok(Some(format!(
                    "{n} row(s) of table {table} violate a CHECK constraint"
                )));
            }
        }
        Ok(None)
    }

    /// After the load's transaction was rolled back: CHECK constraints apply to every row
    /// again.
    pub fn abandon(&self, conn: &Connection) -> Result<(), ImportError> {
        set_ignore_checks(conn, false)
    }
}

/// The tables a load writes: the profile's and the ledger.
fn tables(plan: &Plan) -> impl Iterator<Item = &str> {
    plan.tables
        .iter()
        .map(|t| t.name.as_str())
        .chain(std::iter::once(LEDGER_TABLE))
}

/// Counts the rows of which some CHECK expression is false. A CHECK holds when its
/// expression is true or NULL, so the conjunction of all of them, NULL taken as true, is
/// false exactly when one of them fails.
fn violations_sql(info: &TableInfo) -> String {
    let all = info
        .checks
        .iter()
        .map(|c| format!("({c})"))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "SELECT count(*) FROM {} WHERE NOT coalesce({all}, 1)",
        quote(&info.name)
    )
}

/// Logs how long a step took when it ends, however it ends.
struct Elapsed(std::time::Instant, &'static str);

impl Drop for Elapsed {
    fn drop(&mut self) {
        tracing::debug!(seconds = self.0.elapsed().as_secs_f64(), "{}", self.1);
    }
}

fn set_ignore_checks(conn: &Connection, on: bool) -> Result<(), ImportError> {
    let value = if on { "ON" } else { "OFF" };
    conn.execute_batch(&format!("PRAGMA ignore_check_constraints = {value}"))
        .map_err(ImportError::db(
            "switching CHECK constraints for the bulk load",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    fn ferry_db(dir: &std::path::Path) -> Connection {
        let conn = Connection::open(dir.join("ferry.sqlite3")).unwrap();
        let mut ups: Vec<&(&str, &str)> = ferry_migrations::SQLITE
            .iter()
            .filter(|(n, _)| n.ends_with(".up.sql"))
            .collect();
        ups.sort_by_key(|(n, _)| *n);
        for (_, sql) in ups {
            conn.execute_batch(sql).unwrap();
        }
        conn
    }

    fn ignoring(conn: &Connection) -> bool {
        conn.query_row("PRAGMA ignore_check_constraints", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn only_a_first_import_into_empty_tables_is_a_bulk_load() {
        let dir = tempfile::tempdir().unwrap();
        let conn = ferry_db(dir.path());
        let schema = crate::schema::load_all(&conn).unwrap();
        let plan = Plan::build(&Profile::builtin(), &schema).unwrap();
        assert!(BulkLoad::eligible(&conn, &plan, 0).unwrap());
        assert!(!BulkLoad::eligible(&conn, &plan, 1).unwrap());
        conn.execute_batch("INSERT INTO agents (agent_id) VALUES ('Agent-1')")
            .unwrap();
        assert!(!BulkLoad::eligible(&conn, &plan, 0).unwrap());
    }

    #[test]
    fn checks_skipped_during_the_load_are_verified_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let conn = ferry_db(dir.path());
        conn.execute_batch("CREATE TABLE counters (counter_id TEXT PRIMARY KEY, n INTEGER CHECK (n > 0), mode TEXT CHECK (mode IN ('a', 'b')), source_path TEXT NOT NULL, doc TEXT CHECK (doc IS NULL OR json_valid(doc)))").unwrap();
        let toml = "version = 1\n[[rule]]\nkind = \"counters\"\nglob = \"*.json\"\nformat = \"json\"\ntable = \"counters\"\n[rule.columns]\ncounter_id = \"{stem}\"\nn = \"/n\"\nmode = \"/mode\"\n";
        let profile = Profile::from_toml(toml, "test").unwrap();
        let schema = crate::schema::load_all(&conn).unwrap();
        let plan = Plan::build(&profile, &schema).unwrap();
        let insert = "INSERT INTO counters (counter_id, n, mode, source_path, doc) VALUES (?1, ?2, ?3, ?1, ?4)";

        // Rows that hold every CHECK, NULL included, pass.
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let load = BulkLoad::begin(&conn, &plan, &schema).unwrap();
        assert!(load.checks_deferred && ignoring(&conn));
        conn.execute(insert, rusqlite::params!["a", 1, "a", "{}"])
            .unwrap();
        conn.execute(
            insert,
            rusqlite::params!["b", None::<i64>, None::<String>, None::<String>],
        )
        .unwrap();
        assert_eq!(load.finish(&conn).unwrap(), None);
        assert!(!ignoring(&conn));
        conn.execute_batch("ROLLBACK").unwrap();

        // A row that breaks any one of them is found, whichever it breaks.
        for (n, mode, doc) in [(0, "a", "{}"), (2, "c", "{}"), (2, "b", "{not json")] {
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            let load = BulkLoad::begin(&conn, &plan, &schema).unwrap();
            conn.execute(insert, rusqlite::params!["ok", 5, "b", "[]"])
                .unwrap();
            conn.execute(insert, rusqlite::params!["bad", n, mode, doc])
                .unwrap();
            let found = load.finish(&conn).unwrap();
            assert!(
                found
                    .as_deref()
                    .is_some_and(|m| m.contains("1 row(s) of table counters")),
                "{n} {mode} {doc}: {found:?}"
            );
            conn.execute_batch("ROLLBACK").unwrap();
            load.abandon(&conn).unwrap();
            assert!(!ignoring(&conn));
        }
    }
}
