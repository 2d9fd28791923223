//! Which SQLite table and column is compared with which PostgreSQL table and column, and in
//! which domain: from the transfer plan when there is one, else by name.

use std::sync::Arc;

use ferry_core::plan::TransferPlan;
use sqlx::postgres::PgConnection;

use crate::canon::{Ctx, Domain};
use crate::error::ValidateError;
use crate::pg::{self, PgColumn};
use crate::report::{ColumnReport, TableReport, Verdict};
use crate::spec::{plan_domain, ColSpec, TableSpec};
use crate::sqlite::SqliteTable;
use crate::ValidateOptions;

/// One table to report on, with what is needed to compare it (when it can be).
#[derive(Debug)]
pub(crate) struct Pair {
    pub report: TableReport,
    pub spec: Option<Arc<TableSpec>>,
    pub source: Option<SqliteTable>,
    pub target_columns: Vec<PgColumn>,
    /// Source column name → target column name, for every matched column.
    pub column_map: Vec<(String, String)>,
}

impl Pair {
    pub fn target_column(&self, source: &str) -> Option<&str> {
        self.column_map
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, t)| t.as_str())
    }
}

fn is_ferry_table(name: &str) -> bool {
    name.len() >= 6 && name[..6].eq_ignore_ascii_case("ferry_")
}

/// Exactly, else the one name equal ignoring ASCII case, else the one name a transfer
/// gives `want` when it does not fit PostgreSQL's 63 bytes (its prefix and a digest).
fn find<'a>(names: impl Iterator<Item = &'a str> + Clone, want: &str) -> Option<&'a str> {
    fn only<'a>(mut it: impl Iterator<Item = &'a str>) -> Option<&'a str> {
        match (it.next(), it.next()) {
            (Some(n), None) => Some(n),
            _ => None,
        }
    }
    names
        .clone()
        .find(|n| *n == want)
        .or_else(|| only(names.clone().filter(|n| n.eq_ignore_ascii_case(want))))
        .or_else(|| only(names.filter(|n| ferry_core::sql::is_allocated_from(want, n))))
}

pub(crate) async fn pair_tables(
    conn: &mut PgConnection,
    schema: &str,
    lite_tables: Vec<SqliteTable>,
    pg_tables: Vec<String>,
    plan: Option<&TransferPlan>,
    opts: &ValidateOptions,
) -> Result<Vec<Pair>, ValidateError> {
    for t in &opts.tables {
        if !lite_tables.iter().any(|l| &l.name == t) {
            return Err(ValidateError::UnknownTable { table: t.clone() });
        }
    }
    let wanted = |name: &str| {
        if !opts.tables.is_empty() {
            return opts.tables.iter().any(|t| t == name);
        }
        !opts.exclude.iter().any(|t| t == name)
            && (opts.include_ferry_tables || !is_ferry_table(name))
    };
    let ctx = Ctx {
        naive_offset_secs: opts.timestamps.naive_offset_seconds(),
    };
    let mut used_targets: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for src in lite_tables.into_iter().filter(|t| wanted(&t.name)) {
        let (target, mut notes) = match plan {
            Some(plan) => match plan.table(&src.name) {
                Some(tp) => (
                    pg_tables.iter().find(|t| **t == tp.target).cloned(),
                    Vec::new(),
                ),
                None => (None, vec!["not in the transfer plan".to_owned()]),
            },
            None => (
                find(pg_tables.iter().map(String::as_str), &src.name).map(str::to_owned),
                Vec::new(),
            ),
        };
        let Some(target) = target else {
            let mut report = TableReport::new(&src.name, None, Verdict::MissingOnTarget);
            report.notes.append(&mut notes);
            out.push(Pair {
                report,
                spec: None,
                source: Some(src),
                target_columns: Vec::new(),
                column_map: Vec::new(),
            });
            continue;
        };
        used_targets.push(target.clone());
        let target_columns = pg::columns(conn, schema, &target).await?;
        out.push(pair_columns(
            src,
            &target,
            schema,
            target_columns,
            plan,
            ctx,
            notes,
        ));
    }
    if opts.tables.is_empty() {
        for t in pg_tables
            .iter()
            .filter(|t| !used_targets.contains(t) && wanted(t))
        {
            let in_plan_elsewhere = plan.is_some_and(|p| p.tables.iter().any(|tp| &tp.target == t));
            if in_plan_elsewhere {
                continue;
            }
            let report = TableReport::new("", Some(t), Verdict::ExtraOnTarget);
            out.push(Pair {
                report,
                spec: None,
                source: None,
                target_columns: Vec::new(),
                column_map: Vec::new(),
            });
        }
    }
    Ok(out)
}

