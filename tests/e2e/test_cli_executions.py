"""`noetl executions` (a header, durations, sub-playbook executions drawn below their parent, --status,
--playbook, --parent, locally and with --host/--port), `noetl cancel` and `credential add` checking the
type, driven as a user would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl.cli_common import CHILDREN_SHOWN
from noetl.dsl.credential_types import CREDENTIAL_TYPES
from tests.helpers import REPO, cli
from tests.processes import ServerProcess, Workers, running_server

HEADER = f"{'EXECUTION':<36}  {'STATUS':<10} {'STARTED':<19}  {'DURATION':>9}  PLAYBOOK"
ROW = re.compile(
    r"^(?P<id>[0-9a-f-]{36})  (?P<status>RUNNING|COMPLETED|FAILED) +(?P<started>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
    r"  +(?P<duration>[\d.]+s|\d+m\d\ds|\d+h\d\dm)\+?  (?P<tree>(?:  )*└ )?(?P<playbook>\S+)$"
)
CHILD = REPO / "examples/subplaybook/child.yaml"
FAN = f"""\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: fan, path: tests/fan}}
workflow:
  - step: start
    next: [{{step: each}}]
  - step: each
    type: iterator
    collection: "{{{{ range(0, 8) | list }}}}"
    element: n
    task:
      type: playbook
      path: {CHILD}
      data: {{value: "{{{{ n }}}}"}}
    next: [{{step: end}}]
  - step: end
"""
FAILS = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: fails, path: tests/fails}
workflow:
  - step: start
    next: [{step: boom}]
  - step: boom
    type: python
    code: |
      def main():
          raise ValueError("asked to fail")
    next: [{step: end}]
  - step: end
"""
SLOW = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: slow, path: tests/slow}
workflow:
  - step: start
    next: [{step: nap}]
  - step: nap
    type: python
    code: |
      import time
      def main():
          time.sleep(8)  # a step ends before it sees the cancel: the worker waits for it
    next: [{step: end}]
  - step: end
