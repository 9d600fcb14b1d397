"""The UI's reads (ports.LogViews) on every store: filtered pages, light item rows, execution pages."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.engine.events import EventType as T
from noetl.store.ports import Store
from noetl.store.views_sql import LANE_INDEX_WHERE, EventFilter, ExecutionFilter
from tests.contract.test_store_contract import ev, new_id, start


def _loop(store: Store, x: str, n: int) -> None:
    """An execution whose step `loop` ran n items, item 3 failing with its item named."""
    events = [start(x, 1), ev(x, 2, T.ITERATOR_STARTED, node_name="loop", meta={"count": n})]
    next_id = 3
    for i in range(n):
        events.append(ev(x, next_id, T.ITERATION_STARTED, node_name="loop", current_index=i, current_item=i))
        failed = i == 3
        events.append(
            ev(
                x,
                next_id + 1,
                T.ITERATION_FAILED if failed else T.ITERATION_COMPLETED,
                node_name="loop",
                current_index=i,
                current_item={"city": "Berlin" * 20} if failed else i,
                status="FAILED" if failed else "COMPLETED",
                duration=0.5 + i,
                attempt=1,
                error="boom" if failed else None,
                result={"big": "x" * 100},
            )
        )
        next_id += 2
    store.append(events)
    store.flush()


def test_query_events_filters_and_pages_in_commit_order(store: Store) -> None:
    x = new_id()
    _loop(store, x, 6)
    everything = store.read(x)
    assert store.query_events(x, EventFilter()) == everything
    page = store.query_events(x, EventFilter(), after=2, limit=3)
    assert [e.seq for e in page] == [3, 4, 5]
    failed = store.query_events(x, EventFilter(types=(T.ITERATION_FAILED,)))
    assert [(e.current_index, e.error) for e in failed] == [(3, "boom")]
    item = store.query_events(x, EventFilter(node_name="loop", index=2))
    assert [e.event_type for e in item] == [T.ITERATION_STARTED, T.ITERATION_COMPLETED]
    assert [e.seq for e in store.query_events(x, EventFilter(status="FAILED"))] == [e.seq for e in failed]
    types = (T.ITERATION_COMPLETED, T.ITERATION_FAILED)
    assert len(store.query_events(x, EventFilter(types=types), limit=100)) == 6
    assert store.query_events(x, EventFilter(node_name="other")) == []


def test_item_outcomes_are_light_rows_of_ended_items_and_starts_are_counted(store: Store) -> None:
    from datetime import datetime

    x = new_id()
    _loop(store, x, 5)
    rows = store.item_outcomes(x)
    assert len(rows) == 5
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    seq, step, kind, index, status, ended, duration, attempt, error, label = rows[3]
    assert (step, kind, index, status, duration, attempt, error) == (
        "loop",
        T.ITERATION_FAILED,
        3,
        "FAILED",
        3.5,
        1,
        "boom",
    )
    written = datetime.fromisoformat("2024-05-01T10:00:00.000001+00:00").timestamp()
    assert abs(ended - written) < 0.002  # epoch seconds, computed by the database
    assert label is not None and label.startswith('{"city": "Berlin') and len(label) == 60
    assert all(r[9] is None and r[8] is None for r in rows if r[2] != T.ITERATION_FAILED)
    assert store.item_outcomes(x, after=rows[-2][0]) == [rows[-1]]
    assert store.item_starts(x, 0, store.last_seq(x)) == {"loop": 5}
    assert store.item_starts(x, 0, seq) == {"loop": 4}  # item 3 started before it failed at `seq`
    assert store.item_starts(x, seq, store.last_seq(x)) == {"loop": 1}


@pytest.mark.parametrize("limit", [2, 10])
def test_find_executions_filters_pages_and_counts(store: Store, limit: int) -> None:
    parent, child, other = new_id(), new_id(), new_id()
    store.append([start(parent, 1, path="team/etl_daily")])
    store.append([start(child, 2, parent=parent, path="team/load_50%_rows")])
    store.append([start(other, 3, path="demo/hello"), ev(other, 2, T.EXECUTION_COMPLETE, 4)])
    store.flush()
    found = store.find_executions(ExecutionFilter(), limit=limit)
    assert [r.execution_id for r in found] == [other, child, parent][:limit]
    assert store.count_executions(ExecutionFilter()) == 3
    assert [r.execution_id for r in store.find_executions(ExecutionFilter(), limit=1, offset=1)] == [child]
    assert [r.execution_id for r in store.find_executions(ExecutionFilter(status="COMPLETED"))] == [other]
    assert [r.execution_id for r in store.find_executions(ExecutionFilter(roots=True))] == [other, parent]
    assert [r.execution_id for r in store.find_executions(ExecutionFilter(parent=parent))] == [child]
    assert [r.execution_id for r in store.find_executions(ExecutionFilter(playbook="team/"))] == [
        child,
        parent,
    ]
    # LIKE wildcards in the filter are literal text
    assert [r.execution_id for r in store.find_executions(ExecutionFilter(playbook="50%_"))] == [child]
    assert store.find_executions(ExecutionFilter(playbook="o_h")) == []  # "_" would match "o/h"
    since = store.find_executions(ExecutionFilter(since="2024-05-01T10:00:02", until="2024-05-01T10:00:03"))
    assert [r.execution_id for r in since] == [child]
    assert store.count_executions(ExecutionFilter(roots=True)) == 2
    facts = store.execution_facts([parent, child, other])
    assert facts[parent]["children"] == 1 and facts[child]["children"] == 0
    assert all(r.result is None for r in found)


def test_execution_facts_read_the_catalog_version_from_the_start(store: Store) -> None:
    x, y = new_id(), new_id()
    store.append([start(x, 1)])
    store.append([ev(y, 1, T.EXECUTION_START, node_name="p", context={"path": "p", "version": 3})])
    store.flush()
    facts = store.execution_facts([x, y])
    assert facts[x]["version"] is None
    assert facts[y]["version"] == 3
    assert store.execution_facts([]) == {}


def test_last_seq_is_the_commit_order_of_the_last_event(store: Store) -> None:
    x = new_id()
    assert store.last_seq(x) == 0
    _loop(store, x, 3)
    assert store.last_seq(x) == len(store.read(x)) == 8


def test_lane_events_are_the_lane_types_without_step_results(store: Store) -> None:
    x = new_id()
    _loop(store, x, 3)
    store.append(
        [
            ev(x, 100, T.ITERATOR_COMPLETED, node_name="loop", meta={"count": 3}),
            ev(x, 101, T.STEP_COMPLETED, node_name="loop", result=[{"big": "x"}] * 3),
            ev(x, 102, T.EXECUTION_COMPLETE, node_name="hello", result={"answer": 42}),
        ]
    )
    lanes = store.lane_events(x)
    assert [e.event_type for e in lanes] == [
        T.EXECUTION_START,
        T.ITERATOR_STARTED,
        T.ITERATOR_COMPLETED,
        T.STEP_COMPLETED,
        T.EXECUTION_COMPLETE,
    ]
    assert lanes[3].result is None and lanes[4].result == {"answer": 42}
    assert lanes[2].meta == {"count": 3}
    assert [e.seq for e in store.lane_events(x, after=lanes[2].seq or 0)] == [lanes[3].seq, lanes[4].seq]


def test_the_postgres_lane_index_lists_exactly_the_lane_types() -> None:
    import re

    from noetl.store.sqlfiles import migrations
    from noetl.store.views_sql import LANE_TYPES

    (sql,) = [text for name, text in migrations("postgres") if name == "005_event_lanes.sql"]
    lanes = sql[sql.index("CREATE INDEX IF NOT EXISTS noetl_events_lanes") : sql.index("DROP INDEX")]
    assert re.findall(r"'([a-z_]+)'", lanes) == list(LANE_TYPES)


def test_the_postgres_workflow_index_lists_exactly_the_types_fold_reads() -> None:
    import re

    from noetl.engine.state import WORKFLOW_TYPES
    from noetl.store.sqlfiles import migrations

    (sql,) = [text for name, text in migrations("postgres") if name == "005_event_lanes.sql"]
    latest = sql[sql.index("CREATE INDEX noetl_events_workflow") :]
    assert re.findall(r"'([a-z_]+)'", latest) == sorted(WORKFLOW_TYPES)


@pytest.mark.parametrize(
    "older",
    ["event_type IN ('step_started')", LANE_INDEX_WHERE],
    ids=["an older list", "the IN spelling of before 2026-12-02"],
)
def test_a_sqlite_lane_index_of_an_older_test_is_made_again(tmp_path: Any, older: str) -> None:
    import sqlite3

    from noetl.store import open_store
    from noetl.store.views_sql import LANE_WHERE_SQLITE

    path = tmp_path / "old.db"
    open_store(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX events_lanes")
        conn.execute(f"CREATE INDEX events_lanes ON events (execution_id, seq) WHERE {older}")
    open_store(str(path)).close()
    with sqlite3.connect(path) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_lanes'").fetchone()
    assert LANE_WHERE_SQLITE in sql


def test_sqlite_reads_lane_events_through_its_partial_index(tmp_path: Any) -> None:
    """The lanes' test is spelled as equalities in SQLite (cheaper to insert under); the planner must
    still match the index by it, or every timeline read would scan all of an execution's items."""
    import sqlite3

    from noetl.store import open_store
    from noetl.store.sqlite import _LANE_COLUMNS
    from noetl.store.views_sql import LANE_WHERE_SQLITE, lane_events

    path = tmp_path / "plan.db"
    open_store(str(path)).close()
    sql, params = lane_events(_LANE_COLUMNS, "events", "x", 0, "?", LANE_WHERE_SQLITE)
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX events_lanes" in plan, plan
