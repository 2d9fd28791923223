//! Building a [`TransferPlan`]: derived (types from the profile) or managed (types from the
//! existing PostgreSQL tables, matched by name).

use std::collections::HashMap;
use std::path::Path;

use ferry_core::plan::{
    ColumnPlan, PlanMode, Rename, TableKind, TablePlan, TargetType, TransferPlan,
};
use ferry_core::value::affinity;

use crate::cell::Cell;
use crate::error::{Result, TransferError};
use crate::ident::NameAllocator;
use crate::profile::{self, ColumnStats};
use crate::schema::{SourceSchema, SourceTable};
use crate::sqlite::SqliteSource;
use crate::{bookkeeping, typemap, TransferOptions};

/// A source schema with every table profiled.
#[derive(Debug, Clone)]
pub struct Profiled {
    pub schema: SourceSchema,
    /// Per table (same order as `schema.tables`): column stats and row count.
    pub stats: Vec<(Vec<ColumnStats>, u64)>,
}

/// Rowids per profiling unit: big tables are profiled in parallel pieces.
const PROFILE_UNIT: i128 = 60_000;

/// Reads and profiles a SQLite file on `workers` blocking threads, big tables in rowid
/// ranges so that one large table does not profile on a single core.
pub fn profile_file(path: &Path, workers: usize) -> Result<Profiled> {
    let schema = SourceSchema::read(path)?;
    let db = SqliteSource::open(path)?;
    let mut units: Vec<(usize, Option<(i64, i64)>)> = Vec::new();
    for (i, table) in schema.tables.iter().enumerate() {
        let bounds = match profile::rowid_name(table) {
            Some(rowid) => {
                let sql = format!(
                    "SELECT min({rowid}), max({rowid}) FROM {}",
                    crate::ident::quote_sqlite(&table.name)
                );
                let mut b = None;
                db.for_each_row(
                    &format!("reading the rowids of table {:?}", table.name),
                    &sql,
                    &[],
                    |row| {
                        if let (Cell::Integer(lo), Cell::Integer(hi)) = (row.cell(0), row.cell(1)) {
                            b = Some((i128::from(lo), i128::from(hi)));
                        }
                        false
                    },
                )?;
                b
            }
            None => None,
        };
        match bounds {
            Some((lo, hi)) if hi - lo + 1 > 2 * PROFILE_UNIT => {
                // Pieces cover the whole rowid space, so no row is left out.
                let n = ((hi - lo + 1) / PROFILE_UNIT).clamp(2, 64);
                let width = (hi - lo + 1) / n;
                let mut start = i128::from(i64::MIN);
                for k in 1..n {
                    let end = lo + width * k - 1;
                    units.push((i, Some((start as i64, end as i64))));
                    start = end + 1;
                }
                units.push((i, Some((start as i64, i64::MAX))));
            }
            _ => units.push((i, None)),
        }
    }
    drop(db);
    let next = std::sync::atomic::AtomicUsize::new(0);
    type Slot = std::sync::Mutex<Option<(Vec<ColumnStats>, u64)>>;
    // One slot per unit, merged in unit order afterwards so the plan is deterministic.
    let results: Vec<Slot> = units.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let failure: std::sync::Mutex<Option<TransferError>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, units.len().max(1)) {
            scope.spawn(|| {
                let run = || -> Result<()> {
                    let db = SqliteSource::open(path)?;
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(i, range)) = units.get(k) else {
                            return Ok(());
                        };
                        if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                            return Ok(());
                        }
                        let res = profile::profile_table(&db, &schema.tables[i], range)?;
                        *results[k].lock().unwrap_or_else(|p| p.into_inner()) = Some(res);
                    }
                };
                if let Err(e) = run() {
                    failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut merged: Vec<Option<(Vec<ColumnStats>, u64)>> =
        schema.tables.iter().map(|_| None).collect();
    for (slot, (i, _)) in results.into_iter().zip(&units) {
        let Some((part, rows)) = slot.into_inner().unwrap_or_else(|p| p.into_inner()) else {
            return Err(TransferError::Source {
                path: path.to_owned(),
                context: format!("profiling table {:?}", schema.tables[*i].name),
                message: "the profiling thread stopped early".into(),
            });
        };
        match merged[*i].as_mut() {
            Some((all, n)) => {
                for (a, p) in all.iter_mut().zip(&part) {
                    a.merge(p);
                }
                *n += rows;
            }
            None => merged[*i] = Some((part, rows)),
        }
    }
    let stats = merged.into_iter().map(Option::unwrap_or_default).collect();
    Ok(Profiled { schema, stats })
}

