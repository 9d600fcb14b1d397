"""Runaway guards: a playbook that calls itself stops at a depth limit, and a cycle with no way out stops
at its steps' `max_runs`, each failing loudly with its reason instead of writing events for ever."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noetl.runtime.local import MAX_PLAYBOOK_DEPTH
from tests.helpers import cli, run_text


def test_a_playbook_that_always_calls_itself_is_refused_before_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "self.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: calls_itself}\nworkflow:\n"
        "  - step: start\n    next: [{step: again}]\n"
        "  - step: again\n    type: playbook\n    path: self.yaml\n",
        encoding="utf-8",
    )
    db = tmp_path / "x.db"
    done = cli("run", str(path), "--db", str(db), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "step 'again' runs this playbook ('self.yaml') as its own child" in done.stderr
    assert "put a `when`" in done.stderr
    assert not db.exists()  # refused before anything was written
    valid = cli("validate", str(path))
    assert valid.returncode == 2 and "nest without end" in valid.stderr


def test_a_playbook_that_calls_itself_stops_at_the_depth_limit(tmp_path: Path) -> None:
    # Behind a `when`, the call could stop, so it is not refused; this one never stops: the depth does.
    path = tmp_path / "self.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: calls_itself}\nworkflow:\n"
        "  - step: start\n    next: [{step: again, when: '{{ true }}'}]\n"
        "  - step: again\n    type: playbook\n    path: self.yaml\n",
        encoding="utf-8",
    )
    db = str(tmp_path / "x.db")
    done = cli("run", str(path), "--db", db, "--json", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "FAILED" and "max_depth" in answer["error"], answer["error"][:500]
    from noetl.store import open_store

    store = open_store(db)
    try:
        executions = store.executions(1000)
    finally:
        store.close()
    assert len(executions) == MAX_PLAYBOOK_DEPTH + 1  # the top one and 20 nested: no more
    assert all(e.status == "FAILED" for e in executions)


def test_a_cycle_with_no_way_out_stops_at_max_runs(store: Any) -> None:
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: cycle}
        workflow:
          - step: start
            next: [{step: a}]
          - step: a
            max_runs: 25
            next: [{step: b}]
          - step: b
            next: [{step: a}]
        """,
    )
    assert outcome.status == "FAILED"
    assert "step 'a' has run 25 times, its max_runs (reason max_runs)" in (outcome.error or "")
    runs = [e for e in events if e.event_type == "step_started" and e.node_name == "a"]
    assert len(runs) == 25
    assert len(events) < 200


def test_a_cycle_with_a_way_out_is_not_stopped(store: Any) -> None:
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: counted}
        workflow:
          - step: start
            next: [{step: count, data: {n: 0}}]
          - step: count
            type: python
            max_runs: 5
            code: |
              def main(n):
                  return {"n": n + 1}
            next:
              - when: "{{ result.n < 5 }}"
                step: count
                data: {n: "{{ result.n }}"}
              - step: end
          - step: end
        """,
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert sum(1 for e in events if e.event_type == "step_started" and e.node_name == "count") == 5


def test_validate_warns_about_a_cycle_with_no_way_out(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: cycle}\nworkflow:\n"
        "  - step: start\n    next: [{step: a}]\n"
        "  - step: a\n    next: [{step: b}]\n"
        "  - step: b\n    next: [{step: a}]\n",
        encoding="utf-8",
    )
    done = cli("validate", str(path))
    assert done.returncode == 0
    assert (
        f"warning: {path}:7: step 'a': the cycle a -> b -> a has no `when` that can leave it" in done.stderr
    )
    assert cli("validate", str(path), "--strict").returncode == 2


def test_a_cycle_with_a_when_is_not_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "counted.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: counted}\nworkflow:\n"
        "  - step: start\n    next: [{step: a}]\n"
        "  - step: a\n    next:\n      - when: '{{ result is none }}'\n        step: end\n      - step: a\n"
        "  - step: end\n",
        encoding="utf-8",
    )
    done = cli("validate", str(path), "--strict")
    assert done.returncode == 0, done.stderr
