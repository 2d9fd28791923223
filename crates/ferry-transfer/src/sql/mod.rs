//! SQLite schema text into PostgreSQL, by meaning: CHECK constraints, index terms and
//! predicates, generated columns, views and triggers are parsed into a tree ([`ast`]) and
//! written out again knowing the PostgreSQL type chosen for every column ([`emit`]), so that
//! `flag IN (0, 1)` on a `boolean` becomes `flag IN (false, true)`, `length(code)` on a
//! `jsonb` scalar reads the scalar's text, `x LIKE 'a%'` keeps SQLite's ASCII-only case
//! folding, and `datetime(col)` on a `timestamp` prints what SQLite would have printed.
//!
//! A construct whose meaning cannot be kept is refused with the reason (it is then
//! reported as not carried over); what comes out is still tried by PostgreSQL, and what
//! PostgreSQL refuses is reported too. Column defaults are simpler and live in
//! [`defaults`].

pub mod ast;
pub mod defaults;
pub mod emit;

use ferry_core::plan::{TablePlan, TargetType};
use ferry_core::sqlite_text::{closing, split_top, tokenize, tokenize_spanned, Token};
use ferry_core::value::Affinity;

pub use defaults::translate_default;

/// The PostgreSQL type of an expression, as far as the translation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// SQL NULL, or a value of no known type.
    Null,
    Bool,
    Int,
    Numeric,
    Float,
    Text,
    /// A string literal: PostgreSQL gives it the type of what it meets.
    TextLit,
    Bytea,
    /// A column of the mixed-class jsonb scalars.
    Mixed,
    /// A jsonb (or json) document.
    Json,
    Date,
    Timestamp,
    Timestamptz,
    Uuid,
    Other,
    Unknown,
}

impl Ty {
    pub fn of(t: &TargetType) -> Ty {
        match t {
            TargetType::Boolean => Ty::Bool,
            TargetType::Smallint | TargetType::Integer | TargetType::Bigint => Ty::Int,
            TargetType::DoublePrecision => Ty::Float,
            TargetType::Numeric => Ty::Numeric,
            TargetType::Text => Ty::Text,
            TargetType::Bytea => Ty::Bytea,
            TargetType::Date => Ty::Date,
            TargetType::Timestamp => Ty::Timestamp,
            TargetType::Timestamptz => Ty::Timestamptz,
            TargetType::Json | TargetType::Jsonb => Ty::Json,
            TargetType::Uuid => Ty::Uuid,
            TargetType::RealArray => Ty::Other,
            TargetType::MixedJsonb => Ty::Mixed,
        }
    }

    pub fn is_number(self) -> bool {
        matches!(self, Ty::Int | Ty::Numeric | Ty::Float)
    }

    pub fn is_text(self) -> bool {
        matches!(self, Ty::Text | Ty::TextLit)
    }
}

/// One column as the translation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColInfo {
    pub source: String,
    pub target: String,
    pub ty: Ty,
    /// The SQLite column's affinity: it decides how SQLite compares the column with a
    /// literal.
    pub affinity: Affinity,
    /// A date/time column's text layout (`to_char` pattern), when every value shares one.
    pub layout: Option<String>,
    /// A `numeric` column that holds REAL values too (not only integers).
    pub reals: bool,
}

/// A table (or view, or subquery) as the translation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub source: String,
    pub target: String,
    pub columns: Vec<ColInfo>,
    /// The target column that is the table's rowid (an `INTEGER PRIMARY KEY`).
    pub rowid: Option<String>,
}

