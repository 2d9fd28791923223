//! A profile compiled against the real schema: for every rule, the columns it binds (mapped
//! ones and the automatic `source_path`/`doc`/… ones), its natural key, the placeholder
//! parents its foreign keys need, and its upsert statement. Everything a profile could get
//! wrong about the schema is refused here, before a single file is read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::error::{ImportError, ProfileError};
use crate::profile::{ColumnSpec, ColumnType, Format, Profile, Rule, Source, Vocabulary};
use crate::schema::TableInfo;
use crate::template::Template;

/// The catch-all table for whole documents (and the home of `keep_document`).
pub const DOCUMENTS_TABLE: &str = "documents";
/// The import ledger.
pub const LEDGER_TABLE: &str = "ferry_source_files";
/// The log of import runs.
pub const RUNS_TABLE: &str = "ferry_import_runs";

/// Columns the import fills by itself wherever a table has them.
pub(crate) const AUTO_COLUMNS: &[&str] = &[
    "source_path",
    "source_record",
    "doc",
    "doc_sha256",
    "doc_size",
    "doc_snapshot",
    "source_text",
];

#[derive(Debug)]
pub(crate) struct Plan {
    pub rules: Vec<RulePlan>,
    /// For each profile rule, the plan of its `keep_document` row, if any.
    pub containers: Vec<Option<usize>>,
    /// For each profile rule: a template of it uses `{mtime}`.
    pub uses_mtime: Vec<bool>,
    pub tables: Vec<TablePlan>,
}

#[derive(Debug)]
pub(crate) struct TablePlan {
    pub name: String,
    /// Parents before children.
    pub order: usize,
    /// `source_path`, when the table has it: rows are owned by the file named there.
    pub owner_col: Option<String>,
    /// Released rows of a table that receives placeholders are reset to placeholders instead
    /// of deleted, so no cascade removes rows that other files own.
    pub reset_sql: Option<String>,
    pub info: TableInfo,
    /// `INSERT INTO t (pk) VALUES (?) ON CONFLICT DO NOTHING`, when rows can be implied.
    pub placeholder_col: Option<String>,
    /// Some rule's foreign key makes the import create placeholder rows here.
    pub receives_placeholders: bool,
}

#[derive(Debug)]
pub(crate) struct RulePlan {
    pub format: Format,
    pub table: usize,
    pub cols: Vec<PlanCol>,
    /// Indices into `cols` of the natural key, without `source_path`.
    pub key: Vec<usize>,
    /// The natural key's column names, `source_path` included when it is part of it.
    pub key_cols: Vec<String>,
    /// The key includes `source_path`: rows of different files never collide.
    pub key_has_source_path: bool,
    pub parents: Vec<ParentRef>,
    pub records: Option<crate::profile::Records>,
    pub front_matter: bool,
    /// The upsert of one row.
    pub upsert_sql: String,
    /// The plain insert of one row, for a bulk load into empty tables: no existing row can
    /// conflict, and without an upsert SQLite needs no statement journal.
    pub insert_sql: String,
}

#[derive(Debug)]
pub(crate) struct ParentRef {
    pub col: usize,
    pub table: usize,
}

#[derive(Debug)]
pub(crate) struct PlanCol {
    pub name: String,
    pub fill: Fill,
}

#[derive(Debug)]
pub(crate) enum Fill {
    Mapped(Box<Mapped>),
    /// The as-written text of the vocabulary column just before it.
    Raw,
    SourcePath,
    SourceRecord,
    Doc,
    DocSha256,
    DocSize,
    DocSnapshot,
    SourceText,
}

#[derive(Debug)]
pub(crate) struct Mapped {
    pub sources: Vec<Source>,
    pub ty: ColumnType,
    pub vocabulary: Option<Arc<Vocabulary>>,
    pub allowed: Option<Vec<String>>,
    pub not_null: bool,
    /// NOT NULL with a default: a missing value takes the default (and is noted).
    pub defaulted: bool,
}

pub(crate) use ferry_core::sql::quote_ident as quote;

