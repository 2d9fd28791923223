//! One file, start to finish, on a parser thread: read, hash, strip a byte-order mark, check
//! UTF-8, parse by format, split into records, map each record to a row, and put large
//! originals in the snapshot store. A file that cannot be imported comes back quarantined
//! with a reason; only a failure of the state directory is an error.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ImportError;
use crate::front_matter;
use crate::fsops;
use crate::glob::Captures;
use crate::json;
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
                format!("the path is not valid UTF-8; the ledger records it as `{}`, each byte that is not UTF-8 written as \\xHH; rename it", entry.rel),
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
    let (text, bom) = decode(bytes, notes)?;
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
    let mut read = Reader {
        out: Collector::new(ctx, notes),
        rule,
        text,
        whole_sha,
        lines: Lines::new(text),
        base: Vars {
            captures,
            path: &file.entry.rel,
            kind: &ctx.kinds[rule],
            format: ctx.plan.rules[rule].format.document_format(),
            record: 0,
            member: None,
            heading: None,
            body: None,
            mtime: mtime.as_deref(),
            size: file.entry.size,
            sha256: Some(file_sha),
        },
    };
    match ctx.plan.rules[rule].format {
        Format::Json => read.json()?,
        Format::JsonArray => read.json_array()?,
        Format::Jsonl => read.jsonl()?,
        Format::Markdown => read.markdown()?,
        Format::Text => read.text()?,
    }
    Ok(read.out.finish())
}

/// The file's bytes as text: not empty, UTF-8 (after a byte-order mark, which is noted),
/// and not only whitespace. Returns the text and whether a byte-order mark was stripped.
fn decode<'b>(bytes: &'b [u8], notes: &mut Notes) -> Result<(&'b str, bool), Fail> {
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
    Ok((text, bom))
}

/// One file's text on its way to rows, by format: each method splits the text into records
/// and hands each to the collector with its variables, line and original.
struct Reader<'a, 'n> {
    out: Collector<'a, 'n>,
    rule: usize,
    text: &'a str,
    /// The file's hash, when the document stored is the whole file.
    whole_sha: Option<&'a str>,
    lines: Lines<'a>,
    base: Vars<'a>,
}

impl<'a> Reader<'a, '_> {
    fn plan(&self) -> &'a crate::plan::RulePlan {
        &self.out.ctx.plan.rules[self.rule]
    }

    /// Parses JSON text, noting every key an object holds twice.
    fn value(&mut self, text: &str) -> Result<Value, serde_json::Error> {
        let (value, duplicates) = json::value_with_duplicates(text)?;
        if !duplicates.is_empty() {
            let line = self.lines.line_of(text);
            self.out.notes.add(NoteKind::DuplicateJsonKey, || {
                format!(
                    "key `{}` is written twice in one object (in the JSON starting on line {line}): the columns map the last value, the stored document keeps both",
                    duplicates.join("`, `")
                )
            });
        }
        Ok(value)
    }

    /// `json`: the whole file is one record, or `records` points at an array or object of
    /// records (and `keep_document` adds the whole file as a container row).
    fn json(&mut self) -> Result<(), Fail> {
        let text = self.text;
        let value = self.value(text).map_err(|e| json::json_error(text, &e))?;
        let Some(records) = &self.plan().records else {
            let stored = self.out.store(text, true, self.whole_sha)?;
            return self
                .out
                .row(self.rule, Some(&value), self.base.clone(), &stored, 1);
        };
        let (pointer, container) = find_records(&value, records)?;
        let raw = json::raw_at(text, pointer).map_err(|e| json::json_error(text, &e))?;
        match container {
            Value::Array(items) => self.elements(items, raw)?,
            Value::Object(map) => self.members(map, raw)?,
            _ => {}
        }
        if self.out.records == 0 {
            self.out
                .notes
                .add(NoteKind::NoRecords, || "the file holds no records".into());
        }
        if let Some(container_plan) = self.out.ctx.plan.containers[self.rule] {
            let stored = self.out.store(text, true, self.whole_sha)?;
            self.out
                .row(container_plan, Some(&value), self.base.clone(), &stored, 1)?;
        }
        Ok(())
    }

    /// The elements of a records array, each stored as its own raw text.
    fn elements(&mut self, items: &[Value], raw: &RawValue) -> Result<(), Fail> {
        let raws: Vec<&RawValue> =
            serde_json::from_str(raw.get()).map_err(|e| json::json_error(self.text, &e))?;
        for (i, (item, raw)) in items.iter().zip(raws).enumerate() {
            let stored = self.out.store(raw.get(), true, None)?;
            let line = self.lines.line_of(raw.get());
            let vars = Vars {
                record: i as u64,
                ..self.base.clone()
            };
            self.out.row(self.rule, Some(item), vars, &stored, line)?;
        }
        Ok(())
    }

    /// The members of a records object, in file order, each stored as its own raw text.
    fn members(
        &mut self,
        map: &serde_json::Map<String, Value>,
        raw: &RawValue,
    ) -> Result<(), Fail> {
        let members = json::members(raw.get()).map_err(|e| json::json_error(self.text, &e))?;
        for (i, (name, raw)) in members.iter().enumerate() {
            let stored = self.out.store(raw.get(), true, None)?;
            let line = self.lines.line_of(raw.get());
            let vars = Vars {
                record: i as u64,
                member: Some(name),
                ..self.base.clone()
            };
            self.out
                .row(self.rule, map.get(name.as_str()), vars, &stored, line)?;
        }
        Ok(())
    }

    /// `json_array`: a top-level array whose elements are the records.
    fn json_array(&mut self) -> Result<(), Fail> {
        let text = self.text;
        // Validate the whole document first, so a syntax error is reported as such and not
        // as a wrong shape.
        let root: &RawValue = serde_json::from_str(text).map_err(|e| json::json_error(text, &e))?;
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
            serde_json::from_str(text).map_err(|e| json::json_error(text, &e))?;
        for (i, raw) in raws.iter().enumerate() {
            let value = self
                .value(raw.get())
                .map_err(|e| json::json_error(text, &e))?;
            let stored = self.out.store(raw.get(), true, None)?;
            let line = self.lines.line_of(raw.get());
            let vars = Vars {
                record: i as u64,
                ..self.base.clone()
            };
            self.out.row(self.rule, Some(&value), vars, &stored, line)?;
        }
        if raws.is_empty() {
            self.out
                .notes
                .add(NoteKind::NoRecords, || "the array is empty".into());
        }
        Ok(())
    }

    /// `jsonl`: one record per non-blank line.
    fn jsonl(&mut self) -> Result<(), Fail> {
        let text = self.text;
        let mut record = 0u64;
        let mut blank = 0u64;
        for (n, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                blank += 1;
                continue;
            }
            let value = self.value(line).map_err(|e| {
                // Reported against the line, not the file.
                let mut r = json::json_error(line, &e);
                r.line = Some(n as u64 + 1);
                r.message = format!("line {} of the JSON Lines file: {}", n + 1, r.message);
                r
            })?;
            let stored = self.out.store(line, true, None)?;
            let vars = Vars {
                record,
                ..self.base.clone()
            };
            self.out
                .row(self.rule, Some(&value), vars, &stored, n as u64 + 1)?;
            record += 1;
        }
        // A final newline leaves one empty piece; that is not a blank line.
        let blank = blank.saturating_sub(u64::from(text.ends_with('\n')));
        if blank > 0 {
            self.out.notes.add(NoteKind::BlankLinesSkipped, || {
                format!("{blank} blank line(s) skipped")
            });
        }
        if record == 0 {
            self.out.notes.add(NoteKind::NoRecords, || {
                "the file holds no lines of JSON".into()
            });
        }
        Ok(())
    }

    /// `markdown`: one record, its front matter as the mapped value.
    fn markdown(&mut self) -> Result<(), Fail> {
        let text = self.text;
        let (front, body) = if self.plan().front_matter {
            front_matter::split_front_matter(text)?
        } else {
            (None, text)
        };
        let stored = self.out.store(text, false, self.whole_sha)?;
        let value = front.unwrap_or(Value::Null);
        let vars = Vars {
            heading: front_matter::first_heading(body),
            body: Some(body),
            ..self.base.clone()
        };
        self.out.row(self.rule, Some(&value), vars, &stored, 1)
    }

    /// `text`: one record, the text itself.
    fn text(&mut self) -> Result<(), Fail> {
        let text = self.text;
        let stored = self.out.store(text, false, self.whole_sha)?;
        let vars = Vars {
            body: Some(text),
            ..self.base.clone()
        };
        self.out.row(self.rule, None, vars, &stored, 1)
    }
}

