"""As a user runs it: `noetl run --payload` with a hostile value bound by `:name` stores it as data, and
`noetl validate` warns (exit 0) about a template inside a SQL string literal, naming file, line and step."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from tests.helpers import cli

HOSTILE = "x'); DROP TABLE t; --"

PLAYBOOK = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: sql_binds_cli}}
workload: {{name: plain}}
workflow:
  - step: start
    next: [{{step: load}}]
  - step: load
    type: {kind}
    {setting}
    data: {{name: "{{{{ workload.name }}}}"}}
    command: |
      CREATE TABLE IF NOT EXISTS t (name text);
      INSERT INTO t VALUES ({value});
      SELECT name FROM t
"""


def test_run_binds_a_hostile_payload_value_and_the_table_survives(tmp_path: Path) -> None:
    database = tmp_path / "cli.duckdb"
    path = tmp_path / "bound.yaml"
    path.write_text(PLAYBOOK.format(kind="duckdb", setting=f"database: {database}", value=":name"))
    payload = json.dumps({"name": HOSTILE})
    done = cli("run", str(path), "--payload", payload, "--db", str(tmp_path / "n.db"), "--json", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["result"]["command_2"]["rows"] == [{"name": HOSTILE}]
    with duckdb.connect(str(database)) as con:
        assert con.execute("SELECT name FROM t").fetchall() == [(HOSTILE,)]
    assert cli("validate", str(path), "--strict").returncode == 0  # the bind form: no warning


def test_validate_warns_about_a_template_in_a_string_literal_with_file_line_and_step(tmp_path: Path) -> None:
    path = tmp_path / "pasted.yaml"
    path.write_text(PLAYBOOK.format(kind="postgres", setting="auth: pg_local", value="'{{ workload.name }}'"))
    done = cli("validate", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {path}:14: step 'load': "
        "a template inside a SQL string literal: `'{{ workload.name }}'` in `command` pastes the value into "
        "the statement (a quote in it ends the string, and the rest runs as SQL); bind it instead: write "
        "`:name` in place of `'{{ workload.name }}'`"
    ]
    assert "valid (2 steps, 1 warning(s))" in done.stdout
    strict = cli("validate", str(path), "--strict")
    assert strict.returncode == 2, strict.stdout + strict.stderr
    assert f"{path}:14: step 'load': a template inside a SQL string literal" in strict.stderr
