//! One file, start to finish, on a parser thread: read, hash, strip a byte-order mark, check
//! UTF-8, parse by format, split into records, map each record to a row, and put large
//! originals in the snapshot store. A file that cannot be imported comes back quarantined
//! with a reason; only a failure of the state directory is an error.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ImportError;
use crate::fsops;
use crate::glob::Captures;
use crate::ledger::{KeySet, RowKeys};
use crate::plan::Plan;
use crate::profile::{Each, Format, Profile};
use crate::record::{map_record, Input, Notes, Row, Stored};
use crate::report::{Note, NoteKind, Reason, ReasonKind};
use crate::scan::{Entry, EntryKind};
use crate::template::Vars;

/// What the parser threads share.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub profile: Profile,
    pub plan: Plan,
    pub kinds: Vec<String>,
    pub state_dir: PathBuf,
    pub snapshot_threshold: u64,
    pub max_file_bytes: u64,
    pub naive_offset: i32,
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub entry: Entry,
    /// The ledger's hash, to recognise a file whose content did not change.
    pub prev_sha256: Option<String>,
}

#[derive(Debug)]
pub(crate) enum Disposition {
    Rule { rule: usize, captures: Captures },
    Excluded(Reason),
    Unmapped,
    Quarantine(Reason),
}

#[derive(Debug)]
pub(crate) struct FileResult {
    pub entry: Entry,
    pub sha256: Option<String>,
    pub rule: Option<usize>,
    pub outcome: Outcome,
    pub notes: Vec<Note>,
    /// The notes as the ledger keeps them (kind and count).
    pub notes_json: Option<String>,
    /// The file's content was read (an empty file too).
    pub read: bool,
    pub bytes_read: u64,
}

#[derive(Debug)]
pub(crate) enum Outcome {
    /// `keys` lists the rows per table as the ledger records them; `keys_json` is the same
    /// as the ledger's `row_keys` text, encoded here rather than on the writer thread.
    Imported {
        rows: Vec<PlanRows>,
        records: u64,
        keys: RowKeys,
        keys_json: String,
    },
    /// `copy` is filled once the file is copied (by the parser, or by the writer when the
    /// reason is found there).
    Quarantined {
        reason: Reason,
        copy: Option<String>,
    },
    Excluded(Reason),
    Unmapped,
    /// Read and hashed: the content is what the ledger has; only the metadata changed.
    SameContent,
}

#[derive(Debug)]
pub(crate) struct PlanRows {
    pub plan: usize,
    pub rows: Vec<Row>,
}

