"""Benchmark: an iterator's per-item postgres upsert save, unbatched and with `batch: N`, against psycopg.

One run starts a throwaway PostgreSQL (unless --dsn or NOETL_TEST_PG_DSN; fsync off, as for the tests)
and times, for --items items (default 5,000), each against an empty table `items (id int primary key,
value text not null)`:

- engine, per-item save: a sequential iterator whose python task returns `{"id": i, "value": "v<i>"}`
  and whose save upserts it (`mode: upsert, key: id`), every event persisted in a SQLite store; timed
  until the execution is reported finished, that is until its events are durable;
- engine, `batch: N` (--batch, default 500): the same save with `batch: N`;
- engine, no save: the same iterator without the save, for what the save itself adds per item;
- floor, one transaction per row: a psycopg loop over the same rows, `execute(upsert)` then `commit()`;
- floor, autocommit per row: the same loop on an autocommit connection (one round trip per row);
- floor, one executemany: every row in one `executemany` (psycopg pipelines it), one transaction.

It prints the median of --repeat runs (default 3; the measures alternate), wall time and this
process's CPU time per item (the CPU figure moves much less when other processes load the machine; the
server's own CPU is in neither), and the two ratios of issue 10, of wall times: per-item save /
one-transaction-per-row floor (target <= 1.3x) and `batch: N` / executemany floor (target <= 3x).

With --instructions it also counts this process's CPU instructions per item (bench/instructions.py,
valgrind) of the engine with `batch: N` and without a save, and their difference: the batched save's
own cost in a figure the machine's load does not move (what the server does is not counted).

    .venv/bin/python bench/saves.py [--items 5000] [--batch 500] [--repeat 3] [--dsn postgresql://...]
                                    [--instructions]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import instructions  # noqa: E402
import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from noetl.dsl import parse_playbook  # noqa: E402
from noetl.runtime.local import LocalRunner  # noqa: E402
from noetl.store import open_store  # noqa: E402
from noetl.store.codec import COLUMNS, json_text  # noqa: E402
from noetl.store.sqlite import EventInserts  # noqa: E402
from tests.pg import ThrowawayPostgres  # noqa: E402

UPSERT = (
    "INSERT INTO items (id, value) VALUES (%(id)s, %(value)s) "
    "ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value"
)

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: bench_saves}
workload: {n: 100}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(workload.n) | list }}"
    element: x
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        def main(x):
            return {"id": x, "value": "v" + str(x)}
SAVE
    next: [{step: end}]
  - step: end
"""

SAVE = """      save:
        storage: postgres
        auth: pg_bench
        table: items
        mode: upsert
        key: id
        BATCH
        args: {id: "{{ this.id }}", value: "{{ this.value }}"}"""


def playbook(save: bool, batch: int | None = None) -> str:
    block = SAVE.replace("BATCH", f"batch: {batch}" if batch else "") if save else ""
    return PLAYBOOK.replace("SAVE", block)


def reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, value text NOT NULL)")


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM items").fetchone()
        return int(row[0]) if row else 0


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def timed(run: Callable[[], object]) -> Timing:
    w0, c0 = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - w0, time.process_time() - c0


def engine(dsn: str, folder: Path, items: int, *, save: bool, batch: int | None = None) -> Timing:
    reset(dsn)
    p = conninfo_to_dict(dsn)
    store = open_store(str(folder / f"engine-{time.monotonic_ns()}.db"))
    fields = {
        "db_host": p.get("host"),
        "db_port": p.get("port", 5432),
        "db_user": p.get("user"),
        "db_password": p.get("password", ""),
        "db_name": p.get("dbname"),
    }
    store.put_credential("pg_bench", "postgres", fields)
    pb = parse_playbook(playbook(save, batch))
    outcomes = []
    # Until run() returns, which includes the final flush: every event is durable then.
    elapsed = timed(lambda: outcomes.append(LocalRunner(store).run(pb, {"n": items})))
    outcome = outcomes[0]
    store.close()
    if outcome.status != "COMPLETED":
        raise SystemExit(f"the engine's run failed: {outcome.error}")
    if save and count(dsn) != items:
        raise SystemExit(f"the engine saved {count(dsn)} rows, not {items}")
    return elapsed


def rows_of(items: int) -> list[dict[str, Any]]:
    return [{"id": i, "value": f"v{i}"} for i in range(items)]


def floor_per_row(dsn: str, items: int) -> Timing:
    """One transaction per row: the upsert, then COMMIT."""
    reset(dsn)
    rows = rows_of(items)
    with psycopg.connect(dsn) as conn:

        def run() -> None:
            for row in rows:
                conn.execute(UPSERT, row)
                conn.commit()

        return timed(run)


