//! The inverse of the import: rows back into files of the store, in the profile's layout.
//!
//! The caller says, for each path of the store that must change, which rows name that path
//! now (table, key, record number, document text); no rows means the file goes away. The
//! profile's rule for the path says how those rows make a file: a file of one record is its
//! document; a file of several (a JSON array or an object keyed by member, at the rule's
//! `records` pointer; a JSON array file; JSON Lines) is rewritten whole from the file as it
//! is, every record that did not change kept byte for byte, with the separators the file
//! already uses. A row that cannot be rendered (no document, a path no rule maps to its
//! table, two rows claiming one record slot, a member name the rule cannot give) is a
//! [`Reject`] with its table, key and reason, never skipped in silence; its file is left as
//! it is.
//!
//! [`plan`] changes nothing. [`apply`] writes one file: the version it replaces is copied
//! into the displaced folder first (never deleted), the new bytes go to a temporary sibling
//! that is fsynced and renamed over the file, and the directory is fsynced. It is idempotent:
//! a file that already holds the planned bytes (or is already gone) is left alone, and a
//! displaced copy is written once. [`verify`] reads a written file back, splits it into
//! records the way the import does, and compares every record with the row it came from.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::json;
use crate::parse::find_records;
use crate::profile::{Each, Format, Profile, Rule};

/// One row that names a path, with its document as text (`doc`, `source_text`, or the
/// snapshot it points at).
#[derive(Debug, Clone, Serialize)]
pub struct RowDoc {
    pub table: String,
    /// The row's key, as text.
    pub key: String,
    /// `source_record`: its place among the records of the file.
    pub record: i64,
    /// The document; `None` when the row keeps none.
    #[serde(skip)]
    pub text: Option<String>,
}

/// Every row that names `path` now. Empty: the file is removed.
#[derive(Debug, Clone, Default)]
pub struct PathRows {
    pub path: String,
    pub rows: Vec<RowDoc>,
}

/// What happens to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// An existing file gets new content.
    Write,
    /// A file that does not exist is created.
    Create,
    /// A file is removed (moved to the displaced folder).
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Write => "write",
            Action::Create => "create",
            Action::Remove => "remove",
        }
    }
}

/// One record a written file must hold, for [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Expected {
    pub table: String,
    pub key: String,
    /// The member name, for records that are members of an object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    pub sha256: String,
    #[serde(skip)]
    pub text: String,
}

/// One file of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct FilePlan {
    pub path: String,
    pub action: Action,
    /// The rule's kind and table.
    pub kind: String,
    pub table: String,
    /// SHA-256 of the bytes written (`None` for a removal).
    pub sha256: Option<String>,
    pub bytes_len: u64,
    /// SHA-256 of the file as it was when planned (`None` when absent).
    pub before_sha256: Option<String>,
    pub records: usize,
    /// The file already is as planned (an earlier run that was interrupted wrote it):
    /// nothing to do but verify it.
    pub done: bool,
    #[serde(skip)]
    pub bytes: Option<Vec<u8>>,
    #[serde(skip)]
    pub expected: Vec<Expected>,
    /// The whole-file document a `keep_document` rule keeps beside the records, when the
    /// database has one: the file must hold the same JSON.
    #[serde(skip)]
    pub container: Option<String>,
}

/// A row that could not be rendered into its file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reject {
    pub table: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub reason: String,
}

/// What an export would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportPlan {
    pub files: Vec<FilePlan>,
    pub rejects: Vec<Reject>,
}

impl ExportPlan {
    /// Files the action still has to be carried out on.
    pub fn count(&self, action: Action) -> usize {
        self.files
            .iter()
            .filter(|f| f.action == action && !f.done)
            .count()
    }
}

/// The rule the import would apply to `path`, when it is not excluded.
fn rule_for<'p>(profile: &'p Profile, path: &str) -> Option<&'p Rule> {
    let segs: Vec<&str> = path.split('/').collect();
    if profile
        .exclude
        .iter()
        .any(|p| p.matches_split(path, &segs).is_some())
    {
        return None;
    }
    profile
        .rules
        .iter()
        .find(|r| r.glob.matches_split(path, &segs).is_some())
}

