//! What a transfer did, for people (summary table, plan listing) and machines (JSON).

use chrono::{DateTime, Utc};
use ferry_core::plan::{NotCarriedOver, PlanMode, Rename, TransferPlan};
use ferry_core::table::Table;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnection;

use crate::bookkeeping;
use crate::error::Result;
use crate::pg::Connector;

/// The report of one run (a resumed run reports the whole transfer, not only its part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    pub ferry_version: String,
    /// The SQLite file.
    pub source: String,
    /// The PostgreSQL URL, password masked.
    pub target: String,
    pub schema: String,
    pub mode: PlanMode,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Wall time of this run.
    pub seconds: f64,
    /// Whether this run continued a transfer that had committed chunks or steps before.
    pub resumed: bool,
    pub tables: Vec<TableReport>,
    /// Every cell that could not be stored; its row is not in PostgreSQL.
    pub rejects: Vec<Reject>,
    /// Cells stored not exactly as written (only when asked, e.g. timestamps truncated to
    /// microseconds); their rows are in PostgreSQL.
    #[serde(default)]
    pub adjusted: Vec<Reject>,
    pub renames: Vec<Rename>,
    /// Every constraint, default, index, view, trigger (or table) of the source that the
    /// target does not have, with its SQLite text, the reason, and a person's
    /// acknowledgement once given. Gate 3 passes only when each one is acknowledged.
    #[serde(default)]
    pub not_carried_over: Vec<NotCarriedOver>,
    /// Things worth knowing that lose nothing (what is not copied and why, collations).
    pub warnings: Vec<String>,
    /// Wall seconds of this run's stages: `start` (schema or preparation), `copy`,
    /// `constraints` (keys, indexes, foreign keys, sequences, views), `verify`.
    #[serde(default)]
    pub stage_seconds: Vec<(String, f64)>,
}

/// One table's totals over every run of the transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    pub source: String,
    pub target: String,
    /// Rows stored in PostgreSQL.
    pub rows: u64,
    /// Bytes of binary COPY data sent.
    pub bytes: u64,
    /// Sum of the chunks' copy times.
    pub seconds: f64,
    /// Rows not stored because a cell could not be.
    pub rejected_rows: u64,
    pub chunks: u64,
}

/// One cell that could not be stored (or was adjusted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Source table.
    pub table: String,
    /// The row: its primary key (`id=3`, `a='x', b=2`) or `rowid=N`.
    pub key: String,
    /// Source column (empty when PostgreSQL refused the row without naming one).
    pub column: String,
    pub reason: String,
    /// The value's bytes in hex, when they explain the reason (invalid UTF-8, NUL).
    pub bytes_hex: Option<String>,
}

impl TransferReport {
    /// Every row arrived unaltered, nothing was adjusted, and everything of the schema was
    /// carried over or acknowledged.
    pub fn is_clean(&self) -> bool {
        self.rejects.is_empty()
            && self.adjusted.is_empty()
            && self.unacknowledged().next().is_none()
    }

    /// What was not carried over and has no acknowledgement yet: gate 3 fails while this is
    /// not empty.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &NotCarriedOver> {
        self.not_carried_over
            .iter()
            .filter(|n| n.acknowledged.is_none())
    }

    /// What was not carried over, as a table: kind, table, SQLite text, reason, and the
    /// acknowledgement when there is one.
    pub fn not_carried_over_table(&self, limit: usize) -> Table {
        let mut t = Table::new(["kind", "table", "SQLite text", "reason", "acknowledged"]);
        for n in self.not_carried_over.iter().take(limit) {
            t.row([
                n.kind.as_str().to_owned(),
                n.table.clone(),
                shorten(&n.text, 70),
                shorten(&n.reason, 90),
                n.acknowledged
                    .as_ref()
                    .map_or_else(|| "no".to_owned(), |a| shorten(&a.reason, 40)),
            ]);
        }
        t
    }

    pub fn rejected_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rejected_rows).sum()
    }

    /// table, rows, bytes, seconds, rejects — and a total line.
    pub fn summary_table(&self) -> Table {
        let mut t = Table::new(["table", "rows", "MB", "seconds", "rejected"]);
        let (mut rows, mut bytes, mut secs, mut rej) = (0, 0, 0.0, 0);
        for r in &self.tables {
            t.row([
                r.source.clone(),
                r.rows.to_string(),
                format!("{:.1}", r.bytes as f64 / 1e6),
                format!("{:.2}", r.seconds),
                r.rejected_rows.to_string(),
            ]);
            rows += r.rows;
            bytes += r.bytes;
            secs += r.seconds;
            rej += r.rejected_rows;
        }
        t.row([
            "(total)".to_owned(),
            rows.to_string(),
            format!("{:.1}", bytes as f64 / 1e6),
            format!("{secs:.2}"),
            rej.to_string(),
        ]);
        t
    }

    /// The first `limit` rejects as a table.
    pub fn rejects_table(&self, limit: usize) -> Table {
        let mut t = Table::new(["table", "key", "column", "reason"]);
        for r in self.rejects.iter().take(limit) {
            t.row([
                r.table.clone(),
                r.key.clone(),
                r.column.clone(),
                r.reason.clone(),
            ]);
        }
        t
    }
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut out: String = one_line.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// What a report is made of besides what the bookkeeping holds.
pub(crate) struct Assembly<'a> {
    pub plan: &'a TransferPlan,
    pub tables: Vec<TableReport>,
    pub renames: Vec<Rename>,
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    pub resumed: bool,
    pub stage_seconds: Vec<(String, f64)>,
}

