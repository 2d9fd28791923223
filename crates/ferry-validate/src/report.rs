//! The validation report: serialisable evidence for the phase ledger, and a summary table
//! for people.

use std::collections::BTreeMap;

use ferry_core::table::Table;
use serde::{Deserialize, Serialize};

use crate::canon::Domain;
use crate::rows::TableDigest;

/// Everything one validation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub ferry_version: String,
    /// The SQLite file, as given.
    pub source: String,
    /// The PostgreSQL URL with its password masked.
    pub target: String,
    pub target_schema: String,
    /// Whether a transfer plan mapped the tables and columns (else: by name).
    pub plan_used: bool,
    /// Where the plan came from: `given`, or `recorded in <schema>.ferry_transfer_runs`.
    #[serde(default)]
    pub plan_source: Option<String>,
    /// The hash and canonical encoding behind every digest: digests are comparable only
    /// when these are equal.
    pub hash: String,
    pub encoding_version: u32,
    /// The offset naive timestamps were read at.
    pub naive_timestamps: String,
    pub started_at: String,
    pub elapsed_ms: u64,
    pub tables: Vec<TableReport>,
    pub constraints: ConstraintReport,
    pub totals: Totals,
    /// Every table equal, no constraint finding and no error.
    pub equal: bool,
}

/// The verdict on one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Same rows, same values, same columns.
    Equal,
    /// Rows or columns differ (see `diff`, `missing_columns`).
    Different,
    /// The SQLite table has no counterpart in PostgreSQL.
    MissingOnTarget,
    /// A PostgreSQL table with no SQLite counterpart: a difference when it holds rows.
    ExtraOnTarget,
    /// The table could not be compared (see `error`).
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Equal => "equal",
            Verdict::Different => "DIFFERENT",
            Verdict::MissingOnTarget => "MISSING on target",
            Verdict::ExtraOnTarget => "extra on target",
            Verdict::Error => "ERROR",
        }
    }
}

/// One table compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    /// SQLite name (empty for a table only PostgreSQL has).
    pub source: String,
    /// PostgreSQL name, when there is one.
    pub target: Option<String>,
    pub verdict: Verdict,
    /// Source names of the key columns, in key order. Empty: compared as a multiset of
    /// rows (no primary key), where a changed row shows as one missing and one extra row.
    pub key_columns: Vec<String>,
    pub columns: Vec<ColumnReport>,
    /// Source columns with no target column: their values are not on the target.
    pub missing_columns: Vec<String>,
    /// Target columns with no source column (not compared).
    pub extra_columns: Vec<String>,
    pub notes: Vec<String>,
    pub source_rows: u64,
    pub target_rows: u64,
    pub source_digest: Option<TableDigest>,
    pub target_digest: Option<TableDigest>,
    pub diff: Option<TableDiff>,
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

impl TableReport {
    pub(crate) fn new(source: &str, target: Option<&str>, verdict: Verdict) -> Self {
        TableReport {
            source: source.to_owned(),
            target: target.map(str::to_owned),
            verdict,
            key_columns: Vec::new(),
            columns: Vec::new(),
            missing_columns: Vec::new(),
            extra_columns: Vec::new(),
            notes: Vec::new(),
            source_rows: 0,
            target_rows: 0,
            source_digest: None,
            target_digest: None,
            diff: None,
            error: None,
            elapsed_ms: 0,
        }
    }

    /// The name people know the table by.
    pub fn name(&self) -> &str {
        if self.source.is_empty() {
            self.target.as_deref().unwrap_or("")
        } else {
            &self.source
        }
    }
}

/// How one column was compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnReport {
    pub source: String,
    /// The column's declared type in SQLite, verbatim.
    pub source_type: String,
    pub target: String,
    /// The target column's type as PostgreSQL prints it.
    pub target_type: String,
    pub compared_as: Domain,
}

/// Where two sides of a table differ.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableDiff {
    /// Rows in SQLite and not in PostgreSQL.
    pub missing: u64,
    /// Rows in PostgreSQL and not in SQLite.
    pub extra: u64,
    /// Rows with the same key whose values differ.
    pub changed: u64,
    /// For changed rows: how many differ in each column (source names).
    pub changed_by_column: BTreeMap<String, u64>,
    pub missing_examples: Vec<RowExample>,
    pub extra_examples: Vec<RowExample>,
    pub changed_examples: Vec<ChangedRow>,
    /// Key-range segments the first pass digested, and how many of them differed.
    pub segments: u64,
    pub segments_differing: u64,
    /// Deepest level of segment splitting reached (1 = the first segments were compared
    /// row by row).
    pub levels: u32,
    /// Rows of the differing segments compared row by row (both sides).
    pub rows_compared: u64,
    /// Rows read back from both databases after the first pass (segment splitting and row
    /// comparison): with key ranges in SQL, close to `rows_compared`.
    pub rows_read: u64,
}

/// A row present on one side only: its key (or, for a multiset table, all its values) and
/// how many times it is missing or extra.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowExample {
    pub key: Vec<String>,
    pub count: u64,
}

/// A row whose values differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedRow {
    pub key: Vec<String>,
    pub columns: Vec<CellChange>,
}

