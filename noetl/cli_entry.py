"""The `noetl` console script. `noetl validate PATH` (with or without `--strict`), which editors,
pre-commit hooks and CI run most, each time in a new process, is checked here without importing typer
and building its click tree (about 40 ms of the 120 its start-up took); every other command line, a
validate with any other option, `--help` included, goes to the typer tree in noetl.cli, which parses,
helps and fails as always. Both ways call the same cli_validate functions, so they print and exit
alike (tests/unit/test_cli_one_command.py runs each case both ways)."""

from __future__ import annotations

import sys
from pathlib import Path


def plain_validate(args: list[str]) -> tuple[Path, bool] | None:
    """(the playbook, strict) for `validate PATH`, `validate PATH --strict` or `validate --strict PATH`;
    None for any other command line."""
    if not args or args[0] != "validate":
        return None
    rest = args[1:]
    strict = "--strict" in rest
    paths = [a for a in rest if a != "--strict"]
    if len(paths) != 1 or paths[0].startswith("-") or len(rest) - len(paths) > 1:
        return None
    return Path(paths[0]), strict


def main() -> None:
    plain = plain_validate(sys.argv[1:])
    if plain is None:
        from noetl.cli import main as typer_main

        typer_main()
        return
    from noetl import cli_validate

    try:
        cli_validate.validate(*plain)
    except (Exception, KeyboardInterrupt) as exc:
        if isinstance(exc, KeyboardInterrupt):  # as click ends an interrupted command
            sys.stderr.write("\n")
            sys.exit(130)
        code = cli_validate.exit_code_for(exc)
        if code is None:
            raise
        sys.exit(code)
    sys.exit(0)


if __name__ == "__main__":
    main()
