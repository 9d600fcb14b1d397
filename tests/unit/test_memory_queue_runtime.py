"""The broker and a worker on the in-process MemoryQueue, beside an SQLite store in a temp file: an
execution runs end to end through `start_execution`, `schedule` and `Worker` with no PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

from noetl.engine.events import EventType as T
from noetl.runtime.control import start_execution
from noetl.runtime.worker import Worker
from noetl.store.memory_queue import MemoryQueue
from noetl.store.queues import queue_for
from tests.helpers import types_of

THREE_STEPS = """
apiVersion: noetl.io/v1
kind: Playbook
metadata:
  name: three_steps
  path: tests/three_steps
workload:
  n: 3
workflow:
  - step: start
    type: python
    data:
      n: "{{ workload.n }}"
    code: |
      def main(n):
          return {"n": int(n) + 1}
    next:
      - step: double
        data:
          n: "{{ start.n }}"
  - step: double
    type: python
    code: |
      def main(n):
          return {"n": int(n) * 2}
    next:
      - step: end
        data:
          n: "{{ double.n }}"
  - step: end
    type: python
    code: |
      def main(n):
          return {"n": int(n) + 100}
"""


def _finished(store: Any, execution_id: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.execution(execution_id)
        if record is not None and record.status in ("COMPLETED", "FAILED"):
            return record
        time.sleep(0.02)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout} s")


def test_a_playbook_runs_through_the_broker_and_a_worker_on_the_memory_queue(store: Any) -> None:
    queue = queue_for(store)
    assert isinstance(queue, MemoryQueue)
    store.register("tests/three_steps", "three_steps", THREE_STEPS)
    execution_id = start_execution(store, "tests/three_steps")
    assert queue.open_depth() == {"queued": 1, "held": 0, "leased": 0}  # schedule queued `start`

    worker = Worker(store, name="w1", concurrency=2, lease_seconds=5.0, poll_seconds=0.2, grace_seconds=5.0)
    thread = threading.Thread(target=worker.run, name="test-worker")
    thread.start()
    try:
        record = _finished(store, execution_id)
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert not worker.failed

    assert record.status == "COMPLETED", record.error
    events = store.read(execution_id)
    for step in ("start", "double", "end"):
        assert types_of(events, step)[0] == T.STEP_STARTED
        assert types_of(events, step)[-1] == T.STEP_COMPLETED
    ends = [e.node_name for e in events if e.event_type == T.STEP_COMPLETED]
    assert ends == ["start", "double", "end"]
    assert events[-1].event_type == T.EXECUTION_COMPLETE
    step_results = {e.node_name: e.result for e in events if e.event_type == T.STEP_COMPLETED}
    assert step_results["end"] == {"n": 108}  # (3 + 1) * 2 + 100
    # Every step ran as one job of the queue, and nothing is left in it.
    assert queue.depth() == {"done": 3}
    assert queue.open_depth() == {"queued": 0, "held": 0, "leased": 0}
    assert queue.idle_executions() == []


ASYNC_ITEMS = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: async_items, path: tests/async_items}
workload: {n: 40}
workflow:
  - step: start
    next: [{step: squares}]
  - step: squares
    type: iterator
    mode: async
    concurrency: 2
    on_error: continue  # the shared failure count (store.failed_items) is PostgreSQL's only
    collection: "{{ range(workload.n) | list }}"
    element: i
    task:
      type: python
      data: {i: "{{ i }}"}
      code: |
        def main(i):
            return int(i) * int(i)
    next: [{step: end}]
  - step: end
"""


def test_an_async_iterator_fans_out_into_chunks_of_the_memory_queue(store: Any) -> None:
    queue = queue_for(store)
    store.register("tests/async_items", "async_items", ASYNC_ITEMS)
    execution_id = start_execution(store, "tests/async_items")
    worker = Worker(store, name="w1", concurrency=3, lease_seconds=5.0, poll_seconds=0.2, grace_seconds=5.0)
    thread = threading.Thread(target=worker.run, name="test-worker")
    thread.start()
    try:
        record = _finished(store, execution_id)
    finally:
        worker.stop()
        thread.join(10)
    assert record.status == "COMPLETED", record.error
    events = store.read(execution_id)
    done = sorted(e.current_index for e in events if e.event_type == T.ITERATION_COMPLETED)
    assert done == list(range(40))  # every item exactly once
    assert types_of(events, "squares")[-1] == T.STEP_COMPLETED
    [squares] = [e for e in events if e.event_type == T.STEP_COMPLETED and e.node_name == "squares"]
    assert squares.result == [i * i for i in range(40)]
    depth = queue.depth()
    # start, squares, 8 chunks (4 per slot of concurrency 2), the join, end: all done.
    assert depth == {"done": 12}, depth
