"""An execution whose branch failed ends when nothing of it runs any more, in both modes: a step of
another branch that waits for its retry's delay does not run that attempt. Before, a local run ended at
once while the broker waited for the queued retry job, ran the attempt on a worker, and only then ended:
the same playbook left different logs (an extra `action_started`, `action_error`) and took the delay
longer on workers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_text
from tests.processes import SECRET_KEY, run_on_worker

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: end_while_retry_waits, path: tests/end_while_retry_waits}
workflow:
  - step: start
    next: [{step: slow_fail}, {step: flaky}]
  - step: slow_fail
    type: python
    code: |
      import time
      def main():
          time.sleep(1.0)
          raise ValueError("the slow branch fails")
    next: [{step: end}]
  - step: flaky
    type: python
    retry: {max_attempts: 2, initial_delay: 6}
    code: |
      def main():
          raise RuntimeError("the flaky branch fails")
    next: [{step: end}]
  - step: end
"""
DELAY = 6.0


def _check(types: list[tuple[str, str | None, int | None]], seconds: float, error: str | None) -> None:
    flaky = [(t, a) for t, node, a in types if node == "flaky"]
    assert flaky == [
        ("step_started", 1),
        ("action_started", 1),
        ("action_error", 1),
        ("action_retry", 1),
    ], "the attempt waiting for its delay is not run once the execution fails"
    assert types[-1][0] == "execution_failed" and "the slow branch fails" in (error or "")
    assert seconds < DELAY, f"the execution waited {seconds:.1f}s for a retry that cannot matter"


def test_locally_the_failed_execution_ends_without_the_waiting_retry(store: Any) -> None:
    t0 = time.monotonic()
    outcome, events = run_text(store, PLAYBOOK)
    seconds = time.monotonic() - t0
    assert outcome.status == "FAILED"
    _check([(e.event_type, e.node_name, e.attempt) for e in events], seconds, outcome.error)


def test_on_workers_the_failed_execution_ends_without_the_waiting_retry(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    t0 = time.monotonic()
    record, events = run_on_worker(pg_dsn, tmp_path, PLAYBOOK, "tests/end_while_retry_waits")
    seconds = time.monotonic() - t0
    assert record["status"] == "FAILED", record
    types = [(e["event_type"], e["node_name"], e.get("attempt")) for e in events]
    # The server and worker start-up is in `seconds` too: about 2 s on this machine.
    _check(types, seconds - 2.5, record.get("error"))
