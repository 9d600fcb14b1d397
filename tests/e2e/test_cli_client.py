"""The CLI against a running server: register, catalog list, execute --wait, status and events; exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_server_api import REPO, TINY, TOKEN
from tests.helpers import cli, cli_on_terminal
from tests.processes import ServerProcess, free_port, running_server


@pytest.fixture
def server(pg_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(pg_dsn, tmp_path) as started:
        yield started


@pytest.fixture
def worker(pg_dsn: str, server: ServerProcess, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One `noetl worker start` on the server's database."""
    with (tmp_path / "worker.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "noetl.cli", "worker", "start", "--db", pg_dsn],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server.env,
            cwd=REPO,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def at(server: ServerProcess) -> list[str]:
    return ["--port", str(server.port)]


def test_register_list_execute_and_follow_an_execution(
    server: ServerProcess, worker: object, tiny: Path, tmp_path: Path
) -> None:
    first = cli("register", str(tiny), *at(server))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "registered tests/tiny version 1 (tiny)"
    assert "version 2" in cli("register", str(tiny), "--host", "127.0.0.1", *at(server)).stdout
    listed = cli("catalog", "list", *at(server))
    assert listed.returncode == 0 and listed.stdout.startswith("tests/tiny  v2  tiny  ")

    inputs = tmp_path / "inputs.json"
    inputs.write_text('{"n": 2, "fail": false}')
    run = cli(
        "execute",
        "playbook",
        "tests/tiny",
        *at(server),
        "--input",
        str(inputs),
        "--payload",
        '{"n": 7}',
        "--wait",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)
    assert outcome == {
        "execution_id": outcome["execution_id"],
        "status": "COMPLETED",
        "result": {"squared": 49},
        "error": None,
        "failed_items": [],  # the iterator steps with failed items (none here)
    }

    execution_id = outcome["execution_id"]
    status = cli("status", execution_id, *at(server))
    assert status.returncode == 0 and "status:   COMPLETED" in status.stdout and "tests/tiny" in status.stdout
    as_json = cli("events", execution_id, *at(server), "--json")
    types = [json.loads(line)["event_type"] for line in as_json.stdout.splitlines()]
    assert types[0] == "execution_start" and types[-1] == "execution_complete"
    timeline = cli("events", execution_id, *at(server))
    assert (
        timeline.returncode == 0 and "square" in timeline.stdout and "execution_complete" in timeline.stdout
    )


def test_executing_a_file_registers_it_first_and_a_failed_execution_exits_1(
    server: ServerProcess, worker: object, tiny: Path
) -> None:
    failed = cli("execute", "playbook", str(tiny), *at(server), "--payload", '{"fail": true}', "--wait")
    assert failed.returncode == 1, failed.stderr
    assert "FAILED" in failed.stdout and "asked to fail" in failed.stdout
    assert "started" in failed.stderr  # the id is said at once, as `noetl run` does
    assert cli("catalog", "list", *at(server)).stdout.startswith("tests/tiny  v1")

    as_json = cli(
        "execute", "playbook", str(tiny), *at(server), "--payload", '{"fail": true}', "--wait", "--json"
    )
    assert as_json.returncode == 1
    outcome = json.loads(as_json.stdout)
    assert outcome["status"] == "FAILED" and "asked to fail" in outcome["error"] and outcome["result"] is None


def test_without_wait_execute_prints_the_id_and_returns(server: ServerProcess, tiny: Path) -> None:
    assert cli("register", str(tiny), *at(server)).returncode == 0
    started = cli("execute", "playbook", "tests/tiny", *at(server), "--json")
    assert started.returncode == 0, started.stderr
    body = json.loads(started.stdout)
    assert set(body) == {"execution_id", "status"} and body["status"] == "RUNNING"
    plain = cli("execute", "playbook", "tests/tiny", *at(server))
    assert (
        plain.returncode == 0
        and plain.stdout.startswith("execution ")
        and plain.stdout.strip().endswith(": RUNNING")
    )


def test_bad_input_exits_2_and_stores_nothing(server: ServerProcess, tiny: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        TINY.replace("      - step: end\n  - step: end", "      - step: nowhere\n  - step: end")
    )
    refused = cli("register", str(broken), *at(server))
    assert refused.returncode == 2
    assert (
        f"{broken}:" in refused.stderr and "nowhere" in refused.stderr and "Traceback" not in refused.stderr
    )
    assert "catalog is empty" in cli("catalog", "list", *at(server)).stdout

    assert cli("execute", "playbook", str(broken), *at(server)).returncode == 2
    not_json = cli("execute", "playbook", "tests/tiny", *at(server), "--payload", "{nope")
    assert not_json.returncode == 2 and "--payload is not valid JSON" in not_json.stderr
    unknown = cli("execute", "playbook", "no/such/path", *at(server), "--wait")
    assert unknown.returncode == 2 and "not found" in unknown.stderr and "register it first" in unknown.stderr
    missing = cli("status", "no-such-execution", *at(server))
    assert missing.returncode == 2 and "execution no-such-execution not found" in missing.stderr
    assert cli("events", "no-such-execution", *at(server)).returncode == 2
    usage = cli("execute", "playbook", *at(server))  # no PATH
    assert usage.returncode == 2 and "Missing argument" in usage.stderr and "Traceback" not in usage.stderr


def test_an_unreachable_server_is_a_one_line_error_and_exit_1(tiny: Path) -> None:
    port = str(free_port())  # nothing listens there
    for args in (
        ("register", str(tiny)),
        ("catalog", "list"),
        ("execute", "playbook", "tests/tiny", "--wait"),
        ("status", "some-id"),
        ("events", "some-id"),
    ):
        result = cli(*args, "--port", port)
        assert result.returncode == 1, args
        assert result.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in result.stderr, result.stderr


def test_the_token_comes_from_the_environment_or_token(pg_dsn: str, tmp_path: Path, tiny: Path) -> None:
    with running_server(pg_dsn, tmp_path, {"NOETL_API_TOKEN": TOKEN}) as server:
        anonymous = cli("catalog", "list", *at(server), env={"NOETL_API_TOKEN": ""})
        assert anonymous.returncode == 2 and "NOETL_API_TOKEN" in anonymous.stderr
        assert (
            cli("register", str(tiny), *at(server), "--token", TOKEN, env={"NOETL_API_TOKEN": ""}).returncode
            == 0
        )
        from_env = cli("catalog", "list", *at(server), env={"NOETL_API_TOKEN": TOKEN})
        assert from_env.returncode == 0 and "tests/tiny" in from_env.stdout


def test_db_init_creates_the_schema_and_is_safe_to_run_again(pg_dsn: str, tmp_path: Path) -> None:
    import psycopg

    for _ in range(2):
        result = cli("db", "init", "--db", pg_dsn)
        assert result.returncode == 0, result.stderr
        assert "schema up to date" in result.stdout and "postgres@" not in result.stdout
    with psycopg.connect(pg_dsn) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"noetl_events", "noetl_executions", "noetl_jobs"} <= tables

    sqlite = cli("db", "init", "--db", str(tmp_path / "local.db"))
    assert sqlite.returncode == 0 and (tmp_path / "local.db").exists()


def test_execute_wait_draws_the_progress_line_of_noetl_run_on_a_terminal(
    server: ServerProcess, worker: object, tmp_path: Path
) -> None:
    from tests.e2e.test_progress import PLAYBOOK

    playbook = tmp_path / "progress.yaml"
    playbook.write_text(PLAYBOOK)
    code, screen = cli_on_terminal("execute", "playbook", str(playbook), *at(server), "--wait")
    assert code == 0, screen
    final = [line for line in screen.split("\r") if "/30" in line][-1]
    assert "30/30" in final and "done=27" in final and "failed=3" in final and "items/s" in final
