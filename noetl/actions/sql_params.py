"""Bind parameters of SQL steps: `:name` in a statement sends the step's input `name` to the driver as a
parameter, never as text pasted into the statement.

The SQL is cut the way the database reads it (`sql_split.segments`: '' strings with their '' and E''
escapes, "quoted identifiers", $$ and $tag$ bodies, -- and nested /* */ comments), and a `:name` is a
bind only in code, only when `name` is one of the step's inputs, and only where the colon cannot mean
anything else: not after another colon (`x::int`), a letter, digit or underscore (`a[1:n]`, Snowflake's
`col:field`) or a closing quote (DuckDB's `{'k':v}`). Everything else is left byte for byte as written,
so SQL that names no input means what it meant before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from noetl.actions.sql_split import BindStyle, segments

_NAME = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_NOT_AFTER = frozenset(":'\"")


@dataclass(frozen=True)
class Site:
    """One `:name` in the code of a statement: where it starts and ends in the text, and the name."""

    start: int
    end: int
    name: str


@dataclass(frozen=True)
class Bound:
    """A statement as the driver gets it: its text with placeholders, and the parameters by name.

    `params` is None when nothing is bound: the driver then reads the text as it is (psycopg does not
    treat `%` specially without parameters).
    """

    text: str
    params: dict[str, Any] | None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.params or ())


def sites(sql: str) -> list[Site]:
    """Every `:name` that could be a bind, in text order (not yet filtered by the step's inputs)."""
    found: list[Site] = []
    offset = 0
    for is_code, text in segments(sql):
        if is_code:
            for match in _NAME.finditer(text):
                at = offset + match.start()
                before = sql[at - 1] if at else ""
                if before and (before in _NOT_AFTER or before.isalnum() or before == "_"):
                    continue
                found.append(Site(at, offset + match.end(), match.group(1)))
        offset += len(text)
    return found


def placeholders(sql: str, available: Collection[str], style: BindStyle) -> tuple[str, tuple[str, ...]]:
    """The SQL with each `:name` of an available name replaced by the driver's placeholder, and the
    names bound, in order of first use.

    `pyformat` (psycopg): `%(name)s`, and every other `%` doubled, since psycopg reads `%` everywhere
    in the text once parameters are passed. `dollar` (DuckDB): `$name`. SQL that binds nothing is
    returned as it is.
    """
    used = [site for site in sites(sql) if site.name in available]
    if not used:
        return sql, ()
    pieces: list[str] = []
    position = 0
    for site in used:
        pieces.append(_escaped(sql[position : site.start], style))
        pieces.append(f"%({site.name})s" if style == "pyformat" else f"${site.name}")
        position = site.end
    pieces.append(_escaped(sql[position:], style))
    return "".join(pieces), tuple(dict.fromkeys(site.name for site in used))


def _escaped(text: str, style: BindStyle) -> str:
    return text.replace("%", "%%") if style == "pyformat" else text


def bind(
    statement: str,
    inputs: Mapping[str, Any],
    style: BindStyle,
    adapt: Callable[[Any], Any] = lambda value: value,
) -> Bound:
    """The statement with its `:name` binds, and each bound input's value as `adapt` makes it.

    Raises ValueError when two bound names differ only in case and the style is `dollar`: DuckDB's
    `$name` ignores case, so one value would silently stand for both.
    """
    text, names = placeholders(statement, inputs.keys(), style)
    if style == "dollar":
        _distinct_ignoring_case(names)
    return Bound(text, {name: adapt(inputs[name]) for name in names} if names else None)


def unbound(statement: str, inputs: Mapping[str, Any] | Collection[str]) -> list[str]:
    """The `:name`s of the statement that no input binds (left as written): a hint when it fails."""
    return list(dict.fromkeys(site.name for site in sites(statement) if site.name not in inputs))


def unbound_hint(statement: str, inputs: Mapping[str, Any] | Collection[str]) -> str:
    """For a statement the database could not parse: the `:name`s no input binds, which stayed in the
    SQL as written (text for the error message, or "" when there are none)."""
    names = unbound(statement, inputs)
    if not names:
        return ""
    listed = ", ".join(f":{name}" for name in names)
    return (
        f" ({listed} {'is' if len(names) == 1 else 'are'} not bound: a :name binds the step's input of "
        "that name; add it to the step's `data`)"
    )


def _distinct_ignoring_case(names: tuple[str, ...]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ValueError(
                f"the SQL binds both :{other} and :{name}, and DuckDB's parameter names ignore case; "
                "rename one of the inputs"
            )