/// Target names for tables and columns: kept when they fit, shortened with a hash suffix
/// otherwise; every change listed.
fn allocate_names<'a>(
    names: impl Iterator<Item = &'a str> + Clone,
    reserved: &[&str],
) -> (Vec<String>, Vec<(String, String)>) {
    let mut alloc = NameAllocator::new();
    for r in reserved {
        alloc.reserve(r);
    }
    // Names that fit are taken first, so a shortened name never displaces an exact one.
    let mut out: Vec<Option<String>> = names
        .clone()
        .map(|n| {
            (!n.is_empty() && n.len() <= crate::ident::MAX_IDENTIFIER_BYTES && !alloc.is_taken(n))
                .then(|| {
                    alloc.reserve(n);
                    n.to_owned()
                })
        })
        .collect();
    let mut renames = Vec::new();
    for (slot, name) in out.iter_mut().zip(names) {
        if slot.is_none() {
            let to = alloc.allocate(name);
            renames.push((name.to_owned(), to.clone()));
            *slot = Some(to);
        }
    }
    (
        out.into_iter().map(Option::unwrap_or_default).collect(),
        renames,
    )
}

/// The derived plan of a profiled file.
pub fn derive(
    path: &Path,
    profiled: &Profiled,
    target_schema: &str,
    opts: &TransferOptions,
) -> TransferPlan {
    let schema = &profiled.schema;
    let mut plan = TransferPlan {
        source: path.display().to_string(),
        target_schema: target_schema.to_owned(),
        mode: PlanMode::Derived,
        ..Default::default()
    };
    plan.warnings.extend(schema.notes.iter().cloned());
    let (table_names, renamed) = allocate_names(
        schema.tables.iter().map(|t| t.name.as_str()),
        bookkeeping::TABLES,
    );
    for (from, to) in renamed {
        plan.renames.push(Rename {
            kind: "table".into(),
            table: String::new(),
            from,
            to,
        });
    }
    // Each column's own type first, then one type per group of columns joined by foreign keys.
    let mut chosen: Vec<Vec<(TargetType, String)>> = schema
        .tables
        .iter()
        .zip(&profiled.stats)
        .map(|(table, (stats, _))| {
            table
                .columns
                .iter()
                .zip(stats)
                .map(|(col, stat)| {
                    if col.synthetic_rowid {
                        (
                            TargetType::Bigint,
                            "the full-text table's rowid, its key".to_owned(),
                        )
                    } else {
                        typemap::choose(&col.declared, stat, opts.invalid_text, opts.mixed)
                    }
                })
                .collect()
        })
        .collect();
    crate::unify::foreign_keys(
        schema,
        &profiled.stats,
        &mut chosen,
        opts.invalid_text,
        opts.mixed,
    );
    for (((table, (stats, rows)), target), chosen) in schema
        .tables
        .iter()
        .zip(&profiled.stats)
        .zip(table_names)
        .zip(chosen)
    {
        let (col_names, renamed) =
            allocate_names(table.columns.iter().map(|c| c.name.as_str()), &[]);
        for (from, to) in renamed {
            plan.renames.push(Rename {
                kind: "column".into(),
                table: table.name.clone(),
                from,
                to,
            });
        }
        let mut columns = Vec::new();
        for (((col, stat), target_col), (target_type, mut reason)) in
            table.columns.iter().zip(stats).zip(col_names).zip(chosen)
        {
            let generated = table
                .generated
                .iter()
                .find(|g| g.column == col.name)
                .map(|g| g.text.clone());
            if generated.is_some() {
                reason.push_str(
                    "; a generated column in SQLite: PostgreSQL computes it from the translated expression (or, when that is refused, holds the copied values and the expression is reported)",
                );
            }
            if target_type == TargetType::Text && stat.invalid_texts() > 0 {
                plan.warnings.push(format!(
                    "table {:?} column {:?}: {} TEXT values hold invalid UTF-8 or NUL; their rows will be rejected (transfer.invalid_text = bytea keeps them as bytea)",
                    table.name,
                    col.name,
                    stat.invalid_texts()
                ));
            }
            let is_rowid_alias = table.rowid_alias.as_deref() == Some(col.name.as_str());
            columns.push(ColumnPlan {
                source: col.name.clone(),
                target: target_col,
                declared_type: col.declared.clone(),
                affinity: affinity(&col.declared),
                target_type,
                not_null: col.not_null || is_rowid_alias || col.synthetic_rowid,
                profile: stat.finished_profile(),
                reason,
                generated,
            });
        }
        plan.tables.push(TablePlan {
            source: table.name.clone(),
            target,
            kind: table.kind,
            primary_key: table.primary_key.clone(),
            columns,
            source_rows: *rows,
        });
    }
    plan
}

