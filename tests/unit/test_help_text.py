"""Issue 12 item 8, a clean `--help`: every command says what it does, and a flag (an option without a
value) shows no `<bool>` type, which would read as if it took one."""

from __future__ import annotations

import pytest

from tests.helpers import cli

COMMANDS = [
    [],
    ["run"],
    ["validate"],
    ["retry"],
    ["events"],
    ["status"],
    ["executions"],
    ["register"],
    ["cancel"],
    ["credential", "add"],
    ["server", "start"],
    ["worker", "start"],
    ["execute", "playbook"],
    ["db", "init"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "noetl")
def test_help_shows_no_bool_type_for_flags(command: list[str]) -> None:
    done = cli(*command, "--help", env={"COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    assert "<bool>" not in done.stdout, done.stdout
    assert "--help" in done.stdout and "Show this message and exit." in done.stdout
