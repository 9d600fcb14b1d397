"""Issue 9 item 3: `timeout` on every step type and nested task, and a playbook-level default. A step past
its timeout fails with reason `timeout` at once, whatever its code does; its work is interrupted where
that is possible (python code, a postgres statement, a DuckDB query) and writes nothing more."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from noetl.dsl import parse_playbook
from noetl.errors import PlaybookError
from tests.conftest import pg_fields
from tests.helpers import cli, run_text

HEAD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: timeouts}
"""


def _step(events: list[Any], name: str, kind: str) -> Any:
    [found] = [e for e in events if e.node_name == name and e.event_type == kind]
    return found


@pytest.mark.parametrize(
    "body",
    [
        "while True:\n              pass",  # pure Python: interrupted inside the code
        "time.sleep(60)",  # blocked in C: abandoned, its result thrown away
    ],
)
def test_a_python_step_past_its_timeout_fails_at_once_with_reason_timeout(store: Any, body: str) -> None:
    text = (
        HEAD
        + f"""
workflow:
  - step: start
    type: python
    timeout: 0.5
    code: |
      import time
      def main():
          {body}
    next: [{{step: end}}]
  - step: end
"""
    )
    t0 = time.monotonic()
    outcome, events = run_text(store, text)
    assert time.monotonic() - t0 < 5
    assert outcome.status == "FAILED"
    failed = _step(events, "start", "step_failed")
    assert failed.meta["reason"] == "timeout" and failed.meta["error_type"] == "Timeout"
    assert "took longer than its timeout of 0.5 s (reason timeout)" in failed.error
    assert _step(events, "start", "action_error").meta["reason"] == "timeout"


def test_a_timed_out_attempt_is_retried_by_the_retry_policy(store: Any, tmp_path: Path) -> None:
    marker = tmp_path / "first"
    text = (
        HEAD
        + f"""
workflow:
  - step: start
    type: python
    timeout: 0.5
    retry: {{max_attempts: 2, initial_delay: 0}}
    code: |
      import os, time
      def main():
          if not os.path.exists({str(marker)!r}):
              open({str(marker)!r}, "w").close()
              time.sleep(30)
          return "second try"
    next: [{{step: end}}]
  - step: end
"""
    )
    outcome, events = run_text(store, text)
    assert outcome.status == "COMPLETED", outcome.error
    assert _step(events, "start", "step_completed").result == "second try"
    assert _step(events, "start", "action_error").meta["reason"] == "timeout"
    assert [e.event_type for e in events if e.node_name == "start"].count("action_retry") == 1


def test_a_nested_task_timeout_fails_only_that_item(store: Any) -> None:
    text = (
        HEAD
        + """
workflow:
  - step: start
    type: iterator
    collection: [1, 2, 3, 4]
    element: n
    on_error: continue
    task:
      type: python
      timeout: 0.5
      data: {n: "{{ n }}"}
      code: |
        import time
        def main(n):
            if n == 3:
                time.sleep(30)
            return n * 10
    next: [{step: end}]
  - step: end
"""
    )
    t0 = time.monotonic()
    outcome, events = run_text(store, text)
    assert time.monotonic() - t0 < 8
    assert outcome.status == "COMPLETED", outcome.error
    failed = [e for e in events if e.event_type == "iteration_failed"]
    assert [e.current_index for e in failed] == [2]
    assert "item 2 took longer than its timeout of 0.5 s" in failed[0].error
    assert sorted(e.current_index for e in events if e.event_type == "iteration_completed") == [0, 1, 3]


@pytest.mark.parametrize("mode", ["sequential", "async"])
def test_an_iterator_past_its_step_timeout_starts_no_more_items_and_writes_nothing_after(
    store: Any, mode: str
) -> None:
    text = (
        HEAD
        + f"""
workflow:
  - step: start
    type: iterator
    timeout: 1
    collection: "{{{{ range(200) | list }}}}"
    element: n
    mode: {mode}
    concurrency: 2
    task:
      type: python
      data: {{n: "{{{{ n }}}}"}}
      code: |
        import time
        def main(n):
            time.sleep(0.1)
            return n
    on_failure: [{{step: wait}}]
  - step: wait
    type: python
    code: |
      import time
      def main():
          time.sleep(1.5)  # time for an abandoned item to try to write
          return "waited"
"""
    )
    outcome, events = run_text(store, text)
    assert outcome.status == "COMPLETED", outcome.error  # on_failure routed to `wait`
    failed = _step(events, "start", "step_failed")
    assert failed.meta["reason"] == "timeout"
    after = [e for e in events if e.node_name == "start" and (e.seq or 0) > (failed.seq or 0)]
    assert after == [], [(e.event_type, e.current_index) for e in after]
    started = [e for e in events if e.event_type == "iteration_started"]
    assert 3 <= len(started) < 40  # about 1 s of 0.1 s items, then nothing more


