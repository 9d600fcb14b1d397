"""The reads behind the UI and its API: a filtered page of events, the light rows of item outcomes, and a
filtered page of executions, written once for both stores (SQLite's `?` and psycopg's `%s` placeholders).

These reads never load what they do not show: a page of 100 events out of 300,000 reads 100 rows, and the
item outcomes that the iterator lane is built from skip the JSON columns (inputs, results, meta).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from noetl.engine.events import EventType as T

# The events an execution's timeline lanes are drawn from (execution, steps, attempts, iterators): a few
# per step, whatever the number of items. Both stores keep a partial index of exactly these
# (SQLite: created by the store, LANE_WHERE_SQLITE; PostgreSQL: 005_event_lanes.sql), used by lane_events().
LANE_TYPES = (
    T.EXECUTION_START,
    T.EXECUTION_COMPLETE,
    T.EXECUTION_FAILED,
    T.EXECUTION_RETRY,
    T.STEP_STARTED,
    T.STEP_COMPLETED,
    T.STEP_FAILED,
    T.ACTION_STARTED,
    T.ACTION_COMPLETED,
    T.ACTION_ERROR,
    T.ACTION_RETRY,
    T.ITERATOR_STARTED,
    T.ITERATOR_COMPLETED,
    T.ITERATOR_FAILED,
)
LANE_TYPES_SQL = ", ".join(f"'{t}'" for t in LANE_TYPES)  # literals: the planner matches the index by them
LANE_INDEX_WHERE = f"event_type IN ({LANE_TYPES_SQL})"
# SQLite's form of the same test, for its index and its reads. SQLite evaluates a partial index's WHERE on
# every insert, and an IN list of 14 literals builds a small table at each row: 2.5-3 us of the 7-8 us an
# event's insert cost (measured 2026-12-02). The same test spelled as equalities costs nothing of note,
# and the planner still matches the index by it. PostgreSQL keeps the IN list (005_event_lanes.sql).
LANE_WHERE_SQLITE = "(" + " OR ".join(f"event_type = '{t}'" for t in LANE_TYPES) + ")"
# A step's result is left out of lane events (an iterator's is the list of all its items' results); the
# execution's own result is kept.
LANE_RESULT = "CASE WHEN event_type = 'execution_complete' THEN {result} END"

ITEM_ENDS = (T.ITERATION_COMPLETED, T.ITERATION_FAILED)
# One row per item that ended: (seq, step, type, index, status, ended at (epoch seconds), duration, attempt,
# error, label). The label (the item, cut to 60 characters) and the error are read only for failed items,
# which the UI names. Items that started are counted, not listed (item_starts).
OUTCOME_COLUMNS = (
    "seq, node_name, event_type, current_index, status, {epoch}, duration, attempt, "
    "CASE WHEN event_type = 'iteration_failed' THEN error END, "
    "CASE WHEN event_type = 'iteration_failed' THEN substr({item}, 1, 60) END"
)
SQLITE_EPOCH = "(julianday(created_at) - 2440587.5) * 86400.0"
POSTGRES_EPOCH = "extract(epoch from created_at::timestamptz)::float8"


@dataclass(frozen=True)
class EventFilter:
    """Which events a page holds; every field narrows it, None and () mean any."""

    types: tuple[str, ...] = ()
    node_name: str | None = None
    status: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class ExecutionFilter:
    """Which executions a page holds; times are ISO-8601 strings compared with `created_at`."""

    status: str | None = None
    playbook: str | None = None  # a substring of the playbook path
    since: str | None = None
    until: str | None = None
    parent: str | None = None  # only the children of this execution
    roots: bool = False  # only executions without a parent


def events_page(
    select: str, f: EventFilter, execution_id: str, after: int, limit: int, p: str
) -> tuple[str, list[Any]]:
    """`select` is "SELECT <columns> FROM <table>"; `p` is the placeholder of the driver."""
    where, params = [f"execution_id = {p}", f"seq > {p}"], [execution_id, after]
    if f.types:
        where.append(f"event_type IN ({', '.join([p] * len(f.types))})")
        params.extend(f.types)
    for column, value in (("node_name", f.node_name), ("status", f.status), ("current_index", f.index)):
        if value is not None:
            where.append(f"{column} = {p}")
            params.append(value)
    params.append(limit)
    return f"{select} WHERE {' AND '.join(where)} ORDER BY seq LIMIT {p}", params


def lane_events(
    columns: list[str], table: str, execution_id: str, after: int, p: str, lanes: str = LANE_INDEX_WHERE
) -> tuple[str, list[Any]]:
    """`columns`: the event columns in codec order, with `result` spelled as the driver reads it;
    `lanes`: the test of a lane event, spelled as the store's partial index spells it."""
    sql = (
        f"SELECT {', '.join(columns)} FROM {table} WHERE execution_id = {p} AND seq > {p} "
        f"AND {lanes} ORDER BY seq"
    )
    return sql, [execution_id, after]


def item_outcomes(
    table: str, item_text: str, epoch: str, execution_id: str, after: int, p: str
) -> tuple[str, list[Any]]:
    columns = OUTCOME_COLUMNS.format(item=item_text, epoch=epoch)
    types = ", ".join(f"'{t}'" for t in ITEM_ENDS)  # constants, not user input
    sql = (
        f"SELECT {columns} FROM {table} WHERE execution_id = {p} AND seq > {p} "
        f"AND event_type IN ({types}) ORDER BY seq"
    )
    return sql, [execution_id, after]


def item_starts(table: str, execution_id: str, after: int, upto: int, p: str) -> tuple[str, list[Any]]:
    sql = (
        f"SELECT node_name, count(*) FROM {table} WHERE execution_id = {p} AND seq > {p} AND seq <= {p} "
        f"AND event_type = 'iteration_started' GROUP BY node_name"
    )
    return sql, [execution_id, after, upto]


def executions_page(
    select: str, f: ExecutionFilter, limit: int, offset: int, p: str
) -> tuple[str, list[Any]]:
    where, params = _execution_where(f, p)
    sql = f"{select}{where} ORDER BY created_at DESC, execution_id LIMIT {p} OFFSET {p}"
    return sql, [*params, limit, offset]


def executions_count(table: str, f: ExecutionFilter, p: str) -> tuple[str, list[Any]]:
    where, params = _execution_where(f, p)
    return f"SELECT count(*) FROM {table}{where}", params


def child_counts(table: str, ids: list[str], p: str) -> tuple[str, list[Any]]:
    sql = (
        f"SELECT parent_execution_id, count(*) FROM {table} "
        f"WHERE parent_execution_id IN ({', '.join([p] * len(ids))}) GROUP BY parent_execution_id"
    )
    return sql, list(ids)


def _execution_where(f: ExecutionFilter, p: str) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if f.status:
        where.append(f"status = {p}")
        params.append(f.status)
    if f.playbook:
        where.append(f"playbook_path LIKE {p} ESCAPE '\\'")
        literal = f.playbook.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{literal}%")
    if f.since:
        where.append(f"created_at >= {p}")
        params.append(f.since)
    if f.until:
        where.append(f"created_at < {p}")
        params.append(f.until)
    if f.parent:
        where.append(f"parent_execution_id = {p}")
        params.append(f.parent)
    elif f.roots:
        where.append("parent_execution_id IS NULL")
    return (" WHERE " + " AND ".join(where)) if where else "", params
