-- The state of a multi-agent system, PostgreSQL flavour of migrations/sqlite/0001.
--
-- Same tables and columns as the SQLite schema, so phase 3 matches columns by name:
-- JSON documents as jsonb (GIN-indexed where queried), timestamps as timestamptz,
-- vocabularies CHECKed, `created_at DESC` indexes for the usual newest-first reads, and
-- every foreign key indexed.

CREATE TABLE agents (
    agent_id      text PRIMARY KEY,
    display_name  text,
    role          text,
    status        text NOT NULL DEFAULT 'unknown'
                  CHECK (status IN ('online', 'offline', 'busy', 'idle', 'ready', 'healthy', 'error', 'unknown', 'other')),
    status_raw    text,
    capabilities  jsonb,
    registered_at timestamptz,
    updated_at    timestamptz,
    source_path   text,
    source_record bigint NOT NULL DEFAULT 0,
    doc           jsonb,
    doc_sha256    text,
    doc_size      bigint,
    doc_snapshot  text
);

CREATE TABLE agent_status (
    agent_id       text PRIMARY KEY REFERENCES agents (agent_id) ON DELETE CASCADE,
    status         text NOT NULL DEFAULT 'unknown'
                   CHECK (status IN ('online', 'offline', 'busy', 'idle', 'ready', 'healthy', 'error', 'unknown', 'other')),
    status_raw     text,
    current_task   text,
    last_update_at timestamptz,
    performance    jsonb,
    source_path    text NOT NULL,
    source_record  bigint NOT NULL DEFAULT 0,
    doc            jsonb,
    doc_sha256     text NOT NULL,
    doc_size       bigint NOT NULL,
    doc_snapshot   text,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);

CREATE TABLE tasks (
    task_id        text PRIMARY KEY,
    agent_id       text REFERENCES agents (agent_id) ON DELETE SET NULL,
    parent_task_id text REFERENCES tasks (task_id) ON DELETE SET NULL,
    title          text,
    description    text,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'in_progress', 'blocked', 'completed', 'failed', 'cancelled', 'other')),
    status_raw     text,
    priority       text NOT NULL DEFAULT 'normal'
                   CHECK (priority IN ('low', 'normal', 'medium', 'high', 'critical', 'other')),
    priority_raw   text,
    created_at     timestamptz,
    updated_at     timestamptz,
    completed_at   timestamptz,
    source_path    text,
    source_record  bigint NOT NULL DEFAULT 0,
    doc            jsonb,
    doc_sha256     text,
    doc_size       bigint,
    doc_snapshot   text
);
CREATE INDEX tasks_agent_id_idx ON tasks (agent_id);
CREATE INDEX tasks_parent_task_id_idx ON tasks (parent_task_id);
CREATE INDEX tasks_created_at_idx ON tasks (created_at DESC);
CREATE INDEX tasks_doc_gin ON tasks USING gin (doc jsonb_path_ops);

CREATE TABLE task_dependencies (
    task_id            text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    depends_on_task_id text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on_task_id),
    CHECK (task_id <> depends_on_task_id)
);
CREATE INDEX task_dependencies_depends_on_task_id_idx ON task_dependencies (depends_on_task_id);

