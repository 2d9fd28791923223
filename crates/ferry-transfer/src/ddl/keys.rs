//! A table's own post-data steps: its primary key, UNIQUE constraints and indexes, CHECK
//! constraints (translated for the chosen types, added `NOT VALID` then validated, each
//! commented with its SQLite text), the full-text index of a full-text table, and the
//! sequence behind its rowid.

use ferry_core::plan::{check_comment, ObjectKind, TableKind, TablePlan, TargetType, TransferPlan};
use ferry_core::sql::NameAllocator;
use ferry_core::sqlite_text::{render, Token};

use super::{column_target, setval_sql, DerivedNames, Step, STAGE_KEYS};
use crate::ident::{literal, qualified, quote};
use crate::schema::{SourceIndex, SourceTable};
use crate::sql::{self, ast, emit::Emitter, Catalog};

pub(super) fn table_steps(
    plan: &TransferPlan,
    t: &TablePlan,
    src: &SourceTable,
    cat: &Catalog,
    names: &mut DerivedNames,
    steps: &mut Vec<Step>,
) {
    let schema = &plan.target_schema;
    primary_key(schema, t, names, steps);
    for ix in &src.indexes {
        match ix.origin.as_str() {
            "pk" => {}
            "u" => steps.push(unique(schema, t, ix, names)),
            _ => steps.push(index_step(t, src, ix, &names.index(&ix.name), schema, cat)),
        }
    }
    checks(schema, t, src, cat, names, steps);
    if t.kind == TableKind::FullText {
        steps.push(full_text(schema, t, names));
    }
    if let (Some(alias), Some(seq)) = (&src.rowid_alias, names.sequences.get(&t.source)) {
        if let Some(col) = column_target(t, alias) {
            let table = qualified(schema, &t.target);
            steps.push(
                Step::new(
                    format!("seq:{}", t.source),
                    STAGE_KEYS,
                    ObjectKind::Sequence,
                    format!(
                        "sequence of {:?}.{alias:?} set past the highest key",
                        t.source
                    ),
                    vec![setval_sql(
                        &qualified(schema, seq),
                        &table,
                        col,
                        src.sqlite_sequence,
                    )],
                )
                .object(alias, &format!("{alias} INTEGER PRIMARY KEY")),
            );
        }
    }
}

fn columns_sql(t: &TablePlan, list: &[String]) -> Option<String> {
    list.iter()
        .map(|c| column_target(t, c).map(quote))
        .collect::<Option<Vec<_>>>()
        .map(|v| v.join(", "))
}

/// The primary key, or UNIQUE when SQLite let NULL into a key column (which is what
/// SQLite's key then means).
fn primary_key(schema: &str, t: &TablePlan, names: &mut DerivedNames, steps: &mut Vec<Step>) {
    if t.primary_key.is_empty() {
        return;
    }
    let table = qualified(schema, &t.target);
    let nullable = t.primary_key.iter().any(|k| {
        t.columns
            .iter()
            .any(|c| &c.source == k && c.profile.nulls > 0)
    });
    let name = names.generated(&format!("{}_pkey", t.target));
    let (kind, what) = if nullable {
        (
            "UNIQUE",
            format!(
                "primary key of {:?} (as UNIQUE: SQLite let NULL into a key column)",
                t.source
            ),
        )
    } else {
        ("PRIMARY KEY", format!("primary key of {:?}", t.source))
    };
    let id = format!("pk:{}", t.source);
    let text = format!("PRIMARY KEY ({})", t.primary_key.join(", "));
    let step = match columns_sql(t, &t.primary_key) {
        Some(c) => Step::new(
            id,
            STAGE_KEYS,
            ObjectKind::PrimaryKey,
            what,
            vec![format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {kind} ({c})",
                quote(&name)
            )],
        ),
        None => Step::failed(
            id,
            STAGE_KEYS,
            ObjectKind::PrimaryKey,
            what,
            "a key column is not in the plan",
        ),
    };
    steps.push(step.object("", &text));
}

