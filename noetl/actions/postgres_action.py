"""The postgres action: run a step's SQL statements in one transaction, binding `:name` from its inputs."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from noetl.actions.base import ActionContext
from noetl.actions.pg_connections import (
    PgConnectError,
    connection,
    conninfo_for,
    describe_target,
    is_connection_error,
    scrub,
    sql_error_text,
)
from noetl.actions.sql_params import bind, unbound_hint
from noetl.actions.sql_results import statement_result
from noetl.actions.sql_step import commands, preview, resolve_auth
from noetl.dsl.render import truthy
from noetl.errors import ActionError, CredentialError
from noetl.store.ports import CredentialRecord


def run(ctx: ActionContext) -> dict[str, Any]:
    statements = commands(ctx)
    conninfo = _conninfo(ctx, resolve_auth(ctx, "postgres"))
    autocommit = truthy(ctx.config.get("autocommit", False))
    inputs = ctx.inputs if isinstance(ctx.inputs, dict) else {}
    try:
        with connection(conninfo, autocommit=autocommit) as conn:
            # A timeout cancels the running statement on the server (psycopg's cancel is thread-safe);
            # the transaction then rolls back.
            hook = ctx.interrupts.add(conn.cancel_safe) if ctx.interrupts else None
            try:
                return _run_all(conn, statements, inputs, autocommit, ctx.step)
            finally:
                if hook is not None and ctx.interrupts is not None:
                    ctx.interrupts.remove(hook)
    except PgConnectError as exc:
        raise ActionError(
            f"step '{ctx.step}': {exc}; check the credential's host, port and user, and that "
            "the server is running",
            error_type="ConnectionError",
        ) from None
    except psycopg.Error as exc:  # a statement's own error is an ActionError already; this is the rest
        raise _failure(exc, conninfo, ctx.step) from None


def _conninfo(ctx: ActionContext, record: CredentialRecord) -> str:
    try:
        return conninfo_for(record)
    except CredentialError as exc:
        message = f"step '{ctx.step}': {exc}"
        raise ActionError(message, non_retryable=True, error_type="CredentialError") from None


def _run_all(
    conn: psycopg.Connection[Any], statements: list[str], inputs: dict[str, Any], autocommit: bool, step: str
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # One transaction for the whole step: an error in any statement rolls back all of them.
    with nullcontext() if autocommit else conn.transaction():
        for index, statement in enumerate(statements):
            results[f"command_{index}"] = _run_one(conn, statement, inputs, index, len(statements), step)
    return results


def _run_one(
    conn: psycopg.Connection[Any], statement: str, inputs: dict[str, Any], index: int, total: int, step: str
) -> dict[str, Any]:
    bound = bind(statement, inputs, "pyformat", adapt)
    try:
        with conn.cursor() as cur:
            cur.execute(bound.text, bound.params)
            if cur.description is None:
                return statement_result([], [], cur.rowcount)
            rows = cur.fetchall()
            return statement_result([c.name for c in cur.description], rows, len(rows))
    except psycopg.Error as exc:
        if is_connection_error(exc):
            raise  # not this statement's fault: run() reports the connection
        raise _statement_error(
            exc, statement, inputs, index, total, step, committed=conn.autocommit
        ) from None


def _statement_error(
    exc: psycopg.Error,
    statement: str,
    inputs: dict[str, Any],
    index: int,
    total: int,
    step: str,
    *,
    committed: bool,
) -> ActionError:
    hint = unbound_hint(statement, inputs) if exc.sqlstate == _SYNTAX_ERROR else ""
    return ActionError(
        f"step '{step}': command_{index} (statement {index + 1} of {total}) failed: {sql_error_text(exc)}"
        f"{hint}; in `{preview(statement)}`; "
        f"{'statements before it stay committed' if committed else 'the step was rolled back'}",
        non_retryable=_not_retryable(exc),
        error_type=type(exc).__name__,
        result={"statement": index, "sqlstate": exc.sqlstate},
    )


_SYNTAX_ERROR = "42601"


_AS_JSON = (dict, list)  # (a tuple made once: `dict | list` would build a union at every call)


def adapt(value: Any) -> Any:
    """A bind value for psycopg: dicts and lists go as JSON (jsonb), everything else as it is."""
    return Jsonb(value) if isinstance(value, _AS_JSON) else value


def _failure(exc: psycopg.Error, conninfo: str, step: str) -> ActionError:
    """The connection broke mid-step, or COMMIT failed (a deferred constraint, a serialization error)."""
    text = scrub(sql_error_text(exc), conninfo)
    if is_connection_error(exc):
        return ActionError(
            f"step '{step}': the connection to PostgreSQL {describe_target(conninfo)} failed: "
            f"{text}; the step's statements were not committed",
            error_type="ConnectionError",
        )
    return ActionError(
        f"step '{step}': the transaction could not be committed: {text}; the step was rolled back",
        non_retryable=_not_retryable(exc),
        error_type=type(exc).__name__,
    )


def _not_retryable(exc: psycopg.Error) -> bool:
    """Only transient conditions are worth a retry: serialization failures, deadlocks, lack of resources."""
    return not (exc.sqlstate or "").startswith(("40", "53", "55P03"))
