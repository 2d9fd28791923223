//! Views and triggers, last, after every table has its rows, keys and foreign keys.
//!
//! Views are translated in dependency order (a view over a view needs the other's output
//! types). Two kinds of trigger are translated into PL/pgSQL: the validation trigger
//! (`SELECT RAISE(ABORT, 'msg') WHERE cond`), and the trigger that sets columns of the row
//! just written (`AFTER INSERT … UPDATE t SET at = datetime('now') WHERE rowid =
//! NEW.rowid`), which becomes a `BEFORE` trigger assigning `NEW.at`. Anything else is
//! reported as not carried over.

use std::collections::HashMap;

use ferry_core::plan::{ObjectKind, TransferPlan};

use super::{DerivedNames, Step, STAGE_TRIGGERS, STAGE_VIEWS};
use crate::ident::{literal, qualified, quote};
use crate::schema::{SourceSchema, SourceView};
use crate::sql::ast::{self, Expr, RaiseKind, ResultColumn, Select, SelectCore, Statement};
use crate::sql::emit::Emitter;
use crate::sql::{self, Catalog, ColInfo, TableInfo, Timing, Ty};

pub(super) fn view_steps(
    plan: &TransferPlan,
    source: &SourceSchema,
    cat: &mut Catalog,
    names: &mut DerivedNames,
    steps: &mut Vec<Step>,
) {
    let schema = &plan.target_schema;
    let targets: Vec<String> = source
        .views
        .iter()
        .map(|v| names.generated(&v.name))
        .collect();
    let mut done: HashMap<usize, Result<Vec<String>, String>> = HashMap::new();
    // Passes until one translates nothing new: a view over a view waits for the other.
    loop {
        let mut progress = false;
        for (i, v) in source.views.iter().enumerate() {
            if matches!(done.get(&i), Some(Ok(_))) {
                continue;
            }
            let res = translate_view(v, cat, schema, &targets[i]);
            if let Ok((sql, columns)) = res {
                cat.tables.push(TableInfo {
                    source: v.name.clone(),
                    target: targets[i].clone(),
                    columns,
                    rowid: None,
                });
                done.insert(i, Ok(sql));
                progress = true;
            } else if let Err(why) = res {
                done.insert(i, Err(why));
            }
        }
        if !progress {
            break;
        }
    }
    for (i, v) in source.views.iter().enumerate() {
        let id = format!("view:{}", v.name);
        let what = format!("view {:?}", v.name);
        let step = match done.remove(&i) {
            Some(Ok(sql)) => Step::new(id, STAGE_VIEWS, ObjectKind::View, what, sql),
            Some(Err(why)) => Step::failed(
                id,
                STAGE_VIEWS,
                ObjectKind::View,
                what,
                &format!("not translated: {why}"),
            ),
            None => Step::failed(id, STAGE_VIEWS, ObjectKind::View, what, "not translated"),
        };
        steps.push(step.object(&v.name, &v.sql));
    }
}

