"""What the SQL save storages share: checked names, rows grouped by columns, the statements to run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from noetl.actions.save.request import SaveRequest
from noetl.actions.sql_split import BindStyle, bind_named, placeholder_names
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
    if not isinstance(table, str) or not is_table_name(table):
        raise SaveError(
            f"table {table!r} is not a valid table name; use `name` or `schema.name` "
            "made of letters, digits and underscores"
        )
    return tuple(table.split("."))


def batches(request: SaveRequest) -> list[Batch]:
    """The rows to write, checked (column names, upsert keys) and grouped by their columns."""
    if request.spec.mode == "upsert" and not request.spec.key:
        raise SaveError(f"{_subject(request)}: mode upsert needs `key` (a column or a list of columns)")
    grouped: list[Batch] = []
    for number, row in enumerate(request.rows()):
        columns = tuple(row)
        _check_columns(request, number, columns)
        if grouped and grouped[-1].columns == columns:
            grouped[-1].rows.append(row)
        else:
            grouped.append(Batch(columns, [row]))
    return grouped


def _check_columns(request: SaveRequest, number: int, columns: tuple[str, ...]) -> None:
    if not columns:
        raise SaveError(f"{_subject(request)}: row {number} has no columns; give the row under `args`")
    bad = [c for c in columns if not is_identifier(str(c))]
    if bad:
        raise SaveError(
            f"{_subject(request)}: row {number} has invalid column name(s) {', '.join(map(repr, bad))}; "
            "use letters, digits and underscores"
        )
    missing = [k for k in request.spec.key if k not in columns]
    if request.spec.mode == "upsert" and missing:
        raise SaveError(f"{_subject(request)}: row {number} lacks key column(s) {', '.join(missing)}")


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
    names = placeholder_names(statement)
    for number, row in enumerate(rows):
        missing = [n for n in names if n not in row]
        if missing:
            raise SaveError(
                f"the statement binds {', '.join(':' + n for n in missing)} but row "
                f"{number} of `args` has no {', '.join(missing)}; add them under `args`"
            )
    bound = bind_named(statement, names, dialect.bind_style)
    if not bound.names:
        return Work(statement, None, runs=len(rows))
    return Work(bound.text, [{n: dialect.adapt(row[n]) for n in bound.names} for row in rows])
