//! Key-range predicates for SQL, in both dialects. A range `[lo, hi)` over a (possibly
//! composite) key becomes a lexicographic tuple comparison; text compares bytewise on both
//! sides (`COLLATE BINARY` in SQLite, `COLLATE "C"` in PostgreSQL), which is the order of the
//! canonical key bytes, so a predicate selects exactly the rows of its range.

use crate::canon::{decode_key, KeyPart};
use crate::rows::Range;
use crate::spec::{quote_ident, ColSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A predicate selecting the rows of `spans` (an OR of ranges), with the values SQLite binds
/// (PostgreSQL gets literals inline). `None` when a boundary cannot be written in SQL.
pub(crate) fn spans_predicate(
    d: Dialect,
    key_cols: &[ColSpec],
    spans: &[Range],
    params: &mut Vec<KeyPart>,
) -> Option<String> {
    let exprs: Vec<String> = key_cols
        .iter()
        .map(|c| {
            let name = match d {
                Dialect::Sqlite => quote_ident(&c.source),
                Dialect::Postgres => quote_ident(&c.target),
            };
            match (d, c.domain) {
                (Dialect::Sqlite, crate::canon::Domain::Text) => format!("{name} COLLATE BINARY"),
                (Dialect::Postgres, crate::canon::Domain::Text) => format!("{name} COLLATE \"C\""),
                _ => name,
            }
        })
        .collect();
    let mut parts = Vec::new();
    for span in spans {
        let mut conds = Vec::new();
        if let Some(lo) = &span.lo {
            let vals = values(d, lo, key_cols.len(), params)?;
            conds.push(format!("({})", tuple_cmp(&exprs, &vals, true)));
        }
        if let Some(hi) = &span.hi {
            let vals = values(d, hi, key_cols.len(), params)?;
            conds.push(format!("({})", tuple_cmp(&exprs, &vals, false)));
        }
        if conds.is_empty() {
            return Some("TRUE".into());
        }
        parts.push(format!("({})", conds.join(" AND ")));
    }
    Some(if parts.is_empty() {
        "FALSE".into()
    } else {
        parts.join(" OR ")
    })
}

fn values(d: Dialect, key: &[u8], n: usize, params: &mut Vec<KeyPart>) -> Option<Vec<String>> {
    let parts = decode_key(key)?;
    if parts.len() != n {
        return None;
    }
    Some(
        parts
            .into_iter()
            .map(|p| match d {
                Dialect::Sqlite => {
                    params.push(p);
                    format!("?{}", params.len())
                }
                Dialect::Postgres => match p {
                    KeyPart::Int(i) => i.to_string(),
                    KeyPart::Text(s) => format!("'{}'", s.replace('\'', "''")),
                },
            })
            .collect(),
    )
}

/// `(c1..cn) >= (v1..vn)` when `lower`, else `(c1..cn) < (v1..vn)`, spelled out so that each
/// comparison carries its collation (and a single column stays an index range).
fn tuple_cmp(cols: &[String], vals: &[String], lower: bool) -> String {
    let n = cols.len();
    let mut alts = Vec::with_capacity(n);
    for i in 0..n {
        let op = match (lower, i + 1 == n) {
            (true, true) => ">=",
            (true, false) => ">",
            (false, _) => "<",
        };
        let mut conj: Vec<String> = (0..i)
            .map(|j| format!("{} = {}", cols[j], vals[j]))
            .collect();
        conj.push(format!("{} {op} {}", cols[i], vals[i]));
        alts.push(conj.join(" AND "));
    }
    if alts.len() == 1 {
        alts.remove(0)
    } else {
        format!(
            "({})",
            alts.iter()
                .map(|a| format!("({a})"))
                .collect::<Vec<_>>()
                .join(" OR ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canon::{encode, push_key_part, Ctx, Domain, Side, Val};
    use crate::spec::PgKind;
    use ferry_core::value::Affinity;

    fn col(name: &str, domain: Domain) -> ColSpec {
        ColSpec {
            source: name.into(),
            target: name.into(),
            domain,
            pg: PgKind::Text,
            pg_type: "text".into(),
            declared: "TEXT".into(),
            affinity: Affinity::Text,
        }
    }

    #[test]
    fn composite_ranges_spell_out_tuple_order() {
        let mut lo = Vec::new();
        let mut cell = Vec::new();
        encode(
            Domain::Text,
            &Val::Text(b"it's"),
            Ctx::default(),
            Side::Source,
            &mut cell,
        );
        push_key_part(&cell, &mut lo);
        cell.clear();
        encode(
            Domain::Integer,
            &Val::Int(7),
            Ctx::default(),
            Side::Source,
            &mut cell,
        );
        push_key_part(&cell, &mut lo);
        let cols = [col("a", Domain::Text), col("b", Domain::Integer)];
        let span = Range {
            lo: Some(lo),
            hi: None,
        };
        let mut params = Vec::new();
        let pg = spans_predicate(
            Dialect::Postgres,
            &cols,
            std::slice::from_ref(&span),
            &mut params,
        )
        .unwrap();
        assert_eq!(
            pg,
            "((((\"a\" COLLATE \"C\" > 'it''s') OR (\"a\" COLLATE \"C\" = 'it''s' AND \"b\" >= 7))))"
        );
        let lite =
            spans_predicate(Dialect::Sqlite, &cols, &[span.clone(), span], &mut params).unwrap();
        assert!(lite.contains("\"a\" COLLATE BINARY > ?1"), "{lite}");
        assert_eq!(
            params,
            vec![
                KeyPart::Text("it's".into()),
                KeyPart::Int(7),
                KeyPart::Text("it's".into()),
                KeyPart::Int(7)
            ]
        );
    }

    #[test]
    fn one_column_ranges_stay_simple() {
        let cols = [col("id", Domain::Integer)];
        let key = |v: i64| {
            let mut cell = Vec::new();
            encode(
                Domain::Integer,
                &Val::Int(v),
                Ctx::default(),
                Side::Source,
                &mut cell,
            );
            let mut k = Vec::new();
            push_key_part(&cell, &mut k);
            k
        };
        let spans = [
            Range {
                lo: Some(key(5)),
                hi: Some(key(9)),
            },
            Range {
                lo: None,
                hi: Some(key(2)),
            },
        ];
        let pg = spans_predicate(Dialect::Postgres, &cols, &spans, &mut Vec::new()).unwrap();
        assert_eq!(pg, "((\"id\" >= 5) AND (\"id\" < 9)) OR ((\"id\" < 2))");
    }
}