/// Whether a rule's file holds several records.
fn multi(rule: &Rule) -> bool {
    rule.records.is_some() || matches!(rule.format, Format::JsonArray | Format::Jsonl)
}

/// Plans the export of `paths` into `store_dir`. Reads files; changes nothing.
pub fn plan(profile: &Profile, store_dir: &Path, paths: Vec<PathRows>) -> ExportPlan {
    let mut out = ExportPlan::default();
    for pr in paths {
        match plan_path(profile, store_dir, &pr) {
            Ok(file) => out.files.push(file),
            Err(rejects) => out.rejects.extend(rejects),
        }
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn reject_all(rows: &[RowDoc], path: &str, reason: &str) -> Vec<Reject> {
    rows.iter()
        .map(|r| Reject {
            table: r.table.clone(),
            key: r.key.clone(),
            path: Some(path.to_owned()),
            reason: reason.to_owned(),
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn plan_path(profile: &Profile, store_dir: &Path, pr: &PathRows) -> Result<FilePlan, Vec<Reject>> {
    let path = pr.path.as_str();
    let abs = store_dir.join(path);
    let current = match std::fs::read(&abs) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(reject_all(
                &pr.rows,
                path,
                &format!("{} cannot be read: {e}", abs.display()),
            ))
        }
    };
    let Some(rule) = rule_for(profile, path) else {
        return Err(reject_all(
            &pr.rows,
            path,
            "the path matches no rule of the import profile (or an exclude pattern)",
        ));
    };
    let mut file = FilePlan {
        path: path.to_owned(),
        action: Action::Remove,
        kind: rule.kind.clone(),
        table: rule.table.clone(),
        sha256: None,
        bytes_len: 0,
        before_sha256: current.as_deref().map(sha),
        records: 0,
        done: false,
        bytes: None,
        expected: Vec::new(),
        container: None,
    };
    if pr.rows.is_empty() {
        file.done = current.is_none();
        return Ok(file);
    }
    let mut rejects = Vec::new();
    let mut records = Vec::new();
    for r in &pr.rows {
        if r.table == rule.table {
            records.push(r);
        } else if multi(rule) && rule.keep_document && r.table == crate::plan::DOCUMENTS_TABLE {
            file.container = r.text.clone();
        } else {
            rejects.push(Reject {
                table: r.table.clone(),
                key: r.key.clone(),
                path: Some(path.to_owned()),
                reason: format!(
                    "the profile maps this path to table {} (rule `{}`), not to {}",
                    rule.table, rule.kind, r.table
                ),
            });
        }
    }
    for r in &records {
        if r.text.is_none() {
            rejects.push(Reject {
                table: r.table.clone(),
                key: r.key.clone(),
                path: Some(path.to_owned()),
                reason:
                    "the row keeps no document (doc, source_text and doc_snapshot are all empty)"
                        .into(),
            });
        }
    }
    if !rejects.is_empty() {
        // The other rows of the file cannot be written without these: the file is left.
        let mut all = reject_all(
            &records.iter().copied().cloned().collect::<Vec<_>>(),
            path,
            "another row of the same file cannot be rendered, so the file is left as it is",
        );
        all.retain(|a| !rejects.iter().any(|r| r.table == a.table && r.key == a.key));
        rejects.extend(all);
        return Err(rejects);
    }
    records.sort_by_key(|r| r.record);
    for w in records.windows(2) {
        if w[0].record == w[1].record {
            return Err(reject_all(
                &records.iter().copied().cloned().collect::<Vec<_>>(),
                path,
                &format!(
                    "rows {} and {} both claim record {} of the file",
                    w[0].key, w[1].key, w[0].record
                ),
            ));
        }
    }
    if records.is_empty() {
        // Only a container row: the file holds no records now.
        if let Some(text) = file.container.clone() {
            records_bytes(&mut file, text.into_bytes(), Vec::new());
            return Ok(differs(file, current.as_deref()));
        }
        file.done = current.is_none();
        return Ok(file);
    }
    let text = |r: &RowDoc| r.text.clone().unwrap_or_default();
    if !multi(rule) {
        if records.len() > 1 {
            return Err(reject_all(
                &records.iter().copied().cloned().collect::<Vec<_>>(),
                path,
                &format!(
                    "{} rows claim the file, whose rule `{}` reads one record from it",
                    records.len(),
                    rule.kind
                ),
            ));
        }
        let r = records[0];
        let t = text(r);
        let expected = vec![Expected {
            table: r.table.clone(),
            key: r.key.clone(),
            member: None,
            sha256: sha(t.as_bytes()),
            text: t.clone(),
        }];
        records_bytes(&mut file, t.into_bytes(), expected);
        return Ok(differs(file, current.as_deref()));
    }
    let on_disk = current
        .as_deref()
        .and_then(|b| std::str::from_utf8(b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)).ok());
    let member_names = rule
        .records
        .as_ref()
        .is_some_and(|r| r.each == Each::Member);
    let items: Vec<(Option<String>, String)> = records
        .iter()
        .map(|r| (member_names.then(|| r.key.clone()), text(r)))
        .collect();
    // The file as it is, unless the database keeps the whole file (`keep_document`) and
    // the file as it is does not hold what that document says around the records (a file
    // the import quarantined, or one the data API started anew): then the database's
    // whole-file document is the base.
    let from_disk = on_disk.map(|b| render_multi(rule, Some(b), &items));
    let rendered = match (&file.container, from_disk) {
        (_, Some(Ok(t))) if file.container.as_deref().is_none_or(|c| same_json(c, &t)) => Ok(t),
        (Some(c), _) => render_multi(rule, Some(c), &items),
        (None, Some(Err(why))) => Err(why),
        (None, None) | (None, Some(Ok(_))) => render_multi(rule, None, &items),
    };
    let rendered = match rendered {
        Ok(t) => t,
        Err(why) => {
            return Err(reject_all(
                &records.iter().copied().cloned().collect::<Vec<_>>(),
                path,
                &why,
            ))
        }
    };
    let expected = records
        .iter()
        .zip(items)
        .map(|(r, (member, t))| Expected {
            table: r.table.clone(),
            key: r.key.clone(),
            member,
            sha256: sha(t.as_bytes()),
            text: t,
        })
        .collect();
    records_bytes(&mut file, rendered.into_bytes(), expected);
    Ok(differs(file, current.as_deref()))
}

fn records_bytes(file: &mut FilePlan, bytes: Vec<u8>, expected: Vec<Expected>) {
    file.sha256 = Some(sha(&bytes));
    file.bytes_len = bytes.len() as u64;
    file.records = expected.len();
    file.bytes = Some(bytes);
    file.expected = expected;
}

/// Write or create, and whether the file already holds the planned bytes.
fn differs(mut file: FilePlan, current: Option<&[u8]>) -> FilePlan {
    file.action = if current.is_some() {
        Action::Write
    } else {
        Action::Create
    };
    file.done = current.is_some() && current == file.bytes.as_deref();
    file
}

/// The byte ranges of a file's records, as the import splits them, with each member name.
struct Split {
    /// Where the records sit: the range of the array or object (`[`…`]`, `{`…`}`), or the
    /// whole text for JSON Lines.
    container: std::ops::Range<usize>,
    items: Vec<(Option<String>, std::ops::Range<usize>)>,
}

fn span(text: &str, raw: &RawValue) -> std::ops::Range<usize> {
    let s = raw.get();
    let start = s.as_ptr() as usize - text.as_ptr() as usize;
    start..start + s.len()
}

/// Splits `text` into records the way the import reads a file of `rule`.
fn split(rule: &Rule, text: &str) -> Result<Split, String> {
    match (rule.format, &rule.records) {
        (Format::Jsonl, _) => {
            let mut items = Vec::new();
            let mut at = 0;
            for line in text.split('\n') {
                let body = line.strip_suffix('\r').unwrap_or(line);
                if !body.trim().is_empty() {
                    items.push((None, at..at + body.len()));
                }
                at += line.len() + 1;
            }
            Ok(Split {
                container: 0..text.len(),
                items,
            })
        }
        (Format::JsonArray, _) => {
            let root: &RawValue = serde_json::from_str(text).map_err(|e| e.to_string())?;
            elements(text, root)
        }
        (Format::Json, Some(records)) => {
            let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let (pointer, _) = find_records(&value, records).map_err(|r| r.message)?;
            let raw = json::raw_at(text, pointer).map_err(|e| e.to_string())?;
            match records.each {
                Each::Element => elements(text, raw),
                Each::Member => {
                    let ms = json::members(raw.get()).map_err(|e| e.to_string())?;
                    // A member runs from its key's opening quote (after the `{` or the `,`
                    // and whitespace) to the end of its value.
                    let container = span(text, raw);
                    let mut prev = container.start + 1;
                    let mut items = Vec::new();
                    for (k, v) in ms {
                        let value = span(text, v);
                        let gap = &text[prev..value.start];
                        let skip = gap.len()
                            - gap
                                .trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',')
                                .len();
                        items.push((Some(k), prev + skip..value.end));
                        prev = value.end;
                    }
                    Ok(Split { container, items })
                }
            }
        }
        _ => Err(format!("rule `{}` reads one record per file", rule.kind)),
    }
}

/// Whether two texts are the same JSON value.
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// A member's text (`"key": value`) as its key's text and its value's text.
fn member_parts(t: &str) -> Option<(&str, &str)> {
    let key = serde_json::Deserializer::from_str(t)
        .into_iter::<&RawValue>()
        .next()?
        .ok()?;
    let key_len = key.get().len();
    let after = &t[key_len..];
    let n = after.find(':')?;
    Some((&t[..key_len], after[n + 1..].trim_start()))
}

fn elements(text: &str, raw: &RawValue) -> Result<Split, String> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    Ok(Split {
        container: span(text, raw),
        items: items.into_iter().map(|r| (None, span(text, r))).collect(),
    })
}

