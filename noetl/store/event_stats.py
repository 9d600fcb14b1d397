"""A rollup of the event log for /metrics: per event type and status, how many events, and a histogram of
their durations, so that a scrape reads a few dozen rows instead of the whole log.

SQLite's batch writer adds a batch's figures in the transaction that writes the batch (`rollup` and
`upsert_sql`): it is the only writer, and the lock is held anyway. PostgreSQL folds them after commit
(`fold_sql`, migration 008): each execution has a watermark, the seq up to which its events are counted,
and a fold adds the events past it and moves it in one statement. The server folds every few seconds and
a scrape folds before it reads, so the figures are exact, count the events of every writer (workers on
other hosts, older versions), and cost the writers nothing. Migration 006 kept them in the writers'
transaction with a statement trigger; that cost about a fifth of the workers' throughput.

The table (`event_stats` in SQLite, `noetl_event_stats` in PostgreSQL) holds, per row, `events`,
`timed` (those with a duration), `duration_sum` and `le_0`..`le_15`: the durations that fall in
(BUCKETS[i-1], BUCKETS[i]], not cumulative, so an event adds to one bucket; `stats_rows` turns them into
the cumulative counts of a Prometheus histogram.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from noetl.engine.events import Event

# Seconds; the documented buckets of every noetl_*_duration_seconds histogram (5 ms to 1 h).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
BUCKET_COLUMNS = tuple(f"le_{i}" for i in range(len(BUCKETS)))
SUMMED = ("events", "timed", "duration_sum", *BUCKET_COLUMNS)

# (event_type, status, events, timed, duration_sum, then per bound the count of durations <= it)
StatsRow = tuple[Any, ...]


def rollup(events: Iterable[Event]) -> list[tuple[Any, ...]]:
    """(event_type, status, *SUMMED) per group of the batch, in sorted order (writers that share rows lock
    them in the same order, so two batches cannot deadlock)."""
    # Grouped first, then counted per group: a batch of 512 item events has two or three groups, and
    # per event this is a lookup and an append (the buckets are counted by bisecting the group's sorted
    # durations once per bound, not each duration into the bounds).
    groups: dict[tuple[str, Any], list[Any]] = {}
    group = groups.get
    for e in events:
        key = (e.event_type, e.status)
        durations = group(key)
        if durations is None:
            durations = groups[key] = []
        durations.append(e.duration)
    rows = []
    for (event_type, status), durations in sorted(groups.items()):
        timed = [d for d in durations if d is not None and d == d]  # a NaN would poison the sum forever
        total = 0.0
        for d in timed:  # (added in the order of the log)
            total += d
        timed.sort()
        counts = []
        below = 0
        for bound in BUCKETS:  # (BUCKETS[i-1], BUCKETS[i]]: past the last bound only +Inf counts it
            upto = bisect_right(timed, bound)
            counts.append(upto - below)
            below = upto
        rows.append((event_type, status, len(durations), len(timed), total, *counts))
    return rows


def upsert_sql(table: str, placeholder: str, key: Sequence[str] = ("event_type", "status")) -> str:
    """The statement that adds one rollup row (key columns, then SUMMED) to `table`."""
    columns = (*key, *SUMMED)
    return (
        f"INSERT INTO {table} AS s ({', '.join(columns)}) VALUES ({', '.join([placeholder] * len(columns))}) "
        + _adding_on_conflict(key)
    )


def _adding_on_conflict(key: Sequence[str]) -> str:
    """An existing row of the rollup (aliased `s`) gets the new figures added to its own."""
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET " + ", ".join(
        f"{c} = s.{c} + excluded.{c}" for c in SUMMED
    )


def select_sql(table: str) -> str:
    """The whole rollup, summed over any extra key columns (PostgreSQL's shards)."""
    return (
        f"SELECT event_type, status, {', '.join(f'SUM({c})' for c in SUMMED)} FROM {table} "
        "GROUP BY event_type, status ORDER BY event_type, status"
    )


def backfill_sql(events_table: str) -> str:
    """The rollup computed from the log itself: for a store that had events before the rollup existed."""
    above = ["", *(f"duration > {lo} AND " for lo in BUCKETS[:-1])]
    bounds = [
        f"SUM(CASE WHEN {gt}duration <= {hi} THEN 1 ELSE 0 END)"
        for gt, hi in zip(above, BUCKETS, strict=True)
    ]
    return (
        "SELECT event_type, status, COUNT(*), COUNT(duration), COALESCE(SUM(duration), 0), "
        + ", ".join(bounds)
        + f" FROM {events_table} GROUP BY event_type, status"
    )


def fold_sql(events_table: str, sequences_table: str, marks_table: str, stats_table: str) -> str:
    """PostgreSQL's rollup step, off the commit path: count the events committed since the last fold and
    move each execution's watermark, in one statement, so that one snapshot gives both.

    `sequences_table` holds each execution's `last_seq`, which advances in the transaction that commits
    the events it numbers (noetl.store.sequencing): every event with `seq <= last_seq` of a committed row
    is committed, and none is added there later. `marks_table` holds the `counted_seq` up to which an
    execution is already in the rollup. The events in between are added once, with the watermark moved
    to `last_seq` in the same transaction; a fold that fails or is killed leaves both as they were.
    Callers take an advisory lock first, so that two folds never read the same watermark."""
    grouped = backfill_sql("fresh").removeprefix("SELECT ")
    columns = ("event_type", "status", *SUMMED)
    return (
        "WITH pending AS ("
        f"SELECT q.execution_id, COALESCE(m.counted_seq, 0) AS counted, q.last_seq FROM {sequences_table} q "
        f"LEFT JOIN {marks_table} m ON m.execution_id = q.execution_id "
        "WHERE q.last_seq > COALESCE(m.counted_seq, 0)), "
        f"marked AS (INSERT INTO {marks_table} AS m (execution_id, counted_seq) "
        "SELECT execution_id, last_seq FROM pending "
        "ON CONFLICT (execution_id) DO UPDATE SET counted_seq = excluded.counted_seq), "
        f"fresh AS (SELECT e.event_type, e.status, e.duration FROM {events_table} e JOIN pending p "
        "ON e.execution_id = p.execution_id AND e.seq > p.counted AND e.seq <= p.last_seq) "
        f"INSERT INTO {stats_table} AS s ({', '.join(columns)}) SELECT {grouped} "
        "ORDER BY event_type, status " + _adding_on_conflict(("event_type", "status", "shard"))
    )


def stats_rows(rows: Iterable[Sequence[Any]]) -> list[StatsRow]:
    """Rows of select_sql as (event_type, status, events, timed, duration_sum, cumulative buckets...)."""
    out: list[StatsRow] = []
    for event_type, status, events, timed, total, *buckets in rows:
        running, cumulative = 0, []
        for n in buckets:
            running += int(n or 0)
            cumulative.append(running)
        out.append((event_type, status, int(events), int(timed), float(total or 0), *cumulative))
    return out
