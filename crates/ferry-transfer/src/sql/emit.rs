//! Writing a parsed SQLite expression or SELECT as PostgreSQL that means the same, knowing
//! the PostgreSQL type of every column.
//!
//! SQLite's rules kept on the way:
//! - a comparison result is an integer 0/1 and any number is a truth value; PostgreSQL
//!   keeps `boolean` apart, so booleans are cast where a number is wanted and numbers
//!   compared with 0 where a condition is wanted;
//! - a column's affinity converts the literal it is compared with (`code = '7'` on an
//!   INTEGER column compares with 7), and a number never equals a text;
//! - text compares byte for byte (`COLLATE "C"`), `LIKE` folds ASCII letters only and has
//!   no escape character unless one is given, `GLOB` is case-sensitive with `*`, `?`, `[…]`;
//! - integer division truncates, and division by zero is NULL, not an error;
//! - `||`, `length()`, `substr()` and `LIKE` see a value's text as SQLite writes it: an
//!   integer's decimal, a `boolean` as 0/1, a `jsonb` scalar's own text, a timestamp in the
//!   one layout its column's values were written in;
//! - NULLs sort first in ascending order.
//!
//! What cannot keep its meaning returns an error saying why, never a guess.

use ferry_core::value::Affinity;

use super::ast::{
    BinOp, Compound, Expr, From, JoinKind, LikeKind, OrderTerm, ResultColumn, Select, SelectCore,
    UnOp,
};
use super::defaults::to_char_format;
use super::{Catalog, ColInfo, TableInfo, Ty};
use crate::ident::{literal, quote};

/// Why something could not be translated.
pub type R<T> = Result<T, String>;

const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
/// SQLite's julian day epoch in milliseconds before the Unix epoch (2440587.5 days).
const JD_EPOCH_MS: i64 = 210_866_760_000_000;

/// One translated expression.
#[derive(Debug, Clone)]
pub struct Out {
    pub sql: String,
    pub ty: Ty,
    /// Set when the expression is a bare column: its affinity and layout matter.
    pub col: Option<ColInfo>,
    lit: Option<Lit>,
}

impl Out {
    fn new(sql: impl Into<String>, ty: Ty) -> Self {
        Out {
            sql: sql.into(),
            ty,
            col: None,
            lit: None,
        }
    }
}

/// A literal, kept for SQLite's comparison rules.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Null,
    Int(i64),
    Real(f64),
    Str(String),
    Blob(String),
}

/// Rows that column names refer to in a scope.
#[derive(Debug, Clone)]
struct Source {
    /// The name SQL text uses for it (alias, or table name), lower-cased.
    name: String,
    /// What qualifies its columns in the output (`None`: bare column names).
    qualifier: Option<String>,
    table: TableInfo,
}

/// Translates expressions and SELECTs against a [`Catalog`].
#[derive(Debug)]
pub struct Emitter<'a> {
    cat: &'a Catalog,
    scopes: Vec<Vec<Source>>,
    ctes: Vec<TableInfo>,
    /// The view being translated: its text names unaliased result columns.
    view: Option<&'a super::ViewDef>,
}

impl<'a> Emitter<'a> {
    /// For views: no columns in scope until a FROM brings them.
    pub fn new(cat: &'a Catalog) -> Self {
        Emitter {
            cat,
            scopes: Vec::new(),
            ctes: Vec::new(),
            view: None,
        }
    }

    /// For a view: result columns without an alias are named by their text, as in SQLite.
    pub fn for_view(cat: &'a Catalog, view: &'a super::ViewDef) -> Self {
        let mut e = Emitter::new(cat);
        e.view = Some(view);
        e
    }

    /// For a CHECK, an index or a generated column: the table's columns, named bare.
    pub fn for_table(cat: &'a Catalog, table: &TableInfo) -> Self {
        let mut e = Emitter::new(cat);
        e.scopes.push(vec![Source {
            name: table.source.to_lowercase(),
            qualifier: None,
            table: table.clone(),
        }]);
        e
    }

    /// For a trigger: `NEW` and `OLD` rows of its table; with `bare_is_new`, a column
    /// named without a table is the row's (the SET of a trigger's UPDATE of its own row).
    pub fn for_trigger(cat: &'a Catalog, table: &TableInfo, bare_is_new: bool) -> Self {
        let mut e = Emitter::new(cat);
        let mut sources: Vec<Source> = ["NEW", "OLD"]
            .into_iter()
            .map(|q| Source {
                name: q.to_lowercase(),
                qualifier: Some(q.to_owned()),
                table: table.clone(),
            })
            .collect();
        if bare_is_new {
            sources.insert(
                0,
                Source {
                    name: table.source.to_lowercase(),
                    qualifier: Some("NEW".to_owned()),
                    table: table.clone(),
                },
            );
        }
        e.scopes.push(sources);
        e
    }

    /// A condition (CHECK, WHERE, WHEN): PostgreSQL `boolean`.
    pub fn condition(&mut self, e: &Expr) -> R<String> {
        let o = self.expr(e)?;
        self.pred(o)
    }

    /// A value, `boolean` results turned into SQLite's 0/1.
    pub fn value(&mut self, e: &Expr) -> R<Out> {
        let o = self.expr(e)?;
        Ok(self.num(o))
    }

    fn pred(&self, o: Out) -> R<String> {
        match o.ty {
            Ty::Bool | Ty::Unknown => Ok(o.sql),
            Ty::Int | Ty::Numeric | Ty::Float => Ok(format!("({} <> 0)", o.sql)),
            Ty::Null => Ok("NULL::boolean".into()),
            Ty::TextLit => match o.lit {
                Some(Lit::Str(s)) => Ok(if leading_number(&s) != 0.0 {
                    "TRUE".into()
                } else {
                    "FALSE".into()
                }),
                _ => Err("a text used as a condition".into()),
            },
            other => Err(format!("a {} value used as a condition", ty_name(other))),
        }
    }

    /// `boolean` as 0/1, everything else as it is.
    fn num(&self, o: Out) -> Out {
        if o.ty == Ty::Bool {
            Out {
                sql: format!("({})::integer", o.sql),
                ty: Ty::Int,
                col: None,
                lit: None,
            }
        } else {
            o
        }
    }

    /// The value's text as SQLite writes it.
    fn text(&self, o: &Out) -> R<String> {
        Ok(match o.ty {
            Ty::Text | Ty::TextLit => o.sql.clone(),
            Ty::Int | Ty::Numeric => format!("({})::text", o.sql),
            Ty::Bool => format!("(({})::integer)::text", o.sql),
            Ty::Null => "NULL::text".into(),
            Ty::Mixed => format!("({} #>> '{{}}')", o.sql),
            Ty::Date => format!("to_char({}, 'YYYY-MM-DD')", o.sql),
            Ty::Timestamp => match o.col.as_ref().and_then(|c| c.layout.clone()) {
                Some(layout) => format!("to_char({}, {})", o.sql, literal(&layout)),
                None => return Err(unknown_layout(o)),
            },
            Ty::Timestamptz => match o.col.as_ref().and_then(|c| c.layout.clone()) {
                Some(layout) if layout.ends_with("\"Z\"") => format!(
                    "to_char({} AT TIME ZONE 'UTC', {})",
                    o.sql,
                    literal(&layout)
                ),
                _ => return Err(unknown_layout(o)),
            },
            Ty::Float => {
                return Err(
                    "SQLite writes a REAL with 15 significant digits and PostgreSQL with the shortest exact form, so their text differs"
                        .into(),
                )
            }
            Ty::Unknown => o.sql.clone(),
            other => {
                return Err(format!(
                    "the text of a {} value is not what SQLite stored",
                    ty_name(other)
                ))
            }
        })
    }

