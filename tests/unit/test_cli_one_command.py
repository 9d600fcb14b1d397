"""`noetl COMMAND ...` builds the click command of that one top-level command only (cli_help.click_command:
typer builds every subcommand's at each start, 13 ms of `validate`'s start-up). The group of one must
parse, help and fail exactly as the whole tree does: each case below runs in both and compares."""

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
RUN = """\
import sys
import typer.main
from noetl import cli
if sys.argv.pop(1) == "whole":
    cli.click_command = lambda app, args: typer.main.get_command(app)
sys.argv[0] = "noetl"
cli.main()
"""


@pytest.fixture
def bad(tmp_path: Path) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: noetl.io/v1\nkind: Playbook\nmetadata: {name: b}\nworkflow:\n  - step: x\n")
    return str(path)


CASES = [
    ["validate", GOOD],
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


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a).replace(GOOD, "good") for a in CASES])
def test_one_command_runs_as_in_the_whole_tree(args: list[str], bad: str, tmp_path: Path) -> None:
    args = [bad if a == "BAD" else a for a in args]
    assert list(click_command(app, args).commands) == [args[0]]
    one, whole = noetl("one", args, tmp_path), noetl("whole", args, tmp_path)
    assert one == whole
    assert one[0] in (0, 2) and (one[1] or one[2])  # it did run: printed, and exited as the CLI does


@pytest.mark.parametrize("args", [[], ["--help"], ["server", "--help"], ["credential", "list"], ["nope"]])
def test_the_help_groups_and_unknown_names_get_the_whole_tree(args: list[str]) -> None:
    assert set(click_command(app, args).commands) == set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_whole_tree_is_left_as_it_was() -> None:
    before = [c.callback for c in app.registered_commands], list(app.registered_groups)
    click_command(app, ["validate", GOOD])
    assert ([c.callback for c in app.registered_commands], list(app.registered_groups)) == before
