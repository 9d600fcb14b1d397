"""The duckdb action: run a step's SQL in a DuckDB file, with its `auth` aliases as DuckDB secrets.

A postgres credential becomes a `TYPE postgres` secret (for ATTACH); an HMAC key (`gcs_hmac`, `hmac`,
`gcs`, `s3`) a `TYPE gcs` or `TYPE s3` secret for `gs://` and `s3://` paths, any S3-compatible server
reachable through `endpoint`, `url_style` and `use_ssl`.

Each statement commits on its own (DuckDB's ATTACH, SET and COPY do not all run inside a transaction);
`:name` binds the step's inputs as DuckDB parameters (`$name`), dicts and lists as JSON text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from noetl.actions.base import ActionContext
from noetl.actions.duckdb_extensions import configure, missing_extension_hint
from noetl.actions.duckdb_files import execution_database
from noetl.actions.sql_params import bind, unbound_hint
from noetl.actions.sql_results import statement_result
from noetl.actions.sql_step import commands, pg_params, preview
from noetl.dsl.sql_names import is_identifier
from noetl.errors import ActionError, CredentialError
from noetl.store.ports import CredentialRecord

_POSTGRES_TYPES = frozenset({"postgres", "postgresql"})
# credential (or auth spec) type -> DuckDB secret type, for object storage through httpfs
_STORAGE_TYPES = {"gcs_hmac": "gcs", "hmac": "gcs", "gcs": "gcs", "s3": "s3"}
_SUPPORTED_TYPES = "postgres, gcs_hmac, hmac, gcs, s3"
# optional settings of a storage secret, read from the auth spec first, then from the credential
_STORAGE_SETTINGS = ("region", "endpoint", "url_style", "use_ssl", "scope")
# Statements whose only result is DuckDB's "Count" of rows touched: reported as row_count, not rows.
_COUNTING = frozenset({"INSERT", "UPDATE", "DELETE", "COPY", "CREATE", "MERGE_INTO"})


def run(ctx: ActionContext) -> dict[str, Any]:
    statements = commands(ctx)
    secrets = _secrets(ctx)
    inputs = ctx.inputs if isinstance(ctx.inputs, dict) else {}
    path = database_path(ctx.config.get("database"), ctx.execution_id)
    con = connect(path, f"step '{ctx.step}'")
    # A timeout interrupts the running query (DuckDB's own interrupt, safe from another thread).
    hook = ctx.interrupts.add(con.interrupt) if ctx.interrupts else None
    try:
        for alias, secret in secrets.items():
            _create_secret(con, alias, secret, ctx.step)
        return {
            f"command_{index}": _run_one(con, statement, inputs, index, len(statements), ctx.step)
            for index, statement in enumerate(statements)
        }
    finally:
        if hook is not None and ctx.interrupts is not None:
            ctx.interrupts.remove(hook)
        con.close()


def database_path(value: Any, execution_id: str) -> str:
    """The DuckDB file: as given (relative to the working directory), or one file per execution, removed
    when the execution ends (duckdb_files, runtime.cleanup)."""
    if value in (None, ""):
        path = execution_database(execution_id)
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


@dataclass(frozen=True)
class _Secret:
    """One DuckDB secret: its TYPE, its options as SQL (`KEY 'literal'`), and the values to mask."""

    type: str
    options: list[str]
    hidden: tuple[str, ...]


def _secrets(ctx: ActionContext) -> dict[str, _Secret]:
    """`auth` as alias -> DuckDB secret; no auth is fine (a step may need no secret)."""
    if ctx.task.auth is None:
        return {}
    where = f"step '{ctx.step}'"
    try:
        rendered = ctx.render(ctx.task.auth)
        records = ctx.services.credentials.resolve_map(rendered, where)
        return {
            alias: _secret(alias, record, _spec_of(rendered, alias), where)
            for alias, record in records.items()
        }
    except CredentialError as exc:
        raise ActionError(str(exc), non_retryable=True, error_type="CredentialError") from None


def _spec_of(rendered: Any, alias: str) -> dict[str, Any]:
    """The alias's own auth spec when it is a mapping (`{alias: {type, key, scope...}}`, or one spec)."""
    if not isinstance(rendered, dict):
        return {}
    spec = rendered.get(alias, rendered)
    return spec if isinstance(spec, dict) else {}


def _secret(alias: str, record: CredentialRecord, spec: dict[str, Any], where: str) -> _Secret:
    if not is_identifier(alias):
        raise CredentialError(
            f"{where}: auth alias {alias!r} cannot name a DuckDB secret; use letters, digits "
            "and underscores, starting with a letter"
        )
    kind = record.type.lower()
    if kind in _POSTGRES_TYPES:
        params = pg_params(record)
        options = [f"{_SECRET_KEYS[k]} {_literal(v)}" for k, v in params.items() if k in _SECRET_KEYS]
        return _Secret("postgres", options, (params.get("password", ""),))
    if kind in _STORAGE_TYPES:
        return _storage_secret(alias, record, spec, where)
    raise CredentialError(
        f"{where}: auth alias {alias!r} is credential {record.name!r} of type "
        f"{record.type or 'unset'}; a duckdb step supports credentials of type {_SUPPORTED_TYPES}"
    )