    pub fn expr(&mut self, e: &Expr) -> R<Out> {
        match e {
            Expr::Null => Ok(lit_out(Lit::Null)),
            Expr::Int(n) => Ok(lit_out(int_literal(n)?)),
            Expr::Real(n) => Ok(lit_out(Lit::Real(
                n.parse::<f64>()
                    .map_err(|_| format!("number {n} does not read"))?,
            ))),
            Expr::Str(s) => Ok(lit_out(Lit::Str(s.clone()))),
            Expr::Blob(b) => Ok(lit_out(Lit::Blob(b.clone()))),
            Expr::Current(kind) => {
                let fmt = match kind.as_str() {
                    "CURRENT_DATE" => "YYYY-MM-DD",
                    "CURRENT_TIME" => "HH24:MI:SS",
                    _ => "YYYY-MM-DD HH24:MI:SS",
                };
                Ok(Out::new(
                    format!("to_char(now() AT TIME ZONE 'UTC', '{fmt}')"),
                    Ty::Text,
                ))
            }
            Expr::Column { table, name } => self.column(table.as_deref(), name),
            Expr::Unary(op, inner) => self.unary(*op, inner),
            Expr::Binary(op, l, r) => self.binary(*op, l, r),
            Expr::Not(inner) => {
                let p = self.condition(inner)?;
                Ok(Out::new(format!("(NOT {p})"), Ty::Bool))
            }
            Expr::Is { l, r, not } => {
                let (l, r) = (self.expr(l)?, self.expr(r)?);
                self.is(l, r, *not)
            }
            Expr::Like {
                kind,
                not,
                l,
                pattern,
                escape,
            } => self.like(*kind, *not, l, pattern, escape.as_deref()),
            Expr::Between { e, lo, hi, not } => {
                let x = self.expr(e)?;
                let (lo, hi) = (self.expr(lo)?, self.expr(hi)?);
                let a = self.compare(BinOp::Ge, x.clone(), lo)?;
                let b = self.compare(BinOp::Le, x, hi)?;
                let both = format!("({} AND {})", a.sql, b.sql);
                Ok(Out::new(
                    if *not { format!("(NOT {both})") } else { both },
                    Ty::Bool,
                ))
            }
            Expr::InList { e, list, not } => self.in_list(e, list, *not),
            Expr::InSelect { e, select, not } => {
                let x = self.expr(e)?;
                let x = self.num(x);
                let (sub, _) = self.select(select)?;
                let neg = if *not { "NOT " } else { "" };
                Ok(Out::new(format!("({} {neg}IN ({sub}))", x.sql), Ty::Bool))
            }
            Expr::IsNull { e, not } => {
                let x = self.expr(e)?;
                let is = if *not { "IS NOT NULL" } else { "IS NULL" };
                Ok(Out::new(format!("({} {is})", x.sql), Ty::Bool))
            }
            Expr::Func {
                name,
                args,
                distinct,
                star,
                filter,
                window,
            } => {
                if *window {
                    return Err(format!("window function {name}() OVER (…)"));
                }
                let mut out = self.func(&name.to_lowercase(), args, *distinct, *star)?;
                if let Some(f) = filter {
                    let p = self.condition(f)?;
                    out.sql = format!("{} FILTER (WHERE {p})", out.sql);
                }
                Ok(out)
            }
            Expr::Cast { e, ty } => self.cast(e, ty),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => self.case(operand.as_deref(), whens, otherwise.as_deref()),
            Expr::Collate { e, collation } => {
                if collation.eq_ignore_ascii_case("BINARY") {
                    self.expr(e)
                } else {
                    Err(format!(
                        "COLLATE {collation} has no PostgreSQL collation with the same meaning"
                    ))
                }
            }
            Expr::Exists { select, not } => {
                let (sub, _) = self.select(select)?;
                let neg = if *not { "NOT " } else { "" };
                Ok(Out::new(format!("({neg}EXISTS ({sub}))"), Ty::Bool))
            }
            Expr::Subquery(select) => {
                let (sub, cols) = self.select(select)?;
                let ty = cols.first().map_or(Ty::Unknown, |c| c.ty);
                Ok(Out::new(format!("({sub})"), ty))
            }
            Expr::Raise { .. } => Err("RAISE() outside a trigger body".into()),
        }
    }

