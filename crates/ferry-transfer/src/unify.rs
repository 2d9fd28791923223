//! One PostgreSQL type for the columns a foreign key joins.
//!
//! Column by column, a parent key holding `4326` and `'X1'` and a child column holding only
//! `4326` would get different types, and PostgreSQL refuses a foreign key between them.
//! Types are therefore chosen over the foreign-key graph: the columns joined by foreign
//! keys (directly or through a chain) form a group; when the type chosen for the parent
//! holds every value of every column in the group, the whole group takes it; otherwise the
//! group is widened to the narrowest type that holds them all. A rowid key (an `INTEGER
//! PRIMARY KEY`) is never widened: if its children hold what `bigint` cannot, their types
//! stay and the foreign key is reported as not carried over.

use std::collections::HashMap;

use ferry_core::config::{InvalidTextPolicy, MixedPolicy};
use ferry_core::plan::TargetType;
use ferry_core::value::StorageClass as S;

use crate::profile::ColumnStats;
use crate::schema::SourceSchema;

/// `(table index, column index)` in the source schema.
type Col = (usize, usize);

/// Adjusts `chosen[table][column]` so that columns joined by a foreign key share a type.
pub fn foreign_keys(
    schema: &SourceSchema,
    stats: &[(Vec<ColumnStats>, u64)],
    chosen: &mut [Vec<(TargetType, String)>],
    invalid_text: InvalidTextPolicy,
    mixed: MixedPolicy,
) {
    let mut groups = Groups::default();
    // Parents: columns some foreign key refers to.
    let mut parents: Vec<Col> = Vec::new();
    for (ti, t) in schema.tables.iter().enumerate() {
        for fk in &t.foreign_keys {
            let Some(pi) = schema
                .tables
                .iter()
                .position(|p| p.name == fk.parent)
                .or_else(|| {
                    schema
                        .tables
                        .iter()
                        .position(|p| p.name.eq_ignore_ascii_case(&fk.parent))
                })
            else {
                continue;
            };
            let parent = &schema.tables[pi];
            let to: Vec<String> = if fk.to.iter().all(Option::is_none) {
                parent.primary_key.clone()
            } else {
                fk.to
                    .iter()
                    .zip(&fk.from)
                    .map(|(t, f)| t.clone().unwrap_or_else(|| f.clone()))
                    .collect()
            };
            if to.len() != fk.from.len() {
                continue;
            }
            for (from, to) in fk.from.iter().zip(&to) {
                let (Some(ci), Some(pc)) = (column(t, from), column(parent, to)) else {
                    continue;
                };
                groups.join((ti, ci), (pi, pc));
                parents.push((pi, pc));
            }
        }
    }
    for members in groups.all() {
        let types: Vec<&TargetType> = members.iter().map(|(t, c)| &chosen[*t][*c].0).collect();
        if types.iter().all(|t| *t == types[0]) {
            continue;
        }
        let stat = |(t, c): &Col| &stats[*t].0[*c];
        let merged = merged(members.iter().map(stat));
        let fits = |ty: &TargetType| {
            members
                .iter()
                .all(|m| holds(ty, stat(m), &chosen[m.0][m.1].0, mixed))
        };
        let rowid: Vec<&Col> = members
            .iter()
            .filter(|(t, c)| {
                schema.tables[*t].rowid_alias.as_deref()
                    == Some(schema.tables[*t].columns[*c].name.as_str())
            })
            .collect();
        let parent_type = members
            .iter()
            .find(|m| parents.contains(m))
            .map(|(t, c)| chosen[*t][*c].0.clone());
        let winner = match parent_type {
            Some(p) if fits(&p) => Some(p),
            _ if !rowid.is_empty() => None,
            _ => widest(&merged, invalid_text, mixed)
                .into_iter()
                .find(|w| fits(w)),
        };
        let Some(winner) = winner else { continue };
        let names: Vec<String> = members
            .iter()
            .map(|(t, c)| {
                format!(
                    "{}.{}",
                    schema.tables[*t].name, schema.tables[*t].columns[*c].name
                )
            })
            .collect();
        for (t, c) in &members {
            let slot = &mut chosen[*t][*c];
            if slot.0 != winner {
                slot.1 = format!(
                    "{}; joined by foreign keys with {}, so {} for all of them (it holds every value)",
                    slot.1,
                    names.join(", "),
                    winner.shown()
                );
                slot.0 = winner.clone();
            }
        }
    }
}

