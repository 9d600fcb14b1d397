-- name: lease
UPDATE noetl_jobs SET status = 'leased', worker_id = %(worker)s, tries = tries + 1, updated_at = now(),
       lease_until = now() + make_interval(secs => %(lease)s)
WHERE job_id IN (
    SELECT job_id FROM noetl_jobs
    WHERE status = 'queued' AND available_at <= now()
    ORDER BY job_id
    FOR UPDATE SKIP LOCKED
    LIMIT %(n)s)
RETURNING job_id, execution_id, step, run, attempt, chunk, kind, payload, tries, max_tries;

-- name: heartbeat
UPDATE noetl_jobs SET lease_until = now() + make_interval(secs => %(lease)s), updated_at = now()
WHERE job_id = ANY(%(ids)s) AND worker_id = %(worker)s AND status = 'leased'
RETURNING job_id;

-- name: complete
UPDATE noetl_jobs SET status = 'done', lease_until = NULL, updated_at = now()
WHERE job_id = %(job_id)s AND worker_id = %(worker)s AND status = 'leased'
RETURNING job_id;

-- name: fail
UPDATE noetl_jobs
SET status = CASE WHEN tries >= max_tries THEN 'dead' ELSE 'queued' END,
    available_at = now() + make_interval(secs => %(delay)s), last_error = %(error)s,
    worker_id = NULL, lease_until = NULL, updated_at = now()
WHERE job_id = %(job_id)s AND worker_id = %(worker)s AND status = 'leased'
RETURNING job_id, status;

-- name: release
UPDATE noetl_jobs SET status = 'queued', tries = greatest(tries - 1, 0), worker_id = NULL, lease_until = NULL,
       updated_at = now()
WHERE job_id = ANY(%(ids)s) AND worker_id = %(worker)s AND status = 'leased'
RETURNING job_id;

-- name: reap
-- A step or join job whose worker died ends `expired`: the broker records the abandoned attempt. A chunk
-- goes back to the queue (its items already done are skipped by whoever leases it next).
UPDATE noetl_jobs SET status = CASE WHEN kind IN ('step', 'join') THEN 'expired'
                               WHEN tries >= max_tries THEN 'dead' ELSE 'queued' END,
       last_error = 'lease of worker ' || coalesce(worker_id, '?') || ' expired',
       lease_until = NULL, updated_at = now()
WHERE job_id IN (SELECT job_id FROM noetl_jobs WHERE status = 'leased' AND lease_until < now()
                 FOR UPDATE SKIP LOCKED)
RETURNING job_id, execution_id, step, run, attempt, chunk, kind, worker_id, status;

-- name: count_expiry
INSERT INTO noetl_queue_counters (name, value) VALUES ('lease_expiries', %(n)s)
ON CONFLICT (name) DO UPDATE SET value = noetl_queue_counters.value + EXCLUDED.value;

-- name: enqueue
-- With a worker: the job is born leased by it (the worker whose job decided it runs it on the slot that
-- job frees: no NOTIFY, no lease round trip). Without: queued, and the trigger NOTIFYs idle workers.
INSERT INTO noetl_jobs (execution_id, step, run, attempt, chunk, kind, payload, available_at, max_tries,
                        status, worker_id, lease_until, tries)
VALUES (%(execution_id)s, %(step)s, %(run)s, %(attempt)s, %(chunk)s, %(kind)s, %(payload)s,
        coalesce(to_timestamp(%(not_before)s), now()), %(max_tries)s,
        CASE WHEN %(worker)s::text IS NULL THEN 'queued' ELSE 'leased' END, %(worker)s::text,
        CASE WHEN %(worker)s::text IS NULL THEN NULL ELSE now() + make_interval(secs => %(lease)s) END,
        CASE WHEN %(worker)s::text IS NULL THEN 0 ELSE 1 END)
ON CONFLICT (execution_id, step, run, attempt, chunk) DO NOTHING
RETURNING job_id;

-- name: open_jobs
SELECT count(*) FROM noetl_jobs WHERE execution_id = %(execution_id)s AND status IN ('held', 'queued', 'leased');

-- name: enqueue_chunk
-- A chunk of an iterator's items: `queued` while its step has a free slot of its `concurrency`, else
-- `held` until settle_chunks promotes it (so that at most `concurrency` chunks run at once).
INSERT INTO noetl_jobs (execution_id, step, run, attempt, chunk, kind, payload, status)
VALUES (%(execution_id)s, %(step)s, %(run)s, %(attempt)s, %(chunk)s, 'chunk', %(payload)s, %(status)s)
ON CONFLICT (execution_id, step, run, attempt, chunk) DO NOTHING;

-- name: lock_chunks
-- Serializes every change of one fan-out's chunk jobs (settle, cancel): held to the end of the transaction.
SELECT pg_advisory_xact_lock(hashtextextended(%(execution_id)s || '/' || %(step)s || '/' || %(run)s || '/' || %(attempt)s, 1));

-- name: settle_chunks
-- After a chunk of a fan-out ends (done, dead, cancelled): promote held chunks into the free slots, and
-- when no chunk is left to run, enqueue the join job that finishes the step. Under lock_chunks, so that
-- two chunks ending at once cannot both miss the last one.
WITH g AS (
    SELECT count(*) FILTER (WHERE status IN ('queued', 'leased')) AS open,
           count(*) FILTER (WHERE status = 'held') AS held,
           coalesce(max((payload->>'window')::int), 1) AS slots
    FROM noetl_jobs
    WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s AND attempt = %(attempt)s
      AND kind = 'chunk'),
