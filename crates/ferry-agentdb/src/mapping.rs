//! A document to the columns of its row, exactly as ferry's built-in import profile maps it:
//! the same JSON pointers tried in the same order (the first non-null wins), the same
//! conversions (text, JSON text, timestamps normalised to UTC with six fraction digits), the
//! same vocabularies, and the same bookkeeping columns (`source_path`, `source_record`,
//! `doc`, `doc_sha256`, `doc_size`, `doc_snapshot`, `source_text`).
//!
//! Every write of the API builds or edits the document first and derives the row from it
//! here, so a row and its document never disagree, and an import of the document into a
//! fresh database gives the same row.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::backend::Val;
use crate::error::AgentDbError;
use crate::vocab::{Vocabulary, AGENT_STATUS, PRIORITY, TASK_STATUS};

/// Columns and their values, in a table's order.
pub(crate) type Cols = Vec<(&'static str, Val)>;

/// Reads values out of documents the way the import's column mapping does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mapper {
    /// Seconds east of UTC that a timestamp without an offset is read in (`timestamps.naive`).
    pub naive_offset: i32,
}

fn first<'a>(doc: &'a Value, pointers: &[&str]) -> Option<&'a Value> {
    pointers
        .iter()
        .find_map(|p| doc.pointer(p).filter(|v| !v.is_null()))
}

/// The import's `text` conversion: strings as they are, numbers and booleans as written,
/// arrays and objects as JSON text.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

impl Mapper {
    pub fn text(&self, doc: &Value, pointers: &[&str]) -> Val {
        Val::Text(first(doc, pointers).and_then(as_text))
    }

    pub fn json(&self, doc: &Value, pointers: &[&str]) -> Val {
        Val::Json(first(doc, pointers).map(Value::to_string))
    }

    pub fn ts(&self, doc: &Value, pointers: &[&str]) -> Val {
        Val::Ts(first(doc, pointers).and_then(|v| self.timestamp(v)))
    }

    /// A value as the typed timestamp column holds it, or `None` when the import would
    /// leave the column NULL (and keep the text in the document).
    pub fn timestamp(&self, v: &Value) -> Option<String> {
        let parsed = match v {
            Value::String(s) => ferry_core::timestamp::parse_text(s, self.naive_offset),
            Value::Number(n) => ferry_core::timestamp::parse_number(n),
            _ => None,
        };
        parsed.map(|t| t.utc)
    }

    /// The canonical value and the value as written (`<column>_raw`).
    pub fn vocab(&self, doc: &Value, pointers: &[&str], vocab: &Vocabulary) -> (Val, Val) {
        match first(doc, pointers) {
            None => (Val::text(vocab.missing), Val::Text(None)),
            Some(v) => {
                let raw = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (Val::text(vocab.canonical(&raw)), Val::Text(Some(raw)))
            }
        }
    }

    /// A member of `agent_workspaces/agents.json` (rule `agents`).
    pub fn agent(&self, agent_id: &str, doc: &Value) -> Cols {
        let (status, status_raw) = self.vocab(doc, &["/status"], &AGENT_STATUS);
        vec![
            ("agent_id", Val::text(agent_id)),
            ("display_name", self.text(doc, &["/display_name", "/name"])),
            ("role", self.text(doc, &["/role"])),
            ("status", status),
            ("status_raw", status_raw),
            ("capabilities", self.json(doc, &["/capabilities"])),
            (
                "registered_at",
                self.ts(doc, &["/registered_at", "/created_at"]),
            ),
            (
                "updated_at",
                self.ts(
                    doc,
                    &["/updated_at", "/last_updated", "/last_update", "/last_seen"],
                ),
            ),
        ]
    }

    /// `agent_workspaces/<agent>/status.json` (rule `status`).
    pub fn status(&self, agent_id: &str, doc: &Value) -> Cols {
        let (status, status_raw) = self.vocab(doc, &["/status"], &AGENT_STATUS);
        vec![
            ("agent_id", Val::text(agent_id)),
            ("status", status),
            ("status_raw", status_raw),
            ("current_task", self.text(doc, &["/current_task"])),
            (
                "last_update_at",
                self.ts(doc, &["/last_update", "/last_updated", "/timestamp"]),
            ),
            (
                "performance",
                self.json(doc, &["/performance_metrics", "/performance"]),
            ),
        ]
    }