    fn column(&self, table: Option<&str>, name: &str) -> R<Out> {
        for scope in self.scopes.iter().rev() {
            let candidates: Vec<&Source> = match table {
                Some(t) => scope
                    .iter()
                    .filter(|s| s.name == t.to_lowercase())
                    .collect(),
                None => scope.iter().collect(),
            };
            for s in candidates {
                let col = s.table.column(name).cloned().or_else(|| {
                    // The rowid, by any of its names, is the INTEGER PRIMARY KEY column.
                    let is_rowid = ["rowid", "oid", "_rowid_"]
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(name));
                    s.table
                        .rowid
                        .as_ref()
                        .filter(|_| is_rowid)
                        .and_then(|t| s.table.columns.iter().find(|c| &c.target == t).cloned())
                });
                if let Some(c) = col {
                    let sql = match &s.qualifier {
                        Some(q) => format!("{q}.{}", quote(&c.target)),
                        None => quote(&c.target),
                    };
                    return Ok(Out {
                        sql,
                        ty: c.ty,
                        col: Some(c),
                        lit: None,
                    });
                }
                if table.is_some() {
                    if ["rowid", "oid", "_rowid_"]
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(name))
                    {
                        return Err(format!(
                            "the rowid of {:?}, which has no INTEGER PRIMARY KEY to stand for it in PostgreSQL",
                            s.table.source
                        ));
                    }
                    return Err(format!("no column {name:?} in {:?}", s.table.source));
                }
            }
        }
        match table {
            Some(t) => Err(format!("no table {t:?} in scope for column {name:?}")),
            // An output column's alias (ORDER BY total): PostgreSQL resolves it the same way.
            None => Ok(Out::new(quote(name), Ty::Unknown)),
        }
    }

    fn unary(&mut self, op: UnOp, inner: &Expr) -> R<Out> {
        let o = self.expr(inner)?;
        if op == UnOp::Neg {
            match &o.lit {
                Some(Lit::Int(i)) => {
                    return Ok(lit_out(match i.checked_neg() {
                        Some(n) => Lit::Int(n),
                        None => Lit::Real(-(*i as f64)),
                    }))
                }
                Some(Lit::Real(x)) => return Ok(lit_out(Lit::Real(-x))),
                _ => {}
            }
        }
        let o = self.num(o);
        let o = self.numeric_operand(o)?;
        Ok(match op {
            UnOp::Neg => Out::new(format!("(- {})", o.sql), o.ty),
            UnOp::Pos => o,
            UnOp::BitNot => {
                if o.ty != Ty::Int {
                    return Err("~ on a value that is not an integer".into());
                }
                Out::new(format!("(~ {})", o.sql), Ty::Int)
            }
        })
    }

    /// A value used in arithmetic: numbers as they are, a literal text as the number
    /// SQLite reads from it.
    fn numeric_operand(&self, o: Out) -> R<Out> {
        match o.ty {
            Ty::Int | Ty::Numeric | Ty::Float | Ty::Null | Ty::Unknown => Ok(o),
            Ty::TextLit => match &o.lit {
                Some(Lit::Str(s)) => Ok(lit_out(text_to_number(s))),
                _ => Err("arithmetic on a text".into()),
            },
            other => Err(format!(
                "arithmetic on a {} value (SQLite reads a number out of any text; PostgreSQL does not)",
                ty_name(other)
            )),
        }
    }

    fn binary(&mut self, op: BinOp, l: &Expr, r: &Expr) -> R<Out> {
        match op {
            BinOp::Or | BinOp::And => {
                let (a, b) = (self.condition(l)?, self.condition(r)?);
                Ok(Out::new(format!("({a} {} {b})", op.sql()), Ty::Bool))
            }
            _ if op.is_comparison() => {
                let (a, b) = (self.expr(l)?, self.expr(r)?);
                self.compare(op, a, b)
            }
            BinOp::Concat => {
                let (a, b) = (self.expr(l)?, self.expr(r)?);
                Ok(Out::new(
                    format!("({} || {})", self.text(&a)?, self.text(&b)?),
                    Ty::Text,
                ))
            }
            BinOp::Json => Err("SQLite's JSON operators -> and ->>".into()),
            BinOp::Add | BinOp::Sub | BinOp::Mul => {
                let a = self
                    .value(l)
                    .and_then(|a| self.numeric_operand(a))
                    .map(as_sqlite_real)?;
                let b = self
                    .value(r)
                    .and_then(|b| self.numeric_operand(b))
                    .map(as_sqlite_real)?;
                let ty = widest(a.ty, b.ty);
                Ok(Out::new(format!("({} {} {})", a.sql, op.sql(), b.sql), ty))
            }
            BinOp::Div | BinOp::Mod => {
                let a = self.value(l).and_then(|a| self.numeric_operand(a))?;
                let b = self.value(r).and_then(|b| self.numeric_operand(b))?;
                self.divide(op, a, b)
            }
            BinOp::BitAnd | BinOp::BitOr | BinOp::Shl | BinOp::Shr => {
                let a = self.value(l).and_then(|a| self.numeric_operand(a))?;
                let b = self.value(r).and_then(|b| self.numeric_operand(b))?;
                if !matches!(a.ty, Ty::Int | Ty::Null) || !matches!(b.ty, Ty::Int | Ty::Null) {
                    return Err(format!("{} on values that are not integers", op.sql()));
                }
                Ok(Out::new(
                    format!("({} {} {})", a.sql, op.sql(), b.sql),
                    Ty::Int,
                ))
            }
            _ => Err(format!("operator {}", op.sql())),
        }
    }

    /// Division and remainder: integers truncate, REALs divide as doubles, and a zero
    /// divisor gives NULL as in SQLite.
    fn divide(&self, op: BinOp, a: Out, b: Out) -> R<Out> {
        let int_like = |o: &Out| match o.ty {
            Ty::Int => Some(true),
            Ty::Numeric if o.col.as_ref().is_some_and(|c| !c.reals) => Some(true),
            Ty::Numeric => None,
            Ty::Float => Some(false),
            _ => Some(true),
        };
        let (x, y) = (&a.sql, &b.sql);
        Ok(match (op, int_like(&a), int_like(&b)) {
            (BinOp::Mod, _, _) if a.ty == Ty::Float || b.ty == Ty::Float => Out::new(
                format!("(trunc({x})::bigint % NULLIF(trunc({y})::bigint, 0))"),
                Ty::Int,
            ),
            (BinOp::Mod, _, _) => Out::new(format!("({x} % NULLIF({y}, 0))"), widest(a.ty, b.ty)),
            (_, Some(true), Some(true)) if a.ty == Ty::Numeric || b.ty == Ty::Numeric => {
                Out::new(format!("trunc({x} / NULLIF({y}, 0))"), Ty::Numeric)
            }
            (_, Some(true), Some(true)) => Out::new(format!("({x} / NULLIF({y}, 0))"), Ty::Int),
            (_, Some(false), _) | (_, _, Some(false)) => Out::new(
                format!("(({x})::float8 / NULLIF(({y})::float8, 0))"),
                Ty::Float,
            ),
            // A numeric column holding INTEGER and REAL values: each row divides as its
            // values' classes say.
            _ => Out::new(
                format!(
                    "(CASE WHEN scale({x}) = 0 AND scale({y}) = 0 THEN trunc({x} / NULLIF({y}, 0)) \
                     ELSE ({x})::float8 / NULLIF(({y})::float8, 0) END)"
                ),
                Ty::Float,
            ),
        })
    }

    /// A comparison with SQLite's rules.
    fn compare(&self, op: BinOp, l: Out, r: Out) -> R<Out> {
        if l.lit == Some(Lit::Null) || r.lit == Some(Lit::Null) {
            return Ok(Out::new("NULL::boolean", Ty::Bool));
        }
        if l.lit.is_some() && r.lit.is_none() {
            return self.compare(flip(op), r, l);
        }
        let (a, b) = match &r.lit {
            Some(lit) if l.lit.is_none() => self.against_literal(op, &l, lit)?,
            Some(_) => (l.sql.clone(), r.sql.clone()),
            None => self.against_value(op, &l, &r)?,
        };
        Ok(Out::new(format!("({a} {} {b})", op.sql()), Ty::Bool))
    }

    fn is(&self, l: Out, r: Out, not: bool) -> R<Out> {
        let null_side = match (&l.lit, &r.lit) {
            (Some(Lit::Null), _) => Some(r.clone()),
            (_, Some(Lit::Null)) => Some(l.clone()),
            _ => None,
        };
        if let Some(x) = null_side {
            let is = if not { "IS NOT NULL" } else { "IS NULL" };
            return Ok(Out::new(format!("({} {is})", x.sql), Ty::Bool));
        }
        let (l, r) = if l.lit.is_some() && r.lit.is_none() {
            (r, l)
        } else {
            (l, r)
        };
        let (a, b) = match &r.lit {
            Some(lit) if l.lit.is_none() => self.against_literal(BinOp::Eq, &l, lit)?,
            Some(_) => (l.sql.clone(), r.sql.clone()),
            None => self.against_value(BinOp::Eq, &l, &r)?,
        };
        let is = if not {
            "IS DISTINCT FROM"
        } else {
            "IS NOT DISTINCT FROM"
        };
        Ok(Out::new(format!("({a} {is} {b})"), Ty::Bool))
    }

    /// Both sides of `x op literal`, with the literal converted by `x`'s affinity first,
    /// as SQLite does.
    fn against_literal(&self, op: BinOp, x: &Out, lit: &Lit) -> R<(String, String)> {
        let affinity = x.col.as_ref().map(|c| c.affinity);
        let lit = match (affinity, lit) {
            (Some(Affinity::Integer | Affinity::Real | Affinity::Numeric), Lit::Str(s)) => {
                match sqlite_numeric(s) {
                    Some(n) => n,
                    None => lit.clone(),
                }
            }
            (Some(Affinity::Text), Lit::Int(i)) => Lit::Str(i.to_string()),
            (Some(Affinity::Text), Lit::Real(f)) => Lit::Str(sqlite_real_text(*f)),
            _ => lit.clone(),
        };
        let ordering = !matches!(op, BinOp::Eq | BinOp::Ne);
        let c_collate = |s: String| {
            if ordering {
                format!("{s} COLLATE \"C\"")
            } else {
                s
            }
        };
        match (x.ty, &lit) {
            (Ty::Bool, Lit::Int(i @ (0 | 1))) if !ordering => {
                Ok((x.sql.clone(), if *i == 1 { "true" } else { "false" }.into()))
            }
            (Ty::Bool, Lit::Int(_) | Lit::Real(_)) => {
                Ok((format!("({})::integer", x.sql), render_lit(&lit)?))
            }
            (Ty::Int | Ty::Numeric | Ty::Float, Lit::Int(_) | Lit::Real(_)) => {
                Ok((x.sql.clone(), render_lit(&lit)?))
            }
            (Ty::Int | Ty::Numeric | Ty::Float | Ty::Bool, _) => Err(
                "compares a number with a text or blob (never equal in SQLite; ordered by class)"
                    .into(),
            ),
            (Ty::Text, Lit::Str(s)) => Ok((c_collate(x.sql.clone()), literal(s))),
            // An INTEGER_OR_TEXT column as text: its integers are their decimals.
            (Ty::Text, Lit::Int(i)) if !ordering && integer_or_text(x) => {
                Ok((x.sql.clone(), literal(&i.to_string())))
            }
            (Ty::Text, Lit::Real(f))
                if !ordering && integer_or_text(x) && f.fract() == 0.0 && f.abs() < 9.2e18 =>
            {
                Ok((x.sql.clone(), literal(&(*f as i64).to_string())))
            }
            (Ty::Text, _) => Err(
                "compares a text with a number or blob (never equal in SQLite; ordered by class)"
                    .into(),
            ),
            (Ty::Mixed, _) if !ordering => Ok((x.sql.clone(), jsonb_literal(&lit)?)),
            (Ty::Mixed, _) => Err(
                "orders values of a mixed-class column (jsonb orders classes unlike SQLite)".into(),
            ),
            (Ty::Date | Ty::Timestamp | Ty::Timestamptz, Lit::Str(s)) => {
                Ok((c_collate(self.text(x)?), literal(s)))
            }
            (Ty::Bytea, Lit::Blob(b)) => Ok((x.sql.clone(), format!("'\\x{b}'::bytea"))),
            (Ty::Null | Ty::Unknown | Ty::Other, _) => Ok((x.sql.clone(), render_lit(&lit)?)),
            (ty, _) => Err(format!(
                "compares a {} column with a literal (SQLite compares the stored text)",
                ty_name(ty)
            )),
        }
    }

    /// Both sides of `a op b` for two non-literal values.
    fn against_value(&self, op: BinOp, a: &Out, b: &Out) -> R<(String, String)> {
        let ordering = !matches!(op, BinOp::Eq | BinOp::Ne);
        use Ty as T;
        match (a.ty, b.ty) {
            (T::Bool, T::Bool) if !ordering => Ok((a.sql.clone(), b.sql.clone())),
            (T::Bool | T::Int | T::Numeric | T::Float, T::Bool | T::Int | T::Numeric | T::Float) => {
                Ok((self.num(a.clone()).sql, self.num(b.clone()).sql))
            }
            (T::Text, T::Text) => Ok(if ordering {
                (format!("{} COLLATE \"C\"", a.sql), b.sql.clone())
            } else {
                (a.sql.clone(), b.sql.clone())
            }),
            (T::Mixed, T::Mixed) if !ordering => Ok((a.sql.clone(), b.sql.clone())),
            (T::Date, T::Date) | (T::Timestamp, T::Timestamp) | (T::Timestamptz, T::Timestamptz)
            | (T::Bytea, T::Bytea) | (T::Uuid, T::Uuid) => Ok((a.sql.clone(), b.sql.clone())),
            (T::Text, T::Date | T::Timestamp | T::Timestamptz) => {
                Ok((format!("{} COLLATE \"C\"", a.sql), self.text(b)?))
            }
            (T::Date | T::Timestamp | T::Timestamptz, T::Text) => {
                Ok((format!("{} COLLATE \"C\"", self.text(a)?), b.sql.clone()))
            }
            (T::Unknown | T::Null, _) | (_, T::Unknown | T::Null) => {
                Ok((a.sql.clone(), b.sql.clone()))
            }
            // A text column of INTEGER_OR_TEXT values writes each INTEGER as its decimal and
            // holds no text spelling one: equal exactly when SQLite's values are equal.
            (T::Text, T::Int) if !ordering && integer_or_text(a) => {
                Ok((a.sql.clone(), format!("({})::text", b.sql)))
            }
            (T::Int, T::Text) if !ordering && integer_or_text(b) => {
                Ok((format!("({})::text", a.sql), b.sql.clone()))
            }
            // Mixed-class scalars equal an integer or a text of the same class and value.
            (T::Mixed, T::Int | T::Text) if !ordering => {
                Ok((a.sql.clone(), self.coerced(b, T::Mixed)?))
            }
            (T::Int | T::Text, T::Mixed) if !ordering => {
                Ok((self.coerced(a, T::Mixed)?, b.sql.clone()))
            }
            (x, y) => Err(format!(
                "compares a {} with a {} (SQLite's rules for mixed classes differ from PostgreSQL's)",
                ty_name(x),
                ty_name(y)
            )),
        }
    }

    fn in_list(&mut self, e: &Expr, list: &[Expr], not: bool) -> R<Out> {
        let x = self.expr(e)?;
        if list.is_empty() {
            return Ok(Out::new(if not { "TRUE" } else { "FALSE" }, Ty::Bool));
        }
        let mut lhs = None;
        let mut items = Vec::new();
        for item in list {
            let o = self.expr(item)?;
            let (a, b) = match (&o.lit, &x.lit) {
                (Some(Lit::Null), _) => (x.sql.clone(), "NULL".to_owned()),
                (Some(lit), None) => self.against_literal(BinOp::Eq, &x, lit)?,
                (None, None) => self.against_value(BinOp::Eq, &x, &o)?,
                (_, Some(_)) => (x.sql.clone(), o.sql.clone()),
            };
            match &lhs {
                None => lhs = Some(a),
                Some(prev) if *prev == a => {}
                // The elements want the left side in different forms: compare one by one.
                Some(_) => {
                    let parts: R<Vec<String>> = list
                        .iter()
                        .map(|i| {
                            let o = self.expr(i)?;
                            Ok(self.compare(BinOp::Eq, x.clone(), o)?.sql)
                        })
                        .collect();
                    let any = format!("({})", parts?.join(" OR "));
                    return Ok(Out::new(
                        if not { format!("(NOT {any})") } else { any },
                        Ty::Bool,
                    ));
                }
            }
            items.push(b);
        }
        let neg = if not { "NOT " } else { "" };
        Ok(Out::new(
            format!(
                "({} {neg}IN ({}))",
                lhs.unwrap_or_default(),
                items.join(", ")
            ),
            Ty::Bool,
        ))
    }

    fn like(
        &mut self,
        kind: LikeKind,
        not: bool,
        l: &Expr,
        pattern: &Expr,
        escape: Option<&Expr>,
    ) -> R<Out> {
        let x = self.expr(l)?;
        let subject = self.text(&x)?;
        let p = self.expr(pattern)?;
        let neg = if not { "NOT " } else { "" };
        match kind {
            LikeKind::Like => {
                let esc = match escape {
                    None => "''".to_owned(),
                    Some(Expr::Str(s)) if s.chars().count() == 1 => literal(s),
                    Some(_) => {
                        return Err("LIKE … ESCAPE with an escape that is not one character".into())
                    }
                };
                // SQLite folds ASCII letters only; PostgreSQL's ILIKE folds every letter.
                let fold = |s: &str| format!("translate({s}, '{UPPER}', '{LOWER}')");
                let (subject, pat) = match &p.lit {
                    Some(Lit::Str(s)) => {
                        let lowered = s.to_ascii_lowercase();
                        if lowered.bytes().any(|b| b.is_ascii_lowercase()) {
                            (fold(&subject), literal(&lowered))
                        } else {
                            (subject, literal(s))
                        }
                    }
                    _ => (fold(&subject), fold(&self.text(&p)?)),
                };
                Ok(Out::new(
                    format!("({subject} {neg}LIKE {pat} ESCAPE {esc})"),
                    Ty::Bool,
                ))
            }
            LikeKind::Glob => match &p.lit {
                Some(Lit::Str(s)) => Ok(Out::new(
                    format!(
                        "({subject} {}~ {})",
                        if not { "!" } else { "" },
                        literal(&glob_regex(s)?)
                    ),
                    Ty::Bool,
                )),
                _ => Err("GLOB with a pattern that is not a literal".into()),
            },
            LikeKind::Regexp | LikeKind::Match => Err(format!(
                "{} (an application-defined function in SQLite)",
                if kind == LikeKind::Regexp {
                    "REGEXP"
                } else {
                    "MATCH"
                }
            )),
        }
    }

    fn cast(&mut self, e: &Expr, ty: &str) -> R<Out> {
        let o = self.expr(e)?;
        let o = self.num(o);
        match ferry_core::value::affinity(ty) {
            Affinity::Integer => match (o.ty, &o.lit) {
                (_, Some(Lit::Str(s))) => Ok(lit_out(match text_to_number(s) {
                    Lit::Real(f) => Lit::Int(f.trunc() as i64),
                    other => other,
                })),
                (Ty::Int | Ty::Null, _) => Ok(o),
                (Ty::Float | Ty::Numeric, _) => {
                    Ok(Out::new(format!("trunc({})::bigint", o.sql), Ty::Int))
                }
                (t, _) => Err(format!("CAST of a {} AS INTEGER", ty_name(t))),
            },
            Affinity::Text => Ok(Out::new(self.text(&o)?, Ty::Text)),
            Affinity::Real => match o.ty {
                Ty::Int | Ty::Float | Ty::Numeric | Ty::Null => {
                    Ok(Out::new(format!("({})::float8", o.sql), Ty::Float))
                }
                t => Err(format!("CAST of a {} AS REAL", ty_name(t))),
            },
            Affinity::Numeric if matches!(o.ty, Ty::Int | Ty::Null) => Ok(o),
            _ => Err(format!("CAST(… AS {ty})")),
        }
    }

    fn case(
        &mut self,
        operand: Option<&Expr>,
        whens: &[(Expr, Expr)],
        otherwise: Option<&Expr>,
    ) -> R<Out> {
        let op = operand.map(|o| self.expr(o)).transpose()?;
        let mut conds = Vec::new();
        let mut results = Vec::new();
        for (w, t) in whens {
            let cond = match &op {
                Some(x) => {
                    let v = self.expr(w)?;
                    self.compare(BinOp::Eq, x.clone(), v)?.sql
                }
                None => self.condition(w)?,
            };
            conds.push(cond);
            results.push(self.expr(t)?);
        }
        if let Some(e) = otherwise {
            results.push(self.expr(e)?);
        }
        let (results, ty) = self.unify(results)?;
        let mut sql = "(CASE".to_owned();
        for (c, r) in conds.iter().zip(&results) {
            sql.push_str(&format!(" WHEN {c} THEN {r}"));
        }
        if otherwise.is_some() {
            sql.push_str(&format!(" ELSE {}", results[results.len() - 1]));
        }
        sql.push_str(" END)");
        Ok(Out::new(sql, ty))
    }

    /// Values that go into one column (CASE results, coalesce arguments): one type.
    fn unify(&self, vals: Vec<Out>) -> R<(Vec<String>, Ty)> {
        let tys: Vec<Ty> = vals
            .iter()
            .map(|v| v.ty)
            .filter(|t| !matches!(t, Ty::Null | Ty::Unknown))
            .collect();
        let all = |f: fn(Ty) -> bool| tys.iter().all(|t| f(*t));
        if all(|t| t == Ty::Bool) {
            return Ok((vals.into_iter().map(|v| v.sql).collect(), Ty::Bool));
        }
        if all(|t| t.is_number() || t == Ty::Bool) {
            let ty = tys.iter().fold(
                Ty::Int,
                |acc, t| if *t == Ty::Bool { acc } else { widest(acc, *t) },
            );
            return Ok((vals.into_iter().map(|v| self.num(v).sql).collect(), ty));
        }
        if all(Ty::is_text) {
            return Ok((vals.into_iter().map(|v| v.sql).collect(), Ty::Text));
        }
        if let Some(first) = tys.first() {
            if tys.iter().all(|t| t == first || *t == Ty::TextLit) && !first.is_number() {
                return Ok((vals.into_iter().map(|v| v.sql).collect(), *first));
            }
        }
        // Values of different classes in one result: SQLite keeps each; PostgreSQL needs
        // one type. As text each still reads the same.
        let texts: R<Vec<String>> = vals.iter().map(|v| self.text(v)).collect();
        Ok((texts?, Ty::Text))
    }

    fn func(&mut self, name: &str, args: &[Expr], distinct: bool, star: bool) -> R<Out> {
        if distinct
            && !matches!(
                name,
                "count" | "sum" | "avg" | "group_concat" | "string_agg" | "max" | "min" | "total"
            )
        {
            return Err(format!("{name}(DISTINCT …)"));
        }
        if let Some(o) = self.general_fn(name, args)? {
            return Ok(o);
        }
        if let Some(o) = self.number_fn(name, args)? {
            return Ok(o);
        }
        if let Some(o) = self.text_fn(name, args)? {
            return Ok(o);
        }
        if let Some(o) = self.aggregate_fn(name, args, distinct, star)? {
            return Ok(o);
        }
        match name {
            "datetime" | "date" | "time" | "strftime" | "julianday" | "unixepoch" => {
                self.time_fn(name, args)
            }
            _ => Err(format!(
                "function {name}() has no PostgreSQL equivalent ferry translates"
            )),
        }
    }

    /// `coalesce`, `ifnull`, `nullif`, `iif` and the planner hints.
    fn general_fn(&mut self, name: &str, args: &[Expr]) -> R<Option<Out>> {
        let out = match name {
            "coalesce" | "ifnull" => {
                arity(name, args, 2..=usize::MAX)?;
                let vals: R<Vec<Out>> = args.iter().map(|a| self.expr(a)).collect();
                let (vals, ty) = self.unify(vals?)?;
                Ok(Out::new(format!("coalesce({})", vals.join(", ")), ty))
            }
            "nullif" => {
                arity(name, args, 2..=2)?;
                let (a, b) = (self.expr(&args[0])?, self.expr(&args[1])?);
                let eq = self.compare(BinOp::Eq, a.clone(), b)?;
                Ok(Out::new(
                    format!("(CASE WHEN {} THEN NULL ELSE {} END)", eq.sql, a.sql),
                    a.ty,
                ))
            }
            "iif" => {
                arity(name, args, 3..=3)?;
                self.case(None, &[(args[0].clone(), args[1].clone())], Some(&args[2]))
            }
            "likely" | "unlikely" => {
                arity(name, args, 1..=1)?;
                self.expr(&args[0])
            }
            "likelihood" => {
                arity(name, args, 2..=2)?;
                self.expr(&args[0])
            }
            _ => return Ok(None),
        };
        out.map(Some)
    }

    /// `abs`, `sign`, `round`.
    fn number_fn(&mut self, name: &str, args: &[Expr]) -> R<Option<Out>> {
        let out = match name {
            "abs" => {
                arity(name, args, 1..=1)?;
                let a = self.value(&args[0]).and_then(|a| self.numeric_operand(a))?;
                Ok(Out::new(format!("abs({})", a.sql), a.ty))
            }
            "sign" => {
                arity(name, args, 1..=1)?;
                let a = self.value(&args[0]).and_then(|a| self.numeric_operand(a))?;
                Ok(Out::new(format!("sign({})::integer", a.sql), Ty::Int))
            }
            "round" => {
                arity(name, args, 1..=2)?;
                let a = self.value(&args[0]).and_then(|a| self.numeric_operand(a))?;
                let n = match args.get(1) {
                    Some(x) => self.value(x)?,
                    None => lit_out(Lit::Int(0)),
                };
                if a.ty != Ty::Int && n.lit != Some(Lit::Int(0)) {
                    // 6378.1015 is 6378.10149999… in binary: SQLite rounds that to 6378.101,
                    // PostgreSQL's numeric reads it as 6378.1015 and rounds to 6378.102.
                    return Err(
                        "round() to decimal places of a REAL: SQLite rounds the exact binary value, PostgreSQL its decimal form, and they differ at halves"
                            .into(),
                    );
                }
                let n = n.sql;
                // SQLite rounds half away from zero and returns a REAL; so does numeric's
                // round, where float8's rounds half to even.
                Ok(Out::new(
                    format!("round(({})::numeric, ({n})::integer)::float8", a.sql),
                    Ty::Float,
                ))
            }
            _ => return Ok(None),
        };
        out.map(Some)
    }

    /// Functions of a value's text: `length`, `substr`, `instr`, `upper`, `trim`, `hex`, `typeof`, …
    fn text_fn(&mut self, name: &str, args: &[Expr]) -> R<Option<Out>> {
        let out = match name {
            "length" => {
                arity(name, args, 1..=1)?;
                let a = self.expr(&args[0])?;
                let sql = match a.ty {
                    Ty::Bytea => format!("octet_length({})", a.sql),
                    Ty::Null => "NULL::integer".into(),
                    Ty::Mixed => format!(
                        "(CASE WHEN jsonb_typeof({x}) = 'object' AND {x} ? '$blob' THEN length({x} ->> '$blob') / 2 ELSE length({x} #>> '{{}}') END)",
                        x = a.sql
                    ),
                    _ => format!("length({})", self.text(&a)?),
                };
                Ok(Out::new(sql, Ty::Int))
            }
            "octet_length" => {
                arity(name, args, 1..=1)?;
                let a = self.expr(&args[0])?;
                let sql = match a.ty {
                    Ty::Bytea => format!("octet_length({})", a.sql),
                    _ => format!("octet_length({})", self.text(&a)?),
                };
                Ok(Out::new(sql, Ty::Int))
            }
            "substr" | "substring" => {
                arity(name, args, 2..=3)?;
                let a = self.expr(&args[0])?;
                let t = self.text(&a)?;
                let start = self.value(&args[1])?;
                let from = match &start.lit {
                    Some(Lit::Int(i)) if *i >= 0 => i.to_string(),
                    // From the end, as SQLite counts a negative start.
                    Some(Lit::Int(i)) => format!("(length({t}) + {} + 1)", i),
                    _ => format!(
                        "(CASE WHEN {s} < 0 THEN length({t}) + {s} + 1 ELSE {s} END)",
                        s = start.sql
                    ),
                };
                match args.get(2) {
                    None => Ok(Out::new(format!("substr({t}, {from})"), Ty::Text)),
                    Some(n) => {
                        let n = self.value(n)?;
                        if matches!(n.lit, Some(Lit::Int(i)) if i < 0) {
                            return Err("substr() with a negative length".into());
                        }
                        Ok(Out::new(
                            format!("substr({t}, {from}, {})", n.sql),
                            Ty::Text,
                        ))
                    }
                }
            }
            "instr" => {
                arity(name, args, 2..=2)?;
                let (a, b) = (self.expr(&args[0])?, self.expr(&args[1])?);
                Ok(Out::new(
                    format!("strpos({}, {})", self.text(&a)?, self.text(&b)?),
                    Ty::Int,
                ))
            }
            "upper" | "lower" => {
                arity(name, args, 1..=1)?;
                let a = self.expr(&args[0])?;
                let (from, to) = if name == "upper" {
                    (LOWER, UPPER)
                } else {
                    (UPPER, LOWER)
                };
                // SQLite changes the case of ASCII letters only.
                Ok(Out::new(
                    format!("translate({}, '{from}', '{to}')", self.text(&a)?),
                    Ty::Text,
                ))
            }
            "trim" | "ltrim" | "rtrim" => {
                arity(name, args, 1..=2)?;
                let a = self.expr(&args[0])?;
                let f = if name == "trim" { "btrim" } else { name };
                let chars = match args.get(1) {
                    Some(c) => {
                        let c = self.expr(c)?;
                        format!(", {}", self.text(&c)?)
                    }
                    None => ", ' '".into(),
                };
                Ok(Out::new(
                    format!("{f}({}{chars})", self.text(&a)?),
                    Ty::Text,
                ))
            }
            "replace" => {
                arity(name, args, 3..=3)?;
                let parts: R<Vec<String>> = args
                    .iter()
                    .map(|x| self.expr(x).and_then(|o| self.text(&o)))
                    .collect();
                Ok(Out::new(
                    format!("replace({})", parts?.join(", ")),
                    Ty::Text,
                ))
            }
            "hex" => {
                arity(name, args, 1..=1)?;
                let a = self.expr(&args[0])?;
                let bytes = match a.ty {
                    Ty::Bytea => a.sql.clone(),
                    _ => format!("convert_to({}, 'UTF8')", self.text(&a)?),
                };
                Ok(Out::new(format!("upper(encode({bytes}, 'hex'))"), Ty::Text))
            }
            "unicode" => {
                arity(name, args, 1..=1)?;
                let a = self.expr(&args[0])?;
                Ok(Out::new(
                    format!("NULLIF(ascii({}), 0)", self.text(&a)?),
                    Ty::Int,
                ))
            }
            "char" => {
                let parts: R<Vec<String>> = args
                    .iter()
                    .map(|x| self.value(x).map(|o| format!("chr(({})::integer)", o.sql)))
                    .collect();
                let parts = parts?;
                Ok(Out::new(
                    if parts.is_empty() {
                        "''".into()
                    } else {
                        format!("({})", parts.join(" || "))
                    },
                    Ty::Text,
                ))
            }
            "typeof" => {
                arity(name, args, 1..=1)?;
                let a = self.expr(&args[0])?;
                Ok(Out::new(typeof_sql(&a), Ty::Text))
            }
            "json_valid" => {
                arity(name, args, 1..=1)?;
                let a = self.expr(&args[0])?;
                match a.ty {
                    // The column's type already holds only valid JSON.
                    Ty::Json => Ok(Out::new(format!("({} IS NOT NULL OR NULL)", a.sql), Ty::Bool)),
                    _ => Err("json_valid() on a column that is not json/jsonb has no PostgreSQL 15 equivalent".into()),
                }
            }
            _ => return Ok(None),
        };
        out.map(Some)
    }

    /// Aggregates: `count`, `sum`, `total`, `avg`, `max`, `min`, `group_concat`.
    fn aggregate_fn(
        &mut self,
        name: &str,
        args: &[Expr],
        distinct: bool,
        star: bool,
    ) -> R<Option<Out>> {
        let d = if distinct { "DISTINCT " } else { "" };
        let out = match name {
            "count" => {
                if star {
                    return Ok(Some(Out::new("count(*)", Ty::Int)));
                }
                arity(name, args, 1..=1)?;
                let a = self.value(&args[0])?;
                Ok(Out::new(format!("count({d}{})", a.sql), Ty::Int))
            }
            "sum" | "total" | "avg" => {
                arity(name, args, 1..=1)?;
                let a = self.value(&args[0]).and_then(|a| self.numeric_operand(a))?;
                Ok(match name {
                    "sum" => Out::new(
                        format!("sum({d}{})", a.sql),
                        if a.ty == Ty::Float {
                            Ty::Float
                        } else {
                            Ty::Numeric
                        },
                    ),
                    "total" => {
                        Out::new(format!("coalesce(sum({d}{})::float8, 0)", a.sql), Ty::Float)
                    }
                    _ => Out::new(format!("avg({d}{})::float8", a.sql), Ty::Float),
                })
            }
            "max" | "min" if args.len() == 1 => {
                let a = self.value(&args[0])?;
                let coll = if a.ty.is_text() { " COLLATE \"C\"" } else { "" };
                Ok(Out::new(format!("{name}({d}{}{coll})", a.sql), a.ty))
            }
            "max" | "min" => {
                arity(name, args, 2..=usize::MAX)?;
                let vals: R<Vec<Out>> = args.iter().map(|a| self.expr(a)).collect();
                let vals = vals?;
                let null_check: Vec<String> =
                    vals.iter().map(|v| format!("{} IS NULL", v.sql)).collect();
                let (vals, ty) = self.unify(vals)?;
                if ty.is_text() {
                    return Err(format!("{name}() of several texts (collation)"));
                }
                let f = if name == "max" { "GREATEST" } else { "LEAST" };
                // SQLite's scalar max/min are NULL when any argument is.
                Ok(Out::new(
                    format!(
                        "(CASE WHEN {} THEN NULL ELSE {f}({}) END)",
                        null_check.join(" OR "),
                        vals.join(", ")
                    ),
                    ty,
                ))
            }
            "group_concat" | "string_agg" => {
                arity(name, args, 1..=2)?;
                let a = self.expr(&args[0])?;
                let sep = match args.get(1) {
                    Some(s) => {
                        let s = self.expr(s)?;
                        self.text(&s)?
                    }
                    None => "','".into(),
                };
                Ok(Out::new(
                    format!("string_agg({d}{}, {sep})", self.text(&a)?),
                    Ty::Text,
                ))
            }
            _ => return Ok(None),
        };
        out.map(Some)
    }

    /// SQLite's date and time functions, on a value PostgreSQL holds as a timestamp.
    fn time_fn(&mut self, name: &str, args: &[Expr]) -> R<Out> {
        let (format, rest) = if name == "strftime" {
            match args.first() {
                Some(Expr::Str(f)) => (Some(f.clone()), &args[1..]),
                _ => return Err("strftime() with a format that is not a literal".into()),
            }
        } else {
            (None, args)
        };
        let now = Expr::Str("now".into());
        let value = rest.first().unwrap_or(&now);
        let mut modifiers = Vec::new();
        for m in rest.iter().skip(1) {
            match m {
                Expr::Str(s) => modifiers.push(s.to_ascii_lowercase()),
                _ => return Err(format!("{name}() with a modifier that is not a literal")),
            }
        }
        let unixepoch = modifiers.iter().any(|m| m == "unixepoch");
        modifiers.retain(|m| m != "unixepoch");
        let out_format = match (name, &format) {
            ("datetime", _) => Some("YYYY-MM-DD HH24:MI:SS".to_owned()),
            ("date", _) => Some("YYYY-MM-DD".to_owned()),
            ("time", _) => Some("HH24:MI:SS".to_owned()),
            ("strftime", Some(f)) => Some(to_char_format(f).ok_or_else(|| {
                format!("strftime format {f:?} has no to_char equivalent ferry translates")
            })?),
            _ => None,
        };
        // A constant: computed here, exactly as SQLite would (NULL when it is no time).
        if let (Expr::Str(s), true, Some(_)) = (value, modifiers.is_empty(), &out_format) {
            if !s.eq_ignore_ascii_case("now") {
                if let Some(folded) = fold_time(name, format.as_deref(), s) {
                    return Ok(lit_out(folded.map_or(Lit::Null, Lit::Str)));
                }
            }
        }
        let mut t = self.time_value(value, unixepoch)?;
        for m in &modifiers {
            t = apply_modifier(&t, m)?;
        }
        Ok(match (name, out_format) {
            ("julianday", _) => Out::new(
                format!(
                    "((floor(extract(epoch FROM {t}) * 1000) + {JD_EPOCH_MS})::float8 / 86400000)"
                ),
                Ty::Float,
            ),
            ("unixepoch", _) => {
                Out::new(format!("floor(extract(epoch FROM {t}))::bigint"), Ty::Int)
            }
            (_, Some(f)) => Out::new(format!("to_char({t}, {})", literal(&f)), Ty::Text),
            _ => return Err(format!("{name}()")),
        })
    }

    /// A time value as a PostgreSQL `timestamp` holding the UTC wall clock.
    fn time_value(&mut self, value: &Expr, unixepoch: bool) -> R<String> {
        if let Expr::Str(s) = value {
            if s.eq_ignore_ascii_case("now") {
                return Ok("(now() AT TIME ZONE 'UTC')".into());
            }
            let t = crate::timestamp::parse(s.as_bytes())
                .ok_or_else(|| format!("{s:?} is not a time SQLite and ferry both read"))?;
            return Ok(format!("TIMESTAMP {}", literal(&utc_wall(&t))));
        }
        if matches!(value, Expr::Current(_)) {
            return Ok("(now() AT TIME ZONE 'UTC')".into());
        }
        let o = self.expr(value)?;
        match (o.ty, unixepoch) {
            (Ty::Timestamp, false) => Ok(o.sql),
            (Ty::Timestamptz, false) => Ok(format!("({} AT TIME ZONE 'UTC')", o.sql)),
            (Ty::Date, false) => Ok(format!("({})::timestamp", o.sql)),
            (Ty::Int | Ty::Float | Ty::Numeric, true) => {
                Ok(format!("(to_timestamp({}) AT TIME ZONE 'UTC')", o.sql))
            }
            (Ty::Int | Ty::Float | Ty::Numeric, false) => {
                Err("a date function on a number (a julian day) is not translated".into())
            }
            (ty, _) => Err(format!(
                "a date function on a {} column, whose values are not all timestamps",
                ty_name(ty)
            )),
        }
    }

    /// A SELECT, and its output columns (SQLite's names and the types).
    pub fn select(&mut self, s: &Select) -> R<(String, Vec<ColInfo>)> {
        let saved_ctes = self.ctes.len();
        let mut sql = String::new();
        if !s.with.is_empty() {
            if s.recursive {
                return Err("WITH RECURSIVE is not translated".into());
            }
            let mut parts = Vec::new();
            for cte in &s.with {
                let (body, mut cols) = self.select(&cte.select)?;
                if !cte.columns.is_empty() {
                    if cte.columns.len() != cols.len() {
                        return Err(format!(
                            "CTE {:?} names a different number of columns",
                            cte.name
                        ));
                    }
                    for (c, n) in cols.iter_mut().zip(&cte.columns) {
                        c.source.clone_from(n);
                        c.target.clone_from(n);
                    }
                }
                parts.push(format!("{} AS ({body})", quote(&cte.name)));
                self.ctes.push(TableInfo {
                    source: cte.name.clone(),
                    target: cte.name.clone(),
                    columns: cols,
                    rowid: None,
                });
            }
            sql.push_str(&format!("WITH {} ", parts.join(", ")));
        }
        // The cores of a compound SELECT must agree on each column's type in PostgreSQL,
        // where SQLite lets every value keep its own class: a column whose cores disagree is
        // brought to one type that keeps every value's meaning.
        let mut coerce: Vec<Option<Ty>> = Vec::new();
        if !s.compounds.is_empty() {
            let saved = self.scopes.len();
            let mut tys: Vec<Vec<Ty>> = Vec::new();
            for core in std::iter::once(&s.first).chain(s.compounds.iter().map(|(_, c)| c)) {
                let (_, cols) = self.core(core, &[])?;
                tys.push(cols.iter().map(|c| c.ty).collect());
            }
            self.scopes.truncate(saved);
            let width = tys.iter().map(Vec::len).max().unwrap_or(0);
            coerce = (0..width)
                .map(|k| common_type(tys.iter().filter_map(|t| t.get(k).copied())))
                .collect();
        }
        let (first, cols) = self.core(&s.first, &coerce)?;
        sql.push_str(&first);
        for (op, core) in &s.compounds {
            let (next, _) = self.core(core, &coerce)?;
            let op = match op {
                Compound::Union => "UNION",
                Compound::UnionAll => "UNION ALL",
                Compound::Intersect => "INTERSECT",
                Compound::Except => "EXCEPT",
            };
            sql.push_str(&format!(" {op} {next}"));
        }
        if !s.order_by.is_empty() {
            // ORDER BY sees the output columns of a compound, the FROM of a simple SELECT.
            let compound = !s.compounds.is_empty();
            let mut terms = Vec::new();
            for t in &s.order_by {
                terms.push(self.order_term(t, &cols, compound, &s.first)?);
            }
            if compound {
                // PostgreSQL orders a compound by bare output names only; the byte order
                // of SQLite's text needs a COLLATE, so the compound becomes a subquery.
                sql = format!("SELECT * FROM ({sql}) AS \"compound\"");
            }
            sql.push_str(&format!(" ORDER BY {}", terms.join(", ")));
        }
        if let Some(l) = &s.limit {
            let l = self.value(l)?;
            // A negative limit means none in SQLite.
            sql.push_str(&format!(" LIMIT NULLIF(GREATEST({}, -1), -1)", l.sql));
        }
        if let Some(o) = &s.offset {
            let o = self.value(o)?;
            sql.push_str(&format!(" OFFSET {}", o.sql));
        }
        self.ctes.truncate(saved_ctes);
        Ok((sql, cols))
    }

    fn order_term(
        &mut self,
        t: &OrderTerm,
        cols: &[ColInfo],
        compound: bool,
        first: &SelectCore,
    ) -> R<String> {
        let term = match &t.e {
            Expr::Int(n) => {
                let i: usize = n.parse().map_err(|_| format!("ORDER BY {n}"))?;
                let c = cols
                    .get(i.wrapping_sub(1))
                    .ok_or_else(|| format!("ORDER BY {n}: no such output column"))?;
                Out {
                    sql: n.clone(),
                    ty: c.ty,
                    col: None,
                    lit: None,
                }
            }
            Expr::Column { table: None, name }
                if compound
                    || cols
                        .iter()
                        .any(|c| c.source == *name && !first_has_column(first, name)) =>
            {
                let c = cols
                    .iter()
                    .find(|c| c.source.eq_ignore_ascii_case(name))
                    .ok_or_else(|| format!("ORDER BY {name}: no such output column"))?;
                Out::new(quote(&c.source), c.ty)
            }
            e => {
                self.scopes.push(self.core_scope(first)?);
                let o = self.value(e);
                self.scopes.pop();
                o?
            }
        };
        let coll = if term.ty.is_text() {
            " COLLATE \"C\""
        } else {
            ""
        };
        let dir = if t.desc { " DESC" } else { "" };
        // SQLite sorts NULL first in ascending order, PostgreSQL last.
        let nulls = match (t.nulls_first, t.desc) {
            (Some(true), _) | (None, false) => " NULLS FIRST",
            (Some(false), _) | (None, true) => " NULLS LAST",
        };
        Ok(format!("{}{coll}{dir}{nulls}", term.sql))
    }

    fn core_scope(&self, core: &SelectCore) -> R<Vec<Source>> {
        let mut sources = Vec::new();
        if let Some(f) = &core.from {
            self.sources_of(f, &mut sources)?;
        }
        Ok(sources)
    }

    fn core(&mut self, c: &SelectCore, coerce: &[Option<Ty>]) -> R<(String, Vec<ColInfo>)> {
        if c.values {
            return Err("VALUES lists are not translated".into());
        }
        let mut sources = Vec::new();
        let from = match &c.from {
            Some(f) => Some(self.emit_from(f, &mut sources)?),
            None => None,
        };
        self.scopes.push(sources.clone());
        let res = self.core_body(c, from, &sources, coerce);
        self.scopes.pop();
        res
    }

    fn core_body(
        &mut self,
        c: &SelectCore,
        from: Option<String>,
        sources: &[Source],
        coerce: &[Option<Ty>],
    ) -> R<(String, Vec<ColInfo>)> {
        let mut outs: Vec<(Out, ColInfo)> = Vec::new();
        let column_out = |s: &Source, col: &ColInfo| Out {
            sql: qualified_col(s, col),
            ty: col.ty,
            col: Some(col.clone()),
            lit: None,
        };
        for rc in &c.columns {
            match rc {
                ResultColumn::Star => {
                    if sources.is_empty() {
                        return Err("SELECT * without FROM".into());
                    }
                    for s in sources {
                        for col in &s.table.columns {
                            outs.push((column_out(s, col), col.clone()));
                        }
                    }
                }
                ResultColumn::TableStar(t) => {
                    let s = sources
                        .iter()
                        .find(|s| s.name == t.to_lowercase())
                        .ok_or_else(|| format!("{t}.* names no table in FROM"))?;
                    for col in &s.table.columns {
                        outs.push((column_out(s, col), col.clone()));
                    }
                }
                ResultColumn::Expr { e, alias, tokens } => {
                    let o = self.expr(e)?;
                    let name = match (alias, e) {
                        (Some(a), _) => a.clone(),
                        (None, Expr::Column { name, .. }) => {
                            o.col.as_ref().map_or(name.clone(), |c| c.source.clone())
                        }
                        (None, _) => self
                            .view
                            .map(|v| v.text(tokens.0, tokens.1))
                            .filter(|t| !t.is_empty())
                            .unwrap_or_else(|| format!("column{}", outs.len() + 1)),
                    };
                    let mut info = o.col.clone().unwrap_or(ColInfo {
                        source: String::new(),
                        target: String::new(),
                        ty: o.ty,
                        affinity: Affinity::Blob,
                        layout: None,
                        reals: false,
                    });
                    info.ty = o.ty;
                    info.source = name;
                    outs.push((o, info));
                }
            }
        }
        let mut items = Vec::new();
        let mut cols: Vec<ColInfo> = Vec::new();
        for (k, (o, mut info)) in outs.into_iter().enumerate() {
            let sql = match coerce.get(k).copied().flatten() {
                Some(ty) if ty != o.ty => {
                    info.ty = ty;
                    self.coerced(&o, ty)?
                }
                _ => o.sql,
            };
            // SQLite disambiguates a repeated output name with `:1`, `:2`, …
            let base = info.source.clone();
            let mut n = 0;
            while cols
                .iter()
                .any(|c| c.source.eq_ignore_ascii_case(&info.source))
            {
                n += 1;
                info.source = format!("{base}:{n}");
            }
            info.target.clone_from(&info.source);
            items.push(format!("{sql} AS {}", quote(&info.source)));
            cols.push(info);
        }
        let mut sql = format!(
            "SELECT {}{}",
            if c.distinct { "DISTINCT " } else { "" },
            items.join(", ")
        );
        if let Some(f) = from {
            sql.push_str(&format!(" FROM {f}"));
        }
        if let Some(w) = &c.filter {
            sql.push_str(&format!(" WHERE {}", self.condition(w)?));
        }
        if !c.group_by.is_empty() {
            let mut g = Vec::new();
            for e in &c.group_by {
                g.push(match e {
                    Expr::Int(n) => n.clone(),
                    e => self.value(e)?.sql,
                });
            }
            sql.push_str(&format!(" GROUP BY {}", g.join(", ")));
        }
        if let Some(h) = &c.having {
            sql.push_str(&format!(" HAVING {}", self.condition(h)?));
        }
        Ok((sql, cols))
    }

    fn sources_of(&self, f: &From, out: &mut Vec<Source>) -> R<()> {
        match f {
            From::Table { name, alias } => {
                let table = self
                    .ctes
                    .iter()
                    .rev()
                    .find(|t| t.source.eq_ignore_ascii_case(name))
                    .or_else(|| self.cat.table(name))
                    .ok_or_else(|| format!("no table or view {name:?}"))?;
                let shown = alias.clone().unwrap_or_else(|| table.target.clone());
                out.push(Source {
                    name: alias.as_deref().unwrap_or(name).to_lowercase(),
                    qualifier: Some(quote(&shown)),
                    table: table.clone(),
                });
                Ok(())
            }
            From::Subquery { alias, .. } => {
                let Some(alias) = alias else {
                    return Err("a subquery in FROM without an alias".into());
                };
                // Its columns are filled in by `from_sql`.
                out.push(Source {
                    name: alias.to_lowercase(),
                    qualifier: Some(quote(alias)),
                    table: TableInfo {
                        source: alias.clone(),
                        target: alias.clone(),
                        columns: Vec::new(),
                        rowid: None,
                    },
                });
                Ok(())
            }
            From::Join { left, right, .. } => {
                self.sources_of(left, out)?;
                self.sources_of(right, out)
            }
        }
    }

    fn emit_from(&mut self, f: &From, sources: &mut Vec<Source>) -> R<String> {
        match f {
            From::Table { alias, .. } => {
                self.sources_of(f, sources)?;
                let table = sources
                    .last()
                    .map(|s| s.table.target.clone())
                    .unwrap_or_default();
                Ok(match alias {
                    Some(a) => format!("{} AS {}", quote(&table), quote(a)),
                    None => quote(&table),
                })
            }
            From::Subquery { select, alias } => {
                let (sub, cols) = self.select(select)?;
                self.sources_of(f, sources)?;
                if let Some(last) = sources.last_mut() {
                    last.table.columns = cols
                        .into_iter()
                        .map(|mut c| {
                            c.target.clone_from(&c.source);
                            c
                        })
                        .collect();
                }
                Ok(format!(
                    "({sub}) AS {}",
                    quote(alias.as_deref().unwrap_or_default())
                ))
            }
            From::Join {
                left,
                kind,
                natural,
                right,
                on,
                using,
            } => {
                let l = self.emit_from(left, sources)?;
                let r = self.emit_from(right, sources)?;
                let kw = match kind {
                    JoinKind::Comma => return Ok(format!("{l} CROSS JOIN {r}")),
                    JoinKind::Inner => "JOIN",
                    JoinKind::Left => "LEFT JOIN",
                    JoinKind::Right => "RIGHT JOIN",
                    JoinKind::Full => "FULL JOIN",
                    JoinKind::Cross => "CROSS JOIN",
                };
                let nat = if *natural { "NATURAL " } else { "" };
                let mut sql = format!("{l} {nat}{kw} {r}");
                if let Some(on) = on {
                    self.scopes.push(sources.clone());
                    let cond = self.condition(on);
                    self.scopes.pop();
                    sql.push_str(&format!(" ON {}", cond?));
                } else if !using.is_empty() {
                    sql.push_str(&format!(
                        " USING ({})",
                        using
                            .iter()
                            .map(|u| quote(u))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                } else if !natural && matches!(kind, JoinKind::Inner | JoinKind::Left) {
                    // SQLite allows a JOIN without ON; PostgreSQL needs one.
                    sql.push_str(" ON TRUE");
                }
                Ok(sql)
            }
        }
    }
}

/// The one type a compound SELECT's column takes when its cores disagree: `None` when they
/// agree (or PostgreSQL unifies them itself, as it does numbers).
fn common_type(tys: impl Iterator<Item = Ty>) -> Option<Ty> {
    let tys: Vec<Ty> = tys
        .filter(|t| !matches!(t, Ty::Null | Ty::Unknown | Ty::TextLit))
        .collect();
    let first = *tys.first()?;
    if tys.iter().all(|t| *t == first) || tys.iter().all(|t| t.is_number()) {
        return None;
    }
    if tys.iter().all(|t| t.is_number() || *t == Ty::Bool) {
        return Some(Ty::Int);
    }
    if tys.contains(&Ty::Mixed) {
        return Some(Ty::Mixed);
    }
    Some(Ty::Text)
}

impl Emitter<'_> {
    /// A value brought to another type without changing what it means in SQLite.
    fn coerced(&self, o: &Out, ty: Ty) -> R<String> {
        match ty {
            Ty::Text => self.text(o),
            Ty::Int => Ok(self.num(o.clone()).sql),
            Ty::Mixed => match o.ty {
                Ty::Mixed => Ok(o.sql.clone()),
                Ty::Int => Ok(format!("to_jsonb({})", o.sql)),
                Ty::Bool => Ok(format!("to_jsonb(({})::integer)", o.sql)),
                Ty::Text | Ty::TextLit => Ok(format!("to_jsonb(({})::text)", o.sql)),
                other => Err(format!(
                    "a {} value among mixed-class values of a compound SELECT",
                    ty_name(other)
                )),
            },
            other => Err(format!("values of a compound SELECT as {}", ty_name(other))),
        }
    }
}

