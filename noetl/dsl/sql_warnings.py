"""A template inside a SQL string literal of a postgres, duckdb or snowflake step pastes its value into the
statement: `validate` warns, and says which `:name` bind to write instead (noetl.actions.sql_params binds
them at run time). Its own small SQL reader: the DSL does not import the actions' splitter."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from noetl.dsl import keys
from noetl.dsl.yaml_lines import line_of
from noetl.errors import Problem

if TYPE_CHECKING:
    from noetl.dsl.normalize import Normalizer

# ---- SQL steps: a template inside a string literal pastes its value into the statement -----------------
#
# The SQL is cut as the database reads it, as noetl/actions/sql_split.py does (which the dsl may not
# import): '' strings (E'' with backslash escapes), "names", $$ and $tag$ bodies, -- and nested /* */
# comments. Templates are masked first, so that quotes inside `{{ ... }}` do not count as SQL.

_SQL_KEYS = ("command", "commands")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_SQL_OPENER = re.compile(r"['\"$]|--|/\*")
_SQL_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
# Statements whose values may be bind parameters (PostgreSQL and DuckDB both take them there); COPY,
# ATTACH, SET, DDL and DO bodies do not, so a template there is left alone.
_BINDABLE = re.compile(
    r"(?:SELECT|INSERT|UPDATE|DELETE|WITH|VALUES|MERGE|TABLE)\b"
    r"|CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:LOCAL|GLOBAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+AS\b",
    re.IGNORECASE,
)
# Values the engine makes, with no quote in them: pasting them cannot change a statement.
_ENGINE_MADE = frozenset({"execution_id", "job.uuid", "job.id", "uuid()", "now()"})
_NUMERIC_FILTER = re.compile(r"\|\s*(?:int|float|round|length|count)\b[^|]*$")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_SHOWN = 60  # longest literal quoted whole in a warning


def warn_sql_templates(n: Normalizer, raw: dict[str, Any], step: str) -> None:
    """A `{{ }}` inside a '...' literal of a SQL step's statement pastes the value as SQL text: a quote in
    it ends the string and the rest runs as SQL. It still works as before; `validate` warns and says
    which `:name` bind to write instead."""
    if raw.get("type") not in keys.SQL_TYPES:
        return
    inputs = _sql_inputs(raw)
    for key, text, line in _sql_texts(raw):
        for pasted in pasted_templates(text):
            n.warnings.append(
                Problem(
                    f"a template inside a SQL string literal: `{_shown(pasted.literal)}` in `{key}` pastes "
                    "the value into the statement (a quote in it ends the string, and the rest runs as "
                    f"SQL); bind it instead: {_bind_advice(pasted, inputs)}",
                    n.source,
                    line(pasted.offset),
                    step,
                )
            )


@dataclass(frozen=True)
class Pasted:
    """A `{{ ... }}` inside a SQL string literal: its text, the literal's, where it starts in the SQL,
    and whether the advice can spell out the SQL to write instead."""

    template: str
    literal: str
    offset: int
    simple: bool  # the only template of a plain '' literal: the advice can show the `||` to write


def pasted_templates(sql: str) -> list[Pasted]:
    """Every `{{ ... }}` inside a '...' literal of a statement that takes bind parameters, except the
    engine's own ids (`execution_id`, ...) and numbers (`| int`), which hold no quote."""
    templates = [m for m in _JINJA.finditer(sql) if m.group(0).startswith("{{")]
    if not templates:
        return []
    masked = _JINJA.sub(lambda m: "\0" * len(m.group(0)), sql)
    found: list[Pasted] = []
    for statement in _sql_statements(masked):
        if not _bindable(masked, statement):
            continue
        for kind, start, end in statement:
            inside = [m for m in templates if kind == "string" and start < m.start() < end]
            plain = not (start > 0 and masked[start - 1] in "eE")  # E'..' has backslash escapes
            found += [
                Pasted(m.group(0), sql[start:end], m.start(), plain and len(inside) == 1)
                for m in inside
                if not _holds_no_quote(_expression(m.group(0)))
            ]
    return found


def _expression(template: str) -> str:
    return template[2:-2].strip("-+ \t\r\n")


def _holds_no_quote(expression: str) -> bool:
    return expression in _ENGINE_MADE or _NUMERIC_FILTER.search(expression) is not None


def _bind_advice(pasted: Pasted, inputs: dict[str, Any]) -> str:
    """`add name: "{{ workload.name }}" to the step's data and write :name in place of '{{ ... }}'`."""
    expression = _expression(pasted.template)
    given = next((k for k, v in inputs.items() if isinstance(v, str) and v.strip() == pasted.template), None)
    if given is None and expression in inputs:  # `'{{ owner }}'` where `owner` is an input already
        given = expression
    name = given or _name_for(expression, inputs)
    bind = f":{name}"
    literal = pasted.literal
    if literal == f"'{pasted.template}'":
        write = f"write `{bind}` in place of `{literal}`"
    elif pasted.simple and len(literal) <= _SHOWN and literal.endswith("'") and len(literal) > 1:
        at = literal.index(pasted.template)
        before, after = literal[1:at], literal[at + len(pasted.template) : -1]
        joined = " || ".join([*([f"'{before}'"] if before else []), bind, *([f"'{after}'"] if after else [])])
        write = f"write `{joined}` in place of `{literal}`"
    else:
        write = f"write `{bind}` where the value goes and join the fixed text to it with `||`"
    add = (
        ""
        if given
        else f"add `{name}: {json.dumps(pasted.template, ensure_ascii=False)}` to the step's `data` and "
    )
    return add + write


