//! The transfer plan: for every SQLite table and column, where it goes in PostgreSQL, as
//! what type, and why.
//!
//! `ferry-transfer` writes a plan (printed, saved as JSON, reviewable with `--plan-only`);
//! `ferry-validate` reads one to know which target table and column to compare with which
//! source column, and how the target type represents the source value. Validation reads
//! both databases itself: the plan tells it *where* to look, never *what* the values are.
//!
//! # How each target type holds a SQLite value
//!
//! | target type | SQLite values it holds, and how |
//! |---|---|
//! | `bigint`, `integer`, `smallint` | INTEGER, equal |
//! | `boolean` | INTEGER 0 / 1 (and TEXT `'0'`/`'1'`, `'true'`/`'false'` when the plan says so) |
//! | `double precision` | REAL bit for bit; INTEGER exactly representable as f64 |
//! | `numeric` | INTEGER, and REAL as its shortest round-trip decimal |
//! | `text` | TEXT byte for byte |
//! | `bytea` | BLOB byte for byte; TEXT as its UTF-8 (or invalid) bytes when `invalid_text = bytea` |
//! | `timestamptz`, `timestamp`, `date` | TEXT parsed as ISO-8601 (no offset = the configured naive zone), or INTEGER/REAL epoch seconds when the profile says so |
//! | `jsonb`, `json` | TEXT holding JSON, equal after parsing |
//! | `jsonb` (mixed) | one jsonb scalar per value of a column mixing storage classes: see [`TargetType::MixedJsonb`] |
//! | `real[]` | BLOB of little-endian f32 (embeddings), element for element |

use serde::{Deserialize, Serialize};

use crate::value::{Affinity, StorageClass};

/// The whole plan of one transfer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferPlan {
    /// The SQLite file, as given.
    pub source: String,
    /// The PostgreSQL schema the tables live in.
    pub target_schema: String,
    /// `derived` (schema made from the SQLite one) or `managed` (schema from migrations).
    pub mode: PlanMode,
    pub tables: Vec<TablePlan>,
    /// Identifiers shortened or changed to fit PostgreSQL (63 bytes), with the original.
    #[serde(default)]
    pub renames: Vec<Rename>,
    /// Things the plan could not carry over exactly, in words (views, triggers, defaults).
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanMode {
    #[default]
    Derived,
    Managed,
}

/// One source table and its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    /// Name in SQLite, exactly.
    pub source: String,
    /// Name in PostgreSQL, exactly (quoted when used).
    pub target: String,
    pub kind: TableKind,
    /// Source column names of the primary key, in key order. Empty when the table has no
    /// declared primary key: rows are then matched as a multiset (and read by rowid).
    pub primary_key: Vec<String>,
    pub columns: Vec<ColumnPlan>,
    /// Rows in the source when the plan was made.
    #[serde(default)]
    pub source_rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// An ordinary rowid table.
    Table,
    /// A `WITHOUT ROWID` table.
    WithoutRowid,
    /// The rows of a full-text virtual table, as the virtual table shows them.
    FullText,
}

/// One source column and its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnPlan {
    pub source: String,
    pub target: String,
    /// The declared type in SQLite, verbatim (may be empty).
    pub declared_type: String,
    pub affinity: Affinity,
    pub target_type: TargetType,
    pub not_null: bool,
    /// What the data looked like when profiled.
    #[serde(default)]
    pub profile: ColumnProfile,
    /// Why this target type, in words.
    #[serde(default)]
    pub reason: String,
}

/// What a column's values look like, gathered before any DDL is written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub nulls: u64,
    pub integers: u64,
    pub reals: u64,
    pub texts: u64,
    pub blobs: u64,
    pub min_integer: Option<i64>,
    pub max_integer: Option<i64>,
    /// TEXT values that are not valid UTF-8.
    pub invalid_utf8: u64,
    /// TEXT values containing a NUL byte.
    pub nul_bytes: u64,
}

impl ColumnProfile {
    /// The storage classes present, NULL excluded.
    pub fn classes(&self) -> Vec<StorageClass> {
        let mut out = Vec::new();
        for (n, class) in [
            (self.integers, StorageClass::Integer),
            (self.reals, StorageClass::Real),
            (self.texts, StorageClass::Text),
            (self.blobs, StorageClass::Blob),
        ] {
            if n > 0 {
                out.push(class);
            }
        }
        out
    }
}

/// The PostgreSQL type a column is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    Boolean,
    Smallint,
    Integer,
    Bigint,
    DoublePrecision,
    Numeric,
    Text,
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    Json,
    Jsonb,
    Uuid,
    /// `real[]`, from a BLOB of little-endian f32 values.
    RealArray,
    /// `jsonb` holding one scalar per value of a column whose values mix storage classes,
    /// so that every value keeps its class and its exact value:
    /// INTEGER → JSON integer (`5`); REAL → JSON number written as the shortest decimal
    /// that reads back as the same f64, in positional notation and always with a `.` (`5.0`,
    /// `1e300` written out in full: jsonb normalises an exponent away, `1.5e1` becomes `15`),
    /// non-finite as the string `"NaN"`/`"Infinity"`/`"-Infinity"` inside `{"$real": …}`;
    /// TEXT → JSON string; BLOB → `{"$blob": "<lower-case hex>"}`; SQL NULL → SQL NULL.
    MixedJsonb,
}

impl TargetType {
    /// The type as written in PostgreSQL DDL.
    pub fn sql(&self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Smallint => "smallint",
            Self::Integer => "integer",
            Self::Bigint => "bigint",
            Self::DoublePrecision => "double precision",
            Self::Numeric => "numeric",
            Self::Text => "text",
            Self::Bytea => "bytea",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::Timestamptz => "timestamptz",
            Self::Json => "json",
            Self::Jsonb | Self::MixedJsonb => "jsonb",
            Self::Uuid => "uuid",
            Self::RealArray => "real[]",
        }
    }
}

/// An identifier that changed on the way to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// `table`, `column`, `index`, `constraint`.
    pub kind: String,
    /// The table it belongs to (source name), empty for tables.
    pub table: String,
    pub from: String,
    pub to: String,
}

impl TransferPlan {
    /// The plan of one source table, by its SQLite name.
    pub fn table(&self, source: &str) -> Option<&TablePlan> {
        self.tables.iter().find(|t| t.source == source)
    }
}
