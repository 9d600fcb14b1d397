"""Benchmark the distributed runtime on a throwaway PostgreSQL with real worker processes.

One run prints three figures, each next to its target, all timed from the events the workers write:

1. Step-to-step scheduling latency over a chain of N python steps (--chain, default 30) on 1 worker:
   p50 and p95 in ms of the gap from one step's `step_completed` to the next step's `step_started`
   (created_at). Target: p50 <= 5 ms.
2. Items per second of an async iterator (`concurrency: 8`) of trivial python items returning `i * 2`
   (--items, default 2000), with 1 worker and with 2 workers, and the speed-up of 2 workers over one.
   Targets: >= 8,000 items/s with 2 workers; 2 workers >= 1.8x one. For comparison (no target), the
   same with two such executions started at once, their items per second together: their events take
   two sequence rows instead of one, which tells whether that row or the machine limits (2).
3. Items per second of an async iterator (`concurrency: 8`) of python items that sleep 50 ms
   (--slow-items, default 400) on 1 worker started with `--concurrency 4`, the ideal
   (4 slots / 0.05 s = 80 items/s) and the figure as a percentage of it. Target: within 10% of 80 items/s.

Beside each figure of (2): how many of the machine's cores were busy while the execution ran (all
processes, from /proc/stat), and the CPU time per item spent in the worker processes and in
everything else (PostgreSQL's backends, this script), from /proc. When one worker already keeps every core busy (its own process and the
PostgreSQL backends it drives), a second worker on the same machine has no core to run on, so the
speed-up of (2) measures the machine, not the workers. So (2) also prints the ceiling that follows
from it: the machine's cores over the cores busy with one worker.

Each measurement of (2) runs after one unmeasured execution of 200 items on the workers just started
(before 2026-12-03 it did not: the first execution of a new worker pays one-time costs). (1) pools the
gaps of --runs chains (default 5) and (2) prints the median of --runs executions with their range
(before session 10, 2026-12-03, one execution each: a single figure moved by a third between runs).

Items per second are the item count over the time from the iterator step's `iterator_started` to its
`iterator_completed` (same step, last attempt); for (2) and (3) the wall time from `execution_start` to
`execution_complete` is printed too. Every measured execution must have COMPLETED with every item
succeeded, or the run stops with an error. Workers are stopped between measurements, so each one runs
with exactly the workers it names.

    .venv/bin/python bench/distributed.py [--chain 30] [--items 2000] [--slow-items 400] [--runs 5]
                                          [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from noetl.runtime.control import start_execution  # noqa: E402
from noetl.store.postgres import PostgresStore  # noqa: E402
from tests.pg import ThrowawayPostgres  # noqa: E402

LOOP = "loop"  # the iterator step of the items playbooks
SLOW_SECONDS = 0.05
SLOW_WORKER_CONCURRENCY = 4
WARM_UP_ITEMS = 200  # one execution of this many items before each measured one of (2)
WAIT_TIMEOUT = 300.0  # seconds one execution may take before the benchmark gives up


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


def items_playbook(name: str, code: str) -> str:
    """An async iterator (concurrency 8) over range(workload.n); `code` is the item's python task."""
    body = "".join(f"        {line}\n" for line in code.strip().splitlines())
    return f"""apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: {name}}}
workload: {{n: 100}}
workflow:
  - step: start
    next: [{{step: {LOOP}}}]
  - step: {LOOP}
    type: iterator
    mode: async
    concurrency: 8
    collection: "{{{{ range(workload.n) | list }}}}"
    element: i
    task:
      type: python
      data: {{i: "{{{{ i }}}}"}}
      code: |
{body}    next: [{{step: end}}]
  - step: end
"""


ITEMS = items_playbook("items", "def main(i):\n    return i * 2")
SLOW_ITEMS = items_playbook(
    "slow_items", f"import time\ndef main(i):\n    time.sleep({SLOW_SECONDS})\n    return i"
)


