//! PostgreSQL DDL for a derived schema: tables first (types, NOT NULL, identity, defaults),
//! then, after the data, the steps that build keys, indexes, CHECKs, full-text indexes,
//! sequences, foreign keys (`NOT VALID`, then `VALIDATE`) and views. Also the steps that
//! put back what a managed copy took off (foreign keys) and set its sequences.
//!
//! Every post-data step runs in its own transaction together with its row in
//! `ferry_transfer_steps`, so a resumed run skips what is done. A step PostgreSQL refuses
//! is recorded as failed with PostgreSQL's reason and reported: it never fails the schema.

use std::collections::HashMap;

use ferry_core::plan::{Rename, TableKind, TablePlan, TargetType, TransferPlan};

use crate::bookkeeping::{self, DeferredConstraint};
use crate::ident::{literal, qualified, quote, NameAllocator};
use crate::schema::{SourceSchema, SourceTable};
use crate::sqltext::{self, Names};

/// One post-data step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Unique id, recorded in `ferry_transfer_steps`.
    pub id: String,
    /// Steps of a lower stage finish before a higher stage starts; steps of one stage run
    /// in parallel (views run one at a time, in rounds).
    pub stage: u8,
    /// What the step does, for reports.
    pub what: String,
    /// Statements run in one transaction. Empty when the step cannot be expressed: it is
    /// then recorded as failed with `problem`.
    pub sql: Vec<String>,
    pub problem: Option<String>,
    /// A failure means "left NOT VALID" rather than "missing".
    pub validation: bool,
    /// The (source) table the step works on, and its rows: steps of one stage are spread
    /// over tables, biggest first, so parallel steps rarely wait for each other's locks.
    pub table: String,
    pub weight: u64,
    /// Foreign-key steps: the tables whose copy and keys must be done first.
    pub deps: Vec<String>,
}

pub const STAGE_KEYS: u8 = 1;
pub const STAGE_FOREIGN: u8 = 2;
pub const STAGE_VALIDATE: u8 = 3;
pub const STAGE_VIEWS: u8 = 4;

/// Names of everything ferry creates in a derived schema beyond tables and columns.
#[derive(Debug, Clone, Default)]
pub struct DerivedNames {
    pub sequences: HashMap<String, String>,
    pub renames: Vec<Rename>,
    alloc: NameAllocator,
}

impl DerivedNames {
    pub fn new(plan: &TransferPlan, source: &SourceSchema) -> Self {
        let mut alloc = NameAllocator::new();
        for t in bookkeeping::TABLES {
            alloc.reserve(t);
        }
        for t in &plan.tables {
            alloc.reserve(&t.target);
        }
        let mut names = Self {
            alloc,
            ..Default::default()
        };
        // SQLite's own index names first, so generated names never displace them.
        for t in &plan.tables {
            if let Some(src) = source.table(&t.source) {
                for ix in src.indexes.iter().filter(|i| i.origin == "c") {
                    let to = names.alloc.allocate(&ix.name);
                    if to != ix.name {
                        names.renames.push(Rename {
                            kind: "index".into(),
                            table: t.source.clone(),
                            from: ix.name.clone(),
                            to,
                        });
                    }
                }
            }
        }
        for t in &plan.tables {
            if let Some(alias) = source.table(&t.source).and_then(|s| s.rowid_alias.clone()) {
                if let Some(col) = t.columns.iter().find(|c| c.source == alias) {
                    let seq = names
                        .alloc
                        .allocate(&format!("{}_{}_seq", t.target, col.target));
                    names.sequences.insert(t.source.clone(), seq);
                }
            }
        }
        names
    }

    /// A fresh name for something generated (constraint, index), deterministic in call order.
    fn generated(&mut self, wanted: &str) -> String {
        self.alloc.allocate(wanted)
    }

    /// The name of a SQLite index (as allocated in `new`).
    fn index(&self, name: &str) -> String {
        self.renames
            .iter()
            .find(|r| r.kind == "index" && r.from == name)
            .map_or_else(|| name.to_owned(), |r| r.to.clone())
    }
}

