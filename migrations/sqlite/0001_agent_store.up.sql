-- The state of a multi-agent system, as ferry imports it from a file store.
--
-- Every record table keeps where it came from (source_path, source_record) and its original
-- document: `doc` holds the JSON text exactly as parsed (after a byte-order mark was
-- stripped), or NULL when the document was larger than the snapshot threshold and lives in
-- the content-addressed snapshot store at `doc_snapshot` (a path under state_dir). Either
-- way `doc_sha256` and `doc_size` identify it. Markdown tables keep the file text the same
-- way in `source_text`.
--
-- Timestamps are ISO-8601 text in UTC (`2025-08-11T15:41:04.776422Z`). Vocabularies
-- (status, priority) are normalised into a CHECKed column; the value as written is kept in
-- the `*_raw` column beside it.
--
-- IF NOT EXISTS throughout: on a database that already has these tables (baselining), the
-- tables are adopted as they are and only missing indexes are added; phase 1's gate then
-- compares the result with the reviewed schema snapshot and names every difference.

CREATE TABLE IF NOT EXISTS agents (
    agent_id      TEXT PRIMARY KEY NOT NULL,
    display_name  TEXT,
    role          TEXT,
    status        TEXT NOT NULL DEFAULT 'unknown'
                  CHECK (status IN ('online', 'offline', 'busy', 'idle', 'ready', 'healthy', 'error', 'unknown', 'other')),
    status_raw    TEXT,
    capabilities  TEXT CHECK (capabilities IS NULL OR json_valid(capabilities)),
    registered_at TEXT,
    updated_at    TEXT,
    source_path   TEXT,
    source_record INTEGER NOT NULL DEFAULT 0,
    doc           TEXT CHECK (doc IS NULL OR json_valid(doc)),
    doc_sha256    TEXT,
    doc_size      INTEGER,
    doc_snapshot  TEXT
);

-- One row per agent status file (`agent_workspaces/<Agent>/status.json`).
CREATE TABLE IF NOT EXISTS agent_status (
    agent_id      TEXT PRIMARY KEY NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    status        TEXT NOT NULL DEFAULT 'unknown'
                  CHECK (status IN ('online', 'offline', 'busy', 'idle', 'ready', 'healthy', 'error', 'unknown', 'other')),
    status_raw    TEXT,
    current_task  TEXT,
    last_update_at TEXT,
    performance   TEXT CHECK (performance IS NULL OR json_valid(performance)),
    source_path   TEXT NOT NULL,
    source_record INTEGER NOT NULL DEFAULT 0,
    doc           TEXT CHECK (doc IS NULL OR json_valid(doc)),
    doc_sha256    TEXT NOT NULL,
    doc_size      INTEGER NOT NULL,
    doc_snapshot  TEXT,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS tasks (
    task_id        TEXT PRIMARY KEY NOT NULL,
    agent_id       TEXT REFERENCES agents (agent_id) ON DELETE SET NULL,
    parent_task_id TEXT REFERENCES tasks (task_id) ON DELETE SET NULL,
    title          TEXT,
    description    TEXT,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'in_progress', 'blocked', 'completed', 'failed', 'cancelled', 'other')),
    status_raw     TEXT,
    priority       TEXT NOT NULL DEFAULT 'normal'
                   CHECK (priority IN ('low', 'normal', 'medium', 'high', 'critical', 'other')),
    priority_raw   TEXT,
    created_at     TEXT,
    updated_at     TEXT,
    completed_at   TEXT,
    source_path    TEXT,
    source_record  INTEGER NOT NULL DEFAULT 0,
    doc            TEXT CHECK (doc IS NULL OR json_valid(doc)),
    doc_sha256     TEXT,
    doc_size       INTEGER,
    doc_snapshot   TEXT
);
CREATE INDEX IF NOT EXISTS tasks_agent_id_idx ON tasks (agent_id);
CREATE INDEX IF NOT EXISTS tasks_parent_task_id_idx ON tasks (parent_task_id);
CREATE INDEX IF NOT EXISTS tasks_created_at_idx ON tasks (created_at DESC);

