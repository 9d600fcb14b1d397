"""SQL kept in package files: named queries (`-- name: x` blocks) and numbered migrations, in name order."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^\d+_\w+\.sql$")


def _folder(folder: str) -> resources.abc.Traversable:
    return resources.files("noetl.store").joinpath("sql", folder)


@cache
def named_queries(folder: str, filename: str) -> dict[str, str]:
    """Every `-- name: x` block of sql/<folder>/<filename>, keyed by name (procrastinate's layout)."""
    parts = _NAME.split(_folder(folder).joinpath(filename).read_text(encoding="utf-8"))
    # split() with one group gives [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def migrations(folder: str) -> list[tuple[str, str]]:
    """(name, sql) of every numbered file `NNN_name.sql` of sql/<folder>, in name order; other files are queries."""
    files = [f for f in _folder(folder).iterdir() if f.is_file() and _MIGRATION.match(f.name)]
    return [(f.name, f.read_text(encoding="utf-8")) for f in sorted(files, key=lambda f: f.name)]