    /// An element of `agent_workspaces/<agent>/task_list.json` (rule `task_list`).
    pub fn task(&self, agent_id: &str, path: &str, record: i64, doc: &Value) -> Cols {
        let (status, status_raw) = self.vocab(doc, &["/status", "/state"], &TASK_STATUS);
        let (priority, priority_raw) = self.vocab(doc, &["/priority"], &PRIORITY);
        let task_id = first(doc, &["/task_id", "/id"])
            .and_then(as_text)
            .unwrap_or_else(|| format!("{path}#{record}"));
        vec![
            ("task_id", Val::text(task_id)),
            ("agent_id", Val::text(agent_id)),
            ("title", self.text(doc, &["/title", "/name", "/task"])),
            ("description", self.text(doc, &["/description", "/details"])),
            ("status", status),
            ("status_raw", status_raw),
            ("priority", priority),
            ("priority_raw", priority_raw),
            ("created_at", self.ts(doc, &["/created_at", "/created"])),
            (
                "updated_at",
                self.ts(doc, &["/updated_at", "/last_updated"]),
            ),
            ("completed_at", self.ts(doc, &["/completed_at"])),
        ]
    }

    /// A message file in an agent's `inbox/`, `outbox/`, `processed/` … (rule `inbox` and
    /// the rules extending it).
    pub fn message(&self, path: &str, agent_id: &str, folder: &str, doc: &Value) -> Cols {
        let (priority, priority_raw) = self.vocab(doc, &["/priority"], &PRIORITY);
        vec![
            ("message_id", Val::text(path)),
            ("mailbox_agent_id", Val::text(agent_id)),
            ("folder", Val::text(folder)),
            (
                "from_agent",
                self.text(doc, &["/from", "/sender", "/from_agent"]),
            ),
            (
                "to_agent",
                self.text(doc, &["/to", "/recipient", "/to_agent"]),
            ),
            (
                "message_type",
                self.text(doc, &["/type", "/message_type", "/tag", "/command"]),
            ),
            ("priority", priority),
            ("priority_raw", priority_raw),
            ("subject", self.text(doc, &["/subject", "/topic", "/title"])),
            (
                "body",
                self.text(
                    doc,
                    &[
                        "/message",
                        "/content",
                        "/body",
                        "/summary",
                        "/description",
                        "/details",
                    ],
                ),
            ),
            ("status", self.text(doc, &["/status", "/state"])),
            (
                "sent_at",
                self.ts(doc, &["/timestamp", "/sent_at", "/created_at"]),
            ),
        ]
    }

    /// `config/**/<name>.json` (rule `config`): the name is the file's stem, the scope its
    /// folder.
    pub fn config(&self, path: &str, doc: &Value) -> Cols {
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
        let stem = match file.rfind('.') {
            Some(i) if i > 0 => &file[..i],
            _ => file,
        };
        vec![
            ("config_id", Val::text(path)),
            ("name", Val::text(stem)),
            ("scope", Val::text(dir)),
            (
                "updated_at",
                self.ts(doc, &["/updated_at", "/last_updated"]),
            ),
        ]
    }

    /// `project_analysis/**/*.json` (rule `project_analysis`).
    pub fn analysis(&self, path: &str, doc: &Value) -> Cols {
        vec![
            ("analysis_id", Val::text(path)),
            (
                "project",
                self.text(doc, &["/project", "/project_name", "/name"]),
            ),
            (
                "analysis_type",
                self.text(doc, &["/analysis_type", "/type"]),
            ),
            (
                "created_at",
                self.ts(
                    doc,
                    &["/created_at", "/timestamp", "/generated_at", "/analyzed_at"],
                ),
            ),
        ]
    }

    /// A devlog (rule `devlogs`): Markdown with YAML front matter.
    pub fn devlog(&self, path: &str, agent_id: Option<&str>, front: &Value, body: &str) -> Cols {
        let title = first(front, &["/title"])
            .and_then(as_text)
            .or_else(|| first_heading(body).map(str::to_owned));
        let mut cols = vec![("devlog_id", Val::text(path)), ("title", Val::Text(title))];
        if let Some(agent) = agent_id {
            cols.push(("agent_id", Val::text(agent)));
        }
        cols.extend([
            (
                "created_at",
                self.ts(front, &["/created_at", "/date", "/created"]),
            ),
            ("tags", self.json(front, &["/tags"])),
            (
                "front_matter",
                Val::Json((!front.is_null()).then(|| front.to_string())),
            ),
            ("body", Val::text(body)),
        ]);
        cols
    }
}

