"""What the SQL actions share: a step's statements, its credential's postgres settings, statement previews.

No database driver is imported here, so that a duckdb-only install does not need psycopg.
"""

from __future__ import annotations

from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.sql_split import split_commands
from noetl.errors import ActionError, CredentialError
from noetl.store.ports import CredentialRecord

# Each setting: the field names a postgres credential may use for it, preferred first.
_FIELDS = {
    "host": ("db_host", "host"),
    "port": ("db_port", "port"),
    "user": ("db_user", "user", "username"),
    "password": ("db_password", "password"),
    "dbname": ("db_name", "database", "dbname"),
}


def commands(ctx: ActionContext) -> list[str]:
    """The step's statements, from `command` or `commands`; none at all is a mistake in the playbook."""
    value = ctx.config.get("command", ctx.config.get("commands"))
    try:
        statements = split_commands(value)
    except ValueError as exc:
        raise ActionError(f"step '{ctx.step}': {exc}", non_retryable=True) from None
    if not statements:
        raise ActionError(
            f"step '{ctx.step}': `command` holds no SQL statement; write at least one", non_retryable=True
        )
    return statements


def resolve_auth(ctx: ActionContext, kind: str) -> CredentialRecord:
    """The step's one credential; a missing or unknown one fails the step at once (retrying cannot help)."""
    if ctx.task.auth is None and kind == "postgres" and _connection_inputs(ctx.inputs):
        # NoETL 0.x read the connection from db_* inputs; the step runner has masked db_password.
        fields = {k: v for k, v in ctx.inputs.items() if k in _CONNECTION_INPUTS}
        return CredentialRecord(f"inputs of step '{ctx.step}'", "postgres", fields)
    if ctx.task.auth is None:
        raise ActionError(
            f"step '{ctx.step}': a {kind} step needs `auth` naming a credential (for example "
            "`auth: pg_local`); add one with `noetl credential add pg_local --type postgres --data JSON`",
            non_retryable=True,
        )
    try:
        return ctx.services.credentials.resolve(ctx.render(ctx.task.auth), f"step '{ctx.step}'")
    except CredentialError as exc:
        raise ActionError(str(exc), non_retryable=True, error_type="CredentialError") from None


_CONNECTION_INPUTS = frozenset({"db_host", "db_port", "db_user", "db_password", "db_name"})


def _connection_inputs(inputs: Any) -> bool:
    return isinstance(inputs, dict) and bool(inputs.get("db_host"))


def pg_params(record: CredentialRecord) -> dict[str, str]:
    """host, port, user, password, dbname from a postgres credential (db_* fields, plain names or a dsn)."""
    data = record.data
    if data.get("dsn"):
        from psycopg.conninfo import conninfo_to_dict  # only a dsn needs libpq's parser

        found: dict[str, Any] = dict(conninfo_to_dict(str(data["dsn"])))
    else:
        found = {key: _first(data, names) for key, names in _FIELDS.items()}
    params = {key: str(value) for key, value in found.items() if value not in (None, "")}
    if not params.get("host"):
        raise CredentialError(
            f"credential {record.name!r} (type {record.type or 'unset'}) has no db_host (or host, or dsn); "
            "a postgres credential needs db_host, db_port, db_user, db_password and db_name"
        )
    return params


def _first(data: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((data[n] for n in names if data.get(n) not in (None, "")), "")


def preview(statement: str, limit: int = 80) -> str:
    """The statement on one line, cut short: enough to find it in the playbook."""
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