/// A `numeric` column that holds SQLite REALs computes as SQLite does, in doubles: `32.8 *
/// 25` is 819.9999999999999 there, not numeric's exact 820. Its integers stay exact (up to
/// 2^53), as SQLite keeps them.
fn as_sqlite_real(o: Out) -> Out {
    if o.ty == Ty::Numeric && o.col.as_ref().is_some_and(|c| c.reals) {
        Out::new(format!("({})::float8", o.sql), Ty::Float)
    } else {
        o
    }
}

/// A text value from a column with INTEGER (or numeric) affinity: INTEGER_OR_TEXT values.
fn integer_or_text(o: &Out) -> bool {
    o.col.as_ref().is_some_and(|c| {
        matches!(
            c.affinity,
            Affinity::Integer | Affinity::Numeric | Affinity::Real
        )
    })
}

fn first_has_column(first: &SelectCore, name: &str) -> bool {
    first.columns.iter().any(|c| matches!(c, ResultColumn::Expr { e: Expr::Column { name: n, .. }, alias: None, .. } if n.eq_ignore_ascii_case(name)))
}

fn qualified_col(s: &Source, c: &ColInfo) -> String {
    match &s.qualifier {
        Some(q) => format!("{q}.{}", quote(&c.target)),
        None => quote(&c.target),
    }
}