impl TableInfo {
    /// From a table's plan.
    pub fn of(t: &TablePlan, rowid_alias: Option<&str>) -> Self {
        TableInfo {
            source: t.source.clone(),
            target: t.target.clone(),
            columns: t
                .columns
                .iter()
                .map(|c| ColInfo {
                    source: c.source.clone(),
                    target: c.target.clone(),
                    ty: Ty::of(&c.target_type),
                    affinity: c.affinity,
                    layout: match c.target_type {
                        TargetType::Date => Some("YYYY-MM-DD".into()),
                        _ => c.profile.text_layout.clone(),
                    },
                    reals: c.target_type == TargetType::Numeric && c.profile.reals > 0,
                })
                .collect(),
            rowid: rowid_alias.and_then(|a| {
                t.columns
                    .iter()
                    .find(|c| c.source == a)
                    .map(|c| c.target.clone())
            }),
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColInfo> {
        self.columns.iter().find(|c| c.source == name).or_else(|| {
            self.columns
                .iter()
                .find(|c| c.source.eq_ignore_ascii_case(name))
        })
    }
}

/// Every table and view a translation may name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub tables: Vec<TableInfo>,
}

impl Catalog {
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.iter().find(|t| t.source == name).or_else(|| {
            self.tables
                .iter()
                .find(|t| t.source.eq_ignore_ascii_case(name))
        })
    }
}

/// The parts of a `CREATE INDEX` that the pragmas do not give: each key term and the WHERE.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexParts {
    pub terms: Vec<Vec<Token>>,
    pub predicate: Option<Vec<Token>>,
}

pub fn parse_create_index(sql: &str) -> Option<IndexParts> {
    let tokens = tokenize(sql);
    let on = tokens.iter().position(|t| t.is_word("ON"))?;
    let open = on + tokens[on..].iter().position(|t| *t == Token::LParen)?;
    let close = closing(&tokens, open)?;
    let terms = split_top(&tokens[open + 1..close])
        .into_iter()
        .map(<[Token]>::to_vec)
        .collect();
    let predicate = tokens[close + 1..]
        .iter()
        .position(|t| t.is_word("WHERE"))
        .map(|w| {
            tokens[close + 2 + w..]
                .iter()
                .filter(|t| **t != Token::Op(";".into()))
                .cloned()
                .collect()
        });
    Some(IndexParts { terms, predicate })
}

/// A `CREATE VIEW`: its column list if it has one, and its SELECT with the text of each
/// token (SQLite names an unaliased result column by its expression's text).
#[derive(Debug, Clone, PartialEq)]
pub struct ViewDef {
    pub columns: Option<Vec<String>>,
    pub body: Vec<Token>,
    /// The original text between tokens `[a, b)`, keyed by token positions.
    source: String,
    spans: Vec<std::ops::Range<usize>>,
}

impl ViewDef {
    /// The original text of body tokens `start..end`.
    pub fn text(&self, start: usize, end: usize) -> String {
        match (
            self.spans.get(start),
            end.checked_sub(1).and_then(|e| self.spans.get(e)),
        ) {
            (Some(a), Some(b)) if a.start <= b.end => self.source[a.start..b.end].to_owned(),
            _ => String::new(),
        }
    }
}

pub fn parse_create_view(sql: &str) -> Option<ViewDef> {
    let spanned = tokenize_spanned(sql);
    let tokens: Vec<Token> = spanned.iter().map(|(t, _)| t.clone()).collect();
    let view = tokens.iter().position(|t| t.is_word("VIEW"))?;
    let mut i = view + 1;
    // Skip IF NOT EXISTS and the (possibly schema-qualified) name.
    while i < tokens.len() && !tokens[i].is_word("AS") && tokens[i] != Token::LParen {
        i += 1;
    }
    let mut columns = None;
    if tokens.get(i) == Some(&Token::LParen) {
        let close = closing(&tokens, i)?;
        columns = Some(
            split_top(&tokens[i + 1..close])
                .iter()
                .filter_map(|p| p.first().and_then(Token::ident))
                .map(str::to_owned)
                .collect(),
        );
        i = close + 1;
    }
    if !tokens.get(i)?.is_word("AS") {
        return None;
    }
    let body: Vec<(Token, std::ops::Range<usize>)> = spanned[i + 1..]
        .iter()
        .filter(|(t, _)| *t != Token::Op(";".into()))
        .cloned()
        .collect();
    Some(ViewDef {
        columns,
        body: body.iter().map(|(t, _)| t.clone()).collect(),
        spans: body.iter().map(|(_, r)| r.clone()).collect(),
        source: sql.to_owned(),
    })
}

