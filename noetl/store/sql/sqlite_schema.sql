-- The embedded store. Events are the truth; `executions` is a view of them kept for fast listing.
CREATE TABLE IF NOT EXISTS events (
    execution_id        TEXT    NOT NULL,
    event_id            INTEGER NOT NULL,
    parent_execution_id TEXT,
    parent_event_id     INTEGER,
    event_type          TEXT    NOT NULL,
    node_name           TEXT,
    node_id             TEXT,
    node_type           TEXT,
    status              TEXT    NOT NULL,
    created_at          TEXT    NOT NULL,
    duration            REAL,
    current_index       INTEGER,
    current_item        TEXT,
    attempt             INTEGER,
    context             TEXT,
    result              TEXT,
    error               TEXT,
    meta                TEXT,
    seq                 INTEGER,  -- commit order within the execution (noetl.store.sequencing)
    PRIMARY KEY (execution_id, event_id)
);

CREATE TABLE IF NOT EXISTS executions (
    execution_id        TEXT PRIMARY KEY,
    parent_execution_id TEXT,
    playbook_path       TEXT,
    status              TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    finished_at         TEXT,
    result              TEXT,
    error               TEXT
);
CREATE INDEX IF NOT EXISTS executions_created ON executions (created_at);

CREATE TABLE IF NOT EXISTS credentials (
    name       TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    data       BLOB NOT NULL,  -- Fernet token: encrypted at rest
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS catalog (
    path       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (path, version)
);

-- Values a step or a workload must use for real but that the log shows masked (secrets): encrypted with
-- the credentials' key, beside the log, never in events.
CREATE TABLE IF NOT EXISTS sealed_values (
    execution_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    data         BLOB NOT NULL,  -- Fernet token of {"value": ...}
    PRIMARY KEY (execution_id, name)
);