fn lit_out(l: Lit) -> Out {
    let (sql, ty) = match &l {
        Lit::Null => ("NULL".to_owned(), Ty::Null),
        Lit::Int(i) => (i.to_string(), Ty::Int),
        Lit::Real(f) => (pg_real(*f), Ty::Float),
        Lit::Str(s) => (literal(s), Ty::TextLit),
        Lit::Blob(b) => (format!("'\\x{b}'::bytea"), Ty::Bytea),
    };
    Out {
        sql,
        ty,
        col: None,
        lit: Some(l),
    }
}

fn render_lit(l: &Lit) -> R<String> {
    Ok(lit_out(l.clone()).sql)
}

/// A REAL literal for PostgreSQL: exact digits, typed as a double.
fn pg_real(f: f64) -> String {
    if f.is_finite() {
        format!("{}::float8", crate::encode::real_decimal(f))
    } else if f.is_nan() {
        "'NaN'::float8".into()
    } else if f > 0.0 {
        "'Infinity'::float8".into()
    } else {
        "'-Infinity'::float8".into()
    }
}

fn int_literal(n: &str) -> R<Lit> {
    if let Some(hex) = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
        let v =
            u64::from_str_radix(hex, 16).map_err(|_| format!("hex literal {n} out of range"))?;
        return Ok(Lit::Int(v as i64));
    }
    Ok(match n.parse::<i64>() {
        Ok(i) => Lit::Int(i),
        // Too large for INTEGER: SQLite reads it as a REAL.
        Err(_) => Lit::Real(n.parse::<f64>().map_err(|_| format!("number {n}"))?),
    })
}