/// The container of records a `records.at` pointer finds first: an array for `each =
/// "element"`, an object for `each = "member"`.
pub(crate) fn find_records<'v>(
    value: &'v Value,
    records: &'v crate::profile::Records,
) -> Result<(&'v str, &'v Value), Reason> {
    let found = records.at.iter().find_map(|p| {
        let v = if p.is_empty() {
            Some(value)
        } else {
            value.pointer(p)
        };
        match (v, records.each) {
            (Some(v @ Value::Array(_)), Each::Element)
            | (Some(v @ Value::Object(_)), Each::Member) => Some((p.as_str(), v)),
            _ => None,
        }
    });
    found.ok_or_else(|| {
        let want = if records.each == Each::Element {
            "an array"
        } else {
            "an object"
        };
        let places: Vec<String> = records
            .at
            .iter()
            .map(|p| {
                if p.is_empty() {
                    "the top level".to_owned()
                } else {
                    format!("`{p}`")
                }
            })
            .collect();
        Reason::new(
            ReasonKind::UnexpectedShape,
            format!(
                "expected {want} of records at {} but found none",
                places.join(" or ")
            ),
        )
    })
}

/// Gathers rows, checks that keys are unique within the file, and stores originals.
struct Collector<'a, 'n> {
    ctx: &'a Ctx,
    notes: &'n mut Notes,
    rows: Vec<PlanRows>,
    seen: HashMap<(usize, String), (u64, u64)>,
    records: u64,
}

impl<'a, 'n> Collector<'a, 'n> {
    fn new(ctx: &'a Ctx, notes: &'n mut Notes) -> Self {
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
        let holds_nul = json && crate::json::json_has_nul_escape(text);
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
pub(crate) fn line_col(bytes: &[u8], pos: usize) -> (u64, u64) {
    let before = &bytes[..pos.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
    (line, col)
}

/// Line numbers of successive slices of one text, counted incrementally (records come in
/// file order; counting from the start for each would be quadratic in a large array).
pub(crate) struct Lines<'a> {
    text: &'a str,
    offset: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            offset: 0,
            line: 1,
        }
    }

    pub(crate) fn line_of(&mut self, slice: &str) -> u64 {
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
pub(crate) fn line_of(text: &str, slice: &str) -> u64 {
    let offset = (slice.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    line_col(text.as_bytes(), offset).0
}
