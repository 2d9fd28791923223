//! SQLite SQL text as far as ferry reads it without SQLite: a tokenizer, and what a
//! `CREATE TABLE` says beyond the pragmas (CHECK constraints, collations, generated columns,
//! AUTOINCREMENT).
//!
//! Shared by the transfer (which translates these into PostgreSQL) and the validation
//! (which checks that every source CHECK arrived): both read the source schema's text with
//! this one tokenizer, and both name a CHECK by [`render`] of its tokens, so the two always
//! agree on which constraint is which.
//!
//! ```
//! use ferry_core::sqlite_text::parse_create_table;
//! let t = parse_create_table("CREATE TABLE p (flag BOOLEAN CHECK (flag IN (0,1)), n INT AS (flag + 1))");
//! assert_eq!(t.checks[0].text, "flag IN (0, 1)");
//! assert_eq!(t.generated[0].column, "n");
//! ```

use std::ops::Range;

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
    /// `?`, `?1`, `:name`, `@name`, `$name`: a parameter (never valid in a schema).
    Param(String),
}

impl Token {
    /// Whether this is the bare word `w` (ASCII case ignored).
    pub fn is_word(&self, w: &str) -> bool {
        matches!(self, Token::Word(x) if x.eq_ignore_ascii_case(w))
    }

    /// The name a token gives when it stands for an identifier.
    pub fn ident(&self) -> Option<&str> {
        match self {
            Token::Word(s) | Token::Quoted(s) | Token::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Splits SQLite SQL into tokens; comments and whitespace are dropped.
pub fn tokenize(sql: &str) -> Vec<Token> {
    tokenize_spanned(sql).into_iter().map(|(t, _)| t).collect()
}

/// Tokens with the byte range each one covers in `sql` (SQLite names an unaliased result
/// column of a view by the text of its expression, so the text must be recoverable).
pub fn tokenize_spanned(sql: &str) -> Vec<(Token, Range<usize>)> {
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    let offset = |i: usize| chars.get(i).map_or(sql.len(), |(o, _)| *o);
    let mut out = Vec::new();
    let mut i = 0;
    let closed = |open: char| match open {
        '[' => ']',
        '`' => '`',
        _ => '"',
    };
    while i < chars.len() {
        let c = chars[i].1;
        let start = i;
        let token = if c.is_whitespace() {
            i += 1;
            None
        } else if c == '-' && at(i + 1) == Some('-') {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
            None
        } else if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i].1 == '*' && at(i + 1) == Some('/')) {
                i += 1;
            }
            i = (i + 2).min(chars.len());
            None
        } else if c == '\'' {
            let (s, next) = quoted(&chars, i, '\'');
            i = next;
            Some(Token::Str(s))
        } else if c == '"' || c == '[' || c == '`' {
            let (s, next) = quoted(&chars, i, closed(c));
            i = next;
            Some(Token::Quoted(s))
        } else if (c == 'x' || c == 'X') && at(i + 1) == Some('\'') {
            let (s, next) = quoted(&chars, i + 1, '\'');
            i = next;
            Some(Token::Blob(s.to_ascii_lowercase()))
        } else if c.is_ascii_digit() || (c == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            if c == '0' && matches!(at(i + 1), Some('x' | 'X')) {
                i += 2;
                while at(i).is_some_and(|d| d.is_ascii_hexdigit()) {
                    i += 1;
                }
            } else {
                while at(i).is_some_and(|d| d.is_ascii_digit() || d == '.') {
                    i += 1;
                }
                if matches!(at(i), Some('e' | 'E')) {
                    let save = i;
                    i += 1;
                    if matches!(at(i), Some('+' | '-')) {
                        i += 1;
                    }
                    if at(i).is_some_and(|d| d.is_ascii_digit()) {
                        while at(i).is_some_and(|d| d.is_ascii_digit()) {
                            i += 1;
                        }
                    } else {
                        i = save;
                    }
                }
            }
            Some(Token::Number(
                chars[start..i].iter().map(|(_, c)| c).collect(),
            ))
        } else if c.is_alphabetic() || c == '_' || !c.is_ascii() {
            while at(i)
                .is_some_and(|d| d.is_alphanumeric() || d == '_' || d == '$' || !d.is_ascii())
            {
                i += 1;
            }
            Some(Token::Word(
                chars[start..i].iter().map(|(_, c)| c).collect(),
            ))
        } else if matches!(c, '?' | ':' | '@' | '$')
            && at(i + 1).is_some_and(|d| d.is_alphanumeric() || d == '_')
            || c == '?'
        {
            i += 1;
            while at(i).is_some_and(|d| d.is_alphanumeric() || d == '_') {
                i += 1;
            }
            Some(Token::Param(
                chars[start..i].iter().map(|(_, c)| c).collect(),
            ))
        } else if c == '(' {
            i += 1;
            Some(Token::LParen)
        } else if c == ')' {
            i += 1;
            Some(Token::RParen)
        } else if c == ',' {
            i += 1;
            Some(Token::Comma)
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())]
                .iter()
                .map(|(_, c)| c)
                .collect();
            if ["||", "==", "!=", "<>", "<=", ">=", "<<", ">>", "->"].contains(&two.as_str()) {
                let op = if two == "->" && at(i + 2) == Some('>') {
                    "->>".to_owned()
                } else {
                    two
                };
                i += op.chars().count();
                Some(Token::Op(op))
            } else {
                i += 1;
                Some(Token::Op(c.to_string()))
            }
        };
        if let Some(t) = token {
            out.push((t, offset(start)..offset(i)));
        }
    }
    out
}

