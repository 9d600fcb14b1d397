"""What the SQL save storages share: checked names, rows grouped by columns, the statements to run.

Statement text is built once per (table, columns, key) or per statement, not per save: a per-item save
asks for the same text for every item (the caches hold SQL text only, never values).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from noetl.actions.save.request import SaveRequest
from noetl.actions.sql_split import BindStyle, BoundSQL, bind_named, placeholder_names
from noetl.dsl.sql_names import is_identifier, is_table_name
from noetl.errors import SaveError


@dataclass(frozen=True)
class Dialect:
    """How one database spells names, placeholders and JSON values."""

    bind_style: BindStyle
    quote: Callable[[str], str]  # a checked identifier -> quoted identifier
    placeholder: Callable[[str], str]  # a column name -> the named placeholder for its value
    adapt: Callable[[Any], Any]  # a value -> the bind value (dicts and lists become JSON)


@dataclass(frozen=True)
class Work:
    """One statement and the parameters of each run (None: it binds nothing, and runs as written)."""

    sql: str
    params: list[dict[str, Any]] | None
    runs: int = 1  # how often a statement that binds nothing runs: once per row, like one that binds

    @property
    def count(self) -> int:
        return self.runs if self.params is None else len(self.params)


@dataclass(frozen=True)
class Batch:
    """Consecutive rows with the same columns: one statement, run once per row."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


def plan(request: SaveRequest, dialect: Dialect) -> list[Work]:
    """The statements a save runs, all checked before the first one touches the database."""
    if request.spec.mode == "statement":
        return [_statement_work(request, dialect)]
    table = table_parts(request)
    key = request.spec.key if request.spec.mode == "upsert" else ()
    return [
        Work(
            insert_sql(table, b.columns, key, dialect),
            [{c: dialect.adapt(v) for c, v in row.items()} for row in b.rows],
        )
        for b in batches(request)
    ]


def where(request: SaveRequest, step: str) -> str:
    """The save, named for save_failed messages: its storage, step and table."""
    target = f" into table {request.table!r}" if request.table else ""
    return f"{request.spec.storage} save of step '{step}'{target}"


def _subject(request: SaveRequest) -> str:
    """What a SaveError is about; the executor's message already names the step."""
    return f"table {request.table!r}"


def table_parts(request: SaveRequest) -> tuple[str, ...]:
    """`table` or `schema.table`, each part a checked identifier (names cannot be bind parameters)."""
    table = request.table
    parts = _table_parts(table) if isinstance(table, str) else None
    if parts is None:
        raise SaveError(
            f"table {table!r} is not a valid table name; use `name` or `schema.name` "
            "made of letters, digits and underscores"
        )
    return parts


@lru_cache(maxsize=256)
def _table_parts(table: str) -> tuple[str, ...] | None:
    return tuple(table.split(".")) if is_table_name(table) else None


def batches(request: SaveRequest) -> list[Batch]:
    """The rows to write, checked (column names, upsert keys) and grouped by their columns."""
    upsert = request.spec.mode == "upsert"
    if upsert and not request.spec.key:
        raise SaveError(f"{_subject(request)}: mode upsert needs `key` (a column or a list of columns)")
    grouped: list[Batch] = []
    for number, row in enumerate(request.rows()):
        columns = tuple(row)
        problem = _column_problem(columns, request.spec.key if upsert else ())
        if problem is not None:
            raise SaveError(f"{_subject(request)}: row {number} {problem}")
        if grouped and grouped[-1].columns == columns:
            grouped[-1].rows.append(row)
        else:
            grouped.append(Batch(columns, [row]))
    return grouped


@lru_cache(maxsize=1024)
def _column_problem(columns: tuple[Any, ...], key: tuple[str, ...]) -> str | None:
    """What is wrong with a row's columns (`key`: the upsert's key columns), or None; the same columns
    come in every row of a save and every item of an iterator, so the answer is worked out once."""
    if not columns:
        return "has no columns; give the row under `args`"
    bad = [c for c in columns if not is_identifier(str(c))]
    if bad:
        return f"has invalid column name(s) {', '.join(map(repr, bad))}; use letters, digits and underscores"
    missing = [k for k in key if k not in columns]
    if missing:
        return f"lacks key column(s) {', '.join(missing)}"
    return None


@lru_cache(maxsize=256)
def insert_sql(
    table: tuple[str, ...], columns: tuple[str, ...], key: tuple[str, ...], dialect: Dialect
) -> str:
    """INSERT, or with a key INSERT ... ON CONFLICT (key) DO UPDATE (DO NOTHING when every column is key)."""
    q = dialect.quote
    names = ", ".join(q(c) for c in columns)
    values = ", ".join(dialect.placeholder(c) for c in columns)
    text = f"INSERT INTO {'.'.join(q(p) for p in table)} ({names}) VALUES ({values})"
    if not key:
        return text
    updates = [f"{q(c)} = EXCLUDED.{q(c)}" for c in columns if c not in key]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return f"{text} ON CONFLICT ({', '.join(q(k) for k in key)}) {action}"


def _statement_work(request: SaveRequest, dialect: Dialect) -> Work:
    """Mode statement: every `:name` the statement uses must be in every row of `args`."""
    statement = request.statement
    if not statement:
        raise SaveError("mode statement needs `statement` (SQL binding :name from args)")
    rows = request.rows()
    names, bound = _bound(statement, dialect.bind_style)
    for number, row in enumerate(rows):
        missing = [n for n in names if n not in row]
        if missing:
            raise SaveError(
                f"the statement binds {', '.join(':' + n for n in missing)} but row "
                f"{number} of `args` has no {', '.join(missing)}; add them under `args`"
            )
    if not bound.names:
        return Work(statement, None, runs=len(rows))
    return Work(bound.text, [{n: dialect.adapt(row[n]) for n in bound.names} for row in rows])


@lru_cache(maxsize=256)
def _bound(statement: str, style: BindStyle) -> tuple[tuple[str, ...], BoundSQL]:
    """The `:name`s a statement uses and its text with the driver's placeholders, worked out once."""
    names = tuple(placeholder_names(statement))
    return names, bind_named(statement, names, style)


def merged(works: list[Work]) -> list[Work]:
    """The works of several saves, in order, with consecutive runs of one statement joined, so that a
    batch of items runs one pipelined executemany per statement instead of one per item."""
    groups: list[tuple[str, list[dict[str, Any]] | None, int]] = []
    for work in works:
        if groups and groups[-1][0] == work.sql and (groups[-1][1] is None) == (work.params is None):
            sql, params, runs = groups[-1]
            if params is not None and work.params is not None:
                params.extend(work.params)  # the list is this function's own (copied below)
            groups[-1] = (sql, params, runs + work.runs)
        else:
            groups.append((work.sql, None if work.params is None else list(work.params), work.runs))
    return [Work(sql, params, runs=runs) for sql, params, runs in groups]
