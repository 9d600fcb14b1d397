"""`noetl events` narrowed to what matters: --failed, --step, --item, --type; locally and on a server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import cli
from tests.processes import running_server

PLAYBOOK = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: many_items, path: tests/many_items}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(0, 300) | list }}"
    element: n
    on_error: continue
    task:
      type: python
      data: {n: "{{ n }}"}
      code: |
        def main(n):
            if n in (150, 299):
                raise ValueError(f"bad item {n}")
            return n
    next: [{step: end}]
  - step: end
"""


def _run(tmp_path: Path) -> tuple[str, str]:
    db = str(tmp_path / "noetl.db")
    playbook = tmp_path / "many.yaml"
    playbook.write_text(PLAYBOOK)
    done = cli("run", str(playbook), "--db", db, "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    return db, json.loads(done.stdout)["execution_id"]


def test_failed_items_past_the_fold_are_shown(tmp_path: Path) -> None:
    db, x = _run(tmp_path)
    folded = cli("events", x, "--db", db)
    assert "bad item 150" not in folded.stdout  # the plain timeline folds items after 20
    failed = cli("events", x, "--db", db, "--failed")
    assert failed.returncode == 0, failed.stderr
    assert "bad item 150" in failed.stdout and "bad item 299" in failed.stdout
    assert "iteration_completed" not in failed.stdout
    as_json = [
        json.loads(line) for line in cli("events", x, "--db", db, "--failed", "--json").stdout.splitlines()
    ]
    assert [e["current_index"] for e in as_json] == [150, 299]


def test_one_item_one_step_one_type(tmp_path: Path) -> None:
    db, x = _run(tmp_path)
    item = [
        json.loads(line)
        for line in cli("events", x, "--db", db, "--item", "150", "--json").stdout.splitlines()
    ]
    assert [e["event_type"] for e in item] == ["iteration_started", "iteration_failed"]
    step = [
        json.loads(line)
        for line in cli("events", x, "--db", db, "--step", "start", "--json").stdout.splitlines()
    ]
    assert {e["node_name"] for e in step} == {"start"} and len(step) == 2
    typed = cli(
        "events", x, "--db", db, "--type", "iterator_completed", "--type", "execution_complete", "--json"
    )
    assert [json.loads(line)["event_type"] for line in typed.stdout.splitlines()] == [
        "iterator_completed",
        "execution_complete",
    ]
    wrong = cli("events", x, "--db", db, "--type", "iteration_done")
    assert wrong.returncode == 2 and "not an event type" in wrong.stderr
    none = cli("events", x, "--db", db, "--item", "5000")
    assert none.returncode == 0 and "no events match" in none.stderr


def test_the_same_views_from_a_server(tmp_path: Path) -> None:
    db, x = _run(tmp_path)
    with running_server(db, tmp_path) as server:
        where = ["--host", "127.0.0.1", "--port", str(server.port)]
        failed = cli("events", x, *where, "--failed", "--json")
        assert failed.returncode == 0, failed.stderr
        assert [json.loads(line)["current_index"] for line in failed.stdout.splitlines()] == [150, 299]
        item = cli("events", x, *where, "--item", "299", "--step", "loop", "--json")
        assert [json.loads(line)["event_type"] for line in item.stdout.splitlines()] == [
            "iteration_started",
            "iteration_failed",
        ]
