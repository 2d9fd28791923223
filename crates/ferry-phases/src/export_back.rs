//! What changed in PostgreSQL since the cutover, as rows per path of the file store, for
//! `rollback --export-back` (phase 4's rollback) and its `--plan`.
//!
//! SQLite is frozen at the cutover, so SQLite now against PostgreSQL now tells every row
//! created, changed (its document, its path or its place in the file) or deleted since, by
//! key, for each table whose rows keep their document and path (xmin alone cannot see a
//! deletion). Every path such a row named before or names now is handed to
//! `ferry_import::export` with all the rows that name it now: a row that did not change
//! keeps its document exactly as SQLite holds it (the bytes the file held); a changed one
//! has PostgreSQL's (`doc::text`, which ferry-agentdb makes the very text it hashes), or its
//! snapshot. Tables that keep no document and path (no file form) are reported with what was
//! written to them since, never passed over.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ferry_core::config::Config;
use ferry_core::sql::{qualified, quote_ident};
use ferry_import::export::{self, ExportPlan, PathRows, Reject, RowDoc};
use ferry_import::Profile;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;

use crate::error::PhaseError;

/// A table as the export sees it.
#[derive(Debug, Clone)]
struct DocTable {
    name: String,
    key: String,
    /// The column holding the path: `source_path`, or `document_path` for `documents`.
    path_col: String,
    record_col: Option<String>,
    /// `doc` and/or `source_text`.
    doc: bool,
    source_text: bool,
}

/// One row's identity on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ident {
    path: Option<String>,
    record: i64,
    sha: Option<String>,
    snapshot: Option<String>,
}

/// What the export computed: the plan, and what has no file form.
#[derive(Debug)]
pub(crate) struct Computed {
    pub plan: ExportPlan,
    /// Per table: rows created or changed, rows deleted (by key).
    pub tables: BTreeMap<String, (u64, u64)>,
}

fn err(e: impl std::fmt::Display) -> PhaseError {
    PhaseError::failed("export back to files", e)
}

/// Rows per path of everything that changed since the cutover, and the export plan.
pub(crate) async fn compute(
    config: &Config,
    sqlite: &Path,
    writes: &[ferry_sync::TableWrites],
) -> Result<Computed, PhaseError> {
    let profile = Profile::from_setting(&config.import.profile)
        .map_err(|e| PhaseError::failed("loading the import profile", e))?;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(sqlite)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    let mut lite = sqlx::ConnectOptions::connect(&options)
        .await
        .map_err(|e| err(format!("cannot open {}: {e}", sqlite.display())))?;
    let mut pg = <sqlx::PgConnection as sqlx::Connection>::connect(config.postgres.url.expose())
        .await
        .map_err(|e| {
            err(format!(
                "cannot connect to PostgreSQL {}: {}",
                config.postgres.url,
                ferry_core::redact::redact(&e.to_string())
            ))
        })?;
    let schema = config.postgres.schema.clone();
    let res = async {
        let tables = doc_tables(&mut lite).await?;
        let mut rejects = Vec::new();
        let mut paths: BTreeSet<String> = BTreeSet::new();
        let mut per_table = BTreeMap::new();
        let doc_names: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        for t in &tables {
            let before = idents(&mut lite, t).await?;
            let now = idents_pg(&mut pg, &schema, t).await?;
            let (mut changed, mut gone) = (0u64, 0u64);
            for (key, b) in &before {
                match now.get(key) {
                    Some(n) if n == b => {}
                    Some(_) => changed += 1,
                    None => gone += 1,
                }
                if now.get(key) != Some(b) {
                    paths.extend(b.path.clone());
                }
            }
            for (key, n) in &now {
                if before.get(key) == Some(n) {
                    continue;
                }
                if !before.contains_key(key) {
                    changed += 1;
                }
                match &n.path {
                    Some(p) => {
                        paths.insert(p.clone());
                    }
                    None => rejects.push(Reject {
                        table: t.name.clone(),
                        key: key.clone(),
                        path: None,
                        reason: format!(
                            "the row names no file ({} is NULL), so there is nowhere to write it",
                            t.path_col
                        ),
                    }),
                }
            }
            per_table.insert(t.name.clone(), (changed, gone));
        }
        // Tables without a file form: whatever was written to them since is reported.
        for w in writes {
            if doc_names.contains(w.table.as_str()) || w.new_or_changed + w.gone == 0 {
                continue;
            }
            per_table.insert(
                w.table.clone(),
                (w.new_or_changed.max(0) as u64, w.gone.max(0) as u64),
            );
            rejects.push(Reject {
                table: w.table.clone(),
                key: "*".into(),
                path: None,
                reason: format!(
                    "{} rows created or changed and {} deleted since the cutover; the import profile gives table {} no file form (its rows keep no document and path)",
                    w.new_or_changed, w.gone, w.table
                ),
            });
        }
        let paths: Vec<String> = paths.into_iter().collect();
        let mut rows: BTreeMap<String, Vec<RowDoc>> =
            paths.iter().map(|p| (p.clone(), Vec::new())).collect();
        for t in &tables {
            let pg_rows = docs_pg(&mut pg, &schema, t, &paths).await?;
            if pg_rows.is_empty() {
                continue;
            }
            let lite_rows = docs_lite(&mut lite, t, &paths).await?;
            for (key, (ident, text)) in pg_rows {
                // A row the cutover already held keeps SQLite's text: the file's own bytes.
                let text = match lite_rows.get(&key) {
                    Some((li, lt)) if li.sha == ident.sha && li.sha.is_some() => lt.clone(),
                    _ => text,
                };
                let text = match (text, &ident.snapshot) {
                    (Some(t), _) => Some(t),
                    (None, Some(rel)) => ferry_import::read_snapshot(&config.state_dir, rel)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok()),
                    (None, None) => None,
                };
                if let Some(p) = &ident.path {
                    rows.entry(p.clone()).or_default().push(RowDoc {
                        table: t.name.clone(),
                        key,
                        record: ident.record,
                        text,
                    });
                }
            }
        }
        let store = config.source.store_dir.clone();
        let path_rows: Vec<PathRows> = rows
            .into_iter()
            .map(|(path, rows)| PathRows { path, rows })
            .collect();
        let mut plan = tokio::task::spawn_blocking(move || export::plan(&profile, &store, path_rows))
            .await
            .map_err(err)?;
        plan.rejects.extend(rejects);
        Ok::<_, PhaseError>(Computed {
            plan,
            tables: per_table,
        })
    }
    .await;
    sqlx::Connection::close(lite).await.ok();
    sqlx::Connection::close(pg).await.ok();
    res
}

