-- The events an execution's timeline lanes are drawn from (noetl.store.views_sql.LANE_TYPES): execution,
-- steps, attempts and iterators, a few per step whatever the number of items. The web UI reads them
-- without scanning the items' events; the list must stay equal to LANE_TYPES (a test checks it).
CREATE INDEX IF NOT EXISTS noetl_events_lanes ON noetl_events (execution_id, seq)
    WHERE event_type IN ('execution_start', 'execution_complete', 'execution_failed', 'execution_retry',
                         'step_started', 'step_completed', 'step_failed', 'action_started',
                         'action_completed', 'action_error', 'action_retry', 'iterator_started',
                         'iterator_completed', 'iterator_failed');

-- `execution_retry` (noetl retry) moves the workflow too: the index of the events fold() reads
-- (004_event_seq.sql, engine.state.WORKFLOW_TYPES) is made again with it.
DROP INDEX IF EXISTS noetl_events_workflow;
CREATE INDEX noetl_events_workflow ON noetl_events (execution_id, seq)
    WHERE event_type IN ('action_retry', 'action_started', 'execution_complete', 'execution_failed',
                         'execution_retry', 'execution_start', 'step_completed', 'step_failed',
                         'step_started');
