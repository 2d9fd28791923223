//! The SQLite schema as a transfer sees it: tables (ordinary, WITHOUT ROWID, full-text),
//! their columns, keys, indexes, foreign keys and CHECKs, plus views and triggers, and what
//! is left out and why.

use std::path::Path;

use ferry_core::plan::TableKind;

use crate::error::Result;
use ferry_core::sqlite_text::{self, CheckDef, GeneratedDef, Token};

use crate::sqlite::{IndexColumn, MasterEntry, SqliteSource};

/// Source tables whose names start with this are ferry's own bookkeeping: never copied.
pub const FERRY_PREFIX: &str = "ferry_";

#[derive(Debug, Clone, Default)]
pub struct SourceSchema {
    pub tables: Vec<SourceTable>,
    pub views: Vec<SourceView>,
    pub triggers: Vec<SourceTrigger>,
    /// Tables whose rows are not copied: `(name, CREATE statement, why)`.
    pub skipped: Vec<(String, String, String)>,
    /// What is left out on purpose and loses nothing, in words.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SourceTable {
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<SourceColumn>,
    /// Column names of the primary key in key order (`["rowid"]` for a full-text table).
    pub primary_key: Vec<String>,
    /// The `INTEGER PRIMARY KEY` column that is the rowid, if any.
    pub rowid_alias: Option<String>,
    /// The `sqlite_sequence` mark of an AUTOINCREMENT table (ids are never reused below it).
    pub sqlite_sequence: Option<i64>,
    pub indexes: Vec<SourceIndex>,
    pub foreign_keys: Vec<SourceForeignKey>,
    pub checks: Vec<CheckDef>,
    /// `(column, collation)` for non-binary collations, which PostgreSQL does not share.
    pub collations: Vec<(String, String)>,
    /// Generated columns and their expressions.
    pub generated: Vec<GeneratedDef>,
}

#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub name: String,
    pub declared: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// The synthetic `rowid` column of a full-text table.
    pub synthetic_rowid: bool,
}

#[derive(Debug, Clone)]
pub struct SourceIndex {
    pub name: String,
    pub unique: bool,
    /// `c` CREATE INDEX, `u` UNIQUE constraint, `pk` PRIMARY KEY.
    pub origin: String,
    pub partial: bool,
    pub columns: Vec<IndexColumn>,
    pub sql: Option<String>,
}

impl SourceIndex {
    /// Plain column keys with default collation and no WHERE: expressible from the pragmas.
    pub fn is_simple(&self) -> bool {
        !self.partial && self.columns.iter().all(|c| c.name.is_some() && c.cid >= 0)
    }
}

#[derive(Debug, Clone)]
pub struct SourceForeignKey {
    pub parent: String,
    pub from: Vec<String>,
    /// Parent columns; `None` means the parent's primary key.
    pub to: Vec<Option<String>>,
    pub on_update: String,
    pub on_delete: String,
}

#[derive(Debug, Clone)]
pub struct SourceView {
    pub name: String,
    pub sql: String,
}

#[derive(Debug, Clone)]
pub struct SourceTrigger {
    pub name: String,
    pub table: String,
    pub sql: String,
}

const FTS_MODULES: &[&str] = &["fts3", "fts4", "fts5"];

impl SourceSchema {
    /// Reads the schema of a SQLite file.
    pub fn read(path: &Path) -> Result<Self> {
        let db = SqliteSource::open(path)?;
        Self::read_from(&db)
    }

    pub fn read_from(db: &SqliteSource) -> Result<Self> {
        let master = db.master()?;
        let sql_of = |kind: &str, name: &str| {
            master
                .iter()
                .find(|m| m.kind == kind && m.name == name)
                .and_then(|m| m.sql.clone())
        };
        let mut out = SourceSchema::default();
        let mut shadows = Vec::new();
        for entry in db.table_list()? {
            let name = entry.name;
            if name.starts_with("sqlite_") {
                continue;
            }
            if entry.kind == "view" {
                continue;
            }
            if entry.kind == "shadow" {
                shadows.push(name);
                continue;
            }
            if name.starts_with(FERRY_PREFIX) {
                out.notes.push(format!("table {name:?} is ferry's own bookkeeping (prefix `{FERRY_PREFIX}`) and is not copied"));
                continue;
            }
            let sql = sql_of("table", &name).unwrap_or_default();
            let kind = if entry.kind == "virtual" {
                let module = virtual_module(&sql);
                if FTS_MODULES.contains(&module.as_str()) {
                    TableKind::FullText
                } else {
                    out.skipped.push((
                        name.clone(),
                        sql.clone(),
                        format!("a virtual table of module {module}: only full-text tables become plain tables, so its rows are not copied"),
                    ));
                    continue;
                }
            } else if entry.without_rowid {
                TableKind::WithoutRowid
            } else {
                TableKind::Table
            };
            out.tables.push(read_table(db, &master, &name, kind, &sql)?);
        }
        if !shadows.is_empty() {
            out.notes.push(format!(
                "full-text shadow tables are not copied (their virtual tables' rows are): {}",
                shadows.join(", ")
            ));
        }
        for m in &master {
            match m.kind.as_str() {
                "view" => out.views.push(SourceView {
                    name: m.name.clone(),
                    sql: m.sql.clone().unwrap_or_default(),
                }),
                "trigger" => out.triggers.push(SourceTrigger {
                    name: m.name.clone(),
                    table: m.table.clone(),
                    sql: m.sql.clone().unwrap_or_default(),
                }),
                _ => {}
            }
        }
        Ok(out)
    }

