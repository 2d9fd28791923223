//! What an import run says about itself: counts per kind, every quarantined file with its
//! reason, notes (what was tolerated and how), disappeared and updated files, and the ledger
//! rows it wrote. Serialisable, so the command line writes it as the JSON report and the
//! phase runner keeps it as gate evidence.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use ferry_core::table::Table;
use serde::{Deserialize, Serialize};

/// The format tag of [`ImportReport`].
pub const REPORT_FORMAT: &str = "ferry-import-report/1";

/// The state a file ends in; every file of the store is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Imported,
    Quarantined,
    Excluded,
    Unmapped,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Imported => "imported",
            FileStatus::Quarantined => "quarantined",
            FileStatus::Excluded => "excluded",
            FileStatus::Unmapped => "unmapped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "imported" => FileStatus::Imported,
            "quarantined" => FileStatus::Quarantined,
            "excluded" => FileStatus::Excluded,
            "unmapped" => FileStatus::Unmapped,
            _ => return None,
        })
    }
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a file was quarantined (or excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    EmptyFile,
    TooLarge,
    InvalidUtf8,
    TruncatedJson,
    InvalidJson,
    NotJson,
    UnexpectedShape,
    InvalidFrontMatter,
    MissingKey,
    /// Two records of the file have the same key.
    DuplicateKey,
    /// A key of the file's rows belongs to a row another file (or not ferry) wrote.
    KeyConflict,
    MissingValue,
    ConstraintViolation,
    SymlinkOutside,
    BrokenSymlink,
    SpecialFile,
    Unreadable,
    InvalidFileName,
    /// Excluded: an exclude pattern of the profile matched.
    ExcludedByProfile,
    /// Excluded: a symlink to something inside the store, imported under its own path.
    SymlinkInside,
}

impl ReasonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::EmptyFile => "empty_file",
            ReasonKind::TooLarge => "too_large",
            ReasonKind::InvalidUtf8 => "invalid_utf8",
            ReasonKind::TruncatedJson => "truncated_json",
            ReasonKind::InvalidJson => "invalid_json",
            ReasonKind::NotJson => "not_json",
            ReasonKind::UnexpectedShape => "unexpected_shape",
            ReasonKind::InvalidFrontMatter => "invalid_front_matter",
            ReasonKind::MissingKey => "missing_key",
            ReasonKind::DuplicateKey => "duplicate_key",
            ReasonKind::KeyConflict => "key_conflict",
            ReasonKind::MissingValue => "missing_value",
            ReasonKind::ConstraintViolation => "constraint_violation",
            ReasonKind::SymlinkOutside => "symlink_outside",
            ReasonKind::BrokenSymlink => "broken_symlink",
            ReasonKind::SpecialFile => "special_file",
            ReasonKind::Unreadable => "unreadable",
            ReasonKind::InvalidFileName => "invalid_file_name",
            ReasonKind::ExcludedByProfile => "excluded_by_profile",
            ReasonKind::SymlinkInside => "symlink_inside",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_REASONS.iter().copied().find(|r| r.as_str() == s)
    }
}

const ALL_REASONS: &[ReasonKind] = &[
    ReasonKind::EmptyFile,
    ReasonKind::TooLarge,
    ReasonKind::InvalidUtf8,
    ReasonKind::TruncatedJson,
    ReasonKind::InvalidJson,
    ReasonKind::NotJson,
    ReasonKind::UnexpectedShape,
    ReasonKind::InvalidFrontMatter,
    ReasonKind::MissingKey,
    ReasonKind::DuplicateKey,
    ReasonKind::KeyConflict,
    ReasonKind::MissingValue,
    ReasonKind::ConstraintViolation,
    ReasonKind::SymlinkOutside,
    ReasonKind::BrokenSymlink,
    ReasonKind::SpecialFile,
    ReasonKind::Unreadable,
    ReasonKind::InvalidFileName,
    ReasonKind::ExcludedByProfile,
    ReasonKind::SymlinkInside,
];

impl fmt::Display for ReasonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason a person can act on: what is wrong, where (1-based line and column; the column
/// counts bytes, and on line 1 it counts after a stripped byte-order mark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub kind: ReasonKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
}

impl Reason {
    pub fn new(kind: ReasonKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            line: None,
            column: None,
        }
    }

    pub fn at(mut self, line: u64, column: u64) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " (line {l}, column {c})"),
            (Some(l), None) => write!(f, " (line {l})"),
            _ => Ok(()),
        }
    }
}

