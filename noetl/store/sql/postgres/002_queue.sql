-- The job queue: PostgreSQL is the distributed engine. Jobs are leased with FOR UPDATE SKIP LOCKED,
-- leases expire unless heartbeats extend them, and a trigger NOTIFYs idle workers of new work.
CREATE TABLE IF NOT EXISTS noetl_jobs (
    job_id        BIGSERIAL PRIMARY KEY,
    execution_id  TEXT        NOT NULL,
    step          TEXT        NOT NULL,
    run           INTEGER     NOT NULL,
    attempt       INTEGER     NOT NULL,
    chunk         INTEGER     NOT NULL DEFAULT -1,  -- -1: the whole step; >= 0: a chunk of an iterator's items
    kind          TEXT        NOT NULL,             -- step | chunk
    payload       JSONB       NOT NULL DEFAULT '{}'::jsonb,
    status        TEXT        NOT NULL DEFAULT 'queued',  -- queued | leased | done | dead | expired | cancelled
    worker_id     TEXT,
    lease_until   TIMESTAMPTZ,
    available_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    tries         INTEGER     NOT NULL DEFAULT 0,
    max_tries     INTEGER     NOT NULL DEFAULT 5,
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (execution_id, step, run, attempt, chunk)
);

CREATE INDEX IF NOT EXISTS noetl_jobs_ready ON noetl_jobs (available_at, job_id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS noetl_jobs_leased ON noetl_jobs (lease_until) WHERE status = 'leased';
CREATE INDEX IF NOT EXISTS noetl_jobs_execution ON noetl_jobs (execution_id, status);

-- Counters the metrics endpoint reads (lease expiries survive restarts of the server).
CREATE TABLE IF NOT EXISTS noetl_queue_counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL DEFAULT 0
);

CREATE OR REPLACE FUNCTION noetl_jobs_notify() RETURNS trigger AS $$
BEGIN
    IF NEW.status = 'queued' THEN
        PERFORM pg_notify('noetl_jobs', NEW.job_id::text);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS noetl_jobs_notify ON noetl_jobs;
CREATE TRIGGER noetl_jobs_notify AFTER INSERT OR UPDATE OF status ON noetl_jobs
    FOR EACH ROW EXECUTE FUNCTION noetl_jobs_notify();
