"""Missing extras: after a plain `pip install .`, `noetl server start` and `noetl worker start` say in one
line which extra to install (exit 2, no traceback); `noetl validate` warns about each step whose driver is
missing (its line and the extra; --strict makes it an error); such a step fails at once naming the extra.

The venv has every extra, so a sitecustomize on PYTHONPATH hides the modules as an uninstalled package
would be: importing them raises ModuleNotFoundError, and importlib.util.find_spec does too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

HIDE = """\
import os
import sys
from importlib.abc import MetaPathFinder

_HIDDEN = set(os.environ.get("NOETL_TEST_HIDE", "").split(","))


class _Uninstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Uninstalled())
"""
SERVER = "fastapi,uvicorn,starlette,prometheus_client"
POSTGRES = "psycopg,psycopg_pool,orjson"
EVERY_EXTRA = ",".join((SERVER, POSTGRES, "duckdb"))
DUCKDB_EXAMPLE = REPO / "examples/duckdb/duckdb_step.yaml"


def noetl(
    tmp_path: Path, hidden: str, *args: str, module: str = "noetl.cli"
) -> subprocess.CompletedProcess[str]:
    """`noetl ARGS` as it runs where the modules in `hidden` are not installed."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(HIDE)
    env = {**os.environ, "PYTHONPATH": str(site), "NOETL_TEST_HIDE": hidden}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )


