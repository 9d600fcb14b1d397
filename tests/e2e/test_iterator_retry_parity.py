"""An iterator step retried after one item failed runs only the items not done yet, locally and on a
worker alike (before, a local retry ran items 0 and 1 again: `iteration_completed` indexes
[0, 0, 1, 1, 2, 3] locally against [0, 1, 2, 3] on workers). The rule lives once, in noetl/engine/items.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_text
from tests.processes import SECRET_KEY, run_on_worker

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
    record, events = run_on_worker(
        pg_dsn, tmp_path, PLAYBOOK, "tests/iterator_retry", {"marker": str(tmp_path / "flag")}
    )
    assert record["status"] == "COMPLETED", record
    assert record["result"] == [0, 10, 20, 30]
    assert completed_indexes(events) == [0, 1, 2, 3]
