//! What the import needs to know about the target tables, read from SQLite itself: columns,
//! NOT NULL and defaults, keys, foreign keys, and the two kinds of CHECK the agent-store
//! schema uses (`col IN ('a', 'b')` and `json_valid(col)`), so a profile is validated against
//! the real schema and a value that would violate a constraint is caught before it is bound.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ImportError;

#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    /// Primary-key columns, in key order (empty for a rowid table without one).
    pub pk: Vec<String>,
    /// Column sets with a UNIQUE constraint or index, the primary key included.
    pub uniques: Vec<Vec<String>>,
    pub fks: Vec<ForeignKey>,
    /// Some table (maybe this one) has a foreign key to this table.
    pub referenced: bool,
    /// The expression of every CHECK constraint, as written in the `CREATE TABLE` statement.
    pub checks: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub name: String,
    /// Declared type, upper-cased (`TEXT`, `INTEGER`, `REAL`, `BLOB`, or empty).
    pub decl: String,
    pub not_null: bool,
    /// The default as SQL text (`'unknown'`, `0`, `(strftime(...))`).
    pub default: Option<String>,
    /// Allowed values from a `CHECK (col IN (...))`.
    pub allowed: Option<Vec<String>>,
    /// A `CHECK (... json_valid(col) ...)` holds this column to JSON text.
    pub json: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ForeignKey {
    pub from: String,
    pub table: String,
    pub to: String,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.column(name).is_some()
    }

    /// The `INTEGER PRIMARY KEY` column that aliases the rowid, if any.
    pub fn rowid_alias(&self) -> Option<&str> {
        match self.pk.as_slice() {
            [one] if self.column(one).is_some_and(|c| c.decl == "INTEGER") => Some(one),
            _ => None,
        }
    }

    pub fn is_unique_set(&self, cols: &[String]) -> bool {
        let want: BTreeSet<&String> = cols.iter().collect();
        self.uniques
            .iter()
            .any(|u| u.iter().collect::<BTreeSet<_>>() == want)
    }
}

