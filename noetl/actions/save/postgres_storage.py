"""`storage: postgres`: insert, upsert or run a statement with the rows, all in one transaction.

A batch (several items' saves, SaveRequest.batch) is one transaction too: the items' statements, in
order, with consecutive runs of one statement joined into one pipelined executemany. A save of one
row is one statement sent in autocommit mode: the server runs it as a transaction of its own, in one
round trip instead of three (BEGIN, the statement, COMMIT).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from noetl.actions.base import ActionContext
from noetl.actions.pg_connections import (
    LOST_PREPARED,
    PgConnectError,
    connection,
    conninfo_for,
    is_connection_error,
    never_prepare,
    scrub,
    sql_error_text,
)
from noetl.actions.postgres_action import adapt
from noetl.actions.save.request import SaveRequest
from noetl.actions.save.sql_rows import Dialect, Work, merged, plan, where
from noetl.errors import CredentialError, SaveError, SaveFailed

POSTGRES = Dialect(
    bind_style="pyformat",
    quote=lambda name: sql.Identifier(name).as_string(),
    placeholder=lambda column: f"%({column})s",  # column names are checked identifiers: safe as param names
    adapt=adapt,
)


def write(request: SaveRequest, ctx: ActionContext) -> int:
    conninfo = _conninfo(request)
    if request.batch:
        work = merged([w for item in request.batch for w in plan(item, POSTGRES)])
    else:
        work = plan(request, POSTGRES)
    # The INSERTs of insert and upsert are ours and return no rows: prepared once per connection, they
    # skip the server's parse and plan for every later row. A statement of the user's is not prepared.
    prepare = request.spec.mode != "statement"
    try:
        try:
            return _write(conninfo, work, prepare)
        except LOST_PREPARED:  # nothing was written: once more, and never prepared for this target
            never_prepare(conninfo)
            return _write(conninfo, work, prepare=False)
    except (PgConnectError, psycopg.Error) as exc:
        raise _failed(exc, request, ctx.step, conninfo) from None


def _write(conninfo: str, work: list[Work], prepare: bool) -> int:
    with connection(conninfo, autocommit=_one_statement(work), prepare=prepare) as conn:
        try:
            return _run(conn, work)
        except psycopg.Error:
            if prepare:  # a prepared statement may be what went stale: the next save starts afresh
                conn.close()
            raise


def _one_statement(work: list[Work]) -> bool:
    """One row for one statement: sent alone in autocommit mode, it is a transaction of its own."""
    return len(work) == 1 and work[0].params is not None and len(work[0].params) == 1


def _run(conn: psycopg.Connection[Any], work: list[Work]) -> int:
    if _one_statement(work):
        params = work[0].params or [{}]
        cur = conn.execute(work[0].sql, params[0])
        return cur.rowcount if cur.rowcount >= 0 else 1
    with conn.transaction(), conn.cursor() as cur:
        return sum(_execute(cur, item) for item in work)


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
