//! Constraint checks: SQLite's own foreign key check; in PostgreSQL, orphan rows for every
//! foreign key, `VALIDATE CONSTRAINT` for those marked `NOT VALID`, and sequences ahead of
//! their column; and every NOT NULL, PRIMARY KEY, UNIQUE, FOREIGN KEY and CHECK of the
//! source present on the target (a CHECK by the comment a derived transfer puts on it, or
//! acknowledged by a person as not carried over).

use std::collections::BTreeMap;

use ferry_core::plan::check_comment;
use rusqlite::Connection;
use sqlx::postgres::PgConnection;

use crate::error::ValidateError;
use crate::pairing::Pair;
use crate::report::{ConstraintFinding, ConstraintKind, ConstraintReport};
use crate::spec::quote_ident;
use crate::sqlite::SqliteDb;

/// A source table's declared constraints.
#[derive(Debug, Default)]
struct SourceConstraints {
    uniques: Vec<(Vec<String>, bool)>,
    /// (from columns, parent table, parent columns — empty for the parent's primary key)
    foreign_keys: Vec<(Vec<String>, String, Vec<String>)>,
    /// The text of each CHECK, as `ferry_core::sqlite_text::render` writes it.
    checks: Vec<String>,
}

#[derive(Debug)]
struct TargetIndex {
    table: String,
    primary: bool,
    partial: bool,
    columns: Vec<String>,
}

#[derive(Debug)]
struct TargetForeignKey {
    name: String,
    table: String,
    parent_schema: String,
    parent: String,
    validated: bool,
    columns: Vec<String>,
    parent_columns: Vec<String>,
}

#[derive(Debug)]
struct TargetCheck {
    table: String,
    validated: bool,
    comment: Option<String>,
}

/// What the constraint checks look at.
#[derive(Debug)]
pub(crate) struct Scope<'a> {
    pub schema: &'a str,
    pub pairs: &'a [Pair],
    /// Run `VALIDATE CONSTRAINT` on `NOT VALID` foreign keys without orphans.
    pub validate_not_valid: bool,
    /// Look up each source CHECK: `Some(true)` for a derived schema, `Some(false)` for a
    /// managed one (whose CHECKs its migrations write by hand), `None` when no plan says:
    /// then only if the schema holds CHECKs a derived transfer carried over.
    pub checks: Option<bool>,
    /// `(kind, source table, SQLite text)` a person acknowledged as not carried over.
    pub acknowledged: &'a [(String, String, String)],
}

/// The target's side of the constraints.
#[derive(Debug)]
struct Target {
    indexes: Vec<TargetIndex>,
    foreign_keys: Vec<TargetForeignKey>,
    checks: Vec<TargetCheck>,
}

pub(crate) async fn check(
    lite: &SqliteDb,
    conn: &mut PgConnection,
    scope: Scope<'_>,
) -> Result<ConstraintReport, ValidateError> {
    let mut report = ConstraintReport {
        checked: true,
        ..ConstraintReport::default()
    };
    let compared: Vec<&Pair> = scope
        .pairs
        .iter()
        .filter(|p| p.source.is_some() && p.report.target.is_some())
        .collect();
    let names: Vec<(String, bool)> = compared
        .iter()
        .filter_map(|p| p.source.as_ref().map(|s| (s.name.clone(), s.is_virtual)))
        .collect();
    let (fk_check, declared) = lite
        .run("checking constraints", move |c| {
            let fk = foreign_key_check(c)?;
            let mut declared = BTreeMap::new();
            for (name, is_virtual) in &names {
                if !is_virtual {
                    declared.insert(name.clone(), source_constraints(c, name)?);
                }
            }
            Ok((fk, declared))
        })
        .await?;
    for ((table, parent), (n, rowids)) in fk_check {
        if !compared.iter().any(|p| p.report.source == table) {
            continue;
        }
        report.findings.push(ConstraintFinding {
            kind: ConstraintKind::SqliteForeignKey,
            table: table.clone(),
            detail: format!(
                "{n} rows reference a missing row of {parent} (rowids {})",
                rowids.join(", ")
            ),
            count: n,
        });
    }
    let target = Target {
        indexes: target_indexes(conn, scope.schema).await?,
        foreign_keys: target_foreign_keys(conn, scope.schema).await?,
        checks: target_checks(conn, scope.schema).await?,
    };
    let look_up_checks = match scope.checks {
        Some(yes) => yes,
        None => target.checks.iter().any(|c| {
            c.comment
                .as_deref()
                .is_some_and(ferry_core::plan::is_check_comment)
        }),
    };
    if !look_up_checks {
        report.notes.push(
            "CHECK constraints were not looked up: the target schema was not derived by a ferry transfer (its CHECKs come from its own migrations)".into(),
        );
    }
    for pair in &compared {
        if let Some(decl) = pair.source.as_ref().and_then(|s| declared.get(&s.name)) {
            source_present(&scope, &target, pair, decl, look_up_checks, &mut report);
        }
    }
    let targets: Vec<&str> = compared
        .iter()
        .filter_map(|p| p.report.target.as_deref())
        .collect();
    target_foreign_keys_hold(conn, &scope, &target, &targets, &mut report).await?;
    sequences_ahead(conn, scope.schema, &targets, &mut report).await?;
    Ok(report)
}

