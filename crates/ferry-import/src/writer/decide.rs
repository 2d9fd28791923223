//! Deciding what one parsed file means for the database, without touching it: the rows to
//! upsert, the rows of an earlier version to release, the placeholder parents to create,
//! the ledger row, and what the report learns — or the quarantine, when a key of the file
//! belongs to a row another file wrote.
//!
//! [`Decider`] keeps who owns which key: the owners committed so far, and an overlay of the
//! claims and releases of files decided but not yet committed. The writer tells it when a
//! transaction commits ([`Decider::committed`]) or rolls back ([`Decider::forget_uncommitted`]);
//! nothing here runs SQL, so every decision can be tested on parsed files alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::ImportError;
use crate::fsops;
use crate::ledger::{self, LedgerRow, RowKeys};
use crate::parse::{Ctx, FileResult, Outcome, PlanRows};
use crate::record::Row;
use crate::report::{FileStatus, Note, NoteKind, Reason, ReasonKind, UpdatedFile};
use crate::scan::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    New,
    Changed,
    Unchanged,
}

/// What the report needs to know about one file after the run.
#[derive(Debug, Clone)]
pub(crate) struct FileSummary {
    pub kind: String,
    pub status: FileStatus,
    pub rows: u64,
    pub records: u64,
    pub size: u64,
    pub change: Change,
}

impl FileSummary {
    pub fn from_ledger(row: &LedgerRow, change: Change) -> Self {
        Self {
            kind: kind_label(row.kind.as_deref(), row.status),
            status: row.status,
            rows: row.row_count,
            records: row.records_parsed,
            size: row.size,
            change,
        }
    }
}

pub(crate) fn kind_label(kind: Option<&str>, status: FileStatus) -> String {
    match kind {
        Some(k) => k.to_owned(),
        None => format!("({status})"),
    }
}

/// The ledger write of one file.
#[derive(Debug)]
pub(crate) enum LedgerOp {
    /// The row, and its `row_keys` already encoded.
    Upsert(Box<LedgerRow>, String),
    /// Same content, new size or modification time.
    Touch {
        size: u64,
        mtime_ns: Option<i64>,
    },
    /// The file is gone from the store: the time and the run that noticed.
    MarkDisappeared {
        at: String,
        run_id: i64,
    },
    Delete,
    /// The ledger already says exactly this.
    Nothing,
}

/// Rows an earlier version of a file wrote whose keys are gone: deleted, or reset to
/// placeholders where other rows point at them.
#[derive(Debug)]
pub(crate) struct Release {
    pub table: String,
    pub owner: Arc<str>,
    pub cols: Vec<String>,
    pub keys: Vec<String>,
}

/// What the report learns from a file once it is committed.
#[derive(Debug)]
pub(crate) struct FileReport {
    pub summary: Option<FileSummary>,
    pub notes: Vec<Note>,
    pub updated: Option<UpdatedFile>,
}

/// Enough to quarantine a file whose rows the database refused.
#[derive(Debug)]
pub(crate) struct Retry {
    pub entry: Entry,
    pub prev: Option<LedgerRow>,
    pub change: Change,
}

/// Everything one file means for the database, decided before any of it is written.
#[derive(Debug)]
pub(crate) struct FileOps {
    pub path: Arc<str>,
    pub ledger: LedgerOp,
    pub rows: Vec<PlanRows>,
    pub releases: Vec<Release>,
    /// Placeholder parents `(table, key)` the rows need that are not known to exist.
    pub parents: Vec<(usize, String)>,
    /// Keys `(table id, key)` this file takes, and gives up.
    pub claims: Vec<(u32, Arc<str>)>,
    pub unclaims: Vec<(u32, Arc<str>)>,
    pub report: FileReport,
    pub retry: Option<Retry>,
    pub n_rows: usize,
    pub bytes: u64,
}

