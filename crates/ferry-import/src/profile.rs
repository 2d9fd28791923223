//! Import profiles: which files of a store go to which table, and how their fields map onto
//! columns. A profile is TOML, read with figment and validated here; every error names the
//! key (`rule[3].columns.status`) and the file. [`Profile::builtin`] is the default profile
//! (`default_profile.toml`), written for the agent-store layout and `.claude` directories.
//!
//! The format, in short (the built-in profile is the worked example):
//!
//! ```toml
//! version = 1
//! exclude = ["**/.git/**"]            # excluded files are recorded as such, never read
//! delete_disappeared = false          # rows of a file that vanished are kept (and reported)
//!
//! [vocabularies.priority]             # free text -> the CHECKed values of a column
//! missing = "normal"                  # value when the field is absent or null
//! other = "other"                     # value when the text is not listed below
//! values = { high = ["high", "urgent"], low = ["low"] }
//!
//! [[rule]]                            # rules are tried in order; the first match wins
//! kind = "inbox"                      # the name counts and reports use
//! glob = "agent_workspaces/{agent}/inbox/**/*.json"
//! format = "json"                     # json | json_array | jsonl | markdown | text
//! table = "messages"
//! key = ["message_id"]                # natural key (default: the primary key)
//! [rule.columns]
//! message_id = "{path}"               # a template: captures and built-in variables
//! mailbox_agent_id = "{agent}"
//! from_agent = ["/from", "/sender"]   # JSON pointers, first present wins
//! priority = { from = "/priority", vocabulary = "priority" }
//! sent_at = { from = ["/timestamp", "/sent_at"], type = "timestamp" }
//! ```
//!
//! `extends = "<kind>"` starts a rule from an earlier one (format, table, key, columns) and
//! overrides what it lists. `records = { at = ["", "/tasks"], each = "element" }` splits one JSON document into
//! records (the elements of the first array found, or with `each = "member"` the members of
//! an object, whose names are `{member}`); `keep_document = true` also keeps the whole file
//! in `documents`. For Markdown, pointers read the YAML front matter; `{heading}` is the
//! first `# ` heading and `{body}` the text after the front matter.

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format as _, Toml};
use figment::Figment;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ProfileError;
use crate::glob::Pattern;
use crate::template::Template;

/// The built-in profile's text.
pub const BUILTIN_TOML: &str = include_str!("default_profile.toml");
/// The name the built-in profile is known by (`import.profile = "builtin"`).
pub const BUILTIN_NAME: &str = "builtin";

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    origin: String,
    digest: String,
    pub(crate) delete_disappeared: bool,
    pub(crate) exclude: Vec<Pattern>,
    pub(crate) vocabularies: BTreeMap<String, Vocabulary>,
    pub(crate) rules: Vec<Rule>,
}

/// How a file's content is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON document (one record, or several with `records`).
    Json,
    /// A JSON array at the top level: one record per element.
    JsonArray,
    /// JSON Lines: one record per non-blank line.
    Jsonl,
    /// Markdown, with optional YAML front matter.
    Markdown,
    /// Plain text: one record, the whole file.
    Text,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::JsonArray => "json_array",
            Format::Jsonl => "jsonl",
            Format::Markdown => "markdown",
            Format::Text => "text",
        }
    }

    /// The value for a `format` column such as `documents.format`.
    pub fn document_format(self) -> &'static str {
        match self {
            Format::Json | Format::JsonArray => "json",
            Format::Jsonl => "jsonl",
            Format::Markdown => "markdown",
            Format::Text => "text",
        }
    }

    pub fn is_json(self) -> bool {
        matches!(self, Format::Json | Format::JsonArray | Format::Jsonl)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub index: usize,
    pub kind: String,
    pub glob: Pattern,
    pub format: Format,
    pub table: String,
    pub key: Option<Vec<String>>,
    pub records: Option<Records>,
    pub keep_document: bool,
    pub front_matter: bool,
    pub columns: Vec<(String, ColumnSpec)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Records {
    pub at: Vec<String>,
    pub each: Each,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Each {
    Element,
    Member,
}

#[derive(Debug, Clone)]
pub(crate) struct ColumnSpec {
    pub sources: Vec<Source>,
    pub ty: Option<ColumnType>,
    pub vocabulary: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Source {
    Pointer(Pointer),
    Template(Template),
    Value(serde_json::Value),
    FrontMatter,
}

/// A JSON pointer, split into its unescaped tokens once.
#[derive(Debug, Clone)]
pub(crate) struct Pointer {
    pub text: String,
    tokens: Vec<String>,
}

impl Pointer {
    fn new(text: &str) -> Self {
        let tokens = text[1..]
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        Self {
            text: text.to_owned(),
            tokens,
        }
    }

    /// The value the pointer names, as `serde_json::Value::pointer` finds it.
    pub fn find<'v>(&self, mut v: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        for t in &self.tokens {
            v = match v {
                serde_json::Value::Object(m) => m.get(t)?,
                serde_json::Value::Array(a) => {
                    // RFC 6901: an index is digits without a leading zero.
                    if t.is_empty()
                        || (t.len() > 1 && t.starts_with('0'))
                        || !t.bytes().all(|b| b.is_ascii_digit())
                    {
                        return None;
                    }
                    a.get(t.parse::<usize>().ok()?)?
                }
                _ => return None,
            };
        }
        Some(v)
    }
}

/// The conversion a mapped value goes through before it is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Text,
    Integer,
    Real,
    Json,
    Timestamp,
}