promoted AS (
    UPDATE noetl_jobs SET status = 'queued', updated_at = now()
    WHERE job_id IN (
        SELECT job_id FROM noetl_jobs
        WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s
          AND attempt = %(attempt)s AND kind = 'chunk' AND status = 'held'
        ORDER BY chunk LIMIT (SELECT greatest(slots - open, 0) FROM g))
    RETURNING job_id)
INSERT INTO noetl_jobs (execution_id, step, run, attempt, chunk, kind, payload)
SELECT %(execution_id)s, %(step)s, %(run)s, %(attempt)s, -2, 'join',
       (SELECT payload - 'items' FROM noetl_jobs
        WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s
          AND attempt = %(attempt)s AND kind = 'chunk' ORDER BY chunk LIMIT 1)
WHERE (SELECT open + held FROM g) = 0 AND NOT EXISTS (SELECT 1 FROM promoted)
ON CONFLICT (execution_id, step, run, attempt, chunk) DO NOTHING
RETURNING job_id;

-- name: hold_back_chunks
-- The failure policy stopped the iterator: chunks not yet started will not run (the join skips their items).
UPDATE noetl_jobs SET status = 'cancelled', updated_at = now()
WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s AND attempt = %(attempt)s
  AND kind = 'chunk' AND status IN ('held', 'queued')
RETURNING job_id;

-- name: cancel_fan_out
-- An abandoned attempt: its chunks and join must not run beside the next attempt's.
UPDATE noetl_jobs SET status = 'cancelled', updated_at = now()
WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s AND attempt = %(attempt)s
  AND kind IN ('chunk', 'join') AND status IN ('held', 'queued', 'leased')
RETURNING job_id;

-- name: chunk_items
-- Every item a fan-out sent out, with its chunk's status: the join accounts for each one.
SELECT item->>0, item->1, status FROM noetl_jobs, jsonb_array_elements(payload->'items') AS item
WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s AND attempt = %(attempt)s
  AND kind = 'chunk'
ORDER BY (item->>0)::bigint;

-- name: requeue
UPDATE noetl_jobs SET status = 'queued', worker_id = NULL WHERE job_id = %(job_id)s;

-- name: lock_execution
-- Every decision for one execution (schedule, abandon, cancel) is taken under this lock.
SELECT pg_advisory_xact_lock(hashtextextended(%(execution_id)s, 0));

-- name: idle_executions
SELECT e.execution_id FROM noetl_executions e WHERE e.status = 'RUNNING' AND NOT EXISTS
    (SELECT 1 FROM noetl_jobs j WHERE j.execution_id = e.execution_id AND j.status IN ('held', 'queued', 'leased'));

-- name: notify
SELECT pg_notify('noetl_jobs', %(reason)s);

-- name: cancel
UPDATE noetl_jobs SET status = 'cancelled', updated_at = now()
WHERE execution_id = %(execution_id)s AND status IN ('held', 'queued', 'leased')
RETURNING job_id;

-- name: drop_delayed
-- The execution ends: a step job queued for later (a retry's delay) will not run, nor will an attempt's
-- deadline job. Nothing of them has started; a local run drops the attempt it waits to start likewise.
UPDATE noetl_jobs SET status = 'cancelled', updated_at = now()
WHERE execution_id = %(execution_id)s AND kind IN ('step', 'deadline') AND status = 'queued'
  AND available_at > now()
RETURNING job_id;

-- name: join_started
SELECT EXISTS (SELECT 1 FROM noetl_jobs
               WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s
                 AND attempt = %(attempt)s AND kind = 'join' AND status IN ('leased', 'done'));

-- name: depth
SELECT status, count(*) FROM noetl_jobs GROUP BY status;

-- name: counters
SELECT name, value FROM noetl_queue_counters;

-- name: dead_job
SELECT tries, last_error FROM noetl_jobs
WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s AND attempt = %(attempt)s
  AND kind IN ('step', 'join') AND status = 'dead';

-- name: running_children
SELECT execution_id FROM noetl_executions WHERE parent_execution_id = %(execution_id)s AND status = 'RUNNING';

-- name: listening_workers
-- Worker processes connected now: each `noetl worker start` holds one session whose only statement is
-- LISTEN noetl_jobs, for as long as it runs (closed when it exits or dies). `hidden`: sessions of other
-- roles whose statements this role may not see (then the count may be short).
SELECT count(*) FILTER (WHERE query = 'LISTEN noetl_jobs') AS listening,
       count(*) FILTER (WHERE query = '<insufficient privilege>') AS hidden
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid();

-- name: busy_workers
-- Workers holding a lease that has not expired (they heartbeat it), with how many jobs each.
SELECT worker_id, count(*) FROM noetl_jobs
WHERE status = 'leased' AND lease_until > now() AND worker_id IS NOT NULL
GROUP BY worker_id ORDER BY worker_id;

-- name: open_depth
-- Jobs not yet ended, by state: queued (ready or waiting for their retry delay), held (beyond a fan-out's
-- concurrency) and leased (running on a worker).
SELECT status, count(*) FROM noetl_jobs WHERE status IN ('queued', 'held', 'leased') GROUP BY status;