fn type_sql(t: &TargetType) -> &'static str {
    t.sql()
}

/// `CREATE TABLE` statements, and the defaults to try (each `(what, statement)`), and the
/// defaults that could not be translated.
pub fn create_tables(
    plan: &TransferPlan,
    source: &SourceSchema,
    names: &DerivedNames,
) -> (Vec<String>, Vec<(String, String)>, Vec<String>) {
    let schema = &plan.target_schema;
    let mut creates = Vec::new();
    let mut defaults = Vec::new();
    let mut warnings = Vec::new();
    for t in &plan.tables {
        let src = source.table(&t.source);
        let alias = src.and_then(|s| s.rowid_alias.clone());
        let mut cols = Vec::new();
        for c in &t.columns {
            let mut def = format!("{} {}", quote(&c.target), type_sql(&c.target_type));
            let is_identity =
                alias.as_deref() == Some(c.source.as_str()) && c.target_type == TargetType::Bigint;
            if is_identity {
                if let Some(seq) = names.sequences.get(&t.source) {
                    def.push_str(&format!(
                        " GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME {})",
                        qualified(schema, seq)
                    ));
                }
            }
            if c.not_null {
                def.push_str(" NOT NULL");
            }
            cols.push(def);
            let Some(default) = src
                .and_then(|s| s.columns.iter().find(|sc| sc.name == c.source))
                .and_then(|sc| sc.default.clone())
            else {
                continue;
            };
            if is_identity {
                continue;
            }
            match sqltext::translate_default(&default, &c.target_type) {
                Ok(Some(expr)) => defaults.push((
                    format!("default {default} of {:?}.{:?}", t.source, c.source),
                    format!(
                        "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {expr}",
                        qualified(schema, &t.target),
                        quote(&c.target)
                    ),
                )),
                Ok(None) => {}
                Err(why) => warnings.push(format!(
                    "table {:?} column {:?}: {why}; the default is dropped",
                    t.source, c.source
                )),
            }
        }
        creates.push(format!(
            "CREATE TABLE {} ({})",
            qualified(schema, &t.target),
            cols.join(", ")
        ));
    }
    (creates, defaults, warnings)
}

fn column_target<'a>(t: &'a TablePlan, source: &str) -> Option<&'a str> {
    t.columns
        .iter()
        .find(|c| c.source == source)
        .or_else(|| {
            t.columns
                .iter()
                .find(|c| c.source.eq_ignore_ascii_case(source))
        })
        .map(|c| c.target.as_str())
}

fn table_names(t: &TablePlan) -> Names {
    let mut names = Names::default();
    for c in &t.columns {
        names.column(&c.source, &c.target, Some(c.target_type.clone()));
    }
    names
}