def _name_for(expression: str, inputs: dict[str, Any]) -> str:
    """A bind name from the template: its path's last part (`workload.name` -> `name`), else `value`."""
    path = _PATH.match(expression)
    name = path.group(0).rsplit(".", 1)[-1] if path else "value"
    return name if name not in inputs else f"{name}_value"


def _shown(literal: str) -> str:
    return (
        literal
        if len(literal) <= _SHOWN
        else literal[: _SHOWN // 2 - 2] + " ... " + literal[-_SHOWN // 2 + 2 :]
    )


def _sql_inputs(raw: dict[str, Any]) -> dict[str, Any]:
    """The inputs written on the step (every alias of `data`, merged as the normalizer merges them)."""
    merged: dict[str, Any] = {}
    for alias in keys.DATA_ALIASES:
        if isinstance(raw.get(alias), dict):
            merged.update(raw[alias])
    return merged


def _sql_texts(raw: dict[str, Any]) -> Iterator[tuple[str, str, Callable[[int], int | None]]]:
    """(key, SQL text, offset -> line) for each SQL text of the step, `command_b64` decoded."""
    for key in (*_SQL_KEYS, *keys.B64_KEYS):
        value = raw.get(key)
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            if key in keys.B64_KEYS:
                text = _decoded(text)
            if isinstance(text, str) and "{{" in text:
                yield key, text, _line_finder(raw, key, text, isinstance(value, list))


def _decoded(text: Any) -> str | None:
    try:
        return base64.b64decode(str(text), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None  # reported by the normalizer


def _line_finder(raw: dict[str, Any], key: str, text: str, in_list: bool) -> Callable[[int], int | None]:
    """The file line of an offset in the text: exact inside a `key: |` block, else the key's line."""
    key_line = line_of(raw, key)
    first = getattr(raw, "value_lines", {}).get(key)
    if in_list or key in keys.B64_KEYS or first is None or key_line is None or first <= key_line:
        return lambda offset: key_line
    return lambda offset: first + text.count("\n", 0, offset)


def _sql_statements(sql: str) -> list[list[tuple[str, int, int]]]:
    """The SQL as statements, each a list of (kind, start, end) pieces; kinds: code, string, name,
    body, comment. A `;` in code ends a statement."""
    statements: list[list[tuple[str, int, int]]] = []
    current: list[tuple[str, int, int]] = []
    for kind, start, end in _sql_pieces(sql):
        if kind != "code":
            current.append((kind, start, end))
            continue
        begin = start
        while (semicolon := sql.find(";", begin, end)) >= 0:
            current.append(("code", begin, semicolon))
            statements.append(current)
            current, begin = [], semicolon + 1
        current.append(("code", begin, end))
    statements.append(current)
    return statements


def _bindable(sql: str, statement: list[tuple[str, int, int]]) -> bool:
    code = "".join(sql[start:end] if kind == "code" else " " for kind, start, end in statement)
    return _BINDABLE.match(code.lstrip(" \t\r\n(")) is not None


def _sql_pieces(sql: str) -> list[tuple[str, int, int]]:
    pieces: list[tuple[str, int, int]] = []
    start = position = 0
    while (match := _SQL_OPENER.search(sql, position)) is not None:
        begin = match.start()
        kind, end = _sql_piece_end(sql, begin)
        if end is None:
            position = begin + 1
            continue
        if start < begin:
            pieces.append(("code", start, begin))
        pieces.append((kind, begin, end))
        start = position = end
    if start < len(sql):
        pieces.append(("code", start, len(sql)))
    return pieces


def _sql_piece_end(sql: str, i: int) -> tuple[str, int | None]:
    """The kind of the quoted text or comment starting at `i`, and where it ends (None: none starts)."""
    char = sql[i]
    if char in "'\"":
        escapes = char == "'" and i > 0 and sql[i - 1] in "eE" and (i < 2 or not _word(sql[i - 2]))
        return ("string" if char == "'" else "name"), _quoted_end(sql, i, char, escapes)
    if char == "$":
        tag = None if i > 0 and (_word(sql[i - 1]) or sql[i - 1] == "$") else _SQL_TAG.match(sql, i)
        if tag is None:  # `a$b` and `$1` open no body
            return "body", None
        close = sql.find(tag.group(0), tag.end())
        return "body", len(sql) if close < 0 else close + len(tag.group(0))
    if sql.startswith("--", i):
        newline = sql.find("\n", i)
        return "comment", len(sql) if newline < 0 else newline
    depth, j = 0, i  # /* ... */ nests in PostgreSQL
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return "comment", j
        else:
            j += 1
    return "comment", len(sql)


def _quoted_end(sql: str, i: int, quote: str, escapes: bool) -> int:
    j = i + 1
    while j < len(sql):
        # a backslash (in E'..') escapes the next character; a doubled quote is one quote character
        if (escapes and sql[j] == "\\") or (sql[j] == quote and sql.startswith(quote, j + 1)):
            j += 2
        elif sql[j] == quote:
            return j + 1
        else:
            j += 1
    return len(sql)  # unterminated: the database reports it


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"