fn finding(table: &str, kind: ConstraintKind, detail: String) -> ConstraintFinding {
    ConstraintFinding {
        kind,
        table: table.to_owned(),
        detail,
        count: 0,
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// Every declared constraint of one source table, looked up on its target table.
fn source_present(
    scope: &Scope<'_>,
    target: &Target,
    pair: &Pair,
    decl: &SourceConstraints,
    look_up_checks: bool,
    report: &mut ConstraintReport,
) {
    not_nulls(pair, report);
    primary_key(target, pair, report);
    uniques(target, pair, decl, report);
    foreign_keys(scope, target, pair, decl, report);
    if look_up_checks {
        checks(scope, target, pair, decl, report);
    }
}

fn map_columns(pair: &Pair, cols: &[String]) -> Option<Vec<String>> {
    cols.iter()
        .map(|c| pair.target_column(c).map(str::to_owned))
        .collect()
}

fn not_nulls(pair: &Pair, report: &mut ConstraintReport) {
    let Some(src) = &pair.source else { return };
    for col in src.columns.iter().filter(|c| c.not_null) {
        report.source_constraints += 1;
        let Some(t) = pair.target_column(&col.name) else {
            continue;
        };
        if !pair
            .target_columns
            .iter()
            .any(|tc| tc.name == t && tc.not_null)
        {
            report.findings.push(finding(
                &src.name,
                ConstraintKind::MissingNotNull,
                format!(
                    "{} is NOT NULL in SQLite but nullable in PostgreSQL",
                    col.name
                ),
            ));
        }
    }
}

fn primary_key(target: &Target, pair: &Pair, report: &mut ConstraintReport) {
    let (Some(src), Some(table)) = (&pair.source, &pair.report.target) else {
        return;
    };
    let pk = src.primary_key();
    if pk.is_empty() {
        return;
    }
    report.source_constraints += 1;
    // A primary key of a rowid table that is not its rowid lets NULLs in unless its columns
    // are declared NOT NULL: it is a UNIQUE constraint, and PostgreSQL's UNIQUE (which
    // also admits several NULLs) keeps it exactly.
    let rowid_alias = pk.len() == 1
        && src
            .columns
            .iter()
            .any(|c| c.name == pk[0] && c.declared.eq_ignore_ascii_case("INTEGER"));
    let nullable = !rowid_alias && src.columns.iter().any(|c| c.pk > 0 && !c.not_null);
    let present = map_columns(pair, &pk).is_some_and(|cols| {
        target.indexes.iter().any(|i| {
            &i.table == table
                && (i.primary || (nullable && !i.partial))
                && same_set(&i.columns, &cols)
        })
    });
    if !present {
        report.findings.push(finding(
            &src.name,
            ConstraintKind::MissingPrimaryKey,
            format!(
                "PRIMARY KEY ({}) has no equal primary key in PostgreSQL",
                pk.join(", ")
            ),
        ));
    }
}

fn uniques(target: &Target, pair: &Pair, decl: &SourceConstraints, report: &mut ConstraintReport) {
    let (Some(src), Some(table)) = (&pair.source, &pair.report.target) else {
        return;
    };
    for (cols, partial) in &decl.uniques {
        report.source_constraints += 1;
        let present = map_columns(pair, cols).is_some_and(|tcols| {
            target.indexes.iter().any(|i| {
                &i.table == table && (*partial || !i.partial) && same_set(&i.columns, &tcols)
            })
        });
        if !present {
            report.findings.push(finding(
                &src.name,
                ConstraintKind::MissingUnique,
                format!(
                    "UNIQUE ({}) has no equal unique index in PostgreSQL",
                    cols.join(", ")
                ),
            ));
        }
    }
}

fn foreign_keys(
    scope: &Scope<'_>,
    target: &Target,
    pair: &Pair,
    decl: &SourceConstraints,
    report: &mut ConstraintReport,
) {
    let (Some(src), Some(table)) = (&pair.source, &pair.report.target) else {
        return;
    };
    for (from, parent, to) in &decl.foreign_keys {
        report.source_constraints += 1;
        let parent_pair = scope.pairs.iter().find(|p| {
            p.source
                .as_ref()
                .is_some_and(|s| s.name.eq_ignore_ascii_case(parent))
        });
        let to = if to.is_empty() {
            parent_pair
                .and_then(|p| p.source.as_ref())
                .map(|s| s.primary_key())
                .unwrap_or_default()
        } else {
            to.clone()
        };
        let present = match parent_pair {
            Some(pp) => {
                let wanted = map_columns(pair, from)
                    .zip(map_columns(pp, &to))
                    .zip(pp.report.target.clone());
                wanted.is_some_and(|((tfrom, tto), tparent)| {
                    let mut want: Vec<(String, String)> = tfrom.into_iter().zip(tto).collect();
                    want.sort();
                    target.foreign_keys.iter().any(|fk| {
                        let mut have: Vec<(String, String)> = fk
                            .columns
                            .iter()
                            .cloned()
                            .zip(fk.parent_columns.iter().cloned())
                            .collect();
                        have.sort();
                        &fk.table == table
                            && fk.parent == tparent
                            && fk.parent_schema == scope.schema
                            && have == want
                    })
                })
            }
            // The parent table is not being compared (a --table filter): its target name
            // and columns are taken to be the source ones, ignoring ASCII case.
            None => map_columns(pair, from).is_some_and(|tfrom| {
                target.foreign_keys.iter().any(|fk| {
                    &fk.table == table
                        && fk.parent.eq_ignore_ascii_case(parent)
                        && same_set(&fk.columns, &tfrom)
                        && (to.is_empty()
                            || (fk.parent_columns.len() == to.len()
                                && fk
                                    .parent_columns
                                    .iter()
                                    .zip(&to)
                                    .all(|(a, b)| a.eq_ignore_ascii_case(b))))
                })
            }),
        };
        if !present {
            report.findings.push(finding(
                &src.name,
                ConstraintKind::MissingForeignKey,
                format!(
                    "FOREIGN KEY ({}) REFERENCES {parent} ({}) has no equal foreign key in PostgreSQL",
                    from.join(", "),
                    to.join(", ")
                ),
            ));
        }
    }
}

/// Each source CHECK: a validated CHECK on the target carrying its text in the comment a
/// derived transfer writes, or a person's acknowledgement that it was not carried over.
fn checks(
    scope: &Scope<'_>,
    target: &Target,
    pair: &Pair,
    decl: &SourceConstraints,
    report: &mut ConstraintReport,
) {
    let (Some(src), Some(table)) = (&pair.source, &pair.report.target) else {
        return;
    };
    let mut used = vec![false; target.checks.len()];
    for text in &decl.checks {
        report.source_constraints += 1;
        report.source_checks += 1;
        let comment = check_comment(text);
        let found = target.checks.iter().enumerate().position(|(i, c)| {
            !used[i] && &c.table == table && c.comment.as_deref() == Some(comment.as_str())
        });
        match found {
            Some(i) if target.checks[i].validated => used[i] = true,
            Some(i) => {
                used[i] = true;
                report.findings.push(finding(
                    &src.name,
                    ConstraintKind::MissingCheck,
                    format!("CHECK ({text}) is NOT VALID in PostgreSQL: existing rows violate it"),
                ));
            }
            None if scope
                .acknowledged
                .iter()
                .any(|(kind, t, x)| kind == "check" && t == &src.name && x == text) =>
            {
                report
                    .acknowledged
                    .push(format!("{}: CHECK ({text})", src.name));
            }
            None => report.findings.push(finding(
                &src.name,
                ConstraintKind::MissingCheck,
                format!("CHECK ({text}) has no equal CHECK in PostgreSQL and no acknowledgement"),
            )),
        }
    }
}

/// Orphans and `NOT VALID` foreign keys on the target.
async fn target_foreign_keys_hold(
    conn: &mut PgConnection,
    scope: &Scope<'_>,
    target: &Target,
    targets: &[&str],
    report: &mut ConstraintReport,
) -> Result<(), ValidateError> {
    for fk in target
        .foreign_keys
        .iter()
        .filter(|fk| targets.contains(&fk.table.as_str()))
    {
        report.target_foreign_keys += 1;
        let orphans = count_orphans(conn, scope.schema, fk).await?;
        if orphans > 0 {
            report.findings.push(ConstraintFinding {
                kind: ConstraintKind::TargetOrphans,
                table: fk.table.clone(),
                detail: format!(
                    "{orphans} rows of {} ({}) have no row in {} ({}) (constraint {})",
                    fk.table,
                    fk.columns.join(", "),
                    fk.parent,
                    fk.parent_columns.join(", "),
                    fk.name
                ),
                count: orphans,
            });
        }
        if fk.validated {
            continue;
        }
        let outcome = if orphans > 0 {
            Err("it has orphan rows".to_owned())
        } else if !scope.validate_not_valid {
            Err("validation was not asked for".to_owned())
        } else {
            let sql = format!(
                "ALTER TABLE {}.{} VALIDATE CONSTRAINT {}",
                quote_ident(scope.schema),
                quote_ident(&fk.table),
                quote_ident(&fk.name)
            );
            sqlx::query(&sql)
                .execute(&mut *conn)
                .await
                .map(|_| ())
                .map_err(|e| ferry_core::redact::redact(&e.to_string()).into_owned())
        };
        match outcome {
            Ok(()) => report
                .validated_foreign_keys
                .push(format!("{}.{}", fk.table, fk.name)),
            Err(why) => report.findings.push(ConstraintFinding {
                kind: ConstraintKind::TargetForeignKeyNotValid,
                table: fk.table.clone(),
                detail: format!(
                    "foreign key {} is NOT VALID and was not validated: {why}",
                    fk.name
                ),
                count: orphans,
            }),
        }
    }
    Ok(())
}

/// Identity and serial sequences whose next value is not above their column's maximum.
async fn sequences_ahead(
    conn: &mut PgConnection,
    schema: &str,
    targets: &[&str],
    report: &mut ConstraintReport,
) -> Result<(), ValidateError> {
    for (table, column, seq) in serial_columns(conn, schema).await? {
        if !targets.contains(&table.as_str()) {
            continue;
        }
        report.sequences += 1;
        let what = || format!("checking sequence {seq}");
        let (last, called): (i64, bool) =
            sqlx::query_as(&format!("SELECT last_value, is_called FROM {seq}"))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| ValidateError::pg(what(), e))?;
        let increment: i64 = sqlx::query_scalar(
            "SELECT seqincrement FROM pg_sequence WHERE seqrelid = $1::regclass",
        )
        .bind(&seq)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| ValidateError::pg(what(), e))?;
        let max: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT max({})::int8 FROM {}.{}",
            quote_ident(&column),
            quote_ident(schema),
            quote_ident(&table)
        ))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| ValidateError::pg(what(), e))?;
        let next = if called {
            last.saturating_add(increment)
        } else {
            last
        };
        if let Some(max) = max {
            if increment > 0 && next <= max {
                report.findings.push(ConstraintFinding {
                    kind: ConstraintKind::SequenceBehind,
                    table: table.clone(),
                    detail: format!(
                        "sequence {seq} would next give {next}, but {column} already holds {max}"
                    ),
                    count: 0,
                });
            }
        }
    }
    Ok(())
}

