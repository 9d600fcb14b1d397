"""`on_failure`: a step that fails for good sends the workflow on instead of failing the execution."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.dsl import parse_playbook
from noetl.errors import PlaybookError
from noetl.runtime.local import LocalRunner

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: routed}
workflow:
  - step: start
    next: [{step: fetch}]
  - step: fetch
    type: python
    retry: {max_attempts: 2, initial_delay: 0, jitter: false}
    code: |
      def main():
          raise TimeoutError("the API took too long")
    next: [{step: use}]
    on_failure:
      - step: wait_and_alert
        when: "{{ 'took too long' in error }}"
        data: {why: "{{ error }}"}
      - step: page_someone
        when: "{{ 'denied' in error }}"
  - step: use
    type: python
    code: |
      def main():
          return "used"
    next: [{step: end}]
  - step: wait_and_alert
    type: python
    data: {why: "{{ why }}"}
    code: |
      def main(why):
          return {"alerted": why}
    next: [{step: end}]
  - step: page_someone
    type: python
    code: |
      def main():
          return "paged"
  - step: end
"""


def run(store: Any, text: str) -> tuple[Any, list[Any]]:
    outcome = LocalRunner(store).run(parse_playbook(text))
    return outcome, store.read(outcome.execution_id)


def test_a_failed_step_takes_its_on_failure_route_with_error_in_scope(store: Any) -> None:
    outcome, events = run(store, PLAYBOOK)
    assert outcome.status == "COMPLETED"
    assert outcome.result == {"alerted": "TimeoutError: the API took too long"}
    [failed] = [e for e in events if e.event_type == "step_failed"]
    assert failed.node_name == "fetch" and failed.attempt == 2  # after its retries, for good
    assert failed.meta["handled"] is True
    assert failed.meta["next"] == [
        {"step": "wait_and_alert", "data": {"why": "TimeoutError: the API took too long"}}
    ]
    ran = [e.node_name for e in events if e.event_type == "step_started"]
    assert ran == ["start", "fetch", "wait_and_alert", "end"]  # not `use`, not `page_someone`
    after = [e.event_type for e in events][[e.seq for e in events].index(failed.seq) + 1]
    assert after == "step_started"  # step_failed, then the transition it took


def test_a_failure_no_route_matches_fails_the_execution(store: Any) -> None:
    text = PLAYBOOK.replace("'took too long' in error", "'quota' in error")
    outcome, events = run(store, text)
    assert outcome.status == "FAILED"
    assert "the API took too long" in (outcome.error or "")
    [failed] = [e for e in events if e.event_type == "step_failed"]
    assert "handled" not in failed.meta
    assert [e.node_name for e in events if e.event_type == "step_started"] == ["start", "fetch"]


def test_on_failure_is_checked_like_next() -> None:
    with pytest.raises(PlaybookError, match="nowhere"):
        parse_playbook(PLAYBOOK.replace("step: page_someone\n        when", "step: nowhere\n        when"))
    with pytest.raises(PlaybookError, match="`else` has no meaning in `on_failure`"):
        parse_playbook(
            PLAYBOOK.replace(
                "      - step: page_someone\n        when: \"{{ 'denied' in error }}\"",
                "      - when: \"{{ 'denied' in error }}\"\n        then: [page_someone]\n        else: [use]",
            )
        )


def test_a_traceback_shows_the_users_frames_with_the_failing_line(store: Any) -> None:
    text = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: deep}
workflow:
  - step: start
    next: [{step: boom}]
  - step: boom
    type: python
    code: |
      def helper(n):
          return 10 // n

      def main():
          return helper(0)
    next: [{step: end}]
  - step: end
"""
    outcome, events = run(store, text)
    assert outcome.status == "FAILED"
    [error] = [e for e in events if e.event_type == "action_error"]
    shown = error.meta["traceback"]
    assert 'File "<step code>", line 5, in main' in shown
    assert 'File "<step code>", line 2, in helper' in shown  # the failing line, not cut off
    assert "ZeroDivisionError" in shown.splitlines()[-1]
    assert "noetl/" not in shown  # none of the engine's frames
