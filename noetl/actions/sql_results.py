"""The result of one SQL statement, in the shape both SQL actions return, with JSON-safe values."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from noetl.engine.values import exact_number


def statement_result(columns: Sequence[str], rows: Iterable[Sequence[Any]], row_count: int) -> dict[str, Any]:
    """{status, rows: [{column: value}], row_count, columns}: what `command_N` holds in a step's result."""
    names = list(columns)
    return {
        "status": "ok",
        "rows": [dict(zip(names, (json_safe(v) for v in row), strict=True)) for row in rows],
        "row_count": max(row_count, 0),
        "columns": names,
    }


def json_safe(value: Any) -> Any:
    """A database value as something JSON can hold: results are stored in events and read by templates."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return exact_number(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    return str(value)  # intervals, ranges, network addresses...: their text form is what a user expects