/// The record tables of the SQLite file: those keeping a document and its path.
async fn doc_tables(lite: &mut sqlx::SqliteConnection) -> Result<Vec<DocTable>, PhaseError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'ferry_%' ORDER BY name",
    )
    .fetch_all(&mut *lite)
    .await
    .map_err(err)?;
    let mut out = Vec::new();
    for name in names {
        let cols = sqlx::query(&format!("PRAGMA table_info({})", quote_ident(&name)))
            .fetch_all(&mut *lite)
            .await
            .map_err(err)?;
        let mut key = Vec::new();
        let mut have = BTreeSet::new();
        for c in &cols {
            let col: String = c.get("name");
            let pk: i64 = c.get("pk");
            if pk > 0 {
                key.push((pk, col.clone()));
            }
            have.insert(col);
        }
        key.sort();
        if key.len() != 1 || !have.contains("doc_sha256") {
            continue;
        }
        let path_col = if have.contains("source_path") {
            "source_path"
        } else if name == ferry_import::DOCUMENTS_TABLE && have.contains("document_path") {
            "document_path"
        } else {
            continue;
        };
        out.push(DocTable {
            key: key.remove(0).1,
            path_col: path_col.into(),
            record_col: have
                .contains("source_record")
                .then(|| "source_record".into()),
            doc: have.contains("doc"),
            source_text: have.contains("source_text"),
            name,
        });
    }
    Ok(out)
}

fn ident_cols(t: &DocTable, pg: bool) -> String {
    let key = if pg {
        format!("{}::text", quote_ident(&t.key))
    } else {
        format!("CAST({} AS TEXT)", quote_ident(&t.key))
    };
    let record = t
        .record_col
        .as_deref()
        .map_or("0".to_owned(), |c| quote_ident(c).to_string());
    let record = if pg {
        format!("({record})::bigint")
    } else {
        record
    };
    format!(
        "{key}, {}, {record}, doc_sha256, doc_snapshot",
        quote_ident(&t.path_col)
    )
}

async fn idents(
    lite: &mut sqlx::SqliteConnection,
    t: &DocTable,
) -> Result<HashMap<String, Ident>, PhaseError> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM {}",
        ident_cols(t, false),
        quote_ident(&t.name)
    ))
    .fetch_all(&mut *lite)
    .await
    .map_err(err)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                Ident {
                    path: r.get(1),
                    record: r.get(2),
                    sha: r.get(3),
                    snapshot: r.get(4),
                },
            )
        })
        .collect())
}

async fn idents_pg(
    pg: &mut sqlx::PgConnection,
    schema: &str,
    t: &DocTable,
) -> Result<HashMap<String, Ident>, PhaseError> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM {}",
        ident_cols(t, true),
        qualified(schema, &t.name)
    ))
    .fetch_all(&mut *pg)
    .await
    .map_err(err)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                Ident {
                    path: r.get(1),
                    record: r.get(2),
                    sha: r.get(3),
                    snapshot: r.get(4),
                },
            )
        })
        .collect())
}

fn text_expr(t: &DocTable, pg: bool) -> String {
    let doc = if pg { "doc::text" } else { "doc" };
    match (t.doc, t.source_text) {
        (true, true) => format!("coalesce({doc}, source_text)"),
        (true, false) => doc.to_owned(),
        (false, true) => "source_text".to_owned(),
        (false, false) => "NULL".to_owned(),
    }
}

