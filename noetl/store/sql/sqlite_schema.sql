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

-- A rollup of the events for /metrics (noetl.store.event_stats): per event type and status, how many, how
-- many had a duration, their sum, and le_N: the durations in (BUCKETS[N-1], BUCKETS[N]], not cumulative.
-- The batch writer adds each batch's figures in the batch's transaction.
CREATE TABLE IF NOT EXISTS event_stats (
    event_type   TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    events       INTEGER NOT NULL DEFAULT 0,
    timed        INTEGER NOT NULL DEFAULT 0,
    duration_sum REAL    NOT NULL DEFAULT 0,
    le_0         INTEGER NOT NULL DEFAULT 0,
    le_1         INTEGER NOT NULL DEFAULT 0,
    le_2         INTEGER NOT NULL DEFAULT 0,
    le_3         INTEGER NOT NULL DEFAULT 0,
    le_4         INTEGER NOT NULL DEFAULT 0,
    le_5         INTEGER NOT NULL DEFAULT 0,
    le_6         INTEGER NOT NULL DEFAULT 0,
    le_7         INTEGER NOT NULL DEFAULT 0,
    le_8         INTEGER NOT NULL DEFAULT 0,
    le_9         INTEGER NOT NULL DEFAULT 0,
    le_10        INTEGER NOT NULL DEFAULT 0,
    le_11        INTEGER NOT NULL DEFAULT 0,
    le_12        INTEGER NOT NULL DEFAULT 0,
    le_13        INTEGER NOT NULL DEFAULT 0,
    le_14        INTEGER NOT NULL DEFAULT 0,
    le_15        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_type, status)
);

-- Settings of the store itself. `kdf`: how NOETL_SECRET_KEY's passphrase is stretched into the
-- credentials' key, with its random salt (noetl.store.crypto); `kdf_rekeyed`: when the rows encrypted
-- before there was a salt were encrypted again. Delete neither: the credentials would not decrypt.
CREATE TABLE IF NOT EXISTS settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
