"""`assert` (expects / returns) and a sub-playbook's `return_step`, run for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noetl.dsl import load_playbook
from noetl.runtime.local import LocalRunner
from tests.helpers import run_text

HEAD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: asserts}
"""


def test_assert_expects_and_returns_pass_and_fail_with_clear_messages(store: Any) -> None:
    text = (
        HEAD
        + """
workload: {give: %s}
workflow:
  - step: start
    next: [{step: check}]
  - step: check
    type: python
    data: "{{ workload.give }}"
    assert:
      expects: [city]
      returns: [report.temperature]
    code: |
      def main(city, report=None):
          return {"report": {"temperature": 21, "city": city}} if report is None else {"report": {}}
"""
    )
    ok, _ = run_text(store, text % '{"city": "Oslo"}')
    assert ok.status == "COMPLETED", ok.error
    missing_input, events = run_text(store, text % "{}")
    assert missing_input.status == "FAILED"
    assert "assert.expects" in (missing_input.error or "") and "city" in (missing_input.error or "")
    assert [e.event_type for e in events if e.node_name == "check"][-2:] == ["action_error", "step_failed"]
    missing_output, _ = run_text(store, text % '{"city": "Oslo", "report": 1}')
    assert missing_output.status == "FAILED" and "report.temperature" in (missing_output.error or "")


def test_return_step_gives_the_parent_that_step_of_the_child(store: Any, tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        HEAD
        + """
workflow:
  - step: start
    next: [{step: first}]
  - step: first
    type: python
    code: |
      def main():
          return {"picked": "first"}
    next: [{step: second}]
  - step: second
    type: python
    code: |
      def main():
          return {"picked": "second"}
"""
    )
    (tmp_path / "parent.yaml").write_text(
        HEAD
        + """
workflow:
  - step: start
    next: [{step: call}]
  - step: call
    type: playbook
    path: child.yaml
    return_step: first
    next: [{step: end}]
  - step: end
    result: {got: "{{ call.picked }}"}
"""
    )
    outcome = LocalRunner(store).run(load_playbook(tmp_path / "parent.yaml"))
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"got": "first"}