/// Every post-data step of a derived schema, in a deterministic order.
pub fn derived_steps(
    plan: &TransferPlan,
    source: &SourceSchema,
    names: &mut DerivedNames,
) -> Vec<Step> {
    let schema = &plan.target_schema;
    let mut steps = Vec::new();
    for t in &plan.tables {
        let Some(src) = source.table(&t.source) else {
            continue;
        };
        let first = steps.len();
        let table = qualified(schema, &t.target);
        let cols = |list: &[String]| -> Option<String> {
            list.iter()
                .map(|c| column_target(t, c).map(quote))
                .collect::<Option<Vec<_>>>()
                .map(|v| v.join(", "))
        };
        // Primary key (or UNIQUE when SQLite let NULL into a key column).
        if !t.primary_key.is_empty() {
            let nullable = t.primary_key.iter().any(|k| {
                t.columns
                    .iter()
                    .any(|c| &c.source == k && c.profile.nulls > 0)
            });
            let name = names.generated(&format!("{}_pkey", t.target));
            let (kind, what) = if nullable {
                (
                    "UNIQUE",
                    format!(
                        "primary key of {:?} (as UNIQUE: SQLite let NULL into a key column)",
                        t.source
                    ),
                )
            } else {
                ("PRIMARY KEY", format!("primary key of {:?}", t.source))
            };
            match cols(&t.primary_key) {
                Some(c) => steps.push(step(
                    format!("pk:{}", t.source),
                    STAGE_KEYS,
                    what,
                    vec![format!(
                        "ALTER TABLE {table} ADD CONSTRAINT {} {kind} ({c})",
                        quote(&name)
                    )],
                )),
                None => steps.push(failed(
                    format!("pk:{}", t.source),
                    STAGE_KEYS,
                    what,
                    "a key column is not in the plan",
                )),
            }
        }
        for ix in &src.indexes {
            match ix.origin.as_str() {
                "pk" => {}
                "u" => {
                    let list: Vec<String> =
                        ix.columns.iter().filter_map(|c| c.name.clone()).collect();
                    let name = names.generated(&format!("{}_{}_key", t.target, list.join("_")));
                    let what = format!("UNIQUE ({}) of {:?}", list.join(", "), t.source);
                    match cols(&list) {
                        Some(c) if list.len() == ix.columns.len() => steps.push(step(
                            format!("unique:{}:{}", t.source, ix.name),
                            STAGE_KEYS,
                            what,
                            vec![format!(
                                "ALTER TABLE {table} ADD CONSTRAINT {} UNIQUE ({c})",
                                quote(&name)
                            )],
                        )),
                        _ => steps.push(failed(
                            format!("unique:{}:{}", t.source, ix.name),
                            STAGE_KEYS,
                            what,
                            "a column is not in the plan",
                        )),
                    }
                }
                _ => steps.push(index_step(t, src, ix, &names.index(&ix.name), schema)),
            }
        }
        let tnames = table_names(t);
        for (n, check) in src.checks.iter().enumerate() {
            let name = names.generated(&match &check.name {
                Some(n) => n.clone(),
                None => format!("{}_check{}", t.target, n + 1),
            });
            let what = format!("CHECK ({}) of {:?}", check.text, t.source);
            let id = format!("check:{}:{}", t.source, n + 1);
            match sqltext::translate(&check.expr, &tnames) {
                Ok(expr) => {
                    steps.push(step(
                        id.clone(),
                        STAGE_KEYS,
                        what.clone(),
                        vec![format!(
                            "ALTER TABLE {table} ADD CONSTRAINT {} CHECK ({expr}) NOT VALID",
                            quote(&name)
                        )],
                    ));
                    let mut v = step(
                        format!("{id}:validate"),
                        STAGE_VALIDATE,
                        what,
                        vec![format!(
                            "ALTER TABLE {table} VALIDATE CONSTRAINT {}",
                            quote(&name)
                        )],
                    );
                    v.validation = true;
                    steps.push(v);
                }
                Err(why) => steps.push(failed(
                    id,
                    STAGE_KEYS,
                    what,
                    &format!("not translated: {why}"),
                )),
            }
        }
        if t.kind == TableKind::FullText {
            let mut col_alloc = NameAllocator::new();
            for c in &t.columns {
                col_alloc.reserve(&c.target);
            }
            let vector = col_alloc.allocate("search_vector");
            let parts: Vec<String> = t
                .columns
                .iter()
                .filter(|c| c.source != "rowid")
                .map(|c| {
                    let cast = if c.target_type == TargetType::Text {
                        String::new()
                    } else {
                        "::text".into()
                    };
                    format!("coalesce({}{cast}, '')", quote(&c.target))
                })
                .collect();
            let body = if parts.is_empty() {
                "''".to_owned()
            } else {
                parts.join(" || ' ' || ")
            };
            let index = names.generated(&format!("{}_{vector}_idx", t.target));
            steps.push(step(
                format!("fts:{}", t.source),
                STAGE_KEYS,
                format!("full-text index of {:?} (tsvector column {vector:?} + GIN)", t.source),
                vec![
                    format!(
                        "ALTER TABLE {table} ADD COLUMN {} tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, {body})) STORED",
                        quote(&vector)
                    ),
                    format!("CREATE INDEX {} ON {table} USING gin ({})", quote(&index), quote(&vector)),
                ],
            ));
        }
        if let (Some(alias), Some(seq)) = (&src.rowid_alias, names.sequences.get(&t.source)) {
            if let Some(col) = column_target(t, alias) {
                let floor = src_autoincrement_floor(src);
                steps.push(step(
                    format!("seq:{}", t.source),
                    STAGE_KEYS,
                    format!(
                        "sequence of {:?}.{alias:?} set past the highest key",
                        t.source
                    ),
                    vec![setval_sql(&qualified(schema, seq), &table, col, floor)],
                ));
            }
        }
        mark(&mut steps[first..], t);
    }
    // Foreign keys, after every key exists.
    for t in &plan.tables {
        let Some(src) = source.table(&t.source) else {
            continue;
        };
        let first = steps.len();
        for (n, fk) in src.foreign_keys.iter().enumerate() {
            let id = format!("fk:{}:{}", t.source, n + 1);
            let what = format!(
                "foreign key ({}) of {:?} to {:?}",
                fk.from.join(", "),
                t.source,
                fk.parent
            );
            let parent = plan
                .tables
                .iter()
                .find(|p| p.source == fk.parent)
                .or_else(|| {
                    plan.tables
                        .iter()
                        .find(|p| p.source.eq_ignore_ascii_case(&fk.parent))
                });
            let Some(parent) = parent else {
                steps.push(failed(
                    id,
                    STAGE_FOREIGN,
                    what,
                    "the parent table is not in the SQLite file",
                ));
                continue;
            };
            let to: Vec<String> = if fk.to.iter().all(Option::is_none) {
                parent.primary_key.clone()
            } else {
                fk.to
                    .iter()
                    .zip(&fk.from)
                    .map(|(t, f)| t.clone().unwrap_or_else(|| f.clone()))
                    .collect()
            };
            let from: Option<Vec<&str>> = fk.from.iter().map(|c| column_target(t, c)).collect();
            let to_t: Option<Vec<&str>> = to.iter().map(|c| column_target(parent, c)).collect();
            let (Some(from), Some(to_t)) = (from, to_t) else {
                steps.push(failed(
                    id,
                    STAGE_FOREIGN,
                    what,
                    "a column is not in the plan",
                ));
                continue;
            };
            if from.len() != to_t.len() {
                steps.push(failed(
                    id,
                    STAGE_FOREIGN,
                    what,
                    "the parent has no primary key to refer to",
                ));
                continue;
            }
            let name = names.generated(&format!("{}_{}_fkey", t.target, from.join("_")));
            let actions = format!(
                "{}{}",
                action("UPDATE", &fk.on_update),
                action("DELETE", &fk.on_delete)
            );
            let mut add = step(id.clone(), STAGE_FOREIGN, what.clone(), vec![format!(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){actions} NOT VALID",
                qualified(schema, &t.target),
                quote(&name),
                from.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
                qualified(schema, &parent.target),
                to_t.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            )]);
            add.deps = vec![t.source.clone(), parent.source.clone()];
            steps.push(add);
            let mut v = step(
                format!("{id}:validate"),
                STAGE_VALIDATE,
                what,
                vec![format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                    qualified(schema, &t.target),
                    quote(&name)
                )],
            );
            v.validation = true;
            steps.push(v);
        }
        mark(&mut steps[first..], t);
    }
    let mut all = Names::default();
    for t in &plan.tables {
        all.table(&t.source, &t.target);
        for c in &t.columns {
            if !all.columns.contains_key(&c.source.to_lowercase()) {
                all.column(&c.source, &c.target, Some(c.target_type.clone()));
            }
        }
    }
    for v in &source.views {
        let id = format!("view:{}", v.name);
        let what = format!("view {:?}", v.name);
        let Some((columns, body)) = sqltext::parse_create_view(&v.sql) else {
            steps.push(failed(
                id,
                STAGE_VIEWS,
                what,
                "its CREATE VIEW could not be read",
            ));
            continue;
        };
        let name = names.generated(&v.name);
        match sqltext::translate(&body, &all) {
            Ok(select) => {
                let cols = columns
                    .map(|c| {
                        format!(
                            " ({})",
                            c.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ")
                        )
                    })
                    .unwrap_or_default();
                steps.push(step(
                    id,
                    STAGE_VIEWS,
                    what,
                    vec![
                        format!("SET LOCAL search_path TO {}", quote(schema)),
                        format!("CREATE VIEW {}{cols} AS {select}", qualified(schema, &name)),
                    ],
                ));
            }
            Err(why) => steps.push(failed(
                id,
                STAGE_VIEWS,
                what,
                &format!("not translated: {why}"),
            )),
        }
    }
    steps
}

