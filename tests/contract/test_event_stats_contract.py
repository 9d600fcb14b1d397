"""The event rollup behind /metrics (noetl.store.event_stats) says what a grouped query over the whole log
says, on both stores: kept by every batch (SQLite's writer; PostgreSQL's trigger, whoever writes), by
several writers at once, and counted once for a store that had events before the rollup existed."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.store import event_stats
from noetl.store.event_stats import BUCKETS, backfill_sql, rollup, stats_rows
from noetl.store.sqlfiles import migrations
from tests.contract.backends import Backend, PostgresBackend


def events(execution_id: str, items: int, duration: float = 0.004) -> list[Event]:
    """An iterator-shaped execution: items with durations spread over several buckets, then its end."""
    out = [Event(execution_id=execution_id, event_id=1, event_type=T.EXECUTION_START, node_name="x")]
    for i in range(items):
        common: dict[str, Any] = {"execution_id": execution_id, "node_name": "loop", "current_index": i}
        out.append(Event(event_id=2 + 2 * i, event_type=T.ITERATION_STARTED, **common))
        kind = T.ITERATION_FAILED if i % 5 == 4 else T.ITERATION_COMPLETED
        out.append(Event(event_id=3 + 2 * i, event_type=kind, duration=duration * (i % 13) * 7, **common))
    end = Event(
        execution_id=execution_id, event_id=2 + 2 * items, event_type=T.EXECUTION_COMPLETE, duration=9.5
    )
    return [*out, end]


def scanned(backend: Backend, store: Any) -> list[tuple[Any, ...]]:
    """What the grouped query over the events table says (the query every scrape ran before)."""
    if backend.name == "postgres":
        with store.connection() as conn:
            rows = conn.execute(backfill_sql("noetl_events") + " ORDER BY event_type, status").fetchall()
    else:
        with sqlite3.connect(backend.url) as conn:
            rows = conn.execute(backfill_sql("events") + " ORDER BY event_type, status").fetchall()
        conn.close()
    return stats_rows(rows)


def same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert [(*r[:4], *r[5:]) for r in a] == [(*r[:4], *r[5:]) for r in b]
    assert [r[4] for r in a] == pytest.approx([r[4] for r in b])  # sums of floats, added in another order


def test_the_rollup_says_what_the_log_says(backend: Backend) -> None:
    store: Any = backend.open()
    for n in range(3):  # several batches, several executions
        store.append(events(f"x{n}", 40 + n))
        store.flush()
    rows = store.event_stats()
    same(rows, scanned(backend, store))
    by_group = {(r[0], r[1]): r for r in rows}
    assert by_group[(T.ITERATION_STARTED, "RUNNING")][2] == 40 + 41 + 42
    assert by_group[(T.EXECUTION_COMPLETE, "COMPLETED")][2:4] == (3, 3)
    assert by_group[(T.EXECUTION_COMPLETE, "COMPLETED")][-1] == 3  # 9.5 s: in the buckets from 10 s up
    assert by_group[(T.EXECUTION_COMPLETE, "COMPLETED")][5 + 9] == 0


def test_refused_events_are_not_counted(backend: Backend) -> None:
    store: Any = backend.open()
    store.append(events("x", 3))
    store.flush()
    store.append([Event(execution_id="x", event_id=99, event_type=T.STEP_STARTED, node_name="late")])
    store.flush()  # after the end: refused, so not in the log and not in the figures
    rows = store.event_stats()
    assert (T.STEP_STARTED, "RUNNING") not in {(r[0], r[1]) for r in rows}
    same(rows, scanned(backend, store))


def test_writers_of_two_stores_add_up(backend: Backend) -> None:
    first: Any = backend.open()
    second: Any = backend.open()  # another process, another host: its own batch writer (its own shard)
    for n in range(4):
        (first if n % 2 else second).append(events(f"x{n}", 25))
    first.flush()
    second.flush()
    same(first.event_stats(), scanned(backend, first))
    assert first.event_stats() == second.event_stats()


def test_events_stored_before_the_rollup_are_counted_once(backend: Backend) -> None:
    store: Any = backend.open()
    store.append(events("x", 30))
    store.flush()
    before = store.event_stats()
    store.close()
    if backend.name == "postgres":  # the store as it was before migration 006
        import psycopg

        with psycopg.connect(backend.url, autocommit=True) as conn:
            conn.execute("DROP TABLE noetl_event_stats_marks")
            conn.execute("DROP TABLE noetl_event_stats")
            conn.execute(
                "DELETE FROM noetl_schema_migrations "
                "WHERE name IN ('006_event_stats.sql', '008_event_stats_folded.sql')"
            )
    else:
        with sqlite3.connect(backend.url) as conn:
            conn.execute("DROP TABLE event_stats")
        conn.close()
    again: Any = backend.open()  # migrates / creates the table, and counts what the log holds
    same(again.event_stats(), before)
    again.close()
    third: Any = backend.open()  # and only once
    same(third.event_stats(), before)


def test_a_batch_adds_one_row_per_event_type_and_status() -> None:
    rows = rollup(events("x", 100))
    assert [(r[0], r[1]) for r in rows] == sorted({(e.event_type, e.status) for e in events("x", 100)})
    assert sum(r[2] for r in rows) == len(events("x", 100))


def test_each_duration_falls_in_the_bucket_whose_bound_it_does_not_pass() -> None:
    """(BUCKETS[i-1], BUCKETS[i]]: a duration on a bound is in that bound's bucket; past the last bound,
    in none (only +Inf); none, NaN: counted as events, not timed."""
    durations = [None, float("nan"), -1.0, 0.0, 0.005, 0.0050001, 0.01, 3600.0, 3600.5, 0.3, 0.3]
    batch = [
        Event(
            "x", "iteration_completed", "loop", f"loop:iter_{i}", "iteration", "COMPLETED", i + 1, duration=d
        )
        for i, d in enumerate(durations)
    ]
    ((event_type, status, count, timed, total, *buckets),) = rollup(batch)
    assert (event_type, status, count, timed) == ("iteration_completed", "COMPLETED", 11, 9)
    assert total == pytest.approx(-1.0 + 0.005 + 0.0050001 + 0.01 + 3600.0 + 3600.5 + 0.6)
    expected = [0] * len(BUCKETS)
    expected[0] = 3  # -1, 0 and 0.005 itself
    expected[1] = 2  # just past 0.005, and 0.01 itself
    expected[BUCKETS.index(0.5)] = 2  # 0.3 twice
    expected[-1] = 1  # 3600 itself; 3600.5 is past every bound
    assert buckets == expected


def test_the_postgres_migration_counts_events_as_the_code_does() -> None:
    (sql,) = [text for name, text in migrations("postgres") if name == "006_event_stats.sql"]
    flat = " ".join(sql.replace("(", "( ").replace(")", " )").split())

    def norm(text: str) -> str:
        return " ".join(text.replace("(", "( ").replace(")", " )").split())

    assert norm(backfill_sql("noetl_events")) in flat  # the events stored before it
    for column in event_stats.BUCKET_COLUMNS:
        assert f"{column} " in sql


@pytest.mark.postgres
def test_postgres_counts_events_whoever_writes_them(pg_dsn: str) -> None:
    import psycopg

    from noetl.store.postgres import PostgresStore

    store = PostgresStore(pg_dsn)
    try:
        # A writer that is not this code (another version, another language) keeps migration 004's
        # protocol: the execution's last_seq advances in the transaction that commits its events.
        with psycopg.connect(pg_dsn) as conn, conn.transaction():
            conn.execute(
                "INSERT INTO noetl_event_sequences (execution_id, last_seq) VALUES ('other', 1) "
                "ON CONFLICT (execution_id) DO UPDATE SET last_seq = noetl_event_sequences.last_seq + 1"
            )
            conn.execute(
                "INSERT INTO noetl_events (execution_id, event_id, event_type, status, created_at, duration, seq) "
                "VALUES ('other', 1, 'step_completed', 'COMPLETED', '2026-01-01T00:00:00+00:00', 0.2, 1)"
            )
        rows = {(r[0], r[1]): r for r in store.event_stats()}
        assert rows[("step_completed", "COMPLETED")][2:4] == (1, 1)
        assert rows[("step_completed", "COMPLETED")][5:10] == (0, 0, 0, 0, 0)  # 0.2 s: above 0.1 ...
        assert rows[("step_completed", "COMPLETED")][10] == 1  # ... and within 0.25
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_writers_pay_nothing_for_the_rollup(pg_dsn: str) -> None:
    """No trigger on the log: a batch's transaction writes the events and their seq, nothing else; the
    events are counted by the next fold (the server's, every few seconds, or a scrape's)."""
    import psycopg

    from noetl.store.postgres import PostgresStore

    store = PostgresStore(pg_dsn)
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            triggers = conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'noetl_events'::regclass AND NOT tgisinternal"
            ).fetchall()
            assert triggers == []
            store.append(events("quiet", 10))
            store.flush()
            stored = conn.execute("SELECT COALESCE(SUM(events), 0) FROM noetl_event_stats").fetchone()
            store.fold_event_stats()
            folded = conn.execute("SELECT COALESCE(SUM(events), 0) FROM noetl_event_stats").fetchone()
        assert folded[0] - stored[0] == len(events("quiet", 10))
        store.fold_event_stats()  # nothing new: nothing added
        same(store.event_stats(), scanned(PostgresBackend(pg_dsn), store))
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_folds_racing_writers_count_every_event_once(pg_dsn: str) -> None:
    """Three writers (one per store object, like processes on several hosts) append while two other
    stores fold in a loop: at the end the rollup says exactly what the log says."""
    import threading

    from noetl.store.postgres import PostgresStore

    writers = [PostgresStore(pg_dsn) for _ in range(3)]
    folders = [PostgresStore(pg_dsn) for _ in range(2)]
    done = threading.Event()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for k in range(15):
                for chunk in _chunks(events(f"race-{n}-{k}", 30), 7):  # small batches, many commits
                    writers[n].append(chunk)
                    writers[n].flush()
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    def fold(store: Any) -> None:
        try:
            while not done.is_set():
                store.fold_event_stats()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    folding = [threading.Thread(target=fold, args=(s,)) for s in folders]
    try:
        for t in [*threads, *folding]:
            t.start()
        for t in threads:
            t.join()
        done.set()
        for t in folding:
            t.join()
        assert errors == []
        same(folders[0].event_stats(), scanned(PostgresBackend(pg_dsn), folders[0]))
        by_group = {(r[0], r[1]): r for r in folders[1].event_stats()}
        assert by_group[(T.ITERATION_STARTED, "RUNNING")][2] == 3 * 15 * 30  # a fresh database
    finally:
        for s in [*writers, *folders]:
            s.close()


def _chunks(items: list[Event], size: int) -> list[list[Event]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
