-- The /metrics rollup leaves the commit path. Migration 006 kept noetl_event_stats with a statement
-- trigger on noetl_events, in every batch's transaction: measured, it cost the workers a fifth of their
-- throughput (bench/distributed.py, docs/performance.md). From here the rollup is folded after commit
-- (noetl.store.event_stats.fold_sql): noetl_event_stats_marks holds, per execution, the seq up to which
-- its events are counted, and a fold adds the events between that mark and the execution's last_seq
-- (noetl_event_sequences), moving the mark in the same statement. The server folds every few seconds
-- and each scrape folds before it reads, so /metrics stays exact.
CREATE TABLE IF NOT EXISTS noetl_event_stats_marks (
    execution_id TEXT   PRIMARY KEY,
    counted_seq  BIGINT NOT NULL
);

-- Every event stored so far is counted (by 006's backfill or by the trigger). Batch writers lock
-- noetl_event_sequences before they write noetl_events: taking the locks in that order waits for the
-- batches in flight and cannot deadlock with them; until this commits, new batches wait.
LOCK TABLE noetl_event_sequences IN EXCLUSIVE MODE;
LOCK TABLE noetl_events IN ACCESS EXCLUSIVE MODE;  -- what DROP TRIGGER takes anyway
DROP TRIGGER IF EXISTS noetl_count_events ON noetl_events;
DROP FUNCTION IF EXISTS noetl_count_events();
INSERT INTO noetl_event_stats_marks (execution_id, counted_seq)
SELECT execution_id, last_seq FROM noetl_event_sequences
ON CONFLICT (execution_id) DO UPDATE SET counted_seq = excluded.counted_seq;