fn mark(steps: &mut [Step], t: &TablePlan) {
    for s in steps {
        s.table = t.source.clone();
        s.weight = t.source_rows;
    }
}

/// Steps in the order to run them: by stage, and within a stage one step per table in
/// turn, biggest tables first.
pub fn schedule(mut steps: Vec<Step>) -> Vec<Step> {
    let mut tables: Vec<(String, u64)> =
        steps.iter().map(|s| (s.table.clone(), s.weight)).collect();
    tables.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    tables.dedup();
    let mut out = Vec::with_capacity(steps.len());
    let mut stages: Vec<u8> = steps.iter().map(|s| s.stage).collect();
    stages.sort_unstable();
    stages.dedup();
    for stage in stages {
        let mut queues: Vec<std::collections::VecDeque<Step>> = tables
            .iter()
            .map(|(name, _)| {
                let (mine, rest): (Vec<Step>, Vec<Step>) = std::mem::take(&mut steps)
                    .into_iter()
                    .partition(|s| s.stage == stage && &s.table == name);
                steps = rest;
                mine.into()
            })
            .collect();
        while queues.iter().any(|q| !q.is_empty()) {
            for q in &mut queues {
                if let Some(s) = q.pop_front() {
                    out.push(s);
                }
            }
        }
    }
    out
}

