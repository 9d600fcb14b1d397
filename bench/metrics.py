"""Benchmark: the time of one /metrics scrape over 10,000 and over 1,000,000 stored events, on SQLite and
on PostgreSQL, next to the grouped query over the whole events table that each scrape ran before the
rollup (noetl.store.event_stats).

The events are iterator-shaped (an `iteration_started` and an `iteration_completed` with a duration per
item, 1,000 items per execution) and written through the store's own `append`, in batches of 10,000, so
the rollup is kept as in a run: by the batch writer on SQLite; on PostgreSQL folded after commit, by the
untimed scrape that checks the count, so the timed ones have nothing left to fold. Each figure is the median of --repeat scrapes (`noetl.server.metrics.render`, the text the endpoint serves) after one
warm-up. With --dsn the events are added to that database (use a throwaway one).

    .venv/bin/python bench/metrics.py [--sizes 10000,1000000] [--repeat 5] [--skip-postgres] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from noetl.engine.events import Event  # noqa: E402
from noetl.engine.events import EventType as T  # noqa: E402
from noetl.server import metrics  # noqa: E402
from noetl.store.event_stats import backfill_sql  # noqa: E402
from noetl.store.postgres import PostgresStore  # noqa: E402
from noetl.store.sqlite import SQLiteStore  # noqa: E402
from tests.pg import ThrowawayPostgres  # noqa: E402

ITEMS_PER_EXECUTION = 1000
BATCH = 10_000


def fill(store: Any, upto: int, have: int) -> None:
    """Append iterator-shaped events until the store holds `upto` (it holds `have`)."""
    batch: list[Event] = []
    for n in range(have, upto, 2):
        execution, item = divmod(n // 2, ITEMS_PER_EXECUTION)
        common = {
            "execution_id": f"bench-{execution:06d}",
            "node_name": "loop",
            "node_type": "iteration",
            "current_index": item,
            "created_at": "2026-12-01T10:00:00.000001+00:00",
        }
        batch.append(Event(event_id=2 * item + 1, event_type=T.ITERATION_STARTED, status="RUNNING", **common))
        duration = (item % 97) / 1000  # 0 to 96 ms: several buckets
        batch.append(
            Event(
                event_id=2 * item + 2,
                event_type=T.ITERATION_COMPLETED,
                status="COMPLETED",
                duration=duration,
                result=item * 2,
                **common,
            )
        )
        if len(batch) >= BATCH:
            store.append(batch)
            batch = []
    store.append(batch)
    store.flush()


def median_seconds(work: Callable[[], Any], repeat: int) -> float:
    work()  # warm-up: connections, page cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def old_scrape(store: Any) -> Callable[[], Any]:
    """The grouped query over the events table that every scrape ran before (it is the backfill's)."""
    if isinstance(store, PostgresStore):
        sql = backfill_sql("noetl_events")

        def on_postgres() -> Any:
            with store.connection() as conn:
                return conn.execute(sql).fetchall()

        return on_postgres
    sql = backfill_sql("events")
    return lambda: store._conn.execute(sql).fetchall()


def measure(label: str, store: Any, sizes: list[int], repeat: int) -> None:
    have = 0
    for size in sizes:
        t0 = time.perf_counter()
        fill(store, size, have)
        have = size
        filled = time.perf_counter() - t0
        text = metrics.render(store)
        assert f'noetl_items_total{{status="COMPLETED"}} {size // 2}' in text, (
            "the scrape does not count them"
        )
        scrape = median_seconds(lambda: metrics.render(store), repeat)
        scan = median_seconds(old_scrape(store), repeat)
        print(
            f"{label:<10} {size:>9,} events (written in {filled:6.1f} s): scrape {scrape * 1000:7.2f} ms, "
            f"grouped query over the log {scan * 1000:9.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="event counts, ascending, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--dsn", default=os.environ.get("NOETL_TEST_PG_DSN"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    os.environ.setdefault("NOETL_SECRET_KEY", "bench")
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as folder:
        store = SQLiteStore(Path(folder) / "metrics.db")
        try:
            measure("sqlite", store, sizes, args.repeat)
        finally:
            store.close()
    if args.skip_postgres:
        return
    server = None if args.dsn else ThrowawayPostgres()
    dsn = args.dsn or server.start()  # type: ignore[union-attr]
    try:
        pg = PostgresStore(dsn)
        try:
            measure("postgresql", pg, sizes, args.repeat)
        finally:
            pg.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