impl FileOps {
    pub fn empty(path: Arc<str>) -> Self {
        Self {
            path,
            ledger: LedgerOp::Nothing,
            rows: Vec::new(),
            releases: Vec::new(),
            parents: Vec::new(),
            claims: Vec::new(),
            unclaims: Vec::new(),
            report: FileReport {
                summary: None,
                notes: Vec::new(),
                updated: None,
            },
            retry: None,
            n_rows: 0,
            bytes: 0,
        }
    }
}

/// Decides, file by file in path order, and remembers who owns which key.
pub(crate) struct Decider {
    ctx: Arc<Ctx>,
    table_ids: HashMap<String, u32>,
    run_id: i64,
    settings_digest: String,
    now: String,
    /// Per table id: key -> the file that owns the row, as committed.
    owners: Vec<HashMap<Arc<str>, Arc<str>>>,
    /// Claims (`Some(owner)`) and releases (`None`) of files decided but not committed.
    overlay: Vec<HashMap<Arc<str>, Option<Arc<str>>>>,
    /// Placeholder parents known to exist (committed).
    known_parents: HashSet<(usize, String)>,
}

impl Decider {
    /// `tables` are the database's table names (the table ids are their positions);
    /// `ledger` is the import ledger as the run found it.
    pub fn new(
        ctx: Arc<Ctx>,
        tables: impl IntoIterator<Item = String>,
        run_id: i64,
        settings_digest: String,
        now: String,
        ledger: &HashMap<String, LedgerRow>,
        known_parents: HashSet<(usize, String)>,
    ) -> Self {
        let table_ids: HashMap<String, u32> = tables
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, i as u32))
            .collect();
        let mut owners: Vec<HashMap<Arc<str>, Arc<str>>> = vec![HashMap::new(); table_ids.len()];
        for row in ledger.values() {
            let path: Arc<str> = Arc::from(row.path.as_str());
            for (table, set) in &row.row_keys {
                if let (Some(id), false) = (
                    table_ids.get(table),
                    set.cols.iter().any(|c| c == "source_path"),
                ) {
                    for k in &set.rows {
                        owners[*id as usize].insert(Arc::from(k.as_str()), path.clone());
                    }
                }
            }
        }
        let overlay = vec![HashMap::new(); table_ids.len()];
        Self {
            ctx,
            table_ids,
            run_id,
            settings_digest,
            now,
            owners,
            overlay,
            known_parents,
        }
    }

    /// Whether a placeholder parent is known to exist (committed).
    pub fn parent_known(&self, parent: &(usize, String)) -> bool {
        self.known_parents.contains(parent)
    }

    /// Placeholder parents written in a transaction that committed.
    pub fn parents_committed(&mut self, parents: impl IntoIterator<Item = (usize, String)>) {
        self.known_parents.extend(parents);
    }

    /// The open transaction committed (or rolled back): decided-but-uncommitted claims are
    /// either recorded by [`Decider::committed`] or gone.
    pub fn forget_uncommitted(&mut self) {
        self.overlay.iter_mut().for_each(HashMap::clear);
    }

    /// Takes the claims and releases of a file again, as when it is replayed after a
    /// rollback.
    pub fn reclaim(&mut self, op: &FileOps) {
        for (id, k) in &op.unclaims {
            self.overlay[*id as usize].insert(k.clone(), None);
        }
        for (id, k) in &op.claims {
            self.overlay[*id as usize].insert(k.clone(), Some(op.path.clone()));
        }
    }

    /// A file's transaction committed: its claims and releases are now the owners'.
    pub fn committed(&mut self, op: &mut FileOps) {
        for (id, k) in std::mem::take(&mut op.unclaims) {
            let map = &mut self.owners[id as usize];
            if map.get(&k).is_some_and(|o| *o == op.path) {
                map.remove(&k);
            }
        }
        for (id, k) in std::mem::take(&mut op.claims) {
            self.owners[id as usize].insert(k, op.path.clone());
        }
    }

    fn owner(&self, id: u32, key: &str) -> Option<&Arc<str>> {
        match self.overlay[id as usize].get(key) {
            Some(o) => o.as_ref(),
            None => self.owners[id as usize].get(key),
        }
    }

    /// What one file's result, taken in path order, means for the database.
    pub fn decide(
        &mut self,
        r: FileResult,
        prev: Option<LedgerRow>,
    ) -> Result<FileOps, ImportError> {
        let path: Arc<str> = Arc::from(r.entry.rel.as_str());
        let change = match (&prev, &r.outcome) {
            (None, _) => Change::New,
            (Some(_), Outcome::SameContent) => Change::Unchanged,
            (Some(_), _) => Change::Changed,
        };
        let mut base = self.base_row(&r, prev.as_ref());
        let FileResult {
            outcome,
            entry,
            notes,
            notes_json,
            ..
        } = r;
        Ok(match outcome {
            Outcome::SameContent => {
                let prev = prev.ok_or_else(|| {
                    ImportError::Worker(format!("{path}: unchanged content but no ledger row"))
                })?;
                FileOps {
                    ledger: LedgerOp::Touch {
                        size: base.size,
                        mtime_ns: base.mtime_ns,
                    },
                    report: FileReport {
                        summary: Some(FileSummary::from_ledger(&prev, Change::Unchanged)),
                        notes: Vec::new(),
                        updated: None,
                    },
                    ..FileOps::empty(path)
                }
            }
            Outcome::Imported {
                rows,
                records,
                keys,
                keys_json,
            } => match self.find_conflict(&path, &rows) {
                Some(reason) => {
                    let copy =
                        fsops::quarantine(&self.ctx.state_dir, &path, &entry.abs, &entry.kind)?;
                    let quarantine = Quarantine {
                        reason,
                        copy,
                        notes,
                        change,
                    };
                    self.quarantine_ops(path, base, prev.as_ref(), quarantine)
                }
                None => {
                    base.row_keys = keys;
                    base.records_parsed = records;
                    base.notes = notes_json;
                    let imported = Imported {
                        rows,
                        keys_json,
                        notes,
                        entry,
                        change,
                    };
                    self.imported_ops(path, base, prev, imported)
                }
            },
            Outcome::Quarantined { reason, copy } => {
                let quarantine = Quarantine {
                    reason,
                    copy,
                    notes,
                    change,
                };
                self.quarantine_ops(path, base, prev.as_ref(), quarantine)
            }
            Outcome::Excluded(reason) => {
                base.status = FileStatus::Excluded;
                base.reason = Some(reason);
                self.dropped_ops(path, base, prev.as_ref(), change)
            }
            Outcome::Unmapped => {
                base.status = FileStatus::Unmapped;
                self.dropped_ops(path, base, prev.as_ref(), change)
            }
        })
    }

    /// The ledger row of a file before its outcome is filled in.
    fn base_row(&self, r: &FileResult, prev: Option<&LedgerRow>) -> LedgerRow {
        let plan = r.rule.map(|i| &self.ctx.plan.rules[i]);
        LedgerRow {
            path: r.entry.rel.clone(),
            size: r.entry.size,
            mtime_ns: r.entry.mtime_ns,
            sha256: r.sha256.clone(),
            status: FileStatus::Unmapped,
            kind: r.rule.map(|i| self.ctx.kinds[i].clone()),
            format: plan.map(|p| p.format.as_str().to_owned()),
            target_table: plan.map(|p| self.ctx.plan.tables[p.table].name.clone()),
            row_keys: RowKeys::new(),
            row_count: 0,
            records_parsed: 0,
            reason: None,
            quarantine_path: None,
            notes: None,
            settings_digest: self.settings_digest.clone(),
            first_seen_at: prev.map_or_else(|| self.now.clone(), |p| p.first_seen_at.clone()),
            changed_at: self.now.clone(),
            disappeared_at: None,
            run_id: Some(self.run_id),
        }
    }

    /// The ledger write for a file's new row; `keys_json` is its `row_keys` already encoded
    /// (by the parser thread), when it has them.
    fn ledger_op(
        &self,
        row: LedgerRow,
        prev: Option<&LedgerRow>,
        keys_json: Option<String>,
    ) -> LedgerOp {
        if prev.is_some_and(|p| p.same_outcome(&row)) {
            // Nothing to record: the ledger stays byte-for-byte as it was.
            return LedgerOp::Nothing;
        }
        let keys = keys_json.unwrap_or_else(|| ledger::row_keys_to_json(&row.row_keys));
        LedgerOp::Upsert(Box::new(row), keys)
    }

    /// Releases of every row a previous version of `path` wrote, except `keep`, recorded
    /// in the overlay.
    fn releases(
        &mut self,
        path: &Arc<str>,
        prev: Option<&LedgerRow>,
        keep: &RowKeys,
    ) -> (Vec<Release>, Vec<(u32, Arc<str>)>) {
        let mut releases = Vec::new();
        let mut unclaims = Vec::new();
        let Some(prev) = prev else {
            return (releases, unclaims);
        };
        for (table, set) in &prev.row_keys {
            let kept: HashSet<&String> = keep
                .get(table)
                .map(|k| k.rows.iter().collect())
                .unwrap_or_default();
            let gone: Vec<String> = set
                .rows
                .iter()
                .filter(|k| !kept.contains(k))
                .cloned()
                .collect();
            if gone.is_empty() {
                continue;
            }
            if let (Some(id), false) = (
                self.table_ids.get(table),
                set.cols.iter().any(|c| c == "source_path"),
            ) {
                unclaims.extend(gone.iter().map(|k| (*id, Arc::from(k.as_str()))));
            }
            releases.push(Release {
                table: table.clone(),
                owner: path.clone(),
                cols: set.cols.clone(),
                keys: gone,
            });
        }
        for (id, k) in &unclaims {
            self.overlay[*id as usize].insert(k.clone(), None);
        }
        (releases, unclaims)
    }

    /// A file whose rows import: claims its keys, releases what its previous version wrote
    /// and no longer does, and names the parents its rows need.
    fn imported_ops(
        &mut self,
        path: Arc<str>,
        mut base: LedgerRow,
        prev: Option<LedgerRow>,
        imported: Imported,
    ) -> FileOps {
        let Imported {
            rows,
            keys_json,
            mut notes,
            entry,
            change,
        } = imported;
        let mut n_rows = 0;
        let mut bytes = 0u64;
        let mut parents = Vec::new();
        for row in rows.iter().flat_map(|pr| &pr.rows) {
            for p in &row.parents {
                if !self.known_parents.contains(p) && !parents.contains(p) {
                    parents.push(p.clone());
                }
            }
            bytes += row.bytes();
            n_rows += 1;
        }
        let mut claims: Vec<(u32, Arc<str>)> = Vec::new();
        for (table, set) in &base.row_keys {
            if set.cols.iter().any(|c| c == "source_path") {
                continue;
            }
            let id = self.table_ids[table];
            claims.extend(set.rows.iter().map(|k| (id, Arc::from(k.as_str()))));
        }
        let (releases, unclaims) = self.releases(&path, prev.as_ref(), &base.row_keys);
        for (id, k) in &claims {
            self.overlay[*id as usize].insert(k.clone(), Some(path.clone()));
        }
        let updated = match &prev {
            Some(p) if p.status == FileStatus::Imported => Some(UpdatedFile {
                path: path.to_string(),
                kind: base.kind.clone().unwrap_or_default(),
                rows_before: p.row_count,
                rows_after: n_rows as u64,
                rows_released: releases.iter().map(|r| r.keys.len() as u64).sum(),
            }),
            _ => None,
        };
        if prev
            .as_ref()
            .is_some_and(|p| p.status == FileStatus::Quarantined)
        {
            fsops::unquarantine(&self.ctx.state_dir, &path);
        }
        base.status = FileStatus::Imported;
        base.row_count = n_rows as u64;
        let summary = FileSummary {
            kind: kind_label(base.kind.as_deref(), base.status),
            status: base.status,
            rows: base.row_count,
            records: base.records_parsed,
            size: base.size,
            change,
        };
        let ledger = self.ledger_op(base, prev.as_ref(), Some(keys_json));
        if let Some(u) = &updated {
            notes.push(Note {
                path: path.to_string(),
                kind: NoteKind::RowsUpdated,
                count: u.rows_after,
                detail: format!(
                    "the file changed: {} row(s) rewritten, {} of the previous version released",
                    u.rows_after, u.rows_released
                ),
            });
        }
        FileOps {
            ledger,
            rows,
            releases,
            parents,
            claims,
            unclaims,
            report: FileReport {
                summary: Some(summary),
                notes,
                updated,
            },
            retry: Some(Retry {
                entry,
                prev,
                change,
            }),
            n_rows,
            bytes,
            ..FileOps::empty(path)
        }
    }

    /// A key of these rows that another file owns, as a quarantine reason.
    fn find_conflict(&self, path: &Arc<str>, rows: &[PlanRows]) -> Option<Reason> {
        for pr in rows {
            let plan = &self.ctx.plan.rules[pr.plan];
            if plan.key_has_source_path {
                continue;
            }
            let table = &self.ctx.plan.tables[plan.table].name;
            let id = self.table_ids[table];
            for row in &pr.rows {
                if let Some(owner) = self.owner(id, &row.key) {
                    if owner != path {
                        return Some(Reason::new(
                            ReasonKind::KeyConflict,
                            format!(
                                "key {} of table {table} (record {}) already belongs to a row imported from {owner}",
                                row.key,
                                row_record(plan, row)
                            ),
                        ));
                    }
                }
            }
        }
        None
    }

    /// A quarantined file. The rows of an earlier version that imported are kept: a file
    /// going bad is no reason to lose data, and the ledger keeps listing them.
    fn quarantine_ops(
        &mut self,
        path: Arc<str>,
        mut base: LedgerRow,
        prev: Option<&LedgerRow>,
        q: Quarantine,
    ) -> FileOps {
        let Quarantine {
            reason,
            copy,
            mut notes,
            change,
        } = q;
        if let Some(p) = prev.filter(|p| p.row_count > 0) {
            base.row_keys = p.row_keys.clone();
            base.row_count = p.row_count;
            base.records_parsed = p.records_parsed;
            notes.push(Note {
                path: path.to_string(),
                kind: NoteKind::PreviousRowsKept,
                count: p.row_count,
                detail: format!(
                    "the file is quarantined; the {} row(s) of its previous version were kept",
                    p.row_count
                ),
            });
        }
        base.status = FileStatus::Quarantined;
        base.reason = Some(reason);
        base.quarantine_path = copy;
        base.notes = crate::parse::notes_json(&notes);
        let summary = FileSummary {
            kind: kind_label(base.kind.as_deref(), base.status),
            status: base.status,
            rows: base.row_count,
            records: base.records_parsed,
            size: base.size,
            change,
        };
        let ledger = self.ledger_op(base, prev, None);
        FileOps {
            ledger,
            report: FileReport {
                summary: Some(summary),
                notes,
                updated: None,
            },
            ..FileOps::empty(path)
        }
    }

    /// Excluded or unmapped: whatever an earlier version wrote is released.
    fn dropped_ops(
        &mut self,
        path: Arc<str>,
        base: LedgerRow,
        prev: Option<&LedgerRow>,
        change: Change,
    ) -> FileOps {
        let (releases, unclaims) = self.releases(&path, prev, &RowKeys::new());
        let summary = FileSummary {
            kind: kind_label(base.kind.as_deref(), base.status),
            status: base.status,
            rows: 0,
            records: 0,
            size: base.size,
            change,
        };
        let ledger = self.ledger_op(base, prev, None);
        FileOps {
            ledger,
            releases,
            unclaims,
            report: FileReport {
                summary: Some(summary),
                notes: Vec::new(),
                updated: None,
            },
            ..FileOps::empty(path)
        }
    }

    /// A file that vanished from the store: marked, or with `delete` its rows released and
    /// its ledger row removed; `None` when the ledger already marks it.
    pub fn disappeared(&mut self, prev: &LedgerRow, delete: bool) -> Option<FileOps> {
        let path: Arc<str> = Arc::from(prev.path.as_str());
        if delete {
            let (releases, unclaims) = self.releases(&path, Some(prev), &RowKeys::new());
            Some(FileOps {
                ledger: LedgerOp::Delete,
                releases,
                unclaims,
                ..FileOps::empty(path)
            })
        } else if prev.disappeared_at.is_none() {
            Some(FileOps {
                ledger: LedgerOp::MarkDisappeared {
                    at: self.now.clone(),
                    run_id: self.run_id,
                },
                ..FileOps::empty(path)
            })
        } else {
            None
        }
    }

    /// The quarantine of a file whose rows the database refused (`message` says why),
    /// replacing what was decided for it.
    pub fn requarantine(&mut self, op: FileOps, message: &str) -> Result<FileOps, ImportError> {
        let refused = || ImportError::Ledger {
            path: op.path.to_string(),
            message: format!("the database refused its ledger record: {message}"),
        };
        let Some(retry) = op.retry else {
            return Err(refused());
        };
        let row = match op.ledger {
            LedgerOp::Upsert(row, _) => row,
            // The outcome equalled the ledger's, so the ledger row is the base.
            LedgerOp::Nothing => match &retry.prev {
                Some(p) => Box::new(p.clone()),
                None => return Err(refused()),
            },
            _ => return Err(refused()),
        };
        let kind = if message.contains("UNIQUE") || message.contains("conflict") {
            ReasonKind::KeyConflict
        } else {
            ReasonKind::ConstraintViolation
        };
        let reason = Reason::new(
            kind,
            format!("the database refused the file's rows: {message}"),
        );
        let copy = fsops::quarantine(
            &self.ctx.state_dir,
            &op.path,
            &retry.entry.abs,
            &retry.entry.kind,
        )?;
        let mut base = *row;
        base.row_keys = RowKeys::new();
        base.row_count = 0;
        base.records_parsed = 0;
        base.changed_at = self.now.clone();
        base.run_id = Some(self.run_id);
        let quarantine = Quarantine {
            reason,
            copy,
            notes: op.report.notes,
            change: retry.change,
        };
        Ok(self.quarantine_ops(op.path, base, retry.prev.as_ref(), quarantine))
    }
}

