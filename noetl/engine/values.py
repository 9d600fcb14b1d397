"""What a step's result becomes when it is recorded: JSON values, converted once, by rules.

A result is written into the log and read back by later steps, by a resumed run and by workers. So
that all of them see the same value, it is converted *before* it is recorded, by the same rules in
both modes (before this, a local run handed the next step a Python `set` while a worker handed it the
set's `str()`):

| returned | recorded |
| --- | --- |
| dict with text keys, list, text, bool, None, int, finite float | as is |
| dict keys that are numbers, bools or None | their JSON text (`1` -> `"1"`), as JSON itself does |
| tuple | list |
| set, frozenset | sorted list (in the order of their text when the members cannot be compared) |
| datetime, date, time | ISO 8601 text |
| timedelta | seconds (float) |
| Decimal | int or float when that is exact, else its text |
| float NaN or infinity | its text (`"nan"`, `"inf"`): JSON has no such numbers |
| bytes | hex text |
| UUID, a file path | text |

Anything else (an object, a dict with tuple keys, a value that contains itself, an integer of more
than 4,000 digits, nesting deeper than 200 levels) fails the step or item with a message that names
where the value is and what to return instead. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import PurePath
from typing import Any
from uuid import UUID

from noetl.errors import ActionError

MAX_DEPTH = 200
MAX_INT_BITS = 13_000  # about 3,900 digits: below Python's 4,300-digit limit for int -> str
_PLAIN = (str, bool, type(None))
# JSON's scalars but text, tested by exact type (`type(v) in NUMBERS_AND_NONE`): the commonest items
# and results, which hot paths pass through first.
NUMBERS_AND_NONE = frozenset({int, float, bool, type(None)})


class UnstorableResult(ActionError):
    """A result that cannot be recorded as JSON."""

    def __init__(self, message: str) -> None:
        super().__init__(message, non_retryable=True, error_type="UnstorableResult")


class RecordedList(list[Any]):
    """A list whose every element is recorded already: an iterator's results (each item's result was
    recorded as the item ended; the rest are failure markers and results read back from the log).
    recorded() takes it as a plain list without walking it again, where the walk cost about 1.1 us per
    item whose result is a small dict (issue 10)."""


def recorded(value: Any, where: str = "the result", *where_args: Any) -> Any:
    """`value` as it is recorded and seen by every later reader; raises UnstorableResult. `where` names
    the value in messages; with `where_args` it is a format (`"item {} result", 7`), filled only when a
    message needs it (per item, the text would be built for nothing)."""
    kind = type(value)
    if kind in _PLAIN or (kind is int and value.bit_length() <= MAX_INT_BITS):
        return value  # the common case, per item: no walk
    if kind is RecordedList:
        return list(value)
    if kind is dict:
        # A flat dict of text keys and plain values (the commonest item result) in one pass, copied
        # as _container copies it (a dict the code changes later must not change what was recorded);
        # anything else is walked below.
        for key, item in value.items():
            if type(key) is not str:
                break
            item_kind = type(item)
            if item_kind is int:
                if item.bit_length() > MAX_INT_BITS:
                    break
            elif item_kind not in _PLAIN:
                break
        else:
            return dict(value)
    return _convert(value, where.format(*where_args) if where_args else where, 0, set())


def _convert(value: Any, where: str, depth: int, path: set[int]) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise UnstorableResult(
                f"{where} is an integer of about {int(value.bit_length() * 0.30103)} digits; "
                "return it as text (str(n)) if you need it"
            )
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > MAX_DEPTH:
        raise UnstorableResult(f"{where} is nested more than {MAX_DEPTH} levels deep; return a flatter value")
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in path:
            raise UnstorableResult(f"{where} contains itself; return a value without cycles")
        path.add(id(value))
        try:
            return _container(value, where, depth, path)
        finally:
            path.discard(id(value))
    return _scalar(value, where)


def _container(value: Any, where: str, depth: int, path: set[int]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                name = key
            elif isinstance(key, (bool, int, float)) or key is None:
                name = (
                    "null"
                    if key is None
                    else ("true" if key is True else "false" if key is False else str(key))
                )
            else:
                raise UnstorableResult(
                    f"{where} has a key {key!r} of type {type(key).__name__}; JSON keys are text: "
                    "use text keys (for a pair, join it into one text)"
                )
            # (no path text built for a value that needs no conversion)
            out[name] = item if _as_is(item) else _convert(item, f"{where}[{key!r}]", depth + 1, path)
        return out
    items = list(value)
    if isinstance(value, (set, frozenset)):
        try:
            items = sorted(items)
        except TypeError:
            items = sorted(items, key=repr)
    # An iterator's result is a list of one value per item: those that need no conversion (already
    # recorded one by one) are kept without a call and the text of their path.
    return [
        item
        if type(item) in _PLAIN or (type(item) is int and item.bit_length() <= MAX_INT_BITS)  # _as_is
        else _convert(item, f"{where}[{i}]", depth + 1, path)
        for i, item in enumerate(items)
    ]


def _as_is(value: Any) -> bool:
    """A value recorded as it is, by exact type (recorded() spells the same test out: once per item)."""
    kind = type(value)
    return kind in _PLAIN or (kind is int and value.bit_length() <= MAX_INT_BITS)


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return exact_number(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (UUID, PurePath)):
        return str(value)
    raise UnstorableResult(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be recorded; "
        "return JSON values (dict, list, text, number, bool, None), e.g. a dict of its fields"
    )


def exact_number(value: Decimal) -> int | float | str:
    """An int or float when it carries the value exactly; otherwise the text, so that no digit is lost."""
    if not value.is_finite():
        return str(value)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0 and abs(value) < 2**53:
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)
