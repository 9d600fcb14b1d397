"""The duckdb action: run a step's SQL in a DuckDB file, with its postgres credentials as DuckDB secrets.

Each statement commits on its own (DuckDB's ATTACH, SET and COPY do not all run inside a transaction);
`:name` binds the step's inputs as DuckDB parameters (`$name`), dicts and lists as JSON text.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from noetl.actions.base import ActionContext
from noetl.actions.duckdb_extensions import configure, missing_extension_hint
from noetl.actions.sql_results import statement_result
from noetl.actions.sql_split import bind_named
from noetl.actions.sql_step import commands, pg_params, preview
from noetl.dsl.sql_names import is_identifier
from noetl.errors import ActionError, CredentialError
from noetl.store.ports import CredentialRecord

_POSTGRES_TYPES = frozenset({"postgres", "postgresql"})
# Statements whose only result is DuckDB's "Count" of rows touched: reported as row_count, not rows.
_COUNTING = frozenset({"INSERT", "UPDATE", "DELETE", "COPY", "CREATE", "MERGE_INTO"})


def run(ctx: ActionContext) -> dict[str, Any]:
    statements = commands(ctx)
    secrets = _secrets(ctx)
    inputs = ctx.inputs if isinstance(ctx.inputs, dict) else {}
    path = database_path(ctx.config.get("database"), ctx.execution_id)
    con = connect(path, f"step '{ctx.step}'")
    try:
        for alias, params in secrets.items():
            _create_secret(con, alias, params, ctx.step)
        return {
            f"command_{index}": _run_one(con, statement, inputs, index, len(statements), ctx.step)
            for index, statement in enumerate(statements)
        }
    finally:
        con.close()


def database_path(value: Any, execution_id: str) -> str:
    """The DuckDB file: as given (relative to the working directory), or one file per execution."""
    if value in (None, ""):
        path = Path(tempfile.gettempdir()) / "noetl-duckdb" / f"{execution_id}.duckdb"
    elif str(value) == ":memory:":
        return ":memory:"
    else:
        path = Path(str(value)).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def connect(path: str, where: str) -> duckdb.DuckDBPyConnection:
    """A connection to the file, with extensions taken from the installed packages only."""
    try:
        con = duckdb.connect(path)
    except duckdb.Error as exc:  # most often: another process holds the file's write lock
        message = " ".join(str(exc).split())
        raise ActionError(
            f"{where}: cannot open DuckDB database {path}: {message}; check that no other process holds it",
            error_type=type(exc).__name__,
        ) from None
    try:
        configure(con)
    except duckdb.Error:
        con.close()
        raise
    return con


def _secrets(ctx: ActionContext) -> dict[str, dict[str, str]]:
    """`auth` as alias -> postgres connection settings; no auth is fine (a step may need no secret)."""
    if ctx.task.auth is None:
        return {}
    where = f"step '{ctx.step}'"
    try:
        records = ctx.services.credentials.resolve_map(ctx.render(ctx.task.auth), where)
        return {alias: _secret_params(alias, record, where) for alias, record in records.items()}
    except CredentialError as exc:
        raise ActionError(str(exc), non_retryable=True, error_type="CredentialError") from None


def _secret_params(alias: str, record: CredentialRecord, where: str) -> dict[str, str]:
    if not is_identifier(alias):
        raise CredentialError(
            f"{where}: auth alias {alias!r} cannot name a DuckDB secret; use letters, digits "
            "and underscores, starting with a letter"
        )
    if record.type.lower() not in _POSTGRES_TYPES:
        raise CredentialError(
            f"{where}: auth alias {alias!r} is credential {record.name!r} of type "
            f"{record.type or 'unset'}; a duckdb step supports credentials of type postgres"
        )
    return pg_params(record)


def _create_secret(con: duckdb.DuckDBPyConnection, alias: str, params: dict[str, str], step: str) -> None:
    # CREATE SECRET takes no bind parameters, so the values are quoted literals; TEMPORARY keeps them in
    # memory only, never in ~/.duckdb.
    options = ", ".join(f"{_SECRET_KEYS[k]} {_literal(v)}" for k, v in params.items() if k in _SECRET_KEYS)
    try:
        con.execute(f'CREATE OR REPLACE TEMPORARY SECRET "{alias}" (TYPE postgres, {options})')
    except duckdb.Error as exc:
        text = str(exc).replace(params.get("password") or "\0", "***")
        raise ActionError(
            f"step '{step}': cannot create DuckDB secret {alias!r}: {text}{missing_extension_hint(text)}",
            non_retryable=True,
        ) from None


_SECRET_KEYS = {"host": "HOST", "port": "PORT", "dbname": "DATABASE", "user": "USER", "password": "PASSWORD"}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _run_one(
    con: duckdb.DuckDBPyConnection, statement: str, inputs: dict[str, Any], index: int, total: int, step: str
) -> dict[str, Any]:
    bound = bind_named(statement, inputs, "dollar")
    params = {name: _adapt(inputs[name]) for name in bound.names}
    try:
        parsed = con.extract_statements(bound.text)
        kind = parsed[0].type.name if parsed else ""
        con.execute(bound.text, params or None)
        columns = [d[0] for d in con.description or []]
        rows = con.fetchall() if columns else []
    except duckdb.Error as exc:
        raise _statement_error(exc, statement, index, total, step) from None
    if columns == ["Count"] and kind in _COUNTING:
        return statement_result([], [], int(rows[0][0]) if rows and rows[0][0] is not None else 0)
    if columns == ["Success"]:
        return statement_result([], [], 0)
    return statement_result(columns, rows, len(rows))


def _statement_error(exc: duckdb.Error, statement: str, index: int, total: int, step: str) -> ActionError:
    message = " ".join(str(exc).split())  # one line: DuckDB's own messages span several
    text = f"{type(exc).__name__}: {message}{missing_extension_hint(message)}"
    return ActionError(
        f"step '{step}': command_{index} (statement {index + 1} of {total}) failed: {text}; "
        f"in `{preview(statement)}`; statements before it stay committed",
        # Write conflicts and I/O (a remote database, a locked file) may pass; a wrong statement will not.
        non_retryable=not isinstance(exc, duckdb.TransactionException | duckdb.IOException),
        error_type=type(exc).__name__,
        result={"statement": index},
    )


def _adapt(value: Any) -> Any:
    """dicts and lists go as JSON text, as in the postgres action; DuckDB casts it where JSON is expected."""
    return json.dumps(value) if isinstance(value, dict | list) else value