CREATE TABLE messages (
    message_id       text PRIMARY KEY,
    mailbox_agent_id text REFERENCES agents (agent_id) ON DELETE SET NULL,
    folder           text NOT NULL
                     CHECK (folder IN ('inbox', 'outbox', 'queue', 'processed', 'processing', 'other')),
    from_agent       text,
    to_agent         text,
    message_type     text,
    priority         text NOT NULL DEFAULT 'normal'
                     CHECK (priority IN ('low', 'normal', 'medium', 'high', 'critical', 'other')),
    priority_raw     text,
    subject          text,
    body             text,
    status           text,
    sent_at          timestamptz,
    source_path      text NOT NULL,
    source_record    bigint NOT NULL DEFAULT 0,
    doc              jsonb,
    doc_sha256       text NOT NULL,
    doc_size         bigint NOT NULL,
    doc_snapshot     text,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX messages_mailbox_agent_id_idx ON messages (mailbox_agent_id);
CREATE INDEX messages_sent_at_idx ON messages (sent_at DESC);
CREATE INDEX messages_doc_gin ON messages USING gin (doc jsonb_path_ops);

CREATE TABLE configurations (
    config_id     text PRIMARY KEY,
    name          text NOT NULL,
    scope         text,
    updated_at    timestamptz,
    source_path   text NOT NULL,
    source_record bigint NOT NULL DEFAULT 0,
    doc           jsonb,
    doc_sha256    text NOT NULL,
    doc_size      bigint NOT NULL,
    doc_snapshot  text,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);

CREATE TABLE project_analyses (
    analysis_id   text PRIMARY KEY,
    project       text,
    analysis_type text,
    created_at    timestamptz,
    source_path   text NOT NULL,
    source_record bigint NOT NULL DEFAULT 0,
    doc           jsonb,
    doc_sha256    text NOT NULL,
    doc_size      bigint NOT NULL,
    doc_snapshot  text,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX project_analyses_created_at_idx ON project_analyses (created_at DESC);
CREATE INDEX project_analyses_doc_gin ON project_analyses USING gin (doc jsonb_path_ops);

CREATE TABLE devlogs (
    devlog_id     text PRIMARY KEY,
    title         text,
    agent_id      text REFERENCES agents (agent_id) ON DELETE SET NULL,
    created_at    timestamptz,
    tags          jsonb,
    front_matter  jsonb,
    body          text NOT NULL,
    source_path   text NOT NULL,
    source_text   text,
    doc_sha256    text NOT NULL,
    doc_size      bigint NOT NULL,
    doc_snapshot  text,
    CHECK (source_text IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX devlogs_agent_id_idx ON devlogs (agent_id);
CREATE INDEX devlogs_created_at_idx ON devlogs (created_at DESC);
CREATE INDEX devlogs_tags_gin ON devlogs USING gin (tags);

CREATE TABLE context_documents (
    context_id    text PRIMARY KEY,
    title         text,
    front_matter  jsonb,
    body          text NOT NULL,
    updated_at    timestamptz,
    source_path   text NOT NULL,
    source_text   text,
    doc_sha256    text NOT NULL,
    doc_size      bigint NOT NULL,
    doc_snapshot  text,
    CHECK (source_text IS NOT NULL OR doc_snapshot IS NOT NULL)
);

CREATE TABLE sessions (
    session_id    text PRIMARY KEY,
    started_at    timestamptz,
    ended_at      timestamptz,
    source_path   text NOT NULL,
    source_record bigint NOT NULL DEFAULT 0,
    doc           jsonb,
    doc_sha256    text NOT NULL,
    doc_size      bigint NOT NULL,
    doc_snapshot  text,
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);

CREATE TABLE hook_events (
    event_id      bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    session_id    text,
    hook_name     text,
    tool_name     text,
    occurred_at   timestamptz,
    source_path   text NOT NULL,
    source_record bigint NOT NULL,
    doc           jsonb,
    doc_sha256    text NOT NULL,
    doc_size      bigint NOT NULL,
    doc_snapshot  text,
    UNIQUE (source_path, source_record),
    CHECK (doc IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX hook_events_session_id_idx ON hook_events (session_id);
CREATE INDEX hook_events_occurred_at_idx ON hook_events (occurred_at DESC);
CREATE INDEX hook_events_doc_gin ON hook_events USING gin (doc jsonb_path_ops);

CREATE TABLE memory_snapshots (
    snapshot_id   bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    agent_id      text REFERENCES agents (agent_id) ON DELETE SET NULL,
    taken_at      timestamptz,
    path          text NOT NULL,
    sha256        text NOT NULL CHECK (length(sha256) = 64),
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    source_path   text,
    UNIQUE (path)
);
CREATE INDEX memory_snapshots_agent_id_idx ON memory_snapshots (agent_id);

CREATE TABLE performance_metrics (
    metric_id     bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    agent_id      text REFERENCES agents (agent_id) ON DELETE CASCADE,
    metric        text NOT NULL,
    value         double precision,
    unit          text,
    recorded_at   timestamptz,
    source_path   text,
    UNIQUE (agent_id, metric, recorded_at)
);
CREATE INDEX performance_metrics_agent_id_idx ON performance_metrics (agent_id);
CREATE INDEX performance_metrics_recorded_at_idx ON performance_metrics (recorded_at DESC);

-- The embedding is a real[] of exactly 1536 values; when the server offers pgvector it
-- becomes vector(1536) with an ivfflat cosine index instead (the schema dump shows which).
CREATE TABLE agent_memory (
    memory_id     bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    agent_id      text REFERENCES agents (agent_id) ON DELETE CASCADE,
    content       text NOT NULL,
    embedding     real[] CONSTRAINT agent_memory_embedding_dims
                  CHECK (embedding IS NULL OR (array_ndims(embedding) = 1 AND array_length(embedding, 1) = 1536)),
    metadata      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_memory_agent_id_idx ON agent_memory (agent_id);
CREATE INDEX agent_memory_created_at_idx ON agent_memory (created_at DESC);
CREATE INDEX agent_memory_metadata_gin ON agent_memory USING gin (metadata jsonb_path_ops);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        CREATE EXTENSION IF NOT EXISTS vector;
        ALTER TABLE agent_memory DROP CONSTRAINT agent_memory_embedding_dims;
        ALTER TABLE agent_memory ALTER COLUMN embedding TYPE vector(1536) USING embedding::vector(1536);
        CREATE INDEX agent_memory_embedding_ivfflat ON agent_memory
            USING ivfflat (embedding vector_cosine_ops) WITH (lists = 100);
    END IF;
END
$$;

CREATE TABLE documents (
    document_path text PRIMARY KEY,
    kind          text NOT NULL,
    format        text NOT NULL CHECK (format IN ('json', 'jsonl', 'markdown', 'text')),
    agent_id      text REFERENCES agents (agent_id) ON DELETE SET NULL,
    doc           jsonb,
    source_text   text,
    doc_sha256    text NOT NULL,
    doc_size      bigint NOT NULL,
    doc_snapshot  text,
    CHECK (doc IS NOT NULL OR source_text IS NOT NULL OR doc_snapshot IS NOT NULL)
);
CREATE INDEX documents_agent_id_idx ON documents (agent_id);