"""


def rows(stdout: str) -> list[re.Match[str]]:
    """The execution rows of a listing (after its header), each checked against the row format."""
    lines = stdout.splitlines()
    assert lines[0] == HEADER, stdout
    found = []
    for line in lines[1:]:
        if line.lstrip().startswith(("└ ...", "(")):
            continue
        match = ROW.match(line)
        assert match, f"not a row: {line!r}"
        found.append(match)
    return found


@pytest.fixture
def local(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A store with a fan-out of 8 sub-playbooks, a parent with one child and a failed execution."""
    db = str(tmp_path / "noetl.db")
    ids = {}
    for name, text in (("fan", FAN), ("fails", FAILS)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        done = cli("run", str(path), "--db", db, "--json")
        ids[name] = json.loads(done.stdout)["execution_id"]
    done = cli("run", str(REPO / "examples/subplaybook/parent.yaml"), "--db", db, "--json")
    ids["parent"] = json.loads(done.stdout)["execution_id"]
    return db, ids


def test_executions_lists_top_level_ones_with_their_children_below_them(
    local: tuple[str, dict[str, str]],
) -> None:
    db, ids = local
    listed = cli("executions", "--db", db)
    assert listed.returncode == 0, listed.stderr
    found = rows(listed.stdout)
    tops = [m for m in found if not m["tree"]]
    assert [m["id"] for m in tops] == [ids["parent"], ids["fails"], ids["fan"]]  # newest first
    assert [m["status"] for m in tops] == ["COMPLETED", "FAILED", "COMPLETED"]
    lines = listed.stdout.splitlines()
    at = {m["id"]: n for n, m in enumerate(found)}
    assert found[at[ids["parent"]] + 1]["tree"] == "└ " and found[at[ids["parent"]] + 1]["playbook"] == (
        "examples/subplaybook/child"
    )
    below_fan = found[at[ids["fan"]] + 1 :]
    assert len(below_fan) == CHILDREN_SHOWN and all(m["tree"] == "└ " for m in below_fan)
    more = f"└ ... {8 - CHILDREN_SHOWN} more: noetl executions --parent {ids['fan']} --db {db}"
    assert lines[-1].strip() == more

    children = cli("executions", "--parent", ids["fan"], "--db", db)
    assert [m["playbook"] for m in rows(children.stdout)] == ["examples/subplaybook/child"] * 8
    assert all(not m["tree"] for m in rows(children.stdout))

    failed = cli("executions", "--status", "failed", "--db", db)
    assert [m["id"] for m in rows(failed.stdout)] == [ids["fails"]]
    by_name = cli("executions", "--playbook", "fan", "--db", db)
    assert [m["id"] for m in rows(by_name.stdout) if not m["tree"]] == [ids["fan"]]
    assert (
        cli("executions", "--playbook", "nothing-like-it", "--db", db).stdout.strip()
        == f"no executions match in {db}"
    )
    limited = cli("executions", "--limit", "1", "--db", db)
    assert limited.stdout.splitlines()[-1] == "(1 of 3 shown, newest first; --limit N for more)"

    refused = cli("executions", "--status", "done", "--db", db)
    assert refused.returncode == 2 and "RUNNING, COMPLETED, FAILED" in refused.stderr


def test_executions_json_keeps_each_record_whole_and_adds_children_and_duration(
    local: tuple[str, dict[str, str]],
) -> None:
    db, ids = local
    listed = cli("executions", "--db", db, "--json")
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    first = records[0]
    assert set(first) == {
        "execution_id",
        "playbook_path",
        "status",
        "created_at",
        "finished_at",
        "parent_execution_id",
        "result",
        "error",
        "children",
        "duration",
        "depth",
    }
    assert first["execution_id"] == ids["parent"] and first["result"] == {"child_said": 49, "parent_made": 50}
    assert first["children"] == 1 and first["duration"] >= 0 and first["depth"] == 0
    assert records[1]["parent_execution_id"] == ids["parent"] and records[1]["depth"] == 1
    fan = next(r for r in records if r["execution_id"] == ids["fan"])
    assert fan["children"] == 8


def test_an_empty_store_says_so(tmp_path: Path) -> None:
    db = str(tmp_path / "n.db")
    assert cli("executions", "--db", db).stdout.strip() == f"no executions yet in {db}"  # names the store


# ---- on a server ---------------------------------------------------------------------------------------


@pytest.fixture
def server(pg_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(pg_dsn, tmp_path) as started:
        workers = Workers(pg_dsn, tmp_path)
        workers.start("w1", concurrency=2)
        try:
            yield started
        finally:
            workers.stop_all()


def test_executions_and_cancel_on_a_server(server: ServerProcess, tmp_path: Path) -> None:
    port = ["--port", str(server.port)]
    parent = cli(
        "execute", "playbook", str(REPO / "examples/subplaybook/parent.yaml"), *port, "--wait", "--json"
    )
    assert parent.returncode == 0, parent.stderr
    parent_id = json.loads(parent.stdout)["execution_id"]
    fails = tmp_path / "fails.yaml"
    fails.write_text(FAILS)
    failed = cli("execute", "playbook", str(fails), *port, "--wait", "--json")
    failed_id = json.loads(failed.stdout)["execution_id"]

    slow = tmp_path / "slow.yaml"
    slow.write_text(SLOW)
    started = cli("execute", "playbook", str(slow), *port, "--json")
    slow_id = json.loads(started.stdout)["execution_id"]

    listed = cli("executions", *port)
    assert listed.returncode == 0, listed.stderr
    found = rows(listed.stdout)
    assert [(m["id"], m["status"]) for m in found if not m["tree"]] == [
        (slow_id, "RUNNING"),
        (failed_id, "FAILED"),
        (parent_id, "COMPLETED"),
    ]
    assert found[-1]["tree"] == "└ " and found[-1]["playbook"] == "examples/subplaybook/child"
    assert "+  tests/slow" in listed.stdout.splitlines()[1]  # still running: the time so far
    only_failed = cli("executions", *port, "--status", "FAILED")
    assert [m["id"] for m in rows(only_failed.stdout)] == [failed_id]
    as_json = [json.loads(line) for line in cli("executions", *port, "--json").stdout.splitlines()]
    assert as_json[-1]["parent_execution_id"] == parent_id and as_json[-2]["children"] == 1

    cancelled = cli("cancel", slow_id, *port)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"execution {slow_id}: cancelled (FAILED)"
    status = cli("status", slow_id, *port)
    assert "  status:   FAILED" in status.stdout and "cancel" in status.stdout
    again = cli("cancel", slow_id, *port)
    assert again.returncode == 2 and "already finished (FAILED)" in again.stderr
    unknown = cli("cancel", "no-such-execution", *port)
    assert unknown.returncode == 2 and "not found" in unknown.stderr


def test_cancel_without_a_server_says_how_to_start_one() -> None:
    done = cli("cancel", "some-id", "--port", "1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot connect to the NoETL server at 127.0.0.1:1" in done.stderr


# ---- credentials ---------------------------------------------------------------------------------------


def test_credential_add_refuses_a_type_no_step_reads(tmp_path: Path) -> None:
    db = str(tmp_path / "n.db")
    refused = cli("credential", "add", "api", "--type", "http", "--data", '{"token": "t"}', "--db", db)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--type 'http' is not a credential type any step reads" in refused.stderr
    assert "bearer" in refused.stderr and "basic" in refused.stderr
    assert cli("credential", "list", "--db", db).stdout.strip() == f"no credentials in {db}"  # nothing stored
    typo = cli("credential", "add", "pg", "--type", "postgress", "--data", "{}", "--db", db)
    assert typo.returncode == 2 and "did you mean 'postgres'?" in typo.stderr

    saved = cli("credential", "add", "api", "--type", "bearer", "--data", '{"token": "t"}', "--db", db)
    assert saved.returncode == 0, saved.stderr
    assert cli("credential", "list", "--db", db).stdout.strip() == "api  (bearer)"


def test_the_credential_types_are_the_ones_the_actions_read() -> None:
    from noetl.actions import duckdb_action
    from noetl.actions.http_client import SUPPORTED_AUTH

    read = {
        *SUPPORTED_AUTH,
        *duckdb_action._POSTGRES_TYPES,
        *duckdb_action._STORAGE_TYPES,
        "snowflake",
        "secret",
    }
    assert set(CREDENTIAL_TYPES) == read


def test_credential_delete_removes_it_and_refuses_an_unknown_name(tmp_path: Path) -> None:
    from tests.helpers import cli as run_cli

    db = str(tmp_path / "noetl.db")
    added = run_cli(
        "credential", "add", "api", "--type", "bearer", "--data", '{"token": "abcdef"}', "--db", db
    )
    assert added.returncode == 0, added.stderr
    gone = run_cli("credential", "delete", "api", "--db", db)
    assert gone.returncode == 0 and "deleted" in gone.stdout
    assert "no credentials in" in run_cli("credential", "list", "--db", db).stdout
    again = run_cli("credential", "delete", "api", "--db", db)
    assert again.returncode == 2 and "no credential named 'api'" in again.stderr