def test_the_stand_in_hides_the_modules(tmp_path: Path) -> None:
    noetl(tmp_path, "duckdb", "--help")  # writes the stand-in
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(site), "NOETL_TEST_HIDE": "duckdb"}
    done = subprocess.run([sys.executable, "-c", "import duckdb"], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "ModuleNotFoundError: No module named 'duckdb'" in done.stderr


def _one_line(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.strip() == text


def test_server_start_without_the_server_extra_says_which_to_install(tmp_path: Path) -> None:
    done = noetl(tmp_path, EVERY_EXTRA, "server", "start", "--port", "1", "--db", str(tmp_path / "n.db"))
    _one_line(
        done,
        "error: `noetl server start` needs the fastapi module, which is not installed here; "
        "install it with: pip install 'noetl[server]'",
    )


@pytest.mark.parametrize("module", ["noetl.cli", "noetl.cli_worker"])
def test_worker_start_without_the_postgres_extra_says_which_to_install(tmp_path: Path, module: str) -> None:
    args = ["start", "--db", "postgresql://noetl@127.0.0.1:1/noetl"]
    done = noetl(
        tmp_path, EVERY_EXTRA, *(["worker", *args] if module == "noetl.cli" else args), module=module
    )
    _one_line(
        done,
        "error: `noetl worker start` needs the psycopg module, which is not installed here; "
        "install it with: pip install 'noetl[postgres]'",
    )


def test_other_commands_work_without_any_extra(tmp_path: Path) -> None:
    db = str(tmp_path / "n.db")
    done = noetl(tmp_path, EVERY_EXTRA, "run", str(REPO / "examples/hello/hello_world.yaml"), "--db", db)
    assert done.returncode == 0, done.stderr
    listed = noetl(tmp_path, EVERY_EXTRA, "executions", "--db", db)
    assert listed.returncode == 0 and "examples/hello_world" in listed.stdout
    store = noetl(tmp_path, EVERY_EXTRA, "db", "init", "--db", "postgresql://noetl@127.0.0.1:1/noetl")
    assert store.returncode == 2 and "pip install 'noetl[postgres]'" in store.stderr
    assert "Traceback" not in store.stderr


MIXED = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: mixed}
workflow:
  - step: start
    next: [{step: create_table}]
  - step: create_table
    type: postgres
    auth: pg_local
    command: CREATE TABLE IF NOT EXISTS t (n INTEGER)
    next: [{step: load}]
  - step: load
    type: iterator
    collection: [1, 2]
    element: n
    task:
      type: python
      data: {n: "{{ n }}"}
      code: |
        def main(n):
            return {"n": n}
      save:
        storage: postgres
        auth: pg_local
        table: t
        args: {n: "{{ this.n }}"}
    next: [{step: aggregate}]
  - step: aggregate
    type: duckdb
    command: SELECT 1 AS one
    next: [{step: end}]
  - step: end
"""


def test_validate_warns_about_each_step_whose_driver_is_missing(tmp_path: Path) -> None:
    playbook = tmp_path / "mixed.yaml"
    playbook.write_text(MIXED)
    relaxed = noetl(tmp_path, "duckdb,psycopg", "validate", str(playbook))
    assert relaxed.returncode == 0, relaxed.stderr
    warnings = [line for line in relaxed.stderr.splitlines() if line.startswith("warning: ")]
    postgres = "the psycopg driver (psycopg), which is not installed here; install it with `pip install 'noetl[postgres]'`"
    duckdb = "DuckDB (duckdb), which is not installed here; install it with `pip install 'noetl[duckdb]'`"
    anywhere = " (or run it where it is installed)"
    assert warnings == [
        f"warning: {playbook}:7: step 'create_table': a postgres step needs {postgres}{anywhere}",
        f"warning: {playbook}:23: step 'load': a save to postgres needs {postgres}{anywhere}",
        f"warning: {playbook}:28: step 'aggregate': a duckdb step needs {duckdb}{anywhere}",
    ]
    assert "valid (5 steps, 3 warning(s))" in relaxed.stdout

    strict = noetl(tmp_path, "duckdb", "validate", str(DUCKDB_EXAMPLE), "--strict")
    assert strict.returncode == 2
    assert (
        "duckdb_step.yaml:" in strict.stderr
        and "step 'aggregate': a duckdb step needs DuckDB" in strict.stderr
    )
    assert "warning: " not in strict.stderr

    installed = noetl(tmp_path, "", "validate", str(DUCKDB_EXAMPLE), "--strict")
    assert installed.returncode == 0 and installed.stderr == "", installed.stderr


def test_validate_warns_about_a_nested_task_and_a_workbook_entry(tmp_path: Path) -> None:
    playbook = tmp_path / "nested.yaml"
    playbook.write_text(
        "apiVersion: noetl.io/v1\n"
        "kind: Playbook\n"
        "metadata: {name: nested}\n"
        "workbook:\n"
        "  - name: count_rows\n"
        "    type: duckdb\n"
        "    command: SELECT 1\n"
        "workflow:\n"
        "  - step: start\n"
        "    next: [{step: loop}]\n"
        "  - step: loop\n"
        "    type: iterator\n"
        "    collection: [1, 2]\n"
        "    element: n\n"
        "    task:\n"
        "      type: duckdb\n"
        "      command: SELECT 1\n"
        "    next: [{step: count}]\n"
        "  - step: count\n"
        "    type: workbook\n"
        "    name: count_rows\n"
        "    next: [{step: end}]\n"
        "  - step: end\n"
    )
    done = noetl(tmp_path, "duckdb", "validate", str(playbook))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, done.stderr
    assert (
        warnings[0].startswith(f"warning: {playbook}:")
        and "step 'loop': a duckdb step needs DuckDB" in warnings[0]
    )
    assert "workbook entry 'count_rows': a duckdb step needs DuckDB" in warnings[1]


def test_a_step_whose_driver_is_missing_fails_at_once_naming_the_extra(tmp_path: Path) -> None:
    db = str(tmp_path / "n.db")
    done = noetl(tmp_path, "duckdb", "run", str(DUCKDB_EXAMPLE), "--db", db, "--json")
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "FAILED" and "Traceback" not in done.stderr
    assert answer["error"] == (
        "step 'aggregate': a duckdb step needs the duckdb module, which is not installed here; "
        "install it with `pip install 'noetl[duckdb]'`"
    )
    events = noetl(tmp_path, "", "events", answer["execution_id"], "--db", db, "--json")
    rows = [json.loads(line) for line in events.stdout.splitlines()]
    started = [r for r in rows if r["event_type"] == "action_started" and r["node_name"] == "aggregate"]
    assert len(started) == 1, "not retried: installing the extra is the only fix"
    failed = [r for r in rows if r["event_type"] == "step_failed"]
    assert failed and failed[0]["meta"].get("error_type") == "MissingExtra"
