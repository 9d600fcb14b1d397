"""A step's `timeout` holds for the whole attempt in both modes, also when the attempt goes on in other
jobs on workers: an async iterator's chunks, a sub-playbook's own execution. Before, on workers, the
step's job ended when its work went out to other jobs, and the timeout was forgotten: the iterator ran
its 20 s of items and the step waited for its child for as long as the child took. Locally both failed
at the timeout. Now a deadline job fails the attempt at its deadline with the same events and message,
cancels the chunks not done (a running chunk stops before its next item) and cancels the child, which a
local run now cancels too."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from noetl.runtime.control import start_execution
from noetl.store import open_store
from noetl.store.postgres import PostgresStore
from noetl.store.views_sql import ExecutionFilter
from tests.helpers import cli
from tests.processes import Workers, broker_loop, finished_record

TIMEOUT = 2.0
FAN_OUT = f"""
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: timed_fan_out, path: tests/timed_fan_out}}
workflow:
  - step: start
    next: [{{step: loop}}]
  - step: loop
    type: iterator
    mode: async
    concurrency: 2
    timeout: {TIMEOUT}
    collection: "{{{{ range(40) | list }}}}"
    element: i
    task:
      type: python
      data: {{i: "{{{{ i }}}}"}}
      code: |
        import time
        def main(i):
            time.sleep(0.5)
            return i
    next: [{{step: end}}]
  - step: end
"""
PARENT = f"""
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: timed_parent, path: tests/timed_parent}}
workflow:
  - step: start
    next: [{{step: call}}]
  - step: call
    type: playbook
    path: timed_child
    timeout: {TIMEOUT}
    next: [{{step: end}}]
  - step: end
"""
CHILD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: timed_child, path: tests/timed_child}
workflow:
  - step: start
    next: [{step: work}]
  - step: work
    type: python
    code: |
      import time
      def main():
          for _ in range(40):
              time.sleep(0.1)
          return "done"
    next: [{step: end}]
  - step: end
"""
# The timed step's own events (items left out), in both modes.
SHAPE = [
    ("step_started", 1),
    ("action_started", 1),
    ("action_error", 1),
    ("step_failed", 1),
]
ITEM_TYPES = {"iteration_started", "iteration_completed", "iteration_failed", "iterator_started"}


def _check_parent(events: list[Any], step: str) -> None:
    own = [
        (e.event_type, e.attempt) for e in events if e.node_name == step and e.event_type not in ITEM_TYPES
    ]
    assert own == SHAPE
    error = next(e for e in events if e.event_type == "action_error" and e.node_name == step)
    assert error.meta["reason"] == "timeout" and error.meta["error_type"] == "Timeout"
    assert f"step '{step}' took longer than its timeout of {TIMEOUT:g} s (reason timeout)" in (
        error.error or ""
    )
    started = next(e for e in events if e.event_type == "action_started" and e.node_name == step)
    took = (_at(error) - _at(started)).total_seconds()
    assert TIMEOUT - 0.1 <= took < TIMEOUT + 3, f"the attempt failed {took:.1f} s after it started"
    assert events[-1].event_type == "execution_failed"


def _at(event: Any) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(event.created_at)


def _check_child_cancelled(store: Any, parent: str) -> None:
    [child] = store.find_executions(ExecutionFilter(parent=parent), limit=5)
    end = store.read(child.execution_id)[-1]
    assert end.event_type == "execution_failed" and end.meta["reason"] == "cancelled"
    assert "its parent step 'call' timed out" in (end.error or "")


def _run_locally(tmp_path: Path, files: dict[str, str], main: str) -> tuple[Any, str]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    db = tmp_path / "noetl.db"
    done = cli("run", str(tmp_path / main), "--db", str(db), "--json", "--quiet")
    assert done.returncode == 1, done.stderr  # the execution failed: exit code 1
    store = open_store(str(db))
    return store, str(json.loads(done.stdout)["execution_id"])


def test_locally_an_iterator_attempt_fails_at_its_timeout(tmp_path: Path) -> None:
    store, execution_id = _run_locally(tmp_path, {"fan.yaml": FAN_OUT}, "fan.yaml")
    try:
        _check_parent(store.read(execution_id), "loop")
    finally:
        store.close()


def test_locally_a_timed_out_step_cancels_its_child(tmp_path: Path) -> None:
    files = {"parent.yaml": PARENT, "timed_child.yaml": CHILD}
    store, execution_id = _run_locally(tmp_path, files, "parent.yaml")
    try:
        _check_parent(store.read(execution_id), "call")
        _check_child_cancelled(store, execution_id)
    finally:
        store.close()


def test_on_workers_a_fanned_out_iterator_fails_at_its_timeout(
    pg_store: PostgresStore, workers: Workers
) -> None:
    pg_store.register("tests/timed_fan_out", "timed_fan_out", FAN_OUT)
    workers.start("w1", concurrency=4)
    with broker_loop(pg_store, 0.5):
        t0 = time.monotonic()
        execution_id = start_execution(pg_store, "tests/timed_fan_out")
        assert finished_record(pg_store, execution_id, 60).status == "FAILED"
        assert time.monotonic() - t0 < 10, "the iterator's 40 items of 0.5 s were not all run"
    events = pg_store.read(execution_id)
    _check_parent(events, "loop")
    completed = [e for e in events if e.event_type == "iteration_completed"]
    assert len(completed) < 20, "the chunks not done were cancelled at the deadline"


def test_on_workers_a_timed_out_step_cancels_its_child(pg_store: PostgresStore, workers: Workers) -> None:
    pg_store.register("tests/timed_child", "timed_child", CHILD)
    pg_store.register("tests/timed_parent", "timed_parent", PARENT)
    workers.start("w1", concurrency=4)
    with broker_loop(pg_store, 0.5):
        execution_id = start_execution(pg_store, "tests/timed_parent")
        assert finished_record(pg_store, execution_id, 60).status == "FAILED"
    _check_parent(pg_store.read(execution_id), "call")
    _check_child_cancelled(pg_store, execution_id)