/// Processes one job; never fails because of the file's content.
pub(crate) fn process(ctx: &Ctx, job: Job) -> Result<FileResult, ImportError> {
    let Job { entry, prev_sha256 } = job;
    let disposition = classify(&ctx.profile, &entry);
    let mut result = FileResult {
        entry,
        sha256: None,
        rule: None,
        outcome: Outcome::Unmapped,
        notes: Vec::new(),
        notes_json: None,
        read: false,
        bytes_read: 0,
    };
    let (rule, captures) = match disposition {
        Disposition::Excluded(r) => {
            result.outcome = Outcome::Excluded(r);
            return Ok(result);
        }
        Disposition::Unmapped => return Ok(result),
        Disposition::Quarantine(reason) => {
            let e = &result.entry;
            let copy = fsops::quarantine(&ctx.state_dir, &e.rel, &e.abs, &e.kind)?;
            result.outcome = Outcome::Quarantined { reason, copy };
            return Ok(result);
        }
        Disposition::Rule { rule, captures } => (rule, captures),
    };
    result.rule = Some(rule);
    let quarantined = |result: &mut FileResult, reason: Reason| -> Result<(), ImportError> {
        let e = &result.entry;
        let copy = fsops::quarantine(&ctx.state_dir, &e.rel, &e.abs, &e.kind)?;
        result.outcome = Outcome::Quarantined { reason, copy };
        Ok(())
    };
    if result.entry.size > ctx.max_file_bytes {
        let reason = Reason::new(
            ReasonKind::TooLarge,
            format!(
                "{} bytes is over the import.max_file_bytes cap of {}",
                result.entry.size, ctx.max_file_bytes
            ),
        );
        quarantined(&mut result, reason)?;
        return Ok(result);
    }
    let bytes = match std::fs::read(&result.entry.abs) {
        Ok(b) => b,
        Err(e) => {
            let reason = Reason::new(ReasonKind::Unreadable, format!("cannot be read: {e}"));
            // A file that cannot be read cannot be copied either; record the reason alone.
            result.outcome = Outcome::Quarantined { reason, copy: None };
            return Ok(result);
        }
    };
    result.read = true;
    result.bytes_read = bytes.len() as u64;
    result.entry.size = bytes.len() as u64;
    let sha = hex::encode(Sha256::digest(&bytes));
    result.sha256 = Some(sha.clone());
    if prev_sha256.as_deref() == Some(sha.as_str()) {
        result.outcome = Outcome::SameContent;
        return Ok(result);
    }
    if bytes.len() as u64 > ctx.max_file_bytes {
        let reason = Reason::new(
            ReasonKind::TooLarge,
            format!(
                "{} bytes is over the import.max_file_bytes cap of {}",
                bytes.len(),
                ctx.max_file_bytes
            ),
        );
        quarantined(&mut result, reason)?;
        return Ok(result);
    }
    let mut notes = Notes::default();
    match parse_inner(ctx, rule, &captures, &result, &bytes, &sha, &mut notes) {
        Ok((rows, records)) => {
            let keys = row_keys(&ctx.plan, &rows);
            let keys_json = crate::ledger::row_keys_to_json(&keys);
            result.outcome = Outcome::Imported {
                rows,
                records,
                keys,
                keys_json,
            };
        }
        Err(Fail::Reason(reason)) => quarantined(&mut result, reason)?,
        Err(Fail::Io(e)) => return Err(e),
    }
    result.notes = notes.into_notes(&result.entry.rel);
    result.notes_json = notes_json(&result.notes);
    Ok(result)
}

/// The keys of a file's rows, per table, as the ledger records them.
fn row_keys(plan: &Plan, rows: &[PlanRows]) -> RowKeys {
    let mut keys = RowKeys::new();
    for pr in rows {
        let rule = &plan.rules[pr.plan];
        let set = keys.get_or_insert_with(&plan.tables[rule.table].name, || KeySet {
            cols: rule.key_cols.clone(),
            rows: Vec::new(),
        });
        set.rows.extend(pr.rows.iter().map(|r| r.key.clone()));
    }
    keys
}

/// The ledger keeps each note's kind and count (`{"timestamp_naive": 3}`); the sentences
/// are in the run's report.
pub(crate) fn notes_json(notes: &[Note]) -> Option<String> {
    if notes.is_empty() {
        return None;
    }
    let mut map = serde_json::Map::new();
    for n in notes {
        let kind = serde_json::to_value(n.kind).ok()?.as_str()?.to_owned();
        map.insert(kind, Value::from(n.count));
    }
    Some(Value::Object(map).to_string())
}

