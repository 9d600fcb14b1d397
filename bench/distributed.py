"""Benchmark the distributed runtime on a throwaway PostgreSQL with real worker processes.

Prints the step-to-step scheduling latency (from one step's step_completed to the next step's
step_started, p50 and p95 over a chain of python steps) and the items per second of an async iterator
of trivial python items with 1 and with 2 workers.

    .venv/bin/python bench/distributed.py [--chain 30] [--items 400] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from noetl.runtime.control import start_execution  # noqa: E402
from noetl.store.postgres import PostgresStore  # noqa: E402
from tests.pg import ThrowawayPostgres  # noqa: E402


def chain_playbook(n: int) -> str:
    steps = ["  - step: start\n    next: [{step: s0}]"]
    for i in range(n):
        nxt = f"s{i + 1}" if i + 1 < n else "end"
        steps.append(
            f"  - step: s{i}\n    type: python\n    code: |\n      def main():\n          return {i}\n"
            f"    next: [{{step: {nxt}}}]"
        )
    steps.append("  - step: end")
    return (
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: chain}\nworkflow:\n"
        + "\n".join(steps)
        + "\n"
    )


ITEMS = """apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: items}
workload: {n: 400}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    mode: async
    concurrency: 8
    collection: "{{ range(workload.n) | list }}"
    element: i
    task:
      type: python
      data: {i: "{{ i }}"}
      code: |
        import time
        def main(i):
            time.sleep(0.005)
            return i
    next: [{step: end}]
  - step: end
"""


def wait(store: PostgresStore, execution_id: str) -> None:
    while True:
        record = store.execution(execution_id)
        if record and record.status in ("COMPLETED", "FAILED"):
            assert record.status == "COMPLETED", record.error
            return
        time.sleep(0.02)


def start_workers(dsn: str, n: int) -> list[subprocess.Popen[bytes]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "noetl.cli_worker",
                "start",
                "--db",
                dsn,
                "--name",
                f"w{i}",
                "--concurrency",
                "4",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(n)
    ]
    time.sleep(1.5)  # connected and listening
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def latencies(store: PostgresStore, execution_id: str) -> list[float]:
    events = store.read(execution_id)
    out = []
    for done, nxt in itertools.pairwise(events):
        if done.event_type == "step_completed" and nxt.event_type == "step_started":
            gap = datetime.fromisoformat(nxt.created_at) - datetime.fromisoformat(done.created_at)
            out.append(gap.total_seconds() * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", type=int, default=30)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--dsn", default=os.environ.get("NOETL_TEST_PG_DSN"))
    args = parser.parse_args()
    os.environ.setdefault("NOETL_SECRET_KEY", "bench")
    server = None if args.dsn else ThrowawayPostgres()
    dsn = args.dsn or server.start()  # type: ignore[union-attr]
    try:
        store = PostgresStore(dsn, pool_size=8)
        store.register("chain", "chain", chain_playbook(args.chain))
        store.register("items", "items", ITEMS)
        procs = start_workers(dsn, 1)
        execution_id = start_execution(store, "chain")
        wait(store, execution_id)
        gaps = sorted(latencies(store, execution_id))
        print(
            f"step-to-step scheduling latency over {len(gaps)} transitions, 1 worker: "
            f"p50 {statistics.median(gaps):.1f} ms, p95 {gaps[int(0.95 * (len(gaps) - 1))]:.1f} ms"
        )
        rates = {}
        for count in (1, 2):
            if count == 2:
                procs += start_workers(dsn, 1)
            t0 = time.perf_counter()
            execution_id = start_execution(store, "items", {"n": args.items})
            wait(store, execution_id)
            rates[count] = args.items / (time.perf_counter() - t0)
            print(
                f"async iterator, {args.items} items of 5 ms, {count} worker(s): {rates[count]:.0f} items/s"
            )
        print(f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x")
        stop(procs)
        store.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
