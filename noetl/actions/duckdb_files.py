"""The DuckDB file of an execution: where a duckdb step without `database` keeps its tables.

It is `<tmp>/noetl-duckdb/<execution_id>.duckdb`, shared by the execution's duckdb steps, its duckdb
saves and its duckdb collections; DuckDB puts its write-ahead log (`.wal`) and its spill folder
(`.tmp`) beside it. No duckdb import here: the runtime removes the files of executions that ended.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

FOLDER = "noetl-duckdb"


def execution_database(execution_id: str) -> Path:
    return Path(tempfile.gettempdir()) / FOLDER / f"{execution_id}.duckdb"


def _files(execution_id: str) -> list[Path]:
    if not execution_id or Path(execution_id).name != execution_id or execution_id in (".", ".."):
        return []  # not an id that names a file of the folder: nothing of it to find or remove
    database = execution_database(execution_id)
    return [database, database.with_name(database.name + ".wal"), database.with_name(database.name + ".tmp")]


def has_database(execution_id: str) -> bool:
    return any(path.exists() for path in _files(execution_id))


def remove_database(execution_id: str) -> bool:
    """Remove the execution's DuckDB file, its .wal and its .tmp folder; True when there was one."""
    found = False
    for path in _files(execution_id):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
        found = True
    return found