fn src_autoincrement_floor(src: &SourceTable) -> Option<i64> {
    src.sqlite_sequence
}

/// `setval` past the highest key (and past SQLite's AUTOINCREMENT mark when given).
pub fn setval_sql(sequence: &str, table: &str, column: &str, floor: Option<i64>) -> String {
    let max = format!("(SELECT max({}) FROM {table})", quote(column));
    let high = match floor {
        Some(f) => format!("GREATEST({max}, {f})"),
        None => max,
    };
    format!(
        "SELECT setval({}::regclass, GREATEST(COALESCE({high}, 1), 1), {high} IS NOT NULL)",
        literal(sequence)
    )
}

fn action(on: &str, what: &str) -> String {
    match what.to_ascii_uppercase().as_str() {
        "CASCADE" => format!(" ON {on} CASCADE"),
        "SET NULL" => format!(" ON {on} SET NULL"),
        "SET DEFAULT" => format!(" ON {on} SET DEFAULT"),
        "RESTRICT" => format!(" ON {on} RESTRICT"),
        _ => String::new(),
    }
}

fn step(id: String, stage: u8, what: String, sql: Vec<String>) -> Step {
    Step {
        id,
        stage,
        what,
        sql,
        problem: None,
        validation: false,
        table: String::new(),
        weight: 0,
        deps: Vec::new(),
    }
}

fn failed(id: String, stage: u8, what: String, problem: &str) -> Step {
    Step {
        id,
        stage,
        what,
        sql: Vec::new(),
        problem: Some(problem.to_owned()),
        validation: false,
        table: String::new(),
        weight: 0,
        deps: Vec::new(),
    }
}

