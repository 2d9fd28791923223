//! SQLite SQL text, as far as a transfer needs it: a tokenizer, the CHECK constraints and
//! collations of a `CREATE TABLE`, the parts of a `CREATE INDEX` and `CREATE VIEW`, and the
//! translation of expressions and defaults into PostgreSQL.
//!
//! Translation is deliberately shallow: identifiers are re-quoted (and renamed), literals
//! re-written, a few false friends replaced (`==`, `LIKE`, `ifnull`, `json_valid`). Whatever
//! comes out is tried by PostgreSQL inside a savepoint; what PostgreSQL refuses is reported,
//! never allowed to fail the schema.

use std::collections::HashMap;

use ferry_core::plan::TargetType;

use crate::ident::{literal, quote};
use crate::timestamp;

/// One SQLite token.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A bare word: keyword, function name or unquoted identifier.
    Word(String),
    /// `"x"`, `[x]` or `` `x` ``: an identifier (or, in SQLite's legacy reading, a string).
    Quoted(String),
    /// `'x'`.
    Str(String),
    /// `x'00ff'`, as lower-case hex.
    Blob(String),
    Number(String),
    LParen,
    RParen,
    Comma,
    Op(String),
}

impl Token {
    fn is_word(&self, w: &str) -> bool {
        matches!(self, Token::Word(x) if x.eq_ignore_ascii_case(w))
    }
}

/// Splits SQLite SQL into tokens; comments and whitespace are dropped.
pub fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let closed = |open: char| match open {
        '[' => ']',
        '`' => '`',
        _ => '"',
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            let (s, next) = quoted(&chars, i, '\'');
            out.push(Token::Str(s));
            i = next;
        } else if c == '"' || c == '[' || c == '`' {
            let (s, next) = quoted(&chars, i, closed(c));
            out.push(Token::Quoted(s));
            i = next;
        } else if (c == 'x' || c == 'X') && chars.get(i + 1) == Some(&'\'') {
            let (s, next) = quoted(&chars, i + 1, '\'');
            out.push(Token::Blob(s.to_ascii_lowercase()));
            i = next;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            if c == '0' && matches!(chars.get(i + 1), Some('x' | 'X')) {
                i += 2;
                while i < chars.len() && chars[i].is_ascii_hexdigit() {
                    i += 1;
                }
            } else {
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                    let save = i;
                    i += 1;
                    if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                        i += 1;
                    }
                    if i < chars.len() && chars[i].is_ascii_digit() {
                        while i < chars.len() && chars[i].is_ascii_digit() {
                            i += 1;
                        }
                    } else {
                        i = save;
                    }
                }
            }
            out.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' || !c.is_ascii() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == '$'
                    || !chars[i].is_ascii())
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == '(' {
            out.push(Token::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Token::RParen);
            i += 1;
        } else if c == ',' {
            out.push(Token::Comma);
            i += 1;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["||", "==", "!=", "<>", "<=", ">=", "<<", ">>", "->"].contains(&two.as_str()) {
                let op = if two == "->" && chars.get(i + 2) == Some(&'>') {
                    "->>".to_owned()
                } else {
                    two
                };
                i += op.chars().count();
                out.push(Token::Op(op));
            } else {
                out.push(Token::Op(c.to_string()));
                i += 1;
            }
        }
    }
    out
}

fn quoted(chars: &[char], start: usize, close: char) -> (String, usize) {
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == close {
            // A doubled closing character is an escaped one (not for `[x]`).
            if close != ']' && chars.get(i + 1) == Some(&close) {
                s.push(close);
                i += 2;
                continue;
            }
            return (s, i + 1);
        }
        s.push(chars[i]);
        i += 1;
    }
    (s, i)
}

/// The index of the parenthesis closing the one at `open`.
fn closing(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at commas that are not inside parentheses.
fn split_top(tokens: &[Token]) -> Vec<&[Token]> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                parts.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    parts
}

fn ident_text(t: &Token) -> Option<&str> {
    match t {
        Token::Word(s) | Token::Quoted(s) | Token::Str(s) => Some(s),
        _ => None,
    }
}

/// What a `CREATE TABLE` says beyond the pragmas: CHECK constraints and collations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateTable {
    pub checks: Vec<CheckDef>,
    /// `(column, collation)` for columns declared with a non-binary collation.
    pub collations: Vec<(String, String)>,
    pub autoincrement: bool,
}