fn unique(schema: &str, t: &TablePlan, ix: &SourceIndex, names: &mut DerivedNames) -> Step {
    let table = qualified(schema, &t.target);
    let list: Vec<String> = ix.columns.iter().filter_map(|c| c.name.clone()).collect();
    let name = names.generated(&format!("{}_{}_key", t.target, list.join("_")));
    let what = format!("UNIQUE ({}) of {:?}", list.join(", "), t.source);
    let id = format!("unique:{}:{}", t.source, ix.name);
    let text = format!("UNIQUE ({})", list.join(", "));
    let step = match columns_sql(t, &list) {
        Some(c) if list.len() == ix.columns.len() => Step::new(
            id,
            STAGE_KEYS,
            ObjectKind::Unique,
            what,
            vec![format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} UNIQUE ({c})",
                quote(&name)
            )],
        ),
        _ => Step::failed(
            id,
            STAGE_KEYS,
            ObjectKind::Unique,
            what,
            "a column is not in the plan",
        ),
    };
    step.object(&ix.name, &text)
}

/// Each CHECK, translated for the chosen column types, added `NOT VALID` and then
/// validated, and commented with its SQLite text so a validation can find it.
fn checks(
    schema: &str,
    t: &TablePlan,
    src: &SourceTable,
    cat: &Catalog,
    names: &mut DerivedNames,
    steps: &mut Vec<Step>,
) {
    let table = qualified(schema, &t.target);
    let info = cat.table(&t.source);
    for (n, check) in src.checks.iter().enumerate() {
        let name = names.generated(&match &check.name {
            Some(n) => n.clone(),
            None => format!("{}_check{}", t.target, n + 1),
        });
        let what = format!("CHECK ({}) of {:?}", check.text, t.source);
        let id = format!("check:{}:{}", t.source, n + 1);
        let translated = info
            .ok_or_else(|| "the table is not in the plan".to_owned())
            .and_then(|info| {
                let e = ast::parse_expr(&check.expr)?;
                Emitter::for_table(cat, info).condition(&e)
            });
        let step = match translated {
            Ok(expr) => {
                let add = Step::new(
                    id,
                    STAGE_KEYS,
                    ObjectKind::Check,
                    what,
                    vec![
                        format!(
                            "ALTER TABLE {table} ADD CONSTRAINT {} CHECK ({expr}) NOT VALID",
                            quote(&name)
                        ),
                        format!(
                            "COMMENT ON CONSTRAINT {} ON {table} IS {}",
                            quote(&name),
                            literal(&check_comment(&check.text))
                        ),
                    ],
                )
                .object(check.name.as_deref().unwrap_or(""), &check.text);
                let validate = add.validating(format!(
                    "ALTER TABLE {table} VALIDATE CONSTRAINT {}",
                    quote(&name)
                ));
                steps.push(add);
                validate
            }
            Err(why) => Step::failed(
                id,
                STAGE_KEYS,
                ObjectKind::Check,
                what,
                &format!("not translated: {why}"),
            )
            .object(check.name.as_deref().unwrap_or(""), &check.text),
        };
        steps.push(step);
    }
}

fn full_text(schema: &str, t: &TablePlan, names: &mut DerivedNames) -> Step {
    let table = qualified(schema, &t.target);
    let mut col_alloc = NameAllocator::new();
    for c in &t.columns {
        col_alloc.reserve(&c.target);
    }
    let vector = col_alloc.allocate("search_vector");
    let parts: Vec<String> = t
        .columns
        .iter()
        .filter(|c| c.source != "rowid")
        .map(|c| {
            let cast = if c.target_type == TargetType::Text {
                String::new()
            } else {
                "::text".into()
            };
            format!("coalesce({}{cast}, '')", quote(&c.target))
        })
        .collect();
    let body = if parts.is_empty() {
        "''".to_owned()
    } else {
        parts.join(" || ' ' || ")
    };
    let index = names.generated(&format!("{}_{vector}_idx", t.target));
    Step::new(
        format!("fts:{}", t.source),
        STAGE_KEYS,
        ObjectKind::FullText,
        format!("full-text index of {:?} (tsvector column {vector:?} + GIN)", t.source),
        vec![
            format!(
                "ALTER TABLE {table} ADD COLUMN {} tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, {body})) STORED",
                quote(&vector)
            ),
            format!("CREATE INDEX {} ON {table} USING gin ({})", quote(&index), quote(&vector)),
        ],
    )
    .object(&t.source, "full-text search")
}