/// Something tolerated, assumed or converted while importing a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// A UTF-8 byte-order mark was stripped; `doc` holds the text after it.
    BomStripped,
    /// A timestamp without an offset was read in the configured one.
    TimestampNaive,
    /// A date without a time was read as midnight.
    TimestampDateOnly,
    /// Digits beyond microseconds were dropped from the typed column (the document keeps them).
    TimestampTruncated,
    /// A number was read as epoch seconds or milliseconds.
    TimestampEpoch,
    /// A timestamp could not be read: the typed column is NULL, the document keeps the text.
    TimestampUnparsed,
    /// A value did not fit its column's type: the column is NULL, the document keeps it.
    ValueUnconvertible,
    /// An object or array was stored as JSON text in a text column.
    ValueAsJsonText,
    /// A value outside the vocabulary became `other`; `<column>_raw` keeps it.
    VocabularyOther,
    /// A NOT NULL column had no value and took its default.
    DefaultUsed,
    /// The document exceeded the snapshot threshold and lives in the snapshot store.
    Snapshot,
    /// The file holds no records (an empty array or list).
    NoRecords,
    /// Blank lines of a JSON Lines file were skipped.
    BlankLinesSkipped,
    /// The file became unusable; the rows of its previous version were kept.
    PreviousRowsKept,
    /// The file changed and its rows were updated.
    RowsUpdated,
    /// An object of the document has the same key twice: the columns map the last value (as
    /// PostgreSQL's jsonb keeps it), the stored document keeps both.
    DuplicateJsonKey,
}

impl NoteKind {
    /// What the note says, in words, for a count printed before it
    /// (`117  timestamps with digits beyond microseconds truncated …`).
    pub fn describe(self) -> &'static str {
        match self {
            NoteKind::BomStripped => "byte-order marks stripped (the stored document starts after it)",
            NoteKind::TimestampNaive => "timestamps without an offset read in timestamps.naive",
            NoteKind::TimestampDateOnly => "dates without a time read as midnight",
            NoteKind::TimestampTruncated => "timestamps with digits beyond microseconds truncated (the document keeps every digit)",
            NoteKind::TimestampEpoch => "numbers read as epoch seconds or milliseconds",
            NoteKind::TimestampUnparsed => "timestamps not understood (column left NULL, the document keeps the text)",
            NoteKind::ValueUnconvertible => "values that did not fit their column (left NULL, the document keeps them)",
            NoteKind::ValueAsJsonText => "objects or arrays stored as JSON text in a text column",
            NoteKind::VocabularyOther => "values outside their vocabulary stored as `other` (the `_raw` column keeps them)",
            NoteKind::DefaultUsed => "missing values given their column's default",
            NoteKind::Snapshot => "documents kept in the snapshot store",
            NoteKind::NoRecords => "files holding no records",
            NoteKind::BlankLinesSkipped => "blank lines of JSON Lines files skipped",
            NoteKind::PreviousRowsKept => "rows of a file's previous version kept while it is quarantined",
            NoteKind::RowsUpdated => "rows of changed files rewritten",
            NoteKind::DuplicateJsonKey => "objects with a key written twice (the last value is mapped; the document keeps both)",
        }
    }
}

/// One note for one file, with how many times it applied and the first example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub path: String,
    pub kind: NoteKind,
    pub count: u64,
    pub detail: String,
}

/// Counts for one kind of file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    /// Files of this kind in the store after the run.
    pub files: u64,
    pub bytes: u64,
    /// Records parsed from the imported files (rows written, once each).
    pub records: u64,
    pub rows: u64,
    pub imported: u64,
    pub quarantined: u64,
    pub excluded: u64,
    pub unmapped: u64,
    /// Of `files`: seen for the first time, changed since the last run, unchanged.
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
}

impl KindCounts {
    pub(crate) fn add_status(&mut self, status: FileStatus) {
        match status {
            FileStatus::Imported => self.imported += 1,
            FileStatus::Quarantined => self.quarantined += 1,
            FileStatus::Excluded => self.excluded += 1,
            FileStatus::Unmapped => self.unmapped += 1,
        }
    }

    fn add(&mut self, o: &KindCounts) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.records += o.records;
        self.rows += o.rows;
        self.imported += o.imported;
        self.quarantined += o.quarantined;
        self.excluded += o.excluded;
        self.unmapped += o.unmapped;
        self.new += o.new;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
    }
}

