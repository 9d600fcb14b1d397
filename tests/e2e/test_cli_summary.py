"""`noetl events ID --summary`: each iterator run's line has its item durations (p50, p95) and its
failed indexes (the first 20, then how many more); locally and from a server, the same lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers import cli
from tests.processes import running_server

PLAYBOOK = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: many_failures, path: tests/many_failures}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(0, 60) | list }}"
    element: n
    on_error: continue
    task:
      type: python
      data: {n: "{{ n }}"}
      code: |
        def main(n):
            if n % 2:
                raise ValueError(f"odd {n}")
            return n
    next: [{step: end}]
  - step: end
"""
RUN_LINE = re.compile(
    r"^iterator loop run 1: 60 items, 30 completed, 30 failed \(COMPLETED\), p50 \d+\.\d{3}s, p95 \d+\.\d{3}s; "
    r"failed: (?P<shown>[\d, ]+) … and 10 more$"
)


def test_a_run_line_has_its_durations_and_its_first_20_failed_indexes(tmp_path: Path) -> None:
    db = str(tmp_path / "noetl.db")
    playbook = tmp_path / "many.yaml"
    playbook.write_text(PLAYBOOK)
    done = cli("run", str(playbook), "--db", db, "--json")
    execution_id = json.loads(done.stdout)["execution_id"]

    summary = cli("events", execution_id, "--db", db, "--summary")
    assert summary.returncode == 0, summary.stderr
    [line] = [line for line in summary.stdout.splitlines() if line.startswith("iterator loop")]
    matched = RUN_LINE.match(line)
    assert matched, line
    assert matched["shown"] == ", ".join(str(i) for i in range(1, 40, 2))  # the first 20 odd indexes
    as_json = json.loads(cli("events", execution_id, "--db", db, "--summary", "--json").stdout)
    assert len(as_json["iterators"]["loop"]["failed_indexes"]) == 30  # --json has all of them

    with running_server(db, tmp_path) as server:
        remote = cli("events", execution_id, "--port", str(server.port), "--summary")
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == summary.stdout