/// The text of a file of several records holding `items` (member name, record text), built
/// from `base` (the file as it is, or the whole-file document the database keeps): what
/// surrounds the records and the separators between them are kept.
fn render_multi(
    rule: &Rule,
    base: Option<&str>,
    items: &[(Option<String>, String)],
) -> Result<String, String> {
    let member_text = |m: &Option<String>, t: &str, colon: &str| match m {
        Some(name) => format!("{}{colon}{t}", Value::String(name.clone())),
        None => t.to_owned(),
    };
    if rule.format == Format::Jsonl {
        let base = base.unwrap_or("");
        let crlf = base.contains("\r\n");
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut out = items
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(nl);
        if base.is_empty() || base.ends_with('\n') {
            out.push_str(nl);
        }
        return Ok(out);
    }
    let split_base = base.map(|b| (b, split(rule, b)));
    let (b, s) = match split_base {
        Some((b, Ok(s))) => (b.to_owned(), s),
        Some((_, Err(why))) => {
            return Err(format!(
                "the file as it is cannot be read as the rule's records ({why}), so the records cannot be put back into it"
            ))
        }
        None => {
            let is_member = rule.records.as_ref().is_some_and(|r| r.each == Each::Member);
            let skeleton = if is_member { "{\n}\n" } else { "[\n]\n" };
            let s = split(rule, skeleton)?;
            (skeleton.to_owned(), s)
        }
    };
    let c = s.container.clone();
    let (open, close) = (c.start + 1, c.end - 1);
    // Separators as the base writes them.
    let (lead, sep, trail) = match (s.items.first(), s.items.last()) {
        (Some(first), Some(last)) => {
            let lead = b[open..first.1.start].to_owned();
            let sep = match s.items.get(1) {
                Some(second) => b[first.1.end..second.1.start].to_owned(),
                None => format!(",{lead}"),
            };
            (lead, sep, b[last.1.end..close].to_owned())
        }
        _ => {
            let inner = &b[open..close];
            if inner.contains('\n') {
                let indent: String = b[..c.start]
                    .rsplit('\n')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take_while(|ch| *ch == ' ' || *ch == '\t')
                    .collect();
                (
                    format!("\n{indent}  "),
                    format!(",\n{indent}  "),
                    format!("\n{indent}"),
                )
            } else {
                (String::new(), ", ".to_owned(), String::new())
            }
        }
    };
    let colon = s
        .items
        .iter()
        .find_map(|(m, r)| {
            m.as_ref()?;
            let t = &b[r.clone()];
            let (key, value) = member_parts(t)?;
            let start = key.len();
            let end = value.as_ptr() as usize - t.as_ptr() as usize;
            Some(t[start..end].to_owned())
        })
        .unwrap_or_else(|| ": ".to_owned());
    let body: Vec<String> = items
        .iter()
        .map(|(m, t)| member_text(m, t, &colon))
        .collect();
    let mut out = String::with_capacity(b.len());
    out.push_str(&b[..open]);
    if body.is_empty() {
        // An empty container keeps nothing between its brackets but what closes it.
        if !s.items.is_empty() && trail.contains('\n') && lead.contains('\n') {
            out.push_str(&trail);
        }
    } else {
        out.push_str(&lead);
        out.push_str(&body.join(&sep));
        out.push_str(&trail);
    }
    out.push_str(&b[close..]);
    Ok(out)
}

