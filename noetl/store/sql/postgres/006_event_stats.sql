-- A rollup of the event log for /metrics (noetl.store.event_stats): per event type and status, how many
-- events, how many had a duration, their sum, and le_N: the durations in (BUCKETS[N-1], BUCKETS[N]] of
-- event_stats.BUCKETS (5 ms ... 1 h), not cumulative, so that an event adds to one bucket. A scrape sums
-- a few dozen rows instead of scanning the log.
CREATE TABLE IF NOT EXISTS noetl_event_stats (
    shard        SMALLINT         NOT NULL DEFAULT 0,
    event_type   TEXT             NOT NULL,
    status       TEXT             NOT NULL,
    events       BIGINT           NOT NULL DEFAULT 0,
    timed        BIGINT           NOT NULL DEFAULT 0,
    duration_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    le_0         BIGINT           NOT NULL DEFAULT 0,
    le_1         BIGINT           NOT NULL DEFAULT 0,
    le_2         BIGINT           NOT NULL DEFAULT 0,
    le_3         BIGINT           NOT NULL DEFAULT 0,
    le_4         BIGINT           NOT NULL DEFAULT 0,
    le_5         BIGINT           NOT NULL DEFAULT 0,
    le_6         BIGINT           NOT NULL DEFAULT 0,
    le_7         BIGINT           NOT NULL DEFAULT 0,
    le_8         BIGINT           NOT NULL DEFAULT 0,
    le_9         BIGINT           NOT NULL DEFAULT 0,
    le_10        BIGINT           NOT NULL DEFAULT 0,
    le_11        BIGINT           NOT NULL DEFAULT 0,
    le_12        BIGINT           NOT NULL DEFAULT 0,
    le_13        BIGINT           NOT NULL DEFAULT 0,
    le_14        BIGINT           NOT NULL DEFAULT 0,
    le_15        BIGINT           NOT NULL DEFAULT 0,
    PRIMARY KEY (event_type, status, shard)
);

-- Kept by the database in the transaction of every statement that stores events (the batch writer's
-- COPY), one row per event type and status of the batch, whichever process or version writes them.
-- `shard`: the writing connection's (backend pid % 16), so that writers on several hosts seldom wait for
-- each other's row locks; rows are locked in one order, so two batches cannot deadlock.
CREATE OR REPLACE FUNCTION noetl_count_events() RETURNS trigger AS $$
BEGIN
    INSERT INTO noetl_event_stats AS s (shard, event_type, status, events, timed, duration_sum, le_0, le_1,
        le_2, le_3, le_4, le_5, le_6, le_7, le_8, le_9, le_10, le_11, le_12, le_13, le_14, le_15)
    SELECT (pg_backend_pid() % 16)::smallint,
           event_type, status, COUNT(*), COUNT(duration), COALESCE(SUM(duration), 0),
           SUM(CASE WHEN duration <= 0.005 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 0.005 AND duration <= 0.01 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 0.01 AND duration <= 0.025 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 0.025 AND duration <= 0.05 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 0.05 AND duration <= 0.1 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 0.1 AND duration <= 0.25 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 0.25 AND duration <= 0.5 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 0.5 AND duration <= 1.0 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 1.0 AND duration <= 2.5 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 2.5 AND duration <= 5.0 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 5.0 AND duration <= 10.0 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 10.0 AND duration <= 30.0 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 30.0 AND duration <= 60.0 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 60.0 AND duration <= 300.0 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 300.0 AND duration <= 900.0 THEN 1 ELSE 0 END),
           SUM(CASE WHEN duration > 900.0 AND duration <= 3600.0 THEN 1 ELSE 0 END)
    FROM new_events GROUP BY event_type, status ORDER BY event_type, status
    ON CONFLICT (event_type, status, shard) DO UPDATE SET
        events = s.events + excluded.events,
        timed = s.timed + excluded.timed,
        duration_sum = s.duration_sum + excluded.duration_sum,
        le_0 = s.le_0 + excluded.le_0,
        le_1 = s.le_1 + excluded.le_1,
        le_2 = s.le_2 + excluded.le_2,
        le_3 = s.le_3 + excluded.le_3,
        le_4 = s.le_4 + excluded.le_4,
        le_5 = s.le_5 + excluded.le_5,
        le_6 = s.le_6 + excluded.le_6,
        le_7 = s.le_7 + excluded.le_7,
        le_8 = s.le_8 + excluded.le_8,
        le_9 = s.le_9 + excluded.le_9,
        le_10 = s.le_10 + excluded.le_10,
        le_11 = s.le_11 + excluded.le_11,
        le_12 = s.le_12 + excluded.le_12,
        le_13 = s.le_13 + excluded.le_13,
        le_14 = s.le_14 + excluded.le_14,
        le_15 = s.le_15 + excluded.le_15;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- The trigger's lock on noetl_events waits for writers in flight; the events committed before it are
-- counted once below, those after it by the trigger.
DROP TRIGGER IF EXISTS noetl_count_events ON noetl_events;
CREATE TRIGGER noetl_count_events AFTER INSERT ON noetl_events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION noetl_count_events();

INSERT INTO noetl_event_stats (event_type, status, events, timed, duration_sum, le_0, le_1, le_2, le_3, le_4,
    le_5, le_6, le_7, le_8, le_9, le_10, le_11, le_12, le_13, le_14, le_15)
SELECT event_type, status, COUNT(*), COUNT(duration), COALESCE(SUM(duration), 0),
       SUM(CASE WHEN duration <= 0.005 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 0.005 AND duration <= 0.01 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 0.01 AND duration <= 0.025 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 0.025 AND duration <= 0.05 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 0.05 AND duration <= 0.1 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 0.1 AND duration <= 0.25 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 0.25 AND duration <= 0.5 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 0.5 AND duration <= 1.0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 1.0 AND duration <= 2.5 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 2.5 AND duration <= 5.0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 5.0 AND duration <= 10.0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 10.0 AND duration <= 30.0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 30.0 AND duration <= 60.0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 60.0 AND duration <= 300.0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 300.0 AND duration <= 900.0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN duration > 900.0 AND duration <= 3600.0 THEN 1 ELSE 0 END)
FROM noetl_events GROUP BY event_type, status;
