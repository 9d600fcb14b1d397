-- name: lease
UPDATE noetl_jobs SET status = 'leased', worker_id = %(worker)s, tries = tries + 1, updated_at = now(),
       lease_until = now() + make_interval(secs => %(lease)s)
WHERE job_id IN (
    SELECT job_id FROM noetl_jobs
    WHERE status = 'queued' AND available_at <= now()
      AND (%(execution_id)s::text IS NULL OR (execution_id = %(execution_id)s AND step = %(step)s AND kind = 'chunk'))
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
UPDATE noetl_jobs SET status = CASE WHEN kind = 'step' THEN 'expired' WHEN tries >= max_tries THEN 'dead'
                               ELSE 'queued' END,
       last_error = 'lease of worker ' || coalesce(worker_id, '?') || ' expired',
       lease_until = NULL, updated_at = now()
WHERE job_id IN (SELECT job_id FROM noetl_jobs WHERE status = 'leased' AND lease_until < now()
                 FOR UPDATE SKIP LOCKED)
RETURNING job_id, execution_id, step, run, attempt, chunk, kind, worker_id, status;

-- name: count_expiry
INSERT INTO noetl_queue_counters (name, value) VALUES ('lease_expiries', %(n)s)
ON CONFLICT (name) DO UPDATE SET value = noetl_queue_counters.value + EXCLUDED.value;

-- name: enqueue
INSERT INTO noetl_jobs (execution_id, step, run, attempt, chunk, kind, payload, available_at, max_tries)
VALUES (%(execution_id)s, %(step)s, %(run)s, %(attempt)s, %(chunk)s, %(kind)s, %(payload)s,
        coalesce(to_timestamp(%(not_before)s), now()), %(max_tries)s)
ON CONFLICT (execution_id, step, run, attempt, chunk) DO NOTHING
RETURNING job_id;

-- name: open_jobs
SELECT count(*) FROM noetl_jobs WHERE execution_id = %(execution_id)s AND status IN ('queued', 'leased');

-- name: chunk_status
SELECT count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'dead'), count(*)
FROM noetl_jobs WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s
  AND attempt = %(attempt)s AND kind = 'chunk';

-- name: cancel
UPDATE noetl_jobs SET status = 'cancelled', updated_at = now()
WHERE execution_id = %(execution_id)s AND status IN ('queued', 'leased')
RETURNING job_id;

-- name: depth
SELECT status, count(*) FROM noetl_jobs GROUP BY status;

-- name: counters
SELECT name, value FROM noetl_queue_counters;

-- name: dead_job
SELECT tries, last_error FROM noetl_jobs
WHERE execution_id = %(execution_id)s AND step = %(step)s AND run = %(run)s AND attempt = %(attempt)s
  AND chunk = -1 AND status = 'dead';
