"""`storage: postgres`: insert, upsert or run a statement with the rows, all in one transaction."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from noetl.actions.base import ActionContext
from noetl.actions.pg_connections import (
    PgConnectError,
    connection,
    conninfo_for,
    is_connection_error,
    scrub,
    sql_error_text,
)
from noetl.actions.postgres_action import adapt
from noetl.actions.save.request import SaveRequest
from noetl.actions.save.sql_rows import Dialect, Work, plan, where
from noetl.errors import CredentialError, SaveError, SaveFailed

POSTGRES = Dialect(
    bind_style="pyformat",
    quote=lambda name: sql.Identifier(name).as_string(),
    placeholder=lambda column: f"%({column})s",  # column names are checked identifiers: safe as param names
    adapt=adapt,
)


def write(request: SaveRequest, ctx: ActionContext) -> int:
    conninfo = _conninfo(request)
    work = plan(request, POSTGRES)
    try:
        with connection(conninfo) as conn, conn.transaction(), conn.cursor() as cur:
            return sum(_execute(cur, item) for item in work)
    except (PgConnectError, psycopg.Error) as exc:
        raise _failed(exc, request, ctx.step, conninfo) from None


def _conninfo(request: SaveRequest) -> str:
    if request.credential is None:
        raise SaveError(
            "a postgres save needs `auth` naming a postgres credential (for example `auth: pg_local`) "
            "beside `storage: postgres`; add it to the save block"
        )
    try:
        return conninfo_for(request.credential)
    except CredentialError as exc:
        raise SaveError(str(exc)) from None


def _execute(cur: psycopg.Cursor[Any], item: Work) -> int:
    """Runs the statement for every row; the rows affected, as the server counts them."""
    if item.params is None:
        affected = 0
        for _ in range(item.runs):
            cur.execute(item.sql)  # no parameters: psycopg sends the text as written, `%` and all
            affected += max(cur.rowcount, 0)
        return affected
    cur.executemany(item.sql, item.params)  # psycopg pipelines the rows: one round trip, not one per row
    return cur.rowcount if cur.rowcount >= 0 else item.count


def _failed(exc: Exception, request: SaveRequest, step: str, conninfo: str) -> SaveFailed:
    """save_failed's reason: the connection (worth a retry) or the target refusing the rows."""
    if isinstance(exc, PgConnectError):
        message = f"{where(request, step)}: {exc}"
        return SaveFailed(message, reason="connection_error", error_type="ConnectionError")
    text = scrub(sql_error_text(exc), conninfo) if isinstance(exc, psycopg.Error) else str(exc)
    if is_connection_error(exc):
        return SaveFailed(
            f"{where(request, step)}: the connection failed: {text}; nothing was written",
            reason="connection_error",
            error_type=type(exc).__name__,
        )
    return SaveFailed(
        f"{where(request, step)} was refused: {text}; no row of this save was written",
        reason="target_error",
        error_type=type(exc).__name__,
    )
