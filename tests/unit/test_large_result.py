"""The rough size test of a step's result (runtime.step_runner._larger_than): it walks only until it
knows, and says what a JSON encoding's length would say for clearly small and clearly large values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from noetl.runtime.step_runner import LARGE_RESULT_BYTES, _larger_than

SMALL: list[Any] = [
    None,
    7,
    2.5,
    True,
    "text",
    {"a": 1, "b": [1, 2, 3]},
    list(range(1000)),
    ("x" * 100,) * 100,
    [{"id": i, "ok": True, "v": None} for i in range(300)],
]
LARGE: list[Any] = [
    list(range(20_000)),
    "x" * 70_000,
    [1.5] * 15_000,
    {"rows": [{"id": i, "name": "n" * 20} for i in range(2_000)]},
    [None, False] * 6_000,
]


@pytest.mark.parametrize("value", SMALL, ids=lambda v: type(v).__name__)
def test_a_small_result_is_not_large(value: Any) -> None:
    assert len(json.dumps(value)) < LARGE_RESULT_BYTES // 2
    assert not _larger_than(value, LARGE_RESULT_BYTES)


@pytest.mark.parametrize("value", LARGE, ids=lambda v: type(v).__name__)
def test_a_large_result_is_large(value: Any) -> None:
    assert len(json.dumps(value)) > LARGE_RESULT_BYTES
    assert _larger_than(value, LARGE_RESULT_BYTES)
