-- Named queries of the PostgreSQL store (events, executions, credentials, catalog). Not a migration:
-- only numbered files (NNN_name.sql) are applied by migrate(). The event column lists are built in
-- Python from codec.COLUMNS so that they cannot drift from event_to_row.

-- name: start_execution
INSERT INTO noetl_executions (execution_id, parent_execution_id, playbook_path, status, created_at)
VALUES (%(execution_id)s, %(parent_execution_id)s, %(playbook_path)s, 'RUNNING', %(created_at)s)
ON CONFLICT (execution_id) DO UPDATE
SET parent_execution_id = EXCLUDED.parent_execution_id, playbook_path = EXCLUDED.playbook_path,
    status = 'RUNNING', created_at = EXCLUDED.created_at, finished_at = NULL, result = NULL, error = NULL;

-- name: finish_execution
UPDATE noetl_executions SET status = %(status)s, finished_at = %(finished_at)s, result = %(result)s::jsonb,
       error = %(error)s
WHERE execution_id = %(execution_id)s;

-- name: last_event_id
SELECT COALESCE(max(event_id), 0) FROM noetl_events WHERE execution_id = %(execution_id)s;

-- name: reserve_event_ids
-- One row lock per execution serializes allocators on every host; a block also clears any events
-- already written with ids chosen locally (a resumed run). Returns the last id of the block.
INSERT INTO noetl_event_counters AS c (execution_id, last_id)
VALUES (%(execution_id)s,
        COALESCE((SELECT max(event_id) FROM noetl_events WHERE execution_id = %(execution_id)s), 0) + %(n)s)
ON CONFLICT (execution_id) DO UPDATE SET last_id = greatest(c.last_id + %(n)s, EXCLUDED.last_id)
RETURNING last_id;

-- name: take_sequences
-- The batch writer's first statement: lock the sequence row of every execution of the batch (in sorted
-- order, so that two batches cannot deadlock), held to commit, and advance it by the batch's events of
-- that execution. The batch numbers its events up to the returned last_seq. An execution already
-- finished does not advance: its events are refused.
INSERT INTO noetl_event_sequences AS c (execution_id, last_seq)
SELECT x, n FROM unnest(%(executions)s::text[], %(counts)s::bigint[]) AS t(x, n) ORDER BY x
ON CONFLICT (execution_id) DO UPDATE
SET last_seq = CASE WHEN c.finished THEN c.last_seq ELSE c.last_seq + EXCLUDED.last_seq END
RETURNING execution_id, last_seq, finished;

-- name: finish_sequences
UPDATE noetl_event_sequences SET finished = true WHERE execution_id = ANY(%(executions)s::text[]);

-- name: reopen_sequences
-- An execution_retry opened a finished execution again: its events are taken again, numbered on.
UPDATE noetl_event_sequences AS c SET finished = false, last_seq = t.last
FROM unnest(%(executions)s::text[], %(last)s::bigint[]) AS t(x, last)
WHERE c.execution_id = t.x;

-- name: reopen_execution
UPDATE noetl_executions SET status = 'RUNNING', finished_at = NULL, result = NULL, error = NULL
WHERE execution_id = %(execution_id)s;

-- name: list_executions
SELECT execution_id, playbook_path, status, created_at, finished_at, parent_execution_id, result::text, error
FROM noetl_executions ORDER BY created_at DESC LIMIT %(limit)s;

-- name: get_execution
SELECT execution_id, playbook_path, status, created_at, finished_at, parent_execution_id, result::text, error
FROM noetl_executions WHERE execution_id = %(execution_id)s;

-- name: put_credential
INSERT INTO noetl_credentials (name, type, data, updated_at) VALUES (%(name)s, %(type)s, %(data)s, now())
ON CONFLICT (name) DO UPDATE SET type = EXCLUDED.type, data = EXCLUDED.data, updated_at = EXCLUDED.updated_at;

-- name: get_credential
SELECT type, data FROM noetl_credentials WHERE name = %(name)s;

-- name: delete_credential
DELETE FROM noetl_credentials WHERE name = %(name)s;

-- name: list_credentials
SELECT name, type FROM noetl_credentials ORDER BY name;

-- name: lock_catalog_path
-- Held to the end of the transaction; the insert after it is a new statement with a new snapshot, so it
-- sees the version a concurrent register of the same path has just committed.
SELECT pg_advisory_xact_lock(hashtext('noetl_catalog'), hashtext(%(path)s));

-- name: register_playbook
INSERT INTO noetl_catalog (path, version, name, content, created_at)
SELECT %(path)s, COALESCE(max(version), 0) + 1, %(name)s, %(content)s, %(created_at)s
FROM noetl_catalog WHERE path = %(path)s
RETURNING version;

-- name: latest_playbook
SELECT path, version, name, content, created_at FROM noetl_catalog
WHERE path = %(path)s ORDER BY version DESC LIMIT 1;

-- name: playbook_version
SELECT path, version, name, content, created_at FROM noetl_catalog
WHERE path = %(path)s AND version = %(version)s;

-- name: list_playbooks
SELECT DISTINCT ON (path) path, version, name, '', created_at FROM noetl_catalog
ORDER BY path, version DESC;

-- name: put_sealed
INSERT INTO noetl_sealed_values (execution_id, name, data) VALUES (%(execution_id)s, %(name)s, %(data)s)
ON CONFLICT (execution_id, name) DO UPDATE SET data = EXCLUDED.data;

-- name: get_sealed
SELECT data FROM noetl_sealed_values WHERE execution_id = %(execution_id)s AND name = %(name)s;

-- name: failed_items
-- How many items of one iterator attempt failed so far (the chunks' shared failure policy).
SELECT count(*) FROM noetl_events
WHERE execution_id = %(execution_id)s AND parent_event_id = %(iterator_event_id)s
  AND event_type = 'iteration_failed' AND status = 'FAILED';