CREATE TABLE IF NOT EXISTS task_dependencies (
    task_id            TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    depends_on_task_id TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on_task_id),
    CHECK (task_id <> depends_on_task_id)
);
CREATE INDEX IF NOT EXISTS task_dependencies_depends_on_task_id_idx ON task_dependencies (depends_on_task_id);

-- Inbox, outbox and queue messages. `folder` is where the file was found.
CREATE TABLE IF NOT EXISTS messages (
    message_id       TEXT PRIMARY KEY NOT NULL,
    mailbox_agent_id TEXT REFERENCES agents (agent_id) ON DELETE SET NULL,
    folder           TEXT NOT NULL
                     CHECK (folder IN ('inbox', 'outbox', 'queue', 'processed', 'processing', 'other')),
    from_agent       TEXT,
    to_agent         TEXT,
    message_type     TEXT,
    priority         TEXT NOT NULL DEFAULT 'normal'
                     CHECK (priority IN ('low', 'normal', 'medium', 'high', 'critical', 'other')),
    priority_raw     TEXT,
    subject          TEXT,
    body             TEXT,
    status           TEXT,
    sent_at          TEXT,
    source_path      TEXT NOT NULL,
    source_record    INTEGER NOT NULL DEFAULT 0,
    doc              TEXT CHECK (doc IS NULL OR json_valid(doc)),
    doc_sha256       TEXT NOT NULL,
    doc_size         INTEGER NOT NULL,
    doc_snapshot     TEXT,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS messages_mailbox_agent_id_idx ON messages (mailbox_agent_id);
CREATE INDEX IF NOT EXISTS messages_sent_at_idx ON messages (sent_at DESC);

CREATE TABLE IF NOT EXISTS configurations (
    config_id     TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    scope         TEXT,
    updated_at    TEXT,
    source_path   TEXT NOT NULL,
    source_record INTEGER NOT NULL DEFAULT 0,
    doc           TEXT CHECK (doc IS NULL OR json_valid(doc)),
    doc_sha256    TEXT NOT NULL,
    doc_size      INTEGER NOT NULL,
    doc_snapshot  TEXT,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS project_analyses (
    analysis_id   TEXT PRIMARY KEY NOT NULL,
    project       TEXT,
    analysis_type TEXT,
    created_at    TEXT,
    source_path   TEXT NOT NULL,
    source_record INTEGER NOT NULL DEFAULT 0,
    doc           TEXT CHECK (doc IS NULL OR json_valid(doc)),
    doc_sha256    TEXT NOT NULL,
    doc_size      INTEGER NOT NULL,
    doc_snapshot  TEXT,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS project_analyses_created_at_idx ON project_analyses (created_at DESC);

-- Markdown with front matter: the file text is kept exactly in `source_text`.
CREATE TABLE IF NOT EXISTS devlogs (
    devlog_id     TEXT PRIMARY KEY NOT NULL,
    title         TEXT,
    agent_id      TEXT REFERENCES agents (agent_id) ON DELETE SET NULL,
    created_at    TEXT,
    tags          TEXT CHECK (tags IS NULL OR json_valid(tags)),
    front_matter  TEXT CHECK (front_matter IS NULL OR json_valid(front_matter)),
    body          TEXT NOT NULL,
    source_path   TEXT NOT NULL,
    source_text   TEXT,
    doc_sha256    TEXT NOT NULL,
    doc_size      INTEGER NOT NULL,
    doc_snapshot  TEXT,
    CHECK (source_text IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS devlogs_agent_id_idx ON devlogs (agent_id);
CREATE INDEX IF NOT EXISTS devlogs_created_at_idx ON devlogs (created_at DESC);

CREATE TABLE IF NOT EXISTS context_documents (
    context_id    TEXT PRIMARY KEY NOT NULL,
    title         TEXT,
    front_matter  TEXT CHECK (front_matter IS NULL OR json_valid(front_matter)),
    body          TEXT NOT NULL,
    updated_at    TEXT,
    source_path   TEXT NOT NULL,
    source_text   TEXT,
    doc_sha256    TEXT NOT NULL,
    doc_size      INTEGER NOT NULL,
    doc_snapshot  TEXT,
    CHECK (source_text IS NOT NULL OR doc_snapshot IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS sessions (
    session_id    TEXT PRIMARY KEY NOT NULL,
    started_at    TEXT,
    ended_at      TEXT,
    source_path   TEXT NOT NULL,
    source_record INTEGER NOT NULL DEFAULT 0,
    doc           TEXT CHECK (doc IS NULL OR json_valid(doc)),
    doc_sha256    TEXT NOT NULL,
    doc_size      INTEGER NOT NULL,
    doc_snapshot  TEXT,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);

-- Hook events from `.claude/logs`: one row per element of a JSON array or line of JSONL.
CREATE TABLE IF NOT EXISTS hook_events (
    event_id      INTEGER PRIMARY KEY,
    session_id    TEXT,
    hook_name     TEXT,
    tool_name     TEXT,
    occurred_at   TEXT,
    source_path   TEXT NOT NULL,
    source_record INTEGER NOT NULL,
    doc           TEXT CHECK (doc IS NULL OR json_valid(doc)),
    doc_sha256    TEXT NOT NULL,
    doc_size      INTEGER NOT NULL,
    doc_snapshot  TEXT,
    UNIQUE (source_path, source_record),
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS hook_events_session_id_idx ON hook_events (session_id);
CREATE INDEX IF NOT EXISTS hook_events_occurred_at_idx ON hook_events (occurred_at DESC);

-- Large JSON kept on disk, in the content-addressed snapshot store.
CREATE TABLE IF NOT EXISTS memory_snapshots (
    snapshot_id   INTEGER PRIMARY KEY,
    agent_id      TEXT REFERENCES agents (agent_id) ON DELETE SET NULL,
    taken_at      TEXT,
    path          TEXT NOT NULL,
    sha256        TEXT NOT NULL CHECK (length(sha256) = 64),
    size_bytes    INTEGER NOT NULL CHECK (size_bytes >= 0),
    source_path   TEXT,
    UNIQUE (path)
);
CREATE INDEX IF NOT EXISTS memory_snapshots_agent_id_idx ON memory_snapshots (agent_id);

CREATE TABLE IF NOT EXISTS performance_metrics (
    metric_id     INTEGER PRIMARY KEY,
    agent_id      TEXT REFERENCES agents (agent_id) ON DELETE CASCADE,
    metric        TEXT NOT NULL,
    value         REAL,
    unit          TEXT,
    recorded_at   TEXT,
    source_path   TEXT,
    UNIQUE (agent_id, metric, recorded_at)
);
CREATE INDEX IF NOT EXISTS performance_metrics_agent_id_idx ON performance_metrics (agent_id);
CREATE INDEX IF NOT EXISTS performance_metrics_recorded_at_idx ON performance_metrics (recorded_at DESC);

-- Long-term agent memory with a 1536-dimension embedding: 1536 little-endian f32 values.
CREATE TABLE IF NOT EXISTS agent_memory (
    memory_id     INTEGER PRIMARY KEY,
    agent_id      TEXT REFERENCES agents (agent_id) ON DELETE CASCADE,
    content       TEXT NOT NULL,
    embedding     BLOB CHECK (embedding IS NULL OR length(embedding) = 6144),
    metadata      TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS agent_memory_agent_id_idx ON agent_memory (agent_id);
CREATE INDEX IF NOT EXISTS agent_memory_created_at_idx ON agent_memory (created_at DESC);

-- Any other JSON, Markdown or text document the profile maps to no specific table.
CREATE TABLE IF NOT EXISTS documents (
    document_path TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('json', 'jsonl', 'markdown', 'text')),
    agent_id      TEXT REFERENCES agents (agent_id) ON DELETE SET NULL,
    doc           TEXT CHECK (doc IS NULL OR json_valid(doc)),
    source_text   TEXT,
    doc_sha256    TEXT NOT NULL,
    doc_size      INTEGER NOT NULL,
    doc_snapshot  TEXT,
    CHECK (doc IS NOT NULL OR source_text IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS documents_agent_id_idx ON documents (agent_id);
