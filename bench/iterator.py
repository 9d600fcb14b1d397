"""Benchmark: a 10,000-item sequential iterator with a trivial python task, every event persisted on SQLite.

Prints the engine's time per item and its ratio to a plain Python loop that does the same work: calls the
function for every item and inserts the same number of event rows into SQLite in one transaction.

    .venv/bin/python bench/iterator.py [--items N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from noetl.dsl import parse_playbook
from noetl.runtime.local import LocalRunner
from noetl.store import open_store

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
    task:
      type: python
      data: {x: "{{ x }}"}
      code: |
        def main(x):
            return x * 2
    next: [{step: end}]
  - step: end
"""


def engine_run(items: int, folder: Path) -> tuple[float, int]:
    store = open_store(str(folder / f"engine-{time.monotonic_ns()}.db"))
    playbook = parse_playbook(PLAYBOOK)
    t0 = time.perf_counter()
    outcome = LocalRunner(store).run(playbook, {"n": items})
    elapsed = time.perf_counter() - t0  # includes the final flush: every event is durable here
    assert outcome.status == "COMPLETED", outcome.error
    events = len(store.read(outcome.execution_id))
    store.close()
    return elapsed, events


def plain_loop(items: int, rows: int, folder: Path) -> float:
    """The same work without the engine: call the function, insert `rows` event-shaped rows, one commit."""

    def main(x: int) -> int:
        return x * 2

    conn = sqlite3.connect(folder / f"plain-{time.monotonic_ns()}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE events (execution_id TEXT, event_id INTEGER, event_type TEXT, status TEXT, "
        "created_at TEXT, current_index INTEGER, result TEXT, meta TEXT, PRIMARY KEY (execution_id, event_id))"
    )
    t0 = time.perf_counter()
    batch = []
    per_item = max(1, rows // max(items, 1))
    for i in range(items):
        result = main(i)
        for k in range(per_item):
            batch.append(
                (
                    "e",
                    i * per_item + k,
                    "iteration_completed",
                    "COMPLETED",
                    datetime.now(UTC).isoformat(),
                    i,
                    json.dumps(result),
                    "{}",
                )
            )
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine_runs, plain_runs, events = [], [], 0
        for _ in range(args.repeat):
            elapsed, events = engine_run(args.items, folder)
            engine_runs.append(elapsed)
            plain_runs.append(plain_loop(args.items, events, folder))
    engine, plain = statistics.median(engine_runs), statistics.median(plain_runs)
    print(f"items: {args.items}  events persisted per run: {events}  runs: {args.repeat} (median)")
    print(f"engine:     {engine:.3f} s total, {engine / args.items * 1e6:.1f} us per item")
    print(f"plain loop: {plain:.3f} s total, {plain / args.items * 1e6:.1f} us per item")
    print(f"ratio engine / plain loop: {engine / plain:.1f}x")
    print(f"engine overhead per item: {(engine - plain) / args.items * 1e6:.1f} us")


if __name__ == "__main__":
    main()