/// A quarantined file, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedFile {
    pub path: String,
    pub kind: Option<String>,
    pub reason: Reason,
    /// The copy, relative to the state directory (`quarantine/<path>`); none for a special
    /// file, which cannot be copied.
    pub quarantine_path: Option<String>,
    /// Rows of an earlier, importable version that were kept.
    pub rows_kept: u64,
}

/// A file that was in the ledger but is no longer in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisappearedFile {
    pub path: String,
    pub kind: Option<String>,
    pub rows: u64,
    /// The profile said `delete_disappeared`: its rows and ledger row were deleted.
    pub deleted: bool,
}

/// A file that changed and whose rows were rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatedFile {
    pub path: String,
    pub kind: String,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Rows of the previous version whose key is gone (deleted, or reset to a placeholder
    /// when other rows refer to them).
    pub rows_released: u64,
}

/// A ledger row written by this run, compact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub path: String,
    pub status: FileStatus,
    pub kind: Option<String>,
    pub table: Option<String>,
    pub rows: u64,
    pub sha256: Option<String>,
}

/// The ledger after the run: how many files in each state, and the rows this run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSummary {
    pub table: String,
    pub files: u64,
    pub by_status: BTreeMap<FileStatus, u64>,
    pub written: Vec<LedgerEntry>,
}

/// Totals over the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub files: u64,
    /// Bytes of the files read in this run.
    pub bytes_read: u64,
    pub files_read: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub imported: u64,
    pub quarantined: u64,
    pub excluded: u64,
    pub unmapped: u64,
    pub disappeared: u64,
    pub records: u64,
    pub rows: u64,
    /// Rows inserted or updated in this run.
    pub rows_written: u64,
    /// Rows deleted (or reset to placeholders) in this run.
    pub rows_released: u64,
    /// Placeholder parent rows created (agents named by a directory, for instance).
    pub placeholders: u64,
}

/// Everything an import run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub format: String,
    pub ferry_version: String,
    pub run_id: i64,
    pub store_dir: String,
    pub profile: String,
    pub settings_digest: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub elapsed_seconds: f64,
    pub totals: Totals,
    pub kinds: BTreeMap<String, KindCounts>,
    /// Every file quarantined now (this run or earlier), with its reason.
    pub quarantined: Vec<QuarantinedFile>,
    pub unmapped: Vec<String>,
    pub disappeared: Vec<DisappearedFile>,
    pub updated: Vec<UpdatedFile>,
    /// This run's notes, at most 500 of each kind (the ledger keeps every file's counts).
    pub notes: Vec<Note>,
    /// Notes of this run by kind, summed over files.
    pub note_counts: BTreeMap<NoteKind, u64>,
    /// Notes left out of `notes` past 500 of a kind.
    pub notes_omitted: u64,
    /// Directories that could not be listed: their files are not in the ledger, and the
    /// gate's accounting will name them.
    pub unreadable_dirs: Vec<String>,
    pub ledger: LedgerSummary,
}

impl ImportReport {
    /// Something was quarantined: the command exits 1.
    pub fn has_findings(&self) -> bool {
        !self.quarantined.is_empty() || !self.unreadable_dirs.is_empty()
    }

    /// The summary table printed at the end of an import, one row per kind and a total.
    pub fn summary_table(&self) -> Table {
        let mut t = Table::new([
            "kind",
            "files",
            "new",
            "changed",
            "records",
            "rows",
            "quarantined",
            "excluded",
            "unmapped",
        ]);
        let mut total = KindCounts::default();
        for (kind, c) in &self.kinds {
            total.add(c);
            t.row([
                kind.clone(),
                c.files.to_string(),
                c.new.to_string(),
                c.changed.to_string(),
                c.records.to_string(),
                c.rows.to_string(),
                c.quarantined.to_string(),
                c.excluded.to_string(),
                c.unmapped.to_string(),
            ]);
        }
        t.row([
            "total".to_owned(),
            total.files.to_string(),
            total.new.to_string(),
            total.changed.to_string(),
            total.records.to_string(),
            total.rows.to_string(),
            total.quarantined.to_string(),
            total.excluded.to_string(),
            total.unmapped.to_string(),
        ]);
        t
    }

    /// One line per quarantined file: `path: kind: message (line, column)`.
    pub fn quarantine_lines(&self) -> Vec<String> {
        self.quarantined
            .iter()
            .map(|q| format!("{}: {}", q.path, q.reason))
            .collect()
    }
}