/// A CHECK constraint, its expression as SQLite tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckDef {
    pub name: Option<String>,
    pub expr: Vec<Token>,
    /// The SQLite text of the expression, for reports.
    pub text: String,
}

/// Reads the CHECK constraints and collations of a `CREATE TABLE` statement.
pub fn parse_create_table(sql: &str) -> CreateTable {
    let tokens = tokenize(sql);
    let mut out = CreateTable::default();
    let Some(open) = tokens.iter().position(|t| *t == Token::LParen) else {
        return out;
    };
    let Some(close) = closing(&tokens, open) else {
        return out;
    };
    for part in split_top(&tokens[open + 1..close]) {
        let Some(first) = part.first() else { continue };
        let is_constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|w| first.is_word(w));
        let column = if is_constraint {
            None
        } else {
            ident_text(first).map(str::to_owned)
        };
        let mut name = None;
        let mut i = usize::from(column.is_some());
        while i < part.len() {
            if part[i].is_word("CONSTRAINT") {
                name = part.get(i + 1).and_then(ident_text).map(str::to_owned);
                i += 2;
                continue;
            }
            if part[i].is_word("CHECK") && part.get(i + 1) == Some(&Token::LParen) {
                if let Some(end) = closing(part, i + 1) {
                    let expr = part[i + 2..end].to_vec();
                    out.checks.push(CheckDef {
                        name: name.take(),
                        text: render_sqlite(&expr),
                        expr,
                    });
                    i = end + 1;
                    continue;
                }
            }
            if part[i].is_word("COLLATE") {
                if let (Some(col), Some(coll)) = (&column, part.get(i + 1).and_then(ident_text)) {
                    if !coll.eq_ignore_ascii_case("BINARY") {
                        out.collations.push((col.clone(), coll.to_owned()));
                    }
                }
            }
            if part[i].is_word("AUTOINCREMENT") {
                out.autoincrement = true;
            }
            if part[i] == Token::LParen {
                // Skip type arguments and other groups that are not CHECKs.
                i = closing(part, i).map_or(part.len(), |e| e + 1);
                continue;
            }
            i += 1;
        }
    }
    out
}

/// Tokens back to SQLite text (for messages).
pub fn render_sqlite(tokens: &[Token]) -> String {
    let mut s = String::new();
    for t in tokens {
        if !s.is_empty() && !matches!(t, Token::RParen | Token::Comma) && !s.ends_with('(') {
            s.push(' ');
        }
        match t {
            Token::Word(w) | Token::Number(w) | Token::Op(w) => s.push_str(w),
            Token::Quoted(q) => s.push_str(&crate::ident::quote_sqlite(q)),
            Token::Str(x) => s.push_str(&literal(x)),
            Token::Blob(b) => s.push_str(&format!("X'{b}'")),
            Token::LParen => s.push('('),
            Token::RParen => s.push(')'),
            Token::Comma => s.push(','),
        }
    }
    s
}

/// What identifiers mean while translating: columns (of one table, or of every table for
/// views) and tables, by lower-cased SQLite name.
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub columns: HashMap<String, (String, Option<TargetType>)>,
    pub tables: HashMap<String, String>,
}

impl Names {
    pub fn column(&mut self, source: &str, target: &str, ty: Option<TargetType>) {
        self.columns
            .insert(source.to_lowercase(), (target.to_owned(), ty));
    }
    pub fn table(&mut self, source: &str, target: &str) {
        self.tables.insert(source.to_lowercase(), target.to_owned());
    }
    fn resolve(&self, name: &str) -> Option<&str> {
        let key = name.to_lowercase();
        self.columns
            .get(&key)
            .map(|(t, _)| t.as_str())
            .or_else(|| self.tables.get(&key).map(String::as_str))
    }
}

