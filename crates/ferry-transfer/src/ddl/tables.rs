//! The `CREATE TABLE`s of a derived schema, and what is tried while creating them, each
//! under a savepoint: generated columns (with a plain-column fallback), defaults, and the
//! records of what cannot be carried over at all (collations, tables whose rows are not
//! copied).

use ferry_core::plan::{ColumnPlan, ObjectKind, TablePlan, TargetType, TransferPlan, MIXED_DOMAIN};
use ferry_core::sqlite_text::tokenize;

use super::{catalog, DerivedNames};
use crate::bookkeeping::StepRow;
use crate::ident::{qualified, quote};
use crate::schema::{SourceSchema, SourceTable};
use crate::sql::{self, ast, emit::Emitter, Ty};

/// What creating the tables runs.
#[derive(Debug, Clone, Default)]
pub struct Created {
    /// Statements that must succeed (the tables, the domain of mixed columns).
    pub creates: Vec<String>,
    /// Statements tried one by one, in order, each recorded with its outcome.
    pub attempts: Vec<Attempt>,
}

/// One thing tried while creating the tables.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub what: String,
    pub sql: Vec<String>,
    /// Run instead when `sql` is refused (a table without its generated expressions).
    pub fallback: Vec<String>,
    /// Set when there is nothing to try: the reason it is not carried over.
    pub problem: Option<String>,
    pub kind: ObjectKind,
    pub table: String,
    pub name: String,
    pub text: String,
}

impl Attempt {
    pub fn row(&self, outcome: &str, detail: &str) -> StepRow {
        StepRow {
            step: self.id.clone(),
            outcome: outcome.to_owned(),
            detail: detail.to_owned(),
            kind: Some(self.kind),
            table: self.table.clone(),
            name: self.name.clone(),
            text: self.text.clone(),
        }
    }
}

/// The domain of mixed-class columns: its type says how their values are written.
fn mixed_domain(schema: &str) -> Vec<String> {
    let domain = qualified(schema, MIXED_DOMAIN);
    vec![
        format!(
            "CREATE DOMAIN {domain} AS jsonb CHECK (VALUE IS NULL OR jsonb_typeof(VALUE) IN ('number', 'string') \
             OR (jsonb_typeof(VALUE) = 'object' AND (VALUE ? '$blob' OR VALUE ? '$real')))"
        ),
        format!(
            "COMMENT ON DOMAIN {domain} IS {}",
            crate::ident::literal(
                "One SQLite value with its storage class: INTEGER as a JSON integer, REAL as a JSON number with a point (or {\"$real\": \"NaN\"|\"Infinity\"|\"-Infinity\"}), TEXT as a JSON string, BLOB as {\"$blob\": \"<hex>\"}"
            )
        ),
    ]
}

/// The tables, and what to try while creating them.
pub fn create_tables(plan: &TransferPlan, source: &SourceSchema, names: &DerivedNames) -> Created {
    let schema = &plan.target_schema;
    let cat = catalog(plan, source);
    let mut out = Created::default();
    let mut generated = Vec::new();
    let mut later = Vec::new();
    if plan.tables.iter().any(|t| {
        t.columns
            .iter()
            .any(|c| c.target_type == TargetType::MixedJsonb)
    }) {
        out.creates.extend(mixed_domain(schema));
    }
    for t in &plan.tables {
        let table = table_ddl(plan, t, source, &cat, names);
        match table.generated {
            Some(attempt) => generated.push(attempt),
            None => out.creates.push(table.create),
        }
        later.extend(table.attempts);
        if let Some(src) = source.table(&t.source) {
            later.extend(collations(t, src));
        }
    }
    for (name, create, why) in &source.skipped {
        later.push(unattempted(
            format!("table:{name}"),
            ObjectKind::Table,
            name,
            name,
            create.clone(),
            why.clone(),
        ));
    }
    // Tables with generated columns first: the defaults that follow alter them.
    out.attempts = generated.into_iter().chain(later).collect();
    out
}

/// One table's DDL: its `CREATE TABLE` (or, with generated columns, an attempt with a
/// plain fallback), and its defaults and untranslated generated columns to record.
struct TableDdl {
    create: String,
    generated: Option<Attempt>,
    attempts: Vec<Attempt>,
}

