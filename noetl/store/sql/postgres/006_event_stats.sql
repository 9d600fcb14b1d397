-- A rollup of the event log for /metrics (noetl.store.event_stats): per event type and status, how many
-- events, how many had a duration, their sum, and le_N: the durations in (BUCKETS[N-1], BUCKETS[N]] of
-- event_stats.BUCKETS (5 ms ... 1 h), not cumulative. The batch writer adds each batch's figures in the
-- batch's transaction, so the table agrees with the events committed, on every host. `shard`: each store
-- process writes the rows of its own shard (0-15), so writers on several hosts seldom wait for each other's
-- row locks; a scrape sums the shards.
CREATE TABLE IF NOT EXISTS noetl_event_stats (
    shard        SMALLINT         NOT NULL DEFAULT 0,
    event_type   TEXT             NOT NULL,
    status       TEXT             NOT NULL,
    events       BIGINT           NOT NULL DEFAULT 0,
    timed        BIGINT           NOT NULL DEFAULT 0,
    duration_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    le_0         BIGINT NOT NULL DEFAULT 0,
    le_1         BIGINT NOT NULL DEFAULT 0,
    le_2         BIGINT NOT NULL DEFAULT 0,
    le_3         BIGINT NOT NULL DEFAULT 0,
    le_4         BIGINT NOT NULL DEFAULT 0,
    le_5         BIGINT NOT NULL DEFAULT 0,
    le_6         BIGINT NOT NULL DEFAULT 0,
    le_7         BIGINT NOT NULL DEFAULT 0,
    le_8         BIGINT NOT NULL DEFAULT 0,
    le_9         BIGINT NOT NULL DEFAULT 0,
    le_10        BIGINT NOT NULL DEFAULT 0,
    le_11        BIGINT NOT NULL DEFAULT 0,
    le_12        BIGINT NOT NULL DEFAULT 0,
    le_13        BIGINT NOT NULL DEFAULT 0,
    le_14        BIGINT NOT NULL DEFAULT 0,
    le_15        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (event_type, status, shard)
);

-- The events stored before this migration, counted once (in shard 0).
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
