"""The rules by which a step's result is recorded (noetl/engine/values.py)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from noetl.engine.values import RecordedList, UnstorableResult, recorded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, 7),
        ("x", "x"),
        (None, None),
        ({"a": (1, 2)}, {"a": [1, 2]}),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        ({1, "a"}, ["a", 1]),  # members that cannot be compared: in the order of their repr ("'a'" < "1")
        (dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.UTC), "2026-12-01T08:30:00+00:00"),
        (dt.date(2026, 12, 1), "2026-12-01"),
        (dt.timedelta(minutes=2), 120.0),
        (Decimal("12"), 12),
        (Decimal("1.5"), 1.5),
        (Decimal("0.1000000000000000000001"), "0.1000000000000000000001"),
        (float("nan"), "nan"),
        (b"\x00\xff", "00ff"),
        ({1: "a", None: "b", 2.5: "c"}, {"1": "a", "null": "b", "2.5": "c"}),
        ({True: "yes"}, {"true": "yes"}),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Path("/tmp/x"), "/tmp/x"),
    ],
)
def test_values_are_recorded_as_json(value: Any, expected: Any) -> None:
    got = recorded(value)
    assert got == expected
    assert json.loads(json.dumps(got)) == expected  # and JSON holds it exactly


class Thing:
    pass


def cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({(1, 2): "pair"}, "has a key (1, 2) of type tuple"),
        (cyclic(), "contains itself"),
        (10**5000, "digits"),
        ({"x": [Thing()]}, "the result['x'][0] is a tests.unit.test_values.Thing"),
        (deep(500), "nested more than 200 levels"),
    ],
    ids=["tuple-key", "cycle", "huge-int", "object", "deep"],
)
def test_what_cannot_be_recorded_is_refused_naming_where(value: Any, message: str) -> None:
    with pytest.raises(UnstorableResult) as raised:
        recorded(value)
    assert message in str(raised.value)
    assert raised.value.non_retryable


def test_a_value_seen_twice_is_not_a_cycle() -> None:
    shared = [1, 2]
    assert recorded({"a": shared, "b": shared}) == {"a": [1, 2], "b": [1, 2]}


def test_a_list_of_plain_values_and_of_values_to_convert_is_converted_item_by_item() -> None:
    # An iterator's result: plain values are kept as they are, the others converted where they are.
    when = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    value = [1, "a", None, True, 2.5, {3, 1}, when, {"k": {2, 1}, "n": 7}]
    assert recorded(value) == [1, "a", None, True, 2.5, [1, 3], when.isoformat(), {"k": [1, 2], "n": 7}]
    with pytest.raises(UnstorableResult, match=r"item 4 result\[2\]\['bad'\] is a builtins.object"):
        recorded([1, 2, {"bad": object()}], "item 4 result")


def test_an_iterators_results_are_taken_as_recorded_into_a_plain_list() -> None:
    # RecordedList: each element was recorded as its item ended, so it is not walked again (a tuple in
    # it, which a walk would turn into a list, shows that); what is kept is a plain list
    results = RecordedList([{"id": 1}, (1, 2), None])
    kept = recorded(results)
    assert type(kept) is list and kept == [{"id": 1}, (1, 2), None] and kept is not results
    assert recorded([{"id": 1}, (1, 2)]) == [{"id": 1}, [1, 2]]  # a plain list is walked


def test_an_iterator_step_result_is_a_plain_list_of_its_items_results(tmp_path: Path) -> None:
    from noetl.dsl import parse_playbook
    from noetl.runtime.local import LocalRunner
    from noetl.store import open_store

    playbook = parse_playbook(
        """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: results}
workflow:
  - step: start
    type: iterator
    collection: [1, 2, 3]
    element: x
    task: {type: python, data: {x: "{{ x }}"}, code: "def main(x):\\n    return {'x': x, 't': (x, x)}"}
    next: [{step: end}]
  - step: end
    type: python
    data: {r: "{{ start }}"}
    code: "def main(r):\\n    return [type(r).__name__, r[0]['t'], type(r[0]['t']).__name__]"
"""
    )
    store = open_store(str(tmp_path / "n.db"))
    outcome = LocalRunner(store).run(playbook, {})
    store.close()
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == ["list", [1, 1], "list"]  # the tuple was recorded as its item ended


def test_a_flat_dict_is_recorded_as_a_copy_and_its_unusual_values_still_converted() -> None:
    result = {"id": 1, "value": "v1", "ok": True, "none": None}
    kept = recorded(result)
    assert kept == result and kept is not result  # code that changes its dict later changes no record
    assert recorded({"x": float("nan"), "n": 2}) == {"x": "nan", "n": 2}  # (past the one-pass test)
    assert recorded({1: "a"}) == {"1": "a"}
    with pytest.raises(UnstorableResult, match="digits"):
        recorded({"big": 10**5000})
