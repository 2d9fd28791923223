//! A canonical schema dump built from the catalogs: tables, columns, keys, checks, foreign
//! keys, indexes, views, triggers, sequences, functions and extensions — sorted, stable, free
//! of OIDs, version banners and the schema's own name, so the same schema dumps to the same
//! text on any machine (unlike `pg_dump`, whose output changes between versions).
//!
//! The ledger table `ferry_schema_migrations` is not part of the dump: it is the migrator's,
//! not the schema's.

use std::fmt::Write as _;

use sqlx::Row;

use crate::db::{quote_ident, Database};
use crate::error::{Result, SchemaError};
use crate::migrator::LEDGER_TABLE;

/// Dumps the schema of `db` as canonical text.
pub async fn dump(db: &mut Database) -> Result<String> {
    let context = format!("dumping the schema of {}", db.describe());
    match db {
        Database::Sqlite { conn, .. } => dump_sqlite(conn).await,
        Database::Postgres { conn, schema, .. } => dump_postgres(conn, schema).await,
    }
    .map_err(|e| SchemaError::db(context, e))
}

/// The dump without the tables and triggers whose names start with `prefix`, and what is
/// listed under them: for objects another tool installs and removes on its own (ferry's
/// phase-4 capture, `ferry_sync_*`), which are not part of the reviewed schema. Returns the
/// dump and how many objects were left out.
pub fn without_prefixed(dump: &str, prefix: &str) -> (String, usize) {
    let mut out = String::with_capacity(dump.len());
    let mut skipping = false;
    let mut left_out = 0;
    for line in dump.lines() {
        if !line.starts_with(' ') {
            skipping = ["table \"", "trigger \"", "table ", "trigger "]
                .iter()
                .any(|kind| line.starts_with(&format!("{kind}{prefix}")));
            if skipping {
                left_out += 1;
            }
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, left_out)
}

/// Collapses runs of whitespace outside quotes to one space and trims.
fn squash(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut space = false;
    for c in sql.chars() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => space = true,
            None => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                if matches!(c, '\'' | '"' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

async fn dump_sqlite(conn: &mut sqlx::SqliteConnection) -> Result<String, sqlx::Error> {
    let mut out = String::new();
    let objects = sqlx::query(
        "SELECT type, name, tbl_name, coalesce(sql, '') AS sql FROM sqlite_schema
         WHERE name NOT LIKE 'sqlite_%' AND name <> ?1 ORDER BY type, name",
    )
    .bind(LEDGER_TABLE)
    .fetch_all(&mut *conn)
    .await?;
    let tables: Vec<(String, String)> = objects
        .iter()
        .filter(|r| r.get::<String, _>("type") == "table")
        .map(|r| (r.get("name"), r.get("sql")))
        .collect();
    for (table, sql) in &tables {
        writeln!(out, "table {}", quote_ident(table)).unwrap();
        if sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE") {
            writeln!(out, "  virtual {}", squash(sql)).unwrap();
            continue;
        }
        let columns = sqlx::query("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid")
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
        let mut pk: Vec<(i64, String)> = Vec::new();
        for c in &columns {
            let name: String = c.get("name");
            let ty: String = c.get("type");
            let not_null: i64 = c.get("notnull");
            let default: Option<String> = c.get("dflt_value");
            let hidden: i64 = c.get("hidden");
            let pk_pos: i64 = c.get("pk");
            if pk_pos > 0 {
                pk.push((pk_pos, name.clone()));
            }
            let mut line = format!(
                "  column {} {}",
                quote_ident(&name),
                if ty.is_empty() {
                    "(none)".to_owned()
                } else {
                    ty.to_ascii_lowercase()
                }
            );
            if not_null != 0 {
                line.push_str(" not null");
            }
            if let Some(d) = default {
                write!(line, " default {}", squash(&d)).unwrap();
            }
            if hidden != 0 {
                write!(line, " generated({hidden})").unwrap();
            }
            writeln!(out, "{line}").unwrap();
        }
        pk.sort();
        if !pk.is_empty() {
            let cols: Vec<String> = pk.iter().map(|(_, c)| quote_ident(c)).collect();
            writeln!(out, "  primary key ({})", cols.join(", ")).unwrap();
        }
        if sql.to_ascii_uppercase().contains("WITHOUT ROWID") {
            writeln!(out, "  without rowid").unwrap();
        }
        let mut checks = extract_checks(sql);
        checks.sort();
        for check in checks {
            writeln!(out, "  check {check}").unwrap();
        }
        let fks = sqlx::query("SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete, \"match\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
        let mut fk_lines = Vec::new();
        let mut i = 0;
        while i < fks.len() {
            let id: i64 = fks[i].get("id");
            let mut from = Vec::new();
            let mut to = Vec::new();
            let parent: String = fks[i].get("table");
            let on_update: String = fks[i].get("on_update");
            let on_delete: String = fks[i].get("on_delete");
            while i < fks.len() && fks[i].get::<i64, _>("id") == id {
                from.push(quote_ident(&fks[i].get::<String, _>("from")));
                to.push(
                    fks[i]
                        .get::<Option<String>, _>("to")
                        .map_or_else(|| "(primary key)".to_owned(), |t| quote_ident(&t)),
                );
                i += 1;
            }
            fk_lines.push(format!(
                "  foreign key ({}) references {} ({}) on update {} on delete {}",
                from.join(", "),
                quote_ident(&parent),
                to.join(", "),
                on_update.to_ascii_lowercase(),
                on_delete.to_ascii_lowercase()
            ));
        }
        fk_lines.sort();
        for l in fk_lines {
            writeln!(out, "{l}").unwrap();
        }
        let indexes =
            sqlx::query("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)")
                .bind(table)
                .fetch_all(&mut *conn)
                .await?;
        let mut index_lines = Vec::new();
        for idx in &indexes {
            let name: String = idx.get("name");
            let unique: i64 = idx.get("unique");
            let origin: String = idx.get("origin");
            let cols = sqlx::query("SELECT name, \"desc\", coll, key FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno")
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
            let cols: Vec<String> = cols
                .iter()
                .map(|c| {
                    let n: Option<String> = c.get("name");
                    let desc: i64 = c.get("desc");
                    let coll: String = c.get("coll");
                    let mut s = n.map_or_else(|| "(expression)".to_owned(), |n| quote_ident(&n));
                    if coll != "BINARY" {
                        write!(s, " collate {coll}").unwrap();
                    }
                    if desc != 0 {
                        s.push_str(" desc");
                    }
                    s
                })
                .collect();
            match origin.as_str() {
                "pk" => {}
                "u" => index_lines.push(format!("  unique ({})", cols.join(", "))),
                _ => {
                    let index_sql = objects
                        .iter()
                        .find(|r| r.get::<String, _>("name") == name)
                        .map(|r| r.get::<String, _>("sql"))
                        .unwrap_or_default();
                    let predicate = index_sql
                        .to_ascii_uppercase()
                        .rfind(" WHERE ")
                        .map(|p| format!(" where {}", squash(&index_sql[p + 7..])))
                        .unwrap_or_default();
                    index_lines.push(format!(
                        "  {}index {} ({}){predicate}",
                        if unique != 0 { "unique " } else { "" },
                        quote_ident(&name),
                        cols.join(", ")
                    ));
                }
            }
        }
        index_lines.sort();
        for l in index_lines {
            writeln!(out, "{l}").unwrap();
        }
    }
    for kind in ["view", "trigger"] {
        for r in objects
            .iter()
            .filter(|r| r.get::<String, _>("type") == kind)
        {
            let name: String = r.get("name");
            let sql: String = r.get("sql");
            writeln!(out, "{kind} {}\n  {}", quote_ident(&name), squash(&sql)).unwrap();
        }
    }
    Ok(out)
}

/// The `CHECK (…)` clauses of a `CREATE TABLE` statement, whitespace squashed.
fn extract_checks(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let upper = sql.to_ascii_uppercase();
    let mut out = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if matches!(c, b'\'' | b'"' | b'`') {
            quote = Some(c);
            i += 1;
            continue;
        }
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if word_start && upper[i..].starts_with("CHECK") {
            let mut j = i + 5;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if bytes.get(j) == Some(&b'(') {
                let start = j;
                let mut depth = 0usize;
                let mut q: Option<u8> = None;
                while j < bytes.len() {
                    let d = bytes[j];
                    if let Some(qq) = q {
                        if d == qq {
                            q = None;
                        }
                    } else if matches!(d, b'\'' | b'"' | b'`') {
                        q = Some(d);
                    } else if d == b'(' {
                        depth += 1;
                    } else if d == b')' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    j += 1;
                }
                let end = (j + 1).min(sql.len());
                out.push(squash(&sql[start..end]));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

async fn dump_postgres(conn: &mut sqlx::PgConnection, schema: &str) -> Result<String, sqlx::Error> {
    let mut out = String::new();
    // Names in the catalog functions' output are qualified only when not on the search
    // path; put the dumped schema first so the dump never contains its name.
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::raw_sql(&format!(
        "SET LOCAL search_path TO {}, public",
        quote_ident(schema)
    ))
    .execute(&mut *tx)
    .await?;
    let tables = sqlx::query(
        "SELECT c.oid::bigint AS oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> $2 ORDER BY c.relname COLLATE \"C\"",
    )
    .bind(schema)
    .bind(LEDGER_TABLE)
    .fetch_all(&mut *tx)
    .await?;
    for t in &tables {
        let oid: i64 = t.get("oid");
        let name: String = t.get("relname");
        writeln!(out, "table {}", quote_ident(&name)).unwrap();
        let columns = sqlx::query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS ty, a.attnotnull,
                    pg_get_expr(d.adbin, d.adrelid) AS dflt, a.attidentity::text AS ident, a.attgenerated::text AS gen,
                    CASE WHEN a.attcollation <> t.typcollation THEN co.collname END AS coll
             FROM pg_attribute a
             JOIN pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             LEFT JOIN pg_collation co ON co.oid = a.attcollation
             WHERE a.attrelid = $1::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(oid)
        .fetch_all(&mut *tx)
        .await?;
        for c in &columns {
            let col: String = c.get("attname");
            let ty: String = c.get("ty");
            let mut line = format!("  column {} {ty}", quote_ident(&col));
            if let Some(coll) = c.get::<Option<String>, _>("coll") {
                write!(line, " collate {}", quote_ident(&coll)).unwrap();
            }
            if c.get::<bool, _>("attnotnull") {
                line.push_str(" not null");
            }
            let gen: String = c.get("gen");
            if let Some(d) = c.get::<Option<String>, _>("dflt") {
                if gen.is_empty() {
                    write!(line, " default {}", squash(&d)).unwrap();
                } else {
                    write!(line, " generated always as ({})", squash(&d)).unwrap();
                }
            }
            match c.get::<String, _>("ident").as_str() {
                "a" => line.push_str(" generated always as identity"),
                "d" => line.push_str(" generated by default as identity"),
                _ => {}
            }
            writeln!(out, "{line}").unwrap();
        }
        let constraints = sqlx::query(
            "SELECT conname, contype::text AS contype, pg_get_constraintdef(oid, true) AS def, convalidated
             FROM pg_constraint WHERE conrelid = $1::bigint::oid
             ORDER BY CASE contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'c' THEN 2 WHEN 'f' THEN 3 ELSE 4 END, conname COLLATE \"C\"",
        )
        .bind(oid)
        .fetch_all(&mut *tx)
        .await?;
        for c in &constraints {
            let name: String = c.get("conname");
            let def: String = c.get("def");
            let validated: bool = c.get("convalidated");
            writeln!(
                out,
                "  constraint {} {}{}",
                quote_ident(&name),
                squash(&def),
                if validated { "" } else { " (not validated)" }
            )
            .unwrap();
        }
        let indexes = sqlx::query(
            "SELECT ic.relname, replace(pg_get_indexdef(i.indexrelid), ' ON ' || quote_ident($2) || '.', ' ON ') AS def FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             WHERE i.indrelid = $1::bigint::oid
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
             ORDER BY ic.relname COLLATE \"C\"",
        )
        .bind(oid)
        .bind(schema)
        .fetch_all(&mut *tx)
        .await?;
        for i in &indexes {
            let def: String = i.get("def");
            writeln!(out, "  {}", squash(&def)).unwrap();
        }
        let triggers = sqlx::query(
            "SELECT tgname, replace(pg_get_triggerdef(oid, true), ' ON ' || quote_ident($2) || '.', ' ON ') AS def FROM pg_trigger
             WHERE tgrelid = $1::bigint::oid AND NOT tgisinternal ORDER BY tgname COLLATE \"C\"",
        )
        .bind(oid)
        .bind(schema)
        .fetch_all(&mut *tx)
        .await?;
        for t in &triggers {
            let def: String = t.get("def");
            writeln!(out, "  trigger {}", squash(&def)).unwrap();
        }
    }
    let views = sqlx::query(
        "SELECT c.relname, c.relkind::text AS kind, pg_get_viewdef(c.oid, true) AS def FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('v', 'm')
         ORDER BY c.relname COLLATE \"C\"",
    )
    .bind(schema)
    .fetch_all(&mut *tx)
    .await?;
    for v in &views {
        let name: String = v.get("relname");
        let kind: String = v.get("kind");
        let def: String = v.get("def");
        let word = if kind == "m" {
            "materialized view"
        } else {
            "view"
        };
        writeln!(out, "{word} {}\n  {}", quote_ident(&name), squash(&def)).unwrap();
    }
    // Sequences other than those owned by identity columns (which the column line shows).
    let sequences = sqlx::query(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'S'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i')
         ORDER BY c.relname COLLATE \"C\"",
    )
    .bind(schema)
    .fetch_all(&mut *tx)
    .await?;
    for s in &sequences {
        writeln!(
            out,
            "sequence {}",
            quote_ident(&s.get::<String, _>("relname"))
        )
        .unwrap();
    }
    let functions = sqlx::query(
        "SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
         ORDER BY p.proname COLLATE \"C\", args",
    )
    .bind(schema)
    .fetch_all(&mut *tx)
    .await?;
    for f in &functions {
        let name: String = f.get("proname");
        let args: String = f.get("args");
        let result: Option<String> = f.get("result");
        writeln!(
            out,
            "function {}({args}) returns {}",
            quote_ident(&name),
            result.unwrap_or_default()
        )
        .unwrap();
    }
    // Extensions installed into this schema (the migrations' own `CREATE EXTENSION`).
    let extensions = sqlx::query(
        "SELECT e.extname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE n.nspname = $1 ORDER BY e.extname",
    )
    .bind(schema)
    .fetch_all(&mut *tx)
    .await?;
    for e in &extensions {
        writeln!(out, "extension {}", e.get::<String, _>("extname")).unwrap();
    }
    tx.rollback().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_check_clauses_with_nested_parentheses_and_strings() {
        let sql = "CREATE TABLE t (a TEXT CHECK (a IN ('x)', 'y')), b INT,\n  CHECK ((b > 0) AND (b < 10)), checked INT)";
        assert_eq!(
            extract_checks(sql),
            vec![
                "(a IN ('x)', 'y'))".to_owned(),
                "((b > 0) AND (b < 10))".to_owned()
            ]
        );
    }

    #[test]
    fn squash_keeps_quoted_text() {
        assert_eq!(squash("a   b\n\t'c   d'  e"), "a b 'c   d' e");
    }
}