def test_the_playbook_timeout_is_the_default_of_every_step(store: Any) -> None:
    text = (
        HEAD
        + """
timeout: 0.5
workflow:
  - step: start
    type: python
    code: |
      def main():
          return 1
    next: [{step: slow}]
  - step: slow
    type: python
    code: |
      import time
      def main():
          time.sleep(20)
    next: [{step: end}]
  - step: end
"""
    )
    outcome, events = run_text(store, text)
    assert outcome.status == "FAILED"
    assert _step(events, "start", "step_completed").result == 1
    assert _step(events, "slow", "step_failed").meta["reason"] == "timeout"


def test_a_step_timeout_overrides_the_playbook_default_and_may_be_a_template(store: Any) -> None:
    text = (
        HEAD
        + """
timeout: 0.2
workload: {allowed: 5}
workflow:
  - step: start
    type: python
    timeout: "{{ workload.allowed }}"
    code: |
      import time
      def main():
          time.sleep(0.5)
          return "in time"
    next: [{step: end}]
  - step: end
"""
    )
    outcome, events = run_text(store, text)
    assert outcome.status == "COMPLETED", outcome.error
    assert _step(events, "start", "step_completed").result == "in time"


@pytest.mark.parametrize(
    ("value", "where"),
    [("-1", "timeout must be a number of seconds above 0"), ("'soon'", "got 'soon'"), ("true", "got True")],
)
def test_a_bad_timeout_is_refused_when_the_playbook_loads(value: str, where: str) -> None:
    text = (
        HEAD
        + f"workflow:\n  - step: start\n    type: python\n    timeout: {value}\n    code: 'def main(): pass'\n"
    )
    with pytest.raises(PlaybookError, match=where) as caught:
        parse_playbook(text)
    assert "<playbook>:8: step 'start'" in str(caught.value.problems[0])


def test_validate_names_the_line_of_a_bad_timeout(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(HEAD + "timeout: 0\nworkflow:\n  - step: start\n")
    done = cli("validate", str(path))
    assert done.returncode == 2
    assert f"{path}:5" in done.stderr and "timeout must be a number of seconds above 0" in done.stderr


def test_a_router_step_with_a_timeout_is_an_error() -> None:
    text = HEAD + "workflow:\n  - step: start\n    timeout: 3\n"
    with pytest.raises(PlaybookError, match="`timeout` needs an action"):
        parse_playbook(text)


def test_a_postgres_statement_past_its_timeout_is_cancelled_on_the_server(store: Any, pg_dsn: str) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    text = (
        HEAD
        + """
workflow:
  - step: start
    type: postgres
    auth: pg_local
    timeout: 1
    command: "SELECT pg_sleep(60) AS slept, 'noetl-timeout-probe' AS tag"
    on_failure: [{step: after}]
  - step: after
    type: postgres
    auth: pg_local
    command: "SELECT 1 AS one"
"""
    )
    t0 = time.monotonic()
    outcome, events = run_text(store, text)
    assert time.monotonic() - t0 < 10
    assert outcome.status == "COMPLETED", outcome.error  # the next statement runs on a sound connection
    assert _step(events, "start", "step_failed").meta["reason"] == "timeout"
    deadline = time.monotonic() + 5
    running = 1
    while running and time.monotonic() < deadline:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            running = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%noetl-timeout-probe%' "
                "AND state = 'active' AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        time.sleep(0.1)
    assert running == 0  # cancelled on the server, not left sleeping for a minute


def test_a_duckdb_query_past_its_timeout_is_interrupted(store: Any, tmp_path: Path) -> None:
    text = (
        HEAD
        + f"""
workflow:
  - step: start
    type: duckdb
    database: {tmp_path / "t.duckdb"}
    timeout: 1
    command: "SELECT count(*) FROM range(100000000000) a"
    next: [{{step: end}}]
  - step: end
"""
    )
    t0 = time.monotonic()
    outcome, events = run_text(store, text)
    assert time.monotonic() - t0 < 10
    assert outcome.status == "FAILED"
    assert _step(events, "start", "step_failed").meta["reason"] == "timeout"


def test_a_large_result_is_stored_once_in_step_completed(store: Any) -> None:
    """Issue 9 item 4: a 200 KB result is not written twice (action_completed and step_completed)."""
    text = (
        HEAD
        + """
workflow:
  - step: start
    type: python
    code: |
      def main():
          return "x" * 200_000
    next: [{step: small}]
  - step: small
    type: python
    code: |
      def main():
          return {"n": 1}
    next: [{step: end}]
  - step: end
"""
    )
    outcome, events = run_text(store, text)
    assert outcome.status == "COMPLETED", outcome.error
    big = _step(events, "start", "action_completed")
    assert big.result is None and big.meta["result_in"] == "step_completed"
    assert _step(events, "start", "step_completed").result == "x" * 200_000
    assert _step(events, "small", "action_completed").result == {"n": 1}  # small results stay in both