class Workers:
    """Worker processes started with the real CLI module, their output kept in files of `logdir`."""

    def __init__(self, dsn: str, logdir: Path) -> None:
        self.dsn, self.logdir = dsn, logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self, n: int, concurrency: int = 4) -> None:
        env = {**os.environ, "NOETL_SECRET_KEY": os.environ["NOETL_SECRET_KEY"]}
        for _ in range(n):
            name = f"w{self.started}"
            self.started += 1
            with (self.logdir / f"{name}.log").open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "noetl.cli_worker",
                            "start",
                            "--db",
                            self.dsn,
                            "--name",
                            name,
                            "--concurrency",
                            str(concurrency),
                        ],
                        cwd=REPO,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        time.sleep(1.5)  # connected and listening
        for p in self.procs:
            if p.poll() is not None:
                raise SystemExit(f"a worker exited at start with {p.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    def tail(self, lines: int = 20) -> str:
        out = []
        for log in sorted(self.logdir.glob("w*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out) or "(the workers wrote nothing)"


def wait(store: PostgresStore, execution_id: str, what: str, workers: Workers) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline:
        record = store.execution(execution_id)
        if record and record.status in ("COMPLETED", "FAILED"):
            if record.status != "COMPLETED":
                raise SystemExit(
                    f"{what}: execution {execution_id} ended {record.status}, not COMPLETED: "
                    f"{record.error}\n{workers.tail()}"
                )
            return
        time.sleep(0.02)
    events = store.read(execution_id)
    latest = f"; the last was {events[-1].event_type} at {events[-1].created_at}" if events else ""
    raise SystemExit(
        f"{what}: execution {execution_id} did not finish in {WAIT_TIMEOUT:.0f} s "
        f"({len(events)} events written{latest})\n{workers.tail()}"
    )


def at(event: Any) -> datetime:
    return datetime.fromisoformat(event.created_at)


def last(events: list[Any], event_type: str, node_name: str | None = None) -> Any:
    found = [
        e for e in events if e.event_type == event_type and (node_name is None or e.node_name == node_name)
    ]
    return found[-1] if found else None


def latencies(events: list[Any], n: int) -> list[float]:
    """Gaps in ms from step s{i}'s step_completed to step s{i+1}'s step_started."""
    out = []
    for i in range(n - 1):
        done = last(events, "step_completed", f"s{i}")
        nxt = last(events, "step_started", f"s{i + 1}")
        if done is None or nxt is None:
            raise SystemExit(f"chain: step s{i} or s{i + 1} has no step_completed / step_started event")
        out.append((at(nxt) - at(done)).total_seconds() * 1000)
    return out


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank."""
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def iterator_timing(events: list[Any], count: int, what: str) -> tuple[float, float]:
    """(iterator seconds, wall seconds) of a finished items execution; checks every item succeeded."""
    completed = last(events, "iterator_completed", LOOP)
    if completed is None:
        failed = last(events, "iterator_failed", LOOP)
        raise SystemExit(f"{what}: no iterator_completed event; iterator_failed: {failed and failed.error}")
    started = [
        e
        for e in events
        if e.event_type == "iterator_started" and e.node_name == LOOP and e.attempt == completed.attempt
    ]
    if not started:
        raise SystemExit(f"{what}: no iterator_started event for attempt {completed.attempt}")
    succeeded = completed.meta.get("succeeded")
    if succeeded != count:
        raise SystemExit(f"{what}: iterator_completed says {succeeded} items succeeded, not {count}")
    begin, end = last(events, "execution_start"), last(events, "execution_complete")
    if begin is None or end is None:
        raise SystemExit(f"{what}: no execution_start / execution_complete event")
    iterator = (at(completed) - at(started[-1])).total_seconds()
    return iterator, (at(end) - at(begin)).total_seconds()


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (/proc/stat's `cpu` line):
    the workers, PostgreSQL, this script and anything else."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def process_jiffies(pids: list[int]) -> int:
    """CPU time (user + system, clock ticks) the processes `pids` have used so far."""
    used = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used += int(fields[11]) + int(fields[12])  # utime, stime
    return used


def run_items(
    store: PostgresStore, workers: Workers, path: str, count: int, what: str
) -> tuple[float, float, float, float, float]:
    """(items/s over the iterator, wall seconds of the execution, cores busy while it ran, CPU us per
    item in the worker processes, CPU us per item in everything else: PostgreSQL, this script)."""
    pids = [p.pid for p in workers.procs]
    busy0, total0 = cpu_jiffies()
    mine0 = process_jiffies(pids)
    execution_id = start_execution(store, path, {"n": count})
    wait(store, execution_id, what, workers)
    busy1, total1 = cpu_jiffies()
    mine = process_jiffies(pids) - mine0
    cores = (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)
    iterator, wall = iterator_timing(store.read(execution_id), count, what)
    per_tick = 1e6 / os.sysconf("SC_CLK_TCK") / count
    return count / iterator, wall, cores, mine * per_tick, (busy1 - busy0 - mine) * per_tick


def warm_up(store: PostgresStore, workers: Workers) -> None:
    """One small execution of the items playbook on the workers just started, not measured: the first
    execution a worker runs pays once for what later ones reuse (the playbook parsed and planned, the
    task's code compiled, the pool's connections opened)."""
    run_items(store, workers, "items", WARM_UP_ITEMS, f"the warm-up ({WARM_UP_ITEMS} items)")


def run_items_at_once(
    store: PostgresStore, workers: Workers, path: str, count: int, executions: int, what: str
) -> tuple[float, float]:
    """(items/s of all the executions together, cores busy): `executions` of the same playbook started
    at once. Their events go to different executions, so their writers never wait for one another's
    sequence row: beside run_items, this tells whether that lock or the machine limits throughput."""
    busy0, total0 = cpu_jiffies()
    ids = [start_execution(store, path, {"n": count}) for _ in range(executions)]
    for execution_id in ids:
        wait(store, execution_id, what, workers)
    busy1, total1 = cpu_jiffies()
    cores = (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)
    spans = []
    for execution_id in ids:
        events = store.read(execution_id)
        iterator_timing(events, count, what)  # checks that every item succeeded
        started = [e for e in events if e.event_type == "iterator_started" and e.node_name == LOOP]
        spans.append((at(started[-1]), at(last(events, "iterator_completed", LOOP))))
    seconds = (max(end for _, end in spans) - min(begin for begin, _ in spans)).total_seconds()
    return executions * count / seconds, cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", type=int, default=30)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--slow-items", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5, help="executions per measurement of (1) and (2)")
    parser.add_argument("--dsn", default=os.environ.get("NOETL_TEST_PG_DSN"))
    args = parser.parse_args()
    os.environ.setdefault("NOETL_SECRET_KEY", "bench")
    server = None if args.dsn else ThrowawayPostgres()
    dsn = args.dsn or server.start()  # type: ignore[union-attr]
    try:
        with tempfile.TemporaryDirectory(prefix="noetl-bench-") as logdir:
            store = PostgresStore(dsn, pool_size=8)
            workers = Workers(dsn, Path(logdir))
            try:
                store.register("chain", "chain", chain_playbook(args.chain))
                store.register("items", "items", ITEMS)
                store.register("slow_items", "slow_items", SLOW_ITEMS)

                # 1. step-to-step scheduling latency
                workers.start(1)
                gaps = []
                for _ in range(args.runs):
                    execution_id = start_execution(store, "chain")
                    wait(store, execution_id, "chain", workers)
                    gaps += latencies(store.read(execution_id), args.chain)
                workers.stop()
                gaps.sort()
                p50, p95 = statistics.median(gaps), percentile(gaps, 0.95)
                print(
                    f"1. step-to-step scheduling latency, {args.chain}-step python chain, "
                    f"{len(gaps)} transitions of {args.runs} executions, 1 worker:"
                )
                print(f"   p50 {p50:.1f} ms, p95 {p95:.1f} ms    target: p50 <= 5 ms [{met(p50 <= 5)}]")

                # 2. trivial async items, 1 and 2 workers
                rates, busy = {}, {}
                print(
                    f"2. async iterator (concurrency 8), {args.items} trivial items (i * 2), "
                    f"medians of {args.runs} executions:"
                )
                for count in (1, 2):
                    workers.start(count)
                    warm_up(store, workers)
                    what = f"{args.items} trivial items, {count} worker(s)"
                    runs = [run_items(store, workers, "items", args.items, what) for _ in range(args.runs)]
                    workers.stop()
                    rates[count], wall, cores, in_workers, elsewhere = (
                        statistics.median(r[k] for r in runs) for k in range(5)
                    )
                    busy[count] = cores
                    spread = f"{min(r[0] for r in runs):,.0f}-{max(r[0] for r in runs):,.0f}"
                    line = (
                        f"   {count} worker(s): {rates[count]:,.0f} items/s ({spread}; wall {wall:.2f} s, "
                        f"{cores:.2f} of {os.cpu_count()} cores busy; CPU per item {in_workers:.0f} us "
                        f"in workers, {elsewhere:.0f} us in PostgreSQL and the rest)"
                    )
                    if count == 2:
                        line += f"    target: >= 8,000 items/s with 2 workers [{met(rates[2] >= 8000)}]"
                    print(line)
                speedup = rates[2] / rates[1]
                print(f"   speed-up: {speedup:.2f}x    target: 2 workers >= 1.8x one [{met(speedup >= 1.8)}]")
                # Two workers on this machine cannot beat every core busy at one worker's CPU per item.
                ceiling = (os.cpu_count() or 1) / busy[1]
                print(
                    f"   ceiling of the speed-up on this machine: {os.cpu_count()} cores / {busy[1]:.2f} "
                    f"busy with 1 worker = {ceiling:.2f}x (every core busy at 1 worker's CPU per item)"
                )
                print(f"   for comparison, two such executions at once ({args.items} items each, together):")
                together = {}
                for count in (1, 2):
                    workers.start(count)
                    warm_up(store, workers)
                    what = f"two executions of {args.items} trivial items, {count} worker(s)"
                    together[count], cores = run_items_at_once(store, workers, "items", args.items, 2, what)
                    workers.stop()
                    print(
                        f"   {count} worker(s): {together[count]:,.0f} items/s "
                        f"({cores:.2f} of {os.cpu_count()} cores busy)"
                    )
                print(f"   speed-up with two executions: {together[2] / together[1]:.2f}x")

                # 3. 50 ms items on one worker with 4 slots
                ideal = SLOW_WORKER_CONCURRENCY / SLOW_SECONDS
                workers.start(1, concurrency=SLOW_WORKER_CONCURRENCY)
                what = f"{args.slow_items} items of 50 ms"
                rate, wall, *_ = run_items(store, workers, "slow_items", args.slow_items, what)
                workers.stop()
                share = rate / ideal
                print(
                    f"3. async iterator (concurrency 8), {args.slow_items} items of "
                    f"{SLOW_SECONDS * 1000:.0f} ms, 1 worker --concurrency {SLOW_WORKER_CONCURRENCY}:"
                )
                print(
                    f"   {rate:.1f} items/s (wall {wall:.2f} s), ideal {ideal:.0f} items/s, "
                    f"{share:.0%} of ideal    target: within 10% of {ideal:.0f} items/s "
                    f"[{met(abs(share - 1) <= 0.10)}]"
                )
            finally:
                workers.stop()
                store.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
