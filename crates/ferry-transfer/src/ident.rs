//! PostgreSQL identifiers: quoting, and names that fit 63 bytes without ever colliding.
//!
//! SQLite names are kept exactly (mixed case, spaces, reserved words) and always quoted.
//! A name longer than PostgreSQL's 63-byte limit (which PostgreSQL would silently truncate,
//! so that two long names sharing a prefix would collide) is shortened deterministically:
//! its longest prefix that fits, `_`, and the first hex digits of the SHA-256 of the whole
//! name. [`NameAllocator`] hands out each name once per scope, so a collision is impossible.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// PostgreSQL's identifier limit in bytes (`NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

pub use ferry_core::sql::{
    qualified, quote_ident as quote, quote_ident as quote_sqlite, quote_literal as literal,
};

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
    fn quotes_hostile_names() {
        assert_eq!(quote("Order Details"), "\"Order Details\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
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
        assert_ne!(names.allocate("user"), "user");
    }

    #[test]
    fn shortening_respects_utf8_boundaries() {
        let name = "é".repeat(40);
        let mut names = NameAllocator::new();
        let short = names.allocate(&name);
        assert!(short.len() <= 63);
        assert!(short.starts_with('é'));
    }
}