def floor_autocommit(dsn: str, items: int) -> Timing:
    """One statement per row on an autocommit connection: each is a transaction of its own."""
    reset(dsn)
    rows = rows_of(items)
    with psycopg.connect(dsn, autocommit=True) as conn:

        def run() -> None:
            for row in rows:
                conn.execute(UPSERT, row)

        return timed(run)


def floor_executemany(dsn: str, items: int) -> Timing:
    """Every row in one executemany (pipelined by psycopg), in one transaction."""
    reset(dsn)
    rows = rows_of(items)
    with psycopg.connect(dsn) as conn:

        def run() -> None:
            with conn.cursor() as cur:
                cur.executemany(UPSERT, rows)
            conn.commit()

        return timed(run)


def floor_executemany_with_events(dsn: str, folder: Path, items: int, batch: int) -> Timing:
    """The batched engine's work without the engine: the same executemany, one transaction per `batch`
    rows, and the four events a batched item writes (iteration_started, save_started before the batch;
    save_completed, iteration_completed after its commit) with the same columns and JSON, inserted into
    the store's own SQLite schema as the store inserts them (up to 128 rows a statement, 512 rows a
    transaction; bench/iterator.py's floor does the same for two events per item)."""
    reset(dsn)
    path = folder / f"floor-{time.monotonic_ns()}.db"
    open_store(str(path)).close()  # the store's schema, indexes and pragmas
    events = sqlite3.connect(path, isolation_level=None)
    events.execute("PRAGMA journal_mode=WAL")
    events.execute("PRAGMA synchronous=NORMAL")
    inserts = EventInserts(events)
    context = {"storage": "postgres", "mode": "upsert", "table": "items", "auth": "pg_bench", "key": ["id"]}
    context["batch"] = batch
    values: list[Any] = []  # the rows' values in one flat list, as the store fills it

    def write_events() -> None:
        events.execute("BEGIN")
        inserts(events.cursor(), values)
        events.execute("COMMIT")
        values.clear()

    def main(x: int) -> dict[str, Any]:
        return {"id": x, "value": "v" + str(x)}

    with psycopg.connect(dsn) as conn:

        def run() -> None:
            add = values.extend
            full = 512 * len(COLUMNS)
            waiting: list[tuple[int, float, dict[str, Any]]] = []
            seq = 0
            for i in range(items):
                started = time.monotonic()
                add(
                    (
                        "e",
                        seq + 1,
                        None,
                        1,
                        "iteration_started",
                        "loop",
                        f"loop:iter_{i}",
                        "iteration",
                        "RUNNING",
                        datetime.now(UTC).isoformat(),
                        None,
                        i,
                        json_text(i),
                        1,
                        None,
                        None,
                        None,
                        None,
                        seq + 1,
                    )
                )
                result = main(i)
                add(
                    (
                        "e",
                        seq + 2,
                        None,
                        seq + 1,
                        "save_started",
                        "loop",
                        f"loop:save_iter_{i}",
                        "save",
                        "RUNNING",
                        datetime.now(UTC).isoformat(),
                        None,
                        i,
                        None,
                        None,
                        json_text(context),
                        None,
                        None,
                        None,
                        seq + 2,
                    )
                )
                seq += 2
                waiting.append((i, started, result))
                if len(waiting) == batch or i == items - 1:
                    written = time.monotonic()
                    with conn.cursor() as cur:
                        cur.executemany(UPSERT, [r for _, _, r in waiting])
                    conn.commit()
                    write = round(time.monotonic() - written, 6)
                    for index, t0, r in waiting:
                        meta = {"rows": 1, "attempt": 1, "storage": "postgres", "batch": len(waiting)}
                        meta["batch_rows"], meta["batch_write"] = len(waiting), write
                        took = round(time.monotonic() - t0, 6)
                        add(
                            (
                                "e",
                                seq + 1,
                                None,
                                seq,
                                "save_completed",
                                "loop",
                                f"loop:save_iter_{index}",
                                "save",
                                "COMPLETED",
                                datetime.now(UTC).isoformat(),
                                took,
                                index,
                                None,
                                None,
                                None,
                                None,
                                None,
                                json_text(meta),
                                seq + 1,
                            )
                        )
                        add(
                            (
                                "e",
                                seq + 2,
                                None,
                                1,
                                "iteration_completed",
                                "loop",
                                f"loop:iter_{index}",
                                "iteration",
                                "COMPLETED",
                                datetime.now(UTC).isoformat(),
                                took,
                                index,
                                None,
                                1,
                                None,
                                json_text(r),
                                None,
                                json_text({"rows": 1}),
                                seq + 2,
                            )
                        )
                        seq += 2
                        if len(values) >= full:
                            write_events()
                    waiting.clear()
                if len(values) >= full:
                    write_events()
            write_events()

        try:
            return timed(run)
        finally:
            events.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", default=os.environ.get("NOETL_TEST_PG_DSN"))
    parser.add_argument("--instructions", action="store_true", help="also count instructions (valgrind)")
    parser.add_argument("--one", choices=["batch", "none"], help=argparse.SUPPRESS)  # (under valgrind)
    args = parser.parse_args()
    if args.one:
        instructions.as_slow_as_valgrind()
        with tempfile.TemporaryDirectory() as tmp:
            engine(args.dsn, Path(tmp), args.items, save=args.one == "batch", batch=args.batch)
        return
    server = None
    dsn = args.dsn
    if not dsn:
        server = ThrowawayPostgres()
        dsn = server.start()
    try:
        measure(dsn, args.items, args.batch, args.repeat)
        if args.instructions:
            count_instructions(dsn, args.batch)
    finally:
        if server is not None:
            server.stop()


