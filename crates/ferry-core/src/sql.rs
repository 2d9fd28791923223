//! SQL text shared by both dialects: identifiers and string literals, quoted once, here; and
//! PostgreSQL names that fit 63 bytes without ever colliding.
//!
//! SQLite and PostgreSQL quote the same way: an identifier in double quotes with inner
//! double quotes doubled, a literal in single quotes with inner single quotes doubled
//! (PostgreSQL has `standard_conforming_strings` on since 9.1).
//!
//! A name longer than PostgreSQL's 63-byte limit (which PostgreSQL would silently truncate,
//! so that two long names sharing a prefix would collide) is shortened deterministically:
//! its longest prefix that fits, `_`, and the first hex digits of the SHA-256 of the whole
//! name. [`NameAllocator`] hands out each name once per scope; [`is_allocated_from`] tells
//! whether a name is one the allocator could have given a source name, so a validation
//! without the transfer's plan still pairs renamed tables and columns.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// PostgreSQL's identifier limit in bytes (`NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

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

/// Hands out identifiers unique within one scope (a schema's relations, a table's columns).
#[derive(Debug, Default, Clone)]
pub struct NameAllocator {
    used: HashSet<String>,
}

impl NameAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks a name as taken without allocating it (names that exist already).
    pub fn reserve(&mut self, name: &str) {
        self.used.insert(name.to_owned());
    }

    pub fn is_taken(&self, name: &str) -> bool {
        self.used.contains(name)
    }

    /// The name to use for `wanted`: itself when it fits and is free, else a shortened or
    /// suffixed form that is free. Deterministic for the same sequence of calls.
    pub fn allocate(&mut self, wanted: &str) -> String {
        let wanted = if wanted.is_empty() { "unnamed" } else { wanted };
        let wanted = wanted.replace('\0', "");
        if wanted.len() <= MAX_IDENTIFIER_BYTES && !self.used.contains(&wanted) {
            self.used.insert(wanted.clone());
            return wanted;
        }
        let digest = hex::encode(Sha256::digest(wanted.as_bytes()));
        for n in 0u32.. {
            let suffix = if n == 0 {
                format!("_{}", &digest[..8])
            } else if (n as usize) < digest.len() - 8 {
                // Another name already ends in the same eight hex digits: take more.
                format!("_{}", &digest[..8 + n as usize])
            } else {
                format!("_{}_{n}", &digest[..8])
            };
            let candidate = format!(
                "{}{suffix}",
                prefix(&wanted, MAX_IDENTIFIER_BYTES - suffix.len())
            );
            if !self.used.contains(&candidate) {
                self.used.insert(candidate.clone());
                return candidate;
            }
        }
        unreachable!("the loop always finds a free name")
    }
}

/// Whether `target` is a name [`NameAllocator::allocate`] gives `source` when `source` does
/// not fit or is taken: a prefix of `source`, `_`, and a run of its digest.
pub fn is_allocated_from(source: &str, target: &str) -> bool {
    let source = if source.is_empty() { "unnamed" } else { source };
    let source = source.replace('\0', "");
    if target == source {
        return true;
    }
    let digest = hex::encode(Sha256::digest(source.as_bytes()));
    let mark = format!("_{}", &digest[..8]);
    let Some(at) = target.rfind(&mark) else {
        return false;
    };
    let (head, tail) = target.split_at(at);
    let tail = &tail[mark.len()..];
    let tail_ok = tail.is_empty()
        || digest[8..].starts_with(tail)
        || tail
            .strip_prefix('_')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    tail_ok && source.starts_with(head) && target.len() <= MAX_IDENTIFIER_BYTES
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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

    #[test]
    fn long_names_that_share_a_prefix_never_collide() {
        let a = "col_very_long_name_that_exceeds_postgresql_identifier_limit_aaax";
        let b = "col_very_long_name_that_exceeds_postgresql_identifier_limit_aaay";
        let mut names = NameAllocator::new();
        let (x, y) = (names.allocate(a), names.allocate(b));
        assert_ne!(x, y);
        assert!(x.len() <= 63 && y.len() <= 63, "{x} {y}");
        // Deterministic.
        let mut again = NameAllocator::new();
        assert_eq!(again.allocate(a), x);
        // Short names are kept; a taken name gets a suffix.
        assert_eq!(names.allocate("user"), "user");
        let second = names.allocate("user");
        assert_ne!(second, "user");
        // Each allocated name is recognised as coming from its source, and only from it.
        assert!(is_allocated_from(a, &x) && is_allocated_from(b, &y));
        assert!(!is_allocated_from(a, &y) && !is_allocated_from(b, &x));
        assert!(is_allocated_from("user", &second));
        assert!(!is_allocated_from("use", &second));
    }

    #[test]
    fn shortening_respects_utf8_boundaries() {
        let name = "é".repeat(40);
        let mut names = NameAllocator::new();
        let short = names.allocate(&name);
        assert!(short.len() <= 63);
        assert!(short.starts_with('é'));
        assert!(is_allocated_from(&name, &short));
    }
}
