"""An undefined name fails loudly wherever a template is written (COMPAT.md: 0.x rendered it as empty):
in a workload value, a save statement, a duckdb save script, an edge payload and a step's own `next`,
each error names the key or place, the step, and the names that are available."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from noetl.errors import InputError
from tests.helpers import run_text


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


HEAD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: undefined_names}
"""

CASES = {
    "save statement": (
        """
workflow:
  - step: start
    type: python
    code: |
      def main():
          return {"city": "Lisbon"}
    save:
      storage: duckdb
      database: ":memory:"
      statement: "INSERT INTO {{ workload.tabel }} (city) VALUES (:city)"
      args: {city: "{{ this.city }}"}
""",
        ["save_error", "tabel", "step 'start'", "available names"],
    ),
    "duckdb save script": (
        """
workflow:
  - step: start
    type: python
    code: |
      def main():
          return {"city": "Lisbon"}
    save:
      storage: duckdb
      database: ":memory:"
      commands: "CREATE TABLE t AS SELECT '{{ cty }}' AS city"
      data: {city: "{{ this.city }}"}
""",
        ["save_error", "cty", "step 'start'", "available names", "city"],
    ),
    "edge payload": (
        """
workflow:
  - step: start
    next:
      - step: end
        data: {city: "{{ workload.cty }}"}
  - step: end
""",
        ["step_failed", "step 'start' next to 'end' data.city", "cty", "available names"],
    ),
    "own next": (
        """
workflow:
  - step: start
    type: python
    code: |
      def main():
          return {"executed": True}
    next:
      - when: "{{ start.data.exectued }}"
        step: end
  - step: end
""",
        ["step_failed", "step 'start' next to 'end' when", "exectued", "the fields there are: executed"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_undefined_name_fails_naming_the_place_and_the_names_available(store: Any, case: str) -> None:
    body, expected = CASES[case]
    outcome, events = run_text(store, HEAD + body)
    assert outcome.status == "FAILED"
    failures = [e for e in events if e.event_type == expected[0]]
    assert failures, [e.event_type for e in events]
    message = failures[0].error or ""
    for part in expected[1:]:
        assert part in message, message


def test_an_undefined_name_in_the_workload_refuses_the_start_naming_the_key(store: Any) -> None:
    with pytest.raises(InputError) as raised:
        run_text(
            store,
            HEAD
            + """
workload: {region: eu, label: "{{ regoin }}-x"}
workflow:
  - step: start
""",
        )
    message = str(raised.value)
    assert "workload key 'label'" in message and "regoin" in message and "available names" in message
    assert "region" in message  # the plain workload values are names there
    assert store.executions(10) == [], "nothing was started"
