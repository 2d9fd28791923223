//! One record to one row: resolve each column's sources, convert to the column's type
//! (strictly: a value that does not fit is NULL and noted, never guessed), normalise
//! vocabularies, and fill the automatic columns.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::plan::{Fill, Mapped, RulePlan};
use crate::profile::{ColumnType, Source};
use crate::report::{Note, NoteKind, Reason, ReasonKind};
use crate::template::Vars;
use crate::timestamp::{self, EpochUnit};

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Cell {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The key form stored in the ledger: a JSON scalar.
    pub fn to_key(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::from(*i),
            Cell::Real(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Cell::Text(s) => Value::String(s.clone()),
        }
    }

    pub fn from_key(v: &Value) -> Cell {
        match v {
            Value::String(s) => Cell::Text(s.clone()),
            Value::Number(n) => n
                .as_i64()
                .map_or_else(|| n.as_f64().map_or(Cell::Null, Cell::Real), Cell::Int),
            Value::Null => Cell::Null,
            other => Cell::Text(other.to_string()),
        }
    }
}

/// Notes of one file, merged by kind.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    by_kind: BTreeMap<NoteKind, (u64, String)>,
}

impl Notes {
    pub fn add(&mut self, kind: NoteKind, detail: impl FnOnce() -> String) {
        self.by_kind
            .entry(kind)
            .and_modify(|(n, _)| *n += 1)
            .or_insert_with(|| (1, detail()));
    }

    pub fn into_notes(self, path: &str) -> Vec<Note> {
        self.by_kind
            .into_iter()
            .map(|(kind, (count, detail))| Note {
                path: path.to_owned(),
                kind,
                count,
                detail,
            })
            .collect()
    }
}

/// How the original of a record is stored.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The text kept in the row (`doc` for JSON, `source_text` otherwise); `None` when it
    /// went to the snapshot store.
    pub inline: Option<String>,
    pub json: bool,
    pub sha256: String,
    pub size: u64,
    /// `snapshots/<sha256>`, relative to the state directory.
    pub snapshot: Option<String>,
}

/// Everything the mapping of one record reads.
pub(crate) struct Input<'a> {
    /// The parsed record (JSON) or front matter (Markdown).
    pub value: Option<&'a Value>,
    pub vars: Vars<'a>,
    pub stored: &'a Stored,
    pub naive_offset: i32,
}

/// A mapped row: its values in the plan's column order, its key, and its parents' keys.
///
/// All the row's text lives in one buffer: a row is one allocation to free, not one per
/// cell (freeing on the writer thread what a parser thread allocated is costly).
#[derive(Debug)]
pub(crate) struct Row {
    text: String,
    slots: Vec<Slot>,
    pub key: String,
    pub parents: Vec<(usize, String)>,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Null,
    Int(i64),
    Real(f64),
    Text(usize, usize),
}

impl Row {
    fn pack(cells: Vec<Cell>, key: String, parents: Vec<(usize, String)>) -> Self {
        let len = cells
            .iter()
            .map(|c| if let Cell::Text(s) = c { s.len() } else { 0 })
            .sum();
        let mut text = String::with_capacity(len);
        let slots = cells
            .into_iter()
            .map(|c| match c {
                Cell::Null => Slot::Null,
                Cell::Int(i) => Slot::Int(i),
                Cell::Real(f) => Slot::Real(f),
                Cell::Text(s) => {
                    let start = text.len();
                    text.push_str(&s);
                    Slot::Text(start, text.len())
                }
            })
            .collect();
        Self {
            text,
            slots,
            key,
            parents,
        }
    }

    /// The values to bind, borrowed from the row.
    pub fn values(&self) -> impl Iterator<Item = rusqlite::types::ToSqlOutput<'_>> + '_ {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        self.slots.iter().map(move |s| {
            ToSqlOutput::Borrowed(match *s {
                Slot::Null => ValueRef::Null,
                Slot::Int(i) => ValueRef::Integer(i),
                Slot::Real(f) => ValueRef::Real(f),
                Slot::Text(a, b) => ValueRef::Text(&self.text.as_bytes()[a..b]),
            })
        })
    }

