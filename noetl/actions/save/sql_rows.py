"""What the SQL save storages share: checked names, rows grouped by columns, the statements to run.

Statement text is built once per (table, columns, key) or per statement, not per save: a per-item save
asks for the same text for every item (the caches hold SQL text only, never values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from noetl.actions.save.request import SaveRequest
from noetl.actions.sql_split import BindStyle, BoundSQL, bind_named, placeholder_names
from noetl.dsl.sql_names import is_identifier, is_table_name
from noetl.errors import SaveError


@dataclass(frozen=True, eq=False)  # compared and hashed as itself: it keys the statement caches below
class Dialect:
    """How one database spells names, placeholders and JSON values."""

    bind_style: BindStyle
    quote: Callable[[str], str]  # a checked identifier -> quoted identifier
    placeholder: Callable[[str], str]  # a column name -> the named placeholder for its value
    adapt: Callable[[Any], Any]  # a value -> the bind value (dicts and lists become JSON)
    # The placeholder of the n-th value (from 1) bound by position; None: the database has none.
    positional: Callable[[int], str] | None = None


@dataclass(frozen=True)
class Work:
    """One statement and the parameters of each run (None: it binds nothing, and runs as written)."""

    sql: str
    params: list[dict[str, Any]] | None
    runs: int = 1  # how often a statement that binds nothing runs: once per row, like one that binds
    # An insert's or upsert's (table, columns, key): its rows may also go as one multi-row INSERT
    # (insert_many_sql). None for a statement of the user's.
    shape: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None

    @property
    def count(self) -> int:
        return self.runs if self.params is None else len(self.params)


def plan(request: SaveRequest, dialect: Dialect) -> list[Work]:
    """The statements a save runs, all checked before the first one touches the database."""
    return plan_many((request,), dialect)


def plan_many(requests: Sequence[SaveRequest], dialect: Dialect) -> list[Work]:
    """The statements the saves of a batch run, in order, all checked before the first one touches the
    database: consecutive rows for one statement (one table, the same columns) in one Work, whichever
    save they came from, so that a batch of items runs one statement per table instead of one per item.
    In one pass over the rows: a batch's items come one after another with the same columns."""
    if any(r.spec.mode == "statement" for r in requests):
        return merged([w for r in requests for w in _plan_one(r, dialect)])
    adapt = dialect.adapt
    works: list[Work] = []
    last: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None
    params: list[dict[str, Any]] = []
    for request in requests:
        table = table_parts(request)
        key = _key(request)
        for number, row in enumerate(request.rows()):
            columns = tuple(row)
            if last is None or last[1] != columns or last[0] != table or last[2] != key:
                problem = _column_problem(columns, key)
                if problem is not None:
                    raise SaveError(f"{_subject(request)}: row {number} {problem}")
                last = (table, columns, key)
                params = []
                works.append(Work(insert_sql(table, columns, key, dialect), params, shape=last))
            params.append({c: adapt(v) for c, v in row.items()})
    return works


def _plan_one(request: SaveRequest, dialect: Dialect) -> list[Work]:
    if request.spec.mode == "statement":
        return [_statement_work(request, dialect)]
    return plan_many((request,), dialect)


def _key(request: SaveRequest) -> tuple[str, ...]:
    """An upsert's key columns (checked: it needs one); () for an insert."""
    if request.spec.mode != "upsert":
        return ()
    if not request.spec.key:
        raise SaveError(f"{_subject(request)}: mode upsert needs `key` (a column or a list of columns)")
    return request.spec.key


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
    values = ", ".join(dialect.placeholder(c) for c in columns)
    return f"{_insert_into(table, columns, dialect)} VALUES ({values}){_on_conflict(columns, key, dialect)}"


@lru_cache(maxsize=64)
def insert_many_sql(
    table: tuple[str, ...], columns: tuple[str, ...], key: tuple[str, ...], dialect: Dialect, rows: int
) -> str:
    """insert_sql for `rows` rows in one statement, its values bound by position (row after row, each
    in `columns` order). The server coerces each row's values to the table's column types, as it does
    for the one-row statement."""
    number = dialect.positional
    assert number is not None, "a dialect without positional placeholders has no multi-row INSERT"
    width = len(columns)
    values = ", ".join(
        "(" + ", ".join(number(r * width + c) for c in range(1, width + 1)) + ")" for r in range(rows)
    )
    return f"{_insert_into(table, columns, dialect)} VALUES {values}{_on_conflict(columns, key, dialect)}"


def updates_rows(columns: tuple[str, ...], key: tuple[str, ...]) -> bool:
    """An upsert whose conflict updates the row: two rows with one key cannot be in one statement."""
    return bool(key) and any(c not in key for c in columns)


def _insert_into(table: tuple[str, ...], columns: tuple[str, ...], dialect: Dialect) -> str:
    q = dialect.quote
    return f"INSERT INTO {'.'.join(q(p) for p in table)} ({', '.join(q(c) for c in columns)})"


def _on_conflict(columns: tuple[str, ...], key: tuple[str, ...], dialect: Dialect) -> str:
    if not key:
        return ""
    q = dialect.quote
    updates = [f"{q(c)} = EXCLUDED.{q(c)}" for c in columns if c not in key]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return f" ON CONFLICT ({', '.join(q(k) for k in key)}) {action}"


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
    groups: list[Work] = []
    for work in works:
        last = groups[-1] if groups else None
        if last is not None and last.sql == work.sql and (last.params is None) == (work.params is None):
            if last.params is not None and work.params is not None:
                last.params.extend(work.params)  # the list is this function's own (copied below)
            runs = (
                1 if last.params is not None else last.runs + work.runs
            )  # (runs: of a statement binding nothing)
            groups[-1] = Work(last.sql, last.params, runs, last.shape)
        else:
            params = None if work.params is None else list(work.params)
            groups.append(Work(work.sql, params, work.runs, work.shape))
    return groups