type Docs = HashMap<String, (Ident, Option<String>)>;

async fn docs_pg(
    pg: &mut sqlx::PgConnection,
    schema: &str,
    t: &DocTable,
    paths: &[String],
) -> Result<Docs, PhaseError> {
    let rows = sqlx::query(&format!(
        "SELECT {}, {} FROM {} WHERE {} = ANY($1)",
        ident_cols(t, true),
        text_expr(t, true),
        qualified(schema, &t.name),
        quote_ident(&t.path_col)
    ))
    .bind(paths)
    .fetch_all(&mut *pg)
    .await
    .map_err(err)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                (
                    Ident {
                        path: r.get(1),
                        record: r.get(2),
                        sha: r.get(3),
                        snapshot: r.get(4),
                    },
                    r.get(5),
                ),
            )
        })
        .collect())
}

async fn docs_lite(
    lite: &mut sqlx::SqliteConnection,
    t: &DocTable,
    paths: &[String],
) -> Result<Docs, PhaseError> {
    let rows = sqlx::query(&format!(
        "SELECT {}, {} FROM {} WHERE {} IN (SELECT value FROM json_each(?))",
        ident_cols(t, false),
        text_expr(t, false),
        quote_ident(&t.name),
        quote_ident(&t.path_col)
    ))
    .bind(serde_json::to_string(paths).unwrap_or_default())
    .fetch_all(&mut *lite)
    .await
    .map_err(err)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                (
                    Ident {
                        path: r.get(1),
                        record: r.get(2),
                        sha: r.get(3),
                        snapshot: r.get(4),
                    },
                    r.get(5),
                ),
            )
        })
        .collect())
}

/// One store file as the export left it, for rollback 1→0's store check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct InventoryEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// Every regular file under `store` (relative, `/`-separated, sorted) with its SHA-256.
pub(crate) fn inventory(store: &Path) -> std::io::Result<Vec<InventoryEntry>> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let ft = e.file_type()?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() || ft.is_symlink() {
                // A symlink is recorded by where it points, never followed.
                let bytes = if ft.is_symlink() {
                    format!("symlink to {}", std::fs::read_link(&p)?.display()).into_bytes()
                } else {
                    std::fs::read(&p)?
                };
                let rel = p
                    .strip_prefix(store)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(InventoryEntry {
                    path: rel,
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    size: bytes.len() as u64,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The differences between the store now and an inventory, as sentences (at most a few).
pub(crate) fn compare_inventory(
    store: &Path,
    saved: &[InventoryEntry],
) -> std::io::Result<Vec<String>> {
    let now = inventory(store)?;
    let a: BTreeMap<&str, &InventoryEntry> = saved.iter().map(|e| (e.path.as_str(), e)).collect();
    let b: BTreeMap<&str, &InventoryEntry> = now.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut out = Vec::new();
    for (p, e) in &a {
        match b.get(p) {
            None => out.push(format!("{p} missing")),
            Some(n) if n.sha256 != e.sha256 => out.push(format!("{p} changed")),
            _ => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            out.push(format!("{p} appeared"));
        }
    }
    Ok(out)
}

/// The plan as JSON, for `--plan` and the rollback's evidence.
pub(crate) fn plan_json(c: &Computed) -> Value {
    let p = &c.plan;
    json!({
        "files": p.files.iter().filter(|f| !f.done).collect::<Vec<_>>(),
        "already_as_planned": p.files.iter().filter(|f| f.done).map(|f| &f.path).collect::<Vec<_>>(),
        "counts": {
            "write": p.count(export::Action::Write),
            "create": p.count(export::Action::Create),
            "remove": p.count(export::Action::Remove),
            "already_as_planned": p.files.iter().filter(|f| f.done).count(),
            "unrenderable_rows": p.rejects.len(),
        },
        "rejects": p.rejects,
        "tables": c.tables.iter().map(|(t, (ch, g))| json!({"table": t, "created_or_changed": ch, "deleted": g})).collect::<Vec<_>>(),
    })
}

/// Where an export keeps its report, its rejects and the store's inventory: one folder per
/// cutover, so a rerun after a kill finds the same one.
pub(crate) fn export_dir(config: &Config, cutover_at: &str) -> PathBuf {
    config
        .state_dir
        .join("export-back")
        .join(cutover_id(cutover_at))
}

/// Where an export moves what it replaces or removes, as every rollback does:
/// `state_dir/displaced/export-back-<cutover>/store/<path>`.
pub(crate) fn displaced_dir(config: &Config, cutover_at: &str) -> PathBuf {
    config
        .state_dir
        .join("displaced")
        .join(format!("export-back-{}", cutover_id(cutover_at)))
        .join("store")
}

fn cutover_id(cutover_at: &str) -> String {
    cutover_at
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