async fn target_checks(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<TargetCheck>, ValidateError> {
    let rows: Vec<(String, bool, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text, con.convalidated, obj_description(con.oid, 'pg_constraint') \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE con.contype = 'c' AND n.nspname = $1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| ValidateError::pg("reading CHECK constraints", e))?;
    Ok(rows
        .into_iter()
        .map(|(table, validated, comment)| TargetCheck {
            table,
            validated,
            comment,
        })
        .collect())
}

type FkCheck = BTreeMap<(String, String), (u64, Vec<String>)>;

/// `PRAGMA foreign_key_check`, grouped by (table, parent), with a few rowids each.
fn foreign_key_check(c: &Connection) -> rusqlite::Result<FkCheck> {
    let mut out: FkCheck = BTreeMap::new();
    let mut stmt = c.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let table: String = r.get(0)?;
        let rowid: Option<i64> = r.get(1)?;
        let parent: String = r.get(2)?;
        let e = out.entry((table, parent)).or_default();
        e.0 += 1;
        if e.1.len() < 5 {
            e.1.push(rowid.map_or("-".into(), |v| v.to_string()));
        }
    }
    Ok(out)
}

fn source_constraints(c: &Connection, table: &str) -> rusqlite::Result<SourceConstraints> {
    let mut out = SourceConstraints::default();
    let mut stmt =
        c.prepare("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)")?;
    let indexes: Vec<(String, bool, String, bool)> = stmt
        .query_map([table], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? != 0,
                r.get(2)?,
                r.get::<_, i64>(3)? != 0,
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (name, unique, origin, partial) in indexes {
        // The primary key is checked on its own.
        if !unique || origin == "pk" {
            continue;
        }
        let mut info = c.prepare("SELECT cid, name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let cols: Vec<(i64, Option<String>)> = info
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        // Expression indexes (cid -2) have no column list to look for.
        if cols.iter().all(|(cid, n)| *cid >= 0 && n.is_some()) {
            out.uniques
                .push((cols.into_iter().filter_map(|(_, n)| n).collect(), partial));
        }
    }
    let mut stmt = c.prepare(
        "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )?;
    let rows: Vec<(i64, String, String, Option<String>)> = stmt
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut by_id: BTreeMap<i64, (Vec<String>, String, Vec<String>)> = BTreeMap::new();
    for (id, parent, from, to) in rows {
        let e = by_id
            .entry(id)
            .or_insert_with(|| (Vec::new(), parent, Vec::new()));
        e.0.push(from);
        if let Some(to) = to {
            e.2.push(to);
        }
    }
    out.foreign_keys = by_id.into_values().collect();
    let sql: Option<String> = c
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap_or(None);
    out.checks = ferry_core::sqlite_text::parse_create_table(sql.as_deref().unwrap_or(""))
        .checks
        .into_iter()
        .map(|c| c.text)
        .collect();
    Ok(out)
}

async fn target_indexes(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<TargetIndex>, ValidateError> {
    let rows: Vec<(String, bool, bool, Vec<String>)> = sqlx::query_as(
        "SELECT c.relname::text, i.indisprimary, i.indpred IS NOT NULL, \
         ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND i.indisunique AND i.indexprs IS NULL",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| ValidateError::pg("reading unique indexes", e))?;
    Ok(rows
        .into_iter()
        .map(|(table, primary, partial, columns)| TargetIndex {
            table,
            primary,
            partial,
            columns,
        })
        .collect())
}

async fn target_foreign_keys(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<TargetForeignKey>, ValidateError> {
    type Row = (
        String,
        String,
        String,
        String,
        bool,
        Vec<String>,
        Vec<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT con.conname::text, cl.relname::text, pn.nspname::text, pl.relname::text, con.convalidated, \
         ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) \
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord), \
         ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord) \
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord) \
         FROM pg_constraint con \
         JOIN pg_class cl ON cl.oid = con.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace \
         JOIN pg_class pl ON pl.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pl.relnamespace \
         WHERE con.contype = 'f' AND n.nspname = $1 ORDER BY 2, 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| ValidateError::pg("reading foreign keys", e))?;
    Ok(rows
        .into_iter()
        .map(
            |(name, table, parent_schema, parent, validated, columns, parent_columns)| {
                TargetForeignKey {
                    name,
                    table,
                    parent_schema,
                    parent,
                    validated,
                    columns,
                    parent_columns,
                }
            },
        )
        .collect())
}

/// Rows whose foreign key columns are all non-NULL (MATCH SIMPLE) and have no parent row.
async fn count_orphans(
    conn: &mut PgConnection,
    schema: &str,
    fk: &TargetForeignKey,
) -> Result<u64, ValidateError> {
    let not_null: Vec<String> = fk
        .columns
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
        .collect();
    let join: Vec<String> = fk
        .columns
        .iter()
        .zip(&fk.parent_columns)
        .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
        .collect();
    let sql = format!(
        "SELECT count(*) FROM {}.{} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {}.{} p WHERE {})",
        quote_ident(schema),
        quote_ident(&fk.table),
        not_null.join(" AND "),
        quote_ident(&fk.parent_schema),
        quote_ident(&fk.parent),
        join.join(" AND ")
    );
    let n: i64 = sqlx::query_scalar(&sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            ValidateError::pg(format!("counting orphans of foreign key {}", fk.name), e)
        })?;
    Ok(n.max(0) as u64)
}

/// (table, column, sequence) for every identity and serial column of `schema`.
async fn serial_columns(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<(String, String, String)>, ValidateError> {
    sqlx::query_as(
        "SELECT t.relname, t.attname, t.seq FROM ( \
           SELECT c.relname::text AS relname, a.attname::text AS attname, \
                  pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS seq \
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
             AND (a.attidentity <> '' OR pg_get_expr(( \
                  SELECT d.adbin FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum), a.attrelid) LIKE 'nextval(%') \
         ) t WHERE t.seq IS NOT NULL ORDER BY 1, 2",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| ValidateError::pg("listing identity and serial columns", e))
}