/// The `documents` row that keeps a file of several records whole (`keep_document`).
pub(crate) fn container(path: &str, kind: &str, agent_id: &str) -> Cols {
    vec![
        ("document_path", Val::text(path)),
        ("kind", Val::text(kind)),
        ("format", Val::text("json")),
        ("agent_id", Val::text(agent_id)),
    ]
}

/// The first Markdown heading's text (`# Title` … `###### Title`).
pub(crate) fn first_heading(body: &str) -> Option<&str> {
    body.lines().find_map(|l| {
        let t = l.trim_start_matches('#');
        (t.len() < l.len() && l.len() - t.len() <= 6 && t.starts_with(' ')).then(|| t.trim())
    })
}

/// How a document is kept: in the row, or in the snapshot store.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub inline: Option<String>,
    pub sha256: String,
    pub size: i64,
    pub snapshot: Option<String>,
}

impl Stored {
    /// `doc`, `doc_sha256`, `doc_size`, `doc_snapshot`, with where the record came from.
    pub fn json_cols(&self, path: &str, record: Option<i64>) -> Cols {
        let mut cols = vec![("source_path", Val::text(path))];
        if let Some(r) = record {
            cols.push(("source_record", Val::Int(Some(r))));
        }
        cols.extend([
            ("doc", Val::Json(self.inline.clone())),
            ("doc_sha256", Val::text(&self.sha256)),
            ("doc_size", Val::Int(Some(self.size))),
            ("doc_snapshot", Val::Text(self.snapshot.clone())),
        ]);
        cols
    }

    /// The same for a `documents` row (no `source_path`: its key is the path).
    pub fn document_cols(&self) -> Cols {
        vec![
            ("doc", Val::Json(self.inline.clone())),
            ("source_text", Val::Text(None)),
            ("doc_sha256", Val::text(&self.sha256)),
            ("doc_size", Val::Int(Some(self.size))),
            ("doc_snapshot", Val::Text(self.snapshot.clone())),
        ]
    }

    /// Markdown: `source_text` instead of `doc`.
    pub fn text_cols(&self, path: &str) -> Cols {
        vec![
            ("source_path", Val::text(path)),
            ("source_text", Val::Text(self.inline.clone())),
            ("doc_sha256", Val::text(&self.sha256)),
            ("doc_size", Val::Int(Some(self.size))),
            ("doc_snapshot", Val::Text(self.snapshot.clone())),
        ]
    }
}

/// The snapshot store the import uses (`state_dir/snapshots/<sha256>`), when the caller gave
/// a state directory.
#[derive(Debug, Clone)]
pub(crate) struct Documents {
    pub state_dir: Option<PathBuf>,
    pub threshold: u64,
}

impl Documents {
    /// Keeps a document as the import would: over the threshold, or a JSON document holding
    /// a `\u0000` (which PostgreSQL's jsonb cannot store), in the snapshot store.
    pub fn store(
        &self,
        table: &'static str,
        key: &str,
        text: String,
        json: bool,
    ) -> Result<Stored, AgentDbError> {
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let size = text.len() as i64;
        let holds_nul = json && json_has_nul_escape(&text);
        let over = text.len() as u64 > self.threshold;
        if !(over || holds_nul) {
            return Ok(Stored {
                inline: Some(text),
                sha256,
                size,
                snapshot: None,
            });
        }
        let Some(state_dir) = &self.state_dir else {
            if holds_nul {
                return Err(AgentDbError::NeedsStateDir {
                    table,
                    key: key.to_owned(),
                    reason: "it holds a \\u0000 character, which PostgreSQL jsonb cannot store"
                        .into(),
                });
            }
            // Without a state directory a large document stays in the row: nothing is lost,
            // and docs/architecture.md names the difference from an import.
            return Ok(Stored {
                inline: Some(text),
                sha256,
                size,
                snapshot: None,
            });
        };
        let rel = format!("snapshots/{sha256}");
        let dest = state_dir.join(&rel);
        let present = std::fs::metadata(&dest).is_ok_and(|m| m.len() == text.len() as u64);
        if !present {
            ferry_core::fsutil::write_atomic(&dest, text.as_bytes())
                .map_err(|source| AgentDbError::Snapshot { path: dest, source })?;
        }
        Ok(Stored {
            inline: None,
            sha256,
            size,
            snapshot: Some(rel),
        })
    }

