//! PostgreSQL DDL for a derived schema: tables first (types, NOT NULL, identity, generated
//! columns, defaults), then, after the data, the steps that build keys, indexes, CHECKs,
//! full-text indexes, sequences, foreign keys (`NOT VALID`, then `VALIDATE`), views and
//! triggers. Also the steps that put back what a managed copy took off (foreign keys) and
//! set its sequences.
//!
//! Every post-data step runs in its own transaction together with its row in
//! `ferry_transfer_steps`, so a resumed run skips what is done. A step PostgreSQL refuses,
//! or one whose SQLite text cannot be translated, is recorded as failed with the reason and
//! its object's kind and SQLite text: the report lists it as not carried over. It never
//! fails the schema.
//!
//! - [`tables`]: the `CREATE TABLE`s and what is tried while creating them;
//! - [`keys`]: per-table keys, indexes, CHECKs, full-text and sequences;
//! - [`foreign`]: foreign keys;
//! - [`objects`]: views and triggers;
//! - [`managed`]: finishing a managed copy.

mod foreign;
mod keys;
mod managed;
mod objects;
mod tables;

use std::collections::HashMap;

use ferry_core::plan::{ObjectKind, Rename, TablePlan, TransferPlan};
use ferry_core::sql::NameAllocator;

use crate::bookkeeping;
use crate::schema::SourceSchema;
use crate::sql::{Catalog, TableInfo};

pub use managed::managed_steps;
pub use tables::create_tables;

/// One post-data step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Unique id, recorded in `ferry_transfer_steps`; also the id of its object in the
    /// report (a `…:validate` step reports as its object).
    pub id: String,
    /// Steps of a lower stage finish before a higher stage starts; steps of one stage run
    /// in parallel (views and triggers run one at a time, in rounds).
    pub stage: u8,
    /// What the step does, for logs.
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
    /// What the step carries over: its kind, SQLite name and SQLite text.
    pub kind: ObjectKind,
    pub name: String,
    pub text: String,
}

impl Step {
    /// A step that runs `sql`.
    pub fn new(id: String, stage: u8, kind: ObjectKind, what: String, sql: Vec<String>) -> Self {
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
            kind,
            name: String::new(),
            text: String::new(),
        }
    }

    /// A step that cannot be expressed: recorded as failed with `problem`.
    pub fn failed(id: String, stage: u8, kind: ObjectKind, what: String, problem: &str) -> Self {
        let mut s = Step::new(id, stage, kind, what, Vec::new());
        s.problem = Some(problem.to_owned());
        s
    }

    /// Names the SQLite object carried over.
    pub fn object(mut self, name: &str, text: &str) -> Self {
        self.name = name.to_owned();
        self.text = text.to_owned();
        self
    }

    /// The step that validates a constraint this step added `NOT VALID`.
    pub fn validating(&self, sql: String) -> Step {
        let mut v = self.clone();
        v.id = format!("{}:validate", self.id);
        v.stage = STAGE_VALIDATE;
        v.sql = vec![sql];
        v.validation = true;
        v.deps = Vec::new();
        v
    }

    /// Its row in `ferry_transfer_steps` for an outcome.
    pub fn row(&self, outcome: &str, detail: &str) -> bookkeeping::StepRow {
        bookkeeping::StepRow {
            step: self.id.clone(),
            outcome: outcome.to_owned(),
            detail: detail.to_owned(),
            kind: Some(self.kind),
            table: self.table.clone(),
            name: self.name.clone(),
            text: self.text.clone(),
        }
    }
}

pub const STAGE_KEYS: u8 = 1;
pub const STAGE_FOREIGN: u8 = 2;
pub const STAGE_VALIDATE: u8 = 3;
pub const STAGE_VIEWS: u8 = 4;
pub const STAGE_TRIGGERS: u8 = 5;

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
        alloc.reserve(ferry_core::plan::MIXED_DOMAIN);
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

    /// A fresh name for something generated (constraint, index, view, function),
    /// deterministic in call order.
    pub(crate) fn generated(&mut self, wanted: &str) -> String {
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

/// Every post-data step of a derived schema, in a deterministic order.
pub fn derived_steps(
    plan: &TransferPlan,
    source: &SourceSchema,
    names: &mut DerivedNames,
) -> Vec<Step> {
    let mut cat = catalog(plan, source);
    let mut steps = Vec::new();
    for t in &plan.tables {
        let Some(src) = source.table(&t.source) else {
            continue;
        };
        let first = steps.len();
        keys::table_steps(plan, t, src, &cat, names, &mut steps);
        mark(&mut steps[first..], t);
    }
    for t in &plan.tables {
        let Some(src) = source.table(&t.source) else {
            continue;
        };
        let first = steps.len();
        foreign::steps(plan, t, src, names, &mut steps);
        mark(&mut steps[first..], t);
    }
    objects::view_steps(plan, source, &mut cat, names, &mut steps);
    objects::trigger_steps(plan, source, &cat, names, &mut steps);
    steps
}

/// What the translation of CHECKs, views and triggers may name: every table of the plan.
pub fn catalog(plan: &TransferPlan, source: &SourceSchema) -> Catalog {
    Catalog {
        tables: plan
            .tables
            .iter()
            .map(|t| {
                let alias = source.table(&t.source).and_then(|s| s.rowid_alias.clone());
                TableInfo::of(t, alias.as_deref())
            })
            .collect(),
    }
}

fn mark(steps: &mut [Step], t: &TablePlan) {
    for s in steps {
        s.table = t.source.clone();
        s.weight = t.source_rows;
    }
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

/// `setval` past the highest key (and past SQLite's AUTOINCREMENT mark when given).
pub fn setval_sql(sequence: &str, table: &str, column: &str, floor: Option<i64>) -> String {
    let max = format!("(SELECT max({}) FROM {table})", crate::ident::quote(column));
    let high = match floor {
        Some(f) => format!("GREATEST({max}, {f})"),
        None => max,
    };
    format!(
        "SELECT setval({}::regclass, GREATEST(COALESCE({high}, 1), 1), {high} IS NOT NULL)",
        crate::ident::literal(sequence)
    )
}