impl Plan {
    pub fn build(
        profile: &Profile,
        schema: &BTreeMap<String, TableInfo>,
    ) -> Result<Plan, ImportError> {
        for t in [LEDGER_TABLE, RUNS_TABLE] {
            if !schema.contains_key(t) {
                return Err(ImportError::Schema(format!(
                    "table {t} is missing; apply ferry's SQLite migrations first (migrations/sqlite/0002_import_ledger.up.sql)"
                )));
            }
        }
        let mut b = Builder {
            profile,
            schema,
            tables: Vec::new(),
        };
        let mut rules = Vec::new();
        let mut containers = Vec::new();
        for rule in &profile.rules {
            rules.push(b.rule(rule)?);
            containers.push(None);
        }
        for rule in profile.rules.iter().filter(|r| r.keep_document) {
            let container = container_rule(rule);
            let plan = b.rule(&container)?;
            containers[rule.index] = Some(rules.len());
            rules.push(plan);
        }
        let mut tables = b.tables;
        // Only tables that receive placeholder rows keep their released rows as placeholders:
        // children in other files point at them. Elsewhere a released row is deleted.
        let parents: BTreeSet<usize> = rules
            .iter()
            .flat_map(|r: &RulePlan| r.parents.iter().map(|p| p.table))
            .collect();
        for (i, t) in tables.iter_mut().enumerate() {
            t.receives_placeholders = parents.contains(&i);
            if !t.receives_placeholders {
                t.reset_sql = None;
            }
        }
        // Parents before children: an order by depth in the foreign-key graph.
        let depth = fk_depths(&tables);
        for (t, d) in tables.iter_mut().zip(depth) {
            t.order = d;
        }
        let uses_mtime = profile
            .rules
            .iter()
            .map(|r| {
                r.columns.iter().any(|(_, c)| {
                    c.sources.iter().any(
                        |s| matches!(s, Source::Template(t) if t.builtins().any(|b| b == "mtime")),
                    )
                })
            })
            .collect();
        Ok(Plan {
            rules,
            containers,
            uses_mtime,
            tables,
        })
    }

    /// Table indices in the order their rows are written.
    pub fn table_order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.tables.len()).collect();
        idx.sort_by_key(|i| (self.tables[*i].order, *i));
        idx
    }
}

