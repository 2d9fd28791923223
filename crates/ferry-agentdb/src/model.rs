//! The records the API reads and the inputs its writes take. Reads give both the normalised
//! value of a vocabulary column (`status`) and the text as written (`status_raw`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{json_out, ts_out, BackendKind, Kind, Val};
use crate::error::AgentDbError;

/// The dimensions of an agent-memory embedding (the schema's `vector(1536)`).
pub const EMBEDDING_DIMS: usize = 1536;

/// A registered agent (`agents`, from `agent_workspaces/agents.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub agent_id: String,
    pub display_name: Option<String>,
    pub role: Option<String>,
    pub status: String,
    pub status_raw: Option<String>,
    pub capabilities: Option<Value>,
    pub registered_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// `None` for an agent known only from its workspace folder (an import placeholder).
    pub source_path: Option<String>,
}

/// A new member of `agents.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewAgent {
    pub agent_id: String,
    pub display_name: Option<String>,
    pub role: Option<String>,
    /// As the application writes it (`"Active"`, `"busy"` …); normalised for `status`.
    pub status: Option<String>,
    pub capabilities: Option<Value>,
}

impl NewAgent {
    pub fn new(agent_id: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            ..Self::default()
        }
    }
}

/// An agent's status (`agent_status`, from `agent_workspaces/<agent>/status.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub agent_id: String,
    pub status: String,
    pub status_raw: Option<String>,
    pub current_task: Option<String>,
    pub last_update_at: Option<DateTime<Utc>>,
    pub performance: Option<Value>,
    pub source_path: String,
}

/// What [`crate::AgentDb::update_agent_status`] changes; the rest of `status.json` stays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// As the application writes it; normalised for `status`.
    pub status: String,
    pub current_task: Option<String>,
    pub performance: Option<Value>,
}

impl StatusUpdate {
    pub fn new(status: impl Into<String>) -> Self {
        Self {
            status: status.into(),
            ..Self::default()
        }
    }
}

/// A task (`tasks`, an element of `agent_workspaces/<agent>/task_list.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: String,
    pub agent_id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: String,
    pub status_raw: Option<String>,
    pub priority: String,
    pub priority_raw: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub source_path: Option<String>,
    /// The task's index in its file's list.
    pub source_record: i64,
}

/// A task to append to an agent's `task_list.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// Chosen by the API (`<agent>-task-<time>-<random>`) when `None`.
    pub task_id: Option<String>,
    pub agent_id: String,
    pub title: String,
    pub description: Option<String>,
    /// As the application writes it; `pending` when `None`.
    pub status: Option<String>,
    /// As the application writes it; `normal` when `None`.
    pub priority: Option<String>,
}

impl NewTask {
    pub fn new(agent_id: impl Into<String>, title: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            title: title.into(),
            ..Self::default()
        }
    }
}

/// A message file (`messages`): one per copy, in a mailbox folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The file's path in the store, as the import keys messages.
    pub message_id: String,
    pub mailbox_agent_id: Option<String>,
    pub folder: String,
    pub from_agent: Option<String>,
    pub to_agent: Option<String>,
    pub message_type: Option<String>,
    pub priority: String,
    pub priority_raw: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub status: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub source_path: String,
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    pub from: String,
    pub to: String,
    pub message_type: Option<String>,
    pub subject: Option<String>,
    pub body: String,
    /// As the application writes it; `normal` when `None`.
    pub priority: Option<String>,
}

impl NewMessage {
    pub fn new(from: impl Into<String>, to: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            body: body.into(),
            ..Self::default()
        }
    }
}

/// A sent message: the recipient's inbox copy and, when the sender is an agent, its outbox
/// copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    /// The `id` both copies carry in their documents.
    pub id: String,
    pub inbox: Message,
    pub outbox: Option<Message>,
}

/// Which page of a listing: newest first, `limit` items after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub offset: u32,
    pub limit: u32,
}

impl Page {
    pub fn first(limit: u32) -> Self {
        Self { offset: 0, limit }
    }

    /// The page after this one.
    pub fn next(self) -> Self {
        Self {
            offset: self.offset.saturating_add(self.limit),
            limit: self.limit,
        }
    }
}

/// A devlog (`devlogs`, Markdown with front matter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Devlog {
    pub devlog_id: String,
    pub title: Option<String>,
    pub agent_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub tags: Option<Value>,
    pub body: String,
    pub source_path: String,
}

/// A devlog to append.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewDevlog {
    /// The agent whose `devlogs/` it goes to; `None` for the store's own `devlogs/`.
    pub agent_id: Option<String>,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
}

/// A project analysis (`project_analyses`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub analysis_id: String,
    pub project: Option<String>,
    pub analysis_type: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The whole document (`None` only when it is in the snapshot store and no state
    /// directory was given).
    pub document: Option<Value>,
}

/// An analysis to record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewAnalysis {
    pub project: String,
    pub analysis_type: String,
    /// What the analysis found, kept under `result` in the document.
    pub result: Value,
}