/// The number SQLite's numeric affinity makes of a text, if it makes one.
fn sqlite_numeric(s: &str) -> Option<Lit> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Lit::Int(i));
    }
    let looks = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    match t.parse::<f64>() {
        Ok(f) if looks && f.is_finite() => {
            if f.fract() == 0.0 && f.abs() < 9.2e18 {
                Some(Lit::Int(f as i64))
            } else {
                Some(Lit::Real(f))
            }
        }
        _ => None,
    }
}

/// The number SQLite reads from a text used in arithmetic: its longest numeric prefix, or 0.
fn text_to_number(s: &str) -> Lit {
    if let Some(n) = sqlite_numeric(s) {
        return n;
    }
    let f = leading_number(s);
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        Lit::Int(f as i64)
    } else {
        Lit::Real(f)
    }
}

fn leading_number(s: &str) -> f64 {
    let t = s.trim_start();
    let mut end = 0;
    for i in (1..=t.len()).rev() {
        if t.is_char_boundary(i) && t[..i].parse::<f64>().is_ok() {
            end = i;
            break;
        }
    }
    t[..end].parse::<f64>().unwrap_or(0.0)
}

/// A REAL as SQLite writes it as text (`%!.15g`), for the literals it converts itself.
fn sqlite_real_text(f: f64) -> String {
    let s = format!("{f:.15e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mant = mant.trim_end_matches('0').trim_end_matches('.');
    if (-5..15).contains(&exp) {
        let v: f64 = format!("{mant}e{exp}").parse().unwrap_or(f);
        let mut out = format!("{v}");
        if !out.contains('.') {
            out.push_str(".0");
        }
        out
    } else {
        let mant = if mant.contains('.') {
            mant.to_owned()
        } else {
            format!("{mant}.0")
        };
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

fn jsonb_literal(l: &Lit) -> R<String> {
    Ok(match l {
        Lit::Int(i) => format!("'{i}'::jsonb"),
        Lit::Real(f) if f.is_finite() => format!("'{}'::jsonb", crate::encode::real_decimal(*f)),
        Lit::Real(_) => return Err("a non-finite REAL literal".into()),
        Lit::Str(s) => format!("to_jsonb({}::text)", literal(s)),
        Lit::Blob(b) => format!("'{{\"$blob\":\"{b}\"}}'::jsonb"),
        Lit::Null => "NULL".into(),
    })
}

fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::Le => BinOp::Ge,
        BinOp::Gt => BinOp::Lt,
        BinOp::Ge => BinOp::Le,
        other => other,
    }
}

fn widest(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Float, _) | (_, Ty::Float) => Ty::Float,
        (Ty::Numeric, _) | (_, Ty::Numeric) => Ty::Numeric,
        (Ty::Unknown, _) | (_, Ty::Unknown) => Ty::Unknown,
        _ => Ty::Int,
    }
}

