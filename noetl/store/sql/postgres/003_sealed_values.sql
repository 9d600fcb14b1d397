-- Values a step or a workload must use for real but that the log shows masked (secrets): encrypted with
-- the credentials' key (NOETL_SECRET_KEY, the same on every host), beside the log, never in events.
CREATE TABLE IF NOT EXISTS noetl_sealed_values (
    execution_id TEXT  NOT NULL,
    name         TEXT  NOT NULL,
    data         BYTEA NOT NULL,
    PRIMARY KEY (execution_id, name)
);