    pub fn table(&self, name: &str) -> Option<&SourceTable> {
        self.tables.iter().find(|t| t.name == name)
    }
}

fn virtual_module(sql: &str) -> String {
    let tokens = sqlite_text::tokenize(sql);
    tokens
        .iter()
        .position(|t| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("USING")))
        .and_then(|i| match tokens.get(i + 1) {
            Some(Token::Word(w)) => Some(w.to_lowercase()),
            _ => None,
        })
        .unwrap_or_default()
}

fn read_table(
    db: &SqliteSource,
    master: &[MasterEntry],
    name: &str,
    kind: TableKind,
    sql: &str,
) -> Result<SourceTable> {
    let infos = db.columns(name)?;
    let mut columns = Vec::new();
    if kind == TableKind::FullText {
        columns.push(SourceColumn {
            name: "rowid".into(),
            declared: "INTEGER".into(),
            not_null: true,
            default: None,
            synthetic_rowid: true,
        });
    }
    let mut pk: Vec<(u32, String)> = Vec::new();
    for c in &infos {
        // Hidden columns of virtual tables (the table-name column, `rank`) are not data.
        if c.hidden == 1 {
            continue;
        }
        if c.pk > 0 {
            pk.push((c.pk, c.name.clone()));
        }
        columns.push(SourceColumn {
            name: c.name.clone(),
            declared: c.declared.clone(),
            not_null: c.not_null,
            default: c.default.clone(),
            synthetic_rowid: false,
        });
    }
    pk.sort();
    let mut primary_key: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
    if kind == TableKind::FullText {
        primary_key = vec!["rowid".into()];
    }
    let rowid_alias = match (kind, primary_key.as_slice()) {
        (TableKind::Table, [one]) => infos
            .iter()
            .find(|c| &c.name == one)
            .filter(|c| c.declared.trim().eq_ignore_ascii_case("INTEGER"))
            .map(|c| c.name.clone()),
        _ => None,
    };
    let parsed = if kind == TableKind::FullText {
        Default::default()
    } else {
        sqlite_text::parse_create_table(sql)
    };
    let mut indexes = Vec::new();
    let mut foreign_keys: Vec<SourceForeignKey> = Vec::new();
    if kind != TableKind::FullText {
        for ix in db.indexes(name)? {
            let columns = db.index_columns(&ix.name)?;
            indexes.push(SourceIndex {
                sql: master
                    .iter()
                    .find(|m| m.kind == "index" && m.name == ix.name)
                    .and_then(|m| m.sql.clone()),
                name: ix.name,
                unique: ix.unique,
                origin: ix.origin,
                partial: ix.partial,
                columns,
            });
        }
        let mut last_id = None;
        for fk in db.foreign_keys(name)? {
            if last_id != Some(fk.id) {
                foreign_keys.push(SourceForeignKey {
                    parent: fk.table.clone(),
                    from: Vec::new(),
                    to: Vec::new(),
                    on_update: fk.on_update.clone(),
                    on_delete: fk.on_delete.clone(),
                });
                last_id = Some(fk.id);
            }
            if let Some(last) = foreign_keys.last_mut() {
                last.from.push(fk.from);
                last.to.push(fk.to);
            }
        }
    }
    Ok(SourceTable {
        name: name.to_owned(),
        kind,
        columns,
        primary_key,
        rowid_alias,
        sqlite_sequence: if parsed.autoincrement {
            db.autoincrement_seq(name)?
        } else {
            None
        },
        indexes,
        foreign_keys,
        checks: parsed.checks,
        collations: parsed.collations,
        generated: parsed.generated,
    })
}
