"""Database values become JSON-safe in step results, without losing digits."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from noetl.actions.sql_results import json_safe, statement_result


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12"), 12),
        (Decimal("9.50"), 9.5),
        (Decimal("0.1"), 0.1),
        (Decimal("12345678901234567890.123456789"), "12345678901234567890.123456789"),
        (Decimal("NaN"), "NaN"),
        (float("inf"), "inf"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2024-01-02T03:04:05+00:00"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (dt.time(3, 4), "03:04:00"),
        (dt.timedelta(minutes=1, seconds=30), 90.0),
        (UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        (b"\x00\xff", "00ff"),
        (memoryview(b"\x01"), "01"),
        ({"a": [Decimal("1.5"), dt.date(2024, 1, 2)]}, {"a": [1.5, "2024-01-02"]}),
        ((1, "x", None, True), [1, "x", None, True]),
    ],
)
def test_values_are_json_safe(value: Any, expected: Any) -> None:
    assert json_safe(value) == expected
    json.dumps(json_safe(value))


def test_statement_result_shape() -> None:
    result = statement_result(["id", "price"], [(1, Decimal("2.50"))], 1)
    assert result == {
        "status": "ok",
        "rows": [{"id": 1, "price": 2.5}],
        "row_count": 1,
        "columns": ["id", "price"],
    }
    assert statement_result([], [], -1)["row_count"] == 0  # DDL reports -1 rows: shown as 0