fn index_step(
    t: &TablePlan,
    src: &SourceTable,
    ix: &SourceIndex,
    name: &str,
    schema: &str,
    cat: &Catalog,
) -> Step {
    let id = format!("index:{}", ix.name);
    let what = format!("index {:?} of {:?}", ix.name, src.name);
    let text = ix
        .sql
        .clone()
        .unwrap_or_else(|| format!("INDEX {}", ix.name));
    let unique = if ix.unique { "UNIQUE " } else { "" };
    let table = qualified(schema, &t.target);
    let fail = |why: &str| {
        Step::failed(id.clone(), STAGE_KEYS, ObjectKind::Index, what.clone(), why)
            .object(&ix.name, &text)
    };
    if ix.is_simple() {
        let mut terms = Vec::new();
        for c in &ix.columns {
            let Some(target) = c.name.as_deref().and_then(|n| column_target(t, n)) else {
                return fail("a column is not in the plan");
            };
            // A collation other than the column's own (which is reported on its own) would
            // change what the index orders or makes unique.
            let own = src
                .collations
                .iter()
                .find(|(col, _)| Some(col.as_str()) == c.name.as_deref())
                .map(|(_, coll)| coll.as_str());
            let binary = c.collation.is_empty() || c.collation.eq_ignore_ascii_case("BINARY");
            if !binary && !own.is_some_and(|o| o.eq_ignore_ascii_case(&c.collation)) {
                return fail(&format!(
                    "collation {} has no PostgreSQL equivalent",
                    c.collation
                ));
            }
            terms.push(format!(
                "{}{}",
                quote(target),
                if c.desc { " DESC" } else { "" }
            ));
        }
        return Step::new(
            id,
            STAGE_KEYS,
            ObjectKind::Index,
            what,
            vec![format!(
                "CREATE {unique}INDEX {} ON {table} ({})",
                quote(name),
                terms.join(", ")
            )],
        )
        .object(&ix.name, &text);
    }
    let Some(parts) = ix.sql.as_deref().and_then(sql::parse_create_index) else {
        return fail("its CREATE INDEX could not be read");
    };
    let Some(info) = cat.table(&t.source) else {
        return fail("the table is not in the plan");
    };
    let mut terms = Vec::new();
    for term in &parts.terms {
        match index_term(cat, info, term) {
            Ok(sql) => terms.push(sql),
            Err(why) => return fail(&format!("not translated: {why}")),
        }
    }
    let predicate = match &parts.predicate {
        Some(p) => {
            match ast::parse_expr(p).and_then(|e| Emitter::for_table(cat, info).condition(&e)) {
                Ok(w) => format!(" WHERE {w}"),
                Err(why) => return fail(&format!("not translated: {why}")),
            }
        }
        None => String::new(),
    };
    Step::new(
        id,
        STAGE_KEYS,
        ObjectKind::Index,
        what,
        vec![format!(
            "CREATE {unique}INDEX {} ON {table} ({}){predicate}",
            quote(name),
            terms.join(", ")
        )],
    )
    .object(&ix.name, &text)
}

/// One index key term: an expression (a bare column stays bare) and its direction.
fn index_term(cat: &Catalog, info: &sql::TableInfo, term: &[Token]) -> Result<String, String> {
    let mut tokens = term.to_vec();
    let direction = match tokens.last() {
        Some(t) if t.is_word("DESC") => {
            tokens.pop();
            " DESC"
        }
        Some(t) if t.is_word("ASC") => {
            tokens.pop();
            ""
        }
        _ => "",
    };
    let e = ast::parse_expr(&tokens).map_err(|e| format!("{e} in {}", render(term)))?;
    let out = Emitter::for_table(cat, info).value(&e)?;
    let is_column = matches!(e, ast::Expr::Column { .. });
    let expr = if is_column {
        out.sql
    } else {
        format!("({})", out.sql)
    };
    Ok(format!("{expr}{direction}"))
}
