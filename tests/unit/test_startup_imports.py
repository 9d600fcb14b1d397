"""`noetl --help`, `noetl validate` and `noetl run` of a python-only playbook import only what they use
(issue 10, docs/performance.md "Start-up"): no server stack, no HTTP client, no database driver, and no
pydantic; nor rich, but for the help, which rich draws. Not a timing: each command runs in a subprocess
that writes its sys.modules at exit, and the test reads the names.

When one fails, `python -X importtime -m noetl.cli ARGS 2>&1 >/dev/null | less` shows who imports the
module: move that import into the function that needs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

# The command's own process, with sys.modules written to the file named by the first argument at exit
# (after main's sys.exit), so whatever a command imports on its way out counts too.
WRAPPER = """\
import atexit, json, sys

out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "noetl"
from noetl.cli_entry import main  # what the console script runs

main()
"""
NEVER = (  # the server stack, the HTTP client, the database drivers and what talks to a server
    "fastapi",
    "uvicorn",
    "starlette",
    "prometheus_client",
    "httpx",
    "duckdb",
    "psycopg",
    "psycopg_pool",
    "orjson",
    "noetl.server",
    "noetl.client",
)
PYDANTIC = ("pydantic", "pydantic_core", "typer._adapters")  # typer's coercion builds TypeAdapters
RICH = ("rich", "typer.rich_utils")
NOT_DRAWN = (
    "rich.markdown",
    "markdown_it",
    "rich.traceback",
    "pygments",
)  # by the help (import_help_renderer)
EXAMPLES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "examples").glob("*/*.yaml"))


def imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules `noetl ARGS` has imported when it exits (with code 0), run from an empty folder."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOETL_")}
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(out), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return set(json.loads(out.read_text()))


def among(modules: set[str], *groups: tuple[str, ...]) -> list[str]:
    """The modules that are one of the names of `groups`, or inside one."""
    names = {name for group in groups for name in group}
    return sorted(m for m in modules if m in names or any(m.startswith(n + ".") for n in names))


@pytest.mark.parametrize(
    "command", [["--help"], ["run", "--help"], ["validate", "--help"], ["credential", "add", "--help"]]
)
def test_help_imports_no_server_no_driver_and_no_pydantic(tmp_path: Path, command: list[str]) -> None:
    modules = imported(tmp_path, *command)
    assert among(modules, NEVER, PYDANTIC, NOT_DRAWN) == []
    assert "typer.rich_utils" in modules  # rich draws it
    # The help needs the commands, not the language, the engine, the runtime or the store.
    assert among(modules, ("noetl.dsl", "noetl.engine", "noetl.runtime", "noetl.store")) == []


@pytest.mark.parametrize("example", EXAMPLES)
def test_validate_imports_the_language_only(tmp_path: Path, example: str) -> None:
    # Every example, so that the steps of each action type are read: none may pull its driver in.
    modules = imported(tmp_path, "validate", str(REPO / example))
    assert among(modules, NEVER, PYDANTIC, RICH) == []
    assert among(modules, ("noetl.runtime", "noetl.store", "noetl.actions")) == []
    # `validate PATH` is checked without the CLI framework (noetl.cli_entry), --strict too
    assert among(modules, ("typer", "click", "noetl.cli")) == []
    assert "noetl.dsl.loader" in modules  # the test sees what the command did


def test_validate_with_any_other_option_goes_through_typer(tmp_path: Path) -> None:
    # --strict is the one option the short way reads; any other form is typer's, as before
    assert among(imported(tmp_path, "validate", "--strict", str(REPO / EXAMPLES[0])), ("typer",)) == []
    assert "noetl.cli" in imported(tmp_path, "validate", "--help")


def test_run_of_a_python_playbook_imports_no_server_no_driver_no_pydantic_and_no_rich(
    tmp_path: Path,
) -> None:
    # Not a terminal (the output is captured): no progress line, so rich is not needed either.
    modules = imported(
        tmp_path, "run", str(REPO / "examples/hello/hello_world.yaml"), "--db", str(tmp_path / "n.db")
    )
    assert among(modules, NEVER, PYDANTIC, RICH) == []
    assert "noetl.runtime.local" in modules


def test_the_help_renderer_s_stand_ins_are_the_real_classes_once_used(tmp_path: Path) -> None:
    # typer.rich_utils imported by import_help_renderer holds stand-ins for Markdown and Traceback: the
    # first use imports the real module and gives what the real class gives (a crash's pretty traceback).
    script = """\
import sys
from noetl.cli_help import import_help_renderer

import_help_renderer()
from typer import rich_utils
from typer.models import DeveloperExceptionConfig

assert "rich.markdown" not in sys.modules and "rich.traceback" not in sys.modules
markdown = rich_utils.Markdown("# title", style="dim")
try:
    1 / 0
except ZeroDivisionError as exc:
    shown = rich_utils.get_traceback(exc, DeveloperExceptionConfig(), [])
import rich.markdown, rich.traceback

assert type(markdown) is rich.markdown.Markdown and type(shown) is rich.traceback.Traceback
console = rich_utils._get_rich_console()
with console.capture() as out:
    console.print(markdown)
    console.print(shown)
print(out.get())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "title" in done.stdout and "ZeroDivisionError" in done.stdout