fn fk_depths(tables: &[TablePlan]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut depth = vec![0usize; tables.len()];
    // Relax edges until nothing changes; cycles (other than self-references) are capped.
    for _ in 0..tables.len() {
        let mut changed = false;
        for (i, t) in tables.iter().enumerate() {
            for fk in &t.info.fks {
                if let Some(&p) = index.get(fk.table.as_str()) {
                    if p != i && depth[i] < depth[p] + 1 {
                        depth[i] = depth[p] + 1;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

/// The `documents` row that keeps a split document whole.
fn container_rule(rule: &Rule) -> Rule {
    let names = rule.glob.capture_names();
    let template = |t: &str| ColumnSpec {
        // These templates only use built-ins and the rule's own captures.
        sources: vec![Source::Template(
            Template::new(t, names).unwrap_or_else(|e| unreachable!("{e}")),
        )],
        ty: Some(ColumnType::Text),
        vocabulary: None,
    };
    let mut columns = vec![
        ("document_path".to_owned(), template("{path}")),
        ("kind".to_owned(), template("{kind}")),
        ("format".to_owned(), template("{format}")),
    ];
    if names.iter().any(|n| n == "agent") {
        columns.push(("agent_id".to_owned(), template("{agent}")));
    }
    Rule {
        index: rule.index,
        kind: rule.kind.clone(),
        glob: rule.glob.clone(),
        format: rule.format,
        table: DOCUMENTS_TABLE.to_owned(),
        key: None,
        records: None,
        keep_document: false,
        front_matter: false,
        columns,
    }
}

struct Builder<'a> {
    profile: &'a Profile,
    schema: &'a BTreeMap<String, TableInfo>,
    tables: Vec<TablePlan>,
}

impl Builder<'_> {
    fn invalid(&self, rule: &Rule, key: &str, message: String) -> ImportError {
        let key = if key.is_empty() {
            format!("rule[{}]", rule.index)
        } else {
            format!("rule[{}].{key}", rule.index)
        };
        ImportError::Profile(ProfileError::Invalid {
            origin: self.profile.origin().to_owned(),
            key,
            message: format!(
                "{message} (rule of kind `{}`, table {})",
                rule.kind, rule.table
            ),
        })
    }

    fn table(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.tables.iter().position(|t| t.name == name) {
            return Some(i);
        }
        let info = self.schema.get(name)?.clone();
        let owner_col = info.has("source_path").then(|| "source_path".to_owned());
        let placeholder_col = match info.pk.as_slice() {
            [pk] if info.rowid_alias().is_none()
                && info
                    .columns
                    .iter()
                    .all(|c| c.name == *pk || !c.not_null || c.default.is_some()) =>
            {
                Some(pk.clone())
            }
            _ => None,
        };
        let reset_sql = if info.referenced && owner_col.is_some() {
            // Every column but the key back to its default (or NULL), which is what a
            // placeholder row holds; impossible when a NOT NULL column has no default.
            let sets: Option<Vec<String>> = info
                .columns
                .iter()
                .filter(|c| !info.pk.contains(&c.name))
                .map(|c| match (&c.default, c.not_null) {
                    (Some(d), _) => Some(format!("{} = {d}", quote(&c.name))),
                    (None, false) => Some(format!("{} = NULL", quote(&c.name))),
                    (None, true) => None,
                })
                .collect();
            sets.map(|s| format!("UPDATE {} SET {}", quote(name), s.join(", ")))
        } else {
            None
        };
        self.tables.push(TablePlan {
            name: name.to_owned(),
            order: 0,
            owner_col,
            reset_sql,
            info,
            placeholder_col,
            receives_placeholders: false,
        });
        Some(self.tables.len() - 1)
    }

    /// Compiles one rule: its table, columns, key, parents and statements.
    fn rule(&mut self, rule: &Rule) -> Result<RulePlan, ImportError> {
        let t = self.target(rule)?;
        let info = self.tables[t].info.clone();
        let mut cols = self.mapped_columns(rule, &info)?;
        self.auto_columns(rule, &info, &mut cols)?;
        self.check_not_null(rule, &info, &cols)?;
        let (key_cols, key) = self.natural_key(rule, &info, &cols)?;
        let parents = self.parents(rule, &info, &cols)?;
        let (insert_sql, upsert_sql) =
            statements(&info, &cols, &key_cols, self.tables[t].owner_col.as_deref());
        Ok(RulePlan {
            format: rule.format,
            table: t,
            key,
            key_has_source_path: key_cols.iter().any(|k| k == "source_path"),
            key_cols,
            parents,
            records: rule.records.clone(),
            front_matter: rule.front_matter,
            upsert_sql,
            insert_sql,
            cols,
        })
    }

    /// The rule's table: one of the database's own, never ferry's bookkeeping.
    fn target(&mut self, rule: &Rule) -> Result<usize, ImportError> {
        if rule.table.starts_with("ferry_") {
            return Err(self.invalid(
                rule,
                "table",
                format!("{} is ferry's own bookkeeping, not a target", rule.table),
            ));
        }
        match self.table(&rule.table) {
            Some(t) => Ok(t),
            None => {
                let known: Vec<&String> = self
                    .schema
                    .keys()
                    .filter(|k| !k.starts_with("ferry_"))
                    .collect();
                Err(self.invalid(
                    rule,
                    "table",
                    format!(
                        "the database has no table {} (tables: {known:?})",
                        rule.table
                    ),
                ))
            }
        }
    }

    /// The columns the rule maps, each checked against the table (existence, type, CHECK
    /// constraints, vocabulary), with the `<column>_raw` companion of a vocabulary column.
    fn mapped_columns(&self, rule: &Rule, info: &TableInfo) -> Result<Vec<PlanCol>, ImportError> {
        let mut cols: Vec<PlanCol> = Vec::new();
        for (name, spec) in &rule.columns {
            let mapped = self.mapped_column(rule, info, name, spec)?;
            cols.push(PlanCol {
                name: name.clone(),
                fill: Fill::Mapped(Box::new(mapped)),
            });
            let raw_col = format!("{name}_raw");
            if info.has(&raw_col) {
                cols.push(PlanCol {
                    name: raw_col,
                    fill: Fill::Raw,
                });
            }
        }
        Ok(cols)
    }

    /// One mapped column, refused with the key it is written under when the table cannot
    /// hold what the rule would put there.
    fn mapped_column(
        &self,
        rule: &Rule,
        info: &TableInfo,
        name: &str,
        spec: &ColumnSpec,
    ) -> Result<Mapped, ImportError> {
        let key = format!("columns.{name}");
        let Some(col) = info.column(name) else {
            let names: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(self.invalid(
                rule,
                &key,
                format!(
                    "table {} has no column {name} (columns: {names:?})",
                    info.name
                ),
            ));
        };
        if AUTO_COLUMNS.contains(&name) {
            return Err(self.invalid(
                rule,
                &key,
                format!("{name} is filled by the import itself; remove it"),
            ));
        }
        if name.ends_with("_raw") && info.has(name.trim_end_matches("_raw")) {
            return Err(self.invalid(
                rule,
                &key,
                format!("{name} is filled from the vocabulary column beside it; remove it"),
            ));
        }
        let vocabulary = spec
            .vocabulary
            .as_ref()
            .and_then(|v| self.profile.vocabularies.get(v))
            .cloned()
            .map(Arc::new);
        let raw_col = format!("{name}_raw");
        if vocabulary.is_none() && info.has(&raw_col) {
            return Err(self.invalid(rule, &key, format!("{name} is normalised (the as-written value goes to {raw_col}): give it a `vocabulary`")));
        }
        let ty = match (spec.ty, &vocabulary) {
            (_, Some(_)) => ColumnType::Text,
            (Some(ty), None) => ty,
            (None, None) if col.json => ColumnType::Json,
            (None, None) if name.ends_with("_at") && col.decl == "TEXT" => ColumnType::Timestamp,
            (None, None) if col.decl == "INTEGER" => ColumnType::Integer,
            (None, None) if col.decl == "REAL" => ColumnType::Real,
            (None, None) => ColumnType::Text,
        };
        if col.json && ty != ColumnType::Json {
            return Err(self.invalid(
                rule,
                &key,
                format!(
                    "column {name} holds JSON (it has a json_valid CHECK); its type must be json"
                ),
            ));
        }
        if ty == ColumnType::Timestamp && col.decl != "TEXT" {
            return Err(self.invalid(
                rule,
                &key,
                format!(
                    "timestamps are stored as ISO-8601 text; column {name} is {}",
                    col.decl
                ),
            ));
        }
        if let (Some(v), Some(allowed)) = (&vocabulary, &col.allowed) {
            let bad: Vec<&String> = v.outputs.iter().filter(|o| !allowed.contains(o)).collect();
            if !bad.is_empty() {
                return Err(self.invalid(rule, &key, format!("vocabulary `{}` can produce {bad:?}, which the CHECK of {name} does not allow ({allowed:?})", spec.vocabulary.as_deref().unwrap_or_default())));
            }
        }
        if let Some(allowed) = &col.allowed {
            let constants = spec.sources.iter().filter_map(|s| match s {
                Source::Template(t) => t.constant(),
                _ => None,
            });
            for c in constants {
                if !allowed.contains(&c) {
                    return Err(self.invalid(
                        rule,
                        &key,
                        format!("`{c}` is not allowed in column {name} ({allowed:?})"),
                    ));
                }
            }
        }
        Ok(Mapped {
            sources: spec.sources.clone(),
            ty,
            vocabulary,
            allowed: col.allowed.clone(),
            not_null: col.not_null,
            defaulted: col.not_null && col.default.is_some(),
        })
    }

    /// The original document and where it came from, in whichever of the automatic columns
    /// the table has; a table with no home for the original is refused.
    fn auto_columns(
        &self,
        rule: &Rule,
        info: &TableInfo,
        cols: &mut Vec<PlanCol>,
    ) -> Result<(), ImportError> {
        let json = rule.format.is_json();
        let text_home = if json && info.has("doc") {
            "doc"
        } else {
            "source_text"
        };
        if !info.has(text_home) {
            return Err(self.invalid(
                rule,
                "table",
                format!(
                    "table {} has no {text_home} column, so the original {} would be lost",
                    info.name,
                    if json { "document" } else { "text" }
                ),
            ));
        }
        for (name, fill) in [
            ("source_path", Fill::SourcePath),
            ("source_record", Fill::SourceRecord),
            ("doc", Fill::Doc),
            ("source_text", Fill::SourceText),
            ("doc_sha256", Fill::DocSha256),
            ("doc_size", Fill::DocSize),
            ("doc_snapshot", Fill::DocSnapshot),
        ] {
            if info.has(name) {
                cols.push(PlanCol {
                    name: name.to_owned(),
                    fill,
                });
            }
        }
        Ok(())
    }

    /// Every NOT NULL column without a default must be bound.
    fn check_not_null(
        &self,
        rule: &Rule,
        info: &TableInfo,
        cols: &[PlanCol],
    ) -> Result<(), ImportError> {
        for c in &info.columns {
            let bound = cols.iter().any(|p| p.name == c.name);
            let generated = info.rowid_alias() == Some(c.name.as_str());
            if c.not_null && c.default.is_none() && !bound && !generated {
                return Err(self.invalid(
                    rule,
                    "columns",
                    format!(
                        "column {} of {} is NOT NULL and has no default: map it",
                        c.name, info.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The natural key's column names (the rule's `key`, else the primary key) and the
    /// indices into `cols` of its columns other than `source_path`.
    fn natural_key(
        &self,
        rule: &Rule,
        info: &TableInfo,
        cols: &[PlanCol],
    ) -> Result<(Vec<String>, Vec<usize>), ImportError> {
        let key_cols: Vec<String> = match &rule.key {
            Some(k) => k.clone(),
            None if info.rowid_alias().is_some() => {
                return Err(self.invalid(rule, "key", format!(
                    "the primary key of {} ({}) is generated; name the natural key, e.g. [\"source_path\", \"source_record\"]",
                    info.name,
                    info.pk.join(", ")
                )));
            }
            None if info.pk.is_empty() => {
                return Err(self.invalid(
                    rule,
                    "key",
                    format!("{} has no primary key; name the natural key", info.name),
                ));
            }
            None => info.pk.clone(),
        };
        if !info.is_unique_set(&key_cols) {
            return Err(self.invalid(
                rule,
                "key",
                format!(
                    "{key_cols:?} is not the primary key or a UNIQUE column set of {}",
                    info.name
                ),
            ));
        }
        let mut key = Vec::new();
        for k in &key_cols {
            match cols.iter().position(|c| c.name == *k) {
                Some(i) if k != "source_path" => key.push(i),
                Some(_) => {}
                None => {
                    return Err(self.invalid(rule, "key", format!("key column {k} is not mapped")))
                }
            }
        }
        Ok((key_cols, key))
    }

    /// Foreign keys of mapped columns: their parents get placeholder rows when missing, so
    /// each parent must be creatable from its key alone.
    fn parents(
        &mut self,
        rule: &Rule,
        info: &TableInfo,
        cols: &[PlanCol],
    ) -> Result<Vec<ParentRef>, ImportError> {
        let mut parents = Vec::new();
        for fk in &info.fks {
            let Some(col) = cols.iter().position(|c| c.name == fk.from) else {
                continue;
            };
            if !matches!(cols[col].fill, Fill::Mapped(_)) {
                continue;
            }
            let Some(p) = self.table(&fk.table) else {
                return Err(self.invalid(
                    rule,
                    &format!("columns.{}", fk.from),
                    format!("references table {}, which does not exist", fk.table),
                ));
            };
            if self.tables[p].placeholder_col.as_deref() != Some(fk.to.as_str()) {
                return Err(self.invalid(rule, &format!("columns.{}", fk.from), format!(
                    "references {}({}); ferry can only fill a foreign key whose parent row it can create from the key alone",
                    fk.table, fk.to
                )));
            }
            parents.push(ParentRef { col, table: p });
        }
        Ok(parents)
    }
}

/// The plain insert of one row and its upsert on the natural key. A row that another file
/// (or something other than ferry) wrote is never overwritten: the upsert then changes
/// fewer rows than it was given, which the writer notices.
fn statements(
    info: &TableInfo,
    cols: &[PlanCol],
    key_cols: &[String],
    owner_col: Option<&str>,
) -> (String, String) {
    let names: Vec<String> = cols.iter().map(|c| quote(&c.name)).collect();
    let values: Vec<String> = cols
        .iter()
        .map(|c| match &c.fill {
            Fill::Mapped(m) if m.defaulted => {
                let default = info
                    .column(&c.name)
                    .and_then(|i| i.default.clone())
                    .unwrap_or_else(|| "NULL".into());
                format!("COALESCE(?, {default})")
            }
            _ => "?".to_owned(),
        })
        .collect();
    let key_names: BTreeSet<&str> = key_cols.iter().map(String::as_str).collect();
    let sets: Vec<String> = cols
        .iter()
        .filter(|c| !key_names.contains(c.name.as_str()))
        .map(|c| format!("{0} = excluded.{0}", quote(&c.name)))
        .collect();
    let conflict = key_cols
        .iter()
        .map(|k| quote(k))
        .collect::<Vec<_>>()
        .join(", ");
    let tq = quote(&info.name);
    let insert_sql = format!(
        "INSERT INTO {tq} ({}) VALUES ({})",
        names.join(", "),
        values.join(", ")
    );
    let upsert_suffix = match (owner_col, sets.is_empty()) {
        (_, true) => format!(" ON CONFLICT ({conflict}) DO NOTHING"),
        (Some(owner), false) => format!(
            " ON CONFLICT ({conflict}) DO UPDATE SET {} WHERE {tq}.{o} IS NULL OR {tq}.{o} = excluded.{o}",
            sets.join(", "),
            o = quote(owner)
        ),
        (None, false) => format!(" ON CONFLICT ({conflict}) DO UPDATE SET {}", sets.join(", ")),
    };
    let upsert_sql = format!("{insert_sql}{upsert_suffix}");
    (insert_sql, upsert_sql)
}