/// Reads every table of the main database.
pub(crate) fn load_all(
    conn: &rusqlite::Connection,
) -> Result<BTreeMap<String, TableInfo>, ImportError> {
    let ctx = |what: String| move |error| ImportError::database(what, error);
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(ctx("reading the list of tables".into()))?;
    let names: Vec<(String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(ctx("reading the list of tables".into()))?;
    let mut tables = BTreeMap::new();
    for (name, sql) in names {
        let info = load_table(conn, &name, sql.as_deref().unwrap_or(""))
            .map_err(ctx(format!("reading the schema of table {name}")))?;
        tables.insert(name, info);
    }
    let referenced: BTreeSet<String> = tables
        .values()
        .flat_map(|t| t.fks.iter().map(|f| f.table.clone()))
        .collect();
    for t in tables.values_mut() {
        t.referenced = referenced.contains(&t.name);
    }
    // A foreign key written `REFERENCES agents` (no column) points at the parent's key.
    let pks: BTreeMap<String, Vec<String>> = tables
        .iter()
        .map(|(n, t)| (n.clone(), t.pk.clone()))
        .collect();
    for t in tables.values_mut() {
        for fk in &mut t.fks {
            if fk.to.is_empty() {
                if let Some([one]) = pks.get(&fk.table).map(Vec::as_slice) {
                    fk.to = one.clone();
                }
            }
        }
    }
    Ok(tables)
}

fn load_table(conn: &rusqlite::Connection, name: &str, sql: &str) -> rusqlite::Result<TableInfo> {
    let (allowed, json) = parse_checks(sql);
    let checks = check_exprs(sql);
    let mut stmt = conn.prepare(
        r#"SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid"#,
    )?;
    let cols: Vec<(String, String, i64, Option<String>, i64)> = stmt
        .query_map([name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut pk: Vec<(i64, String)> = Vec::new();
    let mut columns = Vec::new();
    for (cname, decl, notnull, default, pk_pos) in cols {
        if pk_pos > 0 {
            pk.push((pk_pos, cname.clone()));
        }
        columns.push(ColumnInfo {
            allowed: allowed.get(&cname).cloned(),
            json: json.contains(&cname),
            not_null: notnull != 0 || pk_pos > 0 && decl.eq_ignore_ascii_case("INTEGER"),
            decl: decl.to_ascii_uppercase(),
            default,
            name: cname,
        });
    }
    pk.sort();
    let pk: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
    let mut uniques = Vec::new();
    if !pk.is_empty() {
        uniques.push(pk.clone());
    }
    let mut stmt = conn.prepare(r#"SELECT name, "unique", partial FROM pragma_index_list(?1)"#)?;
    let indexes: Vec<(String, i64, i64)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (ix_name, unique, partial) in indexes {
        if unique == 0 || partial != 0 {
            continue;
        }
        let mut stmt = conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let cols: Vec<Option<String>> = stmt
            .query_map([&ix_name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        // An index on an expression has no column name; it is no natural key.
        if cols.iter().all(Option::is_some) {
            uniques.push(cols.into_iter().flatten().collect());
        }
    }
    let mut stmt = conn.prepare(
        r#"SELECT "table", "from", "to" FROM pragma_foreign_key_list(?1) ORDER BY id, seq"#,
    )?;
    let fks = stmt
        .query_map([name], |r| {
            Ok(ForeignKey {
                table: r.get(0)?,
                from: r.get(1)?,
                to: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(TableInfo {
        name: name.to_owned(),
        columns,
        pk,
        uniques,
        fks,
        referenced: false,
        checks,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
}

fn tokenize(sql: &str) -> Vec<Tok> {
    spans(sql).into_iter().map(|(t, _)| t).collect()
}

/// The tokens of a statement with the byte range each covers; comments are skipped.
fn spans(sql: &str) -> Vec<(Tok, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(sql.len(), |(b, _)| *b);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let next = chars.get(i + 1).map(|(_, c)| *c);
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len()
                && !(chars[i].1 == '*' && chars.get(i + 1).map(|(_, c)| *c) == Some('/'))
            {
                i += 1;
            }
            i += 2;
        } else if c == '\'' || c == '"' || c == '`' || c == '[' {
            let quote = if c == '[' { ']' } else { c };
            let mut s = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i].1 == quote {
                    if quote != ']' && chars.get(i + 1).map(|(_, c)| *c) == Some(quote) {
                        s.push(quote);
                        i += 2;
                        continue;
                    }
                    break;
                }
                s.push(chars[i].1);
                i += 1;
            }
            i += 1;
            let tok = if quote == '\'' {
                Tok::Str(s)
            } else {
                Tok::Ident(s)
            };
            out.push((tok, at(start)..at(i.min(chars.len()))));
        } else if c.is_alphanumeric() || c == '_' {
            let mut s = String::new();
            while i < chars.len() && (chars[i].1.is_alphanumeric() || chars[i].1 == '_') {
                s.push(chars[i].1);
                i += 1;
            }
            out.push((Tok::Ident(s), at(start)..at(i)));
        } else {
            out.push((Tok::Punct(c), at(start)..at(i + 1)));
            i += 1;
        }
    }
    out
}

/// The text of every `CHECK (...)` expression of a `CREATE TABLE` statement, without the
/// outer parentheses, exactly as written.
fn check_exprs(sql: &str) -> Vec<String> {
    let toks = spans(sql);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let is_check = matches!(&toks[i].0, Tok::Ident(s) if s.eq_ignore_ascii_case("CHECK"))
            && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Punct('('));
        if !is_check {
            i += 1;
            continue;
        }
        let mut depth = 1;
        let mut j = i + 2;
        while j < toks.len() {
            match toks[j].0 {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if j < toks.len() {
            out.push(sql[toks[i + 1].1.end..toks[j].1.start].trim().to_owned());
        }
        i = j + 1;
    }
    out
}

/// `(column -> allowed values, columns held to JSON)` from a `CREATE TABLE` statement.
fn parse_checks(sql: &str) -> (BTreeMap<String, Vec<String>>, BTreeSet<String>) {
    let toks = tokenize(sql);
    let mut allowed = BTreeMap::new();
    let mut json = BTreeSet::new();
    let is = |t: &Tok, word: &str| matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(word));
    let mut i = 0;
    while i < toks.len() {
        if is(&toks[i], "CHECK") && toks.get(i + 1) == Some(&Tok::Punct('(')) {
            // The CHECK's parenthesised expression.
            let start = i + 2;
            let mut depth = 1;
            let mut j = start;
            while j < toks.len() && depth > 0 {
                match toks[j] {
                    Tok::Punct('(') => depth += 1,
                    Tok::Punct(')') => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            let body = &toks[start..j.saturating_sub(1)];
            for k in 0..body.len() {
                if let (Tok::Ident(col), Some(t1), Some(Tok::Punct('('))) =
                    (&body[k], body.get(k + 1), body.get(k + 2))
                {
                    if is(t1, "IN") && !(k > 0 && is(&body[k - 1], "NOT")) {
                        let mut values = Vec::new();
                        let mut m = k + 3;
                        while let Some(Tok::Str(v)) = body.get(m) {
                            values.push(v.clone());
                            match body.get(m + 1) {
                                Some(Tok::Punct(',')) => m += 2,
                                _ => break,
                            }
                        }
                        if !values.is_empty() {
                            allowed.insert(col.clone(), values);
                        }
                    }
                }
                if is(&body[k], "json_valid") {
                    if let (Some(Tok::Punct('(')), Some(Tok::Ident(col)), Some(Tok::Punct(')'))) =
                        (body.get(k + 1), body.get(k + 2), body.get(k + 3))
                    {
                        json.insert(col.clone());
                    }
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    (allowed, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_checks_of_the_agent_store_schema() {
        let sql = "CREATE TABLE t (\n status TEXT NOT NULL DEFAULT 'unknown'\n CHECK (status IN ('online', 'it''s')), -- x IN ('no')\n caps TEXT CHECK (caps IS NULL OR json_valid(caps)),\n \"folder\" TEXT CHECK (\"folder\" NOT IN ('x')),\n CHECK (doc IS NOT NULL OR snap IS NOT NULL))";
        let (allowed, json) = parse_checks(sql);
        assert_eq!(
            allowed.get("status").unwrap(),
            &vec!["online".to_owned(), "it's".to_owned()]
        );
        assert!(!allowed.contains_key("folder") && !allowed.contains_key("x"));
        assert!(json.contains("caps") && json.len() == 1);
    }

    #[test]
    fn check_expressions_are_read_as_written() {
        let sql = "CREATE TABLE t (\n a TEXT NOT NULL CHECK (a IN ('x', 'y)')), -- CHECK (no)\n /* CHECK (nor this) */ b TEXT CHECK(b IS NULL OR json_valid(b)),\n [c] INTEGER CONSTRAINT positive CHECK ( (c) > 0 ),\n CHECK (a <> 'z' OR b IS NOT NULL)\n)";
        assert_eq!(
            check_exprs(sql),
            vec![
                "a IN ('x', 'y)')".to_owned(),
                "b IS NULL OR json_valid(b)".to_owned(),
                "(c) > 0".to_owned(),
                "a <> 'z' OR b IS NOT NULL".to_owned(),
            ]
        );
        // Every CHECK of ferry's own schema is found.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for (name, sql) in ferry_migrations::SQLITE {
            if name.ends_with(".up.sql") {
                conn.execute_batch(sql).unwrap();
            }
        }
        let ledger: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'ferry_source_files'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(check_exprs(&ledger).len(), 8);
    }
}
