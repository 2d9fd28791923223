//! SQLite's storage classes and column affinity, as SQLite itself defines them.
//!
//! Declared type names in the wild are anything (`intege`, `BLOB SUB_TYPE TEXT`,
//! `INTEGER_OR_TEXT`, `TINYINT(1)`, `SMALLINT UNSIGNED`); SQLite gives every one of them an
//! affinity by the five rules of its documentation (section 3.1 of "Datatypes In SQLite"),
//! and so does ferry — never "unknown type, no table".
//!
//! ```
//! use ferry_core::value::{affinity, Affinity};
//! assert_eq!(affinity("INTEGER_OR_TEXT"), Affinity::Integer);
//! assert_eq!(affinity("BLOB SUB_TYPE TEXT"), Affinity::Text);
//! assert_eq!(affinity("intege"), Affinity::Integer);
//! assert_eq!(affinity("DATETIME"), Affinity::Numeric);
//! assert_eq!(affinity(""), Affinity::Blob);
//! ```

use serde::{Deserialize, Serialize};

/// The storage class of one SQLite value (`typeof(x)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageClass {
    Null,
    Integer,
    Real,
    Text,
    Blob,
}

impl StorageClass {
    /// Parses the result of SQLite's `typeof()`.
    pub fn from_typeof(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::Null,
            "integer" => Self::Integer,
            "real" => Self::Real,
            "text" => Self::Text,
            "blob" => Self::Blob,
            _ => return None,
        })
    }
}

/// A column's type affinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

/// The affinity SQLite gives a declared type name (rules applied in SQLite's order).
pub fn affinity(declared: &str) -> Affinity {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("INT") {
        Affinity::Integer
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        Affinity::Text
    } else if upper.contains("BLOB") || upper.trim().is_empty() {
        Affinity::Blob
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// The first word of a declared type, upper-cased, without size arguments:
/// `"NVARCHAR(40)"` → `"NVARCHAR"`, `"unsigned big int"` → `"UNSIGNED"`.
pub fn base_type_name(declared: &str) -> String {
    declared
        .trim()
        .split(|c: char| c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_rules_follow_sqlite() {
        for (decl, want) in [
            ("INT", Affinity::Integer),
            ("INT(11)", Affinity::Integer),
            ("TINYINT(1)", Affinity::Integer),
            ("SMALLINT UNSIGNED", Affinity::Integer),
            ("SHORT INTEGER", Affinity::Integer),
            // "POINT" contains "INT": SQLite's rule 1 wins, as in SQLite.
            ("FLOATING POINT", Affinity::Integer),
            ("CHARACTER(20)", Affinity::Text),
            ("NVARCHAR(40)", Affinity::Text),
            ("CLOB", Affinity::Text),
            ("BLOB", Affinity::Blob),
            ("", Affinity::Blob),
            ("REAL", Affinity::Real),
            ("DOUBLE PRECISION", Affinity::Real),
            ("FLOAT", Affinity::Real),
            ("NUMERIC(10,2)", Affinity::Numeric),
            ("DECIMAL(5,2)", Affinity::Numeric),
            ("BOOLEAN", Affinity::Numeric),
            ("DATETIME", Affinity::Numeric),
            ("STRING", Affinity::Numeric),
        ] {
            assert_eq!(affinity(decl), want, "{decl}");
        }
    }

    #[test]
    fn base_names() {
        assert_eq!(base_type_name("NVARCHAR(40)"), "NVARCHAR");
        assert_eq!(base_type_name(" decimal (5,2)"), "DECIMAL");
        assert_eq!(base_type_name(""), "");
    }
}
