-- Commit order. `seq` numbers an execution's events in the order they committed (1, 2, 3, ...): the
-- batch writer locks the execution's row of noetl_event_sequences, reads last_seq, numbers its events
-- and commits, so a reader that asks for seq > N misses nothing committed later
-- (noetl.store.sequencing). Event ids stay the events' identity; writers on several hosts reserve them
-- in blocks from noetl_event_counters, a different row, so a reservation never waits for a commit.
-- `finished`: the execution's terminal event is stored; later events of it are refused.
ALTER TABLE noetl_events ADD COLUMN IF NOT EXISTS seq BIGINT;
UPDATE noetl_events SET seq = event_id WHERE seq IS NULL;  -- before: ids were taken in commit order
ALTER TABLE noetl_events ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS noetl_events_seq ON noetl_events (execution_id, seq);
-- The events that move the workflow (noetl.engine.state folds only these): a worker reads them
-- without the items' events, which are most of a large iterator's log.
CREATE INDEX IF NOT EXISTS noetl_events_workflow ON noetl_events (execution_id, seq)
    WHERE event_type IN ('execution_start', 'step_started', 'action_started', 'action_retry',
                         'step_completed', 'step_failed', 'execution_complete', 'execution_failed');

CREATE TABLE IF NOT EXISTS noetl_event_sequences (
    execution_id TEXT    PRIMARY KEY,
    last_seq     BIGINT  NOT NULL DEFAULT 0,
    finished     BOOLEAN NOT NULL DEFAULT false
);
INSERT INTO noetl_event_sequences (execution_id, last_seq, finished)
SELECT execution_id, max(seq), bool_or(event_type IN ('execution_complete', 'execution_failed'))
FROM noetl_events GROUP BY execution_id
ON CONFLICT (execution_id) DO NOTHING;
