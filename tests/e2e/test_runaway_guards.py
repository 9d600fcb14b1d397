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


def _calls(path: Path, name: str, *steps: str, workload: str = "") -> Path:
    """Write a playbook: `start`, then the given step texts (each already indented as a list item)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {{name: {name}}}\n{workload}workflow:\n"
        + "".join(steps),
        encoding="utf-8",
    )
    return path


def _call(step: str, path: str, start: bool = True) -> str:
    lead = f"  - step: start\n    next: [{{step: {step}}}]\n" if start else ""
    return lead + f"  - step: {step}\n    type: playbook\n    path: {path}\n"


def _refused_everywhere(tmp_path: Path, top: Path, expected: str) -> None:
    """`validate` and `run` both exit 2 with `expected`, and `run` writes nothing to the store."""
    valid = cli("validate", str(top), cwd=tmp_path)
    assert valid.returncode == 2, valid.stdout + valid.stderr
    assert expected in valid.stderr
    db = tmp_path / "x.db"
    done = cli("run", str(top), "--db", str(db), cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not db.exists()  # refused before the store was opened


def test_a_ring_of_two_playbooks_that_always_call_each_other_is_refused(tmp_path: Path) -> None:
    _calls(tmp_path / "a.yaml", "a", _call("call_b", "b.yaml"))
    _calls(tmp_path / "b.yaml", "b", _call("call_a", "a"))  # found with `.yaml` added, as at run time
    _refused_everywhere(
        tmp_path,
        Path("a.yaml"),
        "a.yaml:7: a.yaml step 'call_b' -> b.yaml step 'call_a' -> a.yaml: this ring of sub-playbooks "
        "always calls itself and never ends; put a `when` on one of these calls",
    )


def test_a_ring_of_three_playbooks_in_folders_is_refused(tmp_path: Path) -> None:
    # a.yaml's child is in its folder; sub/b.yaml's child sub/c.yaml is beside it; c goes back up.
    _calls(tmp_path / "a.yaml", "a", _call("call_b", "sub/b.yaml"))
    _calls(tmp_path / "sub" / "b.yaml", "b", _call("call_c", "c"))
    _calls(tmp_path / "sub" / "c.yaml", "c", _call("call_a", "../a.yaml"))
    top = tmp_path / "a.yaml"
    _refused_everywhere(
        tmp_path,
        top,
        f"{top}:7: {top} step 'call_b' -> {tmp_path}/sub/b.yaml step 'call_c' -> {tmp_path}/sub/c.yaml "
        f"step 'call_a' -> {top}: this ring of sub-playbooks always calls itself and never ends",
    )


def test_a_ring_reached_through_an_iterator_and_a_workbook_entry_is_refused(tmp_path: Path) -> None:
    top = _calls(
        tmp_path / "top.yaml",
        "top",
        "  - step: start\n    type: iterator\n    collection: [1, 2]\n    task:\n      type: workbook\n"
        "      name: go\n",
    )
    top.write_text(top.read_text() + "workbook:\n  - name: go\n    type: playbook\n    path: b\n")
    _calls(tmp_path / "b.yaml", "b", _call("call_c", "c.yaml"))
    _calls(tmp_path / "c.yaml", "c", _call("call_b", "b.yaml"))
    _refused_everywhere(
        tmp_path,
        Path("top.yaml"),
        "top.yaml:9: top.yaml step 'start' (its iterator's task) (workbook entry 'go') -> b.yaml step "
        "'call_c' -> c.yaml step 'call_b' -> b.yaml: every run enters this ring of sub-playbooks (from "
        "b.yaml), which always calls itself and never ends; put a `when` on one of its calls",
    )


def test_a_ring_with_a_when_is_accepted_and_runs_to_its_end(tmp_path: Path) -> None:
    _calls(
        tmp_path / "a.yaml",
        "a",
        "  - step: start\n    next:\n      - when: '{{ workload.n < 2 }}'\n        step: call_b\n"
        "      - step: end\n",
        "  - step: call_b\n    type: playbook\n    path: b.yaml\n    data: {n: '{{ workload.n + 1 }}'}\n",
        "  - step: end\n",
        workload="workload: {n: 0}\n",
    )
    _calls(tmp_path / "b.yaml", "b", _call("call_a", "a.yaml") + "    data: {n: '{{ workload.n }}'}\n")
    assert cli("validate", "a.yaml", "--strict", cwd=tmp_path).returncode == 0
    db = str(tmp_path / "x.db")
    done = cli("run", "a.yaml", "--db", db, "--json", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    from noetl.store import open_store

    store = open_store(db)
    try:
        executions = store.executions(100)
    finally:
        store.close()
    assert len(executions) == 5  # a(n=0) -> b -> a(n=1) -> b -> a(n=2), which stops
    assert all(e.status == "COMPLETED" for e in executions)


def test_a_child_that_is_missing_or_invalid_is_left_to_the_run(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("workflow: [\n", encoding="utf-8")
    for child, said in [
        ("gone.yaml", "sub-playbook 'gone.yaml' of a.yaml not found"),
        ("bad.yaml", "bad.yaml:"),
    ]:
        _calls(tmp_path / "a.yaml", "a", _call("call", child))
        valid = cli("validate", "a.yaml", cwd=tmp_path)
        assert valid.returncode == 0, valid.stderr
        done = cli("run", "a.yaml", "--db", str(tmp_path / "x.db"), cwd=tmp_path, timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        assert said in done.stdout, done.stdout


def _catalog_playbook(name: str, calls: str, guarded: bool = False) -> str:
    """A catalog playbook `rings/<name>` whose `start` goes to a step that runs `calls` (behind a `when`
    when `guarded`)."""
    if guarded:
        nxt = '    next: [{when: "{{ workload.go }}", step: call}, {step: end}]\n'
    else:
        nxt = "    next: [{step: call}]\n"
    return (
        "apiVersion: noetl.io/v1\nkind: Playbook\n"
        f"metadata: {{name: {name}, path: rings/{name}}}\n"
        "workload: {go: false}\n"
        "workflow:\n"
        "  - step: start\n" + nxt + "  - step: call\n    type: playbook\n"
        f"    path: {calls}\n"
        "    next: [{step: end}]\n"
        "  - step: end\n"
    )


def test_registering_the_catalog_entry_that_closes_a_ring_is_refused(tmp_path: Path) -> None:
    """On a server the children are catalog entries: the register that would close `a -> b -> a` is a 422
    naming the ring; behind a `when`, it is accepted."""
    from tests.processes import running_server

    with running_server(str(tmp_path / "s.db"), tmp_path) as server, server.client() as api:
        first = api.post("/api/catalog/register", json={"content": _catalog_playbook("b", "a")})
        assert first.status_code == 201, first.text  # `a` is not in the catalog yet: no ring
        closing = api.post("/api/catalog/register", json={"content": _catalog_playbook("a", "b")})
        assert closing.status_code == 422, closing.text
        problem = closing.json()["problems"][0]
        assert "rings/a step 'call' -> rings/b step 'call' -> rings/a" in problem["message"]
        assert "put a `when` on one of these calls" in problem["message"]
        assert api.get("/api/catalog/rings/a").status_code == 404  # nothing was registered
        guarded = api.post(
            "/api/catalog/register", json={"content": _catalog_playbook("a", "b", guarded=True)}
        )
        assert guarded.status_code == 201, guarded.text