fn ty_name(t: Ty) -> &'static str {
    match t {
        Ty::Null => "NULL",
        Ty::Bool => "boolean",
        Ty::Int => "integer",
        Ty::Numeric => "numeric",
        Ty::Float => "double precision",
        Ty::Text | Ty::TextLit => "text",
        Ty::Bytea => "bytea",
        Ty::Mixed => "mixed-class jsonb",
        Ty::Json => "jsonb document",
        Ty::Date => "date",
        Ty::Timestamp => "timestamp",
        Ty::Timestamptz => "timestamptz",
        Ty::Uuid => "uuid",
        Ty::Other => "array",
        Ty::Unknown => "value",
    }
}

fn unknown_layout(o: &Out) -> String {
    format!(
        "the text of {} ({}): its values were not all written in one layout, so SQLite's text is not recoverable",
        o.col.as_ref().map_or("a value", |c| c.source.as_str()),
        ty_name(o.ty)
    )
}

/// `typeof(x)` by what the PostgreSQL type holds.
fn typeof_sql(a: &Out) -> String {
    let x = &a.sql;
    let when = |class: &str| format!("(CASE WHEN {x} IS NULL THEN 'null' ELSE '{class}' END)");
    match a.ty {
        Ty::Null => "'null'".into(),
        Ty::Bool | Ty::Int => when("integer"),
        Ty::Float => when("real"),
        Ty::Numeric => format!(
            "(CASE WHEN {x} IS NULL THEN 'null' WHEN scale({x}) = 0 THEN 'integer' ELSE 'real' END)"
        ),
        Ty::Bytea => when("blob"),
        Ty::Mixed => format!(
            "(CASE jsonb_typeof({x}) WHEN 'number' THEN (CASE WHEN ({x} #>> '{{}}') ~ '[.eE]' THEN 'real' ELSE 'integer' END) \
             WHEN 'string' THEN 'text' WHEN 'object' THEN (CASE WHEN {x} ? '$blob' THEN 'blob' ELSE 'real' END) ELSE 'null' END)"
        ),
        // A text column of INTEGER_OR_TEXT values keeps each INTEGER as its decimal, and no
        // TEXT there spells an integer: the class is read back from the text.
        Ty::Text
            if a.col.as_ref().is_some_and(|c| {
                matches!(c.affinity, Affinity::Integer | Affinity::Numeric | Affinity::Real)
            }) =>
        {
            format!(
                "(CASE WHEN {x} IS NULL THEN 'null' WHEN {x} ~ '^-?(0|[1-9][0-9]*)$' THEN 'integer' ELSE 'text' END)"
            )
        }
        _ => when("text"),
    }
}