/// A file [`apply`] finished.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub path: String,
    pub action: Action,
    /// Where the replaced version went, relative to the displaced folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub displaced: Option<String>,
    /// The file already was as planned (a rerun after an interruption).
    pub already_done: bool,
}

/// The temporary sibling an export writes before renaming it over `abs`. Its name is fixed,
/// so a rerun after a kill finds and removes what the killed run left.
pub fn temp_path(abs: &Path) -> PathBuf {
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    abs.with_file_name(format!(".{name}.ferry-export.tmp"))
}

/// Carries out one file of the plan (see the module docs). `displaced_dir` receives the
/// version it replaces, at the same relative path.
pub fn apply(store_dir: &Path, displaced_dir: &Path, file: &FilePlan) -> std::io::Result<Applied> {
    let abs = store_dir.join(&file.path);
    let tmp = temp_path(&abs);
    if tmp.exists() {
        std::fs::remove_file(&tmp)?;
    }
    let current = match std::fs::read(&abs) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut applied = Applied {
        path: file.path.clone(),
        action: file.action,
        displaced: None,
        already_done: false,
    };
    if current.as_deref() == file.bytes.as_deref() {
        applied.already_done = true;
        return Ok(applied);
    }
    if let Some(old) = &current {
        // The version replaced is kept first; a rerun finds the same copy already there.
        let dest = displaced_dir.join(&file.path);
        let same = std::fs::read(&dest).is_ok_and(|d| &d == old);
        if !same {
            let dest = if dest.exists() {
                // An earlier export displaced another version of this path: keep both.
                let mut n = 2;
                loop {
                    let cand = PathBuf::from(format!("{}.{n}", dest.display()));
                    if std::fs::read(&cand).is_ok_and(|d| &d == old) || !cand.exists() {
                        break cand;
                    }
                    n += 1;
                }
            } else {
                dest
            };
            if !std::fs::read(&dest).is_ok_and(|d| &d == old) {
                ferry_core::fsutil::write_atomic(&dest, old)?;
            }
            applied.displaced = dest
                .strip_prefix(displaced_dir)
                .ok()
                .map(|p| p.to_string_lossy().into_owned());
        } else {
            applied.displaced = Some(file.path.clone());
        }
    }
    let dir = abs.parent().unwrap_or(store_dir).to_owned();
    match &file.bytes {
        Some(bytes) => {
            std::fs::create_dir_all(&dir)?;
            let result = (|| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(bytes)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &abs)?;
                ferry_core::fsutil::sync_dir(&dir)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?;
        }
        None => {
            if current.is_some() {
                std::fs::remove_file(&abs)?;
                ferry_core::fsutil::sync_dir(&dir)?;
            }
        }
    }
    Ok(applied)
}