fn quoted(chars: &[(usize, char)], start: usize, close: char) -> (String, usize) {
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i].1;
        if c == close {
            // A doubled closing character is an escaped one (not for `[x]`).
            if close != ']' && chars.get(i + 1).map(|(_, c)| *c) == Some(close) {
                s.push(close);
                i += 2;
                continue;
            }
            return (s, i + 1);
        }
        s.push(c);
        i += 1;
    }
    (s, i)
}

/// The index of the parenthesis closing the one at `open`.
pub fn closing(tokens: &[Token], open: usize) -> Option<usize> {
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
pub fn split_top(tokens: &[Token]) -> Vec<&[Token]> {
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

/// What a `CREATE TABLE` says beyond the pragmas.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateTable {
    /// Every CHECK constraint, column and table constraints alike, in the order written.
    pub checks: Vec<CheckDef>,
    /// `(column, collation)` for columns declared with a non-binary collation.
    pub collations: Vec<(String, String)>,
    pub generated: Vec<GeneratedDef>,
    pub autoincrement: bool,
    /// `STRICT` table.
    pub strict: bool,
}

/// A CHECK constraint, its expression as SQLite tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckDef {
    pub name: Option<String>,
    pub expr: Vec<Token>,
    /// The expression as [`render`] writes it: how reports and the validation name it.
    pub text: String,
}

/// A generated column: `col … [GENERATED ALWAYS] AS (expr) [STORED | VIRTUAL]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedDef {
    pub column: String,
    pub expr: Vec<Token>,
    pub text: String,
    pub stored: bool,
}