/// One column of a PostgreSQL table, from the catalog.
#[derive(Debug, Clone)]
pub struct TargetColumn {
    pub name: String,
    /// `format_type()`, e.g. `character varying(20)`.
    pub formatted: String,
    /// `pg_type.typname`, e.g. `varchar`, `_float4`.
    pub typname: String,
    pub not_null: bool,
    pub has_default: bool,
    pub generated: bool,
}

/// The managed plan: every source table and column matched by name to the existing target.
pub fn managed(
    path: &Path,
    profiled: &Profiled,
    target_schema: &str,
    target: &HashMap<String, Vec<TargetColumn>>,
) -> Result<TransferPlan> {
    let mut plan = TransferPlan {
        source: path.display().to_string(),
        target_schema: target_schema.to_owned(),
        mode: PlanMode::Managed,
        ..Default::default()
    };
    plan.warnings.extend(profiled.schema.notes.iter().cloned());
    let mut problems = Vec::new();
    for (table, (stats, rows)) in profiled.schema.tables.iter().zip(&profiled.stats) {
        let Some(target_name) = find_name(target.keys().map(String::as_str), &table.name) else {
            problems.push(format!(
                "table {:?} has no table of that name in the target",
                table.name
            ));
            continue;
        };
        if table.kind == TableKind::FullText {
            problems.push(format!(
                "table {:?} is a full-text table; managed mode copies ordinary tables only",
                table.name
            ));
            continue;
        }
        let target_cols = &target[&target_name];
        match managed_table(table, stats, *rows, &target_name, target_cols) {
            Ok(t) => plan.tables.push(t),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if !problems.is_empty() {
        return Err(TransferError::Mismatch {
            path: path.to_owned(),
            schema: target_schema.to_owned(),
            problems,
        });
    }
    Ok(plan)
}

fn find_name<'a>(names: impl Iterator<Item = &'a str> + Clone, wanted: &str) -> Option<String> {
    if let Some(exact) = names.clone().find(|n| *n == wanted) {
        return Some(exact.to_owned());
    }
    let folded: Vec<&str> = names
        .clone()
        .filter(|n| n.eq_ignore_ascii_case(wanted))
        .collect();
    match folded.as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    }
}

