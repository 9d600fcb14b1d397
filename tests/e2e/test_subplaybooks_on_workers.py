"""Sub-playbooks on workers are executions of their own, through the queue (issue 8, item 2).

The parent's step starts the child and ends its job; the child's steps are jobs like any others; when
the child ends, the broker queues the parent step's join, which returns the child's result. So the
parent waits without holding a worker slot (one worker with one slot runs both), and a worker that dies
while the child runs leaves the child to another worker and the parent to resume.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.runtime.control import start_execution
from noetl.server.routes.graph import execution_graph
from noetl.store import open_store
from noetl.store.postgres import PostgresStore
from tests.helpers import run_file
from tests.processes import SECRET_KEY, Workers, broker_loop, finished_record

CHILD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: child, path: tests/child}
workload: {n: 1, nap: 0}
workflow:
  - step: start
    next: [{step: square}]
  - step: square
    type: python
    data: {n: "{{ workload.n }}", nap: "{{ workload.nap }}"}
    code: |
      import time
      def main(n, nap):
          time.sleep(nap)
          if n < 0:
              raise ValueError(f"no square for {n}")
          return {"squared": n * n}
    next: [{step: end}]
  - step: end
    result: "{{ square.result }}"
"""

PARENT = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: parent, path: tests/parent}
workload: {n: 7, nap: 0}
workflow:
  - step: start
    next: [{step: call}]
  - step: call
    type: playbook
    path: child
    data: {n: "{{ workload.n }}", nap: "{{ workload.nap }}"}
    next: [{step: end}]
  - step: end
    result: {answer: "{{ call.result.squared }}"}
"""

PER_ITEM = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: per_item, path: tests/per_item}
workflow:
  - step: start
    next: [{step: each}]
  - step: each
    type: iterator
    collection: [1, 2, 3]
    element: k
    task:
      type: playbook
      path: kid
      data: {n: "{{ k }}", nap: 0.6}
    next: [{step: end}]
  - step: end
"""


# The same child under another catalog path than its metadata path: a child run inside a job records its
# metadata path, which the catalog does not have, so a sweep that took it for its own would fail on it.
KID = CHILD.replace("path: tests/child", "path: elsewhere/kid")


@pytest.fixture
def pg_store(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStore]:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    store = PostgresStore(pg_dsn, pool_size=16)
    playbooks = (
        (CHILD, "tests/child"),
        (KID, "tests/kid"),
        (PARENT, "tests/parent"),
        (PER_ITEM, "tests/per_item"),
    )
    for text, path in playbooks:
        store.register(path, path.rsplit("/", 1)[1], text)
    yield store
    store.close()


@pytest.fixture
def broker(pg_store: PostgresStore) -> Iterator[None]:
    with broker_loop(pg_store, 0.2):  # fast: the sweep runs every second
        yield


def wait_finished(store: PostgresStore, execution_id: str, timeout: float = 60) -> Any:
    return finished_record(store, execution_id, timeout)


def children_of(store: PostgresStore, parent: str) -> list[Any]:
    return [r for r in store.executions(limit=1000) if r.parent_execution_id == parent]


def shape(events: list[Event], node: str) -> list[tuple[str, str | None]]:
    return [(e.event_type, e.status) for e in events if e.node_name == node]


def test_a_step_sub_playbook_is_its_own_queued_execution_and_frees_the_slot(
    pg_store: PostgresStore, workers: Workers, tmp_path: Path
) -> None:
    workers.start("solo", concurrency=1)  # one slot: a parent holding it while its child runs would hang
    parent = start_execution(pg_store, "tests/parent", {"n": 7})
    record = wait_finished(pg_store, parent)
    assert (record.status, record.result) == ("COMPLETED", {"answer": 49})
    [child] = children_of(pg_store, parent)
    assert (child.status, child.result, child.playbook_path) == ("COMPLETED", {"squared": 49}, "tests/child")
    child_events = pg_store.read(child.execution_id)
    assert {e.meta.get("worker_id") for e in child_events if e.event_type == T.STEP_STARTED} == {"solo"}
    assert all(e.parent_execution_id == parent for e in child_events)

    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "parent.yaml").write_text(PARENT)
    local_store = open_store(str(tmp_path / "local.db"))
    try:
        outcome, local = run_file(local_store, tmp_path / "parent.yaml", {"n": 7})
    finally:
        local_store.close()
    assert (outcome.status, outcome.result) == ("COMPLETED", {"answer": 49})
    remote = pg_store.read(parent)
    assert shape(remote, "call") == shape(local, "call")
    assert [e.seq for e in remote] == list(range(1, len(remote) + 1))


def test_a_failed_child_fails_the_parent_step_with_the_childs_error(
    pg_store: PostgresStore, workers: Workers
) -> None:
    workers.start("solo", concurrency=1)
    parent = start_execution(pg_store, "tests/parent", {"n": -3})
    record = wait_finished(pg_store, parent)
    assert record.status == "FAILED"
    [child] = children_of(pg_store, parent)
    assert child.status == "FAILED" and "no square for -3" in (child.error or "")
    assert f"sub-playbook 'child' (execution {child.execution_id}) failed" in (record.error or "")
    assert "no square for -3" in (record.error or "")