/// The report of a transfer: this run's figures, and from the bookkeeping every reject,
/// every step that did not carry its object over, and the acknowledgements.
pub(crate) async fn assemble(
    pg: &Connector,
    conn: &mut PgConnection,
    a: Assembly<'_>,
) -> Result<TransferReport> {
    let schema = &pg.schema;
    let mut rejects = Vec::new();
    let mut adjusted = Vec::new();
    for r in bookkeeping::rejects(conn, schema)
        .await
        .map_err(|e| pg.err("reading the rejects", &e))?
    {
        let item = Reject {
            table: r.table,
            key: r.key,
            column: r.column,
            reason: r.reason,
            bytes_hex: r.bytes_hex,
        };
        if r.kind == "adjusted" {
            adjusted.push(item);
        } else {
            rejects.push(item);
        }
    }
    let steps = bookkeeping::steps(conn, schema)
        .await
        .map_err(|e| pg.err("reading the steps", &e))?;
    let acks = bookkeeping::acknowledgements(conn, schema)
        .await
        .map_err(|e| pg.err("reading the acknowledgements", &e))?;
    let not_carried_over = not_carried_over(&steps, &acks);
    Ok(TransferReport {
        ferry_version: ferry_core::FERRY_VERSION.to_owned(),
        source: a.plan.source.clone(),
        target: pg.url.to_string(),
        schema: schema.clone(),
        mode: a.plan.mode,
        started_at: a.started_at,
        finished_at: chrono::Utc::now(),
        seconds: a.seconds,
        resumed: a.resumed,
        tables: a.tables,
        rejects,
        adjusted,
        renames: a.renames,
        not_carried_over,
        warnings: a.plan.warnings.clone(),
        stage_seconds: a.stage_seconds,
    })
}

/// Failed steps as objects not carried over; a step that is only the validation of an
/// object added `NOT VALID` names that object.
pub(crate) fn not_carried_over(
    steps: &[bookkeeping::StepRow],
    acks: &[(String, ferry_core::plan::Acknowledgement)],
) -> Vec<NotCarriedOver> {
    let mut out: Vec<NotCarriedOver> = Vec::new();
    for s in steps {
        if s.outcome == "ok" {
            continue;
        }
        let Some(kind) = s.kind else { continue };
        let id = s
            .step
            .strip_suffix(":validate")
            .unwrap_or(&s.step)
            .to_owned();
        if out.iter().any(|n| n.id == id) {
            continue;
        }
        let reason = if s.outcome == "not_valid" {
            format!("left NOT VALID: {}", s.detail)
        } else {
            s.detail.clone()
        };
        out.push(NotCarriedOver {
            acknowledged: acks
                .iter()
                .find(|(a, _)| *a == id)
                .map(|(_, ack)| ack.clone()),
            id,
            kind,
            table: s.table.clone(),
            name: s.name.clone(),
            text: s.text.clone(),
            reason,
        });
    }
    out.sort_by(|a, b| (a.kind, &a.table, &a.id).cmp(&(b.kind, &b.table, &b.id)));
    out
}

/// The plan for a person: per table, every column's source type, storage profile, target
/// type and reason.
pub fn plan_text(plan: &TransferPlan) -> String {
    let mut out = String::new();
    let mode = match plan.mode {
        PlanMode::Derived => "derived",
        PlanMode::Managed => "managed",
    };
    out.push_str(&format!(
        "plan: {} -> schema {:?} ({mode})\n",
        plan.source, plan.target_schema
    ));
    for t in &plan.tables {
        out.push_str(&format!(
            "\n{:?} -> {:?} ({:?}, {} row{}, key: {})\n",
            t.source,
            t.target,
            t.kind,
            t.source_rows,
            if t.source_rows == 1 { "" } else { "s" },
            if t.primary_key.is_empty() {
                "none (rows matched as a multiset)".to_owned()
            } else {
                t.primary_key.join(", ")
            }
        ));
        let mut table = Table::new(["column", "declared", "holds", "target", "why"]);
        for c in &t.columns {
            let p = &c.profile;
            let mut holds: Vec<String> = Vec::new();
            for (n, name) in [
                (p.integers, "int"),
                (p.reals, "real"),
                (p.texts, "text"),
                (p.blobs, "blob"),
                (p.nulls, "null"),
            ] {
                if n > 0 {
                    holds.push(format!("{n} {name}"));
                }
            }
            let name = if c.source == c.target {
                c.source.clone()
            } else {
                format!("{} -> {}", c.source, c.target)
            };
            let not_null = if c.not_null { " NOT NULL" } else { "" };
            table.row([
                name,
                c.declared_type.clone(),
                holds.join(", "),
                format!("{}{not_null}", c.target_type.shown()),
                c.reason.clone(),
            ]);
        }
        out.push_str(&table.to_string());
    }
    if !plan.renames.is_empty() {
        out.push_str("\nrenamed to fit PostgreSQL:\n");
        for r in &plan.renames {
            out.push_str(&format!(
                "  {} {:?}{} -> {:?}\n",
                r.kind,
                r.from,
                if r.table.is_empty() {
                    String::new()
                } else {
                    format!(" of {:?}", r.table)
                },
                r.to
            ));
        }
    }
    if !plan.warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for w in &plan.warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    out
}