/// Reads a written file back and checks it holds exactly the planned records: the bytes
/// planned, the import's rule for its path reading the table planned, and every record, split
/// as the import splits it, equal to its row's document (and a `keep_document` file's JSON
/// equal to the whole-file document the database keeps). Each difference is one sentence.
pub fn verify(profile: &Profile, store_dir: &Path, file: &FilePlan) -> Vec<String> {
    let abs = store_dir.join(&file.path);
    let mut out = Vec::new();
    let bytes = match std::fs::read(&abs) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return vec![format!("{}: cannot be read back: {e}", file.path)],
    };
    let Some(expected_bytes) = &file.bytes else {
        if bytes.is_some() {
            out.push(format!(
                "{}: still there, although it was to be removed",
                file.path
            ));
        }
        return out;
    };
    let Some(bytes) = bytes else {
        return vec![format!("{}: missing after it was written", file.path)];
    };
    if &bytes != expected_bytes {
        out.push(format!(
            "{}: holds {} bytes (sha256 {}), not the {} planned (sha256 {})",
            file.path,
            bytes.len(),
            sha(&bytes),
            expected_bytes.len(),
            file.sha256.as_deref().unwrap_or("-")
        ));
        return out;
    }
    let Some(rule) = rule_for(profile, &file.path) else {
        return vec![format!(
            "{}: the import profile maps the path to no rule",
            file.path
        )];
    };
    if rule.table != file.table {
        out.push(format!(
            "{}: the import reads it into table {}, not {}",
            file.path, rule.table, file.table
        ));
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return vec![format!("{}: not UTF-8 text", file.path)];
    };
    if !multi(rule) {
        if let Some(e) = file.expected.first() {
            if e.text != text {
                out.push(format!(
                    "{}: the document differs from row {} of {}",
                    file.path, e.key, e.table
                ));
            }
            if rule.format.is_json() && serde_json::from_str::<&RawValue>(text).is_err() {
                out.push(format!("{}: not valid JSON", file.path));
            }
        }
        return out;
    }
    match split(rule, text) {
        Err(why) => out.push(format!("{}: the import cannot read it: {why}", file.path)),
        Ok(s) => {
            if s.items.len() != file.expected.len() {
                out.push(format!(
                    "{}: the import reads {} records, {} rows name the file",
                    file.path,
                    s.items.len(),
                    file.expected.len()
                ));
            }
            for ((member, range), e) in s.items.iter().zip(&file.expected) {
                let got = match member {
                    Some(_) => member_parts(&text[range.clone()]).map_or("", |(_, v)| v),
                    None => &text[range.clone()],
                };
                if got != e.text || member != &e.member {
                    out.push(format!(
                        "{}: the record in place of row {} of {} differs from its document",
                        file.path, e.key, e.table
                    ));
                }
            }
        }
    }
    if let Some(container) = &file.container {
        if !same_json(text, container) {
            out.push(format!(
                "{}: its JSON differs from the whole-file document table {} keeps for it",
                file.path,
                crate::plan::DOCUMENTS_TABLE
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(table: &str, key: &str, record: i64, text: &str) -> RowDoc {
        RowDoc {
            table: table.into(),
            key: key.into(),
            record,
            text: Some(text.into()),
        }
    }

    #[test]
    fn a_task_list_keeps_unchanged_records_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = "agent_workspaces/A/task_list.json";
        let base = "[\n    {\"id\": \"t1\",  \"title\": \"x\"},\n    {\"id\": \"t2\"}\n]\n";
        std::fs::create_dir_all(dir.path().join("agent_workspaces/A")).unwrap();
        std::fs::write(dir.path().join(p), base).unwrap();
        let profile = Profile::builtin();
        let plan = plan(
            &profile,
            dir.path(),
            vec![PathRows {
                path: p.into(),
                rows: vec![
                    row("tasks", "t1", 0, "{\"id\": \"t1\",  \"title\": \"x\"}"),
                    row("tasks", "t2", 1, "{\"id\": \"t2\", \"status\": \"done\"}"),
                    row("tasks", "t3", 2, "{\"id\": \"t3\"}"),
                ],
            }],
        );
        assert!(plan.rejects.is_empty(), "{:?}", plan.rejects);
        let f = &plan.files[0];
        assert_eq!(f.action, Action::Write);
        assert_eq!(
            std::str::from_utf8(f.bytes.as_ref().unwrap()).unwrap(),
            "[\n    {\"id\": \"t1\",  \"title\": \"x\"},\n    {\"id\": \"t2\", \"status\": \"done\"},\n    {\"id\": \"t3\"}\n]\n"
        );
        let displaced = dir.path().join("displaced");
        let a = apply(dir.path(), &displaced, f).unwrap();
        assert!(!a.already_done);
        assert_eq!(std::fs::read_to_string(displaced.join(p)).unwrap(), base);
        assert!(verify(&profile, dir.path(), f).is_empty());
        assert!(apply(dir.path(), &displaced, f).unwrap().already_done);
    }

    #[test]
    fn members_of_agents_json_are_rendered_with_the_key_as_member_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = "agent_workspaces/agents.json";
        let base = "{\n  \"A\": {\"role\": \"x\"},\n  \"B\": {}\n}\n";
        std::fs::create_dir_all(dir.path().join("agent_workspaces")).unwrap();
        std::fs::write(dir.path().join(p), base).unwrap();
        let profile = Profile::builtin();
        let plan = plan(
            &profile,
            dir.path(),
            vec![PathRows {
                path: p.into(),
                rows: vec![
                    row("agents", "A", 0, "{\"role\": \"x\"}"),
                    row("agents", "C", 1, "{\"role\": \"new\"}"),
                ],
            }],
        );
        let f = &plan.files[0];
        assert_eq!(
            std::str::from_utf8(f.bytes.as_ref().unwrap()).unwrap(),
            "{\n  \"A\": {\"role\": \"x\"},\n  \"C\": {\"role\": \"new\"}\n}\n"
        );
        apply(dir.path(), &dir.path().join("d"), f).unwrap();
        assert!(verify(&profile, dir.path(), f).is_empty());
    }

    #[test]
    fn rows_that_cannot_be_rendered_are_rejected_with_key_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::builtin();
        let plan = plan(
            &profile,
            dir.path(),
            vec![
                PathRows {
                    path: "agent_workspaces/A/inbox/m.json".into(),
                    rows: vec![RowDoc {
                        table: "messages".into(),
                        key: "k".into(),
                        record: 0,
                        text: None,
                    }],
                },
                PathRows {
                    path: "picture.png".into(),
                    rows: vec![row("documents", "picture.png", 0, "{}")],
                },
                PathRows {
                    path: "agent_workspaces/A/task_list.json".into(),
                    rows: vec![row("tasks", "a", 0, "{}"), row("tasks", "b", 0, "{}")],
                },
            ],
        );
        assert!(plan.files.is_empty());
        assert_eq!(plan.rejects.len(), 4, "{:?}", plan.rejects);
        assert!(plan.rejects[0].reason.contains("keeps no document"));
        assert!(plan.rejects[1].reason.contains("matches no rule"));
        assert!(plan.rejects[2].reason.contains("both claim record 0"));
    }

    #[test]
    fn jsonl_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let p = ".claude/logs/hook.jsonl";
        std::fs::create_dir_all(dir.path().join(".claude/logs")).unwrap();
        std::fs::write(dir.path().join(p), "{\"a\":1}\n{\"b\":2}\n").unwrap();
        std::fs::write(dir.path().join("gone.json"), "{}").unwrap();
        let profile = Profile::builtin();
        let plan = plan(
            &profile,
            dir.path(),
            vec![
                PathRows {
                    path: p.into(),
                    rows: vec![row("hook_events", "1", 0, "{\"a\":1}")],
                },
                PathRows {
                    path: "gone.json".into(),
                    rows: vec![],
                },
            ],
        );
        assert_eq!(plan.files.len(), 2);
        assert_eq!(plan.count(Action::Remove), 1);
        for f in &plan.files {
            apply(dir.path(), &dir.path().join("displaced"), f).unwrap();
            assert!(verify(&profile, dir.path(), f).is_empty());
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join(p)).unwrap(),
            "{\"a\":1}\n"
        );
        assert!(!dir.path().join("gone.json").exists());
        assert!(dir.path().join("displaced/gone.json").exists());
    }
}
