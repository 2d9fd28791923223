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
//! | `text` (mixed) | a column mixing INTEGER and TEXT where no TEXT spells an integer: INTEGER as its decimal, TEXT byte for byte (the class is recoverable) |
//! | `timestamptz`, `timestamp`, `date` | TEXT parsed as ISO-8601 (no offset = the configured naive zone) |
//! | `jsonb`, `json` | TEXT holding JSON, equal after parsing; INTEGER and REAL as JSON numbers |
//! | `sqlite_value` (a domain over `jsonb`) | one jsonb scalar per value of a column mixing storage classes: see [`TargetType::MixedJsonb`] |
//! | `real[]` | BLOB of little-endian f32 (embeddings), element for element |

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::value::{Affinity, StorageClass};

/// The domain over `jsonb` a derived schema gives every [`TargetType::MixedJsonb`] column,
/// so that the column's type itself says how its values are written. Source tables cannot
/// be named like it (SQLite reserves `sqlite_…`), so it never collides with a table's type.
pub const MIXED_DOMAIN: &str = "sqlite_value";

/// The comment a derived schema puts on each CHECK constraint it carried over from SQLite,
/// naming the source CHECK by its text (as `ferry_core::sqlite_text::render` writes it):
/// the validation finds each source CHECK on the target by it.
pub fn check_comment(sqlite_text: &str) -> String {
    format!("{CHECK_COMMENT_PREFIX}{sqlite_text})")
}

const CHECK_COMMENT_PREFIX: &str = "carried over by ferry from SQLite: CHECK (";

/// Whether a constraint comment is one [`check_comment`] wrote.
pub fn is_check_comment(comment: &str) -> bool {
    comment.starts_with(CHECK_COMMENT_PREFIX)
}

/// The tables a transfer keeps in its target schema (its bookkeeping). Everything in the
/// schema whose name starts with `ferry_transfer_` is ferry's.
pub mod bookkeeping {
    /// The run: source, plan, state (one row).
    pub const RUNS: &str = "ferry_transfer_runs";
    /// One row per committed chunk.
    pub const CHECKPOINTS: &str = "ferry_transfer_checkpoints";
    /// Rejected and adjusted cells.
    pub const REJECTS: &str = "ferry_transfer_rejects";
    /// Post-data steps done or failed.
    pub const STEPS: &str = "ferry_transfer_steps";
    /// A person's acknowledgement of what was not carried over.
    pub const ACKNOWLEDGEMENTS: &str = "ferry_transfer_acknowledgements";
    /// Every bookkeeping table.
    pub const ALL: &[&str] = &[RUNS, CHECKPOINTS, REJECTS, STEPS, ACKNOWLEDGEMENTS];
}

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
    /// A generated column's SQLite expression: PostgreSQL computes the column from its
    /// translation (`GENERATED ALWAYS AS … STORED`) and the copy does not write it. When
    /// the translation is refused, the column is a plain one holding the copied values and
    /// the expression is reported as not carried over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
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
    /// TEXT values that spell a canonical integer (`42`, `-7`; not `007` or `+1`): when
    /// there are none, a column mixing INTEGER and TEXT can be `text` and every value's
    /// class is still known.
    #[serde(default)]
    pub texts_like_integer: u64,
    /// The one layout every TEXT value of a date/time column is written in, as a
    /// PostgreSQL `to_char` pattern (`YYYY-MM-DD HH24:MI:SS`), when they all share one: a
    /// CHECK or view that inspects the text of such a column is translated with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_layout: Option<String>,
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
    /// `jsonb` (as the domain [`MIXED_DOMAIN`] in a derived schema) holding one scalar per
    /// value of a column whose values mix storage classes,
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

    /// The type as a derived schema declares a column of it (`schema` holds the domain of
    /// mixed columns).
    pub fn ddl(&self, schema: &str) -> String {
        match self {
            Self::MixedJsonb => crate::sql::qualified(schema, MIXED_DOMAIN),
            other => other.sql().to_owned(),
        }
    }

    /// The type as a person reads it in a plan.
    pub fn shown(&self) -> &'static str {
        match self {
            Self::MixedJsonb => "sqlite_value (jsonb)",
            other => other.sql(),
        }
    }
}

/// Something of the source schema that the target does not have, or has only in part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCarriedOver {
    /// Stable across runs: the same object always gets the same id (`check:p:2`,
    /// `view:v`), so an acknowledgement given once still applies after a resume.
    pub id: String,
    pub kind: ObjectKind,
    /// The source table it belongs to (empty for views).
    pub table: String,
    /// Its name in SQLite (constraint, index, view, trigger, or the column of a default),
    /// when it has one.
    pub name: String,
    /// Its SQLite text.
    pub text: String,
    /// Why it was not carried over: ferry's reason, or PostgreSQL's refusal.
    pub reason: String,
    /// A person's acknowledgement, once given; until then the transfer exits 1 and gate 3
    /// fails.
    #[serde(default)]
    pub acknowledged: Option<Acknowledgement>,
}

/// What kind of schema object was not carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Table,
    PrimaryKey,
    Unique,
    Index,
    Check,
    ForeignKey,
    Default,
    Generated,
    Collation,
    Sequence,
    FullText,
    View,
    Trigger,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::PrimaryKey => "primary key",
            Self::Unique => "unique",
            Self::Index => "index",
            Self::Check => "check",
            Self::ForeignKey => "foreign key",
            Self::Default => "default",
            Self::Generated => "generated column",
            Self::Collation => "collation",
            Self::Sequence => "sequence",
            Self::FullText => "full-text index",
            Self::View => "view",
            Self::Trigger => "trigger",
        }
    }
}

/// A person's reason for accepting that something was not carried over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub reason: String,
    pub at: DateTime<Utc>,
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
