//! Constraint checks: SQLite's own foreign key check; in PostgreSQL, orphan rows for every
//! foreign key, `VALIDATE CONSTRAINT` for those marked `NOT VALID`, and sequences ahead of
//! their column; and every NOT NULL, PRIMARY KEY, UNIQUE and FOREIGN KEY of the source
//! present on the target.

use std::collections::BTreeMap;

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

pub(crate) async fn check(
    lite: &SqliteDb,
    conn: &mut PgConnection,
    schema: &str,
    pairs: &[Pair],
    validate_not_valid: bool,
) -> Result<ConstraintReport, ValidateError> {
    let mut report = ConstraintReport {
        checked: true,
        ..ConstraintReport::default()
    };
    let compared: Vec<&Pair> = pairs
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

    let indexes = target_indexes(conn, schema).await?;
    let fks = target_foreign_keys(conn, schema).await?;

    // Source constraints present on the target.
    for pair in &compared {
        let (Some(src), Some(target)) = (&pair.source, &pair.report.target) else {
            continue;
        };
        let Some(decl) = declared.get(&src.name) else {
            continue;
        };
        let map = |cols: &[String]| -> Option<Vec<String>> {
            cols.iter()
                .map(|c| pair.target_column(c).map(str::to_owned))
                .collect()
        };
        let same_set = |a: &[String], b: &[String]| {
            let mut a = a.to_vec();
            let mut b = b.to_vec();
            a.sort();
            b.sort();
            a == b
        };
        let finding = |kind, detail: String| ConstraintFinding {
            kind,
            table: src.name.clone(),
            detail,
            count: 0,
        };
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
                    ConstraintKind::MissingNotNull,
                    format!(
                        "{} is NOT NULL in SQLite but nullable in PostgreSQL",
                        col.name
                    ),
                ));
            }
        }
        let pk = src.primary_key();
        if !pk.is_empty() {
            report.source_constraints += 1;
            // A primary key of a rowid table that is not its rowid lets NULLs in unless its
            // columns are declared NOT NULL: it is a UNIQUE constraint, and PostgreSQL's UNIQUE
            // (which also admits several NULLs) keeps it exactly.
            let rowid_alias = pk.len() == 1
                && src
                    .columns
                    .iter()
                    .any(|c| c.name == pk[0] && c.declared.eq_ignore_ascii_case("INTEGER"));
            let nullable = !rowid_alias && src.columns.iter().any(|c| c.pk > 0 && !c.not_null);
            let present = map(&pk).is_some_and(|cols| {
                indexes.iter().any(|i| {
                    &i.table == target
                        && (i.primary || (nullable && !i.partial))
                        && same_set(&i.columns, &cols)
                })
            });
            if !present {
                report.findings.push(finding(
                    ConstraintKind::MissingPrimaryKey,
                    format!(
                        "PRIMARY KEY ({}) has no equal primary key in PostgreSQL",
                        pk.join(", ")
                    ),
                ));
            }
        }
        for (cols, partial) in &decl.uniques {
            report.source_constraints += 1;
            let present = map(cols).is_some_and(|tcols| {
                indexes.iter().any(|i| {
                    &i.table == target && (*partial || !i.partial) && same_set(&i.columns, &tcols)
                })
            });
            if !present {
                report.findings.push(finding(
                    ConstraintKind::MissingUnique,
                    format!(
                        "UNIQUE ({}) has no equal unique index in PostgreSQL",
                        cols.join(", ")
                    ),
                ));
            }
        }
        for (from, parent, to) in &decl.foreign_keys {
            report.source_constraints += 1;
            let parent_pair = pairs.iter().find(|p| {
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
            let wanted = match (map(from), parent_pair) {
                (Some(tfrom), Some(pp)) => {
                    let tto: Option<Vec<String>> = to
                        .iter()
                        .map(|c| pp.target_column(c).map(str::to_owned))
                        .collect();
                    tto.zip(pp.report.target.clone())
                        .map(|(tto, tparent)| (tfrom, tparent, tto))
                }
                _ => None,
            };
            let present = match (wanted, parent_pair) {
                (Some((tfrom, tparent, tto)), _) => {
                    let mut want: Vec<(String, String)> = tfrom.into_iter().zip(tto).collect();
                    want.sort();
                    fks.iter().any(|fk| {
                        let mut have: Vec<(String, String)> = fk
                            .columns
                            .iter()
                            .cloned()
                            .zip(fk.parent_columns.iter().cloned())
                            .collect();
                        have.sort();
                        &fk.table == target
                            && fk.parent == tparent
                            && fk.parent_schema == schema
                            && have == want
                    })
                }
                // The parent table is not being compared (a --table filter): its target name
                // and columns are taken to be the source ones, ignoring ASCII case.
                (None, None) => map(from).is_some_and(|tfrom| {
                    fks.iter().any(|fk| {
                        &fk.table == target
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
                (None, Some(_)) => false,
            };
            if !present {
                report.findings.push(finding(
                    ConstraintKind::MissingForeignKey,
                    format!("FOREIGN KEY ({}) REFERENCES {parent} ({}) has no equal foreign key in PostgreSQL", from.join(", "), to.join(", ")),
                ));
            }
        }
    }

    // Orphans and NOT VALID foreign keys on the target.
    let targets: Vec<&str> = compared
        .iter()
        .filter_map(|p| p.report.target.as_deref())
        .collect();
    for fk in fks.iter().filter(|fk| targets.contains(&fk.table.as_str())) {
        report.target_foreign_keys += 1;
        let orphans = count_orphans(conn, schema, fk).await?;
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
        if !fk.validated {
            let outcome = if orphans > 0 {
                Err("it has orphan rows".to_owned())
            } else if !validate_not_valid {
                Err("validation was not asked for".to_owned())
            } else {
                let sql = format!(
                    "ALTER TABLE {}.{} VALIDATE CONSTRAINT {}",
                    quote_ident(schema),
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
    }

    // Sequences behind their column.
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
    Ok(report)
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