impl ColumnType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => ColumnType::Text,
            "integer" => ColumnType::Integer,
            "real" => ColumnType::Real,
            "json" => ColumnType::Json,
            "timestamp" => ColumnType::Timestamp,
            _ => return None,
        })
    }
}

/// A closed set of values with the synonyms that map onto each.
#[derive(Debug, Clone)]
pub(crate) struct Vocabulary {
    pub missing: String,
    pub other: String,
    /// normalised synonym -> canonical value
    pub synonyms: BTreeMap<String, String>,
    /// every value this vocabulary can produce
    pub outputs: Vec<String>,
}

impl Vocabulary {
    /// The canonical value for text as written, or `None` when it is not listed.
    pub fn lookup(&self, raw: &str) -> Option<&str> {
        self.synonyms.get(&normalize_word(raw)).map(String::as_str)
    }
}

/// `"To Do"` -> `"to_do"`: lowercase, trimmed, spaces and hyphens as underscores.
pub(crate) fn normalize_word(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        let c = if c == ' ' || c == '-' { '_' } else { c };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    version: u32,
    #[serde(default)]
    delete_disappeared: bool,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    vocabularies: BTreeMap<String, RawVocabulary>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVocabulary {
    missing: String,
    other: String,
    values: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    kind: String,
    glob: String,
    /// The kind of an earlier rule whose settings and columns this one starts from.
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    key: Option<Vec<String>>,
    #[serde(default)]
    records: Option<RawRecords>,
    #[serde(default)]
    keep_document: Option<bool>,
    #[serde(default)]
    front_matter: Option<bool>,
    #[serde(default)]
    columns: BTreeMap<String, serde_json::Value>,
}

impl RawRule {
    /// Fills what this rule leaves unsaid from `base`; its own columns win.
    fn inherit(mut self, base: &RawRule) -> RawRule {
        self.format = self.format.or(base.format);
        self.table = self.table.or_else(|| base.table.clone());
        self.key = self.key.or_else(|| base.key.clone());
        self.records = self.records.or_else(|| base.records.clone());
        self.keep_document = self.keep_document.or(base.keep_document);
        // `front_matter` means something only to Markdown; a rule that changes the format
        // does not inherit it.
        if self.format == Some(Format::Markdown) {
            self.front_matter = self.front_matter.or(base.front_matter);
        }
        for (k, v) in &base.columns {
            self.columns.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecords {
    #[serde(default)]
    at: Option<OneOrMany>,
    #[serde(default)]
    each: Option<Each>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

impl Profile {
    /// The built-in default profile.
    pub fn builtin() -> Profile {
        match Self::from_toml(BUILTIN_TOML, "built-in profile") {
            Ok(p) => p,
            // The built-in profile is part of the program and has its own test.
            Err(e) => unreachable!("the built-in profile is invalid: {e}"),
        }
    }

    /// `builtin`, or the path of a profile file (the `import.profile` setting).
    pub fn from_setting(setting: &str) -> Result<Profile, ProfileError> {
        if setting == BUILTIN_NAME {
            Ok(Self::builtin())
        } else {
            Self::load(Path::new(setting))
        }
    }

    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|_| ProfileError::Missing {
            path: path.to_owned(),
        })?;
        let origin = path.display().to_string();
        let figment = Figment::from(Toml::file_exact(path));
        let raw: RawProfile = figment.extract().map_err(|e| from_figment(&origin, e))?;
        Self::validate(raw, &text, &origin)
    }

    /// Validates a profile given as TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let figment = Figment::from(Toml::string(text));
        let raw: RawProfile = figment.extract().map_err(|e| from_figment(origin, e))?;
        Self::validate(raw, text, origin)
    }

    /// Where the profile came from: a file path or `built-in profile`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// SHA-256 of the profile text; a change re-imports every file.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether rows of files that disappeared from the store are deleted.
    pub fn delete_disappeared(&self) -> bool {
        self.delete_disappeared
    }

    /// The rules' kinds, in order (a kind may repeat).
    pub fn kinds(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.kind.as_str()).collect()
    }

    /// The tables the rules write.
    pub fn tables(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self.rules.iter().map(|r| r.table.as_str()).collect();
        if self.rules.iter().any(|r| r.keep_document) {
            t.push(crate::plan::DOCUMENTS_TABLE);
        }
        t.sort_unstable();
        t.dedup();
        t
    }

    fn validate(raw: RawProfile, text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let invalid = |key: String, message: String| ProfileError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        };
        if raw.version != 1 {
            return Err(invalid(
                "version".into(),
                format!(
                    "version {} is not supported; this ferry reads version 1",
                    raw.version
                ),
            ));
        }
        let exclude = raw
            .exclude
            .iter()
            .enumerate()
            .map(|(i, g)| Pattern::new(g).map_err(|e| invalid(format!("exclude[{i}]"), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut vocabularies = BTreeMap::new();
        for (name, v) in raw.vocabularies {
            let key = |k: &str| format!("vocabularies.{name}.{k}");
            let mut synonyms = BTreeMap::new();
            let mut outputs: Vec<String> = v.values.keys().cloned().collect();
            for (canonical, words) in &v.values {
                for w in words.iter().chain(std::iter::once(canonical)) {
                    let n = normalize_word(w);
                    if let Some(prev) = synonyms.insert(n.clone(), canonical.clone()) {
                        if prev != *canonical {
                            return Err(invalid(
                                key(&format!("values.{canonical}")),
                                format!("`{w}` is already a synonym of `{prev}`"),
                            ));
                        }
                    }
                }
            }
            for k in [&v.missing, &v.other] {
                if !outputs.contains(k) {
                    outputs.push(k.clone());
                }
            }
            if v.values.is_empty() {
                return Err(invalid(key("values"), "lists no values".into()));
            }
            vocabularies.insert(
                name,
                Vocabulary {
                    missing: v.missing,
                    other: v.other,
                    synonyms,
                    outputs,
                },
            );
        }
        if raw.rules.is_empty() {
            return Err(invalid("rule".into(), "the profile has no [[rule]]".into()));
        }
        let mut rules = Vec::new();
        let mut resolved: Vec<RawRule> = Vec::new();
        for (index, r) in raw.rules.into_iter().enumerate() {
            let at = |k: &str| format!("rule[{index}].{k}");
            let kind_note = format!(" (rule of kind `{}`)", r.kind);
            if r.kind.trim().is_empty() {
                return Err(invalid(at("kind"), "must not be empty".into()));
            }
            let r = match &r.extends {
                None => r,
                Some(base) => match resolved.iter().find(|b| b.kind == *base) {
                    Some(b) => r.clone().inherit(b),
                    None => {
                        return Err(invalid(
                            at("extends"),
                            format!("no earlier rule has kind `{base}`{kind_note}"),
                        ));
                    }
                },
            };
            resolved.push(r.clone());
            let Some(format) = r.format else {
                return Err(invalid(at("format"), format!("is required{kind_note}")));
            };
            let Some(table) = r.table.clone() else {
                return Err(invalid(at("table"), format!("is required{kind_note}")));
            };
            let keep_document = r.keep_document.unwrap_or(false);
            let glob = Pattern::new(&r.glob).map_err(|e| invalid(at("glob"), e + &kind_note))?;
            let records = match r.records {
                None => None,
                Some(_) if format != Format::Json => {
                    return Err(invalid(
                        at("records"),
                        format!(
                            "only a `json` rule can split its document into records{kind_note}"
                        ),
                    ));
                }
                Some(rec) => {
                    let at_list = rec
                        .at
                        .map_or_else(|| vec![String::new()], OneOrMany::into_vec);
                    for p in &at_list {
                        check_pointer(p, true)
                            .map_err(|e| invalid(at("records.at"), e + &kind_note))?;
                    }
                    Some(Records {
                        at: at_list,
                        each: rec.each.unwrap_or(Each::Element),
                    })
                }
            };
            if keep_document && records.is_none() {
                return Err(invalid(
                    at("keep_document"),
                    format!("only a rule with `records` keeps its whole document separately (the record is the document otherwise){kind_note}"),
                ));
            }
            if r.front_matter.is_some() && format != Format::Markdown {
                return Err(invalid(
                    at("front_matter"),
                    format!("only applies to `markdown` rules{kind_note}"),
                ));
            }
            let mut columns = Vec::new();
            for (name, value) in r.columns {
                let key = at(&format!("columns.{name}"));
                let spec = parse_column(&value, &glob, format, records.as_ref())
                    .map_err(|e| invalid(key.clone(), e + &kind_note))?;
                if let Some(v) = &spec.vocabulary {
                    if !vocabularies.contains_key(v) {
                        let known: Vec<&String> = vocabularies.keys().collect();
                        return Err(invalid(
                            key,
                            format!("unknown vocabulary `{v}` (defined: {known:?}){kind_note}"),
                        ));
                    }
                }
                columns.push((name, spec));
            }
            rules.push(Rule {
                index,
                kind: r.kind,
                glob,
                format,
                table,
                key: r.key,
                records,
                keep_document,
                front_matter: r.front_matter.unwrap_or(true),
                columns,
            });
        }
        Ok(Profile {
            origin: origin.to_owned(),
            digest: hex::encode(Sha256::digest(text.as_bytes())),
            delete_disappeared: raw.delete_disappeared,
            exclude,
            vocabularies,
            rules,
        })
    }
}

fn parse_column(
    value: &serde_json::Value,
    glob: &Pattern,
    format: Format,
    records: Option<&Records>,
) -> Result<ColumnSpec, String> {
    let source = |s: &str| -> Result<Source, String> {
        if s.starts_with('/') {
            check_pointer(s, false)?;
            if !format.is_json() && format != Format::Markdown {
                return Err(format!(
                    "`{s}`: a `{}` file has no fields for a JSON pointer to read",
                    format.as_str()
                ));
            }
            Ok(Source::Pointer(Pointer::new(s)))
        } else {
            let t = Template::new(s, glob.capture_names())?;
            for b in t.builtins() {
                let ok = match b {
                    "member" => records.is_some_and(|r| r.each == Each::Member),
                    "heading" => format == Format::Markdown,
                    "body" => matches!(format, Format::Markdown | Format::Text),
                    _ => true,
                };
                if !ok {
                    return Err(format!("`{s}`: `{{{b}}}` is not available in this rule"));
                }
            }
            Ok(Source::Template(t))
        }
    };
    match value {
        serde_json::Value::String(s) => Ok(ColumnSpec {
            sources: vec![source(s)?],
            ty: None,
            vocabulary: None,
        }),
        serde_json::Value::Array(items) => {
            let sources = items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => source(s),
                    other => Err(format!("a list of sources holds strings (pointers or templates), not {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if sources.is_empty() {
                return Err("an empty list of sources".into());
            }
            Ok(ColumnSpec {
                sources,
                ty: None,
                vocabulary: None,
            })
        }
        serde_json::Value::Object(map) => {
            let mut spec = ColumnSpec {
                sources: Vec::new(),
                ty: None,
                vocabulary: None,
            };
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("from", serde_json::Value::String(s)) => spec.sources.push(source(s)?),
                    ("from", serde_json::Value::Array(items)) => {
                        for i in items {
                            match i.as_str() {
                                Some(s) => spec.sources.push(source(s)?),
                                None => return Err(format!("`from` holds strings (pointers or templates), not {i}")),
                            }
                        }
                    }
                    ("value", v) => spec.sources.push(Source::Value(v.clone())),
                    ("meta", serde_json::Value::String(m)) if m == "front_matter" => {
                        if format != Format::Markdown {
                            return Err("`meta = \"front_matter\"` only applies to `markdown` rules".into());
                        }
                        spec.sources.push(Source::FrontMatter);
                    }
                    ("meta", other) => return Err(format!("`meta` can be \"front_matter\", not {other}")),
                    ("type", serde_json::Value::String(t)) => {
                        spec.ty = Some(ColumnType::parse(t).ok_or_else(|| {
                            format!("unknown type `{t}` (text, integer, real, json, timestamp)")
                        })?);
                    }
                    ("vocabulary", serde_json::Value::String(v)) => spec.vocabulary = Some(v.clone()),
                    (k @ ("from" | "type" | "vocabulary"), other) => {
                        return Err(format!("`{k}` must be a string, not {other}"));
                    }
                    (other, _) => {
                        return Err(format!("unknown key `{other}` (expected from, value, meta, type, vocabulary)"));
                    }
                }
            }
            if spec.sources.is_empty() {
                return Err("says neither `from`, `value` nor `meta`: where does the value come from?".into());
            }
            if spec.vocabulary.is_some() && spec.ty.is_some_and(|t| t != ColumnType::Text) {
                return Err("a vocabulary column is text; drop `type`".into());
            }
            Ok(spec)
        }
        other => Err(format!(
            "a column is a pointer (\"/field\"), a template (\"{{path}}\"), a list of them, or a table with `from`; not {other}"
        )),
    }
}

/// A JSON pointer: empty (the whole document, only where `allow_root`) or `/a/b` with `~0`/`~1`.
fn check_pointer(p: &str, allow_root: bool) -> Result<(), String> {
    if p.is_empty() {
        return if allow_root {
            Ok(())
        } else {
            Err("an empty pointer: the whole document is kept in `doc` already".into())
        };
    }
    if !p.starts_with('/') {
        return Err(format!(
            "`{p}` is not a JSON pointer (it must start with `/`)"
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "`{p}`: `~` must be followed by 0 or 1 in a JSON pointer"
            ));
        }
    }
    Ok(())
}

fn from_figment(origin: &str, err: figment::Error) -> ProfileError {
    let mut key = err.path.join(".");
    let message = match &err.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            key = if key.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            format!(
                "unknown key `{field}` (expected one of: {})",
                expected.join(", ")
            )
        }
        figment::error::Kind::MissingField(field) => {
            key = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            "is required".to_owned()
        }
        kind => kind.to_string(),
    };
    // figment names array elements by index; say `rule[2]` as the validation errors do.
    let key = key.split('.').fold(String::new(), |mut acc, part| {
        if part.bytes().all(|b| b.is_ascii_digit()) && !acc.is_empty() {
            acc.push_str(&format!("[{part}]"));
        } else {
            if !acc.is_empty() {
                acc.push('.');
            }
            acc.push_str(part);
        }
        acc
    });
    ProfileError::Invalid {
        origin: origin.to_owned(),
        key: if key.is_empty() {
            "(top level)".into()
        } else {
            key
        },
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profile_is_valid() {
        let p = Profile::builtin();
        assert!(p.rules.len() > 10);
        assert!(p.kinds().contains(&"inbox"));
    }

    fn err(toml: &str) -> String {
        Profile::from_toml(toml, "test.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let base = "version = 1\n[[rule]]\nkind = \"k\"\nglob = \"*.json\"\nformat = \"json\"\ntable = \"documents\"\n";
        let e = err(&format!("{base}colums = {{}}\n"));
        assert!(
            e.contains("test.toml") && e.contains("rule[0].colums") && e.contains("unknown key"),
            "{e}"
        );
        let e = err(&base.replace("\"json\"", "\"yaml\""));
        assert!(e.contains("rule[0].format"), "{e}");
        let e = err(&format!(
            "{base}[rule.columns]\nkind = {{ from = \"/k\", vocabulary = \"nope\" }}\n"
        ));
        assert!(
            e.contains("rule[0].columns.kind") && e.contains("unknown vocabulary `nope`"),
            "{e}"
        );
        let e = err(&format!("{base}[rule.columns]\nkind = \"{{agnet}}\"\n"));
        assert!(e.contains("unknown variable `{agnet}`"), "{e}");
        let e = err(&format!(
            "{base}[rule.columns]\nkind = \"status\"\nx = {{ form = \"/status\" }}\n"
        ));
        assert!(
            e.contains("rule[0].columns.x") && e.contains("unknown key `form`"),
            "{e}"
        );
        let e = err(&base.replace("*.json", "a/**.json"));
        assert!(
            e.contains("rule[0].glob") && e.contains("whole path segment"),
            "{e}"
        );
        let e = err("version = 2\n");
        assert!(e.contains("`version`"), "{e}");
        let e = err(&format!("{base}keep_document = true\n"));
        assert!(e.contains("rule[0].keep_document"), "{e}");
    }

    #[test]
    fn loading_a_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "version = 1\nrule = [{ kind = 1 }]\n").unwrap();
        let e = Profile::load(&path).unwrap_err().to_string();
        assert!(e.contains("p.toml") && e.contains("rule[0]"), "{e}");
        let e = Profile::load(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn words_normalise() {
        assert_eq!(normalize_word(" To Do "), "to_do");
        assert_eq!(normalize_word("in-progress"), "in_progress");
        assert_eq!(normalize_word("Medium"), "medium");
    }
}
