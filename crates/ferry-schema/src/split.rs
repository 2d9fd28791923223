//! Splits a migration file into statements, keeping the line each one starts on, so a
//! failure can name the file and line even when the driver does not.
//!
//! It understands what decides where a statement ends in SQLite and PostgreSQL: quoted
//! strings and identifiers (`'…'`, `"…"`, `` `…` ``, `[…]`), line and block comments,
//! PostgreSQL dollar quoting (`$$ … $$`, `$tag$ … $tag$`), and the `BEGIN … END` body of a
//! SQLite `CREATE TRIGGER` (with `CASE … END` inside it).

/// One statement of a migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement text from its first character of code to before its `;`.
    pub sql: &'a str,
    /// 1-based line of the statement's first non-blank, non-comment character.
    pub line: usize,
}

impl Statement<'_> {
    /// The 1-based line of a 1-based character position inside this statement.
    pub fn line_of_position(&self, position: usize) -> usize {
        let newlines = self
            .sql
            .chars()
            .take(position.saturating_sub(1))
            .filter(|&c| c == '\n')
            .count();
        self.line + newlines
    }
}

/// Splits `sql` into statements. Statements holding only comments and whitespace are
/// dropped. An unterminated string or comment ends the last statement (the database will
/// then report the syntax error at that statement's line).
pub fn split(sql: &str) -> Vec<Statement<'_>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut first_code: Option<usize> = None;
    let mut depth = 0usize;
    let mut words: Vec<String> = Vec::new();
    let mut in_trigger = false;

    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
                continue;
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() && first_code.is_none() {
            first_code = Some(i);
        }
        match c {
            b'\'' | b'"' | b'`' => {
                i = skip_quoted(bytes, i, c);
                continue;
            }
            b'[' => {
                i = skip_quoted(bytes, i, b']');
                continue;
            }
            b'$' => {
                if let Some(end) = skip_dollar_quoted(sql, i) {
                    i = end;
                    continue;
                }
            }
            b';' if depth == 0 => {
                if let Some(first) = first_code {
                    out.push(Statement {
                        sql: &sql[first..i],
                        line: line_at(sql, first),
                    });
                }
                i += 1;
                first_code = None;
                words.clear();
                in_trigger = false;
                continue;
            }
            _ => {}
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let word_start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = sql[word_start..i].to_ascii_uppercase();
            if words.len() < 4 {
                words.push(word.clone());
                // CREATE [TEMP|TEMPORARY] TRIGGER
                if words[0] == "CREATE" && word == "TRIGGER" {
                    in_trigger = true;
                }
            }
            if in_trigger {
                match word.as_str() {
                    "BEGIN" | "CASE" => depth += 1,
                    "END" => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            continue;
        }
        i += 1;
    }
    if let Some(first) = first_code {
        let rest = &sql[first..];
        if !rest.trim().is_empty() {
            out.push(Statement {
                sql: rest,
                line: line_at(sql, first),
            });
        }
    }
    out
}

fn line_at(sql: &str, offset: usize) -> usize {
    sql.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Index just past a quoted run starting at `open`; a doubled closing quote is an escape.
fn skip_quoted(bytes: &[u8], open: usize, close: u8) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Index just past a PostgreSQL dollar-quoted string starting at `open`, if one starts there.
fn skip_dollar_quoted(sql: &str, open: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    // `$1` is a parameter and `a$b` an identifier, not a quote.
    if open > 0 && (bytes[open - 1].is_ascii_alphanumeric() || bytes[open - 1] == b'_') {
        return None;
    }
    let mut j = open + 1;
    if bytes.get(j).is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    if bytes.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &sql[open..=j];
    let body = j + 1;
    match sql[body..].find(tag) {
        Some(pos) => Some(body + pos + tag.len()),
        None => Some(bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<(String, usize)> {
        split(sql)
            .into_iter()
            .map(|s| (s.sql.trim().to_owned(), s.line))
            .collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "-- header; not a statement\nCREATE TABLE a (x text DEFAULT ';');\n\n/* b; */ INSERT INTO \"we;ird\" VALUES ('it''s;');\nSELECT 1";
        assert_eq!(
            texts(sql),
            vec![
                ("CREATE TABLE a (x text DEFAULT ';')".to_owned(), 2),
                ("INSERT INTO \"we;ird\" VALUES ('it''s;')".to_owned(), 4),
                ("SELECT 1".to_owned(), 5),
            ]
        );
    }

    #[test]
    fn keeps_trigger_bodies_and_dollar_quotes_whole() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = CASE WHEN 1 THEN 'y' END;\n  DELETE FROM b;\nEND;\nDO $$ BEGIN PERFORM 1; END $$;\nCREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\nSELECT $1;";
        let got = texts(sql);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[0].0.ends_with("END"));
        assert_eq!(got[1], ("DO $$ BEGIN PERFORM 1; END $$".to_owned(), 5));
        assert_eq!(got[2].1, 6);
        assert_eq!(got[3].0, "SELECT $1");
    }

    #[test]
    fn positions_map_to_lines() {
        let sql = "\n\nCREATE TABLE a (\n  x intt\n);";
        let stmt = &split(sql)[0];
        assert_eq!(stmt.line, 3);
        let pos = stmt.sql.find("intt").unwrap() + 1;
        assert_eq!(stmt.line_of_position(pos), 4);
    }

    #[test]
    fn comment_only_files_have_no_statements() {
        assert!(split("-- nothing\n/* at all */\n").is_empty());
    }
}