/// Where a file goes, before reading it: excluded, quarantined unread, a rule, or nowhere.
pub(crate) fn classify(profile: &Profile, entry: &Entry) -> Disposition {
    // Split once: every exclude pattern and rule is tried on the same segments.
    let segs: Vec<&str> = entry.rel.split('/').collect();
    if let Some(p) = profile
        .exclude
        .iter()
        .find(|p| p.matches_split(&entry.rel, &segs).is_some())
    {
        return Disposition::Excluded(Reason::new(
            ReasonKind::ExcludedByProfile,
            format!("matches the exclude pattern `{p}`"),
        ));
    }
    match &entry.kind {
        EntryKind::SymlinkInside { target } => {
            return Disposition::Excluded(Reason::new(
                ReasonKind::SymlinkInside,
                format!("a symlink to `{target}` inside the store; what it points at is imported under its own path"),
            ))
        }
        EntryKind::SymlinkOutside { target } => {
            return Disposition::Quarantine(Reason::new(
                ReasonKind::SymlinkOutside,
                format!("a symlink to `{target}`, outside the store: not followed; copy the target into the store if it belongs to it"),
            ))
        }
        EntryKind::SymlinkBroken { target } => {
            return Disposition::Quarantine(Reason::new(ReasonKind::BrokenSymlink, format!("a symlink to `{target}`, which does not exist")))
        }
        EntryKind::Special(what) => {
            return Disposition::Quarantine(Reason::new(
                ReasonKind::SpecialFile,
                format!("{what}, not a regular file: never opened, so there is no copy"),
            ))
        }
        EntryKind::BadName => {
            return Disposition::Quarantine(Reason::new(
                ReasonKind::InvalidFileName,
                "the file name is not valid UTF-8 (shown with replacement characters); rename it",
            ))
        }
        EntryKind::File => {}
    }
    for (i, rule) in profile.rules.iter().enumerate() {
        if let Some(captures) = rule.glob.matches_split(&entry.rel, &segs) {
            return Disposition::Rule { rule: i, captures };
        }
    }
    Disposition::Unmapped
}

/// An error in parsing: either the file's fault (a reason) or the state directory's.
enum Fail {
    Reason(Reason),
    Io(ImportError),
}

impl From<Reason> for Fail {
    fn from(r: Reason) -> Self {
        Fail::Reason(r)
    }
}