/// A memory to store with its embedding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewMemory {
    pub agent_id: Option<String>,
    pub content: String,
    /// [`EMBEDDING_DIMS`] finite values, not all zero.
    pub embedding: Vec<f32>,
    pub metadata: Option<Value>,
}

/// One result of a similarity search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryHit {
    pub memory_id: i64,
    pub agent_id: Option<String>,
    pub content: String,
    pub metadata: Option<Value>,
    /// Cosine distance, 1 − cosine similarity: 0 for the same direction, 2 for opposite.
    pub distance: f64,
}

/// Decodes the columns of one row, naming table, key and column when a value is not what
/// its column should hold.
pub(crate) struct Reader {
    table: &'static str,
    key: String,
    vals: std::vec::IntoIter<Val>,
    names: &'static [&'static str],
    at: usize,
}

impl Reader {
    pub fn new(table: &'static str, names: &'static [&'static str], vals: Vec<Val>) -> Self {
        let key = vals
            .first()
            .cloned()
            .and_then(Val::into_text)
            .unwrap_or_default();
        Self {
            table,
            key,
            vals: vals.into_iter(),
            names,
            at: 0,
        }
    }

    fn next(&mut self) -> (Val, &'static str) {
        let name = self.names.get(self.at).copied().unwrap_or("?");
        self.at += 1;
        (self.vals.next().unwrap_or(Val::Text(None)), name)
    }

    pub fn text(&mut self) -> Option<String> {
        self.next().0.into_text()
    }

    pub fn string(&mut self) -> String {
        self.text().unwrap_or_default()
    }

    pub fn int(&mut self) -> Option<i64> {
        self.next().0.into_int()
    }

    pub fn ts(&mut self) -> Result<Option<DateTime<Utc>>, AgentDbError> {
        let (v, column) = self.next();
        let Some(text) = v.into_text() else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| AgentDbError::BadValue {
                table: self.table,
                key: self.key.clone(),
                column,
                value: text,
                expected: "an RFC 3339 timestamp",
            })
    }

    pub fn json(&mut self) -> Result<Option<Value>, AgentDbError> {
        let (v, column) = self.next();
        let Some(text) = v.into_text() else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|_| AgentDbError::BadValue {
                table: self.table,
                key: self.key.clone(),
                column,
                value: text.chars().take(80).collect(),
                expected: "JSON",
            })
    }
}