/// Words that are always keywords when bare (a column of that name must be quoted in
/// SQLite too), so they are never taken for identifiers.
const KEYWORDS: &[&str] = &[
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
    "FALSE",
    "FILTER",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "IN",
    "INNER",
    "INTERSECT",
    "IS",
    "ISNULL",
    "JOIN",
    "LEFT",
    "LIKE",
    "LIMIT",
    "NATURAL",
    "NOT",
    "NOTNULL",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "RECURSIVE",
    "RIGHT",
    "SELECT",
    "THEN",
    "TRUE",
    "UNION",
    "USING",
    "VALUES",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Functions whose meaning is the same in both engines for the values ferry writes.
const SAME_FUNCTIONS: &[&str] = &[
    "abs",
    "coalesce",
    "length",
    "lower",
    "upper",
    "trim",
    "ltrim",
    "rtrim",
    "nullif",
    "replace",
    "substr",
    "round",
    "max",
    "min",
    "count",
    "sum",
    "avg",
    "octet_length",
];

/// Translates a SQLite expression (or SELECT) to PostgreSQL text.
pub fn translate(tokens: &[Token], names: &Names) -> Result<String, String> {
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let next_is_paren = tokens.get(i + 1) == Some(&Token::LParen);
        let piece = match t {
            Token::Word(w) if next_is_paren => {
                let lower = w.to_lowercase();
                match lower.as_str() {
                    "ifnull" => "coalesce".to_owned(),
                    "json_valid" => {
                        let end = closing(tokens, i + 1).ok_or("unbalanced parentheses")?;
                        let arg = &tokens[i + 2..end];
                        let col = match arg {
                            [one] => {
                                ident_text(one).and_then(|n| names.columns.get(&n.to_lowercase()))
                            }
                            _ => None,
                        };
                        match col {
                            Some((_, Some(TargetType::Jsonb | TargetType::Json))) => {
                                // The column's type already guarantees valid JSON.
                                out.push("TRUE".into());
                                i = end + 1;
                                continue;
                            }
                            _ => return Err("json_valid() on a column that is not json/jsonb has no PostgreSQL 15 equivalent".into()),
                        }
                    }
                    "glob" | "typeof" | "instr" | "printf" | "strftime" | "datetime"
                    | "julianday" | "date" | "time" | "unicode" | "hex" | "randomblob"
                    | "likelihood" | "regexp" => {
                        return Err(format!(
                            "function {w}() has no PostgreSQL equivalent ferry translates"
                        ))
                    }
                    _ if SAME_FUNCTIONS.contains(&lower.as_str()) => lower,
                    _ => match names.resolve(w) {
                        Some(target) => quote(target),
                        None => w.clone(),
                    },
                }
            }
            Token::Word(w) if w.eq_ignore_ascii_case("LIKE") => "ILIKE".to_owned(),
            Token::Word(w)
                if w.eq_ignore_ascii_case("GLOB")
                    || w.eq_ignore_ascii_case("REGEXP")
                    || w.eq_ignore_ascii_case("MATCH") =>
            {
                return Err(format!(
                    "operator {w} has no PostgreSQL equivalent ferry translates"
                ))
            }
            Token::Word(w) if is_keyword(w) => w.to_uppercase(),
            Token::Word(w) => match names.resolve(w) {
                Some(target) => quote(target),
                None => w.clone(),
            },
            Token::Quoted(q) => match names.resolve(q) {
                Some(target) => quote(target),
                // SQLite reads a double-quoted word that names nothing as a string.
                None => quote(q),
            },
            Token::Str(s) => literal(s),
            Token::Blob(b) => format!("'\\x{b}'::bytea"),
            Token::Number(n) => number(n)?,
            Token::Op(op) if op == "==" => "=".to_owned(),
            Token::Op(op) if op == "->" || op == "->>" => {
                return Err("JSON operators differ between SQLite and PostgreSQL".into())
            }
            Token::Op(op) => op.clone(),
            Token::LParen => "(".to_owned(),
            Token::RParen => ")".to_owned(),
            Token::Comma => ",".to_owned(),
        };
        out.push(piece);
        i += 1;
    }
    Ok(out.join(" "))
}

fn number(n: &str) -> Result<String, String> {
    if let Some(hex) = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
        let v =
            u64::from_str_radix(hex, 16).map_err(|_| format!("hex literal {n} out of range"))?;
        return Ok((v as i64).to_string());
    }
    if n.starts_with('.') {
        return Ok(format!("0{n}"));
    }
    Ok(n.to_owned())
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

