"""A sub-playbook that ran inside a process that died is closed, not left RUNNING for ever: a local
run's children (on workers every child is an execution of the queue and runs on). When the work is taken up
again (`noetl run --resume`, or the broker reaping the dead worker's lease), each such child still
RUNNING gets `execution_failed` with `meta.reason: abandoned`, and the item runs its child again. Before,
the parent completed while the child it had started stayed RUNNING in `noetl executions` for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from noetl.runtime.control import start_execution
from noetl.store.postgres import PostgresStore
from noetl.store.sqlite import SQLiteStore
from noetl.store.views_sql import ExecutionFilter
from tests.helpers import REPO, cli
from tests.processes import Workers, broker_loop, finished_record

PARENT = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: stranded_parent, path: tests/stranded_parent}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: [0, 1, 2, 3]
    element: n
    task:
      type: playbook
      path: stranded_child
      data: {n: "{{ n }}"}
    next: [{step: end}]
  - step: end
"""
CHILD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: stranded_child, path: tests/stranded_child}
workload: {n: 0}
workflow:
  - step: start
    next: [{step: work}]
  - step: work
    type: python
    data: {n: "{{ workload.n }}"}
    code: |
      import time
      def main(n):
          time.sleep(1.0)
          return n * 10
    next: [{step: end}]
  - step: end
"""


def _wait_for_second_child(store: Any, deadline: float, parent: str | None = None) -> str:
    """The parent's id (the store's only root when not given), once its second child is running: the
    kill then strands that child."""
    while time.monotonic() < deadline:
        if parent is None:
            roots = store.find_executions(ExecutionFilter(roots=True), limit=5)
            found = str(roots[0].execution_id) if roots else None
        else:
            found = parent
        if found is not None:
            children = store.find_executions(ExecutionFilter(parent=found), limit=10)
            if len(children) >= 2 and any(c.status == "RUNNING" for c in children):
                return found
        time.sleep(0.05)
    raise AssertionError("the second child never started")


def _check(store: Any, parent: str, lost: str) -> None:
    record = store.execution(parent)
    assert record is not None and record.status == "COMPLETED"
    children = store.find_executions(ExecutionFilter(parent=parent), limit=20)
    assert all(c.status in ("COMPLETED", "FAILED") for c in children), [
        (c.execution_id, c.status) for c in children
    ]
    failed = [c for c in children if c.status == "FAILED"]
    assert len(failed) == 1, "exactly the child that was running when the process died is closed"
    end = store.read(failed[0].execution_id)[-1]
    assert end.event_type == "execution_failed" and end.meta["reason"] == "abandoned"
    assert lost in (end.error or "")
    assert len([c for c in children if c.status == "COMPLETED"]) >= 4, "every item ran its child to the end"


def test_a_resumed_local_run_closes_the_child_it_left_running(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(PARENT)
    (tmp_path / "stranded_child.yaml").write_text(CHILD)
    db = tmp_path / "noetl.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "noetl.cli", "run", str(tmp_path / "parent.yaml"), "--db", str(db), "--quiet"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not db.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    store = SQLiteStore(db)
    try:
        parent = _wait_for_second_child(store, deadline)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        resumed = cli("run", str(tmp_path / "parent.yaml"), "--db", str(db), "--resume", parent, "--quiet")
        assert resumed.returncode == 0, resumed.stderr
        _check(store, parent, "the noetl run process running it stopped")
    finally:
        store.close()


def test_on_workers_an_item_child_runs_on_and_its_item_waits_for_it_again(
    pg_store: PostgresStore, workers: Workers
) -> None:
    """On workers an item's child from the catalog is an execution of the queue: the worker that dies
    was only waiting for it (parked, its slot free). The child runs on, and the item, run again by the
    next holder of the job, waits for that same child, or takes its result when it completed before the
    item ran again (both happen, by which job the rescuer leases first), instead of starting another."""
    pg_store.register("tests/stranded_child", "stranded_child", CHILD)
    pg_store.register("tests/stranded_parent", "stranded_parent", PARENT)
    workers.start("doomed", concurrency=1, lease=3)
    parent = start_execution(pg_store, "tests/stranded_parent")
    _wait_for_second_child(pg_store, time.monotonic() + 60, parent)
    workers.kill("doomed")
    with broker_loop(pg_store, 0.5):
        workers.start("rescuer", concurrency=1, lease=3)
        assert finished_record(pg_store, parent, 120).status == "COMPLETED"
    children = pg_store.find_executions(ExecutionFilter(parent=parent), limit=20)
    assert sorted(c.status for c in children) == ["COMPLETED"] * 4, "one child per item, none twice"
    starts = [pg_store.read(c.execution_id)[0] for c in children]
    assert all(e.context.get("version") and e.context["called_by"]["step"] == "loop" for e in starts)
    result = pg_store.execution(parent)
    assert result is not None
    loop = [e for e in pg_store.read(parent) if e.event_type == "iteration_completed"]
    assert sorted(e.current_index for e in loop) == [0, 1, 2, 3]


def test_on_workers_a_file_childs_item_waits_for_it_again_when_its_worker_dies(
    pg_store: PostgresStore, workers: Workers, tmp_path: Path
) -> None:
    """A child found as a file (an absolute path) is an execution of the queue too (its text sealed
    beside its log): the dead worker's child runs on and is not closed or started again."""
    child_file = tmp_path / "stranded_child.yaml"
    child_file.write_text(CHILD)
    pg_store.register(
        "tests/stranded_parent",
        "stranded_parent",
        PARENT.replace("path: stranded_child", f"path: {child_file}"),
    )
    workers.start("doomed", concurrency=1, lease=3)
    parent = start_execution(pg_store, "tests/stranded_parent")
    _wait_for_second_child(pg_store, time.monotonic() + 60, parent)
    workers.kill("doomed")
    with broker_loop(pg_store, 0.5):
        workers.start("rescuer", concurrency=1, lease=3)
        assert finished_record(pg_store, parent, 120).status == "COMPLETED"
    children = pg_store.find_executions(ExecutionFilter(parent=parent), limit=20)
    assert sorted(c.status for c in children) == ["COMPLETED"] * 4, "one child per item, none twice"
    starts = [pg_store.read(c.execution_id)[0].context or {} for c in children]
    assert all(c.get("playbook_sealed") and c.get("version") is None for c in starts)
    loop = [e for e in pg_store.read(parent) if e.event_type == "iteration_completed"]
    assert sorted(e.current_index for e in loop) == [0, 1, 2, 3]