/// Reads the CHECK constraints, collations and generated columns of a `CREATE TABLE`.
pub fn parse_create_table(sql: &str) -> CreateTable {
    let tokens = tokenize(sql);
    let mut out = CreateTable::default();
    let Some(open) = tokens.iter().position(|t| *t == Token::LParen) else {
        return out;
    };
    let Some(close) = closing(&tokens, open) else {
        return out;
    };
    out.strict = tokens[close + 1..].iter().any(|t| t.is_word("STRICT"));
    for part in split_top(&tokens[open + 1..close]) {
        let Some(first) = part.first() else { continue };
        let is_constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|w| first.is_word(w));
        let column = if is_constraint {
            None
        } else {
            first.ident().map(str::to_owned)
        };
        let mut name = None;
        let mut i = usize::from(column.is_some());
        while i < part.len() {
            if part[i].is_word("CONSTRAINT") {
                name = part.get(i + 1).and_then(Token::ident).map(str::to_owned);
                i += 2;
                continue;
            }
            if part[i].is_word("CHECK") && part.get(i + 1) == Some(&Token::LParen) {
                if let Some(end) = closing(part, i + 1) {
                    let expr = part[i + 2..end].to_vec();
                    out.checks.push(CheckDef {
                        name: name.take(),
                        text: render(&expr),
                        expr,
                    });
                    i = end + 1;
                    continue;
                }
            }
            if part[i].is_word("AS") && part.get(i + 1) == Some(&Token::LParen) {
                if let (Some(col), Some(end)) = (&column, closing(part, i + 1)) {
                    let expr = part[i + 2..end].to_vec();
                    let stored = part.get(end + 1).is_some_and(|t| t.is_word("STORED"));
                    out.generated.push(GeneratedDef {
                        column: col.clone(),
                        text: render(&expr),
                        expr,
                        stored,
                    });
                    i = end + 1;
                    continue;
                }
            }
            if part[i].is_word("COLLATE") {
                if let (Some(col), Some(coll)) = (&column, part.get(i + 1).and_then(Token::ident)) {
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

/// Words after which a parenthesis opens a list or a group, not a function's arguments.
const SPACED_BEFORE_PAREN: &[&str] = &[
    "AND", "AS", "BETWEEN", "CASE", "CHECK", "ELSE", "EXISTS", "FROM", "IN", "IS", "JOIN", "LIKE",
    "GLOB", "NOT", "ON", "OR", "SELECT", "THEN", "USING", "VALUES", "WHEN", "WHERE",
];

/// Tokens back to SQLite text, spaced one way whatever the original spacing was.
pub fn render(tokens: &[Token]) -> String {
    let mut s = String::new();
    let mut prev: Option<&Token> = None;
    for t in tokens {
        let call = *t == Token::LParen
            && matches!(prev, Some(Token::Word(w)) if !SPACED_BEFORE_PAREN.iter().any(|k| k.eq_ignore_ascii_case(w)));
        if !s.is_empty() && !matches!(t, Token::RParen | Token::Comma) && !s.ends_with('(') && !call
        {
            s.push(' ');
        }
        prev = Some(t);
        match t {
            Token::Word(w) | Token::Number(w) | Token::Op(w) | Token::Param(w) => s.push_str(w),
            Token::Quoted(q) => s.push_str(&crate::sql::quote_ident(q)),
            Token::Str(x) => s.push_str(&crate::sql::quote_literal(x)),
            Token::Blob(b) => s.push_str(&format!("X'{b}'")),
            Token::LParen => s.push('('),
            Token::RParen => s.push(')'),
            Token::Comma => s.push(','),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_checks_collations_and_generated_columns() {
        let t = parse_create_table(
            "CREATE TABLE [Order Details]([OrderID]INTEGER NOT NULL, [UnitPrice]NUMERIC(10,2) NOT NULL DEFAULT 0, \
             name TEXT COLLATE NOCASE CHECK (length(name) > 0), CONSTRAINT positive CHECK ([UnitPrice]>=(0)), \
             total REAL GENERATED ALWAYS AS ([UnitPrice] * 2) STORED, \
             CHECK ([OrderID] == 1 OR \"x\" = 'a''b')) STRICT",
        );
        assert_eq!(t.checks.len(), 3);
        assert_eq!(t.checks[1].name.as_deref(), Some("positive"));
        assert_eq!(t.checks[1].text, "\"UnitPrice\" >= (0)");
        assert_eq!(t.collations, vec![("name".to_owned(), "NOCASE".to_owned())]);
        assert_eq!(t.generated.len(), 1);
        assert_eq!(t.generated[0].text, "\"UnitPrice\" * 2");
        assert!(t.generated[0].stored);
        assert!(t.strict);
    }

    #[test]
    fn spans_cover_the_original_text() {
        let sql = "a.b||' x '  ||  -- c\n 1.5e3";
        let spans = tokenize_spanned(sql);
        let texts: Vec<&str> = spans.iter().map(|(_, r)| &sql[r.clone()]).collect();
        assert_eq!(texts, ["a", ".", "b", "||", "' x '", "||", "1.5e3"]);
        assert_eq!(tokenize("?1 :x")[0], Token::Param("?1".into()));
    }
}