fn parse_inner(
    ctx: &Ctx,
    rule: usize,
    captures: &Captures,
    file: &FileResult,
    bytes: &[u8],
    file_sha: &str,
    notes: &mut Notes,
) -> Result<(Vec<PlanRows>, u64), Fail> {
    let plan = &ctx.plan.rules[rule];
    if bytes.is_empty() {
        return Err(Reason::new(ReasonKind::EmptyFile, "the file is empty (0 bytes)").into());
    }
    let (body, bom) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let pos = e.valid_up_to();
            let (line, col) = line_col(body, pos);
            return Err(Reason::new(
                ReasonKind::InvalidUtf8,
                format!(
                    "invalid UTF-8 at byte offset {}: the file is not UTF-8 text",
                    pos + usize::from(bom) * 3
                ),
            )
            .at(line, col)
            .into());
        }
    };
    if bom {
        notes.add(NoteKind::BomStripped, || {
            "a UTF-8 byte-order mark was stripped; the stored document starts after it".into()
        });
    }
    if text.trim().is_empty() {
        return Err(Reason::new(
            ReasonKind::EmptyFile,
            if bom {
                "the file holds only a byte-order mark and whitespace"
            } else {
                "the file holds only whitespace"
            },
        )
        .into());
    }
    // The file's own hash is the document's hash when the document is the whole file.
    let whole_sha = (!bom).then_some(file_sha);
    // Only rules whose templates say `{mtime}` pay for formatting it.
    let mtime = file
        .entry
        .mtime_ns
        .filter(|_| ctx.plan.uses_mtime[rule])
        .and_then(|ns| {
            chrono::DateTime::<chrono::Utc>::from_timestamp(
                ns.div_euclid(1_000_000_000),
                ns.rem_euclid(1_000_000_000) as u32,
            )
            .map(crate::timestamp::format_utc)
        });
    let base = Vars {
        captures,
        path: &file.entry.rel,
        kind: &ctx.kinds[rule],
        format: plan.format.document_format(),
        record: 0,
        member: None,
        heading: None,
        body: None,
        mtime: mtime.as_deref(),
        size: file.entry.size,
        sha256: Some(file_sha),
    };
    let mut out = Collector::new(ctx, notes);
    let mut lines = Lines::new(text);
    match plan.format {
        Format::Json => {
            let value: Value = serde_json::from_str(text).map_err(|e| json_error(text, &e))?;
            match &plan.records {
                None => {
                    let stored = out.store(text, true, whole_sha)?;
                    out.row(rule, Some(&value), Vars { ..base.clone() }, &stored, 1)?;
                }
                Some(records) => {
                    let found = records.at.iter().find_map(|p| {
                        let v = if p.is_empty() {
                            Some(&value)
                        } else {
                            value.pointer(p)
                        };
                        match (v, records.each) {
                            (Some(v @ Value::Array(_)), Each::Element)
                            | (Some(v @ Value::Object(_)), Each::Member) => Some((p.as_str(), v)),
                            _ => None,
                        }
                    });
                    let Some((pointer, container)) = found else {
                        let want = if records.each == Each::Element {
                            "an array"
                        } else {
                            "an object"
                        };
                        return Err(Reason::new(
                            ReasonKind::UnexpectedShape,
                            format!(
                                "expected {want} of records at {} but found none",
                                records
                                    .at
                                    .iter()
                                    .map(|p| if p.is_empty() {
                                        "the top level".to_owned()
                                    } else {
                                        format!("`{p}`")
                                    })
                                    .collect::<Vec<_>>()
                                    .join(" or ")
                            ),
                        )
                        .into());
                    };
                    let raw = raw_at(text, pointer).map_err(|e| json_error(text, &e))?;
                    match (container, records.each) {
                        (Value::Array(items), _) => {
                            let raws: Vec<&RawValue> = serde_json::from_str(raw.get())
                                .map_err(|e| json_error(text, &e))?;
                            for (i, (item, raw)) in items.iter().zip(raws).enumerate() {
                                let stored = out.store(raw.get(), true, None)?;
                                let line = lines.line_of(raw.get());
                                out.row(
                                    rule,
                                    Some(item),
                                    Vars {
                                        record: i as u64,
                                        ..base.clone()
                                    },
                                    &stored,
                                    line,
                                )?;
                            }
                        }
                        (Value::Object(map), _) => {
                            let members = members(raw.get()).map_err(|e| json_error(text, &e))?;
                            for (i, (name, raw)) in members.iter().enumerate() {
                                let stored = out.store(raw.get(), true, None)?;
                                let line = lines.line_of(raw.get());
                                let item = map.get(name.as_str());
                                out.row(
                                    rule,
                                    item,
                                    Vars {
                                        record: i as u64,
                                        member: Some(name),
                                        ..base.clone()
                                    },
                                    &stored,
                                    line,
                                )?;
                            }
                        }
                        _ => {}
                    }
                    if out.records == 0 {
                        out.notes
                            .add(NoteKind::NoRecords, || "the file holds no records".into());
                    }
                    if let Some(container_plan) = ctx.plan.containers[rule] {
                        let stored = out.store(text, true, whole_sha)?;
                        out.row(
                            container_plan,
                            Some(&value),
                            Vars { ..base.clone() },
                            &stored,
                            1,
                        )?;
                    }
                }
            }
        }
        Format::JsonArray => {
            // Validate the whole document first, so a syntax error is reported as such
            // and not as a wrong shape.
            let root: &RawValue = serde_json::from_str(text).map_err(|e| json_error(text, &e))?;
            let first = root.get().trim_start().chars().next();
            if first != Some('[') {
                let found = match first {
                    Some('{') => "an object",
                    Some('"') => "a string",
                    _ => "a scalar",
                };
                let (line, col) = line_col(text.as_bytes(), text.len() - text.trim_start().len());
                return Err(Reason::new(
                    ReasonKind::UnexpectedShape,
                    format!("expected a JSON array of records at the top level, found {found}"),
                )
                .at(line, col)
                .into());
            }
            let raws: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|e| json_error(text, &e))?;
            for (i, raw) in raws.iter().enumerate() {
                let value: Value =
                    serde_json::from_str(raw.get()).map_err(|e| json_error(text, &e))?;
                let stored = out.store(raw.get(), true, None)?;
                let line = lines.line_of(raw.get());
                out.row(
                    rule,
                    Some(&value),
                    Vars {
                        record: i as u64,
                        ..base.clone()
                    },
                    &stored,
                    line,
                )?;
            }
            if raws.is_empty() {
                out.notes
                    .add(NoteKind::NoRecords, || "the array is empty".into());
            }
        }
        Format::Jsonl => {
            let mut record = 0u64;
            let mut blank = 0u64;
            for (n, line) in text.split('\n').enumerate() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.trim().is_empty() {
                    blank += 1;
                    continue;
                }
                let value: Value = serde_json::from_str(line).map_err(|e| {
                    let mut r = json_error(line, &e);
                    r.line = Some(n as u64 + 1);
                    r.message = format!("line {} of the JSON Lines file: {}", n + 1, r.message);
                    r
                })?;
                let stored = out.store(line, true, None)?;
                out.row(
                    rule,
                    Some(&value),
                    Vars {
                        record,
                        ..base.clone()
                    },
                    &stored,
                    n as u64 + 1,
                )?;
                record += 1;
            }
            // A final newline leaves one empty piece; that is not a blank line.
            let blank = blank.saturating_sub(u64::from(text.ends_with('\n')));
            if blank > 0 {
                out.notes.add(NoteKind::BlankLinesSkipped, || {
                    format!("{blank} blank line(s) skipped")
                });
            }
            if record == 0 {
                out.notes.add(NoteKind::NoRecords, || {
                    "the file holds no lines of JSON".into()
                });
            }
        }
        Format::Markdown => {
            let (front, body) = if plan.front_matter {
                split_front_matter(text)?
            } else {
                (None, text)
            };
            let heading = first_heading(body);
            let stored = out.store(text, false, whole_sha)?;
            let value = front.unwrap_or(Value::Null);
            out.row(
                rule,
                Some(&value),
                Vars {
                    heading,
                    body: Some(body),
                    ..base.clone()
                },
                &stored,
                1,
            )?;
        }
        Format::Text => {
            let stored = out.store(text, false, whole_sha)?;
            out.row(
                rule,
                None,
                Vars {
                    body: Some(text),
                    ..base.clone()
                },
                &stored,
                1,
            )?;
        }
    }
    Ok(out.finish())
}

