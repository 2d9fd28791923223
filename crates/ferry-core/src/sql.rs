//! SQL text shared by both dialects: identifiers and string literals, quoted once, here.
//!
//! SQLite and PostgreSQL quote the same way: an identifier in double quotes with inner
//! double quotes doubled, a literal in single quotes with inner single quotes doubled
//! (PostgreSQL has `standard_conforming_strings` on since 9.1).

/// `"name"`, with inner double quotes doubled: an identifier for SQLite or PostgreSQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// `'text'`, with inner single quotes doubled: a string literal for either dialect.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(qualified("s", "Order Details"), r#""s"."Order Details""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