fn managed_table(
    table: &SourceTable,
    stats: &[ColumnStats],
    rows: u64,
    target_name: &str,
    target_cols: &[TargetColumn],
) -> Result<TablePlan, Vec<String>> {
    let mut problems = Vec::new();
    let mut columns = Vec::new();
    let mut used = Vec::new();
    for (col, stat) in table.columns.iter().zip(stats) {
        let Some(tname) = find_name(target_cols.iter().map(|c| c.name.as_str()), &col.name) else {
            problems.push(format!(
                "column {:?}.{:?} has no column of that name in the target",
                table.name, col.name
            ));
            continue;
        };
        let Some(tcol) = target_cols.iter().find(|c| c.name == tname) else {
            continue;
        };
        used.push(tname.clone());
        if tcol.generated {
            problems.push(format!(
                "column {:?}.{:?} is a generated column in the target and cannot be written",
                table.name, col.name
            ));
            continue;
        }
        let Some(target_type) = managed_type(&tcol.typname) else {
            problems.push(format!(
                "column {:?}.{:?} has target type {}, which ferry does not convert into",
                table.name, col.name, tcol.formatted
            ));
            continue;
        };
        let reason = format!(
            "managed: the target column is {}; {}",
            tcol.formatted,
            managed_rule(&target_type)
        );
        columns.push(ColumnPlan {
            source: col.name.clone(),
            target: tname,
            declared_type: col.declared.clone(),
            affinity: affinity(&col.declared),
            target_type,
            not_null: tcol.not_null,
            profile: stat.finished_profile(),
            reason,
            generated: None,
        });
    }
    for tcol in target_cols {
        if !used.contains(&tcol.name) && tcol.not_null && !tcol.has_default && !tcol.generated {
            problems.push(format!(
                "target column {:?}.{:?} is NOT NULL without a default and has no source column",
                target_name, tcol.name
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(TablePlan {
        source: table.name.clone(),
        target: target_name.to_owned(),
        kind: table.kind,
        primary_key: table.primary_key.clone(),
        columns,
        source_rows: rows,
    })
}

fn managed_type(typname: &str) -> Option<TargetType> {
    Some(match typname {
        "bool" => TargetType::Boolean,
        "int2" => TargetType::Smallint,
        "int4" => TargetType::Integer,
        "int8" => TargetType::Bigint,
        "float8" => TargetType::DoublePrecision,
        "numeric" => TargetType::Numeric,
        // varchar(n) and char(n) take text; a value too long for them is refused by
        // PostgreSQL and its row rejected with PostgreSQL's reason.
        "text" | "varchar" | "bpchar" => TargetType::Text,
        "bytea" => TargetType::Bytea,
        "date" => TargetType::Date,
        "timestamp" => TargetType::Timestamp,
        "timestamptz" => TargetType::Timestamptz,
        "json" => TargetType::Json,
        "jsonb" => TargetType::Jsonb,
        "uuid" => TargetType::Uuid,
        "_float4" => TargetType::RealArray,
        _ => return None,
    })
}

fn managed_rule(t: &TargetType) -> &'static str {
    match t {
        TargetType::Boolean => "INTEGER 0/1 only",
        TargetType::Smallint | TargetType::Integer | TargetType::Bigint => {
            "INTEGER values in range only"
        }
        TargetType::DoublePrecision => "REAL bit for bit, INTEGER when exactly representable",
        TargetType::Numeric => "INTEGER, REAL (shortest round-trip decimal) and decimal TEXT",
        TargetType::Text => {
            "TEXT byte for byte (valid UTF-8, no NUL); INTEGER/REAL as their exact decimal"
        }
        TargetType::Bytea => "BLOB and TEXT bytes",
        TargetType::Date => "TEXT ISO-8601 dates",
        TargetType::Timestamp => "TEXT ISO-8601 timestamps without offset",
        TargetType::Timestamptz => {
            "TEXT ISO-8601 timestamps; without offset read in the configured naive offset"
        }
        TargetType::Json => "TEXT holding JSON",
        TargetType::Jsonb => "TEXT holding JSON (no duplicate keys, no \\u0000)",
        TargetType::Uuid => "TEXT UUIDs, 16-byte BLOBs",
        TargetType::RealArray => "BLOB of little-endian f32",
        TargetType::MixedJsonb => "one jsonb scalar per value",
    }
}
