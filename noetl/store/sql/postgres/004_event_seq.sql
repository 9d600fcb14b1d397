-- Commit order. `seq` numbers an execution's events in the order they committed (1, 2, 3, ...): the
-- batch writer takes the execution's counter row lock, reads last_seq, numbers its events and commits,
-- so a reader that asks for seq > N misses nothing committed later (noetl.store.sequencing). Event ids
-- stay the events' identity; writers on several hosts reserve them in blocks.
-- `finished`: the execution's terminal event is stored; later events of it are refused.
ALTER TABLE noetl_events ADD COLUMN IF NOT EXISTS seq BIGINT;
UPDATE noetl_events SET seq = event_id WHERE seq IS NULL;  -- before: ids were taken in commit order
ALTER TABLE noetl_events ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS noetl_events_seq ON noetl_events (execution_id, seq);

ALTER TABLE noetl_event_counters ADD COLUMN IF NOT EXISTS last_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE noetl_event_counters ADD COLUMN IF NOT EXISTS finished BOOLEAN NOT NULL DEFAULT false;
INSERT INTO noetl_event_counters AS c (execution_id, last_id, last_seq, finished)
SELECT execution_id, max(event_id), max(seq),
       bool_or(event_type IN ('execution_complete', 'execution_failed'))
FROM noetl_events GROUP BY execution_id
ON CONFLICT (execution_id) DO UPDATE
SET last_seq = EXCLUDED.last_seq, finished = EXCLUDED.finished, last_id = greatest(c.last_id, EXCLUDED.last_id);
