"""Benchmark: a 10,000-item iterator with a trivial python task, every event persisted on SQLite.

Prints the engine's time per item next to the faithful floor: a plain Python loop that calls the same
function for every item and writes the same rows (all 19 columns, JSON text where the store has JSON,
two events per item) into a SQLite file with the store's own schema and indexes, committing every 512
rows as the store's writer does. Sequential and async (concurrency 8) are timed in the same run. The
same loop is also timed inserting its rows as the store does, up to 128 per statement: the floor of the
ratios stays the plain loop (executemany), the other figure shows what the store's own insert gains.

    .venv/bin/python bench/iterator.py [--items N] [--repeat R] [--modes sequential,async] [--instructions]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import instructions

from noetl.dsl import parse_playbook
from noetl.runtime.local import LocalRunner
from noetl.store import open_store
from noetl.store.codec import COLUMNS, json_text
from noetl.store.sqlite import EventInserts

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: bench_iterator}
workload: {n: 10000}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(workload.n) | list }}"
    element: x
    mode: MODE
    concurrency: 8
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        def main(x):
            return x * 2
    next: [{step: end}]
  - step: end
"""


def engine_run(items: int, folder: Path, mode: str, count_events: bool = True) -> tuple[float, int]:
    store = open_store(str(folder / f"engine-{time.monotonic_ns()}.db"))
    playbook = parse_playbook(PLAYBOOK.replace("MODE", mode))
    t0 = time.perf_counter()
    outcome = LocalRunner(store).run(playbook, {"n": items})
    elapsed = time.perf_counter() - t0  # includes the final flush: every event is durable here
    assert outcome.status == "COMPLETED", outcome.error
    events = len(store.read(outcome.execution_id)) if count_events else 0
    store.close()
    return elapsed, events


def faithful_floor(items: int, folder: Path, many_rows: bool = False) -> float:
    """The same work and the same rows without the engine: call the function, build both events' rows
    field by field, insert them into the store's own schema, one transaction per 512 rows."""

    def main(x: int) -> int:
        return x * 2

    path = folder / f"floor-{time.monotonic_ns()}.db"
    open_store(str(path)).close()  # the store's schema, indexes and pragmas
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    insert = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    # many_rows: the rows go in as the store writes them, up to 128 per statement (sqlite.EventInserts)
    inserts = EventInserts(conn) if many_rows else None

    def write(rows: list[Any]) -> None:
        conn.execute("BEGIN")
        if inserts is not None:
            inserts(conn.cursor(), rows)  # (the rows' values in one flat list, as the store fills it)
        else:
            conn.executemany(insert, rows)
        conn.execute("COMMIT")

    t0 = time.perf_counter()
    batch: list[Any] = []
    add = batch.extend if many_rows else batch.append  # many_rows: one flat list of values
    rows_per_write = 512 * len(COLUMNS) if many_rows else 512
    seq = 0
    for i in range(items):
        node_id = f"loop:iter_{i}"
        started = time.monotonic()
        seq += 1
        add(
            (
                "e",
                seq,
                None,
                2,
                "iteration_started",
                "loop",
                node_id,
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
                seq,
            )
        )
        result = main(i)
        seq += 1
        add(
            (
                "e",
                seq,
                None,
                2,
                "iteration_completed",
                "loop",
                node_id,
                "iteration",
                "COMPLETED",
                datetime.now(UTC).isoformat(),
                round(time.monotonic() - started, 6),
                i,
                None,
                1,
                None,
                json_text(result),
                None,
                None,
                seq,
            )
        )
        if len(batch) >= rows_per_write:
            write(batch)
            batch.clear()
    write(batch)
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="sequential,async")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count the CPU instructions per item of the sequential engine and of the floor "
        "(valgrind): a figure that the machine's speed does not move",
    )
    parser.add_argument("--one", choices=["engine", "floor"], help=argparse.SUPPRESS)  # (under valgrind)
    args = parser.parse_args()
    if args.one:
        instructions.as_slow_as_valgrind()
        with tempfile.TemporaryDirectory() as tmp:
            if args.one == "engine":
                engine_run(args.items, Path(tmp), "sequential", count_events=False)
            else:
                faithful_floor(args.items, Path(tmp))
        return
    modes = args.modes.split(",")
    runs: dict[str, list[float]] = {mode: [] for mode in modes}
    floor_runs: list[float] = []
    many_rows_runs: list[float] = []
    events = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(args.repeat):  # interleaved, so that a busy moment hits every series alike
            for mode in modes:
                elapsed, events = engine_run(args.items, folder, mode)
                runs[mode].append(elapsed)
            floor_runs.append(faithful_floor(args.items, folder))
            many_rows_runs.append(faithful_floor(args.items, folder, many_rows=True))
    n = args.items
    floor = statistics.median(floor_runs)
    print(f"items: {n}  events persisted per run: {events}  runs: {args.repeat} (median)")
    print(f"faithful floor: {floor:.3f} s total, {floor / n * 1e6:.1f} us per item")
    many = statistics.median(many_rows_runs)
    print(
        f"the same loop inserting rows as the store does (up to 128 per statement): "
        f"{many / n * 1e6:.1f} us per item"
    )
    for mode in modes:
        t = statistics.median(runs[mode])
        print(
            f"engine {mode:>10}: {t:.3f} s total, {t / n * 1e6:.1f} us per item, "
            f"{t / floor:.2f}x the floor, overhead {(t - floor) / n * 1e6:.1f} us per item"
        )
    if "sequential" in runs and "async" in runs:
        ratio = statistics.median(runs["async"]) / statistics.median(runs["sequential"])
        print(f"async / sequential: {ratio:.2f}x")
    if args.instructions:
        engine_ir, floor_ir = instructions_per_item("engine"), instructions_per_item("floor")
        print(
            f"instructions per item (valgrind): engine sequential {engine_ir:,}, floor {floor_ir:,}, "
            f"{engine_ir / floor_ir:.2f}x the floor"
        )
    print("targets (issue 10): sequential <= 22 us per item and <= 1.6x the floor; async <= 1.2x sequential")


def instructions_per_item(which: str, small: int = 1_000, large: int = 11_000) -> int:
    """CPU instructions per item of the sequential engine or of the floor (bench/instructions.py); the
    four valgrind runs take about half a minute."""
    return instructions.per_item(lambda n: [__file__, "--one", which, "--items", str(n)], small, large)


if __name__ == "__main__":
    main()