/// Gathers rows, checks that keys are unique within the file, and stores originals.
struct Collector<'a> {
    ctx: &'a Ctx,
    notes: &'a mut Notes,
    rows: Vec<PlanRows>,
    seen: HashMap<(usize, String), (u64, u64)>,
    records: u64,
}

impl<'a> Collector<'a> {
    fn new(ctx: &'a Ctx, notes: &'a mut Notes) -> Self {
        Self {
            ctx,
            notes,
            rows: Vec::new(),
            seen: HashMap::new(),
            records: 0,
        }
    }

    fn store(&mut self, text: &str, json: bool, known_sha: Option<&str>) -> Result<Stored, Fail> {
        let sha = known_sha.map_or_else(
            || hex::encode(Sha256::digest(text.as_bytes())),
            str::to_owned,
        );
        let size = text.len() as u64;
        // PostgreSQL's jsonb cannot hold a U+0000 character, so such a document could not
        // follow its row into PostgreSQL; it is kept whole in the snapshot store instead.
        let holds_nul = json && json_has_nul_escape(text);
        if size > self.ctx.snapshot_threshold || holds_nul {
            let rel =
                fsops::snapshot(&self.ctx.state_dir, &sha, text.as_bytes()).map_err(Fail::Io)?;
            let threshold = self.ctx.snapshot_threshold;
            if holds_nul {
                self.notes.add(NoteKind::Snapshot, || format!("the document holds a \\u0000 character, which PostgreSQL jsonb cannot store: stored at {rel}"));
            } else {
                self.notes.add(NoteKind::Snapshot, || format!("a {size}-byte document is over the {threshold}-byte snapshot threshold: stored at {rel}"));
            }
            Ok(Stored {
                inline: None,
                json,
                sha256: sha,
                size,
                snapshot: Some(rel),
            })
        } else {
            Ok(Stored {
                inline: Some(text.to_owned()),
                json,
                sha256: sha,
                size,
                snapshot: None,
            })
        }
    }

