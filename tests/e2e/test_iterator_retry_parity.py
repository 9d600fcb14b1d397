"""An iterator step retried after one item failed runs only the items not done yet, locally and on a
worker alike (before, a local retry ran items 0 and 1 again: `iteration_completed` indexes
[0, 0, 1, 1, 2, 3] locally against [0, 1, 2, 3] on workers). The rule lives once, in noetl/engine/items.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import run_text
from tests.processes import SECRET_KEY, Workers, running_server

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: iterator_retry, path: tests/iterator_retry}
workload: {marker: /tmp/unset}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: [0, 1, 2, 3]
    element: n
    retry: {max_attempts: 2, initial_delay: 0, jitter: false}
    task:
      type: python
      data: {n: "{{ n }}", marker: "{{ workload.marker }}"}
      code: |
        import pathlib
        def main(n, marker):
            flag = pathlib.Path(marker)
            if n == 2 and not flag.exists():
                flag.write_text("failed once")
                raise RuntimeError("item 2 fails on its first try")
            return n * 10
    next: [{step: end}]
  - step: end
    result: "{{ loop }}"
"""


def completed_indexes(events: list[dict[str, Any]]) -> list[int]:
    return sorted(e["current_index"] for e in events if e["event_type"] == "iteration_completed")


def test_a_local_retry_runs_only_the_items_not_done(store: Any, tmp_path: Path) -> None:
    outcome, events = run_text(store, PLAYBOOK, {"marker": str(tmp_path / "flag")})
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == [0, 10, 20, 30]
    assert completed_indexes([e.to_dict() for e in events]) == [0, 1, 2, 3]
    second = [e for e in events if e.event_type == "iterator_started"][1]
    assert second.meta["resumed"] == 2 and second.meta["count"] == 2  # items 0 and 1 carried over


def test_a_retry_on_a_worker_runs_the_same_items(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    with running_server(pg_dsn, tmp_path) as server, server.client() as api:
        workers = Workers(pg_dsn, tmp_path)
        try:
            workers.start("w1")
            assert api.post("/api/catalog/register", json={"content": PLAYBOOK}).status_code == 201
            started = api.post(
                "/api/executions/run",
                json={"path": "tests/iterator_retry", "parameters": {"marker": str(tmp_path / "flag")}},
            ).json()
            record = wait_for_end(api, started["execution_id"])
            events = api.get(f"/api/executions/{started['execution_id']}/events").json()["events"]
        finally:
            workers.stop_all()
    assert record["status"] == "COMPLETED", record
    assert record["result"] == [0, 10, 20, 30]
    assert completed_indexes(events) == [0, 1, 2, 3]


def wait_for_end(api: httpx.Client, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = api.get(f"/api/executions/{execution_id}").json()
        if record["status"] in ("COMPLETED", "FAILED"):
            return dict(record)
        time.sleep(0.2)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout}s")
