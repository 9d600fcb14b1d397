"""`noetl validate` without the CLI framework, and what the `noetl` command prints for the errors of any
command (typer-free, so that both the typer tree in noetl.cli and noetl.cli_entry's short way use it).

`noetl validate PATH` is the command editors, pre-commit hooks and CI run most, each time in a new
process: noetl.cli_entry runs its plain forms here, without importing typer and building its click tree
(about 40 ms of the 120 its start-up took, docs/performance.md "Start-up"). noetl.cli's `validate`
calls the same `validate` below, so both ways print and exit alike (tests/unit/test_cli_one_command.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from noetl.errors import CredentialError, InputError, NoetlError, PlaybookError, Problem


def validate(playbook: Path, strict: bool) -> None:
    """Check the playbook and print the verdict; raises PlaybookError (with --strict, for warnings too)."""
    from noetl.dsl import load_playbook

    pb = load_playbook(playbook)
    warnings = [*pb.warnings, *missing_drivers(pb)]
    if strict and warnings:
        raise PlaybookError(warnings)  # listed once, as the errors they now are
    for warning in warnings:
        _echo(f"warning: {warning}", err=True)
    counted = f", {len(warnings)} warning(s)" if warnings else ""
    _echo(f"{playbook}: valid ({len(pb.steps)} steps{counted})")


def missing_drivers(pb: Any) -> list[Problem]:
    """A warning for each step whose driver cannot be imported here, naming the extra that installs it."""
    import importlib.util

    from noetl.dsl.drivers import install_hint, needs

    problems, absent = [], {}
    for need in needs(pb):
        module = need.driver.module
        if module not in absent:
            try:
                absent[module] = importlib.util.find_spec(module) is None
            except (ImportError, ValueError):  # a parent package is missing (or is a stand-in)
                absent[module] = True
        if absent[module]:
            where = "" if need.step else f"{need.where}: "
            problems.append(
                Problem(
                    f"{where}{need.what} needs {need.driver.label} ({module}), which is not installed here; "
                    f"install it with `{install_hint(need.driver.extra)}` (or run it where it is installed)",
                    pb.source,
                    need.line,
                    need.step,
                )
            )
    return problems


def exit_code_for(exc: BaseException) -> int | None:
    """Print what the `noetl` command prints for `exc` and return its exit code: 2 for bad input, 1 for a
    failure; None for an exception that is a bug (the caller raises it again, with its traceback)."""
    if isinstance(exc, PlaybookError):
        _echo(f"error: the playbook is not valid ({len(exc.problems)} problem(s)):", err=True)
        for problem in exc.problems:
            _echo(f"  {problem}", err=True)
        return 2
    if isinstance(exc, (InputError, CredentialError)):
        return _error(str(exc), 2)
    if isinstance(exc, NoetlError):  # a StoreError, an execution's failure
        return _error(str(exc), 1)
    if isinstance(exc, ModuleNotFoundError):
        # An optional extra that is not installed (fastapi, psycopg, duckdb...): one line naming it.
        from noetl.dsl.drivers import extra_of, install_hint

        extra = extra_of(exc.name)
        if extra is None:
            return None
        return _error(
            f"this command needs the {exc.name} module, which is not installed here; "
            f"install it with: {install_hint(extra)}",
            2,
        )
    return None


def _error(message: str, code: int) -> int:
    _echo(f"error: {message}", err=True)
    return code


def _echo(text: str, err: bool = False) -> None:
    """One line, flushed (what typer.echo does for text)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()