/// One differing cell, both values shown canonically (`NULL`, `"text"`, `x'blob'`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellChange {
    pub column: String,
    pub source: String,
    pub target: String,
}

/// The constraint checks that ran and what they found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConstraintReport {
    /// Whether the checks ran at all.
    pub checked: bool,
    /// Foreign keys checked for orphans in PostgreSQL.
    pub target_foreign_keys: u64,
    /// `NOT VALID` foreign keys validated by this run.
    pub validated_foreign_keys: Vec<String>,
    /// Identity and serial sequences compared with their column's maximum.
    pub sequences: u64,
    /// Source NOT NULL / UNIQUE / PRIMARY KEY / FOREIGN KEY / CHECK constraints looked up
    /// on the target.
    pub source_constraints: u64,
    /// Source CHECK constraints looked up (each found by the comment a derived transfer
    /// puts on it, or acknowledged as not carried over).
    #[serde(default)]
    pub source_checks: u64,
    /// Source constraints absent from the target that a person acknowledged (the
    /// transfer's `--acknowledge`), with their SQLite text.
    #[serde(default)]
    pub acknowledged: Vec<String>,
    /// What was not checked, and why.
    #[serde(default)]
    pub notes: Vec<String>,
    pub findings: Vec<ConstraintFinding>,
}

/// One constraint problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintFinding {
    pub kind: ConstraintKind,
    /// Source table name (target name for target-only checks).
    pub table: String,
    pub detail: String,
    /// Rows concerned, where that applies.
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// `PRAGMA foreign_key_check` reported rows in SQLite.
    SqliteForeignKey,
    /// Rows in PostgreSQL whose foreign key has no parent row.
    TargetOrphans,
    /// A `NOT VALID` foreign key that `VALIDATE CONSTRAINT` could not validate.
    TargetForeignKeyNotValid,
    /// A sequence whose next value is not above its column's maximum.
    SequenceBehind,
    MissingNotNull,
    MissingUnique,
    MissingPrimaryKey,
    MissingForeignKey,
    /// A source CHECK with no equal validated CHECK on the target, and no acknowledgement.
    MissingCheck,
}

/// Sums over every table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub tables: u64,
    pub tables_equal: u64,
    pub tables_different: u64,
    pub tables_error: u64,
    pub source_rows: u64,
    pub target_rows: u64,
    pub missing_rows: u64,
    pub extra_rows: u64,
    pub changed_rows: u64,
    pub constraint_findings: u64,
}

impl ValidationReport {
    /// One line per table: verdict, rows on both sides, what differs.
    pub fn summary_table(&self) -> Table {
        let mut t = Table::new([
            "table",
            "verdict",
            "source rows",
            "target rows",
            "missing",
            "extra",
            "changed",
            "columns differing",
        ]);
        for tr in &self.tables {
            let (missing, extra, changed, cols) = match &tr.diff {
                Some(d) => (
                    d.missing.to_string(),
                    d.extra.to_string(),
                    d.changed.to_string(),
                    d.changed_by_column
                        .iter()
                        .map(|(c, n)| format!("{c} ({n})"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                None => ("-".into(), "-".into(), "-".into(), String::new()),
            };
            let mut cols = cols;
            if !tr.missing_columns.is_empty() {
                let missing_cols = format!("not on target: {}", tr.missing_columns.join(", "));
                cols = if cols.is_empty() {
                    missing_cols
                } else {
                    format!("{cols}; {missing_cols}")
                };
            }
            if let Some(e) = &tr.error {
                cols = e.clone();
            }
            t.row([
                tr.name().to_owned(),
                tr.verdict.as_str().to_owned(),
                tr.source_rows.to_string(),
                tr.target_rows.to_string(),
                missing,
                extra,
                changed,
                cols,
            ]);
        }
        t
    }

    /// A few lines per differing table and constraint finding, for a terminal.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for tr in &self.tables {
            let Some(d) = &tr.diff else { continue };
            if d.missing + d.extra + d.changed == 0 {
                continue;
            }
            let key_cols = if tr.key_columns.is_empty() {
                "row".to_owned()
            } else {
                tr.key_columns.join(", ")
            };
            out.push_str(&format!("{} (key: {key_cols}):\n", tr.name()));
            for ex in &d.missing_examples {
                out.push_str(&format!(
                    "  missing on target: ({}){}\n",
                    ex.key.join(", "),
                    times(ex.count)
                ));
            }
            for ex in &d.extra_examples {
                out.push_str(&format!(
                    "  extra on target:   ({}){}\n",
                    ex.key.join(", "),
                    times(ex.count)
                ));
            }
            for ex in &d.changed_examples {
                for c in &ex.columns {
                    out.push_str(&format!(
                        "  changed ({}) {}: {} -> {}\n",
                        ex.key.join(", "),
                        c.column,
                        c.source,
                        c.target
                    ));
                }
            }
        }
        for f in &self.constraints.findings {
            out.push_str(&format!(
                "constraint {:?} on {}: {}\n",
                f.kind, f.table, f.detail
            ));
        }
        out
    }
}

fn times(n: u64) -> String {
    if n > 1 {
        format!(" ×{n}")
    } else {
        String::new()
    }
}