def test_an_items_sub_playbook_run_inside_its_job_is_not_also_swept(
    pg_store: PostgresStore, workers: Workers, broker: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 8, divergence 4: a child run inside a worker's job used to be taken by the broker's sweep
    for one of its own executions; the sweep raised and ended its pass. Now the sweep leaves it to the
    job (it names no catalog version) and carries on."""
    workers.start("solo", concurrency=2)
    parent = start_execution(pg_store, "tests/per_item")
    assert wait_finished(pg_store, parent).status == "COMPLETED"
    children = children_of(pg_store, parent)
    assert sorted(c.result["squared"] for c in children) == [1, 4, 9]
    for child in children:
        steps = [e.node_name for e in pg_store.read(child.execution_id) if e.event_type == T.STEP_STARTED]
        assert steps == ["start", "square", "end"], "each child's steps ran once"
    assert "Traceback" not in (tmp_path / "solo.log").read_text()
    broker_errors = [
        r.getMessage() for r in caplog.records if r.name == "noetl.broker" and r.levelname == "ERROR"
    ]
    assert broker_errors == []


def test_a_worker_killed_while_the_child_runs_leaves_the_child_running_and_the_parent_resumed(
    pg_store: PostgresStore, workers: Workers, broker: None
) -> None:
    workers.start("doomed", concurrency=2, lease=2)
    parent = start_execution(pg_store, "tests/parent", {"n": 5, "nap": 3})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = children_of(pg_store, parent)
        if kids and any(
            e.event_type == T.ACTION_STARTED and e.node_name == "square"
            for e in pg_store.read(kids[0].execution_id)
        ):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the child never started its slow step")
    workers.kill("doomed")
    workers.start("rescuer", concurrency=2, lease=2)
    record = wait_finished(pg_store, parent, timeout=90)
    assert (record.status, record.result) == ("COMPLETED", {"answer": 25})
    [child] = children_of(pg_store, parent)  # the child was not started again
    assert child.status == "COMPLETED"
    square = [e for e in pg_store.read(child.execution_id) if e.node_name == "square"]
    abandoned = [e for e in square if e.event_type == T.ACTION_ERROR]
    assert [e.meta.get("reason") for e in abandoned] == ["lease_expired"]
    assert [e.meta.get("worker_id") for e in square if e.event_type == T.ACTION_STARTED] == [
        "doomed",
        "rescuer",
    ]
    call = [e.event_type for e in pg_store.read(parent) if e.node_name == "call"]
    assert call == [T.STEP_STARTED, T.ACTION_STARTED, T.ACTION_COMPLETED, T.STEP_COMPLETED]


def _file_parent(child_file: Path) -> str:
    return PARENT.replace("path: tests/parent", "path: tests/file_parent").replace(
        "path: child", f"path: {child_file}"
    )


def _wait_for_child_step(store: PostgresStore, parent: str, step: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = children_of(store, parent)
        if kids and any(
            e.event_type == T.ACTION_STARTED and e.node_name == step for e in store.read(kids[0].execution_id)
        ):
            return kids[0]
        time.sleep(0.05)
    pytest.fail(f"the child never started its step {step!r}")


def test_a_file_child_is_a_queued_execution_that_workers_read_from_its_sealed_text(
    pg_store: PostgresStore, workers: Workers, tmp_path: Path
) -> None:
    """Issue 8, item 2: a child found as a file (an absolute path) used to run inside the calling job.
    Now its text is sealed beside its log and its steps are jobs like any others: the file is deleted
    while the child runs, and its next steps still run, on the worker's one slot."""
    child_file = tmp_path / "file_child.yaml"
    child_file.write_text(CHILD)
    pg_store.register("tests/file_parent", "file_parent", _file_parent(child_file))
    workers.start("solo", concurrency=1)
    parent = start_execution(pg_store, "tests/file_parent", {"n": 6, "nap": 1.0})
    child = _wait_for_child_step(pg_store, parent, "square")
    child_file.unlink()  # from here on only the sealed text can tell a worker what the child is
    record = wait_finished(pg_store, parent)
    assert (record.status, record.result) == ("COMPLETED", {"answer": 36})
    events = pg_store.read(child.execution_id)
    start = events[0].context or {}
    assert (start.get("playbook_sealed"), start.get("version"), start.get("source")) == (
        True,
        None,
        str(child_file),
    )
    assert CHILD.strip() not in str(start), "the text is sealed, not in the log"
    steps = [e for e in events if e.event_type == T.STEP_STARTED]
    assert [(e.node_name, e.meta.get("worker_id")) for e in steps] == [
        ("start", "solo"),
        ("square", "solo"),
        ("end", "solo"),
    ], "each of the child's steps was a job of the queue"
    assert all(e.parent_execution_id == parent for e in events)
    # The UI's graph of the child is drawn from the sealed text, though the file is gone.
    graph = execution_graph(child.execution_id, pg_store)
    assert (graph["source"], graph["file"]) == ("sealed", str(child_file))
    assert {n["name"] for n in graph["nodes"]} == {"start", "square", "end"}


def test_without_a_key_a_file_child_runs_inside_the_calling_job(
    pg_store: PostgresStore, workers: Workers, tmp_path: Path
) -> None:
    """A worker with no NOETL_SECRET_KEY cannot seal the text: the child runs inside the job, as it
    did before, and still completes."""
    child_file = tmp_path / "file_child.yaml"
    child_file.write_text(CHILD)
    pg_store.register("tests/file_parent", "file_parent", _file_parent(child_file))
    keyless = {k: v for k, v in os.environ.items() if k != "NOETL_SECRET_KEY"}
    workers.start("keyless", concurrency=1, env=keyless)
    parent = start_execution(pg_store, "tests/file_parent", {"n": 4})
    record = wait_finished(pg_store, parent)
    assert (record.status, record.result) == ("COMPLETED", {"answer": 16})
    [child] = children_of(pg_store, parent)
    events = pg_store.read(child.execution_id)
    assert not (events[0].context or {}).get("playbook_sealed")
    assert {e.meta.get("worker_id") for e in events if e.event_type == T.STEP_STARTED} == {None}