/// Translates one index key term; `COLLATE` other than BINARY is dropped and reported.
pub fn translate_index_term(
    term: &[Token],
    names: &Names,
) -> Result<(String, Option<String>), String> {
    let mut tokens = term.to_vec();
    let mut dropped = None;
    if let Some(pos) = tokens.iter().position(|t| t.is_word("COLLATE")) {
        let coll = tokens
            .get(pos + 1)
            .and_then(ident_text)
            .unwrap_or("")
            .to_owned();
        if !coll.eq_ignore_ascii_case("BINARY") {
            dropped = Some(coll);
        }
        tokens.drain(pos..(pos + 2).min(tokens.len()));
    }
    let direction = match tokens.last() {
        Some(t) if t.is_word("DESC") => {
            tokens.pop();
            " DESC"
        }
        Some(t) if t.is_word("ASC") => {
            tokens.pop();
            ""
        }
        _ => "",
    };
    let expr = translate(&tokens, names)?;
    // A bare column stays bare; any other expression needs its own parentheses.
    let is_column = matches!(tokens.as_slice(), [Token::Word(_) | Token::Quoted(_)]);
    let expr = if is_column { expr } else { format!("({expr})") };
    Ok((format!("{expr}{direction}"), dropped))
}

/// The SELECT of a `CREATE VIEW`, and its column list if it has one.
pub fn parse_create_view(sql: &str) -> Option<(Option<Vec<String>>, Vec<Token>)> {
    let tokens = tokenize(sql);
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
                .filter_map(|p| p.first().and_then(ident_text))
                .map(str::to_owned)
                .collect(),
        );
        i = close + 1;
    }
    if !tokens.get(i)?.is_word("AS") {
        return None;
    }
    let body: Vec<Token> = tokens[i + 1..]
        .iter()
        .filter(|t| **t != Token::Op(";".into()))
        .cloned()
        .collect();
    Some((columns, body))
}