def measure(dsn: str, items: int, batch: int, repeat: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="noetl-bench-saves-"))
    measures: dict[str, Callable[[], Timing]] = {
        "engine, per-item save": lambda: engine(dsn, folder, items, save=True),
        f"engine, batch: {batch}": lambda: engine(dsn, folder, items, save=True, batch=batch),
        "engine, no save": lambda: engine(dsn, folder, items, save=False),
        "floor, one transaction per row": lambda: floor_per_row(dsn, items),
        "floor, autocommit per row": lambda: floor_autocommit(dsn, items),
        "floor, one executemany": lambda: floor_executemany(dsn, items),
        f"floor, executemany per {batch} + events": lambda: floor_executemany_with_events(
            dsn, folder, items, batch
        ),
    }
    engine(dsn, folder, 200, save=True)  # warm-up: imports, the first connection, the SQLite schema
    times: dict[str, list[Timing]] = {name: [] for name in measures}
    for _ in range(repeat):
        for name, run in measures.items():
            times[name].append(run())
    per_item = {name: statistics.median(w for w, _ in values) / items * 1e6 for name, values in times.items()}
    cpu = {name: statistics.median(c for _, c in values) / items * 1e6 for name, values in times.items()}
    print(f"items: {items}  batch: {batch}  runs: {repeat} (median)  PostgreSQL {server_version(dsn)}")
    for name, us in per_item.items():
        print(f"{name + ':':36} {us:8.1f} us per item  (CPU here {cpu[name]:6.1f} us)")
    unbatched = per_item["engine, per-item save"] / per_item["floor, one transaction per row"]
    batched = per_item[f"engine, batch: {batch}"] / per_item["floor, one executemany"]
    print(f"ratio per-item save / one transaction per row: {unbatched:.2f}x (target <= 1.3x)")
    print(f"ratio batch: {batch} / one executemany: {batched:.2f}x (target <= 3x)")
    with_events = per_item[f"floor, executemany per {batch} + events"]
    print(
        f"  the same ratio of the floor that also writes the four events per item: "
        f"{with_events / per_item['floor, one executemany']:.2f}x (a plain loop that persists them "
        f"as the store does); engine / that floor: {per_item[f'engine, batch: {batch}'] / with_events:.2f}x"
    )
    bare = per_item["engine, no save"]
    print(
        f"the save's own cost per item (engine with it minus engine without): "
        f"{per_item['engine, per-item save'] - bare:.1f} us per-item save, "
        f"{per_item[f'engine, batch: {batch}'] - bare:.1f} us with batch: {batch}"
    )


def count_instructions(dsn: str, batch: int, small: int = 500, large: int = 2_500) -> None:
    """Instructions per item of the engine with `batch: N` and without a save (about 40 s in all)."""

    def per_item(which: str) -> int:
        argv = [__file__, "--one", which, "--dsn", dsn, "--batch", str(batch), "--items"]
        return instructions.per_item(lambda n: [*argv, str(n)], small, large)

    batched, bare = per_item("batch"), per_item("none")
    print(
        f"instructions per item (valgrind, this process only): batch: {batch} {batched:,}, "
        f"no save {bare:,}; the batched save's own {batched - bare:,}"
    )


def server_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return str(conn.info.parameter_status("server_version") or "?")


if __name__ == "__main__":
    main()
