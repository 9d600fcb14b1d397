"""`storage: duckdb`: insert, upsert or run a statement with the rows in a DuckDB file, in one transaction.

A batch (several items' saves, SaveRequest.batch, all for one file) is one transaction as well.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from noetl.actions.base import ActionContext
from noetl.actions.duckdb_action import connect, database_path
from noetl.actions.save.request import SaveRequest
from noetl.actions.save.sql_rows import Dialect, Work, merged, plan, where
from noetl.actions.sql_split import bind_named, split_commands
from noetl.errors import ActionError, SaveError, SaveFailed


def _adapt(value: Any) -> Any:
    """dicts and lists are written as JSON text; DuckDB casts it into a JSON column."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


# Names are checked identifiers before they are quoted, so no `"` can be inside one.
DUCKDB = Dialect(bind_style="dollar", quote=lambda n: f'"{n}"', placeholder=lambda c: f"${c}", adapt=_adapt)


def write(request: SaveRequest, ctx: ActionContext) -> int:
    work = merged([w for item in request.batch or (request,) for w in _work(item)])
    path = database_path(request.options.get("database"), ctx.execution_id)
    try:
        con = connect(path, where(request, ctx.step))
    except ActionError as exc:  # most often another process holds the file's write lock
        raise SaveFailed(str(exc), reason="connection_error", error_type=exc.error_type) from None
    try:
        return _in_transaction(con, work)
    except duckdb.Error as exc:
        message = " ".join(str(exc).split())
        raise SaveFailed(
            f"{where(request, ctx.step)} was refused: {type(exc).__name__}: {message}; no row of this save "
            "was written",
            reason="target_error",
            error_type=type(exc).__name__,
        ) from None
    finally:
        con.close()


def _work(request: SaveRequest) -> list[Work]:
    return _script(request) if request.spec.mode == "script" else plan(request, DUCKDB)


def _script(request: SaveRequest) -> list[Work]:
    """The script form (`commands`): run once, already rendered; `:name` binds the save's data."""
    try:
        statements = split_commands(request.options.get("commands"))
    except ValueError as exc:
        raise SaveError(str(exc)) from None
    if not statements:
        raise SaveError("the save's `commands` holds no SQL statement; write at least one")
    rows = request.rows()
    data = rows[0] if len(rows) == 1 else {}
    work = []
    for statement in statements:
        bound = bind_named(statement, data, "dollar")  # a `:name` that is not in the data stays as written
        params = [{n: _adapt(data[n]) for n in bound.names}] if bound.names else None
        work.append(Work(bound.text, params))
    return work


def _in_transaction(con: duckdb.DuckDBPyConnection, work: list[Work]) -> int:
    con.begin()
    try:
        written = sum(_execute(con, item) for item in work)
    except BaseException:
        con.rollback()
        raise
    con.commit()
    return written


def _execute(con: duckdb.DuckDBPyConnection, item: Work) -> int:
    if item.params is None:
        for _ in range(item.runs):
            con.execute(item.sql)
    else:
        con.executemany(item.sql, item.params)
    return item.count
