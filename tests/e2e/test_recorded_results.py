"""A step's result is recorded once, by the rules of noetl/engine/values.py, and every later reader sees
that value: the next step of a local run and the next step on a worker alike (before, a set reached the
next step as a set locally and as its str() on workers). A result that cannot be recorded fails its
step or item with a message, and the execution is still in the store with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli, run_text
from tests.processes import SECRET_KEY, run_on_worker

PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: recorded_results, path: tests/recorded_results}
workflow:
  - step: start
    type: python
    code: |
      import datetime, decimal
      def main():
          return {"tags": {"b", "a", "c"}, "when": datetime.date(2026, 12, 1),
                  "pair": (1, 2), "amount": decimal.Decimal("2.50")}
    next: [{step: use}]
  - step: use
    type: python
    data: {tags: "{{ start.tags }}", when: "{{ start.when }}", pair: "{{ start.pair }}",
           amount: "{{ start.amount }}"}
    code: |
      def main(tags, when, pair, amount):
          return {"types": [type(tags).__name__, type(when).__name__, type(pair).__name__,
                            type(amount).__name__], "tags": tags, "when": when, "amount": amount}
    next: [{step: end}]
  - step: end
    result: "{{ use }}"
"""
EXPECTED = {
    "types": ["list", "str", "list", "float"],
    "tags": ["a", "b", "c"],
    "when": "2026-12-01",
    "amount": 2.5,
}


def test_the_next_step_sees_the_recorded_value_locally(store: Any) -> None:
    outcome, _ = run_text(store, PLAYBOOK)
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == EXPECTED


def test_the_next_step_sees_the_same_value_on_a_worker(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    record, _ = run_on_worker(pg_dsn, tmp_path, PLAYBOOK, "tests/recorded_results")
    assert record["status"] == "COMPLETED", record
    assert record["result"] == EXPECTED


UNSTORABLE = {
    "tuple key": ("return {(1, 2): 'pair'}", "has a key (1, 2) of type tuple"),
    "self reference": ("d = {}\n          d['me'] = d\n          return d", "contains itself"),
    "huge integer": ("return 10**5000", "digits"),
    "object": ("return object()", "builtins.object, which cannot be recorded"),
}


@pytest.mark.parametrize("case", sorted(UNSTORABLE))
def test_a_result_that_cannot_be_recorded_fails_its_step_and_the_execution_stays(
    tmp_path: Path, case: str
) -> None:
    body, message = UNSTORABLE[case]
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: bad_result}\nworkflow:\n"
        "  - step: start\n    type: python\n    code: |\n      def main():\n"
        f"          {body}\n",
        encoding="utf-8",
    )
    db = str(tmp_path / "noetl.db")
    done = cli("run", str(path), "--db", db, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "FAILED" and message in answer["error"]
    status = cli("status", answer["execution_id"], "--db", db)
    assert status.returncode == 0 and "status:   FAILED" in status.stdout, status.stdout + status.stderr
    assert message in status.stdout


def test_an_item_whose_result_cannot_be_recorded_fails_alone(store: Any) -> None:
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: bad_item}
        workflow:
          - step: start
            type: iterator
            collection: [1, 2, 3]
            element: n
            on_error: continue
            task:
              type: python
              data: {n: "{{ n }}"}
              code: |
                def main(n):
                    return {(n,): n} if n == 2 else {"n": n}
        """,
    )
    assert outcome.status == "COMPLETED", outcome.error
    failed = [e for e in events if e.event_type == "iteration_failed"]
    assert [e.current_index for e in failed] == [1]
    assert "item 1 result has a key (2,)" in (failed[0].error or "")
    assert outcome.result[0] == {"n": 1} and outcome.result[2] == {"n": 3}