/// When a trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    Before,
    After,
    InsteadOf,
}

/// A `CREATE TRIGGER`, read.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerDef {
    pub name: String,
    pub timing: Timing,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub event: String,
    /// `UPDATE OF` columns.
    pub columns: Vec<String>,
    pub table: String,
    pub when: Option<Vec<Token>>,
    pub body: Vec<Token>,
}

pub fn parse_create_trigger(sql: &str) -> Option<TriggerDef> {
    let tokens = tokenize(sql);
    let at = tokens.iter().position(|t| t.is_word("TRIGGER"))?;
    let mut i = at + 1;
    if tokens.get(i).is_some_and(|t| t.is_word("IF")) {
        i += 3;
    }
    let mut name = tokens.get(i)?.ident()?.to_owned();
    i += 1;
    if tokens.get(i) == Some(&Token::Op(".".into())) {
        name = tokens.get(i + 1)?.ident()?.to_owned();
        i += 2;
    }
    let timing = if tokens.get(i)?.is_word("BEFORE") {
        i += 1;
        Timing::Before
    } else if tokens.get(i)?.is_word("AFTER") {
        i += 1;
        Timing::After
    } else if tokens.get(i)?.is_word("INSTEAD") {
        i += 2;
        Timing::InsteadOf
    } else {
        // SQLite's default is BEFORE.
        Timing::Before
    };
    let event = match tokens.get(i)? {
        Token::Word(w) => w.to_ascii_uppercase(),
        _ => return None,
    };
    i += 1;
    let mut columns = Vec::new();
    if event == "UPDATE" && tokens.get(i).is_some_and(|t| t.is_word("OF")) {
        i += 1;
        loop {
            columns.push(tokens.get(i)?.ident()?.to_owned());
            i += 1;
            if tokens.get(i) == Some(&Token::Comma) {
                i += 1;
                continue;
            }
            break;
        }
    }
    if !tokens.get(i)?.is_word("ON") {
        return None;
    }
    let mut table = tokens.get(i + 1)?.ident()?.to_owned();
    i += 2;
    if tokens.get(i) == Some(&Token::Op(".".into())) {
        table = tokens.get(i + 1)?.ident()?.to_owned();
        i += 2;
    }
    if tokens.get(i).is_some_and(|t| t.is_word("FOR")) {
        i += 3;
    }
    let mut when = None;
    if tokens.get(i).is_some_and(|t| t.is_word("WHEN")) {
        let begin = tokens[i..].iter().rposition(|t| t.is_word("BEGIN"))? + i;
        when = Some(tokens[i + 1..begin].to_vec());
        i = begin;
    }
    if !tokens.get(i)?.is_word("BEGIN") {
        return None;
    }
    let end = tokens.iter().rposition(|t| t.is_word("END"))?;
    Some(TriggerDef {
        name,
        timing,
        event,
        columns,
        table,
        when,
        body: tokens[i + 1..end].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_view_and_trigger_parts() {
        let parts = parse_create_index(
            "CREATE UNIQUE INDEX i ON t (lower(name) COLLATE NOCASE DESC, [b]) WHERE b > 0",
        )
        .unwrap();
        assert_eq!(parts.terms.len(), 2);
        assert!(parts.predicate.is_some());
        let v = parse_create_view("CREATE VIEW [v w] (a, b) AS SELECT x||y, z FROM t;").unwrap();
        assert_eq!(v.columns.clone().unwrap(), vec!["a", "b"]);
        assert_eq!(v.text(1, 4), "x||y");
        let t = parse_create_trigger(
            "CREATE TRIGGER IF NOT EXISTS main.chk BEFORE UPDATE OF a, b ON \"t t\" FOR EACH ROW \
             WHEN NEW.a > 0 BEGIN SELECT RAISE(ABORT, 'no'); END",
        )
        .unwrap();
        assert_eq!(t.name, "chk");
        assert_eq!(t.timing, Timing::Before);
        assert_eq!(t.event, "UPDATE");
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.table, "t t");
        assert!(t.when.is_some());
        assert!(t.body.first().is_some_and(|t| t.is_word("SELECT")));
    }
}
