"""The DuckDB file of an execution (`<tmp>/noetl-duckdb/<id>.duckdb`, for duckdb steps without
`database`) goes when the execution ends: a run leaves none; a run killed with SIGKILL keeps it, and
`--resume` finds its tables there, then removes it; failed items keep it for `noetl retry`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, cli
from tests.processes import run_on_worker

PLAYBOOK = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_files}
workload: {marker: MARKER}
workflow:
  - step: start
    next: [{step: make}]
  - step: make
    type: duckdb
    command: CREATE TABLE answers AS SELECT 42 AS answer
    next: [{step: pause}]
  - step: pause
    type: python
    data: {marker: "{{ workload.marker }}"}
    code: |
      import os, time
      def main(marker):
          if not os.path.exists(marker):  # the first run waits here to be killed; a resume goes on
              with open(marker, "w") as f:
                  f.write("paused")
              time.sleep(60)
          return {}
    next: [{step: read}]
  - step: read
    type: duckdb
    command: SELECT answer FROM answers
    next: [{step: end}]
  - step: end
    result: {answer: "{{ read.command_0.rows[0].answer }}"}
"""

FLAKY = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: duck_retry}
workload: {fixed: FIXED}
workflow:
  - step: start
    next: [{step: make}]
  - step: make
    type: duckdb
    command: CREATE TABLE base AS SELECT 10 AS b
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: [1, 2, 3]
    element: n
    on_error: continue
    task:
      type: duckdb
      data: {n: "{{ n }}", fixed: "{{ workload.fixed }}"}
      command: |
        SELECT CASE WHEN :n != 2 OR (SELECT count(*) FROM glob(:fixed)) > 0 THEN b + :n
                    ELSE error('item 2 is not fixed yet') END AS v
          FROM base
    next: [{step: end}]
  - step: end
"""


def _env(tmp_path: Path) -> dict[str, str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    return {"TMPDIR": str(temp)}


def _files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "tmp" / "noetl-duckdb"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _paused(db: str, marker: Path) -> str:
    """The id of the run that waits in `pause`, once the events up to it are in the store (so that
    `make` is not run again by the resume)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = cli("executions", "--db", db, "--json", "--limit", "1").stdout.splitlines()
        latest = json.loads(listed[0]) if listed else {}
        if marker.exists() and latest.get("status") == "RUNNING":
            events = cli("events", latest["execution_id"], "--db", db, "--step", "pause", "--json").stdout
            if "action_started" in events:
                return str(latest["execution_id"])
        time.sleep(0.1)
    raise AssertionError("the run did not reach its pause")


def test_a_run_leaves_no_file_and_a_killed_one_keeps_it_for_its_resume(tmp_path: Path) -> None:
    env, db = _env(tmp_path), str(tmp_path / "noetl.db")
    playbook = tmp_path / "duck.yaml"
    playbook.write_text(PLAYBOOK.replace("MARKER", str(tmp_path / "marker")))
    (tmp_path / "marker").write_text("no pause")
    done = cli("run", str(playbook), "--db", db, "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == {"answer": 42}
    assert _files(tmp_path) == []  # removed when the execution completed

    (tmp_path / "marker").unlink()
    killed = subprocess.Popen(
        [sys.executable, "-m", "noetl.cli", "run", str(playbook), "--db", db, "--quiet"],
        cwd=REPO,
        env={**os.environ, **env},
    )
    execution_id = _paused(db, tmp_path / "marker")
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    assert json.loads(cli("status", execution_id, "--db", db, "--json").stdout)["status"] == "RUNNING"
    assert _files(tmp_path) == [f"{execution_id}.duckdb"]  # interrupted: kept

    resumed = cli("run", str(playbook), "--db", db, "--resume", execution_id, "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["result"] == {"answer": 42}  # the table made before the kill
    assert _files(tmp_path) == []


def test_failed_items_keep_the_file_for_a_retry_which_removes_it(tmp_path: Path) -> None:
    env, db = _env(tmp_path), str(tmp_path / "noetl.db")
    playbook = tmp_path / "flaky.yaml"
    playbook.write_text(FLAKY.replace("FIXED", str(tmp_path / "fixed")))
    done = cli("run", str(playbook), "--db", db, "--json", env=env)
    outcome = json.loads(done.stdout)
    assert outcome["failed_items"][0]["failed_indexes"] == [1], done.stdout
    assert _files(tmp_path) == [f"{outcome['execution_id']}.duckdb"]  # `noetl retry` may need it

    (tmp_path / "fixed").write_text("")
    retried = cli("retry", outcome["execution_id"], "--db", db, "--json", env=env)
    assert retried.returncode == 0, retried.stderr
    result = json.loads(retried.stdout)["result"]
    assert [r["command_0"]["rows"][0]["v"] for r in result] == [11, 12, 13]  # read from `base`, kept
    assert _files(tmp_path) == []


def test_on_workers_the_file_goes_when_the_execution_ends(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _env(tmp_path).items():  # the worker's temp folder
        monkeypatch.setenv(name, value)
    marker = tmp_path / "marker"
    marker.write_text("no pause")
    playbook = PLAYBOOK.replace("MARKER", str(marker)).replace(
        "{name: duck_files}", "{name: duck_files, path: t/duck}"
    )
    record, events = run_on_worker(pg_dsn, tmp_path, playbook, "t/duck")
    assert record["status"] == "COMPLETED" and record["result"] == {"answer": 42}, record
    assert any(e["event_type"] == "action_completed" and e["node_name"] == "make" for e in events)
    assert (tmp_path / "tmp" / "noetl-duckdb").is_dir()  # the worker made its file there
    assert _files(tmp_path) == []  # and the worker that wrote the end removed it