def _storage_secret(alias: str, record: CredentialRecord, spec: dict[str, Any], where: str) -> _Secret:
    """An HMAC key pair (Google Cloud Storage or S3) with the spec's settings over the credential's."""
    data = record.data
    key_id = _first_set(data, ("key_id", "access_key_id"))
    secret = _first_set(data, ("secret_key", "secret", "secret_access_key"))
    if not key_id or not secret:
        raise CredentialError(
            f"{where}: auth alias {alias!r} is credential {record.name!r} of type {record.type}, which "
            "needs key_id and secret_key (or access_key_id and secret_access_key)"
        )
    options = [f"KEY_ID {_literal(str(key_id))}", f"SECRET {_literal(str(secret))}"]
    for name in _STORAGE_SETTINGS:
        value = spec.get(name) if spec.get(name) not in (None, "") else data.get(name)
        if value in (None, "") or value == []:
            continue
        if name == "use_ssl":
            options.append(f"USE_SSL {_boolean(value, alias, where)}")
        elif name == "scope" and isinstance(value, list):
            options.append("SCOPE [" + ", ".join(_literal(str(v)) for v in value) + "]")
        else:
            options.append(f"{name.upper()} {_literal(str(value))}")
    return _Secret(_STORAGE_TYPES[record.type.lower()], options, (str(secret),))


def _first_set(data: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((data[n] for n in names if data.get(n) not in (None, "")), None)


def _boolean(value: Any, alias: str, where: str) -> str:
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in _TRUE | _FALSE:
        return "true" if value is True or text in _TRUE else "false"
    raise CredentialError(f"{where}: auth alias {alias!r}: use_ssl must be true or false, got {value!r}")


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _create_secret(con: duckdb.DuckDBPyConnection, alias: str, secret: _Secret, step: str) -> None:
    # CREATE SECRET takes no bind parameters, so the values are quoted literals; TEMPORARY keeps them in
    # memory only, never in ~/.duckdb.
    try:
        con.execute(
            f'CREATE OR REPLACE TEMPORARY SECRET "{alias}" (TYPE {secret.type}, {", ".join(secret.options)})'
        )
    except duckdb.Error as exc:
        text = _mask(str(exc), secret.hidden)
        raise ActionError(
            f"step '{step}': cannot create DuckDB secret {alias!r}: {text}{missing_extension_hint(text)}",
            non_retryable=True,
        ) from None


def _mask(text: str, hidden: tuple[str, ...]) -> str:
    """`text` with every hidden value (as given, and as quoted in SQL) replaced by ***, longest first."""
    forms = {form for value in hidden if value for form in (value, value.replace("'", "''"))}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


_SECRET_KEYS = {"host": "HOST", "port": "PORT", "dbname": "DATABASE", "user": "USER", "password": "PASSWORD"}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _run_one(
    con: duckdb.DuckDBPyConnection, statement: str, inputs: dict[str, Any], index: int, total: int, step: str
) -> dict[str, Any]:
    try:
        bound = bind(statement, inputs, "dollar", _adapt)
    except ValueError as exc:
        raise ActionError(f"step '{step}': command_{index}: {exc}", non_retryable=True) from None
    try:
        parsed = con.extract_statements(bound.text)
        kind = parsed[0].type.name if parsed else ""
        con.execute(bound.text, bound.params)
        columns = [d[0] for d in con.description or []]
        rows = con.fetchall() if columns else []
    except duckdb.Error as exc:
        raise _statement_error(exc, statement, inputs, index, total, step) from None
    if columns == ["Count"] and kind in _COUNTING:
        return statement_result([], [], int(rows[0][0]) if rows and rows[0][0] is not None else 0)
    if columns == ["Success"]:
        return statement_result([], [], 0)
    return statement_result(columns, rows, len(rows))


def _statement_error(
    exc: duckdb.Error, statement: str, inputs: dict[str, Any], index: int, total: int, step: str
) -> ActionError:
    message = " ".join(str(exc).split())  # one line: DuckDB's own messages span several
    hint = missing_extension_hint(message)
    unbound = unbound_hint(statement, inputs) if isinstance(exc, duckdb.ParserException) else ""
    text = f"{type(exc).__name__}: {message}{hint}{unbound}"
    return ActionError(
        f"step '{step}': command_{index} (statement {index + 1} of {total}) failed: {text}; "
        f"in `{preview(statement)}`; statements before it stay committed",
        # Write conflicts and I/O (a remote database, a locked file) may pass; a wrong statement will not,
        # nor will a missing extension (an IOException too), which no retry can install.
        non_retryable=bool(hint) or not isinstance(exc, (duckdb.TransactionException, duckdb.IOException)),
        error_type=type(exc).__name__,
        result={"statement": index},
    )


def _adapt(value: Any) -> Any:
    """dicts and lists go as JSON text, as in the postgres action; DuckDB casts it where JSON is expected."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value