/// How a column is selected and decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Col {
    Text(&'static str),
    Int(&'static str),
    Ts(&'static str),
    Json(&'static str),
}

/// The select list of `cols` for a backend, and the kinds to decode.
pub(crate) fn select_list(kind: BackendKind, cols: &[Col]) -> (String, Vec<Kind>) {
    let mut exprs = Vec::new();
    let mut kinds = Vec::new();
    for c in cols {
        match c {
            Col::Text(n) => {
                exprs.push((*n).to_owned());
                kinds.push(Kind::Text);
            }
            Col::Int(n) => {
                exprs.push((*n).to_owned());
                kinds.push(Kind::Int);
            }
            Col::Ts(n) => {
                exprs.push(ts_out(kind, n));
                kinds.push(Kind::Text);
            }
            Col::Json(n) => {
                exprs.push(json_out(kind, n));
                kinds.push(Kind::Text);
            }
        }
    }
    (exprs.join(", "), kinds)
}

pub(crate) const AGENT_COLS: &[Col] = &[
    Col::Text("agent_id"),
    Col::Text("display_name"),
    Col::Text("role"),
    Col::Text("status"),
    Col::Text("status_raw"),
    Col::Json("capabilities"),
    Col::Ts("registered_at"),
    Col::Ts("updated_at"),
    Col::Text("source_path"),
];
const AGENT_NAMES: &[&str] = &[
    "agent_id",
    "display_name",
    "role",
    "status",
    "status_raw",
    "capabilities",
    "registered_at",
    "updated_at",
    "source_path",
];

impl Agent {
    pub(crate) fn from_vals(vals: Vec<Val>) -> Result<Self, AgentDbError> {
        let mut r = Reader::new("agents", AGENT_NAMES, vals);
        Ok(Self {
            agent_id: r.string(),
            display_name: r.text(),
            role: r.text(),
            status: r.string(),
            status_raw: r.text(),
            capabilities: r.json()?,
            registered_at: r.ts()?,
            updated_at: r.ts()?,
            source_path: r.text(),
        })
    }
}

pub(crate) const STATUS_COLS: &[Col] = &[
    Col::Text("agent_id"),
    Col::Text("status"),
    Col::Text("status_raw"),
    Col::Text("current_task"),
    Col::Ts("last_update_at"),
    Col::Json("performance"),
    Col::Text("source_path"),
];
const STATUS_NAMES: &[&str] = &[
    "agent_id",
    "status",
    "status_raw",
    "current_task",
    "last_update_at",
    "performance",
    "source_path",
];

impl AgentStatus {
    pub(crate) fn from_vals(vals: Vec<Val>) -> Result<Self, AgentDbError> {
        let mut r = Reader::new("agent_status", STATUS_NAMES, vals);
        Ok(Self {
            agent_id: r.string(),
            status: r.string(),
            status_raw: r.text(),
            current_task: r.text(),
            last_update_at: r.ts()?,
            performance: r.json()?,
            source_path: r.string(),
        })
    }
}

pub(crate) const TASK_COLS: &[Col] = &[
    Col::Text("task_id"),
    Col::Text("agent_id"),
    Col::Text("title"),
    Col::Text("description"),
    Col::Text("status"),
    Col::Text("status_raw"),
    Col::Text("priority"),
    Col::Text("priority_raw"),
    Col::Ts("created_at"),
    Col::Ts("updated_at"),
    Col::Ts("completed_at"),
    Col::Text("source_path"),
    Col::Int("source_record"),
];
const TASK_NAMES: &[&str] = &[
    "task_id",
    "agent_id",
    "title",
    "description",
    "status",
    "status_raw",
    "priority",
    "priority_raw",
    "created_at",
    "updated_at",
    "completed_at",
    "source_path",
    "source_record",
];

impl Task {
    pub(crate) fn from_vals(vals: Vec<Val>) -> Result<Self, AgentDbError> {
        let mut r = Reader::new("tasks", TASK_NAMES, vals);
        Ok(Self {
            task_id: r.string(),
            agent_id: r.text(),
            title: r.text(),
            description: r.text(),
            status: r.string(),
            status_raw: r.text(),
            priority: r.string(),
            priority_raw: r.text(),
            created_at: r.ts()?,
            updated_at: r.ts()?,
            completed_at: r.ts()?,
            source_path: r.text(),
            source_record: r.int().unwrap_or_default(),
        })
    }
}

pub(crate) const MESSAGE_COLS: &[Col] = &[
    Col::Text("message_id"),
    Col::Text("mailbox_agent_id"),
    Col::Text("folder"),
    Col::Text("from_agent"),
    Col::Text("to_agent"),
    Col::Text("message_type"),
    Col::Text("priority"),
    Col::Text("priority_raw"),
    Col::Text("subject"),
    Col::Text("body"),
    Col::Text("status"),
    Col::Ts("sent_at"),
    Col::Text("source_path"),
];
const MESSAGE_NAMES: &[&str] = &[
    "message_id",
    "mailbox_agent_id",
    "folder",
    "from_agent",
    "to_agent",
    "message_type",
    "priority",
    "priority_raw",
    "subject",
    "body",
    "status",
    "sent_at",
    "source_path",
];

impl Message {
    pub(crate) fn from_vals(vals: Vec<Val>) -> Result<Self, AgentDbError> {
        let mut r = Reader::new("messages", MESSAGE_NAMES, vals);
        Ok(Self {
            message_id: r.string(),
            mailbox_agent_id: r.text(),
            folder: r.string(),
            from_agent: r.text(),
            to_agent: r.text(),
            message_type: r.text(),
            priority: r.string(),
            priority_raw: r.text(),
            subject: r.text(),
            body: r.text(),
            status: r.text(),
            sent_at: r.ts()?,
            source_path: r.string(),
        })
    }
}

pub(crate) const DEVLOG_COLS: &[Col] = &[
    Col::Text("devlog_id"),
    Col::Text("title"),
    Col::Text("agent_id"),
    Col::Ts("created_at"),
    Col::Json("tags"),
    Col::Text("body"),
    Col::Text("source_path"),
];
const DEVLOG_NAMES: &[&str] = &[
    "devlog_id",
    "title",
    "agent_id",
    "created_at",
    "tags",
    "body",
    "source_path",
];

impl Devlog {
    pub(crate) fn from_vals(vals: Vec<Val>) -> Result<Self, AgentDbError> {
        let mut r = Reader::new("devlogs", DEVLOG_NAMES, vals);
        Ok(Self {
            devlog_id: r.string(),
            title: r.text(),
            agent_id: r.text(),
            created_at: r.ts()?,
            tags: r.json()?,
            body: r.string(),
            source_path: r.string(),
        })
    }
}

pub(crate) const ANALYSIS_COLS: &[Col] = &[
    Col::Text("analysis_id"),
    Col::Text("project"),
    Col::Text("analysis_type"),
    Col::Ts("created_at"),
    Col::Json("doc"),
];
const ANALYSIS_NAMES: &[&str] = &[
    "analysis_id",
    "project",
    "analysis_type",
    "created_at",
    "doc",
];

impl Analysis {
    pub(crate) fn from_vals(vals: Vec<Val>) -> Result<Self, AgentDbError> {
        let mut r = Reader::new("project_analyses", ANALYSIS_NAMES, vals);
        Ok(Self {
            analysis_id: r.string(),
            project: r.text(),
            analysis_type: r.text(),
            created_at: r.ts()?,
            document: r.json()?,
        })
    }
}