fn table_ddl(
    plan: &TransferPlan,
    t: &TablePlan,
    source: &SourceSchema,
    cat: &sql::Catalog,
    names: &DerivedNames,
) -> TableDdl {
    let schema = &plan.target_schema;
    let src = source.table(&t.source);
    let info = cat.table(&t.source);
    let alias = src.and_then(|s| s.rowid_alias.clone());
    let mut plain = Vec::new();
    let mut with_generated = Vec::new();
    let mut computed: Vec<(String, String)> = Vec::new();
    let mut attempts = Vec::new();
    for c in &t.columns {
        let is_identity =
            alias.as_deref() == Some(c.source.as_str()) && c.target_type == TargetType::Bigint;
        let mut def = format!("{} {}", quote(&c.target), c.target_type.ddl(schema));
        if let (true, Some(seq)) = (is_identity, names.sequences.get(&t.source)) {
            def.push_str(&format!(
                " GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME {})",
                qualified(schema, seq)
            ));
        }
        if c.not_null {
            def.push_str(" NOT NULL");
        }
        plain.push(def.clone());
        if let (Some(expr), Some(info)) = (&c.generated, info) {
            let text = format!("{} AS ({expr})", c.source);
            match generated_expr(cat, info, expr, &c.target_type) {
                Ok(sql) => {
                    with_generated.push(format!(
                        "{} {} GENERATED ALWAYS AS ({sql}) STORED",
                        quote(&c.target),
                        c.target_type.ddl(schema)
                    ));
                    computed.push((c.source.clone(), text));
                }
                Err(why) => {
                    with_generated.push(def);
                    attempts.push(unattempted(
                        format!("generated:{}:{}", t.source, c.source),
                        ObjectKind::Generated,
                        &t.source,
                        &c.source,
                        text,
                        format!("not translated: {why}; the column holds the copied values and is not computed"),
                    ));
                }
            }
            continue;
        }
        with_generated.push(def);
        let default = src
            .and_then(|s| s.columns.iter().find(|sc| sc.name == c.source))
            .and_then(|sc| sc.default.clone());
        if let (Some(default), false) = (default, is_identity) {
            attempts.extend(default_attempt(schema, t, c, &default));
        }
    }
    let create = |cols: &[String]| {
        format!(
            "CREATE TABLE {} ({})",
            qualified(schema, &t.target),
            cols.join(", ")
        )
    };
    let generated = (!computed.is_empty()).then(|| Attempt {
        id: format!("generated:{}", t.source),
        what: format!("generated columns of {:?}", t.source),
        sql: vec![create(&with_generated)],
        fallback: vec![create(&plain)],
        problem: None,
        kind: ObjectKind::Generated,
        table: t.source.clone(),
        name: computed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        text: computed
            .iter()
            .map(|(_, x)| x.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    });
    TableDdl {
        create: create(&plain),
        generated,
        attempts,
    }
}

/// A column's default, translated for the column's type (or why it cannot be).
fn default_attempt(schema: &str, t: &TablePlan, c: &ColumnPlan, default: &str) -> Option<Attempt> {
    let mut attempt = Attempt {
        id: format!("default:{}:{}", t.source, c.source),
        what: format!("default {default} of {:?}.{:?}", t.source, c.source),
        sql: Vec::new(),
        fallback: Vec::new(),
        problem: None,
        kind: ObjectKind::Default,
        table: t.source.clone(),
        name: c.source.clone(),
        text: format!("{} DEFAULT {default}", c.source),
    };
    match sql::translate_default(default, &c.target_type) {
        Ok(Some(expr)) => attempt.sql.push(format!(
            "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {expr}",
            qualified(schema, &t.target),
            quote(&c.target)
        )),
        Ok(None) => return None,
        Err(why) => attempt.problem = Some(why),
    }
    Some(attempt)
}

/// Columns with a collation PostgreSQL has no equal of.
fn collations(t: &TablePlan, src: &SourceTable) -> Vec<Attempt> {
    src.collations
        .iter()
        .map(|(col, coll)| {
            unattempted(
                format!("collation:{}:{col}", t.source),
                ObjectKind::Collation,
                &t.source,
                col,
                format!("{col} COLLATE {coll}"),
                format!(
                    "PostgreSQL has no collation that compares as SQLite's {coll} does; the column compares byte for byte, so UNIQUE, = and ORDER BY on it no longer ignore what {coll} ignores"
                ),
            )
        })
        .collect()
}

/// Something recorded as not carried over without trying anything.
fn unattempted(
    id: String,
    kind: ObjectKind,
    table: &str,
    name: &str,
    text: String,
    problem: String,
) -> Attempt {
    Attempt {
        what: format!("{} {name:?} of {table:?}", kind.as_str()),
        id,
        sql: Vec::new(),
        fallback: Vec::new(),
        problem: Some(problem),
        kind,
        table: table.to_owned(),
        name: name.to_owned(),
        text,
    }
}

/// A generated column's expression, computed in PostgreSQL's type for the column.
fn generated_expr(
    cat: &sql::Catalog,
    table: &sql::TableInfo,
    expr: &str,
    target: &TargetType,
) -> Result<String, String> {
    let e = ast::parse_expr(&tokenize(expr))?;
    let mut em = Emitter::for_table(cat, table);
    let v = em.expr(&e)?;
    let want = Ty::of(target);
    Ok(match (want, v.ty) {
        (Ty::Bool, Ty::Bool) => v.sql,
        (Ty::Bool, t) if t.is_number() => format!("(({}) <> 0)", v.sql),
        (Ty::Bool, _) => {
            return Err("a boolean column computed from a value that is not a number".into())
        }
        (w, t) if w == t => v.sql,
        (Ty::Int | Ty::Numeric | Ty::Float, Ty::Bool) => {
            format!("(({})::integer)::{}", v.sql, target.sql())
        }
        (Ty::Int | Ty::Numeric | Ty::Float, t) if t.is_number() || t == Ty::Null => {
            format!("({})::{}", v.sql, target.sql())
        }
        (Ty::Text, _) => {
            let mut em = Emitter::for_table(cat, table);
            let o = em.expr(&e)?;
            // The column keeps what SQLite stores: the value's text for a TEXT column.
            match o.ty {
                Ty::Text | Ty::TextLit => o.sql,
                Ty::Int | Ty::Numeric | Ty::Bool => format!("({})::text", em.value(&e)?.sql),
                other => return Err(format!("a text column computed from a {other:?} value")),
            }
        }
        (Ty::Mixed, _) => {
            return Err("a mixed-class column is computed only by SQLite's own rules".into())
        }
        (w, t) => return Err(format!("a {w:?} column computed from a {t:?} value")),
    })
}