    fn row(
        &mut self,
        plan: usize,
        value: Option<&Value>,
        vars: Vars<'_>,
        stored: &Stored,
        line: u64,
    ) -> Result<(), Fail> {
        let record = vars.record;
        let input = Input {
            value,
            vars,
            stored,
            naive_offset: self.ctx.naive_offset,
        };
        let row = map_record(&self.ctx.plan.rules[plan], &input, self.notes).map_err(|mut r| {
            if r.line.is_none() {
                r.line = Some(line);
            }
            Fail::Reason(r)
        })?;
        if let Some((other, other_line)) = self.seen.insert((plan, row.key.clone()), (record, line))
        {
            let table = &self.ctx.plan.tables[self.ctx.plan.rules[plan].table].name;
            return Err(Reason {
                kind: ReasonKind::DuplicateKey,
                message: format!(
                    "records {other} (line {other_line}) and {record} (line {line}) have the same key {} in table {table}",
                    row.key
                ),
                line: Some(line),
                column: None,
            }
            .into());
        }
        match self.rows.iter_mut().find(|p| p.plan == plan) {
            Some(p) => p.rows.push(row),
            None => self.rows.push(PlanRows {
                plan,
                rows: vec![row],
            }),
        }
        self.records += 1;
        Ok(())
    }

    fn finish(self) -> (Vec<PlanRows>, u64) {
        (self.rows, self.records)
    }
}

/// Line and column (1-based, bytes) of a byte offset.
fn line_col(bytes: &[u8], pos: usize) -> (u64, u64) {
    let before = &bytes[..pos.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
    (line, col)
}

/// Line numbers of successive slices of one text, counted incrementally (records come in
/// file order; counting from the start for each would be quadratic in a large array).
struct Lines<'a> {
    text: &'a str,
    offset: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            offset: 0,
            line: 1,
        }
    }

    fn line_of(&mut self, slice: &str) -> u64 {
        let at = (slice.as_ptr() as usize)
            .saturating_sub(self.text.as_ptr() as usize)
            .min(self.text.len());
        if at < self.offset {
            return line_of(self.text, slice);
        }
        self.line += self.text.as_bytes()[self.offset..at]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.offset = at;
        self.line
    }
}

/// The line a slice of `text` starts on.
fn line_of(text: &str, slice: &str) -> u64 {
    let offset = (slice.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    line_col(text.as_bytes(), offset).0
}

fn json_error(text: &str, e: &serde_json::Error) -> Reason {
    use serde_json::error::Category;
    let full = e.to_string();
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m)
        .to_owned();
    let (line, column) = (e.line() as u64, e.column() as u64);
    match e.classify() {
        Category::Eof => Reason::new(
            ReasonKind::TruncatedJson,
            format!("the JSON ends before it is complete ({message}); the file looks truncated"),
        )
        .at(line, column),
        _ => {
            let trimmed = text.trim_start();
            let first = trimmed.chars().next();
            if first
                .is_some_and(|c| !matches!(c, '{' | '[' | '"' | '-' | '0'..='9' | 't' | 'f' | 'n'))
            {
                let start: String = trimmed
                    .chars()
                    .take(24)
                    .collect::<String>()
                    .replace('\n', "\\n");
                let (l, c) = line_col(text.as_bytes(), text.len() - trimmed.len());
                Reason::new(
                    ReasonKind::NotJson,
                    format!("the content is not JSON: it starts with `{start}`"),
                )
                .at(l, c)
            } else {
                Reason::new(ReasonKind::InvalidJson, format!("invalid JSON: {message}"))
                    .at(line, column)
            }
        }
    }
}

