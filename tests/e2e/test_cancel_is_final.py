"""Cancel is final: a job still running when its execution is cancelled stops at its next event, and
nothing is stored for the execution after `execution_failed` (issue 8, divergence 5: 54 events, ending
in `step_completed COMPLETED`, used to be written after the cancel)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from noetl.engine.events import EventType as T
from tests.processes import SECRET_KEY, Workers, running_server, wait_for_record

SLOW = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: slow, path: tests/slow}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(200) | list }}"
    element: i
    task:
      type: python
      data: {i: "{{ i }}"}
      code: |
        import time
        def main(i):
            time.sleep(0.05)
            return i
    next: [{step: end}]
  - step: end
"""


def test_a_cancelled_execution_writes_nothing_more_and_its_worker_goes_on(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    with running_server(pg_dsn, tmp_path) as server, server.client() as api:
        workers = Workers(pg_dsn, tmp_path)
        try:
            workers.start("w1")
            assert api.post("/api/catalog/register", json={"content": SLOW}).status_code == 201
            execution_id = api.post("/api/executions/run", json={"path": "tests/slow"}).json()["execution_id"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                events = api.get(f"/api/executions/{execution_id}/events").json()["events"]
                if sum(e["event_type"] == T.ITERATION_COMPLETED for e in events) >= 5:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the iterator did not get going")
            cancelled = api.post(f"/api/executions/{execution_id}/cancel")
            assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
            time.sleep(2.0)  # 40 more items' worth of time, had the job gone on
            after = api.get(f"/api/executions/{execution_id}/events").json()["events"]
            # A second execution on the same worker: the cancelled job freed its slot and did not
            # take the worker down.
            again = api.post("/api/executions/run", json={"path": "tests/slow"}).json()["execution_id"]
            api.post(f"/api/executions/{again}/cancel")
            record = wait_for_record(api, again)
        finally:
            workers.stop_all()
    ends = [e for e in after if e["event_type"] in (T.EXECUTION_COMPLETE, T.EXECUTION_FAILED)]
    assert len(ends) == 1 and ends[0]["meta"]["reason"] == "cancelled"
    assert after[-1] == ends[0], [e["event_type"] for e in after[after.index(ends[0]) :]]
    assert [e["seq"] for e in after] == list(range(1, len(after) + 1))
    started = sum(e["event_type"] == T.ITERATION_STARTED for e in after)
    assert started < 60, f"{started} items started: the job went on after the cancel"
    loop_ends = {T.STEP_COMPLETED, T.STEP_FAILED, T.ITERATOR_COMPLETED, T.ITERATOR_FAILED}
    assert not any(e["event_type"] in loop_ends and e["node_name"] == "loop" for e in after)
    assert record["status"] == "FAILED"
    log = (tmp_path / "w1.log").read_text()
    assert "Traceback" not in log, log
