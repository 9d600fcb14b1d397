"""Messages that depend on the store name it: an unknown execution (status, events, retry, --resume),
an empty list of executions or credentials. The default store is relative to the working directory, so
its absolute path is said, and that it is the default; on a server, its address."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import REPO, cli
from tests.processes import running_server

NO_DB = {"NOETL_DB": ""}  # whatever the test's environment holds: the default store


def test_an_unknown_execution_names_the_store_it_was_looked_for_in(tmp_path: Path) -> None:
    default = f"{tmp_path.resolve()}/.noetl/noetl.db (the default store: neither --db nor $NOETL_DB is set)"
    hello = str(REPO / "examples/hello/hello_world.yaml")
    for args, said in (
        (
            ["status", "nope"],
            f"execution nope not found in {default}; list executions with `noetl executions`",
        ),
        (["events", "nope"], f"no events for execution nope in {default}"),
        (["retry", "nope"], f"execution nope not found in {default}, so there is nothing to retry"),
        (["run", hello, "--resume", "nope"], f"execution nope not found in {default}, so there is nothing"),
    ):
        done = cli(*args, cwd=tmp_path, env=NO_DB)
        assert done.returncode == 2, (args, done.stderr)
        assert said in done.stderr, (args, done.stderr)

    db = str(tmp_path / "other.db")
    given = cli("status", "nope", "--db", db, cwd=tmp_path)
    assert f"not found in {db}; list executions with `noetl executions --db {db}`" in given.stderr
    from_env = cli("events", "nope", cwd=tmp_path, env={"NOETL_DB": db})
    assert f"no events for execution nope in {db} ($NOETL_DB)" in from_env.stderr


def test_empty_lists_name_the_store(tmp_path: Path) -> None:
    default = f"{tmp_path.resolve()}/.noetl/noetl.db (the default store: neither --db nor $NOETL_DB is set)"
    assert cli("executions", cwd=tmp_path, env=NO_DB).stdout.strip() == f"no executions yet in {default}"
    assert cli("credential", "list", cwd=tmp_path, env=NO_DB).stdout.strip() == f"no credentials in {default}"
    gone = cli("credential", "delete", "api", cwd=tmp_path, env=NO_DB)
    assert gone.returncode == 2 and f"no credential named 'api' in {default}" in gone.stderr


def test_on_a_server_the_message_names_the_server(tmp_path: Path) -> None:
    db = str(tmp_path / "server.db")
    with running_server(db, tmp_path) as server:
        where = ["--port", str(server.port)]
        listed = cli("executions", *where)
        assert listed.stdout.strip() == f"no executions yet on the server at 127.0.0.1:{server.port}"
        for args in (["status", "nope"], ["events", "nope"], ["cancel", "nope"]):
            done = cli(*args, *where)
            assert done.returncode == 2, (args, done.stderr)
            assert "execution nope not found" in done.stderr
            assert f"(server 127.0.0.1:{server.port})" in done.stderr, (args, done.stderr)