fn translate_view(
    v: &SourceView,
    cat: &Catalog,
    schema: &str,
    target: &str,
) -> Result<(Vec<String>, Vec<ColInfo>), String> {
    let def = sql::parse_create_view(&v.sql).ok_or("its CREATE VIEW could not be read")?;
    let select = ast::parse_select(&def.body)?;
    let (body, mut columns) = Emitter::for_view(cat, &def).select(&select)?;
    let list = match &def.columns {
        Some(names) => {
            if names.len() != columns.len() {
                return Err("its column list and its SELECT differ in length".into());
            }
            for (c, n) in columns.iter_mut().zip(names) {
                c.source.clone_from(n);
            }
            format!(
                " ({})",
                names
                    .iter()
                    .map(|n| quote(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        None => String::new(),
    };
    for c in &mut columns {
        c.target.clone_from(&c.source);
    }
    Ok((
        vec![
            format!("SET LOCAL search_path TO {}", quote(schema)),
            format!("CREATE VIEW {}{list} AS {body}", qualified(schema, target)),
        ],
        columns,
    ))
}

pub(super) fn trigger_steps(
    plan: &TransferPlan,
    source: &SourceSchema,
    cat: &Catalog,
    names: &mut DerivedNames,
    steps: &mut Vec<Step>,
) {
    for trig in &source.triggers {
        let id = format!("trigger:{}", trig.name);
        let what = format!("trigger {:?} on {:?}", trig.name, trig.table);
        let mut step = match translate_trigger(&trig.sql, plan, cat, names) {
            Ok(sql) => Step::new(id, STAGE_TRIGGERS, ObjectKind::Trigger, what, sql),
            Err(why) => Step::failed(
                id,
                STAGE_TRIGGERS,
                ObjectKind::Trigger,
                what,
                &format!("not translated: {why}"),
            ),
        }
        .object(&trig.name, &trig.sql);
        step.table.clone_from(&trig.table);
        steps.push(step);
    }
}

fn translate_trigger(
    sql_text: &str,
    plan: &TransferPlan,
    cat: &Catalog,
    names: &mut DerivedNames,
) -> Result<Vec<String>, String> {
    let schema = &plan.target_schema;
    let def = sql::parse_create_trigger(sql_text).ok_or("its CREATE TRIGGER could not be read")?;
    if def.timing == Timing::InsteadOf {
        return Err("INSTEAD OF triggers (on views) are not translated".into());
    }
    let table = plan
        .tables
        .iter()
        .find(|t| t.source.eq_ignore_ascii_case(&def.table))
        .ok_or_else(|| format!("its table {:?} is not copied", def.table))?;
    let info = cat
        .table(&table.source)
        .ok_or_else(|| format!("its table {:?} is not copied", def.table))?;
    let statements = ast::parse_statements(&def.body)?;
    let when = match &def.when {
        Some(w) => Some(Emitter::for_trigger(cat, info, false).condition(&ast::parse_expr(w)?)?),
        None => None,
    };
    let (timing, body) = if let Some(body) = validation_body(&statements, cat, info, def.timing)? {
        (def.timing, body)
    } else if let Some(body) = touch_body(&statements, &def, cat, info)? {
        (Timing::Before, body)
    } else {
        return Err(
            "only validation triggers (SELECT RAISE(…) WHERE …) and triggers that set columns of the row just written are translated"
                .into(),
        );
    };
    let ret = match (timing, def.event.as_str()) {
        (Timing::After, _) => "NULL",
        (_, "DELETE") => "OLD",
        _ => "NEW",
    };
    let body = match when {
        Some(w) => format!("IF {w} THEN\n{body}END IF;\n"),
        None => body,
    };
    if body.contains("$ferry$") {
        return Err("its text holds the quoting mark ferry uses".into());
    }
    let function = names.generated(&format!("{}_fn", def.name));
    let trigger = names.generated(&def.name);
    let event = match def.event.as_str() {
        "UPDATE" if !def.columns.is_empty() => {
            let cols: Result<Vec<String>, String> = def
                .columns
                .iter()
                .map(|c| {
                    info.column(c)
                        .map(|c| quote(&c.target))
                        .ok_or_else(|| format!("UPDATE OF {c}: no such column"))
                })
                .collect();
            format!("UPDATE OF {}", cols?.join(", "))
        }
        e @ ("INSERT" | "UPDATE" | "DELETE") => e.to_owned(),
        other => return Err(format!("a trigger on {other}")),
    };
    let timing = if timing == Timing::After {
        "AFTER"
    } else {
        "BEFORE"
    };
    Ok(vec![
        format!(
            // The body names tables as SQLite did, unqualified: the function finds them in
            // its own schema whoever calls it.
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, {} AS $ferry$\nBEGIN\n{body}RETURN {ret};\nEND\n$ferry$",
            qualified(schema, &function),
            quote(schema)
        ),
        format!(
            "CREATE TRIGGER {} {timing} {event} ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
            quote(&trigger),
            qualified(schema, &table.target),
            qualified(schema, &function)
        ),
    ])
}

/// A body of `SELECT RAISE(…) [FROM …] WHERE cond;` statements (or `SELECT CASE WHEN cond
/// THEN RAISE(…) END`): one `IF cond THEN RAISE EXCEPTION … END IF;` each.
fn validation_body(
    statements: &[Statement],
    cat: &Catalog,
    info: &TableInfo,
    timing: Timing,
) -> Result<Option<String>, String> {
    let mut out = String::new();
    for st in statements {
        let Statement::Select(s) = st else {
            return Ok(None);
        };
        let Some((raise, when, message)) = raise_of(s) else {
            return Ok(None);
        };
        let mut em = Emitter::for_trigger(cat, info, false);
        let mut conds = Vec::new();
        if let Some(w) = when {
            conds.push(em.condition(w)?);
        }
        match &s.first.from {
            // Rows of other tables: whether any row matches.
            Some(_) => {
                let probe = Select {
                    with: s.with.clone(),
                    recursive: s.recursive,
                    first: SelectCore {
                        columns: vec![ResultColumn::Expr {
                            e: Expr::Int("1".into()),
                            alias: None,
                            tokens: (0, 0),
                        }],
                        ..s.first.clone()
                    },
                    compounds: Vec::new(),
                    order_by: Vec::new(),
                    limit: None,
                    offset: None,
                };
                let (sub, _) = em.select(&probe)?;
                conds.push(format!("EXISTS ({sub})"));
            }
            None => {
                if let Some(w) = &s.first.filter {
                    conds.push(em.condition(w)?);
                }
            }
        }
        let cond = if conds.is_empty() {
            "TRUE".to_owned()
        } else {
            conds.join(" AND ")
        };
        let action = match raise {
            RaiseKind::Ignore if timing == Timing::Before => "RETURN NULL;".to_owned(),
            RaiseKind::Ignore => {
                return Err("RAISE(IGNORE) in an AFTER trigger is not translated".into())
            }
            _ => format!(
                "RAISE EXCEPTION USING MESSAGE = {}, ERRCODE = 'check_violation';",
                literal(message.unwrap_or("raised by a trigger"))
            ),
        };
        out.push_str(&format!("IF {cond} THEN\n  {action}\nEND IF;\n"));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The RAISE a validation statement makes, the condition inside a CASE around it, and
/// its message.
fn raise_of(s: &Select) -> Option<(RaiseKind, Option<&Expr>, Option<&str>)> {
    if !s.compounds.is_empty() || s.first.columns.len() != 1 || !s.first.group_by.is_empty() {
        return None;
    }
    let ResultColumn::Expr { e, .. } = &s.first.columns[0] else {
        return None;
    };
    match e {
        Expr::Raise { kind, message } => Some((*kind, None, message.as_deref())),
        Expr::Case {
            operand: None,
            whens,
            otherwise: None,
        } if whens.len() == 1 => match &whens[0].1 {
            Expr::Raise { kind, message } => Some((*kind, Some(&whens[0].0), message.as_deref())),
            _ => None,
        },
        _ => None,
    }
}

/// `UPDATE t SET col = expr, … WHERE rowid = NEW.rowid` in an AFTER INSERT or UPDATE
/// trigger of `t`: `NEW.col := expr;` in a BEFORE trigger, which leaves the row the same.
fn touch_body(
    statements: &[Statement],
    def: &sql::TriggerDef,
    cat: &Catalog,
    info: &TableInfo,
) -> Result<Option<String>, String> {
    let [Statement::Update {
        table,
        sets,
        filter: Some(filter),
    }] = statements
    else {
        return Ok(None);
    };
    if !table.eq_ignore_ascii_case(&def.table)
        || def.timing != Timing::After
        || !matches!(def.event.as_str(), "INSERT" | "UPDATE")
        || !is_same_row(filter, info)
    {
        return Ok(None);
    }
    let mut out = String::new();
    for (col, e) in sets {
        let c = info
            .column(col)
            .ok_or_else(|| format!("SET {col}: no such column"))?;
        let mut em = Emitter::for_trigger(cat, info, true);
        let v = em.expr(e)?;
        let value = assign(&mut em, e, v, c)?;
        out.push_str(&format!("NEW.{} := {value};\n", quote(&c.target)));
    }
    Ok(Some(out))
}

/// Whether a WHERE picks exactly the row the trigger fired for.
fn is_same_row(filter: &Expr, info: &TableInfo) -> bool {
    let Expr::Binary(ast::BinOp::Eq, l, r) = filter else {
        return false;
    };
    let key = |e: &Expr, new: bool| match e {
        Expr::Column { table, name } => {
            let is_new = table
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("new"));
            if is_new != new {
                return None;
            }
            let rowid = ["rowid", "oid", "_rowid_"]
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name));
            match (rowid, &info.rowid) {
                (true, Some(t)) => Some(t.clone()),
                // The rowid names exactly one row even without an INTEGER PRIMARY KEY: the
                // row the trigger fired for, whose columns NEW assigns.
                (true, None) => Some("rowid".to_owned()),
                (false, Some(t)) => info
                    .column(name)
                    .filter(|c| &c.target == t)
                    .map(|c| c.target.clone()),
                (false, None) => None,
            }
        }
        _ => None,
    };
    match (key(l, false), key(r, true)) {
        (Some(a), Some(b)) => a == b,
        _ => matches!((key(l, true), key(r, false)), (Some(a), Some(b)) if a == b),
    }
}

/// A value assigned to a column, in the column's type.
fn assign(
    em: &mut Emitter<'_>,
    e: &Expr,
    v: sql::emit::Out,
    c: &ColInfo,
) -> Result<String, String> {
    Ok(match (c.ty, v.ty) {
        (a, b) if a == b => v.sql,
        (_, Ty::Null) => "NULL".into(),
        (Ty::Bool, t) if t.is_number() => format!("(({}) <> 0)", v.sql),
        (Ty::Int | Ty::Numeric | Ty::Float, Ty::Bool) => format!("({})::integer", v.sql),
        (Ty::Int | Ty::Numeric | Ty::Float, t) if t.is_number() => v.sql,
        (Ty::Text, _) => {
            let o = em.value(e)?;
            match o.ty {
                Ty::Text | Ty::TextLit => o.sql,
                Ty::Int | Ty::Numeric => format!("({})::text", o.sql),
                other => return Err(format!("a text column set to a {other:?} value")),
            }
        }
        (Ty::Timestamp | Ty::Timestamptz | Ty::Date, Ty::Text | Ty::TextLit) => {
            let ty = match c.ty {
                Ty::Timestamp => "timestamp",
                Ty::Timestamptz => "timestamptz",
                _ => "date",
            };
            // SQLite's clock text is UTC; a timestamptz reads text without an offset in the
            // session's zone, so the offset is written out.
            if c.ty == Ty::Timestamptz {
                format!("(({}) || 'Z')::timestamptz", v.sql)
            } else {
                format!("({})::{ty}", v.sql)
            }
        }
        (Ty::Mixed, Ty::Text | Ty::TextLit) => format!("to_jsonb(({})::text)", v.sql),
        (Ty::Mixed, Ty::Int) => format!("to_jsonb({})", v.sql),
        (want, got) => {
            return Err(format!(
                "a {want:?} column set to a {got:?} value keeps no exact meaning"
            ))
        }
    })
}