/// That a function got as many arguments as it takes.
fn arity(name: &str, args: &[Expr], n: std::ops::RangeInclusive<usize>) -> R<()> {
    if n.contains(&args.len()) {
        Ok(())
    } else {
        Err(format!("{name}() with {} arguments", args.len()))
    }
}

/// A GLOB pattern as an anchored PostgreSQL regular expression.
fn glob_regex(glob: &str) -> R<String> {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                // A `]` first in the set is a member.
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if c == '\\' {
                        out.push_str("\\\\");
                    } else {
                        out.push(c);
                    }
                }
                if !closed {
                    return Err(format!("GLOB pattern {glob:?} has an unclosed ["));
                }
                out.push(']');
            }
            c if "\\.^$|()+{}".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    Ok(out)
}

fn apply_modifier(t: &str, m: &str) -> R<String> {
    let m = m.trim();
    if let Some(unit) = m.strip_prefix("start of ") {
        return match unit {
            "day" | "month" | "year" => Ok(format!("date_trunc('{unit}', {t})")),
            _ => Err(format!("modifier {m:?}")),
        };
    }
    let (num, unit) = m
        .split_once(' ')
        .ok_or_else(|| format!("modifier {m:?} is not translated"))?;
    let unit = unit.trim().trim_end_matches('s');
    if !matches!(unit, "day" | "hour" | "minute" | "second") {
        // SQLite normalises '+1 month' past a month's end where PostgreSQL clamps.
        return Err(format!("modifier {m:?} is not translated"));
    }
    let n: f64 = num
        .parse()
        .map_err(|_| format!("modifier {m:?} is not translated"))?;
    Ok(format!(
        "({t} + interval {})",
        literal(&format!("{n} {unit}"))
    ))
}

/// The UTC wall clock of a parsed time, as PostgreSQL reads a `timestamp` literal.
fn utc_wall(t: &crate::timestamp::Timestamp) -> String {
    let (h, m, s, us) = t.time.unwrap_or((0, 0, 0, 0));
    let naive = t.date.and_hms_micro_opt(h, m, s, us).unwrap_or_default();
    let utc = naive - chrono::Duration::seconds(i64::from(t.offset.unwrap_or(0)));
    utc.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// `datetime('1997-01-01')` and friends on a literal, computed as SQLite does: `None` when
/// it cannot be computed here, `Some(None)` when SQLite gives NULL.
fn fold_time(name: &str, format: Option<&str>, text: &str) -> Option<Option<String>> {
    let Some(t) = crate::timestamp::parse(text.as_bytes()) else {
        return Some(None);
    };
    let (h, m, s, us) = t.time.unwrap_or((0, 0, 0, 0));
    let naive = t.date.and_hms_micro_opt(h, m, s, us)?;
    let utc = naive - chrono::Duration::seconds(i64::from(t.offset.unwrap_or(0)));
    let fmt = match (name, format) {
        ("datetime", _) => "%Y-%m-%d %H:%M:%S".to_owned(),
        ("date", _) => "%Y-%m-%d".to_owned(),
        ("time", _) => "%H:%M:%S".to_owned(),
        ("strftime", Some(f)) => {
            // Only the conversions chrono writes exactly as SQLite does.
            if f.contains("%f") || f.contains("%s") || f.contains("%J") || f.contains("%w") {
                return None;
            }
            f.to_owned()
        }
        _ => return None,
    };
    Some(Some(utc.format(&fmt).to_string()))
}