/// The raw text of the value at a JSON pointer (the document is known to be valid).
fn raw_at<'a>(text: &'a str, pointer: &str) -> Result<&'a RawValue, serde_json::Error> {
    let mut cur: &'a RawValue = serde_json::from_str(text)?;
    if pointer.is_empty() {
        return Ok(cur);
    }
    for token in pointer[1..].split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        let s = cur.get().trim_start();
        cur = if s.starts_with('[') {
            let items: Vec<&'a RawValue> = serde_json::from_str(cur.get())?;
            match token
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).copied())
            {
                Some(v) => v,
                None => return Err(serde::de::Error::custom(format!("no element `{token}`"))),
            }
        } else {
            let members = members(cur.get())?;
            match members.into_iter().rev().find(|(k, _)| *k == token) {
                Some((_, v)) => v,
                None => return Err(serde::de::Error::custom(format!("no member `{token}`"))),
            }
        };
    }
    Ok(cur)
}

/// The members of a JSON object in file order, each with its raw value.
fn members(text: &str) -> Result<Vec<(String, &RawValue)>, serde_json::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let out = (&mut de).deserialize_map(V)?;
    de.end()?;
    Ok(out)
}

/// Splits YAML front matter (`---` … `---` or `...`) from the body.
fn split_front_matter(text: &str) -> Result<(Option<Value>, &str), Reason> {
    let mut lines = text.split_inclusive('\n');
    let Some(first) = lines.next() else {
        return Ok((None, text));
    };
    if first.trim_end_matches(['\r', '\n']) != "---" {
        return Ok((None, text));
    }
    let mut offset = first.len();
    let yaml_start = offset;
    for line in lines {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare == "---" || bare == "..." {
            let yaml = &text[yaml_start..offset];
            let body = &text[offset + line.len()..];
            return Ok((Some(parse_yaml(yaml)?), body));
        }
        offset += line.len();
    }
    Err(Reason::new(
        ReasonKind::InvalidFrontMatter,
        "the front matter opened on line 1 is never closed by a `---` line",
    )
    .at(1, 1))
}

fn parse_yaml(yaml: &str) -> Result<Value, Reason> {
    use yaml_rust2::YamlLoader;
    let docs = YamlLoader::load_from_str(yaml).map_err(|e| {
        let m = e.marker();
        // The YAML starts on line 2 of the file, after the opening `---`.
        Reason::new(
            ReasonKind::InvalidFrontMatter,
            format!("the YAML front matter does not parse: {}", e.info()),
        )
        .at(m.line() as u64 + 1, m.col() as u64 + 1)
    })?;
    let value = docs.first().map_or(Value::Null, yaml_to_json);
    match value {
        Value::Object(_) | Value::Null => Ok(value),
        _ => Err(Reason::new(
            ReasonKind::InvalidFrontMatter,
            "the front matter is not a mapping of keys to values",
        )
        .at(2, 1)),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    {
        match y {
            Yaml::Real(s) => s
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::String(s.clone()), Value::Number),
            Yaml::Integer(i) => Value::from(*i),
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
            Yaml::Hash(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Yaml::String(s) | Yaml::Real(s) => s.clone(),
                            Yaml::Integer(i) => i.to_string(),
                            Yaml::Boolean(b) => b.to_string(),
                            Yaml::Null => "null".to_owned(),
                            other => format!("{other:?}"),
                        };
                        (key, yaml_to_json(v))
                    })
                    .collect(),
            ),
            Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
        }
    }
}