fn column(t: &crate::schema::SourceTable, name: &str) -> Option<usize> {
    t.columns.iter().position(|c| c.name == name).or_else(|| {
        t.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    })
}

/// Whether a column whose own type is `own` keeps every value in `ty`.
fn holds(ty: &TargetType, s: &ColumnStats, own: &TargetType, mixed: MixedPolicy) -> bool {
    let classes = s.profile.classes();
    if classes.is_empty() || own == ty {
        return true;
    }
    let only = |allowed: &[S]| classes.iter().all(|c| allowed.contains(c));
    let p = &s.profile;
    match ty {
        TargetType::Bigint => only(&[S::Integer]),
        TargetType::Boolean => only(&[S::Integer]) && s.zero_one == p.integers,
        TargetType::Numeric => only(&[S::Integer, S::Real]) && s.nonfinite_reals == 0,
        TargetType::DoublePrecision => {
            only(&[S::Integer, S::Real])
                && p.min_integer.unwrap_or(0).unsigned_abs() <= 1 << 53
                && p.max_integer.unwrap_or(0).unsigned_abs() <= 1 << 53
        }
        // Each column keeps its values' classes by itself: texts alone, integers alone
        // (as decimals), or both when none of its texts spells an integer.
        TargetType::Text => {
            s.invalid_texts() == 0
                && (only(&[S::Text])
                    || only(&[S::Integer])
                    || (only(&[S::Integer, S::Text]) && crate::typemap::mixed_as_text(s, mixed)))
        }
        TargetType::Bytea => only(&[S::Blob]),
        TargetType::MixedJsonb => s.invalid_texts() == 0,
        _ => false,
    }
}

/// The types that could hold the values of every column of a group, narrowest first (the
/// first one that holds each column's values is taken).
fn widest(m: &ColumnStats, invalid_text: InvalidTextPolicy, mixed: MixedPolicy) -> Vec<TargetType> {
    let p = &m.profile;
    let first = match p.classes().as_slice() {
        [] | [S::Integer] => TargetType::Bigint,
        [S::Real] | [S::Integer, S::Real] => {
            if p.min_integer.unwrap_or(0).unsigned_abs() <= 1 << 53
                && p.max_integer.unwrap_or(0).unsigned_abs() <= 1 << 53
            {
                TargetType::DoublePrecision
            } else if m.nonfinite_reals == 0 {
                TargetType::Numeric
            } else {
                TargetType::MixedJsonb
            }
        }
        [S::Text] if m.invalid_texts() > 0 && invalid_text == InvalidTextPolicy::Bytea => {
            TargetType::Bytea
        }
        [S::Text] => TargetType::Text,
        [S::Blob] => TargetType::Bytea,
        [S::Integer, S::Text] if mixed == MixedPolicy::Text => TargetType::Text,
        _ => TargetType::MixedJsonb,
    };
    vec![first, TargetType::MixedJsonb]
}

fn merged<'a>(all: impl Iterator<Item = &'a ColumnStats>) -> ColumnStats {
    let mut out = ColumnStats::default();
    for s in all {
        out.merge(s);
    }
    out
}

/// Union-find over columns.
#[derive(Debug, Default)]
struct Groups {
    parent: HashMap<Col, Col>,
}

impl Groups {
    fn find(&mut self, c: Col) -> Col {
        let p = *self.parent.entry(c).or_insert(c);
        if p == c {
            return c;
        }
        let root = self.find(p);
        self.parent.insert(c, root);
        root
    }

    fn join(&mut self, a: Col, b: Col) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
    }

    /// Every group of more than one column, members sorted.
    fn all(&mut self) -> Vec<Vec<Col>> {
        let keys: Vec<Col> = self.parent.keys().copied().collect();
        let mut by_root: HashMap<Col, Vec<Col>> = HashMap::new();
        for k in keys {
            let r = self.find(k);
            by_root.entry(r).or_default().push(k);
        }
        let mut out: Vec<Vec<Col>> = by_root
            .into_values()
            .filter(|m| m.len() > 1)
            .map(|mut m| {
                m.sort_unstable();
                m
            })
            .collect();
        out.sort();
        out
    }
}