    /// The integer at a column, if it holds one.
    pub fn int_at(&self, i: usize) -> Option<i64> {
        match self.slots.get(i) {
            Some(Slot::Int(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn bytes(&self) -> u64 {
        (self.text.len() + self.slots.len() * 16) as u64
    }
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Cell::Null => ValueRef::Null,
            Cell::Int(i) => ValueRef::Integer(*i),
            Cell::Real(f) => ValueRef::Real(*f),
            Cell::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

pub(crate) fn map_record(
    plan: &RulePlan,
    input: &Input<'_>,
    notes: &mut Notes,
) -> Result<Row, Reason> {
    let mut cells: Vec<Cell> = Vec::with_capacity(plan.cols.len());
    let mut raw: Option<Cell> = None;
    for col in &plan.cols {
        let cell = match &col.fill {
            Fill::Mapped(m) => {
                let (cell, as_written) = mapped(m, &col.name, input, notes)?;
                raw = as_written;
                cell
            }
            Fill::Raw => raw.take().unwrap_or(Cell::Null),
            Fill::SourcePath => Cell::Text(input.vars.path.to_owned()),
            Fill::SourceRecord => Cell::Int(input.vars.record as i64),
            Fill::Doc => match (&input.stored.inline, input.stored.json) {
                (Some(t), true) => Cell::Text(t.clone()),
                _ => Cell::Null,
            },
            Fill::SourceText => match (&input.stored.inline, input.stored.json, plan_has_doc(plan))
            {
                (Some(t), false, _) | (Some(t), true, false) => Cell::Text(t.clone()),
                _ => Cell::Null,
            },
            Fill::DocSha256 => Cell::Text(input.stored.sha256.clone()),
            Fill::DocSize => Cell::Int(input.stored.size as i64),
            Fill::DocSnapshot => input.stored.snapshot.clone().map_or(Cell::Null, Cell::Text),
        };
        cells.push(cell);
    }
    let key_cells: Vec<&Cell> = plan.key.iter().map(|i| &cells[*i]).collect();
    if let Some(pos) = key_cells.iter().position(|c| **c == Cell::Null) {
        let name = &plan.cols[plan.key[pos]].name;
        return Err(Reason::new(
            ReasonKind::MissingKey,
            format!(
                "record {} has no value for key column {name}",
                input.vars.record
            ),
        ));
    }
    let key = match key_cells.as_slice() {
        [one] => one.to_key().to_string(),
        many => Value::Array(many.iter().map(|c| c.to_key()).collect()).to_string(),
    };
    let parents = plan
        .parents
        .iter()
        .filter_map(|p| cells[p.col].as_text().map(|k| (p.table, k.to_owned())))
        .collect();
    Ok(Row::pack(cells, key, parents))
}

fn plan_has_doc(plan: &RulePlan) -> bool {
    plan.cols.iter().any(|c| matches!(c.fill, Fill::Doc))
}

/// The first non-null value of a column's sources.
fn resolve<'a>(m: &Mapped, input: &Input<'a>) -> Option<Cow<'a, Value>> {
    for s in &m.sources {
        let v = match s {
            Source::Pointer(p) => input.value.and_then(|v| p.find(v)).map(Cow::Borrowed),
            Source::Template(t) => t.render(&input.vars).map(|s| Cow::Owned(Value::String(s))),
            Source::Value(v) => Some(Cow::Owned(v.clone())),
            Source::FrontMatter => input.value.filter(|v| !v.is_null()).map(Cow::Borrowed),
        };
        if let Some(v) = v.filter(|v| !v.is_null()) {
            return Some(v);
        }
    }
    None
}

fn describe(m: &Mapped) -> String {
    m.sources
        .iter()
        .map(|s| match s {
            Source::Pointer(p) => p.text.clone(),
            Source::Template(t) => format!("\"{}\"", t.as_str()),
            Source::Value(v) => v.to_string(),
            Source::FrontMatter => "front matter".into(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The cell of a mapped column, and for a vocabulary column the as-written value.
fn mapped(
    m: &Mapped,
    name: &str,
    input: &Input<'_>,
    notes: &mut Notes,
) -> Result<(Cell, Option<Cell>), Reason> {
    let value = resolve(m, input);
    let record = input.vars.record;
    if let Some(vocab) = &m.vocabulary {
        return Ok(match value.as_deref() {
            None => (Cell::Text(vocab.missing.clone()), None),
            Some(v) => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match vocab.lookup(&text) {
                    Some(canonical) => (Cell::Text(canonical.to_owned()), Some(Cell::Text(text))),
                    None => {
                        notes.add(NoteKind::VocabularyOther, || {
                            format!("{name} `{text}` (record {record}) is not in its vocabulary: stored as `{}`, kept in {name}_raw", vocab.other)
                        });
                        (Cell::Text(vocab.other.clone()), Some(Cell::Text(text)))
                    }
                }
            }
        });
    }
    let cell = match value.as_deref() {
        None => Cell::Null,
        Some(v) => convert(v, m.ty, name, record, input.naive_offset, notes),
    };
    if cell == Cell::Null && m.not_null {
        if m.defaulted {
            notes.add(NoteKind::DefaultUsed, || {
                format!("{name} (record {record}) had no value; the column default applies")
            });
        } else {
            return Err(Reason::new(
                ReasonKind::MissingValue,
                format!(
                    "record {record}: column {name} is required but {} gave no usable value",
                    describe(m)
                ),
            ));
        }
    }
    if let (Some(allowed), Cell::Text(t)) = (&m.allowed, &cell) {
        if !allowed.contains(t) {
            return Err(Reason::new(
                ReasonKind::ConstraintViolation,
                format!(
                    "record {record}: `{t}` is not allowed in column {name} ({})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok((cell, None))
}

fn convert(
    v: &Value,
    ty: ColumnType,
    name: &str,
    record: u64,
    naive_offset: i32,
    notes: &mut Notes,
) -> Cell {
    let unconvertible = |notes: &mut Notes, what: &str| {
        notes.add(NoteKind::ValueUnconvertible, || {
            let shown: String = v.to_string().chars().take(80).collect();
            format!("{name} (record {record}): {shown} is not {what}; the column is NULL, the document keeps it")
        });
        Cell::Null
    };
    match ty {
        ColumnType::Text => match v {
            Value::String(s) => Cell::Text(s.clone()),
            Value::Number(n) => Cell::Text(n.to_string()),
            Value::Bool(b) => Cell::Text(b.to_string()),
            Value::Null => Cell::Null,
            Value::Array(_) | Value::Object(_) => {
                notes.add(NoteKind::ValueAsJsonText, || {
                    format!(
                        "{name} (record {record}): an {} stored as JSON text",
                        if v.is_array() { "array" } else { "object" }
                    )
                });
                Cell::Text(v.to_string())
            }
        },
        ColumnType::Json => Cell::Text(v.to_string()),
        ColumnType::Integer => match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Cell::Int(i),
                None => unconvertible(notes, "a 64-bit integer"),
            },
            Value::String(s) => match s.parse::<i64>() {
                Ok(i) if i.to_string() == *s => Cell::Int(i),
                _ => unconvertible(notes, "an integer"),
            },
            Value::Bool(b) => Cell::Int(i64::from(*b)),
            _ => unconvertible(notes, "an integer"),
        },
        ColumnType::Real => match v {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                // An integer beyond 2^53 would change in a double.
                (Some(i), Some(f)) if f as i64 != i || i.unsigned_abs() > 1 << 53 => {
                    unconvertible(notes, "exactly representable as a double")
                }
                (_, Some(f)) => Cell::Real(f),
                _ => unconvertible(notes, "a number"),
            },
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && s.trim() == s => Cell::Real(f),
                _ => unconvertible(notes, "a number"),
            },
            _ => unconvertible(notes, "a number"),
        },
        ColumnType::Timestamp => {
            let parsed = match v {
                Value::String(s) => timestamp::parse_text(s, naive_offset),
                Value::Number(n) => timestamp::parse_number(n),
                _ => None,
            };
            match parsed {
                None => {
                    notes.add(NoteKind::TimestampUnparsed, || {
                        let shown: String = v.to_string().chars().take(80).collect();
                        format!("{name} (record {record}): {shown} is not a timestamp ferry reads; the column is NULL, the document keeps the text")
                    });
                    Cell::Null
                }
                Some(t) => {
                    let original = || match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if t.date_only {
                        notes.add(NoteKind::TimestampDateOnly, || {
                            format!(
                                "{name} (record {record}): `{}` has no time; read as midnight",
                                original()
                            )
                        });
                    } else if t.naive {
                        notes.add(NoteKind::TimestampNaive, || {
                            format!("{name} (record {record}): `{}` has no offset; read in the configured one as {}", original(), t.utc)
                        });
                    }
                    if t.truncated {
                        notes.add(NoteKind::TimestampTruncated, || {
                            format!("{name} (record {record}): `{}` has digits beyond microseconds; stored as {} (the document keeps them)", original(), t.utc)
                        });
                    }
                    if let Some(unit) = t.epoch {
                        let unit = match unit {
                            EpochUnit::Seconds => "seconds",
                            EpochUnit::Milliseconds => "milliseconds",
                        };
                        notes.add(NoteKind::TimestampEpoch, || {
                            format!(
                                "{name} (record {record}): {} read as epoch {unit}: {}",
                                original(),
                                t.utc
                            )
                        });
                    }
                    Cell::Text(t.utc)
                }
            }
        }
    }
}