/// The parts of an imported file's outcome that go into its operations.
struct Imported {
    rows: Vec<PlanRows>,
    keys_json: String,
    notes: Vec<Note>,
    entry: Entry,
    change: Change,
}

/// The parts of one quarantine decision.
struct Quarantine {
    reason: Reason,
    copy: Option<String>,
    notes: Vec<Note>,
    change: Change,
}

fn row_record(plan: &crate::plan::RulePlan, row: &Row) -> String {
    plan.cols
        .iter()
        .position(|c| c.name == "source_record")
        .and_then(|i| row.int_at(i).map(|n| n.to_string()))
        .unwrap_or_else(|| "0".into())
}

#[cfg(test)]
mod tests {
    //! Decisions on real parsed files, with no database: the schema is described by hand.

    use std::path::Path;

    use super::*;
    use crate::parse::{process, Job};
    use crate::plan::Plan;
    use crate::profile::Profile;
    use crate::schema::{ColumnInfo, TableInfo};

    fn column(name: &str, decl: &str, not_null: bool, default: Option<&str>) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            decl: decl.into(),
            not_null,
            default: default.map(Into::into),
            allowed: None,
            json: false,
        }
    }

    fn table(name: &str, columns: Vec<ColumnInfo>, pk: &[&str]) -> TableInfo {
        let pk: Vec<String> = pk.iter().map(|s| (*s).to_owned()).collect();
        TableInfo {
            name: name.into(),
            columns,
            uniques: if pk.is_empty() {
                Vec::new()
            } else {
                vec![pk.clone()]
            },
            pk,
            fks: Vec::new(),
            referenced: false,
            checks: Vec::new(),
        }
    }

    /// A `notes` table keyed by `note_id`, and a profile whose files hold a list of notes.
    fn context(state: &Path) -> Arc<Ctx> {
        let mut schema = std::collections::BTreeMap::new();
        let notes = table(
            "notes",
            vec![
                column("note_id", "TEXT", true, None),
                column("body", "TEXT", false, None),
                column("source_path", "TEXT", true, None),
                column("source_record", "INTEGER", true, Some("0")),
                column("doc", "TEXT", false, None),
                column("doc_sha256", "TEXT", true, None),
                column("doc_size", "INTEGER", true, None),
                column("doc_snapshot", "TEXT", false, None),
            ],
            &["note_id"],
        );
        schema.insert("notes".to_owned(), notes);
        for t in [crate::plan::LEDGER_TABLE, crate::plan::RUNS_TABLE] {
            schema.insert(t.to_owned(), table(t, Vec::new(), &[]));
        }
        let profile = Profile::from_toml(
            "version = 1\n[[rule]]\nkind = \"note\"\nglob = \"*.json\"\nformat = \"json\"\ntable = \"notes\"\nrecords = { at = [\"/notes\"], each = \"element\" }\n[rule.columns]\nnote_id = \"/id\"\nbody = \"/body\"\n",
            "test profile",
        )
        .unwrap();
        let plan = Plan::build(&profile, &schema).unwrap();
        Arc::new(Ctx {
            kinds: profile.rules.iter().map(|r| r.kind.clone()).collect(),
            profile,
            plan,
            state_dir: state.to_owned(),
            snapshot_threshold: 1 << 20,
            max_file_bytes: 1 << 20,
            naive_offset: 0,
        })
    }

    /// Writes `name` with notes of these ids and parses it as the import would.
    fn parsed(ctx: &Ctx, store: &Path, name: &str, ids: &[&str]) -> FileResult {
        let notes: Vec<String> = ids
            .iter()
            .map(|id| format!("{{\"id\": \"{id}\", \"body\": \"text of {id}\"}}"))
            .collect();
        std::fs::write(
            store.join(name),
            format!("{{\"notes\": [{}]}}", notes.join(", ")),
        )
        .unwrap();
        reparsed(ctx, store, name)
    }

    /// Parses `name` as it is on disk.
    fn reparsed(ctx: &Ctx, store: &Path, name: &str) -> FileResult {
        let (entries, _) = crate::scan::walk(store, 1).unwrap();
        let entry = entries.into_iter().find(|e| e.rel == name).unwrap();
        process(
            ctx,
            Job {
                entry,
                prev_sha256: None,
            },
        )
        .unwrap()
    }

    fn decider(ctx: &Arc<Ctx>) -> Decider {
        Decider::new(
            ctx.clone(),
            ["notes".to_owned()],
            1,
            "settings".into(),
            "2025-01-01T00:00:00.000000Z".into(),
            &HashMap::new(),
            HashSet::new(),
        )
    }

    fn ledger_row(ops: &FileOps) -> &LedgerRow {
        match &ops.ledger {
            LedgerOp::Upsert(row, _) => row,
            other => panic!("expected a ledger upsert, got {other:?}"),
        }
    }

    #[test]
    fn a_key_another_file_claimed_is_a_conflict_until_that_claim_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let (store, state) = (dir.path().join("store"), dir.path().join("state"));
        std::fs::create_dir_all(&store).unwrap();
        let ctx = context(&state);
        let mut d = decider(&ctx);

        let a = d
            .decide(parsed(&ctx, &store, "a.json", &["n1", "n2"]), None)
            .unwrap();
        assert_eq!(ledger_row(&a).status, FileStatus::Imported);
        assert_eq!((a.n_rows, a.claims.len()), (2, 2));

        // Decided but not committed: the claim already holds.
        let b = d
            .decide(parsed(&ctx, &store, "b.json", &["n2"]), None)
            .unwrap();
        let row = ledger_row(&b);
        assert_eq!(row.status, FileStatus::Quarantined);
        let reason = row.reason.as_ref().unwrap();
        assert_eq!(reason.kind, ReasonKind::KeyConflict);
        assert!(reason.message.contains("a.json"), "{}", reason.message);
        assert!(b.rows.is_empty(), "a conflicting file writes no rows");
        assert_eq!(row.quarantine_path.as_deref(), Some("quarantine/b.json"));

        // The transaction holding a's claim rolled back: b's key is free.
        d.forget_uncommitted();
        let b = d
            .decide(parsed(&ctx, &store, "b.json", &["n2"]), None)
            .unwrap();
        assert_eq!(ledger_row(&b).status, FileStatus::Imported);

        // Committed claims outlive the next rollback.
        let mut b = b;
        d.committed(&mut b);
        d.forget_uncommitted();
        let c = d
            .decide(parsed(&ctx, &store, "c.json", &["n2"]), None)
            .unwrap();
        assert_eq!(ledger_row(&c).status, FileStatus::Quarantined);
    }

    #[test]
    fn a_changed_file_releases_the_records_it_no_longer_has() {
        let dir = tempfile::tempdir().unwrap();
        let (store, state) = (dir.path().join("store"), dir.path().join("state"));
        std::fs::create_dir_all(&store).unwrap();
        let ctx = context(&state);
        let mut d = decider(&ctx);
        let mut v1 = d
            .decide(parsed(&ctx, &store, "a.json", &["n1", "n2", "n3"]), None)
            .unwrap();
        let prev = ledger_row(&v1).clone();
        d.committed(&mut v1);

        let v2 = d
            .decide(parsed(&ctx, &store, "a.json", &["n1"]), Some(prev.clone()))
            .unwrap();
        assert_eq!(ledger_row(&v2).row_count, 1);
        let released: Vec<&String> = v2.releases.iter().flat_map(|r| &r.keys).collect();
        assert_eq!(released.len(), 2, "{released:?}");
        assert!(released
            .iter()
            .all(|k| k.contains("n2") || k.contains("n3")));
        let updated = v2.report.updated.as_ref().unwrap();
        assert_eq!(
            (
                updated.rows_before,
                updated.rows_after,
                updated.rows_released
            ),
            (3, 1, 2)
        );

        // Gone from the store and deleted: every row is released and the ledger row goes.
        let gone = d.disappeared(&prev, true).unwrap();
        assert!(matches!(gone.ledger, LedgerOp::Delete));
        assert_eq!(gone.releases.iter().map(|r| r.keys.len()).sum::<usize>(), 3);
        // Only marked: nothing is released.
        let marked = d.disappeared(&prev, false).unwrap();
        assert!(matches!(marked.ledger, LedgerOp::MarkDisappeared { .. }));
        assert!(marked.releases.is_empty());
    }

    #[test]
    fn the_same_outcome_writes_nothing_to_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let (store, state) = (dir.path().join("store"), dir.path().join("state"));
        std::fs::create_dir_all(&store).unwrap();
        let ctx = context(&state);
        let mut d = decider(&ctx);
        let mut first = d
            .decide(parsed(&ctx, &store, "a.json", &["n1"]), None)
            .unwrap();
        let prev = ledger_row(&first).clone();
        d.committed(&mut first);
        // Read again as it is (a settings change makes the import re-read every file).
        let ops = d
            .decide(reparsed(&ctx, &store, "a.json"), Some(prev))
            .unwrap();
        assert!(matches!(ops.ledger, LedgerOp::Nothing), "{:?}", ops.ledger);
        assert!(ops.releases.is_empty());
    }
}