fn pair_columns(
    src: SqliteTable,
    target: &str,
    schema: &str,
    target_columns: Vec<PgColumn>,
    plan: Option<&TransferPlan>,
    ctx: Ctx,
    notes: Vec<String>,
) -> Pair {
    let mut report = TableReport::new(&src.name, Some(target), Verdict::Equal);
    report.notes = notes;
    let table_plan = plan.and_then(|p| p.table(&src.name));
    // (source column, target column, plan's type if any)
    let mut matched: Vec<(
        &crate::sqlite::SqliteColumn,
        &PgColumn,
        Option<&ferry_core::plan::TargetType>,
    )> = Vec::new();
    for col in &src.columns {
        let found = match table_plan {
            Some(tp) => match tp.columns.iter().find(|c| c.source == col.name) {
                Some(cp) => target_columns
                    .iter()
                    .find(|t| t.name == cp.target)
                    .map(|t| (t, Some(&cp.target_type))),
                None => {
                    report
                        .notes
                        .push(format!("column {} is not in the transfer plan", col.name));
                    None
                }
            },
            None => find(target_columns.iter().map(|t| t.name.as_str()), &col.name)
                .and_then(|n| target_columns.iter().find(|t| t.name == n))
                .map(|t| (t, None)),
        };
        match found {
            Some((t, ty)) => matched.push((col, t, ty)),
            None => report.missing_columns.push(col.name.clone()),
        }
    }
    report.extra_columns = target_columns
        .iter()
        .filter(|t| !matched.iter().any(|(_, m, _)| m.name == t.name))
        .map(|t| t.name.clone())
        .collect();
    let key_names: Vec<String> = match table_plan {
        Some(tp) => tp.primary_key.clone(),
        None => src.primary_key(),
    };
    let key_matched = key_names
        .iter()
        .all(|k| matched.iter().any(|(s, _, _)| &s.name == k));
    let key_names = if key_matched {
        key_names
    } else {
        report.notes.push(
            "a primary key column has no target column: rows are compared as a multiset".into(),
        );
        Vec::new()
    };
    let mut cols: Vec<ColSpec> = Vec::with_capacity(matched.len());
    for (s, t, ty) in &matched {
        let domain = match ty {
            Some(ty) => plan_domain(ty, t.kind).unwrap_or_else(|| {
                report.notes.push(format!(
                    "column {}: the plan says {} but the target column is {}; compared as the target type",
                    s.name,
                    ty.sql(),
                    t.shown
                ));
                t.default_domain()
            }),
            None => t.default_domain(),
        };
        cols.push(ColSpec {
            source: s.name.clone(),
            target: t.name.clone(),
            domain,
            pg: t.kind,
            pg_type: t.shown.clone(),
            declared: s.declared.clone(),
            affinity: s.affinity,
        });
    }
    // Key columns first, in key order; then the rest in source order.
    let mut ordered: Vec<ColSpec> = key_names
        .iter()
        .filter_map(|k| cols.iter().find(|c| &c.source == k).cloned())
        .collect();
    ordered.extend(
        cols.iter()
            .filter(|c| !key_names.contains(&c.source))
            .cloned(),
    );
    report.key_columns = key_names.clone();
    report.columns = cols
        .iter()
        .map(|c| ColumnReport {
            source: c.source.clone(),
            source_type: c.declared.clone(),
            target: c.target.clone(),
            target_type: c.pg_type.clone(),
            compared_as: c.domain,
        })
        .collect();
    let column_map = cols
        .iter()
        .map(|c| (c.source.clone(), c.target.clone()))
        .collect();
    let unsupported: Vec<String> = cols
        .iter()
        .filter(|c| c.domain == Domain::Unsupported)
        .map(|c| format!("{} ({})", c.target, c.pg_type))
        .collect();
    let spec = if unsupported.is_empty() {
        Some(Arc::new(TableSpec {
            source: src.name.clone(),
            target: target.to_owned(),
            schema: schema.to_owned(),
            cols: ordered,
            n_key: key_names.len(),
            ctx,
        }))
    } else {
        report.verdict = Verdict::Error;
        report.error = Some(format!(
            "cannot compare columns of types ferry does not read: {}",
            unsupported.join(", ")
        ));
        None
    };
    Pair {
        report,
        spec,
        source: Some(src),
        target_columns,
        column_map,
    }
}
