//! SQLite expressions and SELECT statements as a tree, parsed from tokens with SQLite's
//! operator precedence, so that the translation into PostgreSQL can look at the type of
//! every operand instead of rewriting words.
//!
//! The parser covers what CHECK constraints, index terms, generated columns, views and
//! trigger bodies use in practice; anything else is an error naming what was not
//! understood, and the object is then reported as not carried over.

use ferry_core::sqlite_text::{render, Token};

/// A SQLite expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    /// An integer literal as written (decimal or `0x…`).
    Int(String),
    /// A real literal as written.
    Real(String),
    Str(String),
    /// Lower-case hex.
    Blob(String),
    /// `CURRENT_TIMESTAMP`, `CURRENT_DATE`, `CURRENT_TIME`.
    Current(String),
    Column {
        table: Option<String>,
        name: String,
    },
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `a IS [NOT] b`.
    Is {
        l: Box<Expr>,
        r: Box<Expr>,
        not: bool,
    },
    Like {
        kind: LikeKind,
        not: bool,
        l: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<Box<Expr>>,
    },
    Between {
        e: Box<Expr>,
        lo: Box<Expr>,
        hi: Box<Expr>,
        not: bool,
    },
    InList {
        e: Box<Expr>,
        list: Vec<Expr>,
        not: bool,
    },
    InSelect {
        e: Box<Expr>,
        select: Box<Select>,
        not: bool,
    },
    /// `x ISNULL`, `x NOTNULL`, `x NOT NULL`, `x IS NULL` is [`Expr::Is`].
    IsNull {
        e: Box<Expr>,
        not: bool,
    },
    Func {
        name: String,
        args: Vec<Expr>,
        distinct: bool,
        /// `count(*)`.
        star: bool,
        filter: Option<Box<Expr>>,
        /// A window function (`… OVER …`): never translated.
        window: bool,
    },
    Cast {
        e: Box<Expr>,
        ty: String,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Collate {
        e: Box<Expr>,
        collation: String,
    },
    Exists {
        select: Box<Select>,
        not: bool,
    },
    Subquery(Box<Select>),
    Raise {
        kind: RaiseKind,
        message: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Pos,
    BitNot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BitAnd,
    BitOr,
    Shl,
    Shr,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    /// `->` and `->>`: SQLite's JSON operators (never translated).
    Json,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }

    pub fn sql(self) -> &'static str {
        match self {
            BinOp::Or => "OR",
            BinOp::And => "AND",
            BinOp::Eq => "=",
            BinOp::Ne => "<>",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Concat => "||",
            BinOp::Json => "->",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeKind {
    Like,
    Glob,
    Regexp,
    Match,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiseKind {
    Ignore,
    Rollback,
    Abort,
    Fail,
}

/// A SELECT statement, compound or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub with: Vec<Cte>,
    pub recursive: bool,
    pub first: SelectCore,
    pub compounds: Vec<(Compound, SelectCore)>,
    pub order_by: Vec<OrderTerm>,
    pub limit: Option<Expr>,
    pub offset: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cte {
    pub name: String,
    pub columns: Vec<String>,
    pub select: Select,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compound {
    Union,
    UnionAll,
    Intersect,
    Except,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectCore {
    pub distinct: bool,
    pub columns: Vec<ResultColumn>,
    pub from: Option<From>,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub having: Option<Expr>,
    /// `VALUES (…), (…)`: never translated.
    pub values: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResultColumn {
    Star,
    TableStar(String),
    Expr {
        e: Expr,
        alias: Option<String>,
        /// The tokens the expression was parsed from (start, end): SQLite names an
        /// unaliased result column by their text.
        tokens: (usize, usize),
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum From {
    Table {
        name: String,
        alias: Option<String>,
    },
    Subquery {
        select: Box<Select>,
        alias: Option<String>,
    },
    Join {
        left: Box<From>,
        kind: JoinKind,
        natural: bool,
        right: Box<From>,
        on: Option<Expr>,
        using: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    Cross,
    /// `a, b`.
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderTerm {
    pub e: Expr,
    pub desc: bool,
    /// `Some(true)`: NULLS FIRST.
    pub nulls_first: Option<bool>,
}

/// Why a text could not be parsed.
pub type ParseError = String;

/// Parses a whole expression.
pub fn parse_expr(tokens: &[Token]) -> Result<Expr, ParseError> {
    let mut p = Parser { t: tokens, i: 0 };
    let e = p.expr()?;
    p.end()?;
    Ok(e)
}

/// Parses a whole SELECT statement (a trailing `;` is allowed).
pub fn parse_select(tokens: &[Token]) -> Result<Select, ParseError> {
    let mut p = Parser { t: tokens, i: 0 };
    let s = p.select()?;
    p.end()?;
    Ok(s)
}

/// A statement of a trigger body.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(Box<Select>),
    Update {
        table: String,
        sets: Vec<(String, Expr)>,
        filter: Option<Expr>,
    },
    /// Anything else (INSERT, DELETE, …), kept as text for the report.
    Other(String),
}

/// Parses the statements between a trigger's `BEGIN` and `END`.
pub fn parse_statements(tokens: &[Token]) -> Result<Vec<Statement>, ParseError> {
    let mut out = Vec::new();
    for part in tokens.split(|t| *t == Token::Op(";".into())) {
        if part.is_empty() {
            continue;
        }
        let mut p = Parser { t: part, i: 0 };
        if p.peek_word("SELECT") || p.peek_word("WITH") {
            let s = p.select()?;
            p.end()?;
            out.push(Statement::Select(Box::new(s)));
        } else if p.peek_word("UPDATE") {
            out.push(p.update()?);
        } else {
            out.push(Statement::Other(render(part)));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    t: &'a [Token],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.t.get(self.i)
    }

    fn peek_at(&self, n: usize) -> Option<&Token> {
        self.t.get(self.i + n)
    }

    fn peek_word(&self, w: &str) -> bool {
        self.peek().is_some_and(|t| t.is_word(w))
    }

    fn peek_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Token::Op(o)) if o == op)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.peek_word(w) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Token) -> Result<(), ParseError> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(format!("expected {} {}", show(t), self.near()))
        }
    }

    fn expect_word(&mut self, w: &str) -> Result<(), ParseError> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(format!("expected {w} {}", self.near()))
        }
    }

    fn near(&self) -> String {
        match self.peek() {
            Some(t) => format!("near {}", show(t)),
            None => "at the end".into(),
        }
    }

    fn end(&mut self) -> Result<(), ParseError> {
        while self.peek_op(";") {
            self.i += 1;
        }
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(format!("unexpected text {}", self.near())),
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token::Word(w)) if !is_reserved(w) => {
                let w = w.clone();
                self.i += 1;
                Ok(w)
            }
            Some(Token::Quoted(q) | Token::Str(q)) => {
                let q = q.clone();
                self.i += 1;
                Ok(q)
            }
            _ => Err(format!("expected a name {}", self.near())),
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.or()
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.and()?;
        while self.eat_word("OR") {
            let r = self.and()?;
            l = Expr::Binary(BinOp::Or, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.not()?;
        while self.eat_word("AND") {
            let r = self.not()?;
            l = Expr::Binary(BinOp::And, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek_word("NOT") && !self.peek_at(1).is_some_and(|t| t.is_word("EXISTS")) {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.equality()
    }

    /// `=`, `==`, `!=`, `<>`, IS, IN, LIKE, GLOB, MATCH, REGEXP, BETWEEN, ISNULL, NOTNULL.
    fn equality(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.comparison()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(o)) if o == "=" || o == "==" => Some(BinOp::Eq),
                Some(Token::Op(o)) if o == "!=" || o == "<>" => Some(BinOp::Ne),
                _ => None,
            };
            if let Some(op) = op {
                self.i += 1;
                let r = self.comparison()?;
                l = Expr::Binary(op, Box::new(l), Box::new(r));
                continue;
            }
            if self.eat_word("ISNULL") {
                l = Expr::IsNull {
                    e: Box::new(l),
                    not: false,
                };
                continue;
            }
            if self.eat_word("NOTNULL") {
                l = Expr::IsNull {
                    e: Box::new(l),
                    not: true,
                };
                continue;
            }
            if self.peek_word("IS") {
                self.i += 1;
                let not = self.eat_word("NOT");
                if self.eat_word("DISTINCT") {
                    self.expect_word("FROM")?;
                    let r = self.comparison()?;
                    l = Expr::Is {
                        l: Box::new(l),
                        r: Box::new(r),
                        not: !not,
                    };
                    continue;
                }
                let r = self.comparison()?;
                l = Expr::Is {
                    l: Box::new(l),
                    r: Box::new(r),
                    not,
                };
                continue;
            }
            let save = self.i;
            let not = self.eat_word("NOT");
            if not && self.eat_word("NULL") {
                l = Expr::IsNull {
                    e: Box::new(l),
                    not: true,
                };
                continue;
            }
            if self.eat_word("IN") {
                l = self.in_rest(l, not)?;
                continue;
            }
            let kind = if self.eat_word("LIKE") {
                Some(LikeKind::Like)
            } else if self.eat_word("GLOB") {
                Some(LikeKind::Glob)
            } else if self.eat_word("REGEXP") {
                Some(LikeKind::Regexp)
            } else if self.eat_word("MATCH") {
                Some(LikeKind::Match)
            } else {
                None
            };
            if let Some(kind) = kind {
                let pattern = self.comparison()?;
                let escape = if self.eat_word("ESCAPE") {
                    Some(Box::new(self.comparison()?))
                } else {
                    None
                };
                l = Expr::Like {
                    kind,
                    not,
                    l: Box::new(l),
                    pattern: Box::new(pattern),
                    escape,
                };
                continue;
            }
            if self.eat_word("BETWEEN") {
                let lo = self.comparison()?;
                self.expect_word("AND")?;
                let hi = self.comparison()?;
                l = Expr::Between {
                    e: Box::new(l),
                    lo: Box::new(lo),
                    hi: Box::new(hi),
                    not,
                };
                continue;
            }
            self.i = save;
            return Ok(l);
        }
    }

    fn in_rest(&mut self, e: Expr, not: bool) -> Result<Expr, ParseError> {
        if !self.eat(&Token::LParen) {
            // `x IN table`: a table's single column.
            let name = self.name()?;
            return Err(format!("`IN {name}` (a table as a list) is not translated"));
        }
        if self.peek_word("SELECT") || self.peek_word("WITH") {
            let select = self.select()?;
            self.expect(&Token::RParen)?;
            return Ok(Expr::InSelect {
                e: Box::new(e),
                select: Box::new(select),
                not,
            });
        }
        let mut list = Vec::new();
        if !self.eat(&Token::RParen) {
            loop {
                list.push(self.expr()?);
                if self.eat(&Token::Comma) {
                    continue;
                }
                self.expect(&Token::RParen)?;
                break;
            }
        }
        Ok(Expr::InList {
            e: Box::new(e),
            list,
            not,
        })
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.bits()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(o)) if o == "<" => BinOp::Lt,
                Some(Token::Op(o)) if o == "<=" => BinOp::Le,
                Some(Token::Op(o)) if o == ">" => BinOp::Gt,
                Some(Token::Op(o)) if o == ">=" => BinOp::Ge,
                _ => return Ok(l),
            };
            self.i += 1;
            let r = self.bits()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn bits(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.additive()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(o)) if o == "&" => BinOp::BitAnd,
                Some(Token::Op(o)) if o == "|" => BinOp::BitOr,
                Some(Token::Op(o)) if o == "<<" => BinOp::Shl,
                Some(Token::Op(o)) if o == ">>" => BinOp::Shr,
                _ => return Ok(l),
            };
            self.i += 1;
            let r = self.additive()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(o)) if o == "+" => BinOp::Add,
                Some(Token::Op(o)) if o == "-" => BinOp::Sub,
                _ => return Ok(l),
            };
            self.i += 1;
            let r = self.multiplicative()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.concat()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(o)) if o == "*" => BinOp::Mul,
                Some(Token::Op(o)) if o == "/" => BinOp::Div,
                Some(Token::Op(o)) if o == "%" => BinOp::Mod,
                _ => return Ok(l),
            };
            self.i += 1;
            let r = self.concat()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn concat(&mut self) -> Result<Expr, ParseError> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op(o)) if o == "||" => BinOp::Concat,
                Some(Token::Op(o)) if o == "->" || o == "->>" => BinOp::Json,
                _ => return Ok(l),
            };
            self.i += 1;
            let r = self.unary()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Some(Token::Op(o)) if o == "-" => Some(UnOp::Neg),
            Some(Token::Op(o)) if o == "+" => Some(UnOp::Pos),
            Some(Token::Op(o)) if o == "~" => Some(UnOp::BitNot),
            _ => None,
        };
        if let Some(op) = op {
            self.i += 1;
            let e = self.unary()?;
            return Ok(Expr::Unary(op, Box::new(e)));
        }
        let mut e = self.primary()?;
        while self.eat_word("COLLATE") {
            let collation = self.name()?;
            e = Expr::Collate {
                e: Box::new(e),
                collation,
            };
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(t) = self.peek().cloned() else {
            return Err("expected an expression at the end".into());
        };
        match t {
            Token::Number(n) => {
                self.i += 1;
                let is_real =
                    !n.starts_with("0x") && !n.starts_with("0X") && n.contains(['.', 'e', 'E']);
                Ok(if is_real { Expr::Real(n) } else { Expr::Int(n) })
            }
            Token::Str(s) => {
                self.i += 1;
                Ok(Expr::Str(s))
            }
            Token::Blob(b) => {
                self.i += 1;
                Ok(Expr::Blob(b))
            }
            Token::Param(p) => Err(format!("parameter {p} in a schema")),
            Token::LParen => {
                self.i += 1;
                if self.peek_word("SELECT") || self.peek_word("WITH") {
                    let s = self.select()?;
                    self.expect(&Token::RParen)?;
                    return Ok(Expr::Subquery(Box::new(s)));
                }
                let e = self.expr()?;
                if self.peek() == Some(&Token::Comma) {
                    return Err("row values `(a, b)` are not translated".into());
                }
                self.expect(&Token::RParen)?;
                Ok(e)
            }
            Token::Quoted(q) => {
                self.i += 1;
                self.column_rest(q)
            }
            Token::Word(w) => self.word(&w),
            other => Err(format!("unexpected {}", show(&other))),
        }
    }

    fn word(&mut self, w: &str) -> Result<Expr, ParseError> {
        let upper = w.to_ascii_uppercase();
        match upper.as_str() {
            "NULL" => {
                self.i += 1;
                return Ok(Expr::Null);
            }
            "TRUE" | "FALSE" if self.peek_at(1) != Some(&Token::LParen) => {
                self.i += 1;
                return Ok(Expr::Int(if upper == "TRUE" { "1" } else { "0" }.into()));
            }
            "CURRENT_TIMESTAMP" | "CURRENT_DATE" | "CURRENT_TIME" => {
                self.i += 1;
                return Ok(Expr::Current(upper));
            }
            "CASE" => {
                self.i += 1;
                return self.case();
            }
            "CAST" => {
                self.i += 1;
                self.expect(&Token::LParen)?;
                let e = self.expr()?;
                self.expect_word("AS")?;
                let mut ty = Vec::new();
                while self.peek().is_some() && self.peek() != Some(&Token::RParen) {
                    if self.peek() == Some(&Token::LParen) {
                        // Type arguments: `DECIMAL(10, 2)`.
                        let mut depth = 0;
                        loop {
                            match self.peek() {
                                Some(Token::LParen) => depth += 1,
                                Some(Token::RParen) => depth -= 1,
                                None => break,
                                _ => {}
                            }
                            self.i += 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        continue;
                    }
                    if let Some(n) = self.peek().and_then(Token::ident) {
                        ty.push(n.to_owned());
                    }
                    self.i += 1;
                }
                self.expect(&Token::RParen)?;
                return Ok(Expr::Cast {
                    e: Box::new(e),
                    ty: ty.join(" "),
                });
            }
            "EXISTS" => {
                self.i += 1;
                return self.exists(false);
            }
            "NOT" if self.peek_at(1).is_some_and(|t| t.is_word("EXISTS")) => {
                self.i += 2;
                return self.exists(true);
            }
            "RAISE" => {
                self.i += 1;
                return self.raise();
            }
            _ => {}
        }
        if self.peek_at(1) == Some(&Token::LParen) {
            self.i += 1;
            return self.call(w);
        }
        if is_reserved(w) {
            return Err(format!("unexpected keyword {w}"));
        }
        self.i += 1;
        self.column_rest(w.to_owned())
    }

    /// `name` already read: `name`, `table.name` or `schema.table.name`.
    fn column_rest(&mut self, first: String) -> Result<Expr, ParseError> {
        if !self.peek_op(".") {
            return Ok(Expr::Column {
                table: None,
                name: first,
            });
        }
        self.i += 1;
        let second = self.name()?;
        if self.peek_op(".") {
            self.i += 1;
            let third = self.name()?;
            if !first.eq_ignore_ascii_case("main") {
                return Err(format!("schema {first:?} (an attached database)"));
            }
            return Ok(Expr::Column {
                table: Some(second),
                name: third,
            });
        }
        Ok(Expr::Column {
            table: Some(first),
            name: second,
        })
    }

    fn call(&mut self, name: &str) -> Result<Expr, ParseError> {
        self.expect(&Token::LParen)?;
        let mut args = Vec::new();
        let mut star = false;
        let distinct = self.eat_word("DISTINCT");
        if self.peek_op("*") {
            self.i += 1;
            star = true;
        } else if self.peek() != Some(&Token::RParen) {
            loop {
                args.push(self.expr()?);
                if self.eat(&Token::Comma) {
                    continue;
                }
                break;
            }
        }
        if self.peek_word("ORDER") {
            return Err(format!("ORDER BY inside {name}() is not translated"));
        }
        self.expect(&Token::RParen)?;
        let mut filter = None;
        if self.eat_word("FILTER") {
            self.expect(&Token::LParen)?;
            self.expect_word("WHERE")?;
            filter = Some(Box::new(self.expr()?));
            self.expect(&Token::RParen)?;
        }
        let mut window = false;
        if self.eat_word("OVER") {
            window = true;
            if self.eat(&Token::LParen) {
                let mut depth = 1;
                while depth > 0 {
                    match self.peek() {
                        Some(Token::LParen) => depth += 1,
                        Some(Token::RParen) => depth -= 1,
                        None => return Err("unclosed OVER (…)".into()),
                        _ => {}
                    }
                    self.i += 1;
                }
            } else {
                self.name()?;
            }
        }
        Ok(Expr::Func {
            name: name.to_owned(),
            args,
            distinct,
            star,
            filter,
            window,
        })
    }

    fn case(&mut self) -> Result<Expr, ParseError> {
        let operand = if self.peek_word("WHEN") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_word("WHEN") {
            let w = self.expr()?;
            self.expect_word("THEN")?;
            let t = self.expr()?;
            whens.push((w, t));
        }
        let otherwise = if self.eat_word("ELSE") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_word("END")?;
        if whens.is_empty() {
            return Err("CASE without WHEN".into());
        }
        Ok(Expr::Case {
            operand,
            whens,
            otherwise,
        })
    }

    fn exists(&mut self, not: bool) -> Result<Expr, ParseError> {
        self.expect(&Token::LParen)?;
        let select = self.select()?;
        self.expect(&Token::RParen)?;
        Ok(Expr::Exists {
            select: Box::new(select),
            not,
        })
    }

    fn raise(&mut self) -> Result<Expr, ParseError> {
        self.expect(&Token::LParen)?;
        let kind = if self.eat_word("IGNORE") {
            RaiseKind::Ignore
        } else if self.eat_word("ROLLBACK") {
            RaiseKind::Rollback
        } else if self.eat_word("ABORT") {
            RaiseKind::Abort
        } else if self.eat_word("FAIL") {
            RaiseKind::Fail
        } else {
            return Err(format!("unknown RAISE kind {}", self.near()));
        };
        let mut message = None;
        if self.eat(&Token::Comma) {
            match self.peek().cloned() {
                Some(Token::Str(s)) => {
                    self.i += 1;
                    message = Some(s);
                }
                _ => return Err("RAISE with a message that is not a string literal".into()),
            }
        }
        self.expect(&Token::RParen)?;
        Ok(Expr::Raise { kind, message })
    }

    fn select(&mut self) -> Result<Select, ParseError> {
        let mut with = Vec::new();
        let mut recursive = false;
        if self.eat_word("WITH") {
            recursive = self.eat_word("RECURSIVE");
            loop {
                let name = self.name()?;
                let mut columns = Vec::new();
                if self.eat(&Token::LParen) {
                    loop {
                        columns.push(self.name()?);
                        if !self.eat(&Token::Comma) {
                            break;
                        }
                    }
                    self.expect(&Token::RParen)?;
                }
                self.expect_word("AS")?;
                if self.eat_word("NOT") {
                    self.expect_word("MATERIALIZED")?;
                } else {
                    self.eat_word("MATERIALIZED");
                }
                self.expect(&Token::LParen)?;
                let select = self.select()?;
                self.expect(&Token::RParen)?;
                with.push(Cte {
                    name,
                    columns,
                    select,
                });
                if !self.eat(&Token::Comma) {
                    break;
                }
            }
        }
        let first = self.core()?;
        let mut compounds = Vec::new();
        loop {
            let op = if self.eat_word("UNION") {
                if self.eat_word("ALL") {
                    Compound::UnionAll
                } else {
                    Compound::Union
                }
            } else if self.eat_word("INTERSECT") {
                Compound::Intersect
            } else if self.eat_word("EXCEPT") {
                Compound::Except
            } else {
                break;
            };
            compounds.push((op, self.core()?));
        }
        let mut order_by = Vec::new();
        if self.eat_word("ORDER") {
            self.expect_word("BY")?;
            loop {
                let e = self.expr()?;
                let desc = if self.eat_word("DESC") {
                    true
                } else {
                    self.eat_word("ASC");
                    false
                };
                let nulls_first = if self.eat_word("NULLS") {
                    if self.eat_word("FIRST") {
                        Some(true)
                    } else {
                        self.expect_word("LAST")?;
                        Some(false)
                    }
                } else {
                    None
                };
                order_by.push(OrderTerm {
                    e,
                    desc,
                    nulls_first,
                });
                if !self.eat(&Token::Comma) {
                    break;
                }
            }
        }
        let (mut limit, mut offset) = (None, None);
        if self.eat_word("LIMIT") {
            let first = self.expr()?;
            if self.eat_word("OFFSET") {
                limit = Some(first);
                offset = Some(self.expr()?);
            } else if self.eat(&Token::Comma) {
                // `LIMIT offset, count`.
                offset = Some(first);
                limit = Some(self.expr()?);
            } else {
                limit = Some(first);
            }
        }
        Ok(Select {
            with,
            recursive,
            first,
            compounds,
            order_by,
            limit,
            offset,
        })
    }

    fn core(&mut self) -> Result<SelectCore, ParseError> {
        if self.eat_word("VALUES") {
            return Err("VALUES lists are not translated".into());
        }
        self.expect_word("SELECT")?;
        let distinct = if self.eat_word("DISTINCT") {
            true
        } else {
            self.eat_word("ALL");
            false
        };
        let mut columns = Vec::new();
        loop {
            columns.push(self.result_column()?);
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        let from = if self.eat_word("FROM") {
            Some(self.from()?)
        } else {
            None
        };
        let filter = if self.eat_word("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat_word("GROUP") {
            self.expect_word("BY")?;
            loop {
                group_by.push(self.expr()?);
                if !self.eat(&Token::Comma) {
                    break;
                }
            }
        }
        let having = if self.eat_word("HAVING") {
            Some(self.expr()?)
        } else {
            None
        };
        if self.peek_word("WINDOW") {
            return Err("WINDOW clauses are not translated".into());
        }
        Ok(SelectCore {
            distinct,
            columns,
            from,
            filter,
            group_by,
            having,
            values: false,
        })
    }

    fn result_column(&mut self) -> Result<ResultColumn, ParseError> {
        if self.peek_op("*") {
            self.i += 1;
            return Ok(ResultColumn::Star);
        }
        if let (Some(t), Some(Token::Op(dot)), Some(Token::Op(star))) =
            (self.peek(), self.peek_at(1), self.peek_at(2))
        {
            if dot == "." && star == "*" {
                if let Some(name) = t.ident() {
                    let name = name.to_owned();
                    self.i += 3;
                    return Ok(ResultColumn::TableStar(name));
                }
            }
        }
        let start = self.i;
        let e = self.expr()?;
        let end = self.i;
        let alias = self.alias()?;
        Ok(ResultColumn::Expr {
            e,
            alias,
            tokens: (start, end),
        })
    }

    /// `AS name` or a bare name that is not a keyword.
    fn alias(&mut self) -> Result<Option<String>, ParseError> {
        if self.eat_word("AS") {
            return self.name().map(Some);
        }
        match self.peek() {
            Some(Token::Word(w)) if !is_reserved(w) => {
                let w = w.clone();
                self.i += 1;
                Ok(Some(w))
            }
            Some(Token::Quoted(q) | Token::Str(q)) => {
                let q = q.clone();
                self.i += 1;
                Ok(Some(q))
            }
            _ => Ok(None),
        }
    }

    fn from(&mut self) -> Result<From, ParseError> {
        let mut left = self.table_or_subquery()?;
        loop {
            let (kind, natural) = if self.eat(&Token::Comma) {
                (JoinKind::Comma, false)
            } else {
                let natural = self.eat_word("NATURAL");
                let kind = if self.eat_word("LEFT") {
                    self.eat_word("OUTER");
                    JoinKind::Left
                } else if self.eat_word("RIGHT") {
                    self.eat_word("OUTER");
                    JoinKind::Right
                } else if self.eat_word("FULL") {
                    self.eat_word("OUTER");
                    JoinKind::Full
                } else if self.eat_word("CROSS") {
                    JoinKind::Cross
                } else {
                    self.eat_word("INNER");
                    JoinKind::Inner
                };
                if !self.eat_word("JOIN") {
                    if natural || kind != JoinKind::Inner {
                        return Err(format!("expected JOIN {}", self.near()));
                    }
                    return Ok(left);
                }
                (kind, natural)
            };
            let right = self.table_or_subquery()?;
            let mut on = None;
            let mut using = Vec::new();
            if self.eat_word("ON") {
                on = Some(self.expr()?);
            } else if self.eat_word("USING") {
                self.expect(&Token::LParen)?;
                loop {
                    using.push(self.name()?);
                    if !self.eat(&Token::Comma) {
                        break;
                    }
                }
                self.expect(&Token::RParen)?;
            }
            left = From::Join {
                left: Box::new(left),
                kind,
                natural,
                right: Box::new(right),
                on,
                using,
            };
        }
    }

    fn table_or_subquery(&mut self) -> Result<From, ParseError> {
        if self.eat(&Token::LParen) {
            if self.peek_word("SELECT") || self.peek_word("WITH") {
                let select = self.select()?;
                self.expect(&Token::RParen)?;
                let alias = self.alias()?;
                return Ok(From::Subquery {
                    select: Box::new(select),
                    alias,
                });
            }
            let inner = self.from()?;
            self.expect(&Token::RParen)?;
            return Ok(inner);
        }
        let mut name = self.name()?;
        if self.peek_op(".") {
            self.i += 1;
            if !name.eq_ignore_ascii_case("main") {
                return Err(format!("schema {name:?} (an attached database)"));
            }
            name = self.name()?;
        }
        if self.peek() == Some(&Token::LParen) {
            return Err(format!("table-valued function {name}() is not translated"));
        }
        let alias = self.alias()?;
        if self.eat_word("INDEXED") {
            self.expect_word("BY")?;
            self.name()?;
        } else if self.eat_word("NOT") {
            self.expect_word("INDEXED")?;
        }
        Ok(From::Table { name, alias })
    }

    fn update(&mut self) -> Result<Statement, ParseError> {
        self.expect_word("UPDATE")?;
        if self.eat_word("OR") {
            return Err("UPDATE OR … is not translated".into());
        }
        let table = self.name()?;
        self.expect_word("SET")?;
        let mut sets = Vec::new();
        loop {
            let col = self.name()?;
            if !self.peek_op("=") {
                return Err(format!("expected = {}", self.near()));
            }
            self.i += 1;
            sets.push((col, self.expr()?));
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        if self.peek_word("FROM") {
            return Err("UPDATE … FROM is not translated".into());
        }
        let filter = if self.eat_word("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        self.end()?;
        Ok(Statement::Update {
            table,
            sets,
            filter,
        })
    }
}

fn show(t: &Token) -> String {
    format!("`{}`", render(std::slice::from_ref(t)))
}

/// Words that end an expression or a name: never taken for an identifier or an alias.
const RESERVED: &[&str] = &[
    "ALL",
    "AND",
    "AS",
    "ASC",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "COLLATE",
    "CROSS",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "DESC",
    "DISTINCT",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXISTS",
    "FILTER",
    "FROM",
    "FULL",
    "GLOB",
    "GROUP",
    "HAVING",
    "IN",
    "INDEXED",
    "INNER",
    "INTERSECT",
    "IS",
    "ISNULL",
    "JOIN",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MATCH",
    "NATURAL",
    "NOT",
    "NOTNULL",
    "NULL",
    "NULLS",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "REGEXP",
    "RIGHT",
    "SELECT",
    "THEN",
    "UNION",
    "USING",
    "VALUES",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::sqlite_text::tokenize;

    fn e(sql: &str) -> Expr {
        parse_expr(&tokenize(sql)).unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    #[test]
    fn precedence_follows_sqlite() {
        // `||` binds tighter than `*`, which binds tighter than `+`.
        let x = e("a + b * c || d");
        let Expr::Binary(BinOp::Add, _, r) = x else {
            panic!("{x:?}")
        };
        let Expr::Binary(BinOp::Mul, _, rr) = *r else {
            panic!()
        };
        assert!(matches!(*rr, Expr::Binary(BinOp::Concat, _, _)));
        // NOT binds looser than comparison, AND tighter than OR.
        assert!(matches!(e("NOT a = 1 OR b"), Expr::Binary(BinOp::Or, _, _)));
        assert!(matches!(
            e("flag IN (0, 1)"),
            Expr::InList { not: false, .. }
        ));
        assert!(matches!(
            e("x NOT BETWEEN 1 AND 2 AND y"),
            Expr::Binary(BinOp::And, _, _)
        ));
        assert!(matches!(
            e("code NOT LIKE 'a%' ESCAPE '\\'"),
            Expr::Like { not: true, .. }
        ));
        assert!(matches!(
            e("t.\"a b\" IS NOT NULL"),
            Expr::Is { not: true, .. }
        ));
    }

    #[test]
    fn selects_and_trigger_bodies() {
        let s = parse_select(&tokenize(
            "SELECT c.name AS category, SUM(p.amount) total, count(*) FROM payment AS p \
             INNER JOIN category c ON c.id = p.cat LEFT JOIN x USING (id) \
             WHERE p.amount > 0 GROUP BY c.name HAVING count(*) > 1 ORDER BY 2 DESC LIMIT 5",
        ))
        .unwrap();
        assert_eq!(s.first.columns.len(), 3);
        assert!(matches!(s.first.from, Some(From::Join { .. })));
        assert_eq!(s.order_by.len(), 1);
        let body = parse_statements(&tokenize(
            "SELECT RAISE(ABORT, 'no') WHERE NEW.x < 0; UPDATE t SET a = 1 WHERE rowid = NEW.rowid;",
        ))
        .unwrap();
        assert_eq!(body.len(), 2);
        assert!(matches!(body[1], Statement::Update { .. }));
    }
}