fn index_step(
    t: &TablePlan,
    src: &SourceTable,
    ix: &crate::schema::SourceIndex,
    name: &str,
    schema: &str,
) -> Step {
    let id = format!("index:{}", ix.name);
    let what = format!("index {:?} of {:?}", ix.name, src.name);
    let unique = if ix.unique { "UNIQUE " } else { "" };
    let table = qualified(schema, &t.target);
    if ix.is_simple() {
        let collations: Vec<&str> = ix
            .columns
            .iter()
            .map(|c| c.collation.as_str())
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("BINARY"))
            .collect();
        let what = if collations.is_empty() {
            what
        } else {
            format!(
                "{what} (collation {} not carried over: PostgreSQL compares byte for byte)",
                collations.join(", ")
            )
        };
        let mut terms = Vec::new();
        for c in &ix.columns {
            let Some(target) = c.name.as_deref().and_then(|n| column_target(t, n)) else {
                return failed(id, STAGE_KEYS, what, "a column is not in the plan");
            };
            terms.push(format!(
                "{}{}",
                quote(target),
                if c.desc { " DESC" } else { "" }
            ));
        }
        return step(
            id,
            STAGE_KEYS,
            what,
            vec![format!(
                "CREATE {unique}INDEX {} ON {table} ({})",
                quote(name),
                terms.join(", ")
            )],
        );
    }
    let Some(parts) = ix.sql.as_deref().and_then(sqltext::parse_create_index) else {
        return failed(id, STAGE_KEYS, what, "its CREATE INDEX could not be read");
    };
    let names = table_names(t);
    let mut terms = Vec::new();
    for term in &parts.terms {
        match sqltext::translate_index_term(term, &names) {
            Ok((sql, _collation)) => terms.push(sql),
            Err(why) => return failed(id, STAGE_KEYS, what, &format!("not translated: {why}")),
        }
    }
    let predicate = match &parts.predicate {
        Some(p) => match sqltext::translate(p, &names) {
            Ok(w) => format!(" WHERE {w}"),
            Err(why) => return failed(id, STAGE_KEYS, what, &format!("not translated: {why}")),
        },
        None => String::new(),
    };
    step(
        id,
        STAGE_KEYS,
        what,
        vec![format!(
            "CREATE {unique}INDEX {} ON {table} ({}){predicate}",
            quote(name),
            terms.join(", ")
        )],
    )
}

/// Steps that finish a managed copy: the foreign keys taken off, and the sequences.
pub fn managed_steps(
    plan: &TransferPlan,
    deferred: &[DeferredConstraint],
    sequences: &[(String, String, String)],
) -> Vec<Step> {
    let schema = &plan.target_schema;
    let source_of = |target: &str| plan.tables.iter().find(|t| t.target == target);
    let everything: Vec<String> = plan.tables.iter().map(|t| t.source.clone()).collect();
    let mut steps = Vec::new();
    for (table, column, sequence) in sequences {
        let t = qualified(schema, table);
        let mut s = step(
            format!("seq:{table}:{column}"),
            STAGE_KEYS,
            format!("sequence of {table:?}.{column:?} set past the highest key"),
            vec![setval_sql(sequence, &t, column, None)],
        );
        if let Some(p) = source_of(table) {
            mark(std::slice::from_mut(&mut s), p);
        }
        steps.push(s);
    }
    for c in deferred {
        let t = qualified(schema, &c.table);
        let id = format!("fk:{}:{}", c.table, c.name);
        let what = format!("foreign key {:?} of {:?}", c.name, c.table);
        let mut add = step(
            id.clone(),
            STAGE_FOREIGN,
            what.clone(),
            vec![format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} {} NOT VALID",
                quote(&c.name),
                c.definition
            )],
        );
        let mut v = step(
            format!("{id}:validate"),
            STAGE_VALIDATE,
            what,
            vec![format!(
                "ALTER TABLE {t} VALIDATE CONSTRAINT {}",
                quote(&c.name)
            )],
        );
        v.validation = true;
        if let Some(p) = source_of(&c.table) {
            mark(std::slice::from_mut(&mut add), p);
            mark(std::slice::from_mut(&mut v), p);
        }
        // The referenced table is named only inside the definition: wait for every table.
        add.deps.clone_from(&everything);
        steps.push(add);
        steps.push(v);
    }
    steps
}
