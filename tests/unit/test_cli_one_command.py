"""`noetl COMMAND ...` builds the click command of that one top-level command only (cli_help.click_command:
typer builds every subcommand's at each start, 13 ms of `validate`'s start-up). The group of one must
parse, help and fail exactly as the whole tree does: each case below runs in both and compares. The console
script (noetl.cli_entry) checks `validate PATH [--strict]` without typer at all: each case runs that way
too, and must print and exit as the whole tree does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from noetl.cli import app
from noetl.cli_help import click_command
from tests.helpers import REPO

GOOD = str(REPO / "examples" / "hello" / "hello_world.yaml")
# `noetl ARGS` as main() runs it, with click_command built from one command (as shipped) or from the
# whole tree (as before it): the two must print the same and exit with the same code.
# "console": the console script's own way (noetl.cli_entry), which checks `validate PATH [--strict]`
# without typer and hands every other command line to cli.main.
RUN = """\
import sys
import typer.main
from noetl import cli, cli_entry
way = sys.argv.pop(1)
if way == "whole":
    cli.click_command = lambda app, args: typer.main.get_command(app)
sys.argv[0] = "noetl"
cli_entry.main() if way == "console" else cli.main()
"""


@pytest.fixture
def bad(tmp_path: Path) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: b}\nworkflow:\n  - step: x\n")
    return str(path)


CASES = [
    ["validate", GOOD],
    ["validate", GOOD, "--strict"],
    ["validate", "--strict", GOOD],
    ["validate", "BAD", "--strict"],
    ["validate", "MISSING"],
    ["validate", "WARNED"],
    ["validate", "WARNED", "--strict"],
    ["validate", "--strict", "--strict", GOOD],
    ["validate", GOOD, GOOD],
    ["validate"],
    ["validate", "--help"],
    ["validate", "--no-such-option", GOOD],
    ["validate", GOOD, "--json"],
    ["validate", "BAD"],
    ["run", "--help"],
    ["run"],
]


def noetl(tree: str, args: list[str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, tree, *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )
    return done.returncode, done.stdout, done.stderr


# Valid with a warning (a template pasted into a SQL string literal): printed, and refused by --strict
WARNED = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: w}
workload: {name: x}
workflow:
  - step: start
    type: duckdb
    command: "SELECT '{{ workload.name }}' AS n"
"""


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a).replace(GOOD, "good") for a in CASES])
def test_one_command_runs_as_in_the_whole_tree(args: list[str], bad: str, tmp_path: Path) -> None:
    (tmp_path / "warned.yaml").write_text(WARNED)
    given = {"BAD": bad, "MISSING": str(tmp_path / "missing.yaml"), "WARNED": str(tmp_path / "warned.yaml")}
    args = [given.get(a, a) for a in args]
    assert list(click_command(app, args).commands) == [args[0]]
    one, whole = noetl("one", args, tmp_path), noetl("whole", args, tmp_path)
    assert one == whole
    assert noetl("console", args, tmp_path) == whole  # the console script's short way, or typer's
    assert one[0] in (0, 2) and (one[1] or one[2])  # it did run: printed, and exited as the CLI does
    if args[1:] == [given["WARNED"]]:
        assert "warning: " in one[2] and "1 warning(s)" in one[1]  # (the case shows what it is for)


@pytest.mark.parametrize("args", [[], ["--help"], ["server", "--help"], ["credential", "list"], ["nope"]])
def test_the_help_groups_and_unknown_names_get_the_whole_tree(args: list[str]) -> None:
    assert set(click_command(app, args).commands) == set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_whole_tree_is_left_as_it_was() -> None:
    before = [c.callback for c in app.registered_commands], list(app.registered_groups)
    click_command(app, ["validate", GOOD])
    assert ([c.callback for c in app.registered_commands], list(app.registered_groups)) == before
