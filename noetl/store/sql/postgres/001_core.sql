-- The PostgreSQL store's core: the event log (the truth), executions derived from it, event id counters,
-- credentials and the catalog. Columns mirror sqlite_schema.sql; structured fields are JSONB.
-- Timestamps that travel back to Python as strings (events, executions, catalog) stay ISO-8601 TEXT, as in
-- SQLite, so an event reads back exactly as it was written.
CREATE TABLE IF NOT EXISTS noetl_events (
    execution_id        TEXT             NOT NULL,
    event_id            BIGINT           NOT NULL,
    parent_execution_id TEXT,
    parent_event_id     BIGINT,
    event_type          TEXT             NOT NULL,
    node_name           TEXT,
    node_id             TEXT,
    node_type           TEXT,
    status              TEXT             NOT NULL,
    created_at          TEXT             NOT NULL,
    duration            DOUBLE PRECISION,
    current_index       BIGINT,
    current_item        JSONB,
    attempt             INTEGER,
    context             JSONB,
    result              JSONB,
    error               TEXT,
    meta                JSONB,
    PRIMARY KEY (execution_id, event_id)  -- also the index for reading one execution in order
);
CREATE INDEX IF NOT EXISTS noetl_events_node ON noetl_events (execution_id, node_name, event_type);

-- Written in the same transaction as the events it is derived from (see store.sql).
CREATE TABLE IF NOT EXISTS noetl_executions (
    execution_id        TEXT PRIMARY KEY,
    parent_execution_id TEXT,
    playbook_path       TEXT,
    status              TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    finished_at         TEXT,
    result              JSONB,
    error               TEXT
);
CREATE INDEX IF NOT EXISTS noetl_executions_created ON noetl_executions (created_at);
CREATE INDEX IF NOT EXISTS noetl_executions_parent ON noetl_executions (parent_execution_id)
    WHERE parent_execution_id IS NOT NULL;

-- The last event id handed out per execution, for writers on many hosts (allocate_event_id).
CREATE TABLE IF NOT EXISTS noetl_event_counters (
    execution_id TEXT   PRIMARY KEY,
    last_id      BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS noetl_credentials (
    name       TEXT        PRIMARY KEY,
    type       TEXT        NOT NULL,
    data       BYTEA       NOT NULL,  -- Fernet token: encrypted at rest with NOETL_SECRET_KEY
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS noetl_catalog (
    path       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (path, version)
);
