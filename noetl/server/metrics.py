"""`/metrics`: Prometheus text built from the event log (one grouped query) and the broker's queue."""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from noetl.engine.events import EventType as T
from noetl.server.dispatch import is_postgres

log = logging.getLogger("noetl.server")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# One pass over the events table: counts, and the duration histogram of every (type, status).
# Plain SQL that SQLite and PostgreSQL both run; no parameters, so no placeholder style to pick.
EVENT_STATS_SQL = (
    "SELECT event_type, status, COUNT(*), COUNT(duration), COALESCE(SUM(duration), 0), "
    + ", ".join(f"SUM(CASE WHEN duration <= {b} THEN 1 ELSE 0 END)" for b in BUCKETS)
    + " FROM {table} GROUP BY event_type, status"
)

# metric -> (help, the event types it counts)
COUNTERS = {
    "noetl_executions_total": (
        "Executions by status: STARTED when accepted, then COMPLETED or FAILED",
        (T.EXECUTION_START, T.EXECUTION_COMPLETE, T.EXECUTION_FAILED),
    ),
    "noetl_steps_total": (
        "Step events by status: RUNNING when started, then COMPLETED or FAILED",
        (T.STEP_STARTED, T.STEP_COMPLETED, T.STEP_FAILED),
    ),
    "noetl_items_total": (
        "Iterator items (iteration events) by status",
        (T.ITERATION_STARTED, T.ITERATION_COMPLETED, T.ITERATION_FAILED),
    ),
    "noetl_saves_total": (
        "Saves by status (FAILED counts save_failed and save_error)",
        (T.SAVE_STARTED, T.SAVE_COMPLETED, T.SAVE_FAILED, T.SAVE_ERROR),
    ),
}
HISTOGRAMS = {
    "noetl_execution_duration_seconds": ("Execution durations", (T.EXECUTION_COMPLETE, T.EXECUTION_FAILED)),
    "noetl_step_duration_seconds": ("Step durations", (T.STEP_COMPLETED, T.STEP_FAILED)),
    "noetl_action_duration_seconds": ("Action attempt durations", (T.ACTION_COMPLETED, T.ACTION_ERROR)),
    "noetl_item_duration_seconds": ("Iterator item durations", (T.ITERATION_COMPLETED, T.ITERATION_FAILED)),
    "noetl_save_duration_seconds": ("Save durations", (T.SAVE_COMPLETED, T.SAVE_FAILED, T.SAVE_ERROR)),
}
Row = tuple[Any, ...]


def render(store: Any) -> str:
    """The whole exposition; a store that does not answer gives `noetl_store_up 0` and nothing else."""
    out: list[str] = []
    try:
        rows = event_stats(store)
    except Exception as exc:  # the scrape still answers, so an alert on noetl_store_up can fire
        log.warning("metrics: the store did not answer: %s", exc)
        return _gauge("noetl_store_up", "1 when the store answered the metrics query", [({}, 0)])
    out.append(_gauge("noetl_store_up", "1 when the store answered the metrics query", [({}, 1)]))
    out.append(
        _counter(
            "noetl_events_total",
            "Events by type and status",
            [({"event_type": r[0], "status": r[1]}, r[2]) for r in rows],
        )
    )
    for name, (text, types) in COUNTERS.items():
        out.append(_counter(name, text, _by_status(rows, types)))
    started = sum(r[2] for r in rows if r[0] == T.EXECUTION_START)
    ended = sum(r[2] for r in rows if r[0] in (T.EXECUTION_COMPLETE, T.EXECUTION_FAILED))
    out.append(
        _gauge(
            "noetl_executions_running",
            "Executions started and not yet finished",
            [({}, max(started - ended, 0))],
        )
    )
    for name, (text, types) in HISTOGRAMS.items():
        out.append(_histogram(name, text, [r for r in rows if r[0] in types]))
    out.append(_queue(store))
    return "".join(out)


def event_stats(store: Any) -> list[Row]:
    """Rows of EVENT_STATS_SQL, read with the store's own connection where it lends one."""
    if is_postgres(store):  # a connection from the store's pool
        with store.connection() as conn:
            return [tuple(r) for r in conn.execute(EVENT_STATS_SQL.format(table="noetl_events")).fetchall()]
    store.flush()  # events still in the batch writer belong in the figures
    # SQLite: a separate read-only connection, so a long scrape never holds the store's writer lock.
    with closing(sqlite3.connect(f"{Path(store.path).resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return [tuple(r) for r in conn.execute(EVENT_STATS_SQL.format(table="events")).fetchall()]


def _by_status(rows: Iterable[Row], types: tuple[str, ...]) -> list[tuple[dict[str, str], float]]:
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        if r[0] in types:
            totals[r[1]] += r[2]
    return [({"status": s}, v) for s, v in sorted(totals.items())]


def _histogram(name: str, text: str, rows: list[Row]) -> str:
    # Per status: the rows of several event types (completed, failed, error) add up.
    merged: dict[str, list[float]] = {}
    for r in rows:
        acc = merged.setdefault(r[1], [0.0] * (2 + len(BUCKETS)))
        for i, value in enumerate(r[3:]):
            acc[i] += value or 0
    lines = [f"# HELP {name} {text}\n", f"# TYPE {name} histogram\n"]
    for status, (count, total, *buckets) in sorted(merged.items()):
        for bound, value in zip(BUCKETS, buckets, strict=True):
            lines.append(f"{name}_bucket{_labels({'status': status, 'le': repr(bound)})} {_num(value)}\n")
        lines.append(f"{name}_bucket{_labels({'status': status, 'le': '+Inf'})} {_num(count)}\n")
        lines.append(f"{name}_sum{_labels({'status': status})} {_num(total)}\n")
        lines.append(f"{name}_count{_labels({'status': status})} {_num(count)}\n")
    return "".join(lines)


def _queue(store: Any) -> str:
    """Jobs by state and lease expiries: only a PostgreSQL store has a queue."""
    if not is_postgres(store):
        return ""
    from noetl.runtime.broker import lease_expiries, queue_depth

    try:
        depth, expired = queue_depth(store), lease_expiries(store)
    except Exception as exc:  # a failing queue query must not take the event figures down with it
        log.warning("metrics: the queue did not answer: %s", exc)
        return ""
    return _gauge(
        "noetl_queue_jobs",
        "Jobs in the queue by state",
        [({"state": k}, v) for k, v in sorted(depth.items())],
    ) + _counter(
        "noetl_lease_expiries_total", "Leases that expired and were handed to another worker", [({}, expired)]
    )


def _counter(name: str, text: str, samples: list[tuple[dict[str, str], float]]) -> str:
    return _family(name, text, "counter", samples)


def _gauge(name: str, text: str, samples: list[tuple[dict[str, str], float]]) -> str:
    return _family(name, text, "gauge", samples)


def _family(name: str, text: str, kind: str, samples: list[tuple[dict[str, str], float]]) -> str:
    lines = [f"# HELP {name} {text}\n", f"# TYPE {name} {kind}\n"]
    lines += [f"{name}{_labels(labels)} {_num(value)}\n" for labels, value in samples]
    return "".join(lines)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
