"""A process killed in the middle of a step leaves the same log, locally and on workers: the broker that
reaps a dead worker's lease and `noetl run --resume` both record the attempt as abandoned (`action_error`
with its reason, `action_retry`) and go on with the next attempt of the same run, which skips the items
already done (engine.recovery). Before, a local resume started a second run of the step instead, with a
second `step_started` and nothing that said why the first ended."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from noetl.engine.events import Event
from noetl.runtime.control import start_execution
from noetl.store.postgres import PostgresStore
from noetl.store.sqlite import SQLiteStore
from tests.helpers import REPO, cli
from tests.processes import Workers, broker_loop, finished_record

N = 60
PLAYBOOK = f"""
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: crash_loop, path: tests/crash_loop}}
workload: {{n: {N}}}
workflow:
  - step: start
    next: [{{step: loop}}]
  - step: loop
    type: iterator
    collection: "{{{{ range(workload.n) | list }}}}"
    element: n
    task:
      type: python
      data: {{n: "{{{{ n }}}}"}}
      code: |
        import time
        def main(n):
            time.sleep(0.05)
            return n * 3
    next: [{{step: end}}]
  - step: end
"""

# The loop step's own events after a kill during attempt 1, in both modes (items left out).
EXPECTED_SHAPE = [
    ("step_started", 1),
    ("action_started", 1),
    ("iterator_started", 1),
    ("action_error", 1),
    ("action_retry", 1),
    ("action_started", 2),
    ("iterator_started", 2),
    ("iterator_completed", 2),
    ("action_completed", 2),
    ("step_completed", 2),
]
ITEM_TYPES = {"iteration_started", "iteration_completed", "iteration_failed"}


def _shape(events: list[Event]) -> list[tuple[str, int | None]]:
    return [
        (e.event_type, e.attempt) for e in events if e.node_name == "loop" and e.event_type not in ITEM_TYPES
    ]


def _check_recovered(events: list[Event], reason: str) -> None:
    assert _shape(events) == EXPECTED_SHAPE
    loop = [e for e in events if e.node_name == "loop"]
    error = next(e for e in loop if e.event_type == "action_error")
    assert error.meta["reason"] == reason and "attempt 1; the attempt was abandoned" in (error.error or "")
    retry = next(e for e in loop if e.event_type == "action_retry")
    assert retry.meta["next_attempt"] == 2
    completed = [e.current_index for e in loop if e.event_type == "iteration_completed"]
    assert sorted(completed) == list(range(N)), "every item completed exactly once in the log"
    second = [e for e in loop if e.event_type == "iterator_started"][1]
    assert second.meta["resumed"] >= 5 and second.meta["count"] + second.meta["resumed"] == N
    end = events[-1]
    assert end.event_type == "execution_complete" and end.result == [n * 3 for n in range(N)]


def _completed_items(read: Any, execution_id: str) -> int:
    return sum(1 for e in read(execution_id) if e.event_type == "iteration_completed")


def test_a_killed_local_run_resumes_with_the_next_attempt(tmp_path: Path) -> None:
    playbook = tmp_path / "crash_loop.yaml"
    playbook.write_text(PLAYBOOK)
    db = tmp_path / "noetl.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "noetl.cli", "run", str(playbook), "--db", str(db), "--quiet"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    execution_id = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not db.exists():
        time.sleep(0.05)
    store = SQLiteStore(db)
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)
            listed = store.executions()
            if listed:
                execution_id = listed[0].execution_id
                if _completed_items(store.read, execution_id) >= 10:
                    break
    finally:
        store.close()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert execution_id, "the run never showed up in the store"

    resumed = cli("run", str(playbook), "--db", str(db), "--resume", execution_id, "--json", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "COMPLETED"
    store = SQLiteStore(db)
    try:
        events = store.read(execution_id)
    finally:
        store.close()
    _check_recovered(events, "interrupted")
    assert "noetl run was interrupted or killed" in (
        next(e for e in events if e.event_type == "action_error").error or ""
    )


def test_a_killed_worker_is_recovered_with_the_same_events(pg_store: PostgresStore, workers: Workers) -> None:
    pg_store.register("tests/crash_loop", "tests/crash_loop", PLAYBOOK)
    workers.start("doomed", concurrency=1, lease=3)
    execution_id = start_execution(pg_store, "tests/crash_loop")
    deadline = time.monotonic() + 60
    while _completed_items(pg_store.read, execution_id) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers.kill("doomed")
    with broker_loop(pg_store, 0.5):
        workers.start("rescuer", concurrency=1, lease=3)
        assert finished_record(pg_store, execution_id, 120).status == "COMPLETED"
    _check_recovered(pg_store.read(execution_id), "lease_expired")