/// Translates a column DEFAULT (as `pragma_table_xinfo` gives it) for a target type.
/// `Ok(None)` means no default (`NULL`).
pub fn translate_default(text: &str, target: &TargetType) -> Result<Option<String>, String> {
    let mut tokens = tokenize(text);
    while tokens.first() == Some(&Token::LParen) && closing(&tokens, 0) == Some(tokens.len() - 1) {
        tokens = tokens[1..tokens.len() - 1].to_vec();
    }
    let why = || format!("default {text} has no {} equivalent", target.sql());
    match tokens.as_slice() {
        [t] if t.is_word("NULL") => Ok(None),
        [Token::Number(n)] => number_default(&number(n)?, target)
            .ok_or_else(why)
            .map(Some),
        [Token::Op(sign), Token::Number(n)] if sign == "-" || sign == "+" => {
            let n = number(n)?;
            let n = if sign == "-" { format!("-{n}") } else { n };
            number_default(&n, target).ok_or_else(why).map(Some)
        }
        [t] if t.is_word("TRUE") || t.is_word("FALSE") => {
            let one = t.is_word("TRUE");
            match target {
                TargetType::Boolean => Ok(Some(one.to_string())),
                _ => number_default(if one { "1" } else { "0" }, target)
                    .ok_or_else(why)
                    .map(Some),
            }
        }
        // SQLite reads a double-quoted default as a string when it names no column.
        [Token::Str(s)] | [Token::Quoted(s)] => text_default(s, target).ok_or_else(why).map(Some),
        [Token::Blob(b)] => match target {
            TargetType::Bytea => Ok(Some(format!("'\\x{b}'::bytea"))),
            TargetType::MixedJsonb => {
                Ok(Some(literal(&format!("{{\"$blob\":\"{b}\"}}")) + "::jsonb"))
            }
            _ => Err(why()),
        },
        [t] if t.is_word("CURRENT_TIMESTAMP") => now_default(target, "%Y-%m-%d %H:%M:%S", false)
            .ok_or_else(why)
            .map(Some),
        [t] if t.is_word("CURRENT_DATE") => now_default(target, "%Y-%m-%d", false)
            .ok_or_else(why)
            .map(Some),
        [t] if t.is_word("CURRENT_TIME") => now_default(target, "%H:%M:%S", false)
            .ok_or_else(why)
            .map(Some),
        [Token::Word(f), Token::LParen, args @ .., Token::RParen] => {
            let args: Vec<&[Token]> = split_top(args);
            let strs: Option<Vec<&str>> = args
                .iter()
                .map(|a| match a {
                    [Token::Str(s)] => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            let strs = strs.ok_or_else(why)?;
            let (format, modifiers) = match (f.to_lowercase().as_str(), strs.as_slice()) {
                ("datetime", ["now", rest @ ..]) => ("%Y-%m-%d %H:%M:%S", rest),
                ("date", ["now", rest @ ..]) => ("%Y-%m-%d", rest),
                ("time", ["now", rest @ ..]) => ("%H:%M:%S", rest),
                ("strftime", [fmt, "now", rest @ ..]) => (*fmt, rest),
                _ => return Err(why()),
            };
            let local = match modifiers {
                [] => false,
                [m] if m.eq_ignore_ascii_case("localtime") => true,
                [m] if m.eq_ignore_ascii_case("utc") => false,
                _ => return Err(why()),
            };
            now_default(target, format, local).ok_or_else(why).map(Some)
        }
        _ => Err(format!(
            "default {text} is an expression ferry does not translate"
        )),
    }
}

fn number_default(n: &str, target: &TargetType) -> Option<String> {
    let is_int = n
        .trim_start_matches(['-', '+'])
        .bytes()
        .all(|b| b.is_ascii_digit());
    match target {
        TargetType::Boolean => match n {
            "0" => Some("false".into()),
            "1" => Some("true".into()),
            _ => None,
        },
        TargetType::Smallint | TargetType::Integer | TargetType::Bigint => {
            is_int.then(|| n.to_owned())
        }
        TargetType::DoublePrecision | TargetType::Numeric => {
            n.parse::<f64>().ok().map(|_| n.to_owned())
        }
        TargetType::Text => Some(literal(n)),
        TargetType::Json | TargetType::Jsonb | TargetType::MixedJsonb => {
            let v = if is_int {
                n.to_owned()
            } else {
                crate::encode::real_decimal(n.parse::<f64>().ok()?)
            };
            Some(format!("{}::jsonb", literal(&v)))
        }
        _ => None,
    }
}

fn text_default(s: &str, target: &TargetType) -> Option<String> {
    match target {
        TargetType::Text => Some(literal(s)),
        TargetType::Boolean => match s.to_ascii_lowercase().as_str() {
            "0" | "false" => Some("false".into()),
            "1" | "true" => Some("true".into()),
            _ => None,
        },
        TargetType::Smallint | TargetType::Integer | TargetType::Bigint => {
            s.trim().parse::<i64>().ok().map(|v| v.to_string())
        }
        TargetType::DoublePrecision | TargetType::Numeric => {
            s.trim().parse::<f64>().ok().map(|_| s.trim().to_owned())
        }
        TargetType::Date | TargetType::Timestamp | TargetType::Timestamptz => {
            let t = timestamp::parse(s.as_bytes())?;
            if *target == TargetType::Date && !t.date_only() {
                return None;
            }
            Some(format!("{}::{}", literal(s), target.sql()))
        }
        TargetType::Json | TargetType::Jsonb => crate::json::check(s.as_bytes())
            .ok()
            .map(|()| format!("{}::{}", literal(s), target.sql())),
        TargetType::MixedJsonb => Some(format!("to_jsonb({}::text)", literal(s))),
        TargetType::Uuid => Some(format!("{}::uuid", literal(s))),
        TargetType::Bytea => Some(format!("convert_to({}, 'UTF8')", literal(s))),
        TargetType::RealArray => None,
    }
}

/// A default of "now" for the target type; text targets get SQLite's text format.
fn now_default(target: &TargetType, sqlite_format: &str, local: bool) -> Option<String> {
    let stamp = if local {
        "LOCALTIMESTAMP"
    } else {
        "(now() AT TIME ZONE 'UTC')"
    };
    match target {
        TargetType::Timestamptz => Some("now()".into()),
        TargetType::Timestamp => Some(stamp.into()),
        TargetType::Date => Some(format!("({stamp})::date")),
        TargetType::Text => Some(format!(
            "to_char({stamp}, {})",
            literal(&to_char_format(sqlite_format)?)
        )),
        TargetType::MixedJsonb => Some(format!(
            "to_jsonb(to_char({stamp}, {}))",
            literal(&to_char_format(sqlite_format)?)
        )),
        _ => None,
    }
}

/// A `strftime` format as a PostgreSQL `to_char` format.
fn to_char_format(fmt: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = fmt.chars();
    let mut literal_run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if !run.is_empty() {
            out.push('"');
            out.push_str(run);
            out.push('"');
            run.clear();
        }
    };
    while let Some(c) = chars.next() {
        if c == '%' {
            let spec = match chars.next()? {
                'Y' => "YYYY",
                'm' => "MM",
                'd' => "DD",
                'H' => "HH24",
                'M' => "MI",
                'S' => "SS",
                'f' => "SS.MS",
                'j' => "DDD",
                '%' => {
                    literal_run.push('%');
                    continue;
                }
                _ => return None,
            };
            flush(&mut out, &mut literal_run);
            out.push_str(spec);
        } else if c.is_alphanumeric() || c == '"' || c == '\\' {
            if c == '"' || c == '\\' {
                return None;
            }
            literal_run.push(c);
        } else {
            flush(&mut out, &mut literal_run);
            out.push(c);
        }
    }
    flush(&mut out, &mut literal_run);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_checks_and_collations() {
        let t = parse_create_table(
            "CREATE TABLE [Order Details]([OrderID]INTEGER NOT NULL, [UnitPrice]NUMERIC(10,2) NOT NULL DEFAULT 0, \
             name TEXT COLLATE NOCASE CHECK (length(name) > 0), CONSTRAINT positive CHECK ([UnitPrice]>=(0)), \
             CHECK ([OrderID] == 1 OR \"x\" = 'a''b'))",
        );
        assert_eq!(t.checks.len(), 3);
        assert_eq!(t.checks[1].name.as_deref(), Some("positive"));
        assert_eq!(t.collations, vec![("name".to_owned(), "NOCASE".to_owned())]);
        let mut names = Names::default();
        names.column("OrderID", "OrderID", None);
        names.column("UnitPrice", "UnitPrice", None);
        assert_eq!(
            translate(&t.checks[1].expr, &names).unwrap(),
            "\"UnitPrice\" >= ( 0 )"
        );
        assert_eq!(
            translate(&t.checks[2].expr, &names).unwrap(),
            "\"OrderID\" = 1 OR \"x\" = 'a''b'"
        );
    }

    #[test]
    fn json_valid_is_implied_by_jsonb() {
        let t =
            parse_create_table("CREATE TABLE a (doc TEXT CHECK (doc IS NULL OR json_valid(doc)))");
        let mut names = Names::default();
        names.column("doc", "doc", Some(TargetType::Jsonb));
        assert_eq!(
            translate(&t.checks[0].expr, &names).unwrap(),
            "\"doc\" IS NULL OR TRUE"
        );
        names.column("doc", "doc", Some(TargetType::Text));
        assert!(translate(&t.checks[0].expr, &names).is_err());
    }

    #[test]
    fn defaults() {
        use TargetType::*;
        assert_eq!(translate_default("0", &Bigint).unwrap().unwrap(), "0");
        assert_eq!(translate_default("'0'", &Bigint).unwrap().unwrap(), "0");
        assert_eq!(translate_default("\"\"", &Text).unwrap().unwrap(), "''");
        assert_eq!(
            translate_default("'unknown'", &Text).unwrap().unwrap(),
            "'unknown'"
        );
        assert_eq!(translate_default("NULL", &Text).unwrap(), None);
        assert_eq!(translate_default("-1", &Bigint).unwrap().unwrap(), "-1");
        assert_eq!(translate_default("1", &Boolean).unwrap().unwrap(), "true");
        assert_eq!(
            translate_default("CURRENT_TIMESTAMP", &Timestamptz)
                .unwrap()
                .unwrap(),
            "now()"
        );
        assert_eq!(
            translate_default("(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", &Text)
                .unwrap()
                .unwrap(),
            "to_char((now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        );
        assert_eq!(
            translate_default("datetime('now','localtime')", &Timestamp)
                .unwrap()
                .unwrap(),
            "LOCALTIMESTAMP"
        );
        assert!(translate_default("0", &Timestamptz).is_err());
        assert!(translate_default("abs(random())", &Bigint).is_err());
    }

    #[test]
    fn index_and_view_parts() {
        let parts = parse_create_index(
            "CREATE UNIQUE INDEX i ON t (lower(name) COLLATE NOCASE DESC, [b]) WHERE b > 0",
        )
        .unwrap();
        assert_eq!(parts.terms.len(), 2);
        let names = Names::default();
        let (term, coll) = translate_index_term(&parts.terms[0], &names).unwrap();
        assert_eq!(
            term,
            "(lower ( \"name\" )) DESC".replace("\"name\"", "name")
        );
        assert_eq!(coll.as_deref(), Some("NOCASE"));
        assert_eq!(
            translate(parts.predicate.as_ref().unwrap(), &names).unwrap(),
            "b > 0"
        );
        let (cols, body) =
            parse_create_view("CREATE VIEW [v w] (a, b) AS SELECT x, y FROM t;").unwrap();
        assert_eq!(cols.unwrap(), vec!["a", "b"]);
        assert_eq!(render_sqlite(&body), "SELECT x, y FROM t");
    }
}
