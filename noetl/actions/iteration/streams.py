"""The readers of streaming collections: rows of a SQL query or a file, one at a time, in bounded memory.

- postgres: a server-side (named) cursor in a transaction of its own, `fetch_size` rows per round trip;
  the transaction is rolled back at the end (a collection reads, it does not write) and the connection
  goes back to the pool.
- duckdb: the query's streaming result, `fetchmany(fetch_size)`; in the `database` file (default: the
  execution's, shared with its duckdb steps).
- files: `.jsonl` line by line (each line one item, any JSON value); `.csv` and `.parquet` through
  DuckDB's `read_csv` / `read_parquet` (typed columns), like a duckdb query.

A reader is opened before the first item (the query runs, the file opens), so that a bad query, a missing
file or a wrong credential fails the step before `iterator_started`; a failure after that, while rows are
being read, is a `CollectionReadError`. Rows are dicts (column -> value) recorded as JSON values by the
engine's rules (`noetl.engine.values`). `:name` in a query binds the iterator step's input `name`, as in
SQL steps. Drivers are imported only by the reader that needs them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import IO, Any

from noetl.actions.base import ActionContext
from noetl.actions.sql_params import bind, unbound_hint
from noetl.actions.sql_step import preview
from noetl.dsl.auth import AuthProblem, canonical_auth
from noetl.dsl.models import StreamSource
from noetl.dsl.parts import file_format
from noetl.engine.values import UnstorableResult, recorded
from noetl.errors import ActionError, CredentialError

Rows = Generator[Any, None, None]


class CollectionReadError(ActionError):
    """Reading the collection failed after its first rows: the iterator fails, naming the row."""


def open_rows(ctx: ActionContext, source: StreamSource) -> Rows:
    """The collection's items, read lazily; the reader is open (its query has run) when this returns.

    The values come from the step's rendered `collection` (its templates rendered once, when the step
    started); the parsed `source` says which reader reads them.
    """
    rendered = ctx.config.get("collection")
    values: Mapping[str, Any] = rendered if isinstance(rendered, dict) else {}
    where = f"step '{ctx.step}'"
    rows: Rows
    if source.type == "postgres":
        rows = _postgres(ctx, str(values.get("query", source.query)), values.get("auth"), source.fetch_size)
    elif source.type == "duckdb":
        rows = _duckdb_query(ctx, str(values.get("query", source.query)), values, source.fetch_size)
    else:
        path = str(values.get("file", source.file))
        fmt = source.format or file_format(path)
        if fmt == "jsonl":
            rows = _jsonl(path, where)
        elif fmt in ("csv", "parquet"):
            rows = _duckdb_file(ctx, path, fmt, source.fetch_size)
        else:
            raise ActionError(
                f"{where}: cannot tell the format of collection file {path!r} from its name; name it "
                ".jsonl, .csv or .parquet, or add `format: jsonl` (csv, parquet) to the collection",
                non_retryable=True,
            )
    next(rows)  # opens the reader: the first `yield` comes once the query runs or the file is open
    return rows


def _inputs(ctx: ActionContext) -> dict[str, Any]:
    return ctx.inputs if isinstance(ctx.inputs, dict) else {}


def _row(names: Sequence[str], values: Sequence[Any], number: int, where: str) -> Any:
    try:
        return recorded(dict(zip(names, values, strict=True)), f"{where}: collection row {number}")
    except UnstorableResult as exc:
        raise CollectionReadError(
            f"{exc}; cast the column to text in the query (for example `col::text`)",
            non_retryable=True,
            error_type="UnstorableResult",
        ) from None


# ---- postgres ------------------------------------------------------------------------------------------


def _pg_conninfo(ctx: ActionContext, auth: Any) -> str:
    from noetl.actions.pg_connections import conninfo_for

    where = f"step '{ctx.step}' collection"
    try:
        record = ctx.services.credentials.resolve(canonical_auth(auth, single=True), where)
        return conninfo_for(record)
    except AuthProblem as exc:
        raise ActionError(f"{where}: {exc}", non_retryable=True, error_type="CredentialError") from None
    except CredentialError as exc:
        message = str(exc) if str(exc).startswith("step ") else f"{where}: {exc}"
        raise ActionError(message, non_retryable=True, error_type="CredentialError") from None


def _postgres(ctx: ActionContext, query: str, auth: Any, fetch_size: int) -> Rows:
    import psycopg

    from noetl.actions import pg_connections as pg
    from noetl.actions.postgres_action import adapt

    where = f"step '{ctx.step}'"
    conninfo = _pg_conninfo(ctx, auth)
    bound = bind(query, _inputs(ctx), "pyformat", adapt)
    try:
        with pg.connection(conninfo) as conn:
            try:
                with conn.cursor(name="noetl_collection") as cur:
                    try:
                        cur.execute(bound.text, bound.params)
                    except psycopg.Error as exc:
                        if pg.is_connection_error(exc):
                            raise
                        raise _pg_query_error(exc, query, ctx, where) from None
                    yield None
                    names = [c.name for c in cur.description or ()]
                    number = 0
                    while True:
                        try:
                            batch = cur.fetchmany(fetch_size)
                        except psycopg.Error as exc:
                            text = pg.scrub(pg.sql_error_text(exc), conninfo)
                            raise CollectionReadError(
                                f"{where}: reading the collection query failed after {number} rows: {text}",
                                non_retryable=not pg.is_connection_error(exc),
                                error_type=type(exc).__name__,
                            ) from None
                        if not batch:
                            return
                        for values in batch:
                            yield _row(names, values, number, where)
                            number += 1
            finally:
                if not conn.closed and not conn.broken:
                    conn.rollback()  # the collection's own transaction: it read, it wrote nothing
    except pg.PgConnectError as exc:
        raise ActionError(
            f"{where}: collection query: {exc}; check the credential's host, port and user, and that "
            "the server is running",
            error_type="ConnectionError",
        ) from None
    except psycopg.Error as exc:  # the connection broke
        raise ActionError(
            f"{where}: collection query: the connection to PostgreSQL {pg.describe_target(conninfo)} "
            f"failed: {pg.scrub(pg.sql_error_text(exc), conninfo)}",
            error_type="ConnectionError",
        ) from None


def _pg_query_error(exc: Any, query: str, ctx: ActionContext, where: str) -> ActionError:
    from noetl.actions.pg_connections import sql_error_text

    state = exc.sqlstate or ""
    hint = unbound_hint(query, _inputs(ctx)) if state == "42601" else ""
    return ActionError(
        f"{where}: the collection query failed: {sql_error_text(exc)}{hint}; in `{preview(query)}` "
        "(a query collection is one SELECT, read through a cursor)",
        non_retryable=not state.startswith(("40", "53", "55P03")),
        error_type=type(exc).__name__,
        result={"sqlstate": exc.sqlstate},
    )


# ---- duckdb --------------------------------------------------------------------------------------------


def _json_text(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _duckdb_query(ctx: ActionContext, query: str, values: Mapping[str, Any], fetch_size: int) -> Rows:
    from noetl.actions.duckdb_action import database_path

    where = f"step '{ctx.step}'"
    try:
        bound = bind(query, _inputs(ctx), "dollar", _json_text)
    except ValueError as exc:
        raise ActionError(f"{where}: collection query: {exc}", non_retryable=True) from None
    path = database_path(values.get("database"), ctx.execution_id)
    return _duckdb_rows(ctx, path, bound.text, bound.params, query, fetch_size)


def _duckdb_file(ctx: ActionContext, path: str, fmt: str, fetch_size: int) -> Rows:
    literal = "'" + path.replace("'", "''") + "'"
    sql = f"SELECT * FROM read_{fmt}({literal})"
    return _duckdb_rows(ctx, ":memory:", sql, None, f"the {fmt} file {path}", fetch_size)


def _duckdb_rows(
    ctx: ActionContext, database: str, sql: str, params: dict[str, Any] | None, shown: str, fetch_size: int
) -> Rows:
    import duckdb

    from noetl.actions.duckdb_action import connect
    from noetl.actions.duckdb_extensions import missing_extension_hint

    where = f"step '{ctx.step}'"
    con = connect(database, f"{where} collection")
    try:
        con.execute("SET enable_progress_bar = false")  # DuckDB would draw it on the terminal
        try:
            result = con.execute(sql, params) if params else con.execute(sql)
        except duckdb.Error as exc:
            message = " ".join(str(exc).split())
            raise ActionError(
                f"{where}: reading the collection failed: {message}{missing_extension_hint(message)}; "
                f"in `{preview(shown)}`",
                non_retryable=True,
                error_type=type(exc).__name__,
            ) from None
        if result.description is None:
            raise ActionError(
                f"{where}: the collection query returns no rows; a query collection is one SELECT",
                non_retryable=True,
            )
        yield None
        names = [d[0] for d in result.description]
        number = 0
        while True:
            try:
                batch = result.fetchmany(fetch_size)
            except duckdb.Error as exc:
                raise CollectionReadError(
                    f"{where}: reading the collection failed after {number} rows: {' '.join(str(exc).split())}",
                    non_retryable=True,
                    error_type=type(exc).__name__,
                ) from None
            if not batch:
                return
            for row in batch:
                yield _row(names, row, number, where)
                number += 1
    finally:
        con.close()


# ---- jsonl ---------------------------------------------------------------------------------------------


def _open_text(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _jsonl(path: str, where: str) -> Rows:
    try:
        handle = _open_text(path)
    except OSError as exc:
        raise ActionError(
            f"{where}: cannot read collection file {path}: {exc.strerror or exc}",
            error_type=type(exc).__name__,
        ) from None
    with handle:
        yield None
        lines: Iterator[str] = iter(handle)
        number = 0
        while True:
            try:
                line = next(lines, None)
            except (OSError, ValueError) as exc:  # a broken gzip stream, bytes that are not UTF-8
                raise CollectionReadError(
                    f"{where}: reading collection file {path} failed after line {number}: {exc}",
                    non_retryable=True,
                ) from None
            if line is None:
                return
            number += 1
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise CollectionReadError(
                    f"{where}: collection file {path} line {number} is not JSON ({exc}); "
                    "a .jsonl file holds one JSON value per line",
                    non_retryable=True,
                ) from None
            yield value