    /// The text of a stored document: the row's, or the snapshot's.
    pub fn load(
        &self,
        table: &'static str,
        key: &str,
        inline: Option<String>,
        snapshot: Option<String>,
    ) -> Result<String, AgentDbError> {
        if let Some(text) = inline {
            return Ok(text);
        }
        let Some(rel) = snapshot else {
            return Err(AgentDbError::Document {
                table,
                key: key.to_owned(),
                reason: "the row keeps no document".into(),
            });
        };
        let Some(state_dir) = &self.state_dir else {
            return Err(AgentDbError::NeedsStateDir {
                table,
                key: key.to_owned(),
                reason: format!("it is at {rel}"),
            });
        };
        let path = state_dir.join(&rel);
        let bytes = std::fs::read(&path).map_err(|source| AgentDbError::Snapshot {
            path: path.clone(),
            source,
        })?;
        String::from_utf8(bytes).map_err(|_| AgentDbError::Document {
            table,
            key: key.to_owned(),
            reason: format!("{} is not UTF-8", Path::new(&rel).display()),
        })
    }
}

/// Whether JSON text contains the escape `\u0000`, as opposed to an escaped backslash
/// followed by `u0000` (the import's test).
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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_non_null_pointer_wins_and_values_convert_like_the_import() {
        let m = Mapper { naive_offset: 0 };
        let doc = json!({"last_update": null, "last_updated": "2025-08-11T10:41:17.7764221-05:00",
                         "status": "Active", "current_task": 7, "performance": {"b": 1, "a": [true]}});
        let cols = m.status("A", &doc);
        let get = |name: &str| cols.iter().find(|(c, _)| *c == name).unwrap().1.clone();
        assert_eq!(
            get("last_update_at"),
            Val::Ts(Some("2025-08-11T15:41:17.776422Z".into()))
        );
        assert_eq!(get("status"), Val::text("online"));
        assert_eq!(get("status_raw"), Val::text("Active"));
        assert_eq!(get("current_task"), Val::text("7"));
        assert_eq!(
            get("performance"),
            Val::Json(Some(r#"{"a":[true],"b":1}"#.into()))
        );
        let cols = m.task("A", "p/task_list.json", 3, &json!({"title": "t"}));
        assert_eq!(cols[0].1, Val::text("p/task_list.json#3"));
        assert_eq!(cols[4].1, Val::text("pending"));
        assert_eq!(cols[5].1, Val::Text(None));
    }

    #[test]
    fn config_name_and_scope_come_from_the_path() {
        let cols = Mapper { naive_offset: 0 }.config("p/config/app.json", &json!({}));
        assert_eq!(cols[1].1, Val::text("app"));
        assert_eq!(cols[2].1, Val::text("p/config"));
    }

    #[test]
    fn nul_documents_need_the_snapshot_store() {
        let docs = Documents {
            state_dir: None,
            threshold: 10,
        };
        let err = docs
            .store("tasks", "t", r#"{"a": "\u0000"}"#.into(), true)
            .unwrap_err();
        assert!(err.to_string().contains("snapshot store"), "{err}");
        let big = docs.store("tasks", "t", "x".repeat(20), false).unwrap();
        assert_eq!(big.inline.as_deref().map(str::len), Some(20));
        let dir = tempfile::tempdir().unwrap();
        let docs = Documents {
            state_dir: Some(dir.path().to_owned()),
            threshold: 10,
        };
        let s = docs.store("tasks", "t", "y".repeat(20), false).unwrap();
        assert_eq!(s.inline, None);
        let rel = s.snapshot.clone().unwrap();
        assert_eq!(
            docs.load("tasks", "t", None, Some(rel)).unwrap(),
            "y".repeat(20)
        );
        assert!(!json_has_nul_escape(r#"{"a": "\\u0000"}"#));
    }
}