fn first_heading(body: &str) -> Option<&str> {
    body.lines().find_map(|l| {
        let t = l.trim_start_matches('#');
        (t.len() < l.len() && l.len() - t.len() <= 6 && t.starts_with(' ')).then(|| t.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_keep_their_bytes() {
        let text =
            "{\n  \"tasks\": [ {\"a\": 1.50, \"b\": \"\\u00e9\"} ,\n {\"a\":2} ],\n \"x\": 1 }";
        let raw = raw_at(text, "/tasks").unwrap();
        let items: Vec<&RawValue> = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(items[0].get(), "{\"a\": 1.50, \"b\": \"\\u00e9\"}");
        assert_eq!(line_of(text, items[1].get()), 3);
        let mut lines = Lines::new(text);
        assert_eq!(
            (lines.line_of(items[0].get()), lines.line_of(items[1].get())),
            (2, 3)
        );
        let m = members("{\"b\": [1], \"a\": {\"c\": null}}").unwrap();
        assert_eq!(
            m.iter()
                .map(|(k, v)| (k.as_str(), v.get()))
                .collect::<Vec<_>>(),
            vec![("b", "[1]"), ("a", "{\"c\": null}")]
        );
    }

    #[test]
    fn json_errors_are_classified() {
        let e = serde_json::from_str::<Value>("{\n \"a\": [1,").unwrap_err();
        let r = json_error("{\n \"a\": [1,", &e);
        assert_eq!((r.kind, r.line), (ReasonKind::TruncatedJson, Some(2)));
        let text = "\n  <html>";
        let e = serde_json::from_str::<Value>(text).unwrap_err();
        let r = json_error(text, &e);
        assert_eq!(
            (r.kind, r.line, r.column),
            (ReasonKind::NotJson, Some(2), Some(3))
        );
        let e = serde_json::from_str::<Value>("{\"a\": 1,}").unwrap_err();
        assert_eq!(json_error("{\"a\": 1,}", &e).kind, ReasonKind::InvalidJson);
    }

    #[test]
    fn front_matter() {
        let (fm, body) = split_front_matter(
            "---\r\ncreated: 2025-09-13T04:03:23Z\nversion: 1.1\ntags: [a, b]\n---\r\n# Title\nx",
        )
        .unwrap();
        assert_eq!(
            fm.unwrap(),
            serde_json::json!({"created": "2025-09-13T04:03:23Z", "version": 1.1, "tags": ["a", "b"]})
        );
        assert_eq!(body, "# Title\nx");
        assert_eq!(first_heading(body), Some("Title"));
        let (fm, body) = split_front_matter("# No front matter\n").unwrap();
        assert!(fm.is_none() && body.starts_with("# No"));
        let r = split_front_matter("---\ntitle: x\n").unwrap_err();
        assert_eq!(r.kind, ReasonKind::InvalidFrontMatter);
        let r = split_front_matter("---\ntitle: [unclosed\nother: 1\n---\nbody").unwrap_err();
        assert_eq!(r.kind, ReasonKind::InvalidFrontMatter);
        assert!(r.line.is_some_and(|l| l >= 2), "{r:?}");
    }
}

/// Whether JSON text contains the escape `\u0000` (a NUL character), as opposed to an escaped
/// backslash followed by the letters `u0000`.
pub(crate) fn json_has_nul_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find("\\u0000") {
        let at = from + pos;
        let backslashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return true;
        }
        from = at + 1;
    }
    false
}

#[cfg(test)]
mod nul_tests {
    use super::json_has_nul_escape;

    #[test]
    fn finds_only_real_nul_escapes() {
        assert!(json_has_nul_escape(r#"{"a": "x\u0000y"}"#));
        assert!(json_has_nul_escape(r#"{"a": "\\\u0000"}"#));
        assert!(!json_has_nul_escape(r#"{"a": "\\u0000"}"#));
        assert!(!json_has_nul_escape(r#"{"a": "u0000"}"#));
    }
}
